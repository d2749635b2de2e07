/* test_plan.c — the rules by which a GPU backend cuts X into pieces and keeps some of them
 * resident (src/core/plan.c), checked without a GPU: the piece size depends on the row size
 * alone and is a multiple of the scan's 1024-row chunk; a plan covers every row of every
 * problem exactly once, in order, pieces starting on chunk boundaries (so per-piece partial
 * sums line up whatever is resident); the residency choice keeps everything when X fits,
 * refuses a room without two streaming buffers, otherwise keeps as many pieces as fit and
 * spreads the streamed ones evenly. The bitwise results of streaming are tested on the GPU
 * (test_stream). */
#define _POSIX_C_SOURCE 200809L /* mmap, fileno */
#include "common.h"

#include "core/internal.h"
#include "core/plan.h"

#include <stdio.h>
#include <sys/mman.h>

static void check_piece_rows(void)
{
    static const struct { int64_t d; size_t es; int64_t want; } cases[] = {
        {128, 2, 1 << 20}, {8, 2, 1 << 20}, {8, 4, 1 << 20}, {1024, 4, 1 << 16},
        {100, 4, 1 << 19}, {300, 2, 1 << 18}, {1 << 20, 4, 1 << 14}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const int64_t p = fkm_piece_rows(cases[i].d, cases[i].es);
        CHECK(p == cases[i].want, "d %lld es %zu: %lld rows per piece, expected %lld", (long long)cases[i].d,
              cases[i].es, (long long)p, (long long)cases[i].want);
        CHECK(p % 1024 == 0, "piece rows %lld not a multiple of the scan chunk", (long long)p);
    }
}

/* Every (problem, row) once, in plan order; row pieces start on 1024-row boundaries. */
static void check_plan(int64_t B, int64_t n, int64_t P, int64_t want_pieces)
{
    fkm_piece *pc = NULL;
    int64_t np = 0;
    CHECK(fkm_piece_plan(NULL, B, n, P, &pc, &np) == FKM_OK, "plan B %lld n %lld", (long long)B, (long long)n);
    CHECK(np == want_pieces, "B %lld n %lld P %lld: %lld pieces, expected %lld", (long long)B, (long long)n,
          (long long)P, (long long)np, (long long)want_pieces);
    int64_t b = 0, r = 0, max_nb, max_rows;
    for (int64_t i = 0; i < np; i++) {
        const fkm_piece *p = &pc[i];
        CHECK(p->b0 == b && p->r0 == r && p->rows > 0 && p->nb > 0, "piece %lld of B %lld n %lld: (%lld+%lld, %lld+%lld)",
              (long long)i, (long long)B, (long long)n, (long long)p->b0, (long long)p->nb, (long long)p->r0,
              (long long)p->rows);
        CHECK(p->r0 % 1024 == 0 && p->rows <= P && (p->nb == 1 || (p->r0 == 0 && p->rows == n)) &&
                  p->nb * p->rows <= (P > n ? P : n),
              "piece %lld breaks the plan's rules", (long long)i);
        if (p->nb > 1 || p->r0 + p->rows == n) { /* whole problems done */
            b = p->b0 + p->nb;
            r = 0;
        } else {
            r = p->r0 + p->rows;
        }
    }
    CHECK(b == B && r == 0, "plan of B %lld n %lld stops at problem %lld row %lld", (long long)B, (long long)n,
          (long long)b, (long long)r);
    fkm_piece_max(pc, np, &max_nb, &max_rows);
    CHECK(max_rows <= P && max_nb * max_rows >= pc[0].nb * pc[0].rows, "piece maxima");
    free(pc);
}

static void check_residency(void)
{
    fkm_piece *pc = NULL;
    int64_t np = 0;
    const int64_t P = 1 << 20, n = 10 * P + 12345; /* 11 pieces, the last short */
    const uint64_t row = 16, full = (uint64_t)P * row, total = (uint64_t)n * row;
    CHECK(fkm_piece_plan(NULL, 1, n, P, &pc, &np) == FKM_OK && np == 11, "plan");
    CHECK(fkm_choose_resident(pc, np, row, total, 2) == 0, "X fits: nothing streamed");
    for (int64_t i = 0; i < np; i++) CHECK(pc[i].resident, "X fits: piece %lld not resident", (long long)i);
    CHECK(fkm_choose_resident(pc, np, row, 2 * full - 1, 2) == -1, "room below two buffers accepted");
    for (int64_t keep = 0; keep <= 10; keep++) {
        const uint64_t room = 2 * full + (uint64_t)keep * full + full / 2;
        const int64_t ns = fkm_choose_resident(pc, np, row, room, 2);
        int64_t streamed = 0, run = 0, longest = 0;
        for (int64_t i = 0; i < np; i++) {
            streamed += !pc[i].resident;
            run = pc[i].resident ? run + 1 : 0;
            if (run > longest) longest = run;
        }
        const int64_t want = room >= total ? 0 : np - keep; /* once X fits, no buffers either */
        CHECK(ns == want && streamed == ns, "room for %lld pieces: %lld streamed (marked %lld), expected %lld",
              (long long)keep, (long long)ns, (long long)streamed, (long long)want);
        /* evenly spread: no run of resident pieces longer than the average gap, rounded up */
        CHECK(ns <= 0 || longest <= (np - ns + ns - 1) / ns, "room for %lld: a run of %lld resident pieces",
              (long long)keep, (long long)longest);
    }
    free(pc);
}

/* The GPU backend registers (pins) the caller's buffer for direct copies, but not a memory-
 * mapped file (src/core/host_memory.c): anonymous memory is not file-backed, a mapping of a
 * file is, and so is a range that only overlaps one. */
static void check_file_backed(void)
{
    const size_t len = 1 << 20;
    char *heap = calloc(len, 1); /* calloc: the function only reads the address, but gcc cannot know */
    CHECK(heap && !fkm_host_range_file_backed(heap, len), "malloc'd memory reported file-backed");
    free(heap);
    FILE *f = tmpfile();
    CHECK(f != NULL, "tmpfile");
    if (!f) return;
    char block[4096] = {1};
    for (size_t i = 0; i < len / sizeof block; i++) fwrite(block, 1, sizeof block, f);
    fflush(f);
    unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    CHECK(map != MAP_FAILED, "mmap");
    if (map != MAP_FAILED) {
        CHECK(fkm_host_range_file_backed(map, len), "a mapped file not reported file-backed");
        CHECK(fkm_host_range_file_backed(map + len - 1, 1), "the last byte of a mapped file");
        munmap(map, len);
    }
    fclose(f);
}

int main(void)
{
    check_file_backed();
    check_piece_rows();
    const int64_t P = 1 << 20;
    check_plan(1, 5 * P + 7, P, 6);       /* row pieces, the last short */
    check_plan(3, P + 200000, P, 6);      /* every problem cut in two */
    check_plan(40, 60000, P, 3);          /* 17 problems per piece: 17, 17, 6 */
    check_plan(7, P, P, 7);               /* one problem per piece, exactly */
    check_plan(1, 1, P, 1);
    check_plan(5, 3000, 1 << 14, 1);      /* 5 problems in one piece of at most 16384 rows */
    check_residency();
    return tc_finish("test_plan");
}
