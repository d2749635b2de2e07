/* bench_data.cuh — the GPU benchmarks' data, made on the device: 64 Gaussian blobs whose
 * centres are spread 3 per coordinate, unit noise (hash-based normals, so any row is the same
 * whatever the launch); or pure unit normal noise, without structure (make_noise). */
#ifndef FKM_BENCH_DATA_CUH
#define FKM_BENCH_DATA_CUH

#include <stdint.h>

static __device__ float hash_normal(uint64_t i)
{
    uint64_t z = i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u1 = ((z >> 40) + 1) * (1.0f / 16777217.0f), u2 = ((z >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    return sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}

template <typename T> __global__ void make_data(T *X, int64_t rows, int64_t d)
{
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= rows * d) return;
    const int64_t r = t / d, j = t % d;
    const uint64_t centre = (uint64_t)(r * 2654435761ull) % 64;
    X[t] = (T)(3.f * hash_normal(centre * 1000003ull + (uint64_t)j) + hash_normal((uint64_t)t + (1ull << 40)));
}

/* One standard normal per element, no clusters: the case where distance pruning (k-means++)
 * has little to prove. */
template <typename T> __global__ void make_noise(T *X, int64_t rows, int64_t d)
{
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= rows * d) return;
    X[t] = (T)hash_normal((uint64_t)t + (1ull << 41));
}

#endif
