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
 *
 * Crash recovery (docs/checkpoints.md): the swap is one renameat2(RENAME_EXCHANGE) where the
 * filesystem has it, so `<dir>` is never missing. Without it, `<dir>` is renamed to
 * `<dir>.old-<pid>` first; if the process dies between the two renames, zckpt_reader_open(dir)
 * reads that `.old-<pid>` (the previous, whole checkpoint) and the next zckpt_writer_open puts
 * it back at `<dir>`. `.tmp-*` leftovers are never read; leftovers of dead processes are removed
 * by the next zckpt_writer_open for the same `<dir>`.
 *
 * Thread safety: a writer or a reader is used by one thread at a time; distinct ones are
 * independent. One writer per `<dir>` at a time.
 */
#ifndef ZOFF_RUNTIME_CKPT_H
#define ZOFF_RUNTIME_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* 2: the manifest ends with its own crc32c ("manifest_crc32c") and records the crc32c of the
 * safetensors header ("header_crc32c"); version 1 checkpoints (no such checksums) still load. */
#define ZCKPT_FORMAT_VERSION 2
/* 3: written by several ranks: every rank writes the slices its range covers into its own
 * "optimizer.rank<r>.safetensors", and the manifest lists each tensor's slices (file, element
 * range, offset, crc32c) and each file's size and header crc32c. Readers read 1 to 3. */
#define ZCKPT_FORMAT_SLICED 3
#define ZCKPT_FORMAT_MAX    3
#define ZCKPT_DATA_FILE     "optimizer.safetensors"
#define ZCKPT_MANIFEST_FILE "zoff_manifest.json"
/* tensor names: a parameter name (< 245 bytes) + ".exp_avg_sq" + a slice suffix "[b:e]" */
#define ZCKPT_NAME_MAX 320

typedef struct zckpt_tensor {
    char name[ZCKPT_NAME_MAX]; /* full tensor name, e.g. "layer0.w.exp_avg" */
    uint64_t numel;            /* fp32 elements */
    /* a ".master" tensor may carry its parameter's Adam step count (manifest key "step" of the
     * tensor's entry; absent in checkpoints written before per-parameter step counts) */
    int has_step; /* 1: adam_step is stored / was read */
    int64_t adam_step;
} zckpt_tensor;

/* Everything but the tensors: stored in the manifest (and copied into __metadata__). */
typedef struct zckpt_meta {
    int64_t step;
    float loss_scale;
    int64_t scaler_good_steps; /* clean steps since the last scale change */
    int scaler_hysteresis;     /* remaining hysteresis */
    int ngroups;
    zoff_group_config groups[ZOFF_MAX_GROUPS];
    char extra_json[4096]; /* "" or a JSON object text stored under "extra" (trainer state) */
    /* the run's optimizer and moment format ("adam", "fp32", ...; "" when a checkpoint written
     * before they were recorded: Adam, fp32). The tensors always hold fp32 moments. */
    char optimizer[16];
    char state_format[16];
    /* the step pipeline (manifest object "pipeline"; absent in older checkpoints: all 0) */
    int pipeline_overlap;        /* the zoff_overlap of the run that saved */
    int64_t pipeline_steps;      /* steps since its finalize/load (the delayed warm-up) */
    int pipeline_delayed_update; /* 1: `delayed` had an update whose 16-bit params were not on
                                    the device yet: "<name>.device_param" tensors hold what the
                                    device had (the master is one update ahead) */
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

/* ---- several ranks (format 3): each rank writes its slices, rank 0 the manifest ------------
 * 1. rank 0: zckpt_slices_begin(dir) cleans leftovers, checks dir and creates the temporary
 *    directory "<dir>.tmp-<pid>" (pid = rank 0's), named to every rank by zckpt_slices_tmp_path;
 * 2. every rank: zckpt_slice_writer_open(dir, tmp, rank, pieces) + zckpt_writer_write (piece by
 *    piece, chunks in order) + zckpt_slice_writer_finish: "optimizer.rank<r>.safetensors",
 *    a standard safetensors file whose tensors are named "<tensor>[begin:end]", fsynced;
 * 3. rank 0, after gathering every rank's records: zckpt_slices_commit writes the manifest,
 *    fsyncs the directory and swaps it into place as the single-file writer does; or
 *    zckpt_slices_abort removes the temporary directory (the previous checkpoint stays). */
typedef struct zckpt_slice {
    size_t tensor;   /* index in the checkpoint's tensor list */
    int file;        /* rank whose file holds it */
    uint64_t begin;  /* first element of the tensor */
    uint64_t count;  /* elements (> 0) */
    uint64_t offset; /* bytes from the start of the file's data section */
    uint32_t crc32c;
} zckpt_slice;

typedef struct zckpt_file_rec {
    uint64_t bytes;      /* file size */
    uint32_t header_crc; /* crc32c of its 8-byte length + header JSON */
} zckpt_file_rec;

/* "optimizer.rank00002.safetensors" */
void zckpt_slice_file_name(int rank, char *out, size_t len);
zoff_status zckpt_slices_tmp_path(const char *dir, long pid, char *out, size_t len);
/* Rank 0, step 1: as zckpt_writer_open does for the directory; *pid names the temporary dir. */
zoff_status zckpt_slices_begin(const char *dir, long *pid);
/* Step 2: pieces[i].name is "<tensor>[b:e]", numel its element count. */
zoff_status zckpt_slice_writer_open(const char *dir, const char *tmp, int rank,
                                    const zckpt_tensor *pieces, size_t n, zckpt_writer **out);
/* Writes the header (metadata copy), fsyncs and closes; offsets[i] and crcs[i] of piece i.
 * Frees w; on failure the file is removed. */
zoff_status zckpt_slice_writer_finish(zckpt_writer *w, const zckpt_meta *meta, uint64_t *offsets,
                                      uint32_t *crcs, zckpt_file_rec *rec);
/* Step 3 (rank 0): files[r] for r < nfiles, slices of every tensor (any order). Removes the
 * temporary directory on failure. */
zoff_status zckpt_slices_commit(const char *dir, const char *tmp, const zckpt_tensor *tensors,
                                size_t ntensors, const zckpt_meta *meta,
                                const zckpt_file_rec *files, int nfiles, const zckpt_slice *slices,
                                size_t nslices);
void zckpt_slices_abort(const char *tmp);

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
/* Verifies every tensor's crc32c by streaming through the file (no state is touched).
 * ZOFF_ECORRUPT naming the first bad tensor (and how many are bad). */
zoff_status zckpt_reader_verify(zckpt_reader *r);
/* Restarts the sequential read of tensor idx at its first element (e.g. to read it again). */
zoff_status zckpt_reader_rewind(zckpt_reader *r, size_t idx);
/* Where tensor idx lies in optimizer.safetensors (bytes from the start of the file) and its
 * crc32c from the manifest. Either pointer may be NULL. */
zoff_status zckpt_reader_tensor_info(const zckpt_reader *r, size_t idx, uint64_t *file_offset,
                                     uint32_t *crc32c);

/* Random access for a reader with several ranks: reads elements [begin, begin + numel) of
 * tensor idx from whichever pieces (slices) hold them. Every piece touched is read whole and its
 * crc32c checked (ZOFF_ECORRUPT naming the file and byte range); data may be NULL: then it only
 * verifies the pieces that cover the range. */
zoff_status zckpt_reader_read_range(zckpt_reader *r, size_t idx, uint64_t begin, float *data,
                                    uint64_t numel);
/* Where tensor idx's pieces are: k < *count (one per tensor before format 3). */
typedef struct zckpt_piece_info {
    const char *file;     /* file name in the checkpoint directory */
    int rank;             /* format 3: the rank that wrote it; -1 otherwise */
    uint64_t begin;       /* first element of the tensor */
    uint64_t numel;       /* elements */
    uint64_t file_offset; /* bytes from the start of the file */
    uint32_t crc32c;
} zckpt_piece_info;
size_t zckpt_reader_piece_count(const zckpt_reader *r, size_t idx);
zoff_status zckpt_reader_piece(const zckpt_reader *r, size_t idx, size_t k, zckpt_piece_info *out);

/* Facts about the checkpoint for `zoff ckpt show`. */
typedef struct zckpt_info {
    int format_version;
    char zoff_version[32];         /* version of zoff that wrote it */
    char created[32];              /* ISO 8601 UTC, e.g. "2026-11-22T10:00:00Z" */
    uint64_t data_bytes;           /* size of optimizer.safetensors (all data files) */
    int nfiles;                    /* data files (format 3: one per rank that saved) */
    uint64_t total_numel;          /* elements over all tensors */
    int recovered;                 /* 1: <dir> was missing and a <dir>.old-<pid> was read instead */
    char path[ZOFF_PATH_MAX + 32]; /* the directory actually read */
} zckpt_info;
zoff_status zckpt_reader_info(const zckpt_reader *r, zckpt_info *out);

/* Checks, before training, that a checkpoint can be written at `dir`: its parent exists (created
 * like mkdir -p) and is writable (-EROFS / -EACCES naming it), `dir` is absent, empty or a zoff
 * checkpoint (-ENOTDIR / -EEXIST otherwise: never replace someone's directory), and the
 * filesystem has `need_bytes` free (a new checkpoint is written next to the previous one, which
 * is removed only after; ZOFF_ENOFIT naming need and free space; filesystems without a size are
 * not checked). With lock_fd, also locks the target for this process (a file
 * "<parent>/.<base>.zoff-lock" holding the pid, flock'ed): -EBUSY naming the other run's pid when
 * another process holds it; *lock_fd is then the lock to close (zckpt_target_unlock). */
zoff_status zckpt_target_check(const char *dir, uint64_t need_bytes, int *lock_fd);
/* Releases a lock of zckpt_target_check (removes the lock file). Accepts -1. */
void zckpt_target_unlock(const char *dir, int lock_fd);
/* The bytes a checkpoint of these tensors takes on disk (header estimate included). */
uint64_t zckpt_bytes_for(uint64_t ntensors, uint64_t total_numel);

/* ---- test hooks (crash-safety tests; not for production use) ------------------------------ */
/* Called by the writer at named points: "open" (temporary directory and data file created),
 * "chunk" (after each zckpt_writer_write that wrote data; count = chunks so far), "header",
 * "synced" (data fsynced), "manifest" (manifest written and fsynced), "aside" (fallback path
 * only: the old <dir> renamed to <dir>.old-<pid>), "swapped" (the new checkpoint is at <dir>,
 * the old one not yet removed). A test's hook may kill the process there. Process-wide; NULL
 * removes it. */
typedef void (*zckpt_fault_fn)(const char *point, uint64_t count, void *arg);
void zckpt__set_fault_hook(zckpt_fault_fn fn, void *arg);
/* 0 forces the two-rename fallback (as on a filesystem without RENAME_EXCHANGE); 1 (default)
 * uses the exchange where available. Process-wide. */
void zckpt__set_rename_exchange(int enabled);

#endif /* ZOFF_RUNTIME_CKPT_H */
