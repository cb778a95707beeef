/*
 * face_ckpt.c — the public face of checkpoints and environment parameters for trainers and the
 * `zoff` tool: zoff_ckpt_* wrap the internal reader (runtime/ckpt.h) behind an opaque handle,
 * zoff_env_next iterates common/params.def. No checkpoint logic lives here: opening, validation,
 * checksums and reads are the reader's. A handle owns its reader and a copy of the metadata.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "runtime/ckpt.h"
#include "zoff.h"

struct zoff_ckpt {
    zckpt_reader *r;
    zckpt_info info;
    zckpt_meta meta;
};

/* Copies a filled full-size struct into the caller's (possibly older, smaller) one. */
static zoff_status copy_sized(void *dst, const void *src, size_t full, const char *what)
{
    size_t want = *(const size_t *)dst;
    if (want < sizeof(size_t))
        return zoff__err(ZOFF_EINVAL, "%s: struct_size %zu is too small", what, want);
    size_t n = want < full ? want : full;
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_ckpt_open(const char *dir, zoff_ckpt **out)
{
    if (!dir || !out) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_open: NULL argument");
    zoff_ckpt *c = calloc(1, sizeof *c);
    if (!c) return zoff__err(-ENOMEM, "zoff_ckpt_open: out of memory");
    zoff_status st = zckpt_reader_open(dir, &c->r);
    if (st == 0) st = zckpt_reader_info(c->r, &c->info);
    if (st == 0) st = zckpt_reader_meta(c->r, &c->meta);
    if (st < 0) {
        zoff_ckpt_close(c);
        return st;
    }
    *out = c;
    return ZOFF_OK;
}

ZOFF_API void zoff_ckpt_close(zoff_ckpt *c)
{
    if (!c) return;
    zckpt_reader_close(c->r);
    free(c);
}

ZOFF_API zoff_status zoff_ckpt_verify(zoff_ckpt *c)
{
    if (!c) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_verify: NULL handle");
    return zckpt_reader_verify(c->r);
}

ZOFF_API zoff_status zoff_ckpt_get_info(const zoff_ckpt *c, zoff_ckpt_info *out)
{
    if (!c || !out) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_get_info: NULL argument");
    zoff_ckpt_info i = ZOFF_CKPT_INFO_INIT;
    i.format_version = c->info.format_version;
    i.zoff_version = c->info.zoff_version;
    i.created = c->info.created;
    i.path = c->info.path;
    i.recovered = c->info.recovered;
    i.data_bytes = c->info.data_bytes;
    i.total_numel = c->info.total_numel;
    i.ntensors = zckpt_reader_count(c->r);
    i.step = c->meta.step;
    i.loss_scale = c->meta.loss_scale;
    i.scaler_good_steps = c->meta.scaler_good_steps;
    i.scaler_hysteresis = c->meta.scaler_hysteresis;
    i.ngroups = c->meta.ngroups;
    i.extra_json = c->meta.extra_json;
    i.nfiles = c->info.nfiles;
    return copy_sized(out, &i, sizeof i, "zoff_ckpt_get_info");
}

ZOFF_API zoff_status zoff_ckpt_group(const zoff_ckpt *c, int group, zoff_group_config *out)
{
    if (!c || !out) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_group: NULL argument");
    if (group < 0 || group >= c->meta.ngroups)
        return zoff__err(ZOFF_EINVAL, "zoff_ckpt_group: group %d of %d", group, c->meta.ngroups);
    *out = c->meta.groups[group];
    return ZOFF_OK;
}

ZOFF_API size_t zoff_ckpt_tensor_count(const zoff_ckpt *c)
{
    return c ? zckpt_reader_count(c->r) : 0;
}

ZOFF_API zoff_status zoff_ckpt_tensor_info_at(const zoff_ckpt *c, size_t idx,
                                              zoff_ckpt_tensor_info *out)
{
    if (!c || !out) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_tensor_info_at: NULL argument");
    size_t n = zckpt_reader_count(c->r);
    if (idx >= n)
        return zoff__err(ZOFF_EINVAL, "zoff_ckpt_tensor_info_at: tensor %zu of %zu", idx, n);
    const zckpt_tensor *t = zckpt_reader_tensor(c->r, idx);
    zoff_ckpt_tensor_info i = ZOFF_CKPT_TENSOR_INFO_INIT;
    i.name = t->name;
    i.numel = t->numel;
    i.has_step = t->has_step;
    i.adam_step = t->adam_step;
    i.nslices = zckpt_reader_piece_count(c->r, idx);
    zoff_status st = zckpt_reader_tensor_info(c->r, idx, &i.file_offset, &i.crc32c);
    if (st < 0) return st;
    return copy_sized(out, &i, sizeof i, "zoff_ckpt_tensor_info_at");
}

ZOFF_API zoff_status zoff_ckpt_slice_info_at(const zoff_ckpt *c, size_t idx, size_t k,
                                             zoff_ckpt_slice_info *out)
{
    if (!c || !out) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_slice_info_at: NULL argument");
    zckpt_piece_info p;
    ZOFF_CHECK(zckpt_reader_piece(c->r, idx, k, &p));
    zoff_ckpt_slice_info i = ZOFF_CKPT_SLICE_INFO_INIT;
    i.file = p.file;
    i.rank = p.rank;
    i.begin = p.begin;
    i.numel = p.numel;
    i.file_offset = p.file_offset;
    i.crc32c = p.crc32c;
    return copy_sized(out, &i, sizeof i, "zoff_ckpt_slice_info_at");
}

ZOFF_API zoff_status zoff_ckpt_find(const zoff_ckpt *c, const char *name, size_t *idx)
{
    if (!c || !name || !idx) return zoff__err(ZOFF_EINVAL, "zoff_ckpt_find: NULL argument");
    return zckpt_reader_find(c->r, name, idx);
}

ZOFF_API zoff_status zoff_ckpt_read_tensor(zoff_ckpt *c, const char *name, float *out,
                                           uint64_t numel)
{
    if (!c || !name || (!out && numel))
        return zoff__err(ZOFF_EINVAL, "zoff_ckpt_read_tensor: NULL argument");
    size_t idx;
    zoff_status st = zckpt_reader_find(c->r, name, &idx);
    if (st < 0) return st;
    const zckpt_tensor *t = zckpt_reader_tensor(c->r, idx);
    if (t->numel != numel)
        return zoff__err(ZOFF_EINVAL, "zoff_ckpt_read_tensor: %s has %llu elements, not %llu", name,
                         (unsigned long long)t->numel, (unsigned long long)numel);
    st = zckpt_reader_rewind(c->r, idx);
    if (st < 0) return st;
    return zckpt_reader_read(c->r, idx, out, numel);
}

ZOFF_API int zoff_env_next(size_t *index, zoff_env_param *out)
{
    if (!index || !out || out->struct_size < sizeof(size_t))
        return zoff__err(ZOFF_EINVAL, "zoff_env_next: NULL argument or struct_size");
    if (*index >= (size_t)ZOFF_PARAM_COUNT_) return 0;
    zoff_param_id id = (zoff_param_id)*index;
    zoff_env_param p = ZOFF_ENV_PARAM_INIT;
    p.name = zoff__param_env_name(id);
    p.def = zoff__param_default(id);
    p.doc = zoff__param_doc(id);
    p.is_set = zoff__param_set(id);
    p.value = zoff__param_str(id);
    zoff_status st = copy_sized(out, &p, sizeof p, "zoff_env_next");
    if (st < 0) return st;
    (*index)++;
    return 1;
}
