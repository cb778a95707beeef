/*
 * bench_step.c — `zoff bench step`: whole offloaded training steps of a synthetic trainer on the
 * sim device, against the critical-path lower bound measured in the same run.
 *
 * The trainer: L layers of N/L parameters; each micro-batch queues, per layer in reverse order, a
 * busy op of --busy-ms on its compute stream (stand-in backward compute) and hands the layer's
 * gradient over: by default with zoff_grad_push from one of two scratch device buffers (zoff's
 * gradient buckets), issued on a copy stream of the trainer's own so that the copy into the
 * buckets overlaps the next layer's backward, as DeepSpeed's overlap_comm copies on a side
 * stream (--push inline: on the compute stream, after the busy op; --grads full: a
 * trainer-owned gradient buffer per layer and zoff_grad_ready); then zoff_step, and
 * zoff_params_ready on its stream. --accum K: K micro-batches per optimizer step
 * (gradient accumulation; the stand-in GPU time of a step is K backward passes). Real CPU Adam,
 * real NVMe for the nvme tier, sim copies throttled to --pcie-gbps per direction.
 *
 * Components measured alone, in this run, once before and once after the steps (this machine is
 * noisy: the two are averaged and a difference above 30% is flagged): GPU busy (L busy ops), D2H
 * (all gradients), H2D (all parameters), Adam (zadam_step over a pinned huge-page slice of up to
 * 16 Mi elements, scaled to N: the kernel streams, its time is linear in N), the gradient sum of
 * squares (same slice, scaled), the accumulation adds (K > 1: K fp32 adds over N, same slice),
 * NVMe (the store's own read/write-back pass over up to 4 partitions with no compute, scaled to
 * the swapped partitions), and with buckets the device-to-device copies of every gradient into
 * zoff's buckets that the trainer's stream runs (a sim device of its own, the same layer sizes:
 * on the sim a host memcpy in the stream's worker, on a GPU an HBM copy). With --push inline the
 * compute stream's work is busy + those copies, one component of the lower bound; from a copy
 * stream (the default) busy and the copies are two components, each on its own stream (the sim
 * runs them on different threads; on a GPU the copies would share the SMs and HBM with the
 * backward kernels, which the sim does not model). Per-step figures count K
 * micro-batches of busy time, D2H and accumulation and one update. Lower bound = the largest;
 * overlap efficiency = lower bound / measured step time. Each component's process CPU time is
 * taken too: with the sim device the copies are memcpy calls on the same cores as Adam, so the
 * sum of CPU work / cores is a second bound, reported next to the first.
 *
 * These figures speak of zoff's scheduler, this CPU and this disk. The "GPU" is a sleeping
 * thread and its copies are memcpy calls throttled to a bandwidth: nothing here measures a GPU.
 * Owns: the synthetic trainer, the alone measurements, the report.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "comm/comm.h"
#include "common/common.h"
#include "cpu_adam/adam.h"
#include "gpu/device.h"
#include "harness.h"
#include "offload/arena.h"
#include "offload/store.h"

typedef struct bs_opts {
    uint64_t params;
    int layers;
    zoff_tier tier;
    double busy_ms; /* per layer; < 0: auto (the GPU as busy as the slowest other component) */
    int steps;
    const char *nvme_path;
    const char *json;
    zoff_overlap overlap;
    zoff_dtype dtype;
    double pcie_gbps;
    int threads;
    size_t partition_numel;
    float ratio;
    zopt_kind optim;  /* --optim */
    zstate_fmt state; /* --state */
    int crc;   /* verify_crc of the runtime and of the nvme-alone pass (default: on, as zoff's) */
    int ranks; /* --ranks N: run under mpirun -np N (sharded step) */
    uint64_t own_params; /* elements whose Adam this rank runs (params / ranks, rounded up) */
    double link_gbps;    /* modeled GPU-GPU link bandwidth for the collectives (GB/s) */
    int accum;           /* micro-batches per step */
    int full_grads;      /* 1: trainer-owned gradient buffers (zoff_grad_ready) */
    int push_inline;     /* --push inline: pushes on the compute stream (default: a copy stream) */
    size_t bucket_numel; /* 0: default */
    int bucket_count;    /* 0: default */
} bs_opts;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: zoff bench step [--params N (256M)] [--layers L (24)] [--tier cpu|nvme]\n"
        "                       [--busy-ms MS per layer | auto] [--steps S (5)]\n"
        "                       [--nvme-path DIR (/var/tmp)] [--overlap sync|eager|delayed]\n"
        "                       [--dtype fp16|bf16] [--pcie-gbps G (25)] [--threads T]\n"
        "                       [--partition-numel N] [--ratio R] [--crc 0|1 (1)]\n"
        "                       [--state fp32|bf16|q8] [--optim adam|lion|adagrad]\n"
        "                       [--json FILE] [--ranks N (under mpirun -np N)]\n"
        "                       [--link-gbps G (100)]\n"
        "                       [--accum K (1)] [--grads buckets|full]\n"
        "                       [--push copy-stream|inline]\n"
        "                       [--bucket-numel N] [--bucket-count C]\n"
        "       zoff bench step --stream ... (streamed weights; --stream --help)\n"
        "  --busy-ms auto (default) makes the stand-in GPU as busy as the slowest other\n"
        "  component: a balanced pipeline, the hardest case for overlap.\n"
        "  --push copy-stream (default): the trainer pushes each gradient from a copy stream\n"
        "  of its own, so the copies into the buckets overlap the next layer's backward (two\n"
        "  scratch buffers, zoff_stream_wait_stream both ways); inline: on the compute stream.\n");
}

/* One component measured alone: wall and process CPU time (ms, scaled to the whole model). */
typedef struct bs_comp {
    double ms, cpu;
} bs_comp;

typedef struct bs_alone {
    bs_comp busy, d2h, h2d, adam, sumsq, nvme, crc, accum, d2d;
} bs_alone;

/* 2^-7 in fp16 or bf16: weights and gradients of a plausible size (no subnormal moments). */
static uint16_t small16(zoff_dtype dt)
{
    return dt == ZOFF_DTYPE_BF16 ? 0x3c00 : 0x2000;
}

/* ---- Adam and sum-of-squares slice --------------------------------------------------------- */
typedef struct bs_slice {
    size_t n;
    zadam_ctx *ctx;
    zarena *arena;
    uint16_t *g, *out;
    float *p;
    zadam_tensor view; /* the state of the run's optimizer and format */
    int64_t step;
} bs_slice;

static void slice_close(bs_slice *s)
{
    zarena_destroy(s->arena);
    zadam_destroy(s->ctx);
    memset(s, 0, sizeof *s);
}

/* The same kind of memory as the runtime's state: a pinned arena with huge pages. */
static zoff_status slice_open(bs_slice *s, const bs_opts *o)
{
    zoff_status st = ZOFF_OK;
    memset(s, 0, sizeof *s);
    s->n = (size_t)ZOFF_MIN(o->params, (uint64_t)16 << 20);
    zadam_config zc = {.threads = o->threads};
    ZOFF_CHECK(zadam_create(&zc, &s->ctx));
    const size_t state_bytes = zstate_bytes(o->optim, o->state, s->n);
    zarena_config ac = {.bytes = s->n * 4 + state_bytes + 6 * 4096,
                        .numa_node = -1,
                        .pin = 1,
                        .huge_pages = 1,
                        .name = "bench-adam"};
    void *b[3] = {NULL};
    const size_t sizes[3] = {s->n * 2, s->n * 2, state_bytes};
    ZOFF_CHECK_GOTO(zarena_create(&ac, &s->arena), st, fail);
    for (int i = 0; i < 3; i++)
        ZOFF_CHECK_GOTO(zarena_alloc(s->arena, sizes[i], "bench", &b[i]), st, fail);
    s->g = b[0];
    s->out = b[1];
    memset(&s->view, 0, sizeof s->view);
    zstate_view(o->optim, o->state, b[2], s->n, &s->view);
    s->p = s->view.param;
    zstate_init_moments(o->optim, &s->view, s->n, 0.0f);
    memset(s->out, 0, s->n * 2);
    for (size_t i = 0; i < s->n; i++) {
        s->g[i] = small16(o->dtype);
        s->p[i] = 0.01f * (float)(i % 100);
    }
    s->step = 1;
    return ZOFF_OK;
fail:
    slice_close(s);
    return st;
}

/* Best of 3 timed runs (after one untimed), scaled from the slice to N elements. */
static zoff_status adam_alone(bs_slice *s, const bs_opts *o, bs_comp *out)
{
    zadam_hparams hp = {.lr = 1e-3f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f,
                        .weight_decay = 0.01f,
                        .adamw = 1,
                        .bias_correction = 1,
                        .grad_scale = 1.0f,
                        .optim = (int)o->optim};
    zadam_tensor t = s->view;
    t.n = s->n;
    t.grad = s->g;
    t.grad_dtype = o->dtype;
    t.param_out = s->out;
    t.out_dtype = o->dtype;
    bs_comp best = {INFINITY, INFINITY};
    for (int r = 0; r < 4; r++) {
        hp.step = s->step++;
        double t0 = zb_now_ms(), c0 = zb_cpu_ms();
        ZOFF_CHECK(zadam_step(s->ctx, &hp, &t, NULL));
        double dt = zb_now_ms() - t0, dc = zb_cpu_ms() - c0;
        if (r > 0 && dt < best.ms) best = (bs_comp){dt, dc};
    }
    double k = (double)o->own_params / (double)s->n;
    *out = (bs_comp){best.ms * k, best.cpu * k};
    return ZOFF_OK;
}

/* The runtime's grad worker runs the single-threaded sum of squares of the context's ISA. */
static void sumsq_alone(bs_slice *s, const bs_opts *o, bs_comp *out)
{
    bs_comp best = {INFINITY, INFINITY};
    for (int r = 0; r < 3; r++) {
        size_t nf = 0;
        double t0 = zb_now_ms(), c0 = zb_cpu_ms();
        volatile double x;
        switch (zadam_ctx_isa(s->ctx)) {
        case ZADAM_ISA_AVX512:
            x = sumsq_avx512(s->g, o->dtype, s->n, &nf);
            break;
        case ZADAM_ISA_AVX2:
            x = sumsq_avx2(s->g, o->dtype, s->n, &nf);
            break;
        default:
            x = sumsq_scalar(s->g, o->dtype, s->n, &nf);
            break;
        }
        (void)x;
        double dt = zb_now_ms() - t0, dc = zb_cpu_ms() - c0;
        if (dt < best.ms) best = (bs_comp){dt, dc};
    }
    double k = (double)o->params / (double)s->n;
    *out = (bs_comp){best.ms * k, best.cpu * k};
}

/* The runtime's grad worker adds each landed gradient into the fp32 sums (K > 1): K passes per
 * step (the first a plain conversion), single-threaded, over the master slice as the sums. */
static void accum_alone(bs_slice *s, const bs_opts *o, bs_comp *out)
{
    *out = (bs_comp){0, 0};
    if (o->accum <= 1) return;
    bs_comp best = {INFINITY, INFINITY};
    for (int r = 0; r < 3; r++) {
        double t0 = zb_now_ms(), c0 = zb_cpu_ms();
        for (int j = 0; j < o->accum; j++)
            zadam_accum(zadam_ctx_isa(s->ctx), s->p, s->g, o->dtype, s->n, j == 0);
        double dt = zb_now_ms() - t0, dc = zb_cpu_ms() - c0;
        if (dt < best.ms) best = (bs_comp){dt, dc};
    }
    /* the slice's master is left finite: the sums of small gradients */
    for (size_t i = 0; i < s->n; i++) s->p[i] = 0.01f * (float)(i % 100);
    double k = (double)o->params / (double)s->n;
    *out = (bs_comp){best.ms * k, best.cpu * k};
}

/* ---- NVMe: the store's read / write-back pass with no compute ------------------------------ */
typedef struct bs_nvme {
    zarena *arena;
    zstore *store;
    size_t nmeas, swapped;
    zopt_kind optim;
    zstate_fmt state;
} bs_nvme;

static void nvme_close(bs_nvme *n)
{
    zstore_destroy(n->store);
    zarena_destroy(n->arena);
    memset(n, 0, sizeof *n);
}

static zoff_status nvme_pass(bs_nvme *n, unsigned flags, bs_comp *out)
{
    zoff_status st = ZOFF_OK;
    double t0 = zb_now_ms(), c0 = zb_cpu_ms();
    ZOFF_CHECK(zstore_pass_begin(n->store, NULL, n->nmeas, flags));
    for (size_t k = 0; k < n->nmeas && st == ZOFF_OK; k++) {
        zstore_part part;
        st = zstore_pass_next(n->store, &part);
        if (st == ZOFF_OK && !(flags & ZSTORE_READ))
            memset(part.master, 0, zstate_bytes(n->optim, n->state, part.numel));
        if (st == ZOFF_OK) st = zstore_pass_release(n->store);
    }
    zoff_status e = zstore_pass_end(n->store);
    if (st == ZOFF_OK) st = e;
    double k = (double)n->swapped / (double)n->nmeas;
    if (out) *out = (bs_comp){(zb_now_ms() - t0) * k, (zb_cpu_ms() - c0) * k};
    return st;
}

/* A store of up to 4 partitions of the run's size under the same path, written once. */
static zoff_status nvme_open(bs_nvme *n, const bs_opts *o, size_t swapped)
{
    zoff_status st = ZOFF_OK;
    memset(n, 0, sizeof *n);
    n->swapped = swapped;
    n->nmeas = ZOFF_MIN(swapped, (size_t)4);
    n->optim = o->optim;
    n->state = o->state;
    uint64_t numel = (uint64_t)n->nmeas * o->partition_numel;
    zstore_sizes sz;
    ZOFF_CHECK(zstore_compute_sizes_fmt(numel, o->partition_numel, ZOFF_TIER_NVME, 0.0f, 3,
                                        o->optim, o->state, &sz));
    zarena_config ac = {
        .bytes = sz.pool_bytes, .numa_node = -1, .pin = 1, .huge_pages = 1, .name = "bench-nvme"};
    ZOFF_CHECK_GOTO(zarena_create(&ac, &n->arena), st, fail);
    zswap_config sc = {.paths = o->nvme_path,
                       .odirect = -1,
                       .verify_crc = o->crc,
                       .aio = {.engine = ZOFF_AIO_AUTO}};
    zstore_config cfg = {.numel = numel,
                         .partition_numel = o->partition_numel,
                         .tier = ZOFF_TIER_NVME,
                         .ratio = 0.0f,
                         .buffer_count = 3,
                         .arena = n->arena,
                         .swap = &sc,
                         .optim = o->optim,
                         .state = o->state};
    ZOFF_CHECK_GOTO(zstore_create(&cfg, &n->store), st, fail);
    ZOFF_CHECK_GOTO(nvme_pass(n, ZSTORE_WRITE, NULL), st, fail);
    return ZOFF_OK;
fail:
    nvme_close(n);
    return st;
}

/* ---- the synthetic trainer ---------------------------------------------------------------- */
typedef struct bs_model {
    zoff_runtime *rt;
    zoff_stream s;
    zoff_stream cs; /* bucket mode, --push copy-stream: the trainer's copy stream */
    int layers;
    size_t *numel;
    void **dp, **dg;
    void *scratch[2]; /* bucket mode: the trainer's two gradient buffers (alternating layers) */
    int full;
    zoff_dtype dtype;
    int *id;
    void *host; /* one layer of host memory for the copies measured alone */
} bs_model;

static zoff_status model_open(bs_model *m, const bs_opts *o, const zoff_config *c)
{
    zoff_status st = ZOFF_OK;
    ZOFF_CHECK(zoff_create(c, &m->rt));
    ZOFF_CHECK(zoff_stream_create(m->rt, &m->s));
    if (!o->full_grads && !o->push_inline) ZOFF_CHECK(zoff_stream_create(m->rt, &m->cs));
    int L = o->layers;
    m->layers = L;
    m->numel = calloc((size_t)L, sizeof *m->numel);
    m->dp = calloc((size_t)L, sizeof *m->dp);
    m->dg = calloc((size_t)L, sizeof *m->dg);
    m->id = calloc((size_t)L, sizeof *m->id);
    size_t per = (size_t)(o->params / (uint64_t)L);
    size_t last = (size_t)(o->params - per * (uint64_t)(L - 1));
    m->host = malloc(ZOFF_MAX(per, last) * 2);
    if (!m->numel || !m->dp || !m->dg || !m->id || !m->host)
        return zoff__err(-ENOMEM, "bench: out of memory");
    uint16_t *h = m->host;
    for (size_t i = 0; i < ZOFF_MAX(per, last); i++) h[i] = small16(o->dtype);
    m->full = o->full_grads;
    m->dtype = o->dtype;
    for (int l = 0; l < L && st == ZOFF_OK; l++) {
        m->numel[l] = l == L - 1 ? last : per;
        size_t bytes = m->numel[l] * 2;
        char name[32];
        snprintf(name, sizeof name, "layer%d.w", l);
        st = zoff_device_alloc(m->rt, bytes, &m->dp[l]);
        if (!st && m->full) st = zoff_device_alloc(m->rt, bytes, &m->dg[l]);
        if (!st) st = zoff_device_upload(m->rt, m->dp[l], h, bytes, m->s);
        if (!st && m->full) st = zoff_device_upload(m->rt, m->dg[l], h, bytes, m->s);
        if (!st)
            st = zoff_add_param(m->rt, name, m->numel[l], o->dtype, m->dp[l], m->dg[l], NULL, 0,
                                &m->id[l]);
    }
    for (int i = 0; i < 2 && st == ZOFF_OK && !m->full; i++) {
        size_t bytes = ZOFF_MAX(per, last) * 2;
        st = zoff_device_alloc(m->rt, bytes, &m->scratch[i]);
        if (!st) st = zoff_device_upload(m->rt, m->scratch[i], h, bytes, m->s);
    }
    if (!st) st = zoff_finalize(m->rt);
    return st;
}

static void model_close(bs_model *m)
{
    if (m->rt) {
        for (int l = 0; l < m->layers; l++) {
            if (m->dp && m->dp[l]) zoff_device_free(m->rt, m->dp[l]);
            if (m->dg && m->dg[l]) zoff_device_free(m->rt, m->dg[l]);
        }
        for (int i = 0; i < 2; i++)
            if (m->scratch[i]) zoff_device_free(m->rt, m->scratch[i]);
        if (m->s) zoff_stream_destroy(m->rt, m->s);
        if (m->cs) zoff_stream_destroy(m->rt, m->cs);
    }
    zoff_destroy(m->rt);
    free(m->numel);
    free(m->dp);
    free(m->dg);
    free(m->id);
    free(m->host);
    memset(m, 0, sizeof *m);
}

/* Copies alone through the runtime's device, every layer once: D2H of the gradients, or H2D of
 * the parameters (each layer's params are read back first, untimed, so they stay valid). */
static zoff_status copies_alone(bs_model *m, int h2d, bs_comp *out)
{
    zoff_status st = ZOFF_OK;
    bs_comp total = {0, 0};
    for (int l = 0; l < m->layers && st == ZOFF_OK; l++) {
        size_t bytes = m->numel[l] * 2;
        if (h2d) st = zoff_device_download(m->rt, m->host, m->dp[l], bytes, m->s);
        if (st) break;
        double t0 = zb_now_ms(), c0 = zb_cpu_ms();
        if (h2d)
            st = zoff_device_upload(m->rt, m->dp[l], m->host, bytes, m->s);
        else
            st = zoff_device_download(m->rt, m->host, m->full ? m->dg[l] : m->scratch[0], bytes,
                                      m->s);
        total.ms += zb_now_ms() - t0;
        total.cpu += zb_cpu_ms() - c0;
    }
    *out = total;
    return st;
}

/* Bucket mode: the trainer stream's copies into the buckets, K x every layer, on a sim device
 * of its own (the runtime's device is not reachable through the API). */
static zoff_status d2d_alone(const bs_model *m, int accum, bs_comp *out)
{
    *out = (bs_comp){0, 0};
    if (m->full) return ZOFF_OK;
    size_t *bytes = calloc((size_t)m->layers, sizeof *bytes);
    if (!bytes) return zoff__err(-ENOMEM, "bench: out of memory");
    for (int l = 0; l < m->layers; l++) bytes[l] = m->numel[l] * 2;
    zoff_status st = zb_d2d_alone(bytes, m->layers, accum, &out->ms, &out->cpu);
    free(bytes);
    return st;
}

static zoff_status busy_alone(bs_model *m, uint64_t busy_ns, int accum, bs_comp *out)
{
    double t0 = zb_now_ms(), c0 = zb_cpu_ms();
    for (int l = 0; l < m->layers * accum; l++) ZOFF_CHECK(zoff_stream_busy(m->rt, m->s, busy_ns));
    ZOFF_CHECK(zoff_stream_synchronize(m->rt, m->s));
    *out = (bs_comp){zb_now_ms() - t0, zb_cpu_ms() - c0};
    return ZOFF_OK;
}

/* One optimizer step: `accum` micro-batches; *r is the result of the last (the update).
 * Copy stream: layer l's backward writes scratch[l & 1]; the compute stream then waits for the
 * copies queued so far (the push of layer l + 1 at the latest: it read scratch[(l + 1) & 1],
 * which layer l - 1's backward rewrites), and the copy stream waits for layer l's backward before
 * its push. So layer l's copy runs while layer l - 1's backward does. */
static zoff_status one_step(bs_model *m, uint64_t busy_ns, int accum, zoff_step_result *r)
{
    for (int j = 0; j < accum; j++) {
        for (int l = m->layers - 1; l >= 0; l--) {
            ZOFF_CHECK(zoff_stream_busy(m->rt, m->s, busy_ns));
            if (m->full) {
                ZOFF_CHECK(zoff_grad_ready(m->rt, m->id[l], m->s));
            } else if (m->cs) {
                ZOFF_CHECK(zoff_stream_wait_stream(m->rt, m->s, m->cs));
                ZOFF_CHECK(zoff_stream_wait_stream(m->rt, m->cs, m->s));
                ZOFF_CHECK(zoff_grad_push(m->rt, m->id[l], m->scratch[l & 1], m->numel[l], m->dtype,
                                          m->cs));
            } else {
                ZOFF_CHECK(zoff_grad_push(m->rt, m->id[l], m->scratch[l & 1], m->numel[l], m->dtype,
                                          m->s));
            }
        }
        ZOFF_CHECK(zoff_step(m->rt, NULL, r));
        ZOFF_CHECK(zoff_params_ready(m->rt, m->s));
    }
    return ZOFF_OK;
}

/* crc32c (the swap store's, hardware instruction where the CPU has it) over what a step swaps:
 * every swapped byte once when written and once when read back. One thread, as in the store. */
static void crc_alone(const bs_slice *sl, uint64_t swap_bytes, bs_comp *out)
{
    const void *buf = sl->p;
    size_t len = sl->n * sizeof(float); /* the fp32 master slice: real data, in memory */
    double t0 = zb_now_ms(), c0 = zb_cpu_ms();
    volatile uint32_t sink = 0;
    for (int r = 0; r < 4; r++) sink ^= zoff__crc32c(0, buf, len);
    (void)sink;
    double k = 2.0 * (double)swap_bytes / (4.0 * (double)len);
    *out = (bs_comp){(zb_now_ms() - t0) * k, (zb_cpu_ms() - c0) * k};
}

/* Everything but GPU busy, measured alone. */
static zoff_status measure_alone(bs_model *m, bs_slice *sl, bs_nvme *nv, const bs_opts *o,
                                 bs_alone *a)
{
    ZOFF_CHECK(adam_alone(sl, o, &a->adam));
    sumsq_alone(sl, o, &a->sumsq);
    accum_alone(sl, o, &a->accum);
    ZOFF_CHECK(copies_alone(m, 0, &a->d2h));
    a->d2h.ms *= o->accum;
    a->d2h.cpu *= o->accum;
    ZOFF_CHECK(copies_alone(m, 1, &a->h2d));
    ZOFF_CHECK(d2d_alone(m, o->accum, &a->d2d));
    if (nv->store) ZOFF_CHECK(nvme_pass(nv, ZSTORE_READ | ZSTORE_WRITE, &a->nvme));
    if (nv->store)
        crc_alone(sl, (uint64_t)nv->swapped * o->partition_numel * ZSTORE_ELEM_BYTES, &a->crc);
    return ZOFF_OK;
}

static int parse_args(int argc, char **argv, bs_opts *o)
{
    const zb_step_args common = {.params = &o->params,
                                 .layers = &o->layers,
                                 .tier = &o->tier,
                                 .busy_ms = &o->busy_ms,
                                 .busy_auto = 1,
                                 .steps = &o->steps,
                                 .nvme_path = &o->nvme_path,
                                 .json = &o->json,
                                 .dtype = &o->dtype,
                                 .pcie_gbps = &o->pcie_gbps,
                                 .threads = &o->threads,
                                 .partition_numel = &o->partition_numel};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        uint64_t n = 0;
        int taken = zb_step_arg(&i, argc, argv, &common);
        if (taken < 0) return -1;
        if (taken) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        } else if (zb_arg_match(&i, argc, argv, "--overlap", &v)) {
            if (!strcasecmp(v, "sync"))
                o->overlap = ZOFF_OVERLAP_SYNC;
            else if (!strcasecmp(v, "eager"))
                o->overlap = ZOFF_OVERLAP_EAGER;
            else if (!strcasecmp(v, "delayed"))
                o->overlap = ZOFF_OVERLAP_DELAYED;
            else
                return -1;
        } else if (zb_arg_match(&i, argc, argv, "--ranks", &v)) {
            o->ranks = atoi(v);
            if (o->ranks < 1 || o->ranks > 4096) {
                fprintf(stderr, "zoff bench step: --ranks %s: expected 1..4096\n", v);
                return -1;
            }
        } else if (zb_arg_match(&i, argc, argv, "--link-gbps", &v)) {
            o->link_gbps = atof(v);
            if (!(o->link_gbps > 0)) {
                fprintf(stderr, "zoff bench step: --link-gbps %s: expected a number > 0\n", v);
                return -1;
            }
        } else if (zb_arg_match(&i, argc, argv, "--ratio", &v)) {
            o->ratio = (float)atof(v);
        } else if (zb_arg_match(&i, argc, argv, "--state", &v)) {
            if (zstate_fmt_parse(v, &o->state) != 0) return -1;
        } else if (zb_arg_match(&i, argc, argv, "--optim", &v)) {
            if (zopt_kind_parse(v, &o->optim) != 0) return -1;
        } else if (zb_arg_match(&i, argc, argv, "--accum", &v)) {
            o->accum = atoi(v);
        } else if (zb_arg_match(&i, argc, argv, "--grads", &v)) {
            if (!strcasecmp(v, "buckets"))
                o->full_grads = 0;
            else if (!strcasecmp(v, "full"))
                o->full_grads = 1;
            else
                return -1;
        } else if (zb_arg_match(&i, argc, argv, "--push", &v)) {
            if (!strcasecmp(v, "copy-stream"))
                o->push_inline = 0;
            else if (!strcasecmp(v, "inline"))
                o->push_inline = 1;
            else
                return -1;
        } else if (zb_arg_match(&i, argc, argv, "--bucket-numel", &v)) {
            if (zoff__parse_size(v, &n) || n == 0) return -1;
            o->bucket_numel = (size_t)n;
        } else if (zb_arg_match(&i, argc, argv, "--bucket-count", &v)) {
            o->bucket_count = atoi(v);
        } else if (zb_arg_match(&i, argc, argv, "--crc", &v)) {
            if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) return -1;
            o->crc = v[0] == '1';
        } else {
            fprintf(stderr, "zoff bench step: unknown argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (o->layers < 1 || o->steps < 1 || o->params < (uint64_t)o->layers || o->accum < 1) return -1;
    return 0;
}

static const char *overlap_name(zoff_overlap ov)
{
    return ov == ZOFF_OVERLAP_SYNC ? "sync" : ov == ZOFF_OVERLAP_EAGER ? "eager" : "delayed";
}

static bs_comp comp_mean(bs_comp a, bs_comp b)
{
    return (bs_comp){(a.ms + b.ms) / 2, (a.cpu + b.cpu) / 2};
}

/* "" or " (before/after differ by N%)" when a component's two measurements disagree. */
static const char *disturbed(bs_comp a, bs_comp b, char *buf, size_t len)
{
    double lo = ZOFF_MIN(a.ms, b.ms), hi = ZOFF_MAX(a.ms, b.ms);
    buf[0] = '\0';
    if (lo > 0 && hi > 1.3 * lo)
        snprintf(buf, len, " (disturbed: %.0f / %.0f before/after)", a.ms, b.ms);
    return buf;
}

int zoff_bench_step_stream_main(int argc, char **argv); /* bench_stream.c */

int zoff_bench_step_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--stream")) return zoff_bench_step_stream_main(argc, argv);
    bs_opts o = {.params = (uint64_t)256 << 20,
                 .layers = 24,
                 .tier = ZOFF_TIER_CPU,
                 .busy_ms = -1.0,
                 .steps = 5,
                 .nvme_path = "/var/tmp",
                 .json = NULL,
                 .overlap = ZOFF_OVERLAP_DELAYED,
                 .dtype = ZOFF_DTYPE_F16,
                 .pcie_gbps = 25.0,
                 .threads = 0,
                 .partition_numel = 0,
                 .ratio = 0.0f,
                 .accum = 1,
                 .full_grads = 0,
                 .bucket_numel = 0,
                 .bucket_count = 0,

                 .ranks = 1,
                 .own_params = 0,
                 .link_gbps = 100.0,
                 .crc = 1};
    int pa = parse_args(argc, argv, &o);
    if (pa != 0) {
        if (pa < 0) usage(stderr);
        return pa < 0 ? 2 : 0;
    }
    o.own_params = (o.params + (uint64_t)o.ranks - 1) / (uint64_t)o.ranks;
    if (o.ranks > 1) o.overlap = ZOFF_OVERLAP_SYNC; /* the sharded step's mode */
    zoff_config c;
    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    c.fp16_enabled = o.dtype == ZOFF_DTYPE_F16;
    c.bf16_enabled = o.dtype == ZOFF_DTYPE_BF16;
    c.tier = o.tier;
    c.ratio = o.ratio;
    c.overlap = o.overlap;
    c.delayed_warmup_steps = 1;
    c.verify_crc = o.crc;
    c.cpu_threads = o.threads;
    c.sim_pcie_gbps = o.pcie_gbps;
    c.sim_gpu_bytes = (size_t)(o.params * 4 + 64 * ZOFF_MIB);
    c.state_format = (int)o.state;
    c.optimizer_type = (int)o.optim;
    if (o.partition_numel) c.partition_numel = o.partition_numel;
    c.gradient_accumulation_steps = o.accum;
    if (o.bucket_numel) c.grad_bucket_numel = o.bucket_numel;
    if (o.bucket_count) c.grad_bucket_count = o.bucket_count;
    o.partition_numel = c.partition_numel;
    if (o.tier == ZOFF_TIER_NVME) snprintf(c.nvme_path, sizeof c.nvme_path, "%s", o.nvme_path);

    zoff_plan_report plan;
    memset(&plan, 0, sizeof plan);
    if (zoff_plan(&c, (size_t)o.params, &plan) < 0) {
        fprintf(stderr, "zoff bench step: %s\n", zoff_last_error(NULL));
        return 1;
    }
    if (!plan.fits) {
        fprintf(stderr, "zoff bench step: this configuration does not fit: %s\n", plan.advice);
        return 1;
    }
    int env_rank = 0, env_size = 1, lr_, ln_;
    zcomm_env_ranks(&env_rank, &env_size, &lr_, &ln_);
    if (env_size != o.ranks) {
        fprintf(stderr,
                "zoff bench step: --ranks %d but the launcher started %d rank(s): run "
                "`mpirun -np %d zoff bench step --ranks %d ...`\n",
                o.ranks, env_size, o.ranks, o.ranks);
        return 2;
    }
    FILE *con = env_rank == 0 ? stdout : fopen("/dev/null", "w");
    if (!con) con = stdout;
    char b1[32], b2[32];
    const double state_bpe = zstate_elem_bytes(o.optim, o.state);
    fprintf(con,
            "zoff bench step: %llu params (%s of %s %s state), %d layers, tier %s%s, overlap %s, "
            "%s, accum %d, grads %s, sim PCIe %.1f GB/s per direction, OMP_WAIT_POLICY=%s\n",
            (unsigned long long)o.params,
            zoff__fmt_bytes((uint64_t)((double)o.params * state_bpe), b1, sizeof b1),
            zopt_kind_name(o.optim), zstate_fmt_name(o.state), o.layers,
            o.tier == ZOFF_TIER_CPU ? "cpu" : "nvme",
            o.tier == ZOFF_TIER_NVME ? (o.crc ? " (crc32c on)" : " (crc32c off)") : "",
            overlap_name(o.overlap), zoff_dtype_name(o.dtype), o.accum,
            o.full_grads    ? "full (trainer-owned, zoff_grad_ready)"
            : o.push_inline ? "buckets (zoff_grad_push on the compute stream)"
                            : "buckets (zoff_grad_push from a copy stream)",
            o.pcie_gbps, getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "(unset)");
    if (o.ranks > 1)
        fprintf(con,
                "  %d ranks (ZeRO stage %d): each runs Adam on %llu params; collectives over MPI "
                "(sim device memory is host memory), link modeled at %.0f GB/s\n",
                o.ranks, c.zero_stage, (unsigned long long)o.own_params, o.link_gbps);

    bs_slice sl;
    bs_nvme nv;
    bs_model m;
    memset(&nv, 0, sizeof nv);
    memset(&m, 0, sizeof m);
    bs_alone a0, a1;
    memset(&a0, 0, sizeof a0);
    memset(&a1, 0, sizeof a1);
    int rc = 1;
    memset(&sl, 0, sizeof sl);
    /* the runtime first: with several ranks it decides this rank's share of the cores */
    zoff_status st = model_open(&m, &o, &c);
    zoff_rank_info ri = ZOFF_RANK_INFO_INIT;
    if (st == ZOFF_OK) st = zoff_get_rank_info(m.rt, &ri);
    if (st == ZOFF_OK && o.ranks > 1 && o.threads == 0 && ri.ncpus > 0) o.threads = ri.ncpus;
    if (st == ZOFF_OK) st = slice_open(&sl, &o);
    if (st == ZOFF_OK && o.tier == ZOFF_TIER_NVME) {
        zstore_sizes sz;
        st = zstore_compute_sizes_fmt(o.params, o.partition_numel, o.tier, o.ratio, c.buffer_count,
                                      o.optim, o.state, &sz);
        if (st == ZOFF_OK && sz.swapped_parts) st = nvme_open(&nv, &o, sz.swapped_parts);
    }
    if (st) {
        fprintf(stderr, "zoff bench step: %s\n",
                m.rt ? zoff_last_error(m.rt) : zoff__last_error_tls());
        goto out;
    }
    st = measure_alone(&m, &sl, &nv, &o, &a0);
    double others = ZOFF_MAX(ZOFF_MAX(a0.adam.ms, a0.nvme.ms), ZOFF_MAX(a0.d2h.ms, a0.h2d.ms));
    others = ZOFF_MAX(others, a0.accum.ms);
    double busy_layer_ms = o.busy_ms >= 0 ? o.busy_ms : others / (o.layers * o.accum);
    uint64_t busy_ns = (uint64_t)(busy_layer_ms * 1e6);
    if (st == ZOFF_OK) st = busy_alone(&m, busy_ns, o.accum, &a0.busy);

    /* steps: warm-up (the delayed warm-up step and two more), then the timed ones */
    zoff_step_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    for (int i = 0; i < 3 && st == ZOFF_OK; i++) st = one_step(&m, busy_ns, o.accum, &r);
    if (st == ZOFF_OK) st = zoff_stream_synchronize(m.rt, m.s);
    double sum_adam = 0, sum_nvme_wait = 0, sum_wait_grads = 0;
    zoff_rank_info ri0 = ZOFF_RANK_INFO_INIT, ri1 = ZOFF_RANK_INFO_INIT;
    if (st == ZOFF_OK) st = zoff_get_rank_info(m.rt, &ri0);
    double t0 = zb_now_ms(), c0 = zb_cpu_ms();
    for (int i = 0; i < o.steps && st == ZOFF_OK; i++) {
        st = one_step(&m, busy_ns, o.accum, &r);
        sum_adam += r.adam_ms;
        sum_nvme_wait += r.nvme_wait_ms;
        sum_wait_grads += r.wait_grads_ms;
    }
    if (st == ZOFF_OK) st = zoff_stream_synchronize(m.rt, m.s);
    double step_ms = (zb_now_ms() - t0) / o.steps;
    double step_cpu = (zb_cpu_ms() - c0) / o.steps;
    if (st == ZOFF_OK) st = zoff_get_rank_info(m.rt, &ri1);
    double comm_ms = (ri1.comm_ms_total - ri0.comm_ms_total) / o.steps;
    zoff_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if (st == ZOFF_OK) st = zoff_get_stats(m.rt, &s);
    /* delayed: the last update still runs; wait for it (get_state drains) before measuring */
    if (st == ZOFF_OK) st = zoff_get_state(m.rt, m.id[0], NULL, NULL);
    if (st == ZOFF_OK) st = measure_alone(&m, &sl, &nv, &o, &a1);
    if (st == ZOFF_OK) st = busy_alone(&m, busy_ns, o.accum, &a1.busy);
    if (st) {
        fprintf(stderr, "zoff bench step: %s\n", zoff_last_error(m.rt));
        goto out;
    }

    bs_alone a = {
        comp_mean(a0.busy, a1.busy), comp_mean(a0.d2h, a1.d2h),     comp_mean(a0.h2d, a1.h2d),
        comp_mean(a0.adam, a1.adam), comp_mean(a0.sumsq, a1.sumsq), comp_mean(a0.nvme, a1.nvme),
        comp_mean(a0.crc, a1.crc),   comp_mean(a0.accum, a1.accum), comp_mean(a0.d2d, a1.d2d)};
    const int inline_d2d = !o.full_grads && o.push_inline; /* copies on the compute stream */
    const struct {
        const char *name;
        double ms;
    } cand[] = {{inline_d2d ? "gpu busy + d2d" : "gpu busy", /* see the header */
                 inline_d2d ? a.busy.ms + a.d2d.ms : a.busy.ms},
                {"d2d (copy stream)", inline_d2d || o.full_grads ? 0.0 : a.d2d.ms},
                {"d2h", a.d2h.ms},
                {"h2d", a.h2d.ms},
                {"adam", a.adam.ms},
                {"nvme", a.nvme.ms},
                {"accumulate", a.accum.ms}};
    size_t imax = 0;
    for (size_t i = 1; i < ZOFF_ARRAY_SIZE(cand); i++)
        if (cand[i].ms > cand[imax].ms) imax = i;
    double lb = cand[imax].ms;
    int ncpu = zoff__ncpus();
    double cpu_work =
        a.d2h.cpu + a.h2d.cpu + a.adam.cpu + a.sumsq.cpu + a.nvme.cpu + a.accum.cpu + a.d2d.cpu;
    double cpu_lb = cpu_work / ncpu;
    double eff = lb / step_ms;

    /* several ranks: every rank's Adam GB/s, collective time and step time, in rank order */
    double *per = NULL;
    if (o.ranks > 1) {
        zcomm_config cc;
        zcomm_config_default(&cc);
        cc.backend = ZCOMM_MPI;
        zcomm *wc = NULL;
        per = calloc((size_t)o.ranks * 3, sizeof *per);
        double mine[3] = {s.adam_gbps, comm_ms, step_ms};
        st = per ? zcomm_create(&cc, &wc) : -ENOMEM;
        if (st == ZOFF_OK) st = zcomm_all_gather(wc, mine, per, 3, ZCOMM_F64, NULL);
        zcomm_destroy(wc);
        if (st) {
            fprintf(stderr, "zoff bench step: rank %d: %s\n", env_rank, zoff__last_error_tls());
            free(per);
            goto out;
        }
    }
    const char *cols[] = {"what", "ms", "cpu_ms", "note"};
    zb_table *t = zb_table_new("bench step", 4, cols);
    char d[96];
    zb_table_rowf(t, "gpu busy alone|%.1f|%.1f|%d x %d layers x %.2f ms%s", a.busy.ms, a.busy.cpu,
                  o.accum, o.layers, busy_layer_ms, disturbed(a0.busy, a1.busy, d, sizeof d));
    if (!o.full_grads)
        zb_table_rowf(t, "d2d alone|%.1f|%.1f|%d x %s into the buckets (%s; sim: memcpy)%s",
                      a.d2d.ms, a.d2d.cpu, o.accum, zoff__fmt_bytes(o.params * 2, b1, sizeof b1),
                      o.push_inline ? "trainer's compute stream" : "trainer's copy stream",
                      disturbed(a0.d2d, a1.d2d, d, sizeof d));
    zb_table_rowf(t, "d2h alone|%.1f|%.1f|%d x %s of grads%s", a.d2h.ms, a.d2h.cpu, o.accum,
                  zoff__fmt_bytes(o.params * 2, b1, sizeof b1),
                  disturbed(a0.d2h, a1.d2h, d, sizeof d));
    zb_table_rowf(t, "h2d alone|%.1f|%.1f|%s of params%s", a.h2d.ms, a.h2d.cpu,
                  zoff__fmt_bytes(o.params * 2, b1, sizeof b1),
                  disturbed(a0.h2d, a1.h2d, d, sizeof d));
    zb_table_rowf(t, "adam alone|%.1f|%.1f|%s, %d thread(s), %.1f GB/s%s", a.adam.ms, a.adam.cpu,
                  zadam_isa_name(zadam_ctx_isa(sl.ctx)), zadam_ctx_threads(sl.ctx),
                  a.adam.ms > 0 ? (double)o.params *
                                      zopt_bytes_per_elem(o.optim, o.state, o.dtype, 1, o.dtype) /
                                      (a.adam.ms * 1e6)
                                : 0.0,
                  disturbed(a0.adam, a1.adam, d, sizeof d));
    zb_table_rowf(t, "sumsq alone|%.1f|%.1f|gradient norm, 1 thread (overlaps backward)%s",
                  a.sumsq.ms, a.sumsq.cpu, disturbed(a0.sumsq, a1.sumsq, d, sizeof d));
    if (o.accum > 1)
        zb_table_rowf(t, "accumulate alone|%.1f|%.1f|%d fp32 sums over all params, 1 thread%s",
                      a.accum.ms, a.accum.cpu, o.accum, disturbed(a0.accum, a1.accum, d, sizeof d));
    zb_table_rowf(t, "nvme alone|%.1f|%.1f|%s read + written%s", a.nvme.ms, a.nvme.cpu,
                  zoff__fmt_bytes(plan.nvme_bytes, b1, sizeof b1),
                  disturbed(a0.nvme, a1.nvme, d, sizeof d));
    zb_table_rowf(t,
                  "nvme bytes per param|%.4f|-|swap bytes per parameter (%s %s state), each "
                  "read and written once per step",
                  o.params ? (double)plan.nvme_bytes / (double)o.params : 0.0,
                  zopt_kind_name(o.optim), zstate_fmt_name(o.state));
    if (nv.store) {
        uint64_t swapped = (uint64_t)nv.swapped * zstate_bytes(o.optim, o.state, o.partition_numel);
        zb_table_rowf(t,
                      "crc32c alone|%.1f|%.1f|%s x 2 (out + in), %s, %.1f GB/s (%.1f per cpu "
                      "second), %.0f%% of nvme alone%s",
                      a.crc.ms, a.crc.cpu, zoff__fmt_bytes(swapped, b1, sizeof b1),
                      zoff__crc32c_hw() ? "sse4.2 crc32" : "table",
                      a.crc.ms > 0 ? 2.0 * (double)swapped / (a.crc.ms * 1e6) : 0.0,
                      a.crc.cpu > 0 ? 2.0 * (double)swapped / (a.crc.cpu * 1e6) : 0.0,
                      a.nvme.ms > 0 ? 100.0 * a.crc.ms / a.nvme.ms : 0.0,
                      o.crc ? " (included in nvme alone and the steps)"
                            : " (--crc 0: not in this run)");
    }
    zb_table_rowf(t, "lower bound|%.1f|-|largest alone: %s", lb, cand[imax].name);
    zb_table_rowf(t, "cpu-work bound|%.1f|%.1f|cpu ms of the components / %d cores", cpu_lb,
                  cpu_work, ncpu);
    zb_table_rowf(t, "step|%.1f|%.1f|mean of %d steps after 3 warm-up (cpu %.0f%% of %d cores)",
                  step_ms, step_cpu, o.steps, 100.0 * step_cpu / (step_ms * ncpu), ncpu);
    zb_table_rowf(t, "overlap efficiency|%.3f|-|lower bound / step", eff);
    zb_table_rowf(t, "vs cpu-work bound|%.3f|-|max(lower bound, cpu-work bound) / step",
                  ZOFF_MAX(lb, cpu_lb) / step_ms);
    zb_table_rowf(t, "adam in pipeline|%.1f|-|per step, %.1f GB/s", sum_adam / o.steps,
                  s.adam_gbps);
    zb_table_rowf(t, "nvme wait|%.1f|-|per step, update blocked on swap", sum_nvme_wait / o.steps);
    zb_table_rowf(t, "grads wait|%.1f|-|per step, zoff_step waiting for backward + D2H",
                  sum_wait_grads / o.steps);
    zb_table_rowf(t, "device peak|%.1f|-|MiB allocated on the device (params, %s)",
                  (double)s.device_peak_bytes / (double)ZOFF_MIB,
                  o.full_grads ? "full gradient buffers" : "2 scratch buffers, buckets");
    zb_table_rowf(t, "zoff device|%.1f|-|MiB zoff holds: %s",
                  (double)s.device_bytes / (double)ZOFF_MIB,
                  o.full_grads ? "none (trainer owns the gradients)" : "gradient buckets");
    zb_table_rowf(t, "gpu bytes/param|%.3f|-|(params + gradient buffers or buckets) / params",
                  s.gpu_bytes_per_param);
    if (o.ranks > 1) {
        double total_gbps = 0, max_comm = 0, max_step = 0;
        for (int k = 0; k < o.ranks; k++) {
            zb_table_rowf(t,
                          "rank %d|%.1f|-|step ms; adam %.1f GB/s on %llu params, "
                          "collectives %.1f ms/step",
                          k, per[3 * k + 2], per[3 * k], (unsigned long long)o.own_params,
                          per[3 * k + 1]);
            total_gbps += per[3 * k];
            max_comm = ZOFF_MAX(max_comm, per[3 * k + 1]);
            max_step = ZOFF_MAX(max_step, per[3 * k + 2]);
        }
        double n = (double)o.ranks;
        /* ring reduce-scatter + all-gather of 16-bit values: 2 x (N-1)/N x 2 bytes/param */
        double model_ms = 2.0 * (n - 1.0) / n * 2.0 * (double)o.params / (o.link_gbps * 1e6);
        zb_table_rowf(t, "adam total|-|-|%.1f GB/s over %d ranks (sum of the ranks' pipelines)",
                      total_gbps, o.ranks);
        if (ri.bucket_reduce)
            zb_table_rowf(t,
                          "collectives|%.1f|-|slowest rank, per step: buckets reduced on the "
                          "device as pushed (%s; fp32 widening, reduce, own share down) + "
                          "param all-gather",
                          max_comm, ri.bucket_backend);
        else
            zb_table_rowf(t,
                          "collectives|%.1f|-|slowest rank, per step (host path: MPI on host "
                          "memory, incl. fp32 widening)",
                          max_comm);
        zb_table_rowf(t,
                      "collectives modeled|%.1f|-|ring RS+AG of 16-bit grads/params at "
                      "%.0f GB/s link",
                      model_ms, o.link_gbps);
        zb_table_rowf(t, "comm share|%.3f|-|collectives / step (slowest rank)",
                      max_step > 0 ? max_comm / max_step : 0.0);
        free(per);
    }
    if (env_rank == 0) zb_table_print(t, stdout);
    rc = 0;
    if (env_rank == 0 && o.json && zb_table_write_json(t, o.json) != 0) {
        fprintf(stderr, "zoff bench step: cannot write %s\n", o.json);
        rc = 1;
    }
    zb_table_free(t);
    fprintf(con,
            "sim device figures: the scheduler, this CPU and this disk; no GPU was measured "
            "(%s pinned host, %s swap).\n",
            zoff__fmt_bytes(s.pinned_bytes + s.pageable_bytes, b1, sizeof b1),
            zoff__fmt_bytes(s.nvme_bytes, b2, sizeof b2));
out:
    model_close(&m);
    nvme_close(&nv);
    slice_close(&sl);
    if (con != stdout) fclose(con);
    return rc;
}
