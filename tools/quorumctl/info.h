/*
 * quorumctl info: parsing the text of `INFO quorum` (and QUORUM.STATUS).
 *
 * Tool code above libquorum. The text comes from a server and is untrusted:
 * unknown fields are ignored, known ones are parsed strictly, and a text
 * without node_id and role is refused (the server is probably not quorumd).
 * Pure: no I/O, never prints.
 */
#ifndef QR_CTL_INFO_H
#define QR_CTL_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quorum/err.h"
#include "resp_client.h"

#define CTL_MEMBERS_MAX 64 /* Members listed in one INFO reply. */
#define CTL_ROLE_SIZE   24

/* One `member_<id>:` line. */
struct ctl_member {
    uint64_t id;                /* Node id, >= 1. */
    bool is_voter;              /* role=voter (else learner). */
    char peer[CTL_ADDR_SIZE];   /* Peer address; may be empty. */
    char client[CTL_ADDR_SIZE]; /* Client address; empty when not yet known. */
    bool is_connected;          /* connected=1. */
    bool has_progress;          /* match and lag are numbers (only on the leader). */
    uint64_t match_index;       /* Highest index known replicated there. */
    uint64_t lag;               /* Entries behind the leader. */
};

/* One node's view, as reported by INFO quorum. */
struct ctl_info {
    uint64_t node_id;
    char role[CTL_ROLE_SIZE]; /* leader, follower, candidate, precandidate, learner. */
    uint64_t term;
    uint64_t leader_id;                 /* 0 when unknown. */
    char leader_address[CTL_ADDR_SIZE]; /* Client address of the leader; empty when unknown. */
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t durable_index;
    uint64_t last_index;
    uint64_t snapshot_index;
    bool is_read_only;
    char fatal[QR_ERRMSG_SIZE]; /* Empty unless the node failed for good. */
    char peer_address[CTL_ADDR_SIZE];
    char client_address[CTL_ADDR_SIZE];
    size_t members_count; /* Member lines parsed into members[]. */
    struct ctl_member members[CTL_MEMBERS_MAX];
};

/*
 * Parses the INFO quorum text.
 * @param text  Borrows len bytes (need not be NUL-terminated).
 * @param info  Out; zeroed first.
 * @return 0, or QR_EPROTO with a message in errmsg (QR_ERRMSG_SIZE).
 */
int ctl_info_parse(const char *text, size_t len, struct ctl_info *info, char *errmsg);

/* The member with this id, or NULL. */
const struct ctl_member *ctl_info_member(const struct ctl_info *info, uint64_t id);

#endif /* QR_CTL_INFO_H */
