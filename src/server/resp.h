/*
 * server/resp.h: the RESP2 client protocol of quorumd: request parser and reply writer.
 *
 * Layer: server (depends on util only). This module turns the bytes a client sends into
 * commands (argument vectors of byte strings) and turns replies into bytes. It never does
 * I/O, never reads a clock and never blocks: the event loop feeds it whatever arrived and
 * sends whatever it produced. Client bytes are hostile: any byte string, split anywhere,
 * yields either commands or a protocol error, never a crash, never an allocation larger
 * than the limits below allow, and never memory that the client has only announced.
 *
 * Requests (Redis protocol specification, "sending commands to a Redis server"): a
 * client sends either a multibulk request, an array of bulk strings
 *
 *     *<count>\r\n  then <count> times  $<size>\r\n<size bytes>\r\n
 *
 * or an inline command, one line of words separated by blanks (space, \t, \r, \v, \f, so
 * "\r\n" ends a line as well as "\n" does) as telnet users and `redis-cli` scripts send;
 * a NUL is an ordinary byte (Redis stops reading the line there). Inline words
 * may be quoted like redis-cli's: "double quotes" understand \n \r \t \b \a \\ \" and
 * \xHH escapes, 'single quotes' only \'; a closing quote must be followed by a blank or
 * the end of the line. A request whose first byte is '*' is multibulk, any other is inline.
 * As in Redis, "*0", a negative count such as "*-1", and an inline line of blanks only are
 * empty requests: they are skipped, never yielded. Counts and sizes are canonical decimal
 * ("0" or a non-zero digit first; no '+', no spaces). Unlike Redis, the two bytes after a
 * bulk's payload must be "\r\n". RESP2 requests are flat (one array of bulk strings), so
 * the parser has no nesting at all; a nested array is refused with "expected '$'".
 *
 * The parser is incremental and iterative (no recursion): qr__resp_parse() takes any
 * number of bytes and stops after the first complete command, so the caller loops over
 * a read buffer, and may stop feeding (back-pressure) whenever its replies pile up. The
 * result never depends on how the bytes were split. Argument bytes are copied once into
 * a buffer that grows geometrically as data actually arrives (never to a size a header
 * merely announces), so a large bulk arriving in small pieces costs linear time.
 *
 * A protocol error leaves the parser failed for good: the server replies
 * "-ERR <errmsg>" (qr__resp_write_error does exactly that) and closes the connection,
 * as Redis does.
 *
 * Replies: the writer appends RESP2 replies to one growable buffer with a hard cap on the
 * bytes pending; each reply is appended whole or not at all, and QR_EBUSY tells the
 * server that a client does not read its replies (the server then closes it).
 *
 * Threading: one thread at a time per parser or writer; distinct objects are independent.
 */
#ifndef QR_SERVER_RESP_H
#define QR_SERVER_RESP_H

#include <stdint.h>

#include "quorum/err.h"
#include "quorum/types.h"

/** Default most arguments in one command (Redis allows 1024*1024 before authentication). */
#define QR_RESP_ARGS_COUNT_MAX_DEFAULT ((size_t)1024 * 1024)
/** Default largest bulk string in a request (Redis's proto-max-bulk-len). */
#define QR_RESP_BULK_SIZE_MAX_DEFAULT ((size_t)512 * 1024 * 1024)
/** Default longest inline line, bytes before its "\n" (Redis's PROTO_INLINE_MAX_SIZE). */
#define QR_RESP_INLINE_SIZE_MAX_DEFAULT ((size_t)64 * 1024)
/** Default most argument bytes in one command (Redis's client-query-buffer-limit). */
#define QR_RESP_COMMAND_SIZE_MAX_DEFAULT ((size_t)1024 * 1024 * 1024)
/** Hard ceiling of qr_resp_parser_opts.args_count_max. */
#define QR_RESP_ARGS_COUNT_LIMIT ((size_t)1 << 24)
/** Hard ceiling of every size option, parser and writer; keeps size sums from overflowing. */
#define QR_RESP_SIZE_LIMIT (SIZE_MAX / 2)
/** Most bytes between '*' or '$' and '\r': the 20 characters of "-9223372036854775808". */
#define QR_RESP_HEADER_SIZE_MAX 20
/** Argument bytes kept allocated between commands; a larger buffer is freed. */
#define QR_RESP_RETAIN_SIZE ((size_t)64 * 1024)
/** Argument slots kept allocated between commands; a larger array is freed. */
#define QR_RESP_RETAIN_ARGS_COUNT ((size_t)1024)
/** Default most reply bytes pending in a writer. */
#define QR_RESP_REPLY_SIZE_MAX_DEFAULT ((size_t)64 * 1024 * 1024)
/** Longest message qr__resp_write_errorf formats; longer ones are cut. */
#define QR_RESP_ERROR_SIZE_MAX 512

/**
 * Why a parser failed. Several kinds share Redis's message: "invalid bulk length" covers
 * both a malformed size and one above the limit, but the kinds tell them apart (metrics).
 */
enum qr_resp_error {
    QR_RESP_ERROR_NONE = 0,          /* Not failed. */
    QR_RESP_ERROR_MULTIBULK_LENGTH,  /* "*" line not canonical decimal, or not "\r\n" ended. */
    QR_RESP_ERROR_ARGS_TOO_MANY,     /* "*N" above args_count_max. */
    QR_RESP_ERROR_EXPECTED_DOLLAR,   /* A bulk header did not start with '$'. */
    QR_RESP_ERROR_BULK_LENGTH,       /* "$" line malformed, negative or not "\r\n" ended. */
    QR_RESP_ERROR_BULK_TOO_BIG,      /* "$N" above bulk_size_max. */
    QR_RESP_ERROR_BULK_CRLF,         /* The payload was not followed by "\r\n". */
    QR_RESP_ERROR_COMMAND_TOO_BIG,   /* The arguments would pass command_size_max. */
    QR_RESP_ERROR_INLINE_TOO_BIG,    /* Inline line or its word count above the limits. */
    QR_RESP_ERROR_UNBALANCED_QUOTES, /* Inline quote not closed, or closed mid-word. */
    QR_RESP_ERROR_NOMEM,             /* Out of memory (QR_ENOMEM), not the client's fault. */
};
#define QR_RESP_ERROR_KIND_MAX QR_RESP_ERROR_NOMEM

/** Limits of a parser. A zero field takes its default. Each is enforced before allocating. */
struct qr_resp_parser_opts {
    size_t args_count_max;   /* Most arguments per command, <= QR_RESP_ARGS_COUNT_LIMIT. */
    size_t bulk_size_max;    /* Largest bulk string, bytes, <= QR_RESP_SIZE_LIMIT. */
    size_t inline_size_max;  /* Longest inline line: bytes before its "\n", a "\r" included. */
    size_t command_size_max; /* Most argument bytes in one command (sum of sizes). */
};

/** Parser states. Internal: read only by resp.c and by tests. */
enum qr_resp_state {
    QR_RESP_STATE_START = 0, /* Between commands: the next byte picks multibulk or inline. */
    QR_RESP_STATE_INLINE,    /* Collecting an inline line into the arena. */
    QR_RESP_STATE_COUNT,     /* The characters of "*N" until '\r'. */
    QR_RESP_STATE_COUNT_LF,  /* The '\n' after "*N\r". */
    QR_RESP_STATE_DOLLAR,    /* The '$' that starts the next bulk. */
    QR_RESP_STATE_SIZE,      /* The characters of "$N" until '\r'. */
    QR_RESP_STATE_SIZE_LF,   /* The '\n' after "$N\r". */
    QR_RESP_STATE_DATA,      /* Payload bytes of the current bulk. */
    QR_RESP_STATE_DATA_CR,   /* The '\r' after a payload. */
    QR_RESP_STATE_DATA_LF,   /* The '\n' after a payload. */
    QR_RESP_STATE_FAILED,    /* Sticky: every later call returns `err`; buffers freed. */
};

/**
 * A request parser. The caller provides the memory (qr__resp_parser_init/close); fields
 * are read-only outside resp.c. Memory held is at most command_size_max + args_count_max
 * * (sizeof(struct qr_buf) + 1) bytes, and only as much as the client actually sent.
 */
struct qr_resp_parser {
    struct qr_resp_parser_opts opts; /* Limits with defaults filled in. */
    enum qr_resp_state state;
    int err;                     /* 0, or the sticky QR_EPROTO / QR_ENOMEM once failed. */
    enum qr_resp_error error;    /* Why it failed; QR_RESP_ERROR_NONE iff err == 0. */
    char errmsg[QR_ERRMSG_SIZE]; /* Redis-style message once failed, e.g. "Protocol error: ". */
    uint8_t header[QR_RESP_HEADER_SIZE_MAX]; /* Characters of the "*N" or "$N" being read. */
    size_t header_size;                      /* Bytes in header, <= QR_RESP_HEADER_SIZE_MAX. */
    uint8_t *arena;        /* Argument bytes, each followed by a NUL; NULL iff capacity 0. */
    size_t arena_size;     /* Bytes used, <= arena_capacity. */
    size_t arena_capacity; /* Bytes allocated. */
    struct qr_buf *args;   /* Arguments so far; base is set only when yielded. */
    size_t args_count;     /* Arguments so far, <= args_expected while multibulk. */
    size_t args_capacity;  /* Slots allocated; NULL args iff 0. */
    size_t args_expected;  /* N of the "*N" being read; 0 otherwise. */
    size_t bulk_remaining; /* Payload bytes of the current bulk still to come (DATA only). */
    size_t command_size;   /* Sum of argument sizes so far, <= opts.command_size_max. */
    bool is_yielded;       /* The last call returned a command; reset on the next call. */
    uint64_t offset;       /* Bytes consumed since init; once failed, the offending byte. */
};

/** A parsed command: a view valid until the next qr__resp_parse or qr__resp_parser_close. */
struct qr_resp_command {
    struct qr_buf *args; /* args_count arguments; each base[len] is a NUL not counted. */
    size_t args_count;   /* 0 when no command is complete yet, >= 1 otherwise. */
};

/**
 * A reply buffer with a cap. The caller provides the memory (qr__resp_writer_init/close).
 * Pending bytes are base[head, len).
 */
struct qr_resp_writer {
    uint8_t *base;   /* NULL iff capacity is 0. */
    size_t head;     /* Bytes already consumed at the front, <= len. */
    size_t len;      /* End of the pending bytes, <= capacity. */
    size_t capacity; /* Bytes allocated. */
    size_t size_max; /* Most pending bytes (len - head). */
};

/**
 * Prepare a parser. Allocates nothing: memory comes as bytes arrive.
 * @param parser  Out: memory provided by the caller; release with qr__resp_parser_close().
 * @param opts    Borrows; NULL for every default.
 * @return 0, QR_EINVAL (a limit above its ceiling; the parser then needs no close).
 */
int qr__resp_parser_init(struct qr_resp_parser *parser, const struct qr_resp_parser_opts *opts);

/** Free what the parser holds; views it returned become invalid. Accepts NULL. */
void qr__resp_parser_close(struct qr_resp_parser *parser);

/**
 * Feed received bytes and stop after the first complete command. Call again with the
 * rest (data + *consumed_out) until a call yields no command.
 * @param parser       Borrows. Any earlier command view becomes invalid.
 * @param data         Borrows size bytes (copied as needed); may be NULL when size is 0.
 * @param consumed_out Out: bytes used; all of them (size) when no command is yielded. On
 *                     error, the bytes before the one where the error was found, however
 *                     the stream was split (parser->offset is then that byte's position).
 * @param command_out  Out: args_count 0 (need more bytes), or a command: a view into the
 *                     parser valid until the next call on it.
 * @return 0; QR_EPROTO (bad or too big input: parser->errmsg holds the Redis message and
 *         parser->error the kind); QR_ENOMEM. Both are sticky: reply "-ERR <errmsg>" and
 *         close the connection.
 */
int qr__resp_parse(struct qr_resp_parser *parser,
                   const uint8_t *data,
                   size_t size,
                   size_t *consumed_out,
                   struct qr_resp_command *command_out);

/** Assert the parser's invariants (O(arguments) in QR_DEBUG builds, O(1) otherwise). */
void qr__resp_parser_check_invariants(const struct qr_resp_parser *parser);

/** A stable name for an error kind, such as "bulk_too_big", for logs and metrics. */
const char *qr__resp_error_name(enum qr_resp_error error);

/**
 * Prepare an empty writer. Allocates nothing.
 * @param writer    Out: memory provided by the caller; release with qr__resp_writer_close().
 * @param size_max  Most pending bytes; 0 for QR_RESP_REPLY_SIZE_MAX_DEFAULT.
 * @return 0, QR_EINVAL (size_max above QR_RESP_SIZE_LIMIT).
 */
int qr__resp_writer_init(struct qr_resp_writer *writer, size_t size_max);

/** Free the pending bytes. Accepts NULL. */
void qr__resp_writer_close(struct qr_resp_writer *writer);

/*
 * The reply functions below share one contract. Each appends one whole reply or nothing:
 * 0; QR_EBUSY when the pending bytes would pass size_max (a client that does not read:
 * close it); QR_ENOMEM. Texts and data are borrowed and copied. Text may hold any byte;
 * "\r" and "\n" in a simple string or an error become spaces so a reply can never break
 * the framing, as Redis does for error messages.
 */

/** "+<text>\r\n", e.g. text "OK". @param text  Borrows len bytes. */
int qr__resp_write_simple(struct qr_resp_writer *writer, const char *text, size_t len);

/**
 * An error reply. Text starting with '-' carries its own code ("-NOTLEADER 10.0.0.2:7001"
 * is written as is); any other text gets "-ERR " in front, as Redis's addReplyError does.
 * @param text  Borrows len bytes.
 */
int qr__resp_write_error(struct qr_resp_writer *writer, const char *text, size_t len);

/** qr__resp_write_error of a printf-formatted message cut to QR_RESP_ERROR_SIZE_MAX - 1. */
int qr__resp_write_errorf(struct qr_resp_writer *writer, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** ":<value>\r\n". */
int qr__resp_write_integer(struct qr_resp_writer *writer, int64_t value);

/** "$<len>\r\n<data>\r\n", binary-safe. @param data  Borrows; NULL allowed when len is 0. */
int qr__resp_write_bulk(struct qr_resp_writer *writer, const uint8_t *data, size_t len);

/** "$-1\r\n": the null bulk string (GET of a missing key). */
int qr__resp_write_null_bulk(struct qr_resp_writer *writer);

/** "*<count>\r\n": the caller then writes count replies. */
int qr__resp_write_array(struct qr_resp_writer *writer, size_t count);

/** "*-1\r\n": the null array. */
int qr__resp_write_null_array(struct qr_resp_writer *writer);

/**
 * A command as a multibulk request (for forwarding to the leader, and for tests).
 * @param args  Borrows args_count arguments; args_count >= 1.
 */
int qr__resp_write_command(struct qr_resp_writer *writer,
                           const struct qr_buf *args,
                           size_t args_count);

/**
 * Bytes that already are whole replies (made by another writer), appended as they are.
 * @param data  Borrows len bytes; NULL allowed when len is 0.
 */
int qr__resp_write_raw(struct qr_resp_writer *writer, const uint8_t *data, size_t len);

/** The pending bytes: a view valid until the next call on the writer. */
struct qr_buf qr__resp_writer_pending(const struct qr_resp_writer *writer);

/** Drop the first `size` pending bytes (they were sent); size <= pending. */
void qr__resp_writer_consume(struct qr_resp_writer *writer, size_t size);

/**
 * Move the pending bytes out (for an asynchronous write that needs them stable).
 * @param buf_out  Out: owned memory, free buf_out->base with qr_free(); {NULL, 0} when
 *                 nothing is pending. The writer is left empty and usable.
 */
void qr__resp_writer_take(struct qr_resp_writer *writer, struct qr_buf *buf_out);

/** Assert the writer's invariants. */
void qr__resp_writer_check_invariants(const struct qr_resp_writer *writer);

#endif /* QR_SERVER_RESP_H */
