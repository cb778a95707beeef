/*
 * params.c — the environment-parameter table generated from params.def, size parsing, and a
 * few system facts (time, memory, CPUs) every module needs.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const struct {
    const char *env;
    const char *def;
    const char *doc;
} params[] = {
#define X(ident, env, def, doc) {env, def, doc},
#include "params.def"
#undef X
};

const char *zoff__param_str(zoff_param_id id)
{
    if ((int)id < 0 || id >= ZOFF_PARAM_COUNT_) return "";
    const char *v = getenv(params[id].env);
    return (v && v[0]) ? v : params[id].def;
}

int zoff__param_set(zoff_param_id id)
{
    if ((int)id < 0 || id >= ZOFF_PARAM_COUNT_) return 0;
    const char *v = getenv(params[id].env);
    return v && v[0];
}

int64_t zoff__param_int(zoff_param_id id, int64_t fallback)
{
    uint64_t v;
    const char *s = zoff__param_str(id);
    if (s[0] == '-') {
        char *end;
        long long x = strtoll(s, &end, 0);
        return (*end == '\0') ? x : fallback;
    }
    if (zoff__parse_size(s, &v) != 0) return fallback;
    return (int64_t)v;
}

const char *zoff__param_env_name(zoff_param_id id)
{
    return ((int)id >= 0 && id < ZOFF_PARAM_COUNT_) ? params[id].env : "";
}

const char *zoff__param_doc(zoff_param_id id)
{
    return ((int)id >= 0 && id < ZOFF_PARAM_COUNT_) ? params[id].doc : "";
}

const char *zoff__param_default(zoff_param_id id)
{
    return ((int)id >= 0 && id < ZOFF_PARAM_COUNT_) ? params[id].def : "";
}

/* Shared by sizes and counts: a number ("123", "0x1000", "1.5", "1e15") and a suffix. Binary
 * suffixes k/K, M, G, T (optionally "i" and/or "B": "16GiB", "16GB", "16G" are all 16 * 2^30);
 * with `counts`, "B" alone after the number is decimal billions ("7B" = 7e9) and "bn" too. The
 * result must be a whole number below 2^64. */
static zoff_status parse_number(const char *s, int counts, uint64_t *out)
{
    if (!s) return ZOFF_EINVAL;
    while (*s == ' ') s++;
    if (!*s || *s == '-' || *s == '+') return ZOFF_EINVAL;
    char *end;
    errno = 0;
    unsigned long long iv = strtoull(s, &end, 0);
    int exact = 1;
    double dv = 0;
    if (errno == ERANGE) return ZOFF_EINVAL;
    if (end == s) return ZOFF_EINVAL;
    if (*end == '.' || *end == 'e' || *end == 'E') {
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return ZOFF_EINVAL;
        errno = 0;
        dv = strtod(s, &end);
        if (errno || end == s || !(dv >= 0) || dv >= 0x1p64) return ZOFF_EINVAL;
        exact = 0;
    }
    uint64_t mult = 1;
    if (counts && (!strcmp(end, "B") || !strcmp(end, "b") || !strcmp(end, "bn"))) {
        mult = 1000000000ull;
        end += strlen(end);
    } else {
        switch (*end) {
        case '\0':
            break;
        case 'k':
        case 'K':
            mult = 1ull << 10;
            end++;
            break;
        case 'm':
        case 'M':
            mult = 1ull << 20;
            end++;
            break;
        case 'g':
        case 'G':
            mult = 1ull << 30;
            end++;
            break;
        case 't':
        case 'T':
            mult = 1ull << 40;
            end++;
            break;
        case 'b':
        case 'B':
            break; /* plain bytes: "4096B" (counts: handled above) */
        default:
            return ZOFF_EINVAL;
        }
        if (mult > 1 && (*end == 'i' || *end == 'I')) end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (*end != '\0') return ZOFF_EINVAL;
    if (exact) {
        uint64_t r;
        if (__builtin_mul_overflow((uint64_t)iv, mult, &r)) return ZOFF_EINVAL;
        *out = r;
        return ZOFF_OK;
    }
    double r = dv * (double)mult;
    if (!(r < 0x1p64) || r != floor(r)) return ZOFF_EINVAL; /* too large, or not whole */
    *out = (uint64_t)r;
    return ZOFF_OK;
}

zoff_status zoff__parse_size(const char *s, uint64_t *out)
{
    return parse_number(s, 0, out);
}

zoff_status zoff__parse_count(const char *s, uint64_t *out)
{
    return parse_number(s, 1, out);
}

ZOFF_API zoff_status zoff_parse_size(const char *s, uint64_t *bytes)
{
    if (!s || !bytes) return zoff__err(ZOFF_EINVAL, "zoff_parse_size: NULL argument");
    if (parse_number(s, 0, bytes) != ZOFF_OK)
        return zoff__err(ZOFF_EINVAL,
                         "'%.64s' is not a size (a whole number below 2^64 with an optional "
                         "binary suffix K, M, G, T: 16G = 16GiB = 16 * 2^30 bytes)",
                         s);
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_parse_count(const char *s, uint64_t *count)
{
    if (!s || !count) return zoff__err(ZOFF_EINVAL, "zoff_parse_count: NULL argument");
    if (parse_number(s, 1, count) != ZOFF_OK)
        return zoff__err(ZOFF_EINVAL,
                         "'%.64s' is not a count (a whole number below 2^64: 7000000000, 7e9, "
                         "1.5e12, decimal 7B = 7e9, or binary 7G = 7 * 2^30)",
                         s);
    return ZOFF_OK;
}

ZOFF_API const char *zoff_format_bytes(uint64_t bytes, char *buf, size_t len)
{
    if (!buf || len == 0) return "";
    return zoff__fmt_bytes(bytes, buf, len);
}

const char *zoff__fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < ZOFF_ARRAY_SIZE(units)) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.2f %s", v, units[u]);
    return buf;
}

uint64_t zoff__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void zoff__sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

uint64_t zoff__proc_kb(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10) * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

uint64_t zoff__mem_available(void)
{
    return zoff__proc_kb("/proc/meminfo", "MemAvailable");
}

int zoff__ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
