/*
 * swapdir.c — the swap store's filesystem side. Owns: per-run directories (made under a
 * temporary ".zoff-init-*" name, their lock file flock'ed, then renamed to the run name, so a
 * "zoff-swap-*" directory is locked from the moment it is visible), reclaim of directories whose
 * lock nobody holds (a crashed or killed run), the O_DIRECT probe, preallocation (fallocate,
 * posix_fallocate, ftruncate + zero writes) and the free-space query.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "nvme/aio_internal.h"
#include "nvme/swap_internal.h"

/* Unlinks the regular files directly inside dir (a run directory holds nothing else). */
static void remove_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    int dfd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (unlinkat(dfd, de->d_name, 0) != 0 && errno != ENOENT)
            ZOFF_INFO(ZOFF_SUB_NVME, "cannot remove %s/%s: %s", dir, de->d_name, strerror(errno));
    }
    closedir(d);
}

/* 1 if dir's lock file could be taken (the run that made dir is gone), 0 if a live process
 * holds it or it cannot be judged. On 1 the lock is held through *lock_fd. */
static int lock_is_free(const char *dir, int is_init_dir, int *lock_fd)
{
    char lock[ZOFF_PATH_MAX + 16];
    snprintf(lock, sizeof lock, "%s/%s", dir, ZSWAP_LOCK_NAME);
    *lock_fd = -1;
    int fd = (int)ZOFF_SYS(open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (fd < 0) {
        /* A run directory is renamed into place with its lock file inside: one without it was
         * damaged by hand. An init directory without one may be a run being born: leave it. */
        return fd == -ENOENT && !is_init_dir;
    }
    if (ZOFF_SYS(flock(fd, LOCK_EX | LOCK_NB)) < 0) {
        close(fd);
        return 0;
    }
    *lock_fd = fd;
    return 1;
}

int zswap__reclaim_stale(const char *base)
{
    DIR *d = opendir(base);
    if (!d) return 0;
    int reclaimed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int is_run = !strncmp(de->d_name, ZSWAP_DIR_PREFIX, strlen(ZSWAP_DIR_PREFIX));
        int is_init = !strncmp(de->d_name, ZSWAP_INIT_PREFIX, strlen(ZSWAP_INIT_PREFIX));
        if (!is_run && !is_init) continue;
        char dir[ZOFF_PATH_MAX];
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", base, de->d_name) >= sizeof dir) continue;
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        int lock_fd;
        if (!lock_is_free(dir, is_init, &lock_fd)) continue;
        remove_files_in(dir); /* the lock file too: the open fd keeps the lock meanwhile */
        if (rmdir(dir) == 0) {
            reclaimed++;
            ZOFF_INFO(ZOFF_SUB_NVME,
                      "reclaimed stale swap directory %s (its run no longer holds the lock)", dir);
        } else {
            ZOFF_INFO(ZOFF_SUB_NVME, "stale swap directory %s: rmdir: %s", dir, strerror(errno));
        }
        if (lock_fd >= 0) close(lock_fd);
    }
    closedir(d);
    return reclaimed;
}

zoff_status zswap__rundir_create(const char *base, const char *name, zswap_rundir *d)
{
    static int counter;
    zoff_status st = ZOFF_OK;
    char tmp[ZOFF_PATH_MAX], final[ZOFF_PATH_MAX], lock[ZOFF_PATH_MAX + 16];
    int fd = -1, made_tmp = 0;
    memset(d, 0, sizeof *d);
    d->lock_fd = -1;
    int n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    if ((size_t)snprintf(final, sizeof final, "%s/%s", base, name) >= sizeof final ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/" ZSWAP_INIT_PREFIX "%d-%d", base, (int)getpid(),
                         n) >= sizeof tmp) {
        return zoff__err(-ENAMETOOLONG, "swap directory name under %s too long", base);
    }
    long rc = ZOFF_SYS(mkdir(tmp, 0700));
    if (rc < 0) {
        st = zoff__err((zoff_status)rc, "create swap directory %s: %s", tmp, strerror((int)-rc));
        goto out;
    }
    made_tmp = 1;
    snprintf(lock, sizeof lock, "%s/%s", tmp, ZSWAP_LOCK_NAME);
    fd = (int)ZOFF_SYS(open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd < 0) {
        st = zoff__err(fd, "create lock file %s: %s", lock, strerror(-fd));
        goto out;
    }
    rc = ZOFF_SYS(flock(fd, LOCK_EX | LOCK_NB));
    if (rc < 0) {
        st = zoff__err((zoff_status)rc, "flock %s: %s", lock, strerror((int)-rc));
        goto out;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)len) != len) /* the pid is informational only */
        ZOFF_TRACE_LOG(ZOFF_SUB_NVME, "write %s: %s", lock, strerror(errno));
    /* A same-named directory of a dead run (a custom run_name) is reclaimed; a live one is an
     * error. */
    struct stat sb;
    if (lstat(final, &sb) == 0) {
        int old_fd;
        if (!S_ISDIR(sb.st_mode) || !lock_is_free(final, 0, &old_fd)) {
            st = zoff__err(-EEXIST, "swap directory %s exists and is in use by a live run", final);
            goto out;
        }
        remove_files_in(final);
        if (rmdir(final) == 0) ZOFF_INFO(ZOFF_SUB_NVME, "reclaimed stale swap directory %s", final);
        if (old_fd >= 0) close(old_fd);
    }
    rc = ZOFF_SYS(rename(tmp, final));
    if (rc < 0) {
        st = zoff__err((zoff_status)rc, "rename %s -> %s: %s", tmp, final, strerror((int)-rc));
        goto out;
    }
    made_tmp = 0;
    d->base = strdup(base);
    d->dir = strdup(final);
    if (!d->base || !d->dir) {
        /* The directory exists under its final name: remove it with the lock still held. */
        remove_files_in(final);
        rmdir(final);
        free(d->base);
        free(d->dir);
        d->base = d->dir = NULL;
        st = zoff__err(-ENOMEM, "swap directory: out of memory");
        goto out;
    }
    d->lock_fd = fd;
    fd = -1;
out:
    if (made_tmp) {
        remove_files_in(tmp);
        rmdir(tmp);
    }
    if (fd >= 0) close(fd);
    return st;
}

void zswap__rundir_remove(zswap_rundir *d)
{
    if (!d) return;
    if (d->dir) {
        remove_files_in(d->dir);
        if (rmdir(d->dir) != 0)
            ZOFF_WARN(ZOFF_SUB_NVME, "cannot remove swap directory %s: %s", d->dir,
                      strerror(errno));
    }
    if (d->lock_fd >= 0) close(d->lock_fd);
    free(d->base);
    free(d->dir);
    d->base = d->dir = NULL;
    d->lock_fd = -1;
}

zoff_status zswap__probe_odirect(const char *dir, int *ok)
{
    static int counter;
    char path[ZOFF_PATH_MAX];
    int n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    if ((size_t)snprintf(path, sizeof path, "%s/.zoff-odirect-probe-%d-%d", dir, (int)getpid(),
                         n) >= sizeof path)
        return zoff__err(-ENAMETOOLONG, "O_DIRECT probe: path under %s too long", dir);
    zoff_status st = ZOFF_OK;
    void *buf = NULL;
    int fd = (int)ZOFF_SYS(open(path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600));
    if (fd == -EINVAL) {
        /* Linux creates the file before it refuses O_DIRECT: remove it. */
        unlink(path);
        *ok = 0;
        return ZOFF_OK;
    }
    if (fd < 0) return zoff__err(fd, "O_DIRECT probe: open %s: %s", path, strerror(-fd));
    if (posix_memalign(&buf, 4096, 4096) != 0) {
        st = zoff__err(-ENOMEM, "O_DIRECT probe: out of memory");
        goto out;
    }
    memset(buf, 0, 4096);
    long w = ZOFF_SYS(pwrite(fd, buf, 4096, 0));
    if (w == 4096)
        *ok = 1;
    else if (w == -EINVAL)
        *ok = 0;
    else
        st = zoff__err(w < 0 ? (zoff_status)w : ZOFF_ESHORTIO, "O_DIRECT probe: write %s: %s", path,
                       w < 0 ? strerror((int)-w) : "short write");
out:
    free(buf);
    close(fd);
    unlink(path);
    return st;
}

zoff_status zswap__preallocate(int fd, const char *path, uint64_t bytes)
{
    if (bytes == 0) return ZOFF_OK;
    long rc = ZOFF_SYS(fallocate(fd, 0, 0, (off_t)bytes));
    if (rc == 0) return ZOFF_OK;
    if (rc != -EOPNOTSUPP && rc != -ENOSYS)
        return zoff__err((zoff_status)rc, "fallocate %s (%" PRIu64 " bytes): %s", path, bytes,
                         strerror((int)-rc));
    ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_NVME,
                  "fallocate not supported for %s: trying posix_fallocate", path);
    int prc = posix_fallocate(fd, 0, (off_t)bytes);
    if (prc == 0) return ZOFF_OK;
    if (prc != EOPNOTSUPP && prc != ENOSYS && prc != EINVAL)
        return zoff__err(-prc, "posix_fallocate %s (%" PRIu64 " bytes): %s", path, bytes,
                         strerror(prc));
    ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_NVME,
                  "posix_fallocate not supported for %s: writing zeros", path);
    rc = ZOFF_SYS(ftruncate(fd, (off_t)bytes));
    if (rc < 0)
        return zoff__err((zoff_status)rc, "ftruncate %s (%" PRIu64 " bytes): %s", path, bytes,
                         strerror((int)-rc));
    /* Write real zeros so the blocks are allocated now, not at the first swap-out. The fd may
     * be O_DIRECT: use an aligned buffer and aligned lengths (the file size is 4 KiB padded). */
    const size_t chunk = ZOFF_MIB;
    void *zeros = NULL;
    if (posix_memalign(&zeros, 4096, chunk) != 0)
        return zoff__err(-ENOMEM, "preallocate %s: out of memory", path);
    memset(zeros, 0, chunk);
    zoff_status st = ZOFF_OK;
    for (uint64_t off = 0; off < bytes;) {
        size_t n = (size_t)ZOFF_MIN((uint64_t)chunk, bytes - off);
        long w = ZOFF_SYS(pwrite(fd, zeros, n, (off_t)off));
        if (w <= 0) {
            st = zoff__err(w < 0 ? (zoff_status)w : ZOFF_ESHORTIO,
                           "preallocate %s: write at offset %" PRIu64 ": %s", path, off,
                           w < 0 ? strerror((int)-w) : "no progress");
            break;
        }
        off += (uint64_t)w;
    }
    free(zeros);
    return st;
}

zoff_status zswap_free_bytes(const char *dir, uint64_t *out)
{
    if (!dir || !out) return zoff__err(ZOFF_EINVAL, "zswap_free_bytes: NULL argument");
    struct statvfs sv;
    long rc = ZOFF_SYS(statvfs(dir, &sv));
    if (rc < 0) return zoff__err((zoff_status)rc, "statvfs %s: %s", dir, strerror((int)-rc));
    *out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return ZOFF_OK;
}

zoff_status zswap_probe(const char *dir, int *odirect, int *uring)
{
    if (!dir) return zoff__err(ZOFF_EINVAL, "zswap_probe: NULL dir");
    if (odirect) ZOFF_CHECK(zswap__probe_odirect(dir, odirect));
    if (uring) *uring = zaio__uring_probe() == 0;
    return ZOFF_OK;
}
