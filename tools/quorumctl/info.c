/*
 * quorumctl info: a strict parser for the `INFO quorum` text.
 *
 * Tool code above libquorum. Lines are "field:value"; member lines carry
 * comma-separated key=value pairs whose values are addresses (they contain
 * ':' but never ','). Pure: no I/O, never prints.
 */
#include "info.h"

#include <stdio.h>
#include <string.h>

#include "util/assert.h"
#include "util/err.h"
#include "util/parse.h"

#define INFO_LINE_SIZE 1024

/* Copies value into a fixed field; false when it does not fit. */
static bool copy_field(char *dst, size_t dst_size, const char *value)
{
    size_t len = strlen(value);
    if (len >= dst_size) {
        return false;
    }
    memcpy(dst, value, len + 1);
    return true;
}

static bool parse_number(const char *value, uint64_t *out)
{
    return qr__parse_u64(value, 0, UINT64_MAX, out, NULL) == 0;
}

static bool member_pair(struct ctl_member *m, const char *key, const char *value)
{
    if (strcmp(key, "role") == 0) {
        m->is_voter = strcmp(value, "voter") == 0;
        return m->is_voter || strcmp(value, "learner") == 0;
    }
    if (strcmp(key, "peer") == 0) {
        return copy_field(m->peer, sizeof(m->peer), value);
    }
    if (strcmp(key, "client") == 0) {
        return copy_field(m->client, sizeof(m->client), value);
    }
    if (strcmp(key, "connected") == 0) {
        m->is_connected = strcmp(value, "1") == 0;
        return true;
    }
    if (strcmp(key, "match") == 0 || strcmp(key, "lag") == 0) {
        if (strcmp(value, "-") == 0) {
            return true;
        }
        m->has_progress = true;
        return parse_number(value, key[0] == 'm' ? &m->match_index : &m->lag);
    }
    return true; /* Fields added later are ignored. */
}

/* "member_<id>" with value "role=voter,peer=...,...". */
static bool parse_member(struct ctl_info *info, const char *name, char *value)
{
    uint64_t id = 0;
    if (qr__parse_u64(name + strlen("member_"), 1, UINT64_MAX, &id, NULL) != 0) {
        return false;
    }
    if (info->members_count == CTL_MEMBERS_MAX) {
        return true; /* More members than we show; the count line still says how many. */
    }
    struct ctl_member *m = &info->members[info->members_count];
    memset(m, 0, sizeof(*m));
    m->id = id;
    char *save = value;
    for (size_t pairs = 0; save != NULL && pairs < 32; pairs++) {
        char *pair = save;
        char *comma = strchr(pair, ',');
        save = NULL;
        if (comma != NULL) {
            *comma = '\0';
            save = comma + 1;
        }
        char *eq = strchr(pair, '=');
        if (eq == NULL) {
            return false;
        }
        *eq = '\0';
        if (!member_pair(m, pair, eq + 1)) {
            return false;
        }
    }
    info->members_count++;
    return true;
}

static bool parse_field(struct ctl_info *info, const char *name, char *value)
{
    static const char *const numbers[] = {"node_id",      "term",          "leader_id",
                                          "commit_index", "applied_index", "durable_index",
                                          "last_index",   "snapshot_index"};
    uint64_t *const number_fields[] = {
        &info->node_id,       &info->term,          &info->leader_id,  &info->commit_index,
        &info->applied_index, &info->durable_index, &info->last_index, &info->snapshot_index};
    for (size_t k = 0; k < sizeof(numbers) / sizeof(numbers[0]); k++) {
        if (strcmp(name, numbers[k]) == 0) {
            return parse_number(value, number_fields[k]);
        }
    }
    if (strcmp(name, "role") == 0) {
        return copy_field(info->role, sizeof(info->role), value);
    }
    if (strcmp(name, "leader_address") == 0) {
        return copy_field(info->leader_address, sizeof(info->leader_address), value);
    }
    if (strcmp(name, "peer_address") == 0) {
        return copy_field(info->peer_address, sizeof(info->peer_address), value);
    }
    if (strcmp(name, "client_address") == 0) {
        return copy_field(info->client_address, sizeof(info->client_address), value);
    }
    if (strcmp(name, "read_only") == 0) {
        info->is_read_only = strcmp(value, "1") == 0;
        return true;
    }
    if (strcmp(name, "fatal") == 0) {
        (void)snprintf(info->fatal, sizeof(info->fatal), "%s", value); /* Cut is fine. */
        return true;
    }
    if (strncmp(name, "member_", strlen("member_")) == 0) {
        return parse_member(info, name, value);
    }
    return true;
}

int ctl_info_parse(const char *text, size_t len, struct ctl_info *info, char *errmsg)
{
    QR_ASSERT(text != NULL || len == 0);
    QR_ASSERT(info != NULL);
    memset(info, 0, sizeof(*info));
    size_t pos = 0;
    for (size_t line_no = 1; pos < len; line_no++) {
        const char *end = memchr(text + pos, '\n', len - pos);
        size_t line_len = end != NULL ? (size_t)(end - (text + pos)) : len - pos;
        char line[INFO_LINE_SIZE];
        if (line_len >= sizeof(line)) {
            return qr__errf(errmsg, QR_EPROTO, "INFO quorum: line %zu is too long", line_no);
        }
        memcpy(line, text + pos, line_len);
        line[line_len] = '\0';
        pos += line_len + 1;
        if (line_len > 0 && line[line_len - 1] == '\r') {
            line[line_len - 1] = '\0';
        }
        char *colon = strchr(line, ':');
        if (line[0] == '#' || line[0] == '\0' || colon == NULL) {
            continue;
        }
        *colon = '\0';
        if (!parse_field(info, line, colon + 1)) {
            return qr__errf(errmsg, QR_EPROTO, "INFO quorum: bad value for %.40s on line %zu", line,
                            line_no);
        }
    }
    if (info->node_id == 0 || info->role[0] == '\0') {
        return qr__errf(errmsg, QR_EPROTO,
                        "INFO quorum has no node_id or role (is this a quorumd server?)");
    }
    return 0;
}

const struct ctl_member *ctl_info_member(const struct ctl_info *info, uint64_t id)
{
    for (size_t k = 0; k < info->members_count; k++) {
        if (info->members[k].id == id) {
            return &info->members[k];
        }
    }
    return NULL;
}
