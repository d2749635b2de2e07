/* exact_acc.h — a fixed-point (Kulisch-style) accumulator that sums doubles with no rounding
 * at all, for the exact comparisons of certified mode (exact.c).
 *
 * Why it suffices: every f32 value is an integer multiple of 2^-149 below 2^128, so every
 * product of two of them, and every piece an error-free transformation (TwoSum, TwoProduct)
 * splits such a product into, is an integer multiple of 2^-298 below 2^258. A two's-complement
 * integer of FKM_ACC_LIMBS * 64 = 640 bits counting units of 2^-298 holds any sum of up to
 * 2^40 of them exactly (magnitudes below 2^(258 + 40 + 298) = 2^596 < 2^639). */
#ifndef FKM_EXACT_ACC_H
#define FKM_EXACT_ACC_H

#include <stdint.h>

#define FKM_ACC_LIMBS 10
#define FKM_ACC_LSB_EXP (-298) /* weight of bit 0 */

typedef struct fkm_acc {
    uint64_t limb[FKM_ACC_LIMBS]; /* little-endian two's complement */
} fkm_acc;

void fkm_acc_zero(fkm_acc *a);
/* a += v exactly. v must be finite, an integer multiple of 2^-298, and below 2^300 in
 * magnitude (true of every value the callers add; see above). */
void fkm_acc_add(fkm_acc *a, double v);
/* -1, 0, 1 as a < b, a == b, a > b (signed). */
int fkm_acc_cmp(const fkm_acc *a, const fkm_acc *b);

#endif
