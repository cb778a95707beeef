/*
 * test_step.c — 200+ optimizer steps of random gradients through zoff (sim device) equal a float64
 * AdamW reference that unscales and clips the same gradients the documented way, for each tier:
 *   argv[1] = cpu    all partitions resident (several partition sizes, tile sizes, 1 and 2 Adam
 *                    threads, fp16 with dynamic loss scale and clipping, bf16, fp32);
 *           = nvme   every partition swapped through a pool of 3 buffers; each run is repeated on
 *                    the cpu tier and both must be bit-identical (same kernel, same order);
 *           = ratio  half the partitions resident, half swapped; bit-identical to cpu as well;
 *           = jitter one cpu and one nvme run (the variants set ZOFF_SIM_JITTER=seed: random
 *                    delays before every device op expose missing waits as wrong values).
 * Every 10 steps the device's 16-bit params are checked to be exactly the cast of the masters.
 */
#include "test_runtime_util.h"

static const char *g_mode = "cpu";
static int g_steps = 200;

typedef struct run_cfg {
    size_t partition_numel, tile_numel;
    int threads;
    zoff_dtype dt;
    float clip;
    zoff_tier tier;
    float ratio;
} run_cfg;

static const size_t k_numel[3] = {1500, 4097, 300};

/* Trains g_steps steps; compares with the reference (check_ref) and returns the final state. */
static void train(const run_cfg *rc, int check_ref, tr_state *out)
{
    zoff_config c;
    tr_config(&c, rc->dt);
    c.partition_numel = rc->partition_numel;
    c.tile_numel = rc->tile_numel;
    c.cpu_threads = rc->threads;
    c.gradient_clipping = rc->clip;
    char *dir = NULL;
    if (rc->tier == ZOFF_TIER_NVME) dir = tr_nvme(&c, rc->ratio);
    tr_model m;
    tr_open_ok(&m, &c, 3, k_numel, rc->dt, 42);
    tr_ref ref;
    tr_ref_init(&ref, &m, 42);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng rng;
    zt_rng_seed(&rng, 7);
    float **cast_src = zt_malloc(sizeof(float *) * 3);
    for (int i = 0; i < 3; i++) cast_src[i] = zt_malloc(k_numel[i] * 4);
    int clipped = 0;
    for (int t = 1; t <= g_steps; t++) {
        float scale = 0;
        assert_int_equal(zoff_get_loss_scale(m.rt, &scale), 0);
        for (int i = 0; i < 3; i++) zt_fill_normal(&rng, gr.g[i], k_numel[i], 0.01f);
        tr_backward(&m, gr.g, scale, gr.gq, 2000);
        zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
        zoff_status st = zoff_step(m.rt, NULL, &r);
        if (st) fprintf(stderr, "step %d: %s\n", t, zoff_last_error(m.rt));
        assert_int_equal(st, 0);
        assert_int_equal(r.skipped, 0);
        assert_int_equal(r.step, t);
        assert_int_equal(zoff_params_ready(m.rt, m.s), 0);
        double clip = tr_ref_step(&ref, &c.optimizer, gr.gq, scale, rc->clip);
        double norm = tr_ref_norm(&ref, gr.gq, scale);
        assert_true(fabs(r.grad_norm - norm) <= 1e-6 * norm);
        assert_true(fabs(r.clip_coef - clip) <= 1e-6);
        if (clip < 1.0) clipped++;
        if (check_ref && t % 10 == 0) {
            assert_int_equal(zoff_stream_synchronize(m.rt, m.s), 0);
            for (int i = 0; i < 3; i++)
                assert_int_equal(zoff_get_master(m.rt, m.id[i], cast_src[i]), 0);
            assert_int_equal(tr_check_device(&m, cast_src), 0);
        }
    }
    if (rc->clip > 0) assert_true(clipped > 0 && clipped < g_steps);
    if (check_ref) assert_int_equal(tr_ref_compare(&ref, &m, 2e-5, 2e-4), 0);
    zoff_stats s = {.struct_size = sizeof(zoff_stats)};
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    assert_int_equal(s.steps, g_steps);
    assert_true(s.total_d2h_bytes >= (uint64_t)g_steps * 5897 * zoff_dtype_size(rc->dt));
    if (rc->tier == ZOFF_TIER_NVME && rc->ratio < 1.0f) {
        assert_true(s.total_nvme_read_bytes > 0 && s.total_nvme_write_bytes > 0);
        assert_true(s.nvme_bytes > 0);
    } else {
        assert_int_equal(s.total_nvme_read_bytes, 0);
    }
    tr_state_get(&m, out);
    for (int i = 0; i < 3; i++) free(cast_src[i]);
    free(cast_src);
    tr_grads_free(&gr);
    tr_ref_free(&ref);
    tr_close(&m);
    if (dir) {
        zt_rmtree(dir);
        free(dir);
    }
}

static const run_cfg k_cfgs[] = {
    {1000, 256, 1, ZOFF_DTYPE_F16, 0.768f, ZOFF_TIER_CPU, 0},
    {4096, 1000, 2, ZOFF_DTYPE_F16, 0.0f, ZOFF_TIER_CPU, 0},
    {1 << 20, 1 << 20, 2, ZOFF_DTYPE_BF16, 0.768f, ZOFF_TIER_CPU, 0},
    {777, 64, 1, ZOFF_DTYPE_BF16, 0.0f, ZOFF_TIER_CPU, 0},
    {2048, 300, 2, ZOFF_DTYPE_F32, 0.768f, ZOFF_TIER_CPU, 0},
};

static void test_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(k_cfgs); i++) {
        fprintf(stderr, "cpu config %zu\n", i);
        tr_state s;
        train(&k_cfgs[i], 1, &s);
        tr_state_free(&s);
    }
}

/* Each config on the swapped tier (ratio: fraction resident) and on cpu: bit-identical. */
static void swapped_vs_cpu(const run_cfg *cfgs, float ratio, size_t ncfg)
{
    for (size_t i = 0; i < ncfg; i++) {
        run_cfg rc = cfgs[i];
        fprintf(stderr, "nvme config %zu (ratio %g)\n", i, (double)ratio);
        tr_state a, b;
        train(&rc, 0, &a);
        rc.tier = ZOFF_TIER_NVME;
        rc.ratio = ratio;
        train(&rc, 1, &b);
        assert_int_equal(tr_state_diff(&a, &b), 0);
        tr_state_free(&a);
        tr_state_free(&b);
    }
}

static void test_nvme(void **state)
{
    (void)state;
    swapped_vs_cpu(k_cfgs, 0.0f, ZOFF_ARRAY_SIZE(k_cfgs));
}

static void test_ratio(void **state)
{
    (void)state;
    swapped_vs_cpu(k_cfgs, 0.5f, 3);
}

static void test_jitter(void **state)
{
    (void)state;
    /* tiles of a whole partition: fewer device ops, each delayed at random */
    static const run_cfg jcfg = {1000, 1024, 1, ZOFF_DTYPE_F16, 0.768f, ZOFF_TIER_CPU, 0};
    swapped_vs_cpu(&jcfg, 0.34f, 1);
}

int main(int argc, char **argv)
{
    if (argc > 1) g_mode = argv[1];
    if (argc > 2) g_steps = atoi(argv[2]);
    const struct CMUnitTest cpu[] = {cmocka_unit_test(test_cpu)};
    const struct CMUnitTest nvme[] = {cmocka_unit_test(test_nvme)};
    const struct CMUnitTest ratio[] = {cmocka_unit_test(test_ratio)};
    const struct CMUnitTest jitter[] = {cmocka_unit_test(test_jitter)};
    if (!strcmp(g_mode, "cpu")) return cmocka_run_group_tests_name("step_cpu", cpu, NULL, NULL);
    if (!strcmp(g_mode, "nvme")) return cmocka_run_group_tests_name("step_nvme", nvme, NULL, NULL);
    if (!strcmp(g_mode, "ratio"))
        return cmocka_run_group_tests_name("step_ratio", ratio, NULL, NULL);
    if (!strcmp(g_mode, "jitter"))
        return cmocka_run_group_tests_name("step_jitter", jitter, NULL, NULL);
    fprintf(stderr, "usage: %s cpu|nvme|ratio|jitter [steps]\n", argv[0]);
    return 2;
}
