/*
 * adam.h — the face of cpu_adam/: the fused CPU Adam/AdamW kernel and the fused gradient
 * sum-of-squares, in a scalar reference and AVX2 / AVX-512 variants chosen once from CPUID,
 * parallelised with OpenMP over cache-sized tiles.
 *
 * Only common/ is included. Callers: runtime/ (the step pipeline), bench/, tests/.
 */
#ifndef ZOFF_CPU_ADAM_H
#define ZOFF_CPU_ADAM_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum zadam_isa {
    ZADAM_ISA_SCALAR = 0,
    ZADAM_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    ZADAM_ISA_AVX512 = 2, /* AVX-512F/BW/VL (+ AVX512-BF16 used when present) */
    ZADAM_ISA_COUNT_
} zadam_isa;

/* Hyperparameters of one update (one parameter group at one step). */
typedef struct zadam_hparams {
    float lr;
    float beta1, beta2;
    float eps;
    float weight_decay;
    int adamw;           /* 1: decoupled decay p -= lr*wd*p; 0: L2, g += wd*p */
    int bias_correction; /* 1: divide m, v by (1 - beta^step) */
    int64_t step;        /* the step number of this update, >= 1 */
    float grad_scale;    /* gradients are multiplied by this first (1/loss_scale * clip_coef) */
} zadam_hparams;

/* One contiguous slice of a parameter's state. Shapes: n elements each.
 * Pointers need no particular alignment. param_out may be NULL (no 16-bit copy). */
typedef struct zadam_tensor {
    size_t n;
    const void *grad;       /* n elements of grad_dtype */
    zoff_dtype grad_dtype;  /* F32, F16 or BF16 */
    float *param;           /* n fp32 master weights, updated in place */
    float *exp_avg;         /* n, updated in place */
    float *exp_avg_sq;      /* n, updated in place */
    void *param_out;        /* n elements of out_dtype, or NULL */
    zoff_dtype out_dtype;   /* F16, BF16 (or F32: plain copy) */
} zadam_tensor;

/* Single-threaded kernels over the whole tensor t (the context below adds threads).
 * Each returns the number of non-finite (inf/NaN) gradient elements seen (after scaling is not
 * considered: the raw gradient is checked). They update the state regardless; callers that need
 * skip-on-overflow check first (zadam_sumsq). Identical argument order in every variant. */
size_t adam_step_scalar(const zadam_hparams *hp, const zadam_tensor *t);
size_t adam_step_avx2(const zadam_hparams *hp, const zadam_tensor *t);
size_t adam_step_avx512(const zadam_hparams *hp, const zadam_tensor *t);

/* Sum of squares of n gradient elements (as fp32 values, accumulated in double), and the count
 * of non-finite elements. Deterministic: the result depends only on the data and the ISA. */
double sumsq_scalar(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);
double sumsq_avx2(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);
double sumsq_avx512(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);

/* 1 if this CPU (and build) can run `isa`. */
int zadam_isa_supported(zadam_isa isa);
const char *zadam_isa_name(zadam_isa isa);
/* Parses "scalar" / "avx2" / "avx512"; returns ZOFF_EINVAL for other strings. */
zoff_status zadam_isa_parse(const char *s, zadam_isa *out);
/* The best ISA this CPU supports. */
zadam_isa zadam_isa_best(void);

/* A context: the chosen ISA and thread count. Create once per runtime. */
typedef struct zadam_ctx zadam_ctx;

typedef struct zadam_config {
    const char *isa;   /* NULL or "": ZOFF_CPU_ISA, else the best; a name the CPU lacks: error */
    int threads;       /* 0: ZOFF_CPU_THREADS, else omp_get_max_threads() */
    size_t tile_numel; /* elements per OpenMP work item (0: default, cache-sized) */
    const int *cpus;   /* optional CPU list the threads are bound to (NUMA node cores) */
    int ncpus;
} zadam_config;

/* Returns ZOFF_EUNSUPPORTED (with a message naming the ISA and the CPU flags missing) when the
 * requested ISA cannot run here; ZOFF_EINVAL for an unknown name. */
zoff_status zadam_create(const zadam_config *cfg, zadam_ctx **out);
void zadam_destroy(zadam_ctx *ctx);
zadam_isa zadam_ctx_isa(const zadam_ctx *ctx);
int zadam_ctx_threads(const zadam_ctx *ctx);

/* Fused update of t with ctx's ISA and threads. Bit-identical results for any thread count.
 * *nonfinite (may be NULL) receives the number of non-finite gradient elements. */
zoff_status zadam_step(zadam_ctx *ctx, const zadam_hparams *hp, const zadam_tensor *t,
                       size_t *nonfinite);

/* Deterministic (any thread count) sum of squares: fixed-size chunks, partials added in order. */
zoff_status zadam_sumsq(zadam_ctx *ctx, const void *grad, zoff_dtype dt, size_t n, double *sumsq,
                        size_t *nonfinite);

/* Bytes one element moves in zadam_step: grad in + 3 fp32 read + 3 fp32 written + param_out.
 * (fp16 grad + fp16 out: 2 + 12 + 12 + 2 = 28.) */
size_t zadam_bytes_per_elem(zoff_dtype grad_dtype, int has_out, zoff_dtype out_dtype);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_CPU_ADAM_H */
