/*
 * nccl.c — the NCCL backend of the collective layer (device buffers, CUDA builds): communicator
 * from a unique id (handed in by the caller, or broadcast over MPI under mpirun), the collectives
 * queued on the caller's CUDA stream (a zdev stream of the CUDA backend is a cudaStream_t),
 * per-rank-count gathers as a group of ncclBroadcast calls, and a barrier that polls its stream
 * against the watchdog timeout and aborts the communicator when it fires.
 *
 * Without ZOFF_HAVE_NCCL this file only reports ZOFF_EUNSUPPORTED. It compiles and links here;
 * it has never run (no GPU on the development machines).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "comm/backend.h"

#ifdef ZOFF_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

typedef struct nccl_impl {
    ncclComm_t comm;
    cudaStream_t own; /* barrier stream */
    float *one;       /* barrier scratch: one float of device memory */
} nccl_impl;

int zcomm__nccl_built(void)
{
    return 1;
}

static zoff_status nccl_err(ncclResult_t r, const char *what)
{
    return zoff__err(ZOFF_EDEVICE, "comm/nccl: %s failed: %s", what, ncclGetErrorString(r));
}

#define NCCL_TRY(call)                                                                             \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess) return nccl_err(r_, #call);                                         \
    } while (0)

static ncclDataType_t nccl_type(zcomm_dtype dt)
{
    switch (dt) {
    case ZCOMM_U8:
        return ncclUint8;
    case ZCOMM_F32:
        return ncclFloat32;
    case ZCOMM_F64:
        return ncclFloat64;
    case ZCOMM_I64:
        return ncclInt64;
    case ZCOMM_F16:
        return ncclFloat16;
    case ZCOMM_BF16:
        return ncclBfloat16;
    }
    return ncclUint8;
}

static ncclRedOp_t nccl_op(zcomm_op op)
{
    return op == ZCOMM_AVG ? ncclAvg : op == ZCOMM_MAX ? ncclMax : ncclSum;
}

static cudaStream_t cs(zdev_stream *s)
{
    return (cudaStream_t)(void *)s;
}

zoff_status zcomm__nccl_unique_id(unsigned char id[ZCOMM_UNIQUE_ID_BYTES])
{
    ncclUniqueId u;
    NCCL_TRY(ncclGetUniqueId(&u));
    memcpy(id, u.internal, ZCOMM_UNIQUE_ID_BYTES);
    return ZOFF_OK;
}

zoff_status zcomm__nccl_create(zcomm *c, const zcomm_config *cfg)
{
    ncclUniqueId u;
    int rank, size, local_rank, local_size;
    if (cfg->have_unique_id) {
        memcpy(u.internal, cfg->unique_id, ZCOMM_UNIQUE_ID_BYTES);
        rank = cfg->rank;
        size = cfg->size;
        int er, en, lr, ln;
        zcomm_env_ranks(&er, &en, &lr, &ln);
        local_rank = cfg->local_rank;
        local_size = ln;
    } else {
        /* mpirun / srun: rank 0's id goes to the others over MPI */
        zcomm_config mc;
        zcomm_config_default(&mc);
        mc.backend = ZCOMM_MPI;
        mc.timeout_ms = cfg->timeout_ms;
        zcomm *boot = NULL;
        ZOFF_CHECK(zcomm_create(&mc, &boot));
        zoff_status st = ZOFF_OK;
        if (boot->rank == 0) {
            ncclResult_t r = ncclGetUniqueId(&u);
            if (r != ncclSuccess) st = nccl_err(r, "ncclGetUniqueId");
        }
        if (st == ZOFF_OK)
            st = zcomm_broadcast(boot, u.internal, ZCOMM_UNIQUE_ID_BYTES, ZCOMM_U8, 0, NULL);
        rank = boot->rank;
        size = boot->size;
        local_rank = boot->local_rank;
        local_size = boot->local_size;
        zcomm_destroy(boot);
        ZOFF_CHECK(st);
    }
    if (size < 1 || rank < 0 || rank >= size)
        return zoff__err(ZOFF_EINVAL, "comm/nccl: rank %d of %d is not a valid rank", rank, size);
    nccl_impl *m = calloc(1, sizeof *m);
    if (!m) return zoff__err(-ENOMEM, "comm/nccl: out of memory");
    ncclResult_t r = ncclCommInitRank(&m->comm, size, u, rank);
    if (r != ncclSuccess) {
        free(m);
        return nccl_err(r, "ncclCommInitRank");
    }
    if (cudaStreamCreateWithFlags(&m->own, cudaStreamNonBlocking) != cudaSuccess ||
        cudaMalloc((void **)&m->one, sizeof(float)) != cudaSuccess) {
        (void)cudaGetLastError();
        if (m->own) cudaStreamDestroy(m->own);
        ncclCommDestroy(m->comm);
        free(m);
        return zoff__err(ZOFF_EDEVICE, "comm/nccl: barrier stream or scratch allocation failed");
    }
    c->rank = rank;
    c->size = size;
    c->local_rank = local_rank;
    c->local_size = local_size;
    c->impl = m;
    return ZOFF_OK;
}

void zcomm__nccl_destroy(zcomm *c)
{
    nccl_impl *m = c->impl;
    if (!m) return;
    if (c->broken)
        ncclCommAbort(m->comm);
    else
        ncclCommDestroy(m->comm);
    cudaFree(m->one);
    cudaStreamDestroy(m->own);
    free(m);
    c->impl = NULL;
}

zoff_status zcomm__nccl_reduce_scatter(zcomm *c, const void *send, void *recv, size_t count,
                                       zcomm_dtype dt, zcomm_op op, zdev_stream *s)
{
    nccl_impl *m = c->impl;
    NCCL_TRY(ncclReduceScatter(send, recv, count, nccl_type(dt), nccl_op(op), m->comm, cs(s)));
    return ZOFF_OK;
}

zoff_status zcomm__nccl_reduce_scatterv(zcomm *c, const void *send, void *recv,
                                        const size_t *counts, const size_t *displs, zcomm_dtype dt,
                                        zcomm_op op, zdev_stream *s)
{
    nccl_impl *m = c->impl;
    size_t esz = zcomm_dtype_size(dt);
    NCCL_TRY(ncclGroupStart());
    for (int r = 0; r < c->size; r++) { /* piece r reduced onto its owner r */
        if (!counts[r]) continue;
        const uint8_t *p = (const uint8_t *)send + displs[r] * esz;
        ncclResult_t e =
            ncclReduce(p, recv, counts[r], nccl_type(dt), nccl_op(op), r, m->comm, cs(s));
        if (e != ncclSuccess) {
            (void)ncclGroupEnd();
            return nccl_err(e, "ncclReduce");
        }
    }
    NCCL_TRY(ncclGroupEnd());
    return ZOFF_OK;
}

zoff_status zcomm__nccl_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                   zcomm_dtype dt, zcomm_op op, zdev_stream *s)
{
    nccl_impl *m = c->impl;
    NCCL_TRY(ncclAllReduce(send, recv, count, nccl_type(dt), nccl_op(op), m->comm, cs(s)));
    return ZOFF_OK;
}

zoff_status zcomm__nccl_all_gather(zcomm *c, const void *send, void *recv, size_t count,
                                   zcomm_dtype dt, zdev_stream *s)
{
    nccl_impl *m = c->impl;
    NCCL_TRY(ncclAllGather(send, recv, count, nccl_type(dt), m->comm, cs(s)));
    return ZOFF_OK;
}

zoff_status zcomm__nccl_all_gatherv_inplace(zcomm *c, void *buf, const size_t *counts,
                                            const size_t *displs, zcomm_dtype dt, zdev_stream *s)
{
    nccl_impl *m = c->impl;
    size_t esz = zcomm_dtype_size(dt);
    NCCL_TRY(ncclGroupStart());
    for (int r = 0; r < c->size; r++) {
        if (!counts[r]) continue;
        uint8_t *p = (uint8_t *)buf + displs[r] * esz;
        ncclResult_t e = ncclBroadcast(p, p, counts[r], nccl_type(dt), r, m->comm, cs(s));
        if (e != ncclSuccess) {
            (void)ncclGroupEnd();
            return nccl_err(e, "ncclBroadcast");
        }
    }
    NCCL_TRY(ncclGroupEnd());
    return ZOFF_OK;
}

zoff_status zcomm__nccl_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root,
                                  zdev_stream *s)
{
    nccl_impl *m = c->impl;
    NCCL_TRY(ncclBroadcast(buf, buf, count, nccl_type(dt), root, m->comm, cs(s)));
    return ZOFF_OK;
}

zoff_status zcomm__nccl_barrier(zcomm *c)
{
    nccl_impl *m = c->impl;
    NCCL_TRY(ncclAllReduce(m->one, m->one, 1, ncclFloat32, ncclSum, m->comm, m->own));
    uint64_t t0 = zoff__now_ns();
    for (;;) {
        cudaError_t e = cudaStreamQuery(m->own);
        if (e == cudaSuccess) return ZOFF_OK;
        if (e != cudaErrorNotReady) {
            (void)cudaGetLastError();
            return zoff__err(ZOFF_EDEVICE, "comm/nccl: barrier: %s", cudaGetErrorString(e));
        }
        ncclResult_t ae = ncclSuccess;
        ncclCommGetAsyncError(m->comm, &ae);
        if (ae != ncclSuccess && ae != ncclInProgress) return nccl_err(ae, "barrier (async error)");
        uint64_t waited_ms = (zoff__now_ns() - t0) / 1000000u;
        if (c->timeout_ms && waited_ms >= c->timeout_ms)
            return zcomm__timeout(c, "barrier", waited_ms, NULL);
        zoff__sleep_ns(100000);
    }
}

#else /* !ZOFF_HAVE_NCCL */

#define UNSUP                                                                                      \
    zoff__err(ZOFF_EUNSUPPORTED, "comm: this zoff was built without NCCL (configure the CUDA "     \
                                 "build with -DZOFF_NCCL=ON)")

int zcomm__nccl_built(void)
{
    return 0;
}
zoff_status zcomm__nccl_unique_id(unsigned char id[ZCOMM_UNIQUE_ID_BYTES])
{
    (void)id;
    return UNSUP;
}
zoff_status zcomm__nccl_create(zcomm *c, const zcomm_config *cfg)
{
    return UNSUP;
}
void zcomm__nccl_destroy(zcomm *c)
{
    (void)c;
}
zoff_status zcomm__nccl_reduce_scatter(zcomm *c, const void *send, void *recv, size_t count,
                                       zcomm_dtype dt, zcomm_op op, zdev_stream *s)
{
    return UNSUP;
}
zoff_status zcomm__nccl_reduce_scatterv(zcomm *c, const void *send, void *recv,
                                        const size_t *counts, const size_t *displs, zcomm_dtype dt,
                                        zcomm_op op, zdev_stream *s)
{
    return UNSUP;
}
zoff_status zcomm__nccl_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                   zcomm_dtype dt, zcomm_op op, zdev_stream *s)
{
    return UNSUP;
}
zoff_status zcomm__nccl_all_gather(zcomm *c, const void *send, void *recv, size_t count,
                                   zcomm_dtype dt, zdev_stream *s)
{
    return UNSUP;
}
zoff_status zcomm__nccl_all_gatherv_inplace(zcomm *c, void *buf, const size_t *counts,
                                            const size_t *displs, zcomm_dtype dt, zdev_stream *s)
{
    return UNSUP;
}
zoff_status zcomm__nccl_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root,
                                  zdev_stream *s)
{
    return UNSUP;
}
zoff_status zcomm__nccl_barrier(zcomm *c)
{
    return UNSUP;
}
#endif
