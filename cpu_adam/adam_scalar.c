/*
 * adam_scalar.c — the scalar reference of the fused Adam/AdamW step and of the gradient sum of
 * squares: the readable definition that the AVX2 and AVX-512 variants reproduce bit for bit.
 * Owns the per-call scalar precomputation (in double) and the canonical summation order helpers.
 */
#include <math.h>

#include "cpu_adam/adam_internal.h"

void zadam__scalars_init(const zadam_hparams *hp, zadam__scalars *s)
{
    const double lr = hp->lr, wd = hp->weight_decay;
    const double b1 = hp->beta1, b2 = hp->beta2;
    double bc1 = 1.0, bc2 = 1.0;
    if (hp->bias_correction) {
        bc1 = 1.0 - pow(b1, (double)hp->step);
        bc2 = 1.0 - pow(b2, (double)hp->step);
    }
    s->grad_scale = hp->grad_scale;
    s->beta1 = hp->beta1;
    s->one_minus_beta1 = (float)(1.0 - b1);
    s->beta2 = hp->beta2;
    s->one_minus_beta2 = (float)(1.0 - b2);
    s->apply_l2 = !hp->adamw && hp->weight_decay != 0.0f;
    s->l2_wd = s->apply_l2 ? hp->weight_decay : 0.0f;
    s->apply_decay = hp->adamw && hp->weight_decay != 0.0f && hp->lr != 0.0f;
    s->decay = s->apply_decay ? (float)(1.0 - lr * wd) : 1.0f;
    const double ibc2 = 1.0 / sqrt(bc2);
    s->inv_sqrt_bc2 = (float)ibc2;
    s->eps = hp->eps;
    const double step = lr / bc1;
    s->step_size = (float)step;
    s->cq1 = (float)((1.0 - b1) * (double)hp->grad_scale);
    s->cq2 = (float)((1.0 - b2) * (double)hp->grad_scale * (double)hp->grad_scale);
    s->cq_da = step > 0.0 ? (float)(-ibc2 / step) : -0.0f;
    s->cq_db = step > 0.0 ? (float)(-(double)hp->eps / step) : -INFINITY;
    if (!isfinite(s->cq_da) || !isfinite(s->cq_db)) {
        s->cq_da = -0.0f;
        s->cq_db = -INFINITY;
    }
    s->nt_out = 0;
    s->optim = hp->optim;
    if (hp->optim == ZOPT_LION) {
        s->apply_l2 = 0;
        s->l2_wd = 0.0f;
        s->step_size = hp->lr;
        s->apply_decay = hp->weight_decay != 0.0f && hp->lr != 0.0f; /* always decoupled */
        s->decay = s->apply_decay ? (float)(1.0 - lr * wd) : 1.0f;
    } else if (hp->optim == ZOPT_ADAGRAD) {
        s->apply_l2 = hp->weight_decay != 0.0f;
        s->l2_wd = s->apply_l2 ? hp->weight_decay : 0.0f;
        s->apply_decay = 0;
        s->decay = 1.0f;
        s->step_size = (float)(lr / (1.0 + (double)(hp->step - 1) * (double)hp->lr_decay));
    }
}

size_t zadam__step_tail(const zadam__scalars *s, const zadam_tensor *t, size_t from)
{
    size_t nonfinite = 0;
    for (size_t i = from; i < t->n; i++) {
        float g = zadam__grad_at(t->grad, t->grad_dtype, i);
        nonfinite += (size_t)zadam__nonfinite(g);
        float p = zadam__elem(s, g, t->param[i], &t->exp_avg[i], &t->exp_avg_sq[i]);
        t->param[i] = p;
        if (t->param_out) zadam__out_at(t->param_out, t->out_dtype, i, p);
    }
    return nonfinite;
}

size_t zadam__step_scalar(const zadam__scalars *s, const zadam_tensor *t)
{
    return zadam__step_tail(s, t, 0);
}

size_t adam_step_scalar(const zadam_hparams *hp, const zadam_tensor *t)
{
    zadam__scalars s;
    zadam__scalars_init(hp, &s);
    return zadam__step_scalar(&s, t);
}

/* ---- sum of squares -------------------------------------------------------------------------- */

size_t zadam__sumsq_tail(const void *grad, zoff_dtype dt, size_t from, size_t n,
                         double lanes[ZADAM__SUMSQ_LANES])
{
    size_t nonfinite = 0;
    if (dt == ZOFF_DTYPE_F16) {
        /* from is a block boundary; a short last block sums only the elements it has */
        for (size_t b = from; b < n; b += ZADAM__SUMSQ_F16_BLOCK) {
            float part[ZADAM__SUMSQ_LANES] = {0};
            const size_t end = ZOFF_MIN(b + ZADAM__SUMSQ_F16_BLOCK, n);
            for (size_t k = b; k < end; k++) {
                const float x = zadam__grad_at(grad, dt, k);
                nonfinite += (size_t)zadam__nonfinite(x);
                part[k % ZADAM__SUMSQ_LANES] += x * x; /* the square is exact in fp32 */
            }
            for (int j = 0; j < ZADAM__SUMSQ_LANES; j++) lanes[j] += (double)part[j];
        }
        return nonfinite;
    }
    for (size_t k = from; k < n; k++) {
        double x = (double)zadam__grad_at(grad, dt, k);
        nonfinite += (size_t)zadam__nonfinite((float)x);
        lanes[k % ZADAM__SUMSQ_LANES] += x * x; /* the square is exact in double */
    }
    return nonfinite;
}

double zadam__sumsq_lanes(const double lanes[ZADAM__SUMSQ_LANES])
{
    double sum = lanes[0];
    for (int j = 1; j < ZADAM__SUMSQ_LANES; j++) sum += lanes[j];
    return sum;
}

double zadam__sumsq_chunk_scalar(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite)
{
    double lanes[ZADAM__SUMSQ_LANES] = {0};
    *nonfinite = zadam__sumsq_tail(grad, dt, 0, n, lanes);
    return zadam__sumsq_lanes(lanes);
}

double zadam__sumsq_serial(zadam__sumsq_chunk_fn chunk, const void *grad, zoff_dtype dt, size_t n,
                           size_t *nonfinite)
{
    const size_t esize = zoff_dtype_size(dt);
    double total = 0.0;
    size_t bad = 0;
    for (size_t off = 0; off < n; off += ZADAM_SUMSQ_CHUNK_NUMEL) {
        size_t len = ZOFF_MIN(ZADAM_SUMSQ_CHUNK_NUMEL, n - off);
        size_t chunk_bad = 0;
        total += chunk((const char *)grad + off * esize, dt, len, &chunk_bad);
        bad += chunk_bad;
    }
    if (nonfinite) *nonfinite = bad;
    return total;
}

double sumsq_scalar(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite)
{
    return zadam__sumsq_serial(zadam__sumsq_chunk_scalar, grad, dt, n, nonfinite);
}
