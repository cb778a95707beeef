/*
 * test_accum.c — gradient accumulation (gradient_accumulation_steps K > 1), through the bucket
 * path and the full-buffer path. Checks:
 *  - k micro-batches of fp32 gradients give the same update as one batch whose gradient is their
 *    mean (one parameter has a gradient in one micro-batch only, another in no micro-batch of
 *    one window: skipped in both runs; non-boundary zoff_step returns before its own copies
 *    landed, so the jitter variant exercises the two alternating landing buffers): bit-identical
 * for K = 4 (the sum is formed in the same order and 1/4 is exact), within atol 1e-6 + rtol 1e-5
 * for K = 3 (sum * (1/3) vs sum / 3 differ in the last bit); the reported norm is the norm of the
 * mean gradient (relative 1e-6);
 *  - fp16: an inf in micro-batch j of k skips the whole step (state unchanged bit for bit), the
 *    loss scale is lowered once, the next window trains; non-boundary calls say accumulating;
 *  - zoff_save / zoff_load / zoff_set_step in the middle of a window are refused with a message
 *    naming the window, and work at the boundary;
 *  - overlap delayed with K = 2 gives the same master weights and moments as sync (the update of a
 *    window runs while the next window's micro-batches are computed);
 *  - the full-buffer path (zoff_grad_ready) accumulates to the same bits as the bucket path.
 * Argument: "cpu" (default) or "nvme" (optimizer state on swap files under test-tmp).
 */
#include "test_bucket_util.h"

static int g_nvme;

#define NP 4
static const size_t k_numel[NP] = {2000, 30000, 700, 12000};

static char *accum_config(zoff_config *c, zoff_dtype dt, int k)
{
    zoff_config_default(c);
    c->fp16_enabled = dt == ZOFF_DTYPE_F16;
    c->bf16_enabled = dt == ZOFF_DTYPE_BF16;
    c->initial_scale_power = 8;
    c->hysteresis = 1;
    c->partition_numel = 9000;
    c->tile_numel = 2048;
    c->sim_gpu_bytes = 64 * ZOFF_MIB;
    c->sim_pcie_gbps = 0;
    c->cpu_threads = 1;
    c->optimizer.lr = 1e-3f;
    c->grad_bucket_numel = 4096;
    c->grad_bucket_count = 2;
    c->gradient_accumulation_steps = k;
    if (!g_nvme) return NULL;
    char *dir = zt_mkdtemp("accum-nvme");
    assert_non_null(dir);
    c->tier = ZOFF_TIER_NVME;
    c->buffer_count = 3;
    snprintf(c->nvme_path, sizeof c->nvme_path, "%s", dir);
    return dir;
}

static void cleanup(char *dir)
{
    if (!dir) return;
    zt_rmtree(dir);
    free(dir);
}

/* Which parameters get a gradient: param 2 only in micro-batch 1 of each window, param 3 in no
 * micro-batch of window 5 (skipped at that step, in both runs). */
static int has_grad(int w, int j, int i)
{
    if (i == 2) return j == 1;
    if (i == 3) return w != 5;
    return 1;
}

/* Pushes (or declares) the given fp32 values as this micro-batch's gradients (mask: which). */
static void push_f32(bk_model *m, float *const *vals, int w, int j)
{
    /* the host staging buffers are rewritten below: their last copies must have run (a
     * non-boundary zoff_step no longer waits for this micro-batch's copies) */
    assert_int_equal(zoff_stream_synchronize(m->rt, m->s), 0);
    for (int i = m->np - 1; i >= 0; i--) {
        if (!has_grad(w, j, i)) continue;
        size_t n = m->numel[i];
        memcpy(m->hgrad[i], vals[i], n * sizeof(float));
        void *dst = m->bucket ? m->scratch : m->dgrad[i];
        assert_int_equal(zdev_memcpy_h2d(m->rt->dev, dst, m->hgrad[i], n * 4, (zdev_stream *)m->s),
                         0);
        if (m->bucket)
            assert_int_equal(zoff_grad_push(m->rt, m->id[i], m->scratch, n, m->dt, m->s), 0);
        else
            assert_int_equal(zoff_grad_ready(m->rt, m->id[i], m->s), 0);
    }
}

static void k_vs_batch(int k, int exact)
{
    zoff_config c;
    char *dir_a = accum_config(&c, ZOFF_DTYPE_F32, k);
    bk_model a, b;
    assert_int_equal(bk_open(&a, &c, NP, k_numel, ZOFF_DTYPE_F32, 1, 3), 0);
    char *dir = accum_config(&c, ZOFF_DTYPE_F32, 1);
    assert_int_equal(bk_open(&b, &c, NP, k_numel, ZOFF_DTYPE_F32, 1, 3), 0);
    float *g[NP], *sum[NP];
    for (int i = 0; i < NP; i++) {
        g[i] = zt_malloc(k_numel[i] * 4);
        sum[i] = zt_malloc(k_numel[i] * 4);
    }
    for (int w = 0; w < 8; w++) {
        for (int j = 0; j < k; j++) {
            for (int i = 0; i < NP; i++) {
                bk_grad_values(g[i], k_numel[i], w, j, i);
                if (!has_grad(w, j, i)) memset(g[i], 0, k_numel[i] * sizeof(float));
                for (size_t e = 0; e < k_numel[i]; e++)
                    sum[i][e] = j == 0 ? g[i][e] : sum[i][e] + g[i][e];
            }
            push_f32(&a, g, w, j);
            zoff_step_result r = ZOFF_STEP_RESULT_INIT;
            assert_int_equal(zoff_step(a.rt, NULL, &r), 0);
            assert_int_equal(r.accumulating, j < k - 1);
            assert_int_equal(r.micro_step, j < k - 1 ? j + 1 : 0);
            assert_int_equal(r.step, j < k - 1 ? w : w + 1);
            if (j == k - 1) assert_int_equal(r.params_without_grad, w == 5);
            if (j == k - 1) {
                double ss = 0;
                for (int i = 0; i < NP; i++)
                    for (size_t e = 0; e < k_numel[i]; e++) {
                        double x = (double)sum[i][e] / k;
                        ss += x * x;
                    }
                assert_true(fabs(r.grad_norm - sqrt(ss)) <= 1e-6 * sqrt(ss));
            }
        }
        for (int i = 0; i < NP; i++)
            for (size_t e = 0; e < k_numel[i]; e++) sum[i][e] = sum[i][e] / (float)k;
        push_f32(&b, sum, w, 1); /* the batch run: param 2 has its gradient, param 3 not in 5 */
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        assert_int_equal(zoff_step(b.rt, NULL, &r), 0);
        assert_int_equal(r.accumulating, 0);
        assert_int_equal(r.params_without_grad, w == 5);
    }
    bk_state sa, sb;
    bk_state_get(&a, &sa);
    bk_state_get(&b, &sb);
    if (exact) {
        assert_int_equal(bk_state_diff(&sa, &sb), 0);
    } else {
        size_t bad = 0;
        for (int i = 0; i < NP; i++) {
            bad += zt_compare_f32("master", sa.p[i], sb.p[i], k_numel[i], 1e-6, 1e-5);
            bad += zt_compare_f32("exp_avg", sa.m[i], sb.m[i], k_numel[i], 1e-9, 1e-5);
            bad += zt_compare_f32("exp_avg_sq", sa.v[i], sb.v[i], k_numel[i], 1e-12, 1e-5);
        }
        assert_int_equal(bad, 0);
    }
    zoff_stats st = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(a.rt, &st), 0);
    assert_int_equal(st.micro_steps, 8 * k);
    assert_int_equal(st.steps, 8);
    bk_state_free(&sa);
    bk_state_free(&sb);
    for (int i = 0; i < NP; i++) {
        free(g[i]);
        free(sum[i]);
    }
    bk_close(&a);
    bk_close(&b);
    cleanup(dir);
    cleanup(dir_a);
}

static void test_accum_k4_equals_batch(void **state)
{
    (void)state;
    k_vs_batch(4, 1);
}

static void test_accum_k3_equals_batch(void **state)
{
    (void)state;
    k_vs_batch(3, 0);
}

static void test_accum_overflow_skips(void **state)
{
    (void)state;
    zoff_config c;
    char *dir = accum_config(&c, ZOFF_DTYPE_F16, 4);
    bk_model m;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 4), 0);
    bk_state before;
    memset(&before, 0, sizeof before);
    int64_t steps = 0;
    for (int w = 0; w < 5; w++) {
        if (w == 2) bk_state_get(&m, &before);
        float scale0 = 0;
        assert_int_equal(zoff_get_loss_scale(m.rt, &scale0), 0);
        for (int j = 0; j < 4; j++) {
            float scale = 0;
            assert_int_equal(zoff_get_loss_scale(m.rt, &scale), 0);
            assert_true(scale == scale0); /* constant within a window */
            assert_int_equal(bk_backward(&m, w, j, scale, 0, w == 2 && j == 1 ? 3 : -1), 0);
            zoff_step_result r = ZOFF_STEP_RESULT_INIT;
            assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
            assert_int_equal(r.accumulating, j < 3);
            if (j < 3) continue;
            assert_int_equal(r.skipped, w == 2);
            assert_int_equal(r.overflow, w == 2);
            if (w == 2) {
                assert_true(r.loss_scale == scale0 / 2); /* lowered once */
                bk_state after;
                bk_state_get(&m, &after);
                assert_int_equal(bk_state_diff(&before, &after), 0);
                bk_state_free(&after);
            } else {
                steps++;
                assert_true(isfinite(r.grad_norm));
            }
            assert_int_equal(r.step, steps);
        }
    }
    zoff_stats st = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(m.rt, &st), 0);
    assert_int_equal(st.skipped_steps, 1);
    bk_state_free(&before);
    bk_close(&m);
    cleanup(dir);
}

static void test_accum_ckpt_mid_window(void **state)
{
    (void)state;
    zoff_config c;
    char *dir = accum_config(&c, ZOFF_DTYPE_BF16, 2);
    bk_model m;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_BF16, 1, 6), 0);
    char *ck = zt_mkdtemp("accum-ckpt");
    char path[1100];
    snprintf(path, sizeof path, "%s/ck", ck);
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    assert_int_equal(bk_backward(&m, 0, 0, 1.0f, 0, -1), 0);
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.accumulating, 1);
    assert_int_equal(zoff_save(m.rt, path), ZOFF_ESTATE);
    bk_assert_msg(m.rt, "accumulation window (1 of 2");
    assert_int_equal(zoff_load(m.rt, path), ZOFF_ESTATE);
    bk_assert_msg(m.rt, "accumulation window");
    assert_int_equal(zoff_set_step(m.rt, 5), ZOFF_ESTATE);
    bk_assert_msg(m.rt, "accumulation window");
    assert_int_equal(bk_backward(&m, 0, 1, 1.0f, 0, -1), 0);
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.accumulating, 0);
    assert_int_equal(r.step, 1);
    assert_int_equal(zoff_save(m.rt, path), 0);
    assert_int_equal(zoff_load(m.rt, path), 0);
    zt_rmtree(ck);
    free(ck);
    bk_close(&m);
    cleanup(dir);
}

/* Masters and moments of a and b bit for bit (device params not compared). */
static int host_state_diff(bk_model *a, bk_model *b)
{
    bk_state sa, sb;
    bk_state_get(a, &sa);
    bk_state_get(b, &sb);
    int d = 0;
    for (int i = 0; i < NP; i++) {
        size_t bytes = k_numel[i] * 4;
        if (memcmp(sa.p[i], sb.p[i], bytes) || memcmp(sa.m[i], sb.m[i], bytes) ||
            memcmp(sa.v[i], sb.v[i], bytes)) {
            size_t e = 0;
            while (e < k_numel[i] && sa.p[i][e] == sb.p[i][e] && sa.m[i][e] == sb.m[i][e] &&
                   sa.v[i][e] == sb.v[i][e])
                e++;
            fprintf(stderr, "  param %d differs first at %zu: master %.9g / %.9g\n", i, e,
                    e < k_numel[i] ? (double)sa.p[i][e] : 0.0,
                    e < k_numel[i] ? (double)sb.p[i][e] : 0.0);
            d++;
        }
    }
    bk_state_free(&sa);
    bk_state_free(&sb);
    return d;
}

/* Runs `windows` windows of k micro-batches (fp16, loss scale followed). */
static void run_windows(bk_model *m, int windows, int k)
{
    for (int w = 0; w < windows; w++)
        for (int j = 0; j < k; j++) {
            float scale = 0;
            assert_int_equal(zoff_get_loss_scale(m->rt, &scale), 0);
            assert_int_equal(bk_backward(m, w, j, scale, j == 0 ? 30000 : 0, -1), 0);
            zoff_step_result r = ZOFF_STEP_RESULT_INIT;
            assert_int_equal(zoff_step(m->rt, NULL, &r), 0);
            assert_int_equal(r.accumulating, j < k - 1);
            assert_int_equal(zoff_params_ready(m->rt, m->s), 0);
        }
}

static void test_accum_delayed_and_full_buffer(void **state)
{
    (void)state;
    zoff_config c;
    char *dir = accum_config(&c, ZOFF_DTYPE_F16, 2);
    bk_model sync_m, del_m, full_m;
    assert_int_equal(bk_open(&sync_m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 8), 0);
    assert_int_equal(bk_open(&full_m, &c, NP, k_numel, ZOFF_DTYPE_F16, 0, 8), 0);
    c.overlap = ZOFF_OVERLAP_DELAYED;
    c.delayed_warmup_steps = 2;
    assert_int_equal(bk_open(&del_m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 8), 0);
    run_windows(&sync_m, 12, 2);
    run_windows(&full_m, 12, 2);
    run_windows(&del_m, 12, 2);
    assert_int_equal(host_state_diff(&sync_m, &full_m), 0);
    assert_int_equal(host_state_diff(&sync_m, &del_m), 0);
    bk_close(&sync_m);
    bk_close(&full_m);
    bk_close(&del_m);
    cleanup(dir);
}

int main(int argc, char **argv)
{
    g_nvme = argc > 1 && !strcmp(argv[1], "nvme");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accum_k4_equals_batch),
        cmocka_unit_test(test_accum_k3_equals_batch),
        cmocka_unit_test(test_accum_overflow_skips),
        cmocka_unit_test(test_accum_ckpt_mid_window),
        cmocka_unit_test(test_accum_delayed_and_full_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
