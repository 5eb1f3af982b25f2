/*
 * tests/lib/test_cluster.h: a tiny in-memory cluster of cores for unit tests.
 *
 * Each node has a core, a "disk" that persists batches when the test says so
 * (or at once in auto mode), and an inbox. Messages are deep-copied when they
 * leave a ready batch. Delivery, drops and partitions are under the test's
 * control, so each test is a short deterministic script.
 */
#ifndef QR_TEST_CLUSTER_H
#define QR_TEST_CLUSTER_H

#include "quorum/core.h"

#define TC_NODES_MAX   7
#define TC_INBOX_MAX   4096
#define TC_APPLIED_MAX 4096

struct tc_msg {
    struct qr_msg msg;
    struct qr_entry *entries;          /* Owned copies. */
    struct qr_snapshot_meta *snapshot; /* Owned copy, or NULL. */
    uint8_t *data;
};

struct tc_node {
    qr_node_id id;
    struct qr_core *core;
    bool down;               /* Crashed: not stepped, not ticked. */
    bool auto_persist;       /* Persist each batch as soon as it is handed out. */
    uint64_t pending_seq;    /* Batch handed out but not yet persisted (manual mode). */
    struct qr_entry *staged; /* Its entries, written to `log` only when persisted. */
    size_t staged_count;
    bool staged_has_hard_state;
    struct qr_hard_state staged_hard_state;
    /* Disk. */
    struct qr_hard_state hard_state;
    struct qr_entry *log; /* Owned entries 1..log_count (payload copies). */
    size_t log_count;
    /* Applied commands (payload copies, in order). */
    struct qr_entry applied[TC_APPLIED_MAX];
    size_t applied_count;
    uint64_t reads_done[64];
    qr_index reads_index[64];
    size_t reads_done_count;
    size_t reads_failed_count;
};

struct tc_cluster {
    size_t nodes_count;
    struct tc_node nodes[TC_NODES_MAX];
    struct tc_msg inbox[TC_INBOX_MAX];
    size_t inbox_count;
    bool cut[TC_NODES_MAX + 1][TC_NODES_MAX + 1]; /* cut[a][b]: a's messages to b are dropped. */
    uint64_t delivered_count;
    /* Called for each message delivered, when set (scripted tests print a trace). */
    void (*trace)(void *ctx, const struct qr_msg *m);
    void *trace_ctx;
};

/* Starts n nodes (ids 1..n) with voters 1..voters_count and auto persistence. */
void tc_init(struct tc_cluster *c, size_t n, size_t voters_count);
void tc_close(struct tc_cluster *c);
struct tc_node *tc_node(struct tc_cluster *c, qr_node_id id);
/* Drains every node's ready batches into the inbox (and its disk). */
void tc_drain(struct tc_cluster *c);
/* Delivers every queued message once (new ones produced meanwhile are queued). */
size_t tc_deliver(struct tc_cluster *c);
/* Drains and delivers until quiet, at most `rounds` times. */
void tc_stabilize(struct tc_cluster *c, int rounds);
/* Ticks every live node once, then stabilizes. */
void tc_tick_all(struct tc_cluster *c, int ticks);
/* Campaign on `id` and stabilize. */
void tc_elect(struct tc_cluster *c, qr_node_id id);
/* Propose a string on `id`; returns the core's result. */
int tc_propose(struct tc_cluster *c, qr_node_id id, const char *text);
/* Cuts (or heals) both directions between a and b. */
void tc_partition(struct tc_cluster *c, qr_node_id a, qr_node_id b, bool cut);
/* Isolates a node from all others (or heals it). */
void tc_isolate(struct tc_cluster *c, qr_node_id id, bool cut);
/* Crash: drop the core (unpersisted state is lost). Restart: rebuild from the disk. */
void tc_crash(struct tc_cluster *c, qr_node_id id);
void tc_restart(struct tc_cluster *c, qr_node_id id);
/* Persist the pending batch of a manual-persistence node. */
void tc_persist(struct tc_cluster *c, qr_node_id id);
/* The leader id if exactly one live node is leader in the highest term, else 0. */
qr_node_id tc_leader(struct tc_cluster *c);
/* Status helper. */
struct qr_core_status tc_status(struct tc_cluster *c, qr_node_id id);

#endif /* QR_TEST_CLUSTER_H */
