/*
 * Unit tests of sim/: every checker must be able to fail (each is fed a
 * hand-made violation and must name it), the records and the trace behave,
 * fault lists parse, a run is deterministic (same seed, same trace hash),
 * and bugs planted in the simulator's own driver are caught end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "quorum/err.h"
#include "sim/check.h"
#include "sim/map.h"
#include "sim/sim.h"
#include "sim/trace.h"
#include "test_alloc.h"

/* Seeds tried when looking for a planted bug; each run is short. */
#define BUG_SEEDS_MAX 40
#define SHORT_TICKS   150

/* ---- A fake log for the log-reading checkers ----------------------------------------- */

struct fake_log {
    qr_index first; /* First index held. */
    qr_index last;  /* Last index held. */
    qr_term terms[32];
    uint64_t hashes[32];
};

static bool fake_entry(void *ctx, qr_index index, qr_term *term_out, uint64_t *hash_out)
{
    const struct fake_log *log = ctx;
    if (index < log->first || index > log->last || index >= 32) {
        return false;
    }
    *term_out = log->terms[index];
    if (hash_out != NULL) {
        *hash_out = log->hashes[index];
    }
    return true;
}

/* A log holding indexes first..last, all of term 1 with hash = index. */
static void fake_init(struct fake_log *log, qr_index first, qr_index last)
{
    memset(log, 0, sizeof(*log));
    log->first = first;
    log->last = last;
    for (qr_index i = first; i <= last; i++) {
        log->terms[i] = 1;
        log->hashes[i] = i;
    }
}

static struct qr_sim_log_view view_of(struct fake_log *log, qr_node_id node)
{
    struct qr_sim_log_view v = {node, log, fake_entry};
    return v;
}

/* qr__check_applied by `node`, whose current term is the entry's term. */
static int
applied(struct qr_sim_check *c, qr_node_id node, qr_index index, qr_term term, uint64_t hash)
{
    struct qr_sim_apply a = {node, term, index, term, hash};
    return qr__check_applied(c, &a);
}

static int leader_log(struct qr_sim_check *c,
                      const struct qr_sim_log_view *v,
                      qr_term term,
                      qr_index snapshot_index,
                      qr_term snapshot_term)
{
    struct qr_sim_leader l = {term, snapshot_index, snapshot_term};
    return qr__check_leader_log(c, v, &l);
}

/* ---- Checkers ------------------------------------------------------------------------- */

static void test_check_election_safety_refuses_two_leaders_in_one_term(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    assert_int_equal(qr__check_leader(&c, 5, 1), 0);
    assert_int_equal(qr__check_leader(&c, 5, 1), 0);
    assert_int_equal(qr__check_leader(&c, 6, 2), 0);
    assert_null(c.check_name);
    assert_int_equal(qr__check_leader(&c, 5, 2), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_ELECTION);
    assert_non_null(strstr(c.errmsg, "term 5"));
    qr__check_close(&c);
}

static void test_check_log_matching_refuses_two_payloads_at_one_index_and_term(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    assert_int_equal(qr__check_log_entry(&c, 1, 3, 2, 0xaa), 0);
    assert_int_equal(qr__check_log_entry(&c, 2, 3, 2, 0xaa), 0);
    assert_int_equal(qr__check_log_entry(&c, 2, 3, 3, 0xbb), 0); /* Another term: allowed. */
    assert_int_equal(qr__check_log_entry(&c, 3, 3, 2, 0xbb), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_LOG_MATCHING);
    qr__check_close(&c);
}

static void test_check_logs_match_refuses_agreement_after_a_difference(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    struct fake_log a;
    struct fake_log b;
    fake_init(&a, 1, 10);
    fake_init(&b, 1, 10);
    struct qr_sim_log_view va = view_of(&a, 1);
    struct qr_sim_log_view vb = view_of(&b, 2);
    assert_int_equal(qr__check_logs_match(&c, &va, &vb, 1, 10), 0);
    /* Divergent suffixes are fine: the logs agree up to 7 and differ after. */
    b.terms[8] = 2;
    b.terms[9] = 2;
    b.terms[10] = 2;
    assert_int_equal(qr__check_logs_match(&c, &va, &vb, 1, 10), 0);
    /* A compacted prefix is skipped. */
    a.first = 5;
    assert_int_equal(qr__check_logs_match(&c, &va, &vb, 1, 10), 0);
    /* Same term at 7 but different payloads at 6: log matching is broken. */
    b.hashes[6] = 99;
    assert_int_equal(qr__check_logs_match(&c, &va, &vb, 1, 10), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_LOG_MATCHING);
    assert_non_null(strstr(c.errmsg, "index 6"));
    qr__check_close(&c);
}

static void test_check_state_machine_refuses_two_entries_at_one_index(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    assert_int_equal(applied(&c, 1, 5, 2, 0xaa), 0);
    assert_int_equal(applied(&c, 2, 5, 2, 0xaa), 0);
    assert_int_equal(c.committed_max, 5);
    qr_term term = 0;
    uint64_t hash = 0;
    assert_true(qr__check_committed(&c, 5, &term, &hash));
    assert_int_equal(term, 2);
    assert_false(qr__check_committed(&c, 4, &term, &hash));
    assert_int_equal(applied(&c, 3, 5, 2, 0xbb), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_STATE_MACHINE);
    qr__check_close(&c);

    qr__check_init(&c);
    assert_int_equal(applied(&c, 1, 5, 2, 0xaa), 0);
    assert_int_equal(applied(&c, 2, 5, 3, 0xaa), QR_EPROTO); /* Other term. */
    qr__check_close(&c);
}

static void test_check_state_refuses_two_states_after_one_index(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    assert_int_equal(qr__check_state(&c, 1, 10, 0x1234), 0);
    assert_int_equal(qr__check_state(&c, 2, 10, 0x1234), 0);
    assert_int_equal(qr__check_state(&c, 2, 11, 0x9999), 0);
    assert_int_equal(qr__check_state(&c, 3, 10, 0x4321), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_STATE_MACHINE);
    qr__check_close(&c);
}

static void test_check_leader_completeness_refuses_a_leader_missing_a_commit(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    for (qr_index i = 1; i <= 6; i++) {
        assert_int_equal(applied(&c, 1, i, 1, i), 0);
    }
    struct fake_log log;
    fake_init(&log, 1, 6);
    struct qr_sim_log_view v = view_of(&log, 2);
    assert_int_equal(leader_log(&c, &v, 2, 0, 0), 0);
    /* A snapshot may cover a compacted prefix. */
    log.first = 5;
    assert_int_equal(leader_log(&c, &v, 2, 4, 1), 0);
    /* But not a prefix it does not cover. */
    assert_int_equal(leader_log(&c, &v, 2, 3, 1), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_COMPLETENESS);
    assert_non_null(strstr(c.errmsg, "lacks committed index 4"));
    qr__check_close(&c);

    qr__check_init(&c);
    for (qr_index i = 1; i <= 6; i++) {
        assert_int_equal(applied(&c, 1, i, 1, i), 0);
    }
    fake_init(&log, 1, 6);
    log.hashes[6] = 77; /* Same term, other payload. */
    assert_int_equal(leader_log(&c, &v, 2, 0, 0), QR_EPROTO);
    qr__check_close(&c);

    qr__check_init(&c);
    assert_int_equal(applied(&c, 1, 4, 2, 4), 0);
    fake_init(&log, 5, 6);
    assert_int_equal(leader_log(&c, &v, 3, 4, 1), QR_EPROTO); /* Snapshot term. */
    qr__check_close(&c);
}

static void test_check_leader_completeness_spares_leaders_of_older_terms(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    /* Index 3 was committed while term 4 ruled (the applier was in term 4). */
    assert_int_equal(applied(&c, 1, 1, 1, 1), 0);
    assert_int_equal(applied(&c, 1, 2, 1, 2), 0);
    struct qr_sim_apply late = {3, 4, 3, 4, 33};
    assert_int_equal(qr__check_applied(&c, &late), 0);
    struct fake_log log;
    fake_init(&log, 1, 3); /* Holds index 3 of term 1: not the committed one. */
    struct qr_sim_log_view v = view_of(&log, 2);
    /* A leader of term 3, elected late with delayed votes, need not hold it... */
    assert_int_equal(leader_log(&c, &v, 3, 0, 0), 0);
    assert_int_equal(leader_log(&c, &v, 4, 0, 0), 0);
    /* ...but a leader of term 5 must. */
    assert_int_equal(leader_log(&c, &v, 5, 0, 0), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_COMPLETENESS);
    qr__check_close(&c);
}

static void test_check_requests_refuse_double_and_failed_application(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    assert_int_equal(qr__check_request_applied(&c, 1, 7, 1, 20), 0);
    assert_int_equal(qr__check_request_applied(&c, 2, 7, 1, 20), 0); /* Replay, same index. */
    assert_int_equal(qr__check_request_applied(&c, 2, 7, 1, 21), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_STATE_MACHINE);
    qr__check_close(&c);

    qr__check_init(&c);
    assert_int_equal(qr__check_request_failed(&c, 7, 2), 0);
    assert_int_equal(qr__check_request_applied(&c, 1, 7, 2, 30), QR_EPROTO);
    qr__check_close(&c);

    qr__check_init(&c);
    assert_int_equal(qr__check_request_applied(&c, 1, 7, 3, 30), 0);
    assert_int_equal(qr__check_request_failed(&c, 7, 3), QR_EPROTO);
    qr__check_close(&c);
}

static void test_check_overwrite_refuses_losing_a_durable_committed_entry(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    uint8_t payload[3] = {1, 2, 3};
    struct qr_entry committed = {
        .term = 2, .index = 7, .type = QR_ENTRY_NORMAL, .data = {payload, sizeof(payload)}};
    uint64_t hash = qr__check_entry_hash(&committed);
    assert_int_equal(applied(&c, 1, 7, 2, hash), 0);
    /* Rewriting it unchanged, or replacing an entry that was not the committed one: fine. */
    assert_int_equal(qr__check_overwrite(&c, 2, 7, 2, hash, &committed), 0);
    struct qr_entry other = committed;
    other.term = 3;
    assert_int_equal(qr__check_overwrite(&c, 2, 7, 1, 0x55, &other), 0);
    assert_int_equal(qr__check_overwrite(&c, 2, 8, 2, hash, NULL), 0); /* Not committed. */
    assert_null(c.check_name);
    assert_int_equal(qr__check_overwrite(&c, 2, 7, 2, hash, &other), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_DURABLE);
    qr__check_close(&c);

    qr__check_init(&c);
    assert_int_equal(applied(&c, 1, 7, 2, hash), 0);
    assert_int_equal(qr__check_overwrite(&c, 2, 7, 2, hash, NULL), QR_EPROTO);
    qr__check_close(&c);
}

static void test_check_keeps_the_first_violation(void **state)
{
    (void)state;
    struct qr_sim_check c;
    qr__check_init(&c);
    assert_int_equal(qr__check_leader(&c, 1, 1), 0);
    assert_int_equal(qr__check_leader(&c, 1, 2), QR_EPROTO);
    assert_int_equal(applied(&c, 1, 1, 1, 1), 0);
    assert_int_equal(applied(&c, 1, 1, 1, 2), QR_EPROTO);
    assert_string_equal(c.check_name, QR_SIM_CHECK_ELECTION);
    qr__check_close(&c);
}

static void test_check_entry_hash_depends_on_type_and_payload(void **state)
{
    (void)state;
    uint8_t a[2] = {1, 2};
    uint8_t b[2] = {1, 3};
    struct qr_entry x = {.term = 1, .index = 1, .type = QR_ENTRY_NORMAL, .data = {a, 2}};
    struct qr_entry y = x;
    y.data.base = b;
    struct qr_entry z = x;
    z.type = QR_ENTRY_CONFIG;
    struct qr_entry w = x;
    w.term = 9; /* Term and index are compared separately, not hashed. */
    assert_true(qr__check_entry_hash(&x) != qr__check_entry_hash(&y));
    assert_true(qr__check_entry_hash(&x) != qr__check_entry_hash(&z));
    assert_true(qr__check_entry_hash(&x) == qr__check_entry_hash(&w));
}

/* ---- Records and trace ---------------------------------------------------------------- */

static void test_map_stores_overwrites_and_stops_at_its_limit(void **state)
{
    (void)state;
    struct qr_sim_map m;
    qr__sim_map_init(&m, 1000);
    for (uint64_t i = 0; i < 1000; i++) {
        assert_int_equal(qr__sim_map_put(&m, i, i * 3, i + 1, i + 2), 0);
    }
    assert_int_equal(qr__sim_map_put(&m, 5000, 0, 1, 1), QR_EBUSY);
    assert_int_equal(qr__sim_map_put(&m, 7, 21, 70, 71), 0); /* Overwrite needs no room. */
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t x = 0;
        uint64_t y = 0;
        assert_true(qr__sim_map_get(&m, i, i * 3, &x, &y));
        assert_int_equal(x, i == 7 ? 70 : i + 1);
        assert_int_equal(y, i == 7 ? 71 : i + 2);
    }
    assert_false(qr__sim_map_get(&m, 1, 4, NULL, NULL));
    assert_int_equal(m.count, 1000);
    qr__sim_map_close(&m);
    struct qr_sim_map empty;
    qr__sim_map_init(&empty, 1);
    assert_false(qr__sim_map_get(&empty, 0, 0, NULL, NULL));
    qr__sim_map_close(&empty);
}

static void test_trace_keeps_the_last_lines_and_hashes_them_all(void **state)
{
    (void)state;
    static struct qr_sim_trace a;
    static struct qr_sim_trace b;
    qr__trace_init(&a, NULL);
    qr__trace_init(&b, NULL);
    for (int i = 0; i < 100; i++) {
        qr__trace_event(&a, (uint64_t)i * 100, "event %d", i);
        qr__trace_event(&b, (uint64_t)i * 100, "event %d", i);
    }
    assert_int_equal(a.count, 100);
    assert_true(a.hash == b.hash);
    qr__trace_event(&b, 10000, "one more");
    assert_true(a.hash != b.hash);
    char buf[4096];
    FILE *out = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(out);
    qr__trace_dump(&a, out, 3);
    assert_int_equal(fclose(out), 0);
    assert_non_null(strstr(buf, "event 97"));
    assert_non_null(strstr(buf, "event 99"));
    assert_null(strstr(buf, "event 96"));
}

static void test_faults_parse_and_format_round_trip(void **state)
{
    (void)state;
    uint32_t mask = 0;
    char errmsg[QR_ERRMSG_SIZE] = "";
    assert_int_equal(qr__sim_faults_parse("all", &mask, errmsg), 0);
    assert_int_equal(mask, QR_SIM_FAULTS_ALL);
    assert_int_equal(qr__sim_faults_parse("none", &mask, errmsg), 0);
    assert_int_equal(mask, 0);
    assert_int_equal(qr__sim_faults_parse("crash,loss", &mask, errmsg), 0);
    assert_int_equal(mask, QR_SIM_FAULT_CRASH | QR_SIM_FAULT_LOSS);
    char text[128];
    qr__sim_faults_format(mask, text, sizeof(text));
    assert_string_equal(text, "loss,crash");
    qr__sim_faults_format(QR_SIM_FAULTS_ALL, text, sizeof(text));
    assert_int_equal(qr__sim_faults_parse(text, &mask, errmsg), 0);
    assert_int_equal(mask, QR_SIM_FAULTS_ALL);
    qr__sim_faults_format(0, text, sizeof(text));
    assert_string_equal(text, "none");
    assert_int_equal(qr__sim_faults_parse("crash,bogus", &mask, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "bogus"));
    assert_int_equal(qr__sim_faults_parse("", &mask, errmsg), QR_EINVAL);
    assert_int_equal(qr__sim_faults_parse("crash,", &mask, errmsg), QR_EINVAL);
}

/* ---- Whole runs ------------------------------------------------------------------------ */

static void test_sim_refuses_bad_options(void **state)
{
    (void)state;
    struct qr_sim_result r;
    struct qr_sim_opts opts = {.seed = 1, .nodes_count = 4, .faults = QR_SIM_FAULTS_ALL};
    assert_int_equal(qr__sim_run(&opts, &r), QR_EINVAL);
    opts.nodes_count = 3;
    opts.ticks = QR_SIM_TICKS_MAX + 1;
    assert_int_equal(qr__sim_run(&opts, &r), QR_EINVAL);
    opts.ticks = 10;
    opts.faults = 1u << 20;
    assert_int_equal(qr__sim_run(&opts, &r), QR_EINVAL);
}

static void test_sim_same_seed_gives_the_same_run(void **state)
{
    (void)state;
    struct qr_sim_opts opts = {.seed = 42, .ticks = SHORT_TICKS, .faults = QR_SIM_FAULTS_ALL};
    struct qr_sim_result first;
    struct qr_sim_result second;
    assert_int_equal(qr__sim_run(&opts, &first), 0);
    assert_int_equal(qr__sim_run(&opts, &second), 0);
    assert_true(first.events_count > 1000);
    assert_true(first.trace_hash == second.trace_hash);
    assert_int_equal(first.events_count, second.events_count);
    assert_int_equal(first.ops_completed, second.ops_completed);
    assert_string_equal(first.replay, second.replay);
    opts.seed = 43;
    struct qr_sim_result other;
    assert_int_equal(qr__sim_run(&opts, &other), 0);
    assert_true(other.trace_hash != first.trace_hash);
}

static void test_sim_replay_with_spelled_out_options_is_the_same_run(void **state)
{
    (void)state;
    /* The replay command names nodes and faults explicitly; it must reproduce the run. */
    struct qr_sim_opts opts = {.seed = 9, .ticks = SHORT_TICKS, .faults = QR_SIM_FAULTS_ALL};
    struct qr_sim_result chosen;
    assert_int_equal(qr__sim_run(&opts, &chosen), 0);
    opts.nodes_count = chosen.nodes_count;
    opts.faults = chosen.faults;
    opts.is_faults_exact = true;
    struct qr_sim_result spelled;
    assert_int_equal(qr__sim_run(&opts, &spelled), 0);
    assert_true(chosen.trace_hash == spelled.trace_hash);
    assert_string_equal(chosen.replay, spelled.replay);
}

static void test_sim_fault_free_run_passes_every_check(void **state)
{
    (void)state;
    struct qr_sim_opts opts = {.seed = 1, .nodes_count = 3, .ticks = SHORT_TICKS, .faults = 0};
    struct qr_sim_result r;
    assert_int_equal(qr__sim_run(&opts, &r), 0);
    if (r.is_failed) {
        fail_msg("%s: %s (%s)", r.check, r.details, r.replay);
    }
    assert_true(r.ops_completed > 100);
    assert_int_equal(r.ops_indeterminate, 0);
    assert_true(r.commit_index_max > 50);
    assert_int_equal(r.lin_verdict, 0);
    assert_non_null(strstr(r.replay, "--seed 1 --nodes 3"));
}

/* Runs seeds until a planted bug is caught; returns the check that caught it. */
static const char *first_catch(enum qr_sim_bug bug, uint32_t faults, char *check, size_t size)
{
    for (uint64_t seed = 1; seed <= BUG_SEEDS_MAX; seed++) {
        struct qr_sim_opts opts = {
            .seed = seed, .ticks = 300, .faults = faults, .is_faults_exact = true, .bug = bug};
        struct qr_sim_result r;
        assert_int_equal(qr__sim_run(&opts, &r), 0);
        if (r.is_failed) {
            (void)snprintf(check, size, "%s", r.check);
            return check;
        }
    }
    return NULL;
}

static void test_sim_catches_stale_reads_as_linearizability_violations(void **state)
{
    (void)state;
    char check[64];
    const char *caught =
        first_catch(QR_SIM_BUG_STALE_READ, QR_SIM_FAULT_PARTITION, check, sizeof(check));
    assert_non_null(caught);
    assert_string_equal(caught, "linearizability");
}

static void test_sim_catches_a_disk_that_forgets(void **state)
{
    (void)state;
    char check[64];
    const char *caught = first_catch(
        QR_SIM_BUG_AMNESIA, QR_SIM_FAULT_CRASH | QR_SIM_FAULT_PARTITION, check, sizeof(check));
    assert_non_null(caught);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_election_safety_refuses_two_leaders_in_one_term),
        cmocka_unit_test(test_check_log_matching_refuses_two_payloads_at_one_index_and_term),
        cmocka_unit_test(test_check_logs_match_refuses_agreement_after_a_difference),
        cmocka_unit_test(test_check_state_machine_refuses_two_entries_at_one_index),
        cmocka_unit_test(test_check_state_refuses_two_states_after_one_index),
        cmocka_unit_test(test_check_leader_completeness_refuses_a_leader_missing_a_commit),
        cmocka_unit_test(test_check_leader_completeness_spares_leaders_of_older_terms),
        cmocka_unit_test(test_check_requests_refuse_double_and_failed_application),
        cmocka_unit_test(test_check_overwrite_refuses_losing_a_durable_committed_entry),
        cmocka_unit_test(test_check_keeps_the_first_violation),
        cmocka_unit_test(test_check_entry_hash_depends_on_type_and_payload),
        cmocka_unit_test(test_map_stores_overwrites_and_stops_at_its_limit),
        cmocka_unit_test(test_trace_keeps_the_last_lines_and_hashes_them_all),
        cmocka_unit_test(test_faults_parse_and_format_round_trip),
        cmocka_unit_test(test_sim_refuses_bad_options),
        cmocka_unit_test(test_sim_same_seed_gives_the_same_run),
        cmocka_unit_test(test_sim_replay_with_spelled_out_options_is_the_same_run),
        cmocka_unit_test(test_sim_fault_free_run_passes_every_check),
        cmocka_unit_test(test_sim_catches_stale_reads_as_linearizability_violations),
        cmocka_unit_test(test_sim_catches_a_disk_that_forgets),
    };
    return cmocka_run_group_tests_name("sim", tests, test_alloc_setup, test_alloc_teardown);
}
