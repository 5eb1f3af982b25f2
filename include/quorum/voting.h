/*
 * quorum/voting.h: quorum systems, the only place that knows how many votes are enough.
 *
 * A voting configuration is a set of voters (ids with weights) and a rule that
 * says which subsets of them are quorums. Everything in quorum that needs
 * "enough nodes" (winning an election, committing a log entry, confirming
 * leadership for a read) asks this module. It is pure code: no I/O, no clock,
 * no global state, and the query functions never allocate.
 *
 * A configuration has one or two groups. A single group follows one rule:
 *
 *   - majority:  a set is a quorum when it holds more than half the total
 *                weight. With all weights 1 this is the classic n/2+1.
 *   - flexible:  separate thresholds for elections (phase 1) and replication
 *                (phase 2), as in Flexible Paxos. Refused unless every
 *                election quorum intersects every replication quorum AND
 *                every other election quorum (the latter keeps Raft's "one
 *                leader per term", which needs election quorums to overlap).
 *   - byzantine: n >= 3f+1 voters of weight 1; a quorum is any ceil((n+f+1)/2)
 *                voters, which is 2f+1 when n = 3f+1, so that any two quorums
 *                share at least f+1 voters, hence one correct voter.
 *
 * A joint configuration holds two groups (old and new during a membership
 * change); a set is a quorum only when it is a quorum of both.
 *
 * Weights are whole numbers from 1 to QR_VOTING_WEIGHT_MAX. A threshold is a
 * minimum weight: a set is a quorum of a group when the weight of its members
 * in that group reaches the threshold. Ids that are not voters, and repeated
 * ids, never add weight.
 *
 * struct qr_voting is a plain value with no pointers: it may be copied,
 * compared with the query functions and stored by the caller. All functions
 * may be called from any thread on distinct or read-only objects.
 */
#ifndef QUORUM_VOTING_H
#define QUORUM_VOTING_H

#include "quorum/types.h"

/** Most voters in one group. */
#define QR_VOTING_VOTERS_MAX 64
/** Largest weight of one voter. */
#define QR_VOTING_WEIGHT_MAX 255
/** Most groups in a configuration (2: joint consensus). */
#define QR_VOTING_GROUPS_MAX 2

/** The rule of a configuration. */
enum qr_voting_rule {
    QR_VOTING_MAJORITY = 1,
    QR_VOTING_FLEXIBLE = 2,
    QR_VOTING_BYZANTINE = 3,
    QR_VOTING_JOINT = 4, /* Two groups; each has its own rule. */
};

/** Which quorum a question is about. BOTH asks for a set that is a quorum of each phase. */
enum qr_voting_phase {
    QR_VOTING_ELECTION = 1,    /* Phase 1: votes for a candidate. */
    QR_VOTING_REPLICATION = 2, /* Phase 2: acknowledgements of log entries and reads. */
    QR_VOTING_BOTH = 3,
};

/** The fault model a user plans for. */
enum qr_fault_model {
    QR_FAULT_CRASH = 1,     /* Nodes stop; they never lie. */
    QR_FAULT_BYZANTINE = 2, /* Faulty nodes may send anything. */
};

/** The state of an election or any other vote. */
enum qr_vote_result {
    QR_VOTE_PENDING = 0, /* Neither won nor lost yet. */
    QR_VOTE_WON = 1,     /* The granted votes form a quorum. */
    QR_VOTE_LOST = 2,    /* Even if every missing voter granted, no quorum would form. */
};

/** One voter. */
struct qr_voter {
    qr_node_id id;   /* Non-zero, unique within a group. */
    uint32_t weight; /* 1 ... QR_VOTING_WEIGHT_MAX. */
};

/** One recorded vote. */
struct qr_vote {
    qr_node_id id; /* The voter. */
    bool granted;  /* True for a yes. */
};

/** How far one node's log is known to match the leader's. */
struct qr_match {
    qr_node_id id;  /* The node. */
    qr_index index; /* Highest index known durable on that node; 0 for none. */
};

/** One group of voters under one rule. Read-only for users; build it with qr_voting_init_*. */
struct qr_voting_group {
    enum qr_voting_rule rule;                     /* MAJORITY, FLEXIBLE or BYZANTINE. */
    uint32_t voters_count;                        /* 1 ... QR_VOTING_VOTERS_MAX. */
    uint32_t byzantine_faults;                    /* f for BYZANTINE; 0 otherwise. */
    uint32_t reserved;                            /* Zero. */
    uint64_t weight_total;                        /* Sum of the weights. */
    uint64_t election_weight_min;                 /* Phase-1 threshold, 1 ... weight_total. */
    uint64_t replication_weight_min;              /* Phase-2 threshold, 1 ... weight_total. */
    struct qr_voter voters[QR_VOTING_VOTERS_MAX]; /* Sorted by id; unused slots zero. */
};

/** A voting configuration: one group, or two for joint consensus. */
struct qr_voting {
    enum qr_voting_rule rule; /* The group's rule, or JOINT when groups_count is 2. */
    uint32_t groups_count;    /* 1 or 2. */
    struct qr_voting_group groups[QR_VOTING_GROUPS_MAX]; /* Unused slot zero. */
};

/** What a user asks for: n nodes tolerating t faults of a model, as in Quorum(3, 1). */
struct qr_voting_spec {
    uint32_t nodes_count;      /* n; the voters get ids 1 ... n. */
    uint32_t faults;           /* t, the faults to tolerate. */
    enum qr_fault_model model; /* Crash (majority rule) or Byzantine. */
    const uint32_t *weights;   /* Borrows; NULL for all 1, else nodes_count weights. */
};

/**
 * Build a majority configuration.
 * @param v            Out: the configuration; untouched on error.
 * @param voters       Borrows voters_count voters, in any order.
 * @param errmsg       Out, may be NULL: QR_ERRMSG_SIZE bytes, set on error to what to change.
 * @return 0, QR_ENOVOTERS (none given), QR_ETOOMANYVOTERS (more than QR_VOTING_VOTERS_MAX),
 *         QR_EBADID (id 0), QR_EDUPVOTER, QR_EBADWEIGHT (0 or above QR_VOTING_WEIGHT_MAX).
 */
QR_API int qr_voting_init_majority(struct qr_voting *v,
                                   const struct qr_voter *voters,
                                   size_t voters_count,
                                   char *errmsg);

/**
 * Build a flexible configuration with separate election and replication thresholds.
 * @param election_weight_min     A set wins an election when its weight reaches this.
 * @param replication_weight_min  A set commits when its weight reaches this.
 * @return As qr_voting_init_majority, and QR_EBADTHRESHOLD (0 or above the total weight),
 *         QR_ENOINTERSECT (two election quorums, or an election and a replication quorum,
 *         can be disjoint).
 */
QR_API int qr_voting_init_flexible(struct qr_voting *v,
                                   const struct qr_voter *voters,
                                   size_t voters_count,
                                   uint64_t election_weight_min,
                                   uint64_t replication_weight_min,
                                   char *errmsg);

/**
 * Build a Byzantine configuration tolerating `faults` arbitrary faults.
 * @return As qr_voting_init_majority, QR_EBADWEIGHT for any weight other than 1, and
 *         QR_ETOOFEWNODES when fewer than 3 * faults + 1 voters are given.
 */
QR_API int qr_voting_init_byzantine(struct qr_voting *v,
                                    const struct qr_voter *voters,
                                    size_t voters_count,
                                    uint32_t faults,
                                    char *errmsg);

/**
 * Build the joint configuration "old AND new" used during a membership change.
 * @param old_config  Borrows; must have one group (built by another qr_voting_init_*).
 * @param new_config  Borrows; must have one group.
 * @return 0, QR_EINVAL (an argument is already joint).
 */
QR_API int qr_voting_init_joint(struct qr_voting *v,
                                const struct qr_voting *old_config,
                                const struct qr_voting *new_config,
                                char *errmsg);

/**
 * Build the configuration a user means by "n nodes tolerating t faults": a majority of
 * voters 1 ... n for crash faults (n >= 2t+1 with equal weights; with weights, the t
 * heaviest voters may fail), a Byzantine quorum for Byzantine faults (n >= 3t+1).
 * @param spec  Borrows.
 * @return 0, QR_ETOOFEWNODES (the message names the nodes needed and given), QR_EINVAL
 *         (unknown fault model), and the errors of qr_voting_init_majority and
 *         qr_voting_init_byzantine (QR_ENOVOTERS for 0 nodes).
 */
QR_API int
qr_voting_init_tolerating(struct qr_voting *v, const struct qr_voting_spec *spec, char *errmsg);

/**
 * Whether a set of nodes is a quorum.
 * @param ids  Borrows ids_count ids; unknown and repeated ids are ignored.
 */
QR_API bool qr_voting_is_quorum(const struct qr_voting *v,
                                enum qr_voting_phase phase,
                                const qr_node_id *ids,
                                size_t ids_count);

/**
 * Count votes. A voter with no record has not voted yet. A voter with several records
 * counts as granted if any record grants (a yes, once given in a term, stands).
 * @param votes  Borrows votes_count records; records of non-voters are ignored.
 * @return WON when the granted voters form a quorum, LOST when the granted and the
 *         not-yet-voted together cannot form one, PENDING otherwise.
 */
QR_API enum qr_vote_result qr_voting_tally(const struct qr_voting *v,
                                           enum qr_voting_phase phase,
                                           const struct qr_vote *votes,
                                           size_t votes_count);

/**
 * The highest log index held by a replication quorum: the largest i such that the
 * nodes whose match index is at least i form a replication quorum. For a majority of
 * equal weights this is the median. Voters without a record count as 0.
 * @param matches  Borrows matches_count records; records of non-voters are ignored; for a
 *                 repeated id the highest index counts.
 */
QR_API qr_index qr_voting_committed_index(const struct qr_voting *v,
                                          const struct qr_match *matches,
                                          size_t matches_count);

/** Whether `id` is a voter of any group. */
QR_API bool qr_voting_has_voter(const struct qr_voting *v, qr_node_id id);

/**
 * The ids of all voters of all groups, each once, ascending.
 * @param ids_out  Out: room for ids_max ids (QR_VOTING_GROUPS_MAX * QR_VOTING_VOTERS_MAX
 *                 always suffices).
 * @return How many voters there are (may exceed ids_max; then only ids_max are written).
 */
QR_API size_t qr_voting_voter_ids(const struct qr_voting *v, qr_node_id *ids_out, size_t ids_max);

/**
 * The largest k such that ANY k voters may crash and the rest still hold an election
 * quorum and a replication quorum: liveness under crash faults.
 */
QR_API uint32_t qr_voting_faults_tolerated(const struct qr_voting *v);

/**
 * Whether every two quorums that must overlap do: election with election and election
 * with replication (Byzantine: in at least f+1 voters). Exact for one group, computed by
 * subset sums over the weights; a joint configuration intersects when both groups do.
 */
QR_API bool qr_voting_quorums_intersect(const struct qr_voting *v);

/**
 * The fewest voters that form a quorum of `phase`.
 * @param size_out  Out: the count.
 * @return 0, QR_ENOMEM, QR_ETOOBIG (a joint configuration too heavy to search).
 */
QR_API int qr_voting_quorum_size_min(const struct qr_voting *v,
                                     enum qr_voting_phase phase,
                                     uint32_t *size_out);

/**
 * The probability that the live voters form a quorum of `phase` when each voter fails
 * independently with probability p_fail. Exact, by dynamic programming over weights.
 * @param availability_out  Out: a probability in [0, 1].
 * @return 0, QR_EINVAL (p_fail outside [0, 1]), QR_ENOMEM, QR_ETOOBIG (a joint
 *         configuration too heavy for the exact method).
 */
QR_API int qr_voting_availability(const struct qr_voting *v,
                                  enum qr_voting_phase phase,
                                  double p_fail,
                                  double *availability_out);

/** The rule's name: "majority", "flexible", "byzantine" or "joint". Static string. */
QR_API const char *qr_voting_rule_name(enum qr_voting_rule rule);

#endif /* QUORUM_VOTING_H */
