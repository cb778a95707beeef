/*
 * device.c — the device interface of gpu/device.h: backend selection (zdev_open: ZOFF_DEVICE,
 * AUTO = cuda when built and a GPU is present, else sim, said once), argument checks shared by
 * the backends, dispatch through the vtable, and the bookkeeping common to all backends: the
 * table of live device allocations (used/peak bytes, leak report at close, range checks of the
 * sim), the table of host registrations, and the copy counters behind zdev_get_stats.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gpu/backend.h"

/* ---- range sets ---------------------------------------------------------------------------- */
/* Index of the first range whose base is > p (binary search). */
static size_t range_upper(const zdev_range_set *rs, uintptr_t p)
{
    size_t lo = 0, hi = rs->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs->v[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The range containing p, or NULL. */
static zdev_range *range_find(const zdev_range_set *rs, uintptr_t p)
{
    size_t i = range_upper(rs, p);
    if (i == 0) return NULL;
    zdev_range *r = &rs->v[i - 1];
    return p - r->base < r->bytes ? r : NULL;
}

static zoff_status range_insert(zdev_range_set *rs, uintptr_t base, size_t bytes)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        zdev_range *v = realloc(rs->v, cap * sizeof *v);
        if (!v) return zoff__err(-ENOMEM, "device bookkeeping: out of host memory");
        rs->v = v;
        rs->cap = cap;
    }
    size_t i = range_upper(rs, base);
    memmove(&rs->v[i + 1], &rs->v[i], (rs->n - i) * sizeof rs->v[0]);
    rs->v[i].base = base;
    rs->v[i].bytes = bytes;
    rs->n++;
    return 0;
}

/* Removes the range starting exactly at base; returns its size through *bytes, or -1. */
static int range_remove(zdev_range_set *rs, uintptr_t base, size_t *bytes)
{
    size_t i = range_upper(rs, base);
    if (i == 0 || rs->v[i - 1].base != base) return -1;
    *bytes = rs->v[i - 1].bytes;
    memmove(&rs->v[i - 1], &rs->v[i], (rs->n - i) * sizeof rs->v[0]);
    rs->n--;
    return 0;
}

/* ---- common part ---------------------------------------------------------------------------- */
void zdev__init_common(zdev *d, const zdev_ops *ops, zoff_device_kind kind, const zdev_config *cfg)
{
    memset(d, 0, sizeof *d);
    d->ops = ops;
    d->kind = kind;
    d->cfg = *cfg;
    pthread_mutex_init(&d->mu, NULL);
}

void zdev__fini_common(zdev *d)
{
    free(d->allocs.v);
    free(d->regs.v);
    pthread_mutex_destroy(&d->mu);
}

int zdev__is_device_range(zdev *d, const void *p, size_t bytes)
{
    pthread_mutex_lock(&d->mu);
    zdev_range *r = range_find(&d->allocs, (uintptr_t)p);
    int ok = r && bytes <= r->bytes - ((uintptr_t)p - r->base);
    pthread_mutex_unlock(&d->mu);
    return ok;
}

zoff_status zdev_check_range(zdev *d, const void *p, size_t bytes, const char *what)
{
    if (!d || !p) return zoff__err(ZOFF_EINVAL, "%s: NULL device pointer", what);
    pthread_mutex_lock(&d->mu);
    zdev_range *r = range_find(&d->allocs, (uintptr_t)p);
    uintptr_t base = r ? r->base : 0;
    size_t have = r ? r->bytes - ((uintptr_t)p - r->base) : 0;
    pthread_mutex_unlock(&d->mu);
    if (r && bytes <= have) return ZOFF_OK;
    if (r)
        return zoff__err(ZOFF_EINVAL,
                         "%s: %p + %zu bytes runs past the end of its device allocation (%p, %zu "
                         "bytes left from the pointer): wrong size or dtype?",
                         what, p, bytes, (void *)base, have);
    if (d->kind == ZOFF_DEVICE_SIM)
        return zoff__err(ZOFF_EINVAL, "%s: %p is not inside a device allocation of this runtime",
                         what, p);
    return ZOFF_OK;
}

size_t zdev__mem_used(zdev *d)
{
    pthread_mutex_lock(&d->mu);
    size_t used = d->mem_used;
    pthread_mutex_unlock(&d->mu);
    return used;
}

void zdev__account_copy(zdev *d, zdev_dir dir, uint64_t bytes, uint64_t ns)
{
    pthread_mutex_lock(&d->mu);
    if (dir == ZDEV_H2D) {
        d->h2d_bytes += bytes;
        d->h2d_ns += ns;
    } else if (dir == ZDEV_D2H) {
        d->d2h_bytes += bytes;
        d->d2h_ns += ns;
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- open / close --------------------------------------------------------------------------- */
void zdev_config_default(zdev_config *cfg)
{
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = ZOFF_DEVICE_AUTO;
    cfg->cuda_device = 0;
    cfg->sim_bytes = ZOFF_GIB;
    cfg->sim_pcie_gbps = 0.0;
    cfg->sim_jitter_seed = 0;
}

/* cfg with the ZOFF_* environment applied. */
static zoff_status effective_config(const zdev_config *in, zdev_config *out)
{
    if (in)
        *out = *in;
    else
        zdev_config_default(out);
    if (zoff__param_set(ZOFF_PARAM_DEVICE)) {
        const char *v = zoff__param_str(ZOFF_PARAM_DEVICE);
        if (!strcasecmp(v, "auto"))
            out->kind = ZOFF_DEVICE_AUTO;
        else if (!strcasecmp(v, "cuda"))
            out->kind = ZOFF_DEVICE_CUDA;
        else if (!strcasecmp(v, "sim"))
            out->kind = ZOFF_DEVICE_SIM;
        else
            return zoff__err(ZOFF_ECONFIG, "ZOFF_DEVICE=%s: expected auto, cuda or sim", v);
    }
    if (zoff__param_set(ZOFF_PARAM_SIM_GPU_BYTES)) {
        int64_t v = zoff__param_int(ZOFF_PARAM_SIM_GPU_BYTES, -1);
        if (v < 0)
            return zoff__err(ZOFF_ECONFIG, "ZOFF_SIM_GPU_BYTES=%s: expected a size like 8G",
                             zoff__param_str(ZOFF_PARAM_SIM_GPU_BYTES));
        if (v > 0) out->sim_bytes = (size_t)v;
    }
    if (zoff__param_set(ZOFF_PARAM_SIM_PCIE_GBPS)) {
        const char *v = zoff__param_str(ZOFF_PARAM_SIM_PCIE_GBPS);
        char *end;
        double g = strtod(v, &end);
        if (end == v || *end != '\0' || !(g >= 0.0))
            return zoff__err(ZOFF_ECONFIG, "ZOFF_SIM_PCIE_GBPS=%s: expected GB/s >= 0", v);
        out->sim_pcie_gbps = g;
    }
    if (zoff__param_set(ZOFF_PARAM_SIM_JITTER)) {
        int64_t v = zoff__param_int(ZOFF_PARAM_SIM_JITTER, -1);
        if (v < 0)
            return zoff__err(ZOFF_ECONFIG, "ZOFF_SIM_JITTER=%s: expected a seed (0: off)",
                             zoff__param_str(ZOFF_PARAM_SIM_JITTER));
        out->sim_jitter_seed = (uint64_t)v;
    }
    if (out->sim_bytes == 0) out->sim_bytes = ZOFF_GIB;
    if (!(out->sim_pcie_gbps >= 0.0))
        return zoff__err(ZOFF_ECONFIG, "sim_pcie_gbps %g: expected >= 0", out->sim_pcie_gbps);
    if (out->kind != ZOFF_DEVICE_AUTO && out->kind != ZOFF_DEVICE_CUDA &&
        out->kind != ZOFF_DEVICE_SIM)
        return zoff__err(ZOFF_ECONFIG, "device kind %d: expected auto, cuda or sim",
                         (int)out->kind);
    return 0;
}

zoff_status zdev_open(const zdev_config *cfg, zdev **out)
{
    zdev_config c;
    if (!out) return zoff__err(ZOFF_EINVAL, "zdev_open: out is NULL");
    ZOFF_CHECK(effective_config(cfg, &c));
    if (c.kind == ZOFF_DEVICE_CUDA) {
#ifdef ZOFF_HAVE_CUDA
        return zdev__cuda_open(&c, out);
#else
        return zoff__err(ZOFF_EUNSUPPORTED, "device cuda: this build has no CUDA backend "
                                            "(configure with -DZOFF_CUDA=ON)");
#endif
    }
    if (c.kind == ZOFF_DEVICE_AUTO) {
#ifdef ZOFF_HAVE_CUDA
        char why[256];
        if (zdev__cuda_count(why, sizeof why) > 0) return zdev__cuda_open(&c, out);
        ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_DEV,
                      "device auto: no usable CUDA GPU (%s); using sim", why);
#else
        ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_DEV,
                      "device auto: built without CUDA; using the sim device");
#endif
    }
    return zdev__sim_open(&c, out);
}

void zdev_close(zdev *d)
{
    if (!d) return;
    /* Free what the caller left allocated or registered, then let the backend go. */
    pthread_mutex_lock(&d->mu);
    size_t nalloc = d->allocs.n, nreg = d->regs.n, leaked = d->mem_used;
    pthread_mutex_unlock(&d->mu);
    if (nalloc || nreg)
        ZOFF_INFO(ZOFF_SUB_DEV,
                  "%s: closing with %zu allocation(s) (%zu bytes) and %zu host "
                  "registration(s) outstanding; releasing them",
                  d->name, nalloc, leaked, nreg);
    while (nalloc--) {
        pthread_mutex_lock(&d->mu);
        void *p = (void *)d->allocs.v[d->allocs.n - 1].base;
        pthread_mutex_unlock(&d->mu);
        zdev_free(d, p);
    }
    while (nreg--) {
        pthread_mutex_lock(&d->mu);
        void *p = (void *)d->regs.v[d->regs.n - 1].base;
        pthread_mutex_unlock(&d->mu);
        zdev_host_unregister(d, p);
    }
    d->ops->close(d);
}

zoff_device_kind zdev_kind(const zdev *d)
{
    return d ? d->kind : ZOFF_DEVICE_AUTO;
}

const char *zdev_name(const zdev *d)
{
    return d ? d->name : "none";
}

int zdev_host_accessible(const zdev *d)
{
    return d && d->kind == ZOFF_DEVICE_SIM;
}

zoff_status zdev_pci_bus_id(const zdev *d, char *buf, size_t len)
{
    if (!d || !buf || len == 0) return zoff__err(ZOFF_EINVAL, "zdev_pci_bus_id: bad argument");
    return d->ops->pci_bus_id(d, buf, len);
}

zoff_status zdev_mem_info(const zdev *d, size_t *free_bytes, size_t *total_bytes)
{
    if (!d || !free_bytes || !total_bytes)
        return zoff__err(ZOFF_EINVAL, "zdev_mem_info: bad argument");
    return d->ops->mem_info(d, free_bytes, total_bytes);
}

int zdev_cuda_built(void)
{
#ifdef ZOFF_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

zoff_status zdev_cuda_list(zdev_gpu_info *out, int max, int *count)
{
    if (!count || (max > 0 && !out)) return zoff__err(ZOFF_EINVAL, "zdev_cuda_list: bad argument");
#ifdef ZOFF_HAVE_CUDA
    return zdev__cuda_list(out, max, count);
#else
    *count = 0;
    return zoff__err(ZOFF_EUNSUPPORTED, "this build has no CUDA backend");
#endif
}

/* ---- memory -------------------------------------------------------------------------------- */
zoff_status zdev_malloc(zdev *d, size_t bytes, void **out)
{
    if (!d || !out) return zoff__err(ZOFF_EINVAL, "zdev_malloc: bad argument");
    if (bytes == 0) {
        *out = NULL;
        return 0;
    }
    /* The lock spans the backend call so that the sim capacity check and the table agree. */
    pthread_mutex_lock(&d->mu);
    void *p = NULL;
    zoff_status st = d->ops->malloc(d, bytes, &p);
    if (st == 0) {
        st = range_insert(&d->allocs, (uintptr_t)p, bytes);
        if (st == 0) {
            d->mem_used += bytes;
            if (d->mem_used > d->mem_peak) d->mem_peak = d->mem_used;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (st < 0) {
        if (p) d->ops->free(d, p);
        return st;
    }
    ZOFF_TRACE_LOG(ZOFF_SUB_DEV, "%s: malloc %zu bytes -> %p", d->name, bytes, p);
    *out = p;
    return 0;
}

void zdev_free(zdev *d, void *p)
{
    if (!d || !p) return;
    size_t bytes = 0;
    pthread_mutex_lock(&d->mu);
    int found = range_remove(&d->allocs, (uintptr_t)p, &bytes) == 0;
    if (found) d->mem_used -= bytes;
    pthread_mutex_unlock(&d->mu);
    if (!found) {
        ZOFF_WARN(ZOFF_SUB_DEV, "%s: zdev_free(%p): not an allocation of this device; ignored",
                  d->name, p);
        return;
    }
    d->ops->free(d, p);
}

zoff_status zdev_host_register(zdev *d, void *p, size_t bytes)
{
    if (!d || !p || bytes == 0) return zoff__err(ZOFF_EINVAL, "zdev_host_register: bad argument");
    pthread_mutex_lock(&d->mu);
    zdev_range *r = range_find(&d->regs, (uintptr_t)p);
    zdev_range *next = NULL;
    size_t i = range_upper(&d->regs, (uintptr_t)p);
    if (i < d->regs.n) next = &d->regs.v[i];
    int overlap = r != NULL || (next && next->base < (uintptr_t)p + bytes);
    pthread_mutex_unlock(&d->mu);
    if (overlap)
        return zoff__err(ZOFF_EINVAL,
                         "%s: host_register %p + %zu bytes overlaps a registered "
                         "range",
                         d->name, p, bytes);
    ZOFF_CHECK(d->ops->host_register(d, p, bytes));
    pthread_mutex_lock(&d->mu);
    zoff_status st = range_insert(&d->regs, (uintptr_t)p, bytes);
    if (st == 0) d->host_registered_bytes += bytes;
    pthread_mutex_unlock(&d->mu);
    if (st < 0)
        d->ops->host_unregister(d, p);
    else
        ZOFF_INFO(ZOFF_SUB_PIN, "%s: registered %zu bytes of host memory at %p", d->name, bytes, p);
    return st;
}

void zdev_host_unregister(zdev *d, void *p)
{
    if (!d || !p) return;
    size_t bytes = 0;
    pthread_mutex_lock(&d->mu);
    int found = range_remove(&d->regs, (uintptr_t)p, &bytes) == 0;
    if (found) d->host_registered_bytes -= bytes;
    pthread_mutex_unlock(&d->mu);
    if (!found) {
        ZOFF_WARN(ZOFF_SUB_PIN, "%s: host_unregister(%p): not a registered address; ignored",
                  d->name, p);
        return;
    }
    d->ops->host_unregister(d, p);
}

/* ---- streams and events ---------------------------------------------------------------------- */
zoff_status zdev_stream_create(zdev *d, zdev_stream **out)
{
    if (!d || !out) return zoff__err(ZOFF_EINVAL, "zdev_stream_create: bad argument");
    return d->ops->stream_create(d, out);
}

void zdev_stream_destroy(zdev *d, zdev_stream *s)
{
    if (!d || !s) return;
    d->ops->stream_destroy(d, s);
}

zoff_status zdev_stream_sync(zdev *d, zdev_stream *s)
{
    if (!d) return zoff__err(ZOFF_EINVAL, "zdev_stream_sync: device is NULL");
    return d->ops->stream_sync(d, s);
}

zoff_status zdev_event_create(zdev *d, zdev_event **out)
{
    if (!d || !out) return zoff__err(ZOFF_EINVAL, "zdev_event_create: bad argument");
    return d->ops->event_create(d, out);
}

void zdev_event_destroy(zdev *d, zdev_event *e)
{
    if (!d || !e) return;
    d->ops->event_destroy(d, e);
}

zoff_status zdev_event_record(zdev *d, zdev_event *e, zdev_stream *s)
{
    if (!d || !e) return zoff__err(ZOFF_EINVAL, "zdev_event_record: bad argument");
    return d->ops->event_record(d, e, s);
}

zoff_status zdev_stream_wait_event(zdev *d, zdev_stream *s, zdev_event *e)
{
    if (!d || !e) return zoff__err(ZOFF_EINVAL, "zdev_stream_wait_event: bad argument");
    return d->ops->stream_wait_event(d, s, e);
}

zoff_status zdev_event_query(zdev *d, zdev_event *e, int *done)
{
    if (!d || !e || !done) return zoff__err(ZOFF_EINVAL, "zdev_event_query: bad argument");
    return d->ops->event_query(d, e, done);
}

zoff_status zdev_event_sync(zdev *d, zdev_event *e)
{
    if (!d || !e) return zoff__err(ZOFF_EINVAL, "zdev_event_sync: bad argument");
    return d->ops->event_sync(d, e);
}

/* ---- copies, host functions, kernels -------------------------------------------------------- */
static zoff_status copy(zdev *d, void *dst, const void *src, size_t bytes, zdev_dir dir,
                        zdev_stream *s, const char *what)
{
    if (!d || ((!dst || !src) && bytes))
        return zoff__err(ZOFF_EINVAL, "%s: bad argument (dst %p, src %p, %zu bytes)", what, dst,
                         src, bytes);
    if (bytes == 0) return 0;
    return d->ops->memcpy(d, dst, src, bytes, dir, s);
}

zoff_status zdev_memcpy_h2d(zdev *d, void *dst, const void *src, size_t bytes, zdev_stream *s)
{
    return copy(d, dst, src, bytes, ZDEV_H2D, s, "zdev_memcpy_h2d");
}

zoff_status zdev_memcpy_d2h(zdev *d, void *dst, const void *src, size_t bytes, zdev_stream *s)
{
    return copy(d, dst, src, bytes, ZDEV_D2H, s, "zdev_memcpy_d2h");
}

zoff_status zdev_memcpy_d2d(zdev *d, void *dst, const void *src, size_t bytes, zdev_stream *s)
{
    return copy(d, dst, src, bytes, ZDEV_D2D, s, "zdev_memcpy_d2d");
}

zoff_status zdev_host_fn(zdev *d, zdev_stream *s, void (*fn)(void *), void *arg)
{
    if (!d || !fn) return zoff__err(ZOFF_EINVAL, "zdev_host_fn: bad argument");
    return d->ops->host_fn(d, s, fn, arg);
}

static int dtype_ok(zoff_dtype dt)
{
    return dt == ZOFF_DTYPE_F32 || dt == ZOFF_DTYPE_F16 || dt == ZOFF_DTYPE_BF16;
}

zoff_status zdev_cast_f32(zdev *d, void *dst, zoff_dtype dst_dtype, const float *src, size_t n,
                          zdev_stream *s)
{
    if (!d || !dtype_ok(dst_dtype) || ((!dst || !src) && n))
        return zoff__err(ZOFF_EINVAL, "zdev_cast_f32: bad argument (dtype %d, n %zu)",
                         (int)dst_dtype, n);
    if (n == 0) return 0;
    return d->ops->cast_f32(d, dst, dst_dtype, src, n, s);
}

zoff_status zdev_widen_f32(zdev *d, float *dst, const void *src, zoff_dtype src_dtype, size_t n,
                           zdev_stream *s)
{
    if (!d || !dtype_ok(src_dtype) || ((!dst || !src) && n))
        return zoff__err(ZOFF_EINVAL, "zdev_widen_f32: bad argument (dtype %d, n %zu)",
                         (int)src_dtype, n);
    if (n == 0) return 0;
    return d->ops->widen_f32(d, dst, src, src_dtype, n, s);
}

zoff_status zdev_scale(zdev *d, void *x, zoff_dtype dtype, size_t n, float alpha, zdev_stream *s)
{
    if (!d || !dtype_ok(dtype) || (!x && n))
        return zoff__err(ZOFF_EINVAL, "zdev_scale: bad argument (dtype %d, n %zu)", (int)dtype, n);
    if (n == 0) return 0;
    return d->ops->scale(d, x, dtype, n, alpha, s);
}

zoff_status zdev_fill(zdev *d, void *x, zoff_dtype dtype, size_t n, float value, zdev_stream *s)
{
    if (!d || !dtype_ok(dtype) || (!x && n))
        return zoff__err(ZOFF_EINVAL, "zdev_fill: bad argument (dtype %d, n %zu)", (int)dtype, n);
    if (n == 0) return 0;
    return d->ops->fill(d, x, dtype, n, value, s);
}

zoff_status zdev_busy(zdev *d, zdev_stream *s, uint64_t ns)
{
    if (!d) return zoff__err(ZOFF_EINVAL, "zdev_busy: device is NULL");
    return d->ops->busy(d, s, ns);
}

void zdev_get_stats(const zdev *d, zdev_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!d) return;
    zdev *m = (zdev *)d; /* the mutex is not part of the logical state */
    pthread_mutex_lock(&m->mu);
    out->h2d_bytes = d->h2d_bytes;
    out->d2h_bytes = d->d2h_bytes;
    out->h2d_ns = d->h2d_ns;
    out->d2h_ns = d->d2h_ns;
    out->mem_used = d->mem_used;
    out->mem_peak = d->mem_peak;
    out->mem_total = d->mem_total;
    out->host_registered_bytes = d->host_registered_bytes;
    pthread_mutex_unlock(&m->mu);
}
