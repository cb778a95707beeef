/*
 * test_step_modes.c — the step pipeline beyond plain sync steps (sim device):
 *  - fp16 overflow: injected inf/NaN gradients skip the step (counter, master, moments and the
 *    device params untouched), hysteresis then halving of the scale, growth after the window,
 *    and the run still equals the float64 reference that skips the same steps;
 *  - eager (bf16, no clipping): partitions updated while "backward" still runs give the same
 *    bits as a sync run and match the reference; eager with fp16 falls back to sync; a
 *    non-finite gradient leaves its parameter untouched (the others, also those sharing its
 *    partition, are updated; its step count stays), all non-finite: the step is skipped;
 *  - delayed: after the warm-up the device holds the params of the previous step (checked bit
 *    for bit after every step) while gradients are computed from those stale params, the masters
 *    follow the reference fed the same gradients, and a run that never drains equals one that
 *    drains after every step.
 * argv[1] = "nvme" runs eager and delayed on the nvme tier instead of cpu.
 */
#include "test_runtime_util.h"

static int g_nvme;
static const size_t k_numel[3] = {1500, 4097, 300};

static void test_fp16_overflow(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    c.initial_scale_power = 10;
    c.loss_scale_window = 5;
    c.hysteresis = 2;
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_F16, 42);
    tr_ref ref;
    tr_ref_init(&ref, &m, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 3);
    /* per step: 0 clean, 1 inf, 2 NaN; expected scale after the step */
    const int inject[] = {0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 1, 0};
    const float expect_scale[] = {1024, 1024, 1024, 512,  512,  512,
                                  512,  512,  1024, 1024, 1024, 1024};
    int64_t taken = 0;
    for (size_t t = 0; t < ZOFF_ARRAY_SIZE(inject); t++) {
        float scale;
        assert_int_equal(zoff_get_loss_scale(m.rt, &scale), 0);
        for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.01f);
        if (inject[t] == 1) gr.g[1][77] = INFINITY;
        if (inject[t] == 2) gr.g[2][5] = NAN;
        tr_state before;
        tr_state_get(&m, &before);
        tr_backward(&m, gr.g, scale, gr.gq, 0);
        zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
        assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
        assert_int_equal(zoff_params_ready(m.rt, NULL), 0);
        tr_state after;
        tr_state_get(&m, &after);
        if (inject[t]) {
            assert_int_equal(r.skipped, 1);
            assert_int_equal(r.overflow, 1);
            assert_false(isfinite(r.grad_norm));
            assert_int_equal(tr_state_diff(&before, &after), 0);
            assert_int_equal(tr_check_device(&m, after.p), 0);
        } else {
            assert_int_equal(r.skipped, 0);
            assert_int_equal(r.overflow, 0);
            taken++;
            tr_ref_step(&ref, &c.optimizer, gr.gq, scale, 0);
            assert_int_equal(tr_check_device(&m, after.p), 0);
        }
        assert_int_equal(r.step, taken);
        if (r.loss_scale != expect_scale[t])
            fprintf(stderr, "step %zu: scale %g expected %g\n", t, (double)r.loss_scale,
                    (double)expect_scale[t]);
        assert_true(r.loss_scale == expect_scale[t]);
        tr_state_free(&before);
        tr_state_free(&after);
    }
    zoff_stats s = {.struct_size = sizeof(zoff_stats)};
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    assert_int_equal(s.skipped_steps, 3);
    assert_int_equal(tr_ref_compare(&ref, &m, 2e-5, 2e-4), 0);
    tr_grads_free(&gr);
    tr_ref_free(&ref);
    tr_close(&m);
}

/* Runs `steps` bf16 steps in the given overlap mode with a fixed gradient stream. */
static void run_bf16(zoff_overlap ov, int steps, int check_ref, tr_state *out)
{
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_BF16);
    c.overlap = ov;
    char *dir = tr_tier(&c, g_nvme);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_BF16, 42);
    assert_int_equal(m.rt->overlap, ov);
    tr_ref ref;
    tr_ref_init(&ref, &m, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 11);
    float *master[3];
    for (int i = 0; i < 3; i++) master[i] = zt_malloc(k_numel[i] * 4);
    for (int t = 1; t <= steps; t++) {
        for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
        tr_backward(&m, gr.g, 1.0f, gr.gq, 300000); /* 0.3 ms of "backward" per layer */
        zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
        assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
        assert_int_equal(r.step, t);
        assert_int_equal(zoff_params_ready(m.rt, m.s), 0);
        tr_ref_step(&ref, &c.optimizer, gr.gq, 1.0, 0);
        if (check_ref) {
            assert_int_equal(zoff_stream_synchronize(m.rt, m.s), 0);
            for (int i = 0; i < 3; i++)
                assert_int_equal(zoff_get_master(m.rt, m.id[i], master[i]), 0);
            assert_int_equal(tr_check_device(&m, master), 0);
        }
    }
    if (check_ref) assert_int_equal(tr_ref_compare(&ref, &m, 2e-5, 2e-4), 0);
    tr_state_get(&m, out);
    for (int i = 0; i < 3; i++) free(master[i]);
    tr_grads_free(&gr);
    tr_ref_free(&ref);
    tr_close(&m);
    tr_rmdir(dir);
}

static void test_eager(void **state)
{
    (void)state;
    tr_state a, b;
    run_bf16(ZOFF_OVERLAP_EAGER, 40, 1, &a);
    run_bf16(ZOFF_OVERLAP_SYNC, 40, 0, &b);
    assert_int_equal(tr_state_diff(&a, &b), 0);
    tr_state_free(&a);
    tr_state_free(&b);
}

static void test_eager_fallback_and_nonfinite(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    c.overlap = ZOFF_OVERLAP_EAGER;
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_F16, 42);
    assert_int_equal(m.rt->overlap, ZOFF_OVERLAP_SYNC); /* fp16 needs the global norm */
    tr_close(&m);

    tr_config(&c, ZOFF_DTYPE_BF16);
    c.overlap = ZOFF_OVERLAP_EAGER;
    char *dir = tr_tier(&c, g_nvme);
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_BF16, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 5);
    for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.02f);
    gr.g[2][10] = INFINITY; /* param 2 lies in the last partition with the end of param 1 */
    tr_state before, after;
    tr_state_get(&m, &before);
    tr_backward(&m, gr.g, 1.0f, gr.gq, 0);
    zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.overflow, 1);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.params_nonfinite, 1);
    assert_int_equal(r.params_updated, 2);
    assert_int_equal(r.step, 1);
    tr_state_get(&m, &after);
    /* only the param with the inf is left untouched, also the part of param 1 that shares its
     * partition; its step count stays */
    assert_memory_equal(before.p[2], after.p[2], k_numel[2] * 4);
    assert_memory_not_equal(before.p[1] + 3500, after.p[1] + 3500, (k_numel[1] - 3500) * 4);
    assert_memory_not_equal(before.p[0], after.p[0], k_numel[0] * 4);
    assert_memory_not_equal(before.p[1], after.p[1], 3500 * 4);
    int64_t ps = -1;
    assert_int_equal(zoff_get_param_step(m.rt, m.id[2], &ps), 0);
    assert_int_equal(ps, 0);
    assert_int_equal(zoff_get_param_step(m.rt, m.id[1], &ps), 0);
    assert_int_equal(ps, 1);
    zoff_stats zs = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(m.rt, &zs), 0);
    assert_int_equal(zs.nonfinite_steps, 1);
    assert_int_equal(zs.nonfinite_grads, 1);
    assert_int_equal(zs.skipped_steps, 0);
    tr_state_free(&before);
    tr_state_free(&after);
    /* every gradient non-finite: nothing to update, the step counts as skipped */
    for (int i = 0; i < 3; i++) gr.g[i][0] = NAN;
    tr_state_get(&m, &before);
    tr_backward(&m, gr.g, 1.0f, gr.gq, 0);
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(r.params_nonfinite, 3);
    assert_int_equal(r.params_updated, 0);
    assert_int_equal(r.step, 1);
    tr_state_get(&m, &after);
    assert_int_equal(tr_state_diff(&before, &after), 0);
    tr_state_free(&before);
    tr_state_free(&after);
    tr_grads_free(&gr);
    tr_close(&m);
    tr_rmdir(dir);
}

/* Delayed: gradients computed from the device params the trainer sees. */
static void run_delayed(int drain_each_step, int steps, tr_state *out)
{
    const int warmup = 3;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    c.overlap = ZOFF_OVERLAP_DELAYED;
    c.delayed_warmup_steps = warmup;
    c.gradient_clipping = 0.8f;
    char *dir = tr_tier(&c, g_nvme);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, ZOFF_DTYPE_F16, 42);
    tr_ref ref;
    tr_ref_init(&ref, &m, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 9);
    float *mprev[3], *mcur[3], *dev[3];
    uint16_t *d16[3];
    for (int i = 0; i < 3; i++) {
        mprev[i] = zt_malloc(k_numel[i] * 4);
        mcur[i] = zt_malloc(k_numel[i] * 4);
        dev[i] = zt_malloc(k_numel[i] * 4);
        d16[i] = zt_malloc(k_numel[i] * 2);
        assert_int_equal(zoff_get_master(m.rt, m.id[i], mcur[i]), 0);
    }
    for (int t = 1; t <= steps; t++) {
        /* "forward": read the params the device holds now */
        for (int i = 0; i < 3; i++) {
            assert_int_equal(zoff_device_download(m.rt, d16[i], m.dparam[i], k_numel[i] * 2, m.s),
                             0);
            for (size_t k = 0; k < k_numel[i]; k++) dev[i][k] = zoff_f16_to_f32(d16[i][k]);
        }
        float scale;
        assert_int_equal(zoff_get_loss_scale(m.rt, &scale), 0);
        for (int i = 0; i < 3; i++) {
            zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.01f);
            for (size_t k = 0; k < k_numel[i]; k++) gr.g[i][k] += 0.05f * (dev[i][k] - 0.1f);
        }
        tr_backward(&m, gr.g, scale, gr.gq, 100000);
        zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
        assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
        assert_int_equal(r.skipped, 0);
        assert_int_equal(r.step, t);
        assert_int_equal(zoff_params_ready(m.rt, m.s), 0);
        tr_ref_step(&ref, &c.optimizer, gr.gq, scale, c.gradient_clipping);
        if (drain_each_step) {
            assert_int_equal(zoff_stream_synchronize(m.rt, m.s), 0);
            for (int i = 0; i < 3; i++) memcpy(mprev[i], mcur[i], k_numel[i] * 4);
            for (int i = 0; i < 3; i++)
                assert_int_equal(zoff_get_master(m.rt, m.id[i], mcur[i]), 0);
            /* warm-up: the device holds step t's params; after it, step t-1's */
            size_t bad = tr_check_device(&m, t <= warmup ? mcur : mprev);
            if (bad) fprintf(stderr, "step %d: device params are not the expected ones\n", t);
            assert_int_equal(bad, 0);
        }
    }
    assert_int_equal(tr_ref_compare(&ref, &m, 2e-5, 2e-4), 0);
    tr_state_get(&m, out);
    for (int i = 0; i < 3; i++) {
        free(mprev[i]);
        free(mcur[i]);
        free(dev[i]);
        free(d16[i]);
    }
    tr_grads_free(&gr);
    tr_ref_free(&ref);
    tr_close(&m);
    tr_rmdir(dir);
}

static void test_delayed(void **state)
{
    (void)state;
    tr_state a, b;
    run_delayed(1, 30, &a);
    run_delayed(0, 30, &b);
    assert_int_equal(tr_state_diff(&a, &b), 0);
    tr_state_free(&a);
    tr_state_free(&b);
}

int main(int argc, char **argv)
{
    g_nvme = argc > 1 && !strcmp(argv[1], "nvme");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_overflow),
        cmocka_unit_test(test_eager),
        cmocka_unit_test(test_eager_fallback_and_nonfinite),
        cmocka_unit_test(test_delayed),
    };
    return cmocka_run_group_tests_name(g_nvme ? "step_modes_nvme" : "step_modes", tests, NULL,
                                       NULL);
}
