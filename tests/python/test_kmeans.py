import io
import os
import pickle
import signal
import threading
import time
from contextlib import redirect_stdout

import numpy as np
import pytest
from sklearn.base import clone

import flashkm


def _init(X, y, k):
    return np.stack([X[np.flatnonzero(y == c)[0]] for c in range(k)])


# ------------------------------------------------------------------ estimator basics
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes(blobs, dtype):
    X, y = blobs
    init = _init(X, y, 12)
    ref = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(X)
    Xd = X.astype(dtype)
    km = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(Xd)
    assert km.labels_.dtype == np.int32 and km.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(km.labels_, ref.labels_)  # well separated: same labels
    rtol = 1e-2 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=rtol, atol=rtol)
    t = km.transform(Xd)
    assert t.shape == (len(X), 12)
    assert t.dtype == (np.float64 if dtype == np.float64 else np.float32)


def test_integer_and_array_like_inputs(blobs):
    X, y = blobs
    Xi = np.round(X).astype(np.int64)
    km = flashkm.KMeans(12, random_state=0, device="cpu").fit(Xi)
    km2 = flashkm.KMeans(12, random_state=0, device="cpu").fit(Xi.tolist())
    np.testing.assert_array_equal(km.labels_, km2.labels_)


def test_strided_rows_are_not_copied(blobs):
    X, y = blobs
    wide = np.zeros((len(X), 40), dtype=np.float32)
    wide[:, 5:21] = X
    view = wide[:, 5:21]                          # row stride 40, contiguous rows
    from flashkm._input import as_matrix
    m = as_matrix(view)
    assert m.ld == 40 and m.array is view and m.ptr == view.ctypes.data
    every_other = wide[::2, 5:21]                 # row stride 80
    assert as_matrix(every_other).ld == 80
    assert as_matrix(np.asfortranarray(X)).ld == 16          # last axis strided: copied
    init = _init(X, y, 12)
    a = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(view)
    b = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(np.ascontiguousarray(view))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(np.asfortranarray(view))
    np.testing.assert_array_equal(a.labels_, c.labels_)


def test_fit_predict_transform_score(blobs):
    X, y = blobs
    km = flashkm.KMeans(12, random_state=0, device="cpu")
    labels = km.fit_predict(X)
    km2 = flashkm.KMeans(12, random_state=0, device="cpu").fit(X)
    np.testing.assert_array_equal(labels, km2.labels_)
    np.testing.assert_array_equal(km2.predict(X), km2.labels_)
    t = km2.transform(X)
    ref = np.sqrt(((X[:, None, :] - km2.cluster_centers_[None].astype(np.float64)) ** 2)
                  .sum(-1))
    assert t.shape == (len(X), 12)
    np.testing.assert_allclose(t, ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(t.argmin(1), km2.labels_)
    np.testing.assert_allclose(km2.fit_transform(X), t, rtol=1e-6)
    assert km2.score(X) == pytest.approx(-km2.inertia_, rel=1e-9)
    assert km2.inertia_ == pytest.approx((ref.min(1) ** 2).sum(), rel=1e-5)
    assert km2.n_iter_ >= 1 and km2.n_features_in_ == 16
    assert list(km2.get_feature_names_out()) == [f"kmeans{i}" for i in range(12)]


def test_sample_weight_integer_equals_repeated_rows(blobs):
    X, y = blobs
    w = np.random.RandomState(0).randint(0, 4, len(X))
    w[np.flatnonzero(y == 0)[0]] = 1   # keep the init rows
    init = _init(X, y, 12)
    a = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(X, sample_weight=w)
    rep = np.repeat(X, w, axis=0)
    b = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(rep)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.repeat(a.labels_, w), b.labels_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)
    assert a.score(X, sample_weight=w) == pytest.approx(b.score(rep), rel=1e-9)
    # k-means++ draws by weight: the same as repeating rows, row order being kept
    c = flashkm.KMeans(12, random_state=5, device="cpu").fit(X, sample_weight=w)
    d = flashkm.KMeans(12, random_state=5, device="cpu").fit(rep)
    np.testing.assert_allclose(c.cluster_centers_, d.cluster_centers_, rtol=1e-6, atol=1e-6)


def test_random_state_and_n_init(blobs):
    X, _ = blobs
    a = flashkm.KMeans(12, random_state=3, device="cpu").fit(X)
    b = flashkm.KMeans(12, random_state=3, device="cpu").fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = flashkm.KMeans(12, random_state=np.random.RandomState(1), device="cpu").fit(X)
    d = flashkm.KMeans(12, random_state=np.random.RandomState(1), device="cpu").fit(X)
    np.testing.assert_array_equal(c.cluster_centers_, d.cluster_centers_)
    flashkm.KMeans(12, random_state=np.random.default_rng(0), device="cpu").fit(X)
    # int random_state S == the library's seed S (the CLI's --seed S), as in kmeans()
    e, _ = flashkm.kmeans(X, 12, seed=3, niter=300, tol=1e-4, device="cpu")
    np.testing.assert_array_equal(a.cluster_centers_, e)
    # n_init: best of R runs == the best single run among seeds S..S+R-1
    r = flashkm.KMeans(12, n_init=4, random_state=10, init="random", device="cpu").fit(X)
    singles = [flashkm.KMeans(12, init="random", n_init=1, random_state=10 + i,
                              device="cpu").fit(X) for i in range(4)]
    assert r.inertia_ == min(s.inertia_ for s in singles)
    with pytest.warns(RuntimeWarning, match="only one init"):
        flashkm.KMeans(12, init=X[:12], n_init=3, device="cpu").fit(X)


def test_metrics(blobs):
    X, _ = blobs
    for metric in ("cosine", "dot"):
        km = flashkm.KMeans(5, metric=metric, random_state=0, device="cpu").fit(X)
        t = km.transform(X)
        best = t.argmax(1) if metric == "dot" else t.argmin(1)
        assert (best == km.labels_).mean() > 0.99
        np.testing.assert_array_equal(km.predict(X), km.labels_)


def test_get_set_params_clone_pickle(blobs):
    X, _ = blobs
    km = flashkm.KMeans(5, init="random", metric="cosine", device="cpu", verbose=0)
    p = km.get_params()
    assert p["n_clusters"] == 5 and p["init"] == "random" and p["metric"] == "cosine"
    assert set(p) == {"n_clusters", "init", "n_init", "max_iter", "tol", "random_state",
                      "metric", "device", "precision", "empty", "verbose"}
    km.set_params(n_clusters=6, tol=0.0)
    assert km.n_clusters == 6 and km.tol == 0.0
    c = clone(km)
    assert c.get_params() == km.get_params() and c is not km
    km.set_params(random_state=0).fit(X)
    k2 = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(k2.predict(X), km.labels_)


def test_dataframe_feature_names(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    km = flashkm.KMeans(4, random_state=0, device="cpu").fit(df)
    assert list(km.feature_names_in_) == list(df.columns)
    np.testing.assert_array_equal(km.predict(df), km.labels_)


def test_verbose_prints_iterations(blobs):
    X, _ = blobs
    buf = io.StringIO()
    with redirect_stdout(buf):
        km = flashkm.KMeans(12, random_state=0, verbose=1, device="cpu").fit(X)
    lines = [l for l in buf.getvalue().splitlines() if l.startswith("iter")]
    assert len(lines) == km.n_iter_
    assert "inertia" in lines[0]


# ------------------------------------------------------------------ errors
def test_errors_carry_the_library_message(blobs):
    X, _ = blobs
    bad = X.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7 contains NaN or Inf") as e:
        flashkm.KMeans(3, device="cpu").fit(bad)
    assert isinstance(e.value, flashkm.FlashKMValueError)
    with pytest.raises(ValueError, match="row 7 contains NaN"):
        flashkm.kmeans(bad.astype(np.float32), 3, device="cpu")
    km = flashkm.KMeans(3, random_state=0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="NaN"):
        km.predict(bad)
    with pytest.raises(ValueError, match="larger than the number of points.*n_samples=5"):
        flashkm.KMeans(8, device="cpu").fit(X[:5])
    with pytest.raises(ValueError, match="larger than the number of points"):
        flashkm.kmeans(X[:5], 8, device="cpu")
    w = np.ones(len(X))
    w[2] = -1
    with pytest.raises(ValueError, match="eight|negative"):
        flashkm.KMeans(3, device="cpu").fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="n_clusters"):
        flashkm.KMeans(0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="metric"):
        flashkm.KMeans(3, metric="manhattan").fit(X)
    with pytest.raises(ValueError, match="device"):
        flashkm.KMeans(3, device="tpu").fit(X)
    with pytest.raises(ValueError, match="shape"):
        flashkm.KMeans(3, init=X[:4], device="cpu").fit(X)
    with pytest.raises(ValueError, match="features"):
        km.predict(X[:, :5])
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="[Ss]parse"):
        flashkm.KMeans(3).fit(sp.csr_matrix(X))


def test_precision_exact_labels_are_the_exact_argmin():
    # points within rounding of equidistant from two centroids, behind a large common offset
    # (||x||^2 - 2 x.c + ||c||^2 cancels): exact mode's labels are the fp64 argmin against the
    # centroids returned (labels belong to the final centroids; ties to the lowest index)
    rng = np.random.RandomState(3)
    base = np.float32(1e3)
    C = np.array([[base, base], [base + 1, base]], dtype=np.float32)
    mid = np.float32(base + 0.5)
    X = np.stack([mid + rng.randint(-3, 4, 4000) * np.float32(6.1e-5),
                  base + rng.standard_normal(4000).astype(np.float32)], axis=1).astype(np.float32)
    km = flashkm.KMeans(2, init=C, max_iter=1, tol=0, precision="exact", device="cpu").fit(X)
    c = km.cluster_centers_.astype(np.float64)
    d = ((X.astype(np.float64)[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(km.labels_, d.argmin(1))  # argmin: the first on ties
    rechecked, made = km.exact_rechecked_
    # one assignment per iteration plus the final labels' one, n points each; these points
    # sit within rounding of the tie, so most cannot be certified by the fast pass
    assert made > 0 and made % len(X) == 0
    assert len(X) // 2 < rechecked <= made
    assert not hasattr(flashkm.KMeans(2, init=C, max_iter=1, device="cpu").fit(X), "exact_rechecked_")
    d0 = ((X.astype(np.float64)[:, None, :] - C.astype(np.float64)[None, :, :]) ** 2).sum(-1)
    km.cluster_centers_ = C.copy()  # predict against the starting centroids, exactly
    np.testing.assert_array_equal(km.predict(X), d0.argmin(1))


@pytest.mark.skipif(flashkm.build_info()["cuda_devices"] > 0, reason="a GPU is present")
def test_cuda_without_gpu_raises_runtime_error(blobs):
    X, _ = blobs
    with pytest.raises(RuntimeError, match="cuda"):
        flashkm.KMeans(3, device="cuda").fit(X)
    km = flashkm.KMeans(3, device="auto", random_state=0).fit(X)  # falls back to the CPU
    assert km._device_used == "cpu"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals need the main thread")
def test_keyboard_interrupt_between_iterations():
    # a long fit: uniform data, K = 512, tol = 0 needs many iterations of ~30+ ms each, so the
    # interrupt 0.3 s in always lands inside the fit, however fast or loaded the machine
    X = np.random.RandomState(0).rand(300_000, 32).astype(np.float32)
    # a process started in the background inherits SIGINT ignored, and flashkm (rightly) leaves
    # a non-default disposition alone: give this test Python's default handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            flashkm.KMeans(512, max_iter=100000, tol=0, init="random", random_state=0,
                           device="cpu").fit(X)
        restored = signal.getsignal(signal.SIGINT)  # flashkm put back what was there
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - t0 < 30
    assert restored is signal.default_int_handler


# ------------------------------------------------------------------ functional API
def test_functional_kmeans(blobs):
    X, y = blobs
    X32 = X.astype(np.float32)
    c, lab = flashkm.kmeans(X32, 12, niter=50, seed=1, device="cpu")
    assert c.shape == (12, 16) and c.dtype == np.float32
    assert lab.shape == (len(X),) and lab.dtype == np.int32
    km = flashkm.KMeans(12, max_iter=50, tol=0, random_state=1, device="cpu").fit(X32)
    np.testing.assert_array_equal(c, km.cluster_centers_)
    np.testing.assert_array_equal(lab, km.labels_)
    init = _init(X, y, 12)
    c2, lab2, info = flashkm.kmeans(X, 12, init=init, return_info=True, device="cpu")
    assert info["n_iter"] >= 1 and info["inertia"] > 0 and info["backend"] == "cpu"
    assert len(info["inertia_per_iter"]) == info["n_iter"]


def test_functional_batch(blobs):
    X, y = blobs
    rng = np.random.RandomState(0)
    B = 3
    Xb = np.stack([X[rng.permutation(len(X))] for _ in range(B)]).astype(np.float32)
    w = rng.uniform(0.5, 2, (B, len(X))).astype(np.float32)
    c, lab, infos = flashkm.kmeans(Xb, 12, seed=7, sample_weight=w, return_info=True,
                                   device="cpu")
    assert c.shape == (B, 12, 16) and lab.shape == (B, len(X)) and len(infos) == B
    for b in range(B):  # problem b == a 2-D fit of it alone with seed + b
        cb, lb = flashkm.kmeans(Xb[b], 12, seed=7 + b, sample_weight=w[b], device="cpu")
        np.testing.assert_array_equal(c[b], cb)
        np.testing.assert_array_equal(lab[b], lb)
    # explicit (B, K, D) init, and a batch view with a row stride
    init = np.stack([Xb[b][:12] for b in range(B)])
    c1, l1 = flashkm.kmeans(Xb, 12, init=init, device="cpu")
    wide = np.zeros((B, len(X), 20), np.float32)
    wide[..., :16] = Xb
    c2, l2 = flashkm.kmeans(wide[..., :16], 12, init=init, device="cpu")
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(l1, l2)
    # n_init > 1 (fkm_fit_batch takes none): problem by problem, seed + b
    c3, l3 = flashkm.kmeans(Xb[:2], 12, seed=4, n_init=2, device="cpu")
    cb, _ = flashkm.kmeans(Xb[1], 12, seed=5, n_init=2, device="cpu")
    np.testing.assert_array_equal(c3[1], cb)
    with pytest.raises(ValueError, match="shape"):
        flashkm.kmeans(Xb, 12, sample_weight=w[0], device="cpu")


def test_bfloat16_functional():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.random.RandomState(0).rand(500, 8).astype(np.float32).astype(ml_dtypes.bfloat16)
    c1, l1 = flashkm.kmeans(x, 4, device="cpu")
    c2, l2 = flashkm.kmeans(x.astype(np.float32), 4, device="cpu")  # the same values
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(c1, c2)


def test_fit_in_another_thread(blobs):
    X, _ = blobs
    out = []
    t = threading.Thread(target=lambda: out.append(
        flashkm.KMeans(12, random_state=0, device="cpu").fit(X).inertia_))
    t.start()
    t.join()
    assert out == [flashkm.KMeans(12, random_state=0, device="cpu").fit(X).inertia_]
