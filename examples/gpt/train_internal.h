/*
 * train_internal.h — state shared by the training loop (trainer.c) and its reporting
 * (report.c): the run's handles and buffers, the per-step metrics and the evaluations. Not a
 * public header.
 */
#ifndef ZOFF_GPT_TRAIN_INTERNAL_H
#define ZOFF_GPT_TRAIN_INTERNAL_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "rng.h"
#include "trainer.h"
#include "zoff.h"

/* One training step as measured by the trainer. Times in milliseconds. */
typedef struct gpt_step_metrics {
    int64_t step; /* 1-based step number */
    float loss;   /* mean training loss of the batch (before the update) */
    double lr;
    float loss_scale;      /* scale the loss gradient was multiplied by */
    double grad_norm;      /* zoff: global norm of the unscaled gradients */
    int skipped;           /* zoff skipped the update (fp16 overflow) */
    double iter_ms;        /* wall time of the whole step */
    double compute_ms;     /* forward + backward + gradient hand-off (grad_ready) */
    double zstep_ms;       /* zoff_step wall time */
    double adam_ms;        /* CPU Adam inside zoff_step */
    double nvme_wait_ms;   /* time zoff_step waited on NVMe */
    double grad_wait_ms;   /* time zoff_step waited for gradient copies */
    double ready_ms;       /* zoff_params_ready + refresh of the fp32 compute copy */
    double d2h_ms, h2d_ms; /* link busy time of the step (zoff_get_stats) */
    double nvme_ms;        /* NVMe read + write busy time */
    double trainer_wait_ms;
    double overlap; /* zoff's overlap ratio of the step */
    double tokens_per_s;
} gpt_step_metrics;

typedef struct gpt_eval_point {
    int64_t step;
    float val_loss;
} gpt_eval_point;

typedef struct gpt_trainer {
    const gpt_train_opts *o;
    zoff_runtime *rt;
    gpt_layout lay;
    gpt_model *model;
    gpt_data data;
    const char *data_path;
    uint16_t *dev_params;  /* device: 16-bit parameters (lay.total_numel) */
    uint16_t *dev_grads;   /* device: one 16-bit gradient buffer of the largest tensor, handed
                              to zoff's gradient buckets (zoff_grad_push) tensor by tensor */
    size_t dev_bytes;      /* device bytes the trainer allocated */
    float *params;         /* host: fp32 compute copy of dev_params */
    float *grads;          /* host: fp32 gradients of the backward */
    int *ids;              /* zoff parameter id of each tensor */
    int stream;            /* 1: 16-bit weights streamed, one zoff unit per backward stage */
    int *stage_unit;       /* stream: zoff unit of each stage (lay.nstages) */
    size_t resident_numel; /* stream: elements of dev_params (the resident tensors) */
    int32_t *x, *y;        /* (B, T) batch */
    int rank, nranks;   /* under mpirun -np N: data parallel, rank r takes the r-th of N batches */
    gpt_rng rng;        /* training batches */
    int64_t iter;       /* steps done */
    int64_t start_iter; /* steps done when this run started (resume) */
    int group_decay, group_nodecay;
    int tty; /* progress bar on stdout */
    double peak_lr;
    uint64_t t_start_ns;
    zoff_status cb_status; /* first error of a stage callback */
    int interrupted;
    char ckpt_dir[GPT_PATH_MAX];
    char last_ckpt[GPT_PATH_MAX];
    int64_t ckpt_failures; /* periodic saves failed in a row */

    gpt_step_metrics *steps;
    size_t nsteps, cap_steps;
    gpt_eval_point *evals;
    size_t nevals, cap_evals;
    /* link totals accumulated over the run's steps */
    double sum_d2h_ms, sum_h2d_ms, sum_nvme_ms, sum_overlap;
    uint64_t d2h_bytes0, h2d_bytes0, nvme_r_bytes0, nvme_w_bytes0; /* totals at run start */
} gpt_trainer;

/* report.c */
uint64_t gpt_now_ns(void);
const char *gpt_fmt_bytes(double bytes, char *buf, size_t len);
void gpt_report_header(const gpt_trainer *t);
void gpt_report_step(gpt_trainer *t, const gpt_step_metrics *m);
void gpt_report_line(gpt_trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gpt_report_summary(const gpt_trainer *t);
void gpt_report_samples(gpt_trainer *t);
int gpt_write_json(const gpt_trainer *t, const char *path);
int gpt_write_plot(const gpt_trainer *t, const char *path);

#endif /* ZOFF_GPT_TRAIN_INTERNAL_H */
