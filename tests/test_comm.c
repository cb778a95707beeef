/*
 * test_comm.c — the collective layer (comm/comm.h) under mpirun with 2 and 3 ranks (MPI backend,
 * host buffers). Checks: the launcher's rank/size from the environment agree with MPI; reduce-
 * scatter and all-reduce (fp32, fp64, int64, fp16; SUM, AVG, MAX; counts that do not divide by
 * the rank count; in place) equal a local reduction in rank order bit for bit and are identical
 * on every rank; all-gather and per-rank-count all-gather (a rank with nothing to send included);
 * broadcast from the last rank; barrier; the statistics; and the watchdog: a collective that a
 * peer does not join within the timeout returns -ETIMEDOUT naming this rank, the operation, step,
 * phase and bucket, and the communicator refuses further calls; reduce-scatter with per-rank
 * counts (zcomm_reduce_scatterv) against the same rank-order reference. Then the callback backend
 * (the caller's all_gather; here one that forwards to the MPI communicator, as zoff.torch
 * forwards to torch.distributed) passes the same reduction, gather and broadcast checks with the
 * same bits, and a failing all_gather makes the call fail and the communicator unusable.
 * Run alone (one rank) it checks the self backend. Skips (77) only when this build has no MPI and
 * the launcher started several ranks, or MPI cannot start.
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "common/half.h"
#include "zt.h"

static zcomm *g_c;
static int g_rank, g_size;

/* The value rank r contributes at element i: distinct, not exactly summable in any order. */
static float val32(int r, size_t i)
{
    return (float)(0.1 * (double)(r + 1) + 1e-3 * (double)i + 1.0 / (double)(7 + r + i % 13));
}

static void test_env_ranks(void **state)
{
    (void)state;
    int r, n, lr, ln;
    int found = zcomm_env_ranks(&r, &n, &lr, &ln);
    if (g_size > 1) {
        assert_int_equal(found, 1);
        assert_int_equal(r, g_rank);
        assert_int_equal(n, g_size);
    }
    assert_true(zcomm_local_rank(g_c) >= 0 && zcomm_local_rank(g_c) < zcomm_local_size(g_c));
}

static void test_reduce_scatter_f32(void **state)
{
    (void)state;
    const size_t count = 1037;
    size_t n = (size_t)g_size;
    float *send = zt_malloc(n * count * sizeof(float));
    float *recv = zt_malloc(count * sizeof(float));
    float *ref = zt_malloc(count * sizeof(float));
    for (size_t i = 0; i < n * count; i++) send[i] = val32(g_rank, i);
    for (int op = ZCOMM_SUM; op <= ZCOMM_MAX; op++) {
        assert_int_equal(
            zcomm_reduce_scatter(g_c, send, recv, count, ZCOMM_F32, (zcomm_op)op, NULL), 0);
        for (size_t i = 0; i < count; i++) {
            size_t gi = (size_t)g_rank * count + i;
            float a = val32(0, gi);
            for (int r = 1; r < g_size; r++) {
                float v = val32(r, gi);
                a = op == ZCOMM_MAX ? (v > a ? v : a) : a + v;
            }
            ref[i] = op == ZCOMM_AVG ? a / (float)g_size : a;
        }
        assert_int_equal(memcmp(recv, ref, count * sizeof(float)), 0);
    }
    free(send);
    free(recv);
    free(ref);
}

static void test_reduce_scatterv(void **state)
{
    (void)state;
    size_t n = (size_t)g_size, counts[8], displs[8], total = 0;
    for (size_t r = 0; r < n; r++) { /* uneven, one rank (the second) with nothing */
        counts[r] = r == 1 ? 0 : 100 + 37 * r;
        displs[r] = total + 3; /* gaps between the pieces */
        total = displs[r] + counts[r];
    }
    float *send = zt_malloc(total * sizeof(float));
    float *recv = zt_malloc((counts[g_rank] + 1) * sizeof(float));
    for (size_t i = 0; i < total; i++) send[i] = val32(g_rank, i);
    for (int op = ZCOMM_SUM; op <= ZCOMM_MAX; op++) {
        assert_int_equal(
            zcomm_reduce_scatterv(g_c, send, recv, counts, displs, ZCOMM_F32, (zcomm_op)op, NULL),
            0);
        for (size_t i = 0; i < counts[g_rank]; i++) {
            size_t gi = displs[g_rank] + i;
            float a = val32(0, gi);
            for (int r = 1; r < g_size; r++) {
                float v = val32(r, gi);
                a = op == ZCOMM_MAX ? (v > a ? v : a) : a + v;
            }
            float want = op == ZCOMM_AVG ? a / (float)g_size : a;
            assert_true(memcmp(&recv[i], &want, sizeof want) == 0);
        }
    }
    free(send);
    free(recv);
}

/* The callback backend's transport in this test: the MPI communicator's byte all-gather. */
static zcomm *g_mpi;
static int g_fail_gather;
static int fwd_gather(void *user, const void *send, void *recv, size_t bytes)
{
    (void)user;
    if (g_fail_gather) return -5;
    return zcomm_all_gather(g_mpi, send, recv, bytes, ZCOMM_U8, NULL) < 0 ? -1 : 0;
}

static void test_callback_fails(void **state)
{
    (void)state;
    zcomm_callbacks cb = {.rank = g_rank,
                          .size = g_size,
                          .local_rank = -1,
                          .local_size = 0,
                          .all_gather = fwd_gather};
    zcomm_config cfg;
    zcomm_config_default(&cfg);
    cfg.backend = ZCOMM_CALLBACK;
    cfg.callbacks = &cb;
    zcomm *c = NULL;
    assert_int_equal(zcomm_create(&cfg, &c), 0);
    assert_int_equal(zcomm_local_rank(c), g_rank);
    g_fail_gather = 1;
    float x = 1.0f;
    assert_true(zcomm_all_reduce(c, &x, &x, 1, ZCOMM_F32, ZCOMM_SUM, NULL) < 0);
    assert_non_null(strstr(zoff__last_error_tls(), "all_gather failed (-5)"));
    g_fail_gather = 0;
    assert_int_equal(zcomm_barrier(c), ZOFF_ESTATE); /* unusable */
    zcomm_destroy(c);
    /* no table: refused */
    cfg.callbacks = NULL;
    assert_int_equal(zcomm_create(&cfg, &c), ZOFF_EINVAL);
}

static void test_all_reduce(void **state)
{
    (void)state;
    const size_t count = 1001; /* not a multiple of 2 or 3 */
    double *d = zt_malloc(count * sizeof(double));
    double *all = zt_malloc((size_t)g_size * count * sizeof(double));
    for (size_t i = 0; i < count; i++)
        d[i] = (double)val32(g_rank, i) * 1e-3 + 1.0 / (1.0 + (double)i);
    /* in place, SUM: equals the rank-order sum, and every rank holds the same bits */
    assert_int_equal(zcomm_all_reduce(g_c, d, d, count, ZCOMM_F64, ZCOMM_SUM, NULL), 0);
    for (size_t i = 0; i < count; i++) {
        double a = 0;
        for (int r = 0; r < g_size; r++) {
            double v = (double)val32(r, i) * 1e-3 + 1.0 / (1.0 + (double)i);
            a = r == 0 ? v : a + v;
        }
        assert_true(d[i] == a);
    }
    assert_int_equal(zcomm_all_gather(g_c, d, all, count, ZCOMM_F64, NULL), 0);
    for (int r = 1; r < g_size; r++)
        assert_int_equal(memcmp(all, all + (size_t)r * count, count * sizeof(double)), 0);

    int64_t iv[5] = {g_rank, 10 * g_rank, -g_rank, 7, (int64_t)1 << 40};
    assert_int_equal(zcomm_all_reduce(g_c, iv, iv, 5, ZCOMM_I64, ZCOMM_SUM, NULL), 0);
    int64_t s = (int64_t)g_size * (g_size - 1) / 2;
    assert_true(iv[0] == s && iv[1] == 10 * s && iv[2] == -s && iv[3] == 7 * g_size);
    assert_true(iv[4] == ((int64_t)1 << 40) * g_size);

    float mx[3] = {(float)g_rank, -(float)g_rank, g_rank == 0 ? INFINITY : 1.0f};
    assert_int_equal(zcomm_all_reduce(g_c, mx, mx, 3, ZCOMM_F32, ZCOMM_MAX, NULL), 0);
    assert_true(mx[0] == (float)(g_size - 1) && mx[1] == 0.0f && isinf(mx[2]));

    /* fp16: accumulated in fp32 in rank order, rounded once */
    uint16_t h[64], hr[64];
    for (int i = 0; i < 64; i++) h[i] = zoff_f32_to_f16(val32(g_rank, (size_t)i));
    assert_int_equal(zcomm_all_reduce(g_c, h, hr, 64, ZCOMM_F16, ZCOMM_AVG, NULL), 0);
    for (int i = 0; i < 64; i++) {
        float a = 0;
        for (int r = 0; r < g_size; r++) {
            float v = zoff_f16_to_f32(zoff_f32_to_f16(val32(r, (size_t)i)));
            a = r == 0 ? v : a + v;
        }
        assert_int_equal(hr[i], zoff_f32_to_f16(a / (float)g_size));
    }
    free(d);
    free(all);
}

static void test_gathers_broadcast(void **state)
{
    (void)state;
    size_t n = (size_t)g_size;
    /* equal counts */
    int64_t mine[3] = {g_rank, g_rank * 2, g_rank * 3};
    int64_t *all = zt_malloc(3 * n * sizeof(int64_t));
    assert_int_equal(zcomm_all_gather(g_c, mine, all, 3, ZCOMM_I64, NULL), 0);
    for (size_t r = 0; r < n; r++)
        for (int k = 0; k < 3; k++) assert_true(all[r * 3 + (size_t)k] == (int64_t)r * (k + 1));
    /* per-rank counts in bytes, rank 1 sends nothing */
    size_t counts[8], displs[8], off = 0;
    for (size_t r = 0; r < n; r++) {
        counts[r] = r == 1 ? 0 : 100 + 37 * r;
        displs[r] = off;
        off += counts[r];
    }
    uint8_t *buf = zt_malloc(off);
    memset(buf, 0xEE, off);
    for (size_t i = 0; i < counts[g_rank]; i++)
        buf[displs[g_rank] + i] = (uint8_t)(g_rank * 50 + i);
    assert_int_equal(zcomm_all_gatherv_inplace(g_c, buf, counts, displs, ZCOMM_U8, NULL), 0);
    for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < counts[r]; i++)
            assert_int_equal(buf[displs[r] + i], (uint8_t)(r * 50 + i));
    /* broadcast from the last rank */
    float b[17];
    for (int i = 0; i < 17; i++) b[i] = g_rank == g_size - 1 ? (float)i * 0.5f : -1.0f;
    assert_int_equal(zcomm_broadcast(g_c, b, 17, ZCOMM_F32, g_size - 1, NULL), 0);
    for (int i = 0; i < 17; i++) assert_true(b[i] == (float)i * 0.5f);
    assert_int_equal(zcomm_barrier(g_c), 0);
    zcomm_stats st;
    zcomm_get_stats(g_c, &st);
    assert_true(st.ops >= 4);
    assert_int_equal(zcomm_broadcast(g_c, b, 1, ZCOMM_F32, g_size, NULL), ZOFF_EINVAL);
    free(all);
    free(buf);
}

/* A peer that does not join: rank 0 times out with the context in the message; the others join
 * late (their barrier completes once rank 0's pending request is progressed by its next call). */
static void test_watchdog(void **state)
{
    (void)state;
    if (g_size < 2) skip();
    zcomm_config cfg;
    zcomm_config_default(&cfg);
    cfg.backend = ZCOMM_MPI;
    cfg.timeout_ms = g_rank == 0 ? 300 : 60000;
    zcomm *w = NULL;
    assert_int_equal(zcomm_create(&cfg, &w), 0);
    if (g_rank == 0) {
        zcomm_set_context(w, 7, "test-phase", 3);
        uint64_t t0 = zoff__now_ns();
        zoff_status st = zcomm_barrier(w);
        uint64_t ms = (zoff__now_ns() - t0) / 1000000u;
        assert_int_equal(st, -ETIMEDOUT);
        assert_true(ms >= 300 && ms < 30000);
        const char *msg = zoff__last_error_tls();
        printf("watchdog said: %s\n", msg);
        assert_non_null(strstr(msg, "rank 0 of"));
        assert_non_null(strstr(msg, "barrier"));
        assert_non_null(strstr(msg, "step 7"));
        assert_non_null(strstr(msg, "phase 'test-phase'"));
        assert_non_null(strstr(msg, "bucket 3"));
        assert_int_equal(zcomm_barrier(w), ZOFF_ESTATE);
    } else {
        zoff__sleep_ns(1500000000ull);
        assert_int_equal(zcomm_barrier(w), 0);
    }
    assert_int_equal(zcomm_barrier(g_c), 0);
    zcomm_destroy(w);
}

int main(void)
{
    zcomm_config cfg;
    zcomm_config_default(&cfg);
    cfg.timeout_ms = 60000; /* a failing rank must not hang the others forever */
    int r, n, lr, ln;
    zcomm_env_ranks(&r, &n, &lr, &ln);
    zoff_status st = zcomm_create(&cfg, &g_c);
    if (st == ZOFF_EUNSUPPORTED) zt_skip_all("%s", zoff__last_error_tls());
    if (st < 0) {
        fprintf(stderr, "zcomm_create: %s\n", zoff__last_error_tls());
        return 1;
    }
    g_rank = zcomm_rank(g_c);
    g_size = zcomm_size(g_c);
    if (g_size > 8) zt_skip_all("test written for at most 8 ranks");
    printf("rank %d of %d, backend %s (local %d of %d)\n", g_rank, g_size,
           zcomm_backend_name(zcomm_kind(g_c)), zcomm_local_rank(g_c), zcomm_local_size(g_c));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_ranks),  cmocka_unit_test(test_reduce_scatter_f32),
        cmocka_unit_test(test_all_reduce), cmocka_unit_test(test_gathers_broadcast),
        cmocka_unit_test(test_watchdog),   cmocka_unit_test(test_reduce_scatterv),
    };
    int fails = cmocka_run_group_tests(tests, NULL, NULL);
    if (g_size > 1) { /* the callback backend over the MPI communicator: the same checks */
        g_mpi = g_c;
        zcomm_callbacks cb = {.rank = g_rank,
                              .size = g_size,
                              .local_rank = -1,
                              .local_size = 0,
                              .all_gather = fwd_gather};
        zcomm_config cc;
        zcomm_config_default(&cc);
        cc.backend = ZCOMM_CALLBACK;
        cc.callbacks = &cb;
        if (zcomm_create(&cc, &g_c) < 0) {
            fprintf(stderr, "zcomm_create(callback): %s\n", zoff__last_error_tls());
            return 1;
        }
        assert_string_equal(zcomm_backend_name(zcomm_kind(g_c)), "callback");
        const struct CMUnitTest cbt[] = {
            cmocka_unit_test(test_reduce_scatter_f32), cmocka_unit_test(test_reduce_scatterv),
            cmocka_unit_test(test_all_reduce),         cmocka_unit_test(test_gathers_broadcast),
            cmocka_unit_test(test_callback_fails),
        };
        fails += cmocka_run_group_tests_name("callback", cbt, NULL, NULL);
        zcomm_destroy(g_c);
        g_c = g_mpi;
    }
    zcomm_destroy(g_c);
    return fails ? 1 : 0;
}
