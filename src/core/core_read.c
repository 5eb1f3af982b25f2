/*
 * core/core_read.c: linearizable reads by ReadIndex (Raft thesis §6.4).
 *
 * Layer: core (pure). A leader serves a read at its commit index once (1) it
 * has committed an entry of its own term and (2) a replication quorum has
 * confirmed, in a heartbeat round started after the read arrived, that it is
 * still the leader. Rounds are numbered; a confirmation counts only for rounds
 * at or below the one it echoes, so a retried request can never ride on a
 * confirmation that predates it. Followers forward reads to the leader and
 * fail them when the leader changes or after a bounded wait.
 */
#include <string.h>

#include "core/core_internal.h"
#include "core/core_priv.h"
#include "quorum/err.h"
#include "util/assert.h"

static bool term_committed(const struct qr_core *core)
{
    qr_term term = 0;
    return qr__log_term(&core->log, core->commit, &term) && term == core->term;
}

static void read_remove(struct qr_core *core, size_t i)
{
    core->reads[i] = core->reads[--core->reads_count];
}

static void read_fail(struct qr_core *core, const struct qr__read *r)
{
    if (r->from == 0) {
        QR_ASSERT(core->reads_failed_count < core->opts.reads_pending_max);
        core->reads_failed[core->reads_failed_count++] = r->request_id;
    }
}

void qr__core_reads_fail_all(struct qr_core *core)
{
    for (size_t i = 0; i < core->reads_count; i++) {
        read_fail(core, &core->reads[i]);
    }
    core->reads_count = 0;
    core->read_round_open = false;
}

static void start_round(struct qr_core *core)
{
    core->read_round++;
    core->read_round_open = true;
    qr__core_broadcast_heartbeat(core);
}

/* Releases the reads whose round a replication quorum confirmed. */
void qr__core_reads_on_ack(struct qr_core *core)
{
    if (core->role != QR_ROLE_LEADER || (core->reads_count == 0 && !core->read_round_open)) {
        return;
    }
    struct qr_match acks[QR_CORE_PROGRESS_MAX];
    size_t count = 0;
    for (size_t i = 0; i < core->progress_count; i++) {
        const struct qr__progress *pr = &core->progress[i];
        if (pr->is_voter) {
            acks[count].id = pr->id;
            acks[count].index = pr->id == core->opts.id ? core->read_round : pr->read_acked;
            count++;
        }
    }
    /* The highest round a replication quorum confirmed, asked exactly like a commit. */
    uint64_t confirmed = qr_voting_committed_index(&core->voting, acks, count);
    bool waiting = false;
    for (size_t i = 0; i < core->reads_count;) {
        struct qr__read *r = &core->reads[i];
        if (r->round == 0 || r->round > confirmed) {
            waiting = waiting || r->round != 0;
            i++;
            continue;
        }
        if (r->from == 0) {
            QR_ASSERT(core->reads_ready_count < core->opts.reads_pending_max);
            core->reads_ready[core->reads_ready_count].request_id = r->request_id;
            core->reads_ready[core->reads_ready_count].index = r->index;
            core->reads_ready_count++;
        } else {
            struct qr_msg m;
            memset(&m, 0, sizeof(m));
            m.type = QR_MSG_READ_INDEX_RESPONSE;
            m.to = r->from;
            m.term = core->term;
            m.context = r->request_id;
            m.index = r->index;
            qr__core_send(core, &m, false);
        }
        read_remove(core, i);
    }
    if (confirmed >= core->read_round) {
        core->read_round_open = false;
    }
    if (waiting && !core->read_round_open) {
        start_round(core);
    }
}

/* Gives reads that wait for the leader's first commit their index and round. */
static void reads_assign(struct qr_core *core)
{
    if (core->role != QR_ROLE_LEADER || core->reads_count == 0 || !term_committed(core)) {
        return;
    }
    bool any = false;
    for (size_t i = 0; i < core->reads_count; i++) {
        struct qr__read *r = &core->reads[i];
        if (r->round == 0) {
            r->index = core->commit;
            r->round = core->read_round + 1;
            any = true;
        }
    }
    if (any && !core->read_round_open) {
        start_round(core);
    }
    qr__core_reads_on_ack(core);
}

void qr__core_reads_on_commit(struct qr_core *core)
{
    reads_assign(core);
}

static int read_add(struct qr_core *core, uint64_t request_id, qr_node_id from)
{
    if (core->reads_count + core->reads_ready_count + core->reads_failed_count >=
        core->opts.reads_pending_max) {
        return QR_EBUSY;
    }
    struct qr__read *r = &core->reads[core->reads_count++];
    memset(r, 0, sizeof(*r));
    r->request_id = request_id;
    r->from = from;
    return 0;
}

int qr_core_read_index(struct qr_core *core, uint64_t request_id)
{
    QR_ASSERT(core != NULL && !core->ready_taken);
    if (core->role == QR_ROLE_LEADER) {
        int rv = read_add(core, request_id, 0);
        if (rv == 0) {
            reads_assign(core);
        }
        return rv;
    }
    if (core->leader == 0) {
        return QR_ENOTLEADER;
    }
    int rv = read_add(core, request_id, 0);
    if (rv != 0) {
        return rv;
    }
    struct qr_msg m;
    memset(&m, 0, sizeof(m));
    m.type = QR_MSG_READ_INDEX;
    m.to = core->leader;
    m.term = core->term;
    m.context = request_id;
    qr__core_send(core, &m, false);
    return 0;
}

void qr__core_on_read_index(struct qr_core *core, const struct qr_msg *m)
{
    if (core->role != QR_ROLE_LEADER || !qr__core_is_member(core, m->from)) {
        return; /* The follower times out and retries elsewhere. */
    }
    if (read_add(core, m->context, m->from) == 0) {
        reads_assign(core);
    }
}

void qr__core_on_read_index_response(struct qr_core *core, const struct qr_msg *m)
{
    if (m->from != core->leader) {
        return;
    }
    for (size_t i = 0; i < core->reads_count; i++) {
        if (core->reads[i].request_id == m->context && core->reads[i].from == 0) {
            QR_ASSERT(core->reads_ready_count < core->opts.reads_pending_max);
            core->reads_ready[core->reads_ready_count].request_id = m->context;
            core->reads_ready[core->reads_ready_count].index = m->index;
            core->reads_ready_count++;
            read_remove(core, i);
            return;
        }
    }
}

void qr__core_reads_tick(struct qr_core *core)
{
    /* Forwarded reads whose answer was lost fail after two election timeouts. */
    uint32_t limit = 2 * core->opts.election_ticks;
    for (size_t i = 0; i < core->reads_count;) {
        if (++core->reads[i].age_ticks >= limit) {
            read_fail(core, &core->reads[i]);
            read_remove(core, i);
        } else {
            i++;
        }
    }
}
