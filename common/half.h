/*
 * half.h — scalar element conversions between fp32 and fp16/bf16, shared by the CPU reference
 * kernels (cpu_adam/) and the device kernels (gpu/). Header-only; under nvcc every function is
 * __host__ __device__ (ZOFF_HD) so the host tests check the very code the GPU runs.
 *
 * Semantics (the reference every SIMD path must match bit for bit):
 *  - fp32 -> fp16: round to nearest, ties to even; overflow gives +-inf; results below the
 *    smallest subnormal round to +-0 (ties to even); fp16 subnormals are produced exactly;
 *    NaN gives a quiet NaN keeping the sign and the top 10 payload bits (0x7e00 if those are 0).
 *  - fp32 -> bf16: round to nearest, ties to even, overflow to +-inf; NaN gives a quiet NaN
 *    (payload top bits kept, quiet bit set). fp32 subnormals are kept (no flush to zero).
 *  - fp16/bf16 -> fp32: exact.
 */
#ifndef ZOFF_HALF_H
#define ZOFF_HALF_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define ZOFF_HD __host__ __device__ __forceinline__
#else
#define ZOFF_HD static inline
#endif

ZOFF_HD uint32_t zoff_f32_bits(float f)
{
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

ZOFF_HD float zoff_bits_f32(uint32_t u)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* fp16 bits -> fp32 (exact). */
ZOFF_HD float zoff_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) { /* inf / NaN */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) { /* normal */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) { /* zero */
        bits = sign;
    } else {               /* subnormal: value = man * 2^-24, normalise */
        uint32_t e = 113u; /* exponent field for 2^-14 in fp32 (127 - 14) */
        while ((man & 0x400u) == 0) {
            man <<= 1;
            e--;
        }
        man &= 0x3ffu;
        bits = sign | (e << 23) | (man << 13);
    }
    return zoff_bits_f32(bits);
}

/* fp32 -> fp16 bits, round to nearest even. */
ZOFF_HD uint16_t zoff_f32_to_f16(float f)
{
    uint32_t x = zoff_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xffu) { /* inf or NaN */
        if (man == 0) return (uint16_t)(sign | 0x7c00u);
        uint16_t payload = (uint16_t)(man >> 13);
        return (uint16_t)(sign | 0x7c00u | 0x200u | payload); /* quiet NaN */
    }
    int32_t e = (int32_t)exp - 127 + 15;              /* fp16 biased exponent */
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {
        /* subnormal or zero in fp16: value = m * 2^-24 with m = full_man >> (14 - e) */
        if (e < -10) return sign;            /* below half of the smallest subnormal: +-0 */
        uint32_t full = man | 0x800000u;     /* implicit bit */
        uint32_t shift = (uint32_t)(14 - e); /* 14..24 */
        uint32_t m = full >> shift;
        uint32_t rem = full & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (m & 1u))) m++;
        return (uint16_t)(sign | m); /* m may carry into the exponent: still correct */
    }
    uint32_t m = man >> 13;
    uint32_t rem = man & 0x1fffu;
    uint32_t out = ((uint32_t)e << 10) | m;
    if (rem > 0x1000u || (rem == 0x1000u && (m & 1u))) out++; /* may carry to inf: correct */
    return (uint16_t)(sign | out);
}

/* bf16 bits -> fp32 (exact). */
ZOFF_HD float zoff_bf16_to_f32(uint16_t b)
{
    return zoff_bits_f32((uint32_t)b << 16);
}

/* fp32 -> bf16 bits, round to nearest even. */
ZOFF_HD uint16_t zoff_f32_to_bf16(float f)
{
    uint32_t x = zoff_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

#endif /* ZOFF_HALF_H */
