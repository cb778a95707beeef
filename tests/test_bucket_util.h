/*
 * test_bucket_util.h — a synthetic trainer for the gradient-bucket and accumulation tests
 * (header-only, static functions). Parameters live in device memory of the runtime's backend. In
 * bucket mode (registered with dev_grad NULL) the trainer owns ONE scratch device buffer of the
 * largest parameter's size: "backward" writes each gradient into it by an asynchronous copy
 * behind stand-in compute on its stream and hands it over with zoff_grad_push, then at once
 * overwrites it with the next gradient. A zoff copy that is not ordered on the producer stream
 * reads the wrong gradient (ZOFF_SIM_JITTER variants make that likely). In full-buffer mode each
 * parameter has its own dev_grad and zoff_grad_ready (the round-1 path, the reference).
 * BK_COPY_STREAM (bucket mode with a copy stream): two scratch buffers, alternating per param;
 * each gradient is pushed from the trainer's copy stream while the compute stream goes on with
 * the next param (zoff_stream_wait_stream both ways, docs/runtime.md "Pushing from a copy
 * stream"); a missing wait lets a copy read a half-written or already rewritten buffer.
 */
#ifndef ZOFF_TEST_BUCKET_UTIL_H
#define ZOFF_TEST_BUCKET_UTIL_H

#include <math.h>
#include <string.h>

#include "common/half.h"
#include "runtime/rt.h"
#include "test_runtime_util.h"
#include "zt.h"

#define BK_MAXP        8
#define BK_FULL        0 /* bk_open `bucket`: trainer-owned full gradient buffers */
#define BK_BUCKETS     1 /* pushes on the compute stream, one scratch buffer */
#define BK_COPY_STREAM 2 /* pushes from a copy stream, two scratch buffers */

typedef struct bk_model {
    zoff_runtime *rt;
    zoff_stream s;
    zoff_stream cs; /* BK_COPY_STREAM: the trainer's copy stream */
    int np;
    size_t numel[BK_MAXP];
    zoff_dtype dt;
    size_t es;
    int bucket;
    void *dparam[BK_MAXP], *dgrad[BK_MAXP];
    void *scratch;        /* bucket mode: the trainer's gradient buffer */
    void *scratch2;       /* BK_COPY_STREAM: the second one (odd params) */
    void *hgrad[BK_MAXP]; /* host source of this micro-batch's gradient copy */
    int id[BK_MAXP];
} bk_model;

/* Creates the runtime, registers np params (deterministic initial values, uploaded as the
 * trainer's 16-bit copy) and finalizes. Returns the first failing status (the model can be
 * closed in any case). */
static inline zoff_status bk_open(bk_model *m, const zoff_config *c, int np, const size_t *numel,
                                  zoff_dtype dt, int bucket, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    zoff_status st = zoff_create(c, &m->rt);
    if (st) return st;
    m->np = np;
    m->dt = dt;
    m->es = zoff_dtype_size(dt);
    m->bucket = bucket;
    st = zoff_stream_create(m->rt, &m->s);
    if (st) return st;
    zt_rng r;
    zt_rng_seed(&r, seed);
    size_t maxn = 0;
    for (int i = 0; i < np; i++) maxn = numel[i] > maxn ? numel[i] : maxn;
    for (int i = 0; i < np; i++) {
        m->numel[i] = numel[i];
        st = zoff_device_alloc(m->rt, numel[i] * m->es, &m->dparam[i]);
        if (st) return st;
        if (!bucket) {
            st = zoff_device_alloc(m->rt, numel[i] * m->es, &m->dgrad[i]);
            if (st) return st;
        }
        m->hgrad[i] = zt_malloc(numel[i] * m->es);
        st = tr_add_init_param(m->rt, i, numel[i], dt, m->dparam[i], bucket ? NULL : m->dgrad[i],
                               &r, &m->id[i]);
        if (st) return st;
    }
    if (bucket) {
        st = zoff_device_alloc(m->rt, maxn * m->es, &m->scratch);
        if (st) return st;
    }
    if (bucket == BK_COPY_STREAM) {
        st = zoff_device_alloc(m->rt, maxn * m->es, &m->scratch2);
        if (!st) st = zoff_stream_create(m->rt, &m->cs);
        if (st) return st;
    }
    return zoff_finalize(m->rt);
}

static inline void bk_close(bk_model *m)
{
    for (int i = 0; i < m->np; i++) free(m->hgrad[i]);
    if (m->rt && m->s) zoff_stream_destroy(m->rt, m->s);
    if (m->rt && m->cs) zoff_stream_destroy(m->rt, m->cs);
    zoff_destroy(m->rt);
    memset(m, 0, sizeof *m);
}

/* The gradient of param i in micro-batch `micro` of step `step`: deterministic values. */
static inline void bk_grad_values(float *g, size_t n, int step, int micro, int i)
{
    zt_rng r;
    zt_rng_seed(&r, (uint64_t)step * 7919u + (uint64_t)micro * 104729u + (uint64_t)i * 31u + 1u);
    zt_fill_normal(&r, g, n, 0.01f);
}

/* "Backward" of one micro-batch: params in reverse order, busy time, the gradient (values of
 * bk_grad_values times `scale`, rounded to the dtype; param `inf_param` gets one +inf when >= 0)
 * copied to the device behind it, then handed over. Returns the first failing status. */
static inline zoff_status bk_backward(bk_model *m, int step, int micro, float scale,
                                      uint64_t busy_ns, int inf_param)
{
    zdev *dev = m->rt->dev;
    /* hgrad[] is rewritten below: the copies queued from it last time must have run (with
     * gradient accumulation zoff_step returns before them) */
    zoff_status sst = zoff_stream_synchronize(m->rt, m->s);
    if (sst) return sst;
    for (int i = m->np - 1; i >= 0; i--) {
        size_t n = m->numel[i];
        float *g = zt_malloc(n * sizeof(float));
        bk_grad_values(g, n, step, micro, i);
        for (size_t k = 0; k < n; k++) {
            float v = g[k] * scale;
            if (i == inf_param && k == n / 2) v = INFINITY;
            if (m->dt == ZOFF_DTYPE_F32)
                ((float *)m->hgrad[i])[k] = v;
            else
                ((uint16_t *)m->hgrad[i])[k] = tr_from_f32(m->dt, v);
        }
        free(g);
        zoff_status st = ZOFF_OK;
        if (busy_ns) st = zoff_stream_busy(m->rt, m->s, busy_ns);
        void *dst = !m->bucket ? m->dgrad[i] : m->cs && (i & 1) ? m->scratch2 : m->scratch;
        if (!st) st = zdev_memcpy_h2d(dev, dst, m->hgrad[i], n * m->es, (zdev_stream *)m->s);
        if (!st && m->cs) {
            /* the compute stream rewrites this buffer for param i - 2 only after the copies
             * queued so far (param i + 1's at the latest); the copy of i follows its write */
            st = zoff_stream_wait_stream(m->rt, m->s, m->cs);
            if (!st) st = zoff_stream_wait_stream(m->rt, m->cs, m->s);
            if (!st) st = zoff_grad_push(m->rt, m->id[i], dst, n, m->dt, m->cs);
        } else if (!st && m->bucket) {
            st = zoff_grad_push(m->rt, m->id[i], m->scratch, n, m->dt, m->s);
        } else if (!st) {
            st = zoff_grad_ready(m->rt, m->id[i], m->s);
        }
        if (st) return st;
    }
    return ZOFF_OK;
}

/* Master + moments of every param, and the device's 16-bit params. */
typedef struct bk_state {
    int np;
    size_t numel[BK_MAXP];
    float *p[BK_MAXP], *m[BK_MAXP], *v[BK_MAXP];
    void *dev[BK_MAXP];
    size_t es;
} bk_state;

static inline void bk_state_get(bk_model *m, bk_state *s)
{
    memset(s, 0, sizeof *s);
    s->np = m->np;
    s->es = m->es;
    assert_int_equal(zoff_params_ready(m->rt, NULL), 0);
    for (int i = 0; i < m->np; i++) {
        size_t n = m->numel[i];
        s->numel[i] = n;
        s->p[i] = zt_malloc(n * 4);
        s->m[i] = zt_malloc(n * 4);
        s->v[i] = zt_malloc(n * 4);
        s->dev[i] = zt_malloc(n * m->es);
        assert_int_equal(zoff_get_master(m->rt, m->id[i], s->p[i]), 0);
        assert_int_equal(zoff_get_state(m->rt, m->id[i], s->m[i], s->v[i]), 0);
        assert_int_equal(zoff_device_download(m->rt, s->dev[i], m->dparam[i], n * m->es, m->s), 0);
    }
}

static inline void bk_state_free(bk_state *s)
{
    for (int i = 0; i < s->np; i++) {
        free(s->p[i]);
        free(s->m[i]);
        free(s->v[i]);
        free(s->dev[i]);
    }
    memset(s, 0, sizeof *s);
}

/* Parameters whose master, moments or device copy differ in any bit. */
static inline int bk_state_diff(const bk_state *a, const bk_state *b)
{
    int d = 0;
    for (int i = 0; i < a->np; i++) {
        size_t bytes = a->numel[i] * 4;
        if (memcmp(a->p[i], b->p[i], bytes) || memcmp(a->m[i], b->m[i], bytes) ||
            memcmp(a->v[i], b->v[i], bytes) || memcmp(a->dev[i], b->dev[i], a->numel[i] * a->es)) {
            fprintf(stderr, "  param %d differs bitwise\n", i);
            d++;
        }
    }
    return d;
}

static inline void bk_assert_msg(const zoff_runtime *rt, const char *needle)
{
    const char *msg = zoff_last_error(rt);
    if (!strstr(msg, needle)) {
        fprintf(stderr, "message '%s' does not contain '%s'\n", msg, needle);
        fail();
    }
}

#endif /* ZOFF_TEST_BUCKET_UTIL_H */
