/*
 * scaler.c — the fp16 loss scaler with DeepSpeed's DynamicLossScaler semantics
 * (consecutive_hysteresis off, scale factor 2):
 *  - any overflow skips the step;
 *  - on overflow, while hysteresis > 1 it is decremented and the scale kept; when it is 1 the
 *    scale is halved (not below min_loss_scale);
 *  - after `window` consecutive clean steps (counted since the last overflow) the scale doubles
 *    (but stays at 2^127 once there: the scale is an fp32) and the hysteresis is restored.
 * A static scale (loss_scale > 0) and the no-fp16 case (scale 1) never change; an overflow there
 * still skips the step. Divergence: `min_scale_overflow_limit` consecutive overflows with the
 * scale already at its minimum (DeepSpeed raises at the minimum too). Owns nothing but the
 * zrt_scaler struct.
 */
#include <math.h>

#include "runtime/rt.h"

void zrt_scaler_init(zrt_scaler *s, const zoff_config *cfg)
{
    s->dynamic = cfg->fp16_enabled && !(cfg->loss_scale > 0.0f);
    if (!cfg->fp16_enabled)
        s->scale = 1.0f;
    else if (!s->dynamic)
        s->scale = cfg->loss_scale;
    else
        s->scale = ldexpf(1.0f, cfg->initial_scale_power);
    s->min_scale = cfg->min_loss_scale > 0.0f ? cfg->min_loss_scale : 1.0f;
    s->window = cfg->loss_scale_window > 0 ? cfg->loss_scale_window : 1000;
    s->hysteresis_cfg = cfg->hysteresis > 0 ? cfg->hysteresis : 1;
    s->hysteresis = s->hysteresis_cfg;
    s->good_steps = 0;
    s->at_min_limit = cfg->min_scale_overflow_limit;
    s->at_min = 0;
}

int zrt_scaler_diverged(const zrt_scaler *s)
{
    return s->dynamic && s->at_min_limit > 0 && s->at_min >= s->at_min_limit;
}

int zrt_scaler_update(zrt_scaler *s, int overflow)
{
    if (!s->dynamic) return overflow ? 1 : 0;
    if (overflow) {
        if (s->scale <= s->min_scale)
            s->at_min++;
        else
            s->at_min = 0;
        if (s->hysteresis_cfg == 1 || s->hysteresis == 1) {
            float lowered = s->scale / 2.0f;
            s->scale = lowered > s->min_scale ? lowered : s->min_scale;
        } else {
            s->hysteresis--;
        }
        s->good_steps = 0;
        return 1;
    }
    s->at_min = 0;
    s->good_steps++;
    if (s->good_steps % s->window == 0) {
        s->hysteresis = s->hysteresis_cfg;
        if (s->scale <= 0x1p126f) s->scale *= 2.0f; /* 2^127 is the largest fp32 power of two */
        s->good_steps = 0;
    }
    return 0;
}
