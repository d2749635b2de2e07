/* plan.c — see plan.h. */
#include "plan.h"

#include <stdlib.h>

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int64_t fkm_piece_rows(int64_t d, size_t es)
{
    const int64_t row = (d + 7) / 8 * 8 * (int64_t)es; /* the device layout's row */
    int64_t p = (int64_t)1 << 20;
    while (p > ((int64_t)1 << 14) && p * row > ((int64_t)1 << 28)) p >>= 1;
    return p;
}

fkm_status fkm_piece_plan(fkm_ctx *ctx, int64_t batch, int64_t n, int64_t P, fkm_piece **out, int64_t *count)
{
    *out = NULL;
    *count = 0;
    if (batch < 1 || n < 1 || P < 1)
        return fkm_fail(ctx, FKM_E_INTERNAL, "piece plan of batch %lld, n %lld, %lld rows per piece", (long long)batch,
                        (long long)n, (long long)P);
    const int64_t per = n <= P ? 0 : (n + P - 1) / P; /* row pieces per problem */
    const int64_t group = n <= P ? P / n : 1;         /* problems per piece */
    const int64_t np = per ? batch * per : (batch + group - 1) / group;
    fkm_piece *pc = calloc((size_t)np, sizeof *pc);
    if (!pc) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for a plan of %lld pieces", (long long)np);
    for (int64_t i = 0; i < np; i++) {
        if (per) {
            pc[i].b0 = i / per;
            pc[i].nb = 1;
            pc[i].r0 = i % per * P;
            pc[i].rows = min64(P, n - pc[i].r0);
        } else {
            pc[i].b0 = i * group;
            pc[i].nb = min64(group, batch - pc[i].b0);
            pc[i].r0 = 0;
            pc[i].rows = n;
        }
    }
    *out = pc;
    *count = np;
    return FKM_OK;
}

void fkm_piece_max(const fkm_piece *pc, int64_t count, int64_t *max_nb, int64_t *max_rows)
{
    *max_nb = 1;
    *max_rows = 1;
    for (int64_t i = 0; i < count; i++) {
        if (pc[i].nb > *max_nb) *max_nb = pc[i].nb;
        if (pc[i].rows > *max_rows) *max_rows = pc[i].rows;
    }
}

int64_t fkm_choose_resident(fkm_piece *pc, int64_t count, uint64_t row_bytes, uint64_t room, int nbuf)
{
    uint64_t total = 0, maxp = 0;
    for (int64_t i = 0; i < count; i++) {
        const uint64_t b = (uint64_t)(pc[i].nb * pc[i].rows) * row_bytes;
        total += b;
        if (b > maxp) maxp = b;
        pc[i].resident = 1;
    }
    if (total <= room) return 0;
    if (room < (uint64_t)nbuf * maxp) return -1;
    const int64_t nres = (int64_t)((room - (uint64_t)nbuf * maxp) / maxp);
    const int64_t ns = count - (nres < count ? nres : count - 1);
    for (int64_t i = 0; i < count; i++) /* exactly ns marks, evenly spaced */
        pc[i].resident = (i + 1) * ns / count == i * ns / count;
    return ns;
}
