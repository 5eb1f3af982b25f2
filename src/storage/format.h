/*
 * storage/format.h: encoding and decoding of every on-disk structure of storage.
 *
 * Layer: storage. Pure functions over byte buffers: no I/O, no allocation.
 * The layouts are described in quorum/storage.h. Every decoder treats its
 * input as hostile (DESIGN rule 4): it checks magic, size, checksum and every
 * field before trusting any of them, and its error message names the byte
 * offset (relative to the buffer it was given) of what is wrong. Encoders
 * assert what decoders check (STYLE §6, paired assertions).
 */
#ifndef QR_STORAGE_FORMAT_H
#define QR_STORAGE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorum/core.h"
#include "quorum/storage.h"

#define QR__STORAGE_META_SIZE           64
#define QR__STORAGE_SEGMENT_HEADER_SIZE 96
#define QR__STORAGE_BATCH_HEADER_SIZE   48
#define QR__STORAGE_RECORD_HEADER_SIZE  8
#define QR__STORAGE_ENTRY_FIXED_SIZE    24 /* index, term, type, zero */
#define QR__STORAGE_HARD_STATE_SIZE     24
#define QR__STORAGE_RESET_SIZE          16
#define QR__STORAGE_SEAL_SIZE           16
#define QR__STORAGE_BATCH_MAGIC         UINT32_C(0x31425751) /* "QWB1" */
/* A batch holding one seal record: what must stay free at the end of a segment. */
#define QR__STORAGE_SEAL_BATCH_SIZE \
    (QR__STORAGE_BATCH_HEADER_SIZE + QR__STORAGE_RECORD_HEADER_SIZE + QR__STORAGE_SEAL_SIZE)
/* Largest body: a batch never exceeds a segment. */
#define QR__STORAGE_BODY_SIZE_MAX (QR_STORAGE_SEGMENT_SIZE_MAX - QR__STORAGE_SEGMENT_HEADER_SIZE)

#define QR__STORAGE_SNAPSHOT_HEADER_FIXED 80
#define QR__STORAGE_SNAPSHOT_HEADER_SIZE_MAX \
    (QR__STORAGE_SNAPSHOT_HEADER_FIXED + 3 * QR_CORE_MEMBERS_MAX * 8 + 8)
/* Snapshot data is checksummed per chunk (so an error names its offset) and as a whole. */
#define QR__STORAGE_SNAPSHOT_CHUNK_SIZE     ((uint32_t)1 << 20)
#define QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MIN ((uint32_t)64)
#define QR__STORAGE_SNAPSHOT_CHUNK_SIZE_MAX ((uint32_t)64 << 20)

_Static_assert(QR__STORAGE_SEGMENT_HEADER_SIZE % 8 == 0, "batches start 8-byte aligned");
_Static_assert(QR__STORAGE_BATCH_HEADER_SIZE % 8 == 0, "bodies start 8-byte aligned");
_Static_assert(QR__STORAGE_SEGMENT_HEADER_SIZE + QR__STORAGE_SEAL_BATCH_SIZE +
                       QR__STORAGE_BATCH_HEADER_SIZE <
                   QR_STORAGE_SEGMENT_SIZE_MIN,
               "the smallest segment holds a header, a batch and a seal");
_Static_assert(QR_STORAGE_SEGMENT_SIZE_MAX < UINT32_MAX, "body sizes fit in u32");

/* Round a size up to a multiple of 8. */
static inline uint64_t qr__storage_pad8(uint64_t size)
{
    return (size + 7) & ~(uint64_t)7;
}

/* ---- meta ---- */

struct qr__storage_meta {
    uint32_t version;
    uint64_t cluster_id;
    uint64_t node_id;
};

void qr__storage_meta_encode(const struct qr__storage_meta *meta, uint8_t *buf);
/* QR_ECORRUPT (bad magic, size or crc), QR_EVERSION (a valid header of another version). */
int qr__storage_meta_decode(const uint8_t *buf,
                            size_t size,
                            struct qr__storage_meta *meta_out,
                            char *errmsg);

/* ---- segment header ---- */

struct qr__storage_segment_header {
    uint32_t version;
    uint64_t cluster_id;
    uint64_t node_id;
    uint64_t seq;                    /* File number, from 1. */
    qr_index prev_index;             /* Last log index when the segment was created. */
    uint64_t first_seq;              /* Seq of the first batch in this segment. */
    struct qr_hard_state hard_state; /* When the segment was created. */
};

void qr__storage_segment_header_encode(const struct qr__storage_segment_header *header,
                                       uint8_t *buf);
int qr__storage_segment_header_decode(const uint8_t *buf,
                                      size_t size,
                                      struct qr__storage_segment_header *header_out,
                                      char *errmsg);

/* ---- batches and records ---- */

struct qr__storage_batch_header {
    uint64_t seq;           /* From 1, +1 per batch over the whole log. */
    uint64_t group_seq;     /* First batch written since the last fdatasync; <= seq. */
    qr_index first_index;   /* 0 when no entries. */
    uint32_t entries_count; /* 0 iff first_index is 0. */
    uint32_t records_count; /* >= 1. */
    uint32_t body_size;     /* Multiple of 8. */
    uint32_t body_crc;      /* CRC32C of the body. */
};

/* Why bytes are not a valid batch. */
enum qr__storage_batch_status {
    QR__BATCH_OK = 0,
    QR__BATCH_EOF = 1,        /* Fewer bytes than a batch header. */
    QR__BATCH_ZERO = 2,       /* An all-zero header: unwritten space. */
    QR__BATCH_BAD_MAGIC = 3,  /* Not zero, not a batch. */
    QR__BATCH_BAD_HEADER = 4, /* Header crc mismatch. */
    QR__BATCH_BAD_FIELDS = 5, /* Header crc fine, fields impossible. */
    QR__BATCH_SHORT = 6,      /* The body runs past the end of the data. */
    QR__BATCH_BAD_BODY = 7,   /* Body crc mismatch. */
};

/* Writes the header (computing its crc) into buf; body_crc must be set already. */
void qr__storage_batch_header_encode(const struct qr__storage_batch_header *header, uint8_t *buf);
/* Checks the batch starting at buf with `size` bytes available (header, body, checksums). */
enum qr__storage_batch_status qr__storage_batch_check(const uint8_t *buf,
                                                      size_t size,
                                                      struct qr__storage_batch_header *header_out);
/* A short lowercase phrase for a status, for error messages. */
const char *qr__storage_batch_status_text(enum qr__storage_batch_status status);

enum qr__storage_record_type {
    QR__RECORD_ENTRY = 1,
    QR__RECORD_HARD_STATE = 2,
    QR__RECORD_RESET = 3,
    QR__RECORD_SEAL = 4,
};

struct qr__storage_record {
    enum qr__storage_record_type type;
    struct qr_entry entry;           /* ENTRY: data is a view into the body. */
    struct qr_hard_state hard_state; /* HARD_STATE. */
    qr_index index;                  /* RESET: the log's new last index. SEAL: last index. */
    qr_term term;                    /* RESET: term at `index`. */
    uint64_t seq;                    /* SEAL: seq of the last batch before the seal. */
};

/* Encoded size of each record, header and padding included. */
uint64_t qr__storage_entry_record_size(size_t data_size);
#define QR__STORAGE_HARD_STATE_RECORD_SIZE (QR__STORAGE_RECORD_HEADER_SIZE + 24)
#define QR__STORAGE_RESET_RECORD_SIZE      (QR__STORAGE_RECORD_HEADER_SIZE + 16)
#define QR__STORAGE_SEAL_RECORD_SIZE       (QR__STORAGE_RECORD_HEADER_SIZE + 16)

/* Each writes one record at p and returns the byte after it. */
uint8_t *qr__storage_record_put_entry(uint8_t *p, const struct qr_entry *entry);
uint8_t *qr__storage_record_put_hard_state(uint8_t *p, const struct qr_hard_state *hard_state);
uint8_t *qr__storage_record_put_reset(uint8_t *p, qr_index index, qr_term term);
uint8_t *qr__storage_record_put_seal(uint8_t *p, qr_index index, uint64_t seq);

/*
 * Decode the record at body[*pos] and advance *pos past it. QR_ECORRUPT with a
 * message naming the offset inside the body when the record is malformed.
 */
int qr__storage_record_next(const uint8_t *body,
                            size_t body_size,
                            size_t *pos,
                            struct qr__storage_record *record_out,
                            char *errmsg);

/* ---- snapshot header and trailer ---- */

struct qr__storage_snapshot_header {
    uint32_t version;
    uint32_t header_size; /* Bytes before the data; depends on the config's sizes. */
    uint64_t cluster_id;
    uint64_t node_id;
    uint32_t chunk_size;          /* Power of two in [CHUNK_SIZE_MIN, CHUNK_SIZE_MAX]. */
    struct qr_snapshot_meta meta; /* index, term, config, size, crc. */
};

/* Header size for a config; the config must be valid (counts within limits). */
uint32_t qr__storage_snapshot_header_size(const struct qr_config *config);
void qr__storage_snapshot_header_encode(const struct qr__storage_snapshot_header *header,
                                        uint8_t *buf);
/* buf holds at most QR__STORAGE_SNAPSHOT_HEADER_SIZE_MAX bytes from the file's start. */
int qr__storage_snapshot_header_decode(const uint8_t *buf,
                                       size_t size,
                                       struct qr__storage_snapshot_header *header_out,
                                       char *errmsg);
/* Number of chunks of a snapshot's data, and the bytes of its trailer. */
uint64_t qr__storage_snapshot_chunks_count(uint64_t data_size, uint32_t chunk_size);
uint64_t qr__storage_snapshot_trailer_size(uint64_t chunks_count);

/*
 * Snapshot verification over any byte source (a file, or memory for the fuzzer):
 * header, file size, trailer, every chunk crc and the whole-data crc, streaming
 * through `chunk_buf` (at least the header's chunk size or the data size, whichever
 * is smaller; the function says how much it needs through chunk_buf_size_needed).
 */
struct qr__storage_source {
    void *ctx;
    uint64_t size; /* Total bytes of the file. */
    /* Reads exactly `size` bytes at `offset`; negative errno or 0. */
    int (*read)(void *ctx, uint64_t offset, void *buf, size_t size);
};

/*
 * Decode and check the header and trailer. On success *trailer_out holds the chunk
 * crcs (qr_malloc'ed, the caller frees it with qr_free).
 * @return 0, QR_ECORRUPT, QR_EVERSION, QR_ENOMEM, QR_EIO (read failure).
 */
int qr__storage_snapshot_open(const struct qr__storage_source *source,
                              struct qr__storage_snapshot_header *header_out,
                              uint32_t **chunk_crcs_out,
                              char *errmsg);
/* Verify every chunk against its crc and the whole data against meta.crc. */
int qr__storage_snapshot_verify(const struct qr__storage_source *source,
                                const struct qr__storage_snapshot_header *header,
                                const uint32_t *chunk_crcs,
                                uint8_t *chunk_buf,
                                size_t chunk_buf_size,
                                char *errmsg);

#endif /* QR_STORAGE_FORMAT_H */
