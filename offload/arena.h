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
    size_t bytes;      /* exact capacity (rounded up to 4 KiB only) */
    int numa_node;     /* -1: no binding */
    int pin;           /* 1: mlock + device register; falls back to pageable with one warning */
    int huge_pages;    /* 1: madvise(MADV_HUGEPAGE) (ZOFF_HUGE_PAGES=0 disables) */
    zdev *dev;         /* registers the region with it when pinning; may be NULL */
    const char *name;  /* for logs */
} zarena_config;

typedef struct zarena_stats {
    size_t capacity_bytes, used_bytes, peak_bytes;
    size_t allocations;
    int pinned;        /* 1: locked and registered */
    int pin_fallback;  /* 1: pinning was asked but refused */
    int huge_pages;    /* 1: MADV_HUGEPAGE accepted */
    int numa_node;     /* -1: unbound */
} zarena_stats;

/* Checks RLIMIT_MEMLOCK (and CAP_IPC_LOCK) and MemAvailable before mapping: ZOFF_ENOFIT with the
 * numbers when the memory is not there. */
zoff_status zarena_create(const zarena_config *cfg, zarena **out);
/* Unregisters, unmaps. Outstanding buffers become invalid. Accepts NULL. */
void zarena_destroy(zarena *a);
/* A 4 KiB-aligned buffer of `bytes` (rounded up to 4 KiB), logged under ALLOC with `tag`.
 * ZOFF_ENOFIT when the arena is full (message: asked, free, capacity). */
zoff_status zarena_alloc(zarena *a, size_t bytes, const char *tag, void **out);
void zarena_free(zarena *a, void *p);
void zarena_get_stats(const zarena *a, zarena_stats *out);

/* ---- topology ---------------------------------------------------------------------------- */
#define ZTOPO_MAX_CPUS 1024

typedef struct ztopo_choice {
    int numa_node;         /* chosen node, -1 if the machine has no NUMA information */
    int ncpus;             /* cores (PUs) of that node */
    int cpus[ZTOPO_MAX_CPUS];
    int nnodes;            /* NUMA nodes in the machine */
    char reason[256];      /* "nearest to GPU 0000:3b:00.0", "configured", "single node" */
} ztopo_choice;

/* Chooses the NUMA node for a GPU at `pci_bus_id` (NULL: no GPU / sim) unless `forced_node` >= 0
 * (config / ZOFF_NUMA_NODE). Uses the running machine's topology. */
zoff_status ztopo_choose(const char *pci_bus_id, int forced_node, ztopo_choice *out);
/* Same on a topology loaded from an hwloc XML string (tests use synthetic topologies). */
zoff_status ztopo_choose_xml(const char *xml, const char *pci_bus_id, int forced_node,
                             ztopo_choice *out);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_OFFLOAD_ARENA_H */
