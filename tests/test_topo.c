/*
 * test_topo.c — the NUMA choice of offload/arena.h (ztopo_choose_xml) on synthetic hwloc XML
 * machines written by this test: two packages with the GPU under package 1 (node 1 and its
 * PUs), under package 0, hyperthreaded with interleaved PU numbering (Intel style), a GPU whose
 * host bridge hangs off the machine (local to both nodes: the first is chosen and the reason
 * says so), a GPU that is not in the topology, no GPU on one and on two nodes, a configured
 * node (wins over the GPU), a node that does not exist, malformed XML; and on the live machine:
 * ztopo_choose and ztopo_bind_thread.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>

#include "offload/arena.h"
#include "zt.h"

#define GPU_BUS "0000:3b:00.0"

/* A synthetic machine. PU numbering: packed (package-major) or interleaved (thread-major, then
 * core, then package: PUs 0,2,4,.. on package 0 of a two-package machine). At most 32 PUs. */
typedef struct topo_spec {
    int packages, cores, threads; /* per package, per core */
    int interleave;
    int gpu_parent; /* -1 none, -2 under the machine, else the package index */
} topo_spec;

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 1;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
}

static int pu_index(const topo_spec *t, int p, int c, int h)
{
    if (t->interleave) return (h * t->cores + c) * t->packages + p;
    return (p * t->cores + c) * t->threads + h;
}

static unsigned pkg_mask(const topo_spec *t, int p)
{
    unsigned m = 0;
    for (int c = 0; c < t->cores; c++)
        for (int h = 0; h < t->threads; h++) m |= 1u << pu_index(t, p, c, h);
    return m;
}

static void put_gpu(sbuf *b, int *gp)
{
    put(b,
        "<object type=\"Bridge\" gp_index=\"%d\" bridge_type=\"0-1\" depth=\"0\" "
        "bridge_pci=\"0000:[3b-3b]\">\n",
        (*gp)++);
    put(b,
        "<object type=\"PCIDev\" gp_index=\"%d\" pci_busid=\"" GPU_BUS "\" "
        "pci_type=\"0302 [10de:2330] [10de:16c1] a1\" pci_link_speed=\"0.000000\"/>\n",
        (*gp)++);
    put(b, "</object>\n");
}

/* The XML text of the machine t (caller frees). */
static char *make_xml(const topo_spec *t)
{
    sbuf b = {NULL, 0, 0};
    b.cap = 4096;
    b.s = malloc(b.cap);
    assert_non_null(b.s);
    int gp = 1;
    unsigned all = 0, nodes = (1u << t->packages) - 1;
    for (int p = 0; p < t->packages; p++) all |= pkg_mask(t, p);
    put(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE topology SYSTEM "
            "\"hwloc2.dtd\">\n<topology version=\"2.0\">\n");
    put(&b,
        "<object type=\"Machine\" os_index=\"0\" cpuset=\"0x%08x\" complete_cpuset=\"0x%08x\" "
        "allowed_cpuset=\"0x%08x\" nodeset=\"0x%08x\" complete_nodeset=\"0x%08x\" "
        "allowed_nodeset=\"0x%08x\" gp_index=\"%d\">\n",
        all, all, all, nodes, nodes, nodes, gp++);
    for (int p = 0; p < t->packages; p++) {
        unsigned m = pkg_mask(t, p), n = 1u << p;
        put(&b,
            "<object type=\"Package\" os_index=\"%d\" cpuset=\"0x%08x\" "
            "complete_cpuset=\"0x%08x\" nodeset=\"0x%08x\" complete_nodeset=\"0x%08x\" "
            "gp_index=\"%d\">\n",
            p, m, m, n, n, gp++);
        put(&b,
            "<object type=\"NUMANode\" os_index=\"%d\" cpuset=\"0x%08x\" "
            "complete_cpuset=\"0x%08x\" nodeset=\"0x%08x\" complete_nodeset=\"0x%08x\" "
            "gp_index=\"%d\" local_memory=\"17179869184\"/>\n",
            p, m, m, n, n, gp++);
        for (int c = 0; c < t->cores; c++) {
            unsigned cm = 0;
            for (int h = 0; h < t->threads; h++) cm |= 1u << pu_index(t, p, c, h);
            put(&b,
                "<object type=\"Core\" os_index=\"%d\" cpuset=\"0x%08x\" "
                "complete_cpuset=\"0x%08x\" nodeset=\"0x%08x\" complete_nodeset=\"0x%08x\" "
                "gp_index=\"%d\">\n",
                p * t->cores + c, cm, cm, n, n, gp++);
            for (int h = 0; h < t->threads; h++) {
                int pu = pu_index(t, p, c, h);
                put(&b,
                    "<object type=\"PU\" os_index=\"%d\" cpuset=\"0x%08x\" "
                    "complete_cpuset=\"0x%08x\" nodeset=\"0x%08x\" "
                    "complete_nodeset=\"0x%08x\" gp_index=\"%d\"/>\n",
                    pu, 1u << pu, 1u << pu, n, n, gp++);
            }
            put(&b, "</object>\n");
        }
        if (t->gpu_parent == p) put_gpu(&b, &gp);
        put(&b, "</object>\n");
    }
    if (t->gpu_parent == -2) put_gpu(&b, &gp);
    put(&b, "</object>\n</topology>\n");
    return b.s;
}

/* Chooses on machine t and checks node and the exact CPU list. */
static void expect(const topo_spec *t, const char *bus, int forced, int node, unsigned cpus,
                   const char *reason_part)
{
    char *xml = make_xml(t);
    ztopo_choice c;
    zoff_status st = ztopo_choose_xml(xml, bus, forced, &c);
    if (st != 0) print_error("ztopo_choose_xml: %s\n", zoff__last_error_tls());
    assert_int_equal(st, 0);
    print_message("%d package(s)%s, GPU %s, forced %d -> node %d, %d CPU(s): %s\n", t->packages,
                  t->interleave ? " interleaved" : "", bus ? bus : "none", forced, c.numa_node,
                  c.ncpus, c.reason);
    assert_int_equal(c.numa_node, node);
    assert_int_equal(c.nnodes, t->packages);
    unsigned got = 0;
    for (int i = 0; i < c.ncpus; i++) {
        assert_true(c.cpus[i] >= 0 && c.cpus[i] < 32);
        if (i > 0) assert_true(c.cpus[i] > c.cpus[i - 1]); /* ascending, no duplicates */
        got |= 1u << c.cpus[i];
    }
    assert_int_equal(got, cpus);
    assert_int_equal(c.ncpus, __builtin_popcount(cpus));
    if (reason_part) assert_non_null(strstr(c.reason, reason_part));
    free(xml);
}

static void test_two_packages_gpu_on_1(void **state)
{
    (void)state;
    topo_spec t = {2, 4, 1, 0, 1};
    expect(&t, GPU_BUS, -1, 1, 0xf0, "nearest to GPU " GPU_BUS);
    expect(&t, "3b:00.0", -1, 1, 0xf0, NULL); /* bus id without the domain */
    t.gpu_parent = 0;
    expect(&t, GPU_BUS, -1, 0, 0x0f, "nearest");
}

static void test_interleaved_hyperthreads(void **state)
{
    (void)state;
    /* 2 packages x 4 cores x 2 threads: package 1 owns the odd PUs. */
    topo_spec t = {2, 4, 2, 1, 1};
    expect(&t, GPU_BUS, -1, 1, 0xaaaa, "nearest");
    t.gpu_parent = 0;
    expect(&t, GPU_BUS, -1, 0, 0x5555, "nearest");
}

static void test_gpu_without_locality(void **state)
{
    (void)state;
    topo_spec t = {2, 2, 1, 0, -2};
    expect(&t, GPU_BUS, -1, 0, 0x3, "local to nodes 0-1");
}

static void test_gpu_not_found_and_no_gpu(void **state)
{
    (void)state;
    topo_spec two = {2, 2, 1, 0, 1};
    expect(&two, "0000:af:00.0", -1, -1, 0xf, "not found");
    expect(&two, NULL, -1, -1, 0xf, "no NUMA binding");
    topo_spec one = {1, 4, 1, 0, -1};
    expect(&one, NULL, -1, 0, 0xf, "single node");
    expect(&one, GPU_BUS, -1, 0, 0xf, "single node (GPU");
    one.gpu_parent = 0;
    expect(&one, GPU_BUS, -1, 0, 0xf, "nearest");
}

static void test_forced_node(void **state)
{
    (void)state;
    topo_spec t = {2, 4, 1, 0, 1};
    expect(&t, GPU_BUS, 0, 0, 0x0f, "configured");
    expect(&t, NULL, 1, 1, 0xf0, "configured");
    char *xml = make_xml(&t);
    ztopo_choice c;
    assert_int_equal(ztopo_choose_xml(xml, GPU_BUS, 5, &c), ZOFF_EINVAL);
    print_message("forced node 5: %s\n", zoff__last_error_tls());
    assert_non_null(strstr(zoff__last_error_tls(), "node 5"));
    free(xml);
    assert_int_equal(ztopo_choose_xml("<topology><oops", NULL, -1, &c), ZOFF_EINVAL);
    assert_int_equal(ztopo_choose_xml(NULL, NULL, -1, &c), ZOFF_EINVAL);
}

static void test_live_machine(void **state)
{
    (void)state;
    ztopo_choice c;
    assert_int_equal(ztopo_choose(NULL, -1, &c), 0);
    print_message("this machine: node %d of %d, %d CPU(s): %s\n", c.numa_node, c.nnodes, c.ncpus,
                  c.reason);
    assert_true(c.nnodes >= 1);
    assert_true(c.ncpus >= 1);
    if (c.nnodes == 1) assert_int_equal(c.numa_node, 0);
    assert_int_equal(ztopo_choose(NULL, 0, &c), 0);
    assert_int_equal(c.numa_node, 0);

    /* Bind to the chosen CPUs and back. */
    cpu_set_t old, now;
    assert_int_equal(sched_getaffinity(0, sizeof old, &old), 0);
    assert_int_equal(ztopo_bind_thread(&c), 0);
    assert_int_equal(sched_getaffinity(0, sizeof now, &now), 0);
    for (int i = 0; i < c.ncpus; i++) assert_true(CPU_ISSET(c.cpus[i], &now));
    assert_int_equal(CPU_COUNT(&now), c.ncpus);
    assert_int_equal(sched_setaffinity(0, sizeof old, &old), 0);
    ztopo_choice none = c;
    none.ncpus = 0;
    assert_int_equal(ztopo_bind_thread(&none), ZOFF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_packages_gpu_on_1),
        cmocka_unit_test(test_interleaved_hyperthreads),
        cmocka_unit_test(test_gpu_without_locality),
        cmocka_unit_test(test_gpu_not_found_and_no_gpu),
        cmocka_unit_test(test_forced_node),
        cmocka_unit_test(test_live_machine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
