/*
 * quorumd: the replicated key-value server. One process is one member of a cluster; any
 * Redis client talks to any member (see src/server/server.h for what it serves).
 *
 * This file is the program around the library: flags, the cluster secret, logging to
 * stderr, signals and an orderly shutdown (a leader hands leadership over first, so that
 * the cluster does not wait an election timeout). Exit status: 0 after a clean shutdown,
 * 1 when the node stopped on a fatal error, 2 when it could not start (bad flags, port in
 * use, data directory of another cluster ...), always with one line saying why.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "quorum.h"
#include "quorum/node.h"
#include "server/flags.h"
#include "server/kvfsm.h"
#include "server/server.h"
#include "util/address.h"
#include "util/err.h"
#include "util/log.h"
#include "util/parse.h"

#define EXIT_FATAL 1
#define EXIT_USAGE 2

#define SECRET_SIZE_MAX  256
#define SECRET_SIZE_MIN  16
#define SHUTDOWN_WAIT_MS 3000
#define SHUTDOWN_POLL_MS 50
#define LOG_HELD_SIZE    (64 * 1024)

static void usage(FILE *out)
{
    (void)fprintf(
        out,
        "usage: quorumd --id N --cluster ID=HOST:PORT,... --secret-file FILE [options]\n"
        "\n"
        "A member of a replicated key-value store that speaks the Redis protocol (RESP2).\n"
        "Start one per member; point redis-cli or any Redis client at any of them.\n"
        "\n"
        "cluster:\n"
        "  --id N                  this member's id (1 or more), one of --cluster's\n"
        "  --cluster LIST          initial members and their peer addresses,\n"
        "                          e.g. 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n"
        "  --join                  start empty and wait to be added (QUORUM.ADD on the\n"
        "                          leader); --cluster then names members to reach\n"
        "  --secret-file FILE      cluster secret shared by every member (16 to 256 bytes;\n"
        "                          e.g. head -c 32 /dev/urandom | base64 > FILE)\n"
        "  --secret TEXT           the secret on the command line (visible in ps: tests only)\n"
        "  --cluster-id N          cluster identity stored in the data directory (default:\n"
        "                          derived from the secret)\n"
        "\n"
        "clients:\n"
        "  --listen HOST:PORT      client address (default " QR_SERVER_FLAGS_LISTEN_DEFAULT ")\n"
        "  --advertise HOST:PORT   client address told to the other members (default --listen)\n"
        "  --requirepass PASS      clients must AUTH with this password\n"
        "  --maxclients N          connections at once (default %d)\n"
        "  --max-bulk-bytes N      largest argument of a request (default %zu)\n"
        "  --max-args N            most arguments of a request (default %zu)\n"
        "  --output-buffer-bytes N replies pending for one client before it is closed\n"
        "                          (default %zu)\n"
        "  --timeout SECONDS       close clients idle this long (default 0: never)\n"
        "  --request-timeout-ms N  writes and reads fail with -TIMEOUT after this (default\n"
        "                          5000)\n"
        "\n"
        "storage and consensus:\n"
        "  --data DIR              data directory (default ./quorumd-<id>)\n"
        "  --sync always|none      fdatasync before acknowledging (default always; none is\n"
        "                          UNSAFE: a power loss can lose acknowledged writes)\n"
        "  --tick-ms N             milliseconds per tick (default 100)\n"
        "  --election-ticks N      election timeout in ticks (default 10)\n"
        "  --snapshot-entries N    snapshot every N applied entries (default 10000)\n"
        "  --keys-max N            most keys in the store (default %u)\n"
        "\n"
        "other:\n"
        "  -v, --verbose           log more (twice: every message)\n"
        "  -q, --quiet             log warnings and errors only\n"
        "  -h, --help              this text\n"
        "  --version               print the version\n"
        "\n"
        "Logs go to stderr. SIGTERM or SIGINT stops the member cleanly (a leader hands over\n"
        "first); a second signal stops it at once. Exit status: 0 clean stop, 1 fatal error,\n"
        "2 could not start.\n",
        QR_SERVER_CLIENTS_MAX_DEFAULT, QR_SERVER_BULK_SIZE_MAX_DEFAULT,
        QR_SERVER_ARGS_COUNT_MAX_DEFAULT, QR_SERVER_REPLY_SIZE_MAX_DEFAULT,
        (unsigned)QR_KV_KEYS_MAX_DEFAULT);
}

/* ---- Logging -------------------------------------------------------------------------------- */

static uint64_t log_node_id;

/* Until the node serves, log lines are held back: a start that fails prints one line (the
   reason), not the story of opening storage first. They are printed once it serves. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool log_is_holding = true;
static char log_held[LOG_HELD_SIZE];
static size_t log_held_size;

/* One line per event on stderr. Called from the storage worker too, hence the lock. */
static void on_log(void *ctx, enum qr_log_level level, const char *line)
{
    (void)ctx;
    struct timespec ts;
    struct tm tm;
    char stamp[32] = "";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && localtime_r(&ts.tv_sec, &tm) != NULL) {
        (void)strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    }
    char text[QR_ERRMSG_SIZE * 4];
    int len =
        snprintf(text, sizeof(text), "%s.%03ld quorumd[%llu] %s %s\n", stamp, ts.tv_nsec / 1000000,
                 (unsigned long long)log_node_id, qr_log_level_name(level), line);
    size_t size = len < 0 ? 0 : (size_t)len < sizeof(text) ? (size_t)len : sizeof(text) - 1;
    (void)pthread_mutex_lock(&log_lock);
    if (log_is_holding && size <= sizeof(log_held) - log_held_size) {
        memcpy(log_held + log_held_size, text, size);
        log_held_size += size;
    } else {
        (void)fwrite(text, 1, size, stderr); /* Nothing to do if stderr is gone. */
    }
    (void)pthread_mutex_unlock(&log_lock);
}

/* The node serves: print what was held back and log directly from now on. */
static void log_release(void)
{
    (void)pthread_mutex_lock(&log_lock);
    (void)fwrite(log_held, 1, log_held_size, stderr);
    log_held_size = 0;
    log_is_holding = false;
    (void)pthread_mutex_unlock(&log_lock);
}

/* ---- The program ----------------------------------------------------------------------------- */

struct app {
    uv_loop_t loop;
    struct qr_server_flags flags;
    uint8_t secret[SECRET_SIZE_MAX];
    size_t secret_size;
    struct qr_kvfsm fsm;
    struct qr_node *node;
    struct qr_server *server;
    uv_signal_t sigint, sigterm;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_deadline_ms;
    int signals_count;
    bool is_closing;
    int exit_code;
};

/* ---- The secret ---- */

static int load_secret(struct app *app, char *errmsg)
{
    if (app->flags.secret_text != NULL) {
        app->secret_size = strlen(app->flags.secret_text);
        if (app->secret_size > SECRET_SIZE_MAX) {
            return qr__errf(errmsg, QR_EINVAL, "--secret: longer than %d bytes", SECRET_SIZE_MAX);
        }
        memcpy(app->secret, app->flags.secret_text, app->secret_size);
    } else {
        int fd = open(app->flags.secret_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return qr__errf(errmsg, QR_EINVAL, "--secret-file %s: %s", app->flags.secret_file,
                            strerror(errno));
        }
        uint8_t buf[SECRET_SIZE_MAX + 2];
        ssize_t n = read(fd, buf, sizeof(buf));
        int err = errno;
        (void)close(fd); /* Read-only: close cannot lose anything. */
        if (n < 0) {
            return qr__errf(errmsg, QR_EINVAL, "--secret-file %s: %s", app->flags.secret_file,
                            strerror(err));
        }
        size_t size = (size_t)n;
        while (size > 0 && (buf[size - 1] == '\n' || buf[size - 1] == '\r')) {
            size--; /* A file made by echo or base64 ends with a newline. */
        }
        if (size > SECRET_SIZE_MAX) {
            return qr__errf(errmsg, QR_EINVAL, "--secret-file %s: longer than %d bytes",
                            app->flags.secret_file, SECRET_SIZE_MAX);
        }
        memcpy(app->secret, buf, size);
        app->secret_size = size;
    }
    if (app->secret_size < SECRET_SIZE_MIN) {
        return qr__errf(errmsg, QR_EINVAL, "the cluster secret is %zu bytes; it needs at least %d",
                        app->secret_size, SECRET_SIZE_MIN);
    }
    return 0;
}

static void on_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void on_server_closed(void *ctx)
{
    struct app *app = ctx;
    app->server = NULL;
    uv_close((uv_handle_t *)&app->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&app->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&app->shutdown_timer, on_handle_closed);
}

/* The node first (its pending requests fail with QR_ECANCELED into still-open clients),
   then the server. */
static void on_node_closed(void *ctx)
{
    struct app *app = ctx;
    app->node = NULL;
    qr__server_close(app->server, on_server_closed, app);
}

static void app_close(struct app *app)
{
    if (app->is_closing) {
        return;
    }
    app->is_closing = true;
    (void)uv_timer_stop(&app->shutdown_timer); /* Cannot fail. */
    struct qr_node_status st;
    qr_node_status(app->node, &st);
    QR_LOG_INFOF("quorumd: stopping: role %s, term %llu, applied %llu", qr_role_name(st.role),
                 (unsigned long long)st.term, (unsigned long long)st.applied);
    qr_node_close(app->node, on_node_closed, app);
}

/* While shutting down as leader: close once someone else leads, or at the deadline. */
static void on_shutdown_timer(uv_timer_t *timer)
{
    struct app *app = timer->data;
    struct qr_node_status st;
    qr_node_status(app->node, &st);
    if (st.role != QR_ROLE_LEADER || uv_now(&app->loop) >= app->shutdown_deadline_ms) {
        app_close(app);
    }
}

/* The voter other than us with the most of the log, connected; 0 when none. */
static uint64_t handover_target(const struct qr_node_status *st)
{
    uint64_t best = 0;
    qr_index best_match = 0;
    for (size_t i = 0; i < st->peers_count; i++) {
        const struct qr_node_peer_status *ps = &st->peers[i];
        bool is_voter = false;
        for (uint32_t k = 0; k < st->config.voters_count; k++) {
            is_voter = is_voter || st->config.voters[k] == ps->id;
        }
        if (is_voter && ps->is_connected && ps->has_progress &&
            (best == 0 || ps->match > best_match)) {
            best = ps->id;
            best_match = ps->match;
        }
    }
    return best;
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct app *app = handle->data;
    app->signals_count++;
    if (app->is_closing) {
        return;
    }
    struct qr_node_status st;
    qr_node_status(app->node, &st);
    uint64_t target = st.role == QR_ROLE_LEADER ? handover_target(&st) : 0;
    if (app->signals_count > 1 || target == 0 || qr_node_transfer_leader(app->node, target) != 0) {
        app_close(app);
        return;
    }
    QR_LOG_INFOF("quorumd: signal %d: handing leadership to node %llu before stopping", signum,
                 (unsigned long long)target);
    app->shutdown_deadline_ms = uv_now(&app->loop) + SHUTDOWN_WAIT_MS;
    (void)uv_timer_start(&app->shutdown_timer, on_shutdown_timer, SHUTDOWN_POLL_MS,
                         SHUTDOWN_POLL_MS); /* Cannot fail. */
}

static void on_fatal(void *ctx, int err, const char *errmsg)
{
    struct app *app = ctx;
    QR_LOG_ERRORF("quorumd: the node stopped: %s (%s); restart it to recover", errmsg,
                  qr_err_name(err));
    app->exit_code = EXIT_FATAL;
    app_close(app);
}

static int probe_resolve(const char *what, const char *address, char *errmsg)
{
    struct sockaddr_storage addr;
    char why[QR_ERRMSG_SIZE] = "";
    return qr__address_resolve(address, &addr, why) != 0
               ? qr__errf(errmsg, QR_EINVAL, "%s: %s", what, why)
               : 0;
}

/* Whether `address` can be listened on: checked before the data directory is touched, so
   that a typo or a port in use leaves nothing behind. */
static int probe_listen(const char *what, const char *address, char *errmsg)
{
    struct sockaddr_storage addr;
    char why[QR_ERRMSG_SIZE] = "";
    if (qr__address_resolve(address, &addr, why) != 0) {
        return qr__errf(errmsg, QR_EINVAL, "%s: %s", what, why);
    }
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return qr__errf(errmsg, QR_EINVAL, "%s %s: socket: %s", what, address, strerror(errno));
    }
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)); /* As libuv does. */
    socklen_t len = addr.ss_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                               : (socklen_t)sizeof(struct sockaddr_in);
    int rv = bind(fd, (const struct sockaddr *)&addr, len);
    int err = errno;
    (void)close(fd); /* A probe: nothing was written. */
    if (rv != 0) {
        return qr__errf(errmsg, QR_EINVAL, "%s %s: %s", what, address, strerror(err));
    }
    return 0;
}

static int app_start(struct app *app, char *errmsg)
{
    struct qr_server_flags *f = &app->flags;
    const char *peer_listen = NULL;
    for (size_t i = 0; i < f->peers_count; i++) {
        peer_listen = f->peers[i].id == f->id ? f->peers[i].address : peer_listen;
    }
    if (probe_listen("--listen", f->listen, errmsg) != 0 ||
        probe_listen("peer address (--cluster)", peer_listen, errmsg) != 0 ||
        (f->advertise != NULL && probe_resolve("--advertise", f->advertise, errmsg) != 0)) {
        return -1;
    }
    struct qr_kv_opts kv_opts = {.keys_max = f->keys_max};
    int rv = qr__kvfsm_init(&app->fsm, &kv_opts);
    if (rv != 0) {
        return qr__errf(errmsg, QR_EINVAL, "cannot create the store: %s", qr_strerror(rv));
    }
    for (size_t i = 0; i < f->peers_count; i++) {
        if (f->peers[i].id == f->id) {
            f->peers[i].client_address = f->advertise != NULL ? f->advertise : f->listen;
        }
    }
    struct qr_node_opts opts;
    qr_node_opts_default(&opts);
    opts.id = f->id;
    opts.cluster_id = f->cluster_id;
    opts.data_dir = f->data_dir;
    opts.peers = f->peers;
    opts.peers_count = f->peers_count;
    opts.join = f->join;
    opts.secret = app->secret;
    opts.secret_size = app->secret_size;
    opts.sync = f->sync_none ? QR_STORAGE_SYNC_NONE : QR_STORAGE_SYNC_ALWAYS;
    opts.tick_ms = (uint32_t)f->tick_ms;
    opts.election_ticks = (uint32_t)f->election_ticks;
    opts.snapshot_entries = f->snapshot_entries;
    opts.request_timeout_ms = (uint32_t)f->request_timeout_ms;
    opts.fatal_cb = on_fatal;
    opts.fatal_ctx = app;
    rv = qr_node_create(&app->loop, &opts, &app->fsm.fsm, &app->node, errmsg);
    if (rv != 0) {
        return -1;
    }
    qr_node_opts_default(&opts); /* For the default request timeout. */
    const char *peer_address = NULL;
    for (size_t i = 0; i < f->peers_count; i++) {
        peer_address = f->peers[i].id == f->id ? f->peers[i].address : peer_address;
    }
    struct qr_server_opts sopts = {
        .listen_address = f->listen,
        .client_address = f->advertise,
        .peer_address = peer_address,
        .password = f->password,
        .peers = f->peers,
        .peers_count = f->peers_count,
        .clients_max = (uint32_t)f->clients_max,
        .args_count_max = f->args_count_max,
        .bulk_size_max = f->bulk_size_max,
        .reply_size_max = f->reply_size_max,
        .idle_timeout_s = (uint32_t)f->idle_timeout_s,
        .request_timeout_ms =
            f->request_timeout_ms != 0 ? (uint32_t)f->request_timeout_ms : opts.request_timeout_ms,
    };
    rv = qr__server_create(&app->loop, app->node, &app->fsm, &sopts, &app->server, errmsg);
    if (rv == 0) {
        rv = qr__server_start(app->server, errmsg);
    }
    if (rv == 0) {
        rv = qr_node_start(app->node, errmsg);
    }
    return rv == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static struct app app; /* Large (flags hold the secret and the cluster text). */
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__server_flags_parse(&app.flags, argc, argv, errmsg);
    if (rv == 0) {
        rv = load_secret(&app, errmsg);
    }
    if (rv < 0) {
        (void)fprintf(stderr, "quorumd: %s\n", errmsg);
        return EXIT_USAGE;
    }
    if (app.flags.is_help) {
        usage(stdout);
        return 0;
    }
    if (app.flags.is_version) {
        (void)printf("quorumd %s\n", QR_SERVER_VERSION);
        return 0;
    }
    if (app.flags.cluster_id == 0) {
        app.flags.cluster_id = qr__server_cluster_id(app.secret, app.secret_size);
    }
    log_node_id = app.flags.id;
    qr_log_set(on_log, NULL, (enum qr_log_level)app.flags.log_level);
    (void)signal(SIGPIPE, SIG_IGN); /* A client that went away is an error code, not death. */
    if (uv_loop_init(&app.loop) != 0) {
        (void)fprintf(stderr, "quorumd: cannot create the event loop\n");
        return EXIT_USAGE;
    }
    (void)uv_signal_init(&app.loop, &app.sigint);
    (void)uv_signal_init(&app.loop, &app.sigterm);
    (void)uv_timer_init(&app.loop, &app.shutdown_timer);
    app.sigint.data = &app;
    app.sigterm.data = &app;
    app.shutdown_timer.data = &app;
    if (app_start(&app, errmsg) != 0) {
        (void)fprintf(stderr, "quorumd: %s\n", errmsg);
        return EXIT_USAGE; /* Nothing was served: leaving the loop's handles to the OS. */
    }
    (void)uv_signal_start(&app.sigint, on_signal, SIGINT);
    (void)uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    log_release();
    QR_LOG_INFOF("quorumd: node %llu serving clients on %s, peers on the cluster address%s; "
                 "sync %s",
                 (unsigned long long)app.flags.id, app.flags.listen,
                 app.flags.join ? " (joining)" : "",
                 app.flags.sync_none ? "none (UNSAFE: acknowledged writes can be lost)" : "always");
    (void)uv_run(&app.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&app.loop);
    qr__kvfsm_close(&app.fsm);
    return app.exit_code;
}
