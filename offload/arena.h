/*
 * arena.h — the face of offload/ host memory: a NUMA-aware pinned arena (exact-size mmap,
 * transparent huge pages, bound with libnuma, registered once with the device) with a
 * sub-allocator of 4 KiB-aligned buffers, and the topology choice (hwloc) of the NUMA node and
 * CPU set nearest the GPU.
 *
 * Includes common/, gpu/device.h (to register memory) only.
 */
#ifndef ZOFF_OFFLOAD_ARENA_H
#define ZOFF_OFFLOAD_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "gpu/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zarena zarena;

typedef struct zarena_config {
    size_t bytes;     /* exact capacity (rounded up to 4 KiB only) */
    int numa_node;    /* -1: no binding */
    int pin;          /* 1: mlock + device register; falls back to pageable with one warning */
    int huge_pages;   /* 1: madvise(MADV_HUGEPAGE) (ZOFF_HUGE_PAGES=0 disables) */
    zdev *dev;        /* registers the region with it when pinning; may be NULL */
    const char *name; /* for logs */
} zarena_config;

typedef struct zarena_stats {
    size_t capacity_bytes, used_bytes, peak_bytes;
    size_t allocations;        /* live buffers */
    int pinned;                /* 1: page-locked (mlock; prefaulted) */
    int pin_fallback;          /* 1: pinning was asked but refused: pageable memory */
    int huge_pages;            /* 1: MADV_HUGEPAGE accepted (THP not disabled) */
    int numa_node;             /* -1: unbound */
    int registered;            /* 1: registered with cfg->dev (zdev_host_register) */
    size_t largest_free_bytes; /* largest block an alloc can get now */
    void *base;                /* start of the mapping (2 MiB-aligned when huge pages were asked) */
} zarena_stats;

/* Checks MemAvailable before mapping (ZOFF_ENOFIT with the numbers when the memory is not
 * there) and RLIMIT_MEMLOCK / CAP_IPC_LOCK before locking (refused: pageable memory, one WARN
 * per process, stats.pin_fallback = 1). numa_node that does not exist: ZOFF_EINVAL. Pinning
 * faults in every page (~2 GB/s with 4 KiB pages, faster with huge pages): create arenas once.
 * cfg->dev must outlive the arena. Thread-safe: alloc/free/stats may be called concurrently. */
zoff_status zarena_create(const zarena_config *cfg, zarena **out);
/* Unregisters, unlocks, unmaps. Outstanding buffers become invalid. Accepts NULL. */
void zarena_destroy(zarena *a);
/* A 4 KiB-aligned buffer of `bytes` (rounded up to 4 KiB), logged under ALLOC with `tag`.
 * ZOFF_ENOFIT when the arena is full (message: asked, free, capacity). */
zoff_status zarena_alloc(zarena *a, size_t bytes, const char *tag, void **out);
void zarena_free(zarena *a, void *p);
void zarena_get_stats(const zarena *a, zarena_stats *out);

/* What limits page-locking in this process (for the arena's check and `zoff info`). */
typedef struct zarena_pin_limits {
    uint64_t memlock_cur, memlock_max; /* RLIMIT_MEMLOCK soft / hard; UINT64_MAX = unlimited */
    uint64_t locked_bytes;             /* VmLck: bytes this process has locked now */
    int cap_ipc_lock;                  /* 1: CAP_IPC_LOCK effective (no limit applies) */
} zarena_pin_limits;
zoff_status zarena_pin_limits_get(zarena_pin_limits *out);

/* ---- topology ---------------------------------------------------------------------------- */
#define ZTOPO_MAX_CPUS 1024

typedef struct ztopo_choice {
    int numa_node; /* chosen node, -1 if the machine has no NUMA information */
    int ncpus;     /* cores (PUs) of that node */
    int cpus[ZTOPO_MAX_CPUS];
    int nnodes;       /* NUMA nodes in the machine */
    char reason[256]; /* "nearest to GPU 0000:3b:00.0", "configured", "single node" */
} ztopo_choice;

/* Chooses the NUMA node for a GPU at `pci_bus_id` (NULL: no GPU / sim) unless `forced_node` >= 0
 * (config / ZOFF_NUMA_NODE). Uses the running machine's topology. */
zoff_status ztopo_choose(const char *pci_bus_id, int forced_node, ztopo_choice *out);
/* Same on a topology loaded from an hwloc XML string (tests use synthetic topologies). */
zoff_status ztopo_choose_xml(const char *xml, const char *pci_bus_id, int forced_node,
                             ztopo_choice *out);
/* Splits c's CPUs between `count` ranks that chose the same node: rank `index` gets a contiguous
 * share without overlap (the first cpus % count ranks one more); when there are fewer CPUs than
 * ranks each rank gets one CPU, shared round-robin. `out` = c with the share. */
void ztopo_split_cpus(const ztopo_choice *c, int index, int count, ztopo_choice *out);
/* The swap paths of node-local rank l of L from a comma-separated list: with several paths rank
 * l takes paths l, l+L, l+2L, ... (joined by commas; with fewer paths than ranks, path l % n);
 * one path is shared. Writes at most len bytes (NUL included) to out. */
void ztopo_rank_paths(const char *paths, int l, int L, char *out, size_t len);
/* Binds the calling thread to c's CPUs (all of them; the OS schedules among them). Returns 0,
 * -errno from sched_setaffinity, or ZOFF_EINVAL when c has no CPUs. */
zoff_status ztopo_bind_thread(const ztopo_choice *c);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_OFFLOAD_ARENA_H */
