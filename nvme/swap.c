/*
 * swap.c — the swap store: tensor keys mapped to extents of a few large preallocated swap
 * files, striped over the configured paths in stripe_bytes chunks, moved by one I/O engine.
 * Owns: the store's configuration and files, the key -> extent hash map with bump allocation,
 * the logical-to-file mapping (stripes), request planning (direct parts from the caller's
 * buffer, 4 KiB bounce buffers for unaligned heads/tails under O_DIRECT), ordering between
 * requests on the same key, crc32c per extent, and the store's counters.
 *
 * Logical layout: the store is one logical space of `capacity` bytes (4 KiB padded). Stripe s
 * (stripe_bytes each) lives on device d = s % D, D = npaths * files_per_path, device d being
 * file d / npaths of path d % npaths, at file offset (s / D) * stripe_bytes. Keys get 4 KiB
 * aligned, 4 KiB padded logical extents in allocation order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "nvme/swap_internal.h"

#define ZSWAP_ALIGN          4096u
#define ZSWAP_DEFAULT_STRIPE (16 * ZOFF_MIB)
#define ZSWAP_MAX_PATHS      64
#define ZSWAP_MSG_BYTES      512

enum { KEY_EMPTY = 0, KEY_VALID = 1, KEY_FAILED = 2 };

typedef struct swap_file {
    int fd;
    int odirect;
    char *path;
    uint64_t bytes;
} swap_file;

typedef struct swap_key {
    uint64_t key;
    uint64_t loff; /* logical offset of the extent */
    size_t bytes;  /* payload size */
    uint32_t crc;  /* crc32c of the payload, valid when has_crc */
    uint8_t used;  /* map slot in use */
    uint8_t state; /* KEY_* (content on disk) */
    uint8_t has_crc;
    int writes; /* swap_outs in flight */
    int reads;  /* swap_ins in flight */
} swap_key;

/* One contiguous piece of a request in one file. */
typedef struct swap_seg {
    int dev;
    uint64_t foff;
    size_t len;
    char *mem;
} swap_seg;

struct zswap_req {
    zswap_req *prev, *next; /* the store's list of requests not yet waited */
    uint64_t key;
    int is_write;
    int done;
    zoff_status status;
    zaio_req **parts;
    int nparts, nwaited;
    char *user;   /* caller's buffer */
    size_t bytes; /* payload bytes */
    char *bounce; /* aligned buffer for the part of the extent at [bounce_ext_off, ..) */
    size_t bounce_ext_off;
    size_t bounce_len;
    uint32_t crc; /* write: crc32c of the payload */
    int first_dev;
    uint64_t first_foff;
    char msg[ZSWAP_MSG_BYTES];
};

struct zswap_store {
    int npaths, nfpp, ndev; /* paths, files per path, devices = paths * files */
    zswap_rundir *dirs;
    swap_file *files; /* ndev, indexed by device */
    size_t stripe;
    uint64_t capacity; /* logical bytes, 4 KiB aligned */
    uint64_t next_free;
    int any_odirect, all_odirect;
    int verify_crc;
    zaio_engine *aio;

    swap_key *map;
    size_t map_cap, map_used;

    zswap_req *reqs;
    uint64_t read_bytes, write_bytes;
};

/* ---- key map (open addressing, linear probing) ------------------------------------------- */
static uint64_t hash_key(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    return k ^ (k >> 33);
}

static swap_key *map_find(const zswap_store *s, uint64_t key)
{
    if (!s->map_cap) return NULL;
    size_t mask = s->map_cap - 1;
    for (size_t i = hash_key(key) & mask;; i = (i + 1) & mask) {
        swap_key *k = &s->map[i];
        if (!k->used) return NULL;
        if (k->key == key) return k;
    }
}

static zoff_status map_grow(zswap_store *s)
{
    size_t cap = s->map_cap ? s->map_cap * 2 : 256;
    swap_key *m = calloc(cap, sizeof *m);
    if (!m) return zoff__err(-ENOMEM, "swap store: out of memory for the key map");
    for (size_t i = 0; i < s->map_cap; i++) {
        if (!s->map[i].used) continue;
        size_t j = hash_key(s->map[i].key) & (cap - 1);
        while (m[j].used) j = (j + 1) & (cap - 1);
        m[j] = s->map[i];
    }
    free(s->map);
    s->map = m;
    s->map_cap = cap;
    return ZOFF_OK;
}

static zoff_status map_insert(zswap_store *s, uint64_t key, swap_key **out)
{
    if ((s->map_used + 1) * 10 > s->map_cap * 7) ZOFF_CHECK(map_grow(s));
    size_t mask = s->map_cap - 1;
    size_t i = hash_key(key) & mask;
    while (s->map[i].used) i = (i + 1) & mask;
    memset(&s->map[i], 0, sizeof s->map[i]);
    s->map[i].used = 1;
    s->map[i].key = key;
    s->map_used++;
    *out = &s->map[i];
    return ZOFF_OK;
}

/* ---- layout ------------------------------------------------------------------------------ */
static uint64_t padded(size_t bytes)
{
    return ZOFF_ALIGN_UP((uint64_t)bytes, ZSWAP_ALIGN);
}

/* Bytes of the logical space that land on device d. */
static uint64_t device_bytes(const zswap_store *s, int d)
{
    uint64_t full = s->capacity / s->stripe, tail = s->capacity % s->stripe;
    uint64_t k = full / (uint64_t)s->ndev, extra = full % (uint64_t)s->ndev;
    uint64_t b = k * s->stripe;
    if ((uint64_t)d < extra) b += s->stripe;
    if ((uint64_t)d == extra) b += tail;
    return b;
}

/* Splits logical [loff, loff + len) backed by memory `mem` into per-file segments, merging
 * neighbours that are contiguous in one file. Appends to segs (capacity checked by caller). */
static int map_range(const zswap_store *s, uint64_t loff, size_t len, char *mem, swap_seg *segs,
                     int n)
{
    while (len > 0) {
        uint64_t stripe_idx = loff / s->stripe, within = loff % s->stripe;
        size_t take = (size_t)ZOFF_MIN((uint64_t)len, s->stripe - within);
        int dev = (int)(stripe_idx % (uint64_t)s->ndev);
        uint64_t foff = (stripe_idx / (uint64_t)s->ndev) * s->stripe + within;
        swap_seg *prev = n ? &segs[n - 1] : NULL;
        if (prev && prev->dev == dev && prev->foff + prev->len == foff &&
            prev->mem + prev->len == mem)
            prev->len += take;
        else
            segs[n++] = (swap_seg){.dev = dev, .foff = foff, .len = take, .mem = mem};
        loff += take;
        mem += take;
        len -= take;
    }
    return n;
}

static int max_segs(const zswap_store *s, size_t len)
{
    return (int)(len / s->stripe) + 2;
}

/* ---- requests ---------------------------------------------------------------------------- */
static void req_unlink(zswap_store *s, zswap_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(zswap_store *s, zswap_req *r)
{
    req_unlink(s, r);
    free(r->parts);
    free(r->bounce);
    free(r);
}

static void req_error(zswap_req *r, zoff_status st, const char *detail)
{
    if (r->status != 0) return;
    r->status = st;
    snprintf(r->msg, sizeof r->msg, "swap_%s key %" PRIu64 ": %s", r->is_write ? "out" : "in",
             r->key, detail);
}

/* Waits for every part of r, then finishes it: copies the bounced bytes of a read to the
 * caller, checks the crc, updates the key. r stays allocated (zswap_wait frees it). */
static void req_complete(zswap_store *s, zswap_req *r)
{
    if (r->done) return;
    for (; r->nwaited < r->nparts; r->nwaited++) {
        zoff_status st = zaio_wait(s->aio, r->parts[r->nwaited]);
        if (st < 0) req_error(r, st, zoff__last_error_tls());
    }
    swap_key *k = map_find(s, r->key);
    if (r->is_write) {
        if (k) {
            k->writes--;
            if (r->status == 0) {
                k->state = KEY_VALID;
                k->crc = r->crc;
                k->has_crc = (uint8_t)s->verify_crc;
            } else {
                k->state = KEY_FAILED;
                k->has_crc = 0;
            }
        }
        if (r->status == 0) s->write_bytes += r->bytes;
    } else {
        if (k) k->reads--;
        if (r->status == 0 && r->bounce) {
            size_t user_off = r->bounce_ext_off;
            memcpy(r->user + user_off, r->bounce, r->bytes - user_off);
        }
        if (r->status == 0 && k && k->has_crc) {
            uint32_t crc = zoff__crc32c(0, r->user, r->bytes);
            if (crc != k->crc) {
                char detail[ZSWAP_MSG_BYTES - 64];
                snprintf(detail, sizeof detail,
                         "crc32c mismatch (stored %08x, read %08x) in the %zu-byte extent "
                         "starting at %s offset %" PRIu64,
                         k->crc, crc, r->bytes, s->files[r->first_dev].path, r->first_foff);
                req_error(r, ZOFF_ECORRUPT, detail);
            }
        }
        if (r->status == 0) s->read_bytes += r->bytes;
    }
    free(r->bounce);
    r->bounce = NULL;
    r->done = 1;
}

/* Finishes every unfinished request on `key` (writes only when `writes_only`), so a new
 * request never overtakes an older one on the same extent. */
static void order_after(zswap_store *s, const swap_key *k, int writes_only)
{
    if (k->writes == 0 && (writes_only || k->reads == 0)) return;
    for (zswap_req *r = s->reqs; r; r = r->next)
        if (!r->done && r->key == k->key && (r->is_write || !writes_only)) req_complete(s, r);
}

/* Plans and submits the I/O of r over its key's extent. */
static zoff_status req_start(zswap_store *s, zswap_req *r, const swap_key *k)
{
    size_t bytes = r->bytes;
    size_t direct = bytes;
    if (s->any_odirect) {
        direct = ZOFF_IS_ALIGNED(r->user, ZSWAP_ALIGN) ? ZOFF_ALIGN_DOWN(bytes, ZSWAP_ALIGN) : 0;
        if (direct < bytes) {
            r->bounce_ext_off = direct;
            r->bounce_len = (size_t)(padded(bytes) - direct);
            if (posix_memalign((void **)&r->bounce, ZSWAP_ALIGN, r->bounce_len) != 0) {
                r->bounce = NULL;
                return zoff__err(-ENOMEM,
                                 "swap key %" PRIu64 ": out of memory for a %zu-byte "
                                 "bounce buffer",
                                 r->key, r->bounce_len);
            }
            if (r->is_write) {
                memcpy(r->bounce, r->user + direct, bytes - direct);
                memset(r->bounce + (bytes - direct), 0, r->bounce_len - (bytes - direct));
            }
        }
    }
    int cap = max_segs(s, direct) + max_segs(s, r->bounce_len);
    swap_seg *segs = calloc((size_t)cap, sizeof *segs);
    if (!segs) return zoff__err(-ENOMEM, "swap key %" PRIu64 ": out of memory", r->key);
    int n = 0;
    if (direct) n = map_range(s, k->loff, direct, r->user, segs, n);
    if (r->bounce) n = map_range(s, k->loff + direct, r->bounce_len, r->bounce, segs, n);
    r->parts = calloc((size_t)n, sizeof *r->parts);
    zoff_status st = ZOFF_OK;
    if (!r->parts) {
        st = zoff__err(-ENOMEM, "swap key %" PRIu64 ": out of memory", r->key);
        goto out;
    }
    r->first_dev = segs[0].dev;
    r->first_foff = segs[0].foff;
    for (int i = 0; i < n; i++) {
        const swap_file *f = &s->files[segs[i].dev];
        zaio_req *a = NULL;
        st = r->is_write ? zaio_write(s->aio, f->fd, segs[i].mem, segs[i].len, segs[i].foff, &a)
                         : zaio_read(s->aio, f->fd, segs[i].mem, segs[i].len, segs[i].foff, &a);
        if (st < 0) {
            req_error(r, st, zoff__last_error_tls());
            break;
        }
        r->parts[r->nparts++] = a;
    }
out:
    free(segs);
    return st;
}

static zoff_status start_request(zswap_store *s, uint64_t key, void *buf, size_t bytes,
                                 int is_write, zswap_req **out)
{
    swap_key *k = map_find(s, key);
    if (!k) return zoff__err(ZOFF_EINTERNAL, "swap key %" PRIu64 " vanished", key);
    order_after(s, k, !is_write);
    zswap_req *r = calloc(1, sizeof *r);
    if (!r) return zoff__err(-ENOMEM, "swap key %" PRIu64 ": out of memory", key);
    r->key = key;
    r->is_write = is_write;
    r->user = buf;
    r->bytes = bytes;
    r->next = s->reqs;
    if (s->reqs) s->reqs->prev = r;
    s->reqs = r;
    if (is_write)
        k->writes++;
    else
        k->reads++;
    if (bytes == 0) {
        req_complete(s, r);
        *out = r;
        return ZOFF_OK;
    }
    zoff_status st = req_start(s, r, k);
    if (st < 0) {
        /* Parts already submitted must finish before the buffer goes back to the caller. */
        char msg[ZSWAP_MSG_BYTES];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        req_complete(s, r);
        req_free(s, r);
        return zoff__err(st, "swap_%s key %" PRIu64 ": %s", is_write ? "out" : "in", key, msg);
    }
    if (is_write && s->verify_crc) r->crc = zoff__crc32c(0, buf, bytes); /* overlaps the I/O */
    *out = r;
    return ZOFF_OK;
}

/* ---- public API -------------------------------------------------------------------------- */
zoff_status zswap_reserve(zswap_store *s, uint64_t key, size_t bytes)
{
    if (!s) return zoff__err(ZOFF_EINVAL, "zswap_reserve: NULL store");
    swap_key *k = map_find(s, key);
    if (k) {
        if (k->bytes != bytes)
            return zoff__err(ZOFF_EINVAL,
                             "swap key %" PRIu64 " is reserved with %zu bytes, not %zu", key,
                             k->bytes, bytes);
        return ZOFF_OK;
    }
    uint64_t need = padded(bytes);
    if (need > s->capacity - s->next_free) {
        char a[32], b[32], c[32];
        return zoff__err(ZOFF_ENOFIT,
                         "swap store full: key %" PRIu64 " needs %s, %s of capacity %s already "
                         "reserved (raise the swap capacity)",
                         key, zoff__fmt_bytes(need, a, sizeof a),
                         zoff__fmt_bytes(s->next_free, b, sizeof b),
                         zoff__fmt_bytes(s->capacity, c, sizeof c));
    }
    ZOFF_CHECK(map_insert(s, key, &k));
    k->loff = s->next_free;
    k->bytes = bytes;
    s->next_free += need;
    return ZOFF_OK;
}

zoff_status zswap_out(zswap_store *s, uint64_t key, const void *buf, size_t bytes, zswap_req **out)
{
    if (!s || !out || (!buf && bytes)) return zoff__err(ZOFF_EINVAL, "zswap_out: NULL argument");
    ZOFF_CHECK(zswap_reserve(s, key, bytes));
    return start_request(s, key, (void *)(uintptr_t)buf, bytes, 1, out);
}

zoff_status zswap_in(zswap_store *s, uint64_t key, void *buf, size_t bytes, zswap_req **out)
{
    if (!s || !out || (!buf && bytes)) return zoff__err(ZOFF_EINVAL, "zswap_in: NULL argument");
    swap_key *k = map_find(s, key);
    if (!k) return zoff__err(ZOFF_ENOTFOUND, "swap_in: key %" PRIu64 " was never reserved", key);
    if (k->bytes != bytes)
        return zoff__err(ZOFF_EINVAL, "swap_in key %" PRIu64 ": %zu bytes asked, %zu reserved", key,
                         bytes, k->bytes);
    order_after(s, k, 1);
    if (k->state == KEY_FAILED)
        return zoff__err(ZOFF_ESTATE,
                         "swap_in key %" PRIu64 ": its last swap_out failed, the extent holds "
                         "incomplete data",
                         key);
    return start_request(s, key, buf, bytes, 0, out);
}

zoff_status zswap_wait(zswap_store *s, zswap_req *req)
{
    if (!s || !req) return zoff__err(ZOFF_EINVAL, "zswap_wait: NULL argument");
    req_complete(s, req);
    zoff_status st = req->status;
    if (st < 0) zoff__err(st, "%s", req->msg);
    req_free(s, req);
    return st;
}

zoff_status zswap_poll(zswap_store *s, zswap_req *req, int *done)
{
    if (!s || !req || !done) return zoff__err(ZOFF_EINVAL, "zswap_poll: NULL argument");
    if (!req->done) {
        int all = 1;
        for (int i = req->nwaited; i < req->nparts; i++) {
            int d = 0;
            zoff_status st = zaio_poll(s->aio, req->parts[i], &d);
            if (st < 0) return st;
            if (!d) {
                all = 0;
                break;
            }
        }
        if (all) req_complete(s, req); /* every part is done: this does not block */
    }
    *done = req->done;
    return ZOFF_OK;
}

zoff_status zswap_register_buffer(zswap_store *s, void *buf, size_t bytes)
{
    if (!s) return zoff__err(ZOFF_EINVAL, "zswap_register_buffer: NULL store");
    return zaio_register_buffer(s->aio, buf, bytes);
}

void zswap_set_fault(zswap_store *s, const zswap_fault *f)
{
    if (s) zaio_set_fault(s->aio, f);
}

void zswap_get_stats(const zswap_store *s, zswap_stats *out)
{
    if (!s || !out) return;
    memset(out, 0, sizeof *out);
    zaio_stats a;
    zaio_get_stats(s->aio, &a);
    out->read_bytes = s->read_bytes;
    out->write_bytes = s->write_bytes;
    out->read_ns = a.read_ns;
    out->write_ns = a.write_ns;
    out->capacity_bytes = s->capacity;
    out->reserved_bytes = s->next_free;
    out->odirect = s->all_odirect;
    zaio_get_info(s->aio, &out->aio);
    out->ios = a.ios;
    out->short_ios = a.short_ios;
}

zoff_status zswap_locate(const zswap_store *s, uint64_t key, const char **path, uint64_t *off,
                         size_t *bytes)
{
    if (!s) return zoff__err(ZOFF_EINVAL, "zswap_locate: NULL store");
    const swap_key *k = map_find(s, key);
    if (!k) return zoff__err(ZOFF_ENOTFOUND, "zswap_locate: key %" PRIu64 " unknown", key);
    uint64_t stripe_idx = k->loff / s->stripe;
    int dev = (int)(stripe_idx % (uint64_t)s->ndev);
    if (path) *path = s->files[dev].path;
    if (off) *off = (stripe_idx / (uint64_t)s->ndev) * s->stripe + k->loff % s->stripe;
    if (bytes) *bytes = k->bytes;
    return ZOFF_OK;
}

/* ---- create / destroy -------------------------------------------------------------------- */
static zoff_status parse_paths(const char *list, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!list || !*list) return zoff__err(ZOFF_EINVAL, "swap store: no path configured");
    char *copy = strdup(list);
    char **paths = calloc(ZSWAP_MAX_PATHS, sizeof *paths);
    zoff_status st = ZOFF_OK;
    if (!copy || !paths) {
        st = zoff__err(-ENOMEM, "swap store: out of memory");
        goto out;
    }
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t len = strlen(tok);
        while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) tok[--len] = '\0';
        while (len > 1 && tok[len - 1] == '/') tok[--len] = '\0';
        if (!len) continue;
        if (*n == ZSWAP_MAX_PATHS) {
            st = zoff__err(ZOFF_EINVAL, "swap store: more than %d paths", ZSWAP_MAX_PATHS);
            goto out;
        }
        paths[(*n)++] = strdup(tok);
        if (!paths[*n - 1]) {
            st = zoff__err(-ENOMEM, "swap store: out of memory");
            goto out;
        }
    }
    if (*n == 0) st = zoff__err(ZOFF_EINVAL, "swap store: empty path list \"%s\"", list);
out:
    free(copy);
    if (st < 0) {
        for (int i = 0; i < *n; i++) free(paths[i]);
        free(paths);
        *n = 0;
        return st;
    }
    *out = paths;
    return ZOFF_OK;
}

/* Each path must be a directory, distinct from the others; the filesystems holding them must
 * have room for their files (paths on one filesystem are summed). */
/* Each path a directory, distinct, writable; the free space of every filesystem holds what the
 * store preallocates there (filesystems that report no size, like ramfs, are not checked).
 * `reclaim`: remove leftovers of dead runs first (not from a planner). *free_sum: free bytes
 * over the paths' filesystems (each counted once; may be NULL). */
/* mkdir -p `path` (mode 0777 & umask, like `mkdir -p`). Returns 0 or -errno. */
static int mkdirs(const char *path)
{
    char buf[ZOFF_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
    for (char *q = buf + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -errno;
            *q = c;
            if (c == '\0') break;
        }
    }
    return 0;
}

/* The nearest existing ancestor of a missing `path` into buf (a planner examines it: the store
 * creates the path there). Returns 0 or -errno. */
static int existing_ancestor(const char *path, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s", path) >= (int)len) return -ENAMETOOLONG;
    struct stat sb;
    while (stat(buf, &sb) != 0) {
        if (errno != ENOENT) return -errno;
        char *slash = strrchr(buf, '/');
        if (!slash) return snprintf(buf, len, ".") < 0 ? -EINVAL : 0;
        if (slash == buf) {
            buf[1] = '\0';
            return 0;
        }
        *slash = '\0';
    }
    return 0;
}

static zoff_status check_paths(zswap_store *s, char **paths, int reclaim, uint64_t *free_sum)
{
    struct stat st[ZSWAP_MAX_PATHS];
    int missing[ZSWAP_MAX_PATHS] = {0};
    char where[ZSWAP_MAX_PATHS][ZOFF_PATH_MAX]; /* the directory examined for each path */
    for (int p = 0; p < s->npaths; p++) {
        snprintf(where[p], sizeof where[p], "%s", paths[p]);
        long rc = ZOFF_SYS(stat(paths[p], &st[p]));
        if (rc == -ENOENT && reclaim) { /* the store creates a missing directory, as zoff train */
            int e = mkdirs(paths[p]);
            if (e < 0)
                return zoff__err(e, "swap path %s does not exist and cannot be created: %s",
                                 paths[p], strerror(-e));
            ZOFF_INFO(ZOFF_SUB_NVME, "swap path %s did not exist: created", paths[p]);
            rc = ZOFF_SYS(stat(paths[p], &st[p]));
        } else if (rc == -ENOENT) { /* a planner: examine where it will be created */
            int e = existing_ancestor(paths[p], where[p], sizeof where[p]);
            if (e < 0) return zoff__err(e, "swap path %s: %s", paths[p], strerror(-e));
            missing[p] = 1;
            rc = ZOFF_SYS(stat(where[p], &st[p]));
        }
        if (rc < 0)
            return zoff__err((zoff_status)rc, "swap path %s: %s", paths[p], strerror((int)-rc));
        if (!S_ISDIR(st[p].st_mode))
            return zoff__err(-ENOTDIR, "swap path %s is not a directory", where[p]);
        for (int q = 0; q < p; q++)
            if (!missing[p] && !missing[q] && st[q].st_dev == st[p].st_dev &&
                st[q].st_ino == st[p].st_ino)
                return zoff__err(ZOFF_EINVAL, "swap paths %s and %s are the same directory",
                                 paths[q], paths[p]);
    }
    for (int p = 0; p < s->npaths; p++) {
        if (access(where[p], W_OK | X_OK) != 0) {
            int e = errno;
            return zoff__err(-e, "swap path %s is not writable: %s%s", where[p], strerror(e),
                             e == EROFS ? " (read-only filesystem)" : "");
        }
    }
    if (reclaim)
        for (int p = 0; p < s->npaths; p++) zswap__reclaim_stale(paths[p]);
    if (free_sum) *free_sum = 0;
    for (int p = 0; p < s->npaths; p++) {
        int first = 1;
        for (int q = 0; q < p; q++) first &= st[q].st_dev != st[p].st_dev;
        if (!first) continue;
        uint64_t need = 0, free_bytes = 0;
        int on_fs = 0;
        for (int q = p; q < s->npaths; q++) {
            if (st[q].st_dev != st[p].st_dev) continue;
            on_fs++;
            for (int f = 0; f < s->nfpp; f++) need += device_bytes(s, q + f * s->npaths);
        }
        ZOFF_CHECK(zswap_free_bytes(where[p], &free_bytes));
        if (free_sum) *free_sum += free_bytes;
        struct statvfs sv;
        if (statvfs(where[p], &sv) == 0 && sv.f_blocks == 0) {
            /* ramfs and friends keep no block counts: the space cannot be checked. */
            ZOFF_INFO(ZOFF_SUB_NVME, "filesystem of %s reports no size: free space not checked",
                      paths[p]);
            continue;
        }
        if (need > free_bytes) {
            char a[32], b[32];
            return zoff__err(ZOFF_ENOFIT,
                             "not enough free space for swap on the filesystem of %s: %s needed "
                             "(%d path(s) there), %s free",
                             paths[p], zoff__fmt_bytes(need, a, sizeof a), on_fs,
                             zoff__fmt_bytes(free_bytes, b, sizeof b));
        }
    }
    return ZOFF_OK;
}

zoff_status zswap_check_space(const char *paths_csv, uint64_t capacity_bytes, uint64_t *free_bytes)
{
    zswap_store s;
    memset(&s, 0, sizeof s);
    char **paths = NULL;
    ZOFF_CHECK(parse_paths(paths_csv, &paths, &s.npaths));
    s.nfpp = 1;
    s.ndev = s.npaths;
    s.stripe = ZSWAP_DEFAULT_STRIPE;
    s.capacity = padded((size_t)capacity_bytes);
    uint64_t sum = 0;
    zoff_status st = check_paths(&s, paths, 0, &sum);
    for (int p = 0; p < s.npaths; p++) free(paths[p]);
    free(paths);
    if (free_bytes) *free_bytes = sum; /* what was found, also when it is not enough */
    return st;
}

static int odirect_setting(int cfg)
{
    const char *v = zoff__param_str(ZOFF_PARAM_AIO_ODIRECT);
    if (v[0] == '1') return 1;
    if (v[0] == '0') return 0;
    return cfg;
}

zoff_status zswap_create(const zswap_config *cfg, zswap_store **out)
{
    static int store_counter;
    if (!cfg || !out) return zoff__err(ZOFF_EINVAL, "zswap_create: NULL argument");
    zoff_status st = ZOFF_OK;
    char **paths = NULL;
    zswap_store *s = calloc(1, sizeof *s);
    if (!s) return zoff__err(-ENOMEM, "zswap_create: out of memory");
    ZOFF_CHECK_GOTO(parse_paths(cfg->paths, &paths, &s->npaths), st, fail);
    s->nfpp = cfg->files_per_path > 0 ? cfg->files_per_path : 1;
    s->ndev = s->npaths * s->nfpp;
    s->stripe =
        cfg->stripe_bytes ? ZOFF_ALIGN_UP(cfg->stripe_bytes, ZSWAP_ALIGN) : ZSWAP_DEFAULT_STRIPE;
    s->capacity = padded((size_t)cfg->capacity_bytes);
    s->verify_crc = cfg->verify_crc;
    int odirect = odirect_setting(cfg->odirect);

    ZOFF_CHECK_GOTO(check_paths(s, paths, 1, NULL), st, fail);

    char name[128];
    if (cfg->run_name && cfg->run_name[0]) {
        if (strchr(cfg->run_name, '/'))
            ZOFF_CHECK_GOTO(
                zoff__err(ZOFF_EINVAL, "swap run_name \"%s\" contains '/'", cfg->run_name), st,
                fail);
        snprintf(name, sizeof name, "%s", cfg->run_name);
    } else {
        snprintf(name, sizeof name, ZSWAP_DIR_PREFIX "%d-%d", (int)getpid(),
                 __atomic_fetch_add(&store_counter, 1, __ATOMIC_RELAXED));
    }
    s->dirs = calloc((size_t)s->npaths, sizeof *s->dirs);
    s->files = calloc((size_t)s->ndev, sizeof *s->files);
    if (!s->dirs || !s->files)
        ZOFF_CHECK_GOTO(zoff__err(-ENOMEM, "zswap_create: out of memory"), st, fail);
    for (int d = 0; d < s->ndev; d++) s->files[d].fd = -1;
    for (int p = 0; p < s->npaths; p++) s->dirs[p].lock_fd = -1;
    for (int p = 0; p < s->npaths; p++)
        ZOFF_CHECK_GOTO(zswap__rundir_create(paths[p], name, &s->dirs[p]), st, fail);

    int path_odirect[ZSWAP_MAX_PATHS];
    for (int p = 0; p < s->npaths; p++) {
        path_odirect[p] = 0;
        if (odirect == 0) continue;
        ZOFF_CHECK_GOTO(zswap__probe_odirect(s->dirs[p].dir, &path_odirect[p]), st, fail);
        if (!path_odirect[p] && odirect == 1)
            ZOFF_CHECK_GOTO(zoff__err(ZOFF_EUNSUPPORTED,
                                      "O_DIRECT required but the filesystem of %s refuses it "
                                      "(ramfs, some FUSE or network filesystems); set odirect "
                                      "-1 to fall back to buffered I/O",
                                      paths[p]),
                            st, fail);
        if (!path_odirect[p])
            ZOFF_LOG_ONCE(ZOFF_LOG_INFO, ZOFF_SUB_NVME,
                          "O_DIRECT not supported under %s: buffered I/O for its swap files",
                          paths[p]);
    }

    ZOFF_CHECK_GOTO(zaio_create(&cfg->aio, &s->aio), st, fail);

    s->all_odirect = 1;
    for (int d = 0; d < s->ndev; d++) {
        swap_file *f = &s->files[d];
        int p = d % s->npaths, fi = d / s->npaths;
        f->odirect = path_odirect[p];
        s->any_odirect |= f->odirect;
        s->all_odirect &= f->odirect;
        f->bytes = device_bytes(s, d);
        if (asprintf(&f->path, "%s/swap-%d.bin", s->dirs[p].dir, fi) < 0) {
            f->path = NULL;
            ZOFF_CHECK_GOTO(zoff__err(-ENOMEM, "zswap_create: out of memory"), st, fail);
        }
        int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | (f->odirect ? O_DIRECT : 0);
        f->fd = (int)ZOFF_SYS(open(f->path, flags, 0600));
        if (f->fd < 0) {
            int e = f->fd;
            f->fd = -1;
            ZOFF_CHECK_GOTO(zoff__err(e, "create swap file %s: %s", f->path, strerror(-e)), st,
                            fail);
        }
        ZOFF_CHECK_GOTO(zswap__preallocate(f->fd, f->path, f->bytes), st, fail);
        ZOFF_CHECK_GOTO(zaio_register_file(s->aio, f->fd, f->path), st, fail);
    }
    {
        char a[32];
        ZOFF_INFO(ZOFF_SUB_NVME,
                  "swap store: %s over %d path(s) x %d file(s), stripe %zu, O_DIRECT %s, crc %s",
                  zoff__fmt_bytes(s->capacity, a, sizeof a), s->npaths, s->nfpp, s->stripe,
                  s->all_odirect ? "on" : (s->any_odirect ? "partly" : "off"),
                  s->verify_crc ? "on" : "off");
    }
    for (int p = 0; p < s->npaths; p++) free(paths[p]);
    free(paths);
    *out = s;
    return ZOFF_OK;
fail:
    if (paths) {
        for (int p = 0; p < s->npaths; p++) free(paths[p]);
        free(paths);
    }
    zswap_destroy(s);
    return st;
}

void zswap_destroy(zswap_store *s)
{
    if (!s) return;
    /* Buffers go back to their owners only after their I/O finished. */
    while (s->reqs) {
        req_complete(s, s->reqs);
        req_free(s, s->reqs);
    }
    if (s->files) {
        for (int d = 0; d < s->ndev; d++) {
            swap_file *f = &s->files[d];
            if (f->fd >= 0) {
                zaio_unregister_file(s->aio, f->fd);
                close(f->fd);
            }
            free(f->path);
        }
    }
    zaio_destroy(s->aio);
    if (s->dirs)
        for (int p = 0; p < s->npaths; p++) zswap__rundir_remove(&s->dirs[p]);
    free(s->dirs);
    free(s->files);
    free(s->map);
    free(s);
}
