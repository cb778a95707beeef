/*
 * test_swap.c — the swap store of nvme/: round trips of random data of sizes 0, 1, 4095, 4096,
 * 1 MiB + 3 and a few stripes + 5, from aligned and unaligned caller buffers (the bytes after a
 * buffer's end must stay untouched), O_DIRECT on and off, over 1 and 3 paths with a small
 * stripe so extents really cross paths; many keys with random swap-outs and swap-ins in flight
 * at once and waited out of order; ordering of requests on one key (a swap-in issued before
 * the swap-out of the same key completed returns the new data); capacity and argument errors;
 * a never-written key reads as zeros; counters; destroy removes the run directories.
 * With the argument "nvme": 100 MiB round trips from registered huge-page buffers (aligned, and
 * 100 MiB + 3 bytes), 1 and 3 paths, O_DIRECT.
 * Runs under both engines (the *_threads variants set ZOFF_AIO=threads).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvme/swap.h"
#include "zt.h"

#define MAX_PATHS 3

typedef struct fixture {
    char *dirs[MAX_PATHS];
    char paths[4096];
    int npaths;
} fixture;

static int g_have_odirect;

static void fixture_init(fixture *f, int npaths)
{
    memset(f, 0, sizeof *f);
    f->npaths = npaths;
    for (int i = 0; i < npaths; i++) {
        f->dirs[i] = zt_mkdtemp("swap");
        assert_non_null(f->dirs[i]);
        if (i) strcat(f->paths, ",");
        strcat(f->paths, f->dirs[i]);
    }
}

/* 1 if dir holds no entries (the store removed its run directory). */
static int dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n == 0;
}

static void fixture_fini(fixture *f)
{
    for (int i = 0; i < f->npaths; i++) {
        assert_true(dir_empty(f->dirs[i]));
        zt_rmtree(f->dirs[i]);
        free(f->dirs[i]);
    }
}

static zswap_store *make_store(const fixture *f, uint64_t capacity, size_t stripe, int odirect,
                               int crc)
{
    zswap_config cfg = {
        .paths = f->paths,
        .capacity_bytes = capacity,
        .stripe_bytes = stripe,
        .odirect = odirect,
        .verify_crc = crc,
        .aio = {.block_bytes = 128 * 1024, .queue_depth = 8},
    };
    zswap_store *s = NULL;
    zoff_status st = zswap_create(&cfg, &s);
    if (st != 0)
        print_message("zswap_create: %s: %s\n", zoff_status_name(st), zoff__last_error_tls());
    assert_int_equal(st, 0);
    zswap_stats stats;
    zswap_get_stats(s, &stats);
    assert_int_equal(stats.odirect, odirect == 1);
    const char *aio = getenv("ZOFF_AIO");
    assert_int_equal(stats.aio.engine,
                     aio && !strcmp(aio, "threads") ? ZOFF_AIO_THREADS : ZOFF_AIO_URING);
    return s;
}

static char *alloc_buf(size_t bytes, int misalign, char **base)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 4096, bytes + 64 + (size_t)misalign), 0);
    *base = p;
    return (char *)p + misalign;
}

/* Writes each size under its own key, reads all back, checks data and guard bytes. */
static void sizes_roundtrip(int npaths, int odirect, int misalign)
{
    static const size_t sizes[] = {0, 1, 4095, 4096, ZOFF_MIB + 3, 3 * 64 * 1024 + 5, 8192};
    enum { N = (int)ZOFF_ARRAY_SIZE(sizes) };
    fixture f;
    fixture_init(&f, npaths);
    zswap_store *s = make_store(&f, 4 * ZOFF_MIB, 64 * 1024, odirect, 1);
    char *src[N], *dst[N], *sb[N], *db[N];
    zswap_req *reqs[N];
    zt_rng rng;
    zt_rng_seed(&rng, (uint64_t)(npaths * 100 + odirect * 10 + misalign));
    for (int i = 0; i < N; i++) {
        src[i] = alloc_buf(sizes[i], misalign, &sb[i]);
        dst[i] = alloc_buf(sizes[i], misalign, &db[i]);
        zt_fill_bytes(&rng, src[i], sizes[i]);
        memset(dst[i], 0xC3, sizes[i] + 64);
        assert_int_equal(zswap_out(s, 100 + (uint64_t)i, src[i], sizes[i], &reqs[i]), 0);
    }
    for (int i = N - 1; i >= 0; i--) assert_int_equal(zswap_wait(s, reqs[i]), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(zswap_in(s, 100 + (uint64_t)i, dst[i], sizes[i], &reqs[i]), 0);
    for (int i = 0; i < N; i++) {
        zoff_status st = zswap_wait(s, reqs[i]);
        if (st) print_message("swap_in size %zu: %s\n", sizes[i], zoff__last_error_tls());
        assert_int_equal(st, 0);
        assert_memory_equal(src[i], dst[i], sizes[i]);
        for (int g = 0; g < 64; g++) assert_int_equal((unsigned char)dst[i][sizes[i] + g], 0xC3);
    }
    zswap_stats stats;
    zswap_get_stats(s, &stats);
    size_t total = 0;
    for (int i = 0; i < N; i++) total += sizes[i];
    assert_int_equal(stats.write_bytes, total);
    assert_int_equal(stats.read_bytes, total);
    assert_true(stats.reserved_bytes >= total && stats.reserved_bytes % 4096 == 0);
    zswap_destroy(s);
    fixture_fini(&f);
    for (int i = 0; i < N; i++) {
        free(sb[i]);
        free(db[i]);
    }
}

static void test_sizes_buffered(void **state)
{
    (void)state;
    for (int misalign = 0; misalign <= 1; misalign++) {
        sizes_roundtrip(1, 0, misalign);
        sizes_roundtrip(3, 0, misalign);
    }
}

static void test_sizes_direct(void **state)
{
    (void)state;
    if (!g_have_odirect) skip();
    for (int misalign = 0; misalign <= 1; misalign++) {
        sizes_roundtrip(1, 1, misalign);
        sizes_roundtrip(3, 1, misalign);
    }
}

/* Random swap-outs and swap-ins of 40 keys, up to 12 requests in flight, waited in random
 * order; every swap-in is checked against the content the key had when it was issued. */
static void interleaved(int npaths, int odirect)
{
    enum { KEYS = 40, INFLIGHT = 12, OPS = 400 };
    fixture f;
    fixture_init(&f, npaths);
    zswap_store *s = make_store(&f, 16 * ZOFF_MIB, 32 * 1024, odirect, 1);
    zt_rng rng;
    zt_rng_seed(&rng, 1234u + (unsigned)npaths);
    size_t size[KEYS];
    char *truth[KEYS];
    for (int k = 0; k < KEYS; k++) {
        size[k] = (size_t)(zt_rng_u64(&rng) % (160 * 1024));
        truth[k] = zt_malloc(size[k]);
        zt_fill_bytes(&rng, truth[k], size[k]);
        zswap_req *r;
        assert_int_equal(zswap_out(s, (uint64_t)k, truth[k], size[k], &r), 0);
        assert_int_equal(zswap_wait(s, r), 0);
    }
    struct slot {
        zswap_req *req;
        char *buf, *base, *expect;
        size_t bytes;
        int is_in;
    } sl[INFLIGHT];
    memset(sl, 0, sizeof sl);
    for (int op = 0; op < OPS + INFLIGHT; op++) {
        int i = (int)(zt_rng_u64(&rng) % INFLIGHT);
        if (sl[i].req) { /* retire this slot */
            zoff_status st = zswap_wait(s, sl[i].req);
            if (st) print_message("wait: %s\n", zoff__last_error_tls());
            assert_int_equal(st, 0);
            if (sl[i].is_in) assert_memory_equal(sl[i].buf, sl[i].expect, sl[i].bytes);
            free(sl[i].base);
            free(sl[i].expect);
            sl[i].req = NULL;
        }
        if (op >= OPS) continue;
        int k = (int)(zt_rng_u64(&rng) % KEYS);
        int misalign = (int)(zt_rng_u64(&rng) % 2) * 8;
        sl[i].bytes = size[k];
        sl[i].buf = alloc_buf(size[k], misalign, &sl[i].base);
        sl[i].expect = zt_malloc(size[k]);
        sl[i].is_in = (int)(zt_rng_u64(&rng) % 2);
        if (sl[i].is_in) {
            memcpy(sl[i].expect, truth[k], size[k]); /* what the key holds now */
            assert_int_equal(zswap_in(s, (uint64_t)k, sl[i].buf, size[k], &sl[i].req), 0);
        } else {
            zt_fill_bytes(&rng, truth[k], size[k]); /* new content */
            memcpy(sl[i].buf, truth[k], size[k]);
            assert_int_equal(zswap_out(s, (uint64_t)k, sl[i].buf, size[k], &sl[i].req), 0);
        }
    }
    for (int i = 0; i < INFLIGHT; i++) {
        if (!sl[i].req) continue;
        assert_int_equal(zswap_wait(s, sl[i].req), 0);
        if (sl[i].is_in) assert_memory_equal(sl[i].buf, sl[i].expect, sl[i].bytes);
        free(sl[i].base);
        free(sl[i].expect);
    }
    for (int k = 0; k < KEYS; k++) { /* final state */
        char *b = zt_malloc(size[k]);
        zswap_req *r;
        assert_int_equal(zswap_in(s, (uint64_t)k, b, size[k], &r), 0);
        assert_int_equal(zswap_wait(s, r), 0);
        assert_memory_equal(b, truth[k], size[k]);
        free(b);
        free(truth[k]);
    }
    zswap_destroy(s);
    fixture_fini(&f);
}

static void test_interleaved(void **state)
{
    (void)state;
    interleaved(1, 0);
    interleaved(3, 0);
    if (g_have_odirect) {
        interleaved(1, 1);
        interleaved(3, 1);
    }
}

/* A swap-in issued while the swap-out of the same key is in flight sees the new data; a
 * swap-out issued while a swap-in is in flight does not change what that swap-in returns. */
static void test_same_key_order(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 1);
    zswap_store *s = make_store(&f, 8 * ZOFF_MIB, 0, g_have_odirect ? 1 : 0, 1);
    const size_t n = 2 * ZOFF_MIB + 100;
    char *a = zt_malloc(n), *b = zt_malloc(n), *got = zt_malloc(n), *got2 = zt_malloc(n);
    memset(a, 'A', n);
    memset(b, 'B', n);
    zswap_req *w1, *r1, *w2, *r2;
    assert_int_equal(zswap_out(s, 5, a, n, &w1), 0);
    assert_int_equal(zswap_in(s, 5, got, n, &r1), 0);
    assert_int_equal(zswap_out(s, 5, b, n, &w2), 0);
    assert_int_equal(zswap_in(s, 5, got2, n, &r2), 0);
    assert_int_equal(zswap_wait(s, r2), 0);
    assert_int_equal(zswap_wait(s, w2), 0);
    assert_int_equal(zswap_wait(s, r1), 0);
    assert_int_equal(zswap_wait(s, w1), 0);
    assert_memory_equal(got, a, n);
    assert_memory_equal(got2, b, n);
    zswap_destroy(s);
    fixture_fini(&f);
    free(a);
    free(b);
    free(got);
    free(got2);
}

static void test_errors_and_zeros(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 1);
    zswap_store *s = make_store(&f, 1 * ZOFF_MIB, 0, 0, 1);
    assert_int_equal(zswap_reserve(s, 1, 600 * 1024), 0);
    assert_int_equal(zswap_reserve(s, 1, 600 * 1024), 0); /* same size: fine */
    assert_int_equal(zswap_reserve(s, 1, 500 * 1024), ZOFF_EINVAL);
    assert_int_equal(zswap_reserve(s, 2, 600 * 1024), ZOFF_ENOFIT);
    print_message("full: %s\n", zoff__last_error_tls());
    assert_non_null(strstr(zoff__last_error_tls(), "key 2"));
    char *buf = zt_malloc(600 * 1024);
    memset(buf, 0x77, 600 * 1024);
    zswap_req *r = NULL;
    assert_int_equal(zswap_in(s, 99, buf, 10, &r), ZOFF_ENOTFOUND);
    assert_int_equal(zswap_in(s, 1, buf, 10, &r), ZOFF_EINVAL);
    /* Reserved, never written: reads as zeros (preallocated space). */
    assert_int_equal(zswap_in(s, 1, buf, 600 * 1024, &r), 0);
    int done = 0;
    for (long spins = 0; !done && spins < 100000000; spins++)
        assert_int_equal(zswap_poll(s, r, &done), 0);
    assert_true(done);
    assert_int_equal(zswap_wait(s, r), 0);
    for (size_t i = 0; i < 600 * 1024; i++) assert_int_equal(buf[i], 0);
    const char *path = NULL;
    uint64_t off = 1;
    size_t bytes = 0;
    assert_int_equal(zswap_locate(s, 1, &path, &off, &bytes), 0);
    assert_non_null(strstr(path, "swap-0.bin"));
    assert_int_equal(off, 0);
    assert_int_equal(bytes, 600 * 1024);
    /* Capacity left: 1 MiB - 600 KiB = 424 KiB. */
    assert_int_equal(zswap_reserve(s, 3, 424 * 1024), 0);
    assert_int_equal(zswap_reserve(s, 4, 1), ZOFF_ENOFIT);
    assert_int_equal(zswap_reserve(s, 5, 0), 0); /* empty keys take no space */
    zswap_destroy(s);
    fixture_fini(&f);
    free(buf);

    zswap_config bad = {.paths = " , ", .capacity_bytes = 4096};
    zswap_store *t = NULL;
    assert_int_equal(zswap_create(&bad, &t), ZOFF_EINVAL);
    assert_null(t);
    fixture_init(&f, 1);
    char twice[8300];
    snprintf(twice, sizeof twice, "%s,%s/", f.dirs[0], f.dirs[0]);
    bad.paths = twice;
    assert_int_equal(zswap_create(&bad, &t), ZOFF_EINVAL);
    fixture_fini(&f);
}

/* Two stores side by side in one directory; striping over 3 files per path. */
static void test_two_stores_files_per_path(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 2);
    zswap_config cfg = {.paths = f.paths,
                        .capacity_bytes = 3 * ZOFF_MIB + 12288,
                        .stripe_bytes = 64 * 1024,
                        .files_per_path = 3,
                        .odirect = -1,
                        .verify_crc = 1};
    zswap_store *s1 = NULL, *s2 = NULL;
    assert_int_equal(zswap_create(&cfg, &s1), 0);
    assert_int_equal(zswap_create(&cfg, &s2), 0); /* a live neighbour is left alone */
    const size_t n = 3 * ZOFF_MIB + 12288;        /* the whole capacity, all 6 files */
    char *a = zt_malloc(n), *b = zt_malloc(n);
    zt_rng rng;
    zt_rng_seed(&rng, 3);
    zt_fill_bytes(&rng, a, n);
    zswap_req *r;
    assert_int_equal(zswap_out(s1, 1, a, n, &r), 0);
    assert_int_equal(zswap_wait(s1, r), 0);
    assert_int_equal(zswap_in(s1, 1, b, n, &r), 0);
    assert_int_equal(zswap_wait(s1, r), 0);
    assert_memory_equal(a, b, n);
    zswap_destroy(s2);
    zswap_destroy(s1);
    fixture_fini(&f);
    free(a);
    free(b);
}

/* ---- nvme group: 100 MiB ------------------------------------------------------------------ */
static void *huge_buf(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void big_roundtrip(int npaths)
{
    const size_t big = 100 * ZOFF_MIB;
    const size_t cap = 2 * big + ZOFF_MIB;
    fixture f;
    fixture_init(&f, npaths);
    int od = g_have_odirect ? 1 : 0;
    zswap_config cfg = {.paths = f.paths,
                        .capacity_bytes = cap,
                        .odirect = od,
                        .verify_crc = 1,
                        .aio = {.block_bytes = 4 * ZOFF_MIB, .queue_depth = 16}};
    zswap_store *s = NULL;
    assert_int_equal(zswap_create(&cfg, &s), 0);
    char *src = huge_buf(big + 4096), *dst = huge_buf(big + 4096);
    assert_int_equal(zswap_register_buffer(s, src, big + 4096), 0);
    assert_int_equal(zswap_register_buffer(s, dst, big + 4096), 0);
    zt_rng rng;
    zt_rng_seed(&rng, 100);
    zt_fill_bytes(&rng, src, big + 3);
    zswap_req *w1, *w2, *r1, *r2;
    uint64_t t0 = zoff__now_ns();
    assert_int_equal(zswap_out(s, 1, src, big, &w1), 0);
    assert_int_equal(zswap_out(s, 2, src, big + 3, &w2), 0); /* same source, both in flight */
    assert_int_equal(zswap_wait(s, w1), 0);
    assert_int_equal(zswap_wait(s, w2), 0);
    uint64_t t1 = zoff__now_ns();
    assert_int_equal(zswap_in(s, 1, dst, big, &r1), 0);
    assert_int_equal(zswap_wait(s, r1), 0);
    assert_memory_equal(src, dst, big);
    memset(dst, 0, big + 4096);
    assert_int_equal(zswap_in(s, 2, dst, big + 3, &r2), 0);
    assert_int_equal(zswap_wait(s, r2), 0);
    uint64_t t2 = zoff__now_ns();
    assert_memory_equal(src, dst, big + 3);
    assert_int_equal(dst[big + 3], 0);
    print_message("%d path(s), O_DIRECT %d: write %.0f MB/s, read %.0f MB/s (incl. crc)\n", npaths,
                  od, 2.0 * (double)big / (double)(t1 - t0) * 1e3,
                  2.0 * (double)big / (double)(t2 - t1) * 1e3);
    zswap_destroy(s);
    munmap(src, big + 4096);
    munmap(dst, big + 4096);
    fixture_fini(&f);
}

static void test_big_1path(void **state)
{
    (void)state;
    big_roundtrip(1);
}

static void test_big_3paths(void **state)
{
    (void)state;
    big_roundtrip(3);
}

int main(int argc, char **argv)
{
    char *probe = zt_mkdtemp("swap-probe");
    if (!probe) zt_skip_all("cannot create a scratch directory");
    int uring = 0;
    if (zswap_probe(probe, &g_have_odirect, &uring) != 0) g_have_odirect = 0;
    zt_rmtree(probe);
    free(probe);
    if (!g_have_odirect) printf("note: O_DIRECT refused under $ZOFF_TEST_TMP: direct cases skip\n");
    if (argc > 1 && !strcmp(argv[1], "nvme")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_big_1path),
                                           cmocka_unit_test(test_big_3paths)};
        return cmocka_run_group_tests_name("swap_nvme", tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_buffered),   cmocka_unit_test(test_sizes_direct),
        cmocka_unit_test(test_interleaved),      cmocka_unit_test(test_same_key_order),
        cmocka_unit_test(test_errors_and_zeros), cmocka_unit_test(test_two_stores_files_per_path),
    };
    return cmocka_run_group_tests_name("swap", tests, NULL, NULL);
}
