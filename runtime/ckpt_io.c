/*
 * ckpt_io.c — file helpers of the checkpoint code (full positional reads and writes, fsync of a
 * file or directory, small whole files, mkdir -p) and the process-wide test hooks (fault points,
 * forcing the rename fallback). No checkpoint format knowledge here.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt_int.h"
#include "runtime/config.h"

static zckpt_fault_fn g_fault_fn;
static void *g_fault_arg;
static int g_no_exchange;

void zckpt__set_fault_hook(zckpt_fault_fn fn, void *arg)
{
    __atomic_store_n(&g_fault_arg, arg, __ATOMIC_RELAXED);
    __atomic_store_n(&g_fault_fn, fn, __ATOMIC_RELEASE);
}

void zckpt__set_rename_exchange(int enabled)
{
    __atomic_store_n(&g_no_exchange, !enabled, __ATOMIC_RELAXED);
}

int zckpt__exchange_enabled(void)
{
    return !__atomic_load_n(&g_no_exchange, __ATOMIC_RELAXED);
}

void zckpt__fault_point(const char *point, uint64_t count)
{
    zckpt_fault_fn fn = __atomic_load_n(&g_fault_fn, __ATOMIC_ACQUIRE);
    if (fn) fn(point, count, __atomic_load_n(&g_fault_arg, __ATOMIC_RELAXED));
}

zoff_status zckpt__pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *path)
{
    const char *p = buf;
    while (len > 0) {
        size_t n = ZOFF_MIN(len, (size_t)1 << 30);
        long r = ZOFF_SYS(pwrite(fd, p, n, (off_t)off));
        if (r < 0)
            return zoff__err((zoff_status)r, "pwrite %s at offset %llu (%zu bytes): %s", path,
                             (unsigned long long)off, n, strerror((int)-r));
        if (r == 0)
            return zoff__err(ZOFF_ESHORTIO, "pwrite %s at offset %llu wrote nothing", path,
                             (unsigned long long)off);
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return ZOFF_OK;
}

zoff_status zckpt__pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path)
{
    char *p = buf;
    while (len > 0) {
        size_t n = ZOFF_MIN(len, (size_t)1 << 30);
        long r = ZOFF_SYS(pread(fd, p, n, (off_t)off));
        if (r < 0)
            return zoff__err((zoff_status)r, "pread %s at offset %llu (%zu bytes): %s", path,
                             (unsigned long long)off, n, strerror((int)-r));
        if (r == 0)
            return zoff__err(ZOFF_ESHORTIO, "pread %s at offset %llu: unexpected end of file", path,
                             (unsigned long long)off);
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return ZOFF_OK;
}

zoff_status zckpt__fsync_path(const char *path, int directory)
{
    int fd = (int)ZOFF_SYS(open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)));
    if (fd < 0) return zoff__err(fd, "open %s for fsync: %s", path, strerror(-fd));
    zoff_status st = ZOFF_OK;
    if (ZOFF_SYS(fsync(fd)) < 0) st = zoff__err(-errno, "fsync %s: %s", path, strerror(errno));
    close(fd);
    return st;
}

int zckpt__path_fmt(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* Reads a whole (small) file into a NUL-terminated buffer. */
zoff_status zckpt__read_text(const char *path, size_t max_bytes, char **out, size_t *len)
{
    zoff_status st = ZOFF_OK;
    char *buf = NULL;
    int fd = (int)ZOFF_SYS(open(path, O_RDONLY | O_CLOEXEC));
    if (fd < 0) return zoff__err(fd, "open %s: %s", path, strerror(-fd));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = zoff__err(-errno, "fstat %s: %s", path, strerror(errno));
        goto out;
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        st = zoff__err(ZOFF_EFORMAT, "%s: %lld bytes is larger than the %zu allowed", path,
                       (long long)sb.st_size, max_bytes);
        goto out;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        st = zoff__err(-ENOMEM, "%s: cannot allocate %lld bytes", path, (long long)sb.st_size);
        goto out;
    }
    ZOFF_CHECK_GOTO(zckpt__pread_full(fd, buf, (size_t)sb.st_size, 0, path), st, out);
    buf[sb.st_size] = '\0';
    *len = (size_t)sb.st_size;
    *out = buf;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

zoff_status zckpt__write_file_synced(const char *path, const char *text, size_t len)
{
    zoff_status st = ZOFF_OK;
    int fd = (int)ZOFF_SYS(open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd < 0) return zoff__err(fd, "create %s: %s", path, strerror(-fd));
    ZOFF_CHECK_GOTO(zckpt__pwrite_full(fd, text, len, 0, path), st, out);
    if (ZOFF_SYS(fsync(fd)) < 0) st = zoff__err(-errno, "fsync %s: %s", path, strerror(errno));
out:
    close(fd);
    return st;
}

/* Creates every missing directory of `path` (like mkdir -p). */
zoff_status zckpt__mkdir_p(const char *path)
{
    char buf[CKPT_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return zoff__err(-ENAMETOOLONG, "mkdir %s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return zoff__err(-errno, "mkdir %s: %s", buf, strerror(errno));
            *p = saved;
            if (saved == '\0') break;
        }
    }
    return ZOFF_OK;
}
