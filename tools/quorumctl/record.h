/*
 * quorumctl record: the cluster record that `cluster up` leaves in its directory.
 *
 * Tool code above libquorum. DIR/cluster is a small text file saying what
 * quorumctl started, so that status, down, stop and start can find and
 * restart exactly those processes:
 *
 *     quorumd /abs/path/to/quorumd
 *     sync always
 *     verbose 0
 *     secret /abs/DIR/secret
 *     node <id> <pid> <client_addr> <peer_addr> <data_dir> <log>
 *
 * One node line per node; pid 0 means "not running". Paths may not contain
 * white space. The file is untrusted input: every line is checked. It is
 * replaced atomically (write a temporary file, fsync, rename).
 */
#ifndef QR_CTL_RECORD_H
#define QR_CTL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorum/err.h"
#include "resp_client.h"

#define CTL_CLUSTER_NODES_MAX 15   /* Nodes in a local cluster. */
#define CTL_PATH_SIZE         1024 /* Paths in the record, NUL included. */
#define CTL_SYNC_SIZE         16
#define CTL_DIR_DEFAULT       "./quorum-cluster"

struct ctl_record_node {
    uint64_t id;                  /* 1..CTL_CLUSTER_NODES_MAX, unique. */
    int64_t pid;                  /* 0 when not running. */
    char client[CTL_ADDR_SIZE];   /* --listen. */
    char peer[CTL_ADDR_SIZE];     /* Its entry in --cluster. */
    char data_dir[CTL_PATH_SIZE]; /* --data. */
    char log[CTL_PATH_SIZE];      /* stdout and stderr. */
};

struct ctl_record {
    char quorumd[CTL_PATH_SIZE]; /* Absolute path of the binary that was started. */
    char sync[CTL_SYNC_SIZE];    /* --sync value. */
    bool is_verbose;             /* -v was passed. */
    char secret[CTL_PATH_SIZE];  /* --secret-file. */
    size_t nodes_count;
    struct ctl_record_node nodes[CTL_CLUSTER_NODES_MAX];
};

/*
 * Reads DIR/cluster.
 * @return 0, QR_ENOTFOUND (no record there), QR_EIO, QR_ECORRUPT (bad line, named in errmsg).
 */
int ctl_record_read(const char *dir, struct ctl_record *rec, char *errmsg);

/* Replaces DIR/cluster atomically. Returns 0 or QR_EIO with a message. */
int ctl_record_write(const char *dir, const struct ctl_record *rec, char *errmsg);

/* The node with this id, or NULL. */
struct ctl_record_node *ctl_record_node(struct ctl_record *rec, uint64_t id);

#endif /* QR_CTL_RECORD_H */
