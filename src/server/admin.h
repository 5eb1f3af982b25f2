/*
 * server/admin.h: quorumd's view of the cluster: INFO, the QUORUM.* operator commands,
 * and the member address table (announcements, handing addresses to the node).
 *
 * Layer: server. Internal to src/server (commands.c calls these through its table).
 *
 * Membership commands run on the leader only (a follower answers
 * "-NOTLEADER <id> <client address>" or "-TRYAGAIN no leader"), and answer once the new
 * configuration is committed:
 *   QUORUM.ADD id peer_address client_address  record the addresses through the log, then
 *                                              add the node as a learner;
 *   QUORUM.PROMOTE id                          learner -> voter;
 *   QUORUM.REMOVE id                           voter or learner -> gone;
 *   QUORUM.TRANSFER [id]                       hand leadership over (default: the voter
 *                                              with the most of the log) and wait for it.
 */
#ifndef QR_SERVER_ADMIN_H
#define QR_SERVER_ADMIN_H

#include "server/server_internal.h"

/* LOCAL commands: write their reply to c->out. */
int qr__admin_info(struct qr__client *c, const struct qr_buf *args, size_t args_count);
int qr__admin_status(struct qr__client *c, const struct qr_buf *args, size_t args_count);
int qr__admin_members(struct qr__client *c, const struct qr_buf *args, size_t args_count);
int qr__admin_snapshot(struct qr__client *c, const struct qr_buf *args, size_t args_count);

/* ADMIN commands: complete c->admin_pending now or later. Return 0 or QR_ENOMEM. */
int qr__admin_add(struct qr__client *c, const struct qr_buf *args, size_t args_count);
int qr__admin_promote(struct qr__client *c, const struct qr_buf *args, size_t args_count);
int qr__admin_remove(struct qr__client *c, const struct qr_buf *args, size_t args_count);
int qr__admin_transfer(struct qr__client *c, const struct qr_buf *args, size_t args_count);

/** After each loop turn: finish transfers that completed or timed out. */
void qr__admin_check(struct qr_server *s);

/** The server closes: fail the transfers still waiting. */
void qr__admin_close(struct qr_server *s);

#endif /* QR_SERVER_ADMIN_H */
