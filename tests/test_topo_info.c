/*
 * test_topo_info.c — `zoff info` (tools/cmd_info.c) end to end: runs the zoff binary given as
 * argv[1] with --json and a --path, parses the output with cJSON and checks the facts against
 * what this process finds itself (online CPUs, F16C/AVX2 flags, memlock limit and CAP_IPC_LOCK,
 * THP mode, O_DIRECT of the path and io_uring, GPUs or "none (sim)") and that the probes leave no
 * file behind; then the text form and a usage error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "gpu/device.h"
#include "nvme/swap.h"
#include "offload/arena.h"
#include "zt.h"

static const char *g_zoff;

static const cJSON *item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) print_error("key \"%s\" missing\n", k);
    assert_non_null(v);
    return v;
}

static void test_json(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("info");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' info --json --path '%s'", g_zoff, dir);
    int code;
    char *out = zt_popen_read(cmd, &code);
    assert_int_equal(code, 0);
    cJSON *r = cJSON_Parse(out);
    if (!r) print_error("not JSON:\n%s\n", out);
    assert_non_null(r);

    assert_string_equal(item(r, "zoff_version")->valuestring, zoff_version());
    const cJSON *cpu = item(r, "cpu"), *isa = item(cpu, "isa");
    assert_int_equal((int)item(cpu, "online_cpus")->valuedouble, zoff__ncpus());
    assert_true(item(cpu, "cores")->valuedouble >= 1);
    assert_int_equal(cJSON_IsTrue(item(isa, "f16c")), __builtin_cpu_supports("f16c") != 0);
    assert_int_equal(cJSON_IsTrue(item(isa, "avx2")), __builtin_cpu_supports("avx2") != 0);

    const cJSON *nodes = item(r, "numa_nodes");
    assert_true(cJSON_GetArraySize(nodes) >= 1);
    assert_true(strlen(item(cJSON_GetArrayItem(nodes, 0), "cpus")->valuestring) > 0);
    assert_true(item(item(r, "memory"), "available_bytes")->valuedouble > 0);

    const cJSON *gpus = item(r, "gpus");
    assert_int_equal(cJSON_IsTrue(item(gpus, "cuda_built")), zdev_cuda_built());
    if (cJSON_GetArraySize(item(gpus, "devices")) == 0)
        assert_memory_equal(item(gpus, "note")->valuestring, "none (sim)", 10);
    assert_true(cJSON_IsArray(item(r, "block_devices")));

    zarena_pin_limits lim;
    assert_int_equal(zarena_pin_limits_get(&lim), 0);
    const cJSON *pin = item(r, "pinning");
    assert_int_equal(cJSON_IsTrue(item(pin, "cap_ipc_lock")), lim.cap_ipc_lock);
    if (lim.memlock_cur != UINT64_MAX)
        assert_true(item(pin, "memlock_soft")->valuedouble == (double)lim.memlock_cur);

    char thp[256] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (fgets(thp, sizeof thp, f)) {
            char *l = strchr(thp, '['), *rb = l ? strchr(l, ']') : NULL;
            if (l && rb) {
                *rb = '\0';
                assert_string_equal(item(item(r, "huge_pages"), "thp_enabled")->valuestring, l + 1);
            }
        }
        fclose(f);
    }

    const cJSON *paths = item(r, "paths");
    assert_int_equal(cJSON_GetArraySize(paths), 1);
    const cJSON *p0 = cJSON_GetArrayItem(paths, 0);
    assert_string_equal(item(p0, "path")->valuestring, dir);
    int odirect = -1, uring = -1;
    assert_int_equal(zswap_probe(dir, &odirect, &uring), 0);
    assert_int_equal(cJSON_IsTrue(item(p0, "odirect")), odirect);
    assert_int_equal(cJSON_IsTrue(item(item(r, "io_uring"), "available")), uring);
    assert_true(item(p0, "free_bytes")->valuedouble > 0);
    print_message("path %s: %s on %s, O_DIRECT %d, io_uring %d\n", dir,
                  item(p0, "fs_type")->valuestring, item(p0, "block_device")->valuestring, odirect,
                  uring);

    cJSON_Delete(r);
    free(out);
    /* The probes left nothing behind in the directory. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    assert_int_equal(entries, 0);
    zt_rmtree(dir);
    free(dir);
}

static void test_text_and_usage(void **state)
{
    (void)state;
    char cmd[2048];
    int code;
    snprintf(cmd, sizeof cmd, "'%s' info", g_zoff);
    char *out = zt_popen_read(cmd, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "NUMA node"));
    assert_non_null(strstr(out, "RLIMIT_MEMLOCK"));
    assert_non_null(strstr(out, "O_DIRECT"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' info --bogus 2>/dev/null", g_zoff);
    out = zt_popen_read(cmd, &code);
    assert_int_equal(code, 2);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc < 2) zt_skip_all("usage: test_topo_info PATH-TO-zoff");
    g_zoff = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_text_and_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
