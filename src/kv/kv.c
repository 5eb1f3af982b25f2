/*
 * kv/kv.c: the built-in key-value state machine, its command codec and its
 * snapshot format.
 *
 * Layer: kv (util only). The map is an open-addressing hash table with linear
 * probing and backward-shift deletion (no tombstones), whose capacity is a
 * power of two kept at least twice the key count. Each item owns one
 * allocation holding its key followed by its value. Iteration for snapshots
 * sorts the keys, so the serialized form depends only on the map's contents,
 * never on insertion history or addresses. This file never reads a clock,
 * never draws a random number and never prints.
 */
#include "kv/kv.h"

#include <stdlib.h>
#include <string.h>

#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/parse.h"

#define TABLE_CAPACITY_MIN 16
/* The table never holds more than this many slots: twice the largest key count. */
#define TABLE_CAPACITY_MAX ((uint64_t)QR_KV_KEYS_MAX_LIMIT * 2)
/* Smallest encoded key record in a snapshot: two sizes. */
#define SNAPSHOT_RECORD_SIZE_MIN 8
#define SNAPSHOT_HEADER_SIZE     16

_Static_assert(QR_KV_SNAPSHOT_SIZE_MIN == SNAPSHOT_HEADER_SIZE + 4, "header plus crc");
_Static_assert(QR_KV_CMD_SIZE_MAX < UINT32_MAX, "a command's size fits in 32 bits");
_Static_assert(QR_KV_KEYS_MAX_DEFAULT <= QR_KV_KEYS_MAX_LIMIT, "the default is allowed");

struct kv_item {
    uint8_t *bytes;      /* Key then value; NULL marks an empty slot. */
    uint64_t hash;       /* Hash of the key. */
    uint32_t key_size;   /* Bytes of key at the start of `bytes`. */
    uint32_t value_size; /* Bytes of value after the key. */
};

/* The first four bytes of every snapshot. */
static const uint8_t snapshot_magic[4] = {'Q', 'K', 'V', 'S'};

/* A reference to an item, for sorting. */
struct item_ref {
    const struct kv_item *item;
};

struct qr_kv {
    struct qr_kv_opts opts;
    struct kv_item *slots; /* capacity slots. */
    uint64_t capacity;     /* Power of two, >= TABLE_CAPACITY_MIN, >= 2 * count. */
    uint64_t count;        /* Occupied slots; <= opts.keys_max. */
};

/* ---- Hashing and probing ----------------------------------------------------------- */

/* FNV-1a, then a 64-bit finalizer so that the low bits used for the slot mix well. */
static uint64_t key_hash(const uint8_t *key, size_t size)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < size; i++) {
        h ^= key[i];
        h *= UINT64_C(0x100000001b3);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static bool item_has_key(const struct kv_item *item, uint64_t hash, struct qr_buf key)
{
    return item->hash == hash && item->key_size == key.len &&
           (key.len == 0 || memcmp(item->bytes, key.base, key.len) == 0);
}

/* The slot holding `key`, or the empty slot where it would go. The table is never full,
 * so the probe ends within `capacity` steps. */
static uint64_t table_find(const struct qr_kv *kv, uint64_t hash, struct qr_buf key)
{
    uint64_t mask = kv->capacity - 1;
    uint64_t slot = hash & mask;
    for (uint64_t probes = 0; probes < kv->capacity; probes++) {
        const struct kv_item *item = &kv->slots[slot];
        if (item->bytes == NULL || item_has_key(item, hash, key)) {
            return slot;
        }
        slot = (slot + 1) & mask;
    }
    QR_ASSERT(false && "kv: hash table full");
    return 0;
}

static void table_place(struct kv_item *slots, uint64_t capacity, const struct kv_item *item)
{
    uint64_t mask = capacity - 1;
    uint64_t slot = item->hash & mask;
    for (uint64_t probes = 0; probes < capacity; probes++) {
        if (slots[slot].bytes == NULL) {
            slots[slot] = *item;
            return;
        }
        slot = (slot + 1) & mask;
    }
    QR_ASSERT(false && "kv: no free slot while rehashing");
}

static int table_resize(struct qr_kv *kv, uint64_t capacity)
{
    QR_ASSERT(capacity >= 2 * kv->count);
    QR_ASSERT(capacity <= TABLE_CAPACITY_MAX);
    struct kv_item *slots = qr_calloc((size_t)capacity, sizeof(*slots));
    if (slots == NULL) {
        return QR_ENOMEM;
    }
    for (uint64_t i = 0; i < kv->capacity; i++) {
        if (kv->slots[i].bytes != NULL) {
            table_place(slots, capacity, &kv->slots[i]);
        }
    }
    qr_free(kv->slots);
    kv->slots = slots;
    kv->capacity = capacity;
    return 0;
}

static uint64_t capacity_for(uint64_t count)
{
    uint64_t capacity = TABLE_CAPACITY_MIN;
    while (capacity < 2 * count && capacity < TABLE_CAPACITY_MAX) {
        capacity *= 2;
    }
    return capacity;
}

/* Remove the item at `slot`, shifting later members of its probe run back so that no
 * lookup ever meets a hole before its key (Knuth's algorithm R). */
static void table_remove_at(struct qr_kv *kv, uint64_t slot)
{
    uint64_t mask = kv->capacity - 1;
    qr_free(kv->slots[slot].bytes);
    kv->slots[slot].bytes = NULL;
    kv->count--;
    uint64_t hole = slot;
    uint64_t next = (slot + 1) & mask;
    for (uint64_t probes = 0; probes < kv->capacity; probes++) {
        struct kv_item *item = &kv->slots[next];
        if (item->bytes == NULL) {
            return;
        }
        uint64_t home = item->hash & mask;
        /* Move the item into the hole unless its home lies cyclically in (hole, next]. */
        bool home_after_hole = ((next - home) & mask) < ((next - hole) & mask);
        if (!home_after_hole) {
            kv->slots[hole] = *item;
            item->bytes = NULL;
            hole = next;
        }
        next = (next + 1) & mask;
    }
}

/* ---- Lifecycle ---------------------------------------------------------------------- */

static int opts_resolve(const struct qr_kv_opts *opts, struct qr_kv_opts *resolved_out)
{
    memset(resolved_out, 0, sizeof(*resolved_out));
    resolved_out->keys_max = QR_KV_KEYS_MAX_DEFAULT;
    if (opts != NULL && opts->keys_max != 0) {
        if (opts->keys_max > QR_KV_KEYS_MAX_LIMIT) {
            return QR_EINVAL;
        }
        resolved_out->keys_max = opts->keys_max;
    }
    return 0;
}

int qr__kv_create(const struct qr_kv_opts *opts, struct qr_kv **kv_out)
{
    QR_ASSERT(kv_out != NULL);
    struct qr_kv_opts resolved;
    int rv = opts_resolve(opts, &resolved);
    if (rv != 0) {
        return rv;
    }
    struct qr_kv *kv = qr_calloc(1, sizeof(*kv));
    if (kv == NULL) {
        return QR_ENOMEM;
    }
    kv->opts = resolved;
    kv->capacity = TABLE_CAPACITY_MIN;
    kv->slots = qr_calloc((size_t)kv->capacity, sizeof(*kv->slots));
    if (kv->slots == NULL) {
        qr_free(kv);
        return QR_ENOMEM;
    }
    *kv_out = kv;
    return 0;
}

static void slots_free(struct kv_item *slots, uint64_t capacity)
{
    for (uint64_t i = 0; i < capacity; i++) {
        qr_free(slots[i].bytes);
    }
    qr_free(slots);
}

void qr__kv_destroy(struct qr_kv *kv)
{
    if (kv == NULL) {
        return;
    }
    slots_free(kv->slots, kv->capacity);
    qr_free(kv);
}

uint64_t qr__kv_count(const struct qr_kv *kv)
{
    QR_ASSERT(kv != NULL);
    return kv->count;
}

bool qr__kv_get(const struct qr_kv *kv, struct qr_buf key, struct qr_buf *value_out)
{
    QR_ASSERT(kv != NULL && value_out != NULL);
    QR_ASSERT(key.base != NULL || key.len == 0);
    uint64_t hash = key_hash(key.base, key.len);
    const struct kv_item *item = &kv->slots[table_find(kv, hash, key)];
    if (item->bytes == NULL) {
        value_out->base = NULL;
        value_out->len = 0;
        return false;
    }
    value_out->base = item->bytes + item->key_size;
    value_out->len = item->value_size;
    return true;
}

/* ---- Commands ----------------------------------------------------------------------- */

/* Make `key` hold `value` (copied). Refuses a new key beyond keys_max through *error_out. */
static int kv_store(struct qr_kv *kv,
                    struct qr_buf key,
                    const uint8_t *value,
                    size_t value_size,
                    enum qr_kv_error *error_out)
{
    QR_ASSERT(key.len <= QR_KV_KEY_SIZE_MAX && value_size <= QR_KV_VALUE_SIZE_MAX);
    *error_out = QR_KV_ERROR_NONE;
    uint64_t hash = key_hash(key.base, key.len);
    uint64_t slot = table_find(kv, hash, key);
    bool is_new = kv->slots[slot].bytes == NULL;
    if (is_new && kv->count >= kv->opts.keys_max) {
        *error_out = QR_KV_ERROR_KEYS_MAX;
        return 0;
    }
    uint8_t *bytes = qr_malloc(key.len + value_size + 1); /* +1: never a zero-size block. */
    if (bytes == NULL) {
        return QR_ENOMEM;
    }
    if (is_new && 2 * (kv->count + 1) > kv->capacity) {
        int rv = table_resize(kv, kv->capacity * 2);
        if (rv != 0) {
            qr_free(bytes);
            return rv;
        }
        slot = table_find(kv, hash, key);
    }
    if (key.len > 0) {
        memcpy(bytes, key.base, key.len);
    }
    if (value_size > 0) {
        memcpy(bytes + key.len, value, value_size);
    }
    struct kv_item *item = &kv->slots[slot];
    qr_free(item->bytes);
    item->bytes = bytes;
    item->hash = hash;
    item->key_size = (uint32_t)key.len;
    item->value_size = (uint32_t)value_size;
    kv->count += is_new ? 1 : 0;
    return 0;
}

static int apply_incr(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    int64_t current = 0;
    struct qr_buf value;
    if (qr__kv_get(kv, cmd->key, &value) && !qr__kv_parse_int(value.base, value.len, &current)) {
        result->status = QR_KV_ERROR;
        result->error = QR_KV_ERROR_NOT_INTEGER;
        return 0;
    }
    /* Redis refuses an increment that leaves the int64 range rather than wrapping. */
    if ((cmd->delta > 0 && current > INT64_MAX - cmd->delta) ||
        (cmd->delta < 0 && current < INT64_MIN - cmd->delta)) {
        result->status = QR_KV_ERROR;
        result->error = QR_KV_ERROR_OVERFLOW;
        return 0;
    }
    int64_t next = current + cmd->delta;
    uint8_t text[QR_KV_INT_TEXT_SIZE_MAX];
    size_t text_size = qr__kv_format_int(next, text);
    enum qr_kv_error error;
    int rv = kv_store(kv, cmd->key, text, text_size, &error);
    if (rv != 0) {
        return rv;
    }
    if (error != QR_KV_ERROR_NONE) {
        result->status = QR_KV_ERROR;
        result->error = error;
        return 0;
    }
    result->status = QR_KV_INTEGER;
    result->integer = next;
    return 0;
}

static void apply_del(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    uint64_t hash = key_hash(cmd->key.base, cmd->key.len);
    uint64_t slot = table_find(kv, hash, cmd->key);
    result->status = QR_KV_INTEGER;
    result->integer = 0;
    if (kv->slots[slot].bytes != NULL) {
        table_remove_at(kv, slot);
        result->integer = 1;
    }
}

int qr__kv_apply(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result_out)
{
    QR_ASSERT(kv != NULL && cmd != NULL && result_out != NULL);
    QR_ASSERT(cmd->key.len <= QR_KV_KEY_SIZE_MAX);
    QR_ASSERT(cmd->key.base != NULL || cmd->key.len == 0);
    memset(result_out, 0, sizeof(*result_out));
    int rv = 0;
    switch (cmd->op) {
    case QR_KV_SET: {
        QR_ASSERT(cmd->value.len <= QR_KV_VALUE_SIZE_MAX);
        enum qr_kv_error error;
        rv = kv_store(kv, cmd->key, cmd->value.base, cmd->value.len, &error);
        result_out->status = error == QR_KV_ERROR_NONE ? QR_KV_OK : QR_KV_ERROR;
        result_out->error = error;
        break;
    }
    case QR_KV_GET:
        result_out->status =
            qr__kv_get(kv, cmd->key, &result_out->value) ? QR_KV_VALUE : QR_KV_NOTFOUND;
        break;
    case QR_KV_DEL:
        apply_del(kv, cmd, result_out);
        break;
    case QR_KV_INCR:
        rv = apply_incr(kv, cmd, result_out);
        break;
    default:
        QR_ASSERT(false && "kv: unknown op");
    }
    QR_ASSERT(kv->count <= kv->opts.keys_max);
    QR_DEBUG_ASSERT(2 * kv->count <= kv->capacity);
    return rv;
}

/* ---- Integers as text --------------------------------------------------------------- */

bool qr__kv_parse_int(const uint8_t *text, size_t size, int64_t *value_out)
{
    return size <= QR_KV_INT_TEXT_SIZE_MAX && qr__parse_i64_canonical(text, size, value_out);
}

size_t qr__kv_format_int(int64_t value, uint8_t *text)
{
    uint8_t reversed[QR_KV_INT_TEXT_SIZE_MAX];
    size_t digits = 0;
    /* Work on the magnitude as unsigned so that INT64_MIN needs no special case. */
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        reversed[digits++] = (uint8_t)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0 && digits < sizeof(reversed));
    size_t size = 0;
    if (value < 0) {
        text[size++] = '-';
    }
    while (digits > 0) {
        text[size++] = reversed[--digits];
    }
    QR_ASSERT(size <= QR_KV_INT_TEXT_SIZE_MAX);
    return size;
}

const char *qr__kv_error_text(enum qr_kv_error error)
{
    switch (error) {
    case QR_KV_ERROR_NONE:
        return "OK";
    case QR_KV_ERROR_NOT_INTEGER:
        return "ERR value is not an integer or out of range";
    case QR_KV_ERROR_OVERFLOW:
        return "ERR increment or decrement would overflow";
    case QR_KV_ERROR_KEYS_MAX:
        return "ERR too many keys";
    }
    return "ERR unknown error";
}

const char *qr__kv_op_name(enum qr_kv_op op)
{
    switch (op) {
    case QR_KV_SET:
        return "set";
    case QR_KV_GET:
        return "get";
    case QR_KV_DEL:
        return "del";
    case QR_KV_INCR:
        return "incr";
    }
    return "?";
}

/* ---- Command codec ------------------------------------------------------------------ */

size_t qr__kv_cmd_encoded_size(const struct qr_kv_cmd *cmd)
{
    QR_ASSERT(cmd != NULL);
    QR_ASSERT(cmd->op >= QR_KV_SET && cmd->op <= QR_KV_OP_MAX);
    size_t size = QR_KV_CMD_HEADER_SIZE + cmd->key.len;
    if (cmd->op == QR_KV_SET) {
        size += 4 + cmd->value.len;
    } else if (cmd->op == QR_KV_INCR) {
        size += 8;
    }
    return size;
}

void qr__kv_cmd_encode(const struct qr_kv_cmd *cmd, uint8_t *buf)
{
    QR_ASSERT(cmd != NULL && buf != NULL);
    QR_ASSERT(cmd->key.len <= QR_KV_KEY_SIZE_MAX);
    QR_ASSERT(cmd->op != QR_KV_SET || cmd->value.len <= QR_KV_VALUE_SIZE_MAX);
    size_t size = qr__kv_cmd_encoded_size(cmd);
    buf[0] = QR_KV_CODEC_VERSION;
    buf[1] = (uint8_t)cmd->op;
    buf[2] = 0;
    buf[3] = 0;
    qr__put_u64(buf + 4, cmd->client_id);
    qr__put_u64(buf + 12, cmd->seq);
    qr__put_u32(buf + 20, (uint32_t)cmd->key.len);
    size_t at = QR_KV_CMD_HEADER_SIZE;
    if (cmd->key.len > 0) {
        memcpy(buf + at, cmd->key.base, cmd->key.len);
    }
    at += cmd->key.len;
    if (cmd->op == QR_KV_SET) {
        qr__put_u32(buf + at, (uint32_t)cmd->value.len);
        at += 4;
        if (cmd->value.len > 0) {
            memcpy(buf + at, cmd->value.base, cmd->value.len);
        }
        at += cmd->value.len;
    } else if (cmd->op == QR_KV_INCR) {
        qr__put_u64(buf + at, (uint64_t)cmd->delta);
        at += 8;
    }
    QR_ASSERT(at == size);
}

/* The op-specific tail after the key, which starts at offset `at`. */
static int
cmd_decode_tail(const uint8_t *buf, size_t size, size_t at, struct qr_kv_cmd *cmd, char *errmsg)
{
    if (cmd->op == QR_KV_SET) {
        if (size - at < 4) {
            return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset %zu: value size truncated",
                            at);
        }
        uint32_t value_size = qr__get_u32(buf + at);
        if (value_size > QR_KV_VALUE_SIZE_MAX) {
            return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset %zu: value size %u exceeds %u",
                            at, (unsigned)value_size, (unsigned)QR_KV_VALUE_SIZE_MAX);
        }
        at += 4;
        if (size - at < value_size) {
            return qr__errf(errmsg, QR_ECORRUPT,
                            "kv: command offset %zu: value of %u bytes truncated to %zu", at,
                            (unsigned)value_size, size - at);
        }
        cmd->value.base = value_size > 0 ? (uint8_t *)(uintptr_t)(buf + at) : NULL;
        cmd->value.len = value_size;
        at += value_size;
    } else if (cmd->op == QR_KV_INCR) {
        if (size - at < 8) {
            return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset %zu: delta truncated", at);
        }
        cmd->delta = (int64_t)qr__get_u64(buf + at);
        at += 8;
    }
    if (at != size) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset %zu: %zu trailing bytes", at,
                        size - at);
    }
    return 0;
}

int qr__kv_cmd_decode(const uint8_t *buf, size_t size, struct qr_kv_cmd *cmd_out, char *errmsg)
{
    QR_ASSERT(cmd_out != NULL);
    memset(cmd_out, 0, sizeof(*cmd_out));
    if (size < QR_KV_CMD_HEADER_SIZE || buf == NULL) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command of %zu bytes is shorter than %d", size,
                        QR_KV_CMD_HEADER_SIZE);
    }
    if (buf[0] != QR_KV_CODEC_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "kv: command offset 0: version %u, expected %u",
                        (unsigned)buf[0], (unsigned)QR_KV_CODEC_VERSION);
    }
    if (buf[1] < QR_KV_SET || buf[1] > QR_KV_OP_MAX) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 1: unknown op %u",
                        (unsigned)buf[1]);
    }
    if (buf[2] != 0 || buf[3] != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 2: reserved bytes not zero");
    }
    cmd_out->op = (enum qr_kv_op)buf[1];
    cmd_out->client_id = qr__get_u64(buf + 4);
    cmd_out->seq = qr__get_u64(buf + 12);
    uint32_t key_size = qr__get_u32(buf + 20);
    if (key_size > QR_KV_KEY_SIZE_MAX) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 20: key size %u exceeds %d",
                        (unsigned)key_size, QR_KV_KEY_SIZE_MAX);
    }
    size_t at = QR_KV_CMD_HEADER_SIZE;
    if (size - at < key_size) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "kv: command offset %zu: key of %u bytes truncated to %zu", at,
                        (unsigned)key_size, size - at);
    }
    cmd_out->key.base = key_size > 0 ? (uint8_t *)(uintptr_t)(buf + at) : NULL;
    cmd_out->key.len = key_size;
    at += key_size;
    int rv = cmd_decode_tail(buf, size, at, cmd_out, errmsg);
    if (rv != 0) {
        memset(cmd_out, 0, sizeof(*cmd_out));
    }
    return rv;
}

/* ---- Snapshots ---------------------------------------------------------------------- */

/* Byte order, then shorter first: the order keys take in a snapshot. */
static int key_compare(const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size)
{
    size_t common = a_size < b_size ? a_size : b_size;
    int c = common > 0 ? memcmp(a, b, common) : 0;
    if (c != 0) {
        return c;
    }
    return (a_size > b_size) - (a_size < b_size);
}

static int item_compare(const void *a, const void *b)
{
    const struct kv_item *x = ((const struct item_ref *)a)->item;
    const struct kv_item *y = ((const struct item_ref *)b)->item;
    return key_compare(x->bytes, x->key_size, y->bytes, y->key_size);
}

static size_t snapshot_write_items(const struct item_ref *items, uint64_t count, uint8_t *buf)
{
    size_t at = SNAPSHOT_HEADER_SIZE;
    for (uint64_t i = 0; i < count; i++) {
        const struct kv_item *item = items[i].item;
        qr__put_u32(buf + at, item->key_size);
        at += 4;
        memcpy(buf + at, item->bytes, item->key_size);
        at += item->key_size;
        qr__put_u32(buf + at, item->value_size);
        at += 4;
        memcpy(buf + at, item->bytes + item->key_size, item->value_size);
        at += item->value_size;
    }
    return at;
}

int qr__kv_snapshot(const struct qr_kv *kv, struct qr_buf *snapshot_out)
{
    QR_ASSERT(kv != NULL && snapshot_out != NULL);
    struct item_ref *items = qr_malloc((size_t)(kv->count + 1) * sizeof(struct item_ref));
    if (items == NULL) {
        return QR_ENOMEM;
    }
    uint64_t n = 0;
    size_t size = QR_KV_SNAPSHOT_SIZE_MIN;
    for (uint64_t i = 0; i < kv->capacity; i++) {
        if (kv->slots[i].bytes != NULL) {
            items[n++].item = &kv->slots[i];
            size += SNAPSHOT_RECORD_SIZE_MIN + kv->slots[i].key_size + kv->slots[i].value_size;
        }
    }
    QR_ASSERT(n == kv->count);
    qsort(items, (size_t)n, sizeof(struct item_ref), item_compare);
    uint8_t *buf = qr_malloc(size);
    if (buf == NULL) {
        qr_free(items);
        return QR_ENOMEM;
    }
    memcpy(buf, snapshot_magic, sizeof(snapshot_magic));
    qr__put_u32(buf + 4, QR_KV_SNAPSHOT_VERSION);
    qr__put_u64(buf + 8, n);
    size_t at = snapshot_write_items(items, n, buf);
    qr_free(items);
    QR_ASSERT(at + 4 == size);
    qr__put_u32(buf + at, qr__crc32c(0, buf, at));
    snapshot_out->base = buf;
    snapshot_out->len = size;
    return 0;
}

static int snapshot_check_header(const uint8_t *buf, size_t size, uint64_t *count_out, char *errmsg)
{
    if (size < QR_KV_SNAPSHOT_SIZE_MIN || buf == NULL) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot of %zu bytes is shorter than %d", size,
                        QR_KV_SNAPSHOT_SIZE_MIN);
    }
    if (memcmp(buf, snapshot_magic, sizeof(snapshot_magic)) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset 0: bad magic");
    }
    uint32_t version = qr__get_u32(buf + 4);
    if (version != QR_KV_SNAPSHOT_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "kv: snapshot offset 4: version %u, expected %u",
                        (unsigned)version, (unsigned)QR_KV_SNAPSHOT_VERSION);
    }
    uint32_t crc_stored = qr__get_u32(buf + size - 4);
    uint32_t crc = qr__crc32c(0, buf, size - 4);
    if (crc != crc_stored) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: crc %08x, computed %08x",
                        size - 4, (unsigned)crc_stored, (unsigned)crc);
    }
    uint64_t count = qr__get_u64(buf + 8);
    /* Each key needs at least a record header, which bounds what we allocate below. */
    if (count > (size - QR_KV_SNAPSHOT_SIZE_MIN) / SNAPSHOT_RECORD_SIZE_MIN) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "kv: snapshot offset 8: %llu keys cannot fit in %zu bytes",
                        (unsigned long long)count, size);
    }
    *count_out = count;
    return 0;
}

/* Reads one size field at *at, checking that it and the bytes it announces fit. */
static int snapshot_read_size(const uint8_t *buf,
                              size_t end,
                              size_t *at,
                              uint32_t size_max,
                              const char *what,
                              uint32_t *size_out,
                              char *errmsg)
{
    if (end - *at < 4) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: %s size truncated", *at,
                        what);
    }
    uint32_t size = qr__get_u32(buf + *at);
    if (size > size_max) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: %s size %u exceeds %u", *at,
                        what, (unsigned)size, (unsigned)size_max);
    }
    *at += 4;
    if (end - *at < size) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: %s of %u bytes truncated",
                        *at, what, (unsigned)size);
    }
    *size_out = size;
    return 0;
}

static int snapshot_read_items(
    struct qr_kv *fresh, const uint8_t *buf, size_t size, uint64_t count, char *errmsg)
{
    size_t end = size - 4;
    size_t at = SNAPSHOT_HEADER_SIZE;
    struct qr_buf previous = {NULL, 0};
    for (uint64_t i = 0; i < count; i++) {
        uint32_t key_size = 0;
        uint32_t value_size = 0;
        size_t key_at = at;
        int rv = snapshot_read_size(buf, end, &at, QR_KV_KEY_SIZE_MAX, "key", &key_size, errmsg);
        if (rv != 0) {
            return rv;
        }
        struct qr_buf key = {(uint8_t *)(uintptr_t)(buf + at), key_size};
        /* Strictly ascending keys: also rules out duplicates. */
        if (i > 0 && key_compare(previous.base, previous.len, key.base, key.len) >= 0) {
            return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: key %llu out of order",
                            key_at, (unsigned long long)i);
        }
        at += key_size;
        rv = snapshot_read_size(buf, end, &at, QR_KV_VALUE_SIZE_MAX, "value", &value_size, errmsg);
        if (rv != 0) {
            return rv;
        }
        enum qr_kv_error error = QR_KV_ERROR_NONE;
        rv = kv_store(fresh, key, buf + at, value_size, &error);
        if (rv != 0) {
            return rv;
        }
        QR_ASSERT(error == QR_KV_ERROR_NONE); /* keys_max was checked against count. */
        at += value_size;
        previous = key;
    }
    if (at != end) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: %zu trailing bytes", at,
                        end - at);
    }
    return 0;
}

int qr__kv_restore(struct qr_kv *kv, const uint8_t *buf, size_t size, char *errmsg)
{
    QR_ASSERT(kv != NULL);
    uint64_t count = 0;
    int rv = snapshot_check_header(buf, size, &count, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (count > kv->opts.keys_max) {
        return qr__errf(errmsg, QR_EBUSY, "kv: snapshot holds %llu keys, the limit is %llu",
                        (unsigned long long)count, (unsigned long long)kv->opts.keys_max);
    }
    /* Build the new map on the side so that a failure leaves the store as it was. */
    struct qr_kv fresh = {.opts = kv->opts, .capacity = capacity_for(count), .count = 0};
    fresh.slots = qr_calloc((size_t)fresh.capacity, sizeof(*fresh.slots));
    if (fresh.slots == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "kv: snapshot of %llu keys: out of memory",
                        (unsigned long long)count);
    }
    rv = snapshot_read_items(&fresh, buf, size, count, errmsg);
    if (rv != 0) {
        slots_free(fresh.slots, fresh.capacity);
        if (rv == QR_ENOMEM) {
            (void)qr__errf(errmsg, rv, "kv: snapshot restore: out of memory");
        }
        return rv;
    }
    slots_free(kv->slots, kv->capacity);
    kv->slots = fresh.slots;
    kv->capacity = fresh.capacity;
    kv->count = fresh.count;
    QR_ASSERT(kv->count == count);
    return 0;
}

void qr__kv_check_invariants(const struct qr_kv *kv)
{
    QR_ASSERT(kv != NULL);
    QR_ASSERT(kv->capacity >= TABLE_CAPACITY_MIN && (kv->capacity & (kv->capacity - 1)) == 0);
    QR_ASSERT(2 * kv->count <= kv->capacity);
    QR_ASSERT(kv->count <= kv->opts.keys_max);
    uint64_t mask = kv->capacity - 1;
    uint64_t occupied = 0;
    for (uint64_t i = 0; i < kv->capacity; i++) {
        const struct kv_item *item = &kv->slots[i];
        if (item->bytes == NULL) {
            continue;
        }
        occupied++;
        QR_ASSERT(item->hash == key_hash(item->bytes, item->key_size));
        QR_ASSERT(item->key_size <= QR_KV_KEY_SIZE_MAX);
        QR_ASSERT(item->value_size <= QR_KV_VALUE_SIZE_MAX);
        /* No hole between an item's home slot and where it sits: lookups would miss it. */
        for (uint64_t s = item->hash & mask; s != i; s = (s + 1) & mask) {
            QR_ASSERT(kv->slots[s].bytes != NULL);
        }
    }
    QR_ASSERT(occupied == kv->count);
}
