"""flashkm.KMeans against scikit-learn's KMeans (Lloyd, same explicit init, n_init=1)."""
import numpy as np
import pytest
from sklearn.cluster import KMeans as SKKMeans

import flashkm


def _init_one_per_blob(X, y, k):
    return np.stack([X[np.flatnonzero(y == c)[0]] for c in range(k)])


@pytest.mark.parametrize("max_iter", [1, 3, 300])
def test_same_as_sklearn_one_seed_per_blob(blobs, max_iter):
    X, y = blobs
    init = _init_one_per_blob(X, y, 12)
    sk = SKKMeans(12, algorithm="lloyd", init=init, n_init=1, max_iter=max_iter, tol=0).fit(X)
    fk = flashkm.KMeans(12, init=init, max_iter=max_iter, tol=0, device="cpu").fit(X)
    np.testing.assert_array_equal(fk.labels_, sk.labels_)
    np.testing.assert_allclose(fk.cluster_centers_, sk.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert fk.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(fk.inertia_, sk.inertia_, rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_as_sklearn_random_rows(blobs, seed):
    # K < number of blobs, initial centres = random rows: Lloyd merges blobs over several
    # iterations; every step must agree with scikit-learn's.
    X, _ = blobs
    rng = np.random.RandomState(seed)
    init = X[rng.choice(len(X), 7, replace=False)]
    sk = SKKMeans(7, algorithm="lloyd", init=init, n_init=1, max_iter=100, tol=0).fit(X)
    fk = flashkm.KMeans(7, init=init, max_iter=100, tol=0, device="cpu").fit(X)
    np.testing.assert_array_equal(fk.labels_, sk.labels_)
    np.testing.assert_allclose(fk.cluster_centers_, sk.cluster_centers_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fk.inertia_, sk.inertia_, rtol=1e-5)
    np.testing.assert_array_equal(fk.predict(X), sk.predict(X))


def test_sample_weight_same_as_sklearn(blobs):
    X, y = blobs
    w = np.random.RandomState(3).uniform(0.1, 3.0, len(X))
    init = _init_one_per_blob(X, y, 12)
    sk = SKKMeans(12, algorithm="lloyd", init=init, n_init=1, tol=0).fit(X, sample_weight=w)
    fk = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(X, sample_weight=w)
    np.testing.assert_array_equal(fk.labels_, sk.labels_)
    np.testing.assert_allclose(fk.cluster_centers_, sk.cluster_centers_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fk.score(X, sample_weight=w), sk.score(X, sample_weight=w),
                               rtol=1e-5)


def test_transform_like_sklearn(blobs):
    X, y = blobs
    init = _init_one_per_blob(X, y, 12)
    sk = SKKMeans(12, algorithm="lloyd", init=init, n_init=1, tol=0).fit(X)
    fk = flashkm.KMeans(12, init=init, tol=0, device="cpu").fit(X)
    np.testing.assert_allclose(fk.transform(X), sk.transform(X), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fk.score(X), sk.score(X), rtol=1e-5)
