#!/usr/bin/env python3
"""test_docs.py -- runs the command blocks of README.md and docs/*.md, so the docs cannot drift
from the code.

The rule (docs/architecture.md, "Docs are tested"): a fenced block whose info string starts with
`sh` is a command block and is run with `sh -e` in a fresh scratch directory that holds `build`
(a link to the CMake build tree), `examples`, `python`, `scripts` and `docs` (links into the
source tree), with build/tools on PATH and ZOFF_DEVICE=sim. Attributes after `sh`:
  exit=N          the block's expected exit status (default 0)
  slow            run only by test_docs_slow (CMake option ZOFF_DOCS_SLOW=ON, on in .ci/run):
                  benchmarks at their documented size, the full demo, the torch example; the
                  whole slow set takes minutes (each block's time is printed)
  needs=torch     the block imports torch: reported as skipped where torch is not installed
                  (scripts/deps.sh --with-torch installs it; .ci/run does)
  skip: REASON    never run by a test: a package install, the build or the test suite itself,
                  an installed prefix, or a run too large for a test machine (many GiB of disk
                  or memory, tens of minutes). The reason is required and the block must have a
                  small runnable variant nearby or a test that covers it
Every `sh` block is therefore run by test_docs or test_docs_slow, or excluded with its reason.
A measured command too large for any test (docs/runtime.md: the 4 G-parameter streaming run,
minutes and 19 GB of RSS) is written in a table, not a block, says "Not run by a test" with the
reason, and has a small stand-in `sh slow` block next to it.
Blocks in other languages (c, json, python, text) are not commands. A block with no info string
is an error: say what it is (text for output, synopses and diagrams).

usage: test_docs.py SOURCE_DIR BUILD_DIR [quick|slow] [PAGE]
  PAGE: run only the blocks of pages whose path contains it (e.g. docs/nvme.md)
"""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def blocks(path):
    """(line, info, text) of every fenced block of a markdown file."""
    out, inb, start, info, body = [], False, 0, "", []
    for i, line in enumerate(path.read_text().split("\n"), 1):
        if line.startswith("```"):
            if not inb:
                inb, start, info, body = True, i, line[3:].strip(), []
            else:
                inb = False
                out.append((start, info, "\n".join(body)))
        elif inb:
            body.append(line)
    return out


def main():
    src, build = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    mode = sys.argv[3] if len(sys.argv) > 3 else "quick"
    only = sys.argv[4] if len(sys.argv) > 4 else ""
    pages = [src / "README.md"] + sorted((src / "docs").glob("*.md"))
    pages = [p for p in pages if only in str(p.relative_to(src))]
    have_torch = None
    errors, ran, skipped, t_all = [], 0, 0, time.monotonic()
    for page in pages:
        rel = page.relative_to(src)
        for line, info, text in blocks(page):
            where = f"{rel}:{line}"
            if info == "":
                errors.append(f"{where}: a fenced block without an info string (use sh for "
                              "commands, text for output/synopses/diagrams)")
                continue
            if not re.match(r"(sh|bash|shell)\b", info):
                continue
            attrs = info.split(None, 1)[1] if " " in info else ""
            m = re.match(r"skip:\s*(.*)", attrs)
            if m:
                if not m.group(1).strip():
                    errors.append(f"{where}: `sh skip:` needs a reason")
                skipped += 1
                continue
            slow = re.search(r"\bslow\b", attrs) is not None
            if slow != (mode == "slow"):
                skipped += 1
                continue
            if re.search(r"\bneeds=torch\b", attrs):
                if have_torch is None:
                    have_torch = subprocess.run(["python3", "-c", "import torch"],
                                                capture_output=True).returncode == 0
                if not have_torch:
                    print(f"skipped: {where} (needs torch, which is not installed)")
                    skipped += 1
                    continue
            em = re.search(r"\bexit=(\d+)", attrs)
            want = int(em.group(1)) if em else 0
            with tempfile.TemporaryDirectory(prefix="docs-",
                                             dir=os.environ.get("ZOFF_TEST_TMP")) as d:
                for name in ("examples", "python", "scripts", "docs"):
                    os.symlink(src / name, Path(d) / name)
                os.symlink(build, Path(d) / "build")
                env = dict(os.environ, ZOFF_DEVICE="sim",
                           PATH=f"{build / 'tools'}:{os.environ.get('PATH', '')}")
                t0 = time.monotonic()
                r = subprocess.run(["sh", "-e", "-c", text], cwd=d, env=env,
                                   capture_output=True, text=True, timeout=600)
                secs = time.monotonic() - t0
            ran += 1
            status = "ok" if r.returncode == want else "FAILED"
            print(f"{status}: {where} (exit {r.returncode}, expected {want}, {secs:.1f} s)",
                  flush=True)
            if r.returncode != want:
                errors.append(f"{where}: exit {r.returncode}, expected {want}\n--- block:\n"
                              f"{text}\n--- output:\n{(r.stdout + r.stderr)[-3000:]}")
    print(f"{ran} command blocks run in {time.monotonic() - t_all:.0f} s, {skipped} not in this "
          "mode or skipped")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
