/*
 * util/assert.c: the failure path of QR_ASSERT.
 *
 * Layer: util. It prints one report on stderr and aborts, unless a test has
 * installed a fail hook. It must never allocate: it may run with the heap
 * already broken.
 */
#include "util/assert.h"

#include <stdio.h>
#include <stdlib.h>

static qr__assert_context_cb context_fn;
static void *context_ctx;
static qr__assert_fail_cb fail_fn;

void qr__assert_set_context_hook(qr__assert_context_cb fn, void *ctx)
{
    context_fn = fn;
    context_ctx = ctx;
}

void qr__assert_set_fail_hook(qr__assert_fail_cb fn)
{
    fail_fn = fn;
}

void qr__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    if (fail_fn != NULL) {
        fail_fn(expr, file, line, func);
        abort(); /* The hook should not return; if it does, stop here all the same. */
    }
    char context[256] = {0};
    if (context_fn != NULL) {
        context_fn(context_ctx, context, sizeof(context));
        context[sizeof(context) - 1] = '\0';
    }
    (void)fprintf(stderr, "assertion failed: %s at %s:%d in %s()%s%s\n", expr, file, line, func,
                  context[0] != '\0' ? " " : "", context);
    (void)fflush(stderr); /* Best effort: we are about to abort anyway. */
    abort();
}
