/*
 * buckets.c — the ring of device gradient buckets (runtime/buckets.h): pushes queued on the
 * producer's stream, drains on the D2H stream, event handshakes in both directions.
 * Owns: the bucket device memory, their filled/drained events and piece lists.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/buckets.h"

#define ZBK_ALIGN 64u /* start of each piece in a bucket */

zoff_status zbk_init(zbk_ring *r, zdev *dev, zdev_stream *drain, int count, size_t bytes)
{
    zoff_status st = ZOFF_OK;
    memset(r, 0, sizeof *r);
    if (count < 2 || bytes < ZBK_ALIGN)
        return zoff__err(ZOFF_EINVAL, "buckets: need >= 2 buckets of >= %u bytes (%d x %zu)",
                         ZBK_ALIGN, count, bytes);
    r->b = calloc((size_t)count, sizeof *r->b);
    if (!r->b) return zoff__err(-ENOMEM, "buckets: out of memory");
    r->dev = dev;
    r->drain = drain;
    r->count = count;
    r->bytes = bytes;
    for (int i = 0; i < count; i++) {
        zbk_bucket *b = &r->b[i];
        void *p = NULL;
        ZOFF_CHECK_GOTO(zdev_malloc(dev, bytes, &p), st, fail);
        b->dev = p;
        ZOFF_CHECK_GOTO(zdev_event_create(dev, &b->filled), st, fail);
        ZOFF_CHECK_GOTO(zdev_event_create(dev, &b->drained), st, fail);
        b->cap_segs = 16;
        b->segs = calloc(b->cap_segs, sizeof *b->segs);
        if (!b->segs) {
            st = zoff__err(-ENOMEM, "buckets: out of memory");
            goto fail;
        }
    }
    return ZOFF_OK;
fail:
    zbk_fini(r);
    return st;
}

void zbk_fini(zbk_ring *r)
{
    if (!r->b) {
        memset(r, 0, sizeof *r);
        return;
    }
    if (r->drain) (void)zdev_stream_sync(r->dev, r->drain);
    for (int i = 0; i < r->count; i++) {
        zbk_bucket *b = &r->b[i];
        if (b->dev) zdev_free(r->dev, b->dev);
        if (b->filled) zdev_event_destroy(r->dev, b->filled);
        if (b->drained) zdev_event_destroy(r->dev, b->drained);
        free(b->segs);
    }
    free(r->b);
    memset(r, 0, sizeof *r);
}

/* Sends bucket b to the host: drain stream waits on its producer, one D2H per piece, callbacks
 * after the pieces that end a push, then `drained` for the next producer to wait on. */
static zoff_status drain_bucket(zbk_ring *r, zbk_bucket *b)
{
    if (!b->in_use) return ZOFF_OK;
    ZOFF_CHECK(zdev_event_record(r->dev, b->filled, b->producer));
    if (r->reduce) {
        ZOFF_CHECK(r->reduce(r->reduce_ctx, r, (int)(b - r->b), b));
    } else {
        ZOFF_CHECK(zdev_stream_wait_event(r->dev, r->drain, b->filled));
        for (size_t i = 0; i < b->nsegs; i++) {
            const zbk_seg *s = &b->segs[i];
            ZOFF_CHECK(
                zdev_memcpy_d2h(r->dev, s->host_dst, b->dev + s->slot_off, s->bytes, r->drain));
            if (s->landed) ZOFF_CHECK(zdev_host_fn(r->dev, r->drain, s->landed, s->landed_arg));
        }
        ZOFF_CHECK(zdev_event_record(r->dev, b->drained, r->drain));
    }
    b->fill = 0;
    b->nsegs = 0;
    b->in_use = 0;
    b->producer = NULL;
    r->flushes++;
    r->cur = (r->cur + 1) % r->count;
    return ZOFF_OK;
}

zoff_status zbk_flush(zbk_ring *r)
{
    if (!zbk_active(r)) return ZOFF_OK;
    return drain_bucket(r, &r->b[r->cur]);
}

/* Makes `producer` the stream that fills b: waits for b's last drain (first piece) or for the
 * previous producer's copies (producer changed). */
static zoff_status claim(zbk_ring *r, zbk_bucket *b, zdev_stream *producer)
{
    if (!b->in_use) {
        ZOFF_CHECK(zdev_stream_wait_event(r->dev, producer, b->drained));
        b->producer = producer;
        b->in_use = 1;
    } else if (b->producer != producer) {
        ZOFF_CHECK(zdev_event_record(r->dev, b->filled, b->producer));
        ZOFF_CHECK(zdev_stream_wait_event(r->dev, producer, b->filled));
        b->producer = producer;
    }
    return ZOFF_OK;
}

zoff_status zbk_push(zbk_ring *r, const void *dev_src, size_t bytes, size_t elem_bytes,
                     zdev_stream *producer, void *host_dst, void (*landed)(void *), void *arg)
{
    if (!zbk_active(r)) return zoff__err(ZOFF_EINTERNAL, "buckets: push without buckets");
    if (elem_bytes == 0 || bytes % elem_bytes || r->bytes < elem_bytes)
        return zoff__err(ZOFF_EINTERNAL, "buckets: %zu bytes of %zu-byte elements", bytes,
                         elem_bytes);
    /* every bucket receives at most one piece of this push: reserve room first, so that nothing
     * is queued when memory runs out */
    for (int i = 0; i < r->count; i++) {
        zbk_bucket *b = &r->b[i];
        if (b->nsegs < b->cap_segs) continue;
        size_t cap = b->cap_segs * 2;
        zbk_seg *ns = realloc(b->segs, cap * sizeof *ns);
        if (!ns) return zoff__err(-ENOMEM, "buckets: out of memory for pieces");
        b->segs = ns;
        b->cap_segs = cap;
    }
    size_t done = 0;
    while (done < bytes) {
        zbk_bucket *b = &r->b[r->cur];
        size_t start = ZOFF_ALIGN_UP(b->fill, (size_t)ZBK_ALIGN);
        size_t room = start < r->bytes ? (r->bytes - start) / elem_bytes * elem_bytes : 0;
        if (room == 0) {
            ZOFF_CHECK(drain_bucket(r, b));
            continue;
        }
        size_t n = ZOFF_MIN(room, bytes - done);
        ZOFF_CHECK(claim(r, b, producer));
        ZOFF_CHECK(
            zdev_memcpy_d2d(r->dev, b->dev + start, (const uint8_t *)dev_src + done, n, producer));
        int last = done + n == bytes;
        b->segs[b->nsegs++] = (zbk_seg){.slot_off = start,
                                        .bytes = n,
                                        .host_dst = (uint8_t *)host_dst + done,
                                        .landed = last ? landed : NULL,
                                        .landed_arg = last ? arg : NULL,
                                        .owner = arg,
                                        .push_off = done};
        b->fill = start + n;
        done += n;
        if (ZOFF_ALIGN_UP(b->fill, (size_t)ZBK_ALIGN) + elem_bytes > r->bytes)
            ZOFF_CHECK(drain_bucket(r, b));
    }
    r->pushed_bytes += bytes;
    return ZOFF_OK;
}
