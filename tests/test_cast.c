/*
 * test_cast.c — the element math of the device kernels (gpu/elem.h) and the kernels themselves
 * (zdev_cast_f32 / zdev_widen_f32 / zdev_scale / zdev_fill) on the device under test.
 *
 *  - load/store of all 65536 fp16 and bf16 bit patterns (exact load, exact round trip, NaN kept
 *    NaN and quieted) and agreement with common/half.h;
 *  - fp32 -> fp16 / bf16 casts over a sweep of ~1M fp32 patterns plus every halfway point between
 *    neighbouring 16-bit values, against references that share no code with half.h: a
 *    double-precision nearest-even search (both formats) and the CPU's F16C instruction (fp16,
 *    when present);
 *  - special values (signed zeros, infinities, NaN, max finite, overflow threshold, smallest
 *    subnormals, ties);
 *  - the three kernels on the device (sim by default; ZOFF_DEVICE=cuda runs them on a GPU) for
 *    all dtypes, compared element by element with the host functions, plus a sub-range launch
 *    that must not touch its neighbours; the widen kernel (16-bit / fp32 -> fp32, exact) on
 *    every fp16 and bf16 bit pattern.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "common/half.h"
#include "gpu/device.h"
#include "gpu/elem.h"
#include "zt.h"

/* ---- independent references --------------------------------------------------------------- */
static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Value of a positive finite fp16 pattern, from the format definition. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    return e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
}

/* fp32 -> fp16 by searching the two neighbours and picking the nearer (ties: even). */
static uint16_t ref_f16(float f)
{
    uint32_t x = bits_of(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (isnan(f)) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    double a = fabs((double)f);
    if (isinf(f)) return (uint16_t)(sign | 0x7c00u);
    /* largest h in [0, 0x7bff] with value(h) <= a */
    unsigned lo = 0, hi = 0x7bff;
    if (a >= f16_value(0x7bff)) {
        lo = 0x7bff;
    } else {
        while (lo < hi) {
            unsigned mid = (lo + hi + 1) / 2;
            if (f16_value((uint16_t)mid) <= a)
                lo = mid;
            else
                hi = mid - 1;
        }
    }
    double vlo = f16_value((uint16_t)lo);
    double vhi = lo == 0x7bff ? 65536.0 : f16_value((uint16_t)(lo + 1)); /* 65536: inf's slot */
    double dlo = a - vlo, dhi = vhi - a;
    unsigned r = (dlo < dhi || (dlo == dhi && (lo & 1) == 0)) ? lo : lo + 1;
    return (uint16_t)(sign | r); /* lo + 1 == 0x7c00 is inf */
}

/* fp32 -> bf16 by comparing the truncation and the next value up (ties: even). */
static uint16_t ref_bf16(float f)
{
    uint32_t x = bits_of(f);
    if (isnan(f)) return (uint16_t)((x >> 16) | 0x40u);
    uint32_t lo = x & 0xffff0000u;
    if (lo == x) return (uint16_t)(x >> 16);
    uint32_t hi = lo + 0x10000u; /* next magnitude; may carry into inf */
    double dx = (double)f, vlo = (double)f32_of(lo);
    double vhi = ((hi >> 23) & 0xffu) == 0xffu ? copysign(ldexp(1.0, 128), dx) : (double)f32_of(hi);
    double dlo = fabs(dx - vlo), dhi = fabs(vhi - dx);
    if (dlo < dhi) return (uint16_t)(lo >> 16);
    if (dhi < dlo) return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16);
}

__attribute__((target("f16c"))) static uint16_t hw_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

static uint16_t elem_store16(int dtype, float v)
{
    uint16_t out = 0;
    zdev_elem_store(&out, dtype, 0, v);
    return out;
}

/* ---- host: element functions --------------------------------------------------------------- */
static void test_load_store_exhaustive(void **state)
{
    (void)state;
    size_t bad = 0;
    for (uint32_t p = 0; p < 65536; p++) {
        uint16_t h = (uint16_t)p;
        for (int k = 0; k < 2; k++) {
            int dt = k ? ZOFF_DTYPE_BF16 : ZOFF_DTYPE_F16;
            float v = zdev_elem_load(&h, dt, 0);
            float want = k ? zoff_bf16_to_f32(h) : zoff_f16_to_f32(h);
            uint16_t back = elem_store16(dt, v);
            int ok = bits_of(v) == bits_of(want);
            if (isnan(v)) {
                uint16_t quiet = k ? 0x0040u : 0x0200u;
                ok = ok && back == (h | quiet); /* NaN stays NaN, quieted, payload kept */
            } else {
                ok = ok && back == h; /* exact round trip */
            }
            if (!ok && bad++ < 5)
                print_error("%s pattern 0x%04x: load %a (want %a), store back 0x%04x\n",
                            k ? "bf16" : "f16", h, (double)v, (double)want, back);
        }
    }
    assert_int_equal(bad, 0);
    /* fp32 load/store is the identity, including NaN payloads. */
    float f = f32_of(0x7fa00001u), g = 0;
    assert_int_equal(bits_of(zdev_elem_load(&f, ZOFF_DTYPE_F32, 0)), 0x7fa00001u);
    zdev_elem_store(&g, ZOFF_DTYPE_F32, 0, f);
    assert_int_equal(bits_of(g), 0x7fa00001u);
}

static size_t check_cast(float f, int have_f16c)
{
    size_t bad = 0;
    uint16_t h = elem_store16(ZOFF_DTYPE_F16, f), b = elem_store16(ZOFF_DTYPE_BF16, f);
    uint16_t rh = ref_f16(f), rb = ref_bf16(f);
    if (h != rh || h != zoff_f32_to_f16(f) || (have_f16c && h != hw_f16(f))) {
        if (bad++ < 5)
            print_error("f16 of %a (0x%08x): elem 0x%04x ref 0x%04x half.h 0x%04x f16c 0x%04x\n",
                        (double)f, bits_of(f), h, rh, zoff_f32_to_f16(f),
                        have_f16c ? hw_f16(f) : 0);
    }
    if (b != rb || b != zoff_f32_to_bf16(f)) {
        if (bad++ < 5)
            print_error("bf16 of %a (0x%08x): elem 0x%04x ref 0x%04x half.h 0x%04x\n", (double)f,
                        bits_of(f), b, rb, zoff_f32_to_bf16(f));
    }
    return bad;
}

static void test_cast_sweep(void **state)
{
    (void)state;
    int have_f16c = __builtin_cpu_supports("f16c");
    print_message("F16C reference: %s\n", have_f16c ? "yes" : "no (double reference only)");
    size_t bad = 0, n = 0;
    /* ~1M fp32 patterns spread over the whole range (both signs, NaN, inf, subnormals). */
    for (uint64_t u = 0; u <= 0xffffffffull; u += 4099, n++)
        bad += check_cast(f32_of((uint32_t)u), have_f16c);
    /* Every fp16 value, the halfway point to its successor and one ulp either side of it. */
    for (uint32_t p = 0; p < 0x7c00; p++, n += 6) {
        double mid =
            (f16_value((uint16_t)p) + (p == 0x7bff ? 65536.0 : f16_value((uint16_t)(p + 1)))) / 2;
        float m = (float)mid;
        float around[3] = {m, nextafterf(m, 0.0f), nextafterf(m, INFINITY)};
        for (int i = 0; i < 3; i++) {
            bad += check_cast(around[i], have_f16c);
            bad += check_cast(-around[i], have_f16c);
        }
    }
    /* bf16 ties: every bf16 pattern with the low half exactly 0x8000, and neighbours. */
    for (uint32_t p = 0; p < 65536; p++, n += 3) {
        uint32_t base = p << 16;
        bad += check_cast(f32_of(base | 0x8000u), have_f16c);
        bad += check_cast(f32_of(base | 0x7fffu), have_f16c);
        bad += check_cast(f32_of(base | 0x8001u), have_f16c);
    }
    print_message("%zu casts checked\n", n);
    assert_int_equal(bad, 0);
}

static void test_special_values(void **state)
{
    (void)state;
    static const struct {
        uint32_t f32;
        uint16_t f16, bf16;
    } cases[] = {
        {0x00000000u, 0x0000u, 0x0000u}, /* +0 */
        {0x80000000u, 0x8000u, 0x8000u}, /* -0 */
        {0x7f800000u, 0x7c00u, 0x7f80u}, /* +inf */
        {0xff800000u, 0xfc00u, 0xff80u}, /* -inf */
        {0x7fc00000u, 0x7e00u, 0x7fc0u}, /* quiet NaN */
        {0x7f800001u, 0x7e00u, 0x7fc0u}, /* signalling NaN, low payload: quieted */
        {0x3f800000u, 0x3c00u, 0x3f80u}, /* 1 */
        {0x477fe000u, 0x7bffu, 0x4780u}, /* 65504: fp16 max; bf16 rounds up to 65536 */
        {0x477ff000u, 0x7c00u, 0x4780u}, /* 65520: fp16 overflow threshold -> inf */
        {0x477fefffu, 0x7bffu, 0x4780u}, /* just below it: max */
        {0x33800000u, 0x0001u, 0x3380u}, /* 2^-24: smallest fp16 subnormal */
        {0x33000000u, 0x0000u, 0x3300u}, /* 2^-25: tie to even -> 0 */
        {0x33000001u, 0x0001u, 0x3300u}, /* just above: rounds up */
        {0x33c00000u, 0x0002u, 0x33c0u}, /* 3 * 2^-25: tie to even -> 2^-23 */
        {0x387fe000u, 0x0400u, 0x3880u}, /* tie above the largest subnormal: even -> 2^-14 */
        {0x387fc000u, 0x03ffu, 0x3880u}, /* 2^-14 - 2^-24: largest fp16 subnormal, exact */
        {0x3f808000u, 0x3c04u, 0x3f80u}, /* bf16 tie 1 + 2^-8: even -> 1 */
        {0x3f818000u, 0x3c0cu, 0x3f82u}, /* bf16 tie 1 + 3*2^-8: even -> 1 + 2^-6 */
        {0x7f7fffffu, 0x7c00u, 0x7f80u}, /* fp32 max: inf in both */
        {0x00000001u, 0x0000u, 0x0000u}, /* fp32 min subnormal: 0 in both */
        {0x00010000u, 0x0000u, 0x0001u}, /* bf16 smallest subnormal, exact */
    };
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(cases); i++) {
        float f = f32_of(cases[i].f32);
        uint16_t h = elem_store16(ZOFF_DTYPE_F16, f), b = elem_store16(ZOFF_DTYPE_BF16, f);
        if (h != cases[i].f16 || b != cases[i].bf16)
            print_error("case %zu (0x%08x): f16 0x%04x want 0x%04x, bf16 0x%04x want 0x%04x\n", i,
                        cases[i].f32, h, cases[i].f16, b, cases[i].bf16);
        assert_int_equal(h, cases[i].f16);
        assert_int_equal(b, cases[i].bf16);
    }
    /* scale: product in fp32, then rounded once. */
    uint16_t x = 0x3c00u; /* 1.0 */
    zdev_elem_scale(&x, ZOFF_DTYPE_F16, 0, 65504.0f * 2.0f);
    assert_int_equal(x, 0x7c00u);
    x = 0x3c01u; /* 1 + 2^-10 */
    zdev_elem_scale(&x, ZOFF_DTYPE_F16, 0, 0.5f);
    assert_int_equal(x, 0x3801u);
    float fx = 3.0f;
    zdev_elem_scale(&fx, ZOFF_DTYPE_F32, 0, -0.5f);
    assert_true(fx == -1.5f);
}

/* ---- device kernels -----------------------------------------------------------------------------
 */
static zdev *open_dev(void)
{
    zdev_config cfg;
    zdev_config_default(&cfg);
    cfg.kind = ZOFF_DEVICE_SIM;
    cfg.sim_bytes = 64 * ZOFF_MIB;
    zdev *d = NULL;
    zoff_status st = zdev_open(&cfg, &d);
    if (st == ZOFF_EUNSUPPORTED) zt_skip_all("device not available: %s", zoff__last_error_tls());
    assert_int_equal(st, 0);
    return d;
}

/* Inputs: every fp16 value, every bf16 value, normal random values at several scales. */
static float *make_inputs(size_t *n_out)
{
    size_t n = 65536 * 2 + 4 * 4096;
    float *x = zt_malloc(n * sizeof *x);
    size_t k = 0;
    for (uint32_t p = 0; p < 65536; p++) x[k++] = zoff_f16_to_f32((uint16_t)p);
    for (uint32_t p = 0; p < 65536; p++) x[k++] = zoff_bf16_to_f32((uint16_t)p);
    zt_rng r;
    zt_rng_seed(&r, 2024);
    const float scales[4] = {1e-6f, 1.0f, 1e3f, 1e6f};
    for (int s = 0; s < 4; s++) {
        zt_fill_normal(&r, x + k, 4096, scales[s]);
        k += 4096;
    }
    *n_out = n;
    return x;
}

static size_t compare_bits16(const char *what, const uint16_t *got, const uint16_t *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i] && bad++ < 5)
            print_error("%s: element %zu: got 0x%04x want 0x%04x\n", what, i, got[i], want[i]);
    }
    return bad;
}

static size_t compare_bits32(const char *what, const float *got, const float *want, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (bits_of(got[i]) != bits_of(want[i]) && bad++ < 5)
            print_error("%s: element %zu: got %a want %a\n", what, i, (double)got[i],
                        (double)want[i]);
    }
    return bad;
}

static void test_device_cast(void **state)
{
    (void)state;
    zdev *d = open_dev();
    size_t n;
    float *in = make_inputs(&n);
    void *din, *dout;
    uint16_t *out16 = zt_malloc(n * 2), *want16 = zt_malloc(n * 2);
    float *out32 = zt_malloc(n * 4);
    assert_int_equal(zdev_malloc(d, n * 4, &din), 0);
    assert_int_equal(zdev_malloc(d, n * 4, &dout), 0);
    assert_int_equal(zdev_memcpy_h2d(d, din, in, n * 4, NULL), 0);
    for (int k = 0; k < 2; k++) {
        int dt = k ? ZOFF_DTYPE_BF16 : ZOFF_DTYPE_F16;
        assert_int_equal(zdev_cast_f32(d, dout, (zoff_dtype)dt, din, n, NULL), 0);
        assert_int_equal(zdev_memcpy_d2h(d, out16, dout, n * 2, NULL), 0);
        assert_int_equal(zdev_stream_sync(d, NULL), 0);
        for (size_t i = 0; i < n; i++)
            want16[i] = k ? zoff_f32_to_bf16(in[i]) : zoff_f32_to_f16(in[i]);
        assert_int_equal(compare_bits16(k ? "cast bf16" : "cast f16", out16, want16, n), 0);
    }
    assert_int_equal(zdev_cast_f32(d, dout, ZOFF_DTYPE_F32, din, n, NULL), 0);
    assert_int_equal(zdev_memcpy_d2h(d, out32, dout, n * 4, NULL), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    assert_int_equal(compare_bits32("cast f32", out32, in, n), 0);

    /* A sub-range launch (offset 3 elements, 1000 elements) leaves its neighbours alone. */
    const uint16_t sentinel = 0x5a5a;
    for (size_t i = 0; i < 1010; i++) out16[i] = sentinel;
    assert_int_equal(zdev_memcpy_h2d(d, dout, out16, 1010 * 2, NULL), 0);
    assert_int_equal(
        zdev_cast_f32(d, (uint16_t *)dout + 3, ZOFF_DTYPE_F16, (float *)din + 1, 1000, NULL), 0);
    assert_int_equal(zdev_memcpy_d2h(d, out16, dout, 1010 * 2, NULL), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    for (size_t i = 0; i < 1010; i++)
        want16[i] = (i < 3 || i >= 1003) ? sentinel : zoff_f32_to_f16(in[i - 3 + 1]);
    assert_int_equal(compare_bits16("sub-range cast", out16, want16, 1010), 0);

    free(in);
    free(out16);
    free(want16);
    free(out32);
    zdev_free(d, din);
    zdev_free(d, dout);
    zdev_close(d);
}

static void test_device_widen(void **state)
{
    (void)state;
    zdev *d = open_dev();
    size_t n = 65536;
    uint16_t *in = zt_malloc(n * 2);
    float *out = zt_malloc(n * 4), *want = zt_malloc(n * 4);
    void *din, *dout;
    assert_int_equal(zdev_malloc(d, n * 4, &din), 0);
    assert_int_equal(zdev_malloc(d, n * 4, &dout), 0);
    for (size_t i = 0; i < n; i++) in[i] = (uint16_t)i;
    assert_int_equal(zdev_memcpy_h2d(d, din, in, n * 2, NULL), 0);
    for (int k = 0; k < 2; k++) {
        zoff_dtype dt = k ? ZOFF_DTYPE_BF16 : ZOFF_DTYPE_F16;
        assert_int_equal(zdev_widen_f32(d, dout, din, dt, n, NULL), 0);
        assert_int_equal(zdev_memcpy_d2h(d, out, dout, n * 4, NULL), 0);
        assert_int_equal(zdev_stream_sync(d, NULL), 0);
        for (size_t i = 0; i < n; i++)
            want[i] = k ? zoff_bf16_to_f32(in[i]) : zoff_f16_to_f32(in[i]);
        assert_int_equal(compare_bits32(k ? "widen bf16" : "widen f16", out, want, n), 0);
    }
    /* fp32 source: a copy (the first n/2 patterns' bits as floats) */
    assert_int_equal(zdev_widen_f32(d, dout, din, ZOFF_DTYPE_F32, n / 2, NULL), 0);
    assert_int_equal(zdev_memcpy_d2h(d, out, dout, n / 2 * 4, NULL), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    assert_int_equal(compare_bits32("widen f32", out, (const float *)(const void *)in, n / 2), 0);
    free(in);
    free(out);
    free(want);
    zdev_free(d, din);
    zdev_free(d, dout);
    zdev_close(d);
}

static void test_device_scale_fill(void **state)
{
    (void)state;
    zdev *d = open_dev();
    zdev_stream *s;
    assert_int_equal(zdev_stream_create(d, &s), 0);
    const size_t n = 65536;
    uint16_t *h = zt_malloc(n * 2), *out = zt_malloc(n * 2), *want = zt_malloc(n * 2);
    float *f = zt_malloc(n * 4), *fout = zt_malloc(n * 4), *fwant = zt_malloc(n * 4);
    void *x;
    assert_int_equal(zdev_malloc(d, n * 4, &x), 0);
    const float alphas[] = {0.5f, 3.0f, 1e-3f, -2.0f, 65536.0f};
    zt_rng r;
    zt_rng_seed(&r, 99);
    zt_fill_normal(&r, f, n, 10.0f);
    for (size_t a = 0; a < ZOFF_ARRAY_SIZE(alphas); a++) {
        for (int k = 0; k < 2; k++) {
            int dt = k ? ZOFF_DTYPE_BF16 : ZOFF_DTYPE_F16;
            for (size_t i = 0; i < n; i++) {
                h[i] = (uint16_t)i; /* every pattern */
                float v = k ? zoff_bf16_to_f32(h[i]) : zoff_f16_to_f32(h[i]);
                want[i] = k ? zoff_f32_to_bf16(v * alphas[a]) : zoff_f32_to_f16(v * alphas[a]);
            }
            assert_int_equal(zdev_memcpy_h2d(d, x, h, n * 2, s), 0);
            assert_int_equal(zdev_scale(d, x, (zoff_dtype)dt, n, alphas[a], s), 0);
            assert_int_equal(zdev_memcpy_d2h(d, out, x, n * 2, s), 0);
            assert_int_equal(zdev_stream_sync(d, s), 0);
            assert_int_equal(compare_bits16(k ? "scale bf16" : "scale f16", out, want, n), 0);
        }
        for (size_t i = 0; i < n; i++) fwant[i] = f[i] * alphas[a];
        assert_int_equal(zdev_memcpy_h2d(d, x, f, n * 4, s), 0);
        assert_int_equal(zdev_scale(d, x, ZOFF_DTYPE_F32, n, alphas[a], s), 0);
        assert_int_equal(zdev_memcpy_d2h(d, fout, x, n * 4, s), 0);
        assert_int_equal(zdev_stream_sync(d, s), 0);
        assert_int_equal(compare_bits32("scale f32", fout, fwant, n), 0);
    }

    const float values[] = {1.0f, -0.0f, NAN, 1e30f, 3.14159265f, 1e-8f, -65519.0f};
    for (size_t v = 0; v < ZOFF_ARRAY_SIZE(values); v++) {
        for (int k = 0; k < 2; k++) {
            int dt = k ? ZOFF_DTYPE_BF16 : ZOFF_DTYPE_F16;
            uint16_t w = k ? zoff_f32_to_bf16(values[v]) : zoff_f32_to_f16(values[v]);
            for (size_t i = 0; i < n; i++) want[i] = w;
            assert_int_equal(zdev_fill(d, x, (zoff_dtype)dt, n, values[v], s), 0);
            assert_int_equal(zdev_memcpy_d2h(d, out, x, n * 2, s), 0);
            assert_int_equal(zdev_stream_sync(d, s), 0);
            assert_int_equal(compare_bits16(k ? "fill bf16" : "fill f16", out, want, n), 0);
        }
        for (size_t i = 0; i < n; i++) fwant[i] = values[v];
        assert_int_equal(zdev_fill(d, x, ZOFF_DTYPE_F32, n, values[v], s), 0);
        assert_int_equal(zdev_memcpy_d2h(d, fout, x, n * 4, s), 0);
        assert_int_equal(zdev_stream_sync(d, s), 0);
        assert_int_equal(compare_bits32("fill f32", fout, fwant, n), 0);
    }
    free(h);
    free(out);
    free(want);
    free(f);
    free(fout);
    free(fwant);
    zdev_free(d, x);
    zdev_stream_destroy(d, s);
    zdev_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_store_exhaustive), cmocka_unit_test(test_cast_sweep),
        cmocka_unit_test(test_special_values),        cmocka_unit_test(test_device_cast),
        cmocka_unit_test(test_device_scale_fill),     cmocka_unit_test(test_device_widen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
