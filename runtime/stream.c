/*
 * stream.c — parameter streaming: units, the schedule, the device slab of unit slots, and
 * zoff_fetch / zoff_param_ptr / zoff_release with prefetch.
 *
 * A streamed parameter (registered with dev_param NULL) keeps its 16-bit copy in pinned host
 * memory (rt->host16), written directly by the fused CPU Adam output (pipeline.c). A fetch
 * uploads the unit's copies into one of prefetch_depth + 1 device slots on zoff's H2D stream and
 * makes the consumer stream wait for that upload; it then starts uploading the next units of the
 * schedule into slots nobody uses. Ordering, all on the device (no host-wide sync):
 *  - an upload into a slot waits for the slot's `freed` event (recorded by zoff_release on the
 *    consumer's stream): the old weights are not overwritten while work still reads them;
 *  - the consumer waits for the slot's `loaded` event;
 *  - the update waits (host side, per unit) for the unit's `host_ev` (its last upload) before it
 *    rewrites the unit's host copies; in the sync pipeline the update itself runs inside
 *    zoff_step, so a fetch after zoff_step always reads this step's Adam output.
 * A slot remembers the unit and the unit's version it holds; the version changes whenever the
 * host copies do (an update, set_state, load), so a kept or prefetched copy is reused only while
 * it is current. Victims are chosen by next use in the schedule (farthest first).
 * Owns: units, schedule, slots, the slab, the host copies' layout, the streaming counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "runtime/rt.h"

#define SLOT_ALIGN 256u /* each param's offset in a slot (device alignment) */

/* ---- registration (before finalize) -------------------------------------------------------- */
ZOFF_API zoff_status zoff_add_unit(zoff_runtime *rt, const char *name, const int *param_ids,
                                   int nparams, int *unit_id)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_add_unit: rt is NULL");
    if (rt->state != ZRT_CREATED)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE,
                                     "zoff_add_unit('%s') after zoff_finalize: units "
                                     "are fixed once the runtime is finalized",
                                     name ? name : "(null)"));
    if (!name || !name[0] || nparams <= 0 || !param_ids)
        return zrt_ret(rt, zoff__err(ZOFF_EINVAL,
                                     "zoff_add_unit: a non-empty name and at least one param id "
                                     "are required"));
    for (int u = 0; u < rt->nunits; u++)
        if (strcmp(rt->units[u].name, name) == 0)
            return zrt_ret(rt, zoff__err(ZOFF_EINVAL,
                                         "zoff_add_unit: unit name '%s' is already used (id %d)",
                                         name, u));
    for (int i = 0; i < nparams; i++) {
        int id = param_ids[i];
        if (id < 0 || id >= rt->nparams)
            return zrt_ret(rt, zoff__err(ZOFF_EINVAL,
                                         "zoff_add_unit('%s'): unknown param id %d (%d registered)",
                                         name, id, rt->nparams));
        if (rt->params[id].unit >= 0)
            return zrt_ret(rt, zoff__err(ZOFF_EINVAL,
                                         "zoff_add_unit('%s'): param '%s' already belongs to unit "
                                         "'%s' (a parameter is in at most one unit)",
                                         name, rt->params[id].name,
                                         rt->units[rt->params[id].unit].name));
        for (int j = 0; j < i; j++)
            if (param_ids[j] == id)
                return zrt_ret(rt, zoff__err(ZOFF_EINVAL,
                                             "zoff_add_unit('%s'): param '%s' is listed twice",
                                             name, rt->params[id].name));
    }
    if (rt->nunits == rt->cap_units) {
        int cap = rt->cap_units ? rt->cap_units * 2 : 16;
        zrt_unit *nu = realloc(rt->units, (size_t)cap * sizeof *nu);
        if (!nu) return zrt_ret(rt, zoff__err(-ENOMEM, "zoff_add_unit: out of memory"));
        rt->units = nu;
        rt->cap_units = cap;
    }
    zrt_unit u;
    memset(&u, 0, sizeof u);
    u.name = strdup(name);
    u.params = malloc((size_t)nparams * sizeof(int));
    if (!u.name || !u.params) {
        free(u.name);
        free(u.params);
        return zrt_ret(rt, zoff__err(-ENOMEM, "zoff_add_unit: out of memory"));
    }
    memcpy(u.params, param_ids, (size_t)nparams * sizeof(int));
    u.nparams = nparams;
    u.slot = -1;
    int id = rt->nunits++;
    for (int i = 0; i < nparams; i++) rt->params[param_ids[i]].unit = id;
    rt->units[id] = u;
    if (unit_id) *unit_id = id;
    return zrt_ret(rt, ZOFF_OK);
}

ZOFF_API zoff_status zoff_set_schedule(zoff_runtime *rt, const int *forward, int nforward,
                                       const int *backward, int nbackward)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_set_schedule: rt is NULL");
    if (rt->state != ZRT_CREATED)
        return zrt_ret(rt,
                       zoff__err(ZOFF_ESTATE, "zoff_set_schedule after zoff_finalize: the "
                                              "schedule is fixed once the runtime is finalized"));
    if (!forward || nforward <= 0 || (backward && nbackward <= 0) || nbackward < 0)
        return zrt_ret(rt, zoff__err(ZOFF_EINVAL, "zoff_set_schedule: a forward order of at least "
                                                  "one unit is required (backward: NULL or >= 1)"));
    int nb = backward ? nbackward : nforward;
    for (int i = 0; i < nforward + nb; i++) {
        int u = i < nforward ? forward[i] : backward ? backward[i - nforward] : 0;
        if (u < 0 || u >= rt->nunits)
            return zrt_ret(rt, zoff__err(ZOFF_EINVAL,
                                         "zoff_set_schedule: unknown unit id %d at %s position %d "
                                         "(%d units registered)",
                                         u, i < nforward ? "forward" : "backward",
                                         i < nforward ? i : i - nforward, rt->nunits));
    }
    int *s = malloc((size_t)(nforward + nb) * sizeof *s);
    if (!s) return zrt_ret(rt, zoff__err(-ENOMEM, "zoff_set_schedule: out of memory"));
    memcpy(s, forward, (size_t)nforward * sizeof *s);
    for (int i = 0; i < nb; i++)
        s[nforward + i] = backward ? backward[i] : forward[nforward - 1 - i];
    free(rt->sched);
    rt->sched = s;
    rt->nsched = nforward + nb;
    rt->nsched_fwd = nforward;
    rt->sched_set = 1;
    return zrt_ret(rt, ZOFF_OK);
}

/* ---- finalize -------------------------------------------------------------------------------- */
zoff_status zrt_stream_prepare(zoff_runtime *rt)
{
    rt->streamed_bytes = 0;
    uint64_t largest = 0;
    int largest_unit = -1;
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        if (!p->streamed) continue;
        if (p->unit < 0)
            return zoff__err(ZOFF_EINVAL,
                             "zoff_finalize: streamed param '%s' (registered with dev_param NULL) "
                             "belongs to no unit: add it to one with zoff_add_unit",
                             p->name);
        p->host_off = (size_t)rt->streamed_bytes;
        rt->streamed_bytes = ZOFF_ALIGN_UP(rt->streamed_bytes + p->numel * p->esize, 64u);
    }
    for (int u = 0; u < rt->nunits; u++) {
        zrt_unit *un = &rt->units[u];
        un->bytes = 0;
        for (int j = 0; j < un->nparams; j++) {
            zrt_param *p = &rt->params[un->params[j]];
            if (!p->streamed) continue;
            p->slot_off = (size_t)un->bytes;
            un->bytes = ZOFF_ALIGN_UP(un->bytes + p->numel * p->esize, SLOT_ALIGN);
        }
        if (un->bytes > largest) {
            largest = un->bytes;
            largest_unit = u;
        }
    }
    if (!rt->sched_set && rt->nunits > 0) {
        free(rt->sched);
        rt->sched = malloc((size_t)rt->nunits * 2 * sizeof(int));
        if (!rt->sched) return zoff__err(-ENOMEM, "zoff_finalize: out of memory");
        for (int u = 0; u < rt->nunits; u++) {
            rt->sched[u] = u;
            rt->sched[2 * rt->nunits - 1 - u] = u;
        }
        rt->nsched = 2 * rt->nunits;
        rt->nsched_fwd = rt->nunits;
    }
    rt->nslots = 0;
    rt->slot_bytes = 0;
    if (largest == 0) return ZOFF_OK;
    uint64_t slot = rt->cfg.stream_slot_bytes ? rt->cfg.stream_slot_bytes : largest;
    slot = ZOFF_ALIGN_UP(slot, SLOT_ALIGN);
    if (largest > slot) {
        char a[32], b[32];
        return zoff__err(ZOFF_ENOFIT,
                         "zoff_finalize: unit '%s' needs %s of streamed weights but a slot holds "
                         "%s: raise zoff.stream_slot_bytes (offload_param.buffer_size) to at "
                         "least %llu bytes or split the unit",
                         rt->units[largest_unit].name, zoff__fmt_bytes(largest, a, sizeof a),
                         zoff__fmt_bytes(slot, b, sizeof b), (unsigned long long)largest);
    }
    rt->slot_bytes = slot;
    rt->nslots = rt->cfg.prefetch_depth + 1;
    return ZOFF_OK;
}

zoff_status zrt_stream_init(zoff_runtime *rt)
{
    rt->cursor = 0;
    atomic_store(&rt->fetch_wait_ns, 0);
    for (int u = 0; u < rt->nunits; u++) {
        zrt_unit *un = &rt->units[u];
        un->slot = -1;
        un->refs = 0;
        un->version = 1;
        if (un->bytes) ZOFF_CHECK(zdev_event_create(rt->dev, &un->host_ev));
    }
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        p->host16 = p->streamed ? rt->host16 + p->host_off : NULL;
    }
    rt->stats.slot_bytes = rt->slot_bytes;
    rt->stats.nslots = rt->nslots;
    if (rt->nslots == 0) return ZOFF_OK;
    uint64_t slab = (uint64_t)rt->nslots * rt->slot_bytes;
    size_t fr = 0, tot = 0;
    if (zdev_mem_info(rt->dev, &fr, &tot) == ZOFF_OK && slab > fr) {
        char a[32], b[32], c[32];
        return zoff__err(
            ZOFF_ENOFIT,
            "zoff_finalize: the streaming slab needs %s (%d slots = prefetch_depth "
            "%d + 1, of %s each) but the device has %s free: lower zoff.prefetch_depth "
            "(offload_param.buffer_count) or split the largest unit",
            zoff__fmt_bytes(slab, a, sizeof a), rt->nslots, rt->cfg.prefetch_depth,
            zoff__fmt_bytes(rt->slot_bytes, b, sizeof b), zoff__fmt_bytes(fr, c, sizeof c));
    }
    zoff_status st = zdev_malloc(rt->dev, (size_t)slab, &rt->slab);
    if (st < 0) {
        char a[32];
        return zoff__err(st == ZOFF_EDEVMEM ? ZOFF_ENOFIT : st,
                         "zoff_finalize: cannot allocate the streaming slab of %s (%d slots): "
                         "lower zoff.prefetch_depth: %s",
                         zoff__fmt_bytes(slab, a, sizeof a), rt->nslots, zoff__last_error_tls());
    }
    rt->slots = calloc((size_t)rt->nslots, sizeof *rt->slots);
    if (!rt->slots) return zoff__err(-ENOMEM, "zoff_finalize: out of memory");
    for (int k = 0; k < rt->nslots; k++) {
        zrt_slot *s = &rt->slots[k];
        s->dev = (uint8_t *)rt->slab + (size_t)k * rt->slot_bytes;
        s->unit = -1;
        ZOFF_CHECK(zdev_event_create(rt->dev, &s->loaded));
        ZOFF_CHECK(zdev_event_create(rt->dev, &s->freed));
    }
    return ZOFF_OK;
}

void zrt_stream_fini(zoff_runtime *rt)
{
    if (rt->dev) {
        if (rt->h2d) (void)zdev_stream_sync(rt->dev, rt->h2d);
        for (int k = 0; rt->slots && k < rt->nslots; k++) {
            if (rt->slots[k].loaded) zdev_event_destroy(rt->dev, rt->slots[k].loaded);
            if (rt->slots[k].freed) zdev_event_destroy(rt->dev, rt->slots[k].freed);
        }
        for (int u = 0; u < rt->nunits; u++)
            if (rt->units[u].host_ev) zdev_event_destroy(rt->dev, rt->units[u].host_ev);
        if (rt->slab) zdev_free(rt->dev, rt->slab);
    }
    for (int u = 0; u < rt->nunits; u++) {
        rt->units[u].host_ev = NULL;
        rt->units[u].slot = -1;
        rt->units[u].refs = 0;
    }
    free(rt->slots);
    rt->slots = NULL;
    rt->slab = NULL;
    rt->host16 = NULL; /* part of the arena */
}

void zrt_stream_free(zoff_runtime *rt)
{
    for (int u = 0; u < rt->nunits; u++) {
        free(rt->units[u].name);
        free(rt->units[u].params);
    }
    free(rt->units);
    rt->units = NULL;
    rt->nunits = rt->cap_units = 0;
    free(rt->sched);
    rt->sched = NULL;
}

/* ---- the update's side ---------------------------------------------------------------------- */
zoff_status zrt_stream_host_wait(zoff_runtime *rt, const zrt_param *p)
{
    if (!p->streamed || p->unit < 0) return ZOFF_OK;
    const zrt_unit *un = &rt->units[p->unit];
    return un->host_ev ? zdev_event_sync(rt->dev, un->host_ev) : ZOFF_OK;
}

static zoff_status prefetch(zoff_runtime *rt, int from);

zoff_status zrt_stream_step_end(zoff_runtime *rt, int updated)
{
    if (updated)
        for (int u = 0; u < rt->nunits; u++) rt->units[u].version++;
    rt->cursor = 0;
    return rt->nslots ? prefetch(rt, -1) : ZOFF_OK;
}

zoff_status zrt_stream_write_host(zoff_runtime *rt, const zrt_param *p, size_t e0,
                                  const float *master, size_t n)
{
    ZOFF_CHECK(zrt_stream_host_wait(rt, p));
    uint16_t *h = (uint16_t *)(p->host16 + e0 * p->esize);
    if (p->dtype == ZOFF_DTYPE_F32)
        memcpy(h, master, n * sizeof(float));
    else if (p->dtype == ZOFF_DTYPE_F16)
        for (size_t i = 0; i < n; i++) h[i] = zoff_f32_to_f16(master[i]);
    else
        for (size_t i = 0; i < n; i++) h[i] = zoff_f32_to_bf16(master[i]);
    if (p->unit >= 0) rt->units[p->unit].version++;
    return ZOFF_OK;
}

/* ---- slots ------------------------------------------------------------------------------------
 */
static int slot_current(const zoff_runtime *rt, int u)
{
    const zrt_unit *un = &rt->units[u];
    return un->slot >= 0 && rt->slots[un->slot].version == un->version;
}

/* Index in the schedule of u's next use at or after the cursor; nsched + 1 when none. */
static int next_use(const zoff_runtime *rt, int u)
{
    for (int j = rt->cursor; j < rt->nsched; j++)
        if (rt->sched[j] == u) return j;
    return rt->nsched + 1;
}

/* A slot to load into: empty first, else the unreferenced one used last (or never) again.
 * `before`: only victims whose unit is next used after this schedule index (prefetch must not
 * evict what is needed sooner). -1 when none. */
static int choose_slot(const zoff_runtime *rt, int before)
{
    int best = -1, best_use = -1;
    for (int k = 0; k < rt->nslots; k++) {
        const zrt_slot *s = &rt->slots[k];
        if (s->unit < 0) return k;
        if (rt->units[s->unit].refs > 0) continue;
        int use = slot_current(rt, s->unit) ? next_use(rt, s->unit) : rt->nsched + 2;
        if (use > best_use) {
            best_use = use;
            best = k;
        }
    }
    if (best >= 0 && before >= 0 && best_use <= before) return -1;
    return best;
}

/* Queues the upload of unit u's host copies into slot k on the H2D stream. */
static zoff_status load_unit(zoff_runtime *rt, int u, int k, int prefetched)
{
    zrt_unit *un = &rt->units[u];
    zrt_slot *s = &rt->slots[k];
    if (s->unit >= 0 && s->unit != u) rt->units[s->unit].slot = -1;
    if (un->slot >= 0 && un->slot != k) rt->slots[un->slot].unit = -1;
    s->unit = -1; /* until the upload is queued: a failure leaves the slot empty */
    un->slot = -1;
    ZOFF_CHECK(zdev_stream_wait_event(rt->dev, rt->h2d, s->freed));
    uint64_t bytes = 0;
    for (int j = 0; j < un->nparams; j++) {
        const zrt_param *p = &rt->params[un->params[j]];
        if (!p->streamed) continue;
        size_t n = p->numel * p->esize;
        ZOFF_CHECK(zdev_memcpy_h2d(rt->dev, s->dev + p->slot_off, p->host16, n, rt->h2d));
        bytes += n;
    }
    ZOFF_CHECK(zdev_event_record(rt->dev, s->loaded, rt->h2d));
    ZOFF_CHECK(zdev_event_record(rt->dev, un->host_ev, rt->h2d));
    atomic_fetch_add(&rt->own_h2d_bytes, bytes);
    rt->stats.stream_h2d_bytes += bytes;
    s->unit = u;
    s->version = un->version;
    s->prefetched = prefetched;
    un->slot = k;
    if (prefetched) rt->stats.prefetches++;
    return ZOFF_OK;
}

/* Starts loading the next units of the schedule after the cursor (up to prefetch_depth distinct
 * units, skipping `except`) into slots that nobody needs sooner. */
static zoff_status prefetch(zoff_runtime *rt, int except)
{
    int depth = rt->cfg.prefetch_depth, seen = 0;
    for (int j = rt->cursor; j < rt->nsched && seen < depth; j++) {
        int u = rt->sched[j];
        if (u == except || rt->units[u].bytes == 0) continue;
        int dup = 0;
        for (int i = rt->cursor; i < j; i++) dup |= rt->sched[i] == u;
        if (dup) continue;
        seen++;
        if (slot_current(rt, u)) continue;
        int k = choose_slot(rt, j);
        if (k < 0) break; /* every slot holds something needed sooner or in use */
        ZOFF_CHECK(load_unit(rt, u, k, 1));
    }
    return ZOFF_OK;
}

/* ---- fetch / release / param_ptr ------------------------------------------------------------- */
typedef struct wait_rec {
    zoff_runtime *rt;
    uint64_t t0;
} wait_rec;

static void wait_begin(void *arg)
{
    ((wait_rec *)arg)->t0 = zoff__now_ns();
}

static void wait_end(void *arg)
{
    wait_rec *w = arg;
    atomic_fetch_add(&w->rt->fetch_wait_ns, zoff__now_ns() - w->t0);
    free(w);
}

/* The consumer waits for slot k's upload; the time it waits is counted. */
static zoff_status consumer_wait(zoff_runtime *rt, int k, zoff_stream stream)
{
    zrt_slot *s = &rt->slots[k];
    int done = 0;
    ZOFF_CHECK(zdev_event_query(rt->dev, s->loaded, &done));
    if (done) return ZOFF_OK; /* prefetched and landed: nothing to wait for, no stream op */
    if (!stream) {
        uint64_t t0 = zoff__now_ns();
        ZOFF_CHECK(zdev_event_sync(rt->dev, s->loaded));
        atomic_fetch_add(&rt->fetch_wait_ns, zoff__now_ns() - t0);
        return ZOFF_OK;
    }
    zdev_stream *cs = (zdev_stream *)stream;
    wait_rec *w = malloc(sizeof *w);
    if (!w) return zoff__err(-ENOMEM, "zoff_fetch: out of memory");
    *w = (wait_rec){rt, 0};
    zoff_status st = zdev_host_fn(rt->dev, cs, wait_begin, w);
    if (st < 0) {
        free(w);
        return st;
    }
    zrt_span *sp = NULL;
    ZOFF_CHECK(zrt_trace_span_begin(rt, cs, "fetch wait", &sp));
    ZOFF_CHECK(zdev_stream_wait_event(rt->dev, cs, s->loaded));
    ZOFF_CHECK(zrt_trace_span_end(rt, cs, sp));
    return zdev_host_fn(rt->dev, cs, wait_end, w);
}

static zoff_status check_unit(const zoff_runtime *rt, int u, const char *call)
{
    if (rt->state == ZRT_CREATED) return zoff__err(ZOFF_ESTATE, "%s before zoff_finalize", call);
    if (rt->state == ZRT_BROKEN)
        return zoff__err(ZOFF_ESTATE, "%s: the runtime is unusable after an earlier failure: %s",
                         call, rt->broken);
    if (u < 0 || u >= rt->nunits)
        return zoff__err(ZOFF_EINVAL, "%s: unknown unit id %d (%d registered)", call, u,
                         rt->nunits);
    return ZOFF_OK;
}

/* Moves the cursor past u's position in the schedule; 1 when it was the expected unit. */
static int advance(zoff_runtime *rt, int u)
{
    if (rt->cursor < rt->nsched && rt->sched[rt->cursor] == u) {
        rt->cursor++;
        return 1;
    }
    for (int j = rt->cursor + 1; j < rt->nsched; j++) /* skipped units */
        if (rt->sched[j] == u) {
            rt->cursor = j + 1;
            return 0;
        }
    for (int j = 0; j < rt->cursor && j < rt->nsched; j++) /* a unit run again */
        if (rt->sched[j] == u) {
            rt->cursor = j + 1;
            return 0;
        }
    return 0; /* not in the schedule: the cursor stays */
}

zoff_status zrt_fetch(zoff_runtime *rt, int u, zoff_stream stream)
{
    ZOFF_CHECK(check_unit(rt, u, "zoff_fetch"));
    zrt_unit *un = &rt->units[u];
    int in_order = advance(rt, u);
    if (un->bytes == 0) { /* only resident params */
        un->refs++;
        return ZOFF_OK;
    }
    rt->stats.fetches++;
    if (!in_order) rt->stats.fetch_out_of_order++;
    if (un->refs > 0 && un->slot >= 0) { /* fetched again before its release: same weights */
        rt->stats.fetch_hits++;
        un->refs++;
        return ZOFF_OK;
    }
    if (slot_current(rt, u)) {
        rt->stats.fetch_hits++;
        rt->slots[un->slot].prefetched = 0;
    } else {
        int k = choose_slot(rt, -1);
        if (k < 0) {
            char names[256];
            size_t used = 0;
            names[0] = '\0';
            for (int i = 0; i < rt->nslots && used < sizeof names; i++) {
                int w = rt->slots[i].unit;
                int n = snprintf(names + used, sizeof names - used, "%s'%s'", i ? ", " : "",
                                 w >= 0 ? rt->units[w].name : "?");
                if (n > 0) used += (size_t)n;
            }
            return zoff__err(ZOFF_ESTATE,
                             "zoff_fetch('%s'): all %d slots hold fetched units (%s): release one "
                             "first, or raise zoff.prefetch_depth (now %d)",
                             un->name, rt->nslots, names, rt->cfg.prefetch_depth);
        }
        rt->stats.fetch_misses++;
        zoff_status st = load_unit(rt, u, k, 0);
        if (st < 0) return zrt_break(rt, st);
    }
    zoff_status st = consumer_wait(rt, un->slot, stream);
    if (st < 0) return zrt_break(rt, st);
    un->refs++;
    st = prefetch(rt, u);
    if (st < 0) return zrt_break(rt, st);
    return ZOFF_OK;
}

zoff_status zrt_release(zoff_runtime *rt, int u, zoff_stream stream)
{
    ZOFF_CHECK(check_unit(rt, u, "zoff_release"));
    zrt_unit *un = &rt->units[u];
    if (un->refs == 0)
        return zoff__err(ZOFF_ESTATE,
                         "zoff_release('%s'): the unit is not fetched (released twice, or never "
                         "fetched)",
                         un->name);
    un->refs--;
    if (un->refs > 0 || un->slot < 0) return ZOFF_OK;
    zoff_status st = zdev_event_record(rt->dev, rt->slots[un->slot].freed, (zdev_stream *)stream);
    if (st == ZOFF_OK) st = prefetch(rt, -1);
    if (st < 0) return zrt_break(rt, st);
    return ZOFF_OK;
}

zoff_status zrt_param_ptr(zoff_runtime *rt, int id, void **dev)
{
    const zrt_param *p = &rt->params[id];
    if (!p->streamed) {
        *dev = p->dev_param;
        return ZOFF_OK;
    }
    const zrt_unit *un = &rt->units[p->unit];
    if (un->refs == 0 || un->slot < 0)
        return zoff__err(ZOFF_ESTATE,
                         "zoff_param_ptr('%s'): its unit '%s' is not fetched (zoff_fetch it "
                         "first; the pointer is valid until zoff_release)",
                         p->name, un->name);
    *dev = rt->slots[un->slot].dev + p->slot_off;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_fetch(zoff_runtime *rt, int unit_id, zoff_stream stream)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_fetch: rt is NULL");
    return zrt_ret(rt, zrt_fetch(rt, unit_id, stream));
}

ZOFF_API zoff_status zoff_release(zoff_runtime *rt, int unit_id, zoff_stream stream)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_release: rt is NULL");
    return zrt_ret(rt, zrt_release(rt, unit_id, stream));
}

ZOFF_API zoff_status zoff_param_ptr(zoff_runtime *rt, int param_id, void **dev)
{
    zoff__clear_error();
    if (!rt || !dev) return zoff__err(ZOFF_EINVAL, "zoff_param_ptr: rt and dev are required");
    zoff_status st = ZOFF_OK;
    if (rt->state == ZRT_CREATED)
        st = zoff__err(ZOFF_ESTATE, "zoff_param_ptr before zoff_finalize");
    else if (param_id < 0 || param_id >= rt->nparams)
        st = zoff__err(ZOFF_EINVAL, "zoff_param_ptr: unknown param id %d (%d registered)", param_id,
                       rt->nparams);
    if (!st) st = zrt_param_ptr(rt, param_id, dev);
    return zrt_ret(rt, st);
}
