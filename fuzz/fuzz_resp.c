/*
 * fuzz_resp: the RESP2 request parser and the reply writer against hostile bytes.
 *
 * Input layout: byte 0 holds flags; its low 4 bits are S, the number of split bytes that
 * follow, and bit 4 selects small limits (so every limit is reached often). Bytes 1..S
 * give the piece sizes (value + 1) used in turn to cut the rest, the client's bytes.
 *
 * Checks, any failure of which is a bug:
 *   - no crash, sanitizer report or assertion (invariants are checked after every call);
 *   - the same bytes fed whole and fed in the chosen pieces give the same commands, the
 *     same error kind and message, and the same final parser state;
 *   - a refusal always carries a message;
 *   - every argument view is NUL-terminated;
 *   - re-encoding the commands as multibulk and parsing that again gives the very same
 *     commands (the encoding is canonical, so the bytes match exactly);
 *   - the writer never holds more than its cap, whatever it is asked to write.
 */
#include <stdint.h>
#include <string.h>

#include "quorum/err.h"
#include "server/resp.h"

#define INPUT_SIZE_MAX (1u << 20)
#define SPLITS_MAX     15
#define REPLY_SIZE_MAX 512
#define SMALL_LIMITS   0x10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one parse of the input produced. */
struct outcome {
    struct qr_resp_writer transcript; /* The commands, re-encoded as multibulk. */
    size_t commands_count;
    int rv;
};

static void check(bool condition)
{
    if (!condition) {
        __builtin_trap();
    }
}

/* Write replies built from a command, to fuzz the writer and its cap. */
static void exercise_writer(struct qr_resp_writer *w, const struct qr_resp_command *command)
{
    for (size_t i = 0; i < command->args_count; i++) {
        const struct qr_buf *arg = &command->args[i];
        int rv = 0;
        switch (i % 6) {
        case 0:
            rv = qr__resp_write_bulk(w, arg->base, arg->len);
            break;
        case 1:
            rv = qr__resp_write_simple(w, (const char *)arg->base, arg->len);
            break;
        case 2:
            rv = qr__resp_write_error(w, (const char *)arg->base, arg->len);
            break;
        case 3:
            rv = qr__resp_write_integer(w, (int64_t)((uint64_t)arg->len * 0x9E3779B97F4A7C15u));
            break;
        case 4:
            rv = qr__resp_write_errorf(w, "unknown command '%s'", (const char *)arg->base);
            break;
        default:
            rv = qr__resp_write_command(w, command->args, command->args_count);
            break;
        }
        check(rv == 0 || rv == QR_EBUSY || rv == QR_ENOMEM);
        qr__resp_writer_check_invariants(w);
        struct qr_buf pending = qr__resp_writer_pending(w);
        check(pending.len <= REPLY_SIZE_MAX);
        if (rv == QR_EBUSY) {
            qr__resp_writer_consume(w, pending.len / 2 + 1 <= pending.len ? pending.len / 2 + 1
                                                                          : pending.len);
        }
    }
}

/* Feed one piece until it is used up or the parser fails. */
static void feed_piece(struct qr_resp_parser *p,
                       const uint8_t *piece,
                       size_t piece_size,
                       struct outcome *out,
                       struct qr_resp_writer *replies)
{
    size_t pos = 0;
    /* Each round consumes at least one byte or ends the loop. */
    for (size_t round = 0; round <= piece_size && out->rv == 0; round++) {
        size_t used = 0;
        struct qr_resp_command command;
        out->rv = qr__resp_parse(p, piece + pos, piece_size - pos, &used, &command);
        qr__resp_parser_check_invariants(p);
        check(used <= piece_size - pos);
        pos += used;
        if (out->rv != 0) {
            check(p->errmsg[0] != '\0' && command.args_count == 0);
            return;
        }
        if (command.args_count == 0) {
            check(pos == piece_size);
            return;
        }
        for (size_t i = 0; i < command.args_count; i++) {
            check(command.args[i].base[command.args[i].len] == '\0');
        }
        int rv = qr__resp_write_command(&out->transcript, command.args, command.args_count);
        check(rv == 0 || rv == QR_ENOMEM);
        out->commands_count++;
        if (replies != NULL) {
            exercise_writer(replies, &command);
        }
        if (pos == piece_size) {
            return;
        }
    }
}

/* Parse the client bytes, cut by the split sizes (none: all at once). */
static void parse_all(struct qr_resp_parser *p,
                      const uint8_t *bytes,
                      size_t size,
                      const uint8_t *splits,
                      size_t splits_count,
                      struct outcome *out,
                      struct qr_resp_writer *replies)
{
    size_t pos = 0;
    /* Each round consumes at least one byte or stops at an error. */
    for (size_t k = 0; pos < size && out->rv == 0; k++) {
        size_t piece = splits_count == 0 ? size : (size_t)splits[k % splits_count] + 1;
        piece = piece < size - pos ? piece : size - pos;
        feed_piece(p, bytes + pos, piece, out, replies);
        pos += piece;
    }
}

static bool same_outcome(const struct outcome *a, const struct outcome *b)
{
    struct qr_buf x = qr__resp_writer_pending(&a->transcript);
    struct qr_buf y = qr__resp_writer_pending(&b->transcript);
    return a->rv == b->rv && a->commands_count == b->commands_count && x.len == y.len &&
           (x.len == 0 || memcmp(x.base, y.base, x.len) == 0);
}

static bool same_parser_state(const struct qr_resp_parser *a, const struct qr_resp_parser *b)
{
    return a->state == b->state && a->error == b->error && strcmp(a->errmsg, b->errmsg) == 0 &&
           a->args_count == b->args_count && a->arena_size == b->arena_size &&
           a->command_size == b->command_size && a->bulk_remaining == b->bulk_remaining &&
           a->header_size == b->header_size && a->offset == b->offset;
}

/* Parse the re-encoded commands again: the transcript of that must be the same bytes. */
static void check_reencoding(const struct qr_resp_parser_opts *opts, const struct outcome *whole)
{
    struct qr_buf encoded = qr__resp_writer_pending(&whole->transcript);
    if (encoded.len == 0) {
        return;
    }
    struct qr_resp_parser p;
    check(qr__resp_parser_init(&p, opts) == 0);
    struct outcome again = {.rv = 0};
    check(qr__resp_writer_init(&again.transcript, 0) == 0);
    parse_all(&p, encoded.base, encoded.len, NULL, 0, &again, NULL);
    if (again.rv != QR_ENOMEM) {
        check(again.rv == 0);
        check(again.commands_count == whole->commands_count);
        struct qr_buf twice = qr__resp_writer_pending(&again.transcript);
        check(twice.len == encoded.len && memcmp(twice.base, encoded.base, encoded.len) == 0);
    }
    qr__resp_writer_close(&again.transcript);
    qr__resp_parser_close(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > INPUT_SIZE_MAX) {
        return 0;
    }
    size_t splits_count = data[0] & SPLITS_MAX;
    splits_count = splits_count < size - 1 ? splits_count : size - 1;
    const uint8_t *splits = data + 1;
    const uint8_t *bytes = data + 1 + splits_count;
    size_t bytes_size = size - 1 - splits_count;
    /* Small limits keep inline_size_max <= bulk_size_max, so re-encoding stays legal. */
    struct qr_resp_parser_opts small = {
        .args_count_max = 8, .bulk_size_max = 64, .inline_size_max = 64, .command_size_max = 256};
    const struct qr_resp_parser_opts *opts = (data[0] & SMALL_LIMITS) != 0 ? &small : NULL;

    struct qr_resp_parser whole_parser;
    struct qr_resp_parser split_parser;
    struct qr_resp_writer replies;
    struct outcome whole = {.rv = 0};
    struct outcome split = {.rv = 0};
    check(qr__resp_parser_init(&whole_parser, opts) == 0);
    check(qr__resp_parser_init(&split_parser, opts) == 0);
    check(qr__resp_writer_init(&whole.transcript, 0) == 0);
    check(qr__resp_writer_init(&split.transcript, 0) == 0);
    check(qr__resp_writer_init(&replies, REPLY_SIZE_MAX) == 0);

    parse_all(&whole_parser, bytes, bytes_size, NULL, 0, &whole, &replies);
    parse_all(&split_parser, bytes, bytes_size, splits, splits_count, &split, NULL);
    if (whole.rv != QR_ENOMEM && split.rv != QR_ENOMEM) {
        check(same_outcome(&whole, &split));
        check(same_parser_state(&whole_parser, &split_parser));
        check_reencoding(opts, &whole);
    }

    qr__resp_writer_close(&replies);
    qr__resp_writer_close(&whole.transcript);
    qr__resp_writer_close(&split.transcript);
    qr__resp_parser_close(&whole_parser);
    qr__resp_parser_close(&split_parser);
    return 0;
}
