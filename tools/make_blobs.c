/* make_blobs — writes a synthetic clustering data set as .npy, for the demo and benchmarks:
 *   make_blobs OUT.npy N D CENTRES [SEED]
 * Points are Gaussian (unit variance) around CENTRES random centres in [-8, 8]^D. */
#include "flashkm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state;

static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1p-53;
}

static double normal(void)
{
    return sqrt(-2.0 * log(uniform() + 1e-300)) * cos(6.283185307179586 * uniform());
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: make_blobs OUT.npy N D CENTRES [SEED]\n");
        return 2;
    }
    const long long n = atoll(argv[2]), d = atoll(argv[3]), c = atoll(argv[4]);
    rng_state = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
    if (n <= 0 || d <= 0 || c <= 0) {
        fprintf(stderr, "make_blobs: N, D and CENTRES must be positive\n");
        return 2;
    }
    float *centres = malloc((size_t)(c * d) * sizeof *centres);
    float *X = malloc((size_t)(n * d) * sizeof *X);
    if (!centres || !X) {
        fprintf(stderr, "make_blobs: out of memory\n");
        return 1;
    }
    for (long long i = 0; i < c * d; i++) centres[i] = (float)(16.0 * uniform() - 8.0);
    for (long long i = 0; i < n; i++) {
        long long b = (long long)(uniform() * (double)c);
        for (long long j = 0; j < d; j++) X[i * d + j] = centres[b * d + j] + (float)normal();
    }
    fkm_ctx *ctx;
    if (fkm_create(&ctx, FKM_BACKEND_CPU) != FKM_OK) return 1;
    fkm_status s = fkm_npy_save_matrix(ctx, argv[1], X, FKM_F32, n, d);
    if (s != FKM_OK) fprintf(stderr, "make_blobs: %s\n", fkm_last_error(ctx));
    else fprintf(stderr, "make_blobs: wrote %s (%lld x %lld f32, %lld centres)\n", argv[1], n, d, c);
    fkm_destroy(ctx);
    free(centres), free(X);
    return s == FKM_OK ? 0 : 1;
}
