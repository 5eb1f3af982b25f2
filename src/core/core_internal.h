/*
 * core/core_internal.h: the state of one consensus core.
 *
 * Layer: core (pure). Shared by the core's .c files only. Invariants are
 * written beside the fields and checked by qr__core_check_invariants().
 */
#ifndef QR_CORE_INTERNAL_H
#define QR_CORE_INTERNAL_H

#include "core/core_log.h"
#include "quorum/core.h"
#include "util/rng.h"

/* Members tracked by a leader: current voters, old voters while joint, learners. */
#define QR_CORE_PROGRESS_MAX ((size_t)3 * QR_CORE_MEMBERS_MAX)
/* Largest encoded configuration (qr_core_config_encoded_size of a full one). */
#define QR_CORE_CONFIG_SIZE_MAX ((size_t)16 + (size_t)3 * QR_CORE_MEMBERS_MAX * 8)
/* Most messages waiting in the outbox or held for durability; past it they are dropped
 * (the protocol retries), never queued without bound. */
#define QR_CORE_OUTBOX_MAX 65536
/* Bytes of wire framing counted per entry when sizing an APPEND (the codec uses 24). */
#define QR_CORE_ENTRY_OVERHEAD 32
/* Most snapshot chunks received in one output batch. */
#define QR_CORE_CHUNKS_MAX 64

enum qr__progress_state {
    QR__PROGRESS_PROBE = 1,     /* One append at a time until the follower's position is known. */
    QR__PROGRESS_REPLICATE = 2, /* Pipelined appends, bounded by the inflight window. */
    QR__PROGRESS_SNAPSHOT = 3,  /* Sending snapshot chunks, one outstanding at a time. */
};

struct qr__inflight {
    qr_index last;  /* Last index carried by the append. */
    uint64_t bytes; /* Entry payload bytes carried. */
};

/* A leader's view of one member. */
struct qr__progress {
    qr_node_id id;
    bool is_voter;      /* Counts in qr_voting queries. */
    bool recent_active; /* Heard from since the last check-quorum round. */
    bool probe_sent;    /* PROBE: an append is outstanding. */
    bool snapshot_sent; /* SNAPSHOT: a chunk is outstanding. */
    enum qr__progress_state state;
    qr_index match;                 /* Highest index known durable on the member. */
    qr_index next;                  /* Next index to send; match < next. */
    uint64_t read_acked;            /* Highest read round the member confirmed. */
    struct qr__inflight *inflights; /* Ring of opts.inflight_msgs_max slots. */
    uint32_t inflight_start;        /* Ring head. */
    uint32_t inflight_count;        /* <= opts.inflight_msgs_max. */
    uint64_t inflight_bytes;        /* Sum over the ring. */
    qr_index snapshot_index;        /* SNAPSHOT: index of the snapshot being sent. */
    uint64_t snapshot_offset;       /* SNAPSHOT: next byte the member wants. */
    uint32_t snapshot_idle_ticks;   /* SNAPSHOT: ticks since the last chunk was sent. */
};

/* A persist batch handed out and not yet reported durable. */
struct qr__batch {
    qr_index last; /* The log's last index when it left: it writes entries up to here. */
    qr_term term;  /* Its hard state. */
    qr_node_id vote;
    qr_index floor; /* Lowest index truncated since it left (what it wrote from there on
                       is stale); 0 = none. */
};

/* A message waiting to leave, possibly until a persist batch is durable. */
struct qr__out {
    struct qr_msg msg;         /* msg.entries is resolved when the batch is handed out. */
    uint64_t needs_seq;        /* Held until this persist batch is durable; 0 = free to go. */
    qr_index entries_first;    /* APPEND: index of the first entry carried. */
    qr_term entries_last_term; /* APPEND: term of the last entry, to detect truncation. */
};

/* A linearizable read waiting for its leadership confirmation. */
struct qr__read {
    uint64_t request_id; /* Client's id (local) or the follower's context (forwarded). */
    qr_node_id from;     /* 0 for a local read; else the follower that forwarded it. */
    qr_index index;      /* Commit index when registered (0 until the leader's term commits). */
    uint64_t round;      /* Read round that must be confirmed (0 until assigned). */
    uint32_t age_ticks;  /* Ticks waited; forwarded reads fail after a bound. */
};

struct qr_core {
    struct qr_core_opts opts;
    struct qr_rng rng;

    /* Durable state (as the core sees it; durable_* below says what is on disk). */
    qr_term term;
    qr_node_id vote;
    bool hard_state_dirty; /* term/vote changed since the last persist batch. */
    struct qr__log log;

    enum qr_role role;
    qr_node_id leader;       /* 0 when unknown. */
    qr_index commit;         /* <= last index; never decreases. */
    qr_index applied;        /* Handed out for apply; applied <= commit. */
    qr_index durable;        /* Entries up to here are on disk; <= last index. */
    qr_term durable_term;    /* Term on disk. */
    qr_node_id durable_vote; /* Vote on disk. */

    /* Persist batches: at most opts.persist_batches_max in flight, oldest first in a ring. */
    uint64_t seq_emitted; /* Last batch handed out. */
    uint64_t seq_done;    /* Last batch reported durable; seq_done <= seq_emitted. */
    struct qr__batch batches[QR_CORE_PERSIST_BATCHES_MAX]; /* seq_done + 1 ... seq_emitted. */
    size_t batches_head;                                   /* Ring index of the oldest. */
    size_t batches_count;                                  /* seq_emitted - seq_done. */
    qr_index unstable_from;          /* First entry not yet handed out for persisting. */
    bool install_pending;            /* A received snapshot waits for the next batch. */
    struct qr_snapshot_meta install; /* That snapshot. */

    /* Membership: the configuration of the last committed config entry (or snapshot). */
    bool has_config;
    struct qr_config config;
    qr_index config_index;         /* Index of the entry that set it (0: bootstrap). */
    struct qr_voting voting;       /* Derived from config. */
    qr_index pending_config_index; /* Leader: last config entry proposed; changes wait for
                                      commit >= it. */
    bool has_joint_target;         /* Leader: leave the joint config towards this. */
    struct qr_config joint_target;

    /* Snapshots. */
    bool has_snapshot;
    struct qr_snapshot_meta snapshot; /* Latest durable snapshot (taken or installed). */
    bool recv_active;                 /* Receiving chunks of recv_meta. */
    struct qr_snapshot_meta recv_meta;
    uint64_t recv_offset; /* Bytes received so far. */
    uint32_t recv_crc;    /* CRC32C of those bytes. */

    /* Timers, in ticks. */
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t election_timeout; /* Randomized in [election_ticks, 2 * election_ticks). */

    /* Elections. */
    struct qr_vote votes[QR_CORE_PROGRESS_MAX];
    size_t votes_count;

    /* Leader state. */
    struct qr__progress progress[QR_CORE_PROGRESS_MAX];
    size_t progress_count;
    uint64_t uncommitted_bytes;
    qr_node_id transfer_target;
    uint32_t transfer_elapsed;

    /* Reads. */
    struct qr__read *reads; /* opts.reads_pending_max slots. */
    size_t reads_count;
    uint64_t read_round;  /* Last round started (leader). */
    bool read_round_open; /* A round is waiting for confirmations. */

    /* Output under construction, and what was handed out. */
    struct qr__out *outbox;
    size_t outbox_count;
    size_t outbox_capacity;
    struct qr__out *held;
    size_t held_count;
    size_t held_capacity;
    struct qr_msg *ready_msgs; /* Resolved copies handed out. */
    size_t ready_msgs_capacity;
    struct qr_snapshot_chunk chunks[QR_CORE_CHUNKS_MAX]; /* Data owned until advance. */
    size_t chunks_count;
    struct qr_read_state *reads_ready;
    size_t reads_ready_count;
    uint64_t *reads_failed;
    size_t reads_failed_count;
    bool soft_changed;
    bool ready_taken;          /* Between qr_core_ready and qr_core_advance. */
    bool persisted_deferred;   /* qr_core_persisted came between ready and advance. */
    bool append_pending;       /* Leader: broadcast appends when the next batch is taken. */
    qr_index ready_applied_to; /* Applied index after the handed-out batch. */
    bool ready_snapshot;       /* The handed-out batch installs `install`. */
    uint64_t dropped_count;    /* Messages dropped at a limit (for diagnostics). */
};

void qr__core_check_invariants(const struct qr_core *core);

#endif /* QR_CORE_INTERNAL_H */
