/*
 * ckpt.c — checkpoint files behind runtime/ckpt.h: the streaming writer (temporary directory,
 * safetensors header written with all offsets known at open, data pwritten chunk by chunk with a
 * running crc32c per tensor, manifest, fsyncs, atomic swap into place, cleanup of crash
 * leftovers) and the reader (manifest vs safetensors header vs file size, sequential chunked
 * reads checked against the manifest crc32c, whole-file verification). Owns the files of one
 * checkpoint directory while a writer or reader is open; the only process-wide state is the
 * test fault hook. docs/checkpoints.md describes the format and the recovery rules.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "runtime/config.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints store little-endian fp32 and are written straight from memory"
#endif

#define CKPT_PATH_MAX     4096
#define CKPT_META_RESERVE (64 * 1024)          /* header bytes reserved for __metadata__ */
#define CKPT_HEADER_MAX   (100u * 1024 * 1024) /* safetensors readers refuse larger headers */
#define CKPT_MANIFEST_MAX (256u * 1024 * 1024) /* larger manifests are refused */
#define CKPT_DATA_ALIGN   4096                 /* data section starts on a page boundary */
#define CKPT_KICK_BYTES   (64u * 1024 * 1024)  /* start writeback every this many bytes */
#define CKPT_VERIFY_CHUNK (8u * 1024 * 1024)   /* bytes per read in zckpt_reader_verify */
#define CKPT_AHEAD_BYTES  (64u * 1024 * 1024)  /* read-ahead hint after a zckpt_reader_read */
#define EXTRA_MAX         ((size_t)sizeof(((zckpt_meta *)0)->extra_json))

/* ------------------------------------------------------------------------------------------ */
/* Test hooks                                                                                 */
/* ------------------------------------------------------------------------------------------ */
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

static void fault_point(const char *point, uint64_t count)
{
    zckpt_fault_fn fn = __atomic_load_n(&g_fault_fn, __ATOMIC_ACQUIRE);
    if (fn) fn(point, count, __atomic_load_n(&g_fault_arg, __ATOMIC_RELAXED));
}

/* ------------------------------------------------------------------------------------------ */
/* File helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */
static zoff_status pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *path)
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

static zoff_status pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path)
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

static zoff_status fsync_path(const char *path, int directory)
{
    int fd = (int)ZOFF_SYS(open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)));
    if (fd < 0) return zoff__err(fd, "open %s for fsync: %s", path, strerror(-fd));
    zoff_status st = ZOFF_OK;
    if (ZOFF_SYS(fsync(fd)) < 0) st = zoff__err(-errno, "fsync %s: %s", path, strerror(errno));
    close(fd);
    return st;
}

/* snprintf for paths: 0, or -ENAMETOOLONG when the result would not fit. */
static int path_fmt(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int path_fmt(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* Reads a whole (small) file into a NUL-terminated buffer. */
static zoff_status read_text(const char *path, size_t max_bytes, char **out, size_t *len)
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
    ZOFF_CHECK_GOTO(pread_full(fd, buf, (size_t)sb.st_size, 0, path), st, out);
    buf[sb.st_size] = '\0';
    *len = (size_t)sb.st_size;
    *out = buf;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

static zoff_status write_file_synced(const char *path, const char *text, size_t len)
{
    zoff_status st = ZOFF_OK;
    int fd = (int)ZOFF_SYS(open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd < 0) return zoff__err(fd, "create %s: %s", path, strerror(-fd));
    ZOFF_CHECK_GOTO(pwrite_full(fd, text, len, 0, path), st, out);
    if (ZOFF_SYS(fsync(fd)) < 0) st = zoff__err(-errno, "fsync %s: %s", path, strerror(errno));
out:
    close(fd);
    return st;
}

/* Creates every missing directory of `path` (like mkdir -p). */
static zoff_status mkdir_p(const char *path)
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

/* Removes a checkpoint-like directory: its regular files, then the directory. Leaves anything
 * else (subdirectories) in place and says so. Returns 0 when the directory is gone. */
static int remove_ckpt_dir(const char *path)
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
static zoff_status split_dir(const char *dir, char *norm, char *parent, char *base)
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
    path_fmt(base, CKPT_PATH_MAX, "%s", b);
    if (!slash)
        path_fmt(parent, CKPT_PATH_MAX, ".");
    else if (slash == norm)
        path_fmt(parent, CKPT_PATH_MAX, "/");
    else
        path_fmt(parent, CKPT_PATH_MAX, "%.*s", (int)(slash - norm), norm);
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

static int dir_is_empty(const char *path)
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

static int has_manifest(const char *dir)
{
    char p[CKPT_PATH_MAX];
    return path_fmt(p, sizeof p, "%s/%s", dir, ZCKPT_MANIFEST_FILE) == 0 && access(p, F_OK) == 0;
}

/* The newest "<base>.old-<pid>" next to a missing <dir> that holds a manifest (into out);
 * with dead_only, only those of processes that are gone. */
static int find_recoverable(const char *parent, const char *base, int dead_only, char *out,
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
        if (path_fmt(p, sizeof p, "%s/%s", parent, de->d_name) != 0 ||
            path_fmt(m, sizeof m, "%s/%s", p, ZCKPT_MANIFEST_FILE) != 0 || stat(m, &sb) != 0)
            continue;
        if (!found || sb.st_mtime > best_t) {
            best_t = sb.st_mtime;
            path_fmt(out, len, "%s", p);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Before a save: puts back a checkpoint stranded at <dir>.old-<pid> by a crash between the two
 * renames of the fallback path, then removes leftovers of dead processes. */
static void recover_and_clean(const char *norm, const char *parent, const char *base)
{
    struct stat sb;
    if (lstat(norm, &sb) != 0 && errno == ENOENT) {
        char old[CKPT_PATH_MAX];
        if (find_recoverable(parent, base, 1, old, sizeof old)) { /* not a save in progress */
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
        if (path_fmt(p, sizeof p, "%s/%s", parent, de->d_name) != 0) continue;
        if (pid_alive(pid)) {
            ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint: %s belongs to running process %d; left alone", p,
                      (int)pid);
            continue;
        }
        if (remove_ckpt_dir(p) == 0)
            ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint: removed leftover %s of an interrupted save", p);
    }
    closedir(d);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */
static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *skip_string(const char *p)
{
    p++; /* opening quote */
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) p++;
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *skip_value(const char *p)
{
    p = skip_ws(p);
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                if (!p) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && !isspace((unsigned char)*p)) p++;
    return p;
}

/* The exact text of the value of top-level `key` in an object text already validated by cJSON
 * (so that a trainer's "extra" object comes back byte for byte, big integers included). */
static int find_top_value(const char *text, const char *key, const char **start, size_t *len)
{
    size_t kl = strlen(key);
    const char *p = skip_ws(text);
    if (*p != '{') return 0;
    p++;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"') return 0;
        const char *k = p + 1;
        const char *ke = skip_string(p);
        if (!ke) return 0;
        p = skip_ws(ke);
        if (*p != ':') return 0;
        p = skip_ws(p + 1);
        const char *ve = skip_value(p);
        if (!ve) return 0;
        if ((size_t)(ke - 1 - k) == kl && memcmp(k, key, kl) == 0) {
            *start = p;
            *len = (size_t)(ve - p);
            return 1;
        }
        p = skip_ws(ve);
        if (*p != ',') return 0;
        p++;
    }
}

static cJSON *group_json(const zoff_group_config *g)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *b = NULL;
    if (!cJSON_AddNumberToObject(o, "lr", zoff__float_json(g->lr)) ||
        !(b = cJSON_AddArrayToObject(o, "betas")) ||
        !cJSON_AddNumberToObject(o, "eps", zoff__float_json(g->eps)) ||
        !cJSON_AddNumberToObject(o, "weight_decay", zoff__float_json(g->weight_decay)) ||
        !cJSON_AddBoolToObject(o, "adam_w_mode", g->adamw_mode) ||
        !cJSON_AddBoolToObject(o, "bias_correction", g->bias_correction)) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToArray(b, cJSON_CreateNumber(zoff__float_json(g->beta1)));
    cJSON_AddItemToArray(b, cJSON_CreateNumber(zoff__float_json(g->beta2)));
    if (cJSON_GetArraySize(b) != 2) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *groups_json(const zckpt_meta *m)
{
    cJSON *a = cJSON_CreateArray();
    if (!a) return NULL;
    for (int i = 0; i < m->ngroups; i++) {
        cJSON *g = group_json(&m->groups[i]);
        if (!g) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, g);
    }
    return a;
}

/* ------------------------------------------------------------------------------------------ */
/* Writer                                                                                     */
/* ------------------------------------------------------------------------------------------ */
typedef struct wtensor {
    zckpt_tensor t;
    uint64_t off;     /* bytes from the start of the data section */
    uint64_t written; /* elements written */
    uint32_t crc;
} wtensor;

struct zckpt_writer {
    char dir[CKPT_PATH_MAX];    /* final location */
    char parent[CKPT_PATH_MAX]; /* its parent directory */
    char base[CKPT_PATH_MAX];   /* its last component */
    char tmp[CKPT_PATH_MAX];    /* <dir>.tmp-<pid> */
    char data_path[CKPT_PATH_MAX];
    int fd;
    size_t n;
    wtensor *ts;
    uint64_t header_len; /* JSON header bytes (padded); the data starts at 8 + header_len */
    uint64_t data_bytes;
    uint64_t chunks;
    uint64_t unkicked; /* bytes written since writeback was last started */
    zoff_status err;   /* first failure of a write: commit refuses */
};

/* The safetensors header object without metadata. */
static cJSON *tensor_header(const zckpt_writer *w)
{
    cJSON *h = cJSON_CreateObject();
    if (!h) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->ts[i];
        cJSON *e = cJSON_CreateObject();
        cJSON *shape = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        if (!e || !shape || !offs) {
            cJSON_Delete(e);
            cJSON_Delete(shape);
            cJSON_Delete(offs);
            cJSON_Delete(h);
            return NULL;
        }
        cJSON_AddItemToObject(h, t->t.name, e);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->t.numel));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(t->off + t->t.numel * 4)));
        cJSON_AddItemToObject(e, "data_offsets", offs);
    }
    return h;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(((const wtensor *)a)->t.name, ((const wtensor *)b)->t.name);
}

static zoff_status check_tensors(const zckpt_tensor *tensors, size_t n)
{
    zoff_status st = ZOFF_OK;
    wtensor *sorted = calloc(n ? n : 1, sizeof *sorted);
    if (!sorted) return zoff__err(-ENOMEM, "checkpoint: cannot allocate %zu tensor entries", n);
    for (size_t i = 0; i < n; i++) {
        const zckpt_tensor *t = &tensors[i];
        if (!memchr(t->name, '\0', sizeof t->name) || !t->name[0] ||
            !strcmp(t->name, "__metadata__")) {
            st = zoff__err(ZOFF_EINVAL,
                           "checkpoint: tensor %zu has an empty, unterminated or reserved name", i);
            goto out;
        }
        if (t->numel > ((uint64_t)1 << 60)) {
            st = zoff__err(ZOFF_EINVAL, "checkpoint: tensor \"%s\" numel %llu is too large",
                           t->name, (unsigned long long)t->numel);
            goto out;
        }
        sorted[i].t = *t;
    }
    qsort(sorted, n, sizeof *sorted, cmp_names);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(sorted[i].t.name, sorted[i - 1].t.name)) {
            st = zoff__err(ZOFF_EINVAL, "checkpoint: tensor name \"%s\" appears twice",
                           sorted[i].t.name);
            goto out;
        }
    }
out:
    free(sorted);
    return st;
}

zoff_status zckpt_writer_open(const char *dir, const zckpt_tensor *tensors, size_t ntensors,
                              zckpt_writer **out)
{
    zoff_status st = ZOFF_OK;
    cJSON *h = NULL;
    char *text = NULL;
    if (!dir || !out || (ntensors && !tensors))
        return zoff__err(ZOFF_EINVAL, "zckpt_writer_open: NULL argument");
    ZOFF_CHECK(check_tensors(tensors, ntensors));

    zckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the writer", dir);
    w->fd = -1;
    w->n = ntensors;
    w->ts = calloc(ntensors ? ntensors : 1, sizeof *w->ts);
    if (!w->ts) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate %zu tensor entries", dir, ntensors);
        goto fail;
    }
    ZOFF_CHECK_GOTO(split_dir(dir, w->dir, w->parent, w->base), st, fail);
    for (size_t i = 0; i < ntensors; i++) {
        w->ts[i].t = tensors[i];
        w->ts[i].off = w->data_bytes;
        w->data_bytes += tensors[i].numel * 4;
    }

    ZOFF_CHECK_GOTO(mkdir_p(w->parent), st, fail);
    recover_and_clean(w->dir, w->parent, w->base);
    struct stat sb;
    if (lstat(w->dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            st = zoff__err(-ENOTDIR, "checkpoint %s: exists and is not a directory", w->dir);
            goto fail;
        }
        if (!has_manifest(w->dir) && !dir_is_empty(w->dir)) {
            /* non-empty and not a checkpoint: never replace someone's directory */
            st = zoff__err(-EEXIST,
                           "checkpoint %s: exists, is not empty and holds no %s; refusing to "
                           "replace it",
                           w->dir, ZCKPT_MANIFEST_FILE);
            goto fail;
        }
    }

    if (path_fmt(w->tmp, sizeof w->tmp, "%s.tmp-%d", w->dir, (int)getpid()) != 0 ||
        path_fmt(w->data_path, sizeof w->data_path, "%s/%s", w->tmp, ZCKPT_DATA_FILE) != 0) {
        st = zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", w->dir);
        w->tmp[0] = '\0';
        goto fail;
    }
    if (mkdir(w->tmp, 0755) != 0) {
        st = zoff__err(-errno, "checkpoint: mkdir %s: %s", w->tmp, strerror(errno));
        w->tmp[0] = '\0';
        goto fail;
    }

    /* Header size is fixed now: the tensors' part plus a reserve for __metadata__. */
    h = tensor_header(w);
    text = h ? cJSON_PrintUnformatted(h) : NULL;
    if (!text) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the safetensors header", w->dir);
        goto fail;
    }
    uint64_t need = strlen(text) + CKPT_META_RESERVE;
    w->header_len = ZOFF_ALIGN_UP(8 + need, CKPT_DATA_ALIGN) - 8;
    if (w->header_len > CKPT_HEADER_MAX) {
        st = zoff__err(ZOFF_EINVAL,
                       "checkpoint %s: a header of %llu bytes for %zu tensors exceeds the %u "
                       "safetensors readers accept",
                       w->dir, (unsigned long long)w->header_len, ntensors, CKPT_HEADER_MAX);
        goto fail;
    }

    w->fd = (int)ZOFF_SYS(open(w->data_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (w->fd < 0) {
        st = zoff__err(w->fd, "checkpoint: create %s: %s", w->data_path, strerror(-w->fd));
        w->fd = -1;
        goto fail;
    }
    /* Reserve the whole file now so a full disk fails here, not after streaming the state. */
    uint64_t total = 8 + w->header_len + w->data_bytes;
    if (fallocate(w->fd, 0, 0, (off_t)total) != 0) {
        int e = errno;
        if (e == ENOSPC || e == EDQUOT) {
            char b[32];
            st = zoff__err(-e, "checkpoint: %s needs %s: %s", w->data_path,
                           zoff__fmt_bytes(total, b, sizeof b), strerror(e));
            goto fail;
        }
        if (ftruncate(w->fd, (off_t)total) != 0) {
            st = zoff__err(-errno, "checkpoint: ftruncate %s to %llu: %s", w->data_path,
                           (unsigned long long)total, strerror(errno));
            goto fail;
        }
    }
    cJSON_free(text);
    cJSON_Delete(h);
    ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: writing %zu tensors (%llu bytes) into %s", w->dir,
              ntensors, (unsigned long long)w->data_bytes, w->tmp);
    *out = w;
    fault_point("open", 0);
    return ZOFF_OK;
fail:
    cJSON_free(text);
    cJSON_Delete(h);
    zckpt_writer_abort(w);
    return st;
}

zoff_status zckpt_writer_write(zckpt_writer *w, size_t idx, const float *data, uint64_t numel)
{
    if (!w) return zoff__err(ZOFF_EINVAL, "zckpt_writer_write: NULL writer");
    if (w->err) return w->err;
    if (idx >= w->n)
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: tensor index %zu out of range (%zu tensors)",
                         w->dir, idx, w->n);
    wtensor *t = &w->ts[idx];
    if (numel > t->t.numel - t->written)
        return zoff__err(ZOFF_EINVAL,
                         "checkpoint %s: tensor \"%s\": writing %llu elements after %llu overruns "
                         "its %llu",
                         w->dir, t->t.name, (unsigned long long)numel,
                         (unsigned long long)t->written, (unsigned long long)t->t.numel);
    if (numel == 0) return ZOFF_OK;
    if (!data) return zoff__err(ZOFF_EINVAL, "zckpt_writer_write: NULL data");
    size_t bytes = (size_t)numel * 4;
    uint64_t off = 8 + w->header_len + t->off + t->written * 4;
    zoff_status st = pwrite_full(w->fd, data, bytes, off, w->data_path);
    if (st < 0) {
        w->err = st;
        return st;
    }
    t->crc = zoff__crc32c(t->crc, data, bytes);
    t->written += numel;
    w->unkicked += bytes;
    if (w->unkicked >= CKPT_KICK_BYTES) { /* keep dirty pages bounded: start writeback early */
        sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        w->unkicked = 0;
    }
    fault_point("chunk", ++w->chunks);
    return ZOFF_OK;
}

/* The full header text padded with spaces to exactly header_len bytes (caller frees). */
static zoff_status build_header(zckpt_writer *w, const zckpt_meta *m, const char *created,
                                char **out)
{
    zoff_status st = ZOFF_OK;
    char *text = NULL, *groups = NULL, *padded = NULL;
    cJSON *h = tensor_header(w);
    cJSON *md = cJSON_CreateObject();
    cJSON *ga = groups_json(m);
    if (!h || !md || !ga || !(groups = cJSON_PrintUnformatted(ga))) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the safetensors header", w->dir);
        goto out;
    }
    char num[64];
    cJSON_AddStringToObject(md, "format", "zoff");
    snprintf(num, sizeof num, "%d", ZCKPT_FORMAT_VERSION);
    cJSON_AddStringToObject(md, "format_version", num);
    cJSON_AddStringToObject(md, "zoff_version", zoff_version());
    cJSON_AddStringToObject(md, "created", created);
    snprintf(num, sizeof num, "%lld", (long long)m->step);
    cJSON_AddStringToObject(md, "step", num);
    snprintf(num, sizeof num, "%.9g", (double)m->loss_scale);
    cJSON_AddStringToObject(md, "loss_scale", num);
    snprintf(num, sizeof num, "%lld", (long long)m->scaler_good_steps);
    cJSON_AddStringToObject(md, "scaler_good_steps", num);
    snprintf(num, sizeof num, "%d", m->scaler_hysteresis);
    cJSON_AddStringToObject(md, "scaler_hysteresis", num);
    cJSON_AddStringToObject(md, "groups", groups);
    if (m->extra_json[0]) cJSON_AddStringToObject(md, "extra", m->extra_json);
    for (int attempt = 0; attempt < 2; attempt++) {
        cJSON *full = cJSON_CreateObject();
        if (!full) {
            st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the header", w->dir);
            goto out;
        }
        cJSON_AddItemReferenceToObject(full, "__metadata__", md);
        for (cJSON *e = h->child; e; e = e->next)
            cJSON_AddItemReferenceToObject(full, e->string, e);
        text = cJSON_PrintUnformatted(full);
        cJSON_Delete(full);
        if (!text) {
            st = zoff__err(-ENOMEM, "checkpoint %s: cannot print the header", w->dir);
            goto out;
        }
        if (strlen(text) <= w->header_len) break;
        /* Cannot happen with the reserve's bound; keep the manifest as the only copy. */
        ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: groups/extra left out of __metadata__ (size)",
                  w->dir);
        cJSON_free(text);
        text = NULL;
        cJSON_DeleteItemFromObject(md, "groups");
        cJSON_DeleteItemFromObject(md, "extra");
    }
    if (!text) {
        st = zoff__err(ZOFF_EINTERNAL, "checkpoint %s: header larger than its reserve", w->dir);
        goto out;
    }
    padded = malloc(8 + w->header_len);
    if (!padded) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the header", w->dir);
        goto out;
    }
    uint64_t hl = w->header_len;
    for (int i = 0; i < 8; i++) padded[i] = (char)((hl >> (8 * i)) & 0xff);
    size_t tl = strlen(text);
    memcpy(padded + 8, text, tl);
    memset(padded + 8 + tl, ' ', w->header_len - tl);
    *out = padded;
    padded = NULL;
out:
    free(padded);
    cJSON_free(text);
    cJSON_free(groups);
    cJSON_Delete(ga);
    cJSON_Delete(md);
    cJSON_Delete(h);
    return st;
}

static zoff_status build_manifest(zckpt_writer *w, const zckpt_meta *m, const char *created,
                                  char **out)
{
    zoff_status st = ZOFF_OK;
    cJSON *root = cJSON_CreateObject();
    cJSON *ga = groups_json(m);
    cJSON *ta = cJSON_CreateArray();
    if (!root || !ga || !ta) goto nomem;
    cJSON_AddStringToObject(root, "format", "zoff-checkpoint");
    cJSON_AddNumberToObject(root, "format_version", ZCKPT_FORMAT_VERSION);
    cJSON_AddStringToObject(root, "zoff_version", zoff_version());
    cJSON_AddStringToObject(root, "created", created);
    cJSON_AddNumberToObject(root, "step", (double)m->step);
    cJSON_AddNumberToObject(root, "loss_scale", zoff__float_json(m->loss_scale));
    cJSON_AddNumberToObject(root, "scaler_good_steps", (double)m->scaler_good_steps);
    cJSON_AddNumberToObject(root, "scaler_hysteresis", m->scaler_hysteresis);
    cJSON_AddItemToObject(root, "groups", ga);
    ga = NULL;
    cJSON_AddStringToObject(root, "data_file", ZCKPT_DATA_FILE);
    cJSON_AddNumberToObject(root, "data_bytes", (double)(8 + w->header_len + w->data_bytes));
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->ts[i];
        cJSON *e = cJSON_CreateObject();
        if (!e) goto nomem;
        cJSON_AddItemToArray(ta, e);
        cJSON_AddStringToObject(e, "name", t->t.name);
        cJSON_AddNumberToObject(e, "numel", (double)t->t.numel);
        cJSON_AddNumberToObject(e, "offset", (double)t->off);
        cJSON_AddNumberToObject(e, "crc32c", t->crc);
    }
    cJSON_AddItemToObject(root, "tensors", ta);
    ta = NULL;
    if (m->extra_json[0])
        cJSON_AddRawToObject(root, "extra", m->extra_json);
    else
        cJSON_AddNullToObject(root, "extra");
    *out = cJSON_Print(root);
    if (!*out) goto nomem;
    cJSON_Delete(root);
    return ZOFF_OK;
nomem:
    st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the manifest", w->dir);
    cJSON_Delete(root);
    cJSON_Delete(ga);
    cJSON_Delete(ta);
    return st;
}

static zoff_status check_meta(const zckpt_writer *w, const zckpt_meta *m)
{
    if (m->ngroups < 0 || m->ngroups > ZOFF_MAX_GROUPS)
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: ngroups %d outside [0, %d]", w->dir,
                         m->ngroups, ZOFF_MAX_GROUPS);
    if (!isfinite(m->loss_scale))
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: loss_scale %g is not finite", w->dir,
                         (double)m->loss_scale);
    for (int i = 0; i < m->ngroups; i++) {
        const zoff_group_config *g = &m->groups[i];
        if (!isfinite(g->lr) || !isfinite(g->beta1) || !isfinite(g->beta2) || !isfinite(g->eps) ||
            !isfinite(g->weight_decay))
            return zoff__err(ZOFF_EINVAL, "checkpoint %s: group %d has a non-finite value", w->dir,
                             i);
    }
    if (!memchr(m->extra_json, '\0', EXTRA_MAX))
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: extra JSON is not NUL-terminated within %zu",
                         w->dir, EXTRA_MAX);
    if (m->extra_json[0]) {
        cJSON *x = cJSON_ParseWithOpts(m->extra_json, NULL, 1);
        int ok = x && cJSON_IsObject(x);
        cJSON_Delete(x);
        if (!ok)
            return zoff__err(ZOFF_EINVAL, "checkpoint %s: extra is not a JSON object: %.60s",
                             w->dir, m->extra_json);
    }
    return ZOFF_OK;
}

/* Moves the finished temporary directory to w->dir (see ckpt.h for the crash behaviour). */
static zoff_status swap_into_place(zckpt_writer *w)
{
    struct stat sb;
    int exists = lstat(w->dir, &sb) == 0;
    if (!exists && errno != ENOENT)
        return zoff__err(-errno, "checkpoint: lstat %s: %s", w->dir, strerror(errno));
    if (exists && (!S_ISDIR(sb.st_mode) || !has_manifest(w->dir))) {
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
        ZOFF_CHECK(fsync_path(w->parent, 1));
        fault_point("swapped", 0);
        return ZOFF_OK;
    }
    if (!__atomic_load_n(&g_no_exchange, __ATOMIC_RELAXED)) {
        if (renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->dir, RENAME_EXCHANGE) == 0) {
            /* the temporary name now holds the previous checkpoint: a leftover from here on
             * (removed below, or by the next save if this process dies first) */
            char prev[CKPT_PATH_MAX];
            memcpy(prev, w->tmp, sizeof prev);
            w->tmp[0] = '\0';
            ZOFF_CHECK(fsync_path(w->parent, 1));
            fault_point("swapped", 0);
            remove_ckpt_dir(prev);
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
    if (path_fmt(old, sizeof old, "%s.old-%d", w->dir, (int)getpid()) != 0)
        return zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", w->dir);
    int aside = 0;
    if (rename(w->dir, old) == 0)
        aside = 1;
    else if (errno != ENOENT)
        return zoff__err(-errno, "checkpoint: rename %s -> %s: %s", w->dir, old, strerror(errno));
    if (aside) fault_point("aside", 0);
    if (rename(w->tmp, w->dir) != 0) {
        zoff_status st =
            zoff__err(-errno, "checkpoint: rename %s -> %s: %s", w->tmp, w->dir, strerror(errno));
        if (aside && rename(old, w->dir) != 0)
            ZOFF_WARN(ZOFF_SUB_CKPT, "checkpoint: the previous checkpoint stays at %s", old);
        return st;
    }
    w->tmp[0] = '\0';
    ZOFF_CHECK(fsync_path(w->parent, 1));
    fault_point("swapped", 0);
    if (aside) remove_ckpt_dir(old);
    return ZOFF_OK;
}

zoff_status zckpt_writer_commit(zckpt_writer *w, const zckpt_meta *meta)
{
    zoff_status st = ZOFF_OK;
    char *header = NULL, *manifest = NULL;
    if (!w) return zoff__err(ZOFF_EINVAL, "zckpt_writer_commit: NULL writer");
    if (!meta) {
        st = zoff__err(ZOFF_EINVAL, "zckpt_writer_commit: NULL meta");
        goto out;
    }
    if (w->err) {
        st = w->err;
        goto out;
    }
    for (size_t i = 0; i < w->n; i++) {
        if (w->ts[i].written != w->ts[i].t.numel) {
            st = zoff__err(ZOFF_ESTATE,
                           "checkpoint %s: tensor \"%s\" has %llu of its %llu elements written",
                           w->dir, w->ts[i].t.name, (unsigned long long)w->ts[i].written,
                           (unsigned long long)w->ts[i].t.numel);
            goto out;
        }
    }
    ZOFF_CHECK_GOTO(check_meta(w, meta), st, out);

    char created[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);

    ZOFF_CHECK_GOTO(build_header(w, meta, created, &header), st, out);
    ZOFF_CHECK_GOTO(pwrite_full(w->fd, header, 8 + w->header_len, 0, w->data_path), st, out);
    fault_point("header", 0);
    if (ZOFF_SYS(fsync(w->fd)) < 0) {
        st = zoff__err(-errno, "checkpoint: fsync %s: %s", w->data_path, strerror(errno));
        goto out;
    }
    close(w->fd);
    w->fd = -1;
    fault_point("synced", 0);

    ZOFF_CHECK_GOTO(build_manifest(w, meta, created, &manifest), st, out);
    char mpath[CKPT_PATH_MAX];
    path_fmt(mpath, sizeof mpath, "%s/%s", w->tmp, ZCKPT_MANIFEST_FILE); /* fits: checked at open */
    ZOFF_CHECK_GOTO(write_file_synced(mpath, manifest, strlen(manifest)), st, out);
    ZOFF_CHECK_GOTO(fsync_path(w->tmp, 1), st, out);
    fault_point("manifest", 0);

    ZOFF_CHECK_GOTO(swap_into_place(w), st, out);
    ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: saved step %lld, %zu tensors", w->dir,
              (long long)meta->step, w->n);
out:
    free(header);
    cJSON_free(manifest);
    zckpt_writer_abort(w); /* frees; removes the temporary directory if still there */
    return st;
}

void zckpt_writer_abort(zckpt_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp[0]) remove_ckpt_dir(w->tmp);
    free(w->ts);
    free(w);
}

/* ------------------------------------------------------------------------------------------ */
/* Reader                                                                                     */
/* ------------------------------------------------------------------------------------------ */
typedef struct rtensor {
    zckpt_tensor t;
    uint64_t off; /* bytes from the start of the data section */
    uint32_t crc; /* expected, from the manifest */
    uint64_t pos; /* elements read so far */
    uint32_t run; /* crc of what was read */
} rtensor;

struct zckpt_reader {
    char dir[CKPT_PATH_MAX]; /* directory read */
    char data_path[CKPT_PATH_MAX];
    int fd;
    uint64_t data_start;          /* 8 + header length */
    uint64_t manifest_data_bytes; /* file size the manifest recorded (0: not recorded) */
    size_t n;
    rtensor *ts;
    size_t *by_name; /* indices sorted by name */
    zckpt_meta meta;
    zckpt_info info;
};

static zoff_status ferr(const zckpt_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static zoff_status ferr(const zckpt_reader *r, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return zoff__err(ZOFF_EFORMAT, "checkpoint %s: %s", r->dir, msg);
}

/* A number field of the manifest: integral when `integral`, within [lo, hi]. */
static int json_num(const cJSON *obj, const char *key, int integral, double lo, double hi,
                    double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return 0;
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (integral && x != floor(x))) return 0;
    *out = x;
    return 1;
}

static zoff_status parse_group(zckpt_reader *r, const cJSON *g, int i, zoff_group_config *out)
{
    double lr, eps, wd;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(g, "betas");
    const cJSON *aw = cJSON_GetObjectItemCaseSensitive(g, "adam_w_mode");
    const cJSON *bc = cJSON_GetObjectItemCaseSensitive(g, "bias_correction");
    if (!cJSON_IsObject(g) || !json_num(g, "lr", 0, 0, HUGE_VAL, &lr) ||
        !json_num(g, "eps", 0, 0, HUGE_VAL, &eps) ||
        !json_num(g, "weight_decay", 0, 0, HUGE_VAL, &wd) || !cJSON_IsArray(b) ||
        cJSON_GetArraySize(b) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(b, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(b, 1)) || !cJSON_IsBool(aw) || !cJSON_IsBool(bc))
        return ferr(r, "%s: groups[%d] is malformed", ZCKPT_MANIFEST_FILE, i);
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->lr = (float)lr;
    out->eps = (float)eps;
    out->weight_decay = (float)wd;
    out->beta1 = (float)cJSON_GetArrayItem(b, 0)->valuedouble;
    out->beta2 = (float)cJSON_GetArrayItem(b, 1)->valuedouble;
    out->adamw_mode = cJSON_IsTrue(aw);
    out->bias_correction = cJSON_IsTrue(bc);
    return ZOFF_OK;
}

static zoff_status parse_manifest(zckpt_reader *r, const char *text)
{
    zoff_status st = ZOFF_OK;
    double x;
    cJSON *root = cJSON_ParseWithOpts(text, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        st = ferr(r, "%s is not a valid JSON object", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    if (!json_num(root, "format_version", 1, -1e9, 1e9, &x)) {
        st = ferr(r, "%s: \"format_version\" missing or not an integer", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    r->info.format_version = (int)x;
    if (x < 1 || x > ZCKPT_FORMAT_VERSION) {
        st = ferr(r, "format_version %d is not supported by zoff %s (it reads 1 to %d)", (int)x,
                  zoff_version(), ZCKPT_FORMAT_VERSION);
        goto out;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "zoff_version");
    snprintf(r->info.zoff_version, sizeof r->info.zoff_version, "%s",
             cJSON_IsString(s) ? s->valuestring : "?");
    s = cJSON_GetObjectItemCaseSensitive(root, "created");
    snprintf(r->info.created, sizeof r->info.created, "%s",
             cJSON_IsString(s) ? s->valuestring : "?");
    if (cJSON_GetObjectItemCaseSensitive(root, "data_bytes")) {
        if (!json_num(root, "data_bytes", 1, 8, 0x1p62, &x)) {
            st = ferr(r, "%s: \"data_bytes\" is not a size", ZCKPT_MANIFEST_FILE);
            goto out;
        }
        r->manifest_data_bytes = (uint64_t)x;
    }
    s = cJSON_GetObjectItemCaseSensitive(root, "data_file");
    if (s && (!cJSON_IsString(s) || strcmp(s->valuestring, ZCKPT_DATA_FILE) != 0)) {
        st = ferr(r, "%s: data_file must be \"%s\"", ZCKPT_MANIFEST_FILE, ZCKPT_DATA_FILE);
        goto out;
    }

    zckpt_meta *m = &r->meta;
    if (!json_num(root, "step", 1, -9.0e15, 9.0e15, &x)) {
        st = ferr(r, "%s: \"step\" missing or not an integer", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->step = (int64_t)x;
    if (!json_num(root, "loss_scale", 0, -HUGE_VAL, HUGE_VAL, &x)) {
        st = ferr(r, "%s: \"loss_scale\" missing or not a number", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->loss_scale = (float)x;
    if (!json_num(root, "scaler_good_steps", 1, -9.0e15, 9.0e15, &x)) {
        st = ferr(r, "%s: \"scaler_good_steps\" missing or not an integer", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->scaler_good_steps = (int64_t)x;
    if (!json_num(root, "scaler_hysteresis", 1, -2147483648.0, 2147483647.0, &x)) {
        st = ferr(r, "%s: \"scaler_hysteresis\" missing or not an integer", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->scaler_hysteresis = (int)x;

    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    if (!cJSON_IsArray(groups) || cJSON_GetArraySize(groups) > ZOFF_MAX_GROUPS) {
        st = ferr(r, "%s: \"groups\" missing or longer than %d", ZCKPT_MANIFEST_FILE,
                  ZOFF_MAX_GROUPS);
        goto out;
    }
    m->ngroups = cJSON_GetArraySize(groups);
    for (int i = 0; i < m->ngroups; i++)
        ZOFF_CHECK_GOTO(parse_group(r, cJSON_GetArrayItem(groups, i), i, &m->groups[i]), st, out);

    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
    m->extra_json[0] = '\0';
    if (extra && !cJSON_IsNull(extra)) {
        const char *at;
        size_t len;
        if (!cJSON_IsObject(extra) || !find_top_value(text, "extra", &at, &len)) {
            st = ferr(r, "%s: \"extra\" must be an object or null", ZCKPT_MANIFEST_FILE);
            goto out;
        }
        if (len >= EXTRA_MAX) {
            st = ferr(r, "%s: \"extra\" is %zu bytes (at most %zu)", ZCKPT_MANIFEST_FILE, len,
                      EXTRA_MAX - 1);
            goto out;
        }
        memcpy(m->extra_json, at, len);
        m->extra_json[len] = '\0';
    }

    const cJSON *ta = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsArray(ta)) {
        st = ferr(r, "%s: \"tensors\" missing or not an array", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    r->n = (size_t)cJSON_GetArraySize(ta);
    r->ts = calloc(r->n ? r->n : 1, sizeof *r->ts);
    if (!r->ts) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate %zu tensor entries", r->dir, r->n);
        goto out;
    }
    size_t i = 0;
    for (const cJSON *e = ta->child; e; e = e->next, i++) {
        rtensor *t = &r->ts[i];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        double numel, off, crc;
        if (!cJSON_IsString(name) || !name->valuestring[0] ||
            strlen(name->valuestring) >= ZCKPT_NAME_MAX ||
            !json_num(e, "numel", 1, 0, 0x1p60, &numel) ||
            !json_num(e, "offset", 1, 0, 0x1p62, &off) ||
            !json_num(e, "crc32c", 1, 0, 4294967295.0, &crc)) {
            st = ferr(r, "%s: tensors[%zu] is malformed (name, numel, offset, crc32c)",
                      ZCKPT_MANIFEST_FILE, i);
            goto out;
        }
        snprintf(t->t.name, sizeof t->t.name, "%s", name->valuestring);
        t->t.numel = (uint64_t)numel;
        t->off = (uint64_t)off;
        t->crc = (uint32_t)crc;
        r->info.total_numel += t->t.numel;
    }
out:
    cJSON_Delete(root);
    return st;
}

static int cmp_by_name(const void *a, const void *b, void *arg)
{
    const zckpt_reader *r = arg;
    return strcmp(r->ts[*(const size_t *)a].t.name, r->ts[*(const size_t *)b].t.name);
}

static int cmp_by_off(const void *a, const void *b, void *arg)
{
    const zckpt_reader *r = arg;
    uint64_t x = r->ts[*(const size_t *)a].off, y = r->ts[*(const size_t *)b].off;
    return x < y ? -1 : x > y;
}

/* Safetensors header vs manifest vs file size. */
static zoff_status check_data_file(zckpt_reader *r)
{
    zoff_status st = ZOFF_OK;
    char *htext = NULL;
    cJSON *h = NULL;
    size_t *order = NULL;
    struct stat sb;
    if (fstat(r->fd, &sb) != 0)
        return zoff__err(-errno, "checkpoint: fstat %s: %s", r->data_path, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size;
    r->info.data_bytes = size;
    if (size < 8)
        return ferr(r, "%s is %llu bytes: truncated", ZCKPT_DATA_FILE, (unsigned long long)size);
    uint8_t lenb[8];
    ZOFF_CHECK(pread_full(r->fd, lenb, 8, 0, r->data_path));
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
    if (hl < 2 || hl > CKPT_HEADER_MAX || hl > size - 8)
        return ferr(r,
                    "%s: header length %llu is impossible for a file of %llu bytes "
                    "(truncated or not safetensors)",
                    ZCKPT_DATA_FILE, (unsigned long long)hl, (unsigned long long)size);
    r->data_start = 8 + hl;
    htext = malloc(hl + 1);
    if (!htext)
        return zoff__err(-ENOMEM, "checkpoint: cannot allocate a %llu-byte header",
                         (unsigned long long)hl);
    ZOFF_CHECK_GOTO(pread_full(r->fd, htext, hl, 8, r->data_path), st, out);
    htext[hl] = '\0';
    h = cJSON_ParseWithOpts(htext, NULL, 1);
    if (!h || !cJSON_IsObject(h) || strlen(htext) != hl) {
        st = ferr(r, "%s: the header is not a JSON object", ZCKPT_DATA_FILE);
        goto out;
    }
    size_t nh = 0;
    for (const cJSON *e = h->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) nh++;
    if (nh != r->n) {
        st =
            ferr(r, "%s lists %zu tensors, %s %zu", ZCKPT_DATA_FILE, nh, ZCKPT_MANIFEST_FILE, r->n);
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        const rtensor *t = &r->ts[i];
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, t->t.name);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e)) {
            st = ferr(r, "tensor \"%s\" of the manifest is missing from %s", t->t.name,
                      ZCKPT_DATA_FILE);
            goto out;
        }
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0) {
            st = ferr(r, "tensor \"%s\": dtype is not \"F32\"", t->t.name);
            goto out;
        }
        uint64_t shape_numel = 1;
        int dims = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
        for (int d = 0; d < dims; d++) {
            const cJSON *x = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(x) || x->valuedouble < 0)
                dims = -1;
            else
                shape_numel *= (uint64_t)x->valuedouble;
        }
        if (dims < 0 || shape_numel != t->t.numel) {
            st = ferr(r, "tensor \"%s\": shape in %s does not hold the manifest's %llu elements",
                      t->t.name, ZCKPT_DATA_FILE, (unsigned long long)t->t.numel);
            goto out;
        }
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) ||
            (uint64_t)cJSON_GetArrayItem(of, 0)->valuedouble != t->off ||
            (uint64_t)cJSON_GetArrayItem(of, 1)->valuedouble != t->off + t->t.numel * 4) {
            st = ferr(r, "tensor \"%s\": data_offsets in %s disagree with the manifest", t->t.name,
                      ZCKPT_DATA_FILE);
            goto out;
        }
    }
    /* Data must tile [0, data bytes) exactly, and the file must hold all of it. */
    order = malloc((r->n ? r->n : 1) * sizeof *order);
    if (!order) {
        st = zoff__err(-ENOMEM, "checkpoint: cannot allocate");
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) order[i] = i;
    qsort_r(order, r->n, sizeof *order, cmp_by_off, r);
    uint64_t end = 0;
    for (size_t k = 0; k < r->n; k++) {
        const rtensor *t = &r->ts[order[k]];
        if (t->off != end) {
            st = ferr(r, "tensor \"%s\" starts at data byte %llu, expected %llu (overlap or gap)",
                      t->t.name, (unsigned long long)t->off, (unsigned long long)end);
            goto out;
        }
        end += t->t.numel * 4;
    }
    if (r->manifest_data_bytes && r->manifest_data_bytes != size) {
        st = ferr(r, "%s is %llu bytes, the manifest recorded %llu (%s)", ZCKPT_DATA_FILE,
                  (unsigned long long)size, (unsigned long long)r->manifest_data_bytes,
                  size < r->manifest_data_bytes ? "truncated" : "trailing bytes");
        goto out;
    }
    if (r->data_start + end != size) {
        st = ferr(r, "%s is %llu bytes, header and tensors need %llu (%s)", ZCKPT_DATA_FILE,
                  (unsigned long long)size, (unsigned long long)(r->data_start + end),
                  size < r->data_start + end ? "truncated" : "trailing bytes");
        goto out;
    }
out:
    free(order);
    cJSON_Delete(h);
    free(htext);
    return st;
}

zoff_status zckpt_reader_open(const char *dir, zckpt_reader **out)
{
    zoff_status st = ZOFF_OK;
    char *mtext = NULL;
    char parent[CKPT_PATH_MAX], base[CKPT_PATH_MAX];
    if (!dir || !out) return zoff__err(ZOFF_EINVAL, "zckpt_reader_open: NULL argument");
    zckpt_reader *r = calloc(1, sizeof *r);
    if (!r) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the reader", dir);
    r->fd = -1;
    ZOFF_CHECK_GOTO(split_dir(dir, r->dir, parent, base), st, fail);

    struct stat sb;
    if (stat(r->dir, &sb) != 0) {
        int e = errno;
        char old[CKPT_PATH_MAX];
        if (e == ENOENT && find_recoverable(parent, base, 0, old, sizeof old)) {
            ZOFF_WARN(ZOFF_SUB_CKPT,
                      "checkpoint %s: missing; reading %s, the previous checkpoint left by an "
                      "interrupted save",
                      r->dir, old);
            path_fmt(r->dir, sizeof r->dir, "%s", old);
            r->info.recovered = 1;
        } else {
            st = zoff__err(-e, "checkpoint %s: %s", r->dir, strerror(e));
            goto fail;
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        st = zoff__err(-ENOTDIR, "checkpoint %s: not a directory", r->dir);
        goto fail;
    }
    path_fmt(r->info.path, sizeof r->info.path, "%s", r->dir);

    char mpath[CKPT_PATH_MAX];
    size_t mlen = 0;
    path_fmt(mpath, sizeof mpath, "%s/%s", r->dir, ZCKPT_MANIFEST_FILE);
    path_fmt(r->data_path, sizeof r->data_path, "%s/%s", r->dir, ZCKPT_DATA_FILE);
    if (access(mpath, F_OK) != 0) {
        st = ferr(r, "no %s (not a zoff checkpoint)", ZCKPT_MANIFEST_FILE);
        goto fail;
    }
    ZOFF_CHECK_GOTO(read_text(mpath, CKPT_MANIFEST_MAX, &mtext, &mlen), st, fail);
    if (strlen(mtext) != mlen) {
        st = ferr(r, "%s contains a NUL byte", ZCKPT_MANIFEST_FILE);
        goto fail;
    }
    ZOFF_CHECK_GOTO(parse_manifest(r, mtext), st, fail);

    r->by_name = malloc((r->n ? r->n : 1) * sizeof *r->by_name);
    if (!r->by_name) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate", r->dir);
        goto fail;
    }
    for (size_t i = 0; i < r->n; i++) r->by_name[i] = i;
    qsort_r(r->by_name, r->n, sizeof *r->by_name, cmp_by_name, r);
    for (size_t k = 1; k < r->n; k++) {
        if (!strcmp(r->ts[r->by_name[k]].t.name, r->ts[r->by_name[k - 1]].t.name)) {
            st = ferr(r, "%s lists tensor \"%s\" twice", ZCKPT_MANIFEST_FILE,
                      r->ts[r->by_name[k]].t.name);
            goto fail;
        }
    }

    r->fd = (int)ZOFF_SYS(open(r->data_path, O_RDONLY | O_CLOEXEC));
    if (r->fd < 0) {
        st = r->fd == -ENOENT
                 ? ferr(r, "%s is missing", ZCKPT_DATA_FILE)
                 : zoff__err(r->fd, "checkpoint: open %s: %s", r->data_path, strerror(-r->fd));
        r->fd = -1;
        goto fail;
    }
    ZOFF_CHECK_GOTO(check_data_file(r), st, fail);
    free(mtext);
    *out = r;
    return ZOFF_OK;
fail:
    free(mtext);
    zckpt_reader_close(r);
    return st;
}

void zckpt_reader_close(zckpt_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r->ts);
    free(r->by_name);
    free(r);
}

zoff_status zckpt_reader_meta(const zckpt_reader *r, zckpt_meta *out)
{
    if (!r || !out) return zoff__err(ZOFF_EINVAL, "zckpt_reader_meta: NULL argument");
    *out = r->meta;
    return ZOFF_OK;
}

zoff_status zckpt_reader_info(const zckpt_reader *r, zckpt_info *out)
{
    if (!r || !out) return zoff__err(ZOFF_EINVAL, "zckpt_reader_info: NULL argument");
    *out = r->info;
    return ZOFF_OK;
}

size_t zckpt_reader_count(const zckpt_reader *r)
{
    return r ? r->n : 0;
}

const zckpt_tensor *zckpt_reader_tensor(const zckpt_reader *r, size_t idx)
{
    return (r && idx < r->n) ? &r->ts[idx].t : NULL;
}

zoff_status zckpt_reader_tensor_info(const zckpt_reader *r, size_t idx, uint64_t *file_offset,
                                     uint32_t *crc32c)
{
    if (!r || idx >= r->n)
        return zoff__err(ZOFF_EINVAL, "zckpt_reader_tensor_info: bad reader or index %zu", idx);
    if (file_offset) *file_offset = r->data_start + r->ts[idx].off;
    if (crc32c) *crc32c = r->ts[idx].crc;
    return ZOFF_OK;
}

zoff_status zckpt_reader_find(const zckpt_reader *r, const char *name, size_t *idx)
{
    if (!r || !name || !idx) return zoff__err(ZOFF_EINVAL, "zckpt_reader_find: NULL argument");
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->ts[r->by_name[mid]].t.name, name);
        if (c == 0) {
            *idx = r->by_name[mid];
            return ZOFF_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return zoff__err(ZOFF_ENOTFOUND, "checkpoint %s: no tensor \"%s\"", r->dir, name);
}

zoff_status zckpt_reader_rewind(zckpt_reader *r, size_t idx)
{
    if (!r || idx >= r->n)
        return zoff__err(ZOFF_EINVAL, "zckpt_reader_rewind: bad reader or index %zu", idx);
    r->ts[idx].pos = 0;
    r->ts[idx].run = 0;
    return ZOFF_OK;
}

static zoff_status crc_mismatch(const zckpt_reader *r, const rtensor *t, uint32_t got)
{
    return zoff__err(ZOFF_ECORRUPT,
                     "checkpoint %s: tensor \"%s\" is corrupt: crc32c 0x%08x, manifest says "
                     "0x%08x (%s bytes %llu..%llu)",
                     r->dir, t->t.name, got, t->crc, ZCKPT_DATA_FILE,
                     (unsigned long long)(r->data_start + t->off),
                     (unsigned long long)(r->data_start + t->off + t->t.numel * 4));
}

zoff_status zckpt_reader_read(zckpt_reader *r, size_t idx, float *data, uint64_t numel)
{
    if (!r || idx >= r->n)
        return zoff__err(ZOFF_EINVAL, "zckpt_reader_read: bad reader or index %zu", idx);
    rtensor *t = &r->ts[idx];
    if (numel > t->t.numel - t->pos)
        return zoff__err(ZOFF_EINVAL,
                         "checkpoint %s: tensor \"%s\": reading %llu elements after %llu overruns "
                         "its %llu",
                         r->dir, t->t.name, (unsigned long long)numel, (unsigned long long)t->pos,
                         (unsigned long long)t->t.numel);
    if (numel > 0) {
        if (!data) return zoff__err(ZOFF_EINVAL, "zckpt_reader_read: NULL data");
        size_t bytes = (size_t)numel * 4;
        uint64_t at = r->data_start + t->off + t->pos * 4;
        ZOFF_CHECK(pread_full(r->fd, data, bytes, at, r->data_path));
        /* start reading the next bytes of the file while the caller checks and uses these */
        posix_fadvise(r->fd, (off_t)(at + bytes), (off_t)ZOFF_MIN(bytes, (size_t)CKPT_AHEAD_BYTES),
                      POSIX_FADV_WILLNEED);
        t->run = zoff__crc32c(t->run, data, bytes);
        t->pos += numel;
    }
    if (t->pos == t->t.numel && t->run != t->crc) return crc_mismatch(r, t, t->run);
    return ZOFF_OK;
}

zoff_status zckpt_reader_verify(zckpt_reader *r)
{
    zoff_status st = ZOFF_OK;
    if (!r) return zoff__err(ZOFF_EINVAL, "zckpt_reader_verify: NULL reader");
    size_t *order = malloc((r->n ? r->n : 1) * sizeof *order);
    char *buf = malloc(CKPT_VERIFY_CHUNK);
    if (!order || !buf) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the verify buffer", r->dir);
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) order[i] = i;
    qsort_r(order, r->n, sizeof *order, cmp_by_off, r);
    posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t bad = 0;
    const rtensor *first_bad = NULL;
    uint32_t first_got = 0;
    for (size_t k = 0; k < r->n; k++) {
        const rtensor *t = &r->ts[order[k]];
        uint64_t left = t->t.numel * 4, off = r->data_start + t->off;
        uint32_t crc = 0;
        while (left > 0) {
            size_t n = (size_t)ZOFF_MIN(left, (uint64_t)CKPT_VERIFY_CHUNK);
            ZOFF_CHECK_GOTO(pread_full(r->fd, buf, n, off, r->data_path), st, out);
            crc = zoff__crc32c(crc, buf, n);
            off += n;
            left -= n;
        }
        if (crc != t->crc) {
            if (!first_bad) {
                first_bad = t;
                first_got = crc;
            }
            ZOFF_WARN(ZOFF_SUB_CKPT, "checkpoint %s: tensor \"%s\" crc32c 0x%08x != 0x%08x", r->dir,
                      t->t.name, crc, t->crc);
            bad++;
        }
    }
    if (first_bad) {
        crc_mismatch(r, first_bad, first_got);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        st = zoff__err(ZOFF_ECORRUPT, "%s; %zu of %zu tensors are corrupt", msg, bad, r->n);
    }
out:
    free(order);
    free(buf);
    return st;
}
