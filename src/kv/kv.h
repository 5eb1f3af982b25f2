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
 * the server) can recognise its own entry when it is applied:
 *
 *   offset size  field
 *   0      1     version (QR_KV_CODEC_VERSION)
 *   1      1     op (enum qr_kv_op)
 *   2      2     reserved, zero
 *   4      8     client id
 *   12     8     request sequence number
 *   20     4     key size K (<= QR_KV_KEY_SIZE_MAX)
 *   24     K     key bytes
 *   SET:   4 + V value size V (<= QR_KV_VALUE_SIZE_MAX), then V value bytes
 *   INCR:  8     delta, two's complement
 *   nothing may follow.
 *
 * Snapshot format (little-endian): magic "QKVS", u32 version, u64 keys count,
 * then per key in ascending order u32 key size, key, u32 value size, value,
 * and finally the CRC32C of everything before it.
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
#define QR_KV_CODEC_VERSION 1
/** Version of the snapshot format written by qr__kv_snapshot. */
#define QR_KV_SNAPSHOT_VERSION 1
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
/** Largest encoded command. */
#define QR_KV_CMD_SIZE_MAX (QR_KV_CMD_HEADER_SIZE + QR_KV_KEY_SIZE_MAX + 4 + QR_KV_VALUE_SIZE_MAX)
/** Bytes of an empty snapshot: magic, version, count, crc. */
#define QR_KV_SNAPSHOT_SIZE_MIN 20
/** Longest decimal text of an int64 ("-9223372036854775808"). */
#define QR_KV_INT_TEXT_SIZE_MAX 20

/** What a command does. */
enum qr_kv_op {
    QR_KV_SET = 1,  /* key := value. */
    QR_KV_GET = 2,  /* Read key; changes nothing. */
    QR_KV_DEL = 3,  /* Remove key; answers how many keys were removed (0 or 1). */
    QR_KV_INCR = 4, /* key := key + delta (absent counts as 0); answers the new value. */
};
#define QR_KV_OP_MAX QR_KV_INCR

/** A command. Byte ranges are views; who owns them is stated where a command is produced. */
struct qr_kv_cmd {
    uint64_t client_id; /* Who proposed it; 0 when nobody cares. */
    uint64_t seq;       /* The client's request sequence number. */
    enum qr_kv_op op;
    struct qr_buf key;   /* <= QR_KV_KEY_SIZE_MAX bytes. */
    struct qr_buf value; /* SET only; <= QR_KV_VALUE_SIZE_MAX bytes. */
    int64_t delta;       /* INCR only. */
};

/** The kind of answer a command gets. */
enum qr_kv_status {
    QR_KV_OK = 0,       /* SET done. */
    QR_KV_VALUE = 1,    /* GET found: `value` holds it. */
    QR_KV_NOTFOUND = 2, /* GET of an absent key. */
    QR_KV_INTEGER = 3,  /* DEL (count removed) or INCR (new value): `integer` holds it. */
    QR_KV_ERROR = 4,    /* Refused; the store is unchanged: `error` says why. */
};

/** Why a command was refused (QR_KV_ERROR). Deterministic: every replica refuses alike. */
enum qr_kv_error {
    QR_KV_ERROR_NONE = 0,
    QR_KV_ERROR_NOT_INTEGER = 1, /* INCR of a value that is not canonical int64 text. */
    QR_KV_ERROR_OVERFLOW = 2,    /* INCR would leave the int64 range. */
    QR_KV_ERROR_KEYS_MAX = 3,    /* A new key beyond opts.keys_max. */
};

/** The answer to one command. */
struct qr_kv_result {
    enum qr_kv_status status;
    enum qr_kv_error error; /* QR_KV_ERROR only. */
    int64_t integer;        /* QR_KV_INTEGER only. */
    struct qr_buf value;    /* QR_KV_VALUE only: view valid until the store next changes. */
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
 * @param cmd         Borrows; key and value are copied. Must be valid (sizes within limits,
 *                    known op), as qr__kv_cmd_decode guarantees: anything else is a
 *                    programmer error.
 * @param result_out  Out.
 * @return 0, QR_ENOMEM (the store is unchanged).
 */
int qr__kv_apply(struct qr_kv *kv, const struct qr_kv_cmd *cmd, struct qr_kv_result *result_out);

/** Bytes qr__kv_cmd_encode writes for `cmd`. */
size_t qr__kv_cmd_encoded_size(const struct qr_kv_cmd *cmd);

/**
 * Encode a valid command.
 * @param cmd  Borrows.
 * @param buf  Out: qr__kv_cmd_encoded_size(cmd) bytes.
 */
void qr__kv_cmd_encode(const struct qr_kv_cmd *cmd, uint8_t *buf);

/**
 * Decode and validate a command. Untrusted input: any byte string is handled.
 * @param buf      Borrows size bytes; may be NULL when size is 0.
 * @param cmd_out  Out: key and value are views into buf.
 * @param errmsg   Out, may be NULL: QR_ERRMSG_SIZE bytes, set on error.
 * @return 0, QR_ECORRUPT (malformed: errmsg names the offset), QR_EVERSION.
 */
int qr__kv_cmd_decode(const uint8_t *buf, size_t size, struct qr_kv_cmd *cmd_out, char *errmsg);

/**
 * Serialize the whole map (keys ascending) into a new buffer.
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
 *         the limits), QR_EVERSION, QR_EBUSY (more keys than opts.keys_max), QR_ENOMEM.
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

/** Name of an operation: "set", "get", "del", "incr"; "?" otherwise. */
const char *qr__kv_op_name(enum qr_kv_op op);

/** Assert the store's internal invariants (O(n); call from tests and debug builds). */
void qr__kv_check_invariants(const struct qr_kv *kv);

#endif /* QR_KV_KV_H */
