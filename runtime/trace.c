/*
 * trace.c — the Chrome/Perfetto trace writer behind runtime/trace.h. Owns the event buffer of
 * one trace: complete ("X") events and named tracks are appended under a mutex (event names are
 * interned, args texts copied into one string arena) and the whole file is written at
 * zztrace_close as {"traceEvents": [...]} with "M" metadata events naming the tracks. The output
 * file is opened at zztrace_open so a bad path fails early. A NULL trace is a no-op everywhere.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/trace.h"

#define TRACE_MAX_EVENTS ((size_t)1 << 22) /* 4M events (~128 MiB); later ones are counted */
#define NO_ARGS          SIZE_MAX

typedef struct trace_event {
    int track;
    size_t name_off; /* in strs */
    size_t args_off; /* in strs, NO_ARGS when none */
    uint64_t start_ns, dur_ns;
} trace_event;

struct zztrace {
    pthread_mutex_t mu;
    char *path;
    FILE *out;
    uint64_t t0_ns; /* trace time 0 (zztrace_open) */

    trace_event *ev;
    size_t nev, ev_cap;
    uint64_t dropped; /* events past TRACE_MAX_EVENTS or with invalid args */

    char *strs; /* NUL-separated strings */
    size_t strs_len, strs_cap;

    size_t *name_slots; /* open-addressing set of interned names: offset + 1, 0 = empty */
    size_t name_cap, nnames;

    char **tracks; /* tracks[i] is track id i + 1 */
    int ntracks, tracks_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return 0;
    *p = q;
    *cap = n;
    return 1;
}

static size_t add_string(zztrace *t, const char *s)
{
    size_t n = strlen(s) + 1;
    if (!grow((void **)&t->strs, &t->strs_cap, t->strs_len + n, 1)) return NO_ARGS;
    size_t off = t->strs_len;
    memcpy(t->strs + off, s, n);
    t->strs_len += n;
    return off;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Offset of the interned copy of `name` (added on first use), NO_ARGS on allocation failure. */
static size_t intern(zztrace *t, const char *name)
{
    if ((t->nnames + 1) * 2 > t->name_cap) {
        size_t cap = t->name_cap ? t->name_cap * 2 : 256;
        size_t *slots = calloc(cap, sizeof *slots);
        if (!slots) return NO_ARGS;
        for (size_t i = 0; i < t->name_cap; i++) {
            if (!t->name_slots[i]) continue;
            size_t j = hash_str(t->strs + t->name_slots[i] - 1) & (cap - 1);
            while (slots[j]) j = (j + 1) & (cap - 1);
            slots[j] = t->name_slots[i];
        }
        free(t->name_slots);
        t->name_slots = slots;
        t->name_cap = cap;
    }
    size_t j = hash_str(name) & (t->name_cap - 1);
    while (t->name_slots[j]) {
        if (strcmp(t->strs + t->name_slots[j] - 1, name) == 0) return t->name_slots[j] - 1;
        j = (j + 1) & (t->name_cap - 1);
    }
    size_t off = add_string(t, name);
    if (off == NO_ARGS) return NO_ARGS;
    t->name_slots[j] = off + 1;
    t->nnames++;
    return off;
}

zoff_status zztrace_open(const char *path, zztrace **out)
{
    zoff_status st = ZOFF_OK;
    if (!out) return zoff__err(ZOFF_EINVAL, "zztrace_open: NULL out");
    *out = NULL;
    if (!path || !path[0]) return ZOFF_OK;
    zztrace *t = calloc(1, sizeof *t);
    if (!t) return zoff__err(-ENOMEM, "trace %s: cannot allocate", path);
    pthread_mutex_init(&t->mu, NULL);
    t->path = strdup(path);
    if (!t->path) {
        st = zoff__err(-ENOMEM, "trace %s: cannot allocate", path);
        goto fail;
    }
    t->out = fopen(path, "we");
    if (!t->out) {
        st = zoff__err(-errno, "trace: fopen %s: %s", path, strerror(errno));
        goto fail;
    }
    t->t0_ns = zoff__now_ns();
    *out = t;
    ZOFF_INFO(ZOFF_SUB_INIT, "trace: recording to %s (written at the end of the run)", path);
    return ZOFF_OK;
fail:
    pthread_mutex_destroy(&t->mu);
    free(t->path);
    free(t);
    return st;
}

int zztrace_track(zztrace *t, const char *name)
{
    if (!t || !name) return 0;
    int id = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->ntracks; i++) {
        if (strcmp(t->tracks[i], name) == 0) {
            id = i + 1;
            goto out;
        }
    }
    size_t cap = (size_t)t->tracks_cap;
    if (!grow((void **)&t->tracks, &cap, (size_t)t->ntracks + 1, sizeof *t->tracks)) goto out;
    t->tracks_cap = (int)cap;
    char *copy = strdup(name);
    if (!copy) goto out;
    t->tracks[t->ntracks++] = copy;
    id = t->ntracks;
out:
    pthread_mutex_unlock(&t->mu);
    return id;
}

void zztrace_event(zztrace *t, int track, const char *name, uint64_t start_ns, uint64_t end_ns,
                   const char *args_json)
{
    if (!t || !name) return;
    int args_ok = 1;
    if (args_json) { /* keep the file well formed whatever the caller passes */
        cJSON *a = cJSON_ParseWithOpts(args_json, NULL, 1);
        args_ok = a && cJSON_IsObject(a);
        cJSON_Delete(a);
        if (!args_ok)
            ZOFF_LOG_ONCE(ZOFF_LOG_WARN, ZOFF_SUB_INIT,
                          "trace: event \"%s\" has args that are not a JSON object; dropped", name);
    }
    pthread_mutex_lock(&t->mu);
    if (!args_ok || t->nev >= TRACE_MAX_EVENTS ||
        !grow((void **)&t->ev, &t->ev_cap, t->nev + 1, sizeof *t->ev)) {
        t->dropped++;
        goto out;
    }
    trace_event *e = &t->ev[t->nev];
    e->track = track;
    e->start_ns = start_ns;
    e->dur_ns = end_ns > start_ns ? end_ns - start_ns : 0;
    e->name_off = intern(t, name);
    e->args_off = args_json ? add_string(t, args_json) : NO_ARGS;
    if (e->name_off == NO_ARGS || (args_json && e->args_off == NO_ARGS)) {
        t->dropped++;
        goto out;
    }
    t->nev++;
out:
    pthread_mutex_unlock(&t->mu);
}

/* Writes s as a JSON string literal. */
static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void write_trace(zztrace *t)
{
    FILE *f = t->out;
    fputs("{\"traceEvents\":[\n", f);
    fputs(
        "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":0,\"args\":{\"name\":\"zoff\"}}",
        f);
    for (int i = 0; i < t->ntracks; i++) {
        fprintf(f,
                ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"args\":{"
                "\"name\":",
                i + 1);
        put_json_string(f, t->tracks[i]);
        fprintf(f,
                "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,"
                "\"args\":{\"sort_index\":%d}}",
                i + 1, i + 1);
    }
    for (size_t i = 0; i < t->nev; i++) {
        const trace_event *e = &t->ev[i];
        double ts_us = e->start_ns > t->t0_ns ? (double)(e->start_ns - t->t0_ns) / 1e3 : 0.0;
        fputs(",\n{\"name\":", f);
        put_json_string(f, t->strs + e->name_off);
        fprintf(f, ",\"cat\":\"zoff\",\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f",
                e->track, ts_us, (double)e->dur_ns / 1e3);
        if (e->args_off != NO_ARGS) fprintf(f, ",\"args\":%s", t->strs + e->args_off);
        fputc('}', f);
    }
    fprintf(f,
            "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"zoff_version\":\"%s\","
            "\"dropped_events\":%llu}}\n",
            zoff_version(), (unsigned long long)t->dropped);
}

zoff_status zztrace_close(zztrace *t)
{
    zoff_status st = ZOFF_OK;
    if (!t) return ZOFF_OK;
    write_trace(t);
    if (ferror(t->out)) st = zoff__err(-EIO, "trace: writing %s failed", t->path);
    if (fclose(t->out) != 0 && st == ZOFF_OK)
        st = zoff__err(-errno, "trace: close %s: %s", t->path, strerror(errno));
    if (t->dropped)
        ZOFF_WARN(ZOFF_SUB_INIT, "trace %s: %llu events dropped (limit %zu or invalid args)",
                  t->path, (unsigned long long)t->dropped, TRACE_MAX_EVENTS);
    for (int i = 0; i < t->ntracks; i++) free(t->tracks[i]);
    free(t->tracks);
    free(t->ev);
    free(t->strs);
    free(t->name_slots);
    free(t->path);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return st;
}
