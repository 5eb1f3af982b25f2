/*
 * quorumctl cluster: start, stop and restart a local cluster of quorumd processes.
 *
 * Tool code above libquorum. Processes are started by a double fork: the
 * intermediate child calls setsid() and exits at once, so quorumd belongs to
 * no terminal, is reaped by init when it exits, and quorumctl can exit while
 * it runs. A pipe that closes on exec tells the parent the PID and whether
 * exec failed. Signals go only to recorded PIDs that /proc shows still
 * running the recorded quorumd on the recorded data directory, so a reused
 * PID is never signalled. Every wait is bounded.
 */
#define _XOPEN_SOURCE 700 /* nftw() for --purge. */

#include "cluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "info.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

#define BASE_PORT_DEFAULT   6101
#define BASE_PORT_STEP      20 /* Between candidate blocks when --base-port is not given. */
#define BASE_PORT_TRIES_MAX 50
#define PEER_PORT_OFFSET    100 /* Peer port of node i = its client port + this. */
#define WAIT_MS_DEFAULT     15000
#define STOP_WAIT_MS        10000
#define KILL_WAIT_MS        3000
#define POLL_SLEEP_MS       100
#define SECRET_BYTES        ((size_t)32)
#define CMDLINE_SIZE        65536
#define QUORUMD_ARGS_MAX    16
#define CLUSTER_SPEC_SIZE   ((size_t)CTL_CLUSTER_NODES_MAX * (CTL_ADDR_SIZE + 8))
#define LOG_TAIL_SIZE       2048
#define LOG_TAIL_LINES      8

_Static_assert(CTL_CLUSTER_NODES_MAX < BASE_PORT_STEP, "blocks of client ports do not overlap");
_Static_assert(BASE_PORT_STEP *BASE_PORT_TRIES_MAX <= PEER_PORT_OFFSET * 10, "scan stays near");

struct cluster_args {
    struct ctl_common common;
    const char *sub;     /* up, down, stop, start. */
    uint64_t nodes;      /* up: --nodes. */
    uint64_t base_port;  /* up: --base-port, 0 when not given. */
    const char *quorumd; /* up: --quorumd. */
    const char *sync;    /* up: --sync. */
    bool verbose;        /* up: -v. */
    bool purge;          /* down: --purge. */
    bool kill;           /* stop: --kill. */
    uint64_t id;         /* stop, start: the node. */
    uint64_t wait_ms;    /* up, start: how long to wait for the node(s). */
};

struct sub_desc {
    const char *name;
    const char *synopsis;
    const char *summary;
    const char *details;
};

static const struct sub_desc subs[] = {
    {"up",
     "cluster up --nodes N [--dir D] [--base-port P] [--quorumd PATH] [--sync always|none] [-v]",
     "start a local N-node cluster on 127.0.0.1",
     "Makes D (default " CTL_DIR_DEFAULT "; refused when it is not empty) with a fresh\n"
     "secret and one data directory per node, starts N quorumd processes (logs in\n"
     "D/node<i>.log), records them in D/cluster and waits for a leader.\n"
     "  --nodes N          1 to 15\n"
     "  --base-port P      client ports P..P+N-1, peer ports P+100..P+100+N-1\n"
     "                     (default: the first free block from 6101 on)\n"
     "  --quorumd PATH     the server binary (default: $QUORUMD, then next to\n"
     "                     quorumctl, then PATH)\n"
     "  --sync always|none passed to quorumd (default always)\n"
     "  -v, --verbose      passed to quorumd\n"
     "  --wait-ms N        how long to wait for a leader (default 15000)\n"},
    {"down", "cluster down [--dir D] [--purge]", "stop every node of a local cluster",
     "Sends SIGTERM to every recorded node, waits up to 10 s, then SIGKILL.\n"
     "  --purge            also delete D (data, logs, secret, record)\n"},
    {"stop", "cluster stop ID [--kill] [--dir D]", "stop one node (SIGTERM, or SIGKILL)",
     "Stops node ID of the cluster recorded in D.\n"
     "  --kill             SIGKILL at once instead of a graceful SIGTERM\n"},
    {"start", "cluster start ID [--dir D]", "restart a stopped node with its recorded flags",
     "Starts node ID again with the recorded quorumd, flags and data directory,\n"
     "and waits until it answers (up to --wait-ms, default 15000).\n"},
};

#define SUBS_COUNT (sizeof(subs) / sizeof(subs[0]))

void ctl_cluster_list(FILE *out)
{
    for (size_t k = 0; k < SUBS_COUNT; k++) {
        const char *space = strchr(subs[k].synopsis + strlen("cluster "), ' ');
        int len = space != NULL ? (int)(space - subs[k].synopsis) : (int)strlen(subs[k].synopsis);
        char head[64];
        (void)snprintf(head, sizeof(head), "%.*s%s", len, subs[k].synopsis,
                       space != NULL ? " ..." : "");
        (void)fprintf(out, "  %-34s %s\n", head, subs[k].summary);
    }
}

static const struct sub_desc *find_sub(const char *name)
{
    for (size_t k = 0; k < SUBS_COUNT; k++) {
        if (strcmp(subs[k].name, name) == 0) {
            return &subs[k];
        }
    }
    return NULL;
}

static void cluster_usage(FILE *out, const struct sub_desc *sub)
{
    if (sub == NULL) {
        (void)fprintf(out, "usage: quorumctl cluster <up|down|stop|start> [options]\n\n");
        for (size_t k = 0; k < SUBS_COUNT; k++) {
            (void)fprintf(out, "  quorumctl %s\n", subs[k].synopsis);
        }
        (void)fprintf(out, "\n'quorumctl cluster <sub> --help' describes one.\n"
                           "exit status: 0 ok, 1 failure, 2 bad usage\n");
        return;
    }
    (void)fprintf(out, "usage: quorumctl %s\n\n%s\n", sub->synopsis, sub->details);
    (void)fprintf(out, "  --dir D            the cluster directory (default " CTL_DIR_DEFAULT ")\n"
                       "  -h, --help         this text\n"
                       "\nexit status: 0 ok, 1 failure, 2 bad usage\n");
}

/* Flags of the cluster subcommands (beyond the common ones); 1 consumed, 0 not ours, <0 bad. */
static int parse_flag(struct cluster_args *a, int argc, char *const *argv, int *i, char *errmsg)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
        a->verbose = true;
        return 1;
    }
    if (strcmp(arg, "--purge") == 0 || strcmp(arg, "--kill") == 0) {
        *(arg[2] == 'p' ? &a->purge : &a->kill) = true;
        return 1;
    }
    static const char *const names[] = {"--nodes", "--base-port", "--quorumd", "--sync",
                                        "--wait-ms"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (!qr__flag_is(arg, names[k])) {
            continue;
        }
        const char *value = qr__flag_value(argc, argv, i, names[k]);
        int rv = 0;
        if (value == NULL) {
            return qr__errf(errmsg, QR_EINVAL, "%s needs a value", names[k]);
        }
        if (k == 0) {
            rv = qr__parse_u64(value, 1, CTL_CLUSTER_NODES_MAX, &a->nodes, errmsg);
        } else if (k == 1) {
            rv = qr__parse_u64(value, 1024, 65535 - PEER_PORT_OFFSET - CTL_CLUSTER_NODES_MAX,
                               &a->base_port, errmsg);
        } else if (k == 2) {
            a->quorumd = value;
        } else if (k == 3) {
            a->sync = value;
            if (strcmp(value, "always") != 0 && strcmp(value, "none") != 0) {
                rv = qr__errf(errmsg, QR_EINVAL, "'%.40s' is not always or none", value);
            }
        } else {
            rv = qr__parse_u64(value, 1, 600000, &a->wait_ms, errmsg);
        }
        return rv != 0 ? qr__err_wrapf(errmsg, QR_EINVAL, "%s", names[k]) : 1;
    }
    return 0;
}

/* Which flags each subcommand accepts, besides the common ones. */
static bool flag_allowed(const char *sub, const char *arg)
{
    static const char *const allowed[][6] = {
        {"up", "--nodes", "--base-port", "--quorumd", "--sync", "-v"},
        {"down", "--purge", "", "", "", ""},
        {"stop", "--kill", "", "", "", ""},
        {"start", "--wait-ms", "", "", "", ""},
    };
    for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++) {
        if (strcmp(allowed[k][0], sub) != 0) {
            continue;
        }
        for (size_t f = 1; f < 6; f++) {
            size_t len = strlen(allowed[k][f]);
            if (len > 0 && strncmp(arg, allowed[k][f], len) == 0) {
                return true;
            }
        }
        if (strcmp(sub, "up") == 0) {
            return strcmp(arg, "--verbose") == 0 || qr__flag_is(arg, "--wait-ms");
        }
    }
    return false;
}

static int parse_words(struct cluster_args *a, int argc, char *const *argv, char *errmsg)
{
    const char *id_text = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if (id_text != NULL || (strcmp(a->sub, "stop") != 0 && strcmp(a->sub, "start") != 0)) {
                return qr__errf(errmsg, QR_EINVAL, "unexpected argument '%.40s'", arg);
            }
            id_text = arg;
            continue;
        }
        int rv = ctl_common_parse_one(&a->common, argc, argv, &i, errmsg);
        if (rv == 0 && flag_allowed(a->sub, arg)) {
            rv = parse_flag(a, argc, argv, &i, errmsg);
        }
        if (rv < 0) {
            return rv;
        }
        if (rv == 0) {
            return qr__errf(errmsg, QR_EINVAL, "unknown option '%.40s' (see --help)", arg);
        }
    }
    if (a->common.help) {
        return 0;
    }
    if (strcmp(a->sub, "up") == 0 && a->nodes == 0) {
        return qr__errf(errmsg, QR_EINVAL, "--nodes is required");
    }
    if (strcmp(a->sub, "stop") == 0 || strcmp(a->sub, "start") == 0) {
        if (id_text == NULL) {
            return qr__errf(errmsg, QR_EINVAL, "which node? (quorumctl cluster %s ID)", a->sub);
        }
        if (qr__parse_u64(id_text, 1, CTL_CLUSTER_NODES_MAX, &a->id, errmsg) != 0) {
            return qr__err_wrapf(errmsg, QR_EINVAL, "node id");
        }
    }
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    (void)nanosleep(&ts, NULL); /* An early wake-up only shortens a poll interval. */
}

static int64_t now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* Cannot fail for CLOCK_MONOTONIC. */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Absolute path of an executable file, or false. */
static bool executable_at(const char *path, char *out)
{
    struct stat st;
    if (path[0] == '\0' || stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(path, X_OK) != 0) {
        return false;
    }
    char real[PATH_MAX];
    if (realpath(path, real) == NULL || strlen(real) >= CTL_PATH_SIZE) {
        return false;
    }
    memcpy(out, real, strlen(real) + 1);
    return true;
}

/* --quorumd, else $QUORUMD, else beside quorumctl (build tree or install), else PATH. */
static int find_quorumd(const char *flag, char *out, char *errmsg)
{
    if (flag != NULL) {
        return executable_at(flag, out)
                   ? 0
                   : qr__errf(errmsg, QR_ENOTFOUND, "--quorumd %.200s: not an executable file",
                              flag);
    }
    const char *env = getenv("QUORUMD");
    if (env != NULL && env[0] != '\0') {
        return executable_at(env, out)
                   ? 0
                   : qr__errf(errmsg, QR_ENOTFOUND, "QUORUMD=%.200s: not an executable file", env);
    }
    char self[CTL_PATH_SIZE];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len > 0) {
        self[len] = '\0';
        char *slash = strrchr(self, '/');
        static const char *const beside[] = {"../quorumd/quorumd", "quorumd"};
        for (size_t k = 0; slash != NULL && k < 2; k++) {
            char candidate[CTL_PATH_SIZE + 32];
            (void)snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)(slash - self), self,
                           beside[k]);
            if (executable_at(candidate, out)) {
                return 0;
            }
        }
    }
    const char *path = getenv("PATH");
    for (const char *p = path; p != NULL && *p != '\0';) {
        const char *colon = strchr(p, ':');
        size_t dir_len = colon != NULL ? (size_t)(colon - p) : strlen(p);
        char candidate[CTL_PATH_SIZE + 32];
        (void)snprintf(candidate, sizeof(candidate), "%.*s/quorumd", (int)dir_len, p);
        if (dir_len > 0 && dir_len < CTL_PATH_SIZE && executable_at(candidate, out)) {
            return 0;
        }
        p = colon != NULL ? colon + 1 : NULL;
    }
    return qr__errf(errmsg, QR_ENOTFOUND,
                    "quorumd not found (looked next to quorumctl and in PATH); pass --quorumd "
                    "PATH or set QUORUMD");
}

/* Reads /proc/PID/cmdline; the argument count, 0 when the process is gone or a zombie. */
static size_t proc_cmdline(int64_t pid, char *buf, size_t buf_size, const char **args, size_t max)
{
    char path[64];
    (void)snprintf(path, sizeof(path), "/proc/%lld/cmdline", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, buf_size - 1);
    (void)close(fd); /* Read-only. */
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    size_t count = 0;
    for (size_t pos = 0; pos < (size_t)n && count < max; pos += strlen(buf + pos) + 1) {
        args[count++] = buf + pos;
    }
    return count;
}

/* Whether pid still runs the recorded quorumd on this node's data directory. */
static bool
pid_is_node(int64_t pid, const struct ctl_record *rec, const struct ctl_record_node *node)
{
    if (pid <= 0) {
        return false;
    }
    char *buf = qr_malloc(CMDLINE_SIZE);
    if (buf == NULL) {
        return true; /* Cannot tell: assume it runs, so that nothing is restarted over it. */
    }
    const char *args[64];
    size_t count = proc_cmdline(pid, buf, CMDLINE_SIZE, args, 64);
    const char *name = strrchr(rec->quorumd, '/');
    name = name != NULL ? name + 1 : rec->quorumd;
    bool is_node = false;
    /* argv[0] is quorumd, or argv[1] or [2] when it is a script run through an interpreter. */
    for (size_t a = 0; a < 3 && a < count && !is_node; a++) {
        const char *base = strrchr(args[a], '/');
        base = base != NULL ? base + 1 : args[a];
        for (size_t k = a + 1; strcmp(base, name) == 0 && k + 1 < count; k++) {
            is_node = is_node ||
                      (strcmp(args[k], "--data") == 0 && strcmp(args[k + 1], node->data_dir) == 0);
        }
    }
    qr_free(buf);
    return is_node;
}

static bool port_is_free(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* As servers do. */
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool is_free = bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0;
    (void)close(fd); /* Only a probe. */
    return is_free;
}

/* The first port of a block [base, base+n) or [base+100, base+100+n) that is taken, or 0. */
static uint16_t ports_block_taken(uint64_t base, uint64_t nodes)
{
    for (uint64_t k = 0; k < nodes; k++) {
        uint16_t client = (uint16_t)(base + k);
        uint16_t peer = (uint16_t)(base + PEER_PORT_OFFSET + k);
        if (!port_is_free(client)) {
            return client;
        }
        if (!port_is_free(peer)) {
            return peer;
        }
    }
    return 0;
}

static int pick_base_port(const struct cluster_args *a, uint64_t *base_out, char *errmsg)
{
    if (a->base_port != 0) {
        uint16_t taken = ports_block_taken(a->base_port, a->nodes);
        if (taken != 0) {
            return qr__errf(errmsg, QR_EBUSY, "--base-port %llu: port %u is in use",
                            (unsigned long long)a->base_port, (unsigned)taken);
        }
        *base_out = a->base_port;
        return 0;
    }
    for (uint64_t k = 0; k < BASE_PORT_TRIES_MAX; k++) {
        uint64_t base = BASE_PORT_DEFAULT + k * BASE_PORT_STEP;
        if (ports_block_taken(base, a->nodes) == 0) {
            *base_out = base;
            return 0;
        }
    }
    return qr__errf(errmsg, QR_EBUSY, "no free block of ports from %d on; pass --base-port",
                    BASE_PORT_DEFAULT);
}

static int write_secret(const char *path, char *errmsg)
{
    uint8_t raw[SECRET_BYTES];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return qr__err_os(errmsg, errno, "/dev/urandom");
    }
    ssize_t n = read(fd, raw, sizeof(raw));
    (void)close(fd); /* Read-only. */
    if (n != (ssize_t)sizeof(raw)) {
        return qr__errf(errmsg, QR_EIO, "/dev/urandom: short read");
    }
    char hex[SECRET_BYTES * 2 + 2];
    for (size_t k = 0; k < sizeof(raw); k++) {
        (void)snprintf(hex + 2 * k, 3, "%02x", raw[k]);
    }
    hex[SECRET_BYTES * 2] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return qr__err_os(errmsg, errno, "%s", path);
    }
    bool ok = write(fd, hex, SECRET_BYTES * 2 + 1) == SECRET_BYTES * 2 + 1 && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 || !ok) {
        return qr__err_os(errmsg, ok ? errno : saved, "write %s", path);
    }
    return 0;
}

/* What the forked children tell the parent through the status pipe. */
struct spawn_msg {
    int32_t kind;  /* SPAWN_PID, or the step that failed. */
    int32_t value; /* The PID, or errno. */
};

enum { SPAWN_PID = 1, SPAWN_FAIL_FORK, SPAWN_FAIL_LOG, SPAWN_FAIL_EXEC };

/* In the grandchild: stdio to /dev/null and the log, then exec. Never returns. */
static void spawn_exec(int status_fd, const char *log, const char *const *argv)
{
    QR_ASSERT(argv[0] != NULL);
    struct spawn_msg msg = {SPAWN_FAIL_LOG, 0};
    int null_fd = open("/dev/null", O_RDONLY);
    int log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd < 0 || log_fd < 0 || dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 ||
        dup2(log_fd, 2) < 0) {
        msg.value = errno;
    } else {
        (void)close(null_fd); /* Duplicated onto 0. */
        (void)close(log_fd);  /* Duplicated onto 1 and 2. */
        /* execv takes char *const[]: copy the pointers rather than cast const away. */
        char *args[QUORUMD_ARGS_MAX];
        size_t count = 0;
        while (count + 1 < QUORUMD_ARGS_MAX && argv[count] != NULL) {
            count++;
        }
        memcpy(args, argv, (count + 1) * sizeof(args[0]));
        args[count] = NULL;
        execv(args[0], args);
        msg.kind = SPAWN_FAIL_EXEC;
        msg.value = errno;
    }
    (void)!write(status_fd, &msg, sizeof(msg)); /* The parent reports a missing message. */
    _exit(127);
}

/* In the intermediate child: a new session, fork the server, report its PID, exit. */
static void spawn_child(int status_fd, const char *log, const char *const *argv)
{
    (void)setsid(); /* Fails only if already a group leader, which a fresh child is not. */
    pid_t pid = fork();
    if (pid == 0) {
        spawn_exec(status_fd, log, argv);
    }
    struct spawn_msg msg = {pid > 0 ? SPAWN_PID : SPAWN_FAIL_FORK, pid > 0 ? pid : errno};
    (void)!write(status_fd, &msg, sizeof(msg)); /* The parent reports a missing message. */
    _exit(pid > 0 ? 0 : 1);
}

/* Reads one message, waiting at most timeout_ms; false on EOF or timeout. */
static bool spawn_read(int fd, struct spawn_msg *msg, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, timeout_ms) <= 0) {
        return false;
    }
    return read(fd, msg, sizeof(*msg)) == (ssize_t)sizeof(*msg);
}

/* Starts argv with output to log; *pid_out is the server's PID. */
static int spawn(const char *const *argv, const char *log, int64_t *pid_out, char *errmsg)
{
    int fds[2];
    if (pipe(fds) != 0) {
        return qr__err_os(errmsg, errno, "pipe");
    }
    (void)fcntl(fds[0], F_SETFD, FD_CLOEXEC); /* Cannot fail on a fresh descriptor. */
    (void)fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    (void)fflush(NULL); /* So the children inherit no buffered output to write twice. */
    pid_t child = fork();
    if (child < 0) {
        int rv = qr__err_os(errmsg, errno, "fork");
        (void)close(fds[0]); /* Already failing. */
        (void)close(fds[1]);
        return rv;
    }
    if (child == 0) {
        (void)close(fds[0]); /* The child only writes. */
        spawn_child(fds[1], log, argv);
    }
    (void)close(fds[1]); /* Now EOF comes once the server has exec'd (or exited). */
    int wstatus = 0;
    while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
    }
    struct spawn_msg msg = {0, 0};
    int rv = 0;
    if (!spawn_read(fds[0], &msg, 5000) || msg.kind != SPAWN_PID) {
        rv = msg.kind == SPAWN_FAIL_FORK ? qr__err_os(errmsg, msg.value, "fork")
                                         : qr__errf(errmsg, QR_EIO, "could not start %s", argv[0]);
    } else {
        *pid_out = msg.value;
        if (spawn_read(fds[0], &msg, 5000)) {
            rv = msg.kind == SPAWN_FAIL_LOG ? qr__err_os(errmsg, msg.value, "open %s", log)
                                            : qr__err_os(errmsg, msg.value, "exec %s", argv[0]);
        }
    }
    (void)close(fds[0]); /* Read side, done. */
    return rv;
}

/* Builds quorumd's argument vector for one node; strings point into spec or the record. */
static void node_argv(const struct ctl_record *rec,
                      const struct ctl_record_node *node,
                      char *spec,
                      char *id_text,
                      const char **argv)
{
    size_t used = 0;
    spec[0] = '\0';
    for (size_t k = 0; k < rec->nodes_count; k++) {
        used +=
            (size_t)snprintf(spec + used, CLUSTER_SPEC_SIZE - used, "%s%llu=%s", k > 0 ? "," : "",
                             (unsigned long long)rec->nodes[k].id, rec->nodes[k].peer);
        QR_ASSERT(used < CLUSTER_SPEC_SIZE);
    }
    (void)snprintf(id_text, 24, "%llu", (unsigned long long)node->id);
    QR_ASSERT(rec->quorumd[0] != '\0'); /* The record reader refuses a record without it. */
    size_t n = 0;
    const char *words[] = {rec->quorumd, "--id",       id_text,  "--cluster",    spec,
                           "--listen",   node->client, "--data", node->data_dir, "--secret-file",
                           rec->secret,  "--sync",     rec->sync};
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
        argv[n++] = words[k];
        if (words[k][0] == '\0') {
            n -= 2; /* A flag whose recorded value is empty is left out, flag and all. */
        }
    }
    if (rec->is_verbose) {
        argv[n++] = "-v";
    }
    argv[n] = NULL;
    QR_ASSERT(n < QUORUMD_ARGS_MAX);
}

static int start_node(const struct ctl_record *rec, struct ctl_record_node *node, char *errmsg)
{
    char *spec = qr_malloc(CLUSTER_SPEC_SIZE);
    if (spec == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "out of memory");
    }
    char id_text[24];
    const char *argv[QUORUMD_ARGS_MAX];
    node_argv(rec, node, spec, id_text, argv);
    int64_t pid = 0;
    int rv = spawn(argv, node->log, &pid, errmsg);
    qr_free(spec);
    if (rv != 0) {
        return qr__err_wrapf(errmsg, rv, "node %llu", (unsigned long long)node->id);
    }
    node->pid = pid;
    return 0;
}

/* Prints the last lines of a node's log, indented, to stderr. */
static void print_log_tail(const char *log)
{
    char buf[LOG_TAIL_SIZE + 1];
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > LOG_TAIL_SIZE ? size - LOG_TAIL_SIZE : 0;
    ssize_t n = pread(fd, buf, LOG_TAIL_SIZE, from);
    (void)close(fd); /* Read-only. */
    if (n <= 0) {
        return;
    }
    size_t end = (size_t)n;
    if (end > 0 && buf[end - 1] == '\n') {
        end--;
    }
    buf[end] = '\0';
    size_t start = end;
    for (int lines = 0; start > 0; start--) {
        if (buf[start - 1] == '\n' && ++lines == LOG_TAIL_LINES) {
            break;
        }
    }
    (void)fprintf(stderr, "  last lines of %s:\n", log);
    for (const char *p = buf + start; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        int len = nl != NULL ? (int)(nl - p) : (int)strlen(p);
        if (len > 0 || nl != NULL) {
            (void)fprintf(stderr, "  | %.*s\n", len, p);
        }
        p = nl != NULL ? nl + 1 : p + len;
    }
}

/* Waits until no pending node still runs; prints each one that stopped. */
static void stop_wait(struct ctl_record *rec, bool *pending, int wait_ms, const char *how)
{
    int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        bool any = false;
        for (size_t k = 0; k < rec->nodes_count; k++) {
            struct ctl_record_node *node = &rec->nodes[k];
            if (pending[k] && !pid_is_node(node->pid, rec, node)) {
                (void)printf("node %llu (pid %lld): %s\n", (unsigned long long)node->id,
                             (long long)node->pid, how);
                node->pid = 0;
                pending[k] = false;
            }
            any = any || pending[k];
        }
        if (!any || now_ms() >= deadline) {
            return;
        }
        sleep_ms(POLL_SLEEP_MS / 2);
    }
}

/* Signals the selected nodes, waits, escalates to SIGKILL; false when one still runs. */
static bool stop_nodes(struct ctl_record *rec, const bool *selected, bool use_kill)
{
    bool pending[CTL_CLUSTER_NODES_MAX] = {false};
    for (size_t k = 0; k < rec->nodes_count; k++) {
        struct ctl_record_node *node = &rec->nodes[k];
        if (!selected[k]) {
            continue;
        }
        if (node->pid == 0) {
            (void)printf("node %llu: not running\n", (unsigned long long)node->id);
        } else if (!pid_is_node(node->pid, rec, node)) {
            (void)printf("node %llu: pid %lld no longer runs this quorumd; left alone\n",
                         (unsigned long long)node->id, (long long)node->pid);
            node->pid = 0;
        } else if (kill((pid_t)node->pid, use_kill ? SIGKILL : SIGTERM) != 0) {
            (void)printf("node %llu (pid %lld): kill: %s\n", (unsigned long long)node->id,
                         (long long)node->pid, strerror(errno));
        } else {
            pending[k] = true;
        }
    }
    stop_wait(rec, pending, use_kill ? KILL_WAIT_MS : STOP_WAIT_MS,
              use_kill ? "killed (SIGKILL)" : "stopped (SIGTERM)");
    bool all_stopped = true;
    for (size_t k = 0; k < rec->nodes_count; k++) {
        if (pending[k] && !use_kill) {
            (void)printf("node %llu (pid %lld): still running after %d s, sending SIGKILL\n",
                         (unsigned long long)rec->nodes[k].id, (long long)rec->nodes[k].pid,
                         STOP_WAIT_MS / 1000);
            (void)kill((pid_t)rec->nodes[k].pid, SIGKILL); /* The wait below tells. */
        }
    }
    stop_wait(rec, pending, KILL_WAIT_MS, "killed (SIGKILL)");
    for (size_t k = 0; k < rec->nodes_count; k++) {
        if (pending[k]) {
            (void)printf("node %llu (pid %lld): still running\n",
                         (unsigned long long)rec->nodes[k].id, (long long)rec->nodes[k].pid);
            all_stopped = false;
        }
    }
    return all_stopped;
}

static void stop_all(struct ctl_record *rec)
{
    bool selected[CTL_CLUSTER_NODES_MAX];
    for (size_t k = 0; k < CTL_CLUSTER_NODES_MAX; k++) {
        selected[k] = true;
    }
    (void)stop_nodes(rec, selected, false); /* Each node's outcome is printed. */
}

/* Checks D for `cluster up`: no record, empty or missing (then made). */
static int up_check_dir(const char *dir, struct ctl_record *rec, char *errmsg)
{
    int rv = ctl_record_read(dir, rec, errmsg);
    if (rv == 0) {
        for (size_t k = 0; k < rec->nodes_count; k++) {
            if (pid_is_node(rec->nodes[k].pid, rec, &rec->nodes[k])) {
                return qr__errf(errmsg, QR_EBUSY,
                                "%s already holds a running cluster (node %llu is pid %lld); "
                                "stop it with 'quorumctl cluster down --dir %s'",
                                dir, (unsigned long long)rec->nodes[k].id,
                                (long long)rec->nodes[k].pid, dir);
            }
        }
        return qr__errf(errmsg, QR_EBUSY,
                        "%s holds a stopped cluster; restart its nodes with 'quorumctl cluster "
                        "start ID --dir %s' or delete it with 'quorumctl cluster down --purge "
                        "--dir %s'",
                        dir, dir, dir);
    }
    if (rv != QR_ENOTFOUND) {
        return rv;
    }
    DIR *d = opendir(dir);
    if (d == NULL && errno == ENOENT) {
        return mkdir(dir, 0755) == 0 ? 0 : qr__err_os(errmsg, errno, "mkdir %s", dir);
    }
    if (d == NULL) {
        return qr__err_os(errmsg, errno, "%s", dir);
    }
    bool is_empty = true;
    for (struct dirent *e = readdir(d); e != NULL && is_empty; e = readdir(d)) {
        is_empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    (void)closedir(d); /* Read-only. */
    return is_empty ? 0 : qr__errf(errmsg, QR_EBUSY, "%s is not empty; choose another --dir", dir);
}

/* Fills the record of a new cluster in absolute directory abs and makes its files. */
static int
up_prepare(const struct cluster_args *a, const char *abs, struct ctl_record *rec, char *errmsg)
{
    QR_ASSERT(rec->quorumd[0] == '/'); /* Found by cluster_up before anything was made. */
    uint64_t base = 0;
    int rv = pick_base_port(a, &base, errmsg);
    if (rv != 0) {
        return rv;
    }
    (void)snprintf(rec->sync, sizeof(rec->sync), "%s", a->sync != NULL ? a->sync : "always");
    rec->is_verbose = a->verbose;
    (void)snprintf(rec->secret, sizeof(rec->secret), "%s/secret", abs);
    rec->nodes_count = (size_t)a->nodes;
    for (size_t k = 0; k < rec->nodes_count; k++) {
        struct ctl_record_node *node = &rec->nodes[k];
        node->id = k + 1;
        (void)snprintf(node->client, sizeof(node->client), "127.0.0.1:%llu",
                       (unsigned long long)base + k);
        (void)snprintf(node->peer, sizeof(node->peer), "127.0.0.1:%llu",
                       (unsigned long long)base + PEER_PORT_OFFSET + k);
        (void)snprintf(node->data_dir, sizeof(node->data_dir), "%s/node%zu", abs, k + 1);
        (void)snprintf(node->log, sizeof(node->log), "%s/node%zu.log", abs, k + 1);
        if (mkdir(node->data_dir, 0700) != 0) {
            return qr__err_os(errmsg, errno, "mkdir %s", node->data_dir);
        }
    }
    rv = write_secret(rec->secret, errmsg);
    return rv != 0 ? rv : ctl_record_write(abs, rec, errmsg);
}

/* Polls every node until one is leader; 0 and its index, or a failure already printed. */
static int
up_wait_leader(const struct cluster_args *a, const struct ctl_record *rec, size_t *leader_out)
{
    struct ctl_common quick = a->common;
    quick.timeout_ms = 1000;
    struct ctl_info *info = qr_malloc(sizeof(*info));
    if (info == NULL) {
        (void)fprintf(stderr, "quorumctl cluster up: out of memory\n");
        return QR_ENOMEM;
    }
    int64_t wait_ms = a->wait_ms != 0 ? (int64_t)a->wait_ms : WAIT_MS_DEFAULT;
    int64_t deadline = now_ms() + wait_ms;
    int rv = QR_ETIMEDOUT;
    while (rv == QR_ETIMEDOUT && now_ms() < deadline) {
        for (size_t k = 0; k < rec->nodes_count && rv == QR_ETIMEDOUT; k++) {
            const struct ctl_record_node *node = &rec->nodes[k];
            char errmsg[QR_ERRMSG_SIZE];
            if (!pid_is_node(node->pid, rec, node)) {
                (void)fprintf(stderr, "quorumctl cluster up: node %llu (pid %lld) exited\n",
                              (unsigned long long)node->id, (long long)node->pid);
                print_log_tail(node->log);
                rv = QR_EIO;
            } else if (ctl_fetch_info(&quick, node->client, info, errmsg) == 0 &&
                       strcmp(info->role, "leader") == 0) {
                *leader_out = k;
                rv = 0;
            }
        }
        if (rv == QR_ETIMEDOUT) {
            sleep_ms(POLL_SLEEP_MS * 2);
        }
    }
    if (rv == QR_ETIMEDOUT) {
        (void)fprintf(stderr, "quorumctl cluster up: no leader after %lld ms\n",
                      (long long)wait_ms);
        for (size_t k = 0; k < rec->nodes_count; k++) {
            print_log_tail(rec->nodes[k].log);
        }
    }
    qr_free(info);
    return rv;
}

static void up_print(const char *abs, const struct ctl_record *rec, size_t leader)
{
    (void)printf("cluster of %zu node%s is up in %s; leader: node %llu\n", rec->nodes_count,
                 rec->nodes_count == 1 ? "" : "s", abs, (unsigned long long)rec->nodes[leader].id);
    for (size_t k = 0; k < rec->nodes_count; k++) {
        const struct ctl_record_node *n = &rec->nodes[k];
        (void)printf("  node %llu  pid %-7lld  client %s  peer %s  log %s\n",
                     (unsigned long long)n->id, (long long)n->pid, n->client, n->peer, n->log);
    }
    (void)printf("\ntalk to it:\n");
    for (size_t k = 0; k < rec->nodes_count; k++) {
        const char *port = strrchr(rec->nodes[k].client, ':') + 1;
        (void)printf("  redis-cli -p %s\n", port);
    }
    (void)printf("  quorumctl status --dir %s\n", abs);
    (void)printf("stop it:\n  quorumctl cluster down --dir %s\n", abs);
}

/* Starts every node, recording each PID as soon as it is known. */
static int up_start_all(const char *abs, struct ctl_record *rec)
{
    char errmsg[QR_ERRMSG_SIZE];
    for (size_t k = 0; k < rec->nodes_count; k++) {
        int rv = start_node(rec, &rec->nodes[k], errmsg);
        int write_rv = ctl_record_write(abs, rec, errmsg);
        if (rv != 0 || write_rv != 0) {
            (void)fprintf(stderr, "quorumctl cluster up: %s\n", errmsg);
            return rv != 0 ? rv : write_rv;
        }
    }
    return 0;
}

static int cluster_up(const struct cluster_args *a, struct ctl_record *rec)
{
    const char *dir = ctl_common_dir(&a->common);
    char errmsg[QR_ERRMSG_SIZE];
    char abs[PATH_MAX];
    char quorumd[CTL_PATH_SIZE];
    int rv = find_quorumd(a->quorumd, quorumd, errmsg);
    if (rv == 0) {
        rv = up_check_dir(dir, rec, errmsg);
    }
    if (rv == 0 && realpath(dir, abs) == NULL) {
        rv = qr__err_os(errmsg, errno, "%s", dir);
    }
    if (rv == 0 && (strlen(abs) > CTL_PATH_SIZE - 32 || strpbrk(abs, " \t\n\r") != NULL)) {
        rv = qr__errf(errmsg, QR_EINVAL, "%s: use a shorter path without white space", dir);
    }
    if (rv == 0) {
        memset(rec, 0, sizeof(*rec));
        memcpy(rec->quorumd, quorumd, sizeof(rec->quorumd));
        rv = up_prepare(a, abs, rec, errmsg);
    }
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl cluster up: %s\n", errmsg);
        return CTL_EXIT_FAILURE;
    }
    size_t leader = 0;
    rv = up_start_all(abs, rec);
    if (rv == 0) {
        rv = up_wait_leader(a, rec, &leader);
    }
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl cluster up: failed; stopping the nodes started\n");
        stop_all(rec);
        (void)ctl_record_write(abs, rec, errmsg); /* Best effort: the PIDs are gone anyway. */
        (void)fprintf(stderr,
                      "logs are in %s; delete it with 'quorumctl cluster down --purge "
                      "--dir %s'\n",
                      abs, abs);
        return CTL_EXIT_FAILURE;
    }
    up_print(abs, rec, leader);
    return CTL_EXIT_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* Whether path lies strictly inside directory abs (both absolute, no "..", as up writes them). */
static bool is_inside(const char *abs, const char *path)
{
    size_t len = strlen(abs);
    return strncmp(path, abs, len) == 0 && path[len] == '/' && path[len + 1] != '\0' &&
           strstr(path, "/..") == NULL;
}

/* Deletes what cluster up made: data dirs, logs, secret, record, then D if empty. */
static bool purge(const char *dir, const struct ctl_record *rec)
{
    bool ok = true;
    char path[CTL_PATH_SIZE + 32];
    char abs[PATH_MAX];
    if (realpath(dir, abs) == NULL) {
        (void)printf("could not delete %s: %s\n", dir, strerror(errno));
        return false;
    }
    for (size_t k = 0; k < rec->nodes_count; k++) {
        const struct ctl_record_node *n = &rec->nodes[k];
        if (!is_inside(abs, n->data_dir) || !is_inside(abs, n->log)) {
            (void)printf("left %s alone: it is not inside %s\n", n->data_dir, abs);
            ok = false;
            continue;
        }
        if (nftw(n->data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
            (void)printf("could not delete %s: %s\n", n->data_dir, strerror(errno));
            ok = false;
        }
        (void)unlink(n->log); /* A missing log is fine. */
    }
    if (!ok) {
        return false; /* Keep the record: it still names what is left. */
    }
    if (is_inside(abs, rec->secret)) {
        (void)unlink(rec->secret); /* As above. */
    }
    (void)snprintf(path, sizeof(path), "%s/cluster", dir);
    if (unlink(path) != 0 || rmdir(dir) != 0) {
        (void)printf("could not delete %s: %s\n", dir, strerror(errno));
        return false;
    }
    (void)printf("deleted %s\n", dir);
    return ok;
}

static int cluster_down(const struct cluster_args *a, struct ctl_record *rec)
{
    const char *dir = ctl_common_dir(&a->common);
    char errmsg[QR_ERRMSG_SIZE];
    if (ctl_record_read(dir, rec, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl cluster down: %s\n", errmsg);
        return CTL_EXIT_FAILURE;
    }
    bool selected[CTL_CLUSTER_NODES_MAX];
    for (size_t k = 0; k < CTL_CLUSTER_NODES_MAX; k++) {
        selected[k] = true;
    }
    bool ok = stop_nodes(rec, selected, false);
    if (ctl_record_write(dir, rec, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl cluster down: %s\n", errmsg);
        ok = false;
    }
    if (ok && a->purge) {
        ok = purge(dir, rec);
    }
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

/* Reads the record and finds node a->id; prints why not. */
static struct ctl_record_node *load_node(const struct cluster_args *a, struct ctl_record *rec)
{
    const char *dir = ctl_common_dir(&a->common);
    char errmsg[QR_ERRMSG_SIZE];
    if (ctl_record_read(dir, rec, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl cluster %s: %s\n", a->sub, errmsg);
        return NULL;
    }
    struct ctl_record_node *node = ctl_record_node(rec, a->id);
    if (node == NULL) {
        (void)fprintf(stderr, "quorumctl cluster %s: node %llu is not in %s/cluster\n", a->sub,
                      (unsigned long long)a->id, dir);
    }
    return node;
}

static int cluster_stop(const struct cluster_args *a, struct ctl_record *rec)
{
    struct ctl_record_node *node = load_node(a, rec);
    if (node == NULL) {
        return CTL_EXIT_FAILURE;
    }
    if (!pid_is_node(node->pid, rec, node)) {
        (void)fprintf(stderr, "quorumctl cluster stop: node %llu is not running\n",
                      (unsigned long long)node->id);
        return CTL_EXIT_FAILURE;
    }
    bool selected[CTL_CLUSTER_NODES_MAX] = {false};
    selected[node - rec->nodes] = true;
    bool ok = stop_nodes(rec, selected, a->kill);
    char errmsg[QR_ERRMSG_SIZE];
    if (ctl_record_write(ctl_common_dir(&a->common), rec, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl cluster stop: %s\n", errmsg);
        ok = false;
    }
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

/* After a restart: waits until the node answers INFO quorum or exits. */
static int start_wait(const struct cluster_args *a,
                      const struct ctl_record *rec,
                      const struct ctl_record_node *node)
{
    struct ctl_common quick = a->common;
    quick.timeout_ms = 1000;
    struct ctl_info *info = qr_malloc(sizeof(*info));
    if (info == NULL) {
        return CTL_EXIT_FAILURE;
    }
    char errmsg[QR_ERRMSG_SIZE] = "no answer yet";
    int64_t deadline = now_ms() + (a->wait_ms != 0 ? (int64_t)a->wait_ms : WAIT_MS_DEFAULT);
    int status = -1;
    while (status < 0) {
        if (!pid_is_node(node->pid, rec, node)) {
            (void)fprintf(stderr, "quorumctl cluster start: node %llu (pid %lld) exited\n",
                          (unsigned long long)node->id, (long long)node->pid);
            print_log_tail(node->log);
            status = CTL_EXIT_FAILURE;
        } else if (ctl_fetch_info(&quick, node->client, info, errmsg) == 0) {
            (void)printf("node %llu started (pid %lld) at %s: %s, term %llu\n",
                         (unsigned long long)node->id, (long long)node->pid, node->client,
                         info->role, (unsigned long long)info->term);
            status = CTL_EXIT_OK;
        } else if (now_ms() >= deadline) {
            (void)printf("node %llu started (pid %lld) but does not answer yet: %s\n",
                         (unsigned long long)node->id, (long long)node->pid, errmsg);
            status = CTL_EXIT_OK;
        } else {
            sleep_ms(POLL_SLEEP_MS);
        }
    }
    qr_free(info);
    return status;
}

static int cluster_start(const struct cluster_args *a, struct ctl_record *rec)
{
    struct ctl_record_node *node = load_node(a, rec);
    if (node == NULL) {
        return CTL_EXIT_FAILURE;
    }
    if (pid_is_node(node->pid, rec, node)) {
        (void)fprintf(stderr, "quorumctl cluster start: node %llu is already running (pid %lld)\n",
                      (unsigned long long)node->id, (long long)node->pid);
        return CTL_EXIT_FAILURE;
    }
    char errmsg[QR_ERRMSG_SIZE];
    int rv = start_node(rec, node, errmsg);
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl cluster start: %s\n", errmsg);
        return CTL_EXIT_FAILURE;
    }
    if (ctl_record_write(ctl_common_dir(&a->common), rec, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl cluster start: %s (node %llu runs as pid %lld)\n", errmsg,
                      (unsigned long long)node->id, (long long)node->pid);
        return CTL_EXIT_FAILURE;
    }
    return start_wait(a, rec, node);
}

int ctl_cluster_run(int argc, char *const *argv, const struct ctl_common *global)
{
    if (argc == 0 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        cluster_usage(argc == 0 && !global->help ? stderr : stdout, NULL);
        return argc == 0 && !global->help ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    const struct sub_desc *sub = find_sub(argv[0]);
    if (sub == NULL) {
        (void)fprintf(stderr,
                      "quorumctl cluster: unknown subcommand '%.40s' (use up, down, stop or "
                      "start)\n",
                      argv[0]);
        return CTL_EXIT_USAGE;
    }
    struct cluster_args a;
    memset(&a, 0, sizeof(a));
    a.common = *global;
    a.sub = sub->name;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (parse_words(&a, argc - 1, argv + 1, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl cluster %s: %s\n", sub->name, errmsg);
        return CTL_EXIT_USAGE;
    }
    if (a.common.help) {
        cluster_usage(stdout, sub);
        return CTL_EXIT_OK;
    }
    struct ctl_record *rec = qr_calloc(1, sizeof(*rec));
    if (rec == NULL) {
        (void)fprintf(stderr, "quorumctl cluster %s: out of memory\n", sub->name);
        return CTL_EXIT_FAILURE;
    }
    int status = CTL_EXIT_FAILURE;
    if (strcmp(sub->name, "up") == 0) {
        status = cluster_up(&a, rec);
    } else if (strcmp(sub->name, "down") == 0) {
        status = cluster_down(&a, rec);
    } else if (strcmp(sub->name, "stop") == 0) {
        status = cluster_stop(&a, rec);
    } else {
        status = cluster_start(&a, rec);
    }
    qr_free(rec);
    return status;
}
