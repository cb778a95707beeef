/*
 * cb.c — the "callback" backend of the collective layer: host buffers, the transport supplied by
 * the caller as one function, all_gather(user, send, recv, bytes) (every rank's `bytes` bytes,
 * in rank order, on every rank), which the caller implements with an existing engine — zoff.torch
 * uses torch.distributed (gloo) under torchrun, where neither MPI nor (without GPUs) NCCL can
 * bootstrap. Every operation of the face is built on it: reductions gather the whole inputs and
 * add them on each rank in rank order 0, 1, ..., N-1 with the same code as the MPI backend
 * (comm.c), so the bits equal the MPI backend's; per-rank counts gather padded pieces. That
 * moves N times the bytes of a ring reduce-scatter: a correctness vehicle for CPU runs, not a
 * fast transport. There is no watchdog: a stuck call blocks in the caller's engine, whose own
 * timeout applies; a failing call (negative return) makes the communicator unusable.
 * Owns: a copy of the caller's table and the scratch buffers of one call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "comm/backend.h"

typedef struct cb_impl {
    zcomm_callbacks cb;
} cb_impl;

zoff_status zcomm__cb_create(zcomm *c, const zcomm_config *cfg)
{
    const zcomm_callbacks *cb = cfg->callbacks;
    if (!cb || !cb->all_gather)
        return zoff__err(ZOFF_EINVAL, "comm/callback: no all_gather function given");
    if (cb->size < 1 || cb->rank < 0 || cb->rank >= cb->size)
        return zoff__err(ZOFF_EINVAL, "comm/callback: rank %d of %d", cb->rank, cb->size);
    cb_impl *m = calloc(1, sizeof *m);
    if (!m) return zoff__err(-ENOMEM, "comm/callback: out of memory");
    m->cb = *cb;
    c->impl = m;
    c->rank = cb->rank;
    c->size = cb->size;
    c->local_rank = cb->local_rank >= 0 && cb->local_rank < cb->size ? cb->local_rank : cb->rank;
    c->local_size = cb->local_size >= 1 ? cb->local_size : cb->size;
    return ZOFF_OK;
}

void zcomm__cb_destroy(zcomm *c)
{
    free(c->impl);
    c->impl = NULL;
}

/* recv[r * bytes ..) = rank r's send[bytes], through the caller's function. */
static zoff_status gather(zcomm *c, const void *send, void *recv, size_t bytes, const char *op)
{
    if (bytes == 0) return ZOFF_OK; /* every rank passes the same size: all skip */
    cb_impl *m = c->impl;
    int rc = m->cb.all_gather(m->cb.user, send, recv, bytes);
    if (rc >= 0) return ZOFF_OK;
    c->broken = 1;
    return zoff__err(-EIO,
                     "comm/callback: rank %d of %d: the caller's all_gather failed (%d) in %s at "
                     "step %lld, phase '%s', bucket %d",
                     c->rank, c->size, rc, op, (long long)c->ctx_step,
                     c->ctx_phase[0] ? c->ctx_phase : "-", c->ctx_bucket);
}

static void *scratch(size_t n, size_t esz)
{
    return malloc(ZOFF_MAX((size_t)1, n * esz));
}

zoff_status zcomm__cb_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                      const size_t *displs, zcomm_dtype dt, zcomm_op op)
{
    size_t n = (size_t)c->size, me = (size_t)c->rank, esz = zcomm_dtype_size(dt), extent = 0;
    for (size_t r = 0; r < n; r++) extent = ZOFF_MAX(extent, displs[r] + counts[r]);
    uint8_t *all = scratch(n * extent, esz);
    size_t mine = counts[me];
    void *acc = zcomm__acc_size(dt) == esz ? recv : scratch(mine, zcomm__acc_size(dt));
    zoff_status st = ZOFF_OK;
    if (!all || !acc) {
        st = zoff__err(-ENOMEM, "comm/callback: out of memory for a reduce-scatter");
        goto out;
    }
    ZOFF_CHECK_GOTO(gather(c, send, all, extent * esz, "reduce-scatter"), st, out);
    if (mine) {
        for (size_t r = 0; r < n; r++)
            zcomm__reduce_into(acc, all + (r * extent + displs[me]) * esz, mine, dt, op, r == 0);
        zcomm__reduce_finish(recv, acc, mine, dt, op, (int)n);
    }
out:
    if (acc != recv) free(acc);
    free(all);
    return st;
}

zoff_status zcomm__cb_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                 zcomm_dtype dt, zcomm_op op)
{
    size_t n = (size_t)c->size, esz = zcomm_dtype_size(dt);
    uint8_t *all = scratch(n * count, esz);
    void *acc = zcomm__acc_size(dt) == esz ? recv : scratch(count, zcomm__acc_size(dt));
    zoff_status st = ZOFF_OK;
    if (!all || !acc) {
        st = zoff__err(-ENOMEM, "comm/callback: out of memory for an all-reduce");
        goto out;
    }
    ZOFF_CHECK_GOTO(gather(c, send, all, count * esz, "all-reduce"), st, out);
    if (count) {
        for (size_t r = 0; r < n; r++)
            zcomm__reduce_into(acc, all + r * count * esz, count, dt, op, r == 0);
        zcomm__reduce_finish(recv, acc, count, dt, op, (int)n);
    }
out:
    if (acc != recv) free(acc);
    free(all);
    return st;
}

zoff_status zcomm__cb_all_gatherv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                  const size_t *displs, zcomm_dtype dt, int inplace)
{
    size_t n = (size_t)c->size, me = (size_t)c->rank, esz = zcomm_dtype_size(dt), maxc = 0;
    for (size_t r = 0; r < n; r++) maxc = ZOFF_MAX(maxc, counts[r]);
    uint8_t *mine = scratch(maxc, esz), *all = scratch(n * maxc, esz);
    zoff_status st = ZOFF_OK;
    if (!mine || !all) {
        st = zoff__err(-ENOMEM, "comm/callback: out of memory for an all-gather");
        goto out;
    }
    const uint8_t *src = inplace ? (const uint8_t *)recv + displs[me] * esz : send;
    if (counts[me]) memcpy(mine, src, counts[me] * esz);
    ZOFF_CHECK_GOTO(gather(c, mine, all, maxc * esz, "all-gather"), st, out);
    for (size_t r = 0; r < n; r++)
        if (counts[r] && !(inplace && r == me))
            memcpy((uint8_t *)recv + displs[r] * esz, all + r * maxc * esz, counts[r] * esz);
out:
    free(mine);
    free(all);
    return st;
}

zoff_status zcomm__cb_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root)
{
    size_t n = (size_t)c->size, bytes = count * zcomm_dtype_size(dt);
    uint8_t *all = scratch(n, bytes);
    if (!all) return zoff__err(-ENOMEM, "comm/callback: out of memory for a broadcast");
    zoff_status st = gather(c, buf, all, bytes, "broadcast");
    if (st == ZOFF_OK && c->rank != root && bytes) memcpy(buf, all + (size_t)root * bytes, bytes);
    free(all);
    return st;
}

zoff_status zcomm__cb_barrier(zcomm *c)
{
    uint8_t one = 1;
    uint8_t *all = scratch((size_t)c->size, 1);
    if (!all) return zoff__err(-ENOMEM, "comm/callback: out of memory for a barrier");
    zoff_status st = gather(c, &one, all, 1, "barrier");
    free(all);
    return st;
}
