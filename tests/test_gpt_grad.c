/*
 * test_gpt_grad.c — checks the example GPT model (examples/gpt/model.c) without zoff:
 *  - gradient check: the fp64 instantiation's analytic gradient of every parameter element of
 *    every tensor (embeddings, both layernorms, qkv, attention projection, MLP, final layernorm,
 *    tied and untied head) against central finite differences of its own forward, on a tiny
 *    model; then the fp32 model (what the trainer runs) against that fp64 reference;
 *  - the backward stage callbacks come in order (head, last block ... first block, embeddings)
 *    and every tensor's gradient is already final when its stage is reported;
 *  - the loss scale: backward with dloss = 1024 gives exactly 1024 x the gradients of dloss = 1;
 *  - results do not depend on the number of OpenMP threads (bit-identical);
 *  - KV-cached sampling gives the same logits as the full forward;
 *  - the fp16/bf16 conversions match the library's reference (common/half.h) bit for bit;
 *  - the byte tokenizer (examples/gpt/data.c) round-trips the printable ASCII set.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common/half.h"
#include "data.h"
#include "model.h"
#include "zt.h"

static const gpt_config tiny_untied = {
    .vocab = 13, .max_seq = 6, .layers = 2, .heads = 2, .width = 8, .tied = 0};
static const gpt_config tiny_tied = {
    .vocab = 13, .max_seq = 6, .layers = 2, .heads = 2, .width = 8, .tied = 1};
enum { TB = 2 }; /* batch of the tiny model */

/* Random parameters large enough that every path carries signal (init_params' 0.02 is too
 * small for a finite-difference check): matrices N(0, 0.4), layernorm weights 1 + N(0, 0.3),
 * biases N(0, 0.2). Padding stays 0. */
static void random_params(const gpt_layout *lay, double *p, zt_rng *rng)
{
    memset(p, 0, lay->total_numel * sizeof(double));
    for (int i = 0; i < lay->ntensors; i++) {
        const gpt_tensor *t = &lay->tensors[i];
        int ln_w = strstr(t->name, "ln") && !strcmp(strrchr(t->name, '.'), ".w");
        for (size_t j = 0; j < t->numel; j++) {
            double n = zt_rng_normal(rng);
            p[t->offset + j] = ln_w ? 1.0 + 0.3 * n : (t->rows > 1 ? 0.4 * n : 0.2 * n);
        }
    }
}

static void random_tokens(int32_t *tok, int32_t *tgt, int n, int V, zt_rng *rng)
{
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)(zt_rng_u64(rng) % (uint64_t)V);
        tgt[i] = (int32_t)(zt_rng_u64(rng) % (uint64_t)V);
    }
}

static void grad_check(const gpt_config *cfg)
{
    gpt_layout lay;
    assert_int_equal(gpt_layout_init(&lay, cfg), 0);
    zt_rng rng;
    zt_rng_seed(&rng, 1234 + (uint64_t)cfg->tied);
    int T = cfg->max_seq, n = TB * T;
    int32_t tok[TB * 6], tgt[TB * 6];
    random_tokens(tok, tgt, n, cfg->vocab, &rng);
    size_t np = lay.total_numel;
    double *p = zt_malloc(np * sizeof(double)), *g = zt_malloc(np * sizeof(double));
    random_params(&lay, p, &rng);
    memset(g, 0, np * sizeof(double));

    gpt_model_f64 *md;
    assert_int_equal(gpt_model_create_f64(cfg, TB, &md), 0);
    double loss;
    assert_int_equal(gpt_forward_f64(md, p, tok, tgt, TB, T, &loss), 0);
    assert_true(isfinite(loss) && loss > 0);
    assert_int_equal(gpt_backward_f64(md, p, g, 1.0, NULL, NULL), 0);

    /* every element of every tensor against a central difference */
    const double h = 1e-5;
    size_t bad_total = 0;
    for (int i = 0; i < lay.ntensors; i++) {
        const gpt_tensor *t = &lay.tensors[i];
        size_t bad = 0;
        double gmax = 0;
        for (size_t j = 0; j < t->numel; j++) {
            size_t k = t->offset + j;
            double keep = p[k], lp, lm;
            p[k] = keep + h;
            assert_int_equal(gpt_forward_f64(md, p, tok, tgt, TB, T, &lp), 0);
            p[k] = keep - h;
            assert_int_equal(gpt_forward_f64(md, p, tok, tgt, TB, T, &lm), 0);
            p[k] = keep;
            double fd = (lp - lm) / (2 * h);
            if (fabs(g[k]) > gmax) gmax = fabs(g[k]);
            if (fabs(g[k] - fd) > 1e-7 + 1e-5 * fabs(fd)) {
                if (bad < 3)
                    printf("  %s[%zu]: analytic %.10g finite difference %.10g\n", t->name, j, g[k],
                           fd);
                bad++;
            }
        }
        /* a tensor whose gradient is all zero would pass trivially: every tensor gets signal */
        if (gmax == 0) {
            printf("  %s: gradient is identically zero\n", t->name);
            bad++;
        }
        bad_total += bad;
    }
    assert_int_equal(bad_total, 0);

    /* the fp32 model against the fp64 reference */
    float *pf = zt_malloc(np * sizeof(float)), *gf = zt_malloc(np * sizeof(float));
    for (size_t k = 0; k < np; k++) pf[k] = (float)p[k];
    memset(gf, 0, np * sizeof(float));
    assert_int_equal(gpt_forward_f64(md, p, tok, tgt, TB, T, &loss), 0); /* unperturbed */
    gpt_model *mf;
    assert_int_equal(gpt_model_create(cfg, TB, &mf), 0);
    float lossf;
    assert_int_equal(gpt_forward(mf, pf, tok, tgt, TB, T, &lossf), 0);
    assert_true(fabs(lossf - loss) <= 1e-5 * fabs(loss));
    assert_int_equal(gpt_backward(mf, pf, gf, 1.0f, NULL, NULL), 0);
    for (int i = 0; i < lay.ntensors; i++) {
        const gpt_tensor *t = &lay.tensors[i];
        double gmax = 0;
        for (size_t j = 0; j < t->numel; j++)
            if (fabs(g[t->offset + j]) > gmax) gmax = fabs(g[t->offset + j]);
        size_t bad = zt_compare_f64(t->name, gf + t->offset, g + t->offset, t->numel,
                                    1e-4 * gmax + 1e-7, 1e-3);
        assert_int_equal(bad, 0);
    }
    gpt_model_destroy(mf);
    gpt_model_destroy_f64(md);
    free(pf);
    free(gf);
    free(p);
    free(g);
    gpt_layout_free(&lay);
}

static void test_grad_untied(void **state)
{
    (void)state;
    grad_check(&tiny_untied);
}

static void test_grad_tied(void **state)
{
    (void)state;
    grad_check(&tiny_tied);
}

/* ---- stage callbacks ---------------------------------------------------------------------- */
typedef struct stage_rec {
    const gpt_layout *lay;
    const float *grads;
    float *snap; /* gradients copied when each tensor's stage was reported */
    int order[64];
    int n;
} stage_rec;

static int on_stage(int stage, void *user)
{
    stage_rec *r = user;
    r->order[r->n++] = stage;
    for (int i = 0; i < r->lay->ntensors; i++) {
        const gpt_tensor *t = &r->lay->tensors[i];
        if (t->stage == stage)
            memcpy(r->snap + t->offset, r->grads + t->offset, t->numel * sizeof(float));
    }
    return 0;
}

static int abort_stage(int stage, void *user)
{
    (void)user;
    return stage == 1 ? -ECANCELED : 0;
}

static void run_f32(const gpt_config *cfg, const float *p, float *g, float dloss, gpt_stage_fn fn,
                    void *user, float *loss)
{
    zt_rng rng;
    zt_rng_seed(&rng, 99);
    int T = cfg->max_seq, n = TB * T;
    int32_t tok[TB * 64], tgt[TB * 64];
    assert_true(n <= TB * 64);
    random_tokens(tok, tgt, n, cfg->vocab, &rng);
    gpt_model *m;
    assert_int_equal(gpt_model_create(cfg, TB, &m), 0);
    assert_int_equal(gpt_forward(m, p, tok, tgt, TB, T, loss), 0);
    assert_int_equal(gpt_backward(m, p, g, dloss, fn, user), 0);
    gpt_model_destroy(m);
}

static float *random_params_f32(const gpt_layout *lay, uint64_t seed)
{
    zt_rng rng;
    zt_rng_seed(&rng, seed);
    double *pd = zt_malloc(lay->total_numel * sizeof(double));
    float *p = zt_malloc(lay->total_numel * sizeof(float));
    random_params(lay, pd, &rng);
    for (size_t k = 0; k < lay->total_numel; k++) p[k] = (float)pd[k];
    free(pd);
    return p;
}

static void test_stage_order(void **state)
{
    (void)state;
    for (int tied = 0; tied <= 1; tied++) {
        gpt_config cfg = {
            .vocab = 20, .max_seq = 7, .layers = 3, .heads = 2, .width = 16, .tied = tied};
        gpt_layout lay;
        assert_int_equal(gpt_layout_init(&lay, &cfg), 0);
        float *p = random_params_f32(&lay, 5);
        float *g = calloc(lay.total_numel, sizeof(float));
        stage_rec rec = {.lay = &lay, .grads = g, .snap = calloc(lay.total_numel, sizeof(float))};
        float loss;
        run_f32(&cfg, p, g, 1.0f, on_stage, &rec, &loss);
        assert_int_equal(rec.n, cfg.layers + 2);
        assert_int_equal(lay.nstages, cfg.layers + 2);
        for (int i = 0; i < rec.n; i++) assert_int_equal(rec.order[i], i);
        for (int i = 0; i < lay.ntensors; i++) {
            const gpt_tensor *t = &lay.tensors[i];
            if (memcmp(rec.snap + t->offset, g + t->offset, t->numel * sizeof(float)) != 0)
                fail_msg("%s changed after its stage %d was reported", t->name, t->stage);
        }
        /* a callback error aborts backward and is returned */
        gpt_model *m;
        int32_t tok[7] = {1, 2, 3, 4, 5, 6, 7}, tgt[7] = {2, 3, 4, 5, 6, 7, 8};
        assert_int_equal(gpt_model_create(&cfg, 1, &m), 0);
        assert_int_equal(gpt_forward(m, p, tok, tgt, 1, 7, &loss), 0);
        assert_int_equal(gpt_backward(m, p, g, 1.0f, abort_stage, NULL), -ECANCELED);
        gpt_model_destroy(m);
        free(rec.snap);
        free(g);
        free(p);
        gpt_layout_free(&lay);
    }
}

static void test_loss_scale_exact(void **state)
{
    (void)state;
    gpt_config cfg = {.vocab = 30, .max_seq = 16, .layers = 2, .heads = 4, .width = 32, .tied = 1};
    gpt_layout lay;
    assert_int_equal(gpt_layout_init(&lay, &cfg), 0);
    float *p = random_params_f32(&lay, 7);
    float *g1 = calloc(lay.total_numel, sizeof(float)),
          *g2 = calloc(lay.total_numel, sizeof(float));
    float l1, l2;
    run_f32(&cfg, p, g1, 1.0f, NULL, NULL, &l1);
    run_f32(&cfg, p, g2, 1024.0f, NULL, NULL, &l2);
    assert_true(l1 == l2);
    size_t diff = 0, nonzero = 0;
    for (size_t k = 0; k < lay.total_numel; k++) {
        if (g2[k] != 1024.0f * g1[k]) diff++;
        if (g1[k] != 0) nonzero++;
    }
    assert_int_equal(diff, 0);
    assert_true(nonzero > lay.param_count / 2);
    free(g1);
    free(g2);
    free(p);
    gpt_layout_free(&lay);
}

static void test_threads_bit_identical(void **state)
{
    (void)state;
    gpt_config cfg = {.vocab = 96, .max_seq = 32, .layers = 2, .heads = 4, .width = 64, .tied = 0};
    gpt_layout lay;
    assert_int_equal(gpt_layout_init(&lay, &cfg), 0);
    float *p = random_params_f32(&lay, 11);
    float *g1 = calloc(lay.total_numel, sizeof(float)),
          *g2 = calloc(lay.total_numel, sizeof(float));
    float l1, l2;
    int keep = omp_get_max_threads();
    omp_set_num_threads(1);
    run_f32(&cfg, p, g1, 1.0f, NULL, NULL, &l1);
    omp_set_num_threads(3);
    run_f32(&cfg, p, g2, 1.0f, NULL, NULL, &l2);
    omp_set_num_threads(keep);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, lay.total_numel * sizeof(float));
    free(g1);
    free(g2);
    free(p);
    gpt_layout_free(&lay);
}

static void test_sampler_matches_forward(void **state)
{
    (void)state;
    for (int tied = 0; tied <= 1; tied++) {
        gpt_config cfg = {
            .vocab = 96, .max_seq = 24, .layers = 2, .heads = 4, .width = 32, .tied = tied};
        gpt_layout lay;
        assert_int_equal(gpt_layout_init(&lay, &cfg), 0);
        float *p = random_params_f32(&lay, 13);
        zt_rng rng;
        zt_rng_seed(&rng, 17);
        int32_t tok[24];
        for (int i = 0; i < 24; i++) tok[i] = (int32_t)(zt_rng_u64(&rng) % 96);
        gpt_model *m;
        assert_int_equal(gpt_model_create(&cfg, 1, &m), 0);
        assert_int_equal(gpt_forward(m, p, tok, NULL, 1, 24, NULL), 0);
        const float *full = gpt_logits(m);
        gpt_sampler *s;
        assert_int_equal(gpt_sampler_create(&cfg, &s), 0);
        for (int t = 0; t < 24; t++) {
            assert_int_equal(gpt_sampler_pos(s), t);
            const float *lg = gpt_sampler_feed(s, p, tok[t]);
            assert_non_null(lg);
            assert_int_equal(zt_compare_f32("logits", lg, full + (size_t)t * 96, 96, 1e-4, 1e-3),
                             0);
        }
        assert_null(gpt_sampler_feed(s, p, 1)); /* the context is full */
        gpt_sampler_reset(s);
        assert_int_equal(gpt_sampler_pos(s), 0);
        gpt_sampler_destroy(s);
        gpt_model_destroy(m);
        free(p);
        gpt_layout_free(&lay);
    }
    /* sampling: greedy picks the max, u near 1 picks the last non-negligible token */
    float lg[4] = {0.0f, 3.0f, 1.0f, -50.0f};
    assert_int_equal(gpt_sample_token(lg, 4, 0.0f, 0.5), 1);
    assert_int_equal(gpt_sample_token(lg, 4, 1.0f, 0.0), 0);
    assert_int_equal(gpt_sample_token(lg, 4, 1.0f, 0.9999), 2);
}

static void test_half_matches_reference(void **state)
{
    (void)state;
    /* every fp16 / bf16 bit pattern widens identically and round-trips */
    for (uint32_t h = 0; h < 65536; h++) {
        float a = gpt_f16_to_f32((uint16_t)h), b = zoff_f16_to_f32((uint16_t)h);
        assert_memory_equal(&a, &b, sizeof a);
        assert_int_equal(gpt_f32_to_f16(a), zoff_f32_to_f16(a));
        float c = gpt_bf16_to_f32((uint16_t)h), d = zoff_bf16_to_f32((uint16_t)h);
        assert_memory_equal(&c, &d, sizeof c);
        assert_int_equal(gpt_f32_to_bf16(c), zoff_f32_to_bf16(c));
        if (!isnan(a)) assert_int_equal(gpt_f32_to_f16(a), h);
        if (!isnan(c)) assert_int_equal(gpt_f32_to_bf16(c), h);
    }
    /* random fp32 bit patterns (all exponents: subnormals, overflow, ties) */
    zt_rng rng;
    zt_rng_seed(&rng, 3);
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)zt_rng_u64(&rng);
        if (i & 1) u &= 0xffffe000u | (uint32_t)(zt_rng_u64(&rng) & 0x1000u); /* exact ties */
        float f = zoff_bits_f32(u);
        if (gpt_f32_to_f16(f) != zoff_f32_to_f16(f) || gpt_f32_to_bf16(f) != zoff_f32_to_bf16(f))
            fail_msg("bits 0x%08x: f16 %04x vs %04x, bf16 %04x vs %04x", u, gpt_f32_to_f16(f),
                     zoff_f32_to_f16(f), gpt_f32_to_bf16(f), zoff_f32_to_bf16(f));
    }
}

static void test_tokenizer(void **state)
{
    (void)state;
    assert_int_equal(gpt_encode_byte('\n'), 0);
    for (int c = 32; c <= 126; c++) {
        int32_t t = gpt_encode_byte((unsigned char)c);
        assert_true(t >= 1 && t < GPT_VOCAB);
        assert_int_equal(gpt_decode_token(t), c);
    }
    assert_int_equal(gpt_encode_byte(0xe2), gpt_encode_byte('?'));
    assert_int_equal(gpt_decode_token(GPT_VOCAB), '?');
}

static void test_config_check(void **state)
{
    (void)state;
    char err[128] = "";
    gpt_config c = tiny_tied;
    assert_int_equal(gpt_config_check(&c, err, sizeof err), 0);
    c.heads = 3;
    assert_int_equal(gpt_config_check(&c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "model.heads"));
    c = tiny_tied;
    c.layers = 0;
    assert_int_equal(gpt_config_check(&c, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "model.layers"));
    gpt_model *m = NULL;
    assert_int_equal(gpt_model_create(&c, 1, &m), -EINVAL);
    /* a token out of range is refused */
    assert_int_equal(gpt_model_create(&tiny_tied, 1, &m), 0);
    gpt_layout lay;
    assert_int_equal(gpt_layout_init(&lay, &tiny_tied), 0);
    float *p = calloc(lay.total_numel, sizeof(float));
    int32_t tok[2] = {0, 13};
    float loss;
    assert_int_equal(gpt_forward(m, p, tok, NULL, 1, 2, &loss), -EINVAL);
    assert_int_equal(gpt_backward(m, p, p, 1.0f, NULL, NULL), -EINVAL); /* no forward yet */
    free(p);
    gpt_layout_free(&lay);
    gpt_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_untied),
        cmocka_unit_test(test_grad_tied),
        cmocka_unit_test(test_stage_order),
        cmocka_unit_test(test_loss_scale_exact),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_sampler_matches_forward),
        cmocka_unit_test(test_half_matches_reference),
        cmocka_unit_test(test_tokenizer),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
