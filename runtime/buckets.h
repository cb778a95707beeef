/*
 * buckets.h — runtime-internal: the ring of device gradient buckets (ZeRO-Offload style).
 *
 * A ring of `count` device buckets of `bytes` each. zbk_push queues, on the producer's stream, a
 * device-to-device copy of a gradient into the current bucket (split across buckets when it does
 * not fit in what is left) and remembers where each piece must land on the host. A full bucket is
 * drained: the drain stream waits on the bucket's `filled` event (recorded on its producer), the
 * pieces go to their host destinations, the `landed` callbacks run in stream order after the last
 * piece of each push, and the `drained` event is recorded. Before a producer writes into a bucket
 * again it waits on that `drained` event: no host synchronisation on the push path, and a bucket
 * is never overwritten before its copy to the host finished.
 *
 * Several producer streams may push into one bucket: when the producer changes, the new one
 * waits on the old one's work (an event), so `filled` recorded on the last producer covers all.
 *
 * The drain is a D2H copy per piece, or, when the ring has a `reduce` hook (several ranks,
 * runtime/shard.c), the hook's work: it sees the whole bucket (zbk_bucket.segs says which bytes
 * belong to which pushed gradient), reduces it over the ranks and queues the copies of this
 * rank's share, the `landed` callbacks and the `drained` record itself.
 * Thread safety: one thread pushes and flushes (the trainer's); callbacks run on device threads.
 */
#ifndef ZOFF_RUNTIME_BUCKETS_H
#define ZOFF_RUNTIME_BUCKETS_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "gpu/device.h"

/* One piece of a pushed gradient inside a bucket. */
typedef struct zbk_seg {
    size_t slot_off;        /* bytes into the bucket */
    size_t bytes;           /* length of the piece */
    void *host_dst;         /* where the piece lands on the host */
    void (*landed)(void *); /* NULL, or run on the drain stream after this piece landed */
    void *landed_arg;
    void *owner;     /* the push's `arg` (every piece) */
    size_t push_off; /* bytes into the pushed gradient where this piece starts */
} zbk_seg;

typedef struct zbk_bucket {
    uint8_t *dev;          /* `bytes` of device memory */
    size_t fill;           /* bytes in use */
    zdev_stream *producer; /* stream whose queued copies fill it; meaningful when in_use */
    int in_use;            /* some piece was queued since the last drain */
    zdev_event *filled;    /* recorded on the producer when the bucket is drained */
    zdev_event *drained;   /* recorded on the drain stream after its pieces landed */
    zbk_seg *segs;
    size_t nsegs, cap_segs;
} zbk_bucket;

typedef struct zbk_ring zbk_ring;
struct zbk_ring {
    zdev *dev;
    zdev_stream *drain; /* the D2H stream */
    int count;
    size_t bytes; /* per bucket */
    zbk_bucket *b;
    int cur;
    uint64_t flushes; /* buckets drained */
    /* NULL, or the drain of a bucket (index i): called after `filled` was recorded on the
     * producer; must queue, in order, whatever moves the bucket's data, the landed callbacks of
     * its pieces and the record of b->drained. */
    zoff_status (*reduce)(void *ctx, zbk_ring *r, int i, zbk_bucket *b);
    void *reduce_ctx;
    uint64_t pushed_bytes; /* bytes pushed */
};

/* Allocates `count` device buckets of `bytes` (a multiple of 64) and their events. On failure
 * everything allocated is freed (zbk_fini is still safe). */
zoff_status zbk_init(zbk_ring *r, zdev *dev, zdev_stream *drain, int count, size_t bytes);
/* Frees buckets and events (after the drain stream finished). Safe on a zeroed ring. */
void zbk_fini(zbk_ring *r);
/* 1 when the ring has buckets. */
static inline int zbk_active(const zbk_ring *r)
{
    return r->count > 0;
}

/* Queues the copy of `bytes` (a multiple of elem_bytes) from dev_src on `producer` into the ring,
 * pieces of whole elements; host_dst receives them in order once drained; landed(arg) runs on the
 * drain stream after the last piece landed. A device error half way leaves copies queued: the
 * caller treats the runtime as broken. */
zoff_status zbk_push(zbk_ring *r, const void *dev_src, size_t bytes, size_t elem_bytes,
                     zdev_stream *producer, void *host_dst, void (*landed)(void *), void *arg);
/* Drains the current bucket if it holds anything (the last, partial one of a micro-batch). */
zoff_status zbk_flush(zbk_ring *r);

#endif /* ZOFF_RUNTIME_BUCKETS_H */
