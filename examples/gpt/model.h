/*
 * model.h — a small GPT-style character-level language model computed on the CPU: token and
 * position embeddings, L pre-LN transformer blocks (layernorm, causal multi-head self-attention,
 * layernorm, MLP with tanh-GELU), a final layernorm and a tied or untied output head with a
 * softmax cross-entropy loss. Forward and backward in fp32 (OpenMP over the matmuls); the same
 * source is also instantiated in fp64 (model_impl.h) as the reference of the gradient check.
 *
 * It owns: the parameter layout (which tensors, their names, shapes, offsets and the backward
 * stage after which each gradient is final), the activation buffers, parameter initialisation,
 * forward, backward with per-stage callbacks, KV-cached sampling, and the fp16/bf16 element
 * conversions the trainer uses. It knows nothing of zoff: parameters and gradients are plain
 * arrays the caller provides.
 *
 * Layouts (row-major): activations are (B, T, C) = (batch, time, channels); a linear layer's
 * weight is stored (in, out) so that y = x @ W + b; wte is (V, C), wpe is (maxT, C), an untied
 * head is (C, V).
 *
 * Thread safety: a gpt_model is used by one thread at a time (it parallelises internally with
 * OpenMP). Results do not depend on the number of OpenMP threads.
 */
#ifndef ZOFF_GPT_MODEL_H
#define ZOFF_GPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Vocabulary of the built-in byte tokenizer (data.h). */
#define GPT_VOCAB 96

typedef struct gpt_config {
    int vocab;   /* V: vocabulary size (GPT_VOCAB for the built-in tokenizer) */
    int max_seq; /* maxT: longest sequence (rows of wpe) */
    int layers;  /* L: transformer blocks */
    int heads;   /* NH: attention heads; width % heads == 0 */
    int width;   /* C: channels */
    int tied;    /* 1: the output head is wte^T; 0: a separate (C, V) head */
} gpt_config;

/* Tensors of one block, in layout order. */
enum {
    GPT_LN1_W,
    GPT_LN1_B,
    GPT_QKV_W,  /* (C, 3C) */
    GPT_QKV_B,  /* (3C) */
    GPT_PROJ_W, /* (C, C) */
    GPT_PROJ_B,
    GPT_LN2_W,
    GPT_LN2_B,
    GPT_FC_W,     /* (C, 4C) */
    GPT_FC_B,     /* (4C) */
    GPT_FCPROJ_W, /* (4C, C) */
    GPT_FCPROJ_B,
    GPT_BLOCK_TENSORS
};

#define GPT_NAME_MAX 40
/* Elements between tensor offsets are padded to a multiple of this (128 bytes of fp16). */
#define GPT_ALIGN_NUMEL 64

typedef struct gpt_tensor {
    char name[GPT_NAME_MAX]; /* "wte", "h.3.attn.qkv.w", ... (checkpoint key) */
    size_t numel;            /* elements */
    size_t offset;           /* elements from the start of the flat parameter array */
    int rows, cols;          /* shape (rows = 1 for vectors) */
    int decay;               /* 1: weight decay applies (matrices and embeddings) */
    int stage;               /* backward stage after which its gradient is final */
} gpt_tensor;

/* The parameter layout of a config. Backward stages: 0 = output head + final layernorm,
 * 1..L = blocks L-1..0, L+1 = embeddings (with a tied head, wte is final only at L+1). */
typedef struct gpt_layout {
    int ntensors;
    gpt_tensor *tensors; /* ntensors entries (owned) */
    size_t total_numel;  /* padded size of the flat parameter/gradient arrays (elements) */
    size_t param_count;  /* sum of numel (the model's parameter count) */
    int nstages;         /* L + 2 */
} gpt_layout;

/* Checks a config; on error writes a message naming the field into err and returns -EINVAL. */
int gpt_config_check(const gpt_config *cfg, char *err, size_t errlen);
/* Builds the layout of cfg (config must pass gpt_config_check). Returns 0 or -ENOMEM. */
int gpt_layout_init(gpt_layout *lay, const gpt_config *cfg);
void gpt_layout_free(gpt_layout *lay);

/* GPT-2 style initialisation of a flat fp32 array (lay->total_numel elements, padding zeroed):
 * matrices and embeddings N(0, 0.02), the two residual projections N(0, 0.02/sqrt(2L)),
 * layernorm weights 1, biases 0. Deterministic for a given seed. */
void gpt_init_params(const gpt_layout *lay, const gpt_config *cfg, float *params, uint64_t seed);

/* Called by gpt_backward when the gradients of `stage` are final (and in the grad array). */
typedef int (*gpt_stage_fn)(int stage, void *user);

/* fp32 model state: activations for up to max_batch x max_seq tokens. */
typedef struct gpt_model gpt_model;

/* Allocates activations for batches of up to max_batch sequences of cfg->max_seq tokens.
 * Returns 0, -EINVAL or -ENOMEM. */
int gpt_model_create(const gpt_config *cfg, int max_batch, gpt_model **out);
void gpt_model_destroy(gpt_model *m);
/* Bytes of activation and scratch memory the model holds. */
size_t gpt_model_activation_bytes(const gpt_model *m);

/* Forward over tokens (B, T) (T <= max_seq, B <= max_batch). With targets (B, T) it computes the
 * mean cross-entropy into *loss (and keeps what backward needs); targets may be NULL (logits
 * only). Returns 0 or -EINVAL (shape or token out of range). */
int gpt_forward(gpt_model *m, const float *params, const int32_t *tokens, const int32_t *targets,
                int B, int T, float *loss);
/* Logits (B, T, V) of the last forward (valid until the next forward/backward). */
const float *gpt_logits(const gpt_model *m);
/* Backward of the last forward with targets: adds d(loss * dloss)/d(params) into grads (the
 * caller zeroes it first). `dloss` is the loss scale (1 for none). on_stage (may be NULL) is
 * called after each stage with its gradients final; a negative return aborts and is returned.
 * Returns 0, -EINVAL if no forward with targets preceded, or the callback's error. */
int gpt_backward(gpt_model *m, const float *params, float *grads, float dloss,
                 gpt_stage_fn on_stage, void *user);

/* fp64 instantiation of the same code (reference for tests): activations for one shape. */
typedef struct gpt_model_f64 gpt_model_f64;
int gpt_model_create_f64(const gpt_config *cfg, int max_batch, gpt_model_f64 **out);
void gpt_model_destroy_f64(gpt_model_f64 *m);
int gpt_forward_f64(gpt_model_f64 *m, const double *params, const int32_t *tokens,
                    const int32_t *targets, int B, int T, double *loss);
int gpt_backward_f64(gpt_model_f64 *m, const double *params, double *grads, double dloss,
                     gpt_stage_fn on_stage, void *user);

/* ---- sampling (KV cache) ------------------------------------------------------------------ */
typedef struct gpt_sampler gpt_sampler;
int gpt_sampler_create(const gpt_config *cfg, gpt_sampler **out);
void gpt_sampler_destroy(gpt_sampler *s);
/* Clears the cache (start of a new sequence). */
void gpt_sampler_reset(gpt_sampler *s);
/* Feeds the next token at position gpt_sampler_pos() and returns its V logits (owned by s,
 * valid until the next call). Returns NULL when the sequence is already max_seq long. */
const float *gpt_sampler_feed(gpt_sampler *s, const float *params, int32_t token);
int gpt_sampler_pos(const gpt_sampler *s);
/* Draws a token from softmax(logits / temperature) with u uniform in [0, 1). */
int32_t gpt_sample_token(const float *logits, int V, float temperature, double u);

/* ---- 16-bit element conversions (round to nearest even; exact widening) -------------------- */
uint16_t gpt_f32_to_f16(float f);
float gpt_f16_to_f32(uint16_t h);
uint16_t gpt_f32_to_bf16(float f);
float gpt_bf16_to_f32(uint16_t b);

#ifdef __cplusplus
}
#endif
#endif /* ZOFF_GPT_MODEL_H */
