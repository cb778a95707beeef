/*
 * test_grad_skip.c — parameters without a gradient, refused steps and non-finite gradients
 * (sim device; argv[1] = "nvme" puts the optimizer state on swap files):
 *  - missing gradients: in overlap sync, eager (bf16) and delayed (bf16, after the warm-up), a
 *    parameter whose gradient is not declared in a step keeps its master weights, moments,
 *    16-bit device copy and step count bit for bit (also when it shares partitions and tiles
 *    with updated ones); over a schedule of missing gradients the run follows a float64
 *    reference that keeps one step count per parameter (torch.optim's bias correction), and
 *    zoff_get_param_step equals the reference's counts;
 *  - ZOFF_STEP_ZERO_MISSING_GRADS: the same schedule with the flag equals the reference fed zero
 *    gradients for the missing ones (moments decay, weight decay applies, counts advance);
 *  - zoff_grads_discard: gradients declared then discarded do not reach the next step (the run
 *    equals one that never declared them); eager refuses to discard once a partition ran;
 *  - non-finite gradients: fp32 sync and bf16 delayed skip the whole step (nothing changes, the
 *    step counter stays, the result and zoff_stats say so) and the warning names the parameter;
 *  - checkpoints: per-parameter step counts are saved and loaded (a checkpoint without them
 *    loads every parameter at the global step); a sync run and a delayed run (saved with an
 *    update pending, and inside the warm-up) resumed from a checkpoint equal the uninterrupted
 *    run bit for bit, device params included, with gradients computed from the device params.
 */
#include "runtime/ckpt.h"
#include "test_runtime_util.h"

static int g_nvme;
/* partition 1000, tile 256: params 0/1 and 1/2 share partitions, params span tiles */
static const size_t k_numel[3] = {1500, 4097, 300};

/* "Backward" of the params with have[i] set only (rounded copies in gq, as tr_backward). */
static void backward_some(tr_model *m, float *const *g, float *const *gq, const int *have)
{
    zdev *dev = m->rt->dev;
    for (int i = m->np - 1; i >= 0; i--) {
        if (!have[i]) continue;
        size_t n = m->numel[i];
        for (size_t k = 0; k < n; k++) {
            if (m->dt == ZOFF_DTYPE_F32) {
                m->hgradf[i][k] = g[i][k];
                gq[i][k] = g[i][k];
            } else {
                m->hgrad[i][k] = tr_from_f32(m->dt, g[i][k]);
                gq[i][k] = tr_to_f32(m->dt, m->hgrad[i], k);
            }
        }
        assert_int_equal(zoff_stream_busy(m->rt, m->s, 20000), 0);
        assert_int_equal(zdev_memcpy_h2d(dev, m->dgrad[i], m->hgrad[i], n * zoff_dtype_size(m->dt),
                                         (zdev_stream *)m->s),
                         0);
        assert_int_equal(zoff_grad_ready(m->rt, m->id[i], m->s), 0);
    }
}

/* float64 AdamW with one step count per parameter (torch.optim): params with have[i] == 0 are
 * skipped, or fed a zero gradient when zero_missing. */
static void ref_step(tr_ref *r, int64_t *steps, const zoff_group_config *g, float *const *gq,
                     const int *have, int zero_missing)
{
    double b1 = g->beta1, b2 = g->beta2, lr = g->lr, wd = g->weight_decay, eps = g->eps;
    for (int i = 0; i < r->np; i++) {
        if (!have[i] && !zero_missing) continue;
        int64_t t = ++steps[i];
        double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
        for (size_t k = 0; k < r->numel[i]; k++) {
            double gr = have[i] ? (double)gq[i][k] : 0.0;
            double p = r->p[i][k];
            double mm = b1 * r->m[i][k] + (1 - b1) * gr;
            double v = b2 * r->v[i][k] + (1 - b2) * gr * gr;
            p -= lr * wd * p;
            p -= lr * (mm / bc1) / (sqrt(v / bc2) + eps);
            r->p[i][k] = p;
            r->m[i][k] = mm;
            r->v[i][k] = v;
        }
    }
}

/* The raw device copy of param i. */
static void *device_copy(tr_model *m, int i)
{
    size_t bytes = m->numel[i] * zoff_dtype_size(m->dt);
    void *h = zt_malloc(bytes);
    assert_int_equal(zoff_device_download(m->rt, h, m->dparam[i], bytes, m->s), 0);
    return h;
}

#define STEPS 14
/* have[s][i]: param i has a gradient at step s (param 2 starts late, 1 and 0 miss some) */
static int has_grad(int s, int i)
{
    if (i == 2) return s >= 4 && s != 9;
    if (i == 1) return s != 2 && s != 3 && s != 7;
    return s != 5 && s != 11;
}

static void run_schedule(zoff_overlap ov, zoff_dtype dt, int zero_missing)
{
    zoff_config c;
    tr_config(&c, dt);
    c.overlap = ov;
    c.delayed_warmup_steps = 2;
    if (dt == ZOFF_DTYPE_F16) c.loss_scale = 1.0f; /* static: the gradients are not scaled */
    char *dir = tr_tier(&c, g_nvme);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, dt, 42);
    assert_int_equal((int)m.rt->overlap, (int)ov);
    tr_ref ref;
    tr_ref_init(&ref, &m, 42);
    int64_t steps[3] = {0, 0, 0};
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 11);
    zoff_step_args a = ZOFF_STEP_ARGS_INIT;
    a.flags = zero_missing ? ZOFF_STEP_ZERO_MISSING_GRADS : 0;
    int64_t missing_total = 0;
    for (int s = 0; s < STEPS; s++) {
        int have[3];
        for (int i = 0; i < 3; i++) {
            have[i] = has_grad(s, i);
            zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
        }
        tr_state before;
        void *dev_before[3];
        if (ov != ZOFF_OVERLAP_DELAYED) { /* delayed: the device lags by design */
            tr_state_get(&m, &before);
            for (int i = 0; i < 3; i++) dev_before[i] = device_copy(&m, i);
        }
        backward_some(&m, gr.g, gr.gq, have);
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        zoff_status st = zoff_step(m.rt, &a, &r);
        if (st) fprintf(stderr, "step %d: %s\n", s, zoff_last_error(m.rt));
        assert_int_equal(st, 0);
        assert_int_equal(zoff_params_ready(m.rt, NULL), 0);
        ref_step(&ref, steps, &c.optimizer, gr.gq, have, zero_missing);
        int nhave = have[0] + have[1] + have[2];
        assert_int_equal(r.skipped, 0);
        assert_int_equal(r.step, s + 1);
        assert_int_equal(r.params_without_grad, zero_missing ? 0 : 3 - nhave);
        assert_int_equal(r.params_updated, zero_missing ? 3 : nhave);
        missing_total += zero_missing ? 0 : 3 - nhave;
        for (int i = 0; i < 3; i++) {
            int64_t ps = -1;
            assert_int_equal(zoff_get_param_step(m.rt, m.id[i], &ps), 0);
            assert_int_equal(ps, steps[i]);
        }
        if (ov != ZOFF_OVERLAP_DELAYED) {
            tr_state after;
            tr_state_get(&m, &after);
            for (int i = 0; i < 3; i++) {
                size_t n = k_numel[i];
                void *dev_after = device_copy(&m, i);
                if (!have[i] && !zero_missing) { /* untouched, bit for bit */
                    assert_memory_equal(before.p[i], after.p[i], n * 4);
                    assert_memory_equal(before.m[i], after.m[i], n * 4);
                    assert_memory_equal(before.v[i], after.v[i], n * 4);
                    assert_memory_equal(dev_before[i], dev_after, n * zoff_dtype_size(dt));
                } else if (have[i]) {
                    assert_memory_not_equal(before.m[i], after.m[i], n * 4);
                } else { /* a zero gradient: at least the weight decay */
                    assert_memory_not_equal(before.p[i], after.p[i], n * 4);
                }
                free(dev_after);
                free(dev_before[i]);
            }
            tr_state_free(&before);
            tr_state_free(&after);
        }
    }
    if (tr_ref_compare(&ref, &m, 2e-5, 2e-4)) fail_msg("zoff differs from the reference");
    /* a step without any gradient changes nothing; in delayed mode it also brings the last
     * update's params to the device */
    tr_state s0, s1;
    tr_state_get(&m, &s0);
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(zoff_params_ready(m.rt, NULL), 0);
    assert_int_equal(r.params_updated, 0);
    assert_int_equal(r.params_without_grad, 3);
    tr_state_get(&m, &s1);
    assert_int_equal(tr_state_diff(&s0, &s1), 0);
    assert_int_equal(tr_check_device(&m, s1.p), 0);
    zoff_stats zs = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(m.rt, &zs), 0);
    assert_int_equal(zs.missing_grads, missing_total + 3);
    assert_int_equal(zs.nonfinite_steps, 0);
    tr_state_free(&s0);
    tr_state_free(&s1);
    tr_grads_free(&gr);
    tr_ref_free(&ref);
    tr_close(&m);
    tr_rmdir(dir);
}

static void test_missing_sync_f32(void **state)
{
    (void)state;
    run_schedule(ZOFF_OVERLAP_SYNC, ZOFF_DTYPE_F32, 0);
}

static void test_missing_sync_f16(void **state)
{
    (void)state;
    run_schedule(ZOFF_OVERLAP_SYNC, ZOFF_DTYPE_F16, 0);
}

static void test_missing_eager_bf16(void **state)
{
    (void)state;
    run_schedule(ZOFF_OVERLAP_EAGER, ZOFF_DTYPE_BF16, 0);
}

static void test_missing_delayed_bf16(void **state)
{
    (void)state;
    run_schedule(ZOFF_OVERLAP_DELAYED, ZOFF_DTYPE_BF16, 0);
}

static void test_zero_missing_flag(void **state)
{
    (void)state;
    run_schedule(ZOFF_OVERLAP_SYNC, ZOFF_DTYPE_BF16, 1);
    run_schedule(ZOFF_OVERLAP_EAGER, ZOFF_DTYPE_BF16, 1);
    run_schedule(ZOFF_OVERLAP_DELAYED, ZOFF_DTYPE_BF16, 1);
}

/* Six steps of real gradients (param 1 has none at step 3). With `refused`, each step first
 * declares garbage gradients for some params and discards them: that run must equal the one
 * without (the same rng stream, the garbage drawn but never declared). */
static void run_discard(zoff_overlap ov, int refused, tr_state *out)
{
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_BF16);
    c.overlap = ov;
    c.delayed_warmup_steps = 1;
    char *dir = tr_tier(&c, g_nvme);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_BF16, 42);
    tr_grads gr, junk;
    tr_grads_init(&gr, &m);
    tr_grads_init(&junk, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 3);
    for (int s = 0; s < 6; s++) {
        int have[3] = {1, s != 3, 1};
        for (int i = 0; i < 3; i++) {
            zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
            zt_fill_normal(&rng, junk.g[i], k_numel[i], 5.0f);
        }
        if (refused) {
            /* a refused attempt: param 2 only (eager: its partition also holds param 1's end,
             * so no partition completes) */
            int some[3] = {0, 0, 1};
            backward_some(&m, junk.g, junk.gq, some);
            assert_int_equal(zoff_grads_discard(m.rt), 0);
            assert_int_equal(zoff_grads_discard(m.rt), 0); /* nothing declared: fine */
        }
        backward_some(&m, gr.g, gr.gq, have);
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
        assert_int_equal(r.params_updated, 2 + have[1]);
        assert_int_equal(zoff_params_ready(m.rt, NULL), 0);
    }
    tr_state_get(&m, out);
    tr_grads_free(&gr);
    tr_grads_free(&junk);
    tr_close(&m);
    tr_rmdir(dir);
}

static void discard_pair(zoff_overlap ov)
{
    tr_state a, b;
    run_discard(ov, 1, &a);
    run_discard(ov, 0, &b); /* the reference run: no refused attempt */
    assert_int_equal(tr_state_diff(&a, &b), 0);
    tr_state_free(&a);
    tr_state_free(&b);
}

static void test_discard(void **state)
{
    (void)state;
    discard_pair(ZOFF_OVERLAP_SYNC);
    discard_pair(ZOFF_OVERLAP_EAGER);
    discard_pair(ZOFF_OVERLAP_DELAYED);
}

/* Eager: once a partition was updated, the step cannot be taken back. */
static void test_discard_eager_refused(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_BF16);
    c.overlap = ZOFF_OVERLAP_EAGER;
    char *dir = tr_tier(&c, g_nvme);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_BF16, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 4);
    for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
    int have[3] = {1, 0, 0}; /* param 0 alone completes partition 0 */
    backward_some(&m, gr.g, gr.gq, have);
    zoff_status st = zoff_grads_discard(m.rt);
    assert_int_equal(st, ZOFF_ESTATE);
    assert_non_null(strstr(zoff_last_error(m.rt), "eager"));
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.params_updated, 1);
    tr_grads_free(&gr);
    tr_close(&m);
    tr_rmdir(dir);
}

/* Captures the log into a file for the duration of fn. Returns the text (caller frees). */
static char *log_begin(char *path, size_t len)
{
    char *dir = zt_mkdtemp("log");
    assert_non_null(dir);
    snprintf(path, len, "%s/log.txt", dir);
    setenv("ZOFF_DEBUG", "WARN", 1);
    setenv("ZOFF_DEBUG_FILE", path, 1);
    zoff__log_reinit();
    return dir;
}

static char *log_end(const char *path)
{
    unsetenv("ZOFF_DEBUG");
    unsetenv("ZOFF_DEBUG_FILE");
    zoff__log_reinit();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = zt_malloc(65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void run_nonfinite(zoff_overlap ov, zoff_dtype dt)
{
    zoff_config c;
    tr_config(&c, dt);
    c.overlap = ov;
    c.delayed_warmup_steps = 1;
    char *dir = tr_tier(&c, g_nvme);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, dt, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 9);
    int all[3] = {1, 1, 1};
    for (int s = 0; s < 3; s++) { /* past the warm-up */
        for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
        backward_some(&m, gr.g, gr.gq, all);
        assert_int_equal(zoff_step(m.rt, NULL, NULL), 0);
        assert_int_equal(zoff_params_ready(m.rt, NULL), 0);
    }
    tr_state before, after;
    tr_state_get(&m, &before);
    int64_t ps0[3];
    for (int i = 0; i < 3; i++) assert_int_equal(zoff_get_param_step(m.rt, m.id[i], &ps0[i]), 0);
    for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
    gr.g[1][77] = NAN;
    char path[512];
    char *ldir = log_begin(path, sizeof path);
    backward_some(&m, gr.g, gr.gq, all);
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    char *log = log_end(path);
    zt_rmtree(ldir);
    free(ldir);
    assert_non_null(strstr(log, "layer1.w"));
    assert_non_null(strstr(log, "skipped"));
    free(log);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(r.overflow, 1);
    assert_int_equal(r.params_nonfinite, 1);
    assert_int_equal(r.params_updated, 0);
    assert_int_equal(r.step, 3);
    tr_state_get(&m, &after);
    assert_int_equal(tr_state_diff(&before, &after), 0);
    for (int i = 0; i < 3; i++) {
        int64_t ps;
        assert_int_equal(zoff_get_param_step(m.rt, m.id[i], &ps), 0);
        assert_int_equal(ps, ps0[i]);
    }
    zoff_stats zs = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(m.rt, &zs), 0);
    assert_int_equal(zs.skipped_steps, 1);
    assert_int_equal(zs.nonfinite_steps, 1);
    assert_int_equal(zs.nonfinite_grads, 1);
    /* the next clean step goes on */
    gr.g[1][77] = 0.0f;
    backward_some(&m, gr.g, gr.gq, all);
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.step, 4);
    tr_state_free(&before);
    tr_state_free(&after);
    tr_grads_free(&gr);
    tr_close(&m);
    tr_rmdir(dir);
}

static void test_nonfinite_fp32_sync(void **state)
{
    (void)state;
    run_nonfinite(ZOFF_OVERLAP_SYNC, ZOFF_DTYPE_F32);
}

static void test_nonfinite_bf16_delayed(void **state)
{
    (void)state;
    run_nonfinite(ZOFF_OVERLAP_DELAYED, ZOFF_DTYPE_BF16);
}

/* Gradients that depend on what the device holds (a trainer's backward reads its params):
 * g = 0.1 * param + noise. */
static void grads_from_device(tr_model *m, tr_grads *gr, zt_rng *rng)
{
    for (int i = 0; i < m->np; i++) {
        void *d = device_copy(m, i);
        zt_fill_normal(rng, gr->g[i], m->numel[i], 0.02f);
        for (size_t k = 0; k < m->numel[i]; k++) gr->g[i][k] += 0.1f * tr_to_f32(m->dt, d, k);
        free(d);
    }
}

/* `steps` steps of the missing-gradient schedule from step `first`; with `save` set, a
 * checkpoint after step save_at - 1 is written there. */
static void ckpt_steps(tr_model *m, zt_rng *rng, int first, int steps, const char *save,
                       int save_at)
{
    tr_grads gr;
    tr_grads_init(&gr, m);
    for (int s = first; s < first + steps; s++) {
        if (save && s == save_at) assert_int_equal(zoff_save(m->rt, save), 0);
        int have[3];
        for (int i = 0; i < 3; i++) have[i] = has_grad(s, i);
        assert_int_equal(zoff_params_ready(m->rt, NULL), 0);
        grads_from_device(m, &gr, rng);
        backward_some(m, gr.g, gr.gq, have);
        assert_int_equal(zoff_step(m->rt, NULL, NULL), 0);
    }
    assert_int_equal(zoff_params_ready(m->rt, NULL), 0);
    tr_grads_free(&gr);
}

/* Per-parameter step counts and (delayed) the pending update survive a checkpoint: the resumed
 * run equals the uninterrupted one bit for bit, device params included. */
static void run_ckpt(zoff_overlap ov, int save_at)
{
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_BF16);
    c.overlap = ov;
    c.delayed_warmup_steps = 3;
    char *dir = tr_tier(&c, g_nvme);
    char *ck = zt_mkdtemp("ckpt");
    char path[600];
    snprintf(path, sizeof path, "%s/ck", ck);
    tr_model a, b;
    tr_open_ok(&a, &c, 3, k_numel, ZOFF_DTYPE_BF16, 42);
    zt_rng ra, rb;
    zt_rng_seed(&ra, 21);
    ckpt_steps(&a, &ra, 0, STEPS, path, save_at);
    /* the resumed run: the rng stream of the first save_at steps is replayed */
    tr_open_ok(&b, &c, 3, k_numel, ZOFF_DTYPE_BF16, 42);
    zt_rng_seed(&rb, 21);
    {
        tr_grads gr;
        tr_grads_init(&gr, &b);
        for (int s = 0; s < save_at; s++)
            for (int i = 0; i < 3; i++) zt_fill_normal(&rb, gr.g[i], k_numel[i], 0.02f);
        tr_grads_free(&gr);
    }
    zoff_status st = zoff_load(b.rt, path);
    if (st) fprintf(stderr, "load: %s\n", zoff_last_error(b.rt));
    assert_int_equal(st, 0);
    ckpt_steps(&b, &rb, save_at, STEPS - save_at, NULL, 0);
    tr_state sa, sb;
    tr_state_get(&a, &sa);
    tr_state_get(&b, &sb);
    assert_int_equal(tr_state_diff(&sa, &sb), 0);
    for (int i = 0; i < 3; i++) {
        int64_t pa, pb;
        assert_int_equal(zoff_get_param_step(a.rt, a.id[i], &pa), 0);
        assert_int_equal(zoff_get_param_step(b.rt, b.id[i], &pb), 0);
        assert_int_equal(pa, pb);
        void *da = device_copy(&a, i), *db = device_copy(&b, i);
        assert_memory_equal(da, db, k_numel[i] * 2);
        free(da);
        free(db);
    }
    tr_state_free(&sa);
    tr_state_free(&sb);
    tr_close(&a);
    tr_close(&b);
    zt_rmtree(ck);
    free(ck);
    tr_rmdir(dir);
}

static void test_checkpoint_sync(void **state)
{
    (void)state;
    run_ckpt(ZOFF_OVERLAP_SYNC, 6);
}

static void test_checkpoint_delayed(void **state)
{
    (void)state;
    run_ckpt(ZOFF_OVERLAP_DELAYED, 6); /* an update pending: the device one behind */
    run_ckpt(ZOFF_OVERLAP_DELAYED, 2); /* inside the warm-up */
}

/* A checkpoint written before per-parameter step counts (no "step" in the tensor entries, no
 * "pipeline"): every parameter loads with the global step. */
static void test_checkpoint_without_param_steps(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F32);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_F32, 42);
    char *ck = zt_mkdtemp("ckpt-old");
    char path[600];
    snprintf(path, sizeof path, "%s/ck", ck);
    zckpt_tensor t[9];
    memset(t, 0, sizeof t);
    for (int q = 0; q < 3; q++)
        for (int j = 0; j < 3; j++) {
            static const char *const sfx[3] = {"master", "exp_avg", "exp_avg_sq"};
            snprintf(t[q * 3 + j].name, sizeof t[0].name, "layer%d.w.%s", q, sfx[j]);
            t[q * 3 + j].numel = k_numel[q];
        }
    zckpt_writer *w = NULL;
    assert_int_equal(zckpt_writer_open(path, t, 9, &w), 0);
    for (int k = 0; k < 9; k++) {
        float *v = calloc(t[k].numel, sizeof(float));
        assert_int_equal(zckpt_writer_write(w, (size_t)k, v, t[k].numel), 0);
        free(v);
    }
    zckpt_meta *meta = calloc(1, sizeof *meta);
    meta->step = 17;
    meta->loss_scale = 1.0f;
    meta->scaler_hysteresis = 2;
    meta->ngroups = 1;
    meta->groups[0] = c.optimizer;
    assert_int_equal(zckpt_writer_commit(w, meta), 0);
    free(meta);
    assert_int_equal(zoff_set_param_step(m.rt, m.id[1], 3), 0);
    zoff_status st = zoff_load(m.rt, path);
    if (st) fprintf(stderr, "load: %s\n", zoff_last_error(m.rt));
    assert_int_equal(st, 0);
    for (int i = 0; i < 3; i++) {
        int64_t ps = -1;
        assert_int_equal(zoff_get_param_step(m.rt, m.id[i], &ps), 0);
        assert_int_equal(ps, 17);
    }
    tr_close(&m);
    zt_rmtree(ck);
    free(ck);
}

static void test_bad_flags(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F32);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_F32, 42);
    zoff_step_args a = ZOFF_STEP_ARGS_INIT;
    a.flags = 0x100;
    assert_int_equal(zoff_step(m.rt, &a, NULL), ZOFF_EINVAL);
    assert_int_equal(zoff_set_param_step(m.rt, m.id[0], -1), ZOFF_EINVAL);
    assert_int_equal(zoff_set_param_step(m.rt, 99, 1), ZOFF_EINVAL);
    assert_int_equal(zoff_set_param_step(m.rt, m.id[0], 7), 0);
    int64_t ps = 0;
    assert_int_equal(zoff_get_param_step(m.rt, m.id[0], &ps), 0);
    assert_int_equal(ps, 7);
    assert_int_equal(zoff_set_step(m.rt, 3), 0); /* sets every parameter's count */
    assert_int_equal(zoff_get_param_step(m.rt, m.id[0], &ps), 0);
    assert_int_equal(ps, 3);
    tr_close(&m);
}

int main(int argc, char **argv)
{
    g_nvme = argc > 1 && !strcmp(argv[1], "nvme");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_sync_f32),
        cmocka_unit_test(test_missing_sync_f16),
        cmocka_unit_test(test_missing_eager_bf16),
        cmocka_unit_test(test_missing_delayed_bf16),
        cmocka_unit_test(test_zero_missing_flag),
        cmocka_unit_test(test_discard),
        cmocka_unit_test(test_discard_eager_refused),
        cmocka_unit_test(test_nonfinite_fp32_sync),
        cmocka_unit_test(test_nonfinite_bf16_delayed),
        cmocka_unit_test(test_checkpoint_sync),
        cmocka_unit_test(test_checkpoint_delayed),
        cmocka_unit_test(test_checkpoint_without_param_steps),
        cmocka_unit_test(test_bad_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
