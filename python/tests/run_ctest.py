#!/usr/bin/env python3
"""run_ctest.py — runs one pytest suite of the binding for CTest (tests/python.cmake).

  run_ctest.py binding   test_binding.py (numpy only)
  run_ctest.py torch     test_torch.py (needs torch)
  run_ctest.py lion_adagrad   test_torch_optims.py: zoff.torch.Lion / Adagrad / q8 (needs torch)
  run_ctest.py stream    test_stream.py (zoff.torch.stream; needs torch)
  run_ctest.py install   test_install.py (pip wheel + venv install; builds libzoff, slow)

Exit codes: pytest's (0 pass, 1 failures, ...), or 77 (CTest "skipped") when pytest, numpy or,
for the torch suite, torch is not installed, or when every test skipped. It prints which ran.
"""

import importlib.util
import sys
from pathlib import Path

SKIP = 77
SUITES = {"binding": ("test_binding.py", ["numpy", "pytest"]),
          "torch": ("test_torch.py", ["numpy", "pytest", "torch"]),
          "lion_adagrad": ("test_torch_optims.py", ["numpy", "pytest", "torch"]),
          "stream": ("test_stream.py", ["numpy", "pytest", "torch"]),
          "install": ("test_install.py", ["numpy", "pytest", "pip"])}


class _Count:
    """A pytest plugin that counts the outcomes of the test calls."""

    def __init__(self):
        self.outcomes = {"passed": 0, "failed": 0, "skipped": 0}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.outcome] = self.outcomes.get(report.outcome, 0) + 1


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
        print(f"usage: {sys.argv[0]} {'|'.join(SUITES)} [pytest args]", file=sys.stderr)
        return 2
    name = sys.argv[1]
    test_file, needs = SUITES[name]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        print(f"python_{name}: SKIPPED, not installed: {', '.join(missing)} "
              f"(scripts/deps.sh --with-python{' --with-torch' if 'torch' in missing else ''})")
        return SKIP
    import pytest

    here = Path(__file__).resolve().parent
    count = _Count()
    rc = pytest.main([str(here / test_file), "-q", "-rs", "-p", "no:cacheprovider"]
                     + sys.argv[2:], plugins=[count])
    o = count.outcomes
    print(f"python_{name}: {o['passed']} passed, {o['failed']} failed, {o['skipped']} skipped")
    if rc == 0 and o["passed"] == 0 and o["skipped"] > 0:
        return SKIP
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
