/*
 * backend.h — comm/-internal: the communicator struct shared by the dispatcher (comm.c) and the
 * backends (mpi.c, nccl.c), and the backend entry points. Nothing outside comm/ includes it.
 */
#ifndef ZOFF_COMM_BACKEND_H
#define ZOFF_COMM_BACKEND_H

#include "comm/comm.h"

struct zcomm {
    zcomm_backend kind;
    int rank, size, local_rank, local_size;
    uint64_t timeout_ms;
    zdev *dev;
    /* watchdog context */
    int64_t ctx_step;
    const char *ctx_phase;
    int ctx_bucket;
    int broken; /* a collective timed out: the communicator is unusable */
    zcomm_stats stats;
    void *impl; /* backend state */
};

/* Makes the watchdog's message: "rank R of N stuck in <op> for T ms at step S, phase P, bucket B"
 * plus `who` (the backend's finding about the missing ranks, may be NULL). Returns -ETIMEDOUT. */
zoff_status zcomm__timeout(zcomm *c, const char *op, uint64_t waited_ms, const char *who);

/* acc[i] (op)= x[i] over n elements of dt; `first`: acc = x. 16-bit types accumulate in fp32
 * (acc is float then, zcomm__acc_size bytes per element). */
void zcomm__reduce_into(void *acc, const void *x, size_t n, zcomm_dtype dt, zcomm_op op, int first);
/* out[n] = acc[n] finished (AVG: / size; 16-bit: rounded from the fp32 accumulator). */
void zcomm__reduce_finish(void *out, void *acc, size_t n, zcomm_dtype dt, zcomm_op op, int size);
size_t zcomm__acc_size(zcomm_dtype dt);

/* Waits for the work queued on `s` (host-buffer backends). */
zoff_status zcomm__stream_ready(zcomm *c, zdev_stream *s);

/* mpi.c (stubs returning ZOFF_EUNSUPPORTED without ZOFF_HAVE_MPI) */
int zcomm__mpi_built(void);
zoff_status zcomm__mpi_create(zcomm *c, const zcomm_config *cfg);
void zcomm__mpi_destroy(zcomm *c);
zoff_status zcomm__mpi_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                       const size_t *displs, zcomm_dtype dt, zcomm_op op);
zoff_status zcomm__mpi_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                  zcomm_dtype dt, zcomm_op op);
zoff_status zcomm__mpi_all_gatherv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                   const size_t *displs, zcomm_dtype dt, int inplace);
zoff_status zcomm__mpi_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root);
zoff_status zcomm__mpi_barrier(zcomm *c);

/* cb.c: the transport is the caller's all_gather (zcomm_config.callbacks) */
zoff_status zcomm__cb_create(zcomm *c, const zcomm_config *cfg);
void zcomm__cb_destroy(zcomm *c);
zoff_status zcomm__cb_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                      const size_t *displs, zcomm_dtype dt, zcomm_op op);
zoff_status zcomm__cb_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                 zcomm_dtype dt, zcomm_op op);
zoff_status zcomm__cb_all_gatherv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                  const size_t *displs, zcomm_dtype dt, int inplace);
zoff_status zcomm__cb_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root);
zoff_status zcomm__cb_barrier(zcomm *c);

/* nccl.c (stubs returning ZOFF_EUNSUPPORTED without ZOFF_HAVE_NCCL) */
int zcomm__nccl_built(void);
zoff_status zcomm__nccl_unique_id(unsigned char id[ZCOMM_UNIQUE_ID_BYTES]);
zoff_status zcomm__nccl_create(zcomm *c, const zcomm_config *cfg);
void zcomm__nccl_destroy(zcomm *c);
zoff_status zcomm__nccl_reduce_scatter(zcomm *c, const void *send, void *recv, size_t count,
                                       zcomm_dtype dt, zcomm_op op, zdev_stream *s);
zoff_status zcomm__nccl_reduce_scatterv(zcomm *c, const void *send, void *recv,
                                        const size_t *counts, const size_t *displs, zcomm_dtype dt,
                                        zcomm_op op, zdev_stream *s);
zoff_status zcomm__nccl_all_reduce(zcomm *c, const void *send, void *recv, size_t count,
                                   zcomm_dtype dt, zcomm_op op, zdev_stream *s);
zoff_status zcomm__nccl_all_gather(zcomm *c, const void *send, void *recv, size_t count,
                                   zcomm_dtype dt, zdev_stream *s);
zoff_status zcomm__nccl_all_gatherv_inplace(zcomm *c, void *buf, const size_t *counts,
                                            const size_t *displs, zcomm_dtype dt, zdev_stream *s);
zoff_status zcomm__nccl_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root,
                                  zdev_stream *s);
zoff_status zcomm__nccl_barrier(zcomm *c);

#endif /* ZOFF_COMM_BACKEND_H */
