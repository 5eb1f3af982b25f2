/*
 * Unit tests of storage/: the on-disk codecs, opening and identity checks, the
 * log's write and recovery paths, torn tails and corruption, snapshots,
 * compaction, and every error path (full disk, I/O errors, out of memory, bad
 * arguments). Most run on the in-memory file system (storage/memfs.h) so they
 * can inject faults; a few run on the real disk through the POSIX seam.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quorum/log.h"
#include "quorum/storage.h"
#include "storage/format.h"
#include "storage/memfs.h"
#include "storage/replay.h"
#include "test_alloc.h"
#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/rng.h"

#define DIR_PATH      "/d"
#define CLUSTER_ID    7
#define NODE_ID       3
#define ENTRIES_MAX   4096
#define DATA_SIZE_MAX 8192

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

/* ---- fixture ---- */

struct fx {
    struct qr__memfs *memfs;
    struct qr_storage_opts opts;
    struct qr_storage *s;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    struct qr_entry entries[ENTRIES_MAX];
    uint8_t data[ENTRIES_MAX][64];
};

static struct fx *fx_new(void)
{
    struct fx *f = qr_calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(qr__memfs_create(&f->memfs), 0);
    qr_storage_opts_default(&f->opts, CLUSTER_ID, NODE_ID);
    f->opts.create = true;
    f->opts.segment_size = 4096;
    f->opts.fs = qr__memfs_fs(f->memfs);
    return f;
}

static int fx_open(struct fx *f)
{
    f->errmsg[0] = '\0';
    return qr_storage_open(DIR_PATH, &f->opts, &f->s, &f->rec, f->errmsg);
}

static void fx_close(struct fx *f)
{
    qr_storage_close(f->s);
    f->s = NULL;
}

static void fx_free(struct fx *f)
{
    fx_close(f);
    qr__memfs_destroy(f->memfs);
    qr_free(f);
}

/* Entry `index` with `term` and a payload that depends on both (and a salt). */
static const struct qr_entry *fx_entry(struct fx *f, qr_index index, qr_term term, uint8_t salt)
{
    size_t slot = (size_t)(index % ENTRIES_MAX);
    struct qr_entry *e = &f->entries[slot];
    size_t len = (size_t)(index % 40) + 1;
    for (size_t i = 0; i < len; i++) {
        f->data[slot][i] = (uint8_t)(index * 31 + term * 7 + salt + i);
    }
    *e = (struct qr_entry){
        .term = term, .index = index, .type = QR_ENTRY_NORMAL, .data = {f->data[slot], len}};
    return e;
}

/* Writes entries [from, to] with `term` in one batch (copied to a contiguous array). */
static int fx_write(struct fx *f, qr_index from, qr_index to, qr_term term, uint8_t salt)
{
    static struct qr_entry batch[ENTRIES_MAX];
    size_t count = 0;
    for (qr_index i = from; i <= to; i++) {
        batch[count++] = *fx_entry(f, i, term, salt);
    }
    struct qr_storage_batch b = {.entries = batch,
                                 .entries_count = count,
                                 .has_hard_state = true,
                                 .hard_state = {.term = term, .vote = NODE_ID, .commit = from}};
    return qr_storage_write(f->s, &b);
}

static void
assert_entry(struct fx *f, const struct qr_entry *got, qr_index index, qr_term term, uint8_t salt)
{
    const struct qr_entry *want = fx_entry(f, index, term, salt);
    assert_int_equal(got->index, index);
    assert_int_equal(got->term, term);
    assert_int_equal(got->type, QR_ENTRY_NORMAL);
    assert_int_equal(got->data.len, want->data.len);
    assert_memory_equal(got->data.base, want->data.base, want->data.len);
}

static void seg_path(char *path, uint64_t seq)
{
    path_printf(path, 64, "%s/wal-%020llu", DIR_PATH, (unsigned long long)seq);
}

/* ---- crc ---- */

static void test_crc_hardware_path_equals_the_table_on_random_data(void **state)
{
    (void)state;
    struct qr_rng rng;
    qr__rng_seed(&rng, 42);
    static uint8_t data[4099];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)qr__rng_next(&rng);
    }
    for (int round = 0; round < 2000; round++) {
        size_t start = (size_t)qr__rng_below(&rng, 64);
        size_t len = (size_t)qr__rng_below(&rng, sizeof(data) - start);
        uint32_t seed = round % 3 == 0 ? 0 : (uint32_t)qr__rng_next(&rng);
        assert_int_equal(qr__crc32c(seed, data + start, len),
                         qr__crc32c_sw(seed, data + start, len));
    }
    /* The standard check value, and incremental use. */
    assert_int_equal(qr__crc32c(0, "123456789", 9), 0xe3069283);
    uint32_t part = qr__crc32c(0, "1234", 4);
    assert_int_equal(qr__crc32c(part, "56789", 5), 0xe3069283);
    print_message("crc32c: hardware instruction %s\n",
                  qr__crc32c_is_hw() ? "used" : "not available");
}

/* ---- codecs ---- */

static void test_meta_round_trips_and_refuses_damage(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    uint8_t buf[QR__STORAGE_META_SIZE];
    struct qr__storage_meta m = {.version = 1, .cluster_id = 5, .node_id = 9};
    struct qr__storage_meta out;
    qr__storage_meta_encode(&m, buf);
    assert_int_equal(qr__storage_meta_decode(buf, sizeof(buf), &out, errmsg), 0);
    assert_int_equal(out.cluster_id, 5);
    assert_int_equal(out.node_id, 9);
    /* Every single-bit flip is caught. */
    for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rv = qr__storage_meta_decode(buf, sizeof(buf), &out, errmsg);
        assert_true(rv == QR_ECORRUPT || rv == QR_EVERSION);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(qr__storage_meta_decode(buf, 10, &out, errmsg), QR_ECORRUPT);
    assert_int_equal(qr__storage_meta_decode(buf, 65, &out, errmsg), QR_ECORRUPT);
    /* A well-formed header of another version is a version error, not corruption. */
    m.version = 2;
    qr__storage_meta_encode(&m, buf);
    assert_int_equal(qr__storage_meta_decode(buf, sizeof(buf), &out, errmsg), QR_EVERSION);
    assert_non_null(strstr(errmsg, "version 2"));
}

static void test_segment_header_round_trips_and_refuses_damage(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    uint8_t buf[QR__STORAGE_SEGMENT_HEADER_SIZE];
    struct qr__storage_segment_header h = {.version = 1,
                                           .cluster_id = 1,
                                           .node_id = 2,
                                           .seq = 3,
                                           .prev_index = 4,
                                           .first_seq = 5,
                                           .hard_state = {6, 7, 8}};
    struct qr__storage_segment_header out;
    qr__storage_segment_header_encode(&h, buf);
    assert_int_equal(qr__storage_segment_header_decode(buf, sizeof(buf), &out, errmsg), 0);
    assert_int_equal(out.seq, 3);
    assert_int_equal(out.prev_index, 4);
    assert_int_equal(out.first_seq, 5);
    assert_int_equal(out.hard_state.term, 6);
    assert_int_equal(out.hard_state.vote, 7);
    assert_int_equal(out.hard_state.commit, 8);
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] ^= 0x10;
        assert_int_not_equal(qr__storage_segment_header_decode(buf, sizeof(buf), &out, errmsg), 0);
        assert_non_null(strstr(errmsg, "offset"));
        buf[i] ^= 0x10;
    }
    assert_int_equal(qr__storage_segment_header_decode(buf, 50, &out, errmsg), QR_ECORRUPT);
}

/* Builds a batch of `count` entries from `first` with a hard state into buf; returns its size. */
static size_t build_batch(uint8_t *buf, uint64_t seq, qr_index first, size_t count)
{
    uint8_t *body = buf + QR__STORAGE_BATCH_HEADER_SIZE;
    uint8_t *p = body;
    uint8_t payload[3] = {1, 2, 3};
    for (size_t i = 0; i < count; i++) {
        struct qr_entry e = {
            .term = 1, .index = first + i, .type = QR_ENTRY_NORMAL, .data = {payload, (i % 3) + 1}};
        p = qr__storage_record_put_entry(p, &e);
    }
    struct qr_hard_state hs = {1, 2, first};
    p = qr__storage_record_put_hard_state(p, &hs);
    struct qr__storage_batch_header h = {.seq = seq,
                                         .group_seq = seq,
                                         .first_index = first,
                                         .entries_count = (uint32_t)count,
                                         .records_count = (uint32_t)count + 1,
                                         .body_size = (uint32_t)(p - body)};
    h.body_crc = qr__crc32c(0, body, h.body_size);
    qr__storage_batch_header_encode(&h, buf);
    return (size_t)(p - buf);
}

static void test_batch_check_names_every_kind_of_damage(void **state)
{
    (void)state;
    uint8_t buf[1024] = {0};
    struct qr__storage_batch_header h;
    size_t size = build_batch(buf, 1, 1, 4);
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_OK);
    assert_int_equal(h.entries_count, 4);
    assert_int_equal(qr__storage_batch_check(buf, 10, &h), QR__BATCH_EOF);
    assert_int_equal(qr__storage_batch_check(buf, size - 1, &h), QR__BATCH_SHORT);
    uint8_t zero[64] = {0};
    assert_int_equal(qr__storage_batch_check(zero, sizeof(zero), &h), QR__BATCH_ZERO);
    buf[0] ^= 1;
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_BAD_MAGIC);
    buf[0] ^= 1;
    buf[20] ^= 1;
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_BAD_HEADER);
    buf[20] ^= 1;
    buf[size - 3] ^= 1;
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_BAD_BODY);
    buf[size - 3] ^= 1;
    /* Fields that pass the crc but make no sense: group after seq. */
    qr__put_u64(buf + 16, 9);
    qr__put_u32(buf + 4, qr__crc32c(0, buf + 8, QR__STORAGE_BATCH_HEADER_SIZE - 8));
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_BAD_FIELDS);
    for (int st = QR__BATCH_OK; st <= QR__BATCH_BAD_BODY; st++) {
        assert_string_not_equal(qr__storage_batch_status_text((enum qr__storage_batch_status)st),
                                "?");
    }
}

static void test_records_round_trip_and_refuse_malformed_bodies(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    uint8_t body[256] = {0};
    uint8_t data[5] = {9, 8, 7, 6, 5};
    struct qr_entry e = {.term = 3, .index = 10, .type = QR_ENTRY_CONFIG, .data = {data, 5}};
    uint8_t *p = qr__storage_record_put_reset(body, 9, 2);
    p = qr__storage_record_put_entry(p, &e);
    p = qr__storage_record_put_seal(p, 10, 4);
    size_t size = (size_t)(p - body);
    size_t pos = 0;
    struct qr__storage_record r;
    assert_int_equal(qr__storage_record_next(body, size, &pos, &r, errmsg), 0);
    assert_int_equal(r.type, QR__RECORD_RESET);
    assert_int_equal(r.index, 9);
    assert_int_equal(r.term, 2);
    assert_int_equal(qr__storage_record_next(body, size, &pos, &r, errmsg), 0);
    assert_int_equal(r.type, QR__RECORD_ENTRY);
    assert_int_equal(r.entry.index, 10);
    assert_int_equal(r.entry.type, QR_ENTRY_CONFIG);
    assert_memory_equal(r.entry.data.base, data, 5);
    assert_int_equal(qr__storage_record_next(body, size, &pos, &r, errmsg), 0);
    assert_int_equal(r.type, QR__RECORD_SEAL);
    assert_int_equal(r.seq, 4);
    assert_int_equal(pos, size);
    /* Malformed: unknown type, reserved byte, oversize payload, bad entry type, padding. */
    size_t offsets[] = {24 + 0, 24 + 1, 24 + 4, 24 + 8 + 16, 24 + 8 + 24 + 6};
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        body[offsets[i]] ^= 0x40;
        pos = 24;
        assert_int_equal(qr__storage_record_next(body, size, &pos, &r, errmsg), QR_ECORRUPT);
        assert_non_null(strstr(errmsg, "body offset 24"));
        body[offsets[i]] ^= 0x40;
    }
    pos = 0;
    assert_int_equal(qr__storage_record_next(body, 4, &pos, &r, errmsg), QR_ECORRUPT);
}

static void test_replay_applies_truncation_and_refuses_gaps(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    struct qr__storage_replay r;
    qr__storage_replay_init(&r, 0, 1 << 20);
    struct qr__storage_segment_header sh = {.version = 1, .seq = 1, .first_seq = 1};
    assert_int_equal(qr__storage_replay_segment(&r, &sh, errmsg), 0);
    uint8_t buf[2048];
    struct qr__storage_batch_header h;
    size_t size = build_batch(buf, 1, 1, 10);
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_OK);
    assert_int_equal(qr__storage_replay_batch(&r, &h, buf + 48, errmsg), 0);
    assert_int_equal(r.last, 10);
    /* Batch 2 replaces entries from 4 on. */
    size = build_batch(buf, 2, 4, 2);
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_OK);
    assert_int_equal(qr__storage_replay_batch(&r, &h, buf + 48, errmsg), 0);
    assert_int_equal(r.last, 5);
    assert_int_equal(r.entries_count, 5);
    assert_true(qr__storage_replay_is_consistent(&r));
    /* A seq out of order, then a gap. */
    size = build_batch(buf, 9, 6, 1);
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_OK);
    assert_int_equal(qr__storage_replay_batch(&r, &h, buf + 48, errmsg), QR_ECORRUPT);
    size = build_batch(buf, 3, 8, 1);
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_OK);
    assert_int_equal(qr__storage_replay_batch(&r, &h, buf + 48, errmsg), QR_ECORRUPT);
    assert_non_null(strstr(errmsg, "gap"));
    /* Memory limit. */
    qr__storage_replay_free(&r);
    qr__storage_replay_init(&r, 0, 100);
    assert_int_equal(qr__storage_replay_segment(&r, &sh, errmsg), 0);
    size = build_batch(buf, 1, 1, 10);
    assert_int_equal(qr__storage_batch_check(buf, size, &h), QR__BATCH_OK);
    assert_int_equal(qr__storage_replay_batch(&r, &h, buf + 48, errmsg), QR_ENOMEM);
    qr__storage_replay_free(&r);
}

static void test_snapshot_header_round_trips(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    struct qr__storage_snapshot_header h = {
        .version = 1, .cluster_id = 1, .node_id = 2, .chunk_size = 1 << 20};
    h.meta.index = 10;
    h.meta.term = 2;
    h.meta.size = 12345;
    h.meta.crc = 0xabcdef;
    h.meta.config.voters_count = 3;
    h.meta.config.voters[0] = 1;
    h.meta.config.voters[1] = 2;
    h.meta.config.voters[2] = 3;
    h.meta.config.learners_count = 1;
    h.meta.config.learners[0] = 4;
    h.header_size = qr__storage_snapshot_header_size(&h.meta.config);
    uint8_t buf[QR__STORAGE_SNAPSHOT_HEADER_SIZE_MAX];
    qr__storage_snapshot_header_encode(&h, buf);
    struct qr__storage_snapshot_header out;
    assert_int_equal(qr__storage_snapshot_header_decode(buf, h.header_size, &out, errmsg), 0);
    assert_memory_equal(&out.meta, &h.meta, sizeof(h.meta));
    for (size_t i = 0; i < h.header_size; i++) {
        buf[i] ^= 4;
        assert_int_not_equal(qr__storage_snapshot_header_decode(buf, h.header_size, &out, errmsg),
                             0);
        buf[i] ^= 4;
    }
}

/* ---- opening ---- */

static void test_open_creates_then_reopens_an_empty_directory(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 0);
    assert_false(f->rec.has_snapshot);
    assert_int_equal(f->rec.hard_state.term, 0);
    fx_close(f);
    f->opts.create = false;
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.segments_count, 1);
    struct qr_core_state st;
    qr_storage_core_state(&f->rec, &st);
    assert_null(st.snapshot);
    assert_int_equal(st.entries_count, 0);
    fx_free(f);
}

static void test_open_refuses_another_cluster_or_node(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    fx_close(f);
    f->opts.node_id = NODE_ID + 1;
    assert_int_equal(fx_open(f), QR_EINVAL);
    assert_non_null(strstr(f->errmsg, "node 3"));
    assert_null(f->s);
    f->opts.node_id = NODE_ID;
    f->opts.cluster_id = CLUSTER_ID + 1;
    assert_int_equal(fx_open(f), QR_EINVAL);
    assert_non_null(strstr(f->errmsg, "cluster 7"));
    fx_free(f);
}

static void test_open_refuses_bad_options(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    struct qr_storage_opts good = f->opts;
    f->opts.cluster_id = 0;
    assert_int_equal(fx_open(f), QR_EINVAL);
    f->opts = good;
    f->opts.sync = (enum qr_storage_sync)9;
    assert_int_equal(fx_open(f), QR_EINVAL);
    f->opts = good;
    f->opts.segment_size = 4097;
    assert_int_equal(fx_open(f), QR_EINVAL);
    f->opts.segment_size = QR_STORAGE_SEGMENT_SIZE_MAX * 2;
    assert_int_equal(fx_open(f), QR_EINVAL);
    f->opts = good;
    f->opts.batch_size_max = 100;
    assert_int_equal(fx_open(f), QR_EINVAL);
    f->opts = good;
    struct qr_storage_fs broken = *good.fs;
    broken.dir_lock = NULL;
    f->opts.fs = &broken;
    assert_int_equal(fx_open(f), QR_EINVAL);
    f->opts = good;
    assert_int_equal(qr_storage_open("", &f->opts, &f->s, &f->rec, f->errmsg), QR_EINVAL);
    assert_string_equal(qr_storage_sync_name(QR_STORAGE_SYNC_ALWAYS), "always");
    assert_string_equal(qr_storage_sync_name(QR_STORAGE_SYNC_NONE), "none");
    assert_string_equal(qr_storage_sync_name((enum qr_storage_sync)5), "?");
    fx_free(f);
}

static void test_open_without_create_refuses_a_missing_or_new_directory(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    f->opts.create = false;
    assert_int_equal(fx_open(f), QR_ENOTFOUND);
    assert_non_null(strstr(f->errmsg, DIR_PATH));
    const struct qr_storage_fs *fs = qr__memfs_fs(f->memfs);
    assert_int_equal(fs->dir_create(fs->ctx, DIR_PATH), 0);
    assert_int_equal(fx_open(f), QR_ENOTFOUND);
    assert_non_null(strstr(f->errmsg, "not initialised"));
    fx_free(f);
}

static void test_open_refuses_to_initialise_a_directory_holding_other_files(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    const struct qr_storage_fs *fs = qr__memfs_fs(f->memfs);
    assert_int_equal(fs->dir_create(fs->ctx, DIR_PATH), 0);
    int fd = -1;
    assert_int_equal(fs->file_open(fs->ctx, DIR_PATH "/notes.txt", QR_STORAGE_FS_CREATE, &fd), 0);
    assert_int_equal(fs->file_close(fs->ctx, fd), 0);
    assert_int_equal(fx_open(f), QR_EINVAL);
    assert_non_null(strstr(f->errmsg, "not quorum's"));
    assert_false(qr__memfs_exists(f->memfs, DIR_PATH "/meta"));
    fx_free(f);
}

static void test_open_refuses_a_directory_in_use(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    struct qr_storage *second = NULL;
    struct qr_storage_recovered rec;
    assert_int_equal(qr_storage_open(DIR_PATH, &f->opts, &second, &rec, f->errmsg), QR_EBUSY);
    assert_non_null(strstr(f->errmsg, "LOCK"));
    fx_free(f);
}

/* Rewrites the meta file with another version (valid crc). */
static void write_meta_version(struct fx *f, uint32_t version)
{
    const struct qr_storage_fs *fs = qr__memfs_fs(f->memfs);
    struct qr__storage_meta m = {.version = version, .cluster_id = CLUSTER_ID, .node_id = NODE_ID};
    uint8_t buf[QR__STORAGE_META_SIZE];
    qr__storage_meta_encode(&m, buf);
    int fd = -1;
    assert_int_equal(fs->file_open(fs->ctx, DIR_PATH "/meta", QR_STORAGE_FS_WRITE, &fd), 0);
    assert_int_equal(fs->file_write(fs->ctx, fd, buf, sizeof(buf), 0), 0);
    assert_int_equal(fs->file_close(fs->ctx, fd), 0);
}

static void test_open_refuses_another_format_version(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    fx_close(f);
    write_meta_version(f, 2);
    assert_int_equal(fx_open(f), QR_EVERSION);
    assert_non_null(strstr(f->errmsg, "format version 2"));
    assert_non_null(strstr(f->errmsg, DIR_PATH "/meta"));
    fx_free(f);
}

static void test_open_refuses_log_files_without_meta(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 3, 1, 0), 0);
    fx_close(f);
    assert_int_equal(qr__memfs_remove(f->memfs, DIR_PATH "/meta"), 0);
    assert_int_equal(fx_open(f), QR_ECORRUPT);
    assert_non_null(strstr(f->errmsg, "no meta"));
    fx_free(f);
}

static void test_open_restarts_an_interrupted_initialisation(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    fx_close(f);
    /* meta is written last: without it, an empty segment 1 is a crashed initialisation. */
    assert_int_equal(qr__memfs_remove(f->memfs, DIR_PATH "/meta"), 0);
    f->opts.create = false;
    assert_int_equal(fx_open(f), QR_ENOTFOUND);
    f->opts.create = true;
    assert_int_equal(fx_open(f), 0);
    assert_true(qr__memfs_exists(f->memfs, DIR_PATH "/meta"));
    fx_free(f);
}

/* ---- writing and recovering ---- */

static void test_write_then_recover_returns_every_entry_and_the_hard_state(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    for (qr_index i = 1; i <= 200; i += 10) {
        assert_int_equal(fx_write(f, i, i + 9, 2, 0), 0);
    }
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    assert_int_equal(st.last_index, 200);
    assert_true(st.segments_count > 1); /* 4 KiB segments: rolled over. */
    assert_int_equal(st.batches_count, 20 + st.segments_count - 1);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 200);
    for (size_t i = 0; i < 200; i++) {
        assert_entry(f, &f->rec.entries[i], i + 1, 2, 0);
    }
    assert_int_equal(f->rec.hard_state.term, 2);
    assert_int_equal(f->rec.hard_state.vote, NODE_ID);
    assert_int_equal(f->rec.hard_state.commit, 191);
    assert_int_equal(f->rec.torn_bytes, 0);
    qr_storage_release_recovered(f->s);
    qr_storage_release_recovered(f->s); /* Idempotent. */
    /* Appending continues after recovery. */
    assert_int_equal(fx_write(f, 201, 205, 2, 0), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 205);
    fx_free(f);
}

static void test_write_truncates_a_conflicting_suffix(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 100, 1, 0), 0);
    assert_int_equal(fx_write(f, 101, 150, 1, 0), 0);
    /* A new leader's log replaces everything from 60 on, across a segment boundary. */
    assert_int_equal(fx_write(f, 60, 70, 3, 1), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 70);
    assert_entry(f, &f->rec.entries[58], 59, 1, 0);
    assert_entry(f, &f->rec.entries[59], 60, 3, 1);
    assert_entry(f, &f->rec.entries[69], 70, 3, 1);
    fx_free(f);
}

static void test_write_splits_large_batches_but_syncs_once(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    f->opts.segment_size = 1 << 20;
    f->opts.batch_size_max = 4096;
    assert_int_equal(fx_open(f), 0);
    struct qr_storage_status before;
    qr_storage_status(f->s, &before);
    assert_int_equal(fx_write(f, 1, 1000, 1, 0), 0);
    struct qr_storage_status after;
    qr_storage_status(f->s, &after);
    assert_true(after.batches_count - before.batches_count > 5);
    assert_int_equal(after.syncs_count - before.syncs_count, 1);
    /* An unchanged hard state and no entries: nothing written, nothing synced. */
    struct qr_storage_batch b = {.has_hard_state = true, .hard_state = {1, NODE_ID, 1}};
    assert_int_equal(qr_storage_write(f->s, &b), 0);
    struct qr_storage_status idle;
    qr_storage_status(f->s, &idle);
    assert_int_equal(idle.syncs_count, after.syncs_count);
    /* A changed hard state alone is one batch and one sync: a vote becomes durable. */
    b.hard_state.term = 5;
    assert_int_equal(qr_storage_write(f->s, &b), 0);
    qr_storage_status(f->s, &idle);
    assert_int_equal(idle.syncs_count, after.syncs_count + 1);
    /* A group: three batches (the third replaces the second's tail under a new term), one
     * fdatasync; an empty group syncs nothing. */
    struct qr_entry e[6];
    for (size_t i = 0; i < 6; i++) {
        e[i] = *fx_entry(f, 1001 + i, 5, 0);
    }
    struct qr_entry r[2] = {*fx_entry(f, 1005, 6, 1), *fx_entry(f, 1006, 6, 1)};
    struct qr_storage_batch group[3] = {
        {.entries = e, .entries_count = 3},
        {.entries = e + 3, .entries_count = 3},
        {.entries = r, .entries_count = 2, .has_hard_state = true, .hard_state = {6, 0, 1004}}};
    assert_int_equal(qr_storage_write_group(f->s, group, 3), 0);
    struct qr_storage_status grouped;
    qr_storage_status(f->s, &grouped);
    assert_int_equal(grouped.syncs_count, idle.syncs_count + 1);
    assert_int_equal(grouped.batches_count, idle.batches_count + 3);
    assert_int_equal(qr_storage_write_group(f->s, group, 0), 0);
    qr_storage_status(f->s, &idle);
    assert_int_equal(idle.syncs_count, grouped.syncs_count);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 1006);
    assert_entry(f, &f->rec.entries[1003], 1004, 5, 0);
    assert_entry(f, &f->rec.entries[1004], 1005, 6, 1);
    assert_entry(f, &f->rec.entries[1005], 1006, 6, 1);
    assert_int_equal(f->rec.hard_state.term, 6);
    fx_free(f);
}

static void test_write_refuses_invalid_batches(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 10, 2, 0), 0);
    struct qr_entry e[2] = {*fx_entry(f, 11, 2, 0), *fx_entry(f, 12, 2, 0)};
    struct qr_storage_batch b = {.entries = e, .entries_count = 2};
    e[1].index = 14; /* Not consecutive. */
    assert_int_equal(qr_storage_write(f->s, &b), QR_EINVAL);
    e[1].index = 12;
    e[1].term = 1; /* Term going back. */
    assert_int_equal(qr_storage_write(f->s, &b), QR_EINVAL);
    e[1].term = 2;
    e[0].index = 13; /* A gap after the last index. */
    e[1].index = 14;
    assert_int_equal(qr_storage_write(f->s, &b), QR_EINVAL);
    assert_non_null(strstr(qr_storage_errmsg(f->s), "13"));
    e[0] = *fx_entry(f, 11, 0, 0); /* Term 0. */
    e[1] = *fx_entry(f, 12, 2, 0);
    assert_int_equal(qr_storage_write(f->s, &b), QR_EINVAL);
    e[0] = *fx_entry(f, 11, 2, 0);
    e[0].type = (enum qr_entry_type)9;
    assert_int_equal(qr_storage_write(f->s, &b), QR_EINVAL);
    e[0].type = QR_ENTRY_NORMAL;
    e[0].data.base = NULL;
    assert_int_equal(qr_storage_write(f->s, &b), QR_EINVAL);
    e[0] = *fx_entry(f, 11, 2, 0);
    static uint8_t big[20000];
    e[0].data = (struct qr_buf){big, sizeof(big)}; /* Larger than a 4 KiB segment. */
    assert_int_equal(qr_storage_write(f->s, &b), QR_ETOOBIG);
    /* qr_storage_entry_size_max is the limit to the byte: one more is refused. */
    uint64_t entry_max = qr_storage_entry_size_max(f->s);
    assert_true(entry_max > 0 && entry_max < sizeof(big));
    e[0].data = (struct qr_buf){big, (size_t)entry_max + 1};
    assert_int_equal(qr_storage_write(f->s, &b), QR_ETOOBIG);
    assert_non_null(strstr(qr_storage_errmsg(f->s), "does not fit"));
    struct qr_storage_batch hs = {.has_hard_state = true, .hard_state = {1, 0, 0}};
    assert_int_equal(qr_storage_write(f->s, &hs), QR_EINVAL); /* Term 2 was written. */
    struct qr_snapshot_meta m = {.index = 5, .term = 2};
    struct qr_storage_batch snap = {.snapshot = &m};
    assert_int_equal(qr_storage_write(f->s, &snap), QR_EINVAL); /* Never published. */
    /* None of it changed the log. */
    e[0] = *fx_entry(f, 11, 2, 0);
    e[1] = *fx_entry(f, 12, 2, 0);
    assert_int_equal(qr_storage_write(f->s, &b), 0);
    /* An entry of exactly the limit is taken (in a segment of its own). */
    e[0] = *fx_entry(f, 13, 2, 0);
    e[0].data = (struct qr_buf){big, (size_t)entry_max};
    b.entries_count = 1;
    assert_int_equal(qr_storage_write(f->s, &b), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 13);
    assert_int_equal(f->rec.entries[12].data.len, entry_max);
    fx_free(f);
}

/* ---- torn tails and corruption ---- */

static void test_recovery_truncates_a_torn_tail_at_every_offset(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 5, 1, 0), 0);
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    uint64_t before = st.bytes_written;
    assert_int_equal(fx_write(f, 6, 9, 1, 0), 0);
    qr_storage_status(f->s, &st);
    uint64_t end = QR__STORAGE_SEGMENT_HEADER_SIZE + st.bytes_written;
    uint64_t start = end - (st.bytes_written - before);
    fx_close(f);
    char path[64];
    seg_path(path, 1);
    for (uint64_t cut = start; cut < end; cut++) {
        struct fx *g = fx_new();
        /* Rebuild the same log in a fresh file system, then cut the last batch at `cut`. */
        assert_int_equal(fx_open(g), 0);
        assert_int_equal(fx_write(g, 1, 5, 1, 0), 0);
        assert_int_equal(fx_write(g, 6, 9, 1, 0), 0);
        fx_close(g);
        assert_int_equal(qr__memfs_cut(g->memfs, path, cut), 0);
        assert_int_equal(fx_open(g), 0);
        assert_int_equal(g->rec.entries_count, 5);
        assert_int_equal(g->rec.torn_bytes, cut > start ? cut - start : 0);
        /* The log is usable and the cut is durable. */
        assert_int_equal(fx_write(g, 6, 7, 1, 2), 0);
        fx_close(g);
        assert_int_equal(fx_open(g), 0);
        assert_int_equal(g->rec.entries_count, 7);
        assert_entry(g, &g->rec.entries[6], 7, 1, 2);
        fx_free(g);
    }
    fx_free(f);
}

static void test_recovery_refuses_corruption_in_a_closed_segment(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    for (qr_index i = 1; i <= 300; i += 10) {
        assert_int_equal(fx_write(f, i, i + 9, 1, 0), 0);
    }
    fx_close(f);
    char path[64];
    seg_path(path, 1);
    assert_int_equal(qr__memfs_corrupt(f->memfs, path, 500, 0x04), 0);
    assert_int_equal(fx_open(f), QR_ECORRUPT);
    assert_non_null(strstr(f->errmsg, path));
    assert_non_null(strstr(f->errmsg, "offset"));
    assert_non_null(strstr(f->errmsg, "closed segment"));
    assert_int_equal(qr__memfs_corrupt(f->memfs, path, 500, 0x04), 0);
    assert_int_equal(fx_open(f), 0);
    fx_free(f);
}

static void test_recovery_refuses_a_bad_batch_followed_by_synced_data(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    f->opts.segment_size = 1 << 20;
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 5, 1, 0), 0);
    assert_int_equal(fx_write(f, 6, 10, 1, 0), 0);
    assert_int_equal(fx_write(f, 11, 15, 1, 0), 0);
    fx_close(f);
    char path[64];
    seg_path(path, 1);
    /* Inside the second batch: the third was written after the second was synced. */
    uint64_t second = QR__STORAGE_SEGMENT_HEADER_SIZE + 48 + 5 * 8 + 24 * 5 + 80 + 32;
    assert_int_equal(qr__memfs_corrupt(f->memfs, path, second, 0x80), 0);
    assert_int_equal(fx_open(f), QR_ECORRUPT);
    assert_non_null(strstr(f->errmsg, "synced"));
    assert_non_null(strstr(f->errmsg, path));
    fx_free(f);
}

static void test_recovery_refuses_a_missing_middle_segment(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    for (qr_index i = 1; i <= 400; i += 10) {
        assert_int_equal(fx_write(f, i, i + 9, 1, 0), 0);
    }
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    assert_true(st.segments_count >= 3);
    fx_close(f);
    char path[64];
    seg_path(path, 2);
    assert_int_equal(qr__memfs_remove(f->memfs, path), 0);
    assert_int_equal(fx_open(f), QR_ECORRUPT);
    assert_non_null(strstr(f->errmsg, "wal-00000000000000000002 is missing"));
    /* And the first one missing (nothing covers its entries). */
    struct fx *g = fx_new();
    assert_int_equal(fx_open(g), 0);
    for (qr_index i = 1; i <= 400; i += 10) {
        assert_int_equal(fx_write(g, i, i + 9, 1, 0), 0);
    }
    fx_close(g);
    seg_path(path, 1);
    assert_int_equal(qr__memfs_remove(g->memfs, path), 0);
    assert_int_equal(fx_open(g), QR_ECORRUPT);
    assert_non_null(strstr(g->errmsg, "no snapshot"));
    fx_free(g);
    fx_free(f);
}

struct log_capture {
    int warnings;
    char last[512];
};

static void log_capture_cb(void *ctx, enum qr_log_level level, const char *line)
{
    struct log_capture *c = ctx;
    if (level == QR_LOG_WARN) {
        c->warnings++;
        path_printf(c->last, sizeof(c->last), "%.400s", line);
    }
}

static void test_torn_tail_is_logged_with_file_and_offset(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 5, 1, 0), 0);
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    uint64_t end = QR__STORAGE_SEGMENT_HEADER_SIZE + st.bytes_written;
    assert_int_equal(fx_write(f, 6, 9, 1, 0), 0);
    fx_close(f);
    char path[64];
    seg_path(path, 1);
    assert_int_equal(qr__memfs_cut(f->memfs, path, end + 30), 0);
    struct log_capture c = {0};
    qr_log_set(log_capture_cb, &c, QR_LOG_WARN);
    assert_int_equal(fx_open(f), 0);
    qr_log_set(NULL, NULL, QR_LOG_ERROR);
    assert_int_equal(c.warnings, 1);
    char want[96];
    path_printf(want, sizeof(want), "torn tail at offset %llu", (unsigned long long)end);
    assert_non_null(strstr(c.last, want));
    assert_non_null(strstr(c.last, path));
    assert_non_null(strstr(c.last, "the log ends at index 5"));
    fx_free(f);
}

/* Rewrites segment 1's header with other identity fields (and a valid crc). */
static void rewrite_segment_header(struct fx *f, uint32_t version, uint64_t node_id)
{
    struct qr__storage_segment_header h = {
        .version = version, .cluster_id = CLUSTER_ID, .node_id = node_id, .seq = 1, .first_seq = 1};
    uint8_t buf[QR__STORAGE_SEGMENT_HEADER_SIZE];
    qr__storage_segment_header_encode(&h, buf);
    const struct qr_storage_fs *fs = qr__memfs_fs(f->memfs);
    char path[64];
    seg_path(path, 1);
    int fd = -1;
    assert_int_equal(fs->file_open(fs->ctx, path, QR_STORAGE_FS_WRITE, &fd), 0);
    assert_int_equal(fs->file_write(fs->ctx, fd, buf, sizeof(buf), 0), 0);
    assert_int_equal(fs->file_close(fs->ctx, fd), 0);
}

static void test_segment_of_another_node_or_version_is_refused(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    fx_close(f);
    rewrite_segment_header(f, QR_STORAGE_FORMAT_VERSION, NODE_ID + 5);
    assert_int_equal(fx_open(f), QR_EINVAL);
    assert_non_null(strstr(f->errmsg, "node 8"));
    assert_non_null(strstr(f->errmsg, "wal-00000000000000000001"));
    rewrite_segment_header(f, QR_STORAGE_FORMAT_VERSION + 1, NODE_ID);
    assert_int_equal(fx_open(f), QR_EVERSION);
    assert_non_null(strstr(f->errmsg, "format version 2"));
    rewrite_segment_header(f, QR_STORAGE_FORMAT_VERSION, NODE_ID);
    assert_int_equal(fx_open(f), 0);
    fx_free(f);
}

/* ---- snapshots ---- */

static void fill_config(struct qr_snapshot_meta *m)
{
    memset(&m->config, 0, sizeof(m->config));
    m->config.voters_count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        m->config.voters[i] = i + 1;
    }
}

/* Writes a LOCAL snapshot of `size` pattern bytes at index/term in chunks of 1000. */
static int write_snapshot(struct qr_storage *s,
                          qr_index index,
                          qr_term term,
                          uint64_t size,
                          struct qr_snapshot_meta *meta_out)
{
    struct qr_snapshot_meta m = {.index = index, .term = term};
    fill_config(&m);
    struct qr_storage_snapshot_writer *w = NULL;
    int rv = qr_storage_snapshot_begin(s, &m, QR_STORAGE_SNAPSHOT_LOCAL, &w);
    if (rv != 0) {
        return rv;
    }
    static uint8_t chunk[1000];
    for (uint64_t off = 0; off < size; off += sizeof(chunk)) {
        size_t n = size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
        for (size_t i = 0; i < n; i++) {
            chunk[i] = (uint8_t)((off + i) * 13 + index);
        }
        rv = qr_storage_snapshot_write(w, off, chunk, n);
        if (rv != 0) {
            qr_storage_snapshot_abort(w);
            return rv;
        }
    }
    return qr_storage_snapshot_finish(w, meta_out);
}

static void assert_snapshot_bytes(struct qr_storage *s, qr_index index, uint64_t size)
{
    static uint8_t buf[1500];
    uint64_t off = 0;
    while (off < size) {
        size_t got = 0;
        assert_int_equal(qr_storage_snapshot_read(s, index, off, buf, sizeof(buf), &got), 0);
        assert_true(got > 0);
        for (size_t i = 0; i < got; i++) {
            assert_int_equal(buf[i], (uint8_t)((off + i) * 13 + index));
        }
        off += got;
    }
    size_t got = 7;
    assert_int_equal(qr_storage_snapshot_read(s, index, size, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 0);
}

static void test_snapshot_is_published_read_back_and_verified_at_open(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 50, 1, 0), 0);
    struct qr_snapshot_meta m;
    uint64_t size = 3 * (1 << 20) + 777; /* Several chunks, the last one partial. */
    assert_int_equal(write_snapshot(f->s, 40, 1, size, &m), 0);
    assert_int_equal(m.size, size);
    struct qr_snapshot_meta cur;
    assert_true(qr_storage_snapshot_meta(f->s, &cur));
    assert_int_equal(cur.crc, m.crc);
    assert_snapshot_bytes(f->s, 40, size);
    size_t got = 0;
    uint8_t one;
    assert_int_equal(qr_storage_snapshot_read(f->s, 39, 0, &one, 1, &got), QR_ENOTFOUND);
    assert_int_equal(qr_storage_snapshot_read(f->s, 40, size + 1, &one, 1, &got), QR_EINVAL);
    /* A newer one replaces it; the old file is deleted once the new one is durable. */
    assert_int_equal(write_snapshot(f->s, 45, 1, 10, &m), 0);
    assert_false(qr__memfs_exists(f->memfs, DIR_PATH "/snap-00000000000000000040"));
    assert_int_equal(write_snapshot(f->s, 45, 1, 10, &m), QR_EINVAL); /* Not newer. */
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_true(f->rec.has_snapshot);
    assert_int_equal(f->rec.snapshot.index, 45);
    assert_int_equal(f->rec.snapshot.config.voters_count, 3);
    assert_int_equal(f->rec.entries_count, 5); /* 46..50 */
    assert_int_equal(f->rec.entries[0].index, 46);
    assert_snapshot_bytes(f->s, 45, 10);
    fx_free(f);
}

static void test_snapshot_with_a_bad_chunk_refuses_start_up_naming_the_offset(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 50, 1, 0), 0);
    struct qr_snapshot_meta m;
    assert_int_equal(write_snapshot(f->s, 40, 1, 3 * (1 << 20), &m), 0);
    fx_close(f);
    const char *path = DIR_PATH "/snap-00000000000000000040";
    uint32_t header = qr__storage_snapshot_header_size(&m.config);
    assert_int_equal(qr__memfs_corrupt(f->memfs, path, header + (1 << 20) + 5, 1), 0);
    assert_int_equal(fx_open(f), QR_ECORRUPT);
    char want[64];
    path_printf(want, sizeof(want), "offset %u: snapshot data chunk 1", header + (1 << 20));
    assert_non_null(strstr(f->errmsg, want));
    assert_non_null(strstr(f->errmsg, path));
    fx_free(f);
}

static void test_received_snapshot_must_match_its_meta(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    struct qr_snapshot_meta m = {.index = 10, .term = 2, .size = 4};
    fill_config(&m);
    uint8_t data[4] = {1, 2, 3, 4};
    m.crc = qr__crc32c(0, data, 4);
    struct qr_storage_snapshot_writer *w = NULL;
    assert_int_equal(qr_storage_snapshot_begin(f->s, &m, QR_STORAGE_SNAPSHOT_RECEIVED, &w), 0);
    struct qr_storage_snapshot_writer *w2 = NULL;
    assert_int_equal(qr_storage_snapshot_begin(f->s, &m, QR_STORAGE_SNAPSHOT_RECEIVED, &w2),
                     QR_EBUSY);
    assert_int_equal(qr_storage_snapshot_write(w, 1, data, 2), QR_EINVAL); /* Wrong offset. */
    assert_int_equal(qr_storage_snapshot_write(w, 0, data, 2), 0);
    assert_int_equal(qr_storage_snapshot_write(w, 2, data, 3), QR_EINVAL); /* Past size. */
    data[3] = 9;
    assert_int_equal(qr_storage_snapshot_write(w, 2, data + 2, 2), 0);
    assert_int_equal(qr_storage_snapshot_finish(w, NULL), QR_ECORRUPT);
    assert_false(qr__memfs_exists(f->memfs, DIR_PATH "/snap-00000000000000000010.tmp"));
    assert_false(qr_storage_snapshot_meta(f->s, &m));
    /* Bad metas. */
    struct qr_snapshot_meta bad = m;
    bad.index = 0;
    assert_int_equal(qr_storage_snapshot_begin(f->s, &bad, QR_STORAGE_SNAPSHOT_LOCAL, &w),
                     QR_EINVAL);
    bad = m;
    bad.config.voters_count = 0;
    assert_int_equal(qr_storage_snapshot_begin(f->s, &bad, QR_STORAGE_SNAPSHOT_LOCAL, &w),
                     QR_EINVAL);
    qr_storage_snapshot_abort(NULL);
    fx_free(f);
}

/* Installs a received snapshot at index/term and resets the log to it with entries after. */
static void install_snapshot(struct fx *f, qr_index index, qr_term term, bool with_reset)
{
    struct qr_snapshot_meta m = {.index = index, .term = term, .size = 3};
    fill_config(&m);
    uint8_t data[3] = {5, 6, 7};
    m.crc = qr__crc32c(0, data, 3);
    struct qr_storage_snapshot_writer *w = NULL;
    assert_int_equal(qr_storage_snapshot_begin(f->s, &m, QR_STORAGE_SNAPSHOT_RECEIVED, &w), 0);
    assert_int_equal(qr_storage_snapshot_write(w, 0, data, 3), 0);
    assert_int_equal(qr_storage_snapshot_finish(w, NULL), 0);
    if (with_reset) {
        struct qr_storage_batch b = {
            .snapshot = &m, .has_hard_state = true, .hard_state = {term, 0, index}};
        assert_int_equal(qr_storage_write(f->s, &b), 0);
    }
}

static void test_installed_snapshot_replaces_the_log(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 30, 1, 0), 0);
    install_snapshot(f, 100, 4, true);
    assert_int_equal(fx_write(f, 101, 110, 4, 3), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.snapshot.index, 100);
    assert_int_equal(f->rec.entries_count, 10);
    assert_entry(f, &f->rec.entries[0], 101, 4, 3);
    assert_int_equal(f->rec.discarded_count, 0);
    fx_free(f);
}

static void test_crash_between_snapshot_and_reset_replaces_a_conflicting_log(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 130, 1, 0), 0); /* Entry 100 has term 1. */
    install_snapshot(f, 100, 4, false);             /* "Crash" before the reset batch. */
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 0);
    assert_int_equal(f->rec.discarded_count, 30);
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    assert_int_equal(st.last_index, 100);
    /* The next write records the reset, so the next recovery agrees without discarding. */
    assert_int_equal(fx_write(f, 101, 105, 4, 2), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 5);
    assert_int_equal(f->rec.discarded_count, 0);
    assert_entry(f, &f->rec.entries[0], 101, 4, 2);
    fx_free(f);
}

static void test_compaction_deletes_whole_segments_below_the_snapshot(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    for (qr_index i = 1; i <= 500; i += 10) {
        assert_int_equal(fx_write(f, i, i + 9, 1, 0), 0);
    }
    uint64_t removed = 0;
    assert_int_equal(qr_storage_compact(f->s, 10, &removed), QR_EINVAL); /* No snapshot. */
    struct qr_snapshot_meta m;
    assert_int_equal(write_snapshot(f->s, 400, 1, 100, &m), 0);
    assert_int_equal(qr_storage_compact(f->s, 401, &removed), QR_EINVAL);
    struct qr_storage_status before;
    qr_storage_status(f->s, &before);
    assert_int_equal(qr_storage_compact(f->s, 350, &removed), 0);
    assert_true(removed > 0);
    struct qr_storage_status after;
    qr_storage_status(f->s, &after);
    assert_int_equal(after.segments_count, before.segments_count - removed);
    assert_true(after.first_index > 1 && after.first_index <= 351);
    char path[64];
    seg_path(path, 1);
    assert_false(qr__memfs_exists(f->memfs, path));
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, 100);
    assert_int_equal(f->rec.entries[0].index, 401);
    /* Compacting everything keeps the last segment (it holds the newest hard state). */
    assert_int_equal(qr_storage_compact(f->s, 400, &removed), 0);
    assert_int_equal(qr_storage_compact(f->s, 400, NULL), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.hard_state.term, 1);
    fx_free(f);
}

/* ---- faults ---- */

static void test_full_disk_is_read_only_until_space_returns(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 10, 1, 0), 0);
    qr__memfs_set_capacity(f->memfs, qr__memfs_used(f->memfs)); /* No room for a segment. */
    qr_index next = 11;
    int rv = 0;
    for (int i = 0; i < 200 && rv == 0; i++, next += 10) {
        rv = fx_write(f, next, next + 9, 1, 0);
    }
    assert_int_equal(rv, QR_ENOSPC);
    assert_non_null(strstr(qr_storage_errmsg(f->s), "No space"));
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    assert_int_equal(st.write_err, QR_ENOSPC);
    assert_int_equal(st.failed_err, 0);
    qr_index acknowledged = next - 11;
    assert_int_equal(fx_write(f, next - 10, next - 1, 1, 0), QR_ENOSPC); /* Still full. */
    qr__memfs_set_capacity(f->memfs, 0);                                 /* Space freed. */
    assert_int_equal(fx_write(f, next - 10, next - 1, 1, 0), 0);
    qr_storage_status(f->s, &st);
    assert_int_equal(st.write_err, 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.entries_count, next - 1);
    assert_true(acknowledged < next - 1);
    fx_free(f);
}

static void test_enospc_in_the_middle_of_a_batch_leaves_no_partial_bytes(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    f->opts.segment_size = 1 << 20;
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 5, 1, 0), 0);
    /* The next write stops half way with ENOSPC (memfs writes the first half). */
    qr__memfs_fail(f->memfs, QR__MEMFS_OP_WRITE, 1, ENOSPC, false);
    assert_int_equal(fx_write(f, 6, 60, 1, 0), QR_ENOSPC);
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    assert_int_equal(st.failed_err, 0);
    assert_int_equal(st.last_index, 5);
    /* A smaller batch lands where the partial one was; nothing of the partial one remains. */
    assert_int_equal(fx_write(f, 6, 6, 1, 4), 0);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(f->rec.torn_bytes, 0);
    assert_int_equal(f->rec.entries_count, 6);
    assert_entry(f, &f->rec.entries[5], 6, 1, 4);
    fx_free(f);
}

static void test_failed_fsync_fails_the_storage_until_reopened(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 10, 1, 0), 0);
    qr__memfs_fail(f->memfs, QR__MEMFS_OP_SYNC, 1, EIO, false);
    assert_int_equal(fx_write(f, 11, 20, 1, 0), QR_EIO);
    assert_non_null(strstr(qr_storage_errmsg(f->s), "fdatasync"));
    assert_int_equal(fx_write(f, 11, 20, 1, 0), QR_EFATAL); /* Never retried. */
    struct qr_snapshot_meta m;
    assert_int_equal(write_snapshot(f->s, 5, 1, 10, &m), QR_EFATAL);
    assert_int_equal(qr_storage_compact(f->s, 5, NULL), QR_EFATAL);
    struct qr_storage_status st;
    qr_storage_status(f->s, &st);
    assert_int_equal(st.failed_err, QR_EIO);
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
    assert_true(f->rec.entries_count == 10 || f->rec.entries_count == 20);
    assert_int_equal(fx_write(f, 11, 20, 1, 0), 0);
    fx_free(f);
}

static void test_read_errors_at_open_are_reported(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(fx_write(f, 1, 10, 1, 0), 0);
    fx_close(f);
    for (uint64_t n = 1; n < 100; n++) {
        qr__memfs_fail(f->memfs, QR__MEMFS_OP_READ | QR__MEMFS_OP_OPEN | QR__MEMFS_OP_LOCK, n, EIO,
                       false);
        int rv = fx_open(f);
        if (rv == 0) {
            assert_int_equal(f->rec.entries_count, 10);
            fx_close(f);
            break;
        }
        assert_int_equal(rv, QR_EIO);
        assert_non_null(strstr(f->errmsg, DIR_PATH));
    }
    qr__memfs_fail(f->memfs, 0, 0, 0, false);
    fx_free(f);
}

static void test_out_of_memory_anywhere_is_reported_without_leaks(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t n = 1; n < 2000; n++) {
        struct fx *f = fx_new();
        f->opts.segment_size = 8192;
        assert_int_equal(fx_open(f), 0);
        assert_int_equal(fx_write(f, 1, 60, 1, 0), 0);
        struct qr_snapshot_meta m;
        assert_int_equal(write_snapshot(f->s, 20, 1, 100, &m), 0);
        fx_close(f);
        test_alloc_fail_at(n, false);
        int rv = fx_open(f);
        if (rv == 0) {
            rv = fx_write(f, 61, 90, 1, 0);
        }
        test_alloc_fail_at(0, false);
        fx_free(f);
        if (rv == 0) {
            print_message("storage: %zu allocation failures checked\n", failures);
            return;
        }
        assert_int_equal(rv, QR_ENOMEM);
        failures++;
    }
    fail_msg("open and write never succeeded");
}

/* ---- the real disk ---- */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            char path[512];
            path_printf(path, sizeof(path), "%s/%s", dir, e->d_name);
            (void)unlink(path);
        }
    }
    (void)closedir(d);
    (void)rmdir(dir);
}

static void test_posix_round_trip_with_lock_and_preallocation(void **state)
{
    (void)state;
    char base[] = "/tmp/qr_storage_XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[600];
    path_printf(dir, sizeof(dir), "%s/data", base);
    struct fx *f = fx_new();
    f->opts.fs = NULL;
    f->opts.segment_size = 64 << 10;
    struct qr_storage *s = NULL;
    assert_int_equal(qr_storage_open(dir, &f->opts, &s, &f->rec, f->errmsg), 0);
    struct qr_storage *other = NULL;
    struct qr_storage_recovered rec;
    assert_int_equal(qr_storage_open(dir, &f->opts, &other, &rec, f->errmsg), QR_EBUSY);
    f->s = s;
    for (qr_index i = 1; i <= 3000; i += 100) {
        assert_int_equal(fx_write(f, i, i + 99, 1, 0), 0);
    }
    struct qr_snapshot_meta m;
    assert_int_equal(write_snapshot(s, 2000, 1, 5000, &m), 0);
    assert_int_equal(qr_storage_compact(s, 1500, NULL), 0);
    fx_close(f);
    assert_int_equal(qr_storage_open(dir, &f->opts, &f->s, &f->rec, f->errmsg), 0);
    assert_int_equal(f->rec.entries_count, 1000);
    assert_entry(f, &f->rec.entries[999], 3000, 1, 0);
    assert_snapshot_bytes(f->s, 2000, 5000);
    fx_close(f);
    fx_free(f);
    remove_tree(dir);
    remove_tree(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_hardware_path_equals_the_table_on_random_data),
        cmocka_unit_test(test_meta_round_trips_and_refuses_damage),
        cmocka_unit_test(test_segment_header_round_trips_and_refuses_damage),
        cmocka_unit_test(test_batch_check_names_every_kind_of_damage),
        cmocka_unit_test(test_records_round_trip_and_refuse_malformed_bodies),
        cmocka_unit_test(test_replay_applies_truncation_and_refuses_gaps),
        cmocka_unit_test(test_snapshot_header_round_trips),
        cmocka_unit_test(test_open_creates_then_reopens_an_empty_directory),
        cmocka_unit_test(test_open_refuses_another_cluster_or_node),
        cmocka_unit_test(test_open_refuses_bad_options),
        cmocka_unit_test(test_open_without_create_refuses_a_missing_or_new_directory),
        cmocka_unit_test(test_open_refuses_to_initialise_a_directory_holding_other_files),
        cmocka_unit_test(test_open_refuses_a_directory_in_use),
        cmocka_unit_test(test_open_refuses_another_format_version),
        cmocka_unit_test(test_open_refuses_log_files_without_meta),
        cmocka_unit_test(test_open_restarts_an_interrupted_initialisation),
        cmocka_unit_test(test_write_then_recover_returns_every_entry_and_the_hard_state),
        cmocka_unit_test(test_write_truncates_a_conflicting_suffix),
        cmocka_unit_test(test_write_splits_large_batches_but_syncs_once),
        cmocka_unit_test(test_write_refuses_invalid_batches),
        cmocka_unit_test(test_recovery_truncates_a_torn_tail_at_every_offset),
        cmocka_unit_test(test_recovery_refuses_corruption_in_a_closed_segment),
        cmocka_unit_test(test_recovery_refuses_a_bad_batch_followed_by_synced_data),
        cmocka_unit_test(test_recovery_refuses_a_missing_middle_segment),
        cmocka_unit_test(test_torn_tail_is_logged_with_file_and_offset),
        cmocka_unit_test(test_segment_of_another_node_or_version_is_refused),
        cmocka_unit_test(test_snapshot_is_published_read_back_and_verified_at_open),
        cmocka_unit_test(test_snapshot_with_a_bad_chunk_refuses_start_up_naming_the_offset),
        cmocka_unit_test(test_received_snapshot_must_match_its_meta),
        cmocka_unit_test(test_installed_snapshot_replaces_the_log),
        cmocka_unit_test(test_crash_between_snapshot_and_reset_replaces_a_conflicting_log),
        cmocka_unit_test(test_compaction_deletes_whole_segments_below_the_snapshot),
        cmocka_unit_test(test_full_disk_is_read_only_until_space_returns),
        cmocka_unit_test(test_enospc_in_the_middle_of_a_batch_leaves_no_partial_bytes),
        cmocka_unit_test(test_failed_fsync_fails_the_storage_until_reopened),
        cmocka_unit_test(test_read_errors_at_open_are_reported),
        cmocka_unit_test(test_out_of_memory_anywhere_is_reported_without_leaks),
        cmocka_unit_test(test_posix_round_trip_with_lock_and_preallocation),
    };
    return cmocka_run_group_tests_name("storage", tests, test_alloc_setup, test_alloc_teardown);
}
