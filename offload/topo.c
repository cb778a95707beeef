/*
 * topo.c — the topology choice of offload/arena.h: which NUMA node the pinned arena is bound to
 * and which CPUs the CPU Adam threads run on. With hwloc (I/O devices enabled in the type
 * filters) it finds the GPU's PCI device by bus id, walks up to its first non-I/O ancestor and
 * takes the first NUMA node of that ancestor's nodeset and the node's PUs. A configured node
 * wins; without a GPU a single-node machine uses its node and a multi-node one is left unbound.
 * The same decision runs on the live machine (ztopo_choose) or on an XML topology
 * (ztopo_choose_xml: the tests' synthetic machines). Owns nothing beyond each call.
 */
#define _GNU_SOURCE
#include <hwloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload/arena.h"

/* Appends the PU os indices of `set` to out->cpus. */
static void take_cpus(hwloc_const_cpuset_t set, ztopo_choice *out)
{
    unsigned i;
    out->ncpus = 0;
    hwloc_bitmap_foreach_begin(i, set)
    {
        if (out->ncpus < ZTOPO_MAX_CPUS) out->cpus[out->ncpus++] = (int)i;
    }
    hwloc_bitmap_foreach_end();
}

/* "0,1" or "0-3" style list of a nodeset, for messages. */
static void nodeset_str(hwloc_const_nodeset_t set, char *buf, size_t len)
{
    if (hwloc_bitmap_list_snprintf(buf, len, set) < 0) snprintf(buf, len, "?");
}

static zoff_status choose(hwloc_topology_t t, const char *bus, int forced, ztopo_choice *out)
{
    memset(out, 0, sizeof *out);
    out->numa_node = -1;
    out->nnodes = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
    hwloc_obj_t root = hwloc_get_root_obj(t);
    hwloc_obj_t node = NULL;
    char nodes[128];
    nodeset_str(root->nodeset, nodes, sizeof nodes);

    if (forced >= 0) {
        node = hwloc_get_numanode_obj_by_os_index(t, (unsigned)forced);
        if (!node)
            return zoff__err(ZOFF_EINVAL,
                             "NUMA node %d does not exist (this machine has nodes "
                             "%s)",
                             forced, nodes);
        snprintf(out->reason, sizeof out->reason, "configured (node %d)", forced);
    } else if (bus && bus[0]) {
        hwloc_obj_t pci = hwloc_get_pcidev_by_busidstring(t, bus);
        hwloc_obj_t anc = pci ? hwloc_get_non_io_ancestor_obj(t, pci) : NULL;
        if (anc && anc->nodeset && !hwloc_bitmap_iszero(anc->nodeset)) {
            int first = hwloc_bitmap_first(anc->nodeset);
            node = hwloc_get_numanode_obj_by_os_index(t, (unsigned)first);
            if (hwloc_bitmap_weight(anc->nodeset) > 1) {
                char local[128];
                nodeset_str(anc->nodeset, local, sizeof local);
                snprintf(out->reason, sizeof out->reason,
                         "GPU %s is local to nodes %s (%s): chose node %d", bus, local,
                         hwloc_obj_type_string(anc->type), first);
            } else {
                snprintf(out->reason, sizeof out->reason, "nearest to GPU %s (under %s %u)", bus,
                         hwloc_obj_type_string(anc->type), anc->os_index);
            }
        } else if (out->nnodes == 1) {
            node = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, 0);
            snprintf(out->reason, sizeof out->reason,
                     "single node (GPU %s not found in the topology)", bus);
        } else {
            snprintf(out->reason, sizeof out->reason,
                     "GPU %s not found in the topology: no NUMA binding", bus);
        }
    } else if (out->nnodes == 1) {
        node = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, 0);
        snprintf(out->reason, sizeof out->reason, "single node");
    } else {
        snprintf(out->reason, sizeof out->reason,
                 "no GPU and no configured node on a %d-node machine: no NUMA binding",
                 out->nnodes);
    }

    if (node) {
        out->numa_node = (int)node->os_index;
        take_cpus(node->cpuset, out);
        if (out->ncpus == 0) { /* a memory-only node (CXL, HBM): any CPU */
            take_cpus(root->cpuset, out);
            size_t l = strlen(out->reason);
            snprintf(out->reason + l, sizeof out->reason - l, "; node has no CPUs: all CPUs");
        }
    } else {
        take_cpus(root->cpuset, out);
    }
    return 0;
}

/* Creates a topology with every I/O object kept (PCI devices are filtered out by default).
 * The PCI tree comes from Linux sysfs (hwloc's linux component); the libpciaccess-based "pci"
 * plugin and the plugins that only annotate OS devices (OpenCL, GL, CUDA, NVML, ...) are
 * blacklisted: they are not needed to place a GPU, can initialise GPU runtimes, and leak. */
static zoff_status topo_init(hwloc_topology_t *t)
{
    static const char *const skip[] = {"pci", "opencl", "gl", "cuda", "nvml", "rsmi", "levelzero"};
    if (hwloc_topology_init(t) != 0)
        return zoff__err(-ENOMEM, "hwloc_topology_init: %s", strerror(errno));
    if (hwloc_topology_set_io_types_filter(*t, HWLOC_TYPE_FILTER_KEEP_ALL) != 0) {
        hwloc_topology_destroy(*t);
        return zoff__err(ZOFF_EINTERNAL, "hwloc_topology_set_io_types_filter: %s", strerror(errno));
    }
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(skip); i++)
        (void)hwloc_topology_set_components(*t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, skip[i]);
    return 0;
}

zoff_status ztopo_choose(const char *pci_bus_id, int forced_node, ztopo_choice *out)
{
    hwloc_topology_t t;
    if (!out) return zoff__err(ZOFF_EINVAL, "ztopo_choose: out is NULL");
    ZOFF_CHECK(topo_init(&t));
    zoff_status st = 0;
    if (hwloc_topology_load(t) != 0) {
        st = zoff__err(ZOFF_EINTERNAL, "hwloc_topology_load: %s", strerror(errno));
        goto out;
    }
    st = choose(t, pci_bus_id, forced_node, out);
    if (st == 0)
        ZOFF_INFO(ZOFF_SUB_INIT, "topology: NUMA node %d of %d, %d CPU(s): %s", out->numa_node,
                  out->nnodes, out->ncpus, out->reason);
out:
    hwloc_topology_destroy(t);
    return st;
}

zoff_status ztopo_choose_xml(const char *xml, const char *pci_bus_id, int forced_node,
                             ztopo_choice *out)
{
    hwloc_topology_t t;
    if (!xml || !out) return zoff__err(ZOFF_EINVAL, "ztopo_choose_xml: bad argument");
    ZOFF_CHECK(topo_init(&t));
    zoff_status st = 0;
    if (hwloc_topology_set_xmlbuffer(t, xml, (int)strlen(xml) + 1) != 0 ||
        hwloc_topology_load(t) != 0) {
        st = zoff__err(ZOFF_EINVAL, "hwloc could not load the XML topology: %s", strerror(errno));
        goto out;
    }
    st = choose(t, pci_bus_id, forced_node, out);
out:
    hwloc_topology_destroy(t);
    return st;
}

zoff_status ztopo_bind_thread(const ztopo_choice *c)
{
    if (!c || c->ncpus <= 0) return zoff__err(ZOFF_EINVAL, "ztopo_bind_thread: no CPUs to bind to");
    cpu_set_t *set = CPU_ALLOC(ZTOPO_MAX_CPUS);
    if (!set) return zoff__err(-ENOMEM, "ztopo_bind_thread: CPU_ALLOC failed");
    size_t size = CPU_ALLOC_SIZE(ZTOPO_MAX_CPUS);
    CPU_ZERO_S(size, set);
    for (int i = 0; i < c->ncpus; i++)
        if (c->cpus[i] >= 0 && c->cpus[i] < ZTOPO_MAX_CPUS)
            CPU_SET_S((size_t)c->cpus[i], size, set);
    zoff_status st = 0;
    if (sched_setaffinity(0, size, set) != 0)
        st = zoff__err(-errno, "sched_setaffinity to %d CPU(s) of node %d: %s", c->ncpus,
                       c->numa_node, strerror(errno));
    CPU_FREE(set);
    return st;
}

void ztopo_split_cpus(const ztopo_choice *c, int index, int count, ztopo_choice *out)
{
    ztopo_choice r = *c;
    if (count > 1 && c->ncpus > 0 && index >= 0 && index < count) {
        if (c->ncpus < count) {
            r.cpus[0] = c->cpus[index % c->ncpus];
            r.ncpus = 1;
        } else {
            int base = c->ncpus / count, extra = c->ncpus % count;
            int first = index * base + (index < extra ? index : extra);
            r.ncpus = base + (index < extra ? 1 : 0);
            for (int i = 0; i < r.ncpus; i++) r.cpus[i] = c->cpus[first + i];
        }
        char why[sizeof r.reason + 64];
        snprintf(why, sizeof why, "%s; cpus split %d ways (share %d)", c->reason, count, index);
        memcpy(r.reason, why, sizeof r.reason - 1);
        r.reason[sizeof r.reason - 1] = '\0';
    }
    *out = r;
}

void ztopo_rank_paths(const char *paths, int l, int L, char *out, size_t len)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", paths ? paths : "");
    char *list[256];
    int np = 0;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && np < 256;
         t = strtok_r(NULL, ",", &save))
        list[np++] = t;
    if (len == 0) return;
    out[0] = '\0';
    if (np <= 1 || L <= 1 || l < 0) {
        snprintf(out, len, "%s", paths ? paths : "");
        return;
    }
    if (np < L) {
        snprintf(out, len, "%s", list[l % np]);
        return;
    }
    size_t used = 0;
    for (int i = l % L; i < np; i += L) {
        int w = snprintf(out + used, len - used, "%s%s", used ? "," : "", list[i]);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
}
