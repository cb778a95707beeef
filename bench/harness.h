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

#include "cpu_adam/adam.h"
#include "zoff.h"

typedef struct zb_timing {
    int runs;
    double min_ns, median_ns, mean_ns, max_ns;
} zb_timing;

/* Runs fn(arg) `warmup` times untimed, then at least `min_runs` times and until `min_seconds`
 * have passed (capped at max_runs), and fills *t. */
void zb_measure(void (*fn)(void *), void *arg, int warmup, int min_runs, int max_runs,
                double min_seconds, zb_timing *t);

/* Wall-clock milliseconds (monotonic), and the CPU time of all the process's threads (the sim
 * device's copy threads included) in milliseconds. */
double zb_now_ms(void);
double zb_cpu_ms(void);

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
/* Writes the table as JSON and/or CSV (a NULL path is skipped); on failure prints
 * "<who>: cannot write <path>" to stderr and returns -1. */
int zb_table_save(const zb_table *t, const char *json, const char *csv, const char *who);

/* Argument helpers: parse "--key=value" or "--key value"; sizes accept k/M/G suffixes. */
int zb_arg_match(int *i, int argc, char **argv, const char *key, const char **value);
/* "f16" | "bf16" | "f32" set *dt and *present = 1; "none" sets *present = 0. Else -1. */
int zb_parse_dtype(const char *s, zoff_dtype *dt, int *present);

/* 2 MiB-aligned memory with MADV_HUGEPAGE (benchmark buffers; free()), NULL when out of memory. */
void *zb_alloc_huge(size_t bytes);

/* The CPU Adam benchmarks' thread count: `threads` if > 0, else ZOFF_CPU_THREADS, else
 * OpenMP's maximum; capped at ZADAM_MAX_THREADS with a line on stderr naming `who`. */
int zb_adam_threads(int threads, const char *who);
/* The ISAs to time: every supported one (fastest first) for NULL or "all", else the one named.
 * Returns how many were written to isas[] (room for ZADAM_ISA_COUNT_), or -1 after printing
 * "<who>: <reason>" for an unknown or unsupported name. */
int zb_adam_isas(const char *isa_arg, zadam_isa *isas, const char *who);

/* The options `zoff bench step` and `zoff bench step --stream` share, parsed into the caller's
 * own fields (each pointer names one; NULL: the bench does not take that option). */
typedef struct zb_step_args {
    uint64_t *params;        /* --params N (size suffixes; > 0) */
    int *layers;             /* --layers N */
    zoff_tier *tier;         /* --tier cpu|nvme */
    double *busy_ms;         /* --busy-ms X (and "auto" = -1 when busy_auto) */
    int busy_auto;           /* --busy-ms auto accepted */
    int *steps;              /* --steps N */
    const char **nvme_path;  /* --nvme-path DIR */
    const char **json;       /* --json FILE */
    zoff_dtype *dtype;       /* --dtype fp16|bf16 */
    double *pcie_gbps;       /* --pcie-gbps X */
    int *threads;            /* --threads N */
    size_t *partition_numel; /* --partition-numel N (size suffixes; > 0) */
} zb_step_args;
/* argv[*i] as one of those options: 1 when taken (*i past its value), 0 when it is none of
 * them, -1 for a bad value. */
int zb_step_arg(int *i, int argc, char **argv, const zb_step_args *a);

/* The hyperparameters the kernel benchmarks time (AdamW: lr 1e-3, betas 0.9/0.999, eps 1e-8,
 * weight decay 0.01, bias correction, step 1, gradients scaled by 0.5 so the unscale runs). */
zadam_hparams zb_adam_hparams(void);

/* The median of x[0..n) (n >= 1); sorts x in place. */
double zb_median(double *x, int n);

/* Kernels timed in interleaved rounds against roofline references (`zoff bench adam`): every
 * kernel runs once untimed, then `reps` rounds run each kernel once, so that a disturbance of
 * the machine hits all kernels of a round alike. */
typedef struct zb_kernel {
    char name[64];
    const char *isa;
    void (*fn)(void *);
    void *arg;
    void (*before)(void *arg); /* optional, untimed, before each timed run (e.g. step++) */
    int roofline;              /* a reference: the one with the lowest median is "the best" */
    double *ns;                /* per round, in round order */
    double *sorted;            /* the same, sorted */
    double med_ns, min_ns, ratio;
} zb_kernel;

/* Allocates the per-round arrays of ks[0..nk); 0 or -1 (out of memory). */
int zb_kernels_alloc(zb_kernel *ks, int nk, int reps);
void zb_kernels_free(zb_kernel *ks, int nk);
/* One untimed round, then `reps` timed interleaved rounds. */
void zb_kernels_run(zb_kernel *ks, int nk, int reps);
/* Median and best time of each kernel, and its ratio: the median over rounds of (best roofline
 * time / kernel time) in the same round, so that both sides of every ratio saw the same machine
 * state. Returns the index of the best roofline, -1 when there is none, -2 when out of memory. */
int zb_kernels_stats(zb_kernel *ks, int nk, int reps);
/* The results table (kernel, isa, threads, ms_median, ms_best, gelem_s, gb_s, gb_s_best,
 * x_roofline) of n elements and `bytes` moved per run; NULL when out of memory. */
zb_table *zb_kernels_table(const char *title, const zb_kernel *ks, int nk, int best_roof,
                           int threads, size_t n, double bytes);

#endif /* ZOFF_BENCH_HARNESS_H */
