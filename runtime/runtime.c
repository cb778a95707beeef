/*
 * runtime.c — the public API's lifecycle and accessors: create/destroy, error messages, groups,
 * parameter registration, finalize (plan, arena, store, Adam context, streams, initial state),
 * master/state access, loss scale and step queries, and the device/stream helpers for trainers.
 * The step pipeline lives in pipeline.c, checkpoints in persist.c, stats in stats.c.
 *
 * Every public entry clears the thread's error message first and returns through zrt_ret(), which
 * keeps the message of a failure on the runtime for zoff_last_error(rt).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "runtime/config.h"
#include "runtime/rt.h"

zoff_status zrt_ret(zoff_runtime *rt, zoff_status st)
{
    if (!rt) return st;
    if (st < 0) {
        const char *m = zoff__last_error_tls();
        snprintf(rt->err, sizeof rt->err, "%s", m[0] ? m : zoff_strerror(st));
    } else {
        rt->err[0] = '\0';
    }
    return st;
}

/* For accessors that take a const runtime: the error text is not part of its logical state. */
static zoff_status ret_c(const zoff_runtime *rt, zoff_status st)
{
    return zrt_ret((zoff_runtime *)(uintptr_t)rt, st);
}

static void group_sched_init(zoff_runtime *rt, int gi);

ZOFF_API const char *zoff_last_error(const zoff_runtime *rt)
{
    return rt ? rt->err : zoff__last_error_tls();
}

static zoff_status check_group(const zoff_group_config *g, int id)
{
    char path[32];
    if (id == 0)
        snprintf(path, sizeof path, "optimizer.params");
    else
        snprintf(path, sizeof path, "group %d", id);
    return zoff__group_config_validate(g, path);
}

static zoff_status create_impl(const zoff_config *cfg_in, zoff_runtime **out)
{
    zoff_status st = ZOFF_OK;
    if (!cfg_in || !out) return zoff__err(ZOFF_EINVAL, "zoff_create: cfg and out must not be NULL");
    if (cfg_in->struct_size == 0 || cfg_in->struct_size > sizeof(zoff_config))
        return zoff__err(ZOFF_EINVAL,
                         "zoff_create: cfg->struct_size is %zu (expected %zu): initialise the "
                         "config with zoff_config_default()",
                         cfg_in->struct_size, sizeof(zoff_config));
    zoff_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return zoff__err(-ENOMEM, "zoff_create: out of memory");
    rt->ckpt_lock_fd = -1;
    pthread_mutex_init(&rt->land_mu, NULL);
    pthread_cond_init(&rt->land_cv, NULL);
    pthread_mutex_init(&rt->eager_mu, NULL);
    pthread_mutex_init(&rt->hold_mu, NULL);
    ZOFF_CHECK_GOTO(zoff_config_default(&rt->cfg), st, fail);
    memcpy(&rt->cfg, cfg_in, cfg_in->struct_size);
    rt->cfg.struct_size = sizeof rt->cfg;
    ZOFF_CHECK_GOTO(zoff__config_apply_env(&rt->cfg), st, fail);
    ZOFF_CHECK_GOTO(zoff__config_validate(&rt->cfg), st, fail);
    rt->groups[0].cfg = rt->cfg.optimizer;
    rt->groups[0].cfg.struct_size = sizeof(zoff_group_config);
    group_sched_init(rt, 0);
    rt->ngroups = 1;

    rt->overlap = rt->cfg.overlap;
    if (rt->overlap == ZOFF_OVERLAP_EAGER &&
        (rt->cfg.fp16_enabled || rt->cfg.gradient_clipping > 0.0f)) {
        ZOFF_WARN(ZOFF_SUB_STEP,
                  "overlap eager needs no global gradient norm, but %s is on: using sync",
                  rt->cfg.fp16_enabled ? "fp16 loss scaling" : "gradient_clipping");
        rt->overlap = ZOFF_OVERLAP_SYNC;
    }
    if (rt->cfg.gradient_accumulation_steps > INT32_MAX) {
        st = zoff__err(ZOFF_ECONFIG, "gradient_accumulation_steps %lld is too large",
                       (long long)rt->cfg.gradient_accumulation_steps);
        goto fail;
    }
    rt->accum =
        rt->cfg.gradient_accumulation_steps > 1 ? (int)rt->cfg.gradient_accumulation_steps : 1;
    if (rt->overlap == ZOFF_OVERLAP_EAGER && rt->accum > 1) {
        ZOFF_WARN(ZOFF_SUB_STEP,
                  "overlap eager updates as gradients land, but "
                  "gradient_accumulation_steps is %d: using sync",
                  rt->accum);
        rt->overlap = ZOFF_OVERLAP_SYNC;
    }

    zdev_config dc;
    zdev_config_default(&dc);
    dc.kind = rt->cfg.device;
    dc.cuda_device = rt->cfg.cuda_device;
    dc.sim_bytes = rt->cfg.sim_gpu_bytes;
    dc.sim_pcie_gbps = rt->cfg.sim_pcie_gbps;
    dc.sim_jitter_seed = rt->cfg.sim_jitter_seed;
    ZOFF_CHECK_GOTO(zdev_open(&dc, &rt->dev), st, fail);
    ZOFF_CHECK_GOTO(zrt_shard_create(rt), st, fail);
    snprintf(rt->stats.device_name, sizeof rt->stats.device_name, "%s", zdev_name(rt->dev));
    ZOFF_CHECK_GOTO(zrt_trace_open(rt), st, fail);
    zrt_scaler_init(&rt->scaler, &rt->cfg);
    rt->state = ZRT_CREATED;
    *out = rt;
    return ZOFF_OK;
fail:
    zoff_destroy(rt);
    return st;
}

ZOFF_API zoff_status zoff_create(const zoff_config *cfg, zoff_runtime **out)
{
    zoff__clear_error();
    return create_impl(cfg, out);
}

ZOFF_API zoff_status zoff_create_from_json(const char *json, zoff_runtime **out)
{
    zoff__clear_error();
    zoff_config cfg;
    if (!out) return zoff__err(ZOFF_EINVAL, "zoff_create_from_json: out is NULL");
    if (!json || !json[0])
        ZOFF_CHECK(zoff_config_default(&cfg));
    else
        ZOFF_CHECK(zoff_config_from_json_string(&cfg, json));
    return create_impl(&cfg, out);
}

/* Frees what finalize built (also after a failed finalize); the runtime returns to CREATED. */
static void release_finalized(zoff_runtime *rt)
{
    zrt_pipeline_fini(rt);
    zbk_fini(&rt->bk);
    if (rt->dev && rt->push_s) {
        zdev_stream_destroy(rt->dev, rt->push_s);
        rt->push_s = NULL;
    }
    zrt_stream_fini(rt);
    if (rt->dev) {
        if (rt->h2d) (void)zdev_stream_sync(rt->dev, rt->h2d);
        if (rt->d2h) (void)zdev_stream_sync(rt->dev, rt->d2h);
        for (int i = 0; i < ZRT_NSTAGE; i++)
            if (rt->stage_ev[i]) zdev_event_destroy(rt->dev, rt->stage_ev[i]);
        for (int i = 0; i < rt->nparams; i++)
            if (rt->params[i].ev) zdev_event_destroy(rt->dev, rt->params[i].ev);
        if (rt->params_ev) zdev_event_destroy(rt->dev, rt->params_ev);
        if (rt->d2h) zdev_stream_destroy(rt->dev, rt->d2h);
        if (rt->h2d) zdev_stream_destroy(rt->dev, rt->h2d);
    }
    memset(rt->stage_ev, 0, sizeof rt->stage_ev);
    for (int i = 0; i < rt->nparams; i++) rt->params[i].ev = NULL;
    rt->params_ev = NULL;
    rt->d2h = rt->h2d = NULL;
    zstore_destroy(rt->store);
    rt->store = NULL;
    zarena_destroy(rt->arena); /* frees grad buffers, hold, staging with it */
    rt->arena = NULL;
    memset(rt->grad_buf, 0, sizeof rt->grad_buf);
    memset(rt->acc, 0, sizeof rt->acc);
    memset(rt->stage, 0, sizeof rt->stage);
    rt->hold = NULL;
    zadam_destroy(rt->adam);
    rt->adam = NULL;
    zrt_shard_destroy(rt);
    free(rt->part_pending);
    free(rt->part_nparams);
    free(rt->part_first_param);
    free(rt->ready);
    rt->part_pending = rt->part_nparams = rt->part_first_param = NULL;
    rt->ready = NULL;
    rt->state = ZRT_CREATED;
}

ZOFF_API void zoff_destroy(zoff_runtime *rt)
{
    if (!rt) return;
    if (rt->state != ZRT_CREATED) (void)zrt_drain(rt);
    zoff__release_ckpt_lock(rt);
    release_finalized(rt);
    zrt_trace_close(rt);
    for (int i = 0; i < rt->nparams; i++) {
        free(rt->params[i].name);
        free(rt->params[i].init_master);
    }
    free(rt->params);
    zcomm_destroy(rt->comm);
    zrt_stream_free(rt);
    if (rt->dev) zdev_close(rt->dev);
    pthread_mutex_destroy(&rt->land_mu);
    pthread_cond_destroy(&rt->land_cv);
    pthread_mutex_destroy(&rt->eager_mu);
    pthread_mutex_destroy(&rt->hold_mu);
    free(rt);
}

/* ---- groups -------------------------------------------------------------------------------- */
static void group_sched_init(zoff_runtime *rt, int gi)
{
    zrt_group *g = &rt->groups[gi];
    g->scheduled = rt->cfg.scheduler.type != ZOFF_SCHED_NONE;
    g->base_lr = g->cfg.lr;
    g->base_beta1 = g->cfg.beta1;
    g->base_beta2 = g->cfg.beta2;
}

void zrt_sched_apply(zoff_runtime *rt)
{
    for (int gi = 0; gi < rt->ngroups; gi++) {
        zrt_group *g = &rt->groups[gi];
        if (!g->scheduled) continue;
        double lr = g->base_lr, b1 = g->base_beta1, b2 = g->base_beta2;
        if (zoff_scheduler_lr(&rt->cfg.scheduler, (double)g->base_lr, rt->step + 1, &lr, &b1,
                              &b2) != ZOFF_OK)
            continue; /* validated at create: cannot fail */
        g->cfg.lr = (float)lr;
        g->cfg.beta1 = (float)b1;
        g->cfg.beta2 = (float)b2;
    }
}

ZOFF_API zoff_status zoff_add_group(zoff_runtime *rt, const zoff_group_config *g, int *group_id)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_add_group: rt is NULL");
    if (rt->state != ZRT_CREATED)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE, "zoff_add_group after zoff_finalize: groups "
                                                  "are fixed once the runtime is finalized"));
    zoff_status st = check_group(g, rt->ngroups);
    if (st < 0) return zrt_ret(rt, st);
    if (rt->ngroups >= ZOFF_MAX_GROUPS)
        return zrt_ret(
            rt, zoff__err(ZOFF_EINVAL, "zoff_add_group: at most %d groups", ZOFF_MAX_GROUPS));
    rt->groups[rt->ngroups].cfg = *g;
    rt->groups[rt->ngroups].cfg.struct_size = sizeof(zoff_group_config);
    group_sched_init(rt, rt->ngroups);
    if (group_id) *group_id = rt->ngroups;
    rt->ngroups++;
    return zrt_ret(rt, ZOFF_OK);
}

ZOFF_API zoff_status zoff_set_group(zoff_runtime *rt, int group_id, const zoff_group_config *g)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_set_group: rt is NULL");
    if (group_id < 0 || group_id >= rt->ngroups)
        return zrt_ret(rt, zoff__err(ZOFF_EINVAL, "zoff_set_group: unknown group %d (have %d)",
                                     group_id, rt->ngroups));
    zoff_status st = check_group(g, group_id);
    if (st < 0) return zrt_ret(rt, st);
    rt->groups[group_id].cfg = *g;
    rt->groups[group_id].cfg.struct_size = sizeof(zoff_group_config);
    if (rt->state == ZRT_CREATED) { /* configuration: the schedule starts from these values */
        group_sched_init(rt, group_id);
    } else { /* between steps: the trainer takes this group's lr over */
        if (rt->groups[group_id].scheduled)
            ZOFF_INFO(ZOFF_SUB_STEP,
                      "zoff_set_group(%d): the configured scheduler no longer sets this group's "
                      "lr",
                      group_id);
        rt->groups[group_id].scheduled = 0;
    }
    return zrt_ret(rt, ZOFF_OK);
}

ZOFF_API zoff_status zoff_get_group(const zoff_runtime *rt, int group_id, zoff_group_config *g)
{
    zoff__clear_error();
    if (!rt || !g) return zoff__err(ZOFF_EINVAL, "zoff_get_group: rt and g must not be NULL");
    if (group_id < 0 || group_id >= rt->ngroups)
        return ret_c(rt, zoff__err(ZOFF_EINVAL, "zoff_get_group: unknown group %d (have %d)",
                                   group_id, rt->ngroups));
    *g = rt->groups[group_id].cfg;
    return ret_c(rt, ZOFF_OK);
}

/* ---- parameters ---------------------------------------------------------------------------- */
static zoff_status add_param_impl(zoff_runtime *rt, const char *name, size_t numel,
                                  zoff_dtype dtype, void *dev_param, void *dev_grad,
                                  const float *init_master, int group, int *param_id)
{
    if (rt->state != ZRT_CREATED)
        return zoff__err(ZOFF_ESTATE,
                         "zoff_add_param('%s') after zoff_finalize: register every "
                         "parameter before finalizing",
                         name ? name : "(null)");
    if (!name || !name[0]) return zoff__err(ZOFF_EINVAL, "zoff_add_param: empty name");
    if (strlen(name) + sizeof(".exp_avg_sq") > 256)
        return zoff__err(ZOFF_EINVAL, "zoff_add_param: name '%.40s...' is longer than %zu bytes",
                         name, 256 - sizeof(".exp_avg_sq"));
    if (numel == 0) return zoff__err(ZOFF_EINVAL, "zoff_add_param('%s'): numel is 0", name);
    if (zoff_dtype_size(dtype) == 0)
        return zoff__err(ZOFF_EINVAL, "zoff_add_param('%s'): unknown dtype %d", name, (int)dtype);
    if (group < 0 || group >= rt->ngroups)
        return zoff__err(ZOFF_EINVAL, "zoff_add_param('%s'): unknown group %d (have %d)", name,
                         group, rt->ngroups);
    for (int i = 0; i < rt->nparams; i++)
        if (strcmp(rt->params[i].name, name) == 0)
            return zoff__err(ZOFF_EINVAL, "zoff_add_param: name '%s' is already registered (id %d)",
                             name, i);
    if (dtype == ZOFF_DTYPE_F16 && !rt->cfg.fp16_enabled)
        return zoff__err(ZOFF_EINVAL,
                         "zoff_add_param('%s'): an fp16 parameter needs fp16.enabled in the config "
                         "(loss scaling)%s",
                         name, rt->cfg.bf16_enabled ? "; this runtime is configured for bf16" : "");
    if (dtype == ZOFF_DTYPE_BF16 && !rt->cfg.bf16_enabled)
        return zoff__err(ZOFF_EINVAL,
                         "zoff_add_param('%s'): a bf16 parameter needs bf16.enabled in the "
                         "config%s",
                         name, rt->cfg.fp16_enabled ? "; this runtime is configured for fp16" : "");
    {
        size_t bytes = numel * zoff_dtype_size(dtype);
        const uint8_t *np = dev_param, *ng = dev_grad;
        if (np && ng && np < ng + bytes && ng < np + bytes)
            return zoff__err(ZOFF_EINVAL,
                             "zoff_add_param('%s'): dev_param and dev_grad overlap (each needs "
                             "its own %zu bytes)",
                             name, bytes);
        for (int i = 0; i < rt->nparams; i++) {
            const zrt_param *q = &rt->params[i];
            size_t qb = q->numel * q->esize;
            const uint8_t *qp = q->dev_param, *qg = q->dev_grad;
            const uint8_t *mine[2] = {np, ng}, *theirs[2] = {qp, qg};
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++)
                    if (mine[a] && theirs[b] && /* NULL: a streamed param's weights */
                        mine[a] < theirs[b] + qb && theirs[b] < mine[a] + bytes)
                        return zoff__err(ZOFF_EINVAL,
                                         "zoff_add_param('%s'): its %s overlaps the %s of '%s' "
                                         "(two parameters cannot share device memory)",
                                         name, a ? "dev_grad" : "dev_param",
                                         b ? "dev_grad" : "dev_param", q->name);
        }
    }
    if (rt->nparams == rt->cap_params) {
        int cap = rt->cap_params ? rt->cap_params * 2 : 64;
        zrt_param *np = realloc(rt->params, (size_t)cap * sizeof *np);
        if (!np) return zoff__err(-ENOMEM, "zoff_add_param: out of memory");
        rt->params = np;
        rt->cap_params = cap;
    }
    zrt_param p;
    memset(&p, 0, sizeof p);
    p.name = strdup(name);
    if (!p.name) return zoff__err(-ENOMEM, "zoff_add_param: out of memory");
    if (init_master) {
        p.init_master = malloc(numel * sizeof(float));
        if (!p.init_master) {
            free(p.name);
            return zoff__err(-ENOMEM,
                             "zoff_add_param('%s'): out of memory copying %zu initial "
                             "values",
                             name, numel);
        }
        memcpy(p.init_master, init_master, numel * sizeof(float));
    }
    p.numel = numel;
    p.dtype = dtype;
    p.esize = zoff_dtype_size(dtype);
    p.dev_param = dev_param;
    p.dev_grad = dev_grad;
    p.group = group;
    /* q8 state: every parameter starts a q8 block, so update tiles (which start at parameter
     * boundaries) line up with blocks; the gap holds zero state that nothing reads */
    if (rt->cfg.state_format == ZOFF_STATE_Q8)
        rt->total_numel = ZOFF_ALIGN_UP(rt->total_numel, (uint64_t)ZSTATE_Q8_BLOCK);
    p.streamed = dev_param == NULL;
    p.unit = -1;
    p.flat_off = rt->total_numel;
    p.buf_off = (size_t)ZOFF_ALIGN_UP(rt->param_bytes, 64u);
    p.rt = rt;
    rt->total_numel += numel;
    rt->param_bytes = p.buf_off + numel * p.esize;
    if (dev_grad)
        rt->trainer_grad_bytes += numel * p.esize;
    else
        rt->nbucket_params++;
    if (dtype == ZOFF_DTYPE_F32) rt->any_f32 = 1;
    rt->params[rt->nparams] = p;
    if (param_id) *param_id = rt->nparams;
    rt->nparams++;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_add_param(zoff_runtime *rt, const char *name, size_t numel,
                                    zoff_dtype dtype, void *dev_param, void *dev_grad,
                                    const float *init_master, int group, int *param_id)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_add_param: rt is NULL");
    return zrt_ret(rt, add_param_impl(rt, name, numel, dtype, dev_param, dev_grad, init_master,
                                      group, param_id));
}

/* ---- finalize ------------------------------------------------------------------------------ */
/* Partition <-> parameter maps (eager counters, segment iteration). */
static zoff_status build_maps(zoff_runtime *rt)
{
    zstore_sizes sz;
    zstore_get_sizes(rt->store, &sz);
    size_t np = sz.nparts;
    rt->part_pending = calloc(np, sizeof(int));
    rt->part_nparams = calloc(np, sizeof(int));
    rt->part_first_param = malloc(np * sizeof(int));
    rt->ready = calloc(np, sizeof(size_t));
    if (!rt->part_pending || !rt->part_nparams || !rt->part_first_param || !rt->ready)
        return zoff__err(-ENOMEM, "finalize: out of memory for %zu partitions", np);
    for (size_t k = 0; k < np; k++) rt->part_first_param[k] = -1;
    size_t pn = rt->cfg.partition_numel;
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        uint64_t b = ZOFF_MAX(p->flat_off, rt->own_begin);
        uint64_t e = ZOFF_MIN(p->flat_off + p->numel, rt->own_end);
        if (e <= b) { /* another rank owns all of it: no partition */
            p->part_first = 1;
            p->part_last = 0;
            continue;
        }
        uint64_t lo = b - rt->own_begin;
        uint64_t hi = e - rt->own_begin - 1;
        p->part_first = (size_t)(lo / pn);
        p->part_last = (size_t)(hi / pn);
        for (size_t k = p->part_first; k <= p->part_last; k++) {
            if (rt->part_first_param[k] < 0) rt->part_first_param[k] = i;
            rt->part_nparams[k]++;
        }
    }
    return ZOFF_OK;
}

/* Fills partition `part` with the initial state: master from init_master or dev_param, zero
 * moments. */
static zoff_status init_partition(zoff_runtime *rt, const zstore_part *part)
{
    zstate_init_moments(
        (zopt_kind)rt->cfg.optimizer_type, &part->view, part->numel,
        rt->cfg.optimizer_type == ZOFF_OPTIM_ADAGRAD ? rt->cfg.initial_accumulator_value : 0.0f);
    uint64_t pb = rt->own_begin + part->begin, pe = pb + part->numel;
    for (int q = rt->part_first_param[part->index]; q >= 0 && q < rt->nparams; q++) {
        zrt_param *p = &rt->params[q];
        if (p->flat_off >= pe) break;
        uint64_t lo = ZOFF_MAX(p->flat_off, pb), hi = ZOFF_MIN(p->flat_off + p->numel, pe);
        float *dst = part->master + (lo - pb);
        size_t e0 = (size_t)(lo - p->flat_off), n = (size_t)(hi - lo);
        if (p->init_master || p->streamed) { /* a streamed param without values: zeros */
            if (p->init_master)
                memcpy(dst, p->init_master + e0, n * sizeof(float));
            else
                memset(dst, 0, n * sizeof(float));
            if (p->streamed) /* the host copy is the only one: fetches upload it */
                ZOFF_CHECK(zrt_stream_write_host(rt, p, e0, dst, n));
            else /* the trainer's 16-bit copy starts from the same values */
                ZOFF_CHECK(zrt_upload_master(rt, p, e0, dst, n));
            continue;
        }
        /* read the trainer's values from dev_param through a staging tile */
        size_t chunk = rt->layout.stage_bytes / p->esize;
        for (size_t done = 0; done < n; done += chunk) {
            size_t m = ZOFF_MIN(chunk, n - done);
            const uint8_t *src = (const uint8_t *)p->dev_param + (e0 + done) * p->esize;
            ZOFF_CHECK(zdev_memcpy_d2h(rt->dev, rt->stage[0], src, m * p->esize, rt->d2h));
            ZOFF_CHECK(zdev_stream_sync(rt->dev, rt->d2h));
            const uint16_t *h = (const uint16_t *)rt->stage[0];
            float *d = dst + done;
            if (p->dtype == ZOFF_DTYPE_F32)
                memcpy(d, rt->stage[0], m * sizeof(float));
            else if (p->dtype == ZOFF_DTYPE_F16)
                for (size_t i = 0; i < m; i++) d[i] = zoff_f16_to_f32(h[i]);
            else
                for (size_t i = 0; i < m; i++) d[i] = zoff_bf16_to_f32(h[i]);
        }
    }
    return ZOFF_OK;
}

static zoff_status init_state(zoff_runtime *rt)
{
    zoff_status st = ZOFF_OK;
    zstore_sizes sz;
    zstore_get_sizes(rt->store, &sz);
    ZOFF_CHECK(zstore_pass_begin(rt->store, NULL, sz.nparts, ZSTORE_WRITE));
    for (size_t k = 0; k < sz.nparts; k++) {
        zstore_part part;
        ZOFF_CHECK_GOTO(zstore_pass_next(rt->store, &part), st, out);
        ZOFF_CHECK_GOTO(init_partition(rt, &part), st, out);
        ZOFF_CHECK_GOTO(zstore_pass_release(rt->store), st, out);
    }
out:;
    zoff_status e = zstore_pass_end(rt->store);
    return st ? st : e;
}

/* zoff.grad_bucket_grow: the largest gradient pushed into the buckets, when the grown ring and
 * the streaming slab leave at least a quarter of the device's free memory free (activations
 * are allocated after finalize); else 0: the configured bucket size. */
static uint64_t bucket_grow_numel(const zoff_runtime *rt)
{
    const zoff_config *c = &rt->cfg;
    uint64_t maxn = 0;
    for (int i = 0; i < rt->nparams; i++)
        if (!rt->params[i].dev_grad) maxn = ZOFF_MAX(maxn, (uint64_t)rt->params[i].numel);
    if (!c->grad_bucket_grow || rt->nbucket_params == 0 || maxn == 0) return 0;
    zrt_layout base = rt->layout, grown = rt->layout;
    zrt_layout_device(c, &base, 0, 1, rt->any_f32, rt->total_numel, 0);
    zrt_layout_device(c, &grown, 0, 1, rt->any_f32, rt->total_numel, maxn);
    if (grown.bucket_bytes <= base.bucket_bytes) return 0;
    size_t fr = 0, tot = 0;
    uint64_t slab = (uint64_t)rt->nslots * rt->slot_bytes;
    char a[32], b[32], d[32];
    if (zdev_mem_info(rt->dev, &fr, &tot) != ZOFF_OK || grown.bucket_bytes + slab > fr / 4 * 3) {
        ZOFF_INFO(ZOFF_SUB_INIT,
                  "gradient buckets kept at %s: grown to hold the largest gradient (%llu "
                  "elements) they would need %s, more than 3/4 of the device's %s free with the "
                  "streaming slab; gradients larger than the ring make backward wait for PCIe",
                  zoff__fmt_bytes(base.bucket_bytes, a, sizeof a), (unsigned long long)maxn,
                  zoff__fmt_bytes(grown.bucket_bytes, b, sizeof b),
                  zoff__fmt_bytes(fr, d, sizeof d));
        return 0;
    }
    ZOFF_INFO(ZOFF_SUB_INIT,
              "gradient buckets grown from %s to %s: %d - 1 buckets hold the largest gradient "
              "(%llu elements; zoff.grad_bucket_grow 0 keeps reduce_bucket_size)",
              zoff__fmt_bytes(base.bucket_bytes, a, sizeof a),
              zoff__fmt_bytes(grown.bucket_bytes, b, sizeof b), c->grad_bucket_count,
              (unsigned long long)maxn);
    return maxn;
}

static zoff_status finalize_impl(zoff_runtime *rt)
{
    zoff_status st = ZOFF_OK;
    if (rt->state == ZRT_READY) return zoff__err(ZOFF_ESTATE, "zoff_finalize called twice");
    if (rt->state != ZRT_CREATED)
        return zoff__err(ZOFF_ESTATE, "zoff_finalize: runtime is unusable: %s", rt->broken);
    if (rt->nparams == 0)
        return zoff__err(ZOFF_EINVAL, "zoff_finalize: no parameters registered (zoff_add_param)");
    zoff_config *c = &rt->cfg;
    zrt_shard_range(rt);
    ZOFF_CHECK(zrt_stream_prepare(rt));
    if (rt->streamed_bytes && rt->overlap != ZOFF_OVERLAP_SYNC) {
        ZOFF_WARN(ZOFF_SUB_STEP,
                  "streamed parameters: overlap %s is not supported with streaming, using sync",
                  rt->overlap == ZOFF_OVERLAP_EAGER ? "eager" : "delayed");
        rt->overlap = ZOFF_OVERLAP_SYNC;
        c->overlap = ZOFF_OVERLAP_SYNC;
    }
    if (rt->streamed_bytes && rt->nranks > 1)
        return zoff__err(ZOFF_EUNSUPPORTED,
                         "zoff_finalize: streamed parameters (dev_param NULL) with %d ranks: "
                         "parameter streaming runs on one rank in this version",
                         rt->nranks);

    /* plan first: refuse what cannot fit before allocating anything */
    ZOFF_CHECK(zrt_layout_compute(c, rt->own_end - rt->own_begin, rt->param_bytes, rt->any_f32,
                                  &rt->layout));
    zrt_shard_layout(rt, &rt->layout);
    zrt_layout_device(c, &rt->layout, rt->trainer_grad_bytes, rt->nbucket_params > 0, rt->any_f32,
                      rt->total_numel, bucket_grow_numel(rt));
    zrt_layout_stream(&rt->layout, rt->streamed_bytes, (uint64_t)rt->nslots * rt->slot_bytes);
    zoff_plan_report rep;
    ZOFF_CHECK(zrt_plan_report(c, &rt->layout, rt->dev, 0, 0, &rep));
    if (!rep.fits) return zoff__err(ZOFF_ENOFIT, "zoff_finalize: %s", rep.advice);

    /* NUMA node nearest the device; Adam threads on its cores */
    char bus[64] = "";
    const char *busp = zdev_pci_bus_id(rt->dev, bus, sizeof bus) == ZOFF_OK ? bus : NULL;
    if (ztopo_choose(busp, c->numa_node, &rt->topo) < 0) {
        ZOFF_WARN(ZOFF_SUB_INIT, "NUMA placement unavailable (%s): memory and threads unbound",
                  zoff__last_error_tls());
        memset(&rt->topo, 0, sizeof rt->topo);
        rt->topo.numa_node = -1;
    }
    zoff__clear_error();
    char swap_paths[ZOFF_PATH_MAX];
    snprintf(swap_paths, sizeof swap_paths, "%s", c->nvme_path);
    ZOFF_CHECK(zrt_shard_place(rt, swap_paths, sizeof swap_paths));
    ZOFF_INFO(ZOFF_SUB_INIT, "NUMA node %d (%s), %d cpus", rt->topo.numa_node, rt->topo.reason,
              rt->topo.ncpus);

    zarena_config ac = {
        rt->layout.arena_bytes, rt->topo.numa_node, c->pin_memory, 1, rt->dev, "zoff"};
    ZOFF_CHECK_GOTO(zarena_create(&ac, &rt->arena), st, fail);
    for (int i = 0; i < rt->layout.ngrad_bufs; i++) {
        void *p = NULL;
        ZOFF_CHECK_GOTO(zarena_alloc(rt->arena, rt->layout.grad_buf_bytes, "grads", &p), st, fail);
        rt->grad_buf[i] = p;
    }
    for (int i = 0; i < rt->layout.nacc_bufs; i++) {
        void *p = NULL;
        ZOFF_CHECK_GOTO(zarena_alloc(rt->arena, rt->layout.acc_bytes, "grad sums", &p), st, fail);
        rt->acc[i] = p;
    }
    if (rt->layout.hold_bytes) {
        void *p = NULL;
        ZOFF_CHECK_GOTO(zarena_alloc(rt->arena, rt->layout.hold_bytes, "hold", &p), st, fail);
        rt->hold = p;
    }
    for (int i = 0; i < ZRT_NSTAGE; i++) {
        void *p = NULL;
        ZOFF_CHECK_GOTO(zarena_alloc(rt->arena, rt->layout.stage_bytes, "staging", &p), st, fail);
        rt->stage[i] = p;
    }
    if (rt->layout.stream_host_bytes) {
        void *p = NULL;
        ZOFF_CHECK_GOTO(
            zarena_alloc(rt->arena, rt->layout.stream_host_bytes, "streamed params", &p), st, fail);
        rt->host16 = p;
    }

    zswap_config sc;
    memset(&sc, 0, sizeof sc);
    sc.paths = swap_paths;
    sc.odirect = c->aio_odirect;
    sc.verify_crc = c->verify_crc;
    sc.aio.engine = c->aio_engine;
    sc.aio.block_bytes = c->aio_block_size;
    sc.aio.queue_depth = c->aio_queue_depth;
    zstore_config stc = {.numel = rt->own_end - rt->own_begin,
                         .partition_numel = c->partition_numel,
                         .tier = c->tier,
                         .ratio = c->ratio,
                         .buffer_count = c->buffer_count,
                         .arena = rt->arena,
                         .swap = &sc,
                         .io_hook = rt->trace ? zrt_store_io_hook : NULL,
                         .io_user = rt,
                         .optim = (zopt_kind)c->optimizer_type,
                         .state = (zstate_fmt)c->state_format};
    ZOFF_CHECK_GOTO(zstore_create(&stc, &rt->store), st, fail);

    int threads = c->cpu_threads;
    if (threads <= 0 && !zoff__param_set(ZOFF_PARAM_CPU_THREADS) && rt->topo.ncpus > 0)
        threads = rt->topo.ncpus;
    zadam_config zc = {.isa = c->cpu_isa,
                       .threads = threads,
                       .cpus = rt->topo.ncpus > 0 ? rt->topo.cpus : NULL,
                       .ncpus = rt->topo.ncpus};
    ZOFF_CHECK_GOTO(zadam_create(&zc, &rt->adam), st, fail);
    snprintf(rt->stats.cpu_isa, sizeof rt->stats.cpu_isa, "%s",
             zadam_isa_name(zadam_ctx_isa(rt->adam)));

    ZOFF_CHECK_GOTO(zdev_stream_create(rt->dev, &rt->d2h), st, fail);
    ZOFF_CHECK_GOTO(zdev_stream_create(rt->dev, &rt->h2d), st, fail);
    if (rt->nbucket_params > 0) {
        ZOFF_CHECK_GOTO(zdev_stream_create(rt->dev, &rt->push_s), st, fail);
        size_t bucket_bytes = (size_t)(rt->layout.bucket_bytes / (uint64_t)c->grad_bucket_count);
        st = zbk_init(&rt->bk, rt->dev, rt->d2h, c->grad_bucket_count, bucket_bytes);
        if (st < 0) {
            char b1[32], why[ZRT_ERR_MAX];
            snprintf(why, sizeof why, "%s", zoff__last_error_tls());
            zoff__err(st,
                      "zoff_finalize: %d gradient buckets of %s do not fit on the device (%s): "
                      "lower zero_optimization.reduce_bucket_size (now %zu elements) or "
                      "zoff.grad_bucket_count",
                      c->grad_bucket_count, zoff__fmt_bytes(bucket_bytes, b1, sizeof b1), why,
                      c->grad_bucket_numel);
            goto fail;
        }
    }
    for (int i = 0; i < rt->nparams; i++)
        ZOFF_CHECK_GOTO(zdev_event_create(rt->dev, &rt->params[i].ev), st, fail);
    ZOFF_CHECK_GOTO(zdev_event_create(rt->dev, &rt->params_ev), st, fail);
    for (int i = 0; i < ZRT_NSTAGE; i++)
        ZOFF_CHECK_GOTO(zdev_event_create(rt->dev, &rt->stage_ev[i]), st, fail);
    ZOFF_CHECK_GOTO(zrt_stream_init(rt), st, fail);

    ZOFF_CHECK_GOTO(zrt_shard_alloc(rt), st, fail);
    ZOFF_CHECK_GOTO(build_maps(rt), st, fail);
    ZOFF_CHECK_GOTO(init_state(rt), st, fail);
    ZOFF_CHECK_GOTO(zrt_pipeline_init(rt), st, fail);
    for (int i = 0; i < rt->nparams; i++) {
        free(rt->params[i].init_master);
        rt->params[i].init_master = NULL;
    }
    zrt_scaler_init(&rt->scaler, c);
    rt->step = 0;
    rt->sync_steps_done = 0;
    rt->grad_cur = 0;
    rt->acc_cur = 0;
    rt->micro = 0;
    rt->acc_first = 1;
    rt->acc_last = rt->accum == 1;
    rt->state = ZRT_READY;
    zrt_sched_apply(rt);
    zrt_stats_step_begin(rt); /* baseline of the counters */
    ZOFF_INFO(ZOFF_SUB_INIT,
              "finalized: %d params, %llu elements, %zu partitions (%zu resident), arena %llu "
              "bytes, overlap %d",
              rt->nparams, (unsigned long long)rt->total_numel, rt->layout.store.nparts,
              rt->layout.store.resident_parts, (unsigned long long)rt->layout.arena_bytes,
              (int)rt->overlap);
    return ZOFF_OK;
fail:;
    char msg[ZRT_ERR_MAX];
    snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
    release_finalized(rt);
    return zoff__err(st, "%s", msg);
}

ZOFF_API zoff_status zoff_finalize(zoff_runtime *rt)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_finalize: rt is NULL");
    return zrt_ret(rt, finalize_impl(rt));
}

/* ---- state access -------------------------------------------------------------------------- */
static zoff_status check_ready(const zoff_runtime *rt, const char *call)
{
    if (rt->state == ZRT_CREATED) return zoff__err(ZOFF_ESTATE, "%s before zoff_finalize", call);
    if (rt->state == ZRT_BROKEN)
        return zoff__err(ZOFF_ESTATE, "%s: the runtime is unusable after an earlier failure: %s",
                         call, rt->broken);
    return ZOFF_OK;
}

static zoff_status check_param(const zoff_runtime *rt, int id, const char *call)
{
    if (id < 0 || id >= rt->nparams)
        return zoff__err(ZOFF_EINVAL, "%s: unknown param id %d (%d registered)", call, id,
                         rt->nparams);
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_get_master(zoff_runtime *rt, int param_id, float *out)
{
    zoff__clear_error();
    if (!rt || !out) return zoff__err(ZOFF_EINVAL, "zoff_get_master: rt and out are required");
    zoff_status st = check_ready(rt, "zoff_get_master");
    if (!st) st = check_param(rt, param_id, "zoff_get_master");
    if (!st) st = zrt_drain(rt);
    if (!st) st = zrt_state_io(rt, param_id, out, NULL, NULL, 0);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_get_state(zoff_runtime *rt, int param_id, float *exp_avg,
                                    float *exp_avg_sq)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_get_state: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_get_state");
    if (!st) st = check_param(rt, param_id, "zoff_get_state");
    if (!st) st = zrt_drain(rt);
    if (!st && (exp_avg || exp_avg_sq))
        st = zrt_state_io(rt, param_id, NULL, exp_avg, exp_avg_sq, 0);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_set_state(zoff_runtime *rt, int param_id, const float *master,
                                    const float *exp_avg, const float *exp_avg_sq)
{
    zoff__clear_error();
    if (!rt || !master) return zoff__err(ZOFF_EINVAL, "zoff_set_state: rt and master are required");
    zoff_status st = check_ready(rt, "zoff_set_state");
    if (!st) st = check_param(rt, param_id, "zoff_set_state");
    if (!st) st = zrt_drain(rt);
    if (!st)
        st = zrt_state_io(rt, param_id, (float *)(uintptr_t)master, (float *)(uintptr_t)exp_avg,
                          (float *)(uintptr_t)exp_avg_sq, 1);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_param_count(const zoff_runtime *rt, int *count)
{
    zoff__clear_error();
    if (!rt || !count) return zoff__err(ZOFF_EINVAL, "zoff_param_count: rt and count required");
    *count = rt->nparams;
    return ret_c(rt, ZOFF_OK);
}

ZOFF_API zoff_status zoff_get_step(const zoff_runtime *rt, int64_t *step)
{
    zoff__clear_error();
    if (!rt || !step) return zoff__err(ZOFF_EINVAL, "zoff_get_step: rt and step required");
    *step = rt->step;
    return ret_c(rt, ZOFF_OK);
}

ZOFF_API zoff_status zoff_set_step(zoff_runtime *rt, int64_t step)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_set_step: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_set_step");
    if (!st && step < 0)
        st = zoff__err(ZOFF_EINVAL, "zoff_set_step: step %lld < 0", (long long)step);
    if (!st && rt->declared_count > 0)
        st = zoff__err(ZOFF_ESTATE,
                       "zoff_set_step in the middle of a step (%d gradients "
                       "declared): call it between steps",
                       rt->declared_count);
    if (!st && rt->micro > 0)
        st = zoff__err(ZOFF_ESTATE,
                       "zoff_set_step in the middle of an accumulation window (%d of %d "
                       "micro-batches done): call it at a boundary",
                       rt->micro, rt->accum);
    if (!st) st = zrt_drain(rt);
    if (!st) {
        rt->step = step;
        for (int i = 0; i < rt->nparams; i++) rt->params[i].step = step;
        zrt_sched_apply(rt);
    }
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_get_param_step(zoff_runtime *rt, int param_id, int64_t *step)
{
    zoff__clear_error();
    if (!rt || !step) return zoff__err(ZOFF_EINVAL, "zoff_get_param_step: rt and step required");
    zoff_status st = check_ready(rt, "zoff_get_param_step");
    if (!st) st = check_param(rt, param_id, "zoff_get_param_step");
    if (!st) *step = rt->params[param_id].step; /* delayed: advanced when the update launched */
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_set_param_step(zoff_runtime *rt, int param_id, int64_t step)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_set_param_step: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_set_param_step");
    if (!st) st = check_param(rt, param_id, "zoff_set_param_step");
    if (!st && step < 0)
        st = zoff__err(ZOFF_EINVAL, "zoff_set_param_step: step %lld < 0", (long long)step);
    if (!st && rt->declared_count > 0)
        st = zoff__err(ZOFF_ESTATE,
                       "zoff_set_param_step in the middle of a step (%d gradients declared): "
                       "call it between steps",
                       rt->declared_count);
    if (!st) st = zrt_drain(rt);
    if (!st) rt->params[param_id].step = step;
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_grads_discard(zoff_runtime *rt)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_grads_discard: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_grads_discard");
    if (!st) st = zrt_grads_discard(rt);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_get_loss_scale(const zoff_runtime *rt, float *scale)
{
    zoff__clear_error();
    if (!rt || !scale) return zoff__err(ZOFF_EINVAL, "zoff_get_loss_scale: rt and scale required");
    *scale = rt->scaler.scale;
    return ret_c(rt, ZOFF_OK);
}

/* ---- step entry points (pipeline.c does the work) ------------------------------------------ */
ZOFF_API zoff_status zoff_grad_ready(zoff_runtime *rt, int param_id, zoff_stream producer)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_grad_ready: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_grad_ready");
    if (!st) st = check_param(rt, param_id, "zoff_grad_ready");
    if (!st) st = zrt_grad_ready(rt, param_id, producer);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_grad_push(zoff_runtime *rt, int param_id, const void *dev_src,
                                    size_t numel, zoff_dtype dtype, zoff_stream producer)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_grad_push: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_grad_push");
    if (!st) st = check_param(rt, param_id, "zoff_grad_push");
    if (!st) st = zrt_grad_push(rt, param_id, dev_src, numel, dtype, producer);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_step(zoff_runtime *rt, const zoff_step_args *a, zoff_step_result *r)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_step: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_step");
    if (!st && a && (a->flags & ~ZOFF_STEP_ZERO_MISSING_GRADS) != 0)
        st = zoff__err(ZOFF_EINVAL,
                       "zoff_step: args->flags 0x%x has unknown bits (known: "
                       "ZOFF_STEP_ZERO_MISSING_GRADS)",
                       (unsigned)a->flags);
    if (!st && r && r->struct_size != 0 && r->struct_size < sizeof(size_t))
        st = zoff__err(ZOFF_EINVAL, "zoff_step: result struct_size %zu", r->struct_size);
    zoff_step_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    if (!st) st = zrt_step(rt, a ? a->flags : 0, &res);
    if (!st) zrt_sched_apply(rt);
    if (!st && r) {
        size_t n = r->struct_size ? ZOFF_MIN(r->struct_size, sizeof res) : sizeof res;
        size_t keep = r->struct_size ? r->struct_size : sizeof res;
        memcpy(r, &res, n);
        r->struct_size = keep;
    }
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_params_ready(zoff_runtime *rt, zoff_stream consumer)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_params_ready: rt is NULL");
    zoff_status st = check_ready(rt, "zoff_params_ready");
    if (!st) st = zrt_params_ready(rt, consumer);
    return zrt_ret(rt, st);
}

/* ---- device helpers ------------------------------------------------------------------------ */
ZOFF_API zoff_status zoff_device_alloc(zoff_runtime *rt, size_t bytes, void **dev_ptr)
{
    zoff__clear_error();
    if (!rt || !dev_ptr || bytes == 0)
        return zoff__err(ZOFF_EINVAL, "zoff_device_alloc: rt, dev_ptr and bytes > 0 required");
    void *p = NULL;
    zoff_status st = zdev_malloc(rt->dev, bytes, &p);
    if (!st) *dev_ptr = p;
    return zrt_ret(rt, st);
}

ZOFF_API void zoff_device_free(zoff_runtime *rt, void *dev_ptr)
{
    if (rt && dev_ptr) zdev_free(rt->dev, dev_ptr);
}

ZOFF_API zoff_status zoff_device_upload(zoff_runtime *rt, void *dev_dst, const void *host_src,
                                        size_t bytes, zoff_stream stream)
{
    zoff__clear_error();
    if (!rt || (bytes && (!dev_dst || !host_src)))
        return zoff__err(ZOFF_EINVAL, "zoff_device_upload: bad arguments");
    if (bytes == 0) return zrt_ret(rt, ZOFF_OK);
    zoff_status st = zdev_memcpy_h2d(rt->dev, dev_dst, host_src, bytes, (zdev_stream *)stream);
    if (!st) st = zdev_stream_sync(rt->dev, (zdev_stream *)stream);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_device_download(zoff_runtime *rt, void *host_dst, const void *dev_src,
                                          size_t bytes, zoff_stream stream)
{
    zoff__clear_error();
    if (!rt || (bytes && (!host_dst || !dev_src)))
        return zoff__err(ZOFF_EINVAL, "zoff_device_download: bad arguments");
    if (bytes == 0) return zrt_ret(rt, ZOFF_OK);
    zoff_status st = zdev_memcpy_d2h(rt->dev, host_dst, dev_src, bytes, (zdev_stream *)stream);
    if (!st) st = zdev_stream_sync(rt->dev, (zdev_stream *)stream);
    return zrt_ret(rt, st);
}

ZOFF_API int zoff_device_host_accessible(const zoff_runtime *rt)
{
    return rt && rt->dev && zdev_kind(rt->dev) == ZOFF_DEVICE_SIM;
}

ZOFF_API zoff_status zoff_stream_create(zoff_runtime *rt, zoff_stream *out)
{
    zoff__clear_error();
    if (!rt || !out) return zoff__err(ZOFF_EINVAL, "zoff_stream_create: rt and out required");
    zdev_stream *s = NULL;
    zoff_status st = zdev_stream_create(rt->dev, &s);
    if (!st) *out = s;
    return zrt_ret(rt, st);
}

ZOFF_API void zoff_stream_destroy(zoff_runtime *rt, zoff_stream s)
{
    if (rt && s) zdev_stream_destroy(rt->dev, (zdev_stream *)s);
}

ZOFF_API zoff_status zoff_stream_synchronize(zoff_runtime *rt, zoff_stream s)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_stream_synchronize: rt is NULL");
    return zrt_ret(rt, zdev_stream_sync(rt->dev, (zdev_stream *)s));
}

ZOFF_API zoff_status zoff_stream_wait_stream(zoff_runtime *rt, zoff_stream waiter,
                                             zoff_stream signaler)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_stream_wait_stream: rt is NULL");
    if (waiter == signaler) return ZOFF_OK;
    /* the wait holds its own reference to the capture: the event can go at once */
    zdev_event *ev = NULL;
    zoff_status st = zdev_event_create(rt->dev, &ev);
    if (st == ZOFF_OK) st = zdev_event_record(rt->dev, ev, (zdev_stream *)signaler);
    if (st == ZOFF_OK) st = zdev_stream_wait_event(rt->dev, (zdev_stream *)waiter, ev);
    if (ev) zdev_event_destroy(rt->dev, ev);
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_stream_busy(zoff_runtime *rt, zoff_stream s, uint64_t ns)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_stream_busy: rt is NULL");
    zrt_span *sp = NULL;
    zoff_status st = zrt_trace_span_begin(rt, (zdev_stream *)s, "busy", &sp);
    if (st == ZOFF_OK) st = zdev_busy(rt->dev, (zdev_stream *)s, ns);
    if (st == ZOFF_OK) st = zrt_trace_span_end(rt, (zdev_stream *)s, sp);
    return zrt_ret(rt, st);
}
