/* backend.cu — the CUDA backend's table (see core/internal.h): per-call device state, input
 * placement (stream.cuh: device inputs used in place, host inputs resident as far as the GPU
 * memory budget allows and streamed beyond it), and the glue between the Lloyd loop's
 * host-side buffers and the kernels in assign.cu, update.cu and scan.cu.
 *
 * The centroids stay on the device between iterations (finalize): per iteration the host
 * receives the k weights, the objectives and the shifts (through small pinned buffers); the
 * k x d centroids cross only when the loop gives them (first iteration, after a host-side
 * relocation: copied from the caller's buffer as it is, see cuda_assign) and at the end
 * (get_centroids, straight into the caller's output); labels and per-point objectives stay
 * on the device. The update's sums are a left fold over the pieces of X (stream.cuh), so
 * they are the same bits however X is placed. When part of X is streamed, the assignment pass
 * runs the update on each piece while it is on the device (one copy of X per iteration, not
 * two); reduce then hands out what that pass computed. When all of X is resident, the update
 * runs over all pieces in one call and folds them on the device (update_resident): the same
 * bits, without a histogram/scan/scatter/reduce/combine round per piece. */
#include "cuda/assign.cuh"
#include "cuda/exact.cuh"
#include "cuda/kmeanspp.cuh"
#include "cuda/scan.cuh"
#include "cuda/stream.cuh"
#include "cuda/update.cuh"

#include <stdlib.h>
#include <string.h>

typedef struct cuda_state {
    fkm_problem pb;          /* the host view the core gave (X may be a device pointer) */
    fkm_dev_problem dp;      /* what the kernels read */
    cudaStream_t stream;
    int x_on_device;         /* the caller's X is device memory */
    fkm_xstream *xs;         /* where X's pieces are (resident or streamed) */
    int whole;               /* every piece resident: dp covers the whole batch */
    const fkm_piece *pieces; /* the plan (owned by xs) */
    int64_t npieces;
    int64_t *slot;           /* per piece: its first counter in `changed` */
    int fused;               /* the last assign also ran the update (outputs below valid) */
    fkm_cuda_scan_ws *sws;
    float *w_dev;            /* device weights (copied from pb.weights), or NULL */
    int32_t *labels;         /* n, device */
    float *cent;             /* k x d, device: centroids of the last assign (or finalize) */
    float *cent_next;        /* k x d, device: finalize's output before the swap */
    double *shift_rows;      /* batch x k, device: squared shift of each centroid in finalize */
    unsigned char *active, *active_h;    /* batch: problems finalize updates (device, pinned) */
    double *sums, *weight, *pobj, *obj;  /* update outputs, device */
    int want_pobj, pobj_ready;           /* pobj (per-point objectives) only for cuda_farthest */
    unsigned long long *changed;         /* device counters: one per (piece, problem) */
    /* pinned host staging of the small per-iteration results (no k x d centroid buffer: see
     * cuda_assign) */
    double *sums_h, *weight_h, *obj_h;
    unsigned long long *changed_h;
    fkm_cuda_assign_ws *aws;
    fkm_cuda_update_ws *uws;
    fkm_cuda_exact_ws *ews;  /* precision = exact only (exact.cu) */
    int have_sums;           /* the last reduce computed sums (objectives valid either way) */
    /* X wholly resident and uws sized for all of it (open_batched): the update runs in one
     * call over all pieces (update_resident) */
    int batched;
    int64_t per;             /* pieces per problem (1: problems grouped into pieces) */
    int64_t piece_rows;      /* rows of a piece but maybe a problem's last (per > 1) */
    double *psums, *pweight, *pobj_piece; /* per > 1: each piece's outputs, folded in plan order */
} cuda_state;

static int is_device_pointer(const void *p)
{
    cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static fkm_status cuda_copy(fkm_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    FKM_CUDA_TRY(ctx, cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    return FKM_OK;
}

static void cuda_close(void *state)
{
    cuda_state *st = (cuda_state *)state;
    if (!st) return;
    if (st->stream) cudaStreamSynchronize(st->stream);
    fkm_xstream_close(st->xs);
    fkm_cuda_assign_destroy(st->aws);
    fkm_cuda_update_destroy(st->uws);
    fkm_cuda_exact_destroy(st->ews);
    fkm_cuda_scan_destroy(st->sws);
    free(st->slot);
    cudaFree(st->w_dev), cudaFree(st->labels), cudaFree(st->cent);
    cudaFree(st->cent_next), cudaFree(st->shift_rows), cudaFree(st->active), cudaFreeHost(st->active_h);
    cudaFree(st->sums), cudaFree(st->weight), cudaFree(st->pobj), cudaFree(st->obj), cudaFree(st->changed);
    cudaFree(st->psums), cudaFree(st->pweight), cudaFree(st->pobj_piece);
    cudaFreeHost(st->sums_h), cudaFreeHost(st->weight_h), cudaFreeHost(st->obj_h);
    cudaFreeHost(st->changed_h);
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st);
}

/* The tensor-core kernels read rows in 16-byte pieces: they need ld % 8 == 0, d % 8 == 0 and
 * an aligned base (a zero-padded copy is made otherwise). */
static int rows_fit_kernels(const fkm_problem *pb, const void *X)
{
    const size_t es = fkm_dtype_size(pb->dtype);
    return (pb->ld * (int64_t)es) % 16 == 0 && (pb->d * (int64_t)es) % 16 == 0 && ((uintptr_t)X % 16) == 0;
}

/* Device X that the kernels can read where it is. */
static int usable_in_place(const fkm_problem *pb)
{
    const size_t es = fkm_dtype_size(pb->dtype);
    return rows_fit_kernels(pb, pb->X) && (pb->batch_stride * (int64_t)es) % 16 == 0;
}

static size_t free_device_bytes(void)
{
    size_t fr = 0, total = 0;
    if (cudaMemGetInfo(&fr, &total) != cudaSuccess) (void)cudaGetLastError();
    return fr;
}

/* X wholly resident in more than one piece: an update workspace for all of X's rows (and,
 * when problems are cut into row pieces, each piece's outputs for the fold) replaces the
 * per-piece one, so that update_resident runs all pieces at once. Taken only when it fits the
 * budget (gpu_mem_bytes against everything this call allocated since free0, else the free
 * memory's reserve, as stream.cu's): otherwise the update stays piece by piece, with the
 * same bits. */
/* The per-point objectives (B x N doubles): allocated by cuda_farthest when a relocation first
 * needs them, but counted in the workspace from the start, so that a fit that relocates stays
 * within its memory budget (and within the memory placement left free). */
static size_t pobj_bytes(const cuda_state *st) { return (size_t)(st->pb.batch * st->pb.n) * sizeof(double); }

static void open_batched(cuda_state *st, size_t free0)
{
    const int64_t B = st->pb.batch, n = st->pb.n, k = st->pb.k, d = st->pb.d;
    if (st->npieces < 2) return; /* one piece: already one call */
    const fkm_piece *pc = st->pieces;
    fkm_dev_problem shape = st->dp; /* grouped problems (a piece holds whole ones): the batch */
    int64_t per = 1, P = n;
    if (pc[0].nb == 1 && pc[0].rows < n) { /* row pieces (fkm_piece_plan): per pieces of P rows */
        P = pc[0].rows;
        per = st->npieces / B;
        if ((int64_t)B * per > INT32_MAX) return;
        shape.batch = (int32_t)(B * per);
        shape.n = P;
    }
    const size_t before = free_device_bytes();
    fkm_cuda_update_ws *ws = NULL;
    double *ps = NULL, *pw = NULL, *po = NULL;
    const size_t np = (size_t)(B * per);
    int ok = fkm_cuda_update_create(NULL, &shape, &ws) == FKM_OK;
    if (ok && per > 1)
        ok = cudaMalloc((void **)&ps, np * (size_t)(k * d) * sizeof(double)) == cudaSuccess &&
             cudaMalloc((void **)&pw, np * (size_t)k * sizeof(double)) == cudaSuccess &&
             cudaMalloc((void **)&po, np * sizeof(double)) == cudaSuccess;
    if (ok) {
        /* the per-point objectives, allocated on the first relocation only, count as taken */
        const size_t now = free_device_bytes(), pobj = pobj_bytes(st);
        const uint64_t budget = st->pb.gpu_mem_bytes;
        const size_t reserve = (size_t)512 << 20 < before / 8 ? (size_t)512 << 20 : before / 8;
        ok = budget ? (uint64_t)(free0 > now ? free0 - now : 0) + pobj <= budget : now >= reserve + pobj;
    }
    if (!ok) {
        fkm_cuda_update_destroy(ws);
        cudaFree(ps), cudaFree(pw), cudaFree(po);
        (void)cudaGetLastError();
        return;
    }
    fkm_cuda_update_destroy(st->uws); /* the new one also fits every piece */
    st->uws = ws;
    st->psums = ps, st->pweight = pw, st->pobj_piece = po;
    st->batched = 1, st->per = per, st->piece_rows = P;
}

static fkm_status cuda_open(fkm_ctx *ctx, const fkm_problem *pb, void **out)
{
    *out = NULL;
    cuda_state *st = (cuda_state *)calloc(1, sizeof *st);
    if (!st) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the CUDA backend state");
    st->pb = *pb;
    memset(&ctx->placement, 0, sizeof ctx->placement); /* filled once X is placed */
    fkm_status s = FKM_OK;
    const int64_t B = pb->batch, n = pb->n * B, k = pb->k * B, d = pb->d; /* n, k: over the batch */
    const size_t kd = (size_t)(k * d);
    fkm_piece *plan = NULL;
    int64_t nslots = 0, max_nb, max_rows;
    size_t free0;
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking), s, fail);
    free0 = free_device_bytes(); /* the workspace is what the allocations below take from it */
    /* the plan sizes the per-piece workspaces and counters (fkm_xstream_open makes the same) */
    if ((s = fkm_piece_plan(ctx, B, pb->n, fkm_piece_rows(d, fkm_dtype_size(pb->dtype)), &plan, &st->npieces)) !=
        FKM_OK)
        goto fail;
    fkm_piece_max(plan, st->npieces, &max_nb, &max_rows);
    if (!(st->slot = (int64_t *)malloc((size_t)st->npieces * sizeof *st->slot))) {
        free(plan);
        s = fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the piece counters");
        goto fail;
    }
    for (int64_t i = 0; i < st->npieces; i++) st->slot[i] = nslots, nslots += plan[i].nb;
    free(plan);
    st->dp.dtype = pb->dtype;
    st->dp.n = pb->n;
    st->dp.d = d;
    st->dp.batch = (int32_t)B;
    st->dp.k = pb->k;
    st->dp.metric = pb->metric;
    if (pb->weights) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->w_dev, (size_t)n * sizeof(float)), s, fail);
        FKM_CUDA_TRY_GOTO(ctx, cudaMemcpyAsync(st->w_dev, pb->weights, (size_t)n * sizeof(float), cudaMemcpyDefault,
                                               st->stream), s, fail);
    }
    st->dp.weights = st->w_dev;
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->labels, (size_t)n * sizeof(int32_t)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(st->labels, 0xff, (size_t)n * sizeof(int32_t), st->stream), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->cent, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->cent_next, kd * sizeof(float)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->shift_rows, (size_t)k * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->sums, kd * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->weight, (size_t)k * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->obj, 2 * (size_t)B * sizeof(double)), s, fail); /* objectives, max shifts */
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->active, (size_t)B), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&st->changed, (size_t)nslots * sizeof(unsigned long long)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->weight_h, (size_t)k * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->obj_h, 2 * (size_t)B * sizeof(double)), s, fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->changed_h, (size_t)nslots * sizeof(unsigned long long)), s,
                      fail);
    FKM_CUDA_TRY_GOTO(ctx, cudaMallocHost((void **)&st->active_h, (size_t)B), s, fail);
    if ((s = fkm_cuda_assign_create(ctx, &st->dp, pb->precision, &st->aws)) != FKM_OK) goto fail;
    {
        fkm_dev_problem piece = st->dp; /* the update's workspace serves the largest piece */
        piece.batch = (int32_t)max_nb;
        piece.n = max_rows;
        if ((s = fkm_cuda_update_create(ctx, &piece, &st->uws)) != FKM_OK) goto fail;
    }
    if (pb->precision == FKM_PRECISION_EXACT && (s = fkm_cuda_exact_create(ctx, &st->dp, &st->ews)) != FKM_OK)
        goto fail;
    if ((s = fkm_cuda_scan_create(ctx, B, pb->n, d, max_nb * max_rows, &st->sws)) != FKM_OK) goto fail;
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(st->stream), s, fail);
    {
        const size_t free1 = free_device_bytes(), pobj = pobj_bytes(st);
        st->x_on_device = is_device_pointer(pb->X);
        const fkm_xstream_args xa = {pb, st->x_on_device, st->x_on_device && usable_in_place(pb),
                                     (free0 > free1 ? (uint64_t)(free0 - free1) : 0) + pobj,
                                     free1 > pobj ? free1 - pobj : 0, st->stream};
        if ((s = fkm_xstream_open(ctx, &xa, &st->xs)) != FKM_OK) goto fail;
    }
    st->pieces = fkm_xstream_pieces(st->xs, &st->npieces);
    st->whole = fkm_xstream_all_resident(st->xs, &st->dp);
    if (st->whole) open_batched(st, free0);
    if (st->ews && !st->whole) { /* the exact pass (exact.cu) reads X in one piece */
        s = fkm_fail(ctx, FKM_E_UNSUPPORTED, "precision = exact needs all of X resident on the GPU, and the "
                     "memory budget streams part of it: raise the budget (gpu_mem_bytes, --gpu-mem) or use "
                     "precision = fast");
        goto fail;
    }
    FKM_CUDA_TRY_GOTO(ctx, cudaStreamSynchronize(st->stream), s, fail);
    *out = st;
    return FKM_OK;
fail:
    cuda_close(st);
    return s;
}

/* Pass callbacks (stream.cuh): `user` is the state. */
static fkm_status scan_pass0(fkm_ctx *ctx, const fkm_piece *pc, const fkm_dev_problem *v, void *user)
{
    cuda_state *st = (cuda_state *)user;
    return fkm_cuda_scan_piece(ctx, st->sws, v, pc->b0, pc->r0, 0, st->stream);
}

static fkm_status scan_pass1(fkm_ctx *ctx, const fkm_piece *pc, const fkm_dev_problem *v, void *user)
{
    cuda_state *st = (cuda_state *)user;
    return fkm_cuda_scan_piece(ctx, st->sws, v, pc->b0, pc->r0, 1, st->stream);
}

static fkm_status cuda_scan(fkm_ctx *ctx, void *state, int64_t *first_nonfinite, double *mean_var)
{
    cuda_state *st = (cuda_state *)state;
    fkm_status s;
    if ((s = fkm_cuda_scan_begin(ctx, st->sws, st->stream)) != FKM_OK) return s;
    if ((s = fkm_xstream_pass(ctx, st->xs, &st->dp, st->stream, scan_pass0, st)) != FKM_OK) return s;
    if ((s = fkm_cuda_scan_combine(ctx, st->sws, 0, st->stream)) != FKM_OK) return s;
    if ((s = fkm_xstream_pass(ctx, st->xs, &st->dp, st->stream, scan_pass1, st)) != FKM_OK) return s;
    if ((s = fkm_cuda_scan_combine(ctx, st->sws, 1, st->stream)) != FKM_OK) return s;
    return fkm_cuda_scan_finish(ctx, st->sws, first_nonfinite, mean_var, st->stream);
}

static fkm_status cuda_fetch_row(fkm_ctx *ctx, void *state, int64_t i, float *row)
{
    cuda_state *st = (cuda_state *)state;
    const fkm_problem *pb = &st->pb;
    const int normalise = pb->metric == FKM_METRIC_COSINE;
    const size_t es = fkm_dtype_size(pb->dtype);
    /* global row i of the batch: problem i / n, row i % n */
    const unsigned char *X = (const unsigned char *)pb->X + (size_t)(i / pb->n * pb->batch_stride) * es;
    i %= pb->n;
    if (!st->x_on_device) {
        fkm_load_row(X, pb->dtype, pb->ld, i, pb->d, normalise, row);
        return FKM_OK;
    }
    /* a device row: bring its raw elements over, then convert exactly as the CPU does */
    unsigned char *raw = (unsigned char *)malloc((size_t)pb->d * es);
    if (!raw) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for a row");
    cudaError_t e = cudaMemcpy(raw, X + (size_t)(i * pb->ld) * es, (size_t)pb->d * es, cudaMemcpyDeviceToHost);
    if (e == cudaSuccess) fkm_load_row(raw, pb->dtype, pb->d, 0, pb->d, normalise, row);
    free(raw);
    if (e != cudaSuccess) return fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaMemcpy(row)");
    return FKM_OK;
}

/* The update over one piece: problem b0 + b of the batch is problem b of the piece. The first
 * piece of a problem (r0 == 0) overwrites its sums, weights and objective, the later ones add
 * to them in plan order (the fixed left fold of stream.cuh). sums NULL: not wanted. */
static fkm_status update_piece(fkm_ctx *ctx, cuda_state *st, const fkm_piece *pc, const fkm_dev_problem *v,
                               double *sums)
{
    const int64_t k = st->pb.k, d = st->pb.d, off = pc->b0 * st->pb.n + pc->r0;
    return fkm_cuda_update(ctx, st->uws, v, st->labels + off, st->cent + pc->b0 * k * d,
                           sums ? sums + pc->b0 * k * d : NULL, st->weight + pc->b0 * k,
                           st->want_pobj ? st->pobj + off : NULL,
                           st->obj + pc->b0, pc->r0 > 0, st->stream);
}

static fkm_status assign_piece(fkm_ctx *ctx, const fkm_piece *pc, const fkm_dev_problem *v, void *user)
{
    cuda_state *st = (cuda_state *)user;
    const int64_t k = st->pb.k, d = st->pb.d;
    fkm_status s = fkm_cuda_assign(ctx, st->aws, v, st->cent + pc->b0 * k * d,
                                   st->labels + pc->b0 * st->pb.n + pc->r0, st->changed + st->slot[pc - st->pieces],
                                   NULL, st->stream);
    /* a streamed piece is on the device now and not again before the next pass */
    if (s == FKM_OK && !st->whole) s = update_piece(ctx, st, pc, v, st->sums);
    return s;
}

static fkm_status update_pass(fkm_ctx *ctx, const fkm_piece *pc, const fkm_dev_problem *v, void *user)
{
    cuda_state *st = (cuda_state *)user;
    return update_piece(ctx, st, pc, v, st->have_sums ? st->sums : NULL);
}

/* X wholly resident (st->batched): every piece in one call, the pieces being the problems of
 * the call (fkm_cuda_update_parts: piece j of problem s is part j of s, the last one maybe
 * shorter), then the pieces' outputs folded in plan order (fkm_cuda_update_fold). A piece's
 * results do not depend on what else its call holds (update.cuh), and the fold performs
 * exactly update_piece's accumulate additions, so these are the bits of the piece-by-piece
 * pass. Problems grouped into pieces have one piece each: one call over the batch, no fold. */
static fkm_status update_resident(fkm_ctx *ctx, cuda_state *st)
{
    const int64_t B = st->pb.batch, n = st->pb.n, k = st->pb.k, d = st->pb.d;
    double *sums = st->have_sums ? st->sums : NULL, *pobj = st->want_pobj ? st->pobj : NULL;
    if (st->per == 1)
        return fkm_cuda_update(ctx, st->uws, &st->dp, st->labels, st->cent, sums, st->weight, pobj, st->obj, 0,
                               st->stream);
    fkm_dev_problem v = st->dp;
    v.batch = (int32_t)(B * st->per);
    v.n = st->piece_rows;
    fkm_status s = fkm_cuda_update_parts(ctx, st->uws, &v, n, st->labels, st->cent, sums ? st->psums : NULL,
                                         st->pweight, pobj, st->pobj_piece, 0, st->stream);
    if (s != FKM_OK) return s;
    return fkm_cuda_update_fold(ctx, B, st->per, k, d, sums ? st->psums : NULL, st->pweight, st->pobj_piece, sums,
                                st->weight, st->obj, st->stream);
}

/* The update over all of X with the current labels and centroids (reduce, farthest). */
static fkm_status update_all(fkm_ctx *ctx, cuda_state *st)
{
    if (st->batched) return update_resident(ctx, st);
    return fkm_xstream_pass(ctx, st->xs, &st->dp, st->stream, update_pass, st);
}

static fkm_status cuda_assign(fkm_ctx *ctx, void *state, const float *centroids, int64_t *n_changed)
{
    cuda_state *st = (cuda_state *)state;
    const int64_t B = st->pb.batch;
    const size_t bytes = (size_t)(B * st->pb.k * st->pb.d) * sizeof(float);
    /* else: the device centroids of the last finalize. Copied from where the caller keeps
     * them (the loop's host buffer, usually pageable, or the user's initial centroids in host
     * or device memory, fkm_init_direct):
     * no pinned k x d staging buffer, whose cudaMallocHost + cudaFreeHost per fit cost
     * milliseconds at 16-32 MB. The source is not read after this call returns: from pageable
     * memory the runtime may stage the data before cudaMemcpyAsync returns (CUDA runtime API,
     * "API synchronization behavior"), and in any case this function synchronizes the stream
     * below, and cuda_close does on an error return, before the loop frees or changes it.
     * Device centroids (fkm_init_on_device) are ready: their check (cuda_first_nonfinite)
     * ran on the legacy stream and waited for it, after the caller's work there. */
    if (centroids) FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->cent, centroids, bytes, cudaMemcpyDefault, st->stream));
    fkm_status s;
    st->fused = 0;
    st->pobj_ready = 0; /* new labels: the per-point objectives are stale */
    fkm_cuda_exact_counts ex = {0, 0, 0, 0};
    /* all of X on the device: one launch over the batch (labels do not depend on the cut);
     * else piece by piece, the update riding along. Exact mode: X is whole (checked at open) */
    if (st->ews)
        s = fkm_cuda_exact_assign(ctx, st->ews, st->aws, &st->dp, st->cent, st->labels, st->changed,
                                  st->pb.n_threads, &ex, st->stream);
    else if (st->whole) s = fkm_cuda_assign(ctx, st->aws, &st->dp, st->cent, st->labels, st->changed, NULL, st->stream);
    else s = fkm_xstream_pass(ctx, st->xs, &st->dp, st->stream, assign_piece, st);
    if (s != FKM_OK) return s;
    if (st->ews) {
        ctx->exact_points += B * st->pb.n, ctx->exact_rechecked += ex.rechecked;
        ctx->exact_pair += ex.pair, ctx->exact_filter += ex.filter, ctx->exact_host += ex.host;
    }
    const int64_t nslots = st->whole ? B : st->slot[st->npieces - 1] + st->pieces[st->npieces - 1].nb;
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->changed_h, st->changed, (size_t)nslots * sizeof *st->changed_h,
                                      cudaMemcpyDeviceToHost, st->stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
    for (int64_t b = 0; b < B; b++) n_changed[b] = st->whole ? (int64_t)st->changed_h[b] : 0;
    for (int64_t i = 0; !st->whole && i < st->npieces; i++)
        for (int64_t b = 0; b < st->pieces[i].nb; b++)
            n_changed[st->pieces[i].b0 + b] += (int64_t)st->changed_h[st->slot[i] + b];
    st->fused = !st->whole;
    return fkm_xstream_times(ctx, st->xs, &ctx->placement.copy_seconds, &ctx->placement.compute_seconds);
}

static fkm_status cuda_reduce(fkm_ctx *ctx, void *state, const float *centroids, fkm_partials *out)
{
    (void)centroids; /* by contract the centroids of the last assign, already on the device */
    cuda_state *st = (cuda_state *)state;
    const int64_t B = st->pb.batch, k = st->pb.k * B, d = st->pb.d; /* k over the batch */
    const int want = out->sums != NULL;
    if (!st->fused) { /* a fused assign has computed everything, sums included */
        st->have_sums = want || out->keep_sums;
        fkm_status s = update_all(ctx, st);
        if (s != FKM_OK) return s;
    } else {
        st->have_sums = 1;
    }
    /* the host copy of the sums only for callers that ask (streamed accumulation, MPI): B x K x D
     * doubles of pinned memory (32 MB at B=32 K=1000 D=128) would otherwise be allocated and
     * freed by every fit */
    if (want && !st->sums_h)
        FKM_CUDA_TRY(ctx, cudaMallocHost((void **)&st->sums_h, (size_t)(k * d) * sizeof(double)));
    if (want)
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->sums_h, st->sums, (size_t)(k * d) * sizeof(double),
                                          cudaMemcpyDeviceToHost, st->stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->weight_h, st->weight, (size_t)k * sizeof(double), cudaMemcpyDeviceToHost,
                                      st->stream));
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->obj_h, st->obj, (size_t)B * sizeof(double), cudaMemcpyDeviceToHost,
                                      st->stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
    if (want) memcpy(out->sums, st->sums_h, (size_t)(k * d) * sizeof(double));
    if (out->weight) memcpy(out->weight, st->weight_h, (size_t)k * sizeof(double));
    memcpy(out->objective, st->obj_h, (size_t)B * sizeof(double));
    return FKM_OK;
}

/* Lane 0's running sum acc += t_j * t_j over the 32 columns j0 .. j0 + 31 in column order,
 * t_j held by lane j - j0 (0 where j >= d): the host's loop, one term at a time. */
static __device__ __forceinline__ double lane0_sum_sq(double acc, double t, int64_t j0, int64_t d)
{
    const int64_t m = d - j0 < 32 ? d - j0 : 32;
    for (int i = 0; i < (int)m; i++) {
        const double ti = __shfl_sync(0xffffffffu, t, i);
        acc += ti * ti;
    }
    return acc;
}

/* One warp per centroid of the batch: exactly core's divide_and_shift (lloyd.c), same
 * operations in the same order, so the device path and the host path give bitwise the same
 * centroids (and shifts). The columns are spread over the lanes (coalesced loads; one thread
 * per centroid walking its row read k rows in lockstep, uncoalesced); the two sums over the
 * columns (cosine's squared norm, the shift) stay in column order on lane 0, which takes
 * each block of 32 terms by shuffle. Problems not active keep their centroids. */
__global__ void finalize_kernel(const double *__restrict__ sums, const double *__restrict__ weight,
                                const float *__restrict__ old, int64_t k_total, int64_t k, int64_t d, int cosine,
                                const unsigned char *__restrict__ active, float *__restrict__ out,
                                double *__restrict__ shift_rows)
{
    const int lane = threadIdx.x & 31;
    const int64_t c = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (c >= k_total) return; /* warp-uniform */
    const double *sum = sums + c * d;
    const float *o = old + c * d;
    float *dst = out + c * d;
    if (!active[c / k]) {
        for (int64_t j = lane; j < d; j += 32) dst[j] = o[j];
        if (lane == 0) shift_rows[c] = 0.0;
        return;
    }
    double scale = weight[c] > 0.0 ? 1.0 / weight[c] : 0.0;
    if (scale > 0.0 && cosine) {
        double ss = 0.0;
        for (int64_t j0 = 0; j0 < d; j0 += 32) {
            const int64_t j = j0 + lane;
            ss = lane0_sum_sq(ss, j < d ? sum[j] : 0.0, j0, d);
        }
        ss = __shfl_sync(0xffffffffu, ss, 0);
        scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    }
    double shift = 0.0;
    for (int64_t j0 = 0; j0 < d; j0 += 32) {
        const int64_t j = j0 + lane;
        double t = 0.0;
        if (j < d) {
            const float v = scale > 0.0 ? (float)(sum[j] * scale) : o[j];
            dst[j] = v;
            t = (double)v - o[j];
        }
        shift = lane0_sum_sq(shift, t, j0, d);
    }
    if (lane == 0) shift_rows[c] = shift;
}

static fkm_status cuda_finalize(fkm_ctx *ctx, void *state, const unsigned char *active, double *max_shift)
{
    cuda_state *st = (cuda_state *)state;
    const int64_t B = st->pb.batch, k = st->pb.k, d = st->pb.d;
    memcpy(st->active_h, active, (size_t)B);
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->active, st->active_h, (size_t)B, cudaMemcpyHostToDevice, st->stream));
    finalize_kernel<<<(unsigned)fkm_ceil_div(B * k, 4), 128, 0, st->stream>>>( /* 4 warps, a centroid each */
        st->sums, st->weight, st->cent, B * k, k, d, st->pb.metric == FKM_METRIC_COSINE, st->active, st->cent_next,
        st->shift_rows);
    FKM_CUDA_LAUNCHED(ctx, "finalize_kernel");
    fkm_status s = fkm_cuda_max_per_problem(ctx, st->shift_rows, k, B, st->obj + B, st->stream);
    if (s != FKM_OK) return s;
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->obj_h + B, st->obj + B, (size_t)B * sizeof(double), cudaMemcpyDeviceToHost,
                                      st->stream));
    FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
    memcpy(max_shift, st->obj_h + B, (size_t)B * sizeof(double));
    float *t = st->cent;
    st->cent = st->cent_next;
    st->cent_next = t;
    return FKM_OK;
}

static fkm_status cuda_get_sums(fkm_ctx *ctx, void *state, double *sums)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(sums, st->sums, (size_t)(st->pb.batch * st->pb.k * st->pb.d) * sizeof(double),
                                 cudaMemcpyDeviceToHost));
    return FKM_OK;
}

/* To host or device memory (the caller's output at the end of a fit: device to device, no
 * trip through the host). The state's stream has been synchronized (every assign, reduce and
 * finalize ends so), so st->cent is final; the copy runs on the legacy default stream, as
 * get_labels' and the host-to-device cudaMemcpy this replaces did: ordered after the caller's
 * work on blocking streams, before the caller's later work there. */
static fkm_status cuda_get_centroids(fkm_ctx *ctx, void *state, float *centroids)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(centroids, st->cent, (size_t)(st->pb.batch * st->pb.k * st->pb.d) * sizeof(float),
                                 cudaMemcpyDefault));
    return FKM_OK;
}

/* Largest objective first, ties to the lower index. */
static int obj_before(const double *obj, int64_t a, int64_t b)
{
    return obj[a] > obj[b] || (obj[a] == obj[b] && a < b);
}

static fkm_status cuda_farthest(fkm_ctx *ctx, void *state, int64_t problem, int64_t count, int64_t *idx)
{
    /* rare (only with empty clusters): the per-point objectives, which the update skips
     * otherwise (another pass over X with the same labels and centroids: the sums, weights and
     * objectives it rewrites come out bit for bit the same), brought over and selected on the
     * host */
    cuda_state *st = (cuda_state *)state;
    const int64_t n = st->pb.n;
    if (!st->pobj_ready) {
        if (!st->pobj) /* first relocation of this fit: B x N doubles, not needed before */
            FKM_CUDA_TRY(ctx, cudaMalloc((void **)&st->pobj, (size_t)(st->pb.batch * n) * sizeof(double)));
        st->want_pobj = 1;
        fkm_status s = update_all(ctx, st);
        st->want_pobj = 0;
        if (s != FKM_OK) return s;
        FKM_CUDA_TRY(ctx, cudaStreamSynchronize(st->stream));
        st->pobj_ready = 1;
    }
    if (count > n) count = n;
    double *obj = (double *)malloc((size_t)n * sizeof(double));
    if (!obj) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the farthest-point search");
    cudaError_t e = cudaMemcpy(obj, st->pobj + problem * n, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        free(obj);
        return fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaMemcpy(objectives)");
    }
    /* insertion into a sorted list of `count`: count is the number of empty clusters, small */
    int64_t size = 0;
    for (int64_t i = 0; i < n; i++) {
        if (size == count && !obj_before(obj, i, idx[size - 1])) continue;
        int64_t p = size < count ? size++ : size - 1;
        while (p > 0 && obj_before(obj, i, idx[p - 1])) {
            idx[p] = idx[p - 1];
            p--;
        }
        idx[p] = i;
    }
    free(obj);
    return FKM_OK;
}

static fkm_status cuda_get_label(fkm_ctx *ctx, void *state, int64_t i, int32_t *label)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(label, st->labels + i, sizeof *label, cudaMemcpyDeviceToHost));
    return FKM_OK;
}

static fkm_status cuda_get_labels(fkm_ctx *ctx, void *state, int32_t *labels)
{
    cuda_state *st = (cuda_state *)state;
    FKM_CUDA_TRY(ctx, cudaMemcpy(labels, st->labels, (size_t)(st->pb.batch * st->pb.n) * sizeof *labels,
                                 cudaMemcpyDefault));
    return FKM_OK;
}

/* Distances of every point to every centroid, in f32 from the f32 row (normalised for cosine)
 * and the f32 centroid, as the CPU backend defines them. One thread per (point, centroid):
 * transform is the one N x K output there is, and it is bound by writing it. */
template <typename T>
__global__ void transform_kernel(const T *X, int64_t n, int64_t d, int64_t ld, const float *C, int64_t k,
                                 int metric, float *dist)
{
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n * k) return;
    const int64_t i = t / k, c = t % k;
    const T *x = X + i * ld;
    const float *cc = C + c * d;
    double scale = 1.0;
    if (metric == FKM_METRIC_COSINE) {
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += fkm_to_double(x[j]) * fkm_to_double(x[j]);
        scale = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    }
    double acc = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const double v = (double)(float)(fkm_to_double(x[j]) * scale);
        if (metric == FKM_METRIC_L2) acc += (v - cc[j]) * (v - cc[j]);
        else acc += v * cc[j];
    }
    dist[t] = metric == FKM_METRIC_L2 ? (float)acc : metric == FKM_METRIC_COSINE ? (float)(1.0 - acc) : (float)acc;
}

/* transform's rows, piece by piece; the n x k output goes to the caller's array directly when
 * it is device memory, else through a device buffer of `cap` rows. */
typedef struct transform_job {
    cuda_state *st;
    float *dist;
    int on_device;
    float *buf;
    int64_t cap;
} transform_job;

template <fkm_dtype DT>
static void launch_transform(const cuda_state *st, const fkm_dev_problem *v, int64_t r, int64_t rows, float *out)
{
    typedef typename fkm_elem<DT>::type T;
    const fkm_problem *pb = &st->pb;
    const unsigned blocks = (unsigned)fkm_ceil_div(rows * pb->k, 256);
    transform_kernel<T><<<blocks, 256, 0, st->stream>>>((const T *)v->X + r * v->ld, rows, pb->d, v->ld, st->cent,
                                                        pb->k, pb->metric, out);
}

static fkm_status transform_piece(fkm_ctx *ctx, const fkm_piece *pc, const fkm_dev_problem *v, void *user)
{
    transform_job *job = (transform_job *)user;
    cuda_state *st = job->st;
    const int64_t k = st->pb.k;
    for (int64_t r = 0; r < v->n; r += job->cap) {
        const int64_t rows = v->n - r < job->cap ? v->n - r : job->cap;
        float *dst = job->dist + (pc->b0 * st->pb.n + pc->r0 + r) * k;
        FKM_DISPATCH_DTYPE(v->dtype, launch_transform<DT>(st, v, r, rows, job->on_device ? dst : job->buf));
        FKM_CUDA_LAUNCHED(ctx, "transform_kernel");
        if (!job->on_device)
            FKM_CUDA_TRY(ctx, cudaMemcpyAsync(dst, job->buf, (size_t)(rows * k) * sizeof(float), cudaMemcpyDeviceToHost,
                                              st->stream));
    }
    return FKM_OK;
}

static fkm_status cuda_transform(fkm_ctx *ctx, void *state, const float *centroids, float *dist)
{
    cuda_state *st = (cuda_state *)state;
    const fkm_problem *pb = &st->pb;
    const size_t kd = (size_t)(pb->k * pb->d);
    /* from the caller's (host) buffer as it is: the stream is synchronized before return (as
     * in cuda_assign) */
    FKM_CUDA_TRY(ctx, cudaMemcpyAsync(st->cent, centroids, kd * sizeof(float), cudaMemcpyDefault, st->stream));
    transform_job job = {st, dist, is_device_pointer(dist), NULL, 0};
    int64_t max_nb, max_rows;
    fkm_piece_max(st->pieces, st->npieces, &max_nb, &max_rows);
    /* the output buffer: at most 64 MB, at least one row (a piece is pb->batch == 1 here) */
    const int64_t by_size = ((int64_t)64 << 20) / (int64_t)(pb->k * sizeof(float));
    job.cap = by_size < 1 ? 1 : by_size < max_rows ? by_size : max_rows;
    if (!job.on_device)
        FKM_CUDA_TRY(ctx, cudaMalloc((void **)&job.buf, (size_t)(job.cap * pb->k) * sizeof(float)));
    fkm_status s = fkm_xstream_pass(ctx, st->xs, &st->dp, st->stream, transform_piece, &job);
    cudaError_t e = cudaStreamSynchronize(st->stream); /* before the buffer goes, even after an error */
    if (s == FKM_OK && e != cudaSuccess) s = fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "cudaStreamSynchronize");
    cudaFree(job.buf);
    return s;
}

static fkm_status cuda_kmeanspp(fkm_ctx *ctx, void *state, int64_t problem, uint64_t seed, float *C)
{
    cuda_state *st = (cuda_state *)state;
    if (!st->whole) return FKM_E_UNSUPPORTED; /* X not all resident: core runs the CPU's over a host view */
    return fkm_cuda_kmeanspp(ctx, &st->dp, problem, seed, C, st->stream, NULL);
}

/* Smallest index of a NaN or Inf among count floats: each thread's first hit in its
 * grid-stride walk is its smallest, and the minimum over threads does not depend on their
 * order, so the answer is the host loop's (fkm_check_centroids). */
__global__ void first_nonfinite_kernel(const float *__restrict__ p, int64_t count, unsigned long long *first)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        if (!isfinite(p[i])) {
            atomicMin(first, (unsigned long long)i);
            return;
        }
}

/* On the legacy default stream, as the host copy it replaces (fkm_host_view's cudaMemcpy):
 * ordered after the caller's work on blocking streams, and finished when this returns, before
 * the fit's own (non-blocking) stream reads the centroids. */
static fkm_status cuda_first_nonfinite(fkm_ctx *ctx, const float *p, int64_t count, int64_t *first)
{
    unsigned long long *d_first = NULL, h_first = ~0ull;
    *first = -1;
    FKM_CUDA_TRY(ctx, cudaMalloc((void **)&d_first, sizeof *d_first));
    cudaError_t e = cudaMemset(d_first, 0xff, sizeof *d_first);
    if (e == cudaSuccess) {
        const int64_t blocks = fkm_ceil_div(count, 256);
        first_nonfinite_kernel<<<(unsigned)(blocks < 1024 ? blocks : 1024), 256>>>(p, count, d_first);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpy(&h_first, d_first, sizeof h_first, cudaMemcpyDeviceToHost);
    cudaFree(d_first);
    if (e != cudaSuccess) return fkm_cuda_fail(ctx, e, __FILE__, __LINE__, "first_nonfinite_kernel");
    if (h_first != ~0ull) *first = (int64_t)h_first;
    return FKM_OK;
}

static const fkm_backend_vtbl cuda_vtbl = {
    "cuda",        cuda_open,       cuda_close,     cuda_scan,      cuda_fetch_row,     cuda_assign,
    cuda_reduce,   cuda_farthest,   cuda_get_label, cuda_get_labels, cuda_transform,    is_device_pointer,
    cuda_copy,     cuda_finalize,   cuda_get_sums,  cuda_get_centroids, 65535,
    cuda_kmeanspp, /* src/cuda/kmeanspp.cu: the CPU's centroids, bitwise */
    1,             /* precision = exact: l2, cosine and dot on f32/f16/bf16 (exact.cu) */
    cuda_first_nonfinite,
};

extern "C" const fkm_backend_vtbl *fkm_cuda_backend(void) { return &cuda_vtbl; }
