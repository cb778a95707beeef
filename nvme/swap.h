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

/* Creates an engine (cfg may be NULL: defaults). The back end is chosen here: io_uring; when
 * io_uring_queue_init is refused and cfg->engine is AUTO, the thread pool (one WARN line per
 * process); THREADS (or ZOFF_AIO=threads) forces the pool. */
zoff_status zaio_create(const zaio_config *cfg, zaio_engine **out);
/* Waits for every I/O in flight (the disk may still be writing into caller buffers), frees the
 * requests never waited, closes the ring or stops the workers. Accepts NULL. */
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
/* Blocks until req completes, frees it, returns its status (0 or -errno / ZOFF_ESHORTIO; the
 * last-error message names the file label, offset, length and errno of the first failed I/O). */
zoff_status zaio_wait(zaio_engine *e, zaio_req *req);
/* *done = 1 when complete (then zaio_wait returns at once). Makes progress. */
zoff_status zaio_poll(zaio_engine *e, zaio_req *req, int *done);

/* Registers an open fd as an io_uring fixed file (IOSQE_FIXED_FILE) where supported, and gives
 * it a label (usually its path, copied) that error messages name instead of "fd N". Returns 0
 * also when fixed files are unavailable (the label is still kept). Unregister before close(). */
zoff_status zaio_register_file(zaio_engine *e, int fd, const char *label);
void zaio_unregister_file(zaio_engine *e, int fd);

/* Fault injection: the Nth block I/O submitted from now (1-based) completes with `error`
 * without reaching the disk, or (short_bytes > 0) transfers only short_bytes once (rounded down
 * to 4 KiB when >= 4 KiB, for O_DIRECT) and the rest is resubmitted as for a real short
 * transfer. nth = 0 disables. Single-threaded like the rest of the engine. */
typedef struct zaio_fault {
    uint64_t nth;
    int error;
    size_t short_bytes;
} zaio_fault;
void zaio_set_fault(zaio_engine *e, const zaio_fault *f);

/* Counters since creation. */
typedef struct zaio_stats {
    uint64_t read_bytes, write_bytes; /* bytes transferred */
    uint64_t read_ns, write_ns;       /* time with at least one read / write in flight */
    uint64_t ios;                     /* block I/Os submitted (resubmissions included) */
    uint64_t short_ios;               /* short transfers resubmitted for the rest */
} zaio_stats;
void zaio_get_stats(const zaio_engine *e, zaio_stats *out);

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
    const char *run_name; /* directory name under each path (default "zoff-swap-<pid>-<n>",
                             n counting the stores of this process); only "zoff-swap-*"
                             siblings are scanned for stale directories */
} zswap_config;

/* Creates the per-run directories (flock-locked; stale ones from dead processes reclaimed),
 * checks free space (-ENOSPC / ZOFF_ENOFIT with the path and the numbers before anything is
 * written), preallocates the files with fallocate. */
zoff_status zswap_create(const zswap_config *cfg, zswap_store **out);
/* Waits for in-flight I/O (requests not yet waited are freed: their pointers die here), closes
 * and removes the swap files and directories, releases the locks. Accepts NULL. */
void zswap_destroy(zswap_store *s);

/* Buffers that will be used for I/O (pinned arena memory): registered with the engine. */
zoff_status zswap_register_buffer(zswap_store *s, void *buf, size_t bytes);

/* Gives `key` an extent of `bytes` (any size; padding handled inside). Fails with ZOFF_ENOFIT
 * when capacity is exhausted, ZOFF_EINVAL if the key exists with another size. */
zoff_status zswap_reserve(zswap_store *s, uint64_t key, size_t bytes);

typedef struct zswap_req zswap_req;

/* Starts writing `bytes` of buf to key's extent (reserving it if needed). The caller must not
 * modify or free buf until zswap_wait on the returned request has returned (zswap_poll saying
 * done is not enough: wait releases it). With verify_crc the crc32c of buf is computed here,
 * after the I/O was submitted. Requests on one key never overtake each other: a swap_out issued
 * while swap_ins of that key are in flight first completes them (inside this call). */
zoff_status zswap_out(zswap_store *s, uint64_t key, const void *buf, size_t bytes, zswap_req **out);
/* Starts reading key's extent into buf (bytes must equal the reserved size). With verify_crc,
 * zswap_wait returns ZOFF_ECORRUPT (message names the key, path and offset) on mismatch.
 * A swap_out of the key still in flight is completed first (so the new data is read). A key
 * reserved but never written reads as zeros; a key whose last swap_out failed gives ZOFF_ESTATE
 * until it is written again; an unknown key ZOFF_ENOTFOUND. */
zoff_status zswap_in(zswap_store *s, uint64_t key, void *buf, size_t bytes, zswap_req **out);
/* Completes and frees req; returns its status (the message names path, offset, length, errno). */
zoff_status zswap_wait(zswap_store *s, zswap_req *req);
/* Makes progress without blocking; *done = 1 when req is complete (zswap_wait then returns at
 * once and must still be called to free it). */
zoff_status zswap_poll(zswap_store *s, zswap_req *req, int *done);

/* Fault injection for tests: the Nth I/O submitted from now (1-based) fails with `error` (e.g.
 * -EIO, -ENOSPC) or, with short_bytes > 0, transfers only that much once. n = 0 disables. */
typedef zaio_fault zswap_fault;
void zswap_set_fault(zswap_store *s, const zswap_fault *f);

typedef struct zswap_stats {
    uint64_t read_bytes, write_bytes; /* payload bytes */
    uint64_t read_ns, write_ns;       /* time with reads / writes in flight */
    uint64_t capacity_bytes, reserved_bytes;
    int odirect; /* 1: files opened O_DIRECT */
    zaio_info aio;
    uint64_t ios, short_ios; /* block I/Os submitted; short ones resubmitted */
} zswap_stats;
void zswap_get_stats(const zswap_store *s, zswap_stats *out);

/* Where key's extent starts: the swap file path (static in the store) and the file offset of
 * its first byte; *bytes: the reserved size. For tests (corrupting a byte) and tools. */
zoff_status zswap_locate(const zswap_store *s, uint64_t key, const char **path, uint64_t *off,
                         size_t *bytes);

/* Probes a directory: *odirect = 1 if O_DIRECT files work there, *uring = 1 if io_uring can be
 * set up in this process. For `zoff info` and the fallbacks. */
zoff_status zswap_probe(const char *dir, int *odirect, int *uring);

/* Free bytes on the filesystem holding `dir`. */
zoff_status zswap_free_bytes(const char *dir, uint64_t *out);

/* The checks zswap_create makes before creating anything, for a planner: every path of the
 * comma-separated list is a distinct, writable directory (-EROFS / -EACCES naming it
 * otherwise), and each filesystem has room for exactly what a store of `capacity_bytes`
 * (default stripe, one file per path) preallocates there (ZOFF_ENOFIT naming the need and the
 * free space). Filesystems that report no size (ramfs) are not checked, as in zswap_create.
 * *free_bytes (may be NULL): the free space over the paths' filesystems examined (set on
 * failure too). */
zoff_status zswap_check_space(const char *paths_csv, uint64_t capacity_bytes, uint64_t *free_bytes);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_NVME_SWAP_H */
