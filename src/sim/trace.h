/*
 * sim/trace.h: the simulator's event trace.
 *
 * Layer: sim. Every event of a run (deliveries, drops, crashes, role changes,
 * commits, client operations, faults) becomes one line stamped with the
 * simulated time. The trace keeps the last QR_SIM_TRACE_LINES lines in a ring
 * for failure reports, folds every line into a running hash (two runs of the
 * same seed must give the same hash), and, when verbose, writes each line to
 * a stream as it happens. It never reads a clock.
 */
#ifndef QR_SIM_TRACE_H
#define QR_SIM_TRACE_H

#include <stdint.h>
#include <stdio.h>

/** Lines kept for the failure report. */
#define QR_SIM_TRACE_LINES 64
/** Longest line kept, terminating NUL included; longer lines are cut. */
#define QR_SIM_TRACE_LINE_SIZE 200

struct qr_sim_trace {
    char lines[QR_SIM_TRACE_LINES][QR_SIM_TRACE_LINE_SIZE]; /* Ring of the latest lines. */
    uint64_t count; /* Lines ever written; the next goes to count % QR_SIM_TRACE_LINES. */
    uint64_t hash;  /* FNV-1a over every line ever written. */
    FILE *verbose;  /* Borrowed; every line is written here too when not NULL. */
};

/** Start an empty trace; `verbose` (may be NULL) is borrowed for the trace's lifetime. */
void qr__trace_init(struct qr_sim_trace *trace, FILE *verbose);

/** Record one event at simulated time `time` (in sim time units). */
void qr__trace_event(struct qr_sim_trace *trace, uint64_t time, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Write the last `lines_max` lines (oldest first) to `out`. */
void qr__trace_dump(const struct qr_sim_trace *trace, FILE *out, size_t lines_max);

#endif /* QR_SIM_TRACE_H */
