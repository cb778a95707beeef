/*
 * harness.c — timing loop, tables (text / CSV / JSON), argument matching and the trainer-stream
 * gradient copies measured alone, for benchmarks.
 */
#define _GNU_SOURCE
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "common/common.h"
#include "cpu_adam/adam.h"
#include "gpu/device.h"
#include "harness.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double zb_median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return (n % 2) ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

void zb_measure(void (*fn)(void *), void *arg, int warmup, int min_runs, int max_runs,
                double min_seconds, zb_timing *t)
{
    for (int i = 0; i < warmup; i++) fn(arg);
    if (max_runs < min_runs) max_runs = min_runs;
    double *ns = malloc(sizeof(double) * (size_t)max_runs);
    int n = 0;
    uint64_t start = zoff__now_ns();
    while (n < max_runs) {
        uint64_t t0 = zoff__now_ns();
        fn(arg);
        ns[n++] = (double)(zoff__now_ns() - t0);
        if (n >= min_runs && (double)(zoff__now_ns() - start) / 1e9 >= min_seconds) break;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += ns[i];
    t->median_ns = zb_median(ns, n);
    t->runs = n;
    t->min_ns = ns[0];
    t->max_ns = ns[n - 1];
    t->mean_ns = sum / n;
    free(ns);
}

struct zb_table {
    char *title;
    int ncols, nrows, cap;
    char **cols;
    char **cells; /* nrows * ncols */
};

zb_table *zb_table_new(const char *title, int ncols, const char *const *cols)
{
    zb_table *t = calloc(1, sizeof *t);
    t->title = strdup(title ? title : "");
    t->ncols = ncols;
    t->cols = calloc((size_t)ncols, sizeof(char *));
    for (int i = 0; i < ncols; i++) t->cols[i] = strdup(cols[i]);
    return t;
}

static void add_row(zb_table *t, char **cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, sizeof(char *) * (size_t)t->cap * (size_t)t->ncols);
    }
    memcpy(t->cells + (size_t)t->nrows * (size_t)t->ncols, cells,
           sizeof(char *) * (size_t)t->ncols);
    t->nrows++;
}

void zb_table_row(zb_table *t, ...)
{
    char **cells = calloc((size_t)t->ncols, sizeof(char *));
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncols; i++) {
        const char *c = va_arg(ap, const char *);
        cells[i] = strdup(c ? c : "");
    }
    va_end(ap);
    add_row(t, cells);
    free(cells);
}

void zb_table_rowf(zb_table *t, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **cells = calloc((size_t)t->ncols, sizeof(char *));
    char *save = NULL, *tok = strtok_r(buf, "|", &save);
    for (int i = 0; i < t->ncols; i++) {
        cells[i] = strdup(tok ? tok : "");
        tok = tok ? strtok_r(NULL, "|", &save) : NULL;
    }
    add_row(t, cells);
    free(cells);
}

void zb_table_print(const zb_table *t, FILE *out)
{
    int *w = calloc((size_t)t->ncols, sizeof(int));
    for (int c = 0; c < t->ncols; c++) {
        w[c] = (int)strlen(t->cols[c]);
        for (int r = 0; r < t->nrows; r++) {
            int l = (int)strlen(t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);
            if (l > w[c]) w[c] = l;
        }
    }
    if (t->title[0]) fprintf(out, "%s\n", t->title);
    for (int c = 0; c < t->ncols; c++) fprintf(out, "%s%*s", c ? "  " : "", w[c], t->cols[c]);
    fprintf(out, "\n");
    for (int c = 0; c < t->ncols; c++) {
        fprintf(out, "%s", c ? "  " : "");
        for (int k = 0; k < w[c]; k++) fputc('-', out);
    }
    fprintf(out, "\n");
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++)
            fprintf(out, "%s%*s", c ? "  " : "", w[c],
                    t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);
        fprintf(out, "\n");
    }
    fflush(out);
    free(w);
}

int zb_table_write_csv(const zb_table *t, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    for (int c = 0; c < t->ncols; c++) fprintf(f, "%s%s", c ? "," : "", t->cols[c]);
    fprintf(f, "\n");
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++)
            fprintf(f, "%s%s", c ? "," : "", t->cells[(size_t)r * (size_t)t->ncols + (size_t)c]);
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : -errno;
}

static int is_number(const char *s)
{
    if (!*s) return 0;
    char *end;
    strtod(s, &end);
    return *end == '\0';
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

int zb_table_write_json(const zb_table *t, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    fprintf(f, "{\"title\": ");
    json_str(f, t->title);
    fprintf(f, ", \"rows\": [\n");
    for (int r = 0; r < t->nrows; r++) {
        fprintf(f, "  {");
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[(size_t)r * (size_t)t->ncols + (size_t)c];
            fprintf(f, "%s", c ? ", " : "");
            json_str(f, t->cols[c]);
            fprintf(f, ": ");
            if (is_number(cell))
                fprintf(f, "%s", cell);
            else
                json_str(f, cell);
        }
        fprintf(f, "}%s\n", r + 1 < t->nrows ? "," : "");
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : -errno;
}

void zb_table_free(zb_table *t)
{
    if (!t) return;
    for (int c = 0; c < t->ncols; c++) free(t->cols[c]);
    for (size_t i = 0; i < (size_t)t->nrows * (size_t)t->ncols; i++) free(t->cells[i]);
    free(t->cols);
    free(t->cells);
    free(t->title);
    free(t);
}

int zb_arg_match(int *i, int argc, char **argv, const char *key, const char **value)
{
    const char *a = argv[*i];
    size_t kl = strlen(key);
    if (strncmp(a, key, kl) != 0) return 0;
    if (a[kl] == '=') {
        if (!value) return 0;
        *value = a + kl + 1;
        return 1;
    }
    if (a[kl] == '\0') {
        if (!value) return 1;
        if (*i + 1 >= argc) return 0;
        *value = argv[++*i];
        return 1;
    }
    return 0;
}

int zb_table_save(const zb_table *t, const char *json, const char *csv, const char *who)
{
    if (json && zb_table_write_json(t, json) != 0) {
        fprintf(stderr, "%s: cannot write %s\n", who, json);
        return -1;
    }
    if (csv && zb_table_write_csv(t, csv) != 0) {
        fprintf(stderr, "%s: cannot write %s\n", who, csv);
        return -1;
    }
    return 0;
}

int zb_parse_dtype(const char *s, zoff_dtype *dt, int *present)
{
    *present = 1;
    if (!strcmp(s, "f16"))
        *dt = ZOFF_DTYPE_F16;
    else if (!strcmp(s, "bf16"))
        *dt = ZOFF_DTYPE_BF16;
    else if (!strcmp(s, "f32"))
        *dt = ZOFF_DTYPE_F32;
    else if (!strcmp(s, "none"))
        *present = 0;
    else
        return -1;
    return 0;
}

int zb_kernels_alloc(zb_kernel *ks, int nk, int reps)
{
    for (int k = 0; k < nk; k++) {
        ks[k].ns = calloc((size_t)reps, sizeof(double));
        ks[k].sorted = calloc((size_t)reps, sizeof(double));
        if (!ks[k].ns || !ks[k].sorted) return -1;
    }
    return 0;
}

void zb_kernels_free(zb_kernel *ks, int nk)
{
    for (int k = 0; k < nk; k++) {
        free(ks[k].ns);
        free(ks[k].sorted);
        ks[k].ns = ks[k].sorted = NULL;
    }
}

void zb_kernels_run(zb_kernel *ks, int nk, int reps)
{
    for (int k = 0; k < nk; k++) ks[k].fn(ks[k].arg);
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < nk; k++) {
            if (ks[k].before) ks[k].before(ks[k].arg);
            uint64_t t0 = zoff__now_ns();
            ks[k].fn(ks[k].arg);
            ks[k].ns[r] = (double)(zoff__now_ns() - t0);
        }
    }
}

int zb_kernels_stats(zb_kernel *ks, int nk, int reps)
{
    int best_roof = -1;
    for (int k = 0; k < nk; k++) {
        memcpy(ks[k].sorted, ks[k].ns, sizeof(double) * (size_t)reps);
        ks[k].med_ns = zb_median(ks[k].sorted, reps);
        ks[k].min_ns = ks[k].sorted[0];
        if (ks[k].roofline && (best_roof < 0 || ks[k].med_ns < ks[best_roof].med_ns)) best_roof = k;
    }
    double *pair = calloc((size_t)reps, sizeof(double));
    if (!pair) return -2;
    for (int k = 0; k < nk && best_roof >= 0; k++) {
        for (int r = 0; r < reps; r++) pair[r] = ks[best_roof].ns[r] / ks[k].ns[r];
        ks[k].ratio = zb_median(pair, reps);
    }
    free(pair);
    return best_roof;
}

zb_table *zb_kernels_table(const char *title, const zb_kernel *ks, int nk, int best_roof,
                           int threads, size_t n, double bytes)
{
    static const char *cols[] = {"kernel",  "isa",  "threads",   "ms_median", "ms_best",
                                 "gelem_s", "gb_s", "gb_s_best", "x_roofline"};
    zb_table *tab = zb_table_new(title, (int)ZOFF_ARRAY_SIZE(cols), cols);
    if (!tab) return NULL;
    for (int k = 0; k < nk; k++) {
        char ratio[32] = "n/a";
        if (best_roof >= 0) snprintf(ratio, sizeof ratio, "%.3f", ks[k].ratio);
        zb_table_rowf(tab, "%s|%s|%d|%.3f|%.3f|%.3f|%.1f|%.1f|%s", ks[k].name, ks[k].isa, threads,
                      ks[k].med_ns / 1e6, ks[k].min_ns / 1e6, (double)n / ks[k].med_ns,
                      zb_gbps(bytes, ks[k].med_ns), zb_gbps(bytes, ks[k].min_ns), ratio);
    }
    return tab;
}

void *zb_alloc_huge(size_t bytes)
{
    size_t len = ZOFF_ALIGN_UP(bytes ? bytes : 1, (size_t)2 << 20);
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, len) != 0) return NULL;
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}

int zb_adam_threads(int threads, const char *who)
{
    if (threads <= 0) threads = (int)zoff__param_int(ZOFF_PARAM_CPU_THREADS, 0);
    if (threads <= 0) threads = omp_get_max_threads();
    if (threads > ZADAM_MAX_THREADS) {
        fprintf(stderr, "%s: %d threads (ZOFF_CPU_THREADS / OMP_NUM_THREADS): using %d\n", who,
                threads, ZADAM_MAX_THREADS);
        threads = ZADAM_MAX_THREADS;
    }
    return threads;
}

int zb_adam_isas(const char *isa_arg, zadam_isa *isas, const char *who)
{
    int n = 0;
    if (!isa_arg || !strcmp(isa_arg, "all")) {
        for (int k = ZADAM_ISA_COUNT_ - 1; k >= 0; k--)
            if (zadam_isa_supported((zadam_isa)k)) isas[n++] = (zadam_isa)k;
        return n;
    }
    if (zadam_isa_parse(isa_arg, &isas[0]) != 0) {
        fprintf(stderr, "%s: %s\n", who, zoff__last_error_tls());
        return -1;
    }
    return 1;
}

zadam_hparams zb_adam_hparams(void)
{
    return (zadam_hparams){.lr = 1e-3f,
                           .beta1 = 0.9f,
                           .beta2 = 0.999f,
                           .eps = 1e-8f,
                           .weight_decay = 0.01f,
                           .adamw = 1,
                           .bias_correction = 1,
                           .step = 1,
                           .grad_scale = 0.5f};
}

double zb_now_ms(void)
{
    return zoff__ns_to_ms(zoff__now_ns());
}

double zb_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int zb_d2d_alone(const size_t *bytes, int n, int reps, double *ms, double *cpu_ms)
{
    zoff_status st = ZOFF_OK;
    *ms = *cpu_ms = 0.0;
    size_t maxb = 0;
    for (int l = 0; l < n; l++) maxb = ZOFF_MAX(maxb, bytes[l]);
    if (maxb == 0 || reps <= 0) return ZOFF_OK;
    zdev_config dc;
    zdev_config_default(&dc);
    dc.kind = ZOFF_DEVICE_SIM;
    dc.sim_bytes = 2 * maxb + ZOFF_MIB;
    dc.sim_pcie_gbps = 0;
    zdev *d = NULL;
    zdev_stream *s = NULL;
    void *a = NULL, *b = NULL;
    ZOFF_CHECK_GOTO(zdev_open(&dc, &d), st, out);
    ZOFF_CHECK_GOTO(zdev_stream_create(d, &s), st, out);
    ZOFF_CHECK_GOTO(zdev_malloc(d, maxb, &a), st, out);
    ZOFF_CHECK_GOTO(zdev_malloc(d, maxb, &b), st, out);
    ZOFF_CHECK_GOTO(zdev_memcpy_d2d(d, b, a, maxb, s), st, out); /* first touch, untimed */
    ZOFF_CHECK_GOTO(zdev_stream_sync(d, s), st, out);
    double t0 = zb_now_ms(), c0 = zb_cpu_ms();
    for (int j = 0; j < reps; j++)
        for (int l = 0; l < n; l++) ZOFF_CHECK_GOTO(zdev_memcpy_d2d(d, b, a, bytes[l], s), st, out);
    ZOFF_CHECK_GOTO(zdev_stream_sync(d, s), st, out);
    *ms = zb_now_ms() - t0;
    *cpu_ms = zb_cpu_ms() - c0;
out:
    if (d) {
        zdev_free(d, a);
        zdev_free(d, b);
        zdev_stream_destroy(d, s);
        zdev_close(d);
    }
    return st;
}

int zb_step_arg(int *i, int argc, char **argv, const zb_step_args *a)
{
    const char *v = NULL;
    uint64_t n = 0;
    if (a->params && zb_arg_match(i, argc, argv, "--params", &v)) {
        if (zoff__parse_size(v, &n) || n == 0) return -1;
        *a->params = n;
    } else if (a->layers && zb_arg_match(i, argc, argv, "--layers", &v)) {
        *a->layers = atoi(v);
    } else if (a->tier && zb_arg_match(i, argc, argv, "--tier", &v)) {
        if (!strcasecmp(v, "cpu"))
            *a->tier = ZOFF_TIER_CPU;
        else if (!strcasecmp(v, "nvme"))
            *a->tier = ZOFF_TIER_NVME;
        else
            return -1;
    } else if (a->busy_ms && zb_arg_match(i, argc, argv, "--busy-ms", &v)) {
        *a->busy_ms = a->busy_auto && !strcasecmp(v, "auto") ? -1.0 : atof(v);
    } else if (a->steps && zb_arg_match(i, argc, argv, "--steps", &v)) {
        *a->steps = atoi(v);
    } else if (a->nvme_path && zb_arg_match(i, argc, argv, "--nvme-path", &v)) {
        *a->nvme_path = v;
    } else if (a->json && zb_arg_match(i, argc, argv, "--json", &v)) {
        *a->json = v;
    } else if (a->dtype && zb_arg_match(i, argc, argv, "--dtype", &v)) {
        if (!strcasecmp(v, "fp16"))
            *a->dtype = ZOFF_DTYPE_F16;
        else if (!strcasecmp(v, "bf16"))
            *a->dtype = ZOFF_DTYPE_BF16;
        else
            return -1;
    } else if (a->pcie_gbps && zb_arg_match(i, argc, argv, "--pcie-gbps", &v)) {
        *a->pcie_gbps = atof(v);
    } else if (a->threads && zb_arg_match(i, argc, argv, "--threads", &v)) {
        *a->threads = atoi(v);
    } else if (a->partition_numel && zb_arg_match(i, argc, argv, "--partition-numel", &v)) {
        if (zoff__parse_size(v, &n) || n == 0) return -1;
        *a->partition_numel = (size_t)n;
    } else {
        return 0;
    }
    return 1;
}
