/*
 * quorumctl record: reading and atomically replacing DIR/cluster.
 *
 * Tool code above libquorum. The record is parsed strictly (it decides which
 * processes get signalled) and written through a temporary file so that a
 * crash never leaves half a record.
 */
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

#define RECORD_LINE_SIZE 4096
#define RECORD_LINES_MAX 64
#define RECORD_WORDS_MAX 8
#define RECORD_FILE      "cluster"

/* Splits line at spaces into at most RECORD_WORDS_MAX words; returns the count. */
static size_t split_words(char *line, char **words)
{
    size_t count = 0;
    char *p = line;
    while (*p != '\0' && count < RECORD_WORDS_MAX) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        words[count++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            p++;
        }
    }
    return count;
}

static bool copy_word(char *dst, size_t dst_size, const char *word)
{
    size_t len = strlen(word);
    if (len >= dst_size) {
        return false;
    }
    memcpy(dst, word, len + 1);
    return true;
}

static bool record_node_parse(struct ctl_record *rec, char **words, size_t count)
{
    uint64_t id = 0;
    uint64_t pid = 0;
    if (count != 7 || rec->nodes_count == CTL_CLUSTER_NODES_MAX ||
        qr__parse_u64(words[1], 1, CTL_CLUSTER_NODES_MAX, &id, NULL) != 0 ||
        qr__parse_u64(words[2], 0, INT32_MAX, &pid, NULL) != 0 ||
        ctl_record_node(rec, id) != NULL) {
        return false;
    }
    struct ctl_record_node *n = &rec->nodes[rec->nodes_count];
    n->id = id;
    n->pid = (int64_t)pid;
    if (!copy_word(n->client, sizeof(n->client), words[3]) ||
        !copy_word(n->peer, sizeof(n->peer), words[4]) ||
        !copy_word(n->data_dir, sizeof(n->data_dir), words[5]) ||
        !copy_word(n->log, sizeof(n->log), words[6])) {
        return false;
    }
    rec->nodes_count++;
    return true;
}

static bool record_line_parse(struct ctl_record *rec, char *line)
{
    char *words[RECORD_WORDS_MAX];
    size_t count = split_words(line, words);
    if (count == 0 || words[0][0] == '#') {
        return true;
    }
    if (strcmp(words[0], "node") == 0) {
        return record_node_parse(rec, words, count);
    }
    if (count != 2) {
        return false;
    }
    if (strcmp(words[0], "quorumd") == 0) {
        return copy_word(rec->quorumd, sizeof(rec->quorumd), words[1]);
    }
    if (strcmp(words[0], "sync") == 0) {
        return copy_word(rec->sync, sizeof(rec->sync), words[1]);
    }
    if (strcmp(words[0], "secret") == 0) {
        return copy_word(rec->secret, sizeof(rec->secret), words[1]);
    }
    if (strcmp(words[0], "verbose") == 0) {
        rec->is_verbose = strcmp(words[1], "1") == 0;
        return true;
    }
    return true; /* Keys written by later versions are ignored. */
}

int ctl_record_read(const char *dir, struct ctl_record *rec, char *errmsg)
{
    QR_ASSERT(dir != NULL && rec != NULL);
    memset(rec, 0, sizeof(*rec));
    char path[CTL_PATH_SIZE + 16];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, RECORD_FILE);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT) {
            return qr__errf(errmsg, QR_ENOTFOUND, "%s: no cluster record", path);
        }
        return qr__err_os(errmsg, errno, "%s", path);
    }
    char line[RECORD_LINE_SIZE];
    int rv = 0;
    size_t line_no = 0;
    while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
        line_no++;
        if (line_no > RECORD_LINES_MAX || strchr(line, '\n') == NULL ||
            !record_line_parse(rec, line)) {
            rv = qr__errf(errmsg, QR_ECORRUPT, "%s: line %zu is not valid", path, line_no);
        }
    }
    if (rv == 0 && ferror(f)) {
        rv = qr__errf(errmsg, QR_EIO, "%s: read error", path);
    }
    (void)fclose(f); /* Read-only stream: nothing to lose. */
    if (rv == 0 && (rec->quorumd[0] == '\0' || rec->nodes_count == 0)) {
        rv = qr__errf(errmsg, QR_ECORRUPT, "%s: no quorumd line or no node lines", path);
    }
    return rv;
}

static int record_write_lines(FILE *f, const struct ctl_record *rec)
{
    int n = fprintf(f,
                    "# quorumctl cluster record: written by 'quorumctl cluster up'.\n"
                    "# node <id> <pid, 0 = stopped> <client> <peer> <data dir> <log>\n"
                    "quorumd %s\nverbose %d\n",
                    rec->quorumd, rec->is_verbose ? 1 : 0);
    /* Empty values are left out: a line with a key and no value does not parse. */
    if (n >= 0 && rec->sync[0] != '\0') {
        n = fprintf(f, "sync %s\n", rec->sync);
    }
    if (n >= 0 && rec->secret[0] != '\0') {
        n = fprintf(f, "secret %s\n", rec->secret);
    }
    for (size_t k = 0; k < rec->nodes_count && n >= 0; k++) {
        const struct ctl_record_node *node = &rec->nodes[k];
        n = fprintf(f, "node %llu %lld %s %s %s %s\n", (unsigned long long)node->id,
                    (long long)node->pid, node->client, node->peer, node->data_dir, node->log);
    }
    return n < 0 ? -1 : 0;
}

int ctl_record_write(const char *dir, const struct ctl_record *rec, char *errmsg)
{
    QR_ASSERT(dir != NULL && rec != NULL);
    QR_ASSERT(rec->nodes_count <= CTL_CLUSTER_NODES_MAX);
    char path[CTL_PATH_SIZE + 16];
    char tmp[CTL_PATH_SIZE + 32];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, RECORD_FILE);
    (void)snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, RECORD_FILE);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return qr__err_os(errmsg, errno, "%s", tmp);
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        int rv = qr__err_os(errmsg, errno, "%s", tmp);
        (void)close(fd); /* Already failing. */
        return rv;
    }
    bool ok = record_write_lines(f, rec) == 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (fclose(f) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        int rv = qr__err_os(errmsg, ok ? errno : saved, "write %s", path);
        (void)unlink(tmp); /* Best effort: the old record is still intact. */
        return rv;
    }
    return 0;
}

struct ctl_record_node *ctl_record_node(struct ctl_record *rec, uint64_t id)
{
    for (size_t k = 0; k < rec->nodes_count; k++) {
        if (rec->nodes[k].id == id) {
            return &rec->nodes[k];
        }
    }
    return NULL;
}
