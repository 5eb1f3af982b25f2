/*
 * kv/kv.h: the built-in key-value state machine.
 *
 * Layer: kv (depends on util only). Keys and values are byte strings. The
 * store applies commands deterministically: no clock, no randomness, no
 * dependence on memory addresses, so every replica that applies the same log
 * holds the same map, and a snapshot of it is the same bytes on every replica
 * (keys are written in ascending byte order).
 *
 * Commands travel through the replicated log in a binary, versioned,
 * little-endian envelope that also names the client and the client's request
 * sequence number, so that whoever proposed a command (the simulator, later
 * the server) can recognise its own entry when it is applied. Version 2:
 *
 *   offset size  field
 *   0      1     version (QR_KV_CODEC_VERSION, 2)
 *   1      1     op (enum qr_kv_op)
 *   2      2     flags, u16: bits 0-7 the command's `flags` (SET: NX 0x1, XX 0x2,
 *                GET 0x4; CAS: ABSENT 0x1; zero for every other op); bit 15 ITEMS
 *                (0x8000): the command carries items instead of a key (DEL: optional,
 *                MSET: required, any other op: refused); every other bit zero
 *   4      8     client id
 *   12     8     request sequence number
 *   20     4     without ITEMS: key size K (<= QR_KV_KEY_SIZE_MAX; MEMBER: peer
 *                address size, <= QR_KV_ADDRESS_SIZE_MAX);
 *                with ITEMS: item count N (DEL: 1..QR_KV_ITEMS_MAX; MSET: even,
 *                2..QR_KV_ITEMS_MAX)
 *   24     ...   by op:
 *     SET, APPEND  K key, u32 V value size (<= QR_KV_VALUE_SIZE_MAX), V value
 *     GET, DEL     K key
 *     INCR         K key, 8 delta (two's complement)
 *     CAS          K key, u32 E, E expected, u32 V, V value (with ABSENT, E is 0)
 *     CAD          K key, u32 E, E expected (E <= QR_KV_VALUE_SIZE_MAX)
 *     MEMBER       K peer address, u32 V, V client address (<= QR_KV_ADDRESS_SIZE_MAX),
 *                  8 member id (non-zero)
 *     DEL, MSET with ITEMS: N items, each u32 size then the bytes: keys
 *                  (<= QR_KV_KEY_SIZE_MAX); MSET alternates key and value
 *                  (<= QR_KV_VALUE_SIZE_MAX); at most QR_KV_ITEMS_SIZE_MAX bytes in all
 *   nothing may follow; NX and XX together are refused; a command never exceeds
 *   QR_KV_CMD_SIZE_MAX bytes.
 *
 * Version 1 (written by earlier builds, so logs may still hold it) is the same
 * layout restricted to ops 1..4 (SET, GET, DEL, INCR) with the flags field (then
 * "reserved") zero. The decoder accepts it and yields the command it meant; the
 * encoder writes only version 2, which for a flagless SET, GET, single-key DEL or
 * INCR differs from version 1 only in byte 0.
 *
 * Snapshot format (little-endian): magic "QKVS", u32 version, u64 keys count,
 * then per key in ascending order u32 key size, key, u32 value size, value;
 * version 2 then has u32 members count (<= QR_KV_MEMBERS_MAX) and per member,
 * by strictly ascending non-zero id, u64 id, u32 peer address size, peer
 * address, u32 client address size, client address (each <= QR_KV_ADDRESS_SIZE_MAX,
 * not both empty); and finally the CRC32C of everything before it. Restore
 * accepts versions 1 (no member table: it restores an empty one) and 2;
 * qr__kv_snapshot writes version 2.
 *
 * Every decoder here treats its input as hostile: any byte string gives either
 * a valid result or QR_ECORRUPT/QR_EVERSION with a message naming the offset;
 * never a crash, never an unbounded allocation.
 *
 * Values used by INCR hold a signed 64-bit integer in canonical decimal text,
 * as in Redis: optional '-', no leading zeros, no '+', no spaces.
 *
 * Threading: one thread at a time per store; distinct stores are independent.
 */
#ifndef QR_KV_KV_H
#define QR_KV_KV_H

#include "quorum/types.h"

/** Version of the command envelope written by qr__kv_cmd_encode. */
#define QR_KV_CODEC_VERSION 2
/** Version of the snapshot format written by qr__kv_snapshot. */
#define QR_KV_SNAPSHOT_VERSION 2
/** Largest key, in bytes. */
#define QR_KV_KEY_SIZE_MAX 1024
/** Largest value, in bytes. */
#define QR_KV_VALUE_SIZE_MAX (1u << 20)
/** Default for qr_kv_opts.keys_max. */
#define QR_KV_KEYS_MAX_DEFAULT (1u << 20)
/** Hard ceiling for qr_kv_opts.keys_max. */
#define QR_KV_KEYS_MAX_LIMIT (1u << 26)
/** Bytes of the fixed part of an encoded command. */
#define QR_KV_CMD_HEADER_SIZE 24
/** Most bytes of the items of one DEL or MSET, their size fields included. */
#define QR_KV_ITEMS_SIZE_MAX (16u << 20)
/** Largest encoded command (an MSET or DEL with items; every other op is smaller). */
#define QR_KV_CMD_SIZE_MAX (QR_KV_CMD_HEADER_SIZE + QR_KV_ITEMS_SIZE_MAX)
/** Bytes of the smallest snapshot, an empty version 1 one: magic, version, count, crc.
    An empty version 2 snapshot adds the members count: QR_KV_SNAPSHOT_SIZE_MIN + 4. */
#define QR_KV_SNAPSHOT_SIZE_MIN 20
/** Longest decimal text of an int64 ("-9223372036854775808"). */
#define QR_KV_INT_TEXT_SIZE_MAX 20

/** What a command does. */
enum qr_kv_op {
    QR_KV_SET = 1,    /* key := value; `flags` QR_KV_SET_NX / _XX / _GET (see below). */
    QR_KV_GET = 2,    /* Read key; changes nothing. */
    QR_KV_DEL = 3,    /* Remove key, or every key of `items` when items_count > 0; answers
                         how many keys were removed. */
    QR_KV_INCR = 4,   /* key := key + delta (absent counts as 0); answers the new value. */
    QR_KV_APPEND = 5, /* key := key . value (absent counts as ""); answers the new length;
                         refused (VALUE_TOO_BIG) beyond QR_KV_VALUE_SIZE_MAX. */
    QR_KV_MSET = 6,   /* items = key, value, key, value ...: all stored, atomically: either
                         every pair is stored (QR_KV_OK) or nothing changes (KEYS_MAX). */
    QR_KV_CAS = 7,    /* Compare and set: if key holds `expected` (or, with flag
                         QR_KV_CAS_ABSENT, the key is absent), key := value and answer 1;
                         otherwise change nothing and answer 0. */
    QR_KV_CAD = 8,    /* Compare and delete: if key holds `expected`, delete it and answer 1;
                         otherwise 0. */
    QR_KV_MEMBER = 9, /* Record the addresses of cluster member `member_id`: key = peer
                         address, value = client address (each <= QR_KV_ADDRESS_SIZE_MAX);
                         both empty: forget the member. Not a key of the map: kept in the
                         member table, carried by snapshots, never seen by GET/SCAN/count. */
};
#define QR_KV_OP_MAX QR_KV_MEMBER

/* Flags of QR_KV_SET (Redis SET options). NX and XX together are refused by the decoder. */
#define QR_KV_SET_NX 0x1u /* Only when the key is absent; otherwise answer NOTFOUND (nil). */
#define QR_KV_SET_XX 0x2u /* Only when the key exists; otherwise answer NOTFOUND (nil). */
/* Answer the old value (VALUE, or NOTFOUND when absent) whether or not the condition held,
   as Redis 7's SET ... GET. */
#define QR_KV_SET_GET 0x4u
/* Flag of QR_KV_CAS. */
#define QR_KV_CAS_ABSENT 0x1u /* Expect the key to be absent (`expected` must be empty). */

/** Most keys (DEL) or key/value pairs x 2 (MSET) in one command. */
#define QR_KV_ITEMS_MAX (1u << 20)
/** Longest member address (QR_KV_MEMBER), bytes. */
#define QR_KV_ADDRESS_SIZE_MAX 255
/** Most members in the member table. */
#define QR_KV_MEMBERS_MAX 64

/** A command. Byte ranges are views; who owns them is stated where a command is produced. */
struct qr_kv_cmd {
    uint64_t client_id; /* Who proposed it; 0 when nobody cares. */
    uint64_t seq;       /* The client's request sequence number. */
    enum qr_kv_op op;
    uint32_t flags;         /* SET: QR_KV_SET_*; CAS: QR_KV_CAS_*; 0 otherwise. */
    struct qr_buf key;      /* <= QR_KV_KEY_SIZE_MAX bytes (MEMBER: the peer address). */
    struct qr_buf value;    /* SET, APPEND, CAS (the new value); MEMBER: client address. */
    struct qr_buf expected; /* CAS, CAD: the value the key must hold. */
    int64_t delta;          /* INCR only. */
    uint64_t member_id;     /* MEMBER only; non-zero. */
    /* DEL (keys) and MSET (key, value, key, value, ...), when items_count > 0 (then `key` is
       unused). To encode, set `items` to an array of items_count buffers. A decoded command
       has items == NULL and `packed` viewing the encoded items; qr__kv_items_next walks them.
       qr__kv_apply accepts both forms. */
    const struct qr_buf *items;
    size_t items_count; /* <= QR_KV_ITEMS_MAX; MSET: even. */
    struct qr_buf packed;
};

/**
 * Walk the items of a decoded command: start with `*rest = cmd->packed`, call until false.
 * @param rest      In/out: what is left. Must be (the rest of) a `packed` that
 *                  qr__kv_cmd_decode produced: anything else is a programmer error (asserts).
 * @param item_out  Out: the next item (a view into the same bytes as `rest`).
 * @return true with an item; false when none is left.
 */
bool qr__kv_items_next(struct qr_buf *rest, struct qr_buf *item_out);

/** The kind of answer a command gets. */
enum qr_kv_status {
    QR_KV_OK = 0,       /* SET, MSET, MEMBER done. */
    QR_KV_VALUE = 1,    /* GET found, SET ... GET had an old value: `value` holds it. */
    QR_KV_NOTFOUND = 2, /* GET of an absent key; SET whose NX/XX condition failed (nil);
                           SET ... GET of a key that was absent. */
    QR_KV_INTEGER = 3,  /* DEL (count removed), INCR (new value), APPEND (new length), CAS and
                           CAD (1 done, 0 not): `integer` holds it. */
    QR_KV_ERROR = 4,    /* Refused; the store is unchanged: `error` says why. */
};

/** Why a command was refused (QR_KV_ERROR). Deterministic: every replica refuses alike. */
enum qr_kv_error {
    QR_KV_ERROR_NONE = 0,
    QR_KV_ERROR_NOT_INTEGER = 1,   /* INCR of a value that is not canonical int64 text. */
    QR_KV_ERROR_OVERFLOW = 2,      /* INCR would leave the int64 range. */
    QR_KV_ERROR_KEYS_MAX = 3,      /* A new key beyond opts.keys_max. */
    QR_KV_ERROR_VALUE_TOO_BIG = 4, /* APPEND would pass QR_KV_VALUE_SIZE_MAX. */
    QR_KV_ERROR_MEMBERS_MAX = 5,   /* MEMBER: a new member beyond QR_KV_MEMBERS_MAX. */
};

/** The answer to one command. */
struct qr_kv_result {
    enum qr_kv_status status;
    enum qr_kv_error error; /* QR_KV_ERROR only. */
    int64_t integer;        /* QR_KV_INTEGER only. */
    /* QR_KV_VALUE only: a view valid until the next qr__kv_apply of anything but a GET,
       qr__kv_restore or qr__kv_destroy (SET ... GET keeps the replaced bytes alive until
       then; a GET's view into a live value is valid at least as long). */
    struct qr_buf value;
};

/** One entry of the member table. */
struct qr_kv_member {
    uint64_t id;
    struct qr_buf peer_address; /* Views valid until the store next changes. */
    struct qr_buf client_address;
};

/** Limits of a store. Zero fields take the defaults. */
struct qr_kv_opts {
    uint64_t keys_max; /* Most keys (default QR_KV_KEYS_MAX_DEFAULT, at most the limit). */
};

struct qr_kv;

/**
 * Create an empty store.
 * @param opts    Borrows; may be NULL for defaults.
 * @param kv_out  Out: owned by the caller; free with qr__kv_destroy().
 * @return 0, QR_EINVAL (keys_max above QR_KV_KEYS_MAX_LIMIT), QR_ENOMEM.
 */
int qr__kv_create(const struct qr_kv_opts *opts, struct qr_kv **kv_out);

/** Free a store and every key and value in it. Accepts NULL. */
void qr__kv_destroy(struct qr_kv *kv);

/** Number of keys held. */
uint64_t qr__kv_count(const struct qr_kv *kv);

/**
 * Look a key up without going through a command.
 * @param key        Borrows.
 * @param value_out  Out: view valid until the store next changes.
 * @return true when found.
 */
bool qr__kv_get(const struct qr_kv *kv, struct qr_buf key, struct qr_buf *value_out);

/**
 * Apply one command. Deterministic: the answer depends only on the map and the command.
 * A refusal (QR_KV_ERROR) is a successful apply that changed nothing.
 * @param cmd         Borrows; keys and values are copied. Must be valid (every rule the
 *                    envelope comment lists: known op, flags the op allows, sizes and
 *                    item counts within limits, MEMBER id non-zero), as qr__kv_cmd_decode
 *                    guarantees: anything else is a programmer error (asserts). Items may
 *                    come as `items` (an array) or `packed` (as decoded).
 * @param result_out  Out.
 * @return 0, QR_ENOMEM (the store is unchanged: every op allocates before it changes
 *         anything; MSET sizes and allocates everything first; MEMBER allocates only
 *         for the first member, and never again afterwards).
 */
int qr__kv_apply(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result_out);

/**
 * Bytes qr__kv_cmd_encode writes for `cmd` (items in either form). A command whose size
 * exceeds QR_KV_CMD_SIZE_MAX is not valid: check this before encoding an MSET or a DEL
 * with many items.
 */
size_t qr__kv_cmd_encoded_size(const struct qr_kv_cmd *cmd);

/**
 * Encode a valid command as version QR_KV_CODEC_VERSION. A decoded command (packed items)
 * encodes back to the bytes it came from (version 1 input: byte 0 becomes 2).
 * @param cmd  Borrows. Valid as for qr__kv_apply, at most QR_KV_CMD_SIZE_MAX bytes.
 * @param buf  Out: qr__kv_cmd_encoded_size(cmd) bytes.
 */
void qr__kv_cmd_encode(const struct qr_kv_cmd *cmd, uint8_t *buf);

/**
 * Decode and validate a command. Untrusted input: any byte string is handled.
 * @param buf      Borrows size bytes; may be NULL when size is 0.
 * @param cmd_out  Out: key, value, expected and packed are views into buf (items is NULL).
 *                 Zeroed on error.
 * @param errmsg   Out, may be NULL: QR_ERRMSG_SIZE bytes, set on error.
 * @return 0, QR_ECORRUPT (malformed: errmsg names the offset), QR_EVERSION (version
 *         neither 1 nor QR_KV_CODEC_VERSION).
 */
int qr__kv_cmd_decode(const uint8_t *buf, size_t size, struct qr_kv_cmd *cmd_out, char *errmsg);

/**
 * Serialize the whole map (keys ascending) and the member table (ids ascending) into a
 * new buffer, as version QR_KV_SNAPSHOT_VERSION: the same state gives the same bytes.
 * @param snapshot_out  Out: owned memory; free snapshot_out->base with qr_free().
 * @return 0, QR_ENOMEM.
 */
int qr__kv_snapshot(const struct qr_kv *kv, struct qr_buf *snapshot_out);

/**
 * Replace the whole map with the one serialized in buf. Untrusted input. On error the
 * store is unchanged.
 * @param buf     Borrows size bytes; may be NULL when size is 0.
 * @param errmsg  Out, may be NULL.
 * @return 0, QR_ECORRUPT (malformed, bad crc, keys out of order or duplicated, sizes beyond
 *         the limits; members out of order, duplicated, with id 0 or without an address,
 *         more than QR_KV_MEMBERS_MAX), QR_EVERSION (neither 1 nor 2), QR_EBUSY (more keys
 *         than opts.keys_max), QR_ENOMEM. A version 1 snapshot restores an empty member
 *         table.
 */
int qr__kv_restore(struct qr_kv *kv, const uint8_t *buf, size_t size, char *errmsg);

/**
 * Parse canonical int64 decimal text.
 * @return true and *value_out on success; false for anything else.
 */
bool qr__kv_parse_int(const uint8_t *text, size_t size, int64_t *value_out);

/**
 * Format an int64 as canonical decimal text.
 * @param text  Out: at least QR_KV_INT_TEXT_SIZE_MAX bytes; not NUL-terminated.
 * @return The number of bytes written.
 */
size_t qr__kv_format_int(int64_t value, uint8_t *text);

/** The Redis-style message of a refusal, e.g. "ERR value is not an integer or out of range". */
const char *qr__kv_error_text(enum qr_kv_error error);

/** Name of an operation: "set", "get", "del", "incr", "append", "mset", "cas", "cad",
    "member"; "?" otherwise. */
const char *qr__kv_op_name(enum qr_kv_op op);

/** Number of members in the member table. */
size_t qr__kv_members_count(const struct qr_kv *kv);

/**
 * The i-th member, by ascending id.
 * @param i           < qr__kv_members_count(kv).
 * @param member_out  Out: the addresses are views valid until the store next changes.
 */
void qr__kv_member_at(const struct qr_kv *kv, size_t i, struct qr_kv_member *member_out);

/** Called by qr__kv_scan for each key visited; views valid for the call. */
typedef void (*qr_kv_visit_cb)(void *ctx, struct qr_buf key, struct qr_buf value);

/**
 * Incremental iteration with a stateless cursor, as Redis SCAN: start with cursor 0 and
 * call again with the returned cursor until it returns 0. Every key present for the whole
 * walk is visited at least once, even when the store grows or shrinks or is restored in
 * between; in fact exactly once (the cursor is a hash value and the calls cover disjoint
 * hash ranges), and no key is ever visited twice in one walk, even one deleted and added
 * again. Keys added or removed meanwhile may or may not be visited. Any cursor value is
 * accepted (a client may send garbage): the walk still ends. Each call does bounded work:
 * it examines at least one slot and at most 10 x count slots, visits about `count` keys,
 * plus the rest of the probe run (normally a few slots) where it stops.
 * @param count  Hint; 0 counts as 1.
 * @param visit  Called for each key visited; must not change the store.
 * @return The next cursor, always greater than `cursor`; 0 when the walk is complete.
 */
uint64_t
qr__kv_scan(const struct qr_kv *kv, uint64_t cursor, size_t count, qr_kv_visit_cb visit, void *ctx);

/**
 * Redis glob-style matching (as KEYS and SCAN MATCH), case-sensitive: `*` any run of
 * bytes, `?` one byte, `[abc]`, `[^a-c]` one byte of a set (reversed range bounds are
 * swapped, `\x` inside escapes, a set without `]` ends with the pattern, `[]` matches
 * nothing), `\x` the byte x (a final lone `\` is itself). Bytes compare unsigned. Unlike
 * Redis's matcher, a pattern of only `*`s matches the empty key (Redis's KEYS * and SCAN
 * special-case that pattern to the same effect). Time O(pattern_size x size), no
 * recursion, whatever the pattern.
 * @param pattern  Borrows; may be NULL when pattern_size is 0.
 * @param text     Borrows; may be NULL when size is 0.
 */
bool qr__kv_match(const uint8_t *pattern, size_t pattern_size, const uint8_t *text, size_t size);

/** Assert the store's internal invariants (O(n); call from tests and debug builds). */
void qr__kv_check_invariants(const struct qr_kv *kv);

#endif /* QR_KV_KV_H */
