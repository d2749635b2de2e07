/* cert_estimate — a CPU estimate (not a GPU measurement) of how many points exact mode's
 * certification settles on the GPU tensor-core paths (docs/EXACTNESS.md 5.2, 5.3):
 * make_blobs data (the generator of tools/make_blobs), Lloyd from K random rows, with double
 * scores ||c||^2 - 2 x.c standing in for the tensor cores' computed ones, and at every
 * assignment the share of points whose best and second scores are apart by more than the
 * bound (certified), whose best and third are (the pair test), and the rest (the device
 * filters), for each operand type (TF32 for f32 input, f16, bf16: the data rounded to the
 * input type) and three bounds: the former one (the model's u_p ||c|| and u_x ||x|| with
 * u_x = 2^-11), the model's with u_x = 2^-10, and the measured one (fkm_cert_pt from
 * ||ct - c|| per centroid and ||xt - x|| per point, as exact.cu computes them).
 *   cert_estimate [N D K CENTRES ITERS SEED THREADS]   defaults 200000 128 1024 1024 10 1 0 */
#include "core/cert.h"
#include "flashkm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t rng_state;
static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1p-53;
}
static double normal(void) { return sqrt(-2.0 * log(uniform() + 1e-300)) * cos(6.283185307179586 * uniform()); }

/* v rounded to p significant bits, exponent range down to emin; mode 0 nearest-even,
 * 1 nearest-away, 2 toward zero (as tests/test_cert.c). */
static double round_to(double v, int p, int emin, int mode)
{
    if (v == 0.0 || !isfinite(v)) return v;
    int e;
    frexp(v, &e);
    const int q = (e - 1 > emin ? e - 1 : emin) - (p - 1);
    const double s = ldexp(v, -q);
    return ldexp(mode == 0 ? nearbyint(s) : mode == 1 ? round(s) : trunc(s), q);
}

/* The operand types: precision, smallest exponent, whether the tensor core may flush. */
typedef struct optype {
    const char *name;
    int dtype, p, emin, flush, cmode;
} optype;
static const optype OPS[3] = {{"tf32", FKM_F32, 11, -126, 1, 1}, {"f16", FKM_F16, 11, -14, 0, 0},
                              {"bf16", FKM_BF16, 8, -126, 1, 0}};

enum { NB = 3, P = 16 };
static const char *const BNAME[NB] = {"former (u_x 2^-11)", "model (u_x 2^-10)", "measured"};

int main(int argc, char **argv)
{
    const int64_t n = argc > 1 ? atoll(argv[1]) : 200000, d = argc > 2 ? atoll(argv[2]) : 128;
    const int64_t K = argc > 3 ? atoll(argv[3]) : 1024, centres = argc > 4 ? atoll(argv[4]) : 1024;
    const int iters = argc > 5 ? atoi(argv[5]) : 10;
    const uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 1;
#ifdef _OPENMP
    if (argc > 7 && atoi(argv[7]) > 0) omp_set_num_threads(atoi(argv[7]));
#endif
    if (n < K || K < 3 || d < 1 || centres < 1 || iters < 1) {
        fprintf(stderr, "cert_estimate: need N >= K >= 3, D, CENTRES, ITERS >= 1\n");
        return 2;
    }
    float *X0 = malloc((size_t)(n * d) * sizeof *X0), *cen = malloc((size_t)(centres * d) * sizeof *cen);
    double *X = malloc((size_t)(n * d) * sizeof *X), *C = malloc((size_t)(K * d) * sizeof *C);
    double *S = malloc((size_t)(K * d) * sizeof *S), *W = malloc((size_t)K * sizeof *W);
    double *xn = malloc((size_t)n * sizeof *xn), *xd = malloc((size_t)n * sizeof *xd);
    double *cn = malloc((size_t)K * sizeof *cn), *cd = malloc((size_t)K * sizeof *cd), *cn2 = malloc((size_t)K * sizeof *cn2);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    int64_t *pick = malloc((size_t)n * sizeof *pick);
    if (!X0 || !cen || !X || !C || !S || !W || !xn || !xd || !cn || !cd || !cn2 || !lab || !pick) return 1;
    /* make_blobs N D CENTRES SEED */
    rng_state = seed;
    for (int64_t i = 0; i < centres * d; i++) cen[i] = (float)(16.0 * uniform() - 8.0);
    for (int64_t i = 0; i < n; i++) {
        const int64_t b = (int64_t)(uniform() * (double)centres);
        for (int64_t j = 0; j < d; j++) X0[i * d + j] = cen[b * d + j] + (float)normal();
    }
    printf("cert_estimate: make_blobs %lld x %lld, %lld centres, K = %lld, %d iterations from random rows, "
           "double scores (CPU estimate, not a GPU measurement)\n",
           (long long)n, (long long)d, (long long)centres, (long long)K, iters);
    for (int o = 0; o < 3; o++) {
        const optype *op = &OPS[o];
        /* the input in its type, its norms and its operand rounding (once) */
        for (int64_t i = 0; i < n; i++) {
            double ss = 0.0, se = 0.0;
            for (int64_t j = 0; j < d; j++) {
                const float v = op->dtype == FKM_F32 ? X0[i * d + j] : (float)round_to(X0[i * d + j], op->p, op->emin, 0);
                X[i * d + j] = v;
                ss += (double)v * v;
                if (op->dtype != FKM_F16) {
                    const float vt = op->dtype == FKM_F32 ? (float)round_to(v, 11, -126, 2) : v;
                    const double e = fkm_cert_elem_err(v, vt, 1);
                    se += e * e;
                }
            }
            xn[i] = sqrt(ss), xd[i] = fkm_cert_delta(se);
        }
        /* K distinct random rows (partial Fisher-Yates) */
        rng_state = seed + 1000;
        for (int64_t i = 0; i < n; i++) pick[i] = i;
        for (int64_t k = 0; k < K; k++) {
            const int64_t r = k + (int64_t)(uniform() * (double)(n - k));
            const int64_t t = pick[k];
            pick[k] = pick[r], pick[r] = t;
            for (int64_t j = 0; j < d; j++) C[k * d + j] = X[pick[k] * d + j];
        }
        fkm_cert certs[NB];
        certs[1] = certs[2] = fkm_cert_tensor((long long)d, 0, op->dtype);
        certs[0] = certs[1];
        if (op->dtype == FKM_F32) certs[0].u_x = 0x1p-11; /* the bound as it was */
        int64_t tot[NB][3] = {{0}}, last[NB][3] = {{0}};
        for (int it = 0; it < iters; it++) {
            /* centroids: f32 values; norms; the measured operand rounding; the largest */
            double cmax = 0.0, dcmax = 0.0;
            for (int64_t k = 0; k < K; k++) {
                double ss = 0.0, se = 0.0;
                for (int64_t j = 0; j < d; j++) {
                    const float c = (float)C[k * d + j];
                    C[k * d + j] = c;
                    ss += (double)c * c;
                    const double e = fkm_cert_elem_err(c, (float)round_to(c, op->p, op->emin, op->cmode), op->flush);
                    se += e * e;
                }
                cn2[k] = ss, cn[k] = sqrt(ss), cd[k] = fkm_cert_delta(se);
                cmax = fmax(cmax, cn[k]), dcmax = fmax(dcmax, cd[k]);
            }
            int64_t cnt[NB][3] = {{0}};
#pragma omp parallel
            {
                int64_t my[NB][3] = {{0}};
                double *xb = malloc((size_t)(d * P) * sizeof *xb);
#pragma omp for schedule(dynamic, 4)
                for (int64_t i0 = 0; i0 < n; i0 += P) {
                    const int m = n - i0 < P ? (int)(n - i0) : P;
                    for (int64_t j = 0; j < d; j++)
                        for (int p = 0; p < P; p++) xb[j * P + p] = p < m ? X[(i0 + p) * d + j] : 0.0;
                    double s1[P], s2[P], s3[P];
                    int32_t i1[P];
                    for (int p = 0; p < P; p++) s1[p] = s2[p] = s3[p] = INFINITY, i1[p] = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double acc[P] = {0};
                        const double *c = C + k * d;
                        for (int64_t j = 0; j < d; j++) {
                            const double cj = c[j];
#pragma omp simd
                            for (int p = 0; p < P; p++) acc[p] += xb[j * P + p] * cj;
                        }
                        for (int p = 0; p < P; p++) {
                            const double v = cn2[k] - 2.0 * acc[p];
                            if (v < s1[p]) s3[p] = s2[p], s2[p] = s1[p], s1[p] = v, i1[p] = (int32_t)k;
                            else if (v < s2[p]) s3[p] = s2[p], s2[p] = v;
                            else if (v < s3[p]) s3[p] = v;
                        }
                    }
                    for (int p = 0; p < m; p++) {
                        const int64_t i = i0 + p;
                        lab[i] = i1[p];
                        for (int b = 0; b < NB; b++) {
                            const fkm_cert_pt pt =
                                b < 2 ? fkm_cert_pt_model(&certs[b], xn[i], cn[i1[p]], cmax)
                                      : (fkm_cert_pt){xn[i], xd[i], cn[i1[p]], cd[i1[p]], cmax, dcmax};
                            const double B = fkm_cert_bound(&certs[b], &pt, 0.0);
                            my[b][s2[p] - s1[p] > B ? 0 : s3[p] - s1[p] > B ? 1 : 2]++;
                        }
                    }
                }
#pragma omp critical
                for (int b = 0; b < NB; b++)
                    for (int c = 0; c < 3; c++) cnt[b][c] += my[b][c];
                free(xb);
            }
            for (int b = 0; b < NB; b++)
                for (int c = 0; c < 3; c++) tot[b][c] += cnt[b][c], last[b][c] = cnt[b][c];
            /* update: the mean in double, rounded to f32 next round; empty clusters keep theirs */
            memset(S, 0, (size_t)(K * d) * sizeof *S), memset(W, 0, (size_t)K * sizeof *W);
            for (int64_t i = 0; i < n; i++) {
                W[lab[i]] += 1.0;
                for (int64_t j = 0; j < d; j++) S[lab[i] * d + j] += X[i * d + j];
            }
            for (int64_t k = 0; k < K; k++)
                if (W[k] > 0)
                    for (int64_t j = 0; j < d; j++) C[k * d + j] = S[k * d + j] / W[k];
            fprintf(stderr, "%s: iteration %d done\n", op->name, it + 1);
        }
        for (int b = 0; b < NB; b++) {
            const double all = (double)n * iters;
            printf("%-4s %-19s: all %d assignments: certified %6.2f%%, pair test %6.2f%%, filters %6.3f%% "
                   "(re-checked %6.2f%%); last assignment: certified %6.2f%%, pair %6.2f%%, filters %6.3f%%\n",
                   op->name, BNAME[b], iters, 100.0 * tot[b][0] / all, 100.0 * tot[b][1] / all,
                   100.0 * tot[b][2] / all, 100.0 * (tot[b][1] + tot[b][2]) / all, 100.0 * last[b][0] / n,
                   100.0 * last[b][1] / n, 100.0 * last[b][2] / n);
        }
        /* the centroid term: measured / model, at the last centroids */
        double r = 0.0;
        for (int64_t k = 0; k < K; k++) r += cd[k] / fkm_cert_dc(&certs[2], cn[k]);
        printf("%-4s ||ct - c|| bound / (u_p ||c|| + sqrt(d) eta_p): mean over the centroids %.3f\n", op->name,
               r / (double)K);
        fflush(stdout);
    }
    free(X0), free(cen), free(X), free(C), free(S), free(W), free(xn), free(xd), free(cn), free(cd), free(cn2);
    free(lab), free(pick);
    return 0;
}
