/*
 * bench_stream.c — `zoff bench step --stream`: whole training steps of a synthetic model whose
 * 16-bit weights are streamed layer by layer (zoff_fetch / zoff_release with prefetch) on the
 * sim device, against lower bounds measured in the same run.
 *
 * The trainer: L units of one streamed parameter of N/L elements. Forward: for each layer, fetch
 * it, queue --busy-ms of stand-in compute on the trainer's stream, release it. Backward: the same
 * in reverse order, with the layer's gradient handed over behind its compute. Then zoff_step.
 * Each layer's stand-in gradient is written into one trainer-owned scratch buffer (one layer's
 * size, reused by every layer) and handed to zoff's device gradient buckets with zoff_grad_push
 * on the trainer's stream (params registered with dev_grad NULL): no per-layer gradient buffers.
 * The device (sim_gpu_bytes) holds zoff's slab (prefetch_depth + 1 slots), its gradient buckets,
 * the scratch, one slot for the H2D measured alone and a 64 MiB margin: far less than the
 * 16-bit weights.
 *
 * Measured alone in the same run, before and after the timed steps (averaged; this machine is
 * noisy): the stand-in compute (2 L busy ops), the trainer stream's device-to-device copies of
 * the L gradients into the buckets (a sim device of its own, the same sizes: on the sim a host
 * memcpy in the stream's worker, on a GPU an HBM copy; that stream's work is busy + those
 * copies, as in bench_step.c) and the H2D copy of the bytes a step uploads (slot-sized copies
 * from a host region larger than the caches, through the same sim link).
 *   fwd+bwd bound  = max(compute alone + d2d alone, H2D alone)
 *   overlap efficiency = fwd+bwd bound / measured fwd+bwd time (1: the fetches are hidden)
 *   vs H2D bound   = measured fwd+bwd time / H2D alone (transfer-bound runs: <= 1.15 wanted)
 * The optimizer step (CPU Adam into the pinned 16-bit host copies) is reported separately; in
 * the sync pipeline it follows backward.
 *
 * These are sim figures: the "GPU" is a sleeping thread and its copies are memcpy calls throttled
 * to --pcie-gbps; nothing here measures a GPU.
 * Owns: the streamed synthetic trainer and its report.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/common.h"
#include "harness.h"

typedef struct sb_opts {
    uint64_t params;
    int layers;
    zoff_tier tier;
    double busy_ms; /* per layer and pass */
    int steps;
    const char *nvme_path;
    const char *json;
    zoff_dtype dtype;
    double pcie_gbps;
    int threads;
    int prefetch_depth;
    uint64_t gpu_bytes; /* 0: auto */
    size_t partition_numel;
} sb_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: zoff bench step --stream [--params N (256M)] [--layers L (16)]\n"
               "                       [--tier cpu|nvme] [--busy-ms MS per layer and pass (0)]\n"
               "                       [--steps S (3)] [--nvme-path DIR (/var/tmp)]\n"
               "                       [--dtype fp16|bf16] [--pcie-gbps G (25)] [--threads T]\n"
               "                       [--prefetch-depth D (2)] [--gpu-mem BYTES (auto)]\n"
               "                       [--partition-numel N] [--json FILE]\n"
               "  The sim device gets prefetch_depth + 1 slots, the gradient buckets, one layer's\n"
               "  gradient scratch and a margin:\n"
               "  much less than the 16-bit weights.\n");
}

typedef struct sb_model {
    zoff_runtime *rt;
    zoff_stream s;
    int layers;
    size_t *numel;
    int *id, *unit;
    zoff_dtype dtype;
    void *gscratch; /* one layer's stand-in gradient (trainer-owned), pushed into the buckets */
} sb_model;

static void model_close(sb_model *m)
{
    if (m->rt) {
        if (m->gscratch) zoff_device_free(m->rt, m->gscratch);
        if (m->s) zoff_stream_destroy(m->rt, m->s);
    }
    zoff_destroy(m->rt);
    free(m->numel);
    free(m->id);
    free(m->unit);
    memset(m, 0, sizeof *m);
}

static zoff_status model_open(sb_model *m, const sb_opts *o, const zoff_config *c)
{
    zoff_status st = ZOFF_OK;
    memset(m, 0, sizeof *m);
    ZOFF_CHECK(zoff_create(c, &m->rt));
    ZOFF_CHECK(zoff_stream_create(m->rt, &m->s));
    int L = o->layers;
    m->layers = L;
    m->numel = calloc((size_t)L, sizeof *m->numel);
    m->id = calloc((size_t)L, sizeof *m->id);
    m->unit = calloc((size_t)L, sizeof *m->unit);
    m->dtype = o->dtype;
    size_t per = (size_t)(o->params / (uint64_t)L);
    size_t last = (size_t)(o->params - per * (uint64_t)(L - 1));
    size_t maxn = ZOFF_MAX(per, last);
    uint16_t *g16 = malloc(maxn * 2);
    if (!m->numel || !m->id || !m->unit || !g16) {
        free(g16);
        return zoff__err(-ENOMEM, "bench: out of memory");
    }
    for (size_t i = 0; i < maxn; i++) g16[i] = o->dtype == ZOFF_DTYPE_BF16 ? 0x3c00 : 0x2000;
    st = zoff_device_alloc(m->rt, maxn * 2, &m->gscratch);
    if (!st) st = zoff_device_upload(m->rt, m->gscratch, g16, maxn * 2, m->s);
    for (int l = 0; l < L && st == ZOFF_OK; l++) {
        m->numel[l] = l == L - 1 ? last : per;
        char name[32];
        snprintf(name, sizeof name, "layer%d.w", l);
        /* initial values: zeros (init_master NULL; a copy of N floats held until finalize
         * would not fit the 4 G-parameter run); dev_grad NULL: gradients go through buckets */
        if (!st)
            st = zoff_add_param(m->rt, name, m->numel[l], o->dtype, NULL, NULL, NULL, 0, &m->id[l]);
        if (!st) st = zoff_add_unit(m->rt, name, &m->id[l], 1, &m->unit[l]);
    }
    free(g16);
    if (!st) st = zoff_finalize(m->rt);
    return st;
}

/* Hands layer l's gradient over behind the work queued on the trainer's stream: a copy from the
 * scratch into zoff's current gradient bucket, queued on that stream. */
static zoff_status hand_grad(sb_model *m, int l)
{
    return zoff_grad_push(m->rt, m->id[l], m->gscratch, m->numel[l], m->dtype, m->s);
}

/* Forward and backward of one step; returns after the trainer's stream drained. */
static zoff_status fwd_bwd(sb_model *m, uint64_t busy_ns)
{
    for (int l = 0; l < m->layers; l++) {
        ZOFF_CHECK(zoff_fetch(m->rt, m->unit[l], m->s));
        if (busy_ns) ZOFF_CHECK(zoff_stream_busy(m->rt, m->s, busy_ns));
        ZOFF_CHECK(zoff_release(m->rt, m->unit[l], m->s));
    }
    for (int l = m->layers - 1; l >= 0; l--) {
        ZOFF_CHECK(zoff_fetch(m->rt, m->unit[l], m->s));
        if (busy_ns) ZOFF_CHECK(zoff_stream_busy(m->rt, m->s, busy_ns));
        ZOFF_CHECK(hand_grad(m, l));
        ZOFF_CHECK(zoff_release(m->rt, m->unit[l], m->s));
    }
    return zoff_stream_synchronize(m->rt, m->s);
}

/* The trainer stream's copies of one step's gradients into the buckets, alone. */
static zoff_status d2d_alone(const sb_model *m, double *ms)
{
    size_t *bytes = calloc((size_t)m->layers, sizeof *bytes);
    if (!bytes) return zoff__err(-ENOMEM, "bench: out of memory");
    for (int l = 0; l < m->layers; l++) bytes[l] = m->numel[l] * 2;
    double cpu = 0;
    zoff_status st = zb_d2d_alone(bytes, m->layers, 1, ms, &cpu);
    free(bytes);
    return st;
}

/* The stand-in compute of one step, alone. */
static zoff_status busy_alone(sb_model *m, uint64_t busy_ns, double *ms)
{
    double t0 = zb_now_ms();
    for (int l = 0; l < 2 * m->layers && busy_ns; l++)
        ZOFF_CHECK(zoff_stream_busy(m->rt, m->s, busy_ns));
    ZOFF_CHECK(zoff_stream_synchronize(m->rt, m->s));
    *ms = zb_now_ms() - t0;
    return ZOFF_OK;
}

/* `bytes` of H2D through the same sim link, in slot-sized copies from a host region larger
 * than the caches (like the real uploads, which read every unit's host copy in turn). */
static zoff_status h2d_alone(sb_model *m, uint64_t slot, uint64_t bytes, double *ms)
{
    zoff_status st = ZOFF_OK;
    void *dev = NULL;
    uint64_t region = ZOFF_MAX(slot, ZOFF_MIN(bytes, (uint64_t)256 << 20));
    region = region / slot * slot;
    uint8_t *host = malloc((size_t)region);
    if (!host) return zoff__err(-ENOMEM, "bench: out of memory");
    memset(host, 1, (size_t)region);
    st = zoff_device_alloc(m->rt, (size_t)slot, &dev);
    double t0 = zb_now_ms();
    for (uint64_t done = 0; st == ZOFF_OK && done < bytes; done += slot)
        st = zoff_device_upload(m->rt, dev, host + done % region,
                                (size_t)ZOFF_MIN(slot, bytes - done), m->s);
    *ms = zb_now_ms() - t0;
    if (dev) zoff_device_free(m->rt, dev);
    free(host);
    return st;
}

static int parse_args(int argc, char **argv, sb_opts *o)
{
    const zb_step_args common = {.params = &o->params,
                                 .layers = &o->layers,
                                 .tier = &o->tier,
                                 .busy_ms = &o->busy_ms,
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
        if (!strcmp(argv[i], "--stream")) {
            continue;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        } else if (zb_arg_match(&i, argc, argv, "--prefetch-depth", &v)) {
            o->prefetch_depth = atoi(v);
        } else if (zb_arg_match(&i, argc, argv, "--gpu-mem", &v)) {
            if (zoff__parse_size(v, &n) || n == 0) return -1;
            o->gpu_bytes = n;
        } else {
            fprintf(stderr, "zoff bench step --stream: unknown argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (o->layers < 1 || o->steps < 1 || o->params < (uint64_t)o->layers || o->busy_ms < 0 ||
        o->prefetch_depth < 0)
        return -1;
    return 0;
}

int zoff_bench_step_stream_main(int argc, char **argv)
{
    sb_opts o = {.params = (uint64_t)256 << 20,
                 .layers = 16,
                 .tier = ZOFF_TIER_CPU,
                 .busy_ms = 0.0,
                 .steps = 3,
                 .nvme_path = "/var/tmp",
                 .dtype = ZOFF_DTYPE_F16,
                 .pcie_gbps = 25.0,
                 .prefetch_depth = 2};
    int pa = parse_args(argc, argv, &o);
    if (pa != 0) {
        if (pa < 0) usage(stderr);
        return pa < 0 ? 2 : 0;
    }
    zoff_config c;
    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    c.fp16_enabled = o.dtype == ZOFF_DTYPE_F16;
    c.bf16_enabled = o.dtype == ZOFF_DTYPE_BF16;
    c.tier = o.tier;
    c.overlap = ZOFF_OVERLAP_SYNC;
    c.cpu_threads = o.threads;
    c.sim_pcie_gbps = o.pcie_gbps;
    c.stream_params = 1;
    c.prefetch_depth = o.prefetch_depth;
    if (o.partition_numel) c.partition_numel = o.partition_numel;
    if (o.tier == ZOFF_TIER_NVME) snprintf(c.nvme_path, sizeof c.nvme_path, "%s", o.nvme_path);
    uint64_t weights = o.params * 2;
    uint64_t unit_bytes =
        ZOFF_ALIGN_UP((o.params + (uint64_t)o.layers - 1) / (uint64_t)o.layers * 2, 4096u);
    uint64_t slab = unit_bytes * (uint64_t)(o.prefetch_depth + 1);
    /* the slab + the gradient buckets (grown so that count - 1 of them hold one layer's
     * gradient: zoff.grad_bucket_grow) + the gradient scratch + one slot for the H2D measured
     * alone + a margin */
    uint64_t cnt = (uint64_t)c.grad_bucket_count;
    uint64_t per_layer = (o.params + (uint64_t)o.layers - 1) / (uint64_t)o.layers;
    uint64_t bucket_numel =
        ZOFF_MAX((uint64_t)c.grad_bucket_numel, (per_layer + cnt - 2) / (cnt - 1) + 64);
    uint64_t buckets = cnt * ZOFF_ALIGN_UP(bucket_numel * 2, 256u);
    c.sim_gpu_bytes =
        (size_t)(o.gpu_bytes ? o.gpu_bytes : slab + buckets + 2 * unit_bytes + 64 * ZOFF_MIB);

    char b1[32], b2[32], b3[32];
    printf("zoff bench step --stream: %llu params (%s of 16-bit weights, %s of state), %d layers, "
           "tier %s, %s, prefetch depth %d, sim device %s, sim PCIe %.1f GB/s per direction\n",
           (unsigned long long)o.params, zoff__fmt_bytes(weights, b1, sizeof b1),
           zoff__fmt_bytes(o.params * 16, b2, sizeof b2), o.layers,
           o.tier == ZOFF_TIER_CPU ? "cpu" : "nvme", zoff_dtype_name(o.dtype), o.prefetch_depth,
           zoff__fmt_bytes(c.sim_gpu_bytes, b3, sizeof b3), o.pcie_gbps);
    fflush(stdout);

    sb_model m;
    int rc = 1;
    uint64_t busy_ns = (uint64_t)(o.busy_ms * 1e6);
    zoff_status st = model_open(&m, &o, &c);
    zoff_stats s0 = ZOFF_STATS_INIT, s1 = ZOFF_STATS_INIT;
    double fb = 0, stepms = 0, adam = 0, fb_cpu = 0;
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    /* one warm-up step (first touch of the host copies and the slab) */
    double busy0 = 0, h2d0 = 0, d2d0 = 0, d2d = 0;
    if (!st) st = fwd_bwd(&m, busy_ns);
    if (!st) st = zoff_step(m.rt, NULL, &r);
    if (!st) st = zoff_params_ready(m.rt, NULL);
    if (!st) st = zoff_get_stats(m.rt, &s0);
    /* the components alone, before the timed steps (and again after: the mean is used) */
    uint64_t up0 = s0.stream_h2d_bytes; /* the warm-up step's uploads (+ the first prefetch) */
    if (!st) st = busy_alone(&m, busy_ns, &busy0);
    if (!st) st = d2d_alone(&m, &d2d0);
    if (!st) st = h2d_alone(&m, s0.slot_bytes, up0, &h2d0);
    if (!st) st = zoff_get_stats(m.rt, &s0);
    for (int i = 0; i < o.steps && st == ZOFF_OK; i++) {
        double t0 = zb_now_ms(), c0 = zb_cpu_ms();
        st = fwd_bwd(&m, busy_ns);
        double t1 = zb_now_ms();
        fb += t1 - t0;
        fb_cpu += zb_cpu_ms() - c0;
        if (!st) st = zoff_step(m.rt, NULL, &r);
        if (!st) st = zoff_params_ready(m.rt, NULL);
        stepms += zb_now_ms() - t1;
        adam += r.adam_ms;
    }
    if (!st) st = zoff_get_stats(m.rt, &s1);
    double busy = 0, h2d = 0;
    uint64_t up = (s1.stream_h2d_bytes - s0.stream_h2d_bytes) / (uint64_t)o.steps;
    if (!st) st = busy_alone(&m, busy_ns, &busy);
    if (!st) st = d2d_alone(&m, &d2d);
    if (!st) st = h2d_alone(&m, s1.slot_bytes, up, &h2d);
    /* before: scaled to this step's bytes; the two runs averaged (the machine is noisy) */
    double h2d_b = up0 ? h2d0 * (double)up / (double)up0 : h2d;
    char dist[64] = "";
    if (ZOFF_MAX(busy, busy0) > 1.3 * ZOFF_MIN(busy, busy0) && ZOFF_MIN(busy, busy0) > 0)
        snprintf(dist, sizeof dist, " (disturbed: %.0f / %.0f before/after)", busy0, busy);
    busy = (busy + busy0) / 2;
    d2d = (d2d + d2d0) / 2;
    h2d = (h2d + h2d_b) / 2;
    if (st) {
        fprintf(stderr, "zoff bench step --stream: %s\n",
                m.rt ? zoff_last_error(m.rt) : zoff__last_error_tls());
        goto out;
    }
    fb /= o.steps;
    fb_cpu /= o.steps;
    stepms /= o.steps;
    adam /= o.steps;
    double wait = (s1.fetch_wait_ms - s0.fetch_wait_ms) / o.steps;
    double lb = ZOFF_MAX(busy + d2d, h2d);
    double eff = fb > 0 ? lb / fb : 0.0;
    uint64_t fetches = (s1.fetches - s0.fetches) / (uint64_t)o.steps;
    uint64_t hits = (s1.fetch_hits - s0.fetch_hits) / (uint64_t)o.steps;
    uint64_t host_bytes = s1.pinned_bytes + s1.pageable_bytes;

    const char *cols[] = {"what", "ms", "cpu_ms", "note"};
    zb_table *t = zb_table_new("bench step --stream", 4, cols);
    zb_table_rowf(t, "compute alone|%.1f|-|%d layers x 2 passes x %.2f ms (nominal %.1f)%s", busy,
                  o.layers, o.busy_ms, 2.0 * o.layers * o.busy_ms, dist);
    zb_table_rowf(t,
                  "d2d alone|%.1f|-|%s of gradients into the buckets (trainer stream; sim: "
                  "memcpy)",
                  d2d, zoff__fmt_bytes(o.params * 2, b1, sizeof b1));
    zb_table_rowf(t, "h2d alone|%.1f|-|%s (the bytes one step uploaded)", h2d,
                  zoff__fmt_bytes(up, b1, sizeof b1));
    zb_table_rowf(t, "fwd+bwd bound|%.1f|-|max(compute alone + d2d alone, h2d alone)", lb);
    zb_table_rowf(t, "fwd+bwd|%.1f|%.1f|mean of %d steps after 1 warm-up", fb, fb_cpu, o.steps);
    zb_table_rowf(t, "overlap efficiency|%.3f|-|fwd+bwd bound / fwd+bwd", eff);
    zb_table_rowf(t, "vs h2d bound|%.3f|-|fwd+bwd / h2d alone (transfer-bound: <= 1.15)",
                  h2d > 0 ? fb / h2d : 0.0);
    zb_table_rowf(t, "fetch wait|%.1f|-|per step, the trainer's stream waiting for uploads", wait);
    zb_table_rowf(t, "h2d bytes per step|%llu|-|%s; %llu fetches, %llu already resident",
                  (unsigned long long)up, zoff__fmt_bytes(up, b1, sizeof b1),
                  (unsigned long long)fetches, (unsigned long long)hits);
    zb_table_rowf(t, "optimizer step|%.1f|-|zoff_step: Adam %.1f ms into the host copies", stepms,
                  adam);
    zb_table_rowf(t, "step|%.1f|-|fwd+bwd + optimizer step", fb + stepms);
    zb_table_rowf(t, "device bytes|%llu|-|zoff's slab %s (%d slots of %s) + gradient buckets %s",
                  (unsigned long long)s1.device_bytes,
                  zoff__fmt_bytes((uint64_t)s1.nslots * s1.slot_bytes, b1, sizeof b1), s1.nslots,
                  zoff__fmt_bytes(s1.slot_bytes, b2, sizeof b2),
                  zoff__fmt_bytes(s1.bucket_bytes, b3, sizeof b3));
    zb_table_rowf(t, "host bytes per param|%.2f|-|%s pinned+pageable host memory of zoff",
                  (double)host_bytes / (double)o.params,
                  zoff__fmt_bytes(host_bytes, b1, sizeof b1));
    zb_table_print(t, stdout);
    rc = 0;
    if (o.json && zb_table_write_json(t, o.json) != 0) {
        fprintf(stderr, "zoff bench step --stream: cannot write %s\n", o.json);
        rc = 1;
    }
    zb_table_free(t);
    printf("sim device figures: the scheduler, this CPU and this disk; no GPU was measured "
           "(%s swap).\n",
           zoff__fmt_bytes(s1.nvme_bytes, b1, sizeof b1));
out:
    model_close(&m);
    return rc;
}
