#!/usr/bin/env python3
"""check_safetensors.py — interoperability check of zoff checkpoints with the standard
`safetensors` reader (numpy flavour).

Usage: check_safetensors.py CKPT_DIR

CKPT_DIR is the fixture written by `test_ckpt --write-fixture CKPT_DIR`: tensor j of the
manifest holds element i = ((i * 7 + j * 13) % 251 - 125) * 0.0625 (fp32), step 1234, loss
scale 32768. The script loads optimizer.safetensors with safetensors.numpy.load_file, checks
every tensor's dtype, shape and values against that formula, recomputes each crc32c with an
independent pure-Python CRC-32C and compares it with zoff_manifest.json, and reads the
__metadata__ back with safe_open. Exit 0 = pass, 1 = fail, 77 = skipped (python packages
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
    path = os.path.join(ckpt, "optimizer.safetensors")
    tensors = load_file(path)
    failures = []
    if crc32c(b"123456789") != 0xE3069283:
        failures.append("the reference CRC-32C is wrong")
    names = [t["name"] for t in manifest["tensors"]]
    if sorted(tensors.keys()) != sorted(names):
        failures.append(f"tensor names differ: file {sorted(tensors)} manifest {sorted(names)}")
    for j, t in enumerate(manifest["tensors"]):
        name, numel = t["name"], t["numel"]
        a = tensors.get(name)
        if a is None:
            continue
        if a.dtype != np.float32 or a.shape != (numel,):
            failures.append(f"{name}: dtype {a.dtype} shape {a.shape}, want float32 ({numel},)")
            continue
        i = np.arange(numel, dtype=np.int64)
        want = (((i * 7 + j * 13) % 251 - 125) * 0.0625).astype(np.float32)
        bad = np.nonzero(a != want)[0]
        if bad.size:
            k = bad[0]
            failures.append(f"{name}: {bad.size} values differ, first [{k}] {a[k]} != {want[k]}")
        got_crc = crc32c(a.astype("<f4").tobytes())
        if got_crc != t["crc32c"]:
            failures.append(f"{name}: crc32c 0x{got_crc:08x} != manifest 0x{t['crc32c']:08x}")
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
    if meta.get("step") != str(manifest["step"]) or manifest["step"] != 1234:
        failures.append(f"step: metadata {meta.get('step')} manifest {manifest['step']}")
    if float(meta.get("loss_scale", "nan")) != 32768.0 or manifest["loss_scale"] != 32768:
        failures.append(f"loss_scale: metadata {meta.get('loss_scale')}")
    if meta.get("format") != "zoff" or int(meta.get("format_version", 0)) != manifest["format_version"]:
        failures.append(f"format metadata: {meta.get('format')} {meta.get('format_version')}")
    for msg in failures:
        print("FAIL:", msg)
    if failures:
        return 1
    print(f"OK: {len(names)} tensors of {ckpt} read by safetensors "
          f"{__import__('safetensors').__version__}, values and crc32c match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
