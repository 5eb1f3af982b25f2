/*
 * quorum-sim: the deterministic cluster simulator's command line.
 *
 * main() only: it parses flags, runs one seed or a sweep of seeds through
 * src/sim, prints a summary and maps the outcome to the exit status
 * (0 every seed passed, 1 a check failed, 2 bad usage). A failing seed's
 * report, including the command that replays it, comes from src/sim.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quorum/err.h"
#include "sim/sim.h"
#include "util/parse.h"

#define EXIT_OK          0
#define EXIT_FAILURE_RUN 1
#define EXIT_USAGE       2
/* Most seeds one invocation sweeps. */
#define SEEDS_MAX UINT64_C(100000000)
/* Failures reported in full in a sweep; later ones get one line each. */
#define FULL_REPORTS_MAX 1

/* What a crash handler prints: the seed being run and how to replay it. Written before each
 * seed, read only by the handler. */
static char crash_note[256];
static size_t crash_note_len;

struct args {
    bool is_help;
    uint64_t seed;
    uint64_t seeds_count;
    struct qr_sim_opts opts;
};

static void usage(FILE *out)
{
    (void)fprintf(
        out,
        "usage: quorum-sim [options]\n"
        "\n"
        "Runs a simulated quorum cluster in simulated time with faults, checks safety after\n"
        "every event, liveness after the faults stop, and the client history for\n"
        "linearizability. The same options always give the same run.\n"
        "\n"
        "options:\n"
        "  --seed S        seed of the (first) run (default 1)\n"
        "  --seeds N       run N seeds from S and print seeds/s (default 1)\n"
        "  --nodes N       initial members: 3, 5 or 7 (default: chosen by each seed)\n"
        "  --ticks T       ticks of the fault phase, 1 ... %d (default %d)\n"
        "  --faults F      all, none, or a comma list of: loss, delay, dup, reorder,\n"
        "                  partition, oneway, bridge, crash, slowdisk, skew, member,\n"
        "                  transfer. 'all' (default) lets each seed pick a subset; a list\n"
        "                  enables exactly the faults named\n"
        "  --verbose       print every event of the run\n"
        "  --inject-bug B  plant a bug in the simulator's own driver to see the checkers\n"
        "                  catch it: stale-read or amnesia\n"
        "  -h, --help      this text\n"
        "\n"
        "exit status: 0 every seed passed, 1 a check failed, 2 bad usage\n",
        QR_SIM_TICKS_MAX, QR_SIM_TICKS_DEFAULT);
}

static int parse_value(struct args *a, const char *flag, const char *value, char *errmsg)
{
    uint64_t v = 0;
    if (strcmp(flag, "--seed") == 0) {
        return qr__parse_u64(value, 0, UINT64_MAX, &a->seed, errmsg);
    }
    if (strcmp(flag, "--seeds") == 0) {
        return qr__parse_u64(value, 1, SEEDS_MAX, &a->seeds_count, errmsg);
    }
    if (strcmp(flag, "--nodes") == 0) {
        int rv = qr__parse_u64(value, 3, 7, &v, errmsg);
        if (rv == 0 && v % 2 == 0) {
            rv = QR_EINVAL;
        }
        if (rv != 0) {
            (void)snprintf(errmsg, QR_ERRMSG_SIZE, "--nodes must be 3, 5 or 7, not '%.20s'", value);
        }
        a->opts.nodes_count = (uint32_t)v;
        return rv;
    }
    if (strcmp(flag, "--ticks") == 0) {
        return qr__parse_u64(value, 1, QR_SIM_TICKS_MAX, &a->opts.ticks, errmsg);
    }
    if (strcmp(flag, "--faults") == 0) {
        a->opts.is_faults_exact = strcmp(value, "all") != 0;
        return qr__sim_faults_parse(value, &a->opts.faults, errmsg);
    }
    if (strcmp(value, "stale-read") == 0) {
        a->opts.bug = QR_SIM_BUG_STALE_READ;
        return 0;
    }
    if (strcmp(value, "amnesia") == 0) {
        a->opts.bug = QR_SIM_BUG_AMNESIA;
        return 0;
    }
    (void)snprintf(errmsg, QR_ERRMSG_SIZE, "--inject-bug takes stale-read or amnesia, not '%.20s'",
                   value);
    return QR_EINVAL;
}

static int parse_args(int argc, char **argv, struct args *a, char *errmsg)
{
    static const char *const valued[] = {"--seed",  "--seeds",  "--nodes",
                                         "--ticks", "--faults", "--inject-bug"};
    memset(a, 0, sizeof(*a));
    a->seed = 1;
    a->seeds_count = 1;
    a->opts.faults = QR_SIM_FAULTS_ALL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            a->is_help = true;
            return 0;
        }
        if (strcmp(arg, "--verbose") == 0) {
            a->opts.trace_out = stdout;
            continue;
        }
        size_t k = 0;
        while (k < sizeof(valued) / sizeof(valued[0]) && !qr__flag_is(arg, valued[k])) {
            k++;
        }
        if (k == sizeof(valued) / sizeof(valued[0])) {
            (void)snprintf(errmsg, QR_ERRMSG_SIZE, "unknown option '%.40s' (see quorum-sim --help)",
                           arg);
            return QR_EINVAL;
        }
        const char *value = qr__flag_value(argc, argv, &i, valued[k]);
        if (value == NULL) {
            (void)snprintf(errmsg, QR_ERRMSG_SIZE, "%s needs a value", valued[k]);
            return QR_EINVAL;
        }
        int rv = parse_value(a, valued[k], value, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static double seconds_now(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* Cannot fail with a valid clock id. */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_pass(uint64_t seed, const struct qr_sim_result *r)
{
    char faults[128];
    qr__sim_faults_format(r->faults, faults, sizeof(faults));
    static const char *const verdicts[] = {"ok", "violation", "unknown"};
    (void)printf("quorum-sim: seed %llu passed: nodes=%u faults=%s ticks=%llu events=%llu "
                 "delivered=%llu dropped=%llu crashes=%llu elections=%llu snapshots=%llu "
                 "config_changes=%llu commit=%llu ops=%llu/%llu/%llu (done/indeterminate/failed) "
                 "linearizable=%s trace=%016llx\n",
                 (unsigned long long)seed, (unsigned)r->nodes_count, faults,
                 (unsigned long long)r->ticks, (unsigned long long)r->events_count,
                 (unsigned long long)r->messages_delivered, (unsigned long long)r->messages_dropped,
                 (unsigned long long)r->crashes, (unsigned long long)r->elections,
                 (unsigned long long)r->snapshots_installed, (unsigned long long)r->config_changes,
                 (unsigned long long)r->commit_index_max, (unsigned long long)r->ops_completed,
                 (unsigned long long)r->ops_indeterminate, (unsigned long long)r->ops_failed,
                 verdicts[r->lin_verdict >= 0 && r->lin_verdict <= 2 ? r->lin_verdict : 2],
                 (unsigned long long)r->trace_hash);
}

/* A crash inside a run (an assertion, a sanitizer abort, heap corruption) would otherwise
 * lose the seed in the middle of a sweep: say which one it was, then die as before. */
static void on_crash(int signal_number)
{
    (void)signal_number;
    (void)write(STDERR_FILENO, crash_note, crash_note_len); /* Nothing to do if it fails. */
    (void)raise(signal_number); /* SA_RESETHAND restored the default action. */
}

static void crash_handler_install(void)
{
    static const int signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_crash;
    sa.sa_flags = (int)SA_RESETHAND;
    (void)sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        (void)sigaction(signals[i], &sa, NULL); /* Best effort: only the note is lost. */
    }
}

static void crash_note_set(const struct qr_sim_opts *opts)
{
    /* The same options as this invocation, with this seed: that replays the run. */
    char faults[128] = "";
    if (opts->is_faults_exact) {
        (void)snprintf(faults, sizeof(faults), " --faults ");
        size_t at = strlen(faults); /* Format the list after the flag and its space. */
        qr__sim_faults_format(opts->faults, faults + at, sizeof(faults) - at);
    }
    char nodes[32] = "";
    if (opts->nodes_count != 0) {
        (void)snprintf(nodes, sizeof(nodes), " --nodes %u", (unsigned)opts->nodes_count);
    }
    char ticks[32] = "";
    if (opts->ticks != 0) {
        (void)snprintf(ticks, sizeof(ticks), " --ticks %llu", (unsigned long long)opts->ticks);
    }
    static const char *const bugs[] = {"", " --inject-bug stale-read", " --inject-bug amnesia"};
    int n = snprintf(crash_note, sizeof(crash_note),
                     "quorum-sim: seed %llu crashed; replay: quorum-sim --seed %llu%s%s%s%s\n",
                     (unsigned long long)opts->seed, (unsigned long long)opts->seed, nodes, ticks,
                     faults, bugs[opts->bug <= QR_SIM_BUG_AMNESIA ? opts->bug : 0]);
    crash_note_len = n > 0 && (size_t)n < sizeof(crash_note) ? (size_t)n : 0;
}

struct sweep_stats {
    uint64_t passed;
    uint64_t failed;
    uint64_t unknown;
    uint64_t ops;
};

static int run_sweep(struct args *a)
{
    struct sweep_stats s = {0, 0, 0, 0};
    double start = seconds_now();
    for (uint64_t k = 0; k < a->seeds_count; k++) {
        struct qr_sim_opts opts = a->opts;
        opts.seed = a->seed + k;
        opts.report_out = s.failed < FULL_REPORTS_MAX ? stdout : NULL;
        struct qr_sim_result r;
        crash_note_set(&opts);
        int rv = qr__sim_run(&opts, &r);
        if (rv != 0) {
            (void)fprintf(stderr, "quorum-sim: seed %llu: simulator error %s (%s); replay: %s\n",
                          (unsigned long long)opts.seed, qr_err_name(rv), qr_strerror(rv),
                          r.replay);
            return EXIT_FAILURE_RUN;
        }
        if (r.is_failed) {
            s.failed++;
            if (opts.report_out == NULL) {
                (void)printf("quorum-sim: seed %llu FAILED: %s: %s; replay: %s\n",
                             (unsigned long long)opts.seed, r.check, r.details, r.replay);
            }
        } else {
            s.passed++;
            s.unknown += r.lin_verdict == 2 ? 1 : 0;
            if (a->seeds_count == 1) {
                print_pass(opts.seed, &r);
            }
        }
        s.ops += r.ops_completed;
        (void)fflush(stdout);
    }
    double elapsed = seconds_now() - start;
    if (a->seeds_count > 1) {
        (void)printf("quorum-sim: %llu seeds from %llu: %llu passed, %llu failed (%llu with "
                     "linearizability unknown), %llu ops, %.1f s, %.1f seeds/s\n",
                     (unsigned long long)a->seeds_count, (unsigned long long)a->seed,
                     (unsigned long long)s.passed, (unsigned long long)s.failed,
                     (unsigned long long)s.unknown, (unsigned long long)s.ops, elapsed,
                     elapsed > 0 ? (double)a->seeds_count / elapsed : 0.0);
    }
    return s.failed == 0 ? EXIT_OK : EXIT_FAILURE_RUN;
}

int main(int argc, char **argv)
{
    struct args a;
    char errmsg[QR_ERRMSG_SIZE] = "";
    if (parse_args(argc, argv, &a, errmsg) != 0) {
        (void)fprintf(stderr, "quorum-sim: %s\n", errmsg);
        return EXIT_USAGE;
    }
    if (a.is_help) {
        usage(stdout);
        return EXIT_OK;
    }
    if (a.seed > UINT64_MAX - a.seeds_count) {
        (void)fprintf(stderr, "quorum-sim: --seed plus --seeds overflows\n");
        return EXIT_USAGE;
    }
    crash_handler_install();
    return run_sweep(&a);
}
