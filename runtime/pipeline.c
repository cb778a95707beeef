/*
 * pipeline.c — the step pipeline: gradients going down as they become final, their sums of
 * squares computed while backward goes on, the loss scaler and clipping decision, and the update
 * itself (fused CPU Adam tile by tile, each 16-bit tile uploaded while the next one is computed),
 * in the three overlap modes:
 *  - sync: the update runs in zoff_step after the last gradient landed;
 *  - eager: a partition is updated by the update worker as soon as every gradient it holds has
 *    landed (only without fp16 and clipping: nothing needs the global norm);
 *  - delayed: after the warm-up, zoff_step(t) launches the update of step t on the update worker
 *    and returns; its 16-bit params wait in the hold buffer and are uploaded by zoff_step(t+1),
 *    once the gradients of t+1 landed (the device no longer reads the params of step t+1).
 * Every update leaves the parameters without a gradient this step untouched (and, in eager,
 * those with a non-finite one): their tiles are not visited, their step counts do not advance;
 * each parameter's bias correction uses its own step count (zrt_param.step / upd_step).
 * Owns: the two worker threads, the staging-tile ring, the tile list and events of the delayed
 * mode, the eager readiness counters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "runtime/rt.h"

/* ---- worker -------------------------------------------------------------------------------- */
static void *worker_main(void *arg)
{
    zrt_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->count == 0 && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (w->count == 0 && w->stop) break;
        zrt_job j = w->ring[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&w->mu);
        w->busy = 0;
        if (w->count == 0) pthread_cond_broadcast(&w->idle_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

zoff_status zrt_worker_start(zrt_worker *w, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->ring = calloc(cap, sizeof *w->ring);
    if (!w->ring) return zoff__err(-ENOMEM, "worker: out of memory for %zu jobs", cap);
    w->cap = cap;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle_cv, NULL);
    int e = pthread_create(&w->th, NULL, worker_main, w);
    if (e) {
        free(w->ring);
        w->ring = NULL;
        return zoff__err(-e, "worker: pthread_create: %s", strerror(e));
    }
    w->started = 1;
    return ZOFF_OK;
}

zoff_status zrt_worker_push(zrt_worker *w, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&w->mu);
    if (w->count == w->cap) {
        pthread_mutex_unlock(&w->mu);
        return zoff__err(ZOFF_EINTERNAL, "worker queue full (%zu jobs)", w->cap);
    }
    w->ring[(w->head + w->count) % w->cap] = (zrt_job){fn, arg};
    w->count++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return ZOFF_OK;
}

void zrt_worker_wait_idle(zrt_worker *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    while (w->count || w->busy) pthread_cond_wait(&w->idle_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void zrt_worker_stop(zrt_worker *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    free(w->ring);
    memset(w, 0, sizeof *w);
}

/* ---- helpers ------------------------------------------------------------------------------- */
zoff_status zrt_break(zoff_runtime *rt, zoff_status st)
{
    char msg[ZRT_ERR_MAX];
    snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
    snprintf(rt->broken, sizeof rt->broken, "%s", msg[0] ? msg : zoff_strerror(st));
    rt->state = ZRT_BROKEN;
    ZOFF_WARN(ZOFF_SUB_STEP, "runtime unusable: %s", rt->broken);
    return zoff__err(st, "%s", msg);
}

void zrt_hparams(const zoff_runtime *rt, int g, int64_t step, float grad_scale, zadam_hparams *hp)
{
    const zoff_group_config *c = &rt->groups[g].cfg;
    hp->lr = c->lr;
    hp->beta1 = c->beta1;
    hp->beta2 = c->beta2;
    hp->eps = c->eps;
    hp->weight_decay = c->weight_decay;
    hp->adamw = c->adamw_mode;
    hp->bias_correction = c->bias_correction;
    hp->step = step;
    hp->grad_scale = grad_scale;
    hp->optim = rt->cfg.optimizer_type;
    hp->lr_decay = rt->cfg.lr_decay;
}

static void update_prepare(const zoff_runtime *rt, zrt_update *u, int64_t step, float grad_scale,
                           const uint8_t *grads, int to_hold, int skip_nonfinite)
{
    memset(u, 0, sizeof *u);
    u->step = step;
    u->grad_scale = grad_scale;
    u->grads = grads;
    u->grads_f32 = rt->accum > 1 ? (const float *)(const void *)grads : NULL;
    u->to_hold = to_hold;
    u->skip_nonfinite = skip_nonfinite;
    for (int g = 0; g < rt->ngroups; g++) zrt_hparams(rt, g, step, grad_scale, &u->hp[g]);
}

static double sumsq_isa(const zoff_runtime *rt, const void *g, zoff_dtype dt, size_t n,
                        size_t *nonfinite)
{
    switch (zadam_ctx_isa(rt->adam)) {
    case ZADAM_ISA_AVX512:
        return sumsq_avx512(g, dt, n, nonfinite);
    case ZADAM_ISA_AVX2:
        return sumsq_avx2(g, dt, n, nonfinite);
    default:
        return sumsq_scalar(g, dt, n, nonfinite);
    }
}

static size_t nparts_of(const zoff_runtime *rt)
{
    return rt->layout.store.nparts;
}

/* ---- tracing helpers ------------------------------------------------------------------------ */
typedef struct trace_rec {
    zoff_runtime *rt;
    uint64_t start_ns;
    size_t part, bytes;
} trace_rec;

static void h2d_done_cb(void *arg)
{
    trace_rec *tr = arg;
    char args[96];
    snprintf(args, sizeof args, "{\"part\":%zu,\"bytes\":%zu}", tr->part, tr->bytes);
    zztrace_event(tr->rt->trace, tr->rt->tr_h2d, "h2d", tr->start_ns, zoff__now_ns(), args);
    free(tr);
}

/* ---- the update ---------------------------------------------------------------------------- */
/* One tile: Adam over [e0, e0+n) of param q (pn: partition pointers at element `se`), then the
 * 16-bit result goes to the hold buffer or, through a staging tile, to the device. */
static zoff_status hold_tile_done(zoff_runtime *rt, zrt_param *q);

static zoff_status update_tile(zoff_runtime *rt, zrt_update *u, zrt_param *q,
                               const zstore_part *part, size_t e0, size_t se, size_t n,
                               size_t tile_idx)
{
    zadam_tensor t = part->view;
    zstate_offset(&t, se);
    t.n = n;
    if (u->grads_f32) { /* fp32 of the owned range: accumulated sums, or several ranks'
                         * averaged gradients */
        t.grad = u->grads_f32 + (q->flat_off + e0 - rt->own_begin);
        t.grad_dtype = ZOFF_DTYPE_F32;
    } else {
        t.grad = u->grads + q->buf_off + e0 * q->esize;
        t.grad_dtype = q->dtype;
    }
    t.param_out = NULL;
    t.out_dtype = q->dtype;
    int slot = -1;
    if (u->to_hold) {
        if (tile_idx >= rt->ntiles || rt->tiles[tile_idx].param != (int)(q - rt->params) ||
            rt->tiles[tile_idx].e0 != e0)
            return zoff__err(ZOFF_EINTERNAL, "update: tile %zu out of step with the tile list",
                             tile_idx);
        ZOFF_CHECK(zdev_event_sync(rt->dev, rt->tiles[tile_idx].ev));
        t.param_out = rt->hold + q->buf_off + e0 * q->esize;
    } else if (q->streamed) {
        /* the host copy is the tile target: a fetch uploads it from there */
        ZOFF_CHECK(zrt_stream_host_wait(rt, q));
        t.param_out = q->host16 + e0 * q->esize;
    } else if (q->dtype == ZOFF_DTYPE_F32 && part->resident) {
        t.param_out = NULL; /* the fp32 master itself is uploaded */
    } else {
        slot = (int)(rt->stage_next++ % ZRT_NSTAGE);
        ZOFF_CHECK(zdev_event_sync(rt->dev, rt->stage_ev[slot]));
        t.param_out = rt->stage[slot];
    }
    size_t nf = 0;
    zadam_hparams hp = u->hp[q->group];
    hp.step = q->upd_step; /* the parameter's own step count, as torch */
    uint64_t a0 = zoff__now_ns();
    ZOFF_CHECK(zadam_step(rt->adam, &hp, &t, &nf));
    u->adam_ns += zoff__now_ns() - a0;
    u->adam_bytes +=
        (uint64_t)((double)n * zopt_bytes_per_elem((zopt_kind)rt->cfg.optimizer_type,
                                                   (zstate_fmt)rt->cfg.state_format, t.grad_dtype,
                                                   t.param_out != NULL, q->dtype));
    if (u->to_hold) return hold_tile_done(rt, q);
    if (q->streamed) return ZOFF_OK;
    const void *src = t.param_out ? t.param_out : (const void *)t.param;
    if (rt->pgather) /* several ranks: this rank's part of the all-gather */
        memcpy(rt->pgather + q->buf_off + e0 * q->esize, src, n * q->esize);
    uint8_t *dst = (uint8_t *)q->dev_param + e0 * q->esize;
    ZOFF_CHECK(zdev_memcpy_h2d(rt->dev, dst, src, n * q->esize, rt->h2d));
    if (slot >= 0) ZOFF_CHECK(zdev_event_record(rt->dev, rt->stage_ev[slot], rt->h2d));
    u->h2d_bytes += n * q->esize;
    atomic_fetch_add(&rt->own_h2d_bytes, (uint64_t)(n * q->esize));
    return ZOFF_OK;
}

/* 1 when this update leaves param q untouched: no gradient this step, or (eager) a non-finite
 * one. */
static int param_skipped(const zrt_update *u, const zrt_param *q)
{
    return q->upd_skip || (u->skip_nonfinite && q->nonfinite);
}

/* 1 when partition k holds a param this update changes (the others are not read or written:
 * with the nvme tier a partition of frozen params costs no I/O). */
static int part_active(const zoff_runtime *rt, const zrt_update *u, size_t k)
{
    uint64_t pb = rt->own_begin + zstore_part_begin(rt->store, k);
    uint64_t pe = pb + zstore_part_numel(rt->store, k);
    for (int q = rt->part_first_param[k]; q >= 0 && q < rt->nparams; q++) {
        const zrt_param *p = &rt->params[q];
        if (p->flat_off >= pe) break;
        if (!param_skipped(u, p)) return 1;
    }
    return 0;
}

static zoff_status run_update_impl(zoff_runtime *rt, zrt_update *u, const size_t *order, size_t n)
{
    zoff_status st = ZOFF_OK;
    size_t tile = rt->cfg.tile_numel;
    size_t tile_idx = 0;
    zstore_stats s0;
    zstore_get_stats(rt->store, &s0);
    size_t *filtered = malloc((n ? n : 1) * sizeof *filtered);
    if (!filtered) return zoff__err(-ENOMEM, "update: out of memory");
    size_t nactive = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = order ? order[i] : i;
        if (part_active(rt, u, k)) filtered[nactive++] = k;
    }
    order = filtered;
    n = nactive;
    u->parts_done += n;
    ZOFF_CHECK_GOTO(zstore_pass_begin(rt->store, order, n, ZSTORE_READ | ZSTORE_WRITE), st, out);
    for (size_t i = 0; i < n; i++) {
        zstore_part part;
        ZOFF_CHECK_GOTO(zstore_pass_next(rt->store, &part), st, end);
        uint64_t pb = rt->own_begin + part.begin, pe = pb + part.numel;
        uint64_t t_part = zoff__now_ns();
        uint64_t h2d0 = u->h2d_bytes;
        if (u->to_hold) tile_idx = rt->part_tile_base[part.index];
        for (int qi = rt->part_first_param[part.index]; qi >= 0 && qi < rt->nparams; qi++) {
            zrt_param *q = &rt->params[qi];
            if (q->flat_off >= pe) break;
            uint64_t lo = ZOFF_MAX(q->flat_off, pb), hi = ZOFF_MIN(q->flat_off + q->numel, pe);
            if (param_skipped(u, q)) { /* its tiles keep their place in the tile list */
                tile_idx += (size_t)((hi - lo + tile - 1) / tile);
                continue;
            }
            for (uint64_t e = lo; e < hi; e += tile) {
                size_t m = (size_t)ZOFF_MIN((uint64_t)tile, hi - e);
                ZOFF_CHECK_GOTO(update_tile(rt, u, q, &part, (size_t)(e - q->flat_off),
                                            (size_t)(e - pb), m, tile_idx),
                                st, end);
                tile_idx++;
            }
        }
        if (rt->trace) {
            char args[96];
            snprintf(args, sizeof args, "{\"part\":%zu,\"numel\":%zu}", part.index, part.numel);
            zztrace_event(rt->trace, rt->tr_adam, "adam", t_part, zoff__now_ns(), args);
            if (!u->to_hold && u->h2d_bytes > h2d0) {
                trace_rec *tr = malloc(sizeof *tr);
                if (tr) {
                    *tr = (trace_rec){rt, t_part, part.index, (size_t)(u->h2d_bytes - h2d0)};
                    if (zdev_host_fn(rt->dev, rt->h2d, h2d_done_cb, tr) < 0) free(tr);
                }
            }
        }
        ZOFF_CHECK_GOTO(zstore_pass_release(rt->store), st, end);
    }
end:;
    zoff_status e = zstore_pass_end(rt->store);
    if (!st) st = e;
out:
    free(filtered);
    zstore_stats s1;
    zstore_get_stats(rt->store, &s1);
    u->nvme_wait_ns += s1.wait_ns - s0.wait_ns;
    return st;
}

zoff_status zrt_run_update(zoff_runtime *rt, zrt_update *u, const size_t *order, size_t n)
{
    zoff_status st = run_update_impl(rt, u, order, n);
    if (st < 0 && u->st == ZOFF_OK) {
        u->st = st;
        snprintf(u->err, sizeof u->err, "%s", zoff__last_error_tls());
    }
    return st;
}

/* Builds the tile list of a full pass (delayed mode), in the order run_update_impl visits it. */
static zoff_status build_tiles(zoff_runtime *rt)
{
    size_t tile = rt->cfg.tile_numel, count = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t idx = 0;
        for (size_t k = 0; k < nparts_of(rt); k++) {
            if (pass == 1) rt->part_tile_base[k] = idx;
            uint64_t pb = rt->own_begin + zstore_part_begin(rt->store, k);
            uint64_t pe = pb + zstore_part_numel(rt->store, k);
            for (int qi = rt->part_first_param[k]; qi >= 0 && qi < rt->nparams; qi++) {
                const zrt_param *q = &rt->params[qi];
                if (q->flat_off >= pe) break;
                uint64_t lo = ZOFF_MAX(q->flat_off, pb), hi = ZOFF_MIN(q->flat_off + q->numel, pe);
                for (uint64_t e = lo; e < hi; e += tile) {
                    if (pass == 1) {
                        zrt_param *qq = &rt->params[qi];
                        if (qq->hold_tiles++ == 0) qq->tile_first = idx;
                        rt->tiles[idx].param = qi;
                        rt->tiles[idx].e0 = (size_t)(e - q->flat_off);
                        rt->tiles[idx].numel = (size_t)ZOFF_MIN((uint64_t)tile, hi - e);
                    }
                    idx++;
                }
            }
        }
        if (pass == 0) {
            count = idx;
            rt->tiles = calloc(count ? count : 1, sizeof *rt->tiles);
            rt->part_tile_base = calloc(nparts_of(rt) ? nparts_of(rt) : 1, sizeof(size_t));
            if (!rt->tiles || !rt->part_tile_base)
                return zoff__err(-ENOMEM, "delayed: out of memory for %zu tiles", count);
            rt->ntiles = count;
            for (int qi = 0; qi < rt->nparams; qi++) rt->params[qi].hold_tiles = 0;
        }
    }
    for (size_t i = 0; i < count; i++) ZOFF_CHECK(zdev_event_create(rt->dev, &rt->tiles[i].ev));
    return ZOFF_OK;
}

/* Delayed: queues the upload of param q's copy in the hold buffer (the params of the last
 * update), behind the work its producer had queued at grad_ready (the device no longer reads the
 * param in this step), one event per tile for the next update to wait on. hold_mu held. */
static zoff_status upload_param_hold(zoff_runtime *rt, zrt_param *q)
{
    ZOFF_CHECK(zdev_stream_wait_event(rt->dev, rt->h2d, q->ev));
    /* last tile first: the next update visits partitions last to first */
    for (size_t j = q->hold_tiles; j-- > 0;) {
        const zrt_tile *t = &rt->tiles[q->tile_first + j];
        size_t off = t->e0 * q->esize, bytes = t->numel * q->esize;
        ZOFF_CHECK(zdev_memcpy_h2d(rt->dev, (uint8_t *)q->dev_param + off,
                                   rt->hold + q->buf_off + off, bytes, rt->h2d));
        ZOFF_CHECK(zdev_event_record(rt->dev, t->ev, rt->h2d));
        atomic_fetch_add(&rt->own_h2d_bytes, (uint64_t)bytes);
    }
    return ZOFF_OK;
}

/* Update thread, after each tile written to the hold buffer: once all of q's tiles are there and
 * its next gradient was declared, its upload goes out now (during backward). */
static zoff_status hold_tile_done(zoff_runtime *rt, zrt_param *q)
{
    if (--q->hold_left > 0) return ZOFF_OK;
    zoff_status st = ZOFF_OK;
    pthread_mutex_lock(&rt->hold_mu);
    q->hold_ready = 1;
    if (q->hold_declared && !q->hold_uploaded) {
        q->hold_uploaded = 1;
        st = upload_param_hold(rt, q);
    }
    pthread_mutex_unlock(&rt->hold_mu);
    return st;
}

/* Trainer thread, zoff_grad_ready of param q in delayed mode. */
static zoff_status hold_declared(zoff_runtime *rt, zrt_param *q)
{
    zoff_status st = ZOFF_OK;
    pthread_mutex_lock(&rt->hold_mu);
    q->hold_declared = 1;
    if (q->hold_ready && !q->hold_uploaded) {
        q->hold_uploaded = 1;
        st = upload_param_hold(rt, q);
    }
    pthread_mutex_unlock(&rt->hold_mu);
    return st;
}

/* zoff_step, after the last update finished: whatever is not uploaded yet goes now; the event
 * params_ready waits on follows the last upload. */
static zoff_status hold_flush(zoff_runtime *rt)
{
    zoff_status st = ZOFF_OK;
    if (!rt->hold_active) return ZOFF_OK;
    pthread_mutex_lock(&rt->hold_mu);
    for (int i = rt->nparams - 1; i >= 0 && st == ZOFF_OK; i--) { /* the next update's order */
        zrt_param *q = &rt->params[i];
        if (q->hold_uploaded) continue;
        q->hold_uploaded = 1;
        st = upload_param_hold(rt, q);
    }
    pthread_mutex_unlock(&rt->hold_mu);
    if (st == ZOFF_OK) st = zdev_event_record(rt->dev, rt->params_ev, rt->h2d);
    rt->hold_active = 0;
    return st;
}

/* Before launching a delayed update: every param's hold copy is about to be rewritten. */
static void hold_arm(zoff_runtime *rt)
{
    pthread_mutex_lock(&rt->hold_mu);
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *q = &rt->params[i];
        q->hold_declared = 0;
        if (q->upd_skip) { /* not updated: the device already has its current values */
            q->hold_left = 0;
            q->hold_ready = q->hold_uploaded = 1;
        } else {
            q->hold_left = q->hold_tiles;
            q->hold_ready = q->hold_uploaded = 0;
        }
    }
    pthread_mutex_unlock(&rt->hold_mu);
    rt->hold_active = 1;
}

void zrt_drop_hold(zoff_runtime *rt)
{
    rt->hold_active = 0;
}

void zrt_hold_restore(zoff_runtime *rt)
{
    pthread_mutex_lock(&rt->hold_mu);
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *q = &rt->params[i];
        q->hold_left = 0;
        q->hold_ready = 1;
        q->hold_declared = q->hold_uploaded = 0;
    }
    pthread_mutex_unlock(&rt->hold_mu);
    rt->hold_active = 1;
}

/* ---- gradients ----------------------------------------------------------------------------- */
static void eager_job(void *arg)
{
    zoff_runtime *rt = arg;
    pthread_mutex_lock(&rt->eager_mu);
    size_t n = rt->nready;
    memcpy(rt->eager_batch, rt->ready, n * sizeof *rt->ready);
    rt->nready = 0;
    pthread_mutex_unlock(&rt->eager_mu);
    if (n == 0 || rt->eager_upd.st < 0) return;
    (void)zrt_run_update(rt, &rt->eager_upd, rt->eager_batch, n);
}

/* Eager: param p's gradient is in the buffer (or zeroed); partitions it completes become ready. */
static void eager_landed(zoff_runtime *rt, const zrt_param *p)
{
    int push = 0;
    pthread_mutex_lock(&rt->eager_mu);
    for (size_t k = p->part_first; k <= p->part_last; k++) {
        if (--rt->part_pending[k] == 0) {
            rt->ready[rt->nready++] = k;
            push = 1;
        }
    }
    pthread_mutex_unlock(&rt->eager_mu);
    if (push && zrt_worker_push(&rt->updw, eager_job, rt) < 0) eager_job(rt);
}

static void eager_arm(zoff_runtime *rt)
{
    update_prepare(rt, &rt->eager_upd, rt->step + 1, 1.0f, rt->grad_buf[0], 0, 1);
    for (int i = 0; i < rt->nparams; i++) { /* undeclared ones are marked by zoff_step */
        rt->params[i].upd_skip = 0;
        rt->params[i].upd_step = rt->params[i].step + 1;
    }
    pthread_mutex_lock(&rt->eager_mu);
    for (size_t k = 0; k < nparts_of(rt); k++) rt->part_pending[k] = rt->part_nparams[k];
    rt->nready = 0;
    pthread_mutex_unlock(&rt->eager_mu);
    rt->eager_armed = 1;
}

/* Grad worker: the sum of squares of a landed gradient. */
static void grad_job(void *arg)
{
    zrt_param *p = arg;
    zoff_runtime *rt = p->rt;
    uint64_t t0 = zoff__now_ns();
    size_t nf = 0;
    unsigned k = p->land_seq++ & 1u;
    const void *dst = p->dst_ring[k];
    int first = p->flag_ring[k] & 1, last = (p->flag_ring[k] & 2) != 0;
    if (rt->accum > 1) {
        /* add this micro-batch into the window's fp32 sums; at the window's end the norm and
         * the overflow check read the sums (inf/NaN of any micro-batch survive the adds) */
        float *a = rt->acc[rt->acc_cur] + p->flat_off;
        zadam_accum(zadam_ctx_isa(rt->adam), a, dst, p->dtype, p->numel, first);
        if (last) {
            p->sumsq = sumsq_isa(rt, a, ZOFF_DTYPE_F32, p->numel, &nf);
            p->nonfinite = nf;
        }
    } else {
        p->sumsq = sumsq_isa(rt, dst, p->dtype, p->numel, &nf);
        p->nonfinite = nf;
    }
    if (rt->trace) {
        char args[64];
        snprintf(args, sizeof args, "{\"numel\":%zu}", p->numel);
        zztrace_event(rt->trace, rt->tr_grads, p->name, t0, zoff__now_ns(), args);
    }
    if (rt->overlap == ZOFF_OVERLAP_EAGER && last) eager_landed(rt, p);
    pthread_mutex_lock(&rt->land_mu);
    rt->landed_total++;
    pthread_cond_broadcast(&rt->land_cv);
    pthread_mutex_unlock(&rt->land_mu);
}

/* Host function on the D2H stream right after a gradient's copy: hands it to the grad worker. */
static void land_cb(void *arg)
{
    zrt_param *p = arg;
    zoff_runtime *rt = p->rt;
    if (rt->trace) {
        uint64_t now = zoff__now_ns();
        uint64_t start = ZOFF_MAX(p->issue_ns, rt->last_land_ns);
        char args[64];
        snprintf(args, sizeof args, "{\"bytes\":%zu}", p->numel * p->esize);
        zztrace_event(rt->trace, rt->tr_d2h, p->name, start, now, args);
        rt->last_land_ns = now;
    }
    if (zrt_worker_push(&rt->gradw, grad_job, p) < 0) grad_job(p);
}

/* The trainer's stream no longer reads param p in this window: the delayed update's copy of p may
 * go up (only in the window's last micro-batch: every micro-batch of a window sees the same
 * params). */
static zoff_status after_declared(zoff_runtime *rt, zrt_param *p)
{
    if (rt->hold_active && rt->acc_last) {
        zoff_status st = hold_declared(rt, p);
        if (st < 0) return zrt_break(rt, st);
    }
    return ZOFF_OK;
}

/* Records where p's gradient just handed over lands, for its grad-worker job. */
static void note_dst(zoff_runtime *rt, zrt_param *p, void *dst)
{
    unsigned k = p->push_seq++ & 1u;
    p->dst_ring[k] = dst;
    p->flag_ring[k] = (uint8_t)((rt->acc_first ? 1 : 0) | (rt->acc_last ? 2 : 0));
}

/* Blocks until `total` gradients have been handed to the grad worker and processed. */
static void wait_landed(zoff_runtime *rt, uint64_t total)
{
    pthread_mutex_lock(&rt->land_mu);
    while (rt->landed_total < total) pthread_cond_wait(&rt->land_cv, &rt->land_mu);
    pthread_mutex_unlock(&rt->land_mu);
}

zoff_status zrt_grad_ready(zoff_runtime *rt, int id, zoff_stream producer)
{
    zrt_param *p = &rt->params[id];
    if (!p->dev_grad)
        return zoff__err(ZOFF_EINVAL,
                         "zoff_grad_ready('%s', id %d): the parameter was registered without "
                         "dev_grad (bucket mode): hand its gradient over with zoff_grad_push",
                         p->name, id);
    if (p->declared)
        return zoff__err(ZOFF_ESTATE,
                         "zoff_grad_ready: the gradient of '%s' (id %d) was already declared in "
                         "this step (each parameter at most once per step)",
                         p->name, id);
    if (rt->declared_count == 0 && rt->overlap == ZOFF_OVERLAP_EAGER && !rt->eager_armed)
        eager_arm(rt);
    if (producer) {
        ZOFF_CHECK(zdev_event_record(rt->dev, p->ev, (zdev_stream *)producer));
        ZOFF_CHECK(zdev_stream_wait_event(rt->dev, rt->d2h, p->ev));
    }
    void *dst = rt->grad_buf[rt->grad_cur] + p->buf_off;
    p->issue_ns = zoff__now_ns();
    ZOFF_CHECK(zdev_memcpy_d2h(rt->dev, dst, p->dev_grad, p->numel * p->esize, rt->d2h));
    rt->full_declared = 1;
    note_dst(rt, p, dst);
    atomic_fetch_add(&rt->own_d2h_bytes, (uint64_t)(p->numel * p->esize));
    p->declared = p->win_declared = 1;
    rt->declared_count++;
    rt->declared_total++;
    zoff_status st = zdev_host_fn(rt->dev, rt->d2h, land_cb, p);
    if (st < 0) return zrt_break(rt, st); /* a copy is in flight that nobody will account for */
    return after_declared(rt, p);
}

zoff_status zrt_grad_push(zoff_runtime *rt, int id, const void *dev_src, size_t numel,
                          zoff_dtype dtype, zoff_stream producer)
{
    zrt_param *p = &rt->params[id];
    if (p->dev_grad)
        return zoff__err(ZOFF_EINVAL,
                         "zoff_grad_push('%s', id %d): the parameter was registered with its own "
                         "dev_grad buffer: declare it with zoff_grad_ready (or register it with "
                         "dev_grad NULL to use zoff's buckets)",
                         p->name, id);
    if (p->declared)
        return zoff__err(ZOFF_ESTATE,
                         "zoff_grad_push: the gradient of '%s' (id %d) was already handed over in "
                         "this micro-batch (each parameter at most once per zoff_step)",
                         p->name, id);
    if (numel != p->numel || dtype != p->dtype)
        return zoff__err(ZOFF_EINVAL,
                         "zoff_grad_push('%s', id %d): got %zu elements of %s, the parameter has "
                         "%zu of %s",
                         p->name, id, numel, zoff_dtype_name(dtype), p->numel,
                         zoff_dtype_name(p->dtype));
    if (!dev_src)
        return zoff__err(ZOFF_EINVAL, "zoff_grad_push('%s', id %d): dev_src is NULL", p->name, id);
    size_t bytes = p->numel * p->esize;
    char what[320];
    snprintf(what, sizeof what, "zoff_grad_push('%.200s', id %d)", p->name, id);
    ZOFF_CHECK(zdev_check_range(rt->dev, dev_src, bytes, what));
    if (rt->declared_count == 0 && rt->overlap == ZOFF_OVERLAP_EAGER && !rt->eager_armed)
        eager_arm(rt);
    zdev_stream *s = producer ? (zdev_stream *)producer : rt->push_s;
    void *dst = rt->grad_buf[rt->grad_cur] + p->buf_off;
    p->issue_ns = zoff__now_ns();
    note_dst(rt, p, dst); /* before the push: its landing callback may run at once */
    /* several ranks reducing on the device: the bucket's drain moves this rank's share into
     * gshard itself (and counts those bytes) */
    void (*landed)(void *) = rt->bk_reduce ? zrt_shard_landed_fn(rt) : land_cb;
    if (rt->bk_reduce) zrt_shard_note_push(rt, id);
    zrt_span *sp = NULL;
    zoff_status st = zrt_trace_span_begin(rt, s, "push", &sp);
    if (st == ZOFF_OK) st = zbk_push(&rt->bk, dev_src, bytes, p->esize, s, dst, landed, p);
    if (st == ZOFF_OK) st = zrt_trace_span_end(rt, s, sp);
    if (st == ZOFF_OK) st = zdev_event_record(rt->dev, p->ev, s);
    if (st < 0) return zrt_break(rt, st); /* copies may be queued: their accounting is lost */
    if (!rt->bk_reduce) atomic_fetch_add(&rt->own_d2h_bytes, (uint64_t)bytes);
    p->declared = p->win_declared = 1;
    rt->declared_count++;
    rt->declared_total++;
    if (rt->declared_count == rt->nparams) { /* the micro-batch is complete: send the rest */
        st = zbk_flush(&rt->bk);
        if (st < 0) return zrt_break(rt, st);
    }
    if (!producer) {
        st = zdev_event_sync(rt->dev, p->ev); /* dev_src was read when this returns */
        if (st < 0) return zrt_break(rt, st);
    }
    return after_declared(rt, p);
}

/* ---- step ---------------------------------------------------------------------------------- */
static zoff_status finish_delayed(zoff_runtime *rt)
{
    if (!rt->delayed_running) return ZOFF_OK;
    zrt_worker_wait_idle(&rt->updw);
    rt->delayed_running = 0;
    if (rt->delayed_upd.st < 0) {
        zoff__err(rt->delayed_upd.st, "%s", rt->delayed_upd.err);
        return zrt_break(rt, rt->delayed_upd.st);
    }
    rt->delayed_unreported = 1;
    return ZOFF_OK;
}

zoff_status zrt_drain(zoff_runtime *rt)
{
    if (rt->state == ZRT_CREATED) return ZOFF_OK;
    zoff_status st = finish_delayed(rt);
    zrt_worker_wait_idle(&rt->updw);
    return st;
}

/* Partitions last to first: backward declares gradients from the last layer to the first, so
 * the params whose next gradient is declared first are updated (and uploaded) first. */
static void delayed_job(void *arg)
{
    zoff_runtime *rt = arg;
    size_t n = nparts_of(rt);
    for (size_t i = 0; i < n; i++) rt->eager_batch[i] = n - 1 - i;
    (void)zrt_run_update(rt, &rt->delayed_upd, rt->eager_batch, n);
}

static zoff_status sync_uploads(zoff_runtime *rt)
{
    ZOFF_CHECK(zdev_event_record(rt->dev, rt->params_ev, rt->h2d));
    return zdev_event_sync(rt->dev, rt->params_ev);
}

/* Sync/delayed: which params the update about to start changes, and with which step count. */
static int update_select(zoff_runtime *rt)
{
    int n = 0;
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        p->upd_skip = !p->win_declared && !rt->zero_missing;
        p->upd_step = p->step + 1;
        n += !p->upd_skip;
    }
    return n;
}

/* After an update was applied (sync, eager) or launched (delayed): the step counts of the
 * params it changed advance. Returns how many it changed. */
static int update_commit(zoff_runtime *rt, int skip_nonfinite)
{
    int n = 0;
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        if (p->upd_skip || (skip_nonfinite && p->nonfinite)) continue;
        p->step = p->upd_step;
        n++;
    }
    return n;
}

/* Names of the first params with a non-finite gradient ("a, b, c and 4 more"). */
static void nonfinite_names(const zoff_runtime *rt, char *out, size_t len)
{
    size_t used = 0;
    int listed = 0, more = 0;
    out[0] = '\0';
    for (int i = 0; i < rt->nparams; i++) {
        const zrt_param *p = &rt->params[i];
        if (!p->nonfinite) continue;
        if (listed == 3) {
            more++;
            continue;
        }
        int k = snprintf(out + used, len - used, "%s'%s' (%zu of %zu elements)", listed ? ", " : "",
                         p->name, p->nonfinite, p->numel);
        if (k > 0) used = ZOFF_MIN(len - 1, used + (size_t)k);
        listed++;
    }
    if (more) snprintf(out + used, len - used, " and %d more", more);
}

/* Forgets this step's declared gradients (zoff_grads_discard). */
zoff_status zrt_grads_discard(zoff_runtime *rt)
{
    if (rt->declared_count == 0) return ZOFF_OK;
    if (rt->accum > 1)
        return zoff__err(ZOFF_ESTATE,
                         "zoff_grads_discard with gradient_accumulation_steps %d: the %d "
                         "gradient(s) of this micro-batch are being added to the window's sums as "
                         "they land and cannot be taken out (finish the micro-batch with "
                         "zoff_step)",
                         rt->accum, rt->declared_count);
    zoff_status fst = zbk_flush(&rt->bk); /* the partial bucket must land before we forget it */
    if (fst < 0) return zrt_break(rt, fst);
    wait_landed(rt, rt->declared_total);
    if (rt->overlap == ZOFF_OVERLAP_EAGER && rt->eager_armed) {
        zrt_worker_wait_idle(&rt->updw);
        if (rt->eager_upd.parts_done > 0)
            return zoff__err(ZOFF_ESTATE,
                             "zoff_grads_discard: overlap eager already updated %zu partition(s) "
                             "with this step's gradients; that cannot be undone (zoff_step "
                             "completes the step)",
                             rt->eager_upd.parts_done);
        if (rt->eager_upd.st < 0) {
            zoff__err(rt->eager_upd.st, "%s", rt->eager_upd.err);
            return zrt_break(rt, rt->eager_upd.st);
        }
        rt->eager_armed = 0; /* the next grad_ready re-arms the readiness counters */
    }
    for (int i = 0; i < rt->nparams; i++) rt->params[i].declared = rt->params[i].win_declared = 0;
    ZOFF_INFO(ZOFF_SUB_STEP, "discarded %d declared gradient(s) of step %lld", rt->declared_count,
              (long long)(rt->step + 1));
    rt->declared_count = 0;
    rt->push_hash = 0; /* several ranks: every rank discards (its buckets were reduced) */
    rt->bk_seq = 0;
    return ZOFF_OK;
}

zoff_status zrt_step(zoff_runtime *rt, int flags, zoff_step_result *r)
{
    zoff_status st = ZOFF_OK;
    uint64_t t0 = zoff__now_ns();
    uint8_t *buf = rt->grad_buf[rt->grad_cur];
    int eager = rt->overlap == ZOFF_OVERLAP_EAGER;
    int boundary = rt->acc_last;
    rt->zero_missing = (flags & ZOFF_STEP_ZERO_MISSING_GRADS) != 0;
    if (eager && !rt->eager_armed) eager_arm(rt);

    /* the last, partial bucket of this micro-batch goes down now */
    st = zbk_flush(&rt->bk);
    if (st < 0) return zrt_break(rt, st);

    /* parameters without a gradient this step: skipped, or a zero gradient when asked for.
     * Accumulation: nothing is added for this micro-batch (the window's sum starts at zero);
     * at the boundary a parameter no micro-batch of the window declared counts as without. */
    int without = 0;
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        if (p->declared) continue;
        if (rt->accum > 1) {
            float *a = rt->acc[rt->acc_cur] + p->flat_off;
            /* no job of p is pending: it was not declared in this window's first micro-batch */
            if (rt->acc_first) memset(a, 0, p->numel * sizeof(float));
            if (boundary && !p->win_declared && !rt->zero_missing) without++;
            continue;
        }
        if (rt->zero_missing)
            memset(buf + p->buf_off, 0, p->numel * p->esize);
        else
            without++;
        p->sumsq = 0.0;
        p->nonfinite = 0;
        if (eager) {
            p->upd_skip = !rt->zero_missing;
            eager_landed(rt, p);
        }
    }
    /* a micro-batch before the window's last returns once the previous one was added (its
     * landing buffer is the one the next micro-batch's copies reuse: two alternate), without
     * waiting for its own copies; the boundary waits for everything, and so does a micro-batch
     * with full-buffer gradients (zoff_grad_ready: the trainer may rewrite dev_grad once
     * zoff_step returned, so its copies must be done) */
    wait_landed(rt, boundary || rt->full_declared ? rt->declared_total : rt->prev_micro_total);
    rt->full_declared = 0;
    rt->prev_micro_total = rt->declared_total;
    uint64_t t_grads = zoff__now_ns() - t0;
    if (boundary && rt->accum > 1) /* sums of the params the last micro-batch did not declare */
        for (int i = 0; i < rt->nparams; i++) {
            zrt_param *p = &rt->params[i];
            if (p->declared) continue;
            size_t nf = 0;
            float *a = rt->acc[rt->acc_cur] + p->flat_off;
            p->sumsq = p->win_declared ? sumsq_isa(rt, a, ZOFF_DTYPE_F32, p->numel, &nf) : 0;
            p->nonfinite = nf;
        }

    if (!boundary) { /* a micro-batch of the window: summed, no update */
        rt->micro++;
        rt->acc_first = 0;
        rt->acc_last = rt->micro == rt->accum - 1;
        rt->grad_cur ^= 1; /* K > 1: two landing buffers, alternating per micro-batch */
        for (int i = 0; i < rt->nparams; i++) rt->params[i].declared = 0;
        rt->declared_count = 0;
        rt->stats.micro_steps++;
        uint64_t ns = zoff__now_ns() - t0;
        memset(r, 0, sizeof *r);
        r->step = rt->step;
        r->accumulating = 1;
        r->micro_step = rt->micro;
        r->grad_norm = NAN;
        r->clip_coef = 1.0;
        r->loss_scale = rt->scaler.scale;
        r->step_ms = zoff__ns_to_ms(ns);
        r->wait_grads_ms = zoff__ns_to_ms(t_grads);
        return ZOFF_OK;
    }

    ZOFF_CHECK(finish_delayed(rt));
    if (rt->accum > 1) buf = (uint8_t *)rt->acc[rt->acc_cur];

    double ss = 0.0;
    size_t nf = 0;
    int nf_params = 0;
    if (rt->nranks > 1) { /* reduce over the ranks, agree on norm and overflow (shard.c) */
        st = zrt_shard_grads(rt, buf, &ss, &nf, &nf_params);
        if (st < 0) return zrt_break(rt, st);
    } else {
        for (int i = 0; i < rt->nparams; i++) { /* in param order: deterministic */
            ss += rt->params[i].sumsq;
            nf += rt->params[i].nonfinite;
            nf_params += rt->params[i].nonfinite > 0;
        }
    }
    float scale = rt->scaler.scale;
    int overflow = nf > 0;
    /* the mean over the window's micro-batches (DeepSpeed divides the loss by K) */
    double denom = (double)scale * (double)rt->accum;
    double norm = sqrt(ss) / denom;
    if (overflow && isfinite(norm)) norm = INFINITY;
    double clip = 1.0;
    double max_norm = rt->cfg.gradient_clipping;
    if (!overflow && max_norm > 0.0 && norm > max_norm) clip = max_norm / (norm + 1e-6);
    float grad_scale = (float)(clip / denom);

    zrt_update local;
    const zrt_update *report = NULL;
    int skip = 0, updated = 0;
    if (eager) {
        zrt_worker_wait_idle(&rt->updw);
        if (rt->eager_upd.st < 0) {
            zoff__err(rt->eager_upd.st, "%s", rt->eager_upd.err);
            return zrt_break(rt, rt->eager_upd.st);
        }
        st = sync_uploads(rt);
        if (st < 0) return zrt_break(rt, st);
        report = &rt->eager_upd;
        updated = update_commit(rt, 1);
        /* skipped only when a non-finite gradient left nothing to update */
        skip = overflow && updated == 0;
        if (!skip) rt->step++;
    } else {
        skip = zrt_scaler_update(&rt->scaler, overflow);
        int delayed_now = rt->overlap == ZOFF_OVERLAP_DELAYED &&
                          rt->sync_steps_done >= rt->cfg.delayed_warmup_steps;
        if (rt->delayed_unreported) {
            local = rt->delayed_upd;
            report = &local;
            rt->delayed_unreported = 0;
        }
        st = hold_flush(rt); /* the params of the last delayed update not yet uploaded */
        if (st < 0) return zrt_break(rt, st);
        if (!skip) update_select(rt);
        if (!skip && delayed_now) {
            update_prepare(rt, &rt->delayed_upd, rt->step + 1, grad_scale, buf, 1, 0);
            hold_arm(rt);
            updated = update_commit(rt, 0); /* launched: it completes or the runtime breaks */
            st = zrt_worker_push(&rt->updw, delayed_job, rt);
            if (st < 0) return zrt_break(rt, st);
            rt->delayed_running = 1;
            rt->grad_cur ^= rt->layout.ngrad_bufs > 1 ? 1 : 0;
            rt->acc_cur ^= rt->layout.nacc_bufs > 1 ? 1 : 0;
            rt->step++;
        } else if (!skip) {
            update_prepare(rt, &local, rt->step + 1, grad_scale, buf, 0, 0);
            if (rt->nranks > 1) local.grads_f32 = rt->gshard;
            st = zrt_run_update(rt, &local, NULL, nparts_of(rt));
            if (st == ZOFF_OK && rt->nranks > 1) st = zrt_shard_gather(rt);
            if (st == ZOFF_OK) st = sync_uploads(rt);
            if (st < 0) return zrt_break(rt, st);
            report = &local;
            updated = update_commit(rt, 0);
            rt->step++;
        }
    }
    rt->sync_steps_done++;
    if (rt->nunits) {
        st = zrt_stream_step_end(rt, report != NULL && !skip);
        if (st < 0) return zrt_break(rt, st);
    }

    if (nf_params > 0) {
        char names[512];
        nonfinite_names(rt, names, sizeof names);
        if (eager)
            ZOFF_WARN(ZOFF_SUB_STEP,
                      "step %lld: non-finite gradient (inf/NaN) in %d parameter(s): %s; overlap "
                      "eager left them untouched and updated %d other(s)%s",
                      (long long)(rt->step + (skip ? 1 : 0)), nf_params, names, updated,
                      skip ? ": nothing updated, the step is skipped" : "");
        else if (rt->scaler.dynamic) /* how dynamic loss scaling finds its scale */
            ZOFF_INFO(ZOFF_SUB_STEP,
                      "step %lld skipped: fp16 overflow (inf/NaN) in %d parameter gradient(s): "
                      "%s; no parameter changed, loss scale now %.9g",
                      (long long)(rt->step + 1), nf_params, names, (double)rt->scaler.scale);
        else
            ZOFF_WARN(ZOFF_SUB_STEP,
                      "step %lld skipped: non-finite gradient (inf/NaN) in %d parameter(s): %s; "
                      "no parameter changed",
                      (long long)(rt->step + 1), nf_params, names);
    }

    /* the next step starts clean */
    for (int i = 0; i < rt->nparams; i++) rt->params[i].declared = rt->params[i].win_declared = 0;
    rt->declared_count = 0;
    rt->eager_armed = 0;
    rt->micro = 0;
    rt->acc_first = 1;
    rt->acc_last = rt->accum == 1;
    rt->stats.micro_steps++;

    uint64_t step_ns = zoff__now_ns() - t0;
    zrt_stats_step_end(rt, report, step_ns);
    if (skip) rt->stats.skipped_steps++;
    rt->stats.nonfinite_steps += nf_params > 0;
    rt->stats.nonfinite_grads += nf_params;
    rt->stats.missing_grads += without;
    r->step = rt->step;
    r->skipped = skip;
    r->overflow = overflow;
    r->grad_norm = norm;
    r->clip_coef = clip;
    r->loss_scale = rt->scaler.scale;
    r->step_ms = zoff__ns_to_ms(step_ns);
    r->adam_ms = report ? zoff__ns_to_ms(report->adam_ns) : 0.0;
    r->wait_grads_ms = zoff__ns_to_ms(t_grads);
    r->nvme_wait_ms = report ? zoff__ns_to_ms(report->nvme_wait_ns) : 0.0;
    r->params_updated = updated;
    r->params_without_grad = without;
    r->params_nonfinite = nf_params;
    r->accumulating = 0;
    r->micro_step = 0;
    if (rt->trace) {
        char args[128];
        snprintf(args, sizeof args, "{\"step\":%lld,\"skipped\":%d,\"norm\":%.6g}",
                 (long long)rt->step, skip, isfinite(norm) ? norm : -1.0);
        zztrace_event(rt->trace, rt->tr_step, "zoff_step", t0, t0 + step_ns, args);
    }
    if (!eager && zrt_scaler_diverged(&rt->scaler))
        return zoff__err(ZOFF_EDIVERGED,
                         "zoff_step: training diverged: the gradients overflowed (inf/NaN) in %d "
                         "consecutive steps with the loss scale already at its minimum %g "
                         "(fp16.min_loss_scale), so no loss scale makes them finite; the model "
                         "or the optimizer state is broken (lr too high, or corrupted state: "
                         "resume from the last checkpoint with a lower lr). Limit: "
                         "zoff.min_scale_overflow_limit %d",
                         rt->scaler.at_min, (double)rt->scaler.min_scale, rt->scaler.at_min_limit);
    return ZOFF_OK;
}

/* ---- params_ready ---------------------------------------------------------------------------- */
static void wait_begin_cb(void *arg)
{
    zoff_runtime *rt = arg;
    atomic_store(&rt->wait_begin_ns, zoff__now_ns());
}

static void wait_end_cb(void *arg)
{
    zoff_runtime *rt = arg;
    atomic_store(&rt->wait_end_ns, zoff__now_ns());
}

zoff_status zrt_params_ready(zoff_runtime *rt, zoff_stream consumer)
{
    if (!consumer) {
        uint64_t t0 = zoff__now_ns();
        ZOFF_CHECK(zdev_event_sync(rt->dev, rt->params_ev));
        rt->wait_block_ms = zoff__ns_to_ms(zoff__now_ns() - t0);
        atomic_store(&rt->wait_begin_ns, 0);
        atomic_store(&rt->wait_end_ns, 0);
        return ZOFF_OK;
    }
    zdev_stream *s = (zdev_stream *)consumer;
    rt->wait_block_ms = 0.0;
    ZOFF_CHECK(zdev_host_fn(rt->dev, s, wait_begin_cb, rt));
    ZOFF_CHECK(zdev_stream_wait_event(rt->dev, s, rt->params_ev));
    ZOFF_CHECK(zdev_host_fn(rt->dev, s, wait_end_cb, rt));
    return ZOFF_OK;
}

/* ---- direct uploads (set_state, load) ----------------------------------------------------- */
zoff_status zrt_upload_master(zoff_runtime *rt, const zrt_param *p, size_t e0, const float *master,
                              size_t n)
{
    if (p->streamed) return zrt_stream_write_host(rt, p, e0, master, n);
    size_t chunk = rt->layout.stage_bytes / p->esize;
    int last = -1;
    for (size_t done = 0; done < n; done += chunk) {
        size_t m = ZOFF_MIN(chunk, n - done);
        int slot = (int)(rt->stage_next++ % ZRT_NSTAGE);
        ZOFF_CHECK(zdev_event_sync(rt->dev, rt->stage_ev[slot]));
        uint16_t *h = (uint16_t *)rt->stage[slot];
        const float *src = master + done;
        if (p->dtype == ZOFF_DTYPE_F32)
            memcpy(rt->stage[slot], src, m * sizeof(float));
        else if (p->dtype == ZOFF_DTYPE_F16)
            for (size_t i = 0; i < m; i++) h[i] = zoff_f32_to_f16(src[i]);
        else
            for (size_t i = 0; i < m; i++) h[i] = zoff_f32_to_bf16(src[i]);
        if (rt->hold_active) /* delayed: the pending upload must carry the new values too */
            memcpy(rt->hold + p->buf_off + (e0 + done) * p->esize, rt->stage[slot], m * p->esize);
        ZOFF_CHECK(zdev_memcpy_h2d(rt->dev, (uint8_t *)p->dev_param + (e0 + done) * p->esize,
                                   rt->stage[slot], m * p->esize, rt->h2d));
        atomic_fetch_add(&rt->own_h2d_bytes, (uint64_t)(m * p->esize));
        ZOFF_CHECK(zdev_event_record(rt->dev, rt->stage_ev[slot], rt->h2d));
        last = slot;
    }
    if (last >= 0) ZOFF_CHECK(zdev_event_sync(rt->dev, rt->stage_ev[last]));
    return ZOFF_OK;
}

/* ---- init / fini ----------------------------------------------------------------------------- */
zoff_status zrt_pipeline_init(zoff_runtime *rt)
{
    size_t np = nparts_of(rt);
    rt->eager_batch = calloc(np ? np : 1, sizeof *rt->eager_batch);
    if (!rt->eager_batch) return zoff__err(-ENOMEM, "pipeline: out of memory");
    if (rt->overlap == ZOFF_OVERLAP_DELAYED) ZOFF_CHECK(build_tiles(rt));
    ZOFF_CHECK(zrt_worker_start(&rt->gradw, (size_t)rt->nparams + 8));
    ZOFF_CHECK(zrt_worker_start(&rt->updw, np + 8));
    return ZOFF_OK;
}

void zrt_pipeline_fini(zoff_runtime *rt)
{
    /* gradient copies in flight end in a host function that feeds the grad worker */
    if (rt->dev && rt->d2h) (void)zdev_stream_sync(rt->dev, rt->d2h);
    zrt_worker_wait_idle(&rt->updw);
    zrt_worker_wait_idle(&rt->gradw);
    zrt_worker_stop(&rt->updw);
    zrt_worker_stop(&rt->gradw);
    if (rt->dev) {
        if (rt->h2d) (void)zdev_stream_sync(rt->dev, rt->h2d);
        for (size_t i = 0; i < rt->ntiles; i++)
            if (rt->tiles[i].ev) zdev_event_destroy(rt->dev, rt->tiles[i].ev);
    }
    free(rt->tiles);
    rt->tiles = NULL;
    rt->ntiles = 0;
    free(rt->part_tile_base);
    rt->part_tile_base = NULL;
    free(rt->eager_batch);
    rt->eager_batch = NULL;
    rt->delayed_running = 0;
    rt->hold_active = 0;
}
