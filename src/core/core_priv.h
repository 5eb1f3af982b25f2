/*
 * core/core_priv.h: functions shared by the core's .c files.
 *
 * Layer: core (pure). Not part of the public API.
 */
#ifndef QR_CORE_PRIV_H
#define QR_CORE_PRIV_H

#include "core/core_internal.h"

/* core.c */
bool qr__core_is_voter(const struct qr_core *core, qr_node_id id);
bool qr__core_is_member(const struct qr_core *core, qr_node_id id);
struct qr__progress *qr__core_progress(struct qr_core *core, qr_node_id id);
int qr__core_progress_sync(struct qr_core *core);
int qr__core_config_set(struct qr_core *core, const struct qr_config *config, qr_index index);
void qr__core_set_term(struct qr_core *core, qr_term term);
void qr__core_become_follower(struct qr_core *core, qr_term term, qr_node_id leader);
void qr__core_election_check(struct qr_core *core);
void qr__core_self_vote_durable(struct qr_core *core);
void qr__core_campaign_transfer(struct qr_core *core);
void qr__core_on_vote(struct qr_core *core, const struct qr_msg *m);
void qr__core_on_vote_response(struct qr_core *core, const struct qr_msg *m);

/* core_replicate.c */
int qr__core_append_local(struct qr_core *core, const struct qr_entry *entry);
void qr__core_broadcast_append(struct qr_core *core);
void qr__core_broadcast_heartbeat(struct qr_core *core);
bool qr__core_quorum_active(struct qr_core *core);
int qr__core_on_append(struct qr_core *core, const struct qr_msg *m);
void qr__core_on_append_response(struct qr_core *core, const struct qr_msg *m);
void qr__core_on_heartbeat(struct qr_core *core, const struct qr_msg *m);
void qr__core_on_heartbeat_response(struct qr_core *core, const struct qr_msg *m);
void qr__core_maybe_commit(struct qr_core *core);
void qr__core_commit_to(struct qr_core *core, qr_index commit);

/* core_snapshot.c */
int qr__core_on_snapshot(struct qr_core *core, const struct qr_msg *m);
void qr__core_on_snapshot_response(struct qr_core *core, const struct qr_msg *m);
void qr__core_send_snapshot_chunk(struct qr_core *core, struct qr__progress *pr);
void qr__core_snapshot_tick(struct qr_core *core);

/* core_read.c */
void qr__core_on_read_index(struct qr_core *core, const struct qr_msg *m);
void qr__core_on_read_index_response(struct qr_core *core, const struct qr_msg *m);
void qr__core_reads_fail_all(struct qr_core *core);
void qr__core_reads_tick(struct qr_core *core);
void qr__core_reads_on_commit(struct qr_core *core);
void qr__core_reads_on_ack(struct qr_core *core);

/* core_ready.c */
/* Queues a message (from is filled in). `durable` holds it until the data it depends on
 * (entries appended and term/vote changed so far) is reported persisted. */
void qr__core_send(struct qr_core *core, const struct qr_msg *m, bool durable);
void qr__core_on_persisted(struct qr_core *core);
void qr__core_ready_release(struct qr_core *core);
/* Records a truncation of the log at `from` for durability tracking. */
void qr__core_note_truncate(struct qr_core *core, qr_index from);

#endif /* QR_CORE_PRIV_H */
