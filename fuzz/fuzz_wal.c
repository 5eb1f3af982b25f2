/*
 * fuzz_wal: recovery of a write-ahead log segment from hostile bytes.
 *
 * The first input byte holds flags, the rest becomes segment file
 * wal-00000000000000000001 of an otherwise valid data directory on the
 * in-memory file system, which is then opened (full recovery: header, batch
 * checks, replay, torn-tail judgement, truncation):
 *   bit 0: the harness writes a valid segment header and the input is the
 *          batch area after it;
 *   bit 1: the harness recomputes every batch's header and body crc (walking
 *          the frames the input describes), so mutations reach the records;
 *   bit 2: the log is opened with a 64-byte batch size cap and a tiny memory cap.
 * Any crash, sanitizer report or assertion failure is a bug. So is a refusal
 * without a message, and so is an accepted log that cannot take one more entry
 * and give it back on the next open: recovery must never leave a corrupt log.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "quorum/storage.h"
#include "storage/format.h"
#include "storage/memfs.h"
#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define INPUT_SIZE_MAX (1u << 16)
#define DIR_PATH       "/d"
#define CLUSTER_ID     5
#define NODE_ID        2

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
put_file(const struct qr_storage_fs *fs, const char *path, const uint8_t *buf, size_t size)
{
    int fd = -1;
    if (fs->file_open(fs->ctx, path, QR_STORAGE_FS_CREATE, &fd) != 0) {
        __builtin_trap();
    }
    if (size > 0 && fs->file_write(fs->ctx, fd, buf, size, 0) != 0) {
        __builtin_trap();
    }
    (void)fs->file_close(fs->ctx, fd);
}

/* Recomputes the crcs of the frames the bytes describe, from `offset` on. */
static void fix_crcs(uint8_t *buf, size_t size, size_t offset)
{
    for (int frames = 0; frames < 4096 && offset + QR__STORAGE_BATCH_HEADER_SIZE <= size;
         frames++) {
        uint8_t *h = buf + offset;
        qr__put_u32(h, QR__STORAGE_BATCH_MAGIC);
        uint32_t body = qr__get_u32(h + 40) & ~7u;
        size_t room = size - offset - QR__STORAGE_BATCH_HEADER_SIZE;
        body = body > room ? (uint32_t)(room & ~(size_t)7) : body;
        qr__put_u32(h + 40, body);
        qr__put_u32(h + 44, qr__crc32c(0, h + QR__STORAGE_BATCH_HEADER_SIZE, body));
        qr__put_u32(h + 4, qr__crc32c(0, h + 8, QR__STORAGE_BATCH_HEADER_SIZE - 8));
        offset += QR__STORAGE_BATCH_HEADER_SIZE + body;
    }
}

static size_t build_segment(uint8_t flags, const uint8_t *data, size_t size, uint8_t *out)
{
    size_t at = 0;
    if ((flags & 1) != 0) {
        struct qr__storage_segment_header h = {.version = QR_STORAGE_FORMAT_VERSION,
                                               .cluster_id = CLUSTER_ID,
                                               .node_id = NODE_ID,
                                               .seq = 1,
                                               .first_seq = 1};
        qr__storage_segment_header_encode(&h, out);
        at = QR__STORAGE_SEGMENT_HEADER_SIZE;
    }
    memcpy(out + at, data, size);
    if ((flags & 2) != 0) {
        fix_crcs(out, at + size, QR__STORAGE_SEGMENT_HEADER_SIZE);
    }
    return at + size;
}

/* An accepted log must take one more entry and return it on the next open. */
static void check_writable(const struct qr_storage_opts *opts,
                           struct qr_storage *s,
                           const struct qr_storage_recovered *rec)
{
    qr_index base = rec->has_snapshot ? rec->snapshot.index : 0;
    qr_index next = base + rec->entries_count + 1;
    qr_term term = rec->hard_state.term > 0 ? rec->hard_state.term : 1;
    if (rec->entries_count > 0 && rec->entries[rec->entries_count - 1].term > term) {
        term = rec->entries[rec->entries_count - 1].term;
    }
    uint8_t payload[3] = {1, 2, 3};
    struct qr_entry e = {
        .term = term, .index = next, .type = QR_ENTRY_NORMAL, .data = {payload, 3}};
    struct qr_storage_batch b = {.entries = &e,
                                 .entries_count = 1,
                                 .has_hard_state = true,
                                 .hard_state = {term, rec->hard_state.vote, 0}};
    if (qr_storage_write(s, &b) != 0) {
        __builtin_trap();
    }
    qr_storage_close(s);
    struct qr_storage_recovered again;
    char errmsg[QR_ERRMSG_SIZE];
    if (qr_storage_open(DIR_PATH, opts, &s, &again, errmsg) != 0 || again.entries_count == 0 ||
        again.entries[again.entries_count - 1].index != next) {
        __builtin_trap();
    }
    qr_storage_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_SIZE_MAX) {
        return 0;
    }
    uint8_t flags = data[0];
    static uint8_t segment[INPUT_SIZE_MAX + QR__STORAGE_SEGMENT_HEADER_SIZE];
    size_t segment_size = build_segment(flags, data + 1, size - 1, segment);
    struct qr__memfs *memfs = NULL;
    if (qr__memfs_create(&memfs) != 0) {
        return 0;
    }
    const struct qr_storage_fs *fs = qr__memfs_fs(memfs);
    struct qr__storage_meta meta = {
        .version = QR_STORAGE_FORMAT_VERSION, .cluster_id = CLUSTER_ID, .node_id = NODE_ID};
    uint8_t meta_buf[QR__STORAGE_META_SIZE];
    qr__storage_meta_encode(&meta, meta_buf);
    (void)fs->dir_create(fs->ctx, DIR_PATH);
    put_file(fs, DIR_PATH "/meta", meta_buf, sizeof(meta_buf));
    put_file(fs, DIR_PATH "/wal-00000000000000000001", segment, segment_size);
    struct qr_storage_opts opts;
    qr_storage_opts_default(&opts, CLUSTER_ID, NODE_ID);
    opts.fs = fs;
    opts.segment_size = QR_STORAGE_SEGMENT_SIZE_MIN;
    if ((flags & 4) != 0) {
        opts.recovery_size_max = 4096;
    }
    struct qr_storage *s = NULL;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_storage_open(DIR_PATH, &opts, &s, &rec, errmsg);
    if (rv == 0) {
        if (rec.entries_count > 0 && rec.entries[0].index != 1) {
            __builtin_trap(); /* No snapshot here: the log must start at 1. */
        }
        for (size_t i = 1; i < rec.entries_count; i++) {
            if (rec.entries[i].index != rec.entries[i - 1].index + 1) {
                __builtin_trap();
            }
        }
        check_writable(&opts, s, &rec);
    } else if (errmsg[0] == '\0') {
        __builtin_trap(); /* A refusal always explains itself. */
    }
    qr__memfs_destroy(memfs);
    return 0;
}
