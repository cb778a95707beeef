/*
 * cmd_ckpt.c — `zoff ckpt show DIR` (step, loss scaler, groups, trainer extra, and every tensor
 * with its shape, offset and crc32c) and `zoff ckpt verify DIR` (streams the whole data file and
 * checks each tensor's crc32c; exit 1 naming the bad tensor). Reads checkpoints through the
 * public zoff_ckpt_* calls of include/zoff.h, as any trainer can.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include <zoff.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: zoff ckpt show DIR     step, scaler, groups and tensors of a checkpoint\n"
                 "       zoff ckpt verify DIR   check every tensor's crc32c (exit 1 if any is "
                 "bad)\n");
}

static int open_or_report(const char *dir, zoff_ckpt **c, zoff_ckpt_info *info)
{
    zoff_status st = zoff_ckpt_open(dir, c);
    if (st == 0) {
        st = zoff_ckpt_get_info(*c, info);
        if (st < 0) zoff_ckpt_close(*c);
    }
    if (st < 0) {
        fprintf(stderr, "zoff ckpt: %s (%s)\n", zoff_last_error(NULL), zoff_status_name(st));
        return 1;
    }
    return 0;
}

static int show(const char *dir)
{
    zoff_ckpt *c = NULL;
    zoff_ckpt_info info = ZOFF_CKPT_INFO_INIT;
    if (open_or_report(dir, &c, &info)) return 1;
    char b[32];
    printf("checkpoint   %s%s\n", info.path,
           info.recovered ? "  (recovered: the directory itself is missing)" : "");
    printf("format       %d, written by zoff %s at %s\n", info.format_version, info.zoff_version,
           info.created);
    printf("step         %lld\n", (long long)info.step);
    printf("loss scale   %g (clean steps %lld, hysteresis left %d)\n", (double)info.loss_scale,
           (long long)info.scaler_good_steps, info.scaler_hysteresis);
    printf("groups       %d\n", info.ngroups);
    for (int i = 0; i < info.ngroups; i++) {
        zoff_group_config g;
        if (zoff_ckpt_group(c, i, &g) != 0) continue;
        printf("  group %-4d lr %g  betas (%g, %g)  eps %g  weight_decay %g  %s  bias_correction "
               "%s\n",
               i, (double)g.lr, (double)g.beta1, (double)g.beta2, (double)g.eps,
               (double)g.weight_decay, zoff_optimizer_name(&g), g.bias_correction ? "on" : "off");
    }
    printf("extra        %s\n", info.extra_json[0] ? info.extra_json : "(none)");
    if (info.nfiles > 1) {
        printf("tensors      %zu, %llu elements, %s in %d rank files (one per rank that saved)\n",
               info.ntensors, (unsigned long long)info.total_numel,
               zoff_format_bytes(info.data_bytes, b, sizeof b), info.nfiles);
        printf("  %-48s %22s %32s %12s %10s\n", "name", "slice", "file", "file offset", "crc32c");
    } else {
        printf("tensors      %zu, %llu elements, %s in %s\n", info.ntensors,
               (unsigned long long)info.total_numel,
               zoff_format_bytes(info.data_bytes, b, sizeof b), "optimizer.safetensors");
        printf("  %-48s %14s %14s %10s\n", "name", "shape", "file offset", "crc32c");
    }
    for (size_t i = 0; i < info.ntensors; i++) {
        zoff_ckpt_tensor_info t = ZOFF_CKPT_TENSOR_INFO_INIT;
        if (zoff_ckpt_tensor_info_at(c, i, &t) != 0) continue;
        char shape[32];
        snprintf(shape, sizeof shape, "[%llu]", (unsigned long long)t.numel);
        if (info.nfiles <= 1) {
            printf("  %-48s %14s %14llu 0x%08x\n", t.name, shape, (unsigned long long)t.file_offset,
                   t.crc32c);
            continue;
        }
        printf("  %-48s %22s\n", t.name, shape);
        for (size_t k = 0; k < t.nslices; k++) {
            zoff_ckpt_slice_info s = ZOFF_CKPT_SLICE_INFO_INIT;
            if (zoff_ckpt_slice_info_at(c, i, k, &s) != 0) continue;
            char range[48];
            snprintf(range, sizeof range, "[%llu:%llu]", (unsigned long long)s.begin,
                     (unsigned long long)(s.begin + s.numel));
            printf("  %-48s %22s %32s %12llu 0x%08x\n", "", range, s.file,
                   (unsigned long long)s.file_offset, s.crc32c);
        }
    }
    zoff_ckpt_close(c);
    return 0;
}

static int verify(const char *dir)
{
    zoff_ckpt *c = NULL;
    zoff_ckpt_info info = ZOFF_CKPT_INFO_INIT;
    if (open_or_report(dir, &c, &info)) return 1;
    uint64_t t0 = now_ns();
    zoff_status st = zoff_ckpt_verify(c);
    double s = (double)(now_ns() - t0) / 1e9;
    int rc = 0;
    if (st < 0) {
        fprintf(stderr, "zoff ckpt: FAILED: %s (%s)\n", zoff_last_error(NULL),
                zoff_status_name(st));
        rc = 1;
    } else {
        char b[32];
        printf("OK: %zu tensors, %s verified in %.2f s (%.2f GB/s)\n", info.ntensors,
               zoff_format_bytes(info.data_bytes, b, sizeof b), s,
               s > 0 ? (double)info.data_bytes / s / 1e9 : 0.0);
    }
    zoff_ckpt_close(c);
    return rc;
}

int zoff_cmd_ckpt(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "show")) return show(argv[2]);
    if (!strcmp(argv[1], "verify")) return verify(argv[2]);
    fprintf(stderr, "zoff ckpt: unknown action '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
