/*
 * core/core_replicate.c: log replication, commitment, proposals, membership
 * changes and leadership transfer.
 *
 * Layer: core (pure). A leader keeps a progress record per member and sends
 * appends in PROBE (one at a time) or REPLICATE (pipelined, bounded by count
 * and bytes in flight) state; a member whose next entry was compacted gets a
 * snapshot. Commitment asks voting/ for the highest index a replication quorum
 * holds, and commits only entries of the leader's own term directly.
 */
#include <string.h>

#include "core/core_internal.h"
#include "core/core_priv.h"
#include "quorum/err.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

/* ---- Leader: sending ------------------------------------------------------------- */

static bool inflight_full(const struct qr_core *core, const struct qr__progress *pr)
{
    return pr->inflight_count >= core->opts.inflight_msgs_max ||
           pr->inflight_bytes >= core->opts.inflight_bytes_max;
}

static void
inflight_add(struct qr_core *core, struct qr__progress *pr, qr_index last, uint64_t bytes)
{
    QR_ASSERT(pr->inflight_count < core->opts.inflight_msgs_max);
    uint32_t slot = (pr->inflight_start + pr->inflight_count) % core->opts.inflight_msgs_max;
    pr->inflights[slot].last = last;
    pr->inflights[slot].bytes = bytes;
    pr->inflight_count++;
    pr->inflight_bytes += bytes;
}

/* Frees every inflight append that carried entries up to `index`. */
static void inflight_free_to(struct qr_core *core, struct qr__progress *pr, qr_index index)
{
    while (pr->inflight_count > 0 && pr->inflights[pr->inflight_start].last <= index) {
        pr->inflight_bytes -= pr->inflights[pr->inflight_start].bytes;
        pr->inflight_start = (pr->inflight_start + 1) % core->opts.inflight_msgs_max;
        pr->inflight_count--;
    }
}

static void inflight_clear(struct qr__progress *pr)
{
    pr->inflight_start = 0;
    pr->inflight_count = 0;
    pr->inflight_bytes = 0;
}

static void become_probe(struct qr_core *core, struct qr__progress *pr)
{
    pr->state = QR__PROGRESS_PROBE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    if (pr->next > qr__log_last_index(&core->log) + 1) {
        pr->next = qr__log_last_index(&core->log) + 1;
    }
    inflight_clear(pr);
}

static void become_replicate(struct qr__progress *pr)
{
    pr->state = QR__PROGRESS_REPLICATE;
    pr->next = pr->match + 1;
    inflight_clear(pr);
}

static void become_snapshot(struct qr_core *core, struct qr__progress *pr)
{
    pr->state = QR__PROGRESS_SNAPSHOT;
    pr->snapshot_index = core->snapshot.index;
    pr->snapshot_offset = 0;
    pr->snapshot_sent = false;
    inflight_clear(pr);
}

/* Sends one append to pr if its state allows; returns whether something was sent. */
static bool send_append(struct qr_core *core, struct qr__progress *pr, bool allow_empty)
{
    if (pr->id == core->opts.id) {
        return false;
    }
    if (pr->state == QR__PROGRESS_SNAPSHOT) {
        qr__core_send_snapshot_chunk(core, pr);
        return false;
    }
    if ((pr->state == QR__PROGRESS_PROBE && pr->probe_sent) ||
        (pr->state == QR__PROGRESS_REPLICATE && inflight_full(core, pr))) {
        return false;
    }
    qr_term prev_term = 0;
    if (!qr__log_term(&core->log, pr->next - 1, &prev_term)) {
        /* The entries it needs were compacted: it gets the snapshot. */
        QR_ASSERT(core->has_snapshot);
        become_snapshot(core, pr);
        qr__core_send_snapshot_chunk(core, pr);
        return false;
    }
    qr_index last = qr__log_last_index(&core->log);
    size_t count = 0;
    uint64_t bytes = 0;
    for (qr_index i = pr->next; i <= last; i++) {
        const struct qr_entry *e = qr__log_get(&core->log, i);
        /* Count the framing of each entry too, so many tiny entries still fit a frame. */
        uint64_t cost = e->data.len + QR_CORE_ENTRY_OVERHEAD;
        if (count > 0 && bytes + cost > core->opts.msg_bytes_max) {
            break;
        }
        bytes += cost;
        count++;
        if (pr->state == QR__PROGRESS_PROBE) {
            break; /* Probing: one entry finds the match point as well as many. */
        }
    }
    if (count == 0 && !allow_empty) {
        return false;
    }
    struct qr_msg m;
    memset(&m, 0, sizeof(m));
    m.type = QR_MSG_APPEND;
    m.to = pr->id;
    m.term = core->term;
    m.log_index = pr->next - 1;
    m.log_term = prev_term;
    m.commit = core->commit;
    m.entries_count = count;
    qr__core_send(core, &m, false);
    if (pr->state == QR__PROGRESS_REPLICATE) {
        if (count > 0) {
            inflight_add(core, pr, pr->next + count - 1, bytes);
            pr->next += count;
        }
    } else {
        pr->probe_sent = true;
    }
    return true;
}

void qr__core_broadcast_append(struct qr_core *core)
{
    QR_ASSERT(core->role == QR_ROLE_LEADER);
    for (size_t i = 0; i < core->progress_count; i++) {
        struct qr__progress *pr = &core->progress[i];
        /* Keep the pipeline full: several messages per call when entries are waiting. */
        for (uint32_t n = 0; n < core->opts.inflight_msgs_max; n++) {
            if (!send_append(core, pr, n == 0) || pr->state != QR__PROGRESS_REPLICATE ||
                pr->next > qr__log_last_index(&core->log)) {
                break;
            }
        }
    }
}

void qr__core_broadcast_heartbeat(struct qr_core *core)
{
    for (size_t i = 0; i < core->progress_count; i++) {
        struct qr__progress *pr = &core->progress[i];
        if (pr->id == core->opts.id) {
            continue;
        }
        struct qr_msg m;
        memset(&m, 0, sizeof(m));
        m.type = QR_MSG_HEARTBEAT;
        m.to = pr->id;
        m.term = core->term;
        /* Only what the member is known to hold may be declared committed to it. */
        m.commit = pr->match < core->commit ? pr->match : core->commit;
        m.context = core->read_round;
        qr__core_send(core, &m, false);
    }
}

bool qr__core_quorum_active(struct qr_core *core)
{
    qr_node_id ids[QR_CORE_PROGRESS_MAX];
    size_t count = 0;
    for (size_t i = 0; i < core->progress_count; i++) {
        struct qr__progress *pr = &core->progress[i];
        if (pr->id == core->opts.id || pr->recent_active) {
            ids[count++] = pr->id;
        }
        pr->recent_active = false;
    }
    return qr_voting_is_quorum(&core->voting, QR_VOTING_REPLICATION, ids, count);
}

/* ---- Commitment ---------------------------------------------------------------------- */

static void apply_config_entries(struct qr_core *core, qr_index from, qr_index to)
{
    for (qr_index i = from; i <= to; i++) {
        const struct qr_entry *e = qr__log_get(&core->log, i);
        if (e == NULL || e->type != QR_ENTRY_CONFIG) {
            continue;
        }
        struct qr_config c;
        char errmsg[QR_ERRMSG_SIZE];
        if (qr_core_config_decode(e->data.base, e->data.len, &c, errmsg) != 0) {
            QR_LOG_ERRORF("core: node=%llu term=%llu committed config entry %llu is invalid: %s",
                          (unsigned long long)core->opts.id, (unsigned long long)core->term,
                          (unsigned long long)i, errmsg);
            continue;
        }
        (void)qr__core_config_set(core, &c, i); /* Failures are logged inside. */
    }
}

static void leader_after_config_commit(struct qr_core *core)
{
    if (core->role != QR_ROLE_LEADER || core->commit < core->pending_config_index) {
        return;
    }
    if (core->config.voters_old_count > 0) {
        /* The joint configuration is committed: leave it (Raft thesis §4.3). A leader
         * elected during the change has no target of its own: it keeps the new voters
         * and learners. */
        struct qr_config next = core->config;
        if (core->has_joint_target) {
            next = core->joint_target;
        }
        next.voters_old_count = 0;
        memset(next.voters_old, 0, sizeof(next.voters_old));
        core->has_joint_target = false;
        uint8_t buf[QR_CORE_CONFIG_SIZE_MAX];
        size_t size = qr_core_config_encoded_size(&next);
        qr_core_config_encode(&next, buf);
        struct qr_entry e = {.term = core->term,
                             .index = qr__log_last_index(&core->log) + 1,
                             .type = QR_ENTRY_CONFIG,
                             .data = {buf, size}};
        if (qr__core_append_local(core, &e) == 0) {
            core->pending_config_index = e.index;
            qr__core_broadcast_append(core);
        }
        return;
    }
    if (!qr__core_is_voter(core, core->opts.id)) {
        /* Removed from the configuration: hand over to the most up-to-date voter. */
        qr_node_id best = 0;
        qr_index best_match = 0;
        for (size_t i = 0; i < core->progress_count; i++) {
            struct qr__progress *pr = &core->progress[i];
            if (pr->is_voter && pr->id != core->opts.id && pr->match >= best_match) {
                best = pr->id;
                best_match = pr->match;
            }
        }
        qr_term term = core->term;
        qr__core_become_follower(core, term, 0);
        if (best != 0) {
            struct qr_msg m;
            memset(&m, 0, sizeof(m));
            m.type = QR_MSG_TIMEOUT_NOW;
            m.to = best;
            m.term = term;
            qr__core_send(core, &m, false);
        }
    }
}

void qr__core_commit_to(struct qr_core *core, qr_index commit)
{
    if (commit <= core->commit) {
        return;
    }
    QR_ASSERT(commit <= qr__log_last_index(&core->log));
    qr_index from = core->commit + 1;
    core->commit = commit;
    apply_config_entries(core, from, commit);
    if (core->role == QR_ROLE_LEADER) {
        for (qr_index i = from; i <= commit; i++) {
            const struct qr_entry *e = qr__log_get(&core->log, i);
            if (e != NULL && e->term == core->term) {
                core->uncommitted_bytes -= e->data.len;
            }
        }
        qr__core_reads_on_commit(core);
        leader_after_config_commit(core);
    }
}

void qr__core_maybe_commit(struct qr_core *core)
{
    if (core->role != QR_ROLE_LEADER) {
        return;
    }
    struct qr_match matches[QR_CORE_PROGRESS_MAX];
    size_t count = 0;
    for (size_t i = 0; i < core->progress_count; i++) {
        const struct qr__progress *pr = &core->progress[i];
        if (pr->is_voter) {
            matches[count].id = pr->id;
            /* Our own entries count only once durable on our disk. */
            matches[count].index = pr->id == core->opts.id ? core->durable : pr->match;
            count++;
        }
    }
    qr_index index = qr_voting_committed_index(&core->voting, matches, count);
    qr_term term = 0;
    /* Raft §5.4.2: only entries of the current term commit by counting replicas. */
    if (index > core->commit && qr__log_term(&core->log, index, &term) && term == core->term) {
        qr__core_commit_to(core, index);
        if (core->role == QR_ROLE_LEADER) { /* A removed leader steps down at commit. */
            core->append_pending = true;
        }
    }
}

/* ---- Leader: responses ------------------------------------------------------------------ */

/* The last index at or below `index` whose term is at most `term` (fast back-off). */
static qr_index find_conflict_by_term(const struct qr_core *core, qr_index index, qr_term term)
{
    qr_index last = qr__log_last_index(&core->log);
    if (index > last) {
        index = last;
    }
    for (; index > core->log.offset; index--) {
        qr_term t = 0;
        if (qr__log_term(&core->log, index, &t) && t <= term) {
            break;
        }
    }
    return index;
}

static void maybe_send_timeout_now(struct qr_core *core, struct qr__progress *pr)
{
    if (core->transfer_target == pr->id && pr->match == qr__log_last_index(&core->log)) {
        struct qr_msg m;
        memset(&m, 0, sizeof(m));
        m.type = QR_MSG_TIMEOUT_NOW;
        m.to = pr->id;
        m.term = core->term;
        qr__core_send(core, &m, false);
    }
}

static void on_append_reject(struct qr_core *core, struct qr__progress *pr, const struct qr_msg *m)
{
    /* A rejection of an index it is known to hold, or of a probe we no longer wait for,
     * is stale. */
    if (m->index <= pr->match || (pr->state == QR__PROGRESS_PROBE && m->index + 1 != pr->next)) {
        return;
    }
    qr_index next = m->hint_index < m->index ? m->hint_index : m->index;
    next = find_conflict_by_term(core, next, m->hint_term);
    if (core->has_snapshot && (m->index <= core->log.offset || next < core->log.offset)) {
        /* It does not match even at our compaction point: only a snapshot helps. */
        become_snapshot(core, pr);
        qr__core_send_snapshot_chunk(core, pr);
        return;
    }
    become_probe(core, pr);
    pr->next = next + 1 > pr->match + 1 ? next + 1 : pr->match + 1;
    send_append(core, pr, true);
}

void qr__core_on_append_response(struct qr_core *core, const struct qr_msg *m)
{
    if (core->role != QR_ROLE_LEADER) {
        return;
    }
    struct qr__progress *pr = qr__core_progress(core, m->from);
    if (pr == NULL) {
        return;
    }
    pr->recent_active = true;
    if (m->reject) {
        on_append_reject(core, pr, m);
        return;
    }
    if (m->index > qr__log_last_index(&core->log)) {
        return; /* Claims entries we never sent: ignore. */
    }
    if (m->index > pr->match) {
        pr->match = m->index;
        if (pr->next <= pr->match) {
            pr->next = pr->match + 1;
        }
    }
    if (pr->state == QR__PROGRESS_PROBE) {
        become_replicate(pr);
    } else if (pr->state == QR__PROGRESS_REPLICATE) {
        inflight_free_to(core, pr, m->index);
    } else if (pr->state == QR__PROGRESS_SNAPSHOT && pr->match >= pr->snapshot_index) {
        become_probe(core, pr);
    }
    if (pr->match > core->commit) {
        qr_node_id id = pr->id;
        qr__core_maybe_commit(core);
        /* Committing may apply a configuration that moves or frees progress records. */
        pr = core->role == QR_ROLE_LEADER ? qr__core_progress(core, id) : NULL;
    }
    if (pr == NULL || core->role != QR_ROLE_LEADER) {
        return;
    }
    maybe_send_timeout_now(core, pr);
    /* Keep the pipeline full. */
    for (uint32_t n = 0; n < core->opts.inflight_msgs_max; n++) {
        if (pr->next > qr__log_last_index(&core->log) || !send_append(core, pr, false)) {
            break;
        }
    }
}

void qr__core_on_heartbeat_response(struct qr_core *core, const struct qr_msg *m)
{
    if (core->role != QR_ROLE_LEADER) {
        return;
    }
    struct qr__progress *pr = qr__core_progress(core, m->from);
    if (pr == NULL) {
        return;
    }
    pr->recent_active = true;
    pr->probe_sent = false;
    if (m->context > pr->read_acked && m->context <= core->read_round) {
        pr->read_acked = m->context;
        qr__core_reads_on_ack(core);
    }
    if (pr->state == QR__PROGRESS_REPLICATE && inflight_full(core, pr) && pr->inflight_count > 0) {
        /* A full window with a live follower: free one slot so replication keeps moving
         * (a follower that lost appends rejects the next one and we probe back). */
        pr->inflight_bytes -= pr->inflights[pr->inflight_start].bytes;
        pr->inflight_start = (pr->inflight_start + 1) % core->opts.inflight_msgs_max;
        pr->inflight_count--;
    }
    if (pr->match < qr__log_last_index(&core->log) || pr->state == QR__PROGRESS_SNAPSHOT) {
        if (pr->state == QR__PROGRESS_SNAPSHOT) {
            pr->snapshot_sent = false; /* Resume at the offset it last asked for. */
        }
        /* Even with nothing new to send, an (empty) append exposes a follower that lost
         * what we pipelined: it rejects, and we probe back. */
        send_append(core, pr, true);
    }
}

/* ---- Follower ----------------------------------------------------------------------------- */

static void reply_append(struct qr_core *core, qr_node_id to, qr_index index, bool durable)
{
    struct qr_msg r;
    memset(&r, 0, sizeof(r));
    r.type = QR_MSG_APPEND_RESPONSE;
    r.to = to;
    r.term = core->term;
    r.index = index;
    qr__core_send(core, &r, durable);
}

static void reject_append(struct qr_core *core, const struct qr_msg *m)
{
    struct qr_msg r;
    memset(&r, 0, sizeof(r));
    r.type = QR_MSG_APPEND_RESPONSE;
    r.to = m->from;
    r.term = core->term;
    r.reject = true;
    r.index = m->log_index;
    qr_index hint = m->log_index < qr__log_last_index(&core->log) ? m->log_index
                                                                  : qr__log_last_index(&core->log);
    hint = find_conflict_by_term(core, hint, m->log_term);
    r.hint_index = hint;
    qr_term hint_term = 0;
    (void)qr__log_term(&core->log, hint, &hint_term); /* hint >= offset: always known. */
    r.hint_term = hint_term;
    qr__core_send(core, &r, false);
}

static void follow(struct qr_core *core, qr_node_id leader)
{
    if (core->role != QR_ROLE_FOLLOWER && core->role != QR_ROLE_LEARNER) {
        qr__core_become_follower(core, core->term, leader);
    }
    if (core->leader != leader) {
        qr__core_reads_fail_all(core);
        core->leader = leader;
        core->soft_changed = true;
    }
    core->election_elapsed = 0;
}

/* Appends the entries of m that are new, truncating a conflicting suffix. */
static int append_entries(struct qr_core *core, const struct qr_msg *m, size_t skip)
{
    uint64_t bytes = 0;
    for (size_t i = skip; i < m->entries_count; i++) {
        bytes += m->entries[i].data.len;
        if (m->entries[i].data.len > core->opts.entry_bytes_max) {
            return QR_ETOOBIG;
        }
    }
    for (size_t i = skip; i < m->entries_count; i++) {
        const struct qr_entry *e = &m->entries[i];
        qr_term have = 0;
        if (qr__log_term(&core->log, e->index, &have)) {
            if (have == e->term) {
                continue;
            }
            if (e->index <= core->commit) {
                QR_LOG_ERRORF("core: node=%llu term=%llu leader %llu conflicts with committed "
                              "entry %llu; message dropped",
                              (unsigned long long)core->opts.id, (unsigned long long)core->term,
                              (unsigned long long)m->from, (unsigned long long)e->index);
                return QR_EPROTO;
            }
            qr__core_note_truncate(core, e->index);
            qr__log_truncate(&core->log, e->index);
        }
        if (core->log.bytes + bytes > core->opts.log_bytes_max) {
            return QR_EBUSY;
        }
        int rv = qr__log_append(&core->log, e);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int qr__core_on_append(struct qr_core *core, const struct qr_msg *m)
{
    follow(core, m->from);
    if (m->log_index < core->commit) {
        /* Already committed here: tell the leader how far we are. */
        reply_append(core, m->from, core->commit, true);
        return 0;
    }
    qr_term have = 0;
    if (!qr__log_term(&core->log, m->log_index, &have) || have != m->log_term) {
        reject_append(core, m);
        return 0;
    }
    int rv = append_entries(core, m, 0);
    if (rv != 0) {
        return rv == QR_EPROTO ? QR_EINVAL : rv;
    }
    qr_index last_new = m->log_index + m->entries_count;
    qr_index commit = m->commit < last_new ? m->commit : last_new;
    qr__core_commit_to(core, commit);
    /* The acknowledgement leaves only once these entries are durable. */
    reply_append(core, m->from, last_new, true);
    return 0;
}

void qr__core_on_heartbeat(struct qr_core *core, const struct qr_msg *m)
{
    follow(core, m->from);
    qr_index commit =
        m->commit < qr__log_last_index(&core->log) ? m->commit : qr__log_last_index(&core->log);
    qr__core_commit_to(core, commit);
    struct qr_msg r;
    memset(&r, 0, sizeof(r));
    r.type = QR_MSG_HEARTBEAT_RESPONSE;
    r.to = m->from;
    r.term = core->term;
    r.context = m->context;
    qr__core_send(core, &r, false);
}

/* ---- Proposals ---------------------------------------------------------------------------- */

int qr__core_append_local(struct qr_core *core, const struct qr_entry *entry)
{
    QR_ASSERT(core->role == QR_ROLE_LEADER);
    int rv = qr__log_append(&core->log, entry);
    if (rv != 0) {
        return rv;
    }
    core->uncommitted_bytes += entry->data.len;
    struct qr__progress *self = qr__core_progress(core, core->opts.id);
    if (self != NULL) {
        self->next = entry->index + 1;
    }
    return 0;
}

static int propose_check(const struct qr_core *core, size_t size)
{
    if (core->role != QR_ROLE_LEADER) {
        return QR_ENOTLEADER;
    }
    if (core->transfer_target != 0) {
        return QR_EBUSY;
    }
    if (size > core->opts.entry_bytes_max) {
        return QR_ETOOBIG;
    }
    if (core->uncommitted_bytes + size > core->opts.uncommitted_bytes_max && size > 0 &&
        core->uncommitted_bytes > 0) {
        return QR_EBUSY;
    }
    if (core->log.bytes + size > core->opts.log_bytes_max) {
        return QR_EBUSY;
    }
    return 0;
}

int qr_core_propose(struct qr_core *core, struct qr_buf data, qr_index *index_out)
{
    QR_ASSERT(core != NULL && !core->ready_taken);
    QR_ASSERT(data.base != NULL || data.len == 0);
    int rv = propose_check(core, data.len);
    if (rv != 0) {
        return rv;
    }
    struct qr_entry e = {.term = core->term,
                         .index = qr__log_last_index(&core->log) + 1,
                         .type = QR_ENTRY_NORMAL,
                         .data = data};
    rv = qr__core_append_local(core, &e);
    if (rv != 0) {
        return rv;
    }
    if (index_out != NULL) {
        *index_out = e.index;
    }
    core->append_pending = true;
    qr__core_check_invariants(core);
    return 0;
}

/* ---- Membership ----------------------------------------------------------------------------- */

static bool voters_equal(const struct qr_config *a, const struct qr_config *b)
{
    if (a->voters_count != b->voters_count) {
        return false;
    }
    return memcmp(a->voters, b->voters, a->voters_count * sizeof(a->voters[0])) == 0;
}

static int propose_config(struct qr_core *core, const struct qr_config *c)
{
    uint8_t buf[QR_CORE_CONFIG_SIZE_MAX];
    size_t size = qr_core_config_encoded_size(c);
    QR_ASSERT(size <= sizeof(buf));
    qr_core_config_encode(c, buf);
    struct qr_entry e = {.term = core->term,
                         .index = qr__log_last_index(&core->log) + 1,
                         .type = QR_ENTRY_CONFIG,
                         .data = {buf, size}};
    int rv = qr__core_append_local(core, &e);
    if (rv != 0) {
        return rv;
    }
    core->pending_config_index = e.index;
    qr__core_broadcast_append(core);
    qr__core_maybe_commit(core);
    return 0;
}

int qr_core_change_config(struct qr_core *core, const struct qr_config *next, char *errmsg)
{
    QR_ASSERT(core != NULL && next != NULL && !core->ready_taken);
    if (core->role != QR_ROLE_LEADER) {
        return qr__errf(errmsg, QR_ENOTLEADER, "core: not the leader");
    }
    if (core->commit < core->pending_config_index || core->config.voters_old_count > 0) {
        return qr__errf(errmsg, QR_EBUSY,
                        "core: a configuration change (index %llu) is still in progress",
                        (unsigned long long)core->pending_config_index);
    }
    if (next->voters_old_count != 0) {
        return qr__errf(errmsg, QR_EINVAL, "core: the new configuration may not be joint");
    }
    int rv = qr_core_config_validate(next, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (voters_equal(&core->config, next)) {
        return propose_config(core, next); /* Learners only: no joint phase needed. */
    }
    /* Every voter change goes through a joint configuration (Raft thesis §4.3):
     * decisions need majorities of both the old and the new voters until it is left. */
    struct qr_config joint = *next;
    joint.voters_old_count = core->config.voters_count;
    memcpy(joint.voters_old, core->config.voters, sizeof(joint.voters_old));
    /* Old voters that become learners stay voters (old side) until the joint is left. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < joint.learners_count; i++) {
        qr_node_id id = joint.learners[i];
        bool old_voter = false;
        for (uint32_t k = 0; k < joint.voters_old_count; k++) {
            old_voter = old_voter || joint.voters_old[k] == id;
        }
        if (!old_voter) {
            joint.learners[kept++] = id;
        }
    }
    joint.learners_count = kept;
    rv = propose_config(core, &joint);
    if (rv == 0) {
        core->joint_target = *next;
        core->has_joint_target = true;
    }
    return rv;
}

int qr_core_transfer_leader(struct qr_core *core, qr_node_id target)
{
    QR_ASSERT(core != NULL && !core->ready_taken);
    if (core->role != QR_ROLE_LEADER) {
        return QR_ENOTLEADER;
    }
    if (target == core->opts.id || !qr__core_is_voter(core, target)) {
        return QR_EINVAL;
    }
    core->transfer_target = target;
    core->transfer_elapsed = 0;
    struct qr__progress *pr = qr__core_progress(core, target);
    QR_ASSERT(pr != NULL);
    maybe_send_timeout_now(core, pr);
    send_append(core, pr, false);
    return 0;
}
