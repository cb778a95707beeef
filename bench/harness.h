/*
 * harness.h — the benchmark harness shared by every `zoff bench`: correctness is checked before
 * anything is timed (the caller's job), then a function is run repeatedly and its time taken as
 * min / median / mean nanoseconds per run; results print as an aligned table and as JSON/CSV.
 */
#ifndef ZOFF_BENCH_HARNESS_H
#define ZOFF_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct zb_timing {
    int runs;
    double min_ns, median_ns, mean_ns, max_ns;
} zb_timing;

/* Runs fn(arg) `warmup` times untimed, then at least `min_runs` times and until `min_seconds`
 * have passed (capped at max_runs), and fills *t. */
void zb_measure(void (*fn)(void *), void *arg, int warmup, int min_runs, int max_runs,
                double min_seconds, zb_timing *t);

/* GB/s (1e9 bytes per second) of `bytes` moved in `ns`. */
static inline double zb_gbps(double bytes, double ns)
{
    return ns > 0 ? bytes / ns : 0.0;
}

/* A results table: column names once, then rows of strings; printed aligned to stdout and,
 * when the paths are non-NULL, written as CSV and/or JSON (an array of objects whose numeric
 * cells are written as numbers). */
typedef struct zb_table zb_table;
zb_table *zb_table_new(const char *title, int ncols, const char *const *cols);
void zb_table_row(zb_table *t, ...);                   /* ncols const char* cells */
void zb_table_rowf(zb_table *t, const char *fmt, ...); /* cells separated by '|' */
void zb_table_print(const zb_table *t, FILE *out);
int zb_table_write_csv(const zb_table *t, const char *path);
int zb_table_write_json(const zb_table *t, const char *path);
void zb_table_free(zb_table *t);

/* The device-to-device copies a trainer stream queues to hand gradients to zoff's buckets,
 * measured alone: `reps` x each of the n sizes (bytes) copied on a sim device of its own
 * (unthrottled: on the sim a host memcpy in the stream's worker; on a GPU an HBM copy). Fills
 * wall and process CPU milliseconds. Returns 0 or a negative zoff status. */
int zb_d2d_alone(const size_t *bytes, int n, int reps, double *ms, double *cpu_ms);

/* Argument helpers: parse "--key=value" or "--key value"; sizes accept k/M/G suffixes. */
int zb_arg_match(int *i, int argc, char **argv, const char *key, const char **value);

#endif /* ZOFF_BENCH_HARNESS_H */
