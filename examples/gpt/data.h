/*
 * data.h — the example trainer's data: the built-in byte tokenizer (96 tokens: '\n' and the
 * printable ASCII bytes) and the corpus (a text file tokenized whole, split 90% train / 10%
 * validation), with random training batches and a fixed validation set.
 *
 * Owns: the token array of a loaded corpus. Thread safety: a gpt_data is read-only after
 * gpt_data_load and may be shared; batch sampling advances the caller's rng.
 */
#ifndef ZOFF_GPT_DATA_H
#define ZOFF_GPT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* Byte -> token: '\n' is 0, bytes 32..126 are 1..95; any other byte becomes '?'. */
int32_t gpt_encode_byte(unsigned char c);
/* Token -> byte ('?' for an id out of range). */
char gpt_decode_token(int32_t t);

typedef struct gpt_data {
    int32_t *tokens; /* ntokens tokens of the whole file (owned) */
    size_t ntokens;
    size_t ntrain;  /* tokens [0, ntrain) train, [ntrain, ntokens) validation */
    size_t unknown; /* bytes that were outside the vocabulary (mapped to '?') */
    uint64_t hash;  /* FNV-1a 64 of the file bytes: identifies the corpus in checkpoints */
} gpt_data;

/* Reads and tokenizes `path`. Both splits must hold more than seq_len + 1 tokens. Returns 0,
 * -errno (message in err: path and call) or -EINVAL (too small). */
int gpt_data_load(gpt_data *d, const char *path, int seq_len, char *err, size_t errlen);
void gpt_data_free(gpt_data *d);

/* B random training windows: x (B, T) and y (B, T) = x shifted by one token. */
void gpt_data_train_batch(const gpt_data *d, gpt_rng *rng, int B, int T, int32_t *x, int32_t *y);
/* Validation batch `index` of `nbatches`: windows evenly spaced over the validation split, the
 * same for every call (so validation losses are comparable across steps and runs). */
void gpt_data_val_batch(const gpt_data *d, int index, int nbatches, int B, int T, int32_t *x,
                        int32_t *y);

#endif /* ZOFF_GPT_DATA_H */
