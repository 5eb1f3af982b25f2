/*
 * server/commands.c: the command table of quorumd and what each command does.
 *
 * Every command is one of four kinds (see server.h for the error conventions):
 *   - WRITE: turned into one kv command (kv.h), proposed; the reply is built from the
 *     result of the apply on this node (reply shapes differ: SETNX answers :1 where SET NX
 *     answers +OK);
 *   - READ: runs against the local store once qr_node_read confirmed this node is up to
 *     date (linearizable), or at once after "QUORUM.READS stale";
 *   - LOCAL: answered from this process (PING, INFO, ...);
 *   - ADMIN: operator commands that wait for the cluster (admin.c).
 * Arguments are checked before anything is proposed, so a malformed write never reaches
 * the log. Replies leave in request order: a command that could answer at once but has
 * replies queued before it is queued too, and runs when its turn comes (server.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/admin.h"
#include "server/server_internal.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/log.h"
#include "util/parse.h"

/* Encoded commands up to this size are built on the stack. */
#define ENCODE_STACK_SIZE 4096
/* SCAN: default and largest COUNT. */
#define SCAN_COUNT_DEFAULT 10
#define SCAN_COUNT_MAX     100000

enum command_kind {
    KIND_LOCAL = 1,
    KIND_READ = 2,
    KIND_WRITE = 3,
    KIND_ADMIN = 4,
};

struct command;

/* Builds the kv command of a WRITE; returns 0 or writes an error to errtext. */
typedef int (*build_fn)(const struct command *def,
                        const struct qr_buf *args,
                        size_t args_count,
                        struct qr_kv_cmd *cmd,
                        enum qr__reply_shape *shape,
                        char *errtext);
/* Runs a LOCAL or READ command, writing its reply to c->out. */
typedef int (*exec_fn)(struct qr__client *c, const struct qr_buf *args, size_t args_count);

struct command {
    const char *name; /* Lower case, as COMMAND lists it. */
    build_fn build;   /* WRITE. */
    exec_fn exec;     /* LOCAL, READ, ADMIN. */
    int64_t delta;    /* build_incr: INCR/DECR the step; INCRBY 1, DECRBY -1. */
    int arity;        /* Redis's: N exactly, -N at least N (the name counts). */
    enum command_kind kind;
    enum qr_kv_op op;           /* build_key_value: the kv operation... */
    uint32_t flags;             /* ... its flags ... */
    enum qr__reply_shape shape; /* ... and the reply's shape. */
    bool is_noauth;             /* Allowed before AUTH. */
};

#define ERRTEXT_SIZE QR_RESP_ERROR_SIZE_MAX

static bool arg_is(struct qr_buf arg, const char *word)
{
    size_t len = strlen(word);
    return arg.len == len && strncasecmp((const char *)arg.base, word, len) == 0;
}

static int check_key(struct qr_buf key, char *errtext)
{
    if (key.len > QR_KV_KEY_SIZE_MAX) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "key is longer than %d bytes", QR_KV_KEY_SIZE_MAX);
        return QR_EINVAL;
    }
    return 0;
}

static int check_value(struct qr_buf value, char *errtext)
{
    if (value.len > QR_KV_VALUE_SIZE_MAX) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "value is longer than %u bytes",
                       (unsigned)QR_KV_VALUE_SIZE_MAX);
        return QR_EINVAL;
    }
    return 0;
}

static int syntax_error(char *errtext)
{
    (void)snprintf(errtext, ERRTEXT_SIZE, "syntax error");
    return QR_EINVAL;
}

/* ---- WRITE commands: argument checks and the kv command -------------------------------- */

/* SET key value [NX|XX] [GET] [KEEPTTL]. Expiry options are refused: keys never expire. */
static int build_set(const struct command *def,
                     const struct qr_buf *args,
                     size_t args_count,
                     struct qr_kv_cmd *cmd,
                     enum qr__reply_shape *shape,
                     char *errtext)
{
    (void)def;
    cmd->op = QR_KV_SET;
    cmd->key = args[1];
    cmd->value = args[2];
    *shape = QR__REPLY_OK;
    for (size_t i = 3; i < args_count; i++) {
        if (arg_is(args[i], "nx") && (cmd->flags & QR_KV_SET_XX) == 0) {
            cmd->flags |= QR_KV_SET_NX;
        } else if (arg_is(args[i], "xx") && (cmd->flags & QR_KV_SET_NX) == 0) {
            cmd->flags |= QR_KV_SET_XX;
        } else if (arg_is(args[i], "get")) {
            cmd->flags |= QR_KV_SET_GET;
            *shape = QR__REPLY_VALUE;
        } else if (arg_is(args[i], "keepttl")) {
            continue; /* Keys have no time to live to keep. */
        } else if (arg_is(args[i], "ex") || arg_is(args[i], "px") || arg_is(args[i], "exat") ||
                   arg_is(args[i], "pxat")) {
            (void)snprintf(errtext, ERRTEXT_SIZE,
                           "keys do not expire in quorum (EX, PX, EXAT, PXAT are not supported)");
            return QR_EINVAL;
        } else {
            return syntax_error(errtext);
        }
    }
    return check_key(cmd->key, errtext) != 0 ? QR_EINVAL : check_value(cmd->value, errtext);
}

/* SETNX, GETSET, APPEND: key value, with the op, flags and reply shape of the table. */
static int build_key_value(const struct command *def,
                           const struct qr_buf *args,
                           size_t args_count,
                           struct qr_kv_cmd *cmd,
                           enum qr__reply_shape *shape,
                           char *errtext)
{
    (void)args_count;
    cmd->op = def->op;
    cmd->flags = def->flags;
    cmd->key = args[1];
    cmd->value = args[2];
    *shape = def->shape;
    return check_key(cmd->key, errtext) != 0 ? QR_EINVAL : check_value(cmd->value, errtext);
}

/* DEL and UNLINK key [key ...]. */
static int build_del(const struct command *def,
                     const struct qr_buf *args,
                     size_t args_count,
                     struct qr_kv_cmd *cmd,
                     enum qr__reply_shape *shape,
                     char *errtext)
{
    (void)def;
    cmd->op = QR_KV_DEL;
    *shape = QR__REPLY_INTEGER;
    if (args_count - 1 > QR_KV_ITEMS_MAX) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "at most %u keys in one command",
                       (unsigned)QR_KV_ITEMS_MAX);
        return QR_EINVAL;
    }
    for (size_t i = 1; i < args_count; i++) {
        if (check_key(args[i], errtext) != 0) {
            return QR_EINVAL;
        }
    }
    if (args_count == 2) {
        cmd->key = args[1];
    } else {
        cmd->items = args + 1;
        cmd->items_count = args_count - 1;
    }
    return 0;
}

static int build_mset(const struct command *def,
                      const struct qr_buf *args,
                      size_t args_count,
                      struct qr_kv_cmd *cmd,
                      enum qr__reply_shape *shape,
                      char *errtext)
{
    (void)def;
    if ((args_count - 1) % 2 != 0) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "wrong number of arguments for 'mset' command");
        return QR_EINVAL;
    }
    if (args_count - 1 > QR_KV_ITEMS_MAX) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "at most %u keys in one command",
                       (unsigned)QR_KV_ITEMS_MAX / 2);
        return QR_EINVAL;
    }
    for (size_t i = 1; i < args_count; i += 2) {
        if (check_key(args[i], errtext) != 0 || check_value(args[i + 1], errtext) != 0) {
            return QR_EINVAL;
        }
    }
    cmd->op = QR_KV_MSET;
    cmd->items = args + 1;
    cmd->items_count = args_count - 1;
    *shape = QR__REPLY_OK;
    return 0;
}

static int parse_delta(struct qr_buf arg, bool is_negated, int64_t *delta_out, char *errtext)
{
    int64_t v = 0;
    if (!qr__kv_parse_int(arg.base, arg.len, &v)) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "value is not an integer or out of range");
        return QR_EINVAL;
    }
    if (is_negated && v == INT64_MIN) {
        (void)snprintf(errtext, ERRTEXT_SIZE, "decrement would overflow");
        return QR_EINVAL;
    }
    *delta_out = is_negated ? -v : v;
    return 0;
}

/* INCR and DECR key (step def->delta); INCRBY and DECRBY key n (negated when delta < 0). */
static int build_incr(const struct command *def,
                      const struct qr_buf *args,
                      size_t args_count,
                      struct qr_kv_cmd *cmd,
                      enum qr__reply_shape *shape,
                      char *errtext)
{
    *shape = QR__REPLY_INTEGER;
    cmd->op = QR_KV_INCR;
    cmd->key = args[1];
    cmd->delta = def->delta;
    if (args_count == 3 && parse_delta(args[2], def->delta < 0, &cmd->delta, errtext) != 0) {
        return QR_EINVAL;
    }
    return check_key(cmd->key, errtext);
}

/* QUORUM.CAS key expected new: :1 when key held expected and now holds new, else :0.
   QUORUM.CAD key expected: :1 when key held expected and is now deleted, else :0. */
static int build_compare(const struct command *def,
                         const struct qr_buf *args,
                         size_t args_count,
                         struct qr_kv_cmd *cmd,
                         enum qr__reply_shape *shape,
                         char *errtext)
{
    cmd->op = def->op;
    cmd->key = args[1];
    cmd->expected = args[2];
    if (args_count == 4) {
        cmd->value = args[3];
    }
    *shape = QR__REPLY_INTEGER;
    if (check_key(cmd->key, errtext) != 0 || check_value(cmd->expected, errtext) != 0) {
        return QR_EINVAL;
    }
    return check_value(cmd->value, errtext);
}

/* ---- READ commands: run against the local store when their turn comes --------------------- */

static struct qr_kv *store(struct qr__client *c)
{
    return c->server->fsm->kv;
}

static int exec_get(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr_buf value;
    if (!qr__kv_get(store(c), args[1], &value)) {
        return qr__resp_write_null_bulk(&c->out);
    }
    return qr__resp_write_bulk(&c->out, value.base, value.len);
}

static int exec_mget(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    int rv = qr__resp_write_array(&c->out, args_count - 1);
    for (size_t i = 1; i < args_count && rv == 0; i++) {
        struct qr_buf value;
        rv = qr__kv_get(store(c), args[i], &value)
                 ? qr__resp_write_bulk(&c->out, value.base, value.len)
                 : qr__resp_write_null_bulk(&c->out);
    }
    return rv;
}

static int exec_exists(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    int64_t count = 0;
    for (size_t i = 1; i < args_count; i++) {
        struct qr_buf value;
        count += qr__kv_get(store(c), args[i], &value) ? 1 : 0;
    }
    return qr__resp_write_integer(&c->out, count);
}

static int exec_strlen(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr_buf value = {NULL, 0};
    (void)qr__kv_get(store(c), args[1], &value); /* Absent: length 0, as Redis. */
    return qr__resp_write_integer(&c->out, (int64_t)value.len);
}

static int exec_type(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr_buf value;
    bool is_found = qr__kv_get(store(c), args[1], &value);
    return is_found ? qr__resp_write_simple(&c->out, "string", 6)
                    : qr__resp_write_simple(&c->out, "none", 4);
}

/* TTL and PTTL: -1 (no expiry: keys never expire here) or -2 (no such key). */
static int exec_ttl(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr_buf value;
    return qr__resp_write_integer(&c->out, qr__kv_get(store(c), args[1], &value) ? -1 : -2);
}

static int exec_dbsize(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args;
    (void)args_count;
    return qr__resp_write_integer(&c->out, (int64_t)qr__kv_count(store(c)));
}

/* Keys collected by KEYS and SCAN: views valid while the store does not change. */
struct key_list {
    struct qr_buf *keys;
    size_t count;
    size_t capacity;
    size_t count_max;
    struct qr_buf pattern; /* base NULL: every key. */
    int err;               /* QR_ENOMEM, or QR_ETOOBIG past count_max. */
};

static void key_list_visit(void *ctx, struct qr_buf key, struct qr_buf value)
{
    (void)value;
    struct key_list *l = ctx;
    if (l->err != 0 || (l->pattern.base != NULL &&
                        !qr__kv_match(l->pattern.base, l->pattern.len, key.base, key.len))) {
        return;
    }
    if (l->count == l->count_max) {
        l->err = QR_ETOOBIG;
        return;
    }
    if (l->count == l->capacity) {
        size_t capacity = l->capacity != 0 ? l->capacity * 2 : 64;
        struct qr_buf *keys = qr_realloc(l->keys, capacity * sizeof(*keys));
        if (keys == NULL) {
            l->err = QR_ENOMEM;
            return;
        }
        l->keys = keys;
        l->capacity = capacity;
    }
    l->keys[l->count++] = key;
}

static int write_keys(struct qr__client *c, const struct key_list *l)
{
    int rv = qr__resp_write_array(&c->out, l->count);
    for (size_t i = 0; i < l->count && rv == 0; i++) {
        rv = qr__resp_write_bulk(&c->out, l->keys[i].base, l->keys[i].len);
    }
    return rv;
}

static int exec_keys(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct key_list l = {.count_max = QR_SERVER_KEYS_REPLY_MAX, .pattern = args[1]};
    uint64_t cursor = 0;
    do {
        cursor = qr__kv_scan(store(c), cursor, 1024, key_list_visit, &l);
    } while (cursor != 0 && l.err == 0);
    int rv = 0;
    if (l.err == QR_ETOOBIG) {
        rv = qr__resp_write_errorf(&c->out, "more than %zu keys match: use SCAN",
                                   QR_SERVER_KEYS_REPLY_MAX);
    } else if (l.err != 0) {
        rv = qr__resp_write_errorf(&c->out, "out of memory");
    } else {
        rv = write_keys(c, &l);
    }
    qr_free(l.keys);
    return rv;
}

/* SCAN cursor [MATCH pattern] [COUNT n] [TYPE string]. */
static int exec_scan(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    uint64_t cursor = 0;
    if (qr__parse_u64((const char *)args[1].base, 0, UINT64_MAX, &cursor, NULL) != 0) {
        return qr__resp_write_errorf(&c->out, "invalid cursor");
    }
    struct key_list l = {.count_max = SIZE_MAX};
    uint64_t count = SCAN_COUNT_DEFAULT;
    for (size_t i = 2; i < args_count; i += 2) {
        if (i + 1 >= args_count) {
            return qr__resp_write_errorf(&c->out, "syntax error");
        }
        if (arg_is(args[i], "match")) {
            l.pattern = args[i + 1];
        } else if (arg_is(args[i], "count")) {
            if (qr__parse_u64((const char *)args[i + 1].base, 1, SCAN_COUNT_MAX, &count, NULL) !=
                0) {
                return qr__resp_write_errorf(&c->out, "COUNT must be 1 to %d", SCAN_COUNT_MAX);
            }
        } else if (!arg_is(args[i], "type")) {
            return qr__resp_write_errorf(&c->out, "syntax error");
        } else if (!arg_is(args[i + 1], "string")) {
            cursor = 0; /* Every key is a string: nothing of another type. */
            l.count_max = 0;
        }
    }
    uint64_t next = l.count_max == 0 ? 0 : qr__kv_scan(store(c), cursor, count, key_list_visit, &l);
    if (l.err == QR_ENOMEM) {
        qr_free(l.keys);
        return qr__resp_write_errorf(&c->out, "out of memory");
    }
    char text[24];
    int len = snprintf(text, sizeof(text), "%llu", (unsigned long long)next);
    int rv = qr__resp_write_array(&c->out, 2);
    if (rv == 0) {
        rv = qr__resp_write_bulk(&c->out, (const uint8_t *)text, (size_t)len);
    }
    if (rv == 0) {
        rv = write_keys(c, &l);
    }
    qr_free(l.keys);
    return rv;
}

/* ---- LOCAL commands ---------------------------------------------------------------------- */

static int exec_ping(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    if (args_count > 2) {
        return qr__resp_write_errorf(&c->out, "wrong number of arguments for 'ping' command");
    }
    return args_count == 2 ? qr__resp_write_bulk(&c->out, args[1].base, args[1].len)
                           : qr__resp_write_simple(&c->out, "PONG", 4);
}

static int exec_echo(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    return qr__resp_write_bulk(&c->out, args[1].base, args[1].len);
}

static int write_ok(struct qr__client *c)
{
    return qr__resp_write_simple(&c->out, "OK", 2);
}

static int exec_quit(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args;
    (void)args_count;
    qr__client_quit(c);
    return write_ok(c);
}

static int exec_select(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    if (!arg_is(args[1], "0")) {
        return qr__resp_write_errorf(&c->out, "DB index is out of range (quorum has only DB 0)");
    }
    return write_ok(c);
}

/* Compare without an early exit, so timing does not tell how much of a guess was right. */
static bool password_equal(const char *password, struct qr_buf guess)
{
    size_t len = strlen(password);
    unsigned diff = (unsigned)(len ^ guess.len);
    for (size_t i = 0; i < guess.len; i++) {
        diff |= (unsigned)(guess.base[i] ^ (uint8_t)(len > 0 ? password[i % len] : 0));
    }
    return diff == 0;
}

/* AUTH password, or AUTH default password (Redis 6 ACL form, "default" user only). */
static int exec_auth(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    const char *password = c->server->password;
    if (password[0] == '\0') {
        return qr__resp_write_errorf(&c->out, "AUTH <password> called without any password "
                                              "configured (start quorumd with --requirepass)");
    }
    if (args_count > 3 || (args_count == 3 && !arg_is(args[1], "default"))) {
        return qr__resp_write_error(&c->out, "-WRONGPASS invalid username-password pair",
                                    sizeof("-WRONGPASS invalid username-password pair") - 1);
    }
    if (!password_equal(password, args[args_count - 1])) {
        c->is_authed = false;
        return qr__resp_write_error(&c->out, "-WRONGPASS invalid username-password pair",
                                    sizeof("-WRONGPASS invalid username-password pair") - 1);
    }
    c->is_authed = true;
    return write_ok(c);
}

/* HELLO [2 [AUTH user pass] [SETNAME name]]: RESP2 only. */
static int exec_hello(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    if (args_count >= 2 && !arg_is(args[1], "2")) {
        return qr__resp_write_error(&c->out, "-NOPROTO this server speaks RESP2 only",
                                    sizeof("-NOPROTO this server speaks RESP2 only") - 1);
    }
    for (size_t i = 2; i + 2 < args_count + 0 && arg_is(args[i], "auth"); i += 3) {
        struct qr_buf auth[3] = {{(uint8_t *)"auth", 4}, args[i + 1], args[i + 2]};
        const char *password = c->server->password;
        if (password[0] != '\0' && !password_equal(password, auth[2])) {
            return qr__resp_write_error(&c->out, "-WRONGPASS invalid username-password pair",
                                        sizeof("-WRONGPASS invalid username-password pair") - 1);
        }
        c->is_authed = true;
    }
    if (!c->is_authed) {
        return qr__resp_write_error(&c->out, "-NOAUTH HELLO must be called with the AUTH option",
                                    sizeof("-NOAUTH HELLO must be called with the AUTH option") -
                                        1);
    }
    struct qr_node_status st;
    qr_node_status(c->server->node, &st);
    static const char *const fields[] = {"server", "version", "proto",  "id",
                                         "mode",   "role",    "modules"};
    int rv = qr__resp_write_array(&c->out, 14);
    for (size_t i = 0; i < 7 && rv == 0; i++) {
        rv = qr__resp_write_bulk(&c->out, (const uint8_t *)fields[i], strlen(fields[i]));
        if (rv != 0) {
            break;
        }
        switch (i) {
        case 0:
            rv = qr__resp_write_bulk(&c->out, (const uint8_t *)"quorum", 6);
            break;
        case 1:
            rv = qr__resp_write_bulk(&c->out, (const uint8_t *)QR__SERVER_VERSION,
                                     strlen(QR__SERVER_VERSION));
            break;
        case 2:
            rv = qr__resp_write_integer(&c->out, 2);
            break;
        case 3:
            rv = qr__resp_write_integer(&c->out, (int64_t)c->id);
            break;
        case 4:
            rv = qr__resp_write_bulk(&c->out, (const uint8_t *)"standalone", 10);
            break;
        case 5:
            rv = st.role == QR_ROLE_LEADER
                     ? qr__resp_write_bulk(&c->out, (const uint8_t *)"master", 6)
                     : qr__resp_write_bulk(&c->out, (const uint8_t *)"replica", 7);
            break;
        default:
            rv = qr__resp_write_array(&c->out, 0);
            break;
        }
    }
    return rv;
}

/* CLIENT ID | SETNAME | GETNAME | SETINFO | ...: enough for client libraries to start. */
static int exec_client(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    if (arg_is(args[1], "id")) {
        return qr__resp_write_integer(&c->out, (int64_t)c->id);
    }
    if (arg_is(args[1], "getname")) {
        return qr__resp_write_null_bulk(&c->out);
    }
    if (arg_is(args[1], "setname") || arg_is(args[1], "setinfo") || arg_is(args[1], "reply")) {
        return write_ok(c);
    }
    return qr__resp_write_errorf(&c->out, "unknown subcommand '%.64s' of CLIENT",
                                 (const char *)args[1].base);
}

/* CONFIG GET answers an empty list (nothing is configurable at run time); tools that probe
   settings, like redis-benchmark, then carry on with their defaults. */
static int exec_config(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    if (arg_is(args[1], "get")) {
        return qr__resp_write_array(&c->out, 0);
    }
    return qr__resp_write_errorf(&c->out,
                                 "CONFIG %.32s is not supported: settings are quorumd "
                                 "flags",
                                 (const char *)args[1].base);
}

/* QUORUM.READS linearizable|stale: how this connection's reads are served. */
static int exec_reads(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    if (arg_is(args[1], "stale")) {
        c->is_stale_reads = true;
    } else if (arg_is(args[1], "linearizable")) {
        c->is_stale_reads = false;
    } else {
        return qr__resp_write_errorf(&c->out, "QUORUM.READS takes 'linearizable' or 'stale'");
    }
    return write_ok(c);
}

/* ---- The table ---------------------------------------------------------------------------- */

static int exec_command(struct qr__client *c, const struct qr_buf *args, size_t args_count);

#define WRITE(n, a, fn)                                              \
    {                                                                \
        .name = (n), .arity = (a), .kind = KIND_WRITE, .build = (fn) \
    }
#define WRITE_KV(n, o, f, sh)                                                             \
    {                                                                                     \
        .name = (n), .arity = 3, .kind = KIND_WRITE, .build = build_key_value, .op = (o), \
        .flags = (f), .shape = (sh)                                                       \
    }
#define WRITE_INCR(n, a, d)                                                                   \
    {                                                                                         \
        .name = (n), .arity = (a), .kind = KIND_WRITE, .build = build_incr, .op = QR_KV_INCR, \
        .shape = QR__REPLY_INTEGER, .delta = (d)                                              \
    }
#define WRITE_COMPARE(n, a, o)                                                           \
    {                                                                                    \
        .name = (n), .arity = (a), .kind = KIND_WRITE, .build = build_compare, .op = (o) \
    }
#define READ(n, a, fn)                                             \
    {                                                              \
        .name = (n), .arity = (a), .kind = KIND_READ, .exec = (fn) \
    }
#define LOCAL(n, a, fn)                                             \
    {                                                               \
        .name = (n), .arity = (a), .kind = KIND_LOCAL, .exec = (fn) \
    }
#define ADMIN(n, a, fn)                                             \
    {                                                               \
        .name = (n), .arity = (a), .kind = KIND_ADMIN, .exec = (fn) \
    }
#define NOAUTH(n, a, fn)                                                               \
    {                                                                                  \
        .name = (n), .arity = (a), .kind = KIND_LOCAL, .exec = (fn), .is_noauth = true \
    }

static const struct command commands[] = {
    WRITE("set", -3, build_set),
    WRITE_KV("setnx", QR_KV_SET, QR_KV_SET_NX, QR__REPLY_BOOL),
    WRITE_KV("getset", QR_KV_SET, QR_KV_SET_GET, QR__REPLY_VALUE),
    WRITE_KV("append", QR_KV_APPEND, 0, QR__REPLY_INTEGER),
    WRITE("del", -2, build_del),
    WRITE("unlink", -2, build_del),
    WRITE("mset", -3, build_mset),
    WRITE_INCR("incr", 2, 1),
    WRITE_INCR("decr", 2, -1),
    WRITE_INCR("incrby", 3, 1),
    WRITE_INCR("decrby", 3, -1),
    WRITE_COMPARE("quorum.cas", 4, QR_KV_CAS),
    WRITE_COMPARE("quorum.cad", 3, QR_KV_CAD),
    READ("get", 2, exec_get),
    READ("mget", -2, exec_mget),
    READ("exists", -2, exec_exists),
    READ("strlen", 2, exec_strlen),
    READ("type", 2, exec_type),
    READ("ttl", 2, exec_ttl),
    READ("pttl", 2, exec_ttl),
    READ("dbsize", 1, exec_dbsize),
    READ("keys", 2, exec_keys),
    READ("scan", -2, exec_scan),
    NOAUTH("ping", -1, exec_ping),
    LOCAL("echo", 2, exec_echo),
    NOAUTH("quit", -1, exec_quit),
    LOCAL("select", 2, exec_select),
    NOAUTH("auth", -2, exec_auth),
    NOAUTH("hello", -1, exec_hello),
    LOCAL("client", -2, exec_client),
    LOCAL("config", -2, exec_config),
    LOCAL("command", -1, exec_command),
    LOCAL("info", -1, qr__admin_info),
    LOCAL("quorum.status", 1, qr__admin_status),
    LOCAL("quorum.members", 1, qr__admin_members),
    LOCAL("quorum.snapshot", 1, qr__admin_snapshot),
    LOCAL("quorum.reads", 2, exec_reads),
    ADMIN("quorum.add", 4, qr__admin_add),
    ADMIN("quorum.promote", 2, qr__admin_promote),
    ADMIN("quorum.remove", 2, qr__admin_remove),
    ADMIN("quorum.transfer", -1, qr__admin_transfer),
};

#define COMMANDS_COUNT (sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(struct qr_buf name)
{
    for (size_t i = 0; i < COMMANDS_COUNT; i++) {
        if (arg_is(name, commands[i].name)) {
            return &commands[i];
        }
    }
    return NULL;
}

static int write_command_info(struct qr__client *c, const struct command *cmd)
{
    const char *flag = cmd->kind == KIND_WRITE   ? "write"
                       : cmd->kind == KIND_READ  ? "readonly"
                       : cmd->kind == KIND_ADMIN ? "admin"
                                                 : "fast";
    bool has_key = cmd->kind == KIND_WRITE ||
                   (cmd->kind == KIND_READ && cmd->arity != 1 && strcmp(cmd->name, "keys") != 0 &&
                    strcmp(cmd->name, "scan") != 0);
    int rv = qr__resp_write_array(&c->out, 6);
    if (rv == 0) {
        rv = qr__resp_write_bulk(&c->out, (const uint8_t *)cmd->name, strlen(cmd->name));
    }
    if (rv == 0) {
        rv = qr__resp_write_integer(&c->out, cmd->arity);
    }
    if (rv == 0) {
        rv = qr__resp_write_array(&c->out, 1);
    }
    if (rv == 0) {
        rv = qr__resp_write_simple(&c->out, flag, strlen(flag));
    }
    for (int i = 0; i < 3 && rv == 0; i++) { /* First key, last key, step. */
        rv = qr__resp_write_integer(&c->out, has_key ? (i == 1 && cmd->arity < 0 ? -1 : 1) : 0);
    }
    return rv;
}

/* COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND DOCS (empty: redis-cli's hints). */
static int exec_command(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    if (args_count >= 2 && arg_is(args[1], "count")) {
        return qr__resp_write_integer(&c->out, (int64_t)COMMANDS_COUNT);
    }
    if (args_count >= 2 && arg_is(args[1], "docs")) {
        return qr__resp_write_array(&c->out, 0);
    }
    if (args_count >= 2 && arg_is(args[1], "info")) {
        int rv = qr__resp_write_array(&c->out, args_count - 2);
        for (size_t i = 2; i < args_count && rv == 0; i++) {
            const struct command *cmd = command_find(args[i]);
            rv = cmd != NULL ? write_command_info(c, cmd) : qr__resp_write_null_array(&c->out);
        }
        return rv;
    }
    if (args_count >= 2) {
        return qr__resp_write_errorf(&c->out, "unknown subcommand '%.64s' of COMMAND",
                                     (const char *)args[1].base);
    }
    int rv = qr__resp_write_array(&c->out, COMMANDS_COUNT);
    for (size_t i = 0; i < COMMANDS_COUNT && rv == 0; i++) {
        rv = write_command_info(c, &commands[i]);
    }
    return rv;
}

/* ---- Dispatch ------------------------------------------------------------------------------ */

void qr__command_node_error(const struct qr_server *s, bool is_write, int status, char *text)
{
    unsigned timeout_ms = s->opts.request_timeout_ms;
    const char *what = is_write ? "write" : "read";
    switch (status) {
    case QR_ENOTLEADER:
        (void)snprintf(text, ERRTEXT_SIZE,
                       is_write ? "-TRYAGAIN leader changed before the write committed; it was "
                                  "not applied"
                                : "-TRYAGAIN leader changed during the read; retry");
        break;
    case QR_ETIMEDOUT:
        if (is_write) {
            (void)snprintf(text, ERRTEXT_SIZE,
                           "-TIMEOUT no answer within %u ms; the write may or may not have "
                           "been applied",
                           timeout_ms);
        } else {
            (void)snprintf(text, ERRTEXT_SIZE,
                           "-TIMEOUT read not confirmed by a quorum within %u ms", timeout_ms);
        }
        break;
    case QR_EBUSY:
        (void)snprintf(text, ERRTEXT_SIZE, "-TRYAGAIN node busy (too many %ss in flight)", what);
        break;
    case QR_ETOOBIG:
        (void)snprintf(text, ERRTEXT_SIZE, "-ERR command too large for the log");
        break;
    case QR_ECANCELED:
    case QR_ESHUTDOWN:
        (void)snprintf(text, ERRTEXT_SIZE, "-TRYAGAIN node shutting down");
        break;
    case QR_EFATAL:
        (void)snprintf(text, ERRTEXT_SIZE,
                       "-ERR node stopped after a fatal error (see its log and INFO quorum)");
        break;
    default:
        (void)snprintf(text, ERRTEXT_SIZE, "-ERR %s failed: %s", what, qr_strerror(status));
        break;
    }
}

/* The text when the node refuses at once (nothing was started). */
static void node_refusal(const struct qr_server *s, bool is_write, int status, char *text)
{
    if (status == QR_ENOTLEADER) {
        (void)snprintf(text, ERRTEXT_SIZE, "-TRYAGAIN no leader; retry shortly");
        return;
    }
    qr__command_node_error(s, is_write, status, text);
}

/* Answer an error in order: now when nothing is queued, else behind what is. */
static int reply_error(struct qr__client *c, const char *text)
{
    if (c->head == NULL) {
        return qr__resp_write_error(&c->out, text, strlen(text));
    }
    struct qr__pending *p = qr__pending_new(c, QR__PENDING_ADMIN);
    if (p == NULL) {
        return QR_ENOMEM;
    }
    (void)snprintf(p->errtext, sizeof(p->errtext), "%s", text);
    p->is_done = true;
    p->status = QR_EINVAL;
    qr__client_push(c, p);
    return 0;
}

/* A LOCAL command: its effects happen now (AUTH, QUIT...), its reply in order. */
static int run_local(struct qr__client *c, exec_fn exec, const struct qr_buf *args, size_t count)
{
    if (c->head == NULL) {
        return exec(c, args, count);
    }
    struct qr__pending *p = qr__pending_new(c, QR__PENDING_BYTES);
    if (p == NULL) {
        return QR_ENOMEM;
    }
    struct qr_resp_writer saved = c->out;
    (void)qr__resp_writer_init(&c->out, c->server->opts.reply_size_max); /* Checked at create. */
    int rv = exec(c, args, count);
    qr__resp_writer_take(&c->out, &p->result);
    qr__resp_writer_close(&c->out);
    c->out = saved;
    p->is_done = true;
    qr__client_push(c, p);
    return rv;
}

static void on_read_done(void *ctx, int status)
{
    qr__pending_done(ctx, status);
}

static int run_read(struct qr__client *c, exec_fn exec, const struct qr_buf *args, size_t count)
{
    if (c->is_stale_reads && c->head == NULL) {
        return exec(c, args, count);
    }
    struct qr__pending *p = qr__pending_new(c, QR__PENDING_EXEC);
    if (p == NULL || qr__pending_copy_args(p, args, count) != 0) {
        qr_free(p);
        return QR_ENOMEM;
    }
    p->exec = exec;
    qr__client_push(c, p);
    if (c->is_stale_reads) {
        p->is_done = true;
        return 0;
    }
    int rv = qr_node_read(c->server->node, on_read_done, p);
    if (rv != 0) {
        node_refusal(c->server, false, rv, p->errtext);
        p->is_done = true;
        p->status = rv;
    }
    return 0;
}

static void on_write_done(void *ctx, int status, struct qr_buf result)
{
    struct qr__pending *p = ctx;
    if (status == 0 && p->client != NULL && result.base != NULL) {
        p->result.base = qr_malloc(result.len);
        if (p->result.base == NULL) {
            status = QR_ENOMEM; /* Applied, but the answer is lost: say so. */
        } else {
            memcpy(p->result.base, result.base, result.len);
            p->result.len = result.len;
        }
    }
    qr__pending_done(p, status);
}

static int
run_write(struct qr__client *c, const struct command *def, const struct qr_buf *args, size_t count)
{
    struct qr_server *s = c->server;
    struct qr_kv_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    enum qr__reply_shape shape = QR__REPLY_OK;
    char errtext[ERRTEXT_SIZE] = "";
    if (def->build(def, args, count, &cmd, &shape, errtext) != 0) {
        return reply_error(c, errtext);
    }
    cmd.client_id = c->id;
    cmd.seq = ++s->seq;
    size_t size = qr__kv_cmd_encoded_size(&cmd);
    uint8_t stack[ENCODE_STACK_SIZE];
    uint8_t *buf = size <= sizeof(stack) ? stack : qr_malloc(size);
    struct qr__pending *p = buf != NULL ? qr__pending_new(c, QR__PENDING_WRITE) : NULL;
    if (p == NULL) {
        if (buf != stack) {
            qr_free(buf);
        }
        return QR_ENOMEM;
    }
    qr__kv_cmd_encode(&cmd, buf);
    p->shape = shape;
    qr__client_push(c, p);
    int rv = qr_node_propose(s->node, (struct qr_buf){buf, size}, on_write_done, p);
    if (buf != stack) {
        qr_free(buf);
    }
    if (rv != 0) {
        node_refusal(s, true, rv, p->errtext);
        p->is_done = true;
        p->status = rv;
    }
    return 0;
}

static int run_admin(struct qr__client *c, exec_fn exec, const struct qr_buf *args, size_t count)
{
    struct qr__pending *p = qr__pending_new(c, QR__PENDING_ADMIN);
    if (p == NULL) {
        return QR_ENOMEM;
    }
    qr__client_push(c, p);
    /* The admin function owns p from here: it completes it now or later. */
    c->admin_pending = p;
    int rv = exec(c, args, count);
    c->admin_pending = NULL;
    return rv;
}

int qr__command_dispatch(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    QR_ASSERT(args_count >= 1);
    char errtext[ERRTEXT_SIZE];
    const struct command *cmd = command_find(args[0]);
    if (cmd == NULL) {
        (void)snprintf(errtext, sizeof(errtext), "unknown command '%.64s'",
                       (const char *)args[0].base);
        return reply_error(c, errtext);
    }
    if (!c->is_authed && !cmd->is_noauth) {
        return reply_error(c, "-NOAUTH Authentication required.");
    }
    if ((cmd->arity > 0 && args_count != (size_t)cmd->arity) ||
        (cmd->arity < 0 && args_count < (size_t)-cmd->arity)) {
        (void)snprintf(errtext, sizeof(errtext), "wrong number of arguments for '%s' command",
                       cmd->name);
        return reply_error(c, errtext);
    }
    switch (cmd->kind) {
    case KIND_WRITE:
        return run_write(c, cmd, args, args_count);
    case KIND_READ:
        return run_read(c, cmd->exec, args, args_count);
    case KIND_ADMIN:
        return run_admin(c, cmd->exec, args, args_count);
    default:
        return run_local(c, cmd->exec, args, args_count);
    }
}

/* ---- Replies ------------------------------------------------------------------------------- */

static int reply_write(struct qr__client *c, const struct qr__pending *p)
{
    struct qr_kv_result r;
    if (qr__kvfsm_result_decode(p->result, &r) != 0) {
        return qr__resp_write_errorf(&c->out, "internal error: no result for the write");
    }
    if (r.status == QR_KV_ERROR) {
        const char *text = r.error == QR_KV_ERROR_NONE
                               ? "ERR the log entry was not a valid command (nothing changed)"
                               : qr__kv_error_text(r.error);
        return qr__resp_write_errorf(&c->out, "-%s", text);
    }
    switch (p->shape) {
    case QR__REPLY_VALUE:
        return r.status == QR_KV_VALUE ? qr__resp_write_bulk(&c->out, r.value.base, r.value.len)
                                       : qr__resp_write_null_bulk(&c->out);
    case QR__REPLY_INTEGER:
        return qr__resp_write_integer(&c->out, r.integer);
    case QR__REPLY_BOOL:
        return qr__resp_write_integer(&c->out, r.status == QR_KV_OK ? 1 : 0);
    default:
        return r.status == QR_KV_NOTFOUND ? qr__resp_write_null_bulk(&c->out) : write_ok(c);
    }
}

int qr__command_reply(struct qr__client *c, struct qr__pending *p)
{
    QR_ASSERT(p->is_done);
    if (p->errtext[0] != '\0') {
        return qr__resp_write_error(&c->out, p->errtext, strlen(p->errtext));
    }
    if (p->status != 0) {
        char text[ERRTEXT_SIZE];
        qr__command_node_error(c->server, p->kind == QR__PENDING_WRITE, p->status, text);
        return qr__resp_write_error(&c->out, text, strlen(text));
    }
    switch (p->kind) {
    case QR__PENDING_EXEC:
        return p->exec(c, p->args, p->args_count);
    case QR__PENDING_WRITE:
        return reply_write(c, p);
    case QR__PENDING_BYTES:
        return qr__resp_write_raw(&c->out, p->result.base, p->result.len);
    default:
        return write_ok(c);
    }
}
