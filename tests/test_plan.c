/*
 * test_plan.c — the memory plan: the layout arithmetic (grad buffer(s), hold buffer for delayed,
 * staging tiles, resident state, swap pool, swap bytes) for the cpu, nvme and ratio tiers;
 * zoff_plan's report (fits for a small model; for a model too big for host memory fits = 0 with
 * advice naming offload_optimizer.device; too big for the disk: advice naming nvme_path; too big
 * for the sim GPU: advice about the device); and zoff_finalize refusing (ZOFF_ENOFIT, message
 * naming the knob) a model that cannot fit, before allocating anything. Sizes as users write
 * them (zoff_parse_size / zoff_parse_count: binary and decimal suffixes, fractions, exponents,
 * 64-bit overflow refused) and byte counts that would wrap around 2^64 (ZOFF_ENOFIT, never
 * "fits"); zoff_plan_with planning for a GPU this machine does not have.
 */
#include <stdio.h>
#include <sys/stat.h>
#include "test_runtime_util.h"

static void test_layout(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.fp16_enabled = 1;
    c.partition_numel = 1 << 20;
    c.tile_numel = 1 << 16;
    zrt_layout l;
    uint64_t n = 10u << 20; /* 10 Mi elements */
    assert_int_equal(zrt_layout_compute(&c, n, n * 2, 0, &l), 0);
    assert_int_equal(l.ngrad_bufs, 1);
    assert_int_equal(l.grad_buf_bytes, n * 2);
    assert_int_equal(l.hold_bytes, 0);
    assert_int_equal(l.stage_bytes, (1u << 16) * 2);
    assert_int_equal(l.store.nparts, 10);
    assert_int_equal(l.store.resident_parts, 10);
    assert_int_equal(l.store.resident_bytes, n * 12);
    assert_int_equal(l.store.pool_bytes, 0);
    assert_int_equal(l.arena_bytes, n * 2 + 4 * (1u << 17) + n * 12);
    /* bucket mode (the default): 16-bit params + 4 buckets of 4 Mi 16-bit elements */
    uint64_t buckets = 4ull * (1u << 20) * 2;
    assert_int_equal(l.bucket_bytes, buckets);
    assert_int_equal(l.gpu_bytes, n * 2 + buckets);
    assert_int_equal(l.no_offload_bytes, n * 16);
    /* full-buffer mode: trainer-owned gradients, no buckets */
    zrt_layout_device(&c, &l, n * 2, 0, 0, n, 0);
    assert_int_equal(l.gpu_bytes, n * 4);
    assert_int_equal(l.bucket_bytes, 0);
    /* accumulation adds one fp32 sum buffer on the host (two with overlap delayed) and a
     * second 16-bit landing buffer */
    c.gradient_accumulation_steps = 4;
    zrt_layout acc;
    assert_int_equal(zrt_layout_compute(&c, n, n * 2, 0, &acc), 0);
    assert_int_equal(acc.nacc_bufs, 1);
    assert_int_equal(acc.ngrad_bufs, 2);
    assert_int_equal(acc.arena_bytes, l.arena_bytes + n * 4 + n * 2);
    c.gradient_accumulation_steps = 1;

    c.tier = ZOFF_TIER_NVME;
    snprintf(c.nvme_path, sizeof c.nvme_path, "/tmp");
    c.buffer_count = 4;
    c.ratio = 0.0f;
    assert_int_equal(zrt_layout_compute(&c, n + 5, (n + 5) * 2, 0, &l), 0);
    assert_int_equal(l.store.nparts, 11);
    assert_int_equal(l.store.resident_parts, 0);
    assert_int_equal(l.store.slots, 4);
    assert_int_equal(l.store.pool_bytes, 4ull * 12 * (1 << 20));
    assert_int_equal(l.store.swap_bytes, (n + 5) * 12);
    /* host memory does not grow with the model on the nvme tier beyond the 16-bit buffers */
    zrt_layout big;
    assert_int_equal(zrt_layout_compute(&c, 100 * n, 100 * n * 2, 0, &big), 0);
    assert_int_equal(big.arena_bytes - big.grad_buf_bytes, l.arena_bytes - l.grad_buf_bytes);

    c.ratio = 0.5f;
    assert_int_equal(zrt_layout_compute(&c, n, n * 2, 0, &l), 0);
    assert_int_equal(l.store.resident_parts, 5);
    assert_int_equal(l.store.swapped_parts, 5);
    assert_int_equal(l.store.resident_bytes, 5ull * 12 * (1 << 20));
    assert_int_equal(l.store.swap_bytes, 5ull * 12 * (1 << 20));

    c.overlap = ZOFF_OVERLAP_DELAYED;
    assert_int_equal(zrt_layout_compute(&c, n, n * 2, 0, &l), 0);
    assert_int_equal(l.ngrad_bufs, 2);
    assert_int_equal(l.hold_bytes, n * 2);
    c.partition_numel = 0;
    assert_int_equal(zrt_layout_compute(&c, n, n * 2, 0, &l), ZOFF_EINVAL);
}

static void test_plan_report(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    c.fp16_enabled = 1;
    c.sim_gpu_bytes = ZOFF_GIB;
    zoff_plan_report r;
    memset(&r, 0, sizeof r);
    assert_int_equal(zoff_plan(&c, 1000000, &r), 0);
    assert_int_equal(r.fits, 1);
    assert_string_equal(r.advice, "");
    /* a small model: no more bucket room than its gradients (4 x 250000 elements, each
     * bucket 256-byte aligned) */
    assert_int_equal(r.bucket_bytes, 4ull * 500224);
    assert_int_equal(r.gpu_bytes, 2000000 + 4ull * 500224);
    assert_int_equal(r.no_offload_bytes, 16000000);
    /* the acceptance figure: 1 Gi fp16 params with default buckets, <= 2.1 bytes/param */
    c.sim_gpu_bytes = (size_t)1 << 40;
    c.tier = ZOFF_TIER_NVME;
    snprintf(c.nvme_path, sizeof c.nvme_path, "/tmp");
    assert_int_equal(zoff_plan(&c, (size_t)1 << 30, &r), 0);
    assert_true(r.gpu_bytes_per_param <= 2.1);
    assert_true(r.gpu_bytes_per_param >= 2.0);
    assert_true(r.host_bytes_per_param > 2.0);
    c.tier = ZOFF_TIER_CPU;
    c.nvme_path[0] = '\0';
    c.sim_gpu_bytes = ZOFF_GIB;

    /* the largest model for a GPU: 32 GB, GPU side only (state on a huge disk is not asked for
     * here: the cpu tier is bounded by this host's memory) */
    uint64_t maxp = 0;
    zoff_plan_report at;
    memset(&at, 0, sizeof at);
    assert_int_equal(zoff_plan_max_params(&c, 32000000000ull, &maxp, &at), 0);
    assert_true(maxp > 0);
    assert_int_equal(at.fits, 1);
    assert_true(at.gpu_bytes <= 32000000000ull);
    c.sim_gpu_bytes = (size_t)1 << 30;
    uint64_t max1g = 0;
    assert_int_equal(zoff_plan_max_params(&c, 0, &max1g, NULL), 0); /* the sim's 1 GiB */
    assert_true(max1g <= ((1u << 30) - 4ull * (1u << 20) * 2) / 2);
    assert_true(max1g > 0);

    assert_true(r.pinned_bytes >= 14000000);
    assert_true(r.host_available > 0);

    /* host memory: 20 Ti params of state on the cpu tier */
    size_t huge = (size_t)20 << 40;
    c.sim_gpu_bytes = (size_t)1 << 50; /* only the host side fails */
    assert_int_equal(zoff_plan(&c, huge, &r), 0);
    assert_int_equal(r.fits, 0);
    assert_non_null(strstr(r.advice, "offload_optimizer.device to nvme"));

    /* the GPU side */
    c.sim_gpu_bytes = 1000;
    assert_int_equal(zoff_plan(&c, 1000000, &r), 0);
    assert_int_equal(r.fits, 0);
    assert_non_null(strstr(r.advice, "device"));

    /* the disk: nvme tier with all state swapped to a path that cannot hold it */
    char *dir = zt_mkdtemp("plan");
    c.sim_gpu_bytes = (size_t)1 << 50;
    c.tier = ZOFF_TIER_NVME;
    snprintf(c.nvme_path, sizeof c.nvme_path, "%s", dir);
    assert_int_equal(zoff_plan(&c, (size_t)1 << 40, &r), 0);
    assert_int_equal(r.fits, 0);
    assert_true(r.nvme_bytes == ((uint64_t)12 << 40));
    assert_non_null(strstr(r.advice, "nvme_path"));
    assert_true(r.nvme_available > 0);
    /* a missing directory is planned on its existing parent (finalize creates it, as
     * `zoff train` does) and not created by the planner */
    snprintf(c.nvme_path, sizeof c.nvme_path, "%s/missing/deeper", dir);
    assert_int_equal(zoff_plan(&c, 1000, &r), 0);
    assert_int_equal(r.fits, 1);
    assert_true(r.nvme_available > 0);
    struct stat sb;
    assert_int_not_equal(stat(c.nvme_path, &sb), 0);
    /* a path under a plain file cannot be created: named */
    char file[1100];
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(c.nvme_path, sizeof c.nvme_path, "%s/plain/sub", dir);
    assert_int_equal(zoff_plan(&c, 1000, &r), 0);
    assert_int_equal(r.fits, 0);
    assert_non_null(strstr(r.advice, "plain"));
    zt_rmtree(dir);
    free(dir);

    assert_int_equal(zoff_plan(NULL, 10, &r), ZOFF_EINVAL);
    assert_int_equal(zoff_plan(&c, 0, &r), ZOFF_EINVAL);
}

static void test_finalize_refuses(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    void *p = NULL, *g = NULL;
    assert_int_equal(zoff_device_alloc(rt, 4096, &p), 0);
    assert_int_equal(zoff_device_alloc(rt, 4096, &g), 0);
    /* claims 2^40 elements: 12 TiB of optimizer state; finalize must refuse before touching it */
    /* the gradient pointer lies beyond the claimed parameter range (add_param refuses buffers
     * that overlap); neither is touched because finalize refuses first */
    g = (char *)p + ((size_t)2 << 40);
    assert_int_equal(
        zoff_add_param(rt, "huge", (size_t)1 << 40, ZOFF_DTYPE_F16, p, g, NULL, 0, NULL), 0);
    assert_int_equal(zoff_finalize(rt), ZOFF_ENOFIT);
    const char *m = zoff_last_error(rt);
    fprintf(stderr, "finalize said: %s\n", m);
    assert_non_null(strstr(m, "offload_optimizer.device"));
    zoff_stats s = {.struct_size = sizeof(zoff_stats)};
    assert_int_equal(zoff_get_stats(rt, &s), 0);
    assert_int_equal(s.pinned_bytes + s.pageable_bytes, 0);
    zoff_destroy(rt);
}

static void test_sizes_and_overflow(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(zoff_parse_size("16M", &v), 0);
    assert_true(v == 16u << 20);
    assert_int_equal(zoff_parse_size("16GiB", &v), 0);
    assert_true(v == (uint64_t)16 << 30);
    assert_int_equal(zoff_parse_size("1.5G", &v), 0);
    assert_true(v == (uint64_t)3 << 29);
    assert_int_equal(zoff_parse_size("4096B", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(zoff_parse_size("0x1000", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(zoff_parse_size("7B", &v), 0); /* bytes, not billions */
    assert_true(v == 7);
    assert_int_equal(zoff_parse_count("7B", &v), 0);
    assert_true(v == 7000000000ull);
    assert_int_equal(zoff_parse_count("1e15", &v), 0);
    assert_true(v == 1000000000000000ull);
    assert_int_equal(zoff_parse_count("1.3bn", &v), 0);
    assert_true(v == 1300000000ull);
    assert_int_equal(zoff_parse_count("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    const char *bad[] = {"",   "-1",  "+1",  "0.5",  "1e30",   "16777216T", "18446744073709551616",
                         "1x", "inf", "nan", "1.5e", "0x1.8p1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (zoff_parse_count(bad[i], &v) != ZOFF_EINVAL) print_error("accepted '%s'\n", bad[i]);
        assert_int_equal(zoff_parse_count(bad[i], &v), ZOFF_EINVAL);
        assert_non_null(strstr(zoff_last_error(NULL), "not a count"));
    }
    char b[32];
    assert_string_equal(zoff_format_bytes(1536, b, sizeof b), "1.50 KiB");

    /* byte counts that would wrap around 2^64 do not fit; they never say "fits" */
    zoff_config c;
    zoff_config_default(&c);
    zoff_plan_report r = {.struct_size = sizeof r};
    assert_int_equal(zoff_plan(&c, (size_t)1 << 62, &r), ZOFF_ENOFIT);
    assert_non_null(strstr(zoff_last_error(NULL), "2^58"));
    assert_int_equal(zoff_plan(&c, SIZE_MAX, &r), ZOFF_ENOFIT);
    zrt_layout l;
    c.partition_numel = (size_t)1 << 53;
    c.buffer_count = 1 << 20;
    c.tier = ZOFF_TIER_NVME;
    assert_int_equal(zrt_layout_compute(&c, (uint64_t)1 << 58, (uint64_t)1 << 59, 0, &l), 0);
    assert_true(l.arena_bytes > l.store.pool_bytes); /* the largest layout still adds up */
    assert_int_equal(zrt_layout_compute(&c, ((uint64_t)1 << 58) + 1, (uint64_t)1 << 59, 0, &l),
                     ZOFF_ENOFIT);

    /* --gpu-mem: plan for a GPU with 80 GiB free */
    zoff_config_default(&c);
    zoff_plan_options o;
    assert_int_equal(zoff_plan_options_default(&o), 0);
    o.gpu_mem_bytes = (uint64_t)80 << 30;
    assert_int_equal(zoff_plan_with(&c, 1000, &o, &r), 0);
    assert_true(r.gpu_available == (uint64_t)80 << 30);
    o.gpu_mem_bytes = 1000;
    assert_int_equal(zoff_plan_with(&c, 1000, &o, &r), 0);
    assert_int_equal(r.fits, 0);
    assert_non_null(strstr(r.advice, "--gpu-mem"));
    o.struct_size = 0;
    assert_int_equal(zoff_plan_with(&c, 1000, &o, &r), ZOFF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_plan_report),
        cmocka_unit_test(test_finalize_refuses),
        cmocka_unit_test(test_sizes_and_overflow),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
