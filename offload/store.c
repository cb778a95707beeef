/*
 * store.c — the optimizer-state store (see store.h): resident partitions in one arena block,
 * swapped partitions streamed through a ring of pinned slots with read-ahead and asynchronous
 * write-back. Owns the slot ring state machine and the swap store of the run.
 *
 * Slot discipline of a pass: the j-th swapped partition of the pass uses slot j % slots. Before a
 * read (or, without ZSTORE_READ, a hand-out) into a slot, the slot's previous request (the
 * write-back of partition j - slots) is waited for, so a buffer is never overwritten while its
 * write is in flight. pass_next(j) keeps reads up to j + slots - 2 in flight: with 3 slots that
 * is "read i+1 while updating i and writing back i-1".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload/store.h"

typedef struct zstore_slot {
    void *buf;      /* slot_bytes of arena memory */
    zswap_req *req; /* read or write in flight on this slot, or NULL */
    int req_write;  /* 1: req is a write */
    size_t part;    /* partition the request / contents belong to */
    uint64_t issue_ns;
} zstore_slot;

struct zstore {
    zstore_config cfg;
    zstore_sizes sz;
    zarena *arena;
    char *resident;     /* resident block: partitions back to back, part_stride bytes apart */
    size_t part_stride; /* zstate_bytes of a full partition */
    size_t slot_bytes;  /* 4 KiB-rounded bytes of one slot */
    zstore_slot *slots;
    zswap_store *swap;
    /* pass state */
    int in_pass;
    unsigned flags;
    size_t *order;   /* nparts entries */
    size_t *seq;     /* for each pass position: its swapped sequence number, or SIZE_MAX */
    size_t *swpos;   /* for each swapped sequence number: its pass position */
    size_t n, pos;   /* partitions in the pass, next position to hand out */
    size_t nswapped; /* swapped partitions in the pass */
    size_t issued;   /* swapped sequence numbers assigned to slots so far */
    int holding;     /* a partition is handed out */
    zoff_status pass_err;
    uint64_t wait_ns;
};

static uint64_t round4k(uint64_t x)
{
    return ZOFF_ALIGN_UP(x, 4096u);
}

zoff_status zstore_compute_sizes(uint64_t numel, size_t partition_numel, zoff_tier tier,
                                 float ratio, int buffer_count, zstore_sizes *out)
{
    return zstore_compute_sizes_fmt(numel, partition_numel, tier, ratio, buffer_count, ZOPT_ADAM,
                                    ZSTATE_FP32, out);
}

/* State bytes of elements [0, m) of the range: whole partitions plus the short one. */
static uint64_t range_bytes(uint64_t m, size_t pn, zopt_kind k, zstate_fmt f)
{
    const uint64_t full = m / pn, rest = m % pn;
    return full * zstate_bytes(k, f, pn) + (rest ? zstate_bytes(k, f, (size_t)rest) : 0);
}

zoff_status zstore_compute_sizes_fmt(uint64_t numel, size_t partition_numel, zoff_tier tier,
                                     float ratio, int buffer_count, zopt_kind optim, zstate_fmt fmt,
                                     zstore_sizes *out)
{
    if (!out) return zoff__err(ZOFF_EINVAL, "zstore_compute_sizes: out is NULL");
    if (partition_numel == 0)
        return zoff__err(ZOFF_EINVAL, "optimizer-state partition_numel must be > 0");
    if (fmt == ZSTATE_Q8 && partition_numel % ZSTATE_Q8_BLOCK != 0)
        return zoff__err(ZOFF_EINVAL,
                         "q8 optimizer state: partition_numel %zu is not a multiple of the q8 "
                         "block (%d values)",
                         partition_numel, ZSTATE_Q8_BLOCK);
    if (!(ratio >= 0.0f && ratio <= 1.0f))
        return zoff__err(ZOFF_EINVAL, "offload ratio %g is outside [0, 1]", (double)ratio);
    /* 12 B/elem state and one 4 KiB round-up per partition stay below 2^63 from here on */
    if (numel > ZSTORE_MAX_NUMEL || partition_numel > ZSTORE_MAX_NUMEL)
        return zoff__err(ZOFF_ENOFIT,
                         "%llu elements (partitions of %zu) need more than 2^63 bytes of "
                         "optimizer state: no machine holds that",
                         (unsigned long long)numel, partition_numel);
    zstore_sizes s = {0};
    s.nparts = (size_t)((numel + partition_numel - 1) / partition_numel);
    if (tier == ZOFF_TIER_CPU)
        s.resident_parts = s.nparts;
    else
        s.resident_parts = (size_t)((double)ratio * (double)s.nparts);
    if (s.resident_parts > s.nparts) s.resident_parts = s.nparts;
    s.swapped_parts = s.nparts - s.resident_parts;
    uint64_t resident_numel = ZOFF_MIN(numel, (uint64_t)s.resident_parts * partition_numel);
    const uint64_t resident_state = range_bytes(resident_numel, partition_numel, optim, fmt);
    s.resident_bytes = resident_numel ? round4k(resident_state) : 0;
    if (s.swapped_parts) {
        if (buffer_count < 1)
            return zoff__err(ZOFF_EINVAL,
                             "offload_optimizer.buffer_count %d: at least 1 swap buffer is needed",
                             buffer_count);
        s.slots = (int)ZOFF_MIN((size_t)buffer_count, s.swapped_parts);
        uint64_t slot = round4k(zstate_bytes(optim, fmt, partition_numel));
        if (__builtin_mul_overflow((uint64_t)s.slots, slot, &s.pool_bytes))
            return zoff__err(ZOFF_ENOFIT,
                             "%d swap buffers of %zu elements need more than 2^64 bytes", s.slots,
                             partition_numel);
        s.swap_bytes = range_bytes(numel, partition_numel, optim, fmt) - resident_state;
        uint64_t last_numel = numel - (uint64_t)(s.nparts - 1) * partition_numel;
        s.swap_capacity_bytes = (uint64_t)(s.swapped_parts - 1) * slot +
                                round4k(zstate_bytes(optim, fmt, (size_t)last_numel));
    }
    *out = s;
    return ZOFF_OK;
}

uint64_t zstore_part_begin(const zstore *s, size_t k)
{
    return (uint64_t)k * s->cfg.partition_numel;
}

size_t zstore_part_numel(const zstore *s, size_t k)
{
    uint64_t b = zstore_part_begin(s, k);
    return (size_t)ZOFF_MIN((uint64_t)s->cfg.partition_numel, s->cfg.numel - b);
}

int zstore_part_resident(const zstore *s, size_t k)
{
    return k < s->sz.resident_parts;
}

void zstore_get_sizes(const zstore *s, zstore_sizes *out)
{
    *out = s->sz;
}

zswap_store *zstore_swap(zstore *s)
{
    return s->swap;
}

static size_t part_bytes(const zstore *s, size_t k)
{
    return zstate_bytes(s->cfg.optim, s->cfg.state, zstore_part_numel(s, k));
}

zoff_status zstore_create(const zstore_config *cfg, zstore **out)
{
    zoff_status st = ZOFF_OK;
    if (!cfg || !out || !cfg->arena) return zoff__err(ZOFF_EINVAL, "zstore_create: bad arguments");
    zstore *s = calloc(1, sizeof *s);
    if (!s) return zoff__err(-ENOMEM, "zstore_create: out of memory");
    s->cfg = *cfg;
    s->arena = cfg->arena;
    ZOFF_CHECK_GOTO(zstore_compute_sizes_fmt(cfg->numel, cfg->partition_numel, cfg->tier,
                                             cfg->ratio, cfg->buffer_count, cfg->optim, cfg->state,
                                             &s->sz),
                    st, fail);
    s->part_stride = zstate_bytes(cfg->optim, cfg->state, cfg->partition_numel);
    s->order = calloc(s->sz.nparts ? s->sz.nparts : 1, sizeof *s->order);
    s->seq = calloc(s->sz.nparts ? s->sz.nparts : 1, sizeof *s->seq);
    s->swpos = calloc(s->sz.nparts ? s->sz.nparts : 1, sizeof *s->swpos);
    if (!s->order || !s->seq || !s->swpos) {
        st = zoff__err(-ENOMEM, "zstore_create: out of memory for %zu partitions", s->sz.nparts);
        goto fail;
    }
    if (s->sz.resident_bytes) {
        void *p = NULL;
        ZOFF_CHECK_GOTO(zarena_alloc(s->arena, s->sz.resident_bytes, "state.resident", &p), st,
                        fail);
        memset(p, 0, s->sz.resident_bytes);
        s->resident = p;
    }
    if (s->sz.swapped_parts) {
        if (!cfg->swap) {
            st = zoff__err(ZOFF_EINVAL,
                           "zstore_create: %zu partitions are swapped but no swap "
                           "configuration was given",
                           s->sz.swapped_parts);
            goto fail;
        }
        s->slot_bytes = (size_t)round4k(s->part_stride);
        s->slots = calloc((size_t)s->sz.slots, sizeof *s->slots);
        if (!s->slots) {
            st = zoff__err(-ENOMEM, "zstore_create: out of memory");
            goto fail;
        }
        for (int i = 0; i < s->sz.slots; i++)
            ZOFF_CHECK_GOTO(zarena_alloc(s->arena, s->slot_bytes, "state.slot", &s->slots[i].buf),
                            st, fail);
        zswap_config sc = *cfg->swap;
        sc.capacity_bytes = s->sz.swap_capacity_bytes;
        ZOFF_CHECK_GOTO(zswap_create(&sc, &s->swap), st, fail);
        for (int i = 0; i < s->sz.slots; i++)
            ZOFF_CHECK_GOTO(zswap_register_buffer(s->swap, s->slots[i].buf, s->slot_bytes), st,
                            fail);
        for (size_t k = s->sz.resident_parts; k < s->sz.nparts; k++)
            ZOFF_CHECK_GOTO(zswap_reserve(s->swap, k, part_bytes(s, k)), st, fail);
    }
    *out = s;
    return ZOFF_OK;
fail:
    zstore_destroy(s);
    return st;
}

/* Completes a slot's request; returns its status (first error kept by callers). */
static zoff_status slot_wait(zstore *s, zstore_slot *sl)
{
    if (!sl->req) return ZOFF_OK;
    uint64_t t0 = zoff__now_ns();
    zoff_status st = zswap_wait(s->swap, sl->req);
    uint64_t t1 = zoff__now_ns();
    s->wait_ns += t1 - t0;
    sl->req = NULL;
    if (st < 0) {
        char msg[768];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        return zoff__err(st, "optimizer-state partition %zu (%s): %s", sl->part,
                         sl->req_write ? "write-back" : "read", msg);
    }
    if (s->cfg.io_hook)
        s->cfg.io_hook(s->cfg.io_user, sl->req_write, sl->part, part_bytes(s, sl->part),
                       sl->issue_ns, t1);
    return st;
}

void zstore_destroy(zstore *s)
{
    if (!s) return;
    if (s->slots) {
        for (int i = 0; i < s->sz.slots; i++) {
            if (s->slots[i].req) (void)slot_wait(s, &s->slots[i]);
            if (s->slots[i].buf) zarena_free(s->arena, s->slots[i].buf);
        }
    }
    zswap_destroy(s->swap);
    if (s->resident) zarena_free(s->arena, s->resident);
    free(s->slots);
    free(s->order);
    free(s->seq);
    free(s->swpos);
    free(s);
}

zoff_status zstore_pass_begin(zstore *s, const size_t *order, size_t n, unsigned flags)
{
    if (s->in_pass) return zoff__err(ZOFF_ESTATE, "zstore: a pass is already running");
    if (n > s->sz.nparts)
        return zoff__err(ZOFF_EINVAL, "zstore: pass of %zu partitions, store has %zu", n,
                         s->sz.nparts);
    size_t nsw = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = order ? order[i] : i;
        if (k >= s->sz.nparts)
            return zoff__err(ZOFF_EINVAL, "zstore: partition %zu out of range (%zu)", k,
                             s->sz.nparts);
        s->order[i] = k;
        if (zstore_part_resident(s, k)) {
            s->seq[i] = SIZE_MAX;
        } else {
            s->swpos[nsw] = i;
            s->seq[i] = nsw++;
        }
    }
    s->in_pass = 1;
    s->flags = flags;
    s->n = n;
    s->pos = 0;
    s->nswapped = nsw;
    s->issued = 0;
    s->holding = 0;
    s->pass_err = ZOFF_OK;
    return ZOFF_OK;
}

/* Assigns swapped sequence numbers up to `upto` (inclusive) to slots, starting their reads. */
static zoff_status issue_upto(zstore *s, size_t upto)
{
    while (s->issued < s->nswapped && s->issued <= upto) {
        size_t j = s->issued;
        zstore_slot *sl = &s->slots[j % (size_t)s->sz.slots];
        ZOFF_CHECK(slot_wait(s, sl)); /* the write-back of j - slots */
        size_t k = s->order[s->swpos[j]];
        sl->part = k;
        sl->req_write = 0;
        if (s->flags & ZSTORE_READ) {
            sl->issue_ns = zoff__now_ns();
            ZOFF_CHECK(zswap_in(s->swap, k, sl->buf, part_bytes(s, k), &sl->req));
        }
        s->issued++;
    }
    return ZOFF_OK;
}

static void fill_part(const zstore *s, size_t k, void *base, zstore_part *out)
{
    size_t n = zstore_part_numel(s, k);
    out->index = k;
    out->begin = zstore_part_begin(s, k);
    out->numel = n;
    out->resident = zstore_part_resident(s, k);
    memset(&out->view, 0, sizeof out->view);
    zstate_view(s->cfg.optim, s->cfg.state, base, n, &out->view);
    out->view.n = n;
    out->master = out->view.param;
    out->exp_avg = out->view.exp_avg;
    out->exp_avg_sq = out->view.exp_avg_sq;
}

zoff_status zstore_pass_next(zstore *s, zstore_part *out)
{
    zoff_status st = ZOFF_OK;
    if (!s->in_pass || s->holding || s->pos >= s->n || s->pass_err)
        return zoff__err(ZOFF_ESTATE, "zstore: pass_next outside a running pass (pos %zu/%zu)",
                         s->pos, s->n);
    size_t pos = s->pos;
    size_t k = s->order[pos];
    size_t depth = s->sz.slots > 2 ? (size_t)s->sz.slots - 2 : 0;
    if (zstore_part_resident(s, k)) {
        /* keep the reads of the swapped partitions that follow going */
        size_t next = SIZE_MAX;
        for (size_t i = pos + 1; i < s->n; i++)
            if (s->seq[i] != SIZE_MAX) {
                next = s->seq[i];
                break;
            }
        if (next != SIZE_MAX && depth > 0)
            ZOFF_CHECK_GOTO(issue_upto(s, next + depth - 1), st, fail);
        fill_part(s, k, s->resident + (size_t)k * s->part_stride, out);
    } else {
        size_t j = s->seq[pos];
        ZOFF_CHECK_GOTO(issue_upto(s, j + depth), st, fail);
        zstore_slot *sl = &s->slots[j % (size_t)s->sz.slots];
        if (sl->part != k)
            return zoff__err(ZOFF_EINTERNAL, "zstore: slot holds %zu, expected %zu", sl->part, k);
        ZOFF_CHECK_GOTO(slot_wait(s, sl), st, fail);
        fill_part(s, k, sl->buf, out);
    }
    s->holding = 1;
    return ZOFF_OK;
fail:
    s->pass_err = st;
    return st;
}

zoff_status zstore_pass_release(zstore *s)
{
    zoff_status st = ZOFF_OK;
    if (!s->in_pass || !s->holding)
        return zoff__err(ZOFF_ESTATE, "zstore: pass_release without a partition handed out");
    size_t pos = s->pos;
    size_t k = s->order[pos];
    s->holding = 0;
    s->pos++;
    if (!zstore_part_resident(s, k) && (s->flags & ZSTORE_WRITE)) {
        zstore_slot *sl = &s->slots[s->seq[pos] % (size_t)s->sz.slots];
        sl->req_write = 1;
        sl->issue_ns = zoff__now_ns();
        st = zswap_out(s->swap, k, sl->buf, part_bytes(s, k), &sl->req);
        if (st < 0) {
            sl->req = NULL;
            s->pass_err = st;
        }
    }
    return st;
}

zoff_status zstore_pass_end(zstore *s)
{
    if (!s->in_pass) return ZOFF_OK;
    zoff_status st = s->pass_err;
    char msg[1024] = "";
    if (st) snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
    for (int i = 0; i < s->sz.slots; i++) {
        zoff_status w = slot_wait(s, &s->slots[i]);
        if (w < 0 && st == ZOFF_OK) {
            st = w;
            snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        }
    }
    s->in_pass = 0;
    s->holding = 0;
    if (st) return zoff__err(st, "%s", msg);
    return ZOFF_OK;
}

void zstore_get_stats(const zstore *s, zstore_stats *out)
{
    memset(out, 0, sizeof *out);
    out->wait_ns = s->wait_ns;
    if (s->swap) {
        zswap_stats ss;
        zswap_get_stats(s->swap, &ss);
        out->read_bytes = ss.read_bytes;
        out->write_bytes = ss.write_bytes;
        out->read_ns = ss.read_ns;
        out->write_ns = ss.write_ns;
        out->odirect = ss.odirect;
        out->aio_fallback = ss.aio.engine == ZOFF_AIO_THREADS;
        out->nvme_bytes = ss.capacity_bytes;
    }
}
