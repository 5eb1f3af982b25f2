/*
 * storage/wal.c: the segmented write-ahead log: recovery, group commit, compaction.
 *
 * Layer: storage. Appends batches (quorum/storage.h has the format) to the open
 * segment and fdatasyncs once per qr_storage_write() or qr_storage_write_group(); rolls over to a
 * new segment (seal the old one, fsync; create the new one under a temporary name, preallocate,
 * write its header, fsync, rename, fsync the directory) when a batch would not fit; deletes whole
 * old segments on compaction. At open it replays every segment, tells a torn tail (truncated,
 * logged) from corruption (refused, named) and leaves the last segment ready for appending.
 *
 * It must never acknowledge data that is not durable, never leave a partial
 * batch where a later batch could follow it, and never retry an fsync: after
 * one fails the storage is failed (STYLE §4) and only a reopen (which re-reads
 * the disk) recovers. ENOSPC while appending is not fatal: the partial batch is
 * cut off and the storage stays usable.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/log.h"

/* Bytes of records other than entries a batch may carry: a reset and a hard state. */
#define BATCH_EXTRA_SIZE (QR__STORAGE_RESET_RECORD_SIZE + QR__STORAGE_HARD_STATE_RECORD_SIZE)

void qr__storage_segment_name(uint64_t seq, char *name)
{
    (void)snprintf(name, QR__STORAGE_NAME_SIZE, "wal-%020llu", (unsigned long long)seq);
}

/* Most bytes of entry records one batch may hold in a fresh segment. */
static uint64_t batch_entries_size_max(const struct qr_storage *s)
{
    uint64_t batch =
        s->opts.segment_size - QR__STORAGE_SEGMENT_HEADER_SIZE - QR__STORAGE_SEAL_BATCH_SIZE;
    batch = batch < s->opts.batch_size_max ? batch : s->opts.batch_size_max;
    return batch - QR__STORAGE_BATCH_HEADER_SIZE - BATCH_EXTRA_SIZE;
}

uint64_t qr_storage_entry_size_max(const struct qr_storage *s)
{
    QR_ASSERT(s != NULL);
    /* The largest n with qr__storage_entry_record_size(n) <= the batch's room: the record
     * pads its fixed part and payload to 8 bytes together. */
    uint64_t room = batch_entries_size_max(s) - QR__STORAGE_RECORD_HEADER_SIZE;
    uint64_t max = (room & ~(uint64_t)7) - QR__STORAGE_ENTRY_FIXED_SIZE;
    return max < QR_STORAGE_ENTRY_SIZE_MAX ? max : QR_STORAGE_ENTRY_SIZE_MAX;
}

/* Room for one more segment in the list, so that adding it later cannot fail. */
static int segments_reserve(struct qr_storage *s)
{
    if (s->segments_count < s->segments_capacity) {
        return 0;
    }
    size_t capacity = s->segments_capacity == 0 ? 16 : s->segments_capacity * 2;
    capacity = capacity > QR_STORAGE_SEGMENTS_MAX ? QR_STORAGE_SEGMENTS_MAX : capacity;
    if (capacity == s->segments_count) {
        return qr__errf(s->errmsg, QR_EBUSY,
                        "storage: %s has %d segments, the most allowed: compact the log", s->dir,
                        QR_STORAGE_SEGMENTS_MAX);
    }
    struct qr__storage_segment *grown = qr_realloc(s->segments, capacity * sizeof(*grown));
    if (grown == NULL) {
        return qr__errf(s->errmsg, QR_ENOMEM, "storage: no memory for the segment list");
    }
    s->segments = grown;
    s->segments_capacity = capacity;
    return 0;
}

static int buf_reserve(struct qr_storage *s, size_t size)
{
    if (size <= s->buf_size) {
        return 0;
    }
    uint8_t *grown = qr_realloc(s->buf, size);
    if (grown == NULL) {
        return qr__errf(s->errmsg, QR_ENOMEM, "storage: no memory for a buffer of %zu bytes", size);
    }
    s->buf = grown;
    s->buf_size = size;
    return 0;
}

/* ---- creating, sealing and cutting segments ---- */

static void segment_open_path(const struct qr_storage *s, char *name, char *path)
{
    qr__storage_segment_name(s->segments[s->segments_count - 1].seq, name);
    qr__storage_path(s, name, path);
}

/*
 * Removes whatever a failed write left after `offset`: cut the file there, then
 * grow it back (the new part reads as zeros), then reserve the space again if the
 * file system allows. A failure here leaves unknown bytes behind: fatal.
 */
static int segment_cut(struct qr_storage *s, uint64_t offset)
{
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    segment_open_path(s, name, path);
    int rv = s->fs->file_truncate(s->fs->ctx, s->open_fd, offset);
    if (rv == 0) {
        rv = s->fs->file_truncate(s->fs->ctx, s->open_fd, s->open_size);
    }
    if (rv != 0) {
        char saved[QR_ERRMSG_SIZE];
        memcpy(saved, s->errmsg, sizeof(saved));
        (void)qr__storage_os_err(s, rv, "storage: truncate %s to offset %llu after: %s", path,
                                 (unsigned long long)offset, saved);
        return qr__storage_fail(s, QR_EIO);
    }
    /* Best effort: without the reservation a later write may see ENOSPC, which is handled. */
    (void)s->fs->file_allocate(s->fs->ctx, s->open_fd, offset, s->open_size - offset);
    return 0;
}

/* Writes bytes at the end of the open segment, cutting them off again on failure. */
static int segment_append(struct qr_storage *s, const uint8_t *bytes, size_t size)
{
    int rv = s->fs->file_write(s->fs->ctx, s->open_fd, bytes, size, s->open_offset);
    if (rv == 0) {
        return 0;
    }
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    segment_open_path(s, name, path);
    int err = qr__storage_os_err(s, rv, "storage: write %s offset %llu (%zu bytes)", path,
                                 (unsigned long long)s->open_offset, size);
    int cut = segment_cut(s, s->open_offset);
    if (cut != 0) {
        return cut;
    }
    /* Only a full disk leaves the log usable; any other write error is an I/O failure. */
    return err == QR_ENOSPC ? err : qr__storage_fail(s, QR_EIO);
}

static int segment_sync(struct qr_storage *s)
{
    int rv = s->fs->file_sync(s->fs->ctx, s->open_fd);
    s->syncs_count++;
    if (rv != 0) {
        char name[QR__STORAGE_NAME_SIZE];
        char path[QR__STORAGE_PATH_SIZE];
        segment_open_path(s, name, path);
        (void)qr__storage_os_err(s, rv, "storage: fdatasync %s", path);
        /* The kernel may have dropped the dirty pages: never retry (STYLE §4). */
        return qr__storage_fail(s, rv == -ENOSPC ? QR_ENOSPC : QR_EIO);
    }
    s->group_seq = 0;
    return 0;
}

/* Ends the open segment with a seal batch, cuts the file there and syncs it. */
static int segment_seal(struct qr_storage *s)
{
    QR_ASSERT(s->has_open);
    uint8_t batch[QR__STORAGE_SEAL_BATCH_SIZE];
    uint8_t *end = qr__storage_record_put_seal(batch + QR__STORAGE_BATCH_HEADER_SIZE, s->last_index,
                                               s->seq_next - 1);
    QR_ASSERT(end == batch + sizeof(batch));
    struct qr__storage_batch_header h = {
        .seq = s->seq_next,
        .group_seq = s->group_seq != 0 ? s->group_seq : s->seq_next,
        .records_count = 1,
        .body_size = QR__STORAGE_SEAL_RECORD_SIZE,
    };
    h.body_crc = qr__crc32c(0, batch + QR__STORAGE_BATCH_HEADER_SIZE, h.body_size);
    qr__storage_batch_header_encode(&h, batch);
    int rv = segment_append(s, batch, sizeof(batch));
    if (rv != 0) {
        return rv;
    }
    uint64_t size = s->open_offset + sizeof(batch);
    rv = s->fs->file_truncate(s->fs->ctx, s->open_fd, size);
    if (rv != 0) {
        char name[QR__STORAGE_NAME_SIZE];
        char path[QR__STORAGE_PATH_SIZE];
        segment_open_path(s, name, path);
        (void)qr__storage_os_err(s, rv, "storage: truncate %s to %llu", path,
                                 (unsigned long long)size);
        return qr__storage_fail(s, QR_EIO);
    }
    s->seq_next++;
    s->group_seq = s->group_seq != 0 ? s->group_seq : h.seq;
    rv = segment_sync(s); /* Always, whatever the policy: closed segments are durable. */
    if (rv != 0) {
        return rv;
    }
    (void)s->fs->file_close(s->fs->ctx, s->open_fd); /* Synced: close cannot lose data. */
    s->open_fd = -1;
    s->has_open = false;
    s->segments[s->segments_count - 1].size = size;
    s->batches_count++;
    s->bytes_written += sizeof(batch);
    return 0;
}

/* Undoes a segment creation that failed before its rename. */
static int segment_create_abandon(struct qr_storage *s, int fd, const char *tmp, int err)
{
    (void)s->fs->file_close(s->fs->ctx, fd);   /* Never published: nothing to keep. */
    (void)s->fs->path_unlink(s->fs->ctx, tmp); /* Best effort; open deletes *.tmp too. */
    return err == QR_ENOSPC ? err : qr__storage_fail(s, QR_EIO);
}

static int segment_create_file(struct qr_storage *s, const char *tmp, int *fd_out)
{
    int rv = s->fs->file_open(s->fs->ctx, tmp, QR_STORAGE_FS_CREATE, fd_out);
    if (rv == -EEXIST) {
        (void)s->fs->path_unlink(s->fs->ctx, tmp); /* An abandoned earlier attempt. */
        rv = s->fs->file_open(s->fs->ctx, tmp, QR_STORAGE_FS_CREATE, fd_out);
    }
    if (rv != 0) {
        int err = qr__storage_os_err(s, rv, "storage: create %s", tmp);
        return err == QR_ENOSPC ? err : qr__storage_fail(s, QR_EIO);
    }
    rv = s->fs->file_allocate(s->fs->ctx, *fd_out, 0, s->opts.segment_size);
    if (rv != 0 && rv != -EOPNOTSUPP && rv != -ENOSYS) {
        int err = qr__storage_os_err(s, rv, "storage: preallocate %llu bytes for %s",
                                     (unsigned long long)s->opts.segment_size, tmp);
        return segment_create_abandon(s, *fd_out, tmp, err);
    }
    struct qr__storage_segment_header h = {
        .version = QR_STORAGE_FORMAT_VERSION,
        .cluster_id = s->opts.cluster_id,
        .node_id = s->opts.node_id,
        .seq = s->segments_count > 0 ? s->segments[s->segments_count - 1].seq + 1 : 1,
        .prev_index = s->last_index,
        .first_seq = s->seq_next,
        .hard_state = s->hard_state,
    };
    uint8_t header[QR__STORAGE_SEGMENT_HEADER_SIZE];
    qr__storage_segment_header_encode(&h, header);
    rv = s->fs->file_write(s->fs->ctx, *fd_out, header, sizeof(header), 0);
    if (rv == 0) {
        rv = s->fs->file_sync(s->fs->ctx, *fd_out);
        s->syncs_count++;
    }
    if (rv != 0) {
        int err = qr__storage_os_err(s, rv, "storage: write header of %s", tmp);
        return segment_create_abandon(s, *fd_out, tmp, err);
    }
    return 0;
}

/* Creates the next segment and makes it the open one. */
static int segment_create(struct qr_storage *s)
{
    QR_ASSERT(!s->has_open);
    int rv = segments_reserve(s);
    if (rv != 0) {
        return rv;
    }
    struct qr__storage_segment segment = {
        .seq = s->segments_count > 0 ? s->segments[s->segments_count - 1].seq + 1 : 1,
        .prev_index = s->last_index,
        .index_max = s->last_index,
    };
    char name[QR__STORAGE_NAME_SIZE];
    char tmp_name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    char tmp[QR__STORAGE_PATH_SIZE];
    qr__storage_segment_name(segment.seq, name);
    qr__storage_tmp_name(name, tmp_name);
    qr__storage_path(s, name, path);
    qr__storage_path(s, tmp_name, tmp);
    int fd = -1;
    rv = segment_create_file(s, tmp, &fd);
    if (rv != 0) {
        return rv;
    }
    rv = s->fs->path_rename(s->fs->ctx, tmp, path);
    if (rv != 0) {
        (void)s->fs->file_close(s->fs->ctx, fd); /* Failing for good anyway. */
        (void)qr__storage_os_err(s, rv, "storage: rename %s to %s", tmp, path);
        return qr__storage_fail(s, QR_EIO);
    }
    s->segments[s->segments_count++] = segment; /* Reserved above. */
    rv = qr__storage_sync_dir(s);
    if (rv != 0) {
        (void)s->fs->file_close(s->fs->ctx, fd); /* The storage is failed now. */
        return rv;
    }
    s->has_open = true;
    s->open_fd = fd;
    s->open_offset = QR__STORAGE_SEGMENT_HEADER_SIZE;
    s->open_size = s->opts.segment_size;
    QR_LOG_DEBUGF("storage: opened segment %s after index %llu", path,
                  (unsigned long long)segment.prev_index);
    return 0;
}

int qr__storage_wal_init(struct qr_storage *s)
{
    QR_ASSERT(s->segments_count == 0 && !s->has_open);
    return segment_create(s);
}

/* Makes the open segment able to take `size` more bytes (and still its seal). */
static int segment_make_room(struct qr_storage *s, uint64_t size)
{
    if (s->has_open && s->open_offset + size + QR__STORAGE_SEAL_BATCH_SIZE <= s->open_size) {
        return 0;
    }
    if (s->has_open) {
        int rv = segment_seal(s);
        if (rv != 0) {
            return rv;
        }
    }
    int rv = segment_create(s);
    if (rv != 0) {
        return rv;
    }
    QR_ASSERT(s->open_offset + size + QR__STORAGE_SEAL_BATCH_SIZE <= s->open_size);
    return 0;
}

/* ---- appending ---- */

/* The log's last index as the next batch sees it (after a pending reset). */
static qr_index effective_last(const struct qr_storage *s)
{
    return s->reset_pending ? s->snapshot.index : s->last_index;
}

static int write_check_entries(struct qr_storage *s, const struct qr_storage_batch *b)
{
    uint64_t size_max = batch_entries_size_max(s);
    for (size_t i = 0; i < b->entries_count; i++) {
        const struct qr_entry *e = &b->entries[i];
        const struct qr_entry *prev = i > 0 ? &b->entries[i - 1] : NULL;
        if (prev != NULL && (e->index != prev->index + 1 || e->term < prev->term)) {
            return qr__errf(s->errmsg, QR_EINVAL,
                            "storage: entry %zu (index %llu term %llu) does not follow index %llu "
                            "term %llu",
                            i, (unsigned long long)e->index, (unsigned long long)e->term,
                            (unsigned long long)prev->index, (unsigned long long)prev->term);
        }
        if (e->term == 0 || e->index == 0 || e->type < QR_ENTRY_NORMAL ||
            e->type > QR_ENTRY_CONFIG || (e->data.len > 0 && e->data.base == NULL)) {
            return qr__errf(s->errmsg, QR_EINVAL,
                            "storage: entry %zu (index %llu term %llu type %d) is invalid", i,
                            (unsigned long long)e->index, (unsigned long long)e->term,
                            (int)e->type);
        }
        if (e->data.len > QR_STORAGE_ENTRY_SIZE_MAX ||
            qr__storage_entry_record_size(e->data.len) > size_max) {
            return qr__errf(
                s->errmsg, QR_ETOOBIG,
                "storage: entry %llu of %zu bytes does not fit in a batch of a %llu-byte "
                "segment",
                (unsigned long long)e->index, e->data.len,
                (unsigned long long)s->opts.segment_size);
        }
    }
    return 0;
}

static int write_check(struct qr_storage *s, const struct qr_storage_batch *b)
{
    qr_index last = effective_last(s);
    const struct qr_snapshot_meta *snap = b->snapshot;
    if (snap != NULL) {
        if (!s->has_snapshot || snap->index != s->snapshot.index ||
            snap->term != s->snapshot.term) {
            return qr__errf(s->errmsg, QR_EINVAL,
                            "storage: batch installs snapshot %llu term %llu, but the published "
                            "snapshot is %llu term %llu (finish the snapshot writer first)",
                            (unsigned long long)snap->index, (unsigned long long)snap->term,
                            (unsigned long long)s->snapshot.index,
                            (unsigned long long)s->snapshot.term);
        }
        last = snap->index;
    }
    if (b->entries_count > 0) {
        QR_ASSERT(b->entries != NULL);
        qr_index first = b->entries[0].index;
        qr_index floor = s->has_snapshot ? s->snapshot.index : 0;
        if (first <= floor || first > last + 1) {
            return qr__errf(s->errmsg, QR_EINVAL,
                            "storage: entries start at index %llu; allowed are %llu to %llu "
                            "(after the snapshot, no gap after the last entry)",
                            (unsigned long long)first, (unsigned long long)floor + 1,
                            (unsigned long long)last + 1);
        }
    }
    if (b->has_hard_state && b->hard_state.term < s->hard_state.term) {
        return qr__errf(s->errmsg, QR_EINVAL, "storage: hard state term %llu is below %llu",
                        (unsigned long long)b->hard_state.term,
                        (unsigned long long)s->hard_state.term);
    }
    return write_check_entries(s, b);
}

/* One framed batch of a write: optional reset, some entries, optional hard state. */
struct sub_batch {
    const struct qr_snapshot_meta *reset; /* Reset the log to end at reset->index. */
    const struct qr_entry *entries;
    size_t entries_count;
    const struct qr_hard_state *hard_state;
    uint64_t body_size;
};

static void sub_batch_encode(const struct qr_storage *s, const struct sub_batch *sb, uint8_t *buf)
{
    uint8_t *body = buf + QR__STORAGE_BATCH_HEADER_SIZE;
    uint8_t *p = body;
    if (sb->reset != NULL) {
        p = qr__storage_record_put_reset(p, sb->reset->index, sb->reset->term);
    }
    for (size_t i = 0; i < sb->entries_count; i++) {
        p = qr__storage_record_put_entry(p, &sb->entries[i]);
    }
    if (sb->hard_state != NULL) {
        p = qr__storage_record_put_hard_state(p, sb->hard_state);
    }
    QR_ASSERT((uint64_t)(p - body) == sb->body_size);
    struct qr__storage_batch_header h = {
        .seq = s->seq_next,
        .group_seq = s->group_seq != 0 ? s->group_seq : s->seq_next,
        .first_index = sb->entries_count > 0 ? sb->entries[0].index : 0,
        .entries_count = (uint32_t)sb->entries_count,
        .records_count = (uint32_t)(sb->entries_count + (sb->reset != NULL ? 1 : 0) +
                                    (sb->hard_state != NULL ? 1 : 0)),
        .body_size = (uint32_t)sb->body_size,
    };
    h.body_crc = qr__crc32c(0, body, (size_t)sb->body_size);
    qr__storage_batch_header_encode(&h, buf);
}

static void sub_batch_done(struct qr_storage *s, const struct sub_batch *sb, uint64_t size)
{
    struct qr__storage_segment *segment = &s->segments[s->segments_count - 1];
    if (sb->reset != NULL) {
        s->last_index = sb->reset->index;
        s->reset_pending = false;
    }
    if (sb->entries_count > 0) {
        s->last_index = sb->entries[sb->entries_count - 1].index;
    }
    if (s->last_index > segment->index_max) {
        segment->index_max = s->last_index;
    }
    if (sb->hard_state != NULL) {
        s->hard_state = *sb->hard_state;
    }
    s->group_seq = s->group_seq != 0 ? s->group_seq : s->seq_next;
    s->seq_next++;
    s->open_offset += size;
    s->batches_count++;
    s->bytes_written += size;
}

static int sub_batch_write(struct qr_storage *s, const struct sub_batch *sb)
{
    uint64_t size = QR__STORAGE_BATCH_HEADER_SIZE + sb->body_size;
    int rv = segment_make_room(s, size);
    if (rv == 0) {
        rv = buf_reserve(s, (size_t)size);
    }
    if (rv != 0) {
        return rv;
    }
    sub_batch_encode(s, sb, s->buf);
    rv = segment_append(s, s->buf, (size_t)size);
    if (rv != 0) {
        return rv;
    }
    sub_batch_done(s, sb, size);
    return 0;
}

/* Splits the batch into framed batches of at most batch_size_max bytes and writes them. */
static int write_batches(struct qr_storage *s,
                         const struct qr_snapshot_meta *reset,
                         const struct qr_storage_batch *b,
                         const struct qr_hard_state *hard_state)
{
    uint64_t size_max = batch_entries_size_max(s);
    size_t pos = 0;
    /* Bounded: every round but the last consumes at least one entry. */
    for (size_t round = 0; round <= b->entries_count; round++) {
        struct sub_batch sb = {.reset = round == 0 ? reset : NULL, .entries = b->entries + pos};
        uint64_t entries_size = 0;
        while (pos + sb.entries_count < b->entries_count) {
            const struct qr_entry *e = &b->entries[pos + sb.entries_count];
            uint64_t record = qr__storage_entry_record_size(e->data.len);
            if (sb.entries_count > 0 && entries_size + record > size_max) {
                break;
            }
            entries_size += record;
            sb.entries_count++;
        }
        pos += sb.entries_count;
        bool is_last = pos == b->entries_count;
        sb.hard_state = is_last ? hard_state : NULL;
        sb.body_size = entries_size + (sb.reset != NULL ? QR__STORAGE_RESET_RECORD_SIZE : 0) +
                       (sb.hard_state != NULL ? QR__STORAGE_HARD_STATE_RECORD_SIZE : 0);
        int rv = sub_batch_write(s, &sb);
        if (rv != 0 || is_last) {
            return rv;
        }
    }
    QR_ASSERT(false); /* The last round always returns. */
    return QR_EINTERNAL;
}

int qr__storage_wal_append(struct qr_storage *s, const struct qr_storage_batch *batch)
{
    int rv = write_check(s, batch);
    if (rv != 0) {
        return rv;
    }
    const struct qr_snapshot_meta *reset = batch->snapshot;
    if (reset == NULL && s->reset_pending) {
        reset = &s->snapshot;
    }
    const struct qr_hard_state *hs = NULL;
    if (batch->has_hard_state && memcmp(&batch->hard_state, &s->hard_state, sizeof(*hs)) != 0) {
        hs = &batch->hard_state; /* An unchanged hard state is durable already. */
    }
    if (reset == NULL && batch->entries_count == 0 && hs == NULL) {
        return 0; /* Nothing new: no batch, no fsync. */
    }
    return write_batches(s, reset, batch, hs);
}

int qr__storage_wal_sync(struct qr_storage *s)
{
    if (s->opts.sync != QR_STORAGE_SYNC_ALWAYS || s->group_seq == 0) {
        return 0; /* Nothing appended since the last fdatasync. */
    }
    return segment_sync(s); /* One fdatasync for the whole group: group commit. */
}

/* ---- recovery ---- */

/* What reading one segment found. */
struct segment_scan {
    uint64_t size;                        /* File size. */
    uint64_t end;                         /* Just after the last valid batch. */
    enum qr__storage_batch_status status; /* Why reading stopped at `end`. */
    bool has_garbage;                     /* Non-zero bytes after `end`. */
    uint64_t unsynced_count;              /* Valid batches of the torn group after `end`. */
};

static int segment_read(struct qr_storage *s, const char *name, struct segment_scan *scan)
{
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_path(s, name, path);
    int fd = -1;
    int rv = s->fs->file_open(s->fs->ctx, path, QR_STORAGE_FS_READ, &fd);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: open %s", path);
    }
    rv = s->fs->file_size(s->fs->ctx, fd, &scan->size);
    if (rv != 0) {
        rv = qr__storage_os_err(s, rv, "storage: size of %s", path);
    } else if (scan->size > QR_STORAGE_SEGMENT_SIZE_MAX) {
        rv = qr__errf(s->errmsg, QR_ECORRUPT, "storage: %s: %llu bytes, more than any segment",
                      path, (unsigned long long)scan->size);
    }
    if (rv == 0) {
        rv = buf_reserve(s, (size_t)scan->size);
    }
    if (rv == 0) {
        rv = qr__storage_read_exact(s, fd, name, s->buf, (size_t)scan->size, 0);
    }
    (void)s->fs->file_close(s->fs->ctx, fd); /* Read-only. */
    return rv;
}

static int segment_check_header(struct qr_storage *s,
                                const char *path,
                                uint64_t seq,
                                const struct segment_scan *scan)
{
    struct qr__storage_segment_header h;
    int rv = qr__storage_segment_header_decode(s->buf, (size_t)scan->size, &h, s->errmsg);
    if (rv != 0) {
        return qr__err_wrapf(s->errmsg, rv, "storage: %s", path);
    }
    if (h.cluster_id != s->opts.cluster_id || h.node_id != s->opts.node_id) {
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: %s: offset 16: written by cluster %llu node %llu, not cluster "
                        "%llu node %llu",
                        path, (unsigned long long)h.cluster_id, (unsigned long long)h.node_id,
                        (unsigned long long)s->opts.cluster_id,
                        (unsigned long long)s->opts.node_id);
    }
    if (h.seq != seq) {
        return qr__errf(s->errmsg, QR_ECORRUPT, "storage: %s: offset 32: header says segment %llu",
                        path, (unsigned long long)h.seq);
    }
    rv = qr__storage_replay_segment(&s->replay, &h, s->errmsg);
    if (rv != 0) {
        return qr__err_wrapf(s->errmsg, rv, "storage: %s", path);
    }
    rv = segments_reserve(s);
    if (rv == 0) {
        s->segments[s->segments_count++] = (struct qr__storage_segment){
            .seq = seq, .prev_index = h.prev_index, .index_max = h.prev_index};
    }
    return rv;
}

/* Replays the valid batches from the header on; stops at the first invalid bytes. */
static int segment_replay(struct qr_storage *s, const char *path, struct segment_scan *scan)
{
    uint64_t offset = QR__STORAGE_SEGMENT_HEADER_SIZE;
    scan->status = QR__BATCH_EOF;
    /* Bounded: every batch takes at least a header's worth of bytes. */
    for (uint64_t i = 0; i <= scan->size / QR__STORAGE_BATCH_HEADER_SIZE; i++) {
        struct qr__storage_batch_header h;
        scan->status = qr__storage_batch_check(s->buf + offset, (size_t)(scan->size - offset), &h);
        if (scan->status != QR__BATCH_OK) {
            break;
        }
        int rv = qr__storage_replay_batch(
            &s->replay, &h, s->buf + offset + QR__STORAGE_BATCH_HEADER_SIZE, s->errmsg);
        if (rv != 0) {
            return qr__err_wrapf(s->errmsg, rv, "storage: %s: batch at offset %llu", path,
                                 (unsigned long long)offset);
        }
        offset += QR__STORAGE_BATCH_HEADER_SIZE + h.body_size;
    }
    scan->end = offset;
    struct qr__storage_segment *segment = &s->segments[s->segments_count - 1];
    segment->index_max = s->replay.index_max;
    segment->size = offset;
    return 0;
}

/*
 * After the last valid batch of the last segment: torn tail or corruption? A batch
 * of a later sync group (group seq above the first missing seq) proves that the bad
 * bytes were fsynced before it was written: corruption. Valid batches of the same
 * unsynced group are part of the torn tail (page write-back order is arbitrary).
 */
static int segment_judge_tail(struct qr_storage *s, const char *path, struct segment_scan *scan)
{
    uint64_t expected = s->replay.seq_next;
    const uint8_t *buf = s->buf;
    for (uint64_t p = scan->end + 8; p + QR__STORAGE_BATCH_HEADER_SIZE <= scan->size; p += 8) {
        struct qr__storage_batch_header h;
        if (qr__get_u32(buf + p) != QR__STORAGE_BATCH_MAGIC ||
            qr__storage_batch_check(buf + p, (size_t)(scan->size - p), &h) != QR__BATCH_OK) {
            continue;
        }
        if (h.group_seq > expected || h.seq < expected) {
            return qr__errf(s->errmsg, QR_ECORRUPT,
                            "storage: %s: offset %llu: %s, but a batch written after it was "
                            "synced (seq %llu) follows at offset %llu",
                            path, (unsigned long long)scan->end,
                            qr__storage_batch_status_text(scan->status), (unsigned long long)h.seq,
                            (unsigned long long)p);
        }
        scan->unsynced_count++;
    }
    scan->has_garbage = false;
    for (uint64_t p = scan->end; p < scan->size; p++) {
        if (buf[p] != 0) {
            scan->has_garbage = true;
            break;
        }
    }
    return 0;
}

static int
segment_recover(struct qr_storage *s, uint64_t seq, bool is_last, struct segment_scan *scan)
{
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_segment_name(seq, name);
    qr__storage_path(s, name, path);
    memset(scan, 0, sizeof(*scan));
    int rv = segment_read(s, name, scan);
    if (rv == 0) {
        rv = segment_check_header(s, path, seq, scan);
    }
    if (rv == 0) {
        rv = segment_replay(s, path, scan);
    }
    if (rv != 0 || is_last) {
        return rv != 0 ? rv : segment_judge_tail(s, path, scan);
    }
    if (!s->replay.is_sealed) {
        return qr__errf(s->errmsg, QR_ECORRUPT,
                        "storage: %s: offset %llu: %s in a closed segment (later segments exist)",
                        path, (unsigned long long)scan->end,
                        qr__storage_batch_status_text(scan->status));
    }
    if (scan->end != scan->size) {
        return qr__errf(s->errmsg, QR_ECORRUPT,
                        "storage: %s: offset %llu: %llu bytes after the seal of a closed segment",
                        path, (unsigned long long)scan->end,
                        (unsigned long long)(scan->size - scan->end));
    }
    return 0;
}

/* Makes the recovered last segment durable as it is now, and ready for appending. */
static int recover_prepare_last(struct qr_storage *s, const struct segment_scan *scan)
{
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    segment_open_path(s, name, path);
    int fd = -1;
    int rv = s->fs->file_open(s->fs->ctx, path, QR_STORAGE_FS_WRITE, &fd);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: open %s for writing", path);
    }
    bool is_cut = scan->has_garbage || (s->replay.is_sealed && scan->end != scan->size);
    if (is_cut) {
        rv = s->fs->file_truncate(s->fs->ctx, fd, scan->end);
        rv = rv != 0 ? qr__storage_os_err(s, rv, "storage: truncate %s", path) : 0;
    }
    uint64_t open_size = scan->size > s->opts.segment_size ? scan->size : s->opts.segment_size;
    if (rv == 0 && !s->replay.is_sealed && scan->size < open_size) {
        /* Best effort: a full disk must not stop start-up; appends handle ENOSPC later. */
        (void)s->fs->file_allocate(s->fs->ctx, fd, 0, open_size);
    }
    if (rv == 0 && (is_cut || s->opts.sync == QR_STORAGE_SYNC_ALWAYS)) {
        /* What recovery reports is what the core will treat as durable: make it so. */
        rv = s->fs->file_sync(s->fs->ctx, fd);
        s->syncs_count++;
        rv = rv != 0 ? qr__storage_os_err(s, rv, "storage: fdatasync %s", path) : 0;
    }
    if (rv != 0 || s->replay.is_sealed) {
        (void)s->fs->file_close(s->fs->ctx, fd); /* Synced, or failing anyway. */
        return rv;
    }
    s->has_open = true;
    s->open_fd = fd;
    s->open_offset = scan->end;
    s->open_size = open_size;
    return 0;
}

static void recover_log_tail(const struct qr_storage *s,
                             const struct segment_scan *scan,
                             struct qr_storage_recovered *rec)
{
    if (!scan->has_garbage) {
        return;
    }
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    segment_open_path(s, name, path);
    rec->torn_bytes = scan->size - scan->end;
    QR_LOG_WARNF("storage: %s: torn tail at offset %llu (%s, %llu complete but unsynced batches "
                 "after it): %llu bytes cut off, the log ends at index %llu",
                 path, (unsigned long long)scan->end, qr__storage_batch_status_text(scan->status),
                 (unsigned long long)scan->unsynced_count, (unsigned long long)rec->torn_bytes,
                 (unsigned long long)s->replay.last);
}

/*
 * Reconcile the log with the snapshot. A log that ends before the snapshot, or
 * whose entry at the snapshot's index has another term, is replaced by the
 * snapshot (Raft §7: a follower discards its log when an installed snapshot
 * conflicts with it); this happens after a crash between publishing a received
 * snapshot and writing the reset record, which the next write then adds.
 */
static void recover_reconcile(struct qr_storage *s, struct qr_storage_recovered *rec)
{
    struct qr__storage_replay *r = &s->replay;
    s->last_index = r->last;
    if (!s->has_snapshot) {
        return;
    }
    qr_index index = s->snapshot.index;
    bool is_conflict = r->entries_count > 0 && r->entries[0].index == index &&
                       r->entries[0].term != s->snapshot.term;
    if (r->last < index || is_conflict) {
        rec->discarded_count = r->entries_count > 0 ? r->entries_count - 1 : 0;
        QR_LOG_WARNF("storage: %s: the log (last index %llu) %s snapshot %llu term %llu: %llu "
                     "entries after it are replaced by the snapshot",
                     s->dir, (unsigned long long)r->last,
                     is_conflict ? "conflicts with" : "ends before", (unsigned long long)index,
                     (unsigned long long)s->snapshot.term,
                     (unsigned long long)rec->discarded_count);
        qr__storage_replay_truncate(r, 0);
        s->reset_pending = true;
        return;
    }
    qr__storage_replay_drop_prefix(r, index);
}

/* After reconciling, the entries must continue right after the snapshot (or from 1). */
static int recover_check_start(struct qr_storage *s)
{
    const struct qr__storage_replay *r = &s->replay;
    qr_index base = s->has_snapshot ? s->snapshot.index : 0;
    qr_index first = r->entries_count > 0 ? r->entries[0].index : r->last + 1;
    if (s->reset_pending || first == base + 1) {
        return 0;
    }
    return qr__errf(s->errmsg, QR_ECORRUPT,
                    "storage: %s: the log resumes at index %llu but the snapshot ends at %llu: "
                    "the entries in between are in no file",
                    s->dir, (unsigned long long)first, (unsigned long long)base);
}

static int recover_check_seqs(struct qr_storage *s, const uint64_t *seqs, size_t count)
{
    if (count == 0) {
        return qr__errf(s->errmsg, QR_ECORRUPT,
                        "storage: %s has a meta file but no log segment: the hard state (term and "
                        "vote) is missing",
                        s->dir);
    }
    for (size_t i = 1; i < count; i++) {
        if (seqs[i] != seqs[i - 1] + 1) {
            char name[QR__STORAGE_NAME_SIZE];
            qr__storage_segment_name(seqs[i - 1] + 1, name);
            return qr__errf(s->errmsg, QR_ECORRUPT,
                            "storage: %s/%s is missing: segments %llu and %llu exist", s->dir, name,
                            (unsigned long long)seqs[i - 1], (unsigned long long)seqs[i]);
        }
    }
    return 0;
}

int qr__storage_wal_recover(struct qr_storage *s,
                            const uint64_t *seqs,
                            size_t seqs_count,
                            struct qr_storage_recovered *recovered)
{
    int rv = recover_check_seqs(s, seqs, seqs_count);
    if (rv != 0) {
        return rv;
    }
    qr__storage_replay_init(&s->replay, s->has_snapshot ? s->snapshot.index : 0,
                            s->opts.recovery_size_max);
    struct segment_scan scan;
    memset(&scan, 0, sizeof(scan));
    for (size_t i = 0; i < seqs_count; i++) {
        rv = segment_recover(s, seqs[i], i + 1 == seqs_count, &scan);
        if (rv != 0) {
            return rv;
        }
    }
    recover_log_tail(s, &scan, recovered);
    qr_free(s->buf); /* As big as a segment: not worth keeping for batches. */
    s->buf = NULL;
    s->buf_size = 0;
    rv = recover_prepare_last(s, &scan);
    if (rv != 0) {
        return rv;
    }
    s->seq_next = s->replay.seq_next;
    s->group_seq = 0;
    s->hard_state = s->replay.hard_state;
    recovered->hard_state = s->replay.hard_state;
    recover_reconcile(s, recovered);
    QR_DEBUG_ASSERT(qr__storage_replay_is_consistent(&s->replay));
    return recover_check_start(s);
}

/* ---- compaction ---- */

int qr__storage_wal_compact(struct qr_storage *s, qr_index upto, uint64_t *removed_out)
{
    if (!s->has_snapshot || upto > s->snapshot.index) {
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: cannot compact up to %llu: the snapshot covers only up to %llu",
                        (unsigned long long)upto,
                        (unsigned long long)(s->has_snapshot ? s->snapshot.index : 0));
    }
    /* Oldest first, each removal durable before the next, so a crash leaves no gap. */
    while (s->segments_count > 1 && s->segments[0].index_max <= upto) {
        char name[QR__STORAGE_NAME_SIZE];
        char path[QR__STORAGE_PATH_SIZE];
        qr__storage_segment_name(s->segments[0].seq, name);
        qr__storage_path(s, name, path);
        int rv = s->fs->path_unlink(s->fs->ctx, path);
        if (rv != 0) {
            (void)qr__storage_os_err(s, rv, "storage: delete %s", path);
            return qr__storage_fail(s, QR_EIO);
        }
        rv = qr__storage_sync_dir(s);
        if (rv != 0) {
            return rv;
        }
        memmove(s->segments, s->segments + 1, (s->segments_count - 1) * sizeof(s->segments[0]));
        s->segments_count--;
        (*removed_out)++;
        QR_LOG_DEBUGF("storage: compacted %s (entries up to %llu)", path, (unsigned long long)upto);
    }
    return 0;
}

void qr__storage_wal_close(struct qr_storage *s)
{
    if (s->has_open) {
        (void)s->fs->file_close(s->fs->ctx, s->open_fd); /* Acknowledged data is synced. */
        s->has_open = false;
        s->open_fd = -1;
    }
    qr_free(s->segments);
    s->segments = NULL;
    s->segments_count = 0;
    s->segments_capacity = 0;
    qr_free(s->buf);
    s->buf = NULL;
    s->buf_size = 0;
}
