/* staging.c — inputs and outputs that live in device memory. The core reads weights and
 * centroids on the host (validation, relocation); when the caller passes device pointers to a
 * GPU backend, these helpers give the core a host copy and write outputs back. (User
 * centroids for l2 and dot on a backend with first_nonfinite stay on the device instead:
 * fkm_init_on_device in lloyd.c; the final centroids of such a backend go to the output with
 * its get_centroids.) */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

fkm_status fkm_host_view(fkm_ctx *ctx, const void *p, size_t bytes, const void **view, void **owned)
{
    *view = p;
    *owned = NULL;
    if (!p || !ctx->ops->is_device || !ctx->ops->is_device(p)) return FKM_OK;
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy) return fkm_fail(ctx, FKM_E_NOMEM, "out of host memory for a copy of a device input");
    fkm_status s = ctx->ops->copy(ctx, copy, p, bytes);
    if (s != FKM_OK) {
        free(copy);
        return s;
    }
    *view = copy;
    *owned = copy;
    return FKM_OK;
}

fkm_status fkm_copy_out(fkm_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    if (ctx->ops->is_device && ctx->ops->is_device(dst)) return ctx->ops->copy(ctx, dst, src, bytes);
    memcpy(dst, src, bytes);
    return FKM_OK;
}
