/*
 * cmd_info.c — `zoff info [--path DIR ...] [--json]`: the facts of this machine a user needs
 * before tuning zoff: CPU model and the ISA features the CPU Adam uses, cores and packages, NUMA
 * nodes and their memory, GPUs and the NUMA node nearest each (CUDA when built and usable,
 * otherwise "none (sim)", plus the PCI display controllers sysfs shows), block devices and their
 * NUMA locality, locked-memory limits (RLIMIT_MEMLOCK, CAP_IPC_LOCK), transparent huge pages and
 * hugetlb pools, io_uring availability, and for each --path (default: the current directory)
 * its filesystem, block device, O_DIRECT support and alignment, and free space.
 * Everything is gathered into one cJSON tree, printed as text or (--json) as JSON.
 * Owns nothing beyond the command's run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <hwloc.h>
#include <limits.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "common/common.h"
#include "gpu/device.h"
#include "nvme/swap.h"
#include "offload/arena.h"

#define MAX_PATHS 16

/* ---- small readers ------------------------------------------------------------------------ */
/* First line of a file without the newline; 0 or -1. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *ok = fgets(buf, (int)len, f);
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static long long read_ll(const char *path, long long fallback)
{
    char buf[64];
    if (read_line(path, buf, sizeof buf) != 0) return fallback;
    char *end;
    long long v = strtoll(buf, &end, 0);
    return end == buf ? fallback : v;
}

/* The bracketed choice of a sysfs mode file ("always [madvise] never" -> "madvise"). */
static void sysfs_mode(const char *path, char *out, size_t len)
{
    char buf[256];
    snprintf(out, len, "unavailable");
    if (read_line(path, buf, sizeof buf) != 0) return;
    char *l = strchr(buf, '['), *r = l ? strchr(l, ']') : NULL;
    if (l && r) snprintf(out, len, "%.*s", (int)(r - l - 1), l + 1);
}

/* numa_node of the first ancestor of a sysfs device path that has one (-1: unknown). */
static int sysfs_numa_node(const char *devpath)
{
    char p[PATH_MAX];
    if (!realpath(devpath, p)) return -1;
    while (strlen(p) > strlen("/sys/devices")) {
        char f[PATH_MAX + 16];
        snprintf(f, sizeof f, "%s/numa_node", p);
        long long v = read_ll(f, -2);
        if (v != -2) return (int)v;
        char *slash = strrchr(p, '/');
        if (!slash) break;
        *slash = '\0';
    }
    return -1;
}

/* ---- sections -------------------------------------------------------------------------------- */
static void gather_cpu(cJSON *root, hwloc_topology_t topo)
{
    cJSON *cpu = cJSON_AddObjectToObject(root, "cpu");
    char model[256] = "unknown", line[4096];
    char flags[4096] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon) continue;
            if (!strncmp(line, "model name", 10) && !strcmp(model, "unknown"))
                snprintf(model, sizeof model, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
            if (!strncmp(line, "flags", 5) && !flags[0])
                snprintf(flags, sizeof flags, " %.*s ", (int)strcspn(colon + 2, "\n"), colon + 2);
        }
        fclose(f);
    }
    cJSON_AddStringToObject(cpu, "model", model);
    cJSON_AddNumberToObject(cpu, "online_cpus", zoff__ncpus());
    cJSON_AddNumberToObject(cpu, "cores", hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE));
    cJSON_AddNumberToObject(cpu, "packages", hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE));
    /* /proc/cpuinfo flag names; the kernel hides what the OS does not enable (XSAVE state). */
    static const char *const isa[] = {"sse4_2",      "avx",         "avx2",     "fma",
                                      "f16c",        "avx512f",     "avx512bw", "avx512vl",
                                      "avx512_bf16", "avx512_fp16", "amx_bf16"};
    cJSON *o = cJSON_AddObjectToObject(cpu, "isa");
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(isa); i++) {
        char pat[64];
        snprintf(pat, sizeof pat, " %s ", isa[i]);
        cJSON_AddBoolToObject(o, isa[i], strstr(flags, pat) != NULL);
    }
}

static void gather_memory(cJSON *root, hwloc_topology_t topo)
{
    cJSON *m = cJSON_AddObjectToObject(root, "memory");
    cJSON_AddNumberToObject(m, "total_bytes", (double)zoff__proc_kb("/proc/meminfo", "MemTotal"));
    cJSON_AddNumberToObject(m, "available_bytes", (double)zoff__mem_available());
    cJSON *nodes = cJSON_AddArrayToObject(root, "numa_nodes");
    int have_numa = numa_available() >= 0;
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL); n;
         n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) {
        cJSON *j = cJSON_CreateObject();
        char cpus[256];
        hwloc_bitmap_list_snprintf(cpus, sizeof cpus, n->cpuset);
        cJSON_AddNumberToObject(j, "node", n->os_index);
        cJSON_AddStringToObject(j, "cpus", cpus);
        long long fr = -1, total = have_numa ? numa_node_size64((int)n->os_index, &fr) : -1;
        cJSON_AddNumberToObject(j, "total_bytes",
                                total > 0 ? (double)total : (double)n->attr->numanode.local_memory);
        if (fr >= 0) cJSON_AddNumberToObject(j, "free_bytes", (double)fr);
        cJSON_AddItemToArray(nodes, j);
    }
}

static void gather_gpus(cJSON *root)
{
    cJSON *g = cJSON_AddObjectToObject(root, "gpus");
    cJSON_AddBoolToObject(g, "cuda_built", zdev_cuda_built());
    cJSON *list = cJSON_AddArrayToObject(g, "devices");
    zdev_gpu_info info[16];
    int n = 0;
    zoff_status st = zdev_cuda_list(info, 16, &n);
    if (st < 0 || n == 0) {
        char note[512];
        snprintf(note, sizeof note, "none (sim): %s",
                 zdev_cuda_built() ? zoff__last_error_tls() : "built without the CUDA backend");
        cJSON_AddStringToObject(g, "note", note);
    }
    for (int i = 0; i < n; i++) {
        cJSON *j = cJSON_CreateObject();
        char cc[16];
        snprintf(cc, sizeof cc, "%d.%d", info[i].cc_major, info[i].cc_minor);
        cJSON_AddNumberToObject(j, "ordinal", info[i].ordinal);
        cJSON_AddStringToObject(j, "name", info[i].name);
        cJSON_AddStringToObject(j, "pci_bus_id", info[i].pci_bus_id);
        cJSON_AddNumberToObject(j, "total_bytes", (double)info[i].total_bytes);
        cJSON_AddStringToObject(j, "compute_capability", cc);
        ztopo_choice c;
        if (ztopo_choose(info[i].pci_bus_id, -1, &c) == 0) {
            cJSON_AddNumberToObject(j, "numa_node", c.numa_node);
            cJSON_AddStringToObject(j, "numa_reason", c.reason);
        }
        cJSON_AddItemToArray(list, j);
    }
    /* Display / 3D controllers on PCI, whatever the driver state. */
    cJSON *pci = cJSON_AddArrayToObject(g, "pci_display_devices");
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char p[512], cls[32], ven[32] = "?", dev[32] = "?";
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/class", e->d_name);
        if (read_line(p, cls, sizeof cls) != 0 || strncmp(cls, "0x03", 4) != 0) continue;
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/vendor", e->d_name);
        if (read_line(p, ven, sizeof ven) != 0) snprintf(ven, sizeof ven, "?");
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/device", e->d_name);
        if (read_line(p, dev, sizeof dev) != 0) snprintf(dev, sizeof dev, "?");
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s", e->d_name);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "bus_id", e->d_name);
        cJSON_AddStringToObject(j, "class", cls);
        cJSON_AddStringToObject(j, "vendor", ven);
        cJSON_AddStringToObject(j, "device", dev);
        cJSON_AddNumberToObject(j, "numa_node", sysfs_numa_node(p));
        cJSON_AddItemToArray(pci, j);
    }
    closedir(d);
}

static const char *disk_kind(const char *name)
{
    if (!strncmp(name, "nvme", 4)) return "NVMe";
    if (!strncmp(name, "vd", 2)) return "virtio";
    if (!strncmp(name, "xvd", 3)) return "xen";
    if (!strncmp(name, "sd", 2)) return "SCSI/SATA";
    if (!strncmp(name, "mmcblk", 6)) return "MMC";
    return "other";
}

static void gather_disks(cJSON *root)
{
    cJSON *list = cJSON_AddArrayToObject(root, "block_devices");
    DIR *d = opendir("/sys/block");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char p[512], model[128] = "";
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "/sys/block/%s/device", e->d_name);
        if (access(p, F_OK) != 0) continue; /* loop, ram, zram, dm: no physical device */
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", e->d_name);
        cJSON_AddStringToObject(j, "kind", disk_kind(e->d_name));
        snprintf(p, sizeof p, "/sys/block/%s/device/model", e->d_name);
        if (read_line(p, model, sizeof model) == 0) {
            size_t l = strlen(model);
            while (l && model[l - 1] == ' ') model[--l] = '\0';
            cJSON_AddStringToObject(j, "model", model);
        }
        static const struct {
            const char *key, *file;
        } q[] = {{"sectors_512", "size"},
                 {"rotational", "queue/rotational"},
                 {"logical_block_size", "queue/logical_block_size"},
                 {"max_sectors_kb", "queue/max_sectors_kb"},
                 {"max_hw_sectors_kb", "queue/max_hw_sectors_kb"},
                 {"max_segments", "queue/max_segments"}};
        for (size_t i = 0; i < ZOFF_ARRAY_SIZE(q); i++) {
            snprintf(p, sizeof p, "/sys/block/%s/%s", e->d_name, q[i].file);
            long long v = read_ll(p, -1);
            if (i == 0 && v >= 0)
                cJSON_AddNumberToObject(j, "size_bytes", (double)v * 512.0);
            else if (v >= 0)
                cJSON_AddNumberToObject(j, q[i].key, (double)v);
        }
        snprintf(p, sizeof p, "/sys/block/%s/device", e->d_name);
        cJSON_AddNumberToObject(j, "numa_node", sysfs_numa_node(p));
        cJSON_AddItemToArray(list, j);
    }
    closedir(d);
}

static void gather_limits(cJSON *root)
{
    cJSON *pin = cJSON_AddObjectToObject(root, "pinning");
    zarena_pin_limits lim;
    if (zarena_pin_limits_get(&lim) == 0) {
        if (lim.memlock_cur == UINT64_MAX)
            cJSON_AddStringToObject(pin, "memlock_soft", "unlimited");
        else
            cJSON_AddNumberToObject(pin, "memlock_soft", (double)lim.memlock_cur);
        if (lim.memlock_max == UINT64_MAX)
            cJSON_AddStringToObject(pin, "memlock_hard", "unlimited");
        else
            cJSON_AddNumberToObject(pin, "memlock_hard", (double)lim.memlock_max);
        cJSON_AddBoolToObject(pin, "cap_ipc_lock", lim.cap_ipc_lock);
        cJSON_AddNumberToObject(pin, "locked_bytes", (double)lim.locked_bytes);
        char v[160], b[32];
        if (lim.cap_ipc_lock || lim.memlock_cur == UINT64_MAX)
            snprintf(v, sizeof v, "unlimited%s", lim.cap_ipc_lock ? " (CAP_IPC_LOCK)" : "");
        else
            snprintf(v, sizeof v, "limited to %s: larger pinned arenas fall back to pageable",
                     zoff__fmt_bytes(lim.memlock_cur, b, sizeof b));
        cJSON_AddStringToObject(pin, "verdict", v);
    }

    cJSON *hp = cJSON_AddObjectToObject(root, "huge_pages");
    char mode[64];
    sysfs_mode("/sys/kernel/mm/transparent_hugepage/enabled", mode, sizeof mode);
    cJSON_AddStringToObject(hp, "thp_enabled", mode);
    sysfs_mode("/sys/kernel/mm/transparent_hugepage/defrag", mode, sizeof mode);
    cJSON_AddStringToObject(hp, "thp_defrag", mode);
    cJSON *pools = cJSON_AddArrayToObject(hp, "hugetlb");
    DIR *d = opendir("/sys/kernel/mm/hugepages");
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            unsigned long kb;
            if (sscanf(e->d_name, "hugepages-%lukB", &kb) != 1) continue;
            char p[512];
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "page_bytes", (double)kb * 1024.0);
            snprintf(p, sizeof p, "/sys/kernel/mm/hugepages/%s/nr_hugepages", e->d_name);
            cJSON_AddNumberToObject(j, "pages", (double)read_ll(p, 0));
            snprintf(p, sizeof p, "/sys/kernel/mm/hugepages/%s/free_hugepages", e->d_name);
            cJSON_AddNumberToObject(j, "free", (double)read_ll(p, 0));
            cJSON_AddItemToArray(pools, j);
        }
        closedir(d);
    }
}

/* Filesystem type and mount point of path (longest matching mount). */
static void mount_of(const char *path, char *fstype, size_t flen, char *mnt, size_t mlen)
{
    snprintf(fstype, flen, "?");
    snprintf(mnt, mlen, "?");
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f) return;
    char line[2048];
    size_t best = 0;
    while (fgets(line, sizeof line, f)) {
        char dev[512], dir[1024], type[64];
        if (sscanf(line, "%511s %1023s %63s", dev, dir, type) != 3) continue;
        size_t l = strlen(dir);
        int match = !strcmp(dir, "/") || (!strncmp(path, dir, l) && (path[l] == '/' || !path[l]));
        if (match && l >= best) {
            best = l;
            snprintf(fstype, flen, "%s", type);
            snprintf(mnt, mlen, "%s", dir);
        }
    }
    fclose(f);
}

/* The whole-disk name of the block device holding st_dev ("" if not a block device). */
static void disk_of(dev_t dev, char *out, size_t len)
{
    char p[128], real[PATH_MAX];
    out[0] = '\0';
    if (major(dev) == 0) return; /* tmpfs, overlay, ...: no block device */
    snprintf(p, sizeof p, "/sys/dev/block/%u:%u", major(dev), minor(dev));
    if (!realpath(p, real)) return;
    char part[PATH_MAX + 16];
    snprintf(part, sizeof part, "%s/partition", real);
    if (access(part, F_OK) == 0) *strrchr(real, '/') = '\0'; /* a partition: its disk */
    snprintf(out, len, "%s", strrchr(real, '/') + 1);
}

static void gather_paths(cJSON *root, const char *const *paths, int npaths)
{
    cJSON *io = cJSON_AddObjectToObject(root, "io_uring");
    int uring = 0;
    if (zswap_probe(npaths ? paths[0] : ".", NULL, &uring) == 0)
        cJSON_AddBoolToObject(io, "available", uring);
    long long dis = read_ll("/proc/sys/kernel/io_uring_disabled", -1);
    if (dis >= 0) cJSON_AddNumberToObject(io, "io_uring_disabled_sysctl", (double)dis);

    cJSON *list = cJSON_AddArrayToObject(root, "paths");
    for (int i = 0; i < npaths; i++) {
        cJSON *j = cJSON_CreateObject();
        char real[PATH_MAX];
        cJSON_AddStringToObject(j, "path", paths[i]);
        cJSON_AddItemToArray(list, j);
        struct stat sb;
        if (!realpath(paths[i], real) || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            cJSON_AddStringToObject(j, "error", "not an accessible directory");
            continue;
        }
        char fstype[64], mnt[1024], disk[64];
        mount_of(real, fstype, sizeof fstype, mnt, sizeof mnt);
        disk_of(sb.st_dev, disk, sizeof disk);
        cJSON_AddStringToObject(j, "fs_type", fstype);
        cJSON_AddStringToObject(j, "mount", mnt);
        cJSON_AddStringToObject(j, "block_device", disk[0] ? disk : "none");
        int odirect = 0;
        if (zswap_probe(real, &odirect, NULL) == 0)
            cJSON_AddBoolToObject(j, "odirect", odirect);
        else
            cJSON_AddStringToObject(j, "odirect_error", zoff__last_error_tls());
        /* O_DIRECT alignment of a file there (statx reports none for directories). */
        char tmpl[PATH_MAX + 32];
        snprintf(tmpl, sizeof tmpl, "%s/.zoff-info-XXXXXX", real);
        int fd = mkstemp(tmpl);
        if (fd >= 0) {
            struct statx sx;
            if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
                (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
                cJSON_AddNumberToObject(j, "dio_mem_align", sx.stx_dio_mem_align);
                cJSON_AddNumberToObject(j, "dio_offset_align", sx.stx_dio_offset_align);
            }
            close(fd);
            unlink(tmpl);
        }
        uint64_t fr;
        if (zswap_free_bytes(real, &fr) == 0) cJSON_AddNumberToObject(j, "free_bytes", (double)fr);
    }
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
    return b < 0 ? "?" : zoff__fmt_bytes((uint64_t)b, buf, len);
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

/* ---- --ranks N: the placement plan of N ranks on this node
 * --------------------------------------- Rank r drives GPU r (GPUs in ordinal order; none on the
 * sim device), takes the NUMA node nearest it, the ranks that chose the same node split its cores
 * (ztopo_split_cpus) and local rank r takes its share of the --path list as swap paths
 * (ztopo_rank_paths): what zoff_finalize does under mpirun -np N. */
static void gather_ranks(cJSON *root, int nranks, const char *const *paths, int npaths)
{
    zdev_gpu_info gpus[64];
    int ngpu = 0;
    if (zdev_cuda_list(gpus, 64, &ngpu) != 0) ngpu = 0;
    zoff__clear_error();
    char joined[4096] = "";
    size_t used = 0;
    for (int i = 0; i < npaths && used < sizeof joined; i++)
        used +=
            (size_t)snprintf(joined + used, sizeof joined - used, "%s%s", i ? "," : "", paths[i]);
    ztopo_choice *ch = calloc((size_t)nranks, sizeof *ch);
    cJSON *arr = cJSON_AddArrayToObject(root, "ranks");
    if (!ch || !arr) {
        free(ch);
        return;
    }
    for (int r = 0; r < nranks; r++) {
        const char *bus = ngpu > 0 ? gpus[r % ngpu].pci_bus_id : NULL;
        if (ztopo_choose(bus, -1, &ch[r]) != 0) {
            memset(&ch[r], 0, sizeof ch[r]);
            ch[r].numa_node = -1;
        }
    }
    zoff__clear_error();
    for (int r = 0; r < nranks; r++) {
        int index = 0, count = 0;
        for (int k = 0; k < nranks; k++) {
            if (ch[k].numa_node != ch[r].numa_node) continue;
            if (k < r) index++;
            count++;
        }
        ztopo_choice mine;
        ztopo_split_cpus(&ch[r], index, count, &mine);
        char sw[4096];
        ztopo_rank_paths(joined, r, nranks, sw, sizeof sw);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "rank", r);
        cJSON_AddStringToObject(j, "gpu", ngpu > 0 ? gpus[r % ngpu].pci_bus_id : "none (sim)");
        cJSON_AddNumberToObject(j, "numa_node", mine.numa_node);
        cJSON *cpus = cJSON_AddArrayToObject(j, "cpus");
        for (int c = 0; c < mine.ncpus; c++)
            cJSON_AddItemToArray(cpus, cJSON_CreateNumber(mine.cpus[c]));
        cJSON_AddStringToObject(j, "swap_paths", sw);
        cJSON_AddItemToArray(arr, j);
    }
    free(ch);
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

    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        fprintf(stderr, "zoff info: hwloc could not read the topology\n");
        return 1;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "zoff_version", zoff_version());
    gather_cpu(root, topo);
    gather_memory(root, topo);
    hwloc_topology_destroy(topo);
    gather_gpus(root);
    gather_disks(root);
    gather_limits(root);
    gather_paths(root, paths, npaths);
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
