/*
 * node/node_peer.c: TCP links between members: listen, dial, authenticate, frame, batch.
 *
 * Layer: node (uses transport's codec and handshake). Every node listens and dials each
 * other member; both ends of every connection run the handshake before any other frame,
 * and a connection that fails it is closed with a WARN naming the reason. Messages to a
 * peer leave on our dialled connection when it is up, else on the one the peer dialled to
 * us; whatever arrives on either is accepted only if its `from` is the authenticated peer
 * and its `to` is us. Each connection has a bounded send queue (bytes): beyond it messages
 * are dropped, which the protocol tolerates (it retries). Queued frames leave in one
 * uv_write per connection per loop iteration. A dialled connection that closes is retried
 * with jittered exponential backoff. Connection memory is freed only in its close
 * callback, after libuv has run every request callback of the handle.
 */
#include <netdb.h>
#include <string.h>

#include "node/node_internal.h"
#include "quorum/err.h"
#include "util/address.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"
#include "util/parse.h"

#define LISTEN_BACKLOG 128

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* ---- Addresses ------------------------------------------------------------------------ */

/* Copy a string already known to fit an address buffer. */
static void copy_string(char dst[QR_NODE_ADDRESS_SIZE], const char *src)
{
    size_t len = strlen(src);
    QR_ASSERT(len < QR_NODE_ADDRESS_SIZE);
    memcpy(dst, src, len + 1);
}

/* ---- The peer table --------------------------------------------------------------------- */

struct qr__node_peer *qr__node_peer_find(const struct qr_node *node, qr_node_id id)
{
    for (size_t i = 0; i < node->peers_count; i++) {
        if (node->peers[i]->id == id) {
            return node->peers[i];
        }
    }
    return NULL;
}

static struct qr__node_peer *peer_new(struct qr_node *node, qr_node_id id)
{
    QR_ASSERT(id != 0 && qr__node_peer_find(node, id) == NULL);
    if (node->peers_count == QR_NODE_PEERS_MAX) {
        return NULL;
    }
    struct qr__node_peer *p = qr_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->node = node;
    p->id = id;
    p->backoff_ms = QR__NODE_BACKOFF_MS_MIN;
    p->reconnect_timer.data = p;
    node->peers[node->peers_count++] = p;
    return p;
}

static void peer_dial(struct qr__node_peer *p);

static void peer_start(struct qr__node_peer *p)
{
    struct qr_node *node = p->node;
    if (p->id == node->opts.id) {
        return; /* No link to ourselves, and no timer either. */
    }
    if (!p->has_timer) {
        QR__NODE_CHECK(uv_timer_init(node->loop, &p->reconnect_timer)); /* Cannot fail. */
        p->has_timer = true;
        node->handles_open++;
    }
    peer_dial(p);
}

static int peer_set_address(struct qr__node_peer *p, const struct qr_node_peer *conf, char *errmsg)
{
    if (conf->client_address != NULL && strlen(conf->client_address) >= QR_NODE_ADDRESS_SIZE) {
        return qr__errf(errmsg, QR_EINVAL, "peer %llu: client address too long", ull(conf->id));
    }
    if (conf->address != NULL) {
        struct sockaddr_storage addr;
        int rv = qr__address_resolve(conf->address, &addr, errmsg);
        if (rv != 0) {
            return qr__err_wrapf(errmsg, rv, "peer %llu", ull(conf->id));
        }
        p->addr = addr;
        p->has_address = true;
        copy_string(p->address, conf->address); /* Fits: resolve checked the length. */
    }
    if (conf->client_address != NULL) {
        copy_string(p->client_address, conf->client_address);
    }
    return 0;
}

int qr__node_peer_add(struct qr_node *node, const struct qr_node_peer *conf, char *errmsg)
{
    if (conf->id == 0) {
        return qr__errf(errmsg, QR_EINVAL, "peer id 0 is reserved");
    }
    struct qr__node_peer *p = qr__node_peer_find(node, conf->id);
    bool is_new = p == NULL;
    if (is_new) {
        p = peer_new(node, conf->id);
        if (p == NULL) {
            return qr__errf(errmsg, QR_EBUSY, "peer %llu: no room (%d peers at most)",
                            ull(conf->id), QR_NODE_PEERS_MAX);
        }
    }
    int rv = peer_set_address(p, conf, errmsg);
    if (rv != 0) {
        if (is_new) {
            node->peers_count--;
            qr_free(p);
        }
        return rv;
    }
    if (node->is_started) {
        peer_start(p);
    }
    return 0;
}

int qr__node_peers_init(struct qr_node *node, char *errmsg)
{
    const struct qr_node_opts *o = &node->opts;
    const char *listen = o->listen_address;
    for (size_t i = 0; i < o->peers_count; i++) {
        const struct qr_node_peer *conf = &o->peers[i];
        if (conf->id == 0 || conf->address == NULL || qr__node_peer_find(node, conf->id)) {
            return qr__errf(errmsg, QR_EINVAL,
                            "peer %zu: id %llu is 0, repeated or has no "
                            "address",
                            i, ull(conf->id));
        }
        int rv = qr__node_peer_add(node, conf, errmsg);
        if (rv != 0) {
            return rv;
        }
        if (conf->id == o->id && listen == NULL) {
            listen = conf->address;
        }
    }
    if (!o->join && qr__node_peer_find(node, o->id) == NULL) {
        return qr__errf(errmsg, QR_EINVAL, "this node (%llu) is not among the peers", ull(o->id));
    }
    if (listen == NULL) {
        return qr__errf(errmsg, QR_EINVAL, "no listen address");
    }
    int rv = qr__address_resolve(listen, &node->listen_addr, errmsg);
    if (rv != 0) {
        return qr__err_wrapf(errmsg, rv, "listen");
    }
    copy_string(node->listen_address, listen);
    return 0;
}

void qr__node_peers_free(struct qr_node *node)
{
    for (size_t i = 0; i < node->peers_count; i++) {
        QR_ASSERT(!node->peers[i]->has_timer);
        qr_free(node->peers[i]);
        node->peers[i] = NULL;
    }
    node->peers_count = 0;
}

/* ---- Connections -------------------------------------------------------------------------- */

static void conn_on_closed(uv_handle_t *handle)
{
    struct qr__node_conn *c = handle->data;
    struct qr_node *node = c->node;
    QR_ASSERT(c->is_closing && !c->is_writing);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        node->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    struct qr__node_frame *f = c->queue_head;
    while (f != NULL) {
        struct qr__node_frame *next = f->next;
        qr_free(f);
        f = next;
    }
    qr__frame_reader_close(&c->reader);
    qr__codec_decoder_close(&c->decoder);
    qr__handshake_close(&c->hs);
    qr_free(c);
    qr__node_handle_closed(node);
}

static struct qr__node_conn *conn_new(struct qr_node *node, bool is_outbound)
{
    struct qr__node_conn *c = qr_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (uv_tcp_init(node->loop, &c->tcp) != 0) {
        qr_free(c);
        return NULL;
    }
    node->handles_open++;
    c->tcp.data = c;
    c->node = node;
    c->is_outbound = is_outbound;
    c->write_req.data = c;
    c->connect_req.data = c;
    QR__NODE_CHECK(qr__frame_reader_init(&c->reader, QR__NODE_FRAME_SIZE_MAX, NULL));
    qr__codec_decoder_init(&c->decoder);
    c->next = node->conns;
    if (node->conns != NULL) {
        node->conns->prev = c;
    }
    node->conns = c;
    return c;
}

static void peer_on_reconnect(uv_timer_t *timer)
{
    peer_dial(timer->data);
}

static void peer_schedule_reconnect(struct qr__node_peer *p)
{
    struct qr_node *node = p->node;
    if (!p->has_timer || node->is_closing || node->fatal_err != 0) {
        return;
    }
    uint32_t half = p->backoff_ms / 2;
    uint32_t delay = half + (uint32_t)qr__rng_below(&node->rng, (uint64_t)half + 1);
    p->backoff_ms =
        p->backoff_ms * 2 < QR__NODE_BACKOFF_MS_MAX ? p->backoff_ms * 2 : QR__NODE_BACKOFF_MS_MAX;
    QR__NODE_CHECK(uv_timer_start(&p->reconnect_timer, peer_on_reconnect, delay, 0));
}

static bool conn_is_up(const struct qr__node_conn *c)
{
    return c != NULL && !c->is_closing && qr__handshake_is_accepted(&c->hs);
}

static void conn_close(struct qr__node_conn *c)
{
    if (c->is_closing) {
        return;
    }
    struct qr_node *node = c->node;
    struct qr__node_peer *p = c->peer;
    bool was_up = conn_is_up(c);
    c->is_closing = true;
    if (c->is_pending) {
        c->is_pending = false;
        node->pending_conns_count--;
    }
    if (p != NULL) {
        if (p->in == c) {
            p->in = NULL;
        }
        if (p->out == c) {
            p->out = NULL;
            if (was_up && !node->is_closing) {
                QR_LOG_INFOF("node: node=%llu disconnected from peer %llu at %s",
                             ull(node->opts.id), ull(p->id), p->address);
            }
            peer_schedule_reconnect(p);
        }
        c->peer = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
}

static void conn_queue(struct qr__node_conn *c, struct qr__node_frame *f)
{
    f->next = NULL;
    if (c->queue_tail != NULL) {
        c->queue_tail->next = f;
    } else {
        c->queue_head = f;
    }
    c->queue_tail = f;
    c->queue_size += f->size;
}

static struct qr__node_frame *frame_new(size_t size)
{
    struct qr__node_frame *f = qr_malloc(sizeof(*f) + size);
    if (f != NULL) {
        f->next = NULL;
        f->size = size;
    }
    return f;
}

/* Queue bytes that must go out whatever the limit (handshake frames). */
static int conn_queue_bytes(struct qr__node_conn *c, const uint8_t *data, size_t size)
{
    struct qr__node_frame *f = frame_new(size);
    if (f == NULL) {
        return QR_ENOMEM;
    }
    memcpy(f->data, data, size);
    conn_queue(c, f);
    return 0;
}

/* Free the frames of the write that completed (or failed to start). */
static void conn_write_done(struct qr__node_conn *c)
{
    QR_ASSERT(c->is_writing);
    struct qr__node_frame *f = c->writing_head;
    for (size_t i = 0; i < c->writing_count; i++) {
        QR_ASSERT(f != NULL);
        struct qr__node_frame *next = f->next;
        c->queue_size -= f->size;
        qr_free(f);
        f = next;
    }
    c->writing_head = NULL;
    c->writing_count = 0;
    c->is_writing = false;
}

/* Skip the first `written` bytes of bufs[0..n): return the index of the first buffer with
 * bytes left, that buffer trimmed to them (n when everything was written). */
static size_t bufs_advance(uv_buf_t *bufs, size_t n, size_t written)
{
    size_t i = 0;
    while (i < n && written >= bufs[i].len) {
        written -= bufs[i].len;
        i++;
    }
    if (i < n) {
        bufs[i].base += written;
        bufs[i].len -= written;
    }
    return i;
}

static void conn_on_write(uv_write_t *req, int status);

/* Send everything queued (up to QR__NODE_WRITE_BUFS_MAX frames): first straight to the
 * socket with uv_try_write, which usually takes it all in one system call; whatever the
 * socket does not take goes to one uv_write (whose completion costs a poll change).
 * @return 0 (is_writing says whether a uv_write is still running), or a uv error (the
 * frames are freed). */
static int conn_write(struct qr__node_conn *c)
{
    size_t n = 0;
    struct qr__node_frame *last = NULL;
    for (struct qr__node_frame *f = c->queue_head; f != NULL && n < QR__NODE_WRITE_BUFS_MAX;
         f = f->next) {
        c->bufs[n].base = (char *)f->data;
        c->bufs[n].len = f->size;
        last = f;
        n++;
    }
    QR_ASSERT(n > 0 && last != NULL);
    c->writing_head = c->queue_head;
    c->writing_count = n;
    c->queue_head = last->next;
    if (c->queue_head == NULL) {
        c->queue_tail = NULL;
    }
    last->next = NULL;
    c->is_writing = true;
    int written = uv_try_write((uv_stream_t *)&c->tcp, c->bufs, (unsigned)n);
    if (written < 0 && written != UV_EAGAIN) {
        conn_write_done(c);
        return written;
    }
    size_t first = written > 0 ? bufs_advance(c->bufs, n, (size_t)written) : 0;
    if (first == n) {
        conn_write_done(c); /* All of it went out now. */
        return 0;
    }
    int rv = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, c->bufs + first, (unsigned)(n - first),
                      conn_on_write);
    if (rv != 0) {
        conn_write_done(c);
    }
    return rv;
}

/* conn_write until everything queued is out or a uv_write is running. */
static int conn_write_all(struct qr__node_conn *c)
{
    while (!c->is_writing && c->queue_head != NULL) {
        int rv = conn_write(c);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static void conn_on_write(uv_write_t *req, int status)
{
    struct qr__node_conn *c = req->data;
    conn_write_done(c);
    if (status >= 0 && !c->is_closing) {
        status = conn_write_all(c); /* More was queued meanwhile. */
    }
    if (status < 0 && !c->is_closing) {
        QR_LOG_DEBUGF("node: node=%llu write to peer %llu: %s", ull(c->node->opts.id),
                      ull(c->peer_id), uv_strerror(status));
        conn_close(c);
    }
}

static void conn_flush(struct qr__node_conn *c)
{
    if (c->is_writing || c->is_closing || !c->is_connected || c->queue_head == NULL) {
        return;
    }
    int rv = conn_write_all(c);
    if (rv != 0) {
        QR_LOG_DEBUGF("node: node=%llu write to peer %llu: %s", ull(c->node->opts.id),
                      ull(c->peer_id), uv_strerror(rv));
        conn_close(c);
    }
}

void qr__node_peers_flush(struct qr_node *node)
{
    for (struct qr__node_conn *c = node->conns; c != NULL; c = c->next) {
        conn_flush(c);
    }
}

/* ---- Reading ------------------------------------------------------------------------------ */

static void conn_on_msg(struct qr__node_conn *c, struct qr_buf body)
{
    struct qr_node *node = c->node;
    struct qr_msg m;
    char errmsg[QR_ERRMSG_SIZE];
    int rv = qr__codec_decode(&c->decoder, body, &m, errmsg);
    if (rv != 0) {
        QR_LOG_WARNF("node: node=%llu bad message from peer %llu, closing: %s", ull(node->opts.id),
                     ull(c->peer_id), errmsg);
        conn_close(c);
        return;
    }
    if (m.from != c->peer_id || m.to != node->opts.id) {
        QR_LOG_WARNF("node: node=%llu dropped a %s from %llu to %llu on the link of peer %llu",
                     ull(node->opts.id), qr_msg_type_name(m.type), ull(m.from), ull(m.to),
                     ull(c->peer_id));
        return;
    }
    rv = qr_core_step(node->core, &m);
    if (rv != 0) {
        QR_LOG_DEBUGF("node: node=%llu core refused a %s from %llu: %s", ull(node->opts.id),
                      qr_msg_type_name(m.type), ull(m.from), qr_err_name(rv));
    }
    qr__node_kick(node);
}

static void conn_on_authenticated(struct qr__node_conn *c)
{
    struct qr_node *node = c->node;
    if (c->is_outbound) {
        struct qr__node_peer *p = c->peer;
        QR_ASSERT(p != NULL && p->out == c && c->hs.peer_id == p->id);
        p->backoff_ms = QR__NODE_BACKOFF_MS_MIN;
        QR_LOG_INFOF("node: node=%llu connected to peer %llu at %s", ull(node->opts.id), ull(p->id),
                     p->address);
        qr__node_kick(node);
        return;
    }
    qr_node_id id = c->hs.peer_id;
    c->is_pending = false;
    node->pending_conns_count--;
    struct qr__node_peer *p = qr__node_peer_find(node, id);
    if (p == NULL) {
        p = peer_new(node, id); /* A joining node: answered on its own connection. */
    }
    if (p == NULL) {
        QR_LOG_WARNF("node: node=%llu refused peer %llu: no room for another peer",
                     ull(node->opts.id), ull(id));
        conn_close(c);
        return;
    }
    if (p->in != NULL) {
        conn_close(p->in); /* The peer reconnected: the old connection is dead or dying. */
    }
    p->in = c;
    c->peer = p;
    c->peer_id = id;
    QR_LOG_DEBUGF("node: node=%llu peer %llu connected to us", ull(node->opts.id), ull(id));
    qr__node_kick(node);
}

static void conn_on_handshake_frame(struct qr__node_conn *c, const struct qr_frame *f)
{
    struct qr_node *node = c->node;
    uint8_t proof[QR_HANDSHAKE_PROOF_FRAME_SIZE];
    bool has_proof = false;
    int rv = qr__handshake_on_frame(&c->hs, f, proof, &has_proof);
    if (rv == 0 && has_proof) {
        rv = conn_queue_bytes(c, proof, sizeof(proof));
    }
    if (rv != 0) {
        QR_LOG_WARNF("node: node=%llu refused a connection %s peer %llu: %s", ull(node->opts.id),
                     c->is_outbound ? "to" : "from",
                     ull(c->is_outbound ? c->peer_id : c->hs.peer_id),
                     c->hs.errmsg[0] != '\0' ? c->hs.errmsg : qr_err_name(rv));
        conn_close(c);
        return;
    }
    conn_flush(c);
    if (qr__handshake_is_accepted(&c->hs)) {
        conn_on_authenticated(c);
    }
}

static void conn_on_frame(struct qr__node_conn *c, const struct qr_frame *f)
{
    struct qr_node *node = c->node;
    if (!qr__handshake_is_accepted(&c->hs)) {
        conn_on_handshake_frame(c, f);
        return;
    }
    if (node->fatal_err != 0) {
        return;
    }
    switch (f->type) {
    case QR_FRAME_MSG:
        conn_on_msg(c, f->body);
        return;
    case QR_FRAME_FORWARD:
        qr__node_on_forward(node, c->peer_id, f->body);
        return;
    case QR_FRAME_FORWARD_ACK:
        qr__node_on_forward_ack(node, c->peer_id, f->body);
        return;
    case QR_FRAME_HELLO:
    case QR_FRAME_PROOF:
        break;
    }
    QR_LOG_WARNF("node: node=%llu handshake frame from peer %llu after the handshake; closing",
                 ull(node->opts.id), ull(c->peer_id));
    conn_close(c);
}

static void conn_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct qr__node_conn *c = handle->data;
    /* One buffer serves every connection: a read is consumed before the next is allocated. */
    buf->base = (char *)c->node->read_buf;
    buf->len = sizeof(c->node->read_buf);
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct qr__node_conn *c = stream->data;
    if (nread == 0 || c->is_closing) {
        return;
    }
    if (nread < 0) {
        QR_LOG_DEBUGF("node: node=%llu connection %s peer %llu: %s", ull(c->node->opts.id),
                      c->is_outbound ? "to" : "from", ull(c->peer_id), uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    const uint8_t *data = (const uint8_t *)buf->base;
    size_t size = (size_t)nread;
    size_t pos = 0;
    while (pos < size && !c->is_closing) { /* Each pass consumes bytes or fails. */
        size_t used = 0;
        int rv = qr__frame_reader_feed(&c->reader, data + pos, size - pos, &used);
        pos += used;
        if (rv != 0) {
            QR_LOG_WARNF("node: node=%llu closing the connection %s peer %llu: %s",
                         ull(c->node->opts.id), c->is_outbound ? "to" : "from", ull(c->peer_id),
                         c->reader.errmsg[0] != '\0' ? c->reader.errmsg : qr_err_name(rv));
            conn_close(c);
            return;
        }
        struct qr_frame f;
        while (!c->is_closing && qr__frame_reader_next(&c->reader, &f)) {
            conn_on_frame(c, &f);
        }
    }
}

static void conn_start_handshake(struct qr__node_conn *c)
{
    struct qr_node *node = c->node;
    struct qr_handshake_opts ho;
    memset(&ho, 0, sizeof(ho));
    ho.cluster_id = node->opts.cluster_id;
    ho.node_id = node->opts.id;
    ho.peer_id = c->is_outbound ? c->peer_id : 0;
    ho.secret = node->secret;
    ho.secret_size = node->opts.secret_size;
    ho.frame_size_max = QR__NODE_FRAME_SIZE_MAX;
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    int rv = qr__handshake_start(&c->hs, &ho, hello);
    if (rv == 0) {
        rv = conn_queue_bytes(c, hello, sizeof(hello));
    }
    if (rv == 0) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    }
    if (rv != 0) {
        QR_LOG_WARNF("node: node=%llu could not start a handshake with peer %llu: %s",
                     ull(node->opts.id), ull(c->peer_id), c->hs.errmsg);
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1); /* Latency only; failure changes nothing else. */
    c->deadline_ms = uv_now(node->loop) + QR__NODE_HANDSHAKE_TIMEOUT_MS;
    conn_flush(c);
}

/* ---- Dialling and accepting --------------------------------------------------------------- */

static void conn_on_connect(uv_connect_t *req, int status)
{
    struct qr__node_conn *c = req->data;
    if (c->is_closing) {
        return; /* Canceled by a close. */
    }
    if (status < 0) {
        QR_LOG_DEBUGF("node: node=%llu dial peer %llu: %s", ull(c->node->opts.id), ull(c->peer_id),
                      uv_strerror(status));
        conn_close(c);
        return;
    }
    c->is_connected = true;
    conn_start_handshake(c);
}

static void peer_dial(struct qr__node_peer *p)
{
    struct qr_node *node = p->node;
    if (!p->has_address || p->out != NULL || node->is_closing || node->fatal_err != 0) {
        return;
    }
    struct qr__node_conn *c = conn_new(node, true);
    if (c == NULL) {
        peer_schedule_reconnect(p);
        return;
    }
    c->peer = p;
    c->peer_id = p->id;
    p->out = c;
    /* Connecting and authenticating share one deadline: a black-holed address is given up
     * long before the kernel's own connect timeout. */
    c->deadline_ms = uv_now(node->loop) + QR__NODE_HANDSHAKE_TIMEOUT_MS;
    int rv = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->addr,
                            conn_on_connect);
    if (rv != 0) {
        QR_LOG_DEBUGF("node: node=%llu dial peer %llu at %s: %s", ull(node->opts.id), ull(p->id),
                      p->address, uv_strerror(rv));
        conn_close(c);
    }
}

static void node_on_connection(uv_stream_t *server, int status)
{
    struct qr_node *node = server->data;
    if (status < 0) {
        QR_LOG_WARNF("node: node=%llu accept: %s", ull(node->opts.id), uv_strerror(status));
        return;
    }
    struct qr__node_conn *c = conn_new(node, false);
    if (c == NULL) {
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || node->fatal_err != 0 ||
        node->pending_conns_count >= QR__NODE_PENDING_CONNS_MAX) {
        conn_close(c);
        return;
    }
    c->is_pending = true;
    node->pending_conns_count++;
    c->is_connected = true;
    conn_start_handshake(c);
}

static void node_on_listener_closed(uv_handle_t *handle)
{
    qr__node_handle_closed(handle->data);
}

int qr__node_peers_start(struct qr_node *node, char *errmsg)
{
    QR_ASSERT(!node->has_listener);
    QR__NODE_CHECK(uv_tcp_init(node->loop, &node->listener)); /* No socket yet: cannot fail. */
    node->listener.data = node;
    node->has_listener = true;
    node->handles_open++;
    int rv = uv_tcp_bind(&node->listener, (const struct sockaddr *)&node->listen_addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&node->listener, LISTEN_BACKLOG, node_on_connection);
    }
    if (rv != 0) {
        node->has_listener = false;
        uv_close((uv_handle_t *)&node->listener, node_on_listener_closed);
        return qr__errf(errmsg, QR_EIO, "node %llu: listen on %s: %s", ull(node->opts.id),
                        node->listen_address, uv_strerror(rv));
    }
    for (size_t i = 0; i < node->peers_count; i++) {
        peer_start(node->peers[i]);
    }
    return 0;
}

void qr__node_peers_tick(struct qr_node *node)
{
    uint64_t now = uv_now(node->loop);
    struct qr__node_conn *c = node->conns;
    while (c != NULL) { /* conn_close keeps c linked until its close callback. */
        struct qr__node_conn *next = c->next;
        if (c->is_closing || qr__handshake_is_accepted(&c->hs) || now < c->deadline_ms) {
            c = next;
            continue;
        }
        /* A peer that is down is normal and retried quietly; a handshake that stalls is not. */
        if (c->is_connected) {
            QR_LOG_WARNF("node: node=%llu handshake %s peer %llu timed out", ull(node->opts.id),
                         c->is_outbound ? "to" : "from", ull(c->peer_id));
        } else {
            QR_LOG_DEBUGF("node: node=%llu connecting to peer %llu timed out", ull(node->opts.id),
                          ull(c->peer_id));
        }
        conn_close(c);
        c = next;
    }
}

static void peer_on_timer_closed(uv_handle_t *handle)
{
    struct qr__node_peer *p = handle->data;
    struct qr_node *node = p->node;
    qr_free(p);
    qr__node_handle_closed(node);
}

void qr__node_peers_disconnect(struct qr_node *node)
{
    if (node->has_listener) {
        node->has_listener = false;
        uv_close((uv_handle_t *)&node->listener, node_on_listener_closed);
    }
    for (struct qr__node_conn *c = node->conns; c != NULL; c = c->next) {
        conn_close(c);
    }
    for (size_t i = 0; i < node->peers_count; i++) {
        if (node->peers[i]->has_timer) {
            QR__NODE_CHECK(uv_timer_stop(&node->peers[i]->reconnect_timer));
        }
    }
}

void qr__node_peers_close(struct qr_node *node)
{
    QR_ASSERT(node->is_closing);
    qr__node_peers_disconnect(node);
    for (size_t i = 0; i < node->peers_count; i++) {
        struct qr__node_peer *p = node->peers[i];
        if (p->has_timer) {
            uv_close((uv_handle_t *)&p->reconnect_timer, peer_on_timer_closed);
        } else {
            qr_free(p);
        }
        node->peers[i] = NULL;
    }
    node->peers_count = 0;
}

/* ---- Sending -------------------------------------------------------------------------------- */

/* The authenticated connection a message to `id` leaves on, or NULL. */
static struct qr__node_conn *peer_link(const struct qr_node *node, qr_node_id id)
{
    const struct qr__node_peer *p = qr__node_peer_find(node, id);
    if (p == NULL) {
        return NULL;
    }
    if (conn_is_up(p->out)) {
        return p->out;
    }
    return conn_is_up(p->in) ? p->in : NULL;
}

void qr__node_peer_send_msg(struct qr_node *node, const struct qr_msg *msg)
{
    struct qr__node_conn *c = peer_link(node, msg->to);
    if (c == NULL) {
        QR_LOG_TRACEF("node: node=%llu no link to %llu: %s dropped", ull(node->opts.id),
                      ull(msg->to), qr_msg_type_name(msg->type));
        return;
    }
    size_t body = qr__codec_encoded_size(msg);
    if (body == SIZE_MAX || body > c->hs.peer_frame_size_max) {
        QR_LOG_WARNF("node: node=%llu %s to %llu of %zu bytes exceeds the peer's frame limit",
                     ull(node->opts.id), qr_msg_type_name(msg->type), ull(msg->to), body);
        return;
    }
    size_t size = QR_FRAME_HEADER_SIZE + body;
    if (c->queue_size + size > node->opts.peer_queue_size_max) {
        QR_LOG_DEBUGF("node: node=%llu queue to %llu full: %s dropped", ull(node->opts.id),
                      ull(msg->to), qr_msg_type_name(msg->type));
        return;
    }
    struct qr__node_frame *f = frame_new(size);
    if (f == NULL) {
        return; /* Dropping a message is safe: the protocol retries. */
    }
    int rv = qr__codec_encode_frame(msg, c->hs.peer_frame_size_max, f->data, size);
    QR_ASSERT(rv == 0);
    conn_queue(c, f);
}

int qr__node_peer_send_frame(struct qr_node *node,
                             qr_node_id id,
                             enum qr_frame_type type,
                             const uint8_t *body,
                             size_t body_size)
{
    struct qr__node_conn *c = peer_link(node, id);
    if (c == NULL) {
        return QR_ENOTFOUND;
    }
    size_t size = QR_FRAME_HEADER_SIZE + body_size;
    if (body_size > c->hs.peer_frame_size_max) {
        return QR_ETOOBIG;
    }
    if (c->queue_size + size > node->opts.peer_queue_size_max) {
        return QR_EBUSY;
    }
    struct qr__node_frame *f = frame_new(size);
    if (f == NULL) {
        return QR_ENOMEM;
    }
    memcpy(f->data + QR_FRAME_HEADER_SIZE, body, body_size);
    qr__frame_header_encode(type, f->data + QR_FRAME_HEADER_SIZE, body_size, f->data);
    conn_queue(c, f);
    return 0;
}
