/*
 * test_adam.c — the fused CPU Adam/AdamW kernel and the gradient sum of squares (cpu_adam/).
 *
 * The ISA under test is the one zadam_create picks from ZOFF_CPU_ISA (CTest runs this executable
 * once per ISA; an ISA this CPU lacks is a skip, exit 77). For that ISA it checks:
 *  - against an independent float64 reference, on random data of sizes 0, 1, 7, 15, 16, 17,
 *    1000 and 3M, with pointers offset by 1..3 elements, every grad dtype x output dtype
 *    (f16, bf16, none, f32), AdamW and L2 modes, several hyperparameter sets: each element within
 *    a per-element rounding-error bound of the fp32 operation sequence (see ref_step);
 *  - zero, huge, tiny and subnormal values; inf/NaN gradients counted exactly;
 *  - bit-identity with the scalar reference (the stated bound: 0 ulp) and 16-bit copies equal to
 *    common/half.h of the fp32 params, incl. rounding ties, overflow, subnormals, NaN payloads;
 *  - a 1000-step trajectory within tolerance of the float64 trajectory;
 *  - 1 vs 2 threads (and any tile count) bit-identical for the step and the sum of squares;
 *  - ISA selection errors (unknown name, ISA the CPU lacks) and argument checks.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "common/half.h"
#include "cpu_adam/adam.h"
#include "cpu_adam/adam_internal.h"
#include "zt.h"

typedef size_t (*step_fn)(const zadam_hparams *, const zadam_tensor *);
typedef double (*sumsq_fn)(const void *, zoff_dtype, size_t, size_t *);

static zadam_isa g_isa;
static step_fn g_step;
static sumsq_fn g_sumsq;

static const step_fn k_steps[ZADAM_ISA_COUNT_] = {adam_step_scalar, adam_step_avx2,
                                                  adam_step_avx512};
static const sumsq_fn k_sumsqs[ZADAM_ISA_COUNT_] = {sumsq_scalar, sumsq_avx2, sumsq_avx512};

#define U32 (1.0 / 16777216.0) /* fp32 unit roundoff 2^-24 */
#define ETA                                                                                        \
    1.401298464324817e-45 /* 2^-149: absolute error of a rounding in the subnormal range           \
                           */

/* ---- state buffers -----------------------------------------------------------------------------
 */

/* One tensor's buffers, each allocated with 4 spare elements and used from an offset (0..3). */
typedef struct st {
    size_t n;
    zoff_dtype gdt, odt;
    int has_out;
    void *gmem, *pmem, *mmem, *vmem, *omem;
    void *grad;
    float *p, *m, *v;
    void *out;
} st;

static size_t esz(zoff_dtype dt)
{
    return zoff_dtype_size(dt);
}

/* 64-byte aligned (offset 0 then takes the aligned, non-temporal paths where they exist). */
static void *alloc64(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, ZOFF_ALIGN_UP(bytes, 64)) != 0) {
        fprintf(stderr, "posix_memalign(%zu) failed\n", bytes);
        abort();
    }
    return p;
}

static void st_init(st *s, size_t n, zoff_dtype gdt, int has_out, zoff_dtype odt, const int off[5])
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->gdt = gdt;
    s->odt = odt;
    s->has_out = has_out;
    s->gmem = alloc64((n + 4) * 4);
    s->pmem = alloc64((n + 4) * 4);
    s->mmem = alloc64((n + 4) * 4);
    s->vmem = alloc64((n + 4) * 4);
    s->omem = alloc64((n + 4) * 4);
    s->grad = (char *)s->gmem + (size_t)off[0] * esz(gdt);
    s->p = (float *)s->pmem + off[1];
    s->m = (float *)s->mmem + off[2];
    s->v = (float *)s->vmem + off[3];
    s->out = has_out ? (char *)s->omem + (size_t)off[4] * esz(odt) : NULL;
    if (s->out) memset(s->out, 0xa5, n * esz(odt));
}

static void st_free(st *s)
{
    free(s->gmem);
    free(s->pmem);
    free(s->mmem);
    free(s->vmem);
    free(s->omem);
}

/* dst (initialised with the same n and dtypes) gets src's contents. */
static void st_copy(st *dst, const st *src)
{
    memcpy(dst->grad, src->grad, src->n * esz(src->gdt));
    memcpy(dst->p, src->p, src->n * 4);
    memcpy(dst->m, src->m, src->n * 4);
    memcpy(dst->v, src->v, src->n * 4);
    if (src->out) memcpy(dst->out, src->out, src->n * esz(src->odt));
}

static zadam_tensor st_tensor(const st *s)
{
    zadam_tensor t = {.n = s->n,
                      .grad = s->grad,
                      .grad_dtype = s->gdt,
                      .param = s->p,
                      .exp_avg = s->m,
                      .exp_avg_sq = s->v,
                      .param_out = s->out,
                      .out_dtype = s->odt};
    return t;
}

static void set_grad(st *s, size_t i, float g)
{
    if (s->gdt == ZOFF_DTYPE_F16)
        ((uint16_t *)s->grad)[i] = zoff_f32_to_f16(g);
    else if (s->gdt == ZOFF_DTYPE_BF16)
        ((uint16_t *)s->grad)[i] = zoff_f32_to_bf16(g);
    else
        ((float *)s->grad)[i] = g;
}

static float get_grad(const st *s, size_t i)
{
    if (s->gdt == ZOFF_DTYPE_F16) return zoff_f16_to_f32(((const uint16_t *)s->grad)[i]);
    if (s->gdt == ZOFF_DTYPE_BF16) return zoff_bf16_to_f32(((const uint16_t *)s->grad)[i]);
    return ((const float *)s->grad)[i];
}

/* A cheap symmetric random value in (-2, 2) with a bell-ish shape (sum of two uniforms): the
 * large tests fill millions of elements and the Box-Muller normal would dominate their time. */
static double rnd(zt_rng *r)
{
    uint64_t x = zt_rng_u64(r);
    return (double)(x >> 40) * 0x1p-23 + (double)(x & 0xffffff) * 0x1p-23 - 2.0;
}

/* Random state: grads ~ gscale, params ~ pscale, m ~ gscale/4, v ~ gscale^2 (all signs mixed). */
static void st_fill(st *s, zt_rng *r, double gscale, double pscale)
{
    for (size_t i = 0; i < s->n; i++) {
        set_grad(s, i, (float)(rnd(r) * gscale));
        s->p[i] = (float)(rnd(r) * pscale);
        s->m[i] = (float)(rnd(r) * gscale * 0.25);
        double a = rnd(r) * gscale;
        s->v[i] = (float)(a * a);
    }
}

/* ---- the float64 reference and its error bound
 * --------------------------------------------------- ref_step computes one update in double from
 * the same fp32 inputs and, per element, a bound on the error of the fp32 sequence zadam__elem
 * performs. First-order analysis: every fp32 rounding adds u = 2^-24 relative error of its result
 * plus 2^-149 absolute (underflow); the error of each input is carried through (m and v errors into
 * the update, the grad error into m and v); the per-call scalars are fp32 roundings of double
 * values (another u each). The tolerance used is twice that bound (room for second-order terms). A
 * wrong formula, a wrong constant or a lost bias correction gives errors of order |value| and is
 * far outside it. */
typedef struct ref {
    double *p, *m, *v;
    double *tp, *tm, *tv; /* tolerances */
} ref;

static void ref_alloc(ref *r, size_t n)
{
    r->p = zt_malloc((n + 1) * sizeof(double));
    r->m = zt_malloc((n + 1) * sizeof(double));
    r->v = zt_malloc((n + 1) * sizeof(double));
    r->tp = zt_malloc((n + 1) * sizeof(double));
    r->tm = zt_malloc((n + 1) * sizeof(double));
    r->tv = zt_malloc((n + 1) * sizeof(double));
}

static void ref_free(ref *r)
{
    free(r->p);
    free(r->m);
    free(r->v);
    free(r->tp);
    free(r->tm);
    free(r->tv);
}

/* in: the state before the step (fp32 values). */
static void ref_step(const zadam_hparams *hp, const st *in, ref *r)
{
    const double u = U32;
    const double lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    const double wd = hp->weight_decay, gs = hp->grad_scale;
    const double bc1 = hp->bias_correction ? 1.0 - pow(b1, (double)hp->step) : 1.0;
    const double bc2 = hp->bias_correction ? 1.0 - pow(b2, (double)hp->step) : 1.0;
    const double step = lr / bc1, ibc2 = 1.0 / sqrt(bc2);
    const int l2 = !hp->adamw && wd != 0.0, decay = hp->adamw && wd != 0.0 && lr != 0.0;
    for (size_t i = 0; i < in->n; i++) {
        const double graw = get_grad(in, i), p = in->p[i], m = in->m[i], v = in->v[i];
        /* gradient */
        double g = graw * gs;
        double eg = u * fabs(g) + ETA;
        if (l2) {
            g += wd * p;
            eg += 3 * u * (fabs(graw * gs) + fabs(wd * p)) + 2 * ETA;
        }
        /* moments */
        const double m2 = b1 * m + (1 - b1) * g;
        const double A = fabs(b1 * m), B = fabs((1 - b1) * g);
        const double em = 2 * u * A + 3 * u * B + (1 - b1) * eg + u * fabs(m2) + 3 * ETA;
        const double v2 = b2 * v + (1 - b2) * g * g;
        const double C = b2 * v, D = (1 - b2) * g * g;
        const double ev = 2 * u * C + 4 * u * D + 2 * (1 - b2) * fabs(g) * eg + 4 * ETA;
        /* parameter */
        const double dec = decay ? 1 - lr * wd : 1.0;
        const double p1 = p * dec;
        const double ep1 = decay ? 2 * u * fabs(p1) + ETA : 0.0;
        const double sq = sqrt(v2);
        const double denom = sq * ibc2 + eps;
        double esq = sq > 0 ? ev / (2 * sq) : sqrt(ev);
        if (sqrt(ev) < esq) esq = sqrt(ev);
        esq += u * sq;
        const double edenom = ibc2 * esq + 3 * u * denom + ETA;
        double q = 0, eq = 0;
        if (step != 0.0) {
            q = step * (m2 / denom);
            eq = fabs(q) * (3 * u + edenom / denom) + step * em / denom + 2 * ETA;
        }
        const double p2 = p1 - q;
        const double ep = ep1 + eq + u * fabs(p2) + ETA;
        r->p[i] = p2;
        r->m[i] = m2;
        r->v[i] = v2;
        r->tp[i] = 2 * ep;
        r->tm[i] = 2 * em;
        r->tv[i] = 2 * ev;
    }
}

/* Elements out of tolerance (NaN matches NaN, inf matches the same inf); prints the first few. */
static size_t cmp_tol(const char *what, const float *got, const double *want, const double *tol,
                      size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = got[i], y = want[i];
        int ok;
        if (isnan(y))
            ok = isnan(x);
        else if (isinf(y))
            ok = x == y;
        else
            ok = isfinite(x) && fabs(x - y) <= tol[i];
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.17g |diff| %.3g tol %.3g\n", what, i, x,
                        y, fabs(x - y), tol[i]);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu out of tolerance\n", what, bad, n);
    return bad;
}

static size_t check_ref(const st *got, const ref *r)
{
    return cmp_tol("param", got->p, r->p, r->tp, got->n) +
           cmp_tol("exp_avg", got->m, r->m, r->tm, got->n) +
           cmp_tol("exp_avg_sq", got->v, r->v, r->tv, got->n);
}

/* The 16-bit (or fp32) copy equals common/half.h applied to the fp32 params, bit for bit. */
static size_t check_out(const st *s)
{
    if (!s->out) return 0;
    size_t bad = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint32_t want, got;
        if (s->odt == ZOFF_DTYPE_F32) {
            want = zoff_f32_bits(s->p[i]);
            got = ((const uint32_t *)s->out)[i];
        } else {
            want = s->odt == ZOFF_DTYPE_F16 ? zoff_f32_to_f16(s->p[i]) : zoff_f32_to_bf16(s->p[i]);
            got = ((const uint16_t *)s->out)[i];
        }
        if (got != want) {
            if (bad < 5)
                fprintf(stderr, "  out[%zu]: got 0x%x want 0x%x (param bits 0x%08x)\n", i, got,
                        want, zoff_f32_bits(s->p[i]));
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  out: %zu of %zu differ from half.h\n", bad, s->n);
    return bad;
}

static int same_f32(float a, float b)
{
    if (isnan(a) && isnan(b)) return 1; /* NaN payloads may differ with operand order */
    return zoff_f32_bits(a) == zoff_f32_bits(b);
}

/* a and b bit-identical: params, moments, and the copies wherever the params are identical. */
static size_t check_same(const char *what, const st *a, const st *b)
{
    size_t bad = 0;
    for (size_t i = 0; i < a->n; i++) {
        int ok =
            same_f32(a->p[i], b->p[i]) && same_f32(a->m[i], b->m[i]) && same_f32(a->v[i], b->v[i]);
        if (ok && a->out && zoff_f32_bits(a->p[i]) == zoff_f32_bits(b->p[i]))
            ok = memcmp((const char *)a->out + i * esz(a->odt),
                        (const char *)b->out + i * esz(a->odt), esz(a->odt)) == 0;
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: p %.9g/%.9g m %.9g/%.9g v %.9g/%.9g\n", what, i,
                        (double)a->p[i], (double)b->p[i], (double)a->m[i], (double)b->m[i],
                        (double)a->v[i], (double)b->v[i]);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu not bit-identical\n", what, bad, a->n);
    return bad;
}

/* Runs the ISA under test on in's own (offset) buffers and the scalar reference on an aligned
 * copy, checks the first against the float64 reference, its copy against half.h and the two
 * against each other, then restores `in`. Returns the number of problems; *nonfinite (may be
 * NULL) receives the ISA's non-finite count. */
static size_t run_case(const zadam_hparams *hp, st *in, size_t *nonfinite)
{
    static const int zero[5] = {0, 0, 0, 0, 0};
    st saved, sc;
    ref r;
    st_init(&saved, in->n, in->gdt, in->has_out, in->odt, zero);
    st_init(&sc, in->n, in->gdt, in->has_out, in->odt, zero);
    st_copy(&saved, in);
    st_copy(&sc, in);
    ref_alloc(&r, in->n);
    ref_step(hp, in, &r);

    zadam_tensor t = st_tensor(in);
    const size_t bad = g_step(hp, &t);
    zadam_tensor ts = st_tensor(&sc);
    const size_t bad_sc = adam_step_scalar(hp, &ts);
    size_t problems = 0;
    if (bad != bad_sc) {
        fprintf(stderr, "  non-finite count %zu, scalar %zu\n", bad, bad_sc);
        problems++;
    }
    problems += check_ref(in, &r);
    problems += check_out(in);
    problems += check_same("vs scalar", in, &sc);
    if (nonfinite) *nonfinite = bad;
    st_copy(in, &saved);
    ref_free(&r);
    st_free(&sc);
    st_free(&saved);
    return problems;
}

static const zadam_hparams k_hps[] = {
    /* lr,  b1,  b2,  eps, wd, adamw, bias, step, grad_scale, optim, lr_decay */
    {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1, 1, 1.0f, 0, 0.0f},
    {3e-4f, 0.9f, 0.95f, 1e-6f, 0.1f, 0, 1, 7, 1.0f / 1024.0f, 0, 0.0f},
    {1e-2f, 0.5f, 0.99f, 1e-8f, 0.0f, 1, 0, 3, 2.0f, 0, 0.0f},
    {1e-3f, 0.0f, 0.0f, 1e-3f, 0.05f, 0, 1, 123456, 0.75f, 0, 0.0f},
    {0.1f, 0.8f, 0.9999f, 1e-12f, 0.3f, 1, 1, 20, 0.125f, 0, 0.0f},
};

static const zoff_dtype k_grads[] = {ZOFF_DTYPE_F16, ZOFF_DTYPE_BF16, ZOFF_DTYPE_F32};
/* output kinds: f16, bf16, none, f32 */
static const struct {
    int has_out;
    zoff_dtype dt;
} k_outs[] = {{1, ZOFF_DTYPE_F16}, {1, ZOFF_DTYPE_BF16}, {0, ZOFF_DTYPE_F16}, {1, ZOFF_DTYPE_F32}};

/* ---- tests -------------------------------------------------------------------------------------
 */

static void test_random_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 7, 15, 16, 17, 31, 33, 1000};
    zt_rng r;
    zt_rng_seed(&r, 1);
    size_t problems = 0, cases = 0;
    for (size_t si = 0; si < ZOFF_ARRAY_SIZE(sizes); si++) {
        for (size_t gi = 0; gi < ZOFF_ARRAY_SIZE(k_grads); gi++) {
            for (size_t oi = 0; oi < ZOFF_ARRAY_SIZE(k_outs); oi++) {
                for (size_t hi = 0; hi < ZOFF_ARRAY_SIZE(k_hps); hi++) {
                    /* offsets 0..3 elements, different per stream */
                    int off[5];
                    for (int k = 0; k < 5; k++) off[k] = (int)((cases + (size_t)k) % 4);
                    st in;
                    st_init(&in, sizes[si], k_grads[gi], k_outs[oi].has_out, k_outs[oi].dt, off);
                    st_fill(&in, &r, 0.01 * (double)(hi + 1), 1.0);
                    size_t p = run_case(&k_hps[hi], &in, NULL);
                    if (p)
                        fprintf(stderr, "case n=%zu grad %s out %s hp %zu: %zu problems\n",
                                sizes[si], zoff_dtype_name(k_grads[gi]),
                                k_outs[oi].has_out ? zoff_dtype_name(k_outs[oi].dt) : "none", hi,
                                p);
                    problems += p;
                    cases++;
                    st_free(&in);
                }
            }
        }
    }
    assert_int_equal(problems, 0);
}

/* ~3M elements, unaligned, four grad dtype x output kind pairings, both modes. */
static void test_random_large(void **state)
{
    (void)state;
    const size_t n = 3 * 1000 * 1000 + 13;
    static const struct {
        zoff_dtype gdt;
        size_t oi;
    } combos[] = {
        {ZOFF_DTYPE_F16, 0}, {ZOFF_DTYPE_BF16, 1}, {ZOFF_DTYPE_F32, 2}, {ZOFF_DTYPE_F16, 3}};
    zt_rng r;
    zt_rng_seed(&r, 2);
    size_t problems = 0;
    for (size_t k = 0; k < ZOFF_ARRAY_SIZE(combos); k++) {
        static const int off[5] = {1, 2, 3, 1, 3};
        const size_t oi = combos[k].oi;
        st in;
        st_init(&in, n, combos[k].gdt, k_outs[oi].has_out, k_outs[oi].dt, off);
        st_fill(&in, &r, 0.02, 0.5);
        problems += run_case(&k_hps[k % 2], &in, NULL);
        st_free(&in);
    }
    assert_int_equal(problems, 0);
}

/* Zero, huge, tiny and subnormal values in grads, params and moments. */
static void test_special_values(void **state)
{
    (void)state;
    zt_rng r;
    zt_rng_seed(&r, 3);
    static const int off[5] = {0, 1, 2, 3, 0};
    size_t problems = 0;
    for (size_t gi = 0; gi < ZOFF_ARRAY_SIZE(k_grads); gi++) {
        const zoff_dtype gdt = k_grads[gi];
        /* huge: squares stay finite in fp32; tiny: squares underflow; subnormal in the dtype */
        const double huge = gdt == ZOFF_DTYPE_F16 ? 6e4 : 1e18;
        const double sub = gdt == ZOFF_DTYPE_F16 ? 3e-6 : gdt == ZOFF_DTYPE_BF16 ? 5e-39 : 7e-41;
        const double tiny = gdt == ZOFF_DTYPE_F16 ? 1e-4 : 1e-30;
        const double gscales[] = {0.0, huge, tiny, sub};
        for (size_t k = 0; k < ZOFF_ARRAY_SIZE(gscales); k++) {
            for (size_t oi = 0; oi < ZOFF_ARRAY_SIZE(k_outs); oi++) {
                st in;
                st_init(&in, 1000, gdt, k_outs[oi].has_out, k_outs[oi].dt, off);
                for (size_t i = 0; i < in.n; i++) {
                    set_grad(&in, i, (float)(zt_rng_normal(&r) * gscales[k]));
                    in.p[i] = (float)zt_rng_normal(&r);
                    in.m[i] = 0.0f;
                    in.v[i] = 0.0f;
                }
                if (k == 0) {
                    memset(in.p, 0, in.n * 4); /* all-zero state */
                    in.p[3] = -0.0f;
                }
                if (k == 1) { /* huge params and moments too (fp16 copy overflows to inf) */
                    for (size_t i = 0; i < in.n; i += 3)
                        in.p[i] = (float)(1e15 * zt_rng_normal(&r));
                    for (size_t i = 1; i < in.n; i += 3)
                        in.m[i] = (float)(1e17 * zt_rng_normal(&r));
                    for (size_t i = 2; i < in.n; i += 3) in.v[i] = 1e34f;
                }
                if (k == 3) { /* subnormal params and moments */
                    for (size_t i = 0; i < in.n; i += 2)
                        in.p[i] = (float)(1e-40 * zt_rng_normal(&r));
                    for (size_t i = 1; i < in.n; i += 2) in.m[i] = 3e-42f;
                    for (size_t i = 1; i < in.n; i += 4) in.v[i] = 2e-44f;
                }
                for (size_t hi = 0; hi < 3; hi++) {
                    size_t p = run_case(&k_hps[hi], &in, NULL);
                    if (p)
                        fprintf(stderr, "special %zu grad %s out %zu hp %zu: %zu problems\n", k,
                                zoff_dtype_name(gdt), oi, hi, p);
                    problems += p;
                }
                st_free(&in);
            }
        }
    }
    assert_int_equal(problems, 0);
}

/* inf and NaN gradients: counted exactly by the step and the sum of squares, the other elements
 * are updated normally, the affected ones become NaN like the reference. */
static void test_nonfinite(void **state)
{
    (void)state;
    zt_rng r;
    zt_rng_seed(&r, 4);
    static const int off[5] = {1, 0, 3, 2, 1};
    size_t problems = 0;
    for (size_t gi = 0; gi < ZOFF_ARRAY_SIZE(k_grads); gi++) {
        st in;
        const size_t n = 1003;
        st_init(&in, n, k_grads[gi], 1, ZOFF_DTYPE_F16, off);
        st_fill(&in, &r, 0.01, 1.0);
        const size_t pos[] = {0, 5, 16, 17, 500, 999, 1002};
        for (size_t k = 0; k < ZOFF_ARRAY_SIZE(pos); k++) {
            float bad = k % 3 == 0 ? INFINITY : k % 3 == 1 ? -INFINITY : NAN;
            set_grad(&in, pos[k], bad);
        }
        size_t count = 0;
        problems += run_case(&k_hps[0], &in, &count);
        assert_int_equal(count, ZOFF_ARRAY_SIZE(pos));
        size_t sq_bad = 0;
        double s = g_sumsq(in.grad, in.gdt, n, &sq_bad);
        assert_int_equal(sq_bad, ZOFF_ARRAY_SIZE(pos));
        assert_true(isnan(s) || isinf(s));
        st_free(&in);
    }
    assert_int_equal(problems, 0);
}

/* With lr = 0 and zero grads the params pass through unchanged (p - 0 * 0), so the copies must be
 * exactly half.h of chosen bit patterns: every fp16 value, the rounding ties between neighbours
 * and their fp32 neighbours, the overflow threshold, subnormals, infinities, NaN payloads. */
static void test_conversion_exact(void **state)
{
    (void)state;
    const size_t n = 65536 * 5 + 64 * 5;
    const zadam_hparams hp = {0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 1, 1, 1, 1.0f, 0, 0.0f};
    static const int off[5] = {0, 3, 1, 2, 1};
    for (int pass = 0; pass < 2; pass++) {
        const zoff_dtype odt = pass == 0 ? ZOFF_DTYPE_F16 : ZOFF_DTYPE_BF16;
        st in;
        st_init(&in, n, ZOFF_DTYPE_F32, 1, odt, off);
        memset(in.grad, 0, n * 4);
        memset(in.m, 0, n * 4);
        memset(in.v, 0, n * 4);
        size_t k = 0;
        for (uint32_t h = 0; h < 65536; h++) {
            uint32_t base, half_ulp;
            if (pass == 0) {
                /* fp16 value h as fp32 and the midpoint to the next fp16 (one half fp16 ulp) */
                base = zoff_f32_bits(zoff_f16_to_f32((uint16_t)h));
                float next = zoff_f16_to_f32((uint16_t)(h + 1));
                float mid = (zoff_bits_f32(base) + next) / 2; /* exact in fp32 */
                half_ulp = zoff_f32_bits(mid) - base;
                if ((h & 0x7c00) == 0x7c00 || ((h + 1) & 0x7c00) == 0x7c00) half_ulp = 1;
            } else {
                base = h << 16;
                half_ulp = 0x8000;
            }
            const uint32_t pats[5] = {base, base + half_ulp, base + half_ulp - 1,
                                      base + half_ulp + 1, base + 2 * half_ulp - 1};
            for (int j = 0; j < 5; j++) in.p[k++] = zoff_bits_f32(pats[j]);
        }
        /* NaNs: signalling and quiet, payloads only in the low 13/16 bits, both signs */
        static const uint32_t nans[] = {0x7f800001u, 0x7fc00000u, 0x7f801fffu, 0xff800001u,
                                        0xffc00001u, 0x7fbfffffu, 0x7fa00000u, 0x7f802000u};
        while (k < n) {
            in.p[k] = zoff_bits_f32(nans[k % ZOFF_ARRAY_SIZE(nans)] ^ (uint32_t)(k & 0x3ff));
            k++;
        }
        /* the overflow threshold of fp16 (65520 rounds to inf, just below to 65504) */
        in.p[n - 1] = 65519.996f;
        in.p[n - 2] = 65520.0f;
        in.p[n - 3] = -65520.0f;
        st before;
        static const int zero[5] = {0, 0, 0, 0, 0};
        st_init(&before, n, ZOFF_DTYPE_F32, 1, odt, zero);
        st_copy(&before, &in);
        zadam_tensor t = st_tensor(&in);
        g_step(&hp, &t);
        size_t changed = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t a = zoff_f32_bits(before.p[i]), b = zoff_f32_bits(in.p[i]);
            if (isnan(before.p[i])) a |= 0x00400000u; /* arithmetic quiets a signalling NaN */
            if (a != b) changed++;
        }
        assert_int_equal(changed, 0);
        assert_int_equal(check_out(&in), 0);
        st_free(&in);
        st_free(&before);
    }
}

/* The gradient conversions: every fp16 and bf16 bit pattern as a gradient. The step must equal
 * the scalar reference bit for bit (which converts with half.h), and the sum of squares too, with
 * exactly the inf/NaN patterns counted. */
static void test_grad_patterns(void **state)
{
    (void)state;
    const size_t n = 65536;
    static const int off[5] = {3, 0, 1, 2, 0};
    for (int pass = 0; pass < 2; pass++) {
        const zoff_dtype gdt = pass == 0 ? ZOFF_DTYPE_F16 : ZOFF_DTYPE_BF16;
        /* bf16 reaches 3e38: scale so that squares stay finite in fp32 (as in the reference) */
        zadam_hparams hp = k_hps[0];
        if (pass == 1) hp.grad_scale = 0x1p-100f;
        st in;
        st_init(&in, n, gdt, 1, ZOFF_DTYPE_F16, off);
        zt_rng r;
        zt_rng_seed(&r, 5);
        st_fill(&in, &r, 1.0, 1.0);
        for (size_t i = 0; i < n; i++) ((uint16_t *)in.grad)[i] = (uint16_t)i;
        size_t count = 0;
        assert_int_equal(run_case(&hp, &in, &count), 0);
        const size_t want = pass == 0 ? 2048 : 256;
        assert_int_equal(count, want);
        size_t b1 = 0, b2 = 0;
        double s1 = g_sumsq(in.grad, gdt, n, &b1), s2 = sumsq_scalar(in.grad, gdt, n, &b2);
        assert_int_equal(b1, want);
        assert_int_equal(b2, want);
        assert_true(isnan(s1) && isnan(s2));
        /* the finite patterns only (inf/NaN removed) must give the same finite sum */
        uint16_t *fin = zt_malloc(n * 2);
        size_t nf = 0;
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)i;
            int nonfin = pass == 0 ? (h & 0x7c00) == 0x7c00 : (h & 0x7f80) == 0x7f80;
            if (!nonfin) fin[nf++] = h;
        }
        s1 = g_sumsq(fin, gdt, nf, &b1);
        s2 = sumsq_scalar(fin, gdt, nf, &b2);
        assert_int_equal(b1, 0);
        assert_true(isfinite(s1));
        assert_memory_equal(&s1, &s2, sizeof s1);
        free(fin);
        st_free(&in);
    }
}

/* Bit-identity with the scalar reference on many random hyperparameter sets (stated bound:
 * 0 ulp, because every variant performs the same fp32 operations in the same order). */
static void test_vs_scalar_random_hparams(void **state)
{
    (void)state;
    zt_rng r;
    zt_rng_seed(&r, 6);
    static const int zero[5] = {0, 0, 0, 0, 0};
    size_t problems = 0;
    for (int it = 0; it < 60; it++) {
        zadam_hparams hp = {
            .lr = (float)pow(10.0, -4 + 3 * zt_rng_uniform(&r)),
            .beta1 = (float)zt_rng_uniform(&r),
            .beta2 = (float)(0.9 + 0.0999 * zt_rng_uniform(&r)),
            .eps = (float)pow(10.0, -12 + 8 * zt_rng_uniform(&r)),
            .weight_decay = it % 4 == 0 ? 0.0f : (float)(0.2 * zt_rng_uniform(&r)),
            .adamw = it % 2,
            .bias_correction = it % 3 != 0,
            .step = 1 + (int64_t)(zt_rng_u64(&r) % 5000),
            .grad_scale = (float)pow(2.0, -16 + 20 * zt_rng_uniform(&r)),
        };
        const zoff_dtype gdt = k_grads[it % 3];
        const size_t oi = (size_t)(it / 3) % 4;
        st a, b;
        const size_t n = 1000 + (size_t)it;
        st_init(&a, n, gdt, k_outs[oi].has_out, k_outs[oi].dt, zero);
        st_init(&b, n, gdt, k_outs[oi].has_out, k_outs[oi].dt, zero);
        st_fill(&a, &r, pow(10.0, -3 + 4 * zt_rng_uniform(&r)), 1.0);
        st_copy(&b, &a);
        zadam_tensor ta = st_tensor(&a), tb = st_tensor(&b);
        g_step(&hp, &ta);
        adam_step_scalar(&hp, &tb);
        problems += check_same("random hparams vs scalar", &a, &b);
        st_free(&a);
        st_free(&b);
    }
    assert_int_equal(problems, 0);
}

/* 1000 steps with fresh gradients each step (fp16 grads, fp16 copies, n not a multiple of 16),
 * through a 2-thread context, against a float64 trajectory fed the same gradients.
 * Tolerance: each step adds at most a few fp32 roundings of |p| (decay and the subtraction) and
 * of the update (~lr); over 1000 steps that is <= 1000 * (3u * max|p| + 8u * lr) (worst case,
 * errors adding up with the same sign). The moments forget old errors (factor beta per step), so
 * their error stays at a few u of the magnitude of their terms: 1e-5 of |m| + 1e-5 of the
 * element's gradient scale, 1e-5 of v. */
static void test_trajectory(void **state)
{
    (void)state;
    const size_t n = 4099;
    const int steps = 1000;
    zadam_ctx *ctx = NULL;
    zadam_config cfg = {.threads = 2, .tile_numel = 1024};
    assert_int_equal(zadam_create(&cfg, &ctx), 0);
    for (int mode = 0; mode < 2; mode++) {
        zt_rng r;
        zt_rng_seed(&r, 7 + (uint64_t)mode);
        static const int off[5] = {1, 1, 2, 3, 2};
        st s;
        st_init(&s, n, ZOFF_DTYPE_F16, 1, ZOFF_DTYPE_F16, off);
        double *p = zt_malloc(n * 8), *m = zt_malloc(n * 8), *v = zt_malloc(n * 8);
        double *pmax = zt_malloc(n * 8);
        for (size_t i = 0; i < n; i++) {
            s.p[i] = (float)zt_rng_normal(&r);
            s.m[i] = s.v[i] = 0.0f;
            p[i] = s.p[i];
            pmax[i] = fabs(p[i]);
            m[i] = v[i] = 0.0;
        }
        zadam_hparams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, mode == 0, 1, 1, 0.5f, 0, 0.0f};
        const double b1 = hp.beta1, b2 = hp.beta2, lr = hp.lr, wd = hp.weight_decay;
        for (int t = 1; t <= steps; t++) {
            for (size_t i = 0; i < n; i++)
                set_grad(&s, i, (float)(rnd(&r) * (0.1 + (double)(i % 7))));
            hp.step = t;
            zadam_tensor tt = st_tensor(&s);
            size_t bad = 1;
            assert_int_equal(zadam_step(ctx, &hp, &tt, &bad), 0);
            assert_int_equal(bad, 0);
            const double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
            for (size_t i = 0; i < n; i++) {
                double g = (double)get_grad(&s, i) * hp.grad_scale;
                if (mode == 1) g += wd * p[i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                if (mode == 0) p[i] *= 1 - lr * wd;
                p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + hp.eps);
                if (fabs(p[i]) > pmax[i]) pmax[i] = fabs(p[i]);
            }
        }
        const double u = U32;
        size_t bad = 0;
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double tol_p = steps * (3 * u * pmax[i] + 8 * u * lr);
            const double gscale = (0.1 + (double)(i % 7)) * hp.grad_scale;
            const double dp = fabs(s.p[i] - p[i]);
            if (dp / tol_p > worst) worst = dp / tol_p;
            if (!(dp <= tol_p) || !(fabs(s.m[i] - m[i]) <= 1e-5 * (fabs(m[i]) + gscale)) ||
                !(fabs(s.v[i] - v[i]) <= 1e-5 * v[i] + 1e-12)) {
                if (bad < 5)
                    fprintf(stderr, "  trajectory[%zu]: p %.9g/%.17g m %.9g/%.17g v %.9g/%.17g\n",
                            i, (double)s.p[i], p[i], (double)s.m[i], m[i], (double)s.v[i], v[i]);
                bad++;
            }
        }
        printf("  trajectory (%s): worst |p - p_ref| is %.3f of the tolerance\n",
               mode == 0 ? "AdamW" : "Adam+L2", worst);
        assert_int_equal(bad, 0);
        assert_int_equal(check_out(&s), 0);
        free(p);
        free(m);
        free(v);
        free(pmax);
        st_free(&s);
    }
    zadam_destroy(ctx);
}

/* 1 thread vs 2 threads (several tile sizes, bound CPUs) and the direct kernel: bit-identical. */
static void test_threads(void **state)
{
    (void)state;
    const size_t n = 3 * 1000 * 1000 + 5;
    static const int off[5] = {1, 0, 0, 2, 1};
    static const int zero[5] = {0, 0, 0, 0, 0};
    zt_rng r;
    zt_rng_seed(&r, 8);
    st base, a, b, c;
    st_init(&base, n, ZOFF_DTYPE_BF16, 1, ZOFF_DTYPE_BF16, off);
    st_init(&a, n, ZOFF_DTYPE_BF16, 1, ZOFF_DTYPE_BF16, zero);
    st_init(&b, n, ZOFF_DTYPE_BF16, 1, ZOFF_DTYPE_BF16, off);
    st_init(&c, n, ZOFF_DTYPE_BF16, 1, ZOFF_DTYPE_BF16, zero);
    st_fill(&base, &r, 0.01, 1.0);
    cpu_set_t allowed;
    int cpu0 = 0;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof allowed, &allowed), 0);
    while (cpu0 < CPU_SETSIZE - 1 && !CPU_ISSET(cpu0, &allowed)) cpu0++;
    zadam_config c1 = {.threads = 1};
    zadam_config c2 = {.threads = 2, .tile_numel = 4096 + 64, .cpus = &cpu0, .ncpus = 1};
    zadam_config c3 = {.threads = 2, .nt_out = 1};
    zadam_ctx *x1 = NULL, *x2 = NULL, *x3 = NULL;
    assert_int_equal(zadam_create(&c1, &x1), 0);
    assert_int_equal(zadam_create(&c2, &x2), 0);
    assert_int_equal(zadam_create(&c3, &x3), 0);
    assert_int_equal(zadam_ctx_isa(x2), g_isa);
    const zadam_hparams hp = k_hps[1];
    size_t n1 = 0, n2 = 0, n3 = 0;
    st_copy(&a, &base);
    st_copy(&b, &base);
    st_copy(&c, &base);
    zadam_tensor ta = st_tensor(&a), tb = st_tensor(&b), tc = st_tensor(&c);
    assert_int_equal(zadam_step(x1, &hp, &ta, &n1), 0);
    assert_int_equal(zadam_step(x2, &hp, &tb, &n2), 0);
    assert_int_equal(zadam_step(x3, &hp, &tc, &n3), 0);
    assert_int_equal(n1, 0);
    assert_int_equal(n2, 0);
    assert_int_equal(n3, 0);
    assert_int_equal(check_same("1 vs 2 threads", &a, &b), 0);
    assert_int_equal(check_same("1 thread vs 2 threads + NT copies", &a, &c), 0);
    /* and the single-threaded kernel on the whole tensor */
    st_copy(&c, &base);
    tc = st_tensor(&c);
    g_step(&hp, &tc);
    assert_int_equal(check_same("ctx vs direct kernel", &a, &c), 0);

    /* the sum of squares: every thread count, the direct kernels of every ISA, the same bits */
    for (size_t len = n; len + 7 >= n; len -= 7) {
        double s1, s2, s3;
        size_t b1 = 9, b2 = 9, b3 = 9;
        assert_int_equal(zadam_sumsq(x1, base.grad, base.gdt, len, &s1, &b1), 0);
        assert_int_equal(zadam_sumsq(x2, base.grad, base.gdt, len, &s2, &b2), 0);
        s3 = sumsq_scalar(base.grad, base.gdt, len, &b3);
        assert_memory_equal(&s1, &s2, sizeof s1);
        assert_memory_equal(&s1, &s3, sizeof s1);
        assert_int_equal(b1 + b2 + b3, 0);
    }
    zadam_destroy(x1);
    zadam_destroy(x2);
    zadam_destroy(x3);
    st_free(&base);
    st_free(&a);
    st_free(&b);
    st_free(&c);
}

/* The sum of squares against a compensated (long double) sum: sizes around the chunk and lane
 * boundaries, unaligned, every dtype. Bound: all terms are >= 0, so the recursive summation in
 * double errs by at most (terms added in sequence) * 2^-53 relative: lanes (chunk/16) + lanes
 * folded (16) + chunks; fp16 adds the fp32 block partials' error (below). */
static void test_sumsq(void **state)
{
    (void)state;
    const size_t C = ZADAM_SUMSQ_CHUNK_NUMEL;
    const size_t sizes[] = {0, 1, 15, 16, 17, C - 1, C, C + 1, 3 * C + 7, 40 * C + 3};
    zadam_ctx *ctx = NULL;
    zadam_config cfg = {.threads = 2};
    assert_int_equal(zadam_create(&cfg, &ctx), 0);
    zt_rng r;
    zt_rng_seed(&r, 9);
    for (size_t gi = 0; gi < ZOFF_ARRAY_SIZE(k_grads); gi++) {
        for (size_t si = 0; si < ZOFF_ARRAY_SIZE(sizes); si++) {
            const size_t n = sizes[si];
            static const int off[5] = {1, 0, 0, 0, 0};
            st s;
            st_init(&s, n, k_grads[gi], 0, ZOFF_DTYPE_F16, off);
            long double want = 0;
            for (size_t i = 0; i < n; i++) {
                set_grad(&s, i, (float)(zt_rng_normal(&r) * (i % 2 ? 1e-3 : 10.0)));
                long double x = get_grad(&s, i);
                want += x * x;
            }
            size_t b1 = 9, b2 = 9;
            double got = g_sumsq(s.grad, s.gdt, n, &b1), par = 0;
            assert_int_equal(zadam_sumsq(ctx, s.grad, s.gdt, n, &par, &b2), 0);
            assert_int_equal(b1, 0);
            assert_int_equal(b2, 0);
            assert_memory_equal(&got, &par, sizeof got);
            const double terms = (double)(C / 16 + 16 + n / C + 1);
            /* fp16: each fp32 block partial (8 exact squares, 7 adds) errs by at most
             * gamma_7 = 7u / (1 - 7u), u = 2^-24, relative; the double sum then as above */
            const double f32_part = s.gdt == ZOFF_DTYPE_F16 ? 7.0001 * 0x1p-24 : 0.0;
            const double tol = (f32_part + terms * 0x1p-53) * (double)want;
            if (!(fabs(got - (double)want) <= tol)) {
                fprintf(stderr, "  sumsq n=%zu %s: got %.17g want %.17Lg tol %.3g\n", n,
                        zoff_dtype_name(s.gdt), got, want, tol);
                fail();
            }
            st_free(&s);
        }
    }
    zadam_destroy(ctx);
}

/* ISA names, selection errors, argument checks. */
static void test_api(void **state)
{
    (void)state;
    zadam_isa isa;
    assert_int_equal(zadam_isa_parse("avx2", &isa), 0);
    assert_int_equal(isa, ZADAM_ISA_AVX2);
    assert_int_equal(zadam_isa_parse("sse9", &isa), ZOFF_EINVAL);
    assert_string_equal(zadam_isa_name(ZADAM_ISA_AVX512), "avx512");
    assert_true(zadam_isa_supported(ZADAM_ISA_SCALAR));
    assert_true(zadam_isa_supported(zadam_isa_best()));

    zadam_ctx *ctx = NULL;
    zadam_config cfg = {.isa = "sse9"};
    assert_int_equal(zadam_create(&cfg, &ctx), ZOFF_EINVAL);
    assert_null(ctx);
    cfg = (zadam_config){.isa = "scalar", .tile_numel = 100};
    assert_int_equal(zadam_create(&cfg, &ctx), ZOFF_EINVAL);
    int bad_cpu = -1;
    cfg = (zadam_config){.isa = "scalar", .cpus = &bad_cpu, .ncpus = 1};
    assert_int_equal(zadam_create(&cfg, &ctx), ZOFF_EINVAL);

    /* an ISA the CPU lacks: pretend it tops out at scalar */
    zadam__cpu_override(ZADAM_ISA_SCALAR);
    cfg = (zadam_config){.isa = "avx2"};
    assert_int_equal(zadam_create(&cfg, &ctx), ZOFF_EUNSUPPORTED);
    assert_non_null(strstr(zoff__last_error_tls(), "avx2"));
    assert_int_equal(zadam_isa_best(), ZADAM_ISA_SCALAR);
    cfg = (zadam_config){.isa = "auto"};
    assert_int_equal(zadam_create(&cfg, &ctx), 0);
    assert_int_equal(zadam_ctx_isa(ctx), ZADAM_ISA_SCALAR);
    zadam_destroy(ctx);
    ctx = NULL;
    zadam__cpu_override(-1);
    /* the real CPU: asking for what it lacks names the missing flags */
    for (int k = 0; k < ZADAM_ISA_COUNT_; k++) {
        cfg = (zadam_config){.isa = zadam_isa_name((zadam_isa)k)};
        zoff_status rc = zadam_create(&cfg, &ctx);
        if (zadam_isa_supported((zadam_isa)k)) {
            assert_int_equal(rc, 0);
            assert_int_equal(zadam_ctx_isa(ctx), k);
        } else {
            assert_int_equal(rc, ZOFF_EUNSUPPORTED);
            assert_non_null(strstr(zoff__last_error_tls(), "missing"));
        }
        zadam_destroy(ctx);
        ctx = NULL;
    }

    cfg = (zadam_config){.threads = 3, .tile_numel = 128};
    assert_int_equal(zadam_create(&cfg, &ctx), 0);
    assert_int_equal(zadam_ctx_threads(ctx), 3);
    assert_int_equal(zadam_ctx_tile_numel(ctx), 128);
    assert_int_equal(zadam_ctx_isa(ctx), g_isa);

    zadam_hparams hp = k_hps[0];
    assert_int_equal(zadam_hparams_check(&hp), 0);
    hp.beta1 = 1.0f;
    assert_int_equal(zadam_hparams_check(&hp), ZOFF_EINVAL);
    assert_non_null(strstr(zoff__last_error_tls(), "beta1"));
    hp = k_hps[0];
    hp.lr = -1.0f;
    assert_int_equal(zadam_hparams_check(&hp), ZOFF_EINVAL);
    hp = k_hps[0];
    hp.step = 0;
    assert_int_equal(zadam_hparams_check(&hp), ZOFF_EINVAL);
    hp = k_hps[0];
    hp.eps = NAN;
    assert_int_equal(zadam_hparams_check(&hp), ZOFF_EINVAL);

    float p[4] = {0}, m[4] = {0}, v[4] = {0};
    uint16_t g[4] = {0};
    zadam_tensor t = {
        .n = 4, .grad = g, .grad_dtype = ZOFF_DTYPE_F16, .param = p, .exp_avg = m, .exp_avg_sq = v};
    size_t nf = 7;
    hp = k_hps[0];
    assert_int_equal(zadam_step(ctx, &hp, &t, &nf), 0);
    assert_int_equal(nf, 0);
    t.grad_dtype = (zoff_dtype)7;
    assert_int_equal(zadam_step(ctx, &hp, &t, NULL), ZOFF_EINVAL);
    t.grad_dtype = ZOFF_DTYPE_F16;
    t.exp_avg = NULL;
    assert_int_equal(zadam_step(ctx, &hp, &t, NULL), ZOFF_EINVAL);
    t.n = 0; /* nothing to do: NULL pointers are fine */
    assert_int_equal(zadam_step(ctx, &hp, &t, NULL), 0);
    double s = 1;
    assert_int_equal(zadam_sumsq(ctx, NULL, ZOFF_DTYPE_F32, 0, &s, NULL), 0);
    assert_true(s == 0.0);
    assert_int_equal(zadam_sumsq(ctx, g, (zoff_dtype)9, 4, &s, NULL), ZOFF_EINVAL);

    assert_int_equal(zadam_bytes_per_elem(ZOFF_DTYPE_F16, 1, ZOFF_DTYPE_F16), 28);
    assert_int_equal(zadam_bytes_per_elem(ZOFF_DTYPE_F32, 0, ZOFF_DTYPE_F16), 28);
    assert_int_equal(zadam_bytes_per_elem(ZOFF_DTYPE_BF16, 0, ZOFF_DTYPE_F16), 26);
    assert_int_equal(zadam_bytes_per_elem(ZOFF_DTYPE_F32, 1, ZOFF_DTYPE_F32), 32);
    zadam_destroy(ctx);
    zadam_destroy(NULL);
}

/* zadam_bind_caller pins the calling thread to cpus[0]; the test restores its mask after. */
static void test_bind_caller(void **state)
{
    (void)state;
    cpu_set_t saved, now;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof saved, &saved), 0);
    int cpu = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &saved)) {
            cpu = c;
            break;
        }
    }
    assert_true(cpu >= 0);
    zadam_config cfg = {.cpus = &cpu, .ncpus = 1, .threads = 2};
    zadam_ctx *ctx = NULL;
    assert_int_equal(zadam_create(&cfg, &ctx), 0);
    assert_int_equal(zadam_bind_caller(ctx), 0);
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof now, &now), 0);
    assert_int_equal(CPU_COUNT(&now), 1);
    assert_true(CPU_ISSET(cpu, &now));
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof saved, &saved), 0);
    zadam_destroy(ctx);
}

int main(void)
{
    zadam_ctx *ctx = NULL;
    zoff_status rc = zadam_create(NULL, &ctx);
    if (rc == ZOFF_EUNSUPPORTED) zt_skip_all("%s", zoff__last_error_tls());
    if (rc != 0) {
        fprintf(stderr, "zadam_create: %s\n", zoff__last_error_tls());
        return 1;
    }
    g_isa = zadam_ctx_isa(ctx);
    g_step = k_steps[g_isa];
    g_sumsq = k_sumsqs[g_isa];
    zadam_destroy(ctx);
    printf("testing ISA %s (ZOFF_CPU_ISA=%s)\n", zadam_isa_name(g_isa),
           zoff__param_str(ZOFF_PARAM_CPU_ISA));

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api),           cmocka_unit_test(test_random_sizes),
        cmocka_unit_test(test_random_large),  cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_nonfinite),     cmocka_unit_test(test_conversion_exact),
        cmocka_unit_test(test_grad_patterns), cmocka_unit_test(test_vs_scalar_random_hparams),
        cmocka_unit_test(test_trajectory),    cmocka_unit_test(test_threads),
        cmocka_unit_test(test_sumsq),         cmocka_unit_test(test_bind_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
