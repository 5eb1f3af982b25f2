/*
 * storage/replay.c: the log as the batches on disk describe it.
 *
 * Layer: storage. No I/O. Every rule checked here is one the writer (wal.c)
 * follows, so a violation in checksum-valid data means corruption or a bug,
 * never a torn write: those were filtered out by the checksums before.
 */
#include "storage/replay.h"

#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"

/* Per kept entry, what memory accounting charges besides the data. */
#define ENTRY_OVERHEAD_SIZE ((uint64_t)sizeof(struct qr_entry))

void qr__storage_replay_init(struct qr__storage_replay *replay,
                             qr_index keep_from,
                             uint64_t bytes_max)
{
    memset(replay, 0, sizeof(*replay));
    replay->keep_from = keep_from;
    replay->bytes_max = bytes_max;
}

void qr__storage_replay_truncate(struct qr__storage_replay *replay, qr_index from)
{
    while (replay->entries_count > 0) {
        struct qr_entry *e = &replay->entries[replay->entries_count - 1];
        if (e->index < from) {
            break;
        }
        replay->bytes -= e->data.len + ENTRY_OVERHEAD_SIZE;
        qr_free(e->data.base);
        replay->entries_count--;
    }
}

void qr__storage_replay_drop_prefix(struct qr__storage_replay *replay, qr_index upto)
{
    size_t drop = 0;
    while (drop < replay->entries_count && replay->entries[drop].index <= upto) {
        replay->bytes -= replay->entries[drop].data.len + ENTRY_OVERHEAD_SIZE;
        qr_free(replay->entries[drop].data.base);
        drop++;
    }
    replay->entries_count -= drop;
    memmove(replay->entries, replay->entries + drop,
            replay->entries_count * sizeof(replay->entries[0]));
}

void qr__storage_replay_free(struct qr__storage_replay *replay)
{
    qr__storage_replay_truncate(replay, 0);
    qr_free(replay->entries);
    replay->entries = NULL;
    replay->entries_capacity = 0;
    QR_ASSERT(replay->bytes == 0);
}

bool qr__storage_replay_is_consistent(const struct qr__storage_replay *replay)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < replay->entries_count; i++) {
        const struct qr_entry *e = &replay->entries[i];
        if (e->index != replay->entries[0].index + i || e->term == 0) {
            return false;
        }
        bytes += e->data.len + ENTRY_OVERHEAD_SIZE;
    }
    if (replay->entries_count > 0 &&
        replay->entries[replay->entries_count - 1].index != replay->last) {
        return false;
    }
    return bytes == replay->bytes && bytes <= replay->bytes_max;
}

int qr__storage_replay_segment(struct qr__storage_replay *replay,
                               const struct qr__storage_segment_header *header,
                               char *errmsg)
{
    if (!replay->has_segment) {
        if (header->prev_index > replay->keep_from) {
            return qr__errf(errmsg, QR_ECORRUPT,
                            "offset 40: the log continues after index %llu, but the entries "
                            "before it are in no segment and no snapshot (snapshot index %llu)",
                            (unsigned long long)header->prev_index,
                            (unsigned long long)replay->keep_from);
        }
        replay->last = header->prev_index;
        replay->seq_next = header->first_seq;
        replay->has_segment = true;
    } else if (!replay->is_sealed || header->prev_index != replay->last ||
               header->first_seq != replay->seq_next) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "offset 40: segment starts after index %llu with batch %llu, but the "
                        "previous one %s at index %llu with batch %llu",
                        (unsigned long long)header->prev_index,
                        (unsigned long long)header->first_seq,
                        replay->is_sealed ? "ended" : "was not sealed",
                        (unsigned long long)replay->last, (unsigned long long)replay->seq_next);
    }
    replay->is_sealed = false;
    replay->index_max = header->prev_index;
    replay->hard_state = header->hard_state;
    replay->has_hard_state = true;
    return 0;
}

/* Room for one more kept entry. */
static int replay_reserve(struct qr__storage_replay *replay, size_t data_size)
{
    if (replay->bytes + data_size + ENTRY_OVERHEAD_SIZE > replay->bytes_max) {
        return QR_ENOMEM;
    }
    if (replay->entries_count < replay->entries_capacity) {
        return 0;
    }
    size_t capacity = replay->entries_capacity == 0 ? 64 : replay->entries_capacity * 2;
    struct qr_entry *grown = qr_realloc(replay->entries, capacity * sizeof(*grown));
    if (grown == NULL) {
        return QR_ENOMEM;
    }
    replay->entries = grown;
    replay->entries_capacity = capacity;
    return 0;
}

static int replay_keep(struct qr__storage_replay *replay, const struct qr_entry *e, char *errmsg)
{
    int rv = replay_reserve(replay, e->data.len);
    if (rv != 0) {
        return qr__errf(errmsg, rv,
                        "entry %llu: the log needs more than %llu bytes of memory to recover "
                        "(raise recovery_size_max, or compact after a snapshot)",
                        (unsigned long long)e->index, (unsigned long long)replay->bytes_max);
    }
    struct qr_entry *kept = &replay->entries[replay->entries_count];
    *kept = *e;
    kept->data.base = NULL;
    if (e->data.len > 0) {
        kept->data.base = qr_malloc(e->data.len);
        if (kept->data.base == NULL) {
            return qr__errf(errmsg, QR_ENOMEM, "entry %llu: no memory for %zu bytes",
                            (unsigned long long)e->index, e->data.len);
        }
        memcpy(kept->data.base, e->data.base, e->data.len);
    }
    replay->entries_count++;
    replay->bytes += e->data.len + ENTRY_OVERHEAD_SIZE;
    return 0;
}

static int
replay_entry(struct qr__storage_replay *replay, const struct qr_entry *e, size_t at, char *errmsg)
{
    if (e->index > replay->last + 1) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "body offset %zu: entry %llu leaves a gap after the last index %llu", at,
                        (unsigned long long)e->index, (unsigned long long)replay->last);
    }
    if (e->index <= replay->last) {
        qr__storage_replay_truncate(replay, e->index); /* A conflicting suffix is replaced. */
    }
    if (replay->entries_count > 0) {
        const struct qr_entry *prev = &replay->entries[replay->entries_count - 1];
        QR_ASSERT(prev->index + 1 == e->index);
        if (e->term < prev->term) {
            return qr__errf(errmsg, QR_ECORRUPT,
                            "body offset %zu: entry %llu has term %llu, below the term %llu of "
                            "the entry before it",
                            at, (unsigned long long)e->index, (unsigned long long)e->term,
                            (unsigned long long)prev->term);
        }
    }
    replay->last = e->index;
    if (e->index > replay->index_max) {
        replay->index_max = e->index;
    }
    qr_index keep_from = replay->keep_from > 0 ? replay->keep_from : 1;
    if (e->index < keep_from) {
        return 0;
    }
    return replay_keep(replay, e, errmsg);
}

/* Where each kind of record may appear in a batch (see quorum/storage.h). */
static int replay_check_order(const struct qr__storage_batch_header *h,
                              const struct qr__storage_record *r,
                              uint32_t record_i,
                              uint32_t entries_seen,
                              size_t at,
                              char *errmsg)
{
    bool ok = true;
    switch (r->type) {
    case QR__RECORD_RESET:
        ok = record_i == 0;
        break;
    case QR__RECORD_ENTRY:
        ok = entries_seen < h->entries_count && r->entry.index == h->first_index + entries_seen;
        break;
    case QR__RECORD_HARD_STATE:
        ok = record_i + 1 == h->records_count && entries_seen == h->entries_count;
        break;
    case QR__RECORD_SEAL:
        ok = h->records_count == 1;
        break;
    }
    if (!ok) {
        return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: record %u (type %d) out of place",
                        at, record_i, (int)r->type);
    }
    return 0;
}

static int replay_record(struct qr__storage_replay *replay,
                         const struct qr__storage_batch_header *h,
                         const struct qr__storage_record *r,
                         size_t at,
                         char *errmsg)
{
    switch (r->type) {
    case QR__RECORD_ENTRY:
        return replay_entry(replay, &r->entry, at, errmsg);
    case QR__RECORD_HARD_STATE:
        replay->hard_state = r->hard_state;
        replay->has_hard_state = true;
        return 0;
    case QR__RECORD_RESET:
        qr__storage_replay_truncate(replay, 0);
        replay->last = r->index;
        if (r->index > replay->index_max) {
            replay->index_max = r->index;
        }
        return 0;
    case QR__RECORD_SEAL:
        if (r->index != replay->last || r->seq + 1 != h->seq) {
            return qr__errf(errmsg, QR_ECORRUPT,
                            "body offset %zu: seal says index %llu batch %llu, log has index "
                            "%llu batch %llu",
                            at, (unsigned long long)r->index, (unsigned long long)r->seq,
                            (unsigned long long)replay->last, (unsigned long long)(h->seq - 1));
        }
        replay->is_sealed = true;
        return 0;
    }
    return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: record type %d", at, (int)r->type);
}

int qr__storage_replay_batch(struct qr__storage_replay *replay,
                             const struct qr__storage_batch_header *header,
                             const uint8_t *body,
                             char *errmsg)
{
    QR_ASSERT(replay->has_segment);
    if (replay->is_sealed) {
        return qr__errf(errmsg, QR_ECORRUPT, "batch %llu follows the segment's seal",
                        (unsigned long long)header->seq);
    }
    if (header->seq != replay->seq_next) {
        return qr__errf(errmsg, QR_ECORRUPT, "batch seq %llu where %llu was expected",
                        (unsigned long long)header->seq, (unsigned long long)replay->seq_next);
    }
    size_t pos = 0;
    uint32_t entries_seen = 0;
    for (uint32_t i = 0; i < header->records_count; i++) {
        size_t at = pos;
        struct qr__storage_record r;
        int rv = qr__storage_record_next(body, header->body_size, &pos, &r, errmsg);
        if (rv == 0) {
            rv = replay_check_order(header, &r, i, entries_seen, at, errmsg);
        }
        if (rv == 0) {
            rv = replay_record(replay, header, &r, at, errmsg);
        }
        if (rv != 0) {
            return rv;
        }
        entries_seen += r.type == QR__RECORD_ENTRY ? 1 : 0;
    }
    if (entries_seen != header->entries_count || pos != header->body_size) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "body offset %zu: %u entries and %zu bytes of records, header says %u "
                        "and %u",
                        pos, entries_seen, pos, header->entries_count, header->body_size);
    }
    replay->seq_next = header->seq + 1;
    QR_DEBUG_ASSERT(qr__storage_replay_is_consistent(replay));
    return 0;
}
