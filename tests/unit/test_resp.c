/*
 * Unit tests of server/resp: the RESP2 request parser and the reply writer.
 *
 * Every parsed command is re-encoded with the writer into a transcript, so whole
 * pipelines compare as byte strings however they were split. The counting allocator
 * fails the test on any leak and drives the out-of-memory loops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "quorum/err.h"
#include "server/resp.h"
#include "test_alloc.h"
#include "util/alloc.h"
#include "util/rng.h"

#define FAIL_AT_MAX        200
#define ROUND_TRIP_RUNS    400
#define BIG_BULK_SIZE      ((size_t)1 << 20)
#define TRANSCRIPT_SIZE    ((size_t)1 << 24)
#define TRANSCRIPT_RESERVE ((size_t)1 << 16)

/* What feeding a byte stream produced: the commands, re-encoded, and how it ended. */
struct run {
    struct qr_resp_writer transcript; /* Each yielded command as multibulk, in order. */
    size_t commands_count;
    int rv; /* 0, or the error that stopped the parser. */
};

static void run_init(struct run *run)
{
    memset(run, 0, sizeof(*run));
    assert_int_equal(qr__resp_writer_init(&run->transcript, TRANSCRIPT_SIZE), 0);
}

/*
 * Allocate the transcript's buffer now, so that out-of-memory loops count only the
 * parser's allocations.
 */
static void run_reserve(struct run *run)
{
    static uint8_t zeros[TRANSCRIPT_RESERVE];
    assert_int_equal(qr__resp_write_bulk(&run->transcript, zeros, sizeof(zeros)), 0);
    qr__resp_writer_consume(&run->transcript, qr__resp_writer_pending(&run->transcript).len);
}

static void run_close(struct run *run)
{
    qr__resp_writer_close(&run->transcript);
}

static void check_command(const struct qr_resp_command *command)
{
    assert_true(command->args_count >= 1);
    for (size_t i = 0; i < command->args_count; i++) {
        assert_non_null(command->args[i].base);
        assert_int_equal(command->args[i].base[command->args[i].len], '\0');
    }
}

/* Feed one chunk until it is used up or the parser fails; record what it yields. */
static int feed_chunk(struct qr_resp_parser *p, const uint8_t *data, size_t size, struct run *run)
{
    size_t pos = 0;
    for (size_t round = 0; round <= size + 1; round++) {
        size_t used = 0;
        struct qr_resp_command command;
        int rv = qr__resp_parse(p, data + pos, size - pos, &used, &command);
        qr__resp_parser_check_invariants(p);
        assert_true(used <= size - pos);
        pos += used;
        if (rv != 0) {
            assert_int_equal(command.args_count, 0);
            assert_int_equal(rv, p->err);
            return rv;
        }
        if (command.args_count == 0) {
            assert_int_equal(pos, size);
            return 0;
        }
        check_command(&command);
        assert_int_equal(qr__resp_write_command(&run->transcript, command.args, command.args_count),
                         0);
        run->commands_count++;
        if (pos == size) {
            return 0;
        }
    }
    fail_msg("feed_chunk: no progress");
    return QR_EINTERNAL;
}

/* Feed data in pieces of `piece` bytes (0: all at once) until the end or an error. */
static int feed_pieces(
    struct qr_resp_parser *p, const uint8_t *data, size_t size, size_t piece, struct run *run)
{
    piece = piece == 0 ? size : piece;
    for (size_t pos = 0; pos < size; pos += piece) {
        size_t n = size - pos < piece ? size - pos : piece;
        run->rv = feed_chunk(p, data + pos, n, run);
        if (run->rv != 0) {
            return run->rv;
        }
    }
    return 0;
}

/* Feed data cut at the given offsets (ascending, each in [0, size]). */
static int feed_cuts(struct qr_resp_parser *p,
                     const uint8_t *data,
                     size_t size,
                     const size_t *cuts,
                     size_t cuts_count,
                     struct run *run)
{
    size_t from = 0;
    for (size_t i = 0; i <= cuts_count; i++) {
        size_t to = i < cuts_count ? cuts[i] : size;
        if (to > from) {
            run->rv = feed_chunk(p, data + from, to - from, run);
            if (run->rv != 0) {
                return run->rv;
            }
        }
        from = to;
    }
    return 0;
}

static void assert_same_transcript(const struct run *a, const struct run *b)
{
    struct qr_buf x = qr__resp_writer_pending(&a->transcript);
    struct qr_buf y = qr__resp_writer_pending(&b->transcript);
    assert_int_equal(a->commands_count, b->commands_count);
    assert_int_equal(a->rv, b->rv);
    assert_int_equal(x.len, y.len);
    if (x.len > 0) {
        assert_memory_equal(x.base, y.base, x.len);
    }
}

/* Append one expected command given as NUL-terminated words. */
static void expect_words(struct run *run, const char *const *words, size_t count)
{
    struct qr_buf args[16];
    assert_true(count <= 16);
    for (size_t i = 0; i < count; i++) {
        args[i] = (struct qr_buf){.base = (uint8_t *)(uintptr_t)words[i], .len = strlen(words[i])};
    }
    assert_int_equal(qr__resp_write_command(&run->transcript, args, count), 0);
    run->commands_count++;
}

#define EXPECT(run, ...)                                                 \
    do {                                                                 \
        static const char *const words_[] = {__VA_ARGS__};               \
        expect_words((run), words_, sizeof(words_) / sizeof(words_[0])); \
    } while (0)

/* Parse `text` (a C string) whole; check it yields exactly the expected commands. */
static void assert_parses_to(const char *text, struct run *expected)
{
    struct qr_resp_parser p;
    struct run got;
    run_init(&got);
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    assert_int_equal(feed_pieces(&p, (const uint8_t *)text, strlen(text), 0, &got), 0);
    assert_same_transcript(&got, expected);
    qr__resp_parser_close(&p);
    run_close(&got);
}

/* ------------------------------------------------------------------------------------ */

static void test_resp_parses_a_multibulk_command_into_nul_terminated_views(void **state)
{
    (void)state;
    static const char text[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    size_t used = 0;
    struct qr_resp_command command;
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)text, sizeof(text) - 1, &used, &command),
                     0);
    assert_int_equal(used, sizeof(text) - 1);
    assert_int_equal(command.args_count, 3);
    assert_int_equal(command.args[0].len, 3);
    assert_string_equal((const char *)command.args[0].base, "SET");
    assert_string_equal((const char *)command.args[1].base, "key");
    assert_int_equal(command.args[2].len, 5);
    assert_memory_equal(command.args[2].base, "value", 5);
    assert_int_equal(p.offset, sizeof(text) - 1);
    /* Views are writable: the server may fold a command name's case in place. */
    command.args[0].base[0] = 's';
    /* Nothing more: the next call yields nothing and consumes nothing. */
    assert_int_equal(qr__resp_parse(&p, NULL, 0, &used, &command), 0);
    assert_int_equal(used, 0);
    assert_int_equal(command.args_count, 0);
    qr__resp_parser_close(&p);
}

static void test_resp_stops_after_each_command_of_a_pipeline(void **state)
{
    (void)state;
    static const char text[] = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    const uint8_t *data = (const uint8_t *)text;
    size_t size = sizeof(text) - 1;
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    size_t used = 0;
    struct qr_resp_command command;
    assert_int_equal(qr__resp_parse(&p, data, size, &used, &command), 0);
    assert_int_equal(used, 14);
    assert_int_equal(command.args_count, 1);
    assert_int_equal(qr__resp_parse(&p, data + 14, size - 14, &used, &command), 0);
    assert_int_equal(used, 9);
    assert_int_equal(command.args_count, 2);
    assert_string_equal((const char *)command.args[1].base, "hi");
    assert_int_equal(qr__resp_parse(&p, data + 23, size - 23, &used, &command), 0);
    assert_int_equal(used, size - 23);
    assert_int_equal(command.args_count, 2);
    assert_string_equal((const char *)command.args[0].base, "GET");
    qr__resp_parser_close(&p);
}

static void test_resp_parses_inline_commands_with_lf_or_crlf(void **state)
{
    (void)state;
    struct run expected;
    run_init(&expected);
    EXPECT(&expected, "PING");
    EXPECT(&expected, "PING");
    EXPECT(&expected, "set", "a", "b");
    EXPECT(&expected, "x\x01y");
    assert_parses_to("PING\r\nPING\n  set   a\tb \r\n\r\n\n   \t\r\nx\x01y\n", &expected);
    run_close(&expected);
}

static void test_resp_inline_quoting_follows_redis_cli(void **state)
{
    (void)state;
    struct run expected;
    run_init(&expected);
    EXPECT(&expected, "SET", "a b", "c d");
    EXPECT(&expected, "A\n\r\t\b\a\\\"z");
    EXPECT(&expected, "", "it's", "x4", "foobar", "\\n", "literal");
    assert_parses_to("SET \"a b\" 'c d'\r\n"
                     "\"\\x41\\n\\r\\t\\b\\a\\\\\\\"\\z\"\n"
                     "\"\" 'it\\'s' \"\\x4\" foo\"bar\" '\\n' lit\"eral\"\n",
                     &expected);
    run_close(&expected);
}

static void test_resp_inline_hex_escape_makes_any_byte(void **state)
{
    (void)state;
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    static const char text[] = "\"\\x00\\xff\\xAb\"\n";
    size_t used = 0;
    struct qr_resp_command command;
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)text, sizeof(text) - 1, &used, &command),
                     0);
    assert_int_equal(command.args_count, 1);
    assert_int_equal(command.args[0].len, 3);
    assert_memory_equal(command.args[0].base, "\x00\xff\xab", 3);
    /* A raw NUL in a line is an ordinary byte of a word. */
    static const char raw[] = "a\0b c\n";
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)raw, sizeof(raw) - 1, &used, &command), 0);
    assert_int_equal(command.args_count, 2);
    assert_int_equal(command.args[0].len, 3);
    assert_memory_equal(command.args[0].base, "a\0b", 3);
    qr__resp_parser_close(&p);
}

static void test_resp_empty_requests_are_skipped(void **state)
{
    (void)state;
    struct run expected;
    run_init(&expected);
    EXPECT(&expected, "PING");
    assert_parses_to("*0\r\n*-1\r\n*-9223372036854775808\r\n\r\n\n \r\n*1\r\n$4\r\nPING\r\n",
                     &expected);
    run_close(&expected);
}

static void test_resp_bulk_strings_are_binary_safe(void **state)
{
    (void)state;
    static const char text[] = "*4\r\n$6\r\n\r\n\0\xff*$\r\n$0\r\n\r\n$2\r\n\r\n\r\n$1\r\n\n\r\n";
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    size_t used = 0;
    struct qr_resp_command command;
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)text, sizeof(text) - 1, &used, &command),
                     0);
    assert_int_equal(used, sizeof(text) - 1);
    assert_int_equal(command.args_count, 4);
    assert_int_equal(command.args[0].len, 6);
    assert_memory_equal(command.args[0].base, "\r\n\0\xff*$", 6);
    assert_int_equal(command.args[1].len, 0);
    assert_int_equal(command.args[1].base[0], '\0');
    assert_int_equal(command.args[2].len, 2);
    assert_memory_equal(command.args[2].base, "\r\n", 2);
    assert_int_equal(command.args[3].len, 1);
    assert_int_equal(command.args[3].base[0], '\n');
    qr__resp_parser_close(&p);
}

/* A pipeline mixing every request form; the expected commands are built alongside. */
static const char pipeline[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
                               "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
                               "PING\r\n"
                               "*0\r\n"
                               "*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$4\r\n\r\n\0\xff\r\n"
                               "$1\r\nb\r\n$0\r\n\r\n"
                               "  echo \"hi there\" 'x y'\n"
                               "\r\n"
                               "*1\r\n$4\r\nPING\r\n";

static void pipeline_expected(struct run *expected)
{
    run_init(expected);
    EXPECT(expected, "SET", "key", "value");
    EXPECT(expected, "GET", "key");
    EXPECT(expected, "PING");
    struct qr_buf mset[5] = {
        {(uint8_t *)"MSET", 4}, {(uint8_t *)"a", 1}, {(uint8_t *)"\r\n\0\xff", 4},
        {(uint8_t *)"b", 1},    {(uint8_t *)"", 0},
    };
    assert_int_equal(qr__resp_write_command(&expected->transcript, mset, 5), 0);
    expected->commands_count++;
    EXPECT(expected, "echo", "hi there", "x y");
    EXPECT(expected, "PING");
}

static void test_resp_every_split_of_a_pipeline_gives_the_same_commands(void **state)
{
    (void)state;
    const uint8_t *data = (const uint8_t *)pipeline;
    size_t size = sizeof(pipeline) - 1;
    struct run expected;
    pipeline_expected(&expected);
    /* Whole, byte by byte, then every cut into two and into three pieces. */
    for (size_t piece = 0; piece <= 1; piece++) {
        struct qr_resp_parser p;
        struct run got;
        run_init(&got);
        assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
        assert_int_equal(feed_pieces(&p, data, size, piece, &got), 0);
        assert_same_transcript(&got, &expected);
        qr__resp_parser_close(&p);
        run_close(&got);
    }
    for (size_t i = 0; i <= size; i++) {
        for (size_t j = i; j <= size; j++) {
            size_t cuts[2] = {i, j};
            struct qr_resp_parser p;
            struct run got;
            run_init(&got);
            assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
            assert_int_equal(feed_cuts(&p, data, size, cuts, 2, &got), 0);
            assert_same_transcript(&got, &expected);
            qr__resp_parser_close(&p);
            run_close(&got);
        }
    }
    run_close(&expected);
}

/* An input that must fail, why, and with which message (a prefix when the byte varies). */
struct bad_input {
    const char *text;
    enum qr_resp_error error;
    const char *message;
    size_t commands_count; /* Commands yielded before the error. */
    uint64_t offset;       /* Where the offending byte is, whatever the split. */
};

static const struct bad_input bad_inputs[] = {
    {"*abc\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 1},
    {"*1x", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 2},
    {"*01\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 3},
    {"*+1\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 1},
    {"*\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 1},
    {"*-\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 2},
    {"*-0\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 3},
    {"*1-\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 2},
    {"*1\rx", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 3},
    {"*1\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 2},
    {"* 1\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH, "Protocol error: invalid multibulk length", 0, 1},
    {"*9223372036854775808\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH,
     "Protocol error: invalid multibulk length", 0, 20},
    {"*-9223372036854775809\r\n", QR_RESP_ERROR_MULTIBULK_LENGTH,
     "Protocol error: invalid multibulk length", 0, 21},
    {"*000000000000000000001", QR_RESP_ERROR_MULTIBULK_LENGTH,
     "Protocol error: invalid multibulk length", 0, 21},
    {"*1048577\r\n", QR_RESP_ERROR_ARGS_TOO_MANY, "Protocol error: invalid multibulk length", 0, 8},
    {"*3000000000\r\n", QR_RESP_ERROR_ARGS_TOO_MANY, "Protocol error: invalid multibulk length", 0,
     11},
    {"*9223372036854775807\r\n", QR_RESP_ERROR_ARGS_TOO_MANY,
     "Protocol error: invalid multibulk length", 0, 20},
    {"*1\r\nfoo\r\n", QR_RESP_ERROR_EXPECTED_DOLLAR, "Protocol error: expected '$', got 'f'", 0, 4},
    {"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", QR_RESP_ERROR_EXPECTED_DOLLAR,
     "Protocol error: expected '$', got 'f'", 0, 20},
    {"*1\r\n\r\n", QR_RESP_ERROR_EXPECTED_DOLLAR, "Protocol error: expected '$', got '\\x0d'", 0,
     4},
    {"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n", QR_RESP_ERROR_EXPECTED_DOLLAR,
     "Protocol error: expected '$', got '*'", 0, 11},
    {"*1\r\n$-1\r\n", QR_RESP_ERROR_BULK_LENGTH, "Protocol error: invalid bulk length", 0, 7},
    {"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", QR_RESP_ERROR_BULK_LENGTH,
     "Protocol error: invalid bulk length", 0, 24},
    {"*1\r\n$blabla\r\n", QR_RESP_ERROR_BULK_LENGTH, "Protocol error: invalid bulk length", 0, 5},
    {"*1\r\n$\r\n", QR_RESP_ERROR_BULK_LENGTH, "Protocol error: invalid bulk length", 0, 5},
    {"*1\r\n$01\r\n", QR_RESP_ERROR_BULK_LENGTH, "Protocol error: invalid bulk length", 0, 7},
    {"*1\r\n$1\rx", QR_RESP_ERROR_BULK_LENGTH, "Protocol error: invalid bulk length", 0, 7},
    {"*1\r\n$1\n", QR_RESP_ERROR_BULK_LENGTH, "Protocol error: invalid bulk length", 0, 6},
    {"*1\r\n$9223372036854775808\r\n", QR_RESP_ERROR_BULK_LENGTH,
     "Protocol error: invalid bulk length", 0, 24},
    {"*1\r\n$1099511627776\r\n", QR_RESP_ERROR_BULK_TOO_BIG, "Protocol error: invalid bulk length",
     0, 18},
    {"*1\r\n$536870913\r\n", QR_RESP_ERROR_BULK_TOO_BIG, "Protocol error: invalid bulk length", 0,
     14},
    {"*1\r\n$9223372036854775807\r\n", QR_RESP_ERROR_BULK_TOO_BIG,
     "Protocol error: invalid bulk length", 0, 24},
    {"*1\r\n$1\r\nab", QR_RESP_ERROR_BULK_CRLF, "Protocol error: expected '\\r\\n' after bulk data",
     0, 9},
    {"*1\r\n$1\r\na\rb", QR_RESP_ERROR_BULK_CRLF,
     "Protocol error: expected '\\r\\n' after bulk data", 0, 10},
    {"*1\r\n$1\r\na\n", QR_RESP_ERROR_BULK_CRLF,
     "Protocol error: expected '\\r\\n' after bulk data", 0, 9},
    {"*1\r\n$0\r\n\n", QR_RESP_ERROR_BULK_CRLF, "Protocol error: expected '\\r\\n' after bulk data",
     0, 8},
    {"SET \"a\r\n", QR_RESP_ERROR_UNBALANCED_QUOTES, "Protocol error: unbalanced quotes in request",
     0, 7},
    {"SET 'a\n", QR_RESP_ERROR_UNBALANCED_QUOTES, "Protocol error: unbalanced quotes in request", 0,
     6},
    {"\"a\"b\n", QR_RESP_ERROR_UNBALANCED_QUOTES, "Protocol error: unbalanced quotes in request", 0,
     4},
    {"'a'b\n", QR_RESP_ERROR_UNBALANCED_QUOTES, "Protocol error: unbalanced quotes in request", 0,
     4},
    {"\"abc\\\"\n", QR_RESP_ERROR_UNBALANCED_QUOTES, "Protocol error: unbalanced quotes in request",
     0, 6},
    {"set \"\"\"test-key\"\"\" test-value\n", QR_RESP_ERROR_UNBALANCED_QUOTES,
     "Protocol error: unbalanced quotes in request", 0, 29},
    {"PING\r\n*1\r\n$4\r\nPING\r\n*x", QR_RESP_ERROR_MULTIBULK_LENGTH,
     "Protocol error: invalid multibulk length", 2, 21},
};

static void check_bad_input(const struct bad_input *bad, size_t piece)
{
    struct qr_resp_parser p;
    struct run got;
    run_init(&got);
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    int rv = feed_pieces(&p, (const uint8_t *)bad->text, strlen(bad->text), piece, &got);
    if (rv != QR_EPROTO || p.error != bad->error || strcmp(p.errmsg, bad->message) != 0) {
        fail_msg("input \"%s\" piece %zu: got %d %s \"%s\", want %s \"%s\"", bad->text, piece, rv,
                 qr__resp_error_name(p.error), p.errmsg, qr__resp_error_name(bad->error),
                 bad->message);
    }
    assert_int_equal(got.commands_count, bad->commands_count);
    if (p.offset != bad->offset) {
        fail_msg("input \"%s\" piece %zu: offset %llu, want %llu", bad->text, piece,
                 (unsigned long long)p.offset, (unsigned long long)bad->offset);
    }
    /* Failed for good: the next call returns the same error and consumes nothing. */
    size_t used = 1;
    struct qr_resp_command command;
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)"\r\n", 2, &used, &command), QR_EPROTO);
    assert_int_equal(used, 0);
    assert_int_equal(command.args_count, 0);
    assert_string_equal(p.errmsg, bad->message);
    qr__resp_parser_close(&p);
    run_close(&got);
}

static void test_resp_every_protocol_error_has_its_kind_and_redis_message(void **state)
{
    (void)state;
    size_t count = sizeof(bad_inputs) / sizeof(bad_inputs[0]);
    bool seen[QR_RESP_ERROR_KIND_MAX + 1] = {false};
    for (size_t i = 0; i < count; i++) {
        check_bad_input(&bad_inputs[i], 0);
        check_bad_input(&bad_inputs[i], 1);
        check_bad_input(&bad_inputs[i], 3);
        seen[bad_inputs[i].error] = true;
    }
    /* The limit kinds not reachable with default limits have tests of their own. */
    assert_true(seen[QR_RESP_ERROR_MULTIBULK_LENGTH] && seen[QR_RESP_ERROR_ARGS_TOO_MANY]);
    assert_true(seen[QR_RESP_ERROR_EXPECTED_DOLLAR] && seen[QR_RESP_ERROR_BULK_LENGTH]);
    assert_true(seen[QR_RESP_ERROR_BULK_TOO_BIG] && seen[QR_RESP_ERROR_BULK_CRLF]);
    assert_true(seen[QR_RESP_ERROR_UNBALANCED_QUOTES]);
}

static void test_resp_error_names_are_distinct(void **state)
{
    (void)state;
    for (int i = 0; i <= (int)QR_RESP_ERROR_KIND_MAX; i++) {
        const char *name = qr__resp_error_name((enum qr_resp_error)i);
        assert_string_not_equal(name, "unknown");
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(name, qr__resp_error_name((enum qr_resp_error)j));
        }
    }
    assert_string_equal(qr__resp_error_name((enum qr_resp_error)99), "unknown");
}

/* Parse text with small limits: the error kind, or QR_RESP_ERROR_NONE and commands_count. */
static enum qr_resp_error parse_with(const struct qr_resp_parser_opts *opts,
                                     const char *text,
                                     size_t size,
                                     size_t *commands_count_out)
{
    struct qr_resp_parser p;
    struct run got;
    run_init(&got);
    assert_int_equal(qr__resp_parser_init(&p, opts), 0);
    int rv = feed_pieces(&p, (const uint8_t *)text, size, 0, &got);
    enum qr_resp_error error = p.error;
    assert_int_equal(rv, error == QR_RESP_ERROR_NONE ? 0 : QR_EPROTO);
    *commands_count_out = got.commands_count;
    qr__resp_parser_close(&p);
    run_close(&got);
    return error;
}

#define PARSE(opts, text, count_out) parse_with((opts), (text), sizeof(text) - 1, (count_out))

static void test_resp_args_count_max_is_enforced_on_both_sides(void **state)
{
    (void)state;
    struct qr_resp_parser_opts opts = {.args_count_max = 4};
    size_t n = 0;
    assert_int_equal(PARSE(&opts, "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n", &n),
                     QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    assert_int_equal(PARSE(&opts, "*5\r\n", &n), QR_RESP_ERROR_ARGS_TOO_MANY);
    assert_int_equal(PARSE(&opts, "a b c d\r\n", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    assert_int_equal(PARSE(&opts, "a b c d e\r\n", &n), QR_RESP_ERROR_INLINE_TOO_BIG);
    /* The default: 1024 * 1024 announced is fine, one more is not. */
    assert_int_equal(PARSE(NULL, "*1048576\r\n", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(PARSE(NULL, "*1048577\r\n", &n), QR_RESP_ERROR_ARGS_TOO_MANY);
}

static void test_resp_bulk_size_max_is_enforced_on_both_sides(void **state)
{
    (void)state;
    struct qr_resp_parser_opts opts = {.bulk_size_max = 10};
    size_t n = 0;
    assert_int_equal(PARSE(&opts, "*1\r\n$10\r\n0123456789\r\n", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    assert_int_equal(PARSE(&opts, "*1\r\n$11\r\n", &n), QR_RESP_ERROR_BULK_TOO_BIG);
    assert_int_equal(PARSE(NULL, "*1\r\n$536870912\r\n", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(PARSE(NULL, "*1\r\n$536870913\r\n", &n), QR_RESP_ERROR_BULK_TOO_BIG);
}

static void test_resp_command_size_max_is_enforced_on_both_sides(void **state)
{
    (void)state;
    struct qr_resp_parser_opts opts = {.command_size_max = 20};
    size_t n = 0;
    assert_int_equal(PARSE(&opts, "*2\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n", &n),
                     QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    /* Refused at the header, before any of the 11 bytes arrives. */
    assert_int_equal(PARSE(&opts, "*2\r\n$10\r\n0123456789\r\n$11\r\n", &n),
                     QR_RESP_ERROR_COMMAND_TOO_BIG);
    assert_int_equal(PARSE(&opts, "*1\r\n$21\r\n", &n), QR_RESP_ERROR_COMMAND_TOO_BIG);
    /* The budget is per command: the next one starts from zero. */
    assert_int_equal(PARSE(&opts,
                           "*1\r\n$20\r\n01234567890123456789\r\n"
                           "*1\r\n$20\r\n01234567890123456789\r\n",
                           &n),
                     QR_RESP_ERROR_NONE);
    assert_int_equal(n, 2);
    /* An inline line is a command too: it may not pass command_size_max either. */
    assert_int_equal(PARSE(&opts, "0123456789 123456789\n", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(PARSE(&opts, "0123456789 1234567890\n", &n), QR_RESP_ERROR_INLINE_TOO_BIG);
}

static void test_resp_inline_size_max_is_enforced_on_both_sides(void **state)
{
    (void)state;
    struct qr_resp_parser_opts opts = {.inline_size_max = 16};
    size_t n = 0;
    /* The limit counts the bytes before '\n', a '\r' included. */
    assert_int_equal(PARSE(&opts, "0123456789abcde\r\n", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    assert_int_equal(PARSE(&opts, "0123456789abcdef\r\n", &n), QR_RESP_ERROR_INLINE_TOO_BIG);
    /* No need to wait for the newline: 17 bytes without one are already too many. */
    assert_int_equal(PARSE(&opts, "0123456789abcdef", &n), QR_RESP_ERROR_NONE);
    assert_int_equal(PARSE(&opts, "0123456789abcdefX", &n), QR_RESP_ERROR_INLINE_TOO_BIG);
    /* The error names the first byte past the limit, however the line arrived. */
    for (size_t piece = 0; piece <= 5; piece++) {
        struct qr_resp_parser p;
        struct run got;
        run_init(&got);
        assert_int_equal(qr__resp_parser_init(&p, &opts), 0);
        static const char line17[] = "PING\r\n0123456789abcdefXYZ\n";
        assert_int_equal(feed_pieces(&p, (const uint8_t *)line17, sizeof(line17) - 1, piece, &got),
                         QR_EPROTO);
        assert_int_equal(got.commands_count, 1);
        assert_int_equal(p.offset, 6 + 16);
        qr__resp_parser_close(&p);
        run_close(&got);
    }
    /* The default is 64 KiB. */
    static char line[QR_RESP_INLINE_SIZE_MAX_DEFAULT + 2];
    memset(line, 'x', sizeof(line));
    line[QR_RESP_INLINE_SIZE_MAX_DEFAULT] = '\n';
    assert_int_equal(parse_with(NULL, line, QR_RESP_INLINE_SIZE_MAX_DEFAULT + 1, &n),
                     QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    assert_int_equal(parse_with(NULL, line, QR_RESP_INLINE_SIZE_MAX_DEFAULT + 1 - 1, &n),
                     QR_RESP_ERROR_NONE);
    line[QR_RESP_INLINE_SIZE_MAX_DEFAULT] = 'x';
    assert_int_equal(parse_with(NULL, line, sizeof(line), &n), QR_RESP_ERROR_INLINE_TOO_BIG);
}

static void test_resp_headers_of_twenty_characters_fit_and_longer_do_not(void **state)
{
    (void)state;
    size_t n = 0;
    assert_int_equal(PARSE(NULL, "*-9223372036854775808\r\n*1\r\n$1\r\na\r\n", &n),
                     QR_RESP_ERROR_NONE);
    assert_int_equal(n, 1);
    assert_int_equal(PARSE(NULL, "*-92233720368547758080", &n), QR_RESP_ERROR_MULTIBULK_LENGTH);
    assert_int_equal(PARSE(NULL, "*1\r\n$000000000000000000001", &n), QR_RESP_ERROR_BULK_LENGTH);
}

static void test_resp_init_fills_defaults_and_refuses_limits_above_ceilings(void **state)
{
    (void)state;
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    assert_int_equal(p.opts.args_count_max, QR_RESP_ARGS_COUNT_MAX_DEFAULT);
    assert_int_equal(p.opts.bulk_size_max, QR_RESP_BULK_SIZE_MAX_DEFAULT);
    assert_int_equal(p.opts.inline_size_max, QR_RESP_INLINE_SIZE_MAX_DEFAULT);
    assert_int_equal(p.opts.command_size_max, QR_RESP_COMMAND_SIZE_MAX_DEFAULT);
    qr__resp_parser_close(&p);
    struct qr_resp_parser_opts ok = {.args_count_max = QR_RESP_ARGS_COUNT_LIMIT,
                                     .bulk_size_max = QR_RESP_SIZE_LIMIT,
                                     .inline_size_max = QR_RESP_SIZE_LIMIT,
                                     .command_size_max = QR_RESP_SIZE_LIMIT};
    assert_int_equal(qr__resp_parser_init(&p, &ok), 0);
    qr__resp_parser_close(&p);
    struct qr_resp_parser_opts bad[4] = {ok, ok, ok, ok};
    bad[0].args_count_max++;
    bad[1].bulk_size_max++;
    bad[2].inline_size_max++;
    bad[3].command_size_max++;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(qr__resp_parser_init(&p, &bad[i]), QR_EINVAL);
    }
    qr__resp_parser_close(NULL);
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, QR_RESP_SIZE_LIMIT + 1), QR_EINVAL);
    assert_int_equal(qr__resp_writer_init(&w, 0), 0);
    assert_int_equal(w.size_max, QR_RESP_REPLY_SIZE_MAX_DEFAULT);
    qr__resp_writer_close(&w);
    qr__resp_writer_close(NULL);
}

static void feed_text(struct qr_resp_parser *p, const char *text, size_t *commands_count_out)
{
    struct run got;
    run_init(&got);
    assert_int_equal(feed_pieces(p, (const uint8_t *)text, strlen(text), 0, &got), 0);
    *commands_count_out = got.commands_count;
    run_close(&got);
}

static void test_resp_announced_sizes_allocate_nothing_until_bytes_arrive(void **state)
{
    (void)state;
    struct qr_resp_parser p;
    size_t n = 0;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    size_t calls = test_alloc_calls_count();
    struct qr_resp_command command;
    size_t used = 0;
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)"*1048576\r\n", 10, &used, &command), 0);
    assert_int_equal(test_alloc_calls_count(), calls); /* A header alone costs nothing. */
    assert_int_equal(p.args_capacity, 0);
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)"$1\r\na\r\n", 7, &used, &command), 0);
    assert_true(p.args_capacity <= 8);
    assert_true(p.arena_capacity <= 256);
    /* 512 MiB announced (the default limit), 1000 bytes sent: about 1000 bytes held. */
    assert_int_equal(qr__resp_parse(&p, (const uint8_t *)"$536870912\r\n", 12, &used, &command), 0);
    static uint8_t some[1000];
    assert_int_equal(qr__resp_parse(&p, some, sizeof(some), &used, &command), 0);
    assert_true(p.arena_capacity <= 4 * sizeof(some));
    assert_true(p.args_capacity <= 8);
    qr__resp_parser_close(&p);

    /* 2^40 announced: refused before any allocation. */
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    calls = test_alloc_calls_count();
    assert_int_equal(
        qr__resp_parse(&p, (const uint8_t *)"*1\r\n$1099511627776\r\n", 20, &used, &command),
        QR_EPROTO);
    assert_int_equal(p.error, QR_RESP_ERROR_BULK_TOO_BIG);
    assert_int_equal(test_alloc_calls_count(), calls);
    qr__resp_parser_close(&p);

    /* Raised limits: 2^40 accepted (on 64-bit) yet still nothing allocated for it. */
    struct qr_resp_parser_opts big = {.bulk_size_max = QR_RESP_SIZE_LIMIT,
                                      .command_size_max = QR_RESP_SIZE_LIMIT};
    assert_int_equal(qr__resp_parser_init(&p, &big), 0);
    if (QR_RESP_SIZE_LIMIT >= ((uint64_t)1 << 40)) {
        feed_text(&p, "*1\r\n$1099511627776\r\nabc", &n);
        assert_int_equal(n, 0);
        assert_true(p.arena_capacity <= 256);
    }
    qr__resp_parser_close(&p);
}

/* A big bulk fed in pieces of `piece` bytes; returns the allocations it took. */
static size_t big_bulk_allocations(size_t piece, bool is_last)
{
    static uint8_t value[BIG_BULK_SIZE];
    for (size_t i = 0; i < sizeof(value); i++) {
        value[i] = (uint8_t)(i * 7 + 3);
    }
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    struct run got;
    run_init(&got);
    run_reserve(&got);
    size_t calls = test_alloc_calls_count();
    const char *head =
        is_last ? "*2\r\n$3\r\nSET\r\n$1048576\r\n" : "*3\r\n$3\r\nSET\r\n$1048576\r\n";
    assert_int_equal(feed_pieces(&p, (const uint8_t *)head, strlen(head), 0, &got), 0);
    assert_int_equal(feed_pieces(&p, value, sizeof(value), piece, &got), 0);
    const char *tail = is_last ? "\r\n" : "\r\n$1\r\nx\r\n";
    assert_int_equal(feed_pieces(&p, (const uint8_t *)tail, strlen(tail), 0, &got), 0);
    size_t allocations = test_alloc_calls_count() - calls;
    assert_int_equal(got.commands_count, 1);
    if (is_last) {
        /* The last bulk's size is known exactly: no slack beyond it. */
        assert_int_equal(p.arena_capacity, 4 + BIG_BULK_SIZE + 1);
    }
    assert_true(p.arena_capacity <= 2 * (BIG_BULK_SIZE + 8));
    /* The yielded value is intact: compare the re-encoded bulk's payload. */
    struct qr_buf t = qr__resp_writer_pending(&got.transcript);
    assert_true(t.len > BIG_BULK_SIZE);
    assert_memory_equal(t.base + 23, value, BIG_BULK_SIZE);
    qr__resp_parser_close(&p);
    run_close(&got);
    return allocations;
}

static void test_resp_big_bulk_in_small_pieces_grows_geometrically(void **state)
{
    (void)state;
    /* 1 MiB from 256 bytes by doubling is 13 steps; exact-size growth would be 10^6. */
    assert_true(big_bulk_allocations(1, true) <= 16);
    assert_true(big_bulk_allocations(7, true) <= 16);
    assert_true(big_bulk_allocations(4096, false) <= 16);
    assert_true(big_bulk_allocations(0, false) <= 16);
}

static void test_resp_large_buffers_are_released_and_small_ones_kept(void **state)
{
    (void)state;
    struct qr_resp_parser p;
    assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
    size_t n = 0;
    static uint8_t value[100000];
    memset(value, 'v', sizeof(value));
    struct run first;
    run_init(&first);
    assert_int_equal(feed_pieces(&p, (const uint8_t *)"*1\r\n$100000\r\n", 13, 0, &first), 0);
    assert_int_equal(feed_pieces(&p, value, sizeof(value), 0, &first), 0);
    assert_int_equal(feed_pieces(&p, (const uint8_t *)"\r\n", 2, 0, &first), 0);
    assert_int_equal(first.commands_count, 1);
    run_close(&first);
    assert_true(p.arena_capacity > QR_RESP_RETAIN_SIZE);
    feed_text(&p, "*1\r\n$4\r\nPING\r\n", &n);
    assert_int_equal(n, 1);
    assert_true(p.arena_capacity <= QR_RESP_RETAIN_SIZE);
    /* Steady state: small commands allocate nothing more. */
    struct run got;
    run_init(&got);
    run_reserve(&got);
    size_t calls = test_alloc_calls_count();
    for (size_t i = 0; i < 1000; i++) {
        static const char ping[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\nPING\r\n";
        assert_int_equal(feed_pieces(&p, (const uint8_t *)ping, sizeof(ping) - 1, 0, &got), 0);
        qr__resp_writer_consume(&got.transcript, qr__resp_writer_pending(&got.transcript).len);
    }
    assert_int_equal(got.commands_count, 2000);
    assert_int_equal(test_alloc_calls_count(), calls);
    run_close(&got);
    qr__resp_parser_close(&p);
}

/* The pipeline under the Nth allocation failing, for every N, once and for good. */
static void oom_loop(bool is_sticky)
{
    const uint8_t *data = (const uint8_t *)pipeline;
    size_t size = sizeof(pipeline) - 1;
    struct run expected;
    pipeline_expected(&expected);
    size_t n = 1;
    for (; n <= FAIL_AT_MAX; n++) {
        struct qr_resp_parser p;
        struct run got;
        run_init(&got);
        run_reserve(&got);
        assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
        test_alloc_fail_at(n, is_sticky);
        int rv = feed_pieces(&p, data, size, 5, &got);
        test_alloc_fail_at(0, false);
        if (rv == 0) {
            assert_same_transcript(&got, &expected);
        } else {
            assert_int_equal(rv, QR_ENOMEM);
            assert_int_equal(p.error, QR_RESP_ERROR_NOMEM);
            assert_string_equal(p.errmsg, "out of memory");
            size_t used = 1;
            struct qr_resp_command command;
            assert_int_equal(qr__resp_parse(&p, data, size, &used, &command), QR_ENOMEM);
            assert_int_equal(used, 0);
        }
        qr__resp_parser_close(&p);
        run_close(&got);
        if (rv == 0) {
            break;
        }
    }
    assert_true(n > 1); /* The pipeline needs memory, so at least one run failed. */
    assert_true(n <= FAIL_AT_MAX);
    run_close(&expected);
}

static void test_resp_parse_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    oom_loop(false);
    oom_loop(true);
}

/* ------------------------------------------------------------------------------------ */

static void assert_pending(const struct qr_resp_writer *w, const char *want, size_t want_size)
{
    struct qr_buf got = qr__resp_writer_pending(w);
    if (got.len != want_size || (want_size > 0 && memcmp(got.base, want, want_size) != 0)) {
        fail_msg("pending %zu bytes \"%.*s\", want %zu \"%.*s\"", got.len, (int)got.len,
                 (const char *)got.base, want_size, (int)want_size, want);
    }
}

#define ASSERT_PENDING(w, text) assert_pending((w), (text), sizeof(text) - 1)

static void test_resp_writer_writes_every_reply_type(void **state)
{
    (void)state;
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, 0), 0);
    assert_int_equal(qr__resp_write_simple(&w, "OK", 2), 0);
    assert_int_equal(qr__resp_write_error(&w, "unknown command", 15), 0);
    assert_int_equal(qr__resp_write_error(&w, "-NOTLEADER 10.0.0.2:7001", 24), 0);
    assert_int_equal(qr__resp_write_errorf(&w, "wrong number of arguments for '%s'", "get"), 0);
    assert_int_equal(qr__resp_write_integer(&w, 0), 0);
    assert_int_equal(qr__resp_write_integer(&w, -1), 0);
    assert_int_equal(qr__resp_write_integer(&w, 1000), 0);
    assert_int_equal(qr__resp_write_integer(&w, INT64_MAX), 0);
    assert_int_equal(qr__resp_write_integer(&w, INT64_MIN), 0);
    assert_int_equal(qr__resp_write_bulk(&w, (const uint8_t *)"a\r\nb", 4), 0);
    assert_int_equal(qr__resp_write_bulk(&w, NULL, 0), 0);
    assert_int_equal(qr__resp_write_null_bulk(&w), 0);
    assert_int_equal(qr__resp_write_array(&w, 2), 0);
    assert_int_equal(qr__resp_write_array(&w, 0), 0);
    assert_int_equal(qr__resp_write_null_array(&w), 0);
    struct qr_buf args[2] = {{(uint8_t *)"GET", 3}, {(uint8_t *)"k", 1}};
    assert_int_equal(qr__resp_write_command(&w, args, 2), 0);
    ASSERT_PENDING(&w, "+OK\r\n"
                       "-ERR unknown command\r\n"
                       "-NOTLEADER 10.0.0.2:7001\r\n"
                       "-ERR wrong number of arguments for 'get'\r\n"
                       ":0\r\n:-1\r\n:1000\r\n:9223372036854775807\r\n:-9223372036854775808\r\n"
                       "$4\r\na\r\nb\r\n$0\r\n\r\n$-1\r\n"
                       "*2\r\n*0\r\n*-1\r\n"
                       "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    qr__resp_writer_check_invariants(&w);
    qr__resp_writer_close(&w);
}

static void test_resp_writer_never_lets_a_line_break_the_framing(void **state)
{
    (void)state;
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, 0), 0);
    assert_int_equal(qr__resp_write_simple(&w, "a\r\nb", 4), 0);
    assert_int_equal(qr__resp_write_error(&w, "bad\r\n+OK", 8), 0);
    assert_int_equal(qr__resp_write_errorf(&w, "unknown command '%s'", "x\r\ny"), 0);
    assert_int_equal(qr__resp_write_error(&w, "", 0), 0);
    ASSERT_PENDING(&w, "+a  b\r\n-ERR bad  +OK\r\n-ERR unknown command 'x  y'\r\n-ERR \r\n");
    qr__resp_writer_close(&w);
    /* errorf cuts what does not fit. */
    assert_int_equal(qr__resp_writer_init(&w, 0), 0);
    static char longer[2 * QR_RESP_ERROR_SIZE_MAX];
    memset(longer, 'e', sizeof(longer) - 1);
    assert_int_equal(qr__resp_write_errorf(&w, "%s", longer), 0);
    assert_int_equal(qr__resp_writer_pending(&w).len, 5 + QR_RESP_ERROR_SIZE_MAX - 1 + 2);
    qr__resp_writer_close(&w);
}

static void test_resp_writer_cap_is_exact_and_all_or_nothing(void **state)
{
    (void)state;
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, 16), 0);
    /* "$10\r\n" + 10 + "\r\n" is exactly 17: one too many. */
    assert_int_equal(qr__resp_write_bulk(&w, (const uint8_t *)"0123456789", 10), QR_EBUSY);
    ASSERT_PENDING(&w, "");
    assert_int_equal(qr__resp_write_bulk(&w, (const uint8_t *)"012345678", 9), 0);
    assert_int_equal(qr__resp_writer_pending(&w).len, 15);
    assert_int_equal(qr__resp_write_simple(&w, "", 0), QR_EBUSY);
    assert_int_equal(qr__resp_write_integer(&w, 1), QR_EBUSY);
    assert_int_equal(qr__resp_write_null_bulk(&w), QR_EBUSY);
    assert_int_equal(qr__resp_write_error(&w, "-E", 2), QR_EBUSY);
    assert_int_equal(qr__resp_writer_pending(&w).len, 15);
    /* Sending frees room. */
    qr__resp_writer_consume(&w, 4);
    assert_int_equal(qr__resp_write_null_bulk(&w), 0);
    ASSERT_PENDING(&w, "012345678\r\n$-1\r\n");
    assert_int_equal(qr__resp_writer_pending(&w).len, 16);
    qr__resp_writer_close(&w);
    /* A command over the cap is refused whole, even when its size would overflow. */
    assert_int_equal(qr__resp_writer_init(&w, 64), 0);
    struct qr_buf huge[2] = {{(uint8_t *)"SET", 3}, {(uint8_t *)"x", SIZE_MAX}};
    assert_int_equal(qr__resp_write_command(&w, huge, 2), QR_EBUSY);
    assert_int_equal(qr__resp_write_bulk(&w, (const uint8_t *)"x", SIZE_MAX), QR_EBUSY);
    assert_int_equal(qr__resp_write_simple(&w, "x", SIZE_MAX), QR_EBUSY);
    ASSERT_PENDING(&w, "");
    qr__resp_writer_close(&w);
}

static void test_resp_writer_consume_and_take_hand_bytes_to_the_socket(void **state)
{
    (void)state;
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, 0), 0);
    struct qr_buf taken;
    qr__resp_writer_take(&w, &taken);
    assert_null(taken.base);
    assert_int_equal(taken.len, 0);
    assert_int_equal(qr__resp_write_simple(&w, "PONG", 4), 0);
    qr__resp_writer_consume(&w, 3);
    ASSERT_PENDING(&w, "NG\r\n");
    qr__resp_writer_take(&w, &taken);
    assert_int_equal(taken.len, 4);
    assert_memory_equal(taken.base, "NG\r\n", 4);
    qr_free(taken.base);
    ASSERT_PENDING(&w, "");
    assert_int_equal(qr__resp_write_integer(&w, 7), 0);
    ASSERT_PENDING(&w, ":7\r\n");
    qr__resp_writer_consume(&w, 4);
    ASSERT_PENDING(&w, "");
    qr__resp_writer_check_invariants(&w);
    qr__resp_writer_close(&w);
}

static void test_resp_writer_partial_sends_keep_memory_bounded(void **state)
{
    (void)state;
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, 4096), 0);
    static uint8_t value[100];
    memset(value, 'v', sizeof(value));
    /* Keep about 3 KiB pending while sending a little less than is written. */
    for (size_t i = 0; i < 100000; i++) {
        int rv = qr__resp_write_bulk(&w, value, (size_t)(i % 100));
        size_t pending = qr__resp_writer_pending(&w).len;
        assert_true(rv == 0 || (rv == QR_EBUSY && pending > 4096 - 106));
        size_t send = pending > 3000 ? pending - 3000 + (i % 50) : i % 50;
        qr__resp_writer_consume(&w, send < pending ? send : pending);
        qr__resp_writer_check_invariants(&w);
        assert_true(w.capacity <= (size_t)2 * 4096);
    }
    qr__resp_writer_close(&w);
}

static void test_resp_writer_fails_cleanly_without_memory(void **state)
{
    (void)state;
    struct qr_resp_writer w;
    assert_int_equal(qr__resp_writer_init(&w, 0), 0);
    test_alloc_fail_at(1, false);
    assert_int_equal(qr__resp_write_simple(&w, "OK", 2), QR_ENOMEM);
    ASSERT_PENDING(&w, "");
    assert_int_equal(qr__resp_write_simple(&w, "OK", 2), 0);
    /* Growing past the first buffer can fail too, leaving the earlier reply intact. */
    static uint8_t value[4000];
    test_alloc_fail_at(1, true);
    assert_int_equal(qr__resp_write_bulk(&w, value, sizeof(value)), QR_ENOMEM);
    struct qr_buf args[1] = {{value, sizeof(value)}};
    assert_int_equal(qr__resp_write_command(&w, args, 1), QR_ENOMEM);
    test_alloc_fail_at(0, false);
    ASSERT_PENDING(&w, "+OK\r\n");
    qr__resp_writer_close(&w);
}

/* ------------------------------------------------------------------------------------ */

/* Bytes that matter to the protocol come up often; any other byte sometimes. */
static uint8_t random_byte(struct qr_rng *rng)
{
    static const uint8_t special[] = {'\r', '\n', '*', '$', '-', '0', '1', ' ', '"', '\'', 0};
    if (qr__rng_chance(rng, 1, 2)) {
        return special[qr__rng_below(rng, sizeof(special))];
    }
    return (uint8_t)qr__rng_below(rng, 256);
}

/* Random commands, encoded as multibulk: the stream a client would send. */
static void random_stream(struct qr_rng *rng, struct qr_resp_writer *stream, size_t *count_out)
{
    static uint8_t bytes[8192];
    static struct qr_buf args[300];
    size_t commands_count = (size_t)qr__rng_range(rng, 1, 5);
    for (size_t c = 0; c < commands_count; c++) {
        size_t args_count = qr__rng_chance(rng, 1, 10) ? (size_t)qr__rng_range(rng, 1, 300)
                                                       : (size_t)qr__rng_range(rng, 1, 6);
        size_t used = 0;
        for (size_t i = 0; i < args_count; i++) {
            size_t len = qr__rng_chance(rng, 1, 20) ? (size_t)qr__rng_below(rng, 3000)
                                                    : (size_t)qr__rng_below(rng, 17);
            len = len < sizeof(bytes) - used ? len : sizeof(bytes) - used;
            for (size_t b = 0; b < len; b++) {
                bytes[used + b] = random_byte(rng);
            }
            args[i] = (struct qr_buf){.base = bytes + used, .len = len};
            used += len;
        }
        assert_int_equal(qr__resp_write_command(stream, args, args_count), 0);
    }
    *count_out = commands_count;
}

static void test_resp_random_commands_round_trip_in_random_pieces(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= ROUND_TRIP_RUNS; seed++) {
        struct qr_rng rng;
        qr__rng_seed(&rng, seed);
        struct qr_resp_writer stream;
        assert_int_equal(qr__resp_writer_init(&stream, 0), 0);
        size_t commands_count = 0;
        random_stream(&rng, &stream, &commands_count);
        struct qr_buf bytes = qr__resp_writer_pending(&stream);
        struct qr_resp_parser p;
        assert_int_equal(qr__resp_parser_init(&p, NULL), 0);
        struct run got;
        run_init(&got);
        for (size_t pos = 0; pos < bytes.len;) {
            size_t piece =
                qr__rng_chance(&rng, 1, 8) ? bytes.len : (size_t)qr__rng_range(&rng, 1, 64);
            piece = piece < bytes.len - pos ? piece : bytes.len - pos;
            assert_int_equal(feed_chunk(&p, bytes.base + pos, piece, &got), 0);
            pos += piece;
        }
        /* Canonical encoding: parsing then re-encoding gives back the very same bytes. */
        struct qr_buf again = qr__resp_writer_pending(&got.transcript);
        if (got.commands_count != commands_count || again.len != bytes.len ||
            memcmp(again.base, bytes.base, bytes.len) != 0) {
            fail_msg("round trip differs for seed %llu", (unsigned long long)seed);
        }
        qr__resp_parser_close(&p);
        run_close(&got);
        qr__resp_writer_close(&stream);
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, test_alloc_setup, test_alloc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_resp_parses_a_multibulk_command_into_nul_terminated_views),
        T(test_resp_stops_after_each_command_of_a_pipeline),
        T(test_resp_parses_inline_commands_with_lf_or_crlf),
        T(test_resp_inline_quoting_follows_redis_cli),
        T(test_resp_inline_hex_escape_makes_any_byte),
        T(test_resp_empty_requests_are_skipped),
        T(test_resp_bulk_strings_are_binary_safe),
        T(test_resp_every_split_of_a_pipeline_gives_the_same_commands),
        T(test_resp_every_protocol_error_has_its_kind_and_redis_message),
        T(test_resp_error_names_are_distinct),
        T(test_resp_args_count_max_is_enforced_on_both_sides),
        T(test_resp_bulk_size_max_is_enforced_on_both_sides),
        T(test_resp_command_size_max_is_enforced_on_both_sides),
        T(test_resp_inline_size_max_is_enforced_on_both_sides),
        T(test_resp_headers_of_twenty_characters_fit_and_longer_do_not),
        T(test_resp_init_fills_defaults_and_refuses_limits_above_ceilings),
        T(test_resp_announced_sizes_allocate_nothing_until_bytes_arrive),
        T(test_resp_big_bulk_in_small_pieces_grows_geometrically),
        T(test_resp_large_buffers_are_released_and_small_ones_kept),
        T(test_resp_parse_fails_cleanly_at_every_allocation),
        T(test_resp_writer_writes_every_reply_type),
        T(test_resp_writer_never_lets_a_line_break_the_framing),
        T(test_resp_writer_cap_is_exact_and_all_or_nothing),
        T(test_resp_writer_consume_and_take_hand_bytes_to_the_socket),
        T(test_resp_writer_partial_sends_keep_memory_bounded),
        T(test_resp_writer_fails_cleanly_without_memory),
        T(test_resp_random_commands_round_trip_in_random_pieces),
    };
#undef T
    return cmocka_run_group_tests_name("resp", tests, NULL, NULL);
}
