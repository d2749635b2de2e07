/* convert.c — element types to and from f32, and row loading (with cosine normalisation). */
#include "internal.h"

#include <math.h>
#include <string.h>

size_t fkm_dtype_size(fkm_dtype dtype)
{
    switch (dtype) {
    case FKM_F32: return 4;
    case FKM_F16: return 2;
    case FKM_BF16: return 2;
    case FKM_F64: return 8;
    }
    return 0;
}

const char *fkm_dtype_name(fkm_dtype dtype)
{
    switch (dtype) {
    case FKM_F32: return "f32";
    case FKM_F16: return "f16";
    case FKM_BF16: return "bf16";
    case FKM_F64: return "f64";
    }
    return "unknown";
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float fkm_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t fkm_float_to_half(float f)
{
    /* round to nearest even, with overflow to inf and gradual underflow */
    uint32_t u = float_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                                    /* below 2^-14: subnormal */
        float v = bits_to_float(a) * 0x1p24f;                 /* exact scaling */
        uint32_t m = (uint32_t)lrintf(v);                     /* ties to even */
        return (uint16_t)(sign | m);
    }
    uint32_t mant_round = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((mant_round - 0x38000000u) >> 13));
}

float fkm_bf16_to_float(uint16_t h)
{
    return bits_to_float((uint32_t)h << 16);
}

uint16_t fkm_float_to_bf16(float f)
{
    uint32_t u = float_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float fkm_load_f32(const void *X, fkm_dtype dtype, int64_t index)
{
    switch (dtype) {
    case FKM_F32: return ((const float *)X)[index];
    case FKM_F16: return fkm_half_to_float(((const uint16_t *)X)[index]);
    case FKM_BF16: return fkm_bf16_to_float(((const uint16_t *)X)[index]);
    case FKM_F64: return (float)((const double *)X)[index];
    }
    return 0.0f;
}

void fkm_load_row(const void *X, fkm_dtype dtype, int64_t ld, int64_t i, int64_t d,
                  bool normalise, float *out)
{
    const int64_t base = i * ld;
    if (dtype == FKM_F32) {
        memcpy(out, (const float *)X + base, (size_t)d * sizeof(float));
    } else {
        for (int64_t j = 0; j < d; j++) out[j] = fkm_load_f32(X, dtype, base + j);
    }
    if (normalise) {
        double ss = 0.0;
        if (dtype == FKM_F64) {
            const double *row = (const double *)X + base;
            for (int64_t j = 0; j < d; j++) ss += row[j] * row[j];
            if (ss > 0.0) {
                double inv = 1.0 / sqrt(ss);
                for (int64_t j = 0; j < d; j++) out[j] = (float)(row[j] * inv);
            }
            return;
        }
        for (int64_t j = 0; j < d; j++) ss += (double)out[j] * out[j];
        if (ss > 0.0) {
            double inv = 1.0 / sqrt(ss);
            for (int64_t j = 0; j < d; j++) out[j] = (float)(out[j] * inv);
        }
    }
}
