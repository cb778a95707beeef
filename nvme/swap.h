/*
 * swap.h — the face of nvme/: an asynchronous I/O engine (io_uring with registered buffers and
 * files, or a pread/pwrite thread pool) and the swap store built on it, which maps tensor keys to
 * extents of a few large preallocated, striped swap files.
 *
 * Only common/ is included. Callers: offload/ and runtime/ (state swapping), bench/, tests/.
 * Thread safety: one store is driven by one thread at a time (submit, wait, poll).
 */
#ifndef ZOFF_NVME_SWAP_H
#define ZOFF_NVME_SWAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- engine ------------------------------------------------------------------------------ */
typedef struct zaio_engine zaio_engine;

typedef struct zaio_config {
    zoff_aio_engine engine; /* AUTO: io_uring, threads when refused; ZOFF_AIO env overrides */
    size_t block_bytes;     /* a request is split into I/Os of at most this size (default 8 MiB) */
    int queue_depth;        /* I/Os in flight (default 32) */
    int threads;            /* thread-pool engine: workers (0: queue_depth, max 16) */
} zaio_config;

/* What the last probe found (engine chosen, features). */
typedef struct zaio_info {
    zoff_aio_engine engine; /* URING or THREADS: the one in use */
    int fixed_buffers;      /* registered buffers in use */
    int fixed_files;
    int uring_refused_errno; /* errno io_uring_queue_init returned when it fell back, else 0 */
} zaio_info;

zoff_status zaio_create(const zaio_config *cfg, zaio_engine **out);
void zaio_destroy(zaio_engine *e);
void zaio_get_info(const zaio_engine *e, zaio_info *out);

/* Registers memory for READ_FIXED/WRITE_FIXED (io_uring). May be called several times before
 * any I/O; each region <= 1 GiB (the kernel's limit; larger regions are split inside). I/O on
 * unregistered memory still works (plain READ/WRITE). */
zoff_status zaio_register_buffer(zaio_engine *e, void *buf, size_t bytes);

/* One logical request: `bytes` at file offset `off` of fd, split into block-sized I/Os.
 * With O_DIRECT fds, buf, off and bytes must be 512-byte aligned (the swap store guarantees it).
 * Short transfers are resubmitted for the rest; the first real error is kept. */
typedef struct zaio_req zaio_req;

zoff_status zaio_read(zaio_engine *e, int fd, void *buf, size_t bytes, uint64_t off,
                      zaio_req **out);
zoff_status zaio_write(zaio_engine *e, int fd, const void *buf, size_t bytes, uint64_t off,
                       zaio_req **out);
/* Blocks until req completes, frees it, returns its status (0 or -errno / ZOFF_ESHORTIO). */
zoff_status zaio_wait(zaio_engine *e, zaio_req *req);
/* *done = 1 when complete (then zaio_wait returns at once). Makes progress. */
zoff_status zaio_poll(zaio_engine *e, zaio_req *req, int *done);

/* ---- swap store -------------------------------------------------------------------------- */
typedef struct zswap_store zswap_store;

typedef struct zswap_config {
    const char *paths;       /* comma-separated directories (one per drive) */
    uint64_t capacity_bytes; /* total bytes to preallocate over all paths (keys fit in it) */
    size_t stripe_bytes;     /* striping unit across paths (default 16 MiB) */
    int files_per_path;      /* default 1 */
    int odirect;             /* -1: probe (fall back to buffered, announced); 0; 1: required */
    int verify_crc;          /* crc32c per extent, checked on swap-in */
    zaio_config aio;
    const char *run_name;    /* directory name under each path (default "zoff-swap-<pid>") */
} zswap_config;

/* Creates the per-run directories (flock-locked; stale ones from dead processes reclaimed),
 * checks free space (-ENOSPC / ZOFF_ENOFIT with the path and the numbers before anything is
 * written), preallocates the files with fallocate. */
zoff_status zswap_create(const zswap_config *cfg, zswap_store **out);
/* Waits for in-flight I/O, closes and removes the swap files and directories. Accepts NULL. */
void zswap_destroy(zswap_store *s);

/* Buffers that will be used for I/O (pinned arena memory): registered with the engine. */
zoff_status zswap_register_buffer(zswap_store *s, void *buf, size_t bytes);

/* Gives `key` an extent of `bytes` (any size; padding handled inside). Fails with ZOFF_ENOFIT
 * when capacity is exhausted, ZOFF_EINVAL if the key exists with another size. */
zoff_status zswap_reserve(zswap_store *s, uint64_t key, size_t bytes);

typedef struct zswap_req zswap_req;

/* Starts writing `bytes` of buf to key's extent (reserving it if needed). The caller must not
 * modify or free buf until zswap_wait on the returned request has returned. */
zoff_status zswap_out(zswap_store *s, uint64_t key, const void *buf, size_t bytes,
                      zswap_req **out);
/* Starts reading key's extent into buf (bytes must equal the reserved size). With verify_crc,
 * zswap_wait returns ZOFF_ECORRUPT (message names the key, path and offset) on mismatch. */
zoff_status zswap_in(zswap_store *s, uint64_t key, void *buf, size_t bytes, zswap_req **out);
/* Completes and frees req; returns its status (the message names path, offset, length, errno). */
zoff_status zswap_wait(zswap_store *s, zswap_req *req);
zoff_status zswap_poll(zswap_store *s, zswap_req *req, int *done);

/* Fault injection for tests: the Nth I/O submitted from now (1-based) fails with `error` (e.g.
 * -EIO, -ENOSPC) or, with short_bytes > 0, transfers only that much once. n = 0 disables. */
typedef struct zswap_fault {
    uint64_t nth;
    int error;
    size_t short_bytes;
} zswap_fault;
void zswap_set_fault(zswap_store *s, const zswap_fault *f);

typedef struct zswap_stats {
    uint64_t read_bytes, write_bytes;    /* payload bytes */
    uint64_t read_ns, write_ns;          /* time with reads / writes in flight */
    uint64_t capacity_bytes, reserved_bytes;
    int odirect;                         /* 1: files opened O_DIRECT */
    zaio_info aio;
} zswap_stats;
void zswap_get_stats(const zswap_store *s, zswap_stats *out);

/* Probes a directory: *odirect = 1 if O_DIRECT files work there, *uring = 1 if io_uring can be
 * set up in this process. For `zoff info` and the fallbacks. */
zoff_status zswap_probe(const char *dir, int *odirect, int *uring);

/* Free bytes on the filesystem holding `dir`. */
zoff_status zswap_free_bytes(const char *dir, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_NVME_SWAP_H */
