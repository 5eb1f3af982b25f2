/*
 * server/server.c: quorumd's connections: accept, read, parse, queue replies in request
 * order, write, and enforce the per-client limits (see server.h). What each command does
 * lives in commands.c.
 *
 * Reading and back-pressure: bytes are parsed as they arrive and each command is
 * dispatched at once, so a pipelining client has many requests in flight. When a client
 * has pending_max replies owed, or half its output limit pending, reading stops and the
 * bytes already read wait in `unparsed` until the queue drains; a client that never reads
 * its replies hits reply_size_max and is closed, like Redis's client-output-buffer-limit.
 *
 * A pending reply outlives its client when the client disconnects while the node still
 * owes the answer: the client detaches it (p->client = NULL) and the node's callback frees
 * it. Nothing else points at a closed client.
 */
#include "server/admin.h"
#include "server/server_internal.h"

#include <string.h>

#include "util/address.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

#define LISTEN_BACKLOG 511
#define TIMER_MS       1000

static void client_close(struct qr__client *c);
static void client_flush(struct qr__client *c);
static void client_queue_flush(struct qr__client *c);
static void server_on_idle(uv_idle_t *idle);

/* ---- Pending replies ------------------------------------------------------------------ */

struct qr__pending *qr__pending_new(struct qr__client *c, enum qr__pending_kind kind)
{
    struct qr__pending *p = qr_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->client = c;
    p->server = c->server;
    p->kind = kind;
    return p;
}

static void pending_free(struct qr__pending *p)
{
    qr_free(p->result.base);
    qr_free(p->args);
    qr_free(p);
}

int qr__pending_copy_args(struct qr__pending *p, const struct qr_buf *args, size_t args_count)
{
    QR_ASSERT(p->args == NULL && args_count > 0);
    size_t bytes = 0;
    for (size_t i = 0; i < args_count; i++) {
        bytes += args[i].len + 1;
    }
    /* One block: the argument array, then each argument's bytes with a NUL after. */
    uint8_t *block = qr_malloc(args_count * sizeof(struct qr_buf) + bytes);
    if (block == NULL) {
        return QR_ENOMEM;
    }
    struct qr_buf *copy = (struct qr_buf *)(void *)block;
    uint8_t *at = block + args_count * sizeof(struct qr_buf);
    for (size_t i = 0; i < args_count; i++) {
        if (args[i].len > 0) {
            memcpy(at, args[i].base, args[i].len);
        }
        at[args[i].len] = '\0';
        copy[i].base = at;
        copy[i].len = args[i].len;
        at += args[i].len + 1;
    }
    p->args = copy;
    p->args_count = args_count;
    return 0;
}

void qr__client_push(struct qr__client *c, struct qr__pending *p)
{
    QR_ASSERT(p->next == NULL && p->client == c);
    if (c->tail != NULL) {
        c->tail->next = p;
    } else {
        c->head = p;
    }
    c->tail = p;
    c->pending_count++;
}

void qr__pending_done(struct qr__pending *p, int status)
{
    QR_ASSERT(!p->is_done);
    p->is_done = true;
    p->status = status;
    if (p->client == NULL) { /* The client left while the node worked on it. */
        pending_free(p);
        return;
    }
    if (p->client->head == p) {
        client_queue_flush(p->client);
    }
}

/* ---- Writing ---------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    struct qr__client *c = req->data;
    qr_free(c->writing.base);
    c->writing.base = NULL;
    c->writing.len = 0;
    if (c->is_closing) {
        return;
    }
    if (status != 0) {
        QR_LOG_DEBUGF("server: client %llu write failed: %s", (unsigned long long)c->id,
                      uv_strerror(status));
        client_close(c);
        return;
    }
    c->active_ms = uv_now(c->server->loop);
    client_flush(c);
}

static void client_resume_reading(struct qr__client *c);

/* Move finished replies from the queue to the output and start a write. */
static void client_flush(struct qr__client *c)
{
    if (c->is_closing) {
        return;
    }
    while (c->head != NULL && c->head->is_done) {
        struct qr__pending *p = c->head;
        int rv = qr__command_reply(c, p);
        c->head = p->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->pending_count--;
        pending_free(p);
        if (rv != 0) {
            if (rv == QR_EBUSY) {
                c->server->output_limit_count++;
                QR_LOG_WARNF("server: client %llu closed: output buffer limit of %zu bytes",
                             (unsigned long long)c->id, c->server->opts.reply_size_max);
            }
            client_close(c);
            return;
        }
    }
    struct qr_buf pending = qr__resp_writer_pending(&c->out);
    if (c->writing.base == NULL && pending.len > 0) {
        /* Most replies fit the socket buffer: one write(2), no request to track. */
        uv_buf_t now = uv_buf_init((char *)pending.base, (unsigned int)pending.len);
        int written = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
        if (written > 0) {
            qr__resp_writer_consume(&c->out, (size_t)written);
            pending = qr__resp_writer_pending(&c->out);
            c->active_ms = uv_now(c->server->loop);
        } else if (written != UV_EAGAIN) {
            client_close(c);
            return;
        }
    }
    if (c->writing.base == NULL && pending.len > 0) {
        qr__resp_writer_take(&c->out, &c->writing);
        uv_buf_t buf = uv_buf_init((char *)c->writing.base, (unsigned int)c->writing.len);
        c->write_req.data = c;
        int rv = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
        if (rv != 0) {
            qr_free(c->writing.base);
            c->writing.base = NULL;
            client_close(c);
            return;
        }
    }
    if (c->is_quitting) {
        if (c->head == NULL && c->writing.base == NULL) {
            client_close(c);
        }
        return;
    }
    client_resume_reading(c);
}

void qr__client_quit(struct qr__client *c)
{
    c->is_quitting = true;
    if (c->is_reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp); /* Cannot fail on an open stream. */
        c->is_reading = false;
    }
}

/* ---- Reading ---------------------------------------------------------------------------- */

static bool client_is_full(const struct qr__client *c)
{
    const struct qr_server_opts *o = &c->server->opts;
    return c->pending_count >= o->pending_max ||
           qr__resp_writer_pending(&c->out).len > o->reply_size_max / 2;
}

/* Keep bytes that could not be parsed yet (reading paused). */
static int client_stash(struct qr__client *c, const uint8_t *data, size_t size)
{
    QR_ASSERT(c->unparsed == NULL);
    if (size == 0) {
        return 0;
    }
    c->unparsed = qr_malloc(size);
    if (c->unparsed == NULL) {
        return QR_ENOMEM;
    }
    memcpy(c->unparsed, data, size);
    c->unparsed_size = size;
    return 0;
}

static void client_protocol_error(struct qr__client *c)
{
    struct qr_server *s = c->server;
    s->protocol_errors_count++;
    QR_LOG_DEBUGF("server: client %llu protocol error at byte %llu: %s", (unsigned long long)c->id,
                  (unsigned long long)c->parser.offset, c->parser.errmsg);
    /* Queued behind what is owed, like any reply; then the connection closes. */
    struct qr__pending *p = qr__pending_new(c, QR__PENDING_ADMIN);
    if (p == NULL) {
        client_close(c);
        return;
    }
    (void)snprintf(p->errtext, sizeof(p->errtext), "%s", c->parser.errmsg);
    p->is_done = true;
    p->status = QR_EPROTO;
    qr__client_push(c, p);
    qr__client_quit(c);
}

/* Parse and dispatch what arrived; stash the rest when the client is full. */
static void client_consume(struct qr__client *c, const uint8_t *data, size_t size)
{
    size_t at = 0;
    while (!c->is_closing && !c->is_quitting) {
        if (client_is_full(c)) {
            if (client_stash(c, data + at, size - at) != 0) {
                client_close(c);
                return;
            }
            if (c->is_reading) {
                (void)uv_read_stop((uv_stream_t *)&c->tcp); /* Cannot fail. */
                c->is_reading = false;
            }
            break;
        }
        size_t consumed = 0;
        struct qr_resp_command cmd;
        int rv = qr__resp_parse(&c->parser, data + at, size - at, &consumed, &cmd);
        at += consumed;
        if (rv != 0) {
            client_protocol_error(c);
            break;
        }
        if (cmd.args_count == 0) {
            break;
        }
        c->server->commands_count++;
        rv = qr__command_dispatch(c, cmd.args, cmd.args_count);
        if (rv != 0) {
            client_close(c);
            return;
        }
    }
    client_flush(c);
}

static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf)
{
    (void)suggested_size;
    struct qr__client *c = handle->data;
    /* One buffer for every client: each read is parsed (or stashed) before the next. */
    *buf = uv_buf_init((char *)c->server->read_buf, QR__SERVER_READ_SIZE);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct qr__client *c = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF) {
            QR_LOG_DEBUGF("server: client %llu read failed: %s", (unsigned long long)c->id,
                          uv_strerror((int)nread));
        }
        client_close(c);
        return;
    }
    if (nread == 0) {
        return;
    }
    c->active_ms = uv_now(c->server->loop);
    client_consume(c, (const uint8_t *)buf->base, (size_t)nread);
}

/*
 * Start reading again once the client drained. Bytes stashed while paused are parsed from
 * the server's idle callback rather than from here: this runs inside client_flush, which
 * client_consume calls.
 */
static void client_resume_reading(struct qr__client *c)
{
    if (c->is_reading || c->is_closing || c->is_quitting || client_is_full(c)) {
        return;
    }
    if (c->unparsed != NULL) {
        if (!c->is_resuming) {
            c->is_resuming = true;
            c->server->resuming_count++;
            (void)uv_idle_start(&c->server->idle, server_on_idle); /* Cannot fail. */
        }
        return;
    }
    c->is_reading = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0;
}

static void flush_unlink(struct qr__client *c)
{
    struct qr_server *s = c->server;
    if (!c->is_flushing) {
        return;
    }
    if (c->flush_prev != NULL) {
        c->flush_prev->flush_next = c->flush_next;
    } else {
        s->flushing = c->flush_next;
    }
    if (c->flush_next != NULL) {
        c->flush_next->flush_prev = c->flush_prev;
    }
    c->flush_prev = NULL;
    c->flush_next = NULL;
    c->is_flushing = false;
}

static void client_queue_flush(struct qr__client *c)
{
    struct qr_server *s = c->server;
    if (c->is_flushing || c->is_closing) {
        return;
    }
    c->is_flushing = true;
    c->flush_prev = NULL;
    c->flush_next = s->flushing;
    if (s->flushing != NULL) {
        s->flushing->flush_prev = c;
    }
    s->flushing = c;
    (void)uv_idle_start(&s->idle, server_on_idle); /* Cannot fail; no-op when active. */
}

/* Write what became ready (once per client per loop turn), then parse what paused clients
   stashed, now that they drained. */
static void server_on_idle(uv_idle_t *idle)
{
    struct qr_server *s = idle->data;
    while (s->flushing != NULL) {
        struct qr__client *c = s->flushing;
        flush_unlink(c);
        client_flush(c); /* May queue c again (only through a new completion) or close it. */
    }
    for (struct qr__client *c = s->clients; c != NULL && s->resuming_count > 0;) {
        struct qr__client *next = c->next; /* client_consume may close c (kept linked). */
        if (c->is_resuming) {
            c->is_resuming = false;
            s->resuming_count--;
            if (!c->is_closing && c->unparsed != NULL) {
                uint8_t *data = c->unparsed;
                size_t size = c->unparsed_size;
                c->unparsed = NULL;
                c->unparsed_size = 0;
                client_consume(c, data, size); /* May stash a tail again, or close. */
                qr_free(data);
            }
        }
        c = next;
    }
    if (s->resuming_count == 0 && s->flushing == NULL) {
        (void)uv_idle_stop(idle); /* Cannot fail. */
    }
}

/* ---- Connections -------------------------------------------------------------------------- */

static void server_maybe_closed(struct qr_server *s);

static void on_client_closed(uv_handle_t *handle)
{
    struct qr__client *c = handle->data;
    struct qr_server *s = c->server;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->clients = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    QR_ASSERT(s->clients_count > 0);
    s->clients_count--;
    qr_free(c->writing.base);
    qr_free(c);
    server_maybe_closed(s);
}

/* Close a client: replies owed are dropped, pending node requests detached. */
static void client_close(struct qr__client *c)
{
    if (c->is_closing) {
        return;
    }
    c->is_closing = true;
    struct qr_server *s = c->server;
    if (c->is_resuming) {
        c->is_resuming = false;
        s->resuming_count--;
    }
    flush_unlink(c);
    while (c->head != NULL) {
        struct qr__pending *p = c->head;
        c->head = p->next;
        p->next = NULL;
        if (p->is_done) {
            pending_free(p);
        } else {
            p->client = NULL; /* The node's callback frees it. */
        }
    }
    c->tail = NULL;
    c->pending_count = 0;
    qr_free(c->unparsed);
    c->unparsed = NULL;
    qr__resp_parser_close(&c->parser);
    qr__resp_writer_close(&c->out);
    uv_close((uv_handle_t *)&c->tcp, on_client_closed); /* The write in flight is cancelled. */
}

/* Refuse a connection beyond clients_max with Redis's message. */
static void client_refuse(struct qr__client *c)
{
    c->server->rejected_count++;
    (void)qr__resp_write_error(&c->out, "max number of clients reached",
                               sizeof("max number of clients reached") - 1);
    qr__client_quit(c);
    client_flush(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct qr_server *s = listener->data;
    if (status != 0 || s->is_closing) {
        QR_LOG_WARNF("server: accept failed: %s", uv_strerror(status));
        return;
    }
    struct qr__client *c = qr_calloc(1, sizeof(*c));
    if (c == NULL || uv_tcp_init(s->loop, &c->tcp) != 0) {
        qr_free(c);
        QR_LOG_WARNF("server: no memory for a new client");
        return;
    }
    c->tcp.data = c;
    c->server = s;
    c->id = ++s->next_client_id;
    c->next = s->clients;
    if (s->clients != NULL) {
        s->clients->prev = c;
    }
    s->clients = c;
    s->clients_count++;
    c->active_ms = uv_now(s->loop);
    c->is_authed = s->password[0] == '\0';
    struct qr_resp_parser_opts popts = {
        .args_count_max = s->opts.args_count_max,
        .bulk_size_max = s->opts.bulk_size_max,
        .command_size_max = s->opts.command_size_max,
    };
    (void)qr__resp_parser_init(&c->parser, &popts); /* Limits checked in create. */
    (void)qr__resp_writer_init(&c->out, s->opts.reply_size_max);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        client_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1); /* Replies are small; never wait for more. */
    if (s->clients_count > s->opts.clients_max) {
        client_refuse(c);
        return;
    }
    client_resume_reading(c);
}

/* ---- The server ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *timer)
{
    struct qr_server *s = timer->data;
    if (s->opts.idle_timeout_s > 0) {
        uint64_t now = uv_now(s->loop);
        uint64_t idle_ms = (uint64_t)s->opts.idle_timeout_s * 1000;
        for (struct qr__client *c = s->clients; c != NULL; c = c->next) {
            if (!c->is_closing && c->head == NULL && c->writing.base == NULL &&
                now - c->active_ms >= idle_ms) {
                QR_LOG_DEBUGF("server: client %llu closed after %u s idle",
                              (unsigned long long)c->id, s->opts.idle_timeout_s);
                client_close(c); /* Stays linked until its close callback. */
            }
        }
    }
    qr__server_announce(s);
}

static void on_check(uv_check_t *check)
{
    struct qr_server *s = check->data;
    if (s->fsm->has_members_changed) {
        qr__server_sync_members(s);
    }
    qr__admin_check(s);
}

static void copy_text(char *dst, const char *src)
{
    (void)snprintf(dst, QR__SERVER_ADDRESS_SIZE, "%s", src != NULL ? src : "");
}

static void opts_resolve(struct qr_server_opts *o)
{
    o->clients_max = o->clients_max != 0 ? o->clients_max : QR_SERVER_CLIENTS_MAX_DEFAULT;
    o->args_count_max =
        o->args_count_max != 0 ? o->args_count_max : QR_SERVER_ARGS_COUNT_MAX_DEFAULT;
    o->bulk_size_max = o->bulk_size_max != 0 ? o->bulk_size_max : QR_SERVER_BULK_SIZE_MAX_DEFAULT;
    o->command_size_max =
        o->command_size_max != 0 ? o->command_size_max : QR_SERVER_COMMAND_SIZE_MAX_DEFAULT;
    o->reply_size_max =
        o->reply_size_max != 0 ? o->reply_size_max : QR_SERVER_REPLY_SIZE_MAX_DEFAULT;
    o->pending_max = o->pending_max != 0 ? o->pending_max : QR_SERVER_PENDING_MAX_DEFAULT;
}

int qr__server_create(struct uv_loop_s *loop,
                      struct qr_node *node,
                      struct qr_kvfsm *fsm,
                      const struct qr_server_opts *opts,
                      struct qr_server **server_out,
                      char *errmsg)
{
    QR_ASSERT(loop != NULL && node != NULL && fsm != NULL && opts != NULL);
    struct qr_server_opts o = *opts;
    opts_resolve(&o);
    struct qr_resp_parser probe;
    struct qr_resp_parser_opts popts = {.args_count_max = o.args_count_max,
                                        .bulk_size_max = o.bulk_size_max,
                                        .command_size_max = o.command_size_max};
    if (qr__resp_parser_init(&probe, &popts) != 0) {
        return qr__errf(errmsg, QR_EINVAL, "server: request limits above their ceilings");
    }
    qr__resp_parser_close(&probe);
    struct sockaddr_storage addr;
    int rv = qr__address_resolve(o.listen_address, &addr, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct qr_server *s = qr_calloc(1, sizeof(*s));
    if (s == NULL) {
        return QR_ENOMEM;
    }
    s->loop = loop;
    s->node = node;
    s->fsm = fsm;
    copy_text(s->listen_address, o.listen_address);
    copy_text(s->client_address, o.client_address != NULL ? o.client_address : o.listen_address);
    copy_text(s->peer_address, o.peer_address);
    copy_text(s->password, o.password);
    o.listen_address = s->listen_address;
    o.client_address = s->client_address;
    o.peer_address = s->peer_address;
    o.password = s->password;
    s->opts = o;
    s->listen_addr = addr;
    *server_out = s;
    return 0;
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct qr_server *s = handle->data;
    QR_ASSERT(s->handles_open > 0);
    s->handles_open--;
    server_maybe_closed(s);
}

int qr__server_start(struct qr_server *s, char *errmsg)
{
    QR_ASSERT(!s->is_listening && !s->is_closing);
    (void)uv_tcp_init(s->loop, &s->listener); /* No socket yet: cannot fail. */
    (void)uv_timer_init(s->loop, &s->timer);
    (void)uv_check_init(s->loop, &s->check);
    (void)uv_idle_init(s->loop, &s->idle);
    s->listener.data = s;
    s->timer.data = s;
    s->check.data = s;
    s->idle.data = s;
    s->handles_open = 4;
    s->is_listening = true;
    int rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&s->listen_addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    }
    if (rv != 0) {
        return qr__errf(errmsg, QR_EIO, "listen on %s: %s", s->listen_address, uv_strerror(rv));
    }
    (void)uv_timer_start(&s->timer, on_timer, TIMER_MS, TIMER_MS); /* Cannot fail. */
    (void)uv_check_start(&s->check, on_check);
    return 0;
}

static void server_maybe_closed(struct qr_server *s)
{
    if (!s->is_closing || s->clients_count > 0 || s->handles_open > 0) {
        return;
    }
    qr_server_close_cb cb = s->close_cb;
    void *ctx = s->close_ctx;
    qr_free(s);
    if (cb != NULL) {
        cb(ctx);
    }
}

void qr__server_close(struct qr_server *s, qr_server_close_cb cb, void *ctx)
{
    if (s == NULL) {
        return;
    }
    QR_ASSERT(!s->is_closing);
    s->is_closing = true;
    s->close_cb = cb;
    s->close_ctx = ctx;
    for (struct qr__client *c = s->clients; c != NULL; c = c->next) {
        client_close(c); /* Stays linked until its close callback. */
    }
    qr__admin_close(s);
    if (s->is_listening) {
        uv_close((uv_handle_t *)&s->listener, on_handle_closed);
        uv_close((uv_handle_t *)&s->timer, on_handle_closed);
        uv_close((uv_handle_t *)&s->check, on_handle_closed);
        uv_close((uv_handle_t *)&s->idle, on_handle_closed);
    }
    server_maybe_closed(s);
}

size_t qr__server_clients_count(const struct qr_server *s)
{
    return s->clients_count;
}
