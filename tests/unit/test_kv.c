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

static struct qr_kv_result apply_cmd(struct qr_kv *kv, const struct qr_kv_cmd *cmd)
{
    struct qr_kv_result result;
    assert_int_equal(qr__kv_apply(kv, cmd, &result), 0);
    qr__kv_check_invariants(kv);
    return result;
}

static struct qr_kv_result
set_with(struct qr_kv *kv, const char *key, const char *v, uint32_t flags)
{
    struct qr_kv_cmd cmd = {.op = QR_KV_SET, .flags = flags, .key = text(key), .value = text(v)};
    return apply_cmd(kv, &cmd);
}

static void assert_integer(struct qr_kv_result r, int64_t expected)
{
    assert_int_equal(r.status, QR_KV_INTEGER);
    assert_int_equal(r.integer, expected);
}

static void assert_error(struct qr_kv_result r, enum qr_kv_error expected)
{
    assert_int_equal(r.status, QR_KV_ERROR);
    assert_int_equal(r.error, expected);
}

/* An answer carrying `expected` as its value, or NOTFOUND (nil) when expected is NULL. */
static void assert_answer(struct qr_kv_result r, const char *expected)
{
    if (expected == NULL) {
        assert_int_equal(r.status, QR_KV_NOTFOUND);
        return;
    }
    assert_int_equal(r.status, QR_KV_VALUE);
    assert_int_equal(r.value.len, strlen(expected));
    assert_memory_equal(r.value.base, expected, r.value.len);
}

static struct qr_kv_result
member(struct qr_kv *kv, uint64_t id, const char *peer_address, const char *client_address)
{
    struct qr_kv_cmd cmd = {.op = QR_KV_MEMBER,
                            .member_id = id,
                            .key = text(peer_address),
                            .value = text(client_address)};
    return apply_cmd(kv, &cmd);
}

static struct qr_kv_result
with_items(struct qr_kv *kv, enum qr_kv_op op, const char *const *items, size_t count)
{
    struct qr_buf bufs[16];
    assert_true(count <= 16);
    for (size_t i = 0; i < count; i++) {
        bufs[i] = text(items[i]);
    }
    struct qr_kv_cmd cmd = {.op = op, .items = bufs, .items_count = count};
    return apply_cmd(kv, &cmd);
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
    buf[0] = QR_KV_CODEC_VERSION + 1;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_EVERSION);
    assert_non_null(strstr(errmsg, "offset 0"));
    buf[0] = 0;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_EVERSION);
    buf[0] = QR_KV_CODEC_VERSION;
    buf[1] = 0;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    buf[1] = QR_KV_OP_MAX + 1;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    buf[1] = QR_KV_DEL;
    /* Version 2 calls bytes 2..3 flags: bits DEL does not know are refused. */
    buf[3] = 1;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "offset 2: flags"));
    /* Version 1 calls them reserved. */
    buf[0] = 1;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "reserved"));
    buf[3] = 0;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    buf[0] = QR_KV_CODEC_VERSION;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
}

static void test_kv_codec_key_and_value_sizes_on_both_sides_of_the_limit(void **state)
{
    (void)state;
    size_t size = QR_KV_CMD_HEADER_SIZE + QR_KV_KEY_SIZE_MAX + 4 + QR_KV_VALUE_SIZE_MAX + 8;
    uint8_t *buf = qr_calloc(1, size);
    uint8_t *big = qr_calloc(1, QR_KV_VALUE_SIZE_MAX + 1);
    assert_non_null(buf);
    assert_non_null(big);
    struct qr_kv_cmd cmd = {
        .op = QR_KV_SET, .key = {big, QR_KV_KEY_SIZE_MAX}, .value = {big, QR_KV_VALUE_SIZE_MAX}};
    size_t n = encode(&cmd, buf, size);
    assert_int_equal(n, QR_KV_CMD_HEADER_SIZE + QR_KV_KEY_SIZE_MAX + 4 + QR_KV_VALUE_SIZE_MAX);
    assert_true(n <= QR_KV_CMD_SIZE_MAX);
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

static void test_kv_snapshot_of_an_empty_store_is_header_members_count_and_crc(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    struct qr_buf snap = snapshot_of(kv);
    assert_int_equal(snap.len, QR_KV_SNAPSHOT_SIZE_MIN + 4);
    assert_int_equal(qr__get_u32(snap.base + 4), QR_KV_SNAPSHOT_VERSION);
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
    assert_int_equal(member(kv, 4, "10.0.0.4:7000", "10.0.0.4:6379").status, QR_KV_OK);
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

/* Builds a version 1 snapshot (no member table) by hand, with a valid crc, from `count`
 * key/value pairs: what earlier builds wrote. */
static size_t forge_snapshot(uint8_t *buf, uint64_t count, const char *const *pairs, size_t n)
{
    memcpy(buf, "QKVS", 4);
    qr__put_u32(buf + 4, 1);
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
    member(kv, 8, "p8", "c8"); /* The member table is one more allocation to fail. */
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
        assert_int_equal(qr__kv_members_count(target), 0);
    }
    assert_true(n <= FAIL_AT_MAX);
    assert_value(target, "b", "2");
    assert_int_equal(qr__kv_members_count(target), 1);
    qr_free(snap.base);
    qr__kv_destroy(kv);
    qr__kv_destroy(target);
}

/* ---- The commands of codec version 2 ---------------------------------------------------- */

static void test_kv_set_nx_and_xx_answer_nil_when_their_condition_fails(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    assert_int_equal(set_with(kv, "a", "1", QR_KV_SET_XX).status, QR_KV_NOTFOUND);
    assert_value(kv, "a", NULL); /* XX never creates. */
    assert_int_equal(set_with(kv, "a", "1", QR_KV_SET_NX).status, QR_KV_OK);
    assert_value(kv, "a", "1");
    assert_int_equal(set_with(kv, "a", "2", QR_KV_SET_NX).status, QR_KV_NOTFOUND);
    assert_value(kv, "a", "1"); /* NX never overwrites. */
    assert_int_equal(set_with(kv, "a", "3", QR_KV_SET_XX).status, QR_KV_OK);
    assert_value(kv, "a", "3");
    assert_int_equal(qr__kv_count(kv), 1);
    qr__kv_destroy(kv);
}

static void test_kv_set_get_answers_the_old_value_whether_or_not_it_set(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    /* Plain GET: nil when absent (and it sets), the old value when present. */
    assert_answer(set_with(kv, "a", "1", QR_KV_SET_GET), NULL);
    assert_value(kv, "a", "1");
    struct qr_kv_result r = set_with(kv, "a", "2", QR_KV_SET_GET);
    assert_answer(r, "1");
    /* The old value is still readable after a GET (which changes nothing). */
    assert_value(kv, "a", "2");
    assert_answer(r, "1");
    /* NX GET: on a present key the old value, and nothing changes. */
    assert_answer(set_with(kv, "a", "x", QR_KV_SET_NX | QR_KV_SET_GET), "2");
    assert_value(kv, "a", "2");
    assert_answer(set_with(kv, "b", "x", QR_KV_SET_NX | QR_KV_SET_GET), NULL);
    assert_value(kv, "b", "x");
    /* XX GET: nil and no key when absent; the old value and the update when present. */
    assert_answer(set_with(kv, "c", "x", QR_KV_SET_XX | QR_KV_SET_GET), NULL);
    assert_value(kv, "c", NULL);
    assert_answer(set_with(kv, "b", "y", QR_KV_SET_XX | QR_KV_SET_GET), "x");
    assert_value(kv, "b", "y");
    /* GET of an empty old value is a value, not nil. */
    set_with(kv, "e", "", 0);
    assert_answer(set_with(kv, "e", "z", QR_KV_SET_GET), "");
    assert_int_equal(qr__kv_count(kv), 3);
    qr__kv_destroy(kv);
}

static void test_kv_set_with_flags_still_refuses_new_keys_past_keys_max(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(1);
    set_with(kv, "a", "1", 0);
    assert_error(set_with(kv, "b", "1", QR_KV_SET_NX), QR_KV_ERROR_KEYS_MAX);
    assert_error(set_with(kv, "b", "1", QR_KV_SET_GET), QR_KV_ERROR_KEYS_MAX);
    assert_answer(set_with(kv, "a", "2", QR_KV_SET_XX | QR_KV_SET_GET), "1");
    assert_int_equal(qr__kv_count(kv), 1);
    qr__kv_destroy(kv);
}

static void test_kv_del_of_many_keys_counts_each_removed_key_once(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    set_with(kv, "a", "1", 0);
    set_with(kv, "b", "2", 0);
    set_with(kv, "c", "3", 0);
    static const char *const keys[] = {"a", "missing", "b", "a", ""};
    assert_integer(with_items(kv, QR_KV_DEL, keys, 5), 2);
    assert_value(kv, "a", NULL);
    assert_value(kv, "b", NULL);
    assert_value(kv, "c", "3");
    static const char *const one[] = {"c"};
    assert_integer(with_items(kv, QR_KV_DEL, one, 1), 1);
    assert_integer(with_items(kv, QR_KV_DEL, one, 1), 0);
    assert_int_equal(qr__kv_count(kv), 0);
    qr__kv_destroy(kv);
}

static void test_kv_append_creates_grows_and_refuses_past_the_value_limit(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(2);
    struct qr_kv_cmd cmd = {.op = QR_KV_APPEND, .key = text("a"), .value = text("hello")};
    assert_integer(apply_cmd(kv, &cmd), 5); /* Absent counts as "". */
    cmd.value = text(" world");
    assert_integer(apply_cmd(kv, &cmd), 11);
    assert_value(kv, "a", "hello world");
    cmd.key = text("e");
    cmd.value = text("");
    assert_integer(apply_cmd(kv, &cmd), 0); /* As Redis: the empty key now exists. */
    assert_value(kv, "e", "");
    cmd.key = text("full");
    assert_error(apply_cmd(kv, &cmd), QR_KV_ERROR_KEYS_MAX);
    /* Both sides of QR_KV_VALUE_SIZE_MAX. */
    uint8_t *big = qr_calloc(1, QR_KV_VALUE_SIZE_MAX);
    assert_non_null(big);
    struct qr_kv_cmd set = {
        .op = QR_KV_SET, .key = text("e"), .value = {big, QR_KV_VALUE_SIZE_MAX - 1}};
    apply_cmd(kv, &set);
    cmd.key = text("e");
    cmd.value = text("xy");
    struct qr_kv_result r = apply_cmd(kv, &cmd);
    assert_error(r, QR_KV_ERROR_VALUE_TOO_BIG);
    assert_string_equal(qr__kv_error_text(r.error), "ERR string exceeds maximum allowed size");
    cmd.value = text("x");
    assert_integer(apply_cmd(kv, &cmd), QR_KV_VALUE_SIZE_MAX);
    cmd.value = text("");
    assert_integer(apply_cmd(kv, &cmd), QR_KV_VALUE_SIZE_MAX);
    cmd.value = text("x");
    assert_error(apply_cmd(kv, &cmd), QR_KV_ERROR_VALUE_TOO_BIG);
    struct qr_buf value;
    assert_true(qr__kv_get(kv, text("e"), &value));
    assert_int_equal(value.len, QR_KV_VALUE_SIZE_MAX);
    assert_int_equal(value.base[QR_KV_VALUE_SIZE_MAX - 1], 'x');
    qr_free(big);
    qr__kv_destroy(kv);
}

static void test_kv_mset_stores_every_pair_and_the_last_duplicate_wins(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    set_with(kv, "b", "old", 0);
    static const char *const pairs[] = {"a", "1", "b", "2", "a", "3", "", "empty"};
    assert_int_equal(with_items(kv, QR_KV_MSET, pairs, 8).status, QR_KV_OK);
    assert_value(kv, "a", "3");
    assert_value(kv, "b", "2");
    assert_value(kv, "", "empty");
    assert_int_equal(qr__kv_count(kv), 3);
    qr__kv_destroy(kv);
}

static void test_kv_mset_past_keys_max_changes_nothing(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(3);
    set_with(kv, "x", "0", 0);
    /* Two new keys, one of them named twice: 1 + 2 = 3 keys, within the limit. */
    static const char *const fits[] = {"a", "1", "a", "2", "b", "3", "x", "4"};
    assert_int_equal(with_items(kv, QR_KV_MSET, fits, 8).status, QR_KV_OK);
    assert_int_equal(qr__kv_count(kv), 3);
    assert_value(kv, "a", "2");
    assert_value(kv, "x", "4");
    /* One new key too many: refused whole, even the update of x. */
    static const char *const over[] = {"x", "5", "c", "1", "a", "6"};
    assert_error(with_items(kv, QR_KV_MSET, over, 6), QR_KV_ERROR_KEYS_MAX);
    assert_value(kv, "x", "4");
    assert_value(kv, "a", "2");
    assert_value(kv, "c", NULL);
    assert_int_equal(qr__kv_count(kv), 3);
    /* Updates only: fine at the limit. */
    static const char *const updates[] = {"x", "5", "b", "6", "x", "7"};
    assert_int_equal(with_items(kv, QR_KV_MSET, updates, 6).status, QR_KV_OK);
    assert_value(kv, "x", "7");
    assert_value(kv, "b", "6");
    qr__kv_destroy(kv);
}

static void test_kv_mset_grows_the_table_once_for_many_new_keys(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    enum { PAIRS = 300 };
    static char names[PAIRS][16];
    struct qr_buf items[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "key-%d", i);
        items[2 * i] = text(names[i]);
        items[2 * i + 1] = text(names[i]);
    }
    struct qr_kv_cmd cmd = {.op = QR_KV_MSET, .items = items, .items_count = 2 * PAIRS};
    assert_int_equal(apply_cmd(kv, &cmd).status, QR_KV_OK);
    assert_int_equal(qr__kv_count(kv), PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        assert_value(kv, names[i], names[i]);
    }
    qr__kv_destroy(kv);
}

static struct qr_kv_result
cas(struct qr_kv *kv, const char *key, const char *expected, const char *value, uint32_t flags)
{
    struct qr_kv_cmd cmd = {.op = QR_KV_CAS,
                            .flags = flags,
                            .key = text(key),
                            .expected = text(expected),
                            .value = text(value)};
    return apply_cmd(kv, &cmd);
}

static struct qr_kv_result cad(struct qr_kv *kv, const char *key, const char *expected)
{
    struct qr_kv_cmd cmd = {.op = QR_KV_CAD, .key = text(key), .expected = text(expected)};
    return apply_cmd(kv, &cmd);
}

static void test_kv_cas_sets_only_when_the_key_holds_what_is_expected(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(2);
    assert_integer(cas(kv, "a", "", "1", 0), 0); /* Absent is not "". */
    assert_value(kv, "a", NULL);
    assert_integer(cas(kv, "a", "", "1", QR_KV_CAS_ABSENT), 1);
    assert_value(kv, "a", "1");
    assert_integer(cas(kv, "a", "", "2", QR_KV_CAS_ABSENT), 0);
    assert_integer(cas(kv, "a", "2", "3", 0), 0);
    assert_value(kv, "a", "1");
    assert_integer(cas(kv, "a", "1", "", 0), 1);
    assert_value(kv, "a", "");
    assert_integer(cas(kv, "a", "", "4", 0), 1); /* Present and "": that holds. */
    assert_value(kv, "a", "4");
    set_with(kv, "b", "x", 0);
    assert_error(cas(kv, "c", "", "1", QR_KV_CAS_ABSENT), QR_KV_ERROR_KEYS_MAX);
    assert_int_equal(qr__kv_count(kv), 2);
    qr__kv_destroy(kv);
}

static void test_kv_cad_deletes_only_when_the_key_holds_what_is_expected(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    assert_integer(cad(kv, "a", ""), 0);
    set_with(kv, "a", "lock-owner-1", 0);
    assert_integer(cad(kv, "a", "lock-owner-2"), 0);
    assert_integer(cad(kv, "a", "lock-owner-"), 0);
    assert_value(kv, "a", "lock-owner-1");
    assert_integer(cad(kv, "a", "lock-owner-1"), 1);
    assert_value(kv, "a", NULL);
    assert_integer(cad(kv, "a", "lock-owner-1"), 0);
    set_with(kv, "e", "", 0);
    assert_integer(cad(kv, "e", ""), 1);
    assert_int_equal(qr__kv_count(kv), 0);
    qr__kv_destroy(kv);
}

static void
assert_member(struct qr_kv *kv, size_t i, uint64_t id, const char *peer, const char *client)
{
    struct qr_kv_member m;
    qr__kv_member_at(kv, i, &m);
    assert_true(m.id == id);
    assert_int_equal(m.peer_address.len, strlen(peer));
    assert_memory_equal(m.peer_address.base, peer, strlen(peer));
    assert_int_equal(m.client_address.len, strlen(client));
    assert_memory_equal(m.client_address.base, client, strlen(client));
}

static void test_kv_member_upserts_sorted_by_id_and_empty_addresses_remove(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    assert_int_equal(qr__kv_members_count(kv), 0);
    assert_int_equal(member(kv, 3, "h3:7000", "h3:6379").status, QR_KV_OK);
    assert_int_equal(member(kv, 1, "h1:7000", "").status, QR_KV_OK);
    assert_int_equal(member(kv, UINT64_MAX, "", "hmax:6379").status, QR_KV_OK);
    assert_int_equal(member(kv, 2, "h2:7000", "h2:6379").status, QR_KV_OK);
    assert_int_equal(qr__kv_members_count(kv), 4);
    assert_member(kv, 0, 1, "h1:7000", "");
    assert_member(kv, 1, 2, "h2:7000", "h2:6379");
    assert_member(kv, 2, 3, "h3:7000", "h3:6379");
    assert_member(kv, 3, UINT64_MAX, "", "hmax:6379");
    /* Upsert replaces both addresses. */
    assert_int_equal(member(kv, 2, "moved:7001", "moved:6380").status, QR_KV_OK);
    assert_member(kv, 1, 2, "moved:7001", "moved:6380");
    /* Both empty: forget; forgetting an unknown member is fine too. */
    assert_int_equal(member(kv, 2, "", "").status, QR_KV_OK);
    assert_int_equal(member(kv, 99, "", "").status, QR_KV_OK);
    assert_int_equal(qr__kv_members_count(kv), 3);
    assert_member(kv, 1, 3, "h3:7000", "h3:6379");
    /* Members are not keys. */
    assert_int_equal(qr__kv_count(kv), 0);
    assert_value(kv, "h3:7000", NULL);
    qr__kv_destroy(kv);
}

static void test_kv_member_table_refuses_a_new_member_past_the_limit(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    for (uint64_t id = 1; id <= QR_KV_MEMBERS_MAX; id++) {
        assert_int_equal(member(kv, id * 10, "peer", "client").status, QR_KV_OK);
    }
    struct qr_kv_result r = member(kv, 5, "peer", "client");
    assert_error(r, QR_KV_ERROR_MEMBERS_MAX);
    assert_string_equal(qr__kv_error_text(r.error), "ERR too many cluster members");
    assert_int_equal(qr__kv_members_count(kv), QR_KV_MEMBERS_MAX);
    /* Updating or removing an existing member still works at the limit. */
    assert_int_equal(member(kv, 10, "p", "c").status, QR_KV_OK);
    assert_member(kv, 0, 10, "p", "c");
    assert_int_equal(member(kv, 20, "", "").status, QR_KV_OK);
    assert_int_equal(member(kv, 5, "peer", "client").status, QR_KV_OK);
    assert_member(kv, 0, 5, "peer", "client");
    /* The longest address fits; the decoder refuses longer ones. */
    char longest[QR_KV_ADDRESS_SIZE_MAX + 1];
    memset(longest, 'a', QR_KV_ADDRESS_SIZE_MAX);
    longest[QR_KV_ADDRESS_SIZE_MAX] = '\0';
    assert_int_equal(member(kv, 5, longest, longest).status, QR_KV_OK);
    assert_member(kv, 0, 5, longest, longest);
    qr__kv_destroy(kv);
}

static void test_kv_error_texts_and_op_names_cover_every_value(void **state)
{
    (void)state;
    static const char *const names[] = {"set",  "get", "del", "incr",  "append",
                                        "mset", "cas", "cad", "member"};
    for (int op = QR_KV_SET; op <= QR_KV_OP_MAX; op++) {
        assert_string_equal(qr__kv_op_name((enum qr_kv_op)op), names[op - 1]);
    }
    assert_string_equal(qr__kv_op_name((enum qr_kv_op)0), "?");
    assert_string_equal(qr__kv_error_text(QR_KV_ERROR_KEYS_MAX), "ERR too many keys");
    assert_string_equal(qr__kv_error_text(QR_KV_ERROR_OVERFLOW),
                        "ERR increment or decrement would overflow");
    for (int e = QR_KV_ERROR_NOT_INTEGER; e <= QR_KV_ERROR_MEMBERS_MAX; e++) {
        assert_memory_equal(qr__kv_error_text((enum qr_kv_error)e), "ERR ", 4);
    }
    assert_string_equal(qr__kv_error_text((enum qr_kv_error)99), "ERR unknown error");
}

/* ---- Codec version 2 ------------------------------------------------------------------ */

static const struct qr_buf del_items[] = {{(uint8_t *)"a", 1}, {NULL, 0}, {(uint8_t *)"a", 1}};
static const struct qr_buf mset_items[] = {
    {(uint8_t *)"k1", 2}, {(uint8_t *)"v1", 2}, {(uint8_t *)"k2", 2}, {NULL, 0}};

#define SAMPLES_COUNT 15

/* One command of every op and form, with flags where the op has them. */
static void samples(struct qr_kv_cmd *out)
{
    struct qr_kv_cmd cmds[SAMPLES_COUNT] = {
        {.client_id = 7, .seq = 99, .op = QR_KV_SET, .key = text("k"), .value = text("v")},
        {.client_id = 1,
         .seq = 2,
         .op = QR_KV_SET,
         .flags = QR_KV_SET_NX | QR_KV_SET_GET,
         .key = text("k"),
         .value = text("v")},
        {.client_id = 1,
         .seq = 3,
         .op = QR_KV_SET,
         .flags = QR_KV_SET_XX,
         .key = text(""),
         .value = text("")},
        {.client_id = UINT64_MAX, .seq = 0, .op = QR_KV_GET, .key = text("key")},
        {.client_id = 0, .seq = 1, .op = QR_KV_DEL, .key = text("")},
        {.client_id = 5, .seq = 6, .op = QR_KV_DEL, .items = del_items, .items_count = 3},
        {.client_id = 3, .seq = 4, .op = QR_KV_INCR, .key = text("n"), .delta = INT64_MIN},
        {.client_id = 3, .seq = 5, .op = QR_KV_APPEND, .key = text("k"), .value = text("tail")},
        {.client_id = 3, .seq = 6, .op = QR_KV_MSET, .items = mset_items, .items_count = 4},
        {.client_id = 3,
         .seq = 7,
         .op = QR_KV_CAS,
         .key = text("k"),
         .expected = text("v"),
         .value = text("w")},
        {.client_id = 3,
         .seq = 8,
         .op = QR_KV_CAS,
         .flags = QR_KV_CAS_ABSENT,
         .key = text("z"),
         .value = text("new")},
        {.client_id = 3, .seq = 9, .op = QR_KV_CAD, .key = text("k"), .expected = text("w")},
        {.client_id = 3,
         .seq = 10,
         .op = QR_KV_MEMBER,
         .member_id = 2,
         .key = text("h:7000"),
         .value = text("h:6379")},
        {.client_id = 3,
         .seq = 11,
         .op = QR_KV_MEMBER,
         .member_id = UINT64_MAX,
         .key = text(""),
         .value = text("")},
        {.client_id = 3, .seq = 12, .op = QR_KV_CAD, .key = text("e"), .expected = text("")},
    };
    memcpy(out, cmds, sizeof(cmds));
}

static void assert_buf_equal(struct qr_buf a, struct qr_buf b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_memory_equal(a.base, b.base, a.len);
    }
}

static void assert_decoded_equal(const struct qr_kv_cmd *out, const struct qr_kv_cmd *in)
{
    assert_int_equal(out->op, in->op);
    assert_int_equal(out->flags, in->flags);
    assert_true(out->client_id == in->client_id && out->seq == in->seq);
    assert_true(out->delta == in->delta && out->member_id == in->member_id);
    assert_buf_equal(out->value, in->value);
    assert_buf_equal(out->expected, in->expected);
    assert_int_equal(out->items_count, in->items_count);
    assert_null(out->items);
    if (in->items_count == 0) {
        assert_buf_equal(out->key, in->key);
        assert_int_equal(out->packed.len, 0);
        return;
    }
    struct qr_buf rest = out->packed;
    struct qr_buf item;
    for (size_t i = 0; i < in->items_count; i++) {
        assert_true(qr__kv_items_next(&rest, &item));
        assert_buf_equal(item, in->items[i]);
    }
    assert_false(qr__kv_items_next(&rest, &item));
}

static void test_kv_codec_v2_round_trips_every_op_and_form(void **state)
{
    (void)state;
    struct qr_kv_cmd cmds[SAMPLES_COUNT];
    samples(cmds);
    struct qr_kv *by_array = kv_new(0);
    struct qr_kv *by_bytes = kv_new(0);
    uint8_t buf[256];
    uint8_t again[256];
    for (size_t i = 0; i < SAMPLES_COUNT; i++) {
        size_t n = encode(&cmds[i], buf, sizeof(buf));
        assert_int_equal(buf[0], QR_KV_CODEC_VERSION);
        struct qr_kv_cmd out;
        char errmsg[QR_ERRMSG_SIZE] = "";
        assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
        assert_decoded_equal(&out, &cmds[i]);
        /* A decoded command (packed items) encodes to the same bytes. */
        assert_int_equal(qr__kv_cmd_encoded_size(&out), n);
        qr__kv_cmd_encode(&out, again);
        assert_memory_equal(again, buf, n);
        /* Both forms apply alike. */
        struct qr_kv_result a = apply_cmd(by_array, &cmds[i]);
        struct qr_kv_result b = apply_cmd(by_bytes, &out);
        assert_int_equal(a.status, b.status);
        assert_true(a.integer == b.integer);
    }
    struct qr_buf sa = snapshot_of(by_array);
    struct qr_buf sb = snapshot_of(by_bytes);
    assert_buf_equal(sa, sb);
    qr_free(sa.base);
    qr_free(sb.base);
    qr__kv_destroy(by_array);
    qr__kv_destroy(by_bytes);
}

static void test_kv_codec_refuses_truncation_at_every_offset_of_every_op(void **state)
{
    (void)state;
    struct qr_kv_cmd cmds[SAMPLES_COUNT];
    samples(cmds);
    uint8_t buf[256];
    for (size_t i = 0; i < SAMPLES_COUNT; i++) {
        size_t n = encode(&cmds[i], buf, sizeof(buf) - 1);
        for (size_t len = 0; len < n; len++) {
            struct qr_kv_cmd out;
            char errmsg[QR_ERRMSG_SIZE] = "";
            assert_int_equal(qr__kv_cmd_decode(buf, len, &out, errmsg), QR_ECORRUPT);
            assert_true(strlen(errmsg) > 0);
            assert_int_equal(out.op, 0);
        }
        buf[n] = 0;
        struct qr_kv_cmd out;
        char errmsg[QR_ERRMSG_SIZE] = "";
        assert_int_equal(qr__kv_cmd_decode(buf, n + 1, &out, errmsg), QR_ECORRUPT);
        assert_non_null(strstr(errmsg, "trailing"));
    }
}

/* Encodes `cmd`, lets `poke` damage it, and expects QR_ECORRUPT naming `what`. */
static void assert_refused(const struct qr_kv_cmd *cmd, size_t at, uint8_t byte, const char *what)
{
    uint8_t buf[512];
    size_t n = encode(cmd, buf, sizeof(buf));
    assert_true(at < n);
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    buf[at] = byte;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    if (strstr(errmsg, what) == NULL) {
        fail_msg("expected \"%s\" in \"%s\"", what, errmsg);
    }
}

static void test_kv_codec_refuses_bad_flags(void **state)
{
    (void)state;
    struct qr_kv_cmd cmds[SAMPLES_COUNT];
    samples(cmds);
    const struct qr_kv_cmd *set = &cmds[0];
    assert_refused(set, 2, QR_KV_SET_NX | QR_KV_SET_XX, "nx and xx");
    assert_refused(set, 2, QR_KV_SET_NX | QR_KV_SET_XX | QR_KV_SET_GET, "nx and xx");
    assert_refused(set, 2, 0x08, "flags 0x8 unknown for set");
    assert_refused(set, 3, 0x01, "flags 0x100 unknown");
    assert_refused(set, 3, 0x80, "set cannot carry items"); /* The ITEMS bit. */
    assert_refused(&cmds[3], 2, QR_KV_SET_NX, "unknown for get");
    assert_refused(&cmds[9], 2, 0x02, "unknown for cas");
    assert_refused(&cmds[11], 2, 0x01, "unknown for cad");
    assert_refused(&cmds[12], 3, 0x80, "member cannot carry items");
    assert_refused(&cmds[8], 3, 0x00, "mset needs items");
    assert_refused(&cmds[5], 2, 0x01, "unknown for del");
    /* CAS expecting absence may not also expect a value. */
    assert_refused(&cmds[9], 2, QR_KV_CAS_ABSENT, "expects absence and a value");
}

static void test_kv_codec_refuses_bad_item_counts_sizes_and_member_fields(void **state)
{
    (void)state;
    struct qr_kv_cmd cmds[SAMPLES_COUNT];
    samples(cmds);
    const struct qr_kv_cmd *del = &cmds[5];
    const struct qr_kv_cmd *mset = &cmds[8];
    assert_refused(del, 20, 0, "0 items, expected 1");
    assert_refused(mset, 20, 0, "0 items, expected 2");
    assert_refused(mset, 20, 3, "odd");
    assert_refused(mset, 20, 5, "odd");
    assert_refused(mset, 20, 6, "truncated");
    assert_refused(del, 20, 4, "key size truncated");
    assert_refused(del, 23, 0x10, "items, expected"); /* 2^28 items. */
    assert_refused(del, 24, 0xff, "truncated");       /* First key claims 255 bytes. */
    assert_refused(del, 26, 0x10, "key size");        /* First key claims 2^20 bytes. */
    assert_refused(mset, 32, 0x20, "value size");     /* First value claims 2^21 bytes. */
    const struct qr_kv_cmd *member_cmd = &cmds[12];
    assert_refused(member_cmd, 20, 0xff, "peer address of 255 bytes truncated");
    assert_refused(member_cmd, 21, 0x01, "peer address size 262 exceeds 255");
    assert_refused(member_cmd, 31, 0x01, "client address size 262 exceeds 255");
    /* Member id 0 is refused; the id is the last 8 bytes. */
    uint8_t buf[128];
    size_t n = encode(member_cmd, buf, sizeof(buf));
    memset(buf + n - 8, 0, 8);
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "member id 0"));
}

static void test_kv_codec_item_limits_on_both_sides(void **state)
{
    (void)state;
    /* QR_KV_ITEMS_MAX empty keys: 4 bytes each, well within QR_KV_ITEMS_SIZE_MAX. */
    size_t size = QR_KV_CMD_HEADER_SIZE + 4 * ((size_t)QR_KV_ITEMS_MAX + 1);
    uint8_t *buf = qr_calloc(1, size);
    assert_non_null(buf);
    buf[0] = QR_KV_CODEC_VERSION;
    buf[1] = QR_KV_DEL;
    buf[3] = 0x80;
    qr__put_u32(buf + 20, QR_KV_ITEMS_MAX);
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_cmd_decode(buf, size - 4, &out, errmsg), 0);
    assert_int_equal(out.items_count, QR_KV_ITEMS_MAX);
    struct qr_kv *kv = kv_new(0);
    set_with(kv, "", "x", 0);
    assert_integer(apply_cmd(kv, &out), 1);
    qr__put_u32(buf + 20, QR_KV_ITEMS_MAX + 1);
    assert_int_equal(qr__kv_cmd_decode(buf, size, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "items, expected"));
    qr_free(buf);
    /* The whole command: QR_KV_CMD_SIZE_MAX bytes decode, one more is refused. */
    buf = qr_calloc(1, QR_KV_CMD_SIZE_MAX + 1);
    assert_non_null(buf);
    buf[0] = QR_KV_CODEC_VERSION;
    buf[1] = QR_KV_MSET;
    buf[3] = 0x80;
    size_t items_size = QR_KV_ITEMS_SIZE_MAX;
    uint32_t pairs = 0;
    size_t at = QR_KV_CMD_HEADER_SIZE;
    while (items_size - (at - QR_KV_CMD_HEADER_SIZE) > 0) {
        size_t left = items_size - (at - QR_KV_CMD_HEADER_SIZE);
        size_t value_size = left - 8 < QR_KV_VALUE_SIZE_MAX ? left - 8 : QR_KV_VALUE_SIZE_MAX;
        qr__put_u32(buf + at, 0); /* Empty keys: the MSET's last pair wins. */
        qr__put_u32(buf + at + 4, (uint32_t)value_size);
        at += 8 + value_size;
        pairs++;
    }
    qr__put_u32(buf + 20, 2 * pairs);
    assert_int_equal(at, QR_KV_CMD_SIZE_MAX);
    assert_int_equal(qr__kv_cmd_decode(buf, at, &out, errmsg), 0);
    assert_int_equal(qr__kv_cmd_encoded_size(&out), QR_KV_CMD_SIZE_MAX);
    assert_int_equal(apply_cmd(kv, &out).status, QR_KV_OK);
    assert_int_equal(qr__kv_count(kv), 1);
    assert_int_equal(qr__kv_cmd_decode(buf, at + 1, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "exceeds"));
    qr_free(buf);
    qr__kv_destroy(kv);
}

/* Builds a version 1 command by hand, as earlier builds wrote it. */
static size_t
v1_command(uint8_t *buf, uint8_t op, const char *key, const uint8_t *tail, size_t tail_size)
{
    size_t key_size = strlen(key);
    buf[0] = 1;
    buf[1] = op;
    buf[2] = 0;
    buf[3] = 0;
    qr__put_u64(buf + 4, 42);
    qr__put_u64(buf + 12, 7);
    qr__put_u32(buf + 20, (uint32_t)key_size);
    memcpy(buf + 24, key, key_size);
    if (tail_size > 0) {
        memcpy(buf + 24 + key_size, tail, tail_size);
    }
    return 24 + key_size + tail_size;
}

static void test_kv_codec_decodes_hand_built_version_1_commands(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    uint8_t buf[64];
    uint8_t again[64];
    uint8_t tail[8];
    struct qr_kv_cmd out;
    char errmsg[QR_ERRMSG_SIZE] = "";
    qr__put_u32(tail, 2);
    memcpy(tail + 4, "41", 2);
    size_t n = v1_command(buf, 1, "n", tail, 6);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    assert_int_equal(out.op, QR_KV_SET);
    assert_int_equal(out.flags, 0);
    assert_true(out.client_id == 42 && out.seq == 7);
    assert_int_equal(apply_cmd(kv, &out).status, QR_KV_OK);
    /* Re-encoded, it is the same command in version 2: only byte 0 differs. */
    assert_int_equal(qr__kv_cmd_encoded_size(&out), n);
    qr__kv_cmd_encode(&out, again);
    assert_int_equal(again[0], 2);
    assert_memory_equal(again + 1, buf + 1, n - 1);
    qr__put_u64(tail, 1);
    n = v1_command(buf, 4, "n", tail, 8);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    assert_integer(apply_cmd(kv, &out), 42);
    n = v1_command(buf, 2, "n", NULL, 0);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    assert_answer(apply_cmd(kv, &out), "42");
    n = v1_command(buf, 3, "n", NULL, 0);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), 0);
    assert_int_equal(out.items_count, 0);
    assert_integer(apply_cmd(kv, &out), 1);
    /* Version 1 knows no op past INCR and no flags. */
    n = v1_command(buf, QR_KV_APPEND, "n", NULL, 0);
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "offset 1: unknown op 5 for version 1"));
    n = v1_command(buf, 2, "n", NULL, 0);
    buf[2] = QR_KV_SET_NX;
    assert_int_equal(qr__kv_cmd_decode(buf, n, &out, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "reserved"));
    qr__kv_destroy(kv);
}

/* Every sample command, plus the checked-in version 1 seeds, applied one after another. */
static void test_kv_snapshot_v2_is_identical_for_identical_states(void **state)
{
    (void)state;
    struct qr_kv *a = kv_new(0);
    struct qr_kv *b = kv_new(0);
    member(a, 9, "n9:7000", "n9:6379");
    member(a, 2, "n2:7000", "");
    set_with(a, "k", "v", 0);
    /* b gets there by another road. */
    set_with(b, "k", "other", 0);
    member(b, 2, "n2:7000", "n2:6379");
    member(b, 5, "n5:7000", "n5:6379");
    member(b, 9, "n9:7000", "n9:6379");
    member(b, 5, "", "");
    member(b, 2, "n2:7000", "");
    set_with(b, "k", "v", QR_KV_SET_XX);
    struct qr_buf sa = snapshot_of(a);
    struct qr_buf sb = snapshot_of(b);
    assert_buf_equal(sa, sb);
    struct qr_kv *c = kv_new(0);
    member(c, 1, "stale", "stale");
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_restore(c, sa.base, sa.len, errmsg), 0);
    qr__kv_check_invariants(c);
    assert_int_equal(qr__kv_members_count(c), 2);
    assert_member(c, 0, 2, "n2:7000", "");
    assert_member(c, 1, 9, "n9:7000", "n9:6379");
    struct qr_buf sc = snapshot_of(c);
    assert_buf_equal(sc, sa);
    qr_free(sa.base);
    qr_free(sb.base);
    qr_free(sc.base);
    qr__kv_destroy(a);
    qr__kv_destroy(b);
    qr__kv_destroy(c);
}

static void test_kv_restore_accepts_version_1_and_clears_the_member_table(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    member(kv, 1, "old", "old");
    uint8_t buf[128];
    static const char *const pairs[] = {"a", "1", "b", "2"};
    size_t n = forge_snapshot(buf, 2, pairs, 4);
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), 0);
    qr__kv_check_invariants(kv);
    assert_int_equal(qr__kv_members_count(kv), 0);
    assert_value(kv, "a", "1");
    assert_value(kv, "b", "2");
    /* Written back, it is version 2: the same keys and an empty member table. */
    struct qr_buf snap = snapshot_of(kv);
    assert_int_equal(snap.len, n + 4);
    assert_int_equal(qr__get_u32(snap.base + 4), 2);
    assert_memory_equal(snap.base + 8, buf + 8, n - 12);
    assert_int_equal(qr__get_u32(snap.base + n - 4), 0);
    qr_free(snap.base);
    /* The empty version 1 snapshot is the smallest there is. */
    n = forge_snapshot(buf, 0, NULL, 0);
    assert_int_equal(n, QR_KV_SNAPSHOT_SIZE_MIN);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), 0);
    assert_int_equal(qr__kv_count(kv), 0);
    qr__kv_destroy(kv);
}

/* A version 2 snapshot with one key and the given member records, with a valid crc. */
struct forged_member {
    uint64_t id;
    uint32_t peer_size;
    uint32_t client_size;
};

static size_t
forge_snapshot_v2(uint8_t *buf, uint32_t count, const struct forged_member *members, size_t n)
{
    memcpy(buf, "QKVS", 4);
    qr__put_u32(buf + 4, 2);
    qr__put_u64(buf + 8, 1);
    size_t at = 16;
    qr__put_u32(buf + at, 1);
    buf[at + 4] = 'k';
    qr__put_u32(buf + at + 5, 1);
    buf[at + 9] = 'v';
    at += 10;
    qr__put_u32(buf + at, count);
    at += 4;
    for (size_t i = 0; i < n; i++) {
        qr__put_u64(buf + at, members[i].id);
        qr__put_u32(buf + at + 8, members[i].peer_size);
        at += 12;
        memset(buf + at, 'p', members[i].peer_size);
        at += members[i].peer_size;
        qr__put_u32(buf + at, members[i].client_size);
        at += 4;
        memset(buf + at, 'c', members[i].client_size);
        at += members[i].client_size;
    }
    qr__put_u32(buf + at, qr__crc32c(0, buf, at));
    return at + 4;
}

static void assert_restore_refused(struct qr_kv *kv, const uint8_t *buf, size_t n, const char *what)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), QR_ECORRUPT);
    if (strstr(errmsg, what) == NULL) {
        fail_msg("expected \"%s\" in \"%s\"", what, errmsg);
    }
    qr__kv_check_invariants(kv);
}

static void test_kv_restore_refuses_hostile_member_tables(void **state)
{
    (void)state;
    struct qr_kv *kv = kv_new(0);
    member(kv, 7, "keep", "me");
    static uint8_t buf[QR_KV_MEMBERS_MAX * 600];
    struct forged_member ok[] = {{1, 3, 0}, {2, 0, 3}, {UINT64_MAX, 255, 255}};
    size_t n = forge_snapshot_v2(buf, 3, ok, 3);
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), 0);
    assert_int_equal(qr__kv_members_count(kv), 3);
    member(kv, 7, "keep", "me");
    struct forged_member unordered[] = {{2, 1, 1}, {1, 1, 1}};
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 2, unordered, 2), "out of order");
    struct forged_member duplicate[] = {{2, 1, 1}, {2, 1, 1}};
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 2, duplicate, 2), "out of order");
    struct forged_member zero[] = {{0, 1, 1}};
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 1, zero, 1), "member id 0");
    struct forged_member long_peer[] = {{1, 256, 1}};
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 1, long_peer, 1),
                           "peer address size 256 exceeds 255");
    struct forged_member long_client[] = {{1, 1, 256}};
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 1, long_client, 1),
                           "client address size 256 exceeds 255");
    struct forged_member empty[] = {{1, 0, 0}};
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 1, empty, 1), "no address");
    struct forged_member many[QR_KV_MEMBERS_MAX + 1];
    for (size_t i = 0; i <= QR_KV_MEMBERS_MAX; i++) {
        many[i] = (struct forged_member){i + 1, 1, 1};
    }
    n = forge_snapshot_v2(buf, QR_KV_MEMBERS_MAX, many, QR_KV_MEMBERS_MAX);
    assert_int_equal(qr__kv_restore(kv, buf, n, errmsg), 0);
    assert_int_equal(qr__kv_members_count(kv), QR_KV_MEMBERS_MAX);
    member(kv, 7, "keep", "me");
    n = forge_snapshot_v2(buf, QR_KV_MEMBERS_MAX + 1, many, QR_KV_MEMBERS_MAX + 1);
    assert_restore_refused(kv, buf, n, "65 members exceed 64");
    /* A count that claims more members than follow; and bytes after the last member. */
    assert_restore_refused(kv, buf, forge_snapshot_v2(buf, 2, ok, 1), "member id truncated");
    n = forge_snapshot_v2(buf, 1, ok, 2);
    assert_restore_refused(kv, buf, n, "trailing");
    /* A version 2 snapshot without its members count. */
    n = forge_snapshot(buf, 0, NULL, 0);
    qr__put_u32(buf + 4, 2);
    qr__put_u32(buf + n - 4, qr__crc32c(0, buf, n - 4));
    assert_restore_refused(kv, buf, n, "no members count");
    assert_int_equal(qr__kv_members_count(kv), QR_KV_MEMBERS_MAX);
    qr__kv_destroy(kv);
}

/* ---- Scans ------------------------------------------------------------------------------ */

#define SCAN_IDS_COUNT 4096

/* What the store should hold, and what the current walk has visited. */
struct scan_model {
    uint32_t visits[SCAN_IDS_COUNT]; /* Times each id was visited during this walk. */
    bool is_present[SCAN_IDS_COUNT]; /* In the store now. */
    bool is_stable[SCAN_IDS_COUNT];  /* Present since the walk began and never removed. */
    uint64_t rng;                    /* xorshift64 state. */
};

static uint64_t model_next(struct scan_model *m)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

/* Keys are "k<id>" and hold "<id>", so that a visit names its id. */
static void scan_visit(void *ctx, struct qr_buf key, struct qr_buf value)
{
    struct scan_model *m = ctx;
    int64_t id = -1;
    assert_true(qr__kv_parse_int(value.base, value.len, &id));
    assert_true(id >= 0 && id < SCAN_IDS_COUNT);
    assert_true(key.len == value.len + 1 && key.base[0] == 'k');
    assert_memory_equal(key.base + 1, value.base, value.len);
    assert_true(m->is_present[id]); /* Only what the store holds right now. */
    m->visits[id]++;
}

static void model_set(struct qr_kv *kv, struct scan_model *m, uint32_t id)
{
    char key[16];
    char value[16];
    (void)snprintf(key, sizeof(key), "k%u", (unsigned)id);
    (void)snprintf(value, sizeof(value), "%u", (unsigned)id);
    struct qr_kv_cmd cmd = {.op = QR_KV_SET, .key = text(key), .value = text(value)};
    struct qr_kv_result r;
    assert_int_equal(qr__kv_apply(kv, &cmd, &r), 0);
    m->is_present[id] = true;
}

static void model_del(struct qr_kv *kv, struct scan_model *m, uint32_t id)
{
    char key[16];
    (void)snprintf(key, sizeof(key), "k%u", (unsigned)id);
    struct qr_kv_cmd cmd = {.op = QR_KV_DEL, .key = text(key)};
    struct qr_kv_result r;
    assert_int_equal(qr__kv_apply(kv, &cmd, &r), 0);
    assert_int_equal(r.integer, m->is_present[id] ? 1 : 0);
    m->is_present[id] = false;
    m->is_stable[id] = false;
}

/* A snapshot and restore rebuilds the table at the size its count needs: it may shrink. */
static void model_rebuild(struct qr_kv *kv)
{
    struct qr_buf snap = snapshot_of(kv);
    assert_int_equal(qr__kv_restore(kv, snap.base, snap.len, NULL), 0);
    qr_free(snap.base);
}

static void model_walk_begin(struct scan_model *m)
{
    for (size_t i = 0; i < SCAN_IDS_COUNT; i++) {
        m->visits[i] = 0;
        m->is_stable[i] = m->is_present[i];
    }
}

/* Every key visited at most once; every key present throughout visited. */
static void model_walk_check(const struct scan_model *m)
{
    for (size_t i = 0; i < SCAN_IDS_COUNT; i++) {
        assert_true(m->visits[i] <= 1);
        if (m->is_stable[i]) {
            assert_int_equal(m->visits[i], 1);
        }
    }
}

/* One scan call; the cursor only ever moves forward until it wraps to 0. */
static uint64_t scan_step(struct qr_kv *kv, struct scan_model *m, uint64_t cursor, size_t count)
{
    uint64_t next = qr__kv_scan(kv, cursor, count, scan_visit, m);
    assert_true(next == 0 || next > cursor);
    return next;
}

static void test_kv_scan_of_a_static_table_visits_each_key_exactly_once(void **state)
{
    (void)state;
    static struct scan_model m;
    static const uint32_t sizes[] = {0, 1, 7, 8, 9, 100, 1000, 4096};
    static const size_t counts[] = {1, 3, 10, 1000, SIZE_MAX};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct qr_kv *kv = kv_new(0);
        memset(&m, 0, sizeof(m));
        for (uint32_t id = 0; id < sizes[s]; id++) {
            model_set(kv, &m, id);
        }
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
            model_walk_begin(&m);
            uint64_t cursor = 0;
            size_t calls = 0;
            do {
                cursor = scan_step(kv, &m, cursor, counts[c]);
                calls++;
                assert_true(calls <= 2 * (size_t)SCAN_IDS_COUNT + 16);
            } while (cursor != 0);
            model_walk_check(&m);
            for (uint32_t id = 0; id < sizes[s]; id++) {
                assert_int_equal(m.visits[id], 1);
            }
            if (counts[c] == SIZE_MAX) {
                assert_int_equal(calls, 1); /* Asked for everything: one call. */
            }
        }
        qr__kv_destroy(kv);
    }
}

/* Random inserts, deletes and rebuilds between the calls of many walks. */
static void test_kv_scan_guarantee_holds_across_inserts_deletes_and_resizes(void **state)
{
    (void)state;
    static struct scan_model m;
    memset(&m, 0, sizeof(m));
    m.rng = UINT64_C(0x9e3779b97f4a7c15);
    struct qr_kv *kv = kv_new(0);
    for (int walk = 0; walk < 120; walk++) {
        /* Walks alternate between growing (to force resizes) and shrinking phases. */
        unsigned insert_percent = (walk / 4) % 2 == 0 ? 75 : 25;
        size_t count = (size_t)(1 + model_next(&m) % 16);
        model_walk_begin(&m);
        uint64_t cursor = 0;
        size_t calls = 0;
        do {
            cursor = scan_step(kv, &m, cursor, count);
            calls++;
            assert_true(calls < 100000);
            uint64_t ops = model_next(&m) % 12;
            for (uint64_t i = 0; i < ops; i++) {
                uint32_t id = (uint32_t)(model_next(&m) % SCAN_IDS_COUNT);
                uint64_t dice = model_next(&m) % 1000;
                if (dice < 10 * insert_percent) {
                    model_set(kv, &m, id);
                } else if (dice < 995) {
                    model_del(kv, &m, id);
                } else {
                    model_rebuild(kv);
                }
            }
        } while (cursor != 0);
        qr__kv_check_invariants(kv);
        model_walk_check(&m);
    }
    qr__kv_destroy(kv);
}

/* A copy of kv.c's key hash, used only to build probe runs that wrap past the last slot.
 * If the two ever differ, the first assertion below says so. */
static uint64_t test_key_hash(const char *key)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; key[i] != '\0'; i++) {
        h ^= (uint8_t)key[i];
        h *= UINT64_C(0x100000001b3);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

/* Ids whose key "k<id>" has its home slot (top 4 bits: 16 slots) equal to `home`. */
static size_t ids_with_home(unsigned home, uint32_t *ids, size_t ids_count)
{
    size_t n = 0;
    for (uint32_t id = 0; id < SCAN_IDS_COUNT && n < ids_count; id++) {
        char key[16];
        (void)snprintf(key, sizeof(key), "k%u", (unsigned)id);
        if (test_key_hash(key) >> 60 == home) {
            ids[n++] = id;
        }
    }
    assert_int_equal(n, ids_count);
    return n;
}

static void test_kv_scan_follows_probe_runs_that_wrap_past_the_last_slot(void **state)
{
    (void)state;
    static struct scan_model m;
    memset(&m, 0, sizeof(m));
    uint32_t last[6];
    uint32_t first[2];
    ids_with_home(15, last, 6);
    ids_with_home(0, first, 2);
    struct qr_kv *kv = kv_new(0);
    for (size_t i = 0; i < 6; i++) {
        model_set(kv, &m, last[i]);
    }
    /* All six live in slot 15 and, wrapped, slots 0..4: one call at slot 15 finds them. */
    model_walk_begin(&m);
    assert_int_equal(scan_step(kv, &m, UINT64_C(15) << 60, 1), 0);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(m.visits[last[i]], 1);
    }
    /* Keys homed at slot 0 now sit behind the wrapped ones. */
    model_set(kv, &m, first[0]);
    model_set(kv, &m, first[1]);
    qr__kv_check_invariants(kv);
    for (size_t count = 1; count <= 4; count++) {
        model_walk_begin(&m);
        uint64_t cursor = 0;
        do {
            cursor = scan_step(kv, &m, cursor, count);
        } while (cursor != 0);
        model_walk_check(&m);
    }
    /* Deleting inside the wrapped run shifts items back across the end of the table. */
    model_walk_begin(&m);
    uint64_t cursor = scan_step(kv, &m, 0, 1);
    model_del(kv, &m, last[0]);
    model_del(kv, &m, first[0]);
    qr__kv_check_invariants(kv);
    while (cursor != 0) {
        cursor = scan_step(kv, &m, cursor, 1);
    }
    model_walk_check(&m);
    qr__kv_destroy(kv);
}

static void test_kv_scan_accepts_any_cursor_and_count(void **state)
{
    (void)state;
    static struct scan_model m;
    memset(&m, 0, sizeof(m));
    m.rng = 12345;
    struct qr_kv *kv = kv_new(0);
    for (uint32_t id = 0; id < 300; id++) {
        model_set(kv, &m, id);
    }
    assert_int_equal(scan_step(kv, &m, UINT64_MAX, 1), 0);
    for (int i = 0; i < 200; i++) {
        uint64_t cursor = model_next(&m);
        size_t calls = 0;
        while (cursor != 0) {
            cursor = scan_step(kv, &m, cursor, (size_t)(i % 3)); /* 0 counts as 1. */
            calls++;
            assert_true(calls <= 1024);
        }
    }
    /* An empty store's walk is one call. */
    struct qr_kv *empty = kv_new(0);
    assert_int_equal(qr__kv_scan(empty, 0, 10, scan_visit, &m), 0);
    qr__kv_destroy(empty);
    qr__kv_destroy(kv);
}

/* ---- Glob matching ---------------------------------------------------------------------- */

struct match_case {
    const char *pattern;
    const char *text;
    bool is_match;
};

static void test_kv_match_follows_redis_glob_rules(void **state)
{
    (void)state;
    static const struct match_case cases[] = {
        {"*", "", true},
        {"*", "anything", true},
        {"**", "", true},
        {"", "", true},
        {"", "a", false},
        {"a", "", false},
        {"h?llo", "hello", true},
        {"h?llo", "hallo", true},
        {"h?llo", "hllo", false},
        {"h*llo", "hllo", true},
        {"h*llo", "heeeello", true},
        {"h*llo", "hello!", false},
        {"h[ae]llo", "hello", true},
        {"h[ae]llo", "hallo", true},
        {"h[ae]llo", "hillo", false},
        {"h[^e]llo", "hallo", true},
        {"h[^e]llo", "hello", false},
        {"h[a-b]llo", "hbllo", true},
        {"h[a-b]llo", "hcllo", false},
        {"[b-a]", "a", true}, /* Reversed bounds are swapped. */
        {"[a-]", "_", true},  /* Redis: '-' then ']' is a range a..']', i.e. ']'..'a'. */
        {"[a-]", "-", false},
        {"[a-", "-", true}, /* No room for a range: literals, then the pattern ends. */
        {"h\\*llo", "h*llo", true},
        {"h\\*llo", "hello", false},
        {"[\\]]", "]", true},
        {"[\\-]", "-", true},
        {"[]", "]", false}, /* An empty set matches nothing... */
        {"[]]", "]", false},
        {"[^]", "x", true},  /* ...and its negation anything. */
        {"[abc", "c", true}, /* An unterminated set ends with the pattern. */
        {"[", "[", false},
        {"[^", "x", true},
        {"a\\", "a\\", true}, /* A final lone backslash is itself. */
        {"\\a", "a", true},
        {"*a*b*c*", "xxaxxbxxcxx", true},
        {"*a*b*c*", "xxaxxcxxbxx", false},
        {"a*b", "ab", true},
        {"a*b", "a", false},
        {"*.txt", "notes.txt", true},
        {"*.txt", "notes.txt.bak", false},
        {"user:*:name", "user:42:name", true},
        {"user:*:name", "user:42:email", false},
        {"*?", "", false},
        {"?*", "x", true},
        {"[0-9][0-9]*", "42abc", true},
        {"[0-9][0-9]*", "4a", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct match_case *c = &cases[i];
        bool is_match = qr__kv_match((const uint8_t *)c->pattern, strlen(c->pattern),
                                     (const uint8_t *)c->text, strlen(c->text));
        if (is_match != c->is_match) {
            fail_msg("match(\"%s\", \"%s\") gave %d", c->pattern, c->text, (int)is_match);
        }
    }
    assert_true(qr__kv_match(NULL, 0, NULL, 0));
    static const uint8_t high_pattern[] = {'[', 0x80, '-', 0xff, ']'};
    static const uint8_t high_text[] = {0xc3};
    assert_true(qr__kv_match(high_pattern, 5, high_text, 1)); /* Bytes compare unsigned. */
}

static void test_kv_match_takes_polynomial_time_on_hostile_patterns(void **state)
{
    (void)state;
    /* Exponential with naive recursion: many stars against a long near-miss. */
    char pattern[256];
    char text[QR_KV_KEY_SIZE_MAX];
    size_t p = 0;
    for (int i = 0; i < 100; i++) {
        pattern[p++] = 'a';
        pattern[p++] = '*';
    }
    pattern[p++] = 'b';
    memset(text, 'a', sizeof(text));
    assert_false(qr__kv_match((const uint8_t *)pattern, p, (const uint8_t *)text, sizeof(text)));
    text[sizeof(text) - 1] = 'b';
    assert_true(qr__kv_match((const uint8_t *)pattern, p, (const uint8_t *)text, sizeof(text)));
}

/* ---- Out of memory, new commands ------------------------------------------------------- */

/* A store with 8 keys: the next new key must grow the table. */
static struct qr_kv *store_at_resize_edge(void)
{
    struct qr_kv *kv = kv_new(0);
    char key[16];
    for (int i = 0; i < 8; i++) {
        (void)snprintf(key, sizeof(key), "k%d", i);
        run(kv, QR_KV_SET, key, "v");
    }
    member(kv, 3, "p3", "c3");
    return kv;
}

/* Fail the Nth allocation (once, or for good) for N = 1, 2, ... until `cmd` applies: each
 * failure must leave the store exactly as it was. Answers the successful result. */
static struct qr_kv_result
apply_until_memory_suffices(struct qr_kv *kv, const struct qr_kv_cmd *cmd, bool is_sticky)
{
    struct qr_buf before = snapshot_of(kv);
    uint64_t count = qr__kv_count(kv);
    for (size_t n = 1; n <= FAIL_AT_MAX; n++) {
        struct qr_kv_result r;
        test_alloc_fail_at(n, is_sticky);
        int rv = qr__kv_apply(kv, cmd, &r);
        test_alloc_fail_at(0, false);
        qr__kv_check_invariants(kv);
        if (rv == 0) {
            qr_free(before.base);
            return r;
        }
        assert_int_equal(rv, QR_ENOMEM);
        assert_int_equal(qr__kv_count(kv), count);
        struct qr_buf after = snapshot_of(kv);
        assert_buf_equal(after, before);
        qr_free(after.base);
    }
    fail_msg("apply never succeeded");
    return (struct qr_kv_result){0};
}

static void test_kv_new_commands_leave_the_store_unchanged_without_memory(void **state)
{
    (void)state;
    static const struct qr_buf pairs[] = {{(uint8_t *)"k0", 2}, {(uint8_t *)"new0", 4},
                                          {(uint8_t *)"n1", 2}, {(uint8_t *)"x", 1},
                                          {(uint8_t *)"n2", 2}, {(uint8_t *)"y", 1}};
    struct qr_kv_cmd mset = {.op = QR_KV_MSET, .items = pairs, .items_count = 6};
    struct qr_kv_cmd append_new = {.op = QR_KV_APPEND, .key = text("fresh"), .value = text("a")};
    struct qr_kv_cmd append_old = {.op = QR_KV_APPEND, .key = text("k1"), .value = text("++")};
    struct qr_kv_cmd set_get = {
        .op = QR_KV_SET, .flags = QR_KV_SET_GET, .key = text("k2"), .value = text("w")};
    struct qr_kv_cmd cas_absent = {
        .op = QR_KV_CAS, .flags = QR_KV_CAS_ABSENT, .key = text("c"), .value = text("1")};
    struct qr_kv_cmd first_member = {
        .op = QR_KV_MEMBER, .member_id = 1, .key = text("p1"), .value = text("c1")};
    for (int sticky = 0; sticky <= 1; sticky++) {
        struct qr_kv *kv = store_at_resize_edge();
        assert_int_equal(apply_until_memory_suffices(kv, &mset, sticky).status, QR_KV_OK);
        assert_int_equal(qr__kv_count(kv), 10);
        assert_value(kv, "k0", "new0");
        assert_value(kv, "n2", "y");
        qr__kv_destroy(kv);

        kv = store_at_resize_edge();
        assert_integer(apply_until_memory_suffices(kv, &append_new, sticky), 1);
        assert_integer(apply_until_memory_suffices(kv, &append_old, sticky), 3);
        assert_value(kv, "k1", "v++");
        assert_answer(apply_until_memory_suffices(kv, &set_get, sticky), "v");
        assert_value(kv, "k2", "w");
        assert_integer(apply_until_memory_suffices(kv, &cas_absent, sticky), 1);
        qr__kv_destroy(kv);

        /* The member table is allocated once, by the first member. */
        kv = kv_new(0);
        assert_int_equal(apply_until_memory_suffices(kv, &first_member, sticky).status, QR_KV_OK);
        assert_int_equal(qr__kv_members_count(kv), 1);
        first_member.member_id = 2;
        test_alloc_fail_at(1, true);
        assert_int_equal(member(kv, 2, "p2", "c2").status, QR_KV_OK); /* Needs no memory. */
        test_alloc_fail_at(0, false);
        first_member.member_id = 1;
        qr__kv_destroy(kv);
    }
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
        cmocka_unit_test(test_kv_snapshot_of_an_empty_store_is_header_members_count_and_crc),
        cmocka_unit_test(test_kv_restore_refuses_any_flipped_or_missing_byte),
        cmocka_unit_test(test_kv_restore_refuses_unordered_duplicate_and_too_many_keys),
        cmocka_unit_test(test_kv_create_fails_cleanly_without_memory),
        cmocka_unit_test(test_kv_apply_leaves_the_store_unchanged_without_memory),
        cmocka_unit_test(test_kv_snapshot_and_restore_fail_cleanly_without_memory),
        cmocka_unit_test(test_kv_set_nx_and_xx_answer_nil_when_their_condition_fails),
        cmocka_unit_test(test_kv_set_get_answers_the_old_value_whether_or_not_it_set),
        cmocka_unit_test(test_kv_set_with_flags_still_refuses_new_keys_past_keys_max),
        cmocka_unit_test(test_kv_del_of_many_keys_counts_each_removed_key_once),
        cmocka_unit_test(test_kv_append_creates_grows_and_refuses_past_the_value_limit),
        cmocka_unit_test(test_kv_mset_stores_every_pair_and_the_last_duplicate_wins),
        cmocka_unit_test(test_kv_mset_past_keys_max_changes_nothing),
        cmocka_unit_test(test_kv_mset_grows_the_table_once_for_many_new_keys),
        cmocka_unit_test(test_kv_cas_sets_only_when_the_key_holds_what_is_expected),
        cmocka_unit_test(test_kv_cad_deletes_only_when_the_key_holds_what_is_expected),
        cmocka_unit_test(test_kv_member_upserts_sorted_by_id_and_empty_addresses_remove),
        cmocka_unit_test(test_kv_member_table_refuses_a_new_member_past_the_limit),
        cmocka_unit_test(test_kv_error_texts_and_op_names_cover_every_value),
        cmocka_unit_test(test_kv_codec_v2_round_trips_every_op_and_form),
        cmocka_unit_test(test_kv_codec_refuses_truncation_at_every_offset_of_every_op),
        cmocka_unit_test(test_kv_codec_refuses_bad_flags),
        cmocka_unit_test(test_kv_codec_refuses_bad_item_counts_sizes_and_member_fields),
        cmocka_unit_test(test_kv_codec_item_limits_on_both_sides),
        cmocka_unit_test(test_kv_codec_decodes_hand_built_version_1_commands),
        cmocka_unit_test(test_kv_snapshot_v2_is_identical_for_identical_states),
        cmocka_unit_test(test_kv_restore_accepts_version_1_and_clears_the_member_table),
        cmocka_unit_test(test_kv_restore_refuses_hostile_member_tables),
        cmocka_unit_test(test_kv_scan_of_a_static_table_visits_each_key_exactly_once),
        cmocka_unit_test(test_kv_scan_guarantee_holds_across_inserts_deletes_and_resizes),
        cmocka_unit_test(test_kv_scan_follows_probe_runs_that_wrap_past_the_last_slot),
        cmocka_unit_test(test_kv_scan_accepts_any_cursor_and_count),
        cmocka_unit_test(test_kv_match_follows_redis_glob_rules),
        cmocka_unit_test(test_kv_match_takes_polynomial_time_on_hostile_patterns),
        cmocka_unit_test(test_kv_new_commands_leave_the_store_unchanged_without_memory),
    };
    return cmocka_run_group_tests_name("kv", tests, test_alloc_setup, test_alloc_teardown);
}
