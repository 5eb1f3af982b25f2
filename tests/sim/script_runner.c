/*
 * tests/sim/script_runner.c: scripted scenario tests of the consensus core.
 *
 * A script is a text file of commands, one per line; the output each command
 * produces follows it on lines starting with "> ". The runner replays the
 * commands on the in-memory cluster (tests/lib/test_cluster.h) and compares
 * the output with the expected lines. With QR_SIM_REWRITE=1 it rewrites the
 * file with the actual output, for a reviewer to read as a diff.
 *
 * Commands (ids are node ids):
 *   cluster N [voters V]    start N nodes, the first V (default N) voting
 *   campaign ID             start an election on ID
 *   stabilize               deliver messages until quiet
 *   deliver [N]             one round (or N rounds) of delivery: every queued message once
 *   tick [T]                tick every live node T times (default 1), stabilizing after each
 *   propose ID TEXT         propose TEXT on ID (prints the error, if any)
 *   read ID REQ             ask ID for a linearizable read with request id REQ
 *   isolate ID / rejoin ID  cut ID off from every node / heal it
 *   cut A B / heal A B      cut / heal both directions between A and B
 *   crash ID / restart ID   lose unsynced state and stop / rebuild from the disk
 *   manual ID / persist ID  hold ID's persist batches / persist the held one
 *   add-learner ID LEARNER  propose a config adding LEARNER as learner, on leader ID
 *   set-voters ID V1,V2,..  propose the voter set (learners kept unless voters), on ID
 *   transfer ID TARGET      leadership transfer on leader ID
 *   snapshot ID [TRAILING]  leader ID snapshots at its applied index, keeping TRAILING entries
 *   status                  one line per node
 *   applied ID              the entries ID applied
 *   log ID                  the entries in ID's memory
 *   trace on|off            print every delivered message
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorum/err.h"
#include "test_cluster.h"

#define LINE_SIZE        512
#define SCRIPT_LINES_MAX 4096
#define OUTPUT_SIZE_MAX  (1 << 20)

struct runner {
    struct tc_cluster cluster;
    bool started;
    char *out; /* Output of the current command. */
    size_t out_len;
};

static void outf(struct runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void outf(struct runner *r, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    size_t room = OUTPUT_SIZE_MAX - r->out_len;
    int n = vsnprintf(r->out + r->out_len, room, fmt, args);
    va_end(args);
    if (n > 0) {
        r->out_len += (size_t)n < room ? (size_t)n : room - 1;
    }
}

static void print_status(struct runner *r)
{
    for (size_t i = 0; i < r->cluster.nodes_count; i++) {
        struct tc_node *n = &r->cluster.nodes[i];
        if (n->down) {
            outf(r, "%llu: down\n", (unsigned long long)n->id);
            continue;
        }
        struct qr_core_status s;
        qr_core_status(n->core, &s);
        outf(r, "%llu: %s term=%llu leader=%llu commit=%llu applied=%llu last=%llu",
             (unsigned long long)s.id, qr_role_name(s.role), (unsigned long long)s.term,
             (unsigned long long)s.leader, (unsigned long long)s.commit,
             (unsigned long long)s.applied, (unsigned long long)s.last_index);
        if (s.snapshot_index != 0) {
            outf(r, " snapshot=%llu", (unsigned long long)s.snapshot_index);
        }
        outf(r, " voters=");
        for (uint32_t k = 0; k < s.config.voters_count; k++) {
            outf(r, "%s%llu", k ? "," : "", (unsigned long long)s.config.voters[k]);
        }
        if (s.config.voters_old_count > 0) {
            outf(r, " old=");
            for (uint32_t k = 0; k < s.config.voters_old_count; k++) {
                outf(r, "%s%llu", k ? "," : "", (unsigned long long)s.config.voters_old[k]);
            }
        }
        if (s.config.learners_count > 0) {
            outf(r, " learners=");
            for (uint32_t k = 0; k < s.config.learners_count; k++) {
                outf(r, "%s%llu", k ? "," : "", (unsigned long long)s.config.learners[k]);
            }
        }
        outf(r, "\n");
    }
}

static void print_entry(struct runner *r, const struct qr_entry *e)
{
    static const char *const types[] = {"?", "normal", "noop", "config"};
    outf(r, "%llu/%llu %s", (unsigned long long)e->index, (unsigned long long)e->term,
         types[(int)e->type <= 3 ? (int)e->type : 0]);
    if (e->type == QR_ENTRY_NORMAL) {
        outf(r, " %.*s", (int)e->data.len, (const char *)e->data.base);
    }
    outf(r, "\n");
}

static qr_node_id arg_id(const char *s)
{
    return s != NULL ? (qr_node_id)strtoull(s, NULL, 10) : 0;
}

static void trace_hook(void *ctx, const struct qr_msg *m)
{
    struct runner *r = ctx;
    outf(r, "%llu->%llu %s term=%llu", (unsigned long long)m->from, (unsigned long long)m->to,
         qr_msg_type_name(m->type), (unsigned long long)m->term);
    if (m->type == QR_MSG_APPEND) {
        outf(r, " log=%llu/%llu commit=%llu entries=%zu", (unsigned long long)m->log_index,
             (unsigned long long)m->log_term, (unsigned long long)m->commit, m->entries_count);
    } else if (m->type == QR_MSG_VOTE || m->type == QR_MSG_VOTE_RESPONSE) {
        outf(r, "%s%s", m->prevote ? " pre" : "", m->reject ? " reject" : "");
    } else if (m->type == QR_MSG_APPEND_RESPONSE) {
        outf(r, " index=%llu%s", (unsigned long long)m->index, m->reject ? " reject" : "");
    }
    outf(r, "\n");
}

static int set_voters(struct runner *r, qr_node_id id, const char *list)
{
    struct qr_core_status s;
    qr_core_status(tc_node(&r->cluster, id)->core, &s);
    struct qr_config next;
    memset(&next, 0, sizeof(next));
    const char *p = list;
    while (p != NULL && *p != '\0' && next.voters_count < QR_CORE_MEMBERS_MAX) {
        next.voters[next.voters_count++] = strtoull(p, NULL, 10);
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    for (uint32_t i = 0; i < s.config.learners_count; i++) {
        bool voter = false;
        for (uint32_t k = 0; k < next.voters_count; k++) {
            voter = voter || next.voters[k] == s.config.learners[i];
        }
        if (!voter) {
            next.learners[next.learners_count++] = s.config.learners[i];
        }
    }
    char errmsg[QR_ERRMSG_SIZE];
    return qr_core_change_config(tc_node(&r->cluster, id)->core, &next, errmsg);
}

static int add_learner(struct runner *r, qr_node_id id, qr_node_id learner)
{
    struct qr_core_status s;
    qr_core_status(tc_node(&r->cluster, id)->core, &s);
    struct qr_config next = s.config;
    next.voters_old_count = 0;
    next.learners[next.learners_count++] = learner;
    char errmsg[QR_ERRMSG_SIZE];
    return qr_core_change_config(tc_node(&r->cluster, id)->core, &next, errmsg);
}

static int take_snapshot(struct runner *r, qr_node_id id, uint64_t trailing)
{
    struct qr_core *core = tc_node(&r->cluster, id)->core;
    struct qr_core_status s;
    qr_core_status(core, &s);
    struct qr_snapshot_meta meta;
    int rv = qr_core_snapshot_meta(core, s.applied, &meta);
    if (rv == 0) {
        rv = qr_core_snapshot_taken(core, &meta, trailing);
    }
    return rv;
}

/* Runs one command; returns false on an unknown command. */
static bool run(struct runner *r, char *line)
{
    char *argv[8] = {0};
    int argc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok != NULL && argc < 8;
         tok = strtok_r(NULL, " \t", &save)) {
        argv[argc++] = tok;
    }
    if (argc == 0) {
        return true;
    }
    struct tc_cluster *c = &r->cluster;
    const char *cmd = argv[0];
    qr_node_id a = arg_id(argv[1]);
    qr_node_id b = arg_id(argv[2]);
    int rv = 0;
    if (strcmp(cmd, "cluster") == 0) {
        size_t voters = argc >= 4 && strcmp(argv[2], "voters") == 0 ? (size_t)arg_id(argv[3]) : a;
        tc_init(c, (size_t)a, voters);
        c->trace = NULL;
        r->started = true;
        tc_stabilize(c, 10);
    } else if (strcmp(cmd, "trace") == 0) {
        c->trace = argc > 1 && strcmp(argv[1], "on") == 0 ? trace_hook : NULL;
        c->trace_ctx = r;
    } else if (strcmp(cmd, "campaign") == 0) {
        qr_core_campaign(tc_node(c, a)->core);
    } else if (strcmp(cmd, "deliver") == 0) {
        for (qr_node_id k = 0; k < (a == 0 ? 1 : a); k++) {
            tc_drain(c);
            (void)tc_deliver(c);
        }
    } else if (strcmp(cmd, "stabilize") == 0) {
        tc_stabilize(c, 200);
    } else if (strcmp(cmd, "tick") == 0) {
        tc_tick_all(c, a == 0 ? 1 : (int)a);
    } else if (strcmp(cmd, "propose") == 0) {
        rv = tc_propose(c, a, argc > 2 ? argv[2] : "");
    } else if (strcmp(cmd, "read") == 0) {
        rv = qr_core_read_index(tc_node(c, a)->core, b);
    } else if (strcmp(cmd, "isolate") == 0 || strcmp(cmd, "rejoin") == 0) {
        tc_isolate(c, a, cmd[0] == 'i');
    } else if (strcmp(cmd, "cut") == 0 || strcmp(cmd, "heal") == 0) {
        tc_partition(c, a, b, cmd[0] == 'c');
    } else if (strcmp(cmd, "crash") == 0) {
        tc_crash(c, a);
    } else if (strcmp(cmd, "restart") == 0) {
        tc_restart(c, a);
    } else if (strcmp(cmd, "manual") == 0) {
        tc_node(c, a)->auto_persist = false;
    } else if (strcmp(cmd, "persist") == 0) {
        tc_persist(c, a);
    } else if (strcmp(cmd, "add-learner") == 0) {
        rv = add_learner(r, a, b);
    } else if (strcmp(cmd, "set-voters") == 0) {
        rv = set_voters(r, a, argv[2]);
    } else if (strcmp(cmd, "transfer") == 0) {
        rv = qr_core_transfer_leader(tc_node(c, a)->core, b);
    } else if (strcmp(cmd, "snapshot") == 0) {
        rv = take_snapshot(r, a, b);
    } else if (strcmp(cmd, "status") == 0) {
        print_status(r);
    } else if (strcmp(cmd, "applied") == 0 || strcmp(cmd, "log") == 0) {
        struct tc_node *n = tc_node(c, a);
        if (cmd[0] == 'a') {
            for (size_t i = 0; i < n->applied_count; i++) {
                print_entry(r, &n->applied[i]);
            }
            for (size_t i = 0; i < n->reads_done_count; i++) {
                outf(r, "read %llu at %llu\n", (unsigned long long)n->reads_done[i],
                     (unsigned long long)n->reads_index[i]);
            }
        } else {
            struct qr_core_status s;
            qr_core_status(n->core, &s);
            for (qr_index i = s.first_index; i <= s.last_index; i++) {
                const struct qr_entry *e = NULL;
                if (qr_core_entry(n->core, i, &e) == 0) {
                    print_entry(r, e);
                }
            }
        }
    } else {
        return false;
    }
    if (rv != 0) {
        outf(r, "error: %s\n", qr_err_name(rv));
    }
    return true;
}

static char *read_file(const char *path, size_t *size_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = malloc(OUTPUT_SIZE_MAX);
    size_t size = fread(buf, 1, OUTPUT_SIZE_MAX - 1, f);
    buf[size] = '\0';
    (void)fclose(f);
    *size_out = size;
    return buf;
}

/* Runs one script; returns the number of mismatching commands (or -1 on error). */
static int run_script(const char *path, bool rewrite)
{
    size_t size = 0;
    char *text = read_file(path, &size);
    if (text == NULL) {
        fprintf(stderr, "script: cannot read %s\n", path);
        return -1;
    }
    static struct runner r;
    memset(&r, 0, sizeof(r));
    r.out = malloc(OUTPUT_SIZE_MAX);
    char *rewritten = malloc(OUTPUT_SIZE_MAX * 2);
    size_t rewritten_len = 0;
    int mismatches = 0;
    int line_no = 0;
    char *save = NULL;
    char *lines[SCRIPT_LINES_MAX];
    size_t count = 0;
    for (char *l = strtok_r(text, "\n", &save); l != NULL && count < SCRIPT_LINES_MAX;
         l = strtok_r(NULL, "\n", &save)) {
        lines[count++] = l;
    }
    for (size_t i = 0; i < count;) {
        char *cmd = lines[i++];
        line_no = (int)i;
        if (cmd[0] == '>') {
            continue; /* Stray expected output without a command: dropped on rewrite. */
        }
        static char expected[OUTPUT_SIZE_MAX / 4];
        size_t expected_len = 0;
        expected[0] = '\0';
        while (i < count && lines[i][0] == '>') {
            const char *e = lines[i][1] == ' ' ? lines[i] + 2 : lines[i] + 1;
            expected_len += (size_t)snprintf(expected + expected_len,
                                             sizeof(expected) - expected_len, "%s\n", e);
            i++;
        }
        rewritten_len += (size_t)snprintf(rewritten + rewritten_len,
                                          OUTPUT_SIZE_MAX * 2 - rewritten_len, "%s\n", cmd);
        r.out_len = 0;
        r.out[0] = '\0';
        if (cmd[0] != '#' && cmd[0] != '\0') {
            char copy[LINE_SIZE];
            snprintf(copy, sizeof(copy), "%s", cmd);
            if (!run(&r, copy)) {
                fprintf(stderr, "%s:%d: unknown command '%s'\n", path, line_no, cmd);
                mismatches++;
            }
        }
        for (char *o = r.out; *o != '\0';) {
            char *nl = strchr(o, '\n');
            size_t len = nl != NULL ? (size_t)(nl - o) : strlen(o);
            rewritten_len +=
                (size_t)snprintf(rewritten + rewritten_len, OUTPUT_SIZE_MAX * 2 - rewritten_len,
                                 "> %.*s\n", (int)len, o);
            o += len + (nl != NULL);
        }
        if (strcmp(r.out, expected) != 0) {
            mismatches++;
            if (!rewrite) {
                fprintf(stderr, "%s:%d: '%s'\n--- expected\n%s--- got\n%s\n", path, line_no, cmd,
                        expected, r.out);
            }
        }
    }
    if (r.started) {
        tc_close(&r.cluster);
    }
    if (rewrite && mismatches > 0) {
        FILE *f = fopen(path, "wb");
        if (f != NULL) {
            (void)fwrite(rewritten, 1, rewritten_len, f);
            (void)fclose(f);
        }
        fprintf(stderr, "%s: rewritten (%d commands changed output)\n", path, mismatches);
        mismatches = 0;
    }
    free(rewritten);
    free(r.out);
    free(text);
    return mismatches;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: script_runner SCRIPT.txt...\n");
        return 2;
    }
    const char *env = getenv("QR_SIM_REWRITE");
    bool rewrite = env != NULL && strcmp(env, "1") == 0;
    int passed = 0;
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        int rv = run_script(argv[i], rewrite);
        if (rv == 0) {
            passed++;
        } else {
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
