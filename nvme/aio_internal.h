/*
 * aio_internal.h — what the engine front end (aio.c: requests, block splitting, short-transfer
 * resubmission, fault injection, registration tables) shares with its two back ends: io_uring
 * (aio_uring.c) and the pread/pwrite thread pool (aio_threads.c). Private to nvme/.
 *
 * A back end moves block I/Os (zaio_io) to the disk and hands back their results; it knows
 * nothing of requests. All calls come from the one thread driving the engine, except the
 * thread-pool workers, which touch only the queues inside aio_threads.c.
 */
#ifndef ZOFF_NVME_AIO_INTERNAL_H
#define ZOFF_NVME_AIO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nvme/swap.h"

/* Fixed-file slots registered (sparse) with each ring. */
#define ZAIO_MAX_FILE_SLOTS 64

/* One block-sized transfer in flight (a slot; the engine owns queue_depth of them). */
typedef struct zaio_io {
    zaio_req *req;
    struct zaio_io *next; /* free list; thread-pool queues */
    char *buf;            /* where the remaining transfer starts */
    uint64_t off;         /* file offset of the remaining transfer */
    size_t len;           /* bytes still to transfer for this I/O */
    size_t xfer_len;      /* bytes asked of the back end this time (< len when injected short) */
    int fd;               /* the real fd (thread pool, and io_uring without fixed files) */
    int file_index;       /* io_uring fixed-file index, -1: none */
    int buf_index;        /* io_uring registered-buffer index, -1: plain READ/WRITE */
    int is_write;
    long result; /* back end result: bytes transferred or -errno */
} zaio_io;

/* The back-end vtable. Return values are 0 or -errno. */
typedef struct zaio_backend {
    const char *name;
    /* Queue one I/O (not yet visible to the disk until submit). */
    int (*queue)(zaio_engine *e, zaio_io *io);
    /* Make every queued I/O visible to the disk. */
    int (*submit)(zaio_engine *e);
    /* Collect completed I/Os into *done (linked by ->next, ->result set); blocks until at least
     * one completes when `wait` is set. Returns the number collected or -errno. */
    int (*reap)(zaio_engine *e, int wait, zaio_io **done);
    /* Buffer table (io_uring only; NULL in the pool): replace the whole table. */
    int (*set_buffers)(zaio_engine *e, const struct iovec *iov, unsigned n);
    /* Fixed-file slot update (io_uring only): fd or -1 into slot. */
    int (*set_file)(zaio_engine *e, unsigned slot, int fd);
    void (*destroy)(zaio_engine *e);
} zaio_backend;

/* Back-end constructors: fill e->backend and e->be (their private state). uring returns the
 * negative errno of io_uring_queue_init when io_uring is refused. */
int zaio__uring_init(zaio_engine *e, unsigned entries, int *fixed_files);
int zaio__threads_init(zaio_engine *e, int nthreads);

/* Back ends reach their state through this (the engine struct is private to aio.c). */
void *zaio__backend_state(zaio_engine *e);
void zaio__set_backend(zaio_engine *e, const zaio_backend *b, void *state);

/* Probe helpers shared with the store. */
int zaio__uring_probe(void); /* 0 if an io_uring can be created here, else -errno */

#endif /* ZOFF_NVME_AIO_INTERNAL_H */
