/*
 * cmd_train.c — `zoff train`: command-line front end of the example GPT trainer
 * (examples/gpt/trainer.h). Owns the option table and --help text; the options override the
 * config file (or the built-in demo), which overrides the library defaults.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "trainer.h"

/* The value of --name V / --name=V on the command line, or NULL. */
static const char *cli_value(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    const char *v = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], name) && i + 1 < argc)
            v = argv[i + 1];
        else if (!strncmp(argv[i], name, n) && argv[i][n] == '=')
            v = argv[i] + n + 1;
    }
    return v;
}

static int cli_has(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], name)) return 1;
    }
    return cli_value(argc, argv, name) != NULL;
}

/* The command-line values a config's "auto" resolves to (validated again by the real parse). */
static void prescan_auto_values(gpt_train_opts *o, int argc, char **argv)
{
    const char *v;
    if ((v = cli_value(argc, argv, "--steps"))) o->cli_steps = strtoll(v, NULL, 10);
    if ((v = cli_value(argc, argv, "--warmup"))) o->cli_warmup = strtoll(v, NULL, 10);
    if ((v = cli_value(argc, argv, "--batch"))) o->cli_batch = (int)strtol(v, NULL, 10);
    if ((v = cli_value(argc, argv, "--lr"))) o->cli_lr = strtod(v, NULL);
    if ((v = cli_value(argc, argv, "--dtype")))
        o->cli_dtype = !strcmp(v, "fp16")   ? ZOFF_DTYPE_F16
                       : !strcmp(v, "bf16") ? ZOFF_DTYPE_BF16
                                            : -1;
}

/* --resume: the model shape and dtype recorded in the checkpoint (the trainer's state in the
 * manifest's "extra", docs/checkpoints.md) replace the configured ones that the command line
 * does not give; what the command line gives must match (the trainer checks and names both). */
static int adopt_checkpoint_shape(gpt_train_opts *o, int argc, char **argv)
{
    char path[GPT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/zoff_manifest.json", o->resume_dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0; /* the runtime's load reports a missing/unreadable checkpoint */
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *root = cJSON_Parse(text);
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
    cJSON *user = NULL;
    if (cJSON_IsString(extra)) user = cJSON_Parse(extra->valuestring);
    const cJSON *tr = user ? user : extra;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(tr, "model");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(tr, "dtype");
    if (cJSON_IsObject(m)) {
        struct {
            const char *key, *opt;
            int *field;
        } shape[] = {{"layers", "--layers", &o->model.layers},
                     {"width", "--width", &o->model.width},
                     {"heads", "--heads", &o->model.heads},
                     {"seq_len", "--seq-len", &o->model.max_seq}};
        char adopted[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, shape[i].key);
            if (!cJSON_IsNumber(v)) continue;
            if (cli_has(argc, argv, shape[i].opt)) {
                if (*shape[i].field != (int)v->valuedouble) {
                    fprintf(stderr,
                            "zoff train: resume %s: %s %d differs from the checkpoint's %d: "
                            "pass %s %d or leave the option out\n",
                            o->resume_dir, shape[i].opt, *shape[i].field, (int)v->valuedouble,
                            shape[i].opt, (int)v->valuedouble);
                    cJSON_Delete(user);
                    cJSON_Delete(root);
                    return GPT_EXIT_USAGE;
                }
                continue;
            }
            if (*shape[i].field != (int)v->valuedouble) {
                *shape[i].field = (int)v->valuedouble;
                int w = snprintf(adopted + used, sizeof adopted - used, "%s %s %d", used ? "," : "",
                                 shape[i].opt, *shape[i].field);
                if (w > 0) used = used + (size_t)w < sizeof adopted ? used + (size_t)w : used;
            }
        }
        const cJSON *tied = cJSON_GetObjectItemCaseSensitive(m, "tied");
        if (cJSON_IsBool(tied) && !cli_has(argc, argv, "--tied") &&
            !cli_has(argc, argv, "--untied") && o->model.tied != cJSON_IsTrue(tied)) {
            o->model.tied = cJSON_IsTrue(tied);
            int w = snprintf(adopted + used, sizeof adopted - used, "%s %s", used ? "," : "",
                             o->model.tied ? "--tied" : "--untied");
            if (w > 0) used = used + (size_t)w < sizeof adopted ? used + (size_t)w : used;
        }
        if (cJSON_IsString(dt) && !cli_has(argc, argv, "--dtype")) {
            zoff_dtype want = !strcmp(dt->valuestring, "fp16") ? ZOFF_DTYPE_F16 : ZOFF_DTYPE_BF16;
            if (want != o->dtype) {
                o->dtype = want;
                o->zcfg.fp16_enabled = want == ZOFF_DTYPE_F16;
                o->zcfg.bf16_enabled = want == ZOFF_DTYPE_BF16;
                int w = snprintf(adopted + used, sizeof adopted - used, "%s --dtype %s",
                                 used ? "," : "", dt->valuestring);
                if (w > 0) used = used + (size_t)w < sizeof adopted ? used + (size_t)w : used;
            }
        }
        if (used && !o->quiet)
            printf("zoff train: resume %s: model from the checkpoint:%s\n", o->resume_dir, adopted);
    }
    cJSON_Delete(user);
    cJSON_Delete(root);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: zoff train [--config cfg.json] [options]\n"
        "\n"
        "Trains the example GPT character-level model on the bundled corpus (Jane Austen's\n"
        "\"Persuasion\") with zoff offloading the optimizer: 16-bit parameters and gradients in\n"
        "(sim) device memory, fp32 master weights and Adam state on the cpu or nvme tier.\n"
        "Without options it runs the demo (examples/configs/demo.json): ~3.2 M parameters whose\n"
        "16 B/param training state does not fit the 24 MiB sim GPU, Adam state on NVMe under\n"
        "./zoff-run, 200 steps in about two minutes on 2 idle cores. Ctrl-C finishes the step,\n"
        "checkpoints and exits 130; --resume continues bit-identically.\n"
        "\n"
        "config:\n"
        "  --config FILE        a DeepSpeed JSON config as is (docs/config.md: every key takes\n"
        "                       effect or is ignored with one warning line), plus optional\n"
        "                       \"model\" and \"train\" sections (docs/train.md). Unset zoff keys\n"
        "                       take the library defaults, unset model/train keys the demo's\n"
        "                       values; \"auto\" takes --steps/--batch/--lr/--warmup/--dtype.\n"
        "                       A \"scheduler\" section replaces the warm-up + cosine below;\n"
        "                       train_batch_size sets the sequences per step.\n"
        "model:\n"
        "  --layers N --width N --heads N --seq-len N   transformer shape\n"
        "  --tied | --untied    output head shares the token embedding (default tied)\n"
        "training:\n"
        "  --steps N            length of the lr schedule = last step\n"
        "  --until N            stop after step N with a checkpoint (continue with --resume)\n"
        "  --batch N            sequences per step (all --accum micro-batches together)\n"
        "  --accum K            gradient accumulation: each step is K micro-batches of batch / K\n"
        "                       sequences (config gradient_accumulation_steps; zoff sums the\n"
        "                       gradients in fp32 and updates with their mean)\n"
        "  --lr X --min-lr X --warmup N   linear warm-up to lr, cosine decay to min-lr\n"
        "                       (default min-lr: a tenth of lr)\n"
        "  --clip X             gradient clipping (max global norm; 0 off)\n"
        "  --dtype fp16|bf16    16-bit format of parameters and gradients (fp16: loss scaling)\n"
        "  --seed N             initialisation, batches and samples\n"
        "  --data FILE          training text (default examples/data/persuasion.txt)\n"
        "  --eval-interval N    validation loss every N steps (0: at the end)\n"
        "  --eval-batches N     size of the fixed validation set in batches\n"
        "offload:\n"
        "  --offload cpu|nvme   tier of the fp32 master weights and Adam state\n"
        "  --nvme-path DIR[,DIR]  swap directories of the nvme tier (default ./zoff-run)\n"
        "  --overlap sync|eager|delayed   zoff's step pipeline mode\n"
        "  --optim adam|adamw|lion|adagrad   the optimizer (adam: L2 decay; adamw: decoupled; "
        "lion\n"
        "                       sets betas 0.9/0.99, adagrad eps 1e-10, as their papers/torch)\n"
        "  --state fp32|bf16|q8 format of the optimizer moments (q8: blockwise 8-bit, ~6 B/param)\n"
        "  --sim-gpu-bytes SIZE capacity of the sim device (e.g. 24M, 1G)\n"
        "  --stream             stream the 16-bit weights block by block from pinned host memory\n"
        "                       (automatic when params + gradients do not fit the device);\n"
        "                       --no-stream turns the automatic choice off\n"
        "  --prefetch-depth N   streamed blocks uploaded ahead of the one in use (default 2)\n"
        "checkpoints:\n"
        "  --ckpt-dir DIR       where checkpoints go (default ./zoff-run/ckpt, or the --resume "
        "dir)\n"
        "  --ckpt-interval N    checkpoint every N steps (0: only at the end)\n"
        "  --ckpt-max-failures N  periodic saves failing in a row before the run stops (3);\n"
        "                       a failed save keeps training (the previous checkpoint stays)\n"
        "  --resume DIR         continue bit-identically from a checkpoint; the model shape\n"
        "                       and dtype are taken from it unless given\n"
        "output:\n"
        "  --json FILE          per-step metrics (loss, lr, scale, time breakdown) as JSON\n"
        "  --plot FILE.png      loss curve drawn with gnuplot (if installed)\n"
        "  --log-interval N     one plain line every N steps when stdout is not a terminal\n"
        "  --progress | --no-progress   force the progress bar on or off (default: on a TTY)\n"
        "  --samples N --sample-chars N --temperature X   generated text at the end\n"
        "  --quiet              only errors and a one-line result\n"
        "  -h, --help           this text\n"
        "\n"
        "exit status: 0 done, 1 runtime/data error, 2 bad option or config, 130 interrupted.\n");
}

enum {
    O_CONFIG = 1000,
    O_LAYERS,
    O_WIDTH,
    O_HEADS,
    O_SEQ,
    O_TIED,
    O_UNTIED,
    O_STEPS,
    O_UNTIL,
    O_BATCH,
    O_LR,
    O_MINLR,
    O_WARMUP,
    O_CLIP,
    O_DTYPE,
    O_SEED,
    O_DATA,
    O_EVALI,
    O_EVALB,
    O_OFFLOAD,
    O_NVME,
    O_OVERLAP,
    O_SIMGPU,
    O_CKPTDIR,
    O_CKPTI,
    O_CKPTFAIL,
    O_RESUME,
    O_JSON,
    O_PLOT,
    O_LOGI,
    O_PROGRESS,
    O_NOPROGRESS,
    O_SAMPLES,
    O_SCHARS,
    O_TEMP,
    O_QUIET,
    O_OPTIM,
    O_STATE,
    O_DEVICE,
    O_STREAM,
    O_NOSTREAM,
    O_PREFETCH,
    O_ACCUM
};

static const struct option long_opts[] = {
    {"config", required_argument, 0, O_CONFIG},
    {"layers", required_argument, 0, O_LAYERS},
    {"width", required_argument, 0, O_WIDTH},
    {"heads", required_argument, 0, O_HEADS},
    {"seq-len", required_argument, 0, O_SEQ},
    {"tied", no_argument, 0, O_TIED},
    {"untied", no_argument, 0, O_UNTIED},
    {"steps", required_argument, 0, O_STEPS},
    {"until", required_argument, 0, O_UNTIL},
    {"batch", required_argument, 0, O_BATCH},
    {"accum", required_argument, 0, O_ACCUM},
    {"lr", required_argument, 0, O_LR},
    {"min-lr", required_argument, 0, O_MINLR},
    {"warmup", required_argument, 0, O_WARMUP},
    {"clip", required_argument, 0, O_CLIP},
    {"dtype", required_argument, 0, O_DTYPE},
    {"seed", required_argument, 0, O_SEED},
    {"data", required_argument, 0, O_DATA},
    {"eval-interval", required_argument, 0, O_EVALI},
    {"eval-batches", required_argument, 0, O_EVALB},
    {"offload", required_argument, 0, O_OFFLOAD},
    {"nvme-path", required_argument, 0, O_NVME},
    {"overlap", required_argument, 0, O_OVERLAP},
    {"sim-gpu-bytes", required_argument, 0, O_SIMGPU},
    {"device", required_argument, 0, O_DEVICE},
    {"stream", no_argument, 0, O_STREAM},
    {"no-stream", no_argument, 0, O_NOSTREAM},
    {"prefetch-depth", required_argument, 0, O_PREFETCH},
    {"ckpt-dir", required_argument, 0, O_CKPTDIR},
    {"ckpt-interval", required_argument, 0, O_CKPTI},
    {"ckpt-max-failures", required_argument, 0, O_CKPTFAIL},
    {"resume", required_argument, 0, O_RESUME},
    {"json", required_argument, 0, O_JSON},
    {"plot", required_argument, 0, O_PLOT},
    {"log-interval", required_argument, 0, O_LOGI},
    {"progress", no_argument, 0, O_PROGRESS},
    {"no-progress", no_argument, 0, O_NOPROGRESS},
    {"samples", required_argument, 0, O_SAMPLES},
    {"sample-chars", required_argument, 0, O_SCHARS},
    {"temperature", required_argument, 0, O_TEMP},
    {"quiet", no_argument, 0, O_QUIET},
    {"optim", required_argument, 0, O_OPTIM},
    {"state", required_argument, 0, O_STATE},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int bad(const char *opt, const char *val, const char *want)
{
    fprintf(stderr, "zoff train: --%s %s: expected %s (see zoff train --help)\n", opt, val, want);
    return GPT_EXIT_USAGE;
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "an integer in [%" PRId64 ", %" PRId64 "]", lo, hi);
        return bad(opt, s, want);
    }
    *out = v;
    return 0;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    int64_t v;
    int rc = parse_i64(opt, s, lo, hi, &v);
    if (rc == 0) *out = (int)v;
    return rc;
}

static int parse_dbl(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || end == s || !isfinite(v) || v < lo || v > hi) {
        char want[96];
        snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
        return bad(opt, s, want);
    }
    *out = v;
    return 0;
}

/* "123", "64k", "24M", "2G" (k = 1024) */
static int parse_size(const char *opt, const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    if (end && *end) {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1ull << 10;
            break;
        case 'm':
        case 'M':
            mul = 1ull << 20;
            break;
        case 'g':
        case 'G':
            mul = 1ull << 30;
            break;
        default:
            mul = 0;
        }
        if (mul && end[1] && strcasecmp(end + 1, "iB") != 0 && strcasecmp(end + 1, "B") != 0)
            mul = 0;
    }
    if (errno || end == s || s[0] == '-' || mul == 0 || v == 0 || v > (1ull << 50) / mul)
        return bad(opt, s, "a size > 0 such as 24M or 1G");
    *out = (size_t)(v * mul);
    return 0;
}

static int copy_path(const char *opt, const char *s, char *dst, size_t len)
{
    if (strlen(s) >= len) return bad(opt, s, "a shorter path");
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int zoff_cmd_train(int argc, char **argv)
{
    gpt_train_opts o;
    char err[1024];
    int accum_flag = 0;
    int rc = gpt_train_defaults(&o, err, sizeof err);
    if (rc) {
        fprintf(stderr, "zoff train: %s\n", err);
        return rc;
    }
    /* the config file first, whatever its position: options override it */
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            config = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            config = argv[i] + 9;
        else if (!strcmp(argv[i], "--"))
            break;
    }
    prescan_auto_values(&o, argc, argv);
    if (config && (rc = gpt_train_load_config(&o, config, NULL, err, sizeof err)) != 0) {
        fprintf(stderr, "zoff train: %s\n", err);
        return rc;
    }

    optind = 0; /* full re-initialisation of getopt (the tool may have parsed before) */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        const char *name = NULL;
        for (const struct option *p = long_opts; p->name; p++)
            if (p->val == c) name = p->name;
        double d;
        int64_t v;
        size_t sz;
        rc = 0;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case O_CONFIG:
            break;
        case O_LAYERS:
            rc = parse_int(name, optarg, 1, 256, &o.model.layers);
            break;
        case O_WIDTH:
            rc = parse_int(name, optarg, 1, 8192, &o.model.width);
            break;
        case O_HEADS:
            rc = parse_int(name, optarg, 1, 8192, &o.model.heads);
            break;
        case O_SEQ:
            rc = parse_int(name, optarg, 1, 4096, &o.model.max_seq);
            break;
        case O_TIED:
            o.model.tied = 1;
            break;
        case O_UNTIED:
            o.model.tied = 0;
            break;
        case O_STEPS:
            rc = parse_i64(name, optarg, 1, INT64_C(1) << 40, &o.steps);
            break;
        case O_UNTIL:
            rc = parse_i64(name, optarg, 0, INT64_C(1) << 40, &o.until);
            break;
        case O_BATCH:
            rc = parse_int(name, optarg, 1, 65536, &o.batch);
            break;
        case O_ACCUM:
            if (!(rc = parse_int(name, optarg, 1, 65536, &accum_flag)))
                o.zcfg.gradient_accumulation_steps = accum_flag;
            break;
        case O_LR:
            rc = parse_dbl(name, optarg, 0, 10, &o.lr);
            break;
        case O_MINLR:
            rc = parse_dbl(name, optarg, 0, 10, &o.min_lr);
            break;
        case O_WARMUP:
            rc = parse_i64(name, optarg, 0, INT64_C(1) << 40, &o.warmup_steps);
            break;
        case O_CLIP:
            if (!(rc = parse_dbl(name, optarg, 0, 1e30, &d))) o.zcfg.gradient_clipping = (float)d;
            break;
        case O_DTYPE:
            if (!strcmp(optarg, "fp16"))
                o.dtype = ZOFF_DTYPE_F16;
            else if (!strcmp(optarg, "bf16"))
                o.dtype = ZOFF_DTYPE_BF16;
            else
                rc = bad(name, optarg, "fp16 or bf16");
            o.zcfg.fp16_enabled = o.dtype == ZOFF_DTYPE_F16;
            o.zcfg.bf16_enabled = o.dtype == ZOFF_DTYPE_BF16;
            break;
        case O_SEED:
            if (!(rc = parse_i64(name, optarg, 0, INT64_C(1) << 53, &v))) o.seed = (uint64_t)v;
            break;
        case O_DATA:
            rc = copy_path(name, optarg, o.data_path, sizeof o.data_path);
            break;
        case O_EVALI:
            rc = parse_i64(name, optarg, 0, INT64_C(1) << 40, &o.eval_interval);
            break;
        case O_EVALB:
            rc = parse_int(name, optarg, 1, 4096, &o.eval_batches);
            break;
        case O_OFFLOAD:
            if (!strcmp(optarg, "cpu"))
                o.zcfg.tier = ZOFF_TIER_CPU;
            else if (!strcmp(optarg, "nvme"))
                o.zcfg.tier = ZOFF_TIER_NVME;
            else
                rc = bad(name, optarg, "cpu or nvme");
            break;
        case O_NVME:
            rc = copy_path(name, optarg, o.zcfg.nvme_path, sizeof o.zcfg.nvme_path);
            break;
        case O_OVERLAP:
            if (!strcmp(optarg, "sync"))
                o.zcfg.overlap = ZOFF_OVERLAP_SYNC;
            else if (!strcmp(optarg, "eager"))
                o.zcfg.overlap = ZOFF_OVERLAP_EAGER;
            else if (!strcmp(optarg, "delayed"))
                o.zcfg.overlap = ZOFF_OVERLAP_DELAYED;
            else
                rc = bad(name, optarg, "sync, eager or delayed");
            break;
        case O_SIMGPU:
            if (!(rc = parse_size(name, optarg, &sz))) o.zcfg.sim_gpu_bytes = sz;
            break;
        case O_STREAM:
            o.stream = 1;
            break;
        case O_NOSTREAM:
            o.stream = 0;
            break;
        case O_PREFETCH:
            o.zcfg.prefetch_depth = atoi(optarg);
            if (o.zcfg.prefetch_depth < 0 || o.zcfg.prefetch_depth > 64) {
                fprintf(stderr, "zoff train: --prefetch-depth must be in [0, 64]\n");
                rc = 2;
            }
            break;
        case O_DEVICE:
            if (!strcmp(optarg, "sim"))
                o.zcfg.device = ZOFF_DEVICE_SIM;
            else if (!strcmp(optarg, "cuda"))
                o.zcfg.device = ZOFF_DEVICE_CUDA;
            else if (!strcmp(optarg, "auto"))
                o.zcfg.device = ZOFF_DEVICE_AUTO;
            else
                rc = bad(name, optarg, "sim (cuda cannot run the CPU model)");
            break;
        case O_CKPTDIR:
            rc = copy_path(name, optarg, o.ckpt_dir, sizeof o.ckpt_dir);
            break;
        case O_CKPTI:
            rc = parse_i64(name, optarg, 0, INT64_C(1) << 40, &o.ckpt_interval);
            break;
        case O_CKPTFAIL:
            rc = parse_i64(name, optarg, 1, 1000000, &o.ckpt_max_failures);
            break;
        case O_RESUME:
            rc = copy_path(name, optarg, o.resume_dir, sizeof o.resume_dir);
            break;
        case O_JSON:
            rc = copy_path(name, optarg, o.json_path, sizeof o.json_path);
            break;
        case O_PLOT:
            rc = copy_path(name, optarg, o.plot_path, sizeof o.plot_path);
            break;
        case O_LOGI:
            rc = parse_i64(name, optarg, 1, INT64_C(1) << 40, &o.log_interval);
            break;
        case O_PROGRESS:
            o.progress = 1;
            break;
        case O_NOPROGRESS:
            o.progress = 0;
            break;
        case O_SAMPLES:
            rc = parse_int(name, optarg, 0, 100, &o.samples);
            break;
        case O_SCHARS:
            rc = parse_int(name, optarg, 1, 100000, &o.sample_chars);
            break;
        case O_TEMP:
            if (!(rc = parse_dbl(name, optarg, 0, 100, &d))) o.temperature = (float)d;
            break;
        case O_QUIET:
            o.quiet = 1;
            break;
        case O_OPTIM:
            if (!strcmp(optarg, "adam") || !strcmp(optarg, "adamw")) {
                o.zcfg.optimizer_type = ZOFF_OPTIM_ADAM;
                o.zcfg.optimizer.adamw_mode = !strcmp(optarg, "adamw");
            } else if (!strcmp(optarg, "lion")) {
                o.zcfg.optimizer_type = ZOFF_OPTIM_LION;
                o.zcfg.optimizer.beta1 = 0.9f;
                o.zcfg.optimizer.beta2 = 0.99f;
            } else if (!strcmp(optarg, "adagrad")) {
                o.zcfg.optimizer_type = ZOFF_OPTIM_ADAGRAD;
                o.zcfg.optimizer.eps = 1e-10f;
            } else {
                rc = bad(name, optarg, "adam, adamw, lion or adagrad");
            }
            break;
        case O_STATE:
            if (!strcmp(optarg, "fp32"))
                o.zcfg.state_format = ZOFF_STATE_FP32;
            else if (!strcmp(optarg, "bf16"))
                o.zcfg.state_format = ZOFF_STATE_BF16;
            else if (!strcmp(optarg, "q8"))
                o.zcfg.state_format = ZOFF_STATE_Q8;
            else
                rc = bad(name, optarg, "fp32, bf16 or q8");
            break;
        case ':':
            fprintf(stderr, "zoff train: %s needs a value (see zoff train --help)\n",
                    argv[optind - 1]);
            return GPT_EXIT_USAGE;
        default:
            fprintf(stderr, "zoff train: unknown option '%s' (see zoff train --help)\n",
                    argv[optind - 1]);
            return GPT_EXIT_USAGE;
        }
        if (rc) return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "zoff train: unexpected argument '%s' (see zoff train --help)\n",
                argv[optind]);
        return GPT_EXIT_USAGE;
    }
    if (o.resume_dir[0] && (rc = adopt_checkpoint_shape(&o, argc, argv)) != 0) return rc;
    return gpt_train_run(&o);
}
