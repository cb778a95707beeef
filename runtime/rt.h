/*
 * rt.h — runtime-internal: the zoff_runtime struct and the functions the runtime's files share
 * (runtime.c: API and lifecycle; pipeline.c: gradients, step, updates; scaler.c: loss scaler;
 * plan.c: memory layout and plan; stats.c: statistics and trace; persist.c: checkpoints).
 *
 * The flat index space: parameters concatenated in registration order; element e of parameter p
 * is flat element p->flat_off + e. This rank owns the flat range [own_begin, own_end) (the whole
 * space on one rank) and keeps the optimizer state of that range in a zstore whose element 0 is
 * flat element own_begin.
 */
#ifndef ZOFF_RUNTIME_RT_H
#define ZOFF_RUNTIME_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "common/common.h"
#include "cpu_adam/adam.h"
#include "gpu/device.h"
#include "nvme/swap.h"
#include "offload/arena.h"
#include "offload/store.h"
#include "runtime/buckets.h"
#include "runtime/trace.h"

#define ZRT_NSTAGE  4 /* pinned staging tiles for 16-bit uploads (>= 2: double buffering) */
#define ZRT_ERR_MAX 1024

/* ---- loss scaler (scaler.c) -------------------------------------------------------------- */
typedef struct zrt_scaler {
    int dynamic; /* 1: fp16 dynamic loss scaling */
    float scale; /* current loss scale (1 without fp16) */
    float min_scale;
    int window;         /* clean steps before the scale is doubled */
    int hysteresis_cfg; /* configured hysteresis (delayed shift) */
    int hysteresis;     /* remaining overflows tolerated before the scale is halved */
    int64_t good_steps; /* clean steps since the last overflow or raise */
    int at_min_limit;   /* cfg.min_scale_overflow_limit (0: never diverged) */
    int at_min;         /* consecutive overflows with the scale already at min_scale */
} zrt_scaler;

/* Sets up the scaler from the config: fp16 dynamic (scale 2^initial_scale_power), fp16 static
 * (loss_scale > 0) or none (scale 1). */
void zrt_scaler_init(zrt_scaler *s, const zoff_config *cfg);
/* Feeds one step's overflow flag; returns 1 when the step must be skipped (any overflow).
 * DeepSpeed DynamicLossScaler semantics (consecutive_hysteresis off). */
int zrt_scaler_update(zrt_scaler *s, int overflow);
/* 1 when the last at_min_limit steps all overflowed at the minimum scale (dynamic only). */
int zrt_scaler_diverged(const zrt_scaler *s);

/* ---- worker thread (pipeline.c) ----------------------------------------------------------- */
typedef struct zrt_job {
    void (*fn)(void *);
    void *arg;
} zrt_job;

/* A thread running jobs in FIFO order. push may be called from any thread (also a device
 * stream's host function); the ring never fills because callers bound what they queue. */
typedef struct zrt_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv, idle_cv;
    zrt_job *ring;
    size_t cap, head, count;
    int busy, stop, started;
} zrt_worker;

zoff_status zrt_worker_start(zrt_worker *w, size_t cap);
zoff_status zrt_worker_push(zrt_worker *w, void (*fn)(void *), void *arg);
void zrt_worker_wait_idle(zrt_worker *w);
void zrt_worker_stop(zrt_worker *w);

/* ---- parameters and groups ----------------------------------------------------------------- */
typedef struct zrt_param {
    char *name;
    size_t numel;
    zoff_dtype dtype; /* of dev_param and dev_grad */
    size_t esize;     /* bytes per element */
    void *dev_param, *dev_grad;
    float *init_master; /* copy of the initial values until finalize, or NULL */
    int group;
    uint64_t flat_off;            /* first flat element */
    size_t buf_off;               /* byte offset in the gradient buffer(s) and the hold buffer */
    size_t part_first, part_last; /* store partitions it overlaps */
    zdev_event *ev;               /* captures the producer's work at grad_ready (this step) */
    /* delayed mode: the hold buffer's copy of this param (tiles [tile_first, +hold_tiles)) */
    size_t tile_first, hold_tiles;
    size_t hold_left;  /* tiles the running update has still to write (update thread) */
    int hold_ready;    /* the update wrote all of them (under hold_mu) */
    int hold_declared; /* its gradient of the next step was declared (under hold_mu) */
    int hold_uploaded; /* its upload is queued (under hold_mu) */
    /* Adam progress of this parameter (torch keeps one step count per parameter): updates
     * applied to it so far; its bias correction follows it, not the global step */
    int64_t step;
    /* the update being prepared or running: set before it starts, read by the update thread */
    int upd_skip;     /* 1: leave master, moments and the 16-bit param untouched */
    int64_t upd_step; /* bias-correction step of this update (step + 1) */
    /* per step */
    int declared;      /* grad_ready/grad_push called this micro-batch (trainer thread) */
    int win_declared;  /* ... in some micro-batch of this accumulation window (= declared, K 1) */
    uint64_t issue_ns; /* when its D2H was queued (trace) */
    /* where each handed-over gradient lands and its window flags (bit 0: first micro-batch of
     * the window, bit 1: last), a ring of 2: with accumulation micro-batch j+1's copies may be
     * queued while the grad worker still adds micro-batch j (push_seq: trainer thread,
     * land_seq: grad worker) */
    void *dst_ring[2];
    uint8_t flag_ring[2];
    unsigned push_seq, land_seq;
    double sumsq;     /* sum of squares of the landed 16-bit (or fp32) gradient */
    size_t nonfinite; /* non-finite elements in it */
    struct zoff_runtime *rt;
    /* streaming (stream.c): dev_param NULL at registration */
    int streamed;    /* 1: the 16-bit copy lives in host16, uploaded into a unit slot */
    int unit;        /* unit it belongs to, -1: none */
    size_t slot_off; /* byte offset in its unit's slot */
    size_t host_off; /* byte offset of host16 in rt->host16 */
    uint8_t *host16; /* pinned host copy, written by the Adam output */
} zrt_param;

/* ---- parameter streaming (stream.c) --------------------------------------------------------- */
typedef struct zrt_unit {
    char *name;
    int *params; /* registered ids */
    int nparams;
    uint64_t bytes;      /* streamed bytes in a slot (params 256-byte aligned) */
    int slot;            /* slot holding its weights (possibly still loading), -1: none */
    int refs;            /* fetched and not yet released */
    uint64_t version;    /* bumped whenever its host copies change */
    zdev_event *host_ev; /* after the last upload that reads its host copies */
} zrt_unit;

typedef struct zrt_slot {
    uint8_t *dev;       /* slot_bytes of device memory in the slab */
    int unit;           /* -1: empty */
    uint64_t version;   /* the unit's version it holds */
    int prefetched;     /* loaded ahead and not fetched yet */
    zdev_event *loaded; /* the upload into it is done */
    zdev_event *freed;  /* the consumer's work before its last release is done */
} zrt_slot;

typedef enum zrt_state {
    ZRT_CREATED = 0, /* add_group / add_param allowed */
    ZRT_READY = 1,   /* finalized */
    ZRT_BROKEN = 2,  /* a step failed half way: only destroy, stats, last_error */
} zrt_state;

/* One optimizer update over a list of partitions. */
typedef struct zrt_update {
    int64_t step;           /* step number for bias correction (>= 1) */
    float grad_scale;       /* clip_coef / loss_scale */
    const uint8_t *grads;   /* gradient buffer of this step */
    const float *grads_f32; /* fp32 gradients of the owned range (element 0 = flat element
                               own_begin): the accumulation sums (K > 1) or several ranks'
                               averaged gradients; NULL: use `grads` */
    int to_hold;            /* 1: write 16-bit params into the hold buffer (delayed) */
    int skip_nonfinite;     /* 1: leave params with non-finite grads untouched (eager) */
    zadam_hparams hp[ZOFF_MAX_GROUPS];
    /* results, accumulated */
    uint64_t adam_ns, adam_bytes, h2d_bytes;
    uint64_t nvme_wait_ns;
    size_t parts_done;    /* partitions the update visited */
    int params_nonfinite; /* eager: params left untouched for a non-finite gradient */
    zoff_status st;
    char err[ZRT_ERR_MAX];
} zrt_update;

/* Memory layout of a finalized runtime (plan.c), computed before anything is allocated. */
typedef struct zrt_layout {
    uint64_t numel;       /* elements this rank owns */
    uint64_t param_bytes; /* 16-bit (or fp32) params of the owned range = one grad buffer */
    int ngrad_bufs;       /* 2 with overlap delayed */
    uint64_t grad_buf_bytes;
    uint64_t hold_bytes;  /* delayed: the 16-bit params of step t waiting to be uploaded */
    uint64_t stage_bytes; /* one staging tile */
    int nstage;
    zstore_sizes store;
    uint64_t arena_bytes;  /* everything above, each 4 KiB-rounded: the pinned arena size */
    uint64_t acc_bytes;    /* gradient accumulation: one fp32 buffer of the owned range */
    int nacc_bufs;         /* 0 (K == 1), 1, or 2 (K > 1 with overlap delayed) */
    uint64_t bucket_bytes; /* device gradient buckets, count x size */
    uint64_t gpu_bytes;    /* 16-bit params + trainer-owned grads + buckets on the device + slab */
    uint64_t stream_host_bytes; /* pinned host copies of the streamed params */
    uint64_t slab_bytes;        /* device: the streaming slots */
    uint64_t no_offload_bytes;
} zrt_layout;

/* Computes the layout for a model of `numel` elements whose params take `param_bytes` bytes
 * (sum of numel * dtype size), `any_f32`: some params are fp32. cfg must be validated. */
zoff_status zrt_layout_compute(const zoff_config *cfg, uint64_t numel, uint64_t param_bytes,
                               int any_f32, zrt_layout *out);
/* Device side of the layout: `trainer_grad_bytes` of trainer-owned gradient buffers, buckets
 * when `buckets` (some parameter uses them), grown for a largest pushed gradient of
 * `max_push_numel` elements (0: not known, no growth). Sets bucket_bytes and gpu_bytes. */
void zrt_layout_device(const zoff_config *cfg, zrt_layout *l, uint64_t trainer_grad_bytes,
                       int buckets, int any_f32, uint64_t model_numel, uint64_t max_push_numel);
/* Elements per gradient bucket for a model of `model_numel` elements: the configured size, but
 * no more than the model / bucket count (at least 256); with zoff.grad_bucket_grow and a largest
 * pushed gradient of `max_push_numel` elements, at least enough that count - 1 buckets hold it. */
uint64_t zrt_bucket_numel(const zoff_config *cfg, uint64_t model_numel, uint64_t max_push_numel);
/* Streaming: `streamed_bytes` of the params live in pinned host copies instead of the device,
 * whose zoff slab takes `slab_bytes`. Adjusts arena and GPU bytes of a computed layout. */
void zrt_layout_stream(zrt_layout *l, uint64_t streamed_bytes, uint64_t slab_bytes);
/* Fills the plan report (bytes vs available, fits, advice) for a layout. `dev` may be NULL
 * (then the GPU side is checked against cfg->sim_gpu_bytes for sim, skipped otherwise);
 * check_gpu = 0 skips the GPU comparison (finalize: the trainer already allocated it);
 * gpu_mem_bytes > 0 compares with that much free device memory instead of asking `dev`. */
zoff_status zrt_plan_report(const zoff_config *cfg, const zrt_layout *l, zdev *dev, int check_gpu,
                            uint64_t gpu_mem_bytes, zoff_plan_report *out);

/* Releases the checkpoint-directory lock of zoff_checkpoint_check / zoff_save (persist.c). */
void zoff__release_ckpt_lock(zoff_runtime *rt);

/* ---- the runtime --------------------------------------------------------------------------- */
typedef struct zrt_group {
    zoff_group_config cfg;
    int scheduled;                /* 1: cfg.scheduler sets lr (and OneCycle's betas) per step */
    float base_lr;                /* the group's own lr (WarmupCosineLR scales it) */
    float base_beta1, base_beta2; /* restored when a schedule stops cycling the momentum */
} zrt_group;

/* One tile of a full update pass, in flat order (delayed mode: the hold buffer is uploaded tile
 * by tile and the next update overwrites a tile only after its upload completed). */
typedef struct zrt_tile {
    int param;
    size_t e0, numel; /* elements [e0, e0 + numel) of the param */
    zdev_event *ev;   /* upload of this tile of the hold buffer */
} zrt_tile;

struct zoff_runtime {
    zoff_config cfg; /* validated, environment applied */
    zrt_state state;
    char err[ZRT_ERR_MAX];    /* message of the last failed call on this runtime */
    char broken[ZRT_ERR_MAX]; /* why the runtime became unusable (state BROKEN) */
    int ckpt_lock_fd;         /* zoff_checkpoint_check / zoff_save: lock of ckpt_lock_dir */
    char ckpt_lock_dir[ZOFF_PATH_MAX];
    zoff_overlap overlap; /* effective mode (eager may fall back to sync) */

    zrt_group groups[ZOFF_MAX_GROUPS];
    int ngroups;
    zrt_param *params;
    int nparams, cap_params;
    uint64_t total_numel;        /* flat space */
    uint64_t own_begin, own_end; /* the range this rank owns */
    int any_f32;
    uint64_t param_bytes; /* bytes of all params (= one grad buffer) */

    /* device */
    zdev *dev;
    zdev_stream *d2h, *h2d;
    zdev_event *params_ev; /* after the last upload of the last update */
    zdev_event *stage_ev[ZRT_NSTAGE];
    zrt_tile *tiles; /* delayed: every tile of a full pass, in flat order */
    size_t ntiles;
    size_t *part_tile_base; /* delayed: index of partition k's first tile */

    /* host memory */
    zrt_layout layout;
    zarena *arena;
    uint8_t *grad_buf[2];
    int grad_cur;
    uint8_t *hold; /* delayed */
    uint8_t *stage[ZRT_NSTAGE];
    unsigned stage_next;
    zstore *store;
    zadam_ctx *adam;
    ztopo_choice topo;

    /* optimizer progress */
    zrt_scaler scaler;
    int64_t step;            /* optimizer steps taken (skipped ones not counted) */
    int64_t sync_steps_done; /* steps since finalize/load (delayed warm-up) */
    int zero_missing;        /* this step: undeclared params get a zero gradient (flag) */

    /* gradient buckets and accumulation */
    zbk_ring bk;                 /* active when some parameter was registered without dev_grad */
    zdev_stream *push_s;         /* copies of zoff_grad_push(producer NULL) */
    int nbucket_params;          /* parameters registered without dev_grad */
    uint64_t trainer_grad_bytes; /* trainer-owned gradient buffers registered */
    int accum;                   /* gradient_accumulation_steps */
    int micro;                   /* micro-batches done in the current window (trainer thread) */
    int acc_first, acc_last;     /* the running micro-batch starts / ends the window (read by the
                                    grad worker after the pushes that follow their writes) */
    float *acc[2];               /* fp32 sums of the window (K > 1), by flat element (the whole
                                  * model, also with several ranks: reduced at the boundary) */
    int acc_cur;

    /* this step's gradients */
    int declared_count;
    pthread_mutex_t land_mu;
    pthread_cond_t land_cv;
    uint64_t declared_total;   /* gradients handed over since finalize (trainer thread) */
    uint64_t landed_total;     /* ... whose grad-worker job is done (under land_mu) */
    uint64_t prev_micro_total; /* declared_total when the previous micro-batch ended */
    int full_declared; /* a zoff_grad_ready gradient (trainer-owned buffer) in this micro-batch */
    zrt_worker gradw;  /* sums of squares as gradients land */
    zrt_worker updw;   /* eager partitions, delayed updates */

    /* eager */
    int *part_pending;     /* params of partition k whose grads have not landed */
    int *part_nparams;     /* params overlapping partition k */
    int *part_first_param; /* first param overlapping partition k */
    size_t *ready;         /* eager: partitions ready, not yet taken */
    size_t nready;
    size_t *eager_batch; /* eager: the partitions one update-worker job takes */
    pthread_mutex_t eager_mu;
    zrt_update eager_upd;
    int eager_armed; /* eager_upd prepared for this step */

    /* delayed */
    zrt_update delayed_upd;
    int delayed_running;     /* a job is queued on updw */
    int delayed_unreported;  /* a finished job whose numbers the next step result reports */
    int hold_active;         /* a delayed update was launched whose params are not all queued
                                for upload yet */
    pthread_mutex_t hold_mu; /* hold_* flags of the params; serialises hold uploads */

    /* several ranks (shard.c); nranks 1: everything below unused */
    zcomm *comm;
    int nranks, rank;
    unsigned char nccl_id[ZCOMM_UNIQUE_ID_BYTES]; /* zoff_collectives.nccl_unique_id, if given */
    int nccl_id_given;
    uint64_t shard_numel;  /* ceil(total_numel / nranks): rank r owns [r * shard, (r+1) * shard) */
    float *gfull;          /* nranks * shard_numel: this rank's gradients as fp32, flat order */
    float *gshard;         /* shard_numel: averaged gradients of the owned range */
    uint8_t *pgather;      /* param_bytes: the new 16-bit params, laid out like the grad buffer */
    size_t *gather_counts; /* bytes of pgather rank r writes */
    size_t *gather_displs;
    double *agree; /* 2 * nparams + 2 doubles: per-param declared / non-finite, sumsq */
    double comm_ms_last, comm_ms_total;
    /* bucket-by-bucket reduction (several ranks, every gradient pushed through the buckets, no
     * accumulation): each drained bucket is widened to fp32 on the device, reduced over the ranks
     * there and only this rank's share goes down into gshard */
    int bk_reduce;
    zcomm *dcomm;            /* device-buffer collectives: rt->comm on the sim, NCCL on CUDA */
    int dcomm_own;           /* dcomm is a communicator of its own (destroyed with the runtime) */
    zdev_stream *comm_s;     /* widening and collectives, after the bucket's fill (events) */
    struct zrt_bkred *bkred; /* per bucket */
    int nbkred;
    uint64_t push_hash;  /* order of this step's pushes, compared across the ranks */
    int bk_seq;          /* buckets reduced this step (the watchdog's bucket number) */
    uint64_t bk_comm_ns; /* trainer-thread time in the bucket reductions this step */
    /* parameter streaming (stream.c) */
    zrt_unit *units;
    int nunits, cap_units;
    int *sched; /* forward then backward unit ids */
    int nsched, nsched_fwd, sched_set;
    int cursor; /* index in sched of the next expected fetch */
    zrt_slot *slots;
    int nslots;
    uint64_t slot_bytes;
    void *slab;              /* device: nslots * slot_bytes */
    uint8_t *host16;         /* pinned host copies of the streamed params */
    uint64_t streamed_bytes; /* bytes of all streamed params */
    _Atomic uint64_t fetch_wait_ns;

    /* stats and trace */
    zoff_stats stats;
    uint64_t step_begin_ns; /* first grad_ready of the step (or end of the previous step) */
    zdev_stats dev_snap;
    zstore_stats store_snap;
    _Atomic uint64_t wait_begin_ns, wait_end_ns;   /* params_ready on a stream (host functions) */
    _Atomic uint64_t own_d2h_bytes, own_h2d_bytes; /* copies zoff queued (not the trainer's) */
    uint64_t own_d2h_snap, own_h2d_snap;
    double wait_block_ms;  /* params_ready(NULL) */
    uint64_t last_land_ns; /* trace: end of the previous D2H */
    zztrace *trace;
    int tr_d2h, tr_h2d, tr_grads, tr_adam, tr_nvr, tr_nvw, tr_step;
    int tr_trainer; /* the trainer's stream: busy ops, gradient pushes, fetch waits */
};

/* Records rt's message for zoff_last_error(rt) from the thread's last error when st < 0, clears
 * it otherwise; returns st. Every public entry returns through it. */
zoff_status zrt_ret(zoff_runtime *rt, zoff_status st);

/* pipeline.c */
zoff_status zrt_pipeline_init(zoff_runtime *rt); /* finalize: workers, events, counters */
void zrt_pipeline_fini(zoff_runtime *rt);        /* destroy: stop workers */
/* Waits for background work (eager/delayed job) and returns its error, if any. */
zoff_status zrt_drain(zoff_runtime *rt);
/* Sets each scheduled group's lr (and betas) to the schedule's value for the next update
 * (number rt->step + 1). Called at finalize, after each step, load and zoff_set_step. */
void zrt_sched_apply(zoff_runtime *rt);

/* Forgets the pending delayed uploads (load re-uploads the params itself). */
void zrt_drop_hold(zoff_runtime *rt);
/* Load of a delayed checkpoint with an update pending: the hold buffer holds that update's
 * 16-bit params (already written), none uploaded yet; the next step uploads them as after a
 * launched update. */
void zrt_hold_restore(zoff_runtime *rt);
/* Marks the runtime unusable after a failure half way through changing its state. */
zoff_status zrt_break(zoff_runtime *rt, zoff_status st);
zoff_status zrt_grad_ready(zoff_runtime *rt, int id, zoff_stream producer);
zoff_status zrt_grad_push(zoff_runtime *rt, int id, const void *dev_src, size_t numel,
                          zoff_dtype dtype, zoff_stream producer);
/* flags: zoff_step_args.flags (checked by the caller). */
zoff_status zrt_step(zoff_runtime *rt, int flags, zoff_step_result *r);
/* zoff_grads_discard: forgets this step's declared gradients. */
zoff_status zrt_grads_discard(zoff_runtime *rt);
zoff_status zrt_params_ready(zoff_runtime *rt, zoff_stream consumer);
/* Runs an update over `n` partitions (order NULL: all) in the calling thread. */
zoff_status zrt_run_update(zoff_runtime *rt, zrt_update *u, const size_t *order, size_t n);
/* Casts master[0..n) of param p starting at element e0 to its dtype and uploads it (sync). */
zoff_status zrt_upload_master(zoff_runtime *rt, const zrt_param *p, size_t e0, const float *master,
                              size_t n);
/* Fills a zadam_hparams for group g at `step`. */
void zrt_hparams(const zoff_runtime *rt, int g, int64_t step, float grad_scale, zadam_hparams *hp);

/* stats.c */
void zrt_stats_step_begin(zoff_runtime *rt);
void zrt_stats_step_end(zoff_runtime *rt, const zrt_update *u, uint64_t step_ns);
zoff_status zrt_trace_open(zoff_runtime *rt);
/* Tracing only (no-op without a trace): an event on the trainer-stream track spanning the work
 * queued on `s` between this call and zrt_trace_span_end (host functions on `s` take the time
 * when the stream gets there). `name` must outlive the trace (a literal). */
typedef struct zrt_span zrt_span;
zoff_status zrt_trace_span_begin(zoff_runtime *rt, zdev_stream *s, const char *name,
                                 zrt_span **out);
zoff_status zrt_trace_span_end(zoff_runtime *rt, zdev_stream *s, zrt_span *sp);
void zrt_trace_close(zoff_runtime *rt);
void zrt_store_io_hook(void *user, int is_write, size_t part, size_t bytes, uint64_t issue_ns,
                       uint64_t done_ns);

/* shard.c: several ranks */
/* zoff_create: opens the communicator when the launcher started several ranks (cfg.ranks 0). */
zoff_status zrt_shard_create(zoff_runtime *rt);
/* zoff_finalize, before the layout: this rank's range [own_begin, own_end). */
void zrt_shard_range(zoff_runtime *rt);
/* zoff_finalize, after the arena: reduce/gather buffers, the CPU split between local ranks
 * (updates rt->topo) and this rank's swap paths (written into `paths`, len bytes). */
zoff_status zrt_shard_place(zoff_runtime *rt, char *paths, size_t len);
zoff_status zrt_shard_alloc(zoff_runtime *rt);
/* zoff_finalize, after the layout was computed for the owned range: with several ranks and
 * gradient accumulation the window's fp32 sums cover the whole model (they are reduced at the
 * boundary), so the layout's accumulation buffers grow to total_numel. */
void zrt_shard_layout(const zoff_runtime *rt, zrt_layout *l);
/* zoff_step after the gradients landed: agree on declared params, reduce (stage 2: reduce-scatter,
 * stage 0/1: all-reduce) into gshard, agree on the sum of squares and non-finite counts. Sets
 * p->declared / p->nonfinite to the agreed values. `buf`: the 16-bit landing buffer, or with
 * gradient accumulation (K > 1) the window's fp32 sums (by flat element). */
zoff_status zrt_shard_grads(zoff_runtime *rt, const uint8_t *buf, double *sumsq, size_t *nonfinite,
                            int *nf_params);
/* zoff_grad_push: the landing callback when buckets are reduced on the device (else NULL). */
void (*zrt_shard_landed_fn(const zoff_runtime *rt))(void *);
/* zoff_grad_push: folds param `id` into the order of this step's pushes. */
static inline void zrt_shard_note_push(zoff_runtime *rt, int id)
{
    rt->push_hash = ((rt->push_hash * 1099511628211ull) ^ (uint64_t)(id + 1)) & ((1ull << 52) - 1);
}
/* zoff_step after the update: all-gather the new 16-bit params, upload the other ranks' parts. */
zoff_status zrt_shard_gather(zoff_runtime *rt);
void zrt_shard_destroy(zoff_runtime *rt);
/* stream.c */
/* finalize: checks units/schedule, lays out slots and host copies (before the layout). */
zoff_status zrt_stream_prepare(zoff_runtime *rt);
/* finalize, after the arena exists: host copies, slab, events. */
zoff_status zrt_stream_init(zoff_runtime *rt);
void zrt_stream_fini(zoff_runtime *rt); /* release_finalized */
void zrt_stream_free(zoff_runtime *rt); /* destroy: units and schedule */
/* Before the update rewrites param p's host copy: waits for uploads still reading it. */
zoff_status zrt_stream_host_wait(zoff_runtime *rt, const zrt_param *p);
/* End of zoff_step: `updated`: every unit's host copies changed. The schedule starts again and
 * the first units of the next forward are prefetched. */
zoff_status zrt_stream_step_end(zoff_runtime *rt, int updated);
/* Casts master[0..n) into streamed param p's host copy from element e0 (set_state, load, init)
 * and marks its unit's slot copy stale. */
zoff_status zrt_stream_write_host(zoff_runtime *rt, const zrt_param *p, size_t e0,
                                  const float *master, size_t n);
zoff_status zrt_fetch(zoff_runtime *rt, int unit, zoff_stream stream);
zoff_status zrt_release(zoff_runtime *rt, int unit, zoff_stream stream);
zoff_status zrt_param_ptr(zoff_runtime *rt, int param, void **dev);

/* persist.c: the state of one parameter range, through the store (swapping as needed). */
zoff_status zrt_state_io(zoff_runtime *rt, int id, float *master, float *exp_avg, float *exp_avg_sq,
                         int write);

#endif /* ZOFF_RUNTIME_RT_H */
