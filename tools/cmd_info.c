/*
 * cmd_info.c — `zoff info [--path DIR ...] [--json]`: the facts of this machine a user needs
 * before tuning zoff: CPU model and the ISA features the CPU Adam uses, cores and packages, NUMA
 * nodes and their memory, GPUs and the NUMA node nearest each (CUDA when built and usable,
 * otherwise "none (sim)", plus the PCI display controllers sysfs shows), block devices and their
 * NUMA locality, locked-memory limits (RLIMIT_MEMLOCK, CAP_IPC_LOCK), transparent huge pages and
 * hugetlb pools, io_uring availability, and for each --path (default: the current directory)
 * its filesystem, block device, O_DIRECT support and alignment, and free space.
 * The facts come from the public zoff_probe_machine / zoff_probe_path / zoff_probe_rank
 * (runtime/probe.c); this file puts them into one cJSON tree, printed as text or (--json) as
 * JSON. Owns nothing beyond the command's run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include <zoff.h>

#define MAX_PATHS 16

/* ---- the probe's facts as the JSON tree ------------------------------------------------------ */
static void add_cpu(cJSON *root, const zoff_machine_info *m)
{
    cJSON *cpu = cJSON_AddObjectToObject(root, "cpu");
    cJSON_AddStringToObject(cpu, "model", m->cpu_model);
    cJSON_AddNumberToObject(cpu, "online_cpus", m->online_cpus);
    cJSON_AddNumberToObject(cpu, "cores", m->cores);
    cJSON_AddNumberToObject(cpu, "packages", m->packages);
    const struct {
        const char *key;
        int v;
    } isa[] = {{"sse4_2", m->sse4_2},
               {"avx", m->avx},
               {"avx2", m->avx2},
               {"fma", m->fma},
               {"f16c", m->f16c},
               {"avx512f", m->avx512f},
               {"avx512bw", m->avx512bw},
               {"avx512vl", m->avx512vl},
               {"avx512_bf16", m->avx512_bf16},
               {"avx512_fp16", m->avx512_fp16},
               {"amx_bf16", m->amx_bf16}};
    cJSON *o = cJSON_AddObjectToObject(cpu, "isa");
    for (size_t i = 0; i < sizeof isa / sizeof isa[0]; i++)
        cJSON_AddBoolToObject(o, isa[i].key, isa[i].v);
}

static void add_memory(cJSON *root, const zoff_machine_info *m)
{
    cJSON *mem = cJSON_AddObjectToObject(root, "memory");
    cJSON_AddNumberToObject(mem, "total_bytes", (double)m->mem_total_bytes);
    cJSON_AddNumberToObject(mem, "available_bytes", (double)m->mem_available_bytes);
    cJSON *nodes = cJSON_AddArrayToObject(root, "numa_nodes");
    for (int i = 0; i < m->nnuma; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "node", m->numa[i].node);
        cJSON_AddStringToObject(j, "cpus", m->numa[i].cpus);
        cJSON_AddNumberToObject(j, "total_bytes", (double)m->numa[i].total_bytes);
        if (m->numa[i].free_bytes >= 0)
            cJSON_AddNumberToObject(j, "free_bytes", (double)m->numa[i].free_bytes);
        cJSON_AddItemToArray(nodes, j);
    }
}

static void add_gpus(cJSON *root, const zoff_machine_info *m)
{
    cJSON *g = cJSON_AddObjectToObject(root, "gpus");
    cJSON_AddBoolToObject(g, "cuda_built", m->cuda_built);
    cJSON *list = cJSON_AddArrayToObject(g, "devices");
    if (m->gpu_note[0]) cJSON_AddStringToObject(g, "note", m->gpu_note);
    for (int i = 0; i < m->ngpus; i++) {
        cJSON *j = cJSON_CreateObject();
        char cc[32];
        snprintf(cc, sizeof cc, "%d.%d", m->gpus[i].cc_major, m->gpus[i].cc_minor);
        cJSON_AddNumberToObject(j, "ordinal", m->gpus[i].ordinal);
        cJSON_AddStringToObject(j, "name", m->gpus[i].name);
        cJSON_AddStringToObject(j, "pci_bus_id", m->gpus[i].pci_bus_id);
        cJSON_AddNumberToObject(j, "total_bytes", (double)m->gpus[i].total_bytes);
        cJSON_AddStringToObject(j, "compute_capability", cc);
        if (m->gpus[i].numa_reason[0]) {
            cJSON_AddNumberToObject(j, "numa_node", m->gpus[i].numa_node);
            cJSON_AddStringToObject(j, "numa_reason", m->gpus[i].numa_reason);
        }
        cJSON_AddItemToArray(list, j);
    }
    cJSON *pci = cJSON_AddArrayToObject(g, "pci_display_devices");
    for (int i = 0; i < m->npci_display; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "bus_id", m->pci_display[i].bus_id);
        cJSON_AddStringToObject(j, "class", m->pci_display[i].pci_class);
        cJSON_AddStringToObject(j, "vendor", m->pci_display[i].vendor);
        cJSON_AddStringToObject(j, "device", m->pci_display[i].device);
        cJSON_AddNumberToObject(j, "numa_node", m->pci_display[i].numa_node);
        cJSON_AddItemToArray(pci, j);
    }
}

static void add_disks(cJSON *root, const zoff_machine_info *m)
{
    cJSON *list = cJSON_AddArrayToObject(root, "block_devices");
    for (int i = 0; i < m->ndisks; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", m->disks[i].name);
        cJSON_AddStringToObject(j, "kind", m->disks[i].kind);
        if (m->disks[i].model[0]) cJSON_AddStringToObject(j, "model", m->disks[i].model);
        const struct {
            const char *key;
            int64_t v;
        } q[] = {{"size_bytes", m->disks[i].size_bytes},
                 {"rotational", m->disks[i].rotational},
                 {"logical_block_size", m->disks[i].logical_block_size},
                 {"max_sectors_kb", m->disks[i].max_sectors_kb},
                 {"max_hw_sectors_kb", m->disks[i].max_hw_sectors_kb},
                 {"max_segments", m->disks[i].max_segments}};
        for (size_t k = 0; k < sizeof q / sizeof q[0]; k++)
            if (q[k].v >= 0) cJSON_AddNumberToObject(j, q[k].key, (double)q[k].v);
        cJSON_AddNumberToObject(j, "numa_node", m->disks[i].numa_node);
        cJSON_AddItemToArray(list, j);
    }
}

static void add_limits(cJSON *root, const zoff_machine_info *m)
{
    cJSON *pin = cJSON_AddObjectToObject(root, "pinning");
    if (m->have_memlock) {
        if (m->memlock_soft == UINT64_MAX)
            cJSON_AddStringToObject(pin, "memlock_soft", "unlimited");
        else
            cJSON_AddNumberToObject(pin, "memlock_soft", (double)m->memlock_soft);
        if (m->memlock_hard == UINT64_MAX)
            cJSON_AddStringToObject(pin, "memlock_hard", "unlimited");
        else
            cJSON_AddNumberToObject(pin, "memlock_hard", (double)m->memlock_hard);
        cJSON_AddBoolToObject(pin, "cap_ipc_lock", m->cap_ipc_lock);
        cJSON_AddNumberToObject(pin, "locked_bytes", (double)m->locked_bytes);
        char v[160], b[32];
        if (m->cap_ipc_lock || m->memlock_soft == UINT64_MAX)
            snprintf(v, sizeof v, "unlimited%s", m->cap_ipc_lock ? " (CAP_IPC_LOCK)" : "");
        else
            snprintf(v, sizeof v, "limited to %s: larger pinned arenas fall back to pageable",
                     zoff_format_bytes(m->memlock_soft, b, sizeof b));
        cJSON_AddStringToObject(pin, "verdict", v);
    }
    cJSON *hp = cJSON_AddObjectToObject(root, "huge_pages");
    cJSON_AddStringToObject(hp, "thp_enabled", m->thp_enabled);
    cJSON_AddStringToObject(hp, "thp_defrag", m->thp_defrag);
    cJSON *pools = cJSON_AddArrayToObject(hp, "hugetlb");
    for (int i = 0; i < m->nhugetlb; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "page_bytes", (double)m->hugetlb[i].page_bytes);
        cJSON_AddNumberToObject(j, "pages", (double)m->hugetlb[i].pages);
        cJSON_AddNumberToObject(j, "free", (double)m->hugetlb[i].free);
        cJSON_AddItemToArray(pools, j);
    }
}

static void add_path(cJSON *list, const char *path, const zoff_path_info *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", path);
    cJSON_AddItemToArray(list, j);
    if (!p->accessible) {
        cJSON_AddStringToObject(j, "error", "not an accessible directory");
        return;
    }
    cJSON_AddStringToObject(j, "fs_type", p->fs_type);
    cJSON_AddStringToObject(j, "mount", p->mount);
    cJSON_AddStringToObject(j, "block_device", p->block_device);
    if (p->odirect >= 0)
        cJSON_AddBoolToObject(j, "odirect", p->odirect);
    else
        cJSON_AddStringToObject(j, "odirect_error", p->odirect_error);
    if (p->dio_offset_align > 0) {
        cJSON_AddNumberToObject(j, "dio_mem_align", (double)p->dio_mem_align);
        cJSON_AddNumberToObject(j, "dio_offset_align", (double)p->dio_offset_align);
    }
    if (p->free_bytes >= 0) cJSON_AddNumberToObject(j, "free_bytes", (double)p->free_bytes);
}

static int gather(cJSON *root, const char *const *paths, int npaths)
{
    zoff_machine_info *m = calloc(1, sizeof *m);
    if (!m) return -1;
    m->struct_size = sizeof *m;
    if (zoff_probe_machine(paths[0], m) != 0) {
        free(m);
        return -1;
    }
    add_cpu(root, m);
    add_memory(root, m);
    add_gpus(root, m);
    add_disks(root, m);
    add_limits(root, m);
    cJSON *io = cJSON_AddObjectToObject(root, "io_uring");
    if (m->io_uring >= 0) cJSON_AddBoolToObject(io, "available", m->io_uring);
    if (m->io_uring_disabled_sysctl >= 0)
        cJSON_AddNumberToObject(io, "io_uring_disabled_sysctl", m->io_uring_disabled_sysctl);
    cJSON *list = cJSON_AddArrayToObject(root, "paths");
    add_path(list, paths[0], &m->path);
    for (int i = 1; i < npaths; i++) {
        zoff_path_info p = ZOFF_PATH_INFO_INIT;
        if (zoff_probe_path(paths[i], &p) == 0) add_path(list, paths[i], &p);
    }
    free(m);
    return 0;
}

/* ---- text output ------------------------------------------------------------------------------
 */
static double num(const cJSON *o, const char *k, double fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

static const char *str(const cJSON *o, const char *k, const char *fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

static const char *yes(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsTrue(v) ? "yes" : (cJSON_IsFalse(v) ? "no" : "?");
}

static const char *bytes_str(double b, char *buf, size_t len)
{
    return b < 0 ? "?" : zoff_format_bytes((uint64_t)b, buf, len);
}

static void print_text(const cJSON *r)
{
    char b1[32], b2[32];
    const cJSON *cpu = cJSON_GetObjectItem(r, "cpu"), *isa = cJSON_GetObjectItem(cpu, "isa");
    printf("zoff %s: machine facts for tuning\n\nCPU\n", zoff_version());
    printf("  model          %s\n", str(cpu, "model", "?"));
    printf("  cores          %.0f online CPUs, %.0f cores, %.0f package(s)\n",
           num(cpu, "online_cpus", 0), num(cpu, "cores", 0), num(cpu, "packages", 0));
    printf("  ISA            AVX2 %s, FMA %s, F16C %s, AVX-512F %s (BW %s, VL %s), "
           "AVX512-BF16 %s, AVX512-FP16 %s\n",
           yes(isa, "avx2"), yes(isa, "fma"), yes(isa, "f16c"), yes(isa, "avx512f"),
           yes(isa, "avx512bw"), yes(isa, "avx512vl"), yes(isa, "avx512_bf16"),
           yes(isa, "avx512_fp16"));

    const cJSON *mem = cJSON_GetObjectItem(r, "memory"), *e;
    printf("\nMemory\n  total          %s, available %s\n",
           bytes_str(num(mem, "total_bytes", -1), b1, sizeof b1),
           bytes_str(num(mem, "available_bytes", -1), b2, sizeof b2));
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "numa_nodes"))
    {
        printf("  NUMA node %-4.0f CPUs %s, %s, %s free\n", num(e, "node", -1), str(e, "cpus", "?"),
               bytes_str(num(e, "total_bytes", -1), b1, sizeof b1),
               bytes_str(num(e, "free_bytes", -1), b2, sizeof b2));
    }

    const cJSON *g = cJSON_GetObjectItem(r, "gpus");
    printf("\nGPUs (CUDA backend %s)\n",
           cJSON_IsTrue(cJSON_GetObjectItem(g, "cuda_built")) ? "built" : "not built");
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "devices"))
    {
        printf("  cuda:%-9.0f %s, %s, cc %s, PCI %s, NUMA node %.0f (%s)\n", num(e, "ordinal", 0),
               str(e, "name", "?"), bytes_str(num(e, "total_bytes", -1), b1, sizeof b1),
               str(e, "compute_capability", "?"), str(e, "pci_bus_id", "?"),
               num(e, "numa_node", -1), str(e, "numa_reason", "?"));
    }
    if (str(g, "note", NULL)) printf("  %s\n", str(g, "note", ""));
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "pci_display_devices"))
    {
        printf("  PCI %s       display class %s, vendor %s device %s, NUMA node %.0f\n",
               str(e, "bus_id", "?"), str(e, "class", "?"), str(e, "vendor", "?"),
               str(e, "device", "?"), num(e, "numa_node", -1));
    }

    printf("\nBlock devices\n");
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "block_devices"))
    {
        double node = num(e, "numa_node", -1);
        if (node < 0)
            snprintf(b2, sizeof b2, "unknown (-1)");
        else
            snprintf(b2, sizeof b2, "%.0f", node);
        printf("  %-14s %s%s%s, %s, %s, max request %.0f KiB / %.0f segments, NUMA node %s\n",
               str(e, "name", "?"), str(e, "kind", "?"), str(e, "model", NULL) ? " " : "",
               str(e, "model", ""), bytes_str(num(e, "size_bytes", -1), b1, sizeof b1),
               num(e, "rotational", 0) > 0 ? "rotational" : "non-rotational",
               num(e, "max_sectors_kb", 0), num(e, "max_segments", 0), b2);
    }

    const cJSON *pin = cJSON_GetObjectItem(r, "pinning");
    const cJSON *soft = cJSON_GetObjectItem(pin, "memlock_soft");
    const cJSON *hard = cJSON_GetObjectItem(pin, "memlock_hard");
    char b3[32];
    printf("\nLocked (pinned) memory\n  RLIMIT_MEMLOCK %s (hard %s), CAP_IPC_LOCK %s, locked now "
           "%s\n",
           cJSON_IsString(soft) ? soft->valuestring
                                : bytes_str(num(pin, "memlock_soft", -1), b1, sizeof b1),
           cJSON_IsString(hard) ? hard->valuestring
                                : bytes_str(num(pin, "memlock_hard", -1), b2, sizeof b2),
           yes(pin, "cap_ipc_lock"), bytes_str(num(pin, "locked_bytes", -1), b3, sizeof b3));
    printf("  pinning        %s\n", str(pin, "verdict", "?"));

    const cJSON *hp = cJSON_GetObjectItem(r, "huge_pages");
    printf("\nHuge pages\n  THP            enabled [%s], defrag [%s]\n",
           str(hp, "thp_enabled", "?"), str(hp, "thp_defrag", "?"));
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(hp, "hugetlb"))
    {
        printf("  hugetlb %-6s %.0f pages, %.0f free\n",
               bytes_str(num(e, "page_bytes", -1), b1, sizeof b1), num(e, "pages", 0),
               num(e, "free", 0));
    }

    const cJSON *io = cJSON_GetObjectItem(r, "io_uring");
    printf("\nI/O\n  io_uring       %s", yes(io, "available"));
    if (cJSON_GetObjectItem(io, "io_uring_disabled_sysctl"))
        printf(" (kernel.io_uring_disabled = %.0f)", num(io, "io_uring_disabled_sysctl", 0));
    printf("\n");
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "paths"))
    {
        if (str(e, "error", NULL)) {
            printf("  %s: %s\n", str(e, "path", "?"), str(e, "error", ""));
            continue;
        }
        printf("  %s: %s on %s (device %s), O_DIRECT %s", str(e, "path", "?"),
               str(e, "fs_type", "?"), str(e, "mount", "?"), str(e, "block_device", "?"),
               yes(e, "odirect"));
        if (cJSON_GetObjectItem(e, "dio_offset_align"))
            printf(" (alignment: memory %.0f, offset %.0f bytes)", num(e, "dio_mem_align", 0),
                   num(e, "dio_offset_align", 0));
        printf(", %s free\n", bytes_str(num(e, "free_bytes", -1), b1, sizeof b1));
    }
}

/* ---- --ranks N: the placement plan of N ranks on this node (zoff_probe_rank): what
 * zoff_finalize does under mpirun -np N. */
static void gather_ranks(cJSON *root, int nranks, const char *const *paths, int npaths)
{
    char joined[4096] = "";
    size_t used = 0;
    for (int i = 0; i < npaths && used < sizeof joined; i++)
        used +=
            (size_t)snprintf(joined + used, sizeof joined - used, "%s%s", i ? "," : "", paths[i]);
    cJSON *arr = cJSON_AddArrayToObject(root, "ranks");
    zoff_rank_placement *p = malloc(sizeof *p);
    if (!arr || !p) {
        free(p);
        return;
    }
    for (int r = 0; r < nranks; r++) {
        p->struct_size = sizeof *p;
        if (zoff_probe_rank(r, nranks, joined, p) != 0) continue;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "rank", r);
        cJSON_AddStringToObject(j, "gpu", p->gpu);
        cJSON_AddNumberToObject(j, "numa_node", p->numa_node);
        cJSON *cpus = cJSON_AddArrayToObject(j, "cpus");
        for (int c = 0; c < p->ncpus; c++)
            cJSON_AddItemToArray(cpus, cJSON_CreateNumber(p->cpus[c]));
        cJSON_AddStringToObject(j, "swap_paths", p->swap_paths);
        cJSON_AddItemToArray(arr, j);
    }
    free(p);
}

static void print_ranks(const cJSON *root)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "ranks");
    if (!arr) return;
    printf("\nplacement of %d local ranks (mpirun -np %d on this node)\n", cJSON_GetArraySize(arr),
           cJSON_GetArraySize(arr));
    printf("  %-4s  %-14s  %-4s  %-24s  %s\n", "rank", "gpu", "numa", "cpus (adam threads)",
           "swap paths");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char cpus[256] = "";
        size_t used = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(e, "cpus"))
        {
            if (used < sizeof cpus)
                used += (size_t)snprintf(cpus + used, sizeof cpus - used, "%s%d", used ? "," : "",
                                         (int)c->valuedouble);
        }
        printf("  %-4d  %-14s  %-4d  %-24s  %s\n",
               (int)cJSON_GetObjectItemCaseSensitive(e, "rank")->valuedouble,
               cJSON_GetObjectItemCaseSensitive(e, "gpu")->valuestring,
               (int)cJSON_GetObjectItemCaseSensitive(e, "numa_node")->valuedouble, cpus,
               cJSON_GetObjectItemCaseSensitive(e, "swap_paths")->valuestring);
    }
}

/* ---- command ------------------------------------------------------------------------------------
 */
static void usage(FILE *out)
{
    fprintf(out, "usage: zoff info [--path DIR ...] [--ranks N] [--json]\n"
                 "  CPU and ISA, cores, NUMA nodes and memory, GPUs and their NUMA node, block\n"
                 "  devices and their locality, locked-memory limits, huge pages, io_uring, and\n"
                 "  for each --path (default: .) its filesystem, O_DIRECT support and free space.\n"
                 "  --ranks N  the placement plan of N ranks on this node (mpirun -np N): GPU,\n"
                 "             NUMA node, cores of the Adam threads, swap paths (from --path)\n"
                 "  --json  print the same facts as one JSON object\n");
}

int zoff_cmd_info(int argc, char **argv)
{
    const char *paths[MAX_PATHS];
    int npaths = 0, json = 0, nranks = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--ranks") && i + 1 < argc) {
            nranks = atoi(argv[++i]);
            if (nranks < 1 || nranks > 1024) {
                fprintf(stderr, "zoff info: --ranks %s: expected 1..1024\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--path") && i + 1 < argc) {
            if (npaths == MAX_PATHS) {
                fprintf(stderr, "zoff info: at most %d --path options\n", MAX_PATHS);
                return 2;
            }
            paths[npaths++] = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (npaths == 0) paths[npaths++] = ".";

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "zoff_version", zoff_version());
    if (gather(root, paths, npaths) != 0) {
        fprintf(stderr, "zoff info: %s\n", zoff_last_error(NULL));
        cJSON_Delete(root);
        return 1;
    }
    if (nranks > 0) gather_ranks(root, nranks, paths, npaths);

    int rc = 0;
    if (json) {
        char *text = cJSON_Print(root);
        if (text) {
            printf("%s\n", text);
            cJSON_free(text);
        } else {
            rc = 1;
        }
    } else {
        print_text(root);
        print_ranks(root);
    }
    cJSON_Delete(root);
    return rc;
}
