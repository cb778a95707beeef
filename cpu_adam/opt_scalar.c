/*
 * opt_scalar.c — the scalar reference of the generic fused step (Adam, Lion, Adagrad over fp32,
 * bf16 or q8 moments), the q8 code maps, the moment conversions and the one table of state bytes
 * per element. The AVX2 and AVX-512 variants (opt_avx2.c, opt_avx512.c) reproduce this bit for
 * bit; they fall back to zopt__step_tail for the last, partial block.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "cpu_adam/adam_internal.h"

/* ---- code maps --------------------------------------------------------------------------------
 */
static zq8__map g_maps[2];
static pthread_once_t g_maps_once = PTHREAD_ONCE_INIT;

static void build_maps(void)
{
    for (int w = 0; w < 2; w++)
        for (uint32_t c = 0; c < 256; c++) g_maps[w].val[c] = zq8__dec(w, c, 0.5f); /* S = 1 */
}

const zq8__map *zq8__maps(void)
{
    pthread_once(&g_maps_once, build_maps);
    return g_maps;
}

const float *zq8_map(int which)
{
    return zq8__maps()[which ? 1 : 0].val;
}

void zq8__encode_block(int which, const float *x, size_t nb, uint8_t *codes, float *absmax)
{
    which = which ? 1 : 0;
    uint32_t amax = 0;
    for (size_t i = 0; i < nb; i++) {
        const uint32_t b = zq8__absbits(x[i]);
        amax = b > amax ? b : amax;
    }
    *absmax = zq8__absmax_store(which, amax);
    if (zq8__blk_kind(which, amax) != ZQ8__BLK_NORMAL) {
        memset(codes, 0, nb);
        return;
    }
    const uint32_t sub = zq8__enc_sub(which, amax);
    for (size_t i = 0; i < nb; i++) codes[i] = zq8__enc(which, x[i], sub);
}

/* ---- the generic step -------------------------------------------------------------------------
 */

static inline float load_state(const zadam_tensor *t, int which, size_t i, float scale)
{
    switch (t->state_fmt) {
    case ZSTATE_BF16:
        return zoff_bf16_to_f32(((const uint16_t *)(which ? t->v_state : t->m_state))[i]);
    case ZSTATE_Q8:
        return zq8__dec(which, ((const uint8_t *)(which ? t->v_state : t->m_state))[i], scale);
    default:
        return (which ? t->exp_avg_sq : t->exp_avg)[i];
    }
}

static inline void store_state(const zadam_tensor *t, int which, size_t i, float x)
{
    if (t->state_fmt == ZSTATE_BF16)
        ((uint16_t *)(which ? t->v_state : t->m_state))[i] = zoff_f32_to_bf16(x);
    else
        (which ? t->exp_avg_sq : t->exp_avg)[i] = x;
}

/* One block [b0, b0 + nb) (nb <= ZSTATE_Q8_BLOCK) of any optimizer and format. */
size_t zopt__step_block(const zadam__scalars *s, const zadam_tensor *t, size_t b0, size_t nb)
{
    const int has_m = zopt_has_m((zopt_kind)s->optim), has_v = zopt_has_v((zopt_kind)s->optim);
    const int q8 = t->state_fmt == ZSTATE_Q8;
    const size_t blk = b0 / ZSTATE_Q8_BLOCK;
    const float ms = q8 && has_m ? t->m_absmax[blk] : 0.0f;
    const float vs = q8 && has_v ? t->v_absmax[blk] : 0.0f;
    float mb[ZSTATE_Q8_BLOCK], vb[ZSTATE_Q8_BLOCK];
    size_t nonfinite = 0;
    for (size_t k = 0; k < nb; k++) {
        const size_t i = b0 + k;
        const float g = zadam__grad_at(t->grad, t->grad_dtype, i);
        nonfinite += (size_t)zadam__nonfinite(g);
        float m = has_m ? load_state(t, 0, i, ms) : 0.0f;
        float v = has_v ? load_state(t, 1, i, vs) : 0.0f;
        float p = t->param[i];
        switch (s->optim) {
        case ZOPT_LION:
            p = zlion__elem(s, g, p, &m);
            break;
        case ZOPT_ADAGRAD:
            p = zadagrad__elem(s, g, p, &v);
            break;
        default: /* fp32 moments or an L2 term: the round-1 order */
            if (t->state_fmt != ZSTATE_FP32 && !s->apply_l2)
                p = zadam__elem_cq(s, g, p, &m, &v);
            else
                p = zadam__elem(s, g, p, &m, &v);
            break;
        }
        t->param[i] = p;
        if (t->param_out) zadam__out_at(t->param_out, t->out_dtype, i, p);
        if (q8) {
            mb[k] = m;
            vb[k] = v;
        } else {
            if (has_m) store_state(t, 0, i, m);
            if (has_v) store_state(t, 1, i, v);
        }
    }
    if (q8) {
        if (has_m) zq8__encode_block(0, mb, nb, (uint8_t *)t->m_state + b0, &t->m_absmax[blk]);
        if (has_v) zq8__encode_block(1, vb, nb, (uint8_t *)t->v_state + b0, &t->v_absmax[blk]);
    }
    return nonfinite;
}

size_t zopt__step_tail(const zadam__scalars *s, const zadam_tensor *t, size_t from)
{
    size_t nonfinite = 0;
    for (size_t b0 = from; b0 < t->n; b0 += ZSTATE_Q8_BLOCK)
        nonfinite += zopt__step_block(s, t, b0, ZOFF_MIN((size_t)ZSTATE_Q8_BLOCK, t->n - b0));
    return nonfinite;
}

size_t zopt__step_scalar(const zadam__scalars *s, const zadam_tensor *t)
{
    return zopt__step_tail(s, t, 0);
}

size_t zopt_step_scalar(const zadam_hparams *hp, const zadam_tensor *t)
{
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    return zopt__step_scalar(&s, t);
}

/* ---- names ------------------------------------------------------------------------------------
 */
static const char *const g_fmt_names[ZSTATE_FMT_COUNT_] = {"fp32", "bf16", "q8"};
static const char *const g_kind_names[ZOPT_KIND_COUNT_] = {"adam", "lion", "adagrad"};

const char *zstate_fmt_name(zstate_fmt f)
{
    return (int)f >= 0 && f < ZSTATE_FMT_COUNT_ ? g_fmt_names[f] : "?";
}

zoff_status zstate_fmt_parse(const char *s, zstate_fmt *out)
{
    for (int i = 0; i < ZSTATE_FMT_COUNT_; i++)
        if (s && strcasecmp(s, g_fmt_names[i]) == 0) {
            *out = (zstate_fmt)i;
            return ZOFF_OK;
        }
    return zoff__err(ZOFF_EINVAL, "unknown optimizer state format '%s' (expected fp32, bf16 or q8)",
                     s ? s : "(null)");
}

const char *zopt_kind_name(zopt_kind k)
{
    return (int)k >= 0 && k < ZOPT_KIND_COUNT_ ? g_kind_names[k] : "?";
}

zoff_status zopt_kind_parse(const char *s, zopt_kind *out)
{
    if (s && strcasecmp(s, "adamw") == 0) {
        *out = ZOPT_ADAM;
        return ZOFF_OK;
    }
    for (int i = 0; i < ZOPT_KIND_COUNT_; i++)
        if (s && strcasecmp(s, g_kind_names[i]) == 0) {
            *out = (zopt_kind)i;
            return ZOFF_OK;
        }
    return zoff__err(ZOFF_EINVAL, "unknown optimizer '%s' (expected adam, adamw, lion or adagrad)",
                     s ? s : "(null)");
}

int zopt_has_m(zopt_kind k)
{
    return k != ZOPT_ADAGRAD;
}

int zopt_has_v(zopt_kind k)
{
    return k != ZOPT_LION;
}

/* ---- the state bytes table --------------------------------------------------------------------
 */
static size_t moment_bytes(zstate_fmt f)
{
    return f == ZSTATE_FP32 ? 4u : f == ZSTATE_BF16 ? 2u : 1u;
}

static size_t a64(size_t x)
{
    return (x + 63u) & ~(size_t)63u;
}

/* fp32 arrays are packed back to back (the layout of the fp32 Adam store since round 1); the
 * compact formats align each array to 64 bytes. */
static size_t al(zstate_fmt f, size_t x)
{
    return f == ZSTATE_FP32 ? x : a64(x);
}

size_t zstate_bytes(zopt_kind k, zstate_fmt f, size_t n)
{
    const int nmom = zopt_has_m(k) + zopt_has_v(k);
    size_t bytes = al(f, n * sizeof(float)) + (size_t)nmom * al(f, n * moment_bytes(f));
    if (f == ZSTATE_Q8)
        bytes += (size_t)nmom * a64((n + ZSTATE_Q8_BLOCK - 1) / ZSTATE_Q8_BLOCK * sizeof(float));
    return bytes;
}

double zstate_elem_bytes(zopt_kind k, zstate_fmt f)
{
    const int nmom = zopt_has_m(k) + zopt_has_v(k);
    double per = (double)moment_bytes(f);
    if (f == ZSTATE_Q8) per += (double)sizeof(float) / ZSTATE_Q8_BLOCK;
    return 4.0 + nmom * per;
}

void zstate_view(zopt_kind k, zstate_fmt f, void *base, size_t n, zadam_tensor *t)
{
    char *p = base;
    const size_t mb = al(f, n * moment_bytes(f));
    const size_t ab = a64((n + ZSTATE_Q8_BLOCK - 1) / ZSTATE_Q8_BLOCK * sizeof(float));
    t->state_fmt = f;
    t->param = (float *)(void *)p;
    p += al(f, n * sizeof(float));
    void *m = NULL, *v = NULL;
    if (zopt_has_m(k)) {
        m = p;
        p += mb;
    }
    if (zopt_has_v(k)) {
        v = p;
        p += mb;
    }
    t->exp_avg = NULL;
    t->exp_avg_sq = NULL;
    t->m_state = t->v_state = NULL;
    t->m_absmax = t->v_absmax = NULL;
    if (f == ZSTATE_FP32) {
        t->exp_avg = m;
        t->exp_avg_sq = v;
        return;
    }
    t->m_state = m;
    t->v_state = v;
    if (f == ZSTATE_Q8) {
        if (m) {
            t->m_absmax = (float *)(void *)p;
            p += ab;
        }
        if (v) t->v_absmax = (float *)(void *)p;
    }
}

void zstate_offset(zadam_tensor *t, size_t off)
{
    t->param += off;
    if (t->exp_avg) t->exp_avg += off;
    if (t->exp_avg_sq) t->exp_avg_sq += off;
    const size_t ms = t->state_fmt == ZSTATE_BF16 ? 2u : 1u;
    if (t->m_state) t->m_state = (char *)t->m_state + off * ms;
    if (t->v_state) t->v_state = (char *)t->v_state + off * ms;
    if (t->m_absmax) t->m_absmax += off / ZSTATE_Q8_BLOCK;
    if (t->v_absmax) t->v_absmax += off / ZSTATE_Q8_BLOCK;
}

void zstate_init_moments(zopt_kind k, const zadam_tensor *t, size_t n, float v_init)
{
    float buf[ZSTATE_Q8_BLOCK];
    for (size_t i = 0; i < ZSTATE_Q8_BLOCK; i++) buf[i] = v_init;
    static const float zero[ZSTATE_Q8_BLOCK];
    const size_t ms = moment_bytes(t->state_fmt);
    for (size_t b0 = 0; b0 < n; b0 += ZSTATE_Q8_BLOCK) {
        const size_t nb = ZOFF_MIN((size_t)ZSTATE_Q8_BLOCK, n - b0);
        const size_t blk = b0 / ZSTATE_Q8_BLOCK;
        if (zopt_has_m(k)) {
            void *m = t->state_fmt == ZSTATE_FP32 ? (void *)t->exp_avg : t->m_state;
            zstate_encode(t->state_fmt, 0, zero, nb, (char *)m + b0 * ms,
                          t->m_absmax ? t->m_absmax + blk : NULL);
        }
        if (zopt_has_v(k)) {
            void *v = t->state_fmt == ZSTATE_FP32 ? (void *)t->exp_avg_sq : t->v_state;
            zstate_encode(t->state_fmt, 1, buf, nb, (char *)v + b0 * ms,
                          t->v_absmax ? t->v_absmax + blk : NULL);
        }
    }
}

void zstate_decode(zstate_fmt f, int which, const void *state, const float *absmax, size_t n,
                   float *out)
{
    if (f == ZSTATE_FP32) {
        memcpy(out, state, n * sizeof(float));
    } else if (f == ZSTATE_BF16) {
        for (size_t i = 0; i < n; i++) out[i] = zoff_bf16_to_f32(((const uint16_t *)state)[i]);
    } else {
        which = which ? 1 : 0;
        for (size_t i = 0; i < n; i++)
            out[i] = zq8__dec(which, ((const uint8_t *)state)[i], absmax[i / ZSTATE_Q8_BLOCK]);
    }
}

void zstate_encode(zstate_fmt f, int which, const float *in, size_t n, void *state, float *absmax)
{
    if (f == ZSTATE_FP32) {
        memcpy(state, in, n * sizeof(float));
    } else if (f == ZSTATE_BF16) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)state)[i] = zoff_f32_to_bf16(in[i]);
    } else {
        for (size_t b0 = 0; b0 < n; b0 += ZSTATE_Q8_BLOCK)
            zq8__encode_block(which, in + b0, ZOFF_MIN((size_t)ZSTATE_Q8_BLOCK, n - b0),
                              (uint8_t *)state + b0, &absmax[b0 / ZSTATE_Q8_BLOCK]);
    }
}

double zopt_bytes_per_elem(zopt_kind k, zstate_fmt f, zoff_dtype grad_dtype, int has_out,
                           zoff_dtype out_dtype)
{
    /* state read and written, plus the gradient in and the copy out */
    double bytes = 2.0 * zstate_elem_bytes(k, f) + (double)zoff_dtype_size(grad_dtype);
    if (has_out) bytes += (double)zoff_dtype_size(out_dtype);
    return bytes;
}
