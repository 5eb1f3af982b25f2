/*
 * transport/codec.h: peer frames on a TCP stream, and the binary codec of core messages.
 *
 * Layer: transport (depends on core types and util). This module turns bytes into frames
 * and frames into struct qr_msg, and back. It never touches a socket, a clock or a file:
 * the runtime feeds it the bytes it read and writes the bytes it produced. Everything it
 * decodes comes from a peer and is hostile: any byte string yields either a valid result or
 * a negative QR_E* code with a message naming what was wrong and where, never a crash,
 * never an allocation the bytes already received do not justify. Nothing here recurses;
 * every loop is bounded by a size that was checked against the bytes actually present.
 *
 * Frame, both directions, all integers little-endian:
 *
 *   offset size  field
 *   0      4     body size B in bytes (at most the reader's frame_size_max)
 *   4      1     frame format version (QR_FRAME_VERSION)
 *   5      1     frame type (enum qr_frame_type)
 *   6      2     reserved, zero
 *   8      4     CRC32C of the B body bytes
 *   12     B     body
 *
 * Message body (frame type QR_FRAME_MSG), version QR_CORE_PROTOCOL_VERSION. Every message
 * carries the same fixed part, so every scalar field of struct qr_msg survives a round
 * trip whatever the type:
 *
 *   offset size  field
 *   0      1     protocol version (QR_CORE_PROTOCOL_VERSION)
 *   1      1     type (enum qr_msg_type, 1 ... QR_MSG_TYPE_MAX)
 *   2      1     flags: 1 prevote, 2 transfer, 4 reject, 8 last_chunk; other bits zero
 *   3      1     reserved, zero
 *   4      4     chunk_size
 *   8      8     from          16  8  to           24  8  term
 *   32     8     log_index     40  8  log_term     48  8  commit
 *   56     8     index         64  8  hint_index   72  8  hint_term
 *   80     8     context       88  8  offset
 *   96           end of the fixed part (QR_CODEC_MSG_HEADER_SIZE)
 *
 * then, for QR_MSG_APPEND only:
 *   4 entries count N, 4 reserved zero, then N times:
 *   8 term, 8 index, 1 entry type (enum qr_entry_type), 3 reserved zero,
 *   4 data size D, D data bytes (opaque here: config entries are checked by the core)
 *
 * then, for QR_MSG_SNAPSHOT only:
 *   8 meta index, 8 meta term, 8 meta size, 4 meta crc, 4 reserved zero,
 *   4 config size C (at most QR_CODEC_CONFIG_SIZE_MAX), C bytes of qr_core_config_encode,
 *   chunk_size bytes of chunk data (the chunk lies inside the snapshot: offset + chunk_size
 *   <= meta size)
 *
 * and nothing may follow. The encoding is canonical: a body that decodes re-encodes to the
 * same bytes. struct qr_msg's reserved_flag has no bit: it must be false.
 *
 * What the decoder leaves to the core: entry indexes following log_index, terms, node ids
 * being members, the content of config entries. The runtime must also check that `from`
 * is the node the connection authenticated as (handshake.h) before stepping a message.
 *
 * Threading: a reader or decoder is used by one thread at a time; the encoding functions
 * are pure and may run on any thread.
 */
#ifndef QR_TRANSPORT_CODEC_H
#define QR_TRANSPORT_CODEC_H

#include "quorum/core.h"
#include "quorum/types.h"

/** Version of the 12-byte frame header layout. */
#define QR_FRAME_VERSION 1
/** Bytes of a frame header. */
#define QR_FRAME_HEADER_SIZE 12
/** Default largest frame body: fits a default snapshot chunk or append batch many times. */
#define QR_FRAME_SIZE_MAX_DEFAULT (64u << 20)
/** Hard ceiling for frame_size_max. */
#define QR_FRAME_SIZE_MAX_LIMIT (1u << 30)
/** Smallest allowed frame_size_max: a handshake and any non-bulk message must fit. */
#define QR_FRAME_SIZE_MAX_MIN 4096u
/** A body buffer larger than this is released when a much smaller frame follows. */
#define QR_FRAME_RETAIN_SIZE (256u << 10)

/** Bytes of the fixed part of every message body. */
#define QR_CODEC_MSG_HEADER_SIZE 96
/** Bytes of the APPEND section before its first entry. */
#define QR_CODEC_ENTRIES_HEADER_SIZE 8
/** Bytes of one entry before its data. */
#define QR_CODEC_ENTRY_HEADER_SIZE 24
/** Bytes of the SNAPSHOT section before the encoded configuration. */
#define QR_CODEC_SNAPSHOT_HEADER_SIZE 36
/** Largest encoded configuration (qr_core_config_encode of a full configuration). */
#define QR_CODEC_CONFIG_SIZE_MAX (16u + 3u * QR_CORE_MEMBERS_MAX * 8u)
/** Entry capacity a decoder keeps between messages; more is released by the next decode. */
#define QR_CODEC_ENTRIES_RETAIN_COUNT 4096u

/** What a frame carries. */
enum qr_frame_type {
    QR_FRAME_HELLO = 1, /* Handshake: who I am and my challenge (handshake.h). */
    QR_FRAME_PROOF = 2, /* Handshake: the answer to the peer's challenge (handshake.h). */
    QR_FRAME_MSG = 3,   /* One core message (qr__codec_decode). */
    /* Node runtime frames, opaque here (node/node_wire.c encodes and checks the body). */
    QR_FRAME_FORWARD = 4,     /* A follower hands a client command to the leader. */
    QR_FRAME_FORWARD_ACK = 5, /* The leader's answer: the index and term it got, or why not. */
};
#define QR_FRAME_TYPE_MAX QR_FRAME_FORWARD_ACK

/** A complete frame handed out by a reader. */
struct qr_frame {
    enum qr_frame_type type;
    struct qr_buf body; /* View into the reader's buffer, valid until its next feed, reset
                           or close. base is NULL when len is 0. */
    uint64_t offset;    /* Stream byte offset of the frame's first header byte, from 0. */
};

/**
 * Streaming frame decoder for one connection. Bytes may arrive split anywhere; the reader
 * hands out one complete, CRC-checked frame at a time. Memory grows only with bytes that
 * actually arrived (never to a length a peer merely announced), up to frame_size_max.
 */
struct qr_frame_reader {
    uint32_t frame_size_max;              /* Largest body accepted, in bytes. */
    uint8_t header[QR_FRAME_HEADER_SIZE]; /* Header bytes of the current frame. */
    size_t header_filled;                 /* 0 ... QR_FRAME_HEADER_SIZE. */
    enum qr_frame_type type;              /* Current frame; valid once the header is in. */
    uint32_t body_size;                   /* Current frame; <= frame_size_max. */
    uint32_t crc_expected;                /* From the header. */
    uint32_t crc;                         /* CRC32C of the body bytes received so far. */
    uint8_t *body;                        /* Owned; body_capacity bytes, NULL when 0. */
    size_t body_capacity;                 /* <= frame_size_max. */
    size_t body_filled;                   /* <= body_size. */
    uint64_t stream_offset;               /* Bytes consumed since init or reset. */
    uint64_t frame_offset;                /* Stream offset of the current frame. */
    bool has_frame;                       /* A complete frame waits for qr__frame_reader_next. */
    int failed;                           /* 0, or the sticky error of a broken stream. */
    char errmsg[QR_ERRMSG_SIZE];          /* Why it failed; "" otherwise. */
};

/**
 * Prepare a reader for a new connection (caller-provided memory; pair with close).
 * @param reader          Out: initialized.
 * @param frame_size_max  Largest body accepted, in bytes; 0 takes QR_FRAME_SIZE_MAX_DEFAULT.
 * @param errmsg          Out, may be NULL: QR_ERRMSG_SIZE bytes.
 * @return 0, QR_EINVAL (frame_size_max outside [QR_FRAME_SIZE_MAX_MIN,
 *         QR_FRAME_SIZE_MAX_LIMIT]; the reader is then not initialized).
 */
int qr__frame_reader_init(struct qr_frame_reader *reader, uint32_t frame_size_max, char *errmsg);

/** Release the reader's buffer. Accepts NULL. Invalidates any frame view. */
void qr__frame_reader_close(struct qr_frame_reader *reader);

/** Forget any partial frame and any error, as for a new connection; keeps the buffer. */
void qr__frame_reader_reset(struct qr_frame_reader *reader);

/**
 * Consume bytes of the stream, stopping right after the last byte of a complete frame (take
 * it with qr__frame_reader_next before feeding again) or when the input runs out.
 * @param data          Borrows; size bytes, copied. May be NULL when size is 0.
 * @param consumed_out  Out: bytes taken, also on error; feed the rest later.
 * @return 0; or, with reader->errmsg saying what and at which stream byte, and sticky (every
 *         later feed returns it again, the connection must be closed):
 *         QR_EVERSION (frame version), QR_EPROTO (reserved bytes not zero, unknown frame
 *         type), QR_ETOOBIG (length above frame_size_max), QR_ECORRUPT (CRC mismatch);
 *         or QR_ENOMEM, not sticky: the reader is unchanged past consumed_out, retry later.
 */
int qr__frame_reader_feed(struct qr_frame_reader *reader,
                          const uint8_t *data,
                          size_t size,
                          size_t *consumed_out);

/**
 * Take the complete frame, if there is one.
 * @param frame_out  Out: filled when true is returned; its body is a view valid until the
 *                   reader's next feed, reset or close.
 * @return Whether a frame was waiting.
 */
bool qr__frame_reader_next(struct qr_frame_reader *reader, struct qr_frame *frame_out);

/**
 * Write the 12-byte header of a frame whose body is already in place.
 * @param body        Borrows; body_size bytes (CRC input). May be NULL when body_size is 0.
 * @param body_size   At most QR_FRAME_SIZE_MAX_LIMIT.
 * @param header_out  Out: QR_FRAME_HEADER_SIZE bytes.
 */
void qr__frame_header_encode(enum qr_frame_type type,
                             const uint8_t *body,
                             size_t body_size,
                             uint8_t *header_out);

/**
 * Bytes of the message body that qr__codec_encode writes: the fixed part, plus entries for
 * APPEND, plus meta, configuration and chunk for SNAPSHOT.
 * @param msg  Borrows; a well-formed message (see qr__codec_encode).
 * @return The size; SIZE_MAX when it cannot be encoded at all (an entry or chunk of more
 *         than 4 GiB), which no frame limit admits.
 */
size_t qr__codec_encoded_size(const struct qr_msg *msg);

/**
 * Encode a message body; allocates nothing. The message must be well formed (asserted: a
 * message the core produced, with a SNAPSHOT's data filled in by the driver): type in range,
 * reserved_flag false, entries only on APPEND with valid entry types, snapshot meta non-NULL
 * exactly on SNAPSHOT with a valid configuration, a zero reserved field and the chunk inside
 * the snapshot, data only on SNAPSHOT and exactly chunk_size bytes.
 * @param msg  Borrows.
 * @param buf  Out: qr__codec_encoded_size(msg) bytes, which must not be SIZE_MAX.
 */
void qr__codec_encode(const struct qr_msg *msg, uint8_t *buf);

/**
 * Encode a message as a complete frame (header then body); allocates nothing.
 * @param msg             Borrows; as for qr__codec_encode.
 * @param frame_size_max  Largest body the receiving peer accepts (handshake.h tells it).
 * @param buf             Out: the frame, QR_FRAME_HEADER_SIZE + qr__codec_encoded_size(msg)
 *                        bytes.
 * @param buf_size        Bytes at buf; when the body is within frame_size_max, buf_size must
 *                        hold the whole frame (asserted).
 * @return 0, QR_ETOOBIG (the body exceeds frame_size_max: nothing was written; for an
 *         append, send fewer entries).
 */
int qr__codec_encode_frame(const struct qr_msg *msg,
                           uint32_t frame_size_max,
                           uint8_t *buf,
                           size_t buf_size);

/**
 * Decoder state: the memory that decoded messages point into. One per connection (or per
 * thread); caller-provided memory, pair init with close.
 */
struct qr_msg_decoder {
    struct qr_entry *entries;         /* Owned; entries_capacity slots. */
    size_t entries_capacity;          /* Slots allocated. */
    struct qr_snapshot_meta snapshot; /* The last SNAPSHOT's meta. */
};

/** Prepare an empty decoder. */
void qr__codec_decoder_init(struct qr_msg_decoder *decoder);

/** Release the decoder's memory. Accepts NULL. Invalidates every decoded message. */
void qr__codec_decoder_close(struct qr_msg_decoder *decoder);

/** Invalidate decoded messages and release memory beyond what a small message needs. */
void qr__codec_decoder_reset(struct qr_msg_decoder *decoder);

/**
 * Decode and validate one message body from a peer. Untrusted input: any bytes are handled.
 * @param decoder  Its previous message becomes invalid.
 * @param body     Keeps: entry data and the snapshot chunk in msg_out point into
 *                 body.base; keep those bytes valid and unchanged while using the message.
 * @param msg_out  Out: on success a message whose entries and snapshot point into the
 *                 decoder, valid until its next decode, reset or close (and while body
 *                 lives). Untouched on failure.
 * @param errmsg   Out, may be NULL: QR_ERRMSG_SIZE bytes, naming the body byte offset.
 * @return 0, QR_EVERSION (protocol version), QR_EPROTO (malformed: size, type, flags,
 *         reserved bytes, counts, entry type, configuration, chunk range, trailing bytes),
 *         QR_ENOMEM (the message was well formed so far but its entries could not be held).
 */
int qr__codec_decode(struct qr_msg_decoder *decoder,
                     struct qr_buf body,
                     struct qr_msg *msg_out,
                     char *errmsg);

#endif /* QR_TRANSPORT_CODEC_H */
