/*
 * quorumctl ops: status, members, membership changes, snapshots and data commands.
 *
 * Tool code above libquorum. Everything a server says is untrusted: reply
 * shapes are checked before use, and an unexpected one is reported, never
 * assumed. Leader-only commands go through ctl_leader_command, which follows
 * -NOTLEADER redirects.
 */
#include "ops.h"

#include <string.h>

#include "info.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

#define POSITIONALS_MAX CTL_COMMAND_ARGS_MAX
#define CELL_SIZE       (QR_ERRMSG_SIZE + 32)

struct cmd_args {
    const char *name; /* The command. */
    struct ctl_common common;
    const char *pos[POSITIONALS_MAX]; /* Words that are not options. */
    int pos_count;
};

struct cmd_desc {
    const char *name;
    const char *synopsis; /* After "quorumctl ". */
    const char *summary;  /* One line, for quorumctl --help. */
    const char *details;  /* The rest of the command's --help. */
    int pos_min;
    int pos_max;
    int (*run)(const struct cmd_args *args);
};

static int run_status(const struct cmd_args *args);
static int run_members(const struct cmd_args *args);
static int run_admin(const struct cmd_args *args);
static int run_snapshot(const struct cmd_args *args);
static int run_data(const struct cmd_args *args);

static const struct cmd_desc commands[] = {
    {"status", "status [options]", "one table for the whole cluster: role, term, progress, health",
     "Asks one node for INFO quorum, then every member it lists. Columns: ID, ADDRESS\n"
     "(client), ROLE, TERM, COMMIT, APPLIED, LAG (the leader's commit index minus the\n"
     "node's applied index) and HEALTH (ok, unreachable: reason, fatal: message,\n"
     "read-only, no leader).\n"
     "exit status: 0 when there is a leader and every member is healthy, 1 otherwise\n"
     "(the table is printed either way)\n",
     0, 0, run_status},
    {"members", "members [options]", "the membership: ID ROLE PEER CLIENT",
     "Prints the reply of QUORUM.MEMBERS from one node.\n", 0, 0, run_members},
    {"add", "add ID PEER_ADDR CLIENT_ADDR [options]", "add node ID as a learner",
     "Sends QUORUM.ADD to the leader; done when the node is a learner in the\n"
     "committed configuration. Start the node with --join first.\n",
     3, 3, run_admin},
    {"promote", "promote ID [options]", "make learner ID a voter",
     "Sends QUORUM.PROMOTE to the leader; done when the change is committed.\n", 1, 1, run_admin},
    {"remove", "remove ID [options]", "remove node ID from the cluster",
     "Sends QUORUM.REMOVE to the leader; done when the change is committed.\n", 1, 1, run_admin},
    {"transfer", "transfer [ID] [options]", "move leadership (to node ID)",
     "Sends QUORUM.TRANSFER to the leader; done once leadership moved.\n", 0, 1, run_admin},
    {"snapshot", "snapshot [ID] [options]", "take a snapshot on node ID (or the given node)",
     "Sends QUORUM.SNAPSHOT to member ID (found through INFO quorum), or to the node\n"
     "given by --node.\n",
     0, 1, run_snapshot},
    {"get", "get KEY [options]", "read a key", "Prints the value, or (nil).\n", 1, 1, run_data},
    {"set", "set KEY VALUE [options]", "write a key", "Prints OK.\n", 2, 2, run_data},
    {"del", "del KEY... [options]", "delete keys", "Prints (integer) N, the keys deleted.\n", 1,
     POSITIONALS_MAX, run_data},
};

#define COMMANDS_COUNT (sizeof(commands) / sizeof(commands[0]))

void ctl_common_usage(FILE *out)
{
    (void)fprintf(out,
                  "common options:\n"
                  "  --node HOST:PORT   the node to ask (default: the nodes recorded in --dir,\n"
                  "                     else " CTL_NODE_DEFAULT ")\n"
                  "  --dir D            cluster directory made by 'cluster up' (default\n"
                  "                     " CTL_DIR_DEFAULT " when it holds a cluster record)\n"
                  "  --password P       send AUTH P first\n"
                  "  --timeout-ms N     per connect and per command (default %d)\n"
                  "  --json             JSON output (status, members)\n"
                  "  -h, --help         this text\n",
                  CTL_TIMEOUT_MS_DEFAULT);
}

static const struct cmd_desc *find_command(const char *name)
{
    for (size_t k = 0; k < COMMANDS_COUNT; k++) {
        if (strcmp(commands[k].name, name) == 0) {
            return &commands[k];
        }
    }
    return NULL;
}

bool ctl_ops_has(const char *name)
{
    return find_command(name) != NULL;
}

void ctl_ops_list(FILE *out)
{
    for (size_t k = 0; k < COMMANDS_COUNT; k++) {
        const char *options = strstr(commands[k].synopsis, " [options]");
        int len = options != NULL ? (int)(options - commands[k].synopsis)
                                  : (int)strlen(commands[k].synopsis);
        (void)fprintf(out, "  %-34.*s %s\n", len, commands[k].synopsis, commands[k].summary);
    }
}

static void command_usage(FILE *out, const struct cmd_desc *cmd)
{
    (void)fprintf(out, "usage: quorumctl %s\n\n%s\n", cmd->synopsis, cmd->details);
    ctl_common_usage(out);
    (void)fprintf(out, "\nexit status: 0 ok, 1 failure, 2 bad usage\n");
}

static int parse_args(int argc, char *const *argv, struct cmd_args *args, char *errmsg)
{
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        bool is_option = !options_done && arg[0] == '-' && arg[1] != '\0';
        if (is_option) {
            int rv = ctl_common_parse_one(&args->common, argc, argv, &i, errmsg);
            if (rv < 0) {
                return rv;
            }
            if (rv == 0) {
                return qr__errf(errmsg, QR_EINVAL, "unknown option '%.40s' (see --help)", arg);
            }
            continue;
        }
        if (args->pos_count == POSITIONALS_MAX - 2) {
            return qr__errf(errmsg, QR_EINVAL, "too many arguments");
        }
        args->pos[args->pos_count++] = arg;
    }
    return 0;
}

int ctl_ops_run(const char *name, int argc, char *const *argv, const struct ctl_common *global)
{
    const struct cmd_desc *cmd = find_command(name);
    QR_ASSERT(cmd != NULL);
    struct cmd_args *args = qr_calloc(1, sizeof(*args));
    if (args == NULL) {
        (void)fprintf(stderr, "quorumctl %s: out of memory\n", name);
        return CTL_EXIT_FAILURE;
    }
    args->common = *global;
    args->name = cmd->name;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int status = CTL_EXIT_OK;
    int rv = parse_args(argc, argv, args, errmsg);
    if (rv == 0 && args->common.help) {
        command_usage(stdout, cmd);
    } else if (rv == 0 && (args->pos_count < cmd->pos_min || args->pos_count > cmd->pos_max)) {
        (void)fprintf(stderr, "quorumctl %s: wrong number of arguments (usage: quorumctl %s)\n",
                      name, cmd->synopsis);
        status = CTL_EXIT_USAGE;
    } else if (rv != 0) {
        (void)fprintf(stderr, "quorumctl %s: %s\n", name, errmsg);
        status = CTL_EXIT_USAGE;
    } else {
        args->pos[args->pos_count] = NULL;
        status = cmd->run(args);
    }
    qr_free(args);
    return status;
}

/* Parses a node id argument; prints the usage error itself. */
static bool parse_id(const char *command, const char *text, uint64_t *id_out)
{
    char errmsg[QR_ERRMSG_SIZE];
    if (qr__parse_u64(text, 1, UINT64_MAX, id_out, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl %s: node id: %s\n", command, errmsg);
        return false;
    }
    return true;
}

/* ---- status ---- */

struct status_row {
    uint64_t id;
    char addr[CTL_ADDR_SIZE];
    bool has_info;
    char err[QR_ERRMSG_SIZE]; /* Why it is unreachable, without the address prefix. */
    struct ctl_info info;
};

struct status {
    struct ctl_record rec;
    char targets[CTL_TARGETS_MAX][CTL_ADDR_SIZE];
    size_t targets_count;
    struct status_row rows[CTL_MEMBERS_MAX];
    size_t rows_count;
    const struct status_row *leader; /* Highest-term node reporting role:leader, or NULL. */
};

/* Drops a leading "<addr>: " from a message, as the address has its own column. */
static void row_set_err(struct status_row *row, const char *errmsg)
{
    size_t len = strlen(row->addr);
    if (len > 0 && strncmp(errmsg, row->addr, len) == 0 && strncmp(errmsg + len, ": ", 2) == 0) {
        errmsg += len + 2;
    }
    (void)snprintf(row->err, sizeof(row->err), "%s", errmsg); /* Same size. */
}

static void status_fetch_row(const struct ctl_common *common, struct status_row *row)
{
    char errmsg[QR_ERRMSG_SIZE];
    if (row->addr[0] == '\0') {
        (void)snprintf(row->err, sizeof(row->err), "client address not known yet");
        return;
    }
    row->has_info = ctl_fetch_info(common, row->addr, &row->info, errmsg) == 0;
    if (!row->has_info) {
        row_set_err(row, errmsg);
    } else if (row->id != 0 && row->info.node_id != row->id) {
        row->has_info = false;
        (void)snprintf(row->err, sizeof(row->err), "answers as node %llu",
                       (unsigned long long)row->info.node_id);
    }
}

/* Makes one row per member of the seed's configuration, reusing the seed's own answer. */
static void status_rows_from_seed(struct status *st, const struct ctl_common *common)
{
    const struct status_row seed = st->rows[0];
    const struct ctl_info *info = &seed.info;
    if (info->members_count == 0) {
        st->rows_count = 1;
        st->rows[0].id = info->node_id;
        return;
    }
    st->rows_count = info->members_count;
    for (size_t k = 0; k < info->members_count; k++) {
        struct status_row *row = &st->rows[k];
        const struct ctl_member *m = &info->members[k];
        if (m->id == info->node_id) {
            *row = seed;
            row->id = m->id;
            continue;
        }
        memset(row, 0, sizeof(*row));
        row->id = m->id;
        const struct ctl_record_node *recorded = ctl_record_node(&st->rec, m->id);
        const char *addr = m->client[0] != '\0' ? m->client
                           : recorded != NULL   ? recorded->client
                                                : "";
        (void)snprintf(row->addr, sizeof(row->addr), "%s", addr); /* Same size. */
        status_fetch_row(common, row);
    }
}

/* Returns false when no node answered (rows then list the targets as unreachable). */
static bool status_collect(struct status *st, const struct ctl_common *common)
{
    for (size_t k = 0; k < st->targets_count; k++) {
        struct status_row *row = &st->rows[k];
        memset(row, 0, sizeof(*row));
        memcpy(row->addr, st->targets[k], CTL_ADDR_SIZE);
        if (st->rec.nodes_count > k && common->node == NULL) {
            row->id = st->rec.nodes[k].id;
        }
        status_fetch_row(common, row);
        if (row->has_info) {
            if (k > 0) {
                st->rows[0] = *row;
            }
            status_rows_from_seed(st, common);
            return true;
        }
    }
    st->rows_count = st->targets_count;
    return false;
}

static void status_find_leader(struct status *st)
{
    st->leader = NULL;
    for (size_t k = 0; k < st->rows_count; k++) {
        const struct status_row *row = &st->rows[k];
        if (row->has_info && strcmp(row->info.role, "leader") == 0 &&
            (st->leader == NULL || row->info.term > st->leader->info.term)) {
            st->leader = row;
        }
    }
}

static void status_health(const struct status_row *row, char *out)
{
    if (!row->has_info) {
        (void)snprintf(out, CELL_SIZE, "unreachable: %s", row->err);
    } else if (row->info.fatal[0] != '\0') {
        (void)snprintf(out, CELL_SIZE, "fatal: %s", row->info.fatal);
    } else if (row->info.is_read_only) {
        (void)snprintf(out, CELL_SIZE, "read-only");
    } else if (row->info.leader_id == 0) {
        (void)snprintf(out, CELL_SIZE, "no leader");
    } else {
        (void)snprintf(out, CELL_SIZE, "ok");
    }
}

/* LAG: the leader's commit index minus this node's applied index, else the leader's figure. */
static bool status_lag(const struct status *st, const struct status_row *row, uint64_t *lag_out)
{
    if (st->leader == NULL) {
        return false;
    }
    if (row->has_info) {
        uint64_t commit = st->leader->info.commit_index;
        *lag_out = commit > row->info.applied_index ? commit - row->info.applied_index : 0;
        return true;
    }
    const struct ctl_member *m = ctl_info_member(&st->leader->info, row->id);
    if (m != NULL && m->has_progress) {
        *lag_out = m->lag;
        return true;
    }
    return false;
}

#define STATUS_COLUMNS 8

static void
status_cells(const struct status *st, const struct status_row *row, char (*cells)[CELL_SIZE])
{
    uint64_t lag = 0;
    (void)snprintf(cells[0], CELL_SIZE, "%llu", (unsigned long long)row->id);
    (void)snprintf(cells[1], CELL_SIZE, "%s", row->addr[0] != '\0' ? row->addr : "-");
    if (row->has_info) {
        (void)snprintf(cells[2], CELL_SIZE, "%s", row->info.role);
        (void)snprintf(cells[3], CELL_SIZE, "%llu", (unsigned long long)row->info.term);
        (void)snprintf(cells[4], CELL_SIZE, "%llu", (unsigned long long)row->info.commit_index);
        (void)snprintf(cells[5], CELL_SIZE, "%llu", (unsigned long long)row->info.applied_index);
    } else {
        for (size_t c = 2; c <= 5; c++) {
            (void)snprintf(cells[c], CELL_SIZE, "-");
        }
    }
    if (status_lag(st, row, &lag)) {
        (void)snprintf(cells[6], CELL_SIZE, "%llu", (unsigned long long)lag);
    } else {
        (void)snprintf(cells[6], CELL_SIZE, "-");
    }
    status_health(row, cells[7]);
}

static void status_print_table(const struct status *st, char (*cells)[STATUS_COLUMNS][CELL_SIZE])
{
    static const char *const heads[STATUS_COLUMNS] = {"ID",     "ADDRESS", "ROLE", "TERM",
                                                      "COMMIT", "APPLIED", "LAG",  "HEALTH"};
    size_t widths[STATUS_COLUMNS];
    for (size_t c = 0; c < STATUS_COLUMNS; c++) {
        widths[c] = strlen(heads[c]);
        for (size_t r = 0; r < st->rows_count; r++) {
            size_t len = strlen(cells[r][c]);
            widths[c] = len > widths[c] ? len : widths[c];
        }
    }
    for (size_t r = 0; r <= st->rows_count; r++) {
        for (size_t c = 0; c < STATUS_COLUMNS; c++) {
            const char *text = r == 0 ? heads[c] : cells[r - 1][c];
            if (c + 1 == STATUS_COLUMNS) {
                (void)printf("%s\n", text);
            } else {
                (void)printf("%-*s  ", (int)widths[c], text);
            }
        }
    }
}

static void status_print_json(const struct status *st, char (*cells)[STATUS_COLUMNS][CELL_SIZE])
{
    (void)printf("{\"leader_id\":%llu,\"nodes\":[",
                 st->leader != NULL ? (unsigned long long)st->leader->info.node_id : 0ULL);
    for (size_t r = 0; r < st->rows_count; r++) {
        const struct status_row *row = &st->rows[r];
        (void)printf("%s{\"id\":%llu,\"address\":", r > 0 ? "," : "", (unsigned long long)row->id);
        ctl_json_string(stdout, row->addr);
        (void)printf(",\"role\":");
        if (row->has_info) {
            ctl_json_string(stdout, row->info.role);
        } else {
            (void)printf("null");
        }
        (void)printf(",\"term\":%s,\"commit_index\":%s,\"applied_index\":%s,\"lag\":%s",
                     row->has_info ? cells[r][3] : "null", row->has_info ? cells[r][4] : "null",
                     row->has_info ? cells[r][5] : "null",
                     strcmp(cells[r][6], "-") != 0 ? cells[r][6] : "null");
        (void)printf(",\"health\":");
        ctl_json_string(stdout, cells[r][7]);
        (void)printf("}");
    }
    (void)printf("]}\n");
}

/* Prints the table; returns whether there is a leader and every member is ok. */
static bool status_print(const struct status *st, bool json)
{
    char(*cells)[STATUS_COLUMNS][CELL_SIZE] = qr_calloc(st->rows_count, sizeof(*cells));
    if (cells == NULL) {
        (void)fprintf(stderr, "quorumctl status: out of memory\n");
        return false;
    }
    bool healthy = st->leader != NULL;
    for (size_t r = 0; r < st->rows_count; r++) {
        status_cells(st, &st->rows[r], cells[r]);
        healthy = healthy && strcmp(cells[r][7], "ok") == 0;
    }
    if (json) {
        status_print_json(st, cells);
    } else {
        status_print_table(st, cells);
        if (st->leader != NULL) {
            (void)printf("leader: node %llu at %s, term %llu; %s\n",
                         (unsigned long long)st->leader->info.node_id, st->leader->addr,
                         (unsigned long long)st->leader->info.term,
                         healthy ? "all members healthy" : "some members are not healthy");
        } else {
            (void)printf("no leader among the members that answered\n");
        }
    }
    qr_free(cells);
    return healthy;
}

static int run_status(const struct cmd_args *args)
{
    struct status *st = qr_calloc(1, sizeof(*st));
    if (st == NULL) {
        (void)fprintf(stderr, "quorumctl status: out of memory\n");
        return CTL_EXIT_FAILURE;
    }
    char errmsg[QR_ERRMSG_SIZE];
    int status = CTL_EXIT_FAILURE;
    if (ctl_common_targets(&args->common, st->targets, &st->targets_count, &st->rec, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl status: %s\n", errmsg);
        goto done;
    }
    bool answered = status_collect(st, &args->common);
    if (!answered && st->rec.nodes_count == 0) {
        (void)fprintf(stderr, "quorumctl status: %s: %s\n", st->rows[0].addr, st->rows[0].err);
        goto done;
    }
    status_find_leader(st);
    if (status_print(st, args->common.json)) {
        status = CTL_EXIT_OK;
    }
done:
    qr_free(st);
    return status;
}

/* ---- members ---- */

/* Asks the targets in order until one answers; prints why the last one failed otherwise. */
static int ask_any(const struct cmd_args *args,
                   const char *command,
                   int argc,
                   const char *const *argv,
                   char *answered_out,
                   struct ctl_reply **reply_out)
{
    char targets[CTL_TARGETS_MAX][CTL_ADDR_SIZE];
    size_t targets_count = 0;
    char errmsg[QR_ERRMSG_SIZE];
    struct ctl_record *rec = qr_malloc(sizeof(*rec));
    if (rec == NULL) {
        (void)fprintf(stderr, "quorumctl %s: out of memory\n", command);
        return QR_ENOMEM;
    }
    int rv = ctl_common_targets(&args->common, targets, &targets_count, rec, errmsg);
    qr_free(rec);
    char first_err[QR_ERRMSG_SIZE] = "";
    for (size_t k = 0; rv == 0 && k < targets_count; k++) {
        rv = ctl_ask(&args->common, targets[k], argc, argv, reply_out, errmsg);
        if (rv == 0) {
            QR_ASSERT(*reply_out != NULL);
            memcpy(answered_out, targets[k], CTL_ADDR_SIZE);
            return 0;
        }
        if (k == 0) {
            memcpy(first_err, errmsg, sizeof(first_err));
        }
        if (k + 1 < targets_count) {
            rv = 0;
        }
    }
    if (QR_NEVER(rv == 0)) {
        (void)qr__errf(errmsg, QR_EINTERNAL, "no node to ask");
        rv = QR_EINTERNAL;
    }
    if (targets_count > 1 && first_err[0] != '\0') {
        (void)fprintf(stderr, "quorumctl %s: %s (and %zu more nodes did not answer)\n", command,
                      first_err, targets_count - 1);
        return rv;
    }
    (void)fprintf(stderr, "quorumctl %s: %s\n", command, errmsg);
    return rv;
}

/* Prints -ERR replies with the node's address; returns whether the reply is an error. */
static bool reply_is_error(const char *command, const char *addr, const struct ctl_reply *reply)
{
    if (reply->type != CTL_REPLY_ERROR) {
        return false;
    }
    const char *hint = strncmp(reply->str, "NOAUTH", 6) == 0 ? " (use --password)" : "";
    (void)fprintf(stderr, "quorumctl %s: %s: %s%s\n", command, addr, reply->str, hint);
    return true;
}

static bool member_shape_ok(const struct ctl_reply *m)
{
    if (m->type != CTL_REPLY_ARRAY || m->elements_count < 4 ||
        m->elements[0]->type != CTL_REPLY_INTEGER || m->elements[0]->integer < 1) {
        return false;
    }
    for (size_t k = 1; k < 4; k++) {
        if (m->elements[k]->type != CTL_REPLY_BULK && m->elements[k]->type != CTL_REPLY_NIL) {
            return false;
        }
    }
    return true;
}

static const char *member_text(const struct ctl_reply *m, size_t k)
{
    return m->elements[k]->type == CTL_REPLY_BULK ? m->elements[k]->str : "";
}

static void members_print(const struct ctl_reply *reply, bool json)
{
    if (json) {
        (void)printf("[");
        for (size_t r = 0; r < reply->elements_count; r++) {
            const struct ctl_reply *m = reply->elements[r];
            (void)printf("%s{\"id\":%lld,\"role\":", r > 0 ? "," : "",
                         (long long)m->elements[0]->integer);
            ctl_json_string(stdout, member_text(m, 1));
            (void)printf(",\"peer\":");
            ctl_json_string(stdout, member_text(m, 2));
            (void)printf(",\"client\":");
            ctl_json_string(stdout, member_text(m, 3));
            (void)printf("}");
        }
        (void)printf("]\n");
        return;
    }
    int widths[3] = {(int)strlen("ROLE"), (int)strlen("PEER"), 0};
    for (size_t r = 0; r < reply->elements_count; r++) {
        for (size_t k = 1; k < 3; k++) {
            int len = (int)strlen(member_text(reply->elements[r], k));
            widths[k - 1] = len > widths[k - 1] ? len : widths[k - 1];
        }
    }
    (void)printf("%-4s  %-*s  %-*s  CLIENT\n", "ID", widths[0], "ROLE", widths[1], "PEER");
    for (size_t r = 0; r < reply->elements_count; r++) {
        const struct ctl_reply *m = reply->elements[r];
        const char *client = member_text(m, 3);
        (void)printf("%-4lld  %-*s  %-*s  %s\n", (long long)m->elements[0]->integer, widths[0],
                     member_text(m, 1), widths[1], member_text(m, 2),
                     client[0] != '\0' ? client : "-");
    }
}

static int run_members(const struct cmd_args *args)
{
    const char *argv[] = {"QUORUM.MEMBERS"};
    char addr[CTL_ADDR_SIZE];
    struct ctl_reply *reply = NULL;
    if (ask_any(args, "members", 1, argv, addr, &reply) != 0) {
        return CTL_EXIT_FAILURE;
    }
    int status = CTL_EXIT_FAILURE;
    if (reply_is_error("members", addr, reply)) {
        goto done;
    }
    bool ok = reply->type == CTL_REPLY_ARRAY;
    for (size_t r = 0; ok && r < reply->elements_count; r++) {
        ok = member_shape_ok(reply->elements[r]);
    }
    if (!ok) {
        (void)fprintf(stderr, "quorumctl members: %s: unexpected reply to QUORUM.MEMBERS\n", addr);
        goto done;
    }
    members_print(reply, args->common.json);
    status = CTL_EXIT_OK;
done:
    ctl_reply_free(reply);
    return status;
}

/* ---- add, promote, remove, transfer ---- */

/* Checks the words of add/promote/remove/transfer; false after printing a usage error. */
static bool admin_check(const char *name, const struct cmd_args *args)
{
    uint64_t id = 0;
    if (args->pos_count >= 1 && !parse_id(name, args->pos[0], &id)) {
        return false;
    }
    for (int k = 1; k < args->pos_count; k++) {
        char host[CTL_ADDR_SIZE];
        uint16_t port = 0;
        char errmsg[QR_ERRMSG_SIZE];
        if (ctl_addr_split(args->pos[k], host, &port, errmsg) != 0) {
            (void)fprintf(stderr, "quorumctl %s: %s: %s\n", name,
                          k == 1 ? "PEER_ADDR" : "CLIENT_ADDR", errmsg);
            return false;
        }
    }
    return true;
}

static void admin_print_ok(const struct cmd_args *args, const char *addr)
{
    const char *id = args->pos_count > 0 ? args->pos[0] : "";
    if (strcmp(args->name, "add") == 0) {
        (void)printf("OK: node %s is a learner (leader %s); next: quorumctl promote %s\n", id, addr,
                     id);
    } else if (strcmp(args->name, "promote") == 0) {
        (void)printf("OK: node %s is a voter (leader %s)\n", id, addr);
    } else if (strcmp(args->name, "remove") == 0) {
        (void)printf("OK: node %s removed (leader %s)\n", id, addr);
    } else if (args->pos_count > 0) {
        (void)printf("OK: leadership moved from %s to node %s\n", addr, id);
    } else {
        (void)printf("OK: leadership moved away from %s\n", addr);
    }
}

static int run_admin(const struct cmd_args *args)
{
    if (!admin_check(args->name, args)) {
        return CTL_EXIT_USAGE;
    }
    static const char *const verbs[][2] = {{"add", "QUORUM.ADD"},
                                           {"promote", "QUORUM.PROMOTE"},
                                           {"remove", "QUORUM.REMOVE"},
                                           {"transfer", "QUORUM.TRANSFER"}};
    const char *argv[4] = {NULL, NULL, NULL, NULL};
    for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++) {
        if (strcmp(args->name, verbs[k][0]) == 0) {
            argv[0] = verbs[k][1];
        }
    }
    QR_ASSERT(argv[0] != NULL);
    QR_ASSERT(args->pos_count <= 3);
    for (int k = 0; k < args->pos_count; k++) {
        argv[k + 1] = args->pos[k];
    }
    char addr[CTL_ADDR_SIZE];
    char errmsg[QR_ERRMSG_SIZE];
    struct ctl_reply *reply = NULL;
    if (ctl_leader_command(&args->common, args->pos_count + 1, argv, addr, &reply, errmsg) != 0) {
        (void)fprintf(stderr, "quorumctl %s: %s\n", args->name, errmsg);
        return CTL_EXIT_FAILURE;
    }
    QR_ASSERT(reply != NULL);
    int status = CTL_EXIT_FAILURE;
    if (!reply_is_error(args->name, addr, reply)) {
        if (reply->type == CTL_REPLY_STATUS) {
            admin_print_ok(args, addr);
            status = CTL_EXIT_OK;
        } else {
            (void)fprintf(stderr, "quorumctl %s: %s: unexpected reply to %s\n", args->name, addr,
                          argv[0]);
        }
    }
    ctl_reply_free(reply);
    return status;
}

/* ---- snapshot ---- */

/* The client address of member id, found through INFO quorum (or the cluster record). */
static int snapshot_find(const struct cmd_args *args, uint64_t id, char *addr_out)
{
    const char *argv[] = {"INFO", "quorum"};
    char answered[CTL_ADDR_SIZE];
    struct ctl_reply *reply = NULL;
    int rv = ask_any(args, "snapshot", 2, argv, answered, &reply);
    if (rv != 0) {
        return rv;
    }
    char errmsg[QR_ERRMSG_SIZE] = "";
    struct ctl_info *info = qr_malloc(sizeof(*info));
    if (info == NULL) {
        rv = qr__errf(errmsg, QR_ENOMEM, "out of memory");
    } else if (reply->type != CTL_REPLY_BULK) {
        rv = qr__errf(errmsg, QR_EPROTO, "%s: INFO quorum: %s", answered,
                      reply->type == CTL_REPLY_ERROR ? reply->str : "unexpected reply");
    } else if (ctl_info_parse(reply->str, reply->len, info, errmsg) != 0) {
        rv = qr__err_wrapf(errmsg, QR_EPROTO, "%s", answered);
    } else {
        const struct ctl_member *m = ctl_info_member(info, id);
        if (m == NULL) {
            rv = qr__errf(errmsg, QR_ENOTFOUND, "node %llu is not a member (asked %s)",
                          (unsigned long long)id, answered);
        } else if (m->client[0] == '\0') {
            rv = qr__errf(errmsg, QR_ENOTFOUND, "the client address of node %llu is not known",
                          (unsigned long long)id);
        } else {
            (void)snprintf(addr_out, CTL_ADDR_SIZE, "%s", m->client); /* Same size. */
        }
    }
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl snapshot: %s\n", errmsg);
    }
    qr_free(info);
    ctl_reply_free(reply);
    return rv;
}

static int run_snapshot(const struct cmd_args *args)
{
    const char *argv[] = {"QUORUM.SNAPSHOT"};
    char addr[CTL_ADDR_SIZE];
    struct ctl_reply *reply = NULL;
    uint64_t id = 0;
    if (args->pos_count == 1) {
        if (!parse_id("snapshot", args->pos[0], &id)) {
            return CTL_EXIT_USAGE;
        }
        if (snapshot_find(args, id, addr) != 0) {
            return CTL_EXIT_FAILURE;
        }
        char errmsg[QR_ERRMSG_SIZE];
        if (ctl_ask(&args->common, addr, 1, argv, &reply, errmsg) != 0) {
            (void)fprintf(stderr, "quorumctl snapshot: %s\n", errmsg);
            return CTL_EXIT_FAILURE;
        }
    } else if (ask_any(args, "snapshot", 1, argv, addr, &reply) != 0) {
        return CTL_EXIT_FAILURE;
    }
    QR_ASSERT(reply != NULL);
    int status = CTL_EXIT_FAILURE;
    if (!reply_is_error("snapshot", addr, reply)) {
        (void)printf("OK: %s took a snapshot\n", addr);
        status = CTL_EXIT_OK;
    }
    ctl_reply_free(reply);
    return status;
}

/* ---- get, set, del ---- */

static int run_data(const struct cmd_args *args)
{
    const char **argv = qr_calloc((size_t)args->pos_count + 1, sizeof(argv[0]));
    if (argv == NULL) {
        (void)fprintf(stderr, "quorumctl %s: out of memory\n", args->name);
        return CTL_EXIT_FAILURE;
    }
    argv[0] = strcmp(args->name, "get") == 0   ? "GET"
              : strcmp(args->name, "set") == 0 ? "SET"
                                               : "DEL";
    for (int k = 0; k < args->pos_count; k++) {
        argv[k + 1] = args->pos[k];
    }
    char addr[CTL_ADDR_SIZE];
    char errmsg[QR_ERRMSG_SIZE];
    struct ctl_reply *reply = NULL;
    int rv = ctl_leader_command(&args->common, args->pos_count + 1, argv, addr, &reply, errmsg);
    qr_free(argv);
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl %s: %s\n", args->name, errmsg);
        return CTL_EXIT_FAILURE;
    }
    QR_ASSERT(reply != NULL);
    int status = CTL_EXIT_FAILURE;
    if (!reply_is_error(args->name, addr, reply)) {
        ctl_reply_print(stdout, reply);
        status = CTL_EXIT_OK;
    }
    ctl_reply_free(reply);
    return status;
}
