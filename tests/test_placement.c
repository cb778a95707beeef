/*
 * test_placement.c — how ranks on one node share it (offload/topo.c): ztopo_split_cpus gives k
 * ranks that chose the same NUMA node contiguous, non-overlapping shares of its cores covering
 * all of them (the first ncpus % k ranks one more), one core each round-robin when there are
 * fewer cores than ranks, and leaves a single rank alone; ztopo_rank_paths gives local rank l of
 * L the paths l, l+L, ... of a comma-separated list, path l % n with fewer paths than ranks, and
 * the whole list when there is one path or one rank.
 */
#include <string.h>

#include "offload/arena.h"
#include "zt.h"

static void test_split(void **state)
{
    (void)state;
    ztopo_choice c;
    memset(&c, 0, sizeof c);
    c.numa_node = 1;
    c.ncpus = 10;
    for (int i = 0; i < 10; i++) c.cpus[i] = 100 + i;
    for (int k = 1; k <= 4; k++) {
        int seen[10] = {0}, total = 0;
        for (int r = 0; r < k; r++) {
            ztopo_choice o;
            ztopo_split_cpus(&c, r, k, &o);
            assert_int_equal(o.numa_node, 1);
            assert_int_equal(o.ncpus, 10 / k + (r < 10 % k ? 1 : 0));
            for (int i = 0; i < o.ncpus; i++) {
                int idx = o.cpus[i] - 100;
                assert_true(idx >= 0 && idx < 10);
                assert_int_equal(seen[idx], 0); /* no overlap */
                seen[idx] = 1;
                if (i > 0) assert_int_equal(o.cpus[i], o.cpus[i - 1] + 1); /* contiguous */
            }
            total += o.ncpus;
        }
        assert_int_equal(total, 10);
    }
    c.ncpus = 2;
    for (int r = 0; r < 3; r++) {
        ztopo_choice o;
        ztopo_split_cpus(&c, r, 3, &o);
        assert_int_equal(o.ncpus, 1);
        assert_int_equal(o.cpus[0], 100 + r % 2);
    }
}

static void test_paths(void **state)
{
    (void)state;
    char out[256];
    ztopo_rank_paths("/a,/b,/c,/d", 1, 2, out, sizeof out);
    assert_string_equal(out, "/b,/d");
    ztopo_rank_paths("/a,/b,/c,/d", 0, 2, out, sizeof out);
    assert_string_equal(out, "/a,/c");
    ztopo_rank_paths("/a,/b", 2, 3, out, sizeof out);
    assert_string_equal(out, "/a");
    ztopo_rank_paths("/a,/b", 1, 3, out, sizeof out);
    assert_string_equal(out, "/b");
    ztopo_rank_paths("/only", 3, 4, out, sizeof out);
    assert_string_equal(out, "/only");
    ztopo_rank_paths("/a,/b", 0, 1, out, sizeof out);
    assert_string_equal(out, "/a,/b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
