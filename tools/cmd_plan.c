/*
 * cmd_plan.c — `zoff plan --params N [--config cfg.json] [--tier cpu|nvme] [--nvme-path DIR]
 * [--ratio R] [--json] [--gpu-mem SIZE]`: bytes per memory tier for a model of N parameters under
 * a config, next to what this machine has (device memory, MemAvailable, free space under the nvme
 * paths), and whether it fits; when it does not, the advice names the knob to change. With
 * --gpu-mem (and no --params) it answers the largest model that fits a GPU of that size, for each
 * tier (zoff_plan_max_params). Exit code 0 when it fits, 1 when it does not (or on error), 2 on a
 * usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "common/common.h"

static void plan_usage(FILE *f)
{
    fprintf(f, "usage: zoff plan --params N [--config cfg.json] [--tier cpu|nvme] "
               "[--nvme-path DIR] [--ratio R] [--json]\n"
               "       zoff plan --gpu-mem SIZE [--config cfg.json] [--nvme-path DIR] [--json]\n"
               "  N and SIZE accept k/M/G suffixes (powers of 1024), e.g. --params 7G\n"
               "  --gpu-mem: the largest model whose plan fits a GPU of SIZE bytes, per tier\n");
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

/* --gpu-mem: the largest model per tier (cpu; nvme under the config's paths, else /var/tmp). */
static int largest_models(const zoff_config *cfg_in, uint64_t gpu_mem, int json)
{
    const zoff_tier tiers[2] = {ZOFF_TIER_CPU, ZOFF_TIER_NVME};
    uint64_t maxp[2] = {0, 0};
    zoff_plan_report at[2];
    size_t es = (cfg_in->fp16_enabled || cfg_in->bf16_enabled) ? 2 : 4;
    for (int t = 0; t < 2; t++) {
        zoff_config c = *cfg_in;
        c.tier = tiers[t];
        if (c.tier == ZOFF_TIER_NVME && !c.nvme_path[0])
            snprintf(c.nvme_path, sizeof c.nvme_path, "/var/tmp");
        memset(&at[t], 0, sizeof at[t]);
        at[t].struct_size = sizeof at[t];
        if (zoff_plan_max_params(&c, gpu_mem, &maxp[t], &at[t]) < 0) {
            fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
            return 1;
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
        for (int t = 0; t < 2; t++)
            printf("%s{\"tier\": \"%s\", \"max_params\": %llu, \"gpu_bytes\": %llu, "
                   "\"host_bytes\": %llu, \"nvme_bytes\": %llu}",
                   t ? ", " : "", t ? "nvme" : "cpu", (unsigned long long)maxp[t],
                   (unsigned long long)at[t].gpu_bytes,
                   (unsigned long long)(at[t].pinned_bytes + at[t].pageable_bytes),
                   (unsigned long long)at[t].nvme_bytes);
        printf("]}\n");
        return 0;
    }
    char a[32], b[32], c[32], d[32];
    printf("zoff plan: the largest model for a GPU of %s (%zu-byte params, %d gradient buckets of "
           "%zu elements)\n",
           zoff__fmt_bytes(gpu_mem, a, sizeof a), es, cfg_in->grad_bucket_count,
           cfg_in->grad_bucket_numel);
    printf("  GPU alone: %.3f G params with buckets, %.3f G with full gradient buffers, %.3f G "
           "without offload\n",
           (double)gpu_only / 1e9, (double)(gpu_mem / (2 * es)) / 1e9,
           (double)(gpu_mem / 16) / 1e9);
    printf("  %-6s %14s %12s %12s %12s  bound by\n", "tier", "max params", "gpu", "host", "nvme");
    for (int t = 0; t < 2; t++) {
        const zoff_plan_report *r = &at[t];
        const char *bound = maxp[t] + 1 >= gpu_only ? "the GPU"
                            : t == 0                ? "host memory"
                                                    : "host memory or disk";
        printf("  %-6s %12.3f G %12s %12s %12s  %s\n", t ? "nvme" : "cpu", (double)maxp[t] / 1e9,
               zoff__fmt_bytes(r->gpu_bytes, a, sizeof a),
               zoff__fmt_bytes(r->pinned_bytes + r->pageable_bytes, b, sizeof b),
               zoff__fmt_bytes(r->nvme_bytes, c, sizeof c), bound);
    }
    (void)d;
    return 0;
}

int zoff_cmd_plan(int argc, char **argv)
{
    uint64_t params = 0;
    const char *config = NULL, *tier = NULL, *nvme_path = NULL, *ratio = NULL;
    int json = 0;
    uint64_t gpu_mem = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            plan_usage(stdout);
            return 0;
        } else if ((v = arg_value(&i, argc, argv, "--params"))) {
            if (zoff__parse_size(v, &params) < 0 || params == 0) {
                fprintf(stderr, "zoff plan: bad --params '%s'\n", v);
                return 2;
            }
        } else if ((v = arg_value(&i, argc, argv, "--config"))) {
            config = v;
        } else if ((v = arg_value(&i, argc, argv, "--tier"))) {
            tier = v;
        } else if ((v = arg_value(&i, argc, argv, "--nvme-path"))) {
            nvme_path = v;
        } else if ((v = arg_value(&i, argc, argv, "--ratio"))) {
            ratio = v;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if ((v = arg_value(&i, argc, argv, "--gpu-mem"))) {
            if (zoff__parse_size(v, &gpu_mem) < 0 || gpu_mem == 0) {
                fprintf(stderr, "zoff plan: bad --gpu-mem '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "zoff plan: unknown argument '%s'\n", argv[i]);
            plan_usage(stderr);
            return 2;
        }
    }
    if (params == 0 && gpu_mem == 0) {
        plan_usage(stderr);
        return 2;
    }
    zoff_config cfg;
    zoff_status st = config ? zoff_config_from_json(&cfg, config) : zoff_config_default(&cfg);
    if (st < 0) {
        fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
        return 1;
    }
    if (tier) {
        if (!strcasecmp(tier, "cpu"))
            cfg.tier = ZOFF_TIER_CPU;
        else if (!strcasecmp(tier, "nvme"))
            cfg.tier = ZOFF_TIER_NVME;
        else {
            fprintf(stderr, "zoff plan: --tier must be cpu or nvme\n");
            return 2;
        }
    }
    if (nvme_path) snprintf(cfg.nvme_path, sizeof cfg.nvme_path, "%s", nvme_path);
    if (ratio) cfg.ratio = (float)atof(ratio);
    if (params == 0) return largest_models(&cfg, gpu_mem, json);
    zoff_plan_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    st = zoff_plan(&cfg, (size_t)params, &r);
    if (st < 0) {
        fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
        return 1;
    }
    if (json) {
        printf("{\"params\": %llu, \"tier\": \"%s\", \"gpu_bytes\": %llu, \"gpu_available\": %llu, "
               "\"pinned_bytes\": %llu, \"pageable_bytes\": %llu, \"host_available\": %llu, "
               "\"nvme_bytes\": %llu, \"nvme_available\": %llu, \"no_offload_bytes\": %llu, "
               "\"bucket_bytes\": %llu, \"gpu_bytes_per_param\": %.4f, "
               "\"host_bytes_per_param\": %.4f, \"fits\": %s, \"advice\": ",
               (unsigned long long)params, cfg.tier == ZOFF_TIER_CPU ? "cpu" : "nvme",
               (unsigned long long)r.gpu_bytes, (unsigned long long)r.gpu_available,
               (unsigned long long)r.pinned_bytes, (unsigned long long)r.pageable_bytes,
               (unsigned long long)r.host_available, (unsigned long long)r.nvme_bytes,
               (unsigned long long)r.nvme_available, (unsigned long long)r.no_offload_bytes,
               (unsigned long long)r.bucket_bytes, r.gpu_bytes_per_param, r.host_bytes_per_param,
               r.fits ? "true" : "false");
        json_string(r.advice);
        printf("}\n");
        return r.fits ? 0 : 1;
    }
    char a[32], b[32];
    printf("zoff plan: %llu parameters, optimizer state on %s%s\n", (unsigned long long)params,
           cfg.tier == ZOFF_TIER_CPU ? "cpu" : "nvme",
           cfg.tier == ZOFF_TIER_NVME && cfg.ratio > 0 ? " (part resident: ratio)" : "");
    printf("  %-16s %14s %14s\n", "tier", "needed", "available");
    printf("  %-16s %14s %14s\n", "gpu", zoff__fmt_bytes(r.gpu_bytes, a, sizeof a),
           r.gpu_available ? zoff__fmt_bytes(r.gpu_available, b, sizeof b) : "?");
    printf("  %-16s %14s %14s\n", cfg.pin_memory ? "pinned host" : "pageable host",
           zoff__fmt_bytes(r.pinned_bytes + r.pageable_bytes, a, sizeof a),
           zoff__fmt_bytes(r.host_available, b, sizeof b));
    printf("  %-16s %14s %14s\n", "nvme", zoff__fmt_bytes(r.nvme_bytes, a, sizeof a),
           r.nvme_bytes ? zoff__fmt_bytes(r.nvme_available, b, sizeof b) : "-");
    printf("  per parameter: %.3f bytes on the GPU (16-bit params + %s of gradient buckets), "
           "%.3f in host memory\n",
           r.gpu_bytes_per_param, zoff__fmt_bytes(r.bucket_bytes, b, sizeof b),
           r.host_bytes_per_param);
    printf("  without offload the GPU would need %s (16 B/param)\n",
           zoff__fmt_bytes(r.no_offload_bytes, a, sizeof a));
    if (r.fits)
        printf("fits\n");
    else
        printf("does not fit: %s\n", r.advice);
    return r.fits ? 0 : 1;
}
