"""Turning user arrays into what the C API takes: a pointer, a dtype code, sizes and a row
stride (ld, in elements), with the object that owns the memory kept alive.

Host arrays: NumPy (float32, float16, float64, ml_dtypes' bfloat16) used in place; other
array-likes converted once. Arrays of other libraries (torch tensors on the CPU or a GPU,
CuPy arrays, __cuda_array_interface__ and DLPack producers, see _devices.py) are used in place
too, device pointers included: the CUDA backend reads device memory where it lies. Their
`Matrix.arrays` is the array library that allocates outputs of the same kind on the same
device. Where the last axis is not contiguous a copy is made by the array's own library, on
its device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _lib
from ._devices import Arrays, carrier, is_foreign

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
    device: bool = False              # ptr is CUDA device memory
    arrays: Optional[Arrays] = None   # the library of a non-NumPy array (outputs of its kind)

    @property
    def shape(self):
        return (self.batch, self.n, self.d) if self.batch else (self.n, self.d)

    def row_block(self, b) -> "Matrix":
        """Problem b of a batch, as a 2-D matrix (same memory)."""
        es = _lib.lib.fkm_dtype_size(self.dtype)
        return Matrix(self.array, self.ptr + b * self.bstride * es, self.dtype, 0, self.n,
                      self.d, self.ld, self.n * self.ld, self.device, self.arrays)


@dataclass
class Buf:
    """An array (owner) and the address the C API gets for it."""
    obj: Any
    ptr: int


def _row_strides(shape, strides):
    """(ld, batch_stride) in elements when an array of this shape and these element strides
    can be passed without a copy, else None."""
    if any(s is None or s < 0 for s in strides):
        return None
    d = shape[-1]
    # the last axis must be contiguous (any stride is fine when it has one element)
    if d > 1 and strides[-1] != 1:
        return None
    n = shape[-2]
    if n <= 1:
        ld = d
    else:
        if strides[-2] < d:
            return None
        ld = strides[-2]
    if len(shape) == 2 or shape[0] <= 1:
        return ld, n * ld
    if strides[0] < n * ld:
        return None
    return ld, strides[0]


def _np_row_strides(a: np.ndarray):
    it = a.itemsize
    return _row_strides(a.shape, [s // it if s % it == 0 else None for s in a.strides])


def _check_ndim(shape, ndims, name):
    if len(shape) not in ndims:
        want = " or ".join(f"{k}-D" for k in ndims)
        raise ValueError(f"{name} must be {want}, got an array of shape {tuple(shape)}")


def _foreign_matrix(a, arrays: Arrays, ndims, name) -> Matrix:
    ptr, shape, strides, dtname = arrays.facts(a)
    _check_ndim(shape, ndims, name)
    code = arrays.dtype_code(a)
    if code is None:
        raise TypeError(f"{name} is a {arrays.name} array of dtype {dtname}; flashkm takes "
                        "float16, bfloat16, float32 or float64 arrays of other libraries "
                        "(convert it on its device first, e.g. x.float())")
    if min(shape) < 1:
        raise ValueError(f"{name} has shape {tuple(shape)}: it needs at least one row and "
                         "one column")
    st = _row_strides(shape, strides)
    if st is None:  # last axis not contiguous, overlapping rows, ...: a copy on its device
        a = arrays.contiguous(a)
        ptr, shape, strides, _ = arrays.facts(a)
        st = _row_strides(shape, strides)
    ld, bstride = st
    batch = shape[0] if len(shape) == 3 else 0
    return Matrix(a, ptr, code, batch, shape[-2], shape[-1], ld, bstride,
                  device=arrays.is_cuda, arrays=arrays)


def as_matrix(x, *, ndims=(2,), name="X", float_dtype=np.float32) -> Matrix:
    """A matrix of 2 (or, when 3 is in `ndims`, 3) dimensions. NumPy float32/float16/float64
    (and bfloat16) arrays are used in place, with their row stride, unless their last axis is
    not contiguous; other array-likes are converted once to `float_dtype`. Arrays of other
    libraries (torch, CuPy, CUDA array interface, DLPack) are used in place, on their device:
    see _devices.py."""
    if is_foreign(x):
        a, arrays = carrier(x)
        if arrays is not None:
            return _foreign_matrix(a, arrays, ndims, name)
        x = a  # a NumPy view of a CPU DLPack array
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    _check_ndim(a.shape, ndims, name)
    if _fkm_dtype(a.dtype) is None:
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name} has dtype {a.dtype}, flashkm takes real numbers "
                             "(float32, float16, float64, bfloat16, or integers, converted)")
        a = a.astype(float_dtype)
    st = _np_row_strides(a)
    if st is None:
        a = np.ascontiguousarray(a)
        st = _np_row_strides(a)
    ld, bstride = st
    batch = a.shape[0] if a.ndim == 3 else 0
    n, d = a.shape[-2], a.shape[-1]
    return Matrix(a, a.ctypes.data, _fkm_dtype(a.dtype), batch, n, d, ld, bstride)


def as_f32(x, shape, name):
    """A C-contiguous float32 copy-if-needed of x with the given shape (centroids, weights).
    Arrays of other libraries (on a GPU too) are copied to the host: these are small."""
    if is_foreign(x):
        a, arrays = carrier(x)
        x = a if arrays is None else arrays.to_numpy_f32(a)
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    return a


def host_init(init):
    """An init array of another library as NumPy (k x d values: a small copy); anything else
    as it is (strings, callables, NumPy arrays, array-likes)."""
    if not isinstance(init, str) and not callable(init) and is_foreign(init):
        a, arrays = carrier(init)
        return a if arrays is None else arrays.to_numpy_f32(a)
    return init


def as_weights(w, shape, X: Matrix, backend: str, name="sample_weight") -> Optional[Buf]:
    """Sample weights for the C call: float32, contiguous, of the given shape. A CUDA array
    on X's device stays there for a GPU fit (converted on its device when it is not float32
    and contiguous); anything else becomes a host array."""
    if w is None:
        return None
    if is_foreign(w):
        a, arrays = carrier(w)
        if arrays is not None and arrays.is_cuda and backend != "cpu" and X.device and \
                X.arrays is not None and arrays.index == X.arrays.index:
            a = arrays.f32(a)
            if tuple(a.shape) != tuple(shape):
                raise ValueError(f"{name} must have shape {tuple(shape)}, got "
                                 f"{tuple(a.shape)}")
            return Buf(a, arrays.facts(a)[0])
        w = a if arrays is None else arrays.to_numpy_f32(a)
    a = as_f32(w, shape, name)
    return Buf(a, a.ctypes.data)


def backend_for(device: str, X: Matrix) -> str:
    """The backend name of a call on X: a CUDA array runs on the CUDA backend ("auto" or
    "cuda"); device="cpu" with one is an error (flashkm never moves X to the host itself)."""
    if device not in _lib.BACKENDS:
        raise ValueError(f"device must be one of {sorted(_lib.BACKENDS)}, got {device!r}")
    if X.device:
        if device == "cpu":
            raise ValueError(
                f"device='cpu' but X is a CUDA array ({X.arrays.describe()}); flashkm does not "
                "copy it to the host: pass device='auto' or 'cuda', or move X to the host "
                "yourself (x.cpu(), cupy.asnumpy(x))")
        return "cuda"
    return device
