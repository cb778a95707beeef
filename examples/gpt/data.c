/*
 * data.c — the byte tokenizer and the corpus of the example trainer (see data.h): loading,
 * tokenizing, the train/validation split and batch sampling.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"

int32_t gpt_encode_byte(unsigned char c)
{
    if (c == '\n') return 0;
    if (c >= 32 && c <= 126) return (int32_t)c - 31;
    return '?' - 31;
}

char gpt_decode_token(int32_t t)
{
    if (t == 0) return '\n';
    if (t >= 1 && t <= 95) return (char)(t + 31);
    return '?';
}

int gpt_data_load(gpt_data *d, const char *path, int seq_len, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    int rc = 0;
    unsigned char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "corpus %s: open: %s", path, strerror(errno));
        goto out;
    }
    struct stat sb;
    memset(&sb, 0, sizeof sb);
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = S_ISDIR(sb.st_mode) ? -EISDIR : -EINVAL;
        snprintf(err, errlen, "corpus %s: %s (--data takes a text file)", path,
                 S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
        goto out;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = -errno;
        snprintf(err, errlen, "corpus %s: seek: %s", path, strerror(errno));
        goto out;
    }
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = -errno;
        snprintf(err, errlen, "corpus %s: ftell: %s", path, strerror(errno));
        goto out;
    }
    size_t n = (size_t)size;
    buf = malloc(n ? n : 1);
    d->tokens = malloc((n ? n : 1) * sizeof(int32_t));
    if (!buf || !d->tokens) {
        rc = -ENOMEM;
        snprintf(err, errlen, "corpus %s: out of memory for %zu bytes", path, n);
        goto out;
    }
    if (fread(buf, 1, n, f) != n) {
        rc = ferror(f) ? -EIO : -ENODATA;
        snprintf(err, errlen, "corpus %s: short read of %zu bytes", path, n);
        goto out;
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        d->tokens[i] = gpt_encode_byte(buf[i]);
        if (buf[i] != '\n' && (buf[i] < 32 || buf[i] > 126)) d->unknown++;
        h = (h ^ buf[i]) * 0x100000001b3ull;
    }
    d->hash = h;
    d->ntokens = n;
    d->ntrain = n / 10 * 9;
    if (d->ntrain < (size_t)seq_len + 2 || n - d->ntrain < (size_t)seq_len + 2) {
        rc = -EINVAL;
        snprintf(err, errlen,
                 "corpus %s: %zu bytes is too small for seq_len %d (each of the 90%%/10%% "
                 "train/validation splits needs more than seq_len + 1 tokens)",
                 path, n, seq_len);
        goto out;
    }
out:
    if (f) fclose(f);
    free(buf);
    if (rc != 0) gpt_data_free(d);
    return rc;
}

void gpt_data_free(gpt_data *d)
{
    if (!d) return;
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

static void window(const gpt_data *d, size_t start, int T, int32_t *x, int32_t *y)
{
    memcpy(x, d->tokens + start, (size_t)T * sizeof(int32_t));
    memcpy(y, d->tokens + start + 1, (size_t)T * sizeof(int32_t));
}

void gpt_data_train_batch(const gpt_data *d, gpt_rng *rng, int B, int T, int32_t *x, int32_t *y)
{
    uint64_t span = d->ntrain - (size_t)T - 1; /* window starts in [0, span) */
    for (int b = 0; b < B; b++)
        window(d, (size_t)gpt_rng_below(rng, span), T, x + (size_t)b * T, y + (size_t)b * T);
}

void gpt_data_val_batch(const gpt_data *d, int index, int nbatches, int B, int T, int32_t *x,
                        int32_t *y)
{
    size_t nval = d->ntokens - d->ntrain;
    size_t span = nval - (size_t)T - 1;
    size_t total = (size_t)nbatches * (size_t)B;
    for (int b = 0; b < B; b++) {
        size_t k = (size_t)index * (size_t)B + (size_t)b;
        size_t start = d->ntrain + k * span / total;
        window(d, start, T, x + (size_t)b * T, y + (size_t)b * T);
    }
}
