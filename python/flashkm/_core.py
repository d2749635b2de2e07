"""The operations: one C call each, with progress, Ctrl-C and errors handled.

Outputs are allocated here, before the call, as arrays of the input's kind on the input's
device (NumPy for host input; for a torch tensor or CuPy array, one of those on its device),
and the C library writes them in place, device pointers included. A call on CUDA memory runs
with the array's device made current and its work synchronised before and after (the library
works on a stream of its own). ctypes releases the GIL for the duration of each C call.
"""
from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading

import numpy as np

from . import _lib
from ._input import Buf, Matrix


def _ptr(a):
    if a is None:
        return None
    if isinstance(a, Buf):
        return a.ptr
    return a.ctypes.data


def _alloc(X: Matrix, shape, kind, host=False) -> Buf:
    """An output of X's kind on X's device (NumPy when host or X is NumPy)."""
    if host or X.arrays is None:
        a = np.empty(shape, dtype={"f32": np.float32, "i32": np.int32, "f64": np.float64}[kind])
        return Buf(a, a.ctypes.data)
    obj, ptr = X.arrays.empty(shape, kind)
    return Buf(obj, ptr)


@contextlib.contextmanager
def _on_device(X: Matrix):
    """Around a C call on X: X's CUDA device is the current one (the library runs on the
    calling thread's current device), and the array library's queued work (which wrote X,
    or last used the outputs' memory) is finished before, the library's after."""
    arrays = X.arrays
    if arrays is None or not arrays.is_cuda:
        yield
        return
    with arrays.scope():
        arrays.sync()
        yield
        arrays.sync()


class _Progress:
    """The C progress callback of one fit: prints per-iteration lines when verbose, and stops
    the fit (non-zero return -> FKM_E_CANCELLED) when SIGINT arrived. The SIGINT handler is
    installed for the duration of the fit, in the main thread only (where Python runs signal
    handlers) and only when Python's default handler is in place."""

    def __init__(self, verbose=0, n_init=1, out=None, callback=None):
        self.verbose = verbose
        self.callback = callback
        self.n_init = n_init
        self.out = out
        self.interrupted = False
        self.error = None
        self.run = 0
        self._old = None
        self._installed = False
        self.cfunc = None

    # SIGINT -------------------------------------------------------------
    def _on_sigint(self, signum, frame):
        self.interrupted = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self._old = signal.signal(signal.SIGINT, self._on_sigint)
                    self._installed = True
            except (ValueError, OSError):  # not the main interpreter, ...
                self._installed = False
        if self._installed or self.verbose or self.callback is not None:
            self.cfunc = _lib.PROGRESS_FN(self._callback)
        return self

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False
        return False

    def attach(self, params):
        if self.cfunc is not None:
            params.progress = self.cfunc
            params.progress_user = None

    # the callback (runs with the GIL re-acquired by ctypes) ------------------
    def _print(self, info):
        out = self.out or sys.stdout
        if info.iter == 1 and self.n_init > 1:
            self.run += 1
            print(f"run {self.run}/{self.n_init}", file=out)
        print(f"iter {info.iter:4d}  inertia {info.inertia:.6e}  shift {info.rel_shift:.3e}  "
              f"changed {info.n_changed}  empty {info.n_empty}  {info.seconds * 1e3:.1f} ms",
              file=out, flush=True)

    def _callback(self, info_p, user):
        try:
            if self.verbose:
                self._print(info_p.contents)
            if self.callback is not None:
                i = info_p.contents
                self.callback({name: getattr(i, name) for name, _t in i._fields_})
        except BaseException as e:  # noqa: BLE001 - reported after the C call returns
            self.error = e
            return 1
        return 1 if self.interrupted else 0

    def finish(self, status, ctx):
        """After the C call: re-raise a callback error, honour Ctrl-C, map the status."""
        if self.error is not None:
            raise self.error
        if self.interrupted:
            raise KeyboardInterrupt("flashkm: " + (ctx.last_error() if status else "interrupted"))
        ctx.check(status)


def make_params(*, k, max_iter, tol, init, init_centroids, seed, metric, empty,
                precision, n_init):
    p = _lib.default_params()
    p.k = int(k)
    p.max_iter = int(max_iter)
    p.tol = float(tol)
    p.init = init
    p.init_centroids = init_centroids.ctypes.data if init_centroids is not None else None
    p.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    p.metric = metric
    p.empty = empty
    p.precision = precision
    p.n_init = int(n_init)
    return p


def _exact_stats(ctx):
    """(point assignments made in exact mode, how many were re-checked) of ctx's last call."""
    points, rechecked = ctypes.c_int64(0), ctypes.c_int64(0)
    ctx.check(_lib.lib.fkm_exact_stats(ctx.handle, ctypes.byref(points), ctypes.byref(rechecked)))
    return points.value, rechecked.value


def _info(res, ctx):
    points, rechecked = _exact_stats(ctx)
    return {
        "exact_points": points,
        "exact_rechecked": rechecked,
        "inertia": res.inertia,
        "n_iter": res.n_iter,
        "converged": bool(res.converged),
        "inertia_per_iter": np.ctypeslib.as_array(res.inertia_per_iter, (res.n_iter,)).copy()
        if res.n_iter > 0 and res.inertia_per_iter else np.empty(0),
        "backend": ctx.backend_name(),
    }


def fit(device, params, X: Matrix, weights, *, verbose=0, callback=None, centroids_host=False,
        out=None):
    """fkm_fit: returns (centroids (k,d) f32, labels (n,) int32, fkm_result as a dict).
    The outputs are of X's kind on X's device (centroids NumPy when centroids_host), or
    written into out = (centroids Buf, labels Buf)."""
    k, n, d = params.k, X.n, X.d
    cent, labels = out if out is not None else (
        _alloc(X, (k, d), "f32", host=centroids_host), _alloc(X, (n,), "i32"))
    res = _lib.Result()
    with _lib.context(device) as ctx, \
            _Progress(verbose, params.n_init, callback=callback) as prog:
        prog.attach(params)
        with _on_device(X):
            s = _lib.lib.fkm_fit(ctx.handle, ctypes.byref(params), X.ptr, X.dtype, n, d, X.ld,
                                 _ptr(weights), cent.ptr, labels.ptr, ctypes.byref(res))
        prog.finish(s, ctx)
        info = _info(res, ctx)
    return cent.obj, labels.obj, info


def fit_batch(device, params, X: Matrix, weights):
    """fkm_fit_batch: (B,k,d) f32 centroids, (B,n) int32 labels, list of B result dicts,
    of X's kind on X's device."""
    B, k, n, d = X.batch, params.k, X.n, X.d
    cent, labels = _alloc(X, (B, k, d), "f32"), _alloc(X, (B, n), "i32")
    res = (_lib.Result * max(B, 1))()
    with _lib.context(device) as ctx:
        with _on_device(X):
            s = _lib.lib.fkm_fit_batch(ctx.handle, ctypes.byref(params), X.ptr, X.dtype, B, n,
                                       d, X.ld, X.bstride, _ptr(weights), cent.ptr, labels.ptr,
                                       res)
        ctx.check(s)
        infos = [{"inertia": r.inertia, "n_iter": r.n_iter, "converged": bool(r.converged),
                  "backend": ctx.backend_name()} for r in res[:B]]
    return cent.obj, labels.obj, infos


def kmeanspp(device, params, X: Matrix, weights):
    """fkm_kmeanspp: (k,d) f32 NumPy centroids."""
    cent = np.empty((params.k, X.d), dtype=np.float32)
    with _lib.context(device) as ctx:
        with _on_device(X):
            s = _lib.lib.fkm_kmeanspp(ctx.handle, ctypes.byref(params), X.ptr, X.dtype, X.n,
                                      X.d, X.ld, _ptr(weights), cent.ctypes.data)
        ctx.check(s)
    return cent


def predict(device, metric, X: Matrix, centroids, precision=0):
    """fkm_predict (fkm_predict_precision for a precision other than fast): (labels int32 of
    X's kind, inertia with unit weights). centroids: (k,d) f32 NumPy."""
    labels = _alloc(X, (X.n,), "i32")
    inertia = ctypes.c_double()
    with _lib.context(device) as ctx:
        with _on_device(X):
            args = (X.ptr, X.dtype, X.n, X.d, X.ld, centroids.ctypes.data, centroids.shape[0],
                    labels.ptr, ctypes.byref(inertia))
            if precision:
                s = _lib.lib.fkm_predict_precision(ctx.handle, metric, precision, *args)
            else:
                s = _lib.lib.fkm_predict(ctx.handle, metric, *args)
        ctx.check(s)
    return labels.obj, inertia.value


def transform(device, metric, X: Matrix, centroids):
    """fkm_transform: (n,k) f32 of X's kind (l2: squared distances; cosine: 1 - cos; dot:
    x.c)."""
    out = _alloc(X, (X.n, centroids.shape[0]), "f32")
    with _lib.context(device) as ctx:
        with _on_device(X):
            s = _lib.lib.fkm_transform(ctx.handle, metric, X.ptr, X.dtype, X.n, X.d, X.ld,
                                       centroids.ctypes.data, centroids.shape[0], out.ptr)
        ctx.check(s)
    return out.obj


def score(device, metric, X: Matrix, weights, centroids):
    """fkm_score: the weighted inertia."""
    inertia = ctypes.c_double()
    with _lib.context(device) as ctx:
        with _on_device(X):
            s = _lib.lib.fkm_score(ctx.handle, metric, X.ptr, X.dtype, X.n, X.d, X.ld,
                                   _ptr(weights), centroids.ctypes.data, centroids.shape[0],
                                   ctypes.byref(inertia))
        ctx.check(s)
    return inertia.value
