/*
 * quorumctl: the operator's command-line tool.
 *
 * main() only: it picks the subcommand and maps results to exit codes
 * (0 ok, 1 failure, 2 usage). The work is done in the subcommand modules.
 */
#include <stdio.h>
#include <string.h>

#include "analyze.h"
#include "quorum/err.h"

#define EXIT_OK          0
#define EXIT_FAILURE_RUN 1
#define EXIT_USAGE       2

static void usage(FILE *out)
{
    (void)fprintf(out, "usage: quorumctl <command> [options]\n"
                       "\n"
                       "commands:\n"
                       "  analyze    what a configuration of N nodes promises (quorum sizes,\n"
                       "             faults tolerated, availability)\n"
                       "\n"
                       "options:\n"
                       "  -h, --help     this text; 'quorumctl <command> --help' for a command\n"
                       "  --version      print the version\n"
                       "\n"
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
        return EXIT_USAGE;
    }
    if (args.help) {
        ctl_analyze_usage(stdout);
        return EXIT_OK;
    }
    rv = ctl_analyze_print(stdout, &args, &v);
    if (rv != 0) {
        (void)fprintf(stderr, "quorumctl analyze: %s\n", qr_strerror(rv));
        return EXIT_FAILURE_RUN;
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(command, "--version") == 0) {
        (void)printf("quorumctl 0.1.0\n");
        return EXIT_OK;
    }
    if (strcmp(command, "analyze") == 0) {
        return run_analyze(argc - 2, argv + 2);
    }
    (void)fprintf(stderr, "quorumctl: unknown command '%.40s' (see quorumctl --help)\n", command);
    return EXIT_USAGE;
}
