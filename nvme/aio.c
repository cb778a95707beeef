/*
 * aio.c — the asynchronous I/O engine's front end. Owns: engine creation and the choice of back
 * end (io_uring, or the pread/pwrite thread pool when io_uring is refused or ZOFF_AIO=threads),
 * logical requests and their split into block-sized I/Os (at most queue_depth in flight, taken
 * from a fixed pool of slots, FIFO across requests), short-transfer resubmission, the first
 * error of each request with its message, the registered-buffer and file tables, fault
 * injection and the engine's counters.
 *
 * Single-threaded: one thread drives an engine at a time (the back end may use threads inside).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nvme/aio_internal.h"

#define ZAIO_DEFAULT_BLOCK_BYTES (8 * ZOFF_MIB)
#define ZAIO_DEFAULT_QUEUE_DEPTH 32
#define ZAIO_MAX_QUEUE_DEPTH     4096
#define ZAIO_MAX_REGION_BYTES    ZOFF_GIB /* io_uring's limit per registered iovec */
#define ZAIO_PAGE                4096u
#define ZAIO_MSG_BYTES           320

typedef struct zaio_region {
    uintptr_t base, end; /* page-aligned, end - base <= 1 GiB */
    int index;           /* registered-buffer index */
} zaio_region;

typedef struct zaio_file {
    int fd;
    int slot; /* fixed-file slot, -1: none */
    char *label;
} zaio_file;

struct zaio_req {
    zaio_req *next;                  /* pending list (requests with bytes left to hand to I/Os) */
    zaio_req *live_prev, *live_next; /* every request not yet waited (freed by destroy) */
    char *buf;
    size_t bytes;
    uint64_t off;
    size_t carved; /* bytes handed to I/Os so far */
    size_t moved;  /* bytes transferred */
    int inflight;  /* I/Os of this request not yet completed */
    int fd;
    int is_write;
    int done;
    zoff_status status; /* first error */
    char msg[ZAIO_MSG_BYTES];
};

struct zaio_engine {
    zaio_config cfg;
    zaio_info info;
    const zaio_backend *backend;
    void *be;

    zaio_io *slots; /* queue_depth of them */
    zaio_io *free_slots;
    zaio_req *pend_head, *pend_tail;
    zaio_req *live;
    zaio_io *synth;    /* injected-error completions, not yet handled */
    int at_backend;    /* I/Os queued or submitted to the back end */
    int queued;        /* of those, not yet submitted */
    zoff_status fatal; /* sticky back-end failure */

    zaio_region *regions;
    int nregions, regions_cap;
    zaio_file *files;
    int nfiles, files_cap;
    unsigned char file_slot_used[ZAIO_MAX_FILE_SLOTS];

    zaio_fault fault;
    uint64_t fault_seen; /* I/Os started since the fault was set */

    zaio_stats stats;
    int dir_inflight[2];
    uint64_t dir_since_ns[2];
};

void *zaio__backend_state(zaio_engine *e)
{
    return e->be;
}

void zaio__set_backend(zaio_engine *e, const zaio_backend *b, void *state)
{
    e->backend = b;
    e->be = state;
}

/* ---- tables ------------------------------------------------------------------------------- */
static const zaio_file *find_file(const zaio_engine *e, int fd)
{
    for (int i = 0; i < e->nfiles; i++)
        if (e->files[i].fd == fd) return &e->files[i];
    return NULL;
}

/* Index of the registered region holding p, with its end in *end; -1 if none. */
static int find_region(const zaio_engine *e, const char *p, uintptr_t *end)
{
    uintptr_t a = (uintptr_t)p;
    int lo = 0, hi = e->nregions - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const zaio_region *r = &e->regions[mid];
        if (a < r->base)
            hi = mid - 1;
        else if (a >= r->end)
            lo = mid + 1;
        else {
            *end = r->end;
            return r->index;
        }
    }
    return -1;
}

/* ---- counters ----------------------------------------------------------------------------- */
static void busy_begin(zaio_engine *e, int dir)
{
    if (e->dir_inflight[dir]++ == 0) e->dir_since_ns[dir] = zoff__now_ns();
}

static void busy_end(zaio_engine *e, int dir)
{
    if (--e->dir_inflight[dir] == 0) {
        uint64_t dt = zoff__now_ns() - e->dir_since_ns[dir];
        if (dir)
            e->stats.write_ns += dt;
        else
            e->stats.read_ns += dt;
    }
}

/* ---- requests and I/Os -------------------------------------------------------------------- */
static void describe(const zaio_engine *e, const zaio_req *r, char *out, size_t len)
{
    const zaio_file *f = find_file(e, r->fd);
    if (f && f->label)
        snprintf(out, len, "%s", f->label);
    else
        snprintf(out, len, "fd %d", r->fd);
}

/* Keeps the first error of r, with a message naming file, offset, length and errno. */
static void req_fail(zaio_engine *e, zaio_req *r, zoff_status st, const zaio_io *io,
                     const char *what)
{
    if (r->status != 0) return;
    char name[200];
    describe(e, r, name, sizeof name);
    r->status = st;
    if (st == ZOFF_ESHORTIO)
        snprintf(r->msg, sizeof r->msg,
                 "%s %s: offset %" PRIu64 " length %zu: %s (request offset %" PRIu64 " length %zu)",
                 r->is_write ? "write" : "read", name, io->off, io->len, what, r->off, r->bytes);
    else
        snprintf(r->msg, sizeof r->msg,
                 "%s %s: offset %" PRIu64 " length %zu: %s (%s; request offset %" PRIu64
                 " length %zu)",
                 r->is_write ? "write" : "read", name, io->off, io->len, strerror(-st),
                 zoff_status_name(st), r->off, r->bytes);
}

static void unlink_pending(zaio_engine *e, zaio_req *r)
{
    zaio_req *prev = NULL;
    for (zaio_req *p = e->pend_head; p; prev = p, p = p->next) {
        if (p != r) continue;
        if (prev)
            prev->next = p->next;
        else
            e->pend_head = p->next;
        if (e->pend_tail == p) e->pend_tail = prev;
        p->next = NULL;
        return;
    }
}

static void maybe_finish(zaio_engine *e, zaio_req *r)
{
    if (r->inflight > 0) return;
    if (r->status != 0) {
        unlink_pending(e, r);
        r->done = 1;
    } else if (r->carved == r->bytes) {
        r->done = 1;
    }
}

static void release_slot(zaio_engine *e, zaio_io *io)
{
    io->req = NULL;
    io->next = e->free_slots;
    e->free_slots = io;
}

/* Hands io to the back end (or to the injected-completion list). */
static void start_io(zaio_engine *e, zaio_io *io)
{
    io->xfer_len = io->len;
    e->stats.ios++;
    if (e->fault.nth && ++e->fault_seen == e->fault.nth) {
        zaio_fault f = e->fault;
        e->fault.nth = 0; /* one shot */
        if (f.short_bytes == 0) {
            io->result = f.error ? f.error : -EIO;
            io->next = e->synth;
            e->synth = io;
            return;
        }
        size_t n = ZOFF_MIN(f.short_bytes, io->len > 1 ? io->len - 1 : 1);
        if (n >= ZAIO_PAGE) n = ZOFF_ALIGN_DOWN(n, ZAIO_PAGE);
        io->xfer_len = n;
    }
    busy_begin(e, io->is_write);
    int rc = e->backend->queue(e, io);
    if (rc < 0) {
        busy_end(e, io->is_write);
        io->result = rc;
        io->next = e->synth;
        e->synth = io;
        return;
    }
    e->at_backend++;
    e->queued++;
}

/* Fills free slots from the pending requests, FIFO. */
static void carve(zaio_engine *e)
{
    while (e->free_slots && e->pend_head) {
        zaio_req *r = e->pend_head;
        if (r->status != 0) { /* failed: no new I/O; done when its last one returns */
            e->pend_head = r->next;
            if (!e->pend_head) e->pend_tail = NULL;
            r->next = NULL;
            maybe_finish(e, r);
            continue;
        }
        size_t left = r->bytes - r->carved;
        size_t len = ZOFF_MIN(left, e->cfg.block_bytes);
        char *p = r->buf + r->carved;
        uintptr_t end = 0;
        int bi = find_region(e, p, &end);
        if (bi >= 0 && (uintptr_t)p + len > end) len = (size_t)(end - (uintptr_t)p);
        zaio_io *io = e->free_slots;
        e->free_slots = io->next;
        memset(io, 0, sizeof *io);
        io->req = r;
        io->buf = p;
        io->off = r->off + r->carved;
        io->len = len;
        io->fd = r->fd;
        io->is_write = r->is_write;
        io->buf_index = bi;
        const zaio_file *f = find_file(e, r->fd);
        io->file_index = f ? f->slot : -1;
        r->carved += len;
        r->inflight++;
        if (r->carved == r->bytes) {
            e->pend_head = r->next;
            if (!e->pend_head) e->pend_tail = NULL;
            r->next = NULL;
        }
        start_io(e, io);
    }
}

static void complete_io(zaio_engine *e, zaio_io *io, int from_backend)
{
    zaio_req *r = io->req;
    long res = io->result;
    if (from_backend) busy_end(e, io->is_write);
    if (res == -EAGAIN || res == -EINTR) {
        if (r->status == 0) {
            start_io(e, io);
            return;
        }
        res = -EINTR;
    }
    if (res < 0) {
        req_fail(e, r, (zoff_status)res, io, NULL);
    } else if (res > 0) {
        size_t got = (size_t)res;
        if (io->is_write)
            e->stats.write_bytes += got;
        else
            e->stats.read_bytes += got;
        r->moved += got;
        if (got < io->len && r->status == 0) {
            e->stats.short_ios++;
            io->buf += got;
            io->off += got;
            io->len -= got;
            start_io(e, io); /* the rest of this block */
            return;
        }
    } else if (io->len > 0) {
        req_fail(e, r, ZOFF_ESHORTIO, io,
                 io->is_write ? "write transferred 0 bytes"
                              : "end of file before the request's end");
    }
    r->inflight--;
    release_slot(e, io);
    maybe_finish(e, r);
}

/* Hands new I/Os from pending requests to the free slots and makes them visible. */
static zoff_status refill(zaio_engine *e)
{
    carve(e);
    if (!e->queued) return ZOFF_OK;
    int rc = e->backend->submit(e);
    if (rc < 0) {
        e->fatal = zoff__err(rc, "%s submit: %s", e->backend->name, strerror(-rc));
        return e->fatal;
    }
    e->queued = 0;
    return ZOFF_OK;
}

/* Drives the engine: submit, complete, and refill the slots that completions freed (so the
 * disk stays busy while the caller computes). Blocks for a completion when `wait` is set and
 * nothing else was completed. */
static zoff_status progress(zaio_engine *e, int wait)
{
    if (e->fatal) return e->fatal;
    ZOFF_CHECK(refill(e));
    int handled = 0;
    while (e->synth) {
        zaio_io *io = e->synth;
        e->synth = io->next;
        complete_io(e, io, 0);
        handled++;
    }
    if (e->at_backend == 0) return refill(e);
    zaio_io *done = NULL;
    int n = e->backend->reap(e, wait && !handled, &done);
    if (n < 0) {
        e->fatal = zoff__err(n, "%s reap: %s", e->backend->name, strerror(-n));
        return e->fatal;
    }
    while (done) {
        zaio_io *io = done;
        done = io->next;
        e->at_backend--;
        complete_io(e, io, 1);
    }
    return refill(e);
}

/* Completes everything outstanding (requests stay allocated, marked done). */
static zoff_status drain(zaio_engine *e)
{
    while (e->pend_head || e->at_backend || e->synth) ZOFF_CHECK(progress(e, 1));
    return ZOFF_OK;
}

static void free_req(zaio_engine *e, zaio_req *r)
{
    if (r->live_prev)
        r->live_prev->live_next = r->live_next;
    else
        e->live = r->live_next;
    if (r->live_next) r->live_next->live_prev = r->live_prev;
    free(r);
}

static zoff_status submit_req(zaio_engine *e, int fd, void *buf, size_t bytes, uint64_t off,
                              int is_write, zaio_req **out)
{
    if (!e || !out || (!buf && bytes)) return zoff__err(ZOFF_EINVAL, "zaio: NULL argument");
    if (e->fatal)
        return zoff__err(e->fatal, "zaio: engine failed earlier (%s)", zoff_status_name(e->fatal));
    zaio_req *r = calloc(1, sizeof *r);
    if (!r) return zoff__err(-ENOMEM, "zaio: out of memory for a request");
    r->live_next = e->live;
    if (e->live) e->live->live_prev = r;
    e->live = r;
    r->buf = buf;
    r->bytes = bytes;
    r->off = off;
    r->fd = fd;
    r->is_write = is_write;
    if (bytes == 0) {
        r->done = 1;
    } else {
        if (e->pend_tail)
            e->pend_tail->next = r;
        else
            e->pend_head = r;
        e->pend_tail = r;
        /* Start at once: the I/O runs while the caller does other work. */
        zoff_status st = progress(e, 0);
        if (st < 0) {
            unlink_pending(e, r);
            free_req(e, r);
            return st;
        }
    }
    *out = r;
    return ZOFF_OK;
}

zoff_status zaio_read(zaio_engine *e, int fd, void *buf, size_t bytes, uint64_t off, zaio_req **out)
{
    return submit_req(e, fd, buf, bytes, off, 0, out);
}

zoff_status zaio_write(zaio_engine *e, int fd, const void *buf, size_t bytes, uint64_t off,
                       zaio_req **out)
{
    return submit_req(e, fd, (void *)(uintptr_t)buf, bytes, off, 1, out);
}

zoff_status zaio_poll(zaio_engine *e, zaio_req *req, int *done)
{
    if (!e || !req || !done) return zoff__err(ZOFF_EINVAL, "zaio_poll: NULL argument");
    if (!req->done) {
        zoff_status st = progress(e, 0);
        if (st < 0) return st;
    }
    *done = req->done;
    return ZOFF_OK;
}

zoff_status zaio_wait(zaio_engine *e, zaio_req *req)
{
    if (!e || !req) return zoff__err(ZOFF_EINVAL, "zaio_wait: NULL argument");
    zoff_status st = ZOFF_OK;
    while (!req->done) {
        st = progress(e, 1);
        if (st < 0) break;
        if (!req->done && !e->pend_head && !e->at_backend && !e->synth) {
            st = zoff__err(ZOFF_EINTERNAL, "zaio_wait: request neither done nor in flight");
            break;
        }
    }
    if (st == 0 && req->status != 0) st = zoff__err(req->status, "%s", req->msg);
    if (req->done) free_req(e, req);
    return st;
}

/* ---- registration ------------------------------------------------------------------------- */
static int cmp_region(const void *a, const void *b)
{
    const zaio_region *x = a, *y = b;
    return (x->base > y->base) - (x->base < y->base);
}

zoff_status zaio_register_buffer(zaio_engine *e, void *buf, size_t bytes)
{
    if (!e || !buf || !bytes) return zoff__err(ZOFF_EINVAL, "zaio_register_buffer: bad argument");
    if (!e->backend->set_buffers) return ZOFF_OK; /* thread pool: nothing to register */
    uintptr_t base = ZOFF_ALIGN_DOWN((uintptr_t)buf, ZAIO_PAGE);
    uintptr_t end = ZOFF_ALIGN_UP((uintptr_t)buf + bytes, ZAIO_PAGE);
    for (int i = 0; i < e->nregions; i++)
        if (base < e->regions[i].end && end > e->regions[i].base)
            return zoff__err(ZOFF_EINVAL,
                             "zaio_register_buffer: %p+%zu overlaps a registered buffer", buf,
                             bytes);
    int add = (int)((end - base + ZAIO_MAX_REGION_BYTES - 1) / ZAIO_MAX_REGION_BYTES);
    if (e->nregions + add > e->regions_cap) {
        int cap = ZOFF_MAX(e->regions_cap * 2, e->nregions + add + 8);
        zaio_region *nr = realloc(e->regions, sizeof *nr * (size_t)cap);
        if (!nr) return zoff__err(-ENOMEM, "zaio_register_buffer: out of memory");
        e->regions = nr;
        e->regions_cap = cap;
    }
    zoff_status st = drain(e); /* the table is replaced: nothing may be in flight */
    if (st < 0) return st;
    for (uintptr_t p = base; p < end; p += ZAIO_MAX_REGION_BYTES) {
        zaio_region *r = &e->regions[e->nregions++];
        r->base = p;
        r->end = ZOFF_MIN(end, p + ZAIO_MAX_REGION_BYTES);
    }
    qsort(e->regions, (size_t)e->nregions, sizeof *e->regions, cmp_region);
    struct iovec *iov = calloc((size_t)e->nregions, sizeof *iov);
    if (!iov) {
        e->nregions -= add;
        return zoff__err(-ENOMEM, "zaio_register_buffer: out of memory");
    }
    for (int i = 0; i < e->nregions; i++) {
        e->regions[i].index = i;
        iov[i].iov_base = (void *)e->regions[i].base;
        iov[i].iov_len = e->regions[i].end - e->regions[i].base;
    }
    int rc = e->backend->set_buffers(e, iov, (unsigned)e->nregions);
    free(iov);
    if (rc < 0) {
        /* Without registered buffers I/O still works with plain READ/WRITE. */
        ZOFF_LOG_ONCE(ZOFF_LOG_WARN, ZOFF_SUB_NVME,
                      "io_uring buffer registration refused (%s; RLIMIT_MEMLOCK without "
                      "CAP_IPC_LOCK?): using unregistered buffers",
                      strerror(-rc));
        e->nregions = 0;
        e->info.fixed_buffers = 0;
        return ZOFF_OK;
    }
    e->info.fixed_buffers = 1;
    return ZOFF_OK;
}

zoff_status zaio_register_file(zaio_engine *e, int fd, const char *label)
{
    if (!e || fd < 0) return zoff__err(ZOFF_EINVAL, "zaio_register_file: bad argument");
    if (find_file(e, fd)) return zoff__err(ZOFF_EINVAL, "zaio_register_file: fd %d twice", fd);
    if (e->nfiles == e->files_cap) {
        int cap = e->files_cap ? e->files_cap * 2 : 8;
        zaio_file *nf = realloc(e->files, sizeof *nf * (size_t)cap);
        if (!nf) return zoff__err(-ENOMEM, "zaio_register_file: out of memory");
        e->files = nf;
        e->files_cap = cap;
    }
    zaio_file *f = &e->files[e->nfiles];
    f->fd = fd;
    f->slot = -1;
    f->label = label ? strdup(label) : NULL;
    if (e->info.fixed_files && e->backend->set_file) {
        for (int s = 0; s < ZAIO_MAX_FILE_SLOTS; s++) {
            if (e->file_slot_used[s]) continue;
            if (e->backend->set_file(e, (unsigned)s, fd) == 0) {
                e->file_slot_used[s] = 1;
                f->slot = s;
            }
            break;
        }
    }
    e->nfiles++;
    return ZOFF_OK;
}

void zaio_unregister_file(zaio_engine *e, int fd)
{
    if (!e) return;
    for (int i = 0; i < e->nfiles; i++) {
        zaio_file *f = &e->files[i];
        if (f->fd != fd) continue;
        /* No I/O of this fd may remain in flight: the caller waited its requests, but a
         * drain keeps a forgotten one from touching a closed slot. */
        (void)drain(e);
        if (f->slot >= 0) {
            e->backend->set_file(e, (unsigned)f->slot, -1);
            e->file_slot_used[f->slot] = 0;
        }
        free(f->label);
        e->files[i] = e->files[--e->nfiles];
        return;
    }
}

/* ---- faults, stats, info ------------------------------------------------------------------ */
void zaio_set_fault(zaio_engine *e, const zaio_fault *f)
{
    if (!e) return;
    if (f)
        e->fault = *f;
    else
        memset(&e->fault, 0, sizeof e->fault);
    e->fault_seen = 0;
}

void zaio_get_stats(const zaio_engine *e, zaio_stats *out)
{
    if (!e || !out) return;
    *out = e->stats;
    uint64_t now = zoff__now_ns();
    if (e->dir_inflight[0]) out->read_ns += now - e->dir_since_ns[0];
    if (e->dir_inflight[1]) out->write_ns += now - e->dir_since_ns[1];
}

void zaio_get_info(const zaio_engine *e, zaio_info *out)
{
    if (e && out) *out = e->info;
}

/* ---- create / destroy --------------------------------------------------------------------- */
static zoff_aio_engine engine_from_env(zoff_aio_engine dflt)
{
    const char *v = zoff__param_str(ZOFF_PARAM_AIO);
    if (!v[0]) return dflt;
    if (!strcasecmp(v, "threads")) return ZOFF_AIO_THREADS;
    if (!strcasecmp(v, "uring") || !strcasecmp(v, "io_uring")) return ZOFF_AIO_URING;
    if (!strcasecmp(v, "auto")) return ZOFF_AIO_AUTO;
    ZOFF_LOG_ONCE(ZOFF_LOG_WARN, ZOFF_SUB_NVME, "ZOFF_AIO=%s not understood (auto, uring, threads)",
                  v);
    return dflt;
}

zoff_status zaio_create(const zaio_config *cfg, zaio_engine **out)
{
    if (!out) return zoff__err(ZOFF_EINVAL, "zaio_create: NULL out");
    zoff_status st = ZOFF_OK;
    zaio_engine *e = calloc(1, sizeof *e);
    if (!e) return zoff__err(-ENOMEM, "zaio_create: out of memory");
    if (cfg) e->cfg = *cfg;
    if (e->cfg.block_bytes == 0) e->cfg.block_bytes = ZAIO_DEFAULT_BLOCK_BYTES;
    e->cfg.block_bytes = ZOFF_MAX(ZOFF_ALIGN_UP(e->cfg.block_bytes, ZAIO_PAGE), ZAIO_PAGE);
    if (e->cfg.queue_depth <= 0) e->cfg.queue_depth = ZAIO_DEFAULT_QUEUE_DEPTH;
    if (e->cfg.queue_depth > ZAIO_MAX_QUEUE_DEPTH) e->cfg.queue_depth = ZAIO_MAX_QUEUE_DEPTH;
    e->cfg.engine = engine_from_env(e->cfg.engine);
    if (e->cfg.threads <= 0) e->cfg.threads = ZOFF_MIN(e->cfg.queue_depth, 16);

    e->slots = calloc((size_t)e->cfg.queue_depth, sizeof *e->slots);
    if (!e->slots) {
        st = zoff__err(-ENOMEM, "zaio_create: out of memory");
        goto fail;
    }
    for (int i = e->cfg.queue_depth - 1; i >= 0; i--) release_slot(e, &e->slots[i]);

    if (e->cfg.engine != ZOFF_AIO_THREADS) {
        unsigned entries = 1;
        while (entries < (unsigned)e->cfg.queue_depth) entries <<= 1;
        int fixed_files = 0;
        int rc = zaio__uring_init(e, entries, &fixed_files);
        if (rc == 0) {
            e->info.engine = ZOFF_AIO_URING;
            e->info.fixed_files = fixed_files;
        } else if (e->cfg.engine == ZOFF_AIO_URING) {
            st = zoff__err(rc,
                           "io_uring_queue_init(%u entries) refused: %s (engine uring "
                           "required; ZOFF_AIO=threads uses the thread pool)",
                           entries, strerror(-rc));
            goto fail;
        } else {
            e->info.uring_refused_errno = -rc;
            ZOFF_LOG_ONCE(ZOFF_LOG_WARN, ZOFF_SUB_NVME,
                          "io_uring refused (io_uring_queue_init: %s): using the pread/pwrite "
                          "thread pool",
                          strerror(-rc));
        }
    } else {
        ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_NVME,
                      "I/O engine: pread/pwrite thread pool (engine threads / ZOFF_AIO=threads)");
    }
    if (!e->backend) {
        int rc = zaio__threads_init(e, e->cfg.threads);
        if (rc < 0) {
            st = zoff__err(rc, "zaio: starting %d I/O threads: %s", e->cfg.threads, strerror(-rc));
            goto fail;
        }
        e->info.engine = ZOFF_AIO_THREADS;
    }
    ZOFF_INFO(ZOFF_SUB_NVME, "I/O engine %s: block %zu bytes, queue depth %d, fixed files %d",
              e->backend->name, e->cfg.block_bytes, e->cfg.queue_depth, e->info.fixed_files);
    *out = e;
    return ZOFF_OK;
fail:
    zaio_destroy(e);
    return st;
}

void zaio_destroy(zaio_engine *e)
{
    if (!e) return;
    if (e->backend) {
        /* The disk may still write into caller buffers: finish every I/O first. */
        if (!e->fatal) (void)drain(e);
        e->backend->destroy(e);
    }
    while (e->live) free_req(e, e->live);
    for (int i = 0; i < e->nfiles; i++) free(e->files[i].label);
    free(e->files);
    free(e->regions);
    free(e->slots);
    free(e);
}
