/*
 * dispatch.c — choosing and running the CPU Adam kernels: CPU feature detection (CPUID + XCR0,
 * read once), ISA names, hyperparameter checks, the context (ISA, threads, tile size, CPU list),
 * the OpenMP tiling of zadam_step and the chunked, order-fixed parallel sum of squares.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_adam/adam_internal.h"

/* ---- CPU features ---------------------------------------------------------------------------- */

typedef struct cpu_features {
    int avx, avx2, fma, f16c, osxsave, os_ymm; /* os_ymm: XCR0 has SSE + AVX state */
    int avx512f, avx512bw, avx512vl, os_zmm;   /* os_zmm: XCR0 has opmask + ZMM state */
} cpu_features;

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(cpu_features *f)
{
    unsigned a, b, c, d;
    memset(f, 0, sizeof *f);
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    f->fma = !!(c & (1u << 12));
    f->osxsave = !!(c & (1u << 27));
    f->avx = !!(c & (1u << 28));
    f->f16c = !!(c & (1u << 29));
    if (f->osxsave) {
        uint64_t xcr0 = read_xcr0();
        f->os_ymm = (xcr0 & 0x6) == 0x6;
        f->os_zmm = f->os_ymm && (xcr0 & 0xe0) == 0xe0;
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = !!(b & (1u << 5));
        f->avx512f = !!(b & (1u << 16));
        f->avx512bw = !!(b & (1u << 30));
        f->avx512vl = !!(b & (1u << 31));
    }
}

static pthread_once_t g_detect_once = PTHREAD_ONCE_INIT;
static cpu_features g_cpu;
static int g_override = -1; /* tests: highest ISA allowed, -1 none */

static void detect_once(void)
{
    detect(&g_cpu);
}

static const cpu_features *cpu(void)
{
    pthread_once(&g_detect_once, detect_once);
    return &g_cpu;
}

void zadam__cpu_override(int max_isa)
{
    g_override = max_isa;
}

/* Writes the names of what `isa` needs and the CPU/OS lacks into buf ("" when nothing). */
static void missing_features(zadam_isa isa, char *buf, size_t len)
{
    const cpu_features *f = cpu();
    buf[0] = '\0';
    if (isa == ZADAM_ISA_SCALAR) return;
    struct {
        int have;
        const char *name;
    } need[] = {
        {f->avx, "avx"},
        {f->avx2, "avx2"},
        {f->fma, "fma"},
        {f->f16c, "f16c"},
        {f->os_ymm, "OS support of the YMM state (XCR0)"},
        {isa < ZADAM_ISA_AVX512 || f->avx512f, "avx512f"},
        {isa < ZADAM_ISA_AVX512 || f->avx512bw, "avx512bw"},
        {isa < ZADAM_ISA_AVX512 || f->avx512vl, "avx512vl"},
        {isa < ZADAM_ISA_AVX512 || f->os_zmm, "OS support of the ZMM/opmask state (XCR0)"},
    };
    size_t used = 0;
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(need); i++) {
        if (need[i].have) continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", need[i].name);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
    if (!buf[0] && g_override >= 0 && (int)isa > g_override)
        snprintf(buf, len, "disabled by the test override (max %d)", g_override);
}

int zadam_isa_supported(zadam_isa isa)
{
    if ((int)isa < 0 || isa >= ZADAM_ISA_COUNT_) return 0;
    char buf[256];
    missing_features(isa, buf, sizeof buf);
    return buf[0] == '\0';
}

const char *zadam_isa_name(zadam_isa isa)
{
    switch (isa) {
    case ZADAM_ISA_SCALAR:
        return "scalar";
    case ZADAM_ISA_AVX2:
        return "avx2";
    case ZADAM_ISA_AVX512:
        return "avx512";
    default:
        return "?";
    }
}

zoff_status zadam_isa_parse(const char *s, zadam_isa *out)
{
    for (int i = 0; i < ZADAM_ISA_COUNT_; i++) {
        if (s && strcmp(s, zadam_isa_name((zadam_isa)i)) == 0) {
            *out = (zadam_isa)i;
            return ZOFF_OK;
        }
    }
    return zoff__err(ZOFF_EINVAL, "cpu_adam: unknown ISA '%s' (expected scalar, avx2 or avx512)",
                     s ? s : "(null)");
}

zadam_isa zadam_isa_best(void)
{
    for (int i = ZADAM_ISA_COUNT_ - 1; i > 0; i--)
        if (zadam_isa_supported((zadam_isa)i)) return (zadam_isa)i;
    return ZADAM_ISA_SCALAR;
}

static const zadam__step_fn g_step_fns[ZADAM_ISA_COUNT_] = {zadam__step_scalar, zadam__step_avx2,
                                                            zadam__step_avx512};
static const zadam__step_fn g_opt_fns[ZADAM_ISA_COUNT_] = {zopt__step_scalar, zopt__step_avx2,
                                                           zopt__step_avx512};
static const zadam__sumsq_chunk_fn g_sumsq_fns[ZADAM_ISA_COUNT_] = {
    zadam__sumsq_chunk_scalar, zadam__sumsq_chunk_avx2, zadam__sumsq_chunk_avx512};

/* ---- hyperparameters ------------------------------------------------------------------------- */

zoff_status zadam_hparams_check(const zadam_hparams *hp)
{
    if (!hp) return zoff__err(ZOFF_EINVAL, "cpu_adam: hparams is NULL");
    if (hp->optim < 0 || hp->optim >= ZOPT_KIND_COUNT_)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: unknown optimizer %d", hp->optim);
    if (hp->optim == ZOPT_ADAGRAD) {
        if (!isfinite(hp->lr) || hp->lr < 0.0f)
            return zoff__err(ZOFF_EINVAL, "adagrad: invalid lr %g (need finite, >= 0)",
                             (double)hp->lr);
        if (!isfinite(hp->lr_decay) || hp->lr_decay < 0.0f)
            return zoff__err(ZOFF_EINVAL, "adagrad: invalid lr_decay %g (need finite, >= 0)",
                             (double)hp->lr_decay);
        if (!isfinite(hp->eps) || hp->eps < 0.0f)
            return zoff__err(ZOFF_EINVAL, "adagrad: invalid eps %g (need finite, >= 0)",
                             (double)hp->eps);
        if (!isfinite(hp->weight_decay) || hp->weight_decay < 0.0f)
            return zoff__err(ZOFF_EINVAL, "adagrad: invalid weight_decay %g (need finite, >= 0)",
                             (double)hp->weight_decay);
        if (!isfinite(hp->grad_scale))
            return zoff__err(ZOFF_EINVAL, "adagrad: invalid grad_scale %g (need finite)",
                             (double)hp->grad_scale);
        if (hp->step < 1)
            return zoff__err(ZOFF_EINVAL, "adagrad: invalid step %lld (need >= 1)",
                             (long long)hp->step);
        return ZOFF_OK;
    }
    if (!isfinite(hp->lr) || hp->lr < 0.0f)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid lr %g (need finite, >= 0)",
                         (double)hp->lr);
    if (!(hp->beta1 >= 0.0f && hp->beta1 < 1.0f))
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid beta1 %g (need 0 <= beta1 < 1)",
                         (double)hp->beta1);
    if (!(hp->beta2 >= 0.0f && hp->beta2 < 1.0f))
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid beta2 %g (need 0 <= beta2 < 1)",
                         (double)hp->beta2);
    if (!isfinite(hp->eps) || hp->eps < 0.0f)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid eps %g (need finite, >= 0)",
                         (double)hp->eps);
    if (!isfinite(hp->weight_decay) || hp->weight_decay < 0.0f)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid weight_decay %g (need finite, >= 0)",
                         (double)hp->weight_decay);
    if (!isfinite(hp->grad_scale))
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid grad_scale %g (need finite)",
                         (double)hp->grad_scale);
    if (hp->bias_correction && hp->step < 1)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid step %lld (need >= 1)",
                         (long long)hp->step);
    return ZOFF_OK;
}

static zoff_status tensor_check(const zadam_tensor *t)
{
    if (!t) return zoff__err(ZOFF_EINVAL, "cpu_adam: tensor is NULL");
    if (t->grad_dtype != ZOFF_DTYPE_F32 && t->grad_dtype != ZOFF_DTYPE_F16 &&
        t->grad_dtype != ZOFF_DTYPE_BF16)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid grad dtype %d", (int)t->grad_dtype);
    if (t->param_out && t->out_dtype != ZOFF_DTYPE_F32 && t->out_dtype != ZOFF_DTYPE_F16 &&
        t->out_dtype != ZOFF_DTYPE_BF16)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: invalid output dtype %d", (int)t->out_dtype);
    return ZOFF_OK;
}

/* The state pointers `optim` needs in t's format. */
static zoff_status state_check(const zadam_tensor *t, int optim)
{
    if (t->state_fmt < 0 || t->state_fmt >= ZSTATE_FMT_COUNT_)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: unknown state format %d", (int)t->state_fmt);
    if (!t->n) return ZOFF_OK;
    const int has_m = zopt_has_m((zopt_kind)optim), has_v = zopt_has_v((zopt_kind)optim);
    int ok = t->grad && t->param;
    if (t->state_fmt == ZSTATE_FP32) {
        ok = ok && (!has_m || t->exp_avg) && (!has_v || t->exp_avg_sq);
    } else {
        ok = ok && (!has_m || t->m_state) && (!has_v || t->v_state);
        if (t->state_fmt == ZSTATE_Q8)
            ok = ok && (!has_m || t->m_absmax) && (!has_v || t->v_absmax);
    }
    if (!ok)
        return zoff__err(ZOFF_EINVAL,
                         "cpu_adam: NULL grad, param or %s state pointer (%s) with n=%zu",
                         zopt_kind_name((zopt_kind)optim), zstate_fmt_name(t->state_fmt), t->n);
    return ZOFF_OK;
}

/* ---- context --------------------------------------------------------------------------------- */

struct zadam_ctx {
    zadam_isa isa;
    int threads;
    size_t tile_numel;
    int nt_out; /* zadam_config.nt_out */
    int *cpus;  /* owned copy, ncpus entries, or NULL */
    int ncpus;
    uint64_t bind_id; /* unique per context: worker threads remember which binding they hold */
};

static uint64_t g_next_bind_id = 1;

/* The binding an OpenMP worker thread currently holds (context id and thread number). */
static _Thread_local uint64_t t_bound_id;
static _Thread_local int t_bound_tid;

static zoff_status bind_to(int cpu_id)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_id, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        return zoff__err(-rc, "cpu_adam: pthread_setaffinity_np(cpu %d): %s", cpu_id, strerror(rc));
    return ZOFF_OK;
}

/* Called by every thread of a parallel region: workers bind once per context. */
static void bind_worker(const zadam_ctx *ctx)
{
    if (!ctx->ncpus) return;
    int tid = omp_get_thread_num();
    if (tid == 0) return; /* the caller's thread: zadam_bind_caller */
    if (t_bound_id == ctx->bind_id && t_bound_tid == tid) return;
    if (bind_to(ctx->cpus[tid % ctx->ncpus]) < 0)
        ZOFF_LOG_ONCE(ZOFF_LOG_WARN, ZOFF_SUB_ADAM, "%s; Adam threads stay unbound",
                      zoff__last_error_tls());
    t_bound_id = ctx->bind_id;
    t_bound_tid = tid;
}

zoff_status zadam_bind_caller(const zadam_ctx *ctx)
{
    if (!ctx || !ctx->ncpus) return ZOFF_OK;
    return bind_to(ctx->cpus[0]);
}

zoff_status zadam_create(const zadam_config *cfg, zadam_ctx **out)
{
    zadam_config def = {0};
    zoff_status st = ZOFF_OK;
    zadam_ctx *ctx = NULL;
    if (!out) return zoff__err(ZOFF_EINVAL, "cpu_adam: zadam_create: out is NULL");
    if (!cfg) cfg = &def;

    const char *name = cfg->isa;
    const char *source = "zadam_config.isa";
    if (!name || !name[0]) {
        name = zoff__param_str(ZOFF_PARAM_CPU_ISA);
        source = "ZOFF_CPU_ISA";
    }
    zadam_isa isa = zadam_isa_best();
    if (name && name[0] && strcmp(name, "auto") != 0) {
        ZOFF_CHECK_GOTO(zadam_isa_parse(name, &isa), st, done);
        char missing[256];
        missing_features(isa, missing, sizeof missing);
        if (missing[0]) {
            st = zoff__err(ZOFF_EUNSUPPORTED,
                           "cpu_adam: ISA '%s' requested by %s cannot run on this CPU: missing %s "
                           "(best available: %s)",
                           name, source, missing, zadam_isa_name(zadam_isa_best()));
            goto done;
        }
    }

    int threads = cfg->threads;
    if (threads <= 0) threads = (int)zoff__param_int(ZOFF_PARAM_CPU_THREADS, 0);
    if (threads <= 0) threads = omp_get_max_threads();
    if (threads <= 0) threads = 1;
    if (threads > ZADAM_MAX_THREADS) {
        ZOFF_WARN(ZOFF_SUB_ADAM,
                  "cpu_adam: %d threads requested (config, ZOFF_CPU_THREADS or "
                  "OMP_NUM_THREADS); using %d",
                  threads, ZADAM_MAX_THREADS);
        threads = ZADAM_MAX_THREADS;
    }

    size_t tile = cfg->tile_numel ? cfg->tile_numel : ZADAM_DEFAULT_TILE_NUMEL;
    if (tile % 64 != 0) {
        st = zoff__err(ZOFF_EINVAL, "cpu_adam: tile_numel %zu is not a multiple of 64", tile);
        goto done;
    }
    if (cfg->ncpus < 0 || (cfg->ncpus > 0 && !cfg->cpus)) {
        st = zoff__err(ZOFF_EINVAL, "cpu_adam: bad CPU list (ncpus %d, cpus %p)", cfg->ncpus,
                       (const void *)cfg->cpus);
        goto done;
    }
    for (int i = 0; i < cfg->ncpus; i++) {
        if (cfg->cpus[i] < 0 || cfg->cpus[i] >= CPU_SETSIZE) {
            st = zoff__err(ZOFF_EINVAL, "cpu_adam: CPU id %d out of range", cfg->cpus[i]);
            goto done;
        }
    }

    ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        st = zoff__err(-ENOMEM, "cpu_adam: out of memory for the context");
        goto done;
    }
    ctx->isa = isa;
    ctx->threads = threads;
    ctx->tile_numel = tile;
    ctx->nt_out = cfg->nt_out;
    ctx->bind_id = __atomic_fetch_add(&g_next_bind_id, 1, __ATOMIC_RELAXED);
    if (cfg->ncpus > 0) {
        ctx->cpus = malloc(sizeof(int) * (size_t)cfg->ncpus);
        if (!ctx->cpus) {
            st = zoff__err(-ENOMEM, "cpu_adam: out of memory for the CPU list");
            goto done;
        }
        memcpy(ctx->cpus, cfg->cpus, sizeof(int) * (size_t)cfg->ncpus);
        ctx->ncpus = cfg->ncpus;
    }
    ZOFF_INFO(ZOFF_SUB_ADAM, "cpu_adam: ISA %s, %d threads, tile %zu elements, %d bound CPUs",
              zadam_isa_name(isa), threads, tile, ctx->ncpus);
    *out = ctx;
    ctx = NULL;
done:
    zadam_destroy(ctx);
    return st;
}

void zadam_destroy(zadam_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->cpus);
    free(ctx);
}

zadam_isa zadam_ctx_isa(const zadam_ctx *ctx)
{
    return ctx->isa;
}

int zadam_ctx_threads(const zadam_ctx *ctx)
{
    return ctx->threads;
}

size_t zadam_ctx_tile_numel(const zadam_ctx *ctx)
{
    return ctx->tile_numel;
}

size_t zadam_ctx_tile_for(const zadam_ctx *ctx, zstate_fmt f)
{
    if (f != ZSTATE_Q8) return ctx->tile_numel;
    return (ctx->tile_numel + ZSTATE_Q8_BLOCK - 1) / ZSTATE_Q8_BLOCK * ZSTATE_Q8_BLOCK;
}

/* ---- the step -------------------------------------------------------------------------------- */

/* The view of tile [off, off + len) of t. */
static zadam_tensor tile_of(const zadam_tensor *t, size_t off, size_t len)
{
    zadam_tensor v = *t;
    const size_t gsz = zoff_dtype_size(t->grad_dtype);
    v.n = len;
    v.grad = (const char *)t->grad + off * gsz;
    v.param = t->param + off;
    if (t->exp_avg) v.exp_avg = t->exp_avg + off;
    if (t->exp_avg_sq) v.exp_avg_sq = t->exp_avg_sq + off;
    if (t->state_fmt != ZSTATE_FP32) {
        const size_t ms = t->state_fmt == ZSTATE_BF16 ? 2u : 1u;
        if (t->m_state) v.m_state = (char *)t->m_state + off * ms;
        if (t->v_state) v.v_state = (char *)t->v_state + off * ms;
        if (t->m_absmax) v.m_absmax = t->m_absmax + off / ZSTATE_Q8_BLOCK;
        if (t->v_absmax) v.v_absmax = t->v_absmax + off / ZSTATE_Q8_BLOCK;
    }
    if (t->param_out) v.param_out = (char *)t->param_out + off * zoff_dtype_size(t->out_dtype);
    return v;
}

zoff_status zadam_step(zadam_ctx *ctx, const zadam_hparams *hp, const zadam_tensor *t,
                       size_t *nonfinite)
{
    if (!ctx) return zoff__err(ZOFF_EINVAL, "cpu_adam: zadam_step: ctx is NULL");
    ZOFF_CHECK(zadam_hparams_check(hp));
    ZOFF_CHECK(tensor_check(t));
    ZOFF_CHECK(state_check(t, hp->optim));
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    s.nt_out = ctx->nt_out > 0 || (ctx->nt_out == 0 && t->n >= ZADAM_NT_MIN_NUMEL);
    const int generic = hp->optim != ZOPT_ADAM || t->state_fmt != ZSTATE_FP32;
    const zadam__step_fn fn = generic ? g_opt_fns[ctx->isa] : g_step_fns[ctx->isa];
    const size_t tile = zadam_ctx_tile_for(ctx, t->state_fmt);
    const size_t ntiles = (t->n + tile - 1) / tile;
    size_t bad = 0;
    if (ntiles <= 1 || ctx->threads == 1) {
        /* one thread runs the same tiles in order: identical results */
        for (size_t k = 0; k < ntiles; k++) {
            zadam_tensor v = tile_of(t, k * tile, ZOFF_MIN(tile, t->n - k * tile));
            bad += fn(&s, &v);
        }
    } else {
        const int nthr = (int)ZOFF_MIN((size_t)ctx->threads, ntiles);
        /* dynamic: a thread that loses its core for a while (I/O threads, other processes) does
         * not hold the step back; measured at least as fast as static (docs/cpu_adam.md) */
#pragma omp parallel num_threads(nthr) reduction(+ : bad)
        {
            bind_worker(ctx);
#pragma omp for schedule(dynamic)
            for (size_t k = 0; k < ntiles; k++) {
                zadam_tensor v = tile_of(t, k * tile, ZOFF_MIN(tile, t->n - k * tile));
                bad += fn(&s, &v);
            }
        }
    }
    if (nonfinite) *nonfinite = bad;
    return ZOFF_OK;
}

/* ---- sum of squares -------------------------------------------------------------------------- */

/* Chunk partials of one batch live on the stack; batches are added in order. */
#define SUMSQ_BATCH_CHUNKS 512

zoff_status zadam_sumsq(zadam_ctx *ctx, const void *grad, zoff_dtype dt, size_t n, double *sumsq,
                        size_t *nonfinite)
{
    if (!ctx || !sumsq) return zoff__err(ZOFF_EINVAL, "cpu_adam: zadam_sumsq: NULL ctx or sumsq");
    if (dt != ZOFF_DTYPE_F32 && dt != ZOFF_DTYPE_F16 && dt != ZOFF_DTYPE_BF16)
        return zoff__err(ZOFF_EINVAL, "cpu_adam: zadam_sumsq: invalid dtype %d", (int)dt);
    if (n && !grad) return zoff__err(ZOFF_EINVAL, "cpu_adam: zadam_sumsq: NULL grad, n=%zu", n);
    const zadam__sumsq_chunk_fn fn = g_sumsq_fns[ctx->isa];
    const size_t chunk = ZADAM_SUMSQ_CHUNK_NUMEL, esize = zoff_dtype_size(dt);
    const size_t nchunks = (n + chunk - 1) / chunk;
    if (nchunks <= 1 || ctx->threads == 1) {
        *sumsq = zadam__sumsq_serial(fn, grad, dt, n, nonfinite);
        return ZOFF_OK;
    }
    double partial[SUMSQ_BATCH_CHUNKS];
    double total = 0.0;
    size_t bad = 0;
    for (size_t first = 0; first < nchunks; first += SUMSQ_BATCH_CHUNKS) {
        const size_t count = ZOFF_MIN((size_t)SUMSQ_BATCH_CHUNKS, nchunks - first);
        const int nthr = (int)ZOFF_MIN((size_t)ctx->threads, count);
        size_t batch_bad = 0;
#pragma omp parallel num_threads(nthr) reduction(+ : batch_bad)
        {
            bind_worker(ctx);
#pragma omp for schedule(dynamic)
            for (size_t c = 0; c < count; c++) {
                const size_t off = (first + c) * chunk;
                size_t cb = 0;
                partial[c] =
                    fn((const char *)grad + off * esize, dt, ZOFF_MIN(chunk, n - off), &cb);
                batch_bad += cb;
            }
        }
        for (size_t c = 0; c < count; c++) total += partial[c];
        bad += batch_bad;
    }
    *sumsq = total;
    if (nonfinite) *nonfinite = bad;
    return ZOFF_OK;
}

size_t zadam_bytes_per_elem(zoff_dtype grad_dtype, int has_out, zoff_dtype out_dtype)
{
    size_t bytes = zoff_dtype_size(grad_dtype) + 3 * sizeof(float) + 3 * sizeof(float);
    if (has_out) bytes += zoff_dtype_size(out_dtype);
    return bytes;
}
