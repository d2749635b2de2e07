/* stream.cuh — where X lives on the device, and passes over it in pieces (out-of-core).
 *
 * X is cut into pieces by the plan of core/plan.h (fixed by the shape alone). The update's
 * sums are a fixed left fold over the pieces in plan order, every term computed from its
 * piece alone: the same bits whether a piece was resident or streamed. (Streamed: one update
 * call per piece, its `accumulate` flag on after a problem's first; all resident: the pieces
 * in one batched call, then a fold kernel: backend.cu's update_resident.)
 *
 * Placement. Device X is used in place (every piece resident). Host X: as many pieces as the
 * budget allows are copied to the device once ("resident"); the others are copied in every
 * pass into one of two device buffers on a copy stream, the copy of the next streamed piece
 * overlapping the work on the current one (events order the two streams). The streamed
 * pieces are spread evenly over the plan, so that the copy engine works while the resident
 * pieces between them are computed. Copies come straight from the caller's buffer when it is
 * pinned (or could be registered with cudaHostRegister for the call), else through two pinned
 * staging buffers. */
#ifndef FKM_CUDA_STREAM_CUH
#define FKM_CUDA_STREAM_CUH

#include "cuda/common.cuh"

extern "C" {
#include "core/plan.h"
}

typedef struct fkm_xstream fkm_xstream;

/* Where X is and how much room the rest of the call takes. */
typedef struct fkm_xstream_args {
    const fkm_problem *pb;     /* the caller's problem (X host or device) */
    int x_on_device;           /* pb->X is device memory */
    int in_place;              /* ... and the kernels can read it where it is */
    uint64_t workspace_bytes;  /* device memory the call holds besides X */
    uint64_t free_bytes;       /* free device memory now */
    cudaStream_t stream;       /* the compute stream (resident copies are ordered before it) */
} fkm_xstream_args;

/* Places X under the budget (args->pb->gpu_mem_bytes, 0 = free memory less a reserve) and
 * fills ctx->placement. FKM_E_INVALID when an explicit budget cannot hold the workspace plus
 * two streaming buffers, FKM_E_NOMEM when free memory cannot. */
fkm_status fkm_xstream_open(fkm_ctx *ctx, const fkm_xstream_args *args, fkm_xstream **out);
/* Waits for its copies, frees buffers, events, its stream and host registrations. NULL-safe. */
void fkm_xstream_close(fkm_xstream *xs);

/* Every piece resident (or X used in place): *whole is then the whole batch as the kernels
 * read it. */
int fkm_xstream_all_resident(const fkm_xstream *xs, fkm_dev_problem *whole);
const fkm_piece *fkm_xstream_pieces(const fkm_xstream *xs, int64_t *count);

/* One pass: fn(ctx, piece, view, user) for every piece in plan order, with view the piece's
 * rows on the device (view->X, ld, batch_stride, n = piece rows, batch = piece problems; the
 * other fields as `base`). fn enqueues its work on `stream` and must not synchronise it;
 * streamed pieces arrive through the copy stream. Returns with the work enqueued (the caller
 * synchronises `stream`). */
typedef fkm_status (*fkm_piece_fn)(fkm_ctx *ctx, const fkm_piece *pc, const fkm_dev_problem *view, void *user);
fkm_status fkm_xstream_pass(fkm_ctx *ctx, fkm_xstream *xs, const fkm_dev_problem *base, cudaStream_t stream,
                            fkm_piece_fn fn, void *user);

/* After a pass and a synchronisation of its stream, when part of X is streamed: the device
 * seconds its copies and its pieces' work took (timing events around each; summed). Both 0
 * when nothing is streamed (no events are recorded then). */
fkm_status fkm_xstream_times(fkm_ctx *ctx, const fkm_xstream *xs, double *copy_s, double *compute_s);

#endif
