/*
 * quorumctl resp_client: blocking RESP2 client with deadlines and size limits.
 *
 * Tool code above libquorum. Each operation computes a deadline once and every
 * poll() waits only for the time that remains, so no server can hold the tool
 * longer than the timeout. The reply parser is iterative with a depth cap (no
 * recursion) and treats every byte from the server as hostile. It never prints.
 */
#include "resp_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* Cannot fail for CLOCK_MONOTONIC. */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - now_ms();
    if (left < 0) {
        return 0;
    }
    return left > 1000000 ? 1000000 : (int)left;
}

/* "Connection refused" -> "connection refused", as our messages are lowercase. */
static int conn_fail_os(struct ctl_conn *conn, int errno_value, const char *what)
{
    char text[QR_ERRMSG_SIZE];
    (void)snprintf(text, sizeof(text), "%s", strerror(errno_value));
    if (text[0] >= 'A' && text[0] <= 'Z') {
        text[0] = (char)(text[0] - 'A' + 'a');
    }
    int err = errno_value == ETIMEDOUT ? QR_ETIMEDOUT : QR_EIO;
    if (what[0] != '\0') {
        (void)qr__errf(conn->errmsg, err, "%s: %s: %s", conn->addr, what, text);
    } else {
        (void)qr__errf(conn->errmsg, err, "%s: %s", conn->addr, text);
    }
    ctl_conn_close(conn);
    return err;
}

static int conn_fail(struct ctl_conn *conn, int err, const char *text)
{
    (void)qr__errf(conn->errmsg, err, "%s: %s", conn->addr, text);
    ctl_conn_close(conn);
    return err;
}

int ctl_addr_split(const char *addr, char *host, uint16_t *port, char *errmsg)
{
    QR_ASSERT(addr != NULL && host != NULL && port != NULL);
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr) {
        return qr__errf(errmsg, QR_EINVAL, "'%.60s' is not HOST:PORT", addr);
    }
    const char *host_start = addr;
    size_t host_len = (size_t)(colon - addr);
    if (addr[0] == '[' && colon[-1] == ']' && host_len > 2) {
        host_start++;
        host_len -= 2;
    }
    if (host_len >= CTL_ADDR_SIZE) {
        return qr__errf(errmsg, QR_EINVAL, "'%.60s': host name too long", addr);
    }
    uint64_t n = 0;
    char inner[QR_ERRMSG_SIZE];
    if (qr__parse_u64(colon + 1, 1, 65535, &n, inner) != 0) {
        return qr__errf(errmsg, QR_EINVAL, "'%.60s': bad port: %s", addr, inner);
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    *port = (uint16_t)n;
    return 0;
}

/* Waits for one event on the socket; 0, or the failure already recorded. */
static int conn_wait(struct ctl_conn *conn, short events, int64_t deadline_ms, const char *what)
{
    for (;;) {
        struct pollfd p = {.fd = conn->fd, .events = events, .revents = 0};
        int n = poll(&p, 1, remaining_ms(deadline_ms));
        if (n > 0) {
            return 0;
        }
        if (n == 0) {
            char text[96];
            (void)snprintf(text, sizeof(text), "timed out %s after %d ms", what, conn->timeout_ms);
            return conn_fail(conn, QR_ETIMEDOUT, text);
        }
        if (errno != EINTR) {
            return conn_fail_os(conn, errno, what);
        }
    }
}

static int conn_open_one(struct ctl_conn *conn, const struct addrinfo *ai, int64_t deadline_ms)
{
    conn->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (conn->fd < 0) {
        return conn_fail_os(conn, errno, "socket");
    }
    int flags = fcntl(conn->fd, F_GETFL);
    if (flags < 0 || fcntl(conn->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        return conn_fail_os(conn, errno, "fcntl");
    }
    if (connect(conn->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            return conn_fail_os(conn, errno, "");
        }
        int rv = conn_wait(conn, POLLOUT, deadline_ms, "connecting");
        if (rv != 0) {
            return rv;
        }
        int so_error = 0;
        socklen_t len = sizeof(so_error);
        if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
            return conn_fail_os(conn, errno, "getsockopt");
        }
        if (so_error != 0) {
            return conn_fail_os(conn, so_error, "");
        }
    }
    return 0;
}

int ctl_conn_open(struct ctl_conn *conn, const char *addr, int timeout_ms)
{
    QR_ASSERT(conn != NULL && addr != NULL);
    QR_ASSERT(timeout_ms > 0);
    conn->fd = -1;
    conn->buf_start = 0;
    conn->buf_end = 0;
    conn->timeout_ms = timeout_ms;
    conn->errmsg[0] = '\0';
    (void)snprintf(conn->addr, sizeof(conn->addr), "%s", addr); /* Truncation only shortens. */
    char host[CTL_ADDR_SIZE];
    uint16_t port = 0;
    int rv = ctl_addr_split(addr, host, &port, conn->errmsg);
    if (rv != 0) {
        return rv;
    }
    char port_text[8];
    (void)snprintf(port_text, sizeof(port_text), "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, port_text, &hints, &list);
    if (gai != 0) {
        return qr__errf(conn->errmsg, QR_EIO, "%s: cannot resolve host: %s", addr,
                        gai_strerror(gai));
    }
    int64_t deadline_ms = now_ms() + timeout_ms;
    rv = QR_EIO;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        rv = conn_open_one(conn, ai, deadline_ms);
        if (rv == 0 || rv == QR_ETIMEDOUT) {
            break;
        }
    }
    freeaddrinfo(list);
    QR_ASSERT((rv == 0) == (conn->fd >= 0));
    return rv;
}

void ctl_conn_close(struct ctl_conn *conn)
{
    if (conn->fd >= 0) {
        (void)close(conn->fd); /* Nothing useful to do about a failed close of a socket. */
        conn->fd = -1;
    }
    conn->buf_start = 0;
    conn->buf_end = 0;
}

static int conn_send_all(struct ctl_conn *conn, const uint8_t *data, size_t size, int64_t deadline)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = send(conn->fd, data + done, size - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rv = conn_wait(conn, POLLOUT, deadline, "sending");
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        return conn_fail_os(conn, errno, "send");
    }
    return 0;
}

/* Encodes the command as a RESP2 multibulk array into owned memory. */
static int command_encode(int argc, const char *const *argv, uint8_t **out, size_t *size_out)
{
    size_t size = 32;
    for (int i = 0; i < argc; i++) {
        size += strlen(argv[i]) + 32;
    }
    uint8_t *buf = qr_malloc(size);
    if (buf == NULL) {
        return QR_ENOMEM;
    }
    size_t used = (size_t)snprintf((char *)buf, size, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);
        used += (size_t)snprintf((char *)buf + used, size - used, "$%zu\r\n", len);
        memcpy(buf + used, argv[i], len);
        used += len;
        buf[used++] = '\r';
        buf[used++] = '\n';
        QR_ASSERT(used < size);
    }
    *out = buf;
    *size_out = used;
    return 0;
}

/* Reads more bytes into the buffer, compacting it first. */
static int conn_fill(struct ctl_conn *conn, int64_t deadline)
{
    if (conn->buf_start > 0) {
        memmove(conn->buf, conn->buf + conn->buf_start, conn->buf_end - conn->buf_start);
        conn->buf_end -= conn->buf_start;
        conn->buf_start = 0;
    }
    QR_ASSERT(conn->buf_end < sizeof(conn->buf));
    for (;;) {
        ssize_t n = recv(conn->fd, conn->buf + conn->buf_end, sizeof(conn->buf) - conn->buf_end, 0);
        if (n > 0) {
            conn->buf_end += (size_t)n;
            return 0;
        }
        if (n == 0) {
            return conn_fail(conn, QR_EIO, "connection closed by the server");
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return conn_fail_os(conn, errno, "recv");
        }
        int rv = conn_wait(conn, POLLIN, deadline, "waiting for a reply");
        if (rv != 0) {
            return rv;
        }
    }
}

/* Finds one CRLF-terminated line; *line_out views the buffer until the next read. */
static int conn_read_line(struct ctl_conn *conn, int64_t deadline, char **line_out, size_t *len)
{
    for (;;) {
        uint8_t *start = conn->buf + conn->buf_start;
        size_t avail = conn->buf_end - conn->buf_start;
        uint8_t *lf = memchr(start, '\n', avail);
        if (lf != NULL) {
            if (lf == start || lf[-1] != '\r') {
                return conn_fail(conn, QR_EPROTO, "protocol error: line not ended by CRLF");
            }
            lf[-1] = '\0';
            *line_out = (char *)start;
            *len = (size_t)(lf - 1 - start);
            conn->buf_start = (size_t)(lf + 1 - conn->buf);
            return 0;
        }
        if (avail >= CTL_REPLY_LINE_SIZE) {
            return conn_fail(conn, QR_ETOOBIG, "protocol error: reply line too long");
        }
        int rv = conn_fill(conn, deadline);
        if (rv != 0) {
            return rv;
        }
    }
}

/* Reads a bulk body of len bytes plus CRLF into owned memory. */
static int conn_read_bulk(struct ctl_conn *conn, int64_t deadline, size_t len, char **out)
{
    char *data = qr_malloc(len + 1);
    if (data == NULL) {
        return conn_fail(conn, QR_ENOMEM, "out of memory for a bulk reply");
    }
    size_t got = 0;
    while (got < len + 2) {
        if (conn->buf_start == conn->buf_end) {
            int rv = conn_fill(conn, deadline);
            if (rv != 0) {
                qr_free(data);
                return rv;
            }
        }
        size_t avail = conn->buf_end - conn->buf_start;
        size_t take = len + 2 - got < avail ? len + 2 - got : avail;
        for (size_t k = 0; k < take; k++) {
            uint8_t b = conn->buf[conn->buf_start + k];
            size_t pos = got + k;
            if (pos < len) {
                data[pos] = (char)b;
            } else if (b != (pos == len ? '\r' : '\n')) {
                qr_free(data);
                return conn_fail(conn, QR_EPROTO, "protocol error: bulk string not ended by CRLF");
            }
        }
        got += take;
        conn->buf_start += take;
    }
    data[len] = '\0';
    *out = data;
    return 0;
}

/* Parses the signed count after a type byte: -1 or 0..max. */
static bool header_count(const char *text, size_t len, uint64_t max, int64_t *out)
{
    if (len == 2 && text[0] == '-' && text[1] == '1') {
        *out = -1;
        return true;
    }
    uint64_t n = 0;
    if (qr__parse_u64(text, 0, max, &n, NULL) != 0) {
        return false;
    }
    *out = (int64_t)n;
    return true;
}

struct parse_state {
    struct ctl_reply *root;
    struct ctl_reply *tail;
    size_t items_count;
    struct ctl_reply *stack[CTL_REPLY_DEPTH_MAX]; /* Arrays being filled, outermost first. */
    size_t depth;
};

static struct ctl_reply *parse_new(struct parse_state *ps)
{
    struct ctl_reply *r = qr_calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    if (ps->root == NULL) {
        ps->root = r;
    } else {
        ps->tail->chain_next = r;
    }
    ps->tail = r;
    ps->items_count++;
    return r;
}

/* Fills one reply from its header line (and body for bulk strings). */
static int parse_one(struct ctl_conn *conn, int64_t deadline, struct ctl_reply *r)
{
    char *line = NULL;
    size_t len = 0;
    int rv = conn_read_line(conn, deadline, &line, &len);
    if (rv != 0) {
        return rv;
    }
    if (len == 0) {
        return conn_fail(conn, QR_EPROTO, "protocol error: empty reply line");
    }
    char type = line[0];
    int64_t count = 0;
    if (type == '+' || type == '-') {
        r->type = type == '+' ? CTL_REPLY_STATUS : CTL_REPLY_ERROR;
        r->str = qr_strdup(line + 1);
        r->len = len - 1;
        return r->str != NULL ? 0 : conn_fail(conn, QR_ENOMEM, "out of memory");
    }
    if (type == ':') {
        r->type = CTL_REPLY_INTEGER;
        if (!qr__parse_i64_canonical((const uint8_t *)line + 1, len - 1, &r->integer)) {
            return conn_fail(conn, QR_EPROTO, "protocol error: bad integer reply");
        }
        return 0;
    }
    if (type == '$' && header_count(line + 1, len - 1, CTL_REPLY_BULK_SIZE, &count)) {
        if (count < 0) {
            r->type = CTL_REPLY_NIL;
            return 0;
        }
        r->type = CTL_REPLY_BULK;
        r->len = (size_t)count;
        return conn_read_bulk(conn, deadline, r->len, &r->str);
    }
    if (type == '*' && header_count(line + 1, len - 1, CTL_REPLY_ITEMS_MAX, &count)) {
        r->type = count < 0 ? CTL_REPLY_NIL : CTL_REPLY_ARRAY;
        r->elements_count = count < 0 ? 0 : (size_t)count;
        return 0;
    }
    char text[96];
    if (type == '$' || type == '*') {
        (void)snprintf(text, sizeof(text), "protocol error: bad or too large length '%.40s'", line);
    } else {
        (void)snprintf(text, sizeof(text), "protocol error: unexpected reply '%.40s'", line);
    }
    for (char *c = text; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
            *c = '?';
        }
    }
    return conn_fail(conn, QR_EPROTO, text);
}

/* Attaches a finished reply to the innermost open array and pops the full ones. */
static int parse_attach(struct ctl_conn *conn, struct parse_state *ps, struct ctl_reply *r)
{
    if (ps->depth > 0) {
        struct ctl_reply *parent = ps->stack[ps->depth - 1];
        QR_ASSERT(parent->type == CTL_REPLY_ARRAY);
        parent->elements[parent->len++] = r; /* len counts filled elements while parsing. */
    }
    if (r->type == CTL_REPLY_ARRAY && r->elements_count > 0) {
        if (ps->depth == CTL_REPLY_DEPTH_MAX) {
            return conn_fail(conn, QR_ETOOBIG, "protocol error: reply nested too deeply");
        }
        if (ps->items_count + r->elements_count > CTL_REPLY_ITEMS_MAX) {
            return conn_fail(conn, QR_ETOOBIG, "protocol error: reply has too many elements");
        }
        r->elements = qr_calloc(r->elements_count, sizeof(struct ctl_reply *));
        if (r->elements == NULL) {
            return conn_fail(conn, QR_ENOMEM, "out of memory");
        }
        ps->stack[ps->depth++] = r;
    }
    while (ps->depth > 0 &&
           ps->stack[ps->depth - 1]->len == ps->stack[ps->depth - 1]->elements_count) {
        ps->stack[ps->depth - 1]->len = 0;
        ps->depth--;
    }
    return 0;
}

static int conn_read_reply(struct ctl_conn *conn, int64_t deadline, struct ctl_reply **reply_out)
{
    struct parse_state ps;
    memset(&ps, 0, sizeof(ps));
    int rv = 0;
    do {
        if (ps.items_count >= CTL_REPLY_ITEMS_MAX) {
            rv = conn_fail(conn, QR_ETOOBIG, "protocol error: reply has too many elements");
            break;
        }
        struct ctl_reply *r = parse_new(&ps);
        if (r == NULL) {
            rv = conn_fail(conn, QR_ENOMEM, "out of memory");
            break;
        }
        rv = parse_one(conn, deadline, r);
        if (rv == 0) {
            rv = parse_attach(conn, &ps, r);
        }
    } while (rv == 0 && ps.depth > 0);
    if (rv != 0) {
        ctl_reply_free(ps.root);
        return rv;
    }
    *reply_out = ps.root;
    return 0;
}

int ctl_conn_command(struct ctl_conn *conn,
                     int argc,
                     const char *const *argv,
                     struct ctl_reply **reply_out)
{
    QR_ASSERT(argc > 0 && argc <= CTL_COMMAND_ARGS_MAX);
    QR_ASSERT(reply_out != NULL);
    *reply_out = NULL;
    if (conn->fd < 0) {
        return qr__errf(conn->errmsg, QR_EIO, "%s: not connected", conn->addr);
    }
    int64_t deadline = now_ms() + conn->timeout_ms;
    uint8_t *data = NULL;
    size_t size = 0;
    int rv = command_encode(argc, argv, &data, &size);
    if (rv != 0) {
        return conn_fail(conn, rv, "out of memory");
    }
    rv = conn_send_all(conn, data, size, deadline);
    qr_free(data);
    if (rv != 0) {
        return rv;
    }
    rv = conn_read_reply(conn, deadline, reply_out);
    QR_ASSERT((rv == 0) == (*reply_out != NULL));
    return rv;
}

void ctl_reply_free(struct ctl_reply *reply)
{
    while (reply != NULL) {
        struct ctl_reply *next = reply->chain_next;
        qr_free(reply->str);
        qr_free(reply->elements);
        qr_free(reply);
        reply = next;
    }
}
