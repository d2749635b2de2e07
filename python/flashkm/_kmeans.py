"""flashkm.KMeans: a scikit-learn estimator over the C library."""
from __future__ import annotations

import numpy as np
from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin,
                          TransformerMixin)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _core, _lib, _params
from ._devices import carrier, is_foreign
from ._input import as_matrix, as_weights, backend_for, host_init

_FLOATS = [np.float64, np.float32, np.float16]


class KMeans(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """Exact Lloyd k-means (flashkm), with scikit-learn's KMeans interface.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"}, array (n_clusters, n_features) or callable, default="k-means++"
        "k-means++" is greedy k-means++ as scikit-learn runs it; "random" picks n_clusters
        distinct rows. A callable is called as init(X, n_clusters, random_state=rs).
    n_init : "auto" or int, default="auto"
        Runs with seeds seed, seed+1, ...; the lowest inertia is kept. "auto": 1 for
        "k-means++" and explicit centres, 10 for "random" (as scikit-learn).
    max_iter : int, default=300
    tol : float, default=1e-4
        Stop when the largest squared centroid shift of an iteration is <= tol times the
        mean per-feature variance (scikit-learn compares the sum of the shifts; flashkm the
        largest). tol=0 stops only when labels stop changing, or at max_iter.
    random_state : None, int, numpy RandomState or Generator
        An int is the library's seed itself.
    metric : {"l2", "cosine", "dot"}, default="l2"
    device : {"auto", "cpu", "cuda"}, default="auto"
        "auto" uses a GPU when the library was built with CUDA and one is present.
    precision : {"fast", "f32", "exact"}, default="fast"
        The GPU's tensor-core path ("fast") or f32 arithmetic; the CPU always computes in f32.
    empty : {"relocate", "keep"}, default="relocate"
    verbose : int, default=0
        1 prints one line per iteration.

    Arrays of other libraries (torch tensors on the CPU or a GPU, CuPy arrays, objects with
    __cuda_array_interface__ or DLPack) are used in place, without a host copy; CUDA arrays
    run on the CUDA backend (device "auto" or "cuda"; "cpu" raises ValueError). labels_,
    predict, fit_predict and transform then return arrays of the input's kind on its device
    (int32 labels); cluster_centers_ stays a NumPy array, as in scikit-learn. NumPy input
    and other array-likes behave exactly as scikit-learn's KMeans. See docs/PYTHON.md.

    Attributes
    ----------
    cluster_centers_ : ndarray (n_clusters, n_features), float32
    labels_ : ndarray (n_samples,), int32 (of the input's kind for arrays of other libraries)
    inertia_ : float
    n_iter_ : int
    exact_rechecked_ : (int, int), precision="exact" only
        (re-checked, made): of the point assignments the fit made, how many the fast pass's
        error bound could not certify, so that they were re-decided exactly (fkm_exact_stats)
    n_features_in_, feature_names_in_
    """

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300,
                 tol=1e-4, random_state=None, metric="l2", device="auto", precision="fast",
                 empty="relocate", verbose=0):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.metric = metric
        self.device = device
        self.precision = precision
        self.empty = empty
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        # transform returns float64 for float64 input, float32 otherwise
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.cluster_centers_.shape[0]

    def _check_X(self, X, reset):
        # NaN/Inf are left to the library (its message names the row); sparse input is
        # refused by validate_data with a TypeError.
        return validate_data(self, X, accept_sparse=False, dtype=_FLOATS, order=None,
                             ensure_all_finite=False, reset=reset)

    def _weights(self, sample_weight, X, M, device):
        if sample_weight is None:
            return None
        if X is None or is_foreign(sample_weight):  # arrays of other libraries
            return as_weights(sample_weight, (M.n,), M, device)
        w = _check_sample_weight(sample_weight, X, dtype=np.float32)
        return np.ascontiguousarray(w, dtype=np.float32)

    def _matrix(self, X):
        """X of predict/transform as a Matrix (scikit-learn's validation for NumPy)."""
        M, X = self._foreign(X, reset=False)
        return M if M is not None else as_matrix(self._check_X(X, reset=False))

    # ------------------------------------------------------------------ fit
    def _foreign(self, X, reset):
        """A Matrix for an array of another library (torch, CuPy, CUDA array interface,
        DLPack), its features checked; X itself for NumPy and array-likes (a NumPy view for
        CPU DLPack producers), which take scikit-learn's validation."""
        if not is_foreign(X):
            return None, X
        a, arrays = carrier(X)
        if arrays is None:
            return None, a
        M = as_matrix(a, name="X")
        if reset:
            self.n_features_in_ = M.d
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif M.d != self.n_features_in_:
            raise ValueError(f"X has {M.d} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        return M, None

    def fit(self, X, y=None, sample_weight=None):
        """Compute k-means clustering of X (n_samples, n_features)."""
        _params.choice("device", self.device, _lib.BACKENDS)
        M, X = self._foreign(X, reset=True)
        if M is None:
            X = self._check_X(X, reset=True)
            M = as_matrix(X)
        device = backend_for(self.device, M)
        k = _params.positive_int("n_clusters", self.n_clusters)
        metric = _params.choice("metric", self.metric, _lib.METRICS)
        init_code, init_c, n_init = _params.resolve_init(
            host_init(self.init), self.n_init, k, M.d, random_state=self.random_state,
            X=M.array if X is None else X)
        p = _core.make_params(
            k=k, max_iter=_params.positive_int("max_iter", self.max_iter),
            tol=_params.nonneg_float("tol", self.tol), init=init_code, init_centroids=init_c,
            seed=_params.seed_of(self.random_state), metric=metric,
            empty=_params.choice("empty", self.empty, _lib.EMPTY),
            precision=_params.choice("precision", self.precision, _lib.PRECISIONS),
            n_init=n_init)
        w = self._weights(sample_weight, X, M, device)
        try:
            c, labels, info = _core.fit(device, p, M, w, verbose=self.verbose,
                                        centroids_host=True)
        except ValueError as e:
            if M.n < k:  # scikit-learn's wording, after the library's message
                e.args = (f"{e.args[0]} (n_samples={M.n} should be >= "
                          f"n_clusters={k})",) + e.args[1:]
            raise
        self.cluster_centers_ = c
        self.labels_ = labels
        self.inertia_ = float(info["inertia"])
        self.n_iter_ = int(info["n_iter"])
        if self.precision == "exact":
            self.exact_rechecked_ = (int(info["exact_rechecked"]), int(info["exact_points"]))
        self._metric_code = metric
        self._device_used = info["backend"]
        return self

    # ------------------------------------------------------------------ use
    def predict(self, X):
        """The index of the nearest cluster centre of each row of X (int32)."""
        check_is_fitted(self)
        M = self._matrix(X)
        labels, _ = _core.predict(backend_for(self.device, M), self._metric_code, M,
                                  self.cluster_centers_,
                                  _params.choice("precision", self.precision, _lib.PRECISIONS))
        return labels

    def transform(self, X):
        """Distances to the cluster centres, (n_samples, n_clusters): Euclidean distances for
        l2 (as scikit-learn's), 1 - cos for cosine, the inner product x.c for dot. float64
        for float64 input, float32 otherwise."""
        check_is_fitted(self)
        M = self._matrix(X)
        d = _core.transform(backend_for(self.device, M), self._metric_code, M,
                            self.cluster_centers_)
        f64 = M.dtype == _lib.FKM_F64
        if M.arrays is not None:  # an array of X's library, on X's device
            if self._metric_code == _lib.METRICS["l2"]:
                d = M.arrays.sqrt_nonneg_(d)
            return M.arrays.to_f64(d) if f64 else d
        if self._metric_code == _lib.METRICS["l2"]:
            np.maximum(d, 0, out=d)
            np.sqrt(d, out=d)
        return d.astype(np.float64) if f64 else d

    def fit_transform(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def fit_predict(self, X, y=None, sample_weight=None):
        return self.fit(X, sample_weight=sample_weight).labels_

    def score(self, X, y=None, sample_weight=None):
        """The opposite of the (weighted) inertia of X against the cluster centres."""
        check_is_fitted(self)
        M, X = self._foreign(X, reset=False)
        if M is None:
            X = self._check_X(X, reset=False)
            M = as_matrix(X)
        device = backend_for(self.device, M)
        w = self._weights(sample_weight, X, M, device)
        return -_core.score(device, self._metric_code, M, w, self.cluster_centers_)
