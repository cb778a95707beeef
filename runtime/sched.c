/*
 * sched.c — the learning-rate schedules of DeepSpeed's `scheduler` section (WarmupLR,
 * WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest), written from the formulas documented in
 * docs/config.md, and the name of the optimizer a group runs. Pure functions: thread-safe.
 *
 * Step indexing follows DeepSpeed's engine: the scheduler is built with last_batch_iteration -1
 * (which sets the lr of the first update) and is stepped after every applied update (skipped
 * fp16-overflow steps do not step it). So update number k (1-based) runs with the schedule's
 * value at iteration i = k - 2 (i = -1 for the first update).
 */
#include <math.h>

#include "runtime/config.h"

/* WarmupLR / WarmupDecayLR warm-up fraction at iteration i >= 0 (DeepSpeed: warmup steps are
 * max(2, warmup_num_steps)). */
static double warmup_gamma(const zoff_scheduler_config *s, int64_t i, int64_t wn)
{
    if (s->warmup_linear) return (double)i / (double)wn;
    return log((double)(i + 1)) / log((double)wn);
}

/* OneCycle: position in the cycle, 0 at the bottom, 1 at the peak. */
static double cycle_scale(const zoff_scheduler_config *s, int64_t i)
{
    double first = (double)s->cycle_first_step_size;
    double second = s->cycle_second_step_size >= 0 ? (double)s->cycle_second_step_size : first;
    double total = first + second, ratio = first / total;
    double it = (double)(i + 1);
    double cycle = floor(1.0 + it / total);
    double x = 1.0 + it / total - cycle;
    double scale;
    int64_t stairs;
    if (x <= ratio) {
        scale = x / ratio;
        stairs = s->cycle_first_stair_count;
    } else {
        scale = (x - 1.0) / (ratio - 1.0);
        stairs = s->cycle_second_stair_count >= 0 ? s->cycle_second_stair_count
                                                  : s->cycle_first_stair_count;
    }
    if (stairs > 0) { /* flat stairs, quantised from the integer position in the cycle */
        double ci = fmod(it, total), pos;
        if (ci <= first)
            pos = ci * (double)stairs / first;
        else
            pos = (total - ci) * (double)stairs / second;
        scale = floor(pos) / (double)stairs;
    }
    return scale;
}

ZOFF_API zoff_status zoff_scheduler_lr(const zoff_scheduler_config *s, double group_lr,
                                       int64_t step, double *lr, double *beta1, double *beta2)
{
    if (!s || !lr || step < 1)
        return zoff__err(ZOFF_EINVAL, "zoff_scheduler_lr: NULL schedule/lr or step %lld < 1",
                         (long long)step);
    int64_t i = step - 2; /* DeepSpeed's last_batch_iteration when update `step` runs */
    int64_t wn = s->warmup_num_steps < 2 ? 2 : s->warmup_num_steps;
    double max_lr = isnan(s->warmup_max_lr) ? group_lr : s->warmup_max_lr;
    switch (s->type) {
    case ZOFF_SCHED_NONE:
        *lr = group_lr;
        return ZOFF_OK;
    case ZOFF_SCHED_WARMUP_LR:
    case ZOFF_SCHED_WARMUP_DECAY_LR: {
        double gamma;
        if (i < 0)
            gamma = 0.0;
        else if (i < wn)
            gamma = warmup_gamma(s, i, wn);
        else if (s->type == ZOFF_SCHED_WARMUP_LR)
            gamma = 1.0;
        else
            gamma = fmax(0.0, (double)(s->total_num_steps - i) /
                                  fmax(1.0, (double)(s->total_num_steps - wn)));
        *lr = s->warmup_min_lr + (max_lr - s->warmup_min_lr) * gamma;
        return ZOFF_OK;
    }
    case ZOFF_SCHED_WARMUP_COSINE_LR: {
        double ratio;
        if (i < 0) {
            ratio = 0.0;
        } else if (i < wn) {
            ratio = s->warmup_min_ratio + warmup_gamma(s, i, wn) * (1.0 - s->warmup_min_ratio);
        } else {
            double done = (double)(i - wn + 1);
            double span = fmax(1.0, (double)(s->total_num_steps - wn));
            double progress = fmin(1.0, done / span);
            ratio = fmax(0.0, s->cos_min_ratio +
                                  (1.0 - s->cos_min_ratio) * (1.0 + cos(M_PI * progress)) / 2.0);
        }
        *lr = group_lr * ratio;
        return ZOFF_OK;
    }
    case ZOFF_SCHED_ONE_CYCLE: {
        double first = (double)s->cycle_first_step_size;
        double second = s->cycle_second_step_size >= 0 ? (double)s->cycle_second_step_size : first;
        double total = first + second;
        int decay_lr = s->decay_step_size != 0 && s->decay_lr_rate != 0.0;
        int decay_mom = s->decay_step_size != 0 && s->decay_mom_rate != 0.0;
        double mom;
        if (i < 0) { /* the constructor sets the minimum lr and momentum */
            *lr = s->cycle_min_lr;
            mom = s->cycle_min_mom;
        } else if ((double)i < total) {
            double sc = cycle_scale(s, i);
            *lr = s->cycle_min_lr + (s->cycle_max_lr - s->cycle_min_lr) * sc;
            mom = s->cycle_max_mom - (s->cycle_max_mom - s->cycle_min_mom) * sc;
        } else {
            double di = (double)i - total + 1.0;
            *lr = decay_lr
                      ? s->cycle_min_lr / (1.0 + s->decay_lr_rate * di / (double)s->decay_step_size)
                      : s->cycle_min_lr;
            mom = decay_mom ? s->cycle_max_mom *
                                  (1.0 + s->decay_mom_rate * di / (double)s->decay_step_size)
                            : s->cycle_max_mom;
        }
        if (s->cycle_momentum) {
            if (beta1) *beta1 = mom;
            if (beta2) *beta2 = 0.99; /* DeepSpeed pairs the cycled momentum with 0.99 */
        }
        return ZOFF_OK;
    }
    case ZOFF_SCHED_LR_RANGE_TEST: {
        double it = (double)(i + 1) / (double)s->lr_range_test_step_size;
        if (s->lr_range_test_staircase) it = floor(it);
        *lr = s->lr_range_test_min_lr * (1.0 + s->lr_range_test_step_rate * it);
        return ZOFF_OK;
    }
    }
    return zoff__err(ZOFF_EINVAL, "zoff_scheduler_lr: unknown schedule %d", (int)s->type);
}

ZOFF_API const char *zoff_optimizer_name(const zoff_group_config *g)
{
    if (!g) return "?";
    return g->adamw_mode ? "AdamW" : "Adam (L2 weight decay)";
}
