/*
 * train_config.c — the options of the example trainer (trainer.h): the built-in demo
 * configuration, the "model" and "train" sections of the JSON config (read here with cJSON; the
 * rest of the file goes through the runtime's zoff_config_from_json), consistency checks and the
 * default corpus path.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer.h"

/* The demo: 3.22 M parameters (4 blocks of width 256, tied head). Its training state at 16 bytes
 * per parameter (49 MiB) does not fit the 24 MiB sim GPU, while the 16-bit parameters and
 * gradients (12.3 MiB) do. Optimizer state on the nvme tier under ./zoff-run. Keep in sync with
 * examples/configs/demo.json (tests/test_train_cli.c checks that both give the same options). */
const char gpt_demo_config_json[] =
    "{\n"
    "  \"optimizer\": {\"type\": \"AdamW\",\n"
    "                \"params\": {\"lr\": 0.002, \"betas\": [0.9, 0.95], \"eps\": 1e-8,\n"
    "                           \"weight_decay\": 0.1}},\n"
    "  \"fp16\": {\"enabled\": true, \"initial_scale_power\": 12, \"loss_scale_window\": 50},\n"
    "  \"gradient_clipping\": 1.0,\n"
    "  \"zero_optimization\": {\n"
    "    \"stage\": 2,\n"
    "    \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"./zoff-run\",\n"
    "                          \"pin_memory\": true, \"buffer_count\": 4}\n"
    "  },\n"
    "  \"aio\": {\"block_size\": 1048576, \"queue_depth\": 16},\n"
    "  \"zoff\": {\"device\": \"sim\", \"sim_gpu_bytes\": \"24M\", \"sim_pcie_gbps\": 25,\n"
    "           \"partition_numel\": 524288, \"tile_numel\": 131072},\n"
    "  \"model\": {\"layers\": 4, \"width\": 256, \"heads\": 8, \"seq_len\": 128, \"tied\": "
    "true},\n"
    "  \"train\": {\"batch\": 8, \"steps\": 200, \"warmup_steps\": 10,\n"
    "            \"eval_interval\": 25, \"eval_batches\": 4,\n"
    "            \"ckpt_interval\": 50, \"log_interval\": 10, \"seed\": 1, \"samples\": 3,\n"
    "            \"sample_chars\": 240, \"temperature\": 0.8}\n"
    "}\n";

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Reads an integer in [lo, hi] (JSON number without fraction). */
static int get_int(const cJSON *v, const char *path, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return fail(err, errlen, GPT_EXIT_USAGE, "%s: expected an integer in [%lld, %lld]", path,
                    (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *v, const char *path, double lo, double hi, double *out, char *err,
                   size_t errlen)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return fail(err, errlen, GPT_EXIT_USAGE, "%s: expected a number in [%g, %g]", path, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_str(const cJSON *v, const char *path, char *out, size_t len, char *err,
                   size_t errlen)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= len)
        return fail(err, errlen, GPT_EXIT_USAGE, "%s: expected a string shorter than %zu bytes",
                    path, len);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int parse_model(gpt_train_opts *o, const cJSON *sec, const char *origin, char *err,
                       size_t errlen)
{
    char path[128];
    if (!cJSON_IsObject(sec))
        return fail(err, errlen, GPT_EXIT_USAGE, "%s: model: expected an object", origin);
    for (const cJSON *it = sec->child; it; it = it->next) {
        int64_t i = 0;
        int rc = 0;
        snprintf(path, sizeof path, "%s: model.%s", origin, it->string);
        if (!strcmp(it->string, "layers")) {
            if (!(rc = get_int(it, path, 1, 256, &i, err, errlen))) o->model.layers = (int)i;
        } else if (!strcmp(it->string, "width")) {
            if (!(rc = get_int(it, path, 1, 8192, &i, err, errlen))) o->model.width = (int)i;
        } else if (!strcmp(it->string, "heads")) {
            if (!(rc = get_int(it, path, 1, 8192, &i, err, errlen))) o->model.heads = (int)i;
        } else if (!strcmp(it->string, "seq_len")) {
            if (!(rc = get_int(it, path, 1, 4096, &i, err, errlen))) o->model.max_seq = (int)i;
        } else if (!strcmp(it->string, "tied")) {
            if (!cJSON_IsBool(it))
                rc = fail(err, errlen, GPT_EXIT_USAGE, "%s: expected true or false", path);
            else
                o->model.tied = cJSON_IsTrue(it);
        } else {
            rc = fail(err, errlen, GPT_EXIT_USAGE,
                      "%s: unknown key (model keys: layers, width, heads, seq_len, tied)", path);
        }
        if (rc) return rc;
    }
    return 0;
}

static int parse_dtype(const char *s, zoff_dtype *dt)
{
    if (!strcmp(s, "fp16") || !strcmp(s, "f16"))
        *dt = ZOFF_DTYPE_F16;
    else if (!strcmp(s, "bf16"))
        *dt = ZOFF_DTYPE_BF16;
    else
        return -EINVAL;
    return 0;
}

static int parse_train(gpt_train_opts *o, const cJSON *sec, const char *origin, char *err,
                       size_t errlen)
{
    char path[128];
    if (!cJSON_IsObject(sec))
        return fail(err, errlen, GPT_EXIT_USAGE, "%s: train: expected an object", origin);
    const int64_t big = (int64_t)1 << 40;
    for (const cJSON *it = sec->child; it; it = it->next) {
        int64_t i = 0;
        double d = 0;
        int rc = 0;
        const char *k = it->string;
        snprintf(path, sizeof path, "%s: train.%s", origin, k);
        if (!strcmp(k, "batch")) {
            if (!(rc = get_int(it, path, 1, 65536, &i, err, errlen))) o->batch = (int)i;
        } else if (!strcmp(k, "steps")) {
            rc = get_int(it, path, 1, big, &o->steps, err, errlen);
        } else if (!strcmp(k, "until")) {
            rc = get_int(it, path, 0, big, &o->until, err, errlen);
        } else if (!strcmp(k, "lr")) {
            rc = get_num(it, path, 0, 10, &o->lr, err, errlen);
        } else if (!strcmp(k, "min_lr")) {
            rc = get_num(it, path, 0, 10, &o->min_lr, err, errlen);
        } else if (!strcmp(k, "warmup_steps")) {
            rc = get_int(it, path, 0, big, &o->warmup_steps, err, errlen);
        } else if (!strcmp(k, "eval_interval")) {
            rc = get_int(it, path, 0, big, &o->eval_interval, err, errlen);
        } else if (!strcmp(k, "eval_batches")) {
            if (!(rc = get_int(it, path, 1, 4096, &i, err, errlen))) o->eval_batches = (int)i;
        } else if (!strcmp(k, "ckpt_dir")) {
            rc = get_str(it, path, o->ckpt_dir, sizeof o->ckpt_dir, err, errlen);
        } else if (!strcmp(k, "ckpt_interval")) {
            rc = get_int(it, path, 0, big, &o->ckpt_interval, err, errlen);
        } else if (!strcmp(k, "log_interval")) {
            rc = get_int(it, path, 1, big, &o->log_interval, err, errlen);
        } else if (!strcmp(k, "seed")) {
            if (!(rc = get_int(it, path, 0, (int64_t)1 << 53, &i, err, errlen)))
                o->seed = (uint64_t)i;
        } else if (!strcmp(k, "dtype")) {
            if (!cJSON_IsString(it) || parse_dtype(it->valuestring, &o->dtype) != 0)
                rc = fail(err, errlen, GPT_EXIT_USAGE, "%s: expected \"fp16\" or \"bf16\"", path);
        } else if (!strcmp(k, "data")) {
            rc = get_str(it, path, o->data_path, sizeof o->data_path, err, errlen);
        } else if (!strcmp(k, "samples")) {
            if (!(rc = get_int(it, path, 0, 100, &i, err, errlen))) o->samples = (int)i;
        } else if (!strcmp(k, "sample_chars")) {
            if (!(rc = get_int(it, path, 1, 100000, &i, err, errlen))) o->sample_chars = (int)i;
        } else if (!strcmp(k, "temperature")) {
            if (!(rc = get_num(it, path, 0, 100, &d, err, errlen))) o->temperature = (float)d;
        } else {
            rc = fail(err, errlen, GPT_EXIT_USAGE,
                      "%s: unknown key (train keys: batch, steps, until, lr, min_lr, "
                      "warmup_steps, eval_interval, eval_batches, ckpt_dir, ckpt_interval, "
                      "log_interval, seed, dtype, data, samples, sample_chars, temperature)",
                      path);
        }
        if (rc) return rc;
    }
    return 0;
}

/* Applies "model"/"train" of `text` over o; sets *dtype_given when train.dtype was present. */
static int parse_sections(gpt_train_opts *o, const char *text, const char *origin, int *dtype_given,
                          int *batch_given, char *err, size_t errlen)
{
    int rc = 0;
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    *dtype_given = 0;
    *batch_given = 0;
    if (*p == '\0') return 0; /* an empty file is an empty config, as for `zoff plan` */
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        rc = fail(err, errlen, GPT_EXIT_USAGE, "%s: not a JSON object", origin);
        goto out;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "train");
    if (m && (rc = parse_model(o, m, origin, err, errlen)) != 0) goto out;
    zoff_dtype before = o->dtype;
    o->dtype = (zoff_dtype)-1;
    if (t && (rc = parse_train(o, t, origin, err, errlen)) != 0) goto out;
    *batch_given = t && cJSON_GetObjectItemCaseSensitive(t, "batch") != NULL;
    *dtype_given = o->dtype != (zoff_dtype)-1;
    if (!*dtype_given) o->dtype = before;
out:
    cJSON_Delete(root);
    return rc;
}

/* The 16-bit format: train.dtype if given (it then sets the fp16/bf16 switches of the zoff
 * config), else whichever of fp16.enabled / bf16.enabled is on, else bf16. */
static void resolve_dtype(gpt_train_opts *o, int dtype_given)
{
    if (!dtype_given) o->dtype = o->zcfg.fp16_enabled ? ZOFF_DTYPE_F16 : ZOFF_DTYPE_BF16;
    o->zcfg.fp16_enabled = o->dtype == ZOFF_DTYPE_F16;
    o->zcfg.bf16_enabled = o->dtype == ZOFF_DTYPE_BF16;
}

/* What DeepSpeed's "auto" values resolve to in `zoff train`: the command line's values, else the
 * config's "train" section, else the demo's. One micro-batch of `batch` sequences per step. */
static void trainer_values(const gpt_train_opts *o, int dtype_given, zoff_trainer_values *tv)
{
    zoff_trainer_values_default(tv);
    double lr = o->cli_lr > 0 ? o->cli_lr : o->lr;
    if (lr > 0) tv->lr = lr;
    tv->total_num_steps = o->cli_steps > 0 ? o->cli_steps : o->steps;
    tv->warmup_num_steps = o->cli_warmup >= 0 ? o->cli_warmup : o->warmup_steps;
    int batch = o->cli_batch > 0 ? o->cli_batch : o->batch;
    tv->train_micro_batch_size_per_gpu = batch;
    tv->gradient_accumulation_steps = 1;
    tv->train_batch_size = batch;
    int dt = o->cli_dtype >= 0 ? o->cli_dtype : (int)o->dtype;
    (void)dtype_given;
    tv->fp16 = dt == ZOFF_DTYPE_F16;
    tv->bf16 = dt == ZOFF_DTYPE_BF16;
    /* the rest: the trainer's own (the demo's) hyperparameters, still in o->zcfg */
    if (!(o->cli_lr > 0 || o->lr > 0)) tv->lr = o->zcfg.optimizer.lr;
    tv->beta1 = o->zcfg.optimizer.beta1;
    tv->beta2 = o->zcfg.optimizer.beta2;
    tv->eps = o->zcfg.optimizer.eps;
    tv->weight_decay = o->zcfg.optimizer.weight_decay;
    tv->gradient_clipping = o->zcfg.gradient_clipping;
}

static int load_zoff_part(gpt_train_opts *o, const char *origin, const char *path, const char *text,
                          const zoff_trainer_values *tv, char *err, size_t errlen)
{
    /* a file is read by the runtime itself, so that its messages name the file */
    zoff_status st = path ? zoff_config_from_json_with(&o->zcfg, path, tv)
                          : zoff_config_from_json_string_with(&o->zcfg, text, tv);
    if (st == ZOFF_OK) return 0;
    const char *msg = zoff_last_error(NULL);
    if (!msg || !msg[0]) msg = zoff_strerror(st);
    static const char anon[] = "json string: ";
    if (!strncmp(msg, anon, sizeof anon - 1)) msg += sizeof anon - 1;
    size_t ol = strlen(origin);
    int named = !strncmp(msg, origin, ol) && msg[ol] == ':'; /* "cfg.json: key ..." already */
    return fail(err, errlen, st == ZOFF_ECONFIG ? GPT_EXIT_USAGE : GPT_EXIT_FAIL, "%s%s%s",
                named ? "" : origin, named ? "" : ": ", msg);
}

int gpt_train_defaults(gpt_train_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->model.vocab = GPT_VOCAB;
    o->progress = -1;
    o->dtype = ZOFF_DTYPE_BF16;
    o->batch = 1;
    o->steps = 1;
    o->eval_batches = 1;
    o->log_interval = 1;
    o->ckpt_max_failures = 3;
    o->temperature = 0.8f;
    o->stream = -1;
    o->min_lr = -1;
    o->cli_warmup = -1;
    o->cli_dtype = -1;
    int rc =
        load_zoff_part(o, "built-in demo config", NULL, gpt_demo_config_json, NULL, err, errlen);
    if (rc) return rc;
    int given = 0, batch_given = 0;
    if ((rc = parse_sections(o, gpt_demo_config_json, "built-in demo config", &given, &batch_given,
                             err, errlen)) != 0)
        return rc;
    resolve_dtype(o, given);
    return 0;
}

/* A config file replaces the built-in demo config as a whole (as in DeepSpeed, a key it does
 * not set takes the default): where that changes the optimizer, the 16-bit format or the tier,
 * say so once, so that a file with only a "zoff" section does not silently train differently. */
static void note_unset_sections(const gpt_train_opts *o, const char *text, const char *origin)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) return;
    char keys[128] = "", vals[256] = "";
    size_t kl = 0, vl = 0;
#define NOTE(key, ...)                                                                             \
    do {                                                                                           \
        if (kl < sizeof keys)                                                                      \
            kl += (size_t)snprintf(keys + kl, sizeof keys - kl, "%s%s", kl ? ", " : "", key);      \
        if (vl < sizeof vals) vl += (size_t)snprintf(vals + vl, sizeof vals - vl, __VA_ARGS__);    \
    } while (0)
    if (!cJSON_GetObjectItemCaseSensitive(j, "optimizer"))
        NOTE("optimizer", "%slr %g, weight decay %g", vl ? ", " : "", (double)o->zcfg.optimizer.lr,
             (double)o->zcfg.optimizer.weight_decay);
    if (!cJSON_GetObjectItemCaseSensitive(j, "fp16") &&
        !cJSON_GetObjectItemCaseSensitive(j, "bf16"))
        NOTE("fp16/bf16", "%s%s", vl ? ", " : "", o->dtype == ZOFF_DTYPE_F16 ? "fp16" : "bf16");
    if (!cJSON_GetObjectItemCaseSensitive(j, "zero_optimization"))
        NOTE("zero_optimization", "%soffload %s", vl ? ", " : "",
             o->zcfg.tier == ZOFF_TIER_NVME ? "nvme" : "cpu");
#undef NOTE
    cJSON_Delete(j);
    if (keys[0])
        fprintf(stderr,
                "zoff train: %s has no %s section: zoff's defaults apply (%s), not the built-in "
                "demo config's; --lr, --dtype, --offload override them\n",
                origin, keys, vals);
}

int gpt_train_load_config(gpt_train_opts *o, const char *path, const char *text, char *err,
                          size_t errlen)
{
    char *buf = NULL;
    int rc = 0;
    const char *origin = path ? path : "config";
    if (!text) {
        FILE *f = fopen(path, "rb");
        if (!f) return fail(err, errlen, GPT_EXIT_USAGE, "config %s: %s", path, strerror(errno));
        size_t cap = 1 << 16, n = 0;
        buf = malloc(cap);
        while (buf) {
            size_t r = fread(buf + n, 1, cap - n - 1, f);
            n += r;
            if (n + 1 < cap) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        int ioerr = ferror(f);
        fclose(f);
        if (!buf) return fail(err, errlen, GPT_EXIT_FAIL, "config %s: out of memory", path);
        if (ioerr) {
            free(buf);
            return fail(err, errlen, GPT_EXIT_FAIL, "config %s: read error", path);
        }
        buf[n] = '\0';
        text = buf;
    }
    int given = 0, batch_given = 0;
    if ((rc = parse_sections(o, text, origin, &given, &batch_given, err, errlen)) != 0) goto out;
    zoff_trainer_values tv;
    trainer_values(o, given, &tv);
    if ((rc = load_zoff_part(o, origin, buf ? path : NULL, text, &tv, err, errlen)) != 0) goto out;
    resolve_dtype(o, given);
    /* DeepSpeed's batch keys: train_batch_size sequences per step (micro-batch x accumulation;
     * the trainer runs gradient_accumulation_steps micro-batches of batch / accumulation) */
    if (o->zcfg.train_batch_size > 0) {
        if (batch_given && o->batch != o->zcfg.train_batch_size) {
            rc = fail(err, errlen, GPT_EXIT_USAGE,
                      "%s: train.batch (%d) contradicts train_batch_size (%lld = micro-batch %lld "
                      "x accumulation %lld): give one",
                      origin, o->batch, (long long)o->zcfg.train_batch_size,
                      (long long)o->zcfg.train_micro_batch_size_per_gpu,
                      (long long)o->zcfg.gradient_accumulation_steps);
            goto out;
        }
        if (o->zcfg.train_batch_size > 65536) {
            rc = fail(err, errlen, GPT_EXIT_USAGE,
                      "%s: train_batch_size %lld is more than zoff train's 65536 sequences per "
                      "step",
                      origin, (long long)o->zcfg.train_batch_size);
            goto out;
        }
        o->batch = (int)o->zcfg.train_batch_size;
    }
    note_unset_sections(o, text, origin);
out:
    free(buf);
    return rc;
}

int gpt_train_check(const gpt_train_opts *o, char *err, size_t errlen)
{
    char merr[160];
    if (gpt_config_check(&o->model, merr, sizeof merr) != 0)
        return fail(err, errlen, GPT_EXIT_USAGE, "%s", merr);
    if (o->batch < 1) return fail(err, errlen, GPT_EXIT_USAGE, "train.batch must be >= 1");
    if (o->steps < 1) return fail(err, errlen, GPT_EXIT_USAGE, "train.steps must be >= 1");
    if (o->until < 0 || o->until > o->steps)
        return fail(err, errlen, GPT_EXIT_USAGE,
                    "train.until (%lld) must be in [0, train.steps = %lld]", (long long)o->until,
                    (long long)o->steps);
    double peak = o->lr > 0 ? o->lr : o->zcfg.optimizer.lr;
    if (o->min_lr >= 0 && !(o->min_lr <= peak))
        return fail(err, errlen, GPT_EXIT_USAGE, "train.min_lr (%g) must be in [0, the peak lr %g]",
                    o->min_lr, peak);
    if (o->dtype != ZOFF_DTYPE_F16 && o->dtype != ZOFF_DTYPE_BF16)
        return fail(err, errlen, GPT_EXIT_USAGE, "dtype must be fp16 or bf16");
    if (o->zcfg.device == ZOFF_DEVICE_CUDA)
        return fail(err, errlen, GPT_EXIT_USAGE,
                    "zoff.device is \"cuda\": the example model computes on the CPU and needs "
                    "host-addressable device memory, so `zoff train` runs on the sim device only "
                    "(a trainer that computes on the GPU uses the library's CUDA path)");
    if (o->eval_batches < 1)
        return fail(err, errlen, GPT_EXIT_USAGE, "train.eval_batches must be >= 1");
    if (o->log_interval < 1)
        return fail(err, errlen, GPT_EXIT_USAGE, "train.log_interval must be >= 1");
    return 0;
}

double gpt_train_min_lr(const gpt_train_opts *o)
{
    double peak = o->lr > 0 ? o->lr : (double)o->zcfg.optimizer.lr;
    return o->min_lr >= 0 ? o->min_lr : peak / 10.0;
}

const char *gpt_default_data_path(void)
{
    static char path[GPT_PATH_MAX];
    struct stat st;
    /* this file is <src>/examples/gpt/train_config.c: the corpus is <src>/examples/data/ */
    const char *self = __FILE__, *cut = strstr(self, "gpt/train_config.c");
    if (self[0] == '/' && cut) {
        snprintf(path, sizeof path, "%.*sdata/persuasion.txt", (int)(cut - self), self);
        if (stat(path, &st) == 0) return path;
    }
    if (stat("examples/data/persuasion.txt", &st) == 0) return "examples/data/persuasion.txt";
    return path[0] ? path : "examples/data/persuasion.txt";
}
