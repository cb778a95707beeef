#!/usr/bin/env python3
"""check_safetensors.py — interoperability check of zoff checkpoints with the standard
`safetensors` reader (numpy flavour).

Usage: check_safetensors.py CKPT_DIR

CKPT_DIR is the fixture written by `test_ckpt --write-fixture CKPT_DIR` (one file) or
`test_ckpt --write-sliced-fixture CKPT_DIR` (format 3, as 3 ranks write it): tensor j of the
manifest holds element i = ((i * 7 + j * 13) % 251 - 125) * 0.0625 (fp32), step 1234, loss
scale 32768. The script loads optimizer.safetensors (format 3: every optimizer.rank<r>.safetensors,
whose tensors are the slices "<name>[begin:end]", joined by the manifest's "slices") with
safetensors.numpy.load_file, checks every tensor's dtype, shape and values against that
formula, recomputes each crc32c (of the tensor, or of each slice) with an independent
pure-Python CRC-32C and compares it with zoff_manifest.json, and reads the __metadata__ of
every data file back with safe_open. Exit 0 = pass, 1 = fail, 77 = skipped (python packages
missing: scripts/deps.sh --with-python installs them).
"""
import json
import os
import sys

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as e:  # a missing capability is a skip, not a failure
    print(f"SKIP: {e} (run scripts/deps.sh --with-python)")
    sys.exit(77)


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    ckpt = sys.argv[1]
    with open(os.path.join(ckpt, "zoff_manifest.json")) as f:
        manifest = json.load(f)
    failures = []
    if crc32c(b"123456789") != 0xE3069283:
        failures.append("the reference CRC-32C is wrong")
    sliced = manifest["format_version"] >= 3
    if sliced:
        paths = [os.path.join(ckpt, f["file"]) for f in manifest["data_files"]]
    else:
        paths = [os.path.join(ckpt, "optimizer.safetensors")]
    files = [load_file(p) for p in paths]
    # (name in the file, file index, begin, end, crc32c) of every stored piece
    pieces = {}
    for t in manifest["tensors"]:
        if sliced:
            pieces[t["name"]] = [(f"{t['name']}[{s['begin']}:{s['end']}]", s["file"], s["begin"],
                                  s["end"], s["crc32c"]) for s in t["slices"]]
        else:
            pieces[t["name"]] = [(t["name"], 0, 0, t["numel"], t["crc32c"])]
    want_names = [sorted(p[0] for ps in pieces.values() for p in ps if p[1] == k)
                  for k in range(len(files))]
    for k, f in enumerate(files):
        if sorted(f.keys()) != want_names[k]:
            failures.append(f"{paths[k]}: tensor names {sorted(f)} manifest {want_names[k]}")
    names = [t["name"] for t in manifest["tensors"]]
    for j, t in enumerate(manifest["tensors"]):
        name, numel = t["name"], t["numel"]
        parts = []
        for pname, k, b, e, crc in pieces[name]:
            a = files[k].get(pname)
            if a is None:
                break
            if a.dtype != np.float32 or a.shape != (e - b,):
                failures.append(f"{pname}: dtype {a.dtype} shape {a.shape}, want float32 ({e - b},)")
                break
            got_crc = crc32c(a.astype("<f4").tobytes())
            if got_crc != crc:
                failures.append(f"{pname}: crc32c 0x{got_crc:08x} != manifest 0x{crc:08x}")
            parts.append(a)
        else:
            a = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            if a.shape != (numel,):
                failures.append(f"{name}: slices hold {a.shape}, want ({numel},)")
                continue
            i = np.arange(numel, dtype=np.int64)
            want = (((i * 7 + j * 13) % 251 - 125) * 0.0625).astype(np.float32)
            bad = np.nonzero(a != want)[0]
            if bad.size:
                k = bad[0]
                failures.append(f"{name}: {bad.size} values differ, first [{k}] {a[k]} != {want[k]}")
    for path in paths:
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
        if meta.get("step") != str(manifest["step"]) or manifest["step"] != 1234:
            failures.append(f"{path} step: metadata {meta.get('step')} manifest {manifest['step']}")
        if float(meta.get("loss_scale", "nan")) != 32768.0 or manifest["loss_scale"] != 32768:
            failures.append(f"{path} loss_scale: metadata {meta.get('loss_scale')}")
        if (meta.get("format") != "zoff"
                or int(meta.get("format_version", 0)) != manifest["format_version"]):
            failures.append(f"{path} format metadata: {meta.get('format')} "
                            f"{meta.get('format_version')}")
    for msg in failures:
        print("FAIL:", msg)
    if failures:
        return 1
    print(f"OK: {len(names)} tensors of {ckpt} ({len(paths)} data files) read by safetensors "
          f"{__import__('safetensors').__version__}, values and crc32c match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
