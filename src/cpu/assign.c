/* assign.c — CPU assignment: pack centroids into panels, then run the SIMD kernel over blocks
 * of points in parallel. No n x k matrix exists: each block keeps one running best per point. */
#include "cpu.h"
#include "core/exact.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int fkm_cpu_needs_copy(const fkm_problem *pb)
{
    return pb->dtype != FKM_F32 || pb->metric == FKM_METRIC_COSINE;
}

/* Panels of nr centroids, feature-major inside a panel; bias per the metric (kernel.h). */
static void pack_centroids(cpu_state *st, const float *C)
{
    const int64_t k = st->pb.k, d = st->pb.d, nr = st->kern->nr;
    const int l2 = st->pb.metric != FKM_METRIC_DOT;
    for (int64_t p = 0; p < st->npanels; p++) {
        float *panel = st->cpack + p * d * nr;
        for (int64_t c = 0; c < nr; c++) {
            int64_t kk = p * nr + c;
            if (kk >= k) {
                for (int64_t j = 0; j < d; j++) panel[j * nr + c] = 0.0f;
                st->cbias[kk] = INFINITY;
                continue;
            }
            double ss = 0.0;
            for (int64_t j = 0; j < d; j++) {
                float v = C[kk * d + j];
                panel[j * nr + c] = v;
                ss += (double)v * v;
            }
            st->cbias[kk] = l2 ? (float)ss : 0.0f;
            if (st->cnorm) st->cnorm[kk] = sqrt(ss);
        }
    }
}

/* ||x|| in double (once per call: cached in st->xnorm). Eight interleaved partial sums so
 * that it vectorises. Any order is fine: the bound allows for the rounding of the norms
 * (EXACTNESS.md 3.5). */
static double row_norm(const float *x, int64_t d)
{
    double a[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
        for (int l = 0; l < 8; l++) a[l] += (double)x[j + l] * x[j + l];
    for (int l = 0; j < d; j++, l++) a[l] += (double)x[j] * x[j];
    return sqrt(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));
}

/* Certified mode for one block: a point keeps its fast label when the gap between its best
 * and second-best scores exceeds the error bound (docs/EXACTNESS.md); the others are decided
 * by the exact argmin. Returns the number re-decided. */
static int64_t certify_block(const cpu_state *st, const fkm_cert *cert, const fkm_cert_lin *lin, const float *C,
                             const float *x,
                             int64_t ldx, int64_t i0, int64_t rows, int32_t *labels, const float *best,
                             const float *second, double *scratch, int64_t *cand)
{
    const fkm_problem *pb = &st->pb;
    const int64_t d = pb->d;
    int64_t redone = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        if (!st->have_xnorm) st->xnorm[i0 + r] = row_norm(xr, d);
        if (pb->k == 1) continue; /* a single centroid: nothing to decide */
        if (fkm_cert_ok_lin(cert, lin, best[r], second[r], st->xnorm[i0 + r], st->cnorm[labels[r]])) continue;
        labels[r] = fkm_exact_argmin(xr, C, pb->k, d, pb->metric == FKM_METRIC_DOT, scratch, cand);
        redone++;
    }
    return redone;
}

fkm_status fkm_cpu_assign(fkm_ctx *ctx, void *state, const float *centroids, int64_t *n_changed)
{
    cpu_state *st = state;
    const fkm_problem *pb = &st->pb;
    const int64_t n = pb->n, d = pb->d;
    const float alpha = pb->metric == FKM_METRIC_DOT ? -1.0f : -2.0f;
    const int copy = fkm_cpu_needs_copy(pb);
    const int64_t nblocks = (n + FKM_CPU_BLOCK_ROWS - 1) / FKM_CPU_BLOCK_ROWS;
    const int first = !st->have_labels;
    int64_t changed = 0;
    int failed = 0;

    pack_centroids(st, centroids);
    const int exact = pb->precision == FKM_PRECISION_EXACT;
    const fkm_cert cert = fkm_cert_cpu(d, pb->metric == FKM_METRIC_DOT);
    int64_t redone = 0;
    fkm_cert_lin lin = {0.0, 0.0, 0.0, 0.0};
    if (exact) {
        st->cnorm_max = 0.0;
        for (int64_t c = 0; c < pb->k; c++)
            if (st->cnorm[c] > st->cnorm_max) st->cnorm_max = st->cnorm[c];
        lin = fkm_cert_linear(&cert, st->cnorm_max);
    }

#pragma omp parallel num_threads(pb->n_threads) reduction(+ : changed, redone) reduction(| : failed)
    {
        float *scratch = malloc((size_t)st->kern->scratch_floats(FKM_CPU_BLOCK_ROWS) * sizeof(float));
        float *xbuf = copy ? malloc((size_t)(FKM_CPU_BLOCK_ROWS * d) * sizeof(float)) : NULL;
        /* certified mode: scores of the block and the exact argmin's scratch */
        float *sc = exact ? malloc(2 * FKM_CPU_BLOCK_ROWS * sizeof(float)) : NULL;
        double *xs = exact ? malloc((size_t)FKM_EXACT_SCRATCH_DOUBLES(pb->k) * sizeof(double)) : NULL;
        int64_t *cand = exact ? malloc((size_t)pb->k * sizeof(int64_t)) : NULL;
        int32_t labels[FKM_CPU_BLOCK_ROWS];
        if (!scratch || (copy && !xbuf) || (exact && (!sc || !xs || !cand))) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < nblocks; b++) {
            if (failed) continue;
            const int64_t i0 = b * FKM_CPU_BLOCK_ROWS;
            const int64_t rows = n - i0 < FKM_CPU_BLOCK_ROWS ? n - i0 : FKM_CPU_BLOCK_ROWS;
            const float *x;
            int64_t ldx;
            if (copy) {
                for (int64_t r = 0; r < rows; r++)
                    fkm_load_row(pb->X, pb->dtype, pb->ld, i0 + r, d,
                                 pb->metric == FKM_METRIC_COSINE, xbuf + r * d);
                x = xbuf;
                ldx = d;
            } else {
                x = (const float *)pb->X + i0 * pb->ld;
                ldx = pb->ld;
            }
            if (exact) {
                st->kern->assign_block_top2(x, ldx, rows, d, st->cpack, st->cbias, st->npanels, alpha,
                                            scratch, labels, sc, sc + FKM_CPU_BLOCK_ROWS);
                redone += certify_block(st, &cert, &lin, centroids, x, ldx, i0, rows, labels, sc,
                                        sc + FKM_CPU_BLOCK_ROWS, xs, cand);
            } else {
                st->kern->assign_block(x, ldx, rows, d, st->cpack, st->cbias, st->npanels, alpha,
                                       scratch, labels, NULL);
            }
            for (int64_t r = 0; r < rows; r++) {
                changed += first || st->labels[i0 + r] != labels[r];
                st->labels[i0 + r] = labels[r];
            }
        }
        free(scratch);
        free(xbuf);
        free(sc);
        free(xs);
        free(cand);
    }
    if (failed) return fkm_fail(ctx, FKM_E_NOMEM, "out of memory for assignment buffers");
    if (exact) {
        st->have_xnorm = 1;
        ctx->exact_points += n;
        ctx->exact_rechecked += redone;
        ctx->exact_host += redone; /* fkm_exact_argmin, on the host like everything here */
    }
    st->have_labels = 1;
    *n_changed = changed;
    return FKM_OK;
}
