/*
 * core/core_snapshot.c: snapshots: describing, taking, sending in chunks,
 * receiving and installing.
 *
 * Layer: core (pure). The core never sees a file: the leader's driver fills
 * each chunk's bytes from its snapshot at the offset the core names, and the
 * follower's driver writes received chunks where the core says. The core
 * checks the CRC32C of the whole transfer, keeps one chunk outstanding per
 * follower, and resumes from the offset the follower reports after a loss.
 */
#include <string.h>

#include "core/core_internal.h"
#include "core/core_priv.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"
#include "util/log.h"

/* Ticks without an answer before a snapshot chunk is sent again. */
#define CHUNK_RESEND_TICKS 3

int qr_core_snapshot_meta(const struct qr_core *core,
                          qr_index index,
                          struct qr_snapshot_meta *meta_out)
{
    QR_ASSERT(core != NULL && meta_out != NULL);
    if (index == 0 || index > core->applied ||
        (core->has_snapshot && index <= core->snapshot.index)) {
        return QR_EINVAL;
    }
    qr_term term = 0;
    if (!qr__log_term(&core->log, index, &term)) {
        return QR_ENOTFOUND;
    }
    memset(meta_out, 0, sizeof(*meta_out));
    meta_out->index = index;
    meta_out->term = term;
    /* The configuration in effect at `index`: its last config entry, else the snapshot's. */
    meta_out->config = core->has_snapshot ? core->snapshot.config : core->config;
    for (qr_index i = index; i > core->log.offset; i--) {
        const struct qr_entry *e = qr__log_get(&core->log, i);
        if (e->type == QR_ENTRY_CONFIG &&
            qr_core_config_decode(e->data.base, e->data.len, &meta_out->config, NULL) == 0) {
            break;
        }
    }
    return 0;
}

int qr_core_snapshot_taken(struct qr_core *core,
                           const struct qr_snapshot_meta *meta,
                           uint64_t trailing)
{
    QR_ASSERT(core != NULL && meta != NULL && !core->ready_taken);
    struct qr_snapshot_meta expected;
    int rv = qr_core_snapshot_meta(core, meta->index, &expected);
    if (rv != 0) {
        return QR_EINVAL;
    }
    if (expected.term != meta->term ||
        memcmp(&expected.config, &meta->config, sizeof(expected.config)) != 0) {
        return QR_EINVAL;
    }
    core->snapshot = *meta;
    core->has_snapshot = true;
    if (meta->index > trailing) {
        qr_index upto = meta->index - trailing;
        qr_term upto_term = 0;
        if (upto > core->log.offset && qr__log_term(&core->log, upto, &upto_term)) {
            qr__log_compact(&core->log, upto, upto_term);
        }
    }
    QR_LOG_INFOF("core: node=%llu term=%llu snapshot index=%llu size=%llu, log from %llu",
                 (unsigned long long)core->opts.id, (unsigned long long)core->term,
                 (unsigned long long)meta->index, (unsigned long long)meta->size,
                 (unsigned long long)qr__log_first_index(&core->log));
    qr__core_check_invariants(core);
    return 0;
}

/* ---- Leader ----------------------------------------------------------------------- */

void qr__core_send_snapshot_chunk(struct qr_core *core, struct qr__progress *pr)
{
    QR_ASSERT(pr->state == QR__PROGRESS_SNAPSHOT && core->has_snapshot);
    if (pr->snapshot_index != core->snapshot.index) {
        /* A newer snapshot replaced the one being sent: start that one over. */
        pr->snapshot_index = core->snapshot.index;
        pr->snapshot_offset = 0;
        pr->snapshot_sent = false;
    }
    if (pr->snapshot_sent) {
        return;
    }
    uint64_t size = core->snapshot.size;
    uint64_t offset = pr->snapshot_offset <= size ? pr->snapshot_offset : 0;
    uint64_t left = size - offset;
    uint32_t chunk =
        left < core->opts.snapshot_chunk_size ? (uint32_t)left : core->opts.snapshot_chunk_size;
    struct qr_msg m;
    memset(&m, 0, sizeof(m));
    m.type = QR_MSG_SNAPSHOT;
    m.to = pr->id;
    m.term = core->term;
    m.snapshot = &core->snapshot;
    m.offset = offset;
    m.chunk_size = chunk;
    m.last_chunk = offset + chunk == size;
    qr__core_send(core, &m, false);
    pr->snapshot_sent = true;
    pr->snapshot_idle_ticks = 0;
}

void qr__core_snapshot_tick(struct qr_core *core)
{
    for (size_t i = 0; i < core->progress_count; i++) {
        struct qr__progress *pr = &core->progress[i];
        if (pr->state == QR__PROGRESS_SNAPSHOT && pr->snapshot_sent &&
            ++pr->snapshot_idle_ticks >= CHUNK_RESEND_TICKS) {
            pr->snapshot_sent = false;
            qr__core_send_snapshot_chunk(core, pr);
        }
    }
}

void qr__core_on_snapshot_response(struct qr_core *core, const struct qr_msg *m)
{
    if (core->role != QR_ROLE_LEADER) {
        return;
    }
    struct qr__progress *pr = qr__core_progress(core, m->from);
    if (pr == NULL) {
        return;
    }
    pr->recent_active = true;
    if (pr->state != QR__PROGRESS_SNAPSHOT || m->index != pr->snapshot_index) {
        return;
    }
    if (!m->reject && !m->last_chunk && pr->snapshot_sent && m->offset <= pr->snapshot_offset) {
        return; /* A duplicate or stale answer: the chunk in flight answers for itself. */
    }
    pr->snapshot_sent = false;
    if (m->reject) {
        pr->snapshot_offset = 0;
    } else if (m->last_chunk) {
        if (m->index > pr->match) {
            pr->match = m->index;
        }
        pr->state = QR__PROGRESS_PROBE;
        pr->probe_sent = false;
        pr->next = pr->match + 1;
        qr__core_maybe_commit(core);
        return;
    } else {
        pr->snapshot_offset = m->offset;
    }
    qr__core_send_snapshot_chunk(core, pr);
}

/* ---- Follower --------------------------------------------------------------------- */

static void snapshot_reply(
    struct qr_core *core, const struct qr_msg *m, uint64_t offset, bool done, bool reject)
{
    struct qr_msg r;
    memset(&r, 0, sizeof(r));
    r.type = QR_MSG_SNAPSHOT_RESPONSE;
    r.to = m->from;
    r.term = core->term;
    r.index = m->snapshot->index;
    r.offset = offset;
    r.last_chunk = done;
    r.reject = reject;
    /* "Done" promises the snapshot is installed durably. */
    qr__core_send(core, &r, done);
}

static void install(struct qr_core *core, const struct qr_snapshot_meta *meta)
{
    QR_LOG_INFOF("core: node=%llu term=%llu installing snapshot index=%llu term=%llu",
                 (unsigned long long)core->opts.id, (unsigned long long)core->term,
                 (unsigned long long)meta->index, (unsigned long long)meta->term);
    /* Everything on disk is replaced by the snapshot in the next persist batch. */
    qr__core_note_truncate(core, core->log.offset + 1);
    qr__log_reset(&core->log, meta->index, meta->term);
    core->install = *meta;
    core->install_pending = true;
    core->unstable_from = meta->index + 1;
    if (core->durable > meta->index) {
        core->durable = meta->index;
    }
    core->commit = meta->index;
    if (core->applied > meta->index) {
        core->applied = meta->index;
    }
    core->snapshot = *meta;
    core->has_snapshot = true;
    (void)qr__core_config_set(core, &meta->config, meta->index); /* Logged on failure. */
}

static int accept_chunk(struct qr_core *core, const struct qr_msg *m)
{
    if (core->chunks_count == QR_CORE_CHUNKS_MAX) {
        return QR_EBUSY;
    }
    struct qr_snapshot_chunk *c = &core->chunks[core->chunks_count];
    c->snapshot_index = m->snapshot->index;
    c->offset = m->offset;
    c->data.len = m->data.len;
    c->data.base = NULL;
    if (m->data.len > 0) {
        c->data.base = qr_malloc(m->data.len);
        if (c->data.base == NULL) {
            return QR_ENOMEM;
        }
        memcpy(c->data.base, m->data.base, m->data.len);
    }
    core->chunks_count++;
    core->recv_crc = qr__crc32c(core->recv_crc, m->data.base, m->data.len);
    core->recv_offset += m->data.len;
    return 0;
}

int qr__core_on_snapshot(struct qr_core *core, const struct qr_msg *m)
{
    const struct qr_snapshot_meta *meta = m->snapshot;
    if (core->role != QR_ROLE_FOLLOWER && core->role != QR_ROLE_LEARNER) {
        qr__core_become_follower(core, core->term, m->from);
    }
    core->leader = m->from;
    core->election_elapsed = 0;
    if (meta->index <= core->commit) {
        snapshot_reply(core, m, meta->size, true, false); /* We have all of it already. */
        return 0;
    }
    if (core->install_pending) {
        return 0; /* One install at a time: the leader resends once this one is handed out. */
    }
    qr_term have = 0;
    if (qr__log_term(&core->log, meta->index, &have) && have == meta->term) {
        /* Raft fig. 13: our log already holds the snapshot's last entry, so by log
         * matching it holds everything the snapshot covers. Keep the log (its suffix may
         * hold committed entries this node helps to keep durable) and commit up to it. */
        qr__core_commit_to(core, meta->index);
        snapshot_reply(core, m, meta->size, true, false);
        return 0;
    }
    if (m->offset == 0) {
        core->recv_active = true;
        core->recv_meta = *meta;
        core->recv_offset = 0;
        core->recv_crc = 0;
    }
    bool same = core->recv_active && core->recv_meta.index == meta->index &&
                core->recv_meta.term == meta->term && core->recv_meta.size == meta->size &&
                core->recv_meta.crc == meta->crc;
    if (!same || m->offset != core->recv_offset || m->offset + m->data.len > meta->size) {
        snapshot_reply(core, m, same ? core->recv_offset : 0, false, !same);
        return 0;
    }
    int rv = accept_chunk(core, m);
    if (rv != 0) {
        return rv;
    }
    if (!m->last_chunk) {
        snapshot_reply(core, m, core->recv_offset, false, false);
        return 0;
    }
    core->recv_active = false;
    char errmsg[QR_ERRMSG_SIZE];
    if (core->recv_offset != meta->size || core->recv_crc != meta->crc ||
        qr_core_config_validate(&meta->config, errmsg) != 0) {
        QR_LOG_WARNF("core: node=%llu term=%llu snapshot %llu from %llu failed its check; "
                     "restarting the transfer",
                     (unsigned long long)core->opts.id, (unsigned long long)core->term,
                     (unsigned long long)meta->index, (unsigned long long)m->from);
        snapshot_reply(core, m, 0, false, true);
        return 0;
    }
    install(core, meta);
    snapshot_reply(core, m, meta->size, true, false);
    return 0;
}
