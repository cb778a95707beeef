"""Shared pytest fixtures of the zoff binding tests: the package import path, scratch
directories under $ZOFF_TEST_TMP (CTest sets it to <build>/test-tmp; pytest's tmp_path
otherwise) and a numpy AdamW reference used by several tests."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Import the package from this checkout unless the caller chose another one on PYTHONPATH.
_PKG_ROOT = Path(__file__).resolve().parent.parent
if str(_PKG_ROOT) not in sys.path:
    sys.path.insert(0, str(_PKG_ROOT))


@pytest.fixture
def scratch(tmp_path):
    """A fresh directory, under $ZOFF_TEST_TMP when set (removed after the test)."""
    base = os.environ.get("ZOFF_TEST_TMP")
    if not base:
        yield tmp_path
        return
    os.makedirs(base, exist_ok=True)
    d = tempfile.mkdtemp(prefix="pytest-", dir=base)
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def adam_reference(p, m, v, g, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   adamw=True):
    """One Adam/AdamW update in float64, as torch.optim.AdamW / Adam define it. Returns new
    (p, m, v)."""
    p, m, v, g = (np.asarray(x, dtype=np.float64) for x in (p, m, v, g))
    b1, b2 = betas
    if adamw:
        p = p * (1.0 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    bc1 = 1.0 - b1**step
    bc2 = 1.0 - b2**step
    p = p - (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps)
    return p, m, v


def assert_close(actual, expected, atol, rtol, what):
    """Fails with the first mismatches (index, actual, expected) when |a-e| > atol + rtol|e|."""
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    bad = np.nonzero(~(np.abs(a - e) <= atol + rtol * np.abs(e)))[0]
    if bad.size:
        first = ", ".join(f"[{i}] {a[i]:.9g} vs {e[i]:.9g}" for i in bad[:5])
        raise AssertionError(f"{what}: {bad.size} of {a.size} elements differ beyond "
                             f"atol={atol} rtol={rtol}; max |diff| "
                             f"{np.max(np.abs(a - e)):.3g}; first: {first}")
