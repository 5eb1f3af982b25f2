/*
 * Unit tests of kv/: commands and their answers, canonical integers, the
 * limits on both sides, the hash table under many inserts and deletes, the
 * command codec and the snapshot format against hostile input, and every
 * out-of-memory path (the store must be unchanged after a failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kv/kv.h"
#include "quorum/err.h"
#include "test_alloc.h"
#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define FAIL_AT_MAX 64

static struct qr_buf text(const char *s)
{
    struct qr_buf b = {(uint8_t *)(uintptr_t)s, strlen(s)};
    return b;
}

static struct qr_kv *kv_new(uint64_t keys_max)
{
    struct qr_kv_opts opts = {.keys_max = keys_max};
    struct qr_kv *kv = NULL;
    assert_int_equal(qr__kv_create(&opts, &kv), 0);
    assert_non_null(kv);
    return kv;
}

static struct qr_kv_result run(struct qr_kv *kv, enum qr_kv_op op, const char *key, const char *v)
{
    struct qr_kv_cmd cmd = {.client_id = 1, .seq = 1, .op = op, .key = text(key)};
    if (op == QR_KV_SET) {
        cmd.value = text(v);
    }
    struct qr_kv_result result;
    assert_int_equal(qr__kv_apply(kv, &cmd, &result), 0);
    qr__kv_check_invariants(kv);
    return result;
}

static struct qr_kv_result incr(struct qr_kv *kv, const char *key, int64_t delta)
{
    struct qr_kv_cmd cmd = {.op = QR_KV_INCR, .key = text(key), .delta = delta};
    struct qr_kv_result result;
    assert_int_equal(qr__kv_apply(kv, &cmd, &result), 0);
    qr__kv_check_invariants(kv);
    return result;
}

static void assert_value(struct qr_kv *kv, const char *key, const char *expected)
{
    struct qr_kv_result r = run(kv, QR_KV_GET, key, NULL);
    if (expected == NULL) {
        assert_int_equal(r.status, QR_KV_NOTFOUND);
        return;
    }
    assert_int_equal(r.status, QR_KV_VALUE);
    assert_int_equal(r.value.len, strlen(expected));
    assert_memory_equal(r.value.base, expected, r.value.len);
}

/* ---- Commands ------------------------------------------------------------------------ */

static void test_kv_set_get_del_answer_like_redis(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    assert_value(kv, "a", NULL);
    assert_int_equal(run(kv, QR_KV_SET, "a", "1").status, QR_KV_OK);
    assert_value(kv, "a", "1");
    assert_int_equal(run(kv, QR_KV_SET, "a", "hello").status, QR_KV_OK);
    assert_value(kv, "a", "hello");
    assert_int_equal(qr__kv_count(kv), 1);
    struct qr_kv_result r = run(kv, QR_KV_DEL, "a", NULL);
    assert_int_equal(r.status, QR_KV_INTEGER);
    assert_int_equal(r.integer, 1);
    r = run(kv, QR_KV_DEL, "a", NULL);
    assert_int_equal(r.status, QR_KV_INTEGER);
    assert_int_equal(r.integer, 0);
    assert_value(kv, "a", NULL);
    assert_int_equal(qr__kv_count(kv), 0);
    qr__kv_destroy(kv);
}

static void test_kv_empty_key_and_empty_value_are_ordinary(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    assert_int_equal(run(kv, QR_KV_SET, "", "").status, QR_KV_OK);
    assert_value(kv, "", "");
    assert_int_equal(incr(kv, "", 1).status, QR_KV_ERROR); /* "" is not an integer. */
    assert_int_equal(run(kv, QR_KV_DEL, "", NULL).integer, 1);
    qr__kv_destroy(kv);
}

static void test_kv_incr_counts_from_zero_and_refuses_non_integers(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    struct qr_kv_result r = incr(kv, "n", 5);
    assert_int_equal(r.status, QR_KV_INTEGER);
    assert_int_equal(r.integer, 5);
    r = incr(kv, "n", -7);
    assert_int_equal(r.integer, -2);
    assert_value(kv, "n", "-2");
    run(kv, QR_KV_SET, "s", "12x");
    r = incr(kv, "s", 1);
    assert_int_equal(r.status, QR_KV_ERROR);
    assert_int_equal(r.error, QR_KV_ERROR_NOT_INTEGER);
    assert_string_equal(qr__kv_error_text(r.error), "ERR value is not an integer or out of range");
    assert_value(kv, "s", "12x"); /* A refusal changes nothing. */
    run(kv, QR_KV_SET, "z", "007");
    assert_int_equal(incr(kv, "z", 1).error, QR_KV_ERROR_NOT_INTEGER);
    qr__kv_destroy(kv);
}

static void test_kv_incr_refuses_overflow_at_both_ends(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    run(kv, QR_KV_SET, "max", "9223372036854775806");
    struct qr_kv_result r = incr(kv, "max", 1);
    assert_int_equal(r.status, QR_KV_INTEGER);
    assert_true(r.integer == INT64_MAX);
    r = incr(kv, "max", 1);
    assert_int_equal(r.status, QR_KV_ERROR);
    assert_int_equal(r.error, QR_KV_ERROR_OVERFLOW);
    assert_value(kv, "max", "9223372036854775807");
    run(kv, QR_KV_SET, "min", "-9223372036854775807");
    r = incr(kv, "min", -1);
    assert_true(r.integer == INT64_MIN);
    assert_value(kv, "min", "-9223372036854775808");
    assert_int_equal(incr(kv, "min", -1).error, QR_KV_ERROR_OVERFLOW);
    assert_int_equal(incr(kv, "min", INT64_MIN).error, QR_KV_ERROR_OVERFLOW);
    r = incr(kv, "min", INT64_MAX);
    assert_int_equal(r.integer, -1);
    qr__kv_destroy(kv);
}

static void test_kv_parse_int_accepts_only_canonical_text(void **state)
{
    (void)state;
    static const char *good[] = {
        "0", "1", "-1", "42", "9223372036854775807", "-9223372036854775808"};
    static const int64_t good_values[] = {0, 1, -1, 42, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t v = 7;
        assert_true(qr__kv_parse_int((const uint8_t *)good[i], strlen(good[i]), &v));
        assert_true(v == good_values[i]);
        uint8_t out[QR_KV_INT_TEXT_SIZE_MAX];
        size_t n = qr__kv_format_int(v, out);
        assert_int_equal(n, strlen(good[i]));
        assert_memory_equal(out, good[i], n);
    }
    static const char *bad[] = {"",
                                "-",
                                "+1",
                                "01",
                                "-0",
                                " 1",
                                "1 ",
                                "1a",
                                "0x10",
                                "--1",
                                "-01",
                                "1.0",
                                "9223372036854775808",
                                "-9223372036854775809",
                                "100000000000000000000",
                                "000000000000000000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 7;
        assert_false(qr__kv_parse_int((const uint8_t *)bad[i], strlen(bad[i]), &v));
        assert_int_equal(v, 7);
    }
    assert_false(qr__kv_parse_int(NULL, 0, NULL));
}

/* ---- Limits -------------------------------------------------------------------------- */

static void test_kv_keys_max_refuses_new_keys_but_not_updates(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(2);
    assert_int_equal(run(kv, QR_KV_SET, "a", "1").status, QR_KV_OK);
    assert_int_equal(run(kv, QR_KV_SET, "b", "2").status, QR_KV_OK);
    struct qr_kv_result r = run(kv, QR_KV_SET, "c", "3");
    assert_int_equal(r.status, QR_KV_ERROR);
    assert_int_equal(r.error, QR_KV_ERROR_KEYS_MAX);
    assert_int_equal(incr(kv, "c", 1).error, QR_KV_ERROR_KEYS_MAX);
    assert_int_equal(run(kv, QR_KV_SET, "a", "9").status, QR_KV_OK);
    assert_int_equal(incr(kv, "b", 1).integer, 3);
    run(kv, QR_KV_DEL, "a", NULL);
    assert_int_equal(run(kv, QR_KV_SET, "c", "3").status, QR_KV_OK);
    assert_int_equal(qr__kv_count(kv), 2);
    qr__kv_destroy(kv);
}

static void test_kv_create_refuses_keys_max_above_the_limit(void **state)
{
    (void)state;
    struct qr_kv_opts opts = {.keys_max = (uint64_t)QR_KV_KEYS_MAX_LIMIT + 1};
    struct qr_kv *kv = NULL;
    assert_int_equal(qr__kv_create(&opts, &kv), QR_EINVAL);
    assert_null(kv);
    opts.keys_max = QR_KV_KEYS_MAX_LIMIT;
    assert_int_equal(qr__kv_create(&opts, &kv), 0);
    qr__kv_destroy(kv);
    assert_int_equal(qr__kv_create(NULL, &kv), 0);
    qr__kv_destroy(kv);
    qr__kv_destroy(NULL);
}

static void test_kv_table_survives_many_inserts_and_deletes(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        (void)snprintf(key, sizeof(key), "key-%d", i);
        struct qr_kv_cmd cmd = {.op = QR_KV_INCR, .key = text(key), .delta = i};
        struct qr_kv_result r;
        assert_int_equal(qr__kv_apply(kv, &cmd, &r), 0);
    }
    qr__kv_check_invariants(kv);
    for (int i = 0; i < 5000; i += 2) {
        (void)snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(run(kv, QR_KV_DEL, key, NULL).integer, 1);
    }
    qr__kv_check_invariants(kv);
    assert_int_equal(qr__kv_count(kv), 2500);
    for (int i = 0; i < 5000; i++) {
        (void)snprintf(key, sizeof(key), "key-%d", i);
        struct qr_buf value;
        bool found = qr__kv_get(kv, text(key), &value);
        assert_int_equal(found, i % 2 == 1);
        if (found) {
            int64_t v = -1;
            assert_true(qr__kv_parse_int(value.base, value.len, &v));
            assert_int_equal(v, i);
        }
    }
    qr__kv_destroy(kv);
}

/* ---- Command codec ------------------------------------------------------------------- */

static size_t encode(const struct qr_kv_cmd *cmd, uint8_t *buf, size_t size)
{
    size_t n = qr__kv_cmd_encoded_size(cmd);
    assert_true(n <= size);
    qr__kv_cmd_encode(cmd, buf);
    return n;
}

static void test_kv_codec_round_trips_every_op(void **state)
{
    (void)state;
    struct qr_kv_cmd cmds[] = {
        {.client_id = 7, .seq = 99, .op = QR_KV_SET, .key = text("k"), .value = text("v")},
        {.client_id = UINT64_MAX, .seq = 0, .op = QR_KV_GET, .key = text("key")},
        {.client_id = 0, .seq = 1, .op = QR_KV_DEL, .key = text("")},
        {.client_id = 3, .seq = 4, .op = QR_KV_INCR, .key = text("n"), .delta = INT64_MIN},
        {.client_id = 3, .seq = 5, .op = QR_KV_SET, .key = text(""), .value = text("")},
    };
    uint8_t buf[256];
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        size_t n = encode(&cmds[i], buf, sizeof(buf));
        struct qr_kv_cmd out;
        char errmsg[QR_ERRMSG_SIZE] = "";
        assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
        assert_int_equal(out.op, cmds[i].op);
        assert_true(out.client_id == cmds[i].client_id);
        assert_true(out.seq == cmds[i].seq);
        assert_int_equal(out.key.len, cmds[i].key.len);
        if (out.key.len > 0) {
            assert_memory_equal(out.key.base, cmds[i].key.base, out.key.len);
        }
        if (out.op == QR_KV_SET) {
            assert_int_equal(out.value.len, cmds[i].value.len);
        }
        if (out.op == QR_KV_INCR) {
            assert_true(out.delta == cmds[i].delta);
        }
    }
    assert_string_equal(qr__kv_op_name(QR_KV_INCR), "incr");
    assert_string_equal(qr__kv_op_name((enum qr_kv_op)99), "?");
}

static void test_kv_codec_refuses_every_truncation_and_trailing_bytes(void **state)
{
    (void)state;
    struct qr_kv_cmd cmd = {
        .client_id = 1, .seq = 2, .op = QR_KV_SET, .key = text("key"), .value = text("value")};
    uint8_t buf[128];
    size_t n = encode(&cmd, buf, sizeof(buf) - 1);
    for (size_t len = 0; len < n; len++) {
        struct qr_kv_cmd out;
        char errmsg[QR_ERRMSG_SIZE] = "";
        assert_int_equal(qr__kv_cmd_decode(buf, len, &out, errmsg), QR_ECORRUPT);
        assert_true(strlen(errmsg) > 0);
        assert_null(out.key.base);
    }
    buf[n] = 0;
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_cmd_decode(buf, n + 1, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "trailing"));
    assert_int_equal(qr__kv_cmd_decode(NULL, 0, &out, NULL), QR_ECORRUPT);
}

static void test_kv_codec_refuses_bad_header_fields(void **state)
{
    (void)state;
    struct qr_kv_cmd cmd = {.op = QR_KV_DEL, .key = text("k")};
    uint8_t buf[64];
    size_t n = encode(&cmd, buf, sizeof(buf));
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE];
    buf[0] = 2;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_EVERSION);
    buf[0] = QR_KV_CODEC_VERSION;
    buf[1] = 0;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    buf[1] = QR_KV_OP_MAX + 1;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    buf[1] = QR_KV_DEL;
    buf[3] = 1;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "reserved"));
    buf[3] = 0;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
}

static void test_kv_codec_key_and_value_sizes_on_both_sides_of_the_limit(void **state)
{
    (void)state;
    size_t size = QR_KV_CMD_SIZE_MAX + 8;
    uint8_t *buf = qr_calloc(1, size);
    uint8_t *big = qr_calloc(1, QR_KV_VALUE_SIZE_MAX + 1);
    assert_non_null(buf);
    assert_non_null(big);
    struct qr_kv_cmd cmd = {
        .op = QR_KV_SET, .key = {big, QR_KV_KEY_SIZE_MAX}, .value = {big, QR_KV_VALUE_SIZE_MAX}};
    size_t n = encode(&cmd, buf, size);
    assert_int_equal(n, QR_KV_CMD_SIZE_MAX);
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    /* One byte more key than allowed. */
    qr__put_u32(buf + 20, QR_KV_KEY_SIZE_MAX + 1);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "key size"));
    qr__put_u32(buf + 20, QR_KV_KEY_SIZE_MAX);
    /* One byte more value than allowed. */
    qr__put_u32(buf + QR_KV_CMD_HEADER_SIZE + QR_KV_KEY_SIZE_MAX, QR_KV_VALUE_SIZE_MAX + 1);
    assert_int_equal(qr__kv_cmd_decode(buf, n + 1, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "value size"));
    qr__put_u32(buf + 20, UINT32_MAX);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    qr_free(big);
    qr_free(buf);
}

/* ---- Snapshots ----------------------------------------------------------------------- */

static struct qr_buf snapshot_of(const struct qr_kv *kv)
{
    struct qr_buf snap = {NULL, 0};
    assert_int_equal(qr__kv_snapshot(kv, &snap), 0);
    assert_non_null(snap.base);
    return snap;
}

static void test_kv_snapshot_round_trips_and_ignores_history(void **state)
{
    (void)state;
    struct qr_kv *a = kv_new(0);
    struct qr_kv *b = kv_new(0);
    run(a, QR_KV_SET, "x", "1");
    run(a, QR_KV_SET, "y", "2");
    run(a, QR_KV_SET, "xx", "3");
    run(a, QR_KV_SET, "", "empty");
    /* b reaches the same map by another road. */
    run(b, QR_KV_SET, "gone", "0");
    run(b, QR_KV_SET, "xx", "3");
    incr(b, "y", 2);
    run(b, QR_KV_SET, "", "empty");
    run(b, QR_KV_DEL, "gone", NULL);
    incr(b, "x", 1);
    struct qr_buf sa = snapshot_of(a);
    struct qr_buf sb = snapshot_of(b);
    assert_int_equal(sa.len, sb.len);
    assert_memory_equal(sa.base, sb.base, sa.len);
    struct qr_kv *c = kv_new(0);
    run(c, QR_KV_SET, "stale", "1");
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_restore(c, sa.base, sa.len, errmsg), 0);
    qr__kv_check_invariants(c);
    assert_int_equal(qr__kv_count(c), 4);
    assert_value(c, "stale", NULL);
    assert_value(c, "xx", "3");
    assert_value(c, "", "empty");
    struct qr_buf sc = snapshot_of(c);
    assert_memory_equal(sc.base, sa.base, sa.len);
    qr_free(sa.base);
    qr_free(sb.base);
    qr_free(sc.base);
    qr__kv_destroy(a);
    qr__kv_destroy(b);
    qr__kv_destroy(c);
}

static void test_kv_snapshot_of_an_empty_store_has_the_minimum_size(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    struct qr_buf snap = snapshot_of(kv);
    assert_int_equal(snap.len, QR_KV_SNAPSHOT_SIZE_MIN);
    run(kv, QR_KV_SET, "a", "b");
    assert_int_equal(qr__kv_restore(kv, snap.base, snap.len, NULL), 0);
    assert_int_equal(qr__kv_count(kv), 0);
    qr_free(snap.base);
    qr__kv_destroy(kv);
}

static void test_kv_restore_refuses_any_flipped_or_missing_byte(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    run(kv, QR_KV_SET, "alpha", "1");
    run(kv, QR_KV_SET, "beta", "22");
    struct qr_buf snap = snapshot_of(kv);
    struct qr_kv *target = kv_new(0);
    run(target, QR_KV_SET, "keep", "me");
    for (size_t i = 0; i < snap.len; i++) {
        snap.base[i] ^= 0x40;
        char errmsg[QR_ERRMSG_SIZE] = "";
        int rv = qr__kv_restore(target, snap.base, snap.len, errmsg);
        assert_true(rv == QR_ECORRUPT || rv == QR_EVERSION);
        assert_true(strlen(errmsg) > 0);
        snap.base[i] ^= 0x40;
        rv = qr__kv_restore(target, snap.base, i, errmsg);
        assert_true(rv == QR_ECORRUPT);
    }
    assert_value(target, "keep", "me");
    assert_int_equal(qr__kv_count(target), 1);
    qr_free(snap.base);
    qr__kv_destroy(kv);
    qr__kv_destroy(target);
}

/* Builds a snapshot by hand (with a valid crc) from `count` key/value pairs. */
static size_t forge_snapshot(uint8_t *buf, uint64_t count, const char *const *pairs, size_t n)
{
    memcpy(buf, "QKVS", 4);
    qr__put_u32(buf + 4, QR_KV_SNAPSHOT_VERSION);
    qr__put_u64(buf + 8, count);
    size_t at = 16;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(pairs[i]);
        qr__put_u32(buf + at, (uint32_t)len);
        memcpy(buf + at + 4, pairs[i], len);
        at += 4 + len;
    }
    qr__put_u32(buf + at, qr__crc32c(0, buf, at));
    return at + 4;
}

static void test_kv_restore_refuses_unordered_duplicate_and_too_many_keys(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(2);
    uint8_t buf[256];
    char errmsg[QR_ERRMSG_SIZE];
    static const char *const ordered[] = {"a", "1", "b", "2"};
    size_t n = forge_snapshot(buf, 2, ordered, 4);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), 0);
    static const char *const unordered[] = {"b", "1", "a", "2"};
    n = forge_snapshot(buf, 2, unordered, 4);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "out of order"));
    static const char *const duplicate[] = {"a", "1", "a", "2"};
    n = forge_snapshot(buf, 2, duplicate, 4);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), QR_ECORRUPT);
    static const char *const three[] = {"a", "1", "b", "2", "c", "3"};
    n = forge_snapshot(buf, 3, three, 6);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), QR_EBUSY);
    /* A count the bytes cannot hold is refused before anything is allocated. */
    n = forge_snapshot(buf, UINT64_MAX, ordered, 4);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), QR_ECORRUPT);
    n = forge_snapshot(buf, 1, ordered, 4);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "trailing"));
    assert_value(kv, "a", "1");
    assert_value(kv, "b", "2");
    qr__kv_destroy(kv);
}

/* ---- Out of memory -------------------------------------------------------------------- */

static void test_kv_create_fails_cleanly_without_memory(void **state)
{
    (void)state;
    for (size_t n = 1; n <= FAIL_AT_MAX; n++) {
        test_alloc_fail_at(n, false);
        struct qr_kv *kv = NULL;
        int rv = qr__kv_create(NULL, &kv);
        test_alloc_fail_at(0, false);
        if (rv == 0) {
            qr__kv_destroy(kv);
            return;
        }
        assert_int_equal(rv, QR_ENOMEM);
    }
    fail_msg("qr__kv_create never succeeded");
}

static void test_kv_apply_leaves_the_store_unchanged_without_memory(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    char key[16];
    /* Fill up to the edge of a resize so that the next insert must grow the table. */
    for (int i = 0; i < 8; i++) {
        (void)snprintf(key, sizeof(key), "k%d", i);
        run(kv, QR_KV_SET, key, "v");
    }
    for (size_t n = 1; n <= FAIL_AT_MAX; n++) {
        struct qr_kv_cmd cmd = {.op = QR_KV_SET, .key = text("new"), .value = text("x")};
        struct qr_kv_result r;
        test_alloc_fail_at(n, true);
        int rv = qr__kv_apply(kv, &cmd, &r);
        test_alloc_fail_at(0, false);
        qr__kv_check_invariants(kv);
        if (rv == 0) {
            assert_value(kv, "new", "x");
            assert_int_equal(qr__kv_count(kv), 9);
            qr__kv_destroy(kv);
            return;
        }
        assert_int_equal(rv, QR_ENOMEM);
        assert_int_equal(qr__kv_count(kv), 8);
        assert_value(kv, "new", NULL);
    }
    fail_msg("apply never succeeded");
}

static void test_kv_snapshot_and_restore_fail_cleanly_without_memory(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    run(kv, QR_KV_SET, "a", "1");
    run(kv, QR_KV_SET, "b", "2");
    struct qr_buf snap = {NULL, 0};
    size_t n = 1;
    for (; n <= FAIL_AT_MAX; n++) {
        test_alloc_fail_at(n, false);
        int rv = qr__kv_snapshot(kv, &snap);
        test_alloc_fail_at(0, false);
        if (rv == 0) {
            break;
        }
        assert_int_equal(rv, QR_ENOMEM);
    }
    assert_true(n <= FAIL_AT_MAX);
    struct qr_kv *target = kv_new(0);
    run(target, QR_KV_SET, "old", "1");
    for (n = 1; n <= FAIL_AT_MAX; n++) {
        char errmsg[QR_ERRMSG_SIZE] = "";
        test_alloc_fail_at(n, false);
        int rv = qr__kv_restore(target, snap.base, snap.len, errmsg);
        test_alloc_fail_at(0, false);
        qr__kv_check_invariants(target);
        if (rv == 0) {
            break;
        }
        assert_int_equal(rv, QR_ENOMEM);
        assert_value(target, "old", "1");
        assert_int_equal(qr__kv_count(target), 1);
    }
    assert_true(n <= FAIL_AT_MAX);
    assert_value(target, "b", "2");
    qr_free(snap.base);
    qr__kv_destroy(kv);
    qr__kv_destroy(target);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_set_get_del_answer_like_redis),
        cmocka_unit_test(test_kv_empty_key_and_empty_value_are_ordinary),
        cmocka_unit_test(test_kv_incr_counts_from_zero_and_refuses_non_integers),
        cmocka_unit_test(test_kv_incr_refuses_overflow_at_both_ends),
        cmocka_unit_test(test_kv_parse_int_accepts_only_canonical_text),
        cmocka_unit_test(test_kv_keys_max_refuses_new_keys_but_not_updates),
        cmocka_unit_test(test_kv_create_refuses_keys_max_above_the_limit),
        cmocka_unit_test(test_kv_table_survives_many_inserts_and_deletes),
        cmocka_unit_test(test_kv_codec_round_trips_every_op),
        cmocka_unit_test(test_kv_codec_refuses_every_truncation_and_trailing_bytes),
        cmocka_unit_test(test_kv_codec_refuses_bad_header_fields),
        cmocka_unit_test(test_kv_codec_key_and_value_sizes_on_both_sides_of_the_limit),
        cmocka_unit_test(test_kv_snapshot_round_trips_and_ignores_history),
        cmocka_unit_test(test_kv_snapshot_of_an_empty_store_has_the_minimum_size),
        cmocka_unit_test(test_kv_restore_refuses_any_flipped_or_missing_byte),
        cmocka_unit_test(test_kv_restore_refuses_unordered_duplicate_and_too_many_keys),
        cmocka_unit_test(test_kv_create_fails_cleanly_without_memory),
        cmocka_unit_test(test_kv_apply_leaves_the_store_unchanged_without_memory),
        cmocka_unit_test(test_kv_snapshot_and_restore_fail_cleanly_without_memory),
    };
    return cmocka_run_group_tests_name("kv", tests, test_alloc_setup, test_alloc_teardown);
}
