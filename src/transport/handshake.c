/*
 * transport/handshake.c: the peer handshake state machine (see handshake.h).
 *
 * Layer: transport. Decides only: it never reads a socket or a clock and never closes a
 * connection. Every byte of a HELLO or PROOF comes from an unauthenticated peer, so each is
 * checked before use and every refusal says why in words an operator can act on. Proofs are
 * compared with CRYPTO_memcmp so that the time taken says nothing about how much matched.
 */
#include "transport/handshake.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "quorum/err.h"
#include "util/assert.h"
#include "util/endian.h"
#include "util/err.h"

/* Domain separation: these bytes start every proof, so the secret signs nothing else alike. */
static const char proof_label[] = "quorum peer proof v1";
#define PROOF_LABEL_SIZE (sizeof(proof_label) - 1)
#define TRANSCRIPT_SIZE  (PROOF_LABEL_SIZE + QR_HANDSHAKE_CHALLENGE_SIZE + (size_t)3 * 8)

_Static_assert(QR_HANDSHAKE_HELLO_SIZE == 56 + 8, "the HELLO layout adds up");
_Static_assert(QR_HANDSHAKE_VERSION_MIN <= QR_HANDSHAKE_VERSION_MAX, "a version range");
_Static_assert(QR_HANDSHAKE_VERSION_MAX <= UINT16_MAX, "versions fit their u16 fields");
_Static_assert(QR_HANDSHAKE_SECRET_SIZE_MAX <= 1024, "a secret length fits HMAC's int");
_Static_assert(QR_HANDSHAKE_HELLO_SIZE <= QR_FRAME_SIZE_MAX_MIN, "a HELLO fits any frame limit");

static void check_invariants(const struct qr_handshake *hs)
{
    QR_ASSERT(hs->state <= QR_HANDSHAKE_REFUSED);
    QR_ASSERT((hs->state == QR_HANDSHAKE_REFUSED) == (hs->failed != 0));
    QR_ASSERT((hs->state == QR_HANDSHAKE_REFUSED) == (hs->refusal != QR_HANDSHAKE_REFUSAL_NONE));
    QR_ASSERT(hs->secret_size <= QR_HANDSHAKE_SECRET_SIZE_MAX);
    if (hs->state == QR_HANDSHAKE_WAIT_PROOF || hs->state == QR_HANDSHAKE_ACCEPTED) {
        QR_ASSERT(hs->peer_id != 0 && hs->peer_id != hs->node_id);
        QR_ASSERT(hs->version >= QR_HANDSHAKE_VERSION_MIN &&
                  hs->version <= QR_HANDSHAKE_VERSION_MAX);
        QR_ASSERT(hs->peer_frame_size_max >= QR_FRAME_SIZE_MAX_MIN);
    }
}

/* Every refusal goes through here: the state becomes sticky and errmsg already says why. */
static int refuse(struct qr_handshake *hs, enum qr_handshake_refusal refusal, int err)
{
    QR_ASSERT(err < 0 && refusal != QR_HANDSHAKE_REFUSAL_NONE);
    hs->state = QR_HANDSHAKE_REFUSED;
    hs->refusal = refusal;
    hs->failed = err;
    check_invariants(hs);
    return err;
}

/*
 * HMAC-SHA256(secret, label || challenge || prover || verifier || cluster): the proof that
 * `prover` holds the secret, answering `verifier`'s challenge.
 */
static bool compute_proof(const struct qr_handshake *hs,
                          const uint8_t *challenge,
                          qr_node_id prover,
                          qr_node_id verifier,
                          uint8_t *proof_out)
{
    uint8_t transcript[TRANSCRIPT_SIZE];
    uint8_t *p = transcript;
    memcpy(p, proof_label, PROOF_LABEL_SIZE);
    p += PROOF_LABEL_SIZE;
    memcpy(p, challenge, QR_HANDSHAKE_CHALLENGE_SIZE);
    p += QR_HANDSHAKE_CHALLENGE_SIZE;
    qr__put_u64(p, prover);
    qr__put_u64(p + 8, verifier);
    qr__put_u64(p + 16, hs->cluster_id);
    unsigned int proof_size = 0;
    const unsigned char *out = HMAC(EVP_sha256(), hs->secret, (int)hs->secret_size, transcript,
                                    sizeof(transcript), proof_out, &proof_size);
    return out != NULL && proof_size == QR_HANDSHAKE_PROOF_SIZE;
}

static int start_check_opts(struct qr_handshake *hs, const struct qr_handshake_opts *opts)
{
    if (opts->cluster_id == 0 || opts->node_id == 0) {
        return qr__errf(hs->errmsg, QR_EINVAL,
                        "handshake: cluster id and node id must be non-zero");
    }
    if (opts->peer_id == opts->node_id) {
        return qr__errf(hs->errmsg, QR_EINVAL, "handshake: dialling our own node id %llu",
                        (unsigned long long)opts->node_id);
    }
    if (opts->secret == NULL || opts->secret_size < QR_HANDSHAKE_SECRET_SIZE_MIN ||
        opts->secret_size > QR_HANDSHAKE_SECRET_SIZE_MAX) {
        return qr__errf(hs->errmsg, QR_EINVAL,
                        "handshake: cluster secret of %zu bytes, it needs %d to %d",
                        opts->secret == NULL ? (size_t)0 : opts->secret_size,
                        QR_HANDSHAKE_SECRET_SIZE_MIN, QR_HANDSHAKE_SECRET_SIZE_MAX);
    }
    uint32_t frame_size_max =
        opts->frame_size_max == 0 ? QR_FRAME_SIZE_MAX_DEFAULT : opts->frame_size_max;
    if (frame_size_max < QR_FRAME_SIZE_MAX_MIN || frame_size_max > QR_FRAME_SIZE_MAX_LIMIT) {
        return qr__errf(hs->errmsg, QR_EINVAL, "handshake: frame size max %u outside [%u, %u]",
                        frame_size_max, QR_FRAME_SIZE_MAX_MIN, QR_FRAME_SIZE_MAX_LIMIT);
    }
    hs->frame_size_max = frame_size_max;
    return 0;
}

static void encode_hello(const struct qr_handshake *hs, uint8_t *frame_out)
{
    uint8_t *body = frame_out + QR_FRAME_HEADER_SIZE;
    memset(body, 0, QR_HANDSHAKE_HELLO_SIZE); /* The reserved tail included. */
    body[0] = (uint8_t)QR_HANDSHAKE_VERSION_MIN;
    body[1] = (uint8_t)(QR_HANDSHAKE_VERSION_MIN >> 8);
    body[2] = (uint8_t)QR_HANDSHAKE_VERSION_MAX;
    body[3] = (uint8_t)(QR_HANDSHAKE_VERSION_MAX >> 8);
    qr__put_u32(body + 4, hs->frame_size_max);
    qr__put_u64(body + 8, hs->cluster_id);
    qr__put_u64(body + 16, hs->node_id);
    memcpy(body + 24, hs->challenge, QR_HANDSHAKE_CHALLENGE_SIZE);
    qr__frame_header_encode(QR_FRAME_HELLO, body, QR_HANDSHAKE_HELLO_SIZE, frame_out);
}

int qr__handshake_start(struct qr_handshake *hs,
                        const struct qr_handshake_opts *opts,
                        uint8_t *hello_frame_out)
{
    QR_ASSERT(hs != NULL && opts != NULL && hello_frame_out != NULL);
    memset(hs, 0, sizeof(*hs));
    int rv = start_check_opts(hs, opts);
    if (rv != 0) {
        return refuse(hs, QR_HANDSHAKE_REFUSAL_LOCAL, rv);
    }
    hs->cluster_id = opts->cluster_id;
    hs->node_id = opts->node_id;
    hs->peer_id_expected = opts->peer_id;
    memcpy(hs->secret, opts->secret, opts->secret_size);
    hs->secret_size = opts->secret_size;
    if (opts->challenge != NULL) {
        memcpy(hs->challenge, opts->challenge, QR_HANDSHAKE_CHALLENGE_SIZE);
    } else if (RAND_bytes(hs->challenge, QR_HANDSHAKE_CHALLENGE_SIZE) != 1) {
        (void)qr__errf(hs->errmsg, QR_EIO, "handshake: no random bytes for the challenge");
        return refuse(hs, QR_HANDSHAKE_REFUSAL_LOCAL, QR_EIO);
    }
    encode_hello(hs, hello_frame_out);
    hs->state = QR_HANDSHAKE_WAIT_HELLO;
    check_invariants(hs);
    return 0;
}

/* Writes "3" or "1 to 3". */
static void format_range(char *buf, size_t size, unsigned low, unsigned high)
{
    if (low == high) {
        (void)snprintf(buf, size, "%u", low); /* Fits: a u16 has at most 5 digits. */
    } else {
        (void)snprintf(buf, size, "%u to %u", low, high);
    }
}

/* Picks the highest version both sides speak; refuses when the ranges do not meet. */
static int hello_check_version(struct qr_handshake *hs, unsigned low, unsigned high)
{
    if (low > high) {
        (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: hello says versions %u to %u", low, high);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_MALFORMED, QR_EPROTO);
    }
    unsigned agreed = high < QR_HANDSHAKE_VERSION_MAX ? high : QR_HANDSHAKE_VERSION_MAX;
    if (agreed < low || agreed < QR_HANDSHAKE_VERSION_MIN) {
        char theirs[32];
        char ours[32];
        format_range(theirs, sizeof(theirs), low, high);
        format_range(ours, sizeof(ours), QR_HANDSHAKE_VERSION_MIN, QR_HANDSHAKE_VERSION_MAX);
        (void)qr__errf(hs->errmsg, QR_EVERSION,
                       "handshake: protocol version %s not supported, this node speaks %s", theirs,
                       ours);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_VERSION, QR_EVERSION);
    }
    hs->version = (uint16_t)agreed;
    return 0;
}

/* Cluster and node id of a HELLO. */
static int hello_check_ids(struct qr_handshake *hs, uint64_t cluster_id, qr_node_id peer_id)
{
    if (cluster_id != hs->cluster_id) {
        (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: wrong cluster id %llu, expected %llu",
                       (unsigned long long)cluster_id, (unsigned long long)hs->cluster_id);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_CLUSTER, QR_EPROTO);
    }
    if (peer_id == 0 || peer_id == hs->node_id) {
        (void)qr__errf(hs->errmsg, QR_EBADID, "handshake: peer claims node id %llu%s",
                       (unsigned long long)peer_id, peer_id == 0 ? "" : ", which is ours");
        return refuse(hs, QR_HANDSHAKE_REFUSAL_NODE, QR_EBADID);
    }
    if (hs->peer_id_expected != 0 && peer_id != hs->peer_id_expected) {
        (void)qr__errf(hs->errmsg, QR_EBADID,
                       "handshake: dialled node %llu, but node %llu answered",
                       (unsigned long long)hs->peer_id_expected, (unsigned long long)peer_id);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_NODE, QR_EBADID);
    }
    return 0;
}

/* A frame that is not what this state waits for. */
static int refuse_order(struct qr_handshake *hs, const char *what)
{
    static const char *const waiting[] = {"start", "hello", "proof", "nothing more", "nothing"};
    (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: %s while waiting for %s", what,
                   waiting[hs->state]);
    return refuse(hs, QR_HANDSHAKE_REFUSAL_ORDER, QR_EPROTO);
}

/* Size, reserved bytes and frame limit: everything that makes a HELLO well formed. */
static int hello_check_form(struct qr_handshake *hs, const uint8_t *body, size_t size)
{
    if (size != QR_HANDSHAKE_HELLO_SIZE) {
        (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: hello of %zu bytes, expected %d", size,
                       QR_HANDSHAKE_HELLO_SIZE);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_MALFORMED, QR_EPROTO);
    }
    if (qr__get_u64(body + 56) != 0) {
        (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: hello reserved bytes 56-63 not zero");
        return refuse(hs, QR_HANDSHAKE_REFUSAL_MALFORMED, QR_EPROTO);
    }
    uint32_t frame_size_max = qr__get_u32(body + 4);
    if (frame_size_max < QR_FRAME_SIZE_MAX_MIN || frame_size_max > QR_FRAME_SIZE_MAX_LIMIT) {
        (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: hello frame size max %u outside [%u, %u]",
                       frame_size_max, QR_FRAME_SIZE_MAX_MIN, QR_FRAME_SIZE_MAX_LIMIT);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_MALFORMED, QR_EPROTO);
    }
    return 0;
}

int qr__handshake_on_hello(struct qr_handshake *hs,
                           const uint8_t *body,
                           size_t size,
                           uint8_t *proof_frame_out)
{
    QR_ASSERT(hs != NULL && proof_frame_out != NULL && (body != NULL || size == 0));
    QR_ASSERT(hs->state != QR_HANDSHAKE_IDLE);
    if (hs->state == QR_HANDSHAKE_REFUSED) {
        return hs->failed;
    }
    if (hs->state != QR_HANDSHAKE_WAIT_HELLO) {
        return refuse_order(hs, "a second hello");
    }
    int rv = hello_check_form(hs, body, size);
    if (rv == 0) {
        rv = hello_check_version(hs, (unsigned)body[0] | (unsigned)body[1] << 8,
                                 (unsigned)body[2] | (unsigned)body[3] << 8);
    }
    if (rv == 0) {
        rv = hello_check_ids(hs, qr__get_u64(body + 8), qr__get_u64(body + 16));
    }
    if (rv != 0) {
        return rv;
    }
    hs->peer_id = qr__get_u64(body + 16);
    hs->peer_frame_size_max = qr__get_u32(body + 4);
    uint8_t *proof = proof_frame_out + QR_FRAME_HEADER_SIZE;
    if (!compute_proof(hs, body + 24, hs->node_id, hs->peer_id, proof)) {
        (void)qr__errf(hs->errmsg, QR_EINTERNAL, "handshake: hmac-sha256 failed");
        return refuse(hs, QR_HANDSHAKE_REFUSAL_LOCAL, QR_EINTERNAL);
    }
    qr__frame_header_encode(QR_FRAME_PROOF, proof, QR_HANDSHAKE_PROOF_SIZE, proof_frame_out);
    hs->state = QR_HANDSHAKE_WAIT_PROOF;
    check_invariants(hs);
    return 0;
}

int qr__handshake_on_proof(struct qr_handshake *hs, const uint8_t *body, size_t size)
{
    QR_ASSERT(hs != NULL && (body != NULL || size == 0));
    QR_ASSERT(hs->state != QR_HANDSHAKE_IDLE);
    if (hs->state == QR_HANDSHAKE_REFUSED) {
        return hs->failed;
    }
    if (hs->state != QR_HANDSHAKE_WAIT_PROOF) {
        return refuse_order(hs, "a proof");
    }
    if (size != QR_HANDSHAKE_PROOF_SIZE) {
        (void)qr__errf(hs->errmsg, QR_EPROTO, "handshake: proof of %zu bytes, expected %d", size,
                       QR_HANDSHAKE_PROOF_SIZE);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_MALFORMED, QR_EPROTO);
    }
    uint8_t expected[QR_HANDSHAKE_PROOF_SIZE];
    if (!compute_proof(hs, hs->challenge, hs->peer_id, hs->node_id, expected)) {
        (void)qr__errf(hs->errmsg, QR_EINTERNAL, "handshake: hmac-sha256 failed");
        return refuse(hs, QR_HANDSHAKE_REFUSAL_LOCAL, QR_EINTERNAL);
    }
    bool is_match = CRYPTO_memcmp(expected, body, QR_HANDSHAKE_PROOF_SIZE) == 0;
    OPENSSL_cleanse(expected, sizeof(expected));
    if (!is_match) {
        (void)qr__errf(hs->errmsg, QR_EPROTO,
                       "handshake: bad proof from node %llu: wrong cluster secret?",
                       (unsigned long long)hs->peer_id);
        return refuse(hs, QR_HANDSHAKE_REFUSAL_PROOF, QR_EPROTO);
    }
    hs->state = QR_HANDSHAKE_ACCEPTED;
    check_invariants(hs);
    return 0;
}

int qr__handshake_on_frame(struct qr_handshake *hs,
                           const struct qr_frame *frame,
                           uint8_t *proof_frame_out,
                           bool *has_proof_out)
{
    QR_ASSERT(hs != NULL && frame != NULL && has_proof_out != NULL);
    QR_ASSERT(hs->state == QR_HANDSHAKE_WAIT_HELLO || hs->state == QR_HANDSHAKE_WAIT_PROOF ||
              hs->state == QR_HANDSHAKE_REFUSED);
    *has_proof_out = false;
    if (hs->state == QR_HANDSHAKE_REFUSED) {
        return hs->failed;
    }
    switch (frame->type) {
    case QR_FRAME_HELLO: {
        int rv = qr__handshake_on_hello(hs, frame->body.base, frame->body.len, proof_frame_out);
        *has_proof_out = rv == 0;
        return rv;
    }
    case QR_FRAME_PROOF:
        return qr__handshake_on_proof(hs, frame->body.base, frame->body.len);
    case QR_FRAME_MSG:
    case QR_FRAME_FORWARD:
    case QR_FRAME_FORWARD_ACK:
        return refuse_order(hs, "a message");
    }
    return refuse_order(hs, "an unknown frame"); /* The frame reader lets none through. */
}

bool qr__handshake_is_accepted(const struct qr_handshake *hs)
{
    QR_ASSERT(hs != NULL);
    return hs->state == QR_HANDSHAKE_ACCEPTED;
}

void qr__handshake_close(struct qr_handshake *hs)
{
    if (hs == NULL) {
        return;
    }
    OPENSSL_cleanse(hs->secret, sizeof(hs->secret));
    memset(hs, 0, sizeof(*hs));
}
