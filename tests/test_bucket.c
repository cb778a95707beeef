/*
 * test_bucket.c — zoff-owned device gradient buckets (zoff_add_param with dev_grad NULL,
 * zoff_grad_push). Checks:
 *  - a model whose 16-bit weights + full 16-bit gradients do not fit sim_gpu_bytes (the
 *    full-buffer trainer fails to allocate there) trains 100 fp16 steps with buckets, the trainer
 *    reusing one scratch gradient buffer right after each push, and ends bit-identical (masters,
 *    moments, device params) to the same model with full trainer-owned gradient buffers on a
 *    large sim GPU; parameters larger than a bucket are split (bucket_flushes counts the drains);
 *    run in sync and delayed overlap, and again under ZOFF_SIM_JITTER (missing waits show);
 *  - stats: gpu_bytes_per_param = (params + buckets) / numel, device_bytes = buckets, peak;
 *  - zoff.grad_bucket_grow (the default): the ring grows so that count - 1 buckets hold the
 *    largest gradient; the same 100 steps are bit-identical to the full-buffer reference; growth
 *    that would leave less than a quarter of the device free keeps the configured size;
 *  - pushes from the trainer's copy stream (two scratch buffers, zoff_stream_wait_stream both
 *    ways, the copies overlapping the next param's backward): 100 steps bit-identical to the
 *    full-buffer reference; zoff_stream_wait_stream's own checks;
 *  - bad input leaves the runtime usable and its results unchanged: a gradient pushed twice, a
 *    wrong numel or dtype, a source buffer smaller than the parameter, a host pointer, grad_ready
 *    on a bucket parameter, grad_push on a full-buffer parameter, a parameter never pushed
 *    (params_without_grad: skipped, as torch skips a None .grad), buckets that do not fit the
 * device (the knob is named). Argument: "sync" (default) or "delayed" overlap for the 100-step
 * comparison.
 */
#include "test_bucket_util.h"

static const char *g_mode = "sync";

#define NP 6
static const size_t k_numel[NP] = {3000, 70000, 5000, 40000, 100, 60000};

static void bucket_config(zoff_config *c)
{
    zoff_config_default(c);
    c->fp16_enabled = 1;
    c->initial_scale_power = 8;
    c->hysteresis = 1;
    c->partition_numel = 20000;
    c->tile_numel = 4096;
    c->sim_gpu_bytes = 64 * ZOFF_MIB;
    c->sim_pcie_gbps = 0;
    c->cpu_threads = 1;
    c->optimizer.lr = 1e-3f;
    c->grad_bucket_numel = 8192; /* 16 KiB: the 70000-element param spans 9 buckets */
    c->grad_bucket_count = 3;
    c->grad_bucket_grow = 0; /* exactly these buckets (test_bucket_grow: grown) */
    if (!strcmp(g_mode, "delayed")) {
        c->overlap = ZOFF_OVERLAP_DELAYED;
        c->delayed_warmup_steps = 3;
    }
}

static size_t total_numel(void)
{
    size_t n = 0;
    for (int i = 0; i < NP; i++) n += k_numel[i];
    return n;
}

/* Trains `steps` steps; step 40 has an overflow (skipped, scale lowered) in both runs. */
static void train(bk_model *m, int steps)
{
    for (int t = 0; t < steps; t++) {
        float scale = 1;
        assert_int_equal(zoff_get_loss_scale(m->rt, &scale), 0);
        assert_int_equal(bk_backward(m, t, 0, scale, t % 7 == 0 ? 20000 : 0, t == 40 ? 1 : -1), 0);
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        assert_int_equal(zoff_step(m->rt, NULL, &r), 0);
        assert_int_equal(r.skipped, t == 40);
        assert_int_equal(r.accumulating, 0);
        assert_int_equal(r.params_without_grad, 0);
        assert_int_equal(zoff_params_ready(m->rt, m->s), 0);
    }
}

/* The reference state: 100 steps with trainer-owned full gradient buffers (seed 5) under c. */
static void full_reference(const zoff_config *c, bk_state *ref)
{
    bk_model full;
    assert_int_equal(bk_open(&full, c, NP, k_numel, ZOFF_DTYPE_F16, BK_FULL, 5), 0);
    train(&full, 100);
    bk_state_get(&full, ref);
    bk_close(&full);
}

static void test_bucket_vs_full(void **state)
{
    (void)state;
    size_t n = total_numel();
    size_t w16 = n * 2;
    zoff_config c;

    /* the reference: trainer-owned full gradient buffers on a large sim GPU */
    bucket_config(&c);
    bk_state ref;
    full_reference(&c, &ref);

    /* a GPU where weights + full grads do not fit, weights + buckets + one scratch buffer do */
    size_t small = w16 + w16 / 2 + 8 * 4096;
    c.sim_gpu_bytes = small;
    assert_true(2 * w16 > small);
    bk_model m;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 0, 5), ZOFF_EDEVMEM);
    bk_close(&m);
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 5), 0);
    train(&m, 100);
    bk_state got;
    bk_state_get(&m, &got);
    assert_int_equal(bk_state_diff(&ref, &got), 0);

    zoff_stats s = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    uint64_t bucket_bytes = 3 * 8192 * 2;
    assert_int_equal(s.bucket_bytes, bucket_bytes);
    assert_int_equal(s.device_bytes, bucket_bytes);
    assert_true(s.device_peak_bytes >= w16 + bucket_bytes);
    assert_true(s.device_peak_bytes <= small);
    double want = (double)(m.rt->param_bytes + bucket_bytes) / (double)n;
    assert_true(fabs(s.gpu_bytes_per_param - want) < 1e-9);
    assert_true(s.gpu_bytes_per_param < 2.5);
    /* 9 + 5 + 8 + ... pieces per step: at least one drain per bucket-full */
    assert_true(s.bucket_flushes >= (uint64_t)100 * (w16 / (8192 * 2)));
    printf("bucket: %zu params, %.3f GPU bytes/param, %llu bucket drains, peak %llu bytes\n", n,
           s.gpu_bytes_per_param, (unsigned long long)s.bucket_flushes,
           (unsigned long long)s.device_peak_bytes);
    bk_state_free(&got);
    bk_state_free(&ref);
    bk_close(&m);
}

/* zoff.grad_bucket_grow: grown ring, bit-identical; the configured size when it does not fit. */
static void test_bucket_grow(void **state)
{
    (void)state;
    zoff_config c;
    bucket_config(&c);
    bk_state ref;
    full_reference(&c, &ref);

    c.grad_bucket_grow = 1;
    bk_model m;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 5), 0);
    zoff_stats s = ZOFF_STATS_INIT;
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    /* 3 buckets of (70000 / 2 + 64) elements, 256-byte aligned: two hold the largest gradient */
    uint64_t per = ((70000 + 1) / 2 + 64) * 2;
    per = (per + 255) / 256 * 256;
    assert_int_equal(s.bucket_bytes, 3 * per);
    train(&m, 100);
    bk_state got;
    bk_state_get(&m, &got);
    assert_int_equal(bk_state_diff(&ref, &got), 0);
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    assert_true(s.bucket_flushes >= 100); /* at least one drain per step */
    bk_state_free(&got);
    bk_close(&m);

    /* a device where the grown ring would leave less than a quarter free: configured size */
    size_t w16 = total_numel() * 2;
    c.sim_gpu_bytes = w16 + 70000 * 2 + 3 * per;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 5), 0);
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    assert_int_equal(s.bucket_bytes, 3 * 8192 * 2);
    train(&m, 100);
    bk_state_get(&m, &got);
    assert_int_equal(bk_state_diff(&ref, &got), 0);
    bk_state_free(&got);
    bk_state_free(&ref);
    bk_close(&m);
}

/* Pushes from a copy stream: bit-identical to the full-buffer reference (the jitter variants
 * fail when either wait is left out). */
static void test_bucket_copy_stream(void **state)
{
    (void)state;
    zoff_config c;
    bucket_config(&c);
    bk_state ref;
    full_reference(&c, &ref);

    bk_model m;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, BK_COPY_STREAM, 5), 0);
    assert_int_equal(zoff_stream_wait_stream(NULL, m.s, m.cs), ZOFF_EINVAL);
    assert_int_equal(zoff_stream_wait_stream(m.rt, m.s, m.s), 0);  /* nothing to do */
    assert_int_equal(zoff_stream_wait_stream(m.rt, NULL, m.s), 0); /* the default stream */
    train(&m, 100);
    bk_state got;
    bk_state_get(&m, &got);
    assert_int_equal(bk_state_diff(&ref, &got), 0);
    bk_state_free(&got);
    bk_state_free(&ref);
    bk_close(&m);
}

/* Bad input, then the same training as a clean run: nothing was lost or changed. */
static void test_bucket_bad_input(void **state)
{
    (void)state;
    zoff_config c;
    bucket_config(&c);
    c.overlap = ZOFF_OVERLAP_SYNC;
    bk_model clean;
    assert_int_equal(bk_open(&clean, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 9), 0);
    train(&clean, 6);
    bk_state ref;
    bk_state_get(&clean, &ref);
    bk_close(&clean);

    bk_model m;
    assert_int_equal(bk_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F16, 1, 9), 0);
    train(&m, 3);
    zoff_runtime *rt = m.rt;
    void *small = NULL;
    assert_int_equal(zoff_device_alloc(rt, 100 * 2, &small), 0);
    int id = m.id[1];
    assert_int_equal(zoff_grad_push(rt, id, m.scratch, k_numel[1] - 1, ZOFF_DTYPE_F16, m.s),
                     ZOFF_EINVAL);
    bk_assert_msg(rt, "69999 elements of f16, the parameter has 70000 of f16");
    assert_int_equal(zoff_grad_push(rt, id, m.scratch, k_numel[1], ZOFF_DTYPE_BF16, m.s),
                     ZOFF_EINVAL);
    bk_assert_msg(rt, "of bf16");
    assert_int_equal(zoff_grad_push(rt, id, small, k_numel[1], ZOFF_DTYPE_F16, m.s), ZOFF_EINVAL);
    bk_assert_msg(rt, "runs past the end");
    static uint16_t host_buf[70000];
    assert_int_equal(zoff_grad_push(rt, id, host_buf, k_numel[1], ZOFF_DTYPE_F16, m.s),
                     ZOFF_EINVAL);
    bk_assert_msg(rt, "not inside a device allocation");
    assert_int_equal(zoff_grad_push(rt, id, NULL, k_numel[1], ZOFF_DTYPE_F16, m.s), ZOFF_EINVAL);
    assert_int_equal(zoff_grad_push(rt, NP + 3, m.scratch, 10, ZOFF_DTYPE_F16, m.s), ZOFF_EINVAL);
    bk_assert_msg(rt, "unknown param id");
    assert_int_equal(zoff_grad_ready(rt, id, m.s), ZOFF_EINVAL);
    bk_assert_msg(rt, "zoff_grad_push");
    /* pushed twice in one micro-batch: the second is refused, the first stands */
    for (int t = 3; t < 6; t++) {
        float scale = 1;
        assert_int_equal(zoff_get_loss_scale(rt, &scale), 0);
        assert_int_equal(bk_backward(&m, t, 0, scale, 0, -1), 0);
        if (t == 4) {
            assert_int_equal(
                zoff_grad_push(rt, m.id[0], m.scratch, k_numel[0], ZOFF_DTYPE_F16, m.s),
                ZOFF_ESTATE);
            bk_assert_msg(rt, "already handed over");
        }
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        assert_int_equal(zoff_step(rt, NULL, &r), 0);
        assert_int_equal(r.params_without_grad, 0);
    }
    bk_state got;
    bk_state_get(&m, &got);
    assert_int_equal(bk_state_diff(&ref, &got), 0);
    bk_state_free(&got);

    /* a parameter never pushed: zero gradient, counted */
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    assert_int_equal(zoff_grad_push(rt, m.id[2], m.scratch, k_numel[2], ZOFF_DTYPE_F16, m.s), 0);
    assert_int_equal(zoff_step(rt, NULL, &r), 0);
    assert_int_equal(r.params_without_grad, NP - 1);
    zoff_device_free(rt, small);
    bk_state_free(&ref);
    bk_close(&m);
}

/* Mixed registration: full-buffer params keep working next to bucket params; grad_push on a
 * full-buffer param is refused. Buckets too large for the device: finalize names the knob. */
static void test_bucket_mixed_and_too_big(void **state)
{
    (void)state;
    zoff_config c;
    bucket_config(&c);
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    void *p0 = NULL, *g0 = NULL, *p1 = NULL, *s = NULL;
    assert_int_equal(zoff_device_alloc(rt, 1000 * 2, &p0), 0);
    assert_int_equal(zoff_device_alloc(rt, 1000 * 2, &g0), 0);
    assert_int_equal(zoff_device_alloc(rt, 1000 * 2, &p1), 0);
    assert_int_equal(zoff_device_alloc(rt, 1000 * 2, &s), 0);
    uint16_t h[1000];
    for (int i = 0; i < 1000; i++) h[i] = zoff_f32_to_f16(0.25f);
    assert_int_equal(zoff_device_upload(rt, p0, h, sizeof h, NULL), 0);
    assert_int_equal(zoff_device_upload(rt, p1, h, sizeof h, NULL), 0);
    assert_int_equal(zoff_device_upload(rt, g0, h, sizeof h, NULL), 0);
    assert_int_equal(zoff_device_upload(rt, s, h, sizeof h, NULL), 0);
    int a = -1, b = -1;
    assert_int_equal(zoff_add_param(rt, "full", 1000, ZOFF_DTYPE_F16, p0, g0, NULL, 0, &a), 0);
    assert_int_equal(zoff_add_param(rt, "bucketed", 1000, ZOFF_DTYPE_F16, p1, NULL, NULL, 0, &b),
                     0);
    assert_int_equal(zoff_finalize(rt), 0);
    assert_int_equal(zoff_grad_push(rt, a, s, 1000, ZOFF_DTYPE_F16, NULL), ZOFF_EINVAL);
    bk_assert_msg(rt, "zoff_grad_ready");
    assert_int_equal(zoff_grad_ready(rt, a, NULL), 0);
    assert_int_equal(zoff_grad_push(rt, b, s, 1000, ZOFF_DTYPE_F16, NULL), 0);
    zoff_step_result r = ZOFF_STEP_RESULT_INIT;
    assert_int_equal(zoff_step(rt, NULL, &r), 0);
    assert_int_equal(r.skipped, 0);
    float ma[1000], mb[1000];
    assert_int_equal(zoff_get_master(rt, a, ma), 0);
    assert_int_equal(zoff_get_master(rt, b, mb), 0);
    assert_memory_equal(ma, mb, sizeof ma); /* same gradient by either path: same update */
    zoff_destroy(rt);

    /* buckets that do not fit beside the weights (2 MiB of weights, 2 x 1 MiB of buckets on a
     * 2.5 MiB device) */
    c.sim_gpu_bytes = 5 * ZOFF_MIB / 2;
    c.grad_bucket_numel = 1u << 20;
    c.grad_bucket_count = 2;
    assert_int_equal(zoff_create(&c, &rt), 0);
    assert_int_equal(zoff_device_alloc(rt, (1u << 20) * 2, &p1), 0);
    assert_int_equal(zoff_add_param(rt, "w", 1u << 20, ZOFF_DTYPE_F16, p1, NULL, NULL, 0, NULL), 0);
    assert_int_equal(zoff_finalize(rt), ZOFF_EDEVMEM);
    bk_assert_msg(rt, "reduce_bucket_size");
    zoff_destroy(rt);
}

int main(int argc, char **argv)
{
    if (argc > 1) g_mode = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_vs_full),           cmocka_unit_test(test_bucket_grow),
        cmocka_unit_test(test_bucket_copy_stream),       cmocka_unit_test(test_bucket_bad_input),
        cmocka_unit_test(test_bucket_mixed_and_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
