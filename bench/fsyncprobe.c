/*
 * bench/fsyncprobe.c: how many durable appends the disk under a directory takes.
 *
 * W writer processes (fork), each appending B-byte blocks to a file of its own and calling
 * fdatasync after every block, back to back for S seconds: what a write-ahead log with
 * sync=always asks of the disk when every append is its own batch. With W=3 it is what
 * three replicas on one machine ask of a disk they share. Prints one key=value line:
 * flushes per second in all and per writer, and the median and 99th percentile latency
 * of one append+fdatasync, over all writers.
 *
 * Bounded: at most S seconds (<= 60) and 1,000,000 appends per writer; the files are
 * removed at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/err.h"
#include "util/parse.h"

#define WRITERS_MAX   16
#define SECONDS_MAX   60.0
#define APPENDS_MAX   1000000u
#define BLOCK_MAX     (1u << 20)
#define PATH_SIZE_MAX 4096

struct args {
    const char *dir;
    uint64_t writers;
    double seconds;
    uint64_t block_size;
};

/* Shared with the writers (MAP_SHARED): each fills its own slice. */
struct shared {
    uint64_t counts[WRITERS_MAX];
    uint32_t latencies_us[WRITERS_MAX][APPENDS_MAX];
};

static uint64_t now_ns(void)
{
    struct timespec t;
    (void)clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void usage(FILE *out)
{
    (void)fprintf(out,
                  "usage: fsyncprobe --dir DIR [--writers W] [--seconds S] [--block-size B]\n"
                  "W processes (default 1, at most %d) each append B-byte blocks (default\n"
                  "4096) to a file of their own under DIR, with fdatasync after every one,\n"
                  "back to back for S seconds (default 3, at most %.0f): the flushes a log\n"
                  "with sync=always can get from that disk.\n"
                  "Output: flushes_per_s flushes_per_s_per_writer p50_us p99_us writers.\n"
                  "Exit: 0, 1 on an I/O error, 2 on usage errors.\n",
                  WRITERS_MAX, SECONDS_MAX);
}

static int parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.writers = 1, .seconds = 3.0, .block_size = 4096};
    char errmsg[QR_ERRMSG_SIZE];
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *v = NULL;
        int rv = 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
        if (qr__flag_is(argv[i], "--dir")) {
            a->dir = qr__flag_value(argc, argv, &i, "--dir");
            rv = a->dir == NULL ? -1 : 0;
        } else if (qr__flag_is(argv[i], "--writers")) {
            v = qr__flag_value(argc, argv, &i, "--writers");
            rv = v == NULL ? -1 : qr__parse_u64(v, 1, WRITERS_MAX, &a->writers, errmsg);
        } else if (qr__flag_is(argv[i], "--seconds")) {
            v = qr__flag_value(argc, argv, &i, "--seconds");
            rv = v == NULL ? -1 : qr__parse_double(v, 0.1, SECONDS_MAX, &a->seconds, errmsg);
        } else if (qr__flag_is(argv[i], "--block-size")) {
            v = qr__flag_value(argc, argv, &i, "--block-size");
            rv = v == NULL ? -1 : qr__parse_u64(v, 1, BLOCK_MAX, &a->block_size, errmsg);
        } else {
            (void)fprintf(stderr, "fsyncprobe: unknown flag '%s'\n", argv[i]);
            return -1;
        }
        if (rv != 0) {
            (void)fprintf(stderr, "fsyncprobe: %s: %s\n", flag,
                          v == NULL ? "needs a value" : errmsg);
            return -1;
        }
    }
    if (a->dir == NULL) {
        (void)fprintf(stderr, "fsyncprobe: --dir is required\n");
        return -1;
    }
    return 0;
}

/* One writer: append and flush until the time is up. @return 0, or 1 on an I/O error. */
static int writer_run(const struct args *a, size_t w, struct shared *sh)
{
    char path[PATH_SIZE_MAX];
    int n = snprintf(path, sizeof(path), "%s/fsyncprobe.%d.%zu", a->dir, (int)getppid(), w);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        (void)fprintf(stderr, "fsyncprobe: --dir is too long\n");
        return 1;
    }
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        (void)fprintf(stderr, "fsyncprobe: %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint8_t *block = qr_malloc(a->block_size);
    int rv = block == NULL ? 1 : 0;
    if (block != NULL) {
        memset(block, 'q', a->block_size);
    }
    uint64_t end = now_ns() + (uint64_t)(a->seconds * 1e9);
    uint64_t count = 0;
    for (uint64_t t = now_ns(); rv == 0 && t < end && count < APPENDS_MAX; t = now_ns()) {
        ssize_t written = pwrite(fd, block, a->block_size, (off_t)(count * a->block_size));
        const char *failure = NULL;
        if (written < 0) {
            failure = strerror(errno);
        } else if ((uint64_t)written != a->block_size) {
            failure = "short write";
        } else if (fdatasync(fd) != 0) {
            failure = strerror(errno);
        }
        if (failure != NULL) {
            (void)fprintf(stderr, "fsyncprobe: %s: %s\n", path, failure);
            rv = 1;
            break;
        }
        uint64_t us = (now_ns() - t) / 1000u;
        sh->latencies_us[w][count++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    }
    sh->counts[w] = count;
    qr_free(block);
    (void)close(fd);
    (void)unlink(path);
    return rv;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int report(const struct args *a, struct shared *sh)
{
    uint64_t total = 0;
    for (size_t w = 0; w < a->writers; w++) {
        total += sh->counts[w];
    }
    if (total == 0) {
        (void)fprintf(stderr, "fsyncprobe: no append finished\n");
        return 1;
    }
    uint32_t *all = qr_malloc(total * sizeof(*all));
    if (all == NULL) {
        (void)fprintf(stderr, "fsyncprobe: out of memory\n");
        return 1;
    }
    size_t at = 0;
    for (size_t w = 0; w < a->writers; w++) {
        memcpy(all + at, sh->latencies_us[w], sh->counts[w] * sizeof(*all));
        at += sh->counts[w];
    }
    qsort(all, total, sizeof(*all), compare_u32);
    double per_s = (double)total / a->seconds;
    (void)printf("flushes_per_s=%.0f flushes_per_s_per_writer=%.0f p50_us=%" PRIu32
                 " p99_us=%" PRIu32 " writers=%" PRIu64 " block_size=%" PRIu64 "\n",
                 per_s, per_s / (double)a->writers, all[total / 2], all[total * 99 / 100],
                 a->writers, a->block_size);
    qr_free(all);
    return 0;
}

int main(int argc, char **argv)
{
    struct args a;
    int rv = parse_args(argc, argv, &a);
    if (rv != 0) {
        usage(rv > 0 ? stdout : stderr);
        return rv > 0 ? 0 : 2;
    }
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        (void)fprintf(stderr, "fsyncprobe: mmap: %s\n", strerror(errno));
        return 1;
    }
    pid_t pids[WRITERS_MAX];
    size_t started = 0;
    int failed = 0;
    for (size_t w = 0; w < a.writers; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            _exit(writer_run(&a, w, sh));
        }
        if (pids[w] < 0) {
            (void)fprintf(stderr, "fsyncprobe: fork: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        started++;
    }
    for (size_t w = 0; w < started; w++) {
        int status = 0;
        if (waitpid(pids[w], &status, 0) != pids[w] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            failed = 1;
        }
    }
    rv = failed ? 1 : report(&a, sh);
    (void)munmap(sh, sizeof(*sh));
    return rv;
}
