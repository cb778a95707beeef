/*
 * accum.c — gradient accumulation on the host: acc (fp32) = or += a micro-batch's gradient
 * (fp16, bf16 or fp32), a scalar reference and an AVX2/F16C variant with the same results (the
 * conversion to fp32 is exact and there is one fp32 add per element, so any order of lanes
 * gives the same bits). The runtime's grad worker runs it as each gradient lands.
 */
#include <immintrin.h>
#include <string.h>

#include "common/half.h"
#include "cpu_adam/adam.h"

void accum_scalar(float *acc, const void *g, zoff_dtype dt, size_t n, int first)
{
    const uint16_t *h = g;
    const float *f = g;
    for (size_t i = 0; i < n; i++) {
        float x = dt == ZOFF_DTYPE_F32   ? f[i]
                  : dt == ZOFF_DTYPE_F16 ? zoff_f16_to_f32(h[i])
                                         : zoff_bf16_to_f32(h[i]);
        acc[i] = first ? x : acc[i] + x;
    }
}

#define ZACC_AVX2 __attribute__((target("avx2,f16c")))

ZACC_AVX2 static inline __m256 load8(const void *g, zoff_dtype dt, size_t i)
{
    if (dt == ZOFF_DTYPE_F32) return _mm256_loadu_ps((const float *)g + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)g + i));
    if (dt == ZOFF_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

ZACC_AVX2 void accum_avx2(float *acc, const void *g, zoff_dtype dt, size_t n, int first)
{
    size_t i = 0;
    if (first) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(acc + i, load8(g, dt, i));
    } else {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), load8(g, dt, i)));
    }
    if (i < n) {
        size_t es = zoff_dtype_size(dt);
        accum_scalar(acc + i, (const uint8_t *)g + i * es, dt, n - i, first);
    }
}

void zadam_accum(zadam_isa isa, float *acc, const void *g, zoff_dtype dt, size_t n, int first)
{
    if (isa == ZADAM_ISA_AVX2 || isa == ZADAM_ISA_AVX512)
        accum_avx2(acc, g, dt, n, first);
    else
        accum_scalar(acc, g, dt, n, first);
}
