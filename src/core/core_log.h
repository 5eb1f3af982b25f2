/*
 * core/core_log.h: the in-memory Raft log of one core.
 *
 * Layer: core (pure). Entries after the last snapshot (or compaction point)
 * live in one contiguous array so that output batches can hand out views
 * without copying. Each entry owns a copy of its payload. The log never
 * prints, never reads a clock, and grows only up to the limit its owner sets.
 */
#ifndef QR_CORE_LOG_H
#define QR_CORE_LOG_H

#include "quorum/core.h"

struct qr__log {
    struct qr_entry *entries; /* entries[0] has index offset + 1. Payloads owned. */
    size_t count;             /* Entries held. */
    size_t capacity;          /* Slots allocated. */
    qr_index offset;          /* Index just before entries[0] (snapshot or compaction point). */
    qr_term offset_term;      /* Term of the entry at `offset` (0 when offset is 0). */
    uint64_t bytes;           /* Sum of payload sizes held. */
};

void qr__log_init(struct qr__log *log);
void qr__log_close(struct qr__log *log);
qr_index qr__log_last_index(const struct qr__log *log);
qr_term qr__log_last_term(const struct qr__log *log);
/* First index held in memory (offset + 1; may exceed last_index when empty). */
qr_index qr__log_first_index(const struct qr__log *log);
/* Term at index; false when index is compacted (< offset) or beyond the end. */
bool qr__log_term(const struct qr__log *log, qr_index index, qr_term *term_out);
/* Entry at index, or NULL when not held. */
const struct qr_entry *qr__log_get(const struct qr__log *log, qr_index index);
/* Appends a copy of entry (its index must be last_index + 1). QR_ENOMEM on failure. */
int qr__log_append(struct qr__log *log, const struct qr_entry *entry);
/* Drops entries with index >= from (from > offset). */
void qr__log_truncate(struct qr__log *log, qr_index from);
/* Drops entries with index <= upto, remembering upto's term as the new offset term. */
void qr__log_compact(struct qr__log *log, qr_index upto, qr_term upto_term);
/* Drops everything and restarts after (index, term) (snapshot install). */
void qr__log_reset(struct qr__log *log, qr_index index, qr_term term);

#endif /* QR_CORE_LOG_H */
