/*
 * util/parse.h: strict parsing of numbers and lists from untrusted text.
 *
 * Layer: util. Used for command-line flags and configuration values. Every
 * function rejects empty input, signs, spaces, trailing garbage and values out
 * of range, and writes a message that names the offending text. Never crashes
 * on any input; never allocates.
 */
#ifndef QR_UTIL_PARSE_H
#define QR_UTIL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decimal unsigned integer in [min, max]. QR_EINVAL with a message on anything else. */
int qr__parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *value_out, char *errmsg);
/* Decimal number such as "0.01" or "1e-3" in [min, max]; rejects nan and inf. */
int qr__parse_double(const char *text, double min, double max, double *value_out, char *errmsg);
/*
 * Comma-separated unsigned integers, each in [min, max], at most values_max of them.
 * QR_EINVAL on a bad item (the message names its position), QR_ETOOBIG past values_max.
 */
int qr__parse_u32_list(const char *text,
                       uint32_t min,
                       uint32_t max,
                       uint32_t *values_out,
                       size_t values_max,
                       size_t *values_count_out,
                       char *errmsg);

/*
 * Canonical decimal int64 as Redis's string2ll accepts it: "0", or an optional '-' and a
 * non-zero first digit; no '+', no spaces, no leading zeros, no "-0", no overflow.
 * Binary-safe (size bytes, no NUL needed). Returns false on anything else. value_out may
 * be NULL when only the check is wanted.
 */
bool qr__parse_i64_canonical(const uint8_t *text, size_t size, int64_t *value_out);

/* Whether argument `arg` is flag `name`, as "--name" or "--name=value". */
bool qr__flag_is(const char *arg, const char *name);
/*
 * The value of flag `name` at argv[*i], given as "--name=value" or "--name value" (then
 * *i moves to the value). NULL when argv[*i] is not that flag or the value is missing.
 */
const char *qr__flag_value(int argc, char *const *argv, int *i, const char *name);

#endif /* QR_UTIL_PARSE_H */
