/*
 * quorum/alloc.h: the replaceable allocator.
 *
 * Every allocation libquorum makes goes through the functions installed here,
 * so an embedding program can account for memory and tests can inject
 * failures. Install an allocator before creating any libquorum object and do
 * not change it while objects exist.
 */
#ifndef QUORUM_ALLOC_H
#define QUORUM_ALLOC_H

#include "quorum/types.h"

/** A set of allocation functions with the semantics of malloc, calloc, realloc and free. */
struct qr_allocator {
    void *ctx;                                             /* Passed back to every call. */
    void *(*malloc)(void *ctx, size_t size);               /* NULL on failure. */
    void *(*calloc)(void *ctx, size_t count, size_t size); /* NULL on failure. */
    void *(*realloc)(void *ctx, void *ptr, size_t size);   /* NULL on failure. */
    void (*free)(void *ctx, void *ptr);                    /* Accepts NULL. */
};

/**
 * Install an allocator for all later allocations, or restore the C library's
 * with NULL. Not thread-safe: call it before any other libquorum function.
 * @param allocator  Borrows; the struct is copied.
 */
QR_API void qr_set_allocator(const struct qr_allocator *allocator);

#endif /* QUORUM_ALLOC_H */
