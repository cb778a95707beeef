/*
 * ckpt_manifest.c — the checkpoint's metadata: building zoff_manifest.json and the safetensors
 * header (tensor entries plus the __metadata__ copy of step, scaler and groups), checking what a
 * trainer asks to store, and parsing a manifest back (every field type- and range-checked).
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt_int.h"
#include "runtime/config.h"

zoff_status zckpt__ferr(const zckpt_reader *r, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return zoff__err(ZOFF_EFORMAT, "checkpoint %s: %s", r->dir, msg);
}

#define MANIFEST_CRC_SUFFIX_FMT ",\n\t\"manifest_crc32c\":\t\"%08x\"\n}\n"

zoff_status zckpt__check_manifest_crc(const zckpt_reader *r, const char *text)
{
    if (r->info.format_version < 2) return ZOFF_OK; /* written before manifests had a crc */
    const char *key = strstr(text, "\"manifest_crc32c\"");
    const char *last = NULL;
    while (key) { /* the last occurrence: the closing member */
        last = key;
        key = strstr(key + 1, "\"manifest_crc32c\"");
    }
    const char *comma = last;
    while (comma && comma > text && *comma != ',') comma--;
    if (!last || !comma || *comma != ',')
        return zoff__err(ZOFF_ECORRUPT,
                         "checkpoint %s: %s has no manifest_crc32c at its end (edited?)", r->dir,
                         ZCKPT_MANIFEST_FILE);
    size_t bl = (size_t)(comma - text);
    uint32_t crc = zoff__crc32c(0, text, bl);
    char want[64];
    snprintf(want, sizeof want, MANIFEST_CRC_SUFFIX_FMT, crc);
    if (strcmp(comma, want) != 0) {
        unsigned stored = 0;
        const char *q = strchr(last + 17, '"');
        if (q) sscanf(q + 1, "%8x", &stored);
        return zoff__err(ZOFF_ECORRUPT,
                         "checkpoint %s: %s is corrupt or was edited: its bytes have crc32c "
                         "%08x, its manifest_crc32c says %08x (the manifest's step, loss scale, "
                         "hyperparameters and trainer state cannot be trusted)",
                         r->dir, ZCKPT_MANIFEST_FILE, crc, stored);
    }
    return ZOFF_OK;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *skip_string(const char *p)
{
    p++; /* opening quote */
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) p++;
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *skip_value(const char *p)
{
    p = skip_ws(p);
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                if (!p) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && !isspace((unsigned char)*p)) p++;
    return p;
}

/* The exact text of the value of top-level `key` in an object text already validated by cJSON
 * (so that a trainer's "extra" object comes back byte for byte, big integers included). */
static int find_top_value(const char *text, const char *key, const char **start, size_t *len)
{
    size_t kl = strlen(key);
    const char *p = skip_ws(text);
    if (*p != '{') return 0;
    p++;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"') return 0;
        const char *k = p + 1;
        const char *ke = skip_string(p);
        if (!ke) return 0;
        p = skip_ws(ke);
        if (*p != ':') return 0;
        p = skip_ws(p + 1);
        const char *ve = skip_value(p);
        if (!ve) return 0;
        if ((size_t)(ke - 1 - k) == kl && memcmp(k, key, kl) == 0) {
            *start = p;
            *len = (size_t)(ve - p);
            return 1;
        }
        p = skip_ws(ve);
        if (*p != ',') return 0;
        p++;
    }
}

static cJSON *group_json(const zoff_group_config *g)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *b = NULL;
    if (!cJSON_AddNumberToObject(o, "lr", zoff__float_json(g->lr)) ||
        !(b = cJSON_AddArrayToObject(o, "betas")) ||
        !cJSON_AddNumberToObject(o, "eps", zoff__float_json(g->eps)) ||
        !cJSON_AddNumberToObject(o, "weight_decay", zoff__float_json(g->weight_decay)) ||
        !cJSON_AddBoolToObject(o, "adam_w_mode", g->adamw_mode) ||
        !cJSON_AddBoolToObject(o, "bias_correction", g->bias_correction)) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToArray(b, cJSON_CreateNumber(zoff__float_json(g->beta1)));
    cJSON_AddItemToArray(b, cJSON_CreateNumber(zoff__float_json(g->beta2)));
    if (cJSON_GetArraySize(b) != 2) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *groups_json(const zckpt_meta *m)
{
    cJSON *a = cJSON_CreateArray();
    if (!a) return NULL;
    for (int i = 0; i < m->ngroups; i++) {
        cJSON *g = group_json(&m->groups[i]);
        if (!g) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, g);
    }
    return a;
}

/* The safetensors header object without metadata. */
cJSON *zckpt__tensor_header(const zckpt_writer *w)
{
    cJSON *h = cJSON_CreateObject();
    if (!h) return NULL;
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->ts[i];
        cJSON *e = cJSON_CreateObject();
        cJSON *shape = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        if (!e || !shape || !offs) {
            cJSON_Delete(e);
            cJSON_Delete(shape);
            cJSON_Delete(offs);
            cJSON_Delete(h);
            return NULL;
        }
        cJSON_AddItemToObject(h, t->t.name, e);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->t.numel));
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(t->off + t->t.numel * 4)));
        cJSON_AddItemToObject(e, "data_offsets", offs);
    }
    return h;
}

/* The full header text padded with spaces to exactly header_len bytes (caller frees). */
zoff_status zckpt__build_header(zckpt_writer *w, const zckpt_meta *m, const char *created,
                                char **out)
{
    zoff_status st = ZOFF_OK;
    char *text = NULL, *groups = NULL, *padded = NULL;
    cJSON *h = zckpt__tensor_header(w);
    cJSON *md = cJSON_CreateObject();
    cJSON *ga = groups_json(m);
    if (!h || !md || !ga || !(groups = cJSON_PrintUnformatted(ga))) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the safetensors header", w->dir);
        goto out;
    }
    char num[64];
    cJSON_AddStringToObject(md, "format", "zoff");
    snprintf(num, sizeof num, "%d", w->format_version ? w->format_version : ZCKPT_FORMAT_VERSION);
    cJSON_AddStringToObject(md, "format_version", num);
    cJSON_AddStringToObject(md, "zoff_version", zoff_version());
    cJSON_AddStringToObject(md, "created", created);
    snprintf(num, sizeof num, "%lld", (long long)m->step);
    cJSON_AddStringToObject(md, "step", num);
    snprintf(num, sizeof num, "%.9g", (double)m->loss_scale);
    cJSON_AddStringToObject(md, "loss_scale", num);
    snprintf(num, sizeof num, "%lld", (long long)m->scaler_good_steps);
    cJSON_AddStringToObject(md, "scaler_good_steps", num);
    snprintf(num, sizeof num, "%d", m->scaler_hysteresis);
    cJSON_AddStringToObject(md, "scaler_hysteresis", num);
    cJSON_AddStringToObject(md, "groups", groups);
    if (m->extra_json[0]) cJSON_AddStringToObject(md, "extra", m->extra_json);
    for (int attempt = 0; attempt < 2; attempt++) {
        cJSON *full = cJSON_CreateObject();
        if (!full) {
            st = zoff__err(-ENOMEM, "checkpoint %s: cannot build the header", w->dir);
            goto out;
        }
        cJSON_AddItemReferenceToObject(full, "__metadata__", md);
        for (cJSON *e = h->child; e; e = e->next)
            cJSON_AddItemReferenceToObject(full, e->string, e);
        text = cJSON_PrintUnformatted(full);
        cJSON_Delete(full);
        if (!text) {
            st = zoff__err(-ENOMEM, "checkpoint %s: cannot print the header", w->dir);
            goto out;
        }
        if (strlen(text) <= w->header_len) break;
        /* Cannot happen with the reserve's bound; keep the manifest as the only copy. */
        ZOFF_INFO(ZOFF_SUB_CKPT, "checkpoint %s: groups/extra left out of __metadata__ (size)",
                  w->dir);
        cJSON_free(text);
        text = NULL;
        cJSON_DeleteItemFromObject(md, "groups");
        cJSON_DeleteItemFromObject(md, "extra");
    }
    if (!text) {
        st = zoff__err(ZOFF_EINTERNAL, "checkpoint %s: header larger than its reserve", w->dir);
        goto out;
    }
    padded = malloc(8 + w->header_len);
    if (!padded) {
        st = zoff__err(-ENOMEM, "checkpoint %s: cannot allocate the header", w->dir);
        goto out;
    }
    uint64_t hl = w->header_len;
    for (int i = 0; i < 8; i++) padded[i] = (char)((hl >> (8 * i)) & 0xff);
    size_t tl = strlen(text);
    memcpy(padded + 8, text, tl);
    memset(padded + 8 + tl, ' ', w->header_len - tl);
    *out = padded;
    padded = NULL;
out:
    free(padded);
    cJSON_free(text);
    cJSON_free(groups);
    cJSON_Delete(ga);
    cJSON_Delete(md);
    cJSON_Delete(h);
    return st;
}

/* One __metadata__ string against the value the manifest gives. 0 when equal (or absent and
 * optional). */
static int meta_differs(const cJSON *md, const char *key, const char *want, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, key);
    if (!v) return required;
    return !cJSON_IsString(v) || strcmp(v->valuestring, want) != 0;
}

zoff_status zckpt__check_header_meta(const zckpt_reader *r, const rfile *f, const cJSON *md)
{
    const zckpt_meta *m = &r->meta;
    int req = r->info.format_version >= 2;
    if (!cJSON_IsObject(md)) {
        if (!req) return ZOFF_OK;
        return zoff__err(ZOFF_ECORRUPT, "checkpoint %s: %s has no __metadata__", r->dir, f->name);
    }
    char num[64];
    const char *bad = NULL;
    snprintf(num, sizeof num, "%d", r->info.format_version);
    if (meta_differs(md, "format_version", num, req)) bad = "format_version";
    snprintf(num, sizeof num, "%lld", (long long)m->step);
    if (!bad && meta_differs(md, "step", num, req)) bad = "step";
    snprintf(num, sizeof num, "%.9g", (double)m->loss_scale);
    if (!bad && meta_differs(md, "loss_scale", num, req)) bad = "loss_scale";
    snprintf(num, sizeof num, "%lld", (long long)m->scaler_good_steps);
    if (!bad && meta_differs(md, "scaler_good_steps", num, req)) bad = "scaler_good_steps";
    snprintf(num, sizeof num, "%d", m->scaler_hysteresis);
    if (!bad && meta_differs(md, "scaler_hysteresis", num, req)) bad = "scaler_hysteresis";
    if (!bad && m->extra_json[0] && meta_differs(md, "extra", m->extra_json, 0)) bad = "extra";
    if (!bad && cJSON_GetObjectItemCaseSensitive(md, "groups")) {
        cJSON *ga = groups_json(m);
        char *gt = ga ? cJSON_PrintUnformatted(ga) : NULL;
        if (!gt || meta_differs(md, "groups", gt, 0)) bad = "groups";
        cJSON_free(gt);
        cJSON_Delete(ga);
    }
    if (bad)
        return zoff__err(ZOFF_ECORRUPT,
                         "checkpoint %s: \"%s\" in %s differs from its copy in the __metadata__ "
                         "of %s (one of them was edited or corrupted)",
                         r->dir, bad, ZCKPT_MANIFEST_FILE, f->name);
    return ZOFF_OK;
}

/* The members every manifest opens with (format .. data description excluded). */
static int manifest_head(cJSON *root, const zckpt_meta *m, const char *created, int version)
{
    cJSON *ga = groups_json(m);
    if (!ga) return 0;
    cJSON_AddStringToObject(root, "format", "zoff-checkpoint");
    cJSON_AddNumberToObject(root, "format_version", version);
    cJSON_AddStringToObject(root, "zoff_version", zoff_version());
    cJSON_AddStringToObject(root, "created", created);
    cJSON_AddNumberToObject(root, "step", (double)m->step);
    cJSON_AddNumberToObject(root, "loss_scale", zoff__float_json(m->loss_scale));
    cJSON_AddNumberToObject(root, "scaler_good_steps", (double)m->scaler_good_steps);
    cJSON_AddNumberToObject(root, "scaler_hysteresis", m->scaler_hysteresis);
    if (m->optimizer[0]) cJSON_AddStringToObject(root, "optimizer", m->optimizer);
    if (m->state_format[0]) cJSON_AddStringToObject(root, "state_format", m->state_format);
    cJSON_AddItemToObject(root, "groups", ga);
    return 1;
}

/* pipeline, extra, the header crc (format 2; < 0: none), then the manifest printed and closed
 * by its own checksum (caller frees). */
static int manifest_tail(cJSON *root, const zckpt_meta *m, int64_t header_crc, char **out)
{
    cJSON *pl = cJSON_AddObjectToObject(root, "pipeline");
    if (!pl) return 0;
    cJSON_AddNumberToObject(pl, "overlap", m->pipeline_overlap);
    cJSON_AddNumberToObject(pl, "steps", (double)m->pipeline_steps);
    cJSON_AddBoolToObject(pl, "delayed_update", m->pipeline_delayed_update != 0);
    if (m->extra_json[0])
        cJSON_AddRawToObject(root, "extra", m->extra_json);
    else
        cJSON_AddNullToObject(root, "extra");
    if (header_crc >= 0) cJSON_AddNumberToObject(root, "header_crc32c", (double)header_crc);
    char *body = cJSON_Print(root);
    if (!body) return 0;
    /* the manifest's own checksum closes it: "<body without its '}'>,\n\t"manifest_crc32c":
     * \t"xxxxxxxx"\n}\n", the crc over everything before that member */
    size_t bl = strlen(body);
    while (bl > 0 && body[bl - 1] != '}') bl--;
    if (bl > 0) bl--; /* drop the closing brace */
    while (bl > 0 && (body[bl - 1] == '\n' || body[bl - 1] == ' ' || body[bl - 1] == '\t')) bl--;
    char *text = cJSON_malloc(bl + 64);
    if (!text) {
        cJSON_free(body);
        return 0;
    }
    uint32_t crc = zoff__crc32c(0, body, bl);
    memcpy(text, body, bl);
    snprintf(text + bl, 64, MANIFEST_CRC_SUFFIX_FMT, crc);
    cJSON_free(body);
    *out = text;
    return 1;
}

zoff_status zckpt__build_manifest(zckpt_writer *w, const zckpt_meta *m, const char *created,
                                  char **out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *ta = cJSON_CreateArray();
    if (!root || !ta || !manifest_head(root, m, created, ZCKPT_FORMAT_VERSION)) goto nomem;
    cJSON_AddStringToObject(root, "data_file", ZCKPT_DATA_FILE);
    cJSON_AddNumberToObject(root, "data_bytes", (double)(8 + w->header_len + w->data_bytes));
    for (size_t i = 0; i < w->n; i++) {
        const wtensor *t = &w->ts[i];
        cJSON *e = cJSON_CreateObject();
        if (!e) goto nomem;
        cJSON_AddItemToArray(ta, e);
        cJSON_AddStringToObject(e, "name", t->t.name);
        cJSON_AddNumberToObject(e, "numel", (double)t->t.numel);
        cJSON_AddNumberToObject(e, "offset", (double)t->off);
        cJSON_AddNumberToObject(e, "crc32c", t->crc);
        if (t->t.has_step) cJSON_AddNumberToObject(e, "step", (double)t->t.adam_step);
    }
    cJSON_AddItemToObject(root, "tensors", ta);
    ta = NULL;
    if (!manifest_tail(root, m, (int64_t)w->header_crc, out)) goto nomem;
    cJSON_Delete(root);
    return ZOFF_OK;
nomem:
    cJSON_Delete(root);
    cJSON_Delete(ta);
    return zoff__err(-ENOMEM, "checkpoint %s: cannot build the manifest", w->dir);
}

zoff_status zckpt__build_manifest_sliced(const char *dir, const zckpt_tensor *tensors, size_t n,
                                         const zckpt_meta *m, const char *created,
                                         const zckpt_file_rec *files, int nfiles,
                                         const zckpt_slice *slices, size_t nslices, char **out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *fa = cJSON_CreateArray();
    cJSON *ta = cJSON_CreateArray();
    cJSON **sl = calloc(n ? n : 1, sizeof *sl);
    if (!root || !fa || !ta || !sl || !manifest_head(root, m, created, ZCKPT_FORMAT_SLICED))
        goto nomem;
    cJSON_AddNumberToObject(root, "ranks", nfiles);
    for (int f = 0; f < nfiles; f++) {
        char name[64];
        zckpt_slice_file_name(f, name, sizeof name);
        cJSON *e = cJSON_CreateObject();
        if (!e) goto nomem;
        cJSON_AddItemToArray(fa, e);
        cJSON_AddStringToObject(e, "file", name);
        cJSON_AddNumberToObject(e, "rank", f);
        cJSON_AddNumberToObject(e, "bytes", (double)files[f].bytes);
        cJSON_AddNumberToObject(e, "header_crc32c", files[f].header_crc);
    }
    cJSON_AddItemToObject(root, "data_files", fa);
    fa = NULL;
    for (size_t i = 0; i < n; i++) {
        const zckpt_tensor *t = &tensors[i];
        cJSON *e = cJSON_CreateObject();
        if (!e) goto nomem;
        cJSON_AddItemToArray(ta, e);
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddNumberToObject(e, "numel", (double)t->numel);
        if (t->has_step) cJSON_AddNumberToObject(e, "step", (double)t->adam_step);
        if (!(sl[i] = cJSON_AddArrayToObject(e, "slices"))) goto nomem;
    }
    /* slices in element order: the ranks' ranges are in rank order */
    for (int f = 0; f < nfiles; f++)
        for (size_t k = 0; k < nslices; k++) {
            const zckpt_slice *s = &slices[k];
            if (s->file != f) continue;
            cJSON *e = cJSON_CreateObject();
            if (!e || s->tensor >= n) {
                cJSON_Delete(e);
                goto nomem;
            }
            cJSON_AddItemToArray(sl[s->tensor], e);
            cJSON_AddNumberToObject(e, "file", s->file);
            cJSON_AddNumberToObject(e, "begin", (double)s->begin);
            cJSON_AddNumberToObject(e, "end", (double)(s->begin + s->count));
            cJSON_AddNumberToObject(e, "offset", (double)s->offset);
            cJSON_AddNumberToObject(e, "crc32c", s->crc32c);
        }
    cJSON_AddItemToObject(root, "tensors", ta);
    ta = NULL;
    if (!manifest_tail(root, m, -1, out)) goto nomem;
    cJSON_Delete(root);
    free(sl);
    return ZOFF_OK;
nomem:
    cJSON_Delete(root);
    cJSON_Delete(fa);
    cJSON_Delete(ta);
    free(sl);
    return zoff__err(-ENOMEM, "checkpoint %s: cannot build the manifest", dir);
}

zoff_status zckpt__check_meta(const zckpt_writer *w, const zckpt_meta *m)
{
    if (m->ngroups < 0 || m->ngroups > ZOFF_MAX_GROUPS)
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: ngroups %d outside [0, %d]", w->dir,
                         m->ngroups, ZOFF_MAX_GROUPS);
    if (!isfinite(m->loss_scale))
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: loss_scale %g is not finite", w->dir,
                         (double)m->loss_scale);
    for (int i = 0; i < m->ngroups; i++) {
        const zoff_group_config *g = &m->groups[i];
        if (!isfinite(g->lr) || !isfinite(g->beta1) || !isfinite(g->beta2) || !isfinite(g->eps) ||
            !isfinite(g->weight_decay))
            return zoff__err(ZOFF_EINVAL, "checkpoint %s: group %d has a non-finite value", w->dir,
                             i);
    }
    if (!memchr(m->extra_json, '\0', EXTRA_MAX))
        return zoff__err(ZOFF_EINVAL, "checkpoint %s: extra JSON is not NUL-terminated within %zu",
                         w->dir, EXTRA_MAX);
    if (m->extra_json[0]) {
        cJSON *x = cJSON_ParseWithOpts(m->extra_json, NULL, 1);
        int ok = x && cJSON_IsObject(x);
        cJSON_Delete(x);
        if (!ok)
            return zoff__err(ZOFF_EINVAL, "checkpoint %s: extra is not a JSON object: %.60s",
                             w->dir, m->extra_json);
    }
    return ZOFF_OK;
}

/* A number field of the manifest: integral when `integral`, within [lo, hi]. */
static int json_num(const cJSON *obj, const char *key, int integral, double lo, double hi,
                    double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return 0;
    double x = v->valuedouble;
    if (!isfinite(x) || x < lo || x > hi || (integral && x != floor(x))) return 0;
    *out = x;
    return 1;
}

static zoff_status parse_group(zckpt_reader *r, const cJSON *g, int i, zoff_group_config *out)
{
    double lr, eps, wd;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(g, "betas");
    const cJSON *aw = cJSON_GetObjectItemCaseSensitive(g, "adam_w_mode");
    const cJSON *bc = cJSON_GetObjectItemCaseSensitive(g, "bias_correction");
    if (!cJSON_IsObject(g) || !json_num(g, "lr", 0, 0, HUGE_VAL, &lr) ||
        !json_num(g, "eps", 0, 0, HUGE_VAL, &eps) ||
        !json_num(g, "weight_decay", 0, 0, HUGE_VAL, &wd) || !cJSON_IsArray(b) ||
        cJSON_GetArraySize(b) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(b, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(b, 1)) || !cJSON_IsBool(aw) || !cJSON_IsBool(bc))
        return zckpt__ferr(r, "%s: groups[%d] is malformed", ZCKPT_MANIFEST_FILE, i);
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->lr = (float)lr;
    out->eps = (float)eps;
    out->weight_decay = (float)wd;
    out->beta1 = (float)cJSON_GetArrayItem(b, 0)->valuedouble;
    out->beta2 = (float)cJSON_GetArrayItem(b, 1)->valuedouble;
    out->adamw_mode = cJSON_IsTrue(aw);
    out->bias_correction = cJSON_IsTrue(bc);
    /* the ranges the config parser enforces (lr, betas, eps, weight decay) */
    char path[64];
    snprintf(path, sizeof path, "groups[%d]", i);
    if (zoff__group_config_validate(out, path) != ZOFF_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        return zckpt__ferr(r, "%s: %s", ZCKPT_MANIFEST_FILE, msg);
    }
    return ZOFF_OK;
}

/* The data files: optimizer.safetensors (format 1-2) or one per rank (format 3). */
static zoff_status parse_files(zckpt_reader *r, const cJSON *root)
{
    double x;
    int sliced = r->info.format_version >= ZCKPT_FORMAT_SLICED;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(root, "data_files");
    if (sliced && (!cJSON_IsArray(fa) || cJSON_GetArraySize(fa) < 1 ||
                   !json_num(root, "ranks", 1, 1, 1e6, &x) || (int)x != cJSON_GetArraySize(fa)))
        return zckpt__ferr(r, "%s: \"ranks\" and \"data_files\" missing or disagreeing",
                           ZCKPT_MANIFEST_FILE);
    r->nfiles = sliced ? (size_t)cJSON_GetArraySize(fa) : 1;
    r->files = calloc(r->nfiles, sizeof *r->files);
    if (!r->files) return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate", r->dir);
    for (size_t i = 0; i < r->nfiles; i++) r->files[i].fd = -1;
    r->info.nfiles = (int)r->nfiles;
    if (!sliced) {
        rfile *f = &r->files[0];
        snprintf(f->name, sizeof f->name, "%s", ZCKPT_DATA_FILE);
        f->rank = -1;
        if (cJSON_GetObjectItemCaseSensitive(root, "data_bytes")) {
            if (!json_num(root, "data_bytes", 1, 8, 0x1p62, &x))
                return zckpt__ferr(r, "%s: \"data_bytes\" is not a size", ZCKPT_MANIFEST_FILE);
            f->manifest_data_bytes = (uint64_t)x;
        }
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "data_file");
        if (s && (!cJSON_IsString(s) || strcmp(s->valuestring, ZCKPT_DATA_FILE) != 0))
            return zckpt__ferr(r, "%s: data_file must be \"%s\"", ZCKPT_MANIFEST_FILE,
                               ZCKPT_DATA_FILE);
        if (r->info.format_version >= 2) {
            if (!json_num(root, "header_crc32c", 1, 0, 4294967295.0, &x))
                return zckpt__ferr(r, "%s: \"header_crc32c\" missing or not a crc32c",
                                   ZCKPT_MANIFEST_FILE);
            f->has_header_crc = 1;
            f->header_crc = (uint32_t)x;
        }
        return ZOFF_OK;
    }
    size_t i = 0;
    for (const cJSON *e = fa->child; e; e = e->next, i++) {
        rfile *f = &r->files[i];
        double rank, bytes, crc;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "file");
        zckpt_slice_file_name((int)i, f->name, sizeof f->name);
        if (!cJSON_IsString(name) || strcmp(name->valuestring, f->name) != 0 ||
            !json_num(e, "rank", 1, 0, 1e6, &rank) || (size_t)rank != i ||
            !json_num(e, "bytes", 1, 8, 0x1p62, &bytes) ||
            !json_num(e, "header_crc32c", 1, 0, 4294967295.0, &crc))
            return zckpt__ferr(r,
                               "%s: data_files[%zu] is malformed (file \"%s\", rank %zu, bytes, "
                               "header_crc32c)",
                               ZCKPT_MANIFEST_FILE, i, f->name, i);
        f->rank = (int)i;
        f->manifest_data_bytes = (uint64_t)bytes;
        f->has_header_crc = 1;
        f->header_crc = (uint32_t)crc;
    }
    return ZOFF_OK;
}

/* The tensors and their pieces: one per tensor (format 1-2), the slices (format 3), which must
 * cover the tensor in element order without gaps or overlaps. */
static zoff_status parse_tensors(zckpt_reader *r, const cJSON *root)
{
    int sliced = r->info.format_version >= ZCKPT_FORMAT_SLICED;
    const cJSON *ta = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsArray(ta))
        return zckpt__ferr(r, "%s: \"tensors\" missing or not an array", ZCKPT_MANIFEST_FILE);
    r->n = (size_t)cJSON_GetArraySize(ta);
    size_t np = 0;
    for (const cJSON *e = ta->child; e; e = e->next) {
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(e, "slices");
        np += sliced ? (cJSON_IsArray(sl) ? (size_t)cJSON_GetArraySize(sl) : 0) : 1;
    }
    r->ts = calloc(r->n ? r->n : 1, sizeof *r->ts);
    r->ps = calloc(np ? np : 1, sizeof *r->ps);
    if (!r->ts || !r->ps)
        return zoff__err(-ENOMEM, "checkpoint %s: cannot allocate %zu tensor entries", r->dir,
                         r->n);
    size_t i = 0;
    for (const cJSON *e = ta->child; e; e = e->next, i++) {
        rtensor *t = &r->ts[i];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        double numel, off = 0, crc = 0;
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(e, "slices");
        if (!cJSON_IsString(name) || !name->valuestring[0] ||
            strlen(name->valuestring) >= ZCKPT_NAME_MAX - 48 ||
            !json_num(e, "numel", 1, 0, 0x1p60, &numel) ||
            (!sliced && (!json_num(e, "offset", 1, 0, 0x1p62, &off) ||
                         !json_num(e, "crc32c", 1, 0, 4294967295.0, &crc))) ||
            (sliced && !cJSON_IsArray(sl)))
            return zckpt__ferr(r, "%s: tensors[%zu] is malformed (name, numel, %s)",
                               ZCKPT_MANIFEST_FILE, i, sliced ? "slices" : "offset, crc32c");
        if (cJSON_GetObjectItemCaseSensitive(e, "step")) {
            double step;
            if (!json_num(e, "step", 1, 0, 9.0e15, &step))
                return zckpt__ferr(r, "%s: tensors[%zu].step is not a step count (integer >= 0)",
                                   ZCKPT_MANIFEST_FILE, i);
            t->t.has_step = 1;
            t->t.adam_step = (int64_t)step;
        }
        snprintf(t->t.name, sizeof t->t.name, "%s", name->valuestring);
        t->t.numel = (uint64_t)numel;
        t->first = r->npieces;
        r->info.total_numel += t->t.numel;
        if (!sliced) {
            rpiece *p = &r->ps[r->npieces++];
            snprintf(p->name, sizeof p->name, "%s", t->t.name);
            p->tensor = i;
            p->numel = t->t.numel;
            p->off = (uint64_t)off;
            p->crc = (uint32_t)crc;
            t->count = 1;
            continue;
        }
        uint64_t at = 0;
        size_t k = 0;
        for (const cJSON *s = sl->child; s; s = s->next, k++) {
            double file, b, en, so, sc;
            if (!json_num(s, "file", 1, 0, (double)r->nfiles - 1, &file) ||
                !json_num(s, "begin", 1, 0, 0x1p60, &b) || !json_num(s, "end", 1, 0, 0x1p60, &en) ||
                !json_num(s, "offset", 1, 0, 0x1p62, &so) ||
                !json_num(s, "crc32c", 1, 0, 4294967295.0, &sc))
                return zckpt__ferr(r,
                                   "%s: tensors[%zu].slices[%zu] is malformed (file, begin, "
                                   "end, offset, crc32c)",
                                   ZCKPT_MANIFEST_FILE, i, k);
            if ((uint64_t)b != at || en <= b || (uint64_t)en > t->t.numel)
                return zckpt__ferr(r,
                                   "%s: the slices of \"%s\" do not cover its %llu elements in "
                                   "order (slice %zu is [%.0f:%.0f], expected to start at %llu)",
                                   ZCKPT_MANIFEST_FILE, t->t.name, (unsigned long long)t->t.numel,
                                   k, b, en, (unsigned long long)at);
            rpiece *p = &r->ps[r->npieces++];
            snprintf(p->name, sizeof p->name, "%s[%llu:%llu]", t->t.name, (unsigned long long)b,
                     (unsigned long long)en);
            p->tensor = i;
            p->file = (size_t)file;
            p->begin = (uint64_t)b;
            p->numel = (uint64_t)(en - b);
            p->off = (uint64_t)so;
            p->crc = (uint32_t)sc;
            at = (uint64_t)en;
        }
        if (at != t->t.numel)
            return zckpt__ferr(r, "%s: the slices of \"%s\" end at element %llu of %llu",
                               ZCKPT_MANIFEST_FILE, t->t.name, (unsigned long long)at,
                               (unsigned long long)t->t.numel);
        t->count = k;
    }
    return ZOFF_OK;
}

zoff_status zckpt__parse_manifest(zckpt_reader *r, const char *text)
{
    zoff_status st = ZOFF_OK;
    double x;
    cJSON *root = cJSON_ParseWithOpts(text, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        st = zckpt__ferr(r, "%s is not a valid JSON object", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    if (!json_num(root, "format_version", 1, -1e9, 1e9, &x)) {
        st =
            zckpt__ferr(r, "%s: \"format_version\" missing or not an integer", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    r->info.format_version = (int)x;
    if (x < 1 || x > ZCKPT_FORMAT_MAX) {
        st = zckpt__ferr(r, "format_version %d is not supported by zoff %s (it reads 1 to %d)",
                         (int)x, zoff_version(), ZCKPT_FORMAT_MAX);
        goto out;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "zoff_version");
    snprintf(r->info.zoff_version, sizeof r->info.zoff_version, "%s",
             cJSON_IsString(s) ? s->valuestring : "?");
    s = cJSON_GetObjectItemCaseSensitive(root, "created");
    snprintf(r->info.created, sizeof r->info.created, "%s",
             cJSON_IsString(s) ? s->valuestring : "?");
    ZOFF_CHECK_GOTO(parse_files(r, root), st, out);

    zckpt_meta *m = &r->meta;
    if (!json_num(root, "step", 1, -9.0e15, 9.0e15, &x)) {
        st = zckpt__ferr(r, "%s: \"step\" missing or not an integer", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->step = (int64_t)x;
    if (m->step < 0) {
        st = zckpt__ferr(r, "%s: \"step\" %lld is negative", ZCKPT_MANIFEST_FILE,
                         (long long)m->step);
        goto out;
    }
    if (!json_num(root, "loss_scale", 0, -HUGE_VAL, HUGE_VAL, &x)) {
        st = zckpt__ferr(r, "%s: \"loss_scale\" missing or not a number", ZCKPT_MANIFEST_FILE);
        goto out;
    }
    if (!(x > 0.0 && x <= 0x1p127)) { /* a loss scale is a positive fp32 */
        st = zckpt__ferr(r, "%s: \"loss_scale\" %g is outside (0, 2^127]", ZCKPT_MANIFEST_FILE, x);
        goto out;
    }
    m->loss_scale = (float)x;
    if (!json_num(root, "scaler_good_steps", 1, 0, 9.0e15, &x)) {
        st = zckpt__ferr(r, "%s: \"scaler_good_steps\" missing or not an integer >= 0",
                         ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->scaler_good_steps = (int64_t)x;
    if (!json_num(root, "scaler_hysteresis", 1, 0, 2147483647.0, &x)) {
        st = zckpt__ferr(r, "%s: \"scaler_hysteresis\" missing or not an integer >= 0",
                         ZCKPT_MANIFEST_FILE);
        goto out;
    }
    m->scaler_hysteresis = (int)x;
    static const char *const kinds[2] = {"optimizer", "state_format"};
    for (int k = 0; k < 2; k++) {
        char *dst = k ? m->state_format : m->optimizer;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, kinds[k]);
        dst[0] = '\0';
        if (!o) continue;
        if (!cJSON_IsString(o) || strlen(o->valuestring) >= sizeof m->optimizer) {
            st = zckpt__ferr(r, "%s: \"%s\" must be a short string", ZCKPT_MANIFEST_FILE, kinds[k]);
            goto out;
        }
        snprintf(dst, sizeof m->optimizer, "%s", o->valuestring);
    }
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    if (!cJSON_IsArray(groups) || cJSON_GetArraySize(groups) > ZOFF_MAX_GROUPS) {
        st = zckpt__ferr(r, "%s: \"groups\" missing or longer than %d", ZCKPT_MANIFEST_FILE,
                         ZOFF_MAX_GROUPS);
        goto out;
    }
    m->ngroups = cJSON_GetArraySize(groups);
    for (int i = 0; i < m->ngroups; i++)
        ZOFF_CHECK_GOTO(parse_group(r, cJSON_GetArrayItem(groups, i), i, &m->groups[i]), st, out);

    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
    m->extra_json[0] = '\0';
    if (extra && !cJSON_IsNull(extra)) {
        const char *at;
        size_t len;
        if (!cJSON_IsObject(extra) || !find_top_value(text, "extra", &at, &len)) {
            st = zckpt__ferr(r, "%s: \"extra\" must be an object or null", ZCKPT_MANIFEST_FILE);
            goto out;
        }
        if (len >= EXTRA_MAX) {
            st = zckpt__ferr(r, "%s: \"extra\" is %zu bytes (at most %zu)", ZCKPT_MANIFEST_FILE,
                             len, EXTRA_MAX - 1);
            goto out;
        }
        memcpy(m->extra_json, at, len);
        m->extra_json[len] = '\0';
    }

    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(root, "pipeline");
    m->pipeline_overlap = 0;
    m->pipeline_steps = 0;
    m->pipeline_delayed_update = 0;
    if (pl) {
        double ov, ps;
        const cJSON *du = cJSON_GetObjectItemCaseSensitive(pl, "delayed_update");
        if (!cJSON_IsObject(pl) || !json_num(pl, "overlap", 1, 0, 2, &ov) ||
            !json_num(pl, "steps", 1, 0, 9.0e15, &ps) || !cJSON_IsBool(du)) {
            st = zckpt__ferr(r,
                             "%s: \"pipeline\" is malformed (overlap 0..2, steps >= 0, "
                             "delayed_update true/false)",
                             ZCKPT_MANIFEST_FILE);
            goto out;
        }
        m->pipeline_overlap = (int)ov;
        m->pipeline_steps = (int64_t)ps;
        m->pipeline_delayed_update = cJSON_IsTrue(du);
    }

    ZOFF_CHECK_GOTO(parse_tensors(r, root), st, out);
out:
    cJSON_Delete(root);
    return st;
}
