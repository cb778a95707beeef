/*
 * step_loop.c — a complete C trainer loop on zoff, runnable anywhere (the sim device stands in
 * for the GPU): the trainer owns its 16-bit parameters and gradients in device memory, hands
 * each gradient to zoff when it is final, calls zoff_step, waits for the new parameters, and
 * checkpoints. The "model" is a least-squares fit (loss = 0.5 |w - target|^2 per parameter, so
 * the gradient is w - target): small enough to read, real enough to see the loss fall.
 *
 * Build against an installed zoff (docs: README "Install"):
 *   cc step_loop.c $(pkg-config --cflags --libs zoff) -o step_loop
 * or with CMake: find_package(zoff) + target_link_libraries(... zoff::zoff).
 * Usage: step_loop [STEPS] [CHECKPOINT_DIR]   (exit 0 when the loss fell and the checkpoint
 * reloaded bit-identically)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zoff.h>

#define NPARAMS 2

/* bf16 <-> float (round to nearest even), the trainer's own conversions. */
static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        zoff_status st_ = (call);                                                                  \
        if (st_ != ZOFF_OK) {                                                                      \
            fprintf(stderr, "%s failed: %s: %s\n", #call, zoff_status_name(st_),                   \
                    zoff_last_error(rt));                                                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

typedef struct param {
    const char *name;
    size_t numel;
    void *dev_w, *dev_g; /* device memory: bf16 weights and gradients */
    float *init, *target;
    uint16_t *host16; /* host staging of 16-bit values */
    int id;
} param;

static double loss_and_grad(zoff_runtime *rt, zoff_stream s, param *p, int upload_grad)
{
    double loss = 0;
    if (zoff_device_download(rt, p->host16, p->dev_w, p->numel * 2, s) != ZOFF_OK) return NAN;
    for (size_t i = 0; i < p->numel; i++) {
        float w = bf16_to_f32(p->host16[i]), d = w - p->target[i];
        loss += 0.5 * (double)d * (double)d;
        p->host16[i] = f32_to_bf16(d); /* the gradient, in the params' 16-bit format */
    }
    if (upload_grad && zoff_device_upload(rt, p->dev_g, p->host16, p->numel * 2, s) != ZOFF_OK)
        return NAN;
    return loss;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 50;
    const char *ckpt = argc > 2 ? argv[2] : "step_loop_ckpt";
    zoff_runtime *rt = NULL;

    /* 1. configuration: bf16 parameters, optimizer state in pinned host memory, sim device */
    zoff_config cfg;
    CHECK(zoff_config_default(&cfg));
    cfg.bf16_enabled = 1;
    cfg.device = ZOFF_DEVICE_SIM;
    cfg.sim_gpu_bytes = 64u << 20;
    cfg.optimizer.lr = 0.05f;
    cfg.optimizer.weight_decay = 0.0f;
    CHECK(zoff_create(&cfg, &rt));

    /* 2. the trainer's stream and device buffers; parameters registered with their initial
     *    fp32 values (zoff_finalize writes their bf16 copy into dev_w) */
    zoff_stream s;
    CHECK(zoff_stream_create(rt, &s));
    param ps[NPARAMS] = {{.name = "layer.weight", .numel = 4096},
                         {.name = "layer.bias", .numel = 64}};
    for (int k = 0; k < NPARAMS; k++) {
        param *p = &ps[k];
        p->init = malloc(p->numel * sizeof(float));
        p->target = malloc(p->numel * sizeof(float));
        p->host16 = malloc(p->numel * sizeof(uint16_t));
        if (!p->init || !p->target || !p->host16) return 1;
        for (size_t i = 0; i < p->numel; i++) {
            p->init[i] = (float)sin((double)(i + 1) * (k + 1));
            p->target[i] = (float)cos((double)i * 0.01);
        }
        CHECK(zoff_device_alloc(rt, p->numel * 2, &p->dev_w));
        CHECK(zoff_device_alloc(rt, p->numel * 2, &p->dev_g));
        CHECK(zoff_add_param(rt, p->name, p->numel, ZOFF_DTYPE_BF16, p->dev_w, p->dev_g, p->init, 0,
                             &p->id));
    }
    CHECK(zoff_finalize(rt));

    /* 3. the step loop: "backward" writes each gradient into dev_g on stream s and hands it to
     *    zoff as soon as it is final; zoff_step updates; the stream waits for the new params */
    double first = 0, last = 0;
    for (int t = 0; t < steps; t++) {
        double loss = 0;
        for (int k = NPARAMS - 1; k >= 0; k--) { /* backward runs last layer first */
            loss += loss_and_grad(rt, s, &ps[k], 1);
            CHECK(zoff_grad_ready(rt, ps[k].id, s));
        }
        zoff_step_result r = ZOFF_STEP_RESULT_INIT;
        CHECK(zoff_step(rt, NULL, &r));
        CHECK(zoff_params_ready(rt, s));
        if (t == 0) first = loss;
        last = loss;
        if (t % 10 == 0 || t == steps - 1)
            printf("step %3d  loss %10.4f  grad norm %8.4f\n", t + 1, loss, r.grad_norm);
    }

    /* 4. checkpoint, keep training one step, reload: the weights return bit-identically */
    CHECK(zoff_save(rt, ckpt));
    float *saved = malloc(ps[0].numel * sizeof(float)), *now = malloc(ps[0].numel * sizeof(float));
    if (!saved || !now) return 1;
    CHECK(zoff_get_master(rt, ps[0].id, saved));
    for (int k = 0; k < NPARAMS; k++) {
        loss_and_grad(rt, s, &ps[k], 1);
        CHECK(zoff_grad_ready(rt, ps[k].id, s));
    }
    CHECK(zoff_step(rt, NULL, NULL));
    CHECK(zoff_load(rt, ckpt));
    CHECK(zoff_get_master(rt, ps[0].id, now));
    int same = memcmp(saved, now, ps[0].numel * sizeof(float)) == 0;

    zoff_stats st = ZOFF_STATS_INIT;
    CHECK(zoff_get_stats(rt, &st));
    printf("loss %.4f -> %.4f over %d steps; checkpoint %s reloaded %s; %llu bytes down, %llu up; "
           "Adam kernel %s\n",
           first, last, steps, ckpt, same ? "bit-identically" : "DIFFERENTLY",
           (unsigned long long)st.total_d2h_bytes, (unsigned long long)st.total_h2d_bytes,
           st.cpu_isa);

    for (int k = 0; k < NPARAMS; k++) {
        zoff_device_free(rt, ps[k].dev_w);
        zoff_device_free(rt, ps[k].dev_g);
        free(ps[k].init);
        free(ps[k].target);
        free(ps[k].host16);
    }
    free(saved);
    free(now);
    zoff_stream_destroy(rt, s);
    zoff_destroy(rt);
    return same && last < first * 0.5 ? 0 : 1;
}
