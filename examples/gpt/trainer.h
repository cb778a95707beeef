/*
 * trainer.h — the example trainer behind `zoff train`: trains the GPT model of model.h on the
 * bundled corpus with zoff offloading the optimizer. Uses only the public API (include/zoff.h).
 *
 * It owns: the training options (model, schedule, data, outputs) and their JSON sections
 * ("model" and "train" of the DeepSpeed-style config, which the runtime's parser skips), the
 * built-in demo configuration, the corpus and its train/validation split, and the training loop
 * with progress output, evaluation, checkpoints (trainer state saved atomically with the
 * optimizer state through zoff_save_with), resume, Ctrl-C handling, the final summary, samples,
 * the per-step JSON metrics and the gnuplot loss curve.
 *
 * Thread safety: one training run per process (the SIGINT/SIGTERM handler is process-wide).
 */
#ifndef ZOFF_GPT_TRAINER_H
#define ZOFF_GPT_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "zoff.h"

#define GPT_PATH_MAX 1024

/* Exit codes of gpt_train_run (and of `zoff train`). */
enum {
    GPT_EXIT_OK = 0,
    GPT_EXIT_FAIL = 1,         /* a runtime, I/O or data error (message printed) */
    GPT_EXIT_USAGE = 2,        /* bad option or configuration (message printed) */
    GPT_EXIT_INTERRUPTED = 130 /* SIGINT/SIGTERM: the current step finished, checkpoint saved */
};

typedef struct gpt_train_opts {
    gpt_config model;          /* max_seq is the training sequence length */
    int batch;                 /* sequences per step */
    int64_t steps;             /* length of the lr schedule = last step of the run */
    int64_t until;             /* stop (with a checkpoint) once this step is done; 0: steps */
    double lr;                 /* peak lr; 0: optimizer.params.lr of the zoff config */
    double min_lr;             /* end of the cosine decay; < 0: a tenth of the peak lr */
    int64_t warmup_steps;      /* linear warm-up from lr/warmup to lr */
    int64_t eval_interval;     /* validation loss every N steps (0: only at the end) */
    int eval_batches;          /* batches of the fixed validation set */
    int64_t ckpt_interval;     /* checkpoint every N steps (0: only at the end) */
    int64_t ckpt_max_failures; /* periodic saves that may fail in a row before the run stops */
    int64_t log_interval;      /* one plain line every N steps when not on a TTY */
    uint64_t seed;             /* initialisation, batches and samples */
    zoff_dtype dtype;          /* ZOFF_DTYPE_F16 or ZOFF_DTYPE_BF16 */
    int samples;               /* sample texts printed at the end */
    int sample_chars;          /* characters per sample */
    float temperature;         /* sampling temperature */
    int quiet;                 /* 1: only errors and the final line */
    int progress;              /* -1: a progress bar when stdout is a TTY; 0: plain lines; 1: bar */
    char data_path[GPT_PATH_MAX];  /* corpus; "" = examples/data/persuasion.txt */
    char ckpt_dir[GPT_PATH_MAX];   /* checkpoint directory ("" = the resume dir or default) */
    char resume_dir[GPT_PATH_MAX]; /* "" = start from scratch */
    char json_path[GPT_PATH_MAX];  /* per-step metrics; "" off */
    char plot_path[GPT_PATH_MAX];  /* PNG loss curve (gnuplot); "" off */
    zoff_config zcfg;              /* the runtime configuration */
    int stream; /* 16-bit weights streamed block by block: 1 on, 0 off, -1 (default) when
                   zcfg.stream_params is set or params + gradients do not fit the device */
    /* command-line values known before the config file is read (0 / -1: not given): what a
     * DeepSpeed "auto" in the file resolves to, ahead of the file's own "train" section */
    int64_t cli_steps, cli_warmup;
    int cli_batch;
    double cli_lr;
    int cli_dtype; /* -1, ZOFF_DTYPE_F16 or ZOFF_DTYPE_BF16 */
} gpt_train_opts;

/* The min_lr in effect (o->min_lr, or a tenth of the peak lr when it is < 0). */
double gpt_train_min_lr(const gpt_train_opts *o);

/* The built-in demo configuration, as JSON text (examples/configs/demo.json is the same). */
extern const char gpt_demo_config_json[];

/* Fills o with the demo: the zoff part of gpt_demo_config_json through the runtime's parser and
 * its "model"/"train" sections. Returns 0, or GPT_EXIT_USAGE with a message in err. */
int gpt_train_defaults(gpt_train_opts *o, char *err, size_t errlen);

/* Reads a config: the zoff part with zoff_config_from_json[_string] (library defaults for what
 * it does not set) and the "model"/"train" sections over the demo's values. Unknown keys and
 * wrong types are errors naming the key. text != NULL parses that text (path only names it in
 * messages). Returns 0 or GPT_EXIT_USAGE / GPT_EXIT_FAIL (unreadable file) with err filled. */
int gpt_train_load_config(gpt_train_opts *o, const char *path, const char *text, char *err,
                          size_t errlen);

/* Checks consistency (ranges, dtype, until <= steps, ...). 0 or GPT_EXIT_USAGE with err. */
int gpt_train_check(const gpt_train_opts *o, char *err, size_t errlen);

/* Runs the training described by o. Prints progress to stdout, errors to stderr. Returns one of
 * the GPT_EXIT_* codes. Installs a SIGINT/SIGTERM handler for the duration of the run. */
int gpt_train_run(const gpt_train_opts *o);

/* The default corpus path: examples/data/persuasion.txt in the source tree this was built from
 * (or next to the current directory). Static storage. */
const char *gpt_default_data_path(void);

#endif /* ZOFF_GPT_TRAINER_H */
