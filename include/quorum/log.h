/*
 * quorum/log.h: where libquorum's log lines go.
 *
 * Library code never prints. It hands each line to a sink that the host
 * installs; the default sink drops everything. The sink adds the time stamp,
 * which keeps the consensus core free of clocks.
 */
#ifndef QUORUM_LOG_H
#define QUORUM_LOG_H

#include "quorum/types.h"

/** Log levels, most severe first. */
enum qr_log_level {
    QR_LOG_ERROR = 0, /* An operator must act. */
    QR_LOG_WARN = 1,  /* Degraded but recovering. */
    QR_LOG_INFO = 2,  /* Rare state changes: role, term, membership, snapshot. */
    QR_LOG_DEBUG = 3, /* One line per batch. */
    QR_LOG_TRACE = 4, /* One line per message. */
};

/**
 * A log sink. `line` is one line without a trailing newline, formatted as
 * "module: message key=value ...".
 * @param line  Borrowed for the duration of the call.
 */
typedef void (*qr_log_cb)(void *ctx, enum qr_log_level level, const char *line);

/**
 * Install the sink and the most verbose level it wants; NULL restores the
 * default sink, which drops everything. Not thread-safe: call it at start-up.
 * @param ctx  Keeps: passed to every call of `fn` until the sink is replaced.
 */
QR_API void qr_log_set(qr_log_cb fn, void *ctx, enum qr_log_level level_max);

/** The name of a level, e.g. "INFO". Returns a static string. */
QR_API const char *qr_log_level_name(enum qr_log_level level);

#endif /* QUORUM_LOG_H */
