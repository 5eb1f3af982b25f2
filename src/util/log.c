/*
 * util/log.c: the log sink registry.
 *
 * Layer: util. It formats into a fixed buffer (long lines are cut, never
 * allocated for) and hands the line to the sink. It never prints by itself.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

#define LOG_LINE_SIZE 1024

enum qr_log_level qr__log_level_max = QR_LOG_ERROR;
static qr_log_cb sink_fn;
static void *sink_ctx;

void qr_log_set(qr_log_cb fn, void *ctx, enum qr_log_level level_max)
{
    sink_fn = fn;
    sink_ctx = ctx;
    /* With no sink nothing is formatted at all. */
    qr__log_level_max = fn != NULL ? level_max : QR_LOG_ERROR;
}

const char *qr_log_level_name(enum qr_log_level level)
{
    switch (level) {
    case QR_LOG_ERROR:
        return "ERROR";
    case QR_LOG_WARN:
        return "WARN";
    case QR_LOG_INFO:
        return "INFO";
    case QR_LOG_DEBUG:
        return "DEBUG";
    case QR_LOG_TRACE:
        return "TRACE";
    }
    return "?";
}

void qr__log_write(enum qr_log_level level, const char *fmt, ...)
{
    if (sink_fn == NULL) {
        return;
    }
    char line[LOG_LINE_SIZE];
    va_list args;
    va_start(args, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, args); /* Truncation is acceptable for a log line. */
    va_end(args);
    sink_fn(sink_ctx, level, line);
}
