/*
 * quorum/core.h: the consensus core, a pure deterministic state machine.
 *
 * The core implements Raft-family log replication (leader election with
 * pre-vote and check-quorum, pipelined replication with flow control,
 * ReadIndex reads, chunked snapshots, joint-consensus membership changes with
 * learners, leadership transfer). Every "are these nodes enough?" question is
 * answered by quorum/voting.h.
 *
 * The core never reads a clock, touches a file or socket, spawns a thread or
 * calls rand(). Inputs arrive as function calls:
 *
 *   qr_core_tick()        time passes by one tick
 *   qr_core_step()        a message arrived from a peer
 *   qr_core_propose()     a client wants an entry appended
 *   qr_core_read_index()  a client wants a linearizable read
 *   qr_core_change_config(), qr_core_transfer_leader(), qr_core_campaign()
 *   qr_core_persisted()   the driver finished writing a persist batch
 *   qr_core_snapshot_taken()   the application saved a snapshot
 *
 * and all the work the driver must do leaves through one output batch,
 * struct qr_ready, taken with qr_core_ready() and released with
 * qr_core_advance(). The same inputs always produce the same outputs.
 *
 * The driver loop:
 *
 *   while (qr_core_has_ready(core)) {
 *       struct qr_ready rd;
 *       qr_core_ready(core, &rd);
 *       write rd.snapshot_chunks to the incoming snapshot (a chunk at offset 0 starts it
 *             over; the last chunk and rd.snapshot may come in the same batch)
 *       if (rd.persist_seq != 0) { start writing rd.snapshot, rd.entries, rd.hard_state }
 *       send every rd.messages[i]  (safe at once: the core holds back any message that
 *                                    depends on data not yet durable)
 *       apply rd.committed in order; serve rd.reads once applied >= read.index
 *       qr_core_advance(core);
 *   }
 *   ... when the write of batch rd.persist_seq is durable: qr_core_persisted(core, seq)
 *
 * By default one persist batch is outstanding at a time: everything proposed
 * while it is being written goes into the next one (group commit). With
 * opts.persist_batches_max > 1 the core hands out a new batch while earlier ones
 * are still being written; the driver writes them in the order given and may
 * report several at once (qr_core_persisted with the newest durable seq). A
 * driver with a writer thread of its own uses this so that the thread, done with
 * one batch, starts on what queued meanwhile without waiting for the loop.
 *
 * Durability rules enforced inside the core (DESIGN rule 2): a vote is granted,
 * an append acknowledged, and the leader's own entry counted toward a quorum
 * only after the batch holding it was reported persisted. Entries are applied
 * only once committed and locally durable.
 *
 * Threading: a core is used by one thread at a time; distinct cores are
 * independent.
 */
#ifndef QUORUM_CORE_H
#define QUORUM_CORE_H

#include "quorum/types.h"
#include "quorum/voting.h"

/** Version of the message and entry structures below; encoders write it. */
#define QR_CORE_PROTOCOL_VERSION 1
/** Most members (voters and learners) of one configuration. */
#define QR_CORE_MEMBERS_MAX QR_VOTING_VOTERS_MAX
/** Most persist batches outstanding at once (qr_core_opts.persist_batches_max). */
#define QR_CORE_PERSIST_BATCHES_MAX 16

/* ---- Entries and configurations ------------------------------------------ */

enum qr_entry_type {
    QR_ENTRY_NORMAL = 1, /* Application command. */
    QR_ENTRY_NOOP = 2,   /* Appended by a new leader to commit entries of earlier terms. */
    QR_ENTRY_CONFIG = 3, /* Encoded struct qr_config (qr_core_config_encode). */
};

/** A log entry. */
struct qr_entry {
    qr_term term;            /* Term of the leader that created it. */
    qr_index index;          /* Position, from 1. */
    enum qr_entry_type type; /* What data holds. */
    struct qr_buf data;      /* Payload; ownership stated where entries are handed over. */
};

/**
 * Cluster membership. `voters` is the current (or, while joint, the incoming)
 * voter set; `voters_old` is non-empty only during a joint-consensus change,
 * when decisions need a majority of both sets. Learners receive the log but
 * never vote. A node appears at most once across voters and learners;
 * voters_old may overlap voters.
 */
struct qr_config {
    uint32_t voters_count;                      /* 1 ... QR_CORE_MEMBERS_MAX. */
    uint32_t voters_old_count;                  /* 0 unless joint. */
    uint32_t learners_count;                    /* 0 ... QR_CORE_MEMBERS_MAX. */
    uint32_t reserved;                          /* Zero. */
    qr_node_id voters[QR_CORE_MEMBERS_MAX];     /* Ascending. */
    qr_node_id voters_old[QR_CORE_MEMBERS_MAX]; /* Ascending. */
    qr_node_id learners[QR_CORE_MEMBERS_MAX];   /* Ascending. */
};

/** Durable per-node state: persisted before anything that depends on it is sent. */
struct qr_hard_state {
    qr_term term;    /* Current term. */
    qr_node_id vote; /* Candidate voted for in `term`, or 0. */
    qr_index commit; /* Highest index known committed (may be persisted lazily). */
};

/** What a snapshot covers. */
struct qr_snapshot_meta {
    qr_index index;          /* Last entry included. */
    qr_term term;            /* Term of that entry. */
    struct qr_config config; /* Membership as of `index`. */
    uint64_t size;           /* Bytes of state-machine data. */
    uint32_t crc;            /* CRC32C of the data. */
    uint32_t reserved;       /* Zero. */
};

/* ---- Messages -------------------------------------------------------------- */

enum qr_msg_type {
    QR_MSG_VOTE = 1,            /* Candidate asks for a vote (or a pre-vote). */
    QR_MSG_VOTE_RESPONSE = 2,   /* Voter answers. */
    QR_MSG_APPEND = 3,          /* Leader sends entries (possibly none). */
    QR_MSG_APPEND_RESPONSE = 4, /* Follower acknowledges or rejects. */
    QR_MSG_HEARTBEAT = 5,       /* Leader asserts leadership; carries commit and read context. */
    QR_MSG_HEARTBEAT_RESPONSE = 6,
    QR_MSG_SNAPSHOT = 7,          /* One chunk of a snapshot. */
    QR_MSG_SNAPSHOT_RESPONSE = 8, /* Next offset wanted, or done. */
    QR_MSG_TIMEOUT_NOW = 9,       /* Leadership transfer: start an election now. */
    QR_MSG_READ_INDEX = 10,       /* Follower asks the leader for a read index. */
    QR_MSG_READ_INDEX_RESPONSE = 11,
};
#define QR_MSG_TYPE_MAX QR_MSG_READ_INDEX_RESPONSE

/**
 * A message between cores. Which fields matter depends on `type` (see each
 * field). Messages handed out by the core are views valid until
 * qr_core_advance(); messages given to qr_core_step() are borrowed.
 */
struct qr_msg {
    enum qr_msg_type type;
    qr_node_id from;
    qr_node_id to;
    qr_term term; /* Sender's term (for a pre-vote request: the term it would campaign in). */

    /* VOTE: candidate's last log position. APPEND: position preceding `entries`. */
    qr_index log_index;
    qr_term log_term;
    /* APPEND, HEARTBEAT: leader's commit index. */
    qr_index commit;

    /* APPEND: entries (views). */
    const struct qr_entry *entries;
    size_t entries_count;

    /* VOTE and VOTE_RESPONSE: this is a pre-vote. VOTE: caused by leadership transfer. */
    bool prevote;
    bool transfer;
    /* VOTE_RESPONSE, APPEND_RESPONSE, SNAPSHOT_RESPONSE: the request was refused. */
    bool reject;
    bool reserved_flag;

    /*
     * APPEND_RESPONSE: on success the follower's last durable index covered by this append;
     * on reject the index the leader tried (log_index of the APPEND).
     * READ_INDEX_RESPONSE: the read index. SNAPSHOT_RESPONSE: the snapshot index.
     */
    qr_index index;
    /* APPEND_RESPONSE reject: follower's last index and a term hint for fast back-off. */
    qr_index hint_index;
    qr_term hint_term;

    /* HEARTBEAT(_RESPONSE): read round. READ_INDEX(_RESPONSE): the client's request id. */
    uint64_t context;

    /* SNAPSHOT: which snapshot, where this chunk goes, and its bytes (the DRIVER fills
     * `data` on the sending side by reading the snapshot at `offset`; chunk_size bytes).
     * SNAPSHOT_RESPONSE: `offset` is the next offset wanted; reject means "restart". */
    const struct qr_snapshot_meta *snapshot; /* View, same lifetime as the message. */
    uint64_t offset;
    uint32_t chunk_size;
    bool last_chunk;
    struct qr_buf data;
};

/* ---- Output batch ------------------------------------------------------------- */

enum qr_role {
    QR_ROLE_FOLLOWER = 1,
    QR_ROLE_PRECANDIDATE = 2,
    QR_ROLE_CANDIDATE = 3,
    QR_ROLE_LEADER = 4,
    QR_ROLE_LEARNER = 5, /* A follower that is not a voter. */
};

/** A linearizable read that may be served once the state machine applied `index`. */
struct qr_read_state {
    uint64_t request_id; /* As given to qr_core_read_index(). */
    qr_index index;      /* Apply at least this far, then read. */
};

/** A snapshot chunk received from the leader, to be written at `offset`. */
struct qr_snapshot_chunk {
    qr_index snapshot_index;
    uint64_t offset;
    struct qr_buf data; /* View valid until qr_core_advance(). */
};

/**
 * The output batch. Every pointer is a view owned by the core, valid until
 * qr_core_advance(). Order of work for the driver: write snapshot chunks,
 * start persisting (snapshot, then entries, then hard state: a crash may lose
 * the batch or keep any prefix of it, never reorder it; a log whose last term
 * is newer than the stored hard state is repaired at qr_core_create), send
 * messages, apply committed entries, serve reads, then advance.
 */
struct qr_ready {
    /* Persist batch. 0 means nothing to persist; otherwise report completion with
     * qr_core_persisted(core, persist_seq). */
    uint64_t persist_seq;
    /* Snapshot received in full and verified: persist it and restore the state machine
     * from it BEFORE applying any entry of `committed`. The stored log is then discarded
     * entirely: the snapshot replaces it (the core keeps a log that already holds the
     * snapshot's last entry and then sends no snapshot at all). At most one install is
     * pending at a time. NULL when none. */
    const struct qr_snapshot_meta *snapshot;
    /* Entries to persist. Any stored entry with index >= entries[0].index is replaced
     * (a conflicting suffix is truncated). */
    const struct qr_entry *entries;
    size_t entries_count;
    /* Hard state to persist (term and vote must be durable). */
    bool has_hard_state;
    struct qr_hard_state hard_state;

    /* Messages to send now, in order. */
    const struct qr_msg *messages;
    size_t messages_count;

    /* Snapshot chunks to write, in order. */
    const struct qr_snapshot_chunk *snapshot_chunks;
    size_t snapshot_chunks_count;

    /* Entries committed and durable: apply them in order. Config entries have already
     * taken effect inside the core; the state machine may ignore them. */
    const struct qr_entry *committed;
    size_t committed_count;

    /* Linearizable reads confirmed. */
    const struct qr_read_state *reads;
    size_t reads_count;
    /* Reads that failed (leadership lost, no leader): request ids, to be retried. */
    const uint64_t *reads_failed;
    size_t reads_failed_count;

    /* Soft state, for information: changes when role or leader changes. */
    bool soft_state_changed;
    enum qr_role role;
    qr_node_id leader;
    qr_term term;
};

/* ---- Configuration of a core ----------------------------------------------- */

/** Limits and behaviour. Zero fields take the documented default (qr_core_opts_default). */
struct qr_core_opts {
    qr_node_id id;                  /* This node; non-zero. */
    uint64_t seed;                  /* Seeds the election-timeout randomness. */
    uint32_t election_ticks;        /* Base election timeout (default 10). Randomized in
                                       [election_ticks, 2 * election_ticks). */
    uint32_t heartbeat_ticks;       /* Leader heartbeat interval (default 1). */
    bool prevote_disabled;          /* Pre-vote is on unless this is set. */
    bool check_quorum_disabled;     /* Check-quorum is on unless this is set. */
    uint32_t inflight_msgs_max;     /* Appends in flight per follower (default 256). */
    uint64_t inflight_bytes_max;    /* Entry bytes in flight per follower (default 16 MiB). */
    uint64_t msg_bytes_max;         /* Bytes per APPEND, payloads plus 32 per entry for
                                       framing (default 1 MiB); one larger entry still
                                       goes alone. */
    uint64_t uncommitted_bytes_max; /* Leader refuses proposals beyond (default 64 MiB). */
    uint64_t log_bytes_max;         /* In-memory log beyond the last snapshot (default
                                       256 MiB); proposals beyond it get QR_EBUSY. */
    uint32_t snapshot_chunk_size;   /* Bytes per snapshot chunk (default 1 MiB). */
    uint32_t reads_pending_max;     /* Outstanding read requests (default 4096). */
    uint32_t entry_bytes_max;       /* Largest single entry payload (default 8 MiB). */
    uint32_t persist_batches_max;   /* Persist batches outstanding at once, 1 to
                                       QR_CORE_PERSIST_BATCHES_MAX (default 1). */
};

/** Fill opts with defaults for node `id`. */
QR_API void qr_core_opts_default(struct qr_core_opts *opts, qr_node_id id);

/** What the core starts from: the recovered durable state (all zero for a new node). */
struct qr_core_state {
    struct qr_hard_state hard_state;
    const struct qr_snapshot_meta *snapshot; /* Borrows; NULL when none. */
    const struct qr_entry *entries;          /* Borrows; consecutive; entries at or below
                                                the snapshot index are skipped. The core
                                                copies them. */
    size_t entries_count;
    const struct qr_config *config; /* Borrows; the bootstrap configuration of a brand-new
                                       cluster (used only when there is no snapshot and no
                                       config entry); NULL for a node that will join. */
};

struct qr_core;

/**
 * Create a core.
 * @param opts   Borrows.
 * @param state  Borrows; the recovered durable state.
 * @param core_out  Out: the new core, owned by the caller; free with qr_core_destroy().
 * @param errmsg Out, may be NULL: QR_ERRMSG_SIZE bytes.
 * @return 0, QR_EINVAL (bad options, or recovered state inconsistent), QR_ENOMEM.
 */
QR_API int qr_core_create(const struct qr_core_opts *opts,
                          const struct qr_core_state *state,
                          struct qr_core **core_out,
                          char *errmsg);

/** Free a core and everything it holds. Accepts NULL. */
QR_API void qr_core_destroy(struct qr_core *core);

/** One tick of logical time. */
QR_API void qr_core_tick(struct qr_core *core);

/**
 * Feed one message. Messages from unknown or stale peers are ignored.
 * @param msg  Borrows; payload bytes are copied.
 * @return 0, QR_EINVAL (structurally invalid message: it was dropped), QR_ENOMEM,
 *         QR_EBUSY (a memory limit was reached: the message was dropped).
 */
QR_API int qr_core_step(struct qr_core *core, const struct qr_msg *msg);

/**
 * Propose one normal entry (leader only).
 * @param data      Borrows; copied.
 * @param index_out Out, may be NULL: the index the entry got.
 * @return 0, QR_ENOTLEADER, QR_EBUSY (uncommitted or log limit, or a leadership transfer is
 *         in progress), QR_ETOOBIG (data larger than entry_bytes_max), QR_ENOMEM.
 */
QR_API int qr_core_propose(struct qr_core *core, struct qr_buf data, qr_index *index_out);

/**
 * Ask for a linearizable read. The answer comes later in ready.reads (or ready.reads_failed)
 * with this request id. Ids must be unique per node; a retry must use a new id.
 * @return 0, QR_ENOTLEADER (no known leader), QR_EBUSY (too many pending reads).
 */
QR_API int qr_core_read_index(struct qr_core *core, uint64_t request_id);

/**
 * Change membership (leader only): moves from the current configuration to one with
 * `voters` and `learners`. Every change of the voter set goes through a joint
 * configuration (old AND new majorities); the core leaves it automatically once it
 * commits, also after a leader change. A change of learners only is direct.
 * @param next  Borrows; voters_old must be empty.
 * @return 0, QR_ENOTLEADER, QR_EBUSY (a change is still in progress),
 *         QR_EINVAL (invalid configuration: errmsg says why).
 */
QR_API int qr_core_change_config(struct qr_core *core, const struct qr_config *next, char *errmsg);

/**
 * Hand leadership to `target` (leader only): stop taking proposals, bring the target's log
 * up to date, then tell it to campaign at once. Abandoned after an election timeout.
 * @return 0, QR_ENOTLEADER, QR_EINVAL (target is not a voter or is this node).
 */
QR_API int qr_core_transfer_leader(struct qr_core *core, qr_node_id target);

/** Start an election now (pre-vote first unless disabled). Ignored on leaders and learners. */
QR_API void qr_core_campaign(struct qr_core *core);

/** Whether qr_core_ready() has anything. */
QR_API bool qr_core_has_ready(const struct qr_core *core);

/**
 * Take the output batch. Call qr_core_advance() before any other qr_core_* call except
 * qr_core_persisted() and the read-only getters.
 * @param ready  Out: views valid until qr_core_advance().
 */
QR_API void qr_core_ready(struct qr_core *core, struct qr_ready *ready);

/** Release the batch taken by qr_core_ready(). */
QR_API void qr_core_advance(struct qr_core *core);

/**
 * Report that persist batch `seq` (and every earlier one) is durable.
 * @return 0, QR_EINVAL (seq was never handed out or was reported already).
 */
QR_API int qr_core_persisted(struct qr_core *core, uint64_t seq);

/**
 * Describe a snapshot the application is about to take at applied index `index`: fills
 * meta_out's index, term and config (size and crc are the application's to fill).
 * @return 0, QR_EINVAL (not applied yet, or not newer than the current snapshot),
 *         QR_ENOTFOUND (the entry was compacted away).
 */
QR_API int qr_core_snapshot_meta(const struct qr_core *core,
                                 qr_index index,
                                 struct qr_snapshot_meta *meta_out);

/**
 * The application durably saved a snapshot described by `meta` (from qr_core_snapshot_meta,
 * with size and crc filled). The core uses it to catch up far-behind followers and
 * releases the log up to meta->index minus `trailing` entries kept for followers that are
 * only a little behind.
 * @param meta  Borrows; copied.
 * @return 0, QR_EINVAL (not applied yet, or not newer than the current snapshot, or term
 *         and config differ from what qr_core_snapshot_meta gives).
 */
QR_API int qr_core_snapshot_taken(struct qr_core *core,
                                  const struct qr_snapshot_meta *meta,
                                  uint64_t trailing);

/* ---- Read-only state ---------------------------------------------------------- */

struct qr_core_status {
    qr_node_id id;
    enum qr_role role;
    qr_term term;
    qr_node_id vote;
    qr_node_id leader; /* 0 when unknown. */
    qr_index first_index;
    qr_index last_index;
    qr_index commit;
    qr_index applied; /* Handed out in ready.committed. */
    qr_index durable; /* Highest index reported persisted. */
    qr_index snapshot_index;
    struct qr_config config;
    qr_node_id transfer_target; /* 0 when no transfer is in progress. */
};

/** Fill `status` with the core's current state. */
QR_API void qr_core_status(const struct qr_core *core, struct qr_core_status *status);

/**
 * Follower progress as the leader sees it.
 * @return false when this core is not the leader or `id` is not a member.
 */
QR_API bool qr_core_progress(const struct qr_core *core,
                             qr_node_id id,
                             qr_index *match_out,
                             qr_index *next_out);

/**
 * Entries at [from, to] still held in memory, for a driver that must re-read its own log.
 * @return 0, QR_ENOTFOUND (compacted or beyond the last index). The view is valid until the
 *         next call that changes the core.
 */
QR_API int qr_core_entry(const struct qr_core *core, qr_index index, const struct qr_entry **out);

/* ---- Configuration helpers ------------------------------------------------------ */

/** Bytes needed to encode a configuration. */
QR_API size_t qr_core_config_encoded_size(const struct qr_config *config);

/**
 * Encode a configuration (little-endian, versioned) into buf, which must hold
 * qr_core_config_encoded_size() bytes.
 */
QR_API void qr_core_config_encode(const struct qr_config *config, uint8_t *buf);

/**
 * Decode and validate a configuration. Untrusted input: any byte string is handled.
 * @return 0, QR_ECORRUPT (malformed, errmsg says where), QR_EVERSION.
 */
QR_API int
qr_core_config_decode(const uint8_t *buf, size_t size, struct qr_config *config_out, char *errmsg);

/**
 * Check a configuration: ids non-zero, ascending, unique across voters and learners, at
 * least one voter, counts within limits.
 * @return 0 or QR_EINVAL with a message.
 */
QR_API int qr_core_config_validate(const struct qr_config *config, char *errmsg);

/** The voting configuration for a membership (majority of voters, joint when voters_old). */
QR_API int
qr_core_config_voting(const struct qr_config *config, struct qr_voting *voting_out, char *errmsg);

/** Name of a role: "follower", "leader", ... */
QR_API const char *qr_role_name(enum qr_role role);

/** Name of a message type, for traces. */
QR_API const char *qr_msg_type_name(enum qr_msg_type type);

#endif /* QUORUM_CORE_H */
