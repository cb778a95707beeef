/*
 * plan.c — the memory layout of a runtime and the plan report: bytes per tier (GPU, pinned host,
 * pageable host, NVMe) computed before anything is allocated, compared with what the machine has
 * (device memory, MemAvailable, free space under each nvme_path), with advice naming the knob
 * to change. zoff_plan (public) and zoff_finalize (which refuses a layout that does not fit and
 * sizes the pinned arena exactly from it) share this code.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
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
    /* every product below stays under 2^63 for these bounds (16 B/elem at most) */
    if (numel > ZSTORE_MAX_NUMEL || param_bytes > 4 * ZSTORE_MAX_NUMEL ||
        cfg->tile_numel > ZSTORE_MAX_NUMEL)
        return zoff__err(ZOFF_ENOFIT,
                         "%llu parameters need more than 2^62 bytes: no machine holds that "
                         "(zoff plans up to 2^58 parameters)",
                         (unsigned long long)numel);
    l.numel = numel;
    l.param_bytes = param_bytes;
    /* two landing buffers: delayed (the update of step t reads one while step t+1 lands in the
     * other) or accumulation (micro-batch j+1 lands while j is being added) */
    l.ngrad_bufs =
        cfg->overlap == ZOFF_OVERLAP_DELAYED || cfg->gradient_accumulation_steps > 1 ? 2 : 1;
    l.grad_buf_bytes = round4k(param_bytes);
    l.hold_bytes = cfg->overlap == ZOFF_OVERLAP_DELAYED ? round4k(param_bytes) : 0;
    int accum = cfg->gradient_accumulation_steps > 1;
    l.nacc_bufs = !accum ? 0 : cfg->overlap == ZOFF_OVERLAP_DELAYED ? 2 : 1;
    l.acc_bytes = accum ? round4k(numel * 4) : 0;
    l.nstage = ZRT_NSTAGE;
    l.stage_bytes = round4k((uint64_t)cfg->tile_numel * (any_f32 ? 4u : 2u));
    ZOFF_CHECK(zstore_compute_sizes_fmt(numel, cfg->partition_numel, cfg->tier, cfg->ratio,
                                        cfg->buffer_count, (zopt_kind)cfg->optimizer_type,
                                        (zstate_fmt)cfg->state_format, &l.store));
    uint64_t parts[6] = {(uint64_t)l.ngrad_bufs * l.grad_buf_bytes,
                         l.hold_bytes,
                         (uint64_t)l.nacc_bufs * l.acc_bytes,
                         (uint64_t)l.nstage * l.stage_bytes,
                         l.store.resident_bytes,
                         l.store.pool_bytes};
    l.arena_bytes = 0;
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(parts); i++)
        if (__builtin_add_overflow(l.arena_bytes, parts[i], &l.arena_bytes))
            return zoff__err(ZOFF_ENOFIT, "host memory for %llu elements exceeds 2^64 bytes",
                             (unsigned long long)numel);
    l.no_offload_bytes = 16 * numel;
    zrt_layout_device(cfg, &l, 0, 1, any_f32, numel, 0);
    *out = l;
    return ZOFF_OK;
}

uint64_t zrt_bucket_numel(const zoff_config *cfg, uint64_t model_numel, uint64_t max_push_numel)
{
    /* never more bucket room than the whole model's gradients: a small model keeps its buckets
     * small (at most the configured size, at least 256 elements) */
    uint64_t count = (uint64_t)cfg->grad_bucket_count;
    uint64_t fair = (model_numel + count - 1) / count;
    uint64_t n = ZOFF_MAX((uint64_t)256, ZOFF_MIN((uint64_t)cfg->grad_bucket_numel, fair));
    /* grown: a gradient pushed after the others drained (backward of the layer before it ran)
     * finds count - 1 empty buckets plus what is left of the current one, so the producer's
     * copies never wait for the D2H drain; a smaller ring serialises backward with PCIe for
     * every gradient larger than the ring (docs/runtime.md "Gradient buckets"). The 64-byte
     * alignment of each piece costs at most 64 bytes per bucket: one element per bucket more. */
    if (cfg->grad_bucket_grow && max_push_numel > 0)
        n = ZOFF_MAX(n, (max_push_numel + count - 2) / (count - 1) + 64);
    return n;
}

void zrt_layout_device(const zoff_config *cfg, zrt_layout *l, uint64_t trainer_grad_bytes,
                       int buckets, int any_f32, uint64_t model_numel, uint64_t max_push_numel)
{
    l->bucket_bytes = buckets
                          ? (uint64_t)cfg->grad_bucket_count *
                                ZOFF_ALIGN_UP(zrt_bucket_numel(cfg, model_numel, max_push_numel) *
                                                  (any_f32 ? 4u : 2u),
                                              256u)
                          : 0;
    l->gpu_bytes = l->param_bytes + trainer_grad_bytes + l->bucket_bytes;
}

void zrt_layout_stream(zrt_layout *l, uint64_t streamed_bytes, uint64_t slab_bytes)
{
    l->stream_host_bytes = round4k(streamed_bytes);
    l->slab_bytes = slab_bytes;
    l->arena_bytes += l->stream_host_bytes;
    l->gpu_bytes = l->gpu_bytes - ZOFF_MIN(l->gpu_bytes, streamed_bytes) + slab_bytes;
}

zoff_status zrt_plan_report(const zoff_config *cfg, const zrt_layout *l, zdev *dev, int check_gpu,
                            uint64_t gpu_mem_bytes, zoff_plan_report *out)
{
    zoff_plan_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.gpu_bytes = l->gpu_bytes;
    r.bucket_bytes = l->bucket_bytes;
    if (l->numel) {
        r.gpu_bytes_per_param = (double)l->gpu_bytes / (double)l->numel;
        r.host_bytes_per_param = (double)l->arena_bytes / (double)l->numel;
    }
    if (cfg->pin_memory)
        r.pinned_bytes = l->arena_bytes;
    else
        r.pageable_bytes = l->arena_bytes;
    r.nvme_bytes = l->store.swap_bytes;
    r.no_offload_bytes = l->no_offload_bytes;
    r.host_available = zoff__mem_available();
    r.fits = 1;
    if (gpu_mem_bytes) {
        r.gpu_available = gpu_mem_bytes;
    } else if (dev) {
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
            ADVISE("params + %s need %s on the device but %s is free: the model does not fit "
                   "this GPU even with offload (%s)",
                   l->bucket_bytes ? "gradient buckets" : "grads",
                   zoff__fmt_bytes(l->gpu_bytes, a, sizeof a),
                   zoff__fmt_bytes(r.gpu_available, b, sizeof b),
                   gpu_mem_bytes ? "stream the weights (zoff plan --stream), or plan for a "
                                   "larger GPU (zoff plan --gpu-mem)"
                   : sim         ? "sim device: raise zoff.sim_gpu_bytes, or stream the weights "
                                   "(offload_param.device cpu)"
                   : l->bucket_bytes > l->gpu_bytes / 8
                       ? "lower zero_optimization.reduce_bucket_size or zoff.grad_bucket_count"
                       : "stream the weights (zoff train --stream, offload_param.device "
                         "cpu)");
    }

    uint64_t host_need = l->arena_bytes;
    if (r.host_available && host_need > r.host_available) {
        uint64_t state = l->store.resident_bytes;
        if (cfg->tier == ZOFF_TIER_CPU && state > 0)
            ADVISE("optimizer state needs %s %s (of %s in all) but %s is available: set "
                   "zero_optimization.offload_optimizer.device to nvme (with a "
                   "zero_optimization.offload_optimizer.ratio below 1)",
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
        uint64_t free_sum = 0;
        char a2[64];
        zoff_status st = zswap_check_space(cfg->nvme_path, l->store.swap_capacity_bytes, &free_sum);
        r.nvme_available = free_sum;
        if (st == ZOFF_ENOFIT)
            ADVISE("%.300s: free disk space, add a path to "
                   "zero_optimization.offload_optimizer.nvme_path, or raise "
                   "zero_optimization.offload_optimizer.ratio (now %g)",
                   zoff__last_error_tls(), (double)cfg->ratio);
        else if (st == -EROFS || st == -EACCES || st == -EPERM)
            ADVISE("%.300s: the %s of swap needs a writable "
                   "zero_optimization.offload_optimizer.nvme_path",
                   zoff__last_error_tls(),
                   zoff__fmt_bytes(l->store.swap_capacity_bytes, a2, sizeof a2));
        else if (st < 0)
            ADVISE("cannot use zero_optimization.offload_optimizer.nvme_path '%.160s' for %s of "
                   "swap: %.200s",
                   cfg->nvme_path, zoff__fmt_bytes(l->store.swap_capacity_bytes, a2, sizeof a2),
                   zoff__last_error_tls());
    }
#undef ADVISE
    *out = r;
    return ZOFF_OK;
}

/* The streaming figures of a plan (docs/runtime.md, "Parameter streaming"): all weights are
 * streamed in `layers` equal units; the device holds prefetch_depth + 1 slots, the gradient
 * path's device bytes (already in l->gpu_bytes) and the activations of one micro-batch with
 * activation checkpointing per block: the block inputs (2 B x tokens x h x layers) plus one
 * block's working set (34 B x tokens x h, Korthikanti et al. 2022, without the s^2 score term of
 * a fused attention). */
static void plan_stream(const zoff_config *cfg, uint64_t params, size_t esize,
                        const zoff_plan_options *sh, zrt_layout *l, zoff_plan_report *r)
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

ZOFF_API zoff_status zoff_plan_options_default(zoff_plan_options *o)
{
    if (!o) return zoff__err(ZOFF_EINVAL, "zoff_plan_options_default: NULL");
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->batch = 1;
    o->seq_len = 2048;
    o->gpu_tflops = 400.0;
    o->pcie_gbps = 25.0;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_plan_with(const zoff_config *cfg_in, uint64_t total_params,
                                    const zoff_plan_options *opt_in, zoff_plan_report *out)
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
    zoff_plan_options opt;
    zoff_plan_options_default(&opt);
    if (opt_in) {
        if (opt_in->struct_size == 0 || opt_in->struct_size > sizeof opt)
            return zoff__err(ZOFF_EINVAL,
                             "zoff_plan_with: options->struct_size is %zu: initialise it with "
                             "zoff_plan_options_default()",
                             opt_in->struct_size);
        memcpy(&opt, opt_in, opt_in->struct_size);
    }
    if (total_params == 0) return zoff__err(ZOFF_EINVAL, "zoff_plan: total_params is 0");
    zoff_config cfg;
    ZOFF_CHECK(zoff_config_default(&cfg));
    memcpy(&cfg, cfg_in, cfg_in->struct_size);
    cfg.struct_size = sizeof cfg;
    ZOFF_CHECK(zoff__config_apply_env(&cfg));
    ZOFF_CHECK(zoff__config_validate(&cfg));
    uint64_t esize = (cfg.fp16_enabled || cfg.bf16_enabled) ? 2 : 4;
    if (total_params > ZSTORE_MAX_NUMEL)
        return zoff__err(ZOFF_ENOFIT,
                         "%llu parameters need more than 2^62 bytes of optimizer state: no "
                         "machine holds that (zoff plans up to 2^58 parameters)",
                         (unsigned long long)total_params);
    zrt_layout l;
    ZOFF_CHECK(zrt_layout_compute(&cfg, total_params, total_params * esize, esize == 4, &l));
    if (opt.batch < 1 || opt.seq_len < 1 || opt.layers < 0 || opt.hidden < 0 ||
        !(opt.gpu_tflops > 0) || !(opt.pcie_gbps > 0))
        return zoff__err(ZOFF_EINVAL, "zoff_plan_with: batch, seq_len, gpu_tflops and pcie_gbps "
                                      "must be > 0, layers and hidden >= 0");
    zoff_plan_report sr;
    memset(&sr, 0, sizeof sr);
    if (cfg.stream_params) plan_stream(&cfg, total_params, (size_t)esize, &opt, &l, &sr);
    if (!opt.gpu_mem_bytes) {
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
    }
    zoff_plan_report r;
    st = zrt_plan_report(&cfg, &l, dev, 1, opt.gpu_mem_bytes, &r);
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

ZOFF_API zoff_status zoff_plan(const zoff_config *cfg, size_t total_params, zoff_plan_report *out)
{
    return zoff_plan_with(cfg, (uint64_t)total_params, NULL, out);
}

/* One plan of n params with the GPU side checked against gpu_bytes (0: not checked). */
static zoff_status plan_at(const zoff_config *cfg, uint64_t n, uint64_t gpu_bytes,
                           zoff_plan_report *r)
{
    size_t esize = (cfg->fp16_enabled || cfg->bf16_enabled) ? 2 : 4;
    zrt_layout l;
    ZOFF_CHECK(zrt_layout_compute(cfg, n, n * esize, esize == 4, &l));
    return zrt_plan_report(cfg, &l, NULL, 1, gpu_bytes, r);
}

ZOFF_API zoff_status zoff_plan_max_params(const zoff_config *cfg_in, uint64_t gpu_bytes,
                                          uint64_t *max_params, zoff_plan_report *at_max)
{
    zoff__clear_error();
    if (!cfg_in || !max_params)
        return zoff__err(ZOFF_EINVAL, "zoff_plan_max_params: cfg and max_params are required");
    if (cfg_in->struct_size == 0 || cfg_in->struct_size > sizeof(zoff_config))
        return zoff__err(ZOFF_EINVAL,
                         "zoff_plan_max_params: cfg->struct_size is %zu: initialise it with "
                         "zoff_config_default()",
                         cfg_in->struct_size);
    zoff_config cfg;
    ZOFF_CHECK(zoff_config_default(&cfg));
    memcpy(&cfg, cfg_in, cfg_in->struct_size);
    cfg.struct_size = sizeof cfg;
    ZOFF_CHECK(zoff__config_apply_env(&cfg));
    ZOFF_CHECK(zoff__config_validate(&cfg));
    if (gpu_bytes == 0) {
        if (cfg.device == ZOFF_DEVICE_SIM) {
            gpu_bytes = cfg.sim_gpu_bytes;
        } else {
            zdev_config dc;
            zdev_config_default(&dc);
            dc.kind = cfg.device;
            dc.cuda_device = cfg.cuda_device;
            dc.sim_bytes = cfg.sim_gpu_bytes;
            zdev *dev = NULL;
            size_t fr = 0, tot = 0;
            if (zdev_open(&dc, &dev) == ZOFF_OK && zdev_mem_info(dev, &fr, &tot) == ZOFF_OK)
                gpu_bytes = fr;
            zdev_close(dev);
            zoff__clear_error();
            if (gpu_bytes == 0)
                return zoff__err(ZOFF_EINVAL, "zoff_plan_max_params: no device to ask: pass "
                                              "gpu_bytes (zoff plan --gpu-mem)");
        }
    }
    /* fits(n) is monotone in n: bisect on [lo fits, hi does not] */
    zoff_plan_report r;
    uint64_t lo = 0, hi = (uint64_t)1 << 48;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        ZOFF_CHECK(plan_at(&cfg, mid, gpu_bytes, &r));
        if (r.fits)
            lo = mid;
        else
            hi = mid;
    }
    *max_params = lo;
    if (at_max) {
        if (lo) {
            ZOFF_CHECK(plan_at(&cfg, lo, gpu_bytes, &r));
        } else {
            memset(&r, 0, sizeof r);
            r.struct_size = sizeof r;
            r.gpu_available = gpu_bytes;
        }
        *at_max = r;
    }
    zoff__clear_error();
    return ZOFF_OK;
}
