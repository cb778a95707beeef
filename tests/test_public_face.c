/*
 * test_public_face.c — the public face for front ends (include/zoff.h only, linked against the
 * shared library, so every call used here is exported): a runtime on the sim device saves a
 * small checkpoint with trainer JSON; zoff_ckpt_open reads its facts (step, groups, extra JSON,
 * tensor table), zoff_ckpt_verify passes, zoff_ckpt_read_tensor returns a parameter's master
 * bit-identical to zoff_get_master (twice, and refuses a wrong size or an unknown name); a
 * flipped byte in a tensor's data makes verify and the read of that tensor fail with
 * ZOFF_ECORRUPT naming it, and a flipped byte in the manifest makes the open fail. The env
 * iterator lists ZOFF_DEBUG with its default and reports a variable set in the environment.
 * zoff_probe_machine reports this process's CPUs, memory, a NUMA node, the probed directory (and
 * an older caller's smaller struct is not written past its struct_size); zoff_probe_path flags a
 * missing directory; zoff_probe_rank splits swap paths.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <zoff.h>

#define NW 4096
#define NB 64

static char g_dir[1024];  /* the test's temporary directory */
static char g_ckpt[1100]; /* the checkpoint in it */
static float g_master[NW];

static void must(zoff_runtime *rt, zoff_status st, const char *what)
{
    if (st != ZOFF_OK) fprintf(stderr, "%s: %s\n", what, zoff_last_error(rt));
    assert_int_equal(st, ZOFF_OK);
}

/* Saves a checkpoint of a two-parameter fp32 model after one step; keeps the weight's master. */
static void save_checkpoint(void)
{
    zoff_config cfg;
    assert_int_equal(zoff_config_default(&cfg), 0);
    cfg.device = ZOFF_DEVICE_SIM;
    cfg.sim_gpu_bytes = 64u << 20;
    cfg.optimizer.lr = 0.05f;
    zoff_runtime *rt = NULL;
    must(NULL, zoff_create(&cfg, &rt), "zoff_create");
    zoff_stream s;
    must(rt, zoff_stream_create(rt, &s), "stream");
    const char *names[2] = {"layer.weight", "layer.bias"};
    size_t numel[2] = {NW, NB};
    void *w[2], *g[2];
    int id[2];
    static float init[NW], grad[NW];
    for (size_t i = 0; i < NW; i++) {
        init[i] = (float)i * 0.001f - 1.0f;
        grad[i] = (float)(i % 7) * 0.01f - 0.03f;
    }
    for (int k = 0; k < 2; k++) {
        must(rt, zoff_device_alloc(rt, numel[k] * 4, &w[k]), "alloc");
        must(rt, zoff_device_alloc(rt, numel[k] * 4, &g[k]), "alloc");
        must(rt,
             zoff_add_param(rt, names[k], numel[k], ZOFF_DTYPE_F32, w[k], g[k], init, 0, &id[k]),
             "add_param");
    }
    must(rt, zoff_finalize(rt), "finalize");
    for (int k = 1; k >= 0; k--) {
        must(rt, zoff_device_upload(rt, g[k], grad, numel[k] * 4, s), "upload");
        must(rt, zoff_grad_ready(rt, id[k], s), "grad_ready");
    }
    must(rt, zoff_step(rt, NULL, NULL), "step");
    must(rt, zoff_params_ready(rt, s), "params_ready");
    must(rt, zoff_save_with(rt, g_ckpt, "{\"epoch\": 3}"), "save");
    must(rt, zoff_get_master(rt, id[0], g_master), "get_master");
    for (int k = 0; k < 2; k++) {
        zoff_device_free(rt, w[k]);
        zoff_device_free(rt, g[k]);
    }
    zoff_stream_destroy(rt, s);
    zoff_destroy(rt);
}

static void flip_byte(const char *path, uint64_t offset)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)offset), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)offset), 1);
    close(fd);
}

static void test_ckpt_read(void **state)
{
    (void)state;
    zoff_ckpt *c = NULL;
    must(NULL, zoff_ckpt_open(g_ckpt, &c), "zoff_ckpt_open");
    zoff_ckpt_info info = ZOFF_CKPT_INFO_INIT;
    must(NULL, zoff_ckpt_get_info(c, &info), "get_info");
    assert_int_equal(info.step, 1);
    assert_int_equal(info.ngroups, 1);
    assert_int_equal(info.recovered, 0);
    assert_true(info.format_version >= 2);
    assert_non_null(strstr(info.extra_json, "\"epoch\""));
    assert_int_equal(info.ntensors, zoff_ckpt_tensor_count(c));
    assert_true(info.ntensors >= 6);
    assert_true(info.data_bytes > (NW + NB) * 3 * 4);
    zoff_group_config gc;
    must(NULL, zoff_ckpt_group(c, 0, &gc), "group");
    assert_true(gc.lr == 0.05f);
    assert_true(zoff_ckpt_group(c, 1, &gc) < 0);

    /* every tensor is listed with a name and a size; the weight's three are there */
    int seen = 0;
    for (size_t i = 0; i < info.ntensors; i++) {
        zoff_ckpt_tensor_info t = ZOFF_CKPT_TENSOR_INFO_INIT;
        must(NULL, zoff_ckpt_tensor_info_at(c, i, &t), "tensor_info_at");
        assert_true(t.numel > 0);
        if (!strncmp(t.name, "layer.weight.", 13)) {
            assert_int_equal(t.numel, NW);
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    zoff_ckpt_tensor_info t = ZOFF_CKPT_TENSOR_INFO_INIT;
    assert_true(zoff_ckpt_tensor_info_at(c, info.ntensors, &t) < 0);

    must(NULL, zoff_ckpt_verify(c), "verify");
    static float got[NW];
    for (int pass = 0; pass < 2; pass++) { /* a tensor may be read again */
        memset(got, 0, sizeof got);
        must(NULL, zoff_ckpt_read_tensor(c, "layer.weight.master", got, NW), "read_tensor");
        assert_memory_equal(got, g_master, sizeof got);
    }
    assert_int_equal(zoff_ckpt_read_tensor(c, "layer.weight.master", got, NW - 1), ZOFF_EINVAL);
    assert_int_equal(zoff_ckpt_read_tensor(c, "no.such.tensor", got, NW), ZOFF_ENOTFOUND);
    zoff_ckpt_close(c);
    zoff_ckpt_close(NULL);
}

static void test_ckpt_flipped(void **state)
{
    (void)state;
    char data[1200], manifest[1200];
    snprintf(data, sizeof data, "%s/optimizer.safetensors", g_ckpt);
    snprintf(manifest, sizeof manifest, "%s/zoff_manifest.json", g_ckpt);

    zoff_ckpt *c = NULL;
    must(NULL, zoff_ckpt_open(g_ckpt, &c), "open");
    size_t idx;
    must(NULL, zoff_ckpt_find(c, "layer.weight.exp_avg", &idx), "find");
    zoff_ckpt_tensor_info t = ZOFF_CKPT_TENSOR_INFO_INIT;
    must(NULL, zoff_ckpt_tensor_info_at(c, idx, &t), "tensor_info_at");
    assert_string_equal(t.name, "layer.weight.exp_avg");
    zoff_ckpt_close(c);

    flip_byte(data, t.file_offset + 4 * 100 + 1);
    must(NULL, zoff_ckpt_open(g_ckpt, &c), "open after flip"); /* the header is intact */
    assert_int_equal(zoff_ckpt_verify(c), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff_last_error(NULL), "layer.weight.exp_avg"));
    static float got[NW];
    assert_int_equal(zoff_ckpt_read_tensor(c, "layer.weight.exp_avg", got, NW), ZOFF_ECORRUPT);
    must(NULL, zoff_ckpt_read_tensor(c, "layer.weight.master", got, NW), "other tensor");
    assert_memory_equal(got, g_master, sizeof got);
    zoff_ckpt_close(c);
    flip_byte(data, t.file_offset + 4 * 100 + 1); /* restored */
    must(NULL, zoff_ckpt_open(g_ckpt, &c), "open restored");
    must(NULL, zoff_ckpt_verify(c), "verify restored");
    zoff_ckpt_close(c);

    /* a byte of the manifest (its middle: a scalar or a name) */
    int fd = open(manifest, O_RDONLY);
    assert_true(fd >= 0);
    off_t len = lseek(fd, 0, SEEK_END);
    close(fd);
    flip_byte(manifest, (uint64_t)len / 2);
    c = NULL;
    assert_true(zoff_ckpt_open(g_ckpt, &c) < 0);
    assert_null(c);
    assert_true(strlen(zoff_last_error(NULL)) > 0);
    assert_true(zoff_ckpt_open("/nonexistent/zoff-ckpt", &c) < 0);
}

static void test_env(void **state)
{
    (void)state;
    zoff_env_param p = ZOFF_ENV_PARAM_INIT;
    size_t i = 0, n = 0;
    int debug = 0;
    char last[128] = "";
    while (zoff_env_next(&i, &p) == 1) {
        n++;
        assert_non_null(p.doc);
        assert_int_equal(strncmp(p.name, "ZOFF_", 5), 0);
        if (!strcmp(p.name, "ZOFF_DEBUG") && !p.is_set) {
            assert_string_equal(p.def, "WARN");
            assert_string_equal(p.value, "WARN");
            debug = 1;
        }
        snprintf(last, sizeof last, "%s", p.name);
    }
    assert_int_equal(i, n);
    assert_true(n >= 10);
    assert_true(debug || getenv("ZOFF_DEBUG"));
    assert_int_equal(zoff_env_next(&i, &p), 0);
    /* a variable set in the environment is reported with its value */
    setenv(last, "zz-face-test", 1);
    i = n - 1;
    assert_int_equal(zoff_env_next(&i, &p), 1);
    assert_string_equal(p.name, last);
    assert_int_equal(p.is_set, 1);
    assert_string_equal(p.value, "zz-face-test");
    unsetenv(last);
    assert_true(zoff_env_next(NULL, &p) < 0);
}

static void test_probe(void **state)
{
    (void)state;
    zoff_machine_info *m = malloc(sizeof *m);
    assert_non_null(m);
    memset(m, 0, sizeof *m);
    m->struct_size = sizeof *m;
    must(NULL, zoff_probe_machine(g_dir, m), "probe_machine");
    assert_int_equal(m->online_cpus, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(m->mem_total_bytes > 0);
    assert_true(m->mem_available_bytes > 0 && m->mem_available_bytes <= m->mem_total_bytes);
    assert_true(m->nnuma >= 1);
    assert_true(m->avx2 == 0 || m->avx2 == 1);
    assert_true(m->ngpus > 0 || m->gpu_note[0] != '\0');
    assert_true(m->io_uring >= -1 && m->io_uring <= 1);
    assert_true(m->thp_enabled[0] != '\0');
    assert_int_equal(m->path.accessible, 1);
    assert_true(m->path.odirect == 0 || m->path.odirect == 1);
    assert_true(m->path.free_bytes > 0);
    assert_true(m->path.fs_type[0] != '\0');

    /* an older, smaller struct: nothing past its struct_size is written */
    memset(m, 0xab, sizeof *m);
    m->struct_size = offsetof(zoff_machine_info, online_cpus);
    must(NULL, zoff_probe_machine(g_dir, m), "probe_machine small");
    assert_true(strlen(m->cpu_model) > 0);
    const unsigned char *tail = (const unsigned char *)m + offsetof(zoff_machine_info, online_cpus);
    for (size_t i = 0; i < sizeof *m - offsetof(zoff_machine_info, online_cpus); i++)
        assert_int_equal(tail[i], 0xab);
    free(m);

    zoff_path_info pi = ZOFF_PATH_INFO_INIT;
    must(NULL, zoff_probe_path("/nonexistent/zoff-face", &pi), "probe_path");
    assert_int_equal(pi.accessible, 0);

    zoff_rank_placement *rp = malloc(sizeof *rp);
    assert_non_null(rp);
    *rp = (zoff_rank_placement)ZOFF_RANK_PLACEMENT_INIT;
    must(NULL, zoff_probe_rank(1, 2, "/a,/b,/c,/d", rp), "probe_rank");
    assert_string_equal(rp->swap_paths, "/b,/d");
    assert_true(rp->ncpus >= 1);
    assert_true(zoff_probe_rank(2, 2, "/a", rp) < 0);
    free(rp);
}

int main(void)
{
    const char *base = getenv("ZOFF_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/public-face-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_ckpt, sizeof g_ckpt, "%s/ckpt", g_dir);
    save_checkpoint();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ckpt_read),
        cmocka_unit_test(test_ckpt_flipped),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_probe),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return rc;
}
