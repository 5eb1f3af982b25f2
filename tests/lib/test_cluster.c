/*
 * tests/lib/test_cluster.c: the in-memory cluster used by core unit tests.
 */
#include "test_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/assert.h"

static void *xmalloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);
    QR_ASSERT(p != NULL);
    return p;
}

static struct qr_entry entry_copy(const struct qr_entry *e)
{
    struct qr_entry copy = *e;
    copy.data.base = xmalloc(e->data.len);
    if (e->data.len > 0) {
        memcpy(copy.data.base, e->data.base, e->data.len);
    }
    return copy;
}

static void entry_free(struct qr_entry *e)
{
    free(e->data.base);
    e->data.base = NULL;
}

static void node_start(struct tc_node *n, const struct qr_config *bootstrap)
{
    struct qr_core_opts opts;
    qr_core_opts_default(&opts, n->id);
    opts.seed = n->id * 7919;
    struct qr_core_state state;
    memset(&state, 0, sizeof(state));
    state.hard_state = n->hard_state;
    state.entries = n->log;
    state.entries_count = n->log_count;
    state.config = bootstrap;
    char errmsg[QR_ERRMSG_SIZE];
    int rv = qr_core_create(&opts, &state, &n->core, errmsg);
    if (rv != 0) {
        fprintf(stderr, "tc: create node %llu: %s\n", (unsigned long long)n->id, errmsg);
        abort();
    }
    n->down = false;
    n->pending_seq = 0;
}

void tc_init(struct tc_cluster *c, size_t n, size_t voters_count)
{
    QR_ASSERT(n <= TC_NODES_MAX && voters_count <= n);
    memset(c, 0, sizeof(*c));
    c->nodes_count = n;
    struct qr_config config;
    memset(&config, 0, sizeof(config));
    for (size_t i = 0; i < voters_count; i++) {
        config.voters[config.voters_count++] = i + 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct tc_node *node = &c->nodes[i];
        node->id = i + 1;
        node->auto_persist = true;
        /* Nodes beyond the voters join later: they start without a configuration. */
        node_start(node, i < voters_count ? &config : NULL);
    }
}

static void staged_clear(struct tc_node *n)
{
    for (size_t i = 0; i < n->staged_count; i++) {
        entry_free(&n->staged[i]);
    }
    free(n->staged);
    n->staged = NULL;
    n->staged_count = 0;
    n->staged_has_hard_state = false;
}

static void msg_free(struct tc_msg *m)
{
    for (size_t i = 0; i < m->msg.entries_count; i++) {
        entry_free(&m->entries[i]);
    }
    free(m->entries);
    free(m->snapshot);
    free(m->data);
}

static void node_free_disk(struct tc_node *n)
{
    for (size_t i = 0; i < n->log_count; i++) {
        entry_free(&n->log[i]);
    }
    free(n->log);
    n->log = NULL;
    n->log_count = 0;
    for (size_t i = 0; i < n->applied_count; i++) {
        entry_free(&n->applied[i]);
    }
    n->applied_count = 0;
}

void tc_close(struct tc_cluster *c)
{
    for (size_t i = 0; i < c->inbox_count; i++) {
        msg_free(&c->inbox[i]);
    }
    for (size_t i = 0; i < c->nodes_count; i++) {
        qr_core_destroy(c->nodes[i].core);
        staged_clear(&c->nodes[i]);
        node_free_disk(&c->nodes[i]);
    }
}

struct tc_node *tc_node(struct tc_cluster *c, qr_node_id id)
{
    QR_ASSERT(id >= 1 && id <= c->nodes_count);
    return &c->nodes[id - 1];
}

/* Keeps the batch aside until it is persisted; a crash before that loses it. */
static void disk_stage(struct tc_node *n, const struct qr_ready *rd)
{
    QR_ASSERT(n->staged_count == 0);
    if (rd->entries_count > 0) {
        n->staged = xmalloc(rd->entries_count * sizeof(*n->staged));
        for (size_t i = 0; i < rd->entries_count; i++) {
            n->staged[i] = entry_copy(&rd->entries[i]);
        }
        n->staged_count = rd->entries_count;
    }
    n->staged_has_hard_state = rd->has_hard_state;
    n->staged_hard_state = rd->hard_state;
}

static void disk_commit(struct tc_node *n)
{
    if (n->staged_count > 0) {
        qr_index first = n->staged[0].index;
        while (n->log_count > 0 && n->log[n->log_count - 1].index >= first) {
            entry_free(&n->log[--n->log_count]);
        }
        n->log = realloc(n->log, (n->log_count + n->staged_count) * sizeof(*n->log));
        QR_ASSERT(n->log != NULL);
        memcpy(n->log + n->log_count, n->staged, n->staged_count * sizeof(*n->log));
        n->log_count += n->staged_count;
        free(n->staged);
        n->staged = NULL;
        n->staged_count = 0;
    }
    if (n->staged_has_hard_state) {
        n->hard_state = n->staged_hard_state;
    }
    n->staged_has_hard_state = false;
}

static void queue_msg(struct tc_cluster *c, const struct qr_msg *m)
{
    if (c->cut[m->from][m->to] || c->inbox_count == TC_INBOX_MAX) {
        return;
    }
    struct tc_msg *t = &c->inbox[c->inbox_count++];
    memset(t, 0, sizeof(*t));
    t->msg = *m;
    if (m->entries_count > 0) {
        t->entries = xmalloc(m->entries_count * sizeof(*t->entries));
        for (size_t i = 0; i < m->entries_count; i++) {
            t->entries[i] = entry_copy(&m->entries[i]);
        }
    }
    t->msg.entries = t->entries;
    if (m->snapshot != NULL) {
        t->snapshot = xmalloc(sizeof(*t->snapshot));
        *t->snapshot = *m->snapshot;
        t->msg.snapshot = t->snapshot;
        /* Snapshots in these tests are empty state machines: chunk bytes are zeros. */
        t->data = xmalloc(m->chunk_size);
        memset(t->data, 0, m->chunk_size);
        t->msg.data.base = t->data;
        t->msg.data.len = m->chunk_size;
    }
}

static void node_drain(struct tc_cluster *c, struct tc_node *n)
{
    for (int guard = 0; guard < 100 && qr_core_has_ready(n->core); guard++) {
        struct qr_ready rd;
        qr_core_ready(n->core, &rd);
        if (rd.persist_seq != 0) {
            disk_stage(n, &rd);
            n->pending_seq = rd.persist_seq;
        }
        for (size_t i = 0; i < rd.messages_count; i++) {
            queue_msg(c, &rd.messages[i]);
        }
        for (size_t i = 0; i < rd.committed_count && n->applied_count < TC_APPLIED_MAX; i++) {
            n->applied[n->applied_count++] = entry_copy(&rd.committed[i]);
        }
        for (size_t i = 0; i < rd.reads_count && n->reads_done_count < 64; i++) {
            n->reads_done[n->reads_done_count] = rd.reads[i].request_id;
            n->reads_index[n->reads_done_count++] = rd.reads[i].index;
        }
        n->reads_failed_count += rd.reads_failed_count;
        qr_core_advance(n->core);
        if (n->auto_persist && n->pending_seq != 0) {
            disk_commit(n);
            QR_ASSERT(qr_core_persisted(n->core, n->pending_seq) == 0);
            n->pending_seq = 0;
        }
    }
}

void tc_drain(struct tc_cluster *c)
{
    for (size_t i = 0; i < c->nodes_count; i++) {
        if (!c->nodes[i].down) {
            node_drain(c, &c->nodes[i]);
        }
    }
}

size_t tc_deliver(struct tc_cluster *c)
{
    size_t count = c->inbox_count;
    struct tc_msg *batch = xmalloc(count * sizeof(*batch) + 1);
    memcpy(batch, c->inbox, count * sizeof(*batch));
    c->inbox_count = 0;
    for (size_t i = 0; i < count; i++) {
        struct tc_node *to = tc_node(c, batch[i].msg.to);
        if (!to->down && !c->cut[batch[i].msg.from][batch[i].msg.to]) {
            if (c->trace != NULL) {
                c->trace(c->trace_ctx, &batch[i].msg);
            }
            (void)qr_core_step(to->core, &batch[i].msg);
            c->delivered_count++;
        }
        msg_free(&batch[i]);
    }
    free(batch);
    return count;
}

void tc_stabilize(struct tc_cluster *c, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        tc_drain(c);
        if (c->inbox_count == 0) {
            return;
        }
        (void)tc_deliver(c);
    }
    tc_drain(c);
}

void tc_tick_all(struct tc_cluster *c, int ticks)
{
    for (int t = 0; t < ticks; t++) {
        for (size_t i = 0; i < c->nodes_count; i++) {
            if (!c->nodes[i].down) {
                qr_core_tick(c->nodes[i].core);
            }
        }
        tc_stabilize(c, 50);
    }
}

void tc_elect(struct tc_cluster *c, qr_node_id id)
{
    qr_core_campaign(tc_node(c, id)->core);
    tc_stabilize(c, 100);
}

int tc_propose(struct tc_cluster *c, qr_node_id id, const char *text)
{
    struct qr_buf data = {(uint8_t *)(uintptr_t)text, strlen(text)};
    int rv = qr_core_propose(tc_node(c, id)->core, data, NULL);
    return rv;
}

void tc_partition(struct tc_cluster *c, qr_node_id a, qr_node_id b, bool cut)
{
    c->cut[a][b] = cut;
    c->cut[b][a] = cut;
}

void tc_isolate(struct tc_cluster *c, qr_node_id id, bool cut)
{
    for (size_t i = 1; i <= c->nodes_count; i++) {
        if (i != id) {
            tc_partition(c, id, i, cut);
        }
    }
}

void tc_crash(struct tc_cluster *c, qr_node_id id)
{
    struct tc_node *n = tc_node(c, id);
    qr_core_destroy(n->core);
    n->core = NULL;
    n->down = true;
    n->pending_seq = 0;
    staged_clear(n); /* Unsynced writes are lost. */
}

void tc_restart(struct tc_cluster *c, qr_node_id id)
{
    struct tc_node *n = tc_node(c, id);
    QR_ASSERT(n->down);
    for (size_t i = 0; i < n->applied_count; i++) {
        entry_free(&n->applied[i]);
    }
    n->applied_count = 0;
    node_start(n, NULL);
}

void tc_persist(struct tc_cluster *c, qr_node_id id)
{
    struct tc_node *n = tc_node(c, id);
    if (n->pending_seq != 0) {
        disk_commit(n);
        QR_ASSERT(qr_core_persisted(n->core, n->pending_seq) == 0);
        n->pending_seq = 0;
    }
}

qr_node_id tc_leader(struct tc_cluster *c)
{
    qr_node_id leader = 0;
    qr_term best = 0;
    int count = 0;
    for (size_t i = 0; i < c->nodes_count; i++) {
        if (c->nodes[i].down) {
            continue;
        }
        struct qr_core_status s;
        qr_core_status(c->nodes[i].core, &s);
        if (s.role == QR_ROLE_LEADER) {
            if (s.term > best) {
                best = s.term;
                leader = s.id;
                count = 1;
            } else if (s.term == best) {
                count++;
            }
        }
    }
    return count == 1 ? leader : 0;
}

struct qr_core_status tc_status(struct tc_cluster *c, qr_node_id id)
{
    struct qr_core_status s;
    qr_core_status(tc_node(c, id)->core, &s);
    return s;
}
