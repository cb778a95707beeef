/*
 * test_shard.c — the sharded step (runtime/shard.c) under mpirun with 2 and 3 ranks on the sim
 * device, tier from argv[1] (cpu | nvme). In each process a single-rank runtime (cfg.ranks = 1)
 * is the reference, fed the gradient the ranks average. Checks, for ZeRO stages 1 and 2:
 *  - fp16, every rank the same gradient: 100 steps of the sharded run equal the single-rank run
 *    bit for bit (every 16-bit param after every step, the fp32 master / exp_avg / exp_avg_sq of
 *    the owned range at the end);
 *  - fp32 params, a different gradient on every rank: the reference gets their mean computed as
 *    the collective does (fp32 adds in rank order, then / N), and again 100 steps are bit-equal;
 *  - fp16 overflow on one rank only (an inf in rank N-1's gradient at step 5): every rank skips
 *    the step, halves the loss scale and leaves the parameters untouched, like the reference;
 *  - the owned ranges are [r * S, (r + 1) * S) with S = ceil(total / N), and zoff_get_rank_info
 *    reports rank, size and backend;
 *  - gradient accumulation (K micro-batches per step, reduced only at the boundary): K = 2 on N
 *    ranks against the single-rank run of the same global batch (K * N micro-batches). The
 *    gradients are multiples of 2^-12 (every sum exact in fp32), so with N a power of two the
 *    runs are equal bit for bit (stages 1 and 2); with N = 3 the mean's division by 3 rounds
 *    differently from the reference's single division by K * N, and the test allows one fp16
 *    unit in the last place per parameter (|a - b| <= 2^-10 |b|) and 1e-5 relative on the
 *    masters. An inf in one micro-batch of the last rank skips that step on every rank;
 *  - with `save DIR` / `load DIR` arguments: a checkpoint saved by N ranks at step 10 loads with M
 *    ranks (1 included) and steps 11..20 give the 16-bit params of the run without restart;
 *    after the save rank 0 checks the layout: one file per rank, every slice in its owner's
 *    file, each file exactly its rank's range after its header (one rank: format 2, one file);
 *  - `savefail DIR`: one rank cannot write its slice file: every rank's save fails (naming it),
 *    the previous checkpoint stays whole and valid, no temporary directory is left, the next
 *    save works, and a save rank 0 refuses (a file in the way) fails on every rank at once;
 *    `savekill DIR`: a rank killed while writing its slices makes the others' save fail within
 *    the watchdog timeout, the previous checkpoint whole and no temporary directory left;
 *    `corrupt DIR`: a flipped byte in rank 1's slice of a copy of DIR fails the load naming the
 *    file and bytes (the other ranks: "another rank could not load"), state intact; with
 *    ZT_STATE_FORMAT=bf16 in the environment the moments are bf16; `savebench DIR NUMEL REPS`
 *    times saves and loads (not a CTest);
 *  - two "nodes" (rank groups with their own ZOFF_LOCAL_RANK numbering and swap paths): local
 *    ranks as set, swap files only under the rank's share of its node's paths, same results;
 *  - with `kill`: the last rank dies mid-step, the others fail within the watchdog timeout with a
 *    message naming the step, the phase and the dead rank.
 * Exits 77 only when the launcher did not start several ranks and MPI is not built.
 */
#include <errno.h>
#include <math.h>
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "test_runtime_util.h"

static const char *g_tier = "cpu";
static int g_rank, g_size;

/* Gradient value of (step, param, element, rank): a hash mapped to [-1, 1). */
static float gval(int step, int p, size_t k, int rank)
{
    uint64_t x = (uint64_t)step * 0x9E3779B97F4A7C15ull ^ (uint64_t)p * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)k * 0x94D049BB133111EBull ^ (uint64_t)rank * 0xD6E8FEB86659FD93ull;
    x ^= x >> 31;
    x *= 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void setup_cfg(zoff_config *c, zoff_dtype dt, int stage, int ranks, char **dir)
{
    tr_config(c, dt);
    c->zero_stage = stage;
    c->ranks = ranks;
    c->comm_timeout_ms = 60000;
    c->optimizer.lr = 1e-2f;
    if (strcmp(g_tier, "nvme") == 0) {
        *dir = tr_nvme(c, 0.0f);
        c->aio_odirect = 0;
    }
}

/* Pushes this step's gradients: vals[i][k] (already in the dtype's precision, times scale);
 * through zoff's buckets (zoff_grad_push) when `bucket`, else zoff_grad_ready. */
static void push_mode(tr_model *m, float *const *vals, int bucket)
{
    size_t es = zoff_dtype_size(m->dt);
    for (int i = m->np - 1; i >= 0; i--) {
        for (size_t k = 0; k < m->numel[i]; k++) {
            if (m->dt == ZOFF_DTYPE_F32)
                m->hgradf[i][k] = vals[i][k];
            else
                m->hgrad[i][k] = tr_from_f32(m->dt, vals[i][k]);
        }
        assert_int_equal(
            zoff_device_upload(m->rt, m->dgrad[i], m->hgrad[i], m->numel[i] * es, NULL), 0);
        if (bucket)
            assert_int_equal(zoff_grad_push(m->rt, m->id[i], m->dgrad[i], m->numel[i], m->dt, NULL),
                             0);
        else
            assert_int_equal(zoff_grad_ready(m->rt, m->id[i], NULL), 0);
    }
}

static void push(tr_model *m, float *const *vals)
{
    push_mode(m, vals, 0);
}

static size_t compare_params(tr_model *a, tr_model *b)
{
    size_t bad = 0, es = zoff_dtype_size(a->dt);
    for (int i = 0; i < a->np; i++) {
        assert_int_equal(zoff_params_ready(a->rt, NULL), 0);
        assert_int_equal(zoff_params_ready(b->rt, NULL), 0);
        if (memcmp(a->dparam[i], b->dparam[i], a->numel[i] * es) != 0) {
            for (size_t k = 0; k < a->numel[i] && bad < 5; k++)
                if (memcmp((uint8_t *)a->dparam[i] + k * es, (uint8_t *)b->dparam[i] + k * es,
                           es) != 0) {
                    fprintf(stderr, "rank %d: param %d[%zu]: %g vs reference %g\n", g_rank, i, k,
                            (double)tr_to_f32(a->dt, a->dparam[i], k),
                            (double)tr_to_f32(a->dt, b->dparam[i], k));
                    bad++;
                }
            bad++;
        }
    }
    return bad;
}

/* The owned part of every param's master and moments equal the reference's. */
static void compare_state(tr_model *a, tr_model *b)
{
    zoff_rank_info ri = ZOFF_RANK_INFO_INIT;
    assert_int_equal(zoff_get_rank_info(a->rt, &ri), 0);
    uint64_t off = 0;
    for (int i = 0; i < a->np; i++) {
        size_t n = a->numel[i];
        float *x[3], *y[3];
        for (int j = 0; j < 3; j++) {
            x[j] = zt_malloc(n * sizeof(float));
            y[j] = zt_malloc(n * sizeof(float));
        }
        assert_int_equal(zoff_get_master(a->rt, a->id[i], x[0]), 0);
        assert_int_equal(zoff_get_state(a->rt, a->id[i], x[1], x[2]), 0);
        assert_int_equal(zoff_get_master(b->rt, b->id[i], y[0]), 0);
        assert_int_equal(zoff_get_state(b->rt, b->id[i], y[1], y[2]), 0);
        uint64_t lo = ZOFF_MAX(off, ri.own_begin), hi = ZOFF_MIN(off + n, ri.own_end);
        for (int j = 0; j < 3; j++) {
            if (hi > lo)
                assert_int_equal(
                    memcmp(x[j] + (lo - off), y[j] + (lo - off), (size_t)(hi - lo) * sizeof(float)),
                    0);
            free(x[j]);
            free(y[j]);
        }
        off += n;
    }
}

static const size_t k_numel[] = {1000, 37, 2503, 1024, 777};
#define NP ((int)(sizeof k_numel / sizeof k_numel[0]))

static void run_case_mode(zoff_dtype dt, int stage, int per_rank, int overflow_step, int steps,
                          int bucket)
{
    zoff_config cs, cr;
    char *d1 = NULL, *d2 = NULL;
    setup_cfg(&cs, dt, stage, 0, &d1);
    setup_cfg(&cr, dt, stage, 1, &d2);
    cs.grad_bucket_numel = 700; /* several buckets; pieces cut at rank boundaries */
    tr_model ms, mr;
    assert_int_equal(tr_open_mode(&ms, &cs, NP, k_numel, dt, 42, bucket), 0);
    assert_int_equal(ms.rt->bk_reduce, bucket);
    assert_int_equal(tr_open(&mr, &cr, NP, k_numel, dt, 42), 0);

    zoff_rank_info ri = ZOFF_RANK_INFO_INIT;
    assert_int_equal(zoff_get_rank_info(ms.rt, &ri), 0);
    assert_int_equal(ri.rank, g_rank);
    assert_int_equal(ri.size, g_size);
    assert_string_equal(ri.backend, "mpi");
    uint64_t S = (ri.total_numel + (uint64_t)g_size - 1) / (uint64_t)g_size;
    assert_true(ri.own_begin == (uint64_t)g_rank * S);
    assert_true(ri.own_end == ZOFF_MIN(ri.own_begin + S, ri.total_numel));

    float *vals[NP], *ref[NP];
    for (int i = 0; i < NP; i++) {
        vals[i] = zt_malloc(k_numel[i] * sizeof(float));
        ref[i] = zt_malloc(k_numel[i] * sizeof(float));
    }
    int skipped = 0;
    for (int t = 1; t <= steps; t++) {
        float scale = 1.0f;
        assert_int_equal(zoff_get_loss_scale(ms.rt, &scale), 0);
        float rscale = 0.0f;
        assert_int_equal(zoff_get_loss_scale(mr.rt, &rscale), 0);
        assert_true(scale == rscale);
        for (int i = 0; i < NP; i++)
            for (size_t k = 0; k < k_numel[i]; k++) {
                if (!per_rank) { /* the same 16-bit gradient on every rank */
                    float v = gval(t, i, k, 0) * 1e-3f * scale;
                    vals[i][k] = dt == ZOFF_DTYPE_F32
                                     ? v
                                     : tr_to_f32(dt, (uint16_t[]){tr_from_f32(dt, v)}, 0);
                    ref[i][k] = vals[i][k];
                } else { /* fp32, different per rank; reference = the collective's mean */
                    vals[i][k] = gval(t, i, k, g_rank) * scale;
                    float a = 0.0f;
                    for (int r = 0; r < g_size; r++) {
                        float v = gval(t, i, k, r) * scale;
                        a = r == 0 ? v : a + v;
                    }
                    ref[i][k] = a / (float)g_size;
                }
            }
        if (t == overflow_step) {
            if (g_rank == g_size - 1) vals[2][5] = INFINITY;
            ref[2][5] = INFINITY;
        }
        push_mode(&ms, vals, bucket);
        push(&mr, ref);
        zoff_step_result rs = ZOFF_STEP_RESULT_INIT, rr = ZOFF_STEP_RESULT_INIT;
        assert_int_equal(zoff_step(ms.rt, NULL, &rs), 0);
        assert_int_equal(zoff_step(mr.rt, NULL, &rr), 0);
        assert_int_equal(rs.skipped, rr.skipped);
        assert_int_equal(rs.overflow, rr.overflow);
        assert_true(rs.step == rr.step);
        assert_true(rs.loss_scale == rr.loss_scale);
        if (isfinite(rr.grad_norm))
            assert_true(fabs(rs.grad_norm - rr.grad_norm) <= 1e-5 * rr.grad_norm + 1e-30);
        skipped += rs.skipped;
        size_t bad = compare_params(&ms, &mr);
        if (bad) fprintf(stderr, "rank %d: step %d: %zu params differ\n", g_rank, t, bad);
        assert_int_equal(bad, 0);
    }
    if (overflow_step > 0) assert_int_equal(skipped, 1);
    compare_state(&ms, &mr);
    zoff_rank_info r2 = ZOFF_RANK_INFO_INIT;
    assert_int_equal(zoff_get_rank_info(ms.rt, &r2), 0);
    assert_true(r2.comm_ms_total > 0.0);
    for (int i = 0; i < NP; i++) {
        free(vals[i]);
        free(ref[i]);
    }
    tr_close(&ms);
    tr_close(&mr);
    if (d1) zt_rmtree(d1);
    if (d2) zt_rmtree(d2);
    free(d1);
    free(d2);
}

static void run_case(zoff_dtype dt, int stage, int per_rank, int overflow_step, int steps)
{
    run_case_mode(dt, stage, per_rank, overflow_step, steps, 0);
}

/* the same checks with every gradient pushed through zoff's buckets: reduced bucket by bucket
 * on the device (the sim device: MPI on its memory), only this rank's share goes down */
static void test_bucket_stage2_same_grads(void **state)
{
    (void)state;
    run_case_mode(ZOFF_DTYPE_F16, 2, 0, 0, 100, 1);
}
static void test_bucket_stage1_same_grads(void **state)
{
    (void)state;
    run_case_mode(ZOFF_DTYPE_F16, 1, 0, 0, 30, 1);
}
static void test_bucket_stage2_rank_grads_f32(void **state)
{
    (void)state;
    run_case_mode(ZOFF_DTYPE_F32, 2, 1, 0, 100, 1);
}
static void test_bucket_stage1_rank_grads_f32(void **state)
{
    (void)state;
    run_case_mode(ZOFF_DTYPE_F32, 1, 1, 0, 30, 1);
}
static void test_bucket_overflow_one_rank(void **state)
{
    (void)state;
    run_case_mode(ZOFF_DTYPE_F16, 2, 0, 5, 12, 1);
}

static void test_stage2_same_grads(void **state)
{
    (void)state;
    run_case(ZOFF_DTYPE_F16, 2, 0, 0, 100);
}
static void test_stage1_same_grads(void **state)
{
    (void)state;
    run_case(ZOFF_DTYPE_F16, 1, 0, 0, 100);
}
static void test_stage2_rank_grads_f32(void **state)
{
    (void)state;
    run_case(ZOFF_DTYPE_F32, 2, 1, 0, 100);
}
static void test_stage1_rank_grads_f32(void **state)
{
    (void)state;
    run_case(ZOFF_DTYPE_F32, 1, 1, 0, 30);
}
static void test_overflow_one_rank(void **state)
{
    (void)state;
    run_case(ZOFF_DTYPE_F16, 2, 0, 5, 12);
}

/* ---- gradient accumulation with several ranks ---------------------------------------------- */
/* A gradient exactly representable in fp16 and summable in fp32: a multiple of 2^-12 in
 * [-1/16, 1/16). */
static float qval(int step, int micro, int p, size_t k, int rank)
{
    return roundf(gval(step * 64 + micro, p, k, rank) * 256.0f) / 4096.0f;
}

/* 1 ulp of fp16 relative, or bit-equal when exact. Returns the number of differing params. */
static size_t compare_params_tol(tr_model *a, tr_model *b, int exact)
{
    if (exact) return compare_params(a, b);
    size_t bad = 0;
    for (int i = 0; i < a->np; i++)
        for (size_t k = 0; k < a->numel[i]; k++) {
            double x = tr_to_f32(a->dt, a->dparam[i], k), y = tr_to_f32(a->dt, b->dparam[i], k);
            if (fabs(x - y) > fabs(y) * 0x1p-10 * 1.0001) {
                if (bad < 5)
                    fprintf(stderr, "rank %d: param %d[%zu]: %g vs reference %g\n", g_rank, i, k, x,
                            y);
                bad++;
            }
        }
    return bad;
}

static void run_accum(int stage, int K, int overflow_step, int steps)
{
    int exact = (g_size & (g_size - 1)) == 0;
    zoff_config cs, cr;
    char *d1 = NULL, *d2 = NULL;
    setup_cfg(&cs, ZOFF_DTYPE_F16, stage, 0, &d1);
    setup_cfg(&cr, ZOFF_DTYPE_F16, stage, 1, &d2);
    cs.gradient_accumulation_steps = K;
    cr.gradient_accumulation_steps = (int64_t)K * g_size;
    tr_model ms, mr;
    assert_int_equal(tr_open(&ms, &cs, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    assert_int_equal(tr_open(&mr, &cr, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    float *vals[NP];
    for (int i = 0; i < NP; i++) vals[i] = zt_malloc(k_numel[i] * sizeof(float));
    int skipped = 0;
    for (int t = 1; t <= steps; t++) {
        float scale = 1.0f, rscale = 0.0f;
        assert_int_equal(zoff_get_loss_scale(ms.rt, &scale), 0);
        assert_int_equal(zoff_get_loss_scale(mr.rt, &rscale), 0);
        assert_true(scale == rscale);
        zoff_step_result rs = ZOFF_STEP_RESULT_INIT, rr = ZOFF_STEP_RESULT_INIT;
        /* the reference sees every rank's micro-batches, rank by rank */
        for (int r = 0; r <= g_size; r++) {
            int mine = r == g_size; /* last round: this rank's own micro-batches, sharded */
            int rr_rank = mine ? g_rank : r;
            for (int j = 0; j < K; j++) {
                for (int i = 0; i < NP; i++)
                    for (size_t k = 0; k < k_numel[i]; k++)
                        vals[i][k] = qval(t, j, i, k, rr_rank) * scale;
                if (t == overflow_step && j == 0 && rr_rank == g_size - 1) vals[2][5] = INFINITY;
                if (mine) {
                    push(&ms, vals);
                    assert_int_equal(zoff_step(ms.rt, NULL, &rs), 0);
                    assert_int_equal(rs.accumulating, j < K - 1);
                } else {
                    push(&mr, vals);
                    assert_int_equal(zoff_step(mr.rt, NULL, &rr), 0);
                }
            }
        }
        assert_int_equal(rr.accumulating, 0);
        assert_int_equal(rs.skipped, rr.skipped);
        assert_int_equal(rs.overflow, rr.overflow);
        assert_true(rs.step == rr.step);
        assert_true(rs.loss_scale == rr.loss_scale);
        if (isfinite(rr.grad_norm))
            assert_true(fabs(rs.grad_norm - rr.grad_norm) <= 1e-5 * rr.grad_norm + 1e-30);
        skipped += rs.skipped;
        for (int i = 0; i < NP; i++) {
            assert_int_equal(zoff_params_ready(ms.rt, NULL), 0);
            assert_int_equal(zoff_params_ready(mr.rt, NULL), 0);
        }
        size_t bad = compare_params_tol(&ms, &mr, exact);
        if (bad) fprintf(stderr, "rank %d: step %d: %zu params differ\n", g_rank, t, bad);
        assert_int_equal(bad, 0);
    }
    if (overflow_step > 0) assert_int_equal(skipped, 1);
    if (exact) {
        compare_state(&ms, &mr);
    } else { /* masters within 1e-5 relative on the owned range */
        zoff_rank_info ri = ZOFF_RANK_INFO_INIT;
        assert_int_equal(zoff_get_rank_info(ms.rt, &ri), 0);
        uint64_t off = 0;
        for (int i = 0; i < NP; i++) {
            float *x = zt_malloc(k_numel[i] * sizeof(float));
            float *y = zt_malloc(k_numel[i] * sizeof(float));
            assert_int_equal(zoff_get_master(ms.rt, ms.id[i], x), 0);
            assert_int_equal(zoff_get_master(mr.rt, mr.id[i], y), 0);
            for (uint64_t e = ZOFF_MAX(off, ri.own_begin);
                 e < ZOFF_MIN(off + k_numel[i], ri.own_end); e++)
                assert_true(fabs((double)x[e - off] - (double)y[e - off]) <=
                            1e-5 * fabs((double)y[e - off]) + 1e-6);
            free(x);
            free(y);
            off += k_numel[i];
        }
    }
    for (int i = 0; i < NP; i++) free(vals[i]);
    tr_close(&ms);
    tr_close(&mr);
    if (d1) zt_rmtree(d1);
    if (d2) zt_rmtree(d2);
    free(d1);
    free(d2);
}

static void test_accum_stage2(void **state)
{
    (void)state;
    run_accum(2, 2, 0, 30);
}
static void test_accum_stage1(void **state)
{
    (void)state;
    run_accum(1, 3, 0, 10);
}
static void test_accum_overflow_one_rank(void **state)
{
    (void)state;
    run_accum(2, 2, 4, 8);
}

/* ---- checkpoints across rank counts: `test_shard TIER save DIR` (several ranks) writes a
 * checkpoint at step 10 and DIR.expected (every 16-bit param after step 20 without a restart);
 * `test_shard TIER load DIR` (any number of ranks, 1 included) loads it, runs steps 11..20 and
 * compares. fp16, the same gradient on every rank, stage 2. */
static void ckpt_steps(tr_model *m, int from, int to)
{
    float *vals[NP];
    for (int i = 0; i < NP; i++) vals[i] = zt_malloc(k_numel[i] * sizeof(float));
    for (int t = from; t <= to; t++) {
        float scale = 1.0f;
        assert_int_equal(zoff_get_loss_scale(m->rt, &scale), 0);
        for (int i = 0; i < NP; i++)
            for (size_t k = 0; k < k_numel[i]; k++) vals[i][k] = gval(t, i, k, 0) * 1e-3f * scale;
        push(m, vals);
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        assert_int_equal(zoff_step(m->rt, NULL, &r), 0);
    }
    assert_int_equal(zoff_params_ready(m->rt, NULL), 0);
    for (int i = 0; i < NP; i++) free(vals[i]);
}

/* After a save by g_size ranks (rank 0 checks): with several ranks, one file per rank (no
 * optimizer.safetensors), each slice stored in the file of the rank that owns its elements and
 * each file holding exactly its rank's range (3 fp32 tensors) after its header: no rank wrote
 * another's bytes. With one rank, the single-file format 2. */
static void check_layout(const char *dir)
{
    zoff_ckpt *c = NULL;
    assert_int_equal(zoff_ckpt_open(dir, &c), 0);
    assert_int_equal(zoff_ckpt_verify(c), 0);
    zoff_ckpt_info info = ZOFF_CKPT_INFO_INIT;
    assert_int_equal(zoff_ckpt_get_info(c, &info), 0);
    char p[1200];
    snprintf(p, sizeof p, "%s/optimizer.safetensors", dir);
    if (g_size == 1) {
        assert_int_equal(info.format_version, 2);
        assert_int_equal(info.nfiles, 1);
        assert_int_equal(access(p, F_OK), 0);
        zoff_ckpt_close(c);
        return;
    }
    assert_int_equal(info.format_version, 3);
    assert_int_equal(info.nfiles, g_size);
    assert_int_not_equal(access(p, F_OK), 0);
    uint64_t total = 0, flat[NP + 1] = {0};
    for (int i = 0; i < NP; i++) flat[i + 1] = flat[i] + k_numel[i];
    total = flat[NP];
    uint64_t S = (total + (uint64_t)g_size - 1) / (uint64_t)g_size;
    uint64_t held[16] = {0};
    assert_int_equal(info.ntensors, (size_t)NP * 3);
    for (size_t t = 0; t < info.ntensors; t++) {
        zoff_ckpt_tensor_info ti = ZOFF_CKPT_TENSOR_INFO_INIT;
        assert_int_equal(zoff_ckpt_tensor_info_at(c, t, &ti), 0);
        uint64_t at = 0;
        for (size_t k = 0; k < ti.nslices; k++) {
            zoff_ckpt_slice_info si = ZOFF_CKPT_SLICE_INFO_INIT;
            assert_int_equal(zoff_ckpt_slice_info_at(c, t, k, &si), 0);
            uint64_t f0 = flat[t / 3] + si.begin, f1 = f0 + si.numel;
            assert_true(si.begin == at);
            assert_true(si.rank == (int)(f0 / S));          /* the owner of its first element */
            assert_true(f1 <= (uint64_t)(si.rank + 1) * S); /* ... and of its last */
            char want[64];
            snprintf(want, sizeof want, "optimizer.rank%05d.safetensors", si.rank);
            assert_string_equal(si.file, want);
            held[si.rank] += si.numel;
            at += si.numel;
        }
        assert_true(at == ti.numel);
    }
    for (int r = 0; r < g_size; r++) {
        uint64_t own = ZOFF_MIN(S, total - (uint64_t)r * S);
        assert_true(held[r] == 3 * own);
        snprintf(p, sizeof p, "%s/optimizer.rank%05d.safetensors", dir, r);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        FILE *f = fopen(p, "rb");
        uint8_t lenb[8];
        assert_int_equal(fread(lenb, 1, 8, f), 8);
        fclose(f);
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
        assert_true((uint64_t)sb.st_size == 8 + hl + 12 * own);
        printf("rank file %d: %lld bytes, %llu elements of its own range x 3\n", r,
               (long long)sb.st_size, (unsigned long long)own);
    }
    zoff_ckpt_close(c);
}

/* No "<base>.tmp-*" next to dir: a failed save left nothing behind. */
static int tmp_leftovers(const char *dir)
{
    char parent[1100];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    assert_non_null(slash);
    *slash = '\0';
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s.tmp-", slash + 1);
    DIR *d = opendir(parent);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

/* `savefail DIR`: a checkpoint at step 10, then at step 12 rank 1 cannot write its file (a
 * file-size limit makes its writes fail, as a full or failing disk would): every rank's save
 * fails, rank 1 naming its file, the others naming rank 1; the checkpoint at DIR is still the
 * whole step-10 one, no temporary directory is left, and the next save works. */
static int savefail_mode(tr_model *m, const char *dir)
{
    ckpt_steps(m, 1, 10);
    assert_int_equal(zoff_save(m->rt, dir), 0);
    ckpt_steps(m, 11, 12);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    if (g_rank == 1) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {4096, old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    }
    zoff_status st = zoff_save(m->rt, dir);
    if (g_rank == 1) assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    const char *msg = zoff_last_error(m->rt);
    printf("rank %d: the failed save says: %s\n", g_rank, msg);
    assert_true(st < 0);
    if (g_rank == 1)
        assert_non_null(strstr(msg, "optimizer.rank00001.safetensors"));
    else
        assert_non_null(strstr(msg, "rank 1 could not write its slices"));
    assert_non_null(strstr(msg, "(step 10) is still valid"));
    if (g_rank == 0) {
        zoff_ckpt *c = NULL;
        assert_int_equal(zoff_ckpt_open(dir, &c), 0);
        assert_int_equal(zoff_ckpt_verify(c), 0);
        zoff_ckpt_info info = ZOFF_CKPT_INFO_INIT;
        assert_int_equal(zoff_ckpt_get_info(c, &info), 0);
        assert_int_equal(info.step, 10);
        zoff_ckpt_close(c);
        assert_int_equal(tmp_leftovers(dir), 0);
    }
    assert_int_equal(zoff_save(m->rt, dir), 0);
    if (g_rank == 0) {
        check_layout(dir);
        assert_int_equal(tmp_leftovers(dir), 0);
    }
    /* rank 0 cannot even prepare (a file where the directory goes): every rank fails at once */
    char file[1100];
    snprintf(file, sizeof file, "%s-file", dir);
    if (g_rank == 0) {
        FILE *f = fopen(file, "w");
        assert_non_null(f);
        fclose(f);
    }
    uint64_t t0 = zoff__now_ns();
    st = zoff_save(m->rt, file);
    double s = (double)(zoff__now_ns() - t0) / 1e9;
    msg = zoff_last_error(m->rt);
    printf("rank %d: saving over a file says after %.2f s: %s\n", g_rank, s, msg);
    assert_true(st < 0 && s < 20.0);
    if (g_rank != 0) assert_non_null(strstr(msg, "rank 0 could not prepare"));
    if (g_rank == 0) unlink(file);
    printf("rank %d of %d: failed save kept the previous checkpoint: ok\n", g_rank, g_size);
    return 0;
}

/* Copies the checkpoint DIR to DIR-corrupt-<rank> with one byte of rank 1's first slice
 * flipped. */
static void corrupt_copy(const char *dir, char *out, size_t len)
{
    snprintf(out, len, "%s-corrupt-%d", dir, g_rank);
    zt_rmtree(out);
    assert_int_equal(mkdir(out, 0755), 0);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char from[1300], to[1300];
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", out, e->d_name);
        FILE *fi = fopen(from, "rb"), *fo = fopen(to, "wb");
        assert_true(fi && fo);
        char buf[65536];
        for (size_t n; (n = fread(buf, 1, sizeof buf, fi)) > 0;)
            assert_int_equal(fwrite(buf, 1, n, fo), n);
        fclose(fi);
        fclose(fo);
    }
    closedir(d);
    zoff_ckpt *c = NULL;
    assert_int_equal(zoff_ckpt_open(out, &c), 0);
    zoff_ckpt_slice_info si = ZOFF_CKPT_SLICE_INFO_INIT;
    int found = 0;
    for (size_t t = 0; t < zoff_ckpt_tensor_count(c) && !found; t++) {
        zoff_ckpt_tensor_info ti = ZOFF_CKPT_TENSOR_INFO_INIT;
        assert_int_equal(zoff_ckpt_tensor_info_at(c, t, &ti), 0);
        for (size_t k = 0; k < ti.nslices && !found; k++) {
            assert_int_equal(zoff_ckpt_slice_info_at(c, t, k, &si), 0);
            found = si.rank == 1;
        }
    }
    assert_true(found);
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", out, si.file);
    zoff_ckpt_close(c);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)si.file_offset + 5), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)si.file_offset + 5), 1);
    close(fd);
}

/* `corrupt DIR` (any number of ranks): a copy of the 3-rank checkpoint with one byte of rank 1's
 * slice flipped does not load: ZOFF_ECORRUPT naming rank 1's file and bytes on the rank(s) whose
 * range reads it, the others told another rank could not load; nothing was changed, so the run
 * goes on. */
static int corrupt_mode(tr_model *m, const char *dir)
{
    char copy[1200];
    corrupt_copy(dir, copy, sizeof copy);
    ckpt_steps(m, 1, 2);
    zoff_status st = zoff_load(m->rt, copy);
    const char *msg = zoff_last_error(m->rt);
    printf("rank %d of %d: loading the corrupt copy says: %s\n", g_rank, g_size, msg);
    assert_true(st < 0);
    int named = strstr(msg, "optimizer.rank00001.safetensors bytes") != NULL;
    assert_true(named || strstr(msg, "another rank could not load") != NULL);
    if (g_size == 1) assert_true(named && st == ZOFF_ECORRUPT);
    int64_t step = -1;
    assert_int_equal(zoff_get_step(m->rt, &step), 0);
    assert_true(step == 2);
    ckpt_steps(m, 3, 4); /* the runtime is intact */
    return 0;
}

static int ckpt_mode(const char *mode, const char *dir)
{
    zoff_config c;
    char *nv = NULL;
    setup_cfg(&c, ZOFF_DTYPE_F16, 2, 0, &nv);
    /* ZT_STATE_FORMAT=bf16: the moments kept (and sliced, saved, loaded) as bf16 */
    const char *sf = getenv("ZT_STATE_FORMAT");
    if (sf && strcmp(sf, "bf16") == 0) c.state_format = ZOFF_STATE_BF16;
    tr_model m;
    assert_int_equal(tr_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    char expected[1100];
    snprintf(expected, sizeof expected, "%s.expected", dir);
    int bad = 0;
    if (strcmp(mode, "savefail") == 0 || strcmp(mode, "corrupt") == 0) {
        bad = mode[0] == 's' ? savefail_mode(&m, dir) : corrupt_mode(&m, dir);
    } else if (strcmp(mode, "save") == 0) {
        ckpt_steps(&m, 1, 10);
        if (zoff_save(m.rt, dir) != 0) {
            fprintf(stderr, "rank %d: zoff_save: %s\n", g_rank, zoff_last_error(m.rt));
            return 1;
        }
        if (g_rank == 0) check_layout(dir);
        ckpt_steps(&m, 11, 20);
        if (g_rank == 0) {
            FILE *f = fopen(expected, "wb");
            assert_non_null(f);
            for (int i = 0; i < NP; i++) fwrite(m.dparam[i], 2, k_numel[i], f);
            fclose(f);
        }
    } else {
        if (zoff_load(m.rt, dir) != 0) {
            fprintf(stderr, "rank %d: zoff_load: %s\n", g_rank, zoff_last_error(m.rt));
            return 1;
        }
        int64_t step = -1;
        assert_int_equal(zoff_get_step(m.rt, &step), 0);
        assert_true(step == 10);
        ckpt_steps(&m, 11, 20);
        FILE *f = fopen(expected, "rb");
        assert_non_null(f);
        for (int i = 0; i < NP; i++) {
            uint16_t *h = zt_malloc(k_numel[i] * 2);
            assert_int_equal(fread(h, 2, k_numel[i], f), k_numel[i]);
            if (memcmp(h, m.dparam[i], k_numel[i] * 2) != 0) {
                fprintf(stderr, "rank %d of %d: param %d differs after the restart\n", g_rank,
                        g_size, i);
                bad++;
            }
            free(h);
        }
        fclose(f);
    }
    printf("rank %d of %d: checkpoint %s %s: %s\n", g_rank, g_size, mode, dir,
           bad ? "MISMATCH" : "ok");
    tr_close(&m);
    if (nv) zt_rmtree(nv);
    free(nv);
    return bad ? 1 : 0;
}

/* Two "nodes" on one machine: the first ceil(N/2) ranks are node 0, the rest node 1, numbered
 * from 0 on each node through ZOFF_LOCAL_RANK / ZOFF_LOCAL_SIZE; every node has two swap paths
 * of its own. Each rank must report its node-local rank, put its swap files only under the
 * paths of its share (local rank l of L: paths l, l+L, ...) and the run must still equal the
 * single-rank one bit for bit. */
static int has_my_rundir(const char *dir)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d-", (int)getpid());
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, pid)) found = 1;
    closedir(d);
    return found;
}

static void test_two_nodes(void **state)
{
    (void)state;
    int half = (g_size + 1) / 2;
    int node = g_rank < half ? 0 : 1;
    int local = node ? g_rank - half : g_rank, lsize = node ? g_size - half : half;
    const char *tmp = getenv("ZOFF_TEST_TMP") ? getenv("ZOFF_TEST_TMP") : "/tmp";
    char base[512], p[2][2][600];
    snprintf(base, sizeof base, "%s/shard-nodes", tmp);
    mkdir(base, 0755);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 2; k++) {
            snprintf(p[n][k], sizeof p[n][k], "%s/node%d-disk%d", base, n, k);
            mkdir(p[n][k], 0755);
        }
    char v[16];
    snprintf(v, sizeof v, "%d", local);
    setenv("ZOFF_LOCAL_RANK", v, 1);
    snprintf(v, sizeof v, "%d", lsize);
    setenv("ZOFF_LOCAL_SIZE", v, 1);
    zoff_config cs, cr;
    tr_config(&cs, ZOFF_DTYPE_F16);
    cs.comm_timeout_ms = 60000;
    cs.tier = ZOFF_TIER_NVME;
    cs.buffer_count = 3;
    cs.aio_odirect = 0;
    snprintf(cs.nvme_path, sizeof cs.nvme_path, "%s,%s", p[node][0], p[node][1]);
    tr_config(&cr, ZOFF_DTYPE_F16);
    cr.ranks = 1;
    tr_model ms, mr;
    assert_int_equal(tr_open(&ms, &cs, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    assert_int_equal(tr_open(&mr, &cr, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    unsetenv("ZOFF_LOCAL_RANK");
    unsetenv("ZOFF_LOCAL_SIZE");
    zoff_rank_info ri = ZOFF_RANK_INFO_INIT;
    assert_int_equal(zoff_get_rank_info(ms.rt, &ri), 0);
    assert_int_equal(ri.local_rank, local);
    assert_int_equal(ri.local_size, lsize);
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 2; k++) {
            int want = n == node && (lsize == 1 || k == local % 2);
            if (has_my_rundir(p[n][k]) != want)
                fprintf(stderr, "rank %d (node %d, local %d of %d): swap under %s: %d, want %d\n",
                        g_rank, node, local, lsize, p[n][k], !want, want);
            assert_int_equal(has_my_rundir(p[n][k]), want);
        }
    ckpt_steps(&ms, 1, 10);
    ckpt_steps(&mr, 1, 10);
    assert_int_equal(compare_params(&ms, &mr), 0);
    tr_close(&ms);
    tr_close(&mr);
}

/* ---- `test_shard TIER kill`: the last rank dies (SIGKILL) in the middle of step 3, after its
 * gradients were handed over; the others must fail within the watchdog timeout (3 s) with a
 * message naming the phase and the missing rank, then exit 0 (mpirun reports the killed rank). */
static int kill_mode(void)
{
    zoff_config c;
    char *nv = NULL;
    setup_cfg(&c, ZOFF_DTYPE_F16, 2, 0, &nv);
    c.comm_timeout_ms = 3000;
    tr_model m;
    assert_int_equal(tr_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    ckpt_steps(&m, 1, 2);
    float *vals[NP];
    for (int i = 0; i < NP; i++) {
        vals[i] = zt_malloc(k_numel[i] * sizeof(float));
        for (size_t k = 0; k < k_numel[i]; k++) vals[i][k] = gval(3, i, k, 0);
    }
    push(&m, vals);
    if (g_rank == g_size - 1) {
        fflush(stdout);
        raise(SIGKILL);
    }
    uint64_t t0 = zoff__now_ns();
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    zoff_status st = zoff_step(m.rt, NULL, &r);
    double s = (double)(zoff__now_ns() - t0) / 1e9;
    const char *msg = zoff_last_error(m.rt);
    printf("rank %d: zoff_step returned %d after %.2f s: %s\n", g_rank, st, s, msg);
    fflush(stdout);
    int ok = st == -ETIMEDOUT && s < 10.0 && strstr(msg, "phase") && strstr(msg, "step 3");
    char want[64];
    snprintf(want, sizeof want, "not responding: rank %d", g_size - 1);
    ok = ok && strstr(msg, want) != NULL;
    printf("rank %d: watchdog %s\n", g_rank, ok ? "WORKED" : "FAILED");
    fflush(stdout);
    _exit(ok ? 0 : 1); /* MPI cannot finalise with a dead peer */
}

/* `savekill DIR` (mpirun --enable-recovery): the last rank dies while writing its slices; the
 * others' save fails within the watchdog timeout, rank 0 removes the temporary directory and the
 * checkpoint at DIR is still the whole step-10 one. */
static void die_at_chunk(const char *point, uint64_t count, void *arg)
{
    (void)arg;
    if (strcmp(point, "chunk") == 0 && count == 2) {
        fflush(stdout);
        raise(SIGKILL);
    }
}

static int savekill_mode(const char *dir)
{
    zoff_config c;
    char *nv = NULL;
    setup_cfg(&c, ZOFF_DTYPE_F16, 2, 0, &nv);
    c.comm_timeout_ms = 3000;
    tr_model m;
    assert_int_equal(tr_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 42), 0);
    ckpt_steps(&m, 1, 10);
    assert_int_equal(zoff_save(m.rt, dir), 0);
    ckpt_steps(&m, 11, 12);
    if (g_rank == g_size - 1) zckpt__set_fault_hook(die_at_chunk, NULL);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = zoff_save(m.rt, dir);
    double s = (double)(zoff__now_ns() - t0) / 1e9;
    const char *msg = zoff_last_error(m.rt);
    printf("rank %d: zoff_save returned %d after %.2f s: %s\n", g_rank, st, s, msg);
    int ok = st < 0 && s < 10.0 && strstr(msg, "checkpoint save") != NULL;
    if (g_rank == 0 && ok) {
        zoff_ckpt *ck = NULL;
        zoff_ckpt_info info = ZOFF_CKPT_INFO_INIT;
        ok = zoff_ckpt_open(dir, &ck) == 0 && zoff_ckpt_verify(ck) == 0 &&
             zoff_ckpt_get_info(ck, &info) == 0 && info.step == 10 && tmp_leftovers(dir) == 0;
        zoff_ckpt_close(ck);
    }
    printf("rank %d: savekill %s\n", g_rank, ok ? "WORKED" : "FAILED");
    fflush(stdout);
    _exit(ok ? 0 : 1); /* MPI cannot finalise with a dead peer */
}

/* `savebench DIR NUMEL REPS` (not a CTest): 8 fp16 params of NUMEL elements, cpu/nvme tier;
 * times REPS zoff_save + zoff_load to DIR with however many ranks run it (rank 0 prints). */
static int savebench_mode(const char *dir, size_t numel, int reps)
{
    zoff_config c;
    char *nv = NULL;
    setup_cfg(&c, ZOFF_DTYPE_F16, 2, 0, &nv);
    c.partition_numel = 1 << 20;
    c.tile_numel = 1 << 16;
    c.sim_gpu_bytes = (size_t)8 * numel * 4 + 64 * ZOFF_MIB;
    size_t sizes[8];
    for (int i = 0; i < 8; i++) sizes[i] = numel;
    tr_model m;
    assert_int_equal(tr_open(&m, &c, 8, sizes, ZOFF_DTYPE_F16, 42), 0);
    double mb = (double)numel * 8 * 12 / 1e6;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = zoff__now_ns();
        assert_int_equal(zoff_save(m.rt, dir), 0);
        uint64_t t1 = zoff__now_ns();
        assert_int_equal(zoff_load(m.rt, dir), 0);
        uint64_t t2 = zoff__now_ns();
        if (g_rank == 0)
            printf("%d ranks, %.0f MB of state: save %.3f s (%.2f GB/s), load %.3f s\n", g_size, mb,
                   (double)(t1 - t0) / 1e9, mb / 1e3 / ((double)(t1 - t0) / 1e9),
                   (double)(t2 - t1) / 1e9);
    }
    tr_close(&m);
    if (nv) zt_rmtree(nv);
    free(nv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) g_tier = argv[1];
    if (argc > 2 && strcmp(argv[2], "kill") == 0) {
        int r, n, lr, ln;
        zcomm_env_ranks(&r, &n, &lr, &ln);
        g_rank = r;
        g_size = n;
        return kill_mode();
    }
    if (argc > 5 && strcmp(argv[2], "savebench") == 0) {
        int r, n, lr, ln;
        zcomm_env_ranks(&r, &n, &lr, &ln);
        g_rank = r;
        g_size = n;
        return savebench_mode(argv[3], (size_t)atoll(argv[4]), atoi(argv[5]));
    }
    if (argc > 3 && strcmp(argv[2], "savekill") == 0) {
        int r, n, lr, ln;
        zcomm_env_ranks(&r, &n, &lr, &ln);
        g_rank = r;
        g_size = n;
        return savekill_mode(argv[3]);
    }
    if (argc > 3) { /* checkpoint mode: any number of ranks */
        int r, n, lr, ln;
        zcomm_env_ranks(&r, &n, &lr, &ln);
        g_rank = r;
        g_size = n;
        return ckpt_mode(argv[2], argv[3]);
    }
    int r, n, lr, ln;
    zcomm_env_ranks(&r, &n, &lr, &ln);
    if (n < 2) zt_skip_all("run under mpirun with several ranks (ctest does)");
    if (!zcomm_backend_built(ZCOMM_MPI)) zt_skip_all("this zoff was built without MPI");
    g_rank = r;
    g_size = n;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage2_same_grads),
        cmocka_unit_test(test_stage1_same_grads),
        cmocka_unit_test(test_stage2_rank_grads_f32),
        cmocka_unit_test(test_stage1_rank_grads_f32),
        cmocka_unit_test(test_overflow_one_rank),
        cmocka_unit_test(test_two_nodes),
        cmocka_unit_test(test_accum_stage2),
        cmocka_unit_test(test_accum_stage1),
        cmocka_unit_test(test_accum_overflow_one_rank),
        cmocka_unit_test(test_bucket_stage2_same_grads),
        cmocka_unit_test(test_bucket_stage1_same_grads),
        cmocka_unit_test(test_bucket_stage2_rank_grads_f32),
        cmocka_unit_test(test_bucket_stage1_rank_grads_f32),
        cmocka_unit_test(test_bucket_overflow_one_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
