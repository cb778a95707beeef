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
