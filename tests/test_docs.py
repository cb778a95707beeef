#!/usr/bin/env python3
"""test_docs.py -- runs the command blocks of README.md and docs/*.md, so the docs cannot drift
from the code.

The rule (docs/architecture.md, "Docs are tested"): a fenced block whose info string starts with
`sh` is a command block and is run with `sh -e` in a fresh scratch directory that holds `build`
(a link to the CMake build tree), `examples`, `python`, `scripts` and `docs` (links into the
source tree), with build/tools on PATH and ZOFF_DEVICE=sim. Attributes after `sh`:
  exit=N          the block's expected exit status (default 0)
  slow            run only by test_docs_slow (CMake option ZOFF_DOCS_SLOW=ON): minutes long
  skip: REASON    never run here (a package install, the test suite itself, a GPU, ...); the
                  reason is required and the block must have a small runnable variant nearby
                  or a test that covers it
Blocks in other languages (c, json, python, text) are not commands. A block with no info string
is an error: say what it is (text for output, synopses and diagrams).

usage: test_docs.py SOURCE_DIR BUILD_DIR [quick|slow]
"""
import os
import re
import subprocess
import sys
import tempfile
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
    pages = [src / "README.md"] + sorted((src / "docs").glob("*.md"))
    errors, ran, skipped = [], 0, 0
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
            em = re.search(r"\bexit=(\d+)", attrs)
            want = int(em.group(1)) if em else 0
            with tempfile.TemporaryDirectory(prefix="docs-",
                                             dir=os.environ.get("ZOFF_TEST_TMP")) as d:
                for name in ("examples", "python", "scripts", "docs"):
                    os.symlink(src / name, Path(d) / name)
                os.symlink(build, Path(d) / "build")
                env = dict(os.environ, ZOFF_DEVICE="sim",
                           PATH=f"{build / 'tools'}:{os.environ.get('PATH', '')}")
                r = subprocess.run(["sh", "-e", "-c", text], cwd=d, env=env,
                                   capture_output=True, text=True, timeout=600)
            ran += 1
            status = "ok" if r.returncode == want else "FAILED"
            print(f"{status}: {where} (exit {r.returncode}, expected {want})")
            if r.returncode != want:
                errors.append(f"{where}: exit {r.returncode}, expected {want}\n--- block:\n"
                              f"{text}\n--- output:\n{(r.stdout + r.stderr)[-3000:]}")
    print(f"{ran} command blocks run, {skipped} not in this mode or skipped")
    for e in errors:
        print("ERROR:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
