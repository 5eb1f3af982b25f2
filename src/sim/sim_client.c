/*
 * sim/sim_client.c: simulated key-value clients and their history.
 *
 * Layer: sim. Each client runs one operation at a time (SET, GET, DEL or
 * INCR on a small key set) against the node it believes leads, moving on
 * when told "not leader". A write is proposed with an envelope naming the
 * client and a fresh sequence number; it completes when the node it was
 * proposed to applies that envelope at the index the proposal got, and it
 * has definitely failed when that node applies another entry there (an entry
 * never moves to another index, and no request is proposed twice). A GET goes
 * through qr_core_read_index and is answered from the node's store once it
 * has applied the read index. An operation with no answer before its timeout,
 * or whose node crashed, is indeterminate if it was a write (it may still take
 * effect) and simply failed if it was a read. Every operation becomes one
 * record of the history that the linearizability checker judges at the end.
 */
#include <stdio.h>
#include <string.h>

#include "quorum/err.h"
#include "sim/sim_internal.h"
#include "util/alloc.h"
#include "util/assert.h"

#define CHECK_LIN "linearizability"
#define CHECK_KV  "state machine answer"
/* Largest encoded command a client sends: header, "k" + 20 digits, a value of 20 digits. */
#define CLIENT_CMD_SIZE_MAX (QR_KV_CMD_HEADER_SIZE + 24 + 4 + QR_KV_INT_TEXT_SIZE_MAX)

static uint32_t pick_member(struct qr_sim *sim)
{
    uint32_t candidates[QR_SIM_NODES_MAX];
    uint32_t count = 0;
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        if (qr__sim_is_member(sim, i)) {
            candidates[count++] = i;
        }
    }
    QR_ASSERT(count > 0);
    return candidates[qr__sim_rand_range(sim, 0, count - 1)];
}

static size_t key_text(uint64_t key, char *buf, size_t size)
{
    int n = snprintf(buf, size, "k%llu", (unsigned long long)key);
    QR_ASSERT(n > 0 && (size_t)n < size);
    return (size_t)n;
}

static int ops_push(struct qr_sim *sim, const struct qr_lin_op *lin, size_t *index_out)
{
    if (sim->ops_count == SIM_HISTORY_MAX) {
        return QR_EBUSY;
    }
    if (sim->ops_count == sim->ops_capacity) {
        size_t capacity = sim->ops_capacity == 0 ? 1024 : sim->ops_capacity * 2;
        struct sim_op *ops = qr_realloc(sim->ops, capacity * sizeof(*ops));
        if (ops == NULL) {
            return QR_ENOMEM;
        }
        sim->ops = ops;
        sim->ops_capacity = capacity;
    }
    sim->ops[sim->ops_count].lin = *lin;
    sim->ops[sim->ops_count].state = SIM_OP_PENDING;
    *index_out = sim->ops_count++;
    return 0;
}

static void schedule_act(struct qr_sim *sim, uint32_t client, uint64_t delay)
{
    struct sim_client *c = &sim->clients[client];
    int rv = qr__sim_schedule(sim, sim->now + delay, SIM_EV_CLIENT, client, c->op_serial * 2, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "client event");
    }
}

/* The op is answered or abandoned: the client is free for the next one. */
static void client_finish(struct qr_sim *sim, uint32_t client, enum sim_op_state state)
{
    struct sim_client *c = &sim->clients[client];
    QR_ASSERT(c->is_busy);
    struct sim_op *op = &sim->ops[c->op_index];
    op->state = state;
    if (state == SIM_OP_INDETERMINATE) {
        op->lin.is_indeterminate = true;
        sim->result->ops_indeterminate++;
    } else if (state == SIM_OP_FAILED) {
        sim->result->ops_failed++;
    }
    c->is_busy = false;
    c->op_serial++;
    schedule_act(sim, client, qr__sim_rand_range(sim, 0, SIM_TICK));
}

static void client_done(struct qr_sim *sim, uint32_t client, bool is_found, int64_t output)
{
    struct sim_client *c = &sim->clients[client];
    struct sim_op *op = &sim->ops[c->op_index];
    op->lin.is_found = is_found;
    op->lin.output = output;
    op->lin.complete_tick = sim->now;
    sim->result->ops_completed++;
    if (sim->is_healed && op->lin.invoke_tick >= sim->heal_time + SIM_SETTLE_TICKS * SIM_TICK) {
        c->done_after_settle++;
    }
    qr__trace_event(&sim->trace, sim->now, "client c%u done %s k%llu -> %s%lld", (unsigned)c->id,
                    qr__lin_kind_name(op->lin.kind), (unsigned long long)op->lin.key,
                    op->lin.kind == QR_LIN_GET && !is_found ? "nil " : "", (long long)output);
    client_finish(sim, client, SIM_OP_DONE);
}

/* ---- Submitting ---------------------------------------------------------------------- */

static void choose_op(struct qr_sim *sim, struct qr_lin_op *lin)
{
    memset(lin, 0, sizeof(*lin));
    uint64_t roll = qr__sim_rand_range(sim, 0, 99);
    lin->kind = roll < 35   ? QR_LIN_GET
                : roll < 65 ? QR_LIN_SET
                : roll < 90 ? QR_LIN_INCR
                            : QR_LIN_DEL;
    /* Keys rotate every SIM_KEY_EPOCH_TICKS so that each key's history stays small enough for
     * the linearizability checker; some operations still touch the previous epoch's keys, so
     * late effects of indeterminate writes are observed. */
    uint64_t epoch = sim->now / (SIM_KEY_EPOCH_TICKS * SIM_TICK);
    if (epoch > 0 && qr__sim_chance(sim, 150)) {
        epoch--;
    }
    lin->key = epoch * sim->params.keys_count + qr__sim_rand_range(sim, 1, sim->params.keys_count);
    if (lin->kind == QR_LIN_SET) {
        lin->input = (int64_t)++sim->value_next;
    } else if (lin->kind == QR_LIN_INCR) {
        lin->input = (int64_t)qr__sim_rand_range(sim, 0, 8) - 3;
    }
    lin->invoke_tick = sim->now;
}

static size_t
encode_write(const struct sim_client *c, const struct qr_lin_op *lin, uint64_t seq, uint8_t *buf)
{
    char key[32];
    uint8_t value[QR_KV_INT_TEXT_SIZE_MAX];
    struct qr_kv_cmd cmd = {.client_id = c->id, .seq = seq};
    cmd.key.base = (uint8_t *)key;
    cmd.key.len = key_text(lin->key, key, sizeof(key));
    if (lin->kind == QR_LIN_SET) {
        cmd.op = QR_KV_SET;
        cmd.value.base = value;
        cmd.value.len = qr__kv_format_int(lin->input, value);
    } else if (lin->kind == QR_LIN_INCR) {
        cmd.op = QR_KV_INCR;
        cmd.delta = lin->input;
    } else {
        cmd.op = QR_KV_DEL;
    }
    size_t size = qr__kv_cmd_encoded_size(&cmd);
    QR_ASSERT(size <= CLIENT_CMD_SIZE_MAX);
    qr__kv_cmd_encode(&cmd, buf);
    return size;
}

static void
client_begin(struct qr_sim *sim, uint32_t client, uint32_t node, const struct qr_lin_op *lin)
{
    struct sim_client *c = &sim->clients[client];
    int rv = ops_push(sim, lin, &c->op_index);
    if (rv != 0) {
        qr__sim_error(sim, rv, "history");
        return;
    }
    c->is_busy = true;
    c->op_serial++;
    c->node = node;
    rv = qr__sim_schedule(sim, sim->now + SIM_CLIENT_TIMEOUT_TICKS * SIM_TICK, SIM_EV_CLIENT,
                          client, c->op_serial * 2 + 1, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "client timeout");
    }
}

static bool serve_get(struct qr_sim *sim, uint32_t node, uint64_t key, int64_t *value_out)
{
    char text[32];
    struct qr_buf k = {(uint8_t *)text, key_text(key, text, sizeof(text))};
    struct qr_buf value;
    if (!qr__kv_get(sim->nodes[node].kv, k, &value)) {
        return false;
    }
    if (!qr__kv_parse_int(value.base, value.len, value_out)) {
        qr__sim_fail(sim, CHECK_KV, "n%llu holds a non-integer value for k%llu",
                     (unsigned long long)sim->nodes[node].id, (unsigned long long)key);
        return false;
    }
    return true;
}

static int
submit_read(struct qr_sim *sim, uint32_t client, uint32_t node, const struct qr_lin_op *lin)
{
    struct sim_node *n = &sim->nodes[node];
    struct sim_client *c = &sim->clients[client];
    if (sim->opts.bug == QR_SIM_BUG_STALE_READ) {
        client_begin(sim, client, node, lin);
        int64_t value = 0;
        bool found = serve_get(sim, node, lin->key, &value);
        client_done(sim, client, found, value);
        return 0;
    }
    if (n->reads_count == SIM_READS_MAX) {
        return QR_EBUSY;
    }
    uint64_t request_id = ++sim->read_id_next;
    int rv = qr_core_read_index(n->core, request_id);
    if (rv != 0) {
        return rv;
    }
    client_begin(sim, client, node, lin);
    c->is_read = true;
    c->request_id = request_id;
    n->reads[n->reads_count++] =
        (struct sim_read){.request_id = request_id, .client = client, .op_serial = c->op_serial};
    qr__trace_event(&sim->trace, sim->now, "client c%u get k%llu -> n%llu read=%llu",
                    (unsigned)c->id, (unsigned long long)lin->key, (unsigned long long)n->id,
                    (unsigned long long)request_id);
    return 0;
}

static int
submit_write(struct qr_sim *sim, uint32_t client, uint32_t node, const struct qr_lin_op *lin)
{
    struct sim_client *c = &sim->clients[client];
    uint8_t buf[CLIENT_CMD_SIZE_MAX];
    uint64_t seq = c->seq + 1;
    struct qr_buf data = {buf, encode_write(c, lin, seq, buf)};
    qr_index index = 0;
    int rv = qr_core_propose(sim->nodes[node].core, data, &index);
    if (rv != 0) {
        return rv;
    }
    c->seq = seq;
    client_begin(sim, client, node, lin);
    c->is_read = false;
    c->index = index;
    c->request_seq = seq;
    qr__trace_event(&sim->trace, sim->now, "client c%u %s k%llu %lld -> n%llu index=%llu seq=%llu",
                    (unsigned)c->id, qr__lin_kind_name(lin->kind), (unsigned long long)lin->key,
                    (long long)lin->input, (unsigned long long)sim->nodes[node].id,
                    (unsigned long long)index, (unsigned long long)seq);
    return 0;
}

/* Where to try next after `node` said it does not lead. */
static uint32_t redirect(struct qr_sim *sim, uint32_t node)
{
    struct qr_core_status st;
    qr_core_status(sim->nodes[node].core, &st);
    if (st.leader != 0 && st.leader != st.id && st.leader <= sim->nodes_total &&
        qr__sim_is_member(sim, (uint32_t)(st.leader - 1))) {
        return (uint32_t)(st.leader - 1);
    }
    return pick_member(sim);
}

static void client_submit(struct qr_sim *sim, uint32_t client)
{
    struct sim_client *c = &sim->clients[client];
    struct qr_lin_op lin;
    choose_op(sim, &lin);
    lin.client = c->id;
    for (uint32_t tries = 0; tries < SIM_CLIENT_TRIES_MAX; tries++) {
        uint32_t node = c->target;
        if (!qr__sim_is_member(sim, node) || !sim->nodes[node].is_up) {
            c->target = pick_member(sim);
            continue;
        }
        int rv = lin.kind == QR_LIN_GET ? submit_read(sim, client, node, &lin)
                                        : submit_write(sim, client, node, &lin);
        if (rv == 0) {
            if (sim->nodes[node].is_up) {
                qr__sim_node_process(sim, node);
            }
            return;
        }
        if (rv != QR_ENOTLEADER) {
            break; /* QR_EBUSY: back-pressure or a transfer; wait. */
        }
        c->target = redirect(sim, node);
    }
    schedule_act(sim, client, SIM_TICK);
}

static void client_timeout(struct qr_sim *sim, uint32_t client)
{
    struct sim_client *c = &sim->clients[client];
    struct sim_op *op = &sim->ops[c->op_index];
    qr__trace_event(&sim->trace, sim->now, "client c%u timeout %s k%llu at n%llu", (unsigned)c->id,
                    qr__lin_kind_name(op->lin.kind), (unsigned long long)op->lin.key,
                    (unsigned long long)sim->nodes[c->node].id);
    if (sim->is_healed && op->lin.invoke_tick >= sim->heal_time + SIM_SETTLE_TICKS * SIM_TICK) {
        c->timeouts_after_settle++;
    }
    c->target = pick_member(sim);
    client_finish(sim, client, c->is_read ? SIM_OP_FAILED : SIM_OP_INDETERMINATE);
}

void qr__sim_client_act(struct qr_sim *sim, uint32_t client, uint64_t arg)
{
    QR_ASSERT(client < sim->params.clients_count);
    struct sim_client *c = &sim->clients[client];
    if (arg / 2 != c->op_serial) {
        return; /* A timer of an operation already over. */
    }
    if (arg % 2 == 1) {
        if (c->is_busy) {
            client_timeout(sim, client);
        }
        return;
    }
    if (c->is_busy || sim->is_quiet) {
        return;
    }
    client_submit(sim, client);
}

void qr__sim_client_start(struct qr_sim *sim)
{
    for (uint32_t i = 0; i < sim->params.clients_count; i++) {
        struct sim_client *c = &sim->clients[i];
        memset(c, 0, sizeof(*c));
        c->id = i + 1;
        c->target = (uint32_t)qr__sim_rand_range(sim, 0, sim->params.nodes_count - 1);
        schedule_act(sim, i, qr__sim_rand_range(sim, 0, 2 * SIM_TICK));
    }
}

/* ---- Answers ------------------------------------------------------------------------- */

static bool write_answer(struct qr_sim *sim,
                         const struct sim_op *op,
                         const struct qr_kv_result *result,
                         int64_t *output_out)
{
    bool is_expected = false;
    switch (op->lin.kind) {
    case QR_LIN_SET:
        is_expected = result->status == QR_KV_OK;
        break;
    case QR_LIN_DEL:
    case QR_LIN_INCR:
        is_expected = result->status == QR_KV_INTEGER;
        break;
    case QR_LIN_GET:
        break;
    }
    if (!is_expected) {
        qr__sim_fail(sim, CHECK_KV, "%s k%llu answered status %d (%s)",
                     qr__lin_kind_name(op->lin.kind), (unsigned long long)op->lin.key,
                     (int)result->status, qr__kv_error_text(result->error));
        return false;
    }
    *output_out = result->integer;
    return true;
}

void qr__sim_client_applied(struct qr_sim *sim,
                            uint32_t node,
                            const struct qr_entry *entry,
                            const struct qr_kv_cmd *cmd,
                            const struct qr_kv_result *result)
{
    for (uint32_t i = 0; i < sim->params.clients_count && !sim->is_failed; i++) {
        struct sim_client *c = &sim->clients[i];
        if (!c->is_busy || c->is_read || c->node != node || c->index != entry->index) {
            continue;
        }
        if (cmd != NULL && cmd->client_id == c->id && cmd->seq == c->request_seq) {
            int64_t output = 0;
            if (write_answer(sim, &sim->ops[c->op_index], result, &output)) {
                client_done(sim, i, false, output);
            }
            continue;
        }
        /* Another entry took the index: this request can never be applied anywhere. */
        int rv = qr__check_request_failed(&sim->check, c->id, c->request_seq);
        if (rv != 0) {
            qr__sim_error(sim, rv, "request check");
            return;
        }
        qr__trace_event(&sim->trace, sim->now, "client c%u lost index %llu at n%llu",
                        (unsigned)c->id, (unsigned long long)entry->index,
                        (unsigned long long)sim->nodes[node].id);
        client_finish(sim, i, SIM_OP_FAILED);
    }
}

static void read_remove(struct sim_node *n, size_t k)
{
    QR_ASSERT(k < n->reads_count);
    memmove(&n->reads[k], &n->reads[k + 1], (n->reads_count - k - 1) * sizeof(n->reads[0]));
    n->reads_count--;
}

void qr__sim_client_read_ready(struct qr_sim *sim, uint32_t node)
{
    struct sim_node *n = &sim->nodes[node];
    size_t k = 0;
    while (k < n->reads_count && !sim->is_failed) {
        struct sim_read r = n->reads[k];
        if (!r.has_index || n->applied < r.index) {
            k++;
            continue;
        }
        read_remove(n, k);
        struct sim_client *c = &sim->clients[r.client];
        if (!c->is_busy || c->op_serial != r.op_serial) {
            continue; /* The client gave up on it. */
        }
        int64_t value = 0;
        bool found = serve_get(sim, node, sim->ops[c->op_index].lin.key, &value);
        if (!sim->is_failed) {
            client_done(sim, r.client, found, value);
        }
    }
}

void qr__sim_client_read_failed(struct qr_sim *sim, uint32_t node, uint64_t request_id)
{
    struct sim_node *n = &sim->nodes[node];
    for (size_t k = 0; k < n->reads_count; k++) {
        struct sim_read r = n->reads[k];
        if (r.request_id != request_id) {
            continue;
        }
        read_remove(n, k);
        struct sim_client *c = &sim->clients[r.client];
        if (c->is_busy && c->op_serial == r.op_serial) {
            c->target = pick_member(sim);
            client_finish(sim, r.client, SIM_OP_FAILED);
        }
        return;
    }
}

void qr__sim_client_node_crashed(struct qr_sim *sim, uint32_t node)
{
    for (uint32_t i = 0; i < sim->params.clients_count; i++) {
        struct sim_client *c = &sim->clients[i];
        if (c->is_busy && c->node == node) {
            /* The connection dropped: a write may still take effect, a read did nothing. */
            c->target = pick_member(sim);
            client_finish(sim, i, c->is_read ? SIM_OP_FAILED : SIM_OP_INDETERMINATE);
        }
    }
    sim->nodes[node].reads_count = 0;
}

int qr__sim_client_check_history(struct qr_sim *sim)
{
    struct qr_lin_op *ops = qr_malloc((sim->ops_count + 1) * sizeof(*ops));
    if (ops == NULL) {
        return QR_ENOMEM;
    }
    size_t count = 0;
    for (size_t i = 0; i < sim->ops_count; i++) {
        const struct sim_op *op = &sim->ops[i];
        if (op->state == SIM_OP_FAILED ||
            (op->state == SIM_OP_PENDING && op->lin.kind == QR_LIN_GET)) {
            continue;
        }
        ops[count] = op->lin;
        ops[count].is_indeterminate = op->state != SIM_OP_DONE;
        count++;
    }
    struct qr_lin_opts opts = {.steps_max = SIM_LIN_STEPS_MAX, .cache_bytes_max = 0};
    struct qr_lin_result result;
    int rv = qr__lin_check(ops, count, &opts, &result);
    qr_free(ops);
    if (rv != 0) {
        return rv;
    }
    sim->result->lin_verdict = (int)result.verdict;
    qr__trace_event(&sim->trace, sim->now, "history %zu ops: %s (%llu steps)", count,
                    qr__lin_verdict_name(result.verdict), (unsigned long long)result.steps_count);
    if (result.verdict == QR_LIN_VIOLATION) {
        qr__sim_fail(sim, CHECK_LIN, "%s", result.errmsg);
    }
    return 0;
}
