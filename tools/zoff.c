/*
 * zoff.c — entry point of the `zoff` command line: dispatches to the subcommands (train, bench,
 * plan, info, ckpt) and implements the small ones (version, env).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include <zoff.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Subcommands are linked in as they exist: a weak reference is NULL when a part of zoff was not
 * built (e.g. the benchmarks with ZOFF_BUILD_BENCH=OFF). */
#pragma weak zoff_cmd_info
#pragma weak zoff_cmd_plan
#pragma weak zoff_cmd_ckpt
#pragma weak zoff_cmd_train
#pragma weak zoff_bench_adam_main
#pragma weak zoff_bench_nvme_main
#pragma weak zoff_bench_step_main

typedef int (*cmd_fn)(int, char **);

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("zoff %s\n", zoff_version());
    return 0;
}

static int cmd_env(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("%-22s %-10s %s\n", "variable", "default", "meaning");
    zoff_env_param p = ZOFF_ENV_PARAM_INIT;
    for (size_t i = 0; zoff_env_next(&i, &p) == 1;) {
        printf("%-22s %-10s %s%s%s%s\n", p.name, p.def[0] ? p.def : "\"\"", p.doc,
               p.is_set ? "  [set: " : "", p.is_set ? p.value : "", p.is_set ? "]" : "");
    }
    return 0;
}

static const struct {
    const char *name;
    const char *sub; /* second word (bench kinds) or NULL */
    cmd_fn fn;
    const char *help;
} commands[] = {
    {"train", NULL, zoff_cmd_train, "train the example GPT model with offload (the demo)"},
    {"bench", "adam", zoff_bench_adam_main, "fused CPU Adam vs this machine's memory roofline"},
    {"bench", "nvme", zoff_bench_nvme_main, "swap engine block size x queue depth sweep vs fio"},
    {"bench", "step", zoff_bench_step_main, "whole offloaded steps on the sim device: overlap"},
    {"plan", NULL, zoff_cmd_plan, "bytes per memory tier for a model size and config"},
    {"info", NULL, zoff_cmd_info, "CPU, NUMA, GPUs, disks, limits: facts for tuning"},
    {"ckpt", NULL, zoff_cmd_ckpt, "inspect or verify a checkpoint directory"},
    {"env", NULL, cmd_env, "list the ZOFF_* environment variables"},
    {"version", NULL, cmd_version, "print the version"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: zoff <command> [options]   (zoff <command> --help for its options)\n\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%s%s", commands[i].name, commands[i].sub ? " " : "",
                 commands[i].sub ? commands[i].sub : "");
        fprintf(out, "  %-12s %s%s\n", name, commands[i].help,
                commands[i].fn ? "" : " (not built)");
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) return cmd_version(argc, argv);
    if (!strcmp(argv[1], "bench") &&
        (argc < 3 || !strcmp(argv[2], "-h") || !strcmp(argv[2], "--help") ||
         !strcmp(argv[2], "help") || argv[2][0] == '-')) {
        int help = argc >= 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help") ||
                                 !strcmp(argv[2], "help"));
        FILE *out = help ? stdout : stderr;
        fprintf(out, "usage: zoff bench adam|nvme|step [options]   (zoff bench KIND --help for "
                     "its options)\n\n");
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
            if (commands[i].sub)
                fprintf(out, "  %-5s %s%s\n", commands[i].sub, commands[i].help,
                        commands[i].fn ? "" : " (not built)");
        return help ? 0 : 2;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        int shift = 1;
        if (commands[i].sub) {
            if (argc < 3 || strcmp(argv[2], commands[i].sub) != 0) continue;
            shift = 2;
        }
        if (!commands[i].fn) {
            fprintf(stderr, "zoff: '%s' is not part of this build\n", argv[1]);
            return 2;
        }
        return commands[i].fn(argc - shift, argv + shift);
    }
    if (!strcmp(argv[1], "bench")) {
        fprintf(stderr, "zoff: unknown benchmark '%s': zoff bench adam|nvme|step\n", argv[2]);
        return 2;
    }
    fprintf(stderr, "zoff: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
