/*
 * server/flags.h: quorumd's command line, parsed without side effects.
 *
 * Layer: server. The parser only reads argv: it opens no file (the secret file is read by
 * the program), prints nothing (--help and --version are reported in the struct) and
 * allocates nothing, so that any argument vector can be fuzzed (fuzz/fuzz_flags.c). Every
 * refusal is one line in errmsg naming the flag.
 */
#ifndef QR_SERVER_FLAGS_H
#define QR_SERVER_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorum/node.h"

#define QR_SERVER_FLAGS_PEERS_MAX         QR_NODE_PEERS_MAX
#define QR_SERVER_FLAGS_CLUSTER_TEXT_SIZE 8192
#define QR_SERVER_FLAGS_LISTEN_DEFAULT    "127.0.0.1:6379"

/** The flags; zero numbers mean "the default of the option". Strings point into argv. */
struct qr_server_flags {
    uint64_t id;                 /* --id: this member, non-zero once parsed. */
    uint64_t cluster_id;         /* --cluster-id; 0: derive it from the secret. */
    const char *listen;          /* --listen: client address. */
    const char *advertise;       /* --advertise: client address told to others; NULL. */
    const char *data_dir;        /* --data, or data_default. */
    const char *secret_text;     /* --secret; exactly one of it and secret_file. */
    const char *secret_file;     /* --secret-file. */
    const char *password;        /* --requirepass; NULL: none. */
    bool join;                   /* --join. */
    bool sync_none;              /* --sync none (unsafe). */
    int log_level;               /* enum qr_log_level: INFO, -v more, -q WARN. */
    uint64_t clients_max;        /* --maxclients. */
    uint64_t bulk_size_max;      /* --max-bulk-bytes. */
    uint64_t args_count_max;     /* --max-args. */
    uint64_t idle_timeout_s;     /* --timeout (seconds); 0: never. */
    uint64_t reply_size_max;     /* --output-buffer-bytes. */
    uint64_t request_timeout_ms; /* --request-timeout-ms. */
    uint64_t tick_ms;            /* --tick-ms. */
    uint64_t election_ticks;     /* --election-ticks. */
    uint64_t snapshot_entries;   /* --snapshot-entries. */
    uint64_t keys_max;           /* --keys-max. */
    struct qr_node_peer peers[QR_SERVER_FLAGS_PEERS_MAX];
    size_t peers_count; /* --cluster entries; addresses point into cluster_text. */
    char cluster_text[QR_SERVER_FLAGS_CLUSTER_TEXT_SIZE];
    char data_default[64]; /* "quorumd-<id>" when --data is not given. */
    bool is_help;          /* --help was given: print the usage, nothing else was parsed. */
    bool is_version;       /* --version was given. */
};

/**
 * Parse argv.
 * @param f       Out.
 * @param errmsg  Out: QR_ERRMSG_SIZE bytes, one line, set when -1 is returned.
 * @return 0 (f is complete but the secret is not read yet), 1 (--help or --version: see
 *         f->is_help / is_version), QR_EINVAL (bad flags: errmsg).
 */
int qr__server_flags_parse(struct qr_server_flags *f, int argc, char **argv, char *errmsg);

/**
 * The cluster id every member derives from the shared secret (FNV-1a, never 0), so that a
 * data directory of another cluster (another secret) is refused by storage.
 */
uint64_t qr__server_cluster_id(const uint8_t *secret, size_t size);

#endif /* QR_SERVER_FLAGS_H */
