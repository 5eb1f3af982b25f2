/*
 * gen_fuzz_corpus: writes the seed corpora of fuzz_wal and fuzz_snapshot.
 *
 * Usage: gen_fuzz_corpus <fuzz/corpus directory>. It builds real logs and
 * snapshots with the storage layer on the in-memory file system (so the seeds
 * are exactly what the writer produces), plus hand-made variants: a torn tail,
 * a sealed segment, a flipped bit, small chunk sizes. Each seed starts with
 * the harness's flag byte (see the fuzz targets). Not a test; run it again
 * when the format changes and commit the result.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorum/storage.h"
#include "storage/format.h"
#include "storage/memfs.h"
#include "util/crc32c.h"
#include "util/endian.h"

#define DIR_PATH   "/d"
#define CLUSTER_ID 5
#define NODE_ID    2
#define SEED_MAX   (1 << 16)

/* snprintf that insists the result fits (a cut path would test the wrong file). */
__attribute__((format(printf, 3, 4))) static void
path_printf(char *buf, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(buf, size, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= size) {
        abort();
    }
}

static const char *out_dir;

static void die(const char *what)
{
    (void)fprintf(stderr, "gen_fuzz_corpus: %s\n", what);
    exit(1);
}

static void
seed(const char *sub, const char *name, uint8_t flags, const uint8_t *bytes, size_t size)
{
    char path[1024];
    path_printf(path, sizeof(path), "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fputc(flags, f) == EOF || fwrite(bytes, 1, size, f) != size ||
        fclose(f) != 0) {
        die(path);
    }
}

static size_t read_file(struct qr__memfs *memfs, const char *path, uint8_t *buf)
{
    const struct qr_storage_fs *fs = qr__memfs_fs(memfs);
    int fd = -1;
    size_t got = 0;
    if (fs->file_open(fs->ctx, path, QR_STORAGE_FS_READ, &fd) != 0 ||
        fs->file_read(fs->ctx, fd, buf, SEED_MAX, 0, &got) != 0) {
        die(path);
    }
    (void)fs->file_close(fs->ctx, fd);
    return got;
}

/* Length without the zero bytes of preallocation at the end, plus 8 for the end marker. */
static size_t trimmed(const uint8_t *buf, size_t size)
{
    while (size > 0 && buf[size - 1] == 0) {
        size--;
    }
    size = (size + 7) & ~(size_t)7;
    return size + 8;
}

static void write_entries(struct qr_storage *s, qr_index from, qr_index to, qr_term term)
{
    static struct qr_entry entries[64];
    static uint8_t data[64][24];
    size_t count = 0;
    for (qr_index i = from; i <= to; i++, count++) {
        size_t len = (size_t)(i % 20) + 1;
        memset(data[count], (int)('a' + i % 26), len);
        entries[count] = (struct qr_entry){.term = term,
                                           .index = i,
                                           .type = i == 1 ? QR_ENTRY_CONFIG : QR_ENTRY_NORMAL,
                                           .data = {data[count], len}};
    }
    struct qr_storage_batch b = {.entries = entries,
                                 .entries_count = count,
                                 .has_hard_state = true,
                                 .hard_state = {term, NODE_ID, from}};
    if (qr_storage_write(s, &b) != 0) {
        die(qr_storage_errmsg(s));
    }
}

static struct qr_storage *log_open(struct qr__memfs **memfs)
{
    if (qr__memfs_create(memfs) != 0) {
        die("memfs");
    }
    struct qr_storage_opts opts;
    qr_storage_opts_default(&opts, CLUSTER_ID, NODE_ID);
    opts.create = true;
    opts.segment_size = QR_STORAGE_SEGMENT_SIZE_MIN;
    opts.fs = qr__memfs_fs(*memfs);
    struct qr_storage *s = NULL;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    if (qr_storage_open(DIR_PATH, &opts, &s, &rec, errmsg) != 0) {
        die(errmsg);
    }
    return s;
}

static void wal_seeds(void)
{
    /* One open segment: appends, a truncated suffix, a vote on its own. */
    struct qr__memfs *memfs = NULL;
    struct qr_storage *s = log_open(&memfs);
    write_entries(s, 1, 5, 1);
    write_entries(s, 6, 12, 1);
    write_entries(s, 10, 14, 2); /* Replaces 10..12. */
    struct qr_storage_batch vote = {.has_hard_state = true, .hard_state = {3, 1, 9}};
    if (qr_storage_write(s, &vote) != 0) {
        die("vote");
    }
    write_entries(s, 15, 20, 3);
    qr_storage_close(s);
    static uint8_t buf[SEED_MAX];
    size_t size = trimmed(buf, read_file(memfs, DIR_PATH "/wal-00000000000000000001", buf));
    size_t batches = size - QR__STORAGE_SEGMENT_HEADER_SIZE;
    seed("wal", "open_segment_raw", 0, buf, size);
    seed("wal", "open_segment_batches", 3, buf + QR__STORAGE_SEGMENT_HEADER_SIZE, batches);
    seed("wal", "torn_tail", 0, buf, QR__STORAGE_SEGMENT_HEADER_SIZE + batches / 2 + 3);
    seed("wal", "empty_segment", 1, buf, 0);
    buf[QR__STORAGE_SEGMENT_HEADER_SIZE + 60] ^= 0x20;
    seed("wal", "flipped_bit", 0, buf, size);
    qr__memfs_destroy(memfs);
    /* A full segment, sealed when the next batch did not fit. */
    s = log_open(&memfs);
    write_entries(s, 1, 40, 1);
    write_entries(s, 41, 80, 1);
    write_entries(s, 81, 85, 2);
    qr_storage_close(s);
    if (!qr__memfs_exists(memfs, DIR_PATH "/wal-00000000000000000002")) {
        die("segment 1 was not sealed");
    }
    size = read_file(memfs, DIR_PATH "/wal-00000000000000000001", buf);
    seed("wal", "sealed_segment", 0, buf, size);
    seed("wal", "sealed_batches_fixed", 3, buf + QR__STORAGE_SEGMENT_HEADER_SIZE,
         size - QR__STORAGE_SEGMENT_HEADER_SIZE);
    qr__memfs_destroy(memfs);
}

/* A snapshot file built by hand, with a chosen chunk size and configuration. */
static size_t snapshot_file(uint8_t *buf, uint32_t chunk, uint64_t data_size, bool joint)
{
    struct qr__storage_snapshot_header h = {.version = QR_STORAGE_FORMAT_VERSION,
                                            .cluster_id = CLUSTER_ID,
                                            .node_id = NODE_ID,
                                            .chunk_size = chunk};
    h.meta.index = 42;
    h.meta.term = 3;
    h.meta.size = data_size;
    h.meta.config.voters_count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        h.meta.config.voters[i] = i + 1;
    }
    if (joint) {
        h.meta.config.voters_old_count = 2;
        h.meta.config.voters_old[0] = 1;
        h.meta.config.voters_old[1] = 4;
        h.meta.config.learners_count = 1;
        h.meta.config.learners[0] = 9;
    }
    h.header_size = qr__storage_snapshot_header_size(&h.meta.config);
    uint8_t *data = buf + h.header_size;
    for (uint64_t i = 0; i < data_size; i++) {
        data[i] = (uint8_t)(i * 7);
    }
    h.meta.crc = qr__crc32c(0, data, (size_t)data_size);
    qr__storage_snapshot_header_encode(&h, buf);
    uint64_t chunks = qr__storage_snapshot_chunks_count(data_size, chunk);
    uint8_t *t = data + data_size;
    for (uint64_t i = 0; i < chunks; i++) {
        uint64_t len = data_size - i * chunk < chunk ? data_size - i * chunk : chunk;
        qr__put_u32(t + i * 4, qr__crc32c(0, data + i * chunk, (size_t)len));
    }
    size_t trailer = (size_t)qr__storage_snapshot_trailer_size(chunks);
    qr__put_u32(t + trailer - 8, (uint32_t)chunks);
    qr__put_u32(t + trailer - 4, qr__crc32c(0, t, trailer - 4));
    return h.header_size + (size_t)data_size + trailer;
}

static void snapshot_seeds(void)
{
    static uint8_t buf[SEED_MAX];
    size_t size = snapshot_file(buf, 64, 300, false);
    seed("snapshot", "small_chunks", 0, buf, size);
    seed("snapshot", "small_chunks_fixed", 3, buf, size);
    size = snapshot_file(buf, 1u << 20, 1000, true);
    seed("snapshot", "joint_config", 0, buf, size);
    size = snapshot_file(buf, 128, 0, false);
    seed("snapshot", "empty_data", 0, buf, size);
    size = snapshot_file(buf, 64, 256, false); /* Exactly four chunks. */
    buf[200] ^= 1;
    seed("snapshot", "bad_chunk", 0, buf, size);
    seed("snapshot", "truncated", 0, buf, size - 5);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        die("usage: gen_fuzz_corpus <fuzz/corpus directory>");
    }
    out_dir = argv[1];
    wal_seeds();
    snapshot_seeds();
    return 0;
}
