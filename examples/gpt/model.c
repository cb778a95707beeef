/*
 * model.c — the GPT model of the example trainer (see model.h): parameter layout and
 * initialisation, the fp32 and fp64 instantiations of model_impl.h, the public forward/backward
 * entry points, KV-cached sampling and the fp16/bf16 element conversions.
 *
 * The kernels are compiled at -O3 (loop vectorisation of the GEMM tiles) with runtime ISA
 * dispatch (target_clones in model_impl.h): no -march flag is needed.
 */
#pragma GCC optimize("O3")

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"

/* ---- config and layout -------------------------------------------------------------------- */
int gpt_config_check(const gpt_config *cfg, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!cfg)
        bad = "no model config";
    else if (cfg->vocab < 2 || cfg->vocab > 65536)
        bad = "model.vocab must be in [2, 65536]";
    else if (cfg->max_seq < 1 || cfg->max_seq > 4096)
        bad = "model.seq_len must be in [1, 4096]";
    else if (cfg->layers < 1 || cfg->layers > 256)
        bad = "model.layers must be in [1, 256]";
    else if (cfg->width < 1 || cfg->width > 8192)
        bad = "model.width must be in [1, 8192]";
    else if (cfg->heads < 1 || cfg->width % cfg->heads != 0)
        bad = "model.heads must be >= 1 and divide model.width";
    else if (cfg->tied != 0 && cfg->tied != 1)
        bad = "model.tied must be true or false";
    if (!bad) return 0;
    if (err && errlen) snprintf(err, errlen, "%s", bad);
    return -EINVAL;
}

static void add_tensor(gpt_layout *lay, size_t *off, const char *name, int rows, int cols,
                       int decay, int stage)
{
    gpt_tensor *t = &lay->tensors[lay->ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->numel = (size_t)rows * (size_t)cols;
    t->offset = *off;
    t->decay = decay;
    t->stage = stage;
    *off += (t->numel + GPT_ALIGN_NUMEL - 1) / GPT_ALIGN_NUMEL * GPT_ALIGN_NUMEL;
    lay->param_count += t->numel;
}

int gpt_layout_init(gpt_layout *lay, const gpt_config *cfg)
{
    int L = cfg->layers, C = cfg->width, V = cfg->vocab;
    memset(lay, 0, sizeof *lay);
    lay->tensors = calloc((size_t)(5 + L * GPT_BLOCK_TENSORS), sizeof(gpt_tensor));
    if (!lay->tensors) return -ENOMEM;
    lay->nstages = L + 2;
    size_t off = 0;
    /* wte is final after the embedding stage; with a tied head it also receives the head's
     * gradient, which comes first, so its stage is L + 1 either way. */
    add_tensor(lay, &off, "wte", V, C, 1, L + 1);
    add_tensor(lay, &off, "wpe", cfg->max_seq, C, 1, L + 1);
    static const struct {
        const char *name;
        int decay;
    } blk[GPT_BLOCK_TENSORS] = {
        {"ln1.w", 0},       {"ln1.b", 0},       {"attn.qkv.w", 1}, {"attn.qkv.b", 0},
        {"attn.proj.w", 1}, {"attn.proj.b", 0}, {"ln2.w", 0},      {"ln2.b", 0},
        {"mlp.fc.w", 1},    {"mlp.fc.b", 0},    {"mlp.proj.w", 1}, {"mlp.proj.b", 0},
    };
    for (int l = 0; l < L; l++) {
        int stage = L - l;
        int shape[GPT_BLOCK_TENSORS][2] = {
            {1, C}, {1, C}, {C, 3 * C}, {1, 3 * C}, {C, C},     {1, C},
            {1, C}, {1, C}, {C, 4 * C}, {1, 4 * C}, {4 * C, C}, {1, C},
        };
        for (int k = 0; k < GPT_BLOCK_TENSORS; k++) {
            char name[GPT_NAME_MAX];
            snprintf(name, sizeof name, "h.%d.%s", l, blk[k].name);
            add_tensor(lay, &off, name, shape[k][0], shape[k][1], blk[k].decay, stage);
        }
    }
    add_tensor(lay, &off, "lnf.w", 1, C, 0, 0);
    add_tensor(lay, &off, "lnf.b", 1, C, 0, 0);
    if (!cfg->tied) add_tensor(lay, &off, "head.w", C, V, 1, 0);
    lay->total_numel = off;
    return 0;
}

void gpt_layout_free(gpt_layout *lay)
{
    if (!lay) return;
    free(lay->tensors);
    memset(lay, 0, sizeof *lay);
}

void gpt_init_params(const gpt_layout *lay, const gpt_config *cfg, float *params, uint64_t seed)
{
    gpt_rng rng;
    gpt_rng_seed(&rng, seed);
    memset(params, 0, lay->total_numel * sizeof(float));
    double proj_std = 0.02 / sqrt(2.0 * cfg->layers);
    for (int i = 0; i < lay->ntensors; i++) {
        const gpt_tensor *t = &lay->tensors[i];
        float *p = params + t->offset;
        const char *suffix = strrchr(t->name, '.');
        int is_ln_w = strstr(t->name, "ln") != NULL && suffix && !strcmp(suffix, ".w");
        if (is_ln_w) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else if (t->rows > 1) { /* matrices and embeddings */
            int resid = strstr(t->name, "attn.proj.w") || strstr(t->name, "mlp.proj.w");
            double sd = resid ? proj_std : 0.02;
            for (size_t j = 0; j < t->numel; j++) p[j] = (float)(gpt_rng_normal(&rng) * sd);
        } /* biases stay 0 */
    }
}

/* ---- fp32 exp and tanh ------------------------------------------------------------------------
 */
/* exp(x) from a Cody-Waite reduction (x = k ln 2 + r, |r| <= ln 2 / 2) and a degree-7 Taylor
 * polynomial: branch-free, so the softmax and GELU loops vectorise (libm's expf/tanhf calls do
 * not, and took a fifth of the step). Relative error about 2 ulp; x is clamped to [-87, 88]. */
static inline float gpt_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* nearest integer to x / ln 2 by the 1.5 * 2^23 trick (no rounding instruction needed) */
    float kf = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = x - kf * 0.693359375f + kf * 2.12194440e-4f; /* ln 2 in two parts */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        uint32_t u;
        float f;
    } scale = {.u = (uint32_t)((int32_t)kf + 127) << 23};
    return p * scale.f;
}

/* tanh(u) = (e - 1) / (e + 1) with e = exp(2u); absolute error below 2e-7 (test_gpt_grad
 * compares the fp32 model with the fp64 one, which uses libm). |u| is clamped to 9, where tanh
 * is +-1 in fp32. */
static inline float gpt_tanhf(float u)
{
    float a = u < -9.0f ? -9.0f : (u > 9.0f ? 9.0f : u);
    float e = gpt_expf(2.0f * a);
    return (e - 1.0f) / (e + 1.0f);
}

/* Every hot kernel is compiled for AVX-512, AVX2+FMA and baseline x86-64, chosen at load time. */
#define GPT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* ---- the two instantiations --------------------------------------------------------------- */
#define GPT_REAL  float
#define GPT_SFX   _f32
#define GPT_MODEL gpt_model
#define GPT_EXP   gpt_expf
#define GPT_LOG   logf
#define GPT_TANH  gpt_tanhf
#define GPT_SQRT  sqrtf
#include "model_impl.h"
#undef GPT_REAL
#undef GPT_SFX
#undef GPT_MODEL
#undef GPT_EXP
#undef GPT_LOG
#undef GPT_TANH
#undef GPT_SQRT

#define GPT_REAL  double
#define GPT_SFX   _f64
#define GPT_MODEL gpt_model_f64
#define GPT_EXP   exp
#define GPT_LOG   log
#define GPT_TANH  tanh
#define GPT_SQRT  sqrt
#include "model_impl.h"
#undef GPT_REAL
#undef GPT_SFX
#undef GPT_MODEL
#undef GPT_EXP
#undef GPT_LOG
#undef GPT_TANH
#undef GPT_SQRT

int gpt_model_create(const gpt_config *cfg, int max_batch, gpt_model **out)
{
    return model_create_f32(cfg, max_batch, out);
}

void gpt_model_destroy(gpt_model *m)
{
    model_destroy_f32(m);
}

size_t gpt_model_activation_bytes(const gpt_model *m)
{
    return m ? m->bytes : 0;
}

int gpt_forward(gpt_model *m, const float *params, const int32_t *tokens, const int32_t *targets,
                int B, int T, float *loss)
{
    if (!m) return -EINVAL;
    return model_forward_f32(m, params, tokens, targets, B, T, loss);
}

const float *gpt_logits(const gpt_model *m)
{
    return m ? m->logits : NULL;
}

int gpt_backward(gpt_model *m, const float *params, float *grads, float dloss,
                 gpt_stage_fn on_stage, void *user)
{
    if (!m) return -EINVAL;
    return model_backward_f32(m, params, grads, dloss, on_stage, user);
}

int gpt_model_create_f64(const gpt_config *cfg, int max_batch, gpt_model_f64 **out)
{
    return model_create_f64(cfg, max_batch, out);
}

void gpt_model_destroy_f64(gpt_model_f64 *m)
{
    model_destroy_f64(m);
}

int gpt_forward_f64(gpt_model_f64 *m, const double *params, const int32_t *tokens,
                    const int32_t *targets, int B, int T, double *loss)
{
    if (!m) return -EINVAL;
    return model_forward_f64(m, params, tokens, targets, B, T, loss);
}

int gpt_backward_f64(gpt_model_f64 *m, const double *params, double *grads, double dloss,
                     gpt_stage_fn on_stage, void *user)
{
    if (!m) return -EINVAL;
    return model_backward_f64(m, params, grads, dloss, on_stage, user);
}

/* ---- sampling with a KV cache ------------------------------------------------------------- */
struct gpt_sampler {
    gpt_config cfg;
    gpt_layout lay;
    int pos;              /* tokens fed so far */
    float *kcache;        /* (L, maxT, C) */
    float *vcache;        /* (L, maxT, C) */
    float *x, *ln, *atty; /* (C) */
    float *qkv;           /* (3C) */
    float *h, *hg;        /* (4C) */
    float *att;           /* (maxT) */
    float *logits;        /* (V) */
    float *mean_rstd;     /* 2 scratch values for layernorm */
};

void gpt_sampler_destroy(gpt_sampler *s)
{
    if (!s) return;
    float *bufs[] = {s->kcache, s->vcache, s->x,   s->ln,     s->atty,     s->qkv,
                     s->h,      s->hg,     s->att, s->logits, s->mean_rstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    gpt_layout_free(&s->lay);
    free(s);
}

int gpt_sampler_create(const gpt_config *cfg, gpt_sampler **out)
{
    char err[128];
    if (!out || gpt_config_check(cfg, err, sizeof err) != 0) return -EINVAL;
    gpt_sampler *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->cfg = *cfg;
    int rc = gpt_layout_init(&s->lay, cfg);
    if (rc != 0) {
        free(s);
        return rc;
    }
    size_t C = (size_t)cfg->width, T = (size_t)cfg->max_seq, L = (size_t)cfg->layers;
    s->kcache = calloc(L * T * C, sizeof(float));
    s->vcache = calloc(L * T * C, sizeof(float));
    s->x = calloc(C, sizeof(float));
    s->ln = calloc(C, sizeof(float));
    s->atty = calloc(C, sizeof(float));
    s->qkv = calloc(3 * C, sizeof(float));
    s->h = calloc(4 * C, sizeof(float));
    s->hg = calloc(4 * C, sizeof(float));
    s->att = calloc(T, sizeof(float));
    s->logits = calloc((size_t)cfg->vocab, sizeof(float));
    s->mean_rstd = calloc(2, sizeof(float));
    if (!s->kcache || !s->vcache || !s->x || !s->ln || !s->atty || !s->qkv || !s->h || !s->hg ||
        !s->att || !s->logits || !s->mean_rstd) {
        gpt_sampler_destroy(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void gpt_sampler_reset(gpt_sampler *s)
{
    if (s) s->pos = 0;
}

int gpt_sampler_pos(const gpt_sampler *s)
{
    return s ? s->pos : 0;
}

static const float *sp(const gpt_sampler *s, const float *p, int l, int k)
{
    int idx = l < 0 ? k : 2 + l * GPT_BLOCK_TENSORS + k;
    return p + s->lay.tensors[idx].offset;
}

const float *gpt_sampler_feed(gpt_sampler *s, const float *p, int32_t token)
{
    const gpt_config *cfg = &s->cfg;
    if (s->pos >= cfg->max_seq || token < 0 || token >= cfg->vocab) return NULL;
    int C = cfg->width, NH = cfg->heads, hs = C / NH, V = cfg->vocab, t = s->pos;
    const float *wte = sp(s, p, -1, 0), *wpe = sp(s, p, -1, 1);
    for (int i = 0; i < C; i++) s->x[i] = wte[(size_t)token * C + i] + wpe[(size_t)t * C + i];
    float scale = 1.0f / sqrtf((float)hs);
    for (int l = 0; l < cfg->layers; l++) {
        float *kc = s->kcache + (size_t)l * cfg->max_seq * C;
        float *vc = s->vcache + (size_t)l * cfg->max_seq * C;
        layernorm_forward_f32(s->ln, s->mean_rstd, s->mean_rstd + 1, s->x, sp(s, p, l, GPT_LN1_W),
                              sp(s, p, l, GPT_LN1_B), 1, C);
        gemm_f32(s->qkv, s->ln, sp(s, p, l, GPT_QKV_W), sp(s, p, l, GPT_QKV_B), 1, 3 * C, C, 0);
        memcpy(kc + (size_t)t * C, s->qkv + C, (size_t)C * sizeof(float));
        memcpy(vc + (size_t)t * C, s->qkv + 2 * C, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++) {
            const float *q = s->qkv + (size_t)h * hs;
            float maxv = -INFINITY;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *k = kc + (size_t)t2 * C + (size_t)h * hs;
                float d = 0;
                for (int i = 0; i < hs; i++) d += q[i] * k[i];
                d *= scale;
                s->att[t2] = d;
                if (d > maxv) maxv = d;
            }
            float sum = 0;
            for (int t2 = 0; t2 <= t; t2++) {
                s->att[t2] = expf(s->att[t2] - maxv);
                sum += s->att[t2];
            }
            float *o = s->atty + (size_t)h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0;
            for (int t2 = 0; t2 <= t; t2++) {
                const float *v = vc + (size_t)t2 * C + (size_t)h * hs;
                float a = s->att[t2] / sum;
                for (int i = 0; i < hs; i++) o[i] += a * v[i];
            }
        }
        gemm_f32(s->x, s->atty, sp(s, p, l, GPT_PROJ_W), sp(s, p, l, GPT_PROJ_B), 1, C, C, 1);
        layernorm_forward_f32(s->ln, s->mean_rstd, s->mean_rstd + 1, s->x, sp(s, p, l, GPT_LN2_W),
                              sp(s, p, l, GPT_LN2_B), 1, C);
        gemm_f32(s->h, s->ln, sp(s, p, l, GPT_FC_W), sp(s, p, l, GPT_FC_B), 1, 4 * C, C, 0);
        gelu_forward_f32(s->hg, s->h, (size_t)4 * C);
        gemm_f32(s->x, s->hg, sp(s, p, l, GPT_FCPROJ_W), sp(s, p, l, GPT_FCPROJ_B), 1, C, 4 * C, 1);
    }
    int ilnf = 2 + cfg->layers * GPT_BLOCK_TENSORS;
    layernorm_forward_f32(s->ln, s->mean_rstd, s->mean_rstd + 1, s->x, sp(s, p, -1, ilnf),
                          sp(s, p, -1, ilnf + 1), 1, C);
    if (cfg->tied) {
        for (int v = 0; v < V; v++) {
            const float *w = wte + (size_t)v * C;
            float d = 0;
            for (int i = 0; i < C; i++) d += s->ln[i] * w[i];
            s->logits[v] = d;
        }
    } else {
        gemm_f32(s->logits, s->ln, sp(s, p, -1, s->lay.ntensors - 1), NULL, 1, V, C, 0);
    }
    s->pos++;
    return s->logits;
}

int32_t gpt_sample_token(const float *logits, int V, float temperature, double u)
{
    if (temperature <= 0) { /* greedy */
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return best;
    }
    float maxv = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > maxv) maxv = logits[v];
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(logits[v] - maxv) / temperature);
    double target = u * sum, acc = 0;
    for (int v = 0; v < V; v++) {
        acc += exp((double)(logits[v] - maxv) / temperature);
        if (acc > target) return v;
    }
    return V - 1;
}

/* ---- 16-bit conversions ------------------------------------------------------------------- */
static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t gpt_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t e8 = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (e8 == 0xffu) /* inf stays inf; NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)e8 - 112; /* fp16 biased exponent (127 - 15 = 112) */
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* fp16 subnormal or zero: value = m * 2^-24 */
        if (e < -10) return (uint16_t)sign;
        uint32_t full = man | 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t m = full >> shift, rest = full & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (m & 1u))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t out = ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (out & 1u))) out++; /* carries into inf correctly */
    return (uint16_t)(sign | out);
}

float gpt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (e == 0x1fu) return bits_f32(sign | 0x7f800000u | (man << 13));
    if (e != 0) return bits_f32(sign | ((e + 112u) << 23) | (man << 13));
    /* zero or subnormal: man * 2^-24, exact in fp32 */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
}

uint16_t gpt_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float gpt_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}
