/*
 * config.c — the runtime configuration: defaults (zoff_config_default, zoff_group_config_default),
 * the DeepSpeed-compatible JSON reader (zoff_config_from_json*, zoff__config_parse, built on
 * cJSON and driven by one key table per JSON section), the ZOFF_* environment overrides,
 * validation with messages that name the JSON key, and the JSON writer used for logs and
 * checkpoints. Owns no global state: every function works on the caller's structs and is
 * thread-safe on distinct structs. docs/config.md documents every key.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most Adam threads (= ZADAM_MAX_THREADS of cpu_adam/adam.h, which this file cannot include). */
#define CPU_THREADS_MAX 1024
/* Values per q8 block (= Q8_BLOCK of cpu_adam/adam.h). */
#define Q8_BLOCK 256
/* Upper bounds of a group's hyperparameters (config, zoff_set_group, checkpoint manifests). */
#define GROUP_LR_MAX  1000.0
#define GROUP_EPS_MAX 1.0
#define GROUP_WD_MAX  1000.0

#include "runtime/config.h"

#define PATH_LEN              192                /* longest JSON key path in a message */
#define MAX_EXACT_INT         9007199254740992.0 /* 2^53: largest exact integer in a double */
#define CONFIG_FILE_MAX_BYTES (16u << 20)        /* a config file larger than this is refused */
#define AIO_MAX_QUEUE_DEPTH   32768              /* IORING_MAX_ENTRIES */
#define AIO_MAX_BLOCK_BYTES   ((double)ZOFF_GIB) /* io_uring registers at most 1 GiB per buffer */

_Static_assert(sizeof(zoff_tier) == sizeof(int), "enum fields are written as int");
_Static_assert(sizeof(zoff_overlap) == sizeof(int), "enum fields are written as int");
_Static_assert(sizeof(zoff_device_kind) == sizeof(int), "enum fields are written as int");
_Static_assert(sizeof(zoff_aio_engine) == sizeof(int), "enum fields are written as int");

/* ------------------------------------------------------------------------------------------ */
/* Defaults                                                                                   */
/* ------------------------------------------------------------------------------------------ */
ZOFF_API zoff_status zoff_group_config_default(zoff_group_config *g)
{
    if (!g) return zoff__err(ZOFF_EINVAL, "zoff_group_config_default: NULL group");
    memset(g, 0, sizeof *g);
    g->struct_size = sizeof *g;
    g->lr = 1e-3f;
    g->beta1 = 0.9f;
    g->beta2 = 0.999f;
    g->eps = 1e-8f;
    g->weight_decay = 0.01f;
    g->adamw_mode = 1;
    g->bias_correction = 1;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_config_default(zoff_config *cfg)
{
    if (!cfg) return zoff__err(ZOFF_EINVAL, "zoff_config_default: NULL config");
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    zoff_group_config_default(&cfg->optimizer);
    cfg->fp16_enabled = 0;
    cfg->loss_scale = 0.0f;
    cfg->initial_scale_power = 16;
    cfg->loss_scale_window = 1000;
    cfg->hysteresis = 2;
    cfg->min_loss_scale = 1.0f;
    cfg->bf16_enabled = 0;
    cfg->gradient_clipping = 0.0f;
    cfg->tier = ZOFF_TIER_CPU;
    cfg->pin_memory = 1;
    cfg->buffer_count = 4;
    cfg->ratio = 0.0f;
    cfg->partition_numel = (size_t)16 << 20;
    cfg->tile_numel = (size_t)1 << 20;
    cfg->numa_node = -1;
    cfg->aio_block_size = 8 * ZOFF_MIB; /* shared/MACHINE-FACTS.md: best write size here */
    cfg->aio_queue_depth = 32;
    cfg->aio_engine = ZOFF_AIO_AUTO;
    cfg->aio_odirect = -1;
    cfg->verify_crc = 1;
    cfg->min_scale_overflow_limit =
        10; /* crc32c per swapped extent: corruption is caught by default */
    cfg->overlap = ZOFF_OVERLAP_SYNC;
    cfg->delayed_warmup_steps = 10;
    cfg->cpu_threads = 0;
    cfg->zero_stage = 2;
    cfg->ranks = 0;
    cfg->comm_timeout_ms = 300000;
    cfg->device = ZOFF_DEVICE_AUTO;
    cfg->cuda_device = 0;
    cfg->sim_gpu_bytes = ZOFF_GIB;
    cfg->sim_pcie_gbps = 25.0;
    cfg->sim_jitter_seed = 0;
    /* DeepSpeed's scheduler defaults (deepspeed/runtime/lr_schedules.py) */
    zoff_scheduler_config *sc = &cfg->scheduler;
    sc->type = ZOFF_SCHED_NONE;
    sc->warmup_min_lr = 0.0;
    sc->warmup_max_lr = NAN;
    sc->warmup_num_steps = 1000;
    sc->warmup_linear = 0;
    sc->total_num_steps = 0;
    sc->warmup_min_ratio = 0.0;
    sc->cos_min_ratio = 1e-4;
    sc->cycle_min_lr = NAN;
    sc->cycle_max_lr = NAN;
    sc->decay_lr_rate = 0.0;
    sc->cycle_first_step_size = 2000;
    sc->cycle_second_step_size = -1;
    sc->cycle_first_stair_count = 0;
    sc->cycle_second_stair_count = -1;
    sc->decay_step_size = 0;
    sc->cycle_momentum = 1;
    sc->cycle_min_mom = 0.8;
    sc->cycle_max_mom = 0.9;
    sc->decay_mom_rate = 0.0;
    sc->lr_range_test_min_lr = 1e-3;
    sc->lr_range_test_step_size = 2000;
    sc->lr_range_test_step_rate = 1.0;
    sc->lr_range_test_staircase = 0;
    cfg->stream_params = 0;
    cfg->prefetch_depth = 2;
    cfg->stream_slot_bytes = 0;
    /* 4 x 1 Mi elements (2 MiB each in 16 bits): docs/runtime.md "Gradient buckets" has the
     * measurement behind it */
    cfg->grad_bucket_numel = (size_t)1 << 20;
    cfg->grad_bucket_count = 4;
    cfg->grad_bucket_grow = 1;
    return ZOFF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Names of the enum values (JSON spelling)                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef struct enum_name {
    const char *name;
    int value;
} enum_name;

static const enum_name overlap_names[] = {{"sync", ZOFF_OVERLAP_SYNC},
                                          {"eager", ZOFF_OVERLAP_EAGER},
                                          {"delayed", ZOFF_OVERLAP_DELAYED},
                                          {NULL, 0}};
static const enum_name device_names[] = {
    {"auto", ZOFF_DEVICE_AUTO}, {"cuda", ZOFF_DEVICE_CUDA}, {"sim", ZOFF_DEVICE_SIM}, {NULL, 0}};
static const enum_name engine_names[] = {
    {"auto", ZOFF_AIO_AUTO}, {"uring", ZOFF_AIO_URING}, {"threads", ZOFF_AIO_THREADS}, {NULL, 0}};
static const enum_name state_names[] = {
    {"fp32", ZOFF_STATE_FP32}, {"bf16", ZOFF_STATE_BF16}, {"q8", ZOFF_STATE_Q8}, {NULL, 0}};
static const enum_name tier_names[] = {{"cpu", ZOFF_TIER_CPU}, {"nvme", ZOFF_TIER_NVME}, {NULL, 0}};
/* cpu_isa values; "auto" and "" both mean "chosen from CPUID". */
static const char *const isa_names[] = {"scalar", "avx2", "avx512", NULL};

static const char *enum_to_name(const enum_name *names, int value)
{
    for (const enum_name *e = names; e->name; e++)
        if (e->value == value) return e->name;
    return "?";
}

static int enum_from_name(const enum_name *names, const char *s, int *value)
{
    for (const enum_name *e = names; e->name; e++) {
        if (strcasecmp(e->name, s) == 0) {
            *value = e->value;
            return 1;
        }
    }
    return 0;
}

/* "a, b or c" into buf. */
static const char *enum_list(const enum_name *names, char *buf, size_t len)
{
    size_t n = 0, used = 0;
    while (names[n].name) n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
        int w = snprintf(buf + used, len - used, "%s\"%s\"", sep, names[i].name);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
    return buf;
}

static int isa_known(const char *s)
{
    if (s[0] == '\0') return 1;
    for (size_t i = 0; isa_names[i]; i++)
        if (strcmp(isa_names[i], s) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation                                                                                 */
/* ------------------------------------------------------------------------------------------ */
static int finite_in(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

zoff_status zoff__group_config_validate(const zoff_group_config *g, const char *path)
{
    if (!g) return zoff__err(ZOFF_EINVAL, "%s: NULL group", path);
    if (g->struct_size != sizeof *g)
        return zoff__err(ZOFF_ECONFIG,
                         "%s: struct_size is %zu, expected %zu (initialise the group with "
                         "zoff_group_config_default())",
                         path, g->struct_size, sizeof *g);
    /* upper bounds far above any training (they refuse typos and corrupted values: a weight
     * decay of 1e30 zeroes every weight in one step) */
    if (!finite_in(g->lr, 0.0, GROUP_LR_MAX))
        return zoff__err(ZOFF_ECONFIG, "%s.lr: expected a number in [0, %g], got %g", path,
                         GROUP_LR_MAX, (double)g->lr);
    if (!(g->beta1 >= 0.0f && g->beta1 < 1.0f))
        return zoff__err(ZOFF_ECONFIG, "%s.betas[0]: expected a number in [0, 1), got %g", path,
                         (double)g->beta1);
    if (!(g->beta2 >= 0.0f && g->beta2 < 1.0f))
        return zoff__err(ZOFF_ECONFIG, "%s.betas[1]: expected a number in [0, 1), got %g", path,
                         (double)g->beta2);
    if (!finite_in(g->eps, 0.0, GROUP_EPS_MAX))
        return zoff__err(ZOFF_ECONFIG, "%s.eps: expected a number in [0, %g], got %g", path,
                         GROUP_EPS_MAX, (double)g->eps);
    if (!finite_in(g->weight_decay, 0.0, GROUP_WD_MAX))
        return zoff__err(ZOFF_ECONFIG, "%s.weight_decay: expected a number in [0, %g], got %g",
                         path, GROUP_WD_MAX, (double)g->weight_decay);
    if (g->adamw_mode != 0 && g->adamw_mode != 1)
        return zoff__err(ZOFF_ECONFIG, "%s.adam_w_mode: expected 0 or 1, got %d", path,
                         g->adamw_mode);
    if (g->bias_correction != 0 && g->bias_correction != 1)
        return zoff__err(ZOFF_ECONFIG, "%s.bias_correction: expected 0 or 1, got %d", path,
                         g->bias_correction);
    return ZOFF_OK;
}

static int str_terminated(const char *s, size_t len)
{
    return memchr(s, '\0', len) != NULL;
}

zoff_status zoff__scheduler_validate(const zoff_scheduler_config *s)
{
    const char *p = "scheduler.params";
    switch (s->type) {
    case ZOFF_SCHED_NONE:
        return ZOFF_OK;
    case ZOFF_SCHED_WARMUP_LR:
    case ZOFF_SCHED_WARMUP_DECAY_LR:
    case ZOFF_SCHED_WARMUP_COSINE_LR:
        if (s->warmup_num_steps < 1)
            return zoff__err(ZOFF_ECONFIG,
                             "%s.warmup_num_steps: expected a positive integer, got %lld", p,
                             (long long)s->warmup_num_steps);
        if (s->warmup_linear != 0 && s->warmup_linear != 1)
            return zoff__err(ZOFF_ECONFIG, "%s.warmup_type: expected \"log\" or \"linear\"", p);
        if (!finite_in(s->warmup_min_lr, 0, HUGE_VAL) ||
            !(isnan(s->warmup_max_lr) || finite_in(s->warmup_max_lr, 0, HUGE_VAL)))
            return zoff__err(ZOFF_ECONFIG, "%s.warmup_min_lr/warmup_max_lr: expected numbers >= 0",
                             p);
        if (s->type != ZOFF_SCHED_WARMUP_LR && s->total_num_steps < 1)
            return zoff__err(
                ZOFF_ECONFIG, "%s.total_num_steps: required by %s (a positive integer)", p,
                s->type == ZOFF_SCHED_WARMUP_DECAY_LR ? "WarmupDecayLR" : "WarmupCosineLR");
        if (!finite_in(s->warmup_min_ratio, 0, 1) || !finite_in(s->cos_min_ratio, 0, 1))
            return zoff__err(ZOFF_ECONFIG, "%s.warmup_min_ratio/cos_min_ratio: expected [0, 1]", p);
        return ZOFF_OK;
    case ZOFF_SCHED_ONE_CYCLE:
        if (!finite_in(s->cycle_min_lr, 0, HUGE_VAL) || !finite_in(s->cycle_max_lr, 0, HUGE_VAL))
            return zoff__err(ZOFF_ECONFIG,
                             "%s.cycle_min_lr and cycle_max_lr: required by OneCycle (numbers >= "
                             "0)",
                             p);
        if (s->cycle_first_step_size < 1)
            return zoff__err(ZOFF_ECONFIG, "%s.cycle_first_step_size: expected >= 1, got %lld", p,
                             (long long)s->cycle_first_step_size);
        if (s->decay_step_size < 0 || s->cycle_first_stair_count < 0)
            return zoff__err(ZOFF_ECONFIG,
                             "%s.decay_step_size/cycle_first_stair_count: expected >= 0", p);
        if (!finite_in(s->cycle_min_mom, 0, 1) || !finite_in(s->cycle_max_mom, 0, 1) ||
            !isfinite(s->decay_mom_rate) || !isfinite(s->decay_lr_rate))
            return zoff__err(ZOFF_ECONFIG, "%s: OneCycle momentum bounds must be in [0, 1)", p);
        return ZOFF_OK;
    case ZOFF_SCHED_LR_RANGE_TEST:
        if (s->lr_range_test_step_size < 1)
            return zoff__err(ZOFF_ECONFIG,
                             "%s.lr_range_test_step_size: expected a positive integer", p);
        if (!finite_in(s->lr_range_test_min_lr, 0, HUGE_VAL) ||
            !isfinite(s->lr_range_test_step_rate))
            return zoff__err(ZOFF_ECONFIG, "%s.lr_range_test_min_lr/step_rate: expected numbers",
                             p);
        return ZOFF_OK;
    }
    return zoff__err(ZOFF_ECONFIG, "scheduler.type: unknown schedule %d", (int)s->type);
}

zoff_status zoff__config_validate(const zoff_config *cfg)
{
    char names[96];
    if (!cfg) return zoff__err(ZOFF_EINVAL, "config: NULL");
    if (cfg->struct_size != sizeof *cfg)
        return zoff__err(ZOFF_ECONFIG,
                         "config: struct_size is %zu, expected %zu (initialise the config with "
                         "zoff_config_default())",
                         cfg->struct_size, sizeof *cfg);
    ZOFF_CHECK(zoff__group_config_validate(&cfg->optimizer, "optimizer.params"));
    if (cfg->optimizer_type < ZOFF_OPTIM_ADAM || cfg->optimizer_type > ZOFF_OPTIM_ADAGRAD)
        return zoff__err(ZOFF_ECONFIG,
                         "optimizer.type: unknown optimizer %d (expected Adam, AdamW, Lion or "
                         "Adagrad)",
                         cfg->optimizer_type);
    if (cfg->state_format < ZOFF_STATE_FP32 || cfg->state_format > ZOFF_STATE_Q8)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.state_format: unknown format %d (expected \"fp32\", \"bf16\" or "
                         "\"q8\")",
                         cfg->state_format);
    if (!finite_in(cfg->lr_decay, 0.0, HUGE_VAL))
        return zoff__err(ZOFF_ECONFIG,
                         "optimizer.params.lr_decay: expected a finite number >= 0, got %g",
                         (double)cfg->lr_decay);
    if (!finite_in(cfg->initial_accumulator_value, 0.0, HUGE_VAL))
        return zoff__err(ZOFF_ECONFIG,
                         "optimizer.params.initial_accumulator_value: expected a finite number >= "
                         "0, got %g",
                         (double)cfg->initial_accumulator_value);
    if (cfg->state_format == ZOFF_STATE_Q8 && cfg->partition_numel % Q8_BLOCK != 0)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.partition_numel: %zu is not a multiple of the q8 block (%d values); "
                         "q8 state needs whole blocks per partition",
                         cfg->partition_numel, Q8_BLOCK);
    if (cfg->state_format == ZOFF_STATE_Q8 && cfg->tile_numel % Q8_BLOCK != 0)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.tile_numel: %zu is not a multiple of the q8 block (%d values); q8 "
                         "tiles start on block boundaries",
                         cfg->tile_numel, Q8_BLOCK);
    if (cfg->zero_stage < 0 || cfg->zero_stage > 3)
        return zoff__err(ZOFF_ECONFIG, "zero_optimization.stage: expected 0, 1, 2 or 3, got %d",
                         cfg->zero_stage);
    if (cfg->ranks < 0 || cfg->ranks > 1)
        return zoff__err(ZOFF_ECONFIG, "zoff.ranks: expected 0 (launcher) or 1 (alone), got %d",
                         cfg->ranks);

    /* mixed precision, clipping */
    if (cfg->fp16_enabled != 0 && cfg->fp16_enabled != 1)
        return zoff__err(ZOFF_ECONFIG, "fp16.enabled: expected 0 or 1, got %d", cfg->fp16_enabled);
    if (cfg->bf16_enabled != 0 && cfg->bf16_enabled != 1)
        return zoff__err(ZOFF_ECONFIG, "bf16.enabled: expected 0 or 1, got %d", cfg->bf16_enabled);
    if (cfg->fp16_enabled && cfg->bf16_enabled)
        return zoff__err(ZOFF_ECONFIG,
                         "fp16.enabled and bf16.enabled: both are true; choose one 16-bit format");
    if (!finite_in(cfg->loss_scale, 0.0, HUGE_VAL))
        return zoff__err(ZOFF_ECONFIG,
                         "fp16.loss_scale: expected a finite number >= 0 (0: dynamic), got %g",
                         (double)cfg->loss_scale);
    if (cfg->initial_scale_power < 0 || cfg->initial_scale_power > 127)
        return zoff__err(ZOFF_ECONFIG,
                         "fp16.initial_scale_power: expected an integer in [0, 127] (2^power "
                         "must be a finite float), got %d",
                         cfg->initial_scale_power);
    if (cfg->loss_scale_window < 1)
        return zoff__err(ZOFF_ECONFIG, "fp16.loss_scale_window: expected an integer >= 1, got %d",
                         cfg->loss_scale_window);
    if (cfg->hysteresis < 1)
        return zoff__err(ZOFF_ECONFIG, "fp16.hysteresis: expected an integer >= 1, got %d",
                         cfg->hysteresis);
    if (!(isfinite(cfg->min_loss_scale) && cfg->min_loss_scale > 0.0f))
        return zoff__err(ZOFF_ECONFIG, "fp16.min_loss_scale: expected a finite number > 0, got %g",
                         (double)cfg->min_loss_scale);
    if (!finite_in(cfg->gradient_clipping, 0.0, HUGE_VAL))
        return zoff__err(ZOFF_ECONFIG,
                         "gradient_clipping: expected a finite number >= 0 (0: off), got %g",
                         (double)cfg->gradient_clipping);

    /* offload */
    if (cfg->tier != ZOFF_TIER_CPU && cfg->tier != ZOFF_TIER_NVME)
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.offload_optimizer.device: unknown tier %d (expected "
                         "%s)",
                         (int)cfg->tier, enum_list(tier_names, names, sizeof names));
    if (!str_terminated(cfg->nvme_path, sizeof cfg->nvme_path))
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.offload_optimizer.nvme_path: not NUL-terminated "
                         "within %d bytes",
                         ZOFF_PATH_MAX);
    if (cfg->tier == ZOFF_TIER_NVME && cfg->nvme_path[0] == '\0')
        return zoff__err(ZOFF_ECONFIG, "zero_optimization.offload_optimizer.nvme_path: required "
                                       "when offload_optimizer.device is \"nvme\"");
    if (cfg->pin_memory != 0 && cfg->pin_memory != 1)
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.offload_optimizer.pin_memory: expected 0 or 1, got %d",
                         cfg->pin_memory);
    if (cfg->buffer_count < 1 || (cfg->tier == ZOFF_TIER_NVME && cfg->buffer_count < 3))
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.offload_optimizer.buffer_count: expected an integer "
                         ">= 3 (prefetch, update and write-back each hold a buffer), got %d",
                         cfg->buffer_count);
    if (!finite_in(cfg->ratio, 0.0, 1.0))
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.offload_optimizer.ratio: expected a number in [0, 1], "
                         "got %g",
                         (double)cfg->ratio);
    if (cfg->partition_numel < 1)
        return zoff__err(ZOFF_ECONFIG, "zoff.partition_numel: expected an integer >= 1, got 0");
    if (cfg->tile_numel < 1)
        return zoff__err(ZOFF_ECONFIG, "zoff.tile_numel: expected an integer >= 1, got 0");
    if (cfg->numa_node < -1)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.numa_node: expected an integer >= -1 (-1: nearest the GPU), got %d",
                         cfg->numa_node);

    /* aio */
    if (cfg->aio_block_size < 4096 || cfg->aio_block_size % 4096 != 0 ||
        (double)cfg->aio_block_size > AIO_MAX_BLOCK_BYTES)
        return zoff__err(ZOFF_ECONFIG,
                         "aio.block_size: expected a multiple of 4096 in [4096, 1073741824] "
                         "bytes, got %zu",
                         cfg->aio_block_size);
    if (cfg->aio_queue_depth < 1 || cfg->aio_queue_depth > AIO_MAX_QUEUE_DEPTH)
        return zoff__err(ZOFF_ECONFIG, "aio.queue_depth: expected an integer in [1, %d], got %d",
                         AIO_MAX_QUEUE_DEPTH, cfg->aio_queue_depth);
    if (cfg->aio_engine != ZOFF_AIO_AUTO && cfg->aio_engine != ZOFF_AIO_URING &&
        cfg->aio_engine != ZOFF_AIO_THREADS)
        return zoff__err(ZOFF_ECONFIG, "zoff.aio_engine: unknown engine %d (expected %s)",
                         (int)cfg->aio_engine, enum_list(engine_names, names, sizeof names));
    if (cfg->aio_odirect < -1 || cfg->aio_odirect > 1)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.aio_odirect: expected -1 (probe), 0 (buffered) or 1 (O_DIRECT), "
                         "got %d",
                         cfg->aio_odirect);
    if (cfg->verify_crc != 0 && cfg->verify_crc != 1)
        return zoff__err(ZOFF_ECONFIG, "zoff.verify_crc: expected 0 or 1, got %d", cfg->verify_crc);

    /* pipeline, CPU */
    if (cfg->overlap != ZOFF_OVERLAP_SYNC && cfg->overlap != ZOFF_OVERLAP_EAGER &&
        cfg->overlap != ZOFF_OVERLAP_DELAYED)
        return zoff__err(ZOFF_ECONFIG, "zoff.overlap: unknown mode %d (expected %s)",
                         (int)cfg->overlap, enum_list(overlap_names, names, sizeof names));
    if (cfg->delayed_warmup_steps < 0)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.delayed_warmup_steps: expected an integer >= 0, got %d",
                         cfg->delayed_warmup_steps);
    if (cfg->grad_bucket_numel < 1 || cfg->grad_bucket_numel > ((size_t)1 << 40))
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.reduce_bucket_size: expected 1 .. 2^40 elements, "
                         "got %zu",
                         cfg->grad_bucket_numel);
    if (cfg->grad_bucket_grow != 0 && cfg->grad_bucket_grow != 1)
        return zoff__err(ZOFF_ECONFIG, "zoff.grad_bucket_grow: expected 0 or 1, got %d",
                         cfg->grad_bucket_grow);
    if (cfg->grad_bucket_count < 2 || cfg->grad_bucket_count > 64)
        return zoff__err(ZOFF_ECONFIG, "zoff.grad_bucket_count: expected 2 .. 64 buckets, got %d",
                         cfg->grad_bucket_count);
    if (cfg->cpu_threads < 0 || cfg->cpu_threads > CPU_THREADS_MAX)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.cpu_threads: expected an integer in [0, 1024] (0: all cores), "
                         "got %d",
                         cfg->cpu_threads);
    if (!str_terminated(cfg->cpu_isa, sizeof cfg->cpu_isa) || !isa_known(cfg->cpu_isa))
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.cpu_isa: expected \"\" (auto), \"scalar\", \"avx2\" or \"avx512\", "
                         "got \"%.*s\"",
                         (int)sizeof cfg->cpu_isa, cfg->cpu_isa);

    /* device */
    if (cfg->device != ZOFF_DEVICE_AUTO && cfg->device != ZOFF_DEVICE_CUDA &&
        cfg->device != ZOFF_DEVICE_SIM)
        return zoff__err(ZOFF_ECONFIG, "zoff.device: unknown device %d (expected %s)",
                         (int)cfg->device, enum_list(device_names, names, sizeof names));
    if (cfg->cuda_device < 0)
        return zoff__err(ZOFF_ECONFIG, "zoff.cuda_device: expected an integer >= 0, got %d",
                         cfg->cuda_device);
    if (cfg->sim_gpu_bytes < 1)
        return zoff__err(ZOFF_ECONFIG, "zoff.sim_gpu_bytes: expected a size >= 1 byte, got 0");
    if (cfg->stream_params != 0 && cfg->stream_params != 1)
        return zoff__err(ZOFF_ECONFIG,
                         "zero_optimization.offload_param.device: stream_params must be 0 or 1, "
                         "got %d",
                         cfg->stream_params);
    if (cfg->prefetch_depth < 0 || cfg->prefetch_depth > 64)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.prefetch_depth: expected an integer in [0, 64] "
                         "(offload_param.buffer_count - 1), got %d",
                         cfg->prefetch_depth);
    if (!finite_in(cfg->sim_pcie_gbps, 0.0, HUGE_VAL))
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.sim_pcie_gbps: expected a finite number >= 0 (0: unthrottled), "
                         "got %g",
                         cfg->sim_pcie_gbps);
    if (cfg->min_scale_overflow_limit < 0)
        return zoff__err(ZOFF_ECONFIG,
                         "zoff.min_scale_overflow_limit: expected an integer >= 0 (0: never "
                         "stop), got %d",
                         cfg->min_scale_overflow_limit);
    if (!str_terminated(cfg->trace_path, sizeof cfg->trace_path))
        return zoff__err(ZOFF_ECONFIG, "zoff.trace_path: not NUL-terminated within %d bytes",
                         ZOFF_PATH_MAX);
    if (cfg->train_batch_size < 0 || cfg->train_micro_batch_size_per_gpu < 0 ||
        cfg->gradient_accumulation_steps < 0)
        return zoff__err(ZOFF_ECONFIG, "train_batch_size, train_micro_batch_size_per_gpu and "
                                       "gradient_accumulation_steps: expected >= 0 (0: not given)");
    return zoff__scheduler_validate(&cfg->scheduler);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON reader                                                                                */
/* ------------------------------------------------------------------------------------------ */
#define ERRS_MAX 3584 /* all error lines of one parse (fits zoff_last_error's buffer) */

typedef struct pctx {
    const char *origin;            /* file name or "json string" for messages */
    zoff_config *cfg;              /* the copy being filled (committed to the caller on success) */
    const zoff_trainer_values *tv; /* values for "auto" (never NULL inside the parser) */
    char errs[ERRS_MAX];           /* every error of this parse, one per line */
    size_t errs_len;
    int nerr;
    int omitted;             /* errors that did not fit in errs */
    int lion_adagrad;        /* unused since Lion/Adagrad run as themselves (always 0) */
    int sched_given;         /* a "scheduler" section was read */
    char sched_keys[16][40]; /* scheduler.params keys given (checked against the type) */
    int nsched_keys;
    /* cross-key facts resolved after the walk */
    int opt_type;        /* -1 not given, 0 "Adam", 1 "AdamW" */
    int adam_w_mode;     /* -1 not given, else 0/1 */
    int has_buffer_size; /* offload_optimizer.buffer_size was given */
    size_t buffer_size;
    int has_partition_numel; /* zoff.partition_numel was given */
} pctx;

typedef enum kind {
    K_OBJECT,      /* a nested section (sub table) */
    K_INT64,       /* int64_t field, integral number in [lo, hi] */
    K_BOOL,        /* int field, JSON true/false */
    K_INT,         /* int field, integral number in [lo, hi] */
    K_FLOAT,       /* float field, number in [lo, hi] */
    K_DOUBLE,      /* double field, number in [lo, hi] */
    K_SIZE,        /* size_t field: integral number or size string ("16M"), in [lo, hi] */
    K_STRING,      /* char[len] field */
    K_ENUM,        /* int-sized enum field, one of `enums` (case-insensitive) */
    K_CUSTOM,      /* handled by fn */
    K_IGNORE_BOOL, /* accepted when a bool, ignored (INFO) */
    K_IGNORE_NUM,  /* accepted when a number, ignored (INFO) */
    K_IGNORE_ANY,  /* accepted whatever its value, ignored (INFO) */
    K_SKIP,        /* a section reserved for another reader: not looked at */
} kind;

typedef struct key_desc key_desc;
typedef zoff_status (*key_fn)(pctx *c, const cJSON *v, const char *path);

struct key_desc {
    const char *key;
    kind kind;
    size_t off;             /* field offset in zoff_config */
    size_t len;             /* K_STRING: buffer bytes */
    double lo, hi;          /* numeric range, inclusive */
    const enum_name *enums; /* K_ENUM */
    const key_desc *sub;    /* K_OBJECT: table ending with a NULL key */
    key_fn fn;              /* K_CUSTOM */
    const char *note;       /* K_IGNORE_*: why zoff has no use for it */
};

static zoff_status cerr(pctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records one error line ("origin: path: message"); parsing goes on so that one pass reports
 * every error of the file. Returns ZOFF_ECONFIG. */
static zoff_status cerr(pctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[768];
    int w = snprintf(line, sizeof line, "%s%s: %s: %s", c->nerr ? "\n" : "", c->origin, path, msg);
    /* keep whole lines; what does not fit is counted ("and N more errors") */
    if (w > 0 && c->errs_len + (size_t)w + 40 < sizeof c->errs) {
        memcpy(c->errs + c->errs_len, line, (size_t)w + 1);
        c->errs_len += (size_t)w;
    } else {
        c->omitted++;
    }
    c->nerr++;
    return zoff__err(ZOFF_ECONFIG, "%s: %s: %s", c->origin, path, msg);
}

/* A short description of a JSON value for "got ..." in messages. */
static const char *describe(const cJSON *v, char *buf, size_t len)
{
    if (cJSON_IsNumber(v))
        snprintf(buf, len, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v))
        snprintf(buf, len, "\"%.60s\"", v->valuestring);
    else if (cJSON_IsTrue(v))
        snprintf(buf, len, "true");
    else if (cJSON_IsFalse(v))
        snprintf(buf, len, "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "an array");
    else if (cJSON_IsObject(v))
        snprintf(buf, len, "an object");
    else
        snprintf(buf, len, "an unknown value");
    if (cJSON_IsNumber(v)) { /* shortest form that reads back the same */
        char shorter[64];
        snprintf(shorter, sizeof shorter, "%.15g", v->valuedouble);
        if (strtod(shorter, NULL) == v->valuedouble) snprintf(buf, len, "%s", shorter);
    }
    return buf;
}

static zoff_status bad_type(pctx *c, const char *path, const char *want, const cJSON *v)
{
    char got[96];
    return cerr(c, path, "expected %s, got %s", want, describe(v, got, sizeof got));
}

/* "a number in [0, 1]", "an integer >= 3", ... */
static const char *range_text(const char *what, double lo, double hi, char *buf, size_t len)
{
    if (isinf(hi) && isinf(lo))
        snprintf(buf, len, "%s", what);
    else if (isinf(hi))
        snprintf(buf, len, "%s >= %.15g", what, lo);
    else if (isinf(lo))
        snprintf(buf, len, "%s <= %.15g", what, hi);
    else
        snprintf(buf, len, "%s in [%.15g, %.15g]", what, lo, hi);
    return buf;
}

static void *field(pctx *c, const key_desc *d)
{
    return (char *)c->cfg + d->off;
}

static zoff_status get_bool(pctx *c, const cJSON *v, const char *path, int *out)
{
    if (!cJSON_IsBool(v)) return bad_type(c, path, "true or false", v);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return ZOFF_OK;
}

static zoff_status get_number(pctx *c, const cJSON *v, const char *path, int integral, double lo,
                              double hi, double *out)
{
    char want[96];
    range_text(integral ? "an integer" : "a number", lo, hi, want, sizeof want);
    if (!cJSON_IsNumber(v)) return bad_type(c, path, want, v);
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi ||
        (integral && (x != floor(x) || fabs(x) > MAX_EXACT_INT)))
        return bad_type(c, path, want, v);
    *out = x;
    return ZOFF_OK;
}

/* An integral number, or a size string such as "16M" / "2GiB" (k = 1024). */
static zoff_status get_size(pctx *c, const cJSON *v, const char *path, double lo, double hi,
                            uint64_t *out)
{
    char want[128], got[96];
    range_text("an integer or a size string such as \"16M\"", lo, hi, want, sizeof want);
    if (cJSON_IsString(v)) {
        uint64_t x;
        if (zoff__parse_size(v->valuestring, &x) != ZOFF_OK || (double)x < lo || (double)x > hi)
            return cerr(c, path, "expected %s, got %s", want, describe(v, got, sizeof got));
        *out = x;
        return ZOFF_OK;
    }
    double x = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    if (!cJSON_IsNumber(v) || !(x >= lo && x <= hi) || x != floor(x) || x > MAX_EXACT_INT)
        return bad_type(c, path, want, v);
    *out = (uint64_t)x;
    return ZOFF_OK;
}

static zoff_status get_string(pctx *c, const cJSON *v, const char *path, char *buf, size_t len)
{
    if (!cJSON_IsString(v)) return bad_type(c, path, "a string", v);
    if (strlen(v->valuestring) >= len)
        return cerr(c, path, "string of %zu bytes is too long (at most %zu)",
                    strlen(v->valuestring), len - 1);
    snprintf(buf, len, "%s", v->valuestring);
    return ZOFF_OK;
}

static zoff_status get_enum(pctx *c, const cJSON *v, const char *path, const enum_name *names,
                            int *out)
{
    char want[128];
    enum_list(names, want, sizeof want);
    if (!cJSON_IsString(v) || !enum_from_name(names, v->valuestring, out)) {
        char got[96];
        return cerr(c, path, "expected %s, got %s", want, describe(v, got, sizeof got));
    }
    return ZOFF_OK;
}

static void info_ignored(pctx *c, const char *path, const char *note)
{
    ZOFF_INFO(ZOFF_SUB_CONFIG, "%s: %s is accepted and ignored (%s)", c->origin, path, note);
}

/* Levenshtein distance of two short keys, capped (for "did you mean"). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = ZOFF_MIN(row[j] + 1, row[j - 1] + 1);
            row[j] = ZOFF_MIN(best, diag + cost);
            diag = up;
        }
    }
    return row[lb];
}

static zoff_status unknown_key(pctx *c, const char *path, const char *key, const key_desc *keys)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (const key_desc *d = keys; d->key; d++) {
        size_t dist = edit_distance(key, d->key);
        size_t shorter = ZOFF_MIN(strlen(key), strlen(d->key));
        if (dist <= ZOFF_MAX((size_t)1, shorter / 3) && dist < best_d) { /* close matches only */
            best_d = dist;
            best = d->key;
        }
    }
    /* DeepSpeed keys of the same section that zoff accepts and ignores are candidates too */
    size_t plen = strlen(path) - strlen(key); /* "section." prefix of path */
    for (const zoff__ds_key *k = zoff__ds_keys(); k->path; k++) {
        if (strncmp(k->path, path, plen) != 0 || strchr(k->path + plen, '.')) continue;
        const char *cand = k->path + plen;
        size_t dist = edit_distance(key, cand);
        size_t shorter = ZOFF_MIN(strlen(key), strlen(cand));
        if (dist <= ZOFF_MAX((size_t)1, shorter / 3) && dist < best_d) {
            best_d = dist;
            best = cand;
        }
    }
    if (best) return cerr(c, path, "unknown key (did you mean \"%s\"?)", best);
    char list[400];
    size_t used = 0;
    list[0] = '\0';
    for (const key_desc *d = keys; d->key; d++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", d->key);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
    }
    return cerr(c, path, "unknown key (known here: %s)", list);
}

static zoff_status walk(pctx *c, const cJSON *obj, const char *path, const key_desc *keys);

static zoff_status apply_auto(pctx *c, const key_desc *d, const cJSON *v, const char *path);

static int is_auto(const cJSON *v)
{
    return cJSON_IsString(v) && strcmp(v->valuestring, "auto") == 0;
}

static zoff_status apply(pctx *c, const key_desc *d, const cJSON *v, const char *path)
{
    double x;
    uint64_t u;
    int i = 0;
    if (is_auto(v) && d->kind != K_OBJECT && d->kind != K_SKIP) return apply_auto(c, d, v, path);
    switch (d->kind) {
    case K_OBJECT:
        return walk(c, v, path, d->sub);
    case K_INT64:
        ZOFF_CHECK(get_number(c, v, path, 1, d->lo, d->hi, &x));
        *(int64_t *)field(c, d) = (int64_t)x;
        return ZOFF_OK;
    case K_BOOL:
        ZOFF_CHECK(get_bool(c, v, path, &i));
        *(int *)field(c, d) = i;
        return ZOFF_OK;
    case K_INT:
        ZOFF_CHECK(get_number(c, v, path, 1, d->lo, d->hi, &x));
        *(int *)field(c, d) = (int)x;
        return ZOFF_OK;
    case K_FLOAT:
        ZOFF_CHECK(get_number(c, v, path, 0, d->lo, d->hi, &x));
        if (!isfinite((float)x)) return bad_type(c, path, "a number within float range", v);
        *(float *)field(c, d) = (float)x;
        return ZOFF_OK;
    case K_DOUBLE:
        ZOFF_CHECK(get_number(c, v, path, 0, d->lo, d->hi, &x));
        *(double *)field(c, d) = x;
        return ZOFF_OK;
    case K_SIZE:
        ZOFF_CHECK(get_size(c, v, path, d->lo, d->hi, &u));
        *(size_t *)field(c, d) = (size_t)u;
        return ZOFF_OK;
    case K_STRING:
        return get_string(c, v, path, (char *)field(c, d), d->len);
    case K_ENUM:
        ZOFF_CHECK(get_enum(c, v, path, d->enums, &i));
        memcpy(field(c, d), &i, sizeof i);
        return ZOFF_OK;
    case K_CUSTOM:
        return d->fn(c, v, path);
    case K_IGNORE_BOOL:
        if (!cJSON_IsBool(v)) return bad_type(c, path, "true or false", v);
        info_ignored(c, path, d->note);
        return ZOFF_OK;
    case K_IGNORE_NUM:
        if (!cJSON_IsNumber(v)) return bad_type(c, path, "a number", v);
        info_ignored(c, path, d->note);
        return ZOFF_OK;
    case K_IGNORE_ANY:
        info_ignored(c, path, d->note);
        return ZOFF_OK;
    case K_SKIP:
        return ZOFF_OK;
    }
    return zoff__err(ZOFF_EINTERNAL, "config: key kind %d of %s", (int)d->kind, path);
}

/* Warns once about a DeepSpeed key zoff does not act on; `detail` says what was given. */
static void warn_ignored(pctx *c, const char *path, const char *detail, const char *note)
{
    ZOFF_WARN(ZOFF_SUB_CONFIG, "%s: %s%s is accepted and ignored: %s", c->origin, path, detail,
              note);
}

/* A section that is switched off ("enabled": false, "device": "none"): ignoring it changes
 * nothing, so it is said at INFO level only. */
static int section_off(const cJSON *v)
{
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(v, "enabled");
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(v, "device");
    if (en && cJSON_IsFalse(en)) return 1;
    if (dev && cJSON_IsString(dev) && strcasecmp(dev->valuestring, "none") == 0) return 1;
    return 0;
}

/* Type-checks a value against DeepSpeed's schema type ("auto" is accepted for scalars). */
static zoff_status ds_check_type(pctx *c, const zoff__ds_key *k, const cJSON *v, const char *path)
{
    if (is_auto(v) && k->type != DS_OBJECT) return ZOFF_OK;
    switch (k->type) {
    case DS_BOOL:
        return cJSON_IsBool(v) ? ZOFF_OK : bad_type(c, path, "true or false", v);
    case DS_INT:
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return bad_type(c, path, "an integer", v);
        return ZOFF_OK;
    case DS_NUMBER:
        return cJSON_IsNumber(v) ? ZOFF_OK : bad_type(c, path, "a number", v);
    case DS_STRING:
        return cJSON_IsString(v) ? ZOFF_OK : bad_type(c, path, "a string", v);
    case DS_LIST:
        return cJSON_IsArray(v) ? ZOFF_OK : bad_type(c, path, "an array", v);
    case DS_OBJECT:
    case DS_OPAQUE:
        return cJSON_IsObject(v) ? ZOFF_OK : bad_type(c, path, "an object", v);
    case DS_ANY:
        return ZOFF_OK;
    }
    return ZOFF_OK;
}

/* A key of DeepSpeed's schema that zoff does not act on: check it (a section's keys against the
 * schema too) and warn once. */
static zoff_status ds_ignored(pctx *c, const zoff__ds_key *k, const cJSON *v, const char *path,
                              int quiet)
{
    int bad = c->nerr;
    ZOFF_CHECK(ds_check_type(c, k, v, path));
    if (k->type == DS_OBJECT) {
        for (const cJSON *it = v->child; it; it = it->next) {
            char sub[PATH_LEN];
            snprintf(sub, sizeof sub, "%s.%s", path, it->string);
            const zoff__ds_key *sk = zoff__ds_key_find(sub);
            static const key_desc none[] = {{.key = NULL}};
            if (!sk)
                unknown_key(c, sub, it->string, none);
            else
                ds_ignored(c, sk, it, sub, 1);
        }
    }
    if (c->nerr != bad || quiet) return c->nerr != bad ? ZOFF_ECONFIG : ZOFF_OK;
    char detail[112] = "";
    if (cJSON_IsObject(v))
        snprintf(detail, sizeof detail, " (section)");
    else {
        char got[96];
        snprintf(detail, sizeof detail, " = %s", describe(v, got, sizeof got));
    }
    if (cJSON_IsObject(v) && section_off(v))
        ZOFF_INFO(ZOFF_SUB_CONFIG, "%s: %s is switched off; zoff ignores it (%s)", c->origin, path,
                  k->note);
    else
        warn_ignored(c, path, detail, k->note);
    return ZOFF_OK;
}

static zoff_status walk(pctx *c, const cJSON *obj, const char *path, const key_desc *keys)
{
    if (!cJSON_IsObject(obj)) return bad_type(c, path[0] ? path : "(top level)", "an object", obj);
    int bad = c->nerr, start = c->nerr;
    for (const cJSON *it = obj->child; it; it = it->next) {
        char sub[PATH_LEN];
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", it->string);
        int dup = 0;
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            dup = dup || strcmp(prev->string, it->string) == 0;
        if (dup) {
            cerr(c, sub, "duplicate key");
            continue;
        }
        const key_desc *d = keys;
        while (d->key && strcmp(d->key, it->string) != 0) d++;
        if (d->key) {
            zoff_status st = apply(c, d, it, sub);
            if (st < 0 && c->nerr == bad) cerr(c, sub, "%s", zoff__last_error_tls());
            bad = c->nerr;
            continue;
        }
        const zoff__ds_key *k = zoff__ds_key_find(sub);
        if (k)
            ds_ignored(c, k, it, sub, 0);
        else
            unknown_key(c, sub, it->string, keys);
        bad = c->nerr;
    }
    return c->nerr > start ? ZOFF_ECONFIG : ZOFF_OK; /* errors of this section only */
}

/* ---- custom keys ---------------------------------------------------------------------------- */
static zoff_status on_optimizer_type(pctx *c, const cJSON *v, const char *path)
{
    c->cfg->optimizer_type = ZOFF_OPTIM_ADAM;
    if (cJSON_IsString(v) && strcasecmp(v->valuestring, "adam") == 0)
        c->opt_type = 0;
    else if (cJSON_IsString(v) && strcasecmp(v->valuestring, "adamw") == 0)
        c->opt_type = 1;
    else if (cJSON_IsString(v) && strcasecmp(v->valuestring, "lion") == 0)
        c->opt_type = 2, c->cfg->optimizer_type = ZOFF_OPTIM_LION;
    else if (cJSON_IsString(v) && strcasecmp(v->valuestring, "adagrad") == 0)
        c->opt_type = 3, c->cfg->optimizer_type = ZOFF_OPTIM_ADAGRAD;
    else
        return bad_type(c, path,
                        "\"Adam\", \"AdamW\", \"Lion\" or \"Adagrad\" (other DeepSpeed optimizers "
                        "are not supported)",
                        v);
    return ZOFF_OK;
}

static zoff_status on_betas(pctx *c, const cJSON *v, const char *path)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
        return bad_type(c, path, "an array of two numbers [beta1, beta2]", v);
    float b[2];
    for (int k = 0; k < 2; k++) {
        char sub[PATH_LEN];
        double x;
        snprintf(sub, sizeof sub, "%s[%d]", path, k);
        const cJSON *e = cJSON_GetArrayItem(v, k);
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0.0 && e->valuedouble < 1.0))
            return bad_type(c, sub, "a number in [0, 1)", e);
        x = e->valuedouble;
        b[k] = (float)x;
        if (!(b[k] < 1.0f)) return cerr(c, sub, "%.17g rounds to 1 as a float", x);
    }
    c->cfg->optimizer.beta1 = b[0];
    c->cfg->optimizer.beta2 = b[1];
    return ZOFF_OK;
}

static zoff_status on_adam_w_mode(pctx *c, const cJSON *v, const char *path)
{
    return get_bool(c, v, path, &c->adam_w_mode);
}

static zoff_status on_amsgrad(pctx *c, const cJSON *v, const char *path)
{
    int on = 0;
    ZOFF_CHECK(get_bool(c, v, path, &on));
    if (on) return cerr(c, path, "AMSGrad is not supported by zoff's CPU Adam; set false");
    return ZOFF_OK;
}

static zoff_status on_offload_device(pctx *c, const cJSON *v, const char *path)
{
    int tier;
    if (cJSON_IsString(v) && strcasecmp(v->valuestring, "none") == 0) {
        warn_ignored(c, path, " = \"none\"",
                     "zoff always keeps the optimizer state off the GPU: it stays in pinned host "
                     "memory (device \"cpu\")");
        c->cfg->tier = ZOFF_TIER_CPU;
        return ZOFF_OK;
    }
    ZOFF_CHECK(get_enum(c, v, path, tier_names, &tier));
    c->cfg->tier = (zoff_tier)tier;
    return ZOFF_OK;
}

static zoff_status on_nvme_path(pctx *c, const cJSON *v, const char *path)
{
    char joined[ZOFF_PATH_MAX];
    size_t used = 0;
    joined[0] = '\0';
    if (cJSON_IsString(v)) {
        if (strlen(v->valuestring) >= sizeof joined)
            return cerr(c, path, "path list of %zu bytes is too long (at most %d)",
                        strlen(v->valuestring), ZOFF_PATH_MAX - 1);
        snprintf(joined, sizeof joined, "%s", v->valuestring);
    } else if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if (n == 0) return cerr(c, path, "expected at least one directory, got an empty array");
        for (int k = 0; k < n; k++) {
            char sub[PATH_LEN];
            snprintf(sub, sizeof sub, "%s[%d]", path, k);
            const cJSON *e = cJSON_GetArrayItem(v, k);
            if (!cJSON_IsString(e) || e->valuestring[0] == '\0')
                return bad_type(c, sub, "a non-empty directory string", e);
            if (strchr(e->valuestring, ','))
                return cerr(c, sub, "directory names cannot contain ',' (the list separator)");
            int w =
                snprintf(joined + used, sizeof joined - used, "%s%s", k ? "," : "", e->valuestring);
            if (w < 0 || (size_t)w >= sizeof joined - used)
                return cerr(c, path, "joined path list is too long (at most %d bytes)",
                            ZOFF_PATH_MAX - 1);
            used += (size_t)w;
        }
    } else {
        return bad_type(c, path, "a directory string or an array of directory strings", v);
    }
    memcpy(c->cfg->nvme_path, joined, sizeof joined);
    return ZOFF_OK;
}

static zoff_status on_buffer_size(pctx *c, const cJSON *v, const char *path)
{
    uint64_t x;
    ZOFF_CHECK(get_size(c, v, path, 1, MAX_EXACT_INT, &x));
    c->has_buffer_size = 1;
    c->buffer_size = (size_t)x;
    return ZOFF_OK;
}

static zoff_status on_partition_numel(pctx *c, const cJSON *v, const char *path)
{
    uint64_t x;
    ZOFF_CHECK(get_size(c, v, path, 1, MAX_EXACT_INT, &x));
    c->has_partition_numel = 1;
    c->cfg->partition_numel = (size_t)x;
    return ZOFF_OK;
}

static zoff_status on_offload_param_device(pctx *c, const cJSON *v, const char *path)
{
    if (cJSON_IsString(v) && strcasecmp(v->valuestring, "none") == 0) {
        c->cfg->stream_params = 0;
        return ZOFF_OK;
    }
    if (cJSON_IsString(v) && strcasecmp(v->valuestring, "cpu") == 0) {
        c->cfg->stream_params = 1;
        return ZOFF_OK;
    }
    if (cJSON_IsString(v) && strcasecmp(v->valuestring, "nvme") == 0) { /* DeepSpeed's ZeRO-3 */
        warn_ignored(c, path, " = \"nvme\"",
                     "streamed 16-bit weights live in pinned host memory: zoff runs device "
                     "\"cpu\" (NVMe holds the optimizer state with offload_optimizer.device "
                     "\"nvme\")");
        c->cfg->stream_params = 1;
        return ZOFF_OK;
    }
    return bad_type(c, path,
                    "\"none\" (16-bit weights resident on the GPU) or \"cpu\" (streamed layer by "
                    "layer from pinned host memory; nvme is not supported for parameters)",
                    v);
}

static zoff_status on_offload_param_buffer_count(pctx *c, const cJSON *v, const char *path)
{
    double x;
    ZOFF_CHECK(get_number(c, v, path, 1, 1, 65, &x));
    c->cfg->prefetch_depth = (int)x - 1;
    return ZOFF_OK;
}

static zoff_status on_offload_param_buffer_size(pctx *c, const cJSON *v, const char *path)
{
    uint64_t x;
    ZOFF_CHECK(get_size(c, v, path, 1, MAX_EXACT_INT / 2, &x));
    c->cfg->stream_slot_bytes = (size_t)x * 2; /* elements of 16-bit weights */
    return ZOFF_OK;
}

static zoff_status on_use_gds(pctx *c, const cJSON *v, const char *path)
{
    int on = 0;
    ZOFF_CHECK(get_bool(c, v, path, &on));
    if (on)
        return cerr(c, path,
                    "GPUDirect Storage is not supported: zoff's NVMe traffic goes through pinned "
                    "host memory; set false");
    return ZOFF_OK;
}

static zoff_status on_aio_odirect(pctx *c, const cJSON *v, const char *path)
{
    if (cJSON_IsBool(v)) {
        c->cfg->aio_odirect = cJSON_IsTrue(v) ? 1 : 0;
        return ZOFF_OK;
    }
    double x;
    if (!cJSON_IsNumber(v))
        return bad_type(c, path, "-1 (probe), 0 (buffered), 1 (O_DIRECT), true or false", v);
    ZOFF_CHECK(get_number(c, v, path, 1, -1, 1, &x));
    c->cfg->aio_odirect = (int)x;
    return ZOFF_OK;
}

static zoff_status on_cpu_isa(pctx *c, const cJSON *v, const char *path)
{
    if (!cJSON_IsString(v) ||
        !(strcasecmp(v->valuestring, "auto") == 0 || isa_known(v->valuestring)))
        return bad_type(c, path, "\"auto\", \"scalar\", \"avx2\" or \"avx512\"", v);
    snprintf(c->cfg->cpu_isa, sizeof c->cfg->cpu_isa, "%s",
             strcasecmp(v->valuestring, "auto") == 0 ? "" : v->valuestring);
    return ZOFF_OK;
}

/* A seed: integral number up to 2^53, or a decimal/hex string for the full 64-bit range. */
static zoff_status on_jitter_seed(pctx *c, const cJSON *v, const char *path)
{
    if (cJSON_IsString(v)) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v->valuestring, &end, 0);
        if (errno || end == v->valuestring || *end || v->valuestring[0] == '-')
            return bad_type(c, path, "an integer >= 0 (number or decimal/hex string)", v);
        c->cfg->sim_jitter_seed = (uint64_t)x;
        return ZOFF_OK;
    }
    double x;
    ZOFF_CHECK(get_number(c, v, path, 1, 0, MAX_EXACT_INT, &x));
    c->cfg->sim_jitter_seed = (uint64_t)x;
    return ZOFF_OK;
}

/* ---- key tables (docs/config.md mirrors them) ----------------------------------------------- */
#define OFF(f) offsetof(zoff_config, f)
#define KBOOL(k, f)                                                                                \
    {                                                                                              \
        .key = k, .kind = K_BOOL, .off = OFF(f)                                                    \
    }
#define KINT(k, f, a, b)                                                                           \
    {                                                                                              \
        .key = k, .kind = K_INT, .off = OFF(f), .lo = (a), .hi = (b)                               \
    }
#define KFLOAT(k, f, a, b)                                                                         \
    {                                                                                              \
        .key = k, .kind = K_FLOAT, .off = OFF(f), .lo = (a), .hi = (b)                             \
    }
#define KDOUBLE(k, f, a, b)                                                                        \
    {                                                                                              \
        .key = k, .kind = K_DOUBLE, .off = OFF(f), .lo = (a), .hi = (b)                            \
    }
#define KSIZE(k, f, a, b)                                                                          \
    {                                                                                              \
        .key = k, .kind = K_SIZE, .off = OFF(f), .lo = (a), .hi = (b)                              \
    }
#define KSTR(k, f)                                                                                 \
    {                                                                                              \
        .key = k, .kind = K_STRING, .off = OFF(f), .len = sizeof(((zoff_config *)0)->f)            \
    }
#define KENUM(k, f, names)                                                                         \
    {                                                                                              \
        .key = k, .kind = K_ENUM, .off = OFF(f), .enums = names                                    \
    }
#define KFN(k, f)                                                                                  \
    {                                                                                              \
        .key = k, .kind = K_CUSTOM, .fn = f                                                        \
    }
#define KOBJ(k, t)                                                                                 \
    {                                                                                              \
        .key = k, .kind = K_OBJECT, .sub = t                                                       \
    }
#define KIGN(k, kd, why)                                                                           \
    {                                                                                              \
        .key = k, .kind = kd, .note = why                                                          \
    }
#define KEND                                                                                       \
    {                                                                                              \
        .key = NULL                                                                                \
    }
#define INF HUGE_VAL

static const key_desc optimizer_params_keys[] = {
    KFLOAT("lr", optimizer.lr, 0, INF),
    KFN("betas", on_betas),
    KFLOAT("eps", optimizer.eps, 0, INF),
    KFLOAT("weight_decay", optimizer.weight_decay, 0, INF),
    KBOOL("bias_correction", optimizer.bias_correction),
    KFLOAT("lr_decay", lr_decay, 0, INF),
    KFLOAT("initial_accumulator_value", initial_accumulator_value, 0, INF),
    KFN("adam_w_mode", on_adam_w_mode),
    KFN("amsgrad", on_amsgrad),
    KEND,
};

static const key_desc optimizer_keys[] = {
    KFN("type", on_optimizer_type),
    KOBJ("params", optimizer_params_keys),
    KEND,
};

static const key_desc fp16_keys[] = {
    KBOOL("enabled", fp16_enabled),
    KFLOAT("loss_scale", loss_scale, 0, INF),
    KINT("initial_scale_power", initial_scale_power, 0, 127),
    KINT("loss_scale_window", loss_scale_window, 1, INT32_MAX),
    KINT("hysteresis", hysteresis, 1, INT32_MAX),
    KFLOAT("min_loss_scale", min_loss_scale, 0x1p-126, INF),
    KEND,
};

static const key_desc bf16_keys[] = {
    KBOOL("enabled", bf16_enabled),
    KEND,
};

static const key_desc offload_optimizer_keys[] = {
    KFN("device", on_offload_device),
    KFN("nvme_path", on_nvme_path),
    KBOOL("pin_memory", pin_memory),
    KINT("buffer_count", buffer_count, 1, 1 << 20),
    KFN("buffer_size", on_buffer_size),
    KFLOAT("ratio", ratio, 0, 1),
    KEND,
};

static const key_desc offload_param_keys[] = {
    KFN("device", on_offload_param_device), KFN("buffer_count", on_offload_param_buffer_count),
    KFN("buffer_size", on_offload_param_buffer_size),
    KEND, /* nvme_path, pin_memory, max_in_cpu: runtime/ds_keys.c (warned) */
};

static zoff_status on_stage(pctx *c, const cJSON *v, const char *path)
{
    double x;
    ZOFF_CHECK(get_number(c, v, path, 1, 0, 3, &x));
    c->cfg->zero_stage = (int)x;
    if (x == 3) { /* parameter partitioning is not built: said once (refused with several ranks) */
        const zoff__ds_key *k = zoff__ds_key_find(path);
        warn_ignored(c, path, " = 3", k ? k->note : "");
    }
    return ZOFF_OK;
}

static zoff_status on_comm_timeout(pctx *c, const cJSON *v, const char *path)
{
    double x;
    ZOFF_CHECK(get_number(c, v, path, 1, 0, MAX_EXACT_INT, &x));
    c->cfg->comm_timeout_ms = (uint64_t)x;
    return ZOFF_OK;
}

static const key_desc zero_optimization_keys[] = {
    KFN("stage", on_stage),
    KOBJ("offload_optimizer", offload_optimizer_keys),
    KOBJ("offload_param", offload_param_keys),
    KSIZE("reduce_bucket_size", grad_bucket_numel, 1, (double)((uint64_t)1 << 40)),
    KEND,
};

static const key_desc aio_keys[] = {
    KSIZE("block_size", aio_block_size, 4096, AIO_MAX_BLOCK_BYTES),
    KINT("queue_depth", aio_queue_depth, 1, AIO_MAX_QUEUE_DEPTH),
    KFN("use_gds", on_use_gds),
    KEND,
};

static const key_desc zoff_keys[] = {
    KFN("partition_numel", on_partition_numel),
    KENUM("state_format", state_format, state_names),
    KSIZE("tile_numel", tile_numel, 1, MAX_EXACT_INT),
    KENUM("overlap", overlap, overlap_names),
    KINT("delayed_warmup_steps", delayed_warmup_steps, 0, INT32_MAX),
    KINT("grad_bucket_count", grad_bucket_count, 2, 64),
    KINT("grad_bucket_grow", grad_bucket_grow, 0, 1),
    KINT("cpu_threads", cpu_threads, 0, CPU_THREADS_MAX),
    KFN("cpu_isa", on_cpu_isa),
    KINT("numa_node", numa_node, -1, 65535),
    KENUM("device", device, device_names),
    KINT("cuda_device", cuda_device, 0, 65535),
    KSIZE("sim_gpu_bytes", sim_gpu_bytes, 1, MAX_EXACT_INT),
    KINT("prefetch_depth", prefetch_depth, 0, 64),
    KSIZE("stream_slot_bytes", stream_slot_bytes, 0, MAX_EXACT_INT),
    KDOUBLE("sim_pcie_gbps", sim_pcie_gbps, 0, INF),
    KFN("sim_jitter_seed", on_jitter_seed),
    KENUM("aio_engine", aio_engine, engine_names),
    KFN("aio_odirect", on_aio_odirect),
    KBOOL("verify_crc", verify_crc),
    KSTR("trace_path", trace_path),
    KINT("ranks", ranks, 0, 1),
    KFN("comm_timeout_ms", on_comm_timeout),
    KINT("min_scale_overflow_limit", min_scale_overflow_limit, 0, 1000000000),
    KEND,
};

/* ---- scheduler ------------------------------------------------------------------------------ */
static const enum_name sched_names[] = {{"WarmupLR", ZOFF_SCHED_WARMUP_LR},
                                        {"WarmupDecayLR", ZOFF_SCHED_WARMUP_DECAY_LR},
                                        {"WarmupCosineLR", ZOFF_SCHED_WARMUP_COSINE_LR},
                                        {"OneCycle", ZOFF_SCHED_ONE_CYCLE},
                                        {"LRRangeTest", ZOFF_SCHED_LR_RANGE_TEST},
                                        {NULL, 0}};
static const enum_name warmup_type_names[] = {{"log", 0}, {"linear", 1}, {NULL, 0}};

#define SOFF(f) offsetof(zoff_config, scheduler.f)
#define SDBL(k, a, b)                                                                              \
    {                                                                                              \
        .key = #k, .kind = K_DOUBLE, .off = SOFF(k), .lo = (a), .hi = (b)                          \
    }
#define SI64(k, a, b)                                                                              \
    {                                                                                              \
        .key = #k, .kind = K_INT64, .off = SOFF(k), .lo = (a), .hi = (b)                           \
    }

static zoff_status on_warmup_type(pctx *c, const cJSON *v, const char *path)
{
    int t;
    ZOFF_CHECK(get_enum(c, v, path, warmup_type_names, &t));
    c->cfg->scheduler.warmup_linear = t;
    return ZOFF_OK;
}

static zoff_status on_cycle_momentum(pctx *c, const cJSON *v, const char *path)
{
    return get_bool(c, v, path, &c->cfg->scheduler.cycle_momentum);
}

static zoff_status on_staircase(pctx *c, const cJSON *v, const char *path)
{
    return get_bool(c, v, path, &c->cfg->scheduler.lr_range_test_staircase);
}

/* Every parameter of every schedule; which belong to which type is checked after the walk. */
static const key_desc scheduler_params_keys[] = {
    SDBL(warmup_min_lr, 0, INF),
    SDBL(warmup_max_lr, 0, INF),
    SI64(warmup_num_steps, 0, MAX_EXACT_INT),
    KFN("warmup_type", on_warmup_type),
    SI64(total_num_steps, 1, MAX_EXACT_INT),
    SDBL(warmup_min_ratio, 0, 1),
    SDBL(cos_min_ratio, 0, 1),
    SDBL(cycle_min_lr, 0, INF),
    SDBL(cycle_max_lr, 0, INF),
    SDBL(decay_lr_rate, 0, INF),
    SI64(cycle_first_step_size, 1, MAX_EXACT_INT),
    SI64(cycle_second_step_size, 0, MAX_EXACT_INT),
    SI64(cycle_first_stair_count, 0, MAX_EXACT_INT),
    SI64(cycle_second_stair_count, 0, MAX_EXACT_INT),
    SI64(decay_step_size, 0, MAX_EXACT_INT),
    KFN("cycle_momentum", on_cycle_momentum),
    SDBL(cycle_min_mom, 0, 0.999999),
    SDBL(cycle_max_mom, 0, 0.999999),
    SDBL(decay_mom_rate, -1, INF),
    SDBL(lr_range_test_min_lr, 0, INF),
    SI64(lr_range_test_step_size, 1, MAX_EXACT_INT),
    SDBL(lr_range_test_step_rate, 0, INF),
    KFN("lr_range_test_staircase", on_staircase),
    KEND,
};

/* The parameters each schedule takes (DeepSpeed passes params as keyword arguments: any other
 * key is an error there too). */
static const char *const sched_params_of[][16] = {
    [ZOFF_SCHED_WARMUP_LR] = {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type"},
    [ZOFF_SCHED_WARMUP_DECAY_LR] = {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps",
                                    "warmup_type", "total_num_steps"},
    [ZOFF_SCHED_WARMUP_COSINE_LR] = {"warmup_min_ratio", "warmup_num_steps", "cos_min_ratio",
                                     "warmup_type", "total_num_steps"},
    [ZOFF_SCHED_ONE_CYCLE] = {"cycle_min_lr", "cycle_max_lr", "decay_lr_rate",
                              "cycle_first_step_size", "cycle_second_step_size",
                              "cycle_first_stair_count", "cycle_second_stair_count",
                              "decay_step_size", "cycle_momentum", "cycle_min_mom", "cycle_max_mom",
                              "decay_mom_rate"},
    [ZOFF_SCHED_LR_RANGE_TEST] = {"lr_range_test_min_lr", "lr_range_test_step_size",
                                  "lr_range_test_step_rate", "lr_range_test_staircase"},
};

static zoff_status on_scheduler_type(pctx *c, const cJSON *v, const char *path)
{
    int t;
    ZOFF_CHECK(get_enum(c, v, path, sched_names, &t));
    c->cfg->scheduler.type = (zoff_lr_schedule)t;
    return ZOFF_OK;
}

static zoff_status on_scheduler_params(pctx *c, const cJSON *v, const char *path)
{
    if (!cJSON_IsObject(v)) return bad_type(c, path, "an object", v);
    for (const cJSON *it = v->child; it; it = it->next)
        if (c->nsched_keys < 16)
            snprintf(c->sched_keys[c->nsched_keys++], sizeof c->sched_keys[0], "%s", it->string);
    return walk(c, v, path, scheduler_params_keys);
}

static zoff_status on_scheduler(pctx *c, const cJSON *v, const char *path);

static const key_desc scheduler_keys[] = {
    KFN("type", on_scheduler_type),
    KFN("params", on_scheduler_params),
    KEND,
};

static zoff_status on_scheduler(pctx *c, const cJSON *v, const char *path)
{
    c->sched_given = 1;
    return walk(c, v, path, scheduler_keys);
}

/* Scheduler rules after the walk: type given, parameters of that type only, required ones. */
static void scheduler_check(pctx *c)
{
    zoff_scheduler_config *sc = &c->cfg->scheduler;
    if (!c->sched_given) return;
    if (sc->type == ZOFF_SCHED_NONE) {
        char names[160];
        cerr(c, "scheduler.type", "required (one of %s)",
             enum_list(sched_names, names, sizeof names));
        return;
    }
    const char *const *allowed = sched_params_of[sc->type];
    for (int i = 0; i < c->nsched_keys; i++) {
        int ok = 0;
        for (int k = 0; k < 16 && allowed[k]; k++)
            ok = ok || strcmp(allowed[k], c->sched_keys[i]) == 0;
        if (!ok) {
            char sub[PATH_LEN], list[400] = "";
            size_t used = 0;
            for (int k = 0; k < 16 && allowed[k]; k++) {
                int w =
                    snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", allowed[k]);
                if (w > 0) used = ZOFF_MIN(sizeof list - 1, used + (size_t)w);
            }
            snprintf(sub, sizeof sub, "scheduler.params.%s", c->sched_keys[i]);
            cerr(c, sub, "not a parameter of %s (it takes: %s)",
                 enum_to_name(sched_names, (int)sc->type), list);
        }
    }
    if (sc->type == ZOFF_SCHED_WARMUP_DECAY_LR && isnan(sc->warmup_max_lr))
        sc->warmup_max_lr = 0.001; /* DeepSpeed's WarmupDecayLR default */
}

#define TRAINER_NOTE "a trainer setting; zoff only runs the optimizer"
static const key_desc top_keys[] = {
    KOBJ("optimizer", optimizer_keys),
    KOBJ("fp16", fp16_keys),
    KOBJ("bf16", bf16_keys),
    KOBJ("bfloat16", bf16_keys),
    KFLOAT("gradient_clipping", gradient_clipping, 0, INF),
    KOBJ("zero_optimization", zero_optimization_keys),
    KOBJ("aio", aio_keys),
    KOBJ("zoff", zoff_keys),
    KFN("scheduler", on_scheduler),
    {.key = "train_batch_size",
     .kind = K_INT64,
     .off = OFF(train_batch_size),
     .lo = 1,
     .hi = MAX_EXACT_INT},
    {.key = "train_micro_batch_size_per_gpu",
     .kind = K_INT64,
     .off = OFF(train_micro_batch_size_per_gpu),
     .lo = 1,
     .hi = MAX_EXACT_INT},
    {.key = "gradient_accumulation_steps",
     .kind = K_INT64,
     .off = OFF(gradient_accumulation_steps),
     .lo = 1,
     .hi = MAX_EXACT_INT},
    {.key = "model", .kind = K_SKIP},
    {.key = "train", .kind = K_SKIP},
    KEND,
};

/* ---- "auto" values ----------------------------------------------------------------------- */
static cJSON *tv_number(double x, int supplied)
{
    return supplied ? cJSON_CreateNumber(x) : NULL;
}

/* The trainer-supplied value for `path`, as a JSON value, or NULL. */
static cJSON *auto_value(const zoff_trainer_values *tv, const char *path)
{
    if (!strcmp(path, "optimizer.params.lr")) return tv_number(tv->lr, !isnan(tv->lr));
    if (!strcmp(path, "optimizer.params.weight_decay"))
        return tv_number(tv->weight_decay, !isnan(tv->weight_decay));
    if (!strcmp(path, "optimizer.params.eps")) return tv_number(tv->eps, !isnan(tv->eps));
    if (!strcmp(path, "gradient_clipping"))
        return tv_number(tv->gradient_clipping, !isnan(tv->gradient_clipping));
    if (!strcmp(path, "optimizer.params.betas") && !isnan(tv->beta1) && !isnan(tv->beta2)) {
        double b[2] = {tv->beta1, tv->beta2};
        return cJSON_CreateDoubleArray(b, 2);
    }
    if (!strcmp(path, "fp16.enabled") && tv->fp16 >= 0) return cJSON_CreateBool(tv->fp16);
    if ((!strcmp(path, "bf16.enabled") || !strcmp(path, "bfloat16.enabled")) && tv->bf16 >= 0)
        return cJSON_CreateBool(tv->bf16);
    if (!strcmp(path, "train_batch_size"))
        return tv_number((double)tv->train_batch_size, tv->train_batch_size > 0);
    if (!strcmp(path, "train_micro_batch_size_per_gpu"))
        return tv_number((double)tv->train_micro_batch_size_per_gpu,
                         tv->train_micro_batch_size_per_gpu > 0);
    if (!strcmp(path, "gradient_accumulation_steps"))
        return tv_number((double)tv->gradient_accumulation_steps,
                         tv->gradient_accumulation_steps > 0);
    if (!strcmp(path, "scheduler.params.warmup_min_lr"))
        return tv_number(tv->warmup_min_lr, !isnan(tv->warmup_min_lr));
    if (!strcmp(path, "scheduler.params.warmup_max_lr")) return tv_number(tv->lr, !isnan(tv->lr));
    if (!strcmp(path, "scheduler.params.warmup_num_steps"))
        return tv_number((double)tv->warmup_num_steps, tv->warmup_num_steps >= 0);
    if (!strcmp(path, "scheduler.params.total_num_steps"))
        return tv_number((double)tv->total_num_steps, tv->total_num_steps > 0);
    return NULL;
}

/* An effective key whose value is "auto": the trainer's value, else zoff's default (logged). */
static zoff_status apply_auto(pctx *c, const key_desc *d, const cJSON *v, const char *path)
{
    (void)v;
    cJSON *syn = auto_value(c->tv, path);
    if (syn) {
        char got[96];
        if (cJSON_IsArray(syn)) {
            snprintf(got, sizeof got, "[%g, %g]", c->tv->beta1, c->tv->beta2);
        } else {
            describe(syn, got, sizeof got);
        }
        zoff_status st = apply(c, d, syn, path);
        cJSON_Delete(syn);
        if (st == ZOFF_OK)
            ZOFF_WARN(ZOFF_SUB_CONFIG, "%s: %s = \"auto\" resolved to %s (supplied by the trainer)",
                      c->origin, path, got);
        return st;
    }
    const char *what = "zoff's default";
    if (!strcmp(path, "scheduler.params.total_num_steps"))
        return cerr(c, path,
                    "\"auto\" needs the trainer's step count (zoff_trainer_values."
                    "total_num_steps; zoff train passes --steps) and none was supplied: give a "
                    "number");
    if (!strcmp(path, "scheduler.params.warmup_max_lr")) {
        c->cfg->scheduler.warmup_max_lr = NAN;
        what = "each group's lr";
    } else if (!strcmp(path, "train_batch_size") || !strcmp(path, "gradient_accumulation_steps") ||
               !strcmp(path, "train_micro_batch_size_per_gpu")) {
        *(int64_t *)field(c, d) = 0;
        what = "derived from the other batch keys";
    }
    char val[64] = "";
    switch (isnan(c->cfg->scheduler.warmup_max_lr) &&
                    !strcmp(path, "scheduler.params.warmup_max_lr")
                ? K_SKIP
                : d->kind) {
    case K_FLOAT:
        snprintf(val, sizeof val, " %g", (double)*(float *)field(c, d));
        break;
    case K_DOUBLE:
        snprintf(val, sizeof val, " %g", *(double *)field(c, d));
        break;
    case K_INT:
        snprintf(val, sizeof val, " %d", *(int *)field(c, d));
        break;
    case K_INT64:
        if (*(int64_t *)field(c, d) > 0)
            snprintf(val, sizeof val, " %lld", (long long)*(int64_t *)field(c, d));
        break;
    case K_BOOL:
        snprintf(val, sizeof val, " %s", *(int *)field(c, d) ? "true" : "false");
        break;
    default:
        if (!strcmp(path, "optimizer.params.betas"))
            snprintf(val, sizeof val, " [%g, %g]", (double)c->cfg->optimizer.beta1,
                     (double)c->cfg->optimizer.beta2);
        break;
    }
    ZOFF_WARN(ZOFF_SUB_CONFIG, "%s: %s = \"auto\" resolved to %s%s (the trainer supplied none)",
              c->origin, path, what, val);
    return ZOFF_OK;
}

/* DeepSpeed's batch rules: fill the missing one of train_batch_size = micro * accumulation *
 * world size, then check the identity. Nothing given: all stay 0 (the trainer decides). */
static void batch_resolve(pctx *c)
{
    zoff_config *w = c->cfg;
    int64_t ws = c->tv->world_size > 0 ? c->tv->world_size : 1;
    int64_t tb = w->train_batch_size, mb = w->train_micro_batch_size_per_gpu,
            ga = w->gradient_accumulation_steps;
    if (tb && mb && ga) {
    } else if (tb && mb) {
        ga = tb / mb / ws;
    } else if (tb && ga) {
        mb = tb / ws / ga;
    } else if (mb && ga) {
        tb = mb * ga * ws;
    } else if (tb) {
        ga = 1;
        mb = tb / ws;
    } else if (mb) {
        tb = mb * ws;
        ga = 1;
    } else {
        if (ga)
            cerr(c, "gradient_accumulation_steps",
                 "given without train_batch_size or train_micro_batch_size_per_gpu (DeepSpeed "
                 "needs one of them)");
        return;
    }
    if (mb < 1 || ga < 1 || tb != mb * ga * ws) {
        cerr(c, "train_batch_size",
             "%lld is not train_micro_batch_size_per_gpu * gradient_accumulation_steps * world "
             "size = %lld * %lld * %lld",
             (long long)tb, (long long)mb, (long long)ga, (long long)ws);
        return;
    }
    w->train_batch_size = tb;
    w->train_micro_batch_size_per_gpu = mb;
    w->gradient_accumulation_steps = ga;
    if (ga > 1)
        ZOFF_INFO(ZOFF_SUB_CONFIG,
                  "%s: gradient_accumulation_steps = %lld: the runtime sums that many zoff_step "
                  "calls (micro-batches) into one update (zoff train: micro * accumulation = %lld "
                  "sequences per step)",
                  c->origin, (long long)ga, (long long)(mb * ga));
}

/* Line and column of byte `at` in text, for syntax errors. */
static void line_col(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

ZOFF_API zoff_status zoff_trainer_values_default(zoff_trainer_values *tv)
{
    if (!tv) return zoff__err(ZOFF_EINVAL, "zoff_trainer_values_default: NULL");
    memset(tv, 0, sizeof *tv);
    tv->struct_size = sizeof *tv;
    tv->lr = tv->weight_decay = tv->eps = tv->beta1 = tv->beta2 = NAN;
    tv->gradient_clipping = tv->warmup_min_lr = NAN;
    tv->warmup_num_steps = -1;
    tv->fp16 = tv->bf16 = -1;
    return ZOFF_OK;
}

zoff_status zoff__config_parse(zoff_config *cfg, const char *json, const char *origin)
{
    return zoff__config_parse_with(cfg, json, origin, NULL);
}

zoff_status zoff__config_parse_with(zoff_config *cfg, const char *json, const char *origin,
                                    const zoff_trainer_values *tv_in)
{
    zoff_status st = ZOFF_OK;
    cJSON *root = NULL;
    if (!origin) origin = "json";
    if (!cfg || !json) return zoff__err(ZOFF_EINVAL, "%s: NULL config or text", origin);
    zoff_trainer_values tv;
    zoff_trainer_values_default(&tv);
    if (tv_in) {
        if (tv_in->struct_size != sizeof tv)
            return zoff__err(ZOFF_EINVAL,
                             "%s: zoff_trainer_values.struct_size is %zu, expected %zu (fill it "
                             "with zoff_trainer_values_default)",
                             origin, tv_in->struct_size, sizeof tv);
        tv = *tv_in;
    }
    zoff_config work = *cfg;
    pctx c = {.origin = origin, .cfg = &work, .tv = &tv, .opt_type = -1, .adam_w_mode = -1};

    const char *p = json;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p == '\0') goto validate; /* an empty text: the starting values */

    const char *end = NULL;
    root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        int line, col;
        const char *at = end ? end : cJSON_GetErrorPtr();
        if (!at) at = json;
        line_col(json, at, &line, &col);
        char near[24];
        size_t k = 0;
        for (; k + 1 < sizeof near && at[k]; k++)
            near[k] = (at[k] == '\n' || at[k] == '\r' || at[k] == '\t') ? ' ' : at[k];
        near[k] = '\0';
        st = zoff__err(ZOFF_ECONFIG, "%s:%d:%d: JSON syntax error near \"%s\"", origin, line, col,
                       near);
        goto out;
    }
    walk(&c, root, "", top_keys);

    /* Lion / Adagrad: their papers' / torch's defaults for what the params leave out */
    if (c.opt_type >= 2) {
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "optimizer"), "params");
        if (c.opt_type == 2 && !cJSON_GetObjectItemCaseSensitive(params, "betas")) {
            work.optimizer.beta1 = 0.9f;
            work.optimizer.beta2 = 0.99f;
        }
        if (c.opt_type == 3 && !cJSON_GetObjectItemCaseSensitive(params, "eps"))
            work.optimizer.eps = 1e-10f;
        if (!cJSON_GetObjectItemCaseSensitive(params, "weight_decay"))
            work.optimizer.weight_decay = 0.0f;
        if (c.opt_type == 3 && !cJSON_GetObjectItemCaseSensitive(params, "lr"))
            work.optimizer.lr = 1e-2f;
        if (c.opt_type == 2 && !cJSON_GetObjectItemCaseSensitive(params, "lr"))
            work.optimizer.lr = 1e-4f;
    }

    /* Cross-key rules (DeepSpeed semantics). "Adam" runs AdamW unless adam_w_mode is false;
     * "AdamW" always runs AdamW (DeepSpeed ignores adam_w_mode false there: said once). */
    if (c.opt_type == 1 && c.adam_w_mode == 0 && !c.lion_adagrad)
        warn_ignored(&c, "optimizer.params.adam_w_mode", " = false",
                     "optimizer.type \"AdamW\" always runs AdamW, as in DeepSpeed (use type "
                     "\"Adam\" with adam_w_mode false for Adam with L2 weight decay)");
    if (c.opt_type == 0)
        work.optimizer.adamw_mode = c.adam_w_mode == 0 ? 0 : 1;
    else if (c.opt_type == 1)
        work.optimizer.adamw_mode = 1;
    else if (c.adam_w_mode >= 0)
        work.optimizer.adamw_mode = c.adam_w_mode;
    if (c.has_buffer_size) {
        if (c.has_partition_numel && work.partition_numel != c.buffer_size)
            cerr(&c, "zero_optimization.offload_optimizer.buffer_size",
                 "%zu contradicts zoff.partition_numel %zu (both set the elements per "
                 "partition; give one)",
                 c.buffer_size, work.partition_numel);
        else
            work.partition_numel = c.buffer_size;
    }
    scheduler_check(&c);
    batch_resolve(&c);
    if (c.nerr) {
        if (c.omitted)
            st = zoff__err(ZOFF_ECONFIG, "%s\n%s: and %d more errors", c.errs, origin, c.omitted);
        else
            st = zoff__err(ZOFF_ECONFIG, "%s", c.errs);
        goto out;
    }
    ZOFF_INFO(ZOFF_SUB_CONFIG, "%s: optimizer runs %s", origin,
              work.optimizer_type == ZOFF_OPTIM_LION      ? "Lion"
              : work.optimizer_type == ZOFF_OPTIM_ADAGRAD ? "Adagrad"
                                                          : zoff_optimizer_name(&work.optimizer));

validate:
    st = zoff__config_validate(&work);
    if (st < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        st = zoff__err(st, "%s: %s", origin, msg);
        goto out;
    }
    *cfg = work;
out:
    cJSON_Delete(root);
    return st;
}

ZOFF_API zoff_status zoff_config_from_json_string_with(zoff_config *cfg, const char *json,
                                                       const zoff_trainer_values *tv)
{
    zoff_config tmp;
    if (!cfg || !json)
        return zoff__err(ZOFF_EINVAL, "zoff_config_from_json_string: NULL config or text");
    zoff_config_default(&tmp);
    ZOFF_CHECK(zoff__config_parse_with(&tmp, json, "json string", tv));
    *cfg = tmp;
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_config_from_json_string(zoff_config *cfg, const char *json)
{
    return zoff_config_from_json_string_with(cfg, json, NULL);
}

ZOFF_API zoff_status zoff_config_from_json(zoff_config *cfg, const char *path)
{
    return zoff_config_from_json_with(cfg, path, NULL);
}

ZOFF_API zoff_status zoff_config_from_json_with(zoff_config *cfg, const char *path,
                                                const zoff_trainer_values *tv)
{
    zoff_status st = ZOFF_OK;
    char *text = NULL;
    int fd = -1;
    if (!cfg || !path) return zoff__err(ZOFF_EINVAL, "zoff_config_from_json: NULL config or path");

    fd = (int)ZOFF_SYS(open(path, O_RDONLY | O_CLOEXEC));
    if (fd < 0) {
        st = zoff__err(fd, "open %s: %s", path, strerror(-fd));
        fd = -1;
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = zoff__err(-errno, "fstat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = zoff__err(-EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size > CONFIG_FILE_MAX_BYTES) {
        st = zoff__err(ZOFF_ECONFIG, "%s: %lld bytes is too large for a config file (at most %u)",
                       path, (long long)sb.st_size, CONFIG_FILE_MAX_BYTES);
        goto out;
    }
    text = malloc((size_t)sb.st_size + 1);
    if (!text) {
        st = zoff__err(-ENOMEM, "%s: cannot allocate %lld bytes", path, (long long)sb.st_size);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)sb.st_size) {
        long r = ZOFF_SYS(read(fd, text + got, (size_t)sb.st_size - got));
        if (r < 0) {
            st = zoff__err((zoff_status)r, "read %s at offset %zu: %s", path, got,
                           strerror((int)-r));
            goto out;
        }
        if (r == 0) break; /* the file shrank: parse what is there */
        got += (size_t)r;
    }
    text[got] = '\0';
    if (strlen(text) != got) {
        st = zoff__err(ZOFF_ECONFIG, "%s: contains a NUL byte at offset %zu (not a JSON text)",
                       path, strlen(text));
        goto out;
    }

    zoff_config tmp;
    zoff_config_default(&tmp);
    ZOFF_CHECK_GOTO(zoff__config_parse_with(&tmp, text, path, tv), st, out);
    *cfg = tmp;
out:
    if (fd >= 0) close(fd);
    free(text);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Environment overrides                                                                      */
/* ------------------------------------------------------------------------------------------ */
static zoff_status env_err(zoff_param_id id, const char *want)
{
    return zoff__err(ZOFF_ECONFIG, "%s: expected %s, got \"%s\"", zoff__param_env_name(id), want,
                     zoff__param_str(id));
}

/* Integer in [lo, hi] (decimal or 0x hex, optional sign). */
static int env_int(zoff_param_id id, long long lo, long long hi, long long *out)
{
    const char *s = zoff__param_str(id);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

zoff_status zoff__config_apply_env(zoff_config *cfg)
{
    char want[128];
    long long v;
    if (!cfg) return zoff__err(ZOFF_EINVAL, "zoff__config_apply_env: NULL config");
    zoff_config work = *cfg;

    if (zoff__param_set(ZOFF_PARAM_DEVICE)) {
        int d;
        if (!enum_from_name(device_names, zoff__param_str(ZOFF_PARAM_DEVICE), &d))
            return env_err(ZOFF_PARAM_DEVICE, enum_list(device_names, want, sizeof want));
        work.device = (zoff_device_kind)d;
    }
    if (zoff__param_set(ZOFF_PARAM_SIM_JITTER)) {
        const char *s = zoff__param_str(ZOFF_PARAM_SIM_JITTER);
        char *end;
        errno = 0;
        unsigned long long seed = strtoull(s, &end, 0);
        if (errno || end == s || *end || s[0] == '-')
            return env_err(ZOFF_PARAM_SIM_JITTER, "a seed: an integer >= 0 (0 off)");
        work.sim_jitter_seed = (uint64_t)seed;
    }
    if (zoff__param_set(ZOFF_PARAM_SIM_GPU_BYTES)) {
        uint64_t bytes;
        if (zoff__parse_size(zoff__param_str(ZOFF_PARAM_SIM_GPU_BYTES), &bytes) != ZOFF_OK)
            return env_err(ZOFF_PARAM_SIM_GPU_BYTES, "a size such as 2G or 1073741824 (0: config)");
        if (bytes > 0) work.sim_gpu_bytes = (size_t)bytes;
    }
    if (zoff__param_set(ZOFF_PARAM_SIM_PCIE_GBPS)) {
        const char *s = zoff__param_str(ZOFF_PARAM_SIM_PCIE_GBPS);
        char *end;
        double g = strtod(s, &end);
        if (end == s || *end || !finite_in(g, 0.0, HUGE_VAL))
            return env_err(ZOFF_PARAM_SIM_PCIE_GBPS, "a number of GB/s >= 0 (0: unthrottled)");
        work.sim_pcie_gbps = g;
    }
    if (zoff__param_set(ZOFF_PARAM_AIO)) {
        int e;
        if (!enum_from_name(engine_names, zoff__param_str(ZOFF_PARAM_AIO), &e))
            return env_err(ZOFF_PARAM_AIO, enum_list(engine_names, want, sizeof want));
        work.aio_engine = (zoff_aio_engine)e;
    }
    if (zoff__param_set(ZOFF_PARAM_AIO_ODIRECT)) {
        const char *s = zoff__param_str(ZOFF_PARAM_AIO_ODIRECT);
        if (strcasecmp(s, "probe") == 0 || strcasecmp(s, "auto") == 0)
            work.aio_odirect = -1;
        else if (env_int(ZOFF_PARAM_AIO_ODIRECT, -1, 1, &v))
            work.aio_odirect = (int)v;
        else
            return env_err(ZOFF_PARAM_AIO_ODIRECT, "1 (O_DIRECT), 0 (buffered) or -1/probe");
    }
    if (zoff__param_set(ZOFF_PARAM_CPU_ISA)) {
        const char *s = zoff__param_str(ZOFF_PARAM_CPU_ISA);
        if (strcasecmp(s, "auto") == 0)
            work.cpu_isa[0] = '\0';
        else if (isa_known(s))
            snprintf(work.cpu_isa, sizeof work.cpu_isa, "%s", s);
        else
            return env_err(ZOFF_PARAM_CPU_ISA, "scalar, avx2, avx512 or auto");
    }
    if (zoff__param_set(ZOFF_PARAM_CPU_THREADS)) {
        if (!env_int(ZOFF_PARAM_CPU_THREADS, 0, CPU_THREADS_MAX, &v))
            return env_err(ZOFF_PARAM_CPU_THREADS, "an integer in [0, 1024] (0: config/auto)");
        if (v > 0) work.cpu_threads = (int)v;
    }
    if (zoff__param_set(ZOFF_PARAM_NUMA_NODE)) {
        if (!env_int(ZOFF_PARAM_NUMA_NODE, -1, 65535, &v))
            return env_err(ZOFF_PARAM_NUMA_NODE, "an integer >= -1 (-1: nearest the GPU)");
        work.numa_node = (int)v;
    }
    if (zoff__param_set(ZOFF_PARAM_COMM_TIMEOUT_MS)) {
        if (!env_int(ZOFF_PARAM_COMM_TIMEOUT_MS, 0, (long long)MAX_EXACT_INT, &v))
            return env_err(ZOFF_PARAM_COMM_TIMEOUT_MS, "milliseconds >= 0 (0: wait forever)");
        work.comm_timeout_ms = (uint64_t)v;
    }
    if (zoff__param_set(ZOFF_PARAM_TRACE)) {
        const char *s = zoff__param_str(ZOFF_PARAM_TRACE);
        if (strlen(s) >= sizeof work.trace_path)
            return zoff__err(ZOFF_ECONFIG, "ZOFF_TRACE: path of %zu bytes is too long (at most %d)",
                             strlen(s), ZOFF_PATH_MAX - 1);
        snprintf(work.trace_path, sizeof work.trace_path, "%s", s);
    }
    *cfg = work;
    return ZOFF_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON writer                                                                                */
/* ------------------------------------------------------------------------------------------ */
/* The double of the shortest decimal that reads back as `f` (so 1e-3f is written "0.001", not
 * "0.0010000000474974513"); (float) of the result is f again. */
double zoff__float_json(float f)
{
    char buf[32];
    for (int prec = 6; prec < 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

static cJSON *config_tree(const zoff_config *cfg)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = 1;
#define ADD(obj, call) ok = ok && (call) != NULL
    cJSON *opt = cJSON_AddObjectToObject(root, "optimizer");
    ADD(opt, opt);
    if (ok) {
        const zoff_group_config *g = &cfg->optimizer;
        const char *type = cfg->optimizer_type == ZOFF_OPTIM_LION      ? "Lion"
                           : cfg->optimizer_type == ZOFF_OPTIM_ADAGRAD ? "Adagrad"
                           : g->adamw_mode                             ? "AdamW"
                                                                       : "Adam";
        ADD(opt, cJSON_AddStringToObject(opt, "type", type));
        cJSON *p = cJSON_AddObjectToObject(opt, "params");
        ADD(p, p);
        if (ok) {
            ADD(p, cJSON_AddNumberToObject(p, "lr", zoff__float_json(g->lr)));
            cJSON *b = cJSON_AddArrayToObject(p, "betas");
            ADD(b, b);
            if (ok) {
                cJSON_AddItemToArray(b, cJSON_CreateNumber(zoff__float_json(g->beta1)));
                cJSON_AddItemToArray(b, cJSON_CreateNumber(zoff__float_json(g->beta2)));
                ok = cJSON_GetArraySize(b) == 2;
            }
            ADD(p, cJSON_AddNumberToObject(p, "eps", zoff__float_json(g->eps)));
            ADD(p, cJSON_AddNumberToObject(p, "weight_decay", zoff__float_json(g->weight_decay)));
            ADD(p, cJSON_AddBoolToObject(p, "bias_correction", g->bias_correction));
            ADD(p, cJSON_AddBoolToObject(p, "adam_w_mode", g->adamw_mode));
            if (cfg->optimizer_type == ZOFF_OPTIM_ADAGRAD) {
                ADD(p, cJSON_AddNumberToObject(p, "lr_decay", zoff__float_json(cfg->lr_decay)));
                ADD(p, cJSON_AddNumberToObject(p, "initial_accumulator_value",
                                               zoff__float_json(cfg->initial_accumulator_value)));
            }
        }
    }
    cJSON *fp16 = cJSON_AddObjectToObject(root, "fp16");
    ADD(fp16, fp16);
    if (ok) {
        ADD(fp16, cJSON_AddBoolToObject(fp16, "enabled", cfg->fp16_enabled));
        ADD(fp16, cJSON_AddNumberToObject(fp16, "loss_scale", zoff__float_json(cfg->loss_scale)));
        ADD(fp16, cJSON_AddNumberToObject(fp16, "initial_scale_power", cfg->initial_scale_power));
        ADD(fp16, cJSON_AddNumberToObject(fp16, "loss_scale_window", cfg->loss_scale_window));
        ADD(fp16, cJSON_AddNumberToObject(fp16, "hysteresis", cfg->hysteresis));
        ADD(fp16,
            cJSON_AddNumberToObject(fp16, "min_loss_scale", zoff__float_json(cfg->min_loss_scale)));
    }
    cJSON *bf16 = cJSON_AddObjectToObject(root, "bf16");
    ADD(bf16, bf16);
    if (ok) ADD(bf16, cJSON_AddBoolToObject(bf16, "enabled", cfg->bf16_enabled));
    ADD(root, cJSON_AddNumberToObject(root, "gradient_clipping",
                                      zoff__float_json(cfg->gradient_clipping)));
    if (cfg->gradient_accumulation_steps > 0)
        ADD(root, cJSON_AddNumberToObject(root, "gradient_accumulation_steps",
                                          (double)cfg->gradient_accumulation_steps));

    cJSON *zo = cJSON_AddObjectToObject(root, "zero_optimization");
    ADD(zo, zo);
    if (ok) ADD(zo, cJSON_AddNumberToObject(zo, "stage", cfg->zero_stage));
    cJSON *oo = ok ? cJSON_AddObjectToObject(zo, "offload_optimizer") : NULL;
    ADD(oo, oo);
    if (ok) {
        ADD(oo, cJSON_AddStringToObject(oo, "device", enum_to_name(tier_names, (int)cfg->tier)));
        if (cfg->nvme_path[0]) ADD(oo, cJSON_AddStringToObject(oo, "nvme_path", cfg->nvme_path));
        ADD(oo, cJSON_AddBoolToObject(oo, "pin_memory", cfg->pin_memory));
        ADD(oo, cJSON_AddNumberToObject(oo, "buffer_count", cfg->buffer_count));
        ADD(oo, cJSON_AddNumberToObject(oo, "ratio", zoff__float_json(cfg->ratio)));
    }
    ADD(zo, cJSON_AddNumberToObject(zo, "reduce_bucket_size", (double)cfg->grad_bucket_numel));
    cJSON *op = ok ? cJSON_AddObjectToObject(zo, "offload_param") : NULL;
    ADD(op, op);
    if (ok) ADD(op, cJSON_AddStringToObject(op, "device", cfg->stream_params ? "cpu" : "none"));
    cJSON *aio = cJSON_AddObjectToObject(root, "aio");
    ADD(aio, aio);
    if (ok) {
        ADD(aio, cJSON_AddNumberToObject(aio, "block_size", (double)cfg->aio_block_size));
        ADD(aio, cJSON_AddNumberToObject(aio, "queue_depth", cfg->aio_queue_depth));
    }
    cJSON *z = cJSON_AddObjectToObject(root, "zoff");
    ADD(z, z);
    if (ok) {
        ADD(z, cJSON_AddNumberToObject(z, "partition_numel", (double)cfg->partition_numel));
        ADD(z, cJSON_AddNumberToObject(z, "tile_numel", (double)cfg->tile_numel));
        ADD(z, cJSON_AddStringToObject(z, "state_format",
                                       enum_to_name(state_names, cfg->state_format)));
        ADD(z,
            cJSON_AddStringToObject(z, "overlap", enum_to_name(overlap_names, (int)cfg->overlap)));
        ADD(z, cJSON_AddNumberToObject(z, "delayed_warmup_steps", cfg->delayed_warmup_steps));
        ADD(z, cJSON_AddNumberToObject(z, "grad_bucket_count", cfg->grad_bucket_count));
        ADD(z, cJSON_AddNumberToObject(z, "grad_bucket_grow", cfg->grad_bucket_grow));
        ADD(z, cJSON_AddNumberToObject(z, "cpu_threads", cfg->cpu_threads));
        ADD(z, cJSON_AddStringToObject(z, "cpu_isa", cfg->cpu_isa[0] ? cfg->cpu_isa : "auto"));
        ADD(z, cJSON_AddNumberToObject(z, "numa_node", cfg->numa_node));
        ADD(z, cJSON_AddStringToObject(z, "device", enum_to_name(device_names, (int)cfg->device)));
        ADD(z, cJSON_AddNumberToObject(z, "cuda_device", cfg->cuda_device));
        ADD(z, cJSON_AddNumberToObject(z, "sim_gpu_bytes", (double)cfg->sim_gpu_bytes));
        ADD(z, cJSON_AddNumberToObject(z, "prefetch_depth", cfg->prefetch_depth));
        ADD(z, cJSON_AddNumberToObject(z, "stream_slot_bytes", (double)cfg->stream_slot_bytes));
        ADD(z, cJSON_AddNumberToObject(z, "sim_pcie_gbps", cfg->sim_pcie_gbps));
        if ((double)cfg->sim_jitter_seed <= MAX_EXACT_INT) {
            ADD(z, cJSON_AddNumberToObject(z, "sim_jitter_seed", (double)cfg->sim_jitter_seed));
        } else {
            char seed[32];
            snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->sim_jitter_seed);
            ADD(z, cJSON_AddStringToObject(z, "sim_jitter_seed", seed));
        }
        ADD(z, cJSON_AddStringToObject(z, "aio_engine",
                                       enum_to_name(engine_names, (int)cfg->aio_engine)));
        ADD(z, cJSON_AddNumberToObject(z, "aio_odirect", cfg->aio_odirect));
        ADD(z, cJSON_AddBoolToObject(z, "verify_crc", cfg->verify_crc));
        ADD(z, cJSON_AddStringToObject(z, "trace_path", cfg->trace_path));
        ADD(z, cJSON_AddNumberToObject(z, "ranks", cfg->ranks));
        ADD(z, cJSON_AddNumberToObject(z, "comm_timeout_ms", (double)cfg->comm_timeout_ms));
        ADD(z,
            cJSON_AddNumberToObject(z, "min_scale_overflow_limit", cfg->min_scale_overflow_limit));
    }
#undef ADD
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

size_t zoff__config_to_json(const zoff_config *cfg, char *buf, size_t len)
{
    if (!cfg) return 0;
    cJSON *root = config_tree(cfg);
    if (!root) return 0;
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return 0;
    size_t n = strlen(text);
    if (buf && len > 0) snprintf(buf, len, "%s", text);
    cJSON_free(text);
    return n;
}

int zoff__config_key_status(const char *path)
{
    const key_desc *keys = top_keys;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        const key_desc *d = keys;
        while (d->key && !(strlen(d->key) == n && strncmp(d->key, p, n) == 0)) d++;
        if (!d->key) break;
        if (!dot) return 1;
        if (d->kind == K_OBJECT) {
            keys = d->sub;
        } else if (d->fn == on_scheduler) {
            keys = scheduler_keys;
        } else if (d->fn == on_scheduler_params) {
            keys = scheduler_params_keys;
        } else {
            return 1; /* a custom key with its own sub-structure */
        }
        p = dot + 1;
    }
    return zoff__ds_key_find(path) ? 0 : -1;
}
