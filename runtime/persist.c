/*
 * persist.c — moving optimizer state in and out of the store: one parameter's master/moments
 * (zoff_get_master, zoff_get_state, zoff_set_state) and whole checkpoints (zoff_save*,
 * zoff_load*) through runtime/ckpt.h. Everything streams partition by partition through the
 * store (with the nvme tier one slot at a time is in memory, never the whole state).
 *
 * Load verifies before it modifies: names and shapes against the registered parameters, group
 * count, then every tensor's crc32c; only then is the state overwritten and the 16-bit params
 * re-uploaded. A failure after that point (an I/O error half way) leaves the runtime unusable.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "runtime/ckpt.h"
#include "runtime/rt.h"

/* Visits the segments of `part`: param index, element range in the param, offset in the part. */
typedef zoff_status (*seg_fn)(zoff_runtime *rt, void *ctx, const zstore_part *part, int q,
                              size_t e0, size_t se, size_t n);

static zoff_status for_segments(zoff_runtime *rt, const zstore_part *part, int only, seg_fn fn,
                                void *ctx)
{
    uint64_t pb = rt->own_begin + part->begin, pe = pb + part->numel;
    for (int q = rt->part_first_param[part->index]; q >= 0 && q < rt->nparams; q++) {
        const zrt_param *p = &rt->params[q];
        if (p->flat_off >= pe) break;
        if (only >= 0 && q != only) continue;
        uint64_t lo = ZOFF_MAX(p->flat_off, pb), hi = ZOFF_MIN(p->flat_off + p->numel, pe);
        ZOFF_CHECK(
            fn(rt, ctx, part, q, (size_t)(lo - p->flat_off), (size_t)(lo - pb), (size_t)(hi - lo)));
    }
    return ZOFF_OK;
}

/* Runs fn over every segment of the partitions in [first, last] in one store pass. */
static zoff_status pass_range(zoff_runtime *rt, size_t first, size_t last, unsigned flags, int only,
                              seg_fn fn, void *ctx)
{
    zoff_status st = ZOFF_OK;
    size_t n = last - first + 1;
    size_t *order = calloc(n, sizeof *order);
    if (!order) return zoff__err(-ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) order[i] = first + i;
    st = zstore_pass_begin(rt->store, order, n, flags);
    free(order);
    if (st < 0) return st;
    for (size_t i = 0; i < n; i++) {
        zstore_part part;
        ZOFF_CHECK_GOTO(zstore_pass_next(rt->store, &part), st, out);
        ZOFF_CHECK_GOTO(for_segments(rt, &part, only, fn, ctx), st, out);
        ZOFF_CHECK_GOTO(zstore_pass_release(rt->store), st, out);
    }
out:;
    zoff_status e = zstore_pass_end(rt->store);
    return st ? st : e;
}

/* ---- moments in the store's format <-> fp32 -------------------------------------------------
 * which: 0 exp_avg, 1 exp_avg_sq. A moment the optimizer does not keep (Lion's exp_avg_sq,
 * Adagrad's exp_avg) reads as zeros and writes are dropped. fp32 state is used in place. */
static int keeps(const zoff_runtime *rt, int which)
{
    const zopt_kind k = (zopt_kind)rt->cfg.optimizer_type;
    return which ? zopt_has_v(k) : zopt_has_m(k);
}

/* Where the fp32 values of moment `which` of segment se..se+n are, decoding into scratch when the
 * format is not fp32. */
static const float *moment_get(const zoff_runtime *rt, const zstore_part *part, int which,
                               size_t se, size_t n, float *scratch)
{
    if (!keeps(rt, which)) {
        memset(scratch, 0, n * sizeof(float));
        return scratch;
    }
    zadam_tensor t = part->view;
    zstate_offset(&t, se);
    if (t.state_fmt == ZSTATE_FP32) return which ? t.exp_avg_sq : t.exp_avg;
    zstate_decode(t.state_fmt, which, which ? t.v_state : t.m_state,
                  which ? t.v_absmax : t.m_absmax, n, scratch);
    return scratch;
}

static void moment_set(const zoff_runtime *rt, const zstore_part *part, int which, size_t se,
                       size_t n, const float *in)
{
    if (!keeps(rt, which)) return;
    zadam_tensor t = part->view;
    zstate_offset(&t, se);
    if (t.state_fmt == ZSTATE_FP32) {
        float *dst = which ? t.exp_avg_sq : t.exp_avg;
        if (dst != in) memcpy(dst, in, n * sizeof(float));
        return;
    }
    zstate_encode(t.state_fmt, which, in, n, which ? t.v_state : t.m_state,
                  which ? t.v_absmax : t.m_absmax);
}

/* A scratch buffer of one partition of fp32 values (NULL when the state is fp32 Adam). */
static zoff_status scratch_alloc(const zoff_runtime *rt, float **out)
{
    *out = NULL;
    if (rt->cfg.state_format == ZOFF_STATE_FP32 && rt->cfg.optimizer_type == ZOFF_OPTIM_ADAM)
        return ZOFF_OK;
    *out = malloc(rt->cfg.partition_numel * sizeof(float));
    if (!*out) return zoff__err(-ENOMEM, "out of memory for a state conversion buffer");
    return ZOFF_OK;
}

/* ---- one parameter --------------------------------------------------------------------------- */
typedef struct io_ctx {
    float *master, *exp_avg, *exp_avg_sq;
    int write;
    float *scratch;
} io_ctx;

static zoff_status io_seg(zoff_runtime *rt, void *vctx, const zstore_part *part, int q, size_t e0,
                          size_t se, size_t n)
{
    io_ctx *c = vctx;
    size_t b = n * sizeof(float);
    float *mo[2] = {c->exp_avg, c->exp_avg_sq};
    if (!c->write) {
        if (c->master) memcpy(c->master + e0, part->master + se, b);
        for (int j = 0; j < 2; j++)
            if (mo[j]) memcpy(mo[j] + e0, moment_get(rt, part, j, se, n, c->scratch), b);
        return ZOFF_OK;
    }
    memcpy(part->master + se, c->master + e0, b);
    for (int j = 0; j < 2; j++)
        if (mo[j]) moment_set(rt, part, j, se, n, mo[j] + e0);
    return zrt_upload_master(rt, &rt->params[q], e0, part->master + se, n);
}

zoff_status zrt_state_io(zoff_runtime *rt, int id, float *master, float *exp_avg, float *exp_avg_sq,
                         int write)
{
    const zrt_param *p = &rt->params[id];
    if (p->part_first > p->part_last) return ZOFF_OK; /* another rank owns all of it */
    io_ctx c = {master, exp_avg, exp_avg_sq, write, NULL};
    unsigned flags = ZSTORE_READ | (write ? ZSTORE_WRITE : 0);
    ZOFF_CHECK(scratch_alloc(rt, &c.scratch));
    zoff_status st = pass_range(rt, p->part_first, p->part_last, flags, id, io_seg, &c);
    free(c.scratch);
    if (st < 0 && write) return zrt_break(rt, st);
    return st;
}

/* ---- save ------------------------------------------------------------------------------------ */
typedef struct save_ctx {
    zckpt_writer *w;
    float *scratch;
} save_ctx;

static zoff_status save_seg(zoff_runtime *rt, void *vctx, const zstore_part *part, int q, size_t e0,
                            size_t se, size_t n)
{
    save_ctx *c = vctx;
    (void)e0;
    ZOFF_CHECK(zckpt_writer_write(c->w, (size_t)q * 3 + 0, part->master + se, n));
    for (int j = 0; j < 2; j++)
        ZOFF_CHECK(zckpt_writer_write(c->w, (size_t)q * 3 + 1 + (size_t)j,
                                      moment_get(rt, part, j, se, n, c->scratch), n));
    return ZOFF_OK;
}

static const char *const suffix[3] = {".master", ".exp_avg", ".exp_avg_sq"};
/* overlap delayed, an update launched whose 16-bit params are not on the device yet: the
 * device's copy (widened to fp32), one update behind the master */
static const char *const device_suffix = ".device_param";

/* The checkpoint's tensors: 3 per param (the master carries the param's step count), then with
 * `device` one ".device_param" per param. */
static zoff_status tensor_list(const zoff_runtime *rt, int device, zckpt_tensor **out)
{
    size_t per = device ? 4 : 3, np = (size_t)rt->nparams;
    zckpt_tensor *t = calloc(np * per, sizeof *t);
    if (!t) return zoff__err(-ENOMEM, "checkpoint: out of memory");
    for (size_t q = 0; q < np; q++) {
        for (size_t j = 0; j < 3; j++) {
            snprintf(t[q * 3 + j].name, sizeof t[q * 3 + j].name, "%s%s", rt->params[q].name,
                     suffix[j]);
            t[q * 3 + j].numel = rt->params[q].numel;
        }
        t[q * 3].has_step = 1;
        t[q * 3].adam_step = rt->params[q].step;
        if (device) {
            zckpt_tensor *d = &t[np * 3 + q];
            snprintf(d->name, sizeof d->name, "%s%s", rt->params[q].name, device_suffix);
            d->numel = rt->params[q].numel;
        }
    }
    *out = t;
    return ZOFF_OK;
}

/* Writes what the device holds of every param (tensor np*3 + q), widened to fp32. */
static zoff_status save_device_params(zoff_runtime *rt, zckpt_writer *w)
{
    zoff_status st = ZOFF_OK;
    size_t chunk = rt->layout.stage_bytes / sizeof(float);
    float *buf = malloc(chunk * sizeof(float));
    if (!buf) return zoff__err(-ENOMEM, "zoff_save: out of memory");
    ZOFF_CHECK_GOTO(zdev_stream_sync(rt->dev, rt->h2d), st, out); /* uploads queued by step */
    for (int q = 0; q < rt->nparams; q++) {
        const zrt_param *p = &rt->params[q];
        for (size_t done = 0; done < p->numel; done += chunk) {
            size_t m = ZOFF_MIN(chunk, p->numel - done);
            int slot = (int)(rt->stage_next++ % ZRT_NSTAGE);
            ZOFF_CHECK_GOTO(zdev_event_sync(rt->dev, rt->stage_ev[slot]), st, out);
            const uint8_t *src = (const uint8_t *)p->dev_param + done * p->esize;
            ZOFF_CHECK_GOTO(zdev_memcpy_d2h(rt->dev, rt->stage[slot], src, m * p->esize, rt->d2h),
                            st, out);
            ZOFF_CHECK_GOTO(zdev_stream_sync(rt->dev, rt->d2h), st, out);
            const uint16_t *h = (const uint16_t *)rt->stage[slot];
            if (p->dtype == ZOFF_DTYPE_F32)
                memcpy(buf, rt->stage[slot], m * sizeof(float));
            else if (p->dtype == ZOFF_DTYPE_F16)
                for (size_t i = 0; i < m; i++) buf[i] = zoff_f16_to_f32(h[i]);
            else
                for (size_t i = 0; i < m; i++) buf[i] = zoff_bf16_to_f32(h[i]);
            ZOFF_CHECK_GOTO(zckpt_writer_write(w, (size_t)rt->nparams * 3 + (size_t)q, buf, m), st,
                            out);
        }
    }
out:
    free(buf);
    return st;
}

/* ---- several ranks --------------------------------------------------------------------------- */
/* Elements [*lo, *hi) of param p (param-relative) that this rank owns; 0 when none. */
static int own_part(const zoff_runtime *rt, const zrt_param *p, uint64_t *lo, uint64_t *hi)
{
    uint64_t a = ZOFF_MAX(p->flat_off, rt->own_begin);
    uint64_t b = ZOFF_MIN(p->flat_off + p->numel, rt->own_end);
    if (b <= a) return 0;
    *lo = a - p->flat_off;
    *hi = b - p->flat_off;
    return 1;
}

/* 1 in *any when a rank says failed (every rank calls it at the same point). */
static zoff_status agree_failed(zoff_runtime *rt, int failed, int *any)
{
    double f = failed ? 1.0 : 0.0;
    ZOFF_CHECK(zcomm_all_reduce(rt->comm, &f, &f, 1, ZCOMM_F64, ZCOMM_MAX, NULL));
    *any = f != 0.0;
    return ZOFF_OK;
}

/* This rank's slices: for every param its range covers, the master and both moments, in
 * "<tensor>[begin:end]" pieces of the checkpoint's tensors (slice k of tensor tix[k]). */
typedef struct slice_ctx {
    zckpt_writer *w;
    float *scratch;
    int qfirst; /* first param of this rank's range: piece (q - qfirst) * 3 + j */
} slice_ctx;

static zoff_status slice_seg(zoff_runtime *rt, void *vctx, const zstore_part *part, int q,
                             size_t e0, size_t se, size_t n)
{
    slice_ctx *c = vctx;
    (void)e0;
    size_t k = (size_t)(q - c->qfirst) * 3;
    ZOFF_CHECK(zckpt_writer_write(c->w, k, part->master + se, n));
    for (int j = 0; j < 2; j++)
        ZOFF_CHECK(zckpt_writer_write(c->w, k + 1 + (size_t)j,
                                      moment_get(rt, part, j, se, n, c->scratch), n));
    return ZOFF_OK;
}

/* Writes this rank's slice file into tmp: *np pieces, records (tensor, begin, count, offset,
 * crc32c) in rec + 4 .. and the file's (failed, bytes, header crc, pieces) in rec[0..3]. */
static zoff_status write_own_slices(zoff_runtime *rt, const char *dir, const char *tmp,
                                    const zckpt_tensor *tensors, const zckpt_meta *meta,
                                    double *rec)
{
    zoff_status st = ZOFF_OK;
    zckpt_writer *w = NULL;
    int qfirst = -1;
    size_t np = 0;
    zckpt_tensor *pieces = calloc((size_t)rt->nparams * 3 + 1, sizeof *pieces);
    uint64_t *offs = calloc((size_t)rt->nparams * 3 + 1, sizeof *offs);
    uint32_t *crcs = calloc((size_t)rt->nparams * 3 + 1, sizeof *crcs);
    if (!pieces || !offs || !crcs) {
        st = zoff__err(-ENOMEM, "zoff_save: out of memory");
        goto out;
    }
    for (int q = 0; q < rt->nparams; q++) {
        uint64_t lo, hi;
        if (!own_part(rt, &rt->params[q], &lo, &hi)) continue;
        if (qfirst < 0) qfirst = q;
        for (int j = 0; j < 3; j++, np++) {
            const zckpt_tensor *t = &tensors[q * 3 + j];
            int len = snprintf(pieces[np].name, sizeof pieces[np].name, "%s[%llu:%llu]", t->name,
                               (unsigned long long)lo, (unsigned long long)hi);
            if (len < 0 || (size_t)len >= sizeof pieces[np].name) {
                st = zoff__err(ZOFF_EINVAL, "zoff_save: slice name of \"%s\" too long", t->name);
                goto out;
            }
            pieces[np].numel = hi - lo;
            rec[4 + np * 5 + 0] = (double)(q * 3 + j);
            rec[4 + np * 5 + 1] = (double)lo;
            rec[4 + np * 5 + 2] = (double)(hi - lo);
        }
    }
    ZOFF_CHECK_GOTO(zckpt_slice_writer_open(dir, tmp, rt->rank, pieces, np, &w), st, out);
    if (np > 0) {
        slice_ctx sc = {w, NULL, qfirst};
        ZOFF_CHECK_GOTO(scratch_alloc(rt, &sc.scratch), st, out);
        st = pass_range(rt, 0, rt->layout.store.nparts - 1, ZSTORE_READ, -1, slice_seg, &sc);
        free(sc.scratch);
        if (st < 0) goto out;
    }
    zckpt_file_rec fr;
    st = zckpt_slice_writer_finish(w, meta, offs, crcs, &fr);
    w = NULL;
    if (st < 0) goto out;
    rec[1] = (double)fr.bytes;
    rec[2] = (double)fr.header_crc;
    for (size_t k = 0; k < np; k++) {
        rec[4 + k * 5 + 3] = (double)offs[k];
        rec[4 + k * 5 + 4] = (double)crcs[k];
    }
out:
    zckpt_writer_abort(w);
    rec[0] = st < 0 ? 1.0 : 0.0;
    rec[3] = (double)np;
    free(pieces);
    free(offs);
    free(crcs);
    return st;
}

/* Several ranks (format 3): rank 0 checks and locks `<dir>` and prepares `<dir>.tmp-<pid>`; every
 * rank writes the slices its range covers into its own file there, in parallel, and all-gathers its
 * records (file size, header crc, each slice's tensor, range, offset and crc32c); rank 0 then
 * writes the manifest and swaps the directory into place, or removes it when any rank failed. Every
 * rank returns the same outcome; the previous checkpoint stays until the swap. */
static zoff_status check_and_lock(zoff_runtime *rt, const char *dir, int space);

static zoff_status save_sharded(zoff_runtime *rt, const char *dir, zckpt_tensor *tensors,
                                zckpt_meta *meta)
{
    zoff_status st = ZOFF_OK, wst = ZOFF_OK;
    size_t n = (size_t)rt->nranks, maxp = (size_t)rt->nparams * 3;
    char tmp[ZOFF_PATH_MAX + 64] = "";
    int tmp_live = 0;
    double *heads = calloc(4 * n, sizeof *heads), *all = NULL;
    double *mine = calloc(4 + 5 * maxp, sizeof *mine);
    size_t *cd = calloc(2 * n, sizeof *cd);
    zckpt_file_rec *files = calloc(n, sizeof *files);
    zckpt_slice *slices = NULL;
    char why[ZRT_ERR_MAX] = "";
    if (!heads || !mine || !cd || !files) {
        st = zoff__err(-ENOMEM, "zoff_save: out of memory");
        goto out;
    }
    zcomm_set_context(rt->comm, rt->step, "checkpoint save", -1);
    /* 1. rank 0: the temporary directory, named by its pid */
    double hdr[2] = {0.0, 0.0};
    if (rt->rank == 0) {
        long pid = 0;
        wst = check_and_lock(rt, dir, 0); /* inside the collective: a refusal reaches all */
        if (wst == ZOFF_OK) wst = zckpt_slices_begin(dir, &pid);
        hdr[0] = wst < 0 ? 1.0 : 0.0;
        hdr[1] = (double)pid;
        tmp_live = wst == ZOFF_OK;
    }
    ZOFF_CHECK_GOTO(zcomm_broadcast(rt->comm, hdr, 2, ZCOMM_F64, 0, NULL), st, out);
    if (hdr[0] != 0.0) {
        st = rt->rank == 0 ? wst
                           : zoff__err(ZOFF_EINVAL, "zoff_save: rank 0 could not prepare %s", dir);
        goto out;
    }
    /* the trainer's JSON is rank 0's (as the manifest's): every file's metadata copy agrees */
    ZOFF_CHECK_GOTO(
        zcomm_broadcast(rt->comm, meta->extra_json, sizeof meta->extra_json, ZCOMM_U8, 0, NULL), st,
        out);
    /* 2. every rank: its own slices, in parallel */
    wst = zckpt_slices_tmp_path(dir, (long)hdr[1], tmp, sizeof tmp);
    if (wst == ZOFF_OK) wst = write_own_slices(rt, dir, tmp, tensors, meta, mine);
    mine[0] = wst < 0 ? 1.0 : 0.0;
    if (wst < 0) snprintf(why, sizeof why, "%s", zoff__last_error_tls());
    /* 3. the records, to every rank (rank 0 writes the manifest) */
    for (size_t r = 0; r < n; r++) {
        cd[r] = 4;
        cd[n + r] = 4 * r;
    }
    memcpy(heads + 4 * (size_t)rt->rank, mine, 4 * sizeof *heads);
    ZOFF_CHECK_GOTO(zcomm_all_gatherv_inplace(rt->comm, heads, cd, cd + n, ZCOMM_F64, NULL), st,
                    out);
    size_t total = 0;
    int bad_rank = -1;
    for (size_t r = 0; r < n; r++) {
        cd[r] = 5 * (size_t)heads[4 * r + 3];
        cd[n + r] = total;
        total += cd[r];
        if (heads[4 * r] != 0.0 && bad_rank < 0) bad_rank = (int)r;
    }
    all = calloc(total + 1, sizeof *all);
    slices = calloc(total / 5 + 1, sizeof *slices);
    if (!all || !slices) { /* every rank allocates the same: they fail together */
        st = zoff__err(-ENOMEM, "zoff_save: out of memory");
        goto out;
    }
    memcpy(all + cd[n + (size_t)rt->rank], mine + 4, cd[rt->rank] * sizeof *all);
    ZOFF_CHECK_GOTO(zcomm_all_gatherv_inplace(rt->comm, all, cd, cd + n, ZCOMM_F64, NULL), st, out);
    /* 4. rank 0: the manifest and the swap, or nothing */
    double failed = bad_rank >= 0 ? 1.0 : 0.0;
    if (rt->rank == 0 && bad_rank < 0) {
        size_t ns = 0;
        for (size_t r = 0; r < n; r++) {
            files[r].bytes = (uint64_t)heads[4 * r + 1];
            files[r].header_crc = (uint32_t)heads[4 * r + 2];
            for (size_t k = 0; k < cd[r] / 5; k++, ns++) {
                const double *x = all + cd[n + r] + 5 * k;
                slices[ns].tensor = (size_t)x[0];
                slices[ns].file = (int)r;
                slices[ns].begin = (uint64_t)x[1];
                slices[ns].count = (uint64_t)x[2];
                slices[ns].offset = (uint64_t)x[3];
                slices[ns].crc32c = (uint32_t)x[4];
            }
        }
        tmp_live = 0; /* commit removes it on failure */
        wst = zckpt_slices_commit(dir, tmp, tensors, maxp, meta, files, (int)n, slices, ns);
        if (wst < 0) {
            snprintf(why, sizeof why, "%s", zoff__last_error_tls());
            failed = 2.0;
        }
    }
    ZOFF_CHECK_GOTO(zcomm_broadcast(rt->comm, &failed, 1, ZCOMM_F64, 0, NULL), st, out);
    if (failed == 0.0) goto out;
    if (wst < 0)
        st = zoff__err(wst, "%s", why);
    else if (failed == 1.0)
        st = zoff__err(ZOFF_EINVAL,
                       "zoff_save: rank %d could not write its slices of %s (its message says "
                       "why); no rank committed",
                       bad_rank, dir);
    else
        st = zoff__err(ZOFF_EINVAL, "zoff_save: rank 0 could not write the manifest of %s", dir);
out:
    if (tmp_live) zckpt_slices_abort(tmp); /* rank 0: never committed */
    free(heads);
    free(mine);
    free(all);
    free(cd);
    free(files);
    free(slices);
    return st;
}

/* 16-bit (or fp32) copy of n master values in the param's dtype. */
static void cast_param(const zrt_param *p, const float *src, size_t n, void *dst)
{
    uint16_t *h = dst;
    if (p->dtype == ZOFF_DTYPE_F32)
        memcpy(dst, src, n * sizeof(float));
    else if (p->dtype == ZOFF_DTYPE_F16)
        for (size_t i = 0; i < n; i++) h[i] = zoff_f32_to_f16(src[i]);
    else
        for (size_t i = 0; i < n; i++) h[i] = zoff_f32_to_bf16(src[i]);
}

/* Several ranks, step 2: the slices covering this rank's range, crc-checked, before anything
 * changes. */
static zoff_status verify_own(zoff_runtime *rt, zckpt_reader *r, const size_t *idx)
{
    for (int q = 0; q < rt->nparams; q++) {
        uint64_t lo, hi;
        if (!own_part(rt, &rt->params[q], &lo, &hi)) continue;
        for (int j = 0; j < 3; j++)
            ZOFF_CHECK(zckpt_reader_read_range(r, idx[q * 4 + (size_t)j], lo, NULL, hi - lo));
    }
    return ZOFF_OK;
}

/* Several ranks, step 3: every rank reads exactly its own range of each tensor (from whichever
 * slices hold it), stores it, and the 16-bit params are all-gathered from the owners. A failure
 * still takes part in the gather (the caller agrees on the outcome). */
static zoff_status load_sharded(zoff_runtime *rt, zckpt_reader *r, const size_t *idx)
{
    zoff_status st = ZOFF_OK;
    size_t maxn = 0;
    for (int q = 0; q < rt->nparams; q++) maxn = ZOFF_MAX(maxn, rt->params[q].numel);
    float *buf[3] = {malloc(maxn * sizeof(float) + 1), malloc(maxn * sizeof(float) + 1),
                     malloc(maxn * sizeof(float) + 1)};
    if (!buf[0] || !buf[1] || !buf[2]) st = zoff__err(-ENOMEM, "zoff_load: out of memory");
    for (int q = 0; q < rt->nparams && st == ZOFF_OK; q++) {
        zrt_param *p = &rt->params[q];
        uint64_t lo, hi;
        if (!own_part(rt, p, &lo, &hi)) continue;
        for (int j = 0; j < 3 && st == ZOFF_OK; j++)
            st = zckpt_reader_read_range(r, idx[q * 4 + (size_t)j], lo, buf[j] + lo, hi - lo);
        if (st == ZOFF_OK) st = zrt_state_io(rt, q, buf[0], buf[1], buf[2], 1);
        if (st == ZOFF_OK)
            cast_param(p, buf[0] + lo, (size_t)(hi - lo), rt->pgather + p->buf_off + lo * p->esize);
    }
    for (int q = 0; q < rt->nparams; q++) rt->params[q].upd_skip = 0; /* every param gathered */
    char why[ZRT_ERR_MAX] = "";
    if (st < 0) snprintf(why, sizeof why, "%s", zoff__last_error_tls());
    zcomm_set_context(rt->comm, rt->step, "checkpoint load", -1);
    zoff_status gs = zrt_shard_gather(rt);
    if (st == ZOFF_OK && gs == ZOFF_OK) gs = zdev_stream_sync(rt->dev, rt->h2d);
    for (int j = 0; j < 3; j++) free(buf[j]);
    if (st < 0) return zoff__err(st, "%s", why);
    return gs;
}

static zoff_status save_impl(zoff_runtime *rt, const char *dir, const char *user_json)
{
    zoff_status st = ZOFF_OK;
    zckpt_writer *w = NULL;
    zckpt_tensor *tensors = NULL;
    zckpt_meta *meta = NULL;
    if (!dir || !dir[0]) return zoff__err(ZOFF_EINVAL, "zoff_save: empty directory name");
    if (user_json && user_json[0]) {
        if (strlen(user_json) >= sizeof meta->extra_json)
            return zoff__err(ZOFF_EINVAL, "zoff_save_with: user_json is %zu bytes (at most %zu)",
                             strlen(user_json), sizeof meta->extra_json - 1);
        const char *bad_at = NULL;
        cJSON *j = cJSON_ParseWithOpts(user_json, &bad_at, 1);
        int ok = j && cJSON_IsObject(j);
        cJSON_Delete(j);
        if (!ok) {
            /* JSON has no NaN or Infinity: a trainer writing "%g" of a NaN loss ends up here */
            const char *near = (!j && bad_at && bad_at >= user_json) ? bad_at : user_json;
            return zoff__err(ZOFF_EINVAL,
                             "zoff_save_with: user_json is not a JSON object%s%.40s%s (JSON has "
                             "no NaN/Infinity: write null for a non-finite number); the previous "
                             "checkpoint at %s is unchanged",
                             j ? "" : ": invalid near \"", j ? "" : near, j ? "" : "\"", dir);
        }
    }
    ZOFF_CHECK(zrt_drain(rt));
    meta = calloc(1, sizeof *meta);
    if (!meta) return zoff__err(-ENOMEM, "zoff_save: out of memory");
    /* overlap delayed between a launched update and the upload of its params: the device is
     * one update behind the master, and an exact resume needs what it holds */
    int device = rt->overlap == ZOFF_OVERLAP_DELAYED && rt->hold_active;
    size_t per = device ? 4 : 3;
    ZOFF_CHECK_GOTO(tensor_list(rt, device, &tensors), st, out);
    if (rt->nranks > 1) { /* the metadata first: rank 0 commits it after the gathers */
        meta->pipeline_overlap = (int)rt->overlap;
        meta->pipeline_steps = rt->sync_steps_done;
        meta->step = rt->step;
        meta->loss_scale = rt->scaler.scale;
        meta->scaler_good_steps = rt->scaler.good_steps;
        meta->scaler_hysteresis = rt->scaler.hysteresis;
        meta->ngroups = rt->ngroups;
        for (int g = 0; g < rt->ngroups; g++) meta->groups[g] = rt->groups[g].cfg;
        if (user_json) snprintf(meta->extra_json, sizeof meta->extra_json, "%s", user_json);
        snprintf(meta->optimizer, sizeof meta->optimizer, "%s",
                 zopt_kind_name((zopt_kind)rt->cfg.optimizer_type));
        snprintf(meta->state_format, sizeof meta->state_format, "%s",
                 zstate_fmt_name((zstate_fmt)rt->cfg.state_format));
        st = save_sharded(rt, dir, tensors, meta);
        goto out;
    }
    ZOFF_CHECK_GOTO(zckpt_writer_open(dir, tensors, (size_t)rt->nparams * per, &w), st, out);
    save_ctx sc = {w, NULL};
    ZOFF_CHECK_GOTO(scratch_alloc(rt, &sc.scratch), st, out);
    st = pass_range(rt, 0, rt->layout.store.nparts - 1, ZSTORE_READ, -1, save_seg, &sc);
    free(sc.scratch);
    if (st < 0) goto out;
    if (device) ZOFF_CHECK_GOTO(save_device_params(rt, w), st, out);
    meta->pipeline_overlap = (int)rt->overlap;
    meta->pipeline_steps = rt->sync_steps_done;
    meta->pipeline_delayed_update = device;
    snprintf(meta->optimizer, sizeof meta->optimizer, "%s",
             zopt_kind_name((zopt_kind)rt->cfg.optimizer_type));
    snprintf(meta->state_format, sizeof meta->state_format, "%s",
             zstate_fmt_name((zstate_fmt)rt->cfg.state_format));
    meta->step = rt->step;
    meta->loss_scale = rt->scaler.scale;
    meta->scaler_good_steps = rt->scaler.good_steps;
    meta->scaler_hysteresis = rt->scaler.hysteresis;
    meta->ngroups = rt->ngroups;
    for (int g = 0; g < rt->ngroups; g++) meta->groups[g] = rt->groups[g].cfg;
    if (user_json) snprintf(meta->extra_json, sizeof meta->extra_json, "%s", user_json);
    st = zckpt_writer_commit(w, meta); /* frees w whatever the outcome */
    w = NULL;
    if (st == ZOFF_OK) ZOFF_INFO(ZOFF_SUB_CKPT, "saved step %lld to %s", (long long)rt->step, dir);
out:
    if (w) zckpt_writer_abort(w);
    free(tensors);
    free(meta);
    return st;
}

/* Bytes of this runtime's checkpoint (3 tensors per param, the device copies when delayed). */
static uint64_t ckpt_bytes(const zoff_runtime *rt)
{
    uint64_t numel = 0;
    for (int q = 0; q < rt->nparams; q++) numel += rt->params[q].numel;
    return zckpt_bytes_for((uint64_t)rt->nparams * 4, numel * 4);
}

/* Checks `dir` and locks it for this runtime (keeps the lock of an earlier call for the same
 * dir; releases one for another dir). */
static zoff_status check_and_lock(zoff_runtime *rt, const char *dir, int space)
{
    int same = rt->ckpt_lock_fd >= 0 && strcmp(rt->ckpt_lock_dir, dir) == 0;
    if (same && !space) return ZOFF_OK;
    int fd = -1;
    ZOFF_CHECK(zckpt_target_check(dir, space ? ckpt_bytes(rt) : 0, same ? NULL : &fd));
    if (same) return ZOFF_OK;
    zoff__release_ckpt_lock(rt);
    rt->ckpt_lock_fd = fd;
    snprintf(rt->ckpt_lock_dir, sizeof rt->ckpt_lock_dir, "%s", dir);
    return ZOFF_OK;
}

void zoff__release_ckpt_lock(zoff_runtime *rt)
{
    if (rt->ckpt_lock_fd >= 0) zckpt_target_unlock(rt->ckpt_lock_dir, rt->ckpt_lock_fd);
    rt->ckpt_lock_fd = -1;
    rt->ckpt_lock_dir[0] = '\0';
}

ZOFF_API zoff_status zoff_checkpoint_check(zoff_runtime *rt, const char *dir)
{
    zoff__clear_error();
    if (!rt || !dir || !dir[0])
        return zoff__err(ZOFF_EINVAL, "zoff_checkpoint_check: rt and dir must be given");
    if (rt->state == ZRT_CREATED)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE,
                                     "zoff_checkpoint_check before zoff_finalize (the size of a "
                                     "checkpoint is known once the parameters are)"));
    if (rt->nranks > 1 && rt->rank != 0) return ZOFF_OK; /* rank 0 writes */
    return zrt_ret(rt, check_and_lock(rt, dir, 1));
}

ZOFF_API zoff_status zoff_save_with(zoff_runtime *rt, const char *dir, const char *user_json)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_save: rt is NULL");
    if (rt->state == ZRT_CREATED)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE, "zoff_save before zoff_finalize"));
    if (rt->state == ZRT_BROKEN)
        return zrt_ret(
            rt, zoff__err(ZOFF_ESTATE, "zoff_save: the runtime is unusable: %s", rt->broken));
    if (rt->overlap == ZOFF_OVERLAP_EAGER && rt->declared_count > 0)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE,
                                     "zoff_save in the middle of an eager step (%d "
                                     "gradients declared, partitions may be half "
                                     "updated): save between steps",
                                     rt->declared_count));
    if (rt->micro > 0 || (rt->accum > 1 && rt->declared_count > 0))
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE,
                                     "zoff_save in the middle of a gradient accumulation window "
                                     "(%d of %d micro-batches summed, %d gradients of the next "
                                     "handed over): the partial sums are not part of a "
                                     "checkpoint; save right after the zoff_step that updated "
                                     "(zoff_step_result.accumulating == 0)",
                                     rt->micro, rt->accum, rt->declared_count));
    zoff_status st = ZOFF_OK;
    if (dir && dir[0] && rt->nranks <= 1) st = check_and_lock(rt, dir, 0); /* ranks: rank 0's */
    if (st == ZOFF_OK) st = save_impl(rt, dir, user_json);
    if (st < 0 && dir && dir[0]) {
        /* the writer never touches the previous checkpoint before the new one is whole */
        char msg[ZRT_ERR_MAX];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        zckpt_reader *r = NULL;
        zckpt_meta *m = calloc(1, sizeof *m);
        if (m && zckpt_reader_open(dir, &r) == ZOFF_OK && zckpt_reader_meta(r, m) == ZOFF_OK)
            zoff__err(st,
                      "%s; the previous checkpoint at %s (step %lld) is still valid, and the "
                      "training state in memory is intact",
                      msg, dir, (long long)m->step);
        else
            zoff__err(st, "%s; nothing was changed at %s", msg, dir);
        zckpt_reader_close(r);
        free(m);
    }
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_save(zoff_runtime *rt, const char *dir)
{
    return zoff_save_with(rt, dir, NULL);
}

/* ---- load ------------------------------------------------------------------------------------ */
typedef struct load_ctx {
    zckpt_reader *r;
    size_t *idx; /* checkpoint tensor index of param q's tensor j: idx[q*4+j] (j = 3: the
                    device copy, with a delayed update pending) */
    float *scratch;
} load_ctx;

static zoff_status load_seg(zoff_runtime *rt, void *vctx, const zstore_part *part, int q, size_t e0,
                            size_t se, size_t n)
{
    load_ctx *c = vctx;
    ZOFF_CHECK(zckpt_reader_read(c->r, c->idx[q * 4 + 0], part->master + se, n));
    for (int j = 0; j < 2; j++) {
        float *dst = c->scratch;
        if (!dst) dst = j ? part->exp_avg_sq + se : part->exp_avg + se; /* fp32 Adam: in place */
        ZOFF_CHECK(zckpt_reader_read(c->r, c->idx[q * 4 + 1 + (size_t)j], dst, n));
        moment_set(rt, part, j, se, n, dst);
    }
    return zrt_upload_master(rt, &rt->params[q], e0, part->master + se, n);
}

/* Uploads the ".device_param" tensors (idx[q*4+3]) to the device params (not the hold). */
static zoff_status load_device_params(zoff_runtime *rt, zckpt_reader *r, const size_t *idx)
{
    zoff_status st = ZOFF_OK;
    size_t chunk = rt->layout.stage_bytes / sizeof(float);
    float *buf = malloc(chunk * sizeof(float));
    if (!buf) return zoff__err(-ENOMEM, "zoff_load: out of memory");
    for (int q = 0; q < rt->nparams && st == ZOFF_OK; q++) {
        const zrt_param *p = &rt->params[q];
        for (size_t done = 0; done < p->numel && st == ZOFF_OK; done += chunk) {
            size_t m = ZOFF_MIN(chunk, p->numel - done);
            st = zckpt_reader_read(r, idx[q * 4 + 3], buf, m);
            if (st == ZOFF_OK) st = zrt_upload_master(rt, p, done, buf, m);
        }
    }
    free(buf);
    return st;
}

static zoff_status load_impl(zoff_runtime *rt, const char *dir, char *user_json, size_t len)
{
    zoff_status st = ZOFF_OK;
    zckpt_reader *r = NULL;
    zckpt_meta *meta = NULL;
    size_t *idx = NULL;
    int agreed = 0; /* several ranks: the "can every rank load" vote was taken */
    if (!dir || !dir[0]) st = zoff__err(ZOFF_EINVAL, "zoff_load: empty directory name");
    if (st == ZOFF_OK) st = zrt_drain(rt);
    if (st < 0) goto out;
    meta = calloc(1, sizeof *meta);
    idx = calloc((size_t)rt->nparams * 4, sizeof *idx);
    if (!meta || !idx) {
        st = zoff__err(-ENOMEM, "zoff_load: out of memory");
        goto out;
    }
    ZOFF_CHECK_GOTO(zckpt_reader_open(dir, &r), st, out);
    ZOFF_CHECK_GOTO(zckpt_reader_meta(r, meta), st, out);

    /* 1. names and shapes */
    int device = meta->pipeline_delayed_update;
    int per = device ? 4 : 3;
    for (int q = 0; q < rt->nparams; q++)
        for (int j = 0; j < per; j++) {
            char name[ZCKPT_NAME_MAX];
            snprintf(name, sizeof name, "%s%s", rt->params[q].name,
                     j < 3 ? suffix[j] : device_suffix);
            size_t k = 0;
            if (zckpt_reader_find(r, name, &k) < 0) {
                st = zoff__err(ZOFF_EMISMATCH, "checkpoint %s has no tensor '%s' (parameter %d)",
                               dir, name, q);
                goto out;
            }
            const zckpt_tensor *t = zckpt_reader_tensor(r, k);
            if (t->numel != rt->params[q].numel) {
                st = zoff__err(ZOFF_EMISMATCH,
                               "checkpoint %s: tensor '%s' has %llu elements, the registered "
                               "parameter has %zu",
                               dir, name, (unsigned long long)t->numel, rt->params[q].numel);
                goto out;
            }
            idx[q * 4 + j] = k;
        }
    if (zckpt_reader_count(r) != (size_t)rt->nparams * (size_t)per) {
        /* name the first tensor no registered parameter claims */
        for (size_t k = 0; k < zckpt_reader_count(r); k++) {
            int used = 0;
            for (size_t i = 0; i < (size_t)rt->nparams * 4 && !used; i++)
                used = (int)(i % 4) < per && idx[i] == k;
            if (!used) {
                st = zoff__err(ZOFF_EMISMATCH,
                               "checkpoint %s: tensor '%s' belongs to no registered parameter", dir,
                               zckpt_reader_tensor(r, k)->name);
                goto out;
            }
        }
        st = zoff__err(ZOFF_EMISMATCH, "checkpoint %s holds %zu tensors, expected %d", dir,
                       zckpt_reader_count(r), rt->nparams * per);
        goto out;
    }
    if (meta->ngroups != rt->ngroups) {
        st = zoff__err(ZOFF_EMISMATCH, "checkpoint %s has %d parameter groups, the runtime %d", dir,
                       meta->ngroups, rt->ngroups);
        goto out;
    }
    if (user_json && strlen(meta->extra_json) + 1 > len) {
        st = zoff__err(ZOFF_EINVAL,
                       "zoff_load_with: the stored user JSON is %zu bytes, the buffer %zu",
                       strlen(meta->extra_json) + 1, len);
        goto out;
    }
    /* the optimizer must match; the moment format is converted */
    {
        const char *opt = meta->optimizer[0] ? meta->optimizer : "adam";
        const char *fmt = meta->state_format[0] ? meta->state_format : "fp32";
        zopt_kind k;
        zstate_fmt f;
        if (zopt_kind_parse(opt, &k) < 0) {
            st = zoff__err(ZOFF_EMISMATCH,
                           "checkpoint %s: unknown optimizer '%s' (this zoff knows adam, lion, "
                           "adagrad)",
                           dir, opt);
            goto out;
        }
        if (zstate_fmt_parse(fmt, &f) < 0) {
            st = zoff__err(ZOFF_EMISMATCH,
                           "checkpoint %s: unknown optimizer state format '%s' (this zoff knows "
                           "fp32, bf16, q8)",
                           dir, fmt);
            goto out;
        }
        if ((int)k != rt->cfg.optimizer_type) {
            st = zoff__err(ZOFF_EMISMATCH,
                           "checkpoint %s holds %s state, the runtime runs %s: the moments do not "
                           "carry over between optimizers",
                           dir, zopt_kind_name(k),
                           zopt_kind_name((zopt_kind)rt->cfg.optimizer_type));
            goto out;
        }
        if ((int)f != rt->cfg.state_format)
            ZOFF_INFO(ZOFF_SUB_CKPT,
                      "checkpoint %s was saved with %s moments; converting them to this "
                      "runtime's %s format",
                      dir, zstate_fmt_name(f), zstate_fmt_name((zstate_fmt)rt->cfg.state_format));
    }
    /* 2. checksums of every tensor (several ranks: of the slices covering this rank's range),
     * before anything is touched; with several ranks every rank goes on only when all can */
    if (rt->nranks > 1) {
        ZOFF_CHECK_GOTO(verify_own(rt, r, idx), st, out);
        int any = 0;
        agreed = 1;
        zcomm_set_context(rt->comm, rt->step, "checkpoint load", -1);
        ZOFF_CHECK_GOTO(agree_failed(rt, 0, &any), st, out);
        if (any) {
            st = zoff__err(ZOFF_EMISMATCH,
                           "zoff_load: another rank could not load %s (its message says why); "
                           "nothing was changed",
                           dir);
            goto out;
        }
    } else {
        ZOFF_CHECK_GOTO(zckpt_reader_verify(r), st, out);
    }

    /* 3. the state, partition by partition, re-uploading the 16-bit params; a delayed run
     * saved with an update pending goes on exactly: the cast of the master waits in the hold
     * buffer, the device gets what it held */
    zrt_drop_hold(rt);
    int same_pipeline =
        rt->overlap == ZOFF_OVERLAP_DELAYED && meta->pipeline_overlap == ZOFF_OVERLAP_DELAYED;
    int restore_hold = same_pipeline && device;
    if (device && !restore_hold)
        ZOFF_INFO(ZOFF_SUB_CKPT,
                  "checkpoint %s was saved by overlap delayed with an update pending; this "
                  "runtime is not `delayed`: the device gets the master's (newer) values",
                  dir);
    rt->hold_active = restore_hold; /* the uploads below also fill the hold buffer */
    load_ctx c = {r, idx, NULL};
    ZOFF_CHECK_GOTO(scratch_alloc(rt, &c.scratch), st, out);
    if (rt->nranks > 1)
        st = load_sharded(rt, r, idx);
    else
        st = pass_range(rt, 0, rt->layout.store.nparts - 1, ZSTORE_WRITE, -1, load_seg, &c);
    free(c.scratch);
    zrt_drop_hold(rt);
    if (st == ZOFF_OK && restore_hold) st = load_device_params(rt, r, idx);
    if (st < 0) {
        st = zrt_break(rt, st);
        goto out;
    }
    if (restore_hold) zrt_hold_restore(rt);
    rt->step = meta->step;
    for (int q = 0; q < rt->nparams; q++) {
        const zckpt_tensor *t = zckpt_reader_tensor(r, idx[q * 4]);
        rt->params[q].step = t->has_step ? t->adam_step : meta->step;
    }
    rt->scaler.scale = meta->loss_scale;
    rt->scaler.good_steps = meta->scaler_good_steps;
    rt->scaler.hysteresis = meta->scaler_hysteresis;
    for (int g = 0; g < rt->ngroups; g++) {
        rt->groups[g].cfg = meta->groups[g];
        rt->groups[g].cfg.struct_size = sizeof(zoff_group_config);
    }
    rt->sync_steps_done = same_pipeline ? meta->pipeline_steps : 0; /* no second warm-up */
    rt->delayed_unreported = 0;
    if (user_json) snprintf(user_json, len, "%s", meta->extra_json);
    ZOFF_INFO(ZOFF_SUB_CKPT, "loaded step %lld from %s", (long long)rt->step, dir);
out:
    if (rt->nranks > 1 && !agreed) { /* tell the others this rank cannot load */
        char why[ZRT_ERR_MAX];
        snprintf(why, sizeof why, "%s", zoff__last_error_tls());
        int any = 0;
        zcomm_set_context(rt->comm, rt->step, "checkpoint load", -1);
        zoff_status cs = agree_failed(rt, 1, &any);
        st = cs < 0 ? cs : zoff__err(st, "%s", why);
    }
    zckpt_reader_close(r);
    free(meta);
    free(idx);
    return st;
}

ZOFF_API zoff_status zoff_load_with(zoff_runtime *rt, const char *dir, char *user_json, size_t len)
{
    zoff__clear_error();
    if (!rt) return zoff__err(ZOFF_EINVAL, "zoff_load: rt is NULL");
    if (rt->state == ZRT_CREATED)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE, "zoff_load before zoff_finalize: register the "
                                                  "parameters and finalize, then load"));
    if (rt->state == ZRT_BROKEN)
        return zrt_ret(
            rt, zoff__err(ZOFF_ESTATE, "zoff_load: the runtime is unusable: %s", rt->broken));
    if (rt->declared_count > 0)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE,
                                     "zoff_load in the middle of a step (%d "
                                     "gradients declared): load between steps",
                                     rt->declared_count));
    if (rt->micro > 0)
        return zrt_ret(rt, zoff__err(ZOFF_ESTATE,
                                     "zoff_load in the middle of a gradient accumulation window "
                                     "(%d of %d micro-batches summed): load at a boundary",
                                     rt->micro, rt->accum));
    zoff_status st = load_impl(rt, dir, user_json, len);
    if (rt->nranks > 1) { /* every rank loads or none goes on */
        char why[ZRT_ERR_MAX] = "";
        if (st < 0) snprintf(why, sizeof why, "%s", zoff__last_error_tls());
        double failed = st < 0 ? 1.0 : 0.0;
        zcomm_set_context(rt->comm, rt->step, "checkpoint load", -1);
        zoff_status cs =
            zcomm_all_reduce(rt->comm, &failed, &failed, 1, ZCOMM_F64, ZCOMM_MAX, NULL);
        if (cs < 0) return zrt_ret(rt, zrt_break(rt, cs));
        if (st < 0) return zrt_ret(rt, zoff__err(st, "%s", why));
        if (failed != 0.0)
            return zrt_ret(rt, zrt_break(rt, zoff__err(ZOFF_EMISMATCH,
                                                       "zoff_load: another rank could not load "
                                                       "%s",
                                                       dir)));
    }
    if (st == ZOFF_OK) zrt_sched_apply(rt); /* the schedule continues from the loaded step */
    return zrt_ret(rt, st);
}

ZOFF_API zoff_status zoff_load(zoff_runtime *rt, const char *dir)
{
    return zoff_load_with(rt, dir, NULL, 0);
}
