/*
 * Unit tests of transport/codec and transport/handshake: every message type round trips
 * with random field values (seeded, so a failure replays), the wire layout is pinned by
 * golden bytes, every refusal of the frame reader, the message decoder and the handshake
 * is provoked on purpose and its message checked, frames survive every split of the
 * stream, limits are tested on both sides, and every allocation failure leaves things
 * usable and leak-free. With QR_CODEC_CORPUS_DIR set, the last test writes the fuzz seeds
 * for fuzz/fuzz_peer.c into that directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorum/err.h"
#include "test_alloc.h"
#include "transport/codec.h"
#include "transport/handshake.h"
#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/rng.h"

#define GEN_ENTRIES_MAX   12
#define GEN_PAYLOAD_MAX   300
#define GEN_CHUNK_MAX     700
#define ROUNDS_PER_TYPE   200
#define STREAM_FRAMES_MAX 32
#define FAIL_AT_MAX       64
#define BODY_TEST_SIZE    4096

/* The handshake constants shared with fuzz/fuzz_peer.c, so seeds carry a valid proof. */
#define FUZZ_CLUSTER_ID 9
#define FUZZ_NODE_ID    1
#define FUZZ_PEER_ID    2
static const uint8_t fuzz_secret[] = "correct horse battery staple!!";
#define FUZZ_SECRET_SIZE (sizeof(fuzz_secret) - 1)

/* ---- Helpers: messages --------------------------------------------------------------------- */

/* A message and the storage its views point into. */
struct gen {
    struct qr_msg msg;
    struct qr_entry entries[GEN_ENTRIES_MAX];
    uint8_t payload[GEN_ENTRIES_MAX][GEN_PAYLOAD_MAX];
    struct qr_snapshot_meta meta;
    uint8_t chunk[GEN_CHUNK_MAX];
};

static void fill_bytes(struct qr_rng *rng, uint8_t *p, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        p[i] = (uint8_t)qr__rng_next(rng);
    }
}

/* count ascending non-zero ids starting above `base`. */
static void gen_ids(struct qr_rng *rng, qr_node_id *ids, uint32_t count, qr_node_id base)
{
    qr_node_id id = base;
    for (uint32_t i = 0; i < count; i++) {
        id += qr__rng_range(rng, 1, 1000);
        ids[i] = id;
    }
}

static void gen_config(struct qr_rng *rng, struct qr_config *c)
{
    memset(c, 0, sizeof(*c));
    c->voters_count = (uint32_t)qr__rng_range(rng, 1, 7);
    c->voters_old_count = qr__rng_chance(rng, 1, 3) ? (uint32_t)qr__rng_range(rng, 1, 5) : 0;
    c->learners_count = (uint32_t)qr__rng_below(rng, 4);
    gen_ids(rng, c->voters, c->voters_count, 0);
    gen_ids(rng, c->voters_old, c->voters_old_count, 0);
    gen_ids(rng, c->learners, c->learners_count, UINT64_C(1) << 40);
}

/* A value that is often small, sometimes 0 and sometimes huge: the edges get exercised. */
static uint64_t gen_u64(struct qr_rng *rng)
{
    switch (qr__rng_below(rng, 4)) {
    case 0:
        return 0;
    case 1:
        return qr__rng_below(rng, 1000);
    case 2:
        return UINT64_MAX - qr__rng_below(rng, 3);
    default:
        return qr__rng_next(rng);
    }
}

static void gen_entries(struct qr_rng *rng, struct gen *g)
{
    g->msg.entries_count = (size_t)qr__rng_below(rng, GEN_ENTRIES_MAX + 1);
    g->msg.entries = g->msg.entries_count > 0 ? g->entries : NULL;
    for (size_t i = 0; i < g->msg.entries_count; i++) {
        struct qr_entry *e = &g->entries[i];
        e->term = gen_u64(rng);
        e->index = gen_u64(rng);
        e->type = (enum qr_entry_type)qr__rng_range(rng, QR_ENTRY_NORMAL, QR_ENTRY_CONFIG);
        e->data.len = qr__rng_chance(rng, 1, 4) ? 0 : (size_t)qr__rng_below(rng, GEN_PAYLOAD_MAX);
        e->data.base = e->data.len > 0 ? g->payload[i] : NULL;
        fill_bytes(rng, g->payload[i], e->data.len);
    }
}

static void gen_snapshot(struct qr_rng *rng, struct gen *g)
{
    memset(&g->meta, 0, sizeof(g->meta));
    g->meta.index = gen_u64(rng);
    g->meta.term = gen_u64(rng);
    g->meta.crc = (uint32_t)qr__rng_next(rng);
    gen_config(rng, &g->meta.config);
    uint32_t chunk = (uint32_t)qr__rng_below(rng, GEN_CHUNK_MAX + 1);
    uint64_t offset = qr__rng_chance(rng, 1, 3) ? 0 : qr__rng_below(rng, UINT64_C(1) << 40);
    g->meta.size = offset + chunk + (qr__rng_chance(rng, 1, 2) ? 0 : qr__rng_below(rng, 1 << 20));
    g->msg.snapshot = &g->meta;
    g->msg.offset = offset;
    g->msg.chunk_size = chunk;
    g->msg.data.base = chunk > 0 ? g->chunk : NULL;
    g->msg.data.len = chunk;
    fill_bytes(rng, g->chunk, chunk);
}

/* A random well-formed message of `type`: every field the type can carry is random. */
static void gen_msg(struct qr_rng *rng, enum qr_msg_type type, struct gen *g)
{
    memset(&g->msg, 0, sizeof(g->msg));
    struct qr_msg *m = &g->msg;
    m->type = type;
    uint64_t *fields[] = {&m->from,      &m->to,      &m->term,  &m->log_index,
                          &m->log_term,  &m->commit,  &m->index, &m->hint_index,
                          &m->hint_term, &m->context, &m->offset};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        *fields[i] = gen_u64(rng);
    }
    m->prevote = qr__rng_chance(rng, 1, 2);
    m->transfer = qr__rng_chance(rng, 1, 2);
    m->reject = qr__rng_chance(rng, 1, 2);
    m->last_chunk = qr__rng_chance(rng, 1, 2);
    m->chunk_size = (uint32_t)gen_u64(rng);
    if (type == QR_MSG_APPEND) {
        gen_entries(rng, g);
    } else if (type == QR_MSG_SNAPSHOT) {
        gen_snapshot(rng, g);
    }
}

static void assert_buf_equal(struct qr_buf a, struct qr_buf b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_non_null(a.base);
        assert_non_null(b.base);
        assert_memory_equal(a.base, b.base, a.len);
    }
}

static void assert_msg_equal(const struct qr_msg *a, const struct qr_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->from, b->from);
    assert_int_equal(a->to, b->to);
    assert_int_equal(a->term, b->term);
    assert_int_equal(a->log_index, b->log_index);
    assert_int_equal(a->log_term, b->log_term);
    assert_int_equal(a->commit, b->commit);
    assert_int_equal(a->prevote, b->prevote);
    assert_int_equal(a->transfer, b->transfer);
    assert_int_equal(a->reject, b->reject);
    assert_int_equal(a->reserved_flag, b->reserved_flag);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->hint_index, b->hint_index);
    assert_int_equal(a->hint_term, b->hint_term);
    assert_int_equal(a->context, b->context);
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->chunk_size, b->chunk_size);
    assert_int_equal(a->last_chunk, b->last_chunk);
    assert_buf_equal(a->data, b->data);
    assert_int_equal(a->entries_count, b->entries_count);
    for (size_t i = 0; i < a->entries_count; i++) {
        assert_int_equal(a->entries[i].term, b->entries[i].term);
        assert_int_equal(a->entries[i].index, b->entries[i].index);
        assert_int_equal(a->entries[i].type, b->entries[i].type);
        assert_buf_equal(a->entries[i].data, b->entries[i].data);
    }
    if (a->snapshot == NULL || b->snapshot == NULL) {
        assert_ptr_equal(a->snapshot, b->snapshot);
    } else {
        assert_int_equal(a->snapshot->index, b->snapshot->index);
        assert_int_equal(a->snapshot->term, b->snapshot->term);
        assert_int_equal(a->snapshot->size, b->snapshot->size);
        assert_int_equal(a->snapshot->crc, b->snapshot->crc);
        assert_int_equal(a->snapshot->reserved, b->snapshot->reserved);
        assert_memory_equal(&a->snapshot->config, &b->snapshot->config, sizeof(struct qr_config));
    }
}

/* Encodes into owned memory (free with qr_free). */
static struct qr_buf encode(const struct qr_msg *m)
{
    size_t size = qr__codec_encoded_size(m);
    assert_true(size >= QR_CODEC_MSG_HEADER_SIZE && size != SIZE_MAX);
    struct qr_buf b = {qr_malloc(size), size};
    assert_non_null(b.base);
    qr__codec_encode(m, b.base);
    return b;
}

/* Expects decode to fail with `err` and a message containing `needle`. */
static void assert_decode_fails(struct qr_buf body, int err, const char *needle)
{
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    struct qr_msg m;
    memset(&m, 0xa5, sizeof(m));
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__codec_decode(&dec, body, &m, errmsg);
    if (rv != err || strstr(errmsg, needle) == NULL) {
        print_error("decode gave %s \"%s\", expected %s with \"%s\"\n", qr_err_name(rv), errmsg,
                    qr_err_name(err), needle);
        fail();
    }
    assert_int_equal(m.type, (enum qr_msg_type)0xa5a5a5a5); /* Untouched on failure. */
    qr__codec_decoder_close(&dec);
}

/* ---- Round trips ---------------------------------------------------------------------------- */

static void round_trip(const struct qr_msg *m, struct qr_msg_decoder *dec)
{
    struct qr_buf body = encode(m);
    struct qr_msg out;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__codec_decode(dec, body, &out, errmsg);
    if (rv != 0) {
        print_error("decode of a %s failed: %s\n", qr_msg_type_name(m->type), errmsg);
        fail();
    }
    assert_msg_equal(m, &out);
    struct qr_buf again = encode(&out); /* Canonical: the same bytes again. */
    assert_buf_equal(body, again);
    qr_free(again.base);
    qr_free(body.base);
}

static void test_codec_round_trips_every_message_type_with_random_fields(void **state)
{
    (void)state;
    struct qr_rng rng;
    qr__rng_seed(&rng, 20240601);
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    static struct gen g;
    for (int type = 1; type <= QR_MSG_TYPE_MAX; type++) {
        for (int round = 0; round < ROUNDS_PER_TYPE; round++) {
            gen_msg(&rng, (enum qr_msg_type)type, &g);
            round_trip(&g.msg, &dec);
        }
    }
    qr__codec_decoder_close(&dec);
}

static void test_codec_round_trips_empty_appends_and_empty_entries(void **state)
{
    (void)state;
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    struct qr_msg m = {.type = QR_MSG_APPEND, .from = 1, .to = 2, .term = 3};
    round_trip(&m, &dec); /* No entries at all. */
    assert_int_equal(qr__codec_encoded_size(&m),
                     QR_CODEC_MSG_HEADER_SIZE + QR_CODEC_ENTRIES_HEADER_SIZE);
    struct qr_entry entries[3] = {
        {.term = 3, .index = 1, .type = QR_ENTRY_NOOP},
        {.term = 3, .index = 2, .type = QR_ENTRY_NORMAL},
        {.term = 3, .index = 3, .type = QR_ENTRY_CONFIG},
    };
    m.entries = entries;
    m.entries_count = 3;
    round_trip(&m, &dec);
    assert_int_equal(qr__codec_encoded_size(&m), QR_CODEC_MSG_HEADER_SIZE +
                                                     QR_CODEC_ENTRIES_HEADER_SIZE +
                                                     3 * QR_CODEC_ENTRY_HEADER_SIZE);
    qr__codec_decoder_close(&dec);
}

static void test_codec_round_trips_a_full_config_and_an_empty_chunk(void **state)
{
    (void)state;
    static struct qr_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = 100;
    meta.term = 7;
    meta.size = 0;
    meta.config.voters_count = QR_CORE_MEMBERS_MAX;
    meta.config.voters_old_count = QR_CORE_MEMBERS_MAX;
    meta.config.learners_count = QR_CORE_MEMBERS_MAX;
    for (uint32_t i = 0; i < QR_CORE_MEMBERS_MAX; i++) {
        meta.config.voters[i] = i + 1;
        meta.config.voters_old[i] = i + 2;
        meta.config.learners[i] = 1000 + i;
    }
    struct qr_msg m = {.type = QR_MSG_SNAPSHOT, .from = 1, .to = 2, .snapshot = &meta};
    m.last_chunk = true;
    assert_int_equal(qr__codec_encoded_size(&m), QR_CODEC_MSG_HEADER_SIZE +
                                                     QR_CODEC_SNAPSHOT_HEADER_SIZE +
                                                     QR_CODEC_CONFIG_SIZE_MAX);
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    round_trip(&m, &dec);
    qr__codec_decoder_close(&dec);
}

/* An entry of the core's default largest payload (8 MiB) goes through a default frame. */
static void test_codec_carries_a_max_size_entry_through_a_frame(void **state)
{
    (void)state;
    size_t payload = (size_t)8 << 20;
    struct qr_entry e = {.term = 5, .index = 9, .type = QR_ENTRY_NORMAL};
    e.data.base = qr_malloc(payload);
    e.data.len = payload;
    assert_non_null(e.data.base);
    for (size_t i = 0; i < payload; i++) {
        e.data.base[i] = (uint8_t)(i * 7 + (i >> 13));
    }
    struct qr_msg m = {.type = QR_MSG_APPEND, .from = 1, .to = 2, .term = 5, .log_index = 8};
    m.entries = &e;
    m.entries_count = 1;
    size_t frame_size = QR_FRAME_HEADER_SIZE + qr__codec_encoded_size(&m);
    uint8_t *frame = qr_malloc(frame_size);
    assert_non_null(frame);
    assert_int_equal(qr__codec_encode_frame(&m, QR_FRAME_SIZE_MAX_DEFAULT, frame, frame_size), 0);
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    size_t used = 0;
    assert_int_equal(qr__frame_reader_feed(&reader, frame, frame_size, &used), 0);
    assert_int_equal(used, frame_size);
    struct qr_frame f;
    assert_true(qr__frame_reader_next(&reader, &f));
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    struct qr_msg out;
    assert_int_equal(qr__codec_decode(&dec, f.body, &out, NULL), 0);
    assert_msg_equal(&m, &out);
    qr__codec_decoder_close(&dec);
    qr__frame_reader_close(&reader);
    qr_free(frame);
    qr_free(e.data.base);
}

/* ---- Golden bytes: the wire format must not drift by accident ------------------------------- */

static void test_codec_heartbeat_has_the_documented_layout(void **state)
{
    (void)state;
    struct qr_msg m = {.type = QR_MSG_HEARTBEAT, .from = 1, .to = 0x0203, .term = 3};
    m.commit = 4;
    m.context = UINT64_C(0x1122334455667788);
    m.reject = true;
    m.chunk_size = 0x01020304;
    uint8_t expected[QR_CODEC_MSG_HEADER_SIZE];
    memset(expected, 0, sizeof(expected));
    expected[0] = 1;    /* Protocol version. */
    expected[1] = 5;    /* QR_MSG_HEARTBEAT. */
    expected[2] = 0x04; /* reject. */
    expected[4] = 0x04; /* chunk_size, little-endian. */
    expected[5] = 0x03;
    expected[6] = 0x02;
    expected[7] = 0x01;
    expected[8] = 1;     /* from */
    expected[16] = 0x03; /* to */
    expected[17] = 0x02;
    expected[24] = 3; /* term */
    expected[48] = 4; /* commit */
    for (int i = 0; i < 8; i++) {
        expected[80 + i] = (uint8_t)(0x88 - 0x11 * i); /* context */
    }
    struct qr_buf body = encode(&m);
    assert_int_equal(body.len, sizeof(expected));
    assert_memory_equal(body.base, expected, sizeof(expected));
    qr_free(body.base);
}

static void test_codec_append_has_the_documented_layout(void **state)
{
    (void)state;
    uint8_t ab[2] = {'a', 'b'};
    struct qr_entry e = {.term = 2, .index = 7, .type = QR_ENTRY_CONFIG, .data = {ab, 2}};
    struct qr_msg m = {.type = QR_MSG_APPEND, .entries = &e, .entries_count = 1};
    struct qr_buf body = encode(&m);
    const uint8_t expected_tail[] = {
        1, 0, 0, 0, 0, 0, 0, 0,                       /* count 1, reserved */
        2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0,   0,   0, 0, /* term 2, index 7 ... */
        0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 'a', 'b',       /* ... type 3, reserved, size 2, data */
    };
    assert_int_equal(body.len, QR_CODEC_MSG_HEADER_SIZE + sizeof(expected_tail));
    assert_int_equal(body.base[1], QR_MSG_APPEND);
    assert_memory_equal(body.base + QR_CODEC_MSG_HEADER_SIZE, expected_tail, sizeof(expected_tail));
    qr_free(body.base);
}

static void test_frame_header_has_the_documented_layout(void **state)
{
    (void)state;
    const uint8_t body[3] = {1, 2, 3};
    uint8_t h[QR_FRAME_HEADER_SIZE];
    qr__frame_header_encode(QR_FRAME_MSG, body, sizeof(body), h);
    uint32_t crc = qr__crc32c(0, body, sizeof(body));
    const uint8_t expected[QR_FRAME_HEADER_SIZE] = {3,
                                                    0,
                                                    0,
                                                    0,
                                                    QR_FRAME_VERSION,
                                                    QR_FRAME_MSG,
                                                    0,
                                                    0,
                                                    (uint8_t)crc,
                                                    (uint8_t)(crc >> 8),
                                                    (uint8_t)(crc >> 16),
                                                    (uint8_t)(crc >> 24)};
    assert_memory_equal(h, expected, sizeof(expected));
    assert_int_equal(qr__crc32c(0, "123456789", 9), 0xe3069283); /* The CRC32C check value. */
}

/* ---- Decoder refusals ----------------------------------------------------------------------- */

/* An APPEND with two entries ("xyz" and empty): entry 0 at body byte 104, data at 128. */
static struct qr_buf sample_append(void)
{
    static uint8_t xyz[3] = {'x', 'y', 'z'};
    static struct qr_entry entries[2] = {
        {.term = 1, .index = 5, .type = QR_ENTRY_NORMAL, .data = {xyz, 3}},
        {.term = 1, .index = 6, .type = QR_ENTRY_NOOP},
    };
    struct qr_msg m = {.type = QR_MSG_APPEND, .from = 1, .to = 2, .term = 1, .log_index = 4};
    m.entries = entries;
    m.entries_count = 2;
    return encode(&m);
}

/* A SNAPSHOT of 10 bytes, chunk [4, 8): meta at 96, config size at 128, config at 132. */
static struct qr_buf sample_snapshot(void)
{
    static struct qr_snapshot_meta meta;
    static uint8_t chunk[4] = {9, 8, 7, 6};
    memset(&meta, 0, sizeof(meta));
    meta.index = 50;
    meta.term = 4;
    meta.size = 10;
    meta.config.voters_count = 2;
    meta.config.voters[0] = 1;
    meta.config.voters[1] = 2;
    struct qr_msg m = {.type = QR_MSG_SNAPSHOT, .from = 1, .to = 2, .snapshot = &meta};
    m.offset = 4;
    m.chunk_size = 4;
    m.data.base = chunk;
    m.data.len = 4;
    return encode(&m);
}

#define SNAPSHOT_CONFIG_AT (QR_CODEC_MSG_HEADER_SIZE + QR_CODEC_SNAPSHOT_HEADER_SIZE)

static void test_codec_decode_refuses_every_truncation_and_trailing_bytes(void **state)
{
    (void)state;
    struct qr_buf samples[3] = {sample_append(), sample_snapshot(), {NULL, 0}};
    struct qr_msg hb = {.type = QR_MSG_HEARTBEAT, .from = 1, .to = 2};
    samples[2] = encode(&hb);
    for (size_t s = 0; s < 3; s++) {
        for (size_t len = 0; len < samples[s].len; len++) {
            struct qr_buf cut = {len > 0 ? samples[s].base : NULL, len};
            assert_decode_fails(cut, QR_EPROTO, "peer message");
        }
        uint8_t *longer = qr_malloc(samples[s].len + 1);
        assert_non_null(longer);
        memcpy(longer, samples[s].base, samples[s].len);
        longer[samples[s].len] = 0;
        struct qr_buf padded = {longer, samples[s].len + 1};
        assert_decode_fails(padded, QR_EPROTO, "1 trailing bytes at body byte");
        qr_free(longer);
        qr_free(samples[s].base);
    }
}

static void test_codec_decode_refuses_bad_header_fields(void **state)
{
    (void)state;
    struct qr_msg hb = {.type = QR_MSG_HEARTBEAT, .from = 1, .to = 2};
    struct qr_buf b = encode(&hb);
    b.base[0] = 2;
    assert_decode_fails(b, QR_EVERSION, "protocol version 2 not supported, expected 1");
    b.base[0] = 1;
    b.base[1] = 0;
    assert_decode_fails(b, QR_EPROTO, "body byte 1: type 0 out of range");
    b.base[1] = QR_MSG_TYPE_MAX + 1;
    assert_decode_fails(b, QR_EPROTO, "type 12 out of range");
    b.base[1] = QR_MSG_HEARTBEAT;
    for (int bit = 4; bit < 8; bit++) {
        b.base[2] = (uint8_t)(1u << bit);
        assert_decode_fails(b, QR_EPROTO, "unknown bits");
    }
    b.base[2] = 0;
    b.base[3] = 1;
    assert_decode_fails(b, QR_EPROTO, "reserved 0x01");
    b.base[3] = 0;
    /* A HEARTBEAT has no sections: the bytes of an entries header are trailing garbage. */
    qr_free(b.base);
}

static void test_codec_decode_refuses_bad_append_sections(void **state)
{
    (void)state;
    struct qr_buf b = sample_append();
    uint8_t *p = b.base;
    qr__put_u32(p + 96, 3);
    assert_decode_fails(b, QR_EPROTO, "append at body byte 96: 3 entries cannot fit in the 51");
    qr__put_u32(p + 96, 2);
    qr__put_u32(p + 124, 27); /* Entry 0 swallows entry 1's header: none is left for it. */
    assert_decode_fails(b, QR_EPROTO,
                        "entry 1 at body byte 155: 0 bytes left, its header needs 24");
    qr__put_u32(p + 124, 3);
    qr__put_u32(p + 96, UINT32_MAX);
    assert_decode_fails(b, QR_EPROTO, "4294967295 entries cannot fit in the 51 bytes left");
    qr__put_u32(p + 96, 2);
    p[100] = 1;
    assert_decode_fails(b, QR_EPROTO, "body byte 100: reserved bytes not zero");
    p[100] = 0;
    p[120] = 0;
    assert_decode_fails(b, QR_EPROTO, "entry 0 at body byte 104: entry type 0 out of range");
    p[120] = QR_ENTRY_CONFIG + 1;
    assert_decode_fails(b, QR_EPROTO, "entry type 4 out of range");
    p[120] = QR_ENTRY_NORMAL;
    for (int i = 121; i < 124; i++) {
        p[i] = 0x80;
        assert_decode_fails(b, QR_EPROTO, "entry 0 at body byte 104: reserved bytes not zero");
        p[i] = 0;
    }
    qr__put_u32(p + 124, 28);
    assert_decode_fails(b, QR_EPROTO, "entry 0 at body byte 104: data size 28 exceeds the 27");
    qr__put_u32(p + 124, UINT32_MAX);
    assert_decode_fails(b, QR_EPROTO, "data size 4294967295 exceeds");
    qr__put_u32(p + 124, 3);
    qr_free(b.base);
}

static void test_codec_decode_refuses_bad_snapshot_sections(void **state)
{
    (void)state;
    struct qr_buf b = sample_snapshot();
    uint8_t *p = b.base;
    p[124] = 1;
    assert_decode_fails(b, QR_EPROTO, "snapshot meta at body byte 124: reserved bytes not zero");
    p[124] = 0;
    qr__put_u32(p + 128, QR_CODEC_CONFIG_SIZE_MAX + 1);
    assert_decode_fails(b, QR_EPROTO, "snapshot config at body byte 132: size 1553, at most 1552");
    qr__put_u32(p + 128, 37);
    assert_decode_fails(b, QR_EPROTO, "size 37, at most 1552 and 36 bytes left");
    qr__put_u32(p + 128, 24);
    assert_decode_fails(b, QR_EPROTO, "snapshot config at body byte 132: config: 24 bytes");
    qr__put_u32(p + 128, 32);
    p[SNAPSHOT_CONFIG_AT] = 2;
    assert_decode_fails(b, QR_EVERSION, "snapshot config at body byte 132: config: version 2");
    p[SNAPSHOT_CONFIG_AT] = 1;
    qr__put_u64(p + SNAPSHOT_CONFIG_AT + 16, 3); /* Voters 3, 2: not ascending. */
    assert_decode_fails(b, QR_EPROTO, "not ascending");
    qr__put_u64(p + SNAPSHOT_CONFIG_AT + 16, 0);
    assert_decode_fails(b, QR_EPROTO, "id 0");
    qr__put_u64(p + SNAPSHOT_CONFIG_AT + 16, 1);
    qr__put_u32(p + 4, 5); /* chunk_size 5, but only 4 bytes follow. */
    assert_decode_fails(b, QR_EPROTO, "snapshot chunk at body byte 164: size 5 exceeds the 4");
    qr__put_u32(p + 4, 4);
    qr__put_u64(p + 112, 7); /* Snapshot of 7 bytes: [4, 8) is outside. */
    assert_decode_fails(b, QR_EPROTO, "chunk at offset 4 size 4 lies outside the snapshot's 7");
    qr__put_u64(p + 112, 10);
    qr__put_u64(p + 88, UINT64_MAX); /* offset + size would wrap. */
    assert_decode_fails(b, QR_EPROTO, "lies outside the snapshot's 10 bytes");
    qr__put_u64(p + 88, 4);
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    struct qr_msg m;
    assert_int_equal(qr__codec_decode(&dec, b, &m, NULL), 0); /* Restored: valid again. */
    assert_int_equal(m.snapshot->config.voters_count, 2);
    qr__codec_decoder_close(&dec);
    qr_free(b.base);
}

/* A count that claims more entries than the bytes can hold is refused before any allocation. */
static void test_codec_decode_checks_counts_before_allocating(void **state)
{
    (void)state;
    struct qr_buf b = sample_append();
    qr__put_u32(b.base + 96, 0x10000000);
    size_t calls = test_alloc_calls_count();
    assert_decode_fails(b, QR_EPROTO, "268435456 entries cannot fit");
    assert_int_equal(test_alloc_calls_count(), calls);
    qr_free(b.base);
}

static void test_codec_decoder_releases_a_large_entry_array(void **state)
{
    (void)state;
    size_t count = QR_CODEC_ENTRIES_RETAIN_COUNT + 1;
    struct qr_entry *entries = qr_calloc(count, sizeof(*entries));
    assert_non_null(entries);
    for (size_t i = 0; i < count; i++) {
        entries[i] = (struct qr_entry){.term = 1, .index = i + 1, .type = QR_ENTRY_NOOP};
    }
    struct qr_msg big = {.type = QR_MSG_APPEND, .entries = entries, .entries_count = count};
    struct qr_msg_decoder dec;
    qr__codec_decoder_init(&dec);
    round_trip(&big, &dec);
    assert_true(dec.entries_capacity >= count);
    struct qr_buf small = sample_append();
    struct qr_msg m;
    assert_int_equal(qr__codec_decode(&dec, small, &m, NULL), 0);
    assert_true(dec.entries_capacity <= QR_CODEC_ENTRIES_RETAIN_COUNT);
    round_trip(&big, &dec);
    qr__codec_decoder_reset(&dec);
    assert_int_equal(dec.entries_capacity, 0);
    qr__codec_decoder_close(&dec);
    qr_free(small.base);
    qr_free(entries);
}

static void test_codec_encode_frame_respects_the_limit_on_both_sides(void **state)
{
    (void)state;
    static uint8_t payload[QR_FRAME_SIZE_MAX_MIN];
    struct qr_entry e = {.term = 1, .index = 1, .type = QR_ENTRY_NORMAL, .data = {payload, 0}};
    struct qr_msg m = {.type = QR_MSG_APPEND, .entries = &e, .entries_count = 1};
    e.data.len = QR_FRAME_SIZE_MAX_MIN - QR_CODEC_MSG_HEADER_SIZE - QR_CODEC_ENTRIES_HEADER_SIZE -
                 QR_CODEC_ENTRY_HEADER_SIZE;
    static uint8_t frame[QR_FRAME_HEADER_SIZE + QR_FRAME_SIZE_MAX_MIN];
    assert_int_equal(qr__codec_encoded_size(&m), QR_FRAME_SIZE_MAX_MIN);
    assert_int_equal(qr__codec_encode_frame(&m, QR_FRAME_SIZE_MAX_MIN, frame, sizeof(frame)), 0);
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, QR_FRAME_SIZE_MAX_MIN, NULL), 0);
    size_t used = 0;
    assert_int_equal(qr__frame_reader_feed(&reader, frame, sizeof(frame), &used), 0);
    struct qr_frame f;
    assert_true(qr__frame_reader_next(&reader, &f));
    assert_int_equal(f.body.len, QR_FRAME_SIZE_MAX_MIN);
    e.data.len++;
    memset(frame, 0xee, sizeof(frame));
    assert_int_equal(qr__codec_encode_frame(&m, QR_FRAME_SIZE_MAX_MIN, frame, sizeof(frame)),
                     QR_ETOOBIG);
    assert_int_equal(frame[0], 0xee); /* Nothing written. */
    qr__frame_reader_close(&reader);
}

/* ---- Frame reader --------------------------------------------------------------------------- */

/* A stream of frames and where each begins. */
struct stream {
    uint8_t *bytes; /* Owned. */
    size_t size;
    size_t frames_count;
    size_t offsets[STREAM_FRAMES_MAX];
    enum qr_frame_type types[STREAM_FRAMES_MAX];
    size_t body_sizes[STREAM_FRAMES_MAX];
};

static void stream_add(struct stream *s, enum qr_frame_type type, const uint8_t *body, size_t size)
{
    assert_true(s->frames_count < STREAM_FRAMES_MAX);
    s->bytes = qr_realloc(s->bytes, s->size + QR_FRAME_HEADER_SIZE + size);
    assert_non_null(s->bytes);
    qr__frame_header_encode(type, body, size, s->bytes + s->size);
    if (size > 0) {
        memcpy(s->bytes + s->size + QR_FRAME_HEADER_SIZE, body, size);
    }
    s->offsets[s->frames_count] = s->size;
    s->types[s->frames_count] = type;
    s->body_sizes[s->frames_count] = size;
    s->frames_count++;
    s->size += QR_FRAME_HEADER_SIZE + size;
}

static void stream_add_msg(struct stream *s, const struct qr_msg *m)
{
    struct qr_buf body = encode(m);
    stream_add(s, QR_FRAME_MSG, body.base, body.len);
    qr_free(body.base);
}

/* One frame of every kind, an empty-bodied one, and a message of every type. */
static void stream_build(struct stream *s, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    uint8_t hello[QR_HANDSHAKE_HELLO_SIZE] = {1, 0, 1, 0};
    uint8_t proof[QR_HANDSHAKE_PROOF_SIZE] = {0xff};
    stream_add(s, QR_FRAME_HELLO, hello, sizeof(hello));
    stream_add(s, QR_FRAME_PROOF, proof, sizeof(proof));
    stream_add(s, QR_FRAME_MSG, NULL, 0);
    struct qr_rng rng;
    qr__rng_seed(&rng, seed);
    static struct gen g;
    for (int type = 1; type <= QR_MSG_TYPE_MAX; type++) {
        gen_msg(&rng, (enum qr_msg_type)type, &g);
        stream_add_msg(s, &g.msg);
    }
}

/* Feeds s->bytes cut at the given points (ascending, within the stream); checks every frame. */
static void stream_check_split(const struct stream *s, const size_t *cuts, size_t cuts_count)
{
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, QR_FRAME_SIZE_MAX_MIN, NULL), 0);
    size_t frames_seen = 0;
    size_t pos = 0;
    for (size_t piece = 0; piece <= cuts_count; piece++) {
        size_t end = piece < cuts_count ? cuts[piece] : s->size;
        size_t rounds = 0;
        do { /* Bounded: every round consumes a byte or yields a frame. */
            size_t used = 0;
            assert_int_equal(qr__frame_reader_feed(&reader, s->bytes + pos, end - pos, &used), 0);
            pos += used;
            struct qr_frame f;
            if (qr__frame_reader_next(&reader, &f)) {
                assert_true(frames_seen < s->frames_count);
                assert_int_equal(f.type, s->types[frames_seen]);
                assert_int_equal(f.offset, s->offsets[frames_seen]);
                assert_int_equal(f.body.len, s->body_sizes[frames_seen]);
                if (f.body.len > 0) {
                    assert_memory_equal(f.body.base, s->bytes + f.offset + QR_FRAME_HEADER_SIZE,
                                        f.body.len);
                }
                frames_seen++;
            } else {
                assert_int_equal(pos, end);
            }
            assert_true(++rounds <= 2 * s->size + 2);
        } while (pos < end);
    }
    assert_int_equal(frames_seen, s->frames_count);
    assert_int_equal(reader.stream_offset, s->size);
    qr__frame_reader_close(&reader);
}

static void test_frame_reader_delivers_frames_in_every_split(void **state)
{
    (void)state;
    struct stream s;
    stream_build(&s, 7);
    stream_check_split(&s, NULL, 0); /* All at once. */
    for (size_t cut = 0; cut <= s.size; cut++) {
        stream_check_split(&s, &cut, 1); /* Every split in two. */
    }
    size_t *every = qr_malloc(s.size * sizeof(size_t));
    assert_non_null(every);
    for (size_t i = 0; i < s.size; i++) {
        every[i] = i + 1; /* One byte at a time. */
    }
    stream_check_split(&s, every, s.size - 1);
    struct qr_rng rng;
    qr__rng_seed(&rng, 99);
    for (int round = 0; round < 100; round++) {
        size_t count = 0;
        for (size_t at = qr__rng_range(&rng, 1, 40); at < s.size;
             at += qr__rng_range(&rng, 1, 40)) {
            every[count++] = at;
        }
        stream_check_split(&s, every, count);
    }
    qr_free(every);
    qr_free(s.bytes);
}

/* Feeds a stream that must fail; returns the error and leaves the message in errmsg_out. */
static int feed_expecting_error(const uint8_t *bytes, size_t size, uint32_t limit, char *errmsg_out)
{
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, limit, NULL), 0);
    size_t pos = 0;
    int rv = 0;
    for (size_t round = 0; round <= size + 1 && rv == 0; round++) {
        size_t used = 0;
        rv = qr__frame_reader_feed(&reader, bytes + pos, size - pos, &used);
        pos += used;
        struct qr_frame f;
        (void)qr__frame_reader_next(&reader, &f); /* Frames before the bad one are fine. */
    }
    assert_true(rv < 0);
    size_t used = 1;
    assert_int_equal(qr__frame_reader_feed(&reader, bytes, size, &used), rv); /* Sticky. */
    assert_int_equal(used, 0);
    memcpy(errmsg_out, reader.errmsg, QR_ERRMSG_SIZE);
    qr__frame_reader_close(&reader);
    return rv;
}

static void test_frame_reader_refuses_bad_headers_with_distinct_codes(void **state)
{
    (void)state;
    /* A valid frame of 1222 body bytes puts the next frame at stream byte 1234. */
    static uint8_t stream[1234 + QR_FRAME_HEADER_SIZE + 4];
    memset(stream, 0x5a, sizeof(stream));
    qr__frame_header_encode(QR_FRAME_MSG, stream + QR_FRAME_HEADER_SIZE, 1222, stream);
    uint8_t *h = stream + 1234;
    const uint8_t body[4] = {1, 2, 3, 4};
    char errmsg[QR_ERRMSG_SIZE];
    struct {
        size_t at;
        uint8_t flip; /* XORed into the header byte at `at`. */
        int err;
        const char *text;
    } cases[] = {
        {4, 1 ^ 2, QR_EVERSION, "peer frame at byte 1234: version 2 not supported, expected 1"},
        {6, 1, QR_EPROTO,
         "peer frame at byte 1234: reserved header bytes 6-7 are 0x0001, not zero"},
        {7, 0x80, QR_EPROTO,
         "peer frame at byte 1234: reserved header bytes 6-7 are 0x8000, not zero"},
        {5, QR_FRAME_MSG ^ 0, QR_EPROTO, "peer frame at byte 1234: unknown frame type 0"},
        {5, QR_FRAME_MSG ^ 6, QR_EPROTO, "peer frame at byte 1234: unknown frame type 6"},
        {8, 1, QR_ECORRUPT, "peer frame at byte 1234: crc 0x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        qr__frame_header_encode(QR_FRAME_MSG, body, sizeof(body), h);
        memcpy(h + QR_FRAME_HEADER_SIZE, body, sizeof(body));
        h[cases[i].at] ^= cases[i].flip;
        assert_int_equal(feed_expecting_error(stream, sizeof(stream), 0, errmsg), cases[i].err);
        if (strncmp(errmsg, cases[i].text, strlen(cases[i].text)) != 0) {
            print_error("got \"%s\", expected \"%s\"\n", errmsg, cases[i].text);
            fail();
        }
    }
    qr__frame_header_encode(QR_FRAME_MSG, body, sizeof(body), h);
    qr__put_u32(h, UINT32_MAX);
    assert_int_equal(feed_expecting_error(stream, sizeof(stream), 0, errmsg), QR_ETOOBIG);
    assert_string_equal(errmsg, "peer frame at byte 1234: length 4294967295 exceeds 67108864");
}

static void test_frame_reader_length_limit_on_both_sides(void **state)
{
    (void)state;
    static uint8_t stream[2 * QR_FRAME_HEADER_SIZE + 2 * QR_FRAME_SIZE_MAX_MIN + 1];
    uint8_t *body = stream + QR_FRAME_HEADER_SIZE;
    qr__frame_header_encode(QR_FRAME_MSG, body, QR_FRAME_SIZE_MAX_MIN, stream);
    uint8_t *second = body + QR_FRAME_SIZE_MAX_MIN;
    qr__frame_header_encode(QR_FRAME_MSG, second + QR_FRAME_HEADER_SIZE, QR_FRAME_SIZE_MAX_MIN + 1,
                            second);
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(feed_expecting_error(stream, sizeof(stream), QR_FRAME_SIZE_MAX_MIN, errmsg),
                     QR_ETOOBIG);
    assert_string_equal(errmsg, "peer frame at byte 4108: length 4097 exceeds 4096");
}

static void test_frame_reader_allocates_only_for_bytes_that_arrived(void **state)
{
    (void)state;
    uint8_t header[QR_FRAME_HEADER_SIZE];
    qr__frame_header_encode(QR_FRAME_MSG, NULL, 0, header);
    qr__put_u32(header, QR_FRAME_SIZE_MAX_DEFAULT); /* Announces 64 MiB ... */
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    size_t used = 0;
    assert_int_equal(qr__frame_reader_feed(&reader, header, sizeof(header), &used), 0);
    assert_int_equal(reader.body_capacity, 0);
    uint8_t some[100] = {0};
    assert_int_equal(qr__frame_reader_feed(&reader, some, sizeof(some), &used), 0);
    assert_int_equal(used, sizeof(some));
    assert_true(reader.body_capacity <= 4096); /* ... but sent 100 bytes. */
    static uint8_t more[1 << 16];
    for (int i = 0; i < 16; i++) {
        assert_int_equal(qr__frame_reader_feed(&reader, more, sizeof(more), &used), 0);
    }
    assert_true(reader.body_capacity <= 2 * (100 + 16 * sizeof(more)));
    qr__frame_reader_close(&reader);
}

static void test_frame_reader_releases_a_large_buffer_for_small_frames(void **state)
{
    (void)state;
    struct stream s;
    memset(&s, 0, sizeof(s));
    size_t big = (size_t)4 * QR_FRAME_RETAIN_SIZE;
    uint8_t *body = qr_calloc(1, big);
    assert_non_null(body);
    stream_add(&s, QR_FRAME_MSG, body, big);
    stream_add(&s, QR_FRAME_MSG, body, 10);
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    size_t used = 0;
    assert_int_equal(qr__frame_reader_feed(&reader, s.bytes, s.size, &used), 0);
    struct qr_frame f;
    assert_true(qr__frame_reader_next(&reader, &f));
    assert_int_equal(reader.body_capacity, big);
    size_t pos = used;
    assert_int_equal(qr__frame_reader_feed(&reader, s.bytes + pos, s.size - pos, &used), 0);
    assert_true(qr__frame_reader_next(&reader, &f));
    assert_int_equal(f.body.len, 10);
    assert_true(reader.body_capacity <= QR_FRAME_RETAIN_SIZE);
    qr__frame_reader_close(&reader);
    qr_free(body);
    qr_free(s.bytes);
}

static void test_frame_reader_init_refuses_limits_out_of_range(void **state)
{
    (void)state;
    struct qr_frame_reader reader;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr__frame_reader_init(&reader, QR_FRAME_SIZE_MAX_MIN - 1, errmsg), QR_EINVAL);
    assert_string_equal(errmsg, "peer frames: frame size max 4095 outside [4096, 1073741824]");
    assert_int_equal(qr__frame_reader_init(&reader, QR_FRAME_SIZE_MAX_LIMIT + 1, NULL), QR_EINVAL);
    assert_int_equal(qr__frame_reader_init(&reader, QR_FRAME_SIZE_MAX_LIMIT, NULL), 0);
    qr__frame_reader_close(&reader);
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    assert_int_equal(reader.frame_size_max, QR_FRAME_SIZE_MAX_DEFAULT);
    qr__frame_reader_close(&reader);
    qr__frame_reader_close(NULL);
}

static void test_frame_reader_reset_starts_a_new_stream(void **state)
{
    (void)state;
    struct stream s;
    stream_build(&s, 3);
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    size_t used = 0;
    assert_int_equal(qr__frame_reader_feed(&reader, s.bytes, 20, &used), 0); /* Mid-frame. */
    qr__frame_reader_reset(&reader);
    uint8_t junk[QR_FRAME_HEADER_SIZE] = {0xff, 0xff, 0xff, 0xff, 1, 3};
    assert_int_equal(qr__frame_reader_feed(&reader, junk, sizeof(junk), &used), QR_ETOOBIG);
    qr__frame_reader_reset(&reader); /* Also forgets an error. */
    assert_string_equal(reader.errmsg, "");
    size_t pos = 0;
    size_t frames = 0;
    while (pos < s.size) {
        assert_int_equal(qr__frame_reader_feed(&reader, s.bytes + pos, s.size - pos, &used), 0);
        pos += used;
        struct qr_frame f;
        assert_true(qr__frame_reader_next(&reader, &f));
        assert_int_equal(f.offset, s.offsets[frames]); /* Offsets count from the reset. */
        frames++;
    }
    assert_int_equal(frames, s.frames_count);
    qr__frame_reader_close(&reader);
    qr_free(s.bytes);
}

static void test_frame_reader_completes_an_empty_body_without_more_bytes(void **state)
{
    (void)state;
    uint8_t header[QR_FRAME_HEADER_SIZE];
    qr__frame_header_encode(QR_FRAME_PROOF, NULL, 0, header);
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    size_t used = 0;
    struct qr_frame f;
    assert_int_equal(qr__frame_reader_feed(&reader, header, sizeof(header), &used), 0);
    assert_int_equal(used, sizeof(header));
    assert_true(qr__frame_reader_next(&reader, &f));
    assert_int_equal(f.type, QR_FRAME_PROOF);
    assert_null(f.body.base);
    assert_int_equal(f.body.len, 0);
    assert_false(qr__frame_reader_next(&reader, &f));
    assert_int_equal(qr__frame_reader_feed(&reader, NULL, 0, &used), 0);
    assert_int_equal(used, 0);
    assert_false(qr__frame_reader_next(&reader, &f));
    qr__frame_reader_close(&reader);
}

/* ---- Out of memory -------------------------------------------------------------------------- */

/* Feeds a whole stream, retrying after QR_ENOMEM; returns how many failures were met. */
static size_t feed_through_failures(const struct stream *s, bool sticky, size_t fail_at)
{
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    test_alloc_fail_at(fail_at, sticky);
    size_t failures = 0;
    size_t pos = 0;
    size_t frames = 0;
    for (size_t round = 0; pos < s->size && round < 4 * s->size; round++) {
        size_t used = 0;
        int rv = qr__frame_reader_feed(&reader, s->bytes + pos, s->size - pos, &used);
        pos += used;
        if (rv == QR_ENOMEM) {
            failures++;
            if (sticky) {
                break; /* It keeps failing; what matters is that nothing leaks or breaks. */
            }
            continue;
        }
        assert_int_equal(rv, 0);
        struct qr_frame f;
        if (qr__frame_reader_next(&reader, &f)) {
            assert_int_equal(f.offset, s->offsets[frames]);
            frames++;
        }
    }
    test_alloc_fail_at(0, false);
    if (failures == 0 || !sticky) {
        assert_int_equal(frames, s->frames_count);
    }
    qr__frame_reader_close(&reader);
    return failures;
}

static void test_frame_reader_survives_allocation_failure_at_every_point(void **state)
{
    (void)state;
    struct stream s;
    memset(&s, 0, sizeof(s));
    static uint8_t body[3 * BODY_TEST_SIZE];
    for (size_t i = 0; i < 6; i++) {
        stream_add(&s, QR_FRAME_MSG, body, (i * 5000) % sizeof(body));
    }
    for (int sticky = 0; sticky <= 1; sticky++) {
        size_t n = 1;
        while (feed_through_failures(&s, sticky != 0, n) > 0) {
            n++;
            assert_true(n < FAIL_AT_MAX);
        }
        assert_true(n > 1); /* The loop really met failures. */
    }
    qr_free(s.bytes);
}

static void test_codec_decode_survives_allocation_failure(void **state)
{
    (void)state;
    struct qr_buf b = sample_append();
    for (int sticky = 0; sticky <= 1; sticky++) {
        size_t n = 1;
        for (;; n++) {
            assert_true(n < FAIL_AT_MAX);
            struct qr_msg_decoder dec;
            qr__codec_decoder_init(&dec);
            test_alloc_fail_at(n, sticky != 0);
            struct qr_msg m;
            char errmsg[QR_ERRMSG_SIZE];
            int rv = qr__codec_decode(&dec, b, &m, errmsg);
            test_alloc_fail_at(0, false);
            if (rv == 0) {
                assert_int_equal(m.entries_count, 2);
                qr__codec_decoder_close(&dec);
                break;
            }
            assert_int_equal(rv, QR_ENOMEM);
            assert_string_equal(errmsg, "peer message: no memory for 2 entries");
            assert_int_equal(qr__codec_decode(&dec, b, &m, NULL), 0); /* Usable afterwards. */
            qr__codec_decoder_close(&dec);
        }
        assert_true(n > 1);
    }
    qr_free(b.base);
}

/* ---- Handshake ------------------------------------------------------------------------------ */

/* One end of a connection: its handshake and the frames it sent. */
struct end {
    struct qr_handshake hs;
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    uint8_t proof[QR_HANDSHAKE_PROOF_FRAME_SIZE];
};

static void end_start(struct end *e, qr_node_id id, qr_node_id peer, const uint8_t *challenge)
{
    struct qr_handshake_opts opts = {
        .cluster_id = FUZZ_CLUSTER_ID,
        .node_id = id,
        .peer_id = peer,
        .secret = fuzz_secret,
        .secret_size = FUZZ_SECRET_SIZE,
        .frame_size_max = QR_FRAME_SIZE_MAX_MIN * 2,
        .challenge = challenge,
    };
    assert_int_equal(qr__handshake_start(&e->hs, &opts, e->hello), 0);
    assert_int_equal(e->hs.state, QR_HANDSHAKE_WAIT_HELLO);
}

/* Reads one frame of the given type out of `bytes` through a frame reader, then hands it over. */
static int deliver(struct end *to, const uint8_t *bytes, size_t size, bool *has_proof_out)
{
    struct qr_frame_reader reader;
    assert_int_equal(qr__frame_reader_init(&reader, 0, NULL), 0);
    size_t used = 0;
    assert_int_equal(qr__frame_reader_feed(&reader, bytes, size, &used), 0);
    assert_int_equal(used, size);
    struct qr_frame f;
    assert_true(qr__frame_reader_next(&reader, &f));
    int rv = qr__handshake_on_frame(&to->hs, &f, to->proof, has_proof_out);
    qr__frame_reader_close(&reader);
    return rv;
}

static const uint8_t challenge_a[QR_HANDSHAKE_CHALLENGE_SIZE] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const uint8_t challenge_b[QR_HANDSHAKE_CHALLENGE_SIZE] = {0xb0, 0xb1, 0xb2};

/* Node 1 (dialling node 2) and node 2 (accepting) exchange hellos; proofs are ready. */
static void exchange_hellos(struct end *a, struct end *b)
{
    end_start(a, FUZZ_NODE_ID, FUZZ_PEER_ID, challenge_a);
    end_start(b, FUZZ_PEER_ID, 0, challenge_b);
    bool has_proof = false;
    assert_int_equal(deliver(b, a->hello, sizeof(a->hello), &has_proof), 0);
    assert_true(has_proof);
    assert_int_equal(deliver(a, b->hello, sizeof(b->hello), &has_proof), 0);
    assert_true(has_proof);
}

static void test_handshake_accepts_two_nodes_of_one_cluster(void **state)
{
    (void)state;
    struct end a;
    struct end b;
    exchange_hellos(&a, &b);
    bool has_proof = true;
    assert_int_equal(deliver(&b, a.proof, sizeof(a.proof), &has_proof), 0);
    assert_false(has_proof);
    assert_int_equal(deliver(&a, b.proof, sizeof(b.proof), &has_proof), 0);
    assert_true(qr__handshake_is_accepted(&a.hs));
    assert_true(qr__handshake_is_accepted(&b.hs));
    assert_int_equal(a.hs.peer_id, 2);
    assert_int_equal(b.hs.peer_id, 1);
    assert_int_equal(a.hs.version, QR_CORE_PROTOCOL_VERSION);
    assert_int_equal(a.hs.peer_frame_size_max, QR_FRAME_SIZE_MAX_MIN * 2);
    assert_int_equal(a.hs.refusal, QR_HANDSHAKE_REFUSAL_NONE);
    assert_string_equal(a.hs.errmsg, "");
    qr__handshake_close(&a.hs);
    qr__handshake_close(&b.hs);
    qr__handshake_close(NULL);
}

/* The wire bytes, pinned: a HELLO's layout and a proof computed independently (Python hmac). */
static void test_handshake_frames_have_the_documented_bytes(void **state)
{
    (void)state;
    struct end a;
    struct end b;
    exchange_hellos(&a, &b);
    const uint8_t *hello = a.hello + QR_FRAME_HEADER_SIZE;
    assert_int_equal(qr__get_u32(a.hello), QR_HANDSHAKE_HELLO_SIZE);
    assert_int_equal(a.hello[5], QR_FRAME_HELLO);
    const uint8_t expected_hello[24] = {1, 0, 1, 0, 0, 0x20, 0, 0, 9, 0, 0, 0,
                                        0, 0, 0, 0, 1, 0,    0, 0, 0, 0, 0, 0};
    assert_memory_equal(hello, expected_hello, sizeof(expected_hello));
    assert_memory_equal(hello + 24, challenge_a, sizeof(challenge_a));
    for (int i = 56; i < 64; i++) {
        assert_int_equal(hello[i], 0);
    }
    /* HMAC-SHA256(secret, "quorum peer proof v1" || challenge_a || 2 || 1 || 9). */
    const uint8_t expected_proof[QR_HANDSHAKE_PROOF_SIZE] = {
        0x4e, 0x38, 0xdc, 0x11, 0xa6, 0x16, 0x4b, 0x1a, 0x83, 0x1f, 0x05,
        0xdd, 0x63, 0xae, 0x1f, 0x55, 0xd8, 0x54, 0xf2, 0xfc, 0x2f, 0x58,
        0x9e, 0x2c, 0xa7, 0x13, 0x62, 0x22, 0xa5, 0x5a, 0xee, 0x26};
    assert_memory_equal(b.proof + QR_FRAME_HEADER_SIZE, expected_proof, sizeof(expected_proof));
    qr__handshake_close(&a.hs);
    qr__handshake_close(&b.hs);
}

static void assert_refused(
    const struct end *e, int rv, int err, enum qr_handshake_refusal refusal, const char *text)
{
    assert_int_equal(rv, err);
    assert_int_equal(e->hs.state, QR_HANDSHAKE_REFUSED);
    assert_int_equal(e->hs.refusal, refusal);
    if (strcmp(e->hs.errmsg, text) != 0) {
        print_error("got \"%s\", expected \"%s\"\n", e->hs.errmsg, text);
        fail();
    }
    assert_false(qr__handshake_is_accepted(&e->hs));
}

static void test_handshake_refuses_a_wrong_secret(void **state)
{
    (void)state;
    struct end a;
    struct end b;
    end_start(&a, 1, 2, challenge_a);
    struct qr_handshake_opts opts = {
        .cluster_id = FUZZ_CLUSTER_ID, .node_id = 2, .challenge = challenge_b};
    static const uint8_t other[] = "a different cluster secret";
    opts.secret = other;
    opts.secret_size = sizeof(other) - 1;
    assert_int_equal(qr__handshake_start(&b.hs, &opts, b.hello), 0);
    bool has_proof = false;
    assert_int_equal(deliver(&b, a.hello, sizeof(a.hello), &has_proof), 0);
    assert_int_equal(deliver(&a, b.hello, sizeof(b.hello), &has_proof), 0);
    int rv = deliver(&a, b.proof, sizeof(b.proof), &has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_PROOF,
                   "handshake: bad proof from node 2: wrong cluster secret?");
    rv = deliver(&b, a.proof, sizeof(a.proof), &has_proof);
    assert_refused(&b, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_PROOF,
                   "handshake: bad proof from node 1: wrong cluster secret?");
    /* Refusal is sticky: a later frame gets the same answer and changes nothing. */
    assert_int_equal(qr__handshake_on_proof(&a.hs, b.proof + QR_FRAME_HEADER_SIZE, 32), QR_EPROTO);
    assert_int_equal(a.hs.refusal, QR_HANDSHAKE_REFUSAL_PROOF);
    qr__handshake_close(&a.hs);
    qr__handshake_close(&b.hs);
}

/* A HELLO from node `id` of cluster `cluster` speaking versions [low, high]. */
static void make_hello(uint8_t *frame, uint64_t cluster, qr_node_id id, unsigned low, unsigned high)
{
    uint8_t *body = frame + QR_FRAME_HEADER_SIZE;
    memset(body, 0, QR_HANDSHAKE_HELLO_SIZE);
    body[0] = (uint8_t)low;
    body[2] = (uint8_t)high;
    qr__put_u32(body + 4, QR_FRAME_SIZE_MAX_DEFAULT);
    qr__put_u64(body + 8, cluster);
    qr__put_u64(body + 16, id);
    qr__frame_header_encode(QR_FRAME_HELLO, body, QR_HANDSHAKE_HELLO_SIZE, frame);
}

static void test_handshake_refuses_another_cluster(void **state)
{
    (void)state;
    struct end a;
    end_start(&a, 1, 0, challenge_a);
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    make_hello(hello, 7, 2, 1, 1);
    bool has_proof = true;
    int rv = deliver(&a, hello, sizeof(hello), &has_proof);
    assert_false(has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_CLUSTER,
                   "handshake: wrong cluster id 7, expected 9");
    qr__handshake_close(&a.hs);
}

static void test_handshake_negotiates_or_refuses_the_version(void **state)
{
    (void)state;
    struct {
        unsigned low, high;
        int err;
        const char *text;
    } cases[] = {
        {3, 3, QR_EVERSION, "handshake: protocol version 3 not supported, this node speaks 1"},
        {2, 5, QR_EVERSION, "handshake: protocol version 2 to 5 not supported, this node speaks 1"},
        {0, 0, QR_EVERSION, "handshake: protocol version 0 not supported, this node speaks 1"},
        {2, 1, QR_EPROTO, "handshake: hello says versions 2 to 1"},
        {1, 3, 0, ""},
        {0, 1, 0, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct end a;
        end_start(&a, 1, 0, challenge_a);
        uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
        make_hello(hello, FUZZ_CLUSTER_ID, 2, cases[i].low, cases[i].high);
        bool has_proof = false;
        int rv = deliver(&a, hello, sizeof(hello), &has_proof);
        if (cases[i].err == 0) {
            assert_int_equal(rv, 0);
            assert_int_equal(a.hs.version, 1);
        } else {
            assert_refused(&a, rv, cases[i].err,
                           cases[i].err == QR_EVERSION ? QR_HANDSHAKE_REFUSAL_VERSION
                                                       : QR_HANDSHAKE_REFUSAL_MALFORMED,
                           cases[i].text);
        }
        qr__handshake_close(&a.hs);
    }
}

static void test_handshake_refuses_bad_node_ids(void **state)
{
    (void)state;
    struct {
        qr_node_id dialled, claimed;
        const char *text;
    } cases[] = {
        {0, 0, "handshake: peer claims node id 0"},
        {0, 1, "handshake: peer claims node id 1, which is ours"},
        {2, 3, "handshake: dialled node 2, but node 3 answered"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct end a;
        end_start(&a, 1, cases[i].dialled, challenge_a);
        uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
        make_hello(hello, FUZZ_CLUSTER_ID, cases[i].claimed, 1, 1);
        bool has_proof = false;
        int rv = deliver(&a, hello, sizeof(hello), &has_proof);
        assert_refused(&a, rv, QR_EBADID, QR_HANDSHAKE_REFUSAL_NODE, cases[i].text);
        qr__handshake_close(&a.hs);
    }
}

/* An attacker who recorded a whole session replays it against a fresh challenge. */
static void test_handshake_refuses_a_replayed_proof(void **state)
{
    (void)state;
    struct end a;
    struct end b;
    exchange_hellos(&a, &b);
    uint8_t recorded_hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    uint8_t recorded_proof[QR_HANDSHAKE_PROOF_FRAME_SIZE];
    memcpy(recorded_hello, b.hello, sizeof(recorded_hello));
    memcpy(recorded_proof, b.proof, sizeof(recorded_proof));
    bool has_proof = false;
    assert_int_equal(deliver(&a, recorded_proof, sizeof(recorded_proof), &has_proof), 0);
    qr__handshake_close(&a.hs);
    qr__handshake_close(&b.hs);
    uint8_t fresh[QR_HANDSHAKE_CHALLENGE_SIZE] = {42};
    end_start(&a, 1, 2, fresh);
    assert_int_equal(deliver(&a, recorded_hello, sizeof(recorded_hello), &has_proof), 0);
    int rv = deliver(&a, recorded_proof, sizeof(recorded_proof), &has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_PROOF,
                   "handshake: bad proof from node 2: wrong cluster secret?");
    qr__handshake_close(&a.hs);
}

/* An attacker posing as node 2 sends node 1's own challenge back and returns node 1's proof. */
static void test_handshake_refuses_a_reflected_proof(void **state)
{
    (void)state;
    struct end a;
    end_start(&a, 1, 2, challenge_a);
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    make_hello(hello, FUZZ_CLUSTER_ID, 2, 1, 1);
    memcpy(hello + QR_FRAME_HEADER_SIZE + 24, challenge_a, sizeof(challenge_a));
    qr__frame_header_encode(QR_FRAME_HELLO, hello + QR_FRAME_HEADER_SIZE, QR_HANDSHAKE_HELLO_SIZE,
                            hello);
    bool has_proof = false;
    assert_int_equal(deliver(&a, hello, sizeof(hello), &has_proof), 0);
    uint8_t reflected[QR_HANDSHAKE_PROOF_FRAME_SIZE];
    memcpy(reflected, a.proof, sizeof(reflected));
    int rv = deliver(&a, reflected, sizeof(reflected), &has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_PROOF,
                   "handshake: bad proof from node 2: wrong cluster secret?");
    qr__handshake_close(&a.hs);
}

static void test_handshake_refuses_frames_out_of_turn(void **state)
{
    (void)state;
    struct end a;
    struct end b;
    exchange_hellos(&a, &b);
    bool has_proof = false;
    int rv = deliver(&a, b.hello, sizeof(b.hello), &has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_ORDER,
                   "handshake: a second hello while waiting for proof");
    qr__handshake_close(&a.hs);
    end_start(&a, 1, 2, challenge_a);
    rv = deliver(&a, b.proof, sizeof(b.proof), &has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_ORDER,
                   "handshake: a proof while waiting for hello");
    qr__handshake_close(&a.hs);
    end_start(&a, 1, 2, challenge_a);
    uint8_t msg[QR_FRAME_HEADER_SIZE];
    qr__frame_header_encode(QR_FRAME_MSG, NULL, 0, msg);
    rv = deliver(&a, msg, sizeof(msg), &has_proof);
    assert_refused(&a, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_ORDER,
                   "handshake: a message while waiting for hello");
    qr__handshake_close(&a.hs);
    assert_int_equal(qr__handshake_on_proof(&b.hs, a.proof + QR_FRAME_HEADER_SIZE, 32), 0);
    rv = qr__handshake_on_proof(&b.hs, a.proof + QR_FRAME_HEADER_SIZE, 32);
    assert_refused(&b, rv, QR_EPROTO, QR_HANDSHAKE_REFUSAL_ORDER,
                   "handshake: a proof while waiting for nothing more");
    qr__handshake_close(&b.hs);
}

static void test_handshake_refuses_malformed_frames(void **state)
{
    (void)state;
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    const uint8_t *body = hello + QR_FRAME_HEADER_SIZE;
    struct end a;
    end_start(&a, 1, 0, challenge_a);
    make_hello(hello, FUZZ_CLUSTER_ID, 2, 1, 1);
    assert_refused(&a, qr__handshake_on_hello(&a.hs, body, 63, a.proof), QR_EPROTO,
                   QR_HANDSHAKE_REFUSAL_MALFORMED, "handshake: hello of 63 bytes, expected 64");
    qr__handshake_close(&a.hs);
    end_start(&a, 1, 0, challenge_a);
    hello[QR_FRAME_HEADER_SIZE + 63] = 1;
    assert_refused(&a, qr__handshake_on_hello(&a.hs, body, 64, a.proof), QR_EPROTO,
                   QR_HANDSHAKE_REFUSAL_MALFORMED,
                   "handshake: hello reserved bytes 56-63 not zero");
    qr__handshake_close(&a.hs);
    end_start(&a, 1, 0, challenge_a);
    make_hello(hello, FUZZ_CLUSTER_ID, 2, 1, 1);
    qr__put_u32(hello + QR_FRAME_HEADER_SIZE + 4, QR_FRAME_SIZE_MAX_MIN - 1);
    assert_refused(&a, qr__handshake_on_hello(&a.hs, body, 64, a.proof), QR_EPROTO,
                   QR_HANDSHAKE_REFUSAL_MALFORMED,
                   "handshake: hello frame size max 4095 outside [4096, 1073741824]");
    qr__handshake_close(&a.hs);
    end_start(&a, 1, 0, challenge_a);
    make_hello(hello, FUZZ_CLUSTER_ID, 2, 1, 1);
    assert_int_equal(qr__handshake_on_hello(&a.hs, body, 64, a.proof), 0);
    assert_refused(&a, qr__handshake_on_proof(&a.hs, body, 33), QR_EPROTO,
                   QR_HANDSHAKE_REFUSAL_MALFORMED, "handshake: proof of 33 bytes, expected 32");
    qr__handshake_close(&a.hs);
}

static void test_handshake_start_refuses_bad_options(void **state)
{
    (void)state;
    struct qr_handshake hs;
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    struct qr_handshake_opts good = {
        .cluster_id = 9, .node_id = 1, .secret = fuzz_secret, .secret_size = FUZZ_SECRET_SIZE};
    struct qr_handshake_opts o = good;
    o.secret_size = QR_HANDSHAKE_SECRET_SIZE_MIN - 1;
    assert_int_equal(qr__handshake_start(&hs, &o, hello), QR_EINVAL);
    assert_string_equal(hs.errmsg, "handshake: cluster secret of 15 bytes, it needs 16 to 256");
    assert_int_equal(hs.refusal, QR_HANDSHAKE_REFUSAL_LOCAL);
    o = good;
    o.node_id = 0;
    assert_int_equal(qr__handshake_start(&hs, &o, hello), QR_EINVAL);
    o = good;
    o.cluster_id = 0;
    assert_int_equal(qr__handshake_start(&hs, &o, hello), QR_EINVAL);
    o = good;
    o.peer_id = 1;
    assert_int_equal(qr__handshake_start(&hs, &o, hello), QR_EINVAL);
    assert_string_equal(hs.errmsg, "handshake: dialling our own node id 1");
    o = good;
    o.frame_size_max = QR_FRAME_SIZE_MAX_LIMIT + 1;
    assert_int_equal(qr__handshake_start(&hs, &o, hello), QR_EINVAL);
    o = good;
    o.secret = NULL;
    assert_int_equal(qr__handshake_start(&hs, &o, hello), QR_EINVAL);
    assert_int_equal(qr__handshake_start(&hs, &good, hello), 0);
    assert_int_equal(qr__get_u32(hello + QR_FRAME_HEADER_SIZE + 4), QR_FRAME_SIZE_MAX_DEFAULT);
    qr__handshake_close(&hs);
}

static void test_handshake_draws_a_fresh_random_challenge(void **state)
{
    (void)state;
    struct qr_handshake_opts opts = {
        .cluster_id = 9, .node_id = 1, .secret = fuzz_secret, .secret_size = FUZZ_SECRET_SIZE};
    struct qr_handshake one;
    struct qr_handshake two;
    uint8_t hello[QR_HANDSHAKE_HELLO_FRAME_SIZE];
    assert_int_equal(qr__handshake_start(&one, &opts, hello), 0);
    assert_memory_equal(hello + QR_FRAME_HEADER_SIZE + 24, one.challenge, 32);
    assert_int_equal(qr__handshake_start(&two, &opts, hello), 0);
    assert_memory_not_equal(one.challenge, two.challenge, QR_HANDSHAKE_CHALLENGE_SIZE);
    static const uint8_t zero[QR_HANDSHAKE_CHALLENGE_SIZE];
    assert_memory_not_equal(one.challenge, zero, QR_HANDSHAKE_CHALLENGE_SIZE);
    qr__handshake_close(&one);
    qr__handshake_close(&two);
    assert_memory_equal(one.secret, zero, QR_HANDSHAKE_CHALLENGE_SIZE); /* Wiped. */
}

/* ---- Fuzz seeds ------------------------------------------------------------------------------ */

static void write_seed(const char *dir, const char *name, uint8_t mode, const uint8_t *b, size_t n)
{
    char path[512];
    int len = snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_true(len > 0 && (size_t)len < sizeof(path));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(&mode, 1, 1, f), 1);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* fuzz_peer.c modes: 0 a stream (second byte seeds the split), 1 a body, 2 hello + proof. */
static void test_codec_writes_fuzz_seeds_when_asked(void **state)
{
    (void)state;
    const char *dir = getenv("QR_CODEC_CORPUS_DIR");
    if (dir == NULL) {
        skip();
    }
    struct qr_rng rng;
    qr__rng_seed(&rng, 11);
    static struct gen g;
    struct stream s;
    stream_build(&s, 5);
    struct end a;
    struct end b;
    exchange_hellos(&a, &b); /* Node 1 is the fuzzer's node; b is the peer it talks to. */
    struct stream hs;
    memset(&hs, 0, sizeof(hs));
    stream_add(&hs, QR_FRAME_HELLO, b.hello + QR_FRAME_HEADER_SIZE, QR_HANDSHAKE_HELLO_SIZE);
    stream_add(&hs, QR_FRAME_PROOF, b.proof + QR_FRAME_HEADER_SIZE, QR_HANDSHAKE_PROOF_SIZE);
    for (int type = 1; type <= QR_MSG_TYPE_MAX; type++) {
        gen_msg(&rng, (enum qr_msg_type)type, &g);
        struct qr_buf body = encode(&g.msg);
        char name[64];
        (void)snprintf(name, sizeof(name), "body_%s", qr_msg_type_name((enum qr_msg_type)type));
        write_seed(dir, name, 1, body.base, body.len);
        if (hs.frames_count < STREAM_FRAMES_MAX) {
            stream_add(&hs, QR_FRAME_MSG, body.base, body.len);
        }
        qr_free(body.base);
    }
    uint8_t *split = qr_malloc(s.size + 1);
    assert_non_null(split);
    split[0] = 3;
    memcpy(split + 1, s.bytes, s.size);
    write_seed(dir, "stream_every_type", 0, split, s.size + 1);
    uint8_t *auth = qr_malloc(hs.size + 1);
    assert_non_null(auth);
    auth[0] = 0;
    memcpy(auth + 1, hs.bytes, hs.size);
    write_seed(dir, "stream_handshake_then_messages", 0, auth, hs.size + 1);
    uint8_t pair[QR_HANDSHAKE_HELLO_SIZE + QR_HANDSHAKE_PROOF_SIZE];
    memcpy(pair, b.hello + QR_FRAME_HEADER_SIZE, QR_HANDSHAKE_HELLO_SIZE);
    memcpy(pair + QR_HANDSHAKE_HELLO_SIZE, b.proof + QR_FRAME_HEADER_SIZE, QR_HANDSHAKE_PROOF_SIZE);
    write_seed(dir, "handshake_accepted", 2, pair, sizeof(pair));
    struct qr_buf samples[2] = {sample_append(), sample_snapshot()};
    write_seed(dir, "body_append_two_entries", 1, samples[0].base, samples[0].len);
    write_seed(dir, "body_snapshot_small", 1, samples[1].base, samples[1].len);
    qr_free(samples[0].base);
    qr_free(samples[1].base);
    qr_free(auth);
    qr_free(split);
    qr_free(hs.bytes);
    qr_free(s.bytes);
    qr__handshake_close(&a.hs);
    qr__handshake_close(&b.hs);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, test_alloc_setup, test_alloc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_codec_round_trips_every_message_type_with_random_fields),
        TEST(test_codec_round_trips_empty_appends_and_empty_entries),
        TEST(test_codec_round_trips_a_full_config_and_an_empty_chunk),
        TEST(test_codec_carries_a_max_size_entry_through_a_frame),
        TEST(test_codec_heartbeat_has_the_documented_layout),
        TEST(test_codec_append_has_the_documented_layout),
        TEST(test_frame_header_has_the_documented_layout),
        TEST(test_codec_decode_refuses_every_truncation_and_trailing_bytes),
        TEST(test_codec_decode_refuses_bad_header_fields),
        TEST(test_codec_decode_refuses_bad_append_sections),
        TEST(test_codec_decode_refuses_bad_snapshot_sections),
        TEST(test_codec_decode_checks_counts_before_allocating),
        TEST(test_codec_decoder_releases_a_large_entry_array),
        TEST(test_codec_encode_frame_respects_the_limit_on_both_sides),
        TEST(test_frame_reader_delivers_frames_in_every_split),
        TEST(test_frame_reader_refuses_bad_headers_with_distinct_codes),
        TEST(test_frame_reader_length_limit_on_both_sides),
        TEST(test_frame_reader_allocates_only_for_bytes_that_arrived),
        TEST(test_frame_reader_releases_a_large_buffer_for_small_frames),
        TEST(test_frame_reader_init_refuses_limits_out_of_range),
        TEST(test_frame_reader_reset_starts_a_new_stream),
        TEST(test_frame_reader_completes_an_empty_body_without_more_bytes),
        TEST(test_frame_reader_survives_allocation_failure_at_every_point),
        TEST(test_codec_decode_survives_allocation_failure),
        TEST(test_handshake_accepts_two_nodes_of_one_cluster),
        TEST(test_handshake_frames_have_the_documented_bytes),
        TEST(test_handshake_refuses_a_wrong_secret),
        TEST(test_handshake_refuses_another_cluster),
        TEST(test_handshake_negotiates_or_refuses_the_version),
        TEST(test_handshake_refuses_bad_node_ids),
        TEST(test_handshake_refuses_a_replayed_proof),
        TEST(test_handshake_refuses_a_reflected_proof),
        TEST(test_handshake_refuses_frames_out_of_turn),
        TEST(test_handshake_refuses_malformed_frames),
        TEST(test_handshake_start_refuses_bad_options),
        TEST(test_handshake_draws_a_fresh_random_challenge),
        TEST(test_codec_writes_fuzz_seeds_when_asked),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
