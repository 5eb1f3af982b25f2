/*
 * node/node_internal.h: the state of a running node, shared by the node's .c files.
 *
 * Layer: node. Internal only. node.c owns the lifecycle and the drive loop (ready ->
 * persist/send/apply -> advance); node_storage.c runs storage jobs on the node's writer
 * thread;
 * node_peer.c owns the TCP links; node_request.c tracks proposals, reads and
 * membership changes; node_wire.c encodes the node's own frames (FORWARD, FORWARD_ACK).
 * Everything here runs on the loop's thread except the body of a storage job
 * (node_storage.c says which fields the worker touches). Invariants are written beside the
 * fields and checked by qr__node_check_invariants().
 */
#ifndef QR_NODE_INTERNAL_H
#define QR_NODE_INTERNAL_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "quorum/node.h"
#include "quorum/storage.h"
#include "transport/codec.h"
#include "transport/handshake.h"
#include "util/address.h"
#include "util/assert.h"
#include "util/rng.h"

_Static_assert(QR_ADDRESS_SIZE == QR_NODE_ADDRESS_SIZE, "one address size");

/* Peer connections accepted but not yet authenticated; more are closed at once. */
#define QR__NODE_PENDING_CONNS_MAX 64
/* A connection that has not authenticated within this is closed. */
#define QR__NODE_HANDSHAKE_TIMEOUT_MS 5000
/* Reconnect backoff: first delay, ceiling (jittered to [delay / 2, delay]). */
#define QR__NODE_BACKOFF_MS_MIN 100
#define QR__NODE_BACKOFF_MS_MAX 2000
/* Frames handed to one uv_write. */
#define QR__NODE_WRITE_BUFS_MAX 256
/* Persist batches the core may hand out before the first is durable: the writer thread
 * writes whatever queued while it flushed, with one fdatasync (qr_storage_write_group). */
#define QR__NODE_PERSIST_BATCHES 8
/* Most jobs the writer takes into one group. */
#define QR__NODE_GROUP_MAX 64
/* Bytes per storage batch: the core's largest entry (8 MiB by default) must fit in one. */
#define QR__NODE_STORAGE_BATCH_SIZE ((uint64_t)16 << 20)
/* Bytes read from a socket at a time. */
#define QR__NODE_READ_BUF_SIZE (64u << 10)
/* Output batches processed per drain before yielding to the loop. */
#define QR__NODE_DRAIN_ROUNDS_MAX 64
/* Retry delay of a storage job that failed for lack of space. */
#define QR__NODE_NOSPC_RETRY_MS 1000
/* Largest frame body this node accepts from a peer. */
#define QR__NODE_FRAME_SIZE_MAX QR_FRAME_SIZE_MAX_DEFAULT

/* A call that fails only on a programmer error (a NULL callback, a handle not initialised,
 * a limit out of range): checked like an assertion, and evaluated once in every build. */
#define QR__NODE_CHECK(call)               \
    do {                                   \
        int qr__node_check_rv = (call);    \
        QR_ASSERT(qr__node_check_rv == 0); \
    } while (0)

struct qr_node;

/* Immutable snapshot bytes shared by the node and storage jobs. refs is touched on the
 * loop's thread only; the worker reads the bytes while a job holds a reference. */
struct qr__node_bytes {
    uint32_t refs;     /* >= 1 while reachable. */
    bool is_fsm_owned; /* buf came from fsm->snapshot: give it back with fsm->release. */
    struct qr_buf buf; /* The bytes. */
};

/* One encoded frame waiting in a connection's send queue. */
struct qr__node_frame {
    struct qr__node_frame *next;
    size_t size;    /* Bytes at data. */
    uint8_t data[]; /* Header and body. */
};

/* One TCP connection to or from a peer. Freed in its close callback. */
struct qr__node_conn {
    uv_tcp_t tcp; /* tcp.data == this. */
    struct qr_node *node;
    struct qr__node_peer *peer;        /* Outbound: the peer dialled. Inbound: set once
                                          authenticated. */
    struct qr__node_conn *prev, *next; /* In node->conns. */
    qr_node_id peer_id; /* Outbound: the peer dialled; inbound: 0 until authenticated. */
    bool is_outbound;
    bool is_pending;   /* Inbound, counted in node->pending_conns_count. */
    bool is_closing;   /* uv_close called; nothing more is queued or read. */
    bool is_connected; /* TCP established (always for inbound). */
    uv_connect_t connect_req;
    struct qr_handshake hs;
    struct qr_frame_reader reader;
    struct qr_msg_decoder decoder;
    uint64_t deadline_ms; /* Handshake must finish by then (uv_now). */
    /* Send queue: frames not yet handed to uv_write. */
    struct qr__node_frame *queue_head, *queue_tail;
    size_t queue_size; /* Bytes queued, frames being written included. */
    /* The write in flight: the first writing_count frames taken off the queue. */
    uv_write_t write_req;
    bool is_writing;
    struct qr__node_frame *writing_head;
    size_t writing_count;
    uv_buf_t bufs[QR__NODE_WRITE_BUFS_MAX];
};

/* A member (or a node that joined and authenticated). Freed after its timer closed. */
struct qr__node_peer {
    struct qr_node *node;
    qr_node_id id;
    bool has_address;
    char address[QR_NODE_ADDRESS_SIZE];        /* Peer address text, "" when unknown. */
    char client_address[QR_NODE_ADDRESS_SIZE]; /* "" when unknown. */
    struct sockaddr_storage addr;              /* Resolved address when has_address. */
    struct qr__node_conn *out;                 /* Our dialled connection, or NULL. */
    struct qr__node_conn *in;                  /* Its authenticated connection to us, or NULL. */
    bool has_timer;                            /* reconnect_timer initialised (from start). */
    uv_timer_t reconnect_timer;                /* reconnect_timer.data == this. */
    uint32_t backoff_ms;                       /* Next reconnect delay. */
    bool was_up;                               /* Logged as connected; log the loss. */
};

enum qr__node_job_type {
    QR__NODE_JOB_PERSIST = 1,        /* A persist batch, maybe with a received snapshot. */
    QR__NODE_JOB_SNAPSHOT_LOCAL = 2, /* A snapshot of our own state machine. */
    QR__NODE_JOB_COMPACT = 3,        /* Drop segments covered by the snapshot. */
};

/* A unit of storage work. The writer reads its inputs and writes rv, errmsg and the
 * outputs named below; the loop thread touches it only before handing it over and after
 * taking it back. */
struct qr__node_job;

/* The writer thread and what it shares with the loop. */
struct qr__node_writer {
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;   /* Signalled when todo grows, is_paused clears or is_stopping sets. */
    uv_async_t async; /* Writer to loop: jobs are done, or the writer exited. */
    bool is_init;     /* lock and cond exist (loop). */
    bool is_started;  /* The thread runs or ran (loop). */
    bool is_joined;   /* The thread was joined (loop). */
    /* Under lock: */
    struct qr__node_job *todo_head, *todo_tail; /* Handed over, not yet taken. */
    struct qr__node_job *done_head, *done_tail; /* Finished, not yet taken back. */
    bool is_paused;                             /* A group failed: take nothing until the
                                                   loop clears it. */
    bool is_stopping;
    bool has_exited;
    /* The writer thread's only: */
    struct qr_storage_batch group[QR__NODE_GROUP_MAX];
};

struct qr__node_job {
    struct qr__node_job *next; /* In the writer's todo or done list. */
    enum qr__node_job_type type;
    struct qr_node *node;
    /* PERSIST. */
    uint64_t seq;
    bool has_snapshot;
    bool is_snapshot_written;         /* Out: the received snapshot is published (retries
                                         skip it). */
    struct qr_snapshot_meta snapshot; /* PERSIST with snapshot; SNAPSHOT_LOCAL (out: size
                                         and crc). */
    struct qr__node_bytes *bytes;     /* A reference: the snapshot's data. */
    struct qr_entry *entries;         /* One allocation holding entries and their data. */
    size_t entries_count;
    bool has_hard_state;
    struct qr_hard_state hard_state;
    /* COMPACT. */
    qr_index upto;
    uint64_t removed_count; /* Out. */
    /* Result. */
    int rv;
    char errmsg[QR_ERRMSG_SIZE];
};

enum qr__node_request_kind {
    QR__NODE_REQ_PROPOSE = 1,
    QR__NODE_REQ_READ = 2,
    QR__NODE_REQ_CONFIG = 3,
};

enum qr__node_request_state {
    QR__NODE_REQ_WAIT_ACK = 1,        /* Forwarded; the leader's FORWARD_ACK is due. */
    QR__NODE_REQ_WAIT_APPLY = 2,      /* index and term known: wait until applied. */
    QR__NODE_REQ_WAIT_READ_INDEX = 3, /* The core confirms leadership. */
    QR__NODE_REQ_WAIT_READ_APPLY = 4, /* index known: wait until applied. */
    QR__NODE_REQ_WAIT_CONFIG = 5,     /* The committed configuration must become target. */
    QR__NODE_REQ_DONE = 6,            /* In node->done: the callback is due. */
};

/* A client request. On exactly one list of the node (by state). */
struct qr__node_request {
    struct qr__node_request *prev, *next;
    enum qr__node_request_kind kind;
    enum qr__node_request_state state;
    uint64_t id;          /* Unique per node; the core's read id, the forward's id. */
    qr_index index;       /* WAIT_APPLY, WAIT_READ_APPLY. */
    qr_term term;         /* WAIT_APPLY: the term of the entry proposed. */
    uint64_t deadline_ms; /* uv_now; QR_ETIMEDOUT after. */
    void *ctx;
    qr_node_propose_cb propose_cb;
    qr_node_read_cb read_cb;
    qr_node_config_cb config_cb;
    struct qr_config *target; /* CONFIG: owned. */
    int status;               /* DONE. */
    struct qr_buf result;     /* DONE, PROPOSE with status 0: from fsm->apply, owned. */
};

/* A doubly linked list of requests. */
struct qr__node_request_list {
    struct qr__node_request *head, *tail;
    size_t count;
};

/* Bytes of a snapshot being received from the leader, in order. */
struct qr__node_receive {
    qr_index snapshot_index; /* Of the transfer; 0 when none. */
    uint8_t *data;           /* Owned; capacity bytes. */
    size_t size;             /* Bytes received. */
    size_t capacity;
    bool is_failed; /* Over snapshot_size_max or out of memory: the install cannot happen. */
};

struct qr_node {
    uv_loop_t *loop;
    struct qr_node_opts opts; /* Strings and arrays below are our copies. */
    char *data_dir;
    char listen_address[QR_NODE_ADDRESS_SIZE];
    struct sockaddr_storage listen_addr;
    uint8_t secret[QR_HANDSHAKE_SECRET_SIZE_MAX];
    struct qr_fsm fsm;
    struct qr_rng rng; /* Reconnect jitter. */

    struct qr_core *core;
    struct qr_storage *storage; /* The writer's once it started; the loop's before and after. */

    /* Handles; each counted in handles_open until its close callback. */
    uv_timer_t tick_timer;
    uv_timer_t retry_timer; /* Storage job retry after QR_ENOSPC. */
    uv_idle_t idle;         /* Runs one drain on the next loop iteration. */
    uv_tcp_t listener;
    bool has_listener;   /* listener initialised (start) and not closed. */
    size_t handles_open; /* Handles not yet through their close callback. */
    bool is_started;
    bool is_closing;
    qr_node_close_cb close_cb;
    void *close_ctx;

    /* Peers and connections. */
    struct qr__node_peer *peers[QR_NODE_PEERS_MAX];
    size_t peers_count;
    struct qr__node_conn *conns; /* Every connection not yet closed. */
    size_t pending_conns_count;  /* Inbound, not authenticated. */
    uint8_t read_buf[QR__NODE_READ_BUF_SIZE];

    /* Drive loop. */
    bool in_drain;
    bool in_ready;     /* Between qr_core_ready and qr_core_advance: no user callback, no input. */
    qr_node_id leader; /* Last leader logged. */
    enum qr_role role; /* Last role logged. */
    qr_term term;
    qr_index applied; /* Last index applied to the state machine (or restored). */

    /* Storage jobs run in order on a writer thread of the node's own (node_storage.c). */
    struct qr__node_writer writer;
    bool job_waiting_retry; /* A group failed with QR_ENOSPC; retry_timer runs. */

    /* Snapshots. */
    struct qr__node_bytes *snapshot; /* Bytes of the core's current snapshot, or NULL. */
    qr_index snapshot_index;         /* Their index (0: none). */
    qr_index snapshot_next;          /* Take a local snapshot once applied reaches it... */
    uint64_t applied_bytes;          /* ... and the bytes applied since the last snapshot
                                        reach its size (or applied reaches snapshot_cap). */
    qr_index snapshot_cap;           /* Snapshot at the latest when applied reaches it. */
    bool snapshot_running;           /* A local snapshot job is queued or running. */
    struct qr__node_receive receive;

    /* Requests. */
    uint64_t request_id_next;
    size_t requests_count;                  /* On any list below except done. */
    struct qr__node_request_list forwarded; /* WAIT_ACK. */
    struct qr__node_request_list applying;  /* WAIT_APPLY, ascending index. */
    struct qr__node_request_list reading;   /* WAIT_READ_INDEX, WAIT_READ_APPLY. */
    struct qr__node_request_list configs;   /* WAIT_CONFIG. */
    struct qr__node_request_list done;      /* Callbacks to run, in order. */

    /* Failure. */
    int fatal_err;
    char fatal_msg[QR_ERRMSG_SIZE];
    bool is_read_only;     /* A storage job waits for space. */
    bool fatal_cb_pending; /* opts.fatal_cb is due (runs from the drain, outside ready). */
};

/* ---- node.c ---- */

/* Arrange one drain on the next loop iteration. */
void qr__node_kick(struct qr_node *node);
/* Stop the node for good: log, fail requests, close links; keeps the first error. */
void qr__node_fail(struct qr_node *node, int err, const char *errmsg);
/* A handle of the node closed; frees the node when it was the last thing outstanding. */
void qr__node_handle_closed(struct qr_node *node);
/* Frees the node once closing and nothing is outstanding (handles, the running job). */
void qr__node_maybe_finish(struct qr_node *node);
/* Give a buffer from the fsm back to it. */
void qr__node_release(struct qr_node *node, struct qr_buf buf);
void qr__node_check_invariants(const struct qr_node *node);
/* The snapshot bytes: references. */
struct qr__node_bytes *qr__node_bytes_ref(struct qr__node_bytes *bytes);
void qr__node_bytes_unref(struct qr_node *node, struct qr__node_bytes *bytes);
/* Takes buf (from the fsm when is_fsm_owned, else from qr_malloc). NULL on no memory (buf
 * is then released). */
struct qr__node_bytes *
qr__node_bytes_new(struct qr_node *node, struct qr_buf buf, bool is_fsm_owned);
/* Make bytes the node's current snapshot data for index (takes the reference). */
void qr__node_snapshot_set(struct qr_node *node, qr_index index, struct qr__node_bytes *bytes);

/* ---- node_storage.c ---- */

/* Queue a persist job for the batch of rd (copied). The received snapshot, if any, must be
 * node->snapshot already. */
int qr__node_storage_persist(struct qr_node *node, const struct qr_ready *rd);
/* Queue a local snapshot job of bytes (takes the reference) described by meta. */
int qr__node_storage_snapshot(struct qr_node *node,
                              const struct qr_snapshot_meta *meta,
                              struct qr__node_bytes *bytes);
/* Prepare the writer's lock and handle (create); start its thread (start). */
int qr__node_storage_init(struct qr_node *node, char *errmsg);
int qr__node_storage_start(struct qr_node *node, char *errmsg);
/* Drop the jobs not yet taken by the writer (failure or close). */
void qr__node_storage_drop_queued(struct qr_node *node);
/* Closing: stop the writer after its current group; its handle closes once it exited. */
void qr__node_storage_close(struct qr_node *node);
/* Free the lock (node_free; the writer never started or was joined). */
void qr__node_storage_free(struct qr_node *node);
void qr__node_storage_retry(uv_timer_t *timer);

/* ---- node_peer.c ---- */

/* Copy and resolve the configured peers; this node's own entry gives listen_address. */
int qr__node_peers_init(struct qr_node *node, char *errmsg);
int qr__node_peer_add(struct qr_node *node, const struct qr_node_peer *peer, char *errmsg);
/* Free the peers of a node that never started (no handle exists). */
void qr__node_peers_free(struct qr_node *node);
struct qr__node_peer *qr__node_peer_find(const struct qr_node *node, qr_node_id id);
/* Start listening and dialling. */
int qr__node_peers_start(struct qr_node *node, char *errmsg);
/* Close the listener, every connection and every peer's timer. */
void qr__node_peers_close(struct qr_node *node);
/* Close every connection (the node failed); peers stay, nothing reconnects. */
void qr__node_peers_disconnect(struct qr_node *node);
/* Queue a core message to its destination; dropped when no link is up or it is full. */
void qr__node_peer_send_msg(struct qr_node *node, const struct qr_msg *msg);
/* Queue a node frame (FORWARD, FORWARD_ACK) of body bytes to peer id.
 * @return 0, QR_ENOTFOUND (no authenticated link), QR_EBUSY (queue full), QR_ENOMEM. */
int qr__node_peer_send_frame(struct qr_node *node,
                             qr_node_id id,
                             enum qr_frame_type type,
                             const uint8_t *body,
                             size_t body_size);
/* Hand queued frames to uv_write, one write per connection. */
void qr__node_peers_flush(struct qr_node *node);
/* Close connections whose handshake is overdue. */
void qr__node_peers_tick(struct qr_node *node);

/* ---- node_request.c ---- */

void qr__node_requests_init(struct qr_node *node);
/* Entry e was applied with result (taken). */
/* Whether a proposal of this node waits for entry e (so apply should build a result). */
bool qr__node_requests_wait_for(const struct qr_node *node, const struct qr_entry *e);
void qr__node_requests_applied(struct qr_node *node,
                               const struct qr_entry *e,
                               struct qr_buf result);
/* A snapshot moved applied to index: requests waiting at or below it lost their result. */
void qr__node_requests_skipped(struct qr_node *node, qr_index index);
void qr__node_requests_reads(struct qr_node *node, const struct qr_ready *rd);
/* Serve reads whose index is applied and completed config changes. */
void qr__node_requests_progress(struct qr_node *node);
void qr__node_requests_timeouts(struct qr_node *node);
/* Complete every request with err. */
void qr__node_requests_fail_all(struct qr_node *node, int err);
/* Run the callbacks of completed requests (only outside ready/advance). */
void qr__node_requests_run_done(struct qr_node *node);
/* A FORWARD arrived from peer `from` (leader side). */
void qr__node_on_forward(struct qr_node *node, qr_node_id from, struct qr_buf body);
/* A FORWARD_ACK arrived (follower side). */
void qr__node_on_forward_ack(struct qr_node *node, qr_node_id from, struct qr_buf body);

/* ---- node_wire.c ---- */

/* FORWARD body: u8 version, 7 zero, u64 request id, u32 command size C, u32 zero, C bytes. */
#define QR__NODE_WIRE_VERSION        1
#define QR__NODE_FORWARD_HEADER_SIZE 24
/* FORWARD_ACK body: u8 version, 3 zero, i32 status, u64 request id, u64 index, u64 term. */
#define QR__NODE_FORWARD_ACK_SIZE 32

struct qr__node_forward {
    uint64_t request_id;
    struct qr_buf command; /* View into the body. */
};

struct qr__node_forward_ack {
    uint64_t request_id;
    int status; /* 0 or a QR_E* code. */
    qr_index index;
    qr_term term;
};

size_t qr__node_forward_size(size_t command_size);
void qr__node_forward_encode(uint64_t request_id, struct qr_buf command, uint8_t *buf);
int qr__node_forward_decode(struct qr_buf body, struct qr__node_forward *out, char *errmsg);
void qr__node_forward_ack_encode(const struct qr__node_forward_ack *ack, uint8_t *buf);
int qr__node_forward_ack_decode(struct qr_buf body, struct qr__node_forward_ack *out, char *errmsg);

#endif /* QR_NODE_INTERNAL_H */
