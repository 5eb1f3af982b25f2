/*
 * tests/lib/test_alloc.h: a counting allocator for tests.
 *
 * Installs itself with qr_set_allocator. It counts live allocations so a test
 * can assert that nothing is outstanding at teardown, and it can fail the Nth
 * allocation (once, or from then on) to drive out-of-memory paths.
 */
#ifndef QR_TEST_ALLOC_H
#define QR_TEST_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Installs the counting allocator and resets its counters. */
void test_alloc_install(void);
/* Restores the default allocator; returns how many blocks were still live. */
size_t test_alloc_uninstall(void);
/* Live blocks right now. */
size_t test_alloc_live_count(void);
/* Allocations made since install. */
size_t test_alloc_calls_count(void);
/* Fail allocation number n (1-based, counted from now); for good when `sticky`. 0 disables. */
void test_alloc_fail_at(size_t n, bool sticky);

/* cmocka group setup/teardown that install the allocator and assert no leak. */
int test_alloc_setup(void **state);
int test_alloc_teardown(void **state);

#endif /* QR_TEST_ALLOC_H */
