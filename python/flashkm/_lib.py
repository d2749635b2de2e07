"""ctypes binding of libflashkm (include/flashkm.h): structs, prototypes, contexts, errors.

Nothing here computes anything: every operation is one call into the C library. ctypes
releases the GIL for the duration of each call into a CDLL.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import threading
from ctypes import POINTER, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_void_p

# ------------------------------------------------------------------ enums (flashkm.h)
FKM_OK = 0
FKM_E_NULL = 1
FKM_E_INVALID = 2
FKM_E_NONFINITE = 3
FKM_E_DTYPE = 4
FKM_E_OVERFLOW = 5
FKM_E_NOMEM = 6
FKM_E_IO = 7
FKM_E_FORMAT = 8
FKM_E_UNSUPPORTED = 9
FKM_E_NO_DEVICE = 10
FKM_E_DEVICE = 11
FKM_E_CANCELLED = 12
FKM_E_INTERNAL = 13

FKM_F32, FKM_F16, FKM_BF16, FKM_F64 = 0, 1, 2, 3
METRICS = {"l2": 0, "cosine": 1, "dot": 2}
INITS = {"random": 0, "user": 1, "k-means++": 2}
EMPTY = {"relocate": 0, "keep": 1}
BACKENDS = {"auto": 0, "cpu": 1, "cuda": 2}
PRECISIONS = {"fast": 0, "f32": 1, "exact": 2}


# the structs live in _abi.py (no library load there: the benchmarks read them too)
from ._abi import PROGRESS_FN, IterInfo, Params, Result  # noqa: E402,F401


# ------------------------------------------------------------------ errors
class FlashKMError(Exception):
    """Base of the errors raised for a failed flashkm call; `status` is the fkm_status."""

    status = None
    status_name = None


class FlashKMValueError(FlashKMError, ValueError):
    """Invalid argument, NaN/Inf, unsupported dtype, size overflow."""


class FlashKMMemoryError(FlashKMError, MemoryError):
    """An allocation failed."""


class FlashKMRuntimeError(FlashKMError, RuntimeError):
    """No usable device, a device runtime failure, an unsupported option, an internal bug."""


_ERROR_TYPES = {
    FKM_E_INVALID: FlashKMValueError,
    FKM_E_NONFINITE: FlashKMValueError,
    FKM_E_DTYPE: FlashKMValueError,
    FKM_E_OVERFLOW: FlashKMValueError,
    FKM_E_NOMEM: FlashKMMemoryError,
}


# ------------------------------------------------------------------ loading
def _library_path() -> str:
    env = os.environ.get("FLASHKM_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("libflashkm.so", "libflashkm.dylib", "flashkm.dll"):
        p = os.path.join(here, name)
        if os.path.exists(p):
            return p
    raise ImportError(
        f"flashkm: libflashkm not found in {here} (the package was not built with its C "
        "library; install it with `pip install .` from the repository root, or point "
        "FLASHKM_LIBRARY at a libflashkm.so)")


def _load():
    lib = ctypes.CDLL(_library_path())
    P, I64, I32, F = c_void_p, c_int64, c_int32, POINTER(ctypes.c_float)
    protos = {
        "fkm_status_string": (c_char_p, [c_int]),
        "fkm_dtype_size": (c_size_t, [c_int]),
        "fkm_params_default": (Params, []),
        "fkm_create": (c_int, [POINTER(c_void_p), c_int]),
        "fkm_destroy": (None, [c_void_p]),
        "fkm_last_error": (c_char_p, [c_void_p]),
        "fkm_set_threads": (c_int, [c_void_p, I32]),
        "fkm_ctx_backend": (c_int, [c_void_p]),
        "fkm_backend_name": (c_char_p, [c_int]),
        "fkm_fit": (c_int, [P, POINTER(Params), P, c_int, I64, I64, I64, P, P, P,
                            POINTER(Result)]),
        "fkm_fit_batch": (c_int, [P, POINTER(Params), P, c_int, I64, I64, I64, I64, I64, P,
                                  P, P, P]),
        "fkm_kmeanspp": (c_int, [P, POINTER(Params), P, c_int, I64, I64, I64, P, P]),
        "fkm_exact_stats": (c_int, [P, POINTER(I64), POINTER(I64)]),
        "fkm_predict": (c_int, [P, c_int, P, c_int, I64, I64, I64, P, I64, P,
                                POINTER(c_double)]),
        "fkm_predict_precision": (c_int, [P, c_int, c_int, P, c_int, I64, I64, I64, P, I64, P,
                                          POINTER(c_double)]),
        "fkm_transform": (c_int, [P, c_int, P, c_int, I64, I64, I64, P, I64, P]),
        "fkm_score": (c_int, [P, c_int, P, c_int, I64, I64, I64, P, P, I64,
                              POINTER(c_double)]),
        "fkm_version": (c_char_p, []),
        "fkm_cpu_simd_level": (c_char_p, []),
        "fkm_cpu_max_threads": (c_int, []),
        "fkm_cuda_device_count": (c_int, []),
    }
    for name, (res, args) in protos.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    del F
    return lib


lib = _load()


def status_string(status: int) -> str:
    return lib.fkm_status_string(status).decode("utf-8", "replace")


def raise_for(status: int, message: str):
    """Raises the Python exception of a failed fkm_status, with the library's message."""
    if status == FKM_E_CANCELLED:
        raise KeyboardInterrupt(message)
    cls = _ERROR_TYPES.get(status, FlashKMRuntimeError)
    err = cls(message or status_string(status))
    err.status = status
    err.status_name = status_string(status)
    raise err


# ------------------------------------------------------------------ contexts
class Context:
    """One fkm_ctx, used by one thread at a time (borrowed from the pool)."""

    __slots__ = ("handle", "backend")

    def __init__(self, backend: int):
        h = c_void_p()
        s = lib.fkm_create(ctypes.byref(h), backend)
        if s != FKM_OK:
            name = {v: k for k, v in BACKENDS.items()}.get(backend, str(backend))
            hint = {FKM_E_UNSUPPORTED: " (this libflashkm was built without the CUDA backend)",
                    FKM_E_NO_DEVICE: " (no usable CUDA device on this machine)"}.get(s, "")
            raise_for(s, f"flashkm: cannot create a {name} context: {status_string(s)}{hint}")
        self.handle = h
        self.backend = lib.fkm_ctx_backend(h)

    def last_error(self) -> str:
        return lib.fkm_last_error(self.handle).decode("utf-8", "replace")

    def check(self, status: int):
        if status != FKM_OK:
            raise_for(status, self.last_error())

    def backend_name(self) -> str:
        return lib.fkm_backend_name(self.backend).decode()

    def destroy(self):
        if self.handle:
            lib.fkm_destroy(self.handle)
            self.handle = None


class _Pool:
    """Contexts are reused (a CUDA context is costly to make) but never shared between two
    threads at once: each call borrows a free one of its backend or makes a new one."""

    def __init__(self):
        self._lock = threading.Lock()
        self._free = {}
        self._all = []

    def acquire(self, backend: int) -> Context:
        with self._lock:
            free = self._free.get(backend)
            if free:
                return free.pop()
        ctx = Context(backend)
        with self._lock:
            self._all.append(ctx)
        return ctx

    def release(self, ctx: Context, backend: int):
        with self._lock:
            self._free.setdefault(backend, []).append(ctx)

    def close(self):
        with self._lock:
            for c in self._all:
                c.destroy()
            self._all.clear()
            self._free.clear()


_pool = _Pool()
atexit.register(_pool.close)


class context:
    """`with context("cpu") as ctx:` borrows a context of that device from the pool."""

    def __init__(self, device: str):
        if device not in BACKENDS:
            raise ValueError(f"device must be one of {sorted(BACKENDS)}, got {device!r}")
        self.backend = BACKENDS[device]
        self.ctx = None

    def __enter__(self) -> Context:
        self.ctx = _pool.acquire(self.backend)
        return self.ctx

    def __exit__(self, *exc):
        _pool.release(self.ctx, self.backend)
        self.ctx = None
        return False


def default_params() -> Params:
    return lib.fkm_params_default()


def version() -> str:
    return lib.fkm_version().decode()


def build_info() -> dict:
    """Facts about the library and the machine (as `flashkm info`)."""
    return {
        "version": version(),
        "library": _library_path(),
        "cpu_simd": lib.fkm_cpu_simd_level().decode(),
        "cpu_max_threads": lib.fkm_cpu_max_threads(),
        "cuda_devices": lib.fkm_cuda_device_count(),
    }
