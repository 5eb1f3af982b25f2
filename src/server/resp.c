/*
 * server/resp.c: RESP2 request parser and reply writer (see resp.h for the protocol).
 *
 * Layer: server (util only). The parser is a byte-driven state machine with no recursion:
 * a request is flat, so the only "depth" is the one array of bulk strings. Every limit is
 * checked before the memory it protects is requested, and buffers grow geometrically
 * from what actually arrived, so a hostile header that announces 2^40 bytes or a million
 * arguments costs nothing until the bytes come. This file must never trust a count or a
 * size read from the client, never print, and never allocate except through util/alloc.h.
 */
#include "server/resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

/* Smallest argument buffer allocated; one covers a typical command and is kept. */
#define ARENA_SIZE_MIN ((size_t)256)
/* Smallest argument array allocated. */
#define ARGS_COUNT_MIN ((size_t)8)
/* Smallest reply buffer allocated. */
#define WRITER_SIZE_MIN ((size_t)1024)
/* Characters of the longest uint64 in decimal, "18446744073709551615". */
#define U64_TEXT_SIZE_MAX 20
/* A reply header: type byte, sign, digits, "\r\n". */
#define LINE_TEXT_SIZE_MAX (1 + 1 + U64_TEXT_SIZE_MAX + 2)

_Static_assert(QR_RESP_HEADER_SIZE_MAX >= 20, "a header holds \"-9223372036854775808\"");
_Static_assert(QR_RESP_ARGS_COUNT_MAX_DEFAULT <= QR_RESP_ARGS_COUNT_LIMIT, "default in range");
_Static_assert(QR_RESP_BULK_SIZE_MAX_DEFAULT <= QR_RESP_SIZE_LIMIT, "default in range");
_Static_assert(QR_RESP_COMMAND_SIZE_MAX_DEFAULT <= QR_RESP_SIZE_LIMIT, "default in range");
_Static_assert(QR_RESP_INLINE_SIZE_MAX_DEFAULT <= QR_RESP_COMMAND_SIZE_MAX_DEFAULT,
               "a default inline line fits a default command");
_Static_assert(QR_RESP_REPLY_SIZE_MAX_DEFAULT <= QR_RESP_SIZE_LIMIT, "default in range");
_Static_assert(QR_RESP_ARGS_COUNT_LIMIT <= SIZE_MAX / 4 / sizeof(struct qr_buf),
               "the argument array size cannot overflow");
_Static_assert(QR_RESP_RETAIN_SIZE >= ARENA_SIZE_MIN, "the first arena is kept");
_Static_assert(QR_RESP_RETAIN_ARGS_COUNT >= ARGS_COUNT_MIN, "the first array is kept");

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */

/* Redis's wording (networking.c), so clients and their tests see familiar messages. */
static const char *error_message(enum qr_resp_error error)
{
    switch (error) {
    case QR_RESP_ERROR_NONE:
        return "no error";
    case QR_RESP_ERROR_MULTIBULK_LENGTH:
    case QR_RESP_ERROR_ARGS_TOO_MANY:
        return "Protocol error: invalid multibulk length";
    case QR_RESP_ERROR_EXPECTED_DOLLAR:
        return "Protocol error: expected '$'";
    case QR_RESP_ERROR_BULK_LENGTH:
    case QR_RESP_ERROR_BULK_TOO_BIG:
        return "Protocol error: invalid bulk length";
    case QR_RESP_ERROR_BULK_CRLF:
        return "Protocol error: expected '\\r\\n' after bulk data";
    case QR_RESP_ERROR_COMMAND_TOO_BIG:
        return "Protocol error: too big request";
    case QR_RESP_ERROR_INLINE_TOO_BIG:
        return "Protocol error: too big inline request";
    case QR_RESP_ERROR_UNBALANCED_QUOTES:
        return "Protocol error: unbalanced quotes in request";
    case QR_RESP_ERROR_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

const char *qr__resp_error_name(enum qr_resp_error error)
{
    switch (error) {
    case QR_RESP_ERROR_NONE:
        return "none";
    case QR_RESP_ERROR_MULTIBULK_LENGTH:
        return "multibulk_length";
    case QR_RESP_ERROR_ARGS_TOO_MANY:
        return "args_too_many";
    case QR_RESP_ERROR_EXPECTED_DOLLAR:
        return "expected_dollar";
    case QR_RESP_ERROR_BULK_LENGTH:
        return "bulk_length";
    case QR_RESP_ERROR_BULK_TOO_BIG:
        return "bulk_too_big";
    case QR_RESP_ERROR_BULK_CRLF:
        return "bulk_crlf";
    case QR_RESP_ERROR_COMMAND_TOO_BIG:
        return "command_too_big";
    case QR_RESP_ERROR_INLINE_TOO_BIG:
        return "inline_too_big";
    case QR_RESP_ERROR_UNBALANCED_QUOTES:
        return "unbalanced_quotes";
    case QR_RESP_ERROR_NOMEM:
        return "nomem";
    }
    return "unknown";
}

/*
 * Fails the parser for good; every later call returns the same code. The buffers go at
 * once: the server may keep the connection open to flush the error reply, and the failed
 * state is then the same however the stream was split. Callers return right after.
 */
static int parser_fail(struct qr_resp_parser *p, enum qr_resp_error error)
{
    QR_ASSERT(error != QR_RESP_ERROR_NONE);
    QR_ASSERT(p->err == 0);
    qr_free(p->arena);
    qr_free(p->args);
    p->arena = NULL;
    p->args = NULL;
    p->arena_size = 0;
    p->arena_capacity = 0;
    p->args_count = 0;
    p->args_capacity = 0;
    p->args_expected = 0;
    p->header_size = 0;
    p->command_size = 0;
    p->bulk_remaining = 0;
    p->state = QR_RESP_STATE_FAILED;
    p->error = error;
    p->err = error == QR_RESP_ERROR_NOMEM ? QR_ENOMEM : QR_EPROTO;
    return qr__errf(p->errmsg, p->err, "%s", error_message(error));
}

/* Redis prints the offending byte raw; we escape unprintable ones so logs stay readable. */
static int parser_fail_dollar(struct qr_resp_parser *p, uint8_t byte)
{
    int rv = parser_fail(p, QR_RESP_ERROR_EXPECTED_DOLLAR);
    if (byte >= 0x20 && byte < 0x7f) {
        return qr__errf(p->errmsg, rv, "Protocol error: expected '$', got '%c'", byte);
    }
    return qr__errf(p->errmsg, rv, "Protocol error: expected '$', got '\\x%02x'", byte);
}

/* ------------------------------------------------------------------------------------ */
/* Parser memory                                                                        */
/* ------------------------------------------------------------------------------------ */

/*
 * Grow the arena to hold `need` bytes: doubling, so bytes arriving in small pieces cost
 * linear time, and never beyond twice what arrived. A large buffer also stops at
 * `ceiling`, the most the current command could still use, so the last bulk of a big
 * command gets no slack; a small one grows freely, since it is kept between commands.
 */
static int arena_reserve(struct qr_resp_parser *p, size_t need, size_t ceiling)
{
    QR_ASSERT(need <= ceiling);
    QR_ASSERT(p->arena_size <= p->arena_capacity);
    if (need <= p->arena_capacity) {
        return 0;
    }
    size_t bound = ceiling > QR_RESP_RETAIN_SIZE ? ceiling : QR_RESP_RETAIN_SIZE;
    size_t capacity = p->arena_capacity <= bound / 2 ? 2 * p->arena_capacity : bound;
    capacity = capacity < ARENA_SIZE_MIN ? ARENA_SIZE_MIN : capacity;
    capacity = capacity < need ? need : capacity;
    capacity = capacity > bound ? bound : capacity;
    uint8_t *arena = qr_realloc(p->arena, capacity);
    if (arena == NULL) {
        return parser_fail(p, QR_RESP_ERROR_NOMEM);
    }
    p->arena = arena;
    p->arena_capacity = capacity;
    QR_ASSERT(need <= p->arena_capacity);
    return 0;
}

/* Make room for one more argument slot, never more than `ceiling` slots. */
static int args_reserve(struct qr_resp_parser *p, size_t ceiling)
{
    QR_ASSERT(p->args_count < ceiling);
    QR_ASSERT(ceiling <= p->opts.args_count_max);
    if (p->args_count < p->args_capacity) {
        return 0;
    }
    size_t capacity = p->args_capacity < ARGS_COUNT_MIN ? ARGS_COUNT_MIN : p->args_capacity * 2;
    capacity = capacity > ceiling ? ceiling : capacity;
    struct qr_buf *args = qr_realloc(p->args, capacity * sizeof(*args));
    if (args == NULL) {
        return parser_fail(p, QR_RESP_ERROR_NOMEM);
    }
    p->args = args;
    p->args_capacity = capacity;
    QR_ASSERT(p->args_count < p->args_capacity);
    return 0;
}

/* Forget the yielded command; free buffers one large command left behind. */
static void command_reset(struct qr_resp_parser *p)
{
    QR_ASSERT(p->state == QR_RESP_STATE_START);
    p->args_count = 0;
    p->args_expected = 0;
    p->arena_size = 0;
    p->command_size = 0;
    p->bulk_remaining = 0;
    p->is_yielded = false;
    if (p->arena_capacity > QR_RESP_RETAIN_SIZE) {
        qr_free(p->arena);
        p->arena = NULL;
        p->arena_capacity = 0;
    }
    if (p->args_capacity > QR_RESP_RETAIN_ARGS_COUNT) {
        qr_free(p->args);
        p->args = NULL;
        p->args_capacity = 0;
    }
}

/* Point each argument at its bytes, now that the arena no longer moves. */
static void command_yield(struct qr_resp_parser *p, struct qr_resp_command *command_out)
{
    QR_ASSERT(p->args_count >= 1);
    QR_ASSERT(p->arena != NULL);
    size_t offset = 0;
    for (size_t i = 0; i < p->args_count; i++) {
        p->args[i].base = p->arena + offset;
        offset += p->args[i].len;
        QR_ASSERT(offset < p->arena_size);
        QR_ASSERT(p->arena[offset] == '\0');
        offset++;
    }
    QR_ASSERT(offset == p->arena_size);
    command_out->args = p->args;
    command_out->args_count = p->args_count;
    p->is_yielded = true;
}

/* ------------------------------------------------------------------------------------ */
/* Multibulk                                                                            */
/* ------------------------------------------------------------------------------------ */

/* Canonical decimal int64 as Redis's string2ll accepts it (util/parse.h). */
static bool header_parse(const uint8_t *text, size_t size, int64_t *value_out)
{
    return qr__parse_i64_canonical(text, size, value_out);
}

/*
 * One character of a "*N" or "$N" line. Anything but a digit (or a leading '-') fails at
 * once, so a client typing LF-only lines learns of it without sending 64 KiB first.
 */
static int
header_push(struct qr_resp_parser *p, uint8_t byte, enum qr_resp_error error, bool *is_done_out)
{
    *is_done_out = byte == '\r';
    if (*is_done_out) {
        return 0;
    }
    bool is_sign = byte == '-' && p->header_size == 0;
    bool is_digit = byte >= '0' && byte <= '9';
    if ((!is_sign && !is_digit) || p->header_size == QR_RESP_HEADER_SIZE_MAX) {
        return parser_fail(p, error);
    }
    p->header[p->header_size] = byte;
    p->header_size++;
    return 0;
}

/* "*N\r" read. As in Redis, N <= 0 is an empty request, skipped after its '\n'. */
static int count_finish(struct qr_resp_parser *p)
{
    int64_t count = 0;
    if (!header_parse(p->header, p->header_size, &count)) {
        return parser_fail(p, QR_RESP_ERROR_MULTIBULK_LENGTH);
    }
    if (count > 0 && (uint64_t)count > (uint64_t)p->opts.args_count_max) {
        return parser_fail(p, QR_RESP_ERROR_ARGS_TOO_MANY);
    }
    /* Only the limit is known here; the argument array grows as bulks arrive. */
    p->args_expected = count > 0 ? (size_t)count : 0;
    p->state = QR_RESP_STATE_COUNT_LF;
    return 0;
}

/* "$N\r" read: check every limit, then take an argument slot (not its bytes yet). */
static int size_finish(struct qr_resp_parser *p)
{
    int64_t size = 0;
    if (!header_parse(p->header, p->header_size, &size) || size < 0) {
        return parser_fail(p, QR_RESP_ERROR_BULK_LENGTH);
    }
    if ((uint64_t)size > (uint64_t)p->opts.bulk_size_max) {
        return parser_fail(p, QR_RESP_ERROR_BULK_TOO_BIG);
    }
    size_t len = (size_t)size;
    if (len > p->opts.command_size_max - p->command_size) {
        return parser_fail(p, QR_RESP_ERROR_COMMAND_TOO_BIG);
    }
    int rv = args_reserve(p, p->opts.args_count_max);
    if (rv != 0) {
        return rv;
    }
    p->args[p->args_count] = (struct qr_buf){.base = NULL, .len = len};
    p->args_count++;
    p->command_size += len;
    p->bulk_remaining = len;
    p->state = QR_RESP_STATE_SIZE_LF;
    return 0;
}

/* The most arena bytes the command being read could still need. */
static size_t bulk_ceiling(const struct qr_resp_parser *p)
{
    size_t ceiling = p->arena_size + p->bulk_remaining + 1;
    if (p->args_count < p->args_expected) {
        ceiling += (p->opts.command_size_max - p->command_size);
        ceiling += p->args_expected - p->args_count;
    }
    return ceiling;
}

/* Payload bytes: copied once; the NUL goes in when the last byte does. */
static int step_data(struct qr_resp_parser *p, const uint8_t *data, size_t size, size_t *used_out)
{
    QR_ASSERT(p->bulk_remaining > 0);
    *used_out = 0;
    size_t take = size < p->bulk_remaining ? size : p->bulk_remaining;
    bool is_last = take == p->bulk_remaining;
    int rv = arena_reserve(p, p->arena_size + take + (is_last ? 1 : 0), bulk_ceiling(p));
    if (rv != 0) {
        return rv;
    }
    memcpy(p->arena + p->arena_size, data, take);
    p->arena_size += take;
    p->bulk_remaining -= take;
    if (is_last) {
        p->arena[p->arena_size] = '\0';
        p->arena_size++;
        p->state = QR_RESP_STATE_DATA_CR;
    }
    *used_out = take;
    return 0;
}

/* "$N\r\n" read: an empty bulk completes here, any other goes on to its payload. */
static int size_lf(struct qr_resp_parser *p, uint8_t byte)
{
    if (byte != '\n') {
        return parser_fail(p, QR_RESP_ERROR_BULK_LENGTH);
    }
    if (p->bulk_remaining > 0) {
        p->state = QR_RESP_STATE_DATA;
        return 0;
    }
    int rv = arena_reserve(p, p->arena_size + 1, bulk_ceiling(p));
    if (rv != 0) {
        return rv;
    }
    p->arena[p->arena_size] = '\0';
    p->arena_size++;
    p->state = QR_RESP_STATE_DATA_CR;
    return 0;
}

/* The framing bytes of a multibulk request, one at a time. */
static int step_byte(struct qr_resp_parser *p, uint8_t byte, bool *is_ready_out)
{
    bool is_done = false;
    int rv = 0;
    switch (p->state) {
    case QR_RESP_STATE_COUNT:
        rv = header_push(p, byte, QR_RESP_ERROR_MULTIBULK_LENGTH, &is_done);
        return rv != 0 || !is_done ? rv : count_finish(p);
    case QR_RESP_STATE_COUNT_LF:
        if (byte != '\n') {
            return parser_fail(p, QR_RESP_ERROR_MULTIBULK_LENGTH);
        }
        p->state = p->args_expected > 0 ? QR_RESP_STATE_DOLLAR : QR_RESP_STATE_START;
        return 0;
    case QR_RESP_STATE_DOLLAR:
        if (byte != '$') {
            return parser_fail_dollar(p, byte);
        }
        p->header_size = 0;
        p->state = QR_RESP_STATE_SIZE;
        return 0;
    case QR_RESP_STATE_SIZE:
        rv = header_push(p, byte, QR_RESP_ERROR_BULK_LENGTH, &is_done);
        return rv != 0 || !is_done ? rv : size_finish(p);
    case QR_RESP_STATE_SIZE_LF:
        return size_lf(p, byte);
    case QR_RESP_STATE_DATA_CR:
        if (byte != '\r') {
            return parser_fail(p, QR_RESP_ERROR_BULK_CRLF);
        }
        p->state = QR_RESP_STATE_DATA_LF;
        return 0;
    case QR_RESP_STATE_DATA_LF:
        if (byte != '\n') {
            return parser_fail(p, QR_RESP_ERROR_BULK_CRLF);
        }
        *is_ready_out = p->args_count == p->args_expected;
        p->state = *is_ready_out ? QR_RESP_STATE_START : QR_RESP_STATE_DOLLAR;
        return 0;
    default:
        break;
    }
    /* START, INLINE and DATA are handled by parse_step; FAILED never gets here. */
    (void)QR_NEVER(true);
    return QR_EINTERNAL;
}

/* ------------------------------------------------------------------------------------ */
/* Inline                                                                               */
/* ------------------------------------------------------------------------------------ */

enum split_mode {
    SPLIT_BLANK,  /* Between words. */
    SPLIT_PLAIN,  /* In an unquoted part of a word. */
    SPLIT_DOUBLE, /* Inside "...". */
    SPLIT_SINGLE, /* Inside '...'. */
};

enum split_action {
    SPLIT_CONTINUE,
    SPLIT_WORD_END,
    SPLIT_UNBALANCED,
};

/*
 * Splitting happens in place: words are written at w while the line is read at r, and
 * every construct reads at least as many bytes as it writes (the NUL after a word takes
 * the place of the blank or quote that ended it), so w <= r throughout. Only the NUL of
 * a word that ends the line lands at len, hence the one byte reserved past the line.
 */
struct split {
    uint8_t *line;        /* The arena. */
    size_t len;           /* Bytes of the line, its "\n" excluded. */
    size_t r;             /* Next byte to read. */
    size_t w;             /* Next byte to write, <= r. */
    size_t start;         /* Where the current word began (written side). */
    enum split_mode mode; /* What r is inside of. */
};

/* Blanks as Redis's sdssplitargs skips them (isspace in the C locale). */
static bool is_blank(uint8_t byte)
{
    return byte == ' ' || byte == '\t' || byte == '\r' || byte == '\n' || byte == '\v' ||
           byte == '\f';
}

static bool is_hex(uint8_t byte)
{
    return (byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'f') ||
           (byte >= 'A' && byte <= 'F');
}

static uint8_t hex_value(uint8_t byte)
{
    if (byte >= '0' && byte <= '9') {
        return (uint8_t)(byte - '0');
    }
    if (byte >= 'a' && byte <= 'f') {
        return (uint8_t)(byte - 'a' + 10);
    }
    return (uint8_t)(byte - 'A' + 10);
}

static void split_put(struct split *s, uint8_t byte)
{
    QR_ASSERT(s->w <= s->r);
    s->line[s->w] = byte;
    s->w++;
}

static enum split_action split_plain(struct split *s)
{
    uint8_t byte = s->line[s->r];
    s->r++;
    if (is_blank(byte)) {
        return SPLIT_WORD_END;
    }
    if (byte == '"') {
        s->mode = SPLIT_DOUBLE;
    } else if (byte == '\'') {
        s->mode = SPLIT_SINGLE;
    } else {
        split_put(s, byte);
    }
    return SPLIT_CONTINUE;
}

/* A closing quote ends the word; redis-cli refuses "a"b, and so do we. */
static enum split_action split_close(struct split *s)
{
    s->r++;
    if (s->r < s->len && !is_blank(s->line[s->r])) {
        return SPLIT_UNBALANCED;
    }
    return SPLIT_WORD_END;
}

static uint8_t escaped(uint8_t byte)
{
    switch (byte) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return byte;
    }
}

static enum split_action split_double(struct split *s)
{
    const uint8_t *in = s->line + s->r;
    size_t left = s->len - s->r;
    if (left >= 4 && in[0] == '\\' && in[1] == 'x' && is_hex(in[2]) && is_hex(in[3])) {
        uint8_t byte = (uint8_t)(hex_value(in[2]) * 16 + hex_value(in[3]));
        s->r += 4;
        split_put(s, byte);
    } else if (left >= 2 && in[0] == '\\') {
        uint8_t byte = escaped(in[1]);
        s->r += 2;
        split_put(s, byte);
    } else if (in[0] == '"') {
        return split_close(s);
    } else {
        s->r++;
        split_put(s, in[0]);
    }
    return SPLIT_CONTINUE;
}

static enum split_action split_single(struct split *s)
{
    const uint8_t *in = s->line + s->r;
    size_t left = s->len - s->r;
    if (left >= 2 && in[0] == '\\' && in[1] == '\'') {
        s->r += 2;
        split_put(s, '\'');
    } else if (in[0] == '\'') {
        return split_close(s);
    } else {
        s->r++;
        split_put(s, in[0]);
    }
    return SPLIT_CONTINUE;
}

static int split_word_begin(struct qr_resp_parser *p, struct split *s)
{
    if (p->args_count == p->opts.args_count_max) {
        return parser_fail(p, QR_RESP_ERROR_INLINE_TOO_BIG);
    }
    int rv = args_reserve(p, p->opts.args_count_max);
    if (rv != 0) {
        return rv;
    }
    p->args[p->args_count] = (struct qr_buf){.base = NULL, .len = 0};
    p->args_count++;
    s->start = s->w;
    s->mode = SPLIT_PLAIN;
    return 0;
}

static void split_word_end(struct qr_resp_parser *p, struct split *s)
{
    QR_ASSERT(p->args_count >= 1);
    QR_ASSERT(s->w <= s->len);
    size_t len = s->w - s->start;
    p->args[p->args_count - 1].len = len;
    p->command_size += len;
    s->line[s->w] = '\0';
    s->w++;
    s->mode = SPLIT_BLANK;
}

/* One byte (or escape) of the line; returns the action the driver must take. */
static int split_step(struct qr_resp_parser *p, struct split *s, enum split_action *action_out)
{
    *action_out = SPLIT_CONTINUE;
    switch (s->mode) {
    case SPLIT_BLANK: {
        if (is_blank(s->line[s->r])) {
            s->r++;
            return 0;
        }
        int rv = split_word_begin(p, s);
        if (rv != 0) {
            return rv;
        }
        *action_out = split_plain(s);
        return 0;
    }
    case SPLIT_PLAIN:
        *action_out = split_plain(s);
        return 0;
    case SPLIT_DOUBLE:
        *action_out = split_double(s);
        return 0;
    case SPLIT_SINGLE:
        *action_out = split_single(s);
        return 0;
    }
    (void)QR_NEVER(true);
    return QR_EINTERNAL;
}

/* Split the line held in the arena into words, in place (redis-cli's quoting rules). */
static int inline_split(struct qr_resp_parser *p, size_t len)
{
    QR_ASSERT(p->args_count == 0);
    QR_ASSERT(len < p->arena_capacity);
    struct split s = {.line = p->arena, .len = len, .mode = SPLIT_BLANK};
    /* Every step reads at least one byte, so this runs at most len times. */
    while (s.r < s.len) {
        size_t before = s.r;
        enum split_action action = SPLIT_CONTINUE;
        int rv = split_step(p, &s, &action);
        if (rv != 0) {
            return rv;
        }
        if (action == SPLIT_UNBALANCED) {
            return parser_fail(p, QR_RESP_ERROR_UNBALANCED_QUOTES);
        }
        if (action == SPLIT_WORD_END) {
            split_word_end(p, &s);
        }
        QR_ASSERT(s.r > before);
    }
    if (s.mode == SPLIT_DOUBLE || s.mode == SPLIT_SINGLE) {
        return parser_fail(p, QR_RESP_ERROR_UNBALANCED_QUOTES);
    }
    if (s.mode == SPLIT_PLAIN) {
        split_word_end(p, &s);
    }
    p->arena_size = s.w;
    return 0;
}

/* The longest line the limits allow: inline_size_max, but never past a command's size. */
static size_t inline_limit(const struct qr_resp_parser *p)
{
    return p->opts.inline_size_max < p->opts.command_size_max ? p->opts.inline_size_max
                                                              : p->opts.command_size_max;
}

/* Inline bytes up to and including '\n'; the line is refused as soon as it is too long. */
static int step_inline(struct qr_resp_parser *p,
                       const uint8_t *data,
                       size_t size,
                       size_t *used_out,
                       bool *is_ready_out)
{
    size_t limit = inline_limit(p);
    QR_ASSERT(p->arena_size <= limit);
    *used_out = 0;
    const uint8_t *newline = memchr(data, '\n', size);
    size_t take = newline != NULL ? (size_t)(newline - data) : size;
    if (take > limit - p->arena_size) {
        *used_out = limit - p->arena_size; /* The first byte past the limit. */
        return parser_fail(p, QR_RESP_ERROR_INLINE_TOO_BIG);
    }
    /* The byte past the line is for the NUL of a last word. */
    int rv = arena_reserve(p, p->arena_size + take + (newline != NULL ? 1 : 0), limit + 1);
    if (rv != 0) {
        return rv;
    }
    if (take > 0) {
        memcpy(p->arena + p->arena_size, data, take);
        p->arena_size += take;
    }
    *used_out = take;
    if (newline == NULL) {
        return 0;
    }
    /* A '\r' before the '\n' needs no stripping: it is a blank, like Redis's. */
    size_t len = p->arena_size;
    p->arena_size = 0;
    rv = inline_split(p, len);
    if (rv != 0) {
        return rv; /* Found at the '\n': the offset names it. */
    }
    *used_out = take + 1;
    /* A line of blanks is an empty request (Redis masters send "\n" as a keepalive). */
    p->state = QR_RESP_STATE_START;
    *is_ready_out = p->args_count > 0;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Parser API                                                                           */
/* ------------------------------------------------------------------------------------ */

int qr__resp_parser_init(struct qr_resp_parser *parser, const struct qr_resp_parser_opts *opts)
{
    QR_ASSERT(parser != NULL);
    memset(parser, 0, sizeof(*parser));
    struct qr_resp_parser_opts o = opts != NULL ? *opts : (struct qr_resp_parser_opts){0};
    o.args_count_max = o.args_count_max != 0 ? o.args_count_max : QR_RESP_ARGS_COUNT_MAX_DEFAULT;
    o.bulk_size_max = o.bulk_size_max != 0 ? o.bulk_size_max : QR_RESP_BULK_SIZE_MAX_DEFAULT;
    o.inline_size_max =
        o.inline_size_max != 0 ? o.inline_size_max : QR_RESP_INLINE_SIZE_MAX_DEFAULT;
    o.command_size_max =
        o.command_size_max != 0 ? o.command_size_max : QR_RESP_COMMAND_SIZE_MAX_DEFAULT;
    if (o.args_count_max > QR_RESP_ARGS_COUNT_LIMIT || o.bulk_size_max > QR_RESP_SIZE_LIMIT ||
        o.inline_size_max > QR_RESP_SIZE_LIMIT || o.command_size_max > QR_RESP_SIZE_LIMIT) {
        return QR_EINVAL;
    }
    parser->opts = o;
    parser->state = QR_RESP_STATE_START;
    qr__resp_parser_check_invariants(parser);
    return 0;
}

void qr__resp_parser_close(struct qr_resp_parser *parser)
{
    if (parser == NULL) {
        return;
    }
    qr_free(parser->arena);
    qr_free(parser->args);
    parser->arena = NULL;
    parser->args = NULL;
    parser->arena_capacity = 0;
    parser->args_capacity = 0;
    parser->arena_size = 0;
    parser->args_count = 0;
}

/*
 * One state's worth of input; consumes at least one byte unless it fails. On failure,
 * *used_out counts the bytes before the one where the error was found, whatever the
 * split, so parser->offset then names that byte.
 */
static int parse_step(struct qr_resp_parser *p,
                      const uint8_t *data,
                      size_t size,
                      size_t *used_out,
                      bool *is_ready_out)
{
    QR_ASSERT(size >= 1);
    if (p->state == QR_RESP_STATE_START) {
        if (data[0] != '*') {
            p->state = QR_RESP_STATE_INLINE;
            return step_inline(p, data, size, used_out, is_ready_out);
        }
        p->header_size = 0;
        p->state = QR_RESP_STATE_COUNT;
        *used_out = 1;
        return 0;
    }
    if (p->state == QR_RESP_STATE_INLINE) {
        return step_inline(p, data, size, used_out, is_ready_out);
    }
    if (p->state == QR_RESP_STATE_DATA) {
        return step_data(p, data, size, used_out);
    }
    /* A byte that fails is not consumed: the offset then names it. */
    int rv = step_byte(p, data[0], is_ready_out);
    *used_out = rv == 0 ? 1 : 0;
    return rv;
}

int qr__resp_parse(struct qr_resp_parser *parser,
                   const uint8_t *data,
                   size_t size,
                   size_t *consumed_out,
                   struct qr_resp_command *command_out)
{
    QR_ASSERT(parser != NULL);
    QR_ASSERT(data != NULL || size == 0);
    QR_ASSERT(consumed_out != NULL);
    QR_ASSERT(command_out != NULL);
    *consumed_out = 0;
    *command_out = (struct qr_resp_command){.args = NULL, .args_count = 0};
    if (parser->err != 0) {
        return parser->err;
    }
    if (parser->is_yielded) {
        command_reset(parser);
    }
    size_t pos = 0;
    bool is_ready = false;
    int rv = 0;
    /* Every step consumes at least one byte, so this runs at most size times. */
    while (pos < size && !is_ready) {
        size_t used = 0;
        rv = parse_step(parser, data + pos, size - pos, &used, &is_ready);
        QR_ASSERT(used <= size - pos);
        pos += used;
        if (rv != 0) {
            break;
        }
        QR_ASSERT(used >= 1);
    }
    parser->offset += pos;
    *consumed_out = pos;
    if (rv == 0 && is_ready) {
        command_yield(parser, command_out);
    }
#ifdef QR_DEBUG
    qr__resp_parser_check_invariants(parser);
#endif
    return rv;
}

/* O(arguments): the arena holds each finished argument and its NUL, back to back. */
static void parser_check_arena(const struct qr_resp_parser *p)
{
    size_t sum = 0;
    for (size_t i = 0; i < p->args_count; i++) {
        sum += p->args[i].len + 1;
    }
    if (p->state == QR_RESP_STATE_DATA) {
        QR_ASSERT(p->arena_size + p->bulk_remaining + 1 == sum);
    } else if (p->state == QR_RESP_STATE_SIZE_LF) {
        QR_ASSERT(p->arena_size + p->args[p->args_count - 1].len + 1 == sum);
    } else if (p->state != QR_RESP_STATE_INLINE) {
        QR_ASSERT(p->arena_size == sum);
    }
    QR_ASSERT(sum - p->args_count == p->command_size);
}

void qr__resp_parser_check_invariants(const struct qr_resp_parser *parser)
{
    const struct qr_resp_parser *p = parser;
    QR_ASSERT(p->arena_size <= p->arena_capacity);
    QR_ASSERT((p->arena == NULL) == (p->arena_capacity == 0));
    QR_ASSERT(p->args_count <= p->args_capacity);
    QR_ASSERT((p->args == NULL) == (p->args_capacity == 0));
    QR_ASSERT(p->header_size <= QR_RESP_HEADER_SIZE_MAX);
    QR_ASSERT(p->command_size <= p->opts.command_size_max);
    QR_ASSERT(p->args_count <= p->opts.args_count_max);
    QR_ASSERT(p->args_expected <= p->opts.args_count_max);
    QR_ASSERT((p->state == QR_RESP_STATE_FAILED) == (p->err != 0));
    QR_ASSERT((p->err == 0) == (p->error == QR_RESP_ERROR_NONE));
    if (p->state == QR_RESP_STATE_FAILED) {
        /* A failed parser holds nothing and only waits to be closed. */
        QR_ASSERT(p->arena == NULL);
        QR_ASSERT(p->args == NULL);
        QR_ASSERT(p->args_count == 0);
        QR_ASSERT(p->command_size == 0);
        QR_ASSERT(p->bulk_remaining == 0);
        return;
    }
    if (p->state == QR_RESP_STATE_DATA) {
        QR_ASSERT(p->bulk_remaining > 0);
    }
    if (p->state >= QR_RESP_STATE_DOLLAR) {
        QR_ASSERT(p->args_count <= p->args_expected);
    }
    if (p->state == QR_RESP_STATE_INLINE) {
        QR_ASSERT(p->args_count == 0);
        QR_ASSERT(p->arena_size <= inline_limit(p));
    }
    if (p->state == QR_RESP_STATE_START && !p->is_yielded) {
        QR_ASSERT(p->args_count == 0);
    }
    if (p->is_yielded) {
        QR_ASSERT(p->state == QR_RESP_STATE_START);
        QR_ASSERT(p->args_count >= 1);
    }
#ifdef QR_DEBUG
    parser_check_arena(p);
#else
    (void)parser_check_arena;
#endif
}

/* ------------------------------------------------------------------------------------ */
/* Writer                                                                               */
/* ------------------------------------------------------------------------------------ */

int qr__resp_writer_init(struct qr_resp_writer *writer, size_t size_max)
{
    QR_ASSERT(writer != NULL);
    memset(writer, 0, sizeof(*writer));
    if (size_max > QR_RESP_SIZE_LIMIT) {
        return QR_EINVAL;
    }
    writer->size_max = size_max != 0 ? size_max : QR_RESP_REPLY_SIZE_MAX_DEFAULT;
    qr__resp_writer_check_invariants(writer);
    return 0;
}

void qr__resp_writer_close(struct qr_resp_writer *writer)
{
    if (writer == NULL) {
        return;
    }
    qr_free(writer->base);
    writer->base = NULL;
    writer->head = 0;
    writer->len = 0;
    writer->capacity = 0;
}

/*
 * Room for `size` more bytes, or QR_EBUSY past the cap. Consumed bytes at the front are
 * reclaimed only when they are at least as many as the pending ones, so each compaction
 * moves no more bytes than were sent since the last: linear time overall.
 */
static int writer_reserve(struct qr_resp_writer *w, size_t size)
{
    size_t pending = w->len - w->head;
    if (size > w->size_max - pending) {
        return QR_EBUSY;
    }
    if (size <= w->capacity - w->len) {
        return 0;
    }
    if (w->head > 0 && w->head >= pending) {
        memmove(w->base, w->base + w->head, pending);
        w->head = 0;
        w->len = pending;
        if (size <= w->capacity - w->len) {
            return 0;
        }
    }
    size_t need = w->len + size;
    size_t ceiling = w->head + w->size_max;
    size_t capacity = WRITER_SIZE_MIN;
    if (w->capacity > 0) {
        capacity = w->capacity <= ceiling / 2 ? w->capacity * 2 : ceiling;
    }
    capacity = capacity < need ? need : capacity;
    capacity = capacity > ceiling ? ceiling : capacity;
    QR_ASSERT(capacity >= need);
    uint8_t *base = qr_realloc(w->base, capacity);
    if (base == NULL) {
        return QR_ENOMEM;
    }
    w->base = base;
    w->capacity = capacity;
    return 0;
}

static void writer_put(struct qr_resp_writer *w, const void *bytes, size_t size)
{
    QR_ASSERT(size <= w->capacity - w->len);
    if (size > 0) {
        memcpy(w->base + w->len, bytes, size);
        w->len += size;
    }
}

/* Text with "\r" and "\n" turned into spaces: a reply line can never end early. */
static void writer_put_line(struct qr_resp_writer *w, const char *text, size_t len)
{
    QR_ASSERT(len <= w->capacity - w->len);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        w->base[w->len + i] = (uint8_t)(c == '\r' || c == '\n' ? ' ' : c);
    }
    w->len += len;
}

static size_t decimal_size(uint64_t value)
{
    size_t size = 1;
    /* At most 19 rounds: a uint64 has at most 20 digits. */
    while (value >= 10) {
        value /= 10;
        size++;
    }
    return size;
}

/* "<type>[-]<magnitude>\r\n" into line (LINE_TEXT_SIZE_MAX bytes); returns its size. */
static size_t format_line(char type, bool is_negative, uint64_t magnitude, char *line)
{
    size_t size = 0;
    line[size++] = type;
    if (is_negative) {
        line[size++] = '-';
    }
    size_t digits = decimal_size(magnitude);
    for (size_t i = digits; i > 0; i--) {
        line[size + i - 1] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    }
    size += digits;
    line[size++] = '\r';
    line[size++] = '\n';
    QR_ASSERT(size <= LINE_TEXT_SIZE_MAX);
    return size;
}

/* A reply that is one short line: header of arrays, integers, nulls. */
static int writer_line(struct qr_resp_writer *w, char type, bool is_negative, uint64_t magnitude)
{
    QR_ASSERT(w != NULL);
    char line[LINE_TEXT_SIZE_MAX];
    size_t size = format_line(type, is_negative, magnitude, line);
    int rv = writer_reserve(w, size);
    if (rv != 0) {
        return rv;
    }
    writer_put(w, line, size);
    return 0;
}

int qr__resp_write_simple(struct qr_resp_writer *writer, const char *text, size_t len)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(text != NULL || len == 0);
    if (len > writer->size_max) {
        return QR_EBUSY;
    }
    int rv = writer_reserve(writer, 1 + len + 2);
    if (rv != 0) {
        return rv;
    }
    writer_put(writer, "+", 1);
    writer_put_line(writer, text, len);
    writer_put(writer, "\r\n", 2);
    return 0;
}

int qr__resp_write_error(struct qr_resp_writer *writer, const char *text, size_t len)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(text != NULL || len == 0);
    if (len > writer->size_max) {
        return QR_EBUSY;
    }
    bool has_code = len > 0 && text[0] == '-';
    const char *prefix = has_code ? "" : "-ERR ";
    size_t prefix_size = strlen(prefix);
    int rv = writer_reserve(writer, prefix_size + len + 2);
    if (rv != 0) {
        return rv;
    }
    writer_put(writer, prefix, prefix_size);
    writer_put_line(writer, text, len);
    writer_put(writer, "\r\n", 2);
    return 0;
}

int qr__resp_write_errorf(struct qr_resp_writer *writer, const char *fmt, ...)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(fmt != NULL);
    char text[QR_RESP_ERROR_SIZE_MAX];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);
    if (n < 0) {
        return QR_EINVAL; /* Only a bad format string gets here. */
    }
    size_t len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    return qr__resp_write_error(writer, text, len);
}

int qr__resp_write_integer(struct qr_resp_writer *writer, int64_t value)
{
    /* Negate in unsigned arithmetic: INT64_MIN has no positive int64 counterpart. */
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    return writer_line(writer, ':', value < 0, magnitude);
}

int qr__resp_write_bulk(struct qr_resp_writer *writer, const uint8_t *data, size_t len)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(data != NULL || len == 0);
    if (len > writer->size_max) {
        return QR_EBUSY;
    }
    char line[LINE_TEXT_SIZE_MAX];
    size_t line_size = format_line('$', false, (uint64_t)len, line);
    int rv = writer_reserve(writer, line_size + len + 2);
    if (rv != 0) {
        return rv;
    }
    writer_put(writer, line, line_size);
    writer_put(writer, data, len);
    writer_put(writer, "\r\n", 2);
    return 0;
}

int qr__resp_write_null_bulk(struct qr_resp_writer *writer)
{
    return writer_line(writer, '$', true, 1);
}

int qr__resp_write_array(struct qr_resp_writer *writer, size_t count)
{
    return writer_line(writer, '*', false, (uint64_t)count);
}

int qr__resp_write_null_array(struct qr_resp_writer *writer)
{
    return writer_line(writer, '*', true, 1);
}

/* Bytes of a command as multibulk; stops counting (returns > size_max) past the cap. */
static size_t command_size(const struct qr_buf *args, size_t args_count, size_t size_max)
{
    size_t total = 1 + decimal_size(args_count) + 2;
    for (size_t i = 0; i < args_count && total <= size_max; i++) {
        if (args[i].len > size_max) {
            return size_max + 1;
        }
        total += 1 + decimal_size(args[i].len) + 2 + args[i].len + 2;
    }
    return total;
}

int qr__resp_write_command(struct qr_resp_writer *writer,
                           const struct qr_buf *args,
                           size_t args_count)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(args != NULL);
    QR_ASSERT(args_count >= 1);
    size_t total = command_size(args, args_count, writer->size_max);
    if (total > writer->size_max) {
        return QR_EBUSY;
    }
    int rv = writer_reserve(writer, total);
    if (rv != 0) {
        return rv;
    }
    size_t before = writer->len;
    char line[LINE_TEXT_SIZE_MAX];
    writer_put(writer, line, format_line('*', false, (uint64_t)args_count, line));
    for (size_t i = 0; i < args_count; i++) {
        writer_put(writer, line, format_line('$', false, (uint64_t)args[i].len, line));
        writer_put(writer, args[i].base, args[i].len);
        writer_put(writer, "\r\n", 2);
    }
    QR_ASSERT(writer->len - before == total);
    return 0;
}

int qr__resp_write_raw(struct qr_resp_writer *writer, const uint8_t *data, size_t len)
{
    QR_ASSERT(writer != NULL && (data != NULL || len == 0));
    int rv = writer_reserve(writer, len);
    if (rv != 0) {
        return rv;
    }
    writer_put(writer, data, len);
    return 0;
}

struct qr_buf qr__resp_writer_pending(const struct qr_resp_writer *writer)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(writer->head <= writer->len);
    if (writer->len == writer->head) {
        return (struct qr_buf){.base = NULL, .len = 0};
    }
    return (struct qr_buf){.base = writer->base + writer->head, .len = writer->len - writer->head};
}

void qr__resp_writer_consume(struct qr_resp_writer *writer, size_t size)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(size <= writer->len - writer->head);
    writer->head += size;
    if (writer->head == writer->len) {
        writer->head = 0;
        writer->len = 0;
    }
}

void qr__resp_writer_take(struct qr_resp_writer *writer, struct qr_buf *buf_out)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(buf_out != NULL);
    size_t pending = writer->len - writer->head;
    if (pending == 0) {
        *buf_out = (struct qr_buf){.base = NULL, .len = 0};
        writer->head = 0;
        writer->len = 0;
        return;
    }
    /* The caller frees base, so the bytes must start there. */
    memmove(writer->base, writer->base + writer->head, pending);
    *buf_out = (struct qr_buf){.base = writer->base, .len = pending};
    writer->base = NULL;
    writer->head = 0;
    writer->len = 0;
    writer->capacity = 0;
}

void qr__resp_writer_check_invariants(const struct qr_resp_writer *writer)
{
    QR_ASSERT(writer != NULL);
    QR_ASSERT(writer->head <= writer->len);
    QR_ASSERT(writer->len <= writer->capacity);
    QR_ASSERT((writer->base == NULL) == (writer->capacity == 0));
    QR_ASSERT(writer->len - writer->head <= writer->size_max);
    QR_ASSERT(writer->size_max >= 1);
    QR_ASSERT(writer->size_max <= QR_RESP_SIZE_LIMIT);
}
