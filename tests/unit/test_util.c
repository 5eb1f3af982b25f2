/*
 * Unit tests of util/: error table and messages, strict parsing, the seeded
 * generator, the assertion hook, the allocator hook and the log sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test_alloc.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/rng.h"

static void test_err_every_code_has_a_distinct_name_and_text(void **state)
{
    (void)state;
    static const int codes[] = {
#define CODE(name, number, text) name,
        QR_ERR_TABLE(CODE)
#undef CODE
    };
    size_t count = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < count; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(qr_strerror(codes[i]), "unknown error");
        assert_string_not_equal(qr_err_name(codes[i]), "QR_E?");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(qr_err_name(codes[i]), qr_err_name(codes[j]));
        }
    }
    assert_string_equal(qr_err_name(QR_EINVAL), "QR_EINVAL");
    assert_string_equal(qr_err_name(0), "QR_OK");
    assert_string_equal(qr_strerror(-9999), "unknown error");
    assert_string_equal(qr_err_name(-9999), "QR_E?");
}

static void test_err_messages_wrap_context_as_they_climb(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr__errf(errmsg, QR_ECORRUPT, "bad crc at %d", 8192), QR_ECORRUPT);
    assert_int_equal(qr__err_wrapf(errmsg, QR_ECORRUPT, "segment %d", 42), QR_ECORRUPT);
    assert_int_equal(qr__err_wrapf(errmsg, QR_ECORRUPT, "wal"), QR_ECORRUPT);
    assert_string_equal(errmsg, "wal: segment 42: bad crc at 8192");
    assert_int_equal(qr__err_os(errmsg, ENOSPC, "write %s", "/x"), QR_ENOSPC);
    assert_string_equal(errmsg, "write /x: No space left on device");
    assert_int_equal(qr__err_os(errmsg, EIO, "fsync"), QR_EIO);
    /* NULL discards the message but keeps the code. */
    assert_int_equal(qr__errf(NULL, QR_EINVAL, "x"), QR_EINVAL);
}

static void test_err_long_messages_are_cut_not_overflowed(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE + 16];
    memset(errmsg, 'z', sizeof(errmsg));
    char longer[600];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    (void)qr__errf(errmsg, QR_EINVAL, "%s", longer);
    (void)qr__err_wrapf(errmsg, QR_EINVAL, "%s", longer);
    assert_int_equal(strlen(errmsg), QR_ERRMSG_SIZE - 1);
    assert_int_equal(errmsg[QR_ERRMSG_SIZE], 'z');
}

static void test_parse_u64_accepts_plain_digits_in_range(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(qr__parse_u64("0", 0, 10, &v, NULL), 0);
    assert_int_equal(v, 0);
    assert_int_equal(qr__parse_u64("10", 0, 10, &v, NULL), 0);
    assert_int_equal(v, 10);
    assert_int_equal(qr__parse_u64("18446744073709551615", 0, UINT64_MAX, &v, NULL), 0);
    assert_true(v == UINT64_MAX);
}

static void test_parse_u64_refuses_everything_else(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "11",
                                      "-1",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1x",
                                      "0x10",
                                      "1.0",
                                      "18446744073709551616",
                                      "99999999999999999999999"};
    char errmsg[QR_ERRMSG_SIZE];
    uint64_t v = 77;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errmsg[0] = '\0';
        assert_int_equal(qr__parse_u64(bad[i], 0, 10, &v, errmsg), QR_EINVAL);
        assert_true(strlen(errmsg) > 0);
        assert_int_equal(v, 77);
    }
    assert_int_equal(qr__parse_u64(NULL, 0, 10, &v, errmsg), QR_EINVAL);
}

static void test_parse_double_accepts_decimals_and_refuses_nan(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(qr__parse_double("0.01", 0, 1, &d, NULL), 0);
    assert_true(d == 0.01);
    assert_int_equal(qr__parse_double("1e-3", 0, 1, &d, NULL), 0);
    assert_true(d == 0.001);
    assert_int_equal(qr__parse_double("1", 0, 1, &d, NULL), 0);
    static const char *const bad[] = {"",       "nan",  "inf",   "-0.5", "1.5",
                                      "0x1p-3", " 0.1", "0.1.2", "e",    "1e999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(qr__parse_double(bad[i], 0, 1, &d, NULL), QR_EINVAL);
    }
}

static void test_parse_list_counts_items_and_names_the_bad_one(void **state)
{
    (void)state;
    uint32_t values[4];
    size_t count = 0;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr__parse_u32_list("2,1,1", 1, 3, values, 4, &count, NULL), 0);
    assert_int_equal(count, 3);
    assert_int_equal(values[0], 2);
    assert_int_equal(qr__parse_u32_list("1,2,3,3", 1, 3, values, 4, &count, NULL), 0);
    assert_int_equal(qr__parse_u32_list("1,2,3,3,1", 1, 3, values, 4, &count, errmsg), QR_ETOOBIG);
    assert_int_equal(qr__parse_u32_list("1,,2", 1, 3, values, 4, &count, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "item 2"));
    assert_int_equal(qr__parse_u32_list("1,4", 1, 3, values, 4, &count, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "item 2"));
    assert_int_equal(qr__parse_u32_list("1,", 1, 3, values, 4, &count, errmsg), QR_EINVAL);
    assert_int_equal(qr__parse_u32_list("", 1, 3, values, 4, &count, errmsg), QR_EINVAL);
    assert_int_equal(
        qr__parse_u32_list("123456789012345678901234567", 1, 3, values, 4, &count, errmsg),
        QR_EINVAL);
}

static void test_parse_i64_canonical_accepts_only_redis_integers(void **state)
{
    (void)state;
    int64_t v = 5;
    static const char *const good[] = {"0", "7", "-7", "9223372036854775807",
                                       "-9223372036854775808"};
    static const int64_t want[] = {0, 7, -7, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(qr__parse_i64_canonical((const uint8_t *)good[i], strlen(good[i]), &v));
        assert_true(v == want[i]);
    }
    static const char *const bad[] = {"",
                                      "-",
                                      "00",
                                      "01",
                                      "-0",
                                      "+1",
                                      " 1",
                                      "1 ",
                                      "1x",
                                      "9223372036854775808",
                                      "-9223372036854775809"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(qr__parse_i64_canonical((const uint8_t *)bad[i], strlen(bad[i]), &v));
    }
    assert_true(qr__parse_i64_canonical((const uint8_t *)"12", 2, NULL));
}

static void test_flag_value_takes_both_spellings_and_refuses_a_missing_value(void **state)
{
    (void)state;
    char *argv[] = {"--nodes=3", "--nodes", "5", "--nodesx", "--p-fail"};
    int argc = 5;
    int i = 0;
    assert_true(qr__flag_is(argv[0], "--nodes"));
    assert_string_equal(qr__flag_value(argc, argv, &i, "--nodes"), "3");
    assert_int_equal(i, 0);
    i = 1;
    assert_string_equal(qr__flag_value(argc, argv, &i, "--nodes"), "5");
    assert_int_equal(i, 2);
    i = 3;
    assert_false(qr__flag_is(argv[3], "--nodes"));
    assert_null(qr__flag_value(argc, argv, &i, "--nodes"));
    i = 4;
    assert_null(qr__flag_value(argc, argv, &i, "--p-fail")); /* Last word: no value. */
    assert_int_equal(i, 4);
}

static void test_rng_same_seed_gives_same_sequence(void **state)
{
    (void)state;
    struct qr_rng a;
    struct qr_rng b;
    struct qr_rng c;
    qr__rng_seed(&a, 42);
    qr__rng_seed(&b, 42);
    qr__rng_seed(&c, 43);
    bool differs = false;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = qr__rng_next(&a);
        assert_true(x == qr__rng_next(&b));
        differs = differs || x != qr__rng_next(&c);
    }
    assert_true(differs);
}

static void test_rng_bounded_values_stay_in_range_and_cover_it(void **state)
{
    (void)state;
    struct qr_rng r;
    qr__rng_seed(&r, 0);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t x = qr__rng_range(&r, 3, 9);
        assert_true(x >= 3 && x <= 9);
        seen[x - 3]++;
    }
    for (int i = 0; i < 7; i++) {
        assert_true(seen[i] > 700 && seen[i] < 1300);
    }
    assert_false(qr__rng_chance(&r, 0, 5));
    assert_true(qr__rng_chance(&r, 5, 5));
}

static void route_to_cmocka(const char *expr, const char *file, int line, const char *func)
{
    (void)func;
    mock_assert(0, expr, file, line);
}

static void assert_positive(int x)
{
    QR_ASSERT(x > 0);
}

static void test_assert_fires_on_false_and_not_on_true(void **state)
{
    (void)state;
    qr__assert_set_fail_hook(route_to_cmocka);
    assert_positive(1);
    expect_assert_failure(assert_positive(0));
    expect_assert_failure(assert_positive(-1 + 0));
    qr__assert_set_fail_hook(NULL);
}

static void test_assert_macro_parenthesises_its_argument(void **state)
{
    (void)state;
    qr__assert_set_fail_hook(route_to_cmocka);
    int a = 1;
    /* Without parentheses "!a == 2 || 1" would still pass or fail the wrong way. */
    expect_assert_failure(QR_ASSERT(a == 2 || a == 3));
    QR_ASSERT(a == 1 || a == 3);
    qr__assert_set_fail_hook(NULL);
}

static void test_alloc_hook_sees_every_allocation(void **state)
{
    (void)state;
    test_alloc_install();
    void *p = qr_malloc(10);
    char *s = qr_strdup("abc");
    assert_non_null(p);
    assert_string_equal(s, "abc");
    assert_int_equal(test_alloc_live_count(), 2);
    test_alloc_fail_at(1, false);
    assert_null(qr_malloc(1));
    void *q = qr_calloc(2, 2);
    assert_non_null(q);
    qr_free(q);
    qr_free(p);
    qr_free(s);
    qr_free(NULL);
    assert_int_equal(test_alloc_uninstall(), 0);
}

struct log_capture {
    int calls;
    char last[128];
};

static void capture(void *ctx, enum qr_log_level level, const char *line)
{
    struct log_capture *c = ctx;
    c->calls++;
    (void)snprintf(c->last, sizeof(c->last), "%s %s", qr_log_level_name(level), line);
}

static void test_log_sink_receives_only_enabled_levels(void **state)
{
    (void)state;
    struct log_capture c = {0};
    QR_LOG_ERRORF("dropped: no sink %d", 1);
    qr_log_set(capture, &c, QR_LOG_INFO);
    QR_LOG_INFOF("core: became leader node=%d term=%d", 1, 2);
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.last, "INFO core: became leader node=1 term=2");
    QR_LOG_DEBUGF("core: filtered %d", 3);
    assert_int_equal(c.calls, 1);
    qr_log_set(NULL, NULL, QR_LOG_TRACE);
    QR_LOG_ERRORF("dropped again %d", 4);
    assert_int_equal(c.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_every_code_has_a_distinct_name_and_text),
        cmocka_unit_test(test_err_messages_wrap_context_as_they_climb),
        cmocka_unit_test(test_err_long_messages_are_cut_not_overflowed),
        cmocka_unit_test(test_parse_u64_accepts_plain_digits_in_range),
        cmocka_unit_test(test_parse_u64_refuses_everything_else),
        cmocka_unit_test(test_parse_double_accepts_decimals_and_refuses_nan),
        cmocka_unit_test(test_parse_list_counts_items_and_names_the_bad_one),
        cmocka_unit_test(test_parse_i64_canonical_accepts_only_redis_integers),
        cmocka_unit_test(test_flag_value_takes_both_spellings_and_refuses_a_missing_value),
        cmocka_unit_test(test_rng_same_seed_gives_same_sequence),
        cmocka_unit_test(test_rng_bounded_values_stay_in_range_and_cover_it),
        cmocka_unit_test(test_assert_fires_on_false_and_not_on_true),
        cmocka_unit_test(test_assert_macro_parenthesises_its_argument),
        cmocka_unit_test(test_alloc_hook_sees_every_allocation),
        cmocka_unit_test(test_log_sink_receives_only_enabled_levels),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
