/*
 * tests/lib/test_alloc.c: counting allocator with failure injection.
 */
#include "test_alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "quorum/alloc.h"

static size_t live_count;
static size_t calls_count;
static size_t fail_at;
static bool fail_sticky;

static bool should_fail(void)
{
    calls_count++;
    if (fail_at == 0) {
        return false;
    }
    if (calls_count == fail_at) {
        return true;
    }
    return fail_sticky && calls_count > fail_at;
}

static void *count_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (should_fail()) {
        return NULL;
    }
    void *p = malloc(size == 0 ? 1 : size);
    if (p != NULL) {
        live_count++;
    }
    return p;
}

static void *count_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    if (should_fail()) {
        return NULL;
    }
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    if (p != NULL) {
        live_count++;
    }
    return p;
}

static void *count_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (should_fail()) {
        return NULL;
    }
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p != NULL && ptr == NULL) {
        live_count++;
    }
    return p;
}

static void count_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL) {
        live_count--;
        free(ptr);
    }
}

void test_alloc_install(void)
{
    static const struct qr_allocator allocator = {
        .ctx = NULL,
        .malloc = count_malloc,
        .calloc = count_calloc,
        .realloc = count_realloc,
        .free = count_free,
    };
    live_count = 0;
    calls_count = 0;
    fail_at = 0;
    fail_sticky = false;
    qr_set_allocator(&allocator);
}

size_t test_alloc_uninstall(void)
{
    qr_set_allocator(NULL);
    return live_count;
}

size_t test_alloc_live_count(void)
{
    return live_count;
}

size_t test_alloc_calls_count(void)
{
    return calls_count;
}

void test_alloc_fail_at(size_t n, bool sticky)
{
    fail_at = n == 0 ? 0 : calls_count + n;
    fail_sticky = sticky;
}

int test_alloc_setup(void **state)
{
    (void)state;
    test_alloc_install();
    return 0;
}

int test_alloc_teardown(void **state)
{
    (void)state;
    size_t leaked = test_alloc_uninstall();
    assert_int_equal(leaked, 0);
    return 0;
}
