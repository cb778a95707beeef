/*
 * stats.c — per-step statistics (bytes, busy time and GB/s per link from the device's and the
 * swap store's counters, Adam time and GB/s, trainer wait, overlap ratio), totals, memory
 * figures for zoff_get_stats, and the Chrome/Perfetto trace tracks of the runtime.
 *
 * The step window is the time between the ends of two consecutive zoff_step calls (the first one:
 * since finalize): a whole training iteration, so the overlap ratio says how much link and CPU
 * work ran per unit of iteration time (above 1: components ran concurrently).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

static void link_set(zoff_link_stats *l, uint64_t bytes, uint64_t ns)
{
    l->bytes = bytes;
    l->busy_ms = zoff__ns_to_ms(ns);
    l->gbps = ns ? (double)bytes / (double)ns : 0.0;
}

void zrt_stats_step_begin(zoff_runtime *rt)
{
    rt->own_d2h_snap = atomic_load(&rt->own_d2h_bytes);
    rt->own_h2d_snap = atomic_load(&rt->own_h2d_bytes);
    zdev_get_stats(rt->dev, &rt->dev_snap);
    if (rt->store)
        zstore_get_stats(rt->store, &rt->store_snap);
    else
        memset(&rt->store_snap, 0, sizeof rt->store_snap);
    rt->step_begin_ns = zoff__now_ns();
}

void zrt_stats_step_end(zoff_runtime *rt, const zrt_update *u, uint64_t step_ns)
{
    zdev_stats d;
    zstore_stats s;
    zdev_get_stats(rt->dev, &d);
    zstore_get_stats(rt->store, &s);
    uint64_t now = zoff__now_ns();
    zoff_stats *o = &rt->stats;
    const zdev_stats *d0 = &rt->dev_snap;
    const zstore_stats *s0 = &rt->store_snap;
    /* bytes: zoff's own copies; busy time and GB/s: the device's copy engine of that direction
     * over the step (all users of the link, sim backend only) */
    uint64_t own_d2h = atomic_load(&rt->own_d2h_bytes), own_h2d = atomic_load(&rt->own_h2d_bytes);
    link_set(&o->d2h, d.d2h_bytes - d0->d2h_bytes, d.d2h_ns - d0->d2h_ns);
    link_set(&o->h2d, d.h2d_bytes - d0->h2d_bytes, d.h2d_ns - d0->h2d_ns);
    o->d2h.bytes = own_d2h - rt->own_d2h_snap;
    o->h2d.bytes = own_h2d - rt->own_h2d_snap;
    rt->own_d2h_snap = own_d2h;
    rt->own_h2d_snap = own_h2d;
    link_set(&o->nvme_read, s.read_bytes - s0->read_bytes, s.read_ns - s0->read_ns);
    link_set(&o->nvme_write, s.write_bytes - s0->write_bytes, s.write_ns - s0->write_ns);
    o->adam_ms = u ? zoff__ns_to_ms(u->adam_ns) : 0.0;
    o->adam_gbps = (u && u->adam_ns) ? (double)u->adam_bytes / (double)u->adam_ns : 0.0;
    o->step_ms = zoff__ns_to_ms(step_ns);
    double window_ms = zoff__ns_to_ms(now - rt->step_begin_ns);
    double busy =
        o->d2h.busy_ms + o->h2d.busy_ms + o->nvme_read.busy_ms + o->nvme_write.busy_ms + o->adam_ms;
    o->overlap_ratio = window_ms > 0.0 ? busy / window_ms : 0.0;
    o->steps++;
    o->total_d2h_bytes += o->d2h.bytes;
    o->total_h2d_bytes += o->h2d.bytes;
    o->total_nvme_read_bytes += o->nvme_read.bytes;
    o->total_nvme_write_bytes += o->nvme_write.bytes;
    rt->dev_snap = d;
    rt->store_snap = s;
    rt->step_begin_ns = now;
}

ZOFF_API zoff_status zoff_get_stats(const zoff_runtime *rt, zoff_stats *out)
{
    zoff__clear_error();
    if (!rt || !out) return zoff__err(ZOFF_EINVAL, "zoff_get_stats: rt and out are required");
    if (out->struct_size != 0 && out->struct_size < sizeof(size_t))
        return zoff__err(ZOFF_EINVAL, "zoff_get_stats: bad struct_size %zu", out->struct_size);
    zoff_stats o = rt->stats;
    o.struct_size = sizeof o;
    o.fetch_wait_ms = zoff__ns_to_ms(atomic_load(&((zoff_runtime *)(uintptr_t)rt)->fetch_wait_ns));
    uint64_t b = atomic_load(&((zoff_runtime *)(uintptr_t)rt)->wait_begin_ns);
    uint64_t e = atomic_load(&((zoff_runtime *)(uintptr_t)rt)->wait_end_ns);
    o.trainer_wait_ms = rt->wait_block_ms + (e > b && b ? zoff__ns_to_ms(e - b) : 0.0);
    zdev_stats d;
    zdev_get_stats(rt->dev, &d);
    /* zoff's own device memory: the streaming slab and the gradient buckets (the trainer owns
     * resident params, and grads in the full-buffer mode) */
    o.bucket_bytes = zbk_active(&rt->bk) ? (uint64_t)rt->bk.count * rt->bk.bytes : 0;
    o.device_bytes = (uint64_t)rt->nslots * rt->slot_bytes + o.bucket_bytes;
    o.device_peak_bytes = d.mem_peak;
    o.bucket_flushes = rt->bk.flushes;
    if (rt->total_numel)
        o.gpu_bytes_per_param =
            (double)(rt->param_bytes + rt->trainer_grad_bytes + o.device_bytes) /
            (double)rt->total_numel;
    if (rt->arena) {
        zarena_stats as;
        zarena_get_stats(rt->arena, &as);
        if (as.pinned)
            o.pinned_bytes = as.capacity_bytes;
        else
            o.pageable_bytes = as.capacity_bytes;
        o.pinned_fallback = as.pin_fallback;
    }
    if (rt->store) {
        zstore_stats ss;
        zstore_get_stats(rt->store, &ss);
        o.nvme_bytes = ss.nvme_bytes;
        o.aio_fallback = ss.aio_fallback;
        o.odirect = ss.odirect;
    }
    size_t n = out->struct_size ? ZOFF_MIN(out->struct_size, sizeof o) : sizeof o;
    size_t keep = out->struct_size ? out->struct_size : sizeof o;
    memcpy(out, &o, n);
    out->struct_size = keep;
    return ZOFF_OK;
}

/* ---- trace ------------------------------------------------------------------------------------
 */
zoff_status zrt_trace_open(zoff_runtime *rt)
{
    const char *path = rt->cfg.trace_path;
    if (!path[0] && zoff__param_set(ZOFF_PARAM_TRACE)) path = zoff__param_str(ZOFF_PARAM_TRACE);
    if (!path[0]) return ZOFF_OK;
    ZOFF_CHECK(zztrace_open(path, &rt->trace));
    rt->tr_step = zztrace_track(rt->trace, "trainer: zoff_step");
    rt->tr_d2h = zztrace_track(rt->trace, "stream d2h (grads)");
    rt->tr_grads = zztrace_track(rt->trace, "cpu grads (sum of squares)");
    rt->tr_adam = zztrace_track(rt->trace, "cpu adam");
    rt->tr_h2d = zztrace_track(rt->trace, "stream h2d (params)");
    rt->tr_nvr = zztrace_track(rt->trace, "nvme read");
    rt->tr_nvw = zztrace_track(rt->trace, "nvme write");
    rt->tr_trainer = zztrace_track(rt->trace, "trainer stream (busy, pushes, fetch waits)");
    return ZOFF_OK;
}

struct zrt_span {
    zoff_runtime *rt;
    const char *name;
    uint64_t t0;
};

static void span_begin_cb(void *arg)
{
    ((zrt_span *)arg)->t0 = zoff__now_ns();
}

static void span_end_cb(void *arg)
{
    zrt_span *sp = arg;
    zztrace_event(sp->rt->trace, sp->rt->tr_trainer, sp->name, sp->t0, zoff__now_ns(), NULL);
    free(sp);
}

zoff_status zrt_trace_span_begin(zoff_runtime *rt, zdev_stream *s, const char *name, zrt_span **out)
{
    *out = NULL;
    if (!rt->trace) return ZOFF_OK;
    zrt_span *sp = calloc(1, sizeof *sp);
    if (!sp) return ZOFF_OK; /* tracing is best effort */
    *sp = (zrt_span){rt, name, 0};
    if (zdev_host_fn(rt->dev, s, span_begin_cb, sp) < 0) {
        free(sp);
        return ZOFF_OK;
    }
    *out = sp;
    return ZOFF_OK;
}

zoff_status zrt_trace_span_end(zoff_runtime *rt, zdev_stream *s, zrt_span *sp)
{
    if (!sp) return ZOFF_OK;
    return zdev_host_fn(rt->dev, s, span_end_cb, sp);
}

void zrt_trace_close(zoff_runtime *rt)
{
    if (!rt->trace) return;
    if (zztrace_close(rt->trace) < 0)
        ZOFF_WARN(ZOFF_SUB_ALL, "trace not written: %s", zoff__last_error_tls());
    rt->trace = NULL;
}

void zrt_store_io_hook(void *user, int is_write, size_t part, size_t bytes, uint64_t issue_ns,
                       uint64_t done_ns)
{
    zoff_runtime *rt = user;
    char args[96];
    snprintf(args, sizeof args, "{\"part\":%zu,\"bytes\":%zu}", part, bytes);
    zztrace_event(rt->trace, is_write ? rt->tr_nvw : rt->tr_nvr, is_write ? "write" : "read",
                  issue_ns, done_ns, args);
}
