/*
 * test_stream.c — parameter streaming (units, zoff_fetch / zoff_param_ptr / zoff_release,
 * prefetch) on the sim device, against the same model with every weight resident.
 *
 * The model: a resident "embed" unit and SM_L blocks of two streamed params each. Its "forward"
 * and "backward" run as host functions on the trainer's stream (sim device memory is host
 * memory): forward reads every weight of the fetched unit through zoff_param_ptr into a running
 * activation; backward computes each gradient from the fetched weights and that activation.
 * A stale, half-uploaded or wrong slot therefore changes the gradients and the masters.
 *   argv[1] = cpu | nvme (tier of the optimizer state).
 * Checks:
 *  - 100 steps with sim_gpu_bytes a third of the blocks' 16-bit weights (SM_L = 15 blocks; the
 *    device holds embed, zoff's slab of prefetch_depth + 1 = 2 slots, 2 small gradient buckets and
 *    one unit's gradient scratch), the streamed gradients handed over with zoff_grad_push (no
 *    trainer-owned full gradient buffers), bit-identical (masters, Adam state, every activation)
 *    to a run with every weight resident and full gradient buffers (zoff_grad_ready) on a large
 *    sim device; under sim jitter (seeded by the test) missing waits show;
 *  - a changed forward order (a skipped block, a block run twice): still bit-identical to the
 *    resident run following the same order, counted as out-of-order fetches;
 *  - errors: a unit larger than the slot, a slab that does not fit, fetch before finalize, an
 *    unknown unit, a param in two units, a streamed param in no unit, releasing twice, fetching
 *    with every slot held, param_ptr of an unfetched unit: clear errors, and the run that hit the
 *    runtime-side ones goes on bit-identical to the reference.
 */
#include <math.h>

#include "test_runtime_util.h"

static const char *g_tier = "cpu";

#define SM_L     15 /* blocks */
#define SM_STEPS 100
#define SM_MAXP  (1 + 2 * SM_L)

static const size_t k_embed = 700, k_w = 2600, k_b = 130;

typedef struct sm_model {
    zoff_runtime *rt;
    zoff_stream s;
    int streamed;
    zoff_dtype dt;
    int np;
    size_t numel[SM_MAXP];
    int id[SM_MAXP];
    void *dparam[SM_MAXP], *dgrad[SM_MAXP]; /* dgrad: the resident reference only */
    void *gscratch;     /* streamed model: one unit's gradients, reused; handed over by push */
    int unit[SM_L + 1]; /* 0: embed; 1..SM_L: blocks */
    double act[SM_L + 2];
    double *trace; /* activations of every step, for the comparison */
    size_t ntrace, cap;
} sm_model;

static size_t es_of(zoff_dtype dt)
{
    return zoff_dtype_size(dt);
}

static uint64_t weight_bytes(zoff_dtype dt)
{
    return (uint64_t)(SM_L * (k_w + k_b)) * es_of(dt);
}

static void sm_config(zoff_config *c, zoff_dtype dt, char **dir)
{
    tr_config(c, dt);
    c->sim_jitter_seed = 0x5eed;
    c->loss_scale = dt == ZOFF_DTYPE_F16 ? 1024.0f : 0.0f; /* static: no skipped steps */
    *dir = NULL;
    if (!strcmp(g_tier, "nvme")) *dir = tr_nvme(c, 0.0f);
}

/* Params of unit u (0: embed; b >= 1: block b's w and b). */
static int unit_params(int u, int *ids)
{
    if (u == 0) {
        ids[0] = 0;
        return 1;
    }
    ids[0] = 1 + 2 * (u - 1);
    ids[1] = 2 + 2 * (u - 1);
    return 2;
}

static zoff_status sm_open(sm_model *m, const zoff_config *c, int streamed, zoff_dtype dt)
{
    memset(m, 0, sizeof *m);
    zoff_status st = zoff_create(c, &m->rt);
    if (st) return st;
    m->streamed = streamed;
    m->dt = dt;
    st = zoff_stream_create(m->rt, &m->s);
    if (st) return st;
    /* the streamed model's gradients are computed into one scratch buffer per unit (the largest
     * unit: a block's w and b) and handed to zoff's buckets with zoff_grad_push */
    if (streamed) st = zoff_device_alloc(m->rt, (k_w + k_b) * es_of(dt), &m->gscratch);
    if (st) return st;
    zt_rng r;
    zt_rng_seed(&r, 99);
    m->np = SM_MAXP;
    for (int i = 0; i < m->np; i++) {
        size_t n = i == 0 ? k_embed : (i % 2 ? k_w : k_b);
        m->numel[i] = n;
        size_t bytes = n * es_of(dt);
        float *init = zt_malloc(n * sizeof(float));
        zt_fill_normal(&r, init, n, 0.5f);
        int resident = i == 0 || !streamed;
        if (resident) {
            void *p16 = zt_malloc(bytes);
            for (size_t k = 0; k < n; k++) ((uint16_t *)p16)[k] = tr_from_f32(dt, init[k]);
            st = zoff_device_alloc(m->rt, bytes, &m->dparam[i]);
            if (!st) st = zoff_device_upload(m->rt, m->dparam[i], p16, bytes, NULL);
            free(p16);
        }
        if (!st && !streamed) st = zoff_device_alloc(m->rt, bytes, &m->dgrad[i]);
        char name[32];
        if (i == 0)
            snprintf(name, sizeof name, "embed");
        else
            snprintf(name, sizeof name, "block%d.%s", (i - 1) / 2, i % 2 ? "w" : "b");
        if (!st)
            st = zoff_add_param(m->rt, name, n, dt, m->dparam[i], m->dgrad[i], init, 0, &m->id[i]);
        free(init);
        if (st) return st;
    }
    for (int u = 0; u <= SM_L && !st; u++) {
        int ids[2], n = unit_params(u, ids);
        char name[32];
        snprintf(name, sizeof name, u == 0 ? "embed" : "block%d", u - 1);
        st = zoff_add_unit(m->rt, name, ids, n, &m->unit[u]);
    }
    if (st) return st;
    /* forward: embed, blocks, embed again as the tied head (resident: free) */
    int fwd[SM_L + 2];
    for (int u = 0; u <= SM_L; u++) fwd[u] = m->unit[u];
    fwd[SM_L + 1] = m->unit[0];
    st = zoff_set_schedule(m->rt, fwd, SM_L + 2, NULL, 0);
    if (st) return st;
    return zoff_finalize(m->rt);
}

static void sm_close(sm_model *m)
{
    if (m->rt) {
        for (int i = 0; i < m->np; i++) {
            if (m->dparam[i]) zoff_device_free(m->rt, m->dparam[i]);
            if (m->dgrad[i]) zoff_device_free(m->rt, m->dgrad[i]);
        }
        if (m->gscratch) zoff_device_free(m->rt, m->gscratch);
        if (m->s) zoff_stream_destroy(m->rt, m->s);
    }
    zoff_destroy(m->rt);
    free(m->trace);
    memset(m, 0, sizeof *m);
}

/* ---- the "kernels": host functions in stream order ------------------------------------------- */
typedef struct kern {
    sm_model *m;
    int u;
    int n;
    const void *w[2];
    void *g[2];
    size_t numel[2];
} kern;

static void fwd_kernel(void *arg)
{
    kern *k = arg;
    sm_model *m = k->m;
    double a = m->act[SM_L + 1] * 0.5;
    for (int j = 0; j < k->n; j++)
        for (size_t e = 0; e < k->numel[j]; e++)
            a += (double)tr_to_f32(m->dt, k->w[j], e) * (double)(e % 7 + 1) * 1e-3;
    m->act[k->u] = a;
    m->act[SM_L + 1] = a; /* the running activation */
    if (m->ntrace == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 1024;
        m->trace = realloc(m->trace, m->cap * sizeof(double));
    }
    m->trace[m->ntrace++] = a;
    free(k);
}

static void bwd_kernel(void *arg)
{
    kern *k = arg;
    sm_model *m = k->m;
    for (int j = 0; j < k->n; j++) {
        uint16_t *g = k->g[j];
        for (size_t e = 0; e < k->numel[j]; e++) {
            float w = tr_to_f32(m->dt, k->w[j], e);
            float v = 0.25f * w + 1e-2f * (float)sin(m->act[k->u] + (double)e);
            g[e] = tr_from_f32(m->dt, m->dt == ZOFF_DTYPE_F16 ? v * 1024.0f : v);
        }
    }
    free(k);
}

static void queue_kernel(sm_model *m, int u, int backward)
{
    kern *k = zt_malloc(sizeof *k);
    memset(k, 0, sizeof *k);
    k->m = m;
    k->u = u;
    int ids[2];
    k->n = unit_params(u, ids);
    size_t off = 0;
    for (int j = 0; j < k->n; j++) {
        void *w = NULL;
        assert_int_equal(zoff_param_ptr(m->rt, m->id[ids[j]], &w), 0);
        k->w[j] = w;
        k->g[j] = m->streamed ? (char *)m->gscratch + off * es_of(m->dt) : m->dgrad[ids[j]];
        k->numel[j] = m->numel[ids[j]];
        off += k->numel[j];
    }
    assert_int_equal(
        zdev_host_fn(m->rt->dev, (zdev_stream *)m->s, backward ? bwd_kernel : fwd_kernel, k), 0);
}

/* One step: forward over `order` (block indices 1..SM_L, embed first and last), backward over
 * the distinct units in reverse order of their last forward use. */
static void sm_step(sm_model *m, const int *order, int n)
{
    zoff_status st;
    m->act[SM_L + 1] = 0.0;
    for (int i = 0; i < n; i++) {
        int u = order[i];
        st = zoff_fetch(m->rt, m->unit[u], m->s);
        if (st) fprintf(stderr, "fetch: %s\n", zoff_last_error(m->rt));
        assert_int_equal(st, 0);
        queue_kernel(m, u, 0);
        assert_int_equal(zoff_release(m->rt, m->unit[u], m->s), 0);
    }
    int done[SM_L + 1] = {0};
    for (int i = n - 1; i >= 0; i--) {
        int u = order[i];
        if (done[u]) continue;
        done[u] = 1;
        assert_int_equal(zoff_fetch(m->rt, m->unit[u], m->s), 0);
        queue_kernel(m, u, 1);
        int ids[2], np = unit_params(u, ids);
        size_t off = 0;
        for (int j = 0; j < np; j++) {
            int id = m->id[ids[j]];
            if (m->streamed) {
                /* behind the kernel on m->s; the next unit's kernel reuses the scratch */
                st = zoff_grad_push(m->rt, id, (char *)m->gscratch + off * es_of(m->dt),
                                    m->numel[ids[j]], m->dt, m->s);
                if (st) fprintf(stderr, "push: %s\n", zoff_last_error(m->rt));
                assert_int_equal(st, 0);
            } else {
                assert_int_equal(zoff_grad_ready(m->rt, id, m->s), 0);
            }
            off += m->numel[ids[j]];
        }
        assert_int_equal(zoff_release(m->rt, m->unit[u], m->s), 0);
    }
    zoff_step_result r = {.struct_size = sizeof r};
    st = zoff_step(m->rt, NULL, &r);
    if (st) fprintf(stderr, "step: %s\n", zoff_last_error(m->rt));
    assert_int_equal(st, 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(zoff_params_ready(m->rt, m->s), 0);
}

/* Order of step t in the "changed order" runs: block 2 skipped on odd steps, block 4 run twice
 * every third step, the normal order otherwise. */
static int changed_order(int t, int *o)
{
    int n = 0;
    o[n++] = 0;
    for (int b = 1; b <= SM_L; b++) {
        if (b == 2 && t % 2) continue;
        o[n++] = b;
        if (b == 4 && t % 3 == 0) o[n++] = b;
    }
    o[n++] = 0;
    return n;
}

static void run(sm_model *m, int changed, int poke_errors)
{
    for (int t = 0; t < SM_STEPS; t++) {
        int o[2 * SM_L + 4];
        int n = changed ? changed_order(t, o) : SM_L + 2;
        if (!changed)
            for (int i = 0; i < n; i++) o[i] = i <= SM_L ? i : 0; /* embed, blocks, embed */
        if (poke_errors && t == 3) {
            void *p = NULL;
            /* an unfetched unit's params have no device address */
            assert_int_equal(zoff_param_ptr(m->rt, m->id[1], &p), ZOFF_ESTATE);
            assert_non_null(strstr(zoff_last_error(m->rt), "not fetched"));
            /* release without fetch (a double release) */
            assert_int_equal(zoff_release(m->rt, m->unit[2], m->s), ZOFF_ESTATE);
            assert_non_null(strstr(zoff_last_error(m->rt), "released twice"));
            assert_int_equal(zoff_fetch(m->rt, m->unit[2], m->s), 0);
            assert_int_equal(zoff_release(m->rt, m->unit[2], m->s), 0);
            assert_int_equal(zoff_release(m->rt, m->unit[2], m->s), ZOFF_ESTATE);
            /* every slot held: the next fetch is refused, nothing changes */
            zoff_stats s = ZOFF_STATS_INIT;
            assert_int_equal(zoff_get_stats(m->rt, &s), 0);
            for (int i = 0; i < s.nslots; i++)
                assert_int_equal(zoff_fetch(m->rt, m->unit[1 + i], m->s), 0);
            assert_int_equal(zoff_fetch(m->rt, m->unit[1 + s.nslots], m->s), ZOFF_ESTATE);
            assert_non_null(strstr(zoff_last_error(m->rt), "prefetch_depth"));
            for (int i = 0; i < s.nslots; i++)
                assert_int_equal(zoff_release(m->rt, m->unit[1 + i], m->s), 0);
            /* unknown unit */
            assert_int_equal(zoff_fetch(m->rt, 99, m->s), ZOFF_EINVAL);
        }
        sm_step(m, o, n);
    }
    assert_int_equal(zoff_stream_synchronize(m->rt, m->s), 0);
}

static void compare(sm_model *a, sm_model *b)
{
    assert_int_equal(a->ntrace, b->ntrace);
    size_t bad = 0;
    for (size_t i = 0; i < a->ntrace; i++)
        if (memcmp(&a->trace[i], &b->trace[i], sizeof(double)) && bad++ < 5)
            fprintf(stderr, "  activation %zu: %.17g vs %.17g\n", i, a->trace[i], b->trace[i]);
    assert_int_equal(bad, 0);
    for (int i = 0; i < a->np; i++) {
        size_t n = a->numel[i];
        float *pa = zt_malloc(n * 4), *pb = zt_malloc(n * 4), *va = zt_malloc(n * 4),
              *vb = zt_malloc(n * 4);
        assert_int_equal(zoff_get_master(a->rt, a->id[i], pa), 0);
        assert_int_equal(zoff_get_master(b->rt, b->id[i], pb), 0);
        assert_int_equal(zoff_get_state(a->rt, a->id[i], NULL, va), 0);
        assert_int_equal(zoff_get_state(b->rt, b->id[i], NULL, vb), 0);
        if (memcmp(pa, pb, n * 4) || memcmp(va, vb, n * 4)) {
            fprintf(stderr, "  param %d differs bitwise\n", i);
            bad++;
        }
        free(pa);
        free(pb);
        free(va);
        free(vb);
    }
    assert_int_equal(bad, 0);
}

static void streamed_vs_resident(zoff_dtype dt, int changed, int poke)
{
    zoff_config c;
    char *dir = NULL;
    sm_config(&c, dt, &dir);
    sm_model res, str;
    /* the reference: every weight resident, full trainer-owned gradient buffers */
    c.sim_gpu_bytes = 64 * ZOFF_MIB;
    assert_int_equal(sm_open(&res, &c, 0, dt), 0);
    /* the streamed device holds a third of the blocks' 16-bit weights: embed + one unit's
     * gradient scratch + zoff's slab (prefetch_depth 1: 2 slots) + 2 small gradient buckets */
    uint64_t w = weight_bytes(dt);
    c.sim_gpu_bytes = (size_t)(w / 3);
    c.prefetch_depth = 1;
    c.grad_bucket_numel = 2048;
    c.grad_bucket_count = 2;
    zoff_status st = sm_open(&str, &c, 1, dt);
    if (st) fprintf(stderr, "open streamed: %s\n", zoff_last_error(str.rt));
    assert_int_equal(st, 0);
    zoff_stats s = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(str.rt, &s), 0);
    assert_true(s.nslots == c.prefetch_depth + 1);
    assert_true((uint64_t)s.nslots * s.slot_bytes < w); /* the weights never all fit */
    assert_true(3 * (uint64_t)c.sim_gpu_bytes <= w);    /* device: a third of the weights */
    assert_true(s.bucket_bytes > 0);                    /* gradients left through the buckets */
    run(&res, changed, 0);
    run(&str, changed, poke);
    compare(&res, &str);
    assert_int_equal(zoff_get_stats(str.rt, &s), 0);
    fprintf(stderr,
            "  %s %s: fetches %llu, hits %llu, misses %llu, out of order %llu, prefetches %llu, "
            "%llu bytes up, fetch wait %.1f ms\n",
            g_tier, changed ? "changed order" : "schedule order", (unsigned long long)s.fetches,
            (unsigned long long)s.fetch_hits, (unsigned long long)s.fetch_misses,
            (unsigned long long)s.fetch_out_of_order, (unsigned long long)s.prefetches,
            (unsigned long long)s.stream_h2d_bytes, s.fetch_wait_ms);
    assert_true(s.prefetches > 0);
    assert_true(s.fetch_hits > 0);
    if (changed)
        assert_true(s.fetch_out_of_order > 0);
    else if (!poke)
        assert_int_equal(s.fetch_out_of_order, 0);
    sm_close(&res);
    sm_close(&str);
    if (dir) {
        zt_rmtree(dir);
        free(dir);
    }
}

static void test_bit_identical(void **state)
{
    (void)state;
    streamed_vs_resident(ZOFF_DTYPE_BF16, 0, 0);
}

/* fp16, and the runtime-side errors poked at step 3: the run goes on bit-identical */
static void test_bit_identical_fp16_errors(void **state)
{
    (void)state;
    streamed_vs_resident(ZOFF_DTYPE_F16, 0, 1);
}

static void test_changed_order(void **state)
{
    (void)state;
    streamed_vs_resident(ZOFF_DTYPE_BF16, 1, 0);
}

static void test_errors_setup(void **state)
{
    (void)state;
    zoff_config c;
    char *dir = NULL;
    sm_config(&c, ZOFF_DTYPE_BF16, &dir);
    sm_model m;

    /* a unit larger than the slot */
    c.stream_slot_bytes = 4096;
    zoff_status st = sm_open(&m, &c, 1, ZOFF_DTYPE_BF16);
    assert_int_equal(st, ZOFF_ENOFIT);
    const char *e = zoff_last_error(m.rt);
    assert_non_null(strstr(e, "stream_slot_bytes"));
    assert_non_null(strstr(e, "block0"));
    /* finalize failed: the runtime is still unfinalized; fetch is refused */
    assert_int_equal(zoff_fetch(m.rt, m.unit[1], m.s), ZOFF_ESTATE);
    assert_non_null(strstr(zoff_last_error(m.rt), "before zoff_finalize"));
    sm_close(&m);
    c.stream_slot_bytes = 0;

    /* a slab that does not fit the device */
    c.prefetch_depth = 40;
    c.sim_gpu_bytes = (size_t)(weight_bytes(ZOFF_DTYPE_BF16) + 64 * 1024);
    st = sm_open(&m, &c, 1, ZOFF_DTYPE_BF16);
    assert_int_equal(st, ZOFF_ENOFIT);
    assert_non_null(strstr(zoff_last_error(m.rt), "prefetch_depth"));
    sm_close(&m);
    c.prefetch_depth = 2;
    c.sim_gpu_bytes = 64 * ZOFF_MIB;

    /* registration errors */
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    float init[16] = {0};
    void *g = NULL, *g2 = NULL; /* each param its own gradient buffer (sharing is refused) */
    assert_int_equal(zoff_device_alloc(rt, 64, &g), 0);
    assert_int_equal(zoff_device_alloc(rt, 64, &g2), 0);
    int a = -1, b = -1, u0 = -1, u1 = -1;
    assert_int_equal(zoff_add_param(rt, "a", 16, ZOFF_DTYPE_BF16, NULL, g, init, 0, &a), 0);
    assert_int_equal(zoff_add_param(rt, "b", 16, ZOFF_DTYPE_BF16, NULL, g2, init, 0, &b), 0);
    void *g3 = NULL;
    assert_int_equal(zoff_device_alloc(rt, 64, &g3), 0);
    int c0 = -1; /* streamed without init_master: zeros */
    assert_int_equal(zoff_add_param(rt, "c", 16, ZOFF_DTYPE_BF16, NULL, g3, NULL, 0, &c0), 0);
    assert_int_equal(zoff_add_unit(rt, "u0", &a, 1, &u0), 0);
    int ab[2] = {a, b};
    assert_int_equal(zoff_add_unit(rt, "u1", ab, 2, &u1), ZOFF_EINVAL); /* a in two units */
    e = zoff_last_error(rt);
    assert_non_null(strstr(e, "'a'"));
    assert_non_null(strstr(e, "'u0'"));
    assert_int_equal(zoff_add_unit(rt, "u0", &b, 1, NULL), ZOFF_EINVAL); /* name reused */
    assert_int_equal(zoff_fetch(rt, u0, NULL), ZOFF_ESTATE);             /* not finalized */
    assert_int_equal(zoff_fetch(NULL, 0, NULL), ZOFF_EINVAL);
    int bad_sched[1] = {7};
    assert_int_equal(zoff_set_schedule(rt, bad_sched, 1, NULL, 0), ZOFF_EINVAL);
    /* b streamed but in no unit */
    assert_int_equal(zoff_finalize(rt), ZOFF_EINVAL);
    assert_non_null(strstr(zoff_last_error(rt), "'b'"));
    int bc[2] = {b, c0};
    assert_int_equal(zoff_add_unit(rt, "u1", bc, 2, &u1), 0);
    assert_int_equal(zoff_finalize(rt), 0);
    float zero[16];
    memset(zero, 0xff, sizeof zero);
    assert_int_equal(zoff_get_master(rt, c0, zero), 0);
    for (int i = 0; i < 16; i++) assert_true(zero[i] == 0.0f);
    assert_int_equal(zoff_add_unit(rt, "late", &b, 1, NULL), ZOFF_ESTATE);
    void *pa = NULL;
    assert_int_equal(zoff_fetch(rt, u0, NULL), 0);
    assert_int_equal(zoff_param_ptr(rt, a, &pa), 0);
    assert_non_null(pa);
    assert_int_equal(zoff_release(rt, u0, NULL), 0);
    assert_int_equal(zoff_release(rt, u0, NULL), ZOFF_ESTATE);
    zoff_device_free(rt, g);
    zoff_destroy(rt);
    if (dir) {
        zt_rmtree(dir);
        free(dir);
    }
}

/* The DeepSpeed keys: offload_param.device cpu streams, buffer_count = prefetch_depth + 1,
 * buffer_size (elements) sets the slot; they survive a round trip through zoff env's JSON. */
static void test_config_keys(void **state)
{
    (void)state;
    zoff_config c;
    assert_int_equal(zoff_config_from_json_string(
                         &c, "{\"zero_optimization\": {\"offload_param\": {\"device\": \"cpu\", "
                             "\"buffer_count\": 4, \"buffer_size\": 1000000}}}"),
                     0);
    assert_int_equal(c.stream_params, 1);
    assert_int_equal(c.prefetch_depth, 3);
    assert_int_equal(c.stream_slot_bytes, 2000000);
    assert_int_equal(zoff_config_from_json_string(
                         &c, "{\"zoff\": {\"prefetch_depth\": 0, \"stream_slot_bytes\": 4096}}"),
                     0);
    assert_int_equal(c.stream_params, 0);
    assert_int_equal(c.prefetch_depth, 0);
    assert_int_equal(c.stream_slot_bytes, 4096);
    assert_int_equal(zoff_config_from_json_string(&c, "{\"zoff\": {\"prefetch_depth\": 65}}"),
                     ZOFF_ECONFIG);
    assert_non_null(strstr(zoff_last_error(NULL), "prefetch_depth"));
}

int main(int argc, char **argv)
{
    if (argc > 1) g_tier = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_keys),   cmocka_unit_test(test_errors_setup),
        cmocka_unit_test(test_bit_identical), cmocka_unit_test(test_bit_identical_fp16_errors),
        cmocka_unit_test(test_changed_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
