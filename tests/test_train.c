/*
 * test_train.c — end-to-end tests of `zoff train` (tools/cmd_train.c + examples/gpt): they run
 * the `zoff` binary (its path is argv[1], from CTest) on a tiny model and read what it wrote.
 * One executable, several CTest entries chosen by argv[2]:
 *   cli              bad options / values / config keys give a clear message and exit 2, --help
 *                    documents the options, --device cuda is refused, the built-in demo equals
 *                    examples/configs/demo.json, a run stopped with --until reports and saves
 *   loss TIER DTYPE  a short training run (tier cpu|nvme, dtype fp16|bf16): the loss of the last
 *                    steps is clearly below the initial loss, the JSON metrics are complete and
 *                    the step-time breakdown was measured
 *   resume           2N steps in one run vs N steps + checkpoint + resume + N steps: the same
 *                    final loss and bit-identical master weights, Adam moments and 16-bit params
 *   resume_delayed   the same with --overlap delayed, resumed past the warm-up (an update in
 *                    flight: the device one update behind the master) and inside it
 *   sigint           SIGINT to a running `zoff train` finishes the step, writes a checkpoint that
 *                    loads, exits 130, and a resume from it runs to the end
 *   q8               300 steps with q8 (blockwise 8-bit) Adam moments vs the same run (same seed)
 *                    with fp32 moments: the mean loss of the last 20 steps is within 5% of the
 *                    fp32 run's (measured 2026-12-07: 2.573 vs 2.496, +3.1%), and both fell
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "trainer.h"
#include "zoff.h"
#include "zt.h"

static const char *g_zoff;  /* path of the zoff binary */
static const char *g_tier;  /* loss test: cpu | nvme */
static const char *g_dtype; /* loss test: fp16 | bf16 */
static char *g_tmp;         /* scratch directory of this process */

/* The tiny model every run uses (fast: a few ms per step). */
#define TINY "--layers", "2", "--width", "64", "--heads", "4", "--seq-len", "32", "--batch", "8"
static const gpt_config tiny_cfg = {
    .vocab = GPT_VOCAB, .max_seq = 32, .layers = 2, .heads = 4, .width = 64, .tied = 1};

/* ---- running the binary -----------------------------------------------------------------------
 */
typedef struct run_result {
    int status; /* exit code, or 128 + signal */
    char *out;  /* stdout + stderr (owned) */
} run_result;

/* Runs zoff with the NULL-terminated argument list (argv[0] = "train" ...), output to a file. */
static run_result run_zoff(const char *const *args)
{
    char outpath[512];
    static int counter;
    snprintf(outpath, sizeof outpath, "%s/out-%d.txt", g_tmp, counter++);
    run_result r = {.status = zt_run_to_file(g_zoff, args, g_tmp, outpath)};
    r.out = zt_slurp(outpath);
    return r;
}

static void expect_status(run_result *r, int status, const char *needle)
{
    if (r->status != status || (needle && !strstr(r->out, needle)))
        fail_msg("exit %d (expected %d), output%s%s:\n%s", r->status, status,
                 needle ? " should contain " : "", needle ? needle : "", r->out);
}

static cJSON *load_json(const char *path)
{
    char *text = zt_slurp(path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fail_msg("%s: not valid JSON", path);
    return j;
}

static char *tmp_path(const char *name)
{
    char *p = zt_malloc(strlen(g_tmp) + strlen(name) + 2);
    sprintf(p, "%s/%s", g_tmp, name);
    return p;
}

/* ---- cli ----------------------------------------------------------------------------------------
 */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_cli_errors(void **state)
{
    (void)state;
    run_result r;
    r = run_zoff((const char *[]){"train", "--help", NULL});
    expect_status(&r, 0, "--resume DIR");
    assert_non_null(strstr(r.out, "--offload cpu|nvme"));
    assert_non_null(strstr(r.out, "--plot FILE.png"));
    free(r.out);
    r = run_zoff((const char *[]){"train", "--bogus", NULL});
    expect_status(&r, 2, "unknown option '--bogus'");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--steps", "ten", NULL});
    expect_status(&r, 2, "--steps ten: expected an integer");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--steps", NULL});
    expect_status(&r, 2, "needs a value");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--dtype", "fp8", NULL});
    expect_status(&r, 2, "fp16 or bf16");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--offload", "disk", NULL});
    expect_status(&r, 2, "cpu or nvme");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--heads", "5", NULL});
    expect_status(&r, 2, "model.heads");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--until", "9", "--steps", "5", NULL});
    expect_status(&r, 2, "train.until");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--device", "cuda", NULL});
    expect_status(&r, 2, "sim device only");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--config", "/nonexistent/cfg.json", NULL});
    expect_status(&r, 2, "/nonexistent/cfg.json");
    free(r.out);
    r = run_zoff((const char *[]){"train", "--data", "/nonexistent/corpus.txt", TINY, NULL});
    expect_status(&r, 1, "/nonexistent/corpus.txt");
    free(r.out);

    /* config errors name the key: model/train (this trainer) and the zoff part (the runtime) */
    char *cfg = tmp_path("bad-model.json");
    write_file(cfg, "{\"model\": {\"layers\": 2, \"depth\": 3}}");
    r = run_zoff((const char *[]){"train", "--config", cfg, NULL});
    expect_status(&r, 2, "model.depth: unknown key");
    free(r.out);
    write_file(cfg, "{\"train\": {\"batch\": \"eight\"}}");
    r = run_zoff((const char *[]){"train", "--config", cfg, NULL});
    expect_status(&r, 2, "train.batch");
    free(r.out);
    write_file(cfg, "{\"zero_optimization\": {\"offload_optimizer\": {\"devise\": \"nvme\"}}}");
    r = run_zoff((const char *[]){"train", "--config", cfg, NULL});
    expect_status(&r, 2, "devise");
    free(r.out);
    write_file(cfg, "{\"train\": {\"steps\": 3,}");
    r = run_zoff((const char *[]){"train", "--config", cfg, NULL});
    expect_status(&r, 2, cfg);
    free(r.out);
    free(cfg);
}

/* The built-in defaults and examples/configs/demo.json describe the same run. */
static void test_demo_config_file(void **state)
{
    (void)state;
    char err[512];
    gpt_train_opts a, b;
    assert_int_equal(gpt_train_defaults(&a, err, sizeof err), 0);
    assert_int_equal(gpt_train_defaults(&b, err, sizeof err), 0);
    const char *path = ZOFF_SOURCE_DIR "/examples/configs/demo.json";
    int rc = gpt_train_load_config(&b, path, NULL, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_memory_equal(&a.model, &b.model, sizeof a.model);
    assert_int_equal(a.batch, b.batch);
    assert_int_equal(a.steps, b.steps);
    assert_int_equal(a.warmup_steps, b.warmup_steps);
    assert_true(a.min_lr == b.min_lr && a.lr == b.lr);
    assert_int_equal(a.eval_interval, b.eval_interval);
    assert_int_equal(a.ckpt_interval, b.ckpt_interval);
    assert_int_equal(a.seed, b.seed);
    assert_int_equal(a.dtype, b.dtype);
    const zoff_config *za = &a.zcfg, *zb = &b.zcfg;
    assert_memory_equal(&za->optimizer, &zb->optimizer, sizeof za->optimizer);
    assert_int_equal(za->fp16_enabled, zb->fp16_enabled);
    assert_int_equal(za->bf16_enabled, zb->bf16_enabled);
    assert_int_equal(za->initial_scale_power, zb->initial_scale_power);
    assert_int_equal(za->loss_scale_window, zb->loss_scale_window);
    assert_true(za->gradient_clipping == zb->gradient_clipping);
    assert_int_equal(za->tier, zb->tier);
    assert_string_equal(za->nvme_path, zb->nvme_path);
    assert_int_equal(za->buffer_count, zb->buffer_count);
    assert_int_equal(za->aio_block_size, zb->aio_block_size);
    assert_int_equal(za->aio_queue_depth, zb->aio_queue_depth);
    assert_int_equal(za->device, zb->device);
    assert_int_equal(za->sim_gpu_bytes, zb->sim_gpu_bytes);
    assert_true(za->sim_pcie_gbps == zb->sim_pcie_gbps);
    assert_int_equal(za->partition_numel, zb->partition_numel);
    assert_int_equal(za->tile_numel, zb->tile_numel);
    /* and the demo is what the issue asks: a few million parameters whose 16 B/param state does
     * not fit the sim GPU while the 16-bit params + grads do */
    gpt_layout lay;
    assert_int_equal(gpt_layout_init(&lay, &a.model), 0);
    assert_true(lay.param_count > 2000000 && lay.param_count < 10000000);
    assert_true(16.0 * (double)lay.param_count > (double)a.zcfg.sim_gpu_bytes);
    assert_true(4.0 * (double)lay.total_numel < (double)a.zcfg.sim_gpu_bytes);
    assert_int_equal(a.zcfg.tier, ZOFF_TIER_NVME);
    gpt_layout_free(&lay);
}

/* --accum K: K micro-batches per step through zoff's gradient accumulation; bad values refused. */
static void test_accum_flag(void **state)
{
    (void)state;
    char *json = tmp_path("accum.json"), *ckpt = tmp_path("accum-ckpt");
    run_result r = run_zoff((const char *[]){"train", TINY, "--steps", "3", "--accum", "2",
                                             "--offload", "cpu", "--json", json, "--samples", "0",
                                             "--no-progress", "--ckpt-dir", ckpt, NULL});
    expect_status(&r, 0, "== summary");
    free(r.out);
    cJSON *j = load_json(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "steps")), 3);
    cJSON_Delete(j);
    r = run_zoff((const char *[]){"train", TINY, "--accum", "0", NULL});
    expect_status(&r, 2, "--accum");
    free(r.out);
    free(json);
    free(ckpt);
}

/* --until stops early with a checkpoint; --json has one entry per step; --resume past the end is
 * a no-op that says so. */
static void test_until_and_outputs(void **state)
{
    (void)state;
    char *json = tmp_path("until.json"), *ckpt = tmp_path("until-ckpt");
    run_result r = run_zoff((const char *[]){"train", TINY, "--steps", "8", "--until", "3",
                                             "--offload", "cpu", "--ckpt-dir", ckpt, "--json", json,
                                             "--samples", "0", "--no-progress", NULL});
    expect_status(&r, 0, "checkpoint: step 3 saved");
    assert_non_null(strstr(r.out, "== summary"));
    free(r.out);
    cJSON *j = load_json(json);
    const cJSON *steps = cJSON_GetObjectItem(j, "steps");
    assert_int_equal(cJSON_GetArraySize(steps), 3);
    cJSON_Delete(j);
    r = run_zoff((const char *[]){"train", TINY, "--steps", "3", "--offload", "cpu", "--resume",
                                  ckpt, "--samples", "0", NULL});
    expect_status(&r, 0, "nothing to do");
    free(r.out);
    /* a resume with another model is refused with the reason */
    r = run_zoff((const char *[]){"train", "--layers", "3", "--width", "64", "--heads", "4",
                                  "--seq-len", "32", "--batch", "8", "--steps", "8", "--offload",
                                  "cpu", "--resume", ckpt, NULL});
    if (r.status == 0 || !strstr(r.out, "resume"))
        fail_msg("resume with another model: exit %d\n%s", r.status, r.out);
    free(r.out);
    free(json);
    free(ckpt);
}

/* ---- loss ---------------------------------------------------------------------------------------
 */
static void test_loss_falls(void **state)
{
    (void)state;
    char *json = tmp_path("loss.json"), *swap = tmp_path("swap"), *ckpt = tmp_path("loss-ckpt");
    char *plot = tmp_path("loss.png");
    run_result r = run_zoff((const char *[]){"train",
                                             TINY,
                                             "--steps",
                                             "40",
                                             "--warmup",
                                             "4",
                                             "--lr",
                                             "0.003",
                                             "--offload",
                                             g_tier,
                                             "--nvme-path",
                                             swap,
                                             "--dtype",
                                             g_dtype,
                                             "--ckpt-dir",
                                             ckpt,
                                             "--eval-interval",
                                             "20",
                                             "--json",
                                             json,
                                             "--plot",
                                             plot,
                                             "--samples",
                                             "1",
                                             "--sample-chars",
                                             "60",
                                             "--no-progress",
                                             "--log-interval",
                                             "10",
                                             NULL});
    expect_status(&r, 0, "samples");
    printf("%s", r.out);
    free(r.out);
    cJSON *j = load_json(json);
    const cJSON *steps = cJSON_GetObjectItem(j, "steps");
    const cJSON *train = cJSON_GetObjectItem(j, "train");
    assert_string_equal(cJSON_GetObjectItem(train, "tier")->valuestring, g_tier);
    assert_string_equal(cJSON_GetObjectItem(train, "dtype")->valuestring, g_dtype);
    int n = cJSON_GetArraySize(steps);
    assert_int_equal(n, 40);
    double first = cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 0), "loss")->valuedouble;
    double last = 0, compute = 0, zstep = 0;
    int skipped = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(steps, i);
        assert_int_equal(cJSON_GetObjectItem(s, "step")->valueint, i + 1);
        if (i >= n - 5) last += cJSON_GetObjectItem(s, "loss")->valuedouble / 5;
        compute += cJSON_GetObjectItem(s, "compute_ms")->valuedouble;
        zstep += cJSON_GetObjectItem(s, "zoff_step_ms")->valuedouble;
        skipped += cJSON_GetObjectItem(s, "skipped")->valueint;
    }
    printf("loss %.4f -> %.4f (mean of the last 5 steps), %d skipped\n", first, last, skipped);
    /* the initial loss of a uniform guess over 96 tokens is ln 96 = 4.56 */
    assert_true(first > 4.2 && first < 4.9);
    assert_true(last < first - 0.8);
    assert_true(skipped <= 3);
    assert_true(compute > 0 && zstep > 0);
    const cJSON *evals = cJSON_GetObjectItem(j, "eval");
    assert_int_equal(cJSON_GetArraySize(evals), 2);
    double v = cJSON_GetObjectItem(cJSON_GetArrayItem(evals, 1), "val_loss")->valuedouble;
    assert_true(v < first - 0.6);
    cJSON_Delete(j);
    struct stat st;
    if (access("/usr/bin/gnuplot", X_OK) == 0) {
        assert_int_equal(stat(plot, &st), 0);
        assert_true(st.st_size > 1000);
    }
    free(json);
    free(swap);
    free(ckpt);
    free(plot);
}

/* ---- checkpoints --------------------------------------------------------------------------------
 */
/* Loads a checkpoint into a fresh runtime (cpu tier) with the tiny model's parameters and returns
 * masters, moments and the 16-bit parameters as one array; *user receives the trainer state. */
static float *load_state(const char *dir, zoff_dtype dt, size_t *count, char *user, size_t len)
{
    zoff_config cfg;
    assert_int_equal(zoff_config_default(&cfg), ZOFF_OK);
    cfg.device = ZOFF_DEVICE_SIM;
    cfg.fp16_enabled = dt == ZOFF_DTYPE_F16;
    cfg.bf16_enabled = dt == ZOFF_DTYPE_BF16;
    zoff_runtime *rt;
    assert_int_equal(zoff_create(&cfg, &rt), ZOFF_OK);
    gpt_layout lay;
    assert_int_equal(gpt_layout_init(&lay, &tiny_cfg), 0);
    void *p16, *g16;
    size_t n = lay.total_numel;
    assert_int_equal(zoff_device_alloc(rt, n * 2, &p16), ZOFF_OK);
    assert_int_equal(zoff_device_alloc(rt, n * 2, &g16), ZOFF_OK);
    memset(p16, 0, n * 2);
    int g1;
    zoff_group_config g = cfg.optimizer;
    g.weight_decay = 0;
    assert_int_equal(zoff_add_group(rt, &g, &g1), ZOFF_OK);
    int *ids = zt_malloc((size_t)lay.ntensors * sizeof(int));
    for (int i = 0; i < lay.ntensors; i++) {
        const gpt_tensor *t = &lay.tensors[i];
        assert_int_equal(zoff_add_param(rt, t->name, t->numel, dt, (uint16_t *)p16 + t->offset,
                                        (uint16_t *)g16 + t->offset, NULL, t->decay ? 0 : g1,
                                        &ids[i]),
                         ZOFF_OK);
    }
    assert_int_equal(zoff_finalize(rt), ZOFF_OK);
    zoff_status st = zoff_load_with(rt, dir, user, len);
    if (st != ZOFF_OK) fail_msg("load %s: %s", dir, zoff_last_error(rt));
    assert_int_equal(zoff_params_ready(rt, NULL), ZOFF_OK);
    float *out = zt_malloc((3 * lay.param_count + lay.param_count) * sizeof(float));
    size_t k = 0;
    for (int i = 0; i < lay.ntensors; i++) {
        const gpt_tensor *t = &lay.tensors[i];
        assert_int_equal(zoff_get_master(rt, ids[i], out + k), ZOFF_OK);
        assert_int_equal(zoff_get_state(rt, ids[i], out + k + t->numel, out + k + 2 * t->numel),
                         ZOFF_OK);
        k += 3 * t->numel;
        for (size_t e = 0; e < t->numel; e++) /* the 16-bit device copy, widened */
            out[k + e] = dt == ZOFF_DTYPE_F16 ? gpt_f16_to_f32(((uint16_t *)p16)[t->offset + e])
                                              : gpt_bf16_to_f32(((uint16_t *)p16)[t->offset + e]);
        k += t->numel;
    }
    *count = k;
    free(ids);
    zoff_device_free(rt, p16);
    zoff_device_free(rt, g16);
    zoff_destroy(rt);
    gpt_layout_free(&lay);
    return out;
}

static double last_loss(const char *json)
{
    cJSON *j = load_json(json);
    const cJSON *steps = cJSON_GetObjectItem(j, "steps");
    double v = cJSON_GetObjectItem(cJSON_GetArrayItem(steps, cJSON_GetArraySize(steps) - 1), "loss")
                   ->valuedouble;
    cJSON_Delete(j);
    return v;
}

/* 2N steps in one run vs N (`until`) + checkpoint + resume + N, with --overlap `overlap`. */
static void resume_check(const char *overlap, const char *until)
{
    char tag[64], name[96];
#define TMP(var, what)                                                                             \
    snprintf(name, sizeof name, "%s-%s", tag, what);                                               \
    char *var = tmp_path(name)
    snprintf(tag, sizeof tag, "%s-%s", overlap, until);
    TMP(ja, "a.json");
    TMP(jb, "b.json");
    TMP(jb1, "b1.json");
    TMP(ca, "ckpt-a");
    TMP(cb, "ckpt-b");
    TMP(swap, "swap-r");
#undef TMP
    /* fp16 so that the loss scaler's state is part of what must survive the checkpoint */
    run_result r = run_zoff((const char *[]){
        "train",       TINY, "--steps",    "24",    "--dtype",         "fp16", "--offload", "nvme",
        "--nvme-path", swap, "--ckpt-dir", ca,      "--ckpt-interval", "0",    "--json",    ja,
        "--samples",   "0",  "--overlap",  overlap, "--quiet",         NULL});
    expect_status(&r, 0, NULL);
    free(r.out);
    r = run_zoff((const char *[]){"train",      TINY,    "--steps",   "24",   "--until",     until,
                                  "--dtype",    "fp16",  "--offload", "nvme", "--nvme-path", swap,
                                  "--ckpt-dir", cb,      "--json",    jb1,    "--samples",   "0",
                                  "--overlap",  overlap, "--quiet",   NULL});
    expect_status(&r, 0, NULL);
    free(r.out);
    r = run_zoff((const char *[]){
        "train",       TINY,    "--steps",       "24", "--dtype", "fp16", "--offload", "nvme",
        "--nvme-path", swap,    "--resume",      cb,   "--json",  jb,     "--samples", "0",
        "--overlap",   overlap, "--no-progress", NULL});
    expect_status(&r, 0, "resumed from");
    free(r.out);
    double la = last_loss(ja), lb = last_loss(jb);
    printf("--overlap %s, resumed at %s: final loss: one run %.9g, resumed %.9g\n", overlap, until,
           la, lb);
    assert_memory_equal(&la, &lb, sizeof la);
    char ua[4097], ub[4097];
    size_t na, nb;
    float *sa = load_state(ca, ZOFF_DTYPE_F16, &na, ua, sizeof ua);
    float *sb = load_state(cb, ZOFF_DTYPE_F16, &nb, ub, sizeof ub);
    assert_int_equal(na, nb);
    size_t diff = 0;
    for (size_t i = 0; i < na; i++)
        if (memcmp(&sa[i], &sb[i], sizeof(float)) != 0 && diff++ < 5)
            printf("  element %zu: %.9g vs %.9g\n", i, (double)sa[i], (double)sb[i]);
    assert_int_equal(diff, 0);
    /* the trainer state: same step, same data RNG */
    cJSON *a = cJSON_Parse(ua), *b = cJSON_Parse(ub);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(cJSON_GetObjectItem(a, "iter")->valueint, 24);
    assert_int_equal(cJSON_GetObjectItem(b, "iter")->valueint, 24);
    char *ra = cJSON_PrintUnformatted(cJSON_GetObjectItem(a, "rng"));
    char *rb = cJSON_PrintUnformatted(cJSON_GetObjectItem(b, "rng"));
    assert_string_equal(ra, rb);
    free(ra);
    free(rb);
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(sa);
    free(sb);
    free(ja);
    free(jb);
    free(jb1);
    free(ca);
    free(cb);
    free(swap);
}

static void test_resume_bit_identical(void **state)
{
    (void)state;
    resume_check("sync", "12");
}

/* delayed: resumed past the warm-up (an update pending: the device one update behind the master)
 * and inside it */
static void test_resume_delayed_bit_identical(void **state)
{
    (void)state;
    resume_check("delayed", "12");
    resume_check("delayed", "5");
}

/* ---- SIGINT -------------------------------------------------------------------------------------
 */
static void test_sigint_checkpoint(void **state)
{
    (void)state;
    char *ckpt = tmp_path("ckpt-int"), *swap = tmp_path("swap-int");
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    const char *argv[] = {g_zoff,
                          "train",
                          TINY,
                          "--steps",
                          "100000",
                          "--dtype",
                          "fp16",
                          "--offload",
                          "nvme",
                          "--nvme-path",
                          swap,
                          "--ckpt-dir",
                          ckpt,
                          "--ckpt-interval",
                          "0",
                          "--eval-interval",
                          "0",
                          "--no-progress",
                          "--log-interval",
                          "1",
                          NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        if (chdir(g_tmp) != 0) _exit(126);
        execv(g_zoff, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    FILE *in = fdopen(pipefd[0], "r");
    char line[1024], all[65536] = "";
    int steps_seen = 0;
    /* wait until three steps are done, then interrupt in the middle of the run */
    while (fgets(line, sizeof line, in)) {
        strncat(all, line, sizeof all - strlen(all) - 1);
        if (!strncmp(line, "step ", 5) && ++steps_seen == 3) break;
    }
    assert_int_equal(steps_seen, 3);
    assert_int_equal(kill(pid, SIGINT), 0);
    while (fgets(line, sizeof line, in)) strncat(all, line, sizeof all - strlen(all) - 1);
    fclose(in);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 130)
        fail_msg("expected exit 130 after SIGINT, got status 0x%x:\n%s", ws, all);
    assert_non_null(strstr(all, "interrupted (Ctrl-C)"));
    const char *stop = strstr(all, "stopped at step ");
    assert_non_null(stop);
    int stopped = atoi(stop + strlen("stopped at step "));
    assert_true(stopped >= 3 && stopped < 100000);

    /* the checkpoint loads, and holds the step the run reported */
    char user[4097];
    size_t n;
    float *s = load_state(ckpt, ZOFF_DTYPE_F16, &n, user, sizeof user);
    cJSON *u = cJSON_Parse(user);
    assert_non_null(u);
    assert_int_equal(cJSON_GetObjectItem(u, "iter")->valueint, stopped);
    cJSON_Delete(u);
    size_t finite = 0;
    for (size_t i = 0; i < n; i++) finite += isfinite(s[i]) != 0;
    assert_int_equal(finite, n);
    free(s);

    /* and training continues from it to the end */
    char steps[32];
    snprintf(steps, sizeof steps, "%d", stopped + 2);
    run_result r = run_zoff((const char *[]){"train", TINY, "--steps", steps, "--dtype", "fp16",
                                             "--offload", "nvme", "--nvme-path", swap, "--resume",
                                             ckpt, "--samples", "0", "--no-progress", NULL});
    expect_status(&r, 0, "resumed from");
    free(r.out);
    free(ckpt);
    free(swap);
}

/* ---- compact optimizer state --------------------------------------------------------------- */
static double tail_loss(const char *json, int last_n, double *first)
{
    cJSON *j = load_json(json);
    const cJSON *steps = cJSON_GetObjectItem(j, "steps");
    const int n = cJSON_GetArraySize(steps);
    double sum = 0;
    for (int i = n - last_n; i < n; i++)
        sum += cJSON_GetObjectItem(cJSON_GetArrayItem(steps, i), "loss")->valuedouble;
    *first = cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 0), "loss")->valuedouble;
    cJSON_Delete(j);
    return sum / last_n;
}

static void test_q8_loss_margin(void **state)
{
    (void)state;
    double tail[2], first[2];
    static const char *const fmts[2] = {"fp32", "q8"};
    for (int k = 0; k < 2; k++) {
        char name[32];
        snprintf(name, sizeof name, "q8-%s.json", fmts[k]);
        char *json = tmp_path(name), *ckpt = tmp_path(fmts[k]);
        run_result r = run_zoff((const char *[]){
            "train",      TINY,    "--steps",         "300",     "--warmup", "10",
            "--lr",       "0.003", "--seed",          "1",       "--state",  fmts[k],
            "--ckpt-dir", ckpt,    "--eval-interval", "0",       "--json",   json,
            "--samples",  "0",     "--no-progress",   "--quiet", NULL});
        expect_status(&r, 0, NULL);
        free(r.out);
        tail[k] = tail_loss(json, 20, &first[k]);
        free(json);
        free(ckpt);
    }
    printf("300 steps: fp32 moments %.4f, q8 moments %.4f (%+.1f%%), from %.4f\n", tail[0], tail[1],
           100.0 * (tail[1] - tail[0]) / tail[0], first[0]);
    assert_true(first[0] == first[1]); /* same seed, same first batch and weights */
    assert_true(tail[0] < first[0] - 1.0 && tail[1] < first[1] - 1.0);
    assert_true(fabs(tail[1] - tail[0]) <= 0.05 * tail[0]);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ZOFF_BINARY cli|loss TIER DTYPE|resume|resume_delayed|sigint\n",
                argv[0]);
        return 2;
    }
    g_zoff = argv[1];
    if (access(g_zoff, X_OK) != 0) zt_skip_all("%s: the zoff binary is not built", g_zoff);
    g_tmp = zt_mkdtemp("train");
    int rc;
    if (!strcmp(argv[2], "cli")) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cli_errors),
            cmocka_unit_test(test_demo_config_file),
            cmocka_unit_test(test_until_and_outputs),
            cmocka_unit_test(test_accum_flag),
        };
        rc = cmocka_run_group_tests_name("train_cli", tests, NULL, NULL);
    } else if (!strcmp(argv[2], "loss") && argc >= 5) {
        g_tier = argv[3];
        g_dtype = argv[4];
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_loss_falls)};
        rc = cmocka_run_group_tests_name("train_loss", tests, NULL, NULL);
    } else if (!strcmp(argv[2], "resume")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_resume_bit_identical)};
        rc = cmocka_run_group_tests_name("train_resume", tests, NULL, NULL);
    } else if (!strcmp(argv[2], "q8")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_q8_loss_margin)};
        rc = cmocka_run_group_tests_name("train_q8", tests, NULL, NULL);
    } else if (!strcmp(argv[2], "resume_delayed")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_resume_delayed_bit_identical)};
        rc = cmocka_run_group_tests_name("train_resume_delayed", tests, NULL, NULL);
    } else if (!strcmp(argv[2], "sigint")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_sigint_checkpoint)};
        rc = cmocka_run_group_tests_name("train_sigint", tests, NULL, NULL);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[2]);
        rc = 2;
    }
    if (rc == 0) zt_rmtree(g_tmp);
    free(g_tmp);
    return rc;
}
