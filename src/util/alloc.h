/*
 * util/alloc.h: allocation for all of libquorum.
 *
 * Layer: util. Every allocation goes through these functions so that the
 * allocator can be replaced (quorum/alloc.h) and tests can fail the Nth call.
 * A direct malloc() anywhere else is a tidy failure.
 */
#ifndef QR_UTIL_ALLOC_H
#define QR_UTIL_ALLOC_H

#include <stddef.h>

#include "quorum/alloc.h"

void *qr_malloc(size_t size);
void *qr_calloc(size_t count, size_t size);
void *qr_realloc(void *ptr, size_t size);
void qr_free(void *ptr);
/* Copy of a NUL-terminated string; NULL on failure. */
char *qr_strdup(const char *s);

#endif /* QR_UTIL_ALLOC_H */
