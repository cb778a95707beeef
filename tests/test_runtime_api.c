/*
 * test_runtime_api.c — the public API's contract outside the numbers: wrong call order
 * (step/grad_ready/params_ready/get_master/save before finalize, add_param/add_group after it,
 * finalize twice, grad_ready twice in a step), bad arguments (unknown param or group id,
 * duplicate or empty names, NULL pointers, zero numel), bad configs (zoff_create_from_json with an
 * unknown key, a wrong type, an impossible value; a config without struct_size), each with the
 * status code and a zoff_last_error() message that names the problem; messages are cleared by a
 * successful call; the accessors (param count, step, loss scale, groups, set_step, stats before
 * and after finalize, device helpers).
 */
#include "test_runtime_util.h"

static zoff_config small_cfg(void)
{
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    return c;
}

static void assert_msg(const zoff_runtime *rt, const char *needle)
{
    const char *m = zoff_last_error(rt);
    if (!strstr(m, needle)) {
        fprintf(stderr, "message '%s' does not contain '%s'\n", m, needle);
        fail();
    }
}

static void test_bad_configs(void **state)
{
    (void)state;
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create_from_json("{\"optimizer\": {\"params\": {\"lr\": 1e-3, "
                                           "\"lrr\": 2}}}",
                                           &rt),
                     ZOFF_ECONFIG);
    assert_null(rt);
    assert_msg(NULL, "lrr");
    assert_int_equal(zoff_create_from_json("{\"gradient_clipping\": \"big\"}", &rt), ZOFF_ECONFIG);
    assert_msg(NULL, "gradient_clipping");
    assert_int_equal(zoff_create_from_json("{\"zero_optimization\": {\"offload_optimizer\": "
                                           "{\"ratio\": 1.5}}}",
                                           &rt),
                     ZOFF_ECONFIG);
    assert_msg(NULL, "ratio");
    assert_int_equal(zoff_create_from_json("{\"fp16\": {\"enabled\": true}, \"bf16\": "
                                           "{\"enabled\": true}}",
                                           &rt),
                     ZOFF_ECONFIG);
    assert_null(rt);
    zoff_config c;
    memset(&c, 0, sizeof c);
    assert_int_equal(zoff_create(&c, &rt), ZOFF_EINVAL);
    assert_msg(NULL, "struct_size");
    assert_int_equal(zoff_create(NULL, &rt), ZOFF_EINVAL);
    /* a config file that does not exist */
    assert_true(zoff_config_from_json(&c, "/nonexistent/zoff.json") < 0);
    /* the JSON form of a good config works */
    assert_int_equal(zoff_create_from_json("{\"zoff\": {\"device\": \"sim\"}}", &rt), 0);
    zoff_destroy(rt);
    assert_int_equal(zoff_create_from_json(NULL, &rt), 0);
    zoff_destroy(rt);
    zoff_destroy(NULL);
}

static void test_order_before_finalize(void **state)
{
    (void)state;
    zoff_config c = small_cfg();
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    assert_string_equal(zoff_last_error(rt), "");
    zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
    assert_int_equal(zoff_step(rt, NULL, &r), ZOFF_ESTATE);
    assert_msg(rt, "before zoff_finalize");
    assert_int_equal(zoff_grad_ready(rt, 0, NULL), ZOFF_ESTATE);
    assert_msg(rt, "zoff_grad_ready before zoff_finalize");
    assert_int_equal(zoff_params_ready(rt, NULL), ZOFF_ESTATE);
    float x;
    assert_int_equal(zoff_get_master(rt, 0, &x), ZOFF_ESTATE);
    assert_int_equal(zoff_save(rt, "/tmp/never"), ZOFF_ESTATE);
    assert_int_equal(zoff_load(rt, "/tmp/never"), ZOFF_ESTATE);
    assert_int_equal(zoff_finalize(rt), ZOFF_EINVAL);
    assert_msg(rt, "no parameters");

    void *p = NULL, *g = NULL;
    assert_int_equal(zoff_device_alloc(rt, 100 * 2, &p), 0);
    assert_int_equal(zoff_device_alloc(rt, 100 * 2, &g), 0);
    assert_int_equal(zoff_add_param(rt, "", 100, ZOFF_DTYPE_F16, p, g, NULL, 0, NULL), ZOFF_EINVAL);
    assert_msg(rt, "empty name");
    assert_int_equal(zoff_add_param(rt, "w", 0, ZOFF_DTYPE_F16, p, g, NULL, 0, NULL), ZOFF_EINVAL);
    assert_msg(rt, "numel is 0");
    /* dev_param NULL registers a streamed parameter (test_stream covers it) */
    assert_int_equal(zoff_add_param(rt, "w", 100, (zoff_dtype)9, p, g, NULL, 0, NULL), ZOFF_EINVAL);
    assert_msg(rt, "dtype");
    assert_int_equal(zoff_add_param(rt, "w", 100, ZOFF_DTYPE_F16, p, g, NULL, 3, NULL),
                     ZOFF_EINVAL);
    assert_msg(rt, "unknown group 3");
    int id = -1;
    float init[100];
    for (int i = 0; i < 100; i++) init[i] = (float)i / 100.0f;
    assert_int_equal(zoff_add_param(rt, "w", 100, ZOFF_DTYPE_F16, p, g, init, 0, &id), 0);
    assert_string_equal(zoff_last_error(rt), "");
    assert_int_equal(id, 0);
    assert_int_equal(zoff_add_param(rt, "w", 100, ZOFF_DTYPE_F16, p, g, NULL, 0, NULL),
                     ZOFF_EINVAL);
    assert_msg(rt, "already registered");

    zoff_group_config gc;
    zoff_group_config_default(&gc);
    gc.lr = -1.0f;
    int gid = -1;
    assert_int_equal(zoff_add_group(rt, &gc, &gid), ZOFF_ECONFIG);
    assert_msg(rt, "lr");
    gc.lr = 0.5f;
    assert_int_equal(zoff_add_group(rt, &gc, &gid), 0);
    assert_int_equal(gid, 1);
    zoff_group_config back;
    assert_int_equal(zoff_get_group(rt, 1, &back), 0);
    assert_true(back.lr == 0.5f);
    assert_int_equal(zoff_get_group(rt, 2, &back), ZOFF_EINVAL);

    assert_int_equal(zoff_finalize(rt), 0);
    assert_int_equal(zoff_finalize(rt), ZOFF_ESTATE);
    assert_msg(rt, "twice");
    assert_int_equal(zoff_add_param(rt, "v", 100, ZOFF_DTYPE_F16, p, g, NULL, 0, NULL),
                     ZOFF_ESTATE);
    assert_msg(rt, "after zoff_finalize");
    assert_int_equal(zoff_add_group(rt, &gc, &gid), ZOFF_ESTATE);
    /* set_group is allowed between steps */
    gc.lr = 0.25f;
    assert_int_equal(zoff_set_group(rt, 1, &gc), 0);
    assert_int_equal(zoff_set_group(rt, 7, &gc), ZOFF_EINVAL);

    float m[100];
    assert_int_equal(zoff_get_master(rt, 0, m), 0);
    assert_memory_equal(m, init, sizeof m);
    assert_int_equal(zoff_get_master(rt, 1, m), ZOFF_EINVAL);
    assert_msg(rt, "unknown param id 1");
    assert_int_equal(zoff_grad_ready(rt, 5, NULL), ZOFF_EINVAL);
    assert_msg(rt, "unknown param id 5");
    assert_int_equal(zoff_grad_ready(rt, -1, NULL), ZOFF_EINVAL);
    zoff_destroy(rt);
}

/* grad_ready twice, step with missing gradients (skipped), accessors, set_step. */
static void test_steps_and_accessors(void **state)
{
    (void)state;
    zoff_config c = small_cfg();
    c.optimizer.weight_decay = 0.0f;
    tr_model m;
    static const size_t numel[2] = {300, 200};
    zoff_status st = tr_open(&m, &c, 2, numel, ZOFF_DTYPE_F16, 1);
    assert_int_equal(st, 0);
    int count = 0;
    assert_int_equal(zoff_param_count(m.rt, &count), 0);
    assert_int_equal(count, 2);
    float scale = 0;
    assert_int_equal(zoff_get_loss_scale(m.rt, &scale), 0);
    assert_true(scale == 65536.0f);

    uint16_t zero[300] = {0};
    assert_int_equal(zoff_device_upload(m.rt, m.dgrad[0], zero, sizeof zero, m.s), 0);
    assert_int_equal(zoff_grad_ready(m.rt, m.id[0], m.s), 0);
    assert_int_equal(zoff_grad_ready(m.rt, m.id[0], m.s), ZOFF_ESTATE);
    assert_msg(m.rt, "already declared");
    assert_int_equal(zoff_set_step(m.rt, 5), ZOFF_ESTATE); /* mid-step */
    assert_int_equal(zoff_load(m.rt, "/nonexistent"), ZOFF_ESTATE);
    zoff_step_args a = {.struct_size = sizeof a};
    a.flags = 3;
    zoff_step_result r = {.struct_size = sizeof(zoff_step_result)};
    assert_int_equal(zoff_step(m.rt, &a, &r), ZOFF_EINVAL);
    assert_msg(m.rt, "flags");
    /* param 1 never declared: skipped (test_grad_skip checks the details) */
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.params_without_grad, 1);
    assert_int_equal(zoff_get_step(m.rt, &r.step), 0);
    assert_int_equal(r.step, 1);
    assert_int_equal(zoff_set_step(m.rt, -1), ZOFF_EINVAL);
    assert_int_equal(zoff_set_step(m.rt, 41), 0);
    int64_t s = 0;
    assert_int_equal(zoff_get_step(m.rt, &s), 0);
    assert_int_equal(s, 41);

    /* no gradient: nothing moves for param 1 */
    float before[200], after[200];
    assert_int_equal(zoff_get_master(m.rt, m.id[1], before), 0);
    assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
    assert_int_equal(zoff_get_master(m.rt, m.id[1], after), 0);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(r.step, 42);

    /* set_state: new master and moments, device copy re-uploaded */
    float nm[300], ne[300], got[300];
    for (int i = 0; i < 300; i++) {
        nm[i] = (float)i * 0.01f;
        ne[i] = 0.5f;
    }
    assert_int_equal(zoff_set_state(m.rt, m.id[0], nm, ne, NULL), 0);
    assert_int_equal(zoff_get_master(m.rt, m.id[0], got), 0);
    assert_memory_equal(got, nm, sizeof got);
    assert_int_equal(zoff_get_state(m.rt, m.id[0], got, NULL), 0);
    assert_memory_equal(got, ne, sizeof got);
    float *masters[2] = {nm, after};
    assert_int_equal(tr_check_device(&m, masters), 0);
    assert_int_equal(zoff_set_state(m.rt, 9, nm, NULL, NULL), ZOFF_EINVAL);

    zoff_stats stt = {.struct_size = sizeof(zoff_stats)};
    assert_int_equal(zoff_get_stats(m.rt, &stt), 0);
    assert_int_equal(stt.steps, 2);
    assert_true(stt.pinned_bytes + stt.pageable_bytes > 0);
    assert_true(strlen(stt.device_name) > 0);
    assert_true(strlen(stt.cpu_isa) > 0);
    assert_int_equal(zoff_device_host_accessible(m.rt), zdev_kind(m.rt->dev) == ZOFF_DEVICE_SIM);
    tr_close(&m);
}

static void test_stats_before_finalize(void **state)
{
    (void)state;
    zoff_config c = small_cfg();
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    zoff_stats s = {.struct_size = sizeof(zoff_stats)};
    assert_int_equal(zoff_get_stats(rt, &s), 0);
    assert_int_equal(s.steps, 0);
    assert_int_equal(s.pinned_bytes, 0);
    zoff_stream st = NULL;
    assert_int_equal(zoff_stream_create(rt, &st), 0);
    assert_int_equal(zoff_stream_busy(rt, st, 1000), 0);
    assert_int_equal(zoff_stream_synchronize(rt, st), 0);
    zoff_stream_destroy(rt, st);
    assert_int_equal(zoff_get_stats(rt, NULL), ZOFF_EINVAL);
    zoff_destroy(rt);
}

/* Stats of one step and the trace file's tracks. */
static void test_stats_and_trace(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("trace");
    zoff_config c = small_cfg();
    snprintf(c.trace_path, sizeof c.trace_path, "%s/t.json", dir);
    c.tier = ZOFF_TIER_NVME;
    c.buffer_count = 3;
    snprintf(c.nvme_path, sizeof c.nvme_path, "%s", dir);
    tr_model m;
    static const size_t numel[2] = {3000, 1000};
    assert_int_equal(tr_open(&m, &c, 2, numel, ZOFF_DTYPE_F16, 1), 0);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    for (int i = 0; i < 2; i++)
        for (size_t k = 0; k < numel[i]; k++) gr.g[i][k] = 0.001f * (float)(k % 7);
    zoff_step_result r = {.struct_size = sizeof r};
    for (int t = 0; t < 2; t++) {
        tr_backward(&m, gr.g, 1024.0f, gr.gq, 1000);
        assert_int_equal(zoff_step(m.rt, NULL, &r), 0);
        assert_int_equal(zoff_params_ready(m.rt, m.s), 0);
    }
    assert_int_equal(zoff_stream_synchronize(m.rt, m.s), 0);
    zoff_stats s = {.struct_size = sizeof s};
    assert_int_equal(zoff_get_stats(m.rt, &s), 0);
    assert_int_equal(s.d2h.bytes, 4000 * 2);
    assert_int_equal(s.h2d.bytes, 4000 * 2);
    assert_int_equal(s.nvme_read.bytes, 4000 * 12);
    assert_int_equal(s.nvme_write.bytes, 4000 * 12);
    assert_int_equal(s.total_nvme_read_bytes, 2 * 4000 * 12);
    assert_true(s.adam_ms > 0 && s.adam_gbps > 0);
    assert_true(s.step_ms > 0 && s.overlap_ratio > 0);
    assert_true(s.nvme_bytes >= 4000 * 12);
    assert_true(r.adam_ms > 0 && r.step_ms > 0);
    tr_grads_free(&gr);
    tr_close(&m); /* writes the trace */
    char path[1100];
    snprintf(path, sizeof path, "%s/t.json", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *tracks[] = {
        "trainer: zoff_step", "stream d2h (grads)",  "cpu grads (sum of squares)",
        "cpu adam",           "stream h2d (params)", "nvme read",
        "nvme write"};
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(tracks); i++) {
        if (!strstr(text, tracks[i])) fprintf(stderr, "track '%s' missing\n", tracks[i]);
        assert_non_null(strstr(text, tracks[i]));
    }
    assert_non_null(strstr(text, "\"name\":\"adam\""));
    assert_non_null(strstr(text, "\"name\":\"read\""));
    assert_non_null(strstr(text, "\"name\":\"layer1.w\""));
    zt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs),         cmocka_unit_test(test_order_before_finalize),
        cmocka_unit_test(test_steps_and_accessors), cmocka_unit_test(test_stats_before_finalize),
        cmocka_unit_test(test_stats_and_trace),
    };
    return cmocka_run_group_tests_name("runtime_api", tests, NULL, NULL);
}
