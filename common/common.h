/*
 * common.h — the face of common/: status helpers, last-error messages, logging, environment
 * parameters, alignment, timing and crc32c. Every module may include it; it includes nothing of
 * zoff but the public header.
 */
#ifndef ZOFF_COMMON_H
#define ZOFF_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "zoff.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------------ */
/* Records the calling thread's last error message (printf-style) and returns `st`, so that
 * `return zoff__err(-ENOSPC, "fallocate %s: %s", path, strerror(ENOSPC));` works. The message
 * is also logged at INFO under `subsys`. */
zoff_status zoff__err(zoff_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last error message ("" if none). */
const char *zoff__last_error_tls(void);
void zoff__clear_error(void);

/* Pass an error up, keeping a breadcrumb in the log. */
#define ZOFF_CHECK(call)                                                                           \
    do {                                                                                           \
        zoff_status zoff__st = (call);                                                             \
        if (zoff__st < 0) {                                                                        \
            ZOFF_TRACE_LOG(ZOFF_SUB_ALL, "%s:%d %s -> %s", __FILE__, __LINE__, #call,              \
                           zoff_status_name(zoff__st));                                            \
            return zoff__st;                                                                       \
        }                                                                                          \
    } while (0)

/* Store the first error in `st` and jump to `label`. */
#define ZOFF_CHECK_GOTO(call, st, label)                                                           \
    do {                                                                                           \
        zoff_status zoff__st = (call);                                                             \
        if (zoff__st < 0) {                                                                        \
            ZOFF_TRACE_LOG(ZOFF_SUB_ALL, "%s:%d %s -> %s", __FILE__, __LINE__, #call,              \
                           zoff_status_name(zoff__st));                                            \
            if ((st) == 0) (st) = zoff__st;                                                        \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

/* Run a syscall-like expression that returns -1 and sets errno, retrying on EINTR;
 * on failure evaluates to -errno, otherwise to the (non-negative) result. */
#define ZOFF_SYS(expr)                                                                             \
    ({                                                                                             \
        long zoff__r;                                                                              \
        do {                                                                                       \
            zoff__r = (long)(expr);                                                                \
        } while (zoff__r == -1 && errno == EINTR);                                                 \
        zoff__r == -1 ? (long)-errno : zoff__r;                                                    \
    })

/* ---- logging ----------------------------------------------------------------------------- */
typedef enum zoff_log_level {
    ZOFF_LOG_NONE = 0,
    ZOFF_LOG_WARN = 1,
    ZOFF_LOG_INFO = 2,
    ZOFF_LOG_TRACE = 3,
} zoff_log_level;

enum {
    ZOFF_SUB_INIT = 1u << 0,
    ZOFF_SUB_ALLOC = 1u << 1,
    ZOFF_SUB_PIN = 1u << 2,
    ZOFF_SUB_NVME = 1u << 3,
    ZOFF_SUB_ADAM = 1u << 4,
    ZOFF_SUB_XFER = 1u << 5,
    ZOFF_SUB_STEP = 1u << 6,
    ZOFF_SUB_CKPT = 1u << 7,
    ZOFF_SUB_CONFIG = 1u << 8,
    ZOFF_SUB_DEV = 1u << 9,
    ZOFF_SUB_ALL = 0xffffffffu,
};

/* Current settings, parsed once from ZOFF_DEBUG / ZOFF_DEBUG_SUBSYS. */
zoff_log_level zoff__log_level(void);
int zoff__log_enabled(zoff_log_level lvl, unsigned subsys);
void zoff__log(zoff_log_level lvl, unsigned subsys, const char *file, int line, const char *fmt,
               ...) __attribute__((format(printf, 5, 6)));
/* Re-read the environment (tests change ZOFF_DEBUG at run time). */
void zoff__log_reinit(void);

#define ZOFF_LOG(lvl, sub, ...)                                                                    \
    do {                                                                                           \
        if (zoff__log_enabled((lvl), (sub)))                                                       \
            zoff__log((lvl), (sub), __FILE__, __LINE__, __VA_ARGS__);                              \
    } while (0)
#define ZOFF_WARN(sub, ...)      ZOFF_LOG(ZOFF_LOG_WARN, (sub), __VA_ARGS__)
#define ZOFF_INFO(sub, ...)      ZOFF_LOG(ZOFF_LOG_INFO, (sub), __VA_ARGS__)
#define ZOFF_TRACE_LOG(sub, ...) ZOFF_LOG(ZOFF_LOG_TRACE, (sub), __VA_ARGS__)
/* Log once per process (a fallback announced once). */
#define ZOFF_LOG_ONCE(lvl, sub, ...)                                                               \
    do {                                                                                           \
        static int zoff__once;                                                                     \
        if (!__atomic_exchange_n(&zoff__once, 1, __ATOMIC_RELAXED))                                \
            ZOFF_LOG(lvl, sub, __VA_ARGS__);                                                       \
    } while (0)

/* ---- environment parameters (common/params.def) ------------------------------------------ */
typedef enum zoff_param_id {
#define X(ident, env, def, doc) ZOFF_PARAM_##ident,
#include "params.def"
#undef X
    ZOFF_PARAM_COUNT_
} zoff_param_id;

/* The value of a parameter: the environment variable if set and non-empty, else its default.
 * Read from the environment at every call (cheap; callers read at create time). */
const char *zoff__param_str(zoff_param_id id);
/* Parsed as an integer (accepts 0x.., k/m/g suffixes); returns `fallback` if unparsable. */
int64_t zoff__param_int(zoff_param_id id, int64_t fallback);
/* 1 if the variable is set to a non-empty value. */
int zoff__param_set(zoff_param_id id);
const char *zoff__param_env_name(zoff_param_id id);
const char *zoff__param_doc(zoff_param_id id);
const char *zoff__param_default(zoff_param_id id);

/* Parses "123", "4k", "16M", "2GiB", "0x1000", "1.5G", "1e9" (k = 1024; a fraction or exponent
 * must give a whole number). Returns 0 or ZOFF_EINVAL (no message set). */
zoff_status zoff__parse_size(const char *s, uint64_t *out);
/* Like zoff__parse_size for counts (parameters): "7B" / "7bn" are decimal billions (7e9). */
zoff_status zoff__parse_count(const char *s, uint64_t *out);

/* ---- alignment, sizes -------------------------------------------------------------------- */
#define ZOFF_ALIGN_UP(x, a)   ((((x) + (a)-1) / (a)) * (a))
#define ZOFF_ALIGN_DOWN(x, a) (((x) / (a)) * (a))
#define ZOFF_IS_ALIGNED(x, a) (((uintptr_t)(x) % (a)) == 0)
#define ZOFF_MIN(a, b)        ((a) < (b) ? (a) : (b))
#define ZOFF_MAX(a, b)        ((a) > (b) ? (a) : (b))
#define ZOFF_ARRAY_SIZE(a)    (sizeof(a) / sizeof((a)[0]))
#define ZOFF_KIB              ((size_t)1024)
#define ZOFF_MIB              ((size_t)1024 * 1024)
#define ZOFF_GIB              ((size_t)1024 * 1024 * 1024)

/* Formats `bytes` as "1.50 GiB" into buf; returns buf. */
const char *zoff__fmt_bytes(uint64_t bytes, char *buf, size_t len);

/* ---- time -------------------------------------------------------------------------------- */
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t zoff__now_ns(void);
static inline double zoff__ns_to_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}
/* Sleeps `ns` nanoseconds (restarts on EINTR). */
void zoff__sleep_ns(uint64_t ns);

/* ---- crc32c (Castagnoli) ------------------------------------------------------------------ */
/* crc32c of `len` bytes continuing from `crc` (start with 0). Uses the SSE4.2 crc32 instruction
 * when the CPU has it, a table otherwise; both give identical results. */
uint32_t zoff__crc32c(uint32_t crc, const void *data, size_t len);
/* The table version, for tests. */
uint32_t zoff__crc32c_sw(uint32_t crc, const void *data, size_t len);
/* 1 if the hardware path is in use. */
int zoff__crc32c_hw(void);

/* ---- system facts ------------------------------------------------------------------------ */
/* The value of a "Key:   123 kB" line of a /proc file (/proc/meminfo, /proc/self/status) in
 * bytes; 0 if the file or key is absent. */
uint64_t zoff__proc_kb(const char *file, const char *key);
/* MemAvailable from /proc/meminfo in bytes (0 if unknown). */
uint64_t zoff__mem_available(void);
/* Online CPUs. */
int zoff__ncpus(void);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_COMMON_H */
