/* splitmix.h — the splitmix64 generator the kernel-level tests draw their data from (C and
 * CUDA tests alike; tests/common.c's generator is another family on purpose). */
#ifndef FKM_TESTS_SPLITMIX_H
#define FKM_TESTS_SPLITMIX_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static inline double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; } /* [0, 1) */

#endif
