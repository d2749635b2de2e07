"""flashkm: exact Lloyd k-means, fast, over the libflashkm C library (CPU and CUDA).

    from flashkm import KMeans, kmeans
    km = KMeans(n_clusters=100, random_state=0).fit(X)      # scikit-learn estimator
    centroids, labels = kmeans(X, 100, niter=25)            # FAISS-like function
"""
from ._lib import (FlashKMError, FlashKMMemoryError, FlashKMRuntimeError, FlashKMValueError,
                   build_info, version)
from ._functional import kmeans
from ._kmeans import KMeans

__version__ = version()

__all__ = ["KMeans", "kmeans", "build_info", "FlashKMError", "FlashKMValueError",
           "FlashKMMemoryError", "FlashKMRuntimeError", "__version__"]
