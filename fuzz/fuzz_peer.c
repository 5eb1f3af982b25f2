/*
 * fuzz_peer: hostile bytes from a peer through everything that reads them.
 *
 * The first input byte picks the target (modulo 3); the rest is the hostile input.
 *   0: a TCP stream. The next byte seeds how the stream is cut into reads; the rest goes
 *      through a frame reader. HELLO and PROOF frames drive a handshake (node 1 of cluster 9
 *      with a fixed secret and challenge, the same as tests/unit/test_codec.c uses, so a seed
 *      can carry a valid proof and reach the accepted state); MSG frames go to the message
 *      decoder. Every frame handed out must re-encode to the same header bytes.
 *   1: a message body straight into the decoder.
 *   2: a HELLO body (the first 64 bytes) and then a PROOF body (the rest) into a handshake.
 * Wherever a message decodes it must re-encode to exactly the bytes it came from (the
 * encoding is canonical). Every refusal must explain itself with a non-empty message and
 * one of the documented codes. Any crash, sanitizer report, assertion failure or broken
 * round trip is a bug.
 */
#include <stdint.h>
#include <string.h>

#include "quorum/err.h"
#include "transport/codec.h"
#include "transport/handshake.h"
#include "util/alloc.h"
#include "util/rng.h"

#define INPUT_SIZE_MAX     (1u << 20)
#define FUZZ_FRAME_SIZE    (1u << 16)
#define FUZZ_READ_SIZE_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_secret[] = "correct horse battery staple!!";
static const uint8_t fuzz_challenge[QR_HANDSHAKE_CHALLENGE_SIZE] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static void require(bool condition)
{
    if (!condition) {
        __builtin_trap();
    }
}

/* Decodes a body; an accepted message must re-encode to the very same bytes. */
static void fuzz_body(struct qr_msg_decoder *decoder, struct qr_buf body)
{
    struct qr_msg msg;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__codec_decode(decoder, body, &msg, errmsg);
    if (rv != 0) {
        require(errmsg[0] != '\0');
        require(rv == QR_EPROTO || rv == QR_EVERSION || rv == QR_ENOMEM);
        return;
    }
    size_t size = qr__codec_encoded_size(&msg);
    require(size == body.len && body.base != NULL);
    uint8_t *again = qr_malloc(size);
    if (again == NULL) {
        return;
    }
    qr__codec_encode(&msg, again);
    require(memcmp(again, body.base, size) == 0);
    qr_free(again);
}

static void handshake_start(struct qr_handshake *hs)
{
    struct qr_handshake_opts opts = {
        .cluster_id = 9,
        .node_id = 1,
        .secret = fuzz_secret,
        .secret_size = sizeof(fuzz_secret) - 1,
        .challenge = fuzz_challenge,
    };
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    require(qr__handshake_start(hs, &opts, hello) == 0);
}

static void check_refusal(const struct qr_handshake *hs, int rv)
{
    if (rv == 0) {
        require(hs->state == QR_HANDSHAKE_WAIT_PROOF || hs->state == QR_HANDSHAKE_ACCEPTED);
        return;
    }
    require(hs->state == QR_HANDSHAKE_REFUSED && hs->refusal != QR_HANDSHAKE_REFUSAL_NONE);
    require(hs->errmsg[0] != '\0');
    require(rv == QR_EPROTO || rv == QR_EVERSION || rv == QR_EBADID);
}

/* One frame out of the reader: it must be exactly the bytes the stream held. */
static void fuzz_frame(const uint8_t *stream,
                       const struct qr_frame *frame,
                       struct qr_handshake *hs,
                       struct qr_msg_decoder *decoder)
{
    uint8_t header[QR_FRAME_HEADER_SIZE];
    qr__frame_header_encode(frame->type, frame->body.base, frame->body.len, header);
    require(memcmp(header, stream + frame->offset, QR_FRAME_HEADER_SIZE) == 0);
    if (frame->body.len > 0) {
        require(memcmp(frame->body.base, stream + frame->offset + QR_FRAME_HEADER_SIZE,
                       frame->body.len) == 0);
    }
    if (hs->state != QR_HANDSHAKE_ACCEPTED) {
        uint8_t proof[QR_HANDSHAKE_PROOF_FRAME_SIZE];
        bool has_proof = false;
        int rv = qr__handshake_on_frame(hs, frame, proof, &has_proof);
        check_refusal(hs, rv);
        require(has_proof == (rv == 0 && frame->type == QR_FRAME_HELLO));
    }
    if (frame->type == QR_FRAME_MSG) {
        fuzz_body(decoder, frame->body);
    }
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return;
    }
    struct qr_rng rng;
    qr__rng_seed(&rng, data[0]);
    const uint8_t *stream = data + 1;
    size_t stream_size = size - 1;
    struct qr_frame_reader reader;
    require(qr__frame_reader_init(&reader, FUZZ_FRAME_SIZE, NULL) == 0);
    struct qr_msg_decoder decoder;
    qr__codec_decoder_init(&decoder);
    struct qr_handshake hs;
    handshake_start(&hs);
    size_t pos = 0;
    /* Bounded: every feed consumes a byte or completes a frame, which the next feed passes. */
    for (size_t round = 0; pos < stream_size && round <= 2 * stream_size; round++) {
        size_t piece = (size_t)qr__rng_range(&rng, 1, FUZZ_READ_SIZE_MAX);
        piece = piece < stream_size - pos ? piece : stream_size - pos;
        size_t used = 0;
        int rv = qr__frame_reader_feed(&reader, stream + pos, piece, &used);
        require(used <= piece);
        pos += used;
        if (rv != 0) {
            require(reader.errmsg[0] != '\0');
            require(rv == QR_EVERSION || rv == QR_EPROTO || rv == QR_ETOOBIG || rv == QR_ECORRUPT ||
                    rv == QR_ENOMEM);
            break;
        }
        struct qr_frame frame;
        if (qr__frame_reader_next(&reader, &frame)) {
            fuzz_frame(stream, &frame, &hs, &decoder);
        }
    }
    qr__handshake_close(&hs);
    qr__codec_decoder_close(&decoder);
    qr__frame_reader_close(&reader);
}

static void fuzz_handshake(const uint8_t *data, size_t size)
{
    struct qr_handshake hs;
    handshake_start(&hs);
    uint8_t proof[QR_HANDSHAKE_PROOF_FRAME_SIZE];
    size_t hello_size = size < QR_HANDSHAKE_HELLO_SIZE ? size : QR_HANDSHAKE_HELLO_SIZE;
    int rv = qr__handshake_on_hello(&hs, hello_size > 0 ? data : NULL, hello_size, proof);
    check_refusal(&hs, rv);
    if (rv == 0) {
        size_t rest = size - hello_size;
        rv = qr__handshake_on_proof(&hs, rest > 0 ? data + hello_size : NULL, rest);
        check_refusal(&hs, rv);
        /* Only a peer holding the secret gets in, and it must then be who it claimed. */
        if (rv == 0) {
            require(hs.peer_id != 0 && hs.peer_id != 1 && hs.version == QR_CORE_PROTOCOL_VERSION);
        }
    }
    qr__handshake_close(&hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > INPUT_SIZE_MAX) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_stream(data + 1, size - 1);
        break;
    case 1: {
        struct qr_msg_decoder decoder;
        qr__codec_decoder_init(&decoder);
        /* The decoder keeps views into the body; a private copy shows over-reads exactly. */
        uint8_t *copy = size > 1 ? qr_malloc(size - 1) : NULL;
        if (size == 1 || copy != NULL) {
            if (copy != NULL) {
                memcpy(copy, data + 1, size - 1);
            }
            fuzz_body(&decoder, (struct qr_buf){copy, size - 1});
        }
        qr_free(copy);
        qr__codec_decoder_close(&decoder);
        break;
    }
    default:
        fuzz_handshake(data + 1, size - 1);
        break;
    }
    return 0;
}
