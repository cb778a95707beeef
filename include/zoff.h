/*
 * zoff.h — the public C API of zoff, a ZeRO-Offload heterogeneous memory runtime.
 *
 * This is the only header a user includes. It owns: status codes, version, dtypes, the
 * configuration struct, the runtime handle and its calls, device-memory helpers for trainers,
 * statistics and the planning report, and what a front end needs without a runtime: reading
 * and verifying a checkpoint (zoff_ckpt_*), the ZOFF_* environment parameters (zoff_env_next)
 * and probing the machine (zoff_probe_*). The `zoff` command line uses nothing else.
 *
 * Conventions (apply to every function below unless its comment says otherwise):
 *  - Every call returns a zoff_status: 0 (ZOFF_OK) on success, a negative value on error.
 *    Negative errno values (-ENOSPC, -EIO, ...) pass through unchanged; zoff's own codes live in
 *    [-1099, -1000]. zoff_strerror() names both kinds; zoff_last_error() gives the detailed
 *    message of the last failure (file, offset, call, errno where they apply).
 *  - Outputs are written through pointer arguments only on success.
 *  - Destroy functions accept NULL. The library never calls exit() or abort().
 *  - Structs that may grow start with `struct_size`; fill them with the *_default() calls or the
 *    *_INIT macros.
 *  - Thread safety: one zoff_runtime is used by one thread at a time (the trainer's thread).
 *    Different runtimes are independent. zoff_strerror/zoff_version are thread-safe.
 *
 * The docs pages (docs/NAME.md) named below are installed with the library under
 * <prefix>/share/doc/zoff/ (and are in the source tree's docs/).
 *
 * Logging and environment parameters (`zoff env` lists them with their defaults and current
 * values, docs/config.md documents them):
 *  - ZOFF_DEBUG=NONE|WARN|INFO|TRACE (default WARN): log level, to stderr.
 *  - ZOFF_DEBUG_SUBSYS=INIT,ALLOC,PIN,NVME,ADAM,XFER,STEP,CKPT,CONFIG,DEV,ALL (default ALL);
 *    a leading ^ excludes one (ALL,^NVME). ZOFF_DEBUG_FILE=path writes the log to a file.
 *  - ZOFF_DEVICE, ZOFF_SIM_GPU_BYTES, ZOFF_SIM_PCIE_GBPS, ZOFF_SIM_JITTER, ZOFF_CPU_ISA,
 *    ZOFF_CPU_THREADS, ZOFF_AIO, ZOFF_AIO_ODIRECT, ZOFF_NUMA_NODE, ZOFF_HUGE_PAGES, ZOFF_TRACE
 *    override the matching zoff_config fields when zoff_create() runs.
 */
#ifndef ZOFF_H
#define ZOFF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* memset in the zoff_*_init() helpers */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ZOFF_BUILDING_LIBRARY) && defined(__GNUC__)
#define ZOFF_API __attribute__((visibility("default")))
#else
#define ZOFF_API
#endif

/* ------------------------------------------------------------------------------------------ */
/* Version                                                                                    */
/* ------------------------------------------------------------------------------------------ */
#define ZOFF_VERSION_MAJOR 0
#define ZOFF_VERSION_MINOR 1
#define ZOFF_VERSION_PATCH 0
#define ZOFF_VERSION_NUMBER                                                                        \
    (ZOFF_VERSION_MAJOR * 10000 + ZOFF_VERSION_MINOR * 100 + ZOFF_VERSION_PATCH)

/* Returns the version string of the loaded library, e.g. "0.1.0". Static storage. */
ZOFF_API const char *zoff_version(void);
/* Returns ZOFF_VERSION_NUMBER of the loaded library (compare with the header's). */
ZOFF_API int zoff_version_number(void);

/* ------------------------------------------------------------------------------------------ */
/* Status codes                                                                               */
/* ------------------------------------------------------------------------------------------ */
/* X(name, value, description). Values 0 and [-1099, -1000] are zoff's; any other negative
 * value is -errno. */
#define ZOFF_STATUS_LIST(X)                                                                        \
    X(ZOFF_OK, 0, "success")                                                                       \
    X(ZOFF_EINTERNAL, -1000, "internal error (a bug in zoff)")                                     \
    X(ZOFF_EINVAL, -1001, "invalid argument")                                                      \
    X(ZOFF_ECONFIG, -1002, "invalid configuration")                                                \
    X(ZOFF_ESTATE, -1003, "call not allowed in the runtime's current state")                       \
    X(ZOFF_EDEVMEM, -1004, "out of device memory")                                                 \
    X(ZOFF_EDEVICE, -1005, "device error")                                                         \
    X(ZOFF_EUNSUPPORTED, -1006, "not supported by this build, device or system")                   \
    X(ZOFF_ECORRUPT, -1007, "data corrupted (checksum mismatch)")                                  \
    X(ZOFF_ENOFIT, -1008, "configuration does not fit in the available memory or disk")            \
    X(ZOFF_ENOTFOUND, -1009, "not found")                                                          \
    X(ZOFF_EFORMAT, -1010, "bad file format or version")                                           \
    X(ZOFF_EMISMATCH, -1011, "checkpoint does not match the registered parameters")                \
    X(ZOFF_ESHORTIO, -1012, "short read or write that could not be completed")                     \
    X(ZOFF_EINTERRUPTED, -1013, "interrupted")                                                     \
    X(ZOFF_EDIVERGED, -1014, "training diverged (loss scale stuck at its minimum)")

typedef enum zoff_status_code {
#define ZOFF__STATUS_ENUM(name, value, desc) name = value,
    ZOFF_STATUS_LIST(ZOFF__STATUS_ENUM)
#undef ZOFF__STATUS_ENUM
} zoff_status_code;

typedef int zoff_status;

/* Returns a static description of `st` (zoff codes and -errno values). Thread-safe. */
ZOFF_API const char *zoff_strerror(zoff_status st);
/* Returns the symbolic name of `st` ("ZOFF_ECORRUPT", "ENOSPC", ...). Static storage. */
ZOFF_API const char *zoff_status_name(zoff_status st);

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                      */
/* ------------------------------------------------------------------------------------------ */
typedef enum zoff_dtype {
    ZOFF_DTYPE_F32 = 0,  /* IEEE binary32 */
    ZOFF_DTYPE_F16 = 1,  /* IEEE binary16 */
    ZOFF_DTYPE_BF16 = 2, /* bfloat16 */
} zoff_dtype;

/* Returns the size of one element in bytes (4 or 2), 0 for an unknown dtype. */
ZOFF_API size_t zoff_dtype_size(zoff_dtype dt);
/* Returns "f32", "f16", "bf16" or "?". */
ZOFF_API const char *zoff_dtype_name(zoff_dtype dt);

typedef enum zoff_tier {
    ZOFF_TIER_CPU = 0,  /* optimizer state resident in pinned host memory */
    ZOFF_TIER_NVME = 1, /* optimizer state swapped to NVMe (config `ratio` keeps a part resident) */
} zoff_tier;

typedef enum zoff_overlap {
    ZOFF_OVERLAP_SYNC = 0,    /* update after the last gradient landed: exact AdamW */
    ZOFF_OVERLAP_EAGER = 1,   /* update a partition as soon as its gradients landed */
    ZOFF_OVERLAP_DELAYED = 2, /* one-step delayed parameter update after a warm-up */
} zoff_overlap;

typedef enum zoff_device_kind {
    ZOFF_DEVICE_AUTO = 0, /* CUDA when a GPU is present, otherwise sim (said once at INFO) */
    ZOFF_DEVICE_CUDA = 1,
    ZOFF_DEVICE_SIM = 2,
} zoff_device_kind;

typedef enum zoff_aio_engine {
    ZOFF_AIO_AUTO = 0,    /* io_uring, falling back to threads when refused */
    ZOFF_AIO_URING = 1,   /* io_uring only */
    ZOFF_AIO_THREADS = 2, /* pread/pwrite thread pool */
} zoff_aio_engine;

/* The optimizer zoff runs (zoff_config.optimizer_type); the group hyperparameters mean: Adam:
 * all; Lion: lr, beta1, beta2, weight_decay (decoupled); Adagrad: lr, eps, weight_decay (L2, as
 * torch.optim.Adagrad) plus zoff_config.lr_decay / initial_accumulator_value. */
typedef enum zoff_optimizer_type {
    ZOFF_OPTIM_ADAM = 0, /* Adam / AdamW (group adamw_mode) */
    ZOFF_OPTIM_LION = 1,
    ZOFF_OPTIM_ADAGRAD = 2,
} zoff_optimizer_type;

/* How the optimizer moments are stored (zoff_config.state_format); the master stays fp32. */
typedef enum zoff_state_format {
    ZOFF_STATE_FP32 = 0,
    ZOFF_STATE_BF16 = 1, /* bf16 moments (round to nearest even): 8 B/param for Adam */
    ZOFF_STATE_Q8 = 2,   /* blockwise 8-bit moments, 256 values per fp32 absmax: ~6 B/param */
} zoff_state_format;

#define ZOFF_PATH_MAX   1024
#define ZOFF_MAX_GROUPS 64

/* Hyperparameters of one parameter group. */
typedef struct zoff_group_config {
    size_t struct_size;
    float lr;           /* learning rate */
    float beta1, beta2; /* Adam betas */
    float eps;
    float weight_decay;
    int adamw_mode;      /* 1: decoupled weight decay (AdamW); 0: L2 added to the gradient (Adam) */
    int bias_correction; /* 1: Adam bias correction */
} zoff_group_config;

/* Fills `g` with defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, AdamW,
 * bias correction on. Returns ZOFF_EINVAL if g is NULL. */
ZOFF_API zoff_status zoff_group_config_default(zoff_group_config *g);

/* Learning-rate schedules: DeepSpeed's `scheduler.type` values, same parameters and formulas
 * (deepspeed/runtime/lr_schedules.py). docs/config.md gives each formula. */
typedef enum zoff_lr_schedule {
    ZOFF_SCHED_NONE = 0,             /* the trainer sets lr (zoff_set_group) */
    ZOFF_SCHED_WARMUP_LR = 1,        /* "WarmupLR" */
    ZOFF_SCHED_WARMUP_DECAY_LR = 2,  /* "WarmupDecayLR" */
    ZOFF_SCHED_WARMUP_COSINE_LR = 3, /* "WarmupCosineLR" (a ratio of each group's lr) */
    ZOFF_SCHED_ONE_CYCLE = 4,        /* "OneCycle" (lr, and beta1 with cycle_momentum) */
    ZOFF_SCHED_LR_RANGE_TEST = 5,    /* "LRRangeTest" */
} zoff_lr_schedule;

/* Parameters of the schedule (DeepSpeed's names and defaults; unused ones are ignored). */
typedef struct zoff_scheduler_config {
    zoff_lr_schedule type;
    /* WarmupLR, WarmupDecayLR, WarmupCosineLR */
    double warmup_min_lr;     /* 0 */
    double warmup_max_lr;     /* NaN: the group's lr (WarmupLR); WarmupDecayLR default 0.001 */
    int64_t warmup_num_steps; /* 1000 (DeepSpeed uses max(2, this)) */
    int warmup_linear;        /* warmup_type: 0 "log" (default), 1 "linear" */
    int64_t total_num_steps;  /* WarmupDecayLR, WarmupCosineLR: required */
    double warmup_min_ratio;  /* WarmupCosineLR: 0 */
    double cos_min_ratio;     /* WarmupCosineLR: 1e-4 */
    /* OneCycle */
    double cycle_min_lr, cycle_max_lr; /* required */
    double decay_lr_rate;              /* 0 */
    int64_t cycle_first_step_size;     /* 2000 */
    int64_t cycle_second_step_size;    /* -1: same as the first */
    int64_t cycle_first_stair_count;   /* 0: continuous */
    int64_t cycle_second_stair_count;  /* -1: same as the first */
    int64_t decay_step_size;           /* 0: no post-cycle decay */
    int cycle_momentum;                /* 1: beta1 cycles too (beta2 is then 0.99, as DeepSpeed) */
    double cycle_min_mom, cycle_max_mom; /* 0.8, 0.9 */
    double decay_mom_rate;               /* 0 */
    /* LRRangeTest */
    double lr_range_test_min_lr;     /* 1e-3 */
    int64_t lr_range_test_step_size; /* 2000 */
    double lr_range_test_step_rate;  /* 1.0 */
    int lr_range_test_staircase;     /* 0 */
} zoff_scheduler_config;

/* The runtime configuration. Fill with zoff_config_default() (or zoff_config_from_json(), which
 * starts from the defaults), then change fields. ZOFF_* environment variables override some
 * fields at zoff_create() time (docs/config.md lists them). */
typedef struct zoff_config {
    size_t struct_size;

    /* optimizer (group 0; zoff_add_group() adds more) */
    zoff_group_config optimizer;

    /* mixed precision and clipping */
    int fp16_enabled;        /* fp16 params/grads with dynamic (or static) loss scaling */
    float loss_scale;        /* 0: dynamic; > 0: static scale */
    int initial_scale_power; /* dynamic: initial scale = 2^power (default 16) */
    int loss_scale_window;   /* dynamic: clean steps before the scale is raised (1000) */
    int hysteresis;          /* dynamic: overflows tolerated before lowering (2) */
    float min_loss_scale;    /* dynamic: lower bound (1) */
    int bf16_enabled;        /* bf16 params/grads (no loss scaling) */
    float gradient_clipping; /* max global L2 norm; 0: off */

    /* offload */
    zoff_tier tier;                /* where the fp32 master + Adam state live */
    char nvme_path[ZOFF_PATH_MAX]; /* nvme tier: directories, comma-separated (striped) */
    int pin_memory;                /* 1: pinned host memory (fall back to pageable, warned) */
    int buffer_count;              /* nvme tier: pinned partition buffers in the pool (>= 3) */
    float ratio;                   /* nvme tier: fraction of partitions kept resident [0, 1] */
    size_t partition_numel;        /* elements per optimizer-state partition (swap unit) */
    size_t tile_numel;             /* elements per Adam/H2D staging tile */
    int numa_node;                 /* -1: nearest the GPU (hwloc) / none on sim */

    /* asynchronous I/O (DeepSpeed `aio` section) */
    size_t aio_block_size; /* bytes per I/O request */
    int aio_queue_depth;   /* I/Os in flight per engine */
    zoff_aio_engine aio_engine;
    int aio_odirect; /* -1: probe; 0: buffered; 1: O_DIRECT required */
    int verify_crc;  /* crc32c per swapped extent, checked on swap-in */

    /* pipeline */
    zoff_overlap overlap;
    int delayed_warmup_steps; /* `delayed`: synchronous steps before delaying */

    /* CPU */
    int cpu_threads;  /* 0: all cores of the chosen NUMA node */
    char cpu_isa[16]; /* "" (auto), "scalar", "avx2", "avx512" */

    /* device */
    zoff_device_kind device;
    int cuda_device;          /* CUDA ordinal */
    size_t sim_gpu_bytes;     /* sim: device memory capacity */
    double sim_pcie_gbps;     /* sim: copy bandwidth per direction (GB/s); 0: unthrottled */
    uint64_t sim_jitter_seed; /* sim: 0 off; otherwise random op delays from this seed */

    /* observability */
    char trace_path[ZOFF_PATH_MAX]; /* Chrome/Perfetto trace file; "" off */

    /* several ranks, one process per GPU (docs/multi-gpu.md) */
    int zero_stage; /* zero_optimization.stage (default 2). With several ranks the optimizer state
                       is sharded; 0 and 1: gradients all-reduced, 2: reduce-scattered; 3 refused */
    int ranks;      /* zoff.ranks: 0 = as the launcher says (mpirun/srun/torchrun environment),
                       1 = this process alone even under a launcher */
    uint64_t comm_timeout_ms; /* zoff.comm_timeout_ms: collective watchdog (0: wait forever) */

    /* divergence: fp16 dynamic scaling; after this many consecutive overflows with the loss
     * scale already at min_loss_scale, zoff_step returns ZOFF_EDIVERGED (default 10; 0: never) */
    int min_scale_overflow_limit;
    /* parameter streaming (zero_optimization.offload_param; "Parameter streaming" below) */
    int stream_params;        /* 1: trainers register their 16-bit weights as streamed
                                 (offload_param.device "cpu"); zoff_plan plans for it. The
                                 runtime streams exactly the params added with dev_param NULL. */
    int prefetch_depth;       /* units fetched ahead of the one in use: the device holds
                                 prefetch_depth + 1 unit slots (offload_param.buffer_count - 1;
                                 default 2) */
    size_t stream_slot_bytes; /* bytes per slot; 0 (default): the largest unit */

    /* learning-rate schedule (DeepSpeed `scheduler`; type ZOFF_SCHED_NONE: the trainer's lr) */
    zoff_scheduler_config scheduler;

    /* batch (DeepSpeed keys; 0: not given). zoff_config_from_json* fills the missing ones and
     * checks train_batch_size == micro * accumulation * world size as DeepSpeed does.
     * gradient_accumulation_steps K > 1 makes the runtime sum K zoff_step calls (micro-batches)
     * into one update (docs/runtime.md "Gradient accumulation"); 0 or 1: every call updates. */
    int64_t train_batch_size;
    int64_t train_micro_batch_size_per_gpu;
    int64_t gradient_accumulation_steps;

    /* gradients (round 2; docs/runtime.md "Gradient buckets" and "Gradient accumulation") */
    size_t grad_bucket_numel; /* elements per device gradient bucket (DeepSpeed
                                 zero_optimization.reduce_bucket_size) */
    int grad_bucket_count;    /* device buckets in the ring (>= 2; zoff.grad_bucket_count) */
    /* optimizer kind and state format (appended; 0 = Adam with fp32 moments as before) */
    int optimizer_type;              /* zoff_optimizer_type, one for the whole runtime */
    int state_format;                /* zoff_state_format, one for the whole runtime */
    float lr_decay;                  /* Adagrad: lr / (1 + (step - 1) * lr_decay) */
    float initial_accumulator_value; /* Adagrad: start value of the accumulator */
    /* 1 (default): at zoff_finalize the buckets grow so that grad_bucket_count - 1 of them hold
     * the largest gradient pushed into them (a push then never waits for a drain while backward
     * runs), when that fits the device; 0: exactly grad_bucket_numel (zoff.grad_bucket_grow) */
    int grad_bucket_grow;
} zoff_config;

/* Fills `cfg` with defaults (cpu tier, sync overlap, fp32 unless fp16/bf16 enabled, ...).
 * Returns ZOFF_EINVAL if cfg is NULL. */
ZOFF_API zoff_status zoff_config_default(zoff_config *cfg);

/* Reads a DeepSpeed-style JSON config file into `cfg` (which it first sets to defaults).
 * Unknown keys, wrong types and impossible values return ZOFF_ECONFIG and zoff_last_error(NULL)
 * names the key. Returns -errno when the file cannot be read. */
ZOFF_API zoff_status zoff_config_from_json(zoff_config *cfg, const char *path);
/* Same from a NUL-terminated JSON string. */
ZOFF_API zoff_status zoff_config_from_json_string(zoff_config *cfg, const char *json);

/* Values a trainer supplies for DeepSpeed's "auto" (the Hugging Face Trainer convention). A
 * field left at its "not supplied" value (NaN, 0 or -1 as noted) lets "auto" resolve to zoff's
 * default; every resolution is logged (WARN level, subsystem CONFIG) with its source. */
typedef struct zoff_trainer_values {
    size_t struct_size;
    double lr, weight_decay, eps; /* NaN: not supplied */
    double beta1, beta2;          /* NaN: not supplied */
    double gradient_clipping;     /* NaN: not supplied */
    int64_t train_batch_size;     /* 0: not supplied */
    int64_t train_micro_batch_size_per_gpu;
    int64_t gradient_accumulation_steps;
    int64_t world_size;       /* 0: 1 (ranks the batch is split over) */
    int64_t warmup_num_steps; /* -1: not supplied (scheduler.params.warmup_num_steps) */
    int64_t total_num_steps;  /* 0: not supplied (scheduler.params.total_num_steps) */
    double warmup_min_lr;     /* NaN: not supplied */
    int fp16, bf16;           /* -1: not supplied; 0/1 */
} zoff_trainer_values;

/* Sets every field of `tv` to "not supplied". Returns ZOFF_EINVAL if tv is NULL. */
ZOFF_API zoff_status zoff_trainer_values_default(zoff_trainer_values *tv);
/* zoff_config_from_json / _string with the trainer's values for "auto" (tv may be NULL: every
 * "auto" takes zoff's default). All errors of the file are reported in one message, one line
 * each; keys of DeepSpeed's schema that zoff does not use are accepted with one warning line
 * each (docs/config.md lists them and what zoff does instead). */
ZOFF_API zoff_status zoff_config_from_json_with(zoff_config *cfg, const char *path,
                                                const zoff_trainer_values *tv);
ZOFF_API zoff_status zoff_config_from_json_string_with(zoff_config *cfg, const char *json,
                                                       const zoff_trainer_values *tv);

/* The learning rate the schedule `s` gives the optimizer step number `step` (1 = the first
 * update; skipped fp16-overflow steps do not count, as in DeepSpeed) for a group whose own lr is
 * `group_lr` (WarmupCosineLR scales it; WarmupLR without warmup_max_lr rises to it). With
 * OneCycle and cycle_momentum, *beta1 and *beta2 receive the cycled betas (either may be NULL);
 * otherwise they are left unchanged. Returns ZOFF_EINVAL for NULL s/lr or step < 1. */
ZOFF_API zoff_status zoff_scheduler_lr(const zoff_scheduler_config *s, double group_lr,
                                       int64_t step, double *lr, double *beta1, double *beta2);

/* What a group runs, for logs and headers: "AdamW" or "Adam (L2 weight decay)". Static. */
ZOFF_API const char *zoff_optimizer_name(const zoff_group_config *g);

/* ------------------------------------------------------------------------------------------ */
/* Runtime                                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef struct zoff_runtime zoff_runtime;

/* A device stream: a cudaStream_t with the CUDA backend, a sim stream with the sim backend.
 * NULL means "the default stream"; for zoff_grad_ready it means "the gradient is already final
 * in device memory" and for zoff_params_ready "block the calling thread". */
typedef void *zoff_stream;

/* Creates a runtime: validates the config, opens the device. Nothing large is allocated until
 * zoff_finalize. On failure *out is untouched and zoff_last_error(NULL) says why. */
ZOFF_API zoff_status zoff_create(const zoff_config *cfg, zoff_runtime **out);
/* zoff_config_from_json_string + zoff_create in one call (for language bindings that do not
 * mirror zoff_config). `json` may be NULL or "" for the defaults. */
ZOFF_API zoff_status zoff_create_from_json(const char *json, zoff_runtime **out);
/* Waits for work in flight, frees everything, removes swap files. Accepts NULL. */
ZOFF_API void zoff_destroy(zoff_runtime *rt);

/* The message of the last failed call on `rt` (or of the calling thread's last failed call
 * when rt is NULL). Valid until the next call on the runtime / in the thread. Never NULL. */
ZOFF_API const char *zoff_last_error(const zoff_runtime *rt);

/* Adds a parameter group with its own hyperparameters; group 0 is created from cfg->optimizer.
 * Only before zoff_finalize. */
ZOFF_API zoff_status zoff_add_group(zoff_runtime *rt, const zoff_group_config *g, int *group_id);
/* Changes a group's hyperparameters (e.g. the lr of a schedule); takes effect at the next step.
 * Allowed any time between steps. With a configured scheduler (cfg->scheduler), the runtime sets
 * each group's lr before every step (zoff_get_group shows it); zoff_set_group before
 * zoff_finalize sets the values the schedule starts from, after it the trainer takes that
 * group's lr over (the scheduler no longer touches it). */
ZOFF_API zoff_status zoff_set_group(zoff_runtime *rt, int group_id, const zoff_group_config *g);
ZOFF_API zoff_status zoff_get_group(const zoff_runtime *rt, int group_id, zoff_group_config *g);

/* Registers a parameter. The trainer owns `dev_param` (device memory of `numel` elements of
 * `dtype`, valid until zoff_destroy). `dev_grad`:
 *  - NULL (recommended): the gradient goes through zoff's device gradient buckets: the trainer
 *    hands it over with zoff_grad_push from any device buffer it may reuse right after, so no
 *    full-size gradient buffer stays on the GPU (2 bytes/param + a few buckets);
 *  - a trainer-owned device buffer of the same size (valid until zoff_destroy): the older
 *    full-buffer mode, declared with zoff_grad_ready (4 bytes/param on the GPU).
 * `init_master`: numel fp32 initial values (copied), or NULL to read them from dev_param. Only
 * before finalize. Names must be unique (they key checkpoints). dev_param NULL registers a
 * streamed parameter ("Parameter streaming"; init_master NULL then means zeros: set values with
 * zoff_set_state). */
ZOFF_API zoff_status zoff_add_param(zoff_runtime *rt, const char *name, size_t numel,
                                    zoff_dtype dtype, void *dev_param, void *dev_grad,
                                    const float *init_master, int group, int *param_id);

/* Plans, allocates host memory, preallocates swap and uploads nothing. After it, the runtime is
 * ready for steps. Returns ZOFF_ENOFIT naming the knob when the config cannot fit. */
ZOFF_API zoff_status zoff_finalize(zoff_runtime *rt);

/* Declares that `param_id`'s gradient is final once the work queued so far on `producer` is
 * done. zoff copies it to host behind that work (the trainer must not write dev_grad again
 * until zoff_step returned). Each parameter at most once per step. */
ZOFF_API zoff_status zoff_grad_ready(zoff_runtime *rt, int param_id, zoff_stream producer);

/* Hands over `param_id`'s gradient of this micro-batch (bucket mode: registered with dev_grad
 * NULL): zoff queues, on `producer` behind the work already queued there, a device-to-device copy
 * of `numel` elements of `dtype` from `dev_src` into its current gradient bucket (split across
 * buckets when larger than one). The trainer may overwrite or free dev_src in stream order right
 * after this call (work queued on producer later runs after the copy). A full bucket goes to host
 * memory while the next one fills; zoff_step sends the last, partial one. producer NULL: zoff
 * copies on its own stream and returns once dev_src was read (a host wait). Each parameter at
 * most once per micro-batch. `numel` and `dtype` must match the registration (ZOFF_EINVAL names
 * both otherwise); on the sim device dev_src + bytes must lie inside a device allocation. On
 * error nothing was queued and the runtime is unchanged. */
ZOFF_API zoff_status zoff_grad_push(zoff_runtime *rt, int param_id, const void *dev_src,
                                    size_t numel, zoff_dtype dtype, zoff_stream producer);

/* Forgets every gradient declared since the last zoff_step (e.g. the trainer refused the step
 * after handing some gradients: a sparse or malformed one, an exception in backward). Waits for
 * their copies to land, then the runtime is as if none had been declared: the next zoff_step
 * uses only gradients declared after this call. No optimizer state changes. Returns ZOFF_OK
 * (also when nothing was declared); ZOFF_ESTATE in overlap `eager` when a partition of this
 * step was already updated (its gradients all landed): that cannot be undone, the declared
 * gradients stay and zoff_step completes the step. In overlap `delayed` the previous step's
 * parameters of the declared gradients may already be on the device (the delayed mode uploads
 * them when a gradient is declared); a retried backward then reads them. */
ZOFF_API zoff_status zoff_grads_discard(zoff_runtime *rt);

/* zoff_step_args.flags */
/* Parameters whose gradient was not declared this step get a zero gradient (their moments decay,
 * weight decay applies, their step count advances) instead of being skipped. */
#define ZOFF_STEP_ZERO_MISSING_GRADS 0x1

typedef struct zoff_step_args {
    size_t struct_size;
    int flags; /* 0 or ZOFF_STEP_ZERO_MISSING_GRADS */
} zoff_step_args;

typedef struct zoff_step_result {
    size_t struct_size;
    int64_t step;         /* optimizer steps taken so far (skipped steps not counted) */
    int skipped;          /* 1: the update was skipped (fp16 overflow) */
    int overflow;         /* 1: a gradient was inf/NaN */
    double grad_norm;     /* global L2 norm of the unscaled gradients (NaN/inf on overflow) */
    double clip_coef;     /* factor applied to the gradients (1 when not clipped) */
    float loss_scale;     /* scale to apply to the next loss */
    double step_ms;       /* wall time of zoff_step */
    double adam_ms;       /* CPU Adam time */
    double wait_grads_ms; /* time zoff_step waited for gradient copies */
    double nvme_wait_ms;  /* time the pipeline waited on NVMe */
    /* per parameter (fields added in 0.1; a caller's smaller struct_size omits them) */
    int params_updated;      /* parameters this step updated (0 when skipped) */
    int params_without_grad; /* parameters left untouched: no gradient declared this step */
    int params_nonfinite;    /* parameters whose gradient had an inf/NaN element */
    /* gradient accumulation (gradient_accumulation_steps K > 1; added in round 2) */
    int accumulating; /* 1: a micro-batch was added, no update yet (K-1 of every K calls) */
    int micro_step;   /* micro-batches of the current window done after this call (0 at a
                         boundary: the update ran or was skipped) */
} zoff_step_result;

/* Initialisers: `zoff_step_result r = ZOFF_STEP_RESULT_INIT;` in C and C++. In C they are
 * designated initialisers (usable for static objects too); C++ before C++20 has none, so there
 * they call the zoff_*_init() functions below, which work in every C and C++ version
 * (`auto r = zoff_step_result_init();`) and compile cleanly under -Wall -Wextra -pedantic. */
static inline zoff_step_args zoff_step_args_init(void)
{
    zoff_step_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    return a;
}
static inline zoff_step_result zoff_step_result_init(void)
{
    zoff_step_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    return r;
}
#ifdef __cplusplus
#define ZOFF_STEP_ARGS_INIT   zoff_step_args_init()
#define ZOFF_STEP_RESULT_INIT zoff_step_result_init()
#else
#define ZOFF_STEP_ARGS_INIT                                                                        \
    {                                                                                              \
        .struct_size = sizeof(zoff_step_args), .flags = 0                                          \
    }
#define ZOFF_STEP_RESULT_INIT                                                                      \
    {                                                                                              \
        .struct_size = sizeof(zoff_step_result)                                                    \
    }
#endif

/* Runs the optimizer step over the registered parameters whose gradient was declared with
 * zoff_grad_ready since the last step. Queues the upload of the new 16-bit parameters;
 * zoff_params_ready orders the trainer's next use after it. `a` may be NULL.
 *
 * Parameters without a gradient this step (a frozen branch, a layer not run, an MoE expert no
 * token was routed to) are skipped as torch.optim skips a parameter whose .grad is None: their
 * master weights, moments, 16-bit copy and step count stay as they are (counted in
 * r->params_without_grad and zoff_stats.missing_grads). With ZOFF_STEP_ZERO_MISSING_GRADS in
 * a->flags they get a zero gradient instead (moments decay, weight decay applies).
 *
 * Bias correction uses each parameter's own step count (updates applied to it, see
 * zoff_get_param_step), as torch does; it equals the global step when every parameter had a
 * gradient at every step.
 *
 * Non-finite gradients (an inf/NaN element; never silent: a warning names the parameters, the
 * result and zoff_stats count them; docs/runtime.md):
 *  - overlap sync and delayed, every dtype: the whole step is skipped (r->skipped = 1, nothing
 *    changes, the step counter does not advance); with fp16 dynamic loss scaling the scale is
 *    lowered (the warning is then at INFO level: that is how dynamic scaling finds its scale);
 *  - overlap eager (fp32/bf16 without clipping: partitions are updated while backward runs):
 *    the parameters with a non-finite gradient are skipped, the others are updated; the step
 *    counts as skipped only when no parameter was updated.
 *
 * Gradient accumulation (gradient_accumulation_steps K > 1): each call ends a micro-batch; the
 * gradients are summed on the host in fp32 and only every K-th call updates (r->accumulating = 1
 * on the others, which return once this micro-batch's gradients landed; nothing else changes).
 * The update uses the sum / K (the mean, as DeepSpeed divides the loss by K); the norm,
 * clipping and the non-finite check see that accumulated gradient, so an inf/NaN in any
 * micro-batch skips the whole step (the fp16 scale is lowered once). A parameter counts as
 * without a gradient when no micro-batch of the window declared one. */
ZOFF_API zoff_status zoff_step(zoff_runtime *rt, const zoff_step_args *a, zoff_step_result *r);

/* Makes `consumer` wait (on the device) until the parameters uploaded by the last zoff_step are
 * in device memory; NULL: blocks the calling thread until then. */
ZOFF_API zoff_status zoff_params_ready(zoff_runtime *rt, zoff_stream consumer);

/* The loss scale the trainer multiplies its loss by (1 without fp16 dynamic scaling). */
ZOFF_API zoff_status zoff_get_loss_scale(const zoff_runtime *rt, float *scale);

/* Copies the fp32 master weights of a parameter into `out` (numel floats). For tests/export. */
ZOFF_API zoff_status zoff_get_master(zoff_runtime *rt, int param_id, float *out);
/* Copies the Adam state of a parameter (either pointer may be NULL). */
ZOFF_API zoff_status zoff_get_state(zoff_runtime *rt, int param_id, float *exp_avg,
                                    float *exp_avg_sq);
/* Overwrites a parameter's master weights and Adam state (either state pointer may be NULL =
 * leave unchanged) and re-uploads its 16-bit copy. For loading foreign state dicts. */
ZOFF_API zoff_status zoff_set_state(zoff_runtime *rt, int param_id, const float *master,
                                    const float *exp_avg, const float *exp_avg_sq);
/* Number of registered parameters, and the step counter (steps taken, skipped ones not
 * counted). */
ZOFF_API zoff_status zoff_param_count(const zoff_runtime *rt, int *count);
ZOFF_API zoff_status zoff_get_step(const zoff_runtime *rt, int64_t *step);
/* Sets the step counter and every parameter's step count (>= 0; the next zoff_step updates with
 * step + 1 in its bias correction). With zoff_set_state, loads a foreign optimizer state (e.g. a
 * torch AdamW state dict). Only after zoff_finalize and between steps. */
ZOFF_API zoff_status zoff_set_step(zoff_runtime *rt, int64_t step);
/* One parameter's step count: the updates applied to it (torch's per-parameter state "step").
 * It lags the global step when the parameter had no gradient at some steps. */
ZOFF_API zoff_status zoff_get_param_step(zoff_runtime *rt, int param_id, int64_t *step);
/* Sets one parameter's step count (>= 0), e.g. from a torch state dict; between steps. */
ZOFF_API zoff_status zoff_set_param_step(zoff_runtime *rt, int param_id, int64_t step);

/* Checkpoints: `dir` receives optimizer.safetensors + zoff_manifest.json, written to a
 * temporary directory, fsynced and renamed into place (the previous checkpoint stays whole on
 * any failure). zoff_load checks names, shapes and checksums; ZOFF_EMISMATCH / ZOFF_ECORRUPT
 * name the tensor. A checkpoint loads into any tier / partition size. It holds the master
 * weights, moments, each parameter's step count (older checkpoints without them load every
 * parameter at the global step), the loss scaler, the groups and the step pipeline: in overlap
 * `delayed` the warm-up progress and, while an update's params wait for their upload, what the
 * device holds, so a resumed delayed run equals the uninterrupted one bit for bit (loaded by a
 * runtime of another mode, the device gets the master's values). Save and load between steps. */
ZOFF_API zoff_status zoff_save(zoff_runtime *rt, const char *dir);
ZOFF_API zoff_status zoff_load(zoff_runtime *rt, const char *dir);
/* Like zoff_save, also storing `user_json` (a JSON object text of at most 4 KiB, or NULL) in the
 * manifest under "extra": a trainer's own state (data position, RNG) saved atomically with the
 * optimizer state. */
ZOFF_API zoff_status zoff_save_with(zoff_runtime *rt, const char *dir, const char *user_json);
/* Checks, before training, that checkpoints can be written to `dir` (call it after
 * zoff_finalize, before the first step, so that a problem costs no training): the parent is
 * created if missing and must be writable, `dir` must be absent, empty or a zoff checkpoint, and
 * its filesystem must have room for one more checkpoint beside the previous one (a save writes
 * the new one whole before removing the old). It also locks `dir` for this runtime until
 * zoff_destroy (a lock file next to it holding the pid), so that two runs cannot silently
 * overwrite each other's checkpoints: -EBUSY naming the other run's pid. zoff_save takes the
 * same lock (without the space check) when this was not called. Returns -EROFS / -EACCES /
 * -ENOTDIR / -EEXIST / ZOFF_ENOFIT with a message naming the directory. A failed save leaves the
 * training state and the previous checkpoint intact; its message says so. */
ZOFF_API zoff_status zoff_checkpoint_check(zoff_runtime *rt, const char *dir);

/* Like zoff_load; copies the stored user JSON ("" if none) into user_json (len bytes, NUL
 * terminated; ZOFF_EINVAL if it does not fit, nothing loaded). user_json may be NULL. */
ZOFF_API zoff_status zoff_load_with(zoff_runtime *rt, const char *dir, char *user_json, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Several ranks (docs/multi-gpu.md)                                                          */
/* ------------------------------------------------------------------------------------------ */
/* Under mpirun/srun (several ranks in the environment, cfg.ranks 0) zoff_create joins the ranks
 * (collective: every rank calls it) and each rank keeps the optimizer state of 1/N of the flat
 * parameter space; zoff_step is then collective too. zoff_get_master/zoff_get_state fill only
 * the elements this rank owns (own_begin/own_end below, in flat order of registration). */
typedef struct zoff_rank_info {
    size_t struct_size;
    int rank, size;              /* this process among the ranks (0 of 1 alone) */
    int local_rank, local_size;  /* among the ranks of this node */
    int zero_stage;              /* as configured (0/1: grads all-reduced, 2: reduce-scattered) */
    uint64_t own_begin, own_end; /* flat elements whose state this rank owns (after finalize) */
    uint64_t total_numel;        /* all registered elements */
    int numa_node, ncpus, first_cpu; /* placement of the arena and the Adam threads */
    double comm_ms_last;             /* time of the last step in collectives (incl. widening) */
    double comm_ms_total;            /* since finalize */
    char backend[16];                /* "self", "mpi", "nccl" */
    /* 1: the gradients are reduced bucket by bucket on the device as they are pushed (every
     * param through zoff_grad_push, no accumulation) and only this rank's share goes down; 0:
     * every rank's gradients land on the host and are reduced there at zoff_step */
    int bucket_reduce;
    char bucket_backend[16]; /* the communicator of the bucket reduction ("mpi", "nccl"), or "" */
} zoff_rank_info;

#define ZOFF_RANK_INFO_INIT                                                                        \
    {                                                                                              \
        .struct_size = sizeof(zoff_rank_info)                                                      \
    }

ZOFF_API zoff_status zoff_get_rank_info(const zoff_runtime *rt, zoff_rank_info *out);

/* Launchers without MPI (torchrun, or any that sets RANK / WORLD_SIZE / LOCAL_RANK): the caller
 * supplies the transport of the host-memory collectives as one function, all_gather (every
 * rank's send[bytes] at recv + r * bytes on every rank, all ranks passing the same bytes; >= 0,
 * or negative on failure), implemented with an existing engine (zoff.torch: torch.distributed,
 * gloo). zoff builds every collective on it and adds in rank order as with MPI, so results are
 * the same bits; it is called on the thread that calls zoff_create / zoff_finalize /
 * zoff_grad_push / zoff_step / zoff_save / zoff_load. There is no zoff watchdog on it (the
 * engine's own timeout applies). On CUDA devices with NCCL, `nccl_unique_id` (from rank 0's
 * zoff_nccl_unique_id, handed to the others by the caller, e.g. torch.distributed.broadcast)
 * lets the gradient buckets be reduced by NCCL on the device; without it they are reduced on
 * the host. */
#define ZOFF_NCCL_UNIQUE_ID_BYTES 128
typedef struct zoff_collectives {
    size_t struct_size;
    int rank, size;             /* this process among `size` ranks */
    int local_rank, local_size; /* among the ranks of this node (< 0 / < 1: rank / size) */
    void *user;
    int (*all_gather)(void *user, const void *send, void *recv, size_t bytes);
    unsigned char nccl_unique_id[ZOFF_NCCL_UNIQUE_ID_BYTES];
    int have_nccl_unique_id;
} zoff_collectives;

#define ZOFF_COLLECTIVES_INIT                                                                      \
    {                                                                                              \
        .struct_size = sizeof(zoff_collectives)                                                    \
    }

/* The collectives that the runtimes created after this call in this process use when
 * `size` > 1 and cfg.ranks is 0 (copied; NULL: back to the launcher's environment / MPI). Every
 * rank then calls zoff_create collectively. */
ZOFF_API zoff_status zoff_use_collectives(const zoff_collectives *c);
/* A fresh NCCL unique id (rank 0 calls it and hands it to the others). ZOFF_EUNSUPPORTED in
 * builds without NCCL. */
ZOFF_API zoff_status zoff_nccl_unique_id(unsigned char id[ZOFF_NCCL_UNIQUE_ID_BYTES]);

/* ------------------------------------------------------------------------------------------ */
/* Statistics                                                                                 */
/* ------------------------------------------------------------------------------------------ */
typedef struct zoff_link_stats {
    uint64_t bytes; /* bytes moved */
    double busy_ms; /* time the link was busy moving them */
    double gbps;    /* bytes / busy time, GB/s (1e9) */
} zoff_link_stats;

typedef struct zoff_stats {
    size_t struct_size;
    /* last step */
    zoff_link_stats d2h, h2d, nvme_read, nvme_write;
    double adam_ms, adam_gbps; /* CPU Adam time and GB/s (bytes really moved) */
    double step_ms;            /* wall time of the last zoff_step */
    double trainer_wait_ms;    /* time the trainer's stream/thread waited in zoff_params_ready */
    double overlap_ratio;      /* sum of component busy times / wall time of the step */
    /* totals since zoff_finalize */
    int64_t steps, skipped_steps;
    uint64_t total_d2h_bytes, total_h2d_bytes, total_nvme_read_bytes, total_nvme_write_bytes;
    /* memory (bytes) */
    uint64_t device_bytes;   /* device memory zoff allocated */
    uint64_t pinned_bytes;   /* pinned host memory */
    uint64_t pageable_bytes; /* pageable host memory (fallback or by config) */
    uint64_t nvme_bytes;     /* preallocated swap */
    int pinned_fallback;     /* 1: pinning was refused and pageable memory is used */
    int aio_fallback;        /* 1: io_uring refused, thread pool used */
    int odirect;             /* 1: swap files use O_DIRECT */
    char device_name[64];    /* "sim", "cuda:0 NVIDIA H100 ..." */
    char cpu_isa[16];        /* the Adam kernel in use */
    /* totals since zoff_finalize (fields added in 0.1; a smaller struct_size omits them) */
    int64_t nonfinite_steps; /* steps in which some gradient had an inf/NaN element */
    int64_t nonfinite_grads; /* parameter gradients with an inf/NaN element, over all steps */
    int64_t missing_grads;   /* parameters skipped for lack of a gradient, over all steps */
    /* parameter streaming, totals since zoff_finalize */
    uint64_t fetches;            /* zoff_fetch calls on units with streamed params */
    uint64_t fetch_hits;         /* ... whose weights were already in a slot (kept or prefetched) */
    uint64_t fetch_misses;       /* ... loaded on demand (not prefetched: slower) */
    uint64_t fetch_out_of_order; /* ... not the unit the schedule expected next */
    uint64_t prefetches;         /* unit loads started ahead of their fetch */
    uint64_t stream_h2d_bytes;   /* weight bytes uploaded into slots */
    double fetch_wait_ms;        /* time consumer streams waited for a fetched unit's upload */
    uint64_t slot_bytes;         /* bytes per unit slot (0: nothing streamed) */
    int nslots;                  /* prefetch_depth + 1 (0: nothing streamed) */
    /* device memory and accumulation (round 2; a smaller struct_size omits them) */
    uint64_t device_peak_bytes; /* peak device memory allocated through this runtime's device
                                   (zoff's own + zoff_device_alloc by the trainer) */
    uint64_t bucket_bytes;      /* zoff's gradient buckets (count x size), part of device_bytes */
    double gpu_bytes_per_param; /* (registered 16-bit params + trainer-owned gradient buffers +
                                   zoff's device memory) / parameters */
    uint64_t bucket_flushes;    /* buckets sent to host since finalize */
    int64_t micro_steps;        /* micro-batches since finalize (= steps + skipped with K 1) */
} zoff_stats;

static inline zoff_stats zoff_stats_init(void)
{
    zoff_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    return s;
}
#ifdef __cplusplus
#define ZOFF_STATS_INIT zoff_stats_init()
#else
#define ZOFF_STATS_INIT                                                                            \
    {                                                                                              \
        .struct_size = sizeof(zoff_stats)                                                          \
    }
#endif

ZOFF_API zoff_status zoff_get_stats(const zoff_runtime *rt, zoff_stats *out);

/* ------------------------------------------------------------------------------------------ */
/* Parameter streaming                                                                        */
/* ------------------------------------------------------------------------------------------ */
/* For models whose 16-bit weights do not fit the GPU. A parameter added with dev_param = NULL is
 * *streamed*: its 16-bit copy lives in pinned host memory, written there directly by the CPU
 * Adam output, and zoff uploads it into a device slot when its unit is fetched. A parameter
 * added with a dev_param stays *resident* (trainer-owned device memory, as always): tied
 * embeddings and small layers lose nothing. A streamed param's initial values come from
 * init_master (NULL: zeros; zoff_set_state can load others after finalize).
 *
 * A unit groups parameters that are used together (one transformer block; the embeddings; the
 * head). The schedule (zoff_set_schedule) says in which order forward and backward use units.
 * At zoff_finalize zoff allocates one device slab of prefetch_depth + 1 slots of
 * stream_slot_bytes (default: the largest unit) and refuses with ZOFF_ENOFIT, naming the knob
 * and the bytes, when it does not fit. docs/runtime.md ("Parameter streaming") has the design.
 *
 * All calls: the trainer's thread, after zoff_finalize (add_unit/set_schedule: before). */

/* Groups `nparams` registered parameters into a unit named `name` (unique). A parameter belongs
 * to at most one unit (ZOFF_EINVAL names both units otherwise); every streamed parameter must
 * belong to one by zoff_finalize. Resident parameters may be in units (fetch is then free).
 * Only before zoff_finalize. */
ZOFF_API zoff_status zoff_add_unit(zoff_runtime *rt, const char *name, const int *param_ids,
                                   int nparams, int *unit_id);

/* Declares the forward order of the units (`nforward` unit ids; a unit may appear more than
 * once) and the backward order (`backward` NULL: the forward order reversed). Without a schedule
 * the forward order is the units' registration order. Only before zoff_finalize. */
ZOFF_API zoff_status zoff_set_schedule(zoff_runtime *rt, const int *forward, int nforward,
                                       const int *backward, int nbackward);

/* Makes the unit's 16-bit weights resident in a device slot for work queued on `stream` after
 * this call (stream-ordered: `stream` waits for the upload on the device; NULL: the calling
 * thread blocks until it is done), and starts uploading the next units of the schedule into free
 * slots. A fetch the schedule did not expect (a skipped unit, a unit run twice, another order)
 * is served the same way, only without the prefetch having hidden it; it is counted in
 * zoff_stats. Fetching an already fetched unit adds a reference (release it as often).
 * ZOFF_ESTATE when every slot holds a fetched unit (release one, or raise prefetch_depth). */
ZOFF_API zoff_status zoff_fetch(zoff_runtime *rt, int unit_id, zoff_stream stream);

/* The device address of a parameter's 16-bit weights: for a streamed parameter valid while its
 * unit is fetched (ZOFF_ESTATE otherwise), for a resident one its dev_param. */
ZOFF_API zoff_status zoff_param_ptr(zoff_runtime *rt, int param_id, void **dev);

/* Ends the use of a fetched unit by the work queued on `stream` so far: its slot may be
 * overwritten once that work is done (NULL: the default stream). ZOFF_ESTATE when the unit is
 * not fetched (e.g. released twice). */
ZOFF_API zoff_status zoff_release(zoff_runtime *rt, int unit_id, zoff_stream stream);

/* ------------------------------------------------------------------------------------------ */
/* Planning                                                                                   */
/* ------------------------------------------------------------------------------------------ */
typedef struct zoff_plan_report {
    size_t struct_size;
    uint64_t gpu_bytes;        /* device: 16-bit params + gradient buckets (bucket mode) */
    uint64_t pinned_bytes;     /* pinned host: resident state, staging, grad buffer, pool */
    uint64_t pageable_bytes;   /* pageable host */
    uint64_t nvme_bytes;       /* swap files */
    uint64_t gpu_available;    /* what the device reports (sim: sim_gpu_bytes) */
    uint64_t host_available;   /* MemAvailable */
    uint64_t nvme_available;   /* free space under nvme_path(s) */
    uint64_t no_offload_bytes; /* what training would need on the GPU without offload (16 B/p) */
    int fits;                  /* 1: fits; 0: see `advice` */
    char advice[512];          /* what does not fit and the knob to change */
    /* parameter streaming (cfg->stream_params = 1; docs/runtime.md "Parameter streaming") */
    int streamed;                       /* 1: planned with streamed 16-bit weights */
    int layers;                         /* units the weights were split into */
    uint64_t slot_bytes;                /* one unit slot (the largest unit) */
    int nslots;                         /* prefetch_depth + 1 */
    uint64_t activation_bytes;          /* estimate for batch x seq_len, included in gpu_bytes */
    uint64_t h2d_bytes_per_step;        /* weights up in forward and again in backward */
    uint64_t d2h_bytes_per_step;        /* 16-bit gradients down */
    uint64_t min_tokens_per_microbatch; /* compute hides the weight uploads from this many */
    /* gradient buckets (round 2) */
    uint64_t bucket_bytes;       /* device gradient buckets (count x size), in gpu_bytes */
    double gpu_bytes_per_param;  /* gpu_bytes / total_params */
    double host_bytes_per_param; /* (pinned + pageable) / total_params */
} zoff_plan_report;

/* Predicts bytes per tier for a model of `total_params` parameters without allocating
 * anything. Returns ZOFF_OK with out->fits = 0 and advice filled when it would not fit. The
 * parameters' dtype is the config's (fp16/bf16 enabled: 2 bytes, else 4). The swap check is the
 * one zoff_finalize makes (writable, distinct directories; exactly the bytes preallocated per
 * filesystem; filesystems without a size, like ramfs, unchecked). ZOFF_ENOFIT (no report) for a
 * model beyond 2^58 parameters, whose byte counts no machine holds; ZOFF_ECONFIG for a bad
 * config. Thread-safe. */
ZOFF_API zoff_status zoff_plan(const zoff_config *cfg, size_t total_params, zoff_plan_report *out);
/* With cfg->stream_params = 1 the plan is the streaming one: the device holds prefetch_depth + 1
 * unit slots, the gradient path and the activations, not the weights (docs/runtime.md). */

/* What a plan compares against, beyond the config. */
typedef struct zoff_plan_options {
    size_t struct_size;
    uint64_t gpu_mem_bytes; /* > 0: plan for a GPU with this much free memory (not this host's
                               device); 0: ask the configured device (sim: sim_gpu_bytes) */
    /* the model and GPU a streaming plan (cfg->stream_params) needs */
    int layers;        /* units (transformer blocks); 0: GPT-like from the params (h = 128 L,
                          12 h^2 params per block) */
    int hidden;        /* model width; 0: from params and layers (12 h^2 per block) */
    int batch;         /* sequences per micro-batch (default 1) */
    int seq_len;       /* tokens per sequence (default 2048) */
    double gpu_tflops; /* achieved 16-bit TFLOP/s of the GPU (default 400) */
    double pcie_gbps;  /* host-to-device GB/s (default 25: PCIe 4.0 x16) */
} zoff_plan_options;
/* Fills `o` with defaults (nothing overridden; the streaming figures above). */
ZOFF_API zoff_status zoff_plan_options_default(zoff_plan_options *o);
/* zoff_plan with options (`opt` may be NULL: defaults). */
ZOFF_API zoff_status zoff_plan_with(const zoff_config *cfg, uint64_t total_params,
                                    const zoff_plan_options *opt, zoff_plan_report *out);

/* The largest model (parameters) whose plan under `cfg` fits: its GPU side within `gpu_bytes`
 * (0: what the configured device reports), its host and NVMe sides within what this machine has
 * (resident params + gradient buckets on the GPU; bucket mode). *max_params = 0 when not even a
 * tiny model fits; `at_max` (may be NULL) receives the plan of that model. */
ZOFF_API zoff_status zoff_plan_max_params(const zoff_config *cfg, uint64_t gpu_bytes,
                                          uint64_t *max_params, zoff_plan_report *at_max);

/* ------------------------------------------------------------------------------------------ */
/* Sizes and counts as users write them (command lines, config values)                        */
/* ------------------------------------------------------------------------------------------ */
/* Parses a byte size: "4096", "0x1000", "16M", "16MiB", "16MB" (binary: K, M, G, T are powers
 * of 1024, with or without "i"/"B"), "1.5G" and "1e9" (a fraction or exponent must give a
 * whole number). Below 2^64. ZOFF_EINVAL with a message otherwise. Thread-safe. */
ZOFF_API zoff_status zoff_parse_size(const char *s, uint64_t *bytes);
/* Parses a count (of parameters): as zoff_parse_size, plus decimal billions "7B" / "7bn" =
 * 7e9 (binary "7G" = 7 * 2^30 stays binary). Thread-safe. */
ZOFF_API zoff_status zoff_parse_count(const char *s, uint64_t *count);
/* Formats bytes as "123 B" or "1.50 GiB" into buf (len bytes); returns buf. Thread-safe. */
ZOFF_API const char *zoff_format_bytes(uint64_t bytes, char *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Device helpers for trainers (the runtime's device backend)                                 */
/* ------------------------------------------------------------------------------------------ */
/* Device memory owned by the trainer, allocated from the runtime's backend. With `sim` it is
 * host-addressable memory counted against sim_gpu_bytes. Valid until freed or zoff_destroy. */
ZOFF_API zoff_status zoff_device_alloc(zoff_runtime *rt, size_t bytes, void **dev_ptr);
ZOFF_API void zoff_device_free(zoff_runtime *rt, void *dev_ptr);
/* Synchronous copies between host and device memory (stream-ordered after `stream`'s work). */
ZOFF_API zoff_status zoff_device_upload(zoff_runtime *rt, void *dev_dst, const void *host_src,
                                        size_t bytes, zoff_stream stream);
ZOFF_API zoff_status zoff_device_download(zoff_runtime *rt, void *host_dst, const void *dev_src,
                                          size_t bytes, zoff_stream stream);
/* 1 when device memory is directly addressable by the host (sim), 0 otherwise (CUDA). */
ZOFF_API int zoff_device_host_accessible(const zoff_runtime *rt);
/* Streams of the runtime's backend (a trainer without CUDA of its own uses these). */
ZOFF_API zoff_status zoff_stream_create(zoff_runtime *rt, zoff_stream *out);
ZOFF_API void zoff_stream_destroy(zoff_runtime *rt, zoff_stream s);
ZOFF_API zoff_status zoff_stream_synchronize(zoff_runtime *rt, zoff_stream s);
/* Work queued on `waiter` after this call runs after the work queued on `signaler` so far (an
 * event recorded on signaler and waited on by waiter, as cudaEventRecord + cudaStreamWaitEvent);
 * no host wait. NULL is the default stream; waiter == signaler does nothing. A trainer uses it
 * to push gradients from a copy stream of its own while its compute stream goes on
 * (docs/runtime.md, "Pushing from a copy stream"). */
ZOFF_API zoff_status zoff_stream_wait_stream(zoff_runtime *rt, zoff_stream waiter,
                                             zoff_stream signaler);
/* Queues `ns` nanoseconds of stand-in "GPU compute" on `s` (sim: a sleep in stream order;
 * CUDA: a spin kernel). For benchmarks and tests of overlap. */
ZOFF_API zoff_status zoff_stream_busy(zoff_runtime *rt, zoff_stream s, uint64_t ns);

/* ------------------------------------------------------------------------------------------ */
/* Reading a checkpoint without a runtime (docs/checkpoints.md)                               */
/* ------------------------------------------------------------------------------------------ */
/* An opened checkpoint directory (what zoff_save wrote): its manifest and tensor table are in
 * memory, the data file is read on demand. Used by one thread at a time; distinct handles are
 * independent. Failures leave a message for zoff_last_error(NULL) on the calling thread. */
typedef struct zoff_ckpt zoff_ckpt;

/* Opens and validates `dir`: the manifest parses and its checksum matches, the format version
 * is known, the safetensors header agrees with the manifest and the file size (ZOFF_EFORMAT /
 * ZOFF_ECORRUPT naming the problem). Tensor data is not read: see zoff_ckpt_verify. When `dir`
 * is missing because a save died between its two renames, the previous whole checkpoint
 * (`<dir>.old-<pid>`) is opened instead (zoff_ckpt_info.recovered = 1). */
ZOFF_API zoff_status zoff_ckpt_open(const char *dir, zoff_ckpt **out);
/* Closes the handle. Accepts NULL. */
ZOFF_API void zoff_ckpt_close(zoff_ckpt *c);
/* Streams the whole data file and checks every tensor's crc32c: ZOFF_ECORRUPT naming the first
 * bad tensor (and how many are bad). Touches nothing else. */
ZOFF_API zoff_status zoff_ckpt_verify(zoff_ckpt *c);

/* Facts of an opened checkpoint. Strings point into the handle (valid until zoff_ckpt_close). */
typedef struct zoff_ckpt_info {
    size_t struct_size;
    int format_version;
    const char *zoff_version; /* version of zoff that wrote it */
    const char *created;      /* ISO 8601 UTC, e.g. "2026-11-22T10:00:00Z" */
    const char *path;         /* the directory actually read */
    int recovered;            /* 1: <dir> was missing and <dir>.old-<pid> was read instead */
    uint64_t data_bytes;      /* size of optimizer.safetensors (of all data files) */
    uint64_t total_numel;     /* fp32 elements over all tensors */
    size_t ntensors;
    int64_t step;              /* optimizer steps taken */
    float loss_scale;          /* dynamic loss scale */
    int64_t scaler_good_steps; /* clean steps since the last scale change */
    int scaler_hysteresis;     /* remaining hysteresis */
    int ngroups;               /* parameter groups (zoff_ckpt_group) */
    const char *extra_json;    /* the trainer's JSON object (zoff_save_with), "" if none */
    /* data files: 1 (optimizer.safetensors), or one per rank of a save with several ranks
     * (format 3: optimizer.rank<r>.safetensors, each tensor stored as slices; see
     * zoff_ckpt_slice_info_at) */
    int nfiles;
} zoff_ckpt_info;
/* `zoff_ckpt_info x = ZOFF_CKPT_INFO_INIT;` (C and C++; see ZOFF_STEP_RESULT_INIT) */
static inline zoff_ckpt_info zoff_ckpt_info_init(void)
{
    zoff_ckpt_info x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    return x;
}
#ifdef __cplusplus
#define ZOFF_CKPT_INFO_INIT zoff_ckpt_info_init()
#else
#define ZOFF_CKPT_INFO_INIT                                                                        \
    {                                                                                              \
        .struct_size = sizeof(zoff_ckpt_info)                                                      \
    }
#endif
/* Fills `out` (out->struct_size set by the caller: a smaller, older struct is filled as far as
 * it reaches). */
ZOFF_API zoff_status zoff_ckpt_get_info(const zoff_ckpt *c, zoff_ckpt_info *out);
/* The hyperparameters of group `group` (0 .. ngroups-1) as saved. */
ZOFF_API zoff_status zoff_ckpt_group(const zoff_ckpt *c, int group, zoff_group_config *out);
/* Number of tensors (each parameter contributes "<name>.master", "<name>.exp_avg" and
 * "<name>.exp_avg_sq"; see docs/checkpoints.md). */
ZOFF_API size_t zoff_ckpt_tensor_count(const zoff_ckpt *c);

/* One tensor of a checkpoint (fp32, 1-D). `name` points into the handle. */
typedef struct zoff_ckpt_tensor_info {
    size_t struct_size;
    const char *name;     /* e.g. "layer0.w.exp_avg" */
    uint64_t numel;       /* fp32 elements */
    uint64_t file_offset; /* bytes from the start of optimizer.safetensors (its first slice's) */
    uint32_t crc32c;      /* of the tensor's bytes, from the manifest (its first slice's) */
    int has_step;         /* 1: a ".master" tensor carrying its parameter's Adam step count */
    int64_t adam_step;
    size_t nslices; /* where it is stored: 1, or one slice per rank that owned part of it */
} zoff_ckpt_tensor_info;
/* `zoff_ckpt_tensor_info x = ZOFF_CKPT_TENSOR_INFO_INIT;` (C and C++; see ZOFF_STEP_RESULT_INIT) */
static inline zoff_ckpt_tensor_info zoff_ckpt_tensor_info_init(void)
{
    zoff_ckpt_tensor_info x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    return x;
}
#ifdef __cplusplus
#define ZOFF_CKPT_TENSOR_INFO_INIT zoff_ckpt_tensor_info_init()
#else
#define ZOFF_CKPT_TENSOR_INFO_INIT                                                                 \
    {                                                                                              \
        .struct_size = sizeof(zoff_ckpt_tensor_info)                                               \
    }
#endif
/* Tensor `idx` (0 .. count-1, file order): ZOFF_EINVAL past the end. */
ZOFF_API zoff_status zoff_ckpt_tensor_info_at(const zoff_ckpt *c, size_t idx,
                                              zoff_ckpt_tensor_info *out);
/* One stored slice of a tensor: elements [begin, begin + numel) in `file` (format 3: written by
 * `rank`; one slice of the whole tensor in optimizer.safetensors otherwise, rank -1). */
typedef struct zoff_ckpt_slice_info {
    size_t struct_size;
    const char *file;     /* file name in the checkpoint directory */
    int rank;             /* the rank that wrote it; -1 for a single-file checkpoint */
    uint64_t begin;       /* first element of the tensor */
    uint64_t numel;       /* fp32 elements */
    uint64_t file_offset; /* bytes from the start of `file` */
    uint32_t crc32c;      /* of the slice's bytes, from the manifest */
} zoff_ckpt_slice_info;
/* `zoff_ckpt_slice_info x = ZOFF_CKPT_SLICE_INFO_INIT;` (C and C++) */
static inline zoff_ckpt_slice_info zoff_ckpt_slice_info_init(void)
{
    zoff_ckpt_slice_info x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    return x;
}
#ifdef __cplusplus
#define ZOFF_CKPT_SLICE_INFO_INIT zoff_ckpt_slice_info_init()
#else
#define ZOFF_CKPT_SLICE_INFO_INIT                                                                  \
    {                                                                                              \
        .struct_size = sizeof(zoff_ckpt_slice_info)                                                \
    }
#endif
/* Slice k (0 .. nslices-1, element order) of tensor idx: ZOFF_EINVAL past the end. */
ZOFF_API zoff_status zoff_ckpt_slice_info_at(const zoff_ckpt *c, size_t idx, size_t k,
                                             zoff_ckpt_slice_info *out);
/* Index of the tensor called `name`: ZOFF_ENOTFOUND naming it when there is none. */
ZOFF_API zoff_status zoff_ckpt_find(const zoff_ckpt *c, const char *name, size_t *idx);
/* Reads the whole tensor called `name` into out (exactly `numel` floats: ZOFF_EINVAL naming
 * both sizes when numel differs from the tensor's). Its crc32c is checked: ZOFF_ECORRUPT naming
 * the tensor on a mismatch (out then holds the bytes read, which are not to be trusted). May be
 * called any number of times, in any order. */
ZOFF_API zoff_status zoff_ckpt_read_tensor(zoff_ckpt *c, const char *name, float *out,
                                           uint64_t numel);

/* ------------------------------------------------------------------------------------------ */
/* Environment parameters (what `zoff env` lists; docs/config.md)                             */
/* ------------------------------------------------------------------------------------------ */
typedef struct zoff_env_param {
    size_t struct_size;
    const char *name;  /* "ZOFF_DEBUG" */
    const char *def;   /* default value ("" when the default is empty) */
    const char *doc;   /* one line: what it does */
    int is_set;        /* 1: set to a non-empty value in this process's environment */
    const char *value; /* the value in effect: the environment's when set, else the default */
} zoff_env_param;
/* `zoff_env_param x = ZOFF_ENV_PARAM_INIT;` (C and C++; see ZOFF_STEP_RESULT_INIT) */
static inline zoff_env_param zoff_env_param_init(void)
{
    zoff_env_param x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    return x;
}
#ifdef __cplusplus
#define ZOFF_ENV_PARAM_INIT zoff_env_param_init()
#else
#define ZOFF_ENV_PARAM_INIT                                                                        \
    {                                                                                              \
        .struct_size = sizeof(zoff_env_param)                                                      \
    }
#endif
/* Iterates the ZOFF_* parameters: *index = 0 first; each call fills `out` with the parameter
 * at *index and advances it. Returns 1 while it filled one, 0 when past the last, negative on
 * bad arguments. Reads the environment at each call (strings are valid until the environment
 * changes). Thread-safe while nobody changes the environment. */
ZOFF_API int zoff_env_next(size_t *index, zoff_env_param *out);

/* ------------------------------------------------------------------------------------------ */
/* Probing the machine (what `zoff info` prints; docs/devices.md)                             */
/* ------------------------------------------------------------------------------------------ */
#define ZOFF_PROBE_MAX_NUMA  64
#define ZOFF_PROBE_MAX_GPUS  16
#define ZOFF_PROBE_MAX_PCI   32
#define ZOFF_PROBE_MAX_DISKS 64
#define ZOFF_PROBE_MAX_HUGE  8
#define ZOFF_PROBE_MAX_CPUS  1024

/* A directory as a swap or checkpoint target. Values unknown on this machine are -1. */
typedef struct zoff_path_info {
    size_t struct_size;
    int accessible;          /* 0: not an accessible directory (nothing else is filled) */
    char fs_type[64];        /* e.g. "ext4", "tmpfs" */
    char mount[1024];        /* its mount point */
    char block_device[64];   /* whole-disk name ("nvme0n1"), "none" (tmpfs, overlay, ...) */
    int odirect;             /* 1: O_DIRECT files can be written there, 0: not, -1: probe failed */
    char odirect_error[256]; /* why the probe failed ("" otherwise) */
    int64_t dio_mem_align;   /* O_DIRECT alignment of memory / file offsets (statx), -1 unknown */
    int64_t dio_offset_align;
    int64_t free_bytes; /* free space for an unprivileged user, -1 unknown */
} zoff_path_info;
/* `zoff_path_info x = ZOFF_PATH_INFO_INIT;` (C and C++; see ZOFF_STEP_RESULT_INIT) */
static inline zoff_path_info zoff_path_info_init(void)
{
    zoff_path_info x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    return x;
}
#ifdef __cplusplus
#define ZOFF_PATH_INFO_INIT zoff_path_info_init()
#else
#define ZOFF_PATH_INFO_INIT                                                                        \
    {                                                                                              \
        .struct_size = sizeof(zoff_path_info)                                                      \
    }
#endif

/* The facts of this machine a user needs before tuning zoff. Unknown numbers are -1. */
typedef struct zoff_machine_info {
    size_t struct_size;
    /* CPU */
    char cpu_model[256];
    int online_cpus, cores, packages;
    /* ISA features of the CPU Adam, as the kernel reports them enabled (/proc/cpuinfo) */
    int sse4_2, avx, avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512_bf16, avx512_fp16,
        amx_bf16;
    /* memory and NUMA */
    int64_t mem_total_bytes, mem_available_bytes;
    int nnuma;
    struct {
        int node;
        char cpus[256]; /* "0-15,32-47" */
        int64_t total_bytes, free_bytes;
    } numa[ZOFF_PROBE_MAX_NUMA];
    /* GPUs (CUDA when built and usable) */
    int cuda_built;
    int ngpus;
    char gpu_note[512]; /* why there is no GPU ("none (sim): ..."), "" when there are GPUs */
    struct {
        int ordinal;
        char name[256];
        char pci_bus_id[32];
        int64_t total_bytes;
        int cc_major, cc_minor;
        int numa_node; /* nearest NUMA node (-1 unknown) */
        char numa_reason[256];
    } gpus[ZOFF_PROBE_MAX_GPUS];
    int npci_display; /* PCI display / 3D controllers, whatever the driver state */
    struct {
        char bus_id[32], pci_class[32], vendor[32], device[32];
        int numa_node;
    } pci_display[ZOFF_PROBE_MAX_PCI];
    /* block devices with a physical device (not loop, ram, dm) */
    int ndisks;
    struct {
        char name[64];
        char kind[16]; /* "NVMe", "virtio", "xen", "SCSI/SATA", "MMC", "other" */
        char model[128];
        int64_t size_bytes, rotational, logical_block_size, max_sectors_kb, max_hw_sectors_kb,
            max_segments;
        int numa_node;
    } disks[ZOFF_PROBE_MAX_DISKS];
    /* locked (pinned) memory: have_memlock 0 when the limits could not be read */
    int have_memlock;
    uint64_t memlock_soft, memlock_hard; /* RLIMIT_MEMLOCK; UINT64_MAX = unlimited */
    int cap_ipc_lock;                    /* 1: CAP_IPC_LOCK effective: no limit applies */
    uint64_t locked_bytes;               /* bytes this process has locked now */
    /* huge pages */
    char thp_enabled[64], thp_defrag[64]; /* the bracketed mode, or "unavailable" */
    int nhugetlb;
    struct {
        int64_t page_bytes, pages, free;
    } hugetlb[ZOFF_PROBE_MAX_HUGE];
    /* I/O */
    int io_uring;                 /* 1 available, 0 not, -1 probe failed */
    int io_uring_disabled_sysctl; /* kernel.io_uring_disabled, -1 absent */
    zoff_path_info path;          /* the `path` given to zoff_probe_machine */
} zoff_machine_info;

/* Probes this machine (CPU and ISA, NUMA, GPUs, PCI display devices, block devices, memlock,
 * huge pages, io_uring) and the directory `path` (NULL: "."). Creates and removes a small
 * temporary file in `path` to test O_DIRECT. out->struct_size must be set by the caller
 * (sizeof(zoff_machine_info) or an older, smaller size). Takes milliseconds (hwloc topology).
 * Thread-safe. */
ZOFF_API zoff_status zoff_probe_machine(const char *path, zoff_machine_info *out);
/* Probes one directory only (as zoff_probe_machine does for its path). */
ZOFF_API zoff_status zoff_probe_path(const char *path, zoff_path_info *out);

/* Where local rank `rank` of `nranks` on this node would run (what zoff_finalize chooses under
 * mpirun -np nranks): its GPU (ranks take GPUs in ordinal order), NUMA node, the CPUs of its
 * Adam threads, and its share of the comma-separated swap directory list `paths`. */
typedef struct zoff_rank_placement {
    size_t struct_size;
    char gpu[32]; /* PCI bus id, or "none (sim)" */
    int numa_node;
    int ncpus;
    int cpus[ZOFF_PROBE_MAX_CPUS]; /* the CPUs of its Adam threads */
    char swap_paths[4096];
} zoff_rank_placement;
/* `zoff_rank_placement x = ZOFF_RANK_PLACEMENT_INIT;` (C and C++; see ZOFF_STEP_RESULT_INIT) */
static inline zoff_rank_placement zoff_rank_placement_init(void)
{
    zoff_rank_placement x;
    memset(&x, 0, sizeof x);
    x.struct_size = sizeof x;
    return x;
}
#ifdef __cplusplus
#define ZOFF_RANK_PLACEMENT_INIT zoff_rank_placement_init()
#else
#define ZOFF_RANK_PLACEMENT_INIT                                                                   \
    {                                                                                              \
        .struct_size = sizeof(zoff_rank_placement)                                                 \
    }
#endif
/* Fills `out` (out->struct_size set by the caller) for local rank `rank` of `nranks`. The ranks
 * whose GPUs are nearest the same NUMA node split its cores. ZOFF_EINVAL for nranks outside
 * 1..1024 or rank outside 0..nranks-1. Thread-safe. */
ZOFF_API zoff_status zoff_probe_rank(int rank, int nranks, const char *paths,
                                     zoff_rank_placement *out);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_H */
