/*
 * test_runtime_util.h — a synthetic trainer shared by the runtime tests (header-only, static
 * functions): a few parameters in device memory of the runtime's backend, 16-bit gradients
 * written into device memory by asynchronous copies queued behind stand-in "backward" work on the
 * trainer's stream (so a missing wait in zoff shows up as a wrong gradient under ZOFF_SIM_JITTER),
 * and a float64 AdamW reference that applies the same gradients, unscaled and clipped the way
 * zoff documents (clip = max_norm / (norm + 1e-6) when norm > max_norm).
 */
#ifndef ZOFF_TEST_RUNTIME_UTIL_H
#define ZOFF_TEST_RUNTIME_UTIL_H

#include <math.h>
#include <string.h>

#include "common/half.h"
#include "runtime/rt.h"
#include "zt.h"

#define TR_MAXP 8

typedef struct tr_model {
    zoff_runtime *rt;
    zoff_stream s; /* the trainer's stream */
    int np;
    size_t numel[TR_MAXP];
    zoff_dtype dt;
    void *dparam[TR_MAXP], *dgrad[TR_MAXP];
    int id[TR_MAXP];
    uint16_t *hgrad[TR_MAXP]; /* host source of this step's gradient copy (16-bit or fp32 bits) */
    float *hgradf[TR_MAXP];   /* fp32 source when dt is F32 */
} tr_model;

/* Default test config: small tiles/partitions so params span partitions and tiles. */
static inline void tr_config(zoff_config *c, zoff_dtype dt)
{
    zoff_config_default(c);
    c->fp16_enabled = dt == ZOFF_DTYPE_F16;
    c->bf16_enabled = dt == ZOFF_DTYPE_BF16;
    c->partition_numel = 1000;
    c->tile_numel = 256;
    c->sim_gpu_bytes = 64 * ZOFF_MIB;
    c->sim_pcie_gbps = 0; /* unthrottled: fast tests */
    c->cpu_threads = 1;
    c->optimizer.lr = 1e-3f;
    c->optimizer.weight_decay = 0.01f;
}

/* Sets up the nvme tier in a fresh temp dir (returned; the caller frees and removes it). */
static inline char *tr_nvme(zoff_config *c, float ratio)
{
    char *dir = zt_mkdtemp("rt-nvme");
    assert_non_null(dir);
    c->tier = ZOFF_TIER_NVME;
    c->ratio = ratio;
    c->buffer_count = 3;
    snprintf(c->nvme_path, sizeof c->nvme_path, "%s", dir);
    return dir;
}

static inline float tr_to_f32(zoff_dtype dt, const void *p, size_t i)
{
    if (dt == ZOFF_DTYPE_F32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return dt == ZOFF_DTYPE_F16 ? zoff_f16_to_f32(h) : zoff_bf16_to_f32(h);
}

static inline uint16_t tr_from_f32(zoff_dtype dt, float f)
{
    return dt == ZOFF_DTYPE_F16 ? zoff_f32_to_f16(f) : zoff_f32_to_bf16(f);
}

/* Registers parameter i ("layer<i>.w", numel elements at dparam, gradients in dgrad or, NULL,
 * through the gradient buckets) with initial masters drawn from r (normal, stddev 0.5), after
 * uploading their 16-bit copy into dparam (the trainer's job). Returns 0 or the zoff status. */
static inline zoff_status tr_add_init_param(zoff_runtime *rt, int i, size_t numel, zoff_dtype dt,
                                            void *dparam, void *dgrad, zt_rng *r, int *id)
{
    size_t es = zoff_dtype_size(dt);
    float *init = zt_malloc(numel * sizeof(float));
    zt_fill_normal(r, init, numel, 0.5f);
    void *p16 = zt_malloc(numel * es);
    for (size_t k = 0; k < numel; k++) {
        if (dt == ZOFF_DTYPE_F32)
            ((float *)p16)[k] = init[k];
        else
            ((uint16_t *)p16)[k] = tr_from_f32(dt, init[k]);
    }
    zoff_status st = zoff_device_upload(rt, dparam, p16, numel * es, NULL);
    free(p16);
    char name[32];
    snprintf(name, sizeof name, "layer%d.w", i);
    if (!st) st = zoff_add_param(rt, name, numel, dt, dparam, dgrad, init, 0, id);
    free(init);
    return st;
}

/* Creates the runtime and registers np params with deterministic initial masters (uploaded to
 * the device as their 16-bit copy, the trainer's job). Returns 0 or the zoff status. */
static inline zoff_status tr_open_mode(tr_model *m, const zoff_config *c, int np,
                                       const size_t *numel, zoff_dtype dt, uint64_t seed,
                                       int bucket);
static inline zoff_status tr_open(tr_model *m, const zoff_config *c, int np, const size_t *numel,
                                  zoff_dtype dt, uint64_t seed)
{
    return tr_open_mode(m, c, np, numel, dt, seed, 0);
}

/* bucket 1: the params are registered without dev_grad (zoff's buckets); m->dgrad[i] is then
 * the trainer's source buffer for zoff_grad_push. */
static inline zoff_status tr_open_mode(tr_model *m, const zoff_config *c, int np,
                                       const size_t *numel, zoff_dtype dt, uint64_t seed,
                                       int bucket)
{
    memset(m, 0, sizeof *m);
    zoff_status st = zoff_create(c, &m->rt);
    if (st) return st;
    m->np = np;
    m->dt = dt;
    size_t es = zoff_dtype_size(dt);
    st = zoff_stream_create(m->rt, &m->s);
    if (st) return st;
    zt_rng r;
    zt_rng_seed(&r, seed);
    for (int i = 0; i < np; i++) {
        m->numel[i] = numel[i];
        st = zoff_device_alloc(m->rt, numel[i] * es, &m->dparam[i]);
        if (!st) st = zoff_device_alloc(m->rt, numel[i] * es, &m->dgrad[i]);
        if (st) return st;
        m->hgrad[i] = zt_malloc(numel[i] * es);
        m->hgradf[i] = (float *)(void *)m->hgrad[i];
        st = tr_add_init_param(m->rt, i, numel[i], dt, m->dparam[i], bucket ? NULL : m->dgrad[i],
                               &r, &m->id[i]);
        if (st) return st;
    }
    return zoff_finalize(m->rt);
}

/* tr_open (initial masters from `seed`), asserting success with zoff's message on stderr. */
static inline void tr_open_ok(tr_model *m, const zoff_config *c, int np, const size_t *numel,
                              zoff_dtype dt, uint64_t seed)
{
    zoff_status st = tr_open(m, c, np, numel, dt, seed);
    if (st) fprintf(stderr, "tr_open: %s: %s\n", zoff_status_name(st), zoff_last_error(m->rt));
    assert_int_equal(st, 0);
}

/* The optimizer state's tier for a test run: with `nvme`, the nvme tier in a fresh temp dir
 * (returned; tr_rmdir removes it), else the config's cpu tier (NULL). */
static inline char *tr_tier(zoff_config *c, int nvme)
{
    return nvme ? tr_nvme(c, 0.0f) : NULL;
}

/* Removes and frees a directory from tr_tier / tr_nvme (NULL: nothing). */
static inline void tr_rmdir(char *dir)
{
    if (!dir) return;
    zt_rmtree(dir);
    free(dir);
}

static inline void tr_close(tr_model *m)
{
    for (int i = 0; i < m->np; i++) free(m->hgrad[i]);
    if (m->rt && m->s) zoff_stream_destroy(m->rt, m->s);
    zoff_destroy(m->rt);
    memset(m, 0, sizeof *m);
}

/* "Backward": for params in reverse order, some busy time on the stream, then an asynchronous
 * copy of the gradient (host values g[i], times `scale`, rounded to the dtype) into dev_grad and
 * zoff_grad_ready behind it. gq[i] receives the rounded values (as the trainer's 16-bit gradient
 * would hold them), unscaled by nothing: gq = round(g * scale). */
static inline void tr_backward(tr_model *m, float *const *g, float scale, float *const *gq,
                               uint64_t busy_ns)
{
    zdev *dev = m->rt->dev;
    for (int i = m->np - 1; i >= 0; i--) {
        size_t n = m->numel[i];
        for (size_t k = 0; k < n; k++) {
            float v = g[i][k] * scale;
            if (m->dt == ZOFF_DTYPE_F32) {
                m->hgradf[i][k] = v;
                gq[i][k] = v;
            } else {
                m->hgrad[i][k] = tr_from_f32(m->dt, v);
                gq[i][k] = tr_to_f32(m->dt, m->hgrad[i], k);
            }
        }
        if (busy_ns) assert_int_equal(zoff_stream_busy(m->rt, m->s, busy_ns), 0);
        assert_int_equal(zdev_memcpy_h2d(dev, m->dgrad[i], m->hgrad[i], n * zoff_dtype_size(m->dt),
                                         (zdev_stream *)m->s),
                         0);
        assert_int_equal(zoff_grad_ready(m->rt, m->id[i], m->s), 0);
    }
}

/* The device's 16-bit params must equal the cast of `master` (per param) exactly. */
static inline size_t tr_check_device(tr_model *m, float *const *master)
{
    size_t bad = 0, es = zoff_dtype_size(m->dt);
    for (int i = 0; i < m->np; i++) {
        size_t n = m->numel[i];
        void *h = zt_malloc(n * es);
        assert_int_equal(zoff_device_download(m->rt, h, m->dparam[i], n * es, m->s), 0);
        for (size_t k = 0; k < n; k++) {
            int ok;
            if (m->dt == ZOFF_DTYPE_F32)
                ok = memcmp(&((float *)h)[k], &master[i][k], 4) == 0;
            else
                ok = ((uint16_t *)h)[k] == tr_from_f32(m->dt, master[i][k]);
            if (!ok && bad++ < 5)
                fprintf(stderr, "  device param %d[%zu] = %g, cast(master) = %g\n", i, k,
                        (double)tr_to_f32(m->dt, h, k), (double)master[i][k]);
        }
        free(h);
    }
    return bad;
}

/* ---- float64 reference ----------------------------------------------------------------------- */
typedef struct tr_ref {
    int np;
    size_t numel[TR_MAXP];
    double *p[TR_MAXP], *m[TR_MAXP], *v[TR_MAXP];
    int64_t step;
} tr_ref;

static inline void tr_ref_init(tr_ref *r, const tr_model *m, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->np = m->np;
    zt_rng rng;
    zt_rng_seed(&rng, seed);
    for (int i = 0; i < m->np; i++) {
        size_t n = m->numel[i];
        r->numel[i] = n;
        float *init = zt_malloc(n * sizeof(float));
        zt_fill_normal(&rng, init, n, 0.5f);
        r->p[i] = zt_malloc(n * sizeof(double));
        r->m[i] = calloc(n, sizeof(double));
        r->v[i] = calloc(n, sizeof(double));
        for (size_t k = 0; k < n; k++) r->p[i][k] = init[k];
        free(init);
    }
}

static inline void tr_ref_free(tr_ref *r)
{
    for (int i = 0; i < r->np; i++) {
        free(r->p[i]);
        free(r->m[i]);
        free(r->v[i]);
    }
}

/* Global norm of gq / scale (float64). */
static inline double tr_ref_norm(const tr_ref *r, float *const *gq, double scale)
{
    double ss = 0;
    for (int i = 0; i < r->np; i++)
        for (size_t k = 0; k < r->numel[i]; k++) {
            double g = (double)gq[i][k] / scale;
            ss += g * g;
        }
    return sqrt(ss);
}

/* One AdamW step with gradients gq / scale, clipped at max_norm (0: off). Returns the clip
 * coefficient used. */
static inline double tr_ref_step(tr_ref *r, const zoff_group_config *g, float *const *gq,
                                 double scale, double max_norm)
{
    double norm = tr_ref_norm(r, gq, scale);
    double clip = (max_norm > 0 && norm > max_norm) ? max_norm / (norm + 1e-6) : 1.0;
    r->step++;
    double b1 = g->beta1, b2 = g->beta2, lr = g->lr, wd = g->weight_decay, eps = g->eps;
    double bc1 = g->bias_correction ? 1.0 - pow(b1, (double)r->step) : 1.0;
    double bc2 = g->bias_correction ? 1.0 - pow(b2, (double)r->step) : 1.0;
    for (int i = 0; i < r->np; i++)
        for (size_t k = 0; k < r->numel[i]; k++) {
            double gr = (double)gq[i][k] / scale * clip;
            double p = r->p[i][k];
            if (!g->adamw_mode) gr += wd * p;
            double m = b1 * r->m[i][k] + (1 - b1) * gr;
            double v = b2 * r->v[i][k] + (1 - b2) * gr * gr;
            if (g->adamw_mode) p -= lr * wd * p;
            p -= lr * (m / bc1) / (sqrt(v / bc2) + eps);
            r->p[i][k] = p;
            r->m[i][k] = m;
            r->v[i][k] = v;
        }
    return clip;
}

/* Compares zoff's master/state with the reference; returns mismatches. */
static inline size_t tr_ref_compare(const tr_ref *r, tr_model *m, double atol, double rtol)
{
    size_t bad = 0;
    for (int i = 0; i < m->np; i++) {
        size_t n = m->numel[i];
        float *p = zt_malloc(n * 4), *e = zt_malloc(n * 4), *v = zt_malloc(n * 4);
        assert_int_equal(zoff_get_master(m->rt, m->id[i], p), 0);
        assert_int_equal(zoff_get_state(m->rt, m->id[i], e, v), 0);
        bad += zt_compare_f64("master", p, r->p[i], n, atol, rtol);
        bad += zt_compare_f64("exp_avg", e, r->m[i], n, atol, rtol);
        bad += zt_compare_f64("exp_avg_sq", v, r->v[i], n, atol * 1e-2, rtol);
        free(p);
        free(e);
        free(v);
    }
    return bad;
}

/* Gradient buffers for a model: g (values) and gq (rounded as sent). */
typedef struct tr_grads {
    float *g[TR_MAXP], *gq[TR_MAXP];
    int np;
} tr_grads;

static inline void tr_grads_init(tr_grads *gr, const tr_model *m)
{
    gr->np = m->np;
    for (int i = 0; i < m->np; i++) {
        gr->g[i] = zt_malloc(m->numel[i] * sizeof(float));
        gr->gq[i] = zt_malloc(m->numel[i] * sizeof(float));
    }
}

static inline void tr_grads_free(tr_grads *gr)
{
    for (int i = 0; i < gr->np; i++) {
        free(gr->g[i]);
        free(gr->gq[i]);
    }
}

/* Full state of a model, bit for bit (for cpu-vs-nvme and save/load comparisons). */
typedef struct tr_state {
    int np;
    float *p[TR_MAXP], *m[TR_MAXP], *v[TR_MAXP];
    size_t numel[TR_MAXP];
} tr_state;

static inline void tr_state_get(tr_model *m, tr_state *s)
{
    s->np = m->np;
    for (int i = 0; i < m->np; i++) {
        size_t n = m->numel[i];
        s->numel[i] = n;
        s->p[i] = zt_malloc(n * 4);
        s->m[i] = zt_malloc(n * 4);
        s->v[i] = zt_malloc(n * 4);
        assert_int_equal(zoff_get_master(m->rt, m->id[i], s->p[i]), 0);
        assert_int_equal(zoff_get_state(m->rt, m->id[i], s->m[i], s->v[i]), 0);
    }
}

static inline void tr_state_free(tr_state *s)
{
    for (int i = 0; i < s->np; i++) {
        free(s->p[i]);
        free(s->m[i]);
        free(s->v[i]);
    }
}

/* Number of parameters whose master or moments differ in any bit. */
static inline int tr_state_diff(const tr_state *a, const tr_state *b)
{
    int d = 0;
    for (int i = 0; i < a->np; i++) {
        size_t bytes = a->numel[i] * 4;
        if (memcmp(a->p[i], b->p[i], bytes) || memcmp(a->m[i], b->m[i], bytes) ||
            memcmp(a->v[i], b->v[i], bytes)) {
            fprintf(stderr, "  param %d differs bitwise\n", i);
            d++;
        }
    }
    return d;
}

#endif /* ZOFF_TEST_RUNTIME_UTIL_H */
