/*
 * zt.h — helpers shared by zoff's tests: cmocka includes, a seeded PRNG, float comparison that
 * prints the first mismatches (atol + |ref| * rtol), skipping with exit code 77, scratch
 * directories under $ZOFF_TEST_TMP.
 */
#ifndef ZOFF_TESTS_ZT_H
#define ZOFF_TESTS_ZT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/common.h"

/* Exit code CTest reads as "skipped". */
#define ZT_SKIP_CODE 77

/* Prints why and exits 77 (use before cmocka runs, for a whole executable). */
void zt_skip_all(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* xoshiro256** seeded with splitmix64: reproducible across runs. */
typedef struct zt_rng {
    uint64_t s[4];
} zt_rng;
void zt_rng_seed(zt_rng *r, uint64_t seed);
uint64_t zt_rng_u64(zt_rng *r);
double zt_rng_uniform(zt_rng *r); /* [0, 1) */
double zt_rng_normal(zt_rng *r);  /* N(0, 1) */
void zt_fill_normal(zt_rng *r, float *x, size_t n, float stddev);
void zt_fill_bytes(zt_rng *r, void *p, size_t n);

/* Compares n floats: |got - ref| <= atol + rtol * |ref| (NaN equals NaN, inf equals same inf).
 * Prints up to 5 mismatches with index, values and the bound; returns the mismatch count. */
size_t zt_compare_f32(const char *what, const float *got, const float *ref, size_t n, double atol,
                      double rtol);
size_t zt_compare_f64(const char *what, const float *got, const double *ref, size_t n, double atol,
                      double rtol);

/* A fresh empty directory under $ZOFF_TEST_TMP (or /tmp) named <prefix>-<pid>-<counter>;
 * the caller frees the string and may remove the tree with zt_rmtree. */
char *zt_mkdtemp(const char *prefix);
int zt_rmtree(const char *path);

/* Malloc that fails the test on NULL. */
void *zt_malloc(size_t bytes);

/* The whole file as a NUL-terminated string (caller frees); "" when it cannot be opened. */
char *zt_slurp(const char *path);
/* Runs the program `exe` with arguments args[] (NULL-terminated, after argv[0] = exe) in
 * directory `cwd`, its stdout and stderr into the file `outpath`; returns its exit status, or
 * 128 + the signal that ended it. */
int zt_run_to_file(const char *exe, const char *const *args, const char *cwd, const char *outpath);
/* Runs a shell command (popen); returns its stdout (caller frees) and sets *code to its exit
 * status, or 128 + the signal that ended it. */
char *zt_popen_read(const char *cmd, int *code);

#endif /* ZOFF_TESTS_ZT_H */
