/*
 * arena.c — the pinned host-memory arena of offload/arena.h: one exact-size anonymous mapping
 * (capacity rounded up to 4 KiB only; 2 MiB-aligned so transparent huge pages can back all of
 * it), MADV_HUGEPAGE when asked, bound with mbind(MPOL_BIND) to a NUMA node, locked with mlock
 * (which also prefaults it: first touch happens here, once) and registered with the device.
 * Before mapping it checks MemAvailable (ZOFF_ENOFIT), and before locking RLIMIT_MEMLOCK /
 * CAP_IPC_LOCK; when pinning is refused the arena stays pageable, says so once at WARN and in
 * its stats. A first-fit sub-allocator with coalescing hands out 4 KiB-aligned buffers; every
 * allocation and free is logged under ALLOC with its tag.
 * Owns: the mapping, its lock and device registration, the block list.
 */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "offload/arena.h"

#define ARENA_PAGE ((size_t)4096)
#define ARENA_HUGE ((size_t)2 * 1024 * 1024)
#define ARENA_TAG  48

/* One block of the arena, free or in use; all blocks in address order, covering it exactly. */
typedef struct zarena_block {
    struct zarena_block *prev, *next;
    size_t off, bytes;
    int used;
    char tag[ARENA_TAG];
} zarena_block;

struct zarena {
    char name[64];
    uint8_t *base;
    size_t capacity;
    zdev *dev;        /* registered with it when registered = 1 */
    int locked;       /* mlock succeeded */
    int registered;   /* zdev_host_register succeeded */
    int pin_fallback; /* pinning asked and refused */
    int huge;         /* MADV_HUGEPAGE accepted and THP not disabled */
    int numa_node;    /* bound node or -1 */
    pthread_mutex_t mu;
    zarena_block *head;
    size_t used, peak, allocations;
};

/* ---- system facts ------------------------------------------------------------------------------
 */
static int has_cap_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0) return 0;
    return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) != 0;
}

zoff_status zarena_pin_limits_get(zarena_pin_limits *out)
{
    struct rlimit rl;
    if (!out) return zoff__err(ZOFF_EINVAL, "zarena_pin_limits_get: out is NULL");
    memset(out, 0, sizeof *out);
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        return zoff__err(-errno, "getrlimit(RLIMIT_MEMLOCK): %s", strerror(errno));
    out->memlock_cur = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    out->memlock_max = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_max;
    out->locked_bytes = zoff__proc_kb("/proc/self/status", "VmLck");
    out->cap_ipc_lock = has_cap_ipc_lock();
    return 0;
}

/* THP mode from sysfs: 1 if "never" is selected. */
static int thp_disabled(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 1; /* no THP in this kernel */
    char buf[128] = "";
    if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
    fclose(f);
    return strstr(buf, "[never]") != NULL;
}

/* ---- creation steps
 * ------------------------------------------------------------------------------ */
/* Maps `bytes` (a multiple of 4 KiB), 2 MiB-aligned when `align_huge`. */
static zoff_status map_region(zarena *a, int align_huge)
{
    size_t extra = align_huge ? ARENA_HUGE : 0;
    uint8_t *p =
        mmap(NULL, a->capacity + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return zoff__err(-errno, "arena %s: mmap of %zu bytes: %s", a->name, a->capacity + extra,
                         strerror(errno));
    if (extra) { /* trim to a 2 MiB boundary; the mapping stays exactly `capacity` bytes */
        uint8_t *aligned = (uint8_t *)ZOFF_ALIGN_UP((uintptr_t)p, ARENA_HUGE);
        size_t head = (size_t)(aligned - p), tail = extra - head;
        if (head) munmap(p, head);
        if (tail) munmap(aligned + a->capacity, tail);
        p = aligned;
    }
    a->base = p;
    return 0;
}

static zoff_status bind_node(zarena *a, int node)
{
    if (numa_available() < 0) {
        if (node == 0) { /* a kernel without NUMA: node 0 is all the memory there is */
            ZOFF_INFO(ZOFF_SUB_ALLOC,
                      "arena %s: no NUMA support in this kernel; node 0 is the "
                      "only node, not binding",
                      a->name);
            return 0;
        }
        return zoff__err(ZOFF_EINVAL,
                         "arena %s: NUMA node %d asked but this system has no "
                         "NUMA support",
                         a->name, node);
    }
    if (node > numa_max_node() || numa_node_size64(node, NULL) <= 0)
        return zoff__err(ZOFF_EINVAL,
                         "arena %s: NUMA node %d does not exist or has no memory "
                         "(nodes 0..%d)",
                         a->name, node, numa_max_node());
    struct bitmask *bm = numa_allocate_nodemask();
    if (!bm) return zoff__err(-ENOMEM, "arena %s: numa_allocate_nodemask failed", a->name);
    numa_bitmask_setbit(bm, (unsigned)node);
    long rc = mbind(a->base, a->capacity, MPOL_BIND, bm->maskp, bm->size + 1, 0);
    int err = errno;
    numa_bitmask_free(bm);
    if (rc != 0)
        return zoff__err(-err, "arena %s: mbind(%p, %zu, MPOL_BIND, node %d): %s", a->name,
                         (void *)a->base, a->capacity, node, strerror(err));
    a->numa_node = node;
    return 0;
}

/* Locks (prefaulting) and registers with the device. On refusal the region stays pageable,
 * a->locked stays 0 and `why` says what refused. */
static void pin_region(zarena *a, char *why, size_t len)
{
    zarena_pin_limits lim;
    why[0] = '\0';
    if (zarena_pin_limits_get(&lim) < 0) {
        snprintf(why, len, "%s", zoff__last_error_tls());
        return;
    }
    if (!lim.cap_ipc_lock && lim.memlock_cur != UINT64_MAX &&
        (lim.locked_bytes > lim.memlock_cur || a->capacity > lim.memlock_cur - lim.locked_bytes)) {
        char c[32], l[32], u[32];
        snprintf(why, len,
                 "RLIMIT_MEMLOCK is %s with %s already locked, %s needed, and the "
                 "process lacks CAP_IPC_LOCK (raise `ulimit -l` or grant CAP_IPC_LOCK)",
                 zoff__fmt_bytes(lim.memlock_cur, l, sizeof l),
                 zoff__fmt_bytes(lim.locked_bytes, u, sizeof u),
                 zoff__fmt_bytes(a->capacity, c, sizeof c));
        return;
    }
    uint64_t t0 = zoff__now_ns();
    /* The raw system call: sanitizers intercept mlock() and turn it into a no-op. */
    if (syscall(SYS_mlock, a->base, a->capacity) != 0) {
        snprintf(why, len, "mlock of %zu bytes: %s", a->capacity, strerror(errno));
        return;
    }
    a->locked = 1;
    uint64_t t1 = zoff__now_ns();
    ZOFF_INFO(ZOFF_SUB_PIN, "arena %s: locked (and faulted in) %zu bytes in %.1f ms (%.2f GB/s)",
              a->name, a->capacity, zoff__ns_to_ms(t1 - t0),
              t1 > t0 ? (double)a->capacity / (double)(t1 - t0) : 0.0);
    if (a->dev) {
        if (zdev_host_register(a->dev, a->base, a->capacity) < 0) {
            snprintf(why, len, "device %s refused to register it: %s", zdev_name(a->dev),
                     zoff__last_error_tls());
            syscall(SYS_munlock, a->base, a->capacity);
            a->locked = 0;
            return;
        }
        a->registered = 1;
    }
}

zoff_status zarena_create(const zarena_config *cfg, zarena **out)
{
    zoff_status st = 0;
    zarena *a = NULL;
    if (!cfg || !out) return zoff__err(ZOFF_EINVAL, "zarena_create: bad argument");
    if (cfg->bytes == 0) return zoff__err(ZOFF_EINVAL, "zarena_create: zero bytes");
    if (cfg->numa_node < -1)
        return zoff__err(ZOFF_EINVAL, "zarena_create: numa_node %d (use -1 for no binding)",
                         cfg->numa_node);
    a = calloc(1, sizeof *a);
    if (!a) return zoff__err(-ENOMEM, "zarena_create: out of host memory");
    snprintf(a->name, sizeof a->name, "%s", cfg->name ? cfg->name : "arena");
    a->capacity = ZOFF_ALIGN_UP(cfg->bytes, ARENA_PAGE);
    a->numa_node = -1;
    pthread_mutex_init(&a->mu, NULL);

    char cap[32], avail_s[32];
    uint64_t avail = zoff__mem_available();
    if (avail && a->capacity > avail) {
        st = zoff__err(ZOFF_ENOFIT, "arena %s: %s (%zu bytes) asked but MemAvailable is %s",
                       a->name, zoff__fmt_bytes(a->capacity, cap, sizeof cap), a->capacity,
                       zoff__fmt_bytes(avail, avail_s, sizeof avail_s));
        goto fail;
    }

    int want_huge = cfg->huge_pages && zoff__param_int(ZOFF_PARAM_HUGE_PAGES, 1) != 0;
    ZOFF_CHECK_GOTO(map_region(a, want_huge && a->capacity >= ARENA_HUGE), st, fail);
    if (want_huge) {
        if (thp_disabled())
            ZOFF_INFO(ZOFF_SUB_ALLOC,
                      "arena %s: transparent huge pages are disabled "
                      "(/sys/kernel/mm/transparent_hugepage/enabled)",
                      a->name);
        else if (madvise(a->base, a->capacity, MADV_HUGEPAGE) == 0)
            a->huge = 1;
        else
            ZOFF_INFO(ZOFF_SUB_ALLOC, "arena %s: madvise(MADV_HUGEPAGE): %s", a->name,
                      strerror(errno));
    }
    if (cfg->numa_node >= 0) ZOFF_CHECK_GOTO(bind_node(a, cfg->numa_node), st, fail);

    a->dev = cfg->dev;
    if (cfg->pin) {
        char why[512];
        pin_region(a, why, sizeof why);
        if (!a->locked) {
            a->pin_fallback = 1;
            static int warned;
            int lvl =
                __atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED) ? ZOFF_LOG_INFO : ZOFF_LOG_WARN;
            ZOFF_LOG((zoff_log_level)lvl, ZOFF_SUB_PIN,
                     "arena %s: pinning %s was refused (%s); using pageable memory instead: "
                     "host<->device copies will be slower",
                     a->name, zoff__fmt_bytes(a->capacity, cap, sizeof cap), why);
        }
    }

    a->head = calloc(1, sizeof *a->head);
    if (!a->head) {
        st = zoff__err(-ENOMEM, "zarena_create: out of host memory");
        goto fail;
    }
    a->head->bytes = a->capacity;
    ZOFF_INFO(ZOFF_SUB_ALLOC, "arena %s: %s at %p, NUMA node %d, huge pages %s, %s", a->name,
              zoff__fmt_bytes(a->capacity, cap, sizeof cap), (void *)a->base, a->numa_node,
              a->huge ? "on" : "off",
              a->locked ? (a->registered ? "pinned and registered" : "pinned")
                        : (cfg->pin ? "pageable (pinning refused)" : "pageable"));
    *out = a;
    return 0;

fail:
    zarena_destroy(a);
    return st;
}

void zarena_destroy(zarena *a)
{
    if (!a) return;
    if (a->allocations)
        ZOFF_INFO(ZOFF_SUB_ALLOC,
                  "arena %s: destroyed with %zu buffer(s) (%zu bytes) still "
                  "allocated",
                  a->name, a->allocations, a->used);
    if (a->registered) zdev_host_unregister(a->dev, a->base);
    if (a->locked) syscall(SYS_munlock, a->base, a->capacity);
    if (a->base) munmap(a->base, a->capacity);
    for (zarena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- sub-allocator
 * ---------------------------------------------------------------------------------- */
zoff_status zarena_alloc(zarena *a, size_t bytes, const char *tag, void **out)
{
    if (!a || !out || bytes == 0)
        return zoff__err(ZOFF_EINVAL, "zarena_alloc: bad argument (%zu bytes)", bytes);
    if (bytes > a->capacity)
        return zoff__err(ZOFF_ENOFIT, "arena %s: %zu bytes asked for %s, capacity %zu", a->name,
                         bytes, tag ? tag : "?", a->capacity);
    size_t need = ZOFF_ALIGN_UP(bytes, ARENA_PAGE);
    zoff_status st = 0;
    pthread_mutex_lock(&a->mu);
    zarena_block *b = a->head;
    size_t largest = 0;
    for (; b; b = b->next) {
        if (b->used) continue;
        if (b->bytes >= need) break;
        if (b->bytes > largest) largest = b->bytes;
    }
    if (!b) {
        char n[32], f[32], l[32], c[32];
        st = zoff__err(ZOFF_ENOFIT,
                       "arena %s: no room for %s (%s asked): %s free, largest free "
                       "block %s, capacity %s",
                       a->name, tag ? tag : "?", zoff__fmt_bytes(need, n, sizeof n),
                       zoff__fmt_bytes(a->capacity - a->used, f, sizeof f),
                       zoff__fmt_bytes(largest, l, sizeof l),
                       zoff__fmt_bytes(a->capacity, c, sizeof c));
        goto out;
    }
    if (b->bytes > need) { /* split: the rest stays free after this block */
        zarena_block *rest = calloc(1, sizeof *rest);
        if (!rest) {
            st = zoff__err(-ENOMEM, "arena %s: out of host memory for a block", a->name);
            goto out;
        }
        rest->off = b->off + need;
        rest->bytes = b->bytes - need;
        rest->prev = b;
        rest->next = b->next;
        if (b->next) b->next->prev = rest;
        b->next = rest;
        b->bytes = need;
    }
    b->used = 1;
    snprintf(b->tag, sizeof b->tag, "%s", tag ? tag : "");
    a->used += need;
    a->allocations++;
    if (a->used > a->peak) a->peak = a->used;
    *out = a->base + b->off;
    ZOFF_INFO(ZOFF_SUB_ALLOC, "arena %s: alloc %s: %zu bytes at +%zu (used %zu of %zu)", a->name,
              b->tag[0] ? b->tag : "?", need, b->off, a->used, a->capacity);
out:
    pthread_mutex_unlock(&a->mu);
    return st;
}

static void merge_next(zarena_block *b)
{
    zarena_block *n = b->next;
    b->bytes += n->bytes;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    free(n);
}

void zarena_free(zarena *a, void *p)
{
    if (!a || !p) return;
    pthread_mutex_lock(&a->mu);
    zarena_block *b = NULL;
    if ((uint8_t *)p >= a->base && (uint8_t *)p < a->base + a->capacity) {
        size_t off = (size_t)((uint8_t *)p - a->base);
        for (b = a->head; b && !(b->off == off && b->used); b = b->next) {
        }
    }
    if (!b) {
        pthread_mutex_unlock(&a->mu);
        ZOFF_WARN(ZOFF_SUB_ALLOC, "arena %s: free(%p): not a live buffer of this arena; ignored",
                  a->name, p);
        return;
    }
    ZOFF_INFO(ZOFF_SUB_ALLOC, "arena %s: free %s: %zu bytes at +%zu (used %zu of %zu)", a->name,
              b->tag[0] ? b->tag : "?", b->bytes, b->off, a->used - b->bytes, a->capacity);
    a->used -= b->bytes;
    a->allocations--;
    b->used = 0;
    b->tag[0] = '\0';
    if (b->next && !b->next->used) merge_next(b);
    if (b->prev && !b->prev->used) merge_next(b->prev);
    pthread_mutex_unlock(&a->mu);
}

void zarena_get_stats(const zarena *a, zarena_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->numa_node = -1;
    if (!a) return;
    zarena *m = (zarena *)a; /* the mutex is not part of the logical state */
    pthread_mutex_lock(&m->mu);
    out->capacity_bytes = a->capacity;
    out->used_bytes = a->used;
    out->peak_bytes = a->peak;
    out->allocations = a->allocations;
    out->pinned = a->locked;
    out->pin_fallback = a->pin_fallback;
    out->huge_pages = a->huge;
    out->numa_node = a->numa_node;
    out->registered = a->registered;
    for (const zarena_block *b = a->head; b; b = b->next)
        if (!b->used && b->bytes > out->largest_free_bytes) out->largest_free_bytes = b->bytes;
    out->base = a->base;
    pthread_mutex_unlock(&m->mu);
}
