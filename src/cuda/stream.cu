/* stream.cu — see stream.cuh. */
#include "cuda/stream.cuh"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBUF 2   /* streaming buffers: one being filled while the other is worked on */

struct fkm_xstream {
    fkm_piece *pc;
    int64_t np;
    const unsigned char *src;      /* the caller's X */
    size_t es;
    int64_t n, d, ld, bstride;     /* the caller's layout (elements) */
    int64_t ldd;                   /* device rows: leading dimension */
    int in_place;
    int all_resident;
    unsigned char *res;            /* resident pieces, packed in plan order */
    unsigned char *buf[NBUF];      /* device buffers of streamed pieces */
    unsigned char *stage[NBUF];    /* pinned host staging (when not direct) */
    int direct;
    void **reg;                    /* host ranges registered for the call */
    int64_t nreg;
    cudaStream_t copy;
    cudaEvent_t loaded[NBUF], freed[NBUF];
    int nevents;
    /* streaming only, timing: per piece, copy start and end (copy stream; streamed pieces),
     * work start and end (compute stream) */
    cudaEvent_t *tev;
    int64_t ntev;
};

/* The path from src/ on, as fkm_cuda_fail shows it. */
static const char *short_path(const char *file)
{
    const char *s = strstr(file, "src/");
    return s ? s : file;
}

static size_t piece_bytes(const fkm_xstream *xs, const fkm_piece *p)
{
    return (size_t)(p->nb * p->rows * xs->ldd) * xs->es;
}

/* Caller's row r0 of problem b. */
static const unsigned char *src_rows(const fkm_xstream *xs, int64_t b, int64_t r0)
{
    return xs->src + (size_t)(b * xs->bstride + r0 * xs->ld) * xs->es;
}

void fkm_xstream_close(fkm_xstream *xs)
{
    if (!xs) return;
    if (xs->copy) cudaStreamSynchronize(xs->copy);
    for (int64_t i = 0; i < xs->nreg; i++) cudaHostUnregister(xs->reg[i]);
    for (int i = 0; i < NBUF; i++) cudaFree(xs->buf[i]), cudaFreeHost(xs->stage[i]);
    for (int i = 0; i < xs->nevents; i++) cudaEventDestroy(i < NBUF ? xs->loaded[i] : xs->freed[i - NBUF]);
    for (int64_t i = 0; i < xs->ntev; i++) cudaEventDestroy(xs->tev[i]);
    free(xs->tev);
    if (xs->copy) cudaStreamDestroy(xs->copy);
    cudaFree(xs->res);
    (void)cudaGetLastError();
    free(xs->reg);
    free(xs->pc);
    free(xs);
}

/* Copies the rows of piece p from the caller's X into dst (device layout, ldd) in `stream`. */
static cudaError_t copy_piece_async(const fkm_xstream *xs, const fkm_piece *p, unsigned char *dst, cudaStream_t stream)
{
    for (int64_t i = 0; i < p->nb; i++) {
        cudaError_t e = cudaMemcpy2DAsync(dst + (size_t)(i * p->rows * xs->ldd) * xs->es, (size_t)xs->ldd * xs->es,
                                          src_rows(xs, p->b0 + i, p->r0), (size_t)xs->ld * xs->es,
                                          (size_t)xs->d * xs->es, (size_t)p->rows, cudaMemcpyDefault, stream);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

/* Host copy of piece p into a staging buffer in the device layout (pad columns stay zero). */
static void pack_piece(const fkm_xstream *xs, const fkm_piece *p, unsigned char *dst)
{
    const size_t row = (size_t)xs->d * xs->es, drow = (size_t)xs->ldd * xs->es, srow = (size_t)xs->ld * xs->es;
    for (int64_t i = 0; i < p->nb; i++) {
        const unsigned char *s = src_rows(xs, p->b0 + i, p->r0);
        unsigned char *o = dst + (size_t)(i * p->rows) * drow;
        if (row == drow && row == srow) {
            memcpy(o, s, row * (size_t)p->rows);
            continue;
        }
        for (int64_t r = 0; r < p->rows; r++) memcpy(o + (size_t)r * drow, s + (size_t)r * srow, row);
    }
}

/* Direct copies need the caller's buffer pinned: it is already (cudaHostAlloc, a pinned
 * tensor), or the streamed pieces' ranges are registered for the call. Registration is not
 * tried for more than half the machine's memory (pinning that much starves the host), and
 * FLASHKM_STREAM=staging turns it off (to test the staging path). Returns 1 when direct. */
static int make_direct(fkm_xstream *xs)
{
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, xs->src) == cudaSuccess && a.type == cudaMemoryTypeHost) return 1;
    (void)cudaGetLastError();
    const char *mode = getenv("FLASHKM_STREAM");
    if (mode && strcmp(mode, "staging") == 0) return 0;
    const long page = sysconf(_SC_PAGESIZE), pages = sysconf(_SC_PHYS_PAGES);
    if (page <= 0 || pages <= 0) return 0;
    uint64_t streamed = 0;
    for (int64_t i = 0; i < xs->np; i++)
        if (!xs->pc[i].resident) streamed += piece_bytes(xs, &xs->pc[i]);
    if (streamed > (uint64_t)page * (uint64_t)pages / 2) return 0;
    /* a memory-mapped file: staging reads it page by page; pinning would load and lock all of
     * it (and the mapped-file fit did not finish on an H200 with registration) */
    if (xs->np > 0) {
        const fkm_piece *last = &xs->pc[xs->np - 1];
        const unsigned char *end = src_rows(xs, last->b0 + last->nb - 1, last->r0 + last->rows - 1) + (size_t)xs->d * xs->es;
        if (fkm_host_range_file_backed(xs->src, (size_t)(end - xs->src))) return 0;
    }
    xs->reg = (void **)calloc((size_t)xs->np, sizeof *xs->reg);
    if (!xs->reg) return 0;
    int dev = 0, ro = 0;
    if (cudaGetDevice(&dev) == cudaSuccess)
        (void)cudaDeviceGetAttribute(&ro, cudaDevAttrHostRegisterReadOnlySupported, dev);
    const unsigned flags = ro ? cudaHostRegisterReadOnly : cudaHostRegisterDefault; /* mapped files may be read-only */
    /* one range per run of consecutive streamed pieces (runs are a resident piece apart, so
     * whole pages never overlap unless the layout has no room between problems: then fail
     * over to staging) */
    for (int64_t i = 0; i < xs->np;) {
        if (xs->pc[i].resident) {
            i++;
            continue;
        }
        int64_t j = i;
        while (j + 1 < xs->np && !xs->pc[j + 1].resident) j++;
        const fkm_piece *first = &xs->pc[i], *last = &xs->pc[j];
        const uintptr_t lo = (uintptr_t)src_rows(xs, first->b0, first->r0);
        const uintptr_t hi = (uintptr_t)(src_rows(xs, last->b0 + last->nb - 1, last->r0 + last->rows - 1) +
                                         (size_t)xs->d * xs->es);
        const uintptr_t plo = lo / (uintptr_t)page * (uintptr_t)page;
        const uintptr_t phi = (hi + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
        if (cudaHostRegister((void *)plo, (size_t)(phi - plo), flags) != cudaSuccess) {
            (void)cudaGetLastError();
            for (int64_t r = 0; r < xs->nreg; r++) cudaHostUnregister(xs->reg[r]);
            (void)cudaGetLastError();
            xs->nreg = 0;
            return 0;
        }
        xs->reg[xs->nreg++] = (void *)plo;
        i = j + 1;
    }
    return 1;
}

static fkm_status alloc_streaming(fkm_ctx *ctx, fkm_xstream *xs, size_t maxp)
{
    FKM_CUDA_TRY(ctx, cudaStreamCreateWithFlags(&xs->copy, cudaStreamNonBlocking));
    for (int i = 0; i < 2 * NBUF; i++) {
        FKM_CUDA_TRY(ctx, cudaEventCreateWithFlags(i < NBUF ? &xs->loaded[i] : &xs->freed[i - NBUF],
                                                   cudaEventDisableTiming));
        xs->nevents = i + 1;
    }
    for (int i = 0; i < NBUF; i++) {
        FKM_CUDA_TRY(ctx, cudaMalloc((void **)&xs->buf[i], maxp));
        /* pad columns (ldd > d) are never written by the copies: zero once, in the copy
         * stream so that it precedes them */
        if (xs->ldd != xs->d) FKM_CUDA_TRY(ctx, cudaMemsetAsync(xs->buf[i], 0, maxp, xs->copy));
    }
    if (!(xs->tev = (cudaEvent_t *)calloc((size_t)(4 * xs->np), sizeof *xs->tev)))
        return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for %lld timing events", (long long)(4 * xs->np));
    for (int64_t i = 0; i < 4 * xs->np; i++) {
        FKM_CUDA_TRY(ctx, cudaEventCreate(&xs->tev[i]));
        xs->ntev = i + 1;
    }
    xs->direct = make_direct(xs);
    for (int i = 0; !xs->direct && i < NBUF; i++) {
        FKM_CUDA_TRY(ctx, cudaMallocHost((void **)&xs->stage[i], maxp));
        memset(xs->stage[i], 0, maxp);
    }
    return FKM_OK;
}

fkm_status fkm_xstream_open(fkm_ctx *ctx, const fkm_xstream_args *args, fkm_xstream **out)
{
    *out = NULL;
    const fkm_problem *pb = args->pb;
    fkm_xstream *xs = (fkm_xstream *)calloc(1, sizeof *xs);
    if (!xs) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for the placement of X");
    fkm_status s = fkm_piece_plan(ctx, pb->batch, pb->n, fkm_piece_rows(pb->d, fkm_dtype_size(pb->dtype)), &xs->pc,
                                  &xs->np);
    if (s != FKM_OK) {
        free(xs);
        return s;
    }
    xs->src = (const unsigned char *)pb->X;
    xs->es = fkm_dtype_size(pb->dtype);
    xs->n = pb->n;
    xs->d = pb->d;
    xs->ld = pb->ld;
    xs->bstride = pb->batch_stride;
    xs->in_place = args->in_place;
    xs->ldd = args->in_place ? pb->ld : (pb->d + 7) / 8 * 8; /* 16-byte rows for the tensor-core kernels */
    const uint64_t ws = args->workspace_bytes, budget = pb->gpu_mem_bytes;
    uint64_t room;
    if (budget) {
        if (budget < ws) {
            fkm_xstream_close(xs);
            return fkm_fail(ctx, FKM_E_INVALID,
                            "%s:%d: gpu_mem_bytes = %llu is smaller than the %llu bytes of device workspace this "
                            "problem needs besides X", short_path(__FILE__), __LINE__, (unsigned long long)budget,
                            (unsigned long long)ws);
        }
        room = budget - ws;
    } else { /* keep a reserve for CUB's and the runtime's own allocations */
        const uint64_t reserve = (uint64_t)512 << 20 < args->free_bytes / 8 ? (uint64_t)512 << 20 : args->free_bytes / 8;
        room = args->free_bytes - reserve;
    }
    int64_t ns = 0;
    if (args->in_place) {
        for (int64_t i = 0; i < xs->np; i++) xs->pc[i].resident = 1;
    } else if (args->x_on_device) { /* a device X the kernels cannot read in place: one padded copy */
        ns = fkm_choose_resident(xs->pc, xs->np, (uint64_t)(xs->ldd * (int64_t)xs->es), UINT64_MAX, NBUF);
    } else if ((ns = fkm_choose_resident(xs->pc, xs->np, (uint64_t)(xs->ldd * (int64_t)xs->es), room, NBUF)) < 0) {
        size_t maxp = 0;
        for (int64_t i = 0; i < xs->np; i++) maxp = piece_bytes(xs, &xs->pc[i]) > maxp ? piece_bytes(xs, &xs->pc[i]) : maxp;
        fkm_xstream_close(xs);
        return fkm_fail(ctx, budget ? FKM_E_INVALID : FKM_E_NOMEM,
                        "%s:%d: GPU memory budget of %llu bytes (%s): the workspace takes %llu and streaming X needs "
                        "%d buffers of %zu bytes beside it", short_path(__FILE__), __LINE__,
                        (unsigned long long)(budget ? budget : ws + room), budget ? "gpu_mem_bytes" : "free memory",
                        (unsigned long long)ws, NBUF, maxp);
    }
    xs->all_resident = ns == 0;
    size_t res_bytes = 0, maxp = 0;
    int64_t res_rows = 0, max_rows = 0;
    for (int64_t i = 0; i < xs->np; i++) {
        fkm_piece *p = &xs->pc[i];
        const size_t b = piece_bytes(xs, p);
        maxp = b > maxp ? b : maxp;
        max_rows = p->nb * p->rows > max_rows ? p->nb * p->rows : max_rows;
        if (!p->resident) continue;
        p->off = res_bytes;
        res_bytes += b;
        res_rows += p->nb * p->rows;
    }
    if (!args->in_place && res_bytes > 0) {
        FKM_CUDA_TRY_GOTO(ctx, cudaMalloc((void **)&xs->res, res_bytes), s, fail);
        if (xs->ldd != xs->d) FKM_CUDA_TRY_GOTO(ctx, cudaMemsetAsync(xs->res, 0, res_bytes, args->stream), s, fail);
        for (int64_t i = 0; i < xs->np; i++)
            if (xs->pc[i].resident)
                FKM_CUDA_TRY_GOTO(ctx, copy_piece_async(xs, &xs->pc[i], xs->res + xs->pc[i].off, args->stream), s, fail);
    }
    if (ns > 0 && (s = alloc_streaming(ctx, xs, maxp)) != FKM_OK) goto fail;
    ctx->placement.rows = pb->batch * pb->n;
    ctx->placement.resident_rows = res_rows;
    ctx->placement.piece_rows = max_rows;
    ctx->placement.workspace_bytes = ws;
    ctx->placement.budget_bytes = budget ? budget : ws + room;
    ctx->placement.pieces = (int32_t)(xs->np < INT32_MAX ? xs->np : INT32_MAX);
    ctx->placement.direct = ns > 0 && xs->direct;
    *out = xs;
    return FKM_OK;
fail:
    fkm_xstream_close(xs);
    return s;
}

int fkm_xstream_all_resident(const fkm_xstream *xs, fkm_dev_problem *whole)
{
    if (!xs->all_resident) return 0;
    whole->X = xs->in_place ? (const void *)xs->src : (const void *)xs->res;
    whole->ld = xs->ldd;
    whole->batch_stride = xs->in_place ? xs->bstride : xs->n * xs->ldd;
    return 1;
}

const fkm_piece *fkm_xstream_pieces(const fkm_xstream *xs, int64_t *count)
{
    *count = xs->np;
    return xs->pc;
}

/* Enqueues the copy of streamed piece p (index i) into buffer j; `stream` waits for it. */
static fkm_status load_piece(fkm_ctx *ctx, fkm_xstream *xs, int64_t i, int j, cudaStream_t stream)
{
    const fkm_piece *p = &xs->pc[i];
    FKM_CUDA_TRY(ctx, cudaStreamWaitEvent(xs->copy, xs->freed[j], 0)); /* the piece before in buf[j] is done */
    FKM_CUDA_TRY(ctx, cudaEventRecord(xs->tev[4 * i], xs->copy));
    if (xs->direct) {
        FKM_CUDA_TRY(ctx, copy_piece_async(xs, p, xs->buf[j], xs->copy));
    } else {
        FKM_CUDA_TRY(ctx, cudaEventSynchronize(xs->loaded[j])); /* stage[j]'s last copy has left */
        pack_piece(xs, p, xs->stage[j]);
        FKM_CUDA_TRY(ctx, cudaMemcpyAsync(xs->buf[j], xs->stage[j], piece_bytes(xs, p), cudaMemcpyHostToDevice, xs->copy));
    }
    FKM_CUDA_TRY(ctx, cudaEventRecord(xs->tev[4 * i + 1], xs->copy));
    FKM_CUDA_TRY(ctx, cudaEventRecord(xs->loaded[j], xs->copy));
    FKM_CUDA_TRY(ctx, cudaStreamWaitEvent(stream, xs->loaded[j], 0));
    return FKM_OK;
}

fkm_status fkm_xstream_pass(fkm_ctx *ctx, fkm_xstream *xs, const fkm_dev_problem *base, cudaStream_t stream,
                            fkm_piece_fn fn, void *user)
{
    int64_t si = 0;
    for (int64_t i = 0; i < xs->np; i++) {
        const fkm_piece *p = &xs->pc[i];
        fkm_dev_problem v = *base;
        const int j = (int)(si % NBUF);
        if (xs->in_place) {
            v.X = src_rows(xs, p->b0, p->r0);
            v.ld = xs->ld;
            v.batch_stride = xs->bstride;
        } else {
            if (!p->resident) {
                fkm_status s = load_piece(ctx, xs, i, j, stream);
                if (s != FKM_OK) return s;
            }
            v.X = p->resident ? xs->res + p->off : xs->buf[j];
            v.ld = xs->ldd;
            v.batch_stride = p->rows * xs->ldd;
        }
        v.n = p->rows;
        v.batch = (int32_t)p->nb;
        v.weights = base->weights ? base->weights + p->b0 * xs->n + p->r0 : NULL;
        if (xs->tev) FKM_CUDA_TRY(ctx, cudaEventRecord(xs->tev[4 * i + 2], stream));
        fkm_status s = fn(ctx, p, &v, user);
        if (s != FKM_OK) return s;
        if (xs->tev) FKM_CUDA_TRY(ctx, cudaEventRecord(xs->tev[4 * i + 3], stream));
        if (!p->resident) {
            FKM_CUDA_TRY(ctx, cudaEventRecord(xs->freed[j], stream));
            si++;
        }
    }
    return FKM_OK;
}

fkm_status fkm_xstream_times(fkm_ctx *ctx, const fkm_xstream *xs, double *copy_s, double *compute_s)
{
    *copy_s = *compute_s = 0.0;
    if (!xs->tev) return FKM_OK;
    for (int64_t i = 0; i < xs->np; i++) {
        float ms;
        if (!xs->pc[i].resident) {
            FKM_CUDA_TRY(ctx, cudaEventElapsedTime(&ms, xs->tev[4 * i], xs->tev[4 * i + 1]));
            *copy_s += 1e-3 * ms;
        }
        FKM_CUDA_TRY(ctx, cudaEventElapsedTime(&ms, xs->tev[4 * i + 2], xs->tev[4 * i + 3]));
        *compute_s += 1e-3 * ms;
    }
    return FKM_OK;
}
