/*
 * sim/check.h: the simulator's safety checkers.
 *
 * Layer: sim. Each checker keeps a global record across every node and every
 * restart of one simulated run, and is fed by the simulator after every
 * event. They implement Raft's safety properties (Raft paper, figure 3):
 *
 *   election safety      at most one leader per term (term -> leader);
 *   log matching         two logs holding an entry with the same index and
 *                        term hold the same payload there, and agree on every
 *                        entry before it ((index, term) -> payload hash, plus
 *                        a windowed comparison of two logs);
 *   leader completeness  a leader's log holds every entry ever committed
 *                        (index -> (term, payload hash)) or a snapshot covers it;
 *   no committed entry lost
 *                        a node never replaces a durable entry that matches the
 *                        committed record with anything else;
 *   state machine safety every node applies the same entry at each index, each
 *                        client request at most once, never one known to have
 *                        failed, and the state at a snapshot index is the same
 *                        on every node (index -> state digest).
 *
 * A check that finds a violation returns QR_EPROTO and writes what it found
 * into `errmsg` and the check's name into `check_name`; the simulator stops
 * there. The checkers never print and never read a clock. Memory is bounded
 * by QR_SIM_CHECK_ITEMS_MAX items per record (QR_EBUSY past it).
 */
#ifndef QR_SIM_CHECK_H
#define QR_SIM_CHECK_H

#include "quorum/core.h"
#include "sim/map.h"

/** Most items one record holds. */
#define QR_SIM_CHECK_ITEMS_MAX ((size_t)1 << 22)
/** Size of the violation message. */
#define QR_SIM_CHECK_ERRMSG_SIZE 512

/** The name of each check, as printed in a failure report. */
#define QR_SIM_CHECK_ELECTION      "election safety"
#define QR_SIM_CHECK_LOG_MATCHING  "log matching"
#define QR_SIM_CHECK_COMPLETENESS  "leader completeness"
#define QR_SIM_CHECK_STATE_MACHINE "state machine safety"
#define QR_SIM_CHECK_DURABLE       "no committed entry lost"

/**
 * Reads one entry of a node's log for the checkers.
 * @param hash_out  Out, may be NULL when only the term is wanted.
 * @return true with the entry's term and payload hash; false when the log does not hold
 *         `index` (compacted or beyond its end).
 */
typedef bool (*qr_sim_entry_cb)(void *ctx, qr_index index, qr_term *term_out, uint64_t *hash_out);

/** One node's log as the checkers see it. */
struct qr_sim_log_view {
    qr_node_id node;       /* Named in messages. */
    void *ctx;             /* Passed to entry. */
    qr_sim_entry_cb entry; /* Reads one entry. */
};

struct qr_sim_check {
    struct qr_sim_map leaders;             /* (term, 0) -> (leader, 0). */
    struct qr_sim_map entries;             /* (index, term) -> (payload hash, first node seen). */
    struct qr_sim_map committed;           /* (index, 0) -> (term, payload hash). */
    struct qr_sim_map commit_terms;        /* (index, 0) -> (bound on its commit term, 0). */
    struct qr_sim_map states;              /* (index, 0) -> (state digest, node). */
    struct qr_sim_map requests;            /* (client, seq) -> (index applied or 0, is_failed). */
    qr_index committed_max;                /* Highest index in `committed`. */
    const char *check_name;                /* Static name of the violated check; NULL when none. */
    char errmsg[QR_SIM_CHECK_ERRMSG_SIZE]; /* What was violated. */
};

/** Prepare empty records. Allocates lazily. */
void qr__check_init(struct qr_sim_check *check);
/** Free the records. */
void qr__check_close(struct qr_sim_check *check);

/** Hash of an entry's type and payload (FNV-1a), the identity the checkers compare. */
uint64_t qr__check_entry_hash(const struct qr_entry *entry);

/**
 * Election safety: `node` is leader in `term`.
 * @return 0, QR_EPROTO (another node led this term), QR_EBUSY, QR_ENOMEM.
 */
int qr__check_leader(struct qr_sim_check *check, qr_term term, qr_node_id node);

/**
 * Log matching, per entry: `node` holds (index, term) with payload `hash`. (A node that lags
 * may hold a stale entry at an index committed elsewhere with another term: that is allowed
 * until it overwrites a committed entry it had made durable, see qr__check_overwrite.)
 * @return 0, QR_EPROTO, QR_EBUSY, QR_ENOMEM.
 */
int qr__check_log_entry(
    struct qr_sim_check *check, qr_node_id node, qr_index index, qr_term term, uint64_t hash);

/**
 * Log matching, per prefix: in [from, to], if the two logs hold an entry of the same term at
 * some index i, they must agree at every index up to i that both hold.
 * @return 0 or QR_EPROTO.
 */
int qr__check_logs_match(struct qr_sim_check *check,
                         const struct qr_sim_log_view *a,
                         const struct qr_sim_log_view *b,
                         qr_index from,
                         qr_index to);

/** One entry applied by one node. */
struct qr_sim_apply {
    qr_node_id node;   /* Who applied it. */
    qr_term node_term; /* The node's current term as it applied it: never below the term of
                          the leader that committed the entry, since the node learned of the
                          commit from that leader or a later one. */
    qr_index index;    /* The entry's index. */
    qr_term term;      /* The entry's term. */
    uint64_t hash;     /* qr__check_entry_hash of the entry. */
};

/**
 * State machine safety: a node applies an entry. Records it as committed (with the first
 * applier's term as a bound on the term it was committed in).
 * @return 0, QR_EPROTO (another entry was applied at this index), QR_EBUSY, QR_ENOMEM.
 */
int qr__check_applied(struct qr_sim_check *check, const struct qr_sim_apply *apply);

/** A node that just became leader. */
struct qr_sim_leader {
    qr_term term;            /* Its term. */
    qr_index snapshot_index; /* Its snapshot (0 for none): covers the log up to here. */
    qr_term snapshot_term;   /* Term of the snapshot's last entry. */
};

/**
 * Leader completeness (Raft §5.4): the log of a leader of term U holds every entry committed
 * in a term before U, unless its snapshot covers it; and the snapshot agrees with the
 * committed record. An entry whose commit-term bound (see struct qr_sim_apply) is U or more
 * is not required: a leader of an older term may win late, with delayed votes, after a
 * newer term committed more.
 * @param log  Borrows: the leader's log.
 * @return 0 or QR_EPROTO.
 */
int qr__check_leader_log(struct qr_sim_check *check,
                         const struct qr_sim_log_view *log,
                         const struct qr_sim_leader *leader);

/**
 * State machine safety, whole state: `node`'s state machine, having applied exactly the
 * entries up to `index`, has digest `digest`.
 * @return 0, QR_EPROTO (another node had another state at this index), QR_EBUSY, QR_ENOMEM.
 */
int qr__check_state(struct qr_sim_check *check, qr_node_id node, qr_index index, uint64_t digest);

/**
 * State machine safety, requests: client request (client, seq) was applied at `index`.
 * Applying it again at the same index (a replay after restart) is fine; at another index,
 * or after it was declared failed, is a violation.
 * @return 0, QR_EPROTO, QR_EBUSY, QR_ENOMEM.
 */
int qr__check_request_applied(
    struct qr_sim_check *check, qr_node_id node, uint64_t client, uint64_t seq, qr_index index);

/**
 * The simulator concluded that request (client, seq) can never be applied (another entry
 * was applied at the index it was proposed at). A violation if it was applied already.
 * @return 0, QR_EPROTO, QR_EBUSY, QR_ENOMEM.
 */
int qr__check_request_failed(struct qr_sim_check *check, uint64_t client, uint64_t seq);

/**
 * No committed entry lost: `node` is about to replace its durable entry at `index`
 * (old_term, old_hash) with `replacement` (NULL: truncated without replacement).
 * @return 0, or QR_EPROTO when the old entry is the committed one and the replacement differs.
 */
int qr__check_overwrite(struct qr_sim_check *check,
                        qr_node_id node,
                        qr_index index,
                        qr_term old_term,
                        uint64_t old_hash,
                        const struct qr_entry *replacement);

/**
 * The committed record at `index`.
 * @return true with the term and hash when some node applied `index`.
 */
bool qr__check_committed(const struct qr_sim_check *check,
                         qr_index index,
                         qr_term *term_out,
                         uint64_t *hash_out);

#endif /* QR_SIM_CHECK_H */
