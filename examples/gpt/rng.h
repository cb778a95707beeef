/*
 * rng.h — the example trainer's random numbers: xoshiro256** seeded through splitmix64, with a
 * state that is four integers so that a checkpoint can store it and a resumed run draws exactly
 * the same numbers. Header-only; not thread-safe (one generator per user).
 */
#ifndef ZOFF_GPT_RNG_H
#define ZOFF_GPT_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct gpt_rng {
    uint64_t s[4];
} gpt_rng;

static inline uint64_t gpt_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void gpt_rng_seed(gpt_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = gpt_splitmix64(&seed);
}

static inline uint64_t gpt_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t gpt_rng_u64(gpt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = gpt_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = gpt_rng_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double gpt_rng_uniform(gpt_rng *r)
{
    return (double)(gpt_rng_u64(r) >> 11) * 0x1p-53;
}

/* Uniform integer in [0, n) (n > 0; the modulo bias is below 2^-40 for n < 2^24). */
static inline uint64_t gpt_rng_below(gpt_rng *r, uint64_t n)
{
    return gpt_rng_u64(r) % n;
}

/* Standard normal (Box-Muller, one value per call). */
static inline double gpt_rng_normal(gpt_rng *r)
{
    double u1 = gpt_rng_uniform(r), u2 = gpt_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif /* ZOFF_GPT_RNG_H */
