/*
 * test_common.c — common/: status codes and names (X-macro list, -errno pass-through), size
 * parsing, environment parameters, crc32c (hardware and table agree, known vectors), the
 * thread-local last-error message, and the fp16/bf16 element conversions of common/half.h
 * against exhaustive and known-value checks.
 */
#include <math.h>
#include <string.h>

#include "common/half.h"
#include "zt.h"

static void test_status(void **state)
{
    (void)state;
    assert_string_equal(zoff_status_name(ZOFF_OK), "ZOFF_OK");
    assert_string_equal(zoff_status_name(ZOFF_ECORRUPT), "ZOFF_ECORRUPT");
    assert_string_equal(zoff_status_name(-ENOSPC), "ENOSPC");
    assert_string_equal(zoff_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(zoff_strerror(ZOFF_ENOFIT),
                        "configuration does not fit in the available memory or disk");
    assert_true(ZOFF_EINTERRUPTED >= -1099 && ZOFF_EINTERNAL == -1000);
    assert_int_equal(zoff_dtype_size(ZOFF_DTYPE_BF16), 2);
    assert_int_equal(zoff_version_number(), ZOFF_VERSION_NUMBER);
}

static void test_last_error(void **state)
{
    (void)state;
    zoff__clear_error();
    assert_string_equal(zoff__last_error_tls(), "");
    zoff_status st = zoff__err(-EIO, "pread %s at %d", "/x", 42);
    assert_int_equal(st, -EIO);
    assert_string_equal(zoff__last_error_tls(), "pread /x at 42");
}

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(zoff__parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(zoff__parse_size("16M", &v), 0);
    assert_int_equal(v, 16u << 20);
    assert_int_equal(zoff__parse_size("2GiB", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(zoff__parse_size("0x1000", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(zoff__parse_size("12q", &v), ZOFF_EINVAL);
    assert_int_equal(zoff__parse_size("-1", &v), ZOFF_EINVAL);
    assert_int_equal(zoff__parse_size("", &v), ZOFF_EINVAL);
}

static void test_params(void **state)
{
    (void)state;
    unsetenv("ZOFF_CPU_THREADS");
    assert_int_equal(zoff__param_int(ZOFF_PARAM_CPU_THREADS, -5), 0); /* default "0" */
    setenv("ZOFF_CPU_THREADS", "3", 1);
    assert_int_equal(zoff__param_int(ZOFF_PARAM_CPU_THREADS, -5), 3);
    setenv("ZOFF_CPU_THREADS", "x", 1);
    assert_int_equal(zoff__param_int(ZOFF_PARAM_CPU_THREADS, -5), -5);
    unsetenv("ZOFF_CPU_THREADS");
    assert_string_equal(zoff__param_env_name(ZOFF_PARAM_TRACE), "ZOFF_TRACE");
}

static void test_crc32c(void **state)
{
    (void)state;
    /* RFC 3720 B.4 test vectors */
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    assert_int_equal(zoff__crc32c(0, zeros, 32), 0x8a9136aa);
    assert_int_equal(zoff__crc32c(0, ones, 32), 0x62a8ab43);
    assert_int_equal(zoff__crc32c(0, inc, 32), 0x46dd794e);
    assert_int_equal(zoff__crc32c(0, "123456789", 9), 0xe3069283);
    /* hardware and table agree on odd lengths/alignments, and chaining works */
    zt_rng r;
    zt_rng_seed(&r, 7);
    uint8_t buf[4099];
    zt_fill_bytes(&r, buf, sizeof buf);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 300; len += 37)
            assert_int_equal(zoff__crc32c(0, buf + off, len), zoff__crc32c_sw(0, buf + off, len));
    uint32_t whole = zoff__crc32c(0, buf, sizeof buf);
    uint32_t part = zoff__crc32c(zoff__crc32c(0, buf, 1000), buf + 1000, sizeof buf - 1000);
    assert_int_equal(whole, part);
    /* the three-chain path (buffers of 3 x 8 KiB and more): lengths around its block edges,
     * unaligned starts, a non-zero starting crc */
    size_t big = 3 * 3 * 8192 + 4099;
    uint8_t *b = malloc(big);
    assert_non_null(b);
    zt_fill_bytes(&r, b, big);
    size_t lens[] = {3 * 8192 - 1,      3 * 8192,     3 * 8192 + 1, 3 * 8192 + 7,
                     2 * 3 * 8192 + 13, 3 * 3 * 8192, big - 9};
    for (size_t off = 0; off < 9; off += 3)
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
            assert_int_equal(zoff__crc32c(0x1234567u, b + off, lens[k]),
                             zoff__crc32c_sw(0x1234567u, b + off, lens[k]));
    free(b);
}

/* Reference rounding through double: exact for fp16 (every fp32 is exact in double, and the
 * fp16 grid is a subset), so nearest-even can be computed by comparing distances. */
static uint16_t ref_f16(float f)
{
    if (isnan(f)) return 0; /* handled separately */
    double x = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (x >= 65520.0) return sign | 0x7c00; /* >= max + half ulp rounds to inf */
    /* search the two neighbours on the fp16 grid */
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) { /* largest code with value <= x */
        uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
        if ((double)zoff_f16_to_f32(mid) <= x)
            lo = mid;
        else
            hi = (uint16_t)(mid - 1);
    }
    double a = zoff_f16_to_f32(lo);
    if (a == x) return sign | lo;
    double b = zoff_f16_to_f32((uint16_t)(lo + 1));
    double da = x - a, db = b - x;
    uint16_t pick = (da < db)   ? lo
                    : (db < da) ? (uint16_t)(lo + 1)
                                : ((lo & 1) ? (uint16_t)(lo + 1) : lo);
    return sign | pick;
}

static void test_half_f16(void **state)
{
    (void)state;
    /* every fp16 value round-trips exactly */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = zoff_f16_to_f32((uint16_t)h);
        uint16_t back = zoff_f32_to_f16(f);
        if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) {
            assert_true(isnan(f));
            assert_int_equal(back & 0x7c00, 0x7c00);
            assert_true(back & 0x3ff);
        } else {
            assert_int_equal(back, h);
        }
    }
    /* fp32 values: random bit patterns in the fp16 range and around every boundary */
    zt_rng r;
    zt_rng_seed(&r, 11);
    for (int i = 0; i < 300000; i++) {
        uint32_t bits = (uint32_t)zt_rng_u64(&r);
        /* concentrate on exponents near the fp16 range */
        uint32_t e = 96u + (uint32_t)(zt_rng_u64(&r) % 50u);
        bits = (bits & 0x807fffffu) | (e << 23);
        float f = zoff_bits_f32(bits);
        assert_int_equal(zoff_f32_to_f16(f), ref_f16(f));
    }
    /* exact ties between neighbours */
    for (uint32_t h = 0; h < 0x7bff; h += 13) {
        double mid =
            ((double)zoff_f16_to_f32((uint16_t)h) + zoff_f16_to_f32((uint16_t)(h + 1))) / 2;
        float f = (float)mid;
        if ((double)f == mid) assert_int_equal(zoff_f32_to_f16(f), ref_f16(f));
    }
    assert_int_equal(zoff_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(zoff_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(zoff_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(zoff_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(zoff_f32_to_f16(5.960464477539063e-08f), 0x0001);   /* smallest subnormal */
    assert_int_equal(zoff_f32_to_f16(2.98023223876953125e-08f), 0x0000); /* tie -> even 0 */
    assert_int_equal(zoff_f32_to_f16(-1e-10f), 0x8000);
    assert_true(isnan(zoff_f16_to_f32(zoff_f32_to_f16(NAN))));
}

static void test_half_bf16(void **state)
{
    (void)state;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = zoff_bf16_to_f32((uint16_t)b);
        uint16_t back = zoff_f32_to_bf16(f);
        if (isnan(f))
            assert_true(isnan(zoff_bf16_to_f32(back)));
        else
            assert_int_equal(back, b);
    }
    /* ties to even, carry into the exponent, overflow to inf */
    assert_int_equal(zoff_f32_to_bf16(zoff_bits_f32(0x3f808000u)), 0x3f80); /* tie, even down */
    assert_int_equal(zoff_f32_to_bf16(zoff_bits_f32(0x3f818000u)), 0x3f82); /* tie, odd up */
    assert_int_equal(zoff_f32_to_bf16(zoff_bits_f32(0x3f808001u)), 0x3f81);
    assert_int_equal(zoff_f32_to_bf16(zoff_bits_f32(0x7f7fffffu)), 0x7f80); /* max -> inf */
    assert_int_equal(zoff_f32_to_bf16(zoff_bits_f32(0x00000001u)), 0x0000); /* subnormal */
    assert_int_equal(zoff_f32_to_bf16(zoff_bits_f32(0x00018000u)), 0x0002);
    uint16_t qn = zoff_f32_to_bf16(zoff_bits_f32(0x7f800001u)); /* sNaN with low payload */
    assert_true(isnan(zoff_bf16_to_f32(qn)));
}

static void test_proc_kb(void **state)
{
    (void)state;
    uint64_t total = zoff__proc_kb("/proc/meminfo", "MemTotal");
    assert_true(total > 0 && total % 1024 == 0);
    assert_true(zoff__mem_available() <= total);
    assert_int_equal(zoff__proc_kb("/proc/meminfo", "NoSuchKey"), 0);
    assert_int_equal(zoff__proc_kb("/proc/meminfo", "MemTota"), 0); /* whole key only */
    assert_int_equal(zoff__proc_kb("/nonexistent/file", "MemTotal"), 0);
}

static void test_logging(void **state)
{
    (void)state;
    char *dir = zt_mkdtemp("log");
    assert_non_null(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/log.txt", dir);
    setenv("ZOFF_DEBUG", "INFO", 1);
    setenv("ZOFF_DEBUG_SUBSYS", "NVME,ADAM,^ADAM", 1);
    setenv("ZOFF_DEBUG_FILE", path, 1);
    zoff__log_reinit();
    assert_int_equal(zoff__log_level(), ZOFF_LOG_INFO);
    assert_true(zoff__log_enabled(ZOFF_LOG_INFO, ZOFF_SUB_NVME));
    assert_false(zoff__log_enabled(ZOFF_LOG_INFO, ZOFF_SUB_ADAM));  /* excluded with ^ */
    assert_false(zoff__log_enabled(ZOFF_LOG_TRACE, ZOFF_SUB_NVME)); /* above the level */
    ZOFF_INFO(ZOFF_SUB_NVME, "kept %d", 1);
    ZOFF_INFO(ZOFF_SUB_ADAM, "dropped %d", 2);
    ZOFF_TRACE_LOG(ZOFF_SUB_NVME, "dropped %d", 3);
    for (int i = 0; i < 3; i++) ZOFF_LOG_ONCE(ZOFF_LOG_WARN, ZOFF_SUB_NVME, "once");
    unsetenv("ZOFF_DEBUG");
    unsetenv("ZOFF_DEBUG_SUBSYS");
    unsetenv("ZOFF_DEBUG_FILE");
    zoff__log_reinit(); /* back to stderr, closes the file */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "zoff INFO [NVME] kept 1"));
    assert_null(strstr(buf, "dropped"));
    const char *once = strstr(buf, "zoff WARN [NVME] once");
    assert_non_null(once);
    assert_null(strstr(once + strlen("zoff WARN [NVME] once"), "once")); /* exactly once */
    zt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),     cmocka_unit_test(test_last_error),
        cmocka_unit_test(test_parse_size), cmocka_unit_test(test_params),
        cmocka_unit_test(test_crc32c),     cmocka_unit_test(test_half_f16),
        cmocka_unit_test(test_half_bf16),  cmocka_unit_test(test_logging),
        cmocka_unit_test(test_proc_kb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
