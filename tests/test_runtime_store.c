/*
 * test_runtime_store.c — the optimizer-state store (offload/store) on its own and under the
 * runtime:
 *  - sizes: resident / swapped partitions for cpu, nvme and ratio, slot count capped by the
 *    swapped partitions, bad arguments;
 *  - round trips: partitions written once, then passes over random orders and subsets (as the
 *    eager mode makes them) with 1, 2 and 3 slots read what the previous pass wrote;
 *  - an injected I/O error surfaces from the pass with its errno and a message, the pass ends
 *    cleanly and the next pass works;
 *  - with verify_crc a flipped byte in a swap file is ZOFF_ECORRUPT naming the key; under the
 *    runtime, in the DEFAULT config (verify_crc on by default), the next swap-in reports it with
 *    the swap file's path and offset, the step fails with it and the runtime refuses further
 *    steps, naming the cause.
 */
#include "test_runtime_util.h"

static void test_sizes(void **state)
{
    (void)state;
    zstore_sizes s;
    assert_int_equal(zstore_compute_sizes(10000, 1000, ZOFF_TIER_CPU, 0.0f, 4, &s), 0);
    assert_int_equal(s.nparts, 10);
    assert_int_equal(s.resident_parts, 10);
    assert_int_equal(s.slots, 0);
    assert_int_equal(zstore_compute_sizes(10001, 1000, ZOFF_TIER_NVME, 0.0f, 4, &s), 0);
    assert_int_equal(s.nparts, 11);
    assert_int_equal(s.swapped_parts, 11);
    assert_int_equal(s.slots, 4);
    assert_int_equal(s.swap_bytes, 10001 * 12);
    assert_int_equal(zstore_compute_sizes(10000, 1000, ZOFF_TIER_NVME, 0.85f, 4, &s), 0);
    assert_int_equal(s.resident_parts, 8);
    assert_int_equal(s.slots, 2); /* only two swapped partitions */
    assert_int_equal(zstore_compute_sizes(10000, 0, ZOFF_TIER_CPU, 0.0f, 4, &s), ZOFF_EINVAL);
    assert_int_equal(zstore_compute_sizes(10000, 10, ZOFF_TIER_NVME, 1.5f, 4, &s), ZOFF_EINVAL);
    assert_int_equal(zstore_compute_sizes(10000, 10, ZOFF_TIER_NVME, 0.0f, 0, &s), ZOFF_EINVAL);
}

typedef struct fixture {
    char *dir;
    zarena *arena;
    zstore *store;
} fixture;

static void fx_open(fixture *f, uint64_t numel, size_t pn, float ratio, int slots, int crc)
{
    f->dir = zt_mkdtemp("store");
    assert_non_null(f->dir);
    zstore_sizes sz;
    assert_int_equal(zstore_compute_sizes(numel, pn, ZOFF_TIER_NVME, ratio, slots, &sz), 0);
    zarena_config ac = {.bytes = sz.resident_bytes + sz.pool_bytes + 4096,
                        .numa_node = -1,
                        .pin = 0,
                        .name = "test-store"};
    assert_int_equal(zarena_create(&ac, &f->arena), 0);
    zswap_config sc = {.paths = f->dir, .odirect = -1, .verify_crc = crc};
    zstore_config c = {.numel = numel,
                       .partition_numel = pn,
                       .tier = ZOFF_TIER_NVME,
                       .ratio = ratio,
                       .buffer_count = slots,
                       .arena = f->arena,
                       .swap = &sc};
    zoff_status st = zstore_create(&c, &f->store);
    if (st) fprintf(stderr, "zstore_create: %s\n", zoff__last_error_tls());
    assert_int_equal(st, 0);
}

static void fx_close(fixture *f)
{
    zstore_destroy(f->store);
    zarena_destroy(f->arena);
    zt_rmtree(f->dir);
    free(f->dir);
}

static float pattern(size_t part, size_t i, int gen)
{
    return (float)(part * 100000 + i) + 0.25f * (float)gen;
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (int slots = 1; slots <= 3; slots++) {
        fixture f;
        const size_t pn = 1000, nparts = 9;
        fx_open(&f, pn * nparts - 17, pn, 0.3f, slots, 1);
        int gen[9] = {0};
        /* first pass writes generation 0 everywhere */
        assert_int_equal(zstore_pass_begin(f.store, NULL, nparts, ZSTORE_WRITE), 0);
        for (size_t k = 0; k < nparts; k++) {
            zstore_part p;
            assert_int_equal(zstore_pass_next(f.store, &p), 0);
            assert_int_equal(p.index, k);
            assert_int_equal(p.numel, zstore_part_numel(f.store, k));
            for (size_t i = 0; i < p.numel * 3; i++) p.master[i] = pattern(k, i, 0);
            assert_int_equal(zstore_pass_release(f.store), 0);
        }
        assert_int_equal(zstore_pass_end(f.store), 0);
        zt_rng r;
        zt_rng_seed(&r, (uint64_t)slots);
        for (int pass = 0; pass < 12; pass++) {
            size_t order[9], n = 0;
            for (size_t k = 0; k < nparts; k++)
                if (zt_rng_uniform(&r) < 0.7) order[n++] = k;
            for (size_t i = n; i > 1; i--) { /* shuffle */
                size_t j = (size_t)(zt_rng_u64(&r) % i), t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
            }
            assert_int_equal(zstore_pass_begin(f.store, order, n, ZSTORE_READ | ZSTORE_WRITE), 0);
            for (size_t i = 0; i < n; i++) {
                zstore_part p;
                assert_int_equal(zstore_pass_next(f.store, &p), 0);
                size_t k = order[i];
                assert_int_equal(p.index, k);
                for (size_t e = 0; e < p.numel * 3; e++)
                    if (p.master[e] != pattern(k, e, gen[k])) {
                        fprintf(stderr, "slots %d pass %d part %zu elem %zu: %g expected %g\n",
                                slots, pass, k, e, (double)p.master[e],
                                (double)pattern(k, e, gen[k]));
                        fail();
                    }
                gen[k]++;
                for (size_t e = 0; e < p.numel * 3; e++) p.master[e] = pattern(k, e, gen[k]);
                assert_int_equal(zstore_pass_release(f.store), 0);
            }
            assert_int_equal(zstore_pass_end(f.store), 0);
        }
        /* misuse */
        assert_int_equal(zstore_pass_next(f.store, NULL), ZOFF_ESTATE);
        assert_int_equal(zstore_pass_release(f.store), ZOFF_ESTATE);
        zstore_stats st;
        zstore_get_stats(f.store, &st);
        assert_true(st.read_bytes > 0 && st.write_bytes > st.read_bytes);
        fx_close(&f);
    }
}

static void test_io_error(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 6000, 1000, 0.0f, 3, 0);
    assert_int_equal(zstore_pass_begin(f.store, NULL, 6, ZSTORE_WRITE), 0);
    for (size_t k = 0; k < 6; k++) {
        zstore_part p;
        assert_int_equal(zstore_pass_next(f.store, &p), 0);
        memset(p.master, 0, p.numel * 12);
        assert_int_equal(zstore_pass_release(f.store), 0);
    }
    assert_int_equal(zstore_pass_end(f.store), 0);
    zswap_fault fault = {.nth = 3, .error = -EIO};
    zswap_set_fault(zstore_swap(f.store), &fault);
    zoff_status st = zstore_pass_begin(f.store, NULL, 6, ZSTORE_READ | ZSTORE_WRITE);
    assert_int_equal(st, 0);
    zoff_status first = 0;
    for (size_t k = 0; k < 6 && !first; k++) {
        zstore_part p;
        first = zstore_pass_next(f.store, &p);
        if (!first) first = zstore_pass_release(f.store);
    }
    zoff_status end = zstore_pass_end(f.store);
    if (!first) first = end;
    assert_int_equal(first, -EIO);
    assert_true(strlen(zoff__last_error_tls()) > 0);
    /* the next pass works */
    assert_int_equal(zstore_pass_begin(f.store, NULL, 6, ZSTORE_READ), 0);
    for (size_t k = 0; k < 6; k++) {
        zstore_part p;
        assert_int_equal(zstore_pass_next(f.store, &p), 0);
        assert_int_equal(zstore_pass_release(f.store), 0);
    }
    assert_int_equal(zstore_pass_end(f.store), 0);
    fx_close(&f);
}

static void flip_byte(const char *path, uint64_t off)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
    fputc(c ^ 0x01, fp);
    fclose(fp);
}

static void test_crc_store(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, 5000, 1000, 0.0f, 3, 1);
    assert_int_equal(zstore_pass_begin(f.store, NULL, 5, ZSTORE_WRITE), 0);
    for (size_t k = 0; k < 5; k++) {
        zstore_part p;
        assert_int_equal(zstore_pass_next(f.store, &p), 0);
        for (size_t i = 0; i < p.numel * 3; i++) p.master[i] = pattern(k, i, 0);
        assert_int_equal(zstore_pass_release(f.store), 0);
    }
    assert_int_equal(zstore_pass_end(f.store), 0);
    const char *path = NULL;
    uint64_t off = 0;
    assert_int_equal(zswap_locate(zstore_swap(f.store), 3, &path, &off, NULL), 0);
    flip_byte(path, off + 100);
    assert_int_equal(zstore_pass_begin(f.store, NULL, 5, ZSTORE_READ), 0);
    zoff_status st = 0;
    for (size_t k = 0; k < 5 && !st; k++) {
        zstore_part p;
        st = zstore_pass_next(f.store, &p);
        if (!st) st = zstore_pass_release(f.store);
    }
    zoff_status e = zstore_pass_end(f.store);
    if (!st) st = e;
    assert_int_equal(st, ZOFF_ECORRUPT);
    fprintf(stderr, "corruption reported as: %s\n", zoff__last_error_tls());
    fx_close(&f);
}

static void test_crc_runtime(void **state)
{
    (void)state;
    zoff_config c;
    tr_config(&c, ZOFF_DTYPE_BF16);
    char *dir = tr_nvme(&c, 0.0f);
    assert_int_equal(c.verify_crc, 1); /* the default: corruption is caught without asking */
    tr_model m;
    static const size_t numel[2] = {2500, 1200};
    assert_int_equal(tr_open(&m, &c, 2, numel, ZOFF_DTYPE_BF16, 3), 0);
    tr_grads gr;
    tr_grads_init(&gr, &m);
    zt_rng r;
    zt_rng_seed(&r, 1);
    for (int i = 0; i < 2; i++) zt_fill_normal(&r, gr.g[i], numel[i], 0.01f);
    tr_backward(&m, gr.g, 1.0f, gr.gq, 0);
    zoff_step_result res = {.struct_size = sizeof res};
    assert_int_equal(zoff_step(m.rt, NULL, &res), 0);
    const char *path = NULL;
    uint64_t off = 0;
    assert_int_equal(zswap_locate(zstore_swap(m.rt->store), 2, &path, &off, NULL), 0);
    flip_byte(path, off + 5);
    tr_backward(&m, gr.g, 1.0f, gr.gq, 0);
    assert_int_equal(zoff_step(m.rt, NULL, &res), ZOFF_ECORRUPT);
    fprintf(stderr, "step said: %s\n", zoff_last_error(m.rt));
    char where[1200];
    snprintf(where, sizeof where, "%s offset %llu", path, (unsigned long long)off);
    assert_non_null(strstr(zoff_last_error(m.rt), where)); /* the file and the extent's offset */
    assert_int_equal(zoff_step(m.rt, NULL, &res), ZOFF_ESTATE);
    assert_non_null(strstr(zoff_last_error(m.rt), "unusable"));
    float x[2500];
    assert_int_equal(zoff_get_master(m.rt, m.id[0], x), ZOFF_ESTATE);
    tr_grads_free(&gr);
    tr_close(&m);
    zt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),       cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_io_error),    cmocka_unit_test(test_crc_store),
        cmocka_unit_test(test_crc_runtime),
    };
    return cmocka_run_group_tests_name("runtime_store", tests, NULL, NULL);
}
