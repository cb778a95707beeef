"""Element types of the binding: zoff dtype codes, their names, and numpy conversions.

This module owns the mapping between zoff_dtype (F32, F16, BF16) and numpy, including bf16,
which numpy lacks: a bf16 array is held as uint16 bit patterns, converted from float32 with
round-to-nearest-even (NaN kept NaN), like common/half.h does in C.
"""

import numpy as np

from . import _lib

_BY_NAME = {
    "f32": _lib.DTYPE_F32,
    "float32": _lib.DTYPE_F32,
    "fp32": _lib.DTYPE_F32,
    "f16": _lib.DTYPE_F16,
    "float16": _lib.DTYPE_F16,
    "fp16": _lib.DTYPE_F16,
    "half": _lib.DTYPE_F16,
    "bf16": _lib.DTYPE_BF16,
    "bfloat16": _lib.DTYPE_BF16,
}
NAMES = {_lib.DTYPE_F32: "f32", _lib.DTYPE_F16: "f16", _lib.DTYPE_BF16: "bf16"}
SIZES = {_lib.DTYPE_F32: 4, _lib.DTYPE_F16: 2, _lib.DTYPE_BF16: 2}


def parse(dtype):
    """zoff dtype code for a name ("f32", "fp16", "bf16", ...) or a code; ValueError if unknown."""
    if isinstance(dtype, int) and dtype in NAMES:
        return dtype
    key = str(dtype).lower().replace("torch.", "")
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise ValueError(f"zoff: unknown dtype {dtype!r} (use 'f32', 'f16' or 'bf16')")


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bit patterns, round-to-nearest-even; NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = np.isnan(u.view(np.float32))
    out = rounded.astype(np.uint16)
    out[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return out


def bf16_bits_to_f32(b):
    """uint16 bf16 bit patterns -> float32 (exact)."""
    b = np.ascontiguousarray(b, dtype=np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def encode(values, dtype):
    """float array -> contiguous numpy array holding `dtype`'s bytes (bf16 as uint16 bits)."""
    v = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if dtype == _lib.DTYPE_F32:
        return v
    if dtype == _lib.DTYPE_F16:
        return v.astype(np.float16)
    return f32_to_bf16_bits(v)


def decode(raw, dtype):
    """The inverse of encode: an array of `dtype`'s bytes -> float32."""
    if dtype == _lib.DTYPE_F32:
        return np.ascontiguousarray(raw).view(np.float32).copy()
    if dtype == _lib.DTYPE_F16:
        return np.ascontiguousarray(raw).view(np.float16).astype(np.float32)
    return bf16_bits_to_f32(np.ascontiguousarray(raw).view(np.uint16))


def empty_raw(numel, dtype):
    """An uninitialised numpy array of numel elements with dtype's storage type."""
    return np.empty(numel, dtype={0: np.float32, 1: np.float16, 2: np.uint16}[dtype])
