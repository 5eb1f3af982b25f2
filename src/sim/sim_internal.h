/*
 * sim/sim_internal.h: the state of one simulated run, shared by the
 * simulator's .c files (sim.c, sim_node.c, sim_net.c, sim_client.c,
 * sim_nemesis.c) and by nothing else.
 *
 * Layer: sim. Simulated time is counted in units of 1/100 of a nominal tick
 * (SIM_TICK units); a node whose clock runs fast ticks more often. Every
 * event (a node's tick, a message delivery, a disk write completing, a client
 * action, a fault) sits in one priority queue ordered by (time, insertion
 * sequence), so runs are deterministic. Invariants are written beside the
 * fields.
 */
#ifndef QR_SIM_SIM_INTERNAL_H
#define QR_SIM_SIM_INTERNAL_H

#include "kv/kv.h"
#include "quorum/core.h"
#include "sim/check.h"
#include "sim/linearize.h"
#include "sim/sim.h"
#include "sim/trace.h"
#include "util/rng.h"

/* Time units per nominal tick. */
#define SIM_TICK UINT64_C(100)
/* Most events queued at once; a message past it is dropped (the protocol retries). */
#define SIM_EVENTS_MAX ((size_t)1 << 20)
/* Most persist batches in flight on one disk (the core promises one). */
#define SIM_BATCHES_MAX 8
/* Most snapshots one node receives at once. */
#define SIM_INCOMING_MAX 4
/* Most reads waiting on one node. */
#define SIM_READS_MAX 64
/* Most clients. */
#define SIM_CLIENTS_MAX 8
/* Most keys clients use. */
#define SIM_KEYS_MAX 8
/* Most output batches taken from a core for one event before we call it a livelock. */
#define SIM_READY_ROUNDS_MAX 1024
/* Largest snapshot accepted from a peer. */
#define SIM_SNAPSHOT_SIZE_MAX ((size_t)1 << 24)
/* Most operations recorded in a history. */
#define SIM_HISTORY_MAX ((size_t)1 << 20)
/* Most entries on one simulated disk. */
#define SIM_DISK_LOG_MAX ((size_t)1 << 20)
/* Window of indexes compared between two logs after each event, each side of the commit. */
#define SIM_LOG_WINDOW 4
/* Attempts a client makes within one action before waiting a tick. */
#define SIM_CLIENT_TRIES_MAX 3
/* Search steps per key for the linearizability checker. */
#define SIM_LIN_STEPS_MAX 2000000
/* Liveness: ticks after the heal before client operations must succeed. */
#define SIM_SETTLE_TICKS 60
/* Liveness: ticks after the heal at which a leader and progress are required. */
#define SIM_LIVENESS_TICKS 300
/* Ticks without client load, after the liveness check, for the members to converge. */
#define SIM_QUIESCE_TICKS 80
/* Ticks during which clients use one set of keys. */
#define SIM_KEY_EPOCH_TICKS 200
/* Client operation timeout, in ticks. */
#define SIM_CLIENT_TIMEOUT_TICKS 40

_Static_assert(SIM_SETTLE_TICKS + SIM_CLIENT_TIMEOUT_TICKS < SIM_LIVENESS_TICKS,
               "an operation started after the settle time can time out before the check");
_Static_assert(QR_SIM_NODES_MAX <= 64, "membership fits in a 64-bit mask");

enum sim_event_kind {
    SIM_EV_TICK = 1,     /* node: a node's clock ticks; arg: incarnation. */
    SIM_EV_DELIVER = 2,  /* msg arrives at msg->msg.to. */
    SIM_EV_DISK = 3,     /* node: the front persist batch is durable; arg: incarnation. */
    SIM_EV_CLIENT = 4,   /* node: client index; arg: op serial * 2 + is_timeout. */
    SIM_EV_NEMESIS = 5,  /* The fault injector acts. */
    SIM_EV_RESTART = 6,  /* node: restart it; arg: incarnation it crashed in. */
    SIM_EV_HEAL = 7,     /* The fault phase ends. */
    SIM_EV_LIVENESS = 8, /* Check leader and client progress; stop the clients. */
    SIM_EV_END = 9,      /* Check convergence; the run ends. */
};

/* A message in flight: one allocation holding the message, its entries, their payloads,
 * its snapshot meta and its data, so that it outlives the core's output batch. */
struct sim_msg {
    struct qr_msg msg;                /* Pointers point into this allocation. */
    struct qr_snapshot_meta snapshot; /* msg.snapshot points here when set. */
    struct qr_entry entries[];        /* msg.entries_count entries, then the bytes. */
};

struct sim_event {
    uint64_t time; /* When, in sim units. */
    uint64_t seq;  /* Insertion order: breaks ties, so equal times stay FIFO. */
    enum sim_event_kind kind;
    uint32_t node;       /* Node or client index, by kind. */
    uint64_t arg;        /* By kind. */
    struct sim_msg *msg; /* DELIVER: owned by the event. */
};

struct sim_heap {
    struct sim_event *items; /* Binary min-heap on (time, seq). */
    size_t count;            /* <= SIM_EVENTS_MAX. */
    size_t capacity;
    uint64_t seq_next; /* Next insertion sequence number. */
};

/* A persist batch on its way to the disk. */
struct sim_batch {
    uint64_t seq;       /* The core's persist_seq. */
    uint64_t done_time; /* When it becomes durable. */
    bool has_snapshot;
    struct qr_snapshot_meta snapshot; /* A snapshot received from the leader. */
    uint8_t *snapshot_data;           /* Owned; snapshot.size bytes. */
    struct qr_entry *entries;         /* Owned, with owned payloads. */
    size_t entries_count;
    bool has_hard_state;
    struct qr_hard_state hard_state;
};

/* What survives a crash, and what is on its way there. */
struct sim_disk {
    struct qr_hard_state hard_state;
    bool has_snapshot;
    struct qr_snapshot_meta snapshot; /* Latest snapshot (taken or installed). */
    uint8_t *snapshot_data;           /* Owned; snapshot.size bytes. */
    struct qr_entry *log;             /* Consecutive: log[k].index == log[0].index + k. */
    size_t log_count;                 /* <= SIM_DISK_LOG_MAX. */
    size_t log_capacity;
    struct sim_batch batches[SIM_BATCHES_MAX]; /* In flight, oldest first. */
    size_t batches_count;
    bool is_slow; /* Slow-disk fault: long write latency. */
};

/* One snapshot being received (the "incoming snapshot file" of quorum/core.h). */
struct sim_incoming {
    qr_index index; /* Snapshot index; 0 marks a free slot. */
    uint8_t *data;  /* size bytes valid, capacity allocated. */
    size_t size;
    size_t capacity;
};

/* A linearizable read waiting on a node. */
struct sim_read {
    uint64_t request_id; /* Given to qr_core_read_index. */
    uint32_t client;     /* Client index. */
    uint64_t op_serial;  /* The client's op it answers. */
    bool has_index;      /* The core confirmed it: serve once applied >= index. */
    qr_index index;
};

struct sim_node {
    qr_node_id id;           /* index + 1. */
    bool is_initial;         /* A member of the bootstrap configuration. */
    bool is_up;              /* core and kv exist. */
    uint64_t incarnation;    /* Grows at every crash: stale events are ignored. */
    uint32_t tick_interval;  /* Sim units between ticks (skew fault). */
    struct qr_core *core;    /* NULL while down. */
    struct qr_kv *kv;        /* NULL while down. */
    qr_index applied;        /* Last index applied to kv (or restored from a snapshot). */
    qr_index snapshot_index; /* Index of the state the last snapshot captured. */
    struct sim_disk disk;
    /* Snapshots being received, one buffer per snapshot index: the core may accept chunks of
     * a newer snapshot before it hands out the install of one it completed earlier. */
    struct sim_incoming incoming[SIM_INCOMING_MAX];
    struct sim_read reads[SIM_READS_MAX];
    size_t reads_count;
    /* Last state the checkers saw, to notice changes. */
    enum qr_role role;
    qr_term term;
    qr_node_id leader;
    qr_index commit;     /* Never decreases while up. */
    bool is_touched;     /* Processed during the current event: check it. */
    bool is_log_changed; /* Its log or commit changed since its logs were last compared. */
};

enum sim_op_state {
    SIM_OP_PENDING = 0,       /* Submitted, no answer yet. */
    SIM_OP_DONE = 1,          /* Answered. */
    SIM_OP_FAILED = 2,        /* Known not to have taken effect: left out of the history. */
    SIM_OP_INDETERMINATE = 3, /* No answer will come; may or may not have taken effect. */
};

struct sim_op {
    struct qr_lin_op lin;
    enum sim_op_state state;
};

struct sim_client {
    uint32_t id;        /* 1-based client id (the envelope's client id). */
    uint64_t seq;       /* Last request sequence number used. */
    uint32_t target;    /* Node index it believes leads. */
    bool is_busy;       /* An op is submitted and unanswered. */
    uint64_t op_serial; /* Identifies the current op (and its timers). */
    size_t op_index;    /* The current op in sim.ops. */
    bool is_read;
    uint32_t node;              /* Node the op was submitted to. */
    qr_index index;             /* Write: the index the entry got. */
    uint64_t request_seq;       /* Write: the envelope's sequence number. */
    uint64_t request_id;        /* Read: the read request id. */
    uint64_t done_after_settle; /* Ops answered that started after heal + settle. */
    uint64_t timeouts_after_settle;
};

struct sim_params {
    uint32_t nodes_count;   /* Initial members. */
    uint32_t spares_count;  /* Extra nodes that may join. */
    uint32_t faults;        /* Enabled QR_SIM_FAULT_* bits. */
    uint64_t ticks;         /* Fault phase. */
    uint32_t loss_permille; /* Per message, during the fault phase. */
    uint32_t dup_permille;
    uint32_t delay_permille; /* Chance of a long delay. */
    uint32_t latency_min;    /* Sim units. */
    uint32_t latency_max;
    uint32_t reorder_jitter; /* Extra latency, up to this, while reordering (sim units). */
    uint32_t disk_min;       /* Sim units. */
    uint32_t disk_max;
    uint32_t snapshot_every; /* Applied entries between snapshots. */
    uint32_t snapshot_trailing;
    uint32_t chunk_size; /* Snapshot chunk bytes. */
    uint32_t inflight_msgs_max;
    uint32_t persist_batches_max; /* The cores' persist_batches_max. */
    uint32_t clients_count;
    uint32_t keys_count;
    uint32_t nemesis_gap_min; /* Ticks between fault actions. */
    uint32_t nemesis_gap_max;
};

struct qr_sim {
    struct qr_sim_opts opts;
    struct sim_params params;
    struct qr_rng rng;  /* The one generator of the run. */
    uint64_t now;       /* Sim units. */
    uint64_t heal_time; /* End of the fault phase. */
    bool is_healed;     /* Fault phase over. */
    bool is_quiet;      /* Clients stopped. */
    bool is_failed;
    struct sim_heap events;
    struct sim_node nodes[QR_SIM_NODES_MAX];
    uint32_t nodes_total; /* Initial members plus spares. */
    uint64_t members;     /* Bit per node index: member per the latest leader config. */
    uint64_t ever_added;  /* Bit per node index: was ever a member. */
    uint64_t removed;     /* Bit per node index: removed from the membership. */
    bool blocked[QR_SIM_NODES_MAX][QR_SIM_NODES_MAX];       /* [from][to] link cut. */
    uint64_t link_last[QR_SIM_NODES_MAX][QR_SIM_NODES_MAX]; /* Last delivery time (FIFO). */
    bool is_partitioned;
    struct qr_config bootstrap;
    struct sim_client clients[SIM_CLIENTS_MAX];
    struct sim_op *ops; /* History; ops_count <= SIM_HISTORY_MAX. */
    size_t ops_count;
    size_t ops_capacity;
    uint64_t read_id_next;
    uint64_t value_next; /* Unique values for SET. */
    struct qr_sim_check check;
    struct qr_sim_trace trace;
    struct qr_sim_result *result;
    int error; /* First internal error (QR_ENOMEM, QR_EBUSY); ends the run. */
};

/* sim.c */
__attribute__((format(printf, 3, 4))) void
qr__sim_fail(struct qr_sim *sim, const char *check, const char *fmt, ...);
void qr__sim_error(struct qr_sim *sim, int rv, const char *what);
uint64_t qr__sim_rand_range(struct qr_sim *sim, uint64_t low, uint64_t high);
bool qr__sim_chance(struct qr_sim *sim, uint32_t permille);
int qr__sim_schedule(struct qr_sim *sim,
                     uint64_t time,
                     enum sim_event_kind kind,
                     uint32_t node,
                     uint64_t arg,
                     struct sim_msg *msg);
bool qr__sim_is_member(const struct qr_sim *sim, uint32_t node);

/* sim_node.c */
int qr__sim_node_start(struct qr_sim *sim, uint32_t node);
void qr__sim_node_crash(struct qr_sim *sim, uint32_t node);
void qr__sim_node_process(struct qr_sim *sim, uint32_t node);
void qr__sim_node_check(struct qr_sim *sim, uint32_t node);
void qr__sim_node_disk_done(struct qr_sim *sim, uint32_t node, uint64_t incarnation);
void qr__sim_node_close(struct sim_node *n);
uint64_t qr__sim_node_digest(struct qr_sim *sim, uint32_t node);

/* sim_net.c */
void qr__sim_net_send(struct qr_sim *sim, uint32_t from, const struct qr_msg *msg);
void qr__sim_net_deliver(struct qr_sim *sim, struct sim_msg *msg);
int qr__sim_heap_push(struct sim_heap *heap, const struct sim_event *event);
bool qr__sim_heap_pop(struct sim_heap *heap, struct sim_event *event_out);
void qr__sim_heap_close(struct sim_heap *heap);
const uint8_t *
qr__sim_node_snapshot_bytes(const struct sim_node *n, qr_index index, uint64_t *size);

/* sim_client.c */
void qr__sim_client_act(struct qr_sim *sim, uint32_t client, uint64_t arg);
void qr__sim_client_applied(struct qr_sim *sim,
                            uint32_t node,
                            const struct qr_entry *entry,
                            const struct qr_kv_cmd *cmd,
                            const struct qr_kv_result *result);
void qr__sim_client_read_ready(struct qr_sim *sim, uint32_t node);
void qr__sim_client_read_failed(struct qr_sim *sim, uint32_t node, uint64_t request_id);
void qr__sim_client_node_crashed(struct qr_sim *sim, uint32_t node);
void qr__sim_client_start(struct qr_sim *sim);
int qr__sim_client_check_history(struct qr_sim *sim);

/* sim_nemesis.c */
void qr__sim_nemesis_setup(struct qr_sim *sim);
void qr__sim_nemesis_act(struct qr_sim *sim);
void qr__sim_nemesis_heal(struct qr_sim *sim);

#endif /* QR_SIM_SIM_INTERNAL_H */
