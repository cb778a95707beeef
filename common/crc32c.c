/*
 * crc32c.c — CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) for swap-extent and
 * checkpoint integrity. The SSE4.2 crc32 instruction is used when CPUID reports it (chosen
 * once); a slicing-by-1 table is the portable reference. Both give identical results.
 *
 * The crc32 instruction has a latency of 3 cycles and a throughput of 1, so one dependency chain
 * uses a third of it. Long buffers therefore run three chains over three consecutive blocks of
 * LANE_BYTES and join them: the CRC register is linear, so register(A then B) =
 * register(A) * x^(8 |B|) mod P xor register-from-zero(B); the multiply by the fixed
 * x^(8 LANE_BYTES) is a 32-step carry-less multiply per join (zoff__crc32c_shift), negligible
 * against 3 x LANE_BYTES of data.
 */
#include <pthread.h>
#include <string.h>

#include "common.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

#define POLY       0x82f63b78u
#define LANE_BYTES 8192u

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int use_hw;
static uint32_t lane_shift; /* x^(8 LANE_BYTES) mod P, reflected */

/* a * b mod P in the reflected representation (bit 31 is x^0). */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
    uint32_t prod = 0;
    for (uint32_t m = 1u << 31; m; m >>= 1) {
        if (a & m) prod ^= b;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return prod;
}

/* x^(2^k) mod P: x (bit 30) squared k times. */
static uint32_t x_pow2k(int k)
{
    uint32_t p = 1u << 30;
    while (k--) p = gf_mul(p, p);
    return p;
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[i] = c;
    }
    lane_shift = x_pow2k(16); /* 8 * 8192 = 2^16 bits */
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) use_hw = (c & bit_SSE4_2) != 0;
#endif
}

uint32_t zoff__crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&table_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 3 * (size_t)LANE_BYTES) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *p1 = p + LANE_BYTES, *p2 = p + 2 * LANE_BYTES;
        for (size_t i = 0; i < LANE_BYTES; i += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p + i, 8);
            memcpy(&v1, p1 + i, 8);
            memcpy(&v2, p2 + i, 8);
            c = _mm_crc32_u64(c, v0);
            c1 = _mm_crc32_u64(c1, v1);
            c2 = _mm_crc32_u64(c2, v2);
        }
        c = gf_mul((uint32_t)c, lane_shift) ^ (uint32_t)c1;
        c = gf_mul((uint32_t)c, lane_shift) ^ (uint32_t)c2;
        p += 3 * (size_t)LANE_BYTES;
        len -= 3 * (size_t)LANE_BYTES;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    while (len--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

uint32_t zoff__crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&table_once, crc_init);
#if defined(__x86_64__)
    if (use_hw) return crc_hw(crc, data, len);
#endif
    return zoff__crc32c_sw(crc, data, len);
}

int zoff__crc32c_hw(void)
{
    pthread_once(&table_once, crc_init);
    return use_hw;
}
