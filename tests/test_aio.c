/*
 * test_aio.c — the I/O engine of nvme/ on its own: round trips of random data through block
 * splitting (small blocks, small queue depth, so one request becomes many I/Os), registered and
 * unregistered buffers, O_DIRECT and buffered fds, many requests in flight waited out of order,
 * poll, zero-length requests; injected EIO (message names the file label, offset, length and
 * errno; the engine keeps working), injected short transfers (resubmitted, data intact), a real
 * short read at end of file (ZOFF_ESHORTIO), a bad fd; and the fallback when io_uring is
 * refused (a child process with a seccomp filter that fails io_uring_setup with ENOSYS: AUTO
 * falls back to threads, URING is an error). With the argument "nvme" it also runs a request
 * that crosses the 1 GiB boundary between two registered pieces of one buffer.
 * Runs under both engines (test_aio_threads sets ZOFF_AIO=threads).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nvme/swap.h"
#include "zt.h"

static char *g_dir;
static int g_threads; /* ZOFF_AIO=threads in the environment */

static void *aligned_buf(size_t bytes)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 4096, bytes ? bytes : 4096), 0);
    return p;
}

static int open_file(const char *name, int odirect)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (odirect ? O_DIRECT : 0), 0600);
    return fd;
}

static zaio_engine *make_engine(size_t block, int qd)
{
    zaio_config cfg = {.engine = ZOFF_AIO_AUTO, .block_bytes = block, .queue_depth = qd};
    zaio_engine *e = NULL;
    assert_int_equal(zaio_create(&cfg, &e), 0);
    zaio_info info;
    zaio_get_info(e, &info);
    assert_int_equal(info.engine, g_threads ? ZOFF_AIO_THREADS : ZOFF_AIO_URING);
    return e;
}

static void roundtrip(int odirect, int registered)
{
    int fd = open_file(odirect ? "rt-direct.bin" : "rt-buffered.bin", odirect);
    if (fd < 0 && odirect) {
        print_message("O_DIRECT refused under %s: direct round trip skipped\n", g_dir);
        return;
    }
    assert_true(fd >= 0);
    zaio_engine *e = make_engine(64 * 1024, 4);
    assert_int_equal(zaio_register_file(e, fd, "roundtrip-file"), 0);
    const size_t bytes = 3 * ZOFF_MIB + 8192;
    char *src = aligned_buf(bytes), *dst = aligned_buf(bytes);
    zt_rng rng;
    zt_rng_seed(&rng, 42u + (unsigned)odirect * 2u + (unsigned)registered);
    zt_fill_bytes(&rng, src, bytes);
    memset(dst, 0xEE, bytes);
    if (registered) {
        assert_int_equal(zaio_register_buffer(e, src, bytes), 0);
        assert_int_equal(zaio_register_buffer(e, dst, bytes), 0);
        zaio_info info;
        zaio_get_info(e, &info);
        assert_int_equal(info.fixed_buffers, g_threads ? 0 : 1);
    }
    zaio_req *w = NULL, *r = NULL;
    assert_int_equal(zaio_write(e, fd, src, bytes, 4096, &w), 0);
    assert_int_equal(zaio_wait(e, w), 0);
    assert_int_equal(zaio_read(e, fd, dst, bytes, 4096, &r), 0);
    assert_int_equal(zaio_wait(e, r), 0);
    assert_memory_equal(src, dst, bytes);
    zaio_stats st;
    zaio_get_stats(e, &st);
    assert_true(st.ios >= 2 * (bytes / (64 * 1024))); /* split into blocks */
    assert_int_equal(st.read_bytes, bytes);
    assert_int_equal(st.write_bytes, bytes);
    assert_true(st.read_ns > 0 && st.write_ns > 0);

    if (!odirect) { /* any offset and length on a buffered fd */
        memset(dst, 0, bytes);
        assert_int_equal(zaio_write(e, fd, src + 3, ZOFF_MIB + 3, 5, &w), 0);
        assert_int_equal(zaio_wait(e, w), 0);
        assert_int_equal(zaio_read(e, fd, dst + 1, ZOFF_MIB + 3, 5, &r), 0);
        assert_int_equal(zaio_wait(e, r), 0);
        assert_memory_equal(src + 3, dst + 1, ZOFF_MIB + 3);
    }
    zaio_unregister_file(e, fd);
    zaio_destroy(e);
    close(fd);
    free(src);
    free(dst);
}

static void test_roundtrip_buffered(void **state)
{
    (void)state;
    roundtrip(0, 0);
    roundtrip(0, 1);
}

static void test_roundtrip_direct(void **state)
{
    (void)state;
    roundtrip(1, 0);
    roundtrip(1, 1);
}

/* 48 requests of different sizes in flight at once, waited in reverse order. */
static void test_many_in_flight(void **state)
{
    (void)state;
    enum { N = 48 };
    int fd = open_file("many.bin", 0);
    assert_true(fd >= 0);
    zaio_engine *e = make_engine(32 * 1024, 8);
    size_t sizes[N], offs[N], total = 0;
    zt_rng rng;
    zt_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        sizes[i] = 1 + (size_t)(zt_rng_u64(&rng) % (200 * 1024));
        offs[i] = total;
        total += sizes[i];
    }
    char *src = zt_malloc(total), *dst = zt_malloc(total);
    zt_fill_bytes(&rng, src, total);
    zaio_req *reqs[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(zaio_write(e, fd, src + offs[i], sizes[i], offs[i], &reqs[i]), 0);
    for (int i = N - 1; i >= 0; i--) assert_int_equal(zaio_wait(e, reqs[i]), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(zaio_read(e, fd, dst + offs[i], sizes[i], offs[i], &reqs[i]), 0);
    /* Poll the first one to completion, then wait the rest. */
    int done = 0;
    for (int spins = 0; !done && spins < 10000000; spins++)
        assert_int_equal(zaio_poll(e, reqs[0], &done), 0);
    assert_true(done);
    for (int i = 0; i < N; i++) assert_int_equal(zaio_wait(e, reqs[i]), 0);
    assert_memory_equal(src, dst, total);

    zaio_req *z = NULL; /* zero-length: complete at once */
    assert_int_equal(zaio_read(e, fd, NULL, 0, 0, &z), 0);
    assert_int_equal(zaio_poll(e, z, &done), 0);
    assert_true(done);
    assert_int_equal(zaio_wait(e, z), 0);
    zaio_destroy(e);
    close(fd);
    free(src);
    free(dst);
}

static void test_fault_eio(void **state)
{
    (void)state;
    int fd = open_file("eio.bin", 0);
    assert_true(fd >= 0);
    zaio_engine *e = make_engine(64 * 1024, 4);
    assert_int_equal(zaio_register_file(e, fd, "/the/label/of/eio.bin"), 0);
    const size_t bytes = 16 * 64 * 1024;
    char *buf = zt_malloc(bytes);
    memset(buf, 0x5A, bytes);
    zaio_fault f = {.nth = 3, .error = -EIO};
    zaio_set_fault(e, &f);
    zaio_req *w = NULL;
    assert_int_equal(zaio_write(e, fd, buf, bytes, 0, &w), 0);
    zoff_status st = zaio_wait(e, w);
    assert_int_equal(st, -EIO);
    const char *msg = zoff__last_error_tls();
    print_message("EIO message: %s\n", msg);
    assert_non_null(strstr(msg, "/the/label/of/eio.bin"));
    assert_non_null(strstr(msg, "offset 131072")); /* the third 64 KiB block */
    assert_non_null(strstr(msg, "length 65536"));
    assert_non_null(strstr(msg, "EIO"));
    zaio_stats st0;
    zaio_get_stats(e, &st0);
    assert_true(st0.ios < 16); /* the failed request stopped issuing its remaining blocks */
    /* One shot: the engine works again. */
    assert_int_equal(zaio_write(e, fd, buf, bytes, 0, &w), 0);
    assert_int_equal(zaio_wait(e, w), 0);
    /* Injected ENOSPC on a read path too. */
    f = (zaio_fault){.nth = 1, .error = -ENOSPC};
    zaio_set_fault(e, &f);
    assert_int_equal(zaio_read(e, fd, buf, 4096, 0, &w), 0);
    assert_int_equal(zaio_wait(e, w), -ENOSPC);
    zaio_unregister_file(e, fd);
    zaio_destroy(e);
    close(fd);
    free(buf);
}

static void test_fault_short(void **state)
{
    (void)state;
    int fd = open_file("short.bin", 1);
    int odirect = fd >= 0;
    if (!odirect) fd = open_file("short.bin", 0);
    assert_true(fd >= 0);
    zaio_engine *e = make_engine(256 * 1024, 4);
    const size_t bytes = ZOFF_MIB;
    char *src = aligned_buf(bytes), *dst = aligned_buf(bytes);
    zt_rng rng;
    zt_rng_seed(&rng, 9);
    zt_fill_bytes(&rng, src, bytes);
    zaio_fault f = {.nth = 2, .short_bytes = 3 * 4096 + 17}; /* 12 KiB of a 256 KiB block */
    zaio_set_fault(e, &f);
    zaio_req *r = NULL;
    assert_int_equal(zaio_write(e, fd, src, bytes, 0, &r), 0);
    assert_int_equal(zaio_wait(e, r), 0);
    f.nth = 4; /* a short read this time */
    zaio_set_fault(e, &f);
    assert_int_equal(zaio_read(e, fd, dst, bytes, 0, &r), 0);
    assert_int_equal(zaio_wait(e, r), 0);
    assert_memory_equal(src, dst, bytes);
    zaio_stats st;
    zaio_get_stats(e, &st);
    assert_int_equal(st.short_ios, 2);
    assert_int_equal(st.ios, 4 + 4 + 2); /* 4 blocks each way + 2 resubmissions */
    zaio_destroy(e);
    close(fd);
    free(src);
    free(dst);
}

/* A read past the end of the file cannot complete: ZOFF_ESHORTIO naming the position. */
static void test_eof_and_bad_fd(void **state)
{
    (void)state;
    int fd = open_file("eof.bin", 0);
    assert_true(fd >= 0);
    char buf[16384];
    memset(buf, 1, sizeof buf);
    assert_int_equal(pwrite(fd, buf, 8192, 0), 8192);
    zaio_engine *e = make_engine(4096, 2);
    assert_int_equal(zaio_register_file(e, fd, "eof-file"), 0);
    zaio_req *r = NULL;
    assert_int_equal(zaio_read(e, fd, buf, sizeof buf, 0, &r), 0);
    assert_int_equal(zaio_wait(e, r), ZOFF_ESHORTIO);
    print_message("EOF message: %s\n", zoff__last_error_tls());
    assert_non_null(strstr(zoff__last_error_tls(), "eof-file"));
    /* A request that starts inside and runs past EOF with one big block: short, then 0. */
    zaio_unregister_file(e, fd);
    zaio_destroy(e);
    e = make_engine(ZOFF_MIB, 2);
    assert_int_equal(zaio_read(e, fd, buf, sizeof buf, 4096, &r), 0);
    assert_int_equal(zaio_wait(e, r), ZOFF_ESHORTIO);
    close(fd);
    int bad = open_file("bad.bin", 0);
    close(bad); /* now a closed descriptor */
    assert_int_equal(zaio_read(e, bad, buf, 4096, 0, &r), 0);
    assert_int_equal(zaio_wait(e, r), -EBADF);
    zaio_destroy(e);
}

/* In a child: io_uring_setup fails with ENOSYS (seccomp), as under a container's filter. */
static int child_uring_refused(void)
{
    unsetenv("ZOFF_AIO");
    struct sock_filter filt[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)ZOFF_ARRAY_SIZE(filt), .filter = filt};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 10;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 11;
    zaio_config cfg = {.engine = ZOFF_AIO_AUTO, .block_bytes = 4096, .queue_depth = 4};
    zaio_engine *e = NULL;
    if (zaio_create(&cfg, &e) != 0) return 12;
    zaio_info info;
    zaio_get_info(e, &info);
    if (info.engine != ZOFF_AIO_THREADS || info.uring_refused_errno != ENOSYS) return 13;
    int fd = open_file("refused.bin", 0);
    char a[10000], b[10000];
    memset(a, 7, sizeof a);
    zaio_req *r = NULL;
    if (zaio_write(e, fd, a, sizeof a, 0, &r) || zaio_wait(e, r)) return 14;
    if (zaio_read(e, fd, b, sizeof b, 0, &r) || zaio_wait(e, r)) return 15;
    if (memcmp(a, b, sizeof a)) return 16;
    zaio_destroy(e);
    close(fd);
    cfg.engine = ZOFF_AIO_URING;
    e = NULL;
    if (zaio_create(&cfg, &e) != -ENOSYS || e) return 17;
    if (!strstr(zoff__last_error_tls(), "io_uring_queue_init")) return 18;
    return 0;
}

static void test_uring_refused(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_uring_refused());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 10 || WEXITSTATUS(status) == 11) skip(); /* no seccomp here */
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* One buffer of 1 GiB + 8 MiB is registered as two pieces; a request across the boundary is
 * split there and its data survive. */
static void test_region_boundary(void **state)
{
    (void)state;
    const size_t bytes = ZOFF_GIB + 8 * ZOFF_MIB;
    char *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(buf != MAP_FAILED);
    madvise(buf, bytes, MADV_HUGEPAGE);
    int fd = open_file("boundary.bin", 1);
    if (fd < 0) fd = open_file("boundary.bin", 0);
    assert_true(fd >= 0);
    zaio_engine *e = make_engine(8 * ZOFF_MIB, 8);
    assert_int_equal(zaio_register_buffer(e, buf, bytes), 0);
    char *p = buf + ZOFF_GIB - 4 * ZOFF_MIB - 4096; /* 4 MiB + 4 KiB before the cut */
    const size_t len = 8 * ZOFF_MIB;
    zt_rng rng;
    zt_rng_seed(&rng, 11);
    zt_fill_bytes(&rng, p, len);
    char *copy = zt_malloc(len);
    memcpy(copy, p, len);
    zaio_req *r = NULL;
    assert_int_equal(zaio_write(e, fd, p, len, 0, &r), 0);
    assert_int_equal(zaio_wait(e, r), 0);
    memset(p, 0, len);
    assert_int_equal(zaio_read(e, fd, p, len, 0, &r), 0);
    assert_int_equal(zaio_wait(e, r), 0);
    assert_memory_equal(copy, p, len);
    zaio_stats st;
    zaio_get_stats(e, &st);
    assert_int_equal(st.ios, 4); /* 8 MiB block cut in two at the boundary, each way */
    zaio_destroy(e);
    close(fd);
    munmap(buf, bytes);
    free(copy);
}

int main(int argc, char **argv)
{
    const char *aio = getenv("ZOFF_AIO");
    g_threads = aio && !strcmp(aio, "threads");
    g_dir = zt_mkdtemp("aio");
    if (!g_dir) zt_skip_all("cannot create a scratch directory");
    int rc;
    if (argc > 1 && !strcmp(argv[1], "nvme")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_region_boundary)};
        rc = cmocka_run_group_tests_name("aio_nvme", tests, NULL, NULL);
    } else {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_roundtrip_buffered), cmocka_unit_test(test_roundtrip_direct),
            cmocka_unit_test(test_many_in_flight),     cmocka_unit_test(test_fault_eio),
            cmocka_unit_test(test_fault_short),        cmocka_unit_test(test_eof_and_bad_fd),
            cmocka_unit_test(test_uring_refused),
        };
        rc = cmocka_run_group_tests_name("aio", tests, NULL, NULL);
    }
    zt_rmtree(g_dir);
    free(g_dir);
    return rc;
}
