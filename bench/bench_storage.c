/*
 * bench_storage: how fast can the write-ahead log make entries durable?
 *
 * One question per program (bench/): appends of fixed-size entries through
 * qr_storage_write with a given batch size, reporting entries/s, fsyncs/s and
 * the p50/p99 latency of one batch (write plus its fdatasync). With --raw it
 * measures the physical limit instead: the same number of bytes a batch of one
 * entry appends, written into a preallocated file and fdatasynced, in a loop,
 * with no storage code at all. bench/storage.sh runs both and compares them.
 * Timing lives here only; tests never assert on time (STYLE §9).
 *
 * Output is one line of key=value pairs, easy to parse from a script.
 * _GNU_SOURCE is for fallocate(2) in the raw mode (the WAL's own preallocation).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "quorum/storage.h"
#include "storage/format.h"
#include "util/alloc.h"

#define BATCHES_MAX    (1u << 20)
#define BATCH_MAX      4096
#define ENTRY_SIZE_MAX 65536
#define RAW_FILE_SIZE  ((off_t)64 << 20)

struct args {
    const char *dir;
    size_t batch;
    size_t entry_size;
    double seconds;
    enum qr_storage_sync sync;
    bool raw;
};

static void usage(FILE *out)
{
    (void)fprintf(out,
                  "usage: bench_storage --dir DIR [--batch N] [--entry-size BYTES] [--seconds S]\n"
                  "                     [--sync always|none] [--raw]\n"
                  "  --dir DIR          an empty or missing directory on the disk to measure\n"
                  "  --batch N          entries per qr_storage_write (default 1, at most %d)\n"
                  "  --entry-size BYTES payload bytes per entry (default 128)\n"
                  "  --seconds S        how long to run (default 3)\n"
                  "  --sync always      fdatasync every batch (default; the durability promise)\n"
                  "  --sync none        UNSAFE: never fdatasync; a power failure loses data\n"
                  "  --raw              measure raw append+fdatasync of a batch-of-1's bytes\n",
                  BATCH_MAX);
}

static int parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.batch = 1, .entry_size = 128, .seconds = 3, .sync = QR_STORAGE_SYNC_ALWAYS};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--raw") == 0) {
            a->raw = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || value == NULL) {
            return -1;
        }
        i++;
        char *end = NULL;
        if (strcmp(arg, "--dir") == 0) {
            a->dir = value;
        } else if (strcmp(arg, "--batch") == 0) {
            a->batch = (size_t)strtoul(value, &end, 10);
        } else if (strcmp(arg, "--entry-size") == 0) {
            a->entry_size = (size_t)strtoul(value, &end, 10);
        } else if (strcmp(arg, "--seconds") == 0) {
            a->seconds = strtod(value, &end);
        } else if (strcmp(arg, "--sync") == 0 && strcmp(value, "always") == 0) {
            a->sync = QR_STORAGE_SYNC_ALWAYS;
        } else if (strcmp(arg, "--sync") == 0 && strcmp(value, "none") == 0) {
            a->sync = QR_STORAGE_SYNC_NONE;
        } else {
            return -1;
        }
        if (end != NULL && *end != '\0') {
            return -1;
        }
    }
    bool ok = a->dir != NULL && a->batch >= 1 && a->batch <= BATCH_MAX && a->entry_size >= 1 &&
              a->entry_size <= ENTRY_SIZE_MAX && a->seconds > 0 && a->seconds <= 3600;
    return ok ? 0 : -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* Cannot fail with this clock. */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double percentile(double *values, size_t count, double p)
{
    qsort(values, count, sizeof(*values), compare_double);
    size_t at = (size_t)(p * (double)(count - 1) + 0.5);
    return values[at];
}

/* Bytes one qr_storage_write of a single entry appends: batch header, entry, hard state. */
static size_t batch_of_one_size(size_t entry_size)
{
    return QR__STORAGE_BATCH_HEADER_SIZE + (size_t)qr__storage_entry_record_size(entry_size) +
           QR__STORAGE_HARD_STATE_RECORD_SIZE;
}

static void report(const char *mode,
                   const struct args *a,
                   size_t batches,
                   uint64_t syncs,
                   double elapsed,
                   double *latencies)
{
    double entries = (double)batches * (double)(a->raw ? 1 : a->batch);
    (void)printf("mode=%s batch=%zu entry_size=%zu sync=%s batches=%zu seconds=%.3f "
                 "entries_per_s=%.0f fsyncs_per_s=%.0f p50_us=%.1f p99_us=%.1f\n",
                 mode, a->raw ? (size_t)1 : a->batch, a->entry_size, qr_storage_sync_name(a->sync),
                 batches, elapsed, entries / elapsed, (double)syncs / elapsed,
                 percentile(latencies, batches, 0.50) * 1e6,
                 percentile(latencies, batches, 0.99) * 1e6);
}

static int run_raw(const struct args *a, double *latencies)
{
    char path[4096];
    (void)snprintf(path, sizeof(path), "%s/raw-fdatasync", a->dir);
    (void)mkdir(a->dir, 0755); /* May exist already. */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || fallocate(fd, 0, 0, RAW_FILE_SIZE) != 0 || fsync(fd) != 0) {
        (void)fprintf(stderr, "bench_storage: %s: %s\n", path, strerror(errno));
        return 1;
    }
    static uint8_t record[ENTRY_SIZE_MAX + 256];
    size_t size = batch_of_one_size(a->entry_size);
    memset(record, 0x5a, size);
    size_t batches = 0;
    off_t offset = 0;
    double start = now_seconds();
    double end = start + a->seconds;
    for (double t = start; t < end && batches < BATCHES_MAX; batches++) {
        if (offset + (off_t)size > RAW_FILE_SIZE) {
            offset = 0; /* Wrap: the blocks stay allocated and written, as in a segment. */
        }
        if (pwrite(fd, record, size, offset) != (ssize_t)size || fdatasync(fd) != 0) {
            (void)fprintf(stderr, "bench_storage: %s: %s\n", path, strerror(errno));
            (void)close(fd);
            return 1;
        }
        offset += (off_t)size;
        double t2 = now_seconds();
        latencies[batches] = t2 - t;
        t = t2;
    }
    double elapsed = now_seconds() - start;
    (void)close(fd);
    (void)unlink(path);
    report("raw", a, batches, batches, elapsed, latencies);
    return 0;
}

static int run_storage(const struct args *a, double *latencies)
{
    struct qr_storage_opts opts;
    qr_storage_opts_default(&opts, 1, 1);
    opts.create = true;
    opts.sync = a->sync;
    struct qr_storage *s = NULL;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    if (qr_storage_open(a->dir, &opts, &s, &rec, errmsg) != 0) {
        (void)fprintf(stderr, "bench_storage: %s\n", errmsg);
        return 1;
    }
    static struct qr_entry entries[BATCH_MAX];
    static uint8_t payload[ENTRY_SIZE_MAX];
    memset(payload, 0x42, a->entry_size);
    struct qr_storage_status before;
    qr_storage_status(s, &before);
    qr_index next = rec.entries_count + 1;
    size_t batches = 0;
    double start = now_seconds();
    double end = start + a->seconds;
    int rv = 0;
    for (double t = start; t < end && batches < BATCHES_MAX && rv == 0; batches++) {
        for (size_t i = 0; i < a->batch; i++) {
            entries[i] = (struct qr_entry){.term = 1,
                                           .index = next + i,
                                           .type = QR_ENTRY_NORMAL,
                                           .data = {payload, a->entry_size}};
        }
        /* The commit index moves with every batch, as it does on a leader. */
        struct qr_storage_batch b = {.entries = entries,
                                     .entries_count = a->batch,
                                     .has_hard_state = true,
                                     .hard_state = {1, 1, next}};
        rv = qr_storage_write(s, &b);
        next += a->batch;
        double t2 = now_seconds();
        latencies[batches] = t2 - t;
        t = t2;
    }
    double elapsed = now_seconds() - start;
    struct qr_storage_status after;
    qr_storage_status(s, &after);
    if (rv != 0) {
        (void)fprintf(stderr, "bench_storage: %s\n", qr_storage_errmsg(s));
    }
    qr_storage_close(s);
    if (rv == 0) {
        report("storage", a, batches, after.syncs_count - before.syncs_count, elapsed, latencies);
    }
    return rv == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        usage(argc > 1 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc > 1 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    double *latencies = qr_malloc(BATCHES_MAX * sizeof(double));
    if (latencies == NULL) {
        (void)fprintf(stderr, "bench_storage: out of memory\n");
        return 1;
    }
    int rv = a.raw ? run_raw(&a, latencies) : run_storage(&a, latencies);
    qr_free(latencies);
    return rv;
}
