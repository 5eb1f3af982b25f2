/*
 * node/node_request.c: client requests: proposals (local or forwarded), linearizable reads
 * and membership changes, from the call to the callback.
 *
 * Layer: node. A proposal is known by the (index, term) its entry got: when this node
 * applies that index, the same term means the command is what was applied there and the
 * proposer gets this node's own fsm result; another term means the entry was replaced
 * after a leader change, so the command was lost (QR_ENOTLEADER). On a follower the
 * command goes to the leader in a FORWARD frame and the leader answers with the index and
 * term (FORWARD_ACK); the follower still waits until it applied the index itself, which
 * gives read-your-writes on the node the client talks to. Every request has a deadline.
 *
 * Callbacks never run from inside the call that made the request, and never between
 * qr_core_ready() and qr_core_advance(): a finished request moves to node->done and the
 * drain runs its callback (STYLE §4: exactly once).
 */
#include <string.h>

#include "node/node_internal.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

/* ---- Lists ------------------------------------------------------------------------------ */

static void list_remove(struct qr__node_request_list *l, struct qr__node_request *r)
{
    QR_ASSERT(l->count > 0);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        l->head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    } else {
        l->tail = r->prev;
    }
    r->prev = NULL;
    r->next = NULL;
    l->count--;
}

/* Insert after `after` (NULL: at the head). */
static void list_insert(struct qr__node_request_list *l,
                        struct qr__node_request *after,
                        struct qr__node_request *r)
{
    r->prev = after;
    r->next = after != NULL ? after->next : l->head;
    if (r->next != NULL) {
        r->next->prev = r;
    } else {
        l->tail = r;
    }
    if (after != NULL) {
        after->next = r;
    } else {
        l->head = r;
    }
    l->count++;
}

static void list_push_back(struct qr__node_request_list *l, struct qr__node_request *r)
{
    list_insert(l, l->tail, r);
}

/* Keeps the list ascending by index; new proposals almost always go last. */
static void list_insert_by_index(struct qr__node_request_list *l, struct qr__node_request *r)
{
    struct qr__node_request *after = l->tail;
    while (after != NULL && after->index > r->index) {
        after = after->prev;
    }
    list_insert(l, after, r);
}

static struct qr__node_request_list *list_of(struct qr_node *node, const struct qr__node_request *r)
{
    switch (r->state) {
    case QR__NODE_REQ_WAIT_ACK:
        return &node->forwarded;
    case QR__NODE_REQ_WAIT_APPLY:
        return &node->applying;
    case QR__NODE_REQ_WAIT_READ_INDEX:
    case QR__NODE_REQ_WAIT_READ_APPLY:
        return &node->reading;
    case QR__NODE_REQ_WAIT_CONFIG:
        return &node->configs;
    case QR__NODE_REQ_DONE:
        return &node->done;
    }
    QR_ASSERT(false);
    return NULL;
}

/* ---- Request lifecycle ------------------------------------------------------------------- */

void qr__node_requests_init(struct qr_node *node)
{
    node->request_id_next = 1;
    memset(&node->forwarded, 0, sizeof(node->forwarded));
    memset(&node->applying, 0, sizeof(node->applying));
    memset(&node->reading, 0, sizeof(node->reading));
    memset(&node->configs, 0, sizeof(node->configs));
    memset(&node->done, 0, sizeof(node->done));
}

static int request_new(struct qr_node *node,
                       enum qr__node_request_kind kind,
                       void *ctx,
                       struct qr__node_request **out)
{
    if (node->is_closing) {
        return QR_ESHUTDOWN;
    }
    if (node->fatal_err != 0) {
        return QR_EFATAL;
    }
    if (node->requests_count >= node->opts.requests_max) {
        return QR_EBUSY;
    }
    struct qr__node_request *r = qr_calloc(1, sizeof(*r));
    if (r == NULL) {
        return QR_ENOMEM;
    }
    r->kind = kind;
    r->id = node->request_id_next++;
    r->ctx = ctx;
    r->deadline_ms = uv_now(node->loop) + node->opts.request_timeout_ms;
    *out = r;
    return 0;
}

/* A request that never made it onto a list (its call failed). */
static void request_discard(struct qr__node_request *r)
{
    qr_free(r->target);
    qr_free(r);
}

static void
request_start(struct qr_node *node, struct qr__node_request *r, enum qr__node_request_state state)
{
    r->state = state;
    if (state == QR__NODE_REQ_WAIT_APPLY) {
        list_insert_by_index(&node->applying, r);
    } else {
        list_push_back(list_of(node, r), r);
    }
    node->requests_count++;
    qr__node_kick(node);
}

/* Finish a request: its callback runs from the drain. Takes result. */
static void
request_done(struct qr_node *node, struct qr__node_request *r, int status, struct qr_buf result)
{
    QR_ASSERT(r->state != QR__NODE_REQ_DONE);
    QR_ASSERT(status == 0 || result.base == NULL);
    list_remove(list_of(node, r), r);
    QR_ASSERT(node->requests_count > 0);
    node->requests_count--;
    r->state = QR__NODE_REQ_DONE;
    r->status = status;
    r->result = result;
    list_push_back(&node->done, r);
    qr__node_kick(node);
}

static const struct qr_buf no_result = {NULL, 0};

void qr__node_requests_run_done(struct qr_node *node)
{
    QR_ASSERT(!node->in_ready);
    /* Only those done now: callbacks may finish more, which the next drain runs. */
    size_t count = node->done.count;
    for (size_t i = 0; i < count && node->done.head != NULL; i++) {
        struct qr__node_request *r = node->done.head;
        list_remove(&node->done, r);
        switch (r->kind) {
        case QR__NODE_REQ_PROPOSE:
            r->propose_cb(r->ctx, r->status, r->result);
            break;
        case QR__NODE_REQ_READ:
            r->read_cb(r->ctx, r->status);
            break;
        case QR__NODE_REQ_CONFIG:
            r->config_cb(r->ctx, r->status);
            break;
        }
        qr__node_release(node, r->result);
        request_discard(r);
    }
}

static void list_fail(struct qr_node *node, struct qr__node_request_list *l, int err)
{
    while (l->head != NULL) { /* Each pass removes one. */
        request_done(node, l->head, err, no_result);
    }
}

void qr__node_requests_fail_all(struct qr_node *node, int err)
{
    list_fail(node, &node->forwarded, err);
    list_fail(node, &node->applying, err);
    list_fail(node, &node->reading, err);
    list_fail(node, &node->configs, err);
    QR_ASSERT(node->requests_count == 0);
}

static void list_timeouts(struct qr_node *node, struct qr__node_request_list *l, uint64_t now)
{
    struct qr__node_request *r = l->head;
    while (r != NULL) {
        struct qr__node_request *next = r->next;
        if (now >= r->deadline_ms) {
            request_done(node, r, QR_ETIMEDOUT, no_result);
        }
        r = next;
    }
}

void qr__node_requests_timeouts(struct qr_node *node)
{
    uint64_t now = uv_now(node->loop);
    list_timeouts(node, &node->forwarded, now);
    list_timeouts(node, &node->applying, now);
    list_timeouts(node, &node->reading, now);
    list_timeouts(node, &node->configs, now);
}

/* ---- Proposals -------------------------------------------------------------------------- */

static int propose_forward(struct qr_node *node,
                           struct qr__node_request *r,
                           qr_node_id leader,
                           struct qr_buf command)
{
    size_t size = qr__node_forward_size(command.len);
    uint8_t *body = qr_malloc(size);
    if (body == NULL) {
        return QR_ENOMEM;
    }
    qr__node_forward_encode(r->id, command, body);
    int rv = qr__node_peer_send_frame(node, leader, QR_FRAME_FORWARD, body, size);
    qr_free(body);
    if (rv == QR_ENOTFOUND) {
        return QR_ENOTLEADER; /* No link to the leader right now. */
    }
    if (rv == 0) {
        request_start(node, r, QR__NODE_REQ_WAIT_ACK);
    }
    return rv;
}

int qr_node_propose(struct qr_node *node, struct qr_buf command, qr_node_propose_cb cb, void *ctx)
{
    QR_ASSERT(node != NULL && cb != NULL && !node->in_ready);
    QR_ASSERT(command.base != NULL || command.len == 0);
    if (command.len > UINT32_MAX) {
        return QR_ETOOBIG;
    }
    struct qr__node_request *r = NULL;
    int rv = request_new(node, QR__NODE_REQ_PROPOSE, ctx, &r);
    if (rv != 0) {
        return rv;
    }
    r->propose_cb = cb;
    struct qr_core_status cs;
    qr_core_status(node->core, &cs);
    if (cs.role == QR_ROLE_LEADER) {
        rv = qr_core_propose(node->core, command, &r->index);
        if (rv == 0) {
            r->term = cs.term;
            request_start(node, r, QR__NODE_REQ_WAIT_APPLY);
        }
    } else if (cs.leader == 0 || cs.leader == node->opts.id) {
        rv = QR_ENOTLEADER;
    } else {
        rv = propose_forward(node, r, cs.leader, command);
    }
    if (rv != 0) {
        request_discard(r);
    }
    return rv;
}

void qr__node_on_forward(struct qr_node *node, qr_node_id from, struct qr_buf body)
{
    struct qr__node_forward fw;
    char errmsg[QR_ERRMSG_SIZE];
    int rv = qr__node_forward_decode(body, &fw, errmsg);
    if (rv != 0) {
        QR_LOG_WARNF("node: node=%llu bad forward from peer %llu: %s",
                     (unsigned long long)node->opts.id, (unsigned long long)from, errmsg);
        return;
    }
    struct qr__node_forward_ack ack;
    memset(&ack, 0, sizeof(ack));
    ack.request_id = fw.request_id;
    ack.status = qr_core_propose(node->core, fw.command, &ack.index);
    if (ack.status == 0) {
        struct qr_core_status cs;
        qr_core_status(node->core, &cs);
        ack.term = cs.term;
    } else {
        ack.index = 0;
    }
    uint8_t buf[QR__NODE_FORWARD_ACK_SIZE];
    qr__node_forward_ack_encode(&ack, buf);
    /* If the answer cannot be queued the follower's request times out: no harm done. */
    (void)qr__node_peer_send_frame(node, from, QR_FRAME_FORWARD_ACK, buf, sizeof(buf));
    qr__node_kick(node);
}

static struct qr__node_request *list_find(const struct qr__node_request_list *l, uint64_t id)
{
    for (struct qr__node_request *r = l->head; r != NULL; r = r->next) {
        if (r->id == id) {
            return r;
        }
    }
    return NULL;
}

void qr__node_on_forward_ack(struct qr_node *node, qr_node_id from, struct qr_buf body)
{
    struct qr__node_forward_ack ack;
    char errmsg[QR_ERRMSG_SIZE];
    int rv = qr__node_forward_ack_decode(body, &ack, errmsg);
    if (rv != 0) {
        QR_LOG_WARNF("node: node=%llu bad forward ack from peer %llu: %s",
                     (unsigned long long)node->opts.id, (unsigned long long)from, errmsg);
        return;
    }
    struct qr__node_request *r = list_find(&node->forwarded, ack.request_id);
    if (r == NULL) {
        return; /* Timed out already. */
    }
    if (ack.status != 0) {
        request_done(node, r, ack.status, no_result);
        return;
    }
    if (ack.index <= node->applied) {
        /* Applied before the answer came, so its result is gone; the term still tells
         * whether it was this command. */
        const struct qr_entry *e = NULL;
        bool is_other = qr_core_entry(node->core, ack.index, &e) == 0 && e->term != ack.term;
        request_done(node, r, is_other ? QR_ENOTLEADER : QR_ETIMEDOUT, no_result);
        return;
    }
    list_remove(&node->forwarded, r);
    node->requests_count--;
    r->index = ack.index;
    r->term = ack.term;
    request_start(node, r, QR__NODE_REQ_WAIT_APPLY);
}

bool qr__node_requests_wait_for(const struct qr_node *node, const struct qr_entry *e)
{
    /* The applying list is ordered by index and holds nothing below the entry applied. */
    for (const struct qr__node_request *r = node->applying.head; r != NULL && r->index <= e->index;
         r = r->next) {
        if (r->index == e->index && r->term == e->term) {
            return true;
        }
    }
    return false;
}

void qr__node_requests_applied(struct qr_node *node, const struct qr_entry *e, struct qr_buf result)
{
    bool is_given = false;
    while (node->applying.head != NULL && node->applying.head->index <= e->index) {
        struct qr__node_request *r = node->applying.head;
        if (r->index == e->index && r->term == e->term && !is_given) {
            request_done(node, r, 0, result);
            is_given = true;
        } else if (r->index == e->index) {
            request_done(node, r, QR_ENOTLEADER, no_result); /* Replaced by another leader. */
        } else {
            request_done(node, r, QR_ETIMEDOUT, no_result); /* Skipped: outcome unknown. */
        }
    }
    if (!is_given) {
        qr__node_release(node, result);
    }
}

void qr__node_requests_skipped(struct qr_node *node, qr_index index)
{
    /* A snapshot replaced these entries: whether the commands are in it is unknown. */
    while (node->applying.head != NULL && node->applying.head->index <= index) {
        request_done(node, node->applying.head, QR_ETIMEDOUT, no_result);
    }
}

/* ---- Reads ---------------------------------------------------------------------------------- */

int qr_node_read(struct qr_node *node, qr_node_read_cb cb, void *ctx)
{
    QR_ASSERT(node != NULL && cb != NULL && !node->in_ready);
    struct qr__node_request *r = NULL;
    int rv = request_new(node, QR__NODE_REQ_READ, ctx, &r);
    if (rv != 0) {
        return rv;
    }
    r->read_cb = cb;
    rv = qr_core_read_index(node->core, r->id);
    if (rv != 0) {
        request_discard(r);
        return rv;
    }
    request_start(node, r, QR__NODE_REQ_WAIT_READ_INDEX);
    return 0;
}

void qr__node_requests_reads(struct qr_node *node, const struct qr_ready *rd)
{
    for (size_t i = 0; i < rd->reads_count; i++) {
        struct qr__node_request *r = list_find(&node->reading, rd->reads[i].request_id);
        if (r != NULL && r->state == QR__NODE_REQ_WAIT_READ_INDEX) {
            r->index = rd->reads[i].index;
            r->state = QR__NODE_REQ_WAIT_READ_APPLY; /* Same list. */
        }
    }
    for (size_t i = 0; i < rd->reads_failed_count; i++) {
        struct qr__node_request *r = list_find(&node->reading, rd->reads_failed[i]);
        if (r != NULL) {
            request_done(node, r, QR_ENOTLEADER, no_result);
        }
    }
}

/* ---- Membership --------------------------------------------------------------------------- */

static bool config_reached(const struct qr_config *have, const struct qr_config *want)
{
    return have->voters_old_count == 0 && have->voters_count == want->voters_count &&
           have->learners_count == want->learners_count &&
           memcmp(have->voters, want->voters, want->voters_count * sizeof(qr_node_id)) == 0 &&
           memcmp(have->learners, want->learners, want->learners_count * sizeof(qr_node_id)) == 0;
}

int qr_node_change_config(struct qr_node *node,
                          const struct qr_config *next,
                          char *errmsg,
                          qr_node_config_cb cb,
                          void *ctx)
{
    QR_ASSERT(node != NULL && next != NULL && cb != NULL && !node->in_ready);
    struct qr__node_request *r = NULL;
    int rv = request_new(node, QR__NODE_REQ_CONFIG, ctx, &r);
    if (rv != 0) {
        return qr__errf(errmsg, rv, "node: cannot take a request now");
    }
    r->config_cb = cb;
    r->target = qr_malloc(sizeof(*r->target));
    rv = r->target == NULL ? QR_ENOMEM : qr_core_change_config(node->core, next, errmsg);
    if (rv != 0) {
        request_discard(r);
        return rv;
    }
    *r->target = *next;
    QR_LOG_INFOF("node: node=%llu term=%llu membership change to %u voters, %u learners",
                 (unsigned long long)node->opts.id, (unsigned long long)node->term,
                 next->voters_count, next->learners_count);
    request_start(node, r, QR__NODE_REQ_WAIT_CONFIG);
    return 0;
}

void qr__node_requests_progress(struct qr_node *node)
{
    struct qr__node_request *r = node->reading.head;
    while (r != NULL) {
        struct qr__node_request *next = r->next;
        if (r->state == QR__NODE_REQ_WAIT_READ_APPLY && r->index <= node->applied) {
            request_done(node, r, 0, no_result);
        }
        r = next;
    }
    if (node->configs.count == 0) {
        return;
    }
    struct qr_core_status cs;
    qr_core_status(node->core, &cs);
    r = node->configs.head;
    while (r != NULL) {
        struct qr__node_request *next = r->next;
        if (config_reached(&cs.config, r->target)) {
            request_done(node, r, 0, no_result);
        }
        r = next;
    }
}
