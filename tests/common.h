/* common.h — what the C tests share: assertions, data generators, dtype storage and the
 * plain fp64 reference Lloyd that the library is checked against. Nothing here calls the
 * library's internals: the reference is written independently, from the semantics in
 * flashkm.h. */
#ifndef FKM_TEST_COMMON_H
#define FKM_TEST_COMMON_H

#include "flashkm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern int tc_failures;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            tc_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* The backend a test runs on, from the environment: FLASHKM_TEST_BACKEND=cpu (default) or
 * cuda, and the precision of its fits: FLASHKM_TEST_PRECISION=fast (default) or f32. On cuda
 * without a usable device tc_create prints "SKIP" and exits with 77, which ctest reports as
 * skipped. */
fkm_ctx *tc_create(void);
/* The same for a given backend (tests that always run on CUDA, or compare two backends). */
fkm_ctx *tc_create_backend(fkm_backend backend);
fkm_precision tc_precision(void);
#define TC_SKIP 77

/* Returns the exit status for main: 0 when no CHECK failed. */
int tc_finish(const char *name);

/* Deterministic generator for test data (independent of the library's). */
typedef struct tc_rng {
    uint64_t s;
} tc_rng;
double tc_uniform(tc_rng *r);   /* [0, 1) */
double tc_normal(tc_rng *r);

/* n points in d dims around `blobs` centres (uniform in [-spread, spread]^d) with unit
 * Gaussian noise; offset is added to every coordinate. Row-major, n x d doubles. */
double *tc_blobs(uint64_t seed, int64_t n, int64_t d, int blobs, double spread, double offset);

/* Stores the doubles X (n x d) as dtype with leading dimension ld (extra columns filled
 * with a NaN so a kernel that read them would be caught); returns the buffer and writes the
 * values as the library will read them (decoded from the storage) back into X. */
void *tc_store(double *X, int64_t n, int64_t d, int64_t ld, fkm_dtype dtype);

/* The reference Lloyd in fp64. Centroids are rounded to f32 after each update, as the
 * library keeps them. Semantics follow flashkm.h exactly (ties to the lowest index, empty
 * policy, stopping rules, final assignment). min_gap receives the smallest relative gap
 * between the best and second-best objective seen in any assignment (the tie-freeness of
 * the data, to be checked by the caller). */
typedef struct tc_ref_result {
    int32_t *labels;
    float *centroids;
    double inertia;
    int32_t n_iter;
    int converged;
    double *inertia_per_iter;
    double min_gap;
} tc_ref_result;

void tc_reference_fit(const double *X, int64_t n, int64_t d, const float *w, int64_t k,
                      fkm_metric metric, fkm_empty empty, const float *init, int32_t max_iter,
                      double tol, tc_ref_result *out);
void tc_ref_free(tc_ref_result *r);

/* Indices of k distinct rows (test's own choice), as f32 centroids. */
float *tc_pick_rows(const double *X, int64_t n, int64_t d, int64_t k, uint64_t seed);

#endif
