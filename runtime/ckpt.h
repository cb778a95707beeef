/*
 * ckpt.h — checkpoint files (runtime-internal): a streaming writer and a reader of
 * `optimizer.safetensors` (standard safetensors: 8-byte little-endian header length, JSON header
 * {"name": {"dtype": "F32", "shape": [n], "data_offsets": [b, e]}, "__metadata__": {...}}, then
 * the data) plus `zoff_manifest.json` (format version, step, scaler state, groups, per-tensor
 * crc32c and shape). A checkpoint is written into `<dir>.tmp-<pid>`, fsynced, and renamed over
 * `<dir>` (the old one is moved aside and removed only after the rename), so a crash at any point
 * leaves a whole checkpoint at `<dir>`.
 *
 * Tensors are fp32 and 1-D here; each parameter contributes "<name>.master", "<name>.exp_avg",
 * "<name>.exp_avg_sq". Data is streamed in chunks (partition by partition from NVMe): the whole
 * state never needs to be in RAM.
 */
#ifndef ZOFF_RUNTIME_CKPT_H
#define ZOFF_RUNTIME_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define ZCKPT_FORMAT_VERSION 1
#define ZCKPT_DATA_FILE "optimizer.safetensors"
#define ZCKPT_MANIFEST_FILE "zoff_manifest.json"
#define ZCKPT_NAME_MAX 256

typedef struct zckpt_tensor {
    char name[ZCKPT_NAME_MAX]; /* full tensor name, e.g. "layer0.w.exp_avg" */
    uint64_t numel;            /* fp32 elements */
} zckpt_tensor;

/* Everything but the tensors: stored in the manifest (and copied into __metadata__). */
typedef struct zckpt_meta {
    int64_t step;
    float loss_scale;
    int64_t scaler_good_steps; /* clean steps since the last scale change */
    int scaler_hysteresis;     /* remaining hysteresis */
    int ngroups;
    zoff_group_config groups[ZOFF_MAX_GROUPS];
    char extra_json[4096];     /* "" or a JSON object text stored under "extra" (trainer state) */
} zckpt_meta;

typedef struct zckpt_writer zckpt_writer;

/* Starts a checkpoint for `dir` with these tensors (their order is the file order). */
zoff_status zckpt_writer_open(const char *dir, const zckpt_tensor *tensors, size_t ntensors,
                              zckpt_writer **out);
/* Appends the next `numel` values of tensor `idx` (tensors may be written in any order, each
 * one's chunks in order). Checksums are computed as data passes. */
zoff_status zckpt_writer_write(zckpt_writer *w, size_t idx, const float *data, uint64_t numel);
/* Checks every tensor was fully written, writes the manifest, fsyncs, renames into place.
 * Frees w whatever the outcome; on failure the previous checkpoint at dir is untouched. */
zoff_status zckpt_writer_commit(zckpt_writer *w, const zckpt_meta *meta);
/* Abandons the checkpoint (removes the temporary directory). Accepts NULL. */
void zckpt_writer_abort(zckpt_writer *w);

typedef struct zckpt_reader zckpt_reader;

/* Opens and validates a checkpoint: manifest parses, format version known, safetensors header
 * consistent with the manifest and the file size (ZOFF_EFORMAT naming the problem). */
zoff_status zckpt_reader_open(const char *dir, zckpt_reader **out);
void zckpt_reader_close(zckpt_reader *r);
zoff_status zckpt_reader_meta(const zckpt_reader *r, zckpt_meta *out);
size_t zckpt_reader_count(const zckpt_reader *r);
const zckpt_tensor *zckpt_reader_tensor(const zckpt_reader *r, size_t idx);
/* Index of the tensor called `name`, or ZOFF_ENOTFOUND. */
zoff_status zckpt_reader_find(const zckpt_reader *r, const char *name, size_t *idx);
/* Reads the next `numel` values of tensor idx (sequential per tensor). When the last chunk of a
 * tensor is read its crc32c is checked: ZOFF_ECORRUPT naming the tensor on mismatch (callers
 * must not commit state before the whole tensor is verified; see zckpt_reader_verify). */
zoff_status zckpt_reader_read(zckpt_reader *r, size_t idx, float *data, uint64_t numel);
/* Verifies every tensor's crc32c by streaming through the file (no state is touched). */
zoff_status zckpt_reader_verify(zckpt_reader *r);

#endif /* ZOFF_RUNTIME_CKPT_H */
