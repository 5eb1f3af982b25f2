/*
 * util/alloc.c: the default allocator and the hook to replace it.
 *
 * Layer: util. The only file allowed to call malloc() and free() directly.
 */
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

static void *default_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void *default_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    return calloc(count, size);
}

static void *default_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void default_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static const struct qr_allocator default_allocator = {
    .ctx = NULL,
    .malloc = default_malloc,
    .calloc = default_calloc,
    .realloc = default_realloc,
    .free = default_free,
};

static struct qr_allocator current = {
    .ctx = NULL,
    .malloc = default_malloc,
    .calloc = default_calloc,
    .realloc = default_realloc,
    .free = default_free,
};

void qr_set_allocator(const struct qr_allocator *allocator)
{
    current = allocator != NULL ? *allocator : default_allocator;
}

void *qr_malloc(size_t size)
{
    return current.malloc(current.ctx, size);
}

void *qr_calloc(size_t count, size_t size)
{
    return current.calloc(current.ctx, count, size);
}

void *qr_realloc(void *ptr, size_t size)
{
    return current.realloc(current.ctx, ptr, size);
}

void qr_free(void *ptr)
{
    current.free(current.ctx, ptr);
}

char *qr_strdup(const char *s)
{
    size_t size = strlen(s) + 1;
    char *copy = qr_malloc(size);
    if (copy != NULL) {
        memcpy(copy, s, size);
    }
    return copy;
}
