/*
 * cmd_plan.c — `zoff plan --params N [--config cfg.json] [--dtype fp32|fp16|bf16] [--tier
 * cpu|nvme] [--nvme-path DIR] [--ratio R] [--gpu-mem SIZE] [--json] [--stream ...]`: bytes per
 * memory tier for a model of N parameters under a config, next to what this machine has (device
 * memory or the
 * --gpu-mem a GPU elsewhere has, MemAvailable, free space under the nvme paths), and whether it
 * fits; when it does not, the advice names the knob to change as a JSON key and, where this
 * command has one, its flag. Exit code 0: fits; 1: does not fit; 2: bad input (usage, numbers,
 * config). Public API only (zoff_plan_with, zoff_plan_max_params, zoff_parse_count,
 * zoff_parse_size). --gpu-mem without --params answers the largest model that fits a GPU of that
 * size, for each tier (zoff_plan_max_params: GPU, host and disk bounds).
 *
 * Adding an option: a field in plan_opts, a line in plan_usage, a branch in parse_args, and
 * (when it changes the plan) its effect in apply_opts; a flag the advice should name goes into
 * advice_flags.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "zoff.h"

/* What a config's scheduler.params.total_num_steps "auto" stands for in a plan (the schedule
 * changes no byte of it); `zoff train`'s demo runs this many steps. */
#define PLAN_AUTO_TOTAL_STEPS 200

typedef struct plan_opts {
    uint64_t params;
    const char *config, *tier, *nvme_path, *ratio, *dtype, *state, *optim;
    uint64_t gpu_mem_bytes; /* 0: this machine's device */
    int json;
    int stream;              /* --stream: 16-bit weights streamed from host memory */
    int prefetch_depth;      /* -1: the config's */
    zoff_plan_options shape; /* layers, batch, seq_len, gpu_tflops, pcie_gbps */
} plan_opts;

static void plan_usage(FILE *f)
{
    fprintf(f,
            "usage: zoff plan --params N [--config cfg.json] [--dtype fp32|fp16|bf16]\n"
            "                 [--tier cpu|nvme] [--nvme-path DIR[,DIR...]] [--ratio R]\n"
            "                 [--gpu-mem SIZE] [--state fp32|bf16|q8] [--optim adam|lion|adagrad]\n"
            "                 [--json]\n"
            "                 [--stream [--layers L] [--batch B] [--seq S] [--prefetch-depth D]\n"
            "                  [--gpu-tflops T (400)] [--pcie-gbps G (25)]]\n"
            "  --params N      parameters: 7000000000, 7e9, 7B (decimal billions), 1.5B,\n"
            "                  or binary 7G (7 * 2^30); k/M/G/T are powers of 1024\n"
            "  --dtype D       parameter/gradient dtype (default: the config's, else fp32)\n"
            "  --gpu-mem SIZE  plan for a GPU with SIZE free (e.g. 80G), not this machine's\n"
            "  --state F       optimizer moment format (q8: ~6 B/param of Adam state, not 12)\n"
            "  --optim O       optimizer (Lion and Adagrad keep one moment)\n"
            "  --stream        16-bit weights streamed layer by layer from pinned host memory:\n"
            "                  the GPU holds prefetch_depth + 1 layer slots, the gradient path\n"
            "                  and the activations of B x S tokens (docs/runtime.md)\n"
            "       zoff plan --gpu-mem SIZE [--config cfg.json] [--dtype D] [--nvme-path DIR]\n"
            "                 [--json]\n"
            "                  the largest model that fits a GPU of SIZE, for each tier\n"
            "  exit status: 0 fits, 1 does not fit, 2 bad input\n");
}

/* "--key value" or "--key=value" */
static const char *arg_value(int *i, int argc, char **argv, const char *key)
{
    size_t kl = strlen(key);
    if (strncmp(argv[*i], key, kl) != 0) return NULL;
    if (argv[*i][kl] == '=') return argv[*i] + kl + 1;
    if (argv[*i][kl] == '\0' && *i + 1 < argc) return argv[++*i];
    return NULL;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

/* 0, or 2 after printing why. */
static int parse_args(int argc, char **argv, plan_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = arg_value(&i, argc, argv, "--params"))) {
            if (zoff_parse_count(v, &o->params) < 0) {
                fprintf(stderr, "zoff plan: bad --params: %s\n", zoff_last_error(NULL));
                return 2;
            }
            if (o->params == 0) {
                fprintf(stderr, "zoff plan: --params must be at least 1\n");
                return 2;
            }
        } else if ((v = arg_value(&i, argc, argv, "--gpu-mem"))) {
            if (zoff_parse_size(v, &o->gpu_mem_bytes) < 0 || o->gpu_mem_bytes == 0) {
                fprintf(stderr, "zoff plan: bad --gpu-mem '%s': a size such as 80G or 24GiB\n", v);
                return 2;
            }
        } else if ((v = arg_value(&i, argc, argv, "--config"))) {
            o->config = v;
        } else if ((v = arg_value(&i, argc, argv, "--dtype"))) {
            o->dtype = v;
        } else if ((v = arg_value(&i, argc, argv, "--tier"))) {
            o->tier = v;
        } else if ((v = arg_value(&i, argc, argv, "--nvme-path"))) {
            o->nvme_path = v;
        } else if ((v = arg_value(&i, argc, argv, "--ratio"))) {
            o->ratio = v;
        } else if ((v = arg_value(&i, argc, argv, "--state"))) {
            o->state = v;
        } else if ((v = arg_value(&i, argc, argv, "--optim"))) {
            o->optim = v;
        } else if (!strcmp(argv[i], "--json")) {
            o->json = 1;
        } else if (!strcmp(argv[i], "--stream")) {
            o->stream = 1;
        } else if ((v = arg_value(&i, argc, argv, "--layers"))) {
            o->shape.layers = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--batch"))) {
            o->shape.batch = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--seq"))) {
            o->shape.seq_len = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--prefetch-depth"))) {
            o->prefetch_depth = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--gpu-tflops"))) {
            o->shape.gpu_tflops = atof(v);
        } else if ((v = arg_value(&i, argc, argv, "--pcie-gbps"))) {
            o->shape.pcie_gbps = atof(v);
        } else {
            fprintf(stderr, "zoff plan: unknown argument '%s'\n", argv[i]);
            plan_usage(stderr);
            return 2;
        }
    }
    if (o->params == 0 && o->gpu_mem_bytes == 0) {
        fprintf(stderr, "zoff plan: --params N is required (or --gpu-mem SIZE alone: the "
                        "largest model per tier)\n");
        plan_usage(stderr);
        return 2;
    }
    return 0;
}

/* The command line's choices over the config's. 0, or 2 after printing why. */
static int apply_opts(const plan_opts *o, zoff_config *cfg)
{
    if (o->dtype) {
        if (!strcasecmp(o->dtype, "fp16") || !strcasecmp(o->dtype, "f16")) {
            cfg->fp16_enabled = 1;
            cfg->bf16_enabled = 0;
        } else if (!strcasecmp(o->dtype, "bf16")) {
            cfg->fp16_enabled = 0;
            cfg->bf16_enabled = 1;
        } else if (!strcasecmp(o->dtype, "fp32") || !strcasecmp(o->dtype, "f32")) {
            cfg->fp16_enabled = 0;
            cfg->bf16_enabled = 0;
        } else {
            fprintf(stderr, "zoff plan: --dtype must be fp32, fp16 or bf16 (got '%s')\n", o->dtype);
            return 2;
        }
    }
    if (o->tier) {
        if (!strcasecmp(o->tier, "cpu"))
            cfg->tier = ZOFF_TIER_CPU;
        else if (!strcasecmp(o->tier, "nvme"))
            cfg->tier = ZOFF_TIER_NVME;
        else {
            fprintf(stderr, "zoff plan: --tier must be cpu or nvme (got '%s')\n", o->tier);
            return 2;
        }
    }
    if (o->nvme_path) {
        if (strlen(o->nvme_path) >= sizeof cfg->nvme_path) {
            fprintf(stderr, "zoff plan: --nvme-path is longer than %zu bytes\n",
                    sizeof cfg->nvme_path - 1);
            return 2;
        }
        snprintf(cfg->nvme_path, sizeof cfg->nvme_path, "%s", o->nvme_path);
    }
    if (o->state) {
        static const char *const names[3] = {"fp32", "bf16", "q8"};
        int k = 0;
        while (k < 3 && strcasecmp(o->state, names[k])) k++;
        if (k == 3) {
            fprintf(stderr, "zoff plan: --state must be fp32, bf16 or q8 (got '%s')\n", o->state);
            return 2;
        }
        cfg->state_format = k;
    }
    if (o->optim) {
        if (!strcasecmp(o->optim, "adam") || !strcasecmp(o->optim, "adamw"))
            cfg->optimizer_type = ZOFF_OPTIM_ADAM;
        else if (!strcasecmp(o->optim, "lion"))
            cfg->optimizer_type = ZOFF_OPTIM_LION;
        else if (!strcasecmp(o->optim, "adagrad"))
            cfg->optimizer_type = ZOFF_OPTIM_ADAGRAD;
        else {
            fprintf(stderr, "zoff plan: --optim must be adam, lion or adagrad (got '%s')\n",
                    o->optim);
            return 2;
        }
    }
    if (o->ratio) {
        char *end;
        errno = 0;
        double r = strtod(o->ratio, &end);
        if (errno || end == o->ratio || *end || !(r >= 0.0 && r <= 1.0)) {
            fprintf(stderr, "zoff plan: --ratio must be a number in [0, 1] (got '%s')\n", o->ratio);
            return 2;
        }
        cfg->ratio = (float)r;
    }
    if (o->stream) cfg->stream_params = 1;
    if (o->prefetch_depth >= 0) cfg->prefetch_depth = o->prefetch_depth;
    return 0;
}

/* The advice names JSON keys; where this command has a flag for one, add it. */
static void advice_flags(const char *in, char *out, size_t len)
{
    static const struct {
        const char *key, *flag;
    } map[] = {
        {"zero_optimization.offload_optimizer.device", "--tier"},
        {"zero_optimization.offload_optimizer.nvme_path", "--nvme-path"},
        {"zero_optimization.offload_optimizer.ratio", "--ratio"},
        {"zoff.sim_gpu_bytes", "--gpu-mem"},
    };
    size_t used = 0;
    out[0] = '\0';
    while (*in && used + 1 < len) {
        size_t k = 0;
        for (; k < sizeof map / sizeof map[0]; k++)
            if (!strncmp(in, map[k].key, strlen(map[k].key))) break;
        if (k < sizeof map / sizeof map[0]) {
            int n = snprintf(out + used, len - used, "%s (%s)", map[k].key, map[k].flag);
            if (n < 0 || (size_t)n >= len - used) break;
            used += (size_t)n;
            in += strlen(map[k].key);
        } else {
            out[used++] = *in++;
            out[used] = '\0';
        }
    }
}

/* --gpu-mem without --params: the largest model per tier (cpu; nvme under the config's or
 * --nvme-path's directories, else /var/tmp). */
static int largest_models(const zoff_config *cfg_in, uint64_t gpu_mem, int json)
{
    uint64_t maxp[2] = {0, 0};
    zoff_plan_report at[2];
    char paths[2][ZOFF_PATH_MAX];
    size_t es = (cfg_in->fp16_enabled || cfg_in->bf16_enabled) ? 2 : 4;
    for (int t = 0; t < 2; t++) {
        zoff_config c = *cfg_in;
        c.tier = t ? ZOFF_TIER_NVME : ZOFF_TIER_CPU;
        if (c.tier == ZOFF_TIER_NVME && !c.nvme_path[0])
            snprintf(c.nvme_path, sizeof c.nvme_path, "/var/tmp");
        snprintf(paths[t], sizeof paths[t], "%s", c.nvme_path);
        memset(&at[t], 0, sizeof at[t]);
        at[t].struct_size = sizeof at[t];
        if (zoff_plan_max_params(&c, gpu_mem, &maxp[t], &at[t]) < 0) {
            fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
            return 2;
        }
    }
    /* the GPU alone: 16-bit params + buckets; full gradient buffers; no offload (16 B/param) */
    uint64_t buckets = (uint64_t)cfg_in->grad_bucket_count * cfg_in->grad_bucket_numel * es;
    uint64_t gpu_only = gpu_mem > buckets ? (gpu_mem - buckets) / es : 0;
    if (json) {
        printf("{\"gpu_mem\": %llu, \"gpu_bound_params\": %llu, \"full_grads_params\": %llu, "
               "\"no_offload_params\": %llu, \"tiers\": [",
               (unsigned long long)gpu_mem, (unsigned long long)gpu_only,
               (unsigned long long)(gpu_mem / (2 * es)), (unsigned long long)(gpu_mem / 16));
        for (int t = 0; t < 2; t++) {
            printf("%s{\"tier\": \"%s\", \"max_params\": %llu, \"gpu_bytes\": %llu, "
                   "\"host_bytes\": %llu, \"nvme_bytes\": %llu, \"nvme_path\": ",
                   t ? ", " : "", t ? "nvme" : "cpu", (unsigned long long)maxp[t],
                   (unsigned long long)at[t].gpu_bytes,
                   (unsigned long long)(at[t].pinned_bytes + at[t].pageable_bytes),
                   (unsigned long long)at[t].nvme_bytes);
            json_string(t ? paths[t] : "");
            printf("}");
        }
        printf("]}\n");
        return 0;
    }
    char a[32], b[32], c[32];
    printf("zoff plan: the largest model for a GPU of %s (%zu-byte params, %d gradient buckets of "
           "%zu elements)\n",
           zoff_format_bytes(gpu_mem, a, sizeof a), es, cfg_in->grad_bucket_count,
           cfg_in->grad_bucket_numel);
    printf("  the GPU alone holds %.3f G params with zoff's buckets, %.3f G with full gradient "
           "buffers, %.3f G without offload\n",
           (double)gpu_only / 1e9, (double)(gpu_mem / (2 * es)) / 1e9,
           (double)(gpu_mem / 16) / 1e9);
    printf("  %-6s %14s %12s %12s %12s  bound by\n", "tier", "max params", "gpu", "host", "nvme");
    for (int t = 0; t < 2; t++) {
        const zoff_plan_report *r = &at[t];
        const char *bound = maxp[t] + 1 >= gpu_only ? "the GPU"
                            : t == 0                ? "host memory"
                                                    : "host memory or the disk";
        printf("  %-6s %12.3f G %12s %12s %12s  %s%s%s\n", t ? "nvme" : "cpu",
               (double)maxp[t] / 1e9, zoff_format_bytes(r->gpu_bytes, a, sizeof a),
               zoff_format_bytes(r->pinned_bytes + r->pageable_bytes, b, sizeof b),
               zoff_format_bytes(r->nvme_bytes, c, sizeof c), bound, t ? " under " : "",
               t ? paths[t] : "");
    }
    return 0;
}

int zoff_cmd_plan(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            plan_usage(stdout);
            return 0;
        }
    plan_opts o;
    memset(&o, 0, sizeof o);
    o.prefetch_depth = -1;
    zoff_plan_options_default(&o.shape);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    /* DeepSpeed's "auto" values (Hugging Face configs): a plan depends on no hyperparameter or
     * lr schedule, so each "auto" takes zoff's default, logged by the config parser; the one
     * "auto" with no default, scheduler.params.total_num_steps, takes PLAN_AUTO_TOTAL_STEPS
     * (logged as the plan's value), so that a config `zoff train` accepts is planned too. */
    zoff_trainer_values tv;
    zoff_trainer_values_default(&tv);
    tv.total_num_steps = PLAN_AUTO_TOTAL_STEPS;
    zoff_config cfg;
    zoff_status st =
        o.config ? zoff_config_from_json_with(&cfg, o.config, &tv) : zoff_config_default(&cfg);
    if (st < 0) {
        fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
        return 2;
    }
    if ((rc = apply_opts(&o, &cfg))) return rc;
    if (o.params == 0) return largest_models(&cfg, o.gpu_mem_bytes, o.json);
    zoff_plan_options popt = o.shape;
    popt.gpu_mem_bytes = o.gpu_mem_bytes;
    zoff_plan_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    st = zoff_plan_with(&cfg, o.params, &popt, &r);
    if (st == ZOFF_ENOFIT) { /* beyond what any machine holds */
        if (o.json) {
            printf("{\"params\": %llu, \"fits\": false, \"advice\": ",
                   (unsigned long long)o.params);
            json_string(zoff_last_error(NULL));
            printf("}\n");
        } else {
            printf("does not fit: %s\n", zoff_last_error(NULL));
        }
        return 1;
    }
    if (st < 0) {
        fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
        return 2;
    }
    char advice[sizeof r.advice + 256];
    advice_flags(r.advice, advice, sizeof advice);
    const char *dtype = cfg.fp16_enabled ? "fp16" : cfg.bf16_enabled ? "bf16" : "fp32";
    if (o.json) {
        printf("{\"params\": %llu, \"dtype\": \"%s\", \"tier\": \"%s\", \"gpu_bytes\": %llu, "
               "\"gpu_available\": %llu, \"gpu_assumed\": %s, "
               "\"pinned_bytes\": %llu, \"pageable_bytes\": %llu, \"host_available\": %llu, "
               "\"nvme_bytes\": %llu, \"nvme_available\": %llu, \"no_offload_bytes\": %llu, "
               "\"bucket_bytes\": %llu, \"gpu_bytes_per_param\": %.4f, "
               "\"host_bytes_per_param\": %.4f, \"fits\": %s, \"advice\": ",
               (unsigned long long)o.params, dtype, cfg.tier == ZOFF_TIER_CPU ? "cpu" : "nvme",
               (unsigned long long)r.gpu_bytes, (unsigned long long)r.gpu_available,
               o.gpu_mem_bytes ? "true" : "false", (unsigned long long)r.pinned_bytes,
               (unsigned long long)r.pageable_bytes, (unsigned long long)r.host_available,
               (unsigned long long)r.nvme_bytes, (unsigned long long)r.nvme_available,
               (unsigned long long)r.no_offload_bytes, (unsigned long long)r.bucket_bytes,
               r.gpu_bytes_per_param, r.host_bytes_per_param, r.fits ? "true" : "false");
        json_string(advice);
        if (r.streamed)
            printf(", \"stream\": true, \"layers\": %d, \"slot_bytes\": %llu, \"nslots\": %d, "
                   "\"activation_bytes\": %llu, \"h2d_bytes_per_step\": %llu, "
                   "\"d2h_bytes_per_step\": %llu, \"pcie_bytes_per_step\": %llu, "
                   "\"min_tokens_per_microbatch\": %llu, \"tokens_per_microbatch\": %llu, "
                   "\"gpu_tflops\": %g, \"pcie_gbps\": %g",
                   r.layers, (unsigned long long)r.slot_bytes, r.nslots,
                   (unsigned long long)r.activation_bytes, (unsigned long long)r.h2d_bytes_per_step,
                   (unsigned long long)r.d2h_bytes_per_step,
                   (unsigned long long)(r.h2d_bytes_per_step + r.d2h_bytes_per_step),
                   (unsigned long long)r.min_tokens_per_microbatch,
                   (unsigned long long)popt.batch * (unsigned long long)popt.seq_len,
                   popt.gpu_tflops, popt.pcie_gbps);
        else
            printf(", \"stream\": false");
        printf("}\n");
        return r.fits ? 0 : 1;
    }
    char a[32], b[32];
    static const char *const fmts[3] = {"fp32", "bf16", "q8"};
    static const char *const opts[3] = {"adam", "lion", "adagrad"};
    printf("zoff plan: %llu parameters (%s), %s state with %s moments on %s%s\n",
           (unsigned long long)o.params, dtype, opts[cfg.optimizer_type % 3],
           fmts[cfg.state_format % 3], cfg.tier == ZOFF_TIER_CPU ? "cpu" : "nvme",
           cfg.tier == ZOFF_TIER_NVME && cfg.ratio > 0 ? " (part resident: ratio)" : "");
    printf("  %-16s %14s %14s\n", "tier", "needed", "available");
    printf("  %-16s %14s %14s%s\n", "gpu", zoff_format_bytes(r.gpu_bytes, a, sizeof a),
           r.gpu_available ? zoff_format_bytes(r.gpu_available, b, sizeof b) : "?",
           o.gpu_mem_bytes ? "  (--gpu-mem)" : "");
    printf("  %-16s %14s %14s\n", cfg.pin_memory ? "pinned host" : "pageable host",
           zoff_format_bytes(r.pinned_bytes + r.pageable_bytes, a, sizeof a),
           zoff_format_bytes(r.host_available, b, sizeof b));
    printf("  %-16s %14s %14s\n", "nvme", zoff_format_bytes(r.nvme_bytes, a, sizeof a),
           r.nvme_bytes ? zoff_format_bytes(r.nvme_available, b, sizeof b) : "-");
    printf("  per parameter: %.3f bytes on the GPU (16-bit params + %s of gradient buckets), "
           "%.3f in host memory\n",
           r.gpu_bytes_per_param, zoff_format_bytes(r.bucket_bytes, b, sizeof b),
           r.host_bytes_per_param);
    printf("  without offload the GPU would need %s (16 B/param)\n",
           zoff_format_bytes(r.no_offload_bytes, a, sizeof a));
    if (r.streamed) {
        uint64_t tokens = (uint64_t)popt.batch * (uint64_t)popt.seq_len;
        printf("  streamed weights: %d units, %d slots of %s on the GPU; activations ~%s for %llu "
               "tokens per micro-batch\n",
               r.layers, r.nslots, zoff_format_bytes(r.slot_bytes, a, sizeof a),
               zoff_format_bytes(r.activation_bytes, b, sizeof b), (unsigned long long)tokens);
        printf("  PCIe per step: %s up (weights in forward and backward), %s down (gradients)\n",
               zoff_format_bytes(r.h2d_bytes_per_step, a, sizeof a),
               zoff_format_bytes(r.d2h_bytes_per_step, b, sizeof b));
        printf("  compute hides the uploads from ~%llu tokens per micro-batch (%g TFLOP/s, %g GB/s:"
               " 4 B/param up vs 6 FLOP/param/token)%s\n",
               (unsigned long long)r.min_tokens_per_microbatch, popt.gpu_tflops, popt.pcie_gbps,
               tokens < r.min_tokens_per_microbatch ? "; this micro-batch is transfer-bound" : "");
    }
    if (r.fits)
        printf("fits\n");
    else
        printf("does not fit: %s\n", advice);
    return r.fits ? 0 : 1;
}
