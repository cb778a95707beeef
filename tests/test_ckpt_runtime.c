/*
 * test_ckpt_runtime.c — checkpoints through the runtime (zoff_save, zoff_load and their _with
 * forms):
 *  - save at step k, load into a fresh runtime with another tier and partition size (nvme tier,
 *    odd partitions), continue: bit-identical to the uninterrupted run, loss scaler included
 *    (fp16 with a short window and an injected overflow), device params re-uploaded, user JSON
 *    returned;
 *  - a child process SIGKILLed in the middle of zoff_save (during the data, after the fsync,
 *    after the manifest) leaves the previous checkpoint loadable with the previous state;
 *  - a flipped byte in the data is reported (ZOFF_ECORRUPT naming the tensor) and nothing is
 *    loaded; a checkpoint of other shapes / names / group count is refused (ZOFF_EMISMATCH naming
 *    the tensor) and nothing is loaded; a too small user JSON buffer is refused before loading.
 * argv[1] = "nvme" saves from the nvme tier too (the save streams partitions from swap).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "test_runtime_util.h"

static int g_nvme;
static const size_t k_numel[3] = {1500, 4097, 300};

typedef struct run {
    tr_model m;
    char *dir;
    tr_grads gr;
} run;

static const char *g_swap_base; /* when set, swap directories go under it */

static void run_open(run *r, int nvme, size_t partition_numel)
{
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    c.initial_scale_power = 12;
    c.loss_scale_window = 4;
    c.partition_numel = partition_numel;
    c.gradient_clipping = 0.7f;
    r->dir = NULL;
    if (nvme && g_swap_base) {
        /* under the test's directory: a child killed mid-save leaves nothing elsewhere */
        c.tier = ZOFF_TIER_NVME;
        c.ratio = 0.25f;
        c.buffer_count = 3;
        snprintf(c.nvme_path, sizeof c.nvme_path, "%s", g_swap_base);
    } else if (nvme) {
        r->dir = tr_nvme(&c, 0.25f);
    }
    zoff_status st = tr_open(&r->m, &c, 3, k_numel, ZOFF_DTYPE_F16, 42);
    if (st) fprintf(stderr, "tr_open: %s\n", zoff_last_error(r->m.rt));
    assert_int_equal(st, 0);
    tr_grads_init(&r->gr, &r->m);
}

static void run_close(run *r)
{
    tr_grads_free(&r->gr);
    tr_close(&r->m);
    if (r->dir) {
        zt_rmtree(r->dir);
        free(r->dir);
    }
}

/* Step t (1-based) with gradients that depend only on t; step 6 overflows. */
static void run_step(run *r, int t)
{
    zt_rng rng;
    zt_rng_seed(&rng, 1000 + (uint64_t)t);
    for (int i = 0; i < 3; i++) zt_fill_normal(&rng, r->gr.g[i], k_numel[i], 0.01f);
    if (t == 6) r->gr.g[0][3] = INFINITY;
    float scale;
    assert_int_equal(zoff_get_loss_scale(r->m.rt, &scale), 0);
    tr_backward(&r->m, r->gr.g, scale, r->gr.gq, 0);
    zoff_step_result res = {.struct_size = sizeof(zoff_step_result)};
    assert_int_equal(zoff_step(r->m.rt, NULL, &res), 0);
    assert_int_equal(res.skipped, t == 6);
    assert_int_equal(zoff_params_ready(r->m.rt, NULL), 0);
}

static void test_resume_bitexact(void **state)
{
    (void)state;
    char *ck = zt_mkdtemp("ckpt-resume");
    char path[1024];
    snprintf(path, sizeof path, "%s/ck", ck);
    const int k = 9, total = 20;
    run a;
    run_open(&a, g_nvme, 1000);
    for (int t = 1; t <= k; t++) run_step(&a, t);
    float scale_at_k;
    assert_int_equal(zoff_get_loss_scale(a.m.rt, &scale_at_k), 0);
    assert_int_equal(zoff_save_with(a.m.rt, path, "{\"data_pos\": 1234}"), 0);
    for (int t = k + 1; t <= total; t++) run_step(&a, t);
    tr_state sa;
    tr_state_get(&a.m, &sa);
    int64_t step_a;
    assert_int_equal(zoff_get_step(a.m.rt, &step_a), 0);
    assert_int_equal(step_a, total - 1); /* step 6 was skipped */
    run_close(&a);

    /* a fresh runtime on the other tier with another partition size */
    run b;
    run_open(&b, !g_nvme, 777);
    char user[256];
    assert_int_equal(zoff_load_with(b.m.rt, path, user, sizeof user), 0);
    assert_string_equal(user, "{\"data_pos\": 1234}");
    int64_t step_b;
    assert_int_equal(zoff_get_step(b.m.rt, &step_b), 0);
    assert_int_equal(step_b, k - 1);
    float scale_b;
    assert_int_equal(zoff_get_loss_scale(b.m.rt, &scale_b), 0);
    assert_true(scale_b == scale_at_k);
    /* the 16-bit params on the device were re-uploaded from the loaded masters */
    tr_state sb0;
    tr_state_get(&b.m, &sb0);
    assert_int_equal(tr_check_device(&b.m, sb0.p), 0);
    tr_state_free(&sb0);
    for (int t = k + 1; t <= total; t++) run_step(&b, t);
    tr_state sb;
    tr_state_get(&b.m, &sb);
    assert_int_equal(tr_state_diff(&sa, &sb), 0);
    tr_state_free(&sa);
    tr_state_free(&sb);
    run_close(&b);
    zt_rmtree(ck);
    free(ck);
}

/* ---- crash during save ------------------------------------------------------------------------
 */
static const char *g_kill_point;
static void kill_hook(const char *point, uint64_t count, void *arg)
{
    (void)arg;
    if (strcmp(point, g_kill_point) == 0 && (strcmp(point, "chunk") != 0 || count == 4))
        kill(getpid(), SIGKILL);
}

static void test_kill_during_save(void **state)
{
    (void)state;
    char *ck = zt_mkdtemp("ckpt-kill");
    char path[1024];
    snprintf(path, sizeof path, "%s/ck", ck);
    g_swap_base = ck;
    /* the state at step 5 as a reference, and a checkpoint of it */
    run a;
    run_open(&a, g_nvme, 1000);
    for (int t = 1; t <= 5; t++) run_step(&a, t);
    tr_state s5;
    tr_state_get(&a.m, &s5);
    assert_int_equal(zoff_save(a.m.rt, path), 0);
    run_close(&a);

    const char *points[] = {"chunk", "synced", "manifest"};
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(points); i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* the child trains further and dies in the middle of saving */
            run c;
            run_open(&c, g_nvme, 1000);
            for (int t = 1; t <= 8; t++) run_step(&c, t);
            g_kill_point = points[i];
            zckpt__set_fault_hook(kill_hook, NULL);
            zoff_save(c.m.rt, path);
            _exit(3); /* not reached when the hook fired */
        }
        int wst = 0;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        if (!(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL)) {
            fprintf(stderr, "child did not die at '%s' (status %d)\n", points[i], wst);
            fail();
        }
        run b;
        run_open(&b, g_nvme, 1000);
        zoff_status st = zoff_load(b.m.rt, path);
        if (st) fprintf(stderr, "load after kill at %s: %s\n", points[i], zoff_last_error(b.m.rt));
        assert_int_equal(st, 0);
        int64_t step;
        assert_int_equal(zoff_get_step(b.m.rt, &step), 0);
        assert_int_equal(step, 5);
        tr_state sb;
        tr_state_get(&b.m, &sb);
        assert_int_equal(tr_state_diff(&s5, &sb), 0);
        tr_state_free(&sb);
        run_close(&b);
    }
    tr_state_free(&s5);
    g_swap_base = NULL;
    zt_rmtree(ck);
    free(ck);
}

/* ---- corruption and mismatches ------------------------------------------------------------------
 */
static void test_corrupt_and_mismatch(void **state)
{
    (void)state;
    char *ck = zt_mkdtemp("ckpt-bad");
    char path[1024];
    snprintf(path, sizeof path, "%s/ck", ck);
    run a;
    run_open(&a, g_nvme, 1000);
    for (int t = 1; t <= 3; t++) run_step(&a, t);
    assert_int_equal(zoff_save_with(a.m.rt, path, "{\"epoch\": 12}"), 0);
    assert_int_equal(zoff_save_with(a.m.rt, path, "[1, 2]"), ZOFF_EINVAL); /* not an object */
    for (int t = 4; t <= 5; t++) run_step(&a, t);
    tr_state before;
    tr_state_get(&a.m, &before);

    /* a too small buffer for the user JSON: refused before anything is loaded */
    char tiny[4];
    assert_int_equal(zoff_load_with(a.m.rt, path, tiny, sizeof tiny), ZOFF_EINVAL);

    /* flip one byte inside layer1.w.exp_avg */
    zckpt_reader *r = NULL;
    assert_int_equal(zckpt_reader_open(path, &r), 0);
    size_t idx = 0;
    assert_int_equal(zckpt_reader_find(r, "layer1.w.exp_avg", &idx), 0);
    uint64_t off = 0;
    assert_int_equal(zckpt_reader_tensor_info(r, idx, &off, NULL), 0);
    zckpt_reader_close(r);
    char data[1100];
    snprintf(data, sizeof data, "%s/%s", path, ZCKPT_DATA_FILE);
    FILE *f = fopen(data, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)(off + 1234), SEEK_SET), 0);
    int ch = fgetc(f);
    assert_int_equal(fseek(f, (long)(off + 1234), SEEK_SET), 0);
    fputc(ch ^ 0x10, f);
    fclose(f);
    assert_int_equal(zoff_load(a.m.rt, path), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff_last_error(a.m.rt), "layer1.w.exp_avg"));
    tr_state after;
    tr_state_get(&a.m, &after);
    assert_int_equal(tr_state_diff(&before, &after), 0);
    int64_t step;
    assert_int_equal(zoff_get_step(a.m.rt, &step), 0);
    assert_int_equal(step, 5);
    tr_state_free(&after);
    /* the runtime is still usable */
    run_step(&a, 7);
    tr_state_free(&before);

    /* a good checkpoint of this model, then runtimes of other shapes try to load it */
    assert_int_equal(zoff_save(a.m.rt, path), 0);
    run_close(&a);
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_F16);
    tr_model m;
    static const size_t other[3] = {1500, 4096, 300};
    assert_int_equal(tr_open(&m, &c, 3, other, ZOFF_DTYPE_F16, 1), 0);
    assert_int_equal(zoff_load(m.rt, path), ZOFF_EMISMATCH);
    assert_non_null(strstr(zoff_last_error(m.rt), "layer1.w.master"));
    tr_close(&m);
    assert_int_equal(tr_open(&m, &c, 2, k_numel, ZOFF_DTYPE_F16, 1), 0);
    assert_int_equal(zoff_load(m.rt, path), ZOFF_EMISMATCH);
    assert_non_null(strstr(zoff_last_error(m.rt), "layer2.w"));
    tr_close(&m);
    static const size_t more[4] = {1500, 4097, 300, 10};
    assert_int_equal(tr_open(&m, &c, 4, more, ZOFF_DTYPE_F16, 1), 0);
    assert_int_equal(zoff_load(m.rt, path), ZOFF_EMISMATCH);
    assert_non_null(strstr(zoff_last_error(m.rt), "layer3.w"));
    tr_close(&m);
    assert_int_equal(tr_open(&m, &c, 3, k_numel, ZOFF_DTYPE_F16, 1), 0);
    assert_true(zoff_load(m.rt, "/nonexistent/ckpt") < 0);
    assert_true(strlen(zoff_last_error(m.rt)) > 0);
    assert_int_equal(zoff_load(m.rt, path), 0);
    tr_close(&m);
    zt_rmtree(ck);
    free(ck);
}

int main(int argc, char **argv)
{
    g_nvme = argc > 1 && !strcmp(argv[1], "nvme");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_bitexact),
        cmocka_unit_test(test_kill_during_save),
        cmocka_unit_test(test_corrupt_and_mismatch),
    };
    return cmocka_run_group_tests_name(g_nvme ? "ckpt_runtime_nvme" : "ckpt_runtime", tests, NULL,
                                       NULL);
}
