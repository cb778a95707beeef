/*
 * test_ds_config.c — DeepSpeed configs as users write them (issues #16, #11): every key of
 * DeepSpeed's schema (runtime/ds_schema.tsv, printed from DeepSpeed's own models by
 * scripts/ds_schema.py) either takes effect or is in the one table of ignored keys; ignored keys
 * are accepted with exactly one warning line each, misspellings stay errors, and every error of a
 * file comes back in one message; "auto" takes the trainer's value or zoff's default; the batch
 * keys follow DeepSpeed's rules; each schedule gives the lr values that DeepSpeed's own classes
 * (deepspeed/runtime/lr_schedules.py, 0.19.8) gave for the same parameters, step by step; the
 * runtime applies the schedule per group and zoff_set_group takes a group over; and the C
 * author's first hour: init_master reaches dev_param at finalize, dtype mismatches and shared
 * device buffers are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/half.h"
#include "runtime/config.h"
#include "zt.h"

#ifndef ZOFF_SOURCE_DIR
#error "ZOFF_SOURCE_DIR must be defined"
#endif

/* Counts the WARN lines the config reader logs (ZOFF_DEBUG_FILE would be process-wide; the log
 * goes to a file we read back). */
static char *log_path;

static int count_lines(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    if (!f) return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static void truncate_log(void)
{
    FILE *f = fopen(log_path, "w");
    if (f) fclose(f);
}

static void test_schema_covered(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/runtime/ds_schema.tsv", ZOFF_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int keys = 0, effective = 0, ignored = 0, unknown = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        int s = zoff__config_key_status(line);
        keys++;
        if (s == 1) effective++;
        if (s == 0) ignored++;
        if (s < 0) {
            fprintf(stderr, "DeepSpeed key not known to zoff: %s\n", line);
            unknown++;
        }
    }
    fclose(f);
    fprintf(stderr, "schema: %d keys, %d effective, %d accepted+ignored\n", keys, effective,
            ignored);
    assert_true(keys > 200);
    assert_int_equal(unknown, 0);
    assert_int_equal(zoff__config_key_status("zero_optimization.offload_optimizer.nvme_path"), 1);
    assert_int_equal(zoff__config_key_status("scheduler.params.warmup_num_steps"), 1);
    assert_int_equal(zoff__config_key_status("zero_optimization.stage3_max_live_parameters"), 0);
    assert_int_equal(zoff__config_key_status("zero_optimization.stage3_max_live_parameter"), -1);
}

/* docs/config.md names every ignored key (or the section that holds it). */
static void test_docs_name_every_ignored_key(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/config.md", ZOFF_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char doc[1 << 20];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    int missing = 0;
    for (const zoff__ds_key *k = zoff__ds_keys(); k->path; k++) {
        char pre[200];
        int found = 0;
        snprintf(pre, sizeof pre, "%s", k->path);
        for (;;) { /* the key, or one of its sections */
            char quoted[210];
            snprintf(quoted, sizeof quoted, "`%s`", pre);
            if (strstr(doc, quoted)) {
                found = 1;
                break;
            }
            char *dot = strrchr(pre, '.');
            if (!dot) break;
            *dot = '\0';
        }
        if (!found && strncmp(k->path, "optimizer.params.", 17) == 0) {
            char quoted[80];
            snprintf(quoted, sizeof quoted, "`%s`", k->path + 17);
            found = strstr(doc, quoted) != NULL;
        }
        if (!found) {
            fprintf(stderr, "docs/config.md does not name %s\n", k->path);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

/* A config with many ignored keys: one warning line per key, and the effective ones applied. */
static void test_one_warning_per_ignored_key(void **state)
{
    (void)state;
    const char *json = "{\"steps_per_print\": 10, \"wall_clock_breakdown\": false,\n"
                       " \"prescale_gradients\": false,\n"
                       " \"tensorboard\": {\"enabled\": true, \"output_path\": \"tb\"},\n"
                       " \"wandb\": {\"enabled\": false},\n"
                       " \"activation_checkpointing\": {\"partition_activations\": true},\n"
                       " \"flops_profiler\": {\"enabled\": true, \"profile_step\": 1},\n"
                       " \"zero_optimization\": {\"stage\": 3, \"stage3_max_live_parameters\": "
                       "1e9, \"offload_param\": {\"device\": \"cpu\", \"pin_memory\": true}},\n"
                       " \"gradient_clipping\": 0.5}";
    truncate_log();
    zoff_config c;
    zoff_status st = zoff_config_from_json_string(&c, json);
    if (st) fprintf(stderr, "%s\n", zoff__last_error_tls());
    assert_int_equal(st, ZOFF_OK);
    assert_true(c.gradient_clipping == 0.5f);
    /* steps_per_print, wall_clock_breakdown, prescale_gradients, tensorboard, activation_
     * checkpointing, flops_profiler, stage 3, stage3_max_live_parameters, offload_param = 9
     * (wandb is switched off: INFO only) */
    assert_int_equal(count_lines("is accepted and ignored"), 9);
    assert_int_equal(count_lines("tensorboard (section) is accepted"), 1);
    assert_int_equal(count_lines("tensorboard.output_path"), 0);
    assert_int_equal(count_lines("wandb"), 0);
}

/* Every error of a file in one message, one line each. */
static void test_all_errors_in_one_pass(void **state)
{
    (void)state;
    const char *json = "{\"optimizer\": {\"params\": {\"lr\": \"fast\", \"beta\": [0.9, 0.99]}},\n"
                       " \"zero_optimization\": {\"offload_optimizer\": {\"nvme_paht\": \"/x\"}},\n"
                       " \"fp16\": {\"enabled\": 1},\n"
                       " \"bf16\": {\"enabled\": false},\n"
                       " \"bogus_top\": 3}";
    zoff_config c;
    assert_int_equal(zoff_config_from_json_string(&c, json), ZOFF_ECONFIG);
    const char *m = zoff__last_error_tls();
    fprintf(stderr, "%s\n", m);
    assert_non_null(strstr(m, "optimizer.params.lr: expected"));
    assert_non_null(strstr(m, "optimizer.params.beta: unknown key (did you mean \"betas\"?)"));
    assert_non_null(strstr(m, "nvme_paht: unknown key (did you mean \"nvme_path\"?)"));
    assert_non_null(strstr(m, "fp16.enabled: expected true or false"));
    assert_non_null(strstr(m, "bogus_top: unknown key"));
    int lines = 1;
    for (const char *p = m; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 5);

    /* many errors: every one is in the message */
    char big[2048] = "{";
    for (int i = 0; i < 30; i++) {
        size_t n = strlen(big);
        snprintf(big + n, sizeof big - n, "%s\"unknown_key_%02d\": 1", i ? ", " : "", i);
    }
    strcat(big, "}");
    assert_int_equal(zoff_config_from_json_string(&c, big), ZOFF_ECONFIG);
    m = zoff__last_error_tls();
    assert_non_null(strstr(m, "unknown_key_00: unknown key"));
    assert_true(strstr(m, "unknown_key_29: unknown key") || strstr(m, "more errors"));
    assert_true(strlen(m) < 4096);
}

static void test_auto(void **state)
{
    (void)state;
    const char *json =
        "{\"train_batch_size\": \"auto\", \"train_micro_batch_size_per_gpu\": \"auto\",\n"
        " \"gradient_accumulation_steps\": \"auto\", \"gradient_clipping\": \"auto\",\n"
        " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"auto\", \"betas\": "
        "\"auto\",\n"
        "   \"eps\": \"auto\", \"weight_decay\": \"auto\"}},\n"
        " \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_min_lr\": \"auto\",\n"
        "   \"warmup_max_lr\": \"auto\", \"warmup_num_steps\": \"auto\", \"total_num_steps\": "
        "\"auto\"}},\n"
        " \"bf16\": {\"enabled\": \"auto\"}, \"fp16\": {\"enabled\": \"auto\"},\n"
        " \"zero_optimization\": {\"stage\": 2, \"reduce_bucket_size\": \"auto\"}}";
    zoff_trainer_values tv;
    assert_int_equal(zoff_trainer_values_default(&tv), 0);
    tv.lr = 5e-4;
    tv.beta1 = 0.8;
    tv.beta2 = 0.95;
    tv.weight_decay = 0.05;
    tv.train_micro_batch_size_per_gpu = 4;
    tv.gradient_accumulation_steps = 2;
    tv.total_num_steps = 100;
    tv.warmup_num_steps = 10;
    tv.bf16 = 1;
    truncate_log();
    zoff_config c;
    zoff_status st = zoff_config_from_json_string_with(&c, json, &tv);
    if (st) fprintf(stderr, "%s\n", zoff__last_error_tls());
    assert_int_equal(st, ZOFF_OK);
    assert_true(c.optimizer.lr == 5e-4f);
    assert_true(c.optimizer.beta1 == 0.8f && c.optimizer.beta2 == 0.95f);
    assert_true(c.optimizer.weight_decay == 0.05f);
    assert_true(c.optimizer.eps == 1e-8f); /* not supplied: zoff's default */
    assert_int_equal(c.bf16_enabled, 1);
    assert_int_equal(c.fp16_enabled, 0);
    assert_int_equal(c.train_micro_batch_size_per_gpu, 4);
    assert_int_equal(c.gradient_accumulation_steps, 2);
    assert_int_equal(c.train_batch_size, 8); /* derived as DeepSpeed does */
    assert_int_equal(c.scheduler.type, ZOFF_SCHED_WARMUP_DECAY_LR);
    assert_int_equal(c.scheduler.total_num_steps, 100);
    assert_int_equal(c.scheduler.warmup_num_steps, 10);
    assert_true(c.scheduler.warmup_max_lr == 5e-4);
    assert_int_equal(count_lines("optimizer.params.lr = \"auto\" resolved to 0.0005 (supplied by "
                                 "the trainer)"),
                     1);
    assert_int_equal(count_lines("optimizer.params.eps = \"auto\" resolved to zoff's default"), 1);
    assert_int_equal(count_lines("resolved to"), 15);
    /* reduce_bucket_size takes effect (zoff's gradient buckets): "auto" is zoff's default */
    assert_int_equal(count_lines("reduce_bucket_size = \"auto\" resolved to"), 1);

    /* without trainer values: defaults, and total_num_steps cannot be guessed */
    assert_int_equal(zoff_config_from_json_string(&c, json), ZOFF_ECONFIG);
    assert_non_null(strstr(zoff__last_error_tls(), "total_num_steps"));
}

static void test_batch_rules(void **state)
{
    (void)state;
    zoff_config c;
    assert_int_equal(zoff_config_from_json_string(&c, "{\"train_batch_size\": 32, "
                                                      "\"train_micro_batch_size_per_gpu\": 8}"),
                     0);
    assert_int_equal(c.gradient_accumulation_steps, 4);
    assert_int_equal(zoff_config_from_json_string(&c, "{\"train_batch_size\": 32}"), 0);
    assert_int_equal(c.train_micro_batch_size_per_gpu, 32);
    assert_int_equal(c.gradient_accumulation_steps, 1);
    assert_int_equal(zoff_config_from_json_string(&c, "{\"train_micro_batch_size_per_gpu\": 3, "
                                                      "\"gradient_accumulation_steps\": 5}"),
                     0);
    assert_int_equal(c.train_batch_size, 15);
    zoff_trainer_values tv;
    zoff_trainer_values_default(&tv);
    tv.world_size = 2;
    assert_int_equal(zoff_config_from_json_string_with(
                         &c, "{\"train_batch_size\": 32, \"gradient_accumulation_steps\": 4}", &tv),
                     0);
    assert_int_equal(c.train_micro_batch_size_per_gpu, 4);
    assert_int_equal(zoff_config_from_json_string(&c, "{}"), 0);
    assert_int_equal(c.train_batch_size, 0);
}

/* The lr of updates 1..14, from DeepSpeed 0.19.8's own scheduler classes on a torch.optim.Adam
 * with lr 0.003 (the engine steps the scheduler after every applied update). */
typedef struct sched_case {
    const char *json;
    double lr[14];
    double beta1[14]; /* OneCycle with cycle_momentum; 0: not checked */
} sched_case;

static const sched_case sched_cases[] = {
    {"{\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": 0.0001, \"warmup_max_lr\": 0.002, "
     "\"warmup_num_steps\": 5, \"warmup_type\": \"log\"}}",
     {0.0001, 0.0001, 0.0009182854603394468, 0.0013969517695233723, 0.0017365709206788936, 0.002,
      0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002, 0.002},
     {0}},
    {"{\"type\": \"WarmupLR\", \"params\": {\"warmup_min_lr\": 0, \"warmup_num_steps\": 4, "
     "\"warmup_type\": \"linear\"}}",
     {0.0, 0.0, 0.00075, 0.0015, 0.0022500000000000003, 0.003, 0.003, 0.003, 0.003, 0.003, 0.003,
      0.003, 0.003, 0.003},
     {0}},
    {"{\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 12, \"warmup_min_lr\": 0, "
     "\"warmup_max_lr\": 0.001, \"warmup_num_steps\": 4, \"warmup_type\": \"linear\"}}",
     {0.0, 0.0, 0.00025, 0.0005, 0.00075, 0.001, 0.000875, 0.00075, 0.000625, 0.0005, 0.000375,
      0.00025, 0.000125, 0.0},
     {0}},
    {"{\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": 12, \"warmup_min_ratio\": "
     "0.1, \"warmup_num_steps\": 3, \"cos_min_ratio\": 0.01, \"warmup_type\": \"log\"}}",
     {0.0, 0.00030000000000000003, 0.0020035103346429345, 0.003, 0.002910443541867074,
      0.002652575998031682, 0.0022575, 0.0017728675438353917, 0.0012571324561646085,
      0.0007725000000000004, 0.0003774240019683179, 0.00011955645813292616, 3e-05, 3e-05},
     {0}},
    {"{\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 0.0001, \"cycle_max_lr\": 0.001, "
     "\"cycle_first_step_size\": 3, \"cycle_second_step_size\": 4, \"decay_lr_rate\": 0.5, "
     "\"decay_step_size\": 2, \"cycle_momentum\": true, \"cycle_min_mom\": 0.85, "
     "\"cycle_max_mom\": 0.95, \"decay_mom_rate\": 0.1}}",
     {0.0001, 0.00039999999999999986, 0.0006999999999999998, 0.001, 0.0007750000000000001,
      0.0005499999999999998, 0.0003249999999999999, 0.0001, 8e-05, 6.666666666666667e-05,
      5.714285714285715e-05, 5e-05, 4.4444444444444447e-05, 4e-05},
     {0.85, 0.9166666666666666, 0.8833333333333333, 0.85, 0.875, 0.9, 0.9249999999999999, 0.95,
      0.9974999999999999, 1.045, 1.0924999999999998, 1.14, 1.1875, 1.2349999999999999}},
    {"{\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 0, \"cycle_max_lr\": 0.01, "
     "\"cycle_first_step_size\": 4, \"cycle_first_stair_count\": 2, \"cycle_momentum\": false}}",
     {0.0, 0.0, 0.005, 0.005, 0.01, 0.005, 0.005, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0},
     {0}},
    {"{\"type\": \"LRRangeTest\", \"params\": {\"lr_range_test_min_lr\": 0.0001, "
     "\"lr_range_test_step_size\": 3, \"lr_range_test_step_rate\": 2.0, "
     "\"lr_range_test_staircase\": false}}",
     {0.0001, 0.00016666666666666666, 0.0002333333333333333, 0.00030000000000000003,
      0.00036666666666666667, 0.0004333333333333334, 0.0005, 0.0005666666666666667,
      0.0006333333333333333, 0.0007, 0.0007666666666666667, 0.0008333333333333333,
      0.0009000000000000001, 0.0009666666666666667},
     {0}},
    {"{\"type\": \"LRRangeTest\", \"params\": {\"lr_range_test_min_lr\": 0.0001, "
     "\"lr_range_test_step_size\": 3, \"lr_range_test_step_rate\": 2.0, "
     "\"lr_range_test_staircase\": true}}",
     {0.0001, 0.0001, 0.0001, 0.00030000000000000003, 0.00030000000000000003,
      0.00030000000000000003, 0.0005, 0.0005, 0.0005, 0.0007, 0.0007, 0.0007, 0.0009000000000000001,
      0.0009000000000000001},
     {0}},
};

static void test_schedules_match_deepspeed(void **state)
{
    (void)state;
    for (size_t k = 0; k < ZOFF_ARRAY_SIZE(sched_cases); k++) {
        char json[1024];
        snprintf(json, sizeof json, "{\"scheduler\": %s}", sched_cases[k].json);
        zoff_config c;
        zoff_status st = zoff_config_from_json_string(&c, json);
        if (st) fprintf(stderr, "%s\n", zoff__last_error_tls());
        assert_int_equal(st, ZOFF_OK);
        for (int s = 1; s <= 14; s++) {
            double lr = -1, b1 = 0.9, b2 = 0.999;
            assert_int_equal(zoff_scheduler_lr(&c.scheduler, 0.003, s, &lr, &b1, &b2), 0);
            double want = sched_cases[k].lr[s - 1];
            if (fabs(lr - want) > 1e-12 + 1e-9 * fabs(want)) {
                fprintf(stderr, "case %zu step %d: lr %.17g, DeepSpeed %.17g\n", k, s, lr, want);
                fail();
            }
            double wb = sched_cases[k].beta1[s - 1];
            if (wb != 0 && (fabs(b1 - wb) > 1e-12 || b2 != 0.99)) {
                fprintf(stderr, "case %zu step %d: beta1 %.17g, DeepSpeed %.17g\n", k, s, b1, wb);
                fail();
            }
        }
    }
    double lr;
    assert_int_equal(zoff_scheduler_lr(NULL, 1, 1, &lr, NULL, NULL), ZOFF_EINVAL);
}

/* The runtime computes each group's lr per step; zoff_set_group takes a group over. */
static void test_runtime_follows_schedule(void **state)
{
    (void)state;
    zoff_config c;
    assert_int_equal(
        zoff_config_from_json_string(
            &c, "{\"optimizer\": {\"params\": {\"lr\": 0.003}}, \"bf16\": {\"enabled\": true},"
                "\"scheduler\": {\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": "
                "12, \"warmup_num_steps\": 3, \"warmup_min_ratio\": 0.1}},"
                "\"zoff\": {\"device\": \"sim\", \"sim_gpu_bytes\": \"64M\", \"cpu_threads\": 1}}"),
        0);
    zoff_runtime *rt;
    assert_int_equal(zoff_create(&c, &rt), 0);
    zoff_group_config g1;
    zoff_group_config_default(&g1);
    g1.lr = 0.001f;
    int gid;
    assert_int_equal(zoff_add_group(rt, &g1, &gid), 0);
    void *p[2], *gr[2];
    int id[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(zoff_device_alloc(rt, 64 * 2, &p[i]), 0);
        assert_int_equal(zoff_device_alloc(rt, 64 * 2, &gr[i]), 0);
        memset(gr[i], 0, 128);
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        float init[64];
        for (int e = 0; e < 64; e++) init[e] = 0.01f * (float)e;
        assert_int_equal(
            zoff_add_param(rt, name, 64, ZOFF_DTYPE_BF16, p[i], gr[i], init, i, &id[i]), 0);
    }
    assert_int_equal(zoff_finalize(rt), 0);
    for (int s = 1; s <= 8; s++) {
        zoff_group_config g;
        double want0, want1;
        zoff_scheduler_lr(&c.scheduler, (double)0.003f, s, &want0, NULL, NULL);
        zoff_scheduler_lr(&c.scheduler, (double)0.001f, s, &want1, NULL, NULL);
        assert_int_equal(zoff_get_group(rt, 0, &g), 0);
        assert_true(g.lr == (float)want0);
        assert_int_equal(zoff_get_group(rt, gid, &g), 0);
        if (s <= 4) {
            if (g.lr != (float)want1)
                fprintf(stderr, "step %d: lr %g want %g\n", s, (double)g.lr, want1);
            assert_true(g.lr == (float)want1);
        } else
            assert_true(g.lr == 0.0005f); /* the trainer's value since step 4 */
        if (s == 4) {
            g.lr = 0.0005f;
            assert_int_equal(zoff_set_group(rt, gid, &g), 0);
        }
        for (int i = 0; i < 2; i++) assert_int_equal(zoff_grad_ready(rt, id[i], NULL), 0);
        assert_int_equal(zoff_step(rt, NULL, NULL), 0);
    }
    zoff_destroy(rt);
}

/* init_master reaches the trainer's 16-bit buffer at finalize; dtype and aliasing errors. */
static void test_c_author_first_hour(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    c.sim_gpu_bytes = 16 * ZOFF_MIB;
    c.fp16_enabled = 1;
    zoff_runtime *rt;
    assert_int_equal(zoff_create(&c, &rt), 0);
    enum { N = 1000 };
    void *p, *g, *p2;
    assert_int_equal(zoff_device_alloc(rt, N * 2, &p), 0);
    assert_int_equal(zoff_device_alloc(rt, N * 2, &g), 0);
    assert_int_equal(zoff_device_alloc(rt, N * 2, &p2), 0);
    memset(p, 0xff, N * 2); /* NaN garbage: must be overwritten */
    float init[N];
    for (int i = 0; i < N; i++) init[i] = 0.001f * (float)(i - 500);
    assert_int_equal(zoff_add_param(rt, "w", N, ZOFF_DTYPE_BF16, p, g, init, 0, NULL), ZOFF_EINVAL);
    assert_non_null(strstr(zoff_last_error(rt), "configured for fp16"));
    assert_int_equal(zoff_add_param(rt, "w", N, ZOFF_DTYPE_F16, p, p, init, 0, NULL), ZOFF_EINVAL);
    assert_non_null(strstr(zoff_last_error(rt), "overlap"));
    assert_int_equal(zoff_add_param(rt, "w", N, ZOFF_DTYPE_F16, p, g, init, 0, NULL), 0);
    assert_int_equal(zoff_add_param(rt, "v", N, ZOFF_DTYPE_F16, p2, g, NULL, 0, NULL), ZOFF_EINVAL);
    assert_non_null(strstr(zoff_last_error(rt), "overlaps the dev_grad of 'w'"));
    assert_int_equal(zoff_finalize(rt), 0);
    uint16_t h[N];
    assert_int_equal(zoff_device_download(rt, h, p, sizeof h, NULL), 0);
    for (int i = 0; i < N; i++) assert_int_equal(h[i], zoff_f32_to_f16(init[i]));
    zoff_destroy(rt);

    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    c.sim_gpu_bytes = 16 * ZOFF_MIB;
    assert_int_equal(zoff_create(&c, &rt), 0);
    assert_int_equal(zoff_device_alloc(rt, N * 2, &p), 0);
    assert_int_equal(zoff_device_alloc(rt, N * 2, &g), 0);
    assert_int_equal(zoff_add_param(rt, "w", N, ZOFF_DTYPE_F16, p, g, NULL, 0, NULL), ZOFF_EINVAL);
    assert_non_null(strstr(zoff_last_error(rt), "needs fp16.enabled"));
    zoff_destroy(rt);
}

int main(void)
{
    char *dir = zt_mkdtemp("ds-config");
    static char path[1024];
    snprintf(path, sizeof path, "%s/log.txt", dir);
    log_path = path;
    setenv("ZOFF_DEBUG_FILE", log_path, 1);
    setenv("ZOFF_DEBUG", "WARN", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_covered),
        cmocka_unit_test(test_docs_name_every_ignored_key),
        cmocka_unit_test(test_one_warning_per_ignored_key),
        cmocka_unit_test(test_all_errors_in_one_pass),
        cmocka_unit_test(test_auto),
        cmocka_unit_test(test_batch_rules),
        cmocka_unit_test(test_schedules_match_deepspeed),
        cmocka_unit_test(test_runtime_follows_schedule),
        cmocka_unit_test(test_c_author_first_hour),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zt_rmtree(dir);
    free(dir);
    return rc;
}
