/* exact_acc.c — the exact fixed-point accumulator (exact_acc.h). */
#include "exact_acc.h"

#include <math.h>
#include <string.h>

void fkm_acc_zero(fkm_acc *a) { memset(a, 0, sizeof *a); }

/* Adds (neg ? -1 : 1) * (lo + hi * 2^64) * 2^(64 q) to the two's-complement integer. */
static void add_at(fkm_acc *a, int q, uint64_t lo, uint64_t hi, int neg)
{
    if (neg) {
        /* subtract: borrow ripples upward */
        uint64_t borrow = 0;
        for (int i = q; i < FKM_ACC_LIMBS; i++) {
            const uint64_t s = i == q ? lo : i == q + 1 ? hi : 0;
            const uint64_t x = a->limb[i];
            const uint64_t r = x - s - borrow;
            borrow = (x < s) || (x - s < borrow);
            a->limb[i] = r;
            if (!borrow && i > q) break;
        }
    } else {
        uint64_t carry = 0;
        for (int i = q; i < FKM_ACC_LIMBS; i++) {
            const uint64_t s = i == q ? lo : i == q + 1 ? hi : 0;
            const uint64_t r = a->limb[i] + s;
            const uint64_t c1 = r < s;
            const uint64_t r2 = r + carry;
            carry = c1 | (r2 < carry);
            a->limb[i] = r2;
            if (!carry && i > q) break;
        }
    }
}

void fkm_acc_add(fkm_acc *a, double v)
{
    if (v == 0.0) return;
    int e;
    const double f = frexp(fabs(v), &e);           /* |v| = f * 2^e, f in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(f, 53);           /* exact: 53-bit integer significand */
    int pos = e - 53 - FKM_ACC_LSB_EXP;            /* |v| = m * 2^(pos) units of 2^-298 */
    if (pos < 0) {                                  /* the low bits are zero (v is a multiple
                                                       of 2^-298), so this shift is exact */
        m >>= -pos;
        pos = 0;
    }
    const int q = pos / 64, s = pos % 64;
    const uint64_t lo = m << s, hi = s ? m >> (64 - s) : 0;
    add_at(a, q, lo, hi, v < 0.0);
}

int fkm_acc_cmp(const fkm_acc *a, const fkm_acc *b)
{
    const int64_t ta = (int64_t)a->limb[FKM_ACC_LIMBS - 1], tb = (int64_t)b->limb[FKM_ACC_LIMBS - 1];
    if (ta != tb) return ta < tb ? -1 : 1;
    for (int i = FKM_ACC_LIMBS - 2; i >= 0; i--)
        if (a->limb[i] != b->limb[i]) return a->limb[i] < b->limb[i] ? -1 : 1;
    return 0;
}
