/*
 * quorumctl resp_client: a small blocking RESP2 client.
 *
 * Tool code above libquorum. It connects to one server, sends one command as
 * a multibulk array and reads one reply of any type. Every connect, read and
 * write waits at most until the connection's deadline, and every size in a
 * reply is bounded, so a dead, slow or garbage-speaking server yields an error
 * message such as "127.0.0.1:6101: connection refused", never a hang or a
 * crash. It never prints.
 */
#ifndef QR_CTL_RESP_CLIENT_H
#define QR_CTL_RESP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorum/err.h"

#define CTL_ADDR_SIZE          128                        /* "host:port" text, NUL included. */
#define CTL_REPLY_DEPTH_MAX    8                          /* Nesting of arrays in one reply. */
#define CTL_REPLY_BULK_SIZE    ((size_t)64 * 1024 * 1024) /* One bulk string, bytes. */
#define CTL_REPLY_LINE_SIZE    8192                       /* One header or simple-string line. */
#define CTL_REPLY_ITEMS_MAX    (1u << 20)                 /* Replies in one tree, all levels. */
#define CTL_COMMAND_ARGS_MAX   1024                       /* Words in one command. */
#define CTL_CONN_BUF_SIZE      16384                      /* Receive buffer, bytes. */
#define CTL_TIMEOUT_MS_DEFAULT 5000

_Static_assert(CTL_REPLY_LINE_SIZE < CTL_CONN_BUF_SIZE, "a whole line fits in the buffer");

enum ctl_reply_type {
    CTL_REPLY_STATUS,  /* +OK: str. */
    CTL_REPLY_ERROR,   /* -ERR ...: str (without the '-'). */
    CTL_REPLY_INTEGER, /* :N: integer. */
    CTL_REPLY_BULK,    /* $N: str and len (binary-safe, NUL-terminated too). */
    CTL_REPLY_NIL,     /* $-1 or *-1. */
    CTL_REPLY_ARRAY,   /* *N: elements. */
};

/* One reply; an array owns its elements. Free the root with ctl_reply_free. */
struct ctl_reply {
    enum ctl_reply_type type;
    int64_t integer;             /* CTL_REPLY_INTEGER only. */
    char *str;                   /* STATUS, ERROR, BULK: owned, NUL-terminated. */
    size_t len;                  /* Size of str in bytes, NUL excluded. */
    struct ctl_reply **elements; /* ARRAY: owned array of elements_count pointers. */
    size_t elements_count;
    struct ctl_reply *chain_next; /* Every reply of one tree, root first, for freeing. */
};

/* One connection. Initialise with ctl_conn_open, release with ctl_conn_close. */
struct ctl_conn {
    int fd;                         /* -1 when closed. */
    char addr[CTL_ADDR_SIZE];       /* As given, for messages. */
    int timeout_ms;                 /* Per operation: connect, or one command's round trip. */
    uint8_t buf[CTL_CONN_BUF_SIZE]; /* Received but unparsed bytes in [buf_start, buf_end). */
    size_t buf_start;
    size_t buf_end;
    char errmsg[QR_ERRMSG_SIZE]; /* The last failure, prefixed with addr. */
};

/*
 * Splits "host:port" (or "[v6]:port") into host and port.
 * @param addr   Borrows.
 * @param host   Out, CTL_ADDR_SIZE bytes.
 * @param port   Out.
 * @return 0, or QR_EINVAL with a message in errmsg (QR_ERRMSG_SIZE).
 */
int ctl_addr_split(const char *addr, char *host, uint16_t *port, char *errmsg);

/*
 * Connects to addr within timeout_ms. On failure conn->errmsg says why
 * ("127.0.0.1:6101: connection refused") and the connection is closed.
 * @param conn  Caller's memory; borrowed until ctl_conn_close.
 * @param addr  Borrows ("host:port").
 * @return 0, QR_EINVAL (bad address), QR_ETIMEDOUT, QR_EIO.
 */
int ctl_conn_open(struct ctl_conn *conn, const char *addr, int timeout_ms);

/* Closes the socket. Safe to call twice and after a failed open. */
void ctl_conn_close(struct ctl_conn *conn);

/*
 * Sends argv[0..argc) as one command and reads one reply, all within the
 * connection's timeout. A server error (-ERR ...) is a reply, not a failure.
 * @param argv       Borrows NUL-terminated words.
 * @param reply_out  Returns owned memory, freed with ctl_reply_free.
 * @return 0, QR_ETIMEDOUT, QR_EIO (socket error, closed by the server),
 *         QR_EPROTO (not RESP2), QR_ETOOBIG (past a size limit), QR_ENOMEM.
 *         After a failure the connection is closed.
 */
int ctl_conn_command(struct ctl_conn *conn,
                     int argc,
                     const char *const *argv,
                     struct ctl_reply **reply_out);

/* Frees a reply tree; accepts NULL. */
void ctl_reply_free(struct ctl_reply *reply);

#endif /* QR_CTL_RESP_CLIENT_H */
