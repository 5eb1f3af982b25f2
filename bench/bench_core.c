/*
 * bench/bench_core.c: how much CPU does the consensus core spend per committed entry?
 *
 * Layer: bench (a program, never linked into libquorum). Three cores run in one
 * process with zero network delay and an "in-memory disk": every persist batch
 * is reported durable as soon as it is taken, and messages are stepped straight
 * into their target core. Node 1 is elected, then the leader commits --entries
 * payloads of --size bytes, proposed --batch at a time; each round is driven
 * until all three replicas applied it. Every replica snapshots periodically so
 * the in-memory log stays bounded. The program prints one line with committed
 * entries per wall-clock second and process CPU nanoseconds per committed
 * entry (all three replicas together). It checks what it measures: every
 * replica must apply every payload, in order, exactly once.
 *
 * Timing lives in bench/ only; tests never assert on time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quorum/core.h"
#include "quorum/err.h"

#define NODES_COUNT     3
#define ENTRIES_DEFAULT 1000000
#define BATCH_DEFAULT   1
#define SIZE_DEFAULT    100
/* Largest batch, payload and round a run accepts. A round stays well inside the core's
 * default limits (64 MiB uncommitted, 16 MiB in flight per follower), so no proposal
 * is refused with QR_EBUSY. */
#define BATCH_MAX       4096
#define SIZE_MAX_BYTES  65536
#define ROUND_BYTES_MAX (8u << 20)
/* By default every replica snapshots after this many newly applied entries and keeps
 * this many behind the snapshot: the in-memory log stays at most 2048 entries long. */
#define SNAPSHOT_EVERY_DEFAULT    1024
#define SNAPSHOT_TRAILING_DEFAULT 1024
#define SNAPSHOT_EVERY_MAX        (1u << 20)
/* Ready batches handled per round before the round counts as stuck (a core bug). */
#define ROUND_READIES_MAX 1000000
/* Ticks given to a quiescent but unfinished round before giving up. */
#define STALL_TICKS_MAX 1000
/* Ready batches allowed for the election. */
#define ELECTION_READIES_MAX 10000

struct node {
    struct qr_core *core;
    qr_node_id id;
    qr_index applied;          /* Last index handed out in ready.committed. */
    qr_index snapshot_index;   /* Index of the last snapshot taken; 0 for none. */
    uint64_t applied_seq;      /* Normal entries applied (also the next payload sequence). */
    uint64_t committed_normal; /* Leader only: normal entries seen in ready.committed. */
    bool is_leader;
};

struct cluster {
    struct node nodes[NODES_COUNT];
    size_t payload_size;        /* Bytes per proposed entry. */
    uint64_t snapshot_every;    /* Entries applied between snapshots of one replica. */
    uint64_t snapshot_trailing; /* Entries kept behind a snapshot. */
    uint64_t stall_ticks;
    uint64_t snapshots_count;
    uint64_t readies_count;
    uint64_t messages_count;
};

struct bench_args {
    uint64_t entries_count;
    uint64_t batch_count;
    size_t payload_size;
    uint64_t snapshot_every;
    uint64_t snapshot_trailing;
};

__attribute__((noreturn)) static void die(const char *what, int rv)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, rv != 0 ? qr_strerror(rv) : "failed");
    exit(1);
}

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) {
        fprintf(stderr, "bench_core: clock_gettime: %s\n", strerror(errno));
        exit(1);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct node *node_by_id(struct cluster *c, qr_node_id id)
{
    if (id == 0 || id > NODES_COUNT) {
        return NULL;
    }
    return &c->nodes[id - 1];
}

static void cluster_create(struct cluster *c, const struct bench_args *a)
{
    memset(c, 0, sizeof(*c));
    c->payload_size = a->payload_size;
    c->snapshot_every = a->snapshot_every;
    c->snapshot_trailing = a->snapshot_trailing;
    struct qr_config config;
    memset(&config, 0, sizeof(config));
    config.voters_count = NODES_COUNT;
    for (uint32_t i = 0; i < NODES_COUNT; i++) {
        config.voters[i] = i + 1;
    }
    for (uint32_t i = 0; i < NODES_COUNT; i++) {
        struct node *n = &c->nodes[i];
        n->id = i + 1;
        struct qr_core_opts opts;
        qr_core_opts_default(&opts, n->id);
        opts.seed = 0x5eed0000u + n->id; /* Fixed: the same run every time. */
        struct qr_core_state state;
        memset(&state, 0, sizeof(state));
        state.config = &config;
        char errmsg[QR_ERRMSG_SIZE];
        int rv = qr_core_create(&opts, &state, &n->core, errmsg);
        if (rv != 0) {
            fprintf(stderr, "bench_core: qr_core_create: %s\n", errmsg);
            exit(1);
        }
    }
}

static void cluster_destroy(struct cluster *c)
{
    for (size_t i = 0; i < NODES_COUNT; i++) {
        qr_core_destroy(c->nodes[i].core);
        c->nodes[i].core = NULL;
    }
}

/* The state machine: payloads carry their sequence number; each replica must see
 * 0, 1, 2, ... in order. */
static void node_apply(struct cluster *c, struct node *n, const struct qr_ready *rd)
{
    for (size_t i = 0; i < rd->committed_count; i++) {
        const struct qr_entry *e = &rd->committed[i];
        if (e->index != n->applied + 1) {
            fprintf(stderr,
                    "bench_core: node %" PRIu64 " applied index %" PRIu64 " after %" PRIu64 "\n",
                    n->id, e->index, n->applied);
            exit(1);
        }
        n->applied = e->index;
        if (e->type != QR_ENTRY_NORMAL) {
            continue;
        }
        uint64_t seq = 0;
        if (e->data.len != c->payload_size || e->data.len < sizeof(seq)) {
            fprintf(stderr, "bench_core: node %" PRIu64 " entry %" PRIu64 " has %zu bytes\n", n->id,
                    e->index, e->data.len);
            exit(1);
        }
        memcpy(&seq, e->data.base, sizeof(seq));
        if (seq != n->applied_seq) {
            fprintf(stderr,
                    "bench_core: node %" PRIu64 " entry %" PRIu64 " carries payload %" PRIu64
                    ", expected %" PRIu64 "\n",
                    n->id, e->index, seq, n->applied_seq);
            exit(1);
        }
        n->applied_seq++;
        if (n->is_leader) {
            n->committed_normal++;
        }
    }
}

/* Messages are views valid until the sender's advance, and no receiver is between
 * its own ready and advance (only one node's batch is open at a time), so they are
 * stepped straight in: no copy. */
static void node_send(struct cluster *c, const struct qr_ready *rd)
{
    for (size_t i = 0; i < rd->messages_count; i++) {
        const struct qr_msg *m = &rd->messages[i];
        struct node *to = node_by_id(c, m->to);
        if (to == NULL) {
            die("message to an unknown node", 0);
        }
        int rv = qr_core_step(to->core, m);
        if (rv != 0) {
            die("qr_core_step", rv);
        }
    }
    c->messages_count += rd->messages_count;
}

/* The application "saved" a snapshot at its applied index; the core trims its log. */
static void node_maybe_snapshot(struct cluster *c, struct node *n)
{
    if (n->applied < n->snapshot_index + c->snapshot_every) {
        return;
    }
    struct qr_snapshot_meta meta;
    int rv = qr_core_snapshot_meta(n->core, n->applied, &meta);
    if (rv != 0) {
        die("qr_core_snapshot_meta", rv);
    }
    meta.size = 0;
    meta.crc = 0;
    rv = qr_core_snapshot_taken(n->core, &meta, c->snapshot_trailing);
    if (rv != 0) {
        die("qr_core_snapshot_taken", rv);
    }
    n->snapshot_index = n->applied;
    c->snapshots_count++;
}

/* Handles one output batch of n; returns false when it had none. */
static bool node_drain_one(struct cluster *c, struct node *n)
{
    if (!qr_core_has_ready(n->core)) {
        return false;
    }
    struct qr_ready rd;
    qr_core_ready(n->core, &rd);
    if (rd.persist_seq != 0) {
        /* The in-memory disk is durable at once. */
        int rv = qr_core_persisted(n->core, rd.persist_seq);
        if (rv != 0) {
            die("qr_core_persisted", rv);
        }
    }
    if (rd.snapshot != NULL || rd.snapshot_chunks_count != 0) {
        die("unexpected snapshot transfer in a loss-free run", 0);
    }
    if (rd.soft_state_changed) {
        n->is_leader = rd.role == QR_ROLE_LEADER;
    }
    node_send(c, &rd);
    node_apply(c, n, &rd);
    qr_core_advance(n->core);
    node_maybe_snapshot(c, n);
    c->readies_count++;
    return true;
}

/* Drives every core until none has output; returns the batches handled. */
static uint64_t cluster_drain(struct cluster *c, uint64_t readies_max)
{
    uint64_t handled = 0;
    bool busy = true;
    while (busy) {
        busy = false;
        for (size_t i = 0; i < NODES_COUNT; i++) {
            if (node_drain_one(c, &c->nodes[i])) {
                busy = true;
                handled++;
            }
        }
        if (handled > readies_max) {
            die("the cluster never went quiet", 0);
        }
    }
    return handled;
}

static void cluster_tick(struct cluster *c)
{
    for (size_t i = 0; i < NODES_COUNT; i++) {
        qr_core_tick(c->nodes[i].core);
    }
}

static bool all_applied(const struct cluster *c, qr_index index)
{
    for (size_t i = 0; i < NODES_COUNT; i++) {
        if (c->nodes[i].applied < index) {
            return false;
        }
    }
    return true;
}

static void cluster_elect(struct cluster *c)
{
    qr_core_campaign(c->nodes[0].core);
    (void)cluster_drain(c, ELECTION_READIES_MAX); /* Dies when it does not settle. */
    struct qr_core_status st;
    qr_core_status(c->nodes[0].core, &st);
    if (st.role != QR_ROLE_LEADER) {
        die("node 1 did not become leader", 0);
    }
    /* A follower still probed when the leader's noop committed learns the commit from
     * the next heartbeat: tick until every node applied it, before the measured run. */
    for (uint32_t t = 0; !all_applied(c, st.commit); t++) {
        if (t == STALL_TICKS_MAX) {
            die("the leader's first entries did not reach every node", 0);
        }
        cluster_tick(c);
        (void)cluster_drain(c, ELECTION_READIES_MAX);
    }
}

static bool round_done(const struct cluster *c, uint64_t proposed_count)
{
    for (size_t i = 0; i < NODES_COUNT; i++) {
        if (c->nodes[i].applied_seq < proposed_count) {
            return false;
        }
    }
    return true;
}

/* Proposes `count` entries numbered from `seq` on the leader. */
static void leader_propose(struct cluster *c, uint8_t *payload, uint64_t seq, uint64_t count)
{
    struct qr_core *leader = c->nodes[0].core;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t s = seq + k;
        memcpy(payload, &s, sizeof(s));
        struct qr_buf data = {payload, c->payload_size};
        int rv = qr_core_propose(leader, data, NULL);
        if (rv != 0) {
            die("qr_core_propose", rv);
        }
    }
}

static void run(struct cluster *c, const struct bench_args *a, uint8_t *payload)
{
    uint64_t proposed = 0;
    while (proposed < a->entries_count) {
        uint64_t count = a->entries_count - proposed;
        count = count < a->batch_count ? count : a->batch_count;
        leader_propose(c, payload, proposed, count);
        proposed += count;
        (void)cluster_drain(c, ROUND_READIES_MAX);
        /* Zero delay and no loss: a quiet cluster has finished the round. Ticks rescue a
         * stall (and it is reported), so a core bug shows as a figure, not a hang. */
        for (uint32_t t = 0; !round_done(c, proposed); t++) {
            if (t == STALL_TICKS_MAX) {
                fprintf(stderr, "bench_core: round ending at %" PRIu64 " never committed\n",
                        proposed);
                exit(1);
            }
            cluster_tick(c);
            c->stall_ticks++;
            (void)cluster_drain(c, ROUND_READIES_MAX);
        }
    }
}

static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

__attribute__((noreturn)) static void usage(void)
{
    fprintf(stderr,
            "usage: bench_core [--entries N] [--batch B] [--size S] [--snapshot-every E]\n"
            "                  [--snapshot-trailing T]\n"
            "  N >= 1 (default %d), 1 <= B <= %d (default %d), 8 <= S <= %d (default %d),\n"
            "  1 <= E <= %u (default %d), T <= %u (default %d), B * S <= %u\n",
            ENTRIES_DEFAULT, BATCH_MAX, BATCH_DEFAULT, SIZE_MAX_BYTES, SIZE_DEFAULT,
            SNAPSHOT_EVERY_MAX, SNAPSHOT_EVERY_DEFAULT, SNAPSHOT_EVERY_MAX,
            SNAPSHOT_TRAILING_DEFAULT, ROUND_BYTES_MAX);
    exit(2);
}

/* Sets the field a flag names; false for an unknown flag or a value out of range. */
static bool parse_flag(const char *flag, const char *value, struct bench_args *a)
{
    uint64_t v = 0;
    if (strcmp(flag, "--entries") == 0 && parse_u64(value, 1, UINT32_MAX, &v) == 0) {
        a->entries_count = v;
    } else if (strcmp(flag, "--batch") == 0 && parse_u64(value, 1, BATCH_MAX, &v) == 0) {
        a->batch_count = v;
    } else if (strcmp(flag, "--size") == 0 &&
               parse_u64(value, sizeof(uint64_t), SIZE_MAX_BYTES, &v) == 0) {
        a->payload_size = (size_t)v;
    } else if (strcmp(flag, "--snapshot-every") == 0 &&
               parse_u64(value, 1, SNAPSHOT_EVERY_MAX, &v) == 0) {
        a->snapshot_every = v;
    } else if (strcmp(flag, "--snapshot-trailing") == 0 &&
               parse_u64(value, 0, SNAPSHOT_EVERY_MAX, &v) == 0) {
        a->snapshot_trailing = v;
    } else {
        return false;
    }
    return true;
}

static void parse_args(int argc, char **argv, struct bench_args *a)
{
    a->entries_count = ENTRIES_DEFAULT;
    a->batch_count = BATCH_DEFAULT;
    a->payload_size = SIZE_DEFAULT;
    a->snapshot_every = SNAPSHOT_EVERY_DEFAULT;
    a->snapshot_trailing = SNAPSHOT_TRAILING_DEFAULT;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc || !parse_flag(argv[i], argv[i + 1], a)) {
            usage();
        }
    }
    if (a->batch_count * a->payload_size > ROUND_BYTES_MAX) {
        usage();
    }
}

int main(int argc, char **argv)
{
    struct bench_args a;
    parse_args(argc, argv, &a);
    static uint8_t payload[SIZE_MAX_BYTES];
    memset(payload, 0xab, sizeof(payload));

    struct cluster c;
    cluster_create(&c, &a);
    cluster_elect(&c);
    /* The counters printed at the end describe the measured run only. */
    c.readies_count = 0;
    c.messages_count = 0;
    c.snapshots_count = 0;

    uint64_t wall0 = clock_ns(CLOCK_MONOTONIC);
    uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    run(&c, &a, payload);
    uint64_t cpu1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t wall1 = clock_ns(CLOCK_MONOTONIC);

    uint64_t committed = c.nodes[0].committed_normal;
    if (committed != a.entries_count) {
        fprintf(stderr, "bench_core: leader committed %" PRIu64 " of %" PRIu64 " entries\n",
                committed, a.entries_count);
        return 1;
    }
    double wall_s = (double)(wall1 - wall0) / 1e9;
    double cpu_ns = (double)(cpu1 - cpu0);
    printf("quorum batch=%" PRIu64 " entries=%" PRIu64
           " entries_per_s=%.0f cpu_ns_per_entry=%.1f\n",
           a.batch_count, committed, (double)committed / wall_s, cpu_ns / (double)committed);
    fprintf(stderr,
            "bench_core: readies=%" PRIu64 " messages=%" PRIu64 " snapshots=%" PRIu64
            " stall_ticks=%" PRIu64 "\n",
            c.readies_count, c.messages_count, c.snapshots_count, c.stall_ticks);
    cluster_destroy(&c);
    return 0;
}
