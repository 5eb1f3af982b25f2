/*
 * Unit tests of sim/linearize: the linearizability checker for key-value
 * histories. Hand-written histories cover each classic anomaly and each limit;
 * randomized histories, generated from a real sequential execution and then
 * mutated, are cross-checked against a brute-force search over every order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sim/linearize.h"
#include "test_alloc.h"
#include "util/alloc.h"
#include "util/rng.h"

/* A step bound no test history below comes near, unless it means to. */
#define STEPS_PLENTY UINT64_C(100000000)
/* Brute force tries every order, so it stays tiny. */
#define BRUTE_OPS_MAX 7
/* Keys the reference model can hold: keys are 0 .. TEST_KEYS_MAX - 1. */
#define TEST_KEYS_MAX 64
/* Largest generated history. */
#define GEN_OPS_MAX 4096
/* Clients a generated history may have. */
#define GEN_CLIENTS_MAX 16

/* ---- Building histories by hand. ---- */

static struct qr_lin_op op_make(uint64_t client, uint64_t key, enum qr_lin_kind kind)
{
    struct qr_lin_op op;
    memset(&op, 0, sizeof(op));
    op.client = client;
    op.key = key;
    op.kind = kind;
    return op;
}

static struct qr_lin_op at(struct qr_lin_op op, uint64_t invoke_tick, uint64_t complete_tick)
{
    op.invoke_tick = invoke_tick;
    op.complete_tick = complete_tick;
    return op;
}

static struct qr_lin_op get_value(uint64_t client, uint64_t key, int64_t value)
{
    struct qr_lin_op op = op_make(client, key, QR_LIN_GET);
    op.is_found = true;
    op.output = value;
    return op;
}

static struct qr_lin_op get_absent(uint64_t client, uint64_t key)
{
    return op_make(client, key, QR_LIN_GET);
}

static struct qr_lin_op set(uint64_t client, uint64_t key, int64_t value)
{
    struct qr_lin_op op = op_make(client, key, QR_LIN_SET);
    op.input = value;
    return op;
}

static struct qr_lin_op del(uint64_t client, uint64_t key, int64_t removed_count)
{
    struct qr_lin_op op = op_make(client, key, QR_LIN_DEL);
    op.output = removed_count;
    return op;
}

static struct qr_lin_op incr(uint64_t client, uint64_t key, int64_t delta, int64_t value)
{
    struct qr_lin_op op = op_make(client, key, QR_LIN_INCR);
    op.input = delta;
    op.output = value;
    return op;
}

/* Marks an operation as timed out: invoked, answer never seen. */
static struct qr_lin_op lost(struct qr_lin_op op, uint64_t invoke_tick)
{
    op.is_indeterminate = true;
    op.invoke_tick = invoke_tick;
    op.complete_tick = 0; /* Ignored; 0 also checks that it is not validated. */
    op.output = -12345;   /* Ignored. */
    return op;
}

static enum qr_lin_verdict check_with(const struct qr_lin_op *ops,
                                      size_t ops_count,
                                      uint64_t steps_max,
                                      struct qr_lin_result *result)
{
    struct qr_lin_opts opts = {.steps_max = steps_max, .cache_bytes_max = 0};
    int rv = qr__lin_check(ops, ops_count, &opts, result);
    if (rv != 0) {
        fail_msg("qr__lin_check: %s: %s", qr_err_name(rv), result->errmsg);
    }
    return result->verdict;
}

static enum qr_lin_verdict check(const struct qr_lin_op *ops, size_t ops_count)
{
    struct qr_lin_result result;
    return check_with(ops, ops_count, STEPS_PLENTY, &result);
}

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* ---- The reference model, brute force and the generator. ---- */

struct ref_state {
    int64_t value;
    bool is_present;
};

/* Applies op; false if its answer does not match. Written apart from the checker's model. */
static bool ref_apply(struct ref_state *states, const struct qr_lin_op *op)
{
    assert_true(op->key < TEST_KEYS_MAX);
    struct ref_state *s = &states[op->key];
    bool is_known = !op->is_indeterminate;
    if (op->kind == QR_LIN_GET) {
        if (!is_known) {
            return true;
        }
        return op->is_found == s->is_present && (!s->is_present || op->output == s->value);
    }
    if (op->kind == QR_LIN_SET) {
        s->is_present = true;
        s->value = op->input;
        return true;
    }
    if (op->kind == QR_LIN_DEL) {
        bool was_present = s->is_present;
        s->is_present = false;
        return !is_known || op->output == (was_present ? 1 : 0);
    }
    int64_t next = (s->is_present ? s->value : 0) + op->input; /* Test values stay small. */
    s->is_present = true;
    s->value = next;
    return !is_known || op->output == next;
}

static bool next_permutation(size_t *items, size_t items_count)
{
    if (items_count < 2) {
        return false;
    }
    size_t i = items_count - 1;
    while (i > 0 && items[i - 1] >= items[i]) {
        i--;
    }
    if (i == 0) {
        return false;
    }
    size_t j = items_count - 1;
    while (items[j] <= items[i - 1]) {
        j--;
    }
    size_t swap = items[i - 1];
    items[i - 1] = items[j];
    items[j] = swap;
    for (size_t low = i, high = items_count - 1; low < high; low++, high--) {
        swap = items[low];
        items[low] = items[high];
        items[high] = swap;
    }
    return true;
}

/* Whether this order of the chosen ops respects real time and explains every answer. */
static bool brute_order_works(const struct qr_lin_op *ops, const size_t *order, size_t order_count)
{
    for (size_t i = 0; i < order_count; i++) {
        for (size_t j = i + 1; j < order_count; j++) {
            const struct qr_lin_op *later = &ops[order[j]];
            if (!later->is_indeterminate && later->complete_tick < ops[order[i]].invoke_tick) {
                return false;
            }
        }
    }
    struct ref_state states[TEST_KEYS_MAX];
    memset(states, 0, sizeof(states));
    for (size_t i = 0; i < order_count; i++) {
        if (!ref_apply(states, &ops[order[i]])) {
            return false;
        }
    }
    return true;
}

/* Every subset of the indeterminate ops, every order: the definition, executed. */
static bool brute_is_linearizable(const struct qr_lin_op *ops, size_t ops_count)
{
    assert_true(ops_count <= BRUTE_OPS_MAX);
    size_t maybe[BRUTE_OPS_MAX];
    size_t maybe_count = 0;
    for (size_t i = 0; i < ops_count; i++) {
        if (ops[i].is_indeterminate) {
            maybe[maybe_count++] = i;
        }
    }
    for (size_t mask = 0; mask < ((size_t)1 << maybe_count); mask++) {
        size_t order[BRUTE_OPS_MAX];
        size_t order_count = 0;
        for (size_t i = 0; i < ops_count; i++) {
            if (!ops[i].is_indeterminate) {
                order[order_count++] = i;
            }
        }
        for (size_t m = 0; m < maybe_count; m++) {
            if ((mask >> m) & 1) {
                order[order_count++] = maybe[m];
            }
        }
        /* Sorted ascending so next_permutation visits every order once. */
        for (size_t i = 1; i < order_count; i++) {
            for (size_t j = i; j > 0 && order[j - 1] > order[j]; j--) {
                size_t swap = order[j];
                order[j] = order[j - 1];
                order[j - 1] = swap;
            }
        }
        do {
            if (brute_order_works(ops, order, order_count)) {
                return true;
            }
        } while (next_permutation(order, order_count));
    }
    return false;
}

struct gen_params {
    size_t ops_count;      /* <= GEN_OPS_MAX. */
    size_t clients_count;  /* <= GEN_CLIENTS_MAX; each client waits for its answer. */
    uint64_t keys_count;   /* <= TEST_KEYS_MAX. */
    uint64_t values_count; /* Values written are 0 .. values_count - 1. */
    uint64_t duration_max; /* Ticks an operation may take. */
    uint64_t lost_percent; /* Chance an operation times out. */
};

struct gen_op {
    struct qr_lin_op op;
    uint64_t point_tick; /* When it took effect in the real execution. */
    size_t index;        /* Tie-break among equal points. */
    bool is_applied;     /* False for a timed-out op that never took effect. */
};

static int gen_op_compare(const void *a, const void *b)
{
    const struct gen_op *x = a;
    const struct gen_op *y = b;
    if (x->point_tick != y->point_tick) {
        return x->point_tick < y->point_tick ? -1 : 1;
    }
    return x->index < y->index ? -1 : (x->index > y->index ? 1 : 0);
}

static struct qr_lin_op gen_op_random(struct qr_rng *rng, const struct gen_params *params)
{
    struct qr_lin_op op =
        op_make(0, qr__rng_below(rng, params->keys_count), (enum qr_lin_kind)qr__rng_below(rng, 4));
    if (op.kind == QR_LIN_SET) {
        op.input = (int64_t)qr__rng_below(rng, params->values_count);
    } else if (op.kind == QR_LIN_INCR) {
        op.input = (int64_t)qr__rng_below(rng, 3) - 1;
    }
    return op;
}

/* Sequential clients issue random ops; each takes effect at a random tick inside
 * its interval (a lost one at any tick after its invoke, or never). Executing
 * them in that order gives the answers, so the history is linearizable. */
static void
gen_history(struct qr_rng *rng, const struct gen_params *params, struct qr_lin_op *ops_out)
{
    assert_true(params->ops_count <= GEN_OPS_MAX);
    assert_true(params->clients_count <= GEN_CLIENTS_MAX);
    struct gen_op *gen = qr_calloc(params->ops_count == 0 ? 1 : params->ops_count, sizeof(*gen));
    assert_non_null(gen);
    uint64_t client_ticks[GEN_CLIENTS_MAX] = {0};
    for (size_t i = 0; i < params->ops_count; i++) {
        uint64_t client = qr__rng_below(rng, params->clients_count);
        struct qr_lin_op op = gen_op_random(rng, params);
        op.client = client;
        op.invoke_tick = client_ticks[client] + qr__rng_below(rng, 3);
        op.complete_tick = op.invoke_tick + qr__rng_below(rng, params->duration_max + 1);
        gen[i].point_tick = qr__rng_range(rng, op.invoke_tick, op.complete_tick);
        gen[i].is_applied = true;
        if (qr__rng_chance(rng, params->lost_percent, 100)) {
            op.is_indeterminate = true;
            gen[i].is_applied = qr__rng_chance(rng, 1, 2);
            gen[i].point_tick = op.invoke_tick + qr__rng_below(rng, 3 * params->duration_max + 1);
        }
        client_ticks[client] = op.complete_tick + 1;
        gen[i].op = op;
        gen[i].index = i;
    }
    qsort(gen, params->ops_count, sizeof(*gen), gen_op_compare);
    struct ref_state states[TEST_KEYS_MAX];
    memset(states, 0, sizeof(states));
    for (size_t i = 0; i < params->ops_count; i++) {
        struct qr_lin_op *op = &gen[i].op;
        const struct ref_state *s = &states[op->key];
        if (!gen[i].is_applied) {
            continue; /* Lost and never took effect: its answer is ignored. */
        }
        if (op->kind == QR_LIN_GET) {
            op->is_found = s->is_present;
            op->output = s->is_present ? s->value : 0;
        } else if (op->kind == QR_LIN_DEL) {
            op->output = s->is_present ? 1 : 0;
        } else if (op->kind == QR_LIN_INCR) {
            op->output = (s->is_present ? s->value : 0) + op->input;
        }
        assert_true(ref_apply(states, op));
    }
    /* Shuffled, so that the checker cannot lean on the input order. */
    for (size_t i = params->ops_count; i > 1; i--) {
        size_t j = (size_t)qr__rng_below(rng, i);
        struct gen_op swap = gen[i - 1];
        gen[i - 1] = gen[j];
        gen[j] = swap;
    }
    for (size_t i = 0; i < params->ops_count; i++) {
        ops_out[i] = gen[i].op;
    }
    qr_free(gen);
}

/* Changes one answer, interval or certainty; often, not always, a violation. */
static void mutate(struct qr_rng *rng, struct qr_lin_op *ops, size_t ops_count)
{
    struct qr_lin_op *op = &ops[qr__rng_below(rng, ops_count)];
    uint64_t choice = qr__rng_below(rng, 6);
    if (choice == 0) {
        op->invoke_tick = qr__rng_below(rng, 40);
        op->complete_tick = op->invoke_tick + qr__rng_below(rng, 10);
    } else if (choice == 1) {
        op->is_indeterminate = !op->is_indeterminate;
        op->complete_tick = op->invoke_tick + qr__rng_below(rng, 10);
    } else if (op->kind == QR_LIN_GET && (choice == 2 || !op->is_found)) {
        op->is_found = !op->is_found;
    } else if (op->kind == QR_LIN_DEL) {
        op->output = 1 - op->output;
    } else if (op->kind == QR_LIN_SET) {
        op->input += 1;
    } else {
        op->output += qr__rng_chance(rng, 1, 2) ? 1 : -1;
    }
}

/* ---- Sequential and classic histories. ---- */

static void test_lin_empty_and_lost_only_histories_are_ok(void **state)
{
    (void)state;
    struct qr_lin_result result;
    assert_int_equal(check_with(NULL, 0, 1, &result), QR_LIN_OK);
    assert_int_equal(result.keys_count, 0);
    assert_int_equal(result.op_index, SIZE_MAX);
    struct qr_lin_op ops[] = {lost(set(1, 5, 3), 10), lost(get_value(2, 5, 99), 0),
                              lost(get_value(2, 6, 99), 0)};
    assert_int_equal(check_with(ops, COUNT(ops), 1, &result), QR_LIN_OK);
    assert_int_equal(result.keys_count, 1); /* Key 6 held only a lost GET: dropped. */
    assert_string_equal(result.errmsg, "");
}

static void test_lin_sequential_history_of_every_kind_is_ok(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {
        at(get_absent(1, 7), 0, 1),     at(incr(1, 7, 5, 5), 2, 3), at(incr(2, 7, -2, 3), 4, 5),
        at(get_value(3, 7, 3), 6, 7),   at(set(1, 7, 40), 8, 9),    at(get_value(2, 7, 40), 10, 11),
        at(del(3, 7, 1), 12, 13),       at(del(1, 7, 0), 14, 15),   at(get_absent(2, 7), 16, 17),
        at(incr(3, 7, -1, -1), 18, 19), at(set(1, 7, 0), 20, 21),   at(get_value(1, 7, 0), 22, 23),
    };
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
}

static void test_lin_read_of_a_value_never_written_is_a_violation(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 10), at(get_value(2, 7, 5), 20, 30)};
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, COUNT(ops), STEPS_PLENTY, &result), QR_LIN_VIOLATION);
    assert_int_equal(result.key, 7);
    assert_int_equal(result.op_index, 1);
    /* The explanation names the key, the op, its client and ticks, and the value then. */
    assert_non_null(strstr(result.errmsg, "key 7:"));
    assert_non_null(strstr(result.errmsg, "get -> 5 (client 2, ticks 20..30)"));
    assert_non_null(strstr(result.errmsg, "value was 1"));
    struct qr_lin_op absent[] = {at(get_absent(1, 7), 0, 1), at(get_value(2, 7, 0), 2, 3)};
    assert_int_equal(check(absent, COUNT(absent)), QR_LIN_VIOLATION);
}

static void test_lin_stale_read_after_a_completed_write_is_a_violation(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 10), at(set(1, 7, 2), 20, 30),
                              at(get_value(2, 7, 1), 40, 50)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
    /* The same read overlapping the second write may still see the first. */
    ops[2] = at(get_value(2, 7, 1), 25, 50);
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
    /* A read after a completed delete cannot see the old value either. */
    struct qr_lin_op deleted[] = {at(set(1, 7, 1), 0, 10), at(del(1, 7, 1), 20, 30),
                                  at(get_value(2, 7, 1), 40, 50)};
    assert_int_equal(check(deleted, COUNT(deleted)), QR_LIN_VIOLATION);
}

static void test_lin_two_incrs_returning_the_same_value_is_a_violation(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(incr(1, 7, 1, 1), 0, 10), at(incr(2, 7, 1, 1), 5, 15)};
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, COUNT(ops), STEPS_PLENTY, &result), QR_LIN_VIOLATION);
    assert_non_null(strstr(result.errmsg, "incr 1 -> 1"));
    ops[1].output = 2;
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
}

static void test_lin_read_of_a_write_invoked_after_the_read_completed_is_a_violation(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(get_value(1, 7, 1), 0, 10), at(set(2, 7, 1), 11, 20)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
    /* Ticks that touch count as concurrent: many events share a simulated tick. */
    ops[1] = at(set(2, 7, 1), 10, 20);
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
}

static void test_lin_del_reports_how_many_it_removed(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(del(1, 7, 1), 0, 10)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
    ops[0].output = 0;
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
    /* Two concurrent deletes of a present key: exactly one removes it. */
    struct qr_lin_op both[] = {at(set(1, 7, 3), 0, 1), at(del(2, 7, 1), 5, 10),
                               at(del(3, 7, 1), 5, 10)};
    assert_int_equal(check(both, COUNT(both)), QR_LIN_VIOLATION);
    both[2].output = 0;
    assert_int_equal(check(both, COUNT(both)), QR_LIN_OK);
}

static void test_lin_incr_that_would_overflow_never_takes_effect(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(set(1, 7, INT64_MAX), 0, 1), at(incr(1, 7, 1, INT64_MIN), 2, 3)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
    /* Lost, it may simply have been refused. */
    struct qr_lin_op lost_incr[] = {at(set(1, 7, INT64_MAX), 0, 1), lost(incr(1, 7, 1, 0), 2),
                                    at(get_value(2, 7, INT64_MAX), 5, 6)};
    assert_int_equal(check(lost_incr, COUNT(lost_incr)), QR_LIN_OK);
    struct qr_lin_op low[] = {at(set(1, 7, INT64_MIN), 0, 1), at(incr(1, 7, -1, INT64_MAX), 2, 3)};
    assert_int_equal(check(low, COUNT(low)), QR_LIN_VIOLATION);
}

/* ---- Concurrency and indeterminate operations. ---- */

static void test_lin_concurrent_ops_pass_only_under_the_one_order_that_explains_them(void **state)
{
    (void)state;
    /* Only SET 2, GET 2, SET 1, GET 1 explains the answers: SET 1 spans all of it. */
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 100), at(set(2, 7, 2), 10, 20),
                              at(get_value(3, 7, 2), 30, 40), at(get_value(3, 7, 1), 110, 120)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
    /* Swapping the reads' answers needs SET 1 both before and after SET 2. */
    ops[2] = at(get_value(3, 7, 1), 30, 40);
    ops[3] = at(get_value(3, 7, 2), 110, 120);
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
}

static void test_lin_lost_write_is_assumed_applied_when_a_read_saw_it(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 10), lost(set(1, 7, 2), 20),
                              at(get_value(2, 7, 2), 30, 40), at(get_value(2, 7, 2), 500, 510)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
    /* A lost write takes effect once: a later read cannot go back to the old value. */
    ops[3] = at(get_value(2, 7, 1), 500, 510);
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
    /* It cannot take effect before it was sent. */
    ops[1] = lost(set(1, 7, 2), 45);
    ops[3] = at(get_value(2, 7, 2), 500, 510);
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
}

static void test_lin_lost_write_is_assumed_not_applied_when_no_read_saw_it(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 10), lost(set(1, 7, 2), 20),
                              at(get_value(2, 7, 1), 30, 40), at(get_value(2, 7, 1), 500, 510)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
    /* A lost INCR may land late: first unseen, then seen. */
    struct qr_lin_op late[] = {at(set(1, 7, 1), 0, 10), lost(incr(1, 7, 5, 0), 20),
                               at(get_value(2, 7, 1), 30, 40), at(get_value(2, 7, 6), 50, 60),
                               at(incr(2, 7, 1, 7), 70, 80)};
    assert_int_equal(check(late, COUNT(late)), QR_LIN_OK);
    /* Lost deletes too, and a lost GET has no effect at all. */
    struct qr_lin_op gone[] = {at(set(1, 7, 1), 0, 10), lost(del(1, 7, 0), 20),
                               lost(get_value(3, 7, 77), 25), at(get_value(2, 7, 1), 30, 40),
                               at(get_absent(2, 7), 50, 60)};
    assert_int_equal(check(gone, COUNT(gone)), QR_LIN_OK);
}

static void test_lin_identical_lost_ops_may_each_take_effect_or_not(void **state)
{
    (void)state;
    /* Identical lost ops are tried in invoke order; each may still land, at its own time. */
    struct qr_lin_op ops[] = {lost(set(1, 7, 5), 0), lost(set(2, 7, 5), 100),
                              at(get_value(3, 7, 5), 50, 60), at(set(3, 7, 1), 70, 80),
                              at(get_value(3, 7, 5), 150, 160)};
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_OK);
    /* The second one cannot land before it was sent. */
    ops[1] = lost(set(2, 7, 5), 170);
    assert_int_equal(check(ops, COUNT(ops)), QR_LIN_VIOLATION);
    struct qr_lin_op incrs[] = {lost(incr(1, 7, 1, 0), 0), lost(incr(2, 7, 1, 0), 0),
                                lost(incr(3, 7, 1, 0), 0), at(get_value(4, 7, 2), 50, 60),
                                at(get_value(4, 7, 3), 70, 80)};
    assert_int_equal(check(incrs, COUNT(incrs)), QR_LIN_OK);
    incrs[4] = at(get_value(4, 7, 4), 70, 80); /* Only three were sent. */
    assert_int_equal(check(incrs, COUNT(incrs)), QR_LIN_VIOLATION);
}

static void test_lin_keys_are_checked_independently(void **state)
{
    (void)state;
    /* As one register, the read of key 2 after the write of key 1 would be stale. */
    struct qr_lin_op ops[] = {at(set(1, 1, 5), 0, 10), at(get_absent(2, 2), 20, 30),
                              at(get_value(3, 1, 5), 20, 30), at(set(1, 2, 6), 40, 50),
                              at(get_value(3, 2, 6), 60, 70)};
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, COUNT(ops), STEPS_PLENTY, &result), QR_LIN_OK);
    assert_int_equal(result.keys_count, 2);
    /* A violation on key 2 is found and named even though key 1 is fine. */
    ops[4] = at(get_value(3, 2, 5), 60, 70);
    assert_int_equal(check_with(ops, COUNT(ops), STEPS_PLENTY, &result), QR_LIN_VIOLATION);
    assert_int_equal(result.key, 2);
    assert_int_equal(result.op_index, 4);
    assert_non_null(strstr(result.errmsg, "key 2:"));
    assert_non_null(strstr(result.errmsg, "(client 3, ticks 60..70)"));
}

/* ---- Limits. ---- */

/* SETs 1..sets_count all concurrent, then reads no order can explain: the search
 * has about 2^sets_count configurations to rule out. */
static size_t pathological_history(struct qr_lin_op *ops, uint64_t key, int64_t sets_count)
{
    size_t ops_count = 0;
    for (int64_t v = 1; v <= sets_count; v++) {
        ops[ops_count++] = at(set((uint64_t)v, key, v), 0, 100);
    }
    ops[ops_count++] = at(get_value(100, key, 1), 0, 100);
    ops[ops_count++] = at(get_value(100, key, 1), 200, 210);
    ops[ops_count++] = at(get_value(100, key, 2), 220, 230);
    return ops_count;
}

static void test_lin_step_bound_gives_unknown_not_a_hang(void **state)
{
    (void)state;
    struct qr_lin_op ops[40];
    size_t ops_count = pathological_history(ops, 9, 20);
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, ops_count, 20000, &result), QR_LIN_UNKNOWN);
    assert_int_equal(result.key, 9);
    assert_int_equal(result.steps_count, 20000);
    assert_non_null(strstr(result.errmsg, "key 9: step bound 20000 reached"));
    /* Smaller, the same shape is searched to the end: it is a violation. */
    ops_count = pathological_history(ops, 9, 6);
    assert_int_equal(check_with(ops, ops_count, STEPS_PLENTY, &result), QR_LIN_VIOLATION);
}

static void test_lin_step_bound_is_exact(void **state)
{
    (void)state;
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 100), at(set(2, 7, 2), 10, 20),
                              at(get_value(3, 7, 2), 30, 40), at(get_value(3, 7, 1), 110, 120)};
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, COUNT(ops), STEPS_PLENTY, &result), QR_LIN_OK);
    uint64_t steps = result.steps_count;
    assert_true(steps > COUNT(ops)); /* It had to back off at least once. */
    assert_int_equal(check_with(ops, COUNT(ops), steps, &result), QR_LIN_OK);
    assert_int_equal(check_with(ops, COUNT(ops), steps - 1, &result), QR_LIN_UNKNOWN);
    assert_int_equal(result.steps_count, steps - 1);
}

static void test_lin_violation_wins_over_unknown_and_unknown_over_ok(void **state)
{
    (void)state;
    struct qr_lin_op ops[40];
    size_t ops_count = pathological_history(ops, 1, 20);
    ops[ops_count++] = at(set(1, 2, 1), 0, 10);
    ops[ops_count++] = at(get_value(2, 2, 1), 20, 30);
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, ops_count, 5000, &result), QR_LIN_UNKNOWN);
    assert_int_equal(result.key, 1);
    assert_int_equal(result.keys_count, 2);
    ops[ops_count - 1] = at(get_value(2, 2, 3), 20, 30);
    assert_int_equal(check_with(ops, ops_count, 5000, &result), QR_LIN_VIOLATION);
    assert_int_equal(result.key, 2);
    assert_int_equal(result.op_index, ops_count - 1);
}

static void test_lin_invalid_histories_are_refused(void **state)
{
    (void)state;
    struct qr_lin_opts opts = {.steps_max = 100, .cache_bytes_max = 0};
    struct qr_lin_result result;
    struct qr_lin_op ops[] = {at(set(1, 7, 1), 0, 10), at(get_value(4, 7, 1), 20, 19)};
    assert_int_equal(qr__lin_check(ops, COUNT(ops), &opts, &result), QR_EINVAL);
    assert_non_null(
        strstr(result.errmsg, "op 1 (client 4): complete tick 19 before invoke tick 20"));
    ops[1] = at(get_value(4, 7, 1), 20, 20);
    assert_int_equal(qr__lin_check(ops, COUNT(ops), &opts, &result), 0);
    ops[1] = at(del(4, 7, 2), 20, 30);
    assert_int_equal(qr__lin_check(ops, COUNT(ops), &opts, &result), QR_EINVAL);
    assert_non_null(strstr(result.errmsg, "del count 2"));
    ops[1] = at(del(4, 7, -1), 20, 30);
    assert_int_equal(qr__lin_check(ops, COUNT(ops), &opts, &result), QR_EINVAL);
    ops[1] = at(set(4, 7, 1), 20, 30);
    ops[1].kind = (enum qr_lin_kind)9;
    assert_int_equal(qr__lin_check(ops, COUNT(ops), &opts, &result), QR_EINVAL);
    assert_non_null(strstr(result.errmsg, "kind 9"));
    ops[1].kind = QR_LIN_SET;
    opts.steps_max = 0;
    assert_int_equal(qr__lin_check(ops, COUNT(ops), &opts, &result), QR_EINVAL);
}

static void test_lin_key_ops_limit_is_enforced_on_both_sides(void **state)
{
    (void)state;
    size_t ops_count = QR_LIN_KEY_OPS_MAX + 2;
    struct qr_lin_op *ops = qr_calloc(ops_count, sizeof(*ops));
    assert_non_null(ops);
    for (size_t i = 0; i < QR_LIN_KEY_OPS_MAX; i++) {
        ops[i] = at(incr(i % 3, 7, 1, (int64_t)i + 1), 2 * i, 2 * i + 1);
    }
    struct qr_lin_result result;
    assert_int_equal(check_with(ops, QR_LIN_KEY_OPS_MAX, STEPS_PLENTY, &result), QR_LIN_OK);
    /* A lost GET does not count: it is dropped before the limit applies. */
    ops[QR_LIN_KEY_OPS_MAX] = lost(get_value(1, 7, 1), 0);
    assert_int_equal(check_with(ops, QR_LIN_KEY_OPS_MAX + 1, STEPS_PLENTY, &result), QR_LIN_OK);
    ops[QR_LIN_KEY_OPS_MAX + 1] = lost(incr(1, 7, 1, 0), 0);
    struct qr_lin_opts opts = {.steps_max = STEPS_PLENTY, .cache_bytes_max = 0};
    assert_int_equal(qr__lin_check(ops, ops_count, &opts, &result), QR_ETOOBIG);
    assert_non_null(strstr(result.errmsg, "key 7 has 4097 ops"));
    /* The same ops spread over two keys are fine. */
    ops[QR_LIN_KEY_OPS_MAX + 1].key = 8;
    assert_int_equal(check_with(ops, ops_count, STEPS_PLENTY, &result), QR_LIN_OK);
    assert_int_equal(result.keys_count, 2);
    qr_free(ops);
}

static void test_lin_small_or_full_cache_keeps_the_verdict_exact(void **state)
{
    (void)state;
    struct qr_lin_op ops[16];
    size_t ops_count = pathological_history(ops, 3, 6);
    static const size_t cache_bytes[] = {1, 300, 4000, 0};
    uint64_t steps_counts[COUNT(cache_bytes)];
    for (size_t i = 0; i < COUNT(cache_bytes); i++) {
        struct qr_lin_opts opts = {.steps_max = STEPS_PLENTY, .cache_bytes_max = cache_bytes[i]};
        struct qr_lin_result result;
        assert_int_equal(qr__lin_check(ops, ops_count, &opts, &result), 0);
        assert_int_equal(result.verdict, QR_LIN_VIOLATION);
        steps_counts[i] = result.steps_count;
    }
    /* Without a cache the search repeats itself: the cache is what makes it fast. */
    assert_true(steps_counts[0] > 2 * steps_counts[COUNT(cache_bytes) - 1]);
}

/* ---- Out of memory. ---- */

static void oom_loop(const struct qr_lin_op *ops, size_t ops_count, bool is_sticky)
{
    struct qr_lin_opts opts = {.steps_max = STEPS_PLENTY, .cache_bytes_max = 0};
    struct qr_lin_result expected;
    size_t calls_before = test_alloc_calls_count();
    assert_int_equal(qr__lin_check(ops, ops_count, &opts, &expected), 0);
    size_t calls_count = test_alloc_calls_count() - calls_before;
    assert_true(calls_count > 20); /* Enough allocations for the loop to mean something. */
    for (size_t n = 1; n <= calls_count + 1; n++) {
        struct qr_lin_result result;
        test_alloc_fail_at(n, is_sticky);
        int rv = qr__lin_check(ops, ops_count, &opts, &result);
        test_alloc_fail_at(0, false);
        assert_int_equal(test_alloc_live_count(), 0);
        if (n <= calls_count) {
            assert_int_equal(rv, QR_ENOMEM);
            assert_non_null(strstr(result.errmsg, "out of memory"));
        } else {
            assert_int_equal(rv, 0);
            assert_int_equal(result.verdict, expected.verdict);
            assert_int_equal(result.steps_count, expected.steps_count);
        }
    }
}

static void test_lin_out_of_memory_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    struct qr_lin_op ops[64];
    /* Enough for both cache tables to grow; twin lost DELs need their own allocation. */
    size_t ops_count = pathological_history(ops, 3, 8);
    ops[ops_count++] = lost(del(9, 3, 0), 0);
    ops[ops_count++] = lost(del(9, 3, 0), 1);
    ops[ops_count++] = at(set(1, 4, 1), 0, 10);
    ops[ops_count++] = at(get_value(2, 4, 1), 20, 30);
    oom_loop(ops, ops_count, false);
    oom_loop(ops, ops_count, true);
}

/* ---- Randomized cross-checks. ---- */

static void test_lin_random_small_histories_agree_with_brute_force(void **state)
{
    (void)state;
    struct qr_rng rng;
    qr__rng_seed(&rng, 20240611);
    static const size_t cache_bytes[] = {0, 1, 200};
    size_t verdicts_count[3] = {0};
    for (size_t round = 0; round < 6000; round++) {
        struct gen_params params = {.ops_count = 1 + (size_t)qr__rng_below(&rng, BRUTE_OPS_MAX),
                                    .clients_count = 1 + (size_t)qr__rng_below(&rng, 4),
                                    .keys_count = 1 + qr__rng_below(&rng, 2),
                                    .values_count = 3,
                                    .duration_max = 6,
                                    .lost_percent = round % 3 == 0 ? 50 : 15};
        struct qr_lin_op ops[BRUTE_OPS_MAX];
        gen_history(&rng, &params, ops);
        bool is_mutated = qr__rng_chance(&rng, 3, 4);
        if (is_mutated) {
            mutate(&rng, ops, params.ops_count);
        }
        bool is_linearizable = brute_is_linearizable(ops, params.ops_count);
        if (!is_mutated && !is_linearizable) {
            fail_msg("round %zu: a generated history is not linearizable: generator bug", round);
        }
        struct qr_lin_opts opts = {.steps_max = STEPS_PLENTY,
                                   .cache_bytes_max = cache_bytes[round % COUNT(cache_bytes)]};
        struct qr_lin_result result;
        assert_int_equal(qr__lin_check(ops, params.ops_count, &opts, &result), 0);
        enum qr_lin_verdict expected = is_linearizable ? QR_LIN_OK : QR_LIN_VIOLATION;
        if (result.verdict != expected) {
            fail_msg("round %zu: checker says %s, brute force %s (%s)", round,
                     qr__lin_verdict_name(result.verdict), qr__lin_verdict_name(expected),
                     result.errmsg);
        }
        verdicts_count[result.verdict]++;
    }
    /* Both answers come up often, so the cross-check tests both directions. */
    assert_true(verdicts_count[QR_LIN_OK] > 1500);
    assert_true(verdicts_count[QR_LIN_VIOLATION] > 1500);
    assert_int_equal(verdicts_count[QR_LIN_UNKNOWN], 0);
}

/* Histories too long for brute force, rich in lost operations: the cache's
 * pruning (exact and dominated configurations) must not change a verdict, so
 * the search with a cache must agree with the search without one. */
static void test_lin_random_medium_histories_agree_with_and_without_cache(void **state)
{
    (void)state;
    struct qr_rng rng;
    qr__rng_seed(&rng, 31337);
    size_t verdicts_count[3] = {0};
    for (size_t round = 0; round < 1500; round++) {
        struct gen_params params = {.ops_count = 8 + (size_t)qr__rng_below(&rng, 7),
                                    .clients_count = 4,
                                    .keys_count = 1,
                                    .values_count = 2,
                                    .duration_max = 10,
                                    .lost_percent = 30};
        struct qr_lin_op ops[16];
        gen_history(&rng, &params, ops);
        for (uint64_t m = qr__rng_below(&rng, 4); m > 0; m--) {
            mutate(&rng, ops, params.ops_count);
        }
        struct qr_lin_result cached;
        struct qr_lin_result uncached;
        struct qr_lin_opts opts = {.steps_max = STEPS_PLENTY, .cache_bytes_max = 0};
        assert_int_equal(qr__lin_check(ops, params.ops_count, &opts, &cached), 0);
        opts.cache_bytes_max = 1;
        assert_int_equal(qr__lin_check(ops, params.ops_count, &opts, &uncached), 0);
        if (cached.verdict != uncached.verdict) {
            fail_msg("round %zu: with cache %s, without %s", round,
                     qr__lin_verdict_name(cached.verdict), qr__lin_verdict_name(uncached.verdict));
        }
        if (cached.verdict == QR_LIN_VIOLATION) {
            /* Refuting explores everything; the cache only cuts branches. */
            assert_true(cached.steps_count <= uncached.steps_count);
        }
        verdicts_count[cached.verdict]++;
    }
    assert_true(verdicts_count[QR_LIN_OK] > 300);
    assert_true(verdicts_count[QR_LIN_VIOLATION] > 250);
}

static void test_lin_random_large_histories_from_real_executions_are_ok(void **state)
{
    (void)state;
    struct qr_rng rng;
    qr__rng_seed(&rng, 7);
    struct qr_lin_op *ops = qr_calloc(2000, sizeof(*ops));
    assert_non_null(ops);
    size_t violations_count = 0;
    for (size_t round = 0; round < 40; round++) {
        /* Mostly the simulator's shape (20 keys); some rounds pile 1000 ops on a key. */
        struct gen_params params = {.ops_count = 2000,
                                    .clients_count = 5,
                                    .keys_count = round % 4 == 3 ? 2 : 20,
                                    .values_count = 4,
                                    .duration_max = 20,
                                    .lost_percent = 3};
        gen_history(&rng, &params, ops);
        struct qr_lin_result result;
        if (check_with(ops, params.ops_count, 1000000, &result) != QR_LIN_OK) {
            fail_msg("round %zu: %s: %s", round, qr__lin_verdict_name(result.verdict),
                     result.errmsg);
        }
        if (params.keys_count == 2) {
            continue; /* Refuting a long key with many lost ops can exhaust the step bound. */
        }
        /* Breaking one answer is caught, or explained by another order; either way, quickly. */
        mutate(&rng, ops, params.ops_count);
        enum qr_lin_verdict verdict = check_with(ops, params.ops_count, 1000000, &result);
        assert_int_not_equal(verdict, QR_LIN_UNKNOWN);
        violations_count += verdict == QR_LIN_VIOLATION ? 1 : 0;
    }
    assert_true(violations_count >= 10);
    qr_free(ops);
}

static void test_lin_names_cover_every_value(void **state)
{
    (void)state;
    assert_string_equal(qr__lin_verdict_name(QR_LIN_OK), "ok");
    assert_string_equal(qr__lin_verdict_name(QR_LIN_VIOLATION), "violation");
    assert_string_equal(qr__lin_verdict_name(QR_LIN_UNKNOWN), "unknown");
    assert_string_equal(qr__lin_verdict_name((enum qr_lin_verdict)7), "?");
    assert_string_equal(qr__lin_kind_name(QR_LIN_GET), "get");
    assert_string_equal(qr__lin_kind_name(QR_LIN_SET), "set");
    assert_string_equal(qr__lin_kind_name(QR_LIN_DEL), "del");
    assert_string_equal(qr__lin_kind_name(QR_LIN_INCR), "incr");
    assert_string_equal(qr__lin_kind_name((enum qr_lin_kind)7), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lin_empty_and_lost_only_histories_are_ok),
        cmocka_unit_test(test_lin_sequential_history_of_every_kind_is_ok),
        cmocka_unit_test(test_lin_read_of_a_value_never_written_is_a_violation),
        cmocka_unit_test(test_lin_stale_read_after_a_completed_write_is_a_violation),
        cmocka_unit_test(test_lin_two_incrs_returning_the_same_value_is_a_violation),
        cmocka_unit_test(test_lin_read_of_a_write_invoked_after_the_read_completed_is_a_violation),
        cmocka_unit_test(test_lin_del_reports_how_many_it_removed),
        cmocka_unit_test(test_lin_incr_that_would_overflow_never_takes_effect),
        cmocka_unit_test(test_lin_concurrent_ops_pass_only_under_the_one_order_that_explains_them),
        cmocka_unit_test(test_lin_lost_write_is_assumed_applied_when_a_read_saw_it),
        cmocka_unit_test(test_lin_lost_write_is_assumed_not_applied_when_no_read_saw_it),
        cmocka_unit_test(test_lin_identical_lost_ops_may_each_take_effect_or_not),
        cmocka_unit_test(test_lin_keys_are_checked_independently),
        cmocka_unit_test(test_lin_step_bound_gives_unknown_not_a_hang),
        cmocka_unit_test(test_lin_step_bound_is_exact),
        cmocka_unit_test(test_lin_violation_wins_over_unknown_and_unknown_over_ok),
        cmocka_unit_test(test_lin_invalid_histories_are_refused),
        cmocka_unit_test(test_lin_key_ops_limit_is_enforced_on_both_sides),
        cmocka_unit_test(test_lin_small_or_full_cache_keeps_the_verdict_exact),
        cmocka_unit_test(test_lin_out_of_memory_is_reported_and_leaks_nothing),
        cmocka_unit_test(test_lin_random_small_histories_agree_with_brute_force),
        cmocka_unit_test(test_lin_random_medium_histories_agree_with_and_without_cache),
        cmocka_unit_test(test_lin_random_large_histories_from_real_executions_are_ok),
        cmocka_unit_test(test_lin_names_cover_every_value),
    };
    return cmocka_run_group_tests_name("linearize", tests, test_alloc_setup, test_alloc_teardown);
}
