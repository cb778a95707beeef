/*
 * comm.c — the collective layer's dispatcher: launcher environment, backend choice, the
 * single-rank "self" backend (local copies), argument checks, the watchdog message and the
 * statistics every backend shares. The backends live in mpi.c and nccl.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/backend.h"
#include "common/half.h"

static int env_int(const char *name, int *out)
{
    const char *v = getenv(name);
    if (!v || !v[0]) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end != '\0' || x < 0 || x > 1 << 24) return 0;
    *out = (int)x;
    return 1;
}

int zcomm_env_ranks(int *rank, int *size, int *local_rank, int *local_size)
{
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
                                            "SLURM_PROCID", "RANK"};
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS",
                                            "WORLD_SIZE"};
    static const char *const lrank_vars[] = {"ZOFF_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                                             "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"};
    static const char *const lsize_vars[] = {"ZOFF_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE",
                                             "MPI_LOCALNRANKS", "LOCAL_WORLD_SIZE"};
    int r = 0, n = 1, lr = -1, ln = -1, found = 0;
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(rank_vars); i++)
        if (env_int(rank_vars[i], &r)) {
            found = 1;
            break;
        }
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(size_vars); i++)
        if (env_int(size_vars[i], &n)) {
            found = 1;
            break;
        }
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(lrank_vars); i++)
        if (env_int(lrank_vars[i], &lr)) break;
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(lsize_vars); i++)
        if (env_int(lsize_vars[i], &ln)) break;
    if (n < 1) n = 1;
    if (rank) *rank = r;
    if (size) *size = n;
    if (local_rank) *local_rank = lr >= 0 ? lr : r;
    if (local_size) *local_size = ln >= 1 ? ln : n;
    return found;
}

int zcomm_backend_built(zcomm_backend b)
{
    switch (b) {
    case ZCOMM_AUTO:
    case ZCOMM_SELF:
        return 1;
    case ZCOMM_MPI:
        return zcomm__mpi_built();
    case ZCOMM_NCCL:
        return zcomm__nccl_built();
    case ZCOMM_CALLBACK:
        return 1;
    }
    return 0;
}

const char *zcomm_backend_name(zcomm_backend b)
{
    switch (b) {
    case ZCOMM_AUTO:
        return "auto";
    case ZCOMM_SELF:
        return "self";
    case ZCOMM_MPI:
        return "mpi";
    case ZCOMM_NCCL:
        return "nccl";
    case ZCOMM_CALLBACK:
        return "callback";
    }
    return "?";
}

size_t zcomm_dtype_size(zcomm_dtype dt)
{
    switch (dt) {
    case ZCOMM_U8:
        return 1;
    case ZCOMM_F16:
    case ZCOMM_BF16:
        return 2;
    case ZCOMM_F32:
        return 4;
    case ZCOMM_F64:
    case ZCOMM_I64:
        return 8;
    }
    return 0;
}

void zcomm_config_default(zcomm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->backend = ZCOMM_AUTO;
    cfg->timeout_ms = 300000;
}

zoff_status zcomm_nccl_unique_id(unsigned char id[ZCOMM_UNIQUE_ID_BYTES])
{
    if (!id) return zoff__err(ZOFF_EINVAL, "zcomm_nccl_unique_id: NULL id");
    return zcomm__nccl_unique_id(id);
}

zoff_status zcomm_create(const zcomm_config *cfg, zcomm **out)
{
    if (!cfg || !out) return zoff__err(ZOFF_EINVAL, "zcomm_create: NULL argument");
    zcomm *c = calloc(1, sizeof *c);
    if (!c) return zoff__err(-ENOMEM, "zcomm_create: out of memory");
    c->timeout_ms = cfg->timeout_ms;
    c->dev = cfg->dev;
    c->ctx_step = -1;
    c->ctx_phase = "";
    c->ctx_bucket = -1;
    zcomm_backend b = cfg->backend;
    if (b == ZCOMM_AUTO) {
        int r, n, lr, ln;
        zcomm_env_ranks(&r, &n, &lr, &ln);
        if (cfg->have_unique_id && zcomm__nccl_built())
            b = ZCOMM_NCCL;
        else if (n > 1 && zcomm__mpi_built())
            b = ZCOMM_MPI;
        else if (n > 1) {
            free(c);
            return zoff__err(ZOFF_EUNSUPPORTED,
                             "comm: the launcher started %d ranks but this zoff was built without "
                             "MPI (configure with -DZOFF_MPI=ON and install libopenmpi-dev)",
                             n);
        } else
            b = ZCOMM_SELF;
    }
    c->kind = b;
    zoff_status st = ZOFF_OK;
    switch (b) {
    case ZCOMM_SELF:
        c->rank = c->local_rank = 0;
        c->size = c->local_size = 1;
        break;
    case ZCOMM_MPI:
        st = zcomm__mpi_create(c, cfg);
        break;
    case ZCOMM_NCCL:
        st = zcomm__nccl_create(c, cfg);
        break;
    case ZCOMM_CALLBACK:
        st = zcomm__cb_create(c, cfg);
        break;
    default:
        st = zoff__err(ZOFF_EINVAL, "zcomm_create: unknown backend %d", (int)b);
    }
    if (st < 0) {
        free(c);
        return st;
    }
    ZOFF_INFO(ZOFF_SUB_INIT, "comm: %s backend, rank %d of %d (local %d of %d)",
              zcomm_backend_name(b), c->rank, c->size, c->local_rank, c->local_size);
    *out = c;
    return ZOFF_OK;
}

void zcomm_destroy(zcomm *c)
{
    if (!c) return;
    if (c->kind == ZCOMM_MPI) zcomm__mpi_destroy(c);
    if (c->kind == ZCOMM_NCCL) zcomm__nccl_destroy(c);
    if (c->kind == ZCOMM_CALLBACK) zcomm__cb_destroy(c);
    free(c);
}

int zcomm_rank(const zcomm *c)
{
    return c ? c->rank : 0;
}
int zcomm_size(const zcomm *c)
{
    return c ? c->size : 1;
}
int zcomm_local_rank(const zcomm *c)
{
    return c ? c->local_rank : 0;
}
int zcomm_local_size(const zcomm *c)
{
    return c ? c->local_size : 1;
}
zcomm_backend zcomm_kind(const zcomm *c)
{
    return c ? c->kind : ZCOMM_SELF;
}
int zcomm_device_buffers(const zcomm *c)
{
    return c && c->kind == ZCOMM_NCCL;
}

void zcomm_set_context(zcomm *c, int64_t step, const char *phase, int bucket)
{
    if (!c) return;
    c->ctx_step = step;
    c->ctx_phase = phase ? phase : "";
    c->ctx_bucket = bucket;
}

void zcomm_get_stats(const zcomm *c, zcomm_stats *out)
{
    if (c && out) *out = c->stats;
}

zoff_status zcomm__timeout(zcomm *c, const char *op, uint64_t waited_ms, const char *who)
{
    c->broken = 1;
    char bucket[32] = "none";
    if (c->ctx_bucket >= 0) snprintf(bucket, sizeof bucket, "%d", c->ctx_bucket);
    zoff_status st = zoff__err(-ETIMEDOUT,
                               "comm watchdog: rank %d of %d stuck in %s for %llu ms at step %lld, "
                               "phase '%s', bucket %s: another rank died or stopped calling the "
                               "collective (timeout %llu ms)%s%s",
                               c->rank, c->size, op, (unsigned long long)waited_ms,
                               (long long)c->ctx_step, c->ctx_phase[0] ? c->ctx_phase : "-", bucket,
                               (unsigned long long)c->timeout_ms, who ? "; " : "", who ? who : "");
    ZOFF_WARN(ZOFF_SUB_STEP, "%s", zoff__last_error_tls());
    return st;
}

zoff_status zcomm__stream_ready(zcomm *c, zdev_stream *s)
{
    if (!s || !c->dev) return ZOFF_OK;
    return zdev_stream_sync(c->dev, s);
}

/* ---- rank-order reductions shared by the host-buffer backends (mpi.c, cb.c) -------------- */
/* acc[i] (op)= x[i] over n elements of dt; `first`: acc = x. 16-bit types accumulate in fp32
 * (acc is float then). */
void zcomm__reduce_into(void *acc, const void *x, size_t n, zcomm_dtype dt, zcomm_op op, int first)
{
    switch (dt) {
    case ZCOMM_F32: {
        float *a = acc;
        const float *b = x;
        for (size_t i = 0; i < n; i++)
            a[i] = first ? b[i] : (op == ZCOMM_MAX ? (b[i] > a[i] ? b[i] : a[i]) : a[i] + b[i]);
        break;
    }
    case ZCOMM_F64: {
        double *a = acc;
        const double *b = x;
        for (size_t i = 0; i < n; i++)
            a[i] = first ? b[i] : (op == ZCOMM_MAX ? (b[i] > a[i] ? b[i] : a[i]) : a[i] + b[i]);
        break;
    }
    case ZCOMM_I64: {
        int64_t *a = acc;
        const int64_t *b = x;
        for (size_t i = 0; i < n; i++)
            a[i] = first ? b[i] : (op == ZCOMM_MAX ? (b[i] > a[i] ? b[i] : a[i]) : a[i] + b[i]);
        break;
    }
    case ZCOMM_F16:
    case ZCOMM_BF16: {
        float *a = acc;
        const uint16_t *b = x;
        for (size_t i = 0; i < n; i++) {
            float v = dt == ZCOMM_F16 ? zoff_f16_to_f32(b[i]) : zoff_bf16_to_f32(b[i]);
            a[i] = first ? v : (op == ZCOMM_MAX ? (v > a[i] ? v : a[i]) : a[i] + v);
        }
        break;
    }
    case ZCOMM_U8:
        break;
    }
}

/* out[n] = acc[n] finished (AVG: / size; 16-bit: rounded from the fp32 accumulator). */
void zcomm__reduce_finish(void *out, void *acc, size_t n, zcomm_dtype dt, zcomm_op op, int size)
{
    switch (dt) {
    case ZCOMM_F32: {
        float *a = acc;
        if (op == ZCOMM_AVG)
            for (size_t i = 0; i < n; i++) a[i] /= (float)size;
        if (out != acc) memcpy(out, a, n * sizeof(float));
        break;
    }
    case ZCOMM_F64: {
        double *a = acc;
        if (op == ZCOMM_AVG)
            for (size_t i = 0; i < n; i++) a[i] /= (double)size;
        if (out != acc) memcpy(out, a, n * sizeof(double));
        break;
    }
    case ZCOMM_I64: {
        int64_t *a = acc;
        if (op == ZCOMM_AVG)
            for (size_t i = 0; i < n; i++) a[i] /= size;
        if (out != acc) memcpy(out, a, n * sizeof(int64_t));
        break;
    }
    case ZCOMM_F16:
    case ZCOMM_BF16: {
        float *a = acc;
        uint16_t *o = out;
        for (size_t i = 0; i < n; i++) {
            float v = op == ZCOMM_AVG ? a[i] / (float)size : a[i];
            o[i] = dt == ZCOMM_F16 ? zoff_f32_to_f16(v) : zoff_f32_to_bf16(v);
        }
        break;
    }
    case ZCOMM_U8:
        break;
    }
}

size_t zcomm__acc_size(zcomm_dtype dt)
{
    return (dt == ZCOMM_F16 || dt == ZCOMM_BF16) ? sizeof(float) : zcomm_dtype_size(dt);
}

/* ---- argument checks and dispatch ---------------------------------------------------------- */
static zoff_status check(zcomm *c, const char *op, zcomm_dtype dt)
{
    if (!c) return zoff__err(ZOFF_EINVAL, "%s: NULL communicator", op);
    if (c->broken)
        return zoff__err(ZOFF_ESTATE,
                         "%s: rank %d: the communicator is unusable after a watchdog "
                         "timeout",
                         op, c->rank);
    if (zcomm_dtype_size(dt) == 0) return zoff__err(ZOFF_EINVAL, "%s: unknown dtype %d", op, dt);
    return ZOFF_OK;
}

static void account(zcomm *c, uint64_t t0, size_t bytes)
{
    c->stats.ops++;
    c->stats.busy_ns += zoff__now_ns() - t0;
    c->stats.bytes += bytes;
}

/* The host backends' equal-count reduce-scatter: their per-rank-count one with r * count. */
static zoff_status host_reduce_scatter(zcomm *c, const void *send, void *recv, size_t count,
                                       zcomm_dtype dt, zcomm_op op)
{
    size_t n = (size_t)c->size;
    size_t *cd = malloc(2 * n * sizeof *cd);
    if (!cd) return zoff__err(-ENOMEM, "comm: out of memory");
    for (size_t j = 0; j < n; j++) {
        cd[j] = count;
        cd[n + j] = j * count;
    }
    zoff_status st = c->kind == ZCOMM_CALLBACK
                         ? zcomm__cb_reduce_scatterv(c, send, recv, cd, cd + n, dt, op)
                         : zcomm__mpi_reduce_scatterv(c, send, recv, cd, cd + n, dt, op);
    free(cd);
    return st;
}

zoff_status zcomm_reduce_scatter(zcomm *c, const void *send, void *recv, size_t count,
                                 zcomm_dtype dt, zcomm_op op, zdev_stream *s)
{
    ZOFF_CHECK(check(c, "zcomm_reduce_scatter", dt));
    if (dt == ZCOMM_U8)
        return zoff__err(ZOFF_EINVAL, "zcomm_reduce_scatter: bytes cannot be summed");
    size_t esz = zcomm_dtype_size(dt);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_NCCL) {
        st = zcomm__nccl_reduce_scatter(c, send, recv, count, dt, op, s);
    } else {
        ZOFF_CHECK(zcomm__stream_ready(c, s));
        if (c->kind == ZCOMM_SELF) {
            if (recv != send && count) memmove(recv, send, count * esz);
        } else {
            st = host_reduce_scatter(c, send, recv, count, dt, op);
        }
    }
    account(c, t0, count * esz * (size_t)c->size);
    return st;
}

zoff_status zcomm_reduce_scatterv(zcomm *c, const void *send, void *recv, const size_t *counts,
                                  const size_t *displs, zcomm_dtype dt, zcomm_op op, zdev_stream *s)
{
    ZOFF_CHECK(check(c, "zcomm_reduce_scatterv", dt));
    if (dt == ZCOMM_U8)
        return zoff__err(ZOFF_EINVAL, "zcomm_reduce_scatterv: bytes cannot be summed");
    if (!counts || !displs) return zoff__err(ZOFF_EINVAL, "zcomm_reduce_scatterv: NULL counts");
    size_t esz = zcomm_dtype_size(dt), total = 0;
    for (int r = 0; r < c->size; r++) total += counts[r];
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_NCCL) {
        st = zcomm__nccl_reduce_scatterv(c, send, recv, counts, displs, dt, op, s);
    } else {
        ZOFF_CHECK(zcomm__stream_ready(c, s));
        if (c->kind == ZCOMM_SELF) {
            const uint8_t *src = (const uint8_t *)send + displs[0] * esz;
            if ((const void *)src != recv && counts[0]) memmove(recv, src, counts[0] * esz);
        } else {
            st = c->kind == ZCOMM_CALLBACK
                     ? zcomm__cb_reduce_scatterv(c, send, recv, counts, displs, dt, op)
                     : zcomm__mpi_reduce_scatterv(c, send, recv, counts, displs, dt, op);
        }
    }
    account(c, t0, total * esz);
    return st;
}

zoff_status zcomm_all_reduce(zcomm *c, const void *send, void *recv, size_t count, zcomm_dtype dt,
                             zcomm_op op, zdev_stream *s)
{
    ZOFF_CHECK(check(c, "zcomm_all_reduce", dt));
    if (dt == ZCOMM_U8) return zoff__err(ZOFF_EINVAL, "zcomm_all_reduce: bytes cannot be summed");
    size_t esz = zcomm_dtype_size(dt);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_NCCL) {
        st = zcomm__nccl_all_reduce(c, send, recv, count, dt, op, s);
    } else {
        ZOFF_CHECK(zcomm__stream_ready(c, s));
        if (c->kind == ZCOMM_SELF) {
            if (recv != send && count) memmove(recv, send, count * esz);
        } else {
            st = c->kind == ZCOMM_CALLBACK ? zcomm__cb_all_reduce(c, send, recv, count, dt, op)
                                           : zcomm__mpi_all_reduce(c, send, recv, count, dt, op);
        }
    }
    account(c, t0, count * esz);
    return st;
}

zoff_status zcomm_all_gather(zcomm *c, const void *send, void *recv, size_t count, zcomm_dtype dt,
                             zdev_stream *s)
{
    ZOFF_CHECK(check(c, "zcomm_all_gather", dt));
    size_t esz = zcomm_dtype_size(dt);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_NCCL) {
        st = zcomm__nccl_all_gather(c, send, recv, count, dt, s);
    } else {
        ZOFF_CHECK(zcomm__stream_ready(c, s));
        if (c->kind == ZCOMM_SELF) {
            if (recv != send && count) memmove(recv, send, count * esz);
        } else {
            size_t n = (size_t)c->size;
            size_t *cd = malloc(2 * n * sizeof *cd);
            if (!cd) return zoff__err(-ENOMEM, "zcomm_all_gather: out of memory");
            for (size_t r = 0; r < n; r++) {
                cd[r] = count;
                cd[n + r] = r * count;
            }
            st = c->kind == ZCOMM_CALLBACK
                     ? zcomm__cb_all_gatherv(c, send, recv, cd, cd + n, dt, 0)
                     : zcomm__mpi_all_gatherv(c, send, recv, cd, cd + n, dt, 0);
            free(cd);
        }
    }
    account(c, t0, count * esz);
    return st;
}

zoff_status zcomm_all_gatherv_inplace(zcomm *c, void *buf, const size_t *counts,
                                      const size_t *displs, zcomm_dtype dt, zdev_stream *s)
{
    ZOFF_CHECK(check(c, "zcomm_all_gatherv_inplace", dt));
    if (!counts || !displs) return zoff__err(ZOFF_EINVAL, "zcomm_all_gatherv_inplace: NULL counts");
    size_t esz = zcomm_dtype_size(dt);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_NCCL) {
        st = zcomm__nccl_all_gatherv_inplace(c, buf, counts, displs, dt, s);
    } else {
        ZOFF_CHECK(zcomm__stream_ready(c, s));
        if (c->kind == ZCOMM_MPI) st = zcomm__mpi_all_gatherv(c, buf, buf, counts, displs, dt, 1);
        if (c->kind == ZCOMM_CALLBACK)
            st = zcomm__cb_all_gatherv(c, buf, buf, counts, displs, dt, 1);
    }
    account(c, t0, counts[c->rank] * esz);
    return st;
}

zoff_status zcomm_broadcast(zcomm *c, void *buf, size_t count, zcomm_dtype dt, int root,
                            zdev_stream *s)
{
    ZOFF_CHECK(check(c, "zcomm_broadcast", dt));
    if (root < 0 || root >= c->size)
        return zoff__err(ZOFF_EINVAL, "zcomm_broadcast: root %d outside [0, %d)", root, c->size);
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_NCCL) {
        st = zcomm__nccl_broadcast(c, buf, count, dt, root, s);
    } else {
        ZOFF_CHECK(zcomm__stream_ready(c, s));
        if (c->kind == ZCOMM_MPI) st = zcomm__mpi_broadcast(c, buf, count, dt, root);
        if (c->kind == ZCOMM_CALLBACK) st = zcomm__cb_broadcast(c, buf, count, dt, root);
    }
    account(c, t0, c->rank == root ? count * zcomm_dtype_size(dt) : 0);
    return st;
}

zoff_status zcomm_barrier(zcomm *c)
{
    ZOFF_CHECK(check(c, "zcomm_barrier", ZCOMM_U8));
    uint64_t t0 = zoff__now_ns();
    zoff_status st = ZOFF_OK;
    if (c->kind == ZCOMM_MPI) st = zcomm__mpi_barrier(c);
    if (c->kind == ZCOMM_NCCL) st = zcomm__nccl_barrier(c);
    if (c->kind == ZCOMM_CALLBACK) st = zcomm__cb_barrier(c);
    account(c, t0, 0);
    return st;
}
