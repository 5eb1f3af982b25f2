/*
 * sim/trace.c: the simulator's event trace. See trace.h.
 *
 * Layer: sim. Lines are formatted into the ring slot directly, so recording
 * an event costs one snprintf and a hash over the line; nothing allocates.
 */
#include "sim/trace.h"

#include <stdarg.h>
#include <string.h>

#include "util/assert.h"

void qr__trace_init(struct qr_sim_trace *trace, FILE *verbose)
{
    QR_ASSERT(trace != NULL);
    memset(trace, 0, sizeof(*trace));
    trace->hash = UINT64_C(0xcbf29ce484222325);
    trace->verbose = verbose;
}

void qr__trace_event(struct qr_sim_trace *trace, uint64_t time, const char *fmt, ...)
{
    QR_ASSERT(trace != NULL && fmt != NULL);
    char *line = trace->lines[trace->count % QR_SIM_TRACE_LINES];
    int prefix = snprintf(line, QR_SIM_TRACE_LINE_SIZE, "%8llu.%02llu ",
                          (unsigned long long)(time / 100), (unsigned long long)(time % 100));
    QR_ASSERT(prefix > 0 && prefix < QR_SIM_TRACE_LINE_SIZE);
    va_list args;
    va_start(args, fmt);
    (void)vsnprintf(line + prefix, QR_SIM_TRACE_LINE_SIZE - (size_t)prefix, fmt, args);
    va_end(args);
    for (const char *p = line; *p != '\0'; p++) {
        trace->hash ^= (uint8_t)*p;
        trace->hash *= UINT64_C(0x100000001b3);
    }
    trace->hash ^= '\n';
    trace->hash *= UINT64_C(0x100000001b3);
    trace->count++;
    if (trace->verbose != NULL) {
        (void)fprintf(trace->verbose, "%s\n", line);
    }
}

void qr__trace_dump(const struct qr_sim_trace *trace, FILE *out, size_t lines_max)
{
    QR_ASSERT(trace != NULL && out != NULL);
    uint64_t kept = trace->count < QR_SIM_TRACE_LINES ? trace->count : QR_SIM_TRACE_LINES;
    if (lines_max < kept) {
        kept = lines_max;
    }
    for (uint64_t i = trace->count - kept; i < trace->count; i++) {
        (void)fprintf(out, "  %s\n", trace->lines[i % QR_SIM_TRACE_LINES]);
    }
}
