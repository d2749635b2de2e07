/* cert.c — the parameters of the certification bound for each fast path (cert.h). The
 * derivation is docs/EXACTNESS.md, sections 3 (CPU) and 5 (tensor cores). */
#include "cert.h"

#include "flashkm.h"

#define U64 0x1p-53

/* d u_acc must stay well below 1 (gamma_d), and the (1 + 2^-20) inflation of fkm_cert_ok
 * covers the double evaluation only for d <= 2^22 (3.5). */
static int d_ok(long long d) { return d >= 1 && d <= (1ll << 22); }

fkm_cert fkm_cert_cpu(long long d, int dot)
{
    fkm_cert c = {0};
    const double D = (double)d;
    c.d = D;
    c.u_acc = FKM_CERT_U32;
    /* the bias: a double sum of exact squares (gamma^(64)_d), rounded once to f32 */
    c.eps_n = FKM_CERT_U32 + (1.0 + FKM_CERT_U32) * (D * U64 / (1.0 - D * U64));
    c.max_cnorm = INFINITY;
    c.dot = dot;
    c.valid = d_ok(d);
    return c;
}

fkm_cert fkm_cert_tensor(long long d, int dot, int dtype)
{
    fkm_cert c = {0};
    const double D = (double)d;
    c.d = D;
    c.u_acc = 0x1p-22; /* assumption (A): a truncating adder (2u), times 2 */
    c.max_cnorm = INFINITY;
    if (dtype == FKM_F32) {
        c.u_x = 0x1p-10, c.eta_x = 0x1p-149; /* the MMA truncates x to TF32 */
        c.u_p = 0x1p-11, c.eta_p = 0x1p-150; /* c rounded to nearest TF32 */
    } else if (dtype == FKM_F16) {
        c.u_p = 0x1p-11, c.eta_p = 0x1p-25;
        c.max_cnorm = 65504.0;               /* beyond: a coordinate may round to infinity */
    } else {
        c.u_p = 0x1p-8, c.eta_p = 0x1p-134;  /* bf16 */
    }
    c.eps_n = D * FKM_CERT_U32 / (1.0 - D * FKM_CERT_U32); /* an f32 sum of exact squares */
    c.dot = dot;
    c.valid = d_ok(d);
    return c;
}
