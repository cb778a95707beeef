/*
 * test_stream_train.c — `zoff train --stream`: the example GPT trained with its blocks' 16-bit
 * weights streamed (one zoff unit per backward stage, tied embeddings resident) gives the same
 * run, bit for bit, as the same model with every weight resident on a large sim device: the
 * per-step losses and gradient norms in the --json metrics are compared as text. A third run
 * without --stream on a small device streams automatically (params + gradients do not fit) and
 * says so; with --no-stream the same run is refused by the planner. argv[1] = the zoff binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zt.h"

static const char *g_zoff;
static char *g_tmp;

#define MODEL                                                                                      \
    "--layers", "6", "--width", "64", "--heads", "4", "--seq-len", "32", "--batch", "4",           \
        "--steps", "8", "--offload", "cpu", "--samples", "0", "--no-progress", "--eval-interval",  \
        "0", "--ckpt-interval", "0"

/* Streamed device: less than the 16-bit params + gradients (2 x 0.31 M params x 2 B), enough
 * for the trainer's gradients, the resident embeddings and 3 block slots. */
#define SMALL_GPU "1100K"

/* Runs zoff in g_tmp with args; returns the exit status, *out the combined output. */
static int run_zoff(const char *const *args, char **out)
{
    static int counter;
    char outpath[512];
    snprintf(outpath, sizeof outpath, "%s/out-%d.txt", g_tmp, counter++);
    int status = zt_run_to_file(g_zoff, args, g_tmp, outpath);
    *out = zt_slurp(outpath);
    return status;
}

/* The "loss": and "grad_norm": values of a metrics file, concatenated as text. */
static char *trajectory(const char *path)
{
    char *j = zt_slurp(path);
    size_t cap = strlen(j) + 1, used = 0;
    char *t = zt_malloc(cap);
    t[0] = '\0';
    const char *keys[] = {"\"loss\": ", "\"grad_norm\": "};
    for (const char *p = j; *p; p++)
        for (int k = 0; k < 2; k++)
            if (!strncmp(p, keys[k], strlen(keys[k]))) {
                const char *v = p + strlen(keys[k]);
                size_t n = strcspn(v, ",}");
                if (used + n + 2 < cap) {
                    memcpy(t + used, v, n);
                    used += n;
                    t[used++] = ' ';
                    t[used] = '\0';
                }
            }
    free(j);
    return t;
}

static void test_stream_train(void **state)
{
    (void)state;
    char *out = NULL;
    int rc = run_zoff((const char *[]){"train", MODEL, "--no-stream", "--sim-gpu-bytes", "64M",
                                       "--json", "resident.json", NULL},
                      &out);
    if (rc) fail_msg("resident run: exit %d:\n%s", rc, out);
    free(out);
    rc = run_zoff((const char *[]){"train", MODEL, "--stream", "--sim-gpu-bytes", SMALL_GPU,
                                   "--json", "streamed.json", NULL},
                  &out);
    if (rc) fail_msg("streamed run: exit %d:\n%s", rc, out);
    free(out);
    rc = run_zoff(
        (const char *[]){"train", MODEL, "--sim-gpu-bytes", SMALL_GPU, "--json", "auto.json", NULL},
        &out);
    if (rc) fail_msg("automatic run: exit %d:\n%s", rc, out);
    assert_non_null(strstr(out, "streaming the weights"));
    free(out);
    rc = run_zoff(
        (const char *[]){"train", MODEL, "--no-stream", "--sim-gpu-bytes", SMALL_GPU, NULL}, &out);
    assert_int_not_equal(rc, 0);
    free(out);

    char p[600];
    snprintf(p, sizeof p, "%s/resident.json", g_tmp);
    char *a = trajectory(p);
    snprintf(p, sizeof p, "%s/streamed.json", g_tmp);
    char *b = trajectory(p);
    snprintf(p, sizeof p, "%s/auto.json", g_tmp);
    char *c = trajectory(p);
    assert_true(strlen(a) > 16);
    if (strcmp(a, b) || strcmp(a, c))
        fail_msg("trajectories differ:\nresident %s\nstreamed %s\nauto     %s", a, b, c);
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_stream_train ZOFF_BINARY\n");
        return 2;
    }
    g_zoff = argv[1];
    g_tmp = zt_mkdtemp("stream-train");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stream_train)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zt_rmtree(g_tmp);
    free(g_tmp);
    return rc;
}
