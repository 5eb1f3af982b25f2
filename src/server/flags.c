/*
 * server/flags.c: quorumd's command line (see flags.h).
 */
#include "server/flags.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kv/kv.h"
#include "quorum/err.h"
#include "quorum/log.h"
#include "util/err.h"
#include "util/parse.h"

/* "1=host:port,2=host:port": split f->cluster_text in place. */
static int parse_cluster(struct qr_server_flags *f, const char *text, char *errmsg)
{
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof(f->cluster_text)) {
        return qr__errf(errmsg, QR_EINVAL, "--cluster: empty or too long");
    }
    memcpy(f->cluster_text, text, len + 1);
    char *item = f->cluster_text;
    while (item != NULL) {
        if (f->peers_count == QR_SERVER_FLAGS_PEERS_MAX) {
            return qr__errf(errmsg, QR_EINVAL, "--cluster: more than %d members",
                            QR_SERVER_FLAGS_PEERS_MAX);
        }
        char *comma = strchr(item, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            return qr__errf(errmsg, QR_EINVAL, "--cluster: \"%.64s\" is not ID=HOST:PORT", item);
        }
        *eq = '\0';
        struct qr_node_peer *p = &f->peers[f->peers_count++];
        if (qr__parse_u64(item, 1, UINT64_MAX, &p->id, NULL) != 0) {
            return qr__errf(errmsg, QR_EINVAL, "--cluster: id \"%.64s\" is not a positive integer",
                            item);
        }
        for (size_t i = 0; i + 1 < f->peers_count; i++) {
            if (f->peers[i].id == p->id) {
                return qr__errf(errmsg, QR_EINVAL, "--cluster: id %llu appears twice",
                                (unsigned long long)p->id);
            }
        }
        p->address = eq + 1;
        item = comma != NULL ? comma + 1 : NULL;
    }
    return 0;
}

/* Numeric flags: name, where, range. */
struct number_flag {
    const char *name;
    size_t offset;
    uint64_t min;
    uint64_t max;
};

#define NUMBER(name, field, min, max)                           \
    {                                                           \
        name, offsetof(struct qr_server_flags, field), min, max \
    }

static const struct number_flag number_flags[] = {
    NUMBER("--id", id, 1, UINT64_MAX),
    NUMBER("--cluster-id", cluster_id, 1, UINT64_MAX),
    NUMBER("--maxclients", clients_max, 1, 1000000),
    NUMBER("--max-bulk-bytes", bulk_size_max, 1, (uint64_t)1 << 31),
    NUMBER("--max-args", args_count_max, 1, (uint64_t)1 << 24),
    NUMBER("--output-buffer-bytes", reply_size_max, 1024, (uint64_t)1 << 40),
    NUMBER("--timeout", idle_timeout_s, 0, 100000000),
    NUMBER("--request-timeout-ms", request_timeout_ms, 10, 3600000),
    NUMBER("--tick-ms", tick_ms, 1, 10000),
    NUMBER("--election-ticks", election_ticks, 2, 1000),
    NUMBER("--snapshot-entries", snapshot_entries, 1, UINT64_MAX),
    NUMBER("--keys-max", keys_max, 1, QR_KV_KEYS_MAX_LIMIT),
};

/* Text flags: name, where. */
struct text_flag {
    const char *name;
    size_t offset;
};

#define TEXT(name, field)                             \
    {                                                 \
        name, offsetof(struct qr_server_flags, field) \
    }

static const struct text_flag text_flags[] = {
    TEXT("--listen", listen),           TEXT("--advertise", advertise),
    TEXT("--data", data_dir),           TEXT("--secret", secret_text),
    TEXT("--secret-file", secret_file), TEXT("--requirepass", password),
};

/* One flag at argv[*i]. @return 0, 1 (--help or --version: done), -1 (errmsg). */
static int parse_flag(struct qr_server_flags *f, int argc, char **argv, int *i, char *errmsg)
{
    const char *arg = argv[*i];
    for (size_t k = 0; k < sizeof(number_flags) / sizeof(number_flags[0]); k++) {
        const char *value = qr__flag_value(argc, argv, i, number_flags[k].name);
        if (value != NULL) {
            uint64_t *field = (uint64_t *)(void *)((char *)f + number_flags[k].offset);
            char why[QR_ERRMSG_SIZE] = "";
            if (qr__parse_u64(value, number_flags[k].min, number_flags[k].max, field, why) != 0) {
                return qr__errf(errmsg, QR_EINVAL, "%s: %s", number_flags[k].name, why);
            }
            return 0;
        }
    }
    for (size_t k = 0; k < sizeof(text_flags) / sizeof(text_flags[0]); k++) {
        const char *value = qr__flag_value(argc, argv, i, text_flags[k].name);
        if (value != NULL) {
            *(const char **)(void *)((char *)f + text_flags[k].offset) = value;
            return 0;
        }
    }
    const char *value = qr__flag_value(argc, argv, i, "--cluster");
    if (value != NULL) {
        return parse_cluster(f, value, errmsg);
    }
    value = qr__flag_value(argc, argv, i, "--sync");
    if (value != NULL) {
        f->sync_none = strcmp(value, "none") == 0;
        return f->sync_none || strcmp(value, "always") == 0
                   ? 0
                   : qr__errf(errmsg, QR_EINVAL, "--sync: \"%s\" is not always or none", value);
    }
    if (strcmp(arg, "--join") == 0) {
        f->join = true;
    } else if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
        f->log_level = f->log_level < QR_LOG_TRACE ? f->log_level + 1 : f->log_level;
    } else if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
        f->log_level = QR_LOG_WARN;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        f->is_help = true;
        return 1;
    } else if (strcmp(arg, "--version") == 0) {
        f->is_version = true;
        return 1;
    } else {
        bool is_known = false;
        for (size_t k = 0; k < sizeof(text_flags) / sizeof(text_flags[0]); k++) {
            is_known = is_known || qr__flag_is(arg, text_flags[k].name);
        }
        for (size_t k = 0; k < sizeof(number_flags) / sizeof(number_flags[0]); k++) {
            is_known = is_known || qr__flag_is(arg, number_flags[k].name);
        }
        is_known = is_known || qr__flag_is(arg, "--cluster") || qr__flag_is(arg, "--sync");
        return qr__errf(errmsg, QR_EINVAL,
                        is_known ? "%s needs a value" : "unknown flag %s (see --help)", arg);
    }
    return 0;
}

/* FNV-1a of the secret: every member derives the same id, and another cluster's data
   directory (another secret) is refused by storage. Not secret itself: 64 bits of a hash. */
uint64_t qr__server_cluster_id(const uint8_t *secret, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    static const char domain[] = "quorum cluster id:";
    for (size_t i = 0; i < sizeof(domain) - 1; i++) {
        h = (h ^ (uint8_t)domain[i]) * 0x100000001b3ULL;
    }
    for (size_t i = 0; i < size; i++) {
        h = (h ^ secret[i]) * 0x100000001b3ULL;
    }
    return h != 0 ? h : 1;
}

int qr__server_flags_parse(struct qr_server_flags *f, int argc, char **argv, char *errmsg)
{
    memset(f, 0, sizeof(*f));
    f->log_level = QR_LOG_INFO;
    f->listen = QR_SERVER_FLAGS_LISTEN_DEFAULT;
    for (int i = 1; i < argc; i++) {
        int rv = parse_flag(f, argc, argv, &i, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    if (f->id == 0) {
        return qr__errf(errmsg, QR_EINVAL, "--id is required (see --help)");
    }
    if (f->peers_count == 0) {
        return qr__errf(errmsg, QR_EINVAL,
                        "--cluster is required, e.g. --cluster 1=127.0.0.1:7001 "
                        "(see --help)");
    }
    bool is_listed = false;
    for (size_t i = 0; i < f->peers_count; i++) {
        is_listed = is_listed || f->peers[i].id == f->id;
    }
    if (!is_listed) {
        return qr__errf(errmsg, QR_EINVAL,
                        "--id %llu is not in --cluster: list this member's peer address "
                        "there too (%llu=HOST:PORT)",
                        (unsigned long long)f->id, (unsigned long long)f->id);
    }
    if (f->data_dir == NULL) {
        (void)snprintf(f->data_default, sizeof(f->data_default), "quorumd-%llu",
                       (unsigned long long)f->id);
        f->data_dir = f->data_default;
    }
    if ((f->secret_text == NULL) == (f->secret_file == NULL)) {
        return qr__errf(errmsg, QR_EINVAL,
                        "give the cluster secret with --secret-file FILE (or --secret "
                        "TEXT), the same on every member; make one with: head -c 32 "
                        "/dev/urandom | base64 > FILE");
    }
    return 0;
}
