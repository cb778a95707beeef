/*
 * test_ckpt.c — runtime/ckpt_*.c and `zoff ckpt`:
 *  - round trip: tensors of odd sizes (0, 1, 1000, 100003 elements) written interleaved in
 *    chunks of 1, 7, 4096 and whole tensors, read back with other chunk sizes: bit-identical;
 *    meta (step, scaler, groups) equal and the trainer's extra JSON back byte for byte;
 *    find/rewind/tensor_info/info; overwriting a checkpoint leaves no leftovers;
 *  - writer misuse: duplicate/reserved names, overruns, commit with a tensor unfinished, extra
 *    that is not an object, a non-checkpoint directory in the way: errors, old data untouched;
 *  - crash safety (on tmpfs when there is one, see fast_tmpdir): a child process saving over
 *    an existing checkpoint is SIGKILLed at every named point of the save (after 1 and 5 chunks,
 *    after the header, the fsync, the manifest, between the renames of the fallback path, after
 *    the swap), with RENAME_EXCHANGE and with the rename-aside fallback: the checkpoint at DIR is
 *    whole (the old one before the swap, the new one after), verifies, and the next save cleans
 *    every leftover; a leftover of a live process is left alone and never read;
 *  - corruption: a flipped byte in one tensor -> ZOFF_ECORRUPT naming that tensor (verify and
 *    read), others still read; truncated file, bad header length, garbage header, unknown
 *    format_version, missing manifest/tensor -> ZOFF_EFORMAT naming the problem;
 *  - every byte covered: a flipped byte anywhere in the manifest, the safetensors length and
 *    header (padding included) or the data makes open + verify fail (ZOFF_ECORRUPT or
 *    ZOFF_EFORMAT), and `zoff ckpt verify` exit 1; a manifest whose values were edited and its
 *    checksum recomputed is still refused, naming the field (loss_scale -4096, weight_decay
 *    1e30, a negative step), or caught by the copies in the safetensors __metadata__ (step);
 *  - `zoff ckpt show|verify` exit codes (0 ok, 1 corrupt or unreadable, 2 usage).
 *  - several ranks (format 3, written the way N ranks do by one process playing each): one file
 *    per rank holding exactly its range's slices, sequential and random-range reads across the
 *    slices, a corrupt slice named with its file, rank and bytes (verify, range read, `zoff ckpt
 *    verify` exit 1), every manifest byte and sampled rank-file header bytes covered, a missing or
 *    truncated rank file, single-file <-> sliced replacement without leftovers;
 * With `--write-fixture DIR` it only writes the deterministic checkpoint that
 * tests/check_safetensors.py reads (`--write-sliced-fixture DIR`: the same values as 3 rank files)
 * with the Python safetensors package; `--bench GIB DIR` times save/verify/read against plain
 * pwrite/pread of the same bytes (docs/checkpoints.md).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/ckpt.h"
#include "tools/commands.h"
#include "zt.h"

/* This test links the checkpoint and config sources without runtime/runtime.c; `zoff ckpt`
 * (tools/cmd_ckpt.c) reports errors through the public zoff_last_error(NULL), which is the
 * calling thread's last message: the same here. */
const char *zoff_last_error(const zoff_runtime *rt)
{
    (void)rt;
    return zoff__last_error_tls();
}

typedef struct spec {
    const char *name;
    uint64_t numel;
} spec;

static const spec specs[] = {
    {"layer0.w.master", 1000},  {"layer0.w.exp_avg", 1000}, {"layer0.w.exp_avg_sq", 1000},
    {"layer1.b.master", 1},     {"layer1.b.exp_avg", 1},    {"layer1.b.exp_avg_sq", 1},
    {"empty.master", 0},        {"big.master", 100003},     {"big.exp_avg", 100003},
    {"big.exp_avg_sq", 100003},
};
#define NT (ZOFF_ARRAY_SIZE(specs))

/* A deterministic value per (seed, tensor, element), never NaN. */
static float value(uint32_t seed, size_t j, uint64_t i)
{
    uint64_t x = ((uint64_t)seed << 40) ^ ((uint64_t)j << 32) ^ i;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (float)(int32_t)(uint32_t)x * 0x1p-31f;
}

static void fill_meta(zckpt_meta *m, int64_t step)
{
    memset(m, 0, sizeof *m);
    m->step = step;
    m->loss_scale = 4096.0f;
    m->scaler_good_steps = step % 7;
    m->scaler_hysteresis = 2;
    m->ngroups = 3;
    for (int g = 0; g < 3; g++) {
        m->groups[g] =
            (zoff_group_config){sizeof(zoff_group_config), 0, 0.9f, 0.999f, 1e-8f, 0, 1, 1};
        m->groups[g].lr = 1e-3f * (float)(g + 1);
        m->groups[g].weight_decay = 0.01f * (float)g;
        m->groups[g].adamw_mode = g != 1;
    }
    /* big integers must come back verbatim, not through a double */
    snprintf(m->extra_json, sizeof m->extra_json,
             "{\"data_pos\": 18446744073709551615, \"rng\": [1, 2, 3], \"note\": \"step %lld\"}",
             (long long)step);
}

static zckpt_tensor *tensor_list(void)
{
    zckpt_tensor *t = calloc(NT, sizeof *t);
    for (size_t j = 0; j < NT; j++) {
        snprintf(t[j].name, sizeof t[j].name, "%s", specs[j].name);
        t[j].numel = specs[j].numel;
    }
    return t;
}

/* Writes checkpoint `seed` (round-robin over tensors, `chunk` elements at a time). */
static zoff_status write_ckpt(const char *dir, uint32_t seed, int64_t step, uint64_t chunk)
{
    zckpt_tensor *t = tensor_list();
    zckpt_writer *w = NULL;
    zoff_status st = zckpt_writer_open(dir, t, NT, &w);
    free(t);
    if (st < 0) return st;
    float *buf = zt_malloc(sizeof(float) * 100003);
    uint64_t done[NT] = {0};
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t j = 0; j < NT; j++) {
            uint64_t n = ZOFF_MIN(chunk, specs[j].numel - done[j]);
            if (n == 0) continue;
            for (uint64_t i = 0; i < n; i++) buf[i] = value(seed, j, done[j] + i);
            st = zckpt_writer_write(w, j, buf, n);
            if (st < 0) {
                free(buf);
                zckpt_writer_abort(w);
                return st;
            }
            done[j] += n;
            progress = 1;
        }
    }
    free(buf);
    zckpt_meta m;
    fill_meta(&m, step);
    return zckpt_writer_commit(w, &m);
}

/* Reads everything back with `chunk`-element reads and checks values and meta. */
static void check_ckpt(const char *dir, uint32_t seed, int64_t step, uint64_t chunk)
{
    zckpt_reader *r = NULL;
    zoff_status st = zckpt_reader_open(dir, &r);
    if (st) fprintf(stderr, "open %s: %s\n", dir, zoff__last_error_tls());
    assert_int_equal(st, ZOFF_OK);
    assert_int_equal(zckpt_reader_count(r), NT);
    zckpt_meta m, want;
    assert_int_equal(zckpt_reader_meta(r, &m), ZOFF_OK);
    fill_meta(&want, step);
    assert_int_equal(m.step, step);
    assert_true(m.loss_scale == want.loss_scale);
    assert_int_equal(m.scaler_good_steps, want.scaler_good_steps);
    assert_int_equal(m.scaler_hysteresis, want.scaler_hysteresis);
    assert_int_equal(m.ngroups, 3);
    for (int g = 0; g < 3; g++)
        assert_memory_equal(&m.groups[g], &want.groups[g], sizeof m.groups[g]);
    assert_string_equal(m.extra_json, want.extra_json);

    float *got = zt_malloc(sizeof(float) * 100003);
    float *ref = zt_malloc(sizeof(float) * 100003);
    for (size_t j = 0; j < NT; j++) {
        const zckpt_tensor *t = zckpt_reader_tensor(r, j);
        assert_string_equal(t->name, specs[j].name);
        assert_int_equal(t->numel, specs[j].numel);
        size_t idx = 99;
        assert_int_equal(zckpt_reader_find(r, specs[j].name, &idx), ZOFF_OK);
        assert_int_equal(idx, j);
        uint64_t pos = 0;
        while (pos < t->numel) {
            uint64_t n = ZOFF_MIN(chunk, t->numel - pos);
            st = zckpt_reader_read(r, j, got + pos, n);
            if (st) fprintf(stderr, "%s\n", zoff__last_error_tls());
            assert_int_equal(st, ZOFF_OK);
            pos += n;
        }
        if (t->numel == 0) assert_int_equal(zckpt_reader_read(r, j, NULL, 0), ZOFF_OK);
        for (uint64_t i = 0; i < t->numel; i++) ref[i] = value(seed, j, i);
        assert_memory_equal(got, ref, t->numel * sizeof(float));
        /* past the end is an error; rewind reads it again */
        if (t->numel) {
            assert_int_equal(zckpt_reader_read(r, j, got, 1), ZOFF_EINVAL);
            assert_int_equal(zckpt_reader_rewind(r, j), ZOFF_OK);
            assert_int_equal(zckpt_reader_read(r, j, got, 1), ZOFF_OK);
            assert_true(got[0] == ref[0]);
        }
    }
    size_t idx;
    assert_int_equal(zckpt_reader_find(r, "nope", &idx), ZOFF_ENOTFOUND);
    assert_int_equal(zckpt_reader_verify(r), ZOFF_OK);
    zckpt_info info;
    assert_int_equal(zckpt_reader_info(r, &info), ZOFF_OK);
    assert_int_equal(info.format_version, ZCKPT_FORMAT_VERSION);
    assert_string_equal(info.zoff_version, zoff_version());
    uint64_t total = 0;
    for (size_t j = 0; j < NT; j++) total += specs[j].numel;
    assert_int_equal(info.total_numel, total);
    char data[sizeof info.path + 32];
    snprintf(data, sizeof data, "%s/%s", info.path, ZCKPT_DATA_FILE);
    struct stat sb;
    assert_int_equal(stat(data, &sb), 0);
    assert_int_equal(info.data_bytes, (uint64_t)sb.st_size);
    uint64_t off;
    uint32_t crc;
    assert_int_equal(zckpt_reader_tensor_info(r, NT - 1, &off, &crc), ZOFF_OK);
    assert_int_equal(off + specs[NT - 1].numel * 4, (uint64_t)sb.st_size);
    free(got);
    free(ref);
    zckpt_reader_close(r);
}

/* A scratch directory on tmpfs (/dev/shm) when there is one, else under $ZOFF_TEST_TMP. The
 * crash and format tests save ~40 checkpoints: on a disk shared by busy neighbours their fsyncs
 * alone can take tens of seconds, and what they check (process death, file contents) does not
 * depend on the filesystem; the other tests use the disk. */
static char *fast_tmpdir(const char *prefix)
{
    static int counter;
    struct stat sb;
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0) {
        char *path = NULL;
        if (asprintf(&path, "/dev/shm/zoff-%s-%d-%d", prefix, (int)getpid(), counter++) > 0 &&
            mkdir(path, 0755) == 0)
            return path;
        free(path);
    }
    return zt_mkdtemp(prefix);
}

/* Number of "<base>.tmp-*" / "<base>.old-*" entries next to dir. */
static int leftovers(const char *parent, const char *base)
{
    DIR *d = opendir(parent);
    assert_non_null(d);
    int n = 0;
    size_t bl = strlen(base);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, base, bl) == 0 &&
            (!strncmp(de->d_name + bl, ".tmp-", 5) || !strncmp(de->d_name + bl, ".old-", 5)))
            n++;
    }
    closedir(d);
    return n;
}

static void test_round_trip(void **state)
{
    (void)state;
    char *parent = zt_mkdtemp("ckpt");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nested/ck", parent); /* parents are created */
    static const uint64_t wchunks[] = {1, 7, 4096, 1u << 20};
    static const uint64_t rchunks[] = {4096, 3, 1u << 20, 1};
    for (size_t k = 0; k < ZOFF_ARRAY_SIZE(wchunks); k++) {
        zoff_status st = write_ckpt(dir, (uint32_t)k + 1, (int64_t)k * 100, wchunks[k]);
        if (st) fprintf(stderr, "%s\n", zoff__last_error_tls());
        assert_int_equal(st, ZOFF_OK);
        check_ckpt(dir, (uint32_t)k + 1, (int64_t)k * 100, rchunks[k]);
        char nested[600];
        snprintf(nested, sizeof nested, "%s/nested", parent);
        assert_int_equal(leftovers(nested, "ck"), 0);
    }
    /* a trailing slash names the same directory */
    char slash[600];
    snprintf(slash, sizeof slash, "%s/", dir);
    assert_int_equal(write_ckpt(slash, 9, 900, 5000), ZOFF_OK);
    check_ckpt(dir, 9, 900, 5000);
    zt_rmtree(parent);
    free(parent);
}

static void test_writer_errors(void **state)
{
    (void)state;
    char *parent = zt_mkdtemp("ckpt");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    assert_int_equal(write_ckpt(dir, 1, 10, 512), ZOFF_OK);

    zckpt_tensor t[2];
    memset(t, 0, sizeof t);
    zckpt_writer *w = NULL;
    snprintf(t[0].name, sizeof t[0].name, "a");
    snprintf(t[1].name, sizeof t[1].name, "a");
    t[0].numel = t[1].numel = 4;
    assert_int_equal(zckpt_writer_open(dir, t, 2, &w), ZOFF_EINVAL);
    assert_non_null(strstr(zoff__last_error_tls(), "\"a\" appears twice"));
    snprintf(t[1].name, sizeof t[1].name, "__metadata__");
    assert_int_equal(zckpt_writer_open(dir, t, 2, &w), ZOFF_EINVAL);
    assert_int_equal(zckpt_writer_open("", t, 1, &w), ZOFF_EINVAL);
    assert_int_equal(zckpt_writer_open("/", t, 1, &w), ZOFF_EINVAL);
    snprintf(t[1].name, sizeof t[1].name, "b");

    /* overrun, bad index, unfinished tensor: the old checkpoint is untouched */
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(zckpt_writer_open(dir, t, 2, &w), ZOFF_OK);
    assert_int_equal(leftovers(parent, "ck"), 1); /* its temporary directory */
    assert_int_equal(zckpt_writer_write(w, 0, v, 5), ZOFF_EINVAL);
    assert_int_equal(zckpt_writer_write(w, 2, v, 1), ZOFF_EINVAL);
    assert_int_equal(zckpt_writer_write(w, 0, v, 4), ZOFF_OK);
    assert_int_equal(zckpt_writer_write(w, 1, v, 3), ZOFF_OK);
    zckpt_meta m;
    fill_meta(&m, 5);
    assert_int_equal(zckpt_writer_commit(w, &m), ZOFF_ESTATE);
    assert_non_null(strstr(zoff__last_error_tls(), "\"b\" has 3 of its 4"));
    assert_int_equal(leftovers(parent, "ck"), 0);
    check_ckpt(dir, 1, 10, 999);

    /* extra must be a JSON object */
    assert_int_equal(zckpt_writer_open(dir, t, 2, &w), ZOFF_OK);
    assert_int_equal(zckpt_writer_write(w, 0, v, 4), ZOFF_OK);
    assert_int_equal(zckpt_writer_write(w, 1, v, 4), ZOFF_OK);
    snprintf(m.extra_json, sizeof m.extra_json, "[1, 2]");
    assert_int_equal(zckpt_writer_commit(w, &m), ZOFF_EINVAL);
    assert_int_equal(zckpt_writer_open(dir, t, 2, &w), ZOFF_OK);
    assert_int_equal(zckpt_writer_commit(w, NULL), ZOFF_EINVAL);
    assert_int_equal(zckpt_writer_open(dir, t, 2, &w), ZOFF_OK);
    zckpt_writer_abort(w);
    zckpt_writer_abort(NULL);
    assert_int_equal(leftovers(parent, "ck"), 0);
    check_ckpt(dir, 1, 10, 999);

    /* never replace a directory that is not a checkpoint */
    char other[600], file[700];
    snprintf(other, sizeof other, "%s/precious", parent);
    mkdir(other, 0755);
    snprintf(file, sizeof file, "%s/notes.txt", other);
    FILE *f = fopen(file, "w");
    fputs("keep me", f);
    fclose(f);
    assert_int_equal(zckpt_writer_open(other, t, 2, &w), -EEXIST);
    assert_int_equal(access(file, F_OK), 0);
    /* an empty directory is fine */
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty", parent);
    mkdir(empty, 0755);
    assert_int_equal(write_ckpt(empty, 3, 30, 100000), ZOFF_OK);
    check_ckpt(empty, 3, 30, 100000);

    /* a checkpoint with no tensors at all */
    char none[600];
    snprintf(none, sizeof none, "%s/none", parent);
    assert_int_equal(zckpt_writer_open(none, NULL, 0, &w), ZOFF_OK);
    assert_int_equal(zckpt_writer_commit(w, &m), ZOFF_EINVAL); /* m.extra still "[1, 2]" */
    fill_meta(&m, 1);
    m.extra_json[0] = '\0';
    assert_int_equal(zckpt_writer_open(none, NULL, 0, &w), ZOFF_OK);
    assert_int_equal(zckpt_writer_commit(w, &m), ZOFF_OK);
    zckpt_reader *r = NULL;
    assert_int_equal(zckpt_reader_open(none, &r), ZOFF_OK);
    assert_int_equal(zckpt_reader_count(r), 0);
    zckpt_meta got;
    zckpt_reader_meta(r, &got);
    assert_string_equal(got.extra_json, "");
    assert_int_equal(zckpt_reader_verify(r), ZOFF_OK);
    zckpt_reader_close(r);

    zt_rmtree(parent);
    free(parent);
}

/* ---- crash safety ------------------------------------------------------------------------- */
typedef struct kill_at {
    const char *point;
    uint64_t count; /* for "chunk" */
} kill_at;

static void kill_hook(const char *point, uint64_t count, void *arg)
{
    const kill_at *k = arg;
    if (strcmp(point, k->point) == 0 && (strcmp(point, "chunk") != 0 || count == k->count))
        raise(SIGKILL);
}

static void crash_cases(int exchange)
{
    static const struct {
        kill_at at;
        int new_visible; /* 1: the interrupted save had already swapped in the new one */
        int fallback_only;
    } cases[] = {
        {{"open", 0}, 0, 0},   {{"chunk", 1}, 0, 0},   {{"chunk", 5}, 0, 0},
        {{"header", 0}, 0, 0}, {{"synced", 0}, 0, 0},  {{"manifest", 0}, 0, 0},
        {{"aside", 0}, 0, 1},  {{"swapped", 0}, 1, 0},
    };
    char *parent = fast_tmpdir("ckpt-crash");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    uint32_t seed = 100;
    int64_t step = 1;
    assert_int_equal(write_ckpt(dir, seed, step, 30000), ZOFF_OK);

    for (size_t c = 0; c < ZOFF_ARRAY_SIZE(cases); c++) {
        /* with the exchange the fallback's point is never reached: the child's save completes */
        int completes = cases[c].fallback_only && exchange;
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            kill_at k = cases[c].at;
            zckpt__set_rename_exchange(exchange);
            zckpt__set_fault_hook(kill_hook, &k);
            write_ckpt(dir, seed + 1, step + 1, 30000);
            _exit(3); /* not killed: the point was never reached */
        }
        int ws = 0;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        if (completes ? !(WIFEXITED(ws) && WEXITSTATUS(ws) == 3)
                      : !(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL)) {
            fprintf(stderr, "child for point %s: status 0x%x, expected %s\n", cases[c].at.point, ws,
                    completes ? "a completed save" : "SIGKILL there");
            fail();
        }
        if (cases[c].new_visible || completes) {
            seed++;
            step++;
        }
        /* whatever happened, DIR reads whole: the old one, or the new one once swapped */
        check_ckpt(dir, seed, step, 4096);
        if (!strcmp(cases[c].at.point, "aside") && !completes) {
            zckpt_reader *r = NULL;
            assert_int_equal(zckpt_reader_open(dir, &r), ZOFF_OK);
            zckpt_info info;
            zckpt_reader_info(r, &info);
            assert_int_equal(info.recovered, 1);
            assert_non_null(strstr(info.path, ".old-"));
            zckpt_reader_close(r);
        }
        /* the next save recovers and cleans every leftover */
        seed += 10;
        step += 10;
        assert_int_equal(write_ckpt(dir, seed, step, 30000), ZOFF_OK);
        assert_int_equal(leftovers(parent, "ck"), 0);
        check_ckpt(dir, seed, step, 30000);
    }
    zt_rmtree(parent);
    free(parent);
}

static void test_crash_exchange(void **state)
{
    (void)state;
    crash_cases(1);
}

static void test_crash_fallback(void **state)
{
    (void)state;
    crash_cases(0);
}

static void test_live_leftover(void **state)
{
    (void)state;
    char *parent = zt_mkdtemp("ckpt");
    char dir[512], live[600], junk[700];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    /* pid 1 is always alive: its "save in progress" must be neither removed nor read */
    snprintf(live, sizeof live, "%s.tmp-1", dir);
    assert_int_equal(mkdir(live, 0755), 0);
    snprintf(junk, sizeof junk, "%s/%s", live, ZCKPT_MANIFEST_FILE);
    FILE *f = fopen(junk, "w");
    fputs("garbage", f);
    fclose(f);
    assert_int_equal(write_ckpt(dir, 5, 50, 4096), ZOFF_OK);
    assert_int_equal(access(junk, F_OK), 0);
    check_ckpt(dir, 5, 50, 4096);
    zt_rmtree(parent);
    free(parent);
}

/* ---- corruption and format errors ------------------------------------------------------------ */
static void patch(const char *path, uint64_t off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void read_at(const char *path, uint64_t off, void *bytes, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, bytes, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void test_corrupt(void **state)
{
    (void)state;
    char *parent = zt_mkdtemp("ckpt");
    char dir[512], data[600];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    snprintf(data, sizeof data, "%s/%s", dir, ZCKPT_DATA_FILE);
    assert_int_equal(write_ckpt(dir, 7, 70, 4096), ZOFF_OK);

    zckpt_reader *r = NULL;
    assert_int_equal(zckpt_reader_open(dir, &r), ZOFF_OK);
    size_t bad;
    assert_int_equal(zckpt_reader_find(r, "big.exp_avg", &bad), ZOFF_OK);
    uint64_t off;
    assert_int_equal(zckpt_reader_tensor_info(r, bad, &off, NULL), ZOFF_OK);
    zckpt_reader_close(r);
    uint8_t byte;
    read_at(data, off + 12345, &byte, 1);
    byte ^= 0x10;
    patch(data, off + 12345, &byte, 1);

    assert_int_equal(zckpt_reader_open(dir, &r), ZOFF_OK); /* structure is fine */
    assert_int_equal(zckpt_reader_verify(r), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff__last_error_tls(), "\"big.exp_avg\""));
    assert_non_null(strstr(zoff__last_error_tls(), "1 of 10 tensors"));
    float *buf = zt_malloc(sizeof(float) * 100003);
    /* reading it fails at its last chunk, naming it; the others read fine */
    assert_int_equal(zckpt_reader_read(r, bad, buf, 50000), ZOFF_OK);
    assert_int_equal(zckpt_reader_read(r, bad, buf, 50003), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff__last_error_tls(), "tensor \"big.exp_avg\" is corrupt"));
    assert_int_equal(zckpt_reader_read(r, bad + 1, buf, 100003), ZOFF_OK);
    zckpt_reader_close(r);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", dir, NULL}), 1);
    free(buf);
    zt_rmtree(parent);
    free(parent);
}

/* Rewrites the manifest with `from` replaced by `to` (first occurrence). */
static void edit_manifest(const char *dir, const char *from, const char *to)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, ZCKPT_MANIFEST_FILE);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 16], out[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char *at = strstr(text, from);
    assert_non_null(at);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    f = fopen(path, "w");
    fputs(out, f);
    fclose(f);
}

static void expect_format_error(const char *dir, const char *what)
{
    zckpt_reader *r = NULL;
    zoff_status st = zckpt_reader_open(dir, &r);
    if (st != ZOFF_EFORMAT || !strstr(zoff__last_error_tls(), what)) {
        fprintf(stderr, "expected EFORMAT with \"%s\", got %s: %s\n", what, zoff_status_name(st),
                zoff__last_error_tls());
        fail();
    }
    assert_null(r);
}

/* Open + verify: ZOFF_OK, or the first failure. */
static zoff_status open_verify(const char *dir)
{
    zckpt_reader *r = NULL;
    zoff_status st = zckpt_reader_open(dir, &r);
    if (st == ZOFF_OK) st = zckpt_reader_verify(r);
    zckpt_reader_close(r);
    return st;
}

/* Flips bit 0 of each byte at `stride` steps in [from, to) of `path`; every one must fail. */
static void flip_each(const char *dir, const char *path, uint64_t from, uint64_t to,
                      uint64_t stride, const char *what)
{
    size_t n = 0;
    for (uint64_t off = from; off < to; off += stride, n++) {
        uint8_t b, x;
        read_at(path, off, &b, 1);
        x = b ^ 0x01;
        patch(path, off, &x, 1);
        zoff_status st = open_verify(dir);
        patch(path, off, &b, 1);
        if (st != ZOFF_ECORRUPT && st != ZOFF_EFORMAT) {
            fprintf(stderr, "%s: flipping byte %llu ('%c') went unnoticed (%s)\n", what,
                    (unsigned long long)off, b >= 0x20 && b < 0x7f ? b : '?', zoff_status_name(st));
            fail();
        }
    }
    print_message("%s: %zu flipped bytes, each caught\n", what, n);
    assert_int_equal(open_verify(dir), ZOFF_OK);
}

/* Rewrites the manifest's closing checksum for its current text (an edit made "consistent"). */
static void reseal_manifest(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, ZCKPT_MANIFEST_FILE);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char *at = strstr(text, ",\n\t\"manifest_crc32c\"");
    assert_non_null(at);
    uint32_t crc = zoff__crc32c(0, text, (size_t)(at - text));
    snprintf(at, sizeof text - (size_t)(at - text), ",\n\t\"manifest_crc32c\":\t\"%08x\"\n}\n",
             crc);
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_every_byte(void **state)
{
    (void)state;
    char *parent = fast_tmpdir("ckpt-bytes");
    char dir[512], data[600], man[600];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    snprintf(data, sizeof data, "%s/%s", dir, ZCKPT_DATA_FILE);
    snprintf(man, sizeof man, "%s/%s", dir, ZCKPT_MANIFEST_FILE);
    assert_int_equal(write_ckpt(dir, 3, 1234, 4096), ZOFF_OK);
    assert_int_equal(open_verify(dir), ZOFF_OK);
    struct stat sm, sd;
    assert_int_equal(stat(man, &sm), 0);
    assert_int_equal(stat(data, &sd), 0);
    uint8_t lenb[8];
    read_at(data, 0, lenb, 8);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
    /* the manifest: every byte */
    flip_each(dir, man, 0, (uint64_t)sm.st_size, 1, "manifest");
    /* the safetensors length and JSON header: every byte of the JSON, the padding sampled */
    char *h = zt_malloc(hl + 1);
    read_at(data, 8, h, hl);
    h[hl] = '\0';
    uint64_t json_end = 8 + strlen(h);
    while (json_end > 8 && h[json_end - 9] == ' ') json_end--;
    free(h);
    flip_each(dir, data, 0, json_end + 8, 1, "safetensors header");
    flip_each(dir, data, json_end + 8, 8 + hl, 509, "header padding");
    /* the data: sampled, first and last byte included */
    flip_each(dir, data, 8 + hl, (uint64_t)sd.st_size, 4093, "data");
    flip_each(dir, data, (uint64_t)sd.st_size - 1, (uint64_t)sd.st_size, 1, "last data byte");
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", dir, NULL}), 0);
    uint8_t b;
    read_at(man, 40, &b, 1);
    b ^= 1;
    patch(man, 40, &b, 1);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", dir, NULL}), 1);

    /* edits made consistent (checksum recomputed): the values are range-checked like a config */
    assert_int_equal(write_ckpt(dir, 3, 1234, 4096), ZOFF_OK);
    edit_manifest(dir, "\"loss_scale\":\t4096", "\"loss_scale\":\t-4096");
    reseal_manifest(dir);
    expect_format_error(dir, "loss_scale");
    assert_int_equal(write_ckpt(dir, 3, 1234, 4096), ZOFF_OK);
    edit_manifest(dir, "\"weight_decay\":\t0.01", "\"weight_decay\":\t1e30");
    reseal_manifest(dir);
    expect_format_error(dir, "weight_decay");
    assert_int_equal(write_ckpt(dir, 3, 1234, 4096), ZOFF_OK);
    edit_manifest(dir, "\"step\":\t1234", "\"step\":\t-5");
    reseal_manifest(dir);
    expect_format_error(dir, "\"step\" -5 is negative");
    /* a plausible value: caught by the copy in the safetensors metadata */
    assert_int_equal(write_ckpt(dir, 3, 1234, 4096), ZOFF_OK);
    edit_manifest(dir, "\"step\":\t1234", "\"step\":\t1235");
    reseal_manifest(dir);
    assert_int_equal(open_verify(dir), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff__last_error_tls(), "\"step\""));
    /* without resealing: the manifest's own checksum */
    assert_int_equal(write_ckpt(dir, 3, 1234, 4096), ZOFF_OK);
    edit_manifest(dir, "\"step\":\t1234", "\"step\":\t1235");
    assert_int_equal(open_verify(dir), ZOFF_ECORRUPT);
    zt_rmtree(parent);
    free(parent);
}

static void test_format_errors(void **state)
{
    (void)state;
    char *parent = fast_tmpdir("ckpt");
    char dir[512], data[600];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    snprintf(data, sizeof data, "%s/%s", dir, ZCKPT_DATA_FILE);
    zckpt_reader *r = NULL;
    assert_int_equal(zckpt_reader_open(dir, &r), -ENOENT);

    /* truncated data */
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    struct stat sb;
    stat(data, &sb);
    assert_int_equal(truncate(data, sb.st_size - 4), 0);
    expect_format_error(dir, "truncated");
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "show", dir, NULL}), 1);
    assert_int_equal(truncate(data, 5), 0);
    expect_format_error(dir, "truncated");

    /* an impossible header length */
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    patch(data, 0, huge, 8);
    expect_format_error(dir, "header length");

    /* a header that is not JSON */
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    patch(data, 8, "[garbage", 8);
    expect_format_error(dir, "header is not a JSON object");

    /* header and manifest disagree */
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    edit_manifest(dir, "\"layer1.b.master\"", "\"layer1.b.mister\"");
    expect_format_error(dir, "tensor \"layer1.b.mister\" of the manifest is missing");
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    edit_manifest(dir, "\"numel\":\t1000", "\"numel\":\t999");
    expect_format_error(dir, "layer0.w.master");

    /* unknown format version */
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    edit_manifest(dir, "\"format_version\":\t2", "\"format_version\":\t99");
    expect_format_error(dir, "format_version 99 is not supported");

    /* no manifest, no data file */
    assert_int_equal(write_ckpt(dir, 1, 1, 100003), ZOFF_OK);
    char mpath[600];
    snprintf(mpath, sizeof mpath, "%s/%s", dir, ZCKPT_MANIFEST_FILE);
    assert_int_equal(unlink(data), 0);
    expect_format_error(dir, "optimizer.safetensors is missing");
    assert_int_equal(unlink(mpath), 0);
    expect_format_error(dir, "no zoff_manifest.json");

    zt_rmtree(parent);
    free(parent);
}

static void test_cmd(void **state)
{
    (void)state;
    char *parent = zt_mkdtemp("ckpt");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    assert_int_equal(write_ckpt(dir, 2, 20, 4096), ZOFF_OK);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "show", dir, NULL}), 0);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", dir, NULL}), 0);
    assert_int_equal(zoff_cmd_ckpt(2, (char *[]){"ckpt", "show", NULL}), 2);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "fix", dir, NULL}), 2);
    assert_int_equal(zoff_cmd_ckpt(2, (char *[]){"ckpt", "--help", NULL}), 0);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing", parent);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", missing, NULL}), 1);
    zt_rmtree(parent);
    free(parent);
}

/* ---- several ranks (format 3) ------------------------------------------------------------- */
/* Value of element i of tensor j: value(seed, j, i), or the check_safetensors.py formula. */
static float elem(int fixture, uint32_t seed, size_t j, uint64_t i)
{
    if (fixture) return (float)((int)((i * 7 + j * 13) % 251) - 125) * 0.0625f;
    return value(seed, j, i);
}

/* Writes a checkpoint the way `nranks` ranks do (this process plays each rank in turn): the
 * tensors' flat space (list order) cut into ranges of ceil(total / nranks), each rank's file
 * holding the "<tensor>[b:e]" slices its range covers, then the manifest. */
static zoff_status write_sliced(const char *dir, uint32_t seed, int64_t step, int nranks,
                                int fixture)
{
    uint64_t total = 0;
    for (size_t j = 0; j < NT; j++) total += specs[j].numel;
    uint64_t S = (total + (uint64_t)nranks - 1) / (uint64_t)nranks;
    zckpt_tensor *t = tensor_list();
    t[0].has_step = 1;
    t[0].adam_step = step - 1;
    zckpt_meta m;
    fill_meta(&m, step);
    if (fixture) m.loss_scale = 32768.0f;
    long pid = 0;
    char tmp[600];
    zckpt_file_rec files[8];
    zckpt_slice slices[NT * 8];
    size_t ns = 0;
    zoff_status st = zckpt_slices_begin(dir, &pid);
    if (st < 0) {
        free(t);
        return st;
    }
    assert_int_equal(zckpt_slices_tmp_path(dir, pid, tmp, sizeof tmp), ZOFF_OK);
    float *buf = zt_malloc(sizeof(float) * 100003);
    for (int r = 0; r < nranks && st == ZOFF_OK; r++) {
        uint64_t b = (uint64_t)r * S, e = ZOFF_MIN(b + S, total), flat = 0;
        zckpt_tensor pieces[NT];
        size_t np = 0, first = ns;
        for (size_t j = 0; j < NT; flat += specs[j].numel, j++) {
            uint64_t lo = ZOFF_MAX(flat, b), hi = ZOFF_MIN(flat + specs[j].numel, e);
            if (hi <= lo) continue;
            memset(&pieces[np], 0, sizeof pieces[np]);
            snprintf(pieces[np].name, sizeof pieces[np].name, "%s[%llu:%llu]", specs[j].name,
                     (unsigned long long)(lo - flat), (unsigned long long)(hi - flat));
            pieces[np].numel = hi - lo;
            slices[ns++] = (zckpt_slice){j, r, lo - flat, hi - lo, 0, 0};
            np++;
        }
        zckpt_writer *w = NULL;
        st = zckpt_slice_writer_open(dir, tmp, r, pieces, np, &w);
        for (size_t k = 0; k < np && st == ZOFF_OK; k++) {
            const zckpt_slice *sl = &slices[first + k];
            for (uint64_t i = 0; i < sl->count; i++)
                buf[i] = elem(fixture, seed, sl->tensor, sl->begin + i);
            st = zckpt_writer_write(w, k, buf, sl->count);
        }
        uint64_t offs[NT];
        uint32_t crcs[NT];
        if (st == ZOFF_OK) {
            st = zckpt_slice_writer_finish(w, &m, offs, crcs, &files[r]);
            for (size_t k = 0; k < np && st == ZOFF_OK; k++) {
                slices[first + k].offset = offs[k];
                slices[first + k].crc32c = crcs[k];
            }
        } else {
            zckpt_writer_abort(w);
        }
    }
    free(buf);
    if (st == ZOFF_OK)
        st = zckpt_slices_commit(dir, tmp, t, NT, &m, files, nranks, slices, ns);
    else
        zckpt_slices_abort(tmp);
    free(t);
    return st;
}

static void test_sliced(void **state)
{
    (void)state;
    char *parent = fast_tmpdir("ckpt-sliced");
    char dir[512], f1[600], man[600];
    snprintf(dir, sizeof dir, "%s/ck", parent);
    snprintf(f1, sizeof f1, "%s/optimizer.rank00001.safetensors", dir);
    snprintf(man, sizeof man, "%s/%s", dir, ZCKPT_MANIFEST_FILE);
    /* a single-file checkpoint replaced by a sliced one and back: no leftovers */
    assert_int_equal(write_ckpt(dir, 1, 10, 4096), ZOFF_OK);
    assert_int_equal(write_sliced(dir, 5, 50, 3, 0), ZOFF_OK);
    assert_int_equal(leftovers(parent, "ck"), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, ZCKPT_DATA_FILE);
    assert_int_not_equal(access(p, F_OK), 0); /* the old file went with the old checkpoint */
    uint64_t total = 0;
    for (size_t j = 0; j < NT; j++) total += specs[j].numel;
    uint64_t S = (total + 2) / 3;
    for (int r = 0; r < 3; r++) { /* each file holds exactly its rank's range (+ its header) */
        snprintf(p, sizeof p, "%s/optimizer.rank%05d.safetensors", dir, r);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        uint64_t own = ZOFF_MIN(S, total - (uint64_t)r * S), hl = 0;
        uint8_t lenb[8];
        read_at(p, 0, lenb, 8);
        for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
        assert_int_equal((uint64_t)sb.st_size, 8 + hl + own * 4);
    }

    zckpt_reader *r = NULL;
    assert_int_equal(zckpt_reader_open(dir, &r), ZOFF_OK);
    zckpt_info info;
    assert_int_equal(zckpt_reader_info(r, &info), ZOFF_OK);
    assert_int_equal(info.format_version, ZCKPT_FORMAT_SLICED);
    assert_int_equal(info.nfiles, 3);
    assert_int_equal(info.total_numel, total);
    zckpt_meta m;
    assert_int_equal(zckpt_reader_meta(r, &m), ZOFF_OK);
    assert_int_equal(m.step, 50);
    assert_int_equal(zckpt_reader_tensor(r, 0)->adam_step, 49);
    assert_int_equal(zckpt_reader_verify(r), ZOFF_OK);
    float *buf = zt_malloc(sizeof(float) * 100003);
    size_t big;
    assert_int_equal(zckpt_reader_find(r, "big.exp_avg", &big), ZOFF_OK);
    assert_int_equal(zckpt_reader_piece_count(r, big), 2); /* crosses a rank boundary */
    zckpt_piece_info pi;
    assert_int_equal(zckpt_reader_piece(r, big, 1, &pi), ZOFF_OK);
    assert_int_equal(pi.rank, 2);
    assert_string_equal(pi.file, "optimizer.rank00002.safetensors");
    for (size_t j = 0; j < NT; j++) { /* sequential reads across the slices, odd chunks */
        for (uint64_t done = 0; done < specs[j].numel;) {
            uint64_t n = ZOFF_MIN(777, specs[j].numel - done);
            assert_int_equal(zckpt_reader_read(r, j, buf, n), ZOFF_OK);
            for (uint64_t i = 0; i < n; i++) assert_true(buf[i] == value(5, j, done + i));
            done += n;
        }
        assert_int_equal(zckpt_reader_read(r, j, buf, 0), ZOFF_OK);
    }
    /* any range, as a reader with another rank count asks for it */
    uint64_t ranges[][2] = {{0, 100003}, {pi.begin - 5, 10}, {pi.begin, 1}, {100002, 1}, {7, 0}};
    for (size_t k = 0; k < ZOFF_ARRAY_SIZE(ranges); k++) {
        assert_int_equal(zckpt_reader_read_range(r, big, ranges[k][0], buf, ranges[k][1]), ZOFF_OK);
        for (uint64_t i = 0; i < ranges[k][1]; i++)
            assert_true(buf[i] == value(5, big, ranges[k][0] + i));
    }
    assert_int_equal(zckpt_reader_read_range(r, big, 100000, buf, 4), ZOFF_EINVAL);
    zckpt_reader_close(r);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "show", dir, NULL}), 0);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", dir, NULL}), 0);

    /* a corrupt byte in rank 1's slice: named with its file, rank and bytes */
    assert_int_equal(zckpt_reader_open(dir, &r), ZOFF_OK);
    size_t k0 = 0;
    for (size_t j = 0; j < NT; j++)
        for (size_t k = 0; k < zckpt_reader_piece_count(r, j); k++) {
            assert_int_equal(zckpt_reader_piece(r, j, k, &pi), ZOFF_OK);
            if (pi.rank == 1 && pi.numel > 100) {
                k0 = j;
                break;
            }
        }
    zckpt_piece_info bad;
    for (size_t k = 0; k < zckpt_reader_piece_count(r, k0); k++) {
        zckpt_reader_piece(r, k0, k, &bad);
        if (bad.rank == 1) break;
    }
    zckpt_reader_close(r);
    uint8_t byte;
    read_at(f1, bad.file_offset + 41, &byte, 1);
    byte ^= 0x20;
    patch(f1, bad.file_offset + 41, &byte, 1);
    assert_int_equal(zckpt_reader_open(dir, &r), ZOFF_OK);
    assert_int_equal(zckpt_reader_verify(r), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff__last_error_tls(), "optimizer.rank00001.safetensors bytes"));
    assert_non_null(strstr(zoff__last_error_tls(), "written by rank 1"));
    assert_non_null(strstr(zoff__last_error_tls(), "1 of "));
    assert_int_equal(zckpt_reader_read_range(r, k0, bad.begin + 3, buf, 2), ZOFF_ECORRUPT);
    assert_non_null(strstr(zoff__last_error_tls(), "optimizer.rank00001.safetensors"));
    if (bad.begin > 0) /* the other ranks' part of the tensor still reads */
        assert_int_equal(zckpt_reader_read_range(r, k0, 0, buf, bad.begin), ZOFF_OK);
    zckpt_reader_close(r);
    assert_int_equal(zoff_cmd_ckpt(3, (char *[]){"ckpt", "verify", dir, NULL}), 1);
    byte ^= 0x20;
    patch(f1, bad.file_offset + 41, &byte, 1);
    assert_int_equal(open_verify(dir), ZOFF_OK);

    /* every byte of the manifest and of a rank file's header is covered */
    struct stat sm;
    assert_int_equal(stat(man, &sm), 0);
    flip_each(dir, man, 0, (uint64_t)sm.st_size, 1, "sliced manifest");
    uint8_t lenb[8];
    read_at(f1, 0, lenb, 8);
    flip_each(dir, f1, 0, 8, 1, "rank file length");
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)lenb[i] << (8 * i);
    flip_each(dir, f1, 8, 8 + hl, 97, "rank file header");

    /* a missing or truncated rank file */
    snprintf(p, sizeof p, "%s/optimizer.rank00002.safetensors", dir);
    struct stat st2;
    assert_int_equal(stat(p, &st2), 0);
    assert_int_equal(truncate(p, st2.st_size - 4), 0);
    expect_format_error(dir, "optimizer.rank00002.safetensors is");
    expect_format_error(dir, "(truncated)");
    unlink(p);
    expect_format_error(dir, "optimizer.rank00002.safetensors is missing");
    /* and back to one file */
    assert_int_equal(write_ckpt(dir, 1, 10, 4096), ZOFF_OK);
    assert_int_equal(leftovers(parent, "ck"), 0);
    check_ckpt(dir, 1, 10, 4096);
    free(buf);
    zt_rmtree(parent);
    free(parent);
}

/* The fixture for check_safetensors.py: tensor j (manifest order), element i =
 * ((i * 7 + j * 13) % 251 - 125) * 0.0625, step 1234, loss scale 32768. */
static int write_fixture(const char *dir)
{
    zckpt_tensor *t = tensor_list();
    zckpt_writer *w = NULL;
    zoff_status st = zckpt_writer_open(dir, t, NT, &w);
    free(t);
    float *buf = zt_malloc(sizeof(float) * 100003);
    for (size_t j = 0; st == ZOFF_OK && j < NT; j++) {
        for (uint64_t i = 0; i < specs[j].numel; i++)
            buf[i] = (float)((int)((i * 7 + j * 13) % 251) - 125) * 0.0625f;
        st = zckpt_writer_write(w, j, buf, specs[j].numel);
    }
    free(buf);
    zckpt_meta m;
    fill_meta(&m, 1234);
    m.loss_scale = 32768.0f;
    if (st == ZOFF_OK)
        st = zckpt_writer_commit(w, &m);
    else
        zckpt_writer_abort(w);
    if (st < 0) {
        fprintf(stderr, "fixture %s: %s\n", dir, zoff__last_error_tls());
        return 1;
    }
    printf("wrote %s\n", dir);
    return 0;
}

/* ---- throughput (not part of the CTest run) ------------------------------------------------ */
static void evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* clean pages leave the page cache */
    close(fd);
}

static double gbps(uint64_t bytes, uint64_t ns)
{
    return (double)bytes / (double)ns;
}

/* `test_ckpt --bench GIB DIR`: save, verify and read a checkpoint of GIB GiB in DIR, each next
 * to the same operation done with plain pwrite/pread on a file of the same size in the same run
 * (the limit here), cold cache for the reads. */
static int bench(double gib, const char *dir)
{
    const uint64_t chunk = 16u << 20; /* elements per write: 64 MiB */
    uint64_t total_numel = (uint64_t)(gib * (double)(1u << 30) / 4.0);
    size_t nt = (size_t)((total_numel + chunk - 1) / chunk);
    zckpt_tensor *t = calloc(nt, sizeof *t);
    float *buf = zt_malloc(chunk * 4);
    for (uint64_t i = 0; i < chunk; i++) buf[i] = (float)i * 0.5f;
    for (size_t j = 0; j < nt; j++) {
        snprintf(t[j].name, sizeof t[j].name, "p%zu.%s", j / 3,
                 (const char *[]){"master", "exp_avg", "exp_avg_sq"}[j % 3]);
        t[j].numel = ZOFF_MIN(chunk, total_numel - (uint64_t)j * chunk);
    }
    uint64_t bytes = total_numel * 4;
    char raw[600], ck[600], data[700];
    snprintf(raw, sizeof raw, "%s/raw.bin", dir);
    snprintf(ck, sizeof ck, "%s/ck", dir);
    snprintf(data, sizeof data, "%s/%s", ck, ZCKPT_DATA_FILE);
    mkdir(dir, 0755);

    /* limit: plain buffered writes + fsync of the same bytes */
    uint64_t t0 = zoff__now_ns();
    int fd = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t j = 0; j < nt; j++)
        if (pwrite(fd, buf, t[j].numel * 4, (off_t)(j * chunk * 4)) < 0) return 1;
    fsync(fd);
    close(fd);
    uint64_t raw_w = zoff__now_ns() - t0;

    t0 = zoff__now_ns();
    zckpt_writer *w = NULL;
    zoff_status st = zckpt_writer_open(ck, t, nt, &w);
    for (size_t j = 0; st == ZOFF_OK && j < nt; j++) st = zckpt_writer_write(w, j, buf, t[j].numel);
    zckpt_meta m;
    fill_meta(&m, 1);
    if (st == ZOFF_OK) st = zckpt_writer_commit(w, &m);
    uint64_t save = zoff__now_ns() - t0;
    if (st < 0) {
        fprintf(stderr, "%s\n", zoff__last_error_tls());
        return 1;
    }

    evict(raw);
    t0 = zoff__now_ns();
    fd = open(raw, O_RDONLY);
    for (size_t j = 0; j < nt; j++)
        if (pread(fd, buf, t[j].numel * 4, (off_t)(j * chunk * 4)) < 0) return 1;
    close(fd);
    uint64_t raw_r = zoff__now_ns() - t0;

    evict(data);
    zckpt_reader *r = NULL;
    t0 = zoff__now_ns();
    st = zckpt_reader_open(ck, &r);
    if (st == ZOFF_OK) st = zckpt_reader_verify(r);
    uint64_t ver = zoff__now_ns() - t0;
    zckpt_reader_close(r);

    evict(data);
    t0 = zoff__now_ns();
    st = st ? st : zckpt_reader_open(ck, &r);
    for (size_t j = 0; st == ZOFF_OK && j < nt; j++) st = zckpt_reader_read(r, j, buf, t[j].numel);
    uint64_t rd = zoff__now_ns() - t0;
    zckpt_reader_close(r);
    if (st < 0) {
        fprintf(stderr, "%s\n", zoff__last_error_tls());
        return 1;
    }
    t0 = zoff__now_ns();
    uint32_t crc = zoff__crc32c(0, buf, chunk * 4);
    uint64_t crc_ns = zoff__now_ns() - t0;

    printf("checkpoint of %.2f GiB (%zu tensors) in %s, crc32c %s\n", (double)bytes / (1u << 30),
           nt, dir, zoff__crc32c_hw() ? "hardware" : "table");
    printf("  %-34s %8s %8s %8s\n", "operation", "GB/s", "limit", "ratio");
    printf("  %-34s %8.2f %8.2f %8.2f\n", "save (write+fsync+rename)", gbps(bytes, save),
           gbps(bytes, raw_w), (double)raw_w / (double)save);
    printf("  %-34s %8.2f %8.2f %8.2f\n", "verify (cold cache)", gbps(bytes, ver),
           gbps(bytes, raw_r), (double)raw_r / (double)ver);
    printf("  %-34s %8.2f %8.2f %8.2f\n", "read + crc check (cold cache)", gbps(bytes, rd),
           gbps(bytes, raw_r), (double)raw_r / (double)rd);
    printf("  crc32c alone: %.2f GB/s (64 MiB, %08x)\n", gbps(chunk * 4, crc_ns), crc);
    unlink(raw);
    zt_rmtree(ck);
    free(buf);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) return write_fixture(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--write-sliced-fixture")) {
        zoff_status st = write_sliced(argv[2], 0, 1234, 3, 1);
        if (st < 0) fprintf(stderr, "fixture %s: %s\n", argv[2], zoff__last_error_tls());
        return st < 0;
    }
    if (argc == 4 && !strcmp(argv[1], "--bench")) return bench(atof(argv[2]), argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_crash_exchange),
        cmocka_unit_test(test_crash_fallback),
        cmocka_unit_test(test_live_leftover),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_format_errors),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_cmd),
        cmocka_unit_test(test_sliced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
