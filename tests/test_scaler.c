/*
 * test_scaler.c — the fp16 loss scaler (runtime/scaler.c) against a literal transcription of
 * DeepSpeed's DynamicLossScaler.update_scale (cur_iter / last_overflow_iter bookkeeping,
 * delayed_shift = hysteresis, consecutive_hysteresis off) over random overflow sequences and
 * configurations; plus the static-scale and no-fp16 cases (scale fixed, overflow still skips).
 * Divergence: N consecutive overflows with the scale already at its minimum (a clean step resets
 * the count) make zrt_scaler_diverged true, and under the runtime zoff_step returns
 * ZOFF_EDIVERGED with a diagnosis naming the limit (min_scale_overflow_limit; 0 never stops).
 */
#include <math.h>
#include <string.h>

#include "runtime/rt.h"
#include "zoff.h"
#include "zt.h"

/* DeepSpeed's algorithm, kept in its own terms. */
typedef struct ds_scaler {
    double cur_scale, min_scale;
    int64_t cur_iter, last_overflow_iter;
    int scale_window, delayed_shift, cur_hysteresis;
} ds_scaler;

static void ds_init(ds_scaler *d, int power, int window, int hyst, double min_scale)
{
    d->cur_scale = ldexp(1.0, power);
    d->min_scale = min_scale;
    d->cur_iter = 0;
    d->last_overflow_iter = -1;
    d->scale_window = window;
    d->delayed_shift = hyst;
    d->cur_hysteresis = hyst;
}

static void ds_update(ds_scaler *d, int overflow)
{
    if (overflow) {
        if (d->delayed_shift == 1 || d->cur_hysteresis == 1) {
            d->cur_scale = fmax(d->cur_scale / 2.0, d->min_scale);
        } else {
            d->cur_hysteresis -= 1;
        }
        d->last_overflow_iter = d->cur_iter;
    } else {
        if ((d->cur_iter - d->last_overflow_iter) % d->scale_window == 0) {
            d->cur_hysteresis = d->delayed_shift;
            /* zoff keeps the scale an fp32: it stops doubling at 2^127 */
            if (d->cur_scale * 2.0 <= ldexp(1.0, 127)) d->cur_scale *= 2.0;
        }
    }
    d->cur_iter += 1;
}

static void test_dynamic_matches_deepspeed(void **state)
{
    (void)state;
    zt_rng r;
    zt_rng_seed(&r, 1234);
    for (int trial = 0; trial < 200; trial++) {
        zoff_config c;
        zoff_config_default(&c);
        c.fp16_enabled = 1;
        c.initial_scale_power = 4 + (int)(zt_rng_u64(&r) % 20);
        c.loss_scale_window = 1 + (int)(zt_rng_u64(&r) % 12);
        c.hysteresis = 1 + (int)(zt_rng_u64(&r) % 4);
        c.min_loss_scale = (float)ldexp(1.0, (int)(zt_rng_u64(&r) % 4));
        zrt_scaler s;
        zrt_scaler_init(&s, &c);
        ds_scaler d;
        ds_init(&d, c.initial_scale_power, c.loss_scale_window, c.hysteresis, c.min_loss_scale);
        double p_over = zt_rng_uniform(&r) * 0.5;
        for (int it = 0; it < 400; it++) {
            int of = zt_rng_uniform(&r) < p_over;
            int skip = zrt_scaler_update(&s, of);
            ds_update(&d, of);
            assert_int_equal(skip, of);
            if ((double)s.scale != d.cur_scale || s.hysteresis != d.cur_hysteresis) {
                fprintf(stderr, "trial %d iter %d: scale %g vs %g, hysteresis %d vs %d\n", trial,
                        it, (double)s.scale, d.cur_scale, s.hysteresis, d.cur_hysteresis);
                fail();
            }
        }
    }
}

static void test_known_sequence(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.fp16_enabled = 1;
    c.initial_scale_power = 10;
    c.loss_scale_window = 3;
    c.hysteresis = 2;
    c.min_loss_scale = 256;
    zrt_scaler s;
    zrt_scaler_init(&s, &c);
    assert_true(s.scale == 1024.0f);
    assert_int_equal(zrt_scaler_update(&s, 1), 1); /* hysteresis 2 -> 1, scale kept */
    assert_true(s.scale == 1024.0f);
    assert_int_equal(zrt_scaler_update(&s, 1), 1); /* now halved */
    assert_true(s.scale == 512.0f);
    assert_int_equal(zrt_scaler_update(&s, 1), 1);
    assert_true(s.scale == 256.0f);
    assert_int_equal(zrt_scaler_update(&s, 1), 1); /* min_loss_scale */
    assert_true(s.scale == 256.0f);
    for (int i = 0; i < 2; i++) assert_int_equal(zrt_scaler_update(&s, 0), 0);
    assert_true(s.scale == 256.0f);
    assert_int_equal(zrt_scaler_update(&s, 0), 0); /* third clean step: doubled */
    assert_true(s.scale == 512.0f);
    assert_int_equal(s.hysteresis, 2);
}

static void test_static_and_none(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.fp16_enabled = 1;
    c.loss_scale = 128.0f;
    zrt_scaler s;
    zrt_scaler_init(&s, &c);
    assert_true(s.scale == 128.0f);
    assert_int_equal(zrt_scaler_update(&s, 1), 1);
    for (int i = 0; i < 5000; i++) assert_int_equal(zrt_scaler_update(&s, 0), 0);
    assert_true(s.scale == 128.0f);
    c.fp16_enabled = 0;
    c.bf16_enabled = 1;
    zrt_scaler_init(&s, &c);
    assert_true(s.scale == 1.0f);
    assert_int_equal(zrt_scaler_update(&s, 1), 1);
    assert_true(s.scale == 1.0f);
}

static void test_diverged_scaler(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    assert_int_equal(c.min_scale_overflow_limit, 10); /* on by default */
    c.fp16_enabled = 1;
    c.initial_scale_power = 2; /* scale 4 */
    c.hysteresis = 1;
    c.min_loss_scale = 1.0f;
    c.min_scale_overflow_limit = 3;
    zrt_scaler s;
    zrt_scaler_init(&s, &c);
    zrt_scaler_update(&s, 1); /* 4 -> 2 */
    zrt_scaler_update(&s, 1); /* 2 -> 1 */
    assert_true(s.scale == 1.0f);
    assert_false(zrt_scaler_diverged(&s));
    zrt_scaler_update(&s, 1); /* at the minimum: 1 */
    zrt_scaler_update(&s, 1); /* 2 */
    assert_false(zrt_scaler_diverged(&s));
    zrt_scaler_update(&s, 0); /* a clean step resets the count */
    for (int i = 0; i < 2; i++) zrt_scaler_update(&s, 1);
    assert_false(zrt_scaler_diverged(&s));
    zrt_scaler_update(&s, 1);
    assert_true(zrt_scaler_diverged(&s));
    c.min_scale_overflow_limit = 0; /* never */
    zrt_scaler_init(&s, &c);
    for (int i = 0; i < 100; i++) zrt_scaler_update(&s, 1);
    assert_false(zrt_scaler_diverged(&s));
}

/* Under the runtime: inf gradients every step stop with ZOFF_EDIVERGED once the scale sits at
 * its minimum for the limit's steps. */
static void test_diverged_runtime(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.device = ZOFF_DEVICE_SIM;
    c.fp16_enabled = 1;
    c.initial_scale_power = 2;
    c.hysteresis = 1;
    c.min_scale_overflow_limit = 3;
    zoff_runtime *rt = NULL;
    assert_int_equal(zoff_create(&c, &rt), 0);
    enum { N = 256 };
    float init[N];
    for (int i = 0; i < N; i++) init[i] = 0.01f * (float)i;
    void *p = NULL, *g = NULL;
    assert_int_equal(zoff_device_alloc(rt, N * 2, &p), 0);
    assert_int_equal(zoff_device_alloc(rt, N * 2, &g), 0);
    int id;
    assert_int_equal(zoff_add_param(rt, "w", N, ZOFF_DTYPE_F16, p, g, init, 0, &id), 0);
    assert_int_equal(zoff_finalize(rt), 0);
    uint16_t inf[N];
    for (int i = 0; i < N; i++) inf[i] = 0x7c00; /* fp16 +inf */
    zoff_step_result r = {.struct_size = sizeof r};
    zoff_status st = ZOFF_OK;
    int steps = 0;
    while (st == ZOFF_OK && steps < 20) {
        assert_int_equal(zoff_device_upload(rt, g, inf, sizeof inf, NULL), 0);
        assert_int_equal(zoff_grad_ready(rt, id, NULL), 0);
        st = zoff_step(rt, NULL, &r);
        steps++;
        if (st == ZOFF_OK) assert_int_equal(r.skipped, 1);
    }
    /* 4 -> 2 -> 1, then 3 overflows at 1 */
    assert_int_equal(st, ZOFF_EDIVERGED);
    assert_int_equal(steps, 5);
    assert_int_equal(r.skipped, 1);
    const char *m = zoff_last_error(rt);
    print_message("%s\n", m);
    assert_non_null(strstr(m, "diverged"));
    assert_non_null(strstr(m, "min_scale_overflow_limit"));
    assert_string_equal(zoff_status_name(ZOFF_EDIVERGED), "ZOFF_EDIVERGED");
    zoff_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamic_matches_deepspeed), cmocka_unit_test(test_known_sequence),
        cmocka_unit_test(test_static_and_none),           cmocka_unit_test(test_diverged_scaler),
        cmocka_unit_test(test_diverged_runtime),
    };
    return cmocka_run_group_tests_name("scaler", tests, NULL, NULL);
}
