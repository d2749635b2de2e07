/* assign.c — CPU assignment: pack centroids into panels, then run the SIMD kernel over blocks
 * of points in parallel. No n x k matrix exists: each block keeps one running best per point. */
#include "cpu.h"
#include "core/cert.h"
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

/* Certified mode for the rows of one block the kernel scored: row j of x (block row map[j], or
 * j without a map) has the kernel's label klab[j] and best and second scores; it keeps that
 * label when the gap exceeds the error bound (docs/EXACTNESS.md 3.5), else the exact argmin
 * decides. With carried certificates (st->clo) a certified row gets its bounds (5.5), a
 * re-decided one none. labels: the block's labels, by block row. Returns the number
 * re-decided. */
static int64_t certify_block(const cpu_state *st, const fkm_cert *cert, const fkm_cert_lin *lin, const float *C,
                             const float *x, int64_t ldx, int64_t i0, int64_t m, const int64_t *map,
                             const int32_t *klab, int32_t *labels, const float *best, const float *second,
                             double *scratch, int64_t *cand)
{
    const fkm_problem *pb = &st->pb;
    const int64_t d = pb->d;
    int64_t redone = 0;
    for (int64_t j = 0; j < m; j++) {
        const float *xr = x + j * ldx;
        const int64_t r = map ? map[j] : j, i = i0 + r;
        if (!st->have_xnorm) st->xnorm[i] = row_norm(xr, d);
        labels[r] = klab[j];
        if (pb->k == 1) continue; /* a single centroid: nothing to decide */
        if (fkm_cert_ok_lin(cert, lin, best[j], second[j], st->xnorm[i], st->cnorm[klab[j]])) {
            if (st->clo) {
                const fkm_cert_pt p = fkm_cert_pt_model(cert, st->xnorm[i], st->cnorm[klab[j]], st->cnorm_max);
                fkm_carry b;
                if (!fkm_cert_carry_init(cert, best[j], second[j], &p, &b)) b.lo = -INFINITY, b.hi = INFINITY;
                st->clo[i] = b.lo, st->chi[i] = b.hi;
            }
            continue;
        }
        labels[r] = fkm_exact_argmin(xr, C, pb->k, d, pb->metric == FKM_METRIC_DOT, scratch, cand);
        if (st->clo) st->clo[i] = -INFINITY, st->chi[i] = INFINITY;
        redone++;
    }
    return redone;
}

/* Carried certificates: each centroid's move since the certificates' centroids (an upper bound
 * on ||c - cprev||, fkm_cert_delta), the largest returned. */
static double centroid_moves(cpu_state *st, const float *C)
{
    const int64_t k = st->pb.k, d = st->pb.d;
    double dmax = 0.0;
    for (int64_t c = 0; c < k; c++) {
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double e = (double)C[c * d + j] - (double)st->cprev[c * d + j];
            ss += e * e;
        }
        st->cmove[c] = fkm_cert_delta(ss);
        if (st->cmove[c] > dmax) dmax = st->cmove[c];
    }
    return dmax;
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
    /* carried certificates: from the second assignment on (every row has a certificate or
     * none, and X's norms are known) */
    const int carry = exact && st->clo && st->have_prev && st->have_xnorm;
    const double dmax = carry ? centroid_moves(st, centroids) : 0.0;

#pragma omp parallel num_threads(pb->n_threads) reduction(+ : changed, redone) reduction(| : failed)
    {
        float *scratch = malloc((size_t)st->kern->scratch_floats(FKM_CPU_BLOCK_ROWS) * sizeof(float));
        /* the block's rows as f32 (converted, or the rows left to assign when some carry) */
        float *xbuf = copy || carry ? malloc((size_t)(FKM_CPU_BLOCK_ROWS * d) * sizeof(float)) : NULL;
        /* certified mode: scores of the block and the exact argmin's scratch */
        float *sc = exact ? malloc(2 * FKM_CPU_BLOCK_ROWS * sizeof(float)) : NULL;
        double *xs = exact ? malloc((size_t)FKM_EXACT_SCRATCH_DOUBLES(pb->k) * sizeof(double)) : NULL;
        int64_t *cand = exact ? malloc((size_t)pb->k * sizeof(int64_t)) : NULL;
        int32_t labels[FKM_CPU_BLOCK_ROWS], klab[FKM_CPU_BLOCK_ROWS];
        int64_t map[FKM_CPU_BLOCK_ROWS];
        if (!scratch || ((copy || carry) && !xbuf) || (exact && (!sc || !xs || !cand))) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < nblocks; b++) {
            if (failed) continue;
            const int64_t i0 = b * FKM_CPU_BLOCK_ROWS;
            const int64_t rows = n - i0 < FKM_CPU_BLOCK_ROWS ? n - i0 : FKM_CPU_BLOCK_ROWS;
            /* carried certificates: rows whose moved bounds still separate their label keep
             * it; the others (map) are gathered and assigned */
            int64_t m = rows;
            if (carry) {
                m = 0;
                for (int64_t r = 0; r < rows; r++) {
                    const int64_t i = i0 + r;
                    const int32_t a = st->labels[i];
                    fkm_carry bd = {st->clo[i], st->chi[i]};
                    int keep = 0;
                    if (bd.lo > bd.hi) {
                        keep = fkm_cert_carry_move(&bd, pb->metric == FKM_METRIC_DOT, st->xnorm[i], st->cmove[a], dmax);
                        if (!keep) bd.lo = -INFINITY, bd.hi = INFINITY;
                        st->clo[i] = bd.lo, st->chi[i] = bd.hi;
                    }
                    if (keep) labels[r] = a;
                    else map[m++] = r;
                }
            }
            const float *x;
            int64_t ldx;
            if (m < rows) { /* some rows carried: the others gathered, as the metric reads them */
                for (int64_t j = 0; j < m; j++)
                    fkm_load_row(pb->X, pb->dtype, pb->ld, i0 + map[j], d, 0, xbuf + j * d);
                x = xbuf;
                ldx = d;
            } else if (copy) {
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
                if (m > 0) {
                    st->kern->assign_block_top2(x, ldx, m, d, st->cpack, st->cbias, st->npanels, alpha, scratch,
                                                klab, sc, sc + FKM_CPU_BLOCK_ROWS);
                    redone += certify_block(st, &cert, &lin, centroids, x, ldx, i0, m, m < rows ? map : NULL, klab,
                                            labels, sc, sc + FKM_CPU_BLOCK_ROWS, xs, cand);
                }
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
        if (st->clo) { /* the certificates now hold for these centroids */
            memcpy(st->cprev, centroids, (size_t)(pb->k * d) * sizeof(float));
            st->have_prev = 1;
        }
        ctx->exact_points += n;
        ctx->exact_rechecked += redone;
        ctx->exact_host += redone; /* fkm_exact_argmin, on the host like everything here */
    }
    st->have_labels = 1;
    *n_changed = changed;
    return FKM_OK;
}
