/*
 * core/core_log.c: the in-memory Raft log.
 *
 * Layer: core (pure). See core_log.h. Compaction moves the remaining entries
 * to the front of the array; it runs once per snapshot, so its O(n) cost is
 * paid rarely.
 */
#include "core/core_log.h"

#include <string.h>

#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"

#define LOG_CAPACITY_MIN 64

void qr__log_init(struct qr__log *log)
{
    memset(log, 0, sizeof(*log));
}

static void entry_free(struct qr_entry *e)
{
    qr_free(e->data.base);
    e->data.base = NULL;
    e->data.len = 0;
}

void qr__log_close(struct qr__log *log)
{
    for (size_t i = 0; i < log->count; i++) {
        entry_free(&log->entries[i]);
    }
    qr_free(log->entries);
    memset(log, 0, sizeof(*log));
}

qr_index qr__log_last_index(const struct qr__log *log)
{
    return log->offset + log->count;
}

qr_term qr__log_last_term(const struct qr__log *log)
{
    return log->count > 0 ? log->entries[log->count - 1].term : log->offset_term;
}

qr_index qr__log_first_index(const struct qr__log *log)
{
    return log->offset + 1;
}

bool qr__log_term(const struct qr__log *log, qr_index index, qr_term *term_out)
{
    if (index == log->offset) {
        *term_out = log->offset_term;
        return true;
    }
    if (index < log->offset || index > qr__log_last_index(log)) {
        return false;
    }
    *term_out = log->entries[index - log->offset - 1].term;
    return true;
}

const struct qr_entry *qr__log_get(const struct qr__log *log, qr_index index)
{
    if (index <= log->offset || index > qr__log_last_index(log)) {
        return NULL;
    }
    const struct qr_entry *e = &log->entries[index - log->offset - 1];
    QR_DEBUG_ASSERT(e->index == index);
    return e;
}

int qr__log_append(struct qr__log *log, const struct qr_entry *entry)
{
    QR_ASSERT(entry->index == qr__log_last_index(log) + 1);
    QR_ASSERT(entry->term >= qr__log_last_term(log));
    if (log->count == log->capacity) {
        size_t capacity = log->capacity < LOG_CAPACITY_MIN ? LOG_CAPACITY_MIN : log->capacity * 2;
        struct qr_entry *grown = qr_realloc(log->entries, capacity * sizeof(*grown));
        if (grown == NULL) {
            return QR_ENOMEM;
        }
        log->entries = grown;
        log->capacity = capacity;
    }
    struct qr_entry copy = *entry;
    copy.data.base = NULL;
    if (entry->data.len > 0) {
        copy.data.base = qr_malloc(entry->data.len);
        if (copy.data.base == NULL) {
            return QR_ENOMEM;
        }
        memcpy(copy.data.base, entry->data.base, entry->data.len);
    }
    log->entries[log->count++] = copy;
    log->bytes += copy.data.len;
    return 0;
}

void qr__log_truncate(struct qr__log *log, qr_index from)
{
    QR_ASSERT(from > log->offset);
    while (qr__log_last_index(log) >= from) {
        struct qr_entry *e = &log->entries[log->count - 1];
        log->bytes -= e->data.len;
        entry_free(e);
        log->count--;
    }
}

void qr__log_compact(struct qr__log *log, qr_index upto, qr_term upto_term)
{
    if (upto <= log->offset) {
        return;
    }
    QR_ASSERT(upto <= qr__log_last_index(log));
    size_t drop = (size_t)(upto - log->offset);
    for (size_t i = 0; i < drop; i++) {
        log->bytes -= log->entries[i].data.len;
        entry_free(&log->entries[i]);
    }
    memmove(log->entries, log->entries + drop, (log->count - drop) * sizeof(*log->entries));
    log->count -= drop;
    log->offset = upto;
    log->offset_term = upto_term;
}

void qr__log_reset(struct qr__log *log, qr_index index, qr_term term)
{
    for (size_t i = 0; i < log->count; i++) {
        entry_free(&log->entries[i]);
    }
    log->count = 0;
    log->bytes = 0;
    log->offset = index;
    log->offset_term = term;
}
