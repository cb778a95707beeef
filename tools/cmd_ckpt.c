/*
 * cmd_ckpt.c — `zoff ckpt show DIR` (step, loss scaler, groups, trainer extra, and every tensor
 * with its shape, offset and crc32c) and `zoff ckpt verify DIR` (streams the whole data file and
 * checks each tensor's crc32c; exit 1 naming the bad tensor). Reads checkpoints through
 * runtime/ckpt.h: there is no public call that opens a checkpoint without a runtime, and the
 * tool links the library's internal modules anyway.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common/common.h"
#include "runtime/ckpt.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: zoff ckpt show DIR     step, scaler, groups and tensors of a checkpoint\n"
                 "       zoff ckpt verify DIR   check every tensor's crc32c (exit 1 if any is "
                 "bad)\n");
}

static int open_or_report(const char *dir, zckpt_reader **r)
{
    zoff_status st = zckpt_reader_open(dir, r);
    if (st < 0) {
        fprintf(stderr, "zoff ckpt: %s (%s)\n", zoff__last_error_tls(), zoff_status_name(st));
        return 1;
    }
    return 0;
}

static int show(const char *dir)
{
    zckpt_reader *r = NULL;
    if (open_or_report(dir, &r)) return 1;
    zckpt_info info;
    zckpt_meta meta;
    zckpt_reader_info(r, &info);
    zckpt_reader_meta(r, &meta);
    char b[32];
    size_t n = zckpt_reader_count(r);
    printf("checkpoint   %s%s\n", info.path,
           info.recovered ? "  (recovered: the directory itself is missing)" : "");
    printf("format       %d, written by zoff %s at %s\n", info.format_version, info.zoff_version,
           info.created);
    printf("step         %lld\n", (long long)meta.step);
    printf("loss scale   %g (clean steps %lld, hysteresis left %d)\n", (double)meta.loss_scale,
           (long long)meta.scaler_good_steps, meta.scaler_hysteresis);
    printf("groups       %d\n", meta.ngroups);
    for (int i = 0; i < meta.ngroups; i++) {
        const zoff_group_config *g = &meta.groups[i];
        printf("  group %-4d lr %g  betas (%g, %g)  eps %g  weight_decay %g  %s  bias_correction "
               "%s\n",
               i, (double)g->lr, (double)g->beta1, (double)g->beta2, (double)g->eps,
               (double)g->weight_decay, zoff_optimizer_name(g), g->bias_correction ? "on" : "off");
    }
    printf("extra        %s\n", meta.extra_json[0] ? meta.extra_json : "(none)");
    printf("tensors      %zu, %llu elements, %s in %s\n", n, (unsigned long long)info.total_numel,
           zoff__fmt_bytes(info.data_bytes, b, sizeof b), ZCKPT_DATA_FILE);
    printf("  %-48s %14s %14s %10s\n", "name", "shape", "file offset", "crc32c");
    for (size_t i = 0; i < n; i++) {
        const zckpt_tensor *t = zckpt_reader_tensor(r, i);
        uint64_t off = 0;
        uint32_t crc = 0;
        zckpt_reader_tensor_info(r, i, &off, &crc);
        char shape[32];
        snprintf(shape, sizeof shape, "[%llu]", (unsigned long long)t->numel);
        printf("  %-48s %14s %14llu 0x%08x\n", t->name, shape, (unsigned long long)off, crc);
    }
    zckpt_reader_close(r);
    return 0;
}

static int verify(const char *dir)
{
    zckpt_reader *r = NULL;
    if (open_or_report(dir, &r)) return 1;
    zckpt_info info;
    zckpt_reader_info(r, &info);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = zckpt_reader_verify(r);
    double s = (double)(zoff__now_ns() - t0) / 1e9;
    int rc = 0;
    if (st < 0) {
        fprintf(stderr, "zoff ckpt: FAILED: %s (%s)\n", zoff__last_error_tls(),
                zoff_status_name(st));
        rc = 1;
    } else {
        char b[32];
        printf("OK: %zu tensors, %s verified in %.2f s (%.2f GB/s)\n", zckpt_reader_count(r),
               zoff__fmt_bytes(info.data_bytes, b, sizeof b), s,
               s > 0 ? (double)info.data_bytes / s / 1e9 : 0.0);
    }
    zckpt_reader_close(r);
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
