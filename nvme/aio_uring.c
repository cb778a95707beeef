/*
 * aio_uring.c — the io_uring back end of the I/O engine. Owns one ring per engine, its
 * registered-buffer table (READ_FIXED/WRITE_FIXED) and a sparse fixed-file table
 * (IOSQE_FIXED_FILE). Uses only liburing 2.3 API. No IOPOLL (the virtio disks here have no poll
 * queues: every I/O would fail with EOPNOTSUPP) and no SINGLE_ISSUER (an engine may be driven by
 * different threads over its life, one at a time).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "nvme/aio_internal.h"

typedef struct uring_state {
    struct io_uring ring;
    int have_buffers;
} uring_state;

static int u_queue(zaio_engine *e, zaio_io *io)
{
    uring_state *u = zaio__backend_state(e);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        /* Never more I/Os than ring entries are in flight, but a full SQ is still handled. */
        int rc = io_uring_submit(&u->ring);
        if (rc < 0) return rc;
        sqe = io_uring_get_sqe(&u->ring);
        if (!sqe) return -EBUSY;
    }
    int fd = io->file_index >= 0 ? io->file_index : io->fd;
    unsigned len = (unsigned)io->xfer_len;
    if (io->buf_index >= 0) {
        if (io->is_write)
            io_uring_prep_write_fixed(sqe, fd, io->buf, len, io->off, io->buf_index);
        else
            io_uring_prep_read_fixed(sqe, fd, io->buf, len, io->off, io->buf_index);
    } else {
        if (io->is_write)
            io_uring_prep_write(sqe, fd, io->buf, len, io->off);
        else
            io_uring_prep_read(sqe, fd, io->buf, len, io->off);
    }
    if (io->file_index >= 0) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, io);
    return 0;
}

static int u_submit(zaio_engine *e)
{
    uring_state *u = zaio__backend_state(e);
    while (io_uring_sq_ready(&u->ring) > 0) {
        int rc = io_uring_submit(&u->ring);
        if (rc == -EINTR) continue;
        if (rc == -EAGAIN || rc == -EBUSY) {
            /* The kernel is short of resources: wait for a completion, then retry. */
            struct io_uring_cqe *cqe;
            rc = io_uring_wait_cqe(&u->ring, &cqe);
            if (rc < 0 && rc != -EINTR) return rc;
            continue;
        }
        if (rc < 0) return rc;
    }
    return 0;
}

static int u_reap(zaio_engine *e, int wait, zaio_io **done)
{
    uring_state *u = zaio__backend_state(e);
    struct io_uring_cqe *cqe;
    if (wait) {
        for (;;) {
            int rc = io_uring_wait_cqe(&u->ring, &cqe);
            if (rc == 0) break;
            if (rc != -EINTR && rc != -EAGAIN) return rc;
        }
    } else {
        /* Without a ready CQE this enters the kernel only when it flagged pending task work
         * (IORING_SQ_TASKRUN): a poll loop then still sees its completions. */
        int rc = io_uring_peek_cqe(&u->ring, &cqe);
        if (rc < 0 && rc != -EAGAIN && rc != -EINTR) return rc;
    }
    int n = 0;
    unsigned head;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        zaio_io *io = io_uring_cqe_get_data(cqe);
        io->result = cqe->res;
        io->next = *done;
        *done = io;
        n++;
    }
    io_uring_cq_advance(&u->ring, (unsigned)n);
    return n;
}

static int u_set_buffers(zaio_engine *e, const struct iovec *iov, unsigned n)
{
    uring_state *u = zaio__backend_state(e);
    if (u->have_buffers) {
        io_uring_unregister_buffers(&u->ring);
        u->have_buffers = 0;
    }
    int rc = io_uring_register_buffers(&u->ring, iov, n);
    if (rc == 0) u->have_buffers = 1;
    return rc;
}

static int u_set_file(zaio_engine *e, unsigned slot, int fd)
{
    uring_state *u = zaio__backend_state(e);
    int rc = io_uring_register_files_update(&u->ring, slot, &fd, 1);
    return rc < 0 ? rc : 0;
}

static void u_destroy(zaio_engine *e)
{
    uring_state *u = zaio__backend_state(e);
    if (!u) return;
    io_uring_queue_exit(&u->ring);
    free(u);
}

static const zaio_backend uring_backend = {
    .name = "io_uring",
    .queue = u_queue,
    .submit = u_submit,
    .reap = u_reap,
    .set_buffers = u_set_buffers,
    .set_file = u_set_file,
    .destroy = u_destroy,
};

/* Ring with the cheapest completion mode this kernel accepts. */
static int ring_init(struct io_uring *ring, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* COOP_TASKRUN: completions are posted when this thread enters the kernel (no IPI);
     * TASKRUN_FLAG tells a non-blocking peek that it must enter to get them. */
    p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL;
    int rc = io_uring_queue_init_params(entries, ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(entries, ring, &p);
    }
    return rc;
}

int zaio__uring_init(zaio_engine *e, unsigned entries, int *fixed_files)
{
    uring_state *u = calloc(1, sizeof *u);
    if (!u) return -ENOMEM;
    int rc = ring_init(&u->ring, entries);
    if (rc < 0) {
        free(u);
        return rc;
    }
    *fixed_files = io_uring_register_files_sparse(&u->ring, ZAIO_MAX_FILE_SLOTS) == 0;
    zaio__set_backend(e, &uring_backend, u);
    return 0;
}

int zaio__uring_probe(void)
{
    struct io_uring ring;
    int rc = ring_init(&ring, 2);
    if (rc == 0) io_uring_queue_exit(&ring);
    return rc;
}
