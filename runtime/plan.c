/*
 * plan.c — the memory layout of a runtime and the plan report: bytes per tier (GPU, pinned host,
 * pageable host, NVMe) computed before anything is allocated, compared with what the machine has
 * (device memory, MemAvailable, free space under each nvme_path), with advice naming the knob
 * to change. zoff_plan (public) and zoff_finalize (which refuses a layout that does not fit and
 * sizes the pinned arena exactly from it) share this code.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/config.h"
#include "runtime/rt.h"

static uint64_t round4k(uint64_t x)
{
    return ZOFF_ALIGN_UP(x, 4096u);
}

zoff_status zrt_layout_compute(const zoff_config *cfg, uint64_t numel, uint64_t param_bytes,
                               int any_f32, zrt_layout *out)
{
    zrt_layout l;
    memset(&l, 0, sizeof l);
    if (cfg->tile_numel == 0) return zoff__err(ZOFF_ECONFIG, "tile_numel must be > 0");
    l.numel = numel;
    l.param_bytes = param_bytes;
    l.ngrad_bufs = cfg->overlap == ZOFF_OVERLAP_DELAYED ? 2 : 1;
    l.grad_buf_bytes = round4k(param_bytes);
    l.hold_bytes = cfg->overlap == ZOFF_OVERLAP_DELAYED ? round4k(param_bytes) : 0;
    l.nstage = ZRT_NSTAGE;
    l.stage_bytes = round4k((uint64_t)cfg->tile_numel * (any_f32 ? 4u : 2u));
    ZOFF_CHECK(zstore_compute_sizes(numel, cfg->partition_numel, cfg->tier, cfg->ratio,
                                    cfg->buffer_count, &l.store));
    l.arena_bytes = (uint64_t)l.ngrad_bufs * l.grad_buf_bytes + l.hold_bytes +
                    (uint64_t)l.nstage * l.stage_bytes + l.store.resident_bytes +
                    l.store.pool_bytes;
    l.gpu_bytes = 2 * param_bytes;
    l.no_offload_bytes = 16 * numel;
    *out = l;
    return ZOFF_OK;
}

void zrt_layout_stream(zrt_layout *l, uint64_t streamed_bytes, uint64_t slab_bytes)
{
    l->stream_host_bytes = round4k(streamed_bytes);
    l->slab_bytes = slab_bytes;
    l->arena_bytes += l->stream_host_bytes;
    l->gpu_bytes = l->gpu_bytes - ZOFF_MIN(l->gpu_bytes, streamed_bytes) + slab_bytes;
}

/* Free bytes under the comma-separated paths: *min_free is the smallest (swap is striped
 * evenly), *sum the total; *npaths counts them. A path that cannot be examined is an error. */
static zoff_status nvme_free(const char *paths, uint64_t *min_free, uint64_t *sum, int *npaths,
                             char *worst, size_t worst_len)
{
    char buf[ZOFF_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", paths);
    *min_free = UINT64_MAX;
    *sum = 0;
    *npaths = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        uint64_t f = 0;
        ZOFF_CHECK(zswap_free_bytes(tok, &f));
        if (f < *min_free) {
            *min_free = f;
            snprintf(worst, worst_len, "%s", tok);
        }
        *sum += f;
        (*npaths)++;
    }
    if (*npaths == 0) *min_free = 0;
    return ZOFF_OK;
}

zoff_status zrt_plan_report(const zoff_config *cfg, const zrt_layout *l, zdev *dev, int check_gpu,
                            zoff_plan_report *out)
{
    zoff_plan_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.gpu_bytes = l->gpu_bytes;
    if (cfg->pin_memory)
        r.pinned_bytes = l->arena_bytes;
    else
        r.pageable_bytes = l->arena_bytes;
    r.nvme_bytes = l->store.swap_bytes;
    r.no_offload_bytes = l->no_offload_bytes;
    r.host_available = zoff__mem_available();
    r.fits = 1;
    if (dev) {
        size_t fr = 0, tot = 0;
        if (zdev_mem_info(dev, &fr, &tot) == ZOFF_OK) r.gpu_available = fr;
    } else if (cfg->device == ZOFF_DEVICE_SIM) {
        r.gpu_available = cfg->sim_gpu_bytes;
    }
    char a[64], b[64], c[64];
    size_t used = 0;
#define ADVISE(...)                                                                                \
    do {                                                                                           \
        if (used < sizeof r.advice) {                                                              \
            int n_ = snprintf(r.advice + used, sizeof r.advice - used, "%s", used ? "; " : "");    \
            if (n_ > 0) used += (size_t)n_;                                                        \
        }                                                                                          \
        if (used < sizeof r.advice) {                                                              \
            int n_ = snprintf(r.advice + used, sizeof r.advice - used, __VA_ARGS__);               \
            if (n_ > 0) used += (size_t)n_;                                                        \
        }                                                                                          \
        r.fits = 0;                                                                                \
    } while (0)

    if (check_gpu && r.gpu_available && l->gpu_bytes > r.gpu_available) {
        int sim = dev ? zdev_kind(dev) == ZOFF_DEVICE_SIM : cfg->device == ZOFF_DEVICE_SIM;
        if (l->slab_bytes)
            ADVISE("streamed weights need %s on the device (%s of unit slots + gradients + "
                   "activations) but %s is free: lower zoff.prefetch_depth (offload_param."
                   "buffer_count), use more, smaller units, or a smaller micro-batch",
                   zoff__fmt_bytes(l->gpu_bytes, a, sizeof a),
                   zoff__fmt_bytes(l->slab_bytes, c, sizeof c),
                   zoff__fmt_bytes(r.gpu_available, b, sizeof b));
        else
            ADVISE("params + grads need %s on the device but %s is free: the model does not fit "
                   "this GPU even with offload (%s)",
                   zoff__fmt_bytes(l->gpu_bytes, a, sizeof a),
                   zoff__fmt_bytes(r.gpu_available, b, sizeof b),
                   sim ? "sim device: raise zoff.sim_gpu_bytes, or stream the weights "
                         "(offload_param.device cpu)"
                       : "stream the weights (zoff train --stream, offload_param.device cpu)");
    }

    uint64_t host_need = l->arena_bytes;
    if (r.host_available && host_need > r.host_available) {
        uint64_t state = l->store.resident_bytes;
        if (cfg->tier == ZOFF_TIER_CPU && state > 0)
            ADVISE("optimizer state needs %s %s (of %s in all) but %s is available: set "
                   "zero_optimization.offload_optimizer.device to nvme or lower ratio",
                   zoff__fmt_bytes(state, a, sizeof a), cfg->pin_memory ? "pinned" : "host",
                   zoff__fmt_bytes(host_need, c, sizeof c),
                   zoff__fmt_bytes(r.host_available, b, sizeof b));
        else if (l->store.resident_bytes > 0)
            ADVISE("%s of host memory is needed (%s of it resident optimizer state) but %s is "
                   "available: lower zero_optimization.offload_optimizer.ratio (now %g)",
                   zoff__fmt_bytes(host_need, a, sizeof a),
                   zoff__fmt_bytes(l->store.resident_bytes, c, sizeof c),
                   zoff__fmt_bytes(r.host_available, b, sizeof b), (double)cfg->ratio);
        else if (l->store.pool_bytes > l->grad_buf_bytes)
            ADVISE("%s of host memory is needed (%s of it swap buffers) but %s is available: "
                   "lower zero_optimization.offload_optimizer.buffer_count (now %d) or "
                   "partition_numel (now %zu)",
                   zoff__fmt_bytes(host_need, a, sizeof a),
                   zoff__fmt_bytes(l->store.pool_bytes, c, sizeof c),
                   zoff__fmt_bytes(r.host_available, b, sizeof b), cfg->buffer_count,
                   cfg->partition_numel);
        else
            ADVISE("%s of host memory is needed (%s of it the gradient buffer%s) but %s is "
                   "available: the 16-bit gradients alone do not fit this host%s",
                   zoff__fmt_bytes(host_need, a, sizeof a),
                   zoff__fmt_bytes((uint64_t)l->ngrad_bufs * l->grad_buf_bytes, c, sizeof c),
                   l->ngrad_bufs > 1 ? "s" : "", zoff__fmt_bytes(r.host_available, b, sizeof b),
                   l->ngrad_bufs > 1 ? " (overlap delayed doubles them: use sync)" : "");
    }

    if (l->store.swapped_parts > 0) {
        uint64_t min_free = 0, sum = 0;
        int npaths = 0;
        char worst[ZOFF_PATH_MAX] = "";
        zoff_status st = nvme_free(cfg->nvme_path, &min_free, &sum, &npaths, worst, sizeof worst);
        if (st < 0) {
            ADVISE("cannot examine zero_optimization.offload_optimizer.nvme_path '%.160s': %.200s",
                   cfg->nvme_path, zoff__last_error_tls());
        } else if (npaths == 0) {
            ADVISE("%s of optimizer state is swapped but zero_optimization.offload_optimizer."
                   "nvme_path is empty",
                   zoff__fmt_bytes(l->store.swap_bytes, a, sizeof a));
        } else {
            r.nvme_available = sum;
            /* striped evenly: each path holds its share plus one stripe of slack */
            uint64_t share =
                (l->store.swap_bytes + (uint64_t)npaths - 1) / (uint64_t)npaths + 16 * ZOFF_MIB;
            if (share > min_free)
                ADVISE(
                    "swap needs %s under %.160s but %s is free there: free disk space, add a path "
                    "to zero_optimization.offload_optimizer.nvme_path, or raise ratio (now %g)",
                    zoff__fmt_bytes(share, a, sizeof a), worst,
                    zoff__fmt_bytes(min_free, b, sizeof b), (double)cfg->ratio);
        }
    }
#undef ADVISE
    *out = r;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_plan_shape_default(zoff_plan_shape *s)
{
    if (!s) return zoff__err(ZOFF_EINVAL, "zoff_plan_shape_default: s is NULL");
    memset(s, 0, sizeof *s);
    s->struct_size = sizeof *s;
    s->batch = 1;
    s->seq_len = 2048;
    s->gpu_tflops = 400.0;
    s->pcie_gbps = 25.0;
    return ZOFF_OK;
}

/* The streaming figures of a plan (docs/runtime.md, "Parameter streaming"): all weights are
 * streamed in `layers` equal units; the device holds prefetch_depth + 1 slots, the gradient
 * path's device bytes (already in l->gpu_bytes) and the activations of one micro-batch with
 * activation checkpointing per block: the block inputs (2 B x tokens x h x layers) plus one
 * block's working set (34 B x tokens x h, Korthikanti et al. 2022, without the s^2 score term of
 * a fused attention). */
static void plan_stream(const zoff_config *cfg, uint64_t params, size_t esize,
                        const zoff_plan_shape *sh, zrt_layout *l, zoff_plan_report *r)
{
    double p = (double)params;
    int layers = sh->layers;
    if (layers <= 0) layers = (int)ceil(cbrt(p / (12.0 * 128.0 * 128.0)));
    if (layers < 1) layers = 1;
    double h = sh->hidden > 0 ? (double)sh->hidden : sqrt(p / (12.0 * (double)layers));
    uint64_t unit = ((params + (uint64_t)layers - 1) / (uint64_t)layers) * esize;
    uint64_t slot = cfg->stream_slot_bytes > unit ? cfg->stream_slot_bytes : unit;
    slot = ZOFF_ALIGN_UP(slot, 256u);
    int nslots = cfg->prefetch_depth + 1;
    double tokens = (double)sh->batch * (double)sh->seq_len;
    uint64_t act = (uint64_t)(2.0 * tokens * h * (double)layers + 34.0 * tokens * h);
    zrt_layout_stream(l, params * esize, (uint64_t)nslots * slot);
    l->gpu_bytes += act;
    r->streamed = 1;
    r->layers = layers;
    r->slot_bytes = slot;
    r->nslots = nslots;
    r->activation_bytes = act;
    /* forward uploads every unit; backward again, except the units still in a slot at the turn */
    uint64_t kept = (uint64_t)ZOFF_MIN(nslots, layers) * unit;
    r->h2d_bytes_per_step = 2 * params * esize - ZOFF_MIN(kept, params * esize);
    r->d2h_bytes_per_step = params * esize;
    /* 2 x 2 B/param up vs 6 FLOP/param/token: tokens >= (4 / 6) x FLOP/s / (B/s) */
    double f = sh->gpu_tflops * 1e12, b = sh->pcie_gbps * 1e9;
    r->min_tokens_per_microbatch = (uint64_t)ceil(2.0 * (double)esize * f / (6.0 * b));
}

ZOFF_API zoff_status zoff_plan(const zoff_config *cfg_in, size_t total_params,
                               zoff_plan_report *out)
{
    return zoff_plan_with_shape(cfg_in, total_params, NULL, out);
}

ZOFF_API zoff_status zoff_plan_with_shape(const zoff_config *cfg_in, size_t total_params,
                                          const zoff_plan_shape *shape, zoff_plan_report *out)
{
    zoff__clear_error();
    zoff_status st = ZOFF_OK;
    zdev *dev = NULL;
    if (!cfg_in || !out) return zoff__err(ZOFF_EINVAL, "zoff_plan: cfg and out must not be NULL");
    if (cfg_in->struct_size == 0 || cfg_in->struct_size > sizeof(zoff_config))
        return zoff__err(ZOFF_EINVAL,
                         "zoff_plan: cfg->struct_size is %zu: initialise it with "
                         "zoff_config_default()",
                         cfg_in->struct_size);
    if (total_params == 0) return zoff__err(ZOFF_EINVAL, "zoff_plan: total_params is 0");
    zoff_config cfg;
    ZOFF_CHECK(zoff_config_default(&cfg));
    memcpy(&cfg, cfg_in, cfg_in->struct_size);
    cfg.struct_size = sizeof cfg;
    ZOFF_CHECK(zoff__config_apply_env(&cfg));
    ZOFF_CHECK(zoff__config_validate(&cfg));
    size_t esize = (cfg.fp16_enabled || cfg.bf16_enabled) ? 2 : 4;
    zrt_layout l;
    ZOFF_CHECK(
        zrt_layout_compute(&cfg, total_params, (uint64_t)total_params * esize, esize == 4, &l));
    zoff_plan_shape sh;
    zoff_plan_shape_default(&sh);
    if (shape) {
        if (shape->struct_size == 0 || shape->struct_size > sizeof sh)
            return zoff__err(ZOFF_EINVAL, "zoff_plan_with_shape: shape->struct_size is %zu",
                             shape->struct_size);
        memcpy(&sh, shape, shape->struct_size);
        if (sh.batch < 1 || sh.seq_len < 1 || sh.layers < 0 || sh.hidden < 0 ||
            !(sh.gpu_tflops > 0) || !(sh.pcie_gbps > 0))
            return zoff__err(ZOFF_EINVAL,
                             "zoff_plan_with_shape: batch, seq_len, gpu_tflops and pcie_gbps "
                             "must be > 0, layers and hidden >= 0");
    }
    zoff_plan_report sr;
    memset(&sr, 0, sizeof sr);
    if (cfg.stream_params) plan_stream(&cfg, total_params, esize, &sh, &l, &sr);
    zdev_config dc;
    zdev_config_default(&dc);
    dc.kind = cfg.device;
    dc.cuda_device = cfg.cuda_device;
    dc.sim_bytes = cfg.sim_gpu_bytes;
    dc.sim_pcie_gbps = cfg.sim_pcie_gbps;
    if (zdev_open(&dc, &dev) < 0) {
        ZOFF_INFO(ZOFF_SUB_INIT, "zoff_plan: no device to ask (%s): GPU side not checked",
                  zoff__last_error_tls());
        dev = NULL;
    }
    zoff_plan_report r;
    st = zrt_plan_report(&cfg, &l, dev, 1, &r);
    if (dev) zdev_close(dev);
    if (st < 0) return st;
    r.streamed = sr.streamed;
    r.layers = sr.layers;
    r.slot_bytes = sr.slot_bytes;
    r.nslots = sr.nslots;
    r.activation_bytes = sr.activation_bytes;
    r.h2d_bytes_per_step = sr.h2d_bytes_per_step;
    r.d2h_bytes_per_step = sr.d2h_bytes_per_step;
    r.min_tokens_per_microbatch = sr.min_tokens_per_microbatch;
    *out = r;
    zoff__clear_error();
    return ZOFF_OK;
}
