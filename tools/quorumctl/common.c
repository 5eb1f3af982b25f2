/*
 * quorumctl common: shared options, connecting, and reaching the leader.
 *
 * Tool code above libquorum. Retries are bounded by the timeout and by
 * CTL_REDIRECTS_MAX; a command is retried only when the server said it did not
 * run it (-NOTLEADER, -TRYAGAIN) or when the connection was refused.
 */
#include "common.h"

#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

#define RETRY_SLEEP_MS   200
#define RETRY_ROUNDS_MAX 100
#define TIMEOUT_MS_MAX   3600000

void ctl_common_init(struct ctl_common *common)
{
    memset(common, 0, sizeof(*common));
    common->timeout_ms = CTL_TIMEOUT_MS_DEFAULT;
}

int ctl_common_parse_one(
    struct ctl_common *common, int argc, char *const *argv, int *i, char *errmsg)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        common->help = true;
        return 1;
    }
    if (strcmp(arg, "--json") == 0) {
        common->json = true;
        return 1;
    }
    static const char *const with_value[] = {"--node", "--dir", "--password", "--timeout-ms"};
    for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
        if (!qr__flag_is(arg, with_value[k])) {
            continue;
        }
        const char *value = qr__flag_value(argc, argv, i, with_value[k]);
        if (value == NULL) {
            return qr__errf(errmsg, QR_EINVAL, "%s needs a value", with_value[k]);
        }
        char host[CTL_ADDR_SIZE];
        uint16_t port = 0;
        uint64_t n = 0;
        switch (k) {
        case 0:
            if (ctl_addr_split(value, host, &port, errmsg) != 0) {
                return qr__err_wrapf(errmsg, QR_EINVAL, "--node");
            }
            common->node = value;
            break;
        case 1:
            if (value[0] == '\0') {
                return qr__errf(errmsg, QR_EINVAL, "--dir: empty path");
            }
            common->dir = value;
            break;
        case 2:
            common->password = value;
            break;
        default:
            if (qr__parse_u64(value, 1, TIMEOUT_MS_MAX, &n, errmsg) != 0) {
                return qr__err_wrapf(errmsg, QR_EINVAL, "--timeout-ms");
            }
            common->timeout_ms = (int)n;
            break;
        }
        return 1;
    }
    return 0;
}

const char *ctl_common_dir(const struct ctl_common *common)
{
    return common->dir != NULL ? common->dir : CTL_DIR_DEFAULT;
}

int ctl_common_targets(const struct ctl_common *common,
                       char (*targets)[CTL_ADDR_SIZE],
                       size_t *targets_count_out,
                       struct ctl_record *rec_out,
                       char *errmsg)
{
    rec_out->nodes_count = 0;
    if (common->node == NULL) {
        int rv = ctl_record_read(ctl_common_dir(common), rec_out, errmsg);
        if (rv != 0 && (rv != QR_ENOTFOUND || common->dir != NULL)) {
            return rv;
        }
    }
    *targets_count_out = 0;
    if (common->node != NULL) {
        (void)snprintf(targets[0], CTL_ADDR_SIZE, "%s", common->node); /* Checked length. */
        *targets_count_out = 1;
        return 0;
    }
    for (size_t k = 0; k < rec_out->nodes_count && k < CTL_TARGETS_MAX; k++) {
        memcpy(targets[k], rec_out->nodes[k].client, CTL_ADDR_SIZE);
        *targets_count_out = k + 1;
    }
    if (*targets_count_out == 0) {
        (void)snprintf(targets[0], CTL_ADDR_SIZE, "%s", CTL_NODE_DEFAULT);
        *targets_count_out = 1;
    }
    return 0;
}

int ctl_connect(const struct ctl_common *common, const char *addr, struct ctl_conn *conn)
{
    int rv = ctl_conn_open(conn, addr, common->timeout_ms);
    if (rv != 0 || common->password == NULL) {
        return rv;
    }
    const char *argv[] = {"AUTH", common->password};
    struct ctl_reply *reply = NULL;
    rv = ctl_conn_command(conn, 2, argv, &reply);
    if (rv != 0) {
        return rv;
    }
    if (reply->type != CTL_REPLY_STATUS) {
        (void)qr__errf(conn->errmsg, QR_EINVAL, "%s: AUTH failed: %s", conn->addr,
                       reply->str != NULL ? reply->str : "unexpected reply");
        ctl_reply_free(reply);
        ctl_conn_close(conn);
        return QR_EINVAL;
    }
    ctl_reply_free(reply);
    return 0;
}

int ctl_ask(const struct ctl_common *common,
            const char *addr,
            int argc,
            const char *const *argv,
            struct ctl_reply **reply_out,
            char *errmsg)
{
    struct ctl_conn *conn = qr_malloc(sizeof(*conn));
    if (conn == NULL) {
        (void)qr__errf(errmsg, QR_ENOMEM, "out of memory");
        return QR_ENOMEM; /* Not qr__errf's result: the analyzer cannot see it is non-zero. */
    }
    int rv = ctl_connect(common, addr, conn);
    if (rv == 0) {
        rv = ctl_conn_command(conn, argc, argv, reply_out);
    }
    if (rv != 0) {
        memcpy(errmsg, conn->errmsg, QR_ERRMSG_SIZE);
    }
    QR_ASSERT(rv != 0 || *reply_out != NULL);
    ctl_conn_close(conn);
    qr_free(conn);
    return rv;
}

/* Asks addr for INFO quorum. */
int ctl_fetch_info(const struct ctl_common *common,
                   const char *addr,
                   struct ctl_info *info,
                   char *errmsg)
{
    const char *argv[] = {"INFO", "quorum"};
    struct ctl_reply *reply = NULL;
    int rv = ctl_ask(common, addr, 2, argv, &reply, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (reply->type == CTL_REPLY_ERROR) {
        rv = qr__errf(errmsg, QR_EPROTO, "%s: %s", addr, reply->str);
    } else if (reply->type != CTL_REPLY_BULK) {
        rv = qr__errf(errmsg, QR_EPROTO, "%s: INFO quorum: unexpected reply type", addr);
    } else {
        rv = ctl_info_parse(reply->str, reply->len, info, errmsg);
        if (rv != 0) {
            (void)qr__err_wrapf(errmsg, rv, "%s", addr);
        }
    }
    ctl_reply_free(reply);
    return rv;
}

static bool error_is(const struct ctl_reply *reply, const char *code)
{
    size_t len = strlen(code);
    return reply->type == CTL_REPLY_ERROR && strncmp(reply->str, code, len) == 0 &&
           (reply->str[len] == ' ' || reply->str[len] == '\0');
}

/* From "NOTLEADER <id> <addr>" or "NOTLEADER <addr>": the address, or false. */
static bool notleader_address(const char *text, char *addr_out)
{
    const char *last = strrchr(text, ' ');
    if (last == NULL || strchr(last, ':') == NULL || strlen(last + 1) >= CTL_ADDR_SIZE) {
        return false;
    }
    char host[CTL_ADDR_SIZE];
    uint16_t port = 0;
    if (ctl_addr_split(last + 1, host, &port, NULL) != 0) {
        return false;
    }
    memcpy(addr_out, last + 1, strlen(last + 1) + 1);
    return true;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    (void)nanosleep(&ts, NULL); /* An early wake-up only shortens a retry pause. */
}

enum leader_try {
    LEADER_TRY_DONE,  /* A final reply (or a failure that must not be retried). */
    LEADER_TRY_RETRY, /* The cluster said "not now": try again later. */
    LEADER_TRY_NEXT,  /* This target is unreachable: try the next one. */
};

/* One target and the redirects it leads to. */
static enum leader_try leader_try(const struct ctl_common *common,
                                  const char *target,
                                  const char *const *argv,
                                  int argc,
                                  char *answered_out,
                                  struct ctl_reply **reply_out,
                                  int *rv_out,
                                  char *errmsg)
{
    char addr[CTL_ADDR_SIZE];
    (void)snprintf(addr, sizeof(addr), "%s", target); /* Same size. */
    for (int redirects = 0;; redirects++) {
        struct ctl_reply *reply = NULL;
        int rv = ctl_ask(common, addr, argc, argv, &reply, errmsg);
        if (QR_NEVER(rv == 0 && reply == NULL)) {
            (void)qr__errf(errmsg, QR_EINTERNAL, "%s: no reply", addr);
            rv = QR_EINTERNAL;
        }
        bool refused = rv != 0 && strstr(errmsg, "connection refused") != NULL;
        if (rv != 0) {
            *rv_out = rv;
            return refused ? (redirects > 0 ? LEADER_TRY_RETRY : LEADER_TRY_NEXT) : LEADER_TRY_DONE;
        }
        char next[CTL_ADDR_SIZE];
        bool is_notleader = error_is(reply, "NOTLEADER");
        if (is_notleader && redirects < CTL_REDIRECTS_MAX && notleader_address(reply->str, next) &&
            strcmp(next, addr) != 0) {
            ctl_reply_free(reply);
            memcpy(addr, next, sizeof(addr));
            continue;
        }
        if (is_notleader || error_is(reply, "TRYAGAIN")) {
            *rv_out = qr__errf(errmsg, QR_EBUSY, "%s: %s", addr, reply->str);
            ctl_reply_free(reply);
            return LEADER_TRY_RETRY;
        }
        memcpy(answered_out, addr, CTL_ADDR_SIZE);
        *reply_out = reply;
        *rv_out = 0;
        return LEADER_TRY_DONE;
    }
}

int ctl_leader_command(const struct ctl_common *common,
                       int argc,
                       const char *const *argv,
                       char *answered_out,
                       struct ctl_reply **reply_out,
                       char *errmsg)
{
    char targets[CTL_TARGETS_MAX][CTL_ADDR_SIZE];
    size_t targets_count = 0;
    struct ctl_record *rec = qr_malloc(sizeof(*rec));
    if (rec == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "out of memory");
    }
    int rv = ctl_common_targets(common, targets, &targets_count, rec, errmsg);
    qr_free(rec);
    if (rv != 0) {
        return rv;
    }
    struct timespec start;
    (void)clock_gettime(CLOCK_MONOTONIC, &start); /* Cannot fail for CLOCK_MONOTONIC. */
    char first_err[QR_ERRMSG_SIZE] = "";
    for (int round = 0; round < RETRY_ROUNDS_MAX; round++) {
        bool should_retry = false;
        for (size_t k = 0; k < targets_count; k++) {
            enum leader_try t =
                leader_try(common, targets[k], argv, argc, answered_out, reply_out, &rv, errmsg);
            if (t == LEADER_TRY_DONE) {
                return rv;
            }
            if (first_err[0] == '\0' || t == LEADER_TRY_RETRY) {
                memcpy(first_err, errmsg, sizeof(first_err));
            }
            should_retry = should_retry || t == LEADER_TRY_RETRY;
        }
        struct timespec now;
        (void)clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent_ms =
            (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (!should_retry || spent_ms + RETRY_SLEEP_MS > common->timeout_ms) {
            break;
        }
        sleep_ms(RETRY_SLEEP_MS);
    }
    memcpy(errmsg, first_err, QR_ERRMSG_SIZE);
    return rv != 0 ? rv : QR_ETIMEDOUT;
}

static void reply_print_one(FILE *out, const struct ctl_reply *reply)
{
    switch (reply->type) {
    case CTL_REPLY_STATUS:
    case CTL_REPLY_BULK:
        (void)fwrite(reply->str, 1, reply->len, out);
        (void)fputc('\n', out);
        break;
    case CTL_REPLY_ERROR:
        (void)fprintf(out, "(error) %s\n", reply->str);
        break;
    case CTL_REPLY_INTEGER:
        (void)fprintf(out, "(integer) %lld\n", (long long)reply->integer);
        break;
    case CTL_REPLY_NIL:
        (void)fprintf(out, "(nil)\n");
        break;
    default:
        (void)fprintf(out, reply->elements_count == 0 ? "(empty array)\n" : "(array)\n");
        break;
    }
}

void ctl_reply_print(FILE *out, const struct ctl_reply *reply)
{
    QR_ASSERT(reply != NULL);
    if (reply->type != CTL_REPLY_ARRAY || reply->elements_count == 0) {
        reply_print_one(out, reply);
        return;
    }
    for (size_t k = 0; k < reply->elements_count; k++) {
        (void)fprintf(out, "%zu) ", k + 1);
        reply_print_one(out, reply->elements[k]);
    }
}

void ctl_json_string(FILE *out, const char *s)
{
    (void)fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            (void)fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            (void)fprintf(out, "\\u%04x", *p);
        } else {
            (void)fputc(*p, out);
        }
    }
    (void)fputc('"', out);
}
