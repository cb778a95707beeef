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
 * Whole q8 blocks (ZSTATE_Q8_BLOCK elements) at a time: the moments are decoded (code bits shifted
 * into an fp32 pattern, times the block's absmax), updated, and their high 16 bits (all that
 * encoding reads) kept in an L1 buffer while the block's absmax is taken (integer max of |x| bits,
 * any order gives the same); the codes are encoded with the integer rounding of zq8__enc.
 * Encoding is deferred by one block: block b's codes are written after block b + 1's update, when
 * b's absmax has long been reduced, so the encode never waits on that reduction and the loads of
 * the next block keep streaming (out of cache this is worth ~6%; see zopt__prefetch_block for the
 * rest of the memory side). The last, partial block goes through the scalar reference. */

/* The high 16 bits of 32 fp32 patterns (a: lanes 0-15, b: 16-31) as 16-bit lanes (one word
 * permute): |x|'s exponent and top 7 mantissa bits, the sign in bit 15. */
ZADAM_AVX512_INLINE __m512i q8_hi32(__m512 a, __m512 b)
{
    const __m512i hi =
        _mm512_setr_epi32(0x00030001, 0x00070005, 0x000b0009, 0x000f000d, 0x00130011, 0x00170015,
                          0x001b0019, 0x001f001d, 0x00230021, 0x00270025, 0x002b0029, 0x002f002d,
                          0x00330031, 0x00370035, 0x003b0039, 0x003f003d);
    return _mm512_permutex2var_epi16(_mm512_castps_si512(a), hi, _mm512_castps_si512(b));
}

/* Encodes one normal block from buf into codes (zq8__enc with subtrahend sub). zq8__enc's
 * max(r - sub, 0) with r = (bits + 2^19) >> 20 is, on the high half h = bits >> 16 (adding 2^19
 * adds 8 to h with no carry from the low half), max(((h + 8) >> 4) - sub, 0) =
 * subs(h, 16 sub - 8) >> 4: subtracting a multiple of 16 commutes with the shift, and the
 * saturation at 0 covers exactly h + 8 < 16 sub (normal blocks have sub >= 16, and 16 sub - 8
 * fits 16 bits). exp_avg's sign moves from bit 15 to bit 7; two 16-bit vectors are narrowed to
 * bytes and one qword permute undoes the pack's 128-bit lane interleave. */
ZADAM_AVX512_INLINE void q8_block_out16(const uint16_t *buf, uint32_t sub, uint8_t *codes,
                                        int which)
{
    const __m512i vsub = _mm512_set1_epi16((short)(16 * sub - 8));
    const __m512i perm = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 64) {
        __m512i w0 = _mm512_load_si512((const void *)(buf + k));
        __m512i w1 = _mm512_load_si512((const void *)(buf + k + 32));
        if (!which) {
            const __m512i mag = _mm512_set1_epi16(0x7fff), sgn = _mm512_set1_epi16(0x80);
            w0 = _mm512_ternarylogic_epi32(
                _mm512_srli_epi16(_mm512_subs_epu16(_mm512_and_si512(w0, mag), vsub), 4),
                _mm512_srli_epi16(w0, 8), sgn, 0xf8);
            w1 = _mm512_ternarylogic_epi32(
                _mm512_srli_epi16(_mm512_subs_epu16(_mm512_and_si512(w1, mag), vsub), 4),
                _mm512_srli_epi16(w1, 8), sgn, 0xf8);
        } else {
            w0 = _mm512_srli_epi16(_mm512_subs_epu16(w0, vsub), 4);
            w1 = _mm512_srli_epi16(_mm512_subs_epu16(w1, vsub), 4);
        }
        _mm512_storeu_si512(codes + k, _mm512_permutexvar_epi64(perm, _mm512_packus_epi16(w0, w1)));
    }
}

/* Decodes 16 codes at src (zq8__dec): dec = the block's (ea + 1 - Emax) << 23, ok = all lanes for
 * a normal block, none for a zero block. */
ZADAM_AVX512_INLINE __m512 q8_dec16(const uint8_t *src, int which, __m512i dec, __mmask16 ok)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)src);
    if (!which) { /* sign-extended: (c << 20) & 0x87f00000 keeps the sign in bit 31 */
        const __m512i c = _mm512_cvtepi8_epi32(raw);
        const __mmask16 k = _mm512_mask_test_epi32_mask(ok, c, _mm512_set1_epi32(0x7f));
        return _mm512_castsi512_ps(_mm512_maskz_add_epi32(
            k, _mm512_and_si512(_mm512_slli_epi32(c, 20), _mm512_set1_epi32((int)0x87f00000u)),
            dec));
    }
    return _mm512_castsi512_ps(
        _mm512_maskz_add_epi32(ok, _mm512_slli_epi32(_mm512_cvtepu8_epi32(raw), 20), dec));
}

/* A block's decode constants from its stored absmax; returns the block kind. */
ZADAM_AVX512_INLINE int q8_blk16(int which, const float *absmax, __m512i *dec, __mmask16 *ok)
{
    const uint32_t ab = zoff_f32_bits(*absmax) & 0x7fffffffu; /* as zq8__dec */
    const int kind = zq8__blk_kind(which, ab);
    *ok = kind == ZQ8__BLK_NORMAL ? (__mmask16)0xffff : 0;
    *dec = _mm512_set1_epi32(kind == ZQ8__BLK_NORMAL ? (int)(zq8__enc_sub(which, ab) << 20) : 0);
    return kind;
}

/* Stores a block's absmax and codes from the buffered high halves and the max |x| bits. */
ZADAM_AVX512_INLINE void q8_store_block16(int which, const uint16_t *buf, uint32_t amax,
                                          uint8_t *codes, float *absmax)
{
    *absmax = zq8__absmax_store(which, amax);
    if (zq8__blk_kind(which, amax) == ZQ8__BLK_NORMAL)
        q8_block_out16(buf, zq8__enc_sub(which, amax), codes, which);
    else
        memset(codes, 0, ZSTATE_Q8_BLOCK);
}

/* A q8 block kept for its deferred encode: start element, max |x| bits of each moment, and the
 * high halves of its new moments. */
typedef struct q8_pending16 {
    size_t b0;
    uint32_t ma, va;
    uint16_t mh[ZSTATE_Q8_BLOCK] __attribute__((aligned(64)));
    uint16_t vh[ZSTATE_Q8_BLOCK] __attribute__((aligned(64)));
} q8_pending16;

/* Writes a pending block's codes and absmax; returns its non-finite gradient count
 * (zq8__block_nonfinite). */
ZADAM_AVX512_INLINE size_t q8_finish16(const zadam_tensor *t, zoff_dtype gdt, int has_m, int has_v,
                                       const q8_pending16 *q)
{
    const size_t bad = zq8__block_nonfinite(t, gdt, q->b0, q->ma, q->va);
    const size_t blk = q->b0 / ZSTATE_Q8_BLOCK;
    if (has_m) q8_store_block16(0, q->mh, q->ma, (uint8_t *)t->m_state + q->b0, &t->m_absmax[blk]);
    if (has_v) q8_store_block16(1, q->vh, q->va, (uint8_t *)t->v_state + q->b0, &t->v_absmax[blk]);
    return bad;
}

/* The generic step's streams and constants, hoisted out of the loops: vector stores may alias
 * anything, so fields read through the tensor would be reloaded after every store. */
typedef struct opt16 {
    const void *grad;
    float *param;
    float *m32, *v32; /* fp32 moments */
    void *mst, *vst;  /* bf16 moments or q8 codes */
    void *out;        /* the 16-bit (or fp32) copy */
    __m512 gs, b1, omb1, b2, omb2, l2, decay, ibc2, eps, step, cq1, cq2, cqa, cqb;
} opt16;

ZADAM_AVX512_INLINE __m512 load_state16(const opt16 *c, int fmt, int which, size_t i, __m512i dec,
                                        __mmask16 ok)
{
    if (fmt == ZSTATE_BF16) {
        const __m256i h =
            _mm256_loadu_si256((const __m256i *)((const uint16_t *)(which ? c->vst : c->mst) + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (fmt == ZSTATE_Q8)
        return q8_dec16((const uint8_t *)(which ? c->vst : c->mst) + i, which, dec, ok);
    return _mm512_loadu_ps((which ? c->v32 : c->m32) + i);
}

/* Stores 16 new moments of an fp32 or bf16 state. */
ZADAM_AVX512_INLINE void store_state16(const opt16 *c, int fmt, int which, size_t i, __m512 x)
{
    if (fmt == ZSTATE_BF16)
        _mm256_storeu_si256((__m256i *)((uint16_t *)(which ? c->vst : c->mst) + i),
                            _mm512_cvtepi32_epi16(bf16_round16(x)));
    else
        _mm512_storeu_ps((which ? c->v32 : c->m32) + i, x);
}

/* q8: keeps the high halves of 32 new moments (a, b) at buf and folds their |x| bits into amax
 * (exp_avg_sq is never negative nor -0: no abs needed). An integer max, not vrangeps: that one
 * drops a NaN operand, and a NaN moment must make its block a NaN block. */
ZADAM_AVX512_INLINE void q8_keep32(int which, __m512 a, __m512 b, uint16_t *buf, __m512i *amax)
{
    _mm512_store_si512((void *)buf, q8_hi32(a, b));
    __m512i ia = _mm512_castps_si512(a), ib = _mm512_castps_si512(b);
    if (!which) {
        ia = _mm512_and_si512(ia, _mm512_set1_epi32(0x7fffffff));
        ib = _mm512_and_si512(ib, _mm512_set1_epi32(0x7fffffff));
    }
    *amax = _mm512_max_epu32(*amax, _mm512_max_epu32(ia, ib));
}

/* The update of the 16 elements at i: stores the master, its non-temporal 16-bit (or fp32) copy
 * when okind is not OUT_NONE, and fp32/bf16 moments; returns the new moments in *mo, *vo. l2 is
 * the compile-time apply_l2. The decoupled decay multiplies unconditionally: c->decay is 1.0 when
 * it is off, and p * 1.0 == p for every p (a signalling NaN comes out quiet either way, since the
 * next operation quiets it), so this matches the scalar reference's `if (apply_decay)`. */
ZADAM_AVX512_INLINE void opt_vec16(const opt16 *c, size_t i, zoff_dtype gdt, int optim, int fmt,
                                   int l2, int okind, __m512i mdec, __mmask16 mok, __m512i vdec,
                                   __mmask16 vok, __m512 *mo, __m512 *vo, size_t *nonfinite)
{
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 graw = load_grad16(c->grad, gdt, i);
    if (fmt != ZSTATE_Q8) *nonfinite += nonfinite16(graw); /* q8: counted per block */
    __m512 g = _mm512_mul_ps(graw, c->gs);
    __m512 p = _mm512_loadu_ps(c->param + i);
    __m512 m = zero, v = zero;
    if (has_m) m = load_state16(c, fmt, 0, i, mdec, mok);
    if (has_v) v = load_state16(c, fmt, 1, i, vdec, vok);
    if (optim == ZOPT_ADAM && fmt != ZSTATE_FP32 && !l2) { /* zadam__elem_cq */
        m = _mm512_fmadd_ps(c->b1, m, _mm512_mul_ps(c->cq1, graw));
        v = _mm512_fmadd_ps(c->b2, v, _mm512_mul_ps(_mm512_mul_ps(c->cq2, graw), graw));
        const __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(v), c->cqa, c->cqb);
        p = _mm512_fmadd_ps(p, c->decay, _mm512_div_ps(m, den));
    } else if (optim == ZOPT_ADAM) {
        if (l2) g = _mm512_add_ps(g, _mm512_mul_ps(c->l2, p));
        m = _mm512_add_ps(_mm512_mul_ps(c->b1, m), _mm512_mul_ps(c->omb1, g));
        v = _mm512_add_ps(_mm512_mul_ps(c->b2, v), _mm512_mul_ps(_mm512_mul_ps(c->omb2, g), g));
        p = _mm512_mul_ps(p, c->decay);
        const __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(v), c->ibc2), c->eps);
        p = _mm512_sub_ps(p, _mm512_mul_ps(c->step, _mm512_div_ps(m, denom)));
    } else if (optim == ZOPT_LION) {
        const __m512 cc = _mm512_add_ps(_mm512_mul_ps(c->b1, m), _mm512_mul_ps(c->omb1, g));
        p = _mm512_mul_ps(p, c->decay);
        const __mmask16 nz = _mm512_cmp_ps_mask(cc, zero, _CMP_NEQ_OQ);
        const __m512 sgn = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_and_si512(_mm512_castps_si512(cc), _mm512_set1_epi32((int)0x80000000u)),
            _mm512_castps_si512(_mm512_set1_ps(1.0f))));
        const __m512 u = _mm512_mask_blend_ps(nz, cc, sgn);
        p = _mm512_sub_ps(p, _mm512_mul_ps(c->step, u));
        m = _mm512_add_ps(_mm512_mul_ps(c->b2, m), _mm512_mul_ps(c->omb2, g));
    } else {
        if (l2) g = _mm512_add_ps(g, _mm512_mul_ps(c->l2, p));
        v = _mm512_add_ps(v, _mm512_mul_ps(g, g));
        const __m512 den = _mm512_add_ps(_mm512_sqrt_ps(v), c->eps);
        p = _mm512_sub_ps(p, _mm512_mul_ps(c->step, _mm512_div_ps(g, den)));
    }
    _mm512_storeu_ps(c->param + i, p);
    if (okind != OUT_NONE) store_out16(c->out, okind, i, p, 1);
    if (fmt != ZSTATE_Q8) {
        if (has_m) store_state16(c, fmt, 0, i, m);
        if (has_v) store_state16(c, fmt, 1, i, v);
    }
    *mo = m;
    *vo = v;
}

/* One whole block from b0 with every choice a compile-time constant (no branch in the loop);
 * q8: its moments' high halves and absmax bits go to *pd for the deferred encode. Returns the
 * non-finite gradient count (fp32/bf16 moments; q8 counts at the encode). */
ZADAM_AVX512_INLINE size_t opt_block16(const opt16 *c, size_t b0, zoff_dtype gdt, int optim,
                                       int fmt, int l2, int okind, __m512i mdec, __mmask16 mok,
                                       __m512i vdec, __mmask16 vok, q8_pending16 *pd)
{
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    __m512i mmax = _mm512_setzero_si512(), vmax = _mm512_setzero_si512();
    size_t bad = 0;
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 32) {
        __m512 m0, v0, m1, v1;
        opt_vec16(c, b0 + k, gdt, optim, fmt, l2, okind, mdec, mok, vdec, vok, &m0, &v0, &bad);
        opt_vec16(c, b0 + k + 16, gdt, optim, fmt, l2, okind, mdec, mok, vdec, vok, &m1, &v1, &bad);
        if (fmt == ZSTATE_Q8) {
            if (has_m) q8_keep32(0, m0, m1, pd->mh + k, &mmax);
            if (has_v) q8_keep32(1, v0, v1, pd->vh + k, &vmax);
        }
    }
    if (fmt == ZSTATE_Q8) {
        pd->b0 = b0;
        pd->ma = has_m ? _mm512_reduce_max_epu32(mmax) : 0;
        pd->va = has_v ? _mm512_reduce_max_epu32(vmax) : 0;
    }
    return bad;
}

/* The 16-bit (or fp32) copy of one block's new masters with ordinary stores: a second pass over
 * the block in L1 (the update loop writes non-temporal copies itself; out of cache, bunching the
 * streaming stores at the block end cost ~4%). */
static ZADAM_AVX512 void out_block16(void *out, int kind, const float *param, size_t b0)
{
    for (size_t k = 0; k < ZSTATE_Q8_BLOCK; k += 16)
        store_out16(out, kind, b0 + k, _mm512_loadu_ps(param + b0 + k), 0);
}

ZADAM_AVX512_INLINE size_t opt_body(const zadam__scalars *s, const zadam_tensor *t, zoff_dtype gdt,
                                    int optim, int fmt)
{
    const opt16 c = {.grad = t->grad,
                     .param = t->param,
                     .m32 = t->exp_avg,
                     .v32 = t->exp_avg_sq,
                     .mst = t->m_state,
                     .vst = t->v_state,
                     .out = t->param_out,
                     .gs = _mm512_set1_ps(s->grad_scale),
                     .b1 = _mm512_set1_ps(s->beta1),
                     .omb1 = _mm512_set1_ps(s->one_minus_beta1),
                     .b2 = _mm512_set1_ps(s->beta2),
                     .omb2 = _mm512_set1_ps(s->one_minus_beta2),
                     .l2 = _mm512_set1_ps(s->l2_wd),
                     .decay = _mm512_set1_ps(s->decay),
                     .ibc2 = _mm512_set1_ps(s->inv_sqrt_bc2),
                     .eps = _mm512_set1_ps(s->eps),
                     .step = _mm512_set1_ps(s->step_size),
                     .cq1 = _mm512_set1_ps(s->cq1),
                     .cq2 = _mm512_set1_ps(s->cq2),
                     .cqa = _mm512_set1_ps(s->cq_da),
                     .cqb = _mm512_set1_ps(s->cq_db)};
    const int apply_l2 = s->apply_l2 && optim != ZOPT_LION;
    const int has_m = optim != ZOPT_ADAGRAD, has_v = optim != ZOPT_LION;
    void *out = t->param_out;
    int out_kind = OUT_NONE;
    if (out)
        out_kind = t->out_dtype == ZOFF_DTYPE_F16    ? OUT_F16
                   : t->out_dtype == ZOFF_DTYPE_BF16 ? OUT_BF16
                                                     : OUT_F32;
    const int nt =
        out_kind != OUT_NONE && s->nt_out && ZOFF_IS_ALIGNED(out, out_kind == OUT_F32 ? 64 : 32);
    const int inline_out = nt ? out_kind : OUT_NONE; /* ordinary stores: a pass per block */
    const size_t nfull = t->n / ZSTATE_Q8_BLOCK * ZSTATE_Q8_BLOCK;
    q8_pending16 pend[2]; /* q8: the block being updated and the one waiting for its encode */
    int cur = 0, waiting = 0;
    size_t nonfinite = 0;
    for (size_t b0 = 0; b0 < nfull; b0 += ZSTATE_Q8_BLOCK) {
        const size_t blk = b0 / ZSTATE_Q8_BLOCK;
        __m512i mdec = _mm512_setzero_si512(), vdec = mdec;
        __mmask16 mok = 0, vok = 0;
        if (fmt == ZSTATE_Q8) { /* a NaN block decodes to NaN: the scalar reference runs it */
            const int mk = has_m ? q8_blk16(0, &t->m_absmax[blk], &mdec, &mok) : 0;
            const int vk = has_v ? q8_blk16(1, &t->v_absmax[blk], &vdec, &vok) : 0;
            if (mk == ZQ8__BLK_NAN || vk == ZQ8__BLK_NAN) {
                nonfinite += zopt__step_block(s, t, b0, ZSTATE_Q8_BLOCK);
                continue;
            }
        }
#define ZOPT_BLOCK16(lc, ok)                                                                       \
    opt_block16(&c, b0, gdt, optim, fmt, lc, ok, mdec, mok, vdec, vok, &pend[cur])
#define ZOPT_BLOCK16_L2(ok) (apply_l2 ? ZOPT_BLOCK16(1, ok) : ZOPT_BLOCK16(0, ok))
        switch (inline_out) {
        case OUT_F16:
            nonfinite += ZOPT_BLOCK16_L2(OUT_F16);
            break;
        case OUT_BF16:
            nonfinite += ZOPT_BLOCK16_L2(OUT_BF16);
            break;
        case OUT_F32:
            nonfinite += ZOPT_BLOCK16_L2(OUT_F32);
            break;
        default:
            nonfinite += ZOPT_BLOCK16_L2(OUT_NONE);
            if (out_kind != OUT_NONE) out_block16(out, out_kind, c.param, b0);
            break;
        }
#undef ZOPT_BLOCK16_L2
#undef ZOPT_BLOCK16
        if (fmt == ZSTATE_Q8) {
            if (waiting) nonfinite += q8_finish16(t, gdt, has_m, has_v, &pend[cur ^ 1]);
            waiting = 1;
            cur ^= 1;
        }
    }
    if (waiting) nonfinite += q8_finish16(t, gdt, has_m, has_v, &pend[cur ^ 1]);
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
