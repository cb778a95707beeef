/*
 * test_sim.c — the device interface (gpu/device.h) semantics on the sim backend: order of work
 * within a stream (copies and host functions), cross-stream waits through events, event
 * query/sync (never recorded, re-recorded), the default stream, busy ops (and that a busy
 * stream keeps its schedule under CPU load), capacity errors and
 * memory accounting, copy throttling per direction with one shared engine per direction,
 * free-waits-for-queued-work, range checks, host registrations, concurrent use from threads,
 * and that jitter turns a missing wait into a wrong result.
 *
 * Run again under ZOFF_SIM_JITTER=1/2/3 (random delays before every op: every test must still
 * pass, since it uses proper waits) and with ZOFF_DEVICE=cuda (label gpu: the device-generic
 * tests on a real GPU; sim-only tests skip there; the whole run skips without a GPU).
 * Timing tolerances: throttled copies must take >= 0.98x the ideal time (sleeps end after
 * their deadline) and <= 1.6x (best of 3 tries, so a busy machine does not fail the test).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "gpu/device.h"
#include "zt.h"

#define MS 1000000ull

/* Opens the device under test: sim with the given settings (ZOFF_DEVICE may turn it into
 * cuda). Skips the whole executable when the requested device is not there. */
static zdev *open_dev(size_t sim_bytes, double gbps, uint64_t jitter_seed)
{
    zdev_config cfg;
    zdev_config_default(&cfg);
    cfg.kind = ZOFF_DEVICE_SIM;
    cfg.sim_bytes = sim_bytes;
    cfg.sim_pcie_gbps = gbps;
    cfg.sim_jitter_seed = jitter_seed;
    zdev *d = NULL;
    zoff_status st = zdev_open(&cfg, &d);
    if (st == ZOFF_EUNSUPPORTED) zt_skip_all("device not available: %s", zoff__last_error_tls());
    assert_int_equal(st, 0);
    return d;
}

static int is_sim(const zdev *d)
{
    return zdev_kind(d) == ZOFF_DEVICE_SIM;
}

static double ms_since(uint64_t t0)
{
    return (double)(zoff__now_ns() - t0) / 1e6;
}

/* ---- order within a stream ------------------------------------------------------------------ */
#define NORDER      64
#define ORDER_BYTES 4096

typedef struct order_ctx {
    int seq[NORDER];
    int nseq;
    int bad; /* host functions that saw a copy not yet landed */
    uint8_t *src[NORDER];
    uint8_t *out[NORDER];
} order_ctx;

typedef struct order_step {
    order_ctx *c;
    int i;
} order_step;

static void order_fn(void *arg)
{
    order_step *st = arg;
    order_ctx *c = st->c;
    c->seq[c->nseq++] = st->i;
    /* The d2h of step i was queued before this function: it must have landed. */
    if (memcmp(c->out[st->i], c->src[st->i], ORDER_BYTES) != 0) c->bad++;
}

static void test_order_within_stream(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    zdev_stream *s;
    void *buf;
    assert_int_equal(zdev_stream_create(d, &s), 0);
    assert_int_equal(zdev_malloc(d, ORDER_BYTES, &buf), 0);
    order_ctx c;
    memset(&c, 0, sizeof c);
    order_step steps[NORDER];
    zt_rng r;
    zt_rng_seed(&r, 11);
    for (int i = 0; i < NORDER; i++) {
        c.src[i] = zt_malloc(ORDER_BYTES);
        c.out[i] = zt_malloc(ORDER_BYTES);
        zt_fill_bytes(&r, c.src[i], ORDER_BYTES);
        memset(c.out[i], 0, ORDER_BYTES);
    }
    /* One device buffer reused by every step: only in-order execution gives each out[i] its
     * own src[i]. */
    for (int i = 0; i < NORDER; i++) {
        steps[i].c = &c;
        steps[i].i = i;
        assert_int_equal(zdev_memcpy_h2d(d, buf, c.src[i], ORDER_BYTES, s), 0);
        assert_int_equal(zdev_memcpy_d2h(d, c.out[i], buf, ORDER_BYTES, s), 0);
        assert_int_equal(zdev_host_fn(d, s, order_fn, &steps[i]), 0);
    }
    assert_int_equal(zdev_stream_sync(d, s), 0);
    assert_int_equal(c.nseq, NORDER);
    for (int i = 0; i < NORDER; i++) {
        assert_int_equal(c.seq[i], i);
        assert_memory_equal(c.out[i], c.src[i], ORDER_BYTES);
    }
    assert_int_equal(c.bad, 0);
    for (int i = 0; i < NORDER; i++) {
        free(c.src[i]);
        free(c.out[i]);
    }
    zdev_free(d, buf);
    zdev_stream_destroy(d, s);
    zdev_close(d);
}

/* ---- cross-stream waits ------------------------------------------------------------------- */
typedef struct flag_ctx {
    volatile int flag;
    int seen;
} flag_ctx;

static void set_flag(void *arg)
{
    ((flag_ctx *)arg)->flag = 1;
}

static void read_flag(void *arg)
{
    flag_ctx *f = arg;
    f->seen = f->flag;
}

static void test_cross_stream_wait(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    zdev_stream *s1, *s2;
    zdev_event *e;
    assert_int_equal(zdev_stream_create(d, &s1), 0);
    assert_int_equal(zdev_stream_create(d, &s2), 0);
    assert_int_equal(zdev_event_create(d, &e), 0);
    const size_t bytes = 256 * ZOFF_KIB;
    void *x;
    assert_int_equal(zdev_malloc(d, bytes, &x), 0);
    uint8_t *pat = zt_malloc(bytes), *out = zt_malloc(bytes);
    zt_rng r;
    zt_rng_seed(&r, 5);
    for (int it = 0; it < 6; it++) {
        zt_fill_bytes(&r, pat, bytes);
        memset(out, 0, bytes);
        flag_ctx f = {0, -1};
        /* Producer: slow work, then the data. Consumer (s2, or the default stream on odd
         * iterations): waits for the event only. */
        zdev_stream *cons = (it & 1) ? NULL : s2;
        assert_int_equal(zdev_busy(d, s1, 15 * MS), 0);
        assert_int_equal(zdev_memcpy_h2d(d, x, pat, bytes, s1), 0);
        assert_int_equal(zdev_host_fn(d, s1, set_flag, &f), 0);
        assert_int_equal(zdev_event_record(d, e, s1), 0);
        assert_int_equal(zdev_stream_wait_event(d, cons, e), 0);
        assert_int_equal(zdev_host_fn(d, cons, read_flag, &f), 0);
        assert_int_equal(zdev_memcpy_d2h(d, out, x, bytes, cons), 0);
        assert_int_equal(zdev_stream_sync(d, cons), 0);
        assert_int_equal(f.seen, 1);
        assert_memory_equal(out, pat, bytes);
        assert_int_equal(zdev_stream_sync(d, s1), 0);
    }
    free(pat);
    free(out);
    zdev_free(d, x);
    zdev_event_destroy(d, e);
    zdev_stream_destroy(d, s1);
    zdev_stream_destroy(d, s2);
    zdev_close(d);
}

/* ---- events --------------------------------------------------------------------------------- */
static void test_event_query_sync(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    zdev_stream *s1, *s2;
    zdev_event *e;
    int done = -1;
    assert_int_equal(zdev_stream_create(d, &s1), 0);
    assert_int_equal(zdev_stream_create(d, &s2), 0);
    assert_int_equal(zdev_event_create(d, &e), 0);

    /* Never recorded: complete. */
    assert_int_equal(zdev_event_query(d, e, &done), 0);
    assert_int_equal(done, 1);
    assert_int_equal(zdev_event_sync(d, e), 0);

    /* Recorded behind 100 ms of work: not complete at once, complete after sync. */
    uint64_t t0 = zoff__now_ns();
    assert_int_equal(zdev_busy(d, s1, 100 * MS), 0);
    assert_int_equal(zdev_event_record(d, e, s1), 0);
    assert_int_equal(zdev_event_query(d, e, &done), 0);
    assert_int_equal(done, 0);
    assert_int_equal(zdev_event_sync(d, e), 0);
    assert_true(ms_since(t0) >= 99.0);
    assert_int_equal(zdev_event_query(d, e, &done), 0);
    assert_int_equal(done, 1);

    /* Re-recording replaces the capture: recorded on s1 behind 300 ms, then on idle s2. */
    assert_int_equal(zdev_busy(d, s1, 300 * MS), 0);
    assert_int_equal(zdev_event_record(d, e, s1), 0);
    assert_int_equal(zdev_event_record(d, e, s2), 0);
    t0 = zoff__now_ns();
    assert_int_equal(zdev_event_sync(d, e), 0);
    double waited = ms_since(t0);
    print_message("event_sync on the re-recorded event waited %.2f ms (s1 is busy for 300)\n",
                  waited);
    assert_true(waited < 200.0);
    assert_int_equal(zdev_stream_sync(d, s1), 0);

    /* A wait on a completed event does not block the stream. */
    assert_int_equal(zdev_stream_wait_event(d, s2, e), 0);
    assert_int_equal(zdev_stream_sync(d, s2), 0);

    zdev_event_destroy(d, e);
    zdev_stream_destroy(d, s1);
    zdev_stream_destroy(d, s2);
    zdev_close(d);
}

/* An event destroyed while its capture is still queued, and a stream destroyed while another
 * stream waits on it: both are allowed (CUDA releases the resources when the work is done). */
static void test_destroy_while_pending(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    zdev_stream *s1, *s2;
    zdev_event *e;
    assert_int_equal(zdev_stream_create(d, &s1), 0);
    assert_int_equal(zdev_stream_create(d, &s2), 0);
    assert_int_equal(zdev_event_create(d, &e), 0);
    flag_ctx f = {0, -1};
    assert_int_equal(zdev_busy(d, s1, 20 * MS), 0);
    assert_int_equal(zdev_host_fn(d, s1, set_flag, &f), 0);
    assert_int_equal(zdev_event_record(d, e, s1), 0);
    assert_int_equal(zdev_stream_wait_event(d, s2, e), 0);
    assert_int_equal(zdev_host_fn(d, s2, read_flag, &f), 0);
    zdev_event_destroy(d, e);
    zdev_stream_destroy(d, s1);
    assert_int_equal(zdev_stream_sync(d, s2), 0);
    assert_int_equal(f.seen, 1);
    zdev_stream_destroy(d, s2);
    zdev_close(d);
}

/* ---- busy op, default stream ------------------------------------------------------------------
 */
static void test_busy_and_default_stream(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    uint64_t t0 = zoff__now_ns();
    assert_int_equal(zdev_busy(d, NULL, 40 * MS), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    double ms = ms_since(t0);
    print_message("busy(40 ms) on the default stream took %.2f ms\n", ms);
    assert_true(ms >= 39.5);
    assert_true(ms < 1000.0);

    /* Copies on the default stream. */
    uint32_t in[1024], out[1024];
    for (int i = 0; i < 1024; i++) in[i] = 0x9e3779b9u * (uint32_t)i;
    void *x;
    assert_int_equal(zdev_malloc(d, sizeof in, &x), 0);
    assert_int_equal(zdev_memcpy_h2d(d, x, in, sizeof in, NULL), 0);
    assert_int_equal(zdev_memcpy_d2h(d, out, x, sizeof out, NULL), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    assert_memory_equal(in, out, sizeof in);
    zdev_free(d, x);
    zdev_close(d);
}

/* ---- busy ops keep a busy stream's schedule (sim) -------------------------------------------
 * Back to back, N busy ops never end before N x ns (lateness is made up, never more), and the
 * whole run overshoots N x ns by about one late wake, not N of them: best of 3 tries within
 * 2 ms, quiet and with hog threads on every core (without the schedule 30 sleeps of 4 ms
 * overshoot by 2.3-3.9 ms on this machine: timer slack, wake latency and the worker's time
 * between ops add up). An idle stream starts again without credit: a busy op queued after the
 * stream drained takes its full time. */
#define BUSY_N  30
#define BUSY_NS (4 * MS)

typedef struct hog_ctx {
    volatile int stop;
    volatile uint64_t sink;
} hog_ctx;

static void *hog_main(void *arg)
{
    hog_ctx *h = arg;
    uint64_t x = 1;
    while (!h->stop)
        for (int i = 0; i < 100000; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    h->sink = x;
    return NULL;
}

static void stamp_now(void *arg)
{
    *(uint64_t *)arg = zoff__now_ns();
}

/* N busy ops queued behind a gate (a wait on a 20 ms busy op of gate stream g), so that all of
 * them are queued before the first runs even when the host thread is preempted; timed from the
 * gate's opening (a host function in stream order). */
static double busy_run_ms(zdev *d, zdev_stream *s, zdev_stream *g, zdev_event *e)
{
    uint64_t t0 = 0;
    assert_int_equal(zdev_busy(d, g, 20 * MS), 0);
    assert_int_equal(zdev_event_record(d, e, g), 0);
    assert_int_equal(zdev_stream_wait_event(d, s, e), 0);
    assert_int_equal(zdev_host_fn(d, s, stamp_now, &t0), 0);
    for (int i = 0; i < BUSY_N; i++) assert_int_equal(zdev_busy(d, s, BUSY_NS), 0);
    assert_int_equal(zdev_stream_sync(d, s), 0);
    return ms_since(t0);
}

static void test_busy_keeps_schedule(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    if (!is_sim(d) || getenv("ZOFF_SIM_JITTER")) { /* jitter sleeps restart the schedule */
        zdev_close(d);
        skip();
    }
    zdev_stream *s, *g;
    zdev_event *e;
    assert_int_equal(zdev_stream_create(d, &s), 0);
    assert_int_equal(zdev_stream_create(d, &g), 0);
    assert_int_equal(zdev_event_create(d, &e), 0);
    const double nominal = (double)BUSY_N * (double)BUSY_NS / 1e6;
    double quiet = 1e30;
    for (int r = 0; r < 3; r++) {
        double ms = busy_run_ms(d, s, g, e);
        assert_true(ms >= 0.999 * nominal); /* every try */
        if (ms < quiet) quiet = ms;
    }

    int ncpu = zoff__ncpus();
    int nhog = ncpu + 1;
    pthread_t th[64];
    hog_ctx h = {0};
    if (nhog > 64) nhog = 64;
    for (int i = 0; i < nhog; i++) assert_int_equal(pthread_create(&th[i], NULL, hog_main, &h), 0);
    double loaded = 1e30;
    for (int r = 0; r < 3; r++) {
        double ms = busy_run_ms(d, s, g, e);
        assert_true(ms >= 0.999 * nominal); /* every try */
        if (ms < loaded) loaded = ms;
    }
    h.stop = 1;
    for (int i = 0; i < nhog; i++) pthread_join(th[i], NULL);
    print_message("%d x busy(%.0f ms): nominal %.1f ms, quiet %.2f ms, with %d hog threads %.2f "
                  "ms (best of 3 each)\n",
                  BUSY_N, (double)BUSY_NS / 1e6, nominal, quiet, nhog, loaded);
    assert_true(quiet <= nominal + 2.0);
    assert_true(loaded <= nominal + 2.0);

    /* idle, then one op: no credit from the runs above */
    zoff__sleep_ns(10 * MS);
    uint64_t t0 = zoff__now_ns();
    assert_int_equal(zdev_busy(d, s, 10 * MS), 0);
    assert_int_equal(zdev_stream_sync(d, s), 0);
    assert_true(ms_since(t0) >= 9.99);
    zdev_event_destroy(d, e);
    zdev_stream_destroy(d, g);
    zdev_stream_destroy(d, s);
    zdev_close(d);
}

/* ---- capacity and accounting (sim) ------------------------------------------------------------
 */
static void test_capacity(void **state)
{
    (void)state;
    zdev *d = open_dev(ZOFF_MIB, 0, 0);
    if (!is_sim(d)) {
        zdev_close(d);
        skip();
    }
    void *a, *b;
    size_t fr, tot;
    assert_int_equal(zdev_malloc(d, 768 * ZOFF_KIB, &a), 0);
    assert_true(ZOFF_IS_ALIGNED(a, 256));
    assert_int_equal(zdev_mem_info(d, &fr, &tot), 0);
    assert_int_equal(tot, ZOFF_MIB);
    assert_int_equal(fr, 256 * ZOFF_KIB);
    assert_int_equal(zdev_malloc(d, 512 * ZOFF_KIB, &b), ZOFF_EDEVMEM);
    const char *msg = zoff__last_error_tls();
    print_message("capacity error: %s\n", msg);
    assert_non_null(strstr(msg, "asked 524288"));
    assert_non_null(strstr(msg, "free 262144"));
    assert_non_null(strstr(msg, "total 1048576"));
    zdev_stats st;
    zdev_get_stats(d, &st);
    assert_int_equal(st.mem_used, 768 * ZOFF_KIB);
    assert_int_equal(st.mem_total, ZOFF_MIB);
    zdev_free(d, a);
    assert_int_equal(zdev_malloc(d, ZOFF_MIB, &b), 0); /* exactly the capacity */
    zdev_get_stats(d, &st);
    assert_int_equal(st.mem_used, ZOFF_MIB);
    assert_int_equal(st.mem_peak, ZOFF_MIB);
    zdev_free(d, b);
    zdev_get_stats(d, &st);
    assert_int_equal(st.mem_used, 0);
    /* Zero bytes: success and NULL; freeing NULL and unknown pointers is harmless. */
    assert_int_equal(zdev_malloc(d, 0, &a), 0);
    assert_null(a);
    zdev_free(d, NULL);
    int local;
    zdev_free(d, &local); /* warned and ignored */
    zdev_close(d);

    /* ZOFF_SIM_GPU_BYTES overrides the configured capacity. */
    setenv("ZOFF_SIM_GPU_BYTES", "2M", 1);
    d = open_dev(ZOFF_MIB, 0, 0);
    assert_int_equal(zdev_mem_info(d, &fr, &tot), 0);
    assert_int_equal(tot, 2 * ZOFF_MIB);
    zdev_close(d);
    unsetenv("ZOFF_SIM_GPU_BYTES");
}

/* Device memory starts poisoned (NaN in every dtype), so reading uninitialised memory shows. */
static void test_poison(void **state)
{
    (void)state;
    zdev *d = open_dev(ZOFF_MIB, 0, 0);
    if (!is_sim(d)) {
        zdev_close(d);
        skip();
    }
    float *x;
    assert_int_equal(zdev_malloc(d, 64 * sizeof(float), (void **)&x), 0);
    for (int i = 0; i < 64; i++) assert_true(x[i] != x[i]); /* NaN */
    zdev_free(d, x);
    zdev_close(d);
}

/* ---- copy throttling (sim) ----------------------------------------------------------------------
 */
/* Time of running `fn` (best of 3). */
typedef struct thr_ctx {
    zdev *d;
    zdev_stream *s1, *s2;
    void *dev1, *dev2;
    uint8_t *host1, *host2;
    size_t bytes;
} thr_ctx;

static void one_h2d(thr_ctx *c)
{
    assert_int_equal(zdev_memcpy_h2d(c->d, c->dev1, c->host1, c->bytes, c->s1), 0);
    assert_int_equal(zdev_stream_sync(c->d, c->s1), 0);
}

static void two_h2d(thr_ctx *c)
{
    assert_int_equal(zdev_memcpy_h2d(c->d, c->dev1, c->host1, c->bytes, c->s1), 0);
    assert_int_equal(zdev_memcpy_h2d(c->d, c->dev2, c->host2, c->bytes, c->s2), 0);
    assert_int_equal(zdev_stream_sync(c->d, c->s1), 0);
    assert_int_equal(zdev_stream_sync(c->d, c->s2), 0);
}

static void h2d_and_d2h(thr_ctx *c)
{
    assert_int_equal(zdev_memcpy_h2d(c->d, c->dev1, c->host1, c->bytes, c->s1), 0);
    assert_int_equal(zdev_memcpy_d2h(c->d, c->host2, c->dev2, c->bytes, c->s2), 0);
    assert_int_equal(zdev_stream_sync(c->d, c->s1), 0);
    assert_int_equal(zdev_stream_sync(c->d, c->s2), 0);
}

static double best_ms(void (*fn)(thr_ctx *), thr_ctx *c, double *worst)
{
    double best = 1e30;
    *worst = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = zoff__now_ns();
        fn(c);
        double ms = ms_since(t0);
        if (ms < best) best = ms;
        if (ms > *worst) *worst = ms;
    }
    return best;
}

static void test_copy_throttle(void **state)
{
    (void)state;
    const double gbps = 0.25;
    zdev *d = open_dev(64 * ZOFF_MIB, gbps, 0);
    if (!is_sim(d)) {
        zdev_close(d);
        skip();
    }
    thr_ctx c = {.d = d, .bytes = 8 * ZOFF_MIB};
    assert_int_equal(zdev_stream_create(d, &c.s1), 0);
    assert_int_equal(zdev_stream_create(d, &c.s2), 0);
    assert_int_equal(zdev_malloc(d, c.bytes, &c.dev1), 0);
    assert_int_equal(zdev_malloc(d, c.bytes, &c.dev2), 0);
    c.host1 = zt_malloc(c.bytes);
    c.host2 = zt_malloc(c.bytes);
    memset(c.host1, 1, c.bytes);
    memset(c.host2, 2, c.bytes);
    assert_int_equal(zdev_host_register(d, c.host1, c.bytes), 0);
    assert_int_equal(zdev_host_register(d, c.host2, c.bytes), 0);

    const double ideal_ms = (double)c.bytes / gbps / 1e6; /* 33.6 ms */
    double w1, w2, w3;
    double t1 = best_ms(one_h2d, &c, &w1);
    double t2 = best_ms(two_h2d, &c, &w2);
    double t3 = best_ms(h2d_and_d2h, &c, &w3);
    print_message("ideal %.1f ms | one H2D %.1f ms (%.2fx) | two H2D on two streams %.1f ms "
                  "(%.2fx) | H2D || D2H %.1f ms (%.2fx)\n",
                  ideal_ms, t1, t1 / ideal_ms, t2, t2 / ideal_ms, t3, t3 / ideal_ms);
    /* Lower bounds hold on every try (the engine never runs faster than its bandwidth). */
    assert_true(t1 >= 0.98 * ideal_ms);
    assert_true(t2 >= 0.98 * 2 * ideal_ms); /* one engine per direction: shared */
    assert_true(t3 >= 0.98 * ideal_ms);
    /* Upper bounds on the best try. */
    assert_true(t1 <= 1.6 * ideal_ms);
    assert_true(t2 <= 1.6 * 2 * ideal_ms);
    assert_true(t3 <= 1.6 * ideal_ms); /* the two directions overlap (serial would be 2x) */

    zdev_stats st;
    zdev_get_stats(d, &st);
    assert_int_equal(st.h2d_bytes, 12 * (uint64_t)c.bytes); /* 3 tries x (1 + 2 + 1) */
    assert_int_equal(st.d2h_bytes, 3 * (uint64_t)c.bytes);
    assert_true((double)st.h2d_ns / 1e6 >= 0.98 * 12 * ideal_ms);
    assert_true((double)st.d2h_ns / 1e6 >= 0.98 * 3 * ideal_ms);
    assert_int_equal(st.host_registered_bytes, 2 * c.bytes);

    zdev_host_unregister(d, c.host1);
    zdev_host_unregister(d, c.host2);
    free(c.host1);
    free(c.host2);
    zdev_free(d, c.dev1);
    zdev_free(d, c.dev2);
    zdev_stream_destroy(d, c.s1);
    zdev_stream_destroy(d, c.s2);
    zdev_close(d);
}

/* zdev_free waits for queued work that may still use the memory (like cudaFree). */
static void test_free_waits(void **state)
{
    (void)state;
    const double gbps = 0.25;
    zdev *d = open_dev(64 * ZOFF_MIB, gbps, 0);
    if (!is_sim(d)) {
        zdev_close(d);
        skip();
    }
    const size_t bytes = 4 * ZOFF_MIB;
    zdev_stream *s;
    void *x;
    uint8_t *h = zt_malloc(bytes);
    memset(h, 7, bytes);
    assert_int_equal(zdev_stream_create(d, &s), 0);
    assert_int_equal(zdev_malloc(d, bytes, &x), 0);
    uint64_t t0 = zoff__now_ns();
    assert_int_equal(zdev_memcpy_h2d(d, x, h, bytes, s), 0);
    zdev_free(d, x);
    double ms = ms_since(t0);
    assert_true(ms >= 0.98 * (double)bytes / gbps / 1e6);
    free(h);
    zdev_stream_destroy(d, s);
    zdev_close(d);
}

/* ---- argument and range checks (sim) -----------------------------------------------------------
 */
static void test_range_checks(void **state)
{
    (void)state;
    zdev *d = open_dev(ZOFF_MIB, 0, 0);
    if (!is_sim(d)) {
        zdev_close(d);
        skip();
    }
    zdev *other = open_dev(ZOFF_MIB, 0, 0);
    zdev_stream *foreign;
    assert_int_equal(zdev_stream_create(other, &foreign), 0);
    uint8_t host[8192];
    memset(host, 0, sizeof host);
    void *x;
    assert_int_equal(zdev_malloc(d, 4096, &x), 0);
    /* Host pointer as device destination, read past the end, kernel past the end. */
    assert_int_equal(zdev_memcpy_h2d(d, host, host + 4096, 4096, NULL), ZOFF_EINVAL);
    assert_non_null(strstr(zoff__last_error_tls(), "not inside a device allocation"));
    assert_int_equal(zdev_memcpy_d2h(d, host, x, 4097, NULL), ZOFF_EINVAL);
    assert_int_equal(zdev_memcpy_d2h(d, host, (uint8_t *)x + 1, 4096, NULL), ZOFF_EINVAL);
    assert_int_equal(zdev_fill(d, x, ZOFF_DTYPE_F32, 1025, 0.0f, NULL), ZOFF_EINVAL);
    assert_int_equal(zdev_fill(d, x, ZOFF_DTYPE_F32, 1024, 0.0f, NULL), 0);
    assert_int_equal(zdev_fill(d, x, (zoff_dtype)7, 16, 0.0f, NULL), ZOFF_EINVAL);
    assert_int_equal(zdev_memcpy_d2d(d, x, (uint8_t *)x + 2048, 2048, NULL), 0);
    /* A stream of another device. */
    assert_int_equal(zdev_memcpy_h2d(d, x, host, 16, foreign), ZOFF_EINVAL);
    assert_non_null(strstr(zoff__last_error_tls(), "not a stream of this device"));
    /* Zero-length work is a no-op. */
    assert_int_equal(zdev_memcpy_h2d(d, x, host, 0, NULL), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    /* Host registrations: overlap refused, unregister of an unknown pointer ignored. */
    assert_int_equal(zdev_host_register(d, host, 4096), 0);
    assert_int_equal(zdev_host_register(d, host + 1024, 1024), ZOFF_EINVAL);
    assert_int_equal(zdev_host_register(d, host + 4096, 4096), 0);
    zdev_stats st;
    zdev_get_stats(d, &st);
    assert_int_equal(st.host_registered_bytes, 8192);
    zdev_host_unregister(d, host + 100);
    zdev_host_unregister(d, host);
    zdev_get_stats(d, &st);
    assert_int_equal(st.host_registered_bytes, 4096);
    /* zdev_close releases the leftover registration and allocation. */
    zdev_stream_destroy(other, foreign);
    zdev_close(other);
    zdev_close(d);
    /* sim has no PCI bus id. */
    d = open_dev(ZOFF_MIB, 0, 0);
    char bus[32];
    assert_int_equal(zdev_pci_bus_id(d, bus, sizeof bus), ZOFF_EUNSUPPORTED);
    zdev_close(d);
}

/* ---- threads ------------------------------------------------------------------------------------
 */
typedef struct thread_arg {
    zdev *d;
    int id;
    int errors;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    zdev_stream *s;
    void *x;
    uint32_t in[2048], out[2048];
    if (zdev_stream_create(a->d, &s) != 0) {
        a->errors++;
        return NULL;
    }
    for (int it = 0; it < 40; it++) {
        for (int i = 0; i < 2048; i++) in[i] = (uint32_t)(a->id * 1000003 + it * 7919 + i);
        if (zdev_malloc(a->d, sizeof in, &x) != 0) {
            a->errors++;
            break;
        }
        int e = zdev_memcpy_h2d(a->d, x, in, sizeof in, s) |
                zdev_memcpy_d2h(a->d, out, x, sizeof out, s) | zdev_stream_sync(a->d, s);
        if (e != 0 || memcmp(in, out, sizeof in) != 0) a->errors++;
        zdev_free(a->d, x);
    }
    zdev_stream_destroy(a->d, s);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    zdev *d = open_dev(64 * ZOFF_MIB, 0, 0);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){d, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    zdev_stats st;
    zdev_get_stats(d, &st);
    assert_int_equal(st.mem_used, 0);
    assert_int_equal(st.h2d_bytes, 4 * 40 * 2048 * sizeof(uint32_t));
    zdev_close(d);
}

/* ---- jitter exposes a missing wait (sim)
 * ---------------------------------------------------------- */
static void test_jitter_exposes_missing_wait(void **state)
{
    (void)state;
    zdev *d = open_dev(ZOFF_MIB, 0, 7);
    if (!is_sim(d)) {
        zdev_close(d);
        skip();
    }
    zdev_stream *s1, *s2;
    zdev_event *e;
    void *x;
    uint32_t old_v[1024], new_v[1024], out[1024];
    for (int i = 0; i < 1024; i++) {
        old_v[i] = 0x11111111u;
        new_v[i] = 0x22222222u;
    }
    assert_int_equal(zdev_stream_create(d, &s1), 0);
    assert_int_equal(zdev_stream_create(d, &s2), 0);
    assert_int_equal(zdev_event_create(d, &e), 0);
    assert_int_equal(zdev_malloc(d, sizeof old_v, &x), 0);
    int stale_without_wait = 0, stale_with_wait = 0;
    for (int trial = 0; trial < 80; trial++) {
        int with_wait = trial & 1;
        assert_int_equal(zdev_memcpy_h2d(d, x, old_v, sizeof old_v, s1), 0);
        assert_int_equal(zdev_stream_sync(d, s1), 0);
        assert_int_equal(zdev_memcpy_h2d(d, x, new_v, sizeof new_v, s1), 0);
        if (with_wait) {
            assert_int_equal(zdev_event_record(d, e, s1), 0);
            assert_int_equal(zdev_stream_wait_event(d, s2, e), 0);
        }
        assert_int_equal(zdev_memcpy_d2h(d, out, x, sizeof out, s2), 0);
        assert_int_equal(zdev_stream_sync(d, s2), 0);
        assert_int_equal(zdev_stream_sync(d, s1), 0);
        if (memcmp(out, new_v, sizeof out) != 0) {
            if (with_wait)
                stale_with_wait++;
            else
                stale_without_wait++;
        }
    }
    print_message("jitter: %d/40 reads without a wait saw stale data, %d/40 with the wait\n",
                  stale_without_wait, stale_with_wait);
    assert_int_equal(stale_with_wait, 0);
    assert_true(stale_without_wait > 0);
    zdev_free(d, x);
    zdev_event_destroy(d, e);
    zdev_stream_destroy(d, s1);
    zdev_stream_destroy(d, s2);
    zdev_close(d);
}

/* ---- environment
 * ---------------------------------------------------------------------------------- */
static void test_env_overrides(void **state)
{
    (void)state;
    const char *saved = getenv("ZOFF_DEVICE");
    char keep[32] = "";
    if (saved) snprintf(keep, sizeof keep, "%s", saved);
    zdev *d = NULL;
    setenv("ZOFF_DEVICE", "tpu", 1);
    assert_int_equal(zdev_open(NULL, &d), ZOFF_ECONFIG);
    assert_non_null(strstr(zoff__last_error_tls(), "ZOFF_DEVICE"));
    setenv("ZOFF_DEVICE", "sim", 1);
    setenv("ZOFF_SIM_PCIE_GBPS", "fast", 1);
    assert_int_equal(zdev_open(NULL, &d), ZOFF_ECONFIG);
    unsetenv("ZOFF_SIM_PCIE_GBPS");
    assert_int_equal(zdev_open(NULL, &d), 0);
    assert_int_equal(zdev_kind(d), ZOFF_DEVICE_SIM);
    assert_string_equal(zdev_name(d), "sim");
    assert_int_equal(zdev_host_accessible(d), 1);
    zdev_close(d);
    /* cuda: opens only with the backend built and a GPU present; otherwise a clear error. */
    setenv("ZOFF_DEVICE", "cuda", 1);
    zoff_status st = zdev_open(NULL, &d);
    if (st == 0) {
        assert_int_equal(zdev_kind(d), ZOFF_DEVICE_CUDA);
        assert_int_equal(zdev_host_accessible(d), 0);
        char bus[32];
        assert_int_equal(zdev_pci_bus_id(d, bus, sizeof bus), 0);
        zdev_close(d);
    } else {
        assert_int_equal(st, ZOFF_EUNSUPPORTED);
        print_message("cuda: %s\n", zoff__last_error_tls());
    }
    if (keep[0])
        setenv("ZOFF_DEVICE", keep, 1);
    else
        unsetenv("ZOFF_DEVICE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_within_stream),
        cmocka_unit_test(test_cross_stream_wait),
        cmocka_unit_test(test_event_query_sync),
        cmocka_unit_test(test_destroy_while_pending),
        cmocka_unit_test(test_busy_and_default_stream),
        cmocka_unit_test(test_busy_keeps_schedule),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_poison),
        cmocka_unit_test(test_copy_throttle),
        cmocka_unit_test(test_free_waits),
        cmocka_unit_test(test_range_checks),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_jitter_exposes_missing_wait),
        cmocka_unit_test(test_env_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
