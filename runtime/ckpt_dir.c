/*
 * ckpt_dir.c — the checkpoint directory: splitting `<dir>` into parent and base name, finding and
 * cleaning the leftovers of interrupted saves (`<dir>.tmp-<pid>`, `<dir>.old-<pid>`), and moving
 * a finished checkpoint into place atomically (renameat2 RENAME_EXCHANGE, or rename-aside where
 * the filesystem lacks it). docs/checkpoints.md states the recovery rules.
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
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "runtime/ckpt_int.h"
#include "runtime/config.h"

/* Removes a checkpoint-like directory: its regular files, then the directory. Leaves anything
 * else (subdirectories) in place and says so. Returns 0 when the directory is gone. */
int zckpt__remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    if (rmdir(path) != 0) {
        int e = errno;
        ZOFF_WARN(ZOFF_SUB_CKPT, "checkpoint: cannot remove %s: %s (left in place)", path,
                  strerror(e));
        return -e;
    }
    return 0;
}

/* Splits a checkpoint path into parent directory and base name; strips trailing slashes. */
zoff_status zckpt__split_dir(const char *dir, char *norm, char *parent, char *base)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    if (n == 0 || n >= ZOFF_PATH_MAX)
        return zoff__err(ZOFF_EINVAL, "checkpoint directory \"%s\": empty or too long", dir);
    memcpy(norm, dir, n);
    norm[n] = '\0';
    const char *slash = strrchr(norm, '/');
    const char *b = slash ? slash + 1 : norm;
    if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
        return zoff__err(ZOFF_EINVAL,
                         "checkpoint directory \"%s\": must name a directory (not \"/\", \".\" or "
                         "\"..\")",
                         dir);
    zckpt__path_fmt(base, CKPT_PATH_MAX, "%s", b);
    if (!slash)
        zckpt__path_fmt(parent, CKPT_PATH_MAX, ".");
    else if (slash == norm)
        zckpt__path_fmt(parent, CKPT_PATH_MAX, "/");
    else
        zckpt__path_fmt(parent, CKPT_PATH_MAX, "%.*s", (int)(slash - norm), norm);
    return ZOFF_OK;
}

/* If `name` is "<base><tag><digits>", returns the pid, else 0. */
static pid_t leftover_pid(const char *name, const char *base, const char *tag)
{
    size_t bl = strlen(base), tl = strlen(tag);
    if (strncmp(name, base, bl) != 0 || strncmp(name + bl, tag, tl) != 0) return 0;
    const char *digits = name + bl + tl;
    if (!*digits) return 0;
    long v = 0;
    for (const char *p = digits; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > 100000000) return 0;
        v = v * 10 + (*p - '0');
    }
    return (pid_t)v;
}

static int pid_alive(pid_t pid)
{
    if (pid == getpid()) return 0; /* a leftover of this process is not in use (one writer) */
    return kill(pid, 0) == 0 || errno == EPERM;
}

int zckpt__dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    int empty = 1;
    struct dirent *de;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

int zckpt__has_manifest(const char *dir)
{
    char p[CKPT_PATH_MAX];
    return zckpt__path_fmt(p, sizeof p, "%s/%s", dir, ZCKPT_MANIFEST_FILE) == 0 &&
           access(p, F_OK) == 0;
}

/* The newest "<base>.old-<pid>" next to a missing <dir> that holds a manifest (into out);
 * with dead_only, only those of processes that are gone. */
int zckpt__find_recoverable(const char *parent, const char *base, int dead_only, char *out,
                            size_t len)
{
    DIR *d = opendir(parent);
    if (!d) return 0;
    struct dirent *de;
    time_t best_t = 0;
    int found = 0;
    while ((de = readdir(d)) != NULL) {
        pid_t pid = leftover_pid(de->d_name, base, ".old-");
        if (!pid || (dead_only && pid_alive(pid))) continue;
        char p[CKPT_PATH_MAX];
        char m[CKPT_PATH_MAX];
        struct stat sb;
        if (zckpt__path_fmt(p, sizeof p, "%s/%s", parent, de->d_name) != 0 ||
            zckpt__path_fmt(m, sizeof m, "%s/%s", p, ZCKPT_MANIFEST_FILE) != 0 || stat(m, &sb) != 0)
            continue;
        if (!found || sb.st_mtime > best_t) {
            best_t = sb.st_mtime;
            zckpt__path_fmt(out, len, "%s", p);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Before a save: puts back a checkpoint stranded at <dir>.old-<pid> by a crash between the two
 * renames of the fallback path, then removes leftovers of dead processes. */
void zckpt__recover_and_clean(const char *norm, const char *parent, const char *base)
{
    struct stat sb;
    if (lstat(norm, &sb) != 0 && errno == ENOENT) {
        char old[CKPT_PATH_MAX];
        if (zckpt__find_recoverable(parent, base, 1, old,
                                    sizeof old)) { /* not a save in progress */
            if (rename(old, norm) == 0)
                ZOFF_WARN(ZOFF_SUB_CKPT,
                          "checkpoint %s: restored the previous checkpoint from %s (a save was "
                          "interrupted)",
                          norm, old);
        }
    }
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        pid_t pid = leftover_pid(de->d_name, base, ".tmp-");
        if (!pid) pid = leftover_pid(de->d_name, base, ".old-");
        if (!pid) continue;
        char p[CKPT_PATH_MAX];
        if (zckpt__path_fmt(p, sizeof p, "%s/%s", parent, de->d_name) != 0) continue;
        if (pid_alive(pid)) {
            ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint: %s belongs to running process %d; left alone", p,
                      (int)pid);
            continue;
        }
        if (zckpt__remove_dir(p) == 0)
            ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint: removed leftover %s of an interrupted save", p);
    }
    closedir(d);
}

/* Moves the finished temporary directory to w->dir (see ckpt.h for the crash behaviour). */
zoff_status zckpt__swap_into_place(zckpt_writer *w)
{
    struct stat sb;
    int exists = lstat(w->dir, &sb) == 0;
    if (!exists && errno != ENOENT)
        return zoff__err(-errno, "checkpoint: lstat %s: %s", w->dir, strerror(errno));
    if (exists && (!S_ISDIR(sb.st_mode) || !zckpt__has_manifest(w->dir))) {
        /* only an empty directory may stand where no checkpoint was */
        if (!S_ISDIR(sb.st_mode) || (rmdir(w->dir) != 0 && errno != ENOENT))
            return zoff__err(-EEXIST,
                             "checkpoint %s: exists and is not a zoff checkpoint; refusing to "
                             "replace it",
                             w->dir);
        exists = 0;
    }
    if (!exists) {
        if (rename(w->tmp, w->dir) != 0)
            return zoff__err(-errno, "checkpoint: rename %s -> %s: %s", w->tmp, w->dir,
                             strerror(errno));
        w->tmp[0] = '\0';
        ZOFF_CHECK(zckpt__fsync_path(w->parent, 1));
        zckpt__fault_point("swapped", 0);
        return ZOFF_OK;
    }
    if (zckpt__exchange_enabled()) {
        if (renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->dir, RENAME_EXCHANGE) == 0) {
            /* the temporary name now holds the previous checkpoint: a leftover from here on
             * (removed below, or by the next save if this process dies first) */
            char prev[CKPT_PATH_MAX];
            memcpy(prev, w->tmp, sizeof prev);
            w->tmp[0] = '\0';
            ZOFF_CHECK(zckpt__fsync_path(w->parent, 1));
            zckpt__fault_point("swapped", 0);
            zckpt__remove_dir(prev);
            return ZOFF_OK;
        }
        if (errno == ENOENT) { /* the old one vanished meanwhile: plain rename below */
        } else if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
            return zoff__err(-errno, "checkpoint: renameat2(RENAME_EXCHANGE) %s <-> %s: %s", w->tmp,
                             w->dir, strerror(errno));
        } else {
            ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_CKPT,
                          "checkpoint: RENAME_EXCHANGE unsupported here; using rename-aside");
        }
    }
    char old[CKPT_PATH_MAX];
    if (zckpt__path_fmt(old, sizeof old, "%s.old-%d", w->dir, (int)getpid()) != 0)
        return zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", w->dir);
    int aside = 0;
    if (rename(w->dir, old) == 0)
        aside = 1;
    else if (errno != ENOENT)
        return zoff__err(-errno, "checkpoint: rename %s -> %s: %s", w->dir, old, strerror(errno));
    if (aside) zckpt__fault_point("aside", 0);
    if (rename(w->tmp, w->dir) != 0) {
        zoff_status st =
            zoff__err(-errno, "checkpoint: rename %s -> %s: %s", w->tmp, w->dir, strerror(errno));
        if (aside && rename(old, w->dir) != 0)
            ZOFF_WARN(ZOFF_SUB_CKPT, "checkpoint: the previous checkpoint stays at %s", old);
        return st;
    }
    w->tmp[0] = '\0';
    ZOFF_CHECK(zckpt__fsync_path(w->parent, 1));
    zckpt__fault_point("swapped", 0);
    if (aside) zckpt__remove_dir(old);
    return ZOFF_OK;
}

/* ---- target check and lock ------------------------------------------------------------------ */
uint64_t zckpt_bytes_for(uint64_t ntensors, uint64_t total_numel)
{
    /* header: ~160 bytes of JSON per tensor plus the metadata reserve, page aligned */
    uint64_t header = ZOFF_ALIGN_UP(8 + ntensors * 256 + CKPT_META_RESERVE, CKPT_DATA_ALIGN);
    return header + total_numel * 4 + 64 * 1024; /* + the manifest */
}

static int lock_path(const char *dir, char *out, size_t len)
{
    char norm[CKPT_PATH_MAX], parent[CKPT_PATH_MAX], base[CKPT_PATH_MAX];
    if (zckpt__split_dir(dir, norm, parent, base) != ZOFF_OK) return -1;
    return zckpt__path_fmt(out, len, "%s/.%s.zoff-lock", parent, base);
}

zoff_status zckpt_target_check(const char *dir, uint64_t need_bytes, int *lock_fd)
{
    char norm[CKPT_PATH_MAX], parent[CKPT_PATH_MAX], base[CKPT_PATH_MAX];
    if (!dir) return zoff__err(ZOFF_EINVAL, "zckpt_target_check: NULL dir");
    if (lock_fd) *lock_fd = -1;
    ZOFF_CHECK(zckpt__split_dir(dir, norm, parent, base));
    zoff_status st = zckpt__mkdir_p(parent);
    if (st < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        return zoff__err(st, "checkpoint %s: cannot create its parent directory: %s", norm, msg);
    }
    if (access(parent, W_OK | X_OK) != 0) {
        int e = errno;
        return zoff__err(-e, "checkpoint %s: its directory %s is not writable: %s%s", norm, parent,
                         strerror(e), e == EROFS ? " (read-only filesystem)" : "");
    }
    struct stat sb;
    if (lstat(norm, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return zoff__err(-ENOTDIR, "checkpoint %s: exists and is not a directory", norm);
        if (!zckpt__has_manifest(norm) && !zckpt__dir_is_empty(norm))
            return zoff__err(-EEXIST,
                             "checkpoint %s: exists, is not empty and is not a zoff checkpoint "
                             "(no %s); it would never be replaced: choose another directory",
                             norm, ZCKPT_MANIFEST_FILE);
    }
    struct statvfs sv;
    if (statvfs(parent, &sv) == 0 && sv.f_blocks > 0) {
        uint64_t free_bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
        if (free_bytes < need_bytes) {
            char a[32], b[32];
            return zoff__err(ZOFF_ENOFIT,
                             "checkpoint %s: a checkpoint takes %s and is written beside the "
                             "previous one before that is removed, but %s is free under %s",
                             norm, zoff__fmt_bytes(need_bytes, a, sizeof a),
                             zoff__fmt_bytes(free_bytes, b, sizeof b), parent);
        }
    }
    if (!lock_fd) return ZOFF_OK;
    char lp[CKPT_PATH_MAX];
    if (lock_path(dir, lp, sizeof lp) != 0)
        return zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", norm);
    int fd = (int)ZOFF_SYS(open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (fd < 0) return zoff__err(fd, "checkpoint %s: lock file %s: %s", norm, lp, strerror(-fd));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "?";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK)
            return zoff__err(-EBUSY,
                             "checkpoint %s: another run (pid %s) is writing checkpoints there "
                             "(lock %s); two runs would overwrite each other's: use another "
                             "directory",
                             norm, pid[0] ? pid : "?", lp);
        return zoff__err(-e, "checkpoint %s: lock %s: %s", norm, lp, strerror(e));
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint: cannot write the pid into %s", lp);
    *lock_fd = fd;
    return ZOFF_OK;
}

void zckpt_target_unlock(const char *dir, int lock_fd)
{
    if (lock_fd < 0) return;
    char lp[CKPT_PATH_MAX];
    if (dir && lock_path(dir, lp, sizeof lp) == 0) unlink(lp); /* still ours: we hold it */
    close(lock_fd);
}
