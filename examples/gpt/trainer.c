/*
 * trainer.c — the training loop of the example trainer (trainer.h), written against the public
 * API only, in the order a GPU trainer makes its calls:
 *
 *   forward (fp32 compute copy of the 16-bit device parameters)
 *   backward, last block first: each stage's fp32 gradients are scaled by zoff_get_loss_scale,
 *     rounded to 16 bits into one device gradient buffer and handed to zoff's gradient buckets
 *     with zoff_grad_push (K micro-batches per step with gradient accumulation)
 *   zoff_step                      (unscale, overflow check, clipping, CPU Adam, NVMe swap,
 *                                   upload of the new 16-bit parameters)
 *   zoff_params_ready(NULL)        then the fp32 compute copy is refreshed from device memory
 *
 * Design: parameters live in device memory (zoff_device_alloc) as fp16/bf16; the CPU model
 * cannot compute on 16-bit data efficiently, so it keeps an fp32 copy that is re-read from the
 * device after every step (exactly the values a GPU kernel would read). This needs
 * host-addressable device memory: the sim backend. Activations and the fp32 copies are host
 * memory; only the 16-bit parameters and gradients count against the sim GPU.
 *
 * It owns: the run (runtime, buffers, model, data), the lr schedule (linear warm-up + cosine,
 * set with zoff_set_group before every step), evaluation, checkpoints with the trainer state in
 * the manifest's user JSON (zoff_save_with / zoff_load_with), and the SIGINT/SIGTERM flag.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_internal.h"

#define CKPT_FORMAT "zoff-gpt-trainer/1"

static volatile sig_atomic_t g_stop_signal;

static void on_signal(int sig)
{
    g_stop_signal = sig;
}

/* ---- small helpers ------------------------------------------------------------------------- */
static int zfail(const gpt_trainer *t, zoff_status st, const char *what)
{
    const char *msg = zoff_last_error(t ? t->rt : NULL);
    if (!msg || !msg[0]) msg = zoff_strerror(st);
    size_t wl = strlen(what);
    if (!strncmp(msg, what, wl) && msg[wl] == ':') /* "zoff_finalize: ..." named it already */
        fprintf(stderr, "zoff train: %s (%s)\n", msg, zoff_status_name(st));
    else
        fprintf(stderr, "zoff train: %s: %s (%s)\n", what, msg, zoff_status_name(st));
    /* a bad configuration (a config key, a ZOFF_* variable) is bad input, like a bad option */
    return st == ZOFF_ECONFIG ? GPT_EXIT_USAGE : GPT_EXIT_FAIL;
}

/* mkdir -p of `path` (or of its parent when parent_only). Returns 0 or -errno. */
static int mkdirs(const char *path, int parent_only)
{
    char buf[GPT_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
    if (parent_only) {
        char *slash = strrchr(buf, '/');
        if (!slash) return 0;
        *slash = '\0';
        if (buf[0] == '\0') return 0;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char keep = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -errno;
            *p = keep;
            if (keep == '\0') break;
        }
    }
    return 0;
}

static void to_16(uint16_t *dst, const float *src, size_t n, zoff_dtype dt)
{
    if (dt == ZOFF_DTYPE_F16) {
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 16))
        for (size_t i = 0; i < n; i++) dst[i] = gpt_f32_to_f16(src[i]);
    } else {
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 16))
        for (size_t i = 0; i < n; i++) dst[i] = gpt_f32_to_bf16(src[i]);
    }
}

static void from_16(float *dst, const uint16_t *src, size_t n, zoff_dtype dt)
{
    if (dt == ZOFF_DTYPE_F16) {
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 16))
        for (size_t i = 0; i < n; i++) dst[i] = gpt_f16_to_f32(src[i]);
    } else {
#pragma omp parallel for schedule(static) if (n >= ((size_t)1 << 16))
        for (size_t i = 0; i < n; i++) dst[i] = gpt_bf16_to_f32(src[i]);
    }
}

/* Streaming: a tensor stays resident (trainer-owned device memory) when it is a tied
 * embedding: wte is used by the first and the last layer, wpe travels with it. */
static int tensor_resident(const gpt_trainer *t, const gpt_tensor *tn)
{
    return !t->stream || (t->o->model.tied && tn->stage == t->lay.nstages - 1);
}

/* The fp32 compute copy of stage `stage`'s tensors := their 16-bit device values (from the
 * fetched slot when streamed; the unit must be fetched). */
static zoff_status refresh_stage(gpt_trainer *t, int stage)
{
    for (int i = 0; i < t->lay.ntensors; i++) {
        const gpt_tensor *tn = &t->lay.tensors[i];
        if (tn->stage != stage) continue;
        const uint16_t *src = t->dev_params + tn->offset;
        if (!tensor_resident(t, tn)) {
            void *p = NULL;
            zoff_status st = zoff_param_ptr(t->rt, t->ids[i], &p);
            if (st != ZOFF_OK) return st;
            src = p;
        }
        from_16(t->params + tn->offset, src, tn->numel, t->o->dtype);
    }
    return ZOFF_OK;
}

/* The fp32 compute copy := the 16-bit device parameters (padding stays 0). Streamed: every unit
 * in forward order (embeddings, blocks 0..L-1, head), fetched, read and released: the device
 * never holds more than zoff's slots of them. */
static zoff_status refresh_params(gpt_trainer *t)
{
    if (!t->stream) {
        for (int i = 0; i < t->lay.ntensors; i++) {
            const gpt_tensor *tn = &t->lay.tensors[i];
            from_16(t->params + tn->offset, t->dev_params + tn->offset, tn->numel, t->o->dtype);
        }
        return ZOFF_OK;
    }
    for (int s = t->lay.nstages - 1; s >= 0; s--) {
        zoff_status st = zoff_fetch(t->rt, t->stage_unit[s], NULL);
        if (st == ZOFF_OK) st = refresh_stage(t, s);
        zoff_status st2 = zoff_release(t->rt, t->stage_unit[s], NULL);
        if (st != ZOFF_OK) return st;
        if (st2 != ZOFF_OK) return st2;
    }
    return ZOFF_OK;
}

/* Streamed backward: the weights of `stage` come into their slot and into the compute copy. */
static zoff_status fetch_stage(gpt_trainer *t, int stage)
{
    zoff_status st = zoff_fetch(t->rt, t->stage_unit[stage], NULL);
    return st == ZOFF_OK ? refresh_stage(t, stage) : st;
}

/* Linear warm-up to the peak, then cosine decay to min_lr at the last step. it is 0-based. */
static double lr_at(const gpt_trainer *t, int64_t it)
{
    const gpt_train_opts *o = t->o;
    if (it < o->warmup_steps) return t->peak_lr * (double)(it + 1) / (double)o->warmup_steps;
    int64_t span = o->steps - o->warmup_steps;
    double frac = span > 1 ? (double)(it - o->warmup_steps) / (double)(span - 1) : 1.0;
    if (frac > 1) frac = 1;
    double min_lr = gpt_train_min_lr(o);
    return min_lr + 0.5 * (t->peak_lr - min_lr) * (1.0 + cos(M_PI * frac));
}

static zoff_status set_lr(gpt_trainer *t, double lr)
{
    int groups[2] = {t->group_decay, t->group_nodecay};
    for (int i = 0; i < 2; i++) {
        zoff_group_config g;
        g.struct_size = sizeof g;
        zoff_status st = zoff_get_group(t->rt, groups[i], &g);
        if (st != ZOFF_OK) return st;
        g.lr = (float)lr;
        if ((st = zoff_set_group(t->rt, groups[i], &g)) != ZOFF_OK) return st;
    }
    return ZOFF_OK;
}

/* Backward stage callback: the stage's gradients are final in t->grads. */
static int on_stage(int stage, void *user)
{
    gpt_trainer *t = user;
    for (int i = 0; i < t->lay.ntensors; i++) {
        const gpt_tensor *tn = &t->lay.tensors[i];
        if (tn->stage != stage) continue;
        /* the model computes on the host: the 16-bit gradient is written into the one device
         * buffer and zoff copies it into its bucket before returning (producer NULL) */
        to_16(t->dev_grads, t->grads + tn->offset, tn->numel, t->o->dtype);
        zoff_status st =
            zoff_grad_push(t->rt, t->ids[i], t->dev_grads, tn->numel, t->o->dtype, NULL);
        if (st != ZOFF_OK) {
            t->cb_status = st;
            return st;
        }
    }
    if (t->stream) { /* this stage's weights are done with; the next stage's come in */
        zoff_status st = zoff_release(t->rt, t->stage_unit[stage], NULL);
        if (st == ZOFF_OK && stage + 1 < t->lay.nstages) st = fetch_stage(t, stage + 1);
        if (st != ZOFF_OK) {
            t->cb_status = st;
            return st;
        }
    }
    return 0;
}

/* Mean validation loss over the fixed validation batches. */
static float evaluate(gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    int B = o->batch, T = o->model.max_seq;
    double sum = 0;
    for (int i = 0; i < o->eval_batches; i++) {
        float loss = 0;
        gpt_data_val_batch(&t->data, i, o->eval_batches, B, T, t->x, t->y);
        if (gpt_forward(t->model, t->params, t->x, t->y, B, T, &loss) != 0) return NAN;
        sum += loss;
    }
    return (float)(sum / o->eval_batches);
}

static int add_eval(gpt_trainer *t, float v)
{
    if (t->nevals == t->cap_evals) {
        size_t cap = t->cap_evals ? 2 * t->cap_evals : 64;
        gpt_eval_point *n = realloc(t->evals, cap * sizeof *n);
        if (!n) return -ENOMEM;
        t->evals = n;
        t->cap_evals = cap;
    }
    t->evals[t->nevals++] = (gpt_eval_point){t->iter, v};
    return 0;
}

static int add_step(gpt_trainer *t, const gpt_step_metrics *m)
{
    if (t->nsteps == t->cap_steps) {
        size_t cap = t->cap_steps ? 2 * t->cap_steps : 256;
        gpt_step_metrics *n = realloc(t->steps, cap * sizeof *n);
        if (!n) return -ENOMEM;
        t->steps = n;
        t->cap_steps = cap;
    }
    t->steps[t->nsteps++] = *m;
    return 0;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */
static int save_checkpoint(gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    char user[2048], loss[32] = "null"; /* JSON has no NaN: a diverged loss is stored as null */
    if (t->nsteps && isfinite(t->steps[t->nsteps - 1].loss))
        snprintf(loss, sizeof loss, "%.9g", (double)t->steps[t->nsteps - 1].loss);
    snprintf(user, sizeof user,
             "{\"format\": \"" CKPT_FORMAT "\", \"iter\": %" PRId64 ", "
             "\"rng\": [\"%016" PRIx64 "\", \"%016" PRIx64 "\", \"%016" PRIx64 "\", \"%016" PRIx64
             "\"], "
             "\"model\": {\"layers\": %d, \"width\": %d, \"heads\": %d, \"seq_len\": %d, "
             "\"tied\": %s, \"vocab\": %d}, \"dtype\": \"%s\", \"batch\": %d, "
             "\"steps\": %" PRId64 ", \"seed\": %" PRIu64 ", \"data_hash\": \"%016" PRIx64 "\", "
             "\"last_loss\": %s}",
             t->iter, t->rng.s[0], t->rng.s[1], t->rng.s[2], t->rng.s[3], o->model.layers,
             o->model.width, o->model.heads, o->model.max_seq, o->model.tied ? "true" : "false",
             o->model.vocab, o->dtype == ZOFF_DTYPE_F16 ? "fp16" : "bf16", o->batch, o->steps,
             o->seed, t->data.hash, loss);
    int rc = mkdirs(t->ckpt_dir, 1);
    if (rc != 0) {
        fprintf(stderr, "zoff train: checkpoint %s: cannot create its parent directory: %s\n",
                t->ckpt_dir, strerror(-rc));
        return GPT_EXIT_FAIL;
    }
    uint64_t t0 = gpt_now_ns();
    zoff_status st = zoff_save_with(t->rt, t->ckpt_dir, user);
    if (st != ZOFF_OK) return zfail(t, st, "checkpoint");
    snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", t->ckpt_dir);
    gpt_report_line(t, "checkpoint: step %" PRId64 " saved to %s (%.0f ms)", t->iter, t->ckpt_dir,
                    (double)(gpt_now_ns() - t0) / 1e6);
    return 0;
}

static int parse_hex64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsString(v)) return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v->valuestring, &end, 16);
    if (errno || !end || *end || end == v->valuestring) return -EINVAL;
    *out = (uint64_t)x;
    return 0;
}

static int json_int(const cJSON *obj, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return -EINVAL;
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int resume(gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    char user[4097];
    zoff_status st = zoff_load_with(t->rt, o->resume_dir, user, sizeof user);
    if (st != ZOFF_OK) return zfail(t, st, "resume");
    cJSON *j = cJSON_Parse(user);
    int rc = GPT_EXIT_USAGE;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!j || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, CKPT_FORMAT) != 0) {
        fprintf(stderr,
                "zoff train: resume %s: the checkpoint has no trainer state of `zoff train` "
                "(format \"" CKPT_FORMAT "\"): was it saved by another program?\n",
                o->resume_dir);
        goto out;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    int64_t L, C, NH, T, V, iter, B;
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(m, "tied");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (json_int(m, "layers", &L) || json_int(m, "width", &C) || json_int(m, "heads", &NH) ||
        json_int(m, "seq_len", &T) || json_int(m, "vocab", &V) || !cJSON_IsBool(tied) ||
        json_int(j, "iter", &iter) || json_int(j, "batch", &B) || !cJSON_IsString(dt) ||
        !cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != 4) {
        fprintf(stderr, "zoff train: resume %s: the trainer state in the manifest is incomplete\n",
                o->resume_dir);
        goto out;
    }
    if (L != o->model.layers || C != o->model.width || NH != o->model.heads ||
        T != o->model.max_seq || V != o->model.vocab ||
        cJSON_IsTrue(tied) != (o->model.tied != 0)) {
        fprintf(stderr,
                "zoff train: resume %s: the checkpoint's model (layers %lld, width %lld, heads "
                "%lld, seq_len %lld, tied %s) differs from the configured one (layers %d, width "
                "%d, heads %d, seq_len %d, tied %s)\n",
                o->resume_dir, (long long)L, (long long)C, (long long)NH, (long long)T,
                cJSON_IsTrue(tied) ? "true" : "false", o->model.layers, o->model.width,
                o->model.heads, o->model.max_seq, o->model.tied ? "true" : "false");
        goto out;
    }
    const char *want = o->dtype == ZOFF_DTYPE_F16 ? "fp16" : "bf16";
    if (strcmp(dt->valuestring, want) != 0) {
        fprintf(stderr,
                "zoff train: resume %s: the checkpoint was trained in %s, not %s (--dtype)\n",
                o->resume_dir, dt->valuestring, want);
        goto out;
    }
    for (int i = 0; i < 4; i++) {
        if (parse_hex64(cJSON_GetArrayItem(rng, i), &t->rng.s[i]) != 0) {
            fprintf(stderr, "zoff train: resume %s: bad rng state in the manifest\n",
                    o->resume_dir);
            goto out;
        }
    }
    uint64_t h = 0;
    if (parse_hex64(cJSON_GetObjectItemCaseSensitive(j, "data_hash"), &h) == 0 && h != t->data.hash)
        gpt_report_line(t, "warning: the corpus differs from the one the checkpoint was trained "
                           "on: training continues on the new one");
    if (B != o->batch)
        gpt_report_line(t,
                        "warning: batch %d differs from the checkpoint's %lld: the run is not "
                        "a bit-identical continuation",
                        o->batch, (long long)B);
    t->iter = t->start_iter = iter;
    /* zoff_load_with restored the masters, moments, step and loss scaler, and re-uploaded the
     * 16-bit parameters: order the compute copy after that upload. */
    if ((st = zoff_params_ready(t->rt, NULL)) != ZOFF_OK) {
        rc = zfail(t, st, "resume: params_ready");
        goto out;
    }
    if ((st = refresh_params(t)) != ZOFF_OK) {
        rc = zfail(t, st, "resume: zoff_fetch");
        goto out;
    }
    gpt_report_line(t, "resumed from %s at step %" PRId64, o->resume_dir, t->iter);
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- setup ---------------------------------------------------------------------------------- */
static int setup(gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    char err[512];
    zoff_status st;
    t->data_path = o->data_path[0] ? o->data_path : gpt_default_data_path();
    if (gpt_data_load(&t->data, t->data_path, o->model.max_seq, err, sizeof err) != 0) {
        fprintf(stderr, "zoff train: %s%s\n", err,
                o->data_path[0] ? "" : " (choose a text file with --data FILE)");
        return GPT_EXIT_FAIL;
    }
    if (gpt_layout_init(&t->lay, &o->model) != 0 ||
        gpt_model_create(&o->model, o->batch, &t->model) != 0) {
        fprintf(stderr, "zoff train: out of memory for the model\n");
        return GPT_EXIT_FAIL;
    }
    size_t n = t->lay.total_numel, bt = (size_t)o->batch * (size_t)o->model.max_seq;
    t->params = calloc(n, sizeof(float));
    t->grads = calloc(n, sizeof(float));
    t->ids = calloc((size_t)t->lay.ntensors, sizeof(int));
    t->x = calloc(bt, sizeof(int32_t));
    t->y = calloc(bt, sizeof(int32_t));
    if (!t->params || !t->grads || !t->ids || !t->x || !t->y) {
        fprintf(stderr, "zoff train: out of memory\n");
        return GPT_EXIT_FAIL;
    }

    /* the nvme tier's directories and the checkpoint's parent must exist */
    if (o->zcfg.tier == ZOFF_TIER_NVME) {
        char paths[ZOFF_PATH_MAX];
        snprintf(paths, sizeof paths, "%s", o->zcfg.nvme_path);
        for (char *save = NULL, *p = strtok_r(paths, ",", &save); p;
             p = strtok_r(NULL, ",", &save)) {
            int rc = mkdirs(p, 0);
            if (rc != 0) {
                fprintf(stderr, "zoff train: nvme_path %s: cannot create it: %s\n", p,
                        strerror(-rc));
                return GPT_EXIT_FAIL;
            }
        }
    }

    zoff_config cfg = o->zcfg;
    if (cfg.device == ZOFF_DEVICE_AUTO) cfg.device = ZOFF_DEVICE_SIM; /* see trainer.h */
    if ((st = zoff_create(&cfg, &t->rt)) != ZOFF_OK) return zfail(NULL, st, "zoff_create");
    zoff_rank_info ri = ZOFF_RANK_INFO_INIT;
    if ((st = zoff_get_rank_info(t->rt, &ri)) != ZOFF_OK)
        return zfail(NULL, st, "zoff_get_rank_info");
    t->rank = ri.rank;
    t->nranks = ri.size;
    if (ri.size > 1) {
        printf("zoff train: rank %d of %d (ZeRO stage %d, %s): data parallel, every rank takes "
               "its own batch of each step; only rank 0 prints\n",
               ri.rank, ri.size, ri.zero_stage, ri.backend);
        fflush(stdout);
        if (ri.rank != 0 && !freopen("/dev/null", "w", stdout))
            fprintf(stderr, "zoff train: rank %d: cannot silence stdout\n", ri.rank);
    }
    if (!zoff_device_host_accessible(t->rt)) {
        fprintf(stderr,
                "zoff train: the runtime opened a CUDA device (ZOFF_DEVICE?): the example model "
                "computes on the CPU and needs host-addressable device memory, so `zoff train` "
                "runs on the sim device only. Use ZOFF_DEVICE=sim (a trainer that computes on "
                "the GPU uses the library's CUDA path).\n");
        return GPT_EXIT_USAGE;
    }
    /* stream the weights when asked, or when params + gradients do not fit the device */
    t->stream = o->stream == 1 || (o->stream == -1 && cfg.stream_params);
    if (o->stream == -1 && !t->stream) {
        zoff_plan_report rep;
        memset(&rep, 0, sizeof rep);
        rep.struct_size = sizeof rep;
        if (zoff_plan(&cfg, t->lay.param_count, &rep) == ZOFF_OK && rep.gpu_available &&
            rep.gpu_bytes > rep.gpu_available) {
            char b1[32], b2[32];
            if (!o->quiet)
                printf("zoff train: 16-bit params + gradients need %s, the device has %s: "
                       "streaming the weights block by block (--no-stream to refuse)\n",
                       gpt_fmt_bytes((double)rep.gpu_bytes, b1, sizeof b1),
                       gpt_fmt_bytes((double)rep.gpu_available, b2, sizeof b2));
            t->stream = 1;
        }
    }
    t->resident_numel = n;
    if (t->stream) {
        t->resident_numel = 0;
        for (int i = 0; i < t->lay.ntensors; i++) {
            const gpt_tensor *tn = &t->lay.tensors[i];
            if (tensor_resident(t, tn))
                t->resident_numel = tn->offset + tn->numel > t->resident_numel
                                        ? tn->offset + tn->numel
                                        : t->resident_numel;
        }
        t->stage_unit = calloc((size_t)t->lay.nstages, sizeof(int));
        if (!t->stage_unit) {
            fprintf(stderr, "zoff train: out of memory\n");
            return GPT_EXIT_FAIL;
        }
    }
    size_t maxn = 0; /* the one gradient buffer: the largest tensor */
    for (int i = 0; i < t->lay.ntensors; i++)
        if (t->lay.tensors[i].numel > maxn) maxn = t->lay.tensors[i].numel;
    t->dev_bytes = (t->resident_numel + maxn) * sizeof(uint16_t);
    if (t->resident_numel && (st = zoff_device_alloc(t->rt, t->resident_numel * sizeof(uint16_t),
                                                     (void **)&t->dev_params)) != ZOFF_OK)
        return zfail(t, st, "device memory for the 16-bit parameters");
    if ((st = zoff_device_alloc(t->rt, maxn * sizeof(uint16_t), (void **)&t->dev_grads)) != ZOFF_OK)
        return zfail(t, st, "device memory for the 16-bit gradient buffer");
    memset(t->dev_grads, 0, maxn * sizeof(uint16_t));

    /* groups: 0 (from the config) with weight decay, 1 without (biases, layernorm) */
    zoff_group_config g = o->zcfg.optimizer;
    t->peak_lr = o->lr > 0 ? o->lr : (double)o->zcfg.optimizer.lr;
    t->group_decay = 0;
    g.weight_decay = 0;
    if ((st = zoff_add_group(t->rt, &g, &t->group_nodecay)) != ZOFF_OK)
        return zfail(t, st, "zoff_add_group");

    /* initial parameters: exact fp32 masters, their 16-bit rounding on the device */
    gpt_init_params(&t->lay, &o->model, t->params, o->seed);
    if (t->resident_numel) to_16(t->dev_params, t->params, t->resident_numel, o->dtype);
    for (int i = 0; i < t->lay.ntensors; i++) {
        const gpt_tensor *tn = &t->lay.tensors[i];
        st = zoff_add_param(t->rt, tn->name, tn->numel, o->dtype,
                            tensor_resident(t, tn) ? t->dev_params + tn->offset : NULL, NULL,
                            t->params + tn->offset, tn->decay ? t->group_decay : t->group_nodecay,
                            &t->ids[i]);
        if (st != ZOFF_OK) return zfail(t, st, "zoff_add_param");
    }
    if (t->stream) { /* one unit per backward stage; forward runs them from the last stage */
        int *ids = calloc((size_t)t->lay.ntensors, sizeof(int));
        int *fwd = calloc((size_t)t->lay.nstages, sizeof(int));
        if (!ids || !fwd) {
            free(ids);
            free(fwd);
            fprintf(stderr, "zoff train: out of memory\n");
            return GPT_EXIT_FAIL;
        }
        for (int sg = 0; sg < t->lay.nstages && st == ZOFF_OK; sg++) {
            int k = 0;
            for (int i = 0; i < t->lay.ntensors; i++)
                if (t->lay.tensors[i].stage == sg) ids[k++] = t->ids[i];
            char name[32];
            if (sg == 0)
                snprintf(name, sizeof name, "head");
            else if (sg == t->lay.nstages - 1)
                snprintf(name, sizeof name, "embeddings");
            else
                snprintf(name, sizeof name, "h.%d", t->lay.nstages - 2 - sg);
            st = zoff_add_unit(t->rt, name, ids, k, &t->stage_unit[sg]);
            fwd[t->lay.nstages - 1 - sg] = t->stage_unit[sg];
        }
        if (st == ZOFF_OK) st = zoff_set_schedule(t->rt, fwd, t->lay.nstages, NULL, 0);
        free(ids);
        free(fwd);
        if (st != ZOFF_OK) return zfail(t, st, "zoff_add_unit");
    }
    if ((st = zoff_finalize(t->rt)) != ZOFF_OK) return zfail(t, st, "zoff_finalize");
    if ((st = refresh_params(t)) != ZOFF_OK) return zfail(t, st, "zoff_fetch");
    gpt_rng_seed(&t->rng, o->seed ^ 0x5eed0fda7aull);

    snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s",
             o->ckpt_dir[0] ? o->ckpt_dir : (o->resume_dir[0] ? o->resume_dir : "./zoff-run/ckpt"));
    if (o->resume_dir[0]) {
        int rc = resume(t);
        if (rc) return rc;
    }
    zoff_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if ((st = zoff_get_stats(t->rt, &s)) != ZOFF_OK) return zfail(t, st, "zoff_get_stats");
    t->d2h_bytes0 = s.total_d2h_bytes;
    t->h2d_bytes0 = s.total_h2d_bytes;
    t->nvme_r_bytes0 = s.total_nvme_read_bytes;
    t->nvme_w_bytes0 = s.total_nvme_write_bytes;
    return 0;
}

static void teardown(gpt_trainer *t)
{
    if (t->rt) {
        if (t->dev_params) zoff_device_free(t->rt, t->dev_params);
        zoff_device_free(t->rt, t->dev_grads);
        zoff_destroy(t->rt);
    }
    gpt_model_destroy(t->model);
    gpt_layout_free(&t->lay);
    gpt_data_free(&t->data);
    free(t->params);
    free(t->grads);
    free(t->ids);
    free(t->stage_unit);
    free(t->x);
    free(t->y);
    free(t->steps);
    free(t->evals);
}

/* ---- one step ------------------------------------------------------------------------------ */
static int train_step(gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    int B = o->batch, T = o->model.max_seq;
    gpt_step_metrics m = {0};
    zoff_status st;
    uint64_t t0 = gpt_now_ns();

    m.step = t->iter + 1;
    if (o->zcfg.scheduler.type != ZOFF_SCHED_NONE) { /* the runtime runs the config's scheduler */
        zoff_group_config g;
        g.struct_size = sizeof g;
        if ((st = zoff_get_group(t->rt, t->group_decay, &g)) != ZOFF_OK)
            return zfail(t, st, "zoff_get_group");
        m.lr = g.lr;
    } else {
        m.lr = lr_at(t, t->iter);
        if ((st = set_lr(t, m.lr)) != ZOFF_OK) return zfail(t, st, "zoff_set_group");
    }
    if ((st = zoff_get_loss_scale(t->rt, &m.loss_scale)) != ZOFF_OK)
        return zfail(t, st, "zoff_get_loss_scale");

    /* K micro-batches (gradient_accumulation_steps): zoff sums their gradients and updates at
     * the K-th zoff_step with the mean; the reported loss is the mean of the micro-batches */
    int K = o->zcfg.gradient_accumulation_steps > 1 ? (int)o->zcfg.gradient_accumulation_steps : 1;
    if (B % K != 0) {
        fprintf(stderr,
                "zoff train: the batch (%d sequences per step) is not a multiple of "
                "gradient_accumulation_steps (%d): each micro-batch has batch / accumulation "
                "sequences\n",
                B, K);
        return GPT_EXIT_USAGE;
    }
    B /= K; /* sequences per micro-batch */
    zoff_step_result r;
    double loss_sum = 0, zstep_ns = 0;
    uint64_t t1 = t0, t2 = t0;
    int rc = 0;
    for (int j = 0; j < K; j++) {
        float loss = 0;
        /* N ranks draw the same N batches from the shared generator; rank r keeps the r-th
         * (the global batch is N x B sequences, the gradients are averaged over the ranks) */
        int nr = t->nranks > 0 ? t->nranks : 1;
        for (int r_ = 0; r_ < nr; r_++) {
            if (r_ > t->rank) {
                int32_t *sx = malloc((size_t)B * (size_t)T * 2 * sizeof(int32_t));
                if (!sx) {
                    fprintf(stderr, "zoff train: out of memory\n");
                    return GPT_EXIT_FAIL;
                }
                for (; r_ < nr; r_++)
                    gpt_data_train_batch(&t->data, &t->rng, B, T, sx, sx + (size_t)B * (size_t)T);
                free(sx);
                break;
            }
            gpt_data_train_batch(&t->data, &t->rng, B, T, t->x, t->y);
        }
        memset(t->grads, 0, t->lay.total_numel * sizeof(float));
        if (gpt_forward(t->model, t->params, t->x, t->y, B, T, &loss) != 0) {
            fprintf(stderr, "zoff train: forward failed\n");
            return GPT_EXIT_FAIL;
        }
        loss_sum += loss;
        t->cb_status = ZOFF_OK;
        if (t->stream && (st = fetch_stage(t, 0)) != ZOFF_OK) return zfail(t, st, "zoff_fetch");
        rc = gpt_backward(t->model, t->params, t->grads, m.loss_scale, on_stage, t);
        if (rc != 0) return zfail(t, t->cb_status ? t->cb_status : rc, "zoff_grad_push");
        t1 = gpt_now_ns();
        memset(&r, 0, sizeof r);
        r.struct_size = sizeof r;
        if ((st = zoff_step(t->rt, NULL, &r)) != ZOFF_OK) {
            rc = zfail(t, st, "zoff_step");
            if (st == ZOFF_EDIVERGED)
                fprintf(stderr,
                        "zoff train: stopped at step %" PRId64 " (nothing saved: the state "
                        "diverged)%s%s\n",
                        t->iter, t->last_ckpt[0] ? "; the last checkpoint is " : "", t->last_ckpt);
            return rc;
        }
        t2 = gpt_now_ns();
        zstep_ns += (double)(t2 - t1);
        if (r.accumulating != (j < K - 1)) {
            fprintf(stderr, "zoff train: the runtime's accumulation window is out of step\n");
            return GPT_EXIT_FAIL;
        }
    }
    m.loss = (float)(loss_sum / K);
    t1 = t2 - (uint64_t)zstep_ns;
    if ((st = zoff_params_ready(t->rt, NULL)) != ZOFF_OK) return zfail(t, st, "zoff_params_ready");
    if ((st = refresh_params(t)) != ZOFF_OK) return zfail(t, st, "zoff_fetch");
    uint64_t t3 = gpt_now_ns();

    zoff_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if ((st = zoff_get_stats(t->rt, &s)) != ZOFF_OK) return zfail(t, st, "zoff_get_stats");
    t->iter++;
    m.grad_norm = r.grad_norm;
    m.skipped = r.skipped;
    m.compute_ms = (double)(t1 - t0) / 1e6;
    m.zstep_ms = (double)(t2 - t1) / 1e6;
    m.ready_ms = (double)(t3 - t2) / 1e6;
    m.iter_ms = (double)(t3 - t0) / 1e6;
    m.adam_ms = r.adam_ms;
    m.nvme_wait_ms = r.nvme_wait_ms;
    m.grad_wait_ms = r.wait_grads_ms;
    m.d2h_ms = s.d2h.busy_ms;
    m.h2d_ms = s.h2d.busy_ms;
    m.nvme_ms = s.nvme_read.busy_ms + s.nvme_write.busy_ms;
    m.trainer_wait_ms = s.trainer_wait_ms;
    m.overlap = s.overlap_ratio;
    m.tokens_per_s = (double)B * K * T / (m.iter_ms / 1e3);
    t->sum_d2h_ms += m.d2h_ms;
    t->sum_h2d_ms += m.h2d_ms;
    t->sum_nvme_ms += m.nvme_ms;
    t->sum_overlap += m.overlap;
    if (add_step(t, &m) != 0) {
        fprintf(stderr, "zoff train: out of memory for metrics\n");
        return GPT_EXIT_FAIL;
    }
    gpt_report_step(t, &m);
    return 0;
}

static int do_eval(gpt_trainer *t)
{
    float v = evaluate(t);
    if (add_eval(t, v) != 0) return GPT_EXIT_FAIL;
    gpt_report_line(t, "step %" PRId64 ": validation loss %.4f", t->iter, (double)v);
    return 0;
}

int gpt_train_run(const gpt_train_opts *o)
{
    char err[512];
    int rc = gpt_train_check(o, err, sizeof err);
    if (rc) {
        fprintf(stderr, "zoff train: %s\n", err);
        return rc;
    }
    /* OMP_NUM_THREADS=100000 would crash the model's first parallel loop: OpenMP cannot start
     * that many threads. More threads than CPUs never help the model: clamp, and say so. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    if (omp_get_max_threads() > 4 * ncpu && omp_get_max_threads() > 64) {
        fprintf(stderr,
                "zoff train: warning: %d OpenMP threads requested (OMP_NUM_THREADS) on %ld "
                "CPUs; the model uses %ld\n",
                omp_get_max_threads(), ncpu, ncpu);
        omp_set_num_threads((int)ncpu);
    }
    gpt_trainer t = {.o = o};
    t.t_start_ns = gpt_now_ns();
    t.tty = o->quiet ? 0 : (o->progress >= 0 ? o->progress : isatty(STDOUT_FILENO));

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART; /* a second Ctrl-C kills at once */
    sigemptyset(&sa.sa_mask);
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    if ((rc = setup(&t)) != 0) goto out;
    gpt_report_header(&t);
    int64_t stop = o->until > 0 ? o->until : o->steps;
    if (t.iter >= stop)
        gpt_report_line(&t,
                        "nothing to do: the checkpoint is at step %" PRId64
                        " and the run stops at step %" PRId64,
                        t.iter, stop);
    /* before step 1: a checkpoint directory that cannot take a checkpoint (read-only, full, not
     * a checkpoint, another run's) would otherwise cost every step until the first save */
    if (mkdirs(t.ckpt_dir, 1) == 0) {
        zoff_status cst = zoff_checkpoint_check(t.rt, t.ckpt_dir);
        if (cst != ZOFF_OK) {
            rc = zfail(&t, cst, "checkpoint directory");
            goto out;
        }
    }
    int64_t evaluated_at = -1;
    while (t.iter < stop && !g_stop_signal) {
        if ((rc = train_step(&t)) != 0) goto out;
        if (o->eval_interval > 0 && t.iter % o->eval_interval == 0) {
            if ((rc = do_eval(&t)) != 0) goto out;
            evaluated_at = t.iter;
        }
        if (o->ckpt_interval > 0 && t.iter % o->ckpt_interval == 0 && t.iter < stop &&
            !g_stop_signal) {
            if (save_checkpoint(&t) != 0) {
                /* the state in memory and the previous checkpoint are intact: keep training */
                if (++t.ckpt_failures >= o->ckpt_max_failures) {
                    fprintf(stderr,
                            "zoff train: %" PRId64 " checkpoint saves failed in a row "
                            "(--ckpt-max-failures %" PRId64 "): stopping\n",
                            t.ckpt_failures, o->ckpt_max_failures);
                    rc = GPT_EXIT_FAIL;
                    goto out;
                }
                gpt_report_line(&t,
                                "checkpoint at step %" PRId64 " failed (%" PRId64 " of %" PRId64
                                " allowed in a row): training goes on, the next interval retries",
                                t.iter, t.ckpt_failures, o->ckpt_max_failures);
            } else {
                t.ckpt_failures = 0;
            }
        }
    }
    if (g_stop_signal) {
        t.interrupted = 1;
        gpt_report_line(&t, "%s: step %" PRId64 " finished; saving a checkpoint",
                        g_stop_signal == SIGINT ? "interrupted (Ctrl-C)" : "terminated", t.iter);
    } else if (evaluated_at != t.iter && t.nsteps > 0) {
        if ((rc = do_eval(&t)) != 0) goto out;
    }
    if (t.nsteps > 0 || t.interrupted) {
        /* a failed final save still leaves the metrics (--json) and the summary written */
        rc = save_checkpoint(&t);
    }
    if (!t.interrupted && t.nsteps > 0) {
        gpt_report_summary(&t);
        if (!o->quiet) gpt_report_samples(&t);
    }
    if (o->json_path[0] && gpt_write_json(&t, o->json_path) != 0) rc = GPT_EXIT_FAIL;
    if (o->plot_path[0] && !t.interrupted) gpt_write_plot(&t, o->plot_path);
    if (t.interrupted) {
        printf("stopped at step %" PRId64 "; to continue, run the same command with --resume %s\n",
               t.iter, t.ckpt_dir);
        if (rc == 0) rc = GPT_EXIT_INTERRUPTED;
    }
out:
    fflush(stdout);
    teardown(&t);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
