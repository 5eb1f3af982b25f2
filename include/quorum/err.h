/*
 * quorum/err.h: the one table of error codes.
 *
 * Every fallible call in libquorum returns 0 on success or one of the negative
 * codes below. The X-macro table generates the enum, qr_strerror() and
 * qr_err_name(); add a code here and nowhere else. Codes are stable: a code's
 * number never changes once released, so new codes go at the end.
 */
#ifndef QUORUM_ERR_H
#define QUORUM_ERR_H

#include "quorum/types.h"

/* X(name, number, description) */
#define QR_ERR_TABLE(X)                                                         \
    X(QR_EINVAL, 1, "invalid argument")                                         \
    X(QR_ENOMEM, 2, "out of memory")                                            \
    X(QR_EBUSY, 3, "limit reached, try again later")                            \
    X(QR_EFATAL, 4, "unrecoverable failure earlier, the object must be closed") \
    X(QR_EINTERNAL, 5, "internal error")                                        \
    X(QR_ECANCELED, 6, "operation canceled")                                    \
    X(QR_EIO, 7, "input/output error")                                          \
    X(QR_ENOSPC, 8, "no space left on device")                                  \
    X(QR_ECORRUPT, 9, "corrupt data")                                           \
    X(QR_EPROTO, 10, "protocol error")                                          \
    X(QR_ENOTLEADER, 11, "not the leader")                                      \
    X(QR_ETOOBIG, 12, "too big")                                                \
    X(QR_ENOTFOUND, 13, "not found")                                            \
    X(QR_ENOVOTERS, 14, "configuration has no voters")                          \
    X(QR_EDUPVOTER, 15, "voter id appears twice")                               \
    X(QR_EBADWEIGHT, 16, "voter weight out of range")                           \
    X(QR_ETOOMANYVOTERS, 17, "too many voters")                                 \
    X(QR_ETOOFEWNODES, 18, "too few nodes for the requested fault tolerance")   \
    X(QR_ENOINTERSECT, 19, "quorums of this configuration need not intersect")  \
    X(QR_EBADTHRESHOLD, 20, "quorum threshold out of range")                    \
    X(QR_EBADID, 21, "invalid node id")                                         \
    X(QR_EVERSION, 22, "unsupported format or protocol version")                \
    X(QR_ESHUTDOWN, 23, "shutting down")                                        \
    X(QR_ETIMEDOUT, 24, "timed out")

/** Error codes: always negative when returned. */
enum qr_err {
    QR_OK = 0,
#define QR__ERR_ENUM(name, number, text) name = -(number),
    QR_ERR_TABLE(QR__ERR_ENUM)
#undef QR__ERR_ENUM
};

/**
 * A human-readable description of an error code.
 * @param err  0 or a QR_E* code.
 * @return A static string; "unknown error" for a code not in the table. Any thread.
 */
QR_API const char *qr_strerror(int err);

/**
 * The symbolic name of an error code, such as "QR_EINVAL".
 * @param err  0 or a QR_E* code.
 * @return A static string; "QR_OK" for 0, "QR_E?" for a code not in the table. Any thread.
 */
QR_API const char *qr_err_name(int err);

#endif /* QUORUM_ERR_H */
