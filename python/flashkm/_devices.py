"""Arrays of other libraries: PyTorch tensors (CPU or CUDA), CuPy arrays, objects exposing
__cuda_array_interface__ or DLPack (__dlpack__ / __dlpack_device__, or a raw DLPack capsule).

flashkm computes nothing here. This module finds, for such an array, the pointer, dtype and
strides the C API takes, and gives the rest of the package an `Arrays` object of the array's
own library (its "carrier"): it allocates outputs of that kind on that device, copies what
must be copied on that device, makes the array's device the current one during the C call and
synchronises around it. torch and CuPy are looked up in sys.modules (a torch tensor can only
exist once torch is imported): NumPy input never imports them.

Carriers: torch tensors are their own; CuPy arrays too. A GPU array of another producer
(Numba, JAX, ...) is taken in place through torch (torch.from_dlpack / torch.as_tensor) or
else CuPy, whichever is imported (or, if neither is, the first that imports), and its outputs
are of that library. CPU DLPack producers other than torch
become NumPy views (np.from_dlpack, no copy) and are NumPy arrays from then on.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys

import numpy as np

from . import _lib

# DLPack device types (dlpack.h)
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13

_FLOAT_HINT = "float16, bfloat16, float32 or float64"


def _module(name):
    """An already-imported module, or None (never imports)."""
    return sys.modules.get(name)


def is_torch(x) -> bool:
    torch = _module("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_cupy(x) -> bool:
    cupy = _module("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


def _is_capsule(x) -> bool:
    return type(x).__name__ == "PyCapsule"


def is_foreign(x) -> bool:
    """Is x an array of another library that flashkm takes through its own API, CUDA array
    interface or DLPack (NumPy arrays are not: they have their own path)?"""
    if isinstance(x, np.ndarray):
        return False
    return (is_torch(x) or is_cupy(x) or hasattr(x, "__cuda_array_interface__")
            or hasattr(x, "__dlpack__") or _is_capsule(x))


# ------------------------------------------------------------------ DLPack capsules
class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


def _capsule_device(cap):
    """(device_type, device_id) of an unconsumed legacy DLPack capsule ("dltensor": a
    DLManagedTensor starts with its DLTensor)."""
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    is_valid = ctypes.pythonapi.PyCapsule_IsValid
    is_valid.restype = ctypes.c_int
    is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
    if not is_valid(cap, b"dltensor"):
        raise TypeError("flashkm: this capsule is not an unconsumed DLPack tensor ('dltensor'); "
                        "pass the array itself (an object with __dlpack__)")
    t = _DLTensor.from_address(get(cap, b"dltensor"))
    return t.device.device_type, t.device.device_id


class _CapsuleProducer:
    """A raw capsule seen through the DLPack protocol, for np.from_dlpack / cupy.from_dlpack
    (which take objects, not capsules). The capsule is consumed by whoever takes it."""

    def __init__(self, cap):
        self._cap = cap
        self._dev = _capsule_device(cap)

    def __dlpack__(self, *args, **kwargs):
        return self._cap

    def __dlpack_device__(self):
        return self._dev


# ------------------------------------------------------------------ carriers
class Arrays:
    """What the package needs from an array library, for arrays on one device."""

    name = "?"
    is_cuda = False
    index = None        # CUDA device index (None on the CPU)

    def describe(self) -> str:
        return f"{self.name} ({'cuda:%d' % self.index if self.is_cuda else 'cpu'})"


class TorchArrays(Arrays):
    name = "torch"

    def __init__(self, device):
        self.torch = sys.modules["torch"]
        self.device = device
        self.is_cuda = device.type == "cuda"
        if self.is_cuda:
            self.index = device.index if device.index is not None else \
                self.torch.cuda.current_device()
            self.device = self.torch.device("cuda", self.index)
        elif device.type != "cpu":
            raise TypeError(f"flashkm takes torch tensors on the CPU or a CUDA device, not on "
                            f"{device}")

    def dtype_code(self, t):
        torch = self.torch
        codes = {torch.float32: _lib.FKM_F32, torch.float16: _lib.FKM_F16,
                 torch.bfloat16: _lib.FKM_BF16, torch.float64: _lib.FKM_F64}
        return codes.get(t.dtype)

    def facts(self, t):
        """(pointer, shape, strides in elements, dtype name) of a tensor."""
        if t.layout != self.torch.strided:
            raise TypeError(f"flashkm takes dense tensors, not {t.layout} ones (x.to_dense())")
        return t.data_ptr(), tuple(t.shape), tuple(t.stride()), str(t.dtype)

    def contiguous(self, t):
        return t.detach().contiguous()

    def empty(self, shape, kind):
        torch = self.torch
        dt = {"f32": torch.float32, "i32": torch.int32, "f64": torch.float64}[kind]
        t = torch.empty(shape, dtype=dt, device=self.device)
        return t, t.data_ptr()

    def f32(self, t):
        """t as a contiguous float32 tensor on its device (itself when it is one)."""
        return t.detach().to(dtype=self.torch.float32).contiguous()

    def to_numpy_f32(self, t):
        return t.detach().to(device="cpu", dtype=self.torch.float32).contiguous().numpy()

    def sqrt_nonneg_(self, t):
        return t.clamp_(min=0).sqrt_()

    def to_f64(self, t):
        return t.to(self.torch.float64)

    def scope(self):
        return self.torch.cuda.device(self.index) if self.is_cuda else contextlib.nullcontext()

    def sync(self):
        # The library runs on a stream of its own (non-blocking): the work queued on torch's
        # streams before the call must be done, and torch reads the outputs after it.
        if self.is_cuda:
            self.torch.cuda.synchronize(self.device)


class CupyArrays(Arrays):
    name = "cupy"

    def __init__(self, index):
        self.cupy = sys.modules["cupy"]
        self.is_cuda = True
        self.index = int(index)

    def dtype_code(self, a):
        return {np.dtype(np.float32): _lib.FKM_F32, np.dtype(np.float16): _lib.FKM_F16,
                np.dtype(np.float64): _lib.FKM_F64}.get(np.dtype(a.dtype))

    def facts(self, a):
        it = a.dtype.itemsize
        strides = tuple(s // it if s % it == 0 else None for s in a.strides)
        return a.data.ptr, tuple(a.shape), strides, str(a.dtype)

    def contiguous(self, a):
        with self.scope():
            return self.cupy.ascontiguousarray(a)

    def empty(self, shape, kind):
        dt = {"f32": np.float32, "i32": np.int32, "f64": np.float64}[kind]
        with self.scope():
            a = self.cupy.empty(shape, dtype=dt)
        return a, a.data.ptr

    def f32(self, a):
        with self.scope():
            return self.cupy.ascontiguousarray(a, dtype=np.float32)

    def to_numpy_f32(self, a):
        return np.ascontiguousarray(self.cupy.asnumpy(a), dtype=np.float32)

    def sqrt_nonneg_(self, a):
        with self.scope():
            self.cupy.maximum(a, 0, out=a)
            self.cupy.sqrt(a, out=a)
        return a

    def to_f64(self, a):
        with self.scope():
            return a.astype(np.float64)

    def scope(self):
        return self.cupy.cuda.Device(self.index)

    def sync(self):
        self.cupy.cuda.Device(self.index).synchronize()


def _no_carrier(x, why):
    return TypeError(
        f"flashkm: {type(x).__module__}.{type(x).__name__} is {why}; flashkm takes such arrays "
        "in place through PyTorch or CuPy, and neither can be imported (install one), or "
        "pass a NumPy array")


def _gpu_libraries():
    """(torch, cupy) for a GPU array of a third library: those already imported, else the
    first of the two that imports (a GPU array is there, so one of them is worth loading)."""
    torch, cupy = _module("torch"), _module("cupy")
    if torch is None and cupy is None:
        for name in ("torch", "cupy"):
            try:
                __import__(name)
            except Exception:  # noqa: BLE001 - not installed, or no usable CUDA
                continue
            return _module("torch"), _module("cupy")
    return torch, cupy


def carrier(x):
    """(array, Arrays) for a foreign array: the array as a torch tensor or CuPy array (the
    same memory), and its library; or (numpy view, None) for a CPU array of another library.
    Raises TypeError for what flashkm cannot take."""
    if is_torch(x):
        return x, TorchArrays(x.device)
    if is_cupy(x):
        return x, CupyArrays(x.device.id)
    if hasattr(x, "__cuda_array_interface__"):  # Numba, ...: GPU memory
        torch, cupy = _gpu_libraries()
        if cupy is not None:
            a = cupy.asarray(x)  # in place; CuPy honours the interface's stream
            return a, CupyArrays(a.device.id)
        if torch is not None:
            t = torch.as_tensor(x)  # in place
            return t, TorchArrays(t.device)
        raise _no_carrier(x, "a CUDA array (__cuda_array_interface__)")
    if _is_capsule(x):
        prod = _CapsuleProducer(x)
        dev_type = prod._dev[0]
    elif hasattr(x, "__dlpack__"):
        prod = x
        try:
            dev_type = int(x.__dlpack_device__()[0])
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"flashkm: {type(x).__name__}.__dlpack_device__() failed: {e}")
    else:
        raise TypeError(f"flashkm: cannot take an object of type {type(x).__name__}")
    if dev_type in (_DL_CPU, _DL_CUDA_HOST):
        try:
            return np.from_dlpack(prod), None
        except (TypeError, BufferError, RuntimeError, ValueError) as e:
            raise TypeError(f"flashkm: NumPy cannot view this DLPack array ({e}); flashkm takes "
                            f"{_FLOAT_HINT} data") from e
    if dev_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        torch, cupy = _gpu_libraries()
        if torch is not None:
            t = torch.utils.dlpack.from_dlpack(x) if _is_capsule(x) else torch.from_dlpack(x)
            return t, TorchArrays(t.device)
        if cupy is not None:
            a = cupy.from_dlpack(prod)
            return a, CupyArrays(a.device.id)
        raise _no_carrier(x, "a CUDA array (DLPack)")
    raise TypeError(f"flashkm: DLPack device type {dev_type} of {type(x).__name__} is neither "
                    "the CPU nor CUDA")
