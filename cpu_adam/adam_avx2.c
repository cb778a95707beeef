/*
 * adam_avx2.c — the AVX2 (+FMA, F16C) variant of the fused Adam/AdamW step and of the gradient
 * sum of squares: 8 fp32 lanes per vector, the same operations in the same order as the scalar
 * reference (adam_internal.h), so results are bit-identical to it. fp16 conversions use F16C
 * (round to nearest even, exact like common/half.h); bf16 rounding is integer round to nearest
 * even. Compiled with target attributes only; dispatch.c calls it when CPUID and XCR0 allow.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu_adam/adam_internal.h"

#define ZADAM_AVX2        __attribute__((target("avx2,fma,f16c,popcnt")))
#define ZADAM_AVX2_INLINE static inline __attribute__((always_inline)) ZADAM_AVX2

enum { OUT_NONE = 0, OUT_F16, OUT_BF16, OUT_F32 };

/* 8 gradient elements from index i as fp32 (exact). */
ZADAM_AVX2_INLINE __m256 load_grad8(const void *grad, zoff_dtype dt, size_t i)
{
    if (dt == ZOFF_DTYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)grad + i)));
    if (dt == ZOFF_DTYPE_BF16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)grad + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm256_loadu_ps((const float *)grad + i);
}

/* fp32 -> 8 bf16 values, round to nearest even, NaN quieted (as zoff_f32_to_bf16). */
ZADAM_AVX2_INLINE __m128i bf16_round8(__m256 p)
{
    const __m256i x = _mm256_castps_si256(p);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
    /* every lane is <= 0xffff, so the unsigned saturating pack is a plain narrowing */
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

/* Stores the output copy of 8 params at index i; nt: non-temporal (out + i is aligned). */
ZADAM_AVX2_INLINE void store_out8(void *out, int kind, size_t i, __m256 p, int nt)
{
    if (kind == OUT_F16 || kind == OUT_BF16) {
        const __m128i h = kind == OUT_F16
                              ? _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                              : bf16_round8(p);
        __m128i *dst = (__m128i *)((uint16_t *)out + i);
        if (nt)
            _mm_stream_si128(dst, h);
        else
            _mm_storeu_si128(dst, h);
    } else if (kind == OUT_F32) {
        if (nt)
            _mm256_stream_ps((float *)out + i, p);
        else
            _mm256_storeu_ps((float *)out + i, p);
    }
}

ZADAM_AVX2_INLINE unsigned nonfinite8(__m256 x)
{
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    __m256i eq = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(x), e), e);
    return (unsigned)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(eq)));
}

ZADAM_AVX2_INLINE size_t step_body(const zadam__scalars *s, const zadam_tensor *t, zoff_dtype gdt,
                                   int out_kind, int nt)
{
    const __m256 gs = _mm256_set1_ps(s->grad_scale);
    const __m256 b1 = _mm256_set1_ps(s->beta1), omb1 = _mm256_set1_ps(s->one_minus_beta1);
    const __m256 b2 = _mm256_set1_ps(s->beta2), omb2 = _mm256_set1_ps(s->one_minus_beta2);
    const __m256 l2 = _mm256_set1_ps(s->l2_wd), decay = _mm256_set1_ps(s->decay);
    const __m256 ibc2 = _mm256_set1_ps(s->inv_sqrt_bc2), eps = _mm256_set1_ps(s->eps);
    const __m256 step = _mm256_set1_ps(s->step_size);
    const int apply_l2 = s->apply_l2, apply_decay = s->apply_decay;
    float *restrict param = t->param, *restrict exp_avg = t->exp_avg,
                    *restrict exp_avg_sq = t->exp_avg_sq;
    const size_t n = t->n;
    size_t nonfinite = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 graw = load_grad8(t->grad, gdt, i);
        nonfinite += nonfinite8(graw);
        __m256 g = _mm256_mul_ps(graw, gs);
        __m256 p = _mm256_loadu_ps(param + i);
        if (apply_l2) g = _mm256_add_ps(g, _mm256_mul_ps(l2, p));
        const __m256 m =
            _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(exp_avg + i)), _mm256_mul_ps(omb1, g));
        const __m256 v = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(exp_avg_sq + i)),
                                       _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
        if (apply_decay) p = _mm256_mul_ps(p, decay);
        const __m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(v), ibc2), eps);
        p = _mm256_sub_ps(p, _mm256_mul_ps(step, _mm256_div_ps(m, denom)));
        _mm256_storeu_ps(param + i, p);
        _mm256_storeu_ps(exp_avg + i, m);
        _mm256_storeu_ps(exp_avg_sq + i, v);
        store_out8(t->param_out, out_kind, i, p, nt);
    }
    if (nt) _mm_sfence(); /* order the streaming stores before whoever reads the copy */
    return nonfinite + zadam__step_tail(s, t, i);
}

/* One specialised body per (grad dtype, output kind) pair; non-temporal output stores only when
 * asked for and the output is aligned to the vector store (16 bytes, 32 for fp32). */
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

ZADAM_AVX2 size_t zadam__step_avx2(const zadam__scalars *s, const zadam_tensor *t)
{
    int out_kind = OUT_NONE, nt = 0;
    if (t->param_out) {
        out_kind = t->out_dtype == ZOFF_DTYPE_F16    ? OUT_F16
                   : t->out_dtype == ZOFF_DTYPE_BF16 ? OUT_BF16
                                                     : OUT_F32;
        nt = s->nt_out && ZOFF_IS_ALIGNED(t->param_out, out_kind == OUT_F32 ? 32 : 16);
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

size_t adam_step_avx2(const zadam_hparams *hp, const zadam_tensor *t)
{
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    return zadam__step_avx2(&s, t);
}

/* ---- sum of squares -------------------------------------------------------------------------- */

/* Lanes 0-3, 4-7, 8-11, 12-15 in acc0..acc3: element k of the chunk goes to lane k % 16; the
 * same order as the AVX-512 body (fp16 blocks of 128 summed in fp32), with the non-finite count
 * deferred the same way. */
ZADAM_AVX2_INLINE double sumsq_body(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite)
{
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    __m256d acc2 = _mm256_setzero_pd(), acc3 = _mm256_setzero_pd();
    size_t bad = 0, k = 0;
    if (dt == ZOFF_DTYPE_F16) {
        for (; k + ZADAM__SUMSQ_F16_BLOCK <= n; k += ZADAM__SUMSQ_F16_BLOCK) {
            __m256 x0 = load_grad8(grad, dt, k), x1 = load_grad8(grad, dt, k + 8);
            __m256 p0 = _mm256_mul_ps(x0, x0), p1 = _mm256_mul_ps(x1, x1);
            for (size_t i = 16; i < ZADAM__SUMSQ_F16_BLOCK; i += 16) {
                x0 = load_grad8(grad, dt, k + i);
                x1 = load_grad8(grad, dt, k + i + 8);
                p0 = _mm256_add_ps(p0, _mm256_mul_ps(x0, x0));
                p1 = _mm256_add_ps(p1, _mm256_mul_ps(x1, x1));
            }
            acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(p0)));
            acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(p0, 1)));
            acc2 = _mm256_add_pd(acc2, _mm256_cvtps_pd(_mm256_castps256_ps128(p1)));
            acc3 = _mm256_add_pd(acc3, _mm256_cvtps_pd(_mm256_extractf128_ps(p1, 1)));
        }
    } else {
        for (; k + 16 <= n; k += 16) {
            const __m256 x0 = load_grad8(grad, dt, k), x1 = load_grad8(grad, dt, k + 8);
            const __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(x0));
            const __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1));
            const __m256d c = _mm256_cvtps_pd(_mm256_castps256_ps128(x1));
            const __m256d d = _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1));
            acc0 = _mm256_fmadd_pd(a, a, acc0);
            acc1 = _mm256_fmadd_pd(b, b, acc1);
            acc2 = _mm256_fmadd_pd(c, c, acc2);
            acc3 = _mm256_fmadd_pd(d, d, acc3);
        }
    }
    double lanes[ZADAM__SUMSQ_LANES];
    _mm256_storeu_pd(lanes, acc0);
    _mm256_storeu_pd(lanes + 4, acc1);
    _mm256_storeu_pd(lanes + 8, acc2);
    _mm256_storeu_pd(lanes + 12, acc3);
    bad += zadam__sumsq_tail(grad, dt, k, n, lanes);
    const double sum = zadam__sumsq_lanes(lanes);
    if (!isfinite(sum))
        for (size_t j = 0; j < k; j += 8) bad += nonfinite8(load_grad8(grad, dt, j));
    *nonfinite = bad;
    return sum;
}

ZADAM_AVX2 double zadam__sumsq_chunk_avx2(const void *grad, zoff_dtype dt, size_t n,
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

double sumsq_avx2(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite)
{
    return zadam__sumsq_serial(zadam__sumsq_chunk_avx2, grad, dt, n, nonfinite);
}

/* ---- the generic step: Adam / Lion / Adagrad over fp32, bf16 or q8 moments -------------------
 * The AVX-512 structure (adam_avx512.c) with 8 lanes: whole blocks through a loop with every
 * choice a compile-time constant, q8 moments decoded by shifting the code bits into an fp32
 * pattern (times absmax), updated, their rounded high bits r = (bits + 2^19) >> 20 kept in an L1
 * buffer (16 bits each) while the block's absmax is taken, and the codes written one block later
 * (deferred encode, as in the AVX-512 kernel); the last, partial block through the scalar
 * reference. */

/* r = (bits(x) + 2^19) >> 20 of 8 values: |x|'s exponent and top 3 mantissa bits rounded half
 * away from zero (a carry moves into the exponent), the sign in bit 11. */
ZADAM_AVX2_INLINE __m256i q8_round8(__m256 x)
{
    return _mm256_srli_epi32(_mm256_add_epi32(_mm256_castps_si256(x), _mm256_set1_epi32(0x80000)),
                             20);
}

/* Encodes one normal block (see q8_block_out16 in adam_avx512.c) from the buffered r values
 * (packed as the update loop stored them: 16-bit lanes in packus_epi32 order): 16-bit saturating
 * subtract, one pack, one dword permute undoing both packs' lane interleave. */
ZADAM_AVX2_INLINE void q8_block_out8(const uint16_t *buf, uint32_t sub, uint8_t *codes, int which)
{
    const __m256i vsub = _mm256_set1_epi16((short)sub);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 32) {
        __m256i w0 = _mm256_load_si256((const __m256i *)(const void *)(buf + k));
        __m256i w1 = _mm256_load_si256((const __m256i *)(const void *)(buf + k + 16));
        if (!which) {
            const __m256i mag = _mm256_set1_epi16(0x7ff), sgn = _mm256_set1_epi16(0x80);
            w0 = _mm256_or_si256(_mm256_subs_epu16(_mm256_and_si256(w0, mag), vsub),
                                 _mm256_and_si256(_mm256_srli_epi16(w0, 4), sgn));
            w1 = _mm256_or_si256(_mm256_subs_epu16(_mm256_and_si256(w1, mag), vsub),
                                 _mm256_and_si256(_mm256_srli_epi16(w1, 4), sgn));
        } else {
            w0 = _mm256_subs_epu16(w0, vsub);
            w1 = _mm256_subs_epu16(w1, vsub);
        }
        _mm256_storeu_si256((__m256i *)(codes + k),
                            _mm256_permutevar8x32_epi32(_mm256_packus_epi16(w0, w1), perm));
    }
}

ZADAM_AVX2_INLINE uint32_t reduce_max_u32x8(__m256i a)
{
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0x4e));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(m);
}

/* Stores a block's absmax and codes from the buffered r values and the max |x| bits. */
ZADAM_AVX2_INLINE void q8_store_block8(int which, const uint16_t *buf, uint32_t amax,
                                       uint8_t *codes, float *absmax)
{
    *absmax = zq8__absmax_store(which, amax);
    if (zq8__blk_kind(which, amax) == ZQ8__BLK_NORMAL)
        q8_block_out8(buf, zq8__enc_sub(which, amax), codes, which);
    else
        memset(codes, 0, ZSTATE_Q8_BLOCK);
}

/* A q8 block kept for its deferred encode (see q8_pending16 in adam_avx512.c). */
typedef struct q8_pending8 {
    size_t b0;
    uint32_t ma, va;
    uint16_t mh[ZSTATE_Q8_BLOCK] __attribute__((aligned(32)));
    uint16_t vh[ZSTATE_Q8_BLOCK] __attribute__((aligned(32)));
} q8_pending8;

/* Writes a pending block's codes and absmax; returns its non-finite gradient count
 * (zq8__block_nonfinite). */
ZADAM_AVX2_INLINE size_t q8_finish8(const zadam_tensor *t, zoff_dtype gdt, int has_m, int has_v,
                                    const q8_pending8 *q)
{
    const size_t bad = zq8__block_nonfinite(t, gdt, q->b0, q->ma, q->va);
    const size_t blk = q->b0 / ZSTATE_Q8_BLOCK;
    if (has_m) q8_store_block8(0, q->mh, q->ma, (uint8_t *)t->m_state + q->b0, &t->m_absmax[blk]);
    if (has_v) q8_store_block8(1, q->vh, q->va, (uint8_t *)t->v_state + q->b0, &t->v_absmax[blk]);
    return bad;
}

/* Decodes 8 codes at src (zq8__dec) of a normal block: dec = (ea + 1 - Emax) << 23. */
ZADAM_AVX2_INLINE __m256 q8_dec8(const uint8_t *src, int which, __m256i dec)
{
    const __m128i raw = _mm_loadl_epi64((const __m128i *)src);
    if (!which) { /* sign-extended: (c << 20) & 0x87f00000 keeps the sign in bit 31 */
        const __m256i c = _mm256_cvtepi8_epi32(raw);
        const __m256i b = _mm256_add_epi32(
            _mm256_and_si256(_mm256_slli_epi32(c, 20), _mm256_set1_epi32((int)0x87f00000u)), dec);
        const __m256i zero = _mm256_cmpeq_epi32(_mm256_slli_epi32(c, 25), _mm256_setzero_si256());
        return _mm256_castsi256_ps(_mm256_andnot_si256(zero, b));
    }
    return _mm256_castsi256_ps(
        _mm256_add_epi32(_mm256_slli_epi32(_mm256_cvtepu8_epi32(raw), 20), dec));
}

/* A block's decode constant from its stored absmax; returns the block kind. */
ZADAM_AVX2_INLINE int q8_blk8(int which, const float *absmax, __m256i *dec)
{
    const uint32_t ab = zoff_f32_bits(*absmax) & 0x7fffffffu; /* as zq8__dec */
    const int kind = zq8__blk_kind(which, ab);
    *dec = _mm256_set1_epi32(kind == ZQ8__BLK_NORMAL ? (int)(zq8__enc_sub(which, ab) << 20) : 0);
    return kind;
}

/* The generic step's streams and constants, hoisted out of the loops (see opt16). */
typedef struct opt8 {
    const void *grad;
    float *param;
    float *m32, *v32; /* fp32 moments */
    void *mst, *vst;  /* bf16 moments or q8 codes */
    void *out;        /* the 16-bit (or fp32) copy */
    __m256 gs, b1, omb1, b2, omb2, l2, decay, ibc2, eps, step, cq1, cq2, cqa, cqb;
} opt8;

ZADAM_AVX2_INLINE __m256 load_state8(const opt8 *c, int fmt, int which, size_t i, __m256i dec,
                                     int ok)
{
    if (fmt == ZSTATE_BF16) {
        const __m128i h =
            _mm_loadu_si128((const __m128i *)((const uint16_t *)(which ? c->vst : c->mst) + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    if (fmt == ZSTATE_Q8)
        return ok ? q8_dec8((const uint8_t *)(which ? c->vst : c->mst) + i, which, dec)
                  : _mm256_setzero_ps(); /* a zero block */
    return _mm256_loadu_ps((which ? c->v32 : c->m32) + i);
}

/* Stores 8 new moments of an fp32 or bf16 state. */
ZADAM_AVX2_INLINE void store_state8(const opt8 *c, int fmt, int which, size_t i, __m256 x)
{
    if (fmt == ZSTATE_BF16)
        _mm_storeu_si128((__m128i *)((uint16_t *)(which ? c->vst : c->mst) + i), bf16_round8(x));
    else
        _mm256_storeu_ps((which ? c->v32 : c->m32) + i, x);
}

/* q8: keeps the r values of 16 new moments (a, b) at buf and folds their |x| bits into amax
 * (exp_avg_sq is never negative nor -0: no abs needed). */
ZADAM_AVX2_INLINE void q8_keep16(int which, __m256 a, __m256 b, uint16_t *buf, __m256i *amax)
{
    _mm256_store_si256((__m256i *)(void *)buf, _mm256_packus_epi32(q8_round8(a), q8_round8(b)));
    __m256i ia = _mm256_castps_si256(a), ib = _mm256_castps_si256(b);
    if (!which) {
        ia = _mm256_and_si256(ia, _mm256_set1_epi32(0x7fffffff));
        ib = _mm256_and_si256(ib, _mm256_set1_epi32(0x7fffffff));
    }
    *amax = _mm256_max_epu32(*amax, _mm256_max_epu32(ia, ib));
}

/* The update of the 8 elements at i (see opt_vec16 in adam_avx512.c: l2 and okind are
 * compile-time, the decay multiplies unconditionally). */
ZADAM_AVX2_INLINE void opt_vec8(const opt8 *c, size_t i, zoff_dtype gdt, int optim, int fmt, int l2,
                                int okind, __m256i mdec, int mok, __m256i vdec, int vok, __m256 *mo,
                                __m256 *vo, size_t *nonfinite)
{
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    const __m256 zero = _mm256_setzero_ps();
    const __m256 graw = load_grad8(c->grad, gdt, i);
    if (fmt != ZSTATE_Q8) *nonfinite += nonfinite8(graw); /* q8: counted per block */
    __m256 g = _mm256_mul_ps(graw, c->gs);
    __m256 p = _mm256_loadu_ps(c->param + i);
    __m256 m = zero, v = zero;
    if (has_m) m = load_state8(c, fmt, 0, i, mdec, mok);
    if (has_v) v = load_state8(c, fmt, 1, i, vdec, vok);
    if (optim == ZOPT_ADAM && fmt != ZSTATE_FP32 && !l2) { /* zadam__elem_cq */
        m = _mm256_fmadd_ps(c->b1, m, _mm256_mul_ps(c->cq1, graw));
        v = _mm256_fmadd_ps(c->b2, v, _mm256_mul_ps(_mm256_mul_ps(c->cq2, graw), graw));
        const __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(v), c->cqa, c->cqb);
        p = _mm256_fmadd_ps(p, c->decay, _mm256_div_ps(m, den));
    } else if (optim == ZOPT_ADAM) {
        if (l2) g = _mm256_add_ps(g, _mm256_mul_ps(c->l2, p));
        m = _mm256_add_ps(_mm256_mul_ps(c->b1, m), _mm256_mul_ps(c->omb1, g));
        v = _mm256_add_ps(_mm256_mul_ps(c->b2, v), _mm256_mul_ps(_mm256_mul_ps(c->omb2, g), g));
        p = _mm256_mul_ps(p, c->decay);
        const __m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(v), c->ibc2), c->eps);
        p = _mm256_sub_ps(p, _mm256_mul_ps(c->step, _mm256_div_ps(m, denom)));
    } else if (optim == ZOPT_LION) {
        const __m256 cc = _mm256_add_ps(_mm256_mul_ps(c->b1, m), _mm256_mul_ps(c->omb1, g));
        p = _mm256_mul_ps(p, c->decay);
        const __m256 nz = _mm256_cmp_ps(cc, zero, _CMP_NEQ_OQ);
        const __m256 sgn = _mm256_or_ps(
            _mm256_and_ps(cc, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))),
            _mm256_set1_ps(1.0f));
        const __m256 u = _mm256_blendv_ps(cc, sgn, nz);
        p = _mm256_sub_ps(p, _mm256_mul_ps(c->step, u));
        m = _mm256_add_ps(_mm256_mul_ps(c->b2, m), _mm256_mul_ps(c->omb2, g));
    } else {
        if (l2) g = _mm256_add_ps(g, _mm256_mul_ps(c->l2, p));
        v = _mm256_add_ps(v, _mm256_mul_ps(g, g));
        const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(v), c->eps);
        p = _mm256_sub_ps(p, _mm256_mul_ps(c->step, _mm256_div_ps(g, den)));
    }
    _mm256_storeu_ps(c->param + i, p);
    if (okind != OUT_NONE) store_out8(c->out, okind, i, p, 1);
    if (fmt != ZSTATE_Q8) {
        if (has_m) store_state8(c, fmt, 0, i, m);
        if (has_v) store_state8(c, fmt, 1, i, v);
    }
    *mo = m;
    *vo = v;
}

/* One whole block from b0 with every choice a compile-time constant (see opt_block16). */
ZADAM_AVX2_INLINE size_t opt_block8(const opt8 *c, size_t b0, zoff_dtype gdt, int optim, int fmt,
                                    int l2, int okind, __m256i mdec, int mok, __m256i vdec, int vok,
                                    q8_pending8 *pd)
{
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    __m256i mmax = _mm256_setzero_si256(), vmax = _mm256_setzero_si256();
    size_t bad = 0;
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 16) {
        __m256 m0, v0, m1, v1;
        opt_vec8(c, b0 + k, gdt, optim, fmt, l2, okind, mdec, mok, vdec, vok, &m0, &v0, &bad);
        opt_vec8(c, b0 + k + 8, gdt, optim, fmt, l2, okind, mdec, mok, vdec, vok, &m1, &v1, &bad);
        if (fmt == ZSTATE_Q8) {
            if (has_m) q8_keep16(0, m0, m1, pd->mh + k, &mmax);
            if (has_v) q8_keep16(1, v0, v1, pd->vh + k, &vmax);
        }
    }
    if (fmt == ZSTATE_Q8) {
        pd->b0 = b0;
        pd->ma = has_m ? reduce_max_u32x8(mmax) : 0;
        pd->va = has_v ? reduce_max_u32x8(vmax) : 0;
    }
    return bad;
}

/* The copy of one block's new masters with ordinary stores (see out_block16). */
static ZADAM_AVX2 void out_block8(void *out, int kind, const float *param, size_t b0)
{
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 8)
        store_out8(out, kind, b0 + k, _mm256_loadu_ps(param + b0 + k), 0);
}

ZADAM_AVX2_INLINE size_t opt_body(const zadam__scalars *s, const zadam_tensor *t, zoff_dtype gdt,
                                  int optim, int fmt)
{
    const opt8 c = {.grad = t->grad,
                    .param = t->param,
                    .m32 = t->exp_avg,
                    .v32 = t->exp_avg_sq,
                    .mst = t->m_state,
                    .vst = t->v_state,
                    .out = t->param_out,
                    .gs = _mm256_set1_ps(s->grad_scale),
                    .b1 = _mm256_set1_ps(s->beta1),
                    .omb1 = _mm256_set1_ps(s->one_minus_beta1),
                    .b2 = _mm256_set1_ps(s->beta2),
                    .omb2 = _mm256_set1_ps(s->one_minus_beta2),
                    .l2 = _mm256_set1_ps(s->l2_wd),
                    .decay = _mm256_set1_ps(s->decay),
                    .ibc2 = _mm256_set1_ps(s->inv_sqrt_bc2),
                    .eps = _mm256_set1_ps(s->eps),
                    .step = _mm256_set1_ps(s->step_size),
                    .cq1 = _mm256_set1_ps(s->cq1),
                    .cq2 = _mm256_set1_ps(s->cq2),
                    .cqa = _mm256_set1_ps(s->cq_da),
                    .cqb = _mm256_set1_ps(s->cq_db)};
    const int apply_l2 = s->apply_l2 && optim != ZOPT_LION;
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    void *out = t->param_out;
    int out_kind = OUT_NONE;
    if (out)
        out_kind = t->out_dtype == ZOFF_DTYPE_F16    ? OUT_F16
                   : t->out_dtype == ZOFF_DTYPE_BF16 ? OUT_BF16
                                                     : OUT_F32;
    const int nt =
        out_kind != OUT_NONE && s->nt_out && ZOFF_IS_ALIGNED(out, out_kind == OUT_F32 ? 32 : 16);
    const int inline_out = nt ? out_kind : OUT_NONE; /* ordinary stores: a pass per block */
    const size_t nfull = t->n / ZSTATE_Q8_BLOCK * ZSTATE_Q8_BLOCK;
    q8_pending8 pend[2]; /* q8: the block being updated and the one waiting for its encode */
    int cur = 0, waiting = 0;
    size_t nonfinite = 0;
    for (size_t b0 = 0; b0 < nfull; b0 += ZSTATE_Q8_BLOCK) {
        const size_t blk = b0 / ZSTATE_Q8_BLOCK;
        __m256i mdec = _mm256_setzero_si256(), vdec = mdec;
        int mok = 0, vok = 0;
        if (fmt == ZSTATE_Q8) { /* a NaN block decodes to NaN: the scalar reference runs it */
            const int mk = has_m ? q8_blk8(0, &t->m_absmax[blk], &mdec) : 0;
            const int vk = has_v ? q8_blk8(1, &t->v_absmax[blk], &vdec) : 0;
            if (mk == ZQ8__BLK_NAN || vk == ZQ8__BLK_NAN) {
                nonfinite += zopt__step_block(s, t, b0, ZSTATE_Q8_BLOCK);
                continue;
            }
            mok = mk == ZQ8__BLK_NORMAL;
            vok = vk == ZQ8__BLK_NORMAL;
        }
#define ZOPT_BLOCK8(lc, ok)                                                                        \
    opt_block8(&c, b0, gdt, optim, fmt, lc, ok, mdec, mok, vdec, vok, &pend[cur])
#define ZOPT_BLOCK8_L2(ok) (apply_l2 ? ZOPT_BLOCK8(1, ok) : ZOPT_BLOCK8(0, ok))
        switch (inline_out) {
        case OUT_F16:
            nonfinite += ZOPT_BLOCK8_L2(OUT_F16);
            break;
        case OUT_BF16:
            nonfinite += ZOPT_BLOCK8_L2(OUT_BF16);
            break;
        case OUT_F32:
            nonfinite += ZOPT_BLOCK8_L2(OUT_F32);
            break;
        default:
            nonfinite += ZOPT_BLOCK8_L2(OUT_NONE);
            if (out_kind != OUT_NONE) out_block8(out, out_kind, c.param, b0);
            break;
        }
#undef ZOPT_BLOCK8_L2
#undef ZOPT_BLOCK8
        if (fmt == ZSTATE_Q8) {
            if (waiting) nonfinite += q8_finish8(t, gdt, has_m, has_v, &pend[cur ^ 1]);
            waiting = 1;
            cur ^= 1;
        }
    }
    if (waiting) nonfinite += q8_finish8(t, gdt, has_m, has_v, &pend[cur ^ 1]);
    if (nt) _mm_sfence(); /* order the streaming stores before whoever reads the copy */
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

ZADAM_AVX2 size_t zopt__step_avx2(const zadam__scalars *s, const zadam_tensor *t)
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

size_t zopt_step_avx2(const zadam_hparams *hp, const zadam_tensor *t)
{
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    return zopt__step_avx2(&s, t);
}
