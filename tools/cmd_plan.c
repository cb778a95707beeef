/*
 * cmd_plan.c — `zoff plan --params N [--config cfg.json] [--tier cpu|nvme] [--nvme-path DIR]
 * [--ratio R] [--json]`: bytes per memory tier for a model of N parameters under a config, next to
 * what this machine has (device memory, MemAvailable, free space under the nvme paths), and
 * whether it fits; when it does not, the advice names the knob to change. Exit code 0 when it
 * fits, 1 when it does not (or on error), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "common/common.h"

static void plan_usage(FILE *f)
{
    fprintf(f,
            "usage: zoff plan --params N [--config cfg.json] [--tier cpu|nvme] "
            "[--nvme-path DIR] [--ratio R] [--json]\n"
            "                 [--gpu-mem SIZE] [--stream [--layers L] [--batch B] [--seq S]\n"
            "                  [--prefetch-depth D] [--gpu-tflops T (400)] [--pcie-gbps G (25)]]\n"
            "  N accepts k/M/G suffixes (powers of 1024), e.g. --params 7G\n"
            "  --gpu-mem plans for a GPU of that many bytes instead of asking the device\n"
            "  --stream plans with the 16-bit weights streamed layer by layer from host memory\n");
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

int zoff_cmd_plan(int argc, char **argv)
{
    uint64_t params = 0;
    const char *config = NULL, *tier = NULL, *nvme_path = NULL, *ratio = NULL;
    int json = 0, stream = 0, depth = -1;
    uint64_t gpu_mem = 0;
    zoff_plan_shape shape;
    zoff_plan_shape_default(&shape);
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
        } else if (!strcmp(argv[i], "--stream")) {
            stream = 1;
        } else if ((v = arg_value(&i, argc, argv, "--gpu-mem"))) {
            if (zoff__parse_size(v, &gpu_mem) < 0 || gpu_mem == 0) {
                fprintf(stderr, "zoff plan: bad --gpu-mem '%s'\n", v);
                return 2;
            }
        } else if ((v = arg_value(&i, argc, argv, "--layers"))) {
            shape.layers = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--batch"))) {
            shape.batch = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--seq"))) {
            shape.seq_len = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--prefetch-depth"))) {
            depth = atoi(v);
        } else if ((v = arg_value(&i, argc, argv, "--gpu-tflops"))) {
            shape.gpu_tflops = atof(v);
        } else if ((v = arg_value(&i, argc, argv, "--pcie-gbps"))) {
            shape.pcie_gbps = atof(v);
        } else {
            fprintf(stderr, "zoff plan: unknown argument '%s'\n", argv[i]);
            plan_usage(stderr);
            return 2;
        }
    }
    if (params == 0) {
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
    if (stream) cfg.stream_params = 1;
    if (depth >= 0) cfg.prefetch_depth = depth;
    if (gpu_mem) { /* a GPU of that size: the sim device stands in for it */
        cfg.device = ZOFF_DEVICE_SIM;
        cfg.sim_gpu_bytes = (size_t)gpu_mem;
    }
    zoff_plan_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    st = zoff_plan_with_shape(&cfg, (size_t)params, &shape, &r);
    if (st < 0) {
        fprintf(stderr, "zoff plan: %s\n", zoff_last_error(NULL));
        return 1;
    }
    if (json) {
        printf("{\"params\": %llu, \"tier\": \"%s\", \"gpu_bytes\": %llu, \"gpu_available\": %llu, "
               "\"pinned_bytes\": %llu, \"pageable_bytes\": %llu, \"host_available\": %llu, "
               "\"nvme_bytes\": %llu, \"nvme_available\": %llu, \"no_offload_bytes\": %llu, "
               "\"fits\": %s, \"advice\": ",
               (unsigned long long)params, cfg.tier == ZOFF_TIER_CPU ? "cpu" : "nvme",
               (unsigned long long)r.gpu_bytes, (unsigned long long)r.gpu_available,
               (unsigned long long)r.pinned_bytes, (unsigned long long)r.pageable_bytes,
               (unsigned long long)r.host_available, (unsigned long long)r.nvme_bytes,
               (unsigned long long)r.nvme_available, (unsigned long long)r.no_offload_bytes,
               r.fits ? "true" : "false");
        json_string(r.advice);
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
                   (unsigned long long)shape.batch * (unsigned long long)shape.seq_len,
                   shape.gpu_tflops, shape.pcie_gbps);
        else
            printf(", \"stream\": false");
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
    printf("  without offload the GPU would need %s (16 B/param)\n",
           zoff__fmt_bytes(r.no_offload_bytes, a, sizeof a));
    if (r.streamed) {
        uint64_t tokens = (uint64_t)shape.batch * (uint64_t)shape.seq_len;
        printf("  streamed weights: %d units, %d slots of %s on the GPU; activations ~%s for %llu "
               "tokens per micro-batch\n",
               r.layers, r.nslots, zoff__fmt_bytes(r.slot_bytes, a, sizeof a),
               zoff__fmt_bytes(r.activation_bytes, b, sizeof b), (unsigned long long)tokens);
        printf("  PCIe per step: %s up (weights in forward and backward), %s down (gradients)\n",
               zoff__fmt_bytes(r.h2d_bytes_per_step, a, sizeof a),
               zoff__fmt_bytes(r.d2h_bytes_per_step, b, sizeof b));
        printf("  compute hides the uploads from ~%llu tokens per micro-batch (%g TFLOP/s, %g GB/s:"
               " 4 B/param up vs 6 FLOP/param/token)%s\n",
               (unsigned long long)r.min_tokens_per_microbatch, shape.gpu_tflops, shape.pcie_gbps,
               tokens < r.min_tokens_per_microbatch ? "; this micro-batch is transfer-bound" : "");
    }
    if (r.fits)
        printf("fits\n");
    else
        printf("does not fit: %s\n", r.advice);
    return r.fits ? 0 : 1;
}
