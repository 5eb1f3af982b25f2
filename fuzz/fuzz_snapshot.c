/*
 * fuzz_snapshot: the snapshot file decoder and verifier on hostile bytes.
 *
 * The first input byte holds flags, the rest is a snapshot file:
 *   bit 0: the harness recomputes the header crc (at the offset the header's
 *          own size field names), so mutations reach the fields behind it;
 *   bit 1: the harness recomputes the trailer (chunk crcs and its own crc) and
 *          the whole-data crc from the data the header describes, so
 *          verification can succeed and its success path is explored.
 * It runs qr__storage_snapshot_open and qr__storage_snapshot_verify over a
 * memory source. Any crash, sanitizer report or assertion failure is a bug, as
 * is a refusal without a message, or an accepted file whose header does not
 * re-encode to the same bytes (the format is canonical).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "quorum/storage.h"
#include "storage/format.h"
#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define INPUT_SIZE_MAX (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct memory {
    const uint8_t *base;
    size_t size;
};

static int memory_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
    const struct memory *m = ctx;
    if (offset > m->size || size > m->size - offset) {
        return -EIO;
    }
    memcpy(buf, m->base + offset, size);
    return 0;
}

static void fix_header_crc(uint8_t *buf, size_t size)
{
    if (size < 16) {
        return;
    }
    uint32_t header_size = qr__get_u32(buf + 12);
    if (header_size >= 16 && header_size <= size && header_size % 4 == 0) {
        qr__put_u32(buf + header_size - 4, qr__crc32c(0, buf, header_size - 4));
    }
}

/* Rewrites crcs in the trailer and data crc in the header to match the data. */
static void fix_data_crcs(uint8_t *buf, size_t size)
{
    if (size < QR__STORAGE_SNAPSHOT_HEADER_FIXED) {
        return;
    }
    uint32_t header_size = qr__get_u32(buf + 12);
    uint64_t data_size = qr__get_u64(buf + 48);
    uint32_t chunk = qr__get_u32(buf + 60);
    if (chunk < QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MIN || header_size > size ||
        data_size > size - header_size) {
        return;
    }
    uint64_t chunks = qr__storage_snapshot_chunks_count(data_size, chunk);
    uint64_t trailer = qr__storage_snapshot_trailer_size(chunks);
    if (trailer > size - header_size - data_size) {
        return;
    }
    const uint8_t *d = buf + header_size;
    uint8_t *t = buf + header_size + data_size;
    for (uint64_t i = 0; i < chunks; i++) {
        uint64_t len = data_size - i * chunk < chunk ? data_size - i * chunk : chunk;
        qr__put_u32(t + i * 4, qr__crc32c(0, d + i * chunk, (size_t)len));
    }
    qr__put_u32(t + trailer - 8, (uint32_t)chunks);
    qr__put_u32(t + trailer - 4, qr__crc32c(0, t, (size_t)trailer - 4));
    qr__put_u32(buf + 56, qr__crc32c(0, d, (size_t)data_size));
}

static void check_canonical(const uint8_t *buf, const struct qr__storage_snapshot_header *h)
{
    uint8_t again[QR__STORAGE_SNAPSHOT_HEADER_SIZE_MAX];
    if (h->header_size > sizeof(again)) {
        __builtin_trap();
    }
    qr__storage_snapshot_header_encode(h, again);
    if (memcmp(again, buf, h->header_size) != 0) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_SIZE_MAX) {
        return 0;
    }
    static uint8_t file[INPUT_SIZE_MAX];
    size_t file_size = size - 1;
    memcpy(file, data + 1, file_size);
    if ((data[0] & 2) != 0) {
        fix_data_crcs(file, file_size);
    }
    if ((data[0] & 1) != 0) {
        fix_header_crc(file, file_size);
    }
    struct memory m = {file, file_size};
    struct qr__storage_source source = {.ctx = &m, .size = file_size, .read = memory_read};
    struct qr__storage_snapshot_header h;
    uint32_t *crcs = NULL;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__storage_snapshot_open(&source, &h, &crcs, errmsg);
    if (rv == 0) {
        check_canonical(file, &h);
        uint64_t chunk = h.meta.size < h.chunk_size ? h.meta.size : h.chunk_size;
        uint8_t *buf = qr_malloc((size_t)(chunk > 0 ? chunk : 1));
        if (buf != NULL) {
            rv = qr__storage_snapshot_verify(&source, &h, crcs, buf,
                                             (size_t)(chunk > 0 ? chunk : 1), errmsg);
            qr_free(buf);
        }
        qr_free(crcs);
    }
    if (rv != 0 && errmsg[0] == '\0') {
        __builtin_trap(); /* A refusal always explains itself. */
    }
    return 0;
}
