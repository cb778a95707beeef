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
    float cq1, cq2; /* compact-state Adam: (1 - beta1) * grad_scale, (1 - beta2) * grad_scale^2 */
    float cq_da, cq_db; /* compact-state Adam: the negated denominator over step_size,
                           -inv_sqrt_bc2 / step_size and -eps / step_size; -0 and -inf when
                           step_size is 0 or a quotient overflows (the update term is +-0) */
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

/* Adam over compact moments (bf16 or q8 state, no L2 term), in the order every variant follows:
 *   m     = fma(beta1, m, cq1 * graw);            cq1 = (1 - beta1) * grad_scale
 *   v     = fma(beta2, v, (cq2 * graw) * graw);   cq2 = (1 - beta2) * grad_scale^2
 *   nden  = fma(sqrt(v), cq_da, cq_db);           cq_da = -inv_sqrt_bc2 / step_size,
 *                                                  cq_db = -eps / step_size
 *   p     = fma(p, decay, m / nden);              decay = 1 without AdamW decay
 * This is zadam__elem with the grad scale folded into the moment constants, the step size into
 * the denominator's (each computed in double, rounded once), and five multiply-adds fused: fewer
 * roundings and fewer vector operations per element in the SIMD kernels, which is what lets the q8
 * step run near memory speed. The decay multiply rides in the last FMA (p * 1 + q == p + q
 * exactly), and the denominator is negated in its constants rather than by an operation, so a NaN
 * moment reaches p with its own sign in every variant. A zero step size (lr = 0) gives cq_da = -0,
 * cq_db = -inf: m / -inf = -+0 and p comes out as p * decay, as the unfused form gives (an inf v
 * then gives NaN, as any non-finite moment does). fmaf is correctly rounded (C99), as are the
 * SIMD FMAs: every variant gives the same bits. The fp32 state keeps zadam__elem (the round-1
 * kernels, compared with torch.optim.Adam). */
static inline float zadam__elem_cq(const zadam__scalars *s, float graw, float p, float *m, float *v)
{
    const float mv = fmaf(s->beta1, *m, s->cq1 * graw);
    const float vv = fmaf(s->beta2, *v, (s->cq2 * graw) * graw);
    const float nden = fmaf(sqrtf(vv), s->cq_da, s->cq_db);
    p = fmaf(p, s->decay, mv / nden);
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

/* ---- q8 codes: 8-bit floats under the block's power-of-two scale ----------------------------
 * A block stores its fp32 absmax a (the exact max |x|) and one byte per value. With ea = the
 * exponent field of a rounded to 3 mantissa bits (half away from zero, like the codes), the
 * block's scale is S = 2^(ea - 126), the power of two above that rounded absmax, so every code
 * is below S (E = Emax is never produced) and decoded values re-encode to the same codes. A
 * magnitude code c = E << 3 | M is a float with 3 mantissa bits relative to S: exp_avg    (which
 * 0): sign in bit 7, E in 0..15, value (1 + M/8) * 2^(E - 15) * S, mag 0 = 0; exp_avg_sq (which 1):
 * unsigned, E in 0..31, value (1 + M/8) * 2^(E - 31) * S (code 0 is the smallest value, 2^-31 * S:
 * v is a mean of squares, its range is the square of exp_avg's). Decoding is integer: bits = (c <<
 * 20) + ((ea + 1 - Emax) << 23) (exact: the product of a power of two and a normal float). Encoding
 * rounds |x|'s fp32 bits to 3 mantissa bits, half away from zero: r = ((bits(x) & 0x7fffffff) +
 * 2^19) >> 20 (a carry moves into the exponent), c = max(r - ((ea + 1 - Emax) << 3), 0), so values
 * below 1.0625 * 2^-Emax * S flush to code 0; r <= ea << 3 | 7 gives c <= Emax << 3 - 1, so no code
 * overflows. Special blocks: a < 2^(Emax - 126) (zero, subnormal, tiny) is stored as a = 0 and
 * decodes to zeros; a >= 2^127, inf or NaN is stored as a = NaN and decodes to NaN. Every ISA
 * performs these integer operations, so codes and decoded values are bit-identical. */
#define ZQ8_M_EMAX       15
#define ZQ8_V_EMAX       31
#define ZQ8__EMAX(w)     ((w) ? ZQ8_V_EMAX : ZQ8_M_EMAX)
#define ZQ8__MIN_BITS(w) ((uint32_t)(ZQ8__EMAX(w) + 1) << 23) /* smaller absmax: zero block */
#define ZQ8__NAN_BITS    0x7f000000u                          /* larger absmax bits: NaN block */

typedef struct zq8__map {
    float val[256]; /* each code's value relative to S (signed: bit 7 negates; 0, 0x80 are +0) */
} zq8__map;
/* [0]: signed map (exp_avg), [1]: unsigned map (exp_avg_sq). Built once, thread-safe. */
const zq8__map *zq8__maps(void);

/* The block's absmax as used by encode: max of |x| bits (NaN > inf > finite); returns the bits. */
static inline uint32_t zq8__absbits(float x)
{
    return zoff_f32_bits(x) & 0x7fffffffu;
}

/* Block kinds from the absmax bits. */
enum { ZQ8__BLK_ZERO = 0, ZQ8__BLK_NORMAL = 1, ZQ8__BLK_NAN = 2 };
static inline int zq8__blk_kind(int which, uint32_t amax_bits)
{
    amax_bits &= 0x7fffffffu;
    if (amax_bits >= ZQ8__NAN_BITS) return ZQ8__BLK_NAN;
    return amax_bits < ZQ8__MIN_BITS(which) ? ZQ8__BLK_ZERO : ZQ8__BLK_NORMAL;
}

/* From the max |x| bits of a normal block: r of the value S * 2^-Emax (encode subtracts it).
 * ea is the exponent field of the absmax rounded like the codes ((bits + 2^19) >> 23), so the
 * largest element's code stays below S and decoded values re-encode to the same codes (their
 * max is that rounded absmax, which rounds to itself). */
static inline uint32_t zq8__enc_sub(int which, uint32_t amax_bits)
{
    return (((amax_bits + 0x80000u) >> 23) + 1u - (uint32_t)ZQ8__EMAX(which)) << 3;
}

/* The absmax to store for a block with max |x| bits amax_bits (see the special blocks). */
static inline float zq8__absmax_store(int which, uint32_t amax_bits)
{
    const int k = zq8__blk_kind(which, amax_bits);
    return k == ZQ8__BLK_NAN    ? zoff_bits_f32(0x7fc00000u)
           : k == ZQ8__BLK_ZERO ? 0.0f
                                : zoff_bits_f32(amax_bits);
}

/* The code of x in a normal block with subtrahend sub = zq8__enc_sub(which, amax bits). */
static inline uint8_t zq8__enc(int which, float x, uint32_t sub)
{
    const uint32_t xb = zoff_f32_bits(x);
    const uint32_t r = ((xb & 0x7fffffffu) + 0x80000u) >> 20;
    uint32_t c = r > sub ? r - sub : 0u;
    if (!which) c |= (xb >> 24) & 0x80u;
    return (uint8_t)c;
}

/* The decoded value of code c in a block whose stored absmax is `absmax`. */
static inline float zq8__dec(int which, uint32_t c, float absmax)
{
    const uint32_t ab = zoff_f32_bits(absmax);
    const int k = zq8__blk_kind(which, ab);
    if (k == ZQ8__BLK_NAN) return zoff_bits_f32(0x7fc00000u);
    const uint32_t mag = which ? c : c & 0x7fu;
    if (k == ZQ8__BLK_ZERO || (!which && mag == 0)) return 0.0f;
    const uint32_t b = (mag << 20) + (zq8__enc_sub(which, ab & 0x7fffffffu) << 20);
    return zoff_bits_f32(which ? b : b | (c & 0x80u) << 24);
}

/* Quantizes nb <= ZSTATE_Q8_BLOCK values of one block: writes nb codes and the block's absmax. */
void zq8__encode_block(int which, const float *x, size_t nb, uint8_t *codes, float *absmax);

/* The generic step over one block [b0, b0 + nb) through the scalar reference. */
size_t zopt__step_block(const zadam__scalars *s, const zadam_tensor *t, size_t b0, size_t nb);

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

/* The non-finite gradient count of the q8 block at b0 from the max |x| bits of its new moments
 * (ma, va; 0 for a moment the optimizer lacks): a non-finite gradient makes every kept moment
 * non-finite (1 - beta > 0), so the block's gradients are counted only when one of those is inf
 * or NaN. The SIMD kernels' per-block count. */
static inline size_t zq8__block_nonfinite(const zadam_tensor *t, zoff_dtype gdt, size_t b0,
                                          uint32_t ma, uint32_t va)
{
    size_t bad = 0;
    if (((ma & 0x7fffffffu) >= 0x7f800000u) || ((va & 0x7fffffffu) >= 0x7f800000u))
        for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k++)
            bad += (size_t)zadam__nonfinite(zadam__grad_at(t->grad, gdt, b0 + k));
    return bad;
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
