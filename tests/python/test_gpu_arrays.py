"""Arrays of other libraries: DLPack producers and capsules, torch tensors (CPU and CUDA), CuPy.

The CPU tests run everywhere (NumPy's own DLPack; torch CPU tensors when torch is installed).
The CUDA tests need torch (or CuPy) with a CUDA device and a libflashkm built with the CUDA
backend; they are skipped otherwise, and run by scripts/gpu-check.sh's python stage.

References: the same fit on NumPy input through the CPU backend (itself checked against
scikit-learn in test_sklearn_parity.py), and NumPy float64 argmins against the returned
centroids. The data are well-separated blobs, so every label is tie-free.
"""
import ctypes
import os
import signal
import threading
import time

import numpy as np
import pytest

import flashkm
from flashkm import _lib

try:
    import torch
except ImportError:
    torch = None
try:
    import cupy
except Exception:  # noqa: BLE001 - ImportError, or a CuPy without a usable CUDA
    cupy = None

HAVE_CUDA_LIB = flashkm.build_info()["cuda_devices"] > 0
TORCH_CUDA = torch is not None and torch.cuda.is_available() and HAVE_CUDA_LIB


def _cupy_gpus():
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver, no device
        return 0


CUPY_CUDA = cupy is not None and HAVE_CUDA_LIB and _cupy_gpus() > 0
need_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
need_torch_cuda = pytest.mark.skipif(not TORCH_CUDA, reason="needs torch with a CUDA device "
                                     "and a libflashkm built with CUDA")
need_cupy_cuda = pytest.mark.skipif(not CUPY_CUDA, reason="needs CuPy with a CUDA device and "
                                    "a libflashkm built with CUDA")


def _init(X, y, k):
    return np.stack([X[np.flatnonzero(y == c)[0]] for c in range(k)])


def _argmin_fp64(X, C):
    X, C = np.asarray(X, np.float64), np.asarray(C, np.float64)
    return ((X[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)


def _np(t):
    """A torch tensor / CuPy array as NumPy (test-side only)."""
    if torch is not None and isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    if cupy is not None and isinstance(t, cupy.ndarray):
        return cupy.asnumpy(t)
    return np.asarray(t)


class _Producer:
    """A DLPack producer that is neither NumPy, torch nor CuPy (like a JAX or Numba array, on
    the CPU or a GPU): only __dlpack__ and __dlpack_device__, forwarded."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kw):
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


@pytest.fixture
def spy(monkeypatch):
    """Records the X pointer and dtype code of every fkm_fit / fkm_fit_batch / fkm_predict."""
    calls = []
    for name, xi in (("fkm_fit", 2), ("fkm_fit_batch", 2), ("fkm_predict", 2)):
        real = getattr(_lib.lib, name)

        def wrap(*args, _real=real, _name=name, _xi=xi):
            calls.append((_name, args[_xi], args[_xi + 1]))
            return _real(*args)
        monkeypatch.setattr(_lib.lib, name, wrap)
    return calls


# ------------------------------------------------------------------ GIL, progress callback
def test_library_is_a_cdll_that_releases_the_gil():
    # ctypes releases the GIL around calls through a CDLL; a PyDLL would hold it
    assert isinstance(_lib.lib, ctypes.CDLL) and not isinstance(_lib.lib, ctypes.PyDLL)


def test_other_threads_run_during_a_fit(monkeypatch):
    X = np.random.RandomState(0).rand(50_000, 32).astype(np.float32)
    t0 = time.perf_counter()
    flashkm.kmeans(X, 256, niter=2, tol=0, init="random", device="cpu")
    niter = int(min(200, max(10, 0.1 / ((time.perf_counter() - t0) / 2))))  # about 0.1 s
    call = []
    real = _lib.lib.fkm_fit

    def timed(*args):  # the C call's own start and end
        call.append(time.perf_counter())
        try:
            return real(*args)
        finally:
            call.append(time.perf_counter())
    monkeypatch.setattr(_lib.lib, "fkm_fit", timed)
    # in a thread that is not the main one, with verbose=0: no progress callback, so the fit
    # is one C call that never comes back to Python until it ends
    t = threading.Thread(target=flashkm.kmeans, args=(X, 256),
                         kwargs=dict(niter=niter, tol=0, init="random", device="cpu"))
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())  # needs the GIL
        time.sleep(0.001)
    t.join()
    start, end = call
    if end - start < 0.02:
        pytest.skip(f"the fit took {1e3 * (end - start):.1f} ms, too short to tell")
    inside = sum(start < tk < end for tk in ticks)
    # if the call held the GIL, this thread could not run a line of Python during it
    # (one or two ticks may fall between `start` and the call itself)
    assert inside >= 5, (inside, end - start)


def test_callback_sees_every_iteration_and_can_stop_the_fit(blobs):
    X, _ = blobs
    seen = []
    c, lab, info = flashkm.kmeans(X, 12, seed=0, niter=50, device="cpu", return_info=True,
                                  callback=seen.append)
    assert [s["iter"] for s in seen] == list(range(1, info["n_iter"] + 1))
    np.testing.assert_allclose([s["inertia"] for s in seen], info["inertia_per_iter"])

    class Stop(Exception):
        pass

    def stop(s):
        if s["iter"] == 2:
            raise Stop
    with pytest.raises(Stop):
        flashkm.kmeans(X, 12, seed=0, niter=50, device="cpu", callback=stop)


def test_numpy_input_imports_no_array_library():
    import subprocess
    import sys
    code = ("import sys, numpy as np, flashkm\n"
            "x = np.random.RandomState(0).rand(200, 4)\n"
            "flashkm.kmeans(x, 3, device='cpu')\n"
            "flashkm.KMeans(3, device='cpu').fit(x).predict(x)\n"
            "print(sorted(m for m in ('torch', 'cupy', 'jax') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ DLPack on the CPU
def test_numpy_dlpack_producer_and_capsule(blobs, spy):
    X, y = blobs
    X32 = X.astype(np.float32)
    init = _init(X, y, 12)
    ref_c, ref_l = flashkm.kmeans(X32, 12, init=init, device="cpu")
    np.testing.assert_array_equal(ref_l, _argmin_fp64(X32, ref_c))
    wide = np.zeros((len(X), 24), np.float32)
    wide[:, :16] = X32
    for x in (_Producer(X32), X32.__dlpack__(), _Producer(wide[:, :16])):
        spy.clear()
        c, lab = flashkm.kmeans(x, 12, init=init, device="cpu")
        assert isinstance(c, np.ndarray) and isinstance(lab, np.ndarray)
        np.testing.assert_array_equal(lab, ref_l)
        np.testing.assert_array_equal(c, ref_c)
        # used in place: the C call got the producer's own memory
        assert spy[0][1] in (X32.ctypes.data, wide.ctypes.data)
    km = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(_Producer(X32))
    np.testing.assert_array_equal(km.labels_, ref_l)
    np.testing.assert_array_equal(km.predict(_Producer(X32)), ref_l)
    # a capsule can be taken once (DLPack's rule)
    cap = X32.__dlpack__()
    flashkm.kmeans(cap, 12, init=init, device="cpu")
    with pytest.raises(TypeError, match="capsule"):
        flashkm.kmeans(cap, 12, init=init, device="cpu")


def test_numpy_dlpack_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        flashkm.kmeans(_Producer(np.zeros(10, np.float32)), 2, device="cpu")
    class Broken(_Producer):
        def __dlpack_device__(self):
            raise RuntimeError("no device")
    with pytest.raises(TypeError, match="no device"):
        flashkm.kmeans(Broken(np.zeros((4, 2), np.float32)), 2, device="cpu")
    # a CPU producer is a NumPy view from then on: NumPy's rules (complex refused)
    with pytest.raises(ValueError, match="complex"):
        flashkm.kmeans(_Producer(np.zeros((4, 2), np.complex64)), 2, device="cpu")


# ------------------------------------------------------------------ torch on the CPU
@need_torch
@pytest.mark.parametrize("dt", ["float32", "float16", "float64", "bfloat16"])
def test_torch_cpu_tensors(blobs, dt, spy):
    X, y = blobs
    tdt = getattr(torch, dt)
    x = torch.from_numpy(X).to(tdt)
    xv = x.float().numpy().astype(np.float64)  # the values the library reads
    init = _init(X, y, 12)
    c, lab = flashkm.kmeans(x, 12, init=init, device="cpu")
    assert isinstance(c, torch.Tensor) and isinstance(lab, torch.Tensor)
    assert c.device.type == "cpu" and c.dtype == torch.float32 and lab.dtype == torch.int32
    assert spy[-1][1] == x.data_ptr()  # in place
    np.testing.assert_array_equal(_np(lab), _argmin_fp64(xv, _np(c)))
    if dt != "bfloat16":  # NumPy has the same dtype: the same fit
        rc, rl = flashkm.kmeans(x.numpy(), 12, init=init, device="cpu")
        np.testing.assert_array_equal(_np(c), rc)
        np.testing.assert_array_equal(_np(lab), rl)
    km = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(x)
    assert isinstance(km.labels_, torch.Tensor) and isinstance(km.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(_np(km.labels_), _argmin_fp64(xv, km.cluster_centers_))
    p = km.predict(x)
    assert isinstance(p, torch.Tensor)
    np.testing.assert_array_equal(_np(p), _np(km.labels_))
    t = km.transform(x)
    assert isinstance(t, torch.Tensor) and t.shape == (len(X), 12)
    ref_t = np.sqrt(((xv[:, None] - km.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(_np(t).astype(np.float64), ref_t, rtol=1e-4, atol=1e-3)
    assert km.score(x) == pytest.approx(-km.inertia_, rel=1e-6)


@need_torch
def test_torch_cpu_errors_and_views(blobs):
    X, y = blobs
    with pytest.raises(TypeError, match="int64"):
        flashkm.kmeans(torch.from_numpy(np.round(X).astype(np.int64)), 3, device="cpu")
    with pytest.raises(ValueError, match="2-D"):
        flashkm.KMeans(3, device="cpu").fit(torch.zeros(10))
    x = torch.from_numpy(X.astype(np.float32))
    init = _init(X, y, 12)
    rc, rl = flashkm.kmeans(X.astype(np.float32), 12, init=init, device="cpu")
    c, lab = flashkm.kmeans(x.t().contiguous().t(), 12, init=torch.from_numpy(init),
                            device="cpu")  # last axis strided: copied by torch
    np.testing.assert_array_equal(_np(lab), rl)
    np.testing.assert_array_equal(_np(c), rc)
    km = flashkm.KMeans(12, init=init, device="cpu").fit(x)
    with pytest.raises(ValueError, match="features"):
        km.predict(x[:, :5])


# ------------------------------------------------------------------ torch on a GPU
def _cuda_blobs(blobs, tdt):
    X, y = blobs
    x = torch.from_numpy(X.astype(np.float32)).to("cuda").to(tdt)
    # the values the library reads, exactly (f16/bf16 -> f32; f64 as it is)
    xv = x.to(torch.float64 if tdt == torch.float64 else torch.float32).cpu().numpy()
    return x, xv, _init(X, y, 12)


@need_torch_cuda
@pytest.mark.parametrize("dt", ["float32", "float16", "bfloat16", "float64"])
def test_torch_cuda_functional(blobs, dt, spy):
    tdt = getattr(torch, dt)
    x, xv, init = _cuda_blobs(blobs, tdt)
    # the CPU backend on the same values (f32 input: the same f32 arithmetic)
    rc, rl = flashkm.kmeans(xv.astype(np.float64) if dt == "float64" else xv, 12, init=init,
                            device="cpu", precision="f32")
    for precision in ("f32", "fast"):
        spy.clear()
        c, lab, info = flashkm.kmeans(x, 12, init=init, precision=precision, return_info=True)
        assert info["backend"] == "cuda"
        assert spy[0][1] == x.data_ptr()  # X was used in place on the GPU
        assert c.device == x.device and lab.device == x.device
        assert c.dtype == torch.float32 and lab.dtype == torch.int32
        np.testing.assert_array_equal(_np(lab), rl)
        np.testing.assert_array_equal(_np(lab), _argmin_fp64(xv, _np(c)))
        np.testing.assert_allclose(_np(c), rc, rtol=1e-5, atol=1e-5)


@need_torch_cuda
def test_torch_cuda_estimator(blobs, spy):
    x, xv, init = _cuda_blobs(blobs, torch.float16)
    ref = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(xv)
    spy.clear()  # the reference fit above is recorded too
    km = flashkm.KMeans(12, init=torch.from_numpy(init).cuda(), tol=0, precision="f32")
    lab = km.fit_predict(x)
    assert km._device_used == "cuda" and spy[0][1] == x.data_ptr()
    assert isinstance(lab, torch.Tensor) and lab.device == x.device and lab is km.labels_
    assert isinstance(km.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(_np(lab), ref.labels_)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=1e-5)
    p = km.predict(x)
    assert p.device == x.device
    np.testing.assert_array_equal(_np(p), ref.labels_)
    np.testing.assert_array_equal(km.predict(xv), ref.labels_)  # NumPy in: NumPy out
    t = km.transform(x)
    assert t.device == x.device and t.dtype == torch.float32
    np.testing.assert_allclose(_np(t), ref.transform(xv), rtol=1e-4, atol=1e-3)
    assert km.score(x) == pytest.approx(ref.score(xv), rel=1e-5)
    w = torch.rand(x.shape[0], device="cuda", dtype=torch.float64) + 0.5
    kw = flashkm.KMeans(12, init=init, tol=0, precision="f32").fit(x, sample_weight=w)
    rw = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(xv, sample_weight=_np(w))
    np.testing.assert_array_equal(_np(kw.labels_), rw.labels_)
    np.testing.assert_allclose(kw.cluster_centers_, rw.cluster_centers_, rtol=1e-5, atol=1e-5)


@need_torch_cuda
def test_torch_cuda_batch(blobs, spy):
    X, y = blobs
    B = 3
    rng = np.random.RandomState(0)
    perms = [rng.permutation(len(X)) for _ in range(B)]
    Xb = np.stack([X[p] for p in perms]).astype(np.float32)
    init = np.stack([_init(Xb[b], y[perms[b]], 12) for b in range(B)])
    x = torch.from_numpy(Xb).cuda()
    c, lab, infos = flashkm.kmeans(x, 12, init=init, precision="f32", return_info=True)
    assert spy[0][0] == "fkm_fit_batch" and spy[0][1] == x.data_ptr()
    assert c.shape == (B, 12, 16) and lab.shape == (B, len(X)) and c.device == x.device
    assert all(i["backend"] == "cuda" for i in infos)
    rc, rl = flashkm.kmeans(Xb, 12, init=init, device="cpu")
    np.testing.assert_array_equal(_np(lab), rl)
    np.testing.assert_allclose(_np(c), rc, rtol=1e-5, atol=1e-5)
    for b in range(B):
        np.testing.assert_array_equal(_np(lab[b]), _argmin_fp64(Xb[b], _np(c[b])))
    # n_init > 1: problem by problem, into slices of the outputs on the device
    c2, l2 = flashkm.kmeans(x[:2], 12, seed=4, n_init=2, precision="f32")
    assert c2.device == x.device
    cb, lb = flashkm.kmeans(x[1], 12, seed=5, n_init=2, precision="f32")
    np.testing.assert_array_equal(_np(c2[1]), _np(cb))
    np.testing.assert_array_equal(_np(l2[1]), _np(lb))


@need_torch_cuda
def test_torch_cuda_views_and_errors(blobs, spy):
    x, xv, init = _cuda_blobs(blobs, torch.float32)
    rc, rl = flashkm.kmeans(xv, 12, init=init, device="cpu")
    wide = torch.zeros((x.shape[0], 40), device="cuda")
    wide[:, 8:24] = x
    spy.clear()
    c, lab = flashkm.kmeans(wide[:, 8:24], 12, init=init, precision="f32")  # row stride 40
    assert spy[0][1] == wide[:, 8:24].data_ptr()  # in place, no copy
    np.testing.assert_array_equal(_np(lab), rl)
    xt = x.t().contiguous().t()  # last axis strided: torch copies it on the GPU
    assert xt.stride() == (1, x.shape[0])
    c, lab = flashkm.kmeans(xt, 12, init=init, precision="f32")
    assert lab.device == x.device
    np.testing.assert_array_equal(_np(lab), rl)
    with pytest.raises(TypeError, match="int32"):
        flashkm.kmeans(x.to(torch.int32), 12)
    with pytest.raises(ValueError, match="device='cpu'"):
        flashkm.kmeans(x, 12, device="cpu")
    with pytest.raises(ValueError, match="device='cpu'"):
        flashkm.KMeans(12, device="cpu").fit(x)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.clone()
        bad[5, 2] = float("nan")
        flashkm.kmeans(bad, 12, init=init)


@need_torch_cuda
def test_torch_cuda_dlpack_capsule(blobs):
    x, xv, init = _cuda_blobs(blobs, torch.float16)
    rc, rl = flashkm.kmeans(xv, 12, init=init, device="cpu")
    c, lab = flashkm.kmeans(torch.utils.dlpack.to_dlpack(x), 12, init=init, precision="f32")
    assert isinstance(lab, torch.Tensor) and lab.device == x.device
    np.testing.assert_array_equal(_np(lab), rl)


@need_torch_cuda
def test_other_gpu_producers(blobs, spy):
    """A GPU array that is neither torch nor CuPy: only __cuda_array_interface__, or only
    DLPack (as Numba or JAX arrays are); used in place, outputs of the carrier library."""
    x, xv, init = _cuda_blobs(blobs, torch.float16)
    rc, rl = flashkm.kmeans(xv, 12, init=init, device="cpu")

    class CAI:
        def __init__(self, t):
            self.t = t

        @property
        def __cuda_array_interface__(self):
            return self.t.__cuda_array_interface__

    for obj in (CAI(x), _Producer(x)):
        spy.clear()
        c, lab = flashkm.kmeans(obj, 12, init=init, precision="f32")
        assert spy[0][1] == x.data_ptr()
        assert _np(lab).shape == (x.shape[0],)
        np.testing.assert_array_equal(_np(lab), rl)
        np.testing.assert_allclose(_np(c), rc, rtol=1e-5, atol=1e-5)
    km = flashkm.KMeans(12, init=init, tol=0, precision="f32").fit(_Producer(x))
    np.testing.assert_array_equal(_np(km.labels_), rl)


@need_torch_cuda
@pytest.mark.skipif(not TORCH_CUDA or torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_torch_cuda_second_device(blobs):
    X, y = blobs
    x = torch.from_numpy(X.astype(np.float32)).to("cuda:1")
    init = _init(X, y, 12)
    rc, rl = flashkm.kmeans(X.astype(np.float32), 12, init=init, device="cpu")
    c, lab = flashkm.kmeans(x, 12, init=init, precision="f32")
    assert lab.device == x.device and c.device == x.device
    np.testing.assert_array_equal(_np(lab), rl)


@need_torch_cuda
def test_torch_cuda_verbose_and_keyboard_interrupt(blobs, capsys):
    x, xv, init = _cuda_blobs(blobs, torch.float16)
    c, lab, info = flashkm.kmeans(x, 12, init=init, verbose=1, return_info=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("iter")]
    assert len(lines) == info["n_iter"] and info["backend"] == "cuda"
    if threading.current_thread() is not threading.main_thread():
        return
    # a long GPU fit (uniform data, K = 4096, tol = 0: hundreds of iterations of ms each),
    # SIGINT 0.5 s in: KeyboardInterrupt between iterations
    g = torch.Generator(device="cuda")
    g.manual_seed(0)
    big = torch.rand((2_000_000, 64), generator=g, device="cuda").half()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        flashkm.kmeans(big, 4096, niter=100000, init="random", seed=0)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    if outcome == "finished":
        pytest.skip(f"the fit converged in {time.perf_counter() - t0:.2f} s, before the signal")
    assert time.perf_counter() - t0 < 60


# ------------------------------------------------------------------ CuPy
@need_cupy_cuda
def test_cupy_arrays(blobs, spy):
    X, y = blobs
    init = _init(X, y, 12)
    xh = X.astype(np.float16)
    x = cupy.asarray(xh)
    rc, rl = flashkm.kmeans(xh, 12, init=init, device="cpu")
    c, lab = flashkm.kmeans(x, 12, init=init, precision="f32")
    assert spy[-1][1] == x.data.ptr
    assert isinstance(c, cupy.ndarray) and isinstance(lab, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(lab), rl)
    km = flashkm.KMeans(12, init=init, tol=0, precision="f32").fit(x)
    assert isinstance(km.labels_, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(km.predict(x)), rl)
    c, lab = flashkm.kmeans(cupy.asfortranarray(x), 12, init=init, precision="f32")
    np.testing.assert_array_equal(cupy.asnumpy(lab), rl)
