/*
 * node/node.c: a replica's lifecycle and the loop that drives its consensus core.
 *
 * Layer: node. It opens storage and restores the state machine at start-up (the only time
 * the loop's thread touches the disk), then turns every output batch of the core into
 * work: the persist part becomes a storage job for the node's writer thread
 * (node_storage.c), messages go to the peer links (node_peer.c), received snapshot chunks
 * collect in memory, committed entries are applied to the application's state machine and
 * complete the requests waiting for them (node_request.c). Inputs (peer messages, ticks,
 * proposals) only feed the core and ask for a drain on the next loop iteration, so
 * everything that arrives in one iteration leaves in one batch (DESIGN rule 7). User callbacks
 * never run between qr_core_ready() and qr_core_advance().
 */
#include <string.h>

#include "node/node_internal.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

#define NODE_TICK_MS_DEFAULT            100
#define NODE_ELECTION_TICKS_DEFAULT     10
#define NODE_SNAPSHOT_ENTRIES_DEFAULT   10000
#define NODE_SNAPSHOT_TRAILING_DEFAULT  1000
#define NODE_REQUEST_TIMEOUT_MS_DEFAULT 5000
#define NODE_REQUESTS_MAX_DEFAULT       4096
#define NODE_PEER_QUEUE_SIZE_DEFAULT    ((uint64_t)64 << 20)
#define NODE_SNAPSHOT_SIZE_MAX_DEFAULT  ((uint64_t)1 << 30)

/* Snapshot at the latest after this many times snapshot_entries (bounds the log in memory
   when the state is much larger than what is written). */
#define NODE_SNAPSHOT_CAP_FACTOR 16
/* A snapshot waits until the log applied since the last one is this many times its size. */
#define NODE_SNAPSHOT_LOG_FACTOR 4
/* Bytes an entry costs beyond its data (index, term, framing), for the snapshot policy. */
#define NODE_ENTRY_OVERHEAD_SIZE 32

_Static_assert(QR__NODE_BACKOFF_MS_MIN < QR__NODE_BACKOFF_MS_MAX, "backoff grows");

void qr_node_opts_default(struct qr_node_opts *opts)
{
    QR_ASSERT(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->sync = QR_STORAGE_SYNC_ALWAYS;
    opts->tick_ms = NODE_TICK_MS_DEFAULT;
    opts->election_ticks = NODE_ELECTION_TICKS_DEFAULT;
    opts->snapshot_entries = NODE_SNAPSHOT_ENTRIES_DEFAULT;
    opts->snapshot_trailing = NODE_SNAPSHOT_TRAILING_DEFAULT;
    opts->request_timeout_ms = NODE_REQUEST_TIMEOUT_MS_DEFAULT;
    opts->requests_max = NODE_REQUESTS_MAX_DEFAULT;
    opts->peer_queue_size_max = NODE_PEER_QUEUE_SIZE_DEFAULT;
    opts->snapshot_size_max = NODE_SNAPSHOT_SIZE_MAX_DEFAULT;
}

/* ---- Snapshot bytes ------------------------------------------------------------------- */

struct qr__node_bytes *
qr__node_bytes_new(struct qr_node *node, struct qr_buf buf, bool is_fsm_owned)
{
    struct qr__node_bytes *bytes = qr_malloc(sizeof(*bytes));
    if (bytes == NULL) {
        if (is_fsm_owned && node->fsm.release != NULL && buf.base != NULL) {
            node->fsm.release(node->fsm.ctx, buf);
        } else if (!is_fsm_owned) {
            qr_free(buf.base);
        }
        return NULL;
    }
    bytes->refs = 1;
    bytes->is_fsm_owned = is_fsm_owned;
    bytes->buf = buf;
    return bytes;
}

struct qr__node_bytes *qr__node_bytes_ref(struct qr__node_bytes *bytes)
{
    QR_ASSERT(bytes != NULL && bytes->refs > 0 && bytes->refs < UINT32_MAX);
    bytes->refs++;
    return bytes;
}

void qr__node_bytes_unref(struct qr_node *node, struct qr__node_bytes *bytes)
{
    if (bytes == NULL) {
        return;
    }
    QR_ASSERT(bytes->refs > 0);
    if (--bytes->refs > 0) {
        return;
    }
    if (!bytes->is_fsm_owned) {
        qr_free(bytes->buf.base);
    } else if (node->fsm.release != NULL && bytes->buf.base != NULL) {
        node->fsm.release(node->fsm.ctx, bytes->buf);
    }
    qr_free(bytes);
}

void qr__node_snapshot_set(struct qr_node *node, qr_index index, struct qr__node_bytes *bytes)
{
    QR_ASSERT(bytes != NULL && index > 0);
    qr__node_bytes_unref(node, node->snapshot);
    node->snapshot = bytes;
    node->snapshot_index = index;
    node->snapshot_next = index + node->opts.snapshot_entries;
    node->snapshot_cap = index + NODE_SNAPSHOT_CAP_FACTOR * node->opts.snapshot_entries;
    node->applied_bytes = 0;
}

/* ---- Options ---------------------------------------------------------------------------- */

static void opts_fill_defaults(struct qr_node_opts *o)
{
    struct qr_node_opts d;
    qr_node_opts_default(&d);
    o->tick_ms = o->tick_ms != 0 ? o->tick_ms : d.tick_ms;
    o->election_ticks = o->election_ticks != 0 ? o->election_ticks : d.election_ticks;
    o->snapshot_entries = o->snapshot_entries != 0 ? o->snapshot_entries : d.snapshot_entries;
    o->snapshot_trailing = o->snapshot_trailing != 0 ? o->snapshot_trailing : d.snapshot_trailing;
    o->request_timeout_ms =
        o->request_timeout_ms != 0 ? o->request_timeout_ms : d.request_timeout_ms;
    o->requests_max = o->requests_max != 0 ? o->requests_max : d.requests_max;
    o->peer_queue_size_max =
        o->peer_queue_size_max != 0 ? o->peer_queue_size_max : d.peer_queue_size_max;
    o->snapshot_size_max = o->snapshot_size_max != 0 ? o->snapshot_size_max : d.snapshot_size_max;
}

static int opts_check(const struct qr_node_opts *o, const struct qr_fsm *fsm, char *errmsg)
{
    if (o->id == 0 || o->cluster_id == 0) {
        return qr__errf(errmsg, QR_EINVAL, "node: id and cluster id must be non-zero");
    }
    if (o->data_dir == NULL || o->data_dir[0] == '\0') {
        return qr__errf(errmsg, QR_EINVAL, "node %llu: no data directory",
                        (unsigned long long)o->id);
    }
    if (o->peers == NULL || o->peers_count == 0 || o->peers_count > QR_NODE_PEERS_MAX) {
        return qr__errf(errmsg, QR_EINVAL, "node %llu: %zu peers (1 to %d)",
                        (unsigned long long)o->id, o->peers_count, QR_NODE_PEERS_MAX);
    }
    if (o->secret == NULL || o->secret_size < QR_HANDSHAKE_SECRET_SIZE_MIN ||
        o->secret_size > QR_HANDSHAKE_SECRET_SIZE_MAX) {
        return qr__errf(errmsg, QR_EINVAL, "node %llu: secret of %zu bytes (%d to %d)",
                        (unsigned long long)o->id, o->secret != NULL ? o->secret_size : 0,
                        QR_HANDSHAKE_SECRET_SIZE_MIN, QR_HANDSHAKE_SECRET_SIZE_MAX);
    }
    if (o->sync != QR_STORAGE_SYNC_ALWAYS && o->sync != QR_STORAGE_SYNC_NONE) {
        return qr__errf(errmsg, QR_EINVAL, "node %llu: unknown sync policy %d",
                        (unsigned long long)o->id, (int)o->sync);
    }
    if (fsm == NULL || fsm->apply == NULL || fsm->snapshot == NULL || fsm->restore == NULL) {
        return qr__errf(errmsg, QR_EINVAL,
                        "node %llu: the state machine needs apply, snapshot "
                        "and restore",
                        (unsigned long long)o->id);
    }
    return 0;
}

/* ---- Start-up ---------------------------------------------------------------------------- */

/* Read the whole current snapshot (blocking: start-up only) and restore the fsm from it. */
static int
node_load_snapshot(struct qr_node *node, const struct qr_snapshot_meta *meta, char *errmsg)
{
    if (meta->size > node->opts.snapshot_size_max || meta->size > SIZE_MAX) {
        return qr__errf(errmsg, QR_ETOOBIG, "node: snapshot %llu has %llu bytes, limit %llu",
                        (unsigned long long)meta->index, (unsigned long long)meta->size,
                        (unsigned long long)node->opts.snapshot_size_max);
    }
    size_t size = (size_t)meta->size;
    struct qr_buf buf = {qr_malloc(size > 0 ? size : 1), size};
    if (buf.base == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "node: no memory for snapshot %llu",
                        (unsigned long long)meta->index);
    }
    size_t done = 0;
    while (done < size) { /* Bounded: each pass reads at least one byte or fails. */
        size_t n = 0;
        int rv = qr_storage_snapshot_read(node->storage, meta->index, done, buf.base + done,
                                          size - done, &n);
        if (rv == 0 && n == 0) {
            rv = QR_EIO;
        }
        if (rv != 0) {
            qr_free(buf.base);
            return qr__errf(errmsg, rv, "node: reading snapshot %llu: %s",
                            (unsigned long long)meta->index, qr_storage_errmsg(node->storage));
        }
        done += n;
    }
    int rv = node->fsm.restore(node->fsm.ctx, buf);
    if (rv != 0) {
        qr_free(buf.base);
        return qr__errf(errmsg, rv < 0 ? rv : QR_EINVAL,
                        "node: the state machine refused snapshot %llu (%d)",
                        (unsigned long long)meta->index, rv);
    }
    struct qr__node_bytes *bytes = qr__node_bytes_new(node, buf, false);
    if (bytes == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "node: no memory");
    }
    qr__node_snapshot_set(node, meta->index, bytes);
    node->applied = meta->index;
    return 0;
}

static void node_bootstrap_config(const struct qr_node *node, struct qr_config *config)
{
    memset(config, 0, sizeof(*config));
    for (size_t i = 0; i < node->peers_count; i++) {
        /* Insertion keeps voters ascending, as a configuration requires. */
        qr_node_id id = node->peers[i]->id;
        size_t at = config->voters_count;
        while (at > 0 && config->voters[at - 1] > id) {
            config->voters[at] = config->voters[at - 1];
            at--;
        }
        config->voters[at] = id;
        config->voters_count++;
    }
}

static int node_open(struct qr_node *node, char *errmsg)
{
    struct qr_storage_opts so;
    qr_storage_opts_default(&so, node->opts.cluster_id, node->opts.id);
    so.sync = node->opts.sync;
    so.fs = node->opts.storage_fs;
    so.create = true;
    so.batch_size_max = QR__NODE_STORAGE_BATCH_SIZE;
    struct qr_storage_recovered rec;
    int rv = qr_storage_open(node->data_dir, &so, &node->storage, &rec, errmsg);
    if (rv != 0) {
        return rv;
    }
    if (rec.has_snapshot) {
        rv = node_load_snapshot(node, &rec.snapshot, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    struct qr_core_opts co;
    qr_core_opts_default(&co, node->opts.id);
    co.seed = uv_hrtime() ^ (node->opts.id * 0x9e3779b97f4a7c15ull);
    co.election_ticks = node->opts.election_ticks;
    co.persist_batches_max = QR__NODE_PERSIST_BATCHES;
    /* An entry the core accepts must fit in one storage batch: a larger one would stop every
     * node that tries to persist it. Refused at proposal time instead (QR_ETOOBIG). */
    uint64_t storage_entry_max = qr_storage_entry_size_max(node->storage);
    if (co.entry_bytes_max > storage_entry_max) {
        co.entry_bytes_max = (uint32_t)storage_entry_max;
    }
    struct qr_core_state st;
    qr_storage_core_state(&rec, &st);
    struct qr_config boot;
    if (!node->opts.join) {
        node_bootstrap_config(node, &boot);
        st.config = &boot;
    }
    rv = qr_core_create(&co, &st, &node->core, errmsg);
    qr_storage_release_recovered(node->storage);
    if (rv != 0) {
        return rv;
    }
    QR_LOG_INFOF("node: node=%llu opened %s: hard state term=%llu commit=%llu, %zu entries, "
                 "snapshot=%llu",
                 (unsigned long long)node->opts.id, node->data_dir,
                 (unsigned long long)rec.hard_state.term, (unsigned long long)rec.hard_state.commit,
                 rec.entries_count, (unsigned long long)node->snapshot_index);
    return 0;
}

static void node_on_handle_closed(uv_handle_t *handle)
{
    qr__node_handle_closed(handle->data);
}

static void node_init_handles(struct qr_node *node)
{
    QR__NODE_CHECK(uv_timer_init(node->loop, &node->tick_timer)); /* Cannot fail. */
    QR__NODE_CHECK(uv_timer_init(node->loop, &node->retry_timer));
    QR__NODE_CHECK(uv_idle_init(node->loop, &node->idle));
    node->tick_timer.data = node;
    node->retry_timer.data = node;
    node->idle.data = node;
    node->handles_open = 4; /* And the writer's wake-up (qr__node_storage_init). */
}

/* Free what node_create may have built; only before any handle exists. */
static void node_free(struct qr_node *node)
{
    qr__node_bytes_unref(node, node->snapshot);
    qr_free(node->receive.data);
    qr_core_destroy(node->core);
    qr_storage_close(node->storage);
    qr__node_storage_free(node);
    qr__node_peers_free(node);
    qr_free(node->data_dir);
    memset(node->secret, 0, sizeof(node->secret));
    qr_free(node);
}

int qr_node_create(struct uv_loop_s *loop,
                   const struct qr_node_opts *opts,
                   const struct qr_fsm *fsm,
                   struct qr_node **node_out,
                   char *errmsg)
{
    QR_ASSERT(loop != NULL && opts != NULL && node_out != NULL);
    *node_out = NULL;
    int rv = opts_check(opts, fsm, errmsg);
    if (rv != 0) {
        return rv;
    }
    struct qr_node *node = qr_calloc(1, sizeof(*node));
    if (node == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "node: out of memory");
    }
    node->loop = loop;
    node->opts = *opts;
    opts_fill_defaults(&node->opts);
    node->fsm = *fsm;
    memcpy(node->secret, opts->secret, opts->secret_size);
    node->opts.secret = node->secret;
    node->data_dir = qr_strdup(opts->data_dir);
    node->opts.data_dir = node->data_dir;
    node->snapshot_next = node->opts.snapshot_entries;
    node->snapshot_cap = NODE_SNAPSHOT_CAP_FACTOR * node->opts.snapshot_entries;
    qr__rng_seed(&node->rng, uv_hrtime() ^ opts->id);
    qr__node_requests_init(node);
    rv = node->data_dir == NULL ? qr__errf(errmsg, QR_ENOMEM, "node: out of memory") : 0;
    if (rv == 0) {
        rv = qr__node_peers_init(node, errmsg); /* Copies peers; opts.peers is not used after. */
    }
    node->opts.peers = NULL;
    if (rv == 0) {
        rv = node_open(node, errmsg);
    }
    if (rv == 0) {
        rv = qr__node_storage_init(node, errmsg); /* Last: it makes a handle. */
    }
    if (rv != 0) {
        (void)qr__err_wrapf(errmsg, rv, "node %llu", (unsigned long long)opts->id);
        node_free(node); /* Peers hold no handle yet: qr__node_peers_init starts none. */
        return rv;
    }
    node_init_handles(node);
    qr__node_check_invariants(node);
    *node_out = node;
    return 0;
}

/* ---- Running ------------------------------------------------------------------------------ */

static void node_on_tick(uv_timer_t *timer)
{
    struct qr_node *node = timer->data;
    if (node->is_closing || node->fatal_err != 0) {
        return;
    }
    qr_core_tick(node->core);
    qr__node_requests_timeouts(node);
    qr__node_peers_tick(node);
    qr__node_kick(node);
}

int qr_node_start(struct qr_node *node, char *errmsg)
{
    QR_ASSERT(node != NULL);
    if (node->is_started || node->is_closing) {
        return qr__errf(errmsg, QR_EINVAL, "node %llu: started already or closing",
                        (unsigned long long)node->opts.id);
    }
    int rv = qr__node_storage_start(node, errmsg);
    if (rv == 0) {
        rv = qr__node_peers_start(node, errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    node->is_started = true;
    QR__NODE_CHECK(
        uv_timer_start(&node->tick_timer, node_on_tick, node->opts.tick_ms, node->opts.tick_ms));
    QR_LOG_INFOF("node: node=%llu started, listening on %s", (unsigned long long)node->opts.id,
                 node->listen_address);
    qr__node_kick(node);
    return 0;
}

static void node_drain(struct qr_node *node);

static void node_on_idle(uv_idle_t *idle)
{
    struct qr_node *node = idle->data;
    QR__NODE_CHECK(uv_idle_stop(idle));
    node_drain(node);
}

void qr__node_kick(struct qr_node *node)
{
    if (node->is_closing || uv_is_active((uv_handle_t *)&node->idle)) {
        return;
    }
    QR__NODE_CHECK(uv_idle_start(&node->idle, node_on_idle));
}

void qr__node_release(struct qr_node *node, struct qr_buf buf)
{
    if (buf.base != NULL && node->fsm.release != NULL) {
        node->fsm.release(node->fsm.ctx, buf);
    }
}

static void node_note_soft_state(struct qr_node *node, const struct qr_ready *rd)
{
    if (rd->role == node->role && rd->leader == node->leader && rd->term == node->term) {
        return;
    }
    QR_LOG_INFOF("node: node=%llu term=%llu role=%s leader=%llu", (unsigned long long)node->opts.id,
                 (unsigned long long)rd->term, qr_role_name(rd->role),
                 (unsigned long long)rd->leader);
    node->role = rd->role;
    node->leader = rd->leader;
    node->term = rd->term;
}

/* Chunks arrive in order (the core checks offsets); a transfer restarts at offset 0. */
static void node_receive_chunks(struct qr_node *node, const struct qr_ready *rd)
{
    struct qr__node_receive *r = &node->receive;
    for (size_t i = 0; i < rd->snapshot_chunks_count; i++) {
        const struct qr_snapshot_chunk *c = &rd->snapshot_chunks[i];
        if (c->offset == 0) {
            r->snapshot_index = c->snapshot_index;
            r->size = 0;
            r->is_failed = false;
        }
        if (r->is_failed || c->data.len == 0) {
            continue;
        }
        if (c->snapshot_index != r->snapshot_index || c->offset != r->size ||
            r->size + c->data.len > node->opts.snapshot_size_max) {
            r->is_failed = true;
            continue;
        }
        if (r->size + c->data.len > r->capacity) {
            size_t want = r->capacity < 4096 ? 4096 : r->capacity * 2;
            want = want < r->size + c->data.len ? r->size + c->data.len : want;
            uint8_t *grown = qr_realloc(r->data, want);
            if (grown == NULL) {
                r->is_failed = true;
                continue;
            }
            r->data = grown;
            r->capacity = want;
        }
        memcpy(r->data + r->size, c->data.base, c->data.len);
        r->size += c->data.len;
    }
}

/* The core verified a received snapshot: restore the fsm from the received bytes now, before
 * any later entry is applied (no committed entry accompanies it in this batch). */
static int
node_install_snapshot(struct qr_node *node, const struct qr_snapshot_meta *meta, char *errmsg)
{
    struct qr__node_receive *r = &node->receive;
    if (r->is_failed || r->snapshot_index != meta->index || r->size != meta->size) {
        return qr__errf(errmsg, QR_ETOOBIG,
                        "node: snapshot %llu from the leader was not kept (%zu of %llu bytes; "
                        "limit %llu bytes)",
                        (unsigned long long)meta->index, r->size, (unsigned long long)meta->size,
                        (unsigned long long)node->opts.snapshot_size_max);
    }
    struct qr_buf buf = {r->data, r->size};
    memset(r, 0, sizeof(*r));
    int rv = node->fsm.restore(node->fsm.ctx, buf);
    if (rv != 0) {
        qr_free(buf.base);
        return qr__errf(errmsg, QR_EFATAL, "node: the state machine refused snapshot %llu (%d)",
                        (unsigned long long)meta->index, rv);
    }
    struct qr__node_bytes *bytes = qr__node_bytes_new(node, buf, false);
    if (bytes == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "node: no memory for snapshot %llu",
                        (unsigned long long)meta->index);
    }
    qr__node_snapshot_set(node, meta->index, bytes);
    node->applied = meta->index;
    qr__node_requests_skipped(node, meta->index);
    QR_LOG_INFOF("node: node=%llu term=%llu restored snapshot index=%llu size=%llu from the "
                 "leader",
                 (unsigned long long)node->opts.id, (unsigned long long)node->term,
                 (unsigned long long)meta->index, (unsigned long long)meta->size);
    return 0;
}

static void node_send_messages(struct qr_node *node, const struct qr_ready *rd)
{
    for (size_t i = 0; i < rd->messages_count; i++) {
        const struct qr_msg *m = &rd->messages[i];
        if (m->type != QR_MSG_SNAPSHOT) {
            qr__node_peer_send_msg(node, m);
            continue;
        }
        /* The driver fills a snapshot chunk from the bytes kept in memory. */
        const struct qr__node_bytes *b = node->snapshot;
        if (b == NULL || m->snapshot->index != node->snapshot_index || m->offset > b->buf.len ||
            m->chunk_size > b->buf.len - m->offset) {
            QR_LOG_WARNF("node: node=%llu has no bytes for snapshot %llu offset %llu; chunk "
                         "dropped",
                         (unsigned long long)node->opts.id, (unsigned long long)m->snapshot->index,
                         (unsigned long long)m->offset);
            continue;
        }
        struct qr_msg chunk = *m;
        chunk.data.base = m->chunk_size > 0 ? b->buf.base + m->offset : NULL;
        chunk.data.len = m->chunk_size;
        qr__node_peer_send_msg(node, &chunk);
    }
}

static int node_apply(struct qr_node *node, const struct qr_ready *rd, char *errmsg)
{
    for (size_t i = 0; i < rd->committed_count; i++) {
        const struct qr_entry *e = &rd->committed[i];
        QR_ASSERT(e->index == node->applied + 1);
        struct qr_buf result = {NULL, 0};
        if (e->type == QR_ENTRY_NORMAL) {
            /* No result to build when no proposer here waits for this entry. */
            bool is_wanted = qr__node_requests_wait_for(node, e);
            int rv = node->fsm.apply(node->fsm.ctx, e->index, e->data, is_wanted ? &result : NULL);
            if (rv != 0) {
                qr__node_release(node, result);
                return qr__errf(errmsg, QR_EFATAL,
                                "node: the state machine failed to apply entry %llu (%d)",
                                (unsigned long long)e->index, rv);
            }
        }
        node->applied = e->index;
        node->applied_bytes += e->data.len + NODE_ENTRY_OVERHEAD_SIZE;
        qr__node_requests_applied(node, e, result);
    }
    return 0;
}

static void node_drain_one(struct qr_node *node)
{
    struct qr_ready rd;
    char errmsg[QR_ERRMSG_SIZE] = "";
    qr_core_ready(node->core, &rd);
    node->in_ready = true;
    if (rd.soft_state_changed) {
        node_note_soft_state(node, &rd);
    }
    node_receive_chunks(node, &rd);
    int rv = 0;
    if (rd.snapshot != NULL) {
        rv = node_install_snapshot(node, rd.snapshot, errmsg);
    }
    if (rv == 0 && rd.persist_seq != 0) {
        rv = qr__node_storage_persist(node, &rd);
        if (rv != 0) {
            (void)qr__errf(errmsg, rv, "node: no memory for persist batch %llu",
                           (unsigned long long)rd.persist_seq);
        }
    }
    node_send_messages(node, &rd);
    if (rv == 0) {
        rv = node_apply(node, &rd, errmsg);
    }
    qr__node_requests_reads(node, &rd);
    qr_core_advance(node->core);
    node->in_ready = false;
    if (rv != 0) {
        qr__node_fail(node, rv, errmsg);
    }
}

/* Take a local snapshot at the applied index and queue it for writing. */
static int node_snapshot_take(struct qr_node *node)
{
    struct qr_snapshot_meta meta;
    int rv = qr_core_snapshot_meta(node->core, node->applied, &meta);
    if (rv != 0) {
        return rv;
    }
    struct qr_buf data = {NULL, 0};
    rv = node->fsm.snapshot(node->fsm.ctx, &data);
    if (rv != 0) {
        QR_LOG_WARNF("node: node=%llu state machine could not snapshot at %llu (%d); will retry",
                     (unsigned long long)node->opts.id, (unsigned long long)node->applied, rv);
        return rv < 0 ? rv : QR_EINTERNAL;
    }
    struct qr__node_bytes *bytes = qr__node_bytes_new(node, data, true);
    if (bytes == NULL) {
        return QR_ENOMEM;
    }
    rv = qr__node_storage_snapshot(node, &meta, bytes);
    if (rv == 0) {
        node->snapshot_running = true;
    }
    return rv;
}

static void node_maybe_snapshot(struct qr_node *node)
{
    if (node->snapshot_running || node->fatal_err != 0 || node->applied < node->snapshot_next) {
        return;
    }
    /* By log size: a large state is written only once the log it replaces is a few times
       larger, so that snapshots cost at most a quarter of what the log costs. */
    uint64_t last_size = node->snapshot != NULL ? node->snapshot->buf.len : 0;
    if (node->applied_bytes < NODE_SNAPSHOT_LOG_FACTOR * last_size &&
        node->applied < node->snapshot_cap) {
        return;
    }
    if (node_snapshot_take(node) != 0) {
        /* Try again after as many entries again rather than on every batch. */
        node->snapshot_next = node->applied + node->opts.snapshot_entries;
    }
}

static void node_run_done(struct qr_node *node)
{
    if (node->fatal_cb_pending) {
        node->fatal_cb_pending = false;
        if (node->opts.fatal_cb != NULL) {
            node->opts.fatal_cb(node->opts.fatal_ctx, node->fatal_err, node->fatal_msg);
        }
    }
    qr__node_requests_run_done(node);
}

static void node_drain(struct qr_node *node)
{
    if (node->in_drain || node->is_closing) {
        return;
    }
    node->in_drain = true;
    for (int round = 0; round < QR__NODE_DRAIN_ROUNDS_MAX; round++) {
        node_run_done(node); /* User code: may propose, read, or close the node. */
        if (node->is_closing || node->fatal_err != 0 || !qr_core_has_ready(node->core)) {
            break;
        }
        node_drain_one(node);
        qr__node_requests_progress(node);
    }
    if (!node->is_closing) {
        node_run_done(node);
    }
    if (!node->is_closing) {
        node_maybe_snapshot(node);
        qr__node_peers_flush(node);
        qr__node_check_invariants(node);
        bool more = node->fatal_err == 0 && qr_core_has_ready(node->core);
        if (more || node->done.count > 0 || node->fatal_cb_pending) {
            qr__node_kick(node);
        }
    }
    node->in_drain = false;
}

/* ---- Failure and close ------------------------------------------------------------------- */

void qr__node_fail(struct qr_node *node, int err, const char *errmsg)
{
    QR_ASSERT(err < 0);
    if (node->fatal_err != 0 || node->is_closing) {
        return;
    }
    node->fatal_err = err;
    (void)qr__errf(node->fatal_msg, err, "%s", errmsg != NULL ? errmsg : "");
    QR_LOG_ERRORF("node: node=%llu term=%llu stopped: %s (%s); restart it to recover",
                  (unsigned long long)node->opts.id, (unsigned long long)node->term,
                  node->fatal_msg, qr_err_name(err));
    QR__NODE_CHECK(uv_timer_stop(&node->tick_timer));
    QR__NODE_CHECK(uv_timer_stop(&node->retry_timer));
    qr__node_storage_drop_queued(node);
    qr__node_peers_disconnect(node);
    qr__node_requests_fail_all(node, QR_EFATAL);
    node->fatal_cb_pending = true;
    qr__node_kick(node);
}

static void node_finish(struct qr_node *node)
{
    qr_node_close_cb cb = node->close_cb;
    void *ctx = node->close_ctx;
    /* The callbacks of requests canceled by the close run now, before the close callback. */
    qr__node_requests_run_done(node);
    QR_ASSERT(node->done.count == 0 && node->requests_count == 0);
    QR_ASSERT(!node->writer.is_started || node->writer.is_joined);
    QR_LOG_INFOF("node: node=%llu closed", (unsigned long long)node->opts.id);
    node_free(node);
    if (cb != NULL) {
        cb(ctx);
    }
}

void qr__node_maybe_finish(struct qr_node *node)
{
    if (node->is_closing && node->handles_open == 0) {
        node_finish(node);
    }
}

void qr__node_handle_closed(struct qr_node *node)
{
    QR_ASSERT(node->handles_open > 0);
    node->handles_open--;
    qr__node_maybe_finish(node);
}

void qr_node_close(struct qr_node *node, qr_node_close_cb cb, void *ctx)
{
    if (node == NULL) {
        return;
    }
    QR_ASSERT(!node->is_closing);
    node->close_cb = cb;
    node->close_ctx = ctx;
    qr__node_requests_fail_all(node, QR_ECANCELED);
    node->is_closing = true;
    qr__node_storage_close(node);
    uv_close((uv_handle_t *)&node->tick_timer, node_on_handle_closed);
    uv_close((uv_handle_t *)&node->retry_timer, node_on_handle_closed);
    uv_close((uv_handle_t *)&node->idle, node_on_handle_closed);
    qr__node_peers_close(node);
}

/* ---- Administration and state --------------------------------------------------------- */

static int node_check_usable(const struct qr_node *node)
{
    if (node->is_closing) {
        return QR_ESHUTDOWN;
    }
    return node->fatal_err != 0 ? QR_EFATAL : 0;
}

int qr_node_transfer_leader(struct qr_node *node, qr_node_id target)
{
    QR_ASSERT(node != NULL && !node->in_ready);
    int rv = node_check_usable(node);
    if (rv == 0) {
        rv = qr_core_transfer_leader(node->core, target);
    }
    if (rv == 0) {
        QR_LOG_INFOF("node: node=%llu term=%llu transferring leadership to %llu",
                     (unsigned long long)node->opts.id, (unsigned long long)node->term,
                     (unsigned long long)target);
        qr__node_kick(node);
    }
    return rv;
}

int qr_node_snapshot_now(struct qr_node *node)
{
    QR_ASSERT(node != NULL);
    int rv = node_check_usable(node);
    if (rv != 0) {
        return rv;
    }
    if (node->snapshot_running) {
        return QR_EBUSY;
    }
    if (node->applied <= node->snapshot_index) {
        return 0;
    }
    return node_snapshot_take(node);
}

int qr_node_add_peer(struct qr_node *node, const struct qr_node_peer *peer, char *errmsg)
{
    QR_ASSERT(node != NULL && peer != NULL);
    int rv = node_check_usable(node);
    if (rv != 0) {
        return qr__errf(errmsg, rv, "node: closing or stopped");
    }
    return qr__node_peer_add(node, peer, errmsg);
}

static void node_status_peers(const struct qr_node *node, struct qr_node_status *st)
{
    for (size_t i = 0; i < node->peers_count; i++) {
        const struct qr__node_peer *p = node->peers[i];
        if (p->id == node->opts.id) {
            continue;
        }
        struct qr_node_peer_status *ps = &st->peers[st->peers_count++];
        ps->id = p->id;
        ps->is_connected = (p->out != NULL && qr__handshake_is_accepted(&p->out->hs)) ||
                           (p->in != NULL && qr__handshake_is_accepted(&p->in->hs));
        ps->has_progress = qr_core_progress(node->core, p->id, &ps->match, &ps->next);
    }
}

void qr_node_status(const struct qr_node *node, struct qr_node_status *status_out)
{
    QR_ASSERT(node != NULL && status_out != NULL);
    struct qr_node_status *st = status_out;
    memset(st, 0, sizeof(*st));
    struct qr_core_status cs;
    qr_core_status(node->core, &cs);
    st->id = cs.id;
    st->role = cs.role;
    st->term = cs.term;
    st->leader = cs.leader;
    const struct qr__node_peer *leader =
        cs.leader != 0 ? qr__node_peer_find(node, cs.leader) : NULL;
    if (leader != NULL) {
        memcpy(st->leader_address, leader->client_address, sizeof(st->leader_address));
    }
    st->commit = cs.commit;
    st->applied = node->applied;
    st->durable = cs.durable;
    st->last_index = cs.last_index;
    st->snapshot_index = cs.snapshot_index;
    st->config = cs.config;
    node_status_peers(node, st);
    st->requests_count = node->requests_count;
    st->is_read_only = node->is_read_only;
    st->fatal_err = node->fatal_err;
    memcpy(st->fatal_msg, node->fatal_msg, sizeof(st->fatal_msg));
}

void qr__node_check_invariants(const struct qr_node *node)
{
#ifdef QR_DEBUG
    QR_ASSERT(node->peers_count <= QR_NODE_PEERS_MAX);
    QR_ASSERT(node->requests_count <= node->opts.requests_max);
    QR_ASSERT(node->snapshot == NULL || node->snapshot->refs > 0);
    QR_ASSERT((node->snapshot == NULL) == (node->snapshot_index == 0));
    if (node->core != NULL && !node->in_ready) {
        struct qr_core_status cs;
        qr_core_status(node->core, &cs);
        QR_ASSERT(cs.applied == node->applied);
    }
#else
    (void)node;
#endif
}
