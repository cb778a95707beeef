/*
 * comm.h — the face of zoff's collective layer: one communicator per rank (one process per GPU),
 * reduce-scatter, all-gather (equal and per-rank counts), all-reduce, broadcast and barrier.
 *
 * Backends behind this face (comm/comm.c dispatches):
 *  - self: one rank, no library; every operation is a local copy (or nothing).
 *  - mpi (comm/mpi.c, built with ZOFF_MPI): host buffers. Carries the sim device (whose "device"
 *    memory is host memory) and every CPU-only multi-rank run. Sums are deterministic: a
 *    reduction exchanges the pieces (MPI_Ialltoallv) and each rank adds the contributions in rank
 *    order 0, 1, ..., N-1 in the element type (fp32: IEEE single adds), so every rank of every run
 *    gets the same bits whatever MPI's own algorithms are; AVG divides the sum by N.
 *  - callback (comm/cb.c): host buffers; the caller supplies the transport as one all_gather
 *    function (zoff.torch: torch.distributed under torchrun); reductions add in rank order
 *    with the MPI backend's code, so the bits are the same.
 *  - nccl (comm/nccl.c, built with ZOFF_NCCL and the CUDA backend): device buffers,
 *    ncclReduceScatter/AllGather/AllReduce/Broadcast on the stream given; per-rank counts are a
 *    group of ncclBroadcast calls. Without the library the calls return ZOFF_EUNSUPPORTED.
 *
 * Stream order: every operation takes a zdev stream. NCCL queues the collective on it. MPI (host
 * buffers) first waits for the work already queued on the stream (the copy that produced the
 * buffer), then runs the collective in the calling thread and returns when it is complete; a
 * NULL stream means "the buffers are ready now".
 *
 * Bootstrap: under mpirun / srun the MPI backend initialises MPI (or uses an MPI the program
 * already initialised) and reads rank, size and the node-local rank from MPI. Under torchrun-
 * style launchers (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the NCCL backend is created
 * from a unique id the caller obtained on rank 0 with zcomm_nccl_unique_id and broadcast by its
 * own means (zoff.torch uses torch.distributed.broadcast_object_list).
 *
 * Watchdog: MPI operations are non-blocking requests polled against `timeout_ms`; a collective
 * that does not complete in time returns -ETIMEDOUT with a message naming this rank, the
 * operation and the context the runtime set (step, phase, bucket) with zcomm_set_context.
 * NCCL operations are asynchronous on the stream; the NCCL barrier polls its stream against the
 * same timeout and aborts the communicator when it fires.
 *
 * Thread safety: one communicator is used by one thread at a time.
 */
#ifndef ZOFF_COMM_COMM_H
#define ZOFF_COMM_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "gpu/device.h"

typedef struct zcomm zcomm;

typedef enum zcomm_backend {
    ZCOMM_AUTO = 0, /* mpi when launched with several ranks and MPI is built, else self */
    ZCOMM_SELF = 1,
    ZCOMM_MPI = 2,
    ZCOMM_NCCL = 3,
    ZCOMM_CALLBACK = 4, /* host buffers over the caller's all_gather (zcomm_callbacks) */
} zcomm_backend;

typedef enum zcomm_dtype {
    ZCOMM_U8 = 0, /* bytes (gathers and broadcasts only) */
    ZCOMM_F32 = 1,
    ZCOMM_F64 = 2,
    ZCOMM_I64 = 3,
    ZCOMM_F16 = 4,  /* NCCL only for reductions */
    ZCOMM_BF16 = 5, /* NCCL only for reductions */
} zcomm_dtype;

typedef enum zcomm_op {
    ZCOMM_SUM = 0,
    ZCOMM_AVG = 1, /* sum / size */
    ZCOMM_MAX = 2,
} zcomm_op;

#define ZCOMM_UNIQUE_ID_BYTES 128 /* = NCCL_UNIQUE_ID_BYTES */

/* The transport of the callback backend, supplied by the caller (an existing engine such as
 * torch.distributed): all_gather puts every rank's send[bytes] at recv + r * bytes on every
 * rank (every rank passes the same `bytes`); returns >= 0, or negative on failure. */
typedef struct zcomm_callbacks {
    void *user;
    int rank, size, local_rank, local_size; /* local_rank < 0 / local_size < 1: rank / size */
    int (*all_gather)(void *user, const void *send, void *recv, size_t bytes);
} zcomm_callbacks;

typedef struct zcomm_config {
    zcomm_backend backend;
    uint64_t timeout_ms; /* watchdog: 0 = wait forever */
    zdev *dev;           /* the device whose streams the operations order after (may be NULL) */
    /* NCCL bootstrap from a unique id (torchrun style); ignored by the other backends */
    int rank, size, local_rank;
    unsigned char unique_id[ZCOMM_UNIQUE_ID_BYTES];
    int have_unique_id;               /* 1: create the NCCL communicator from unique_id/rank/size */
    const zcomm_callbacks *callbacks; /* ZCOMM_CALLBACK: the caller's transport (copied) */
} zcomm_config;

/* Ranks as the launcher announced them in the environment (OMPI_COMM_WORLD_*, PMI_*, SLURM_*,
 * RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE). Missing values: rank 0, size 1, local rank = rank,
 * local size = size. Returns 1 when a launcher variable was found, else 0. */
int zcomm_env_ranks(int *rank, int *size, int *local_rank, int *local_size);

/* 1 when the backend was compiled in. */
int zcomm_backend_built(zcomm_backend b);
const char *zcomm_backend_name(zcomm_backend b);

void zcomm_config_default(zcomm_config *cfg);
/* Creates this rank's communicator (collective: every rank calls it). MPI is initialised if the
 * program has not done it (and then finalised at process exit, so communicators may come and
 * go; not after a watchdog timeout, whose pending requests could block MPI_Finalize).
 * ZOFF_EUNSUPPORTED when the backend is not built. */
zoff_status zcomm_create(const zcomm_config *cfg, zcomm **out);
void zcomm_destroy(zcomm *c);

/* NCCL: a fresh unique id for rank 0 to hand to the others. ZOFF_EUNSUPPORTED without NCCL. */
zoff_status zcomm_nccl_unique_id(unsigned char id[ZCOMM_UNIQUE_ID_BYTES]);

int zcomm_rank(const zcomm *c);
int zcomm_size(const zcomm *c);
int zcomm_local_rank(const zcomm *c); /* rank among the ranks of this node */
int zcomm_local_size(const zcomm *c);
zcomm_backend zcomm_kind(const zcomm *c);
/* 1: buffers are device memory (NCCL); 0: host memory. */
int zcomm_device_buffers(const zcomm *c);

/* What the watchdog message names: the step, the phase ("reduce-scatter grads", ...) and the
 * bucket (-1: none). `phase` must stay valid until the next call. */
void zcomm_set_context(zcomm *c, int64_t step, const char *phase, int bucket);

/* recv[count] = op over ranks of send[rank * count .. + count) (send holds size * count). */
zoff_status zcomm_reduce_scatter(zcomm *c, const void *send, void *recv, size_t count,
                                 zcomm_dtype dt, zcomm_op op, zdev_stream *s);
/* Per-rank counts: send holds rank r's piece at send[displs[r] .. + counts[r]) (elements); recv
 * [counts[rank]] = op over ranks of their piece for this rank. Same sum order as
 * zcomm_reduce_scatter (MPI: rank order). NCCL: a group of ncclReduce calls, root r for piece r. */
zoff_status zcomm_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                  const size_t *displs, zcomm_dtype dt, zcomm_op op,
                                  zdev_stream *s);
/* recv[count] = op over ranks of send[count]; every rank gets the same bits. In place allowed. */
zoff_status zcomm_all_reduce(zcomm *c, const void *send, void *recv, size_t count, zcomm_dtype dt,
                             zcomm_op op, zdev_stream *s);
/* recv[size * count]: rank r's send[count] at recv + r * count. */
zoff_status zcomm_all_gather(zcomm *c, const void *send, void *recv, size_t count, zcomm_dtype dt,
                             zdev_stream *s);
/* In place, per-rank counts: rank r's piece is buf[displs[r] .. + counts[r]) (elements); every
 * rank has its own piece there and receives the others'. */
zoff_status zcomm_all_gatherv_inplace(zcomm *c, void *buf, const size_t *counts,
                                      const size_t *displs, zcomm_dtype dt, zdev_stream *s);
zoff_status zcomm_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root,
                            zdev_stream *s);
zoff_status zcomm_barrier(zcomm *c);

/* Time spent in collectives and bytes this rank sent, since creation. */
typedef struct zcomm_stats {
    uint64_t ops;
    uint64_t busy_ns;
    uint64_t bytes; /* payload bytes handed to the collectives */
} zcomm_stats;
void zcomm_get_stats(const zcomm *c, zcomm_stats *out);

size_t zcomm_dtype_size(zcomm_dtype dt);

#endif /* ZOFF_COMM_COMM_H */
