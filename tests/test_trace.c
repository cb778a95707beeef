/*
 * test_trace.c — runtime/trace.c: a NULL/empty path gives a disabled trace on which every call
 * is a no-op; four threads recording events concurrently on their own and on a shared track
 * produce a file that cJSON parses back as {"traceEvents": [...]} with every "X" event (pid 1,
 * tid = track, ts/dur in microseconds matching what was recorded, args kept), one thread_name
 * "M" event per track, names with quotes/newlines escaped; args that are not a JSON object are
 * dropped and counted; an unwritable path fails at open with -errno.
 */
#include <pthread.h>
#include <string.h>

#include <cJSON.h>

#include "runtime/trace.h"
#include "zt.h"

#define NTHREADS 4
#define NEVENTS  2000

static void test_disabled(void **state)
{
    (void)state;
    zztrace *t = (zztrace *)0x1;
    assert_int_equal(zztrace_open(NULL, &t), ZOFF_OK);
    assert_null(t);
    t = (zztrace *)0x1;
    assert_int_equal(zztrace_open("", &t), ZOFF_OK);
    assert_null(t);
    assert_int_equal(zztrace_track(NULL, "x"), 0);
    zztrace_event(NULL, 1, "e", 1, 2, "{}");
    assert_int_equal(zztrace_close(NULL), ZOFF_OK);
    assert_int_equal(zztrace_open("/x", NULL), ZOFF_EINVAL);
}

static void test_bad_path(void **state)
{
    (void)state;
    zztrace *t = NULL;
    zoff_status st = zztrace_open("/nonexistent-dir-zoff/t.json", &t);
    assert_int_equal(st, -ENOENT);
    assert_null(t);
    assert_non_null(strstr(zoff__last_error_tls(), "/nonexistent-dir-zoff/t.json"));
}

typedef struct worker {
    zztrace *t;
    int id;
    uint64_t base_ns;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char name[32];
    snprintf(name, sizeof name, "thread %d", w->id);
    int own = zztrace_track(w->t, name);
    int shared = zztrace_track(w->t, "shared \"track\"");
    for (int i = 0; i < NEVENTS; i++) {
        char args[64];
        uint64_t s = w->base_ns + (uint64_t)i * 10000;
        snprintf(args, sizeof args, "{\"w\": %d, \"i\": %d}", w->id, i);
        zztrace_event(w->t, (i % 4 == 0) ? shared : own, (i % 2) ? "odd" : "even", s,
                      s + 1500 + (uint64_t)w->id, args);
    }
    return NULL;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = zt_malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_threads(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("trace");
    char path[512];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    zztrace *t = NULL;
    assert_int_equal(zztrace_open(path, &t), ZOFF_OK);
    assert_non_null(t);
    uint64_t base = zoff__now_ns() + 1000000; /* 1 ms after open */

    int first = zztrace_track(t, "first");
    assert_true(first >= 1);
    assert_int_equal(zztrace_track(t, "first"), first);
    zztrace_event(t, first, "quote\"and\nnewline", base, base + 2500, NULL);
    zztrace_event(t, first, "bad args", base, base + 1, "not json");
    zztrace_event(t, first, "array args", base, base + 1, "[1]");

    pthread_t th[NTHREADS];
    worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){t, i, base};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(zztrace_close(t), ZOFF_OK);

    char *text = slurp(path);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    cJSON *evs = cJSON_GetObjectItem(root, "traceEvents");
    assert_true(cJSON_IsArray(evs));
    cJSON *other = cJSON_GetObjectItem(root, "otherData");
    assert_int_equal((int)cJSON_GetObjectItem(other, "dropped_events")->valuedouble, 2);

    /* track names by tid */
    char names[16][64];
    memset(names, 0, sizeof names);
    int x_events = 0, per_worker[NTHREADS] = {0}, quoted = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, evs)
    {
        const char *ph = cJSON_GetObjectItem(e, "ph")->valuestring;
        int tid = (int)cJSON_GetObjectItem(e, "tid")->valuedouble;
        assert_int_equal((int)cJSON_GetObjectItem(e, "pid")->valuedouble, 1);
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        if (!strcmp(ph, "M") && !strcmp(name, "thread_name")) {
            assert_true(tid >= 1 && tid < 16);
            snprintf(names[tid], sizeof names[tid], "%s",
                     cJSON_GetObjectItem(cJSON_GetObjectItem(e, "args"), "name")->valuestring);
        }
    }
    int shared_tid = 0;
    for (int i = 1; i < 16; i++)
        if (!strcmp(names[i], "shared \"track\"")) shared_tid = i;
    assert_true(shared_tid > 0);
    assert_string_equal(names[first], "first");

    cJSON_ArrayForEach(e, evs)
    {
        if (strcmp(cJSON_GetObjectItem(e, "ph")->valuestring, "X") != 0) continue;
        x_events++;
        int tid = (int)cJSON_GetObjectItem(e, "tid")->valuedouble;
        double ts = cJSON_GetObjectItem(e, "ts")->valuedouble;
        double dur = cJSON_GetObjectItem(e, "dur")->valuedouble;
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        assert_true(ts >= 1000.0); /* recorded 1 ms after open, in microseconds */
        if (!strcmp(name, "quote\"and\nnewline")) {
            quoted++;
            assert_int_equal(tid, first);
            assert_true(dur == 2.5);
            assert_null(cJSON_GetObjectItem(e, "args"));
            continue;
        }
        cJSON *args = cJSON_GetObjectItem(e, "args");
        assert_non_null(args);
        int wid = (int)cJSON_GetObjectItem(args, "w")->valuedouble;
        int i = (int)cJSON_GetObjectItem(args, "i")->valuedouble;
        assert_true(wid >= 0 && wid < NTHREADS && i >= 0 && i < NEVENTS);
        per_worker[wid]++;
        assert_string_equal(name, (i % 2) ? "odd" : "even");
        assert_true(dur == (1500.0 + wid) / 1000.0);
        char want[32];
        snprintf(want, sizeof want, "thread %d", wid);
        if (i % 4 == 0)
            assert_int_equal(tid, shared_tid);
        else
            assert_string_equal(names[tid], want);
    }
    assert_int_equal(quoted, 1);
    assert_int_equal(x_events, 1 + NTHREADS * NEVENTS);
    for (int i = 0; i < NTHREADS; i++) assert_int_equal(per_worker[i], NEVENTS);

    cJSON_Delete(root);
    free(text);
    zt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_bad_path),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
