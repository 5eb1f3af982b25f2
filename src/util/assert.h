/*
 * util/assert.h: assertions that stay on in every build.
 *
 * Layer: util (no dependencies). QR_ASSERT is for programmer errors only;
 * anything that arrives from a peer, a client, the disk or a flag gets an
 * error code instead. A failed assertion prints the expression, file:line,
 * function and the context a registered hook adds, then aborts; tests route
 * failures elsewhere with qr__assert_set_fail_hook().
 */
#ifndef QR_UTIL_ASSERT_H
#define QR_UTIL_ASSERT_H

#include <stdbool.h>
#include <stddef.h>

/* Writes extra context (node id, term, seed) into buf; called on failure only. */
typedef void (*qr__assert_context_cb)(void *ctx, char *buf, size_t buf_size);
/* Replaces the abort on failure (tests only); must not return normally in production use. */
typedef void (*qr__assert_fail_cb)(const char *expr, const char *file, int line, const char *func);

/* Never returns: a test's fail hook must leave by longjmp (cmocka's mock_assert does). */
__attribute__((noreturn)) void
qr__assert_fail(const char *expr, const char *file, int line, const char *func);
void qr__assert_set_context_hook(qr__assert_context_cb fn, void *ctx);
void qr__assert_set_fail_hook(qr__assert_fail_cb fn);

#define QR_ASSERT(cond)                                           \
    do {                                                          \
        if (!(cond)) {                                            \
            qr__assert_fail(#cond, __FILE__, __LINE__, __func__); \
        }                                                         \
    } while (0)

#ifdef QR_DEBUG
#define QR_DEBUG_ASSERT(cond) QR_ASSERT(cond)
#define QR_NEVER(cond) \
    ((cond) ? (qr__assert_fail(#cond, __FILE__, __LINE__, __func__), true) : false)
#else
#define QR_DEBUG_ASSERT(cond) \
    do {                      \
        (void)sizeof(cond);   \
    } while (0)
#define QR_NEVER(cond) ((cond) ? true : false)
#endif

#endif /* QR_UTIL_ASSERT_H */
