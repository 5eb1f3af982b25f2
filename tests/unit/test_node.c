/*
 * Unit tests of node/: the FORWARD and FORWARD_ACK bodies (round trips and hostile input),
 * address parsing, option checks, and whole clusters of real nodes in this process on one
 * libuv loop over 127.0.0.1: election, proposals on the leader and forwarded from a
 * follower (with the fsm's result), linearizable reads, restart from disk through a
 * snapshot, the handshake refusing a wrong secret, and the callback contract on close.
 * Every test runs under a thread-safe counting allocator (storage allocates on the worker
 * thread) and ends with nothing outstanding. Waits poll against deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "node/node_internal.h"
#include "quorum/alloc.h"
#include "quorum/err.h"
#include "quorum/log.h"
#include "quorum/node.h"

#define NODES_MAX       3
#define WAIT_MS         10000
#define POLL_MS         10
#define LOG_LINES_SIZE  (64u << 10)
#define TEST_CLUSTER_ID 77
static const char secret_text[] = "unit-test-secret-0123456789";

/* ---- A thread-safe counting allocator ----------------------------------------------------- */

static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t alloc_live;

static void *t_malloc(void *ctx, size_t size)
{
    (void)ctx;
    void *p = malloc(size == 0 ? 1 : size);
    pthread_mutex_lock(&alloc_lock);
    alloc_live += p != NULL;
    pthread_mutex_unlock(&alloc_lock);
    return p;
}

static void *t_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    pthread_mutex_lock(&alloc_lock);
    alloc_live += p != NULL;
    pthread_mutex_unlock(&alloc_lock);
    return p;
}

static void *t_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    void *p = realloc(ptr, size == 0 ? 1 : size);
    pthread_mutex_lock(&alloc_lock);
    alloc_live += p != NULL && ptr == NULL;
    pthread_mutex_unlock(&alloc_lock);
    return p;
}

static void t_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL) {
        pthread_mutex_lock(&alloc_lock);
        alloc_live--;
        pthread_mutex_unlock(&alloc_lock);
        free(ptr);
    }
}

/* ---- Log capture ---------------------------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[LOG_LINES_SIZE];
static size_t log_size;

static void on_log(void *ctx, enum qr_log_level level, const char *line)
{
    (void)ctx;
    pthread_mutex_lock(&log_lock);
    int n = snprintf(log_lines + log_size, sizeof(log_lines) - log_size, "%s %s\n",
                     qr_log_level_name(level), line);
    if (n > 0 && log_size + (size_t)n < sizeof(log_lines)) {
        log_size += (size_t)n;
    }
    pthread_mutex_unlock(&log_lock);
    if (getenv("QR_TEST_NODE_LOG") != NULL) {
        (void)fprintf(stderr, "%llu %s %s\n", (unsigned long long)(uv_hrtime() / 1000000),
                      qr_log_level_name(level), line);
    }
}

static bool log_has(const char *text)
{
    pthread_mutex_lock(&log_lock);
    bool found = strstr(log_lines, text) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

static int setup(void **state)
{
    (void)state;
    static const struct qr_allocator a = {NULL, t_malloc, t_calloc, t_realloc, t_free};
    qr_set_allocator(&a);
    alloc_live = 0;
    log_size = 0;
    log_lines[0] = '\0';
    qr_log_set(on_log, NULL, QR_LOG_DEBUG);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    qr_log_set(NULL, NULL, QR_LOG_ERROR);
    qr_set_allocator(NULL);
    if (alloc_live != 0) {
        print_error("%zu allocations outstanding\n", alloc_live);
        return -1;
    }
    return 0;
}

/* ---- The wire format ---------------------------------------------------------------------- */

static void test_forward_round_trips(void **state)
{
    (void)state;
    uint8_t command[] = {1, 2, 3, 4, 5};
    uint8_t buf[QR__NODE_FORWARD_HEADER_SIZE + sizeof(command)];
    assert_int_equal(qr__node_forward_size(sizeof(command)), sizeof(buf));
    qr__node_forward_encode(0x1122334455667788ull, (struct qr_buf){command, sizeof(command)}, buf);
    struct qr__node_forward fw;
    assert_int_equal(qr__node_forward_decode((struct qr_buf){buf, sizeof(buf)}, &fw, NULL), 0);
    assert_true(fw.request_id == 0x1122334455667788ull);
    assert_int_equal(fw.command.len, sizeof(command));
    assert_memory_equal(fw.command.base, command, sizeof(command));
    /* An empty command is allowed. */
    uint8_t empty[QR__NODE_FORWARD_HEADER_SIZE];
    qr__node_forward_encode(7, (struct qr_buf){NULL, 0}, empty);
    assert_int_equal(qr__node_forward_decode((struct qr_buf){empty, sizeof(empty)}, &fw, NULL), 0);
    assert_int_equal(fw.command.len, 0);
    assert_null(fw.command.base);

    struct qr__node_forward_ack ack = {.request_id = 9, .status = 0, .index = 12, .term = 3};
    uint8_t abuf[QR__NODE_FORWARD_ACK_SIZE];
    qr__node_forward_ack_encode(&ack, abuf);
    struct qr__node_forward_ack out;
    assert_int_equal(qr__node_forward_ack_decode((struct qr_buf){abuf, sizeof(abuf)}, &out, NULL),
                     0);
    assert_true(out.request_id == 9 && out.status == 0 && out.index == 12 && out.term == 3);
    ack = (struct qr__node_forward_ack){.request_id = 10, .status = QR_EBUSY};
    qr__node_forward_ack_encode(&ack, abuf);
    assert_int_equal(qr__node_forward_ack_decode((struct qr_buf){abuf, sizeof(abuf)}, &out, NULL),
                     0);
    assert_int_equal(out.status, QR_EBUSY);
}

static void test_forward_decoders_refuse_hostile_bodies(void **state)
{
    (void)state;
    char errmsg[QR_ERRMSG_SIZE];
    uint8_t buf[QR__NODE_FORWARD_HEADER_SIZE + 4];
    uint8_t cmd[4] = {9, 9, 9, 9};
    struct qr__node_forward fw;
    qr__node_forward_encode(1, (struct qr_buf){cmd, 4}, buf);
    assert_int_equal(qr__node_forward_decode((struct qr_buf){buf, 23}, &fw, errmsg), QR_EPROTO);
    assert_string_equal(errmsg, "forward: body of 23 bytes, at least 24 expected");
    assert_int_equal(qr__node_forward_decode((struct qr_buf){buf, 27}, &fw, errmsg), QR_EPROTO);
    assert_string_equal(errmsg, "forward: command of 4 bytes in a body of 27");
    buf[0] = 2;
    assert_int_equal(qr__node_forward_decode((struct qr_buf){buf, 28}, &fw, errmsg), QR_EVERSION);
    buf[0] = 1;
    buf[21] = 1;
    assert_int_equal(qr__node_forward_decode((struct qr_buf){buf, 28}, &fw, errmsg), QR_EPROTO);
    assert_string_equal(errmsg, "forward: reserved bytes not zero");

    struct qr__node_forward_ack ack = {.request_id = 1, .status = 0, .index = 5, .term = 2};
    uint8_t abuf[QR__NODE_FORWARD_ACK_SIZE];
    struct qr__node_forward_ack out;
    qr__node_forward_ack_encode(&ack, abuf);
    assert_int_equal(qr__node_forward_ack_decode((struct qr_buf){abuf, 31}, &out, errmsg),
                     QR_EPROTO);
    abuf[4] = 200; /* Not an error code of the table. */
    assert_int_equal(qr__node_forward_ack_decode((struct qr_buf){abuf, 32}, &out, errmsg),
                     QR_EPROTO);
    assert_string_equal(errmsg, "forward ack: unknown status 200");
    abuf[4] = 0;
    memset(abuf + 16, 0, 16); /* Success without an index. */
    assert_int_equal(qr__node_forward_ack_decode((struct qr_buf){abuf, 32}, &out, errmsg),
                     QR_EPROTO);
    assert_string_equal(errmsg, "forward ack: success without an index and term");
    abuf[2] = 1;
    assert_int_equal(qr__node_forward_ack_decode((struct qr_buf){abuf, 32}, &out, errmsg),
                     QR_EPROTO);
}

static void test_address_resolve_accepts_and_refuses(void **state)
{
    (void)state;
    struct sockaddr_storage addr;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr__address_resolve("127.0.0.1:7001", &addr, errmsg), 0);
    assert_int_equal(addr.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&addr)->sin_port), 7001);
    assert_int_equal(qr__address_resolve("[::1]:7002", &addr, errmsg), 0);
    assert_int_equal(addr.ss_family, AF_INET6);
    assert_int_equal(qr__address_resolve("localhost:7003", &addr, errmsg), 0);
    const char *bad[] = {"",
                         "7001",
                         ":7001",
                         "127.0.0.1:",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:7a",
                         "127.0.0.1:-1",
                         "[]:7001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(qr__address_resolve(bad[i], &addr, errmsg), QR_EINVAL);
        assert_non_null(strstr(errmsg, "address"));
    }
    assert_int_equal(qr__address_resolve(NULL, &addr, errmsg), QR_EINVAL);
}

/* ---- A state machine ----------------------------------------------------------------------- */

/* A counter: commands are 8-byte little-endian deltas, results the new value. */
struct tfsm {
    uint64_t value;
    uint64_t restored_count;
    uint64_t large_count; /* Commands that are not 8 bytes long ... */
    uint64_t large_hash;  /* ... and the FNV-1a hash of their bytes, in order. */
};

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static int tfsm_apply(void *ctx, qr_index index, struct qr_buf command, struct qr_buf *result)
{
    (void)index;
    struct tfsm *f = ctx;
    if (command.len == 8) {
        f->value += get_u64(command.base);
    } else if (command.len > 0) {
        f->large_hash =
            fnv1a(f->large_count == 0 ? FNV_OFFSET : f->large_hash, command.base, command.len);
        f->large_count++;
    }
    if (result == NULL) {
        return 0; /* Nobody on this node waits for the answer. */
    }
    result->base = malloc(8);
    if (result->base != NULL) {
        put_u64(result->base, f->value);
        result->len = 8;
    }
    return 0;
}

static int tfsm_snapshot(void *ctx, struct qr_buf *data)
{
    struct tfsm *f = ctx;
    data->base = malloc(8);
    if (data->base == NULL) {
        return QR_ENOMEM;
    }
    put_u64(data->base, f->value);
    data->len = 8;
    return 0;
}

static int tfsm_restore(void *ctx, struct qr_buf data)
{
    struct tfsm *f = ctx;
    if (data.len != 8) {
        return QR_ECORRUPT;
    }
    f->value = get_u64(data.base);
    f->restored_count++;
    return 0;
}

static void tfsm_release(void *ctx, struct qr_buf buf)
{
    (void)ctx;
    free(buf.base);
}

/* ---- A cluster on one loop ------------------------------------------------------------------ */

struct tcluster {
    uv_loop_t loop;
    size_t count;
    char root[64];
    char dirs[NODES_MAX][96];
    char addrs[NODES_MAX][32];
    struct qr_node_peer peers[NODES_MAX];
    struct qr_node *nodes[NODES_MAX];
    struct tfsm fsms[NODES_MAX];
    size_t closed_count;
    uint64_t snapshot_entries;
    uint32_t request_timeout_ms;    /* 0: 3000. */
    uint32_t election_ticks;        /* 0: the default. */
    const struct qr_storage_fs *fs; /* NULL: POSIX. */
    int fatal_count;
    int fatal_err;
};

static void on_fatal(void *ctx, int err, const char *errmsg)
{
    (void)errmsg;
    struct tcluster *c = ctx;
    c->fatal_count++;
    c->fatal_err = err;
}

static void free_ports(uint16_t *ports, size_t count)
{
    int fds[NODES_MAX];
    for (size_t i = 0; i < count; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
        socklen_t len = sizeof(a);
        assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
        ports[i] = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < count; i++) {
        close(fds[i]);
    }
}

static void cluster_init(struct tcluster *c, size_t count, uint64_t snapshot_entries)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    c->count = count;
    c->snapshot_entries = snapshot_entries;
    snprintf(c->root, sizeof(c->root), "/tmp/qr-test-node-XXXXXX");
    assert_non_null(mkdtemp(c->root));
    uint16_t ports[NODES_MAX];
    free_ports(ports, count);
    for (size_t i = 0; i < count; i++) {
        snprintf(c->dirs[i], sizeof(c->dirs[i]), "%s/n%zu", c->root, i + 1);
        snprintf(c->addrs[i], sizeof(c->addrs[i]), "127.0.0.1:%u", ports[i]);
        c->peers[i].id = i + 1;
        c->peers[i].address = c->addrs[i];
        c->peers[i].client_address = c->addrs[i];
    }
}

static int node_open(struct tcluster *c, size_t i, const char *secret)
{
    struct qr_node_opts o;
    qr_node_opts_default(&o);
    o.id = i + 1;
    o.cluster_id = TEST_CLUSTER_ID;
    o.data_dir = c->dirs[i];
    o.peers = c->peers;
    o.peers_count = c->count;
    o.secret = (const uint8_t *)secret;
    o.secret_size = strlen(secret);
    o.sync = QR_STORAGE_SYNC_NONE;
    o.election_ticks = c->election_ticks;
    o.tick_ms = 20;
    o.snapshot_entries = c->snapshot_entries;
    o.snapshot_trailing = 2;
    o.request_timeout_ms = c->request_timeout_ms != 0 ? c->request_timeout_ms : 3000;
    o.storage_fs = c->fs;
    o.fatal_cb = on_fatal;
    o.fatal_ctx = c;
    memset(&c->fsms[i], 0, sizeof(c->fsms[i]));
    struct qr_fsm fsm = {&c->fsms[i], tfsm_apply, tfsm_snapshot, tfsm_restore, tfsm_release};
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_node_create(&c->loop, &o, &fsm, &c->nodes[i], errmsg);
    if (rv == 0) {
        rv = qr_node_start(c->nodes[i], errmsg);
    }
    if (rv != 0) {
        print_error("node %zu: %s\n", i + 1, errmsg);
    }
    return rv;
}

static void cluster_open(struct tcluster *c)
{
    for (size_t i = 0; i < c->count; i++) {
        assert_int_equal(node_open(c, i, secret_text), 0);
    }
}

static void on_closed(void *ctx)
{
    struct tcluster *c = ctx;
    c->closed_count++;
}

static void cluster_close_nodes(struct tcluster *c)
{
    size_t want = c->closed_count;
    for (size_t i = 0; i < c->count; i++) {
        if (c->nodes[i] != NULL) {
            qr_node_close(c->nodes[i], on_closed, c);
            c->nodes[i] = NULL;
            want++;
        }
    }
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c->closed_count, want);
}

static void remove_tree(const char *root)
{
    DIR *d = opendir(root);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
        if (unlink(path) != 0) {
            remove_tree(path); /* A node's directory: one level deep at most. */
        }
    }
    closedir(d);
    rmdir(root);
}

static void cluster_destroy(struct tcluster *c)
{
    cluster_close_nodes(c);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    remove_tree(c->root);
}

/* Run the loop until pred holds or WAIT_MS passes. */
struct waiter {
    struct tcluster *c;
    bool (*pred)(struct tcluster *c);
    uint64_t deadline;
};

static void on_poll(uv_timer_t *t)
{
    struct waiter *w = t->data;
    if (w->pred(w->c) || uv_now(t->loop) >= w->deadline) {
        uv_stop(t->loop);
    }
}

static bool run_until(struct tcluster *c, bool (*pred)(struct tcluster *c))
{
    uv_timer_t t;
    uv_update_time(&c->loop); /* Opening nodes blocks: the loop's clock may be stale. */
    struct waiter w = {c, pred, uv_now(&c->loop) + WAIT_MS};
    assert_int_equal(uv_timer_init(&c->loop, &t), 0);
    t.data = &w;
    assert_int_equal(uv_timer_start(&t, on_poll, POLL_MS, POLL_MS), 0);
    (void)uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(&c->loop, UV_RUN_NOWAIT); /* Lets the timer's close complete. */
    return pred(c);
}

/* The index of the node all others follow, or -1. */
static int leader_of(struct tcluster *c)
{
    qr_node_id leader = 0;
    for (size_t i = 0; i < c->count; i++) {
        if (c->nodes[i] == NULL) {
            continue;
        }
        struct qr_node_status st;
        qr_node_status(c->nodes[i], &st);
        if (st.leader == 0 || (leader != 0 && st.leader != leader)) {
            return -1;
        }
        leader = st.leader;
    }
    struct qr_node_status st;
    qr_node_status(c->nodes[leader - 1], &st);
    return st.role == QR_ROLE_LEADER ? (int)leader - 1 : -1;
}

static bool has_leader(struct tcluster *c)
{
    return leader_of(c) >= 0;
}

/* ---- Requests ------------------------------------------------------------------------------- */

struct outcome {
    int calls;
    int status;
    uint64_t result;
    bool has_result;
};

static void on_proposed(void *ctx, int status, struct qr_buf result)
{
    struct outcome *o = ctx;
    o->calls++;
    o->status = status;
    o->has_result = result.len == 8;
    o->result = o->has_result ? get_u64(result.base) : 0;
}

static void on_read(void *ctx, int status)
{
    struct outcome *o = ctx;
    o->calls++;
    o->status = status;
}

static struct outcome *waiting_outcome;
static bool outcome_done(struct tcluster *c)
{
    (void)c;
    return waiting_outcome->calls > 0;
}

static int propose_and_wait(struct tcluster *c, size_t i, uint64_t delta, struct outcome *o)
{
    uint8_t cmd[8];
    put_u64(cmd, delta);
    memset(o, 0, sizeof(*o));
    int rv = qr_node_propose(c->nodes[i], (struct qr_buf){cmd, 8}, on_proposed, o);
    if (rv != 0) {
        return rv;
    }
    waiting_outcome = o;
    assert_true(run_until(c, outcome_done));
    assert_int_equal(o->calls, 1);
    return 0;
}

/* ---- Cluster tests --------------------------------------------------------------------------- */

static void test_cluster_proposes_forwards_and_reads(void **state)
{
    (void)state;
    struct tcluster c;
    cluster_init(&c, 3, 1000);
    cluster_open(&c);
    assert_true(run_until(&c, has_leader));
    int leader = leader_of(&c);
    size_t follower = (size_t)(leader + 1) % 3;

    struct outcome o;
    assert_int_equal(propose_and_wait(&c, (size_t)leader, 5, &o), 0);
    assert_int_equal(o.status, 0);
    assert_true(o.has_result && o.result == 5);
    /* Forwarded: the result is the follower's own, after it applied the entry itself. */
    assert_int_equal(propose_and_wait(&c, follower, 2, &o), 0);
    assert_int_equal(o.status, 0);
    assert_true(o.has_result && o.result == 7);
    assert_true(c.fsms[follower].value == 7);

    struct outcome r = {0};
    size_t other = (size_t)(leader + 2) % 3;
    assert_int_equal(qr_node_read(c.nodes[other], on_read, &r), 0);
    waiting_outcome = &r;
    assert_true(run_until(&c, outcome_done));
    assert_int_equal(r.status, 0);
    assert_true(c.fsms[other].value == 7); /* Linearizable: sees every write before it. */

    struct qr_node_status st;
    qr_node_status(c.nodes[leader], &st);
    assert_int_equal(st.role, QR_ROLE_LEADER);
    assert_int_equal(st.peers_count, 2);
    assert_true(st.peers[0].is_connected && st.peers[1].is_connected);
    assert_true(st.peers[0].has_progress && st.peers[0].match >= 3);
    assert_string_equal(st.leader_address, c.addrs[leader]);
    assert_int_equal(st.fatal_err, 0);

    /* The callback contract on close: a pending proposal completes with QR_ECANCELED. */
    uint8_t cmd[8];
    put_u64(cmd, 1);
    struct outcome pending = {0};
    assert_int_equal(
        qr_node_propose(c.nodes[leader], (struct qr_buf){cmd, 8}, on_proposed, &pending), 0);
    assert_int_equal(pending.calls, 0); /* Never from inside the call. */
    cluster_destroy(&c);
    assert_int_equal(pending.calls, 1);
    assert_int_equal(pending.status, QR_ECANCELED);
    assert_true(log_has("connected to peer"));
}

#define LARGE_ENTRIES 3
#define LARGE_SIZE    ((size_t)5 << 20) /* More than loopback's largest socket buffer. */

static struct outcome *large_outcomes;
static bool large_outcomes_done(struct tcluster *c)
{
    (void)c;
    for (size_t e = 0; e < LARGE_ENTRIES; e++) {
        if (large_outcomes[e].calls == 0) {
            return false;
        }
    }
    return true;
}

static bool all_applied_large(struct tcluster *c)
{
    for (size_t i = 0; i < c->count; i++) {
        if (c->fsms[i].large_count != LARGE_ENTRIES) {
            return false;
        }
    }
    return true;
}

/* Messages bigger than the socket buffers: the socket takes the first part at once and
 * the rest goes through uv_write (node_peer.c, conn_write); every replica applies the
 * same bytes in the same order. */
static void test_cluster_replicates_entries_larger_than_socket_buffers(void **state)
{
    (void)state;
    struct tcluster c;
    cluster_init(&c, 3, 1000);
    /* 5 MiB messages through sanitizers can stall a loop longer than an election timeout
     * of 20 ms ticks, and a new leader leaves the outcome of a proposal unknown. */
    c.request_timeout_ms = 120000;
    c.election_ticks = 250;
    cluster_open(&c);
    assert_true(run_until(&c, has_leader));
    int leader = leader_of(&c);
    uint8_t *data = malloc(LARGE_SIZE);
    assert_non_null(data);
    uint64_t want = FNV_OFFSET;
    uint64_t x = 88172645463325252ULL;
    struct outcome o[LARGE_ENTRIES];
    for (size_t e = 0; e < LARGE_ENTRIES; e++) {
        for (size_t i = 0; i < LARGE_SIZE; i++) {
            x ^= x << 13; /* xorshift64: bytes that no two entries share by accident. */
            x ^= x >> 7;
            x ^= x << 17;
            data[i] = (uint8_t)x;
        }
        want = fnv1a(want, data, LARGE_SIZE);
        memset(&o[e], 0, sizeof(o[e]));
        /* The node copies the command: the buffer is reused for the next one. */
        assert_int_equal(
            qr_node_propose(c.nodes[leader], (struct qr_buf){data, LARGE_SIZE}, on_proposed, &o[e]),
            0);
    }
    free(data);
    assert_true(run_until(&c, all_applied_large));
    for (size_t i = 0; i < c.count; i++) {
        assert_true(c.fsms[i].large_hash == want);
    }
    large_outcomes = o;
    assert_true(run_until(&c, large_outcomes_done));
    for (size_t e = 0; e < LARGE_ENTRIES; e++) {
        assert_int_equal(o[e].calls, 1);
        assert_int_equal(o[e].status, 0);
    }
    /* Larger than the core's entry limit: refused, and no node stops (storage would have
     * refused it when persisting, stopping every node that tried). */
    size_t too_big = ((size_t)8 << 20) + 1;
    uint8_t *huge = calloc(1, too_big);
    assert_non_null(huge);
    struct outcome refused = {0};
    int rv =
        qr_node_propose(c.nodes[leader], (struct qr_buf){huge, too_big}, on_proposed, &refused);
    free(huge);
    if (rv == 0) {
        waiting_outcome = &refused;
        assert_true(run_until(&c, outcome_done));
        rv = refused.status;
    }
    assert_int_equal(rv, QR_ETOOBIG);
    struct outcome o2;
    assert_int_equal(propose_and_wait(&c, (size_t)leader, 3, &o2), 0);
    assert_int_equal(o2.status, 0);
    for (size_t i = 0; i < c.count; i++) {
        struct qr_node_status st;
        qr_node_status(c.nodes[i], &st);
        assert_int_equal(st.fatal_err, 0);
    }
    struct qr_node_status st;
    qr_node_status(c.nodes[leader], &st);
    assert_true(st.peers[0].is_connected && st.peers[1].is_connected);
    cluster_destroy(&c);
}

static bool all_applied_ten(struct tcluster *c)
{
    for (size_t i = 0; i < c->count; i++) {
        if (c->fsms[i].value != 10) {
            return false;
        }
    }
    return true;
}

static void test_cluster_restarts_from_disk_through_a_snapshot(void **state)
{
    (void)state;
    struct tcluster c;
    cluster_init(&c, 3, 4); /* A snapshot every 4 entries. */
    cluster_open(&c);
    assert_true(run_until(&c, has_leader));
    for (int i = 0; i < 10; i++) {
        struct outcome o;
        assert_int_equal(propose_and_wait(&c, (size_t)leader_of(&c), 1, &o), 0);
        assert_int_equal(o.status, 0);
    }
    assert_true(run_until(&c, all_applied_ten));
    assert_true(log_has("snapshot index="));
    cluster_close_nodes(&c);

    /* Everything comes back from the data directories: snapshot plus log tail. */
    cluster_open(&c);
    for (size_t i = 0; i < c.count; i++) {
        assert_true(c.fsms[i].restored_count == 1);
    }
    assert_true(run_until(&c, has_leader));
    assert_true(run_until(&c, all_applied_ten));
    cluster_destroy(&c);
}

static bool first_two_connected(struct tcluster *c)
{
    struct qr_node_status st;
    qr_node_status(c->nodes[0], &st);
    return st.peers_count > 0 && st.peers[0].is_connected;
}

static bool refusal_logged(struct tcluster *c)
{
    (void)c;
    return log_has("refused a connection");
}

static void test_handshake_refuses_a_wrong_secret(void **state)
{
    (void)state;
    struct tcluster c;
    cluster_init(&c, 2, 1000);
    assert_int_equal(node_open(&c, 0, secret_text), 0);
    assert_int_equal(node_open(&c, 1, "another-secret-of-the-wrong-cluster"), 0);
    assert_true(run_until(&c, refusal_logged));
    assert_false(first_two_connected(&c));
    assert_true(log_has("WARN node: node="));
    cluster_destroy(&c);
}

static void test_single_node_leads_snapshots_and_refuses_misuse(void **state)
{
    (void)state;
    struct tcluster c;
    cluster_init(&c, 1, 1000);
    cluster_open(&c);
    uint8_t cmd[8] = {1};
    struct outcome o = {0};
    /* Not elected yet: refused at once, and the callback never runs. */
    assert_int_equal(qr_node_propose(c.nodes[0], (struct qr_buf){cmd, 8}, on_proposed, &o),
                     QR_ENOTLEADER);
    assert_true(run_until(&c, has_leader));
    assert_int_equal(o.calls, 0);
    assert_int_equal(propose_and_wait(&c, 0, 3, &o), 0);
    assert_true(o.status == 0 && o.result == 3);
    assert_int_equal(qr_node_snapshot_now(c.nodes[0]), 0);
    assert_int_equal(qr_node_transfer_leader(c.nodes[0], 1), QR_EINVAL);
    char errmsg[QR_ERRMSG_SIZE];
    struct qr_node_peer bad = {.id = 0, .address = "127.0.0.1:1"};
    assert_int_equal(qr_node_add_peer(c.nodes[0], &bad, errmsg), QR_EINVAL);
    cluster_destroy(&c);
}

static void test_create_refuses_bad_options(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct tfsm f = {0};
    struct qr_fsm fsm = {&f, tfsm_apply, tfsm_snapshot, tfsm_restore, tfsm_release};
    struct qr_node_peer peers[2] = {{1, "127.0.0.1:7001", NULL}, {2, "127.0.0.1:7002", NULL}};
    struct qr_node_opts o;
    qr_node_opts_default(&o);
    o.id = 3; /* Not among the peers. */
    o.cluster_id = 1;
    o.data_dir = "/nonexistent/qr-test";
    o.peers = peers;
    o.peers_count = 2;
    o.secret = (const uint8_t *)secret_text;
    o.secret_size = strlen(secret_text);
    struct qr_node *node = NULL;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_node_create(&loop, &o, &fsm, &node, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "not among the peers"));
    o.id = 1;
    o.secret_size = 8;
    assert_int_equal(qr_node_create(&loop, &o, &fsm, &node, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "secret of 8 bytes"));
    o.secret_size = strlen(secret_text);
    peers[1].id = 1;
    assert_int_equal(qr_node_create(&loop, &o, &fsm, &node, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "repeated"));
    peers[1].id = 2;
    peers[1].address = "nowhere";
    assert_int_equal(qr_node_create(&loop, &o, &fsm, &node, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "peer 2"));
    peers[1].address = "127.0.0.1:7002";
    assert_true(qr_node_create(&loop, &o, &fsm, &node, errmsg) < 0); /* No such directory. */
    assert_null(node);
    fsm.restore = NULL;
    assert_int_equal(qr_node_create(&loop, &o, &fsm, &node, errmsg), QR_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- Storage failures ------------------------------------------------------------------------ */

/* The error every file write returns (0: none); set on the loop's thread, read on the
 * worker's. */
static atomic_int fault_write_err;

static int fault_file_write(void *ctx, int fd, const void *buf, size_t size, uint64_t offset)
{
    (void)ctx;
    int err = atomic_load(&fault_write_err);
    if (err != 0) {
        return err;
    }
    const struct qr_storage_fs *posix = qr_storage_fs_posix();
    return posix->file_write(posix->ctx, fd, buf, size, offset);
}

static bool is_read_only(struct tcluster *c)
{
    struct qr_node_status st;
    qr_node_status(c->nodes[0], &st);
    return st.is_read_only;
}

static bool is_fatal(struct tcluster *c)
{
    return c->fatal_count > 0;
}

static void test_disk_full_waits_and_a_write_error_stops_the_node(void **state)
{
    (void)state;
    struct qr_storage_fs fs = *qr_storage_fs_posix();
    fs.file_write = fault_file_write;
    atomic_store(&fault_write_err, 0);
    struct tcluster c;
    cluster_init(&c, 1, 1000);
    c.fs = &fs;
    cluster_open(&c);
    assert_true(run_until(&c, has_leader));
    struct outcome o;
    assert_int_equal(propose_and_wait(&c, 0, 1, &o), 0);
    assert_true(o.status == 0 && o.result == 1);

    /* Disk full: nothing becomes durable, so nothing is acknowledged, until space returns. */
    atomic_store(&fault_write_err, -ENOSPC);
    uint8_t cmd[8];
    put_u64(cmd, 2);
    memset(&o, 0, sizeof(o));
    assert_int_equal(qr_node_propose(c.nodes[0], (struct qr_buf){cmd, 8}, on_proposed, &o), 0);
    assert_true(run_until(&c, is_read_only));
    assert_int_equal(o.calls, 0);
    assert_true(log_has("WARN node: node=1 disk full"));
    atomic_store(&fault_write_err, 0);
    waiting_outcome = &o;
    assert_true(run_until(&c, outcome_done));
    assert_true(o.status == 0 && o.result == 3);
    assert_false(is_read_only(&c));

    /* Any other write error stops the node: pending requests fail, new ones are refused. */
    atomic_store(&fault_write_err, -EIO);
    memset(&o, 0, sizeof(o));
    assert_int_equal(qr_node_propose(c.nodes[0], (struct qr_buf){cmd, 8}, on_proposed, &o), 0);
    assert_true(run_until(&c, is_fatal));
    waiting_outcome = &o;
    assert_true(run_until(&c, outcome_done));
    assert_int_equal(o.status, QR_EFATAL);
    assert_int_equal(c.fatal_count, 1);
    assert_int_equal(c.fatal_err, QR_EIO);
    assert_int_equal(qr_node_propose(c.nodes[0], (struct qr_buf){cmd, 8}, on_proposed, &o),
                     QR_EFATAL);
    struct qr_node_status st;
    qr_node_status(c.nodes[0], &st);
    assert_int_equal(st.fatal_err, QR_EIO);
    assert_non_null(strstr(st.fatal_msg, "storage"));
    assert_true(log_has("ERROR node: node=1 term="));
    atomic_store(&fault_write_err, 0);
    cluster_destroy(&c);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_forward_round_trips),
        TEST(test_forward_decoders_refuse_hostile_bodies),
        TEST(test_address_resolve_accepts_and_refuses),
        TEST(test_create_refuses_bad_options),
        TEST(test_single_node_leads_snapshots_and_refuses_misuse),
        TEST(test_cluster_proposes_forwards_and_reads),
        TEST(test_cluster_restarts_from_disk_through_a_snapshot),
        TEST(test_cluster_replicates_entries_larger_than_socket_buffers),
        TEST(test_handshake_refuses_a_wrong_secret),
        TEST(test_disk_full_waits_and_a_write_error_stops_the_node),
    };
    return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
