/*
 * kv/kv.c: the built-in key-value state machine, its command codec, its
 * snapshot format, incremental scans and glob matching.
 *
 * Layer: kv (util only). The map is an open-addressing hash table with linear
 * probing and backward-shift deletion (no tombstones), whose capacity is a
 * power of two kept at least twice the key count. An item's home slot is the
 * TOP bits of its key's hash, so the table follows hash order except where a
 * probe run pushes items a little past their home: that is what lets a scan
 * cursor be a hash value ("every hash below this one is done") that means the
 * same thing whatever the table's size. Each item owns one allocation holding
 * its key followed by its value. Iteration for snapshots sorts the keys, so the
 * serialized form depends only on the map's contents, never on insertion
 * history or addresses. The member table is a small array sorted by id. This
 * file never reads a clock, never draws a random number and never prints.
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
/* Bytes of the members count that version 2 snapshots add. */
#define SNAPSHOT_MEMBERS_COUNT_SIZE 4
/* Smallest encoded member in a snapshot: id and two sizes. */
#define SNAPSHOT_MEMBER_SIZE_MIN 16
/* Bit of the envelope's flags field: the command carries items instead of a key. */
#define WIRE_ITEMS 0x8000u
/* Bits of the envelope's flags field that carry qr_kv_cmd.flags. */
#define WIRE_CMD_FLAGS 0x00ffu
/* Offset of the key size (or item count) in an encoded command. */
#define CMD_KEY_SIZE_OFFSET 20
/* A scan examines at most this many home slots per key it was asked for. */
#define SCAN_SLOTS_PER_KEY 10

_Static_assert(QR_KV_SNAPSHOT_SIZE_MIN == SNAPSHOT_HEADER_SIZE + 4, "header plus crc");
_Static_assert(QR_KV_CMD_SIZE_MAX < UINT32_MAX, "a command's size fits in 32 bits");
_Static_assert(QR_KV_KEYS_MAX_DEFAULT <= QR_KV_KEYS_MAX_LIMIT, "the default is allowed");
_Static_assert(QR_KV_CMD_HEADER_SIZE + QR_KV_KEY_SIZE_MAX + 8 +
                       2 * (uint64_t)QR_KV_VALUE_SIZE_MAX <=
                   QR_KV_CMD_SIZE_MAX,
               "the largest CAS fits in a command");
_Static_assert(8 + QR_KV_KEY_SIZE_MAX + (uint64_t)QR_KV_VALUE_SIZE_MAX <= QR_KV_ITEMS_SIZE_MAX,
               "an MSET of one pair of the largest key and value fits");
_Static_assert(QR_KV_ADDRESS_SIZE_MAX <= QR_KV_KEY_SIZE_MAX, "a peer address fits the key field");
_Static_assert((QR_KV_SET_NX | QR_KV_SET_XX | QR_KV_SET_GET | QR_KV_CAS_ABSENT) <= WIRE_CMD_FLAGS,
               "command flags fit the envelope's low byte");
_Static_assert(QR_KV_OP_MAX <= UINT8_MAX, "an op fits one byte");

struct kv_item {
    uint8_t *bytes;      /* Key then value; NULL marks an empty slot. */
    uint64_t hash;       /* Hash of the key. */
    uint32_t key_size;   /* Bytes of key at the start of `bytes`. */
    uint32_t value_size; /* Bytes of value after the key. */
};

/* A cluster member's addresses, kept inline so that changing them never allocates. */
struct kv_member {
    uint64_t id;                                    /* Non-zero. */
    uint32_t peer_size;                             /* <= QR_KV_ADDRESS_SIZE_MAX. */
    uint32_t client_size;                           /* <= QR_KV_ADDRESS_SIZE_MAX; not both 0. */
    uint8_t peer_address[QR_KV_ADDRESS_SIZE_MAX];   /* peer_size bytes used. */
    uint8_t client_address[QR_KV_ADDRESS_SIZE_MAX]; /* client_size bytes used. */
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
    unsigned shift;        /* 64 - log2(capacity): an item's home slot is hash >> shift. */
    uint64_t count;        /* Occupied slots; <= opts.keys_max. */
    /* NULL until the first member arrives, then room for QR_KV_MEMBERS_MAX: allocated
       once, so that later MEMBER commands cannot fail for want of memory. */
    struct kv_member *members;
    size_t members_count; /* members[0 .. members_count) by strictly ascending id. */
    /* The bytes an item held before a SET ... GET replaced it: the answer views the old
       value in them, so they live until the store next changes. NULL otherwise. */
    uint8_t *retired;
};

/* ---- Hashing and probing ----------------------------------------------------------- */

/* FNV-1a, then a 64-bit finalizer so that the top bits used for the slot mix well. */
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

static unsigned shift_for(uint64_t capacity)
{
    QR_ASSERT(capacity >= TABLE_CAPACITY_MIN && capacity <= TABLE_CAPACITY_MAX);
    QR_ASSERT((capacity & (capacity - 1)) == 0);
    unsigned bits = 0;
    while (((uint64_t)1 << bits) < capacity) {
        bits++;
    }
    return 64 - bits;
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
    uint64_t slot = hash >> kv->shift;
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

static void
table_place(struct kv_item *slots, uint64_t capacity, unsigned shift, const struct kv_item *item)
{
    uint64_t mask = capacity - 1;
    uint64_t slot = item->hash >> shift;
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
    unsigned shift = shift_for(capacity);
    struct kv_item *slots = qr_calloc((size_t)capacity, sizeof(*slots));
    if (slots == NULL) {
        return QR_ENOMEM;
    }
    for (uint64_t i = 0; i < kv->capacity; i++) {
        if (kv->slots[i].bytes != NULL) {
            table_place(slots, capacity, shift, &kv->slots[i]);
        }
    }
    qr_free(kv->slots);
    kv->slots = slots;
    kv->capacity = capacity;
    kv->shift = shift;
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
        uint64_t home = item->hash >> kv->shift;
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

/* Remove `key` if present; answers whether it was. */
static bool table_remove(struct qr_kv *kv, struct qr_buf key)
{
    uint64_t hash = key_hash(key.base, key.len);
    uint64_t slot = table_find(kv, hash, key);
    if (kv->slots[slot].bytes == NULL) {
        return false;
    }
    table_remove_at(kv, slot);
    return true;
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
    kv->shift = shift_for(kv->capacity);
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

/* The store is about to change: answers that viewed replaced bytes expire now. */
static void retired_release(struct qr_kv *kv)
{
    qr_free(kv->retired);
    kv->retired = NULL;
}

void qr__kv_destroy(struct qr_kv *kv)
{
    if (kv == NULL) {
        return;
    }
    slots_free(kv->slots, kv->capacity);
    qr_free(kv->members);
    qr_free(kv->retired);
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

size_t qr__kv_members_count(const struct qr_kv *kv)
{
    QR_ASSERT(kv != NULL);
    return kv->members_count;
}

void qr__kv_member_at(const struct qr_kv *kv, size_t i, struct qr_kv_member *member_out)
{
    QR_ASSERT(kv != NULL && member_out != NULL);
    QR_ASSERT(i < kv->members_count);
    const struct kv_member *m = &kv->members[i];
    member_out->id = m->id;
    member_out->peer_address.base = (uint8_t *)(uintptr_t)m->peer_address;
    member_out->peer_address.len = m->peer_size;
    member_out->client_address.base = (uint8_t *)(uintptr_t)m->client_address;
    member_out->client_address.len = m->client_size;
}

/* ---- Commands ----------------------------------------------------------------------- */

static bool buf_equal(struct qr_buf a, struct qr_buf b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

/* Make `key` hold head . tail (copied: either may view the key's current value). With
 * is_retiring, the replaced bytes move to kv->retired instead of being freed. Refuses a
 * new key beyond keys_max through *error_out. QR_ENOMEM leaves the store unchanged. */
static int kv_store_parts(struct qr_kv *kv,
                          struct qr_buf key,
                          struct qr_buf head,
                          struct qr_buf tail,
                          bool is_retiring,
                          enum qr_kv_error *error_out)
{
    size_t value_size = head.len + tail.len;
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
    if (head.len > 0) {
        memcpy(bytes + key.len, head.base, head.len);
    }
    if (tail.len > 0) {
        memcpy(bytes + key.len + head.len, tail.base, tail.len);
    }
    struct kv_item *item = &kv->slots[slot];
    if (is_retiring && item->bytes != NULL) {
        QR_ASSERT(kv->retired == NULL); /* Released when the apply began. */
        kv->retired = item->bytes;
    } else {
        qr_free(item->bytes);
    }
    item->bytes = bytes;
    item->hash = hash;
    item->key_size = (uint32_t)key.len;
    item->value_size = (uint32_t)value_size;
    kv->count += is_new ? 1 : 0;
    return 0;
}

/* Make `key` hold `value` (copied). Refuses a new key beyond keys_max through *error_out. */
static int kv_store(struct qr_kv *kv,
                    struct qr_buf key,
                    const uint8_t *value,
                    size_t value_size,
                    enum qr_kv_error *error_out)
{
    struct qr_buf head = {(uint8_t *)(uintptr_t)value, value_size};
    struct qr_buf none = {NULL, 0};
    return kv_store_parts(kv, key, head, none, false, error_out);
}

static void result_error(struct qr_kv_result *result, enum qr_kv_error error)
{
    QR_ASSERT(error != QR_KV_ERROR_NONE);
    result->status = QR_KV_ERROR;
    result->error = error;
}

static void result_integer(struct qr_kv_result *result, int64_t integer)
{
    result->status = QR_KV_INTEGER;
    result->integer = integer;
}

/* Redis 7 SET with NX / XX / GET. Without flags it takes the plain path: one lookup. */
static int apply_set(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    enum qr_kv_error error = QR_KV_ERROR_NONE;
    if (cmd->flags == 0) {
        int rv = kv_store(kv, cmd->key, cmd->value.base, cmd->value.len, &error);
        result->status = error == QR_KV_ERROR_NONE ? QR_KV_OK : QR_KV_ERROR;
        result->error = error;
        return rv;
    }
    struct qr_buf old;
    bool is_found = qr__kv_get(kv, cmd->key, &old);
    bool is_getting = (cmd->flags & QR_KV_SET_GET) != 0;
    if (((cmd->flags & QR_KV_SET_NX) != 0 && is_found) ||
        ((cmd->flags & QR_KV_SET_XX) != 0 && !is_found)) {
        /* The condition failed: nil, or with GET the old value all the same. */
        result->status = is_getting && is_found ? QR_KV_VALUE : QR_KV_NOTFOUND;
        result->value = is_getting && is_found ? old : (struct qr_buf){NULL, 0};
        return 0;
    }
    struct qr_buf none = {NULL, 0};
    /* With GET the old bytes are retired, not freed, so the answer may view them. */
    int rv = kv_store_parts(kv, cmd->key, cmd->value, none, is_getting, &error);
    if (rv != 0) {
        return rv;
    }
    if (error != QR_KV_ERROR_NONE) {
        result_error(result, error);
        return 0;
    }
    if (!is_getting) {
        result->status = QR_KV_OK;
        return 0;
    }
    result->status = is_found ? QR_KV_VALUE : QR_KV_NOTFOUND;
    result->value = is_found ? old : none;
    return 0;
}

static int apply_incr(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    int64_t current = 0;
    struct qr_buf value;
    if (qr__kv_get(kv, cmd->key, &value) && !qr__kv_parse_int(value.base, value.len, &current)) {
        result_error(result, QR_KV_ERROR_NOT_INTEGER);
        return 0;
    }
    /* Redis refuses an increment that leaves the int64 range rather than wrapping. */
    if ((cmd->delta > 0 && current > INT64_MAX - cmd->delta) ||
        (cmd->delta < 0 && current < INT64_MIN - cmd->delta)) {
        result_error(result, QR_KV_ERROR_OVERFLOW);
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
        result_error(result, error);
        return 0;
    }
    result_integer(result, next);
    return 0;
}

/* Walks the items of a command in either form: the caller's array or the packed bytes. */
struct items_walk {
    const struct qr_buf *items; /* The array form, or NULL. */
    size_t index;               /* Items handed out so far. */
    struct qr_buf rest;         /* The packed form: what is left. */
};

static struct items_walk items_walk_start(const struct qr_kv_cmd *cmd)
{
    struct items_walk w = {.items = cmd->items, .index = 0, .rest = cmd->packed};
    return w;
}

static struct qr_buf items_walk_next(struct items_walk *w)
{
    struct qr_buf item;
    if (w->items != NULL) {
        item = w->items[w->index];
    } else {
        bool has_item = qr__kv_items_next(&w->rest, &item);
        QR_ASSERT(has_item);
    }
    w->index++;
    QR_ASSERT(item.base != NULL || item.len == 0);
    return item;
}

bool qr__kv_items_next(struct qr_buf *rest, struct qr_buf *item_out)
{
    QR_ASSERT(rest != NULL && item_out != NULL);
    if (rest->len == 0) {
        return false;
    }
    /* Packed items come from qr__kv_cmd_decode, which checked every size. */
    QR_ASSERT(rest->len >= 4);
    uint32_t size = qr__get_u32(rest->base);
    QR_ASSERT(size <= rest->len - 4);
    item_out->base = rest->base + 4;
    item_out->len = size;
    rest->base += 4 + (size_t)size;
    rest->len -= 4 + (size_t)size;
    return true;
}

static void apply_del(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    int64_t removed = 0;
    if (cmd->items_count == 0) {
        removed = table_remove(kv, cmd->key) ? 1 : 0;
    } else {
        /* A key named twice is removed once: the second time it is already gone. */
        struct items_walk w = items_walk_start(cmd);
        for (size_t i = 0; i < cmd->items_count; i++) {
            struct qr_buf key = items_walk_next(&w);
            QR_ASSERT(key.len <= QR_KV_KEY_SIZE_MAX);
            removed += table_remove(kv, key) ? 1 : 0;
        }
    }
    result_integer(result, removed);
}

static int apply_append(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    struct qr_buf old;
    (void)qr__kv_get(kv, cmd->key, &old); /* Absent counts as "": old is then empty. */
    if (cmd->value.len > QR_KV_VALUE_SIZE_MAX - old.len) {
        result_error(result, QR_KV_ERROR_VALUE_TOO_BIG);
        return 0;
    }
    enum qr_kv_error error;
    int rv = kv_store_parts(kv, cmd->key, old, cmd->value, false, &error);
    if (rv != 0) {
        return rv;
    }
    if (error != QR_KV_ERROR_NONE) {
        result_error(result, error);
        return 0;
    }
    result_integer(result, (int64_t)(old.len + cmd->value.len));
    return 0;
}

static int apply_cas(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    struct qr_buf old;
    bool is_found = qr__kv_get(kv, cmd->key, &old);
    bool holds = (cmd->flags & QR_KV_CAS_ABSENT) != 0 ? !is_found
                                                      : is_found && buf_equal(old, cmd->expected);
    if (!holds) {
        result_integer(result, 0);
        return 0;
    }
    enum qr_kv_error error;
    int rv = kv_store(kv, cmd->key, cmd->value.base, cmd->value.len, &error);
    if (rv != 0) {
        return rv;
    }
    if (error != QR_KV_ERROR_NONE) {
        result_error(result, error);
        return 0;
    }
    result_integer(result, 1);
    return 0;
}

static void apply_cad(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    struct qr_buf old;
    bool holds = qr__kv_get(kv, cmd->key, &old) && buf_equal(old, cmd->expected);
    if (holds) {
        bool is_removed = table_remove(kv, cmd->key);
        QR_ASSERT(is_removed);
    }
    result_integer(result, holds ? 1 : 0);
}

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

/* One key/value pair of an MSET while it is being applied. */
struct mset_pair {
    struct qr_buf key;
    struct qr_buf value;
    uint64_t hash;
    size_t index;   /* Position in the command: of equal keys, the last wins. */
    uint8_t *bytes; /* Winners only: the new item's allocation, until installed. */
    bool is_winner; /* The last pair naming its key. */
    bool is_new;    /* Winners only: the key is not in the store yet. */
};

static int mset_pair_compare(const void *a, const void *b)
{
    const struct mset_pair *x = a;
    const struct mset_pair *y = b;
    int c = key_compare(x->key.base, x->key.len, y->key.base, y->key.len);
    if (c != 0) {
        return c;
    }
    return (x->index > y->index) - (x->index < y->index);
}

/* Fill `pairs` from the command, sort them by key (then position) and mark the pair that
 * wins each key. Answers how many winners name keys the store does not hold yet. */
static uint64_t mset_gather(const struct qr_kv *kv,
                            const struct qr_kv_cmd *cmd,
                            struct mset_pair *pairs,
                            size_t pairs_count)
{
    struct items_walk w = items_walk_start(cmd);
    for (size_t i = 0; i < pairs_count; i++) {
        pairs[i].key = items_walk_next(&w);
        pairs[i].value = items_walk_next(&w);
        QR_ASSERT(pairs[i].key.len <= QR_KV_KEY_SIZE_MAX);
        QR_ASSERT(pairs[i].value.len <= QR_KV_VALUE_SIZE_MAX);
        pairs[i].hash = key_hash(pairs[i].key.base, pairs[i].key.len);
        pairs[i].index = i;
    }
    qsort(pairs, pairs_count, sizeof(*pairs), mset_pair_compare);
    uint64_t new_count = 0;
    for (size_t i = 0; i < pairs_count; i++) {
        const struct mset_pair *next = i + 1 < pairs_count ? &pairs[i + 1] : NULL;
        pairs[i].is_winner = next == NULL || !buf_equal(pairs[i].key, next->key);
        if (pairs[i].is_winner) {
            uint64_t slot = table_find(kv, pairs[i].hash, pairs[i].key);
            pairs[i].is_new = kv->slots[slot].bytes == NULL;
            new_count += pairs[i].is_new ? 1 : 0;
        }
    }
    return new_count;
}

static void mset_free_bytes(struct mset_pair *pairs, size_t pairs_count)
{
    for (size_t i = 0; i < pairs_count; i++) {
        qr_free(pairs[i].bytes);
        pairs[i].bytes = NULL;
    }
}

/* Everything that can fail happens here, before the store changes: one allocation per
 * winning pair, then room in the table for every new key. On failure nothing is kept. */
static int
mset_prepare(struct qr_kv *kv, struct mset_pair *pairs, size_t pairs_count, uint64_t new_count)
{
    for (size_t i = 0; i < pairs_count; i++) {
        struct mset_pair *p = &pairs[i];
        if (!p->is_winner) {
            continue;
        }
        p->bytes = qr_malloc(p->key.len + p->value.len + 1); /* +1: never a zero-size block. */
        if (p->bytes == NULL) {
            mset_free_bytes(pairs, pairs_count);
            return QR_ENOMEM;
        }
        if (p->key.len > 0) {
            memcpy(p->bytes, p->key.base, p->key.len);
        }
        if (p->value.len > 0) {
            memcpy(p->bytes + p->key.len, p->value.base, p->value.len);
        }
    }
    uint64_t needed = kv->count + new_count;
    QR_ASSERT(needed <= kv->opts.keys_max);
    if (2 * needed > kv->capacity) {
        /* A larger table holds the same map: growing it changes nothing anyone can see. */
        int rv = table_resize(kv, capacity_for(needed));
        if (rv != 0) {
            mset_free_bytes(pairs, pairs_count);
            return rv;
        }
    }
    return 0;
}

/* Cannot fail: every allocation was made and the table has room. */
static void mset_install(struct qr_kv *kv, struct mset_pair *pairs, size_t pairs_count)
{
    for (size_t i = 0; i < pairs_count; i++) {
        struct mset_pair *p = &pairs[i];
        if (!p->is_winner) {
            continue;
        }
        struct kv_item *item = &kv->slots[table_find(kv, p->hash, p->key)];
        QR_ASSERT((item->bytes == NULL) == p->is_new);
        qr_free(item->bytes);
        item->bytes = p->bytes;
        item->hash = p->hash;
        item->key_size = (uint32_t)p->key.len;
        item->value_size = (uint32_t)p->value.len;
        kv->count += p->is_new ? 1 : 0;
        p->bytes = NULL;
    }
    QR_ASSERT(2 * kv->count <= kv->capacity);
}

/* MSET is all or nothing. Refusal (KEYS_MAX) is decided before anything changes, and out
 * of memory can only happen in mset_prepare, before the first pair is installed. */
static int apply_mset(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    size_t pairs_count = cmd->items_count / 2;
    QR_ASSERT(pairs_count >= 1);
    struct mset_pair *pairs = qr_calloc(pairs_count, sizeof(*pairs));
    if (pairs == NULL) {
        return QR_ENOMEM;
    }
    uint64_t new_count = mset_gather(kv, cmd, pairs, pairs_count);
    if (new_count > kv->opts.keys_max - kv->count) {
        qr_free(pairs);
        result_error(result, QR_KV_ERROR_KEYS_MAX);
        return 0;
    }
    int rv = mset_prepare(kv, pairs, pairs_count, new_count);
    if (rv == 0) {
        mset_install(kv, pairs, pairs_count);
        result->status = QR_KV_OK;
    }
    qr_free(pairs);
    return rv;
}

/* The index of member `id`, or where it would be inserted. */
static size_t members_lower_bound(const struct qr_kv *kv, uint64_t id)
{
    size_t low = 0;
    size_t high = kv->members_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (kv->members[middle].id < id) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    return low;
}

static void member_set_addresses(struct kv_member *m, struct qr_buf peer, struct qr_buf client)
{
    QR_ASSERT(peer.len <= QR_KV_ADDRESS_SIZE_MAX && client.len <= QR_KV_ADDRESS_SIZE_MAX);
    QR_ASSERT(peer.len + client.len > 0);
    m->peer_size = (uint32_t)peer.len;
    m->client_size = (uint32_t)client.len;
    if (peer.len > 0) {
        memcpy(m->peer_address, peer.base, peer.len);
    }
    if (client.len > 0) {
        memcpy(m->client_address, client.base, client.len);
    }
}

/* Upsert or remove a member. The table is allocated whole on first use, so only that
 * first insertion can run out of memory, and it fails before anything changes. */
static int apply_member(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result)
{
    size_t i = members_lower_bound(kv, cmd->member_id);
    bool is_found = i < kv->members_count && kv->members[i].id == cmd->member_id;
    if (cmd->key.len == 0 && cmd->value.len == 0) {
        if (is_found) {
            memmove(&kv->members[i], &kv->members[i + 1],
                    (kv->members_count - i - 1) * sizeof(*kv->members));
            kv->members_count--;
        }
        result->status = QR_KV_OK;
        return 0;
    }
    if (!is_found) {
        if (kv->members_count >= QR_KV_MEMBERS_MAX) {
            result_error(result, QR_KV_ERROR_MEMBERS_MAX);
            return 0;
        }
        if (kv->members == NULL) {
            kv->members = qr_calloc(QR_KV_MEMBERS_MAX, sizeof(*kv->members));
            if (kv->members == NULL) {
                return QR_ENOMEM;
            }
        }
        memmove(&kv->members[i + 1], &kv->members[i],
                (kv->members_count - i) * sizeof(*kv->members));
        kv->members_count++;
        kv->members[i].id = cmd->member_id;
    }
    member_set_addresses(&kv->members[i], cmd->key, cmd->value);
    result->status = QR_KV_OK;
    return 0;
}

/* The flags each op may carry. */
static uint32_t op_flags_allowed(enum qr_kv_op op)
{
    if (op == QR_KV_SET) {
        return QR_KV_SET_NX | QR_KV_SET_XX | QR_KV_SET_GET;
    }
    if (op == QR_KV_CAS) {
        return QR_KV_CAS_ABSENT;
    }
    return 0;
}

static bool buf_is_sane(struct qr_buf b, size_t size_max)
{
    return (b.base != NULL || b.len == 0) && b.len <= size_max;
}

/* What qr__kv_cmd_decode guarantees, checked on the way in: a breach is a caller's bug. */
static void cmd_assert_valid(const struct qr_kv_cmd *cmd)
{
    QR_ASSERT(cmd->op >= QR_KV_SET && cmd->op <= QR_KV_OP_MAX);
    QR_ASSERT((cmd->flags & ~op_flags_allowed(cmd->op)) == 0);
    QR_ASSERT(cmd->op != QR_KV_SET ||
              (cmd->flags & (QR_KV_SET_NX | QR_KV_SET_XX)) != (QR_KV_SET_NX | QR_KV_SET_XX));
    QR_ASSERT(buf_is_sane(cmd->key, QR_KV_KEY_SIZE_MAX));
    QR_ASSERT(buf_is_sane(cmd->value, QR_KV_VALUE_SIZE_MAX));
    QR_ASSERT(buf_is_sane(cmd->expected, QR_KV_VALUE_SIZE_MAX));
    QR_ASSERT(cmd->items_count <= QR_KV_ITEMS_MAX);
    if (cmd->items_count > 0) {
        QR_ASSERT(cmd->op == QR_KV_DEL || cmd->op == QR_KV_MSET);
        QR_ASSERT(cmd->items != NULL || cmd->packed.len > 0);
    }
    if (cmd->op == QR_KV_MSET) {
        QR_ASSERT(cmd->items_count >= 2 && cmd->items_count % 2 == 0);
    }
    if (cmd->op == QR_KV_CAS && (cmd->flags & QR_KV_CAS_ABSENT) != 0) {
        QR_ASSERT(cmd->expected.len == 0);
    }
    if (cmd->op == QR_KV_MEMBER) {
        QR_ASSERT(cmd->member_id != 0);
        QR_ASSERT(cmd->key.len <= QR_KV_ADDRESS_SIZE_MAX);
        QR_ASSERT(cmd->value.len <= QR_KV_ADDRESS_SIZE_MAX);
    }
}

int qr__kv_apply(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result_out)
{
    QR_ASSERT(kv != NULL && cmd != NULL && result_out != NULL);
    QR_ASSERT(cmd->op >= QR_KV_SET && cmd->op <= QR_KV_OP_MAX);
    QR_ASSERT(cmd->key.len <= QR_KV_KEY_SIZE_MAX);
    QR_ASSERT(cmd->key.base != NULL || cmd->key.len == 0);
#ifdef QR_DEBUG
    /* The whole contract costs some fifty instructions, too many for every SET in release
       builds; there the handlers still assert the sizes they copy. */
    cmd_assert_valid(cmd);
#endif
    memset(result_out, 0, sizeof(*result_out));
    if (cmd->op != QR_KV_GET && kv->retired != NULL) {
        retired_release(kv);
    }
    int rv = 0;
    switch (cmd->op) {
    case QR_KV_SET:
        rv = apply_set(kv, cmd, result_out);
        break;
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
    case QR_KV_APPEND:
        rv = apply_append(kv, cmd, result_out);
        break;
    case QR_KV_MSET:
        rv = apply_mset(kv, cmd, result_out);
        break;
    case QR_KV_CAS:
        rv = apply_cas(kv, cmd, result_out);
        break;
    case QR_KV_CAD:
        apply_cad(kv, cmd, result_out);
        break;
    case QR_KV_MEMBER:
        rv = apply_member(kv, cmd, result_out);
        break;
    }
    QR_ASSERT(kv->count <= kv->opts.keys_max);
    QR_ASSERT(kv->members_count <= QR_KV_MEMBERS_MAX);
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
    case QR_KV_ERROR_VALUE_TOO_BIG:
        return "ERR string exceeds maximum allowed size";
    case QR_KV_ERROR_MEMBERS_MAX:
        return "ERR too many cluster members";
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
    case QR_KV_APPEND:
        return "append";
    case QR_KV_MSET:
        return "mset";
    case QR_KV_CAS:
        return "cas";
    case QR_KV_CAD:
        return "cad";
    case QR_KV_MEMBER:
        return "member";
    }
    return "?";
}

/* ---- Command codec ------------------------------------------------------------------ */

static bool cmd_has_items(const struct qr_kv_cmd *cmd)
{
    return cmd->items_count > 0;
}

/* Bytes of the encoded items, size fields included. */
static size_t cmd_items_size(const struct qr_kv_cmd *cmd)
{
    if (cmd->items == NULL) {
        return cmd->packed.len;
    }
    size_t size = 0;
    for (size_t i = 0; i < cmd->items_count; i++) {
        size += 4 + cmd->items[i].len;
    }
    return size;
}

size_t qr__kv_cmd_encoded_size(const struct qr_kv_cmd *cmd)
{
    QR_ASSERT(cmd != NULL);
    QR_ASSERT(cmd->op >= QR_KV_SET && cmd->op <= QR_KV_OP_MAX);
    if (cmd_has_items(cmd)) {
        QR_ASSERT(cmd->op == QR_KV_DEL || cmd->op == QR_KV_MSET);
        return QR_KV_CMD_HEADER_SIZE + cmd_items_size(cmd);
    }
    QR_ASSERT(cmd->op != QR_KV_MSET);
    size_t size = QR_KV_CMD_HEADER_SIZE + cmd->key.len;
    switch (cmd->op) {
    case QR_KV_SET:
    case QR_KV_APPEND:
        size += 4 + cmd->value.len;
        break;
    case QR_KV_INCR:
        size += 8;
        break;
    case QR_KV_CAS:
        size += 4 + cmd->expected.len + 4 + cmd->value.len;
        break;
    case QR_KV_CAD:
        size += 4 + cmd->expected.len;
        break;
    case QR_KV_MEMBER:
        size += 4 + cmd->value.len + 8;
        break;
    case QR_KV_GET:
    case QR_KV_DEL:
    case QR_KV_MSET:
        break;
    }
    return size;
}

/* Writes u32 size then the bytes at buf + *at. */
static void encode_bytes(uint8_t *buf, size_t *at, struct qr_buf bytes)
{
    qr__put_u32(buf + *at, (uint32_t)bytes.len);
    *at += 4;
    if (bytes.len > 0) {
        memcpy(buf + *at, bytes.base, bytes.len);
    }
    *at += bytes.len;
}

static void cmd_encode_items(const struct qr_kv_cmd *cmd, uint8_t *buf, size_t *at)
{
    if (cmd->items == NULL) {
        memcpy(buf + *at, cmd->packed.base, cmd->packed.len);
        *at += cmd->packed.len;
        return;
    }
    for (size_t i = 0; i < cmd->items_count; i++) {
        encode_bytes(buf, at, cmd->items[i]);
    }
}

/* The op-specific part after the key size field. */
static void cmd_encode_body(const struct qr_kv_cmd *cmd, uint8_t *buf, size_t *at)
{
    encode_bytes(buf, at, cmd->key);
    switch (cmd->op) {
    case QR_KV_SET:
    case QR_KV_APPEND:
        encode_bytes(buf, at, cmd->value);
        break;
    case QR_KV_INCR:
        qr__put_u64(buf + *at, (uint64_t)cmd->delta);
        *at += 8;
        break;
    case QR_KV_CAS:
        encode_bytes(buf, at, cmd->expected);
        encode_bytes(buf, at, cmd->value);
        break;
    case QR_KV_CAD:
        encode_bytes(buf, at, cmd->expected);
        break;
    case QR_KV_MEMBER:
        encode_bytes(buf, at, cmd->value);
        qr__put_u64(buf + *at, cmd->member_id);
        *at += 8;
        break;
    case QR_KV_GET:
    case QR_KV_DEL:
    case QR_KV_MSET:
        break;
    }
}

void qr__kv_cmd_encode(const struct qr_kv_cmd *cmd, uint8_t *buf)
{
    QR_ASSERT(cmd != NULL && buf != NULL);
    cmd_assert_valid(cmd);
    size_t size = qr__kv_cmd_encoded_size(cmd);
    QR_ASSERT(size <= QR_KV_CMD_SIZE_MAX); /* The decoder refuses anything larger. */
    uint32_t wire_flags = cmd->flags | (cmd_has_items(cmd) ? WIRE_ITEMS : 0);
    buf[0] = QR_KV_CODEC_VERSION;
    buf[1] = (uint8_t)cmd->op;
    buf[2] = (uint8_t)(wire_flags & 0xffu);
    buf[3] = (uint8_t)(wire_flags >> 8);
    qr__put_u64(buf + 4, cmd->client_id);
    qr__put_u64(buf + 12, cmd->seq);
    size_t at = CMD_KEY_SIZE_OFFSET;
    if (cmd_has_items(cmd)) {
        qr__put_u32(buf + at, (uint32_t)cmd->items_count);
        at += 4;
        cmd_encode_items(cmd, buf, &at);
    } else {
        cmd_encode_body(cmd, buf, &at);
    }
    QR_ASSERT(at == size);
}

/* A bounds-checked cursor over an encoded command. */
struct cmd_reader {
    const uint8_t *buf;
    size_t size;
    size_t at;
    char *errmsg;
};

/* Reads u32 size then that many bytes (a view), refusing sizes beyond size_max. */
static int read_bytes(struct cmd_reader *r, uint32_t size_max, const char *what, struct qr_buf *out)
{
    if (r->size - r->at < 4) {
        return qr__errf(r->errmsg, QR_ECORRUPT, "kv: command offset %zu: %s size truncated", r->at,
                        what);
    }
    uint32_t size = qr__get_u32(r->buf + r->at);
    if (size > size_max) {
        return qr__errf(r->errmsg, QR_ECORRUPT, "kv: command offset %zu: %s size %u exceeds %u",
                        r->at, what, (unsigned)size, (unsigned)size_max);
    }
    r->at += 4;
    if (r->size - r->at < size) {
        return qr__errf(r->errmsg, QR_ECORRUPT,
                        "kv: command offset %zu: %s of %u bytes truncated to %zu", r->at, what,
                        (unsigned)size, r->size - r->at);
    }
    out->base = size > 0 ? (uint8_t *)(uintptr_t)(r->buf + r->at) : NULL;
    out->len = size;
    r->at += size;
    return 0;
}

static int read_u64(struct cmd_reader *r, const char *what, uint64_t *out)
{
    if (r->size - r->at < 8) {
        return qr__errf(r->errmsg, QR_ECORRUPT, "kv: command offset %zu: %s truncated", r->at,
                        what);
    }
    *out = qr__get_u64(r->buf + r->at);
    r->at += 8;
    return 0;
}

static int read_end(const struct cmd_reader *r)
{
    if (r->at != r->size) {
        return qr__errf(r->errmsg, QR_ECORRUPT, "kv: command offset %zu: %zu trailing bytes", r->at,
                        r->size - r->at);
    }
    return 0;
}

/* The op-specific fields after the key (which the reader has passed). */
static int cmd_decode_tail(struct cmd_reader *r, struct qr_kv_cmd *cmd)
{
    int rv = 0;
    uint64_t word = 0;
    switch (cmd->op) {
    case QR_KV_SET:
    case QR_KV_APPEND:
        rv = read_bytes(r, QR_KV_VALUE_SIZE_MAX, "value", &cmd->value);
        break;
    case QR_KV_INCR:
        rv = read_u64(r, "delta", &word);
        cmd->delta = (int64_t)word;
        break;
    case QR_KV_CAS:
        rv = read_bytes(r, QR_KV_VALUE_SIZE_MAX, "expected value", &cmd->expected);
        if (rv == 0 && (cmd->flags & QR_KV_CAS_ABSENT) != 0 && cmd->expected.len > 0) {
            return qr__errf(r->errmsg, QR_ECORRUPT,
                            "kv: command offset %zu: cas expects absence and a value", r->at);
        }
        rv = rv == 0 ? read_bytes(r, QR_KV_VALUE_SIZE_MAX, "value", &cmd->value) : rv;
        break;
    case QR_KV_CAD:
        rv = read_bytes(r, QR_KV_VALUE_SIZE_MAX, "expected value", &cmd->expected);
        break;
    case QR_KV_MEMBER:
        rv = read_bytes(r, QR_KV_ADDRESS_SIZE_MAX, "client address", &cmd->value);
        rv = rv == 0 ? read_u64(r, "member id", &cmd->member_id) : rv;
        if (rv == 0 && cmd->member_id == 0) {
            return qr__errf(r->errmsg, QR_ECORRUPT, "kv: command offset %zu: member id 0",
                            r->at - 8);
        }
        break;
    case QR_KV_GET:
    case QR_KV_DEL:
    case QR_KV_MSET:
        break;
    }
    return rv != 0 ? rv : read_end(r);
}

/* DEL or MSET with items: the count at offset 20, then the items. */
static int cmd_decode_items(struct cmd_reader *r, struct qr_kv_cmd *cmd)
{
    uint32_t count = qr__get_u32(r->buf + CMD_KEY_SIZE_OFFSET);
    uint32_t count_min = cmd->op == QR_KV_MSET ? 2 : 1;
    if (count < count_min || count > QR_KV_ITEMS_MAX) {
        return qr__errf(r->errmsg, QR_ECORRUPT,
                        "kv: command offset %d: %u items, expected %u to %u", CMD_KEY_SIZE_OFFSET,
                        (unsigned)count, (unsigned)count_min, (unsigned)QR_KV_ITEMS_MAX);
    }
    if (cmd->op == QR_KV_MSET && count % 2 != 0) {
        return qr__errf(r->errmsg, QR_ECORRUPT, "kv: command offset %d: mset of %u items is odd",
                        CMD_KEY_SIZE_OFFSET, (unsigned)count);
    }
    r->at = QR_KV_CMD_HEADER_SIZE;
    for (uint32_t i = 0; i < count; i++) {
        bool is_value = cmd->op == QR_KV_MSET && i % 2 == 1;
        struct qr_buf item;
        int rv = read_bytes(r, is_value ? QR_KV_VALUE_SIZE_MAX : QR_KV_KEY_SIZE_MAX,
                            is_value ? "value" : "key", &item);
        if (rv != 0) {
            return rv;
        }
    }
    cmd->items_count = count;
    cmd->packed.base = (uint8_t *)(uintptr_t)(r->buf + QR_KV_CMD_HEADER_SIZE);
    cmd->packed.len = r->at - QR_KV_CMD_HEADER_SIZE;
    return read_end(r);
}

/* Bytes 0..3: version, op and flags. Version 1 knows ops 1..4 and has no flags. */
static int
cmd_decode_start(const uint8_t *buf, struct qr_kv_cmd *cmd, bool *has_items_out, char *errmsg)
{
    unsigned version = buf[0];
    if (version != 1 && version != QR_KV_CODEC_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "kv: command offset 0: version %u, expected 1 or %u",
                        version, (unsigned)QR_KV_CODEC_VERSION);
    }
    unsigned op_max = version == 1 ? QR_KV_INCR : QR_KV_OP_MAX;
    if (buf[1] < QR_KV_SET || buf[1] > op_max) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 1: unknown op %u for version %u",
                        (unsigned)buf[1], version);
    }
    cmd->op = (enum qr_kv_op)buf[1];
    uint32_t wire_flags = (uint32_t)buf[2] | (uint32_t)buf[3] << 8;
    if (version == 1 && wire_flags != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 2: reserved bytes not zero");
    }
    uint32_t flags = wire_flags & WIRE_CMD_FLAGS;
    bool has_items = (wire_flags & WIRE_ITEMS) != 0;
    if ((wire_flags & ~(WIRE_CMD_FLAGS | WIRE_ITEMS)) != 0 ||
        (flags & ~op_flags_allowed(cmd->op)) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 2: flags %#x unknown for %s",
                        (unsigned)wire_flags, qr__kv_op_name(cmd->op));
    }
    if (has_items != (cmd->op == QR_KV_MSET) && !(has_items && cmd->op == QR_KV_DEL)) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 2: %s %s items",
                        qr__kv_op_name(cmd->op), has_items ? "cannot carry" : "needs");
    }
    if (cmd->op == QR_KV_SET &&
        (flags & (QR_KV_SET_NX | QR_KV_SET_XX)) == (QR_KV_SET_NX | QR_KV_SET_XX)) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: command offset 2: set with both nx and xx");
    }
    cmd->flags = flags;
    *has_items_out = has_items;
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
    if (size > QR_KV_CMD_SIZE_MAX) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "kv: command offset %u: command of %zu bytes exceeds %u",
                        (unsigned)QR_KV_CMD_SIZE_MAX, size, (unsigned)QR_KV_CMD_SIZE_MAX);
    }
    bool has_items = false;
    int rv = cmd_decode_start(buf, cmd_out, &has_items, errmsg);
    if (rv == 0) {
        cmd_out->client_id = qr__get_u64(buf + 4);
        cmd_out->seq = qr__get_u64(buf + 12);
        struct cmd_reader r = {buf, size, CMD_KEY_SIZE_OFFSET, errmsg};
        if (has_items) {
            rv = cmd_decode_items(&r, cmd_out);
        } else {
            bool is_member = cmd_out->op == QR_KV_MEMBER;
            rv = read_bytes(&r, is_member ? QR_KV_ADDRESS_SIZE_MAX : QR_KV_KEY_SIZE_MAX,
                            is_member ? "peer address" : "key", &cmd_out->key);
            rv = rv == 0 ? cmd_decode_tail(&r, cmd_out) : rv;
        }
    }
    if (rv != 0) {
        memset(cmd_out, 0, sizeof(*cmd_out));
    }
    return rv;
}

/* ---- Snapshots ---------------------------------------------------------------------- */

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

static size_t snapshot_members_size(const struct qr_kv *kv)
{
    size_t size = SNAPSHOT_MEMBERS_COUNT_SIZE;
    for (size_t i = 0; i < kv->members_count; i++) {
        size += SNAPSHOT_MEMBER_SIZE_MIN + kv->members[i].peer_size + kv->members[i].client_size;
    }
    return size;
}

/* The member table is already sorted by id, so it is written as it stands. */
static size_t snapshot_write_members(const struct qr_kv *kv, uint8_t *buf, size_t at)
{
    qr__put_u32(buf + at, (uint32_t)kv->members_count);
    at += SNAPSHOT_MEMBERS_COUNT_SIZE;
    for (size_t i = 0; i < kv->members_count; i++) {
        const struct kv_member *m = &kv->members[i];
        qr__put_u64(buf + at, m->id);
        at += 8;
        qr__put_u32(buf + at, m->peer_size);
        at += 4;
        memcpy(buf + at, m->peer_address, m->peer_size);
        at += m->peer_size;
        qr__put_u32(buf + at, m->client_size);
        at += 4;
        memcpy(buf + at, m->client_address, m->client_size);
        at += m->client_size;
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
    size_t size = QR_KV_SNAPSHOT_SIZE_MIN + snapshot_members_size(kv);
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
    at = snapshot_write_members(kv, buf, at);
    QR_ASSERT(at + 4 == size);
    qr__put_u32(buf + at, qr__crc32c(0, buf, at));
    snapshot_out->base = buf;
    snapshot_out->len = size;
    return 0;
}

static int snapshot_check_header(
    const uint8_t *buf, size_t size, uint32_t *version_out, uint64_t *count_out, char *errmsg)
{
    if (size < QR_KV_SNAPSHOT_SIZE_MIN || buf == NULL) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot of %zu bytes is shorter than %d", size,
                        QR_KV_SNAPSHOT_SIZE_MIN);
    }
    if (memcmp(buf, snapshot_magic, sizeof(snapshot_magic)) != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset 0: bad magic");
    }
    uint32_t version = qr__get_u32(buf + 4);
    if (version != 1 && version != QR_KV_SNAPSHOT_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "kv: snapshot offset 4: version %u, expected 1 or %u",
                        (unsigned)version, (unsigned)QR_KV_SNAPSHOT_VERSION);
    }
    uint32_t crc_stored = qr__get_u32(buf + size - 4);
    uint32_t crc = qr__crc32c(0, buf, size - 4);
    if (crc != crc_stored) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: crc %08x, computed %08x",
                        size - 4, (unsigned)crc_stored, (unsigned)crc);
    }
    size_t tail_size = version == 1 ? 0 : SNAPSHOT_MEMBERS_COUNT_SIZE;
    if (size - QR_KV_SNAPSHOT_SIZE_MIN < tail_size) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot of %zu bytes has no members count",
                        size);
    }
    uint64_t count = qr__get_u64(buf + 8);
    /* Each key needs at least a record header, which bounds what we allocate below. */
    if (count > (size - QR_KV_SNAPSHOT_SIZE_MIN - tail_size) / SNAPSHOT_RECORD_SIZE_MIN) {
        return qr__errf(errmsg, QR_ECORRUPT,
                        "kv: snapshot offset 8: %llu keys cannot fit in %zu bytes",
                        (unsigned long long)count, size);
    }
    *version_out = version;
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

/* Reads `count` key records from *at into `fresh`. */
static int snapshot_read_items(
    struct qr_kv *fresh, const uint8_t *buf, size_t end, uint64_t count, size_t *at, char *errmsg)
{
    struct qr_buf previous = {NULL, 0};
    for (uint64_t i = 0; i < count; i++) {
        uint32_t key_size = 0;
        uint32_t value_size = 0;
        size_t key_at = *at;
        int rv = snapshot_read_size(buf, end, at, QR_KV_KEY_SIZE_MAX, "key", &key_size, errmsg);
        if (rv != 0) {
            return rv;
        }
        struct qr_buf key = {(uint8_t *)(uintptr_t)(buf + *at), key_size};
        /* Strictly ascending keys: also rules out duplicates. */
        if (i > 0 && key_compare(previous.base, previous.len, key.base, key.len) >= 0) {
            return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: key %llu out of order",
                            key_at, (unsigned long long)i);
        }
        *at += key_size;
        rv = snapshot_read_size(buf, end, at, QR_KV_VALUE_SIZE_MAX, "value", &value_size, errmsg);
        if (rv != 0) {
            return rv;
        }
        enum qr_kv_error error = QR_KV_ERROR_NONE;
        rv = kv_store(fresh, key, buf + *at, value_size, &error);
        if (rv != 0) {
            return rv;
        }
        QR_ASSERT(error == QR_KV_ERROR_NONE); /* keys_max was checked against count. */
        *at += value_size;
        previous = key;
    }
    return 0;
}

/* Reads one member record at *at into m, checking its id against the previous one. */
static int snapshot_read_member(const uint8_t *buf,
                                size_t end,
                                size_t *at,
                                uint64_t previous_id,
                                struct kv_member *m,
                                char *errmsg)
{
    size_t member_at = *at;
    if (end - *at < 8) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: member id truncated", *at);
    }
    m->id = qr__get_u64(buf + *at);
    if (m->id <= previous_id) { /* Also refuses id 0, since previous_id starts at 0. */
        return qr__errf(errmsg, QR_ECORRUPT,
                        "kv: snapshot offset %zu: member id %llu zero or out of order", *at,
                        (unsigned long long)m->id);
    }
    *at += 8;
    int rv = snapshot_read_size(buf, end, at, QR_KV_ADDRESS_SIZE_MAX, "peer address", &m->peer_size,
                                errmsg);
    if (rv != 0) {
        return rv;
    }
    memcpy(m->peer_address, buf + *at, m->peer_size);
    *at += m->peer_size;
    rv = snapshot_read_size(buf, end, at, QR_KV_ADDRESS_SIZE_MAX, "client address", &m->client_size,
                            errmsg);
    if (rv != 0) {
        return rv;
    }
    memcpy(m->client_address, buf + *at, m->client_size);
    *at += m->client_size;
    if (m->peer_size == 0 && m->client_size == 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: member %llu has no address",
                        member_at, (unsigned long long)m->id);
    }
    return 0;
}

/* Version 2's member table, from *at into `fresh`. */
static int
snapshot_read_members(struct qr_kv *fresh, const uint8_t *buf, size_t end, size_t *at, char *errmsg)
{
    if (end - *at < SNAPSHOT_MEMBERS_COUNT_SIZE) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: members count truncated",
                        *at);
    }
    uint32_t count = qr__get_u32(buf + *at);
    if (count > QR_KV_MEMBERS_MAX) {
        return qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: %u members exceed %d", *at,
                        (unsigned)count, QR_KV_MEMBERS_MAX);
    }
    *at += SNAPSHOT_MEMBERS_COUNT_SIZE;
    if (count == 0) {
        return 0;
    }
    fresh->members = qr_calloc(QR_KV_MEMBERS_MAX, sizeof(*fresh->members));
    if (fresh->members == NULL) {
        return QR_ENOMEM;
    }
    uint64_t previous_id = 0;
    for (uint32_t i = 0; i < count; i++) {
        int rv = snapshot_read_member(buf, end, at, previous_id, &fresh->members[i], errmsg);
        if (rv != 0) {
            return rv;
        }
        previous_id = fresh->members[i].id;
        fresh->members_count++;
    }
    return 0;
}

static int snapshot_read_body(struct qr_kv *fresh,
                              const uint8_t *buf,
                              size_t size,
                              uint32_t version,
                              uint64_t count,
                              char *errmsg)
{
    size_t end = size - 4;
    size_t at = SNAPSHOT_HEADER_SIZE;
    int rv = snapshot_read_items(fresh, buf, end, count, &at, errmsg);
    if (rv == 0 && version >= 2) {
        rv = snapshot_read_members(fresh, buf, end, &at, errmsg);
    }
    if (rv == 0 && at != end) {
        rv = qr__errf(errmsg, QR_ECORRUPT, "kv: snapshot offset %zu: %zu trailing bytes", at,
                      end - at);
    }
    return rv;
}

int qr__kv_restore(struct qr_kv *kv, const uint8_t *buf, size_t size, char *errmsg)
{
    QR_ASSERT(kv != NULL);
    uint32_t version = 0;
    uint64_t count = 0;
    int rv = snapshot_check_header(buf, size, &version, &count, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (count > kv->opts.keys_max) {
        return qr__errf(errmsg, QR_EBUSY, "kv: snapshot holds %llu keys, the limit is %llu",
                        (unsigned long long)count, (unsigned long long)kv->opts.keys_max);
    }
    /* Build the new store on the side so that a failure leaves the store as it was. */
    struct qr_kv fresh = {.opts = kv->opts, .capacity = capacity_for(count)};
    fresh.shift = shift_for(fresh.capacity);
    fresh.slots = qr_calloc((size_t)fresh.capacity, sizeof(*fresh.slots));
    if (fresh.slots == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "kv: snapshot of %llu keys: out of memory",
                        (unsigned long long)count);
    }
    rv = snapshot_read_body(&fresh, buf, size, version, count, errmsg);
    if (rv != 0) {
        slots_free(fresh.slots, fresh.capacity);
        qr_free(fresh.members);
        if (rv == QR_ENOMEM) {
            (void)qr__errf(errmsg, rv, "kv: snapshot restore: out of memory");
        }
        return rv;
    }
    slots_free(kv->slots, kv->capacity);
    qr_free(kv->members);
    retired_release(kv);
    kv->slots = fresh.slots;
    kv->capacity = fresh.capacity;
    kv->shift = fresh.shift;
    kv->count = fresh.count;
    kv->members = fresh.members;
    kv->members_count = fresh.members_count;
    QR_ASSERT(kv->count == count);
    return 0;
}

/* ---- Scans -------------------------------------------------------------------------- */

/*
 * The cursor is a hash value: "every key whose hash is below the cursor has been
 * visited". A call starts at the home slot of the cursor and takes whole home slots
 * [start, end), visiting exactly the keys whose hash lies in [cursor, end << shift), and
 * answers end << shift (0 past the last slot). Because the cursor names hashes, not
 * slots, it means the same thing after the table grows or shrinks, and the hash ranges
 * of successive calls never overlap: no key is visited twice, and a key present for the
 * whole walk falls in exactly one call's range and is visited by it.
 *
 * Finding a range's keys: linear probing leaves each item at or after its home slot
 * with no hole in between, possibly wrapping past the last slot to slot 0. So the keys
 * whose home is in [start, end) sit in slots start, start + 1, ... up to the first empty
 * slot at or after end. The walk counts positions without wrapping ("unwrapped"
 * positions p >= start, slot p & mask); an item met at p whose distance from its home
 * is d has its home at unwrapped position p - d, and it belongs to this call exactly when
 * start <= p - d < end. That test also skips items that wrapped in from the end of the
 * table and items displaced from before `start`.
 */

/* Whether the item met at unwrapped position p belongs to home slots [start, end). */
static bool scan_is_in_range(
    const struct qr_kv *kv, const struct kv_item *item, uint64_t p, uint64_t start, uint64_t end)
{
    uint64_t mask = kv->capacity - 1;
    uint64_t distance = ((p & mask) - (item->hash >> kv->shift)) & mask;
    return distance <= p - start && p - distance < end;
}

uint64_t
qr__kv_scan(const struct qr_kv *kv, uint64_t cursor, size_t count, qr_kv_visit_cb visit, void *ctx)
{
    QR_ASSERT(kv != NULL && visit != NULL);
    uint64_t capacity = kv->capacity;
    uint64_t wanted = count == 0 ? 1 : (uint64_t)count;
    uint64_t slots_max =
        wanted >= capacity / SCAN_SLOTS_PER_KEY ? capacity : wanted * SCAN_SLOTS_PER_KEY;
    uint64_t start = cursor >> kv->shift;
    uint64_t end = start;
    uint64_t visited = 0;
    /* Whole home slots, until enough keys were seen or enough slots examined. */
    while (end < capacity && visited < wanted && end - start < slots_max) {
        const struct kv_item *item = &kv->slots[end];
        if (item->bytes != NULL && item->hash >= cursor &&
            scan_is_in_range(kv, item, end, start, end + 1)) {
            visit(ctx, (struct qr_buf){item->bytes, item->key_size},
                  (struct qr_buf){item->bytes + item->key_size, item->value_size});
            visited++;
        }
        end++;
    }
    QR_ASSERT(end > start);
    /* Then the rest of the probe run that crosses `end`: items homed before `end` that
       were pushed past it. The table always has an empty slot, so this stops. */
    for (uint64_t p = end; p < end + capacity; p++) {
        const struct kv_item *item = &kv->slots[p & (capacity - 1)];
        if (item->bytes == NULL) {
            break;
        }
        if (item->hash >= cursor && scan_is_in_range(kv, item, p, start, end)) {
            visit(ctx, (struct qr_buf){item->bytes, item->key_size},
                  (struct qr_buf){item->bytes + item->key_size, item->value_size});
        }
    }
    return end == capacity ? 0 : end << kv->shift;
}

/* ---- Glob matching ------------------------------------------------------------------ */

/*
 * Redis's stringmatchlen, case-sensitive, in our own words: `*` any run of bytes, `?`
 * one byte, `\x` the byte x (a final lone `\` is itself), `[...]` one byte of a set: `^`
 * first negates, `a-z` a range (reversed bounds are swapped), `\x` inside escapes; a set
 * missing its `]` ends with the pattern. Every token but `*` consumes exactly one byte,
 * which is what makes the classic matcher with one backtrack point (the last `*`)
 * exact, in O(pattern size x text size) time with no recursion. Bytes compare unsigned.
 */

/* Whether the set starting at pattern[*at] == '[' holds c; moves *at past the set. */
static bool match_set(const uint8_t *pattern, size_t pattern_size, size_t *at, uint8_t c)
{
    size_t i = *at + 1;
    bool is_negated = i < pattern_size && pattern[i] == '^';
    i += is_negated ? 1 : 0;
    bool is_match = false;
    while (i < pattern_size) {
        if (pattern[i] == '\\' && pattern_size - i >= 2) {
            is_match = is_match || pattern[i + 1] == c;
            i += 2;
        } else if (pattern[i] == ']') {
            i++;
            break;
        } else if (pattern_size - i >= 3 && pattern[i + 1] == '-') {
            uint8_t low = pattern[i] < pattern[i + 2] ? pattern[i] : pattern[i + 2];
            uint8_t high = pattern[i] < pattern[i + 2] ? pattern[i + 2] : pattern[i];
            is_match = is_match || (c >= low && c <= high);
            i += 3;
        } else {
            is_match = is_match || pattern[i] == c;
            i++;
        }
    }
    *at = i;
    return is_match != is_negated;
}

/* Whether the single-byte token at pattern[*at] (not '*') matches c; moves *at past it. */
static bool match_token(const uint8_t *pattern, size_t pattern_size, size_t *at, uint8_t c)
{
    uint8_t p = pattern[*at];
    if (p == '?') {
        *at += 1;
        return true;
    }
    if (p == '[') {
        return match_set(pattern, pattern_size, at, c);
    }
    if (p == '\\' && pattern_size - *at >= 2) {
        *at += 2;
        return pattern[*at - 1] == c;
    }
    *at += 1;
    return p == c;
}

bool qr__kv_match(const uint8_t *pattern, size_t pattern_size, const uint8_t *text, size_t size)
{
    QR_ASSERT(pattern != NULL || pattern_size == 0);
    QR_ASSERT(text != NULL || size == 0);
    size_t p = 0;
    size_t t = 0;
    bool has_star = false;
    size_t star_p = 0; /* Pattern position just after the last '*' met. */
    size_t star_t = 0; /* Text position that '*' currently stops before. */
    /* Each round advances t, or moves star_t on by one: at most (size + 1)^2 rounds. */
    while (t < size) {
        if (p < pattern_size && pattern[p] == '*') {
            while (p < pattern_size && pattern[p] == '*') {
                p++;
            }
            has_star = true;
            star_p = p;
            star_t = t;
            continue;
        }
        size_t next = p;
        if (p < pattern_size && match_token(pattern, pattern_size, &next, text[t])) {
            p = next;
            t++;
            continue;
        }
        if (!has_star) {
            return false;
        }
        /* Let the last '*' swallow one more byte and retry what follows it. */
        star_t++;
        p = star_p;
        t = star_t;
    }
    while (p < pattern_size && pattern[p] == '*') {
        p++;
    }
    return p == pattern_size;
}

/* ---- Invariants --------------------------------------------------------------------- */

static void members_check_invariants(const struct qr_kv *kv)
{
    QR_ASSERT(kv->members_count <= QR_KV_MEMBERS_MAX);
    QR_ASSERT(kv->members != NULL || kv->members_count == 0);
    uint64_t previous_id = 0;
    for (size_t i = 0; i < kv->members_count; i++) {
        const struct kv_member *m = &kv->members[i];
        QR_ASSERT(m->id > previous_id); /* Non-zero, ascending, unique. */
        QR_ASSERT(m->peer_size <= QR_KV_ADDRESS_SIZE_MAX);
        QR_ASSERT(m->client_size <= QR_KV_ADDRESS_SIZE_MAX);
        QR_ASSERT(m->peer_size + m->client_size > 0);
        previous_id = m->id;
    }
}

void qr__kv_check_invariants(const struct qr_kv *kv)
{
    QR_ASSERT(kv != NULL);
    QR_ASSERT(kv->capacity >= TABLE_CAPACITY_MIN && (kv->capacity & (kv->capacity - 1)) == 0);
    QR_ASSERT(kv->shift == shift_for(kv->capacity));
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
        for (uint64_t s = item->hash >> kv->shift; s != i; s = (s + 1) & mask) {
            QR_ASSERT(kv->slots[s].bytes != NULL);
        }
    }
    QR_ASSERT(occupied == kv->count);
    members_check_invariants(kv);
}
