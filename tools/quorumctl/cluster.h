/*
 * quorumctl cluster: a launcher for local clusters on 127.0.0.1.
 *
 * Tool code above libquorum. `cluster up` makes a fresh directory (secret,
 * one data directory per node), starts one quorumd per node in its own
 * session with its output in DIR/node<i>.log, records what it started in
 * DIR/cluster (record.h) and waits for a leader. `cluster down`, `stop` and
 * `start` act only on the recorded PIDs, and only while /proc says they
 * still run that quorumd on that data directory. Prints its own results.
 */
#ifndef QR_CTL_CLUSTER_H
#define QR_CTL_CLUSTER_H

#include <stdio.h>

#include "common.h"

/*
 * Runs `cluster <up|down|stop|start> ...` with the words after "cluster".
 * @param global  Borrows: options given before the command.
 * @return the exit status (0 ok, 1 failure, 2 usage).
 */
int ctl_cluster_run(int argc, char *const *argv, const struct ctl_common *global);

/* One line per cluster subcommand, for `quorumctl --help`. */
void ctl_cluster_list(FILE *out);

#endif /* QR_CTL_CLUSTER_H */
