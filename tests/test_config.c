/*
 * test_config.c — runtime/config.c: the documented defaults; a full DeepSpeed-style config
 * (every section, ignored trainer keys, reserved "model"/"train" sections, nvme_path as an
 * array, size strings) parses into the expected fields; Adam vs AdamW mode rules; every kind of
 * error (unknown key at depth with a suggestion, wrong type, out of range, fp16+bf16, nvme
 * without path, buffer_count < 3, duplicate key, syntax error, conflicting keys, ...) returns
 * ZOFF_ECONFIG with the full key path in the message and leaves the config untouched; file
 * errors return -errno naming the path; ZOFF_* environment overrides and their errors; and the
 * zoff__config_to_json -> zoff__config_parse round trip of a config with every field changed.
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/config.h"
#include "zt.h"

static const char *last_error(void)
{
    return zoff__last_error_tls();
}

/* Field-by-field equality (strings compared as strings). */
static void assert_config_equal(const zoff_config *a, const zoff_config *b)
{
    assert_int_equal(a->struct_size, b->struct_size);
    assert_memory_equal(&a->optimizer, &b->optimizer, sizeof a->optimizer);
    assert_int_equal(a->fp16_enabled, b->fp16_enabled);
    assert_true(a->loss_scale == b->loss_scale);
    assert_int_equal(a->initial_scale_power, b->initial_scale_power);
    assert_int_equal(a->loss_scale_window, b->loss_scale_window);
    assert_int_equal(a->hysteresis, b->hysteresis);
    assert_true(a->min_loss_scale == b->min_loss_scale);
    assert_int_equal(a->bf16_enabled, b->bf16_enabled);
    assert_true(a->gradient_clipping == b->gradient_clipping);
    assert_int_equal(a->tier, b->tier);
    assert_string_equal(a->nvme_path, b->nvme_path);
    assert_int_equal(a->pin_memory, b->pin_memory);
    assert_int_equal(a->buffer_count, b->buffer_count);
    assert_true(a->ratio == b->ratio);
    assert_int_equal(a->partition_numel, b->partition_numel);
    assert_int_equal(a->tile_numel, b->tile_numel);
    assert_int_equal(a->numa_node, b->numa_node);
    assert_int_equal(a->aio_block_size, b->aio_block_size);
    assert_int_equal(a->aio_queue_depth, b->aio_queue_depth);
    assert_int_equal(a->aio_engine, b->aio_engine);
    assert_int_equal(a->aio_odirect, b->aio_odirect);
    assert_int_equal(a->verify_crc, b->verify_crc);
    assert_int_equal(a->overlap, b->overlap);
    assert_int_equal(a->delayed_warmup_steps, b->delayed_warmup_steps);
    assert_int_equal(a->cpu_threads, b->cpu_threads);
    assert_string_equal(a->cpu_isa, b->cpu_isa);
    assert_int_equal(a->device, b->device);
    assert_int_equal(a->cuda_device, b->cuda_device);
    assert_int_equal(a->sim_gpu_bytes, b->sim_gpu_bytes);
    assert_true(a->sim_pcie_gbps == b->sim_pcie_gbps);
    assert_true(a->sim_jitter_seed == b->sim_jitter_seed);
    assert_string_equal(a->trace_path, b->trace_path);
    assert_int_equal(a->min_scale_overflow_limit, b->min_scale_overflow_limit);
    assert_int_equal(a->grad_bucket_numel, b->grad_bucket_numel);
    assert_int_equal(a->grad_bucket_count, b->grad_bucket_count);
    assert_int_equal(a->grad_bucket_grow, b->grad_bucket_grow);
}

static void test_defaults(void **state)
{
    (void)state;
    zoff_config c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(zoff_config_default(&c), ZOFF_OK);
    assert_int_equal(c.struct_size, sizeof c);
    assert_true(c.optimizer.lr == 1e-3f);
    assert_true(c.optimizer.beta1 == 0.9f && c.optimizer.beta2 == 0.999f);
    assert_true(c.optimizer.eps == 1e-8f && c.optimizer.weight_decay == 0.01f);
    assert_int_equal(c.optimizer.adamw_mode, 1);
    assert_int_equal(c.optimizer.bias_correction, 1);
    assert_int_equal(c.fp16_enabled, 0);
    assert_true(c.loss_scale == 0.0f);
    assert_int_equal(c.initial_scale_power, 16);
    assert_int_equal(c.loss_scale_window, 1000);
    assert_int_equal(c.hysteresis, 2);
    assert_true(c.min_loss_scale == 1.0f);
    assert_int_equal(c.bf16_enabled, 0);
    assert_true(c.gradient_clipping == 0.0f);
    assert_int_equal(c.tier, ZOFF_TIER_CPU);
    assert_string_equal(c.nvme_path, "");
    assert_int_equal(c.pin_memory, 1);
    assert_int_equal(c.buffer_count, 4);
    assert_true(c.ratio == 0.0f);
    assert_int_equal(c.partition_numel, 16u << 20);
    assert_int_equal(c.tile_numel, 1u << 20);
    assert_int_equal(c.numa_node, -1);
    assert_int_equal(c.aio_block_size, 8u << 20);
    assert_int_equal(c.aio_queue_depth, 32);
    assert_int_equal(c.aio_engine, ZOFF_AIO_AUTO);
    assert_int_equal(c.aio_odirect, -1);
    assert_int_equal(c.verify_crc, 1); /* on by default (issue #11) */
    assert_int_equal(c.overlap, ZOFF_OVERLAP_SYNC);
    assert_int_equal(c.delayed_warmup_steps, 10);
    assert_int_equal(c.cpu_threads, 0);
    assert_string_equal(c.cpu_isa, "");
    assert_int_equal(c.device, ZOFF_DEVICE_AUTO);
    assert_int_equal(c.cuda_device, 0);
    assert_int_equal(c.sim_gpu_bytes, 1u << 30);
    assert_true(c.sim_pcie_gbps == 25.0);
    assert_true(c.sim_jitter_seed == 0);
    assert_string_equal(c.trace_path, "");
    assert_int_equal(zoff__config_validate(&c), ZOFF_OK);

    zoff_group_config g;
    assert_int_equal(zoff_group_config_default(&g), ZOFF_OK);
    assert_memory_equal(&g, &c.optimizer, sizeof g);
    assert_int_equal(zoff_config_default(NULL), ZOFF_EINVAL);
    assert_int_equal(zoff_group_config_default(NULL), ZOFF_EINVAL);

    /* An empty text means the defaults. */
    zoff_config e;
    assert_int_equal(zoff_config_from_json_string(&e, "  \n"), ZOFF_OK);
    assert_config_equal(&e, &c);
    assert_int_equal(zoff_config_from_json_string(&e, "{}"), ZOFF_OK);
    assert_config_equal(&e, &c);
    assert_int_equal(zoff_config_from_json_string(&e, NULL), ZOFF_EINVAL);
}

static const char *full_config =
    "{\n"
    "  \"train_batch_size\": 32,\n"
    "  \"train_micro_batch_size_per_gpu\": 4,\n"
    "  \"gradient_accumulation_steps\": 8,\n"
    "  \"steps_per_print\": 10,\n"
    "  \"wall_clock_breakdown\": false,\n"
    "  \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 3e-4, \"betas\": [0.8, 0.95],\n"
    "      \"eps\": 1e-6, \"weight_decay\": 0.1, \"bias_correction\": false, \"torch_adam\": "
    "false}},\n"
    "  \"fp16\": {\"enabled\": true, \"loss_scale\": 0, \"initial_scale_power\": 12,\n"
    "      \"loss_scale_window\": 500, \"hysteresis\": 3, \"min_loss_scale\": 0.5},\n"
    "  \"bf16\": {\"enabled\": false},\n"
    "  \"gradient_clipping\": 1.0,\n"
    "  \"zero_optimization\": {\n"
    "    \"stage\": 2, \"contiguous_gradients\": true, \"overlap_comm\": true,\n"
    "    \"reduce_bucket_size\": 5e8, \"allgather_bucket_size\": 5e8,\n"
    "    \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": [\"/mnt/a\", \"/mnt/b\"],\n"
    "        \"pin_memory\": false, \"buffer_count\": 5, \"ratio\": 0.25, \"fast_init\": false,\n"
    "        \"pipeline_read\": true, \"pipeline_write\": true},\n"
    "    \"offload_param\": {\"device\": \"none\"}\n"
    "  },\n"
    "  \"aio\": {\"block_size\": 4194304, \"queue_depth\": 16, \"thread_count\": 1,\n"
    "      \"single_submit\": false, \"overlap_events\": true, \"use_gds\": false},\n"
    "  \"zoff\": {\"partition_numel\": \"4M\", \"tile_numel\": 65536, \"overlap\": \"delayed\",\n"
    "      \"delayed_warmup_steps\": 3, \"cpu_threads\": 2, \"cpu_isa\": \"avx2\",\n"
    "      \"numa_node\": 0, \"device\": \"sim\", \"cuda_device\": 1, \"sim_gpu_bytes\": \"2G\",\n"
    "      \"sim_pcie_gbps\": 12.5, \"sim_jitter_seed\": 42, \"aio_engine\": \"threads\",\n"
    "      \"aio_odirect\": true, \"verify_crc\": false, \"trace_path\": \"/tmp/t.json\"},\n"
    "  \"model\": {\"n_layer\": 12, \"anything\": [1, {\"goes\": null}]},\n"
    "  \"train\": {\"steps\": 100}\n"
    "}\n";

static void test_full_deepspeed(void **state)
{
    (void)state;
    zoff_config c;
    zoff_status st = zoff_config_from_json_string(&c, full_config);
    if (st) fprintf(stderr, "%s\n", last_error());
    assert_int_equal(st, ZOFF_OK);
    assert_true(c.optimizer.lr == 3e-4f);
    assert_true(c.optimizer.beta1 == 0.8f && c.optimizer.beta2 == 0.95f);
    assert_true(c.optimizer.eps == 1e-6f && c.optimizer.weight_decay == 0.1f);
    assert_int_equal(c.optimizer.bias_correction, 0);
    assert_int_equal(c.optimizer.adamw_mode, 1);
    assert_int_equal(c.fp16_enabled, 1);
    assert_int_equal(c.initial_scale_power, 12);
    assert_int_equal(c.loss_scale_window, 500);
    assert_int_equal(c.hysteresis, 3);
    assert_true(c.min_loss_scale == 0.5f);
    assert_true(c.gradient_clipping == 1.0f);
    assert_int_equal(c.tier, ZOFF_TIER_NVME);
    assert_string_equal(c.nvme_path, "/mnt/a,/mnt/b");
    assert_int_equal(c.pin_memory, 0);
    assert_int_equal(c.buffer_count, 5);
    assert_true(c.ratio == 0.25f);
    assert_int_equal(c.aio_block_size, 4u << 20);
    assert_int_equal(c.aio_queue_depth, 16);
    assert_int_equal(c.partition_numel, 4u << 20);
    assert_int_equal(c.tile_numel, 65536);
    assert_int_equal(c.overlap, ZOFF_OVERLAP_DELAYED);
    assert_int_equal(c.delayed_warmup_steps, 3);
    assert_int_equal(c.cpu_threads, 2);
    assert_string_equal(c.cpu_isa, "avx2");
    assert_int_equal(c.numa_node, 0);
    assert_int_equal(c.device, ZOFF_DEVICE_SIM);
    assert_int_equal(c.cuda_device, 1);
    assert_int_equal(c.sim_gpu_bytes, 2ull << 30);
    assert_true(c.sim_pcie_gbps == 12.5);
    assert_true(c.sim_jitter_seed == 42);
    assert_int_equal(c.aio_engine, ZOFF_AIO_THREADS);
    assert_int_equal(c.aio_odirect, 1);
    assert_int_equal(c.verify_crc, 0); /* off only when asked */
    assert_string_equal(c.trace_path, "/tmp/t.json");

    /* The same from a file. */
    char *dir = zt_mkdtemp("config");
    char path[512];
    snprintf(path, sizeof path, "%s/ds.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(full_config, f);
    fclose(f);
    zoff_config d;
    assert_int_equal(zoff_config_from_json(&d, path), ZOFF_OK);
    assert_config_equal(&c, &d);
    zt_rmtree(dir);
    free(dir);
}

static void test_adam_modes(void **state)
{
    (void)state;
    zoff_config c;
    /* DeepSpeed semantics: "Adam" runs AdamW unless adam_w_mode is false */
    assert_int_equal(zoff_config_from_json_string(&c, "{\"optimizer\": {\"type\": \"Adam\"}}"), 0);
    assert_int_equal(c.optimizer.adamw_mode, 1);
    assert_string_equal(zoff_optimizer_name(&c.optimizer), "AdamW");
    assert_int_equal(
        zoff_config_from_json_string(
            &c, "{\"optimizer\": {\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false}}}"),
        0);
    assert_int_equal(c.optimizer.adamw_mode, 0); /* torch.optim.Adam: L2 */
    assert_string_equal(zoff_optimizer_name(&c.optimizer), "Adam (L2 weight decay)");
    /* "AdamW" stays AdamW whatever adam_w_mode says (warned) */
    assert_int_equal(
        zoff_config_from_json_string(
            &c, "{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"adam_w_mode\": false}}}"),
        0);
    assert_int_equal(c.optimizer.adamw_mode, 1);
    assert_int_equal(
        zoff_config_from_json_string(
            &c, "{\"optimizer\": {\"type\": \"adam\", \"params\": {\"adam_w_mode\": true}}}"),
        0);
    assert_int_equal(c.optimizer.adamw_mode, 1);
    assert_int_equal(zoff_config_from_json_string(&c, "{\"optimizer\": {\"type\": \"ADAMW\"}}"), 0);
    assert_int_equal(c.optimizer.adamw_mode, 1);
    assert_int_equal(
        zoff_config_from_json_string(&c, "{\"optimizer\": {\"params\": {\"adam_w_mode\": false}}}"),
        0);
    assert_int_equal(c.optimizer.adamw_mode, 0);
    /* bf16 section under DeepSpeed's older name */
    assert_int_equal(zoff_config_from_json_string(&c, "{\"bfloat16\": {\"enabled\": true}}"), 0);
    assert_int_equal(c.bf16_enabled, 1);
    /* aio_odirect as -1/0/1 */
    assert_int_equal(zoff_config_from_json_string(&c, "{\"zoff\": {\"aio_odirect\": 0}}"), 0);
    assert_int_equal(c.aio_odirect, 0);
    /* a 64-bit seed as a string */
    assert_int_equal(zoff_config_from_json_string(
                         &c, "{\"zoff\": {\"sim_jitter_seed\": \"0xffffffffffffffff\"}}"),
                     0);
    assert_true(c.sim_jitter_seed == UINT64_MAX);
    /* buffer_size sets the partition size when zoff.partition_numel agrees or is absent */
    assert_int_equal(zoff_config_from_json_string(
                         &c, "{\"zero_optimization\": {\"offload_optimizer\": {\"buffer_size\": "
                             "1048576}}, \"zoff\": {\"partition_numel\": \"1M\"}}"),
                     0);
    assert_int_equal(c.partition_numel, 1u << 20);
}

typedef struct bad_case {
    const char *json;
    const char *expect; /* substring of the message */
} bad_case;

static const bad_case bad_cases[] = {
    /* unknown keys, at every depth, with suggestions */
    {"{\"foo\": 1}", "json string: foo: unknown key (known here: optimizer, fp16"},
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"nvme_paht\": \"/x\"}}}",
     "zero_optimization.offload_optimizer.nvme_paht: unknown key (did you mean \"nvme_path\"?)"},
    {"{\"optimizer\": {\"params\": {\"lr\": 1e-3, \"momentum\": 0.9}}}",
     "optimizer.params.momentum: unknown key"},
    {"{\"zoff\": {\"partition_numl\": 4}}", "zoff.partition_numl: unknown key (did you mean"},
    {"{\"scheduler\": {\"type\": \"WarmupLRR\"}}", "scheduler.type: expected \"WarmupLR\""},
    {"{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"total_num_steps\": 5}}}",
     "scheduler.params.total_num_steps: not a parameter of WarmupLR"},
    {"{\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {}}}",
     "scheduler.params.total_num_steps: required by WarmupDecayLR"},
    {"{\"scheduler\": {\"params\": {}}}", "scheduler.type: required"},
    {"{\"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": \"auto\"}}}",
     "scheduler.params.total_num_steps: \"auto\" needs the trainer's step count"},
    {"{\"tensorboard\": {\"enabled\": true, \"output_pth\": \"x\"}}",
     "tensorboard.output_pth: unknown key (did you mean \"output_path\"?)"},
    {"{\"zero_optimization\": {\"stage3_max_live_parameter\": 1}}",
     "did you mean \"stage3_max_live_parameters\"?"},
    {"{\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4, "
     "\"gradient_accumulation_steps\": 4}",
     "train_batch_size: 32 is not train_micro_batch_size_per_gpu * gradient_accumulation_steps"},
    {"{\"gradient_accumulation_steps\": 4}", "gradient_accumulation_steps: given without"},
    /* wrong types */
    {"{\"fp16\": {\"enabled\": \"yes\"}}", "fp16.enabled: expected true or false, got \"yes\""},
    {"{\"fp16\": {\"enabled\": 1}}", "fp16.enabled: expected true or false, got 1"},
    {"{\"optimizer\": {\"params\": {\"lr\": \"0.1\"}}}",
     "optimizer.params.lr: expected a number >= 0, got \"0.1\""},
    {"{\"optimizer\": []}", "optimizer: expected an object, got an array"},
    {"{\"optimizer\": {\"params\": {\"betas\": [0.9]}}}",
     "optimizer.params.betas: expected an array of two numbers"},
    {"{\"optimizer\": {\"params\": {\"betas\": [0.9, 1.0]}}}",
     "optimizer.params.betas[1]: expected a number in [0, 1), got 1"},
    {"{\"optimizer\": {\"type\": \"Lamb\"}}",
     "optimizer.type: expected \"Adam\", \"AdamW\", \"Lion\" or \"Adagrad\""},
    {"{\"fp16\": {\"initial_scale_power\": 16.5}}",
     "fp16.initial_scale_power: expected an integer in [0, 127], got 16.5"},
    {"{\"zoff\": {\"overlap\": \"fast\"}}",
     "zoff.overlap: expected \"sync\", \"eager\" or \"delayed\", got \"fast\""},
    {"{\"zoff\": {\"sim_gpu_bytes\": \"2X\"}}",
     "zoff.sim_gpu_bytes: expected an integer or a size"},
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"nvme_path\": 3}}}",
     "zero_optimization.offload_optimizer.nvme_path: expected a directory string or an array"},
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"nvme_path\": [\"/a\", \"/b,c\"]}}}",
     "zero_optimization.offload_optimizer.nvme_path[1]: directory names cannot contain ','"},
    {"{\"train_batch_size\": \"32\"}", "train_batch_size: expected an integer"},
    {"{\"wall_clock_breakdown\": 1}", "wall_clock_breakdown: expected true or false, got 1"},
    /* out of range */
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"ratio\": 1.5}}}",
     "zero_optimization.offload_optimizer.ratio: expected a number in [0, 1], got 1.5"},
    {"{\"optimizer\": {\"params\": {\"lr\": -0.1}}}",
     "optimizer.params.lr: expected a number >= 0, got -0.1"},
    {"{\"zero_optimization\": {\"stage\": 4}}",
     "zero_optimization.stage: expected an integer in [0, 3], got 4"},
    {"{\"aio\": {\"block_size\": 1000}}", "aio.block_size: expected an integer or a size string"},
    {"{\"aio\": {\"block_size\": 5000}}",
     "aio.block_size: expected a multiple of 4096 in [4096, 1073741824] bytes, got 5000"},
    {"{\"aio\": {\"queue_depth\": 0}}",
     "aio.queue_depth: expected an integer in [1, 32768], got 0"},
    {"{\"zoff\": {\"numa_node\": -2}}",
     "zoff.numa_node: expected an integer in [-1, 65535], got -2"},
    {"{\"fp16\": {\"loss_scale_window\": 0}}",
     "fp16.loss_scale_window: expected an integer in [1, 2147483647], got 0"},
    {"{\"gradient_clipping\": -1}", "gradient_clipping: expected a number >= 0, got -1"},
    {"{\"optimizer\": {\"params\": {\"lr\": 1e300}}}",
     "optimizer.params.lr: expected a number within float range"},
    /* impossible combinations */
    {"{\"fp16\": {\"enabled\": true}, \"bf16\": {\"enabled\": true}}",
     "fp16.enabled and bf16.enabled: both are true"},
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"device\": \"nvme\"}}}",
     "zero_optimization.offload_optimizer.nvme_path: required when offload_optimizer.device is "
     "\"nvme\""},
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": "
     "\"/x\", \"buffer_count\": 2}}}",
     "zero_optimization.offload_optimizer.buffer_count: expected an integer >= 3"},
    {"{\"zero_optimization\": {\"offload_param\": {\"buffer_count\": 0}}}",
     "zero_optimization.offload_param.buffer_count"},
    {"{\"aio\": {\"use_gds\": true}}", "aio.use_gds: GPUDirect Storage is not supported"},
    {"{\"optimizer\": {\"params\": {\"amsgrad\": true}}}", "optimizer.params.amsgrad: AMSGrad"},
    {"{\"zero_optimization\": {\"offload_optimizer\": {\"buffer_size\": 1000}}, \"zoff\": "
     "{\"partition_numel\": 2000}}",
     "zero_optimization.offload_optimizer.buffer_size: 1000 contradicts zoff.partition_numel 2000"},
    /* structure */
    {"{\"fp16\": {\"enabled\": true, \"enabled\": false}}", "fp16.enabled: duplicate key"},
    {"{\"fp16\": {\"enabled\": true,}}", "json string:1:"},
    {"{\n  \"fp16\": {\n    \"enabled\": tru\n  }\n}", "json string:3:"},
    {"[1, 2]", "(top level): expected an object, got an array"},
    {"{} {}", "JSON syntax error"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(bad_cases); i++) {
        zoff_config c, before;
        zoff_config_default(&c);
        c.cuda_device = 7; /* a sentinel: must survive a failed parse */
        before = c;
        zoff__clear_error();
        zoff_status st = zoff_config_from_json_string(&c, bad_cases[i].json);
        if (st != ZOFF_ECONFIG || !strstr(last_error(), bad_cases[i].expect)) {
            fprintf(stderr, "case %zu: %s\n  status %s, message: %s\n  expected: %s\n", i,
                    bad_cases[i].json, zoff_status_name(st), last_error(), bad_cases[i].expect);
            fail();
        }
        assert_config_equal(&c, &before);

        /* The same text through zoff__config_parse names the origin. */
        st = zoff__config_parse(&c, bad_cases[i].json, "cfg.json");
        assert_int_equal(st, ZOFF_ECONFIG);
        assert_true(strncmp(last_error(), "cfg.json", 8) == 0);
        assert_config_equal(&c, &before);
    }
}

static void test_file_errors(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    zoff_status st = zoff_config_from_json(&c, "/nonexistent/zoff/ds.json");
    assert_int_equal(st, -ENOENT);
    assert_non_null(strstr(last_error(), "/nonexistent/zoff/ds.json"));

    char *dir = zt_mkdtemp("config");
    st = zoff_config_from_json(&c, dir); /* a directory */
    assert_true(st < 0);
    assert_non_null(strstr(last_error(), dir));

    char path[512];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"zoff\": {\n  \"tile_numel\": 0\n}}", f);
    fclose(f);
    st = zoff_config_from_json(&c, path);
    assert_int_equal(st, ZOFF_ECONFIG);
    assert_non_null(strstr(last_error(), path));
    assert_non_null(strstr(last_error(), "zoff.tile_numel: expected"));
    zt_rmtree(dir);
    free(dir);
    assert_int_equal(zoff_config_from_json(&c, NULL), ZOFF_EINVAL);
}

static void test_validate(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.struct_size = 12;
    assert_int_equal(zoff__config_validate(&c), ZOFF_ECONFIG);
    assert_non_null(strstr(last_error(), "zoff_config_default"));
    zoff_config_default(&c);
    c.ratio = -0.5f;
    assert_int_equal(zoff__config_validate(&c), ZOFF_ECONFIG);
    assert_non_null(strstr(last_error(), "zero_optimization.offload_optimizer.ratio"));
    zoff_config_default(&c);
    c.buffer_count = 2; /* fine for the cpu tier, which has no pool */
    assert_int_equal(zoff__config_validate(&c), ZOFF_OK);
    c.tier = ZOFF_TIER_NVME;
    snprintf(c.nvme_path, sizeof c.nvme_path, "/tmp");
    assert_int_equal(zoff__config_validate(&c), ZOFF_ECONFIG);
    zoff_config_default(&c);
    snprintf(c.cpu_isa, sizeof c.cpu_isa, "sse9");
    assert_int_equal(zoff__config_validate(&c), ZOFF_ECONFIG);
    assert_non_null(strstr(last_error(), "zoff.cpu_isa"));
    assert_int_equal(zoff__config_validate(NULL), ZOFF_EINVAL);

    zoff_group_config g;
    zoff_group_config_default(&g);
    g.beta2 = 1.0f;
    assert_int_equal(zoff__group_config_validate(&g, "group 2"), ZOFF_ECONFIG);
    assert_non_null(strstr(last_error(), "group 2.betas[1]"));
    zoff_group_config_default(&g);
    g.eps = -1.0f;
    assert_int_equal(zoff__group_config_validate(&g, "group 0"), ZOFF_ECONFIG);
    zoff_group_config_default(&g);
    assert_int_equal(zoff__group_config_validate(&g, "group 0"), ZOFF_OK);
}

static const char *env_vars[] = {"ZOFF_DEVICE",        "ZOFF_SIM_JITTER",  "ZOFF_SIM_GPU_BYTES",
                                 "ZOFF_SIM_PCIE_GBPS", "ZOFF_AIO",         "ZOFF_AIO_ODIRECT",
                                 "ZOFF_CPU_ISA",       "ZOFF_CPU_THREADS", "ZOFF_NUMA_NODE",
                                 "ZOFF_TRACE"};

static void clear_env(void)
{
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(env_vars); i++) unsetenv(env_vars[i]);
}

static void test_env(void **state)
{
    (void)state;
    clear_env();
    zoff_config c, d;
    zoff_config_default(&c);
    d = c;
    assert_int_equal(zoff__config_apply_env(&c), ZOFF_OK);
    assert_config_equal(&c, &d); /* nothing set: nothing changes */

    setenv("ZOFF_DEVICE", "SIM", 1);
    setenv("ZOFF_SIM_JITTER", "1234", 1);
    setenv("ZOFF_SIM_GPU_BYTES", "3G", 1);
    setenv("ZOFF_SIM_PCIE_GBPS", "7.5", 1);
    setenv("ZOFF_AIO", "threads", 1);
    setenv("ZOFF_AIO_ODIRECT", "0", 1);
    setenv("ZOFF_CPU_ISA", "scalar", 1);
    setenv("ZOFF_CPU_THREADS", "3", 1);
    setenv("ZOFF_NUMA_NODE", "1", 1);
    setenv("ZOFF_TRACE", "/tmp/zoff-trace.json", 1);
    assert_int_equal(zoff__config_apply_env(&c), ZOFF_OK);
    assert_int_equal(c.device, ZOFF_DEVICE_SIM);
    assert_true(c.sim_jitter_seed == 1234);
    assert_int_equal(c.sim_gpu_bytes, 3ull << 30);
    assert_true(c.sim_pcie_gbps == 7.5);
    assert_int_equal(c.aio_engine, ZOFF_AIO_THREADS);
    assert_int_equal(c.aio_odirect, 0);
    assert_string_equal(c.cpu_isa, "scalar");
    assert_int_equal(c.cpu_threads, 3);
    assert_int_equal(c.numa_node, 1);
    assert_string_equal(c.trace_path, "/tmp/zoff-trace.json");
    assert_int_equal(zoff__config_validate(&c), ZOFF_OK);

    /* "0" for the size and thread count means "keep the config's value" */
    setenv("ZOFF_SIM_GPU_BYTES", "0", 1);
    setenv("ZOFF_CPU_THREADS", "0", 1);
    setenv("ZOFF_AIO_ODIRECT", "probe", 1);
    setenv("ZOFF_CPU_ISA", "auto", 1);
    assert_int_equal(zoff__config_apply_env(&c), ZOFF_OK);
    assert_int_equal(c.sim_gpu_bytes, 3ull << 30);
    assert_int_equal(c.cpu_threads, 3);
    assert_int_equal(c.aio_odirect, -1);
    assert_string_equal(c.cpu_isa, "");

    static const struct {
        const char *var, *value;
    } bad[] = {
        {"ZOFF_DEVICE", "gpu"},         {"ZOFF_SIM_JITTER", "-3"},  {"ZOFF_SIM_GPU_BYTES", "lots"},
        {"ZOFF_SIM_PCIE_GBPS", "fast"}, {"ZOFF_AIO", "libaio"},     {"ZOFF_AIO_ODIRECT", "2"},
        {"ZOFF_CPU_ISA", "neon"},       {"ZOFF_CPU_THREADS", "-1"}, {"ZOFF_NUMA_NODE", "x"},
        {"ZOFF_SIM_PCIE_GBPS", "-1"},
    };
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(bad); i++) {
        clear_env();
        setenv(bad[i].var, bad[i].value, 1);
        zoff_config_default(&c);
        d = c;
        zoff_status st = zoff__config_apply_env(&c);
        if (st != ZOFF_ECONFIG || !strstr(last_error(), bad[i].var) ||
            !strstr(last_error(), bad[i].value)) {
            fprintf(stderr, "%s=%s: %s: %s\n", bad[i].var, bad[i].value, zoff_status_name(st),
                    last_error());
            fail();
        }
        assert_config_equal(&c, &d);
    }
    clear_env();
}

static void test_round_trip(void **state)
{
    (void)state;
    zoff_config a;
    zoff_config_default(&a);
    /* every field away from its default */
    a.optimizer.lr = 2.5e-5f;
    a.optimizer.beta1 = 0.85f;
    a.optimizer.beta2 = 0.9995f;
    a.optimizer.eps = 3e-7f;
    a.optimizer.weight_decay = 0.0f;
    a.optimizer.adamw_mode = 0;
    a.optimizer.bias_correction = 0;
    a.fp16_enabled = 1;
    a.loss_scale = 128.0f;
    a.initial_scale_power = 20;
    a.loss_scale_window = 77;
    a.hysteresis = 5;
    a.min_loss_scale = 0.25f;
    a.gradient_clipping = 0.7f;
    a.tier = ZOFF_TIER_NVME;
    snprintf(a.nvme_path, sizeof a.nvme_path, "/mnt/n0,/mnt/n1 with space");
    a.pin_memory = 0;
    a.buffer_count = 6;
    a.ratio = 0.3f;
    a.partition_numel = 123457;
    a.tile_numel = 4099;
    a.numa_node = 1;
    a.aio_block_size = 1u << 20;
    a.aio_queue_depth = 64;
    a.aio_engine = ZOFF_AIO_URING;
    a.aio_odirect = 0;
    a.verify_crc = 0;
    a.min_scale_overflow_limit = 3;
    a.overlap = ZOFF_OVERLAP_EAGER;
    a.delayed_warmup_steps = 0;
    a.cpu_threads = 7;
    snprintf(a.cpu_isa, sizeof a.cpu_isa, "avx512");
    a.device = ZOFF_DEVICE_CUDA;
    a.cuda_device = 3;
    a.sim_gpu_bytes = 40ull << 30;
    a.sim_pcie_gbps = 31.7;
    a.sim_jitter_seed = 0xfedcba9876543210ull; /* > 2^53: written as a string */
    snprintf(a.trace_path, sizeof a.trace_path, "trace \"quoted\".json");
    assert_int_equal(zoff__config_validate(&a), ZOFF_OK);

    size_t need = zoff__config_to_json(&a, NULL, 0);
    assert_true(need > 100);
    char *buf = zt_malloc(need + 1);
    assert_int_equal(zoff__config_to_json(&a, buf, need + 1), need);
    assert_int_equal(strlen(buf), need);
    char small[16];
    assert_int_equal(zoff__config_to_json(&a, small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);

    zoff_config b;
    zoff_status st = zoff_config_from_json_string(&b, buf);
    if (st) fprintf(stderr, "%s\n%s\n", last_error(), buf);
    assert_int_equal(st, ZOFF_OK);
    assert_config_equal(&a, &b);
    free(buf);

    /* and the defaults */
    zoff_config_default(&a);
    char text[8192];
    assert_true(zoff__config_to_json(&a, text, sizeof text) < sizeof text);
    assert_int_equal(zoff_config_from_json_string(&b, text), ZOFF_OK);
    assert_config_equal(&a, &b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),    cmocka_unit_test(test_full_deepspeed),
        cmocka_unit_test(test_adam_modes),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_errors), cmocka_unit_test(test_validate),
        cmocka_unit_test(test_env),         cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
