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
    ZOFF_CHECK(zstore_compute_sizes_fmt(numel, cfg->partition_numel, cfg->tier, cfg->ratio,
                                        cfg->buffer_count, (zopt_kind)cfg->optimizer_type,
                                        (zstate_fmt)cfg->state_format, &l.store));
    l.arena_bytes = (uint64_t)l.ngrad_bufs * l.grad_buf_bytes + l.hold_bytes +
                    (uint64_t)l.nstage * l.stage_bytes + l.store.resident_bytes +
                    l.store.pool_bytes;
    l.gpu_bytes = 2 * param_bytes;
    l.no_offload_bytes = 16 * numel;
    *out = l;
    return ZOFF_OK;
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
        ADVISE("params + grads need %s on the device but %s is free: the model does not fit "
               "this GPU even with offload (%s)",
               zoff__fmt_bytes(l->gpu_bytes, a, sizeof a),
               zoff__fmt_bytes(r.gpu_available, b, sizeof b),
               sim ? "sim device: raise zoff.sim_gpu_bytes" : "use more GPUs or a smaller model");
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

ZOFF_API zoff_status zoff_plan(const zoff_config *cfg_in, size_t total_params,
                               zoff_plan_report *out)
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
    *out = r;
    zoff__clear_error();
    return ZOFF_OK;
}
