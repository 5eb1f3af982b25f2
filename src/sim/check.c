/*
 * sim/check.c: the simulator's safety checkers. See check.h.
 *
 * Layer: sim. Every record is a bounded map; every loop is bounded by a window
 * the caller passes or by the committed record. Violation messages name the
 * nodes, indexes, terms and payload hashes involved so that a failing seed
 * can be understood from its report alone.
 */
#include "sim/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "quorum/err.h"
#include "util/assert.h"

#define REQUEST_FAILED 1

__attribute__((format(printf, 3, 4))) static int
violation(struct qr_sim_check *check, const char *name, const char *fmt, ...)
{
    /* Keep the first violation: later ones are usually its consequences. */
    if (check->check_name == NULL) {
        check->check_name = name;
        va_list args;
        va_start(args, fmt);
        (void)vsnprintf(check->errmsg, sizeof(check->errmsg), fmt, args);
        va_end(args);
    }
    return QR_EPROTO;
}

void qr__check_init(struct qr_sim_check *check)
{
    QR_ASSERT(check != NULL);
    memset(check, 0, sizeof(*check));
    qr__sim_map_init(&check->leaders, QR_SIM_CHECK_ITEMS_MAX);
    qr__sim_map_init(&check->entries, QR_SIM_CHECK_ITEMS_MAX);
    qr__sim_map_init(&check->committed, QR_SIM_CHECK_ITEMS_MAX);
    qr__sim_map_init(&check->commit_terms, QR_SIM_CHECK_ITEMS_MAX);
    qr__sim_map_init(&check->states, QR_SIM_CHECK_ITEMS_MAX);
    qr__sim_map_init(&check->requests, QR_SIM_CHECK_ITEMS_MAX);
}

void qr__check_close(struct qr_sim_check *check)
{
    if (check == NULL) {
        return;
    }
    qr__sim_map_close(&check->leaders);
    qr__sim_map_close(&check->entries);
    qr__sim_map_close(&check->committed);
    qr__sim_map_close(&check->commit_terms);
    qr__sim_map_close(&check->states);
    qr__sim_map_close(&check->requests);
}

uint64_t qr__check_entry_hash(const struct qr_entry *entry)
{
    QR_ASSERT(entry != NULL);
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    h ^= (uint64_t)entry->type;
    h *= UINT64_C(0x100000001b3);
    for (size_t i = 0; i < entry->data.len; i++) {
        h ^= entry->data.base[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

int qr__check_leader(struct qr_sim_check *check, qr_term term, qr_node_id node)
{
    QR_ASSERT(check != NULL && node != 0);
    uint64_t leader = 0;
    if (qr__sim_map_get(&check->leaders, term, 0, &leader, NULL)) {
        if (leader != node) {
            return violation(check, QR_SIM_CHECK_ELECTION,
                             "two leaders in term %llu: n%llu and n%llu", (unsigned long long)term,
                             (unsigned long long)leader, (unsigned long long)node);
        }
        return 0;
    }
    return qr__sim_map_put(&check->leaders, term, 0, node, 0);
}

int qr__check_log_entry(
    struct qr_sim_check *check, qr_node_id node, qr_index index, qr_term term, uint64_t hash)
{
    QR_ASSERT(check != NULL && index > 0);
    uint64_t seen_hash = 0;
    uint64_t seen_node = 0;
    if (qr__sim_map_get(&check->entries, index, term, &seen_hash, &seen_node)) {
        if (seen_hash != hash) {
            return violation(check, QR_SIM_CHECK_LOG_MATCHING,
                             "index %llu term %llu: n%llu holds hash %016llx, n%llu held %016llx",
                             (unsigned long long)index, (unsigned long long)term,
                             (unsigned long long)node, (unsigned long long)hash,
                             (unsigned long long)seen_node, (unsigned long long)seen_hash);
        }
        return 0;
    }
    return qr__sim_map_put(&check->entries, index, term, hash, node);
}

struct view_entry {
    bool is_held;
    qr_term term;
    uint64_t hash;
};

static struct view_entry view_read(const struct qr_sim_log_view *view, qr_index index)
{
    struct view_entry e = {false, 0, 0};
    e.is_held = view->entry(view->ctx, index, &e.term, &e.hash);
    return e;
}

static struct view_entry view_read_term(const struct qr_sim_log_view *view, qr_index index)
{
    struct view_entry e = {false, 0, 0};
    e.is_held = view->entry(view->ctx, index, &e.term, NULL);
    return e;
}

int qr__check_logs_match(struct qr_sim_check *check,
                         const struct qr_sim_log_view *a,
                         const struct qr_sim_log_view *b,
                         qr_index from,
                         qr_index to)
{
    QR_ASSERT(check != NULL && a != NULL && b != NULL);
    if (from == 0) {
        from = 1;
    }
    /* The highest index in the window where both logs hold the same term. */
    qr_index anchor = 0;
    for (qr_index i = to; i >= from && i > 0; i--) {
        struct view_entry x = view_read_term(a, i);
        struct view_entry y = view_read_term(b, i);
        if (x.is_held && y.is_held && x.term == y.term) {
            anchor = i;
            break;
        }
    }
    /* Raft §5.3: agreement at the anchor implies agreement on everything before it. */
    for (qr_index i = from; i <= anchor; i++) {
        struct view_entry x = view_read(a, i);
        struct view_entry y = view_read(b, i);
        if (!x.is_held || !y.is_held) {
            continue;
        }
        if (x.term != y.term || x.hash != y.hash) {
            return violation(check, QR_SIM_CHECK_LOG_MATCHING,
                             "n%llu and n%llu agree at index %llu (term %llu) but differ at index "
                             "%llu: term %llu hash %016llx vs term %llu hash %016llx",
                             (unsigned long long)a->node, (unsigned long long)b->node,
                             (unsigned long long)anchor,
                             (unsigned long long)view_read(a, anchor).term, (unsigned long long)i,
                             (unsigned long long)x.term, (unsigned long long)x.hash,
                             (unsigned long long)y.term, (unsigned long long)y.hash);
        }
    }
    return 0;
}

int qr__check_overwrite(struct qr_sim_check *check,
                        qr_node_id node,
                        qr_index index,
                        qr_term old_term,
                        uint64_t old_hash,
                        const struct qr_entry *replacement)
{
    QR_ASSERT(check != NULL && index > 0);
    qr_term term = 0;
    uint64_t hash = 0;
    if (!qr__check_committed(check, index, &term, &hash) || term != old_term || hash != old_hash) {
        return 0; /* The stored entry was not the committed one: replacing it is allowed. */
    }
    if (replacement != NULL && replacement->term == term &&
        qr__check_entry_hash(replacement) == hash) {
        return 0;
    }
    return violation(check, QR_SIM_CHECK_DURABLE,
                     "n%llu replaces its durable committed entry at index %llu (term %llu) with %s "
                     "term %llu",
                     (unsigned long long)node, (unsigned long long)index, (unsigned long long)term,
                     replacement != NULL ? "an entry of" : "nothing,",
                     (unsigned long long)(replacement != NULL ? replacement->term : 0));
}

/* The leader's log holds committed entry (i, term, hash). */
static int leader_holds(struct qr_sim_check *check,
                        const struct qr_sim_log_view *log,
                        const struct qr_sim_leader *leader,
                        qr_index i,
                        qr_term term,
                        uint64_t hash)
{
    struct view_entry e = view_read(log, i);
    if (!e.is_held) {
        return violation(check, QR_SIM_CHECK_COMPLETENESS,
                         "leader n%llu of term %llu lacks committed index %llu (term %llu); its "
                         "snapshot covers up to %llu",
                         (unsigned long long)log->node, (unsigned long long)leader->term,
                         (unsigned long long)i, (unsigned long long)term,
                         (unsigned long long)leader->snapshot_index);
    }
    if (e.term != term || e.hash != hash) {
        return violation(check, QR_SIM_CHECK_COMPLETENESS,
                         "leader n%llu of term %llu holds index %llu term %llu hash %016llx, but "
                         "term %llu hash %016llx was committed there",
                         (unsigned long long)log->node, (unsigned long long)leader->term,
                         (unsigned long long)i, (unsigned long long)e.term,
                         (unsigned long long)e.hash, (unsigned long long)term,
                         (unsigned long long)hash);
    }
    return 0;
}

bool qr__check_committed(const struct qr_sim_check *check,
                         qr_index index,
                         qr_term *term_out,
                         uint64_t *hash_out)
{
    QR_ASSERT(check != NULL);
    return qr__sim_map_get(&check->committed, index, 0, term_out, hash_out);
}

int qr__check_applied(struct qr_sim_check *check, const struct qr_sim_apply *apply)
{
    QR_ASSERT(check != NULL && apply != NULL && apply->index > 0);
    QR_ASSERT(apply->node_term >= apply->term);
    qr_term seen_term = 0;
    uint64_t seen_hash = 0;
    if (qr__check_committed(check, apply->index, &seen_term, &seen_hash)) {
        if (seen_term != apply->term || seen_hash != apply->hash) {
            return violation(check, QR_SIM_CHECK_STATE_MACHINE,
                             "n%llu applies index %llu term %llu hash %016llx, but term %llu hash "
                             "%016llx was applied there before",
                             (unsigned long long)apply->node, (unsigned long long)apply->index,
                             (unsigned long long)apply->term, (unsigned long long)apply->hash,
                             (unsigned long long)seen_term, (unsigned long long)seen_hash);
        }
        return 0;
    }
    int rv = qr__sim_map_put(&check->committed, apply->index, 0, apply->term, apply->hash);
    if (rv == 0) {
        rv = qr__sim_map_put(&check->commit_terms, apply->index, 0, apply->node_term, 0);
    }
    if (rv == 0 && apply->index > check->committed_max) {
        check->committed_max = apply->index;
    }
    return rv;
}

int qr__check_leader_log(struct qr_sim_check *check,
                         const struct qr_sim_log_view *log,
                         const struct qr_sim_leader *leader)
{
    QR_ASSERT(check != NULL && log != NULL && leader != NULL);
    qr_term term = 0;
    uint64_t hash = 0;
    if (leader->snapshot_index > 0 &&
        qr__check_committed(check, leader->snapshot_index, &term, &hash) &&
        term != leader->snapshot_term) {
        return violation(check, QR_SIM_CHECK_COMPLETENESS,
                         "leader n%llu has a snapshot at index %llu term %llu, but term %llu was "
                         "committed there",
                         (unsigned long long)log->node, (unsigned long long)leader->snapshot_index,
                         (unsigned long long)leader->snapshot_term, (unsigned long long)term);
    }
    for (qr_index i = leader->snapshot_index + 1; i <= check->committed_max; i++) {
        uint64_t commit_term = 0;
        if (!qr__check_committed(check, i, &term, &hash) ||
            !qr__sim_map_get(&check->commit_terms, i, 0, &commit_term, NULL) ||
            commit_term >= leader->term) {
            continue;
        }
        int rv = leader_holds(check, log, leader, i, term, hash);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int qr__check_state(struct qr_sim_check *check, qr_node_id node, qr_index index, uint64_t digest)
{
    QR_ASSERT(check != NULL);
    uint64_t seen = 0;
    uint64_t seen_node = 0;
    if (qr__sim_map_get(&check->states, index, 0, &seen, &seen_node)) {
        if (seen != digest) {
            return violation(check, QR_SIM_CHECK_STATE_MACHINE,
                             "state after index %llu: n%llu has digest %016llx, n%llu had %016llx",
                             (unsigned long long)index, (unsigned long long)node,
                             (unsigned long long)digest, (unsigned long long)seen_node,
                             (unsigned long long)seen);
        }
        return 0;
    }
    return qr__sim_map_put(&check->states, index, 0, digest, node);
}

int qr__check_request_applied(
    struct qr_sim_check *check, qr_node_id node, uint64_t client, uint64_t seq, qr_index index)
{
    QR_ASSERT(check != NULL && index > 0);
    uint64_t applied_index = 0;
    uint64_t flags = 0;
    if (qr__sim_map_get(&check->requests, client, seq, &applied_index, &flags)) {
        if ((flags & REQUEST_FAILED) != 0) {
            return violation(check, QR_SIM_CHECK_STATE_MACHINE,
                             "n%llu applies request c%llu#%llu at index %llu after another entry "
                             "took the index it was proposed at",
                             (unsigned long long)node, (unsigned long long)client,
                             (unsigned long long)seq, (unsigned long long)index);
        }
        if (applied_index != index) {
            return violation(check, QR_SIM_CHECK_STATE_MACHINE,
                             "request c%llu#%llu applied twice: index %llu and index %llu (n%llu)",
                             (unsigned long long)client, (unsigned long long)seq,
                             (unsigned long long)applied_index, (unsigned long long)index,
                             (unsigned long long)node);
        }
        return 0;
    }
    return qr__sim_map_put(&check->requests, client, seq, index, 0);
}

int qr__check_request_failed(struct qr_sim_check *check, uint64_t client, uint64_t seq)
{
    QR_ASSERT(check != NULL);
    uint64_t applied_index = 0;
    if (qr__sim_map_get(&check->requests, client, seq, &applied_index, NULL) &&
        applied_index != 0) {
        return violation(check, QR_SIM_CHECK_STATE_MACHINE,
                         "request c%llu#%llu was applied at index %llu, yet another entry took "
                         "the index it was proposed at",
                         (unsigned long long)client, (unsigned long long)seq,
                         (unsigned long long)applied_index);
    }
    return qr__sim_map_put(&check->requests, client, seq, 0, REQUEST_FAILED);
}
