"""The FAISS-like functional API: flashkm.kmeans(x, k) -> (centroids, labels)."""
from __future__ import annotations

import numpy as np

from . import _core, _lib, _params
from ._input import as_f32, as_matrix


def kmeans(x, k, *, niter=25, tol=0.0, seed=0, metric="l2", init="k-means++", n_init=1,
           sample_weight=None, device="auto", precision="fast", empty="relocate", verbose=0,
           return_info=False):
    """Lloyd k-means of x (N, D), or of B independent problems x (B, N, D).

    Returns ``(centroids, labels)``: float32 (K, D) and int32 (N,), or (B, K, D) and (B, N)
    for a batch; with ``return_info=True`` a third item, a dict (a list of B dicts for a
    batch) with inertia, n_iter, converged and the backend used.

    niter: at most this many iterations (FAISS's default, 25). tol: stop when the largest
    squared centroid shift is <= tol * mean feature variance (0 = only when labels stop
    changing, or at niter). seed: problem b of a batch is seeded with seed + b. init:
    "k-means++", "random" or an array (K, D) ((B, K, D) for a batch). n_init: runs per
    problem, keeping the lowest inertia ("auto": 1, or 10 for "random"). sample_weight: (N,)
    or (B, N) non-negative weights. device: "auto" (a GPU when there is one), "cpu", "cuda".
    precision: "fast" or "f32" (see the README). verbose: per-iteration lines on stdout
    (2-D input only). Ctrl-C stops a 2-D fit between iterations (KeyboardInterrupt).

    x is used in place when it is float32/float16/float64 (or bfloat16) with a contiguous
    last axis, whatever its row stride; anything else is converted once to float32.
    """
    _params.choice("device", device, _lib.BACKENDS)
    X = as_matrix(x, ndims=(2, 3), name="x")
    k = _params.positive_int("k", k)
    B = X.batch
    init_code, init_c, n_init = _params.resolve_init(init, n_init, k, X.d, batch=B,
                                                     random_state=seed, X=X.array)
    weights = None
    if sample_weight is not None:
        weights = as_f32(sample_weight, (B, X.n) if B else (X.n,), "sample_weight")
    common = dict(k=k, max_iter=_params.positive_int("niter", niter),
                  tol=_params.nonneg_float("tol", tol), init=init_code,
                  metric=_params.choice("metric", metric, _lib.METRICS),
                  empty=_params.choice("empty", empty, _lib.EMPTY),
                  precision=_params.choice("precision", precision, _lib.PRECISIONS))
    seed = _params.seed_of(seed)
    if not B:
        p = _core.make_params(init_centroids=init_c, seed=seed, n_init=n_init, **common)
        c, lab, info = _core.fit(device, p, X, weights, verbose=verbose)
        return (c, lab, info) if return_info else (c, lab)
    if n_init == 1:
        p = _core.make_params(init_centroids=init_c, seed=seed, n_init=1, **common)
        c, lab, infos = _core.fit_batch(device, p, X, weights)
        return (c, lab, infos) if return_info else (c, lab)
    # fkm_fit_batch takes no n_init: problem b alone with seed + b, as the CLI does.
    arr = X.array
    cs, labs, infos = [], [], []
    for b in range(B):
        p = _core.make_params(init_centroids=None, seed=seed + b, n_init=n_init, **common)
        c, lab, info = _core.fit(device, p, as_matrix(arr[b]), None if weights is None
                                 else weights[b], verbose=verbose)
        cs.append(c), labs.append(lab), infos.append(info)
    c, lab = np.stack(cs), np.stack(labs)
    return (c, lab, infos) if return_info else (c, lab)
