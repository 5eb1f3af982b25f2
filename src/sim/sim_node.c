/*
 * sim/sim_node.c: one simulated node: its core, its key-value state machine,
 * its disk, and the driver loop that executes the core's output batches.
 *
 * Layer: sim. The disk keeps the durable hard state, a consecutive log and
 * the latest snapshot. A persist batch is "in flight" until its simulated
 * write latency passes; only then is it applied to the disk and reported with
 * qr_core_persisted(). A crash loses the batches in flight, except for a prefix of them:
 * some whole, then one torn (a prefix of its snapshot, entries..., hard state,
 * in that order, as quorum/core.h allows). Nothing reported persisted
 * is ever lost. Restart rebuilds the core from the disk alone.
 *
 * The driver also checks, as it goes, what only it can see: entries are
 * applied in order, only once durable, snapshots arrive intact, commit never
 * goes backwards while a node is up, and the core never believes more is
 * durable than the disk holds.
 */
#include <string.h>

#include "quorum/err.h"
#include "sim/sim_internal.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"

#define CHECK_DURABILITY "durability"
#define CHECK_SNAPSHOT   "snapshot transfer"
#define CHECK_DRIVER     "driver contract"

/* ---- Disk --------------------------------------------------------------------------- */

static qr_index disk_snapshot_index(const struct sim_disk *d)
{
    return d->has_snapshot ? d->snapshot.index : 0;
}

/* Last index the disk holds (log or snapshot). */
static qr_index disk_last_index(const struct sim_disk *d)
{
    return disk_snapshot_index(d) + d->log_count;
}

/* The durable entry at `index`, or NULL. Invariant: log[k].index == snapshot index + 1 + k. */
static const struct qr_entry *disk_find(const struct sim_disk *d, qr_index index)
{
    qr_index first = disk_snapshot_index(d) + 1;
    if (index < first || index - first >= d->log_count) {
        return NULL;
    }
    QR_ASSERT(d->log != NULL);
    return &d->log[index - first];
}

/* The disk's invariants; the O(log length) part runs in debug builds only. */
static void disk_check_invariants(const struct sim_disk *d)
{
    QR_ASSERT(d->log_count <= d->log_capacity && d->log_count <= SIM_DISK_LOG_MAX);
    QR_ASSERT(d->batches_count <= SIM_BATCHES_MAX);
    QR_ASSERT(!d->has_snapshot || d->snapshot_data != NULL);
#ifndef QR_DEBUG
    return;
#endif
    qr_index first = disk_snapshot_index(d) + 1;
    for (size_t k = 0; k < d->log_count; k++) {
        QR_ASSERT(d->log[k].index == first + k);
        QR_ASSERT(k == 0 || d->log[k].term >= d->log[k - 1].term);
    }
    for (size_t i = 1; i < d->batches_count; i++) {
        QR_ASSERT(d->batches[i].seq > d->batches[i - 1].seq);
        QR_ASSERT(d->batches[i].done_time >= d->batches[i - 1].done_time);
    }
}

static void entries_free(struct qr_entry *entries, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        qr_free(entries[i].data.base);
        entries[i].data.base = NULL;
    }
}

/* Drop the first `count` log entries (they are now covered by a snapshot). */
static void disk_log_drop_front(struct sim_disk *d, size_t count)
{
    QR_ASSERT(count <= d->log_count);
    if (count == 0) {
        return;
    }
    QR_ASSERT(d->log != NULL);
    entries_free(d->log, count);
    memmove(d->log, d->log + count, (d->log_count - count) * sizeof(*d->log));
    d->log_count -= count;
}

static void batch_free(struct sim_batch *b)
{
    qr_free(b->snapshot_data);
    entries_free(b->entries, b->entries_count);
    qr_free(b->entries);
    memset(b, 0, sizeof(*b));
}

/* Install a snapshot on disk (ownership of data moves to the disk). Raft §7: keep the log
 * after the snapshot only when it holds the snapshot's last entry; else drop it all. */
static void disk_install(struct sim_disk *d, const struct qr_snapshot_meta *meta, uint8_t **data)
{
    qr_index old = disk_snapshot_index(d);
    if (d->has_snapshot && meta->index <= old) {
        return; /* A newer snapshot was taken meanwhile. */
    }
    const struct qr_entry *e = disk_find(d, meta->index);
    if (e != NULL && e->term == meta->term) {
        disk_log_drop_front(d, (size_t)(meta->index - old));
    } else {
        disk_log_drop_front(d, d->log_count);
    }
    qr_free(d->snapshot_data);
    d->snapshot_data = *data;
    *data = NULL;
    d->snapshot = *meta;
    d->has_snapshot = true;
}

static int disk_append(struct qr_sim *sim, struct sim_node *n, const struct qr_entry *e)
{
    struct sim_disk *d = &n->disk;
    qr_index first = disk_snapshot_index(d) + 1;
    if (e->index < first) {
        return 0; /* Covered by the snapshot; the checkers compared it when it was handed out. */
    }
    if (e->index > disk_last_index(d) + 1) {
        qr__sim_fail(sim, CHECK_DURABILITY, "n%llu persists index %llu but its disk ends at %llu",
                     (unsigned long long)n->id, (unsigned long long)e->index,
                     (unsigned long long)disk_last_index(d));
        return QR_EINVAL;
    }
    size_t keep = (size_t)(e->index - first);
    entries_free(d->log + keep, d->log_count - keep);
    d->log_count = keep;
    if (d->log_count == SIM_DISK_LOG_MAX) {
        qr__sim_error(sim, QR_EBUSY, "disk log full");
        return QR_EBUSY;
    }
    if (d->log_count == d->log_capacity) {
        size_t capacity = d->log_capacity == 0 ? 256 : d->log_capacity * 2;
        struct qr_entry *log = qr_realloc(d->log, capacity * sizeof(*log));
        if (log == NULL) {
            qr__sim_error(sim, QR_ENOMEM, "disk log");
            return QR_ENOMEM;
        }
        d->log = log;
        d->log_capacity = capacity;
    }
    struct qr_entry copy = *e;
    copy.data.base = NULL;
    if (e->data.len > 0) {
        copy.data.base = qr_malloc(e->data.len);
        if (copy.data.base == NULL) {
            qr__sim_error(sim, QR_ENOMEM, "disk entry");
            return QR_ENOMEM;
        }
        memcpy(copy.data.base, e->data.base, e->data.len);
    }
    d->log[d->log_count++] = copy;
    return 0;
}

/* Make the first `items_max` items of batch b durable, in order: snapshot, entries, hard
 * state. SIZE_MAX writes it all. */
static void
disk_write(struct qr_sim *sim, struct sim_node *n, struct sim_batch *b, size_t items_max)
{
    size_t done = 0;
    if (b->has_snapshot) {
        if (done == items_max) {
            return;
        }
        disk_install(&n->disk, &b->snapshot, &b->snapshot_data);
        done++;
    }
    for (size_t i = 0; i < b->entries_count; i++) {
        if (done == items_max || disk_append(sim, n, &b->entries[i]) != 0) {
            return;
        }
        done++;
    }
    if (b->has_hard_state && done < items_max) {
        n->disk.hard_state = b->hard_state;
    }
}

static void disk_pop_batch(struct sim_disk *d)
{
    QR_ASSERT(d->batches_count > 0);
    batch_free(&d->batches[0]);
    memmove(d->batches, d->batches + 1, (d->batches_count - 1) * sizeof(d->batches[0]));
    d->batches_count--;
    memset(&d->batches[d->batches_count], 0, sizeof(d->batches[0]));
}

static void disk_wipe(struct sim_disk *d)
{
    while (d->batches_count > 0) {
        disk_pop_batch(d);
    }
    entries_free(d->log, d->log_count);
    qr_free(d->log);
    qr_free(d->snapshot_data);
    memset(d, 0, sizeof(*d));
}

/* ---- Lifecycle ---------------------------------------------------------------------- */

static void node_release(struct sim_node *n)
{
    qr_core_destroy(n->core);
    n->core = NULL;
    qr__kv_destroy(n->kv);
    n->kv = NULL;
    for (size_t i = 0; i < SIM_INCOMING_MAX; i++) {
        qr_free(n->incoming[i].data);
    }
    memset(n->incoming, 0, sizeof(n->incoming));
    n->reads_count = 0;
    n->is_up = false;
}

void qr__sim_node_close(struct sim_node *n)
{
    node_release(n);
    disk_wipe(&n->disk);
}

static int node_restore_kv(struct qr_sim *sim, struct sim_node *n)
{
    int rv = qr__kv_create(NULL, &n->kv);
    if (rv != 0) {
        qr__sim_error(sim, rv, "kv create");
        return rv;
    }
    n->applied = 0;
    n->snapshot_index = 0;
    if (!n->disk.has_snapshot) {
        return 0;
    }
    const struct qr_snapshot_meta *meta = &n->disk.snapshot;
    if (qr__crc32c(0, n->disk.snapshot_data, (size_t)meta->size) != meta->crc) {
        qr__sim_fail(sim, CHECK_DURABILITY, "n%llu: snapshot %llu on disk fails its crc",
                     (unsigned long long)n->id, (unsigned long long)meta->index);
        return QR_ECORRUPT;
    }
    char errmsg[QR_ERRMSG_SIZE] = "";
    rv = qr__kv_restore(n->kv, n->disk.snapshot_data, (size_t)meta->size, errmsg);
    if (rv != 0) {
        qr__sim_fail(sim, CHECK_DURABILITY, "n%llu: snapshot %llu on disk: %s",
                     (unsigned long long)n->id, (unsigned long long)meta->index, errmsg);
        return rv;
    }
    n->applied = meta->index;
    n->snapshot_index = meta->index;
    return 0;
}

static void node_opts(struct qr_sim *sim, const struct sim_node *n, struct qr_core_opts *opts)
{
    qr_core_opts_default(opts, n->id);
    opts->seed = qr__rng_next(&sim->rng);
    opts->election_ticks = 10;
    opts->heartbeat_ticks = 1;
    opts->snapshot_chunk_size = sim->params.chunk_size;
    opts->inflight_msgs_max = sim->params.inflight_msgs_max;
    opts->persist_batches_max = sim->params.persist_batches_max;
    opts->msg_bytes_max = 512;
}

int qr__sim_node_start(struct qr_sim *sim, uint32_t node)
{
    struct sim_node *n = &sim->nodes[node];
    QR_ASSERT(!n->is_up && n->core == NULL);
    int rv = node_restore_kv(sim, n);
    if (rv != 0) {
        node_release(n);
        return rv;
    }
    struct qr_core_opts opts;
    node_opts(sim, n, &opts);
    struct qr_core_state state = {
        .hard_state = n->disk.hard_state,
        .snapshot = n->disk.has_snapshot ? &n->disk.snapshot : NULL,
        .entries = n->disk.log,
        .entries_count = n->disk.log_count,
        .config = n->is_initial ? &sim->bootstrap : NULL,
    };
    char errmsg[QR_ERRMSG_SIZE] = "";
    rv = qr_core_create(&opts, &state, &n->core, errmsg);
    if (rv != 0) {
        qr__sim_fail(sim, "recovery", "n%llu: the core refused its recovered state (%s): %s",
                     (unsigned long long)n->id, qr_err_name(rv), errmsg);
        node_release(n);
        return rv;
    }
    n->is_up = true;
    n->role = 0;
    n->term = 0;
    n->leader = 0;
    n->commit = 0;
    n->is_touched = true;
    n->is_log_changed = true;
    qr__trace_event(
        &sim->trace, sim->now, "start n%llu term=%llu vote=%llu commit=%llu snapshot=%llu log=%zu",
        (unsigned long long)n->id, (unsigned long long)n->disk.hard_state.term,
        (unsigned long long)n->disk.hard_state.vote, (unsigned long long)n->disk.hard_state.commit,
        (unsigned long long)disk_snapshot_index(&n->disk), n->disk.log_count);
    rv = qr__sim_schedule(sim, sim->now + qr__sim_rand_range(sim, 1, n->tick_interval), SIM_EV_TICK,
                          node, n->incarnation, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "tick event");
        return rv;
    }
    qr__sim_node_process(sim, node);
    return 0;
}

void qr__sim_node_crash(struct qr_sim *sim, uint32_t node)
{
    struct sim_node *n = &sim->nodes[node];
    QR_ASSERT(n->is_up);
    struct sim_disk *d = &n->disk;
    size_t torn = 0;
    size_t items = 0;
    size_t whole = 0;
    if (d->batches_count > 0) {
        /* Batches written one after another without a flush between them (a driver that
         * merges them) reach the disk as a prefix: some whole, then one torn. One batch in
         * flight draws nothing more, so such runs keep their old course. */
        if (d->batches_count > 1) {
            whole = (size_t)qr__sim_rand_range(sim, 0, d->batches_count - 1);
        }
        for (size_t i = 0; i < whole; i++) {
            disk_write(sim, n, &d->batches[i], SIZE_MAX);
        }
        struct sim_batch *b = &d->batches[whole];
        items = (b->has_snapshot ? 1 : 0) + b->entries_count + (b->has_hard_state ? 1 : 0);
        torn = (size_t)qr__sim_rand_range(sim, 0, items);
        disk_write(sim, n, b, torn);
    }
    qr__trace_event(&sim->trace, sim->now,
                    "crash n%llu: %zu batches in flight, %zu whole and %zu/%zu items kept",
                    (unsigned long long)n->id, d->batches_count, whole, torn, items);
    while (d->batches_count > 0) {
        disk_pop_batch(d);
    }
    disk_check_invariants(d);
    if (sim->opts.bug == QR_SIM_BUG_AMNESIA) {
        disk_wipe(d);
    }
    qr__sim_client_node_crashed(sim, node);
    node_release(n);
    n->incarnation++;
    n->is_touched = false;
    sim->result->crashes++;
}

/* ---- Output batch ------------------------------------------------------------------- */

/* The buffer of snapshot `index`: the one already used, else a free one, else the oldest. */
static struct sim_incoming *incoming_slot(struct sim_node *n, qr_index index)
{
    struct sim_incoming *oldest = &n->incoming[0];
    for (size_t i = 0; i < SIM_INCOMING_MAX; i++) {
        struct sim_incoming *in = &n->incoming[i];
        if (in->index == index) {
            return in;
        }
        if (in->index < oldest->index) {
            oldest = in;
        }
    }
    oldest->index = index;
    oldest->size = 0;
    return oldest;
}

static struct sim_incoming *incoming_find(struct sim_node *n, qr_index index)
{
    for (size_t i = 0; i < SIM_INCOMING_MAX; i++) {
        if (n->incoming[i].index == index) {
            return &n->incoming[i];
        }
    }
    return NULL;
}

static bool
incoming_write(struct qr_sim *sim, struct sim_incoming *in, const struct qr_snapshot_chunk *c)
{
    size_t end = (size_t)c->offset + c->data.len;
    if (end > in->capacity) {
        size_t capacity = end < 256 ? 256 : end * 2;
        uint8_t *buf = qr_realloc(in->data, capacity);
        if (buf == NULL) {
            qr__sim_error(sim, QR_ENOMEM, "incoming snapshot");
            return false;
        }
        in->data = buf;
        in->capacity = capacity;
    }
    if (c->offset > in->size) {
        memset(in->data + in->size, 0, (size_t)c->offset - in->size);
    }
    if (c->data.len > 0) {
        memcpy(in->data + c->offset, c->data.base, c->data.len);
    }
    if (end > in->size) {
        in->size = end;
    }
    return true;
}

static void ready_chunks(struct qr_sim *sim, struct sim_node *n, const struct qr_ready *rd)
{
    for (size_t i = 0; i < rd->snapshot_chunks_count; i++) {
        const struct qr_snapshot_chunk *c = &rd->snapshot_chunks[i];
        if (c->offset > SIM_SNAPSHOT_SIZE_MAX || c->data.len > SIM_SNAPSHOT_SIZE_MAX - c->offset) {
            qr__sim_fail(sim, CHECK_SNAPSHOT, "n%llu: chunk at offset %llu beyond %zu bytes",
                         (unsigned long long)n->id, (unsigned long long)c->offset,
                         SIM_SNAPSHOT_SIZE_MAX);
            return;
        }
        struct sim_incoming *in = incoming_slot(n, c->snapshot_index);
        if (c->offset == 0) {
            in->size = 0;
        }
        if (!incoming_write(sim, in, c)) {
            return;
        }
    }
}

/* A snapshot received in full: verify it, restore the state machine from it. */
static bool ready_install(struct qr_sim *sim, uint32_t node, const struct qr_snapshot_meta *meta)
{
    struct sim_node *n = &sim->nodes[node];
    const struct sim_incoming *in = incoming_find(n, meta->index);
    if (in == NULL || in->size < meta->size) {
        qr__sim_fail(sim, CHECK_SNAPSHOT,
                     "n%llu installs snapshot %llu of %llu bytes, but received %zu bytes of it",
                     (unsigned long long)n->id, (unsigned long long)meta->index,
                     (unsigned long long)meta->size, in != NULL ? in->size : 0);
        return false;
    }
    uint32_t crc = qr__crc32c(0, in->data, (size_t)meta->size);
    if (crc != meta->crc) {
        qr__sim_fail(sim, CHECK_SNAPSHOT, "n%llu: snapshot %llu crc %08x, meta says %08x",
                     (unsigned long long)n->id, (unsigned long long)meta->index, (unsigned)crc,
                     (unsigned)meta->crc);
        return false;
    }
    if (meta->index <= n->applied) {
        qr__sim_fail(sim, QR_SIM_CHECK_STATE_MACHINE,
                     "n%llu installs snapshot %llu after applying up to %llu",
                     (unsigned long long)n->id, (unsigned long long)meta->index,
                     (unsigned long long)n->applied);
        return false;
    }
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__kv_restore(n->kv, in->data, (size_t)meta->size, errmsg);
    if (rv != 0) {
        qr__sim_fail(sim, CHECK_SNAPSHOT, "n%llu: snapshot %llu: %s", (unsigned long long)n->id,
                     (unsigned long long)meta->index, errmsg);
        return false;
    }
    rv = qr__check_state(&sim->check, n->id, meta->index, crc);
    if (rv != 0) {
        qr__sim_error(sim, rv, "state check");
        return false;
    }
    n->applied = meta->index;
    n->snapshot_index = meta->index;
    sim->result->snapshots_installed++;
    qr__trace_event(&sim->trace, sim->now, "install n%llu snapshot=%llu term=%llu size=%llu",
                    (unsigned long long)n->id, (unsigned long long)meta->index,
                    (unsigned long long)meta->term, (unsigned long long)meta->size);
    return true;
}

/* The batch replaces every stored entry from its first index on: none of those may be a
 * durable committed entry unless the batch writes it back unchanged. */
static int batch_check_overwrite(struct qr_sim *sim, struct sim_node *n, const struct qr_ready *rd)
{
    const struct sim_disk *d = &n->disk;
    qr_index first = rd->entries[0].index;
    qr_index last = disk_last_index(d);
    for (qr_index i = first; i <= last; i++) {
        const struct qr_entry *old = disk_find(d, i);
        if (old == NULL) {
            continue; /* Covered by the snapshot: disk_append leaves it alone. */
        }
        size_t k = (size_t)(i - first);
        const struct qr_entry *replacement = k < rd->entries_count ? &rd->entries[k] : NULL;
        int rv = qr__check_overwrite(&sim->check, n->id, i, old->term, qr__check_entry_hash(old),
                                     replacement);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int batch_copy_entries(struct qr_sim *sim,
                              struct sim_node *n,
                              struct sim_batch *b,
                              const struct qr_ready *rd)
{
    if (rd->entries_count == 0) {
        return 0;
    }
    int rv = batch_check_overwrite(sim, n, rd);
    if (rv != 0) {
        return rv;
    }
    b->entries = qr_calloc(rd->entries_count, sizeof(*b->entries));
    if (b->entries == NULL) {
        return QR_ENOMEM;
    }
    for (size_t i = 0; i < rd->entries_count; i++) {
        const struct qr_entry *e = &rd->entries[i];
        rv = qr__check_log_entry(&sim->check, n->id, e->index, e->term, qr__check_entry_hash(e));
        if (rv != 0) {
            return rv;
        }
        if (i > 0 && e->index != rd->entries[i - 1].index + 1) {
            qr__sim_fail(sim, CHECK_DRIVER, "n%llu persists non-consecutive entries %llu then %llu",
                         (unsigned long long)n->id, (unsigned long long)rd->entries[i - 1].index,
                         (unsigned long long)e->index);
            return QR_EPROTO;
        }
        b->entries[i] = *e;
        b->entries[i].data.base = NULL;
        if (e->data.len > 0) {
            b->entries[i].data.base = qr_malloc(e->data.len);
            if (b->entries[i].data.base == NULL) {
                return QR_ENOMEM;
            }
            memcpy(b->entries[i].data.base, e->data.base, e->data.len);
        }
        b->entries_count = i + 1;
    }
    return 0;
}

static uint64_t disk_latency(struct qr_sim *sim, const struct sim_node *n)
{
    if (n->disk.is_slow) {
        return qr__sim_rand_range(sim, SIM_TICK, 6 * SIM_TICK);
    }
    return qr__sim_rand_range(sim, sim->params.disk_min, sim->params.disk_max);
}

static void ready_persist(struct qr_sim *sim, uint32_t node, const struct qr_ready *rd)
{
    struct sim_node *n = &sim->nodes[node];
    struct sim_disk *d = &n->disk;
    if (d->batches_count == SIM_BATCHES_MAX) {
        qr__sim_fail(sim, CHECK_DRIVER, "n%llu: more than %d persist batches in flight",
                     (unsigned long long)n->id, SIM_BATCHES_MAX);
        return;
    }
    if (d->batches_count > 0 && rd->persist_seq <= d->batches[d->batches_count - 1].seq) {
        qr__sim_fail(sim, CHECK_DRIVER, "n%llu: persist batch %llu after batch %llu",
                     (unsigned long long)n->id, (unsigned long long)rd->persist_seq,
                     (unsigned long long)d->batches[d->batches_count - 1].seq);
        return;
    }
    struct sim_batch *b = &d->batches[d->batches_count++];
    memset(b, 0, sizeof(*b));
    b->seq = rd->persist_seq;
    if (rd->snapshot != NULL) {
        b->has_snapshot = true;
        b->snapshot = *rd->snapshot;
        b->snapshot_data = qr_malloc((size_t)rd->snapshot->size + 1);
        if (b->snapshot_data == NULL) {
            qr__sim_error(sim, QR_ENOMEM, "snapshot copy");
            return;
        }
        const struct sim_incoming *in = incoming_find(n, rd->snapshot->index);
        QR_ASSERT(in != NULL && in->size >= rd->snapshot->size); /* ready_install checked. */
        memcpy(b->snapshot_data, in->data, (size_t)rd->snapshot->size);
    }
    int rv = batch_copy_entries(sim, n, b, rd);
    if (rv != 0) {
        qr__sim_error(sim, rv, "persist entries");
        return;
    }
    b->has_hard_state = rd->has_hard_state;
    b->hard_state = rd->hard_state;
    qr__trace_event(
        &sim->trace, sim->now,
        "persist n%llu seq=%llu snapshot=%llu entries=%llu..%llu hard=%s%llu/%llu/%llu",
        (unsigned long long)n->id, (unsigned long long)b->seq,
        (unsigned long long)(b->has_snapshot ? b->snapshot.index : 0),
        (unsigned long long)(b->entries_count > 0 ? b->entries[0].index : 0),
        (unsigned long long)(b->entries_count > 0 ? b->entries[b->entries_count - 1].index : 0),
        b->has_hard_state ? "" : "-", (unsigned long long)b->hard_state.term,
        (unsigned long long)b->hard_state.vote, (unsigned long long)b->hard_state.commit);
    uint64_t done = sim->now + disk_latency(sim, n);
    if (d->batches_count > 1 && done < d->batches[d->batches_count - 2].done_time) {
        done = d->batches[d->batches_count - 2].done_time; /* A disk completes in order. */
    }
    b->done_time = done;
    rv = qr__sim_schedule(sim, done, SIM_EV_DISK, node, n->incarnation, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "disk event");
    }
}

static void apply_normal(struct qr_sim *sim, uint32_t node, const struct qr_entry *e)
{
    struct sim_node *n = &sim->nodes[node];
    struct qr_kv_cmd cmd;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__kv_cmd_decode(e->data.base, e->data.len, &cmd, errmsg);
    if (rv != 0) {
        qr__sim_fail(sim, QR_SIM_CHECK_STATE_MACHINE, "n%llu applies index %llu: %s",
                     (unsigned long long)n->id, (unsigned long long)e->index, errmsg);
        return;
    }
    struct qr_kv_result result;
    rv = qr__kv_apply(n->kv, &cmd, &result);
    if (rv != 0) {
        qr__sim_error(sim, rv, "kv apply");
        return;
    }
    rv = qr__check_request_applied(&sim->check, n->id, cmd.client_id, cmd.seq, e->index);
    if (rv != 0) {
        qr__sim_error(sim, rv, "request check");
        return;
    }
    qr__sim_client_applied(sim, node, e, &cmd, &result);
}

static void apply_entry(struct qr_sim *sim, uint32_t node, const struct qr_entry *e)
{
    struct sim_node *n = &sim->nodes[node];
    if (e->index != n->applied + 1) {
        qr__sim_fail(sim, QR_SIM_CHECK_STATE_MACHINE, "n%llu applies index %llu after %llu",
                     (unsigned long long)n->id, (unsigned long long)e->index,
                     (unsigned long long)n->applied);
        return;
    }
    uint64_t hash = qr__check_entry_hash(e);
    const struct qr_entry *durable = disk_find(&n->disk, e->index);
    if (durable == NULL || durable->term != e->term || qr__check_entry_hash(durable) != hash) {
        qr__sim_fail(sim, CHECK_DURABILITY,
                     "n%llu applies index %llu term %llu before it is durable (disk ends at %llu)",
                     (unsigned long long)n->id, (unsigned long long)e->index,
                     (unsigned long long)e->term, (unsigned long long)disk_last_index(&n->disk));
        return;
    }
    struct qr_core_status st;
    qr_core_status(n->core, &st);
    struct qr_sim_apply apply = {n->id, st.term, e->index, e->term, hash};
    int rv = qr__check_applied(&sim->check, &apply);
    if (rv != 0) {
        qr__sim_error(sim, rv, "apply check");
        return;
    }
    n->applied = e->index;
    if (e->type == QR_ENTRY_NORMAL) {
        apply_normal(sim, node, e);
    } else {
        qr__sim_client_applied(sim, node, e, NULL, NULL);
    }
}

static void ready_reads(struct qr_sim *sim, uint32_t node, const struct qr_ready *rd)
{
    struct sim_node *n = &sim->nodes[node];
    for (size_t i = 0; i < rd->reads_count; i++) {
        for (size_t k = 0; k < n->reads_count; k++) {
            if (n->reads[k].request_id == rd->reads[i].request_id) {
                n->reads[k].has_index = true;
                n->reads[k].index = rd->reads[i].index;
            }
        }
    }
    for (size_t i = 0; i < rd->reads_failed_count; i++) {
        qr__sim_client_read_failed(sim, node, rd->reads_failed[i]);
    }
    qr__sim_client_read_ready(sim, node);
}

static void ready_handle(struct qr_sim *sim, uint32_t node, const struct qr_ready *rd)
{
    struct sim_node *n = &sim->nodes[node];
    if (rd->entries_count > 0 || rd->snapshot != NULL || rd->committed_count > 0 ||
        rd->has_hard_state) {
        n->is_log_changed = true;
    }
    ready_chunks(sim, n, rd);
    if (rd->snapshot != NULL && (rd->persist_seq == 0 || !ready_install(sim, node, rd->snapshot))) {
        if (rd->persist_seq == 0) {
            qr__sim_fail(sim, CHECK_DRIVER,
                         "n%llu: snapshot %llu to install outside a persist batch",
                         (unsigned long long)n->id, (unsigned long long)rd->snapshot->index);
        }
        return;
    }
    if (rd->persist_seq != 0) {
        ready_persist(sim, node, rd);
    }
    for (size_t i = 0; i < rd->messages_count && !sim->is_failed; i++) {
        qr__sim_net_send(sim, node, &rd->messages[i]);
    }
    for (size_t i = 0; i < rd->committed_count && !sim->is_failed && sim->error == 0; i++) {
        apply_entry(sim, node, &rd->committed[i]);
    }
    ready_reads(sim, node, rd);
}

/* Take a snapshot every snapshot_every applied entries, so that followers that fall behind
 * or restart often need one. Called between output batches (the core requires it). */
static void node_maybe_snapshot(struct qr_sim *sim, uint32_t node)
{
    struct sim_node *n = &sim->nodes[node];
    if (n->applied < n->snapshot_index + sim->params.snapshot_every ||
        n->applied <= disk_snapshot_index(&n->disk)) {
        return;
    }
    struct qr_snapshot_meta meta;
    int rv = qr_core_snapshot_meta(n->core, n->applied, &meta);
    if (rv != 0) {
        return; /* The core has a newer snapshot, or compacted: nothing to take. */
    }
    struct qr_buf bytes;
    rv = qr__kv_snapshot(n->kv, &bytes);
    if (rv != 0) {
        qr__sim_error(sim, rv, "kv snapshot");
        return;
    }
    meta.size = bytes.len;
    meta.crc = qr__crc32c(0, bytes.base, bytes.len);
    rv = qr__check_state(&sim->check, n->id, meta.index, meta.crc);
    if (rv != 0) {
        qr_free(bytes.base);
        qr__sim_error(sim, rv, "state check");
        return;
    }
    /* Published atomically before the core hears of it, as storage/ does. */
    struct sim_disk *d = &n->disk;
    size_t covered = (size_t)(meta.index - disk_snapshot_index(d));
    QR_ASSERT(covered <= d->log_count); /* Applied entries are durable (checked at apply). */
    disk_log_drop_front(d, covered);
    qr_free(d->snapshot_data);
    d->snapshot_data = bytes.base;
    d->snapshot = meta;
    d->has_snapshot = true;
    n->snapshot_index = meta.index;
    disk_check_invariants(d);
    rv = qr_core_snapshot_taken(n->core, &meta, sim->params.snapshot_trailing);
    if (rv != 0) {
        qr__sim_fail(sim, CHECK_DRIVER, "n%llu: snapshot_taken(%llu) refused: %s",
                     (unsigned long long)n->id, (unsigned long long)meta.index, qr_err_name(rv));
        return;
    }
    qr__trace_event(&sim->trace, sim->now, "snapshot n%llu index=%llu term=%llu size=%llu",
                    (unsigned long long)n->id, (unsigned long long)meta.index,
                    (unsigned long long)meta.term, (unsigned long long)meta.size);
}

void qr__sim_node_process(struct qr_sim *sim, uint32_t node)
{
    struct sim_node *n = &sim->nodes[node];
    QR_ASSERT(n->is_up);
    n->is_touched = true;
    for (uint32_t round = 0; round < SIM_READY_ROUNDS_MAX; round++) {
        if (sim->is_failed || sim->error != 0) {
            return;
        }
        if (!qr_core_has_ready(n->core)) {
            node_maybe_snapshot(sim, node);
            if (!qr_core_has_ready(n->core)) {
                return;
            }
            continue;
        }
        struct qr_ready rd;
        qr_core_ready(n->core, &rd);
        ready_handle(sim, node, &rd);
        qr_core_advance(n->core);
    }
    qr__sim_fail(sim, "liveness", "n%llu produced %d output batches for one event",
                 (unsigned long long)n->id, SIM_READY_ROUNDS_MAX);
}

void qr__sim_node_disk_done(struct qr_sim *sim, uint32_t node, uint64_t incarnation)
{
    struct sim_node *n = &sim->nodes[node];
    if (!n->is_up || n->incarnation != incarnation) {
        return; /* The write died with the crash. */
    }
    if (n->disk.batches_count == 0 || n->disk.batches[0].done_time > sim->now) {
        return; /* Its batch was written and reported with an earlier one. */
    }
    /* Every batch done by now is written, and only the newest reported: the core must
     * take one report for several batches (a driver that merges queued batches does). */
    uint64_t seq = 0;
    while (n->disk.batches_count > 0 && n->disk.batches[0].done_time <= sim->now) {
        struct sim_batch *b = &n->disk.batches[0];
        seq = b->seq;
        disk_write(sim, n, b, SIZE_MAX);
        disk_check_invariants(&n->disk);
        qr__trace_event(&sim->trace, sim->now, "durable n%llu seq=%llu disk=%llu..%llu",
                        (unsigned long long)n->id, (unsigned long long)seq,
                        (unsigned long long)disk_snapshot_index(&n->disk),
                        (unsigned long long)disk_last_index(&n->disk));
        disk_pop_batch(&n->disk);
        if (sim->is_failed) {
            return;
        }
    }
    int rv = qr_core_persisted(n->core, seq);
    if (rv != 0) {
        qr__sim_fail(sim, CHECK_DRIVER, "n%llu: persisted(%llu) refused: %s",
                     (unsigned long long)n->id, (unsigned long long)seq, qr_err_name(rv));
        return;
    }
    qr__sim_node_process(sim, node);
}

/* ---- Checks ------------------------------------------------------------------------- */

static bool core_entry(void *ctx, qr_index index, qr_term *term_out, uint64_t *hash_out)
{
    const struct qr_core *core = ctx;
    const struct qr_entry *e = NULL;
    if (qr_core_entry(core, index, &e) != 0) {
        return false;
    }
    *term_out = e->term;
    if (hash_out != NULL) {
        *hash_out = qr__check_entry_hash(e);
    }
    return true;
}

static struct qr_sim_log_view node_view(const struct sim_node *n)
{
    struct qr_sim_log_view v = {n->id, (void *)(uintptr_t)n->core, core_entry};
    return v;
}

/* The term of the node's snapshot at `index`, from its disk or its install in flight. */
static qr_term
node_snapshot_term(const struct qr_sim *sim, const struct sim_node *n, qr_index index)
{
    if (n->disk.has_snapshot && n->disk.snapshot.index == index) {
        return n->disk.snapshot.term;
    }
    for (size_t i = 0; i < n->disk.batches_count; i++) {
        if (n->disk.batches[i].has_snapshot && n->disk.batches[i].snapshot.index == index) {
            return n->disk.batches[i].snapshot.term;
        }
    }
    qr_term term = 0;
    (void)qr__check_committed(&sim->check, index, &term, NULL); /* Unknown: nothing to compare. */
    return term;
}

static void
check_new_leader(struct qr_sim *sim, const struct sim_node *n, const struct qr_core_status *st)
{
    sim->result->elections++;
    struct qr_sim_log_view view = node_view(n);
    struct qr_sim_leader leader = {st->term, st->snapshot_index,
                                   node_snapshot_term(sim, n, st->snapshot_index)};
    int rv = qr__check_leader_log(&sim->check, &view, &leader);
    if (rv != 0) {
        qr__sim_error(sim, rv, "leader completeness");
    }
}

static void check_logs(struct qr_sim *sim, uint32_t node, const struct qr_core_status *st)
{
    const struct sim_node *n = &sim->nodes[node];
    struct qr_sim_log_view a = node_view(n);
    for (uint32_t j = 0; j < sim->nodes_total && !sim->is_failed; j++) {
        const struct sim_node *m = &sim->nodes[j];
        if (j == node || !m->is_up) {
            continue;
        }
        qr_index low = st->commit < m->commit ? st->commit : m->commit;
        qr_index from = low > SIM_LOG_WINDOW ? low - SIM_LOG_WINDOW : 1;
        struct qr_sim_log_view b = node_view(m);
        int rv = qr__check_logs_match(&sim->check, &a, &b, from, low + SIM_LOG_WINDOW);
        if (rv != 0) {
            qr__sim_error(sim, rv, "log matching");
        }
    }
}

static void check_membership(struct qr_sim *sim, const struct qr_core_status *st)
{
    uint64_t members = 0;
    const struct qr_config *c = &st->config;
    for (uint32_t i = 0; i < c->voters_count; i++) {
        members |= UINT64_C(1) << (c->voters[i] - 1);
    }
    for (uint32_t i = 0; i < c->voters_old_count; i++) {
        members |= UINT64_C(1) << (c->voters_old[i] - 1);
    }
    for (uint32_t i = 0; i < c->learners_count; i++) {
        members |= UINT64_C(1) << (c->learners[i] - 1);
    }
    sim->members = members;
}

static void check_status(struct qr_sim *sim, struct sim_node *n, const struct qr_core_status *st)
{
    if (st->commit < n->commit) {
        qr__sim_fail(sim, CHECK_DURABILITY, "n%llu: commit went back from %llu to %llu while up",
                     (unsigned long long)n->id, (unsigned long long)n->commit,
                     (unsigned long long)st->commit);
        return;
    }
    if (st->durable > disk_last_index(&n->disk)) {
        qr__sim_fail(sim, CHECK_DURABILITY,
                     "n%llu: the core counts %llu as durable, the disk ends at %llu",
                     (unsigned long long)n->id, (unsigned long long)st->durable,
                     (unsigned long long)disk_last_index(&n->disk));
        return;
    }
    if (st->applied != n->applied) {
        qr__sim_fail(sim, CHECK_DRIVER,
                     "n%llu: the core handed out up to %llu, the driver applied %llu",
                     (unsigned long long)n->id, (unsigned long long)st->applied,
                     (unsigned long long)n->applied);
    }
}

void qr__sim_node_check(struct qr_sim *sim, uint32_t node)
{
    struct sim_node *n = &sim->nodes[node];
    n->is_touched = false;
    if (!n->is_up || sim->is_failed) {
        return;
    }
    struct qr_core_status st;
    qr_core_status(n->core, &st);
    if (st.role == QR_ROLE_LEADER) {
        int rv = qr__check_leader(&sim->check, st.term, n->id);
        if (rv != 0) {
            qr__sim_error(sim, rv, "election safety");
            return;
        }
        check_membership(sim, &st);
    }
    if (st.role != n->role || st.term != n->term || st.leader != n->leader) {
        qr__trace_event(&sim->trace, sim->now, "role n%llu %s term=%llu leader=n%llu",
                        (unsigned long long)n->id, qr_role_name(st.role),
                        (unsigned long long)st.term, (unsigned long long)st.leader);
        if (st.role == QR_ROLE_LEADER && (n->role != QR_ROLE_LEADER || n->term != st.term)) {
            check_new_leader(sim, n, &st);
        }
    }
    check_status(sim, n, &st);
    if (st.commit != n->commit) {
        qr__trace_event(&sim->trace, sim->now, "commit n%llu %llu", (unsigned long long)n->id,
                        (unsigned long long)st.commit);
    }
    n->role = st.role;
    n->term = st.term;
    n->leader = st.leader;
    n->commit = st.commit;
    if (sim->check.committed_max > sim->result->commit_index_max) {
        sim->result->commit_index_max = sim->check.committed_max;
    }
    /* The window only changes when a log or a commit index does: skip the rest. */
    if (n->is_log_changed) {
        n->is_log_changed = false;
        check_logs(sim, node, &st);
    }
}

uint64_t qr__sim_node_digest(struct qr_sim *sim, uint32_t node)
{
    struct qr_buf bytes;
    int rv = qr__kv_snapshot(sim->nodes[node].kv, &bytes);
    if (rv != 0) {
        qr__sim_error(sim, rv, "kv snapshot");
        return 0;
    }
    uint32_t crc = qr__crc32c(0, bytes.base, bytes.len);
    qr_free(bytes.base);
    return crc;
}
