/*
 * test_state_runtime.c — compact optimizer state and Lion / Adagrad through the runtime
 * (zoff_create .. zoff_step .. zoff_save / zoff_load) on the sim device.
 *
 * It checks, on the tier given in argv[1] (cpu | nvme):
 *  - for every optimizer (Adam, Lion, Adagrad with initial_accumulator_value and lr_decay) and
 *    every moment format (fp32, bf16, q8): 6 steps of the runtime over parameters that span
 *    partitions and tiles equal, bit for bit, the scalar reference kernel run on one host buffer
 *    per parameter (masters, and moments read back with zoff_get_state);
 *  - the state bytes table: zoff_plan's NVMe bytes for q8 Adam are <= 0.55 x fp32's, bf16 8/12;
 *    parameters start q8 blocks;
 *  - checkpoints: q8 -> save -> load into an fp32 runtime gives the decoded q8 moments exactly;
 *    fp32 -> save -> load into q8 re-encodes to the same codes (bit-identical moments); a
 *    checkpoint of another optimizer or of an unknown state format is a clear error;
 *  - bad input: q8 with a partition_numel or tile_numel that is not a multiple of 256, unknown
 *    state formats and optimizer types in the JSON config, Lion/Adagrad JSON defaults.
 */
#include <string.h>

#include "cpu_adam/adam.h"
#include "runtime/ckpt.h"
#include "test_runtime_util.h"

static int g_nvme;

#define NP 3
static const size_t k_numel[NP] = {3000, 700, 2100};

static void cfg_for(zoff_config *c, int optim, int fmt, char **dir)
{
    tr_config(c, ZOFF_DTYPE_F32);
    c->partition_numel = 1024;
    c->tile_numel = 512;
    c->optimizer_type = optim;
    c->state_format = fmt;
    c->initial_accumulator_value = optim == ZOFF_OPTIM_ADAGRAD ? 0.1f : 0.0f;
    c->lr_decay = optim == ZOFF_OPTIM_ADAGRAD ? 0.01f : 0.0f;
    if (optim == ZOFF_OPTIM_LION) c->optimizer.beta2 = 0.99f;
    *dir = g_nvme ? tr_nvme(c, 0.34f) : NULL;
}

/* Host reference: one state buffer per parameter. */
typedef struct href {
    void *buf[NP];
    zadam_tensor t[NP];
} href;

static void href_init(href *h, const zoff_config *c, uint64_t seed)
{
    zt_rng r;
    zt_rng_seed(&r, seed);
    for (int i = 0; i < NP; i++) {
        const size_t n = k_numel[i];
        const size_t bytes =
            zstate_bytes((zopt_kind)c->optimizer_type, (zstate_fmt)c->state_format, n);
        assert_int_equal(posix_memalign(&h->buf[i], 64, bytes), 0);
        memset(h->buf[i], 0, bytes);
        memset(&h->t[i], 0, sizeof h->t[i]);
        zstate_view((zopt_kind)c->optimizer_type, (zstate_fmt)c->state_format, h->buf[i], n,
                    &h->t[i]);
        h->t[i].n = n;
        zt_fill_normal(&r, h->t[i].param, n, 0.5f); /* as tr_open */
        zstate_init_moments((zopt_kind)c->optimizer_type, &h->t[i], n,
                            c->initial_accumulator_value);
    }
}

static void href_free(href *h)
{
    for (int i = 0; i < NP; i++) free(h->buf[i]);
}

static void href_step(href *h, const zoff_config *c, float *const *g, int64_t step)
{
    zadam_hparams hp = {.lr = c->optimizer.lr,
                        .beta1 = c->optimizer.beta1,
                        .beta2 = c->optimizer.beta2,
                        .eps = c->optimizer.eps,
                        .weight_decay = c->optimizer.weight_decay,
                        .adamw = c->optimizer.adamw_mode,
                        .bias_correction = c->optimizer.bias_correction,
                        .step = step,
                        .grad_scale = 1.0f,
                        .optim = c->optimizer_type,
                        .lr_decay = c->lr_decay};
    for (int i = 0; i < NP; i++) {
        h->t[i].grad = g[i];
        h->t[i].grad_dtype = ZOFF_DTYPE_F32;
        (void)zopt_step_scalar(&hp, &h->t[i]);
    }
}

/* Runtime masters and moments against the host reference, bit for bit. */
static void compare(tr_model *m, const href *h, const zoff_config *c)
{
    for (int i = 0; i < NP; i++) {
        const size_t n = k_numel[i];
        float *p = zt_malloc(n * 4), *e = zt_malloc(n * 4), *v = zt_malloc(n * 4);
        float *re = zt_malloc(n * 4), *rv = zt_malloc(n * 4);
        assert_int_equal(zoff_get_master(m->rt, m->id[i], p), 0);
        assert_int_equal(zoff_get_state(m->rt, m->id[i], e, v), 0);
        const zadam_tensor *t = &h->t[i];
        const zstate_fmt f = (zstate_fmt)c->state_format;
        memset(re, 0, n * 4);
        memset(rv, 0, n * 4);
        if (zopt_has_m((zopt_kind)c->optimizer_type))
            zstate_decode(f, 0, f == ZSTATE_FP32 ? (void *)t->exp_avg : t->m_state, t->m_absmax, n,
                          re);
        if (zopt_has_v((zopt_kind)c->optimizer_type))
            zstate_decode(f, 1, f == ZSTATE_FP32 ? (void *)t->exp_avg_sq : t->v_state, t->v_absmax,
                          n, rv);
        assert_int_equal(zt_compare_f32("master", p, t->param, n, 0, 0), 0);
        assert_int_equal(zt_compare_f32("exp_avg", e, re, n, 0, 0), 0);
        assert_int_equal(zt_compare_f32("exp_avg_sq", v, rv, n, 0, 0), 0);
        free(p);
        free(e);
        free(v);
        free(re);
        free(rv);
    }
}

static void run_steps(tr_model *m, href *h, const zoff_config *c, int steps, uint64_t seed)
{
    zt_rng r;
    zt_rng_seed(&r, seed);
    float *g[NP], *gq[NP];
    for (int i = 0; i < NP; i++) {
        g[i] = zt_malloc(k_numel[i] * 4);
        gq[i] = zt_malloc(k_numel[i] * 4);
    }
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < NP; i++) zt_fill_normal(&r, g[i], k_numel[i], s == 2 ? 1e-4f : 1.0f);
        tr_backward(m, g, 1.0f, gq, 0);
        zoff_step_result res;
        assert_int_equal(zoff_step(m->rt, NULL, &res), 0);
        assert_int_equal(res.skipped, 0);
        if (h) href_step(h, c, gq, res.step);
    }
    for (int i = 0; i < NP; i++) {
        free(g[i]);
        free(gq[i]);
    }
}

static void test_vs_reference(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++)
        for (int f = 0; f < 3; f++) {
            zoff_config c;
            char *dir;
            cfg_for(&c, k, f, &dir);
            tr_model m;
            assert_int_equal(tr_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F32, 11), 0);
            if (f == ZOFF_STATE_Q8)
                for (int i = 0; i < NP; i++)
                    assert_int_equal(m.rt->params[i].flat_off % ZSTATE_Q8_BLOCK, 0);
            href h;
            href_init(&h, &c, 11);
            compare(&m, &h, &c); /* the initial state (Adagrad's accumulator start value) */
            run_steps(&m, &h, &c, 6, 100 + (uint64_t)(k * 3 + f));
            compare(&m, &h, &c);
            printf("%s / %s: 6 steps bit-identical to the scalar reference\n",
                   zopt_kind_name((zopt_kind)k), zstate_fmt_name((zstate_fmt)f));
            href_free(&h);
            tr_close(&m);
            if (dir) {
                zt_rmtree(dir);
                free(dir);
            }
        }
}

static void test_plan_bytes(void **state)
{
    (void)state;
    zoff_config c;
    zoff_config_default(&c);
    c.tier = ZOFF_TIER_NVME;
    c.device = ZOFF_DEVICE_SIM;
    snprintf(c.nvme_path, sizeof c.nvme_path, "/tmp");
    zoff_plan_report r32, r8, r16;
    r32.struct_size = r8.struct_size = r16.struct_size = sizeof r32;
    const size_t params = (size_t)256 << 20;
    assert_int_equal(zoff_plan(&c, params, &r32), 0);
    c.state_format = ZOFF_STATE_Q8;
    assert_int_equal(zoff_plan(&c, params, &r8), 0);
    c.state_format = ZOFF_STATE_BF16;
    assert_int_equal(zoff_plan(&c, params, &r16), 0);
    printf("nvme bytes: fp32 %llu q8 %llu (%.4f) bf16 %llu\n", (unsigned long long)r32.nvme_bytes,
           (unsigned long long)r8.nvme_bytes, (double)r8.nvme_bytes / (double)r32.nvme_bytes,
           (unsigned long long)r16.nvme_bytes);
    assert_true((double)r8.nvme_bytes <= 0.55 * (double)r32.nvme_bytes);
    assert_true(r16.nvme_bytes * 12 == r32.nvme_bytes * 8);
    assert_true(r8.pinned_bytes < r32.pinned_bytes);
    c.optimizer_type = ZOFF_OPTIM_LION;
    c.state_format = ZOFF_STATE_FP32;
    assert_int_equal(zoff_plan(&c, params, &r8), 0);
    assert_true(r8.nvme_bytes * 12 == r32.nvme_bytes * 8);
}

/* Loads `dir` into a fresh runtime of (optim, fmt); returns the zoff status. */
static zoff_status load_into(const char *ckpt, int optim, int fmt, tr_model *m, char **dir)
{
    zoff_config c;
    cfg_for(&c, optim, fmt, dir);
    assert_int_equal(tr_open(m, &c, NP, k_numel, ZOFF_DTYPE_F32, 11), 0);
    return zoff_load(m->rt, ckpt);
}

static void get_all(tr_model *m, float **out)
{
    size_t total = 0;
    for (int i = 0; i < NP; i++) total += k_numel[i] * 3;
    float *a = zt_malloc(total * 4), *p = a;
    for (int i = 0; i < NP; i++) {
        assert_int_equal(zoff_get_master(m->rt, m->id[i], p), 0);
        assert_int_equal(zoff_get_state(m->rt, m->id[i], p + k_numel[i], p + 2 * k_numel[i]), 0);
        p += 3 * k_numel[i];
    }
    *out = a;
}

static void test_ckpt_convert(void **state)
{
    (void)state;
    size_t total = 0;
    for (int i = 0; i < NP; i++) total += k_numel[i] * 3;
    char *root = zt_mkdtemp("state-ckpt");
    char q8dir[512], f32dir[512], bad[512];
    snprintf(q8dir, sizeof q8dir, "%s/q8", root);
    snprintf(f32dir, sizeof f32dir, "%s/f32", root);
    snprintf(bad, sizeof bad, "%s/bad", root);

    /* a q8 run */
    zoff_config c;
    char *d0, *d1, *d2;
    cfg_for(&c, ZOFF_OPTIM_ADAM, ZOFF_STATE_Q8, &d0);
    tr_model m;
    assert_int_equal(tr_open(&m, &c, NP, k_numel, ZOFF_DTYPE_F32, 11), 0);
    run_steps(&m, NULL, &c, 3, 7);
    float *q8state;
    get_all(&m, &q8state);
    assert_int_equal(zoff_save(m.rt, q8dir), 0);
    tr_close(&m);

    /* into fp32: the decoded values exactly */
    assert_int_equal(load_into(q8dir, ZOFF_OPTIM_ADAM, ZOFF_STATE_FP32, &m, &d1), 0);
    float *f32state;
    get_all(&m, &f32state);
    assert_int_equal(zt_compare_f32("q8 -> fp32", f32state, q8state, total, 0, 0), 0);
    assert_int_equal(zoff_save(m.rt, f32dir), 0);
    tr_close(&m);

    /* back into q8: the same codes (bit-identical decoded moments) */
    assert_int_equal(load_into(f32dir, ZOFF_OPTIM_ADAM, ZOFF_STATE_Q8, &m, &d2), 0);
    float *back;
    get_all(&m, &back);
    assert_int_equal(zt_compare_f32("fp32 -> q8", back, q8state, total, 0, 0), 0);
    tr_close(&m);
    free(back);
    free(f32state);

    /* another optimizer: refused */
    char *d3;
    assert_int_equal(load_into(q8dir, ZOFF_OPTIM_LION, ZOFF_STATE_Q8, &m, &d3), ZOFF_EMISMATCH);
    assert_non_null(strstr(zoff_last_error(m.rt), "lion"));
    tr_close(&m);

    /* an unknown state format: a clear error */
    zckpt_tensor *ts = calloc(NP * 3, sizeof *ts);
    static const char *const suf[3] = {".master", ".exp_avg", ".exp_avg_sq"};
    for (int i = 0; i < NP; i++)
        for (int j = 0; j < 3; j++) {
            snprintf(ts[i * 3 + j].name, sizeof ts[0].name, "layer%d.w%s", i, suf[j]);
            ts[i * 3 + j].numel = k_numel[i];
        }
    zckpt_writer *w = NULL;
    assert_int_equal(zckpt_writer_open(bad, ts, NP * 3, &w), 0);
    const float *p = q8state;
    for (int i = 0; i < NP; i++)
        for (int j = 0; j < 3; j++) {
            assert_int_equal(zckpt_writer_write(w, (size_t)(i * 3 + j), p, k_numel[i]), 0);
            p += k_numel[i];
        }
    zckpt_meta *meta = calloc(1, sizeof *meta);
    meta->step = 3;
    meta->loss_scale = 1.0f;
    meta->ngroups = 1;
    zoff_group_config_default(&meta->groups[0]);
    snprintf(meta->optimizer, sizeof meta->optimizer, "adam");
    snprintf(meta->state_format, sizeof meta->state_format, "q4");
    assert_int_equal(zckpt_writer_commit(w, meta), 0);
    char *d4;
    assert_int_equal(load_into(bad, ZOFF_OPTIM_ADAM, ZOFF_STATE_Q8, &m, &d4), ZOFF_EMISMATCH);
    assert_non_null(strstr(zoff_last_error(m.rt), "unknown optimizer state format 'q4'"));
    tr_close(&m);
    free(meta);
    free(ts);
    free(q8state);
    char *dirs[] = {d0, d1, d2, d3, d4};
    for (int i = 0; i < 5; i++)
        if (dirs[i]) {
            zt_rmtree(dirs[i]);
            free(dirs[i]);
        }
    zt_rmtree(root);
    free(root);
}

static void test_bad_config(void **state)
{
    (void)state;
    zoff_config c;
    zoff_runtime *rt = NULL;
    tr_config(&c, ZOFF_DTYPE_F32);
    c.state_format = ZOFF_STATE_Q8;
    c.partition_numel = 1000;
    assert_int_equal(zoff_create(&c, &rt), ZOFF_ECONFIG);
    assert_non_null(strstr(zoff_last_error(NULL), "multiple of the q8 block"));
    c.partition_numel = 1024;
    c.tile_numel = 100;
    assert_int_equal(zoff_create(&c, &rt), ZOFF_ECONFIG);
    assert_non_null(strstr(zoff_last_error(NULL), "tile_numel"));
    c.tile_numel = 256;
    c.state_format = 7;
    assert_int_equal(zoff_create(&c, &rt), ZOFF_ECONFIG);

    zoff_config j;
    assert_int_equal(zoff_config_from_json_string(&j, "{\"zoff\": {\"state_format\": \"q4\"}}"),
                     ZOFF_ECONFIG);
    assert_non_null(strstr(zoff_last_error(NULL), "state_format"));
    assert_int_equal(zoff_config_from_json_string(&j, "{\"optimizer\": {\"type\": \"SGD\"}}"),
                     ZOFF_ECONFIG);
    assert_non_null(strstr(zoff_last_error(NULL), "Lion"));
    assert_int_equal(zoff_config_from_json_string(
                         &j, "{\"optimizer\": {\"type\": \"Lion\", \"params\": {\"lr\": 3e-4}},"
                             " \"zoff\": {\"state_format\": \"q8\"}}"),
                     0);
    assert_int_equal(j.optimizer_type, ZOFF_OPTIM_LION);
    assert_int_equal(j.state_format, ZOFF_STATE_Q8);
    assert_true(j.optimizer.beta2 == 0.99f && j.optimizer.weight_decay == 0.0f);
    assert_true(j.optimizer.lr == 3e-4f);
    assert_int_equal(zoff_config_from_json_string(
                         &j,
                         "{\"optimizer\": {\"type\": \"Adagrad\", \"params\": {\"lr_decay\": 0.01, "
                         "\"initial_accumulator_value\": 0.1}}}"),
                     0);
    assert_int_equal(j.optimizer_type, ZOFF_OPTIM_ADAGRAD);
    assert_true(j.lr_decay == 0.01f && j.initial_accumulator_value == 0.1f);
    assert_true(j.optimizer.eps == 1e-10f && j.optimizer.lr == 1e-2f);
    assert_int_equal(zoff_config_from_json_string(
                         &j, "{\"optimizer\": {\"type\": \"Adagrad\", \"params\": {\"lr_decay\": "
                             "-1}}}"),
                     ZOFF_ECONFIG);
}

int main(int argc, char **argv)
{
    g_nvme = argc > 1 && strcmp(argv[1], "nvme") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vs_reference),
        cmocka_unit_test(test_plan_bytes),
        cmocka_unit_test(test_ckpt_convert),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
