/*
 * quorumctl: the operator's command-line tool.
 *
 * main() only: it reads the options given before the command, picks the
 * subcommand and maps results to exit codes (0 ok, 1 failure, 2 usage). The
 * work is done in the subcommand modules: analyze, ops (status, members, ...)
 * and cluster (a local cluster launcher).
 */
#include <stdio.h>
#include <string.h>

#include "analyze.h"
#include "cluster.h"
#include "common.h"
#include "ops.h"
#include "quorum/err.h"

static void usage(FILE *out)
{
    (void)fprintf(out, "usage: quorumctl [common options] <command> [arguments] [options]\n"
                       "\n"
                       "commands:\n");
    ctl_ops_list(out);
    ctl_cluster_list(out);
    (void)fprintf(out, "  %-34s %s\n", "analyze --nodes N [options]",
                  "what a configuration of N nodes promises (quorum sizes,");
    (void)fprintf(out, "  %-34s %s\n", "", "faults tolerated, availability)");
    (void)fprintf(out, "\n");
    ctl_common_usage(out);
    (void)fprintf(out, "  --version          print the version\n"
                       "\n"
                       "'quorumctl <command> --help' describes a command.\n"
                       "exit status: 0 ok, 1 failure, 2 bad usage\n");
}

static int run_analyze(int argc, char *const *argv)
{
    struct ctl_analyze_args args;
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = ctl_analyze_parse(argc, argv, &args, &v, errmsg);
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl analyze: %s\n", errmsg);
        return CTL_EXIT_USAGE;
    }
    if (args.help) {
        ctl_analyze_usage(stdout);
        return CTL_EXIT_OK;
    }
    rv = ctl_analyze_print(stdout, &args, &v);
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl analyze: %s\n", qr_strerror(rv));
        return CTL_EXIT_FAILURE;
    }
    return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct ctl_common global;
    ctl_common_init(&global);
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--version") != 0; i++) {
        char errmsg[QR_ERRMSG_SIZE] = "";
        int rv = ctl_common_parse_one(&global, argc, argv, &i, errmsg);
        if (rv == 0) {
            (void)fprintf(stderr, "quorumctl: unknown option '%.40s' (see quorumctl --help)\n",
                          argv[i]);
            return CTL_EXIT_USAGE;
        }
        if (rv < 0) {
            (void)fprintf(stderr, "quorumctl: %s\n", errmsg);
            return CTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(global.help ? stdout : stderr);
        return global.help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
    }
    const char *command = argv[i];
    if (strcmp(command, "help") == 0) {
        usage(stdout);
        return CTL_EXIT_OK;
    }
    if (strcmp(command, "--version") == 0) {
        (void)printf("quorumctl 0.1.0\n");
        return CTL_EXIT_OK;
    }
    if (strcmp(command, "analyze") == 0) {
        return run_analyze(argc - i - 1, argv + i + 1);
    }
    if (strcmp(command, "cluster") == 0) {
        return ctl_cluster_run(argc - i - 1, argv + i + 1, &global);
    }
    if (ctl_ops_has(command)) {
        return ctl_ops_run(command, argc - i - 1, argv + i + 1, &global);
    }
    (void)fprintf(stderr, "quorumctl: unknown command '%.40s' (see quorumctl --help)\n", command);
    return CTL_EXIT_USAGE;
}
