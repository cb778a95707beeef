/*
 * swap_internal.h — filesystem helpers of the swap store, private to nvme/ (swapdir.c): the
 * per-run directory (created under a temporary name, flock-locked, then renamed into place),
 * reclaim of directories left by dead runs, the O_DIRECT probe and preallocation with its
 * fallbacks.
 */
#ifndef ZOFF_NVME_SWAP_INTERNAL_H
#define ZOFF_NVME_SWAP_INTERNAL_H

#include <stdint.h>

#include "nvme/swap.h"

#define ZSWAP_DIR_PREFIX  "zoff-swap-"
#define ZSWAP_INIT_PREFIX ".zoff-init-"
#define ZSWAP_LOCK_NAME   "lock"

typedef struct zswap_rundir {
    char *base;  /* the configured path */
    char *dir;   /* base/<run name> */
    int lock_fd; /* holds LOCK_EX for the life of the store; -1 when closed */
} zswap_rundir;

/* Removes every "zoff-swap-*" (and ".zoff-init-*") directory under base whose lock file is not
 * held by a live process. Logs each at INFO. Returns how many were removed (problems with one
 * directory are logged and skipped, never fatal). */
int zswap__reclaim_stale(const char *base);

/* Creates and locks base/name. Fails with -EEXIST (message names it) if a live run holds a
 * directory of that name. On success *d owns the strings and the lock fd. */
zoff_status zswap__rundir_create(const char *base, const char *name, zswap_rundir *d);
/* Removes the files in d->dir, the directory, and releases the lock. Safe on a zeroed d. */
void zswap__rundir_remove(zswap_rundir *d);

/* *ok = 1 when a file in dir can be opened with O_DIRECT and written with a 4 KiB aligned
 * buffer; 0 when the filesystem refuses O_DIRECT (EINVAL). Other failures are returned. */
zoff_status zswap__probe_odirect(const char *dir, int *ok);

/* Gives fd `bytes` of allocated space: fallocate, else posix_fallocate, else ftruncate and
 * zero writes (each fallback logged once at INFO). Errors name `path`. */
zoff_status zswap__preallocate(int fd, const char *path, uint64_t bytes);

#endif /* ZOFF_NVME_SWAP_INTERNAL_H */
