/*
 * bench_opt.c — `zoff bench adam --state fp32|bf16|q8 --optim adam|lion|adagrad`: the generic
 * fused CPU step (any optimizer, any moment format) against the memory roofline of ITS OWN byte
 * stream, measured in the same run. Called by bench_adam.c when --state or --optim is given.
 *
 * Owns: the benchmark buffers (one state block laid out by zstate_view, grads, 16-bit copy), the
 * stream roofline (every stream the kernel touches, at its width: grad read, master/moment codes
 * read and written, q8 absmax read and written once per 256 elements, copy written; no math),
 * the bit-for-bit check of every timed ISA against the scalar reference before timing, the table.
 *
 * Timing as in bench_adam.c: one untimed round, then R rounds running every kernel back to back;
 * x_roofline is the median over rounds of (best roofline time / kernel time) in that round.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "common/half.h"
#include "cpu_adam/adam.h"
#include "harness.h"

#define BO_AVX512   __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define BO_AVX2     __attribute__((target("avx2,fma,f16c")))
#define BO_CHECK    ((size_t)1 << 20) /* elements checked bit for bit (a multiple of 256) */
#define BO_MAXK     8
#define BO_TOUCH(x) __asm__ volatile("" : "+v"(x))

int zoff__bench_opt_main(int argc, char **argv);

typedef struct bo_bufs {
    size_t n;
    zopt_kind k;
    zstate_fmt f;
    zoff_dtype gdt, odt;
    int has_out;
    void *grad, *out, *state;
    size_t state_bytes;
    zadam_tensor t;
} bo_bufs;

static void bo_tensor(bo_bufs *b)
{
    zstate_view(b->k, b->f, b->state, b->n, &b->t);
    b->t.n = b->n;
    b->t.grad = b->grad;
    b->t.grad_dtype = b->gdt;
    b->t.param_out = b->has_out ? b->out : NULL;
    b->t.out_dtype = b->odt;
}

/* Deterministic data, first-touched tile by tile by the benchmark's threads: grads uniform in
 * +-0.01, params in [-1, 1), m = g/2, v = g^2 + 1e-6 (encoded in the format). */
static void bo_fill(bo_bufs *b, size_t tile, int threads)
{
    const size_t ntiles = (b->n + tile - 1) / tile;
    zadam_tensor *t = &b->t;
#pragma omp parallel num_threads(threads)
    {
        float *mt = malloc(tile * sizeof(float)), *vt = malloc(tile * sizeof(float));
#pragma omp for schedule(static)
        for (size_t k = 0; k < ntiles; k++) {
            uint64_t x = 0x9e3779b97f4a7c15ull * (k + 1);
            const size_t lo = k * tile, hi = ZOFF_MIN(b->n, lo + tile);
            for (size_t i = lo; i < hi; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                const float u1 = (float)((x >> 40) & 0xffffff) / 16777216.0f;
                const float u2 = (float)((x >> 16) & 0xffffff) / 16777216.0f;
                const float g = (u1 - 0.5f) * 0.02f;
                if (b->gdt == ZOFF_DTYPE_F16)
                    ((uint16_t *)b->grad)[i] = zoff_f32_to_f16(g);
                else if (b->gdt == ZOFF_DTYPE_BF16)
                    ((uint16_t *)b->grad)[i] = zoff_f32_to_bf16(g);
                else
                    ((float *)b->grad)[i] = g;
                t->param[i] = 2.0f * u2 - 1.0f;
                mt[i - lo] = g * 0.5f;
                vt[i - lo] = g * g + 1e-6f;
                if (b->has_out)
                    memset((char *)b->out + i * zoff_dtype_size(b->odt), 0,
                           zoff_dtype_size(b->odt));
            }
            const size_t ms = b->f == ZSTATE_FP32 ? 4 : b->f == ZSTATE_BF16 ? 2 : 1;
            void *m = b->f == ZSTATE_FP32 ? (void *)t->exp_avg : t->m_state;
            void *v = b->f == ZSTATE_FP32 ? (void *)t->exp_avg_sq : t->v_state;
            if (m)
                zstate_encode(b->f, 0, mt, hi - lo, (char *)m + lo * ms,
                              t->m_absmax ? t->m_absmax + lo / ZSTATE_Q8_BLOCK : NULL);
            if (v)
                zstate_encode(b->f, 1, vt, hi - lo, (char *)v + lo * ms,
                              t->v_absmax ? t->v_absmax + lo / ZSTATE_Q8_BLOCK : NULL);
        }
        free(mt);
        free(vt);
    }
}

/* ---- the stream roofline -----------------------------------------------------------------------
 */
enum { S_READ = 0, S_RW = 1, S_WRITE = 2 };
typedef struct bo_stream {
    char *p;
    size_t width; /* bytes per element (1, 2 or 4); per-block streams: 4 per 256 elements */
    int mode, per_block;
} bo_stream;

typedef struct bo_roof {
    bo_stream s[10];
    int ns;
    size_t n, tile;
    int threads, nt, avx512;
} bo_roof;

BO_AVX512 static void roof_tile512(const bo_roof *r, size_t lo, size_t hi)
{
    size_t i = lo;
    for (; i + 64 <= hi; i += 64) {
        __m512i last = _mm512_setzero_si512();
        for (int k = 0; k < r->ns; k++) {
            const bo_stream *s = &r->s[k];
            if (s->per_block) {
                if (i % ZSTATE_Q8_BLOCK == 0) {
                    float *a = (float *)(void *)s->p + i / ZSTATE_Q8_BLOCK;
                    float x = *a;
                    __asm__ volatile("" : "+x"(x));
                    *a = x;
                }
                continue;
            }
            char *base = s->p + i * s->width;
            for (size_t off = 0; off < 64 * s->width; off += 64) {
                if (s->mode == S_WRITE) {
                    if (r->nt)
                        _mm512_stream_si512((void *)(base + off), last);
                    else
                        _mm512_storeu_si512(base + off, last);
                    continue;
                }
                __m512i v = _mm512_loadu_si512(base + off);
                BO_TOUCH(v);
                if (s->mode == S_RW) _mm512_storeu_si512(base + off, v);
                last = v;
            }
        }
    }
    for (; i < hi; i++)
        for (int k = 0; k < r->ns; k++) {
            const bo_stream *s = &r->s[k];
            if (s->per_block) continue;
            volatile char *c = s->p + i * s->width;
            for (size_t j = 0; j < s->width; j++) c[j] = s->mode == S_WRITE ? 0 : c[j];
        }
    if (r->nt) _mm_sfence();
}

BO_AVX2 static void roof_tile256(const bo_roof *r, size_t lo, size_t hi)
{
    size_t i = lo;
    for (; i + 32 <= hi; i += 32) {
        __m256i last = _mm256_setzero_si256();
        for (int k = 0; k < r->ns; k++) {
            const bo_stream *s = &r->s[k];
            if (s->per_block) {
                if (i % ZSTATE_Q8_BLOCK == 0) {
                    float *a = (float *)(void *)s->p + i / ZSTATE_Q8_BLOCK;
                    float x = *a;
                    __asm__ volatile("" : "+x"(x));
                    *a = x;
                }
                continue;
            }
            char *base = s->p + i * s->width;
            for (size_t off = 0; off < 32 * s->width; off += 32) {
                if (s->mode == S_WRITE) {
                    if (r->nt)
                        _mm256_stream_si256((__m256i *)(void *)(base + off), last);
                    else
                        _mm256_storeu_si256((__m256i *)(void *)(base + off), last);
                    continue;
                }
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(base + off));
                BO_TOUCH(v);
                if (s->mode == S_RW) _mm256_storeu_si256((__m256i *)(void *)(base + off), v);
                last = v;
            }
        }
    }
    for (; i < hi; i++)
        for (int k = 0; k < r->ns; k++) {
            const bo_stream *s = &r->s[k];
            if (s->per_block) continue;
            volatile char *c = s->p + i * s->width;
            for (size_t j = 0; j < s->width; j++) c[j] = s->mode == S_WRITE ? 0 : c[j];
        }
    if (r->nt) _mm_sfence();
}

static void run_roof(void *p)
{
    const bo_roof *r = p;
    const size_t ntiles = (r->n + r->tile - 1) / r->tile;
#pragma omp parallel for schedule(dynamic) num_threads(r->threads)
    for (size_t k = 0; k < ntiles; k++) {
        const size_t lo = k * r->tile, hi = ZOFF_MIN(r->n, lo + r->tile);
        if (r->avx512)
            roof_tile512(r, lo, hi);
        else
            roof_tile256(r, lo, hi);
    }
}

/* The streams the kernel moves, in its order: grad, master, m, v, absmax, copy. */
static void roof_init(bo_roof *r, bo_bufs *b, size_t tile, int threads, int nt)
{
    memset(r, 0, sizeof *r);
    const zadam_tensor *t = &b->t;
    const size_t ms = b->f == ZSTATE_FP32 ? 4 : b->f == ZSTATE_BF16 ? 2 : 1;
    r->s[r->ns++] = (bo_stream){(char *)b->grad, zoff_dtype_size(b->gdt), S_READ, 0};
    r->s[r->ns++] = (bo_stream){(char *)t->param, 4, S_RW, 0};
    void *m = b->f == ZSTATE_FP32 ? (void *)t->exp_avg : t->m_state;
    void *v = b->f == ZSTATE_FP32 ? (void *)t->exp_avg_sq : t->v_state;
    if (m) r->s[r->ns++] = (bo_stream){m, ms, S_RW, 0};
    if (v) r->s[r->ns++] = (bo_stream){v, ms, S_RW, 0};
    if (t->m_absmax) r->s[r->ns++] = (bo_stream){(char *)t->m_absmax, 4, S_RW, 1};
    if (t->v_absmax) r->s[r->ns++] = (bo_stream){(char *)t->v_absmax, 4, S_RW, 1};
    if (b->has_out) r->s[r->ns++] = (bo_stream){b->out, zoff_dtype_size(b->odt), S_WRITE, 0};
    r->n = b->n;
    r->tile = tile;
    r->threads = threads;
    r->nt = nt;
    r->avx512 = zadam_isa_supported(ZADAM_ISA_AVX512);
}

/* ---- the kernel and its check -------------------------------------------------------------------
 */
typedef struct bo_run {
    zadam_ctx *ctx;
    zadam_hparams hp;
    zadam_tensor t;
    int failed;
} bo_run;

static void run_zoff(void *p)
{
    bo_run *a = p;
    size_t bad = 0;
    a->hp.step++;
    if (zadam_step(a->ctx, &a->hp, &a->t, &bad) != 0 || bad != 0) a->failed = 1;
}

/* A private copy of the first nc elements (nc a multiple of 256: the q8 blocks line up). */
static int bo_prefix(const bo_bufs *b, size_t nc, bo_bufs *c)
{
    *c = *b;
    c->n = nc;
    c->grad = malloc(nc * zoff_dtype_size(b->gdt));
    c->out = malloc(nc * 4 + 64);
    c->state_bytes = zstate_bytes(b->k, b->f, nc);
    c->state = aligned_alloc(64, ZOFF_ALIGN_UP(c->state_bytes, 64));
    if (!c->grad || !c->out || !c->state) return -1;
    memcpy(c->grad, b->grad, nc * zoff_dtype_size(b->gdt));
    bo_tensor(c);
    const zadam_tensor *s = &b->t;
    zadam_tensor *d = &c->t;
    const size_t ms = b->f == ZSTATE_FP32 ? 4 : b->f == ZSTATE_BF16 ? 2 : 1;
    const size_t nb = nc / ZSTATE_Q8_BLOCK;
    memcpy(d->param, s->param, nc * 4);
    if (s->exp_avg) memcpy(d->exp_avg, s->exp_avg, nc * 4);
    if (s->exp_avg_sq) memcpy(d->exp_avg_sq, s->exp_avg_sq, nc * 4);
    if (s->m_state) memcpy(d->m_state, s->m_state, nc * ms);
    if (s->v_state) memcpy(d->v_state, s->v_state, nc * ms);
    if (s->m_absmax) memcpy(d->m_absmax, s->m_absmax, nb * 4);
    if (s->v_absmax) memcpy(d->v_absmax, s->v_absmax, nb * 4);
    return 0;
}

static void bo_prefix_free(bo_bufs *c)
{
    free(c->grad);
    free(c->out);
    free(c->state);
}

static int same(const char *what, const void *x, const void *y, size_t bytes)
{
    if (!x || !y || memcmp(x, y, bytes) == 0) return 0;
    fprintf(stderr, "check: %s differs from the scalar reference\n", what);
    return -1;
}

/* One zadam_step over the whole buffer must equal the scalar reference on the prefix. */
static int bo_check(bo_bufs *b, zadam_ctx *ctx, const zadam_hparams *hp)
{
    const size_t nc = ZOFF_MIN(b->n / ZSTATE_Q8_BLOCK * ZSTATE_Q8_BLOCK, BO_CHECK);
    bo_bufs c;
    int rc = -1;
    if (bo_prefix(b, nc, &c) != 0) goto out;
    (void)zopt_step_scalar(hp, &c.t);
    size_t bad = 0;
    if (zadam_step(ctx, hp, &b->t, &bad) != 0 || bad) {
        fprintf(stderr, "bench: zadam_step failed: %s\n", zoff__last_error_tls());
        goto out;
    }
    const size_t ms = b->f == ZSTATE_FP32 ? 4 : b->f == ZSTATE_BF16 ? 2 : 1;
    const size_t nb = nc / ZSTATE_Q8_BLOCK;
    if (same("param", b->t.param, c.t.param, nc * 4) ||
        same("exp_avg", b->t.exp_avg, c.t.exp_avg, nc * 4) ||
        same("exp_avg_sq", b->t.exp_avg_sq, c.t.exp_avg_sq, nc * 4) ||
        same("m codes", b->t.m_state, c.t.m_state, nc * ms) ||
        same("v codes", b->t.v_state, c.t.v_state, nc * ms) ||
        same("m absmax", b->t.m_absmax, c.t.m_absmax, nb * 4) ||
        same("v absmax", b->t.v_absmax, c.t.v_absmax, nb * 4) ||
        (b->has_out && same("param copy", b->out, c.out, nc * zoff_dtype_size(b->odt))))
        goto out;
    rc = 0;
out:
    bo_prefix_free(&c);
    return rc;
}

int zoff__bench_opt_main(int argc, char **argv)
{
    uint64_t numel = 16u << 20, tile = ZADAM_DEFAULT_TILE_NUMEL;
    int threads = 0, reps = 15, want_out = 1;
    zoff_dtype gdt = ZOFF_DTYPE_F16, odt = ZOFF_DTYPE_F16;
    zopt_kind kind = ZOPT_ADAM;
    zstate_fmt fmt = ZSTATE_FP32;
    const char *isa_arg = NULL, *json = NULL, *csv = NULL, *val = NULL;
    for (int i = 1; i < argc; i++) {
        int present = 1;
        if (zb_arg_match(&i, argc, argv, "--numel", &val)) {
            if (zoff__parse_size(val, &numel) != 0 || numel == 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--tile", &val)) {
            if (zoff__parse_size(val, &tile) != 0 || tile == 0 || tile % 256) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--threads", &val)) {
            if ((threads = atoi(val)) <= 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--reps", &val)) {
            if ((reps = atoi(val)) <= 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--isa", &val)) {
            isa_arg = val;
        } else if (zb_arg_match(&i, argc, argv, "--grad", &val)) {
            if (zb_parse_dtype(val, &gdt, &present) || !present) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--out", &val)) {
            if (zb_parse_dtype(val, &odt, &want_out)) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--state", &val)) {
            if (zstate_fmt_parse(val, &fmt) != 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--optim", &val)) {
            if (zopt_kind_parse(val, &kind) != 0) goto bad;
        } else if (zb_arg_match(&i, argc, argv, "--json", &val)) {
            json = val;
        } else if (zb_arg_match(&i, argc, argv, "--csv", &val)) {
            csv = val;
        } else if (zb_arg_match(&i, argc, argv, "--nt-out", &val) ||
                   zb_arg_match(&i, argc, argv, "--naive", &val)) {
            /* the dedicated fp32 Adam bench's options: nothing to do here */
        } else {
            goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "zoff bench adam: bad argument '%s'\n", argv[i]);
        return 2;
    }
    threads = zb_adam_threads(threads, "zoff bench adam");
    zadam_isa isas[ZADAM_ISA_COUNT_];
    const int nisa = zb_adam_isas(isa_arg, isas, "zoff bench adam");
    if (nisa < 0) return 2;
    const int have_roof = zadam_isa_supported(ZADAM_ISA_AVX2);

    int rc = 1, nk = 0, nctx = 0;
    bo_bufs b = {0};
    zadam_ctx *ctx[ZADAM_ISA_COUNT_] = {0};
    bo_run runs[ZADAM_ISA_COUNT_];
    bo_roof roofs[2];
    zb_kernel ks[BO_MAXK];
    zb_table *tab = NULL;
    memset(ks, 0, sizeof ks);
    b.n = (size_t)numel;
    b.k = kind;
    b.f = fmt;
    b.gdt = gdt;
    b.odt = odt;
    b.has_out = want_out;
    b.state_bytes = zstate_bytes(kind, fmt, b.n);
    b.grad = zb_alloc_huge(b.n * zoff_dtype_size(gdt));
    b.out = zb_alloc_huge(b.n * zoff_dtype_size(odt));
    b.state = zb_alloc_huge(b.state_bytes);
    if (!b.grad || !b.out || !b.state) {
        fprintf(stderr, "zoff bench adam: cannot allocate %zu elements\n", b.n);
        goto out;
    }
    bo_tensor(&b);
    bo_fill(&b, (size_t)tile, threads);

    zadam_hparams hp = zb_adam_hparams();
    hp.optim = (int)kind;
    if (kind == ZOPT_LION) hp.beta2 = 0.99f;
    if (kind == ZOPT_ADAGRAD) hp.eps = 1e-10f;
    for (int k = 0; k < nisa; k++) {
        zadam_config cfg = {
            .isa = zadam_isa_name(isas[k]), .threads = threads, .tile_numel = (size_t)tile};
        if (zadam_create(&cfg, &ctx[nctx]) != 0) {
            fprintf(stderr, "zoff bench adam: %s\n", zoff__last_error_tls());
            goto out;
        }
        if (bo_check(&b, ctx[nctx], &hp) != 0) {
            fprintf(stderr, "zoff bench adam: correctness check failed for %s: nothing timed\n",
                    zadam_isa_name(isas[k]));
            goto out;
        }
        runs[nctx] = (bo_run){ctx[nctx], hp, b.t, 0};
        zb_kernel *kk = &ks[nk++];
        snprintf(kk->name, sizeof kk->name, "zoff fused %s [%s state]", zopt_kind_name(kind),
                 zstate_fmt_name(fmt));
        kk->isa = zadam_isa_name(isas[k]);
        kk->fn = run_zoff;
        kk->arg = &runs[nctx];
        nctx++;
    }
    for (int nt = 0; have_roof && nt < (want_out ? 2 : 1); nt++) {
        roof_init(&roofs[nt], &b, (size_t)tile, threads, nt);
        zb_kernel *kk = &ks[nk++];
        snprintf(kk->name, sizeof kk->name, "roofline (%s stores: output)", nt ? "NT" : "ordinary");
        kk->isa = roofs[nt].avx512 ? "avx512" : "avx2";
        kk->fn = run_roof;
        kk->arg = &roofs[nt];
        kk->roofline = 1;
    }
    if (zb_kernels_alloc(ks, nk, reps) != 0) goto out;
    const double bpe = zopt_bytes_per_elem(kind, fmt, gdt, want_out, odt);
    const double bytes = bpe * (double)b.n;
    printf("zoff bench adam: %s, %s state, %zu elements, grad %s, out %s, %d threads, tile %zu, "
           "%d rounds\n",
           zopt_kind_name(kind), zstate_fmt_name(fmt), b.n, zoff_dtype_name(gdt),
           want_out ? zoff_dtype_name(odt) : "none", threads, (size_t)tile, reps);
    printf("bytes/element counted: grad %zu + state %.4f read + %.4f written + out %zu = %.4f "
           "(q8 absmax amortised)\n",
           zoff_dtype_size(gdt), zstate_elem_bytes(kind, fmt), zstate_elem_bytes(kind, fmt),
           want_out ? zoff_dtype_size(odt) : 0, bpe);
    printf("check: every timed ISA == scalar reference bit for bit on %zu elements\n\n",
           ZOFF_MIN(b.n / ZSTATE_Q8_BLOCK * ZSTATE_Q8_BLOCK, BO_CHECK));

    zb_kernels_run(ks, nk, reps);
    for (int k = 0; k < nctx; k++)
        if (runs[k].failed) {
            fprintf(stderr, "zoff bench adam: a timed step failed or saw non-finite grads\n");
            goto out;
        }
    const int best_roof = zb_kernels_stats(ks, nk, reps);
    if (best_roof == -2) goto out;
    char title[160];
    snprintf(title, sizeof title, "%s step, %s state, %zu elements, grad %s, out %s, %.3f B/elem",
             zopt_kind_name(kind), zstate_fmt_name(fmt), b.n, zoff_dtype_name(gdt),
             want_out ? zoff_dtype_name(odt) : "none", bpe);
    if (!(tab = zb_kernels_table(title, ks, nk, best_roof, threads, b.n, bytes))) goto out;
    zb_table_print(tab, stdout);
    printf("\nx_roofline = median over rounds of the per-round ratio to the best roofline of this "
           "kernel's own byte stream%s%s%s\n",
           best_roof >= 0 ? " (" : "", best_roof >= 0 ? ks[best_roof].name : "",
           best_roof >= 0 ? ")" : ": not measured, no AVX2");
    if (zb_table_save(tab, json, csv, "zoff bench adam") != 0) goto out;
    rc = 0;
out:
    zb_table_free(tab);
    zb_kernels_free(ks, nk);
    for (int k = 0; k < nctx; k++) zadam_destroy(ctx[k]);
    free(b.grad);
    free(b.out);
    free(b.state);
    return rc;
}
