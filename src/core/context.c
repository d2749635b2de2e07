/* context.c — contexts, default parameters and build facts. */
#include "internal.h"

#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

fkm_params fkm_params_default(void)
{
    fkm_params p;
    p.k = 8;
    p.max_iter = 300;
    p.tol = 1e-4;
    p.init = FKM_INIT_KMEANS_PP;
    p.init_centroids = NULL;
    p.seed = 0;
    p.metric = FKM_METRIC_L2;
    p.empty = FKM_EMPTY_RELOCATE;
    p.n_threads = 0;
    p.progress = NULL;
    p.progress_user = NULL;
    p.precision = FKM_PRECISION_FAST;
    p.n_init = 1;
    p.gpu_mem_bytes = 0;
    return p;
}

fkm_status fkm_create(fkm_ctx **out, fkm_backend backend)
{
    if (!out) return FKM_E_NULL;
    *out = NULL;
    const fkm_backend_vtbl *ops = NULL;
    switch (backend) {
    case FKM_BACKEND_AUTO:
#ifdef FKM_HAVE_CUDA
        if (fkm_cuda_device_count_impl() > 0) {
            ops = fkm_cuda_backend();
            backend = FKM_BACKEND_CUDA;
            break;
        }
#endif
        ops = fkm_cpu_backend();
        backend = FKM_BACKEND_CPU;
        break;
    case FKM_BACKEND_CPU:
        ops = fkm_cpu_backend();
        break;
    case FKM_BACKEND_CUDA:
#ifdef FKM_HAVE_CUDA
        if (fkm_cuda_device_count_impl() <= 0) return FKM_E_NO_DEVICE;
        ops = fkm_cuda_backend();
        break;
#else
        return FKM_E_UNSUPPORTED; /* this build has no CUDA backend */
#endif
    default:
        return FKM_E_INVALID;
    }
    fkm_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return FKM_E_NOMEM;
    ctx->backend = backend;
    ctx->ops = ops;
    *out = ctx;
    return FKM_OK;
}

void fkm_destroy(fkm_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->inertia_history);
    free(ctx);
}

fkm_status fkm_set_threads(fkm_ctx *ctx, int32_t n_threads)
{
    if (!ctx) return FKM_E_NULL;
    if (n_threads < 0) return fkm_fail(ctx, FKM_E_INVALID, "n_threads = %d: must be >= 0", (int)n_threads);
    ctx->n_threads = n_threads;
    return FKM_OK;
}

fkm_status fkm_set_gpu_mem(fkm_ctx *ctx, uint64_t bytes)
{
    if (!ctx) return FKM_E_NULL;
    ctx->gpu_mem_bytes = bytes;
    return FKM_OK;
}

fkm_status fkm_last_placement(const fkm_ctx *ctx, fkm_placement *out)
{
    if (!ctx || !out) return FKM_E_NULL;
    *out = ctx->placement;
    return FKM_OK;
}

fkm_backend fkm_ctx_backend(const fkm_ctx *ctx)
{
    return ctx ? ctx->backend : FKM_BACKEND_AUTO;
}

const char *fkm_backend_name(fkm_backend backend)
{
    switch (backend) {
    case FKM_BACKEND_AUTO: return "auto";
    case FKM_BACKEND_CPU: return "cpu";
    case FKM_BACKEND_CUDA: return "cuda";
    }
    return "unknown";
}

const char *fkm_version(void)
{
    return "0.1.0";
}

int fkm_cpu_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int fkm_cuda_device_count(void)
{
#ifdef FKM_HAVE_CUDA
    return fkm_cuda_device_count_impl();
#else
    return 0;
#endif
}

fkm_status fkm_cuda_device_info(int index, char *name, size_t cap, int *cc_major, int *cc_minor,
                                uint64_t *memory_bytes)
{
#ifdef FKM_HAVE_CUDA
    if (index < 0 || index >= fkm_cuda_device_count_impl()) return FKM_E_INVALID;
    return fkm_cuda_device_info_impl(index, name, cap, cc_major, cc_minor, memory_bytes);
#else
    (void)index, (void)name, (void)cap, (void)cc_major, (void)cc_minor, (void)memory_bytes;
    return FKM_E_UNSUPPORTED;
#endif
}
