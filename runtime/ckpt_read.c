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
    const rpiece *x = &r->ps[*(const size_t *)a], *y = &r->ps[*(const size_t *)b];
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* The pieces of every file in (file, offset) order (caller frees). */
static zoff_status pieces_in_file_order(const zckpt_reader *r, size_t **out)
{
    size_t *order = malloc((r->npieces ? r->npieces : 1) * sizeof *order);
    if (!order) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate", r->dir);
    for (size_t i = 0; i < r->npieces; i++) order[i] = i;
    qsort_r(order, r->npieces, sizeof *order, cmp_by_off, (void *)r);
    *out = order;
    return ZOFF_OK;
}

/* One data file: safetensors header vs manifest vs file size. */
static zoff_status check_data_file(zckpt_reader *r, size_t fi, const size_t *order)
{
    zoff_status st = ZOFF_OK;
    rfile *f = &r->files[fi];
    char *htext = NULL;
    cJSON *h = NULL;
    struct stat sb;
    if (fstat(f->fd, &sb) != 0)
        return zoff__err(-errno, "checkpoint: fstat %s: %s", f->path, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size;
    r->info.data_bytes += size;
    if (size < 8)
        return zckpt__ferr(r, "%s is %llu bytes: truncated", f->name, (unsigned long long)size);
    uint8_t lenb[8];
    ZOFF_CHECK(zckpt__pread_full(f->fd, lenb, 8, 0, f->path));
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
    if (hl < 2 || hl > CKPT_HEADER_MAX || hl > size - 8)
        return zckpt__ferr(r,
                           "%s: header length %llu is impossible for a file of %llu bytes "
                           "(truncated or not safetensors)",
                           f->name, (unsigned long long)hl, (unsigned long long)size);
    f->data_start = 8 + hl;
    htext = malloc(hl + 1);
    if (!htext)
        return zoff__err(-ENOMEM, "checkpoint: cannot allocate a %llu-byte header",
                         (unsigned long long)hl);
    ZOFF_CHECK_GOTO(zckpt__pread_full(f->fd, htext, hl, 8, f->path), st, out);
    htext[hl] = '\0';
    h = cJSON_ParseWithOpts(htext, NULL, 1);
    if (!h || !cJSON_IsObject(h) || strlen(htext) != hl) {
        st = zckpt__ferr(r, "%s: the header is not a JSON object", f->name);
        goto out;
    }
    if (f->has_header_crc) { /* every byte of the header, padding included */
        uint32_t crc = zoff__crc32c(zoff__crc32c(0, lenb, 8), htext, hl);
        if (crc != f->header_crc) {
            st = zoff__err(ZOFF_ECORRUPT,
                           "checkpoint %s: the safetensors header of %s (bytes 0..%llu) is "
                           "corrupt or was edited: crc32c %08x, the manifest says %08x",
                           r->dir, f->name, (unsigned long long)(8 + hl), crc, f->header_crc);
            goto out;
        }
    }
    ZOFF_CHECK_GOTO(
        zckpt__check_header_meta(r, f, cJSON_GetObjectItemCaseSensitive(h, "__metadata__")), st,
        out);
    size_t nh = 0, nm = 0;
    for (const cJSON *e = h->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) nh++;
    for (size_t i = 0; i < r->npieces; i++) nm += r->ps[i].file == fi;
    if (nh != nm) {
        st = zckpt__ferr(r, "%s lists %zu tensors, %s %zu", f->name, nh, ZCKPT_MANIFEST_FILE, nm);
        goto out;
    }
    for (size_t i = 0; i < r->npieces; i++) {
        const rpiece *t = &r->ps[i];
        if (t->file != fi) continue;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(h, t->name);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e)) {
            st = zckpt__ferr(r, "tensor \"%s\" of the manifest is missing from %s", t->name,
                             f->name);
            goto out;
        }
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "F32") != 0) {
            st = zckpt__ferr(r, "tensor \"%s\": dtype is not \"F32\"", t->name);
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
        if (dims < 0 || shape_numel != t->numel) {
            st = zckpt__ferr(r,
                             "tensor \"%s\": shape in %s does not hold the manifest's %llu "
                             "elements",
                             t->name, f->name, (unsigned long long)t->numel);
            goto out;
        }
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) ||
            (uint64_t)cJSON_GetArrayItem(of, 0)->valuedouble != t->off ||
            (uint64_t)cJSON_GetArrayItem(of, 1)->valuedouble != t->off + t->numel * 4) {
            st = zckpt__ferr(r, "tensor \"%s\": data_offsets in %s disagree with the manifest",
                             t->name, f->name);
            goto out;
        }
    }
    /* Data must tile [0, data bytes) exactly, and the file must hold all of it. */
    uint64_t end = 0;
    for (size_t k = 0; k < r->npieces; k++) {
        const rpiece *t = &r->ps[order[k]];
        if (t->file != fi) continue;
        if (t->off != end) {
            st = zckpt__ferr(r,
                             "tensor \"%s\" starts at data byte %llu of %s, expected %llu "
                             "(overlap or gap)",
                             t->name, (unsigned long long)t->off, f->name, (unsigned long long)end);
            goto out;
        }
        end += t->numel * 4;
    }
    if (f->manifest_data_bytes && f->manifest_data_bytes != size) {
        st = zckpt__ferr(r, "%s is %llu bytes, the manifest recorded %llu (%s)", f->name,
                         (unsigned long long)size, (unsigned long long)f->manifest_data_bytes,
                         size < f->manifest_data_bytes ? "truncated" : "trailing bytes");
        goto out;
    }
    if (f->data_start + end != size) {
        st = zckpt__ferr(r, "%s is %llu bytes, header and tensors need %llu (%s)", f->name,
                         (unsigned long long)size, (unsigned long long)(f->data_start + end),
                         size < f->data_start + end ? "truncated" : "trailing bytes");
        goto out;
    }
out:
    cJSON_Delete(h);
    free(htext);
    return st;
}

/* Opens and checks every data file. */
static zoff_status open_data_files(zckpt_reader *r)
{
    size_t *order = NULL;
    ZOFF_CHECK(pieces_in_file_order(r, &order));
    zoff_status st = ZOFF_OK;
    for (size_t fi = 0; fi < r->nfiles && st == ZOFF_OK; fi++) {
        rfile *f = &r->files[fi];
        if (zckpt__path_fmt(f->path, sizeof f->path, "%s/%s", r->dir, f->name) != 0) {
            st = zckpt__ferr(r, "path of %s too long", f->name);
            break;
        }
        f->fd = (int)ZOFF_SYS(open(f->path, O_RDONLY | O_CLOEXEC));
        if (f->fd < 0) {
            st = f->fd == -ENOENT
                     ? zckpt__ferr(r, "%s is missing", f->name)
                     : zoff__err(f->fd, "checkpoint: open %s: %s", f->path, strerror(-f->fd));
            f->fd = -1;
            break;
        }
        st = check_data_file(r, fi, order);
    }
    free(order);
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

    ZOFF_CHECK_GOTO(open_data_files(r), st, fail);
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
    for (size_t i = 0; i < r->nfiles; i++)
        if (r->files[i].fd >= 0) close(r->files[i].fd);
    free(r->files);
    free(r->ps);
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
    const rpiece *p = r->ts[idx].count ? &r->ps[r->ts[idx].first] : NULL;
    if (file_offset) *file_offset = p ? r->files[p->file].data_start + p->off : 0;
    if (crc32c) *crc32c = p ? p->crc : 0;
    return ZOFF_OK;
}

size_t zckpt_reader_piece_count(const zckpt_reader *r, size_t idx)
{
    return (r && idx < r->n) ? r->ts[idx].count : 0;
}

zoff_status zckpt_reader_piece(const zckpt_reader *r, size_t idx, size_t k, zckpt_piece_info *out)
{
    if (!r || idx >= r->n || k >= r->ts[idx].count || !out)
        return zoff__err(ZOFF_EINVAL, "zckpt_reader_piece: bad reader, tensor %zu or piece %zu",
                         idx, k);
    const rpiece *p = &r->ps[r->ts[idx].first + k];
    const rfile *f = &r->files[p->file];
    out->file = f->name;
    out->rank = f->rank;
    out->begin = p->begin;
    out->numel = p->numel;
    out->file_offset = f->data_start + p->off;
    out->crc32c = p->crc;
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
    rtensor *t = &r->ts[idx];
    t->pos = 0;
    t->cur = 0;
    for (size_t k = 0; k < t->count; k++) r->ps[t->first + k].run = 0;
    return ZOFF_OK;
}

static zoff_status crc_mismatch(const zckpt_reader *r, const rpiece *p, uint32_t got)
{
    const rfile *f = &r->files[p->file];
    const rtensor *t = &r->ts[p->tensor];
    char slice[96] = "";
    if (f->rank >= 0)
        snprintf(slice, sizeof slice, " slice [%llu:%llu] (written by rank %d)",
                 (unsigned long long)p->begin, (unsigned long long)(p->begin + p->numel), f->rank);
    return zoff__err(ZOFF_ECORRUPT,
                     "checkpoint %s: tensor \"%s\"%s is corrupt: crc32c 0x%08x, manifest says "
                     "0x%08x (%s bytes %llu..%llu)",
                     r->dir, t->t.name, slice, got, p->crc, f->name,
                     (unsigned long long)(f->data_start + p->off),
                     (unsigned long long)(f->data_start + p->off + p->numel * 4));
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
    if (numel > 0 && !data) return zoff__err(ZOFF_EINVAL, "zckpt_reader_read: NULL data");
    while (t->cur < t->count) {
        rpiece *p = &r->ps[t->first + t->cur];
        const rfile *f = &r->files[p->file];
        uint64_t in = t->pos - p->begin, m = ZOFF_MIN(numel, p->numel - in);
        if (m > 0) {
            size_t bytes = (size_t)m * 4;
            uint64_t at = f->data_start + p->off + in * 4;
            ZOFF_CHECK(zckpt__pread_full(f->fd, data, bytes, at, f->path));
            /* start reading the next bytes of the file while the caller checks and uses these */
            posix_fadvise(f->fd, (off_t)(at + bytes),
                          (off_t)ZOFF_MIN(bytes, (size_t)CKPT_AHEAD_BYTES), POSIX_FADV_WILLNEED);
            p->run = zoff__crc32c(p->run, data, bytes);
            t->pos += m;
            data += m;
            numel -= m;
        }
        if (in + m < p->numel) break; /* the piece goes on in the next call */
        t->cur++;
        if (p->run != p->crc) return crc_mismatch(r, p, p->run);
    }
    return ZOFF_OK;
}

/* Streams piece p whole, checks its crc32c; copies its elements inside [lo, hi) (tensor
 * elements) to data + (element - lo) when data is given. */
static zoff_status stream_piece(zckpt_reader *r, const rpiece *p, char *buf, uint64_t lo,
                                uint64_t hi, float *data, uint32_t *got)
{
    const rfile *f = &r->files[p->file];
    uint64_t left = p->numel * 4, done = 0;
    uint32_t crc = 0;
    while (left > 0) {
        size_t n = (size_t)ZOFF_MIN(left, (uint64_t)CKPT_VERIFY_CHUNK);
        ZOFF_CHECK(zckpt__pread_full(f->fd, buf, n, f->data_start + p->off + done, f->path));
        crc = zoff__crc32c(crc, buf, n);
        if (data) { /* elements [e0, e1) of the tensor are in buf */
            uint64_t e0 = p->begin + done / 4, e1 = e0 + n / 4;
            uint64_t a = ZOFF_MAX(e0, lo), b = ZOFF_MIN(e1, hi);
            if (b > a) memcpy(data + (a - lo), buf + (a - e0) * 4, (size_t)(b - a) * 4);
        }
        done += n;
        left -= n;
    }
    *got = crc;
    return ZOFF_OK;
}

zoff_status zckpt_reader_read_range(zckpt_reader *r, size_t idx, uint64_t begin, float *data,
                                    uint64_t numel)
{
    if (!r || idx >= r->n)
        return zoff__err(ZOFF_EINVAL, "zckpt_reader_read_range: bad reader or index %zu", idx);
    const rtensor *t = &r->ts[idx];
    if (begin > t->t.numel || numel > t->t.numel - begin)
        return zoff__err(ZOFF_EINVAL,
                         "checkpoint %s: tensor \"%s\": range [%llu, +%llu) outside its %llu "
                         "elements",
                         r->dir, t->t.name, (unsigned long long)begin, (unsigned long long)numel,
                         (unsigned long long)t->t.numel);
    if (numel == 0) return ZOFF_OK;
    char *buf = malloc(CKPT_VERIFY_CHUNK);
    if (!buf) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate a read buffer", r->dir);
    zoff_status st = ZOFF_OK;
    for (size_t k = 0; k < t->count && st == ZOFF_OK; k++) {
        const rpiece *p = &r->ps[t->first + k];
        if (p->begin + p->numel <= begin || p->begin >= begin + numel) continue;
        uint32_t got = 0;
        st = stream_piece(r, p, buf, begin, begin + numel, data, &got);
        if (st == ZOFF_OK && got != p->crc) st = crc_mismatch(r, p, got);
    }
    free(buf);
    return st;
}

zoff_status zckpt_reader_verify(zckpt_reader *r)
{
    zoff_status st = ZOFF_OK;
    if (!r) return zoff__err(ZOFF_EINVAL, "zckpt_reader_verify: NULL reader");
    size_t *order = NULL;
    char *buf = malloc(CKPT_VERIFY_CHUNK);
    if (!buf) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the verify buffer", r->dir);
    ZOFF_CHECK_GOTO(pieces_in_file_order(r, &order), st, out);
    for (size_t fi = 0; fi < r->nfiles; fi++)
        posix_fadvise(r->files[fi].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t bad = 0;
    const rpiece *first_bad = NULL;
    uint32_t first_got = 0;
    for (size_t k = 0; k < r->npieces; k++) {
        const rpiece *p = &r->ps[order[k]];
        uint32_t crc = 0;
        ZOFF_CHECK_GOTO(stream_piece(r, p, buf, 0, 0, NULL, &crc), st, out);
        if (crc != p->crc) {
            if (!first_bad) {
                first_bad = p;
                first_got = crc;
            }
            ZOFF_WARN(ZOFF_SUB_CKPT, "checkpoint %s: tensor \"%s\" crc32c 0x%08x != 0x%08x (%s)",
                      r->dir, p->name, crc, p->crc, r->files[p->file].name);
            bad++;
        }
    }
    if (first_bad) {
        crc_mismatch(r, first_bad, first_got);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        if (r->nfiles > 1 || r->npieces != r->n)
            st =
                zoff__err(ZOFF_ECORRUPT, "%s; %zu of %zu slices are corrupt", msg, bad, r->npieces);
        else
            st = zoff__err(ZOFF_ECORRUPT, "%s; %zu of %zu tensors are corrupt", msg, bad, r->n);
    }
out:
    free(order);
    free(buf);
    return st;
}
