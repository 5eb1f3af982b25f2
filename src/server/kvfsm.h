/*
 * server/kvfsm.h: the key-value store as the replicated state machine of quorumd.
 *
 * Layer: server (above kv and node). This module adapts kv/kv.h to the node's struct
 * qr_fsm: apply decodes a command of the log, applies it to the store and hands the
 * proposer an encoded result; snapshot and restore serialize the whole store. A command
 * the decoder refuses is answered with an error result the same way on every replica (a
 * replica cannot skip an entry), and only an out-of-memory stops the node.
 *
 * Result encoding (only between apply and the proposer's callback on the same node, never
 * stored or sent): u8 status, u8 error, 6 bytes zero, i64 integer (little-endian), then
 * the value bytes.
 *
 * Threading: the loop's thread only, like the node.
 */
#ifndef QR_SERVER_KVFSM_H
#define QR_SERVER_KVFSM_H

#include "kv/kv.h"
#include "quorum/node.h"

/** Bytes of the fixed part of an encoded result. */
#define QR_KVFSM_RESULT_HEADER_SIZE 16

/** The store and its callbacks. Fields are read-only outside kvfsm.c except `kv` reads. */
struct qr_kvfsm {
    struct qr_kv *kv;         /* The store; read it directly for local and confirmed reads. */
    struct qr_fsm fsm;        /* Give this to qr_node_create. */
    bool has_members_changed; /* A MEMBER command or a restore changed the member table:
                                 the server clears it once it told the node. */
    uint64_t corrupt_count;   /* Log entries the decoder refused (answered with an error). */
};

/**
 * Prepare an empty store.
 * @param f     Out: memory provided by the caller; release with qr__kvfsm_close.
 * @param opts  Borrows; NULL for defaults.
 * @return 0, QR_EINVAL, QR_ENOMEM.
 */
int qr__kvfsm_init(struct qr_kvfsm *f, const struct qr_kv_opts *opts);

/** Free the store. Accepts NULL. */
void qr__kvfsm_close(struct qr_kvfsm *f);

/**
 * Read a result buffer that apply produced.
 * @param buf         Borrows.
 * @param result_out  Out: value views into buf.
 * @return 0, QR_ECORRUPT (not an encoded result: a programmer error upstream).
 */
int qr__kvfsm_result_decode(struct qr_buf buf, struct qr_kv_result *result_out);

#endif /* QR_SERVER_KVFSM_H */
