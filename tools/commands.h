/*
 * commands.h — the subcommands of the `zoff` tool. Each is `int fn(int argc, char **argv)` with
 * argv[0] the subcommand name; it returns the process exit code (0 ok, 1 failure, 2 usage).
 */
#ifndef ZOFF_TOOLS_COMMANDS_H
#define ZOFF_TOOLS_COMMANDS_H

int zoff_cmd_info(int argc, char **argv);        /* tools/cmd_info.c */
int zoff_cmd_plan(int argc, char **argv);        /* tools/cmd_plan.c */
int zoff_cmd_ckpt(int argc, char **argv);        /* tools/cmd_ckpt.c */
int zoff_cmd_train(int argc, char **argv);       /* tools/cmd_train.c */
int zoff_bench_adam_main(int argc, char **argv); /* bench/bench_adam.c */
int zoff_bench_nvme_main(int argc, char **argv); /* bench/bench_nvme.c */
int zoff_bench_step_main(int argc, char **argv); /* bench/bench_step.c */

#endif /* ZOFF_TOOLS_COMMANDS_H */
