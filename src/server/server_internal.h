/*
 * server/server_internal.h: what server.c (connections) and commands.c (the command
 * table) share. Not installed; nothing outside src/server includes it.
 */
#ifndef QR_SERVER_SERVER_INTERNAL_H
#define QR_SERVER_SERVER_INTERNAL_H

#include <uv.h>

#include "server/resp.h"
#include "server/server.h"

/** What HELLO and INFO report. */
#define QR__SERVER_VERSION QR_SERVER_VERSION
/** Bytes read from a socket at once. */
#define QR__SERVER_READ_SIZE (64 * 1024)
/** Longest address text kept, NUL included. */
#define QR__SERVER_ADDRESS_SIZE QR_NODE_ADDRESS_SIZE

struct qr__client;

/** What a pending reply waits for. */
enum qr__pending_kind {
    QR__PENDING_EXEC = 1,  /* Run `args` when its turn comes (a read, or any command queued
                              behind pending ones); done may wait for a ReadIndex. */
    QR__PENDING_WRITE = 2, /* A proposal: reply from the result of the apply. */
    QR__PENDING_ADMIN = 3, /* An operator command: reply +OK or the error in `errtext`. */
    QR__PENDING_BYTES = 4, /* A reply computed at once, queued behind others: `result`. */
};

/** How a write's result turns into a reply (Redis gives one op several reply shapes). */
enum qr__reply_shape {
    QR__REPLY_OK = 1,      /* SET, MSET: +OK, nil when a condition failed. */
    QR__REPLY_VALUE = 2,   /* SET ... GET, GETSET: the old value or nil. */
    QR__REPLY_INTEGER = 3, /* DEL, INCR..., APPEND, CAS, CAD: :n. */
    QR__REPLY_BOOL = 4,    /* SETNX: :1 when set, :0 when not. */
};

/** One reply owed to a client, in request order. */
struct qr__pending {
    struct qr__pending *next;
    struct qr__client *client; /* NULL once the client closed: the callback frees it. */
    struct qr_server *server;
    enum qr__pending_kind kind;
    enum qr__reply_shape shape;
    bool is_done;         /* The reply can be written. */
    int status;           /* 0, or the node's error. */
    struct qr_buf result; /* WRITE: owned copy of the encoded result. */
    struct qr_buf *args;  /* EXEC: owned copy of the command (one block with args). */
    int (*exec)(struct qr__client *c, const struct qr_buf *args, size_t args_count); /* EXEC. */
    size_t args_count;
    char errtext[QR_RESP_ERROR_SIZE_MAX]; /* The error to answer, "" when none: set by
                                             ADMIN, and when the node refused at once. */
    uint64_t target;                      /* ADMIN: the member concerned. */
    uint64_t deadline_ms;                 /* ADMIN: loop time to give up waiting. */
    struct qr__pending *waiting_next;     /* ADMIN: in server->waiting (transfers). */
};

/** One connection. */
struct qr__client {
    uv_tcp_t tcp;
    struct qr_server *server;
    struct qr__client *prev, *next; /* In server->clients. */
    uint64_t id;
    struct qr_resp_parser parser;
    struct qr_resp_writer out; /* Replies ready to send, in order. */
    struct qr__pending *head;  /* Pending replies, oldest first. */
    struct qr__pending *tail;
    uint32_t pending_count;
    uint8_t *unparsed; /* Bytes read while paused, not yet parsed (owned). */
    size_t unparsed_size;
    uint64_t active_ms; /* Loop time of the last request or reply. */
    uv_write_t write_req;
    struct qr_buf writing; /* Bytes of the write in flight (owned); base NULL: none. */
    bool is_reading;
    bool is_authed;
    bool is_stale_reads; /* QUORUM.READS stale. */
    bool is_closing;
    bool is_quitting;                  /* QUIT: close once the replies are out. */
    struct qr__pending *admin_pending; /* The ADMIN request being dispatched (admin.c). */
    bool is_resuming; /* Drained with stashed bytes: the idle callback parses them. */
    struct qr__client *flush_prev, *flush_next; /* In server->flushing when is_flushing. */
    bool is_flushing; /* Replies became ready: the idle callback writes them. */
};

struct qr_server {
    uv_loop_t *loop;
    struct qr_node *node;
    struct qr_kvfsm *fsm;
    struct qr_server_opts opts;
    char listen_address[QR__SERVER_ADDRESS_SIZE];
    char client_address[QR__SERVER_ADDRESS_SIZE];
    char peer_address[QR__SERVER_ADDRESS_SIZE];
    char password[QR__SERVER_ADDRESS_SIZE];
    uv_tcp_t listener;
    uv_timer_t timer; /* Once a second: idle clients, address announcements. */
    uv_check_t check; /* After each loop turn: hand member changes to the node. */
    uv_idle_t idle;   /* Runs while clients have stashed bytes to parse (resuming_count). */
    size_t resuming_count;
    struct qr__client *flushing; /* Clients with replies to write at the next idle turn:
                                    one write per client per loop turn, however many of its
                                    pipelined requests completed in it. */
    struct sockaddr_storage listen_addr;
    uint8_t read_buf[QR__SERVER_READ_SIZE]; /* Shared by every read (one loop thread). */
    struct qr__client *clients;
    size_t clients_count;
    uint64_t next_client_id;
    uint64_t seq; /* Sequence numbers of proposals. */
    bool is_listening;
    bool is_closing;
    bool is_announcing;          /* Our own MEMBER proposal is in flight. */
    struct qr__pending *waiting; /* Transfers waiting for the new leader (admin.c). */
    /* What the node was told of each member (admin.c), to tell it only changes. */
    struct {
        uint64_t id;
        char peer[QR__SERVER_ADDRESS_SIZE];
        char client[QR__SERVER_ADDRESS_SIZE];
    } told[QR_NODE_PEERS_MAX];
    size_t told_count;
    int handles_open; /* Handles whose close callback has not run. */
    qr_server_close_cb close_cb;
    void *close_ctx;
    /* Counters for INFO. */
    uint64_t commands_count;
    uint64_t rejected_count; /* Connections refused at clients_max. */
    uint64_t protocol_errors_count;
    uint64_t output_limit_count; /* Clients closed at reply_size_max. */
};

/* ---- server.c, for commands.c ---- */

/** Queue a pending reply at the client's tail (takes it). */
void qr__client_push(struct qr__client *c, struct qr__pending *p);

/** Allocate a pending reply of `kind` for client c; NULL without memory. */
struct qr__pending *qr__pending_new(struct qr__client *c, enum qr__pending_kind kind);

/** Copy a command into p->args (EXEC). @return 0, QR_ENOMEM. */
int qr__pending_copy_args(struct qr__pending *p, const struct qr_buf *args, size_t args_count);

/** Mark p done; writes what became writable. Frees p when its client is gone. */
void qr__pending_done(struct qr__pending *p, int status);

/** Close a client after its replies so far (QUIT). */
void qr__client_quit(struct qr__client *c);

/* ---- commands.c, for server.c ---- */

/**
 * Run one command of client c: either write its reply to c->out now (when nothing is
 * pending before it and it needs no round trip) or queue a pending reply.
 * @return 0, or QR_ENOMEM / QR_EBUSY (output limit): close the client.
 */
int qr__command_dispatch(struct qr__client *c, const struct qr_buf *args, size_t args_count);

/**
 * The error reply for a request the node failed.
 * @param is_write  A proposal (true) or a read (false): the texts differ.
 * @param text      Out: QR_RESP_ERROR_SIZE_MAX bytes, starting with '-' and its code.
 */
void qr__command_node_error(const struct qr_server *s, bool is_write, int status, char *text);

/** Write the reply of a pending entry that reached the head of its queue, done. */
int qr__command_reply(struct qr__client *c, struct qr__pending *p);

/** Once a second: announce our addresses when the member table lacks them. */
void qr__server_announce(struct qr_server *server);

/** Hand the member table's addresses to the node (after apply changed it). */
void qr__server_sync_members(struct qr_server *server);

#endif /* QR_SERVER_SERVER_INTERNAL_H */
