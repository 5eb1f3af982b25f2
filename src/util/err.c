/*
 * util/err.c: the error table's strings and the message helpers.
 *
 * Layer: util. Generated from the single X-macro table in quorum/err.h.
 */
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *qr_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define ERR_TEXT(name, number, text) \
    case name:                       \
        return text;
        QR_ERR_TABLE(ERR_TEXT)
#undef ERR_TEXT
    default:
        return "unknown error";
    }
}

const char *qr_err_name(int err)
{
    switch (err) {
    case 0:
        return "QR_OK";
#define ERR_NAME(name, number, text) \
    case name:                       \
        return #name;
        QR_ERR_TABLE(ERR_NAME)
#undef ERR_NAME
    default:
        return "QR_E?";
    }
}

/* errmsg = "<a>: <b>", cut to QR_ERRMSG_SIZE; truncation is expected for long context. */
static void join_colon(char *errmsg, const char *a, const char *b)
{
    size_t used = 0;
    const char *parts[3] = {a, ": ", b};
    for (size_t p = 0; p < 3; p++) {
        size_t len = strlen(parts[p]);
        size_t room = QR_ERRMSG_SIZE - 1 - used;
        len = len < room ? len : room;
        memcpy(errmsg + used, parts[p], len);
        used += len;
    }
    errmsg[used] = '\0';
}

int qr__errf(char *errmsg, int err, const char *fmt, ...)
{
    if (errmsg != NULL) {
        va_list args;
        va_start(args, fmt);
        (void)vsnprintf(errmsg, QR_ERRMSG_SIZE, fmt, args); /* Truncation keeps the prefix. */
        va_end(args);
    }
    return err;
}

int qr__err_wrapf(char *errmsg, int err, const char *fmt, ...)
{
    if (errmsg == NULL) {
        return err;
    }
    char prefix[QR_ERRMSG_SIZE];
    char inner[QR_ERRMSG_SIZE];
    va_list args;
    va_start(args, fmt);
    (void)vsnprintf(prefix, sizeof(prefix), fmt, args);
    va_end(args);
    memcpy(inner, errmsg, QR_ERRMSG_SIZE);
    inner[QR_ERRMSG_SIZE - 1] = '\0';
    join_colon(errmsg, prefix, inner);
    return err;
}

static int os_code(int errno_value)
{
    switch (errno_value) {
    case ENOMEM:
        return QR_ENOMEM;
    case ENOSPC:
        return QR_ENOSPC;
    case ENOENT:
        return QR_ENOTFOUND;
    case EINVAL:
        return QR_EINVAL;
    case EAGAIN:
        return QR_EBUSY;
    case ETIMEDOUT:
        return QR_ETIMEDOUT;
    case ECANCELED:
        return QR_ECANCELED;
    default:
        return QR_EIO;
    }
}

int qr__err_os(char *errmsg, int errno_value, const char *fmt, ...)
{
    int err = os_code(errno_value);
    if (errmsg != NULL) {
        char context[QR_ERRMSG_SIZE];
        va_list args;
        va_start(args, fmt);
        (void)vsnprintf(context, sizeof(context), fmt, args);
        va_end(args);
        join_colon(errmsg, context, strerror(errno_value));
    }
    return err;
}
