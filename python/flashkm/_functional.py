"""The FAISS-like functional API: flashkm.kmeans(x, k) -> (centroids, labels)."""
from __future__ import annotations

from . import _core, _lib, _params
from ._input import as_matrix, as_weights, backend_for, host_init


def kmeans(x, k, *, niter=25, tol=0.0, seed=0, metric="l2", init="k-means++", n_init=1,
           sample_weight=None, device="auto", precision="fast", empty="relocate", verbose=0,
           callback=None, return_info=False):
    """Lloyd k-means of x (N, D), or of B independent problems x (B, N, D).

    Returns ``(centroids, labels)``: float32 (K, D) and int32 (N,), or (B, K, D) and (B, N)
    for a batch; with ``return_info=True`` a third item, a dict (a list of B dicts for a
    batch) with inertia, n_iter, converged and the backend used.

    x: a NumPy array or array-like; or an array of another library, used in place without a
    copy: a torch tensor (CPU or CUDA), a CuPy array, an object with __cuda_array_interface__
    or DLPack (__dlpack__, or a DLPack capsule). The outputs are arrays of the input's kind
    on the input's device (a CUDA torch tensor in, CUDA torch tensors out); CUDA input runs
    on the CUDA backend (device "auto" or "cuda"; "cpu" is a ValueError). See docs/PYTHON.md.

    niter: at most this many iterations (FAISS's default, 25). tol: stop when the largest
    squared centroid shift is <= tol * mean feature variance (0 = only when labels stop
    changing, or at niter). seed: problem b of a batch is seeded with seed + b. init:
    "k-means++", "random" or an array (K, D) ((B, K, D) for a batch; any kind: it is copied to
    the host, it is small). n_init: runs per problem, keeping the lowest inertia ("auto": 1,
    or 10 for "random"). sample_weight: (N,) or (B, N) non-negative weights. device: "auto"
    (a GPU when there is one), "cpu", "cuda". precision: "fast" or "f32" (see the README).
    verbose: per-iteration lines on stdout (2-D input only). callback: called after every
    iteration of a 2-D fit with a dict (iter, inertia, max_shift_sq, rel_shift, n_changed,
    n_empty, seconds, assign_seconds, update_seconds); an exception it raises stops the fit
    and propagates. Ctrl-C stops a 2-D fit between iterations (KeyboardInterrupt).

    A NumPy x is used in place when it is float32/float16/float64 (or bfloat16) with a
    contiguous last axis, whatever its row stride; anything else is converted once to float32.
    """
    _params.choice("device", device, _lib.BACKENDS)
    X = as_matrix(x, ndims=(2, 3), name="x")
    device = backend_for(device, X)
    k = _params.positive_int("k", k)
    B = X.batch
    init_code, init_c, n_init = _params.resolve_init(host_init(init), n_init, k, X.d, batch=B,
                                                     random_state=seed, X=X.array)
    weights = as_weights(sample_weight, (B, X.n) if B else (X.n,), X, device)
    common = dict(k=k, max_iter=_params.positive_int("niter", niter),
                  tol=_params.nonneg_float("tol", tol), init=init_code,
                  metric=_params.choice("metric", metric, _lib.METRICS),
                  empty=_params.choice("empty", empty, _lib.EMPTY),
                  precision=_params.choice("precision", precision, _lib.PRECISIONS))
    seed = _params.seed_of(seed)
    if not B:
        p = _core.make_params(init_centroids=init_c, seed=seed, n_init=n_init, **common)
        c, lab, info = _core.fit(device, p, X, weights, verbose=verbose, callback=callback)
        return (c, lab, info) if return_info else (c, lab)
    if n_init == 1:
        p = _core.make_params(init_centroids=init_c, seed=seed, n_init=1, **common)
        c, lab, infos = _core.fit_batch(device, p, X, weights)
        return (c, lab, infos) if return_info else (c, lab)
    # fkm_fit_batch takes no n_init: problem b alone with seed + b, as the CLI does, each
    # writing into its slice of the (B, K, D) and (B, N) outputs.
    cent, labs = _core._alloc(X, (B, k, X.d), "f32"), _core._alloc(X, (B, X.n), "i32")
    infos = []
    for b in range(B):
        p = _core.make_params(init_centroids=None, seed=seed + b, n_init=n_init, **common)
        w = None if weights is None else type(weights)(weights.obj, weights.ptr + b * X.n * 4)
        out = (type(cent)(cent.obj, cent.ptr + b * k * X.d * 4),
               type(labs)(labs.obj, labs.ptr + b * X.n * 4))
        _c, _l, info = _core.fit(device, p, X.row_block(b), w, verbose=verbose,
                                 callback=callback, out=out)
        infos.append(info)
    return (cent.obj, labs.obj, infos) if return_info else (cent.obj, labs.obj)
