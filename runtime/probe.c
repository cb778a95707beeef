/*
 * probe.c — zoff_probe_machine / zoff_probe_path / zoff_probe_ranks: the facts of this machine a
 * user needs before tuning zoff (what `zoff info` prints): CPU model and the ISA features the CPU
 * Adam uses, cores and packages (hwloc), NUMA nodes and their memory (libnuma), GPUs and the NUMA
 * node nearest each (gpu/ and offload/ topology), PCI display controllers and block devices with
 * their NUMA locality (sysfs), locked-memory limits (offload/ arena), transparent huge pages and
 * hugetlb pools, io_uring availability and, for a directory, its filesystem, block device,
 * O_DIRECT support and alignment and free space (nvme/ probes). Fills caller structs; owns
 * nothing after return.
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

#include "common/common.h"
#include "gpu/device.h"
#include "nvme/swap.h"
#include "offload/arena.h"
#include "zoff.h"

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
static void probe_cpu(zoff_machine_info *m, hwloc_topology_t topo)
{
    char line[4096], flags[4096] = "";
    snprintf(m->cpu_model, sizeof m->cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!colon) continue;
            if (!strncmp(line, "model name", 10) && !strcmp(m->cpu_model, "unknown"))
                snprintf(m->cpu_model, sizeof m->cpu_model, "%.*s", (int)strcspn(colon + 2, "\n"),
                         colon + 2);
            if (!strncmp(line, "flags", 5) && !flags[0])
                snprintf(flags, sizeof flags, " %.*s ", (int)strcspn(colon + 2, "\n"), colon + 2);
        }
        fclose(f);
    }
    m->online_cpus = zoff__ncpus();
    m->cores = topo ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) : -1;
    m->packages = topo ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE) : -1;
    /* /proc/cpuinfo flag names; the kernel hides what the OS does not enable (XSAVE state). */
    const struct {
        const char *flag;
        int *field;
    } isa[] = {{"sse4_2", &m->sse4_2},
               {"avx", &m->avx},
               {"avx2", &m->avx2},
               {"fma", &m->fma},
               {"f16c", &m->f16c},
               {"avx512f", &m->avx512f},
               {"avx512bw", &m->avx512bw},
               {"avx512vl", &m->avx512vl},
               {"avx512_bf16", &m->avx512_bf16},
               {"avx512_fp16", &m->avx512_fp16},
               {"amx_bf16", &m->amx_bf16}};
    for (size_t i = 0; i < ZOFF_ARRAY_SIZE(isa); i++) {
        char pat[64];
        snprintf(pat, sizeof pat, " %s ", isa[i].flag);
        *isa[i].field = strstr(flags, pat) != NULL;
    }
}

static void probe_memory(zoff_machine_info *m, hwloc_topology_t topo)
{
    m->mem_total_bytes = (int64_t)zoff__proc_kb("/proc/meminfo", "MemTotal");
    m->mem_available_bytes = (int64_t)zoff__mem_available();
    if (!topo) return;
    int have_numa = numa_available() >= 0;
    for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL);
         n && m->nnuma < ZOFF_PROBE_MAX_NUMA;
         n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) {
        int k = m->nnuma++;
        m->numa[k].node = (int)n->os_index;
        hwloc_bitmap_list_snprintf(m->numa[k].cpus, sizeof m->numa[k].cpus, n->cpuset);
        long long fr = -1, total = have_numa ? numa_node_size64((int)n->os_index, &fr) : -1;
        m->numa[k].total_bytes =
            total > 0 ? (int64_t)total : (int64_t)n->attr->numanode.local_memory;
        m->numa[k].free_bytes = fr >= 0 ? (int64_t)fr : -1;
    }
}

static void probe_gpus(zoff_machine_info *m)
{
    m->cuda_built = zdev_cuda_built();
    zdev_gpu_info info[ZOFF_PROBE_MAX_GPUS];
    int n = 0;
    zoff_status st = zdev_cuda_list(info, ZOFF_PROBE_MAX_GPUS, &n);
    if (st < 0 || n == 0) {
        n = 0;
        snprintf(m->gpu_note, sizeof m->gpu_note, "none (sim): %s",
                 m->cuda_built ? zoff__last_error_tls() : "built without the CUDA backend");
    }
    m->ngpus = n;
    for (int i = 0; i < n; i++) {
        m->gpus[i].ordinal = info[i].ordinal;
        snprintf(m->gpus[i].name, sizeof m->gpus[i].name, "%s", info[i].name);
        snprintf(m->gpus[i].pci_bus_id, sizeof m->gpus[i].pci_bus_id, "%s", info[i].pci_bus_id);
        m->gpus[i].total_bytes = (int64_t)info[i].total_bytes;
        m->gpus[i].cc_major = info[i].cc_major;
        m->gpus[i].cc_minor = info[i].cc_minor;
        m->gpus[i].numa_node = -1;
        ztopo_choice c;
        if (ztopo_choose(info[i].pci_bus_id, -1, &c) == 0) {
            m->gpus[i].numa_node = c.numa_node;
            snprintf(m->gpus[i].numa_reason, sizeof m->gpus[i].numa_reason, "%s", c.reason);
        }
    }
    /* Display / 3D controllers on PCI, whatever the driver state. */
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL && m->npci_display < ZOFF_PROBE_MAX_PCI;) {
        if (e->d_name[0] == '.') continue;
        char p[512], cls[32];
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/class", e->d_name);
        if (read_line(p, cls, sizeof cls) != 0 || strncmp(cls, "0x03", 4) != 0) continue;
        int k = m->npci_display++;
        snprintf(m->pci_display[k].bus_id, sizeof m->pci_display[k].bus_id, "%.31s", e->d_name);
        snprintf(m->pci_display[k].pci_class, sizeof m->pci_display[k].pci_class, "%s", cls);
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/vendor", e->d_name);
        if (read_line(p, m->pci_display[k].vendor, sizeof m->pci_display[k].vendor) != 0)
            snprintf(m->pci_display[k].vendor, sizeof m->pci_display[k].vendor, "?");
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/device", e->d_name);
        if (read_line(p, m->pci_display[k].device, sizeof m->pci_display[k].device) != 0)
            snprintf(m->pci_display[k].device, sizeof m->pci_display[k].device, "?");
        snprintf(p, sizeof p, "/sys/bus/pci/devices/%s", e->d_name);
        m->pci_display[k].numa_node = sysfs_numa_node(p);
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

static void probe_disks(zoff_machine_info *m)
{
    DIR *d = opendir("/sys/block");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL && m->ndisks < ZOFF_PROBE_MAX_DISKS;) {
        char p[512];
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "/sys/block/%s/device", e->d_name);
        if (access(p, F_OK) != 0) continue; /* loop, ram, zram, dm: no physical device */
        int k = m->ndisks++;
        snprintf(m->disks[k].name, sizeof m->disks[k].name, "%.63s", e->d_name);
        snprintf(m->disks[k].kind, sizeof m->disks[k].kind, "%s", disk_kind(e->d_name));
        snprintf(p, sizeof p, "/sys/block/%s/device/model", e->d_name);
        char *model = m->disks[k].model;
        if (read_line(p, model, sizeof m->disks[k].model) == 0) {
            size_t l = strlen(model);
            while (l && model[l - 1] == ' ') model[--l] = '\0';
        } else {
            model[0] = '\0';
        }
        const struct {
            int64_t *field;
            const char *file;
        } q[] = {{&m->disks[k].size_bytes, "size"},
                 {&m->disks[k].rotational, "queue/rotational"},
                 {&m->disks[k].logical_block_size, "queue/logical_block_size"},
                 {&m->disks[k].max_sectors_kb, "queue/max_sectors_kb"},
                 {&m->disks[k].max_hw_sectors_kb, "queue/max_hw_sectors_kb"},
                 {&m->disks[k].max_segments, "queue/max_segments"}};
        for (size_t i = 0; i < ZOFF_ARRAY_SIZE(q); i++) {
            snprintf(p, sizeof p, "/sys/block/%s/%s", e->d_name, q[i].file);
            long long v = read_ll(p, -1);
            *q[i].field = v < 0 ? -1 : (i == 0 ? (int64_t)v * 512 : (int64_t)v);
        }
        snprintf(p, sizeof p, "/sys/block/%s/device", e->d_name);
        m->disks[k].numa_node = sysfs_numa_node(p);
    }
    closedir(d);
}

static void probe_limits(zoff_machine_info *m)
{
    zarena_pin_limits lim;
    if (zarena_pin_limits_get(&lim) == 0) {
        m->have_memlock = 1;
        m->memlock_soft = lim.memlock_cur;
        m->memlock_hard = lim.memlock_max;
        m->cap_ipc_lock = lim.cap_ipc_lock;
        m->locked_bytes = lim.locked_bytes;
    }
    sysfs_mode("/sys/kernel/mm/transparent_hugepage/enabled", m->thp_enabled,
               sizeof m->thp_enabled);
    sysfs_mode("/sys/kernel/mm/transparent_hugepage/defrag", m->thp_defrag, sizeof m->thp_defrag);
    DIR *d = opendir("/sys/kernel/mm/hugepages");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL && m->nhugetlb < ZOFF_PROBE_MAX_HUGE;) {
        unsigned long kb;
        if (sscanf(e->d_name, "hugepages-%lukB", &kb) != 1) continue;
        char p[512];
        int k = m->nhugetlb++;
        m->hugetlb[k].page_bytes = (int64_t)kb * 1024;
        snprintf(p, sizeof p, "/sys/kernel/mm/hugepages/%s/nr_hugepages", e->d_name);
        m->hugetlb[k].pages = read_ll(p, 0);
        snprintf(p, sizeof p, "/sys/kernel/mm/hugepages/%s/free_hugepages", e->d_name);
        m->hugetlb[k].free = read_ll(p, 0);
    }
    closedir(d);
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

static void probe_path(const char *path, zoff_path_info *j)
{
    size_t ss = j->struct_size;
    memset(j, 0, sizeof *j);
    j->struct_size = ss;
    j->odirect = -1;
    j->dio_mem_align = j->dio_offset_align = j->free_bytes = -1;
    char real[PATH_MAX];
    struct stat sb;
    if (!realpath(path, real) || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) return;
    j->accessible = 1;
    mount_of(real, j->fs_type, sizeof j->fs_type, j->mount, sizeof j->mount);
    disk_of(sb.st_dev, j->block_device, sizeof j->block_device);
    if (!j->block_device[0]) snprintf(j->block_device, sizeof j->block_device, "none");
    int odirect = 0;
    if (zswap_probe(real, &odirect, NULL) == 0)
        j->odirect = odirect;
    else
        snprintf(j->odirect_error, sizeof j->odirect_error, "%s", zoff__last_error_tls());
    /* O_DIRECT alignment of a file there (statx reports none for directories). */
    char tmpl[PATH_MAX + 32];
    snprintf(tmpl, sizeof tmpl, "%s/.zoff-info-XXXXXX", real);
    int fd = mkstemp(tmpl);
    if (fd >= 0) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
            j->dio_mem_align = sx.stx_dio_mem_align;
            j->dio_offset_align = sx.stx_dio_offset_align;
        }
        close(fd);
        unlink(tmpl);
    }
    uint64_t fr;
    if (zswap_free_bytes(real, &fr) == 0) j->free_bytes = (int64_t)fr;
}

ZOFF_API zoff_status zoff_probe_path(const char *path, zoff_path_info *out)
{
    if (!out || out->struct_size < sizeof(size_t))
        return zoff__err(ZOFF_EINVAL, "zoff_probe_path: NULL argument or struct_size");
    zoff_path_info j = ZOFF_PATH_INFO_INIT;
    probe_path(path ? path : ".", &j);
    size_t n = out->struct_size < sizeof j ? out->struct_size : sizeof j;
    memcpy((char *)out + sizeof(size_t), (char *)&j + sizeof(size_t), n - sizeof(size_t));
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_probe_machine(const char *path, zoff_machine_info *out)
{
    if (!out || out->struct_size < sizeof(size_t))
        return zoff__err(ZOFF_EINVAL, "zoff_probe_machine: NULL argument or struct_size");
    zoff_machine_info *m = calloc(1, sizeof *m);
    if (!m) return zoff__err(-ENOMEM, "zoff_probe_machine: out of memory");
    m->struct_size = sizeof *m;
    hwloc_topology_t topo;
    int have_topo = hwloc_topology_init(&topo) == 0;
    if (have_topo && hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        have_topo = 0;
    }
    probe_cpu(m, have_topo ? topo : NULL);
    probe_memory(m, have_topo ? topo : NULL);
    if (have_topo) hwloc_topology_destroy(topo);
    probe_gpus(m);
    probe_disks(m);
    probe_limits(m);
    if (!path) path = ".";
    int uring = 0;
    m->io_uring = zswap_probe(path, NULL, &uring) == 0 ? uring : -1;
    m->io_uring_disabled_sysctl = (int)read_ll("/proc/sys/kernel/io_uring_disabled", -1);
    m->path.struct_size = sizeof m->path;
    probe_path(path, &m->path);
    zoff__clear_error();
    size_t n = out->struct_size < sizeof *m ? out->struct_size : sizeof *m;
    memcpy((char *)out + sizeof(size_t), (char *)m + sizeof(size_t), n - sizeof(size_t));
    free(m);
    return ZOFF_OK;
}

ZOFF_API zoff_status zoff_probe_rank(int rank, int nranks, const char *paths,
                                     zoff_rank_placement *out)
{
    if (nranks < 1 || nranks > 1024 || rank < 0 || rank >= nranks)
        return zoff__err(ZOFF_EINVAL, "zoff_probe_rank: rank %d of %d (expected 1..1024 ranks)",
                         rank, nranks);
    if (!out || out->struct_size < sizeof(size_t))
        return zoff__err(ZOFF_EINVAL, "zoff_probe_rank: NULL argument or struct_size");
    zdev_gpu_info gpus[64];
    int ngpu = 0;
    if (zdev_cuda_list(gpus, 64, &ngpu) != 0) ngpu = 0;
    zoff__clear_error();
    /* The node every rank chooses: the ranks on rank's node split its cores. */
    ztopo_choice *c = malloc(sizeof *c), *mine = malloc(sizeof *mine);
    zoff_rank_placement *p = calloc(1, sizeof *p);
    if (!c || !mine || !p) {
        free(c);
        free(mine);
        free(p);
        return zoff__err(-ENOMEM, "zoff_probe_rank: out of memory");
    }
    int my_node = -1, index = 0, count = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < nranks; r++) {
            if (pass == 0 && r != rank) continue;
            const char *bus = ngpu > 0 ? gpus[r % ngpu].pci_bus_id : NULL;
            if (ztopo_choose(bus, -1, c) != 0) {
                memset(c, 0, sizeof *c);
                c->numa_node = -1;
            }
            if (pass == 0) {
                my_node = c->numa_node;
                *mine = *c;
                continue;
            }
            if (c->numa_node != my_node) continue;
            if (r < rank) index++;
            count++;
        }
    }
    zoff__clear_error();
    ztopo_split_cpus(mine, index, count, c);
    p->struct_size = sizeof *p;
    snprintf(p->gpu, sizeof p->gpu, "%s", ngpu > 0 ? gpus[rank % ngpu].pci_bus_id : "none (sim)");
    p->numa_node = c->numa_node;
    p->ncpus = c->ncpus < ZOFF_PROBE_MAX_CPUS ? c->ncpus : ZOFF_PROBE_MAX_CPUS;
    memcpy(p->cpus, c->cpus, (size_t)p->ncpus * sizeof p->cpus[0]);
    ztopo_rank_paths(paths ? paths : "", rank, nranks, p->swap_paths, sizeof p->swap_paths);
    size_t n = out->struct_size < sizeof *p ? out->struct_size : sizeof *p;
    memcpy((char *)out + sizeof(size_t), (char *)p + sizeof(size_t), n - sizeof(size_t));
    free(c);
    free(mine);
    free(p);
    return ZOFF_OK;
}
