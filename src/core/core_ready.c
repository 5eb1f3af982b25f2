/*
 * core/core_ready.c: the output batch and durability tracking.
 *
 * Layer: core (pure). Messages queue in an outbox; a message that promises
 * something about durable state (a vote, an append acknowledgement, a
 * finished snapshot install) is held until the persist batch holding that
 * state is reported durable, and dropped if the term moved on meanwhile. At
 * most opts.persist_batches_max persist batches are in flight; what accumulates
 * meanwhile forms the next one (group commit). A batch writes entries from where
 * the previous one stopped up to the log's last index when it left; a truncation
 * after it left makes what it wrote from the truncated index on stale, so its
 * completion makes durable only what lies below (its floor).
 */
#include <string.h>

#include "core/core_internal.h"
#include "core/core_priv.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/log.h"

#define OUTBOX_CAPACITY_MIN 64

static bool persist_dirty(const struct qr_core *core)
{
    return core->hard_state_dirty || core->install_pending ||
           core->unstable_from <= qr__log_last_index(&core->log);
}

static bool queue_push(struct qr_core *core,
                       struct qr__out **queue,
                       size_t *count,
                       size_t *capacity,
                       const struct qr__out *out)
{
    if (*count == *capacity) {
        if (*capacity >= QR_CORE_OUTBOX_MAX) {
            core->dropped_count++;
            return false;
        }
        size_t grown = *capacity < OUTBOX_CAPACITY_MIN ? OUTBOX_CAPACITY_MIN : *capacity * 2;
        struct qr__out *q = qr_realloc(*queue, grown * sizeof(*q));
        if (q == NULL) {
            core->dropped_count++;
            return false; /* Dropping a message is always safe: the protocol retries. */
        }
        *queue = q;
        *capacity = grown;
    }
    (*queue)[(*count)++] = *out;
    return true;
}

void qr__core_send(struct qr_core *core, const struct qr_msg *m, bool durable)
{
    QR_ASSERT(m->to != 0 && m->to != core->opts.id);
    struct qr__out out;
    memset(&out, 0, sizeof(out));
    out.msg = *m;
    out.msg.from = core->opts.id;
    if (m->type == QR_MSG_APPEND && m->entries_count > 0) {
        out.entries_first = m->log_index + 1;
        const struct qr_entry *last = qr__log_get(&core->log, m->log_index + m->entries_count);
        QR_ASSERT(last != NULL);
        out.entries_last_term = last->term;
    }
    out.msg.entries = NULL;
    if (durable) {
        /* Durable state so far will be in the next batch if anything is dirty, else in the
         * batch in flight, else it is durable already. */
        if (persist_dirty(core)) {
            out.needs_seq = core->seq_emitted + 1;
        } else if (core->batches_count > 0) {
            out.needs_seq = core->seq_emitted; /* The newest batch holds all of it. */
        }
    }
    if (out.needs_seq != 0) {
        (void)queue_push(core, &core->held, &core->held_count, &core->held_capacity, &out);
    } else {
        (void)queue_push(core, &core->outbox, &core->outbox_count, &core->outbox_capacity, &out);
    }
}

static struct qr__batch *batch_at(struct qr_core *core, size_t i)
{
    QR_ASSERT(i < core->batches_count);
    return &core->batches[(core->batches_head + i) % QR_CORE_PERSIST_BATCHES_MAX];
}

void qr__core_note_truncate(struct qr_core *core, qr_index from)
{
    for (size_t i = 0; i < core->batches_count; i++) {
        struct qr__batch *b = batch_at(core, i);
        if (b->floor == 0 || from < b->floor) {
            b->floor = from;
        }
    }
    if (from < core->unstable_from) {
        core->unstable_from = from;
    }
    if (core->durable >= from) {
        core->durable = from - 1;
    }
}

static void release_held(struct qr_core *core)
{
    size_t kept = 0;
    for (size_t i = 0; i < core->held_count; i++) {
        struct qr__out *out = &core->held[i];
        if (out->needs_seq > core->seq_done) {
            core->held[kept++] = *out;
            continue;
        }
        /* A promise made in an earlier term is no longer wanted (and may no longer hold). */
        if (out->msg.term != core->term) {
            continue;
        }
        out->needs_seq = 0;
        (void)queue_push(core, &core->outbox, &core->outbox_count, &core->outbox_capacity, out);
    }
    core->held_count = kept;
}

int qr_core_persisted(struct qr_core *core, uint64_t seq)
{
    QR_ASSERT(core != NULL);
    if (seq <= core->seq_done || seq > core->seq_emitted) {
        return QR_EINVAL;
    }
    /* The newest of the batches now durable says what is on disk: batches are written in
     * order, each from where the previous one stopped. */
    size_t done = (size_t)(seq - core->seq_done);
    const struct qr__batch b = *batch_at(core, done - 1);
    core->batches_head = (core->batches_head + done) % QR_CORE_PERSIST_BATCHES_MAX;
    core->batches_count -= done;
    core->seq_done = seq;
    qr_index durable = b.last;
    if (b.floor != 0 && b.floor <= durable) {
        durable = b.floor - 1;
    }
    if (durable > qr__log_last_index(&core->log)) {
        durable = qr__log_last_index(&core->log);
    }
    core->durable = durable;
    core->durable_term = b.term;
    core->durable_vote = b.vote;
    qr__core_on_persisted(core);
    return 0;
}

void qr__core_on_persisted(struct qr_core *core)
{
    if (core->ready_taken) {
        /* Called between ready and advance: finish at advance, views must stay stable. */
        core->persisted_deferred = true;
        return;
    }
    release_held(core);
    if (core->role == QR_ROLE_LEADER) {
        struct qr__progress *self = qr__core_progress(core, core->opts.id);
        if (self != NULL && core->durable > self->match) {
            self->match = core->durable;
        }
        qr__core_maybe_commit(core);
    }
    qr__core_self_vote_durable(core);
    qr__core_check_invariants(core);
}

/* Whether another persist batch may be handed out now. */
static bool batch_room(const struct qr_core *core)
{
    return core->batches_count < core->opts.persist_batches_max;
}

/* The highest index that may be handed out for apply. */
static qr_index apply_limit(const struct qr_core *core)
{
    if (core->install_pending) {
        return core->applied; /* Nothing applies before the snapshot is handed out. */
    }
    return core->commit < core->durable ? core->commit : core->durable;
}

bool qr_core_has_ready(const struct qr_core *core)
{
    return core->append_pending || core->outbox_count > 0 || core->chunks_count > 0 ||
           core->reads_ready_count > 0 || core->reads_failed_count > 0 || core->soft_changed ||
           apply_limit(core) > core->applied || (batch_room(core) && persist_dirty(core));
}

/* Resolves entry views of the outbox into ready_msgs; drops appends whose entries are gone. */
static int ready_messages(struct qr_core *core, struct qr_ready *rd)
{
    if (core->outbox_count > core->ready_msgs_capacity) {
        struct qr_msg *msgs = qr_realloc(core->ready_msgs, core->outbox_count * sizeof(*msgs));
        if (msgs == NULL) {
            return QR_ENOMEM;
        }
        core->ready_msgs = msgs;
        core->ready_msgs_capacity = core->outbox_count;
    }
    size_t count = 0;
    for (size_t i = 0; i < core->outbox_count; i++) {
        struct qr_msg *m = &core->ready_msgs[count];
        *m = core->outbox[i].msg;
        if (m->type == QR_MSG_APPEND && m->entries_count > 0) {
            const struct qr_entry *first = qr__log_get(&core->log, core->outbox[i].entries_first);
            const struct qr_entry *last =
                qr__log_get(&core->log, core->outbox[i].entries_first + m->entries_count - 1);
            if (first == NULL || last == NULL || last->term != core->outbox[i].entries_last_term) {
                continue; /* Truncated or compacted since it was queued: stale. */
            }
            m->entries = first;
        }
        count++;
    }
    rd->messages = core->ready_msgs;
    rd->messages_count = count;
    return 0;
}

static void ready_persist(struct qr_core *core, struct qr_ready *rd)
{
    if (!batch_room(core) || !persist_dirty(core)) {
        return;
    }
    rd->persist_seq = ++core->seq_emitted;
    qr_index last = qr__log_last_index(&core->log);
    core->batches_count++;
    *batch_at(core, core->batches_count - 1) =
        (struct qr__batch){.last = last, .term = core->term, .vote = core->vote};
    if (core->install_pending) {
        rd->snapshot = &core->install;
        core->install_pending = false;
        core->ready_snapshot = true;
    }
    if (core->unstable_from <= last) {
        rd->entries = qr__log_get(&core->log, core->unstable_from);
        rd->entries_count = (size_t)(last - core->unstable_from + 1);
        QR_ASSERT(rd->entries != NULL);
    }
    core->unstable_from = last + 1;
    rd->has_hard_state = true;
    rd->hard_state.term = core->term;
    rd->hard_state.vote = core->vote;
    rd->hard_state.commit = core->commit < last ? core->commit : last;
    core->hard_state_dirty = false;
}

void qr_core_ready(struct qr_core *core, struct qr_ready *rd)
{
    QR_ASSERT(core != NULL && rd != NULL && !core->ready_taken);
    memset(rd, 0, sizeof(*rd));
    if (core->append_pending) {
        core->append_pending = false;
        if (core->role == QR_ROLE_LEADER) {
            qr__core_broadcast_append(core);
        }
    }
    ready_persist(core, rd);
    if (ready_messages(core, rd) != 0) {
        rd->messages_count = 0; /* Out of memory: the messages are dropped; peers retry. */
    }
    qr_index apply_from = core->ready_snapshot ? core->install.index : core->applied;
    core->ready_applied_to = apply_from;
    qr_index limit = apply_limit(core);
    if (limit > apply_from) {
        rd->committed = qr__log_get(&core->log, apply_from + 1);
        rd->committed_count = (size_t)(limit - apply_from);
        QR_ASSERT(rd->committed != NULL);
        core->ready_applied_to = limit;
    }
    rd->snapshot_chunks = core->chunks;
    rd->snapshot_chunks_count = core->chunks_count;
    rd->reads = core->reads_ready;
    rd->reads_count = core->reads_ready_count;
    rd->reads_failed = core->reads_failed;
    rd->reads_failed_count = core->reads_failed_count;
    rd->soft_state_changed = core->soft_changed;
    rd->role = core->role;
    rd->leader = core->leader;
    rd->term = core->term;
    core->ready_taken = true;
}

void qr__core_ready_release(struct qr_core *core)
{
    for (size_t i = 0; i < core->chunks_count; i++) {
        qr_free(core->chunks[i].data.base);
    }
    core->chunks_count = 0;
}

void qr_core_advance(struct qr_core *core)
{
    QR_ASSERT(core != NULL && core->ready_taken);
    core->ready_taken = false;
    core->outbox_count = 0;
    QR_ASSERT(core->ready_applied_to <= core->commit || core->ready_snapshot);
    core->applied = core->ready_applied_to;
    core->ready_snapshot = false;
    qr__core_ready_release(core);
    core->reads_ready_count = 0;
    core->reads_failed_count = 0;
    core->soft_changed = false;
    /* A persisted report that arrived between ready and advance is finished now. */
    if (core->persisted_deferred) {
        core->persisted_deferred = false;
        qr__core_on_persisted(core);
    }
}
