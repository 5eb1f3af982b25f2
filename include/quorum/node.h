/*
 * quorum/node.h: run one replica of a replicated state machine for real.
 *
 * Layer: node (above core, storage and transport). A node owns one consensus core, the
 * node's data directory and its TCP links to the other members, and drives them from one
 * libuv loop that the application provides:
 *
 *   - a tick timer moves the core's logical time (tick_ms per tick);
 *   - every output batch of the core is executed in the right order: the persist part goes
 *     to a worker thread (the loop never blocks on disk, DESIGN rule 5) and is reported
 *     durable only once storage returned; messages leave at once (the core holds back what
 *     depends on unsynced data); committed entries are applied to the application's state
 *     machine, struct qr_fsm; confirmed reads are answered;
 *   - peers are authenticated with the cluster secret before any message is accepted;
 *   - a snapshot of the state machine is taken by log size: once snapshot_entries entries
 *     were applied since the last one AND their bytes reach 4 times the size of the last
 *     snapshot (so that writing snapshots costs at most a quarter of what the log costs,
 *     whatever the size of the state), or at the latest after 16 x snapshot_entries
 *     entries; the log before it is then released.
 *
 * Typical use:
 *
 *   struct qr_node_opts opts;
 *   qr_node_opts_default(&opts);
 *   opts.id = 1; opts.cluster_id = 42; opts.data_dir = "/var/lib/app/1";
 *   opts.peers = peers; opts.peers_count = 3;        (every member, this node included)
 *   opts.secret = secret; opts.secret_size = 32;
 *   qr_node_create(loop, &opts, &fsm, &node, errmsg);  (blocking: opens storage, restores)
 *   qr_node_start(node, errmsg);                       (listens, dials, starts ticking)
 *   uv_run(loop, UV_RUN_DEFAULT);  ... qr_node_propose(), qr_node_read() from callbacks ...
 *   qr_node_close(node, on_closed, ctx);                (asynchronous)
 *
 * Peers: each node listens on its address and dials every other member; a message may
 * travel on either connection of a pair, so a node that only knows the others' addresses
 * (a joining node) is still answered on the connection it opened.
 *
 * Callbacks: every call that takes a callback follows one contract. If the call returns an
 * error, the callback is never invoked. If it returns 0, the callback is invoked exactly
 * once, later, from the loop (never from inside the call), also when the node closes (then
 * with QR_ECANCELED) or fails (QR_EFATAL).
 *
 * Threading: every function must be called on the loop's thread (from loop callbacks, or
 * before uv_run), except qr_node_opts_default. The state-machine callbacks run on the
 * loop's thread too, and must not call qr_node_* functions.
 *
 * Logging: the node logs through qr_log (quorum/log.h) with the prefix "node:"; it never
 * prints. Storage work runs on a writer thread of each node's own (not libuv's thread
 * pool) and storage logs from there, so the installed sink must be safe to call from
 * another thread.
 *
 * Memory: the bytes of the current snapshot stay in memory (they are sent to followers
 * from there), and a snapshot received from the leader is collected in memory before it
 * is written; both are bounded by snapshot_size_max.
 */
#ifndef QUORUM_NODE_H
#define QUORUM_NODE_H

#include "quorum/core.h"
#include "quorum/storage.h"
#include "quorum/types.h"

/** Most peers a node keeps track of (members of its configuration and joining nodes). */
#define QR_NODE_PEERS_MAX QR_CORE_MEMBERS_MAX
/** Size of an address buffer, terminating NUL included ("host:port", "[v6]:port"). */
#define QR_NODE_ADDRESS_SIZE 256

/* libuv's loop (uv_loop_t); declared here so that this header does not need <uv.h>. */
struct uv_loop_s;

/* ---- The application's state machine ---------------------------------------------- */

/**
 * A deterministic state machine. The node calls it on the loop's thread, in log order;
 * every replica applies the same commands in the same order and must reach the same state,
 * so apply may not read clocks, randomness or anything local.
 *
 * Buffers the state machine hands to the node (results, snapshots) are allocated however it
 * likes; the node gives each one back exactly once through `release` when done with it.
 */
struct qr_fsm {
    void *ctx; /* Passed back to every call. */
    /**
     * Apply one committed command at log index `index` (from 1, increasing).
     * @param command     Borrowed for the call.
     * @param result_out  Out, optional: a result for the proposer, or left {NULL, 0}; the node
     *                    takes it and releases it after the proposer's callback. NULL when
     *                    no proposer on this node waits for this entry: build no result.
     * @return 0. Any other value stops the node (QR_EFATAL): a replica cannot skip a
     *         committed command, so errors of the command itself belong in the result.
     */
    int (*apply)(void *ctx, qr_index index, struct qr_buf command, struct qr_buf *result_out);
    /**
     * Serialize the whole state.
     * @param data_out  Out: the bytes; the node takes them and releases them once a newer
     *                  snapshot replaces this one (it keeps them to send to followers).
     * @return 0, or an error: the snapshot is skipped and tried again later.
     */
    int (*snapshot)(void *ctx, struct qr_buf *data_out);
    /**
     * Replace the whole state with a snapshot produced by `snapshot` (here or on another
     * replica).
     * @param data  Borrowed for the call.
     * @return 0, or an error, which stops the node (QR_EFATAL).
     */
    int (*restore)(void *ctx, struct qr_buf data);
    /**
     * Give back a buffer that apply or snapshot handed over. NULL when the state machine's
     * buffers need no freeing. Called with base == NULL never.
     */
    void (*release)(void *ctx, struct qr_buf buf);
};

/* ---- Options -------------------------------------------------------------------------- */

/** One member of the cluster. */
struct qr_node_peer {
    qr_node_id id;              /* Non-zero. */
    const char *address;        /* Peer address "host:port" (numeric or resolvable name). */
    const char *client_address; /* Optional: where clients reach this member (reported by
                                   qr_node_status as the leader's address); NULL when none. */
};

/**
 * Called once, from the loop, when the node stops on an unrecoverable error: a storage
 * failure other than a full disk, or a state machine that failed. The node must then be
 * closed; restarting it from its data directory recovers.
 * @param err     The error that stopped it (QR_EIO, ...); later calls return QR_EFATAL.
 * @param errmsg  Borrowed for the call: what failed, naming file and offset.
 */
typedef void (*qr_node_fatal_cb)(void *ctx, int err, const char *errmsg);

/** Options. Zero fields take the documented default (qr_node_opts_default). */
struct qr_node_opts {
    qr_node_id id;                          /* This node; non-zero. */
    uint64_t cluster_id;                    /* Non-zero; all members agree. */
    const char *data_dir;                   /* Created on first start. */
    const char *listen_address;             /* "host:port" to listen on; NULL: this node's
                                               entry in `peers`. */
    const struct qr_node_peer *peers;       /* Initial members, this node included. */
    size_t peers_count;                     /* 1 ... QR_NODE_PEERS_MAX. */
    bool join;                              /* Start without a bootstrap configuration: wait
                                               for a leader to add this node. */
    const uint8_t *secret;                  /* Cluster secret shared by all members. */
    size_t secret_size;                     /* 16 ... 256 bytes. */
    enum qr_storage_sync sync;              /* Default QR_STORAGE_SYNC_ALWAYS. */
    uint32_t tick_ms;                       /* Milliseconds per core tick (default 100). */
    uint32_t election_ticks;                /* Election timeout in ticks (default 10). */
    uint64_t snapshot_entries;              /* Fewest entries applied between snapshots
                                               (default 10000); see the policy above. */
    uint64_t snapshot_trailing;             /* Entries kept before a snapshot for followers
                                               a little behind (default 1000). */
    uint32_t request_timeout_ms;            /* Proposals and reads fail with QR_ETIMEDOUT
                                               after this (default 5000). */
    uint32_t requests_max;                  /* Proposals, reads and config changes pending at
                                               once (default 4096); beyond: QR_EBUSY. */
    uint64_t peer_queue_size_max;           /* Bytes queued per peer connection (default
                                               64 MiB); messages beyond are dropped. */
    uint64_t snapshot_size_max;             /* Largest snapshot received or loaded (default
                                               1 GiB). */
    const struct qr_storage_fs *storage_fs; /* Tests and simulators: the file operations of
                                               storage (kept until the close callback);
                                               NULL: the POSIX file system. */
    qr_node_fatal_cb fatal_cb;              /* Optional. */
    void *fatal_ctx;                        /* Passed to fatal_cb. */
};

/** Fill opts with the defaults; the caller then sets id, cluster_id, data_dir, peers, secret. */
QR_API void qr_node_opts_default(struct qr_node_opts *opts);

/* ---- Lifecycle ----------------------------------------------------------------------- */

struct qr_node;

/**
 * Create a node: open (or initialise) the data directory, restore the state machine from
 * the latest snapshot, replay the log into a new core. Blocks on disk; call it before the
 * loop runs or accept the pause. Nothing is sent until qr_node_start.
 * @param loop      Keeps until the close callback: the loop that drives the node.
 * @param opts      Borrows; every string and array is copied.
 * @param fsm       Keeps (the struct is copied; fsm->ctx is kept) until the close callback.
 * @param node_out  Out: the node, closed with qr_node_close.
 * @param errmsg    Out, may be NULL: QR_ERRMSG_SIZE bytes.
 * @return 0; QR_EINVAL (bad options, unresolvable address: errmsg says which); any error of
 *         qr_storage_open (QR_ECORRUPT, QR_EBUSY when another process has the directory,
 *         ...); the error of fsm->restore; QR_ENOMEM.
 */
QR_API int qr_node_create(struct uv_loop_s *loop,
                          const struct qr_node_opts *opts,
                          const struct qr_fsm *fsm,
                          struct qr_node **node_out,
                          char *errmsg);

/**
 * Start listening, dialling the other members and ticking.
 * @param errmsg  Out, may be NULL.
 * @return 0, QR_EIO (could not listen: errmsg names the address and the reason),
 *         QR_EINVAL (started already, or closing).
 */
QR_API int qr_node_start(struct qr_node *node, char *errmsg);

/** Called when a node has closed and been freed. */
typedef void (*qr_node_close_cb)(void *ctx);

/**
 * Close the node: pending requests complete with QR_ECANCELED, connections and timers
 * close, a storage write in progress is waited for (nothing else is written), then
 * everything is freed and `cb` runs. Accepts NULL (then cb is not called).
 * @param cb  May be NULL.
 */
QR_API void qr_node_close(struct qr_node *node, qr_node_close_cb cb, void *ctx);

/* ---- Requests -------------------------------------------------------------------------- */

/**
 * A proposal's outcome.
 * @param status  0: the command was applied at an index this node also applied, and
 *                `result` is what this node's fsm->apply returned; QR_ENOTLEADER: the
 *                command was lost in a leader change (not applied); QR_ETIMEDOUT: no answer
 *                in time, the command may or may not be applied; QR_EBUSY, QR_ETOOBIG
 *                (refused by the leader); QR_ECANCELED (closing); QR_EFATAL.
 * @param result  Borrowed for the call; {NULL, 0} unless status is 0.
 */
typedef void (*qr_node_propose_cb)(void *ctx, int status, struct qr_buf result);

/**
 * Replicate a command. On a follower the command is forwarded to the leader; either way the
 * callback runs once this node has applied it, so a read on this node afterwards sees it.
 * @param command  Borrows; copied.
 * @param cb       Invoked once unless an error is returned.
 * @return 0; QR_ENOTLEADER (no leader known, or no connection to it); QR_EBUSY (too many
 *         requests pending, or the core's limits); QR_ETOOBIG; QR_ESHUTDOWN (closing);
 *         QR_EFATAL; QR_ENOMEM.
 */
QR_API int
qr_node_propose(struct qr_node *node, struct qr_buf command, qr_node_propose_cb cb, void *ctx);

/**
 * A linearizable read's outcome.
 * @param status  0: this node's state machine has applied everything committed before the
 *                read was asked for; read it now, in the callback. QR_ENOTLEADER (leadership
 *                changed: retry), QR_ETIMEDOUT, QR_ECANCELED, QR_EFATAL.
 */
typedef void (*qr_node_read_cb)(void *ctx, int status);

/**
 * Ask for a linearizable read (ReadIndex: the leader confirms it still leads).
 * @return 0, QR_ENOTLEADER (no leader known), QR_EBUSY, QR_ESHUTDOWN, QR_EFATAL.
 */
QR_API int qr_node_read(struct qr_node *node, qr_node_read_cb cb, void *ctx);

/** A membership change's outcome: 0 once the new configuration is committed. */
typedef void (*qr_node_config_cb)(void *ctx, int status);

/**
 * Change membership (leader only). New members must be reachable: give their addresses with
 * qr_node_add_peer first (on every node that may lead).
 * @param next  Borrows; voters and learners wanted, voters_old empty.
 * @param errmsg Out, may be NULL.
 * @return 0, QR_ENOTLEADER, QR_EBUSY (a change is in progress), QR_EINVAL (errmsg says why),
 *         QR_ESHUTDOWN, QR_EFATAL.
 */
QR_API int qr_node_change_config(struct qr_node *node,
                                 const struct qr_config *next,
                                 char *errmsg,
                                 qr_node_config_cb cb,
                                 void *ctx);

/**
 * Learn (or change) the address of a member, and dial it.
 * @param peer  Borrows; copied.
 * @return 0, QR_EINVAL (bad id or address), QR_EBUSY (QR_NODE_PEERS_MAX reached).
 */
QR_API int qr_node_add_peer(struct qr_node *node, const struct qr_node_peer *peer, char *errmsg);

/**
 * Hand leadership to `target` (leader only); the outcome shows in qr_node_status.
 * @return 0, QR_ENOTLEADER, QR_EINVAL (not a voter, or this node), QR_ESHUTDOWN, QR_EFATAL.
 */
QR_API int qr_node_transfer_leader(struct qr_node *node, qr_node_id target);

/**
 * Take a snapshot of the state machine now (it is written in the background and logged).
 * @return 0 (started, or nothing applied since the last one), QR_EBUSY (one is being
 *         written), the error of fsm->snapshot, QR_ESHUTDOWN, QR_EFATAL.
 */
QR_API int qr_node_snapshot_now(struct qr_node *node);

/* ---- State ------------------------------------------------------------------------------- */

/** How one peer looks from this node. */
struct qr_node_peer_status {
    qr_node_id id;
    bool is_connected; /* An authenticated connection is up. */
    bool has_progress; /* This node leads and tracks the peer: match and next are valid. */
    qr_index match;    /* Highest index known stored on the peer. */
    qr_index next;     /* Next index to send. */
};

struct qr_node_status {
    qr_node_id id;
    enum qr_role role;
    qr_term term;
    qr_node_id leader;                         /* 0 when unknown. */
    char leader_address[QR_NODE_ADDRESS_SIZE]; /* The leader's client address; "" unknown. */
    qr_index commit;                           /* Highest index known committed. */
    qr_index applied;                          /* Applied to the state machine. */
    qr_index durable;                          /* Highest index on this node's disk. */
    qr_index last_index;                       /* Last log index. */
    qr_index snapshot_index;                   /* Latest snapshot (0: none). */
    struct qr_config config;                   /* Committed membership. */
    size_t peers_count;                        /* Entries of peers. */
    struct qr_node_peer_status peers[QR_NODE_PEERS_MAX];
    size_t requests_count;          /* Requests pending. */
    bool is_read_only;              /* Disk full: writes wait for space. */
    int fatal_err;                  /* 0, or the error that stopped the node. */
    char fatal_msg[QR_ERRMSG_SIZE]; /* "" unless fatal_err. */
};

/**
 * Describe the node.
 * @param status_out  Out.
 */
QR_API void qr_node_status(const struct qr_node *node, struct qr_node_status *status_out);

#endif /* QUORUM_NODE_H */
