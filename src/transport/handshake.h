/*
 * transport/handshake.h: mutual authentication of a peer connection.
 *
 * Layer: transport. A small state machine that decides whether the node at the other end
 * of a fresh TCP connection belongs to this cluster and may talk to this node. It never
 * touches a socket or a clock: the runtime writes the frames it produces, feeds it the
 * frames it reads, and closes the connection when it refuses. Its only outside input is
 * randomness for the challenge, from OpenSSL's RAND_bytes (tests inject it).
 *
 * Both ends run the same steps at the same time, each over its own direction of the stream:
 *
 *   qr__handshake_start     send HELLO: version range, largest frame body accepted, cluster
 *                           id, node id, 32 fresh random challenge bytes
 *   qr__handshake_on_hello  the peer's HELLO: check version, cluster and node id; send PROOF
 *   qr__handshake_on_proof  the peer's PROOF: check it in constant time; accepted
 *
 * HELLO body (frame type QR_FRAME_HELLO, QR_HANDSHAKE_HELLO_SIZE bytes, little-endian):
 *   0 2 lowest protocol version spoken    2 2 highest protocol version spoken
 *   4 4 largest frame body the sender accepts (QR_FRAME_SIZE_MAX_MIN ... _LIMIT)
 *   8 8 cluster id    16 8 node id    24 32 challenge    56 8 reserved, zero
 *
 * PROOF body (frame type QR_FRAME_PROOF, 32 bytes): HMAC-SHA256 keyed with the cluster secret
 * over the label "quorum peer proof v1", the verifier's challenge, the prover's node id, the
 * verifier's node id and the cluster id (ids as u64 little-endian). A proof answers one fresh
 * challenge, so an old proof is useless (replay), and it names who proves to whom, so a
 * node's own challenge cannot be bounced back at it (reflection).
 *
 * The agreed protocol version is the highest both sides speak. Once a handshake is accepted
 * the runtime may send QR_FRAME_MSG frames, at most peer_frame_size_max body bytes each; the
 * peer reads our PROOF before them because a stream keeps its order. Every message received
 * afterwards must have `from == peer_id`.
 *
 * What this does not do: it authenticates the start of a connection, not each frame, and it
 * encrypts nothing. An attacker who can rewrite traffic on the path can hijack a connection
 * after the handshake; a network like that needs TLS underneath.
 *
 * Threading: one thread at a time per handshake.
 */
#ifndef QR_TRANSPORT_HANDSHAKE_H
#define QR_TRANSPORT_HANDSHAKE_H

#include "quorum/types.h"
#include "transport/codec.h"

/** Bytes of a challenge. */
#define QR_HANDSHAKE_CHALLENGE_SIZE 32
/** Bytes of a proof (HMAC-SHA256). */
#define QR_HANDSHAKE_PROOF_SIZE 32
/** Bytes of a HELLO body. */
#define QR_HANDSHAKE_HELLO_SIZE 64
/** Bytes of a complete HELLO frame, header included. */
#define QR_HANDSHAKE_HELLO_FRAME_SIZE (QR_FRAME_HEADER_SIZE + QR_HANDSHAKE_HELLO_SIZE)
/** Bytes of a complete PROOF frame, header included. */
#define QR_HANDSHAKE_PROOF_FRAME_SIZE (QR_FRAME_HEADER_SIZE + QR_HANDSHAKE_PROOF_SIZE)
/** Shortest cluster secret accepted, in bytes. */
#define QR_HANDSHAKE_SECRET_SIZE_MIN 16
/** Longest cluster secret accepted, in bytes. */
#define QR_HANDSHAKE_SECRET_SIZE_MAX 256
/** Protocol versions this build speaks (message bodies: QR_CORE_PROTOCOL_VERSION). */
#define QR_HANDSHAKE_VERSION_MIN QR_CORE_PROTOCOL_VERSION
#define QR_HANDSHAKE_VERSION_MAX QR_CORE_PROTOCOL_VERSION

/** Where a handshake stands. */
enum qr_handshake_state {
    QR_HANDSHAKE_IDLE = 0,       /* Not started (or closed). */
    QR_HANDSHAKE_WAIT_HELLO = 1, /* HELLO sent; the peer's HELLO is due. */
    QR_HANDSHAKE_WAIT_PROOF = 2, /* PROOF sent; the peer's PROOF is due. */
    QR_HANDSHAKE_ACCEPTED = 3,   /* The peer proved it holds the secret: messages may flow. */
    QR_HANDSHAKE_REFUSED = 4,    /* Close the connection; errmsg and refusal say why. */
};

/** Why a handshake was refused. */
enum qr_handshake_refusal {
    QR_HANDSHAKE_REFUSAL_NONE = 0,
    QR_HANDSHAKE_REFUSAL_MALFORMED = 1, /* Wrong size, reserved bytes, impossible values. */
    QR_HANDSHAKE_REFUSAL_ORDER = 2,     /* A frame out of turn (proof before hello, ...). */
    QR_HANDSHAKE_REFUSAL_VERSION = 3,   /* No protocol version in common. */
    QR_HANDSHAKE_REFUSAL_CLUSTER = 4,   /* The peer belongs to another cluster. */
    QR_HANDSHAKE_REFUSAL_NODE = 5,      /* Node id 0, ours, or not the node we dialled. */
    QR_HANDSHAKE_REFUSAL_PROOF = 6,     /* Bad proof: most likely a different secret. */
    QR_HANDSHAKE_REFUSAL_LOCAL = 7,     /* This node failed (HMAC could not be computed). */
};

/** How this node introduces itself. */
struct qr_handshake_opts {
    uint64_t cluster_id;      /* Non-zero; both ends must agree. */
    qr_node_id node_id;       /* This node; non-zero. */
    qr_node_id peer_id;       /* The node we dialled, or 0 when accepting (any id but ours;
                                 the runtime then checks membership). */
    const uint8_t *secret;    /* Borrows; copied. The cluster secret. */
    size_t secret_size;       /* QR_HANDSHAKE_SECRET_SIZE_MIN ... _MAX bytes. */
    uint32_t frame_size_max;  /* This node's reader limit, announced to the peer; 0 takes
                                 QR_FRAME_SIZE_MAX_DEFAULT. */
    const uint8_t *challenge; /* Tests only: QR_HANDSHAKE_CHALLENGE_SIZE bytes to use
                                 instead of RAND_bytes (borrows; copied). NULL otherwise. */
};

/** One connection's handshake. Caller-provided memory: start, then close. */
struct qr_handshake {
    enum qr_handshake_state state;
    enum qr_handshake_refusal refusal; /* NONE unless REFUSED. */
    int failed;                        /* 0, or the error every later call returns. */
    uint64_t cluster_id;
    qr_node_id node_id;
    qr_node_id peer_id_expected; /* 0: any. */
    uint32_t frame_size_max;
    uint8_t secret[QR_HANDSHAKE_SECRET_SIZE_MAX]; /* First secret_size bytes; wiped on close. */
    size_t secret_size;
    uint8_t challenge[QR_HANDSHAKE_CHALLENGE_SIZE]; /* Ours, fresh per connection. */
    /* Learned from the peer's HELLO; valid from WAIT_PROOF on. */
    qr_node_id peer_id;
    uint16_t version;             /* Agreed protocol version. */
    uint32_t peer_frame_size_max; /* Send no frame body larger than this. */
    char errmsg[QR_ERRMSG_SIZE];  /* Why it was refused; "" otherwise. */
};

/**
 * Start a handshake for a new connection: produces our HELLO frame.
 * @param hs               Out: initialized; close it with qr__handshake_close in every case.
 * @param opts             Borrows; the secret and challenge are copied.
 * @param hello_frame_out  Out: QR_HANDSHAKE_HELLO_FRAME_SIZE bytes to send first.
 * @return 0 (state WAIT_HELLO), QR_EINVAL (bad opts; hs->errmsg says which), QR_EIO (no
 *         randomness available). On failure the handshake is REFUSED with refusal LOCAL.
 */
int qr__handshake_start(struct qr_handshake *hs,
                        const struct qr_handshake_opts *opts,
                        uint8_t *hello_frame_out);

/**
 * The peer's HELLO arrived: decide whether to go on, and if so produce our PROOF frame.
 * @param body              Borrows; the frame body, untrusted, any bytes.
 * @param proof_frame_out   Out: QR_HANDSHAKE_PROOF_FRAME_SIZE bytes to send, on success.
 * @return 0 (state WAIT_PROOF), or the handshake is REFUSED and the connection must close:
 *         QR_EPROTO (malformed, out of turn, another cluster), QR_EVERSION (no common
 *         version), QR_EBADID (node id 0, ours, or not the one dialled), QR_EINTERNAL (HMAC
 *         failed here). A REFUSED handshake returns its error again on every later call.
 */
int qr__handshake_on_hello(struct qr_handshake *hs,
                           const uint8_t *body,
                           size_t size,
                           uint8_t *proof_frame_out);

/**
 * The peer's PROOF arrived: compare it, in constant time, with what the secret gives.
 * @param body  Borrows; the frame body, untrusted, any bytes.
 * @return 0 (state ACCEPTED), or REFUSED: QR_EPROTO (malformed, out of turn, bad proof),
 *         QR_EINTERNAL (HMAC failed here).
 */
int qr__handshake_on_proof(struct qr_handshake *hs, const uint8_t *body, size_t size);

/**
 * Feed a frame read before the handshake completed (state WAIT_HELLO, WAIT_PROOF or
 * REFUSED; asserted): HELLO and PROOF go to the functions above, a MSG frame is refused.
 * @param frame             Borrows.
 * @param proof_frame_out   Out: as for qr__handshake_on_hello.
 * @param has_proof_out     Out: true when proof_frame_out was filled and must be sent.
 * @return As qr__handshake_on_hello and qr__handshake_on_proof.
 */
int qr__handshake_on_frame(struct qr_handshake *hs,
                           const struct qr_frame *frame,
                           uint8_t *proof_frame_out,
                           bool *has_proof_out);

/** Whether the peer is authenticated and messages may flow. */
bool qr__handshake_is_accepted(const struct qr_handshake *hs);

/** Wipe the secret and reset to IDLE. Accepts NULL. */
void qr__handshake_close(struct qr_handshake *hs);

#endif /* QR_TRANSPORT_HANDSHAKE_H */
