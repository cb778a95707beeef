/*
 * adam_internal.h — what the cpu_adam/ files share and nothing else includes (tests may): the
 * per-call scalars precomputed once in double, the per-element update that every ISA variant
 * reproduces operation for operation, the canonical summation order of the sum of squares, the
 * internal kernel entry points and a CPU-feature override for tests.
 *
 * Exactness contract: the AVX2 and AVX-512 kernels perform, for every element, the same IEEE
 * fp32 operations in the same order as zadam__elem() below (no fused multiply-add: the module is
 * compiled with -ffp-contract=off; division and square root are the exact instructions). Their
 * fp32 results are therefore bit-identical to the scalar reference, and so are the 16-bit copies.
 */
#ifndef ZOFF_CPU_ADAM_INTERNAL_H
#define ZOFF_CPU_ADAM_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/half.h"
#include "cpu_adam/adam.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-call constants, computed in double from zadam_hparams and rounded once to fp32. */
typedef struct zadam__scalars {
    float grad_scale; /* g = grad * grad_scale */
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float l2_wd;        /* L2 mode: g += l2_wd * p (apply_l2) */
    float decay;        /* AdamW: p *= decay = 1 - lr*wd before the update (apply_decay) */
    float inv_sqrt_bc2; /* 1 / sqrt(1 - beta2^step) */
    float eps;          /* added to sqrt(v) * inv_sqrt_bc2 */
    float step_size;    /* lr / (1 - beta1^step) */
    int apply_l2, apply_decay;
    int nt_out; /* SIMD kernels: non-temporal stores for the 16-bit/fp32 copy when aligned */
    int optim;  /* zopt_kind. Lion: step_size = lr, decay = 1 - lr*wd. Adagrad: step_size = clr
                   = lr / (1 + (step-1)*lr_decay), l2_wd = wd (torch adds wd*p to the grad). */
} zadam__scalars;

/* Fills *s from *hp (which zadam_hparams_check accepted). */
void zadam__scalars_init(const zadam_hparams *hp, zadam__scalars *s);

/* The per-element update, in fp32, in the order every variant follows:
 *   g     = graw * grad_scale;             [L2: g = g + l2_wd * p]
 *   m     = beta1 * m + (1 - beta1) * g;
 *   v     = beta2 * v + ((1 - beta2) * g) * g;
 *   [AdamW: p = p * decay]
 *   denom = sqrt(v) * inv_sqrt_bc2 + eps;
 *   p     = p - step_size * (m / denom);
 * Returns the new p; *m and *v are updated in place. */
static inline float zadam__elem(const zadam__scalars *s, float graw, float p, float *m, float *v)
{
    float g = graw * s->grad_scale;
    if (s->apply_l2) g = g + s->l2_wd * p;
    float mv = s->beta1 * *m + s->one_minus_beta1 * g;
    float vv = s->beta2 * *v + (s->one_minus_beta2 * g) * g;
    if (s->apply_decay) p = p * s->decay;
    float denom = sqrtf(vv) * s->inv_sqrt_bc2 + s->eps;
    p = p - s->step_size * (mv / denom);
    *m = mv;
    *v = vv;
    return p;
}

/* Lion (Chen et al. 2023, Algorithm 2, decoupled decay), in the order every variant follows:
 *   g = graw * grad_scale;  c = beta1 * m + (1 - beta1) * g;
 *   [decay: p = p * decay];  u = sign(c) (0 stays 0, NaN stays NaN);  p = p - lr * u;
 *   m = beta2 * m + (1 - beta2) * g. */
static inline float zlion__elem(const zadam__scalars *s, float graw, float p, float *m)
{
    const float g = graw * s->grad_scale;
    const float c = s->beta1 * *m + s->one_minus_beta1 * g;
    if (s->apply_decay) p = p * s->decay;
    const float u = (c != 0.0f && c == c) ? copysignf(1.0f, c) : c;
    p = p - s->step_size * u;
    *m = s->beta2 * *m + s->one_minus_beta2 * g;
    return p;
}

/* Adagrad (torch.optim.Adagrad): g = graw * grad_scale; [wd: g = g + wd * p];
 *   v = v + g * g;  std = sqrt(v) + eps;  p = p - clr * (g / std). */
static inline float zadagrad__elem(const zadam__scalars *s, float graw, float p, float *v)
{
    float g = graw * s->grad_scale;
    if (s->apply_l2) g = g + s->l2_wd * p;
    const float vv = *v + g * g;
    const float den = sqrtf(vv) + s->eps;
    p = p - s->step_size * (g / den);
    *v = vv;
    return p;
}

/* ---- q8 code maps -----------------------------------------------------------------------------
 * A magnitude code c of B bits (B = 7 for the signed map, whose bit 7 is the sign; B = 8 for the
 * unsigned map) is a dynamic-tree code: with F = floor(log2 c) the bits below the leading one are
 * a linear fraction j - 1, in decade z = B-1-F, (10^-(z+1), 10^-z], of 2^F evenly spaced points
 * whose top is 10^-z: value = lo[z] + j * step[z], j = 1..2^F. The lowest decade (z = B-1) has one
 * point, 10^-(B-1), and code 0 is zero. Quantizing y in [0, 1] (|x| / absmax):
 *   z = #{k in 1..B-1 : y <= thr[k]}  (thr[k] = 10^-k in fp32);
 *   j = RNE(min((y - lo[z]) * inv_step[z], jmax[z]));  c = base[z] + j   (base = 2^F - 1)
 * j = 0 lands on the top of the decade below (its value is lo[z]). Every ISA performs these fp32
 * operations, so codes are bit-identical. */
typedef struct zq8__map {
    int bits;     /* B */
    float thr[8]; /* thr[k], k = 1..B-1 */
    float lo[8], step[8], inv_step[8], jmax[8];
    int32_t base[8];
    float val[256]; /* decoded value of each full code (signed: bit 7 negates) */
} zq8__map;
/* [0]: signed map (exp_avg), [1]: unsigned map (exp_avg_sq). Built once, thread-safe. */
const zq8__map *zq8__maps(void);

static inline uint32_t zq8__quant_mag(const zq8__map *q, float y)
{
    int z = 0;
    for (int k = 1; k < q->bits; k++) z += y <= q->thr[k];
    float t = (y - q->lo[z]) * q->inv_step[z];
    t = t < q->jmax[z] ? t : q->jmax[z];
    return (uint32_t)(q->base[z] + (int32_t)nearbyintf(t));
}

/* Quantizes nb <= ZSTATE_Q8_BLOCK values of one block: writes nb codes and the block's absmax
 * (NaN with zero codes when a value is not finite; 0 with zero codes when absmax < FLT_MIN). */
void zq8__encode_block(int which, const float *x, size_t nb, uint8_t *codes, float *absmax);
/* The block's absmax as used by encode: max of |x| bits (NaN > inf > finite); returns the bits. */
static inline uint32_t zq8__absbits(float x)
{
    return zoff_f32_bits(x) & 0x7fffffffu;
}
/* From the max |x| bits of a block: the absmax to store and the multiplier (0: all codes 0). */
static inline float zq8__block_scale(uint32_t amax_bits, float *inv)
{
    if (amax_bits >= 0x7f800000u) {
        *inv = 0.0f;
        return zoff_bits_f32(0x7fc00000u);
    }
    if (amax_bits < 0x00800000u) { /* zero or subnormal: stored as zero */
        *inv = 0.0f;
        return 0.0f;
    }
    const float a = zoff_bits_f32(amax_bits);
    *inv = 1.0f / a;
    return a;
}

/* The generic step (any optimizer, any format) over blocks [from, n) of t through the scalar
 * reference (from is a multiple of ZSTATE_Q8_BLOCK): the SIMD kernels' tails. */
size_t zopt__step_tail(const zadam__scalars *s, const zadam_tensor *t, size_t from);
size_t zopt__step_scalar(const zadam__scalars *s, const zadam_tensor *t);
size_t zopt__step_avx2(const zadam__scalars *s, const zadam_tensor *t);
size_t zopt__step_avx512(const zadam__scalars *s, const zadam_tensor *t);

/* Gradient element i as fp32 (exact for every dtype). */
static inline float zadam__grad_at(const void *grad, zoff_dtype dt, size_t i)
{
    switch (dt) {
    case ZOFF_DTYPE_F16:
        return zoff_f16_to_f32(((const uint16_t *)grad)[i]);
    case ZOFF_DTYPE_BF16:
        return zoff_bf16_to_f32(((const uint16_t *)grad)[i]);
    default:
        return ((const float *)grad)[i];
    }
}

/* Writes p as element i of the 16-bit (or fp32) output (half.h rounding). */
static inline void zadam__out_at(void *out, zoff_dtype dt, size_t i, float p)
{
    switch (dt) {
    case ZOFF_DTYPE_F16:
        ((uint16_t *)out)[i] = zoff_f32_to_f16(p);
        break;
    case ZOFF_DTYPE_BF16:
        ((uint16_t *)out)[i] = zoff_f32_to_bf16(p);
        break;
    default:
        ((float *)out)[i] = p;
        break;
    }
}

/* 1 if x is inf or NaN (exponent all ones), tested on the bits. */
static inline int zadam__nonfinite(float x)
{
    return (zoff_f32_bits(x) & 0x7f800000u) == 0x7f800000u;
}

/* Elements [from, n) of t through the scalar reference (the SIMD kernels' tails). Returns the
 * non-finite gradient count of that range. */
size_t zadam__step_tail(const zadam__scalars *s, const zadam_tensor *t, size_t from);

/* ---- kernels on precomputed scalars (the ctx calls these per tile) -------------------------- */
typedef size_t (*zadam__step_fn)(const zadam__scalars *s, const zadam_tensor *t);
size_t zadam__step_scalar(const zadam__scalars *s, const zadam_tensor *t);
size_t zadam__step_avx2(const zadam__scalars *s, const zadam_tensor *t);
size_t zadam__step_avx512(const zadam__scalars *s, const zadam_tensor *t);

/* ---- sum of squares: the canonical order ------------------------------------------------------
 * The gradient is cut into chunks of ZADAM_SUMSQ_CHUNK_NUMEL elements. Inside a chunk, element k
 * (chunk-relative) belongs to lane k % 16. fp32/bf16: it is squared in double (exact) and added
 * to its double lane in increasing k. fp16: the chunk is cut into blocks of
 * ZADAM__SUMSQ_F16_BLOCK (128) elements; in a block each lane's squares (exact in fp32: 11-bit
 * significands, no overflow or underflow) are added in fp32 in increasing k starting from 0 (a
 * short last block adds the elements it has), then the fp32 partial is added to the double lane;
 * blocks in increasing order. The chunk's sum is lane 0 + lane 1 + ... + lane 15, left to right.
 * The total is the chunk sums added left to right starting from 0. Every ISA follows this order, so
 * every ISA and every thread count gives the same bits. */
#define ZADAM__SUMSQ_LANES     16
#define ZADAM__SUMSQ_F16_BLOCK ((size_t)128) /* divides ZADAM_SUMSQ_CHUNK_NUMEL */
typedef double (*zadam__sumsq_chunk_fn)(const void *grad, zoff_dtype dt, size_t n,
                                        size_t *nonfinite);
/* One chunk (n <= ZADAM_SUMSQ_CHUNK_NUMEL); *nonfinite receives the chunk's non-finite count. */
double zadam__sumsq_chunk_scalar(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);
double zadam__sumsq_chunk_avx2(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);
double zadam__sumsq_chunk_avx512(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);

/* Adds the squares of elements [from, n) of a chunk into lanes[] (lane = k % 16; fp16: from is a
 * multiple of ZADAM__SUMSQ_F16_BLOCK, blocks as above) and returns the
 * non-finite count of that range; then zadam__sumsq_lanes folds the lanes in order. */
size_t zadam__sumsq_tail(const void *grad, zoff_dtype dt, size_t from, size_t n,
                         double lanes[ZADAM__SUMSQ_LANES]);
double zadam__sumsq_lanes(const double lanes[ZADAM__SUMSQ_LANES]);

/* Whole-buffer sum in canonical order with one chunk function, single-threaded. */
double zadam__sumsq_serial(zadam__sumsq_chunk_fn chunk, const void *grad, zoff_dtype dt, size_t n,
                           size_t *nonfinite);

/* ---- CPU features ---------------------------------------------------------------------------- */
/* Tests only: pretend the CPU supports no ISA above `max_isa` (-1: back to the real CPU).
 * Not thread-safe; call before creating contexts. */
void zadam__cpu_override(int max_isa);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_CPU_ADAM_INTERNAL_H */
