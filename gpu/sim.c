/*
 * sim.c — the `sim` device backend: a host-memory "GPU" faithful enough that every CPU-only test
 * exercises the same ordering rules as CUDA.
 *
 *  - Device memory is host memory (256-byte aligned, poisoned with 0xff = NaN in every dtype)
 *    counted against a capacity (sim_bytes); ZOFF_EDEVMEM names asked / free / total.
 *  - One worker thread per stream executes that stream's queue in order; the default stream
 *    (NULL) is an internal stream like any other (no implicit synchronisation between streams,
 *    as with CUDA non-blocking streams).
 *  - Events have CUDA semantics: record captures the stream's current tail (a marker op queued
 *    on it), wait_event makes later work of a stream wait for the captured marker, query/sync
 *    look at it; a never-recorded event is complete; re-recording replaces the capture.
 *  - Copies H2D and D2H go through one copy engine per direction shared by all streams, throttled
 *    to sim_pcie_gbps (concurrent copies of one direction share the bandwidth; the two directions
 *    overlap). D2D copies and kernels run at host speed in the worker.
 *  - busy(ns) sleeps in the worker (stand-in GPU compute); host_fn runs in stream order. A GPU
 *    runs a stream's queued kernels back to back, but a sleeping worker wakes late, and loses the
 *    CPU between ops, when the host's cores are busy (milliseconds under load). So while a stream
 *    stays busy (each op queued before the previous one ended, no blocking wait in between) it
 *    keeps a schedule: each op starts, on paper, where the previous one ended on paper (a busy op
 *    after ns, any other op after its real duration), and a busy op sleeps until its paper end.
 *    Lateness is made up by the next busy ops; a run of ops never ends before the sum of their
 *    times. A stream that goes idle, blocks on an event or sleeps a jitter delay starts a new
 *    schedule at the current time.
 *  - Jitter (sim_jitter_seed != 0): before every op a worker sleeps a random 0..1 ms half of the
 *    time, so work that lacks a wait shows up as a wrong result in tests.
 *  - Copies and kernels check that their device side lies inside a live allocation (what CUDA
 *    would report as an invalid argument or a fault).
 * Owns: streams, their worker threads and queues, events and their markers, device memory.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/backend.h"
#include "gpu/elem.h"

#define SIM_ALIGN         256
#define SIM_JITTER_MAX_NS 1000000ull

typedef enum sim_op_kind {
    OP_COPY,
    OP_HOST_FN,
    OP_CAST,
    OP_WIDEN,
    OP_SCALE,
    OP_FILL,
    OP_BUSY,
    OP_MARK,
    OP_WAIT,
} sim_op_kind;

/* The capture of an event record: done once the stream reached it. Reference counted (the
 * event, the MARK op, WAIT ops, event_sync callers); guarded by the device mutex. */
typedef struct sim_marker {
    int refs;
    int done;
} sim_marker;

typedef struct sim_op {
    struct sim_op *next;
    sim_op_kind kind;
    zdev_dir dir;       /* COPY */
    void *dst;          /* COPY: destination; kernels: the device array */
    const void *src;    /* COPY: source; CAST: fp32 input */
    size_t bytes;       /* COPY */
    size_t n;           /* kernels: elements */
    zoff_dtype dtype;   /* kernels */
    float value;        /* SCALE: alpha; FILL: value */
    uint64_t ns;        /* BUSY */
    uint64_t enq_ns;    /* when it was queued */
    void (*fn)(void *); /* HOST_FN */
    void *arg;
    sim_marker *marker; /* MARK, WAIT */
} sim_op;

typedef struct sim_dev sim_dev;

struct zdev_stream {
    sim_dev *dev;
    int index;
    pthread_t thread;
    pthread_cond_t cv; /* work queued or stop asked */
    sim_op *head, *tail;
    uint64_t submitted, completed;
    int stop;
    uint64_t rng;      /* jitter state, used by the worker only */
    uint64_t vclock;   /* where the previous op ended on the schedule; 0: none (worker only) */
    uint64_t last_end; /* when the worker finished its previous op (worker only) */
    struct zdev_stream *next;
};

struct zdev_event {
    sim_marker *m; /* NULL: never recorded */
};

struct sim_dev {
    zdev base;
    pthread_mutex_t mu;     /* queues, counters, markers, stream list, copy engines */
    pthread_cond_t done_cv; /* broadcast whenever an op completes */
    struct zdev_stream *streams;
    struct zdev_stream *def; /* the default stream (NULL handle) */
    int list_users;          /* device-wide syncs walking `streams`: the list must not change */
    int next_index;
    uint64_t engine_free_ns[2]; /* H2D, D2H: when the engine finishes its reserved copies */
};

static sim_dev *sim_of(zdev *d)
{
    return (sim_dev *)d;
}

/* ---- jitter ---------------------------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Returns 1 when it slept. */
static int jitter(struct zdev_stream *s)
{
    if (!s->dev->base.cfg.sim_jitter_seed) return 0;
    double u = (double)(splitmix64(&s->rng) >> 11) * 0x1.0p-53; /* [0, 1) */
    if (u < 0.5) return 0;
    zoff__sleep_ns((uint64_t)((u - 0.5) * 2.0 * (double)SIM_JITTER_MAX_NS));
    return 1;
}

/* ---- markers ----------------------------------------------------------------------------------
 */
static void marker_unref_locked(sim_marker *m)
{
    if (m && --m->refs == 0) free(m);
}

/* ---- op execution -----------------------------------------------------------------------------
 */
static void sleep_until(uint64_t t_ns)
{
    uint64_t now = zoff__now_ns();
    if (t_ns > now) zoff__sleep_ns(t_ns - now);
}

static void run_copy(sim_dev *sd, const sim_op *op)
{
    double gbps = sd->base.cfg.sim_pcie_gbps;
    if (op->dir == ZDEV_D2D) {
        memcpy(op->dst, op->src, op->bytes);
        return;
    }
    uint64_t start, dur_ns = 0;
    if (gbps > 0) {
        /* Reserve the engine of this direction: copies of all streams queue up on it. */
        dur_ns = (uint64_t)((double)op->bytes / gbps); /* 1 GB/s = 1 byte/ns */
        pthread_mutex_lock(&sd->mu);
        uint64_t now = zoff__now_ns();
        start = ZOFF_MAX(now, sd->engine_free_ns[op->dir]);
        sd->engine_free_ns[op->dir] = start + dur_ns;
        pthread_mutex_unlock(&sd->mu);
        sleep_until(start);
    } else {
        start = zoff__now_ns();
    }
    memcpy(op->dst, op->src, op->bytes);
    if (gbps > 0) sleep_until(start + dur_ns);
    uint64_t end = zoff__now_ns();
    if (gbps > 0) {
        pthread_mutex_lock(&sd->mu);
        if (end > sd->engine_free_ns[op->dir]) sd->engine_free_ns[op->dir] = end;
        pthread_mutex_unlock(&sd->mu);
    }
    zdev__account_copy(&sd->base, op->dir, op->bytes, end - start);
}

/* A busy op on stream s, which starts at s->vclock on the schedule: sleeps until ns later. */
static void run_busy(struct zdev_stream *s, uint64_t ns)
{
    const uint64_t end = s->vclock + ns;
    sleep_until(end);
    s->vclock = end;
}

static void run_op(sim_dev *sd, struct zdev_stream *s, const sim_op *op)
{
    switch (op->kind) {
    case OP_COPY:
        run_copy(sd, op);
        break;
    case OP_HOST_FN:
        op->fn(op->arg);
        break;
    case OP_CAST:
        for (size_t i = 0; i < op->n; i++)
            zdev_elem_cast(op->dst, op->dtype, (const float *)op->src, i);
        break;
    case OP_WIDEN:
        for (size_t i = 0; i < op->n; i++)
            zdev_elem_widen((float *)op->dst, op->src, (int)op->dtype, i);
        break;
    case OP_SCALE:
        for (size_t i = 0; i < op->n; i++) zdev_elem_scale(op->dst, op->dtype, i, op->value);
        break;
    case OP_FILL:
        for (size_t i = 0; i < op->n; i++) zdev_elem_fill(op->dst, op->dtype, i, op->value);
        break;
    case OP_BUSY:
        run_busy(s, op->ns);
        break;
    case OP_MARK: /* completes in the worker's bookkeeping below */
        break;
    case OP_WAIT:
        pthread_mutex_lock(&sd->mu);
        if (!op->marker->done) s->vclock = 0; /* blocked: the stream's schedule restarts */
        while (!op->marker->done) pthread_cond_wait(&sd->done_cv, &sd->mu);
        pthread_mutex_unlock(&sd->mu);
        break;
    }
}

static void *worker_main(void *arg)
{
    struct zdev_stream *s = arg;
    sim_dev *sd = s->dev;
    pthread_mutex_lock(&sd->mu);
    for (;;) {
        while (!s->head && !s->stop) pthread_cond_wait(&s->cv, &sd->mu);
        if (!s->head) break; /* stop asked and nothing left */
        sim_op *op = s->head;
        s->head = op->next;
        if (!s->head) s->tail = NULL;
        pthread_mutex_unlock(&sd->mu);

        if (op->enq_ns > s->last_end) s->vclock = 0; /* the stream was idle */
        if (jitter(s)) s->vclock = 0;
        const uint64_t t0 = zoff__now_ns();
        const uint64_t v0 = s->vclock ? s->vclock : t0; /* <= t0: paper ends never pass real ones */
        s->vclock = v0;
        run_op(sd, s, op);
        s->last_end = zoff__now_ns();
        if (op->kind != OP_BUSY && s->vclock) s->vclock = v0 + (s->last_end - t0);

        pthread_mutex_lock(&sd->mu);
        if (op->kind == OP_MARK) op->marker->done = 1;
        if (op->kind == OP_MARK || op->kind == OP_WAIT) marker_unref_locked(op->marker);
        s->completed++;
        pthread_cond_broadcast(&sd->done_cv);
        free(op);
    }
    pthread_mutex_unlock(&sd->mu);
    return NULL;
}

/* ---- queues -----------------------------------------------------------------------------------
 */
/* Resolves a stream handle (NULL: default) and checks it belongs to this device. */
static struct zdev_stream *stream_locked(sim_dev *sd, zdev_stream *h)
{
    if (!h) return sd->def;
    for (struct zdev_stream *s = sd->streams; s; s = s->next)
        if (s == h) return s;
    return NULL;
}

static void enqueue_locked(struct zdev_stream *s, sim_op *op)
{
    op->next = NULL;
    op->enq_ns = zoff__now_ns();
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    s->submitted++;
    pthread_cond_signal(&s->cv);
}

/* Queues op on stream h; frees op on error. */
static zoff_status enqueue(sim_dev *sd, zdev_stream *h, sim_op *op)
{
    pthread_mutex_lock(&sd->mu);
    struct zdev_stream *s = stream_locked(sd, h);
    if (s) enqueue_locked(s, op);
    pthread_mutex_unlock(&sd->mu);
    if (!s) {
        free(op);
        return zoff__err(ZOFF_EINVAL, "sim: stream %p is not a stream of this device", (void *)h);
    }
    return 0;
}

static sim_op *op_new(sim_op_kind kind)
{
    sim_op *op = calloc(1, sizeof *op);
    if (op)
        op->kind = kind;
    else
        zoff__err(-ENOMEM, "sim: out of host memory queueing an op");
    return op;
}

/* Waits until s completed everything queued on it so far (mu held). */
static void drain_locked(sim_dev *sd, struct zdev_stream *s)
{
    uint64_t target = s->submitted;
    while (s->completed < target) pthread_cond_wait(&sd->done_cv, &sd->mu);
}

/* Waits until every stream completed what was queued before the call (cudaFree semantics). */
static void sync_all(sim_dev *sd)
{
    pthread_mutex_lock(&sd->mu);
    sd->list_users++;
    for (struct zdev_stream *s = sd->streams; s; s = s->next) drain_locked(sd, s);
    sd->list_users--;
    pthread_cond_broadcast(&sd->done_cv);
    pthread_mutex_unlock(&sd->mu);
}

/* ---- streams ----------------------------------------------------------------------------------
 */
static zoff_status sim_stream_new(sim_dev *sd, struct zdev_stream **out)
{
    struct zdev_stream *s = calloc(1, sizeof *s);
    if (!s) return zoff__err(-ENOMEM, "sim: out of host memory creating a stream");
    s->dev = sd;
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_lock(&sd->mu);
    s->index = sd->next_index++;
    pthread_mutex_unlock(&sd->mu);
    uint64_t seed = sd->base.cfg.sim_jitter_seed ^ ((uint64_t)s->index * 0xd1b54a32d192ed03ull);
    s->rng = splitmix64(&seed);
    int rc = pthread_create(&s->thread, NULL, worker_main, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->cv);
        free(s);
        return zoff__err(-rc, "sim: pthread_create for a stream worker: %s", strerror(rc));
    }
    pthread_mutex_lock(&sd->mu);
    while (sd->list_users) pthread_cond_wait(&sd->done_cv, &sd->mu);
    s->next = sd->streams;
    sd->streams = s;
    pthread_mutex_unlock(&sd->mu);
    *out = s;
    return 0;
}

/* Drains, stops and frees one stream (mu not held). */
static void sim_stream_free(sim_dev *sd, struct zdev_stream *s)
{
    pthread_mutex_lock(&sd->mu);
    drain_locked(sd, s);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&sd->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&sd->mu);
    while (sd->list_users) pthread_cond_wait(&sd->done_cv, &sd->mu);
    for (struct zdev_stream **pp = &sd->streams; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&sd->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static zoff_status sim_stream_create(zdev *d, zdev_stream **out)
{
    struct zdev_stream *s;
    ZOFF_CHECK(sim_stream_new(sim_of(d), &s));
    *out = s;
    return 0;
}

static void sim_stream_destroy(zdev *d, zdev_stream *h)
{
    sim_dev *sd = sim_of(d);
    pthread_mutex_lock(&sd->mu);
    struct zdev_stream *s = stream_locked(sd, h);
    pthread_mutex_unlock(&sd->mu);
    if (!s || s == sd->def) {
        ZOFF_WARN(ZOFF_SUB_DEV, "sim: stream_destroy(%p): not a stream of this device; ignored",
                  (void *)h);
        return;
    }
    sim_stream_free(sd, s);
}

static zoff_status sim_stream_sync(zdev *d, zdev_stream *h)
{
    sim_dev *sd = sim_of(d);
    pthread_mutex_lock(&sd->mu);
    struct zdev_stream *s = stream_locked(sd, h);
    if (s) drain_locked(sd, s);
    pthread_mutex_unlock(&sd->mu);
    if (!s)
        return zoff__err(ZOFF_EINVAL, "sim: stream %p is not a stream of this device", (void *)h);
    return 0;
}

/* ---- events -----------------------------------------------------------------------------------
 */
static zoff_status sim_event_create(zdev *d, zdev_event **out)
{
    (void)d;
    struct zdev_event *e = calloc(1, sizeof *e);
    if (!e) return zoff__err(-ENOMEM, "sim: out of host memory creating an event");
    *out = e;
    return 0;
}

static void sim_event_destroy(zdev *d, zdev_event *e)
{
    sim_dev *sd = sim_of(d);
    pthread_mutex_lock(&sd->mu);
    marker_unref_locked(e->m);
    pthread_mutex_unlock(&sd->mu);
    free(e);
}

static zoff_status sim_event_record(zdev *d, zdev_event *e, zdev_stream *h)
{
    sim_dev *sd = sim_of(d);
    sim_op *op = op_new(OP_MARK);
    sim_marker *m = calloc(1, sizeof *m);
    if (!op || !m) {
        free(op);
        free(m);
        return zoff__err(-ENOMEM, "sim: out of host memory recording an event");
    }
    m->refs = 2; /* the event and the MARK op */
    op->marker = m;
    pthread_mutex_lock(&sd->mu);
    struct zdev_stream *s = stream_locked(sd, h);
    if (s) {
        marker_unref_locked(e->m);
        e->m = m;
        enqueue_locked(s, op);
    }
    pthread_mutex_unlock(&sd->mu);
    if (!s) {
        free(op);
        free(m);
        return zoff__err(ZOFF_EINVAL, "sim: stream %p is not a stream of this device", (void *)h);
    }
    return 0;
}

static zoff_status sim_stream_wait_event(zdev *d, zdev_stream *h, zdev_event *e)
{
    sim_dev *sd = sim_of(d);
    sim_op *op = op_new(OP_WAIT);
    if (!op) return -ENOMEM;
    zoff_status st = 0;
    pthread_mutex_lock(&sd->mu);
    struct zdev_stream *s = stream_locked(sd, h);
    if (!s) {
        st = zoff__err(ZOFF_EINVAL, "sim: stream %p is not a stream of this device", (void *)h);
    } else if (e->m && !e->m->done) { /* a completed or never-recorded event: nothing to wait */
        op->marker = e->m;
        e->m->refs++;
        enqueue_locked(s, op);
        op = NULL;
    }
    pthread_mutex_unlock(&sd->mu);
    free(op);
    return st;
}

static zoff_status sim_event_query(zdev *d, zdev_event *e, int *done)
{
    sim_dev *sd = sim_of(d);
    pthread_mutex_lock(&sd->mu);
    *done = !e->m || e->m->done;
    pthread_mutex_unlock(&sd->mu);
    return 0;
}

static zoff_status sim_event_sync(zdev *d, zdev_event *e)
{
    sim_dev *sd = sim_of(d);
    pthread_mutex_lock(&sd->mu);
    sim_marker *m = e->m;
    if (m) {
        m->refs++; /* e may be re-recorded meanwhile: keep this capture alive */
        while (!m->done) pthread_cond_wait(&sd->done_cv, &sd->mu);
        marker_unref_locked(m);
    }
    pthread_mutex_unlock(&sd->mu);
    return 0;
}

/* ---- memory -----------------------------------------------------------------------------------
 */
static zoff_status sim_malloc(zdev *d, size_t bytes, void **out)
{
    size_t cap = d->cfg.sim_bytes, used = d->mem_used; /* d->mu is held by the caller */
    if (bytes > cap - used) {
        char a[32], f[32], t[32];
        return zoff__err(ZOFF_EDEVMEM,
                         "sim: out of device memory: asked %zu bytes (%s), free %zu (%s), total "
                         "%zu (%s) — raise sim_gpu_bytes / ZOFF_SIM_GPU_BYTES",
                         bytes, zoff__fmt_bytes(bytes, a, sizeof a), cap - used,
                         zoff__fmt_bytes(cap - used, f, sizeof f), cap,
                         zoff__fmt_bytes(cap, t, sizeof t));
    }
    void *p = aligned_alloc(SIM_ALIGN, ZOFF_ALIGN_UP(bytes, SIM_ALIGN));
    if (!p)
        return zoff__err(ZOFF_EDEVMEM,
                         "sim: host memory backing %zu bytes of device memory is "
                         "exhausted",
                         bytes);
    memset(p, 0xff, bytes); /* uninitialised device memory reads as NaN */
    *out = p;
    return 0;
}

static void sim_free(zdev *d, void *p)
{
    sync_all(sim_of(d)); /* like cudaFree: queued work may still use p */
    free(p);
}

static zoff_status sim_mem_info(const zdev *d, size_t *free_bytes, size_t *total_bytes)
{
    size_t used = zdev__mem_used((zdev *)d);
    *total_bytes = d->cfg.sim_bytes;
    *free_bytes = d->cfg.sim_bytes - used;
    return 0;
}

static zoff_status sim_pci_bus_id(const zdev *d, char *buf, size_t len)
{
    (void)d;
    (void)buf;
    (void)len;
    return zoff__err(ZOFF_EUNSUPPORTED, "the sim device has no PCI bus id");
}

static zoff_status sim_host_register(zdev *d, void *p, size_t bytes)
{
    (void)d;
    (void)p;
    (void)bytes;
    return 0; /* accounted by device.c */
}

static void sim_host_unregister(zdev *d, void *p)
{
    (void)d;
    (void)p;
}

/* ---- copies and kernels -----------------------------------------------------------------------
 */
static zoff_status check_dev(zdev *d, const void *p, size_t bytes, const char *what,
                             const char *side)
{
    if (zdev__is_device_range(d, p, bytes)) return 0;
    return zoff__err(ZOFF_EINVAL, "sim: %s: %s %p + %zu bytes is not inside a device allocation",
                     what, side, p, bytes);
}

static zoff_status sim_memcpy(zdev *d, void *dst, const void *src, size_t bytes, zdev_dir dir,
                              zdev_stream *s)
{
    static const char *names[] = {"memcpy_h2d", "memcpy_d2h", "memcpy_d2d"};
    if (dir != ZDEV_D2H) ZOFF_CHECK(check_dev(d, dst, bytes, names[dir], "destination"));
    if (dir != ZDEV_H2D) ZOFF_CHECK(check_dev(d, src, bytes, names[dir], "source"));
    sim_op *op = op_new(OP_COPY);
    if (!op) return -ENOMEM;
    op->dir = dir;
    op->dst = dst;
    op->src = src;
    op->bytes = bytes;
    return enqueue(sim_of(d), s, op);
}

static zoff_status sim_host_fn(zdev *d, zdev_stream *s, void (*fn)(void *), void *arg)
{
    sim_op *op = op_new(OP_HOST_FN);
    if (!op) return -ENOMEM;
    op->fn = fn;
    op->arg = arg;
    return enqueue(sim_of(d), s, op);
}

static zoff_status sim_kernel(zdev *d, sim_op_kind kind, void *x, zoff_dtype dtype,
                              const float *src, size_t n, float value, zdev_stream *s,
                              const char *what)
{
    ZOFF_CHECK(check_dev(d, x, n * zoff_dtype_size(dtype), what, "array"));
    if (src) ZOFF_CHECK(check_dev(d, src, n * sizeof(float), what, "source"));
    sim_op *op = op_new(kind);
    if (!op) return -ENOMEM;
    op->dst = x;
    op->src = src;
    op->n = n;
    op->dtype = dtype;
    op->value = value;
    return enqueue(sim_of(d), s, op);
}

static zoff_status sim_cast_f32(zdev *d, void *dst, zoff_dtype dst_dtype, const float *src,
                                size_t n, zdev_stream *s)
{
    return sim_kernel(d, OP_CAST, dst, dst_dtype, src, n, 0.0f, s, "cast_f32");
}

static zoff_status sim_widen_f32(zdev *d, float *dst, const void *src, zoff_dtype src_dtype,
                                 size_t n, zdev_stream *s)
{
    ZOFF_CHECK(check_dev(d, dst, n * sizeof(float), "widen_f32", "destination"));
    ZOFF_CHECK(check_dev(d, src, n * zoff_dtype_size(src_dtype), "widen_f32", "source"));
    sim_op *op = op_new(OP_WIDEN);
    if (!op) return -ENOMEM;
    op->dst = dst;
    op->src = src;
    op->n = n;
    op->dtype = src_dtype;
    return enqueue(sim_of(d), s, op);
}

static zoff_status sim_scale(zdev *d, void *x, zoff_dtype dtype, size_t n, float alpha,
                             zdev_stream *s)
{
    return sim_kernel(d, OP_SCALE, x, dtype, NULL, n, alpha, s, "scale");
}

static zoff_status sim_fill(zdev *d, void *x, zoff_dtype dtype, size_t n, float value,
                            zdev_stream *s)
{
    return sim_kernel(d, OP_FILL, x, dtype, NULL, n, value, s, "fill");
}

static zoff_status sim_busy(zdev *d, zdev_stream *s, uint64_t ns)
{
    sim_op *op = op_new(OP_BUSY);
    if (!op) return -ENOMEM;
    op->ns = ns;
    return enqueue(sim_of(d), s, op);
}

/* ---- open / close -----------------------------------------------------------------------------
 */
static void sim_close(zdev *d)
{
    sim_dev *sd = sim_of(d);
    int user_streams = 0;
    for (;;) {
        pthread_mutex_lock(&sd->mu);
        struct zdev_stream *s = sd->streams;
        pthread_mutex_unlock(&sd->mu);
        if (!s) break;
        if (s != sd->def) user_streams++;
        sim_stream_free(sd, s);
    }
    if (user_streams)
        ZOFF_INFO(ZOFF_SUB_DEV, "sim: closed %d stream(s) the caller had not destroyed",
                  user_streams);
    pthread_cond_destroy(&sd->done_cv);
    pthread_mutex_destroy(&sd->mu);
    zdev__fini_common(d);
    free(sd);
}

static const zdev_ops sim_ops = {
    .close = sim_close,
    .pci_bus_id = sim_pci_bus_id,
    .mem_info = sim_mem_info,
    .malloc = sim_malloc,
    .free = sim_free,
    .host_register = sim_host_register,
    .host_unregister = sim_host_unregister,
    .stream_create = sim_stream_create,
    .stream_destroy = sim_stream_destroy,
    .stream_sync = sim_stream_sync,
    .event_create = sim_event_create,
    .event_destroy = sim_event_destroy,
    .event_record = sim_event_record,
    .stream_wait_event = sim_stream_wait_event,
    .event_query = sim_event_query,
    .event_sync = sim_event_sync,
    .memcpy = sim_memcpy,
    .host_fn = sim_host_fn,
    .cast_f32 = sim_cast_f32,
    .widen_f32 = sim_widen_f32,
    .scale = sim_scale,
    .fill = sim_fill,
    .busy = sim_busy,
};

zoff_status zdev__sim_open(const zdev_config *cfg, zdev **out)
{
    sim_dev *sd = calloc(1, sizeof *sd);
    if (!sd) return zoff__err(-ENOMEM, "sim: out of host memory opening the device");
    zdev__init_common(&sd->base, &sim_ops, ZOFF_DEVICE_SIM, cfg);
    snprintf(sd->base.name, sizeof sd->base.name, "sim");
    sd->base.mem_total = cfg->sim_bytes;
    pthread_mutex_init(&sd->mu, NULL);
    pthread_cond_init(&sd->done_cv, NULL);
    zoff_status st = sim_stream_new(sd, &sd->def);
    if (st < 0) {
        pthread_cond_destroy(&sd->done_cv);
        pthread_mutex_destroy(&sd->mu);
        zdev__fini_common(&sd->base);
        free(sd);
        return st;
    }
    char cap[32];
    if (cfg->sim_pcie_gbps > 0)
        ZOFF_INFO(ZOFF_SUB_DEV,
                  "sim device: %s of device memory, copies at %.2f GB/s per direction",
                  zoff__fmt_bytes(cfg->sim_bytes, cap, sizeof cap), cfg->sim_pcie_gbps);
    else
        ZOFF_INFO(ZOFF_SUB_DEV, "sim device: %s of device memory, copies unthrottled",
                  zoff__fmt_bytes(cfg->sim_bytes, cap, sizeof cap));
    if (cfg->sim_jitter_seed)
        ZOFF_INFO(ZOFF_SUB_DEV, "sim device: jitter on (seed %llu): random delays before every op",
                  (unsigned long long)cfg->sim_jitter_seed);
    *out = &sd->base;
    return 0;
}
