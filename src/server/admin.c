/*
 * server/admin.c: INFO, the QUORUM.* commands and the member address table (admin.h).
 */
#include "server/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/address.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/log.h"
#include "util/parse.h"

/* Room for INFO: every section, QR_NODE_PEERS_MAX member lines of at most ~600 bytes. */
#define INFO_SIZE_MAX ((size_t)64 * 1024)
/* Members listed: voters, old voters of a joint configuration, learners. */
#define MEMBERS_LIST_MAX ((size_t)QR_NODE_PEERS_MAX * 2)
/* How long QUORUM.TRANSFER waits for the new leader. */
#define TRANSFER_WAIT_MS 5000

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* ---- Text building ------------------------------------------------------------------------ */

struct text {
    char *buf;
    size_t len;
    size_t cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    if (t->len >= t->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        t->len = (size_t)n < t->cap - t->len ? t->len + (size_t)n : t->cap - 1;
    }
}

/* ---- Members ------------------------------------------------------------------------------ */

/* The addresses of member id: the member table's (replicated through the log), else what
   this node was started with; "" when unknown. */
static void member_addresses(const struct qr_server *s, uint64_t id, char *peer, char *client)
{
    peer[0] = '\0';
    client[0] = '\0';
    size_t count = qr__kv_members_count(s->fsm->kv);
    for (size_t i = 0; i < count; i++) {
        struct qr_kv_member m;
        qr__kv_member_at(s->fsm->kv, i, &m);
        if (m.id == id) {
            (void)snprintf(peer, QR__SERVER_ADDRESS_SIZE, "%.*s", (int)m.peer_address.len,
                           (const char *)m.peer_address.base);
            (void)snprintf(client, QR__SERVER_ADDRESS_SIZE, "%.*s", (int)m.client_address.len,
                           (const char *)m.client_address.base);
            return;
        }
    }
    for (size_t i = 0; i < s->opts.peers_count; i++) {
        const struct qr_node_peer *p = &s->opts.peers[i];
        if (p->id == id) {
            (void)snprintf(peer, QR__SERVER_ADDRESS_SIZE, "%s", p->address);
            (void)snprintf(client, QR__SERVER_ADDRESS_SIZE, "%s",
                           p->client_address != NULL ? p->client_address : "");
        }
    }
}

/* The member table's own entry for id: whether this node already announced. */
static bool member_announced(const struct qr_server *s, uint64_t id)
{
    size_t count = qr__kv_members_count(s->fsm->kv);
    for (size_t i = 0; i < count; i++) {
        struct qr_kv_member m;
        qr__kv_member_at(s->fsm->kv, i, &m);
        if (m.id == id) {
            return m.peer_address.len == strlen(s->peer_address) &&
                   memcmp(m.peer_address.base, s->peer_address, m.peer_address.len) == 0 &&
                   m.client_address.len == strlen(s->client_address) &&
                   memcmp(m.client_address.base, s->client_address, m.client_address.len) == 0;
        }
    }
    return false;
}

static bool id_in(const qr_node_id *ids, uint32_t count, uint64_t id)
{
    for (uint32_t i = 0; i < count; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* Every member of the committed configuration (joint: old voters too), ascending. */
static size_t config_members(const struct qr_config *cfg, uint64_t *ids, bool *is_voter)
{
    size_t count = 0;
    for (uint64_t pass = 0; pass < 3; pass++) {
        const qr_node_id *list = pass == 0   ? cfg->voters
                                 : pass == 1 ? cfg->voters_old
                                             : cfg->learners;
        uint32_t n = pass == 0   ? cfg->voters_count
                     : pass == 1 ? cfg->voters_old_count
                                 : cfg->learners_count;
        for (uint32_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < count && ids[j] != list[i]) {
                j++;
            }
            if (j == count && count < MEMBERS_LIST_MAX) {
                ids[count] = list[i];
                is_voter[count] = pass < 2;
                count++;
            }
        }
    }
    /* Insertion sort: at most a few dozen. */
    for (size_t i = 1; i < count; i++) {
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint64_t id = ids[j];
            bool v = is_voter[j];
            ids[j] = ids[j - 1];
            is_voter[j] = is_voter[j - 1];
            ids[j - 1] = id;
            is_voter[j - 1] = v;
        }
    }
    return count;
}

static const struct qr_node_peer_status *peer_status(const struct qr_node_status *st, uint64_t id)
{
    for (size_t i = 0; i < st->peers_count; i++) {
        if (st->peers[i].id == id) {
            return &st->peers[i];
        }
    }
    return NULL;
}

static void info_member(struct text *t,
                        const struct qr_server *s,
                        const struct qr_node_status *st,
                        uint64_t id,
                        bool is_voter)
{
    char peer[QR__SERVER_ADDRESS_SIZE];
    char client[QR__SERVER_ADDRESS_SIZE];
    member_addresses(s, id, peer, client);
    bool is_self = id == st->id;
    const struct qr_node_peer_status *ps = peer_status(st, id);
    bool is_connected = is_self || (ps != NULL && ps->is_connected);
    text_add(t, "member_%llu:role=%s,peer=%s,client=%s,connected=%d,", ull(id),
             is_voter ? "voter" : "learner", peer, client, is_connected ? 1 : 0);
    if (st->role == QR_ROLE_LEADER && (is_self || (ps != NULL && ps->has_progress))) {
        qr_index match = is_self ? st->durable : ps->match;
        qr_index lag = st->last_index > match ? st->last_index - match : 0;
        text_add(t, "match=%llu,lag=%llu\r\n", ull(match), ull(lag));
    } else {
        text_add(t, "match=-,lag=-\r\n");
    }
}

static void info_quorum(struct text *t, const struct qr_server *s)
{
    struct qr_node_status st;
    qr_node_status(s->node, &st);
    text_add(t, "# Quorum\r\n");
    text_add(t, "node_id:%llu\r\nrole:%s\r\nterm:%llu\r\n", ull(st.id), qr_role_name(st.role),
             ull(st.term));
    char leader_peer[QR__SERVER_ADDRESS_SIZE];
    char leader_client[QR__SERVER_ADDRESS_SIZE];
    member_addresses(s, st.leader, leader_peer, leader_client);
    text_add(t, "leader_id:%llu\r\nleader_address:%s\r\n", ull(st.leader),
             st.leader_address[0] != '\0' || st.leader == 0 ? st.leader_address : leader_client);
    text_add(t, "commit_index:%llu\r\napplied_index:%llu\r\ndurable_index:%llu\r\n", ull(st.commit),
             ull(st.applied), ull(st.durable));
    text_add(t, "last_index:%llu\r\nsnapshot_index:%llu\r\n", ull(st.last_index),
             ull(st.snapshot_index));
    text_add(t, "read_only:%d\r\nfatal:%s\r\n", st.is_read_only ? 1 : 0, st.fatal_msg);
    text_add(t, "peer_address:%s\r\nclient_address:%s\r\n", s->peer_address, s->client_address);
    text_add(t, "requests_pending:%zu\r\n", st.requests_count);
    uint64_t ids[MEMBERS_LIST_MAX];
    bool is_voter[MEMBERS_LIST_MAX];
    size_t count = config_members(&st.config, ids, is_voter);
    text_add(t, "members:%zu\r\n", count);
    for (size_t i = 0; i < count; i++) {
        info_member(t, s, &st, ids[i], is_voter[i]);
    }
}

static void info_sections(struct text *t, const struct qr_server *s, const char *section)
{
    bool is_all = section == NULL || strcmp(section, "all") == 0 ||
                  strcmp(section, "default") == 0 || strcmp(section, "everything") == 0;
    if (is_all || strcmp(section, "server") == 0) {
        text_add(t,
                 "# Server\r\nredis_version:7.0.0\r\nquorum_version:%s\r\nredis_mode:"
                 "standalone\r\nprocess_id:%d\r\ntcp_port:%s\r\n\r\n",
                 QR__SERVER_VERSION, (int)uv_os_getpid(),
                 strrchr(s->listen_address, ':') != NULL ? strrchr(s->listen_address, ':') + 1
                                                         : "");
    }
    if (is_all || strcmp(section, "clients") == 0) {
        text_add(t, "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%u\r\n\r\n", s->clients_count,
                 s->opts.clients_max);
    }
    if (is_all || strcmp(section, "stats") == 0) {
        text_add(t,
                 "# Stats\r\ntotal_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
                 "protocol_errors:%llu\r\nclient_output_limit_closed:%llu\r\n"
                 "corrupt_log_entries:%llu\r\n\r\n",
                 ull(s->commands_count), ull(s->rejected_count), ull(s->protocol_errors_count),
                 ull(s->output_limit_count), ull(s->fsm->corrupt_count));
    }
    if (is_all || strcmp(section, "replication") == 0) {
        struct qr_node_status st;
        qr_node_status(s->node, &st);
        text_add(t, "# Replication\r\nrole:%s\r\n\r\n",
                 st.role == QR_ROLE_LEADER ? "master" : "slave");
    }
    if (is_all || strcmp(section, "keyspace") == 0) {
        text_add(t, "# Keyspace\r\n");
        uint64_t keys = qr__kv_count(s->fsm->kv);
        if (keys > 0) {
            text_add(t, "db0:keys=%llu,expires=0,avg_ttl=0\r\n", ull(keys));
        }
        text_add(t, "\r\n");
    }
    if (is_all || strcmp(section, "quorum") == 0) {
        info_quorum(t, s);
    }
}

static int write_text(struct qr__client *c, struct text *t)
{
    int rv = t->buf != NULL ? qr__resp_write_bulk(&c->out, (const uint8_t *)t->buf, t->len)
                            : qr__resp_write_errorf(&c->out, "out of memory");
    qr_free(t->buf);
    return rv;
}

int qr__admin_info(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    char section[32] = "";
    if (args_count >= 2) {
        for (size_t i = 0; i < args[1].len && i + 1 < sizeof(section); i++) {
            uint8_t ch = args[1].base[i];
            section[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
    }
    struct text t = {qr_malloc(INFO_SIZE_MAX), 0, INFO_SIZE_MAX};
    if (t.buf != NULL) {
        info_sections(&t, c->server, args_count >= 2 ? section : NULL);
    }
    return write_text(c, &t);
}

int qr__admin_status(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args;
    (void)args_count;
    struct text t = {qr_malloc(INFO_SIZE_MAX), 0, INFO_SIZE_MAX};
    if (t.buf != NULL) {
        info_quorum(&t, c->server);
    }
    return write_text(c, &t);
}

int qr__admin_members(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args;
    (void)args_count;
    struct qr_node_status st;
    qr_node_status(c->server->node, &st);
    uint64_t ids[MEMBERS_LIST_MAX];
    bool is_voter[MEMBERS_LIST_MAX];
    size_t count = config_members(&st.config, ids, is_voter);
    int rv = qr__resp_write_array(&c->out, count);
    for (size_t i = 0; i < count && rv == 0; i++) {
        char peer[QR__SERVER_ADDRESS_SIZE];
        char client[QR__SERVER_ADDRESS_SIZE];
        member_addresses(c->server, ids[i], peer, client);
        const char *role = is_voter[i] ? "voter" : "learner";
        rv = qr__resp_write_array(&c->out, 4);
        rv = rv != 0 ? rv : qr__resp_write_integer(&c->out, (int64_t)ids[i]);
        rv = rv != 0 ? rv : qr__resp_write_bulk(&c->out, (const uint8_t *)role, strlen(role));
        rv = rv != 0 ? rv : qr__resp_write_bulk(&c->out, (const uint8_t *)peer, strlen(peer));
        rv = rv != 0 ? rv : qr__resp_write_bulk(&c->out, (const uint8_t *)client, strlen(client));
    }
    return rv;
}

int qr__admin_snapshot(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args;
    (void)args_count;
    int rv = qr_node_snapshot_now(c->server->node);
    if (rv == QR_EBUSY) {
        return qr__resp_write_error(&c->out, "-TRYAGAIN a snapshot is being written",
                                    sizeof("-TRYAGAIN a snapshot is being written") - 1);
    }
    if (rv != 0) {
        return qr__resp_write_errorf(&c->out, "snapshot failed: %s", qr_strerror(rv));
    }
    return qr__resp_write_simple(&c->out, "OK", 2);
}

/* ---- Membership changes ------------------------------------------------------------------- */

static void admin_fail(struct qr__pending *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void admin_fail(struct qr__pending *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(p->errtext, sizeof(p->errtext), fmt, ap);
    va_end(ap);
    qr__pending_done(p, QR_EINVAL);
}

/* Refuse on a follower, naming the leader so that the client can go there. */
static bool admin_require_leader(struct qr__pending *p, const struct qr_node_status *st)
{
    if (st->role == QR_ROLE_LEADER) {
        return true;
    }
    char peer[QR__SERVER_ADDRESS_SIZE];
    char client[QR__SERVER_ADDRESS_SIZE];
    member_addresses(p->server, st->leader, peer, client);
    const char *address = st->leader_address[0] != '\0' ? st->leader_address : client;
    if (st->leader == 0) {
        admin_fail(p, "-TRYAGAIN no leader; retry shortly");
    } else if (address[0] == '\0') {
        admin_fail(p,
                   "-TRYAGAIN the leader (node %llu) has not announced its client address "
                   "yet; retry shortly",
                   ull(st->leader));
    } else {
        admin_fail(p, "-NOTLEADER %llu %s", ull(st->leader), address);
    }
    return false;
}

static bool admin_parse_id(struct qr__pending *p, struct qr_buf arg, uint64_t *id_out)
{
    if (qr__parse_u64((const char *)arg.base, 1, UINT64_MAX, id_out, NULL) != 0) {
        admin_fail(p, "node id must be a positive integer");
        return false;
    }
    return true;
}

static void ids_remove(qr_node_id *ids, uint32_t *count, uint64_t id)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < *count; i++) {
        if (ids[i] != id) {
            ids[j++] = ids[i];
        }
    }
    *count = j;
}

static void ids_insert(qr_node_id *ids, uint32_t *count, uint64_t id)
{
    uint32_t i = *count;
    while (i > 0 && ids[i - 1] > id) {
        ids[i] = ids[i - 1];
        i--;
    }
    ids[i] = id;
    (*count)++;
}

static void on_config_done(void *ctx, int status)
{
    struct qr__pending *p = ctx;
    if (status == 0 && p->client != NULL) {
        QR_LOG_INFOF("server: membership change for node %llu committed", ull(p->target));
    }
    qr__pending_done(p, status);
}

/* Ask the node for `next` (a copy of the committed configuration, edited). */
static void admin_change(struct qr__pending *p, struct qr_config *next)
{
    next->voters_old_count = 0;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_node_change_config(p->server->node, next, errmsg, on_config_done, p);
    if (rv == QR_EBUSY) {
        admin_fail(p, "-TRYAGAIN a membership change is in progress");
    } else if (rv == QR_ENOTLEADER) {
        admin_fail(p, "-TRYAGAIN leadership changed; retry");
    } else if (rv != 0) {
        admin_fail(p, "membership change refused: %s",
                   errmsg[0] != '\0' ? errmsg : qr_strerror(rv));
    }
}

static void on_add_recorded(void *ctx, int status, struct qr_buf result)
{
    (void)result;
    struct qr__pending *p = ctx;
    if (p->client == NULL || status != 0) { /* The client left, or the record failed. */
        qr__pending_done(p, status);
        return;
    }
    struct qr_server *s = p->server;
    qr__server_sync_members(s); /* The new member's address, before it is needed. */
    struct qr_node_status st;
    qr_node_status(s->node, &st);
    if (!admin_require_leader(p, &st)) {
        return;
    }
    struct qr_config next = st.config;
    if (id_in(next.voters, next.voters_count, p->target) ||
        id_in(next.learners, next.learners_count, p->target)) {
        admin_fail(p, "node %llu is already a member", ull(p->target));
        return;
    }
    if (next.learners_count == QR_CORE_MEMBERS_MAX) {
        admin_fail(p, "no room for another learner (%d at most)", QR_CORE_MEMBERS_MAX);
        return;
    }
    ids_insert(next.learners, &next.learners_count, p->target);
    admin_change(p, &next);
}

static bool address_ok(struct qr__pending *p, const char *what, struct qr_buf arg)
{
    struct sockaddr_storage addr;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (arg.len >= QR__SERVER_ADDRESS_SIZE || arg.len > QR_KV_ADDRESS_SIZE_MAX ||
        strlen((const char *)arg.base) != arg.len ||
        qr__address_resolve((const char *)arg.base, &addr, errmsg) != 0) {
        admin_fail(p, "bad %s address: %s", what, errmsg[0] != '\0' ? errmsg : "too long");
        return false;
    }
    return true;
}

static int propose_member(struct qr_server *s,
                          uint64_t id,
                          struct qr_buf peer,
                          struct qr_buf client,
                          qr_node_propose_cb cb,
                          void *ctx)
{
    struct qr_kv_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.op = QR_KV_MEMBER;
    cmd.member_id = id;
    cmd.key = peer;
    cmd.value = client;
    cmd.seq = ++s->seq;
    uint8_t buf[QR_KV_CMD_HEADER_SIZE + 2 * (QR_KV_ADDRESS_SIZE_MAX + 16) + 64];
    size_t size = qr__kv_cmd_encoded_size(&cmd);
    QR_ASSERT(size <= sizeof(buf));
    qr__kv_cmd_encode(&cmd, buf);
    return qr_node_propose(s->node, (struct qr_buf){buf, size}, cb, ctx);
}

int qr__admin_add(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr__pending *p = c->admin_pending;
    struct qr_node_status st;
    qr_node_status(c->server->node, &st);
    if (!admin_require_leader(p, &st) || !admin_parse_id(p, args[1], &p->target) ||
        !address_ok(p, "peer", args[2]) || !address_ok(p, "client", args[3])) {
        return 0;
    }
    int rv = propose_member(c->server, p->target, args[2], args[3], on_add_recorded, p);
    if (rv != 0) {
        admin_fail(p, "-TRYAGAIN cannot record the new member: %s", qr_strerror(rv));
    }
    return 0;
}

int qr__admin_promote(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr__pending *p = c->admin_pending;
    struct qr_node_status st;
    qr_node_status(c->server->node, &st);
    if (!admin_require_leader(p, &st) || !admin_parse_id(p, args[1], &p->target)) {
        return 0;
    }
    struct qr_config next = st.config;
    if (!id_in(next.learners, next.learners_count, p->target)) {
        admin_fail(p, "node %llu is not a learner", ull(p->target));
        return 0;
    }
    ids_remove(next.learners, &next.learners_count, p->target);
    ids_insert(next.voters, &next.voters_count, p->target);
    admin_change(p, &next);
    return 0;
}

int qr__admin_remove(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    (void)args_count;
    struct qr__pending *p = c->admin_pending;
    struct qr_node_status st;
    qr_node_status(c->server->node, &st);
    if (!admin_require_leader(p, &st) || !admin_parse_id(p, args[1], &p->target)) {
        return 0;
    }
    struct qr_config next = st.config;
    bool is_voter = id_in(next.voters, next.voters_count, p->target);
    if (!is_voter && !id_in(next.learners, next.learners_count, p->target)) {
        admin_fail(p, "node %llu is not a member", ull(p->target));
        return 0;
    }
    if (is_voter && next.voters_count == 1) {
        admin_fail(p, "node %llu is the last voter", ull(p->target));
        return 0;
    }
    ids_remove(next.voters, &next.voters_count, p->target);
    ids_remove(next.learners, &next.learners_count, p->target);
    admin_change(p, &next);
    return 0;
}

/* The voter other than us with the most of the log: the quickest to take over. */
static uint64_t transfer_pick(const struct qr_node_status *st)
{
    uint64_t best = 0;
    qr_index best_match = 0;
    for (size_t i = 0; i < st->peers_count; i++) {
        const struct qr_node_peer_status *ps = &st->peers[i];
        if (!id_in(st->config.voters, st->config.voters_count, ps->id) || !ps->has_progress ||
            !ps->is_connected) {
            continue;
        }
        if (best == 0 || ps->match > best_match) {
            best = ps->id;
            best_match = ps->match;
        }
    }
    return best;
}

int qr__admin_transfer(struct qr__client *c, const struct qr_buf *args, size_t args_count)
{
    struct qr__pending *p = c->admin_pending;
    struct qr_server *s = c->server;
    struct qr_node_status st;
    qr_node_status(s->node, &st);
    if (args_count > 2) {
        admin_fail(p, "wrong number of arguments for 'quorum.transfer' command");
        return 0;
    }
    if (!admin_require_leader(p, &st)) {
        return 0;
    }
    p->target = transfer_pick(&st);
    if (args_count == 2 && !admin_parse_id(p, args[1], &p->target)) {
        return 0;
    }
    if (p->target == 0) {
        admin_fail(p, "no other voter is connected and up to date");
        return 0;
    }
    int rv = qr_node_transfer_leader(s->node, p->target);
    if (rv != 0) {
        admin_fail(p, "cannot transfer to node %llu: %s", ull(p->target),
                   rv == QR_EINVAL ? "not a voter, or this node" : qr_strerror(rv));
        return 0;
    }
    QR_LOG_INFOF("server: leadership transfer to node %llu asked by client %llu", ull(p->target),
                 ull(c->id));
    p->deadline_ms = uv_now(s->loop) + TRANSFER_WAIT_MS;
    p->waiting_next = s->waiting;
    s->waiting = p;
    return 0;
}

void qr__admin_check(struct qr_server *s)
{
    if (s->waiting == NULL) {
        return;
    }
    struct qr_node_status st;
    qr_node_status(s->node, &st);
    uint64_t now = uv_now(s->loop);
    struct qr__pending **link = &s->waiting;
    while (*link != NULL) {
        struct qr__pending *p = *link;
        bool is_moved = st.leader == p->target && st.role != QR_ROLE_LEADER;
        if (!is_moved && now < p->deadline_ms && p->client != NULL) {
            link = &p->waiting_next;
            continue;
        }
        *link = p->waiting_next;
        if (is_moved || p->client == NULL) {
            qr__pending_done(p, 0);
        } else {
            admin_fail(p, "-TIMEOUT leadership did not move to node %llu within %d ms",
                       ull(p->target), TRANSFER_WAIT_MS);
        }
    }
}

void qr__admin_close(struct qr_server *s)
{
    while (s->waiting != NULL) {
        struct qr__pending *p = s->waiting;
        s->waiting = p->waiting_next;
        qr__pending_done(p, QR_ECANCELED);
    }
}

/* ---- The member address table -------------------------------------------------------------- */

static void on_announced(void *ctx, int status, struct qr_buf result)
{
    (void)result;
    struct qr_server *s = ctx;
    s->is_announcing = false;
    if (status != 0 && status != QR_ECANCELED) {
        QR_LOG_DEBUGF("server: announcing our addresses failed (%s); will retry",
                      qr_strerror(status));
    }
}

void qr__server_announce(struct qr_server *s)
{
    if (s->is_announcing || s->is_closing) {
        return;
    }
    struct qr_node_status st;
    qr_node_status(s->node, &st);
    if (st.leader == 0 || st.fatal_err != 0 || st.applied < st.commit) {
        return; /* Catching up: the table we see may be old. */
    }
    if (member_announced(s, st.id)) {
        return;
    }
    int rv = propose_member(
        s, st.id, (struct qr_buf){(uint8_t *)s->peer_address, strlen(s->peer_address)},
        (struct qr_buf){(uint8_t *)s->client_address, strlen(s->client_address)}, on_announced, s);
    s->is_announcing = rv == 0;
    if (rv == 0) {
        QR_LOG_INFOF("server: announcing peer address %s and client address %s", s->peer_address,
                     s->client_address);
    }
}

void qr__server_sync_members(struct qr_server *s)
{
    s->fsm->has_members_changed = false;
    size_t count = qr__kv_members_count(s->fsm->kv);
    for (size_t i = 0; i < count; i++) {
        struct qr_kv_member m;
        qr__kv_member_at(s->fsm->kv, i, &m);
        char peer[QR__SERVER_ADDRESS_SIZE];
        char client[QR__SERVER_ADDRESS_SIZE];
        member_addresses(s, m.id, peer, client);
        size_t j = 0;
        while (j < s->told_count && s->told[j].id != m.id) {
            j++;
        }
        if (j < s->told_count && strcmp(s->told[j].peer, peer) == 0 &&
            strcmp(s->told[j].client, client) == 0) {
            continue;
        }
        if (j == s->told_count && s->told_count == QR_NODE_PEERS_MAX) {
            continue;
        }
        struct qr_node_peer np = {m.id, peer[0] != '\0' ? peer : NULL, client};
        char errmsg[QR_ERRMSG_SIZE] = "";
        int rv = qr_node_add_peer(s->node, &np, errmsg);
        if (rv != 0) {
            QR_LOG_WARNF("server: cannot use the address of node %llu: %s", ull(m.id), errmsg);
            continue;
        }
        if (j == s->told_count) {
            s->told_count++;
        }
        s->told[j].id = m.id;
        (void)snprintf(s->told[j].peer, sizeof(s->told[j].peer), "%s", peer);
        (void)snprintf(s->told[j].client, sizeof(s->told[j].client), "%s", client);
    }
}
