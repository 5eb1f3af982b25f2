/*
 * util/parse.c: strict number and list parsing.
 *
 * Layer: util. Hand-written digit loops rather than strtoull so that signs,
 * white space and overflow are refused the same way on every libc.
 */
#include "util/parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/assert.h"
#include "util/err.h"

/* Longest text echoed back in a message, so messages stay one line. */
#define ECHO_SIZE_MAX 40

int qr__parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *value_out, char *errmsg)
{
    QR_ASSERT(value_out != NULL && min <= max);
    if (text == NULL || text[0] == '\0') {
        return qr__errf(errmsg, QR_EINVAL, "expected a number, got nothing");
    }
    uint64_t value = 0;
    size_t i = 0;
    for (; text[i] != '\0'; i++) {
        char c = text[i];
        if (c < '0' || c > '9') {
            return qr__errf(errmsg, QR_EINVAL, "'%.*s' is not a whole number", ECHO_SIZE_MAX, text);
        }
        uint64_t digit = (uint64_t)(c - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return qr__errf(errmsg, QR_EINVAL, "'%.*s' is too large, at most %llu", ECHO_SIZE_MAX,
                            text, (unsigned long long)max);
        }
        value = value * 10 + digit;
    }
    if (value < min || value > max) {
        return qr__errf(errmsg, QR_EINVAL, "%llu is out of range, expected %llu to %llu",
                        (unsigned long long)value, (unsigned long long)min,
                        (unsigned long long)max);
    }
    *value_out = value;
    return 0;
}

int qr__parse_double(const char *text, double min, double max, double *value_out, char *errmsg)
{
    QR_ASSERT(value_out != NULL && min <= max);
    if (text == NULL || text[0] == '\0') {
        return qr__errf(errmsg, QR_EINVAL, "expected a number, got nothing");
    }
    /* Only digits, one dot and an exponent; strtod alone would also take "inf", hex and spaces. */
    for (size_t i = 0; text[i] != '\0'; i++) {
        if (strchr("0123456789.eE-+", text[i]) == NULL || (i == 0 && strchr("+-", text[0]))) {
            return qr__errf(errmsg, QR_EINVAL, "'%.*s' is not a number", ECHO_SIZE_MAX, text);
        }
    }
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(value)) {
        return qr__errf(errmsg, QR_EINVAL, "'%.*s' is not a number", ECHO_SIZE_MAX, text);
    }
    if (value < min || value > max) {
        return qr__errf(errmsg, QR_EINVAL, "%g is out of range, expected %g to %g", value, min,
                        max);
    }
    *value_out = value;
    return 0;
}

int qr__parse_u32_list(const char *text,
                       uint32_t min,
                       uint32_t max,
                       uint32_t *values_out,
                       size_t values_max,
                       size_t *values_count_out,
                       char *errmsg)
{
    QR_ASSERT(values_out != NULL && values_count_out != NULL);
    if (text == NULL || text[0] == '\0') {
        return qr__errf(errmsg, QR_EINVAL, "expected a comma-separated list, got nothing");
    }
    size_t count = 0;
    const char *item = text;
    for (;;) {
        const char *comma = strchr(item, ',');
        size_t len = comma != NULL ? (size_t)(comma - item) : strlen(item);
        if (count == values_max) {
            return qr__errf(errmsg, QR_ETOOBIG, "more than %zu items in the list", values_max);
        }
        char buf[24];
        if (len == 0 || len >= sizeof(buf)) {
            return qr__errf(errmsg, QR_EINVAL, "item %zu of the list is %s", count + 1,
                            len == 0 ? "empty" : "too long");
        }
        memcpy(buf, item, len);
        buf[len] = '\0';
        uint64_t value = 0;
        int rv = qr__parse_u64(buf, min, max, &value, errmsg);
        if (rv != 0) {
            return qr__err_wrapf(errmsg, rv, "item %zu of the list", count + 1);
        }
        values_out[count++] = (uint32_t)value;
        if (comma == NULL) {
            break;
        }
        item = comma + 1;
    }
    *values_count_out = count;
    return 0;
}

bool qr__parse_i64_canonical(const uint8_t *text, size_t size, int64_t *value_out)
{
    if (size == 0 || text == NULL) {
        return false;
    }
    bool is_negative = text[0] == '-';
    size_t start = is_negative ? 1 : 0;
    if (start == size || (text[start] == '0' && (size - start > 1 || is_negative))) {
        return false;
    }
    uint64_t limit = is_negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t magnitude = 0;
    for (size_t i = start; i < size; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return false;
        }
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (magnitude > (limit - digit) / 10) {
            return false;
        }
        magnitude = magnitude * 10 + digit;
    }
    if (value_out == NULL) {
        return true; /* Only the check was wanted. */
    }
    if (!is_negative) {
        *value_out = (int64_t)magnitude;
    } else if (magnitude == (uint64_t)INT64_MAX + 1) {
        *value_out = INT64_MIN;
    } else {
        *value_out = -(int64_t)magnitude;
    }
    return true;
}

bool qr__flag_is(const char *arg, const char *name)
{
    size_t len = strlen(name);
    return strncmp(arg, name, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

const char *qr__flag_value(int argc, char *const *argv, int *i, const char *name)
{
    QR_ASSERT(i != NULL && *i < argc);
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0) {
        return NULL;
    }
    if (arg[len] == '=') {
        return arg + len + 1;
    }
    if (arg[len] == '\0' && *i + 1 < argc) {
        *i += 1;
        return argv[*i];
    }
    return NULL;
}
