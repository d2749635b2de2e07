"""Checking and translating the Python-level parameters (shared by KMeans and kmeans())."""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from . import _lib


def choice(name, value, table):
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{name} must be one of {sorted(table)}, got {value!r}")
    return table[value]


def positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def nonneg_float(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 \
            or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def seed_of(random_state):
    """random_state (None, int, RandomState, Generator) -> a uint64 seed. An int is used as
    the seed itself (random_state=S equals the CLI's --seed S); None draws one from NumPy's
    global RandomState, as scikit-learn does."""
    if random_state is None or random_state is np.random:
        random_state = np.random.mtrand._rand
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0 or random_state >= 2 ** 64:
            raise ValueError(f"random_state must be in [0, 2**64), got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2 ** 64, dtype=np.uint64))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2 ** 64, dtype=np.uint64))
    raise ValueError(f"random_state must be None, an int, a numpy RandomState or Generator, "
                     f"got {random_state!r}")


def resolve_init(init, n_init, k, d, batch=0, random_state=None, X=None):
    """-> (init code, f32 centroids or None, n_init). Arrays are (k,d), or (B,k,d) for a
    batch; n_init="auto" is 1 for k-means++ and arrays, 10 for "random" (scikit-learn's)."""
    centroids = None
    if isinstance(init, str):
        code = choice("init", init, {"k-means++": _lib.INITS["k-means++"],
                                     "random": _lib.INITS["random"]})
        if isinstance(n_init, str):
            if n_init != "auto":
                raise ValueError(f"n_init must be 'auto' or an integer >= 1, got {n_init!r}")
            n_init = 10 if init == "random" else 1
        return code, None, positive_int("n_init", n_init)
    if callable(init):
        if X is None:
            raise ValueError("a callable init needs the data")
        from sklearn.utils import check_random_state
        init = init(X, k, random_state=check_random_state(random_state))
    shape = (batch, k, d) if batch else (k, d)
    centroids = np.ascontiguousarray(init, dtype=np.float32)
    if centroids.shape != shape:
        raise ValueError(f"the init array has shape {centroids.shape}, expected {shape} "
                         "(n_clusters, n_features)")
    if not (isinstance(n_init, str) and n_init == "auto"):
        positive_int("n_init", n_init)
        if n_init != 1:
            warnings.warn("Explicit initial center position passed: performing only one "
                          f"init instead of n_init={n_init}.", RuntimeWarning, stacklevel=3)
    return _lib.INITS["user"], centroids, 1
