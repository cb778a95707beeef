/*
 * backend.h — gpu/-internal: the vtable every device backend fills (sim in gpu/sim.c, cuda in
 * gpu/cuda/cuda.c), the common part of a device (struct zdev, embedded first in each backend's
 * own struct) and the bookkeeping gpu/device.c does for all backends: the table of live device
 * allocations (accounting, leak report, range checks) and of host registrations.
 * Nothing outside gpu/ includes this file; the face is gpu/device.h.
 */
#ifndef ZOFF_GPU_BACKEND_H
#define ZOFF_GPU_BACKEND_H

#include <pthread.h>

#include "gpu/device.h"

typedef enum zdev_dir {
    ZDEV_H2D = 0,
    ZDEV_D2H = 1,
    ZDEV_D2D = 2,
} zdev_dir;

/* Backend operations. Arguments are validated by gpu/device.c before a backend sees them
 * (non-NULL device, known dtype, n > 0, bytes > 0); a backend reports its own errors with
 * zoff__err. `free`/`host_unregister` are only called for pointers the tables know; `malloc`
 * is called with d->mu held (so it may read d->mem_used but must not lock d->mu). */
typedef struct zdev_ops {
    void (*close)(zdev *d); /* streams, events and backend state; allocations are freed first */
    zoff_status (*pci_bus_id)(const zdev *d, char *buf, size_t len);
    zoff_status (*mem_info)(const zdev *d, size_t *free_bytes, size_t *total_bytes);
    zoff_status (*malloc)(zdev *d, size_t bytes, void **out);
    void (*free)(zdev *d, void *p);
    zoff_status (*host_register)(zdev *d, void *p, size_t bytes);
    void (*host_unregister)(zdev *d, void *p);
    zoff_status (*stream_create)(zdev *d, zdev_stream **out);
    void (*stream_destroy)(zdev *d, zdev_stream *s);
    zoff_status (*stream_sync)(zdev *d, zdev_stream *s);
    zoff_status (*event_create)(zdev *d, zdev_event **out);
    void (*event_destroy)(zdev *d, zdev_event *e);
    zoff_status (*event_record)(zdev *d, zdev_event *e, zdev_stream *s);
    zoff_status (*stream_wait_event)(zdev *d, zdev_stream *s, zdev_event *e);
    zoff_status (*event_query)(zdev *d, zdev_event *e, int *done);
    zoff_status (*event_sync)(zdev *d, zdev_event *e);
    zoff_status (*memcpy)(zdev *d, void *dst, const void *src, size_t bytes, zdev_dir dir,
                          zdev_stream *s);
    zoff_status (*host_fn)(zdev *d, zdev_stream *s, void (*fn)(void *), void *arg);
    zoff_status (*cast_f32)(zdev *d, void *dst, zoff_dtype dst_dtype, const float *src, size_t n,
                            zdev_stream *s);
    zoff_status (*widen_f32)(zdev *d, float *dst, const void *src, zoff_dtype src_dtype, size_t n,
                             zdev_stream *s);
    zoff_status (*scale)(zdev *d, void *x, zoff_dtype dtype, size_t n, float alpha, zdev_stream *s);
    zoff_status (*fill)(zdev *d, void *x, zoff_dtype dtype, size_t n, float value, zdev_stream *s);
    zoff_status (*busy)(zdev *d, zdev_stream *s, uint64_t ns);
} zdev_ops;

/* One live range (a device allocation or a host registration). */
typedef struct zdev_range {
    uintptr_t base;
    size_t bytes;
} zdev_range;

/* A set of disjoint ranges sorted by base address. */
typedef struct zdev_range_set {
    zdev_range *v;
    size_t n, cap;
} zdev_range_set;

struct zdev {
    const zdev_ops *ops;
    zoff_device_kind kind;
    char name[128];
    zdev_config cfg;    /* effective configuration (environment applied) */
    size_t mem_total;   /* bytes of device memory (sim: capacity) */
    pthread_mutex_t mu; /* guards the tables and counters below */
    zdev_range_set allocs;
    zdev_range_set regs;
    size_t mem_used, mem_peak;
    size_t host_registered_bytes;
    uint64_t h2d_bytes, d2h_bytes, h2d_ns, d2h_ns;
};

/* Initialises the common part (called by a backend's open before anything can fail). */
void zdev__init_common(zdev *d, const zdev_ops *ops, zoff_device_kind kind, const zdev_config *cfg);
/* Releases the common part (the backend's close calls it last). */
void zdev__fini_common(zdev *d);
/* 1 if [p, p + bytes) lies inside one live device allocation of d. Thread-safe. */
int zdev__is_device_range(zdev *d, const void *p, size_t bytes);
/* Bytes of device memory in use (thread-safe). */
size_t zdev__mem_used(zdev *d);
/* Adds a finished copy to the link counters (thread-safe). */
void zdev__account_copy(zdev *d, zdev_dir dir, uint64_t bytes, uint64_t ns);

/* Backends. sim is always built; cuda only with ZOFF_HAVE_CUDA. */
zoff_status zdev__sim_open(const zdev_config *cfg, zdev **out);
#ifdef ZOFF_HAVE_CUDA
/* Number of usable CUDA devices; 0 with a message in *why when none (driver, no GPU). */
int zdev__cuda_count(char *why, size_t len);
zoff_status zdev__cuda_open(const zdev_config *cfg, zdev **out);
zoff_status zdev__cuda_list(zdev_gpu_info *out, int max, int *count);
#endif

#endif /* ZOFF_GPU_BACKEND_H */
