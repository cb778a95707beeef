/*
 * test_arena.c — the pinned host arena (offload/arena.h): exact capacity (4 KiB rounding only),
 * 4 KiB-aligned buffers, accounting (used / peak / live allocations / largest free block),
 * first-fit with coalescing in every order, a randomized alloc/free run checked against a model
 * (and against overlapping buffers by writing a pattern into each one), bad arguments, the
 * MemAvailable check, pinning (mlock + registration with the sim device, visible in VmLck and
 * the device's stats), the fallback to pageable memory when pinning is refused (in a forked
 * child that drops CAP_IPC_LOCK with capset and lowers RLIMIT_MEMLOCK: one warning, stats say
 * so; skipped when capabilities cannot be dropped), huge pages (2 MiB alignment, MADV_HUGEPAGE,
 * ZOFF_HUGE_PAGES=0) and NUMA binding (the pages land on the bound node). Everything is freed
 * on destroy (the sanitizer build checks for leaks).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <numa.h>
#include <numaif.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu/device.h"
#include "offload/arena.h"
#include "zt.h"

static zarena *make(size_t bytes, int pin, int huge, int node, zdev *dev)
{
    zarena_config cfg = {.bytes = bytes,
                         .numa_node = node,
                         .pin = pin,
                         .huge_pages = huge,
                         .dev = dev,
                         .name = "test"};
    zarena *a = NULL;
    assert_int_equal(zarena_create(&cfg, &a), 0);
    return a;
}

static zdev *sim_dev(void)
{
    zdev_config c;
    zdev_config_default(&c);
    c.kind = ZOFF_DEVICE_SIM;
    zdev *d = NULL;
    assert_int_equal(zdev_open(&c, &d), 0);
    return d;
}

/* ---- fallback when pinning is refused (forked child) --------------------------------------------
 */
static int drop_cap_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0) return -1;
    unsigned idx = CAP_TO_INDEX(CAP_IPC_LOCK);
    data[idx].effective &= ~CAP_TO_MASK(CAP_IPC_LOCK);
    data[idx].permitted &= ~CAP_TO_MASK(CAP_IPC_LOCK);
    data[idx].inheritable &= ~CAP_TO_MASK(CAP_IPC_LOCK);
    return (int)syscall(SYS_capset, &hdr, data);
}

/* The child's checks; returns 0 or the number of the failed check. */
static int fallback_child(void)
{
    if (drop_cap_ipc_lock() != 0) return 77;
    zarena_pin_limits lim;
    if (zarena_pin_limits_get(&lim) != 0 || lim.cap_ipc_lock) return 77;
    struct rlimit rl = {ZOFF_MIB, ZOFF_MIB};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) return 77;

    zdev_config dc;
    zdev_config_default(&dc);
    dc.kind = ZOFF_DEVICE_SIM;
    zdev *d = NULL;
    if (zdev_open(&dc, &d) != 0) return 1;
    zarena_config cfg = {.bytes = 4 * ZOFF_MIB,
                         .numa_node = -1,
                         .pin = 1,
                         .huge_pages = 1,
                         .dev = d,
                         .name = "too-big"};
    zarena *a = NULL, *b = NULL, *c = NULL;
    if (zarena_create(&cfg, &a) != 0) return 2;
    zarena_stats st;
    zarena_get_stats(a, &st);
    if (st.pinned || !st.pin_fallback || st.registered) return 3;
    zdev_stats ds;
    zdev_get_stats(d, &ds);
    if (ds.host_registered_bytes != 0) return 4;
    void *p;
    if (zarena_alloc(a, 3 * ZOFF_MIB, "pageable", &p) != 0) return 5;
    memset(p, 0x5a, 3 * ZOFF_MIB); /* the memory works, just not pinned */
    zarena_free(a, p);

    /* Within the limit, pinning works without the capability. */
    cfg.bytes = 256 * ZOFF_KIB;
    cfg.name = "small";
    if (zarena_create(&cfg, &b) != 0) return 6;
    zarena_get_stats(b, &st);
    if (!st.pinned || st.pin_fallback || !st.registered) return 7;

    /* A second refusal: no second warning. */
    cfg.bytes = 2 * ZOFF_MIB;
    cfg.name = "too-big-2";
    if (zarena_create(&cfg, &c) != 0) return 8;
    zarena_get_stats(c, &st);
    if (!st.pin_fallback) return 9;
    zarena_destroy(a);
    zarena_destroy(b);
    zarena_destroy(c);
    zdev_close(d);
    return 0;
}

static void test_pin_fallback(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("arena");
    char path[1024];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(100);
        dup2(fd, 2);
        close(fd);
        setenv("ZOFF_DEBUG", "WARN", 1);
        setenv("ZOFF_DEBUG_SUBSYS", "ALL", 1);
        unsetenv("ZOFF_DEBUG_FILE");
        zoff__log_reinit();
        _exit(fallback_child());
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    char log[8192] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(log, 1, sizeof log - 1, f);
        log[n] = '\0';
        fclose(f);
    }
    zt_rmtree(dir);
    free(dir);
    print_message("child exit %d, its log:\n%s", code, log);
    if (code == 77) skip(); /* CAP_IPC_LOCK could not be dropped here */
    assert_int_equal(code, 0);
    /* Exactly one warning, naming the limit. */
    int warnings = 0;
    for (char *s = log; (s = strstr(s, "zoff WARN [PIN]")) != NULL; s++) warnings++;
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(log, "RLIMIT_MEMLOCK"));
    assert_non_null(strstr(log, "pageable"));
}

/* ---- sizes, alignment, accounting
 * ---------------------------------------------------------------- */
static void test_exact_sizes_alignment(void **state)
{
    (void)state;
    const size_t asked = 10 * ZOFF_MIB + 1;
    zarena *a = make(asked, 0, 0, -1, NULL);
    zarena_stats st;
    zarena_get_stats(a, &st);
    assert_int_equal(st.capacity_bytes, 10 * ZOFF_MIB + 4096); /* 4 KiB rounding only */
    assert_int_equal(st.pinned, 0);
    assert_int_equal(st.pin_fallback, 0);

    const size_t sizes[] = {1, 4095, 4096, 4097, 123457, 65536};
    void *p[6];
    size_t used = 0;
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(zarena_alloc(a, sizes[i], "sized", &p[i]), 0);
        assert_true(ZOFF_IS_ALIGNED(p[i], 4096));
        memset(p[i], (int)i + 1, sizes[i]);
        used += ZOFF_ALIGN_UP(sizes[i], 4096);
        zarena_get_stats(a, &st);
        assert_int_equal(st.used_bytes, used);
        assert_int_equal(st.allocations, i + 1);
    }
    for (size_t i = 0; i < 6; i++) /* no buffer overwrote another */
        for (size_t k = 0; k < sizes[i]; k++) assert_int_equal(((uint8_t *)p[i])[k], i + 1);
    /* The rest of the capacity, exactly; then nothing more. */
    void *rest, *more;
    size_t left = st.capacity_bytes - used;
    assert_int_equal(st.largest_free_bytes, left);
    assert_int_equal(zarena_alloc(a, left, "rest", &rest), 0);
    assert_int_equal(zarena_alloc(a, 1, "one-more", &more), ZOFF_ENOFIT);
    print_message("full arena: %s\n", zoff__last_error_tls());
    assert_non_null(strstr(zoff__last_error_tls(), "one-more"));
    assert_non_null(strstr(zoff__last_error_tls(), "largest free block"));
    zarena_get_stats(a, &st);
    assert_int_equal(st.used_bytes, st.capacity_bytes);
    assert_int_equal(st.peak_bytes, st.capacity_bytes);
    assert_int_equal(st.largest_free_bytes, 0);
    for (size_t i = 0; i < 6; i++) zarena_free(a, p[i]);
    zarena_free(a, rest);
    zarena_get_stats(a, &st);
    assert_int_equal(st.used_bytes, 0);
    assert_int_equal(st.allocations, 0);
    assert_int_equal(st.peak_bytes, st.capacity_bytes);
    assert_int_equal(st.largest_free_bytes, st.capacity_bytes);
    zarena_destroy(a);
}

static void test_free_coalesce(void **state)
{
    (void)state;
    /* Every order of freeing three adjacent blocks must end in one free block. */
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    zarena *a = make(3 * ZOFF_MIB, 0, 0, -1, NULL);
    zarena_stats st;
    for (int o = 0; o < 6; o++) {
        void *p[3], *q;
        for (int i = 0; i < 3; i++) assert_int_equal(zarena_alloc(a, ZOFF_MIB, "third", &p[i]), 0);
        for (int i = 0; i < 3; i++) {
            zarena_free(a, p[orders[o][i]]);
            zarena_get_stats(a, &st);
            /* the free space is fragmented exactly as the freed blocks are adjacent */
            size_t expect = 0, run = 0;
            int freed[3] = {0, 0, 0};
            for (int k = 0; k <= i; k++) freed[orders[o][k]] = 1;
            for (int k = 0; k < 3; k++) {
                run = freed[k] ? run + ZOFF_MIB : 0;
                if (run > expect) expect = run;
            }
            assert_int_equal(st.largest_free_bytes, expect);
        }
        assert_int_equal(zarena_alloc(a, 3 * ZOFF_MIB, "whole", &q), 0);
        zarena_free(a, q);
    }
    /* Fragmented: two free MiB that are not adjacent do not satisfy 2 MiB. */
    void *p[3], *q;
    for (int i = 0; i < 3; i++) assert_int_equal(zarena_alloc(a, ZOFF_MIB, "third", &p[i]), 0);
    zarena_free(a, p[0]);
    zarena_free(a, p[2]);
    assert_int_equal(zarena_alloc(a, 2 * ZOFF_MIB, "two", &q), ZOFF_ENOFIT);
    /* First fit: a 4 KiB request takes the lowest free address. */
    assert_int_equal(zarena_alloc(a, 4096, "small", &q), 0);
    assert_ptr_equal(q, p[0]);
    zarena_free(a, q);
    zarena_free(a, p[1]);
    zarena_get_stats(a, &st);
    assert_int_equal(st.largest_free_bytes, 3 * ZOFF_MIB);
    zarena_destroy(a);
}

static void test_random_model(void **state)
{
    (void)state;
    enum { SLOTS = 64 };
    const size_t cap = 8 * ZOFF_MIB;
    zarena *a = make(cap, 0, 0, -1, NULL);
    void *ptr[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    size_t used = 0, live = 0, peak = 0, fails = 0;
    zt_rng r;
    zt_rng_seed(&r, 1234);
    for (int it = 0; it < 4000; it++) {
        int k = (int)(zt_rng_u64(&r) % SLOTS);
        if (ptr[k]) {
            for (size_t i = 0; i < len[k]; i += 511)
                assert_int_equal(((uint8_t *)ptr[k])[i], k + 1);
            zarena_free(a, ptr[k]);
            used -= ZOFF_ALIGN_UP(len[k], 4096);
            live--;
            ptr[k] = NULL;
        } else {
            size_t n = 1 + (size_t)(zt_rng_u64(&r) % (384 * 1024));
            zoff_status s = zarena_alloc(a, n, "random", &ptr[k]);
            if (s == ZOFF_ENOFIT) {
                fails++;
                ptr[k] = NULL;
                continue;
            }
            assert_int_equal(s, 0);
            assert_true(ZOFF_IS_ALIGNED(ptr[k], 4096));
            len[k] = n;
            memset(ptr[k], k + 1, n);
            used += ZOFF_ALIGN_UP(n, 4096);
            live++;
            if (used > peak) peak = used;
        }
        zarena_stats st;
        zarena_get_stats(a, &st);
        assert_int_equal(st.used_bytes, used);
        assert_int_equal(st.allocations, live);
        assert_int_equal(st.peak_bytes, peak);
        assert_true(st.largest_free_bytes <= cap - used);
    }
    print_message("random run: %zu allocations refused (arena full or fragmented), peak %zu\n",
                  fails, peak);
    for (int k = 0; k < SLOTS; k++) zarena_free(a, ptr[k]);
    zarena_stats st;
    zarena_get_stats(a, &st);
    assert_int_equal(st.used_bytes, 0);
    assert_int_equal(st.largest_free_bytes, cap);
    zarena_destroy(a);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    zarena *a = NULL;
    zarena_config cfg = {.bytes = 0, .numa_node = -1, .name = "bad"};
    assert_int_equal(zarena_create(&cfg, &a), ZOFF_EINVAL);
    cfg.bytes = 4096;
    cfg.numa_node = -2;
    assert_int_equal(zarena_create(&cfg, &a), ZOFF_EINVAL);
    cfg.numa_node = 99;
    assert_int_equal(zarena_create(&cfg, &a), ZOFF_EINVAL);
    assert_non_null(strstr(zoff__last_error_tls(), "99"));
    cfg.numa_node = -1;
    cfg.bytes = (size_t)1 << 50; /* 1 PiB */
    assert_int_equal(zarena_create(&cfg, &a), ZOFF_ENOFIT);
    print_message("too big: %s\n", zoff__last_error_tls());
    assert_non_null(strstr(zoff__last_error_tls(), "MemAvailable"));
    assert_null(a);

    a = make(64 * ZOFF_KIB, 0, 0, -1, NULL);
    void *p;
    int local;
    assert_int_equal(zarena_alloc(a, 0, "zero", &p), ZOFF_EINVAL);
    assert_int_equal(zarena_alloc(a, 65 * ZOFF_KIB, "big", &p), ZOFF_ENOFIT);
    assert_int_equal(zarena_alloc(a, 8192, "ok", &p), 0);
    zarena_free(a, &local);              /* not ours: warned, ignored */
    zarena_free(a, (uint8_t *)p + 4096); /* inside a buffer, not its start: ignored */
    zarena_free(a, NULL);
    zarena_stats st;
    zarena_get_stats(a, &st);
    assert_int_equal(st.allocations, 1);
    zarena_free(a, p);
    zarena_free(a, p); /* double free: warned, ignored */
    zarena_get_stats(a, &st);
    assert_int_equal(st.allocations, 0);
    assert_int_equal(st.used_bytes, 0);
    zarena_destroy(a);
    zarena_destroy(NULL);
}

/* ---- pinning, huge pages, NUMA
 * --------------------------------------------------------------------- */
static uint64_t vm_lck_bytes(void)
{
    zarena_pin_limits lim;
    assert_int_equal(zarena_pin_limits_get(&lim), 0);
    return lim.locked_bytes;
}

static void test_pinned_registered(void **state)
{
    (void)state;
    const size_t bytes = 8 * ZOFF_MIB;
    zarena_pin_limits lim;
    assert_int_equal(zarena_pin_limits_get(&lim), 0);
    int can_pin = lim.cap_ipc_lock || lim.memlock_cur == UINT64_MAX ||
                  lim.memlock_cur >= lim.locked_bytes + bytes;
    print_message("memlock %llu, locked %llu, CAP_IPC_LOCK %d -> expect %s\n",
                  (unsigned long long)lim.memlock_cur, (unsigned long long)lim.locked_bytes,
                  lim.cap_ipc_lock, can_pin ? "pinned" : "fallback");
    zdev *d = sim_dev();
    uint64_t lck0 = vm_lck_bytes();
    zarena *a = make(bytes, 1, 0, -1, d);
    zarena_stats st;
    zdev_stats ds;
    zarena_get_stats(a, &st);
    zdev_get_stats(d, &ds);
    assert_int_equal(st.pinned, can_pin);
    assert_int_equal(st.registered, can_pin);
    assert_int_equal(st.pin_fallback, !can_pin);
    assert_int_equal(ds.host_registered_bytes, can_pin ? bytes : 0);
    if (can_pin) assert_true(vm_lck_bytes() >= lck0 + bytes);
    /* Buffers of a registered arena can be copied to the device. */
    void *h, *dv;
    assert_int_equal(zarena_alloc(a, 4096, "staging", &h), 0);
    memset(h, 0x3c, 4096);
    assert_int_equal(zdev_malloc(d, 4096, &dv), 0);
    assert_int_equal(zdev_memcpy_h2d(d, dv, h, 4096, NULL), 0);
    assert_int_equal(zdev_stream_sync(d, NULL), 0);
    assert_memory_equal(dv, h, 4096);
    zdev_free(d, dv);
    zarena_destroy(a); /* with a buffer still allocated: freed anyway */
    zdev_get_stats(d, &ds);
    assert_int_equal(ds.host_registered_bytes, 0);
    assert_true(vm_lck_bytes() <= lck0);
    zdev_close(d);
}

/* Bytes of AnonHugePages in the mapping that contains p (from /proc/self/smaps). */
static long long anon_huge_kb(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0;
    long long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (in && sscanf(line, "AnonHugePages: %lld kB", &kb) == 1) break;
    }
    fclose(f);
    return kb;
}

static void test_huge_pages(void **state)
{
    (void)state;
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f)) mode[0] = '\0';
        fclose(f);
    }
    int thp = f && !strstr(mode, "[never]");
    zarena *a = make(8 * ZOFF_MIB, 1, 1, -1, NULL);
    zarena_stats st;
    zarena_get_stats(a, &st);
    assert_int_equal(st.huge_pages, thp);
    assert_true(ZOFF_IS_ALIGNED(st.base, 2 * ZOFF_MIB));
    assert_int_equal(st.capacity_bytes, 8 * ZOFF_MIB);
    if (st.pinned)
        print_message("THP mode: %.*s -> AnonHugePages of the pinned arena: %lld kB of 8192\n",
                      (int)strcspn(mode, "\n"), mode, anon_huge_kb(st.base));
    zarena_destroy(a);

    setenv("ZOFF_HUGE_PAGES", "0", 1);
    a = make(4 * ZOFF_MIB, 0, 1, -1, NULL);
    zarena_get_stats(a, &st);
    assert_int_equal(st.huge_pages, 0);
    zarena_destroy(a);
    unsetenv("ZOFF_HUGE_PAGES");

    /* Below 2 MiB nothing to align; still exact. */
    a = make(12 * ZOFF_KIB, 0, 1, -1, NULL);
    zarena_get_stats(a, &st);
    assert_int_equal(st.capacity_bytes, 12 * ZOFF_KIB);
    zarena_destroy(a);
}

static void test_numa_bind(void **state)
{
    (void)state;
    if (numa_available() < 0) skip();
    int node = numa_max_node(); /* the last node: on multi-node machines not the default */
    zarena *a = make(4 * ZOFF_MIB, 0, 0, node, NULL);
    zarena_stats st;
    zarena_get_stats(a, &st);
    assert_int_equal(st.numa_node, node);
    void *p;
    assert_int_equal(zarena_alloc(a, 4 * ZOFF_MIB, "numa", &p), 0);
    memset(p, 1, 4 * ZOFF_MIB);
    for (size_t off = 0; off < 4 * ZOFF_MIB; off += ZOFF_MIB) {
        int where = -1;
        assert_int_equal(
            get_mempolicy(&where, NULL, 0, (uint8_t *)p + off, MPOL_F_NODE | MPOL_F_ADDR), 0);
        assert_int_equal(where, node);
    }
    zarena_free(a, p);
    zarena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: the process-wide "warn once" must not have been used yet */
        cmocka_unit_test(test_pin_fallback),  cmocka_unit_test(test_exact_sizes_alignment),
        cmocka_unit_test(test_free_coalesce), cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_pinned_registered),
        cmocka_unit_test(test_huge_pages),    cmocka_unit_test(test_numa_bind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
