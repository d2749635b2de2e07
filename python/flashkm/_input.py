"""Turning user arrays into what the C API takes: a pointer, a dtype code, sizes and a row
stride (ld, in elements), with the object that owns the memory kept alive.

Only host (NumPy) memory for now. A device-array path (DLPack / __cuda_array_interface__,
whose pointers the CUDA backend takes in place) plugs in at `as_matrix`: it would return a
HostMatrix-like record with device=True and the same fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _lib

_DTYPES = {
    np.dtype(np.float32): _lib.FKM_F32,
    np.dtype(np.float16): _lib.FKM_F16,
    np.dtype(np.float64): _lib.FKM_F64,
}


def _fkm_dtype(dt: np.dtype):
    code = _DTYPES.get(dt)
    if code is None and dt.name == "bfloat16" and dt.itemsize == 2:  # ml_dtypes.bfloat16
        code = _lib.FKM_BF16
    return code


@dataclass
class Matrix:
    """`batch` problems of n x d elements: element (b, i, j) at ptr + (b*bstride + i*ld + j)."""
    array: Any          # the owner of the memory (kept alive while the record lives)
    ptr: int
    dtype: int          # FKM_F32, ...
    batch: int          # 0 for a 2-D matrix
    n: int
    d: int
    ld: int
    bstride: int
    device: bool = False


def _row_strides(a: np.ndarray):
    """(ld, batch_stride) in elements when `a` can be passed without a copy, else None."""
    it = a.itemsize
    shape, strides = a.shape, a.strides
    d = shape[-1]
    # the last axis must be contiguous (any stride is fine when it has one element)
    if d > 1 and strides[-1] != it:
        return None
    n = shape[-2]
    if n <= 1:
        ld = d
    else:
        if strides[-2] % it or strides[-2] < d * it:
            return None
        ld = strides[-2] // it
    if a.ndim == 2:
        return ld, n * ld
    if shape[0] <= 1:
        return ld, n * ld
    if strides[0] % it or strides[0] < n * ld * it:
        return None
    return ld, strides[0] // it


def as_matrix(x, *, ndims=(2,), name="X", float_dtype=np.float32) -> Matrix:
    """A host matrix of 2 (or, when 3 is in `ndims`, 3) dimensions. NumPy float32/float16/
    float64 (and bfloat16) arrays are used in place, with their row stride, unless their
    last axis is not contiguous; anything else is converted once to `float_dtype`."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.ndim not in ndims:
        want = " or ".join(f"{k}-D" for k in ndims)
        raise ValueError(f"{name} must be {want}, got an array of shape {a.shape}")
    if _fkm_dtype(a.dtype) is None:
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name} has dtype {a.dtype}, flashkm takes real numbers "
                             "(float32, float16, float64, bfloat16, or integers, converted)")
        a = a.astype(float_dtype)
    st = _row_strides(a)
    if st is None:
        a = np.ascontiguousarray(a)
        st = _row_strides(a)
    ld, bstride = st
    batch = a.shape[0] if a.ndim == 3 else 0
    n, d = a.shape[-2], a.shape[-1]
    return Matrix(a, a.ctypes.data, _fkm_dtype(a.dtype), batch, n, d, ld, bstride)


def as_f32(x, shape, name):
    """A C-contiguous float32 copy-if-needed of x with the given shape (centroids, weights)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    return a
