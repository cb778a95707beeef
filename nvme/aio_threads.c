/*
 * aio_threads.c — the pread/pwrite thread-pool back end of the I/O engine, used when io_uring
 * is refused (seccomp, old kernel, io_uring_disabled) or forced with ZOFF_AIO=threads. Owns the
 * worker threads, the work queue and the completion queue. Each block I/O is one pread/pwrite
 * call (retried on EINTR); its result (bytes or -errno) goes back unchanged, so short transfers
 * and errors take the same path in the front end as with io_uring.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvme/aio_internal.h"

typedef struct pool_state {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    zaio_io *work_head, *work_tail;   /* FIFO */
    zaio_io *done;                    /* completed, any order */
    zaio_io *batch_head, *batch_tail; /* queued by the driver, not yet submitted */
    int stop;
    int nthreads;
    pthread_t *threads;
} pool_state;

static void *worker(void *arg)
{
    pool_state *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->work_head && !p->stop) pthread_cond_wait(&p->work_cv, &p->mu);
        if (!p->work_head) break; /* stop, and nothing left */
        zaio_io *io = p->work_head;
        p->work_head = io->next;
        if (!p->work_head) p->work_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        ssize_t n;
        do {
            n = io->is_write ? pwrite(io->fd, io->buf, io->xfer_len, (off_t)io->off)
                             : pread(io->fd, io->buf, io->xfer_len, (off_t)io->off);
        } while (n < 0 && errno == EINTR);
        io->result = n < 0 ? -errno : (long)n;

        pthread_mutex_lock(&p->mu);
        io->next = p->done;
        p->done = io;
        pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int t_queue(zaio_engine *e, zaio_io *io)
{
    pool_state *p = zaio__backend_state(e);
    io->next = NULL;
    if (p->batch_tail)
        p->batch_tail->next = io;
    else
        p->batch_head = io;
    p->batch_tail = io;
    return 0;
}

static int t_submit(zaio_engine *e)
{
    pool_state *p = zaio__backend_state(e);
    if (!p->batch_head) return 0;
    pthread_mutex_lock(&p->mu);
    if (p->work_tail)
        p->work_tail->next = p->batch_head;
    else
        p->work_head = p->batch_head;
    p->work_tail = p->batch_tail;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    p->batch_head = p->batch_tail = NULL;
    return 0;
}

static int t_reap(zaio_engine *e, int wait, zaio_io **done)
{
    pool_state *p = zaio__backend_state(e);
    pthread_mutex_lock(&p->mu);
    while (wait && !p->done) pthread_cond_wait(&p->done_cv, &p->mu);
    zaio_io *list = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    int n = 0;
    while (list) {
        zaio_io *io = list;
        list = io->next;
        io->next = *done;
        *done = io;
        n++;
    }
    return n;
}

static void t_destroy(zaio_engine *e)
{
    pool_state *p = zaio__backend_state(e);
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p);
}

static const zaio_backend pool_backend = {
    .name = "threads",
    .queue = t_queue,
    .submit = t_submit,
    .reap = t_reap,
    .set_buffers = NULL,
    .set_file = NULL,
    .destroy = t_destroy,
};

int zaio__threads_init(zaio_engine *e, int nthreads)
{
    pool_state *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    zaio__set_backend(e, &pool_backend, p);
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker, p);
        if (rc != 0) {
            /* Keep the threads that started (the pool works with fewer); none is an error. */
            if (i == 0) {
                zaio__set_backend(e, NULL, NULL);
                pthread_mutex_destroy(&p->mu);
                pthread_cond_destroy(&p->work_cv);
                pthread_cond_destroy(&p->done_cv);
                free(p->threads);
                free(p);
                return -rc;
            }
            break;
        }
        p->nthreads = i + 1;
    }
    return 0;
}
