/*
 * quorumctl ops: the commands that talk to running servers.
 *
 * Tool code above libquorum: status, members, add, promote, remove, transfer,
 * snapshot, get, set and del. Each command parses its own words plus the
 * common options (common.h), prints its result on stdout and its errors on
 * stderr, and returns an exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef QR_CTL_OPS_H
#define QR_CTL_OPS_H

#include <stdbool.h>
#include <stdio.h>

#include "common.h"

/* Whether `name` is one of the commands of this module. */
bool ctl_ops_has(const char *name);

/*
 * Runs command `name` with the words after it.
 * @param global  Borrows: options given before the command (defaults otherwise).
 * @return the exit status.
 */
int ctl_ops_run(const char *name, int argc, char *const *argv, const struct ctl_common *global);

/* One line per command, for `quorumctl --help`. */
void ctl_ops_list(FILE *out);

/* The common options' help text. */
void ctl_common_usage(FILE *out);

#endif /* QR_CTL_OPS_H */
