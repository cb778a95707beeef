/*
 * report.c — what the example trainer shows and writes (train_internal.h): the header, the
 * progress bar on a TTY or one plain line per log interval, the final summary table (memory per
 * tier, bytes per link, time per step, overlap), generated samples, the per-step JSON metrics
 * (written atomically) and the gnuplot PNG loss curve.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train_internal.h"

uint64_t gpt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *gpt_fmt_bytes(double bytes, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", bytes, unit[u]);
    return buf;
}

static const char *tier_name(zoff_tier t)
{
    return t == ZOFF_TIER_NVME ? "nvme" : "cpu";
}

static const char *dtype_name(zoff_dtype d)
{
    return d == ZOFF_DTYPE_F16 ? "fp16" : "bf16";
}

/* ---- header --------------------------------------------------------------------------------- */
void gpt_report_header(const gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    if (o->quiet) return;
    char b1[32], b2[32], b3[32];
    double P = (double)t->lay.param_count;
    zoff_plan_report plan = {.struct_size = sizeof plan};
    int have_plan = zoff_plan(&o->zcfg, t->lay.param_count, &plan) == ZOFF_OK;
    double full = have_plan && plan.no_offload_bytes ? (double)plan.no_offload_bytes : 16.0 * P;
    double cap = (double)o->zcfg.sim_gpu_bytes;
    printf("zoff train: GPT, %d blocks x %d wide, %d heads, seq %d, %s head: %.2f M parameters\n",
           o->model.layers, o->model.width, o->model.heads, o->model.max_seq,
           o->model.tied ? "tied" : "untied", P / 1e6);
    printf("  data     %s: %zu tokens (%zu train / %zu validation)\n", t->data_path,
           t->data.ntokens, t->data.ntrain, t->data.ntokens - t->data.ntrain);
    printf("  device   sim, %s: 16-bit params + grads %s on it; the full training state "
           "(16 B/param) is %s%s\n",
           gpt_fmt_bytes(cap, b1, sizeof b1), gpt_fmt_bytes((double)t->dev_bytes, b2, sizeof b2),
           gpt_fmt_bytes(full, b3, sizeof b3), full > cap ? ": it does not fit" : "");
    if (o->zcfg.tier == ZOFF_TIER_NVME)
        printf("  offload  fp32 master + Adam state on the nvme tier under %s\n",
               o->zcfg.nvme_path);
    else
        printf("  offload  fp32 master + Adam state on the cpu tier (pinned host memory)\n");
    char sched[160];
    static const char *const sched_names[] = {
        "", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"};
    if (o->zcfg.scheduler.type != ZOFF_SCHED_NONE && (int)o->zcfg.scheduler.type <= 5)
        snprintf(sched, sizeof sched, "lr %.2g, scheduler %s (run by zoff per step)",
                 (double)o->zcfg.optimizer.lr, sched_names[o->zcfg.scheduler.type]);
    else
        snprintf(sched, sizeof sched, "lr %.2g (warm-up %" PRId64 ", cosine to %.2g)", t->peak_lr,
                 o->warmup_steps, gpt_train_min_lr(o));
    char batch[96] = "";
    if (o->zcfg.gradient_accumulation_steps > 1 && o->batch == o->zcfg.train_batch_size)
        snprintf(batch, sizeof batch, " (micro-batch %lld x accumulation %lld)",
                 (long long)o->zcfg.train_micro_batch_size_per_gpu,
                 (long long)o->zcfg.gradient_accumulation_steps);
    printf("  train    %s%s, %s %s, %" PRId64 " steps x %d%s x %d tokens%s\n", dtype_name(o->dtype),
           o->dtype == ZOFF_DTYPE_F16 ? " with dynamic loss scaling" : "",
           o->zcfg.optimizer_type == ZOFF_OPTIM_LION      ? "Lion"
           : o->zcfg.optimizer_type == ZOFF_OPTIM_ADAGRAD ? "Adagrad"
                                                          : zoff_optimizer_name(&o->zcfg.optimizer),
           sched, o->steps, o->batch, batch, o->model.max_seq,
           o->until > 0 && o->until < o->steps ? " (stopping early at --until)" : "");
    fflush(stdout);
}

/* ---- progress ------------------------------------------------------------------------------- */
static char g_bar[256]; /* the last progress bar drawn (redrawn after a message line) */

void gpt_report_line(gpt_trainer *t, const char *fmt, ...)
{
    if (t->o->quiet && strncmp(fmt, "warning", 7) != 0) return;
    va_list ap;
    va_start(ap, fmt);
    if (t->tty) printf("\r\033[K");
    vprintf(fmt, ap);
    printf("\n");
    if (t->tty && g_bar[0]) printf("%s", g_bar);
    va_end(ap);
    fflush(stdout);
}

void gpt_report_step(gpt_trainer *t, const gpt_step_metrics *m)
{
    const gpt_train_opts *o = t->o;
    if (o->quiet) return;
    int64_t total = o->until > 0 ? o->until : o->steps;
    if (t->tty) {
        char bar[21];
        int64_t span = total - t->start_iter;
        int fill = span > 0 ? (int)((m->step - t->start_iter) * 20 / span) : 20;
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
        double elapsed = (double)(gpt_now_ns() - t->t_start_ns) / 1e9;
        double eta = m->step > t->start_iter
                         ? elapsed / (double)(m->step - t->start_iter) * (double)(total - m->step)
                         : 0;
        snprintf(g_bar, sizeof g_bar,
                 "\r\033[K[%s] %" PRId64 "/%" PRId64 " loss %.3f %5.0f tok/s | fwd+bwd %.0f "
                 "d2h %.0f adam %.0f h2d %.0f nvme %.0f wait %.0f ms%s | ETA %d:%02d",
                 bar, m->step, total, (double)m->loss, m->tokens_per_s, m->compute_ms, m->d2h_ms,
                 m->adam_ms, m->h2d_ms, m->nvme_ms, m->ready_ms + m->grad_wait_ms,
                 m->skipped ? " skip" : "", (int)eta / 60, (int)eta % 60);
        struct winsize ws;
        size_t width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 0;
        if (width && strlen(g_bar) > width + 3) g_bar[width + 3] = '\0'; /* +3: "\r\033[K" */
        printf("%s", g_bar);
        fflush(stdout);
        return;
    }
    if (m->step % o->log_interval != 0 && m->step != t->start_iter + 1 && m->step != total) return;
    printf("step %6" PRId64 "/%" PRId64 "  loss %.4f  lr %.2e", m->step, total, (double)m->loss,
           m->lr);
    if (o->dtype == ZOFF_DTYPE_F16) printf("  scale %g", (double)m->loss_scale);
    printf("  %6.0f tok/s  |  %.0f ms: fwd+bwd %.0f, zoff_step %.0f (adam %.1f, nvme wait %.1f, "
           "grad wait %.1f), params ready %.1f  |  d2h %.1f  h2d %.1f  nvme %.1f ms%s\n",
           m->tokens_per_s, m->iter_ms, m->compute_ms, m->zstep_ms, m->adam_ms, m->nvme_wait_ms,
           m->grad_wait_ms, m->ready_ms, m->d2h_ms, m->h2d_ms, m->nvme_ms,
           !m->skipped                  ? ""
           : o->dtype == ZOFF_DTYPE_F16 ? "  [update skipped: fp16 overflow]"
                                        : "  [update skipped: non-finite gradient]");
    fflush(stdout);
}

/* ---- summary -------------------------------------------------------------------------------- */
static double mean_loss(const gpt_trainer *t, size_t from, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = from; i < from + n && i < t->nsteps; i++, k++) s += t->steps[i].loss;
    return k ? s / (double)k : NAN;
}

void gpt_report_summary(const gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    zoff_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if (zoff_get_stats(t->rt, &s) != ZOFF_OK) memset(&s, 0, sizeof s);
    double wall = (double)(gpt_now_ns() - t->t_start_ns) / 1e9;
    size_t n = t->nsteps;
    if (o->quiet) {
        printf("zoff train: %" PRId64 " steps, loss %.4f -> %.4f, validation %.4f, %.1f s, "
               "checkpoint %s\n",
               t->iter, n ? (double)t->steps[0].loss : NAN, n ? (double)t->steps[n - 1].loss : NAN,
               t->nevals ? (double)t->evals[t->nevals - 1].val_loss : NAN, wall,
               t->last_ckpt[0] ? t->last_ckpt : "-");
        return;
    }
    if (t->tty) printf("\r\033[K");
    g_bar[0] = '\0';
    size_t k = n < 10 ? (n + 1) / 2 : 10, skipped = 0;
    double mean[9] = {0};
    for (size_t i = 0; i < n; i++) {
        const gpt_step_metrics *m = &t->steps[i];
        skipped += (size_t)m->skipped;
        double v[9] = {m->compute_ms, m->zstep_ms, m->adam_ms, m->nvme_wait_ms, m->grad_wait_ms,
                       m->ready_ms,   m->iter_ms,  m->d2h_ms,  m->h2d_ms};
        for (int j = 0; j < 9; j++) mean[j] += v[j] / (double)n;
    }
    double tokens = (double)n * o->batch * o->model.max_seq;
    printf("\n== summary ==================================================================\n");
    printf("steps %" PRId64 "..%" PRId64 " in %.1f s (%.0f ms/step, %.0f tokens/s)",
           t->start_iter + 1, t->iter, wall, mean[6],
           n ? tokens / (mean[6] * (double)n / 1e3) : 0.0);
    if (skipped)
        printf(", %zu update(s) skipped on %s", skipped,
               o->dtype == ZOFF_DTYPE_F16 ? "fp16 overflow" : "non-finite gradients");
    printf("\nloss: train %.3f -> %.3f (mean of the first / last %zu steps)", mean_loss(t, 0, k),
           mean_loss(t, n - k, k), k);
    if (t->nevals > 1)
        printf(", validation %.3f (step %" PRId64 ") -> %.3f (step %" PRId64 ")",
               (double)t->evals[0].val_loss, t->evals[0].step,
               (double)t->evals[t->nevals - 1].val_loss, t->evals[t->nevals - 1].step);
    else if (t->nevals == 1)
        printf(", validation %.3f", (double)t->evals[0].val_loss);
    printf("\n\n");

    char b1[32], b2[32];
    double P = (double)t->lay.param_count, cap = (double)o->zcfg.sim_gpu_bytes;
    zoff_plan_report plan = {.struct_size = sizeof plan};
    double full = zoff_plan(&o->zcfg, t->lay.param_count, &plan) == ZOFF_OK && plan.no_offload_bytes
                      ? (double)plan.no_offload_bytes
                      : 16.0 * P;
    printf("memory per tier                                   bytes\n");
    printf("  sim GPU   16-bit params + grads (trainer)       %s\n",
           gpt_fmt_bytes((double)t->dev_bytes, b1, sizeof b1));
    printf("  sim GPU   zoff's own buffers                    %s\n",
           gpt_fmt_bytes((double)s.device_bytes, b1, sizeof b1));
    printf("  sim GPU   capacity                              %s\n",
           gpt_fmt_bytes(cap, b1, sizeof b1));
    printf("  host      pinned (zoff)                         %s%s\n",
           gpt_fmt_bytes((double)s.pinned_bytes, b1, sizeof b1),
           s.pinned_fallback ? "  (pinning refused: pageable fallback)" : "");
    printf("  host      pageable (zoff)                       %s\n",
           gpt_fmt_bytes((double)s.pageable_bytes, b1, sizeof b1));
    printf("  NVMe      swap files (zoff, %s tier)            %s%s\n", tier_name(o->zcfg.tier),
           gpt_fmt_bytes((double)s.nvme_bytes, b1, sizeof b1),
           o->zcfg.tier == ZOFF_TIER_NVME ? (s.odirect ? "  O_DIRECT" : "  buffered") : "");
    printf("  host      CPU model: activations, fp32 copies   %s  (device memory on a GPU "
           "trainer)\n",
           gpt_fmt_bytes((double)gpt_model_activation_bytes(t->model) +
                             2.0 * (double)t->lay.total_numel * sizeof(float),
                         b1, sizeof b1));
    printf("  without offload: 16 B/param on the GPU          %s  = %.1fx the sim GPU\n\n",
           gpt_fmt_bytes(full, b1, sizeof b1), full / cap);

    uint64_t bytes[4] = {s.total_d2h_bytes - t->d2h_bytes0, s.total_h2d_bytes - t->h2d_bytes0,
                         s.total_nvme_read_bytes - t->nvme_r_bytes0,
                         s.total_nvme_write_bytes - t->nvme_w_bytes0};
    double busy[4] = {t->sum_d2h_ms, t->sum_h2d_ms, t->sum_nvme_ms, t->sum_nvme_ms};
    const char *names[4] = {"D2H   16-bit gradients    ", "H2D   16-bit parameters   ",
                            "NVMe  read (Adam state)   ", "NVMe  write (Adam state)  "};
    printf("bytes per link (this run)           total        per step    per param/step\n");
    for (int i = 0; i < 4; i++) {
        if (i >= 2 && o->zcfg.tier != ZOFF_TIER_NVME) continue;
        printf("  %s        %-12s %-11s %.1f B\n", names[i],
               gpt_fmt_bytes((double)bytes[i], b1, sizeof b1),
               gpt_fmt_bytes(n ? (double)bytes[i] / (double)n : 0, b2, sizeof b2),
               n ? (double)bytes[i] / (double)n / P : 0.0);
    }
    if (busy[0] > 0 || busy[1] > 0)
        printf("  link busy: D2H %.1f ms (%.2f GB/s), H2D %.1f ms (%.2f GB/s)\n", busy[0],
               busy[0] > 0 ? (double)bytes[0] / (busy[0] * 1e6) : 0.0, busy[1],
               busy[1] > 0 ? (double)bytes[1] / (busy[1] * 1e6) : 0.0);
    if (o->zcfg.tier == ZOFF_TIER_NVME && busy[2] > 0)
        printf("  NVMe busy %.1f ms: %.2f GB/s read + write\n", busy[2],
               (double)(bytes[2] + bytes[3]) / (busy[2] * 1e6));
    printf("\ntime per step (mean ms)  fwd+bwd  zoff_step  (adam  nvme wait  grad wait)  "
           "params ready  total\n");
    printf("                         %7.1f  %9.1f  (%5.1f  %9.1f  %9.1f)  %12.1f  %5.1f\n", mean[0],
           mean[1], mean[2], mean[3], mean[4], mean[5], mean[6]);
    printf("overlap ratio (zoff, mean over steps): %.2f   (sum of busy times / step wall time)\n",
           n ? t->sum_overlap / (double)n : 0.0);
    printf("Adam kernel: %s; device: %s; checkpoint: %s\n", s.cpu_isa[0] ? s.cpu_isa : "?",
           s.device_name[0] ? s.device_name : "sim", t->last_ckpt[0] ? t->last_ckpt : "-");
    fflush(stdout);
}

/* ---- samples -------------------------------------------------------------------------------- */
void gpt_report_samples(gpt_trainer *t)
{
    const gpt_train_opts *o = t->o;
    if (o->samples <= 0) return;
    gpt_sampler *s = NULL;
    int T = o->model.max_seq;
    int32_t *hist = malloc((size_t)(o->sample_chars + 1) * sizeof(int32_t));
    char *text = malloc((size_t)o->sample_chars + 1);
    if (!hist || !text || gpt_sampler_create(&o->model, &s) != 0) {
        fprintf(stderr, "zoff train: out of memory for sampling\n");
        goto out;
    }
    gpt_rng rng;
    gpt_rng_seed(&rng, o->seed * 7919u + 17u);
    printf("\nsamples (temperature %.2f, %d characters each, after a newline):\n",
           (double)o->temperature, o->sample_chars);
    for (int k = 0; k < o->samples; k++) {
        gpt_sampler_reset(s);
        int n = 0;
        const float *logits = gpt_sampler_feed(s, t->params, gpt_encode_byte('\n'));
        while (logits && n < o->sample_chars) {
            int32_t tok =
                gpt_sample_token(logits, o->model.vocab, o->temperature, gpt_rng_uniform(&rng));
            hist[n] = tok;
            text[n++] = gpt_decode_token(tok);
            if (gpt_sampler_pos(s) >= T) { /* context full: keep the last half */
                gpt_sampler_reset(s);
                int keep = T / 2 < n ? T / 2 : n;
                for (int i = n - keep; i < n && logits; i++)
                    logits = gpt_sampler_feed(s, t->params, hist[i]);
            } else {
                logits = gpt_sampler_feed(s, t->params, tok);
            }
        }
        text[n] = '\0';
        printf("--- sample %d ---\n", k + 1);
        for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            printf("  | %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
        }
    }
out:
    gpt_sampler_destroy(s);
    free(hist);
    free(text);
    fflush(stdout);
}

/* ---- JSON metrics --------------------------------------------------------------------------- */
static void jnum(FILE *f, const char *key, double v, const char *sep)
{
    if (isfinite(v))
        fprintf(f, "\"%s\": %.9g%s", key, v, sep);
    else
        fprintf(f, "\"%s\": null%s", key, sep);
}

/* A JSON string: quotes, backslashes and control characters escaped (paths may hold any). */
static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int gpt_write_json(const gpt_trainer *t, const char *path)
{
    const gpt_train_opts *o = t->o;
    char tmp[GPT_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int e = errno;
        fprintf(stderr, "zoff train: --json %s: %s\n", tmp, strerror(e));
        return -e;
    }
    fprintf(f, "{\n  \"format\": \"zoff-train-metrics/1\",\n");
    fprintf(f,
            "  \"model\": {\"layers\": %d, \"width\": %d, \"heads\": %d, \"seq_len\": %d, "
            "\"tied\": %s, \"vocab\": %d, \"params\": %zu},\n",
            o->model.layers, o->model.width, o->model.heads, o->model.max_seq,
            o->model.tied ? "true" : "false", o->model.vocab, t->lay.param_count);
    fprintf(f,
            "  \"train\": {\"dtype\": \"%s\", \"tier\": \"%s\", \"batch\": %d, \"steps\": %" PRId64
            ", \"start_step\": %" PRId64 ", \"end_step\": %" PRId64 ", \"seed\": %" PRIu64
            ", \"interrupted\": %s},\n",
            dtype_name(o->dtype), tier_name(o->zcfg.tier), o->batch, o->steps, t->start_iter,
            t->iter, o->seed, t->interrupted ? "true" : "false");
    fprintf(f, "  \"steps\": [\n");
    for (size_t i = 0; i < t->nsteps; i++) {
        const gpt_step_metrics *m = &t->steps[i];
        fprintf(f, "    {\"step\": %" PRId64 ", ", m->step);
        jnum(f, "loss", m->loss, ", ");
        jnum(f, "lr", m->lr, ", ");
        jnum(f, "loss_scale", m->loss_scale, ", ");
        jnum(f, "grad_norm", m->grad_norm, ", ");
        fprintf(f, "\"skipped\": %d, ", m->skipped);
        jnum(f, "iter_ms", m->iter_ms, ", ");
        jnum(f, "compute_ms", m->compute_ms, ", ");
        jnum(f, "zoff_step_ms", m->zstep_ms, ", ");
        jnum(f, "adam_ms", m->adam_ms, ", ");
        jnum(f, "nvme_wait_ms", m->nvme_wait_ms, ", ");
        jnum(f, "grad_wait_ms", m->grad_wait_ms, ", ");
        jnum(f, "params_ready_ms", m->ready_ms, ", ");
        jnum(f, "d2h_ms", m->d2h_ms, ", ");
        jnum(f, "h2d_ms", m->h2d_ms, ", ");
        jnum(f, "nvme_ms", m->nvme_ms, ", ");
        jnum(f, "overlap", m->overlap, ", ");
        jnum(f, "tokens_per_s", m->tokens_per_s, "");
        fprintf(f, "}%s\n", i + 1 < t->nsteps ? "," : "");
    }
    fprintf(f, "  ],\n  \"eval\": [\n");
    for (size_t i = 0; i < t->nevals; i++) {
        fprintf(f, "    {\"step\": %" PRId64 ", ", t->evals[i].step);
        jnum(f, "val_loss", t->evals[i].val_loss, "");
        fprintf(f, "}%s\n", i + 1 < t->nevals ? "," : "");
    }
    fprintf(f, "  ],\n  \"checkpoint\": ");
    jstr(f, t->last_ckpt);
    fprintf(f, "\n}\n");
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = 1;
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "zoff train: --json %s: write failed: %s\n", path, strerror(errno));
        unlink(tmp);
        return -EIO;
    }
    return 0;
}

/* ---- gnuplot -------------------------------------------------------------------------------- */
static int have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char dir[GPT_PATH_MAX];
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        snprintf(dir, sizeof dir, "%.*s/%s", (int)len, len ? p : ".", name);
        if (access(dir, X_OK) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int gpt_write_plot(const gpt_trainer *t, const char *path)
{
    const gpt_train_opts *o = t->o;
    if (!have_program("gnuplot")) {
        fprintf(stderr,
                "zoff train: --plot %s: gnuplot is not installed (apt-get install gnuplot-nox); "
                "no plot written (--json has the same numbers)\n",
                path);
        return -ENOENT;
    }
    if (strchr(path, '\'') || strchr(path, '\n')) {
        fprintf(stderr, "zoff train: --plot: the file name may not contain quotes or newlines\n");
        return -EINVAL;
    }
    char dat[GPT_PATH_MAX + 16]; /* the data gnuplot reads, next to the PNG, removed after */
    snprintf(dat, sizeof dat, "%s.data", path);
    FILE *f = fopen(dat, "w");
    int rc = 0;
    if (!f) {
        int e = errno;
        fprintf(stderr, "zoff train: --plot: %s: %s\n", dat, strerror(e));
        return -e;
    }
    for (size_t i = 0; i < t->nsteps; i++)
        fprintf(f, "%" PRId64 " %.6f\n", t->steps[i].step, (double)t->steps[i].loss);
    fprintf(f, "\n\n");
    for (size_t i = 0; i < t->nevals; i++)
        fprintf(f, "%" PRId64 " %.6f\n", t->evals[i].step, (double)t->evals[i].val_loss);
    fclose(f);
    FILE *g = popen("gnuplot 2>&1", "w");
    if (!g) {
        int e = errno;
        fprintf(stderr, "zoff train: --plot: cannot run gnuplot: %s\n", strerror(e));
        unlink(dat);
        return -e;
    }
    fprintf(g, "set terminal pngcairo size 900,520 font 'sans,10'\n");
    char out[GPT_PATH_MAX + 16];
    snprintf(out, sizeof out, "%s.tmp", path); /* renamed into place when gnuplot succeeded */
    fprintf(g, "set output '%s'\n", out);
    fprintf(g, "set title 'zoff train: GPT %.2f M params, %s, optimizer state on the %s tier'\n",
            (double)t->lay.param_count / 1e6, dtype_name(o->dtype), tier_name(o->zcfg.tier));
    fprintf(g, "set xlabel 'step'\nset ylabel 'cross-entropy (nats per character)'\n");
    fprintf(g, "set grid\nset key top right\n");
    fprintf(g, "plot '%s' index 0 using 1:2 with lines lw 1.5 title 'train (batch)'", dat);
    if (t->nevals)
        fprintf(g, ", '%s' index 1 using 1:2 with linespoints lw 2 pt 7 title 'validation'", dat);
    fprintf(g, "\n");
    int st = pclose(g);
    if (st != 0 || rename(out, path) != 0) {
        fprintf(stderr, "zoff train: --plot %s: gnuplot failed (status %d)\n", path, st);
        unlink(out);
        rc = -EIO;
    } else if (!o->quiet) {
        printf("loss curve written to %s\n", path);
    }
    unlink(dat);
    return rc;
}
