import numpy as np
import pytest


@pytest.fixture
def blobs():
    """Well-separated, tie-free data: 12 tight blobs in 16-D, 1200 points (float64)."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=1200, n_features=16, centers=12, cluster_std=0.5,
                      center_box=(-20, 20), random_state=7)
    return X, y
