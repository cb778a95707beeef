/*
 * ckpt_read.c — the checkpoint reader: opens `<dir>` (or the `.old-<pid>` a crash left), checks
 * the manifest against the safetensors header and the file size, serves sequential chunked reads
 * checked against each tensor's crc32c, and verifies a whole checkpoint without touching state.
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
        return zckpt__ferr(r, "%s is %llu bytes: truncated", ZCKPT_DATA_FILE,
                           (unsigned long long)size);
    uint8_t lenb[8];
    ZOFF_CHECK(zckpt__pread_full(r->fd, lenb, 8, 0, r->data_path));
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
    if (hl < 2 || hl > CKPT_HEADER_MAX || hl > size - 8)
        return zckpt__ferr(r,
                           "%s: header length %llu is impossible for a file of %llu bytes "
                           "(truncated or not safetensors)",
                           ZCKPT_DATA_FILE, (unsigned long long)hl, (unsigned long long)size);
    r->data_start = 8 + hl;
    htext = malloc(hl + 1);
    if (!htext)
        return zoff__err(-ENOMEM, "checkpoint: cannot allocate a %llu-byte header",
                         (unsigned long long)hl);
    ZOFF_CHECK_GOTO(zckpt__pread_full(r->fd, htext, hl, 8, r->data_path), st, out);
    htext[hl] = '\0';
    h = cJSON_ParseWithOpts(htext, NULL, 1);
    if (!h || !cJSON_IsObject(h) || strlen(htext) != hl) {
        st = zckpt__ferr(r, "%s: the header is not a JSON object", ZCKPT_DATA_FILE);
        goto out;
    }
    if (r->has_header_crc) { /* every byte of the header, padding included */
        uint32_t crc = zoff__crc32c(zoff__crc32c(0, lenb, 8), htext, hl);
        if (crc != r->header_crc) {
            st = zoff__err(ZOFF_ECORRUPT,
                           "checkpoint %s: the safetensors header of %s (bytes 0..%llu) is "
                           "corrupt or was edited: crc32c %08x, the manifest says %08x",
                           r->dir, ZCKPT_DATA_FILE, (unsigned long long)(8 + hl), crc,
                           r->header_crc);
            goto out;
        }
    }
    ZOFF_CHECK_GOTO(
        zckpt__check_header_meta(r, cJSON_GetObjectItemCaseSensitive(h, "__metadata__")), st, out);
    size_t nh = 0;
    for (const cJSON *e = h->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) nh++;
    if (nh != r->n) {
        st = zckpt__ferr(r, "%s lists %zu tensors, %s %zu", ZCKPT_DATA_FILE, nh,
                         ZCKPT_MANIFEST_FILE, r->n);
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        const rtensor *t = &r->ts[i];
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, t->t.name);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e)) {
            st = zckpt__ferr(r, "tensor \"%s\" of the manifest is missing from %s", t->t.name,
                             ZCKPT_DATA_FILE);
            goto out;
        }
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0) {
            st = zckpt__ferr(r, "tensor \"%s\": dtype is not \"F32\"", t->t.name);
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
            st = zckpt__ferr(
                r, "tensor \"%s\": shape in %s does not hold the manifest's %llu elements",
                t->t.name, ZCKPT_DATA_FILE, (unsigned long long)t->t.numel);
            goto out;
        }
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) ||
            (uint64_t)cJSON_GetArrayItem(of, 0)->valuedouble != t->off ||
            (uint64_t)cJSON_GetArrayItem(of, 1)->valuedouble != t->off + t->t.numel * 4) {
            st = zckpt__ferr(r, "tensor \"%s\": data_offsets in %s disagree with the manifest",
                             t->t.name, ZCKPT_DATA_FILE);
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
            st = zckpt__ferr(
                r, "tensor \"%s\" starts at data byte %llu, expected %llu (overlap or gap)",
                t->t.name, (unsigned long long)t->off, (unsigned long long)end);
            goto out;
        }
        end += t->t.numel * 4;
    }
    if (r->manifest_data_bytes && r->manifest_data_bytes != size) {
        st = zckpt__ferr(r, "%s is %llu bytes, the manifest recorded %llu (%s)", ZCKPT_DATA_FILE,
                         (unsigned long long)size, (unsigned long long)r->manifest_data_bytes,
                         size < r->manifest_data_bytes ? "truncated" : "trailing bytes");
        goto out;
    }
    if (r->data_start + end != size) {
        st = zckpt__ferr(r, "%s is %llu bytes, header and tensors need %llu (%s)", ZCKPT_DATA_FILE,
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
    ZOFF_CHECK_GOTO(zckpt__split_dir(dir, r->dir, parent, base), st, fail);

    struct stat sb;
    if (stat(r->dir, &sb) != 0) {
        int e = errno;
        char old[CKPT_PATH_MAX];
        if (e == ENOENT && zckpt__find_recoverable(parent, base, 0, old, sizeof old)) {
            ZOFF_WARN(ZOFF_SUB_CKPT,
                      "checkpoint %s: missing; reading %s, the previous checkpoint left by an "
                      "interrupted save",
                      r->dir, old);
            zckpt__path_fmt(r->dir, sizeof r->dir, "%s", old);
            r->info.recovered = 1;
        } else {
            st = zoff__err(-e, "checkpoint %s: %s", r->dir, strerror(e));
            goto fail;
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        st = zoff__err(-ENOTDIR, "checkpoint %s: not a directory", r->dir);
        goto fail;
    }
    zckpt__path_fmt(r->info.path, sizeof r->info.path, "%s", r->dir);

    char mpath[CKPT_PATH_MAX];
    size_t mlen = 0;
    zckpt__path_fmt(mpath, sizeof mpath, "%s/%s", r->dir, ZCKPT_MANIFEST_FILE);
    zckpt__path_fmt(r->data_path, sizeof r->data_path, "%s/%s", r->dir, ZCKPT_DATA_FILE);
    if (access(mpath, F_OK) != 0) {
        st = zckpt__ferr(r, "no %s (not a zoff checkpoint)", ZCKPT_MANIFEST_FILE);
        goto fail;
    }
    ZOFF_CHECK_GOTO(zckpt__read_text(mpath, CKPT_MANIFEST_MAX, &mtext, &mlen), st, fail);
    if (strlen(mtext) != mlen) {
        st = zckpt__ferr(r, "%s contains a NUL byte", ZCKPT_MANIFEST_FILE);
        goto fail;
    }
    ZOFF_CHECK_GOTO(zckpt__parse_manifest(r, mtext), st, fail);

    r->by_name = malloc((r->n ? r->n : 1) * sizeof *r->by_name);
    if (!r->by_name) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate", r->dir);
        goto fail;
    }
    for (size_t i = 0; i < r->n; i++) r->by_name[i] = i;
    qsort_r(r->by_name, r->n, sizeof *r->by_name, cmp_by_name, r);
    for (size_t k = 1; k < r->n; k++) {
        if (!strcmp(r->ts[r->by_name[k]].t.name, r->ts[r->by_name[k - 1]].t.name)) {
            st = zckpt__ferr(r, "%s lists tensor \"%s\" twice", ZCKPT_MANIFEST_FILE,
                             r->ts[r->by_name[k]].t.name);
            goto fail;
        }
    }

    r->fd = (int)ZOFF_SYS(open(r->data_path, O_RDONLY | O_CLOEXEC));
    if (r->fd < 0) {
        st = r->fd == -ENOENT
                 ? zckpt__ferr(r, "%s is missing", ZCKPT_DATA_FILE)
                 : zoff__err(r->fd, "checkpoint: open %s: %s", r->data_path, strerror(-r->fd));
        r->fd = -1;
        goto fail;
    }
    ZOFF_CHECK_GOTO(check_data_file(r), st, fail);
    ZOFF_CHECK_GOTO(zckpt__check_manifest_crc(r, mtext), st, fail);
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
        ZOFF_CHECK(zckpt__pread_full(r->fd, data, bytes, at, r->data_path));
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
            ZOFF_CHECK_GOTO(zckpt__pread_full(r->fd, buf, n, off, r->data_path), st, out);
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
