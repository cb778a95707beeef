/*
 * test_swap_faults.c — how the swap store fails, and that it never fails silently:
 *  - injected EIO and ENOSPC on swap-out and swap-in: the status passes through, the message
 *    names the key, the swap file path, the offset and errno; a key whose swap-out failed
 *    refuses swap-in (ZOFF_ESTATE) until it is written again; injected short reads and writes
 *    are completed (data intact, counted);
 *  - a corrupted byte in a swap file: ZOFF_ECORRUPT naming key, path and offset with crc on;
 *  - no space: a 1 MiB tmpfs (mounted by the test) asked for 4 MiB fails at create with
 *    ZOFF_ENOFIT and leaves nothing behind; ramfs refuses O_DIRECT (tmpfs accepts it since
 *    Linux 6.6): the probe falls back to buffered, odirect=1 is ZOFF_EUNSUPPORTED; a 24 MiB
 *    loop-mounted ext4: O_DIRECT round trip, ENOFIT at create once earlier stores took the
 *    space;
 *  - unwritable or missing paths: a path under a regular file, a missing directory, a
 *    read-only bind mount (root ignores permission bits, a read-only mount it does not);
 *  - a stale directory of a killed process (fork, SIGKILL) is reclaimed by the next store,
 *    a live one is not; a fixed run_name in use is refused.
 * Mount-based cases skip (cmocka skip) when this process cannot mount.
 * Runs under both engines (test_swap_faults_threads sets ZOFF_AIO=threads).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nvme/swap.h"
#include "zt.h"

static int g_odirect; /* O_DIRECT works under $ZOFF_TEST_TMP */

static zswap_store *store_at(const char *paths, uint64_t capacity, int odirect)
{
    zswap_config cfg = {.paths = paths,
                        .capacity_bytes = capacity,
                        .stripe_bytes = 256 * 1024,
                        .odirect = odirect,
                        .verify_crc = 1,
                        .aio = {.block_bytes = 64 * 1024, .queue_depth = 4}};
    zswap_store *s = NULL;
    zoff_status st = zswap_create(&cfg, &s);
    if (st) print_message("zswap_create(%s): %s\n", paths, zoff__last_error_tls());
    assert_int_equal(st, 0);
    return s;
}

static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (!prefix || !strncmp(de->d_name, prefix, strlen(prefix))) n++;
    }
    closedir(d);
    return n;
}

static void fill(char *p, size_t n, uint64_t seed)
{
    zt_rng r;
    zt_rng_seed(&r, seed);
    zt_fill_bytes(&r, p, n);
}

/* ---- injected faults ---------------------------------------------------------------------- */
static void test_injected_errors(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("faults");
    zswap_store *s = store_at(dir, 8 * ZOFF_MIB, g_odirect ? 1 : 0);
    const size_t n = ZOFF_MIB;
    char *a = zt_malloc(n), *b = zt_malloc(n);
    fill(a, n, 1);
    zswap_req *r;

    zswap_fault f = {.nth = 2, .error = -EIO};
    zswap_set_fault(s, &f);
    assert_int_equal(zswap_out(s, 7, a, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), -EIO);
    const char *msg = zoff__last_error_tls();
    print_message("EIO: %s\n", msg);
    assert_non_null(strstr(msg, "swap_out key 7"));
    assert_non_null(strstr(msg, "swap-0.bin"));
    assert_non_null(strstr(msg, "offset 65536"));
    assert_non_null(strstr(msg, "EIO"));
    /* The extent holds half-written data: swap_in refuses until it is rewritten. */
    assert_int_equal(zswap_in(s, 7, b, n, &r), ZOFF_ESTATE);
    assert_int_equal(zswap_out(s, 7, a, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), 0);

    f = (zswap_fault){.nth = 5, .error = -EIO};
    zswap_set_fault(s, &f);
    assert_int_equal(zswap_in(s, 7, b, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), -EIO);
    assert_non_null(strstr(zoff__last_error_tls(), "swap_in key 7"));

    f = (zswap_fault){.nth = 1, .error = -ENOSPC};
    zswap_set_fault(s, &f);
    assert_int_equal(zswap_out(s, 8, a, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), -ENOSPC);
    print_message("ENOSPC: %s\n", zoff__last_error_tls());
    assert_non_null(strstr(zoff__last_error_tls(), "ENOSPC"));

    /* Short write then short read: completed, data intact. */
    zswap_stats st0, st1;
    zswap_get_stats(s, &st0);
    f = (zswap_fault){.nth = 3, .short_bytes = 8192};
    zswap_set_fault(s, &f);
    fill(a, n, 2);
    assert_int_equal(zswap_out(s, 9, a, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), 0);
    zswap_set_fault(s, &f);
    memset(b, 0, n);
    assert_int_equal(zswap_in(s, 9, b, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), 0);
    assert_memory_equal(a, b, n);
    zswap_get_stats(s, &st1);
    assert_int_equal(st1.short_ios - st0.short_ios, 2);

    zswap_destroy(s);
    assert_int_equal(count_entries(dir, NULL), 0);
    zt_rmtree(dir);
    free(dir);
    free(a);
    free(b);
}

static void test_corrupt_byte(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("corrupt");
    zswap_store *s = store_at(dir, 4 * ZOFF_MIB, g_odirect ? 1 : 0);
    const size_t n = 300 * 1024 + 7;
    char *a = zt_malloc(n), *b = zt_malloc(n);
    fill(a, n, 3);
    zswap_req *r;
    assert_int_equal(zswap_out(s, 1, a, 100, &r), 0); /* key 1 first: key 2 at offset 4096 */
    assert_int_equal(zswap_wait(s, r), 0);
    assert_int_equal(zswap_out(s, 2, a, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), 0);
    const char *path;
    uint64_t off;
    assert_int_equal(zswap_locate(s, 2, &path, &off, NULL), 0);
    assert_int_equal(off, 4096);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)(off + 12345)), 1);
    c ^= 0x10;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)(off + 12345)), 1);
    assert_int_equal(fsync(fd), 0);
    close(fd);
    assert_int_equal(zswap_in(s, 2, b, n, &r), 0);
    assert_int_equal(zswap_wait(s, r), ZOFF_ECORRUPT);
    const char *msg = zoff__last_error_tls();
    print_message("corrupt: %s\n", msg);
    assert_non_null(strstr(msg, "key 2"));
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "offset 4096"));
    /* Key 1 is intact. */
    assert_int_equal(zswap_in(s, 1, b, 100, &r), 0);
    assert_int_equal(zswap_wait(s, r), 0);
    assert_memory_equal(a, b, 100);
    zswap_destroy(s);
    zt_rmtree(dir);
    free(dir);
    free(a);
    free(b);
}

/* ---- filesystems made by the test ------------------------------------------------------------ */
static int run_quiet(const char *cmd)
{
    char full[4200];
    snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
    int rc = system(full);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* A 1 MiB tmpfs asked for 4 MiB: ZOFF_ENOFIT at create, nothing left behind. */
static void test_tmpfs_nospace(void **state)
{
    (void)state;
    char *mnt = zt_mkdtemp("tmpfs");
    if (mount("zoff-test", mnt, "tmpfs", 0, "size=1m") != 0) {
        print_message("cannot mount tmpfs (%s): skipped\n", strerror(errno));
        zt_rmtree(mnt);
        free(mnt);
        skip();
    }
    zswap_config cfg = {.paths = mnt, .capacity_bytes = 4 * ZOFF_MIB, .odirect = -1};
    zswap_store *s = NULL;
    zoff_status st_full = zswap_create(&cfg, &s);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
    int left = count_entries(mnt, NULL);
    cfg.capacity_bytes = 512 * 1024; /* fits */
    zoff_status st_small = zswap_create(&cfg, &s);
    zswap_destroy(s);
    int left2 = count_entries(mnt, NULL);
    umount(mnt);
    zt_rmtree(mnt);
    free(mnt);
    print_message("tmpfs full: %s\n", msg);
    assert_int_equal(st_full, ZOFF_ENOFIT);
    assert_non_null(strstr(msg, "1.00 MiB free"));
    assert_int_equal(left, 0);
    assert_int_equal(st_small, 0);
    assert_int_equal(left2, 0);
}

/* ramfs refuses O_DIRECT (tmpfs accepts it since Linux 6.6): the probe falls back to buffered
 * I/O; odirect = 1 is ZOFF_EUNSUPPORTED. */
static void test_no_odirect_fallback(void **state)
{
    (void)state;
    char *mnt = zt_mkdtemp("ramfs");
    if (mount("zoff-test", mnt, "ramfs", 0, NULL) != 0) {
        print_message("cannot mount ramfs (%s): skipped\n", strerror(errno));
        zt_rmtree(mnt);
        free(mnt);
        skip();
    }
    int od = -1;
    zoff_status st_probe = zswap_probe(mnt, &od, NULL);
    zswap_config cfg = {.paths = mnt, .capacity_bytes = 256 * 1024, .odirect = -1};
    zswap_store *s = NULL;
    zoff_status st_auto = zswap_create(&cfg, &s);
    zswap_stats stats = {.odirect = -1};
    int roundtrip_ok = 0;
    if (st_auto == 0) {
        zswap_get_stats(s, &stats);
        char a[5000], b[5000];
        fill(a, sizeof a, 5);
        zswap_req *r;
        roundtrip_ok = zswap_out(s, 1, a + 1, sizeof a - 1, &r) == 0 && zswap_wait(s, r) == 0 &&
                       zswap_in(s, 1, b, sizeof b - 1, &r) == 0 && zswap_wait(s, r) == 0 &&
                       memcmp(a + 1, b, sizeof a - 1) == 0;
        zswap_destroy(s);
    }
    cfg.odirect = 1;
    s = NULL;
    zoff_status st_direct = zswap_create(&cfg, &s);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
    int made = s != NULL;
    zswap_destroy(s); /* (only if it wrongly succeeded: the mount must come off) */
    int left = count_entries(mnt, NULL);
    umount(mnt);
    zt_rmtree(mnt);
    free(mnt);
    print_message("odirect=1 on ramfs: %s\n", msg);
    assert_int_equal(st_probe, 0);
    assert_int_equal(od, 0);
    assert_int_equal(st_auto, 0);
    assert_int_equal(stats.odirect, 0);
    assert_true(roundtrip_ok);
    assert_int_equal(st_direct, ZOFF_EUNSUPPORTED);
    assert_false(made);
    assert_int_equal(left, 0);
}

static void test_loop_ext4(void **state)
{
    (void)state;
    char *work = zt_mkdtemp("loop");
    char img[1024], mnt[1024], cmd[4096];
    snprintf(img, sizeof img, "%s/ext4.img", work);
    snprintf(mnt, sizeof mnt, "%s/mnt", work);
    mkdir(mnt, 0755);
    snprintf(cmd, sizeof cmd, "truncate -s 24M %s && mkfs.ext4 -q -F -m 0 %s", img, img);
    int ok = run_quiet(cmd) == 0;
    if (ok) {
        snprintf(cmd, sizeof cmd, "mount -o loop %s %s", img, mnt);
        ok = run_quiet(cmd) == 0;
    }
    if (!ok) {
        print_message("cannot make or mount a loop ext4: skipped\n");
        zt_rmtree(work);
        free(work);
        skip();
    }
    uint64_t free_bytes = 0;
    zoff_status st_free = zswap_free_bytes(mnt, &free_bytes);
    /* Too big for this disk: refused at create, nothing written. */
    zswap_config cfg = {.paths = mnt, .capacity_bytes = 64 * ZOFF_MIB, .odirect = 1};
    zswap_store *s = NULL;
    zoff_status st_big = zswap_create(&cfg, &s);
    int left = count_entries(mnt, "zoff-swap-");
    /* Fits, O_DIRECT: round trip. */
    cfg.capacity_bytes = 8 * ZOFF_MIB;
    cfg.verify_crc = 1;
    zoff_status st_fit = zswap_create(&cfg, &s);
    int roundtrip_ok = 0, odirect = 0;
    if (st_fit == 0) {
        zswap_stats stats;
        zswap_get_stats(s, &stats);
        odirect = stats.odirect;
        const size_t n = 3 * ZOFF_MIB + 5;
        char *a = zt_malloc(n), *b = zt_malloc(n);
        fill(a, n, 6);
        zswap_req *r;
        roundtrip_ok = zswap_out(s, 1, a, n, &r) == 0 && zswap_wait(s, r) == 0 &&
                       zswap_in(s, 1, b, n, &r) == 0 && zswap_wait(s, r) == 0 &&
                       memcmp(a, b, n) == 0;
        free(a);
        free(b);
    }
    /* Eat the space with a second store's statvfs check passing: two stores of 8 MiB each fit
     * the check one at a time; a third one no longer fits. */
    zswap_store *s2 = NULL, *s3 = NULL;
    zoff_status st2 = zswap_create(&cfg, &s2);
    zoff_status st3 = zswap_create(&cfg, &s3);
    char msg3[512];
    snprintf(msg3, sizeof msg3, "%s", zoff__last_error_tls());
    zswap_destroy(s3);
    zswap_destroy(s2);
    zswap_destroy(s);
    int left_end = count_entries(mnt, "zoff-swap-");
    snprintf(cmd, sizeof cmd, "umount %s", mnt);
    int um = run_quiet(cmd);
    zt_rmtree(work);
    free(work);
    print_message("ext4 %llu bytes free; third store: %s\n", (unsigned long long)free_bytes, msg3);
    assert_int_equal(st_free, 0);
    assert_int_equal(st_big, ZOFF_ENOFIT);
    assert_int_equal(left, 0);
    assert_int_equal(st_fit, 0);
    assert_int_equal(odirect, 1);
    assert_true(roundtrip_ok);
    assert_int_equal(st2, 0);
    assert_true(st3 == ZOFF_ENOFIT || st3 == -ENOSPC);
    assert_int_equal(left_end, 0);
    assert_int_equal(um, 0);
}

static void test_unwritable_paths(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("unwritable");
    char file[1024], under[1100], missing[1100];
    snprintf(file, sizeof file, "%s/plain-file", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(under, sizeof under, "%s/sub", file);
    snprintf(missing, sizeof missing, "%s/does-not-exist", dir);
    zswap_config cfg = {.paths = under, .capacity_bytes = 4096};
    zswap_store *s = NULL;
    assert_int_equal(zswap_create(&cfg, &s), -ENOTDIR);
    assert_non_null(strstr(zoff__last_error_tls(), under));
    cfg.paths = file;
    assert_int_equal(zswap_create(&cfg, &s), -ENOTDIR);
    /* a missing directory is created (as `zoff train` does); a planner only examines its
     * parent (test_plan) */
    cfg.paths = missing;
    assert_int_equal(zswap_create(&cfg, &s), 0);
    struct stat sb;
    assert_int_equal(stat(missing, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    zswap_destroy(s);
    s = NULL;

    char ro[1100];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    mkdir(ro, 0755);
    int mounted = mount(ro, ro, NULL, MS_BIND, NULL) == 0;
    if (mounted && mount(NULL, ro, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
        umount(ro);
        mounted = 0;
    }
    zoff_status st_ro = 0;
    char msg[512] = "";
    if (mounted) {
        cfg.paths = ro;
        st_ro = zswap_create(&cfg, &s);
        snprintf(msg, sizeof msg, "%s", zoff__last_error_tls());
        umount(ro);
    }
    zt_rmtree(dir);
    free(dir);
    assert_null(s);
    if (!mounted) {
        print_message("cannot make a read-only bind mount: that case skipped\n");
        skip();
    }
    print_message("read-only: %s\n", msg);
    assert_int_equal(st_ro, -EROFS);
    assert_non_null(strstr(msg, "read-only")); /* not reported as lack of space */
}

/* ---- stale directories ------------------------------------------------------------------------
 */
static void test_stale_dir_reclaimed(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("stale");
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        zswap_config cfg = {.paths = dir, .capacity_bytes = ZOFF_MIB, .odirect = -1};
        zswap_store *s = NULL;
        char ok = zswap_create(&cfg, &s) == 0 ? 'y' : 'n';
        if (ok == 'y') {
            char buf[4096] = {1};
            zswap_req *r;
            if (zswap_out(s, 1, buf, sizeof buf, &r) || zswap_wait(s, r)) ok = 'n';
        }
        if (write(pipefd[1], &ok, 1) != 1) _exit(3);
        for (;;) pause(); /* killed here, store still open */
    }
    close(pipefd[1]);
    char ok = 0;
    assert_int_equal(read(pipefd[0], &ok, 1), 1);
    close(pipefd[0]);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(ok, 'y');
    char stale[1100];
    snprintf(stale, sizeof stale, "zoff-swap-%d-", (int)pid);
    assert_int_equal(count_entries(dir, stale), 1); /* left behind by the killed child */

    /* A half-made init directory of a dead run (lock file present, unlocked) goes too. */
    char init[1100], lock[1200];
    snprintf(init, sizeof init, "%s/.zoff-init-999999-0", dir);
    mkdir(init, 0700);
    snprintf(lock, sizeof lock, "%s/lock", init);
    close(open(lock, O_CREAT | O_WRONLY, 0600));

    /* A live store in the same directory must survive the next store's scan. */
    zswap_config cfg = {.paths = dir, .capacity_bytes = ZOFF_MIB, .odirect = -1};
    zswap_store *live = NULL, *next = NULL;
    assert_int_equal(zswap_create(&cfg, &live), 0);
    assert_int_equal(count_entries(dir, stale), 0);
    assert_int_equal(count_entries(dir, ".zoff-init-"), 0);
    assert_int_equal(zswap_create(&cfg, &next), 0);
    assert_int_equal(count_entries(dir, "zoff-swap-"), 2);
    zswap_destroy(next);
    zswap_destroy(live);
    assert_int_equal(count_entries(dir, NULL), 0);
    zt_rmtree(dir);
    free(dir);
}

static void test_run_name_in_use(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("runname");
    zswap_config cfg = {.paths = dir, .capacity_bytes = 8192, .odirect = -1, .run_name = "my-run"};
    zswap_store *a = NULL, *b = NULL;
    assert_int_equal(zswap_create(&cfg, &a), 0);
    assert_int_equal(zswap_create(&cfg, &b), -EEXIST);
    assert_non_null(strstr(zoff__last_error_tls(), "my-run"));
    assert_int_equal(count_entries(dir, NULL), 1); /* the failed create left nothing */
    zswap_destroy(a);
    assert_int_equal(zswap_create(&cfg, &b), 0);
    zswap_destroy(b);
    cfg.run_name = "a/b";
    assert_int_equal(zswap_create(&cfg, &b), ZOFF_EINVAL);
    assert_int_equal(count_entries(dir, NULL), 0);
    zt_rmtree(dir);
    free(dir);
}

int main(void)
{
    char *probe = zt_mkdtemp("faults-probe");
    if (!probe) zt_skip_all("cannot create a scratch directory");
    if (zswap_probe(probe, &g_odirect, NULL) != 0) g_odirect = 0;
    zt_rmtree(probe);
    free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injected_errors),     cmocka_unit_test(test_corrupt_byte),
        cmocka_unit_test(test_tmpfs_nospace),       cmocka_unit_test(test_no_odirect_fallback),
        cmocka_unit_test(test_loop_ext4),           cmocka_unit_test(test_unwritable_paths),
        cmocka_unit_test(test_stale_dir_reclaimed), cmocka_unit_test(test_run_name_in_use),
    };
    return cmocka_run_group_tests_name("swap_faults", tests, NULL, NULL);
}
