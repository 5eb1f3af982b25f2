/*
 * tests/unit/test_voting.c: unit tests for voting/, the quorum systems.
 *
 * Layer: tests. Each test checks one sentence of include/quorum/voting.h, the
 * spec, with hand-worked examples: every constructor on both sides of every
 * limit, every error code the header names (with a message and an untouched
 * output), and every query on small configurations whose answers can be
 * worked out on paper. The exhaustive comparisons against brute force live in
 * test_voting_props.c. These tests never read the implementation's internals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quorum/err.h"
#include "quorum/voting.h"
#include "test_alloc.h"

/* Fills an output before a call that must fail, so the test can see it is untouched. */
#define POISON_BYTE 0xA5

/* More voters than any test builds by hand; 65 covers "one past the limit". */
#define TEST_VOTERS_MAX (QR_VOTING_VOTERS_MAX + 1)

/* A union of two full groups. */
#define TEST_IDS_MAX ((size_t)QR_VOTING_GROUPS_MAX * QR_VOTING_VOTERS_MAX)

static struct qr_voter voters_buf[TEST_VOTERS_MAX];

/* Voters with ids first_id, first_id + 1, ... and the given weight, in voters_buf. */
static const struct qr_voter *voters_range(qr_node_id first_id, size_t count, uint32_t weight)
{
    assert_true(count <= TEST_VOTERS_MAX);
    for (size_t i = 0; i < count; i++) {
        voters_buf[i].id = first_id + i;
        voters_buf[i].weight = weight;
    }
    return voters_buf;
}

/* Voters 1 ... count with the given weights, in voters_buf. */
static const struct qr_voter *voters_weighted(const uint32_t *weights, size_t count)
{
    assert_true(count <= TEST_VOTERS_MAX);
    for (size_t i = 0; i < count; i++) {
        voters_buf[i].id = i + 1;
        voters_buf[i].weight = weights[i];
    }
    return voters_buf;
}

/* A majority of voters first_id ... first_id + count - 1, all of weight 1. */
static void init_range(struct qr_voting *v, qr_node_id first_id, size_t count)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_voting_init_majority(v, voters_range(first_id, count, 1), count, errmsg);
    assert_int_equal(rv, 0);
}

/* A majority of voters 1 ... count with the given weights. */
static void init_weighted(struct qr_voting *v, const uint32_t *weights, size_t count)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_voting_init_majority(v, voters_weighted(weights, count), count, errmsg);
    assert_int_equal(rv, 0);
}

/* A flexible configuration of voters 1 ... count, all of weight 1. */
static void init_flexible_equal(struct qr_voting *v, size_t count, uint64_t election, uint64_t rep)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_voting_init_flexible(v, voters_range(1, count, 1), count, election, rep, errmsg);
    assert_int_equal(rv, 0);
}

/* A Byzantine configuration of voters 1 ... count tolerating `faults`. */
static void init_byzantine_equal(struct qr_voting *v, size_t count, uint32_t faults)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_voting_init_byzantine(v, voters_range(1, count, 1), count, faults, errmsg);
    assert_int_equal(rv, 0);
}

/* The joint configuration of two majorities of weight-1 voters given as id ranges. */
static void init_joint_ranges(struct qr_voting *v,
                              qr_node_id old_first,
                              size_t old_count,
                              qr_node_id new_first,
                              size_t new_count)
{
    struct qr_voting old_config;
    struct qr_voting new_config;
    init_range(&old_config, old_first, old_count);
    init_range(&new_config, new_first, new_count);
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_joint(v, &old_config, &new_config, errmsg), 0);
}

/* Poisons *v and keeps a copy, so a failing call can be shown not to write it. */
static void poison(struct qr_voting *v, struct qr_voting *copy, char *errmsg)
{
    memset(v, POISON_BYTE, sizeof(*v));
    memcpy(copy, v, sizeof(*copy));
    errmsg[0] = '\0';
}

/* A refused call returned `want`, wrote a message and left the output as it was. */
static void assert_refused(
    int rv, int want, const char *errmsg, const struct qr_voting *v, const struct qr_voting *copy)
{
    if (rv != want) {
        fail_msg("returned %d (%s), want %d (%s); errmsg \"%s\"", rv, qr_err_name(rv), want,
                 qr_err_name(want), errmsg);
    }
    assert_true(strlen(errmsg) > 0);
    assert_true(strlen(errmsg) < QR_ERRMSG_SIZE);
    assert_memory_equal(v, copy, sizeof(*v));
}

static void assert_close(double got, double want, double tolerance)
{
    if (!(fabs(got - want) <= tolerance)) {
        fail_msg("got %.17g, want %.17g (tolerance %g)", got, want, tolerance);
    }
}

/* The shape every built group must have: sorted voters, zeroed unused slots and fields. */
static void assert_group_shape(const struct qr_voting_group *g,
                               enum qr_voting_rule rule,
                               uint32_t voters_count,
                               uint64_t weight_total)
{
    assert_int_equal(g->rule, rule);
    assert_int_equal(g->voters_count, voters_count);
    assert_int_equal(g->reserved, 0);
    assert_int_equal(g->weight_total, weight_total);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < voters_count; i++) {
        assert_true(g->voters[i].id != 0);
        if (i > 0) {
            assert_true(g->voters[i - 1].id < g->voters[i].id);
        }
        sum += g->voters[i].weight;
    }
    assert_int_equal(sum, weight_total);
    for (uint32_t i = voters_count; i < QR_VOTING_VOTERS_MAX; i++) {
        assert_int_equal(g->voters[i].id, 0);
        assert_int_equal(g->voters[i].weight, 0);
    }
}

/* A single-group configuration: the rule is copied up and the second slot is zero. */
static void assert_single_group(const struct qr_voting *v, enum qr_voting_rule rule)
{
    assert_int_equal(v->rule, rule);
    assert_int_equal(v->groups_count, 1);
    const struct qr_voting_group *unused = &v->groups[1];
    assert_int_equal(unused->rule, 0);
    assert_int_equal(unused->voters_count, 0);
    assert_int_equal(unused->byzantine_faults, 0);
    assert_int_equal(unused->weight_total, 0);
    assert_int_equal(unused->election_weight_min, 0);
    assert_int_equal(unused->replication_weight_min, 0);
    for (uint32_t i = 0; i < QR_VOTING_VOTERS_MAX; i++) {
        assert_int_equal(unused->voters[i].id, 0);
        assert_int_equal(unused->voters[i].weight, 0);
    }
}

/* Two groups hold the same voters and thresholds (padding bytes aside). */
static void assert_groups_equal(const struct qr_voting_group *a, const struct qr_voting_group *b)
{
    assert_int_equal(a->rule, b->rule);
    assert_int_equal(a->voters_count, b->voters_count);
    assert_int_equal(a->byzantine_faults, b->byzantine_faults);
    assert_int_equal(a->weight_total, b->weight_total);
    assert_int_equal(a->election_weight_min, b->election_weight_min);
    assert_int_equal(a->replication_weight_min, b->replication_weight_min);
    for (uint32_t i = 0; i < QR_VOTING_VOTERS_MAX; i++) {
        assert_int_equal(a->voters[i].id, b->voters[i].id);
        assert_int_equal(a->voters[i].weight, b->voters[i].weight);
    }
}

static bool is_quorum_of(const struct qr_voting *v,
                         enum qr_voting_phase phase,
                         const qr_node_id *ids,
                         size_t ids_count)
{
    return qr_voting_is_quorum(v, phase, ids, ids_count);
}

/* ---- qr_voting_init_majority ------------------------------------------------------------ */

static void test_voting_majority_of_three_needs_two(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    assert_single_group(&v, QR_VOTING_MAJORITY);
    assert_group_shape(&v.groups[0], QR_VOTING_MAJORITY, 3, 3);
    assert_int_equal(v.groups[0].election_weight_min, 2);
    assert_int_equal(v.groups[0].replication_weight_min, 2);
    assert_int_equal(v.groups[0].byzantine_faults, 0);
    const qr_node_id one[] = {2};
    const qr_node_id two[] = {1, 3};
    const qr_node_id three[] = {3, 2, 1};
    for (enum qr_voting_phase p = QR_VOTING_ELECTION; p <= QR_VOTING_BOTH; p++) {
        assert_false(is_quorum_of(&v, p, one, 1));
        assert_true(is_quorum_of(&v, p, two, 2));
        assert_true(is_quorum_of(&v, p, three, 3));
    }
}

static void test_voting_majority_of_four_needs_three(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 4);
    assert_int_equal(v.groups[0].election_weight_min, 3);
    const qr_node_id two[] = {1, 4};
    const qr_node_id three[] = {1, 2, 4};
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, two, 2));
    assert_true(is_quorum_of(&v, QR_VOTING_ELECTION, three, 3));
}

static void test_voting_majority_needs_more_than_half_the_weight(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Total 4: exactly half (2) is not enough, 3 is. */
    const uint32_t even[] = {2, 2};
    init_weighted(&v, even, 2);
    assert_int_equal(v.groups[0].weight_total, 4);
    assert_int_equal(v.groups[0].election_weight_min, 3);
    const qr_node_id first[] = {1};
    const qr_node_id both[] = {1, 2};
    assert_false(is_quorum_of(&v, QR_VOTING_REPLICATION, first, 1));
    assert_true(is_quorum_of(&v, QR_VOTING_REPLICATION, both, 2));
    /* Total 5: the heavy voter (3) is a quorum on its own; the two light ones (2) are not. */
    const uint32_t heavy[] = {3, 1, 1};
    init_weighted(&v, heavy, 3);
    assert_int_equal(v.groups[0].weight_total, 5);
    assert_int_equal(v.groups[0].election_weight_min, 3);
    const qr_node_id light[] = {2, 3};
    assert_true(is_quorum_of(&v, QR_VOTING_ELECTION, first, 1));
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, light, 2));
}

static void test_voting_majority_init_sorts_voters_in_any_order(void **state)
{
    (void)state;
    const struct qr_voter voters[] = {{30, 1}, {10, 2}, {20, 3}};
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_majority(&v, voters, 3, errmsg), 0);
    assert_group_shape(&v.groups[0], QR_VOTING_MAJORITY, 3, 6);
    assert_int_equal(v.groups[0].voters[0].id, 10);
    assert_int_equal(v.groups[0].voters[0].weight, 2);
    assert_int_equal(v.groups[0].voters[1].id, 20);
    assert_int_equal(v.groups[0].voters[1].weight, 3);
    assert_int_equal(v.groups[0].voters[2].id, 30);
    assert_int_equal(v.groups[0].voters[2].weight, 1);
    assert_int_equal(v.groups[0].election_weight_min, 4);
}

static void test_voting_majority_of_one_is_that_voter(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 7, 1);
    const qr_node_id self[] = {7};
    assert_true(is_quorum_of(&v, QR_VOTING_BOTH, self, 1));
    assert_false(is_quorum_of(&v, QR_VOTING_BOTH, self, 0));
}

static void test_voting_majority_refuses_an_empty_config(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_majority(&v, voters_range(1, 1, 1), 0, errmsg);
    assert_refused(rv, QR_ENOVOTERS, errmsg, &v, &copy);
}

static void test_voting_majority_accepts_64_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, QR_VOTING_VOTERS_MAX);
    assert_group_shape(&v.groups[0], QR_VOTING_MAJORITY, QR_VOTING_VOTERS_MAX,
                       QR_VOTING_VOTERS_MAX);
    assert_int_equal(v.groups[0].election_weight_min, 33);
}

static void test_voting_majority_refuses_65_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_majority(&v, voters_range(1, QR_VOTING_VOTERS_MAX + 1, 1),
                                     QR_VOTING_VOTERS_MAX + 1, errmsg);
    assert_refused(rv, QR_ETOOMANYVOTERS, errmsg, &v, &copy);
}

static void test_voting_majority_refuses_id_zero(void **state)
{
    (void)state;
    const struct qr_voter voters[] = {{1, 1}, {0, 1}, {3, 1}};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_majority(&v, voters, 3, errmsg);
    assert_refused(rv, QR_EBADID, errmsg, &v, &copy);
}

static void test_voting_majority_refuses_a_duplicate_id(void **state)
{
    (void)state;
    const struct qr_voter voters[] = {{4, 1}, {2, 1}, {4, 2}};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_majority(&v, voters, 3, errmsg);
    assert_refused(rv, QR_EDUPVOTER, errmsg, &v, &copy);
}

static void test_voting_majority_refuses_weight_zero(void **state)
{
    (void)state;
    const struct qr_voter voters[] = {{1, 1}, {2, 0}};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_majority(&v, voters, 2, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
}

static void test_voting_majority_refuses_weight_above_max(void **state)
{
    (void)state;
    const struct qr_voter voters[] = {{1, QR_VOTING_WEIGHT_MAX + 1}, {2, 1}};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_majority(&v, voters, 2, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
    /* A weight that would wrap to a small value in a narrower type is refused too. */
    const struct qr_voter huge[] = {{1, UINT32_MAX}};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_majority(&v, huge, 1, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
}

static void test_voting_majority_accepts_weight_max(void **state)
{
    (void)state;
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    const struct qr_voter *voters = voters_range(1, QR_VOTING_VOTERS_MAX, QR_VOTING_WEIGHT_MAX);
    assert_int_equal(qr_voting_init_majority(&v, voters, QR_VOTING_VOTERS_MAX, errmsg), 0);
    uint64_t total = (uint64_t)QR_VOTING_VOTERS_MAX * QR_VOTING_WEIGHT_MAX;
    assert_group_shape(&v.groups[0], QR_VOTING_MAJORITY, QR_VOTING_VOTERS_MAX, total);
    assert_int_equal(v.groups[0].election_weight_min, total / 2 + 1);
}

static void test_voting_errors_accept_a_null_errmsg(void **state)
{
    (void)state;
    struct qr_voting v;
    int rv = qr_voting_init_majority(&v, voters_range(1, 1, 1), 0, NULL);
    assert_int_equal(rv, QR_ENOVOTERS);
    rv = qr_voting_init_flexible(&v, voters_range(1, 3, 1), 3, 0, 2, NULL);
    assert_int_equal(rv, QR_EBADTHRESHOLD);
    rv = qr_voting_init_byzantine(&v, voters_range(1, 3, 1), 3, 1, NULL);
    assert_int_equal(rv, QR_ETOOFEWNODES);
    const struct qr_voting_spec spec = {.nodes_count = 3, .faults = 2, .model = QR_FAULT_CRASH};
    assert_int_equal(qr_voting_init_tolerating(&v, &spec, NULL), QR_ETOOFEWNODES);
}

/* ---- qr_voting_init_flexible ------------------------------------------------------------ */

static void test_voting_flexible_accepts_a_large_election_and_small_replication(void **state)
{
    (void)state;
    struct qr_voting v;
    init_flexible_equal(&v, 3, 3, 1);
    assert_single_group(&v, QR_VOTING_FLEXIBLE);
    assert_group_shape(&v.groups[0], QR_VOTING_FLEXIBLE, 3, 3);
    assert_int_equal(v.groups[0].election_weight_min, 3);
    assert_int_equal(v.groups[0].replication_weight_min, 1);
    assert_int_equal(v.groups[0].byzantine_faults, 0);
}

static void test_voting_flexible_accepts_thresholds_equal_to_the_total(void **state)
{
    (void)state;
    struct qr_voting v;
    const uint32_t weights[] = {2, 3};
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_voting_init_flexible(&v, voters_weighted(weights, 2), 2, 5, 5, errmsg);
    assert_int_equal(rv, 0);
    assert_group_shape(&v.groups[0], QR_VOTING_FLEXIBLE, 2, 5);
}

static void test_voting_flexible_refuses_threshold_zero(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_flexible(&v, voters_range(1, 3, 1), 3, 0, 3, errmsg);
    assert_refused(rv, QR_EBADTHRESHOLD, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, voters_range(1, 3, 1), 3, 3, 0, errmsg);
    assert_refused(rv, QR_EBADTHRESHOLD, errmsg, &v, &copy);
}

static void test_voting_flexible_refuses_threshold_above_the_total(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    const uint32_t weights[] = {2, 3};
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_flexible(&v, voters_weighted(weights, 2), 2, 6, 5, errmsg);
    assert_refused(rv, QR_EBADTHRESHOLD, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, voters_weighted(weights, 2), 2, 5, 6, errmsg);
    assert_refused(rv, QR_EBADTHRESHOLD, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, voters_weighted(weights, 2), 2, UINT64_MAX, 5, errmsg);
    assert_refused(rv, QR_EBADTHRESHOLD, errmsg, &v, &copy);
}

static void test_voting_flexible_refuses_disjoint_election_and_replication(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    /* {1, 2} wins an election while {3} commits without it. */
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_flexible(&v, voters_range(1, 3, 1), 3, 2, 1, errmsg);
    assert_refused(rv, QR_ENOINTERSECT, errmsg, &v, &copy);
    /* Weighted: {1} (3 of 5) elects, {2, 3} (2 of 5) replicates, and they are disjoint. */
    const uint32_t weights[] = {3, 1, 1};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, voters_weighted(weights, 3), 3, 3, 2, errmsg);
    assert_refused(rv, QR_ENOINTERSECT, errmsg, &v, &copy);
}

static void test_voting_flexible_refuses_disjoint_election_quorums(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    /* Election 2 of 4 lets {1, 2} and {3, 4} both win, although 2 + 4 > 4 keeps every
     * election quorum meeting every replication quorum. */
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_flexible(&v, voters_range(1, 4, 1), 4, 2, 4, errmsg);
    assert_refused(rv, QR_ENOINTERSECT, errmsg, &v, &copy);
    /* Election 3 of 4 is enough to keep elections overlapping. */
    init_flexible_equal(&v, 4, 3, 2);
}

static void test_voting_flexible_reports_voter_errors_as_majority_does(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_flexible(&v, voters_range(1, 1, 1), 0, 1, 1, errmsg);
    assert_refused(rv, QR_ENOVOTERS, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, voters_range(1, 65, 1), 65, 65, 65, errmsg);
    assert_refused(rv, QR_ETOOMANYVOTERS, errmsg, &v, &copy);
    const struct qr_voter zero_id[] = {{0, 1}, {2, 1}, {3, 1}};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, zero_id, 3, 2, 2, errmsg);
    assert_refused(rv, QR_EBADID, errmsg, &v, &copy);
    const struct qr_voter dup[] = {{1, 1}, {2, 1}, {2, 1}};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, dup, 3, 2, 2, errmsg);
    assert_refused(rv, QR_EDUPVOTER, errmsg, &v, &copy);
    const struct qr_voter bad_weight[] = {{1, 1}, {2, 0}, {3, 2}};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_flexible(&v, bad_weight, 3, 2, 2, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
}

/* ---- qr_voting_init_byzantine ----------------------------------------------------------- */

static void test_voting_byzantine_of_four_tolerating_one_needs_three(void **state)
{
    (void)state;
    struct qr_voting v;
    init_byzantine_equal(&v, 4, 1);
    assert_single_group(&v, QR_VOTING_BYZANTINE);
    assert_group_shape(&v.groups[0], QR_VOTING_BYZANTINE, 4, 4);
    assert_int_equal(v.groups[0].byzantine_faults, 1);
    assert_int_equal(v.groups[0].election_weight_min, 3);
    assert_int_equal(v.groups[0].replication_weight_min, 3);
    const qr_node_id two[] = {1, 2};
    const qr_node_id three[] = {2, 3, 4};
    assert_false(is_quorum_of(&v, QR_VOTING_BOTH, two, 2));
    assert_true(is_quorum_of(&v, QR_VOTING_BOTH, three, 3));
}

static void test_voting_byzantine_quorum_is_half_of_n_plus_f_plus_one_rounded_up(void **state)
{
    (void)state;
    struct qr_voting v;
    /* n = 5, f = 1: ceil(7 / 2) = 4. */
    init_byzantine_equal(&v, 5, 1);
    assert_int_equal(v.groups[0].election_weight_min, 4);
    const qr_node_id three[] = {1, 2, 3};
    const qr_node_id four[] = {1, 2, 3, 5};
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, three, 3));
    assert_true(is_quorum_of(&v, QR_VOTING_ELECTION, four, 4));
    /* n = 6, f = 1: ceil(8 / 2) = 4. */
    init_byzantine_equal(&v, 6, 1);
    assert_int_equal(v.groups[0].replication_weight_min, 4);
    /* n = 7, f = 2: ceil(10 / 2) = 5 = 2f + 1. */
    init_byzantine_equal(&v, 7, 2);
    assert_int_equal(v.groups[0].election_weight_min, 5);
    /* n = 3, f = 0: ceil(4 / 2) = 2, a plain majority. */
    init_byzantine_equal(&v, 3, 0);
    assert_int_equal(v.groups[0].election_weight_min, 2);
}

static void test_voting_byzantine_refuses_fewer_than_3f_plus_1_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_byzantine(&v, voters_range(1, 3, 1), 3, 1, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_byzantine(&v, voters_range(1, 6, 1), 6, 2, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
    /* A fault count so large that 3f + 1 overflows 32 bits must still be refused. */
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_byzantine(&v, voters_range(1, 4, 1), 4, UINT32_MAX / 3 + 1, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
}

static void test_voting_byzantine_accepts_64_voters_with_21_faults_but_not_22(void **state)
{
    (void)state;
    struct qr_voting v;
    init_byzantine_equal(&v, QR_VOTING_VOTERS_MAX, 21);
    assert_int_equal(v.groups[0].election_weight_min, 43);
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_byzantine(&v, voters_range(1, QR_VOTING_VOTERS_MAX, 1),
                                      QR_VOTING_VOTERS_MAX, 22, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
}

static void test_voting_byzantine_refuses_weights_other_than_one(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    const uint32_t two[] = {1, 2, 1, 1};
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_byzantine(&v, voters_weighted(two, 4), 4, 1, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
    const uint32_t zero[] = {1, 1, 0, 1};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_byzantine(&v, voters_weighted(zero, 4), 4, 1, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
}

static void test_voting_byzantine_reports_voter_errors_as_majority_does(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_byzantine(&v, voters_range(1, 1, 1), 0, 0, errmsg);
    assert_refused(rv, QR_ENOVOTERS, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_byzantine(&v, voters_range(1, 65, 1), 65, 0, errmsg);
    assert_refused(rv, QR_ETOOMANYVOTERS, errmsg, &v, &copy);
    const struct qr_voter zero_id[] = {{1, 1}, {2, 1}, {0, 1}, {4, 1}};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_byzantine(&v, zero_id, 4, 1, errmsg);
    assert_refused(rv, QR_EBADID, errmsg, &v, &copy);
    const struct qr_voter dup[] = {{1, 1}, {2, 1}, {3, 1}, {1, 1}};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_byzantine(&v, dup, 4, 1, errmsg);
    assert_refused(rv, QR_EDUPVOTER, errmsg, &v, &copy);
}

/* ---- qr_voting_init_joint --------------------------------------------------------------- */

static void test_voting_joint_needs_a_quorum_of_both_groups(void **state)
{
    (void)state;
    struct qr_voting old_config;
    struct qr_voting new_config;
    struct qr_voting v;
    init_range(&old_config, 1, 3);
    init_range(&new_config, 3, 3);
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_joint(&v, &old_config, &new_config, errmsg), 0);
    assert_int_equal(v.rule, QR_VOTING_JOINT);
    assert_int_equal(v.groups_count, 2);
    /* Which slot holds which group is not specified; each must hold one of them. */
    if (v.groups[0].voters[0].id == 1) {
        assert_groups_equal(&v.groups[0], &old_config.groups[0]);
        assert_groups_equal(&v.groups[1], &new_config.groups[0]);
    } else {
        assert_groups_equal(&v.groups[0], &new_config.groups[0]);
        assert_groups_equal(&v.groups[1], &old_config.groups[0]);
    }
    const qr_node_id old_only[] = {1, 2};
    const qr_node_id new_only[] = {4, 5};
    const qr_node_id both[] = {1, 3, 4};
    const qr_node_id shared_only[] = {3};
    for (enum qr_voting_phase p = QR_VOTING_ELECTION; p <= QR_VOTING_BOTH; p++) {
        assert_true(is_quorum_of(&old_config, p, old_only, 2));
        assert_false(is_quorum_of(&v, p, old_only, 2));
        assert_false(is_quorum_of(&v, p, new_only, 2));
        assert_true(is_quorum_of(&v, p, both, 3));
        assert_false(is_quorum_of(&v, p, shared_only, 1));
    }
}

static void test_voting_joint_mixes_rules(void **state)
{
    (void)state;
    struct qr_voting old_config;
    struct qr_voting new_config;
    struct qr_voting v;
    init_flexible_equal(&old_config, 3, 3, 1);
    init_byzantine_equal(&new_config, 4, 1);
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_joint(&v, &old_config, &new_config, errmsg), 0);
    /* Election: all of 1..3 and 3 of 1..4. Replication: one of 1..3 and 3 of 1..4. */
    const qr_node_id three[] = {1, 2, 3};
    const qr_node_id two_four[] = {2, 3, 4};
    assert_true(is_quorum_of(&v, QR_VOTING_ELECTION, three, 3));
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, two_four, 3));
    assert_true(is_quorum_of(&v, QR_VOTING_REPLICATION, two_four, 3));
    assert_false(is_quorum_of(&v, QR_VOTING_BOTH, two_four, 3));
    assert_true(qr_voting_quorums_intersect(&v));
}

static void test_voting_joint_refuses_a_joint_argument(void **state)
{
    (void)state;
    struct qr_voting joint;
    struct qr_voting single;
    init_joint_ranges(&joint, 1, 3, 2, 3);
    init_range(&single, 1, 3);
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_joint(&v, &joint, &single, errmsg);
    assert_refused(rv, QR_EINVAL, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_joint(&v, &single, &joint, errmsg);
    assert_refused(rv, QR_EINVAL, errmsg, &v, &copy);
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_joint(&v, &joint, &joint, errmsg);
    assert_refused(rv, QR_EINVAL, errmsg, &v, &copy);
}

/* ---- qr_voting_init_tolerating ---------------------------------------------------------- */

static void test_voting_tolerating_one_crash_of_three_is_a_majority_of_three(void **state)
{
    (void)state;
    const struct qr_voting_spec spec = {.nodes_count = 3, .faults = 1, .model = QR_FAULT_CRASH};
    struct qr_voting v;
    struct qr_voting want;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_tolerating(&v, &spec, errmsg), 0);
    init_range(&want, 1, 3);
    assert_single_group(&v, QR_VOTING_MAJORITY);
    assert_groups_equal(&v.groups[0], &want.groups[0]);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
}

static void test_voting_tolerating_two_crashes_needs_five_nodes_not_three(void **state)
{
    (void)state;
    const struct qr_voting_spec spec = {.nodes_count = 3, .faults = 2, .model = QR_FAULT_CRASH};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_tolerating(&v, &spec, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
    if (strchr(errmsg, '5') == NULL || strchr(errmsg, '3') == NULL) {
        fail_msg("errmsg \"%s\" should name 5 nodes needed and 3 given", errmsg);
    }
    const struct qr_voting_spec five = {.nodes_count = 5, .faults = 2, .model = QR_FAULT_CRASH};
    assert_int_equal(qr_voting_init_tolerating(&v, &five, errmsg), 0);
    assert_int_equal(qr_voting_faults_tolerated(&v), 2);
}

static void test_voting_tolerating_one_byzantine_fault_of_four_is_accepted(void **state)
{
    (void)state;
    const struct qr_voting_spec spec = {.nodes_count = 4, .faults = 1, .model = QR_FAULT_BYZANTINE};
    struct qr_voting v;
    struct qr_voting want;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_tolerating(&v, &spec, errmsg), 0);
    init_byzantine_equal(&want, 4, 1);
    assert_single_group(&v, QR_VOTING_BYZANTINE);
    assert_groups_equal(&v.groups[0], &want.groups[0]);
}

static void test_voting_tolerating_one_byzantine_fault_needs_four_nodes(void **state)
{
    (void)state;
    const struct qr_voting_spec spec = {.nodes_count = 3, .faults = 1, .model = QR_FAULT_BYZANTINE};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_tolerating(&v, &spec, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
    if (strchr(errmsg, '4') == NULL || strchr(errmsg, '3') == NULL) {
        fail_msg("errmsg \"%s\" should name 4 nodes needed and 3 given", errmsg);
    }
}

static void test_voting_tolerating_refuses_weights_whose_heaviest_break_the_quorum(void **state)
{
    (void)state;
    /* Five nodes would survive two equal crashes, but nodes 1 and 2 carry 6 of 10. */
    const uint32_t weights[] = {3, 3, 2, 1, 1};
    const struct qr_voting_spec spec = {
        .nodes_count = 5, .faults = 2, .model = QR_FAULT_CRASH, .weights = weights};
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_tolerating(&v, &spec, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
    /* {3, 1, 1} cannot lose its heavy voter. */
    const uint32_t heavy[] = {3, 1, 1};
    const struct qr_voting_spec one = {
        .nodes_count = 3, .faults = 1, .model = QR_FAULT_CRASH, .weights = heavy};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_tolerating(&v, &one, errmsg);
    assert_refused(rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
}

static void test_voting_tolerating_accepts_weights_whose_heaviest_may_fail(void **state)
{
    (void)state;
    /* Losing voter 1 (2 of 5) leaves 3 of 5, still a majority. */
    const uint32_t weights[] = {2, 1, 1, 1};
    const struct qr_voting_spec spec = {
        .nodes_count = 4, .faults = 1, .model = QR_FAULT_CRASH, .weights = weights};
    struct qr_voting v;
    struct qr_voting want;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_tolerating(&v, &spec, errmsg), 0);
    init_weighted(&want, weights, 4);
    assert_single_group(&v, QR_VOTING_MAJORITY);
    assert_groups_equal(&v.groups[0], &want.groups[0]);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
}

static void test_voting_tolerating_reports_voter_errors(void **state)
{
    (void)state;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    const struct qr_voting_spec many = {
        .nodes_count = QR_VOTING_VOTERS_MAX + 1, .faults = 0, .model = QR_FAULT_CRASH};
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_tolerating(&v, &many, errmsg);
    assert_refused(rv, QR_ETOOMANYVOTERS, errmsg, &v, &copy);
    const uint32_t zero[] = {1, 0, 1};
    const struct qr_voting_spec zero_weight = {
        .nodes_count = 3, .faults = 0, .model = QR_FAULT_CRASH, .weights = zero};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_tolerating(&v, &zero_weight, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
    const uint32_t two[] = {1, 1, 2, 1};
    const struct qr_voting_spec byzantine_weight = {
        .nodes_count = 4, .faults = 1, .model = QR_FAULT_BYZANTINE, .weights = two};
    poison(&v, &copy, errmsg);
    rv = qr_voting_init_tolerating(&v, &byzantine_weight, errmsg);
    assert_refused(rv, QR_EBADWEIGHT, errmsg, &v, &copy);
    const uint32_t ones[] = {1, 1, 1, 1};
    const struct qr_voting_spec byzantine_ones = {
        .nodes_count = 4, .faults = 1, .model = QR_FAULT_BYZANTINE, .weights = ones};
    assert_int_equal(qr_voting_init_tolerating(&v, &byzantine_ones, errmsg), 0);
}

/* ---- qr_voting_is_quorum ---------------------------------------------------------------- */

static void test_voting_is_quorum_ignores_unknown_and_repeated_ids(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const qr_node_id repeated[] = {1, 1, 1};
    const qr_node_id unknown[] = {1, 4, 5, 6};
    const qr_node_id zero[] = {0, 2};
    const qr_node_id mixed[] = {9, 3, 3, 9, 1};
    for (enum qr_voting_phase p = QR_VOTING_ELECTION; p <= QR_VOTING_BOTH; p++) {
        assert_false(is_quorum_of(&v, p, repeated, 3));
        assert_false(is_quorum_of(&v, p, unknown, 4));
        assert_false(is_quorum_of(&v, p, zero, 2));
        assert_true(is_quorum_of(&v, p, mixed, 5));
    }
    /* A heavy voter repeated still counts its weight once: 2 + 2 of 6 is not a majority. */
    const uint32_t weights[] = {2, 2, 2};
    init_weighted(&v, weights, 3);
    const qr_node_id twice[] = {2, 2};
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, twice, 2));
}

static void test_voting_is_quorum_empty_set_is_never_a_quorum(void **state)
{
    (void)state;
    struct qr_voting v;
    const qr_node_id none[] = {1};
    init_range(&v, 1, 1);
    assert_false(is_quorum_of(&v, QR_VOTING_BOTH, none, 0));
    init_flexible_equal(&v, 3, 3, 1);
    assert_false(is_quorum_of(&v, QR_VOTING_REPLICATION, none, 0));
}

static void test_voting_is_quorum_uses_each_phase_threshold(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Five voters, election 4, replication 2. */
    init_flexible_equal(&v, 5, 4, 2);
    const qr_node_id two[] = {4, 5};
    const qr_node_id four[] = {1, 2, 3, 5};
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, two, 2));
    assert_true(is_quorum_of(&v, QR_VOTING_REPLICATION, two, 2));
    assert_false(is_quorum_of(&v, QR_VOTING_BOTH, two, 2));
    assert_true(is_quorum_of(&v, QR_VOTING_ELECTION, four, 4));
    assert_true(is_quorum_of(&v, QR_VOTING_BOTH, four, 4));
}

/* ---- qr_voting_tally -------------------------------------------------------------------- */

static enum qr_vote_result tally(const struct qr_voting *v,
                                 enum qr_voting_phase phase,
                                 const struct qr_vote *votes,
                                 size_t votes_count)
{
    return qr_voting_tally(v, phase, votes, votes_count);
}

static void test_voting_tally_majority_of_three_wins_with_two_grants(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_vote two[] = {{1, true}, {3, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, two, 2), QR_VOTE_WON);
    const struct qr_vote with_no[] = {{1, true}, {2, false}, {3, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, with_no, 3), QR_VOTE_WON);
}

static void test_voting_tally_is_pending_while_undecided(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_vote votes[] = {{1, true}, {2, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes, 0), QR_VOTE_PENDING);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes, 1), QR_VOTE_PENDING);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes + 1, 1), QR_VOTE_PENDING);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes, 2), QR_VOTE_PENDING);
}

static void test_voting_tally_is_lost_as_soon_as_a_quorum_cannot_form(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Five voters: two no votes leave three possible yeses, three leave two. */
    init_range(&v, 1, 5);
    const struct qr_vote votes[] = {{1, false}, {2, false}, {3, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes, 2), QR_VOTE_PENDING);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes, 3), QR_VOTE_LOST);
    /* Three voters: one yes and two no. */
    init_range(&v, 1, 3);
    const struct qr_vote split[] = {{1, true}, {2, false}, {3, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, split, 3), QR_VOTE_LOST);
}

static void test_voting_tally_counts_a_voter_as_granted_if_any_record_grants(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_vote no_then_yes[] = {{1, false}, {1, true}, {2, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, no_then_yes, 3), QR_VOTE_WON);
    const struct qr_vote yes_then_no[] = {{1, true}, {1, false}, {2, true}, {2, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, yes_then_no, 4), QR_VOTE_WON);
    /* A repeated yes is still one voter. */
    const struct qr_vote yes_twice[] = {{1, true}, {1, true}, {2, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, yes_twice, 3), QR_VOTE_PENDING);
    /* Repeated no votes of one voter are one voter too: 3 may still grant. */
    const struct qr_vote no_twice[] = {{1, false}, {1, false}, {2, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, no_twice, 3), QR_VOTE_PENDING);
}

static void test_voting_tally_ignores_records_of_non_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_vote strangers[] = {{7, true}, {8, true}, {0, true}, {1, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, strangers, 4), QR_VOTE_PENDING);
    const struct qr_vote refusals[] = {{7, false}, {8, false}, {9, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, refusals, 3), QR_VOTE_PENDING);
}

static void test_voting_tally_lets_a_heavy_voter_decide(void **state)
{
    (void)state;
    struct qr_voting v;
    const uint32_t weights[] = {3, 1, 1};
    init_weighted(&v, weights, 3);
    const struct qr_vote yes[] = {{1, true}};
    const struct qr_vote no[] = {{1, false}};
    const struct qr_vote light_yes[] = {{2, true}, {3, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, yes, 1), QR_VOTE_WON);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, no, 1), QR_VOTE_LOST);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, light_yes, 2), QR_VOTE_PENDING);
}

static void test_voting_tally_uses_the_phase_asked_for(void **state)
{
    (void)state;
    struct qr_voting v;
    init_flexible_equal(&v, 4, 3, 2);
    const struct qr_vote votes[] = {{1, true}, {2, true}, {3, false}};
    assert_int_equal(tally(&v, QR_VOTING_REPLICATION, votes, 3), QR_VOTE_WON);
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, votes, 3), QR_VOTE_PENDING);
    assert_int_equal(tally(&v, QR_VOTING_BOTH, votes, 3), QR_VOTE_PENDING);
    const struct qr_vote two_no[] = {{1, false}, {2, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, two_no, 2), QR_VOTE_LOST);
    assert_int_equal(tally(&v, QR_VOTING_REPLICATION, two_no, 2), QR_VOTE_PENDING);
    assert_int_equal(tally(&v, QR_VOTING_BOTH, two_no, 2), QR_VOTE_LOST);
}

static void test_voting_tally_joint_needs_both_groups(void **state)
{
    (void)state;
    struct qr_voting v;
    init_joint_ranges(&v, 1, 3, 3, 3);
    /* The old group {1, 2, 3} has won, the new group {3, 4, 5} has one of three. */
    const struct qr_vote old_won[] = {{1, true}, {2, true}, {3, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, old_won, 3), QR_VOTE_PENDING);
    const struct qr_vote both_won[] = {{1, true}, {3, true}, {5, true}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, both_won, 3), QR_VOTE_WON);
    /* The new group has lost, so the joint vote is lost although the old one has won. */
    const struct qr_vote new_lost[] = {{1, true}, {2, true}, {4, false}, {5, false}};
    assert_int_equal(tally(&v, QR_VOTING_ELECTION, new_lost, 4), QR_VOTE_LOST);
}

/* ---- qr_voting_committed_index ---------------------------------------------------------- */

static qr_index
committed(const struct qr_voting *v, const struct qr_match *matches, size_t matches_count)
{
    return qr_voting_committed_index(v, matches, matches_count);
}

static void test_voting_committed_index_is_the_median_of_three(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_match matches[] = {{1, 5}, {2, 3}, {3, 1}};
    assert_int_equal(committed(&v, matches, 3), 3);
    const struct qr_match shuffled[] = {{3, 9}, {1, 2}, {2, 7}};
    assert_int_equal(committed(&v, shuffled, 3), 7);
    const struct qr_match equal[] = {{1, 4}, {2, 4}, {3, 4}};
    assert_int_equal(committed(&v, equal, 3), 4);
}

static void test_voting_committed_index_is_the_median_of_five(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 5);
    const struct qr_match matches[] = {{1, 9}, {2, 1}, {3, 7}, {4, 3}, {5, 5}};
    assert_int_equal(committed(&v, matches, 5), 5);
    const struct qr_match ties[] = {{1, 2}, {2, 2}, {3, 8}, {4, 8}, {5, 1}};
    assert_int_equal(committed(&v, ties, 5), 2);
}

static void test_voting_committed_index_follows_weights(void **state)
{
    (void)state;
    struct qr_voting v;
    const uint32_t weights[] = {3, 1, 1};
    init_weighted(&v, weights, 3);
    /* Voter 1 alone holds a majority (3 of 5). */
    const struct qr_match heavy_ahead[] = {{1, 10}, {2, 1}, {3, 1}};
    assert_int_equal(committed(&v, heavy_ahead, 3), 10);
    /* The light voters together (2 of 5) do not. */
    const struct qr_match light_ahead[] = {{1, 2}, {2, 10}, {3, 10}};
    assert_int_equal(committed(&v, light_ahead, 3), 2);
    /* Weights {2, 2, 1, 1}, total 6: at 8, {1, 3} holds 3 (not more than half); at 4,
     * {1, 2, 3} holds 5. */
    const uint32_t pairs[] = {2, 2, 1, 1};
    init_weighted(&v, pairs, 4);
    const struct qr_match m[] = {{1, 9}, {2, 4}, {3, 8}, {4, 0}};
    assert_int_equal(committed(&v, m, 4), 4);
}

static void test_voting_committed_index_of_a_joint_config_is_the_min_of_its_groups(void **state)
{
    (void)state;
    struct qr_voting v;
    init_joint_ranges(&v, 1, 3, 3, 3);
    /* Old {1, 2, 3}: median 9. New {3, 4, 5}: median 1. */
    const struct qr_match matches[] = {{1, 9}, {2, 9}, {3, 5}, {4, 1}, {5, 1}};
    assert_int_equal(committed(&v, matches, 5), 1);
    /* Old: median 5. New: median 6. */
    const struct qr_match other[] = {{1, 2}, {2, 5}, {3, 6}, {4, 6}, {5, 8}};
    assert_int_equal(committed(&v, other, 5), 5);
}

static void test_voting_committed_index_counts_missing_voters_as_zero(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_match one[] = {{1, 7}};
    assert_int_equal(committed(&v, one, 1), 0);
    assert_int_equal(committed(&v, one, 0), 0);
    const struct qr_match two[] = {{1, 7}, {3, 4}};
    assert_int_equal(committed(&v, two, 2), 4);
}

static void test_voting_committed_index_takes_the_highest_of_repeated_records(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_match low_last[] = {{1, 7}, {2, 6}, {2, 1}, {3, 0}};
    assert_int_equal(committed(&v, low_last, 4), 6);
    const struct qr_match high_last[] = {{2, 1}, {1, 7}, {3, 0}, {2, 6}};
    assert_int_equal(committed(&v, high_last, 4), 6);
    /* A voter repeated does not count twice. */
    const struct qr_match twice[] = {{1, 7}, {1, 7}, {2, 1}, {3, 1}};
    assert_int_equal(committed(&v, twice, 4), 1);
}

static void test_voting_committed_index_ignores_non_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_match matches[] = {{1, 8}, {9, 8}, {10, 8}, {0, 8}, {2, 2}, {3, 1}};
    assert_int_equal(committed(&v, matches, 6), 2);
}

static void test_voting_committed_index_uses_the_replication_threshold(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Replication needs one of three, so the most advanced voter decides. */
    init_flexible_equal(&v, 3, 3, 1);
    const struct qr_match matches[] = {{1, 2}, {2, 12}, {3, 5}};
    assert_int_equal(committed(&v, matches, 3), 12);
    /* Byzantine 4 of f = 1: three must hold the entry. */
    init_byzantine_equal(&v, 4, 1);
    const struct qr_match four[] = {{1, 9}, {2, 8}, {3, 7}, {4, 6}};
    assert_int_equal(committed(&v, four, 4), 7);
}

static void test_voting_committed_index_handles_the_largest_indexes(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const struct qr_match matches[] = {{1, UINT64_MAX}, {2, UINT64_MAX}, {3, 0}};
    assert_true(committed(&v, matches, 3) == UINT64_MAX);
    const struct qr_match one_max[] = {{1, UINT64_MAX}, {2, UINT64_MAX - 1}, {3, 0}};
    assert_true(committed(&v, one_max, 3) == UINT64_MAX - 1);
}

/* ---- qr_voting_faults_tolerated --------------------------------------------------------- */

static void test_voting_faults_tolerated_by_equal_majorities(void **state)
{
    (void)state;
    struct qr_voting v;
    const uint32_t want[] = {0, 0, 0, 1, 1, 2, 2, 3};
    for (size_t n = 1; n < sizeof(want) / sizeof(want[0]); n++) {
        init_range(&v, 1, n);
        assert_int_equal(qr_voting_faults_tolerated(&v), want[n]);
    }
    init_range(&v, 1, QR_VOTING_VOTERS_MAX);
    assert_int_equal(qr_voting_faults_tolerated(&v), 31);
}

static void test_voting_faults_tolerated_counts_the_heaviest_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    const uint32_t heavy[] = {3, 1, 1};
    init_weighted(&v, heavy, 3);
    assert_int_equal(qr_voting_faults_tolerated(&v), 0);
    /* {2, 1, 1, 1}: losing voter 1 leaves 3 of 5; losing 1 and any other leaves 2. */
    const uint32_t lead[] = {2, 1, 1, 1};
    init_weighted(&v, lead, 4);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
}

static void test_voting_faults_tolerated_by_byzantine_four_is_one(void **state)
{
    (void)state;
    struct qr_voting v;
    /* n = 4, quorum 3: one crash leaves 3. */
    init_byzantine_equal(&v, 4, 1);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
    /* n = 7, f = 2, quorum 5: two crashes leave 5. */
    init_byzantine_equal(&v, 7, 2);
    assert_int_equal(qr_voting_faults_tolerated(&v), 2);
}

static void test_voting_faults_tolerated_needs_both_phases(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Replication survives two crashes of three but elections survive none. */
    init_flexible_equal(&v, 3, 3, 1);
    assert_int_equal(qr_voting_faults_tolerated(&v), 0);
    /* Five voters, election 4, replication 2: one crash. */
    init_flexible_equal(&v, 5, 4, 2);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
}

static void test_voting_faults_tolerated_by_a_joint_config_counts_every_voter(void **state)
{
    (void)state;
    struct qr_voting v;
    /* {1, 2, 3} and {3, 4, 5}: losing 3 leaves 2 of 3 in each; losing 3 and 1 breaks old. */
    init_joint_ranges(&v, 1, 3, 3, 3);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
    /* {1, 2, 3} and {1, 2, 3, 4, 5}: the old group allows only one. */
    init_joint_ranges(&v, 1, 3, 1, 5);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
    /* Disjoint {1, 2, 3} and {4, 5, 6}: any two crashes may both hit one group. */
    init_joint_ranges(&v, 1, 3, 4, 3);
    assert_int_equal(qr_voting_faults_tolerated(&v), 1);
}

/* ---- qr_voting_quorums_intersect -------------------------------------------------------- */

static void test_voting_quorums_intersect_for_every_valid_rule(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 4);
    assert_true(qr_voting_quorums_intersect(&v));
    const uint32_t weights[] = {5, 1, 1, 1, 4};
    init_weighted(&v, weights, 5);
    assert_true(qr_voting_quorums_intersect(&v));
    init_flexible_equal(&v, 6, 4, 3);
    assert_true(qr_voting_quorums_intersect(&v));
    init_byzantine_equal(&v, 7, 2);
    assert_true(qr_voting_quorums_intersect(&v));
    init_joint_ranges(&v, 1, 3, 4, 3);
    assert_true(qr_voting_quorums_intersect(&v));
}

/* ---- qr_voting_quorum_size_min ---------------------------------------------------------- */

static uint32_t size_min(const struct qr_voting *v, enum qr_voting_phase phase)
{
    uint32_t size = UINT32_MAX;
    int rv = qr_voting_quorum_size_min(v, phase, &size);
    assert_int_equal(rv, 0);
    return size;
}

static void test_voting_quorum_size_min_of_equal_majorities(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 5);
    assert_int_equal(size_min(&v, QR_VOTING_ELECTION), 3);
    assert_int_equal(size_min(&v, QR_VOTING_BOTH), 3);
    init_range(&v, 1, 1);
    assert_int_equal(size_min(&v, QR_VOTING_REPLICATION), 1);
    init_range(&v, 1, QR_VOTING_VOTERS_MAX);
    assert_int_equal(size_min(&v, QR_VOTING_REPLICATION), 33);
}

static void test_voting_quorum_size_min_counts_voters_not_weight(void **state)
{
    (void)state;
    struct qr_voting v;
    const uint32_t heavy[] = {1, 3, 1};
    init_weighted(&v, heavy, 3);
    assert_int_equal(size_min(&v, QR_VOTING_ELECTION), 1);
    /* Total 8, more than 4 needed: {4, 1} is the smallest. */
    const uint32_t mixed[] = {1, 1, 1, 1, 4};
    init_weighted(&v, mixed, 5);
    assert_int_equal(size_min(&v, QR_VOTING_ELECTION), 2);
}

static void test_voting_quorum_size_min_per_phase(void **state)
{
    (void)state;
    struct qr_voting v;
    init_flexible_equal(&v, 5, 4, 2);
    assert_int_equal(size_min(&v, QR_VOTING_ELECTION), 4);
    assert_int_equal(size_min(&v, QR_VOTING_REPLICATION), 2);
    assert_int_equal(size_min(&v, QR_VOTING_BOTH), 4);
    init_byzantine_equal(&v, 4, 1);
    assert_int_equal(size_min(&v, QR_VOTING_BOTH), 3);
}

static void test_voting_quorum_size_min_of_a_joint_config_shares_voters(void **state)
{
    (void)state;
    struct qr_voting v;
    /* {1, 3} and {3, 4}: voter 3 serves both groups. */
    init_joint_ranges(&v, 1, 3, 3, 3);
    assert_int_equal(size_min(&v, QR_VOTING_ELECTION), 3);
    /* Disjoint groups need a quorum of each. */
    init_joint_ranges(&v, 1, 3, 4, 5);
    assert_int_equal(size_min(&v, QR_VOTING_BOTH), 5);
    /* The same group twice is that group. */
    init_joint_ranges(&v, 1, 5, 1, 5);
    assert_int_equal(size_min(&v, QR_VOTING_BOTH), 3);
}

static void test_voting_quorum_size_min_of_a_heavy_joint_config_is_exact_or_too_big(void **state)
{
    (void)state;
    struct qr_voting old_config;
    struct qr_voting new_config;
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    const struct qr_voter *voters = voters_range(1, QR_VOTING_VOTERS_MAX, QR_VOTING_WEIGHT_MAX);
    assert_int_equal(qr_voting_init_majority(&old_config, voters, QR_VOTING_VOTERS_MAX, errmsg), 0);
    voters = voters_range(33, QR_VOTING_VOTERS_MAX, QR_VOTING_WEIGHT_MAX - 1);
    assert_int_equal(qr_voting_init_majority(&new_config, voters, QR_VOTING_VOTERS_MAX, errmsg), 0);
    assert_int_equal(qr_voting_init_joint(&v, &old_config, &new_config, errmsg), 0);
    /* The header does not say where "too heavy" starts, so both answers are allowed, but a
     * count must be right. Each group needs 33 of its 64 voters; they share only 33 ... 64
     * (32 voters), so one more from each side is needed: 34. */
    uint32_t size = 0;
    int rv = qr_voting_quorum_size_min(&v, QR_VOTING_BOTH, &size);
    if (rv == 0) {
        assert_int_equal(size, 34);
    } else {
        assert_int_equal(rv, QR_ETOOBIG);
    }
    double availability = -1.0;
    rv = qr_voting_availability(&v, QR_VOTING_BOTH, 0.0, &availability);
    if (rv == 0) {
        assert_close(availability, 1.0, 1e-12);
    } else {
        assert_int_equal(rv, QR_ETOOBIG);
    }
    assert_int_equal(test_alloc_live_count(), 0);
}

/* ---- qr_voting_availability ------------------------------------------------------------- */

static double availability(const struct qr_voting *v, enum qr_voting_phase phase, double p_fail)
{
    double a = -1.0;
    int rv = qr_voting_availability(v, phase, p_fail, &a);
    assert_int_equal(rv, 0);
    assert_true(a >= 0.0 && a <= 1.0);
    return a;
}

static void test_voting_availability_is_one_when_nothing_fails(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    assert_close(availability(&v, QR_VOTING_BOTH, 0.0), 1.0, 0.0);
    init_byzantine_equal(&v, 7, 2);
    assert_close(availability(&v, QR_VOTING_ELECTION, 0.0), 1.0, 0.0);
}

static void test_voting_availability_is_zero_when_everything_fails(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    assert_close(availability(&v, QR_VOTING_BOTH, 1.0), 0.0, 0.0);
    init_flexible_equal(&v, 3, 3, 1);
    assert_close(availability(&v, QR_VOTING_REPLICATION, 1.0), 0.0, 0.0);
}

static void test_voting_availability_of_three_at_ten_percent_is_0_972(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    /* 0.9^3 + 3 * 0.9^2 * 0.1 = 0.729 + 0.243. */
    assert_close(availability(&v, QR_VOTING_ELECTION, 0.1), 0.972, 1e-12);
    assert_close(availability(&v, QR_VOTING_BOTH, 0.1), 0.972, 1e-12);
}

static void test_voting_availability_follows_the_phase_and_weights(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Replication needs any one of three alive: 1 - 0.1^3. */
    init_flexible_equal(&v, 3, 3, 1);
    assert_close(availability(&v, QR_VOTING_REPLICATION, 0.1), 0.999, 1e-12);
    /* Election needs all three: 0.9^3. */
    assert_close(availability(&v, QR_VOTING_ELECTION, 0.1), 0.729, 1e-12);
    assert_close(availability(&v, QR_VOTING_BOTH, 0.1), 0.729, 1e-12);
    /* {3, 1, 1}: the heavy voter alone decides. */
    const uint32_t heavy[] = {3, 1, 1};
    init_weighted(&v, heavy, 3);
    assert_close(availability(&v, QR_VOTING_ELECTION, 0.25), 0.75, 1e-12);
}

static void test_voting_availability_of_disjoint_joint_groups_multiplies(void **state)
{
    (void)state;
    struct qr_voting v;
    init_joint_ranges(&v, 1, 3, 4, 3);
    assert_close(availability(&v, QR_VOTING_BOTH, 0.1), 0.972 * 0.972, 1e-12);
    /* Overlapping {1, 2} and {2, 3}: 2 of 2 in each, so all three must live. */
    init_joint_ranges(&v, 1, 2, 2, 2);
    assert_close(availability(&v, QR_VOTING_BOTH, 0.5), 0.125, 1e-12);
}

static void test_voting_availability_refuses_p_outside_zero_to_one(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, 3);
    const double bad[] = {-0.1, -1e-300, 1.0000001, 2.0, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double a = 0.5;
        int rv = qr_voting_availability(&v, QR_VOTING_BOTH, bad[i], &a);
        if (rv != QR_EINVAL) {
            fail_msg("p_fail %g: returned %d (%s), want QR_EINVAL", bad[i], rv, qr_err_name(rv));
        }
    }
}

/* ---- Out of memory ---------------------------------------------------------------------- */

/* A configuration heavy enough that the weight-indexed searches need real tables. */
static void init_heavy(struct qr_voting *v)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    const struct qr_voter *voters = voters_range(1, QR_VOTING_VOTERS_MAX, QR_VOTING_WEIGHT_MAX);
    for (size_t i = 0; i < QR_VOTING_VOTERS_MAX; i++) {
        voters_buf[i].weight = (uint32_t)(QR_VOTING_WEIGHT_MAX - i);
    }
    assert_int_equal(qr_voting_init_majority(v, voters, QR_VOTING_VOTERS_MAX, errmsg), 0);
}

static int call_size_min(const struct qr_voting *v, double *answer_out)
{
    uint32_t size = 0;
    int rv = qr_voting_quorum_size_min(v, QR_VOTING_BOTH, &size);
    *answer_out = size;
    return rv;
}

static int call_availability(const struct qr_voting *v, double *answer_out)
{
    return qr_voting_availability(v, QR_VOTING_BOTH, 0.3, answer_out);
}

/* Fails allocation 1, 2, 3, ... (once, then for good) until the call succeeds. Every
 * failure must be QR_ENOMEM and leak nothing; the final answer must be the normal one. */
static bool check_out_of_memory(const struct qr_voting *v,
                                int (*call)(const struct qr_voting *, double *))
{
    double want = -1.0;
    size_t calls_before = test_alloc_calls_count();
    assert_int_equal(call(v, &want), 0);
    size_t allocations = test_alloc_calls_count() - calls_before;
    if (allocations == 0) {
        /* The implementation needed no memory here, so no QR_ENOMEM path exists to drive. */
        return false;
    }
    for (int sticky = 0; sticky <= 1; sticky++) {
        size_t failures = 0;
        for (size_t n = 1; n <= allocations + 1; n++) {
            test_alloc_fail_at(n, sticky == 1);
            double got = -1.0;
            int rv = call(v, &got);
            test_alloc_fail_at(0, false);
            assert_int_equal(test_alloc_live_count(), 0);
            if (rv == 0) {
                assert_close(got, want, 0.0);
                break;
            }
            assert_int_equal(rv, QR_ENOMEM);
            failures++;
        }
        assert_true(failures >= 1);
    }
    return true;
}

static void test_voting_availability_returns_enomem_when_allocation_fails(void **state)
{
    (void)state;
    struct qr_voting v;
    init_heavy(&v);
    bool exercised = check_out_of_memory(&v, call_availability);
    init_joint_ranges(&v, 1, 5, 3, 5);
    exercised = check_out_of_memory(&v, call_availability) || exercised;
    if (!exercised) {
        /* Neither call allocated, so this implementation has no QR_ENOMEM path to drive. */
        skip();
    }
}

static void test_voting_quorum_size_min_returns_enomem_when_allocation_fails(void **state)
{
    (void)state;
    struct qr_voting v;
    init_heavy(&v);
    bool exercised = check_out_of_memory(&v, call_size_min);
    init_joint_ranges(&v, 1, 5, 3, 5);
    exercised = check_out_of_memory(&v, call_size_min) || exercised;
    if (!exercised) {
        /* Neither call allocated, so this implementation has no QR_ENOMEM path to drive. */
        skip();
    }
}

/* ---- The largest configurations -------------------------------------------------------- */

static void test_voting_sixty_four_voters_need_thirty_three(void **state)
{
    (void)state;
    struct qr_voting v;
    init_range(&v, 1, QR_VOTING_VOTERS_MAX);
    qr_node_id ids[QR_VOTING_VOTERS_MAX];
    for (size_t i = 0; i < QR_VOTING_VOTERS_MAX; i++) {
        ids[i] = i + 1;
    }
    assert_false(is_quorum_of(&v, QR_VOTING_BOTH, ids, 32));
    assert_true(is_quorum_of(&v, QR_VOTING_BOTH, ids, 33));
    assert_true(is_quorum_of(&v, QR_VOTING_BOTH, ids + 31, 33));
    /* Voter i holds index i: the 33 voters 32 ... 64 hold 32. */
    struct qr_match matches[QR_VOTING_VOTERS_MAX];
    for (size_t i = 0; i < QR_VOTING_VOTERS_MAX; i++) {
        matches[i] = (struct qr_match){i + 1, i + 1};
    }
    assert_int_equal(committed(&v, matches, QR_VOTING_VOTERS_MAX), 32);
    /* Binomial(64, 1/2) >= 33 is (1 - C(64, 32) / 2^64) / 2. */
    assert_close(availability(&v, QR_VOTING_BOTH, 0.5), 0.45032662312601657, 1e-12);
}

static void test_voting_sixty_four_weighted_voters_take_the_heaviest_first(void **state)
{
    (void)state;
    struct qr_voting v;
    /* Weights 255, 254, ..., 192: total 14304, quorum 7153, reached by the 30 heaviest
     * (7215) but not by 29 (6989). */
    init_heavy(&v);
    assert_int_equal(v.groups[0].weight_total, 14304);
    assert_int_equal(size_min(&v, QR_VOTING_BOTH), 30);
    /* The worst crashes take the heaviest: without the 29 heaviest, 226 ... 192 hold 7315
     * (a quorum); without the 30 heaviest, 225 ... 192 hold 7089 (not one). */
    assert_int_equal(qr_voting_faults_tolerated(&v), 29);
    qr_node_id ids[QR_VOTING_VOTERS_MAX];
    for (size_t i = 0; i < QR_VOTING_VOTERS_MAX; i++) {
        ids[i] = i + 1;
    }
    assert_true(is_quorum_of(&v, QR_VOTING_ELECTION, ids, 30));
    assert_false(is_quorum_of(&v, QR_VOTING_ELECTION, ids, 29));
}

/* ---- qr_voting_voter_ids, qr_voting_has_voter, qr_voting_rule_name ---------------------- */

static void test_voting_voter_ids_are_the_union_ascending(void **state)
{
    (void)state;
    const struct qr_voter old_voters[] = {{5, 1}, {1, 2}, {3, 1}};
    const struct qr_voter new_voters[] = {{4, 1}, {3, 3}, {9, 1}};
    struct qr_voting old_config;
    struct qr_voting new_config;
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr_voting_init_majority(&old_config, old_voters, 3, errmsg), 0);
    assert_int_equal(qr_voting_init_majority(&new_config, new_voters, 3, errmsg), 0);
    assert_int_equal(qr_voting_init_joint(&v, &old_config, &new_config, errmsg), 0);
    qr_node_id ids[TEST_IDS_MAX];
    assert_int_equal(qr_voting_voter_ids(&v, ids, TEST_IDS_MAX), 5);
    const qr_node_id want[] = {1, 3, 4, 5, 9};
    assert_memory_equal(ids, want, sizeof(want));
    assert_int_equal(qr_voting_voter_ids(&old_config, ids, TEST_IDS_MAX), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 5);
}

static void test_voting_voter_ids_truncates_to_ids_max(void **state)
{
    (void)state;
    struct qr_voting v;
    init_joint_ranges(&v, 1, 3, 3, 3);
    qr_node_id ids[6] = {77, 77, 77, 77, 77, 77};
    assert_int_equal(qr_voting_voter_ids(&v, ids, 2), 5);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 77);
    assert_int_equal(qr_voting_voter_ids(&v, ids + 3, 0), 5);
    assert_int_equal(ids[3], 77);
    assert_int_equal(qr_voting_voter_ids(&v, ids, 5), 5);
    assert_int_equal(ids[4], 5);
    assert_int_equal(ids[5], 77);
}

static void test_voting_voter_ids_of_two_full_disjoint_groups_fit(void **state)
{
    (void)state;
    struct qr_voting v;
    init_joint_ranges(&v, 1, QR_VOTING_VOTERS_MAX, 1000, QR_VOTING_VOTERS_MAX);
    qr_node_id ids[TEST_IDS_MAX];
    assert_int_equal(qr_voting_voter_ids(&v, ids, TEST_IDS_MAX), TEST_IDS_MAX);
    for (size_t i = 1; i < TEST_IDS_MAX; i++) {
        assert_true(ids[i - 1] < ids[i]);
    }
    assert_int_equal(ids[TEST_IDS_MAX - 1], 1000 + QR_VOTING_VOTERS_MAX - 1);
}

static void test_voting_has_voter_looks_in_every_group(void **state)
{
    (void)state;
    struct qr_voting v;
    init_joint_ranges(&v, 1, 2, 10, 2);
    assert_true(qr_voting_has_voter(&v, 1));
    assert_true(qr_voting_has_voter(&v, 2));
    assert_true(qr_voting_has_voter(&v, 10));
    assert_true(qr_voting_has_voter(&v, 11));
    assert_false(qr_voting_has_voter(&v, 0));
    assert_false(qr_voting_has_voter(&v, 3));
    assert_false(qr_voting_has_voter(&v, 12));
    assert_false(qr_voting_has_voter(&v, UINT64_MAX));
}

static void test_voting_rule_name_names_every_rule(void **state)
{
    (void)state;
    assert_string_equal(qr_voting_rule_name(QR_VOTING_MAJORITY), "majority");
    assert_string_equal(qr_voting_rule_name(QR_VOTING_FLEXIBLE), "flexible");
    assert_string_equal(qr_voting_rule_name(QR_VOTING_BYZANTINE), "byzantine");
    assert_string_equal(qr_voting_rule_name(QR_VOTING_JOINT), "joint");
}

static int run_constructor_tests(void)
{
    const struct CMUnitTest constructor_tests[] = {
        cmocka_unit_test(test_voting_majority_of_three_needs_two),
        cmocka_unit_test(test_voting_majority_of_four_needs_three),
        cmocka_unit_test(test_voting_majority_needs_more_than_half_the_weight),
        cmocka_unit_test(test_voting_majority_init_sorts_voters_in_any_order),
        cmocka_unit_test(test_voting_majority_of_one_is_that_voter),
        cmocka_unit_test(test_voting_majority_refuses_an_empty_config),
        cmocka_unit_test(test_voting_majority_accepts_64_voters),
        cmocka_unit_test(test_voting_majority_refuses_65_voters),
        cmocka_unit_test(test_voting_majority_refuses_id_zero),
        cmocka_unit_test(test_voting_majority_refuses_a_duplicate_id),
        cmocka_unit_test(test_voting_majority_refuses_weight_zero),
        cmocka_unit_test(test_voting_majority_refuses_weight_above_max),
        cmocka_unit_test(test_voting_majority_accepts_weight_max),
        cmocka_unit_test(test_voting_errors_accept_a_null_errmsg),
        cmocka_unit_test(test_voting_flexible_accepts_a_large_election_and_small_replication),
        cmocka_unit_test(test_voting_flexible_accepts_thresholds_equal_to_the_total),
        cmocka_unit_test(test_voting_flexible_refuses_threshold_zero),
        cmocka_unit_test(test_voting_flexible_refuses_threshold_above_the_total),
        cmocka_unit_test(test_voting_flexible_refuses_disjoint_election_and_replication),
        cmocka_unit_test(test_voting_flexible_refuses_disjoint_election_quorums),
        cmocka_unit_test(test_voting_flexible_reports_voter_errors_as_majority_does),
        cmocka_unit_test(test_voting_byzantine_of_four_tolerating_one_needs_three),
        cmocka_unit_test(test_voting_byzantine_quorum_is_half_of_n_plus_f_plus_one_rounded_up),
        cmocka_unit_test(test_voting_byzantine_refuses_fewer_than_3f_plus_1_voters),
        cmocka_unit_test(test_voting_byzantine_accepts_64_voters_with_21_faults_but_not_22),
        cmocka_unit_test(test_voting_byzantine_refuses_weights_other_than_one),
        cmocka_unit_test(test_voting_byzantine_reports_voter_errors_as_majority_does),
        cmocka_unit_test(test_voting_joint_needs_a_quorum_of_both_groups),
        cmocka_unit_test(test_voting_joint_mixes_rules),
        cmocka_unit_test(test_voting_joint_refuses_a_joint_argument),
        cmocka_unit_test(test_voting_tolerating_one_crash_of_three_is_a_majority_of_three),
        cmocka_unit_test(test_voting_tolerating_two_crashes_needs_five_nodes_not_three),
        cmocka_unit_test(test_voting_tolerating_one_byzantine_fault_of_four_is_accepted),
        cmocka_unit_test(test_voting_tolerating_one_byzantine_fault_needs_four_nodes),
        cmocka_unit_test(test_voting_tolerating_refuses_weights_whose_heaviest_break_the_quorum),
        cmocka_unit_test(test_voting_tolerating_accepts_weights_whose_heaviest_may_fail),
        cmocka_unit_test(test_voting_tolerating_reports_voter_errors),
    };
    return cmocka_run_group_tests(constructor_tests, test_alloc_setup, test_alloc_teardown);
}

static int run_query_tests(void)
{
    const struct CMUnitTest query_tests[] = {
        cmocka_unit_test(test_voting_is_quorum_ignores_unknown_and_repeated_ids),
        cmocka_unit_test(test_voting_is_quorum_empty_set_is_never_a_quorum),
        cmocka_unit_test(test_voting_is_quorum_uses_each_phase_threshold),
        cmocka_unit_test(test_voting_tally_majority_of_three_wins_with_two_grants),
        cmocka_unit_test(test_voting_tally_is_pending_while_undecided),
        cmocka_unit_test(test_voting_tally_is_lost_as_soon_as_a_quorum_cannot_form),
        cmocka_unit_test(test_voting_tally_counts_a_voter_as_granted_if_any_record_grants),
        cmocka_unit_test(test_voting_tally_ignores_records_of_non_voters),
        cmocka_unit_test(test_voting_tally_lets_a_heavy_voter_decide),
        cmocka_unit_test(test_voting_tally_uses_the_phase_asked_for),
        cmocka_unit_test(test_voting_tally_joint_needs_both_groups),
        cmocka_unit_test(test_voting_committed_index_is_the_median_of_three),
        cmocka_unit_test(test_voting_committed_index_is_the_median_of_five),
        cmocka_unit_test(test_voting_committed_index_follows_weights),
        cmocka_unit_test(test_voting_committed_index_of_a_joint_config_is_the_min_of_its_groups),
        cmocka_unit_test(test_voting_committed_index_counts_missing_voters_as_zero),
        cmocka_unit_test(test_voting_committed_index_takes_the_highest_of_repeated_records),
        cmocka_unit_test(test_voting_committed_index_ignores_non_voters),
        cmocka_unit_test(test_voting_committed_index_uses_the_replication_threshold),
        cmocka_unit_test(test_voting_committed_index_handles_the_largest_indexes),
    };
    return cmocka_run_group_tests(query_tests, test_alloc_setup, test_alloc_teardown);
}

static int run_analysis_tests(void)
{
    const struct CMUnitTest analysis_tests[] = {
        cmocka_unit_test(test_voting_faults_tolerated_by_equal_majorities),
        cmocka_unit_test(test_voting_faults_tolerated_counts_the_heaviest_voters),
        cmocka_unit_test(test_voting_faults_tolerated_by_byzantine_four_is_one),
        cmocka_unit_test(test_voting_faults_tolerated_needs_both_phases),
        cmocka_unit_test(test_voting_faults_tolerated_by_a_joint_config_counts_every_voter),
        cmocka_unit_test(test_voting_quorums_intersect_for_every_valid_rule),
        cmocka_unit_test(test_voting_quorum_size_min_of_equal_majorities),
        cmocka_unit_test(test_voting_quorum_size_min_counts_voters_not_weight),
        cmocka_unit_test(test_voting_quorum_size_min_per_phase),
        cmocka_unit_test(test_voting_quorum_size_min_of_a_joint_config_shares_voters),
        cmocka_unit_test(test_voting_quorum_size_min_of_a_heavy_joint_config_is_exact_or_too_big),
        cmocka_unit_test(test_voting_availability_is_one_when_nothing_fails),
        cmocka_unit_test(test_voting_availability_is_zero_when_everything_fails),
        cmocka_unit_test(test_voting_availability_of_three_at_ten_percent_is_0_972),
        cmocka_unit_test(test_voting_availability_follows_the_phase_and_weights),
        cmocka_unit_test(test_voting_availability_of_disjoint_joint_groups_multiplies),
        cmocka_unit_test(test_voting_availability_refuses_p_outside_zero_to_one),
        cmocka_unit_test(test_voting_availability_returns_enomem_when_allocation_fails),
        cmocka_unit_test(test_voting_quorum_size_min_returns_enomem_when_allocation_fails),
        cmocka_unit_test(test_voting_sixty_four_voters_need_thirty_three),
        cmocka_unit_test(test_voting_sixty_four_weighted_voters_take_the_heaviest_first),
        cmocka_unit_test(test_voting_voter_ids_are_the_union_ascending),
        cmocka_unit_test(test_voting_voter_ids_truncates_to_ids_max),
        cmocka_unit_test(test_voting_voter_ids_of_two_full_disjoint_groups_fit),
        cmocka_unit_test(test_voting_has_voter_looks_in_every_group),
        cmocka_unit_test(test_voting_rule_name_names_every_rule),
    };
    return cmocka_run_group_tests(analysis_tests, test_alloc_setup, test_alloc_teardown);
}

int main(void)
{
    int failures = run_constructor_tests();
    failures += run_query_tests();
    failures += run_analysis_tests();
    return failures;
}
