/*
 * adam_avx512.c — the AVX-512 variant of the fused Adam/AdamW step and of the gradient sum of
 * squares: 16 fp32 lanes per vector, the same operations in the same order as the scalar
 * reference (adam_internal.h), so results are bit-identical to it. fp16 conversions use F16C
 * (vcvtph2ps / vcvtps2ph, round to nearest even, exact like common/half.h incl. NaN payloads);
 * bf16 rounding is integer round-to-nearest-even (vcvtneps2bf16 would flush fp32 subnormals).
 * Compiled with target attributes only; dispatch.c calls it when CPUID and XCR0 allow.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu_adam/adam_internal.h"

#define ZADAM_AVX512        __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c,popcnt")))
#define ZADAM_AVX512_INLINE static inline __attribute__((always_inline)) ZADAM_AVX512

/* Output kinds, compile-time constants of the specialised bodies. */
enum { OUT_NONE = 0, OUT_F16, OUT_BF16, OUT_F32 };

/* 16 gradient elements from index i as fp32 (exact). */
ZADAM_AVX512_INLINE __m512 load_grad16(const void *grad, zoff_dtype dt, size_t i)
{
    if (dt == ZOFF_DTYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)grad + i)));
    if (dt == ZOFF_DTYPE_BF16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)grad + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_loadu_ps((const float *)grad + i);
}

/* fp32 -> bf16 bits in the low half of each 32-bit lane: round to nearest even, NaN quieted
 * (the same integer recipe as zoff_f32_to_bf16). */
ZADAM_AVX512_INLINE __m512i bf16_round16(__m512 p)
{
    const __m512i x = _mm512_castps_si512(p);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(
        _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_mov_epi32(rounded, nan, quiet);
}

/* Stores the output copy of 16 params at index i; nt: non-temporal (out + i is aligned). */
ZADAM_AVX512_INLINE void store_out16(void *out, int kind, size_t i, __m512 p, int nt)
{
    if (kind == OUT_F16 || kind == OUT_BF16) {
        const __m256i h = kind == OUT_F16
                              ? _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                              : _mm512_cvtepi32_epi16(bf16_round16(p));
        __m256i *dst = (__m256i *)((uint16_t *)out + i);
        if (nt)
            _mm256_stream_si256(dst, h);
        else
            _mm256_storeu_si256(dst, h);
    } else if (kind == OUT_F32) {
        if (nt)
            _mm512_stream_ps((float *)out + i, p);
        else
            _mm512_storeu_ps((float *)out + i, p);
    }
}

/* Count of lanes whose fp32 value is inf or NaN. */
ZADAM_AVX512_INLINE unsigned nonfinite16(__m512 x)
{
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    __mmask16 k = _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(x), e), e);
    return (unsigned)__builtin_popcount((unsigned)k);
}

ZADAM_AVX512_INLINE size_t step_body(const zadam__scalars *s, const zadam_tensor *t, zoff_dtype gdt,
                                     int out_kind, int nt)
{
    const __m512 gs = _mm512_set1_ps(s->grad_scale);
    const __m512 b1 = _mm512_set1_ps(s->beta1), omb1 = _mm512_set1_ps(s->one_minus_beta1);
    const __m512 b2 = _mm512_set1_ps(s->beta2), omb2 = _mm512_set1_ps(s->one_minus_beta2);
    const __m512 l2 = _mm512_set1_ps(s->l2_wd), decay = _mm512_set1_ps(s->decay);
    const __m512 ibc2 = _mm512_set1_ps(s->inv_sqrt_bc2), eps = _mm512_set1_ps(s->eps);
    const __m512 step = _mm512_set1_ps(s->step_size);
    const int apply_l2 = s->apply_l2, apply_decay = s->apply_decay;
    float *restrict param = t->param, *restrict exp_avg = t->exp_avg,
                    *restrict exp_avg_sq = t->exp_avg_sq;
    const size_t n = t->n;
    size_t nonfinite = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 graw = load_grad16(t->grad, gdt, i);
        nonfinite += nonfinite16(graw);
        __m512 g = _mm512_mul_ps(graw, gs);
        __m512 p = _mm512_loadu_ps(param + i);
        if (apply_l2) g = _mm512_add_ps(g, _mm512_mul_ps(l2, p));
        const __m512 m =
            _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(exp_avg + i)), _mm512_mul_ps(omb1, g));
        const __m512 v = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(exp_avg_sq + i)),
                                       _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
        if (apply_decay) p = _mm512_mul_ps(p, decay);
        const __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), ibc2), eps);
        p = _mm512_sub_ps(p, _mm512_mul_ps(step, _mm512_div_ps(m, denom)));
        _mm512_storeu_ps(param + i, p);
        _mm512_storeu_ps(exp_avg + i, m);
        _mm512_storeu_ps(exp_avg_sq + i, v);
        store_out16(t->param_out, out_kind, i, p, nt);
    }
    if (nt) _mm_sfence(); /* order the streaming stores before whoever reads the copy */
    return nonfinite + zadam__step_tail(s, t, i);
}

/* One specialised body per (grad dtype, output kind) pair; non-temporal output stores only when
 * asked for and the output is aligned to the vector store (32 bytes, 64 for fp32). */
#define ZADAM_OUTS(gdt)                                                                            \
    switch (out_kind) {                                                                            \
    case OUT_F16:                                                                                  \
        return nt ? step_body(s, t, gdt, OUT_F16, 1) : step_body(s, t, gdt, OUT_F16, 0);           \
    case OUT_BF16:                                                                                 \
        return nt ? step_body(s, t, gdt, OUT_BF16, 1) : step_body(s, t, gdt, OUT_BF16, 0);         \
    case OUT_F32:                                                                                  \
        return nt ? step_body(s, t, gdt, OUT_F32, 1) : step_body(s, t, gdt, OUT_F32, 0);           \
    default:                                                                                       \
        return step_body(s, t, gdt, OUT_NONE, 0);                                                  \
    }

ZADAM_AVX512 size_t zadam__step_avx512(const zadam__scalars *s, const zadam_tensor *t)
{
    int out_kind = OUT_NONE, nt = 0;
    if (t->param_out) {
        out_kind = t->out_dtype == ZOFF_DTYPE_F16    ? OUT_F16
                   : t->out_dtype == ZOFF_DTYPE_BF16 ? OUT_BF16
                                                     : OUT_F32;
        nt = s->nt_out && ZOFF_IS_ALIGNED(t->param_out, out_kind == OUT_F32 ? 64 : 32);
    }
    switch (t->grad_dtype) {
    case ZOFF_DTYPE_F16:
        ZADAM_OUTS(ZOFF_DTYPE_F16)
    case ZOFF_DTYPE_BF16:
        ZADAM_OUTS(ZOFF_DTYPE_BF16)
    default:
        ZADAM_OUTS(ZOFF_DTYPE_F32)
    }
}

size_t adam_step_avx512(const zadam_hparams *hp, const zadam_tensor *t)
{
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    return zadam__step_avx512(&s, t);
}

/* ---- sum of squares -------------------------------------------------------------------------- */

/* Lanes 0-7 in acc0, 8-15 in acc1: element k of the chunk goes to lane k % 16. fp16: blocks of
 * 128 elements, each lane's 8 squares summed in fp32 (mul then add, in increasing k) and the
 * block partial added to the double lane. fp32/bf16: each square in double (exact), added with an
 * FMA that rounds once, like the scalar `+=`. The hot loop does not count non-finite elements: a
 * chunk's sum is finite exactly when all its elements are (squares are >= 0 and cannot overflow:
 * fp16 block partials stay below 8 * 65504^2, double squares of fp32 values below DBL_MAX / 2^15),
 * so the vector body is recounted only when the sum is not finite (rare; same count). */
ZADAM_AVX512_INLINE double sumsq_body(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite)
{
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    size_t bad = 0, k = 0;
    if (dt == ZOFF_DTYPE_F16) {
        for (; k + ZADAM__SUMSQ_F16_BLOCK <= n; k += ZADAM__SUMSQ_F16_BLOCK) {
            __m512 x = load_grad16(grad, dt, k);
            __m512 p = _mm512_mul_ps(x, x);
            for (size_t i = 16; i < ZADAM__SUMSQ_F16_BLOCK; i += 16) {
                x = load_grad16(grad, dt, k + i);
                p = _mm512_add_ps(p, _mm512_mul_ps(x, x));
            }
            acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
            acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_castpd_ps(
                                           _mm512_extractf64x4_pd(_mm512_castps_pd(p), 1))));
        }
    } else {
        for (; k + 16 <= n; k += 16) {
            const __m512 x = load_grad16(grad, dt, k);
            const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
            const __m512d hi =
                _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
            acc0 = _mm512_fmadd_pd(lo, lo, acc0);
            acc1 = _mm512_fmadd_pd(hi, hi, acc1);
        }
    }
    double lanes[ZADAM__SUMSQ_LANES];
    _mm512_storeu_pd(lanes, acc0);
    _mm512_storeu_pd(lanes + 8, acc1);
    bad += zadam__sumsq_tail(grad, dt, k, n, lanes);
    const double sum = zadam__sumsq_lanes(lanes);
    if (!isfinite(sum))
        for (size_t j = 0; j < k; j += 16) bad += nonfinite16(load_grad16(grad, dt, j));
    *nonfinite = bad;
    return sum;
}

ZADAM_AVX512 double zadam__sumsq_chunk_avx512(const void *grad, zoff_dtype dt, size_t n,
                                              size_t *nonfinite)
{
    switch (dt) {
    case ZOFF_DTYPE_F16:
        return sumsq_body(grad, ZOFF_DTYPE_F16, n, nonfinite);
    case ZOFF_DTYPE_BF16:
        return sumsq_body(grad, ZOFF_DTYPE_BF16, n, nonfinite);
    default:
        return sumsq_body(grad, ZOFF_DTYPE_F32, n, nonfinite);
    }
}

double sumsq_avx512(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite)
{
    return zadam__sumsq_serial(zadam__sumsq_chunk_avx512, grad, dt, n, nonfinite);
}

/* ---- the generic step: Adam / Lion / Adagrad over fp32, bf16 or q8 moments -------------------
 * Whole q8 blocks (ZSTATE_Q8_BLOCK elements) at a time: the moments are decoded (a gather from the
 * code map times the block's absmax), updated, kept in an L1 buffer while the block's absmax is
 * taken (integer max of |x| bits, any order gives the same), then quantized with the fp32
 * operations of zq8__quant_mag. The last, partial block goes through the scalar reference. */

typedef struct q8_tabs16 {
    __m512 lo, istep, jmax, step, thr[8];
    __m512i base;
    int bits;
} q8_tabs16;

ZADAM_AVX512_INLINE void q8_tabs_load(const zq8__map *q, q8_tabs16 *tb)
{
    tb->bits = q->bits;
    tb->lo = _mm512_zextps256_ps512(_mm256_loadu_ps(q->lo));
    tb->istep = _mm512_zextps256_ps512(_mm256_loadu_ps(q->inv_step));
    tb->jmax = _mm512_zextps256_ps512(_mm256_loadu_ps(q->jmax));
    tb->step = _mm512_zextps256_ps512(_mm256_loadu_ps(q->step));
    tb->base = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)q->base));
    for (int k = 1; k < q->bits; k++) tb->thr[k] = _mm512_set1_ps(q->thr[k]);
}

/* 16 codes of x (block multiplier inv); sign: bit 7 from x's sign. */
ZADAM_AVX512_INLINE __m128i q8_quant16(const q8_tabs16 *tb, __m512 x, __m512 inv, int sign)
{
    const __m512i bits = _mm512_castps_si512(x);
    const __m512 y = _mm512_mul_ps(
        _mm512_castsi512_ps(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff))), inv);
    __m512i z = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    for (int k = 1; k < tb->bits; k++)
        z = _mm512_mask_add_epi32(z, _mm512_cmp_ps_mask(y, tb->thr[k], _CMP_LE_OQ), z, one);
    __m512 tt = _mm512_mul_ps(_mm512_sub_ps(y, _mm512_permutexvar_ps(z, tb->lo)),
                              _mm512_permutexvar_ps(z, tb->istep));
    tt = _mm512_min_ps(tt, _mm512_permutexvar_ps(z, tb->jmax));
    __m512i c = _mm512_add_epi32(_mm512_permutexvar_epi32(z, tb->base), _mm512_cvtps_epi32(tt));
    if (sign)
        c = _mm512_or_si512(c,
                            _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80)));
    return _mm512_cvtepi32_epi8(c);
}

/* Quantizes one full block from buf into codes / *absmax; amax: the lanes' max |x| bits. */
ZADAM_AVX512_INLINE void q8_block_out16(const q8_tabs16 *tb, const float *buf, __m512i amax,
                                        uint8_t *codes, float *absmax, int sign)
{
    float inv;
    *absmax = zq8__block_scale(_mm512_reduce_max_epu32(amax), &inv);
    if (inv == 0.0f) {
        memset(codes, 0, ZSTATE_Q8_BLOCK);
        return;
    }
    const __m512 vinv = _mm512_set1_ps(inv);
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 16)
        _mm_storeu_si128((__m128i *)(codes + k),
                         q8_quant16(tb, _mm512_loadu_ps(buf + k), vinv, sign));
}

/* Decodes 16 codes (as int32 lanes) with the map's fp32 formula (the val[] table of
 * zq8__map): F = floor(log2 c) from the exponent of (float)c, z = B-1-F, j = c - base[z],
 * value = lo[z] + (float)j * step[z]; code 0 is +0; signed: bit 7 is the sign. No gathers. */
ZADAM_AVX512_INLINE __m512 q8_decode16(const q8_tabs16 *tb, __m512i c, int sign)
{
    __m512i mag = c;
    if (sign) mag = _mm512_and_si512(c, _mm512_set1_epi32(0x7f));
    const __m512i e = _mm512_srli_epi32(_mm512_castps_si512(_mm512_cvtepi32_ps(mag)), 23);
    const __m512i z = _mm512_sub_epi32(_mm512_set1_epi32(tb->bits - 1 + 127), e);
    const __m512i j = _mm512_sub_epi32(mag, _mm512_permutexvar_epi32(z, tb->base));
    const __m512 prod = _mm512_mul_ps(_mm512_cvtepi32_ps(j), _mm512_permutexvar_ps(z, tb->step));
    __m512 v = _mm512_maskz_add_ps(_mm512_test_epi32_mask(mag, mag),
                                   _mm512_permutexvar_ps(z, tb->lo), prod);
    if (sign)
        v = _mm512_castsi512_ps(
            _mm512_xor_si512(_mm512_castps_si512(v),
                             _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24)));
    return v;
}

ZADAM_AVX512_INLINE __m512 load_state16(const zadam_tensor *t, int fmt, int which, size_t i,
                                        __m512 scale, const q8_tabs16 *tb)
{
    if (fmt == ZSTATE_BF16) {
        const __m256i h = _mm256_loadu_si256(
            (const __m256i *)((const uint16_t *)(which ? t->v_state : t->m_state) + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (fmt == ZSTATE_Q8) {
        const __m128i c = _mm_loadu_si128(
            (const __m128i *)((const uint8_t *)(which ? t->v_state : t->m_state) + i));
        return _mm512_mul_ps(q8_decode16(tb, _mm512_cvtepu8_epi32(c), !which), scale);
    }
    return _mm512_loadu_ps((which ? t->exp_avg_sq : t->exp_avg) + i);
}

/* fp32 / bf16 formats store directly; q8 keeps the value in buf and its |x| bits in *amax. */
ZADAM_AVX512_INLINE void store_state16(const zadam_tensor *t, int fmt, int which, size_t i,
                                       __m512 x, float *buf, __m512i *amax)
{
    if (fmt == ZSTATE_BF16) {
        _mm256_storeu_si256((__m256i *)((uint16_t *)(which ? t->v_state : t->m_state) + i),
                            _mm512_cvtepi32_epi16(bf16_round16(x)));
    } else if (fmt == ZSTATE_Q8) {
        _mm512_storeu_ps(buf, x);
        *amax = _mm512_max_epu32(
            *amax, _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
    } else {
        _mm512_storeu_ps((which ? t->exp_avg_sq : t->exp_avg) + i, x);
    }
}

ZADAM_AVX512_INLINE size_t opt_body(const zadam__scalars *s, const zadam_tensor *t, zoff_dtype gdt,
                                    int optim, int fmt)
{
    const __m512 gs = _mm512_set1_ps(s->grad_scale);
    const __m512 b1 = _mm512_set1_ps(s->beta1), omb1 = _mm512_set1_ps(s->one_minus_beta1);
    const __m512 b2 = _mm512_set1_ps(s->beta2), omb2 = _mm512_set1_ps(s->one_minus_beta2);
    const __m512 l2 = _mm512_set1_ps(s->l2_wd), decay = _mm512_set1_ps(s->decay);
    const __m512 ibc2 = _mm512_set1_ps(s->inv_sqrt_bc2), eps = _mm512_set1_ps(s->eps);
    const __m512 step = _mm512_set1_ps(s->step_size);
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    const int apply_l2 = s->apply_l2, apply_decay = s->apply_decay;
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    int out_kind = OUT_NONE;
    if (t->param_out)
        out_kind = t->out_dtype == ZOFF_DTYPE_F16    ? OUT_F16
                   : t->out_dtype == ZOFF_DTYPE_BF16 ? OUT_BF16
                                                     : OUT_F32;
    const zq8__map *maps = zq8__maps();
    q8_tabs16 tm, tv;
    memset(&tm, 0, sizeof tm);
    memset(&tv, 0, sizeof tv);
    if (fmt == ZSTATE_Q8) {
        q8_tabs_load(&maps[0], &tm);
        q8_tabs_load(&maps[1], &tv);
    }
    float *restrict param = t->param;
    const size_t nfull = t->n / ZSTATE_Q8_BLOCK * ZSTATE_Q8_BLOCK;
    float mb[ZSTATE_Q8_BLOCK] __attribute__((aligned(64)));
    float vb[ZSTATE_Q8_BLOCK] __attribute__((aligned(64)));
    size_t nonfinite = 0;
    for (size_t b0 = 0; b0 < nfull; b0 += ZSTATE_Q8_BLOCK) {
        const size_t blk = b0 / ZSTATE_Q8_BLOCK;
        __m512 ms = zero, vs = zero;
        if (fmt == ZSTATE_Q8) {
            if (has_m) ms = _mm512_set1_ps(t->m_absmax[blk]);
            if (has_v) vs = _mm512_set1_ps(t->v_absmax[blk]);
        }
        __m512i mmax = _mm512_setzero_si512(), vmax = _mm512_setzero_si512();
        for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 16) {
            const size_t i = b0 + k;
            const __m512 graw = load_grad16(t->grad, gdt, i);
            nonfinite += nonfinite16(graw);
            __m512 g = _mm512_mul_ps(graw, gs);
            __m512 p = _mm512_loadu_ps(param + i);
            __m512 m = zero, v = zero;
            if (has_m) m = load_state16(t, fmt, 0, i, ms, &tm);
            if (has_v) v = load_state16(t, fmt, 1, i, vs, &tv);
            if (optim == ZOPT_ADAM) {
                if (apply_l2) g = _mm512_add_ps(g, _mm512_mul_ps(l2, p));
                m = _mm512_add_ps(_mm512_mul_ps(b1, m), _mm512_mul_ps(omb1, g));
                v = _mm512_add_ps(_mm512_mul_ps(b2, v), _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
                if (apply_decay) p = _mm512_mul_ps(p, decay);
                const __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), ibc2), eps);
                p = _mm512_sub_ps(p, _mm512_mul_ps(step, _mm512_div_ps(m, denom)));
            } else if (optim == ZOPT_LION) {
                const __m512 c = _mm512_add_ps(_mm512_mul_ps(b1, m), _mm512_mul_ps(omb1, g));
                if (apply_decay) p = _mm512_mul_ps(p, decay);
                const __mmask16 nz = _mm512_cmp_ps_mask(c, zero, _CMP_NEQ_OQ);
                const __m512 sgn = _mm512_castsi512_ps(_mm512_or_si512(
                    _mm512_and_si512(_mm512_castps_si512(c), signbit), _mm512_castps_si512(one)));
                const __m512 u = _mm512_mask_blend_ps(nz, c, sgn);
                p = _mm512_sub_ps(p, _mm512_mul_ps(step, u));
                m = _mm512_add_ps(_mm512_mul_ps(b2, m), _mm512_mul_ps(omb2, g));
            } else {
                if (apply_l2) g = _mm512_add_ps(g, _mm512_mul_ps(l2, p));
                v = _mm512_add_ps(v, _mm512_mul_ps(g, g));
                const __m512 den = _mm512_add_ps(_mm512_sqrt_ps(v), eps);
                p = _mm512_sub_ps(p, _mm512_mul_ps(step, _mm512_div_ps(g, den)));
            }
            _mm512_storeu_ps(param + i, p);
            store_out16(t->param_out, out_kind, i, p, 0);
            if (has_m) store_state16(t, fmt, 0, i, m, mb + k, &mmax);
            if (has_v) store_state16(t, fmt, 1, i, v, vb + k, &vmax);
        }
        if (fmt == ZSTATE_Q8) {
            if (has_m)
                q8_block_out16(&tm, mb, mmax, (uint8_t *)t->m_state + b0, &t->m_absmax[blk], 1);
            if (has_v)
                q8_block_out16(&tv, vb, vmax, (uint8_t *)t->v_state + b0, &t->v_absmax[blk], 0);
        }
    }
    return nonfinite + zopt__step_tail(s, t, nfull);
}

#define ZOPT_FMTS(gdt, optim)                                                                      \
    switch (t->state_fmt) {                                                                        \
    case ZSTATE_BF16:                                                                              \
        return opt_body(s, t, gdt, optim, ZSTATE_BF16);                                            \
    case ZSTATE_Q8:                                                                                \
        return opt_body(s, t, gdt, optim, ZSTATE_Q8);                                              \
    default:                                                                                       \
        return opt_body(s, t, gdt, optim, ZSTATE_FP32);                                            \
    }
#define ZOPT_OPTIMS(gdt)                                                                           \
    switch (s->optim) {                                                                            \
    case ZOPT_LION:                                                                                \
        ZOPT_FMTS(gdt, ZOPT_LION)                                                                  \
    case ZOPT_ADAGRAD:                                                                             \
        ZOPT_FMTS(gdt, ZOPT_ADAGRAD)                                                               \
    default:                                                                                       \
        ZOPT_FMTS(gdt, ZOPT_ADAM)                                                                  \
    }

ZADAM_AVX512 size_t zopt__step_avx512(const zadam__scalars *s, const zadam_tensor *t)
{
    switch (t->grad_dtype) {
    case ZOFF_DTYPE_F16:
        ZOPT_OPTIMS(ZOFF_DTYPE_F16)
    case ZOFF_DTYPE_BF16:
        ZOPT_OPTIMS(ZOFF_DTYPE_BF16)
    default:
        ZOPT_OPTIMS(ZOFF_DTYPE_F32)
    }
}

size_t zopt_step_avx512(const zadam_hparams *hp, const zadam_tensor *t)
{
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    return zopt__step_avx512(&s, t);
}
