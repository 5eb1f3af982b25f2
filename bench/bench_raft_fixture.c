/*
 * bench/bench_raft_fixture.c: bench_core's workload on canonical/raft's in-memory cluster.
 *
 * Layer: bench (a program, never linked into libquorum). The yardstick for
 * bench_core: three servers of canonical/raft's test fixture (raft/fixture.h,
 * Debian libraft-dev) with zero network and disk latency; server 0 is elected,
 * then --entries payloads of --size bytes are submitted with raft_apply,
 * --batch buffers per call, and each call is stepped with raft_fixture_step
 * until its callback fired and all three state machines applied it. A low
 * snapshot threshold keeps the fixture's logs short (it copies the leader's
 * log on every step). Prints the same line as bench_core, tagged
 * "canonical-raft". Payloads carry their sequence number and every server's
 * state machine checks it sees them in order, exactly once (a snapshot
 * installed from the leader counts as applying what it covers).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raft.h>
#include <raft/fixture.h>

#define SERVERS_COUNT   3
#define ENTRIES_DEFAULT 1000000
#define BATCH_DEFAULT   1
#define SIZE_DEFAULT    100
/* Largest batch, payload and round (batch times payload) a run accepts: as bench_core. */
#define BATCH_MAX       4096
#define SIZE_MAX_BYTES  65536
#define ROUND_BYTES_MAX (8u << 20)
/* By default the fixture snapshots every 128 entries and keeps none behind the snapshot.
 * Trailing 0: the fixture's in-memory disk drops its log only then (with any other value
 * it keeps every entry ever written, in one array it reallocates on every append, and its
 * cost grows with the run). Threshold 128 rather than 64: with 64 and 64-entry rounds one
 * follower per round gets the leader's snapshot instead of applying the entries, so the
 * fixture would do less work than bench_core (see follower_restores on stderr). */
#define SNAPSHOT_THRESHOLD_DEFAULT 128
#define SNAPSHOT_TRAILING_DEFAULT  0
#define SNAPSHOT_THRESHOLD_MAX     (1u << 20)
/* Fixture steps allowed per round before it counts as stuck. */
#define ROUND_STEPS_MAX 10000000

/* One server's state machine: counts applied payloads and checks their order. */
struct fsm_state {
    unsigned server_index;
    size_t payload_size;
    uint64_t applied_seq;    /* Payloads applied; also the sequence number expected next. */
    uint64_t restores_count; /* Snapshots installed from the leader instead of applying. */
};

struct bench_args {
    uint64_t entries_count;
    uint64_t batch_count;
    size_t payload_size;
    uint64_t snapshot_threshold;
    uint64_t snapshot_trailing;
};

__attribute__((noreturn)) static void die(const char *what, int rv)
{
    fprintf(stderr, "bench_raft_fixture: %s: %s\n", what, rv != 0 ? raft_strerror(rv) : "failed");
    exit(1);
}

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) {
        fprintf(stderr, "bench_raft_fixture: clock_gettime: %s\n", strerror(errno));
        exit(1);
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct fsm_state *s = fsm->data;
    uint64_t seq = 0;
    if (buf->len != s->payload_size || buf->len < sizeof(seq)) {
        fprintf(stderr, "bench_raft_fixture: server %u applied %zu bytes\n", s->server_index,
                buf->len);
        exit(1);
    }
    memcpy(&seq, buf->base, sizeof(seq));
    if (seq != s->applied_seq) {
        fprintf(stderr,
                "bench_raft_fixture: server %u applied payload %" PRIu64 ", expected %" PRIu64 "\n",
                s->server_index, seq, s->applied_seq);
        exit(1);
    }
    s->applied_seq++;
    *result = NULL;
    return 0;
}

/* The snapshot is the applied count: 8 bytes, enough to restore and check. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct fsm_state *s = fsm->data;
    struct raft_buffer *b = raft_malloc(sizeof(*b));
    if (b == NULL) {
        return RAFT_NOMEM;
    }
    b->len = sizeof(s->applied_seq);
    b->base = raft_malloc(b->len);
    if (b->base == NULL) {
        raft_free(b);
        return RAFT_NOMEM;
    }
    memcpy(b->base, &s->applied_seq, b->len);
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct fsm_state *s = fsm->data;
    if (buf->len != sizeof(s->applied_seq)) {
        return RAFT_MALFORMED;
    }
    memcpy(&s->applied_seq, buf->base, sizeof(s->applied_seq));
    s->restores_count++;
    raft_free(buf->base); /* restore takes ownership of the data. */
    return 0;
}

struct round {
    bool done; /* The raft_apply callback fired. */
    int status;
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct round *r = req->data;
    (void)result;
    r->done = true;
    r->status = status;
}

static bool round_done(const struct fsm_state *states, const struct round *r, uint64_t target)
{
    if (!r->done) {
        return false;
    }
    for (size_t i = 0; i < SERVERS_COUNT; i++) {
        if (states[i].applied_seq < target) {
            return false;
        }
    }
    return true;
}

static void cluster_start(struct raft_fixture *f,
                          const struct bench_args *a,
                          struct raft_fsm *fsms,
                          struct fsm_state *states)
{
    int rv = raft_fixture_initialize(f);
    if (rv != 0) {
        die("raft_fixture_initialize", rv);
    }
    for (unsigned i = 0; i < SERVERS_COUNT; i++) {
        memset(&fsms[i], 0, sizeof(fsms[i]));
        fsms[i].version = 1;
        fsms[i].data = &states[i];
        fsms[i].apply = fsm_apply;
        fsms[i].snapshot = fsm_snapshot;
        fsms[i].restore = fsm_restore;
        rv = raft_fixture_grow(f, &fsms[i]);
        if (rv != 0) {
            die("raft_fixture_grow", rv);
        }
        struct raft *raft = raft_fixture_get(f, i);
        raft_set_snapshot_threshold(raft, (unsigned)a->snapshot_threshold);
        raft_set_snapshot_trailing(raft, (unsigned)a->snapshot_trailing);
        /* Zero delay, as in bench_core: messages and writes complete at once. */
        raft_fixture_set_network_latency(f, i, 0);
        raft_fixture_set_disk_latency(f, i, 0);
    }
    struct raft_configuration conf;
    rv = raft_fixture_configuration(f, SERVERS_COUNT, &conf);
    if (rv != 0) {
        die("raft_fixture_configuration", rv);
    }
    rv = raft_fixture_bootstrap(f, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        die("raft_fixture_bootstrap", rv);
    }
    rv = raft_fixture_start(f);
    if (rv != 0) {
        die("raft_fixture_start", rv);
    }
    raft_fixture_elect(f, 0);
    if (raft_fixture_leader_index(f) != 0) {
        die("server 0 did not become leader", 0);
    }
}

/* Submits `count` payloads numbered from `seq` in one raft_apply call. */
static void leader_apply(struct raft *leader,
                         struct raft_apply *req,
                         struct raft_buffer *bufs,
                         size_t payload_size,
                         uint64_t seq,
                         uint64_t count)
{
    for (uint64_t k = 0; k < count; k++) {
        uint64_t s = seq + k;
        /* raft_apply takes ownership of each buffer: it must come from raft_malloc. */
        bufs[k].base = raft_malloc(payload_size);
        if (bufs[k].base == NULL) {
            die("raft_malloc", RAFT_NOMEM);
        }
        bufs[k].len = payload_size;
        memset(bufs[k].base, 0xab, payload_size);
        memcpy(bufs[k].base, &s, sizeof(s));
    }
    int rv = raft_apply(leader, req, bufs, (unsigned)count, apply_cb);
    if (rv != 0) {
        die("raft_apply", rv);
    }
}

static uint64_t
run(struct raft_fixture *f, const struct fsm_state *states, const struct bench_args *a)
{
    static struct raft_buffer bufs[BATCH_MAX];
    struct raft *leader = raft_fixture_get(f, 0);
    struct raft_apply req;
    struct round round;
    uint64_t proposed = 0;
    uint64_t steps = 0;
    while (proposed < a->entries_count) {
        uint64_t count = a->entries_count - proposed;
        count = count < a->batch_count ? count : a->batch_count;
        memset(&round, 0, sizeof(round));
        req.data = &round;
        leader_apply(leader, &req, bufs, a->payload_size, proposed, count);
        proposed += count;
        for (uint64_t s = 0; !round_done(states, &round, proposed); s++) {
            if (s == ROUND_STEPS_MAX) {
                fprintf(stderr, "bench_raft_fixture: round ending at %" PRIu64 " never applied\n",
                        proposed);
                exit(1);
            }
            (void)raft_fixture_step(f);
            steps++;
        }
        if (round.status != 0) {
            die("raft_apply callback", round.status);
        }
    }
    return steps;
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
            "usage: bench_raft_fixture [--entries N] [--batch B] [--size S]\n"
            "                          [--snapshot-threshold E] [--snapshot-trailing T]\n"
            "  N >= 1 (default %d), 1 <= B <= %d (default %d), 8 <= S <= %d (default %d),\n"
            "  1 <= E <= %u (default %d), T <= %u (default %d), B * S <= %u\n",
            ENTRIES_DEFAULT, BATCH_MAX, BATCH_DEFAULT, SIZE_MAX_BYTES, SIZE_DEFAULT,
            SNAPSHOT_THRESHOLD_MAX, SNAPSHOT_THRESHOLD_DEFAULT, SNAPSHOT_THRESHOLD_MAX,
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
    } else if (strcmp(flag, "--snapshot-threshold") == 0 &&
               parse_u64(value, 1, SNAPSHOT_THRESHOLD_MAX, &v) == 0) {
        a->snapshot_threshold = v;
    } else if (strcmp(flag, "--snapshot-trailing") == 0 &&
               parse_u64(value, 0, SNAPSHOT_THRESHOLD_MAX, &v) == 0) {
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
    a->snapshot_threshold = SNAPSHOT_THRESHOLD_DEFAULT;
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
    static struct raft_fixture f;
    struct raft_fsm fsms[SERVERS_COUNT];
    struct fsm_state states[SERVERS_COUNT];
    memset(states, 0, sizeof(states));
    for (unsigned i = 0; i < SERVERS_COUNT; i++) {
        states[i].server_index = i;
        states[i].payload_size = a.payload_size;
    }
    cluster_start(&f, &a, fsms, states);

    uint64_t wall0 = clock_ns(CLOCK_MONOTONIC);
    uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t steps = run(&f, states, &a);
    uint64_t cpu1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t wall1 = clock_ns(CLOCK_MONOTONIC);

    uint64_t committed = states[0].applied_seq;
    if (committed != a.entries_count) {
        fprintf(stderr, "bench_raft_fixture: leader applied %" PRIu64 " of %" PRIu64 " entries\n",
                committed, a.entries_count);
        return 1;
    }
    double wall_s = (double)(wall1 - wall0) / 1e9;
    double cpu_ns = (double)(cpu1 - cpu0);
    printf("canonical-raft batch=%" PRIu64 " entries=%" PRIu64
           " entries_per_s=%.0f cpu_ns_per_entry=%.1f\n",
           a.batch_count, committed, (double)committed / wall_s, cpu_ns / (double)committed);
    /* A follower that installs the leader's snapshot skips applying the entries it
     * covers: with many installs the fixture does less work per entry than bench_core. */
    fprintf(stderr,
            "bench_raft_fixture: steps=%" PRIu64 " appends_sent=%u snapshots_sent=%u"
            " follower_restores=%" PRIu64 "\n",
            steps, raft_fixture_n_send(&f, 0, RAFT_IO_APPEND_ENTRIES),
            raft_fixture_n_send(&f, 0, RAFT_IO_INSTALL_SNAPSHOT),
            states[1].restores_count + states[2].restores_count);
    raft_fixture_close(&f);
    return 0;
}
