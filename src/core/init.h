/* init.h — initial centroids and the seeded random generator they use. */
#ifndef FKM_INIT_H
#define FKM_INIT_H

#include "internal.h"

/* splitmix64: tiny, statistically good, and fully determined by its 64-bit state. */
typedef struct fkm_rng {
    uint64_t state;
} fkm_rng;

uint64_t fkm_rng_next(fkm_rng *rng);
/* Uniform integer in [0, bound), bound >= 1, without modulo bias. */
uint64_t fkm_rng_below(fkm_rng *rng, uint64_t bound);

/* K distinct row indices of [0, n) chosen uniformly (Floyd's algorithm), in a deterministic
 * order given the seed; idx has k slots. */
fkm_status fkm_sample_distinct(fkm_ctx *ctx, uint64_t seed, int64_t n, int64_t k, int64_t *idx);

/* Fills C (k x d) of problem `problem` of the batch according to params: random rows of
 * its X (seed params->seed + problem) or its user centroids (params->init_centroids +
 * problem * k * d), normalised for cosine. */
fkm_status fkm_init_centroids(fkm_ctx *ctx, const fkm_params *params, const fkm_problem *pb,
                              void *state, int64_t problem, float *C);

/* Normalises each of the k rows of C to unit length (rows of zeros stay zero). */
void fkm_normalise_rows(float *C, int64_t k, int64_t d);

#endif
