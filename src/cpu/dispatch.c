/* dispatch.c — picks the widest SIMD kernel this CPU (and its OS) can run. */
#include "kernel.h"
#include "flashkm.h"

#include <stdlib.h>
#include <string.h>

static int supports(const fkm_cpu_kernel *k)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    /* __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0). */
    if (k == &fkm_cpu_kernel_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (k == &fkm_cpu_kernel_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return k == &fkm_cpu_kernel_generic;
}

/* FLASHKM_SIMD=generic|avx2|avx512 lowers the level (tests and benchmarks compare them);
 * a level the CPU lacks is ignored. */
const fkm_cpu_kernel *fkm_cpu_select_kernel(void)
{
    static const fkm_cpu_kernel *const levels[] = {&fkm_cpu_kernel_avx512, &fkm_cpu_kernel_avx2,
                                                   &fkm_cpu_kernel_generic};
    const char *want = getenv("FLASHKM_SIMD");
    for (size_t i = 0; want && i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(want, levels[i]->name) == 0 && supports(levels[i])) return levels[i];
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (supports(levels[i])) return levels[i];
    return &fkm_cpu_kernel_generic;
}

const char *fkm_cpu_simd_level(void)
{
    return fkm_cpu_select_kernel()->name;
}
