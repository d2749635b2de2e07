/* error.c — status strings and the per-context last-error message. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fkm_status_string(fkm_status status)
{
    switch (status) {
    case FKM_OK: return "ok";
    case FKM_E_NULL: return "null pointer";
    case FKM_E_INVALID: return "invalid argument";
    case FKM_E_NONFINITE: return "non-finite value";
    case FKM_E_DTYPE: return "unsupported dtype";
    case FKM_E_OVERFLOW: return "size overflow";
    case FKM_E_NOMEM: return "out of memory";
    case FKM_E_IO: return "i/o error";
    case FKM_E_FORMAT: return "malformed file";
    case FKM_E_UNSUPPORTED: return "unsupported";
    case FKM_E_NO_DEVICE: return "no device";
    case FKM_E_DEVICE: return "device error";
    case FKM_E_CANCELLED: return "cancelled";
    case FKM_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}

fkm_status fkm_fail(fkm_ctx *ctx, fkm_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void fkm_clear_error(fkm_ctx *ctx)
{
    if (!ctx) return;
    ctx->errmsg[0] = '\0';
    ctx->exact_points = ctx->exact_rechecked = 0;
    ctx->exact_pair = ctx->exact_filter = ctx->exact_host = 0;
    memset(&ctx->kpp, 0, sizeof ctx->kpp);
}

const char *fkm_last_error(const fkm_ctx *ctx)
{
    return ctx ? ctx->errmsg : "no context (fkm_create failed or was not called)";
}

bool fkm_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0) return false;
    if (a != 0 && b > INT64_MAX / a) return false;
    *out = a * b;
    return true;
}

bool fkm_bytes(int64_t a, int64_t b, size_t elem, size_t *out)
{
    int64_t ab;
    if (!fkm_mul_i64(a, b, &ab)) return false;
    if ((uint64_t)ab > SIZE_MAX / (elem ? elem : 1)) return false;
    *out = (size_t)ab * elem;
    return true;
}
