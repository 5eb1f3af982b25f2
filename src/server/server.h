/*
 * server/server.h: quorumd's client side: Redis clients over TCP, one replicated store.
 *
 * Layer: server (above node, kv and util). The server accepts RESP2 clients on its
 * address, parses their requests (resp.h), and answers them from a struct qr_kvfsm that
 * the node keeps replicated:
 *
 *   - writes become one log entry each (MSET included) proposed with qr_node_propose; a
 *     follower's node forwards them to the leader, and the reply waits until this node
 *     applied the entry, so a client reads its own writes on any node;
 *   - reads are linearizable by default (qr_node_read, ReadIndex), or served from the
 *     local store after "QUORUM.READS stale" on that connection;
 *   - replies go out in request order even though requests complete out of order
 *     (pipelining): each connection keeps a queue of pending replies;
 *   - every client-facing failure is a Redis-style error: -TRYAGAIN (no leader, leader
 *     changed, busy: safe to retry), -TIMEOUT (no answer in time: the write may or may
 *     not have been applied), -NOTLEADER <id> <address> (operator commands on a follower).
 *
 * Limits hold under abuse: clients_max, the parser's argument count and size limits,
 * an output buffer limit per client (a client that does not read is closed), requests in
 * flight per client (reading pauses), an idle timeout.
 *
 * Members' addresses travel through the log (QR_KV_MEMBER commands): each node announces
 * its own peer and client address once a leader is known, QUORUM.ADD records the new
 * member's, and every node hands the table to its node with qr_node_add_peer.
 *
 * Threading: the loop's thread only.
 */
#ifndef QR_SERVER_SERVER_H
#define QR_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "quorum/node.h"
#include "server/kvfsm.h"

/** What HELLO, INFO and --version report. */
#define QR_SERVER_VERSION "0.1.0"

/** Defaults of struct qr_server_opts. */
#define QR_SERVER_CLIENTS_MAX_DEFAULT      10000
#define QR_SERVER_ARGS_COUNT_MAX_DEFAULT   ((size_t)1024 * 1024)
#define QR_SERVER_BULK_SIZE_MAX_DEFAULT    ((size_t)8 * 1024 * 1024)
#define QR_SERVER_COMMAND_SIZE_MAX_DEFAULT ((size_t)64 * 1024 * 1024)
#define QR_SERVER_REPLY_SIZE_MAX_DEFAULT   ((size_t)64 * 1024 * 1024)
#define QR_SERVER_PENDING_MAX_DEFAULT      1024
/** Most keys a KEYS reply may hold; beyond, the client is told to use SCAN. */
#define QR_SERVER_KEYS_REPLY_MAX ((size_t)1024 * 1024)

struct uv_loop_s;

struct qr_server_opts {
    const char *listen_address;       /* "host:port" for clients. */
    const char *client_address;       /* Announced to other members; NULL: listen_address. */
    const char *peer_address;         /* This node's peer address, announced with it. */
    const char *password;             /* NULL or "": no AUTH needed. */
    const struct qr_node_peer *peers; /* The members given at start (--cluster): their peer
                                         addresses stand in until the member table (the log)
                                         has them. Borrowed until the close callback. */
    size_t peers_count;
    uint32_t clients_max;        /* Connections at once. */
    size_t args_count_max;       /* Arguments of one command. */
    size_t bulk_size_max;        /* Largest argument. */
    size_t command_size_max;     /* Argument bytes of one command. */
    size_t reply_size_max;       /* Reply bytes pending per client (output buffer limit). */
    uint32_t pending_max;        /* Requests in flight per client before its reads pause. */
    uint32_t idle_timeout_s;     /* Close clients idle this long; 0: never. */
    uint32_t request_timeout_ms; /* The node's request timeout, quoted in -TIMEOUT errors. */
};

struct qr_server;

/**
 * Create a server for a node and its store (both kept until the close callback).
 * @param opts        Borrows; strings are copied.
 * @param server_out  Out.
 * @param errmsg      Out, may be NULL.
 * @return 0, QR_EINVAL (bad address: errmsg says which), QR_ENOMEM.
 */
int qr__server_create(struct uv_loop_s *loop,
                      struct qr_node *node,
                      struct qr_kvfsm *fsm,
                      const struct qr_server_opts *opts,
                      struct qr_server **server_out,
                      char *errmsg);

/**
 * Listen for clients.
 * @return 0, QR_EIO (address in use, ...: errmsg names the address and the reason).
 */
int qr__server_start(struct qr_server *server, char *errmsg);

/** Called once the server has closed and been freed. */
typedef void (*qr_server_close_cb)(void *ctx);

/**
 * Stop listening, close every client (replies in flight are dropped) and free the server.
 * The node is not closed. Accepts NULL (cb not called).
 */
void qr__server_close(struct qr_server *server, qr_server_close_cb cb, void *ctx);

/** Clients connected now. */
size_t qr__server_clients_count(const struct qr_server *server);

#endif /* QR_SERVER_SERVER_H */
