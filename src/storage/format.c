/*
 * storage/format.c: the byte layouts of meta, segments, batches, records and snapshots.
 *
 * Layer: storage. Pure: it never reads a file itself (snapshot verification reads
 * through a caller-supplied source) and never trusts a byte it decodes. Each
 * layout is written down in quorum/storage.h; offsets in error messages are
 * relative to the buffer given, and the caller adds the file name and base.
 */
#include "storage/format.h"

#include <errno.h>
#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/err.h"

static const uint8_t meta_magic[8] = {'Q', 'R', 'M', 'E', 'T', 'A', 0, 0};
static const uint8_t segment_magic[8] = {'Q', 'R', 'W', 'A', 'L', 'S', 'E', 'G'};
static const uint8_t snapshot_magic[8] = {'Q', 'R', 'S', 'N', 'A', 'P', 'S', 'H'};

/*
 * The common shape of the fixed headers: 8-byte magic, u32 version, u32 size, and
 * a crc of everything before the last 4 bytes in the last 4 bytes. The version is
 * judged only after the crc holds, so a flipped bit is reported as corruption, and
 * the crc sits where the header's own size says, so a newer version with a bigger
 * header is still recognised as "another version" rather than as garbage.
 */
static int header_check(const uint8_t *buf,
                        size_t size,
                        const uint8_t *magic,
                        uint32_t size_expected,
                        const char *what,
                        char *errmsg)
{
    if (size < 16) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 0: %zu bytes, too short for a %s header", size,
                        what);
    }
    if (memcmp(buf, magic, 8) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 0: bad magic, not a %s", what);
    }
    uint32_t version = qr__get_u32(buf + 8);
    uint32_t header_size = qr__get_u32(buf + 12);
    if (header_size < 16 || header_size > size || header_size % 4 != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 12: %s header size %u impossible", what,
                        header_size);
    }
    uint32_t crc = qr__get_u32(buf + header_size - 4);
    if (qr__crc32c(0, buf, header_size - 4) != crc) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset %u: %s header crc mismatch", header_size - 4,
                        what);
    }
    if (version != QR_STORAGE_FORMAT_VERSION) {
        return qr__errf(errmsg, QR_EVERSION,
                        "offset 8: %s written by format version %u, this build reads version %d",
                        what, version, QR_STORAGE_FORMAT_VERSION);
    }
    if (size_expected != 0 && header_size != size_expected) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 12: %s header size %u, expected %u", what,
                        header_size, size_expected);
    }
    return 0;
}

static bool bytes_are_zero(const uint8_t *p, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* ---- meta ---- */

void qr__storage_meta_encode(const struct qr__storage_meta *meta, uint8_t *buf)
{
    QR_ASSERT(meta->cluster_id != 0 && meta->node_id != 0);
    memset(buf, 0, QR__STORAGE_META_SIZE);
    memcpy(buf, meta_magic, 8);
    qr__put_u32(buf + 8, meta->version);
    qr__put_u32(buf + 12, QR__STORAGE_META_SIZE);
    qr__put_u64(buf + 16, meta->cluster_id);
    qr__put_u64(buf + 24, meta->node_id);
    qr__put_u32(buf + 60, qr__crc32c(0, buf, 60));
}

int qr__storage_meta_decode(const uint8_t *buf,
                            size_t size,
                            struct qr__storage_meta *meta_out,
                            char *errmsg)
{
    int rv = header_check(buf, size, meta_magic, QR__STORAGE_META_SIZE, "meta file", errmsg);
    if (rv != 0) {
        return rv;
    }
    if (size != QR__STORAGE_META_SIZE) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset %d: %zu bytes after the meta record",
                        QR__STORAGE_META_SIZE, size - QR__STORAGE_META_SIZE);
    }
    meta_out->version = qr__get_u32(buf + 8);
    meta_out->cluster_id = qr__get_u64(buf + 16);
    meta_out->node_id = qr__get_u64(buf + 24);
    if (meta_out->cluster_id == 0 || meta_out->node_id == 0 || !bytes_are_zero(buf + 32, 28)) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 16: zero id or non-zero reserved bytes");
    }
    return 0;
}

/* ---- segment header ---- */

void qr__storage_segment_header_encode(const struct qr__storage_segment_header *header,
                                       uint8_t *buf)
{
    QR_ASSERT(header->seq >= 1 && header->first_seq >= 1);
    memset(buf, 0, QR__STORAGE_SEGMENT_HEADER_SIZE);
    memcpy(buf, segment_magic, 8);
    qr__put_u32(buf + 8, header->version);
    qr__put_u32(buf + 12, QR__STORAGE_SEGMENT_HEADER_SIZE);
    qr__put_u64(buf + 16, header->cluster_id);
    qr__put_u64(buf + 24, header->node_id);
    qr__put_u64(buf + 32, header->seq);
    qr__put_u64(buf + 40, header->prev_index);
    qr__put_u64(buf + 48, header->first_seq);
    qr__put_u64(buf + 56, header->hard_state.term);
    qr__put_u64(buf + 64, header->hard_state.vote);
    qr__put_u64(buf + 72, header->hard_state.commit);
    qr__put_u32(buf + 92, qr__crc32c(0, buf, 92));
}

int qr__storage_segment_header_decode(const uint8_t *buf,
                                      size_t size,
                                      struct qr__storage_segment_header *header_out,
                                      char *errmsg)
{
    int rv = header_check(buf, size, segment_magic, QR__STORAGE_SEGMENT_HEADER_SIZE, "wal segment",
                          errmsg);
    if (rv != 0) {
        return rv;
    }
    header_out->version = qr__get_u32(buf + 8);
    header_out->cluster_id = qr__get_u64(buf + 16);
    header_out->node_id = qr__get_u64(buf + 24);
    header_out->seq = qr__get_u64(buf + 32);
    header_out->prev_index = qr__get_u64(buf + 40);
    header_out->first_seq = qr__get_u64(buf + 48);
    header_out->hard_state.term = qr__get_u64(buf + 56);
    header_out->hard_state.vote = qr__get_u64(buf + 64);
    header_out->hard_state.commit = qr__get_u64(buf + 72);
    if (header_out->seq == 0 || header_out->first_seq == 0 || !bytes_are_zero(buf + 80, 12)) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 32: zero seq or non-zero reserved bytes");
    }
    return 0;
}

/* ---- batches ---- */

void qr__storage_batch_header_encode(const struct qr__storage_batch_header *header, uint8_t *buf)
{
    QR_ASSERT(header->seq >= 1 && header->group_seq >= 1 && header->group_seq <= header->seq);
    QR_ASSERT(header->body_size % 8 == 0 && header->records_count >= 1);
    QR_ASSERT((header->first_index == 0) == (header->entries_count == 0));
    qr__put_u32(buf, QR__STORAGE_BATCH_MAGIC);
    qr__put_u64(buf + 8, header->seq);
    qr__put_u64(buf + 16, header->group_seq);
    qr__put_u64(buf + 24, header->first_index);
    qr__put_u32(buf + 32, header->entries_count);
    qr__put_u32(buf + 36, header->records_count);
    qr__put_u32(buf + 40, header->body_size);
    qr__put_u32(buf + 44, header->body_crc);
    qr__put_u32(buf + 4, qr__crc32c(0, buf + 8, QR__STORAGE_BATCH_HEADER_SIZE - 8));
}

static bool batch_fields_are_valid(const struct qr__storage_batch_header *h)
{
    if (h->seq == 0 || h->group_seq == 0 || h->group_seq > h->seq) {
        return false;
    }
    if ((h->first_index == 0) != (h->entries_count == 0)) {
        return false;
    }
    if (h->entries_count > 0 && h->first_index > UINT64_MAX - h->entries_count) {
        return false;
    }
    /* Every record takes at least 16 bytes, and there are at most two besides entries. */
    if (h->records_count == 0 || h->records_count < h->entries_count ||
        h->records_count - h->entries_count > 2 || (uint64_t)h->records_count * 16 > h->body_size) {
        return false;
    }
    return h->body_size % 8 == 0 && h->body_size <= QR__STORAGE_BODY_SIZE_MAX;
}

enum qr__storage_batch_status qr__storage_batch_check(const uint8_t *buf,
                                                      size_t size,
                                                      struct qr__storage_batch_header *header_out)
{
    if (size < QR__STORAGE_BATCH_HEADER_SIZE) {
        return QR__BATCH_EOF;
    }
    uint32_t magic = qr__get_u32(buf);
    if (magic != QR__STORAGE_BATCH_MAGIC) {
        return bytes_are_zero(buf, QR__STORAGE_BATCH_HEADER_SIZE) ? QR__BATCH_ZERO
                                                                  : QR__BATCH_BAD_MAGIC;
    }
    if (qr__crc32c(0, buf + 8, QR__STORAGE_BATCH_HEADER_SIZE - 8) != qr__get_u32(buf + 4)) {
        return QR__BATCH_BAD_HEADER;
    }
    struct qr__storage_batch_header h = {
        .seq = qr__get_u64(buf + 8),
        .group_seq = qr__get_u64(buf + 16),
        .first_index = qr__get_u64(buf + 24),
        .entries_count = qr__get_u32(buf + 32),
        .records_count = qr__get_u32(buf + 36),
        .body_size = qr__get_u32(buf + 40),
        .body_crc = qr__get_u32(buf + 44),
    };
    if (!batch_fields_are_valid(&h)) {
        return QR__BATCH_BAD_FIELDS;
    }
    if (h.body_size > size - QR__STORAGE_BATCH_HEADER_SIZE) {
        return QR__BATCH_SHORT;
    }
    if (qr__crc32c(0, buf + QR__STORAGE_BATCH_HEADER_SIZE, h.body_size) != h.body_crc) {
        return QR__BATCH_BAD_BODY;
    }
    *header_out = h;
    return QR__BATCH_OK;
}

const char *qr__storage_batch_status_text(enum qr__storage_batch_status status)
{
    switch (status) {
    case QR__BATCH_OK:
        return "valid batch";
    case QR__BATCH_EOF:
        return "file ends inside a batch header";
    case QR__BATCH_ZERO:
        return "zero bytes where a batch header should be";
    case QR__BATCH_BAD_MAGIC:
        return "bad batch magic";
    case QR__BATCH_BAD_HEADER:
        return "batch header crc mismatch";
    case QR__BATCH_BAD_FIELDS:
        return "impossible batch header fields";
    case QR__BATCH_SHORT:
        return "batch body runs past the end of the file";
    case QR__BATCH_BAD_BODY:
        return "batch body crc mismatch";
    }
    return "?";
}

/* ---- records ---- */

uint64_t qr__storage_entry_record_size(size_t data_size)
{
    return QR__STORAGE_RECORD_HEADER_SIZE +
           qr__storage_pad8(QR__STORAGE_ENTRY_FIXED_SIZE + (uint64_t)data_size);
}

static uint8_t *record_put_header(uint8_t *p, enum qr__storage_record_type type, uint32_t size)
{
    p[0] = (uint8_t)type;
    p[1] = 0;
    p[2] = 0;
    p[3] = 0;
    qr__put_u32(p + 4, size);
    return p + QR__STORAGE_RECORD_HEADER_SIZE;
}

uint8_t *qr__storage_record_put_entry(uint8_t *p, const struct qr_entry *entry)
{
    QR_ASSERT(entry->index >= 1 && entry->term >= 1);
    QR_ASSERT(entry->data.len <= QR_STORAGE_ENTRY_SIZE_MAX);
    size_t payload = QR__STORAGE_ENTRY_FIXED_SIZE + entry->data.len;
    p = record_put_header(p, QR__RECORD_ENTRY, (uint32_t)payload);
    qr__put_u64(p, entry->index);
    qr__put_u64(p + 8, entry->term);
    qr__put_u32(p + 16, (uint32_t)entry->type);
    qr__put_u32(p + 20, 0);
    if (entry->data.len > 0) {
        memcpy(p + QR__STORAGE_ENTRY_FIXED_SIZE, entry->data.base, entry->data.len);
    }
    size_t padded = (size_t)qr__storage_pad8(payload);
    memset(p + payload, 0, padded - payload); /* Pad bytes are zero: the crc covers them. */
    return p + padded;
}

uint8_t *qr__storage_record_put_hard_state(uint8_t *p, const struct qr_hard_state *hard_state)
{
    p = record_put_header(p, QR__RECORD_HARD_STATE, QR__STORAGE_HARD_STATE_SIZE);
    qr__put_u64(p, hard_state->term);
    qr__put_u64(p + 8, hard_state->vote);
    qr__put_u64(p + 16, hard_state->commit);
    return p + QR__STORAGE_HARD_STATE_SIZE;
}

uint8_t *qr__storage_record_put_reset(uint8_t *p, qr_index index, qr_term term)
{
    p = record_put_header(p, QR__RECORD_RESET, QR__STORAGE_RESET_SIZE);
    qr__put_u64(p, index);
    qr__put_u64(p + 8, term);
    return p + QR__STORAGE_RESET_SIZE;
}

uint8_t *qr__storage_record_put_seal(uint8_t *p, qr_index index, uint64_t seq)
{
    p = record_put_header(p, QR__RECORD_SEAL, QR__STORAGE_SEAL_SIZE);
    qr__put_u64(p, index);
    qr__put_u64(p + 8, seq);
    return p + QR__STORAGE_SEAL_SIZE;
}

static int record_decode_entry(
    const uint8_t *p, size_t payload, size_t at, struct qr__storage_record *r, char *errmsg)
{
    if (payload < QR__STORAGE_ENTRY_FIXED_SIZE ||
        payload - QR__STORAGE_ENTRY_FIXED_SIZE > QR_STORAGE_ENTRY_SIZE_MAX) {
        return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: entry record size %zu", at, payload);
    }
    r->entry.index = qr__get_u64(p);
    r->entry.term = qr__get_u64(p + 8);
    uint32_t type = qr__get_u32(p + 16);
    if (r->entry.index == 0 || r->entry.term == 0 || type < QR_ENTRY_NORMAL ||
        type > QR_ENTRY_CONFIG || qr__get_u32(p + 20) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "body offset %zu: entry with index %llu term %llu type %u is invalid", at,
                        (unsigned long long)r->entry.index, (unsigned long long)r->entry.term,
                        type);
    }
    r->entry.type = (enum qr_entry_type)type;
    r->entry.data.len = payload - QR__STORAGE_ENTRY_FIXED_SIZE;
    /* A view into the body; the cast drops const only because struct qr_buf has none. */
    r->entry.data.base = r->entry.data.len > 0 ? (uint8_t *)(uintptr_t)(p + 24) : NULL;
    return 0;
}

static int record_decode_payload(
    const uint8_t *p, size_t payload, size_t at, struct qr__storage_record *r, char *errmsg)
{
    switch (r->type) {
    case QR__RECORD_ENTRY:
        return record_decode_entry(p, payload, at, r, errmsg);
    case QR__RECORD_HARD_STATE:
        if (payload != QR__STORAGE_HARD_STATE_SIZE) {
            break;
        }
        r->hard_state.term = qr__get_u64(p);
        r->hard_state.vote = qr__get_u64(p + 8);
        r->hard_state.commit = qr__get_u64(p + 16);
        return 0;
    case QR__RECORD_RESET:
    case QR__RECORD_SEAL:
        if (payload != QR__STORAGE_RESET_SIZE) {
            break;
        }
        r->index = qr__get_u64(p);
        r->term = r->type == QR__RECORD_RESET ? qr__get_u64(p + 8) : 0;
        r->seq = r->type == QR__RECORD_SEAL ? qr__get_u64(p + 8) : 0;
        return 0;
    }
    return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: record type %d with payload size %zu",
                    at, (int)r->type, payload);
}

int qr__storage_record_next(const uint8_t *body,
                            size_t body_size,
                            size_t *pos,
                            struct qr__storage_record *record_out,
                            char *errmsg)
{
    size_t at = *pos;
    QR_ASSERT(at % 8 == 0 && at <= body_size);
    if (body_size - at < QR__STORAGE_RECORD_HEADER_SIZE) {
        return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: record header runs past the body",
                        at);
    }
    const uint8_t *p = body + at;
    uint8_t type = p[0];
    size_t payload = qr__get_u32(p + 4);
    if (type < QR__RECORD_ENTRY || type > QR__RECORD_SEAL || p[1] != 0 || p[2] != 0 || p[3] != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: unknown record type %u", at, type);
    }
    size_t room = body_size - at - QR__STORAGE_RECORD_HEADER_SIZE;
    if (payload > room || qr__storage_pad8(payload) > room) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "body offset %zu: record of %zu bytes runs past the body", at, payload);
    }
    memset(record_out, 0, sizeof(*record_out));
    record_out->type = (enum qr__storage_record_type)type;
    const uint8_t *payload_at = p + QR__STORAGE_RECORD_HEADER_SIZE;
    int rv = record_decode_payload(payload_at, payload, at, record_out, errmsg);
    if (rv != 0) {
        return rv;
    }
    size_t padded = (size_t)qr__storage_pad8(payload);
    if (!bytes_are_zero(payload_at + payload, padded - payload)) {
        return qr__errf(errmsg, QR_ECORRUPT, "body offset %zu: non-zero padding", at);
    }
    *pos = at + QR__STORAGE_RECORD_HEADER_SIZE + padded;
    return 0;
}

/* ---- snapshot header ---- */

uint32_t qr__storage_snapshot_header_size(const struct qr_config *config)
{
    QR_ASSERT(config->voters_count <= QR_CORE_MEMBERS_MAX &&
              config->voters_old_count <= QR_CORE_MEMBERS_MAX &&
              config->learners_count <= QR_CORE_MEMBERS_MAX);
    uint32_t ids = config->voters_count + config->voters_old_count + config->learners_count;
    return QR__STORAGE_SNAPSHOT_HEADER_FIXED + ids * 8 + 8;
}

static uint8_t *put_ids(uint8_t *p, const qr_node_id *ids, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        qr__put_u64(p, ids[i]);
        p += 8;
    }
    return p;
}

void qr__storage_snapshot_header_encode(const struct qr__storage_snapshot_header *header,
                                        uint8_t *buf)
{
    const struct qr_snapshot_meta *m = &header->meta;
    uint32_t size = qr__storage_snapshot_header_size(&m->config);
    QR_ASSERT(size == header->header_size && m->index >= 1 && m->term >= 1);
    QR_ASSERT(header->chunk_size >= QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MIN &&
              header->chunk_size <= QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MAX);
    memset(buf, 0, size);
    memcpy(buf, snapshot_magic, 8);
    qr__put_u32(buf + 8, header->version);
    qr__put_u32(buf + 12, size);
    qr__put_u64(buf + 16, header->cluster_id);
    qr__put_u64(buf + 24, header->node_id);
    qr__put_u64(buf + 32, m->index);
    qr__put_u64(buf + 40, m->term);
    qr__put_u64(buf + 48, m->size);
    qr__put_u32(buf + 56, m->crc);
    qr__put_u32(buf + 60, header->chunk_size);
    qr__put_u32(buf + 64, m->config.voters_count);
    qr__put_u32(buf + 68, m->config.voters_old_count);
    qr__put_u32(buf + 72, m->config.learners_count);
    uint8_t *p = buf + QR__STORAGE_SNAPSHOT_HEADER_FIXED;
    p = put_ids(p, m->config.voters, m->config.voters_count);
    p = put_ids(p, m->config.voters_old, m->config.voters_old_count);
    p = put_ids(p, m->config.learners, m->config.learners_count);
    QR_ASSERT(p + 8 == buf + size);
    qr__put_u32(buf + size - 4, qr__crc32c(0, buf, size - 4));
}

static int get_ids(const uint8_t *p, qr_node_id *ids, uint32_t count, size_t at, char *errmsg)
{
    for (uint32_t i = 0; i < count; i++) {
        ids[i] = qr__get_u64(p + (size_t)i * 8);
        if (ids[i] == 0) {
            return qr__errf(errmsg, QR_ECORRUPT, "offset %zu: node id 0 in the configuration",
                            at + (size_t)i * 8);
        }
    }
    return 0;
}

static int snapshot_header_decode_config(const uint8_t *buf,
                                         uint32_t header_size,
                                         struct qr_config *c,
                                         char *errmsg)
{
    memset(c, 0, sizeof(*c));
    c->voters_count = qr__get_u32(buf + 64);
    c->voters_old_count = qr__get_u32(buf + 68);
    c->learners_count = qr__get_u32(buf + 72);
    if (c->voters_count == 0 || c->voters_count > QR_CORE_MEMBERS_MAX ||
        c->voters_old_count > QR_CORE_MEMBERS_MAX || c->learners_count > QR_CORE_MEMBERS_MAX ||
        qr__get_u32(buf + 76) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 64: configuration counts %u/%u/%u invalid",
                        c->voters_count, c->voters_old_count, c->learners_count);
    }
    if (qr__storage_snapshot_header_size(c) != header_size) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "offset 12: header size %u does not match the "
                        "configuration",
                        header_size);
    }
    size_t at = QR__STORAGE_SNAPSHOT_HEADER_FIXED;
    int rv = get_ids(buf + at, c->voters, c->voters_count, at, errmsg);
    at += (size_t)c->voters_count * 8;
    if (rv == 0) {
        rv = get_ids(buf + at, c->voters_old, c->voters_old_count, at, errmsg);
    }
    at += (size_t)c->voters_old_count * 8;
    if (rv == 0) {
        rv = get_ids(buf + at, c->learners, c->learners_count, at, errmsg);
    }
    if (rv == 0 && qr__get_u32(buf + header_size - 8) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset %u: non-zero reserved bytes", header_size - 8);
    }
    return rv;
}

int qr__storage_snapshot_header_decode(const uint8_t *buf,
                                       size_t size,
                                       struct qr__storage_snapshot_header *header_out,
                                       char *errmsg)
{
    int rv = header_check(buf, size, snapshot_magic, 0, "snapshot", errmsg);
    if (rv != 0) {
        return rv;
    }
    struct qr__storage_snapshot_header *h = header_out;
    memset(h, 0, sizeof(*h));
    h->version = qr__get_u32(buf + 8);
    h->header_size = qr__get_u32(buf + 12);
    if (h->header_size < QR__STORAGE_SNAPSHOT_HEADER_FIXED + 8 + 8) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 12: snapshot header size %u too small",
                        h->header_size);
    }
    h->cluster_id = qr__get_u64(buf + 16);
    h->node_id = qr__get_u64(buf + 24);
    h->meta.index = qr__get_u64(buf + 32);
    h->meta.term = qr__get_u64(buf + 40);
    h->meta.size = qr__get_u64(buf + 48);
    h->meta.crc = qr__get_u32(buf + 56);
    h->chunk_size = qr__get_u32(buf + 60);
    if (h->meta.index == 0 || h->meta.term == 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 32: snapshot index or term is 0");
    }
    uint32_t chunk = h->chunk_size;
    if (chunk < QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MIN ||
        chunk > QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MAX || (chunk & (chunk - 1)) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "offset 60: chunk size %u invalid", chunk);
    }
    return snapshot_header_decode_config(buf, h->header_size, &h->meta.config, errmsg);
}

uint64_t qr__storage_snapshot_chunks_count(uint64_t data_size, uint32_t chunk_size)
{
    QR_ASSERT(chunk_size > 0);
    return data_size / chunk_size + (data_size % chunk_size != 0 ? 1 : 0);
}

uint64_t qr__storage_snapshot_trailer_size(uint64_t chunks_count)
{
    return chunks_count * 4 + 8;
}

/* ---- snapshot verification ---- */

static int source_read(
    const struct qr__storage_source *source, uint64_t offset, void *buf, size_t size, char *errmsg)
{
    int rv = source->read(source->ctx, offset, buf, size);
    if (rv != 0) {
        return qr__err_os(errmsg, rv < 0 ? -rv : EIO, "offset %llu: read",
                          (unsigned long long)offset);
    }
    return 0;
}

/* Checks that the file is exactly header + data + trailer long; returns the trailer size. */
static int snapshot_check_size(const struct qr__storage_source *source,
                               const struct qr__storage_snapshot_header *h,
                               uint64_t *trailer_size_out,
                               char *errmsg)
{
    uint64_t chunks = qr__storage_snapshot_chunks_count(h->meta.size, h->chunk_size);
    uint64_t trailer = qr__storage_snapshot_trailer_size(chunks);
    if (h->meta.size > source->size || source->size - h->meta.size < h->header_size ||
        source->size - h->meta.size - h->header_size != trailer) {
        uint64_t need =
            (uint64_t)h->header_size + h->meta.size + trailer; /* May wrap: shown only. */
        return qr__errf(errmsg, QR_ECORRUPT,
                        "offset 48: file is %llu bytes, but header (%u), data (%llu) and trailer "
                        "(%llu) need %llu",
                        (unsigned long long)source->size, h->header_size,
                        (unsigned long long)h->meta.size, (unsigned long long)trailer,
                        (unsigned long long)need);
    }
    *trailer_size_out = trailer;
    return 0;
}

static int snapshot_read_trailer(const struct qr__storage_source *source,
                                 const struct qr__storage_snapshot_header *h,
                                 uint64_t trailer_size,
                                 uint32_t **chunk_crcs_out,
                                 char *errmsg)
{
    uint64_t at = h->header_size + h->meta.size;
    uint8_t *trailer = qr_malloc((size_t)trailer_size);
    if (trailer == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "offset %llu: no memory for a trailer of %llu bytes",
                        (unsigned long long)at, (unsigned long long)trailer_size);
    }
    int rv = source_read(source, at, trailer, (size_t)trailer_size, errmsg);
    uint64_t chunks = (trailer_size - 8) / 4;
    if (rv == 0 && qr__crc32c(0, trailer, (size_t)trailer_size - 4) !=
                       qr__get_u32(trailer + trailer_size - 4)) {
        rv = qr__errf(errmsg, QR_ECORRUPT, "offset %llu: snapshot trailer crc mismatch",
                      (unsigned long long)(at + trailer_size - 4));
    }
    if (rv == 0 && qr__get_u32(trailer + trailer_size - 8) != chunks) {
        rv = qr__errf(errmsg, QR_ECORRUPT, "offset %llu: trailer counts %u chunks, expected %llu",
                      (unsigned long long)(at + trailer_size - 8),
                      qr__get_u32(trailer + trailer_size - 8), (unsigned long long)chunks);
    }
    if (rv != 0) {
        qr_free(trailer);
        return rv;
    }
    uint32_t *crcs = qr_malloc((size_t)(chunks > 0 ? chunks : 1) * sizeof(uint32_t));
    if (crcs == NULL) {
        qr_free(trailer);
        return qr__errf(errmsg, QR_ENOMEM, "no memory for chunk crcs");
    }
    for (uint64_t i = 0; i < chunks; i++) {
        crcs[i] = qr__get_u32(trailer + i * 4);
    }
    qr_free(trailer);
    *chunk_crcs_out = crcs;
    return 0;
}

int qr__storage_snapshot_open(const struct qr__storage_source *source,
                              struct qr__storage_snapshot_header *header_out,
                              uint32_t **chunk_crcs_out,
                              char *errmsg)
{
    uint8_t buf[QR__STORAGE_SNAPSHOT_HEADER_SIZE_MAX];
    size_t size = source->size < sizeof(buf) ? (size_t)source->size : sizeof(buf);
    int rv = source_read(source, 0, buf, size, errmsg);
    if (rv != 0) {
        return rv;
    }
    rv = qr__storage_snapshot_header_decode(buf, size, header_out, errmsg);
    if (rv != 0) {
        return rv;
    }
    uint64_t trailer_size = 0;
    rv = snapshot_check_size(source, header_out, &trailer_size, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (trailer_size > ((uint64_t)64 << 20)) {
        /* 64 MiB of crcs is 16 TiB of data at the smallest useful chunk: refuse, not allocate. */
        return qr__errf(errmsg, QR_ECORRUPT, "offset 48: trailer of %llu bytes is too large",
                        (unsigned long long)trailer_size);
    }
    return snapshot_read_trailer(source, header_out, trailer_size, chunk_crcs_out, errmsg);
}

int qr__storage_snapshot_verify(const struct qr__storage_source *source,
                                const struct qr__storage_snapshot_header *header,
                                const uint32_t *chunk_crcs,
                                uint8_t *chunk_buf,
                                size_t chunk_buf_size,
                                char *errmsg)
{
    uint64_t size = header->meta.size;
    uint64_t chunks = qr__storage_snapshot_chunks_count(size, header->chunk_size);
    QR_ASSERT(chunk_buf_size >= header->chunk_size || chunk_buf_size >= size);
    uint32_t whole = 0;
    for (uint64_t i = 0; i < chunks; i++) {
        uint64_t off = i * header->chunk_size;
        size_t len = (size_t)(size - off < header->chunk_size ? size - off : header->chunk_size);
        int rv = source_read(source, header->header_size + off, chunk_buf, len, errmsg);
        if (rv != 0) {
            return rv;
        }
        uint32_t crc = qr__crc32c(0, chunk_buf, len);
        if (crc != chunk_crcs[i]) {
            uint64_t at = header->header_size + off;
            return qr__errf(errmsg, QR_ECORRUPT,
                            "offset %llu: snapshot data chunk %llu (%zu bytes) crc mismatch",
                            (unsigned long long)at, (unsigned long long)i, len);
        }
        whole = qr__crc32c(whole, chunk_buf, len);
    }
    if (whole != header->meta.crc) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "offset 56: data crc %08x does not match the header's %08x", whole,
                        header->meta.crc);
    }
    return 0;
}
