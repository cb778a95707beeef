/*
 * crc32c.c — CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) for swap-extent and
 * checkpoint integrity. The SSE4.2 crc32 instruction is used when CPUID reports it (chosen
 * once); a slicing-by-1 table is the portable reference. Both give identical results.
 */
#include <pthread.h>
#include <string.h>

#include "common.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int use_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[i] = c;
    }
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
