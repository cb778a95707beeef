/*
 * store.h — the optimizer-state store (offload/): fp32 master weights and the two Adam moments
 * of a contiguous range of the flat parameter space, cut into partitions of partition_numel
 * elements. The first `resident_parts` partitions live in the pinned arena; the others live in
 * swap (nvme/swap.h) and pass through a fixed pool of pinned slot buffers, so host memory does not
 * grow with the model.
 *
 * Layout of one partition of n elements (resident or in a slot, and on disk as one extent whose
 * swap key is the partition index): zstate_view() of cpu_adam/adam.h for the store's optimizer
 * and state format. fp32 Adam: master[n] | exp_avg[n] | exp_avg_sq[n] (12 B/elem); q8 Adam:
 * master fp32 | exp_avg codes | exp_avg_sq codes | absmax | absmax (~6.03 B/elem). The bytes come
 * from the one table, zstate_bytes().
 *
 * Streaming passes visit a list of partitions in order: pass_next() hands out the next one ready
 * to use (a swapped one is read in, with reads of the following ones already in flight),
 * pass_release() writes it back, and a slot is never reused before its write completed.
 *
 * Owns: the resident block, the slot pool (both carved from the caller's arena), the swap store.
 * Thread safety: one thread drives a store at a time (like the swap store it wraps).
 */
#ifndef ZOFF_OFFLOAD_STORE_H
#define ZOFF_OFFLOAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "cpu_adam/adam.h"
#include "nvme/swap.h"
#include "offload/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZSTORE_ELEM_BYTES 12 /* fp32 Adam: master + exp_avg + exp_avg_sq */
/* Largest element count sized here: 12 B/elem and page round-ups stay far below 2^64. */
#define ZSTORE_MAX_NUMEL ((uint64_t)1 << 58)

/* Sizes of a store, computed without allocating anything (for zoff_plan and finalize). */
typedef struct zstore_sizes {
    size_t nparts;                /* partitions over the range */
    size_t resident_parts;        /* the first ones, resident in the arena */
    size_t swapped_parts;         /* the others */
    int slots;                    /* pool buffers (0 when nothing is swapped) */
    uint64_t resident_bytes;      /* arena bytes of the resident block (4 KiB rounded) */
    uint64_t pool_bytes;          /* arena bytes of the slot pool (slots x 4 KiB-rounded slot) */
    uint64_t swap_bytes;          /* payload bytes on swap (12 B/elem of the swapped partitions) */
    uint64_t swap_capacity_bytes; /* what the swap store preallocates (each extent 4 KiB rounded) */
} zstore_sizes;

/* Fills *out for `numel` elements. tier CPU keeps everything resident (ratio ignored); tier NVME
 * keeps floor(ratio * nparts) partitions resident. slots = min(buffer_count, swapped_parts).
 * Returns ZOFF_EINVAL for partition_numel 0, ratio outside [0, 1] or buffer_count < 1 with
 * swapped partitions; ZOFF_ENOFIT when a byte count would not fit in 64 bits. */
zoff_status zstore_compute_sizes(uint64_t numel, size_t partition_numel, zoff_tier tier,
                                 float ratio, int buffer_count, zstore_sizes *out);
/* The same for an optimizer and state format (zstore_compute_sizes: fp32 Adam). q8 needs a
 * partition_numel that is a multiple of ZSTATE_Q8_BLOCK (ZOFF_EINVAL otherwise). */
zoff_status zstore_compute_sizes_fmt(uint64_t numel, size_t partition_numel, zoff_tier tier,
                                     float ratio, int buffer_count, zopt_kind optim, zstate_fmt fmt,
                                     zstore_sizes *out);

typedef struct zstore zstore;

/* Called after each completed swap I/O (tracing): is_write, partition index, bytes, the time it
 * was issued and the time its completion was collected (zoff__now_ns clock). */
typedef void (*zstore_io_hook)(void *user, int is_write, size_t part, size_t bytes,
                               uint64_t issue_ns, uint64_t done_ns);

typedef struct zstore_config {
    uint64_t numel;         /* elements of the range this store holds */
    size_t partition_numel; /* elements per partition (the last one may be shorter) */
    zoff_tier tier;
    float ratio;              /* tier NVME: fraction of partitions kept resident */
    int buffer_count;         /* pool slots at most (>= 1 when something is swapped) */
    zarena *arena;            /* resident block and slots come from it (not owned) */
    const zswap_config *swap; /* used when some partitions are swapped (capacity is set here) */
    zstore_io_hook io_hook;   /* optional */
    void *io_user;
    zopt_kind optim;  /* the moments kept (0: Adam) */
    zstate_fmt state; /* their format (0: fp32) */
} zstore_config;

/* Allocates the resident block (zeroed) and the slot pool from the arena, creates the swap store
 * and reserves one extent per swapped partition (a full disk is reported here). The swapped
 * partitions' contents are undefined until written by a pass (see ZSTORE_WRITE without READ).
 * On failure nothing is left allocated. */
zoff_status zstore_create(const zstore_config *cfg, zstore **out);
/* Waits for I/O in flight, frees the buffers back to the arena and removes the swap files.
 * Accepts NULL. */
void zstore_destroy(zstore *s);

void zstore_get_sizes(const zstore *s, zstore_sizes *out);
/* The swap store underneath (NULL when nothing is swapped): for tests (fault injection,
 * zswap_locate) and tools. Owned by the store. */
zswap_store *zstore_swap(zstore *s);
/* First element (relative to the range) and length of partition k. */
uint64_t zstore_part_begin(const zstore *s, size_t k);
size_t zstore_part_numel(const zstore *s, size_t k);
int zstore_part_resident(const zstore *s, size_t k);

/* One partition handed out by a pass: pointers valid until pass_release. */
typedef struct zstore_part {
    size_t index;
    uint64_t begin; /* first element, relative to the range */
    size_t numel;
    int resident;
    float *master, *exp_avg, *exp_avg_sq; /* numel each; exp_avg* NULL unless fp32 state */
    zadam_tensor view;                    /* every state pointer of the partition (zstate_view) */
} zstore_part;

enum {
    ZSTORE_READ = 1u << 0,  /* swapped partitions are read in before they are handed out */
    ZSTORE_WRITE = 1u << 1, /* swapped partitions are written back at pass_release */
};

/* Starts a pass over `n` partitions in the order given (`order` NULL: all, in index order; the
 * list is copied). Only one pass at a time. */
zoff_status zstore_pass_begin(zstore *s, const size_t *order, size_t n, unsigned flags);
/* Hands out the next partition of the pass (waiting for its read) and keeps up to
 * slots - 2 further reads in flight. ZOFF_ESTATE if the previous one was not released or the
 * pass is over. A failed or corrupt read returns its error (ZOFF_ECORRUPT names the key). */
zoff_status zstore_pass_next(zstore *s, zstore_part *out);
/* Ends the use of the partition handed out last: with ZSTORE_WRITE a swapped one is written back
 * asynchronously (its slot is reused only after the write completed). */
zoff_status zstore_pass_release(zstore *s);
/* Waits for every I/O of the pass and ends it. Call it also after an error (it then keeps the
 * first error, issues nothing new and returns it). */
zoff_status zstore_pass_end(zstore *s);

typedef struct zstore_stats {
    uint64_t read_bytes, write_bytes; /* swap payload since create */
    uint64_t read_ns, write_ns;       /* time with reads / writes in flight (swap store) */
    uint64_t wait_ns;                 /* time passes blocked on swap I/O */
    int odirect;                      /* 1: swap files use O_DIRECT */
    int aio_fallback;                 /* 1: io_uring refused, thread pool in use */
    uint64_t nvme_bytes;              /* swap capacity preallocated */
} zstore_stats;
void zstore_get_stats(const zstore *s, zstore_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_OFFLOAD_STORE_H */
