/* cert.c — the parameters of the certification bound for each fast path (cert.h). The
 * derivation is docs/EXACTNESS.md, sections 3 (CPU) and 5 (tensor cores). */
#include "cert.h"

#include "flashkm.h"

#define U64 0x1p-53

/* d u_acc must stay well below 1 (gamma_d), and the (1 + 2^-20) inflation of fkm_cert_ok
 * covers the double evaluation only for d <= 2^22 (3.5). */
static int d_ok(long long d) { return d >= 1 && d <= (1ll << 22); }

/* The per-call constants fkm_cert_err would otherwise recompute for every point. */
static fkm_cert finish(fkm_cert c)
{
    c.sd = sqrt(c.d);
    c.g = c.d * c.u_acc / (1.0 - c.d * c.u_acc);
    return c;
}

fkm_cert fkm_cert_cpu(long long d, int dot)
{
    fkm_cert c = {0};
    const double D = (double)d;
    c.d = D;
    c.u_acc = FKM_CERT_U32;
    c.eta_acc = FKM_CERT_ETA32;
    /* the bias: a double sum of exact squares (gamma^(64)_d), rounded once to f32 */
    c.eps_n = FKM_CERT_U32 + (1.0 + FKM_CERT_U32) * (D * U64 / (1.0 - D * U64));
    c.max_cnorm = INFINITY;
    c.dot = dot;
    c.valid = d_ok(d);
    return finish(c);
}

fkm_cert fkm_cert_tensor(long long d, int dot, int dtype)
{
    fkm_cert c = {0};
    const double D = (double)d;
    c.d = D;
    c.u_acc = 0x1p-22; /* assumption (A): a truncating adder (2u), times 2 */
    /* assumption (A'): values below the f32 normal range (2^-126) may be flushed to zero
     * inside the tensor core: each product, operand or partial sum may be off by 2^-126 */
    c.eta_acc = 0x1p-126;
    c.max_cnorm = INFINITY;
    if (dtype == FKM_F32) {
        /* x: cvt.rna.tf32 (mma.cuh, relative 2^-11) or truncated to TF32 by wgmma (the tensor
         * cores read the upper 19 bits: relative < 2^-10), or flushed (EXACTNESS.md 5.2) */
        c.u_x = 0x1p-10, c.eta_x = 0x1p-126;
        c.u_p = 0x1p-11, c.eta_p = 0x1p-126; /* c rounded to nearest TF32, or flushed */
    } else if (dtype == FKM_F16) {
        c.u_p = 0x1p-11, c.eta_p = 0x1p-25;  /* f16 subnormals are kept (Fasi et al.) */
        c.max_cnorm = 65504.0;               /* beyond: a coordinate may round to infinity */
    } else {
        c.eta_x = 0x1p-126;                  /* a bf16 x below 2^-126 may be flushed */
        c.u_p = 0x1p-8, c.eta_p = 0x1p-126;  /* c rounded to bf16, or flushed */
    }
    c.eps_n = D * FKM_CERT_U32 / (1.0 - D * FKM_CERT_U32); /* an f32 sum of exact squares */
    c.dot = dot;
    c.valid = d_ok(d);
    return finish(c);
}
