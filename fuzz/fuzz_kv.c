/*
 * fuzz_kv: the key-value command decoder, apply, snapshot and restore.
 *
 * The low two bits of the first input byte pick the target; the rest is the hostile input.
 *   0: qr__kv_cmd_decode of one command; an accepted command must re-encode to the
 *      same bytes (a version 1 command to the same bytes in version 2, which differ
 *      only in byte 0) and apply without error to a small store.
 *   2: a sequence of commands, each a u16 little-endian size then that many bytes,
 *      decoded and applied in turn to one small store (every op, the member table, the
 *      limits); then the store is snapshotted, restored into a second store and
 *      snapshotted again (the bytes must agree), walked with qr__kv_scan (every key
 *      exactly once) and matched against the first command's key as a glob pattern.
 *   1: qr__kv_restore; an accepted snapshot must serialize back to the same bytes (the
 *      format is canonical) and leave a consistent store. Version 1 snapshots are
 *      accepted and written back as version 2, so only version 2 must round-trip.
 *   3: as 1, but the trailing CRC is recomputed first, so that mutations reach the
 *      record parser behind the checksum.
 * Any crash, sanitizer report, assertion failure or broken round trip is a bug.
 */
#include <stdint.h>
#include <string.h>

#include "kv/kv.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define INPUT_SIZE_MAX (1u << 16)
#define FUZZ_KEYS_MAX  64
/* The first command of a sequence that the store's keys are matched against. */
#define PATTERN_SIZE_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every byte of an answer's value, so that a stale view trips the sanitizer. */
static uint32_t result_touch(const struct qr_kv_result *result)
{
    uint32_t sum = 0;
    if (result->status == QR_KV_VALUE) {
        for (size_t i = 0; i < result->value.len; i++) {
            sum += result->value.base[i];
        }
    }
    return sum;
}

/* Decode, re-encode, apply. Answers whether the command was accepted. */
static bool fuzz_command(struct qr_kv *kv, const uint8_t *data, size_t size, struct qr_kv_cmd *out)
{
    struct qr_kv_cmd cmd;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (qr__kv_cmd_decode(data, size, &cmd, errmsg) != 0) {
        if (errmsg[0] == '\0') {
            __builtin_trap(); /* A refusal always explains itself. */
        }
        return false;
    }
    if (qr__kv_cmd_encoded_size(&cmd) != size) {
        __builtin_trap();
    }
    uint8_t *again = qr_malloc(size);
    if (again == NULL) {
        return false;
    }
    qr__kv_cmd_encode(&cmd, again);
    if (again[0] != QR_KV_CODEC_VERSION || memcmp(again + 1, data + 1, size - 1) != 0) {
        __builtin_trap();
    }
    qr_free(again);
    struct qr_kv_result result;
    if (qr__kv_apply(kv, &cmd, &result) == 0) {
        (void)result_touch(&result); /* The sum is irrelevant; reading the bytes is the point. */
    }
    qr__kv_check_invariants(kv);
    if (out != NULL) {
        *out = cmd;
    }
    return true;
}

static void scan_count(void *ctx, struct qr_buf key, struct qr_buf value)
{
    (void)key;
    (void)value;
    *(uint64_t *)ctx += 1;
}

/* Snapshot, restore elsewhere, snapshot again: the same bytes; then a full scan. */
static void fuzz_cross_check(struct qr_kv *kv, size_t scan_count_hint)
{
    struct qr_buf first;
    if (qr__kv_snapshot(kv, &first) != 0) {
        return;
    }
    struct qr_kv_opts opts = {.keys_max = FUZZ_KEYS_MAX};
    struct qr_kv *copy = NULL;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (qr__kv_create(&opts, &copy) == 0) {
        if (qr__kv_restore(copy, first.base, first.len, errmsg) != 0) {
            __builtin_trap(); /* Our own snapshot is always accepted. */
        }
        qr__kv_check_invariants(copy);
        struct qr_buf second;
        if (qr__kv_snapshot(copy, &second) == 0) {
            if (second.len != first.len || memcmp(second.base, first.base, first.len) != 0) {
                __builtin_trap();
            }
            qr_free(second.base);
        }
        if (qr__kv_members_count(copy) != qr__kv_members_count(kv)) {
            __builtin_trap();
        }
        qr__kv_destroy(copy);
    }
    qr_free(first.base);
    uint64_t visited = 0;
    uint64_t cursor = 0;
    do {
        cursor = qr__kv_scan(kv, cursor, scan_count_hint, scan_count, &visited);
    } while (cursor != 0);
    if (visited != qr__kv_count(kv)) {
        __builtin_trap(); /* A static table: every key exactly once. */
    }
}

static void match_each(void *ctx, struct qr_buf key, struct qr_buf value)
{
    const struct qr_buf *pattern = ctx;
    (void)value;
    (void)qr__kv_match(pattern->base, pattern->len, key.base, key.len); /* Must not crash. */
}

static void fuzz_sequence(struct qr_kv *kv, const uint8_t *data, size_t size)
{
    struct qr_buf pattern = {NULL, 0};
    size_t at = 0;
    while (size - at >= 2) {
        size_t cmd_size = data[at] | (size_t)data[at + 1] << 8;
        at += 2;
        if (cmd_size > size - at) {
            break;
        }
        struct qr_kv_cmd cmd;
        if (fuzz_command(kv, data + at, cmd_size, &cmd) && pattern.base == NULL &&
            cmd.key.len > 0 && cmd.key.len <= PATTERN_SIZE_MAX) {
            pattern = cmd.key;
        }
        at += cmd_size;
    }
    fuzz_cross_check(kv, size % 7);
    if (pattern.base != NULL) {
        (void)qr__kv_scan(kv, 0, FUZZ_KEYS_MAX, match_each, &pattern);
    }
}

static void fuzz_snapshot(struct qr_kv *kv, const uint8_t *data, size_t size, bool is_crc_fixed)
{
    uint8_t *copy = NULL;
    if (is_crc_fixed && size >= 4) {
        copy = qr_malloc(size);
        if (copy == NULL) {
            return;
        }
        memcpy(copy, data, size);
        qr__put_u32(copy + size - 4, qr__crc32c(0, copy, size - 4));
        data = copy;
    }
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__kv_restore(kv, data, size, errmsg);
    qr__kv_check_invariants(kv);
    if (rv != 0) {
        if (errmsg[0] == '\0') {
            __builtin_trap();
        }
        qr_free(copy);
        return;
    }
    struct qr_buf again;
    if (qr__get_u32(data + 4) == QR_KV_SNAPSHOT_VERSION && qr__kv_snapshot(kv, &again) == 0) {
        if (again.len != size || memcmp(again.base, data, size) != 0) {
            __builtin_trap();
        }
        qr_free(again.base);
    }
    fuzz_cross_check(kv, 3);
    qr_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > INPUT_SIZE_MAX) {
        return 0;
    }
    struct qr_kv_opts opts = {.keys_max = FUZZ_KEYS_MAX};
    struct qr_kv *kv = NULL;
    if (qr__kv_create(&opts, &kv) != 0) {
        return 0;
    }
    switch (data[0] & 3) {
    case 0:
        (void)fuzz_command(kv, data + 1, size - 1, NULL); /* Accepted or not, both are fine. */
        break;
    case 2:
        fuzz_sequence(kv, data + 1, size - 1);
        break;
    default:
        fuzz_snapshot(kv, data + 1, size - 1, (data[0] & 2) != 0);
        break;
    }
    qr__kv_destroy(kv);
    return 0;
}
