/* plan.h — how a GPU backend cuts X into pieces and which pieces stay in device memory
 * (docs/OUT_OF_CORE.md). Plain C, no device calls, so that the rules are tested without a
 * GPU (tests/test_plan.c); src/cuda/stream.cu moves the bytes.
 *
 * The plan depends only on the shape (batch B, rows n, row size): never on the device, the
 * budget, where X is or what is resident. With P = fkm_piece_rows(d, es), a piece is either
 * a group of whole problems (n <= P: floor(P / n) problems, at least one) or P consecutive
 * rows of one problem (n > P; the last piece of a problem may be shorter). Per-piece results
 * folded in plan order are then the same bits wherever each piece was. */
#ifndef FKM_PLAN_H
#define FKM_PLAN_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fkm_piece {
    int64_t b0, nb;      /* problems b0 .. b0 + nb - 1 */
    int64_t r0, rows;    /* their rows r0 .. r0 + rows - 1 */
    int resident;
    size_t off;          /* resident: byte offset in the resident block */
} fkm_piece;

/* Rows per piece for rows of d elements of es bytes: part of the update's summation order, so
 * a function of the shape alone: the largest power of two that keeps a piece (rows padded to
 * 8 elements) within 256 MB, between 2^14 and 2^20 rows (a multiple of the GPU scan's
 * 1024-row chunk). Big enough that per-piece launches cost little, small enough that two
 * streaming buffers leave most of the GPU to resident rows. */
int64_t fkm_piece_rows(int64_t d, size_t es);

/* The pieces of a problem shape in plan order (malloc'd into *out, count in *count), with
 * piece_rows = fkm_piece_rows(...). */
fkm_status fkm_piece_plan(fkm_ctx *ctx, int64_t batch, int64_t n, int64_t piece_rows, fkm_piece **out,
                          int64_t *count);

/* The largest number of problems, and of rows per problem, of any piece. */
void fkm_piece_max(const fkm_piece *pc, int64_t count, int64_t *max_nb, int64_t *max_rows);

/* Marks the pieces that stay on the device when `room` bytes are free for X and a piece
 * takes nb * rows * row_bytes: all of them when X fits; else as many as fit beside nbuf
 * streaming buffers of the largest piece, the streamed ones spread evenly over the plan (so
 * that copies run while the resident pieces between them are computed). Returns the number
 * of streamed pieces, or -1 when even nbuf buffers do not fit (every piece is then marked
 * resident, meaning nothing). */
int64_t fkm_choose_resident(fkm_piece *pc, int64_t count, uint64_t row_bytes, uint64_t room, int nbuf);

#ifdef __cplusplus
}
#endif
#endif
