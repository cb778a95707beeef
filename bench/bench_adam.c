/*
 * bench_adam.c — `zoff bench adam`: the fused CPU Adam step against this machine's memory
 * roofline for the same access pattern, measured in the same run.
 *
 * Owns: the benchmark buffers (huge-page backed, first-touched by the threads that use them),
 * the roofline kernels (the kernel's streams with no math: ordinary stores, non-temporal stores
 * for the write-only 16-bit output, non-temporal stores everywhere), a naive C loop baseline
 * (the same update written plainly and left to the auto-vectoriser), the correctness checks run
 * before anything is timed, and the table / JSON / CSV output.
 *
 * Timing: R rounds after one untimed round; each round runs every kernel once, back to back, so
 * that a disturbance of this noisy machine hits all kernels alike. Reported: median and best ms
 * per step, GB/s counting the bytes the step must move (grad in + param/m/v in and out + copy
 * out) over the median time, and x_roofline: the median over rounds of (best roofline's time /
 * kernel's time) within the same round, the best roofline being the one with the lowest median.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "common/half.h"
#include "cpu_adam/adam.h"
#include "harness.h"

#define BA_AVX512      __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define BA_AVX2        __attribute__((target("avx2,fma,f16c")))
#define BA_MAX_KERNELS 12
#define BA_CHECK_NUMEL ((size_t)1 << 20)

/* ---- buffers --------------------------------------------------------------------------------- */

typedef struct ba_bufs {
    size_t n;
    zoff_dtype gdt, odt;
    int has_out;
    void *grad;           /* n elements of gdt */
    float *param, *m, *v; /* n fp32 each */
    void *out;            /* n elements of odt, or NULL */
} ba_bufs;

/* 2 MiB-aligned anonymous memory with transparent huge pages requested. */
/* Deterministic data: grads uniform in +-0.01, params in [-1, 1), m = g/2, v = g^2 + 1e-6.
 * Filled tile by tile by the benchmark's threads (first touch). */
static void ba_fill(ba_bufs *b, size_t tile, int threads)
{
    const size_t ntiles = (b->n + tile - 1) / tile;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t k = 0; k < ntiles; k++) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (k + 1);
        const size_t hi = ZOFF_MIN(b->n, (k + 1) * tile);
        for (size_t i = k * tile; i < hi; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            float u1 = (float)((x >> 40) & 0xffffff) / 16777216.0f; /* [0, 1) */
            float u2 = (float)((x >> 16) & 0xffffff) / 16777216.0f;
            float g = (u1 - 0.5f) * 0.02f;
            if (b->gdt == ZOFF_DTYPE_F16)
                ((uint16_t *)b->grad)[i] = zoff_f32_to_f16(g);
            else if (b->gdt == ZOFF_DTYPE_BF16)
                ((uint16_t *)b->grad)[i] = zoff_f32_to_bf16(g);
            else
                ((float *)b->grad)[i] = g;
            b->param[i] = 2.0f * u2 - 1.0f;
            b->m[i] = g * 0.5f;
            b->v[i] = g * g + 1e-6f;
            if (b->out) {
                if (b->odt == ZOFF_DTYPE_F32)
                    ((float *)b->out)[i] = 0.0f;
                else
                    ((uint16_t *)b->out)[i] = 0;
            }
        }
    }
}

/* ---- the zoff kernel ------------------------------------------------------------------------- */

typedef struct ba_zoff_arg {
    zadam_ctx *ctx;
    zadam_hparams hp;
    zadam_tensor t;
    int failed;
} ba_zoff_arg;

static void run_zoff(void *p)
{
    ba_zoff_arg *a = p;
    size_t bad = 0;
    if (zadam_step(a->ctx, &a->hp, &a->t, &bad) != 0 || bad != 0) a->failed = 1;
}

static void zoff_next_step(void *p)
{
    ((ba_zoff_arg *)p)->hp.step++;
}

static zadam_tensor ba_tensor(const ba_bufs *b, size_t off, size_t n)
{
    zadam_tensor t = {0};
    t.n = n;
    t.grad = (const char *)b->grad + off * zoff_dtype_size(b->gdt);
    t.grad_dtype = b->gdt;
    t.param = b->param + off;
    t.exp_avg = b->m + off;
    t.exp_avg_sq = b->v + off;
    t.param_out = b->out ? (char *)b->out + off * zoff_dtype_size(b->odt) : NULL;
    t.out_dtype = b->odt;
    return t;
}

/* ---- the naive loop -------------------------------------------------------------------------- */

typedef struct ba_naive_arg {
    const ba_bufs *b;
    zadam_hparams hp;
    int threads;
} ba_naive_arg;

static void naive_next_step(void *p)
{
    ((ba_naive_arg *)p)->hp.step++;
}

/* The update as a C programmer writes it first: one OpenMP loop over all elements with the
 * half.h conversions and sqrtf, `omp simd` to invite the auto-vectoriser. The dtype choice is
 * hoisted out of the loop (one specialised copy per grad/output pair) so that the loop body is
 * what the vectoriser sees. */
#define BA_NAIVE_BODY(gdt, okind)                                                                  \
    do {                                                                                           \
        _Pragma("omp parallel for simd schedule(static) num_threads(threads)") for (size_t i = 0;  \
                                                                                    i < n; i++)    \
        {                                                                                          \
            float g = (gdt) == ZOFF_DTYPE_F16    ? zoff_f16_to_f32(g16[i])                         \
                      : (gdt) == ZOFF_DTYPE_BF16 ? zoff_bf16_to_f32(g16[i])                        \
                                                 : g32[i];                                         \
            g *= gs;                                                                               \
            float p = param[i] * (1.0f - lr * wd);                                                 \
            m[i] = b1 * m[i] + (1.0f - b1) * g;                                                    \
            v[i] = b2 * v[i] + (1.0f - b2) * g * g;                                                \
            p -= lr / bc1 * m[i] / (sqrtf(v[i] / bc2) + eps);                                      \
            param[i] = p;                                                                          \
            if ((okind) == 1) o16[i] = zoff_f32_to_f16(p);                                         \
            if ((okind) == 2) o16[i] = zoff_f32_to_bf16(p);                                        \
            if ((okind) == 3) o32[i] = p;                                                          \
        }                                                                                          \
    } while (0)

#define BA_NAIVE_OUTS(gdt)                                                                         \
    do {                                                                                           \
        if (okind == 1)                                                                            \
            BA_NAIVE_BODY(gdt, 1);                                                                 \
        else if (okind == 2)                                                                       \
            BA_NAIVE_BODY(gdt, 2);                                                                 \
        else if (okind == 3)                                                                       \
            BA_NAIVE_BODY(gdt, 3);                                                                 \
        else                                                                                       \
            BA_NAIVE_BODY(gdt, 0);                                                                 \
    } while (0)

#define BA_NAIVE_FN(name, attr)                                                                    \
    attr static void name(const ba_naive_arg *a)                                                   \
    {                                                                                              \
        const ba_bufs *b = a->b;                                                                   \
        const zadam_hparams *hp = &a->hp;                                                          \
        const size_t n = b->n;                                                                     \
        const int threads = a->threads;                                                            \
        const float bc1 = 1.0f - powf(hp->beta1, (float)hp->step);                                 \
        const float bc2 = 1.0f - powf(hp->beta2, (float)hp->step);                                 \
        const float lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;                    \
        const float wd = hp->weight_decay, gs = hp->grad_scale;                                    \
        const uint16_t *restrict g16 = b->grad;                                                    \
        const float *restrict g32 = b->grad;                                                       \
        float *restrict param = b->param, *restrict m = b->m, *restrict v = b->v;                  \
        uint16_t *restrict o16 = b->out;                                                           \
        float *restrict o32 = b->out;                                                              \
        const int okind = !b->out                     ? 0                                          \
                          : b->odt == ZOFF_DTYPE_F16  ? 1                                          \
                          : b->odt == ZOFF_DTYPE_BF16 ? 2                                          \
                                                      : 3;                                         \
        if (b->gdt == ZOFF_DTYPE_F16)                                                              \
            BA_NAIVE_OUTS(ZOFF_DTYPE_F16);                                                         \
        else if (b->gdt == ZOFF_DTYPE_BF16)                                                        \
            BA_NAIVE_OUTS(ZOFF_DTYPE_BF16);                                                        \
        else                                                                                       \
            BA_NAIVE_OUTS(ZOFF_DTYPE_F32);                                                         \
    }

BA_NAIVE_FN(naive_avx512, BA_AVX512)
BA_NAIVE_FN(naive_generic, )

static void run_naive(void *p)
{
    naive_avx512(p);
}

static void run_naive_generic(void *p)
{
    naive_generic(p);
}

/* ---- roofline: the same streams, no math ----------------------------------------------------- */

/* Reads grad, param, m, v; writes param, m, v back unchanged (an empty asm statement makes the
 * compiler treat each loaded vector as new data, so no load or store is elided) and writes the
 * 16-bit output (the low 16 bits of each param word: a narrowing move, no arithmetic).
 * nt: 0 ordinary stores, 1 non-temporal stores for the write-only output, 2 non-temporal stores
 * for every write. Tiles and schedule as in zadam_step (same tile size, dynamic schedule). */

typedef struct ba_roof_arg {
    const ba_bufs *b;
    size_t tile;
    int threads;
    int nt;
    zadam_isa isa;
} ba_roof_arg;

#define BA_TOUCH(x) __asm__ volatile("" : "+v"(x))

BA_AVX512 static void roof_tile_avx512(const ba_bufs *b, size_t lo, size_t hi, int nt)
{
    const size_t gsz = zoff_dtype_size(b->gdt);
    size_t i = lo;
    for (; i + 16 <= hi; i += 16) {
        __m512i g;
        if (gsz == 2)
            g = _mm512_castsi256_si512(
                _mm256_loadu_si256((const __m256i *)((const uint16_t *)b->grad + i)));
        else
            g = _mm512_loadu_si512((const float *)b->grad + i);
        BA_TOUCH(g);
        __m512 p = _mm512_loadu_ps(b->param + i), m = _mm512_loadu_ps(b->m + i),
               v = _mm512_loadu_ps(b->v + i);
        BA_TOUCH(p);
        BA_TOUCH(m);
        BA_TOUCH(v);
        if (nt == 2) {
            _mm512_stream_ps(b->param + i, p);
            _mm512_stream_ps(b->m + i, m);
            _mm512_stream_ps(b->v + i, v);
        } else {
            _mm512_storeu_ps(b->param + i, p);
            _mm512_storeu_ps(b->m + i, m);
            _mm512_storeu_ps(b->v + i, v);
        }
        if (!b->out) continue;
        if (b->odt == ZOFF_DTYPE_F32) {
            if (nt)
                _mm512_stream_ps((float *)b->out + i, p);
            else
                _mm512_storeu_ps((float *)b->out + i, p);
        } else {
            __m256i o = _mm512_cvtepi32_epi16(_mm512_castps_si512(p));
            if (nt)
                _mm256_stream_si256((__m256i *)((uint16_t *)b->out + i), o);
            else
                _mm256_storeu_si256((__m256i *)((uint16_t *)b->out + i), o);
        }
    }
    for (; i < hi; i++) { /* tail of the last tile: plain copies */
        float p = b->param[i];
        __asm__ volatile("" : "+x"(p));
        b->param[i] = p;
        if (b->out && b->odt == ZOFF_DTYPE_F32)
            ((float *)b->out)[i] = p;
        else if (b->out)
            ((uint16_t *)b->out)[i] = (uint16_t)zoff_f32_bits(p);
    }
    if (nt) _mm_sfence();
}

BA_AVX2 static void roof_tile_avx2(const ba_bufs *b, size_t lo, size_t hi, int nt)
{
    const size_t gsz = zoff_dtype_size(b->gdt);
    size_t i = lo;
    for (; i + 8 <= hi; i += 8) {
        __m256i g;
        if (gsz == 2)
            g = _mm256_castsi128_si256(
                _mm_loadu_si128((const __m128i *)((const uint16_t *)b->grad + i)));
        else
            g = _mm256_loadu_si256((const __m256i *)((const float *)b->grad + i));
        BA_TOUCH(g);
        __m256 p = _mm256_loadu_ps(b->param + i), m = _mm256_loadu_ps(b->m + i),
               v = _mm256_loadu_ps(b->v + i);
        BA_TOUCH(p);
        BA_TOUCH(m);
        BA_TOUCH(v);
        if (nt == 2) {
            _mm256_stream_ps(b->param + i, p);
            _mm256_stream_ps(b->m + i, m);
            _mm256_stream_ps(b->v + i, v);
        } else {
            _mm256_storeu_ps(b->param + i, p);
            _mm256_storeu_ps(b->m + i, m);
            _mm256_storeu_ps(b->v + i, v);
        }
        if (!b->out) continue;
        if (b->odt == ZOFF_DTYPE_F32) {
            if (nt)
                _mm256_stream_ps((float *)b->out + i, p);
            else
                _mm256_storeu_ps((float *)b->out + i, p);
        } else {
            __m256i lo16 = _mm256_and_si256(_mm256_castps_si256(p), _mm256_set1_epi32(0xffff));
            __m128i o =
                _mm_packus_epi32(_mm256_castsi256_si128(lo16), _mm256_extracti128_si256(lo16, 1));
            if (nt)
                _mm_stream_si128((__m128i *)((uint16_t *)b->out + i), o);
            else
                _mm_storeu_si128((__m128i *)((uint16_t *)b->out + i), o);
        }
    }
    for (; i < hi; i++) {
        float p = b->param[i];
        __asm__ volatile("" : "+x"(p));
        b->param[i] = p;
        if (b->out && b->odt == ZOFF_DTYPE_F32)
            ((float *)b->out)[i] = p;
        else if (b->out)
            ((uint16_t *)b->out)[i] = (uint16_t)zoff_f32_bits(p);
    }
    if (nt) _mm_sfence();
}

static void run_roof(void *p)
{
    const ba_roof_arg *a = p;
    const size_t ntiles = (a->b->n + a->tile - 1) / a->tile;
#pragma omp parallel for schedule(dynamic) num_threads(a->threads)
    for (size_t k = 0; k < ntiles; k++) {
        const size_t lo = k * a->tile, hi = ZOFF_MIN(a->b->n, lo + a->tile);
        if (a->isa == ZADAM_ISA_AVX512)
            roof_tile_avx512(a->b, lo, hi, a->nt);
        else
            roof_tile_avx2(a->b, lo, hi, a->nt);
    }
}

/* ---- correctness before timing --------------------------------------------------------------- */

typedef struct ba_copy {
    ba_bufs b;
} ba_copy;

/* A private copy of the first n elements of src (free with ba_copy_free). */
static int ba_copy_make(const ba_bufs *src, size_t n, ba_copy *c)
{
    memset(c, 0, sizeof *c);
    c->b = *src;
    c->b.n = n;
    const size_t gsz = zoff_dtype_size(src->gdt), osz = zoff_dtype_size(src->odt);
    /* aligned like the timed buffers, so the checked code paths are the timed ones */
    c->b.grad = zb_alloc_huge(n * gsz);
    c->b.param = zb_alloc_huge(n * 4);
    c->b.m = zb_alloc_huge(n * 4);
    c->b.v = zb_alloc_huge(n * 4);
    c->b.out = src->out ? zb_alloc_huge(n * osz) : NULL;
    if (!c->b.grad || !c->b.param || !c->b.m || !c->b.v || (src->out && !c->b.out)) return -1;
    memcpy(c->b.grad, src->grad, n * gsz);
    memcpy(c->b.param, src->param, n * 4);
    memcpy(c->b.m, src->m, n * 4);
    memcpy(c->b.v, src->v, n * 4);
    if (src->out) memcpy(c->b.out, src->out, n * osz);
    return 0;
}

static void ba_copy_free(ba_copy *c)
{
    free(c->b.grad);
    free(c->b.param);
    free(c->b.m);
    free(c->b.v);
    free(c->b.out);
}

/* Count of elements whose bits differ (NaN payloads included); *first: the first one. */
static size_t ba_diff_bits(const void *x, const void *y, size_t n, size_t esize, size_t *first)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp((const char *)x + i * esize, (const char *)y + i * esize, esize) != 0) {
            if (!bad) *first = i;
            bad++;
        }
    }
    return bad;
}

/* Compares the first n elements of a's state with b's, bit for bit; prints the first difference.
 * Returns 0 when identical. */
static int ba_same(const char *what, const ba_bufs *a, const ba_bufs *b, size_t n)
{
    const struct {
        const char *name;
        const void *x, *y;
        size_t esize;
    } cmp[] = {{"param", a->param, b->param, 4},
               {"exp_avg", a->m, b->m, 4},
               {"exp_avg_sq", a->v, b->v, 4},
               {"param_out", a->out, b->out, zoff_dtype_size(a->odt)}};
    for (size_t k = 0; k < ZOFF_ARRAY_SIZE(cmp); k++) {
        size_t first = 0, d;
        if (!cmp[k].x || !cmp[k].y) continue;
        if ((d = ba_diff_bits(cmp[k].x, cmp[k].y, n, cmp[k].esize, &first)) != 0) {
            fprintf(stderr, "check: %s: %s: %zu of %zu elements differ (first at %zu)\n", what,
                    cmp[k].name, d, n, first);
            return -1;
        }
    }
    return 0;
}

/* The timed zoff configuration, checked in place: one zadam_step over the whole benchmark tensor
 * (same n, alignment, tiles, threads and streaming-store choice as the timed runs) must equal
 * the single-threaded scalar reference on the first BA_CHECK_NUMEL elements, bit for bit.
 * Advances the benchmark state by one step. */
static int ba_check_zoff(ba_bufs *b, zadam_ctx *ctx, const zadam_hparams *hp)
{
    const size_t n = ZOFF_MIN(b->n, BA_CHECK_NUMEL);
    ba_copy ref;
    int rc = -1;
    if (ba_copy_make(b, n, &ref) != 0) {
        fprintf(stderr, "bench adam: out of memory for the correctness check\n");
        goto out;
    }
    zadam_tensor tr = ba_tensor(&ref.b, 0, n), all = ba_tensor(b, 0, b->n);
    size_t bad_ref = adam_step_scalar(hp, &tr), bad_all = 0;
    if (zadam_step(ctx, hp, &all, &bad_all) != 0) {
        fprintf(stderr, "bench adam: zadam_step failed: %s\n", zoff__last_error_tls());
        goto out;
    }
    if (bad_ref != 0 || bad_all != 0) {
        fprintf(stderr, "check: unexpected non-finite gradients (%zu, reference %zu)\n", bad_all,
                bad_ref);
        goto out;
    }
    rc = ba_same("zoff vs scalar reference", b, &ref.b, n);
out:
    ba_copy_free(&ref);
    return rc;
}

/* The reference points, on the benchmark buffers: the naive loop agrees with the scalar
 * reference to 1e-5 relative on the params of the first BA_CHECK_NUMEL elements; each roofline
 * flavour leaves param/m/v unchanged and writes the low halves of the params as the copy. */
static int ba_check_refs(ba_bufs *b, const zadam_hparams *hp, int threads, size_t tile,
                         zadam_isa roof_isa, int have_naive512, int have_roof, int want_naive)
{
    const size_t n = ZOFF_MIN(b->n, BA_CHECK_NUMEL);
    ba_copy ref;
    int rc = -1;
    if (ba_copy_make(b, n, &ref) != 0) {
        fprintf(stderr, "bench adam: out of memory for the correctness check\n");
        goto out;
    }
    for (int nt = 0; have_roof && nt < 3; nt++) {
        ba_roof_arg ra = {b, tile, threads, nt, roof_isa};
        run_roof(&ra);
        ba_bufs state = *b;
        state.out = NULL; /* param/m/v must be unchanged */
        if (ba_same("roofline", &state, &ref.b, n) != 0) goto out;
        for (size_t i = 0; b->out && b->odt != ZOFF_DTYPE_F32 && i < n; i++) {
            if (((uint16_t *)b->out)[i] != (uint16_t)zoff_f32_bits(b->param[i])) {
                fprintf(stderr, "check: roofline (nt %d) copy wrong at %zu\n", nt, i);
                goto out;
            }
        }
    }
    if (!want_naive) {
        rc = 0;
        goto out;
    }
    zadam_tensor tr = ba_tensor(&ref.b, 0, n);
    adam_step_scalar(hp, &tr);
    ba_naive_arg na = {b, *hp, threads};
    if (have_naive512)
        naive_avx512(&na);
    else
        naive_generic(&na);
    size_t nbad = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref.b.param[i], x = b->param[i];
        if (!(fabs(x - r) <= 1e-5 * fabs(r) + 1e-7)) {
            if (!nbad) fprintf(stderr, "check: naive param[%zu] = %.9g, reference %.9g\n", i, x, r);
            nbad++;
        }
    }
    rc = nbad ? -1 : 0;
out:
    ba_copy_free(&ref);
    return rc;
}

/* ---- driver ---------------------------------------------------------------------------------- */

#define BA_MAX_CTX (2 * ZADAM_ISA_COUNT_)

static void usage(FILE *f)
{
    fprintf(f, "usage: zoff bench adam [--numel N] [--threads T] [--isa scalar|avx2|avx512|all]\n"
               "                       [--grad f16|bf16|f32] [--out f16|bf16|f32|none] [--reps R]\n"
               "                       [--tile N] [--nt-out auto|on|off|both] [--naive on|off]\n"
               "                       [--json FILE] [--csv FILE]\n"
               "                       [--state fp32|bf16|q8] [--optim adam|lion|adagrad]\n"
               "  Times the fused CPU Adam step against the memory roofline of its access pattern\n"
               "  (same streams, no math) and a naive C loop, all measured in this run, after\n"
               "  checking that every kernel equals the scalar reference bit for bit.\n"
               "  Defaults: --numel 16M --grad f16 --out f16 --reps 15 --nt-out auto --naive on,\n"
               "  threads from ZOFF_CPU_THREADS or all CPUs, every ISA this CPU supports.\n"
               "  --nt-out both times each ISA with and without streaming stores for the copy;\n"
               "  --naive off skips the (slow) naive loop.\n"
               "  --state / --optim time the generic kernel (any optimizer, fp32/bf16/q8 moments)\n"
               "  against the roofline of its own byte stream (tile: a multiple of 256).\n");
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = '\0';
                snprintf(buf, len, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

int zoff__bench_opt_main(int argc, char **argv); /* bench_opt.c */

int zoff_bench_adam_main(int argc, char **argv)
{
    /* --state / --optim: the generic kernel against its own byte stream (bench_opt.c) */
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--state", 7) || !strncmp(argv[i], "--optim", 7))
            return zoff__bench_opt_main(argc, argv);
    uint64_t numel = 16u << 20, tile = ZADAM_DEFAULT_TILE_NUMEL;
    int threads = 0, reps = 15, want_out = 1, want_naive = 1;
    int nt_modes[2] = {0, 0}, n_nt = 1; /* zadam_config.nt_out values to time */
    zoff_dtype gdt = ZOFF_DTYPE_F16, odt = ZOFF_DTYPE_F16;
    const char *isa_arg = NULL, *json = NULL, *csv = NULL, *val = NULL;
    for (int i = 1; i < argc; i++) {
        int present = 1;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (zb_arg_match(&i, argc, argv, "--numel", &val)) {
            if (zoff__parse_size(val, &numel) != 0 || numel == 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--tile", &val)) {
            if (zoff__parse_size(val, &tile) != 0 || tile == 0 || tile % 64) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--threads", &val)) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || end == val || v < 1 || v > ZADAM_MAX_THREADS) {
                fprintf(stderr, "zoff bench adam: --threads must be in [1, %d] (got '%s')\n",
                        ZADAM_MAX_THREADS, val);
                return 2;
            }
            threads = (int)v;
        } else if (zb_arg_match(&i, argc, argv, "--reps", &val)) {
            reps = atoi(val);
            if (reps <= 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--isa", &val)) {
            isa_arg = val;
        } else if (zb_arg_match(&i, argc, argv, "--grad", &val)) {
            if (zb_parse_dtype(val, &gdt, &present) || !present) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--out", &val)) {
            if (zb_parse_dtype(val, &odt, &want_out)) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--nt-out", &val)) {
            n_nt = 1;
            if (!strcmp(val, "auto"))
                nt_modes[0] = 0;
            else if (!strcmp(val, "on"))
                nt_modes[0] = 1;
            else if (!strcmp(val, "off"))
                nt_modes[0] = -1;
            else if (!strcmp(val, "both")) {
                nt_modes[0] = -1;
                nt_modes[1] = 1;
                n_nt = 2;
            } else
                goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--naive", &val)) {
            if (!strcmp(val, "on"))
                want_naive = 1;
            else if (!strcmp(val, "off"))
                want_naive = 0;
            else
                goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--json", &val)) {
            json = val;
        } else if (zb_arg_match(&i, argc, argv, "--csv", &val)) {
            csv = val;
        } else {
            goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "zoff bench adam: bad argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!want_out) n_nt = 1; /* nothing to stream */

    threads = zb_adam_threads(threads, "zoff bench adam");
    /* the ISAs to time */
    zadam_isa isas[ZADAM_ISA_COUNT_];
    const int nisa = zb_adam_isas(isa_arg, isas, "zoff bench adam");
    if (nisa < 0) return 2;
    const zadam_isa roof_isa =
        zadam_isa_supported(ZADAM_ISA_AVX512) ? ZADAM_ISA_AVX512 : ZADAM_ISA_AVX2;
    const int have_roof = zadam_isa_supported(ZADAM_ISA_AVX2);
    const int have_naive512 = zadam_isa_supported(ZADAM_ISA_AVX512);

    int rc = 1, nctx = 0, nk = 0;
    ba_bufs b = {0};
    zadam_ctx *ctx[BA_MAX_CTX] = {0};
    ba_zoff_arg zarg[BA_MAX_CTX];
    zb_kernel ks[BA_MAX_KERNELS];
    zb_table *tab = NULL;
    memset(ks, 0, sizeof ks);

    b.n = (size_t)numel;
    b.gdt = gdt;
    b.odt = odt;
    b.has_out = want_out;
    b.grad = zb_alloc_huge(b.n * zoff_dtype_size(gdt));
    b.param = zb_alloc_huge(b.n * 4);
    b.m = zb_alloc_huge(b.n * 4);
    b.v = zb_alloc_huge(b.n * 4);
    b.out = want_out ? zb_alloc_huge(b.n * zoff_dtype_size(odt)) : NULL;
    if (!b.grad || !b.param || !b.m || !b.v || (want_out && !b.out)) {
        fprintf(stderr, "zoff bench adam: cannot allocate %zu elements\n", b.n);
        goto out;
    }
    ba_fill(&b, (size_t)tile, threads);

    zadam_hparams hp = zb_adam_hparams();
    for (int k = 0; k < nisa; k++) {
        for (int j = 0; j < n_nt; j++) {
            zadam_config cfg = {.isa = zadam_isa_name(isas[k]),
                                .threads = threads,
                                .tile_numel = (size_t)tile,
                                .nt_out = nt_modes[j]};
            if (zadam_create(&cfg, &ctx[nctx]) != 0) {
                fprintf(stderr, "zoff bench adam: %s\n", zoff__last_error_tls());
                goto out;
            }
            if (ba_check_zoff(&b, ctx[nctx], &hp) != 0) {
                fprintf(stderr,
                        "zoff bench adam: correctness check failed for %s: nothing "
                        "timed\n",
                        zadam_isa_name(isas[k]));
                goto out;
            }
            zarg[nctx] = (ba_zoff_arg){ctx[nctx], hp, ba_tensor(&b, 0, b.n), 0};
            zb_kernel *kk = &ks[nk++];
            snprintf(kk->name, sizeof kk->name, "zoff fused adam%s",
                     n_nt == 1 ? "" : (nt_modes[j] > 0 ? " [NT out]" : " [ordinary out]"));
            kk->isa = zadam_isa_name(isas[k]);
            kk->fn = run_zoff;
            kk->before = zoff_next_step;
            kk->arg = &zarg[nctx];
            nctx++;
        }
    }

    if (ba_check_refs(&b, &hp, threads, (size_t)tile, roof_isa, have_naive512, have_roof,
                      want_naive) != 0) {
        fprintf(stderr, "zoff bench adam: correctness check of the reference kernels failed: "
                        "nothing timed\n");
        goto out;
    }

    char cpu[256], date[64];
    cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M", localtime(&now));
    const size_t bpe = zadam_bytes_per_elem(gdt, want_out, odt);
    const size_t gsz = zoff_dtype_size(gdt), osz = want_out ? zoff_dtype_size(odt) : 0;
    const double bytes = (double)bpe * (double)b.n;
    printf("zoff bench adam: %zu elements, grad %s, out %s, %d threads, tile %zu, %d rounds\n", b.n,
           zoff_dtype_name(gdt), want_out ? zoff_dtype_name(odt) : "none", threads, (size_t)tile,
           reps);
    printf("bytes/element counted: grad %zu + param/exp_avg/exp_avg_sq read 12 + written 12 + "
           "out %zu = %zu (write-allocate reads of the output not counted)\n",
           gsz, osz, bpe);
    printf("%s, %s\n", cpu, date);
    printf("check: zoff kernels == scalar reference bit for bit on %zu elements, naive loop "
           "within 1e-5, roofline copies exact\n\n",
           ZOFF_MIN(b.n, BA_CHECK_NUMEL));

    /* the reference points: roofline variants and the naive loop */
    ba_roof_arg roof[3];
    static const char *roof_names[3] = {
        "roofline (ordinary stores)", "roofline (NT stores: output)", "roofline (NT stores: all)"};
    if (have_roof) {
        for (int nt = 0; nt < 3; nt++) {
            if (nt == 1 && !want_out) continue;
            roof[nt] = (ba_roof_arg){&b, (size_t)tile, threads, nt, roof_isa};
            zb_kernel *kk = &ks[nk++];
            snprintf(kk->name, sizeof kk->name, "%s", roof_names[nt]);
            kk->isa = zadam_isa_name(roof_isa);
            kk->fn = run_roof;
            kk->arg = &roof[nt];
            kk->roofline = 1;
        }
    }
    ba_naive_arg narg = {&b, hp, threads};
    if (want_naive) {
        zb_kernel *kk = &ks[nk++];
        snprintf(kk->name, sizeof kk->name, "naive C loop");
        kk->isa = have_naive512 ? "c+avx512" : "c";
        kk->fn = have_naive512 ? run_naive : run_naive_generic;
        kk->before = naive_next_step;
        kk->arg = &narg;
    }
    if (zb_kernels_alloc(ks, nk, reps) != 0) goto out;

    /* one untimed round, then `reps` interleaved rounds */
    zb_kernels_run(ks, nk, reps);
    for (int k = 0; k < nctx; k++) {
        if (zarg[k].failed) {
            fprintf(stderr, "zoff bench adam: a timed step failed or saw non-finite grads\n");
            goto out;
        }
    }

    /* statistics: median, best, and x_roofline against the best roofline (lowest median) */
    const int best_roof = zb_kernels_stats(ks, nk, reps);
    if (best_roof == -2) goto out;
    char title[160];
    snprintf(title, sizeof title, "adam step, %zu elements, grad %s, out %s, %zu B/elem", b.n,
             zoff_dtype_name(gdt), want_out ? zoff_dtype_name(odt) : "none", bpe);
    if (!(tab = zb_kernels_table(title, ks, nk, best_roof, threads, b.n, bytes))) goto out;
    zb_table_print(tab, stdout);
    printf("\ngb_s from the median time; x_roofline = median over rounds of the per-round ratio "
           "to the best roofline%s%s%s\n",
           best_roof >= 0 ? " (" : "", best_roof >= 0 ? ks[best_roof].name : "",
           best_roof >= 0 ? ")" : ": not measured, no AVX2");
    const zb_kernel *naive = NULL;
    for (int k = 0; k < nk; k++)
        if (!strcmp(ks[k].name, "naive C loop")) naive = &ks[k];
    for (int k = 0; k < nk && naive; k++) {
        if (ks[k].fn != run_zoff) continue;
        printf("%s %s: %.2fx the naive loop's speed\n", ks[k].name, ks[k].isa,
               naive->med_ns / ks[k].med_ns);
    }
    if (zb_table_save(tab, json, csv, "zoff bench adam") != 0) goto out;
    rc = 0;
out:
    zb_table_free(tab);
    zb_kernels_free(ks, nk);
    for (int k = 0; k < nctx; k++) zadam_destroy(ctx[k]);
    free(b.grad);
    free(b.param);
    free(b.m);
    free(b.v);
    free(b.out);
    return rc;
}
