/*
 * test_cli_trust.c — the `zoff` binary (argv[1]) on hostile and absurd input (issue #11 "Crashes
 * and wrong answers", #16 `zoff plan`): each case runs one command line, checks its exit status
 * (0 ok, 1 failure / does not fit, 2 bad input) and that its output holds (or lacks) a phrase.
 *  - plan: 2^62 parameters do not fit (no 64-bit wrap-around to "fits"); 1e15, 7B (decimal) and
 *    7G (binary) are counts; --dtype bf16 halves the GPU bytes; --gpu-mem plans for another GPU;
 *    bad numbers, dtypes, ratios and config files exit 2; advice names CLI flags; the swap check
 *    reports the real need (no per-path padding), a read-only swap dir as read-only (not as
 *    lack of space) and leaves a ramfs (no block counts) to the buffered fallback.
 *  - threads: `bench adam --threads 100000` exits 2 naming the range; OMP_NUM_THREADS=100000
 *    `zoff train` runs (clamped, warned) instead of crashing; a bad ZOFF_CPU_THREADS exits 2.
 *  - messages: `--data DIR` says it is a directory (not "out of memory for 2^63 bytes"); no
 *    doubled "zoff_finalize: zoff_finalize:"; config-file errors name the file, not "json
 *    string"; a --config with only a "zoff" section says which defaults replace the demo's.
 *  - non-finite numbers: zoff_save_with refuses a NaN in the trainer's JSON saying JSON has no
 *    NaN and that the previous checkpoint is unchanged.
 *  - lost work: `zoff train` checks its checkpoint directory before step 1 (zoff_checkpoint_check)
 *    and stops at once, naming it, when it is not a checkpoint, read-only, or locked by another
 *    run (the lock file next to it, held here by this test process).
 * Cases that need to mount a filesystem are skipped where mount(8) is refused.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zoff.h"
#include "zt.h"

static const char *g_zoff;

static const char *g_env = ""; /* "VAR=value ..." put before the next commands */

/* Runs `zoff <args>` with stderr folded into stdout; returns the output (caller frees). */
static char *run(const char *args, int *code)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env %s '%s' %s 2>&1", g_env, g_zoff, args);
    return zt_popen_read(cmd, code);
}

/* Expects exit status `code` and, when given, `has` in the output and `lacks` not in it. */
static void expect(const char *args, int code, const char *has, const char *lacks)
{
    int got;
    char *out = run(args, &got);
    int ok = got == code && (!has || strstr(out, has)) && (!lacks || !strstr(out, lacks));
    if (!ok)
        print_error("zoff %s\n  exit %d (want %d), output:\n%s\n  want \"%s\"%s%s%s\n", args, got,
                    code, out, has ? has : "", lacks ? ", not \"" : "", lacks ? lacks : "",
                    lacks ? "\"" : "");
    free(out);
    assert_true(ok);
}

static void test_plan_numbers(void **state)
{
    (void)state;
    expect("plan --params 4611686018427387904", 1, "does not fit", "\nfits");
    expect("plan --params 18446744073709551615 --json", 1, "\"fits\": false", NULL);
    expect("plan --params 18446744073709551616", 2, "not a count", NULL);
    expect("plan --params 1e15", 1, "1000000000000000 parameters", NULL);
    expect("plan --params 7B --json", 1, "\"params\": 7000000000,", NULL);
    expect("plan --params 1.5B --json", 1, "\"params\": 1500000000,", NULL);
    expect("plan --params 7G --json", 1, "\"params\": 7516192768,", NULL);
    expect("plan --params 0.5", 2, "not a count", NULL);
    expect("plan --params -5", 2, "not a count", NULL);
    expect("plan --params 0", 2, "at least 1", NULL);
    expect("plan --params lots", 2, "not a count", NULL);
    expect("plan", 2, "--params N is required", NULL);
    expect("plan --params 1M --bogus", 2, "unknown argument", NULL);
}

static void test_plan_dtype_gpu(void **state)
{
    (void)state;
    /* 1 Mi params: fp32 params + grads = 8 MiB on the device, bf16 4 MiB */
    /* 4 B/param (fp32) or 2 (bf16) + 4 gradient buckets of 1M / 4 elements (a small model's
     * buckets hold no more than its gradients) */
    expect("plan --params 1M --json", 0, "\"gpu_bytes\": 8388608,", NULL);
    expect("plan --params 1M --dtype bf16 --json", 0, "\"gpu_bytes\": 4194304,", NULL);
    expect("plan --params 1M --dtype bf16 --json", 0, "\"gpu_bytes_per_param\": 4.0000,", NULL);
    expect("plan --gpu-mem 32G --dtype bf16", 0, "the largest model for a GPU of 32.00 GiB", NULL);
    expect("plan --gpu-mem 32G --dtype bf16 --json", 0, "\"gpu_bound_params\": 17175674880,", NULL);
    expect("plan --params 1M --dtype fp16 --json", 0, "\"dtype\": \"fp16\"", NULL);
    expect("plan --params 1M --dtype int8", 2, "--dtype must be", NULL);
    expect("plan --params 1M --gpu-mem 80G --json", 0, "\"gpu_available\": 85899345920,", NULL);
    expect("plan --params 1M --gpu-mem 80G", 0, "(--gpu-mem)", NULL);
    expect("plan --params 1M --gpu-mem 1M", 1, "--gpu-mem", NULL);
    expect("plan --params 1M --gpu-mem nope", 2, "bad --gpu-mem", NULL);
    expect("plan --params 1M --ratio 2", 2, "--ratio must be", NULL);
    expect("plan --params 1M --ratio x", 2, "--ratio must be", NULL);
    expect("plan --params 1M --tier disk", 2, "--tier must be", NULL);
    expect("plan --params 1M --config /nonexistent/cfg.json", 2, "/nonexistent/cfg.json", NULL);
    /* the advice names the flag beside the JSON key */
    expect("plan --params 1T --gpu-mem 80T", 1, "offload_optimizer.device (--tier)", NULL);
}

static int try_mount(const char *opts, const char *type, const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mount -t %s -o %s none '%s' 2>/dev/null", type, opts, dir);
    return system(cmd) == 0;
}

static void unmount(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "umount '%s' 2>/dev/null", dir);
    if (system(cmd) != 0) print_message("umount %s failed\n", dir);
}

static void test_plan_swap_space(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("plan-swap");
    char args[2048];
    /* 1 Mi params on swap need 12 MiB (4 KiB rounded per partition), not 12 + 16 MiB */
    char *small = NULL;
    if (asprintf(&small, "%s/small", dir) < 0) fail();
    assert_int_equal(mkdir(small, 0755), 0);
    if (try_mount("size=20m", "tmpfs", small)) {
        snprintf(args, sizeof args, "plan --params 1M --tier nvme --nvme-path '%s' --json", small);
        expect(args, 0, "\"nvme_bytes\": 12582912,", NULL);
        snprintf(args, sizeof args, "plan --params 2M --tier nvme --nvme-path '%s'", small);
        expect(args, 1, "24.00 MiB needed", "40.00 MiB");
        unmount(small);
    } else {
        print_message("mount refused: space cases skipped\n");
    }
    char *ro = NULL;
    if (asprintf(&ro, "%s/ro", dir) < 0) fail();
    assert_int_equal(mkdir(ro, 0755), 0);
    if (try_mount("ro,size=1m", "tmpfs", ro)) {
        snprintf(args, sizeof args, "plan --params 1M --tier nvme --nvme-path '%s'", ro);
        expect(args, 1, "read-only", "free disk space");
        unmount(ro);
    }
    char *ram = NULL;
    if (asprintf(&ram, "%s/ram", dir) < 0) fail();
    assert_int_equal(mkdir(ram, 0755), 0);
    if (try_mount("defaults", "ramfs", ram)) {
        snprintf(args, sizeof args, "plan --params 1M --tier nvme --nvme-path '%s'", ram);
        expect(args, 0, "fits", NULL);
        unmount(ram);
    }
    free(small);
    free(ro);
    free(ram);
    zt_rmtree(dir);
    free(dir);
}

#define TINY "train --layers 1 --width 32 --heads 2 --seq-len 16 --batch 2 --steps 2 --quiet "

static void test_threads(void **state)
{
    (void)state;
    int bench_code;
    char *bench_out = run("bench adam --help", &bench_code);
    int have_bench = !strstr(bench_out, "not part of this build");
    free(bench_out);
    if (have_bench) { /* a build with -DZOFF_BUILD_BENCH=OFF (the sanitizer build) has no bench */
        expect("bench adam --threads 100000", 2, "--threads must be in [1, 1024]", NULL);
        expect("bench adam --threads 0", 2, "--threads must be", NULL);
    }
    char *dir = zt_mkdtemp("cli-threads");
    char args[2048];
    snprintf(args, sizeof args, TINY "--offload cpu --ckpt-dir '%s/ck'", dir);
    g_env = "OMP_NUM_THREADS=100000";
    expect(args, 0, "the model uses", NULL);
    g_env = "ZOFF_CPU_THREADS=abc";
    expect(args, 2, "ZOFF_CPU_THREADS", NULL);
    g_env = "ZOFF_CPU_THREADS=100000";
    expect(args, 2, "[0, 1024]", NULL);
    g_env = "";
    zt_rmtree(dir);
    free(dir);
}

static void test_messages(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("cli-msg");
    char args[2048];
    snprintf(args, sizeof args, TINY "--offload cpu --data '%s' --ckpt-dir '%s/ck'", dir, dir);
    expect(args, 1, "is a directory", "out of memory");
    /* zoff_finalize refuses an unwritable swap path (/proc/sys): named once */
    snprintf(args, sizeof args, TINY "--offload nvme --nvme-path /proc/sys --ckpt-dir '%s/ck'",
             dir);
    expect(args, 1, "zoff_finalize: swap path /proc/sys", "zoff_finalize: zoff_finalize");
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/bad.json", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("{\"zoff\": {\"devic\": \"sim\"}}\n", f);
    fclose(f);
    snprintf(args, sizeof args, "train --config '%s'", cfg);
    expect(args, 2, "bad.json: zoff.devic", "json string");
    snprintf(cfg, sizeof cfg, "%s/zoff-only.json", dir);
    f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("{\"zoff\": {\"device\": \"sim\"}}\n", f);
    fclose(f);
    snprintf(args, sizeof args, TINY "--config '%s' --offload cpu --ckpt-dir '%s/ck2'", cfg, dir);
    expect(args, 0, "has no optimizer, fp16/bf16, zero_optimization section", NULL);
    zt_rmtree(dir);
    free(dir);
}

/* A trainer's JSON with a NaN (printf "%g" of a diverged loss) is refused with the reason. */
static void test_nonfinite_user_json(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    float init[64] = {0};
    void *p = NULL, *g = NULL;
    assert_int_equal(zoff_device_alloc(rt, sizeof init, &p), 0);
    assert_int_equal(zoff_device_alloc(rt, sizeof init, &g), 0);
    int id;
    assert_int_equal(zoff_add_param(rt, "w", 64, ZOFF_DTYPE_F32, p, g, init, 0, &id), 0);
    assert_int_equal(zoff_finalize(rt), 0);
    char *dir = zt_mkdtemp("cli-nan");
    char ck[1100];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    assert_int_equal(zoff_save_with(rt, ck, "{\"last_loss\": nan}"), ZOFF_EINVAL);
    const char *m = zoff_last_error(rt);
    print_message("%s\n", m);
    assert_non_null(strstr(m, "no NaN"));
    assert_non_null(strstr(m, "unchanged"));
    assert_int_equal(zoff_save_with(rt, ck, "{\"last_loss\": null}"), 0);
    /* a failed save over a checkpoint: training state and that checkpoint stay, and it says so */
    assert_int_equal(zoff_save_with(rt, ck, "{\"last_loss\": inf}"), ZOFF_EINVAL);
    assert_non_null(strstr(zoff_last_error(rt), "previous checkpoint"));
    assert_non_null(strstr(zoff_last_error(rt), "is still valid"));
    assert_int_equal(zoff_load(rt, ck), 0);
    zoff_destroy(rt);
    zt_rmtree(dir);
    free(dir);
}

static void test_ckpt_target(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("cli-ckpt");
    char args[2048], p[1200];
    /* not a checkpoint: refused before training */
    snprintf(p, sizeof p, "%s/notck", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/notck/mine.txt", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(args, sizeof args, TINY "--offload cpu --ckpt-dir '%s/notck'", dir);
    expect(args, 1, "is not a zoff checkpoint", "steps, loss");
    /* another run's lock */
    snprintf(p, sizeof p, "%s/.ck.zoff-lock", dir);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "4242\n", 5), 5);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    snprintf(args, sizeof args, TINY "--offload cpu --ckpt-dir '%s/ck'", dir);
    expect(args, 1, "another run (pid 4242)", "steps, loss");
    close(fd);
    expect(args, 0, "steps, loss", NULL);
    /* a read-only parent */
    snprintf(p, sizeof p, "%s/ro", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    if (try_mount("ro,size=1m", "tmpfs", p)) {
        snprintf(args, sizeof args, TINY "--offload cpu --ckpt-dir '%s/ro/ck'", dir);
        expect(args, 1, "read-only", "steps, loss");
        unmount(p);
    }
    zt_rmtree(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ZOFF_BINARY\n", argv[0]);
        return 2;
    }
    g_zoff = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_numbers),    cmocka_unit_test(test_plan_dtype_gpu),
        cmocka_unit_test(test_plan_swap_space), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_messages),        cmocka_unit_test(test_nonfinite_user_json),
        cmocka_unit_test(test_ckpt_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
