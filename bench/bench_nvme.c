/*
 * bench_nvme.c — `zoff bench nvme`: the swap engine's sequential read and write bandwidth on one
 * preallocated O_DIRECT file, swept over block size x queue depth (like DeepSpeed's ds_io), and,
 * when fio is installed, fio on the same file with the same block size, queue depth, O_DIRECT and
 * io_uring with fixed buffers and registered files, run cell by cell right after ours (the disk
 * is noisy: neighbours in time share the same conditions). Also runs fio once more at the best
 * cell with huge-page buffers (--mem=shmhuge; needs hugetlb pages, reported "unavailable"
 * otherwise), so ours is compared with the device's ceiling, not only with fio's default.
 *
 * Owns: the argument parsing, the test file (created, checked, deleted), the I/O buffer
 * (mmap + MADV_HUGEPAGE unless --no-huge, 4 KiB pages then faulted by an io_uring registration as
 * fio's are; registered with io_uring), the data check done before anything is timed, the timed
 * passes, the fio runs and their JSON parsing, the table / CSV /
 * JSON output and the optional gnuplot heatmap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "harness.h"
#include "nvme/swap.h"

#define MAX_LIST    16
#define CHECK_BYTES (64 * ZOFF_MIB)

typedef struct opts {
    const char *path;
    uint64_t size_bytes;
    size_t bs[MAX_LIST];
    int nbs;
    int qd[MAX_LIST];
    int nqd;
    int do_read, do_write;
    zoff_aio_engine engine;
    int fio;
    int huge;
    int reg; /* register buffers and the file with io_uring */
    int repeat;
    int keep;
    int verbose;
    long set_hugepages; /* -1: leave vm.nr_hugepages alone */
    const char *json, *csv, *plot;
} opts;

typedef struct cell {
    int is_write;
    size_t bs;
    int qd;
    double ours_mbps;   /* best of the repeats */
    double fio_mbps;    /* best of the repeats, 0: not run or failed */
    double pair_median; /* median over the repeats of ours/fio of adjacent runs, 0: none */
} cell;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: zoff bench nvme [--path DIR] [--size 8G] [--bs 1M,4M,8M,16M] [--qd 4,8,16,32]\n"
        "                       [--rw read,write] [--engine uring|threads] [--no-fio]\n"
        "                       [--repeat N] [--no-huge] [--no-register] [--hugepages N] [--keep]\n"
        "                       [--verbose]\n"
        "                       [--json F] [--csv F] [--plot F.png] [--quick]\n"
        "Sequential read/write of one preallocated O_DIRECT file in DIR (default .), block\n"
        "size x queue depth, with fio at the same settings when installed. --quick: 256 MiB,\n"
        "1M,4M x 4,16. --no-huge: 4 KiB-page buffers (fio's default) instead of huge pages;\n"
        "--no-register: plain READ/WRITE on unregistered buffers and fd (fio stays fixed).\n"
        "--hugepages N sets vm.nr_hugepages to N for the fio --mem=shmhuge run and restores\n"
        "it afterwards. --repeat N: each cell N times (ours and fio take turns going first),\n"
        "best kept; --verbose prints every run. --keep leaves the test file in DIR.\n");
}

static int parse_sizes(const char *s, size_t *out, int *n)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (*n == MAX_LIST || zoff__parse_size(tok, &v) != 0 || v == 0 || v % 4096) return -1;
        out[(*n)++] = (size_t)v;
    }
    return *n ? 0 : -1;
}

static int parse_ints(const char *s, int *out, int *n)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*n == MAX_LIST || *end || v <= 0 || v > 4096) return -1;
        out[(*n)++] = (int)v;
    }
    return *n ? 0 : -1;
}

static int parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->path = ".";
    o->size_bytes = 8 * ZOFF_GIB;
    o->engine = ZOFF_AIO_AUTO;
    o->fio = 1;
    o->huge = 1;
    o->reg = 1;
    o->repeat = 1;
    o->set_hugepages = -1;
    parse_sizes("1M,4M,8M,16M", o->bs, &o->nbs);
    parse_ints("4,8,16,32", o->qd, &o->nqd);
    o->do_read = o->do_write = 1;
    int quick = 0, size_set = 0, bs_set = 0, qd_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 1;
        } else if (zb_arg_match(&i, argc, argv, "--path", &v)) {
            o->path = v;
        } else if (zb_arg_match(&i, argc, argv, "--size", &v)) {
            if (zoff__parse_size(v, &o->size_bytes) != 0 || o->size_bytes < ZOFF_MIB) goto bad;
            size_set = 1;
        } else if (zb_arg_match(&i, argc, argv, "--bs", &v)) {
            if (parse_sizes(v, o->bs, &o->nbs) != 0) goto bad;
            bs_set = 1;
        } else if (zb_arg_match(&i, argc, argv, "--qd", &v)) {
            if (parse_ints(v, o->qd, &o->nqd) != 0) goto bad;
            qd_set = 1;
        } else if (zb_arg_match(&i, argc, argv, "--rw", &v)) {
            o->do_read = strstr(v, "read") != NULL;
            o->do_write = strstr(v, "write") != NULL;
            if (!o->do_read && !o->do_write) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--engine", &v)) {
            if (!strcmp(v, "uring"))
                o->engine = ZOFF_AIO_URING;
            else if (!strcmp(v, "threads"))
                o->engine = ZOFF_AIO_THREADS;
            else
                goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--repeat", &v)) {
            o->repeat = atoi(v);
            if (o->repeat < 1 || o->repeat > 20) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--hugepages", &v)) {
            o->set_hugepages = atol(v);
            if (o->set_hugepages < 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--json", &v)) {
            o->json = v;
        } else if (zb_arg_match(&i, argc, argv, "--csv", &v)) {
            o->csv = v;
        } else if (zb_arg_match(&i, argc, argv, "--plot", &v)) {
            o->plot = v;
        } else if (zb_arg_match(&i, argc, argv, "--no-fio", NULL)) {
            o->fio = 0;
        } else if (zb_arg_match(&i, argc, argv, "--no-huge", NULL)) {
            o->huge = 0;
        } else if (zb_arg_match(&i, argc, argv, "--no-register", NULL)) {
            o->reg = 0;
        } else if (zb_arg_match(&i, argc, argv, "--keep", NULL)) {
            o->keep = 1;
        } else if (zb_arg_match(&i, argc, argv, "--verbose", NULL)) {
            o->verbose = 1;
        } else if (zb_arg_match(&i, argc, argv, "--quick", NULL)) {
            quick = 1;
        } else {
            fprintf(stderr, "zoff bench nvme: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "zoff bench nvme: bad value for %s\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (quick) {
        if (!size_set) o->size_bytes = 256 * ZOFF_MIB;
        if (!bs_set) parse_sizes("1M,4M", o->bs, &o->nbs);
        if (!qd_set) parse_ints("4,16", o->qd, &o->nqd);
    }
    o->size_bytes = ZOFF_ALIGN_DOWN(o->size_bytes, ZOFF_MIB);
    return 0;
}

/* ---- buffer ------------------------------------------------------------------------------ */
/* Percentage of the mapping at p backed by transparent huge pages (from /proc/self/smaps). */
static double huge_percent(const void *p, size_t bytes)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0;
    double pct = -1;
    uintptr_t want = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = want >= lo && want < hi;
            continue;
        }
        unsigned long kb;
        if (in && sscanf(line, "AnonHugePages: %lu kB", &kb) == 1) {
            pct = 100.0 * (double)kb * 1024.0 / (double)bytes;
            break;
        }
    }
    fclose(f);
    return pct;
}

static char *alloc_buffer(size_t bytes, int huge)
{
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    if (!huge) {
        /* Fault the 4 KiB pages the way fio's are: by an io_uring registration (a long-term
         * pin) before anything writes them. On the measured kernel that hands them out mostly
         * in ascending physical order, so the virtio scatter list merges neighbours into
         * fewer, larger descriptors; faulted by the fill loop below they came out mostly in
         * descending order (nothing merges) and reads ran ~30% slower, engine unchanged.
         * Refused registration (RLIMIT_MEMLOCK): the fill loop faults them instead. */
        zaio_engine *e = NULL;
        if (zaio_create(NULL, &e) == ZOFF_OK) {
            for (size_t done = 0; done < bytes;) {
                size_t n = ZOFF_MIN(bytes - done, (size_t)ZOFF_GIB);
                if (zaio_register_buffer(e, p + done, n) < 0) break;
                done += n;
            }
            zaio_destroy(e);
        }
    }
    uint64_t x = 0x9E3779B97F4A7C15ull; /* touch every page with data that does not compress */
    for (size_t i = 0; i < bytes; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    return p;
}

/* ---- our passes -------------------------------------------------------------------------- */
typedef struct pass {
    const opts *o;
    int fd;
    const char *file;
    char *buf;
    size_t buf_bytes;
} pass;

/* One sequential pass over [0, bytes) in requests of bs * qd, two requests in flight from the
 * two halves of the buffer so the queue never drains between them. */
static zoff_status seq_pass(const pass *p, int is_write, size_t bs, int qd, uint64_t bytes,
                            double *seconds)
{
    zaio_config cfg = {.engine = p->o->engine, .block_bytes = bs, .queue_depth = qd};
    zaio_engine *e = NULL;
    zoff_status st = zaio_create(&cfg, &e);
    if (st < 0) return st;
    size_t win = bs * (size_t)qd;
    zaio_req *inflight[2] = {NULL, NULL};
    if (2 * win > p->buf_bytes) {
        st = zoff__err(ZOFF_EINTERNAL, "buffer too small for bs %zu x qd %d", bs, qd);
        goto out;
    }
    if (p->o->reg) {
        ZOFF_CHECK_GOTO(zaio_register_buffer(e, p->buf, 2 * win), st, out);
        ZOFF_CHECK_GOTO(zaio_register_file(e, p->fd, p->file), st, out);
    }
    uint64_t t0 = zoff__now_ns(), off = 0;
    for (int i = 0; off < bytes || inflight[0] || inflight[1]; i ^= 1) {
        if (inflight[i]) {
            zoff_status w = zaio_wait(e, inflight[i]);
            inflight[i] = NULL;
            if (w < 0) {
                st = w;
                break;
            }
        }
        if (off < bytes) {
            size_t len = (size_t)ZOFF_MIN((uint64_t)win, bytes - off);
            char *b = p->buf + (size_t)i * win;
            st = is_write ? zaio_write(e, p->fd, b, len, off, &inflight[i])
                          : zaio_read(e, p->fd, b, len, off, &inflight[i]);
            if (st < 0) break;
            off += len;
        }
    }
    *seconds = (double)(zoff__now_ns() - t0) / 1e9;
    for (int i = 0; i < 2; i++)
        if (inflight[i]) (void)zaio_wait(e, inflight[i]);
out:
    zaio_destroy(e);
    return st;
}

/* Writes a pattern through the engine, reads it back through the engine, compares. */
static zoff_status check_data(const pass *p)
{
    size_t n = (size_t)ZOFF_MIN((uint64_t)CHECK_BYTES, p->o->size_bytes);
    n = ZOFF_MIN(n, p->buf_bytes / 2);
    zaio_config cfg = {.engine = p->o->engine, .block_bytes = ZOFF_MIB, .queue_depth = 8};
    zaio_engine *e = NULL;
    ZOFF_CHECK(zaio_create(&cfg, &e));
    zoff_status st = ZOFF_OK;
    zaio_req *r = NULL;
    ZOFF_CHECK_GOTO(zaio_register_buffer(e, p->buf, 2 * n), st, out);
    memset(p->buf + n, 0, n);
    ZOFF_CHECK_GOTO(zaio_write(e, p->fd, p->buf, n, 0, &r), st, out);
    ZOFF_CHECK_GOTO(zaio_wait(e, r), st, out);
    ZOFF_CHECK_GOTO(zaio_read(e, p->fd, p->buf + n, n, 0, &r), st, out);
    ZOFF_CHECK_GOTO(zaio_wait(e, r), st, out);
    if (memcmp(p->buf, p->buf + n, n) != 0)
        st = zoff__err(ZOFF_ECORRUPT, "data check: %zu bytes read back differ from those written",
                       n);
out:
    zaio_destroy(e);
    return st;
}

/* ---- fio ------------------------------------------------------------------------------------ */
static int have_fio(void)
{
    int rc = system("fio --version >/dev/null 2>&1");
    return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

/* Runs fio on the same file; *mbps = its bandwidth; on failure *why holds fio's complaint. */
static int run_fio(const pass *p, int is_write, size_t bs, int qd, const char *mem, double *mbps,
                   char *why, size_t why_len)
{
    char err_path[ZOFF_PATH_MAX + 32], cmd[2 * ZOFF_PATH_MAX + 512];
    snprintf(err_path, sizeof err_path, "%s.fio-err", p->file);
    snprintf(cmd, sizeof cmd,
             "fio --name=zoff-bench --filename='%s' --rw=%s --bs=%zu --iodepth=%d --direct=1 "
             "--ioengine=io_uring --fixedbufs --registerfiles --size=%" PRIu64
             " --numjobs=1 --invalidate=1 --output-format=json%s%s 2>'%s'",
             p->file, is_write ? "write" : "read", bs, qd, p->o->size_bytes, mem ? " --mem=" : "",
             mem ? mem : "", err_path);
    *mbps = 0;
    why[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (!f) {
        snprintf(why, why_len, "popen: %s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    for (size_t n; out && (n = fread(out + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (len + 1 == cap) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger) break;
            out = bigger;
            cap *= 2;
        }
    }
    int rc = pclose(f);
    int ok = -1;
    if (out) {
        out[len] = '\0';
        const char *json = strchr(out, '{');
        cJSON *root = json ? cJSON_Parse(json) : NULL;
        cJSON *jobs = root ? cJSON_GetObjectItem(root, "jobs") : NULL;
        cJSON *job = jobs ? cJSON_GetArrayItem(jobs, 0) : NULL;
        cJSON *dir = job ? cJSON_GetObjectItem(job, is_write ? "write" : "read") : NULL;
        cJSON *bw = dir ? cJSON_GetObjectItem(dir, "bw_bytes") : NULL;
        cJSON *jerr = job ? cJSON_GetObjectItem(job, "error") : NULL;
        if (rc == 0 && cJSON_IsNumber(bw) && bw->valuedouble > 0 &&
            (!cJSON_IsNumber(jerr) || jerr->valueint == 0)) {
            *mbps = bw->valuedouble / 1e6;
            ok = 0;
        }
        cJSON_Delete(root);
        free(out);
    }
    if (ok != 0) {
        FILE *ef = fopen(err_path, "r");
        char line[256] = "";
        if (ef) {
            while (fgets(line, sizeof line, ef))
                if (strstr(line, "fio:") || strstr(line, "error")) break;
            fclose(ef);
        }
        line[strcspn(line, "\n")] = '\0';
        snprintf(why, why_len, "%s", line[0] ? line : "fio failed");
    }
    unlink(err_path);
    return ok;
}

static long read_nr_hugepages(void)
{
    FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

static int write_nr_hugepages(long v)
{
    FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
    if (!f) return -errno;
    fprintf(f, "%ld\n", v);
    return fclose(f) == 0 ? 0 : -errno;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n ratios (sorted in place); 0 when n = 0. */
static double median(double *v, int n)
{
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- plot ---------------------------------------------------------------------------------- */
static int write_plot(const opts *o, const cell *cells, int ncells)
{
    if (system("gnuplot --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "zoff bench nvme: gnuplot not found, no plot\n");
        return -1;
    }
    char data[ZOFF_PATH_MAX + 16], script[ZOFF_PATH_MAX + 16];
    snprintf(data, sizeof data, "%s.dat", o->plot);
    snprintf(script, sizeof script, "%s.gp", o->plot);
    FILE *d = fopen(data, "w"), *g = fopen(script, "w");
    if (!d || !g) {
        if (d) fclose(d);
        if (g) fclose(g);
        return -1;
    }
    /* Two blocks (index 0 read, 1 write): x = bs index, y = qd index, MB/s, ours/fio. */
    for (int w = 0; w < 2; w++) {
        fprintf(d, "# %s\n", w ? "write" : "read");
        for (int i = 0; i < ncells; i++)
            if (cells[i].is_write == w) {
                int bi = 0, qi = 0;
                for (int k = 0; k < o->nbs; k++)
                    if (o->bs[k] == cells[i].bs) bi = k;
                for (int k = 0; k < o->nqd; k++)
                    if (o->qd[k] == cells[i].qd) qi = k;
                fprintf(d, "%d %d %.0f %.2f\n", bi, qi, cells[i].ours_mbps,
                        cells[i].fio_mbps > 0 ? cells[i].ours_mbps / cells[i].fio_mbps : 0.0);
            }
        fprintf(d, "\n\n");
    }
    fclose(d);
    char sz[32];
    fprintf(g, "set terminal pngcairo noenhanced size 1100,480 font 'sans,10'\n");
    fprintf(g, "set output '%s'\n", o->plot);
    fprintf(g,
            "set multiplot layout 1,2 title 'zoff swap engine, sequential O_DIRECT, %s file: "
            "MB/s (ours/fio)'\n",
            zoff__fmt_bytes(o->size_bytes, sz, sizeof sz));
    fprintf(g, "set xtics (");
    for (int k = 0; k < o->nbs; k++) fprintf(g, "%s'%zuK' %d", k ? ", " : "", o->bs[k] / 1024, k);
    fprintf(g, ")\nset ytics (");
    for (int k = 0; k < o->nqd; k++) fprintf(g, "%s'%d' %d", k ? ", " : "", o->qd[k], k);
    fprintf(g, ")\nset xlabel 'block size'\nset ylabel 'queue depth'\nset palette rgb 33,13,10\n"
               "set cblabel 'MB/s'\nunset key\n");
    fprintf(g, "set xrange [-0.5:%d.5]\nset yrange [-0.5:%d.5]\n", o->nbs - 1, o->nqd - 1);
    for (int w = 0; w < 2; w++) {
        fprintf(g, "set title '%s'\n", w ? "write" : "read");
        fprintf(g,
                "plot '%s' index %d using 1:2:3 with image, '' index %d using 1:2:(sprintf('%%d "
                "(%%.2f)', $3, $4)) with labels font ',9'\n",
                data, w, w);
    }
    fprintf(g, "unset multiplot\n");
    fclose(g);
    char cmd[3 * ZOFF_PATH_MAX];
    snprintf(cmd, sizeof cmd, "gnuplot '%s'", script);
    int rc = system(cmd);
    unlink(data);
    unlink(script);
    if (rc != 0) {
        fprintf(stderr, "zoff bench nvme: gnuplot failed\n");
        return -1;
    }
    printf("plot: %s\n", o->plot);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------ */
int zoff_bench_nvme_main(int argc, char **argv)
{
    opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    int ret = 1, fd = -1, fio = 0;
    char *buf = NULL;
    size_t buf_bytes = 0;
    cell *cells = NULL;
    zb_table *t = NULL;
    long saved_hugepages = -1;
    char file[ZOFF_PATH_MAX];
    snprintf(file, sizeof file, "%s/zoff-bench-nvme-%d.dat", o.path, (int)getpid());

    if (strchr(o.path, '\'')) {
        fprintf(stderr, "zoff bench nvme: --path must not contain a single quote\n");
        return 2;
    }
    uint64_t free_bytes = 0;
    if (zswap_free_bytes(o.path, &free_bytes) != 0) {
        fprintf(stderr, "zoff bench nvme: %s\n", zoff__last_error_tls());
        return 1;
    }
    if (free_bytes < o.size_bytes + 256 * ZOFF_MIB) {
        char a[32], b[32];
        fprintf(stderr, "zoff bench nvme: %s has %s free, the test file needs %s (+256 MiB)\n",
                o.path, zoff__fmt_bytes(free_bytes, a, sizeof a),
                zoff__fmt_bytes(o.size_bytes, b, sizeof b));
        return 1;
    }
    size_t max_bs = 0;
    int max_qd = 0;
    for (int i = 0; i < o.nbs; i++) max_bs = ZOFF_MAX(max_bs, o.bs[i]);
    for (int i = 0; i < o.nqd; i++) max_qd = ZOFF_MAX(max_qd, o.qd[i]);
    buf_bytes = ZOFF_MAX(2 * max_bs * (size_t)max_qd, 2 * (size_t)CHECK_BYTES);
    buf = alloc_buffer(buf_bytes, o.huge);
    if (!buf) {
        fprintf(stderr, "zoff bench nvme: mmap of %zu bytes failed\n", buf_bytes);
        goto out;
    }
    fd = open(file, O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr,
                "zoff bench nvme: open %s with O_DIRECT: %s (the benchmark needs a "
                "filesystem with O_DIRECT)\n",
                file, strerror(errno));
        goto out;
    }
    if (fallocate(fd, 0, 0, (off_t)o.size_bytes) != 0) {
        fprintf(stderr, "zoff bench nvme: fallocate %s: %s\n", file, strerror(errno));
        goto out;
    }
    pass p = {.o = &o, .fd = fd, .file = file, .buf = buf, .buf_bytes = buf_bytes};
    zaio_info info = {0};
    {
        zaio_config c = {.engine = o.engine};
        zaio_engine *e = NULL;
        if (zaio_create(&c, &e) != 0) {
            fprintf(stderr, "zoff bench nvme: %s\n", zoff__last_error_tls());
            goto out;
        }
        zaio_get_info(e, &info);
        zaio_destroy(e);
    }
    char a[32];
    printf("zoff bench nvme: %s, %s, engine %s, buffer %s (%s pages: %.0f%% huge), fio %s\n", file,
           zoff__fmt_bytes(o.size_bytes, a, sizeof a),
           info.engine != ZOFF_AIO_URING ? "threads"
           : o.reg                       ? "io_uring (fixed buffers + files)"
                                         : "io_uring (unregistered buffers, plain fd)",
           zoff__fmt_bytes(buf_bytes, (char[32]){0}, 32), o.huge ? "THP" : "4 KiB",
           huge_percent(buf, buf_bytes), o.fio ? (have_fio() ? "yes" : "not installed") : "off");
    fflush(stdout);
    fio = o.fio && have_fio();

    zoff_status st = check_data(&p);
    if (st < 0) {
        fprintf(stderr, "zoff bench nvme: data check failed: %s\n", zoff__last_error_tls());
        goto out;
    }
    /* Lay the whole file out once (written blocks, as fio would), untimed as a cell. */
    double secs = 0;
    size_t lay_bs = ZOFF_MIN(8 * ZOFF_MIB, max_bs);
    int lay_qd = (int)ZOFF_MIN((size_t)16, buf_bytes / (2 * lay_bs));
    st = seq_pass(&p, 1, lay_bs, lay_qd, o.size_bytes, &secs);
    if (st < 0) {
        fprintf(stderr, "zoff bench nvme: layout: %s\n", zoff__last_error_tls());
        goto out;
    }
    printf("data check ok; layout write %.0f MB/s\n", (double)o.size_bytes / secs / 1e6);
    fflush(stdout);

    int ncells = (o.do_read + o.do_write) * o.nbs * o.nqd, ci = 0;
    cells = calloc((size_t)ncells, sizeof *cells);
    static const char *cols[] = {"rw",       "bs",       "qd",         "ours_MBps",
                                 "fio_MBps", "ours/fio", "pair_median"};
    t = zb_table_new("sequential O_DIRECT, MB/s = 1e6 bytes/s; best of the repeats, and the "
                     "median of ours/fio over adjacent pairs",
                     7, cols);
    for (int w = 0; w < 2; w++) {
        if ((w == 0 && !o.do_read) || (w == 1 && !o.do_write)) continue;
        for (int b = 0; b < o.nbs; b++)
            for (int q = 0; q < o.nqd; q++) {
                cell *c = &cells[ci++];
                c->is_write = w;
                c->bs = o.bs[b];
                c->qd = o.qd[q];
                double pairs[20];
                int npairs = 0;
                for (int r = 0; r < o.repeat; r++) {
                    /* Ours and fio take turns going first, so neither always runs on a disk
                     * (or host cache) the other just warmed. */
                    int fio_first = fio && ((ci + r) % 2 == 0);
                    double m = 0, ours = 0;
                    for (int turn = 0; turn < 2; turn++) {
                        if (turn == fio_first) {
                            st = seq_pass(&p, w, c->bs, c->qd, o.size_bytes, &secs);
                            if (st < 0) {
                                fprintf(stderr, "zoff bench nvme: %s\n", zoff__last_error_tls());
                                goto out;
                            }
                            ours = (double)o.size_bytes / secs / 1e6;
                        } else if (fio) {
                            char why[256];
                            if (run_fio(&p, w, c->bs, c->qd, NULL, &m, why, sizeof why) != 0)
                                fprintf(stderr, "fio %s bs %zu qd %d: %s\n", w ? "write" : "read",
                                        c->bs, c->qd, why);
                        }
                    }
                    if (o.verbose)
                        printf("    run %d (%s first): ours %.0f MB/s, fio %.0f MB/s\n", r,
                               fio_first ? "fio" : "ours", ours, m);
                    c->ours_mbps = ZOFF_MAX(c->ours_mbps, ours);
                    c->fio_mbps = ZOFF_MAX(c->fio_mbps, m);
                    if (m > 0) pairs[npairs++] = ours / m;
                }
                c->pair_median = median(pairs, npairs);
                char ours[32], fiob[32], ratio[32], pmed[32];
                snprintf(pmed, sizeof pmed, npairs ? "%.2f" : "-", c->pair_median);
                snprintf(ours, sizeof ours, "%.0f", c->ours_mbps);
                snprintf(fiob, sizeof fiob, c->fio_mbps > 0 ? "%.0f" : "-", c->fio_mbps);
                snprintf(ratio, sizeof ratio, c->fio_mbps > 0 ? "%.2f" : "-",
                         c->fio_mbps > 0 ? c->ours_mbps / c->fio_mbps : 0.0);
                zb_table_rowf(t, "%s|%zuK|%d|%s|%s|%s|%s", w ? "write" : "read", c->bs / 1024,
                              c->qd, ours, fiob, ratio, pmed);
                printf("  %-5s bs %6zuK qd %3d: ours %6s MB/s  fio %6s MB/s  ours/fio %s  "
                       "(pair median %s)\n",
                       w ? "write" : "read", c->bs / 1024, c->qd, ours, fiob, ratio, pmed);
                fflush(stdout);
            }
    }
    printf("\n");
    zb_table_print(t, stdout);

    /* Best configuration per direction, and fio with huge-page buffers there. */
    if (fio && o.set_hugepages >= 0) {
        saved_hugepages = read_nr_hugepages();
        if (write_nr_hugepages(o.set_hugepages) != 0)
            fprintf(stderr, "zoff bench nvme: cannot set vm.nr_hugepages: %s\n", strerror(errno));
        else
            printf("vm.nr_hugepages: %ld -> %ld (restored at exit)\n", saved_hugepages,
                   read_nr_hugepages());
    }
    printf("\n");
    for (int w = 0; w < 2; w++) {
        const cell *best = NULL, *best_fio = NULL;
        for (int i = 0; i < ncells; i++) {
            if (cells[i].is_write != w) continue;
            if (!best || cells[i].ours_mbps > best->ours_mbps) best = &cells[i];
            if (cells[i].fio_mbps > 0 && (!best_fio || cells[i].fio_mbps > best_fio->fio_mbps))
                best_fio = &cells[i];
        }
        if (!best) continue;
        double log_sum = 0, log_med = 0, worst = 0;
        int nratio = 0;
        for (int i = 0; i < ncells; i++) {
            if (cells[i].is_write != w || cells[i].fio_mbps <= 0) continue;
            double ratio = cells[i].ours_mbps / cells[i].fio_mbps;
            log_sum += log(ratio);
            log_med += log(cells[i].pair_median);
            worst = nratio++ ? ZOFF_MIN(worst, ratio) : ratio;
        }
        if (nratio)
            printf("%-5s ours/fio over %d cells: geometric mean %.2f (of pair medians %.2f), "
                   "lowest %.2f\n",
                   w ? "write" : "read", nratio, exp(log_sum / nratio), exp(log_med / nratio),
                   worst);
        printf("best %-5s: ours %.0f MB/s at bs %zuK qd %d", w ? "write" : "read", best->ours_mbps,
               best->bs / 1024, best->qd);
        if (best_fio)
            printf("; fio best %.0f MB/s at bs %zuK qd %d; best/best %.2f", best_fio->fio_mbps,
                   best_fio->bs / 1024, best_fio->qd, best->ours_mbps / best_fio->fio_mbps);
        printf("\n");
        if (fio) {
            /* fio with huge-page buffers against ours run next to it (turns as above). */
            double fio_huge = 0, ours = 0, pairs[20];
            char why[256] = "";
            int failed = 0, npairs = 0;
            for (int r = 0; r < o.repeat && !failed; r++) {
                double m = 0, mine = 0;
                for (int turn = 0; turn < 2; turn++) {
                    if (turn == r % 2) {
                        if (run_fio(&p, w, best->bs, best->qd, "shmhuge", &m, why, sizeof why)) {
                            failed = 1;
                            break;
                        }
                        fio_huge = ZOFF_MAX(fio_huge, m);
                    } else {
                        st = seq_pass(&p, w, best->bs, best->qd, o.size_bytes, &secs);
                        if (st < 0) {
                            fprintf(stderr, "zoff bench nvme: %s\n", zoff__last_error_tls());
                            goto out;
                        }
                        mine = (double)o.size_bytes / secs / 1e6;
                        ours = ZOFF_MAX(ours, mine);
                    }
                }
                if (!failed && o.verbose)
                    printf("    run %d (%s first): ours %.0f MB/s, fio-huge %.0f MB/s\n", r,
                           r % 2 ? "ours" : "fio", mine, m);
                if (!failed) pairs[npairs++] = mine / m;
            }
            if (!failed)
                printf("  at bs %zuK qd %d: fio --mem=shmhuge %.0f MB/s, ours next to it %.0f "
                       "MB/s (best of %d each); ours/fio-huge %.2f, pair median %.2f\n",
                       best->bs / 1024, best->qd, fio_huge, ours, o.repeat, ours / fio_huge,
                       median(pairs, npairs));
            else
                printf("  fio --mem=shmhuge at bs %zuK qd %d: unavailable (%s; hugetlb pages: "
                       "vm.nr_hugepages = %ld, see --hugepages)\n",
                       best->bs / 1024, best->qd, why, read_nr_hugepages());
        }
    }
    if (o.csv && zb_table_write_csv(t, o.csv) != 0)
        fprintf(stderr, "zoff bench nvme: cannot write %s\n", o.csv);
    if (o.json && zb_table_write_json(t, o.json) != 0)
        fprintf(stderr, "zoff bench nvme: cannot write %s\n", o.json);
    if (o.plot) write_plot(&o, cells, ncells);
    ret = 0;
out:
    if (saved_hugepages >= 0) write_nr_hugepages(saved_hugepages);
    if (fd >= 0) {
        close(fd);
        if (!o.keep) unlink(file);
    }
    if (buf) munmap(buf, buf_bytes);
    free(cells);
    zb_table_free(t);
    return ret;
}
