/*
 * quorumctl analyze: what a voting configuration promises.
 *
 * Parses the analyze flags (untrusted text, fuzzed by fuzz/fuzz_config.c),
 * builds the configuration through voting/ and prints a report. Parsing never
 * prints and never exits, so it can be fuzzed and tested in-process.
 */
#ifndef QR_CTL_ANALYZE_H
#define QR_CTL_ANALYZE_H

#include <stdio.h>

#include "quorum/voting.h"

struct ctl_analyze_args {
    uint32_t nodes_count;                   /* --nodes, required. */
    uint32_t faults;                        /* --fault-tolerance. */
    bool has_faults;                        /* Whether --fault-tolerance was given. */
    enum qr_fault_model model;              /* --model, crash by default. */
    uint32_t weights[QR_VOTING_VOTERS_MAX]; /* --weights. */
    size_t weights_count;                   /* 0 when --weights was not given. */
    uint64_t election_weight_min;           /* --election-quorum, 0 when not given. */
    uint64_t replication_weight_min;        /* --replication-quorum, 0 when not given. */
    double p_fail;                          /* --p-fail, 0.01 by default. */
    bool json;                              /* --json: one JSON object instead of a table. */
    bool help;                              /* --help was given. */
};

/*
 * Parses argv[0..argc) (the words after "analyze") and builds the configuration.
 * Returns 0, or QR_EINVAL and friends with a one-line message in errmsg (QR_ERRMSG_SIZE).
 */
int ctl_analyze_parse(
    int argc, char *const *argv, struct ctl_analyze_args *args, struct qr_voting *v, char *errmsg);
/* Prints the report for a parsed configuration. Returns 0 or a QR_E* code. */
int ctl_analyze_print(FILE *out, const struct ctl_analyze_args *args, const struct qr_voting *v);
/* The usage text of `quorumctl analyze`. */
void ctl_analyze_usage(FILE *out);

#endif /* QR_CTL_ANALYZE_H */
