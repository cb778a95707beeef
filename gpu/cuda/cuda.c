/*
 * cuda.c — the `cuda` device backend: the device interface on the CUDA runtime API. Handles are
 * native (a zdev_stream* is a cudaStream_t, a zdev_event* a cudaEvent_t), so a trainer's streams
 * pass straight through. Streams zoff creates are non-blocking (no implicit synchronisation with
 * the legacy default stream, the same rule as the sim backend); events are created without
 * timing. Every CUDA call is checked with ZOFF_CUDA_CHECK, which clears the (non-sticky) error,
 * converts it to ZOFF_EDEVMEM / ZOFF_EDEVICE and puts the CUDA error name and text into the
 * last-error message. Every entry point first makes the device current in the calling thread.
 * Owns: the device's properties (name, PCI bus id, clock rate for the busy kernel).
 * Compiled only with -DZOFF_CUDA=ON/AUTO; it has never run on a GPU in this project's CI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "gpu/backend.h"
#include "gpu/cuda/kernels.h"

typedef struct cuda_dev {
    zdev base;
    int ordinal;
    int clock_khz; /* SM clock (cudaDevAttrClockRate), for the busy kernel */
    char bus_id[32];
} cuda_dev;

static cuda_dev *cuda_of(const zdev *d)
{
    return (cuda_dev *)d;
}

/* Clears the calling thread's CUDA error and converts e to a zoff status with a message. */
static zoff_status cuda_fail(cudaError_t e, const char *call, int line)
{
    (void)cudaGetLastError();
    zoff_status st = (e == cudaErrorMemoryAllocation) ? ZOFF_EDEVMEM : ZOFF_EDEVICE;
    return zoff__err(st, "gpu/cuda/cuda.c:%d %s: %s (%s)", line, call, cudaGetErrorString(e),
                     cudaGetErrorName(e));
}

/* Returns the converted error from the enclosing function when `call` fails. */
#define ZOFF_CUDA_CHECK(call)                                                                      \
    do {                                                                                           \
        cudaError_t zoff__ce = (call);                                                             \
        if (zoff__ce != cudaSuccess) return cuda_fail(zoff__ce, #call, __LINE__);                  \
    } while (0)

/* For calls in functions that return nothing: logs a warning instead. */
#define ZOFF_CUDA_WARN(call)                                                                       \
    do {                                                                                           \
        cudaError_t zoff__ce = (call);                                                             \
        if (zoff__ce != cudaSuccess) {                                                             \
            cuda_fail(zoff__ce, #call, __LINE__);                                                  \
            ZOFF_WARN(ZOFF_SUB_DEV, "%s", zoff__last_error_tls());                                 \
        }                                                                                          \
    } while (0)

static zoff_status enter(const zdev *d)
{
    ZOFF_CUDA_CHECK(cudaSetDevice(cuda_of(d)->ordinal));
    return 0;
}

static cudaStream_t cs(zdev_stream *s)
{
    return (cudaStream_t)(void *)s;
}

static cudaEvent_t ce(zdev_event *e)
{
    return (cudaEvent_t)(void *)e;
}

/* ---- device facts ---------------------------------------------------------------------------- */
int zdev__cuda_count(char *why, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(why, len, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n <= 0) snprintf(why, len, "cudaGetDeviceCount: no CUDA device");
    return n > 0 ? n : 0;
}

static zoff_status gpu_info(int ordinal, zdev_gpu_info *g)
{
    struct cudaDeviceProp prop;
    memset(g, 0, sizeof *g);
    ZOFF_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
    ZOFF_CUDA_CHECK(cudaDeviceGetPCIBusId(g->pci_bus_id, (int)sizeof g->pci_bus_id, ordinal));
    g->ordinal = ordinal;
    snprintf(g->name, sizeof g->name, "%.127s", prop.name);
    g->total_bytes = prop.totalGlobalMem;
    g->cc_major = prop.major;
    g->cc_minor = prop.minor;
    return 0;
}

zoff_status zdev__cuda_list(zdev_gpu_info *out, int max, int *count)
{
    char why[256];
    int n = zdev__cuda_count(why, sizeof why);
    *count = 0;
    if (n == 0) {
        zoff__err(ZOFF_OK, "%s", why);
        return 0;
    }
    for (int i = 0; i < n && i < max; i++) {
        ZOFF_CHECK(gpu_info(i, &out[i]));
        *count = i + 1;
    }
    return 0;
}

static zoff_status cuda_pci_bus_id(const zdev *d, char *buf, size_t len)
{
    const cuda_dev *cd = cuda_of(d);
    if (strlen(cd->bus_id) >= len)
        return zoff__err(ZOFF_EINVAL, "zdev_pci_bus_id: buffer of %zu bytes is too small", len);
    memcpy(buf, cd->bus_id, strlen(cd->bus_id) + 1);
    return 0;
}

static zoff_status cuda_mem_info(const zdev *d, size_t *free_bytes, size_t *total_bytes)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

/* ---- memory ------------------------------------------------------------------------------------
 */
static zoff_status cuda_malloc(zdev *d, size_t bytes, void **out)
{
    ZOFF_CHECK(enter(d));
    cudaError_t e = cudaMalloc(out, bytes);
    if (e == cudaErrorMemoryAllocation) {
        size_t f = 0, t = 0;
        (void)cudaGetLastError();
        if (cudaMemGetInfo(&f, &t) != cudaSuccess) (void)cudaGetLastError();
        char a[32], fb[32], tb[32];
        return zoff__err(ZOFF_EDEVMEM,
                         "%s: cudaMalloc: out of device memory: asked %zu bytes (%s), free %zu "
                         "(%s), total %zu (%s)",
                         d->name, bytes, zoff__fmt_bytes(bytes, a, sizeof a), f,
                         zoff__fmt_bytes(f, fb, sizeof fb), t, zoff__fmt_bytes(t, tb, sizeof tb));
    }
    ZOFF_CUDA_CHECK(e);
    return 0;
}

static void cuda_free(zdev *d, void *p)
{
    if (enter(d) < 0) return;
    ZOFF_CUDA_WARN(cudaFree(p));
}

static zoff_status cuda_host_register(zdev *d, void *p, size_t bytes)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaHostRegister(p, bytes, cudaHostRegisterPortable));
    return 0;
}

static void cuda_host_unregister(zdev *d, void *p)
{
    if (enter(d) < 0) return;
    ZOFF_CUDA_WARN(cudaHostUnregister(p));
}

/* ---- streams and events ------------------------------------------------------------------------
 */
static zoff_status cuda_stream_create(zdev *d, zdev_stream **out)
{
    cudaStream_t s;
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *out = (zdev_stream *)(void *)s;
    return 0;
}

static void cuda_stream_destroy(zdev *d, zdev_stream *s)
{
    if (enter(d) < 0) return;
    ZOFF_CUDA_WARN(cudaStreamDestroy(cs(s)));
}

static zoff_status cuda_stream_sync(zdev *d, zdev_stream *s)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaStreamSynchronize(cs(s)));
    return 0;
}

static zoff_status cuda_event_create(zdev *d, zdev_event **out)
{
    cudaEvent_t e;
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    *out = (zdev_event *)(void *)e;
    return 0;
}

static void cuda_event_destroy(zdev *d, zdev_event *e)
{
    if (enter(d) < 0) return;
    ZOFF_CUDA_WARN(cudaEventDestroy(ce(e)));
}

static zoff_status cuda_event_record(zdev *d, zdev_event *e, zdev_stream *s)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaEventRecord(ce(e), cs(s)));
    return 0;
}

static zoff_status cuda_stream_wait_event(zdev *d, zdev_stream *s, zdev_event *e)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaStreamWaitEvent(cs(s), ce(e), 0));
    return 0;
}

static zoff_status cuda_event_query(zdev *d, zdev_event *e, int *done)
{
    ZOFF_CHECK(enter(d));
    cudaError_t r = cudaEventQuery(ce(e));
    if (r == cudaErrorNotReady) {
        /* "not ready" is an answer, not an error: make sure it does not linger. */
        if (cudaPeekAtLastError() == cudaErrorNotReady) (void)cudaGetLastError();
        *done = 0;
        return 0;
    }
    ZOFF_CUDA_CHECK(r);
    *done = 1;
    return 0;
}

static zoff_status cuda_event_sync(zdev *d, zdev_event *e)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaEventSynchronize(ce(e)));
    return 0;
}

/* ---- copies, host functions, kernels -----------------------------------------------------------
 */
static zoff_status cuda_memcpy(zdev *d, void *dst, const void *src, size_t bytes, zdev_dir dir,
                               zdev_stream *s)
{
    static const enum cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                                cudaMemcpyDeviceToDevice};
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kinds[dir], cs(s)));
    zdev__account_copy(d, dir, bytes, 0);
    return 0;
}

static zoff_status cuda_host_fn(zdev *d, zdev_stream *s, void (*fn)(void *), void *arg)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(cudaLaunchHostFunc(cs(s), fn, arg));
    return 0;
}

static zoff_status cuda_cast_f32(zdev *d, void *dst, zoff_dtype dst_dtype, const float *src,
                                 size_t n, zdev_stream *s)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(zdev__cuda_launch_cast(dst, (int)dst_dtype, src, n, cs(s)));
    return 0;
}

static zoff_status cuda_widen_f32(zdev *d, float *dst, const void *src, zoff_dtype src_dtype,
                                  size_t n, zdev_stream *s)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(zdev__cuda_launch_widen(dst, src, (int)src_dtype, n, cs(s)));
    return 0;
}

static zoff_status cuda_scale(zdev *d, void *x, zoff_dtype dtype, size_t n, float alpha,
                              zdev_stream *s)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(zdev__cuda_launch_scale(x, (int)dtype, n, alpha, cs(s)));
    return 0;
}

static zoff_status cuda_fill(zdev *d, void *x, zoff_dtype dtype, size_t n, float value,
                             zdev_stream *s)
{
    ZOFF_CHECK(enter(d));
    ZOFF_CUDA_CHECK(zdev__cuda_launch_fill(x, (int)dtype, n, value, cs(s)));
    return 0;
}

static zoff_status cuda_busy(zdev *d, zdev_stream *s, uint64_t ns)
{
    ZOFF_CHECK(enter(d));
    /* clock64 counts SM cycles at the current clock; the peak rate makes this a lower bound
     * on the time when the GPU runs below its peak clock. */
    long long cycles = (long long)((double)ns * (double)cuda_of(d)->clock_khz / 1e6);
    ZOFF_CUDA_CHECK(zdev__cuda_launch_busy(cycles, cs(s)));
    return 0;
}

/* ---- open / close -----------------------------------------------------------------------------
 */
static void cuda_close(zdev *d)
{
    zdev__fini_common(d);
    free(cuda_of(d));
}

static const zdev_ops cuda_ops = {
    .close = cuda_close,
    .pci_bus_id = cuda_pci_bus_id,
    .mem_info = cuda_mem_info,
    .malloc = cuda_malloc,
    .free = cuda_free,
    .host_register = cuda_host_register,
    .host_unregister = cuda_host_unregister,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_sync = cuda_stream_sync,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .stream_wait_event = cuda_stream_wait_event,
    .event_query = cuda_event_query,
    .event_sync = cuda_event_sync,
    .memcpy = cuda_memcpy,
    .host_fn = cuda_host_fn,
    .cast_f32 = cuda_cast_f32,
    .widen_f32 = cuda_widen_f32,
    .scale = cuda_scale,
    .fill = cuda_fill,
    .busy = cuda_busy,
};

zoff_status zdev__cuda_open(const zdev_config *cfg, zdev **out)
{
    char why[256];
    int n = zdev__cuda_count(why, sizeof why);
    if (n == 0) return zoff__err(ZOFF_EUNSUPPORTED, "device cuda: %s", why);
    if (cfg->cuda_device < 0 || cfg->cuda_device >= n)
        return zoff__err(ZOFF_EINVAL, "device cuda:%d: only %d CUDA device(s) present",
                         cfg->cuda_device, n);
    zdev_gpu_info g;
    ZOFF_CUDA_CHECK(cudaSetDevice(cfg->cuda_device));
    ZOFF_CHECK(gpu_info(cfg->cuda_device, &g));
    int khz = 0;
    ZOFF_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, cfg->cuda_device));
    if (khz <= 0) { /* not reported: assume 1 GHz for the busy kernel (documented) */
        ZOFF_INFO(ZOFF_SUB_DEV, "cuda:%d reports no SM clock rate; busy() assumes 1 GHz",
                  cfg->cuda_device);
        khz = 1000000;
    }

    cuda_dev *cd = calloc(1, sizeof *cd);
    if (!cd) return zoff__err(-ENOMEM, "cuda: out of host memory opening the device");
    zdev__init_common(&cd->base, &cuda_ops, ZOFF_DEVICE_CUDA, cfg);
    cd->ordinal = cfg->cuda_device;
    cd->clock_khz = khz;
    snprintf(cd->bus_id, sizeof cd->bus_id, "%s", g.pci_bus_id);
    snprintf(cd->base.name, sizeof cd->base.name, "cuda:%d %.100s", cd->ordinal, g.name);
    cd->base.mem_total = g.total_bytes;
    char tot[32];
    ZOFF_INFO(ZOFF_SUB_DEV, "%s: %s, compute capability %d.%d, PCI %s, SM clock %d MHz",
              cd->base.name, zoff__fmt_bytes(g.total_bytes, tot, sizeof tot), g.cc_major,
              g.cc_minor, cd->bus_id, khz / 1000);
    *out = &cd->base;
    return 0;
}
