/*
 * util/err.h: building error messages.
 *
 * Layer: util. Objects keep `char errmsg[QR_ERRMSG_SIZE]`; each layer writes
 * or prefixes context so that the final message names the file, offset, peer
 * or index: "wal: segment 42 offset 8192: bad crc". Messages are lowercase
 * with no final period.
 */
#ifndef QR_UTIL_ERR_H
#define QR_UTIL_ERR_H

#include "quorum/err.h"

/* Formats into errmsg (QR_ERRMSG_SIZE bytes, or NULL to discard) and returns err. */
int qr__errf(char *errmsg, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to the message already in errmsg and returns err. */
int qr__err_wrapf(char *errmsg, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Translates an errno value into a QR_E* code, writing "<context>: <strerror>". */
int qr__err_os(char *errmsg, int errno_value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* QR_UTIL_ERR_H */
