/*
 * storage/replay.h: rebuilding the log and the hard state from decoded batches.
 *
 * Layer: storage. Pure (no I/O): recovery feeds it every segment header and
 * every checksum-valid batch in order, and so does the fuzzer. It applies the
 * format's rules (quorum/storage.h): batch seqs advance by one, segments
 * continue where the previous one ended, a batch starting at or below the last
 * index replaces the suffix, a reset record empties the log, a seal ends a
 * segment. A valid checksum over impossible content is corruption, reported as
 * QR_ECORRUPT. Entries below `keep_from` are checked but not kept, so memory
 * holds only what a core needs; everything kept is bounded by bytes_max.
 */
#ifndef QR_STORAGE_REPLAY_H
#define QR_STORAGE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/format.h"

struct qr__storage_replay {
    qr_index keep_from; /* Entries with a lower index are not kept (the snapshot index). */
    uint64_t bytes_max; /* Most bytes kept (data plus per-entry overhead). */
    bool has_segment;   /* A segment header was seen. */
    bool is_sealed;     /* The current segment's seal was seen: no batch may follow. */
    qr_index last;      /* Last index of the log so far (0: empty). */
    uint64_t seq_next;  /* Seq the next batch must carry. */
    qr_index index_max; /* Highest index written in the current segment (or its prev). */
    struct qr_hard_state hard_state;
    bool has_hard_state;      /* A hard-state record or a segment header set hard_state. */
    struct qr_entry *entries; /* Kept, consecutive: entries[i].index == entries[0].index + i,
                                 the last one's index == last. Data owned (qr_malloc). */
    size_t entries_count;
    size_t entries_capacity;
    uint64_t bytes; /* Accounted bytes of kept entries; <= bytes_max. */
};

void qr__storage_replay_init(struct qr__storage_replay *replay,
                             qr_index keep_from,
                             uint64_t bytes_max);
/* Frees every kept entry. The replay may be reused after init. */
void qr__storage_replay_free(struct qr__storage_replay *replay);

/*
 * Start a segment. For the first one, prev_index must be at most keep_from (the
 * entries before it were compacted into the snapshot); later ones must continue
 * exactly (prev_index == last, first_seq == seq_next) after a sealed one.
 */
int qr__storage_replay_segment(struct qr__storage_replay *replay,
                               const struct qr__storage_segment_header *header,
                               char *errmsg);

/* Apply one checksum-valid batch. QR_ECORRUPT (message names the body offset), QR_ENOMEM. */
int qr__storage_replay_batch(struct qr__storage_replay *replay,
                             const struct qr__storage_batch_header *header,
                             const uint8_t *body,
                             char *errmsg);

/* Drop kept entries with index >= from (freeing their data). */
void qr__storage_replay_truncate(struct qr__storage_replay *replay, qr_index from);

/* Drop kept entries with index <= upto, keeping the rest in place. */
void qr__storage_replay_drop_prefix(struct qr__storage_replay *replay, qr_index upto);

/* Internal consistency (kept entries consecutive and ending at last, bytes accounted). */
bool qr__storage_replay_is_consistent(const struct qr__storage_replay *replay);

#endif /* QR_STORAGE_REPLAY_H */
