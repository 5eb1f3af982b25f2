/*
 * sim/sim.c: one simulated run: set-up from the seed, the event loop, the
 * liveness and convergence checks after the faults stop, and the report.
 *
 * Layer: sim. The run has three phases. During the fault phase (opts.ticks)
 * clients work while the nemesis injects faults. At the heal everything is
 * repaired; SIM_LIVENESS_TICKS later a single leader must be recognised by
 * every member and every client must have completed operations started after
 * the cluster settled, with no timeouts; then the clients stop, and after
 * SIM_QUIESCE_TICKS every member must have applied the leader's commit index
 * and hold the same state. The history is then checked for
 * linearizability. Safety checks run after every event (sim_node.c).
 */
#include <stdarg.h>
#include <string.h>

#include "quorum/err.h"
#include "quorum/log.h"
#include "sim/sim_internal.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"

/* Events one run may process; a run needs far fewer (its end time stops it first). */
#define SIM_EVENTS_PROCESSED_MAX (UINT64_C(1) << 32)
/* Trace lines printed in a failure report. */
#define REPORT_LINES 50
/* Longest fault list text. */
#define FAULTS_TEXT_SIZE 128

static const struct {
    const char *name;
    uint32_t bit;
} fault_names[] = {
    {"loss", QR_SIM_FAULT_LOSS},
    {"delay", QR_SIM_FAULT_DELAY},
    {"dup", QR_SIM_FAULT_DUP},
    {"reorder", QR_SIM_FAULT_REORDER},
    {"partition", QR_SIM_FAULT_PARTITION},
    {"oneway", QR_SIM_FAULT_ONEWAY},
    {"bridge", QR_SIM_FAULT_BRIDGE},
    {"crash", QR_SIM_FAULT_CRASH},
    {"slowdisk", QR_SIM_FAULT_SLOWDISK},
    {"skew", QR_SIM_FAULT_SKEW},
    {"member", QR_SIM_FAULT_MEMBER},
    {"transfer", QR_SIM_FAULT_TRANSFER},
};
#define FAULT_NAMES_COUNT (sizeof(fault_names) / sizeof(fault_names[0]))

_Static_assert(FAULT_NAMES_COUNT == 12, "every fault bit has a name");

/* ---- Fault lists ------------------------------------------------------------------- */

static int fault_lookup(const char *name, size_t len, uint32_t *bit_out)
{
    for (size_t i = 0; i < FAULT_NAMES_COUNT; i++) {
        if (strlen(fault_names[i].name) == len && memcmp(fault_names[i].name, name, len) == 0) {
            *bit_out = fault_names[i].bit;
            return 0;
        }
    }
    return QR_EINVAL;
}

int qr__sim_faults_parse(const char *text, uint32_t *mask_out, char *errmsg)
{
    QR_ASSERT(text != NULL && mask_out != NULL);
    if (strcmp(text, "all") == 0) {
        *mask_out = QR_SIM_FAULTS_ALL;
        return 0;
    }
    if (strcmp(text, "none") == 0) {
        *mask_out = 0;
        return 0;
    }
    uint32_t mask = 0;
    const char *item = text;
    for (size_t items = 0; items <= FAULT_NAMES_COUNT; items++) {
        const char *comma = strchr(item, ',');
        size_t len = comma != NULL ? (size_t)(comma - item) : strlen(item);
        uint32_t bit = 0;
        if (fault_lookup(item, len, &bit) != 0) {
            return qr__errf(errmsg, QR_EINVAL,
                            "unknown fault '%.*s' (known: all, none, loss, delay, dup, reorder, "
                            "partition, oneway, bridge, crash, slowdisk, skew, member, transfer)",
                            (int)(len < 32 ? len : 32), item);
        }
        mask |= bit;
        if (comma == NULL) {
            *mask_out = mask;
            return 0;
        }
        item = comma + 1;
    }
    return qr__errf(errmsg, QR_EINVAL, "too many faults in '%.40s'", text);
}

void qr__sim_faults_format(uint32_t mask, char *buf, size_t size)
{
    QR_ASSERT(buf != NULL && size > 0);
    buf[0] = '\0';
    if (mask == 0) {
        (void)snprintf(buf, size, "none");
        return;
    }
    size_t at = 0;
    for (size_t i = 0; i < FAULT_NAMES_COUNT && at < size; i++) {
        if ((mask & fault_names[i].bit) != 0) {
            int n = snprintf(buf + at, size - at, "%s%s", at > 0 ? "," : "", fault_names[i].name);
            at += n > 0 ? (size_t)n : 0;
        }
    }
}

/* ---- Helpers for the other files --------------------------------------------------- */

void qr__sim_fail(struct qr_sim *sim, const char *check, const char *fmt, ...)
{
    if (sim->is_failed) {
        return; /* The first failure is the one to report. */
    }
    sim->is_failed = true;
    struct qr_sim_result *r = sim->result;
    (void)snprintf(r->check, sizeof(r->check), "%s", check);
    va_list args;
    va_start(args, fmt);
    (void)vsnprintf(r->details, sizeof(r->details), fmt, args);
    va_end(args);
    qr__trace_event(&sim->trace, sim->now, "FAIL %s: %s", r->check, r->details);
}

void qr__sim_error(struct qr_sim *sim, int rv, const char *what)
{
    QR_ASSERT(rv < 0);
    if (sim->is_failed) {
        return;
    }
    if (rv == QR_EPROTO && sim->check.check_name != NULL) {
        qr__sim_fail(sim, sim->check.check_name, "%s", sim->check.errmsg);
        return;
    }
    if (sim->error == 0) {
        sim->error = rv;
        qr__trace_event(&sim->trace, sim->now, "ERROR %s: %s", what, qr_err_name(rv));
    }
}

uint64_t qr__sim_rand_range(struct qr_sim *sim, uint64_t low, uint64_t high)
{
    return qr__rng_range(&sim->rng, low, high);
}

bool qr__sim_chance(struct qr_sim *sim, uint32_t permille)
{
    return qr__rng_chance(&sim->rng, permille, 1000);
}

int qr__sim_schedule(struct qr_sim *sim,
                     uint64_t time,
                     enum sim_event_kind kind,
                     uint32_t node,
                     uint64_t arg,
                     struct sim_msg *msg)
{
    QR_ASSERT(time >= sim->now);
    struct sim_event e = {.time = time, .kind = kind, .node = node, .arg = arg, .msg = msg};
    return qr__sim_heap_push(&sim->events, &e);
}

bool qr__sim_is_member(const struct qr_sim *sim, uint32_t node)
{
    return node < sim->nodes_total && (sim->members & (UINT64_C(1) << node)) != 0;
}

/* ---- Set-up ------------------------------------------------------------------------ */

/* The faults of this run. The draws happen whatever the options say, so that a replay
 * with the faults spelled out follows exactly the same random sequence. */
static uint32_t choose_faults(struct qr_sim *sim)
{
    uint64_t subset = qr__rng_next(&sim->rng);
    uint64_t fallback = qr__rng_next(&sim->rng);
    uint32_t allowed = sim->opts.faults;
    if (sim->opts.is_faults_exact || allowed == 0) {
        return allowed;
    }
    uint32_t chosen = allowed & (uint32_t)subset;
    if (chosen != 0) {
        return chosen;
    }
    uint32_t bits = (uint32_t)__builtin_popcount(allowed);
    uint32_t pick = (uint32_t)(fallback % bits);
    for (uint32_t bit = 0; bit < 32; bit++) {
        if ((allowed & (1u << bit)) != 0 && pick-- == 0) {
            return 1u << bit;
        }
    }
    return allowed;
}

static void choose_params(struct qr_sim *sim)
{
    static const uint32_t sizes[3] = {3, 5, 7};
    struct sim_params *p = &sim->params;
    uint32_t size_draw = (uint32_t)qr__rng_below(&sim->rng, 3);
    p->nodes_count = sim->opts.nodes_count != 0 ? sim->opts.nodes_count : sizes[size_draw];
    p->faults = choose_faults(sim);
    p->ticks = sim->opts.ticks != 0 ? sim->opts.ticks : QR_SIM_TICKS_DEFAULT;
    p->spares_count = (p->faults & QR_SIM_FAULT_MEMBER) != 0 ? 2 : 0;
    p->loss_permille = (uint32_t)qr__sim_rand_range(sim, 10, 150);
    p->dup_permille = (uint32_t)qr__sim_rand_range(sim, 10, 100);
    p->delay_permille = (uint32_t)qr__sim_rand_range(sim, 10, 100);
    p->latency_min = 5;
    p->latency_max = (uint32_t)qr__sim_rand_range(sim, 20, 80);
    p->reorder_jitter = (uint32_t)qr__sim_rand_range(sim, 50, 300);
    p->disk_min = 5;
    p->disk_max = (uint32_t)qr__sim_rand_range(sim, 20, 100);
    p->snapshot_every = (uint32_t)qr__sim_rand_range(sim, 5, 40);
    p->snapshot_trailing = (uint32_t)qr__sim_rand_range(sim, 0, 5);
    p->chunk_size = (uint32_t)qr__sim_rand_range(sim, 16, 64);
    p->inflight_msgs_max = (uint32_t)qr__sim_rand_range(sim, 1, 16);
    p->clients_count = (uint32_t)qr__sim_rand_range(sim, 2, 5);
    p->keys_count = (uint32_t)qr__sim_rand_range(sim, 1, 4);
    p->nemesis_gap_min = 5;
    p->nemesis_gap_max = (uint32_t)qr__sim_rand_range(sim, 20, 60);
    /* Drawn from a generator of its own, so that every other draw, and so every seed's
     * run with one batch, stays what it was before this parameter existed. */
    static const uint32_t batches[4] = {1, 2, 4, SIM_BATCHES_MAX};
    struct qr_rng own;
    qr__rng_seed(&own, sim->opts.seed ^ UINT64_C(0x9e3779b97f4a7c15));
    p->persist_batches_max = batches[qr__rng_below(&own, 4)];
}

static void setup_nodes(struct qr_sim *sim)
{
    const struct sim_params *p = &sim->params;
    sim->nodes_total = p->nodes_count + p->spares_count;
    QR_ASSERT(sim->nodes_total <= QR_SIM_NODES_MAX);
    memset(&sim->bootstrap, 0, sizeof(sim->bootstrap));
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        struct sim_node *n = &sim->nodes[i];
        n->id = i + 1;
        n->is_initial = i < p->nodes_count;
        n->tick_interval = (uint32_t)SIM_TICK;
        if ((p->faults & QR_SIM_FAULT_SKEW) != 0) {
            n->tick_interval = (uint32_t)qr__sim_rand_range(sim, 70, 130);
        }
        if (n->is_initial) {
            sim->bootstrap.voters[sim->bootstrap.voters_count++] = n->id;
            sim->members |= UINT64_C(1) << i;
            sim->ever_added |= UINT64_C(1) << i;
        }
    }
}

static int setup_events(struct qr_sim *sim)
{
    uint64_t heal = sim->params.ticks * SIM_TICK;
    uint64_t liveness = heal + SIM_LIVENESS_TICKS * SIM_TICK;
    int rv = qr__sim_schedule(sim, heal, SIM_EV_HEAL, 0, 0, NULL);
    if (rv == 0) {
        rv = qr__sim_schedule(sim, liveness, SIM_EV_LIVENESS, 0, 0, NULL);
    }
    if (rv == 0) {
        rv = qr__sim_schedule(sim, liveness + SIM_QUIESCE_TICKS * SIM_TICK, SIM_EV_END, 0, 0, NULL);
    }
    return rv;
}

static void build_replay(const struct qr_sim *sim, char *buf, size_t size)
{
    char faults[FAULTS_TEXT_SIZE];
    qr__sim_faults_format(sim->params.faults, faults, sizeof(faults));
    static const char *const bugs[] = {"", " --inject-bug stale-read", " --inject-bug amnesia"};
    (void)snprintf(buf, size, "quorum-sim --seed %llu --nodes %u --ticks %llu --faults %s%s",
                   (unsigned long long)sim->opts.seed, (unsigned)sim->params.nodes_count,
                   (unsigned long long)sim->params.ticks, faults,
                   bugs[sim->opts.bug <= QR_SIM_BUG_AMNESIA ? sim->opts.bug : 0]);
}

/* ---- End-of-run checks ------------------------------------------------------------- */

static uint32_t leading_node(const struct qr_sim *sim)
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

static void check_liveness(struct qr_sim *sim)
{
    uint32_t leader = leading_node(sim);
    if (leader == sim->nodes_total) {
        qr__sim_fail(sim, "liveness", "no leader %d ticks after the faults stopped",
                     SIM_LIVENESS_TICKS);
        return;
    }
    const struct sim_node *l = &sim->nodes[leader];
    for (uint32_t i = 0; i < sim->nodes_total; i++) {
        const struct sim_node *n = &sim->nodes[i];
        if (qr__sim_is_member(sim, i) && n->is_up && n->leader != l->id) {
            qr__sim_fail(sim, "liveness", "n%llu follows n%llu, but n%llu leads term %llu",
                         (unsigned long long)n->id, (unsigned long long)n->leader,
                         (unsigned long long)l->id, (unsigned long long)l->term);
            return;
        }
    }
    for (uint32_t i = 0; i < sim->params.clients_count; i++) {
        const struct sim_client *c = &sim->clients[i];
        if (c->done_after_settle == 0 || c->timeouts_after_settle > 0) {
            qr__sim_fail(sim, "liveness",
                         "client c%u: %llu operations answered and %llu timed out in the %d ticks "
                         "after the cluster settled",
                         (unsigned)c->id, (unsigned long long)c->done_after_settle,
                         (unsigned long long)c->timeouts_after_settle,
                         SIM_LIVENESS_TICKS - SIM_SETTLE_TICKS);
            return;
        }
    }
    sim->is_quiet = true;
    qr__trace_event(&sim->trace, sim->now, "liveness ok: n%llu leads term %llu; clients stop",
                    (unsigned long long)l->id, (unsigned long long)l->term);
}

static void check_convergence(struct qr_sim *sim)
{
    uint32_t leader = leading_node(sim);
    if (leader == sim->nodes_total) {
        qr__sim_fail(sim, "convergence", "no leader at the end of the run");
        return;
    }
    const struct sim_node *l = &sim->nodes[leader];
    uint64_t digest = qr__sim_node_digest(sim, leader);
    for (uint32_t i = 0; i < sim->nodes_total && !sim->is_failed; i++) {
        const struct sim_node *n = &sim->nodes[i];
        if (!qr__sim_is_member(sim, i) || !n->is_up) {
            continue;
        }
        if (n->applied != l->commit) {
            qr__sim_fail(sim, "convergence", "n%llu applied %llu, leader n%llu committed %llu",
                         (unsigned long long)n->id, (unsigned long long)n->applied,
                         (unsigned long long)l->id, (unsigned long long)l->commit);
            return;
        }
        if (qr__sim_node_digest(sim, i) != digest) {
            qr__sim_fail(sim, "convergence",
                         "n%llu and leader n%llu applied %llu but hold different "
                         "states",
                         (unsigned long long)n->id, (unsigned long long)l->id,
                         (unsigned long long)l->commit);
            return;
        }
    }
}

/* ---- The event loop ---------------------------------------------------------------- */

static void on_tick(struct qr_sim *sim, const struct sim_event *e)
{
    struct sim_node *n = &sim->nodes[e->node];
    if (!n->is_up || n->incarnation != e->arg) {
        return;
    }
    qr_core_tick(n->core);
    qr__sim_node_process(sim, e->node);
    int rv = qr__sim_schedule(sim, sim->now + n->tick_interval, SIM_EV_TICK, e->node,
                              n->incarnation, NULL);
    if (rv != 0) {
        qr__sim_error(sim, rv, "tick event");
    }
}

/* Handle one event; true when the run is over. */
static bool dispatch(struct qr_sim *sim, struct sim_event *e)
{
    switch (e->kind) {
    case SIM_EV_TICK:
        on_tick(sim, e);
        break;
    case SIM_EV_DELIVER:
        qr__sim_net_deliver(sim, e->msg);
        qr_free(e->msg);
        e->msg = NULL;
        break;
    case SIM_EV_DISK:
        qr__sim_node_disk_done(sim, e->node, e->arg);
        break;
    case SIM_EV_CLIENT:
        qr__sim_client_act(sim, e->node, e->arg);
        break;
    case SIM_EV_NEMESIS:
        qr__sim_nemesis_act(sim);
        break;
    case SIM_EV_RESTART:
        if (!sim->nodes[e->node].is_up && sim->nodes[e->node].incarnation == e->arg) {
            (void)qr__sim_node_start(sim, e->node); /* A failure is recorded in sim. */
        }
        break;
    case SIM_EV_HEAL:
        qr__sim_nemesis_heal(sim);
        break;
    case SIM_EV_LIVENESS:
        check_liveness(sim);
        break;
    case SIM_EV_END:
        check_convergence(sim);
        return true;
    }
    return false;
}

static void run_loop(struct qr_sim *sim)
{
    struct sim_event e;
    for (uint64_t processed = 0; processed < SIM_EVENTS_PROCESSED_MAX; processed++) {
        if (sim->is_failed || sim->error != 0 || !qr__sim_heap_pop(&sim->events, &e)) {
            return;
        }
        QR_ASSERT(e.time >= sim->now);
        sim->now = e.time;
        bool is_over = dispatch(sim, &e);
        for (uint32_t i = 0; i < sim->nodes_total; i++) {
            if (sim->nodes[i].is_touched) {
                qr__sim_node_check(sim, i);
            }
        }
        if (is_over) {
            return;
        }
    }
    qr__sim_error(sim, QR_EBUSY, "too many events");
}

/* ---- Report ------------------------------------------------------------------------- */

static void report(const struct qr_sim *sim, FILE *out)
{
    const struct qr_sim_result *r = sim->result;
    char faults[FAULTS_TEXT_SIZE];
    qr__sim_faults_format(r->faults, faults, sizeof(faults));
    (void)fprintf(out, "quorum-sim: seed %llu FAILED: %s: %s\n", (unsigned long long)sim->opts.seed,
                  r->check, r->details);
    (void)fprintf(out, "  nodes=%u spares=%u faults=%s ticks=%llu at tick %llu.%02llu\n",
                  (unsigned)r->nodes_count, (unsigned)sim->params.spares_count, faults,
                  (unsigned long long)r->ticks, (unsigned long long)(sim->now / SIM_TICK),
                  (unsigned long long)(sim->now % SIM_TICK));
    (void)fprintf(out, "  last events:\n");
    qr__trace_dump(&sim->trace, out, REPORT_LINES);
    (void)fprintf(out, "  replay: %s\n", r->replay);
}

static void assert_context(void *ctx, char *buf, size_t size)
{
    const struct qr_sim *sim = ctx;
    (void)snprintf(buf, size, "[sim seed %llu at tick %llu; replay: %s]",
                   (unsigned long long)sim->opts.seed, (unsigned long long)(sim->now / SIM_TICK),
                   sim->result->replay);
}

static void log_sink(void *ctx, enum qr_log_level level, const char *line)
{
    struct qr_sim *sim = ctx;
    (void)fprintf(sim->opts.trace_out, "%8llu.%02llu   %s %s\n",
                  (unsigned long long)(sim->now / SIM_TICK),
                  (unsigned long long)(sim->now % SIM_TICK), qr_log_level_name(level), line);
}

/* ---- Entry point -------------------------------------------------------------------- */

static int opts_validate(const struct qr_sim_opts *opts)
{
    if (opts->nodes_count != 0 && opts->nodes_count != 3 && opts->nodes_count != 5 &&
        opts->nodes_count != 7) {
        return QR_EINVAL;
    }
    if (opts->ticks > QR_SIM_TICKS_MAX || (opts->faults & ~(uint32_t)QR_SIM_FAULTS_ALL) != 0) {
        return QR_EINVAL;
    }
    if (opts->bug > QR_SIM_BUG_AMNESIA) {
        return QR_EINVAL;
    }
    return 0;
}

static void sim_start(struct qr_sim *sim)
{
    choose_params(sim);
    setup_nodes(sim);
    struct qr_sim_result *r = sim->result;
    r->nodes_count = sim->params.nodes_count;
    r->faults = sim->params.faults;
    r->ticks = sim->params.ticks;
    build_replay(sim, r->replay, sizeof(r->replay));
    char faults[FAULTS_TEXT_SIZE];
    qr__sim_faults_format(sim->params.faults, faults, sizeof(faults));
    qr__trace_event(
        &sim->trace, 0,
        "run seed=%llu nodes=%u spares=%u faults=%s clients=%u keys=%u snapshot_every=%u "
        "persist_batches=%u",
        (unsigned long long)sim->opts.seed, (unsigned)sim->params.nodes_count,
        (unsigned)sim->params.spares_count, faults, (unsigned)sim->params.clients_count,
        (unsigned)sim->params.keys_count, (unsigned)sim->params.snapshot_every,
        (unsigned)sim->params.persist_batches_max);
    for (uint32_t i = 0; i < sim->nodes_total && !sim->is_failed && sim->error == 0; i++) {
        (void)qr__sim_node_start(sim, i); /* A failure is recorded in sim. */
    }
    qr__sim_client_start(sim);
    qr__sim_nemesis_setup(sim);
    int rv = setup_events(sim);
    if (rv != 0) {
        qr__sim_error(sim, rv, "phase events");
    }
}

static void sim_free(struct qr_sim *sim)
{
    for (uint32_t i = 0; i < QR_SIM_NODES_MAX; i++) {
        qr__sim_node_close(&sim->nodes[i]);
    }
    qr__sim_heap_close(&sim->events);
    qr_free(sim->ops);
    qr__check_close(&sim->check);
    qr_free(sim);
}

int qr__sim_run(const struct qr_sim_opts *opts, struct qr_sim_result *result_out)
{
    QR_ASSERT(opts != NULL && result_out != NULL);
    memset(result_out, 0, sizeof(*result_out));
    int rv = opts_validate(opts);
    if (rv != 0) {
        return rv;
    }
    struct qr_sim *sim = qr_calloc(1, sizeof(*sim));
    if (sim == NULL) {
        return QR_ENOMEM;
    }
    sim->opts = *opts;
    sim->result = result_out;
    qr__rng_seed(&sim->rng, opts->seed);
    qr__check_init(&sim->check);
    qr__trace_init(&sim->trace, opts->trace_out);
    qr__assert_set_context_hook(assert_context, sim);
    if (opts->trace_out != NULL) {
        qr_log_set(log_sink, sim, QR_LOG_INFO);
    }
    sim_start(sim);
    run_loop(sim);
    if (!sim->is_failed && sim->error == 0) {
        rv = qr__sim_client_check_history(sim);
        if (rv != 0) {
            qr__sim_error(sim, rv, "linearizability check");
        }
    }
    if (opts->trace_out != NULL) {
        qr_log_set(NULL, NULL, QR_LOG_ERROR);
    }
    qr__assert_set_context_hook(NULL, NULL);
    result_out->is_failed = sim->is_failed;
    result_out->trace_hash = sim->trace.hash;
    result_out->events_count = sim->trace.count;
    if (sim->is_failed && opts->report_out != NULL) {
        report(sim, opts->report_out);
    }
    rv = sim->is_failed ? 0 : sim->error;
    sim_free(sim);
    return rv;
}
