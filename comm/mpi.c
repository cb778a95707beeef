/*
 * mpi.c — the MPI backend of the collective layer (host buffers): initialisation (or adoption of
 * an MPI the program initialised), the node-local split, and deterministic reductions.
 *
 * Reductions never use MPI's reduction algorithms, whose summation order depends on the
 * implementation and the message sizes: the pieces are exchanged with MPI_Ialltoallv and each
 * rank adds the N contributions of its piece in rank order 0..N-1 in the element type (fp16/bf16
 * are accumulated in fp32 and rounded once). So every rank, every run and every MPI gives the
 * same bits; AVG divides that sum by N. All-reduce = that reduce-scatter over N near-equal
 * pieces + MPI_Iallgatherv.
 *
 * Every call is a non-blocking request polled (with short sleeps, so oversubscribed ranks leave
 * each other the cores) until it completes or the watchdog timeout passes. MPI counts are ints:
 * one call moves at most INT_MAX elements per rank piece.
 *
 * Without ZOFF_HAVE_MPI this file only reports ZOFF_EUNSUPPORTED.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/backend.h"
#include "common/half.h"

#ifdef ZOFF_HAVE_MPI
#include <mpi.h>

typedef struct mpi_impl {
    MPI_Comm world; /* a duplicate of MPI_COMM_WORLD: zoff's messages never mix with the caller's */
    MPI_Request pending; /* the request a watchdog timeout abandoned (MPI_REQUEST_NULL: none) */
} mpi_impl;

static int g_we_init;  /* zoff called MPI_Init_thread */
static int g_any_hung; /* a collective timed out: finalising could block forever */

/* MPI cannot be initialised twice in a process: zoff finalises the MPI it started at exit, so
 * runtimes may come and go. */
static void mpi_atexit(void)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && !g_any_hung) MPI_Finalize();
}

int zcomm__mpi_built(void)
{
    return 1;
}

static zoff_status mpi_err(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return zoff__err(ZOFF_EDEVICE, "comm/mpi: %s failed: %.*s", what, len, msg);
}

static MPI_Datatype mpi_type(zcomm_dtype dt)
{
    switch (dt) {
    case ZCOMM_U8:
        return MPI_BYTE;
    case ZCOMM_F32:
        return MPI_FLOAT;
    case ZCOMM_F64:
        return MPI_DOUBLE;
    case ZCOMM_I64:
        return MPI_INT64_T;
    case ZCOMM_F16:
    case ZCOMM_BF16:
        return MPI_UINT16_T;
    }
    return MPI_BYTE;
}

/* After a timeout: which ranks are alive? Every rank that timed out pings every other one (one
 * int, a tag of its own) and waits up to min(timeout / 2, 5 s) for their pings; the ranks not heard
 * from are dead or stuck elsewhere. Unmatched receives are cancelled, sends freed. */
#define ZCOMM_PING_TAG 0x7a6f
static void probe_peers(zcomm *c, char *out, size_t len)
{
    mpi_impl *m = c->impl;
    int n = c->size;
    MPI_Request *rq = calloc(2 * (size_t)n, sizeof *rq);
    int *got = calloc((size_t)n, sizeof *got), *in = calloc((size_t)n, sizeof *in);
    if (!rq || !got || !in) {
        snprintf(out, len, "(no memory to probe the other ranks)");
        goto done;
    }
    int me = c->rank;
    for (int r = 0; r < n; r++) {
        rq[r] = rq[n + r] = MPI_REQUEST_NULL;
        if (r == me) continue;
        MPI_Irecv(&in[r], 1, MPI_INT, r, ZCOMM_PING_TAG, m->world, &rq[r]);
        MPI_Isend(&c->rank, 1, MPI_INT, r, ZCOMM_PING_TAG, m->world, &rq[n + r]);
    }
    uint64_t wait_ms = ZOFF_MIN(ZOFF_MAX(c->timeout_ms / 2, (uint64_t)200), (uint64_t)5000);
    uint64_t t0 = zoff__now_ns();
    int missing = n - 1;
    while (missing > 0 && (zoff__now_ns() - t0) / 1000000u < wait_ms) {
        for (int r = 0; r < n; r++) {
            if (r == me || got[r]) continue;
            int done = 0;
            if (MPI_Test(&rq[r], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
                got[r] = 1;
                missing--;
            }
        }
        zoff__sleep_ns(1000000);
    }
    size_t used = 0;
    used += (size_t)snprintf(out, len,
                             missing ? "not responding: rank"
                                     : "every other rank "
                                       "responds (a rank "
                                       "calls another "
                                       "collective)");
    int first = 1;
    for (int r = 0; r < n && used < len; r++) {
        if (r == me || got[r]) continue;
        used += (size_t)snprintf(out + used, len - used, "%s %d", first ? "" : ",", r);
        first = 0;
    }
    for (int r = 0; r < n; r++) /* receives: cancelled, so nothing lands in freed memory */
        if (rq[r] != MPI_REQUEST_NULL && !got[r]) {
            MPI_Cancel(&rq[r]);
            MPI_Wait(&rq[r], MPI_STATUS_IGNORE);
        }
    for (int r = n; r < 2 * n; r++) /* sends: one int, copied at once; never waited for */
        if (rq[r] != MPI_REQUEST_NULL) MPI_Request_free(&rq[r]);
done:
    free(rq);
    free(got);
    free(in);
}

/* Polls `rq` until done or the watchdog fires. */
static zoff_status mpi_wait(zcomm *c, MPI_Request *rq, const char *op)
{
    uint64_t t0 = zoff__now_ns();
    uint64_t nap_ns = 2000;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_err(rc, op);
        if (done) return ZOFF_OK;
        uint64_t waited_ms = (zoff__now_ns() - t0) / 1000000u;
        if (c->timeout_ms && waited_ms >= c->timeout_ms) {
            ((mpi_impl *)c->impl)->pending = *rq;
            char who[256];
            probe_peers(c, who, sizeof who);
            return zcomm__timeout(c, op, waited_ms, who);
        }
        zoff__sleep_ns(nap_ns);
        if (nap_ns < 500000) nap_ns *= 2;
    }
}

zoff_status zcomm__mpi_create(zcomm *c, const zcomm_config *cfg)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) return zoff__err(ZOFF_ESTATE, "comm/mpi: MPI was already finalized");
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Init_thread");
        g_we_init = 1;
        atexit(mpi_atexit);
    }
    mpi_impl *m = calloc(1, sizeof *m);
    if (!m) return zoff__err(-ENOMEM, "comm/mpi: out of memory");
    m->pending = MPI_REQUEST_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->world);
    if (rc != MPI_SUCCESS) {
        free(m);
        return mpi_err(rc, "MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->world, &c->rank);
    MPI_Comm_size(m->world, &c->size);
    /* node-local rank: the launcher's override (simulated nodes) or MPI's shared-memory split */
    int er, en, lr, ln;
    zcomm_env_ranks(&er, &en, &lr, &ln);
    if (getenv("ZOFF_LOCAL_RANK") && getenv("ZOFF_LOCAL_SIZE")) {
        c->local_rank = lr;
        c->local_size = ln;
    } else {
        MPI_Comm node;
        rc = MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
        if (rc == MPI_SUCCESS) {
            MPI_Comm_rank(node, &c->local_rank);
            MPI_Comm_size(node, &c->local_size);
            MPI_Comm_free(&node);
        } else {
            c->local_rank = lr;
            c->local_size = ln;
        }
    }
    (void)cfg;
    c->impl = m;
    return ZOFF_OK;
}

void zcomm__mpi_destroy(zcomm *c)
{
    mpi_impl *m = c->impl;
    if (!m) return;
    /* after a timeout a request may still be pending (peers may have joined since): finalising
     * with it could block forever */
    int done = 1;
    if (m->pending != MPI_REQUEST_NULL) MPI_Test(&m->pending, &done, MPI_STATUS_IGNORE);
    if (!done)
        g_any_hung = 1;
    else
        MPI_Comm_free(&m->world);
    free(m);
    c->impl = NULL;
}

/* ---- reductions in rank order -----------------------------------------------------------------
 */
/* The core: rank r receives piece r of every rank (piece j of `send` is send[sdispl[j] ..
 * + scount[j]), all in elements) and reduces them in rank order into out[scount[rank]]. */
static zoff_status exchange_reduce(zcomm *c, const void *send, const size_t *cnt,
                                   const size_t *displ, void *out, zcomm_dtype dt, zcomm_op op,
                                   const char *opname)
{
    mpi_impl *m = c->impl;
    int n = c->size, me = c->rank;
    size_t esz = zcomm_dtype_size(dt);
    size_t mine = cnt[me];
    if ((uint64_t)mine * (uint64_t)n > INT_MAX || displ[n - 1] + cnt[n - 1] > INT_MAX)
        return zoff__err(ZOFF_EINVAL,
                         "comm/mpi: %s of %zu elements per rank exceeds MPI's int counts; split "
                         "the call",
                         opname, mine);
    int *ia = malloc(4 * (size_t)n * sizeof *ia);
    uint8_t *tmp = malloc(ZOFF_MAX((size_t)1, mine * (size_t)n * esz));
    void *acc =
        zcomm__acc_size(dt) == esz ? out : malloc(ZOFF_MAX((size_t)1, mine * zcomm__acc_size(dt)));
    zoff_status st = ZOFF_OK;
    if (!ia || !tmp || !acc) {
        st = zoff__err(-ENOMEM, "comm/mpi: out of memory for %s", opname);
        goto out;
    }
    int *sc = ia, *sd = ia + n, *rc = ia + 2 * n, *rd = ia + 3 * n;
    for (int j = 0; j < n; j++) {
        sc[j] = (int)cnt[j];
        sd[j] = (int)displ[j];
        rc[j] = (int)mine;
        rd[j] = (int)(mine * (size_t)j);
    }
    MPI_Request rq;
    int e = MPI_Ialltoallv(send, sc, sd, mpi_type(dt), tmp, rc, rd, mpi_type(dt), m->world, &rq);
    if (e != MPI_SUCCESS) {
        st = mpi_err(e, "MPI_Ialltoallv");
        goto out;
    }
    ZOFF_CHECK_GOTO(mpi_wait(c, &rq, opname), st, out);
    for (int j = 0; j < n; j++)
        zcomm__reduce_into(acc, tmp + (size_t)j * mine * esz, mine, dt, op, j == 0);
    zcomm__reduce_finish(out, acc, mine, dt, op, n);
out:
    if (acc != out) free(acc);
    free(tmp);
    free(ia);
    return st;
}

zoff_status zcomm__mpi_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                       const size_t *displs, zcomm_dtype dt, zcomm_op op)
{
    return exchange_reduce(c, send, counts, displs, recv, dt, op, "reduce-scatter");
}

zoff_status zcomm__mpi_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                  zcomm_dtype dt, zcomm_op op)
{
    size_t n = (size_t)c->size, me = (size_t)c->rank, esz = zcomm_dtype_size(dt);
    size_t *cd = malloc(2 * n * sizeof *cd);
    if (!cd) return zoff__err(-ENOMEM, "comm/mpi: out of memory");
    size_t base = count / n, extra = count % n, off = 0;
    for (size_t j = 0; j < n; j++) {
        cd[j] = base + (j < extra ? 1 : 0);
        cd[n + j] = off;
        off += cd[j];
    }
    uint8_t *piece = malloc(ZOFF_MAX((size_t)1, cd[me] * esz));
    zoff_status st = ZOFF_OK;
    if (!piece) {
        st = zoff__err(-ENOMEM, "comm/mpi: out of memory");
        goto out;
    }
    ZOFF_CHECK_GOTO(exchange_reduce(c, send, cd, cd + n, piece, dt, op, "all-reduce"), st, out);
    if (cd[me]) memcpy((uint8_t *)recv + cd[n + me] * esz, piece, cd[me] * esz);
    ZOFF_CHECK_GOTO(zcomm__mpi_all_gatherv(c, recv, recv, cd, cd + n, dt, 1), st, out);
out:
    free(piece);
    free(cd);
    return st;
}

zoff_status zcomm__mpi_all_gatherv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                   const size_t *displs, zcomm_dtype dt, int inplace)
{
    mpi_impl *m = c->impl;
    int n = c->size;
    if (displs[n - 1] + counts[n - 1] > INT_MAX)
        return zoff__err(ZOFF_EINVAL,
                         "comm/mpi: all-gather of %zu elements exceeds MPI's int "
                         "counts; split the call",
                         displs[n - 1] + counts[n - 1]);
    int *ia = malloc(2 * (size_t)n * sizeof *ia);
    if (!ia) return zoff__err(-ENOMEM, "comm/mpi: out of memory");
    for (int j = 0; j < n; j++) {
        ia[j] = (int)counts[j];
        ia[n + j] = (int)displs[j];
    }
    MPI_Request rq;
    int e = MPI_Iallgatherv(inplace ? MPI_IN_PLACE : send, inplace ? 0 : ia[c->rank], mpi_type(dt),
                            recv, ia, ia + n, mpi_type(dt), m->world, &rq);
    zoff_status st =
        e == MPI_SUCCESS ? mpi_wait(c, &rq, "all-gather") : mpi_err(e, "MPI_Iallgatherv");
    free(ia);
    return st;
}

zoff_status zcomm__mpi_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root)
{
    mpi_impl *m = c->impl;
    if (count > INT_MAX)
        return zoff__err(ZOFF_EINVAL,
                         "comm/mpi: broadcast of %zu elements exceeds MPI's int "
                         "counts",
                         count);
    MPI_Request rq;
    int e = MPI_Ibcast(buf, (int)count, mpi_type(dt), root, m->world, &rq);
    if (e != MPI_SUCCESS) return mpi_err(e, "MPI_Ibcast");
    return mpi_wait(c, &rq, "broadcast");
}

zoff_status zcomm__mpi_barrier(zcomm *c)
{
    mpi_impl *m = c->impl;
    MPI_Request rq;
    int e = MPI_Ibarrier(m->world, &rq);
    if (e != MPI_SUCCESS) return mpi_err(e, "MPI_Ibarrier");
    return mpi_wait(c, &rq, "barrier");
}

#else /* !ZOFF_HAVE_MPI */

#define UNSUP                                                                                      \
    zoff__err(ZOFF_EUNSUPPORTED, "comm: this zoff was built without MPI (configure with "          \
                                 "-DZOFF_MPI=ON and install libopenmpi-dev)")

int zcomm__mpi_built(void)
{
    return 0;
}
zoff_status zcomm__mpi_create(zcomm *c, const zcomm_config *cfg)
{
    (void)c, (void)cfg;
    return UNSUP;
}
void zcomm__mpi_destroy(zcomm *c)
{
    (void)c;
}
zoff_status zcomm__mpi_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                       const size_t *displs, zcomm_dtype dt, zcomm_op op)
{
    return UNSUP;
}
zoff_status zcomm__mpi_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                  zcomm_dtype dt, zcomm_op op)
{
    return UNSUP;
}
zoff_status zcomm__mpi_all_gatherv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                   const size_t *displs, zcomm_dtype dt, int inplace)
{
    return UNSUP;
}
zoff_status zcomm__mpi_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root)
{
    return UNSUP;
}
zoff_status zcomm__mpi_barrier(zcomm *c)
{
    return UNSUP;
}
#endif
