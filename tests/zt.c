/*
 * zt.c — implementation of the shared test helpers (see zt.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zt.h"

void zt_skip_all(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "SKIP: ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
    fflush(stdout);
    exit(ZT_SKIP_CODE);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void zt_rng_seed(zt_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t zt_rng_u64(zt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double zt_rng_uniform(zt_rng *r)
{
    return (double)(zt_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double zt_rng_normal(zt_rng *r)
{
    double u1 = zt_rng_uniform(r), u2 = zt_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void zt_fill_normal(zt_rng *r, float *x, size_t n, float stddev)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(zt_rng_normal(r) * stddev);
}

void zt_fill_bytes(zt_rng *r, void *p, size_t n)
{
    uint8_t *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = zt_rng_u64(r);
        memcpy(b + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = zt_rng_u64(r);
        memcpy(b + i, &v, n - i);
    }
}

static int close_enough(double got, double ref, double atol, double rtol)
{
    if (isnan(ref)) return isnan(got);
    if (isinf(ref)) return got == ref;
    if (!isfinite(got)) return 0;
    return fabs(got - ref) <= atol + rtol * fabs(ref);
}

size_t zt_compare_f64(const char *what, const float *got, const double *ref, size_t n, double atol,
                      double rtol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!close_enough(got[i], ref[i], atol, rtol)) {
            if (bad < 5)
                fprintf(stderr,
                        "  %s mismatch at [%zu]: got %.9g ref %.17g |diff| %.3g bound %.3g\n", what,
                        i, (double)got[i], ref[i], fabs(got[i] - ref[i]),
                        atol + rtol * fabs(ref[i]));
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu elements out of tolerance\n", what, bad, n);
    return bad;
}

size_t zt_compare_f32(const char *what, const float *got, const float *ref, size_t n, double atol,
                      double rtol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!close_enough(got[i], ref[i], atol, rtol)) {
            if (bad < 5)
                fprintf(stderr,
                        "  %s mismatch at [%zu]: got %.9g ref %.9g |diff| %.3g bound %.3g\n", what,
                        i, (double)got[i], (double)ref[i], fabs((double)got[i] - ref[i]),
                        atol + rtol * fabs((double)ref[i]));
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu elements out of tolerance\n", what, bad, n);
    return bad;
}

char *zt_mkdtemp(const char *prefix)
{
    static int counter;
    const char *base = getenv("ZOFF_TEST_TMP");
    if (!base || !base[0]) base = "/tmp";
    mkdir(base, 0755);
    char *path = NULL;
    for (;;) {
        if (asprintf(&path, "%s/%s-%d-%d", base, prefix, (int)getpid(), counter++) < 0) return NULL;
        if (mkdir(path, 0755) == 0) return path;
        if (errno != EEXIST) {
            free(path);
            return NULL;
        }
        free(path);
    }
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int zt_rmtree(const char *path)
{
    return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void *zt_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "zt_malloc(%zu) failed\n", bytes);
        abort();
    }
    return p;
}

char *zt_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        char *empty = zt_malloc(1);
        empty[0] = '\0';
        return empty;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = zt_malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    buf[got] = '\0';
    fclose(f);
    return buf;
}

int zt_run_to_file(const char *exe, const char *const *args, const char *cwd, const char *outpath)
{
    const char *argv[128];
    int n = 0;
    argv[n++] = exe;
    for (int i = 0; args[i]; i++) {
        assert_true(n < 127);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        if (cwd && chdir(cwd) != 0) _exit(126);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) assert_int_equal(errno, EINTR);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

char *zt_popen_read(const char *cmd, int *code)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = zt_malloc(cap);
    for (size_t n; (n = fread(buf + len, 1, cap - len - 1, p)) > 0;) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return buf;
}
