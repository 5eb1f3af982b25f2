/*
 * util/log.h: the logging macros used inside libquorum.
 *
 * Layer: util. The level is checked before anything is formatted, so a
 * disabled TRACE line costs one comparison. Lines are "module: message
 * key=value ..."; the installed sink adds the time.
 */
#ifndef QR_UTIL_LOG_H
#define QR_UTIL_LOG_H

#include "quorum/log.h"

extern enum qr_log_level qr__log_level_max;

void qr__log_write(enum qr_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define QR_LOG(level, ...)                       \
    do {                                         \
        if ((level) <= qr__log_level_max) {      \
            qr__log_write((level), __VA_ARGS__); \
        }                                        \
    } while (0)

#define QR_LOG_ERRORF(...) QR_LOG(QR_LOG_ERROR, __VA_ARGS__)
#define QR_LOG_WARNF(...)  QR_LOG(QR_LOG_WARN, __VA_ARGS__)
#define QR_LOG_INFOF(...)  QR_LOG(QR_LOG_INFO, __VA_ARGS__)
#define QR_LOG_DEBUGF(...) QR_LOG(QR_LOG_DEBUG, __VA_ARGS__)
#define QR_LOG_TRACEF(...) QR_LOG(QR_LOG_TRACE, __VA_ARGS__)

#endif /* QR_UTIL_LOG_H */
