/*
 * trace.h — Chrome/Perfetto trace writer (runtime-internal), enabled by ZOFF_TRACE=file.json or
 * config trace_path. Each event is a complete ("X") event on a named track (a "thread" of the
 * trace): one per device stream, per CPU phase (grads, adam, upload), per NVMe direction.
 * Thread-safe; events are buffered and written at zztrace_close (the JSON is always well formed).
 */
#ifndef ZOFF_RUNTIME_TRACE_H
#define ZOFF_RUNTIME_TRACE_H

#include <stdint.h>

#include "common/common.h"

typedef struct zztrace zztrace;

/* Opens a trace to `path`; NULL path or "": returns NULL-equivalent disabled trace (*out = NULL,
 * ZOFF_OK). All functions accept a NULL trace and do nothing. */
zoff_status zztrace_open(const char *path, zztrace **out);
/* Writes the file and frees. */
zoff_status zztrace_close(zztrace *t);
/* A track id for `name` (created on first use). */
int zztrace_track(zztrace *t, const char *name);
/* A complete event on a track: name, start and end in zoff__now_ns() time, optional args
 * (a JSON object text or NULL). */
void zztrace_event(zztrace *t, int track, const char *name, uint64_t start_ns, uint64_t end_ns,
                   const char *args_json);

#endif /* ZOFF_RUNTIME_TRACE_H */
