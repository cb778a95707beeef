/*
 * ckpt_int.h — what the checkpoint files share (runtime-internal, behind runtime/ckpt.h): limits,
 * the writer and reader structs, and the helpers one part calls in another. The parts:
 *   ckpt_io.c        file helpers (full pread/pwrite, fsync, small files, mkdir -p) and test hooks
 *   ckpt_dir.c       the checkpoint directory: path split, crash leftovers, atomic swap into place
 *   ckpt_manifest.c  zoff_manifest.json and the safetensors header/__metadata__: build and parse
 *   ckpt_write.c     the streaming writer (zckpt_writer_*)
 *   ckpt_read.c      the reader and whole-file verification (zckpt_reader_*)
 */
#ifndef ZOFF_RUNTIME_CKPT_INT_H
#define ZOFF_RUNTIME_CKPT_INT_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/ckpt.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints store little-endian fp32 and are written straight from memory"
#endif

#define CKPT_PATH_MAX     4096
#define CKPT_META_RESERVE (64 * 1024)          /* header bytes reserved for __metadata__ */
#define CKPT_HEADER_MAX   (100u * 1024 * 1024) /* safetensors readers refuse larger headers */
#define CKPT_MANIFEST_MAX (256u * 1024 * 1024) /* larger manifests are refused */
#define CKPT_DATA_ALIGN   4096                 /* data section starts on a page boundary */
#define CKPT_KICK_BYTES   (64u * 1024 * 1024)  /* start writeback every this many bytes */
#define CKPT_VERIFY_CHUNK (8u * 1024 * 1024)   /* bytes per read in zckpt_reader_verify */
#define CKPT_AHEAD_BYTES  (64u * 1024 * 1024)  /* read-ahead hint after a zckpt_reader_read */
#define EXTRA_MAX         ((size_t)sizeof(((zckpt_meta *)0)->extra_json))

/* ---- writer and reader state --------------------------------------------------------------- */
typedef struct wtensor {
    zckpt_tensor t;
    uint64_t off;     /* bytes from the start of the data section */
    uint64_t written; /* elements written */
    uint32_t crc;
} wtensor;

struct zckpt_writer {
    char dir[CKPT_PATH_MAX];    /* final location */
    char parent[CKPT_PATH_MAX]; /* its parent directory */
    char base[CKPT_PATH_MAX];   /* its last component */
    char tmp[CKPT_PATH_MAX];    /* <dir>.tmp-<pid> */
    char data_path[CKPT_PATH_MAX];
    int fd;
    size_t n;
    wtensor *ts;
    uint64_t header_len; /* JSON header bytes (padded); the data starts at 8 + header_len */
    uint32_t header_crc; /* crc32c of the 8 + header_len header bytes (set by commit) */
    uint64_t data_bytes;
    uint64_t chunks;
    uint64_t unkicked;  /* bytes written since writeback was last started */
    zoff_status err;    /* first failure of a write: commit refuses */
    int format_version; /* written into __metadata__: 2, or 3 for one rank's slice file */
    int own_file;       /* slice file: removed by abort (the directory is rank 0's) */
    char created[32];   /* ISO time written into the header (and the manifest) */
};

/* A data file of the checkpoint: optimizer.safetensors (format 1-2) or one rank's
 * optimizer.rank<r>.safetensors (format 3, several ranks). */
typedef struct rfile {
    char name[64]; /* file name in the directory */
    char path[CKPT_PATH_MAX];
    int fd;
    int rank;                     /* format 3: the rank that wrote it; -1 otherwise */
    uint64_t data_start;          /* 8 + header length */
    uint64_t manifest_data_bytes; /* file size the manifest recorded (0: not recorded) */
    int has_header_crc;           /* format >= 2: header_crc is the manifest's */
    uint32_t header_crc;          /* crc32c of the safetensors header bytes, from the manifest */
} rfile;

/* A stored run of one tensor's elements: the whole tensor (format 1-2) or one rank's slice
 * (format 3), a tensor of its data file named piece_name. */
typedef struct rpiece {
    char
        name[ZCKPT_NAME_MAX + 48]; /* its name in the data file: the tensor's, or "<tensor>[b:e]" */
    size_t tensor;                 /* the tensor it belongs to */
    size_t file;                   /* index in r->files */
    uint64_t begin, numel;         /* elements [begin, begin + numel) of the tensor */
    uint64_t off;                  /* bytes from the start of its file's data section */
    uint32_t crc;                  /* expected, from the manifest */
    uint32_t run;                  /* crc of what a sequential read has read */
} rpiece;

typedef struct rtensor {
    zckpt_tensor t;
    size_t first, count; /* its pieces r->ps[first .. first + count), in element order */
    uint64_t pos;        /* elements read so far (sequential reads) */
    size_t cur;          /* the piece holding pos */
} rtensor;

struct zckpt_reader {
    char dir[CKPT_PATH_MAX]; /* directory read */
    size_t nfiles;
    rfile *files;
    size_t npieces;
    rpiece *ps;
    size_t n;
    rtensor *ts;
    size_t *by_name; /* indices sorted by name */
    zckpt_meta meta;
    zckpt_info info;
};

/* ---- ckpt_io.c ----------------------------------------------------------------------------- */
/* Calls the test fault hook, if any, at a named point. */
void zckpt__fault_point(const char *point, uint64_t count);
/* 0 when a test forced the two-rename fallback (zckpt__set_rename_exchange(0)). */
int zckpt__exchange_enabled(void);
zoff_status zckpt__pwrite_full(int fd, const void *buf, size_t len, uint64_t off, const char *path);
zoff_status zckpt__pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path);
zoff_status zckpt__fsync_path(const char *path, int directory);
/* snprintf for paths: 0, or -ENAMETOOLONG when the result would not fit. */
int zckpt__path_fmt(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reads a whole (small) file into a NUL-terminated buffer (caller frees). */
zoff_status zckpt__read_text(const char *path, size_t max_bytes, char **out, size_t *len);
/* Creates `path` (must not exist), writes `text`, fsyncs. */
zoff_status zckpt__write_file_synced(const char *path, const char *text, size_t len);
/* Creates every missing directory of `path` (like mkdir -p). */
zoff_status zckpt__mkdir_p(const char *path);

/* ---- ckpt_dir.c ---------------------------------------------------------------------------- */
/* Removes a checkpoint-like directory: its regular files, then the directory. Returns 0 when
 * the directory is gone. */
int zckpt__remove_dir(const char *path);
/* Splits a checkpoint path into normalised path, parent directory and base name (each
 * CKPT_PATH_MAX bytes); strips trailing slashes. */
zoff_status zckpt__split_dir(const char *dir, char *norm, char *parent, char *base);
int zckpt__dir_is_empty(const char *path);
int zckpt__has_manifest(const char *dir);
/* The newest "<base>.old-<pid>" next to a missing <dir> that holds a manifest (into out);
 * with dead_only, only those of processes that are gone. */
int zckpt__find_recoverable(const char *parent, const char *base, int dead_only, char *out,
                            size_t len);
/* Before a save: puts back a checkpoint stranded by a crash, removes dead leftovers. */
void zckpt__recover_and_clean(const char *norm, const char *parent, const char *base);
/* Moves the finished temporary directory w->tmp to w->dir (see ckpt.h for the crash
 * behaviour); clears w->tmp once it is no longer the writer's. */
zoff_status zckpt__swap_into_place(zckpt_writer *w);

/* ---- ckpt_manifest.c ----------------------------------------------------------------------- */
/* The safetensors header object of the writer's tensors, without metadata. */
cJSON *zckpt__tensor_header(const zckpt_writer *w);
/* Refuses metadata that cannot be stored (group count, non-finite values, extra not an object). */
zoff_status zckpt__check_meta(const zckpt_writer *w, const zckpt_meta *m);
/* The full safetensors header (8-byte length + JSON padded to w->header_len; caller frees). */
zoff_status zckpt__build_header(zckpt_writer *w, const zckpt_meta *m, const char *created,
                                char **out);
/* The manifest text (caller frees with cJSON_free). */
zoff_status zckpt__build_manifest(zckpt_writer *w, const zckpt_meta *m, const char *created,
                                  char **out);
/* Parses the manifest text into r->meta, r->info, r->ts (allocated), r->n; every value range-
 * checked as the config parser checks it (ZOFF_EFORMAT naming the field). */
zoff_status zckpt__parse_manifest(zckpt_reader *r, const char *text);
/* Format >= 2: the manifest text ends exactly with its own crc32c member, computed over the text
 * before it. ZOFF_ECORRUPT when it does not (any edited byte). */
zoff_status zckpt__check_manifest_crc(const zckpt_reader *r, const char *text);
/* The __metadata__ copies in the safetensors header (step, scaler, groups, extra) against the
 * manifest's values. ZOFF_ECORRUPT naming the first that differs. */
zoff_status zckpt__check_header_meta(const zckpt_reader *r, const rfile *f, const cJSON *metadata);
/* Format 3: the manifest of the rank files (slices of every tensor) written by several ranks. */
zoff_status zckpt__build_manifest_sliced(const char *dir, const zckpt_tensor *tensors, size_t n,
                                         const zckpt_meta *m, const char *created,
                                         const zckpt_file_rec *files, int nfiles,
                                         const zckpt_slice *slices, size_t nslices, char **out);
/* "2026-11-22T10:00:00Z" of now. */
void zckpt__now_iso(char *out, size_t len);
/* ZOFF_EFORMAT "checkpoint <dir>: <message>". */
zoff_status zckpt__ferr(const zckpt_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* ZOFF_RUNTIME_CKPT_INT_H */
