/*
 * transport/codec.c: the peer frame reader and the core message codec.
 *
 * Layer: transport. Pure byte handling: no socket, no clock, no logging. The formats are
 * described in codec.h. Every decoder here treats its input as hostile: a length or count
 * read from the wire is compared with the bytes actually present (or, for a frame, with
 * frame_size_max) before it sizes a loop or an allocation, and every refusal says what was
 * wrong and at which byte. The encoders assert what the decoders check, so a message the
 * core produced always encodes, and a body that decodes always re-encodes to the same
 * bytes.
 */
#include "transport/codec.h"

#include <string.h>

#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/err.h"

#define FLAG_PREVOTE    0x01u
#define FLAG_TRANSFER   0x02u
#define FLAG_REJECT     0x04u
#define FLAG_LAST_CHUNK 0x08u
#define FLAGS_KNOWN     (FLAG_PREVOTE | FLAG_TRANSFER | FLAG_REJECT | FLAG_LAST_CHUNK)

/* The u64 fields of a message's fixed part, from body byte 8 on (see codec.h). */
#define MSG_U64_FIELDS_COUNT 11

/* Smallest body buffer a reader allocates; growth doubles from here. */
#define BODY_CAPACITY_MIN 4096u
/* Smallest entry array a decoder allocates. */
#define ENTRIES_CAPACITY_MIN 16u

_Static_assert(QR_FRAME_SIZE_MAX_MIN <= QR_FRAME_SIZE_MAX_DEFAULT &&
                   QR_FRAME_SIZE_MAX_DEFAULT <= QR_FRAME_SIZE_MAX_LIMIT,
               "the default frame size is within the allowed range");
_Static_assert(QR_FRAME_SIZE_MAX_LIMIT <= UINT32_MAX, "a frame length fits its u32 field");
_Static_assert(BODY_CAPACITY_MIN <= QR_FRAME_SIZE_MAX_MIN,
               "the first buffer never exceeds a frame");
_Static_assert(QR_CODEC_MSG_HEADER_SIZE + QR_CODEC_SNAPSHOT_HEADER_SIZE +
                       QR_CODEC_CONFIG_SIZE_MAX <=
                   QR_FRAME_SIZE_MAX_MIN,
               "a snapshot message with a full configuration fits the smallest frame limit");
_Static_assert(8 + 8 * MSG_U64_FIELDS_COUNT == QR_CODEC_MSG_HEADER_SIZE,
               "the fixed part is 8 bytes of type, flags and chunk size, then the u64 fields");
_Static_assert(QR_MSG_TYPE_MAX <= 255 && QR_ENTRY_CONFIG <= 255, "types fit their byte");
_Static_assert(QR_FRAME_TYPE_MAX <= 255, "frame types fit their byte");

/* ---- Frame reader --------------------------------------------------------------------------- */

int qr__frame_reader_init(struct qr_frame_reader *reader, uint32_t frame_size_max, char *errmsg)
{
    QR_ASSERT(reader != NULL);
    if (frame_size_max == 0) {
        frame_size_max = QR_FRAME_SIZE_MAX_DEFAULT;
    }
    if (frame_size_max < QR_FRAME_SIZE_MAX_MIN || frame_size_max > QR_FRAME_SIZE_MAX_LIMIT) {
        return qr__errf(errmsg, QR_EINVAL, "peer frames: frame size max %u outside [%u, %u]",
                        frame_size_max, QR_FRAME_SIZE_MAX_MIN, QR_FRAME_SIZE_MAX_LIMIT);
    }
    memset(reader, 0, sizeof(*reader));
    reader->frame_size_max = frame_size_max;
    return 0;
}

void qr__frame_reader_close(struct qr_frame_reader *reader)
{
    if (reader == NULL) {
        return;
    }
    qr_free(reader->body);
    memset(reader, 0, sizeof(*reader));
}

void qr__frame_reader_reset(struct qr_frame_reader *reader)
{
    QR_ASSERT(reader != NULL && reader->frame_size_max != 0);
    uint32_t frame_size_max = reader->frame_size_max;
    uint8_t *body = reader->body;
    size_t body_capacity = reader->body_capacity;
    memset(reader, 0, sizeof(*reader));
    reader->frame_size_max = frame_size_max;
    reader->body = body;
    reader->body_capacity = body_capacity;
}

static void reader_check_invariants(const struct qr_frame_reader *r)
{
    QR_ASSERT(r->header_filled <= QR_FRAME_HEADER_SIZE);
    QR_ASSERT(r->body_capacity <= r->frame_size_max);
    QR_ASSERT(r->body != NULL || r->body_capacity == 0);
    if (r->header_filled == QR_FRAME_HEADER_SIZE && r->failed == 0) {
        QR_ASSERT(r->body_size <= r->frame_size_max);
        QR_ASSERT(r->body_filled <= r->body_size);
        QR_ASSERT(r->body_filled <= r->body_capacity || r->body_filled == 0);
    }
    if (r->has_frame) {
        QR_ASSERT(r->failed == 0 && r->header_filled == QR_FRAME_HEADER_SIZE);
        QR_ASSERT(r->body_filled == r->body_size);
    }
}

/* Records a stream-breaking error: the reader refuses everything after it. */
static int reader_fail(struct qr_frame_reader *r, int err)
{
    QR_ASSERT(err < 0 && err != QR_ENOMEM);
    r->failed = err;
    return err;
}

/* Checks a complete header. The version comes first: the rest of the layout depends on it. */
static int reader_parse_header(struct qr_frame_reader *r)
{
    const uint8_t *h = r->header;
    unsigned long long at = (unsigned long long)r->frame_offset;
    uint32_t length = qr__get_u32(h);
    unsigned reserved = (unsigned)h[6] | (unsigned)h[7] << 8;
    if (h[4] != QR_FRAME_VERSION) {
        return reader_fail(r, qr__errf(r->errmsg, QR_EVERSION,
                                       "peer frame at byte %llu: version %u not supported, "
                                       "expected %d",
                                       at, h[4], QR_FRAME_VERSION));
    }
    if (reserved != 0) {
        return reader_fail(r, qr__errf(r->errmsg, QR_EPROTO,
                                       "peer frame at byte %llu: reserved header bytes 6-7 are "
                                       "0x%04x, not zero",
                                       at, reserved));
    }
    if (h[5] < 1 || h[5] > QR_FRAME_TYPE_MAX) {
        return reader_fail(r, qr__errf(r->errmsg, QR_EPROTO,
                                       "peer frame at byte %llu: unknown frame type %u", at, h[5]));
    }
    if (length > r->frame_size_max) {
        return reader_fail(r, qr__errf(r->errmsg, QR_ETOOBIG,
                                       "peer frame at byte %llu: length %u exceeds %u", at, length,
                                       r->frame_size_max));
    }
    r->type = (enum qr_frame_type)h[5];
    r->body_size = length;
    r->crc_expected = qr__get_u32(h + 8);
    r->crc = 0;
    r->body_filled = 0;
    if (r->body_capacity > QR_FRAME_RETAIN_SIZE && length < r->body_capacity / 4) {
        /* A large frame passed: do not hold its buffer for a stream of small ones. */
        qr_free(r->body);
        r->body = NULL;
        r->body_capacity = 0;
    }
    return 0;
}

/* Copies header bytes; returns how many it took. */
static size_t reader_take_header(struct qr_frame_reader *r, const uint8_t *data, size_t size)
{
    size_t want = QR_FRAME_HEADER_SIZE - r->header_filled;
    size_t take = size < want ? size : want;
    if (take == 0) {
        return 0;
    }
    if (r->header_filled == 0) {
        r->frame_offset = r->stream_offset;
    }
    memcpy(r->header + r->header_filled, data, take);
    r->header_filled += take;
    return take;
}

/* Grows the body buffer to hold `needed` bytes, in proportion to the bytes that arrived. */
static int reader_reserve(struct qr_frame_reader *r, size_t needed)
{
    QR_ASSERT(needed <= r->body_size);
    if (needed <= r->body_capacity) {
        return 0;
    }
    size_t capacity =
        r->body_capacity < BODY_CAPACITY_MIN ? BODY_CAPACITY_MIN : r->body_capacity * 2;
    capacity = capacity < needed ? needed : capacity;
    capacity = capacity > r->body_size ? r->body_size : capacity;
    uint8_t *body = qr_realloc(r->body, capacity);
    if (body == NULL) {
        return qr__errf(r->errmsg, QR_ENOMEM, "peer frame at byte %llu: no memory for %zu bytes",
                        (unsigned long long)r->frame_offset, capacity);
    }
    r->body = body;
    r->body_capacity = capacity;
    return 0;
}

/* Copies body bytes; a complete body is checked against the header's CRC. */
static int
reader_take_body(struct qr_frame_reader *r, const uint8_t *data, size_t size, size_t *used_out)
{
    QR_ASSERT(data != NULL || size == 0);
    size_t want = r->body_size - r->body_filled;
    size_t take = size < want ? size : want;
    *used_out = 0;
    int rv = reader_reserve(r, r->body_filled + take);
    if (rv != 0) {
        return rv;
    }
    if (take > 0) {
        memcpy(r->body + r->body_filled, data, take);
        r->crc = qr__crc32c(r->crc, data, take);
        r->body_filled += take;
    }
    *used_out = take;
    if (r->body_filled < r->body_size) {
        return 0;
    }
    if (r->crc != r->crc_expected) {
        return reader_fail(r, qr__errf(r->errmsg, QR_ECORRUPT,
                                       "peer frame at byte %llu: crc 0x%08x of the %u body bytes, "
                                       "header says 0x%08x",
                                       (unsigned long long)r->frame_offset, r->crc, r->body_size,
                                       r->crc_expected));
    }
    r->has_frame = true;
    return 0;
}

int qr__frame_reader_feed(struct qr_frame_reader *reader,
                          const uint8_t *data,
                          size_t size,
                          size_t *consumed_out)
{
    QR_ASSERT(reader != NULL && consumed_out != NULL && reader->frame_size_max != 0);
    QR_ASSERT(data != NULL || size == 0);
    QR_ASSERT(!reader->has_frame); /* Take the waiting frame first. */
    *consumed_out = 0;
    if (reader->failed != 0) {
        return reader->failed;
    }
    reader->errmsg[0] = '\0'; /* A retried QR_ENOMEM leaves no stale message behind. */
    size_t used = 0;
    int rv = 0;
    if (reader->header_filled < QR_FRAME_HEADER_SIZE) {
        used = reader_take_header(reader, data, size);
        if (reader->header_filled == QR_FRAME_HEADER_SIZE) {
            rv = reader_parse_header(reader);
        }
    }
    if (rv == 0 && reader->header_filled == QR_FRAME_HEADER_SIZE) {
        /* A frame with an empty body completes here even when no byte is left. */
        const uint8_t *rest = used < size ? data + used : NULL;
        size_t body_used = 0;
        rv = reader_take_body(reader, rest, size - used, &body_used);
        used += body_used;
    }
    reader->stream_offset += used;
    *consumed_out = used;
    reader_check_invariants(reader);
    return rv;
}

bool qr__frame_reader_next(struct qr_frame_reader *reader, struct qr_frame *frame_out)
{
    QR_ASSERT(reader != NULL && frame_out != NULL);
    reader_check_invariants(reader);
    if (!reader->has_frame) {
        return false;
    }
    frame_out->type = reader->type;
    frame_out->body.base = reader->body_size > 0 ? reader->body : NULL;
    frame_out->body.len = reader->body_size;
    frame_out->offset = reader->frame_offset;
    /* The bytes stay in place until the next feed: that is what keeps the view valid. */
    reader->has_frame = false;
    reader->header_filled = 0;
    reader->body_filled = 0;
    return true;
}

void qr__frame_header_encode(enum qr_frame_type type,
                             const uint8_t *body,
                             size_t body_size,
                             uint8_t *header_out)
{
    QR_ASSERT(header_out != NULL && (body != NULL || body_size == 0));
    QR_ASSERT((int)type >= 1 && (int)type <= QR_FRAME_TYPE_MAX);
    QR_ASSERT(body_size <= QR_FRAME_SIZE_MAX_LIMIT);
    qr__put_u32(header_out, (uint32_t)body_size);
    header_out[4] = QR_FRAME_VERSION;
    header_out[5] = (uint8_t)type;
    header_out[6] = 0;
    header_out[7] = 0;
    qr__put_u32(header_out + 8, qr__crc32c(0, body, body_size));
}

/* ---- Message encoding ----------------------------------------------------------------------- */

static bool msg_type_is_valid(unsigned type)
{
    return type >= 1 && type <= QR_MSG_TYPE_MAX;
}

static bool entry_type_is_valid(unsigned type)
{
    return type >= QR_ENTRY_NORMAL && type <= QR_ENTRY_CONFIG;
}

/* The snapshot section's size, or SIZE_MAX when the chunk cannot be described. */
static size_t snapshot_encoded_size(const struct qr_msg *msg)
{
    QR_ASSERT(msg->snapshot != NULL);
    const struct qr_config *config = &msg->snapshot->config;
    QR_ASSERT(config->voters_count <= QR_CORE_MEMBERS_MAX &&
              config->voters_old_count <= QR_CORE_MEMBERS_MAX &&
              config->learners_count <= QR_CORE_MEMBERS_MAX);
    if (msg->data.len > UINT32_MAX) {
        return SIZE_MAX;
    }
    return QR_CODEC_SNAPSHOT_HEADER_SIZE + qr_core_config_encoded_size(config) + msg->data.len;
}

/* The entries section's size, or SIZE_MAX when it cannot be encoded. */
static size_t entries_encoded_size(const struct qr_msg *msg)
{
    if (msg->entries_count > UINT32_MAX) {
        return SIZE_MAX;
    }
    size_t size = QR_CODEC_ENTRIES_HEADER_SIZE;
    for (size_t i = 0; i < msg->entries_count; i++) {
        size_t len = msg->entries[i].data.len;
        if (len > UINT32_MAX || len > SIZE_MAX - QR_CODEC_ENTRY_HEADER_SIZE - size) {
            return SIZE_MAX;
        }
        size += QR_CODEC_ENTRY_HEADER_SIZE + len;
    }
    return size;
}

size_t qr__codec_encoded_size(const struct qr_msg *msg)
{
    QR_ASSERT(msg != NULL && msg_type_is_valid((unsigned)msg->type));
    QR_ASSERT(msg->entries != NULL || msg->entries_count == 0);
    size_t section = 0;
    if (msg->type == QR_MSG_APPEND) {
        section = entries_encoded_size(msg);
    } else if (msg->type == QR_MSG_SNAPSHOT) {
        section = snapshot_encoded_size(msg);
    }
    if (section > SIZE_MAX - QR_CODEC_MSG_HEADER_SIZE) {
        return SIZE_MAX;
    }
    return QR_CODEC_MSG_HEADER_SIZE + section;
}

/* The encoder's half of the paired checks: what qr__codec_decode refuses never leaves here. */
static void encode_check(const struct qr_msg *msg)
{
    QR_ASSERT(msg_type_is_valid((unsigned)msg->type));
    QR_ASSERT(!msg->reserved_flag);
    if (msg->type != QR_MSG_APPEND) {
        QR_ASSERT(msg->entries_count == 0);
    }
    if (msg->type != QR_MSG_SNAPSHOT) {
        QR_ASSERT(msg->snapshot == NULL && msg->data.len == 0);
        return;
    }
    const struct qr_snapshot_meta *meta = msg->snapshot;
    QR_ASSERT(meta != NULL && meta->reserved == 0);
    QR_ASSERT(msg->data.len == msg->chunk_size); /* The driver filled the chunk. */
    QR_ASSERT(msg->data.base != NULL || msg->data.len == 0);
    QR_ASSERT(msg->offset <= meta->size && msg->chunk_size <= meta->size - msg->offset);
}

static uint8_t *encode_header(const struct qr_msg *msg, uint8_t *p)
{
    unsigned flags = (msg->prevote ? FLAG_PREVOTE : 0) | (msg->transfer ? FLAG_TRANSFER : 0) |
                     (msg->reject ? FLAG_REJECT : 0) | (msg->last_chunk ? FLAG_LAST_CHUNK : 0);
    p[0] = QR_CORE_PROTOCOL_VERSION;
    p[1] = (uint8_t)msg->type;
    p[2] = (uint8_t)flags;
    p[3] = 0;
    qr__put_u32(p + 4, msg->chunk_size);
    const uint64_t fields[MSG_U64_FIELDS_COUNT] = {
        msg->from,  msg->to,         msg->term,      msg->log_index, msg->log_term, msg->commit,
        msg->index, msg->hint_index, msg->hint_term, msg->context,   msg->offset};
    for (size_t i = 0; i < MSG_U64_FIELDS_COUNT; i++) {
        qr__put_u64(p + 8 + 8 * i, fields[i]);
    }
    return p + QR_CODEC_MSG_HEADER_SIZE;
}

static uint8_t *encode_entries(const struct qr_msg *msg, uint8_t *p)
{
    QR_ASSERT(msg->entries_count <= UINT32_MAX);
    qr__put_u32(p, (uint32_t)msg->entries_count);
    qr__put_u32(p + 4, 0);
    p += QR_CODEC_ENTRIES_HEADER_SIZE;
    for (size_t i = 0; i < msg->entries_count; i++) {
        const struct qr_entry *e = &msg->entries[i];
        QR_ASSERT(entry_type_is_valid((unsigned)e->type));
        QR_ASSERT(e->data.len <= UINT32_MAX && (e->data.base != NULL || e->data.len == 0));
        qr__put_u64(p, e->term);
        qr__put_u64(p + 8, e->index);
        p[16] = (uint8_t)e->type;
        p[17] = 0;
        p[18] = 0;
        p[19] = 0;
        qr__put_u32(p + 20, (uint32_t)e->data.len);
        p += QR_CODEC_ENTRY_HEADER_SIZE;
        if (e->data.len > 0) {
            memcpy(p, e->data.base, e->data.len);
            p += e->data.len;
        }
    }
    return p;
}

static uint8_t *encode_snapshot(const struct qr_msg *msg, uint8_t *p)
{
    const struct qr_snapshot_meta *meta = msg->snapshot;
    size_t config_size = qr_core_config_encoded_size(&meta->config);
    QR_ASSERT(config_size <= QR_CODEC_CONFIG_SIZE_MAX);
    qr__put_u64(p, meta->index);
    qr__put_u64(p + 8, meta->term);
    qr__put_u64(p + 16, meta->size);
    qr__put_u32(p + 24, meta->crc);
    qr__put_u32(p + 28, 0);
    qr__put_u32(p + 32, (uint32_t)config_size);
    p += QR_CODEC_SNAPSHOT_HEADER_SIZE;
    qr_core_config_encode(&meta->config, p); /* Asserts the configuration is valid. */
    p += config_size;
    if (msg->data.len > 0) {
        memcpy(p, msg->data.base, msg->data.len);
        p += msg->data.len;
    }
    return p;
}

void qr__codec_encode(const struct qr_msg *msg, uint8_t *buf)
{
    QR_ASSERT(msg != NULL && buf != NULL);
    encode_check(msg);
    QR_DEBUG_ASSERT(qr__codec_encoded_size(msg) != SIZE_MAX);
    uint8_t *p = encode_header(msg, buf);
    if (msg->type == QR_MSG_APPEND) {
        p = encode_entries(msg, p);
    } else if (msg->type == QR_MSG_SNAPSHOT) {
        p = encode_snapshot(msg, p);
    }
    QR_DEBUG_ASSERT((size_t)(p - buf) == qr__codec_encoded_size(msg));
    (void)p; /* Used only by the debug assertion above. */
}

int qr__codec_encode_frame(const struct qr_msg *msg,
                           uint32_t frame_size_max,
                           uint8_t *buf,
                           size_t buf_size)
{
    QR_ASSERT(msg != NULL);
    size_t body_size = qr__codec_encoded_size(msg);
    if (body_size > frame_size_max) {
        return QR_ETOOBIG;
    }
    QR_ASSERT(buf != NULL && buf_size >= QR_FRAME_HEADER_SIZE + body_size);
    qr__codec_encode(msg, buf + QR_FRAME_HEADER_SIZE);
    qr__frame_header_encode(QR_FRAME_MSG, buf + QR_FRAME_HEADER_SIZE, body_size, buf);
    return 0;
}

/* ---- Message decoding ----------------------------------------------------------------------- */

void qr__codec_decoder_init(struct qr_msg_decoder *decoder)
{
    QR_ASSERT(decoder != NULL);
    memset(decoder, 0, sizeof(*decoder));
}

void qr__codec_decoder_close(struct qr_msg_decoder *decoder)
{
    if (decoder == NULL) {
        return;
    }
    qr_free(decoder->entries);
    memset(decoder, 0, sizeof(*decoder));
}

void qr__codec_decoder_reset(struct qr_msg_decoder *decoder)
{
    QR_ASSERT(decoder != NULL);
    if (decoder->entries_capacity > QR_CODEC_ENTRIES_RETAIN_COUNT) {
        qr_free(decoder->entries);
        decoder->entries = NULL;
        decoder->entries_capacity = 0;
    }
    memset(&decoder->snapshot, 0, sizeof(decoder->snapshot));
}

/*
 * Makes room for `count` entries. The old contents are dead (the previous message is
 * invalid once a decode starts), so growing frees and allocates instead of copying.
 */
static int decoder_reserve(struct qr_msg_decoder *d, size_t count)
{
    bool is_oversized = d->entries_capacity > QR_CODEC_ENTRIES_RETAIN_COUNT &&
                        count <= QR_CODEC_ENTRIES_RETAIN_COUNT;
    if (count <= d->entries_capacity && !is_oversized) {
        return 0;
    }
    size_t capacity = count < ENTRIES_CAPACITY_MIN ? ENTRIES_CAPACITY_MIN : count;
    QR_ASSERT(capacity <= SIZE_MAX / sizeof(struct qr_entry));
    qr_free(d->entries);
    d->entries = NULL;
    d->entries_capacity = 0;
    d->entries = qr_malloc(capacity * sizeof(struct qr_entry));
    if (d->entries == NULL) {
        return QR_ENOMEM;
    }
    d->entries_capacity = capacity;
    return 0;
}

/* The fixed part of every message. */
static int decode_header(struct qr_buf body, struct qr_msg *m, char *errmsg)
{
    const uint8_t *p = body.base;
    if (body.len < QR_CODEC_MSG_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO, "peer message: %zu bytes, the header alone needs %d",
                        body.len, QR_CODEC_MSG_HEADER_SIZE);
    }
    if (p[0] != QR_CORE_PROTOCOL_VERSION) {
        return qr__errf(errmsg, QR_EVERSION,
                        "peer message: protocol version %u not supported, expected %d", p[0],
                        QR_CORE_PROTOCOL_VERSION);
    }
    if (!msg_type_is_valid(p[1])) {
        return qr__errf(errmsg, QR_EPROTO, "peer message at body byte 1: type %u out of range",
                        p[1]);
    }
    if ((p[2] & ~FLAGS_KNOWN) != 0 || p[3] != 0) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message at body byte 2: flags 0x%02x reserved 0x%02x, unknown bits",
                        p[2], p[3]);
    }
    m->type = (enum qr_msg_type)p[1];
    m->prevote = (p[2] & FLAG_PREVOTE) != 0;
    m->transfer = (p[2] & FLAG_TRANSFER) != 0;
    m->reject = (p[2] & FLAG_REJECT) != 0;
    m->last_chunk = (p[2] & FLAG_LAST_CHUNK) != 0;
    m->chunk_size = qr__get_u32(p + 4);
    uint64_t *fields[MSG_U64_FIELDS_COUNT] = {&m->from,      &m->to,      &m->term,  &m->log_index,
                                              &m->log_term,  &m->commit,  &m->index, &m->hint_index,
                                              &m->hint_term, &m->context, &m->offset};
    for (size_t i = 0; i < MSG_U64_FIELDS_COUNT; i++) {
        *fields[i] = qr__get_u64(p + 8 + 8 * i);
    }
    return 0;
}

/* One entry at *pos; advances *pos past it. Entry data is a view into the body. */
static int
decode_entry(struct qr_buf body, size_t *pos, uint32_t i, struct qr_entry *e, char *errmsg)
{
    size_t at = *pos;
    if (body.len - at < QR_CODEC_ENTRY_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: append entry %u at body byte %zu: %zu bytes left, its "
                        "header needs %d",
                        i, at, body.len - at, QR_CODEC_ENTRY_HEADER_SIZE);
    }
    const uint8_t *p = body.base + at;
    uint32_t size = qr__get_u32(p + 20);
    if (!entry_type_is_valid(p[16])) {
        return qr__errf(
            errmsg, QR_EPROTO,
            "peer message: append entry %u at body byte %zu: entry type %u out of range", i, at,
            p[16]);
    }
    if (p[17] != 0 || p[18] != 0 || p[19] != 0) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: append entry %u at body byte %zu: reserved bytes not zero",
                        i, at);
    }
    at += QR_CODEC_ENTRY_HEADER_SIZE;
    if (size > body.len - at) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: append entry %u at body byte %zu: data size %u exceeds the "
                        "%zu bytes left",
                        i, *pos, size, body.len - at);
    }
    e->term = qr__get_u64(p);
    e->index = qr__get_u64(p + 8);
    e->type = (enum qr_entry_type)p[16];
    e->data.base = size > 0 ? body.base + at : NULL;
    e->data.len = size;
    *pos = at + size;
    return 0;
}

static int decode_entries(
    struct qr_msg_decoder *d, struct qr_buf body, size_t *pos, struct qr_msg *m, char *errmsg)
{
    size_t at = *pos;
    if (body.len - at < QR_CODEC_ENTRIES_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: append at body byte %zu: %zu bytes left, the entries "
                        "header needs %d",
                        at, body.len - at, QR_CODEC_ENTRIES_HEADER_SIZE);
    }
    uint32_t count = qr__get_u32(body.base + at);
    if (qr__get_u32(body.base + at + 4) != 0) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: append at body byte %zu: reserved bytes not zero", at + 4);
    }
    at += QR_CODEC_ENTRIES_HEADER_SIZE;
    /* Never trust a count before checking it against the bytes that are really there. */
    if (count > (body.len - at) / QR_CODEC_ENTRY_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: append at body byte %zu: %u entries cannot fit in the %zu "
                        "bytes left",
                        at - QR_CODEC_ENTRIES_HEADER_SIZE, count, body.len - at);
    }
    if (decoder_reserve(d, count) != 0) {
        return qr__errf(errmsg, QR_ENOMEM, "peer message: no memory for %u entries", count);
    }
    for (uint32_t i = 0; i < count; i++) {
        int rv = decode_entry(body, &at, i, &d->entries[i], errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    m->entries = count > 0 ? d->entries : NULL;
    m->entries_count = count;
    *pos = at;
    return 0;
}

/* The snapshot's configuration at *pos, of config_size bytes; advances *pos past it. */
static int decode_snapshot_config(struct qr_buf body,
                                  size_t *pos,
                                  uint32_t config_size,
                                  struct qr_config *config_out,
                                  char *errmsg)
{
    size_t at = *pos;
    if (config_size > QR_CODEC_CONFIG_SIZE_MAX || config_size > body.len - at) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: snapshot config at body byte %zu: size %u, at most %u and "
                        "%zu bytes left",
                        at, config_size, QR_CODEC_CONFIG_SIZE_MAX, body.len - at);
    }
    int rv = qr_core_config_decode(body.base + at, config_size, config_out, errmsg);
    if (rv != 0) {
        rv = rv == QR_EVERSION ? QR_EVERSION : QR_EPROTO;
        return qr__err_wrapf(errmsg, rv, "peer message: snapshot config at body byte %zu", at);
    }
    QR_DEBUG_ASSERT(qr_core_config_validate(config_out, NULL) == 0);
    *pos = at + config_size;
    return 0;
}

static int decode_snapshot(
    struct qr_msg_decoder *d, struct qr_buf body, size_t *pos, struct qr_msg *m, char *errmsg)
{
    size_t at = *pos;
    if (body.len - at < QR_CODEC_SNAPSHOT_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: snapshot meta at body byte %zu: %zu bytes left, it needs %d",
                        at, body.len - at, QR_CODEC_SNAPSHOT_HEADER_SIZE);
    }
    const uint8_t *p = body.base + at;
    struct qr_snapshot_meta *meta = &d->snapshot;
    memset(meta, 0, sizeof(*meta));
    meta->index = qr__get_u64(p);
    meta->term = qr__get_u64(p + 8);
    meta->size = qr__get_u64(p + 16);
    meta->crc = qr__get_u32(p + 24);
    if (qr__get_u32(p + 28) != 0) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: snapshot meta at body byte %zu: reserved bytes not zero",
                        at + 28);
    }
    at += QR_CODEC_SNAPSHOT_HEADER_SIZE;
    int rv = decode_snapshot_config(body, &at, qr__get_u32(p + 32), &meta->config, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (m->chunk_size > body.len - at) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: snapshot chunk at body byte %zu: size %u exceeds the %zu "
                        "bytes left",
                        at, m->chunk_size, body.len - at);
    }
    if (m->offset > meta->size || m->chunk_size > meta->size - m->offset) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: snapshot chunk at offset %llu size %u lies outside the "
                        "snapshot's %llu bytes",
                        (unsigned long long)m->offset, m->chunk_size,
                        (unsigned long long)meta->size);
    }
    m->snapshot = meta;
    m->data.base = m->chunk_size > 0 ? body.base + at : NULL;
    m->data.len = m->chunk_size;
    *pos = at + m->chunk_size;
    return 0;
}

int qr__codec_decode(struct qr_msg_decoder *decoder,
                     struct qr_buf body,
                     struct qr_msg *msg_out,
                     char *errmsg)
{
    QR_ASSERT(decoder != NULL && msg_out != NULL);
    QR_ASSERT(body.base != NULL || body.len == 0);
    struct qr_msg m;
    memset(&m, 0, sizeof(m));
    int rv = decode_header(body, &m, errmsg);
    if (rv != 0) {
        return rv;
    }
    size_t pos = QR_CODEC_MSG_HEADER_SIZE;
    if (m.type == QR_MSG_APPEND) {
        rv = decode_entries(decoder, body, &pos, &m, errmsg);
    } else if (m.type == QR_MSG_SNAPSHOT) {
        rv = decode_snapshot(decoder, body, &pos, &m, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    QR_ASSERT(pos <= body.len);
    if (pos != body.len) {
        return qr__errf(errmsg, QR_EPROTO,
                        "peer message: %zu trailing bytes at body byte %zu after a %s message",
                        body.len - pos, pos, qr_msg_type_name(m.type));
    }
    QR_DEBUG_ASSERT(qr__codec_encoded_size(&m) == body.len);
    *msg_out = m;
    return 0;
}
