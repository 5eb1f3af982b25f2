/*
 * fuzz_kv: the key-value command decoder and the snapshot restore.
 *
 * The first input byte picks the target; the rest is the hostile input.
 *   bit 0 clear: qr__kv_cmd_decode; an accepted command must re-encode to the
 *         same bytes and apply without error to a small store.
 *   bit 0 set:   qr__kv_restore; an accepted snapshot must serialize back to
 *         the same bytes (the format is canonical) and leave a consistent
 *         store. With bit 1 also set, the trailing CRC is recomputed first, so
 *         that mutations reach the record parser behind the checksum.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_command(struct qr_kv *kv, const uint8_t *data, size_t size)
{
    struct qr_kv_cmd cmd;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (qr__kv_cmd_decode(data, size, &cmd, errmsg) != 0) {
        if (errmsg[0] == '\0') {
            __builtin_trap(); /* A refusal always explains itself. */
        }
        return;
    }
    if (qr__kv_cmd_encoded_size(&cmd) != size) {
        __builtin_trap();
    }
    uint8_t *again = qr_malloc(size);
    if (again == NULL) {
        return;
    }
    qr__kv_cmd_encode(&cmd, again);
    if (memcmp(again, data, size) != 0) {
        __builtin_trap();
    }
    qr_free(again);
    struct qr_kv_result result;
    if (qr__kv_apply(kv, &cmd, &result) != 0) {
        return; /* Out of memory only. */
    }
    qr__kv_check_invariants(kv);
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
    if (qr__kv_snapshot(kv, &again) == 0) {
        if (again.len != size || memcmp(again.base, data, size) != 0) {
            __builtin_trap();
        }
        qr_free(again.base);
    }
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
    if ((data[0] & 1) == 0) {
        fuzz_command(kv, data + 1, size - 1);
    } else {
        fuzz_snapshot(kv, data + 1, size - 1, (data[0] & 2) != 0);
    }
    qr__kv_destroy(kv);
    return 0;
}
