/*
 * quorum/types.h: scalar types and macros shared by every public header.
 *
 * Part of the public API of libquorum. It declares only types and macros; it
 * has no functions and never includes an operating-system header.
 */
#ifndef QUORUM_TYPES_H
#define QUORUM_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define QR_API __attribute__((visibility("default")))
#else
#define QR_API
#endif

/** A Raft term. Terms start at 0 (no election yet) and only grow. */
typedef uint64_t qr_term;
/** A log position. Raft indexes start at 1; 0 means "no entry". */
typedef uint64_t qr_index;
/** A node id. 0 is reserved for "no node" (no vote, no leader). */
typedef uint64_t qr_node_id;

/** Size of every error-message buffer in the library, terminating NUL included. */
#define QR_ERRMSG_SIZE 256

/** A byte range. Who owns `base` is stated by every function that takes one. */
struct qr_buf {
    uint8_t *base; /* First byte; may be NULL only when len is 0. */
    size_t len;    /* Size in bytes. */
};

#endif /* QUORUM_TYPES_H */
