/*
 * quorumctl common: options shared by the commands that talk to servers.
 *
 * Tool code above libquorum. Parses --node, --dir, --password, --timeout-ms
 * and --json; decides which nodes to ask (--node; else the nodes of a cluster
 * record in --dir or ./quorum-cluster; else 127.0.0.1:6379); connects and
 * authenticates; sends leader-only commands to the leader, following
 * -NOTLEADER redirects. Parsing never prints.
 */
#ifndef QR_CTL_COMMON_H
#define QR_CTL_COMMON_H

#include <stdbool.h>
#include <stdio.h>

#include "info.h"
#include "quorum/err.h"
#include "record.h"
#include "resp_client.h"

#define CTL_EXIT_OK       0
#define CTL_EXIT_FAILURE  1
#define CTL_EXIT_USAGE    2
#define CTL_NODE_DEFAULT  "127.0.0.1:6379"
#define CTL_REDIRECTS_MAX 3
#define CTL_TARGETS_MAX   CTL_CLUSTER_NODES_MAX

struct ctl_common {
    const char *node;     /* --node HOST:PORT, NULL when not given. */
    const char *dir;      /* --dir, NULL when not given. */
    const char *password; /* --password, NULL when not given. */
    int timeout_ms;       /* --timeout-ms, per connect and per command. */
    bool json;            /* --json. */
    bool help;            /* -h/--help. */
};

/* Sets the defaults. */
void ctl_common_init(struct ctl_common *common);

/*
 * Tries to parse argv[*i] as a common option (moving *i past its value).
 * @return 1 when consumed, 0 when argv[*i] is not a common option, QR_EINVAL
 *         with a message in errmsg (a value is missing or bad).
 */
int ctl_common_parse_one(
    struct ctl_common *common, int argc, char *const *argv, int *i, char *errmsg);

/* The directory of the cluster record: --dir, else ./quorum-cluster. */
const char *ctl_common_dir(const struct ctl_common *common);

/*
 * The nodes to ask, in order of preference. With --node, only it. Otherwise
 * the client addresses in the cluster record of ctl_common_dir(), or
 * 127.0.0.1:6379 when there is none (and --dir was not given).
 * @param targets   Out: CTL_TARGETS_MAX addresses.
 * @param rec_out   Out: the record when one was read (nodes_count 0 otherwise).
 * @return 0, or QR_ENOTFOUND/QR_ECORRUPT/QR_EIO with a message (--dir without a
 *         record, or a bad record).
 */
int ctl_common_targets(const struct ctl_common *common,
                       char (*targets)[CTL_ADDR_SIZE],
                       size_t *targets_count_out,
                       struct ctl_record *rec_out,
                       char *errmsg);

/*
 * Connects to addr and sends AUTH when --password was given.
 * @return 0, or a QR_E* code with the reason in conn->errmsg.
 */
int ctl_connect(const struct ctl_common *common, const char *addr, struct ctl_conn *conn);

/*
 * Connects to addr and runs one command on a fresh connection.
 * @param reply_out  Returns owned memory (ctl_reply_free).
 * @return 0, or a QR_E* code with the reason in errmsg.
 */
int ctl_ask(const struct ctl_common *common,
            const char *addr,
            int argc,
            const char *const *argv,
            struct ctl_reply **reply_out,
            char *errmsg);

/*
 * Asks addr for INFO quorum and parses the answer.
 * @return 0, or a QR_E* code with "<addr>: <reason>" in errmsg.
 */
int ctl_fetch_info(const struct ctl_common *common,
                   const char *addr,
                   struct ctl_info *info,
                   char *errmsg);

/*
 * Runs a command at the first reachable target, following -NOTLEADER
 * redirects (at most CTL_REDIRECTS_MAX) and retrying -TRYAGAIN and refused
 * connections until the timeout. A command that may have run is not retried.
 * @param answered_out  Out: the address that gave the reply (CTL_ADDR_SIZE).
 * @param reply_out     Returns owned memory (ctl_reply_free).
 */
int ctl_leader_command(const struct ctl_common *common,
                       int argc,
                       const char *const *argv,
                       char *answered_out,
                       struct ctl_reply **reply_out,
                       char *errmsg);

/*
 * Prints a reply as redis-cli does: the raw value, (nil), (integer) N, OK,
 * (error) ERR ..., and arrays numbered "1) ...". Nested arrays are listed
 * one level deep.
 */
void ctl_reply_print(FILE *out, const struct ctl_reply *reply);

/* Writes s as a JSON string, quotes included. */
void ctl_json_string(FILE *out, const char *s);

#endif /* QR_CTL_COMMON_H */
