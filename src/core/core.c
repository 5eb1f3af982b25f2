/*
 * core/core.c: the consensus state machine: lifecycle, timers, elections.
 *
 * Layer: core (pure: no clock, no I/O, no threads, randomness only from the
 * instance's seeded generator). Replication, reads, snapshots and membership
 * live in core_replicate.c; the output batch in core_ready.c. This file must
 * never decide how many votes are enough: it asks voting/.
 */
#include <string.h>

#include "core/core_internal.h"
#include "core/core_priv.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

void qr_core_opts_default(struct qr_core_opts *opts, qr_node_id id)
{
    memset(opts, 0, sizeof(*opts));
    opts->id = id;
    opts->seed = id;
    opts->election_ticks = 10;
    opts->heartbeat_ticks = 1;
    opts->inflight_msgs_max = 256;
    opts->inflight_bytes_max = 16u << 20;
    opts->msg_bytes_max = 1u << 20;
    opts->uncommitted_bytes_max = 64u << 20;
    opts->log_bytes_max = (uint64_t)256u << 20;
    opts->snapshot_chunk_size = 1u << 20;
    opts->reads_pending_max = 4096;
    opts->entry_bytes_max = 8u << 20;
    opts->persist_batches_max = 1;
}

static void opts_fill_defaults(struct qr_core_opts *opts)
{
    struct qr_core_opts d;
    qr_core_opts_default(&d, opts->id);
#define FILL(field)                \
    do {                           \
        if (opts->field == 0) {    \
            opts->field = d.field; \
        }                          \
    } while (0)
    FILL(election_ticks);
    FILL(heartbeat_ticks);
    FILL(inflight_msgs_max);
    FILL(inflight_bytes_max);
    FILL(msg_bytes_max);
    FILL(uncommitted_bytes_max);
    FILL(log_bytes_max);
    FILL(snapshot_chunk_size);
    FILL(reads_pending_max);
    FILL(entry_bytes_max);
    FILL(persist_batches_max);
#undef FILL
}

const char *qr_role_name(enum qr_role role)
{
    switch (role) {
    case QR_ROLE_FOLLOWER:
        return "follower";
    case QR_ROLE_PRECANDIDATE:
        return "precandidate";
    case QR_ROLE_CANDIDATE:
        return "candidate";
    case QR_ROLE_LEADER:
        return "leader";
    case QR_ROLE_LEARNER:
        return "learner";
    }
    return "unknown";
}

const char *qr_msg_type_name(enum qr_msg_type type)
{
    static const char *const names[] = {
        "?",
        "vote",
        "vote_response",
        "append",
        "append_response",
        "heartbeat",
        "heartbeat_response",
        "snapshot",
        "snapshot_response",
        "timeout_now",
        "read_index",
        "read_index_response",
    };
    if ((int)type < 1 || (int)type > QR_MSG_TYPE_MAX) {
        return "?";
    }
    return names[type];
}

/* ---- Membership --------------------------------------------------------------- */

static bool ids_have(const qr_node_id *ids, uint32_t count, qr_node_id id)
{
    for (uint32_t i = 0; i < count; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

bool qr__core_is_voter(const struct qr_core *core, qr_node_id id)
{
    return core->has_config && qr_voting_has_voter(&core->voting, id);
}

bool qr__core_is_member(const struct qr_core *core, qr_node_id id)
{
    return qr__core_is_voter(core, id) ||
           (core->has_config && ids_have(core->config.learners, core->config.learners_count, id));
}

struct qr__progress *qr__core_progress(struct qr_core *core, qr_node_id id)
{
    for (size_t i = 0; i < core->progress_count; i++) {
        if (core->progress[i].id == id) {
            return &core->progress[i];
        }
    }
    return NULL;
}

static void progress_reset(struct qr_core *core, struct qr__progress *pr)
{
    pr->state = QR__PROGRESS_PROBE;
    pr->next = qr__log_last_index(&core->log) + 1;
    pr->match = 0;
    pr->probe_sent = false;
    pr->snapshot_sent = false;
    pr->recent_active = true;
    pr->inflight_start = 0;
    pr->inflight_count = 0;
    pr->inflight_bytes = 0;
    pr->read_acked = 0;
    pr->snapshot_idle_ticks = 0;
}

static int progress_add(struct qr_core *core, qr_node_id id)
{
    QR_ASSERT(core->progress_count < QR_CORE_PROGRESS_MAX);
    struct qr__progress *pr = &core->progress[core->progress_count];
    memset(pr, 0, sizeof(*pr));
    pr->inflights = qr_calloc(core->opts.inflight_msgs_max, sizeof(*pr->inflights));
    if (pr->inflights == NULL) {
        return QR_ENOMEM;
    }
    pr->id = id;
    progress_reset(core, pr);
    core->progress_count++;
    return 0;
}

static void progress_clear(struct qr_core *core)
{
    for (size_t i = 0; i < core->progress_count; i++) {
        qr_free(core->progress[i].inflights);
    }
    core->progress_count = 0;
}

/* Makes the progress set match the membership: keeps known members, adds new ones. */
int qr__core_progress_sync(struct qr_core *core)
{
    qr_node_id ids[QR_CORE_PROGRESS_MAX];
    size_t count = qr_voting_voter_ids(&core->voting, ids, QR_CORE_PROGRESS_MAX);
    for (uint32_t i = 0; i < core->config.learners_count; i++) {
        ids[count++] = core->config.learners[i];
    }
    /* Drop members that left, swapping the last slot in. */
    for (size_t i = 0; i < core->progress_count;) {
        if (!ids_have(ids, (uint32_t)count, core->progress[i].id)) {
            qr_free(core->progress[i].inflights);
            core->progress[i] = core->progress[--core->progress_count];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < count; i++) {
        struct qr__progress *pr = qr__core_progress(core, ids[i]);
        if (pr == NULL) {
            int rv = progress_add(core, ids[i]);
            if (rv != 0) {
                return rv;
            }
            pr = &core->progress[core->progress_count - 1];
        }
        pr->is_voter = qr_voting_has_voter(&core->voting, ids[i]);
    }
    struct qr__progress *self = qr__core_progress(core, core->opts.id);
    if (self != NULL) {
        self->match = core->durable;
        self->next = qr__log_last_index(&core->log) + 1;
        self->state = QR__PROGRESS_REPLICATE;
    }
    return 0;
}

/* Adopts a configuration (committed entry, snapshot or bootstrap). */
int qr__core_config_set(struct qr_core *core, const struct qr_config *config, qr_index index)
{
    struct qr_voting voting;
    char errmsg[QR_ERRMSG_SIZE];
    int rv = qr_core_config_voting(config, &voting, errmsg);
    if (rv != 0) {
        QR_LOG_ERRORF("core: node=%llu term=%llu rejected config at index %llu: %s",
                      (unsigned long long)core->opts.id, (unsigned long long)core->term,
                      (unsigned long long)index, errmsg);
        return rv;
    }
    core->config = *config;
    core->voting = voting;
    core->has_config = true;
    core->config_index = index;
    QR_LOG_INFOF("core: node=%llu term=%llu config index=%llu voters=%u old_voters=%u "
                 "learners=%u",
                 (unsigned long long)core->opts.id, (unsigned long long)core->term,
                 (unsigned long long)index, config->voters_count, config->voters_old_count,
                 config->learners_count);
    if (core->role == QR_ROLE_LEADER) {
        return qr__core_progress_sync(core);
    }
    /* A follower that stopped (or started) being a voter changes its displayed role. */
    enum qr_role role = qr__core_is_voter(core, core->opts.id) ? QR_ROLE_FOLLOWER : QR_ROLE_LEARNER;
    if ((core->role == QR_ROLE_FOLLOWER || core->role == QR_ROLE_LEARNER) && core->role != role) {
        core->role = role;
        core->soft_changed = true;
    }
    return 0;
}

/* ---- Role transitions --------------------------------------------------------- */

static void reset_election_timeout(struct qr_core *core)
{
    uint32_t base = core->opts.election_ticks;
    core->election_timeout = base + (uint32_t)qr__rng_below(&core->rng, base);
    core->election_elapsed = 0;
}

void qr__core_set_term(struct qr_core *core, qr_term term)
{
    QR_ASSERT(term >= core->term);
    if (term != core->term) {
        core->term = term;
        core->vote = 0;
        core->hard_state_dirty = true;
    }
}

static void leader_state_clear(struct qr_core *core)
{
    progress_clear(core);
    core->transfer_target = 0;
    core->transfer_elapsed = 0;
    core->uncommitted_bytes = 0;
    core->has_joint_target = false;
    core->read_round_open = false;
}

void qr__core_become_follower(struct qr_core *core, qr_term term, qr_node_id leader)
{
    bool was_leader = core->role == QR_ROLE_LEADER;
    qr__core_set_term(core, term);
    enum qr_role role = qr__core_is_voter(core, core->opts.id) ? QR_ROLE_FOLLOWER : QR_ROLE_LEARNER;
    if (core->role != role || core->leader != leader) {
        core->soft_changed = true;
    }
    if (core->leader != leader) {
        /* Reads forwarded to the old leader will never be answered. */
        qr__core_reads_fail_all(core);
    }
    core->role = role;
    core->leader = leader;
    core->votes_count = 0;
    if (was_leader) {
        qr__core_reads_fail_all(core);
        leader_state_clear(core);
        QR_LOG_INFOF("core: node=%llu term=%llu stepped down", (unsigned long long)core->opts.id,
                     (unsigned long long)core->term);
    }
    reset_election_timeout(core);
}

static void send_vote_requests(struct qr_core *core, bool prevote, bool transfer)
{
    qr_node_id ids[QR_CORE_PROGRESS_MAX];
    size_t count = qr_voting_voter_ids(&core->voting, ids, QR_CORE_PROGRESS_MAX);
    for (size_t i = 0; i < count; i++) {
        if (ids[i] == core->opts.id) {
            continue;
        }
        struct qr_msg m;
        memset(&m, 0, sizeof(m));
        m.type = QR_MSG_VOTE;
        m.to = ids[i];
        m.term = prevote ? core->term + 1 : core->term;
        m.log_index = qr__log_last_index(&core->log);
        m.log_term = qr__log_last_term(&core->log);
        m.prevote = prevote;
        m.transfer = transfer;
        qr__core_send(core, &m, false);
    }
}

static void record_vote(struct qr_core *core, qr_node_id from, bool granted)
{
    for (size_t i = 0; i < core->votes_count; i++) {
        if (core->votes[i].id == from) {
            return; /* The first answer of a voter stands. */
        }
    }
    QR_ASSERT(core->votes_count < QR_CORE_PROGRESS_MAX);
    core->votes[core->votes_count].id = from;
    core->votes[core->votes_count].granted = granted;
    core->votes_count++;
}

static void campaign_real(struct qr_core *core, bool transfer)
{
    qr__core_set_term(core, core->term + 1);
    core->vote = core->opts.id;
    core->hard_state_dirty = true;
    core->role = QR_ROLE_CANDIDATE;
    core->leader = 0;
    core->soft_changed = true;
    core->votes_count = 0;
    reset_election_timeout(core);
    QR_LOG_INFOF("core: node=%llu term=%llu campaigning%s", (unsigned long long)core->opts.id,
                 (unsigned long long)core->term, transfer ? " (transfer)" : "");
    /* Our own vote counts only once it is durable (qr__core_self_vote_durable). */
    send_vote_requests(core, false, transfer);
}

static void campaign_pre(struct qr_core *core)
{
    core->role = QR_ROLE_PRECANDIDATE;
    core->leader = 0;
    core->soft_changed = true;
    core->votes_count = 0;
    reset_election_timeout(core);
    /* A pre-vote changes no durable state, so our own counts at once. */
    record_vote(core, core->opts.id, true);
    send_vote_requests(core, true, false);
    qr__core_election_check(core);
}

static void campaign(struct qr_core *core, bool transfer)
{
    if (!qr__core_is_voter(core, core->opts.id) || core->role == QR_ROLE_LEADER) {
        return;
    }
    /* Never campaign while committed configuration changes are not yet known locally:
     * the configuration we would campaign under may be stale (Raft thesis §4.1). */
    if (core->install_pending) {
        return;
    }
    if (core->opts.prevote_disabled || transfer) {
        campaign_real(core, transfer);
    } else {
        campaign_pre(core);
    }
}

void qr_core_campaign(struct qr_core *core)
{
    QR_ASSERT(core != NULL && !core->ready_taken);
    campaign(core, false);
    qr__core_check_invariants(core);
}

void qr__core_campaign_transfer(struct qr_core *core)
{
    campaign(core, true);
}

static void become_leader(struct qr_core *core)
{
    QR_ASSERT(core->role == QR_ROLE_CANDIDATE);
    core->role = QR_ROLE_LEADER;
    core->leader = core->opts.id;
    core->soft_changed = true;
    core->votes_count = 0;
    core->heartbeat_elapsed = 0;
    core->election_elapsed = 0;
    leader_state_clear(core);
    if (qr__core_progress_sync(core) != 0) {
        /* Out of memory for progress: give up leadership rather than lead blind. */
        qr__core_become_follower(core, core->term, 0);
        return;
    }
    QR_LOG_INFOF("core: node=%llu term=%llu became leader", (unsigned long long)core->opts.id,
                 (unsigned long long)core->term);
    /* Raft §5.4.2: entries of earlier terms commit only under an entry of ours. */
    struct qr_entry noop = {.term = core->term,
                            .index = qr__log_last_index(&core->log) + 1,
                            .type = QR_ENTRY_NOOP,
                            .data = {NULL, 0}};
    if (qr__core_append_local(core, &noop) != 0) {
        qr__core_become_follower(core, core->term, 0);
        return;
    }
    /* No configuration change until everything up to our noop is committed. */
    core->pending_config_index = noop.index;
    qr__core_broadcast_append(core);
}

/* Tallies votes and acts on the outcome. */
void qr__core_election_check(struct qr_core *core)
{
    if (core->role != QR_ROLE_CANDIDATE && core->role != QR_ROLE_PRECANDIDATE) {
        return;
    }
    enum qr_vote_result result =
        qr_voting_tally(&core->voting, QR_VOTING_ELECTION, core->votes, core->votes_count);
    if (result == QR_VOTE_WON) {
        if (core->role == QR_ROLE_PRECANDIDATE) {
            campaign_real(core, false);
        } else {
            become_leader(core);
        }
    } else if (result == QR_VOTE_LOST) {
        qr__core_become_follower(core, core->term, 0);
    }
}

/* Candidate: our own vote became durable. */
void qr__core_self_vote_durable(struct qr_core *core)
{
    if (core->role == QR_ROLE_CANDIDATE && core->durable_term == core->term &&
        core->durable_vote == core->opts.id) {
        record_vote(core, core->opts.id, true);
        qr__core_election_check(core);
    }
}

/* Raft §5.4.1: grant only to candidates whose log is at least as up to date. */
static bool log_up_to_date(const struct qr_core *core, qr_index index, qr_term term)
{
    qr_term last_term = qr__log_last_term(&core->log);
    return term > last_term || (term == last_term && index >= qr__log_last_index(&core->log));
}

static bool in_leader_lease(const struct qr_core *core)
{
    /* Check-quorum: a node that heard from a live leader within the election timeout
     * ignores vote requests, so a returning partitioned node cannot disrupt the cluster. */
    return !core->opts.check_quorum_disabled && core->leader != 0 &&
           core->election_elapsed < core->opts.election_ticks;
}

void qr__core_on_vote(struct qr_core *core, const struct qr_msg *m)
{
    if (m->term > core->term && !m->transfer && in_leader_lease(core)) {
        return;
    }
    if (m->term > core->term && !m->prevote) {
        qr__core_become_follower(core, m->term, 0);
    }
    struct qr_msg r;
    memset(&r, 0, sizeof(r));
    r.type = QR_MSG_VOTE_RESPONSE;
    r.to = m->from;
    r.prevote = m->prevote;
    bool can_vote = false;
    if (m->prevote) {
        /* Grant a pre-vote for a future term when we would vote then. */
        can_vote = m->term > core->term;
    } else if (m->term == core->term) {
        can_vote = core->vote == m->from || (core->vote == 0 && core->leader == 0);
    }
    bool grant = can_vote && log_up_to_date(core, m->log_index, m->log_term);
    if (!grant) {
        r.term = core->term;
        r.reject = true;
        qr__core_send(core, &r, false);
        return;
    }
    r.term = m->term;
    if (!m->prevote) {
        core->vote = m->from;
        core->hard_state_dirty = true;
        core->election_elapsed = 0;
    }
    /* A real vote leaves only once it is durable. */
    qr__core_send(core, &r, !m->prevote);
}

void qr__core_on_vote_response(struct qr_core *core, const struct qr_msg *m)
{
    if (m->reject && m->term > core->term) {
        qr__core_become_follower(core, m->term, 0);
        return;
    }
    bool counts = (core->role == QR_ROLE_PRECANDIDATE && m->prevote && m->term == core->term + 1) ||
                  (core->role == QR_ROLE_CANDIDATE && !m->prevote && m->term == core->term);
    if (!counts) {
        return;
    }
    record_vote(core, m->from, !m->reject);
    qr__core_election_check(core);
}

/* ---- Time ------------------------------------------------------------------------- */

static void tick_leader(struct qr_core *core)
{
    core->heartbeat_elapsed++;
    core->election_elapsed++;
    if (core->transfer_target != 0 && ++core->transfer_elapsed >= core->opts.election_ticks) {
        QR_LOG_INFOF("core: node=%llu term=%llu leadership transfer to %llu abandoned",
                     (unsigned long long)core->opts.id, (unsigned long long)core->term,
                     (unsigned long long)core->transfer_target);
        core->transfer_target = 0;
        core->transfer_elapsed = 0;
    }
    if (core->election_elapsed >= core->opts.election_ticks) {
        core->election_elapsed = 0;
        if (!core->opts.check_quorum_disabled && !qr__core_quorum_active(core)) {
            QR_LOG_WARNF("core: node=%llu term=%llu lost contact with a quorum",
                         (unsigned long long)core->opts.id, (unsigned long long)core->term);
            qr__core_become_follower(core, core->term, 0);
            return;
        }
    }
    if (core->heartbeat_elapsed >= core->opts.heartbeat_ticks) {
        core->heartbeat_elapsed = 0;
        qr__core_broadcast_heartbeat(core);
    }
    qr__core_snapshot_tick(core);
}

void qr_core_tick(struct qr_core *core)
{
    QR_ASSERT(core != NULL && !core->ready_taken);
    if (core->role == QR_ROLE_LEADER) {
        tick_leader(core);
    } else {
        core->election_elapsed++;
        qr__core_reads_tick(core);
        if (core->election_elapsed >= core->election_timeout) {
            core->election_elapsed = 0;
            campaign(core, false);
        }
    }
    qr__core_check_invariants(core);
}

/* ---- Messages --------------------------------------------------------------------- */

static bool msg_is_valid(const struct qr_core *core, const struct qr_msg *m)
{
    if ((int)m->type < 1 || (int)m->type > QR_MSG_TYPE_MAX || m->from == 0 ||
        m->from == core->opts.id || m->to != core->opts.id) {
        return false;
    }
    if (m->entries_count > 0 && (m->entries == NULL || m->entries[0].term < m->log_term)) {
        return false; /* Entries never have a lower term than the entry they follow. */
    }
    if (m->type == QR_MSG_SNAPSHOT && (m->snapshot == NULL || m->data.len != m->chunk_size ||
                                       (m->data.len > 0 && m->data.base == NULL) ||
                                       m->snapshot->term > m->term || m->snapshot->index == 0)) {
        return false;
    }
    for (size_t i = 0; i < m->entries_count; i++) {
        const struct qr_entry *e = &m->entries[i];
        if (e->index != m->log_index + 1 + i || e->term == 0 || e->term > m->term ||
            (i > 0 && e->term < m->entries[i - 1].term) ||
            (e->data.len > 0 && e->data.base == NULL) || (int)e->type < QR_ENTRY_NORMAL ||
            (int)e->type > QR_ENTRY_CONFIG) {
            return false;
        }
    }
    return true;
}

/* Messages of a lower term: answered only where it makes a stale leader step down. */
static void on_stale_term(struct qr_core *core, const struct qr_msg *m)
{
    if (m->type == QR_MSG_APPEND || m->type == QR_MSG_HEARTBEAT || m->type == QR_MSG_SNAPSHOT) {
        struct qr_msg r;
        memset(&r, 0, sizeof(r));
        r.type = QR_MSG_APPEND_RESPONSE;
        r.to = m->from;
        r.term = core->term;
        r.reject = true;
        qr__core_send(core, &r, false);
    } else if (m->type == QR_MSG_VOTE && m->prevote) {
        struct qr_msg r;
        memset(&r, 0, sizeof(r));
        r.type = QR_MSG_VOTE_RESPONSE;
        r.to = m->from;
        r.term = core->term;
        r.prevote = true;
        r.reject = true;
        qr__core_send(core, &r, false);
    }
}

static int step_by_type(struct qr_core *core, const struct qr_msg *m)
{
    switch (m->type) {
    case QR_MSG_VOTE:
        qr__core_on_vote(core, m);
        return 0;
    case QR_MSG_VOTE_RESPONSE:
        qr__core_on_vote_response(core, m);
        return 0;
    case QR_MSG_APPEND:
        return qr__core_on_append(core, m);
    case QR_MSG_APPEND_RESPONSE:
        qr__core_on_append_response(core, m);
        return 0;
    case QR_MSG_HEARTBEAT:
        qr__core_on_heartbeat(core, m);
        return 0;
    case QR_MSG_HEARTBEAT_RESPONSE:
        qr__core_on_heartbeat_response(core, m);
        return 0;
    case QR_MSG_SNAPSHOT:
        return qr__core_on_snapshot(core, m);
    case QR_MSG_SNAPSHOT_RESPONSE:
        qr__core_on_snapshot_response(core, m);
        return 0;
    case QR_MSG_TIMEOUT_NOW:
        if (m->term == core->term) {
            qr__core_campaign_transfer(core);
        }
        return 0;
    case QR_MSG_READ_INDEX:
        qr__core_on_read_index(core, m);
        return 0;
    case QR_MSG_READ_INDEX_RESPONSE:
        qr__core_on_read_index_response(core, m);
        return 0;
    }
    return QR_EINVAL;
}

int qr_core_step(struct qr_core *core, const struct qr_msg *m)
{
    QR_ASSERT(core != NULL && m != NULL && !core->ready_taken);
    if (!msg_is_valid(core, m)) {
        return QR_EINVAL;
    }
    if (m->term < core->term) {
        on_stale_term(core, m);
        return 0;
    }
    if (m->term > core->term && m->type != QR_MSG_VOTE &&
        !(m->type == QR_MSG_VOTE_RESPONSE && m->prevote)) {
        bool from_leader = m->type == QR_MSG_APPEND || m->type == QR_MSG_HEARTBEAT ||
                           m->type == QR_MSG_SNAPSHOT || m->type == QR_MSG_TIMEOUT_NOW;
        qr__core_become_follower(core, m->term, from_leader ? m->from : 0);
    }
    int rv = step_by_type(core, m);
    qr__core_check_invariants(core);
    return rv;
}

/* ---- Lifecycle ---------------------------------------------------------------------- */

/* Recovered entries at or below the snapshot are covered by it and skipped. */
static size_t create_skip(const struct qr_core_state *state)
{
    size_t skip = 0;
    while (state->snapshot != NULL && skip < state->entries_count &&
           state->entries[skip].index <= state->snapshot->index) {
        skip++;
    }
    return skip;
}

static int create_check_state(const struct qr_core_state *state, char *errmsg)
{
    qr_index prev = state->snapshot != NULL ? state->snapshot->index : 0;
    qr_term prev_term = state->snapshot != NULL ? state->snapshot->term : 0;
    for (size_t i = create_skip(state); i < state->entries_count; i++) {
        const struct qr_entry *e = &state->entries[i];
        if (e->index != prev + 1 || e->term < prev_term || e->term == 0) {
            return qr__errf(errmsg, QR_EINVAL,
                            "core: recovered entry %zu has index %llu term %llu after index "
                            "%llu term %llu",
                            i, (unsigned long long)e->index, (unsigned long long)e->term,
                            (unsigned long long)prev, (unsigned long long)prev_term);
        }
        prev = e->index;
        prev_term = e->term;
    }
    /* A log term newer than the hard state's is repaired in create_restore. */
    return 0;
}

static int create_alloc(struct qr_core *core)
{
    core->reads = qr_calloc(core->opts.reads_pending_max, sizeof(*core->reads));
    core->reads_ready = qr_calloc(core->opts.reads_pending_max, sizeof(*core->reads_ready));
    core->reads_failed = qr_calloc(core->opts.reads_pending_max, sizeof(*core->reads_failed));
    if (core->reads == NULL || core->reads_ready == NULL || core->reads_failed == NULL) {
        return QR_ENOMEM;
    }
    return 0;
}

/* Latest configuration among committed entries, else the snapshot's, else bootstrap. */
static int create_config(struct qr_core *core, const struct qr_core_state *state)
{
    for (qr_index i = core->commit; i > core->log.offset; i--) {
        const struct qr_entry *e = qr__log_get(&core->log, i);
        if (e->type == QR_ENTRY_CONFIG) {
            struct qr_config c;
            int rv = qr_core_config_decode(e->data.base, e->data.len, &c, NULL);
            if (rv != 0) {
                return rv;
            }
            return qr__core_config_set(core, &c, i);
        }
    }
    if (state->snapshot != NULL) {
        return qr__core_config_set(core, &state->snapshot->config, state->snapshot->index);
    }
    return 0;
}

/* A brand-new cluster member writes the bootstrap configuration as entry 1, term 1. */
static int create_bootstrap(struct qr_core *core, const struct qr_config *config)
{
    uint8_t buf[QR_CORE_CONFIG_SIZE_MAX];
    size_t size = qr_core_config_encoded_size(config);
    QR_ASSERT(size <= sizeof(buf));
    qr_core_config_encode(config, buf);
    struct qr_entry e = {.term = 1, .index = 1, .type = QR_ENTRY_CONFIG, .data = {buf, size}};
    core->term = 1;
    core->hard_state_dirty = true;
    int rv = qr__log_append(&core->log, &e);
    if (rv != 0) {
        return rv;
    }
    core->commit = 1;
    return qr__core_config_set(core, config, 1);
}

static int create_restore(struct qr_core *core, const struct qr_core_state *state, char *errmsg)
{
    core->term = state->hard_state.term;
    core->vote = state->hard_state.vote;
    core->durable_term = core->term;
    core->durable_vote = core->vote;
    if (state->snapshot != NULL) {
        core->snapshot = *state->snapshot;
        core->has_snapshot = true;
        qr__log_reset(&core->log, state->snapshot->index, state->snapshot->term);
    }
    for (size_t i = create_skip(state); i < state->entries_count; i++) {
        int rv = qr__log_append(&core->log, &state->entries[i]);
        if (rv != 0) {
            return rv;
        }
    }
    qr_index last = qr__log_last_index(&core->log);
    core->durable = last;
    core->unstable_from = last + 1;
    core->applied = core->log.offset;
    core->commit = state->hard_state.commit > last ? last : state->hard_state.commit;
    core->commit = core->commit < core->log.offset ? core->log.offset : core->commit;
    /* A crash can keep a batch's entries but not its hard state. The entry's term was
     * ours, and no vote of that term left this node (grants wait for a durable hard
     * state), so adopting the term without a vote is safe. */
    if (qr__log_last_term(&core->log) > core->term) {
        core->term = qr__log_last_term(&core->log);
        core->vote = 0;
        core->hard_state_dirty = true;
    }
    int rv = create_config(core, state);
    if (rv != 0) {
        return qr__errf(errmsg, rv, "core: recovered configuration is invalid");
    }
    if (!core->has_config && last == 0 && state->config != NULL) {
        rv = qr_core_config_validate(state->config, errmsg);
        if (rv == 0) {
            rv = create_bootstrap(core, state->config);
        }
    }
    return rv;
}

int qr_core_create(const struct qr_core_opts *opts,
                   const struct qr_core_state *state,
                   struct qr_core **core_out,
                   char *errmsg)
{
    QR_ASSERT(opts != NULL && state != NULL && core_out != NULL);
    if (opts->id == 0) {
        return qr__errf(errmsg, QR_EINVAL, "core: node id 0 is reserved");
    }
    if (opts->persist_batches_max > QR_CORE_PERSIST_BATCHES_MAX) {
        return qr__errf(errmsg, QR_EINVAL, "core: persist_batches_max %u is above %d",
                        (unsigned)opts->persist_batches_max, QR_CORE_PERSIST_BATCHES_MAX);
    }
    int rv = create_check_state(state, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct qr_core *core = qr_calloc(1, sizeof(*core));
    if (core == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "core: out of memory");
    }
    core->opts = *opts;
    opts_fill_defaults(&core->opts);
    qr__rng_seed(&core->rng, core->opts.seed);
    qr__log_init(&core->log);
    rv = create_alloc(core);
    if (rv == 0) {
        rv = create_restore(core, state, errmsg);
    }
    if (rv != 0) {
        qr_core_destroy(core);
        return rv == QR_ENOMEM ? qr__errf(errmsg, rv, "core: out of memory") : rv;
    }
    core->role = qr__core_is_voter(core, core->opts.id) ? QR_ROLE_FOLLOWER : QR_ROLE_LEARNER;
    core->soft_changed = true;
    reset_election_timeout(core);
    qr__core_check_invariants(core);
    *core_out = core;
    return 0;
}

void qr_core_destroy(struct qr_core *core)
{
    if (core == NULL) {
        return;
    }
    qr__core_ready_release(core);
    progress_clear(core);
    qr__log_close(&core->log);
    qr_free(core->reads);
    qr_free(core->reads_ready);
    qr_free(core->reads_failed);
    qr_free(core->outbox);
    qr_free(core->held);
    qr_free(core->ready_msgs);
    qr_free(core);
}

/* ---- Getters ------------------------------------------------------------------------ */

void qr_core_status(const struct qr_core *core, struct qr_core_status *status)
{
    QR_ASSERT(core != NULL && status != NULL);
    memset(status, 0, sizeof(*status));
    status->id = core->opts.id;
    status->role = core->role;
    status->term = core->term;
    status->vote = core->vote;
    status->leader = core->leader;
    status->first_index = qr__log_first_index(&core->log);
    status->last_index = qr__log_last_index(&core->log);
    status->commit = core->commit;
    status->applied = core->applied;
    status->durable = core->durable;
    status->snapshot_index = core->has_snapshot ? core->snapshot.index : 0;
    status->config = core->config;
    status->transfer_target = core->transfer_target;
}

bool qr_core_progress(const struct qr_core *core,
                      qr_node_id id,
                      qr_index *match_out,
                      qr_index *next_out)
{
    if (core->role != QR_ROLE_LEADER) {
        return false;
    }
    for (size_t i = 0; i < core->progress_count; i++) {
        if (core->progress[i].id == id) {
            *match_out = core->progress[i].match;
            *next_out = core->progress[i].next;
            return true;
        }
    }
    return false;
}

int qr_core_entry(const struct qr_core *core, qr_index index, const struct qr_entry **out)
{
    const struct qr_entry *e = qr__log_get(&core->log, index);
    if (e == NULL) {
        return QR_ENOTFOUND;
    }
    *out = e;
    return 0;
}

/* ---- Invariants --------------------------------------------------------------------- */

void qr__core_check_invariants(const struct qr_core *core)
{
    qr_index last = qr__log_last_index(&core->log);
    QR_ASSERT(core->applied <= core->commit);
    QR_ASSERT(core->commit <= last);
    QR_ASSERT(core->durable <= last);
    QR_ASSERT(core->seq_done <= core->seq_emitted);
    QR_ASSERT(core->batches_count == core->seq_emitted - core->seq_done);
    QR_ASSERT(core->batches_count <= core->opts.persist_batches_max);
    QR_ASSERT(core->unstable_from <= last + 1);
    QR_ASSERT(core->vote == 0 || core->term > 0);
    if (core->role == QR_ROLE_LEADER) {
        QR_ASSERT(core->leader == core->opts.id);
        QR_ASSERT(core->vote == core->opts.id);
    }
#ifdef QR_DEBUG
    for (size_t i = 1; i < core->log.count; i++) {
        QR_ASSERT(core->log.entries[i].index == core->log.entries[i - 1].index + 1);
        QR_ASSERT(core->log.entries[i].term >= core->log.entries[i - 1].term);
    }
    for (size_t i = 0; i < core->progress_count; i++) {
        const struct qr__progress *pr = &core->progress[i];
        QR_ASSERT(pr->match < pr->next);
        QR_ASSERT(pr->inflight_count <= core->opts.inflight_msgs_max);
    }
#endif
}
