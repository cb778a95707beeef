/*
 * device.h — the face of gpu/: a small device interface with two backends, `cuda` (the real GPU
 * through the CUDA runtime API) and `sim` (a host-memory "GPU": capacity limit, one worker thread
 * per stream, CUDA event semantics, copies throttled to a PCIe bandwidth, optional jitter).
 *
 * Handles: a zdev_stream* / zdev_event* is the backend's native handle (a cudaStream_t /
 * cudaEvent_t with cuda), so a trainer's cudaStream_t passes straight through. A NULL stream is
 * the default stream (cuda: the legacy stream; sim: an internal default stream). Streams made by
 * zdev_stream_create never synchronise implicitly with the default stream (cuda: created
 * cudaStreamNonBlocking; sim: independent workers): order work across streams with events.
 * Copies and kernels are validated when queued (sim: device pointers must lie inside a live
 * allocation, ZOFF_EINVAL otherwise) and cannot fail later. docs/devices.md has the details.
 * Only common/ is included. Thread safety: all calls may be made from any thread (like CUDA).
 */
#ifndef ZOFF_GPU_DEVICE_H
#define ZOFF_GPU_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zdev zdev;
typedef struct zdev_stream zdev_stream;
typedef struct zdev_event zdev_event;

typedef struct zdev_config {
    zoff_device_kind kind;    /* AUTO / CUDA / SIM; ZOFF_DEVICE env overrides */
    int cuda_device;          /* ordinal */
    size_t sim_bytes;         /* sim capacity (default 1 GiB; ZOFF_SIM_GPU_BYTES overrides) */
    double sim_pcie_gbps;     /* sim copy bandwidth per direction, GB/s; 0 unthrottled */
    uint64_t sim_jitter_seed; /* 0: off; ZOFF_SIM_JITTER overrides */
} zdev_config;

/* Fills cfg with the defaults: AUTO, ordinal 0, sim 1 GiB, unthrottled, no jitter. */
void zdev_config_default(zdev_config *cfg);

/* Opens a device (cfg NULL: defaults; ZOFF_DEVICE, ZOFF_SIM_GPU_BYTES, ZOFF_SIM_PCIE_GBPS and
 * ZOFF_SIM_JITTER override the fields). AUTO: cuda when compiled in and a GPU is present, else sim
 * (said once at INFO). CUDA requested but not built/usable: ZOFF_EUNSUPPORTED with the CUDA error
 * in the message. */
zoff_status zdev_open(const zdev_config *cfg, zdev **out);
/* Waits for queued work, frees what the caller left allocated or registered (logged at INFO),
 * destroys the sim's streams. Accepts NULL. */
void zdev_close(zdev *d);
zoff_device_kind zdev_kind(const zdev *d);
/* "sim" or "cuda:0 <name>". */
const char *zdev_name(const zdev *d);
/* PCI bus id ("0000:3b:00.0") for NUMA placement; ZOFF_EUNSUPPORTED on sim. */
zoff_status zdev_pci_bus_id(const zdev *d, char *buf, size_t len);
/* 1 when device pointers are host addresses (sim), 0 otherwise (cuda). */
int zdev_host_accessible(const zdev *d);
/* Free and total device memory in bytes. */
zoff_status zdev_mem_info(const zdev *d, size_t *free_bytes, size_t *total_bytes);

/* Device memory. ZOFF_EDEVMEM when it does not fit (message: asked, free, total). 0 bytes:
 * *out = NULL. sim: 256-byte aligned, filled with 0xff (NaN) so uninitialised reads show. */
zoff_status zdev_malloc(zdev *d, size_t bytes, void **out);
/* Frees after the work queued on every stream completed (like cudaFree). NULL: no-op; a pointer
 * this device did not allocate is warned about and ignored. */
void zdev_free(zdev *d, void *p);

/* Checks that [p, p + bytes) is device memory a caller may copy from: ZOFF_OK when it lies inside
 * one live allocation of this device; ZOFF_EINVAL (message: pointer, bytes, the allocation it
 * overruns) when it starts inside one but runs past its end, or, on sim, when it is not device
 * memory at all. CUDA memory this device did not allocate (a framework's own) cannot be checked
 * and passes. `what` names the caller in the message. */
zoff_status zdev_check_range(zdev *d, const void *p, size_t bytes, const char *what);

/* Page-locks host memory for fast async copies (cudaHostRegister; sim: accounted no-op). */
zoff_status zdev_host_register(zdev *d, void *p, size_t bytes);
void zdev_host_unregister(zdev *d, void *p);

zoff_status zdev_stream_create(zdev *d, zdev_stream **out);
/* Queued work still completes (sim: waits for it; cuda: returns at once). NULL: no-op. */
void zdev_stream_destroy(zdev *d, zdev_stream *s);
zoff_status zdev_stream_sync(zdev *d, zdev_stream *s);

zoff_status zdev_event_create(zdev *d, zdev_event **out);
void zdev_event_destroy(zdev *d, zdev_event *e);
/* Records e at the current end of s (re-recording replaces the previous capture). */
zoff_status zdev_event_record(zdev *d, zdev_event *e, zdev_stream *s);
/* Work queued on s after this call waits until e's captured work completed. */
zoff_status zdev_stream_wait_event(zdev *d, zdev_stream *s, zdev_event *e);
/* *done = 1 if e's captured work completed (a never-recorded event counts as done). */
zoff_status zdev_event_query(zdev *d, zdev_event *e, int *done);
zoff_status zdev_event_sync(zdev *d, zdev_event *e);

/* Asynchronous copies ordered on s. Host memory should be registered (pinned). */
zoff_status zdev_memcpy_h2d(zdev *d, void *dst, const void *src, size_t bytes, zdev_stream *s);
zoff_status zdev_memcpy_d2h(zdev *d, void *dst, const void *src, size_t bytes, zdev_stream *s);
zoff_status zdev_memcpy_d2d(zdev *d, void *dst, const void *src, size_t bytes, zdev_stream *s);

/* Runs fn(arg) on a host thread in stream order (cudaLaunchHostFunc). fn must not call zdev. */
zoff_status zdev_host_fn(zdev *d, zdev_stream *s, void (*fn)(void *), void *arg);

/* Kernels (element math in gpu/elem.h, shared with the host): n elements, ordered on s. */
zoff_status zdev_cast_f32(zdev *d, void *dst, zoff_dtype dst_dtype, const float *src, size_t n,
                          zdev_stream *s);
/* dst[i] = float(src[i]) for i < n (src of dtype F32, F16 or BF16; exact): the multi-rank step
 * widens gradient buckets to fp32 on the device before reducing them. */
zoff_status zdev_widen_f32(zdev *d, float *dst, const void *src, zoff_dtype src_dtype, size_t n,
                           zdev_stream *s);
zoff_status zdev_scale(zdev *d, void *x, zoff_dtype dtype, size_t n, float alpha, zdev_stream *s);
zoff_status zdev_fill(zdev *d, void *x, zoff_dtype dtype, size_t n, float value, zdev_stream *s);
/* Stand-in GPU compute of `ns` nanoseconds on s (sim: sleeps in the worker; cuda: spin kernel). */
zoff_status zdev_busy(zdev *d, zdev_stream *s, uint64_t ns);

/* ---- CUDA devices present (for `zoff info`) ---------------------------------------------- */
typedef struct zdev_gpu_info {
    int ordinal;
    char name[128];
    char pci_bus_id[32]; /* "0000:3B:00.0" */
    size_t total_bytes;
    int cc_major, cc_minor; /* compute capability */
} zdev_gpu_info;

/* 1 if this build contains the CUDA backend. */
int zdev_cuda_built(void);
/* Lists up to `max` CUDA GPUs into out and sets *count (0 when the driver reports none; the
 * reason is then in the last-error message). ZOFF_EUNSUPPORTED when CUDA is not built in. */
zoff_status zdev_cuda_list(zdev_gpu_info *out, int max, int *count);

/* Counters for stats: bytes and busy time of each copy direction since open (busy time is
 * measured by sim only: the time its copy engine of that direction spent on the copies; cuda
 * reports 0), device memory allocated through zdev_malloc and host memory registered. */
typedef struct zdev_stats {
    uint64_t h2d_bytes, d2h_bytes;
    uint64_t h2d_ns, d2h_ns;
    size_t mem_used, mem_peak, mem_total;
    size_t host_registered_bytes;
} zdev_stats;
void zdev_get_stats(const zdev *d, zdev_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_GPU_DEVICE_H */
