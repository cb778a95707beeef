/*
 * shard.c — several ranks (one process per GPU), the ZeRO way: rank r of N owns the flat range
 * [r * S, min((r + 1) * S, total)) with S = ceil(total / N) and keeps only that range's fp32
 * master and Adam state (in its own store, on its own NUMA node, cores and swap paths).
 *
 * A step (sync overlap): every rank's 16-bit gradients land in its host gradient buffer as today;
 * they are widened to fp32 in flat order and averaged over the ranks through the collective layer
 * (stage 2: reduce-scatter, each rank receives its range; stages 0/1: all-reduce, each rank uses
 * its range) in rank order (comm/mpi.c), so the result does not depend on MPI. One small all-
 * reduce then agrees on the sum of squares and the non-finite counts, so every rank takes the
 * same skip / clip decision. Each rank runs the fused CPU Adam on its range only (fp32 gradients),
 * uploads its new 16-bit range, and the ranges are all-gathered (bytes, in place) so every rank
 * uploads the others' parts into its own parameters.
 *
 * Owns: the communicator, the fp32 reduce buffers, the 16-bit gather buffer, the CPU split and
 * the swap-path choice of this rank.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/half.h"
#include "runtime/rt.h"

/* zoff_use_collectives: the process-wide table the next runtimes take (copied at zoff_create). */
static pthread_mutex_t g_coll_mu = PTHREAD_MUTEX_INITIALIZER;
static zoff_collectives g_coll;
static int g_coll_set;

ZOFF_API zoff_status zoff_use_collectives(const zoff_collectives *c)
{
    zoff__clear_error();
    if (c) {
        if (c->struct_size == 0 || c->struct_size > sizeof *c)
            return zoff__err(ZOFF_EINVAL, "zoff_use_collectives: struct_size %zu (expected %zu)",
                             c->struct_size, sizeof *c);
        if (!c->all_gather || c->size < 1 || c->rank < 0 || c->rank >= c->size)
            return zoff__err(ZOFF_EINVAL,
                             "zoff_use_collectives: need all_gather and 0 <= rank (%d) < size (%d)",
                             c->rank, c->size);
    }
    pthread_mutex_lock(&g_coll_mu);
    memset(&g_coll, 0, sizeof g_coll);
    if (c) memcpy(&g_coll, c, c->struct_size);
    g_coll_set = c != NULL;
    pthread_mutex_unlock(&g_coll_mu);
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_nccl_unique_id(unsigned char id[ZOFF_NCCL_UNIQUE_ID_BYTES])
{
    zoff__clear_error();
    return zcomm_nccl_unique_id(id);
}

_Static_assert(ZOFF_NCCL_UNIQUE_ID_BYTES == ZCOMM_UNIQUE_ID_BYTES, "unique id sizes");

zoff_status zrt_shard_create(zoff_runtime *rt)
{
    rt->nranks = 1;
    rt->rank = 0;
    if (rt->cfg.ranks == 1) return ZOFF_OK;
    zoff_collectives coll;
    pthread_mutex_lock(&g_coll_mu);
    coll = g_coll;
    int have = g_coll_set && g_coll.size > 1;
    pthread_mutex_unlock(&g_coll_mu);
    int r, n, lr, ln;
    zcomm_env_ranks(&r, &n, &lr, &ln);
    if (have) n = coll.size;
    if (n <= 1) return ZOFF_OK;
    if (rt->cfg.zero_stage == 3)
        return zoff__err(ZOFF_ECONFIG, "zero_optimization.stage 3 (parameter partitioning) is not "
                                       "built; with several ranks use stage 1 or 2");
    if (rt->cfg.state_format == ZOFF_STATE_Q8)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.state_format \"q8\" with several ranks is not built (the rank "
                         "ranges would have to follow the q8 blocks through the gradient "
                         "exchange); use \"bf16\" or \"fp32\" moments with several ranks");
    if (!have && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK") &&
        !getenv("SLURM_NTASKS"))
        return zoff__err(ZOFF_EUNSUPPORTED,
                         "the environment says %d ranks (WORLD_SIZE: torchrun?) but no MPI "
                         "launcher started them and no collectives were handed in: run under "
                         "mpirun/srun, or supply the transport with zoff_use_collectives "
                         "(zoff.torch does with torch.distributed; docs/multi-gpu.md); set "
                         "zoff.ranks = 1 to run this process alone",
                         n);
    zcomm_config cc;
    zcomm_config_default(&cc);
    cc.timeout_ms = rt->cfg.comm_timeout_ms;
    cc.dev = rt->dev;
    /* host-memory collectives (agreements, the parameter all-gather, the host path; on the sim
     * device also the buckets): MPI, or the caller's transport */
    cc.backend = ZCOMM_MPI;
    zcomm_callbacks cb;
    if (have) {
        cb = (zcomm_callbacks){.user = coll.user,
                               .rank = coll.rank,
                               .size = coll.size,
                               .local_rank = coll.local_rank,
                               .local_size = coll.local_size,
                               .all_gather = coll.all_gather};
        cc.backend = ZCOMM_CALLBACK;
        cc.callbacks = &cb;
        if (coll.have_nccl_unique_id) {
            memcpy(rt->nccl_id, coll.nccl_unique_id, sizeof rt->nccl_id);
            rt->nccl_id_given = 1;
        }
    }
    ZOFF_CHECK(zcomm_create(&cc, &rt->comm));
    rt->nranks = zcomm_size(rt->comm);
    rt->rank = zcomm_rank(rt->comm);
    if (rt->overlap != ZOFF_OVERLAP_SYNC) {
        ZOFF_WARN(ZOFF_SUB_STEP,
                  "rank %d: several ranks run overlap sync (eager/delayed are "
                  "single-rank modes)",
                  rt->rank);
        rt->overlap = ZOFF_OVERLAP_SYNC;
    }
    if (rt->cfg.zero_stage == 0)
        ZOFF_INFO(ZOFF_SUB_STEP, "zero_optimization.stage 0 with several ranks: gradients are "
                                 "all-reduced and the optimizer state is sharded (stage 1)");
    return ZOFF_OK;
}

void zrt_shard_range(zoff_runtime *rt)
{
    if (rt->nranks <= 1) {
        rt->own_begin = 0;
        rt->own_end = rt->total_numel;
        return;
    }
    uint64_t n = (uint64_t)rt->nranks;
    rt->shard_numel = (rt->total_numel + n - 1) / n;
    rt->own_begin = ZOFF_MIN((uint64_t)rt->rank * rt->shard_numel, rt->total_numel);
    rt->own_end = ZOFF_MIN(rt->own_begin + rt->shard_numel, rt->total_numel);
    if (rt->own_end == rt->own_begin) { /* tiny models: a rank may own nothing */
        rt->own_begin = rt->own_end = rt->total_numel;
    }
}

/* Byte offset in the gradient/gather buffer layout of flat element e (e == total: the end). */
static size_t flat_to_byte(const zoff_runtime *rt, uint64_t e)
{
    if (e >= rt->total_numel) return (size_t)rt->param_bytes;
    int lo = 0, hi = rt->nparams - 1;
    while (lo < hi) { /* last param with flat_off <= e */
        int mid = (lo + hi + 1) / 2;
        if (rt->params[mid].flat_off <= e)
            lo = mid;
        else
            hi = mid - 1;
    }
    const zrt_param *p = &rt->params[lo];
    return p->buf_off + (size_t)(e - p->flat_off) * p->esize;
}

static uint64_t host_hash(void)
{
    char h[256] = "";
    gethostname(h, sizeof h - 1);
    uint64_t x = 1469598103934665603ull;
    for (const char *c = h; *c; c++) x = (x ^ (uint8_t)*c) * 1099511628211ull;
    return x & ((1ull << 52) - 1); /* exact in a double */
}

zoff_status zrt_shard_place(zoff_runtime *rt, char *paths, size_t len)
{
    if (rt->nranks <= 1) return ZOFF_OK;
    /* CPUs: ranks on the same host that chose the same NUMA node split its cores */
    size_t n = (size_t)rt->nranks;
    double *all = calloc(2 * n, sizeof *all);
    if (!all) return zoff__err(-ENOMEM, "ranks: out of memory");
    double mine[2] = {(double)host_hash(), (double)rt->topo.numa_node};
    zcomm_set_context(rt->comm, 0, "finalize: placement", -1);
    zoff_status st = zcomm_all_gather(rt->comm, mine, all, 2, ZCOMM_F64, NULL);
    if (st < 0) {
        free(all);
        return st;
    }
    int index = 0, count = 0;
    for (size_t r = 0; r < n; r++) {
        if (all[2 * r] != mine[0] || all[2 * r + 1] != mine[1]) continue;
        if ((int)r < rt->rank) index++;
        count++;
    }
    free(all);
    ztopo_split_cpus(&rt->topo, index, count, &rt->topo);
    /* swap paths: with several paths, local rank l takes paths l, l + L, l + 2L, ... (L local
     * ranks); with fewer paths than local ranks, path l % npaths */
    int l = zcomm_local_rank(rt->comm), L = zcomm_local_size(rt->comm);
    if (paths[0]) {
        char out[ZOFF_PATH_MAX];
        ztopo_rank_paths(paths, l, L, out, sizeof out);
        snprintf(paths, len, "%s", out);
    }
    ZOFF_INFO(ZOFF_SUB_INIT, "rank %d (local %d of %d): numa node %d, %d cpus from %d, swap '%s'",
              rt->rank, l, L, rt->topo.numa_node, rt->topo.ncpus, rt->topo.cpus[0], paths);
    return ZOFF_OK;
}

/* ---- bucket-by-bucket reduction ------------------------------------------------------------ */
/* One bucket's reduction buffers (device) and the pieces of it this rank owns. */
typedef struct zrt_own_piece {
    uint64_t flat; /* first flat element */
    size_t n;      /* elements */
    size_t off;    /* elements into this rank's reduced piece */
} zrt_own_piece;

typedef struct zrt_bkred {
    float *stage;        /* the bucket widened to fp32, grouped by owner rank */
    float *recv;         /* stage 2: this rank's reduced piece */
    zdev_event *reduced; /* recorded on comm_s after the collective */
    size_t *counts, *displs;
    zrt_own_piece *own;
    size_t nown, cap_own;
} zrt_bkred;

/* Landing callback of a pushed gradient when buckets are reduced on the device: its share is in
 * gshard; only the count of landed gradients advances (the sums of squares come at the step). */
static void bk_landed(void *arg)
{
    zrt_param *p = arg;
    zoff_runtime *rt = p->rt;
    pthread_mutex_lock(&rt->land_mu);
    rt->landed_total++;
    pthread_cond_broadcast(&rt->land_cv);
    pthread_mutex_unlock(&rt->land_mu);
}

void (*zrt_shard_landed_fn(const zoff_runtime *rt))(void *)
{
    return rt->bk_reduce ? bk_landed : NULL;
}

static zoff_status own_piece(zrt_bkred *k, uint64_t flat, size_t n, size_t off)
{
    if (k->nown == k->cap_own) {
        size_t cap = k->cap_own ? 2 * k->cap_own : 16;
        zrt_own_piece *v = realloc(k->own, cap * sizeof *v);
        if (!v) return zoff__err(-ENOMEM, "ranks: out of memory for bucket pieces");
        k->own = v;
        k->cap_own = cap;
    }
    k->own[k->nown++] = (zrt_own_piece){flat, n, off};
    return ZOFF_OK;
}

/* The drain of bucket i (buckets.h `reduce` hook): on comm_s after the fill, each piece is cut at
 * the rank boundaries and widened to fp32 into `stage`, grouped by owner rank (rank order, then
 * bucket order); the collective averages the groups (stage 2: reduce-scatter with per-rank
 * counts, this rank's group lands in `recv`; stages 0/1: all-reduce of the whole stage); the D2H
 * stream waits for it and copies only this rank's elements into gshard; then the landed
 * callbacks and `drained`. */
static zoff_status bk_reduce(void *ctx, zbk_ring *r, int i, zbk_bucket *b)
{
    zoff_runtime *rt = ctx;
    zrt_bkred *k = &rt->bkred[i];
    uint64_t t0 = zoff__now_ns();
    int n = rt->nranks;
    uint64_t S = rt->shard_numel;
    ZOFF_CHECK(zdev_stream_wait_event(rt->dev, rt->comm_s, b->filled));
    size_t off = 0;
    k->nown = 0;
    for (int q = 0; q < n; q++) {
        uint64_t qb = ZOFF_MIN((uint64_t)q * S, rt->total_numel);
        uint64_t qe = ZOFF_MIN(qb + S, rt->total_numel);
        k->displs[q] = off;
        for (size_t j = 0; j < b->nsegs; j++) {
            const zbk_seg *s = &b->segs[j];
            const zrt_param *p = s->owner;
            uint64_t f0 = p->flat_off + s->push_off / p->esize;
            uint64_t lo = ZOFF_MAX(f0, qb), hi = ZOFF_MIN(f0 + s->bytes / p->esize, qe);
            if (hi <= lo) continue;
            size_t m = (size_t)(hi - lo);
            ZOFF_CHECK(zdev_widen_f32(rt->dev, k->stage + off,
                                      b->dev + s->slot_off + (size_t)(lo - f0) * p->esize, p->dtype,
                                      m, rt->comm_s));
            if (q == rt->rank) ZOFF_CHECK(own_piece(k, lo, m, off - k->displs[q]));
            off += m;
        }
        k->counts[q] = off - k->displs[q];
    }
    const float *mine;
    if (rt->cfg.zero_stage >= 2) {
        zcomm_set_context(rt->dcomm, rt->step + 1, "reduce-scatter gradient bucket", rt->bk_seq);
        ZOFF_CHECK(zcomm_reduce_scatterv(rt->dcomm, k->stage, k->recv, k->counts, k->displs,
                                         ZCOMM_F32, ZCOMM_AVG, rt->comm_s));
        mine = k->recv;
    } else {
        zcomm_set_context(rt->dcomm, rt->step + 1, "all-reduce gradient bucket", rt->bk_seq);
        ZOFF_CHECK(
            zcomm_all_reduce(rt->dcomm, k->stage, k->stage, off, ZCOMM_F32, ZCOMM_AVG, rt->comm_s));
        mine = k->stage + k->displs[rt->rank];
    }
    rt->bk_seq++;
    ZOFF_CHECK(zdev_event_record(rt->dev, k->reduced, rt->comm_s));
    ZOFF_CHECK(zdev_stream_wait_event(rt->dev, r->drain, k->reduced));
    for (size_t j = 0; j < k->nown; j++) {
        const zrt_own_piece *o = &k->own[j];
        ZOFF_CHECK(zdev_memcpy_d2h(rt->dev, rt->gshard + (o->flat - rt->own_begin), mine + o->off,
                                   o->n * sizeof(float), r->drain));
        atomic_fetch_add(&rt->own_d2h_bytes, (uint64_t)(o->n * sizeof(float)));
    }
    for (size_t j = 0; j < b->nsegs; j++)
        if (b->segs[j].landed)
            ZOFF_CHECK(zdev_host_fn(rt->dev, r->drain, b->segs[j].landed, b->segs[j].landed_arg));
    ZOFF_CHECK(zdev_event_record(rt->dev, b->drained, r->drain));
    rt->bk_comm_ns += zoff__now_ns() - t0;
    return ZOFF_OK;
}

/* Whether (and with which communicator) buckets are reduced on the device: several ranks, every
 * parameter pushed through the buckets, no accumulation, and a communicator for device buffers
 * (the sim device's memory is host memory, so the MPI communicator serves; CUDA needs NCCL).
 * ZOFF_BUCKET_REDUCE=0 keeps the host path. */
static zoff_status bk_setup(zoff_runtime *rt)
{
    const char *env = getenv("ZOFF_BUCKET_REDUCE");
    if (!zbk_active(&rt->bk) || rt->nbucket_params != rt->nparams || rt->accum > 1 ||
        (env && !strcmp(env, "0")))
        return ZOFF_OK;
    if (zdev_kind(rt->dev) == ZOFF_DEVICE_SIM) {
        rt->dcomm = rt->comm;
    } else if (zcomm_backend_built(ZCOMM_NCCL) &&
               (zcomm_kind(rt->comm) == ZCOMM_MPI || rt->nccl_id_given)) {
        zcomm_config cc;
        zcomm_config_default(&cc);
        cc.backend = ZCOMM_NCCL;
        cc.timeout_ms = rt->cfg.comm_timeout_ms;
        cc.dev = rt->dev;
        if (rt->nccl_id_given) { /* torchrun style: the caller broadcast rank 0's id */
            memcpy(cc.unique_id, rt->nccl_id, sizeof cc.unique_id);
            cc.have_unique_id = 1;
            cc.rank = rt->rank;
            cc.size = rt->nranks;
            cc.local_rank = zcomm_local_rank(rt->comm);
        }
        ZOFF_CHECK(zcomm_create(&cc, &rt->dcomm));
        rt->dcomm_own = 1;
    } else {
        ZOFF_INFO(ZOFF_SUB_INIT,
                  "rank %d: no NCCL in this build: gradients are reduced on the "
                  "host (every rank moves all of them down)",
                  rt->rank);
        return ZOFF_OK;
    }
    int count = rt->bk.count;
    size_t n = (size_t)rt->nranks;
    size_t elems = rt->bk.bytes / 2; /* at most this many elements in a bucket (16-bit) */
    rt->bkred = calloc((size_t)count, sizeof *rt->bkred);
    if (!rt->bkred) return zoff__err(-ENOMEM, "ranks: out of memory");
    rt->nbkred = count;
    ZOFF_CHECK(zdev_stream_create(rt->dev, &rt->comm_s));
    for (int i = 0; i < count; i++) {
        zrt_bkred *k = &rt->bkred[i];
        void *a = NULL, *b = NULL;
        ZOFF_CHECK(zdev_malloc(rt->dev, elems * sizeof(float), &a));
        k->stage = a;
        if (rt->cfg.zero_stage >= 2) {
            ZOFF_CHECK(zdev_malloc(rt->dev, elems * sizeof(float), &b));
            k->recv = b;
        }
        ZOFF_CHECK(zdev_event_create(rt->dev, &k->reduced));
        k->counts = calloc(2 * n, sizeof(size_t));
        if (!k->counts) return zoff__err(-ENOMEM, "ranks: out of memory");
        k->displs = k->counts + n;
    }
    rt->bk.reduce = bk_reduce;
    rt->bk.reduce_ctx = rt;
    rt->bk_reduce = 1;
    ZOFF_INFO(ZOFF_SUB_INIT,
              "rank %d: gradients reduced bucket by bucket on the device (%s), %d buckets",
              rt->rank, zcomm_backend_name(zcomm_kind(rt->dcomm)), count);
    return ZOFF_OK;
}

static void bk_teardown(zoff_runtime *rt)
{
    if (rt->comm_s) (void)zdev_stream_sync(rt->dev, rt->comm_s);
    if (rt->bkred) {
        for (int i = 0; i < rt->nbkred; i++) {
            zrt_bkred *k = &rt->bkred[i];
            if (k->stage) zdev_free(rt->dev, k->stage);
            if (k->recv) zdev_free(rt->dev, k->recv);
            if (k->reduced) zdev_event_destroy(rt->dev, k->reduced);
            free(k->counts);
            free(k->own);
        }
        free(rt->bkred);
    }
    if (rt->comm_s) zdev_stream_destroy(rt->dev, rt->comm_s);
    if (rt->dcomm_own) zcomm_destroy(rt->dcomm);
    rt->bkred = NULL;
    rt->nbkred = 0;
    rt->comm_s = NULL;
    rt->dcomm = NULL;
    rt->dcomm_own = 0;
    rt->bk_reduce = 0;
    rt->bk.reduce = NULL;
}

zoff_status zrt_shard_alloc(zoff_runtime *rt)
{
    if (rt->nranks <= 1) return ZOFF_OK;
    ZOFF_CHECK(bk_setup(rt));
    size_t n = (size_t)rt->nranks;
    size_t full = rt->bk_reduce ? 1 : (size_t)rt->shard_numel * n; /* host path: whole grads */
    rt->gfull = calloc(full ? full : 1, sizeof(float));
    rt->gshard = calloc(rt->shard_numel ? rt->shard_numel : 1, sizeof(float));
    rt->pgather = calloc(rt->param_bytes ? rt->param_bytes : 1, 1);
    rt->gather_counts = calloc(2 * n, sizeof(size_t));
    rt->agree = calloc(2 * (size_t)rt->nparams + 2, sizeof(double));
    if (!rt->gfull || !rt->gshard || !rt->pgather || !rt->gather_counts || !rt->agree)
        return zoff__err(-ENOMEM, "ranks: out of memory for the reduce buffers (%zu elements)",
                         full);
    rt->gather_displs = rt->gather_counts + n;
    for (size_t r = 0; r < n; r++) {
        uint64_t b = ZOFF_MIN((uint64_t)r * rt->shard_numel, rt->total_numel);
        uint64_t e = ZOFF_MIN(b + rt->shard_numel, rt->total_numel);
        size_t bb = flat_to_byte(rt, b), eb = flat_to_byte(rt, e);
        rt->gather_displs[r] = bb;
        rt->gather_counts[r] = eb - bb;
    }
    return ZOFF_OK;
}

void zrt_shard_layout(const zoff_runtime *rt, zrt_layout *l)
{
    if (rt->nranks <= 1 || l->nacc_bufs == 0) return;
    uint64_t full = ZOFF_ALIGN_UP(rt->total_numel * 4u, (uint64_t)4096);
    l->arena_bytes += (uint64_t)l->nacc_bufs * (full - l->acc_bytes);
    l->acc_bytes = full;
}

void zrt_shard_destroy(zoff_runtime *rt)
{
    bk_teardown(rt);
    free(rt->gfull);
    free(rt->gshard);
    free(rt->pgather);
    free(rt->gather_counts);
    free(rt->agree);
    rt->gfull = rt->gshard = NULL;
    rt->pgather = NULL;
    rt->gather_counts = rt->gather_displs = NULL;
    rt->agree = NULL;
}

/* fp32 copy of n gradient elements of dtype dt. */
static void widen(float *dst, const void *src, zoff_dtype dt, size_t n)
{
    if (dt == ZOFF_DTYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else if (dt == ZOFF_DTYPE_F16) {
        const uint16_t *h = src;
        for (size_t i = 0; i < n; i++) dst[i] = zoff_f16_to_f32(h[i]);
    } else {
        const uint16_t *h = src;
        for (size_t i = 0; i < n; i++) dst[i] = zoff_bf16_to_f32(h[i]);
    }
}

/* The buckets already averaged this step's gradients into gshard: check that every rank pushed
 * the same gradients in the same order (else the buckets did not line up), and zero the owned
 * elements of the params nobody pushed. */
static zoff_status bk_step(zoff_runtime *rt, int64_t step)
{
    double h[2] = {(double)rt->push_hash, -(double)rt->push_hash};
    zcomm_set_context(rt->comm, step, "agree on pushed gradients", -1);
    ZOFF_CHECK(zcomm_all_reduce(rt->comm, h, h, 2, ZCOMM_F64, ZCOMM_MAX, NULL));
    rt->push_hash = 0;
    rt->bk_seq = 0;
    if (h[0] != -h[1])
        return zoff__err(ZOFF_ESTATE,
                         "step %lld: the ranks pushed different gradients or in a different "
                         "order (zoff_grad_push): with several ranks every rank must push the same "
                         "parameters in the same order each step, as the bucket reduction pairs "
                         "them up",
                         (long long)step);
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        if (p->declared) continue;
        uint64_t lo = ZOFF_MAX(p->flat_off, rt->own_begin);
        uint64_t hi = ZOFF_MIN(p->flat_off + p->numel, rt->own_end);
        if (hi > lo)
            memset(rt->gshard + (lo - rt->own_begin), 0, (size_t)(hi - lo) * sizeof(float));
    }
    return ZOFF_OK;
}

zoff_status zrt_shard_grads(zoff_runtime *rt, const uint8_t *buf, double *sumsq, size_t *nonfinite,
                            int *nf_params)
{
    uint64_t t0 = zoff__now_ns();
    int np = rt->nparams;
    int64_t step = rt->step + 1;
    if (rt->bk_reduce) {
        ZOFF_CHECK(bk_step(rt, step));
        goto agree;
    }
    /* 1. which params have a gradient on some rank (the others contribute zeros) */
    /* with accumulation (K > 1) `buf` holds the window's fp32 sums and a param counts as
     * declared when some micro-batch of the window declared it */
    int sums = rt->accum > 1;
    for (int i = 0; i < np; i++) rt->agree[i] = rt->params[i].win_declared ? 1.0 : 0.0;
    zcomm_set_context(rt->comm, step, "agree on declared gradients", -1);
    ZOFF_CHECK(
        zcomm_all_reduce(rt->comm, rt->agree, rt->agree, (size_t)np, ZCOMM_F64, ZCOMM_MAX, NULL));
    /* 2. this rank's gradients as fp32 in flat order */
    for (int i = 0; i < np; i++) {
        zrt_param *p = &rt->params[i];
        float *dst = rt->gfull + p->flat_off;
        if (rt->agree[i] == 0.0) {
            memset(dst, 0, p->numel * sizeof(float));
            continue;
        }
        if (!p->win_declared && !rt->zero_missing)
            memset(dst, 0, p->numel * sizeof(float));
        else if (sums)
            memcpy(dst, (const float *)(const void *)buf + p->flat_off, p->numel * sizeof(float));
        else
            widen(dst, buf + p->buf_off, p->dtype, p->numel);
        p->declared = p->win_declared = 1;
    }
    /* 3. average over the ranks: stage 2 reduce-scatter, stages 0/1 all-reduce */
    size_t S = (size_t)rt->shard_numel;
    if (rt->cfg.zero_stage >= 2) {
        zcomm_set_context(rt->comm, step, "reduce-scatter gradients", 0);
        ZOFF_CHECK(
            zcomm_reduce_scatter(rt->comm, rt->gfull, rt->gshard, S, ZCOMM_F32, ZCOMM_AVG, NULL));
    } else {
        zcomm_set_context(rt->comm, step, "all-reduce gradients", 0);
        ZOFF_CHECK(zcomm_all_reduce(rt->comm, rt->gfull, rt->gfull, S * (size_t)rt->nranks,
                                    ZCOMM_F32, ZCOMM_AVG, NULL));
        memcpy(rt->gshard, rt->gfull + (size_t)rt->rank * S, S * sizeof(float));
    }
agree:
    /* 4. sum of squares and non-finite counts of the owned range, agreed by every rank */
    memset(rt->agree, 0, (2 * (size_t)np + 2) * sizeof(double));
    for (int i = 0; i < np; i++) {
        const zrt_param *p = &rt->params[i];
        uint64_t lo = ZOFF_MAX(p->flat_off, rt->own_begin);
        uint64_t hi = ZOFF_MIN(p->flat_off + p->numel, rt->own_end);
        double ss = 0.0;
        size_t nf = 0;
        for (uint64_t e = lo; e < hi; e++) {
            float g = rt->gshard[e - rt->own_begin];
            if (!isfinite(g))
                nf++;
            else
                ss += (double)g * (double)g;
        }
        rt->agree[np + i] = (double)nf;
        rt->agree[2 * np] += ss;
    }
    zcomm_set_context(rt->comm, step, "agree on norm and overflow", -1);
    ZOFF_CHECK(zcomm_all_reduce(rt->comm, rt->agree + np, rt->agree + np, (size_t)np + 1, ZCOMM_F64,
                                ZCOMM_SUM, NULL));
    size_t nf = 0;
    int nfp = 0;
    for (int i = 0; i < np; i++) {
        size_t c = (size_t)rt->agree[np + i];
        rt->params[i].nonfinite = c;
        rt->params[i].sumsq = 0.0;
        nf += c;
        nfp += c > 0;
    }
    *sumsq = rt->agree[2 * np];
    *nonfinite = nf;
    *nf_params = nfp;
    rt->comm_ms_last = zoff__ns_to_ms(zoff__now_ns() - t0 + rt->bk_comm_ns);
    rt->bk_comm_ns = 0;
    return ZOFF_OK;
}

zoff_status zrt_shard_gather(zoff_runtime *rt)
{
    uint64_t t0 = zoff__now_ns();
    zcomm_set_context(rt->comm, rt->step + 1, "all-gather parameters", -1);
    ZOFF_CHECK(zcomm_all_gatherv_inplace(rt->comm, rt->pgather, rt->gather_counts,
                                         rt->gather_displs, ZCOMM_U8, NULL));
    /* upload the parts of the updated params that other ranks own */
    for (int i = 0; i < rt->nparams; i++) {
        zrt_param *p = &rt->params[i];
        if (p->upd_skip) continue;
        uint64_t pe = p->flat_off + p->numel;
        uint64_t segs[2][2] = {{p->flat_off, ZOFF_MIN(pe, rt->own_begin)},
                               {ZOFF_MAX(p->flat_off, rt->own_end), pe}};
        for (int k = 0; k < 2; k++) {
            if (segs[k][1] <= segs[k][0]) continue;
            size_t off = (size_t)(segs[k][0] - p->flat_off) * p->esize;
            size_t bytes = (size_t)(segs[k][1] - segs[k][0]) * p->esize;
            ZOFF_CHECK(zdev_memcpy_h2d(rt->dev, (uint8_t *)p->dev_param + off,
                                       rt->pgather + p->buf_off + off, bytes, rt->h2d));
            atomic_fetch_add(&rt->own_h2d_bytes, (uint64_t)bytes);
        }
    }
    rt->comm_ms_last += zoff__ns_to_ms(zoff__now_ns() - t0);
    rt->comm_ms_total += rt->comm_ms_last;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_get_rank_info(const zoff_runtime *rt, zoff_rank_info *out)
{
    zoff__clear_error();
    if (!rt || !out) return zoff__err(ZOFF_EINVAL, "zoff_get_rank_info: NULL argument");
    if (out->struct_size == 0 || out->struct_size > sizeof *out)
        return zoff__err(ZOFF_EINVAL, "zoff_get_rank_info: struct_size %zu (expected %zu)",
                         out->struct_size, sizeof *out);
    zoff_rank_info r;
    memset(&r, 0, sizeof r);
    r.struct_size = out->struct_size;
    r.rank = rt->rank;
    r.size = rt->nranks;
    r.local_rank = zcomm_local_rank(rt->comm);
    r.local_size = zcomm_local_size(rt->comm);
    r.zero_stage = rt->cfg.zero_stage;
    r.own_begin = rt->own_begin;
    r.own_end = rt->own_end;
    r.total_numel = rt->total_numel;
    r.numa_node = rt->topo.numa_node;
    r.ncpus = rt->topo.ncpus;
    r.first_cpu = rt->topo.ncpus > 0 ? rt->topo.cpus[0] : -1;
    r.comm_ms_last = rt->comm_ms_last;
    r.comm_ms_total = rt->comm_ms_total;
    snprintf(r.backend, sizeof r.backend, "%s", zcomm_backend_name(zcomm_kind(rt->comm)));
    r.bucket_reduce = rt->bk_reduce;
    if (rt->bk_reduce)
        snprintf(r.bucket_backend, sizeof r.bucket_backend, "%s",
                 zcomm_backend_name(zcomm_kind(rt->dcomm)));
    memcpy(out, &r, out->struct_size);
    return ZOFF_OK;
}
