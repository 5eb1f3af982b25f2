/*
 * sim/sim_net.c: the simulated network and the event queue.
 *
 * Layer: sim. A message leaving a core is deep-copied into one allocation
 * (the core's output batch dies at qr_core_advance), given a delivery time
 * and queued. Faults act here: cut links drop at send and at delivery time,
 * loss drops at random, delay adds long latencies, duplication queues a
 * second copy, and without the reorder fault each link delivers in order.
 * The sender's driver fills snapshot chunks from the sender's snapshot bytes.
 */
#include <string.h>

#include "sim/sim_internal.h"
#include "util/alloc.h"
#include "util/assert.h"

/* ---- Event queue ------------------------------------------------------------------- */

static bool event_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

int qr__sim_heap_push(struct sim_heap *heap, const struct sim_event *event)
{
    if (heap->count == SIM_EVENTS_MAX) {
        return QR_EBUSY;
    }
    if (heap->count == heap->capacity) {
        size_t capacity = heap->capacity == 0 ? 1024 : heap->capacity * 2;
        struct sim_event *items = qr_realloc(heap->items, capacity * sizeof(*items));
        if (items == NULL) {
            return QR_ENOMEM;
        }
        heap->items = items;
        heap->capacity = capacity;
    }
    struct sim_event e = *event;
    e.seq = heap->seq_next++;
    size_t i = heap->count++;
    /* Sift up; the depth is at most log2(SIM_EVENTS_MAX). */
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!event_before(&e, &heap->items[parent])) {
            break;
        }
        heap->items[i] = heap->items[parent];
        i = parent;
    }
    heap->items[i] = e;
    return 0;
}

bool qr__sim_heap_pop(struct sim_heap *heap, struct sim_event *event_out)
{
    if (heap->count == 0) {
        return false;
    }
    *event_out = heap->items[0];
    struct sim_event last = heap->items[--heap->count];
    size_t i = 0;
    size_t n = heap->count;
    while (n > 0) {
        size_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && event_before(&heap->items[child + 1], &heap->items[child])) {
            child++;
        }
        if (!event_before(&heap->items[child], &last)) {
            break;
        }
        heap->items[i] = heap->items[child];
        i = child;
    }
    if (n > 0) {
        heap->items[i] = last;
    }
    return true;
}

void qr__sim_heap_close(struct sim_heap *heap)
{
    for (size_t i = 0; i < heap->count; i++) {
        qr_free(heap->items[i].msg);
    }
    qr_free(heap->items);
    memset(heap, 0, sizeof(*heap));
}

/* ---- Message copies ----------------------------------------------------------------- */

const uint8_t *qr__sim_node_snapshot_bytes(const struct sim_node *n, qr_index index, uint64_t *size)
{
    /* The core may name a snapshot it installed whose persist batch is still in flight. */
    if (n->disk.has_snapshot && n->disk.snapshot.index == index) {
        *size = n->disk.snapshot.size;
        return n->disk.snapshot_data;
    }
    for (size_t i = n->disk.batches_count; i > 0; i--) {
        const struct sim_batch *b = &n->disk.batches[i - 1];
        if (b->has_snapshot && b->snapshot.index == index) {
            *size = b->snapshot.size;
            return b->snapshot_data;
        }
    }
    return NULL;
}

/* Deep copy of msg with `data` as its payload (snapshot chunk bytes, or the message's own). */
static struct sim_msg *msg_copy(const struct qr_msg *msg, const uint8_t *data, size_t data_size)
{
    size_t bytes = sizeof(struct sim_msg) + msg->entries_count * sizeof(struct qr_entry);
    for (size_t i = 0; i < msg->entries_count; i++) {
        bytes += msg->entries[i].data.len;
    }
    bytes += data_size;
    struct sim_msg *m = qr_malloc(bytes);
    if (m == NULL) {
        return NULL;
    }
    m->msg = *msg;
    uint8_t *at = (uint8_t *)&m->entries[msg->entries_count];
    for (size_t i = 0; i < msg->entries_count; i++) {
        m->entries[i] = msg->entries[i];
        m->entries[i].data.base = msg->entries[i].data.len > 0 ? at : NULL;
        if (msg->entries[i].data.len > 0) {
            memcpy(at, msg->entries[i].data.base, msg->entries[i].data.len);
        }
        at += msg->entries[i].data.len;
    }
    m->msg.entries = msg->entries_count > 0 ? m->entries : NULL;
    if (msg->snapshot != NULL) {
        m->snapshot = *msg->snapshot;
        m->msg.snapshot = &m->snapshot;
    } else {
        memset(&m->snapshot, 0, sizeof(m->snapshot));
    }
    m->msg.data.base = data_size > 0 ? at : NULL;
    m->msg.data.len = data_size;
    if (data_size > 0) {
        memcpy(at, data, data_size);
    }
    return m;
}

static const char *node_kind(const struct qr_msg *msg)
{
    return qr_msg_type_name(msg->type);
}

static void trace_drop(struct qr_sim *sim, const struct qr_msg *msg, const char *why)
{
    sim->result->messages_dropped++;
    qr__trace_event(&sim->trace, sim->now, "drop n%llu->n%llu %s term=%llu: %s",
                    (unsigned long long)msg->from, (unsigned long long)msg->to, node_kind(msg),
                    (unsigned long long)msg->term, why);
}

static uint64_t msg_latency(struct qr_sim *sim, uint32_t from, uint32_t to)
{
    const struct sim_params *p = &sim->params;
    uint64_t latency = qr__sim_rand_range(sim, p->latency_min, p->latency_max);
    if (!sim->is_healed && (p->faults & QR_SIM_FAULT_REORDER) != 0) {
        latency += qr__sim_rand_range(sim, 0, p->reorder_jitter);
    }
    if (!sim->is_healed && (p->faults & QR_SIM_FAULT_DELAY) != 0 &&
        qr__sim_chance(sim, p->delay_permille)) {
        latency += qr__sim_rand_range(sim, SIM_TICK, 20 * SIM_TICK);
    }
    uint64_t time = sim->now + latency;
    if ((p->faults & QR_SIM_FAULT_REORDER) == 0 || sim->is_healed) {
        /* In-order links: never deliver before the link's previous message. */
        if (time < sim->link_last[from][to]) {
            time = sim->link_last[from][to];
        }
        sim->link_last[from][to] = time;
    }
    return time;
}

static void queue_copy(struct qr_sim *sim,
                       uint32_t from,
                       uint32_t to,
                       const struct qr_msg *msg,
                       const uint8_t *data,
                       size_t data_size)
{
    struct sim_msg *copy = msg_copy(msg, data, data_size);
    if (copy == NULL) {
        qr__sim_error(sim, QR_ENOMEM, "message copy");
        return;
    }
    int rv = qr__sim_schedule(sim, msg_latency(sim, from, to), SIM_EV_DELIVER, to, 0, copy);
    if (rv != 0) {
        qr_free(copy);
        trace_drop(sim, msg, "event queue full");
    }
}

/* The chunk of the sender's snapshot that a SNAPSHOT message carries. */
static bool snapshot_chunk(struct qr_sim *sim,
                           uint32_t from,
                           const struct qr_msg *msg,
                           const uint8_t **data_out,
                           size_t *size_out)
{
    uint64_t size = 0;
    const uint8_t *bytes =
        qr__sim_node_snapshot_bytes(&sim->nodes[from], msg->snapshot->index, &size);
    if (bytes == NULL) {
        qr__sim_fail(sim, "snapshot transfer",
                     "n%llu sends snapshot %llu, but its disk holds snapshot %llu",
                     (unsigned long long)msg->from, (unsigned long long)msg->snapshot->index,
                     (unsigned long long)sim->nodes[from].disk.snapshot.index);
        return false;
    }
    if (size != msg->snapshot->size || msg->offset > size || msg->chunk_size > size - msg->offset) {
        qr__sim_fail(sim, "snapshot transfer",
                     "n%llu sends snapshot %llu chunk offset %llu size %u, but it has %llu bytes "
                     "(meta says %llu)",
                     (unsigned long long)msg->from, (unsigned long long)msg->snapshot->index,
                     (unsigned long long)msg->offset, (unsigned)msg->chunk_size,
                     (unsigned long long)size, (unsigned long long)msg->snapshot->size);
        return false;
    }
    *data_out = bytes + msg->offset;
    *size_out = msg->chunk_size;
    return true;
}

void qr__sim_net_send(struct qr_sim *sim, uint32_t from, const struct qr_msg *msg)
{
    QR_ASSERT(from < sim->nodes_total && msg->from == sim->nodes[from].id);
    if (msg->to == 0 || msg->to > sim->nodes_total || msg->to == msg->from) {
        qr__sim_fail(sim, "message", "n%llu sends %s to unknown node %llu",
                     (unsigned long long)msg->from, node_kind(msg), (unsigned long long)msg->to);
        return;
    }
    uint32_t to = (uint32_t)(msg->to - 1);
    const uint8_t *data = msg->data.base;
    size_t data_size = msg->data.len;
    if (msg->type == QR_MSG_SNAPSHOT) {
        if (msg->snapshot == NULL) {
            qr__sim_fail(sim, "message", "n%llu sends a snapshot chunk without meta",
                         (unsigned long long)msg->from);
            return;
        }
        if (!snapshot_chunk(sim, from, msg, &data, &data_size)) {
            return;
        }
    }
    if (sim->blocked[from][to]) {
        trace_drop(sim, msg, "partition");
        return;
    }
    const struct sim_params *p = &sim->params;
    if (!sim->is_healed && (p->faults & QR_SIM_FAULT_LOSS) != 0 &&
        qr__sim_chance(sim, p->loss_permille)) {
        trace_drop(sim, msg, "loss");
        return;
    }
    queue_copy(sim, from, to, msg, data, data_size);
    if (!sim->is_healed && (p->faults & QR_SIM_FAULT_DUP) != 0 &&
        qr__sim_chance(sim, p->dup_permille)) {
        qr__trace_event(&sim->trace, sim->now, "dup n%llu->n%llu %s", (unsigned long long)msg->from,
                        (unsigned long long)msg->to, node_kind(msg));
        queue_copy(sim, from, to, msg, data, data_size);
    }
}

static void trace_recv(struct qr_sim *sim, const struct qr_msg *msg)
{
    if (msg->type == QR_MSG_SNAPSHOT || msg->type == QR_MSG_SNAPSHOT_RESPONSE) {
        qr__trace_event(
            &sim->trace, sim->now,
            "recv n%llu->n%llu %s term=%llu snapshot=%llu offset=%llu size=%zu%s%s",
            (unsigned long long)msg->from, (unsigned long long)msg->to, node_kind(msg),
            (unsigned long long)msg->term,
            (unsigned long long)(msg->snapshot != NULL ? msg->snapshot->index : msg->index),
            (unsigned long long)msg->offset, msg->data.len, msg->last_chunk ? " last" : "",
            msg->reject ? " reject" : "");
        return;
    }
    qr__trace_event(&sim->trace, sim->now,
                    "recv n%llu->n%llu %s term=%llu log=%llu/%llu commit=%llu n=%zu idx=%llu%s%s",
                    (unsigned long long)msg->from, (unsigned long long)msg->to, node_kind(msg),
                    (unsigned long long)msg->term, (unsigned long long)msg->log_index,
                    (unsigned long long)msg->log_term, (unsigned long long)msg->commit,
                    msg->entries_count, (unsigned long long)msg->index,
                    msg->reject ? " reject" : "", msg->prevote ? " prevote" : "");
}

void qr__sim_net_deliver(struct qr_sim *sim, struct sim_msg *m)
{
    const struct qr_msg *msg = &m->msg;
    uint32_t from = (uint32_t)(msg->from - 1);
    uint32_t to = (uint32_t)(msg->to - 1);
    struct sim_node *n = &sim->nodes[to];
    if (!n->is_up) {
        trace_drop(sim, msg, "node down");
        return;
    }
    if (sim->blocked[from][to]) {
        trace_drop(sim, msg, "partition");
        return;
    }
    sim->result->messages_delivered++;
    trace_recv(sim, msg);
    int rv = qr_core_step(n->core, msg);
    if (rv == QR_EINVAL) {
        qr__sim_fail(sim, "message", "n%llu refused as invalid a %s from n%llu (term %llu)",
                     (unsigned long long)n->id, node_kind(msg), (unsigned long long)msg->from,
                     (unsigned long long)msg->term);
        return;
    }
    if (rv != 0) {
        qr__trace_event(&sim->trace, sim->now, "step n%llu: %s", (unsigned long long)n->id,
                        qr_err_name(rv));
    }
    qr__sim_node_process(sim, to);
}
