/* test_top3_device.cu — the exact mode's per-tile top-3 fold on the GPU: fkm_top3_tile
 * (src/core/top3.h, what every tensor-core kernel's TOP3 epilogue runs) against its previous
 * version (top3_tile_old, tests/top3_sim.h) bit for bit after every tile, compiled for the
 * device with nq = 16 (the wgmma kernels' layout) and nq = 8 (mma.sync), on the adversarial
 * sequences of tests/test_top3_sim.c (ties, +-0, +-inf, subnormals, repeated and duplicated
 * tiles, arbitrary sorted start states). Then the device's final states against the host
 * emulation's (test_top3_sim's fkm_top3_min/max spelling out min.f32/max.f32): bit for bit, so
 * the host test's premise (it computes what the device computes) is checked here too.
 *
 * Exit status: 0 pass, 1 fail, 77 skipped (no CUDA device). */
#include "top3_sim.h"
#include "device_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <vector>

#define MAXT 12     /* tiles per sequence */
#define COL_BASE 1024 /* the first tile's column: injected start states index below it */

static __host__ __device__ int32_t tile_col0(int c, int t, int nq) { return COL_BASE + t * 8 * nq + 2 * (c & 3); }

/* One sequence per thread, both versions in lockstep; a difference is counted (the first
 * sequence's number kept) and the old state continues from the new one. */
template <int NQ>
__global__ void fold_kernel(const float *tiles, const fkm_top3 *st0, const int *ntiles, int ncases, fkm_top3 *out,
                            unsigned *mismatch, int *first)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= ncases) return;
    fkm_top3 o = st0[c], w = st0[c];
    for (int t = 0; t < ntiles[c]; t++) {
        const float *src = tiles + ((size_t)c * MAXT + t) * 4 * NQ;
        float a[4 * NQ];
#pragma unroll
        for (int i = 0; i < 4 * NQ; i++) a[i] = src[i];
        const int32_t col0 = tile_col0(c, t, NQ);
        top3_tile_old(&o, a, NQ, col0);
        fkm_top3_tile(&w, a, NQ, col0);
        if (!same(&o, &w)) {
            atomicAdd(mismatch, 1u);
            atomicCAS(first, -1, c);
            o = w;
        }
    }
    out[c] = w;
}

template <int NQ>
static void run(int ncases, uint64_t seed)
{
    uint64_t s = seed;
    std::vector<float> tiles((size_t)ncases * MAXT * 4 * NQ, POISON);
    std::vector<fkm_top3> st0(ncases), out(ncases);
    std::vector<int> nt(ncases);
    for (int c = 0; c < ncases; c++) {
        const int mode = (int)rng_below(&s, 5), levels = 1 + (int)rng_below(&s, 6);
        nt[c] = 1 + (int)rng_below(&s, MAXT);
        st0[c] = rng_below(&s, 4) == 0 ? random_state(&s, mode, levels, COL_BASE)
                                       : fkm_top3{INFINITY, INFINITY, INFINITY, 0, 0};
        for (int t = 0; t < nt[c]; t++) {
            float *a = &tiles[((size_t)c * MAXT + t) * 4 * NQ];
            const int shape = rng_below(&s, 3) == 0 ? 1 + (int)rng_below(&s, 6) : 0;
            make_tile(&s, a, t ? a - 4 * NQ : NULL, NQ, mode, levels, shape);
        }
    }
    float *d_tiles;
    fkm_top3 *d_st0, *d_out;
    int *d_nt, *d_first;
    unsigned *d_mis;
    CU(cudaMalloc(&d_tiles, tiles.size() * sizeof(float)));
    CU(cudaMalloc(&d_st0, ncases * sizeof(fkm_top3)));
    CU(cudaMalloc(&d_out, ncases * sizeof(fkm_top3)));
    CU(cudaMalloc(&d_nt, ncases * sizeof(int)));
    CU(cudaMalloc(&d_first, sizeof(int)));
    CU(cudaMalloc(&d_mis, sizeof(unsigned)));
    CU(cudaMemcpy(d_tiles, tiles.data(), tiles.size() * sizeof(float), cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_st0, st0.data(), ncases * sizeof(fkm_top3), cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_nt, nt.data(), ncases * sizeof(int), cudaMemcpyHostToDevice));
    CU(cudaMemset(d_mis, 0, sizeof(unsigned)));
    CU(cudaMemset(d_first, 0xff, sizeof(int)));
    fold_kernel<NQ><<<(ncases + 127) / 128, 128>>>(d_tiles, d_st0, d_nt, ncases, d_out, d_mis, d_first);
    CU(cudaGetLastError());
    unsigned mis = 0;
    int first = -1;
    CU(cudaMemcpy(out.data(), d_out, ncases * sizeof(fkm_top3), cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(&mis, d_mis, sizeof mis, cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(&first, d_first, sizeof first, cudaMemcpyDeviceToHost));
    EXPECT(mis == 0, "nq %d: the new fold differs from the old on the device after %u tiles (first in sequence %d)",
          NQ, mis, first);
    /* the host emulation of the new version must give the device's bits */
    int64_t host_diff = 0, first_h = -1, folds = 0;
    for (int c = 0; c < ncases; c++) {
        fkm_top3 w = st0[c];
        for (int t = 0; t < nt[c]; t++, folds++)
            fkm_top3_tile(&w, &tiles[((size_t)c * MAXT + t) * 4 * NQ], NQ, tile_col0(c, t, NQ));
        if (!same(&w, &out[c])) {
            if (first_h < 0) first_h = c;
            host_diff++;
        }
    }
    EXPECT(host_diff == 0, "nq %d: the host emulation differs from the device in %lld sequences (first %lld)", NQ,
          (long long)host_diff, (long long)first_h);
    printf("nq %2d: %d sequences, %lld tiles: device old == device new%s, host emulation == device%s\n", NQ, ncases,
           (long long)folds, mis ? " FAILED" : "", host_diff ? " FAILED" : "");
    cudaFree(d_tiles), cudaFree(d_st0), cudaFree(d_out), cudaFree(d_nt), cudaFree(d_first), cudaFree(d_mis);
}

int main(void)
{
    skip_without_gpu();
    const int cases = getenv("FLASHKM_TEST_SMALL") ? 1 << 12 : 1 << 16;
    run<16>(cases, 2024);
    run<8>(cases, 2025);
    if (failures) fprintf(stderr, "test_top3_device: %d checks failed\n", failures);
    else printf("test_top3_device: OK\n");
    return failures ? 1 : 0;
}
