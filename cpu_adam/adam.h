/*
 * adam.h — the face of cpu_adam/: the fused CPU Adam/AdamW kernel and the fused gradient
 * sum-of-squares, in a scalar reference and AVX2 / AVX-512 variants chosen once from CPUID,
 * parallelised with OpenMP over cache-sized tiles.
 *
 * Only common/ is included. Callers: runtime/ (the step pipeline), bench/, tests/.
 *
 * Results do not depend on the ISA or the thread count: every variant performs the same fp32
 * operations per element as the scalar reference (bit-identical parameters, state and 16-bit
 * copies), and the sum of squares follows one canonical summation order (docs/cpu_adam.md).
 * The kernels assume the default MXCSR (no flush-to-zero / denormals-are-zero).
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
    ZADAM_ISA_AVX512 = 2, /* AVX-512F/BW/VL (+ AVX2/FMA/F16C); bf16 rounding is done with
                             integer ops: vcvtneps2bf16 flushes fp32 subnormals */
    ZADAM_ISA_COUNT_
} zadam_isa;

/* The optimizer of an update (zadam_hparams.optim). Lion keeps one moment (exp_avg), Adagrad one
 * accumulator (the exp_avg_sq slot holds torch's "sum"); Adam keeps both. */
typedef enum zopt_kind {
    ZOPT_ADAM = 0,    /* Adam / AdamW (adamw selects the weight decay) */
    ZOPT_LION = 1,    /* Chen et al. 2023: p -= lr * sign(b1*m + (1-b1)*g); m = b2*m + (1-b2)*g */
    ZOPT_ADAGRAD = 2, /* torch.optim.Adagrad: sum += g*g; p -= clr * g / (sqrt(sum) + eps) */
    ZOPT_KIND_COUNT_
} zopt_kind;

/* How the moments are stored (zadam_tensor.state_fmt). bf16: round to nearest even. q8: blocks of
 * ZSTATE_Q8_BLOCK values, one fp32 absmax per block and one byte per value: an 8-bit float (3
 * mantissa bits; signed with a 4-bit exponent for exp_avg, unsigned with a 5-bit exponent for
 * exp_avg_sq) relative to the power of two just above the absmax (docs/cpu_adam.md). */
typedef enum zstate_fmt {
    ZSTATE_FP32 = 0,
    ZSTATE_BF16 = 1,
    ZSTATE_Q8 = 2,
    ZSTATE_FMT_COUNT_
} zstate_fmt;
#define ZSTATE_Q8_BLOCK 256 /* values per q8 block (one fp32 absmax each) */

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
    /* Appended (zero: Adam as before). Lion uses lr, beta1, beta2, weight_decay (decoupled, like
     * AdamW). Adagrad uses lr, eps, weight_decay (L2, as torch), lr_decay and step. */
    int optim;      /* zopt_kind */
    float lr_decay; /* Adagrad: clr = lr / (1 + (step - 1) * lr_decay) */
} zadam_hparams;

/* One contiguous slice of a parameter's state. Shapes: n elements each.
 * Pointers need no particular alignment. param_out may be NULL (no 16-bit copy). */
typedef struct zadam_tensor {
    size_t n;
    const void *grad;      /* n elements of grad_dtype */
    zoff_dtype grad_dtype; /* F32, F16 or BF16 */
    float *param;          /* n fp32 master weights, updated in place */
    float *exp_avg;        /* n, updated in place */
    float *exp_avg_sq;     /* n, updated in place */
    void *param_out;       /* n elements of out_dtype, or NULL */
    zoff_dtype out_dtype;  /* F16, BF16 (or F32: plain copy) */
    /* Appended (zero: fp32 moments in exp_avg / exp_avg_sq as before). With state_fmt BF16 the
     * moments are m_state / v_state (n uint16_t each); with Q8 they are m_state / v_state (n
     * bytes each) plus m_absmax / v_absmax (ceil(n / ZSTATE_Q8_BLOCK) floats each; element 0 of
     * the tensor starts a block). Lion needs only the m side, Adagrad only the v side. */
    zstate_fmt state_fmt;
    void *m_state, *v_state;
    float *m_absmax, *v_absmax;
} zadam_tensor;

/* Single-threaded kernels over the whole tensor t (the context below adds threads). Call a
 * variant only where zadam_isa_supported() says it can run (else: illegal instruction).
 * Each returns the number of non-finite (inf/NaN) gradient elements seen (after scaling is not
 * considered: the raw gradient is checked). They update the state regardless; callers that need
 * skip-on-overflow check first (zadam_sumsq). Identical argument order in every variant. */
size_t adam_step_scalar(const zadam_hparams *hp, const zadam_tensor *t);
size_t adam_step_avx2(const zadam_hparams *hp, const zadam_tensor *t);
size_t adam_step_avx512(const zadam_hparams *hp, const zadam_tensor *t);

/* Sum of squares of n gradient elements (as fp32 values, accumulated in double; fp16: squares
 * first summed in fp32 in short fixed blocks: relative error below 7 * 2^-24 plus the double
 * summation's, see docs/cpu_adam.md), and the count of non-finite elements. Deterministic: the
 * result depends only on the data. (All three variants follow one canonical order and return the
 * same bits.) nonfinite may be NULL. Single-threaded; thread-safe on distinct or read-only data. */
double sumsq_scalar(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);
double sumsq_avx2(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);
double sumsq_avx512(const void *grad, zoff_dtype dt, size_t n, size_t *nonfinite);

/* The same step for any optimizer and state format (zadam_hparams.optim, zadam_tensor.state_fmt);
 * fp32 Adam goes to the adam_step_* kernels above. Bit-identical across variants. */
size_t zopt_step_scalar(const zadam_hparams *hp, const zadam_tensor *t);
size_t zopt_step_avx2(const zadam_hparams *hp, const zadam_tensor *t);
size_t zopt_step_avx512(const zadam_hparams *hp, const zadam_tensor *t);

/* ---- state formats ------------------------------------------------------------------------- */
const char *zstate_fmt_name(zstate_fmt f);
/* "fp32" / "bf16" / "q8" -> *out; ZOFF_EINVAL names the accepted spellings. */
zoff_status zstate_fmt_parse(const char *s, zstate_fmt *out);
const char *zopt_kind_name(zopt_kind k);
/* "adam" / "adamw" / "lion" / "adagrad" (any case) -> *out (adam and adamw both give ZOPT_ADAM). */
zoff_status zopt_kind_parse(const char *s, zopt_kind *out);
/* Moments an optimizer keeps: Adam 2, Lion 1 (m), Adagrad 1 (v). */
int zopt_has_m(zopt_kind k);
int zopt_has_v(zopt_kind k);

/* The one table of state bytes: bytes that `n` elements of optimizer state take (fp32 master +
 * the moments the optimizer keeps in format f, q8 absmax included, each array rounded up to 64
 * bytes so arrays stay aligned). The store, the pinned pool, the swap files and the planner all
 * size from this. zstate_elem_bytes is the per-element figure for reports (absmax amortised). */
size_t zstate_bytes(zopt_kind k, zstate_fmt f, size_t n);
double zstate_elem_bytes(zopt_kind k, zstate_fmt f);

/* Layout of the state of n elements in one buffer of zstate_bytes(k, f, n): master fp32 first,
 * then m (if kept), then v (if kept), then m absmax, v absmax (q8), each 64-byte aligned. Fills
 * t->param, exp_avg / exp_avg_sq (fp32) or m_state / v_state / *_absmax and state_fmt. */
void zstate_view(zopt_kind k, zstate_fmt f, void *base, size_t n, zadam_tensor *t);

/* Moves every pointer of t (a zstate_view) `off` elements on (off: a multiple of
 * ZSTATE_Q8_BLOCK for q8). */
void zstate_offset(zadam_tensor *t, size_t off);
/* Sets the moments of the n elements of t (a zstate_view at a block boundary) to their start
 * values: m = 0, v = v_init (Adagrad's initial_accumulator_value; 0 for Adam). */
void zstate_init_moments(zopt_kind k, const zadam_tensor *t, size_t n, float v_init);

/* Moment conversions between a format and fp32 (checkpoints, zoff_get_state / set_state).
 * Element 0 of the range starts a q8 block; n elements. which: 0 = m (signed map), 1 = v
 * (unsigned map). Quantizing a block with a non-finite value stores absmax NaN and zero codes
 * (every element then decodes to NaN). */
void zstate_decode(zstate_fmt f, int which, const void *state, const float *absmax, size_t n,
                   float *out);
void zstate_encode(zstate_fmt f, int which, const float *in, size_t n, void *state, float *absmax);
/* The q8 code maps: each code's value relative to the block scale S = 2^(floor(log2 absmax) + 1),
 * 256 values increasing with the code (signed: sign bit 7, magnitude code in bits 0-6; 0x00 and
 * 0x80 are +0); the encoder produces magnitudes up to 1.0. */
const float *zq8_map(int which);

/* 1 if this CPU (and build) can run `isa`. */
int zadam_isa_supported(zadam_isa isa);
const char *zadam_isa_name(zadam_isa isa);
/* Parses "scalar" / "avx2" / "avx512"; returns ZOFF_EINVAL for other strings. */
zoff_status zadam_isa_parse(const char *s, zadam_isa *out);
/* The best ISA this CPU supports. */
zadam_isa zadam_isa_best(void);

/* Tile and chunk sizes. The tile decomposition is a fixed function of n (tile boundaries at
 * multiples of tile_numel, itself a multiple of 64), so threads only choose which tiles they run.
 */
#define ZADAM_DEFAULT_TILE_NUMEL ((size_t)16384)
/* Most threads an Adam pool runs: more only fail to start (OpenMP crashes creating 100000
 * threads); a request above it (config, ZOFF_CPU_THREADS, OMP_NUM_THREADS) is clamped, warned. */
#define ZADAM_MAX_THREADS       1024
#define ZADAM_SUMSQ_CHUNK_NUMEL ((size_t)16384)
/* nt_out auto: non-temporal stores for the output copy from this many elements on. */
#define ZADAM_NT_MIN_NUMEL ((size_t)1 << 22)

/* Checks hyperparameters the way torch.optim.Adam/AdamW do (lr >= 0, eps >= 0, 0 <= beta < 1,
 * weight_decay >= 0, step >= 1 when bias_correction, all finite). Returns 0 or ZOFF_EINVAL with
 * a message naming the field. The adam_step_* kernels assume checked hyperparameters. */
zoff_status zadam_hparams_check(const zadam_hparams *hp);

/* A context: the chosen ISA and thread count. Create once per runtime. */
typedef struct zadam_ctx zadam_ctx;

typedef struct zadam_config {
    const char *isa;   /* NULL or "": ZOFF_CPU_ISA, else the best; a name the CPU lacks: error */
    int threads;       /* 0: ZOFF_CPU_THREADS, else omp_get_max_threads() */
    size_t tile_numel; /* elements per OpenMP work item (0: default, cache-sized) */
    const int *cpus;   /* optional CPU list the threads are bound to (NUMA node cores) */
    int ncpus;
    int nt_out; /* 16-bit copy written with non-temporal stores (when its address is
                   aligned): 0 auto (tensors of >= ZADAM_NT_MIN_NUMEL elements),
                   1 always, -1 never. Results are the same bits either way. */
} zadam_config;

/* Returns ZOFF_EUNSUPPORTED (with a message naming the ISA and the CPU flags missing) when the
 * requested ISA cannot run here; ZOFF_EINVAL for an unknown name, a tile_numel that is not a
 * multiple of 64, or a bad CPU list; -ENOMEM. cfg may be NULL (all defaults). isa also accepts
 * "auto". On success *out owns a context the caller frees with zadam_destroy (NULL is fine).
 * With cpus, each OpenMP worker thread t >= 1 binds itself to cpus[t % ncpus] the first time it
 * runs for this context (pthread_setaffinity_np); the calling thread (thread 0) is left alone:
 * bind it with zadam_bind_caller if wanted.
 * Thread-safety: a context is used by one thread at a time. */
zoff_status zadam_create(const zadam_config *cfg, zadam_ctx **out);
void zadam_destroy(zadam_ctx *ctx);
zadam_isa zadam_ctx_isa(const zadam_ctx *ctx);
int zadam_ctx_threads(const zadam_ctx *ctx);
size_t zadam_ctx_tile_numel(const zadam_ctx *ctx);
/* Binds the calling thread to cpus[0] of the context's CPU list (no-op without one).
 * Returns 0 or -errno from pthread_setaffinity_np. */
zoff_status zadam_bind_caller(const zadam_ctx *ctx);

/* Fused update of t with ctx's ISA and threads. Bit-identical results for any thread count.
 * *nonfinite (may be NULL) receives the number of non-finite gradient elements.
 * Returns 0, or ZOFF_EINVAL (bad hyperparameters, NULL pointers with n > 0, bad dtypes). */
zoff_status zadam_step(zadam_ctx *ctx, const zadam_hparams *hp, const zadam_tensor *t,
                       size_t *nonfinite);
/* The tile the context uses for format f: tile_numel rounded up to a multiple of
 * ZSTATE_Q8_BLOCK for q8 (tiles start on block boundaries). */
size_t zadam_ctx_tile_for(const zadam_ctx *ctx, zstate_fmt f);

/* Deterministic (any thread count) sum of squares: fixed-size chunks, partials added in order;
 * the same bits as sumsq_<isa>. *sumsq must not be NULL; nonfinite may be. Returns 0 or
 * ZOFF_EINVAL. */
zoff_status zadam_sumsq(zadam_ctx *ctx, const void *grad, zoff_dtype dt, size_t n, double *sumsq,
                        size_t *nonfinite);

/* Gradient accumulation (cpu_adam/accum.c): acc[i] = g[i] (first) or acc[i] += g[i], g of dtype
 * dt converted exactly to fp32, one fp32 add per element (bit-identical in every variant).
 * Returns nothing; the caller checks the sums for non-finite values (inf/NaN survive the adds). */
void accum_scalar(float *acc, const void *g, zoff_dtype dt, size_t n, int first);
void accum_avx2(float *acc, const void *g, zoff_dtype dt, size_t n, int first);
/* The variant of `isa` (AVX-512 uses the AVX2 one: the loop is memory-bound). */
void zadam_accum(zadam_isa isa, float *acc, const void *g, zoff_dtype dt, size_t n, int first);

/* Bytes one element moves in zadam_step: grad in + 3 fp32 read + 3 fp32 written + param_out.
 * (fp16 grad + fp16 out: 2 + 12 + 12 + 2 = 28.) */
size_t zadam_bytes_per_elem(zoff_dtype grad_dtype, int has_out, zoff_dtype out_dtype);
/* The same for any optimizer and state format (q8 absmax amortised: 2 x 4 / 256 B per moment,
 * read and written): the byte stream the kernel's roofline is measured against. */
double zopt_bytes_per_elem(zopt_kind k, zstate_fmt f, zoff_dtype grad_dtype, int has_out,
                           zoff_dtype out_dtype);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_CPU_ADAM_H */
