/*
 * examples/counter.c: a replicated counter, the smallest program built on quorum/node.h.
 *
 * Start one process per member, each with the same --peers list:
 *
 *   counter --id 1 --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 --data /tmp/c1
 *
 * Every process tries to add 1 to the counter once per interval (a follower forwards the
 * command to the leader) and prints one status line per interval on stdout:
 *
 *   counter id=1 role=leader term=2 leader=1 value=17 applied=19 commit=19
 *
 * value is the counter as this process's state machine holds it after applying entry
 * `applied`: two processes that report the same applied index report the same value.
 * SIGINT or SIGTERM closes the node gracefully. Log lines of the library go to stderr.
 *
 * Uses only the public headers; the state machine keeps its two snapshot buffers itself,
 * which shows the fsm's release callback at work.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "quorum.h"
#include "quorum/node.h"

#define COUNTER_PEERS_MAX       16
#define COUNTER_DEFAULT_CLUSTER 7
#define COUNTER_SECRET_DEFAULT  "counter-example-cluster-secret"
#define EXIT_USAGE              2

/* ---- The state machine -------------------------------------------------------------- */

struct counter {
    uint64_t value;          /* Sum of every delta applied. */
    uint8_t snapshots[2][8]; /* Snapshot buffers lent to the node. */
    bool snapshot_in_use[2]; /* Lent and not yet released. */
};

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

static int counter_apply(void *ctx, qr_index index, struct qr_buf command, struct qr_buf *result)
{
    (void)index;
    (void)result; /* The proposer reads the counter itself. */
    struct counter *c = ctx;
    if (command.len == 8) { /* Anything else is ignored, the same way on every replica. */
        c->value += get_u64(command.base);
    }
    return 0;
}

static int counter_snapshot(void *ctx, struct qr_buf *data_out)
{
    struct counter *c = ctx;
    for (int i = 0; i < 2; i++) {
        if (!c->snapshot_in_use[i]) {
            c->snapshot_in_use[i] = true;
            put_u64(c->snapshots[i], c->value);
            data_out->base = c->snapshots[i];
            data_out->len = 8;
            return 0;
        }
    }
    return QR_EBUSY; /* Both lent: the node tries again later. */
}

static int counter_restore(void *ctx, struct qr_buf data)
{
    struct counter *c = ctx;
    if (data.len != 8) {
        return QR_ECORRUPT;
    }
    c->value = get_u64(data.base);
    return 0;
}

static void counter_release(void *ctx, struct qr_buf buf)
{
    struct counter *c = ctx;
    for (int i = 0; i < 2; i++) {
        if (buf.base == c->snapshots[i]) {
            c->snapshot_in_use[i] = false;
        }
    }
}

/* ---- The program --------------------------------------------------------------------- */

struct app {
    uv_loop_t *loop;
    struct qr_node *node;
    struct counter counter;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    uint64_t interval_ms;
    bool is_proposing; /* One increment in flight at a time. */
    bool is_closing;
    int exit_code;
};

static void on_log(void *ctx, enum qr_log_level level, const char *line)
{
    (void)ctx;
    struct timespec ts;
    struct tm tm;
    char stamp[32] = "";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && localtime_r(&ts.tv_sec, &tm) != NULL) {
        (void)strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    }
    (void)fprintf(stderr, "%s.%03ld %s %s\n", stamp, ts.tv_nsec / 1000000, qr_log_level_name(level),
                  line);
}

static void on_increment(void *ctx, int status, struct qr_buf result)
{
    (void)result;
    struct app *app = ctx;
    app->is_proposing = false;
    if (status != 0 && status != QR_ECANCELED) {
        (void)fprintf(stderr, "counter: increment failed: %s\n", qr_strerror(status));
    }
}

static void print_status(struct app *app)
{
    struct qr_node_status st;
    qr_node_status(app->node, &st);
    (void)printf("counter id=%llu role=%s term=%llu leader=%llu value=%llu applied=%llu "
                 "commit=%llu\n",
                 (unsigned long long)st.id, qr_role_name(st.role), (unsigned long long)st.term,
                 (unsigned long long)st.leader, (unsigned long long)app->counter.value,
                 (unsigned long long)st.applied, (unsigned long long)st.commit);
}

static void on_timer(uv_timer_t *timer)
{
    struct app *app = timer->data;
    print_status(app);
    if (app->is_proposing) {
        return;
    }
    uint8_t delta[8];
    put_u64(delta, 1);
    int rv = qr_node_propose(app->node, (struct qr_buf){delta, sizeof(delta)}, on_increment, app);
    app->is_proposing = rv == 0;
    /* QR_ENOTLEADER while there is no leader yet: simply try at the next tick. */
}

static void on_node_closed(void *ctx)
{
    struct app *app = ctx;
    app->node = NULL;
}

static void on_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void app_close(struct app *app)
{
    if (app->is_closing) {
        return;
    }
    app->is_closing = true;
    print_status(app);
    uv_close((uv_handle_t *)&app->timer, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigterm, on_handle_closed);
    qr_node_close(app->node, on_node_closed, app);
}

static void on_signal(uv_signal_t *signal, int signum)
{
    (void)signum;
    app_close(signal->data);
}

static void on_fatal(void *ctx, int err, const char *errmsg)
{
    struct app *app = ctx;
    (void)fprintf(stderr, "counter: node stopped: %s (%s)\n", errmsg, qr_err_name(err));
    app->exit_code = 1;
    app_close(app);
}

/* ---- Flags ----------------------------------------------------------------------------- */

struct flags {
    uint64_t id;
    uint64_t cluster_id;
    const char *data_dir;
    const char *listen;
    const char *secret;
    uint64_t interval_ms;
    uint64_t snapshot_entries;
    uint64_t snapshot_trailing;
    bool sync_none;
    bool verbose;
    struct qr_node_peer peers[COUNTER_PEERS_MAX];
    size_t peers_count;
    char peers_text[4096];
};

static void usage(FILE *out)
{
    (void)fprintf(out,
                  "usage: counter --id N --peers ID=HOST:PORT,... --data DIR [options]\n"
                  "  --listen HOST:PORT        listen here (default: this node's peer address)\n"
                  "  --cluster N               cluster id (default %d)\n"
                  "  --secret TEXT             cluster secret, 16 bytes or more\n"
                  "  --interval-ms N           increment and print every N ms (default 1000)\n"
                  "  --snapshot-entries N      snapshot every N entries (default 10000)\n"
                  "  --snapshot-trailing N     entries kept behind a snapshot (default 1000)\n"
                  "  --sync none               skip fdatasync (tests only: unsafe)\n"
                  "  --verbose                 log at DEBUG instead of INFO\n",
                  COUNTER_DEFAULT_CLUSTER);
}

static int parse_number(const char *text, uint64_t *out)
{
    if (text == NULL || text[0] < '0' || text[0] > '9') {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

/* "1=host:port,2=host:port": splits flags->peers_text in place. */
static int parse_peers(struct flags *f, const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof(f->peers_text)) {
        return -1;
    }
    memcpy(f->peers_text, text, len + 1);
    char *item = f->peers_text;
    while (item != NULL && f->peers_count < COUNTER_PEERS_MAX) {
        char *comma = strchr(item, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            return -1;
        }
        *eq = '\0';
        struct qr_node_peer *p = &f->peers[f->peers_count++];
        if (parse_number(item, &p->id) != 0 || p->id == 0) {
            return -1;
        }
        p->address = eq + 1;
        item = comma != NULL ? comma + 1 : NULL;
    }
    return item == NULL ? 0 : -1;
}

static int parse_flag(struct flags *f, const char *name, const char *value)
{
    if (strcmp(name, "--id") == 0) {
        return parse_number(value, &f->id);
    }
    if (strcmp(name, "--cluster") == 0) {
        return parse_number(value, &f->cluster_id);
    }
    if (strcmp(name, "--interval-ms") == 0) {
        return parse_number(value, &f->interval_ms);
    }
    if (strcmp(name, "--snapshot-entries") == 0) {
        return parse_number(value, &f->snapshot_entries);
    }
    if (strcmp(name, "--snapshot-trailing") == 0) {
        return parse_number(value, &f->snapshot_trailing);
    }
    if (strcmp(name, "--peers") == 0) {
        return parse_peers(f, value);
    }
    if (strcmp(name, "--sync") == 0) {
        f->sync_none = strcmp(value, "none") == 0;
        return f->sync_none || strcmp(value, "always") == 0 ? 0 : -1;
    }
    const char **text = strcmp(name, "--data") == 0     ? &f->data_dir
                        : strcmp(name, "--listen") == 0 ? &f->listen
                        : strcmp(name, "--secret") == 0 ? &f->secret
                                                        : NULL;
    if (text == NULL) {
        return -1;
    }
    *text = value;
    return 0;
}

static int parse_flags(struct flags *f, int argc, char **argv)
{
    memset(f, 0, sizeof(*f));
    f->cluster_id = COUNTER_DEFAULT_CLUSTER;
    f->secret = COUNTER_SECRET_DEFAULT;
    f->interval_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verbose") == 0) {
            f->verbose = true;
            continue;
        }
        if (i + 1 >= argc || parse_flag(f, argv[i], argv[i + 1]) != 0) {
            (void)fprintf(stderr, "counter: bad or incomplete flag %s\n", argv[i]);
            return -1;
        }
        i++;
    }
    if (f->id == 0 || f->peers_count == 0 || f->data_dir == NULL || f->interval_ms == 0) {
        (void)fprintf(stderr, "counter: --id, --peers and --data are required\n");
        return -1;
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------------- */

static int app_start(struct app *app, const struct flags *f)
{
    struct qr_node_opts opts;
    qr_node_opts_default(&opts);
    opts.id = f->id;
    opts.cluster_id = f->cluster_id;
    opts.data_dir = f->data_dir;
    opts.listen_address = f->listen;
    opts.peers = f->peers;
    opts.peers_count = f->peers_count;
    opts.secret = (const uint8_t *)f->secret;
    opts.secret_size = strlen(f->secret);
    opts.sync = f->sync_none ? QR_STORAGE_SYNC_NONE : QR_STORAGE_SYNC_ALWAYS;
    opts.snapshot_entries = f->snapshot_entries;
    opts.snapshot_trailing = f->snapshot_trailing;
    opts.fatal_cb = on_fatal;
    opts.fatal_ctx = app;
    struct qr_fsm fsm = {&app->counter, counter_apply, counter_snapshot, counter_restore,
                         counter_release};
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_node_create(app->loop, &opts, &fsm, &app->node, errmsg);
    if (rv == 0) {
        rv = qr_node_start(app->node, errmsg);
    }
    if (rv != 0) {
        (void)fprintf(stderr, "counter: %s (%s)\n", errmsg, qr_err_name(rv));
    }
    return rv;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    }
    struct flags f;
    if (parse_flags(&f, argc, argv) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    (void)setvbuf(stdout, NULL, _IOLBF, 0); /* One status line at a time for readers. */
    qr_log_set(on_log, NULL, f.verbose ? QR_LOG_DEBUG : QR_LOG_INFO);
    static struct app app;
    app.loop = uv_default_loop();
    app.interval_ms = f.interval_ms;
    if (app_start(&app, &f) != 0) {
        if (app.node != NULL) {
            qr_node_close(app.node, on_node_closed, &app);
            (void)uv_run(app.loop, UV_RUN_DEFAULT);
        }
        return 1;
    }
    /* These fail only for invalid arguments (a NULL callback, an unknown signal). */
    (void)uv_timer_init(app.loop, &app.timer);
    (void)uv_signal_init(app.loop, &app.sigint);
    (void)uv_signal_init(app.loop, &app.sigterm);
    app.timer.data = &app;
    app.sigint.data = &app;
    app.sigterm.data = &app;
    (void)uv_timer_start(&app.timer, on_timer, app.interval_ms, app.interval_ms);
    (void)uv_signal_start(&app.sigint, on_signal, SIGINT);
    (void)uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    (void)uv_run(app.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(app.loop);
    return app.exit_code;
}
