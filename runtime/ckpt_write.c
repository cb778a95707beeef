/*
 * ckpt_write.c — the streaming checkpoint writer: a temporary directory next to `<dir>`, the data
 * file preallocated with its safetensors header size fixed at open, tensors pwritten chunk by
 * chunk with a running crc32c each, then header, manifest, fsyncs and the atomic swap into place.
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

/* The directory part of a save: parent created, crash leftovers handled, `<dir>` checked, the
 * temporary directory `<dir>.tmp-<pid>` created (w->dir, parent, base, tmp set). */
static zoff_status prepare_dir(zckpt_writer *w, const char *dir)
{
    ZOFF_CHECK(zckpt__split_dir(dir, w->dir, w->parent, w->base));
    ZOFF_CHECK(zckpt__mkdir_p(w->parent));
    zckpt__recover_and_clean(w->dir, w->parent, w->base);
    struct stat sb;
    if (lstat(w->dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return zoff__err(-ENOTDIR, "checkpoint %s: exists and is not a directory", w->dir);
        if (!zckpt__has_manifest(w->dir) && !zckpt__dir_is_empty(w->dir))
            /* non-empty and not a checkpoint: never replace someone's directory */
            return zoff__err(-EEXIST,
                             "checkpoint %s: exists, is not empty and holds no %s; refusing to "
                             "replace it",
                             w->dir, ZCKPT_MANIFEST_FILE);
    }
    if (zckpt__path_fmt(w->tmp, sizeof w->tmp, "%s.tmp-%d", w->dir, (int)getpid()) != 0 ||
        zckpt__path_fmt(w->data_path, sizeof w->data_path, "%s/%s", w->tmp, ZCKPT_DATA_FILE) != 0) {
        w->tmp[0] = '\0';
        return zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", w->dir);
    }
    if (mkdir(w->tmp, 0755) != 0) {
        zoff_status st = zoff__err(-errno, "checkpoint: mkdir %s: %s", w->tmp, strerror(errno));
        w->tmp[0] = '\0';
        return st;
    }
    return ZOFF_OK;
}

/* A writer for these tensors without a file yet (offsets laid out back to back). */
static zoff_status writer_alloc(const char *dir, const zckpt_tensor *tensors, size_t ntensors,
                                zckpt_writer **out)
{
    if (!dir || !out || (ntensors && !tensors))
        return zoff__err(ZOFF_EINVAL, "zckpt_writer_open: NULL argument");
    ZOFF_CHECK(check_tensors(tensors, ntensors));
    zckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the writer", dir);
    w->fd = -1;
    w->n = ntensors;
    w->format_version = ZCKPT_FORMAT_VERSION;
    w->ts = calloc(ntensors ? ntensors : 1, sizeof *w->ts);
    if (!w->ts) {
        free(w);
        return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate %zu tensor entries", dir,
                         ntensors);
    }
    for (size_t i = 0; i < ntensors; i++) {
        w->ts[i].t = tensors[i];
        w->ts[i].off = w->data_bytes;
        w->data_bytes += tensors[i].numel * 4;
    }
    *out = w;
    return ZOFF_OK;
}

/* Fixes the header size and creates w->data_path preallocated to its full size. */
static zoff_status create_data_file(zckpt_writer *w)
{
    zoff_status st = ZOFF_OK;
    /* Header size is fixed now: the tensors' part plus a reserve for __metadata__. */
    cJSON *h = zckpt__tensor_header(w);
    char *text = h ? cJSON_PrintUnformatted(h) : NULL;
    if (!text) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the safetensors header", w->dir);
        goto out;
    }
    uint64_t need = strlen(text) + CKPT_META_RESERVE;
    w->header_len = ZOFF_ALIGN_UP(8 + need, CKPT_DATA_ALIGN) - 8;
    if (w->header_len > CKPT_HEADER_MAX) {
        st = zoff__err(ZOFF_EINVAL,
                       "checkpoint %s: a header of %llu bytes for %zu tensors exceeds the %u "
                       "safetensors readers accept",
                       w->dir, (unsigned long long)w->header_len, w->n, CKPT_HEADER_MAX);
        goto out;
    }
    w->fd = (int)ZOFF_SYS(open(w->data_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (w->fd < 0) {
        st = zoff__err(w->fd, "checkpoint: create %s: %s", w->data_path, strerror(-w->fd));
        w->fd = -1;
        goto out;
    }
    w->own_file = 1;
    /* Reserve the whole file now so a full disk fails here, not after streaming the state. */
    uint64_t total = 8 + w->header_len + w->data_bytes;
    if (fallocate(w->fd, 0, 0, (off_t)total) != 0) {
        int e = errno;
        if (e == ENOSPC || e == EDQUOT || e == EFBIG) {
            char b[32];
            st = zoff__err(-e, "checkpoint: %s needs %s: %s", w->data_path,
                           zoff__fmt_bytes(total, b, sizeof b), strerror(e));
            goto out;
        }
        if (ftruncate(w->fd, (off_t)total) != 0) {
            st = zoff__err(-errno, "checkpoint: ftruncate %s to %llu: %s", w->data_path,
                           (unsigned long long)total, strerror(errno));
            goto out;
        }
    }
out:
    cJSON_free(text);
    cJSON_Delete(h);
    return st;
}

zoff_status zckpt_writer_open(const char *dir, const zckpt_tensor *tensors, size_t ntensors,
                              zckpt_writer **out)
{
    zoff_status st = ZOFF_OK;
    zckpt_writer *w = NULL;
    ZOFF_CHECK(writer_alloc(dir, tensors, ntensors, &w));
    ZOFF_CHECK_GOTO(prepare_dir(w, dir), st, fail);
    ZOFF_CHECK_GOTO(create_data_file(w), st, fail);
    ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: writing %zu tensors (%llu bytes) into %s", w->dir,
              ntensors, (unsigned long long)w->data_bytes, w->tmp);
    *out = w;
    zckpt__fault_point("open", 0);
    return ZOFF_OK;
fail:
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
    zoff_status st = zckpt__pwrite_full(w->fd, data, bytes, off, w->data_path);
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
    zckpt__fault_point("chunk", ++w->chunks);
    return ZOFF_OK;
}

/* Every tensor complete, the metadata storable, the header (with its __metadata__ copy) written
 * and the data file fsynced. */
static zoff_status write_header_and_sync(zckpt_writer *w, const zckpt_meta *meta)
{
    zoff_status st = ZOFF_OK;
    char *header = NULL;
    if (w->err) return w->err;
    for (size_t i = 0; i < w->n; i++)
        if (w->ts[i].written != w->ts[i].t.numel)
            return zoff__err(ZOFF_ESTATE,
                             "checkpoint %s: tensor \"%s\" has %llu of its %llu elements written",
                             w->dir, w->ts[i].t.name, (unsigned long long)w->ts[i].written,
                             (unsigned long long)w->ts[i].t.numel);
    ZOFF_CHECK(zckpt__check_meta(w, meta));
    zckpt__now_iso(w->created, sizeof w->created);
    ZOFF_CHECK(zckpt__build_header(w, meta, w->created, &header));
    w->header_crc = zoff__crc32c(0, header, 8 + w->header_len);
    st = zckpt__pwrite_full(w->fd, header, 8 + w->header_len, 0, w->data_path);
    free(header);
    if (st < 0) return st;
    zckpt__fault_point("header", 0);
    if (ZOFF_SYS(fsync(w->fd)) < 0)
        return zoff__err(-errno, "checkpoint: fsync %s: %s", w->data_path, strerror(errno));
    return ZOFF_OK;
}

zoff_status zckpt_writer_commit(zckpt_writer *w, const zckpt_meta *meta)
{
    zoff_status st = ZOFF_OK;
    char *manifest = NULL;
    if (!w) return zoff__err(ZOFF_EINVAL, "zckpt_writer_commit: NULL writer");
    if (!meta) {
        st = zoff__err(ZOFF_EINVAL, "zckpt_writer_commit: NULL meta");
        goto out;
    }
    ZOFF_CHECK_GOTO(write_header_and_sync(w, meta), st, out);
    close(w->fd);
    w->fd = -1;
    zckpt__fault_point("synced", 0);

    ZOFF_CHECK_GOTO(zckpt__build_manifest(w, meta, w->created, &manifest), st, out);
    char mpath[CKPT_PATH_MAX];
    zckpt__path_fmt(mpath, sizeof mpath, "%s/%s", w->tmp,
                    ZCKPT_MANIFEST_FILE); /* fits: checked at open */
    ZOFF_CHECK_GOTO(zckpt__write_file_synced(mpath, manifest, strlen(manifest)), st, out);
    ZOFF_CHECK_GOTO(zckpt__fsync_path(w->tmp, 1), st, out);
    zckpt__fault_point("manifest", 0);

    ZOFF_CHECK_GOTO(zckpt__swap_into_place(w), st, out);
    ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: saved step %lld, %zu tensors", w->dir,
              (long long)meta->step, w->n);
out:
    cJSON_free(manifest);
    zckpt_writer_abort(w); /* frees; removes the temporary directory if still there */
    return st;
}

void zckpt_writer_abort(zckpt_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp[0])
        zckpt__remove_dir(w->tmp);
    else if (w->own_file && w->data_path[0])
        unlink(w->data_path); /* a rank's slice file: the directory is rank 0's */
    free(w->ts);
    free(w);
}

void zckpt__now_iso(char *out, size_t len)
{
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tmv);
}

/* ---- several ranks: one slice file per rank, the manifest by rank 0 ------------------------- */
void zckpt_slice_file_name(int rank, char *out, size_t len)
{
    snprintf(out, len, "optimizer.rank%05d.safetensors", rank);
}

zoff_status zckpt_slices_tmp_path(const char *dir, long pid, char *out, size_t len)
{
    char norm[CKPT_PATH_MAX], parent[CKPT_PATH_MAX], base[CKPT_PATH_MAX];
    ZOFF_CHECK(zckpt__split_dir(dir, norm, parent, base));
    if (zckpt__path_fmt(out, len, "%s.tmp-%ld", norm, pid) != 0)
        return zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", norm);
    return ZOFF_OK;
}

zoff_status zckpt_slices_begin(const char *dir, long *pid)
{
    zckpt_writer *w = NULL;
    ZOFF_CHECK(writer_alloc(dir, NULL, 0, &w));
    zoff_status st = prepare_dir(w, dir);
    if (st == ZOFF_OK) {
        *pid = (long)getpid();
        w->tmp[0] = '\0'; /* stays: the ranks write into it */
        zckpt__fault_point("open", 0);
    }
    zckpt_writer_abort(w);
    return st;
}

zoff_status zckpt_slice_writer_open(const char *dir, const char *tmp, int rank,
                                    const zckpt_tensor *pieces, size_t n, zckpt_writer **out)
{
    zoff_status st = ZOFF_OK;
    zckpt_writer *w = NULL;
    char name[64];
    ZOFF_CHECK(writer_alloc(dir, pieces, n, &w));
    w->format_version = ZCKPT_FORMAT_SLICED;
    zckpt_slice_file_name(rank, name, sizeof name);
    if (zckpt__path_fmt(w->dir, sizeof w->dir, "%s", dir) != 0 ||
        zckpt__path_fmt(w->data_path, sizeof w->data_path, "%s/%s", tmp, name) != 0) {
        st = zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", dir);
        goto fail;
    }
    ZOFF_CHECK_GOTO(create_data_file(w), st, fail);
    *out = w;
    return ZOFF_OK;
fail:
    zckpt_writer_abort(w);
    return st;
}

zoff_status zckpt_slice_writer_finish(zckpt_writer *w, const zckpt_meta *meta, uint64_t *offsets,
                                      uint32_t *crcs, zckpt_file_rec *rec)
{
    zoff_status st = ZOFF_OK;
    if (!w) return zoff__err(ZOFF_EINVAL, "zckpt_slice_writer_finish: NULL writer");
    ZOFF_CHECK_GOTO(write_header_and_sync(w, meta), st, out);
    for (size_t i = 0; i < w->n; i++) {
        offsets[i] = w->ts[i].off;
        crcs[i] = w->ts[i].crc;
    }
    rec->bytes = 8 + w->header_len + w->data_bytes;
    rec->header_crc = w->header_crc;
    w->own_file = 0; /* done: the directory's owner keeps or removes it */
    zckpt__fault_point("synced", 0);
out:
    zckpt_writer_abort(w);
    return st;
}

zoff_status zckpt_slices_commit(const char *dir, const char *tmp, const zckpt_tensor *tensors,
                                size_t ntensors, const zckpt_meta *meta,
                                const zckpt_file_rec *files, int nfiles, const zckpt_slice *slices,
                                size_t nslices)
{
    zoff_status st = ZOFF_OK;
    char *manifest = NULL;
    zckpt_writer *w = NULL;
    ZOFF_CHECK(writer_alloc(dir, NULL, 0, &w));
    if (zckpt__split_dir(dir, w->dir, w->parent, w->base) != 0 ||
        zckpt__path_fmt(w->tmp, sizeof w->tmp, "%s", tmp) != 0) {
        w->tmp[0] = '\0';
        st = zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", dir);
        zckpt_slices_abort(tmp);
        goto out;
    }
    ZOFF_CHECK_GOTO(zckpt__check_meta(w, meta), st, out);
    char created[32];
    zckpt__now_iso(created, sizeof created);
    ZOFF_CHECK_GOTO(zckpt__build_manifest_sliced(w->dir, tensors, ntensors, meta, created, files,
                                                 nfiles, slices, nslices, &manifest),
                    st, out);
    char mpath[CKPT_PATH_MAX];
    if (zckpt__path_fmt(mpath, sizeof mpath, "%s/%s", w->tmp, ZCKPT_MANIFEST_FILE) != 0) {
        st = zoff__err(-ENAMETOOLONG, "checkpoint %s: path too long", dir);
        goto out;
    }
    ZOFF_CHECK_GOTO(zckpt__write_file_synced(mpath, manifest, strlen(manifest)), st, out);
    ZOFF_CHECK_GOTO(zckpt__fsync_path(w->tmp, 1), st, out);
    zckpt__fault_point("manifest", 0);
    ZOFF_CHECK_GOTO(zckpt__swap_into_place(w), st, out);
    ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: saved step %lld, %zu tensors in %d rank files", w->dir,
              (long long)meta->step, ntensors, nfiles);
out:
    cJSON_free(manifest);
    zckpt_writer_abort(w); /* removes the temporary directory if still there */
    return st;
}

void zckpt_slices_abort(const char *tmp)
{
    if (tmp && tmp[0]) zckpt__remove_dir(tmp);
}
