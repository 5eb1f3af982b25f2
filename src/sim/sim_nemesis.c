/*
 * sim/sim_nemesis.c: the fault injector.
 *
 * Layer: sim. During the fault phase it acts at random intervals, choosing
 * among the enabled faults: cut the network (symmetric, one-way or bridge
 * partitions) or heal it, crash a node (it restarts later), make a disk slow
 * or fast again, change the membership through the leader (add a learner,
 * promote it, remove or demote a voter, or a joint change of two voters), or
 * move the leadership. Loss, delay, duplication, reordering and clock skew are
 * properties of the whole fault phase, applied by sim_net.c and sim.c. At the
 * end of the fault phase everything heals: links mend, crashed nodes restart,
 * disks are fast again and messages stop being dropped, delayed or
 * duplicated. Only faults the design claims to survive are injected: a crash
 * loses only writes not yet reported durable, and a removed node id is never
 * reused.
 */
#include <string.h>

#include "quorum/err.h"
#include "sim/sim_internal.h"
#include "util/assert.h"

#define VOTERS_MIN 3

enum nemesis_action {
    ACTION_NETWORK = 0,
    ACTION_CRASH = 1,
    ACTION_SLOWDISK = 2,
    ACTION_MEMBER = 3,
    ACTION_TRANSFER = 4,
    ACTION_COUNT = 5,
};

static void links_mend(struct qr_sim *sim)
{
    memset(sim->blocked, 0, sizeof(sim->blocked));
    sim->is_partitioned = false;
}

static void cut(struct qr_sim *sim, uint32_t from, uint32_t to)
{
    sim->blocked[from][to] = true;
}

/* Splits the nodes (all but `skip`) into two non-empty sides; side_out[i] is 0 or 1. */
static void split(struct qr_sim *sim, uint32_t skip, uint8_t *side_out)
{
    uint32_t counts[2] = {0, 0};
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        side_out[i] = (uint8_t)qr__sim_rand_range(sim, 0, 1);
        if (i != skip) {
            counts[side_out[i]]++;
        }
    }
    /* Make sure both sides hold someone: move one node over if needed. */
    for (uint32_t side = 0; side < 2; side++) {
        if (counts[side] == 0) {
            uint32_t i = (uint32_t)qr__sim_rand_range(sim, 0, sim->nodes_total - 1);
            if (i == skip) {
                i = (i + 1) % sim->nodes_total;
            }
            side_out[i] = (uint8_t)side;
        }
    }
}

static void
describe_sides(const struct qr_sim *sim, const uint8_t *side, uint32_t skip, char *buf, size_t size)
{
    size_t at = 0;
    for (uint32_t s = 0; s < 2 && at < size; s++) {
        at += (size_t)snprintf(buf + at, size - at, s == 0 ? "{" : "}|{");
        for (uint32_t i = 0; i < sim->nodes_total && at < size; i++) {
            if (i != skip && side[i] == s) {
                at += (size_t)snprintf(buf + at, size - at, "%llu,",
                                       (unsigned long long)sim->nodes[i].id);
            }
        }
    }
    if (at < size) {
        (void)snprintf(buf + at, size - at, "}");
    }
}

static void partition(struct qr_sim *sim, uint32_t kind)
{
    uint8_t side[QR_SIM_NODES_MAX];
    uint32_t bridge = QR_SIM_NODES_MAX;
    if (kind == QR_SIM_FAULT_BRIDGE) {
        bridge = (uint32_t)qr__sim_rand_range(sim, 0, sim->nodes_total - 1);
    }
    split(sim, bridge, side);
    bool is_oneway = kind == QR_SIM_FAULT_ONEWAY;
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        for (uint32_t j = 0; j < sim->nodes_total; j++) {
            if (i == bridge || j == bridge || side[i] == side[j]) {
                continue;
            }
            /* One-way: only messages from side 0 to side 1 are lost. */
            if (!is_oneway || side[i] == 0) {
                cut(sim, i, j);
            }
        }
    }
    sim->is_partitioned = true;
    char text[128];
    describe_sides(sim, side, bridge, text, sizeof(text));
    if (kind == QR_SIM_FAULT_BRIDGE) {
        qr__trace_event(&sim->trace, sim->now, "partition bridge %s via n%llu", text,
                        (unsigned long long)sim->nodes[bridge].id);
    } else {
        qr__trace_event(&sim->trace, sim->now, "partition %s %s",
                        is_oneway ? "oneway" : "symmetric", text);
    }
}

static void act_network(struct qr_sim *sim)
{
    uint32_t kinds[3];
    uint32_t count = 0;
    static const uint32_t all[3] = {QR_SIM_FAULT_PARTITION, QR_SIM_FAULT_ONEWAY,
                                    QR_SIM_FAULT_BRIDGE};
    for (uint32_t i = 0; i < 3; i++) {
        if ((sim->params.faults & all[i]) != 0) {
            kinds[count++] = all[i];
        }
    }
    QR_ASSERT(count > 0);
    if (sim->is_partitioned && qr__sim_chance(sim, 600)) {
        links_mend(sim);
        qr__trace_event(&sim->trace, sim->now, "partition healed");
        return;
    }
    links_mend(sim);
    partition(sim, kinds[qr__sim_rand_range(sim, 0, count - 1)]);
}

static void act_crash(struct qr_sim *sim)
{
    uint32_t up[QR_SIM_NODES_MAX];
    uint32_t count = 0;
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        if (sim->nodes[i].is_up) {
            up[count++] = i;
        }
    }
    if (count <= 1) {
        return;
    }
    uint32_t node = up[qr__sim_rand_range(sim, 0, count - 1)];
    qr__sim_node_crash(sim, node);
    uint64_t down = qr__sim_rand_range(sim, 2 * SIM_TICK, 80 * SIM_TICK);
    int rv = qr__sim_schedule(sim, sim->now + down, SIM_EV_RESTART, node,
                              sim->nodes[node].incarnation, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "restart event");
    }
}

static void act_slowdisk(struct qr_sim *sim)
{
    uint32_t node = (uint32_t)qr__sim_rand_range(sim, 0, sim->nodes_total - 1);
    struct sim_disk *d = &sim->nodes[node].disk;
    d->is_slow = !d->is_slow;
    qr__trace_event(&sim->trace, sim->now, "disk n%llu %s", (unsigned long long)sim->nodes[node].id,
                    d->is_slow ? "slow" : "fast");
}

/* The up node that leads in the highest term, or nodes_total when none. */
static uint32_t find_leader(struct qr_sim *sim)
{
    uint32_t leader = sim->nodes_total;
    qr_term term = 0;
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        const struct sim_node *n = &sim->nodes[i];
        if (n->is_up && n->role == QR_ROLE_LEADER && n->term >= term) {
            leader = i;
            term = n->term;
        }
    }
    return leader;
}

static bool id_in(const qr_node_id *ids, uint32_t count, qr_node_id id)
{
    for (uint32_t i = 0; i < count; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

static void ids_remove(qr_node_id *ids, uint32_t *count, qr_node_id id)
{
    uint32_t out = 0;
    for (uint32_t i = 0; i < *count; i++) {
        if (ids[i] != id) {
            ids[out++] = ids[i];
        }
    }
    *count = out;
}

/* Insert keeping the ids ascending, as struct qr_config requires. */
static void ids_add(qr_node_id *ids, uint32_t *count, qr_node_id id)
{
    QR_ASSERT(*count < QR_CORE_MEMBERS_MAX);
    uint32_t at = *count;
    while (at > 0 && ids[at - 1] > id) {
        ids[at] = ids[at - 1];
        at--;
    }
    ids[at] = id;
    (*count)++;
}

/* A learner the leader reports fully caught up, or 0. */
static qr_node_id caught_up_learner(struct qr_sim *sim, uint32_t leader, const struct qr_config *c)
{
    const struct sim_node *l = &sim->nodes[leader];
    for (uint32_t i = 0; i < c->learners_count; i++) {
        qr_index match = 0;
        qr_index next = 0;
        if (qr_core_progress(l->core, c->learners[i], &match, &next) && match >= l->commit) {
            return c->learners[i];
        }
    }
    return 0;
}

/* A spare that never joined and is up, or 0. */
static qr_node_id fresh_spare(struct qr_sim *sim)
{
    for (uint32_t i = sim->params.nodes_count; i < sim->nodes_total; i++) {
        if ((sim->ever_added & (UINT64_C(1) << i)) == 0 && sim->nodes[i].is_up) {
            return sim->nodes[i].id;
        }
    }
    return 0;
}

static const char *member_plan(struct qr_sim *sim, uint32_t leader, struct qr_config *next)
{
    qr_node_id learner = caught_up_learner(sim, leader, next);
    qr_node_id spare = fresh_spare(sim);
    qr_node_id voter = next->voters[qr__sim_rand_range(sim, 0, next->voters_count - 1)];
    bool can_remove = next->voters_count > VOTERS_MIN;
    uint64_t roll = qr__sim_rand_range(sim, 0, 99);
    if (spare != 0 && roll < 30) {
        ids_add(next->learners, &next->learners_count, spare);
        return "add learner";
    }
    if (learner != 0 && can_remove && roll < 55) {
        ids_remove(next->learners, &next->learners_count, learner);
        ids_add(next->voters, &next->voters_count, learner);
        ids_remove(next->voters, &next->voters_count, voter);
        return "joint: promote and remove";
    }
    if (learner != 0 && roll < 75) {
        ids_remove(next->learners, &next->learners_count, learner);
        ids_add(next->voters, &next->voters_count, learner);
        return "promote";
    }
    if (can_remove && roll < 90) {
        ids_remove(next->voters, &next->voters_count, voter);
        ids_add(next->learners, &next->learners_count, voter);
        return "demote";
    }
    if (can_remove) {
        ids_remove(next->voters, &next->voters_count, voter);
        return "remove";
    }
    return NULL;
}

static void act_member(struct qr_sim *sim)
{
    uint32_t leader = find_leader(sim);
    if (leader == sim->nodes_total) {
        return;
    }
    struct sim_node *l = &sim->nodes[leader];
    struct qr_core_status st;
    qr_core_status(l->core, &st);
    if (st.config.voters_old_count > 0 || st.transfer_target != 0) {
        return;
    }
    struct qr_config next = st.config;
    const char *plan = member_plan(sim, leader, &next);
    if (plan == NULL) {
        return;
    }
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_core_change_config(l->core, &next, errmsg);
    qr__trace_event(&sim->trace, sim->now, "config n%llu %s: voters=%u learners=%u: %s %s",
                    (unsigned long long)l->id, plan, (unsigned)next.voters_count,
                    (unsigned)next.learners_count, qr_err_name(rv), errmsg);
    if (rv == QR_EINVAL) {
        qr__sim_fail(sim, "membership", "n%llu refused a valid change (%s): %s",
                     (unsigned long long)l->id, plan, errmsg);
        return;
    }
    if (rv == 0) {
        sim->result->config_changes++;
        for (uint32_t i = 0; i < next.learners_count; i++) {
            sim->ever_added |= UINT64_C(1) << (next.learners[i] - 1);
        }
        qr__sim_node_process(sim, leader);
    }
}

static void act_transfer(struct qr_sim *sim)
{
    uint32_t leader = find_leader(sim);
    if (leader == sim->nodes_total) {
        return;
    }
    struct sim_node *l = &sim->nodes[leader];
    struct qr_core_status st;
    qr_core_status(l->core, &st);
    if (st.config.voters_count < 2) {
        return;
    }
    qr_node_id target = st.config.voters[qr__sim_rand_range(sim, 0, st.config.voters_count - 1)];
    if (target == l->id) {
        return;
    }
    int rv = qr_core_transfer_leader(l->core, target);
    qr__trace_event(&sim->trace, sim->now, "transfer n%llu -> n%llu: %s", (unsigned long long)l->id,
                    (unsigned long long)target, qr_err_name(rv));
    if (rv == QR_EINVAL && id_in(st.config.voters, st.config.voters_count, target)) {
        qr__sim_fail(sim, "membership", "n%llu refused to transfer to voter n%llu",
                     (unsigned long long)l->id, (unsigned long long)target);
        return;
    }
    qr__sim_node_process(sim, leader);
}

static uint32_t enabled_actions(const struct qr_sim *sim, uint32_t *actions)
{
    uint32_t f = sim->params.faults;
    uint32_t count = 0;
    if ((f & (QR_SIM_FAULT_PARTITION | QR_SIM_FAULT_ONEWAY | QR_SIM_FAULT_BRIDGE)) != 0) {
        actions[count++] = ACTION_NETWORK;
    }
    if ((f & QR_SIM_FAULT_CRASH) != 0) {
        actions[count++] = ACTION_CRASH;
    }
    if ((f & QR_SIM_FAULT_SLOWDISK) != 0) {
        actions[count++] = ACTION_SLOWDISK;
    }
    if ((f & QR_SIM_FAULT_MEMBER) != 0) {
        actions[count++] = ACTION_MEMBER;
    }
    if ((f & QR_SIM_FAULT_TRANSFER) != 0) {
        actions[count++] = ACTION_TRANSFER;
    }
    return count;
}

static void schedule_next(struct qr_sim *sim)
{
    uint64_t gap =
        qr__sim_rand_range(sim, sim->params.nemesis_gap_min, sim->params.nemesis_gap_max);
    int rv = qr__sim_schedule(sim, sim->now + gap * SIM_TICK, SIM_EV_NEMESIS, 0, 0, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "nemesis event");
    }
}

void qr__sim_nemesis_setup(struct qr_sim *sim)
{
    uint32_t actions[ACTION_COUNT];
    if (enabled_actions(sim, actions) > 0) {
        schedule_next(sim);
    }
}

void qr__sim_nemesis_act(struct qr_sim *sim)
{
    if (sim->is_healed) {
        return;
    }
    uint32_t actions[ACTION_COUNT];
    uint32_t count = enabled_actions(sim, actions);
    QR_ASSERT(count > 0);
    switch (actions[qr__sim_rand_range(sim, 0, count - 1)]) {
    case ACTION_NETWORK:
        act_network(sim);
        break;
    case ACTION_CRASH:
        act_crash(sim);
        break;
    case ACTION_SLOWDISK:
        act_slowdisk(sim);
        break;
    case ACTION_MEMBER:
        act_member(sim);
        break;
    case ACTION_TRANSFER:
        act_transfer(sim);
        break;
    default:
        QR_ASSERT(false && "unknown nemesis action");
    }
    schedule_next(sim);
}

void qr__sim_nemesis_heal(struct qr_sim *sim)
{
    sim->is_healed = true;
    sim->heal_time = sim->now;
    links_mend(sim);
    qr__trace_event(&sim->trace, sim->now, "heal: faults stop");
    for (uint32_t i = 0; i < sim->nodes_total && !sim->is_failed && sim->error == 0; i++) {
        sim->nodes[i].disk.is_slow = false;
        if (!sim->nodes[i].is_up) {
            (void)qr__sim_node_start(sim, i); /* A failure is recorded in sim. */
        }
    }
}
