/*
 * Unit tests of the consensus core, driven through the in-memory cluster of
 * tests/lib/test_cluster.h. Each test is a short deterministic scenario.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "quorum/err.h"
#include "test_cluster.h"

static bool applied_has(const struct tc_node *n, const char *text)
{
    for (size_t i = 0; i < n->applied_count; i++) {
        const struct qr_entry *e = &n->applied[i];
        if (e->type == QR_ENTRY_NORMAL && e->data.len == strlen(text) &&
            memcmp(e->data.base, text, e->data.len) == 0) {
            return true;
        }
    }
    return false;
}

static void test_core_single_node_elects_itself_and_commits(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 1, 1);
    tc_elect(&c, 1);
    assert_int_equal(tc_leader(&c), 1);
    assert_int_equal(tc_propose(&c, 1, "a"), 0);
    tc_stabilize(&c, 10);
    assert_true(applied_has(tc_node(&c, 1), "a"));
    tc_close(&c);
}

static void test_core_three_nodes_replicate_and_apply_the_same_entries(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    assert_int_equal(tc_leader(&c), 1);
    assert_int_equal(tc_propose(&c, 1, "x=1"), 0);
    assert_int_equal(tc_propose(&c, 1, "x=2"), 0);
    tc_stabilize(&c, 20);
    tc_tick_all(&c, 2); /* Heartbeats carry the commit index to followers. */
    for (qr_node_id id = 1; id <= 3; id++) {
        struct tc_node *n = tc_node(&c, id);
        assert_true(applied_has(n, "x=1"));
        assert_true(applied_has(n, "x=2"));
        assert_int_equal(n->applied_count, tc_node(&c, 1)->applied_count);
        for (size_t i = 0; i < n->applied_count; i++) {
            assert_int_equal(n->applied[i].index, tc_node(&c, 1)->applied[i].index);
            assert_int_equal(n->applied[i].term, tc_node(&c, 1)->applied[i].term);
        }
    }
    assert_int_equal(tc_propose(&c, 2, "no"), QR_ENOTLEADER);
    tc_close(&c);
}

static void test_core_elections_happen_by_timeout(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_tick_all(&c, 40);
    qr_node_id leader = tc_leader(&c);
    assert_int_not_equal(leader, 0);
    tc_close(&c);
}

static void test_core_new_leader_after_crash_keeps_committed_entries(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    assert_int_equal(tc_propose(&c, 1, "keep"), 0);
    tc_stabilize(&c, 20);
    tc_crash(&c, 1);
    tc_tick_all(&c, 40);
    qr_node_id leader = tc_leader(&c);
    assert_true(leader == 2 || leader == 3);
    assert_int_equal(tc_propose(&c, leader, "after"), 0);
    tc_stabilize(&c, 20);
    assert_true(applied_has(tc_node(&c, leader), "keep"));
    assert_true(applied_has(tc_node(&c, leader), "after"));
    tc_restart(&c, 1);
    tc_tick_all(&c, 5);
    assert_true(applied_has(tc_node(&c, 1), "keep"));
    assert_true(applied_has(tc_node(&c, 1), "after"));
    tc_close(&c);
}

static void test_core_partitioned_prevote_candidate_does_not_raise_its_term(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    qr_term term = tc_status(&c, 1).term;
    tc_isolate(&c, 3, true);
    tc_tick_all(&c, 100);
    assert_int_equal(tc_status(&c, 3).term, term);
    tc_isolate(&c, 3, false);
    tc_tick_all(&c, 5);
    /* The returning node did not disrupt the healthy leader. */
    assert_int_equal(tc_leader(&c), 1);
    assert_int_equal(tc_status(&c, 1).term, term);
    tc_close(&c);
}

static void test_core_leader_without_quorum_steps_down(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    tc_isolate(&c, 1, true);
    tc_tick_all(&c, 30);
    assert_int_not_equal(tc_status(&c, 1).role, QR_ROLE_LEADER);
    /* The other two elected a leader of their own. */
    qr_node_id leader = tc_leader(&c);
    assert_true(leader == 2 || leader == 3);
    tc_close(&c);
}

static void test_core_vote_is_not_sent_before_it_is_durable(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_stabilize(&c, 5); /* Persist the bootstrap entry first. */
    tc_node(&c, 2)->auto_persist = false;
    tc_node(&c, 3)->auto_persist = false;
    tc_node(&c, 1)->auto_persist = true;
    qr_core_campaign(tc_node(&c, 1)->core);
    tc_stabilize(&c, 20); /* Pre-votes need nothing durable, so node 1 asks for real votes. */
    tc_stabilize(&c, 20);
    assert_int_equal(tc_status(&c, 1).role, QR_ROLE_CANDIDATE);
    tc_persist(&c, 2);
    tc_stabilize(&c, 20);
    assert_int_equal(tc_leader(&c), 1);
    tc_persist(&c, 3);
    tc_close(&c);
}

static void test_core_leader_counts_its_own_entry_only_once_persisted(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    tc_crash(&c, 3);
    tc_node(&c, 1)->auto_persist = false;
    tc_node(&c, 2)->auto_persist = false;
    qr_index before = tc_status(&c, 1).commit;
    assert_int_equal(tc_propose(&c, 1, "slow"), 0);
    tc_stabilize(&c, 20);
    tc_persist(&c, 2); /* The follower is durable, the leader is not: 1 of 3 votes. */
    tc_stabilize(&c, 20);
    assert_int_equal(tc_status(&c, 1).commit, before);
    tc_persist(&c, 1);
    tc_stabilize(&c, 20);
    assert_true(tc_status(&c, 1).commit > before);
    tc_close(&c);
}

static void test_core_reads_are_confirmed_by_a_quorum(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    assert_int_equal(qr_core_read_index(tc_node(&c, 1)->core, 77), 0);
    tc_isolate(&c, 1, true);
    tc_stabilize(&c, 20);
    assert_int_equal(tc_node(&c, 1)->reads_done_count, 0); /* No confirmation yet. */
    tc_isolate(&c, 1, false);
    tc_tick_all(&c, 1);
    assert_int_equal(tc_node(&c, 1)->reads_done_count, 1);
    assert_int_equal(tc_node(&c, 1)->reads_done[0], 77);
    /* A follower's read goes through the leader. */
    assert_int_equal(qr_core_read_index(tc_node(&c, 2)->core, 78), 0);
    tc_stabilize(&c, 20);
    tc_tick_all(&c, 1);
    assert_int_equal(tc_node(&c, 2)->reads_done_count, 1);
    assert_int_equal(tc_node(&c, 2)->reads_done[0], 78);
    assert_true(tc_node(&c, 2)->reads_index[0] >= 2);
    tc_close(&c);
}

static void test_core_read_without_leader_is_refused(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    assert_int_equal(qr_core_read_index(tc_node(&c, 2)->core, 1), QR_ENOTLEADER);
    tc_close(&c);
}

static void test_core_stale_leader_steps_down_when_it_hears_a_newer_term(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    tc_isolate(&c, 1, true);
    tc_tick_all(&c, 12); /* Let the followers' leader lease run out. */
    tc_elect(&c, 2);
    assert_int_equal(tc_status(&c, 2).role, QR_ROLE_LEADER);
    /* The old leader proposes; the entry never commits. */
    assert_int_equal(tc_propose(&c, 1, "lost"), 0);
    tc_isolate(&c, 1, false);
    tc_tick_all(&c, 3);
    assert_int_equal(tc_leader(&c), 2);
    assert_false(applied_has(tc_node(&c, 1), "lost"));
    assert_false(applied_has(tc_node(&c, 2), "lost"));
    tc_close(&c);
}

static void test_core_membership_add_learner_promote_and_remove(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 4, 3);
    tc_elect(&c, 1);
    struct qr_config next = tc_status(&c, 1).config;
    next.learners[next.learners_count++] = 4;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_core_change_config(tc_node(&c, 1)->core, &next, errmsg), 0);
    tc_stabilize(&c, 50);
    tc_tick_all(&c, 3);
    assert_int_equal(tc_status(&c, 4).role, QR_ROLE_LEARNER);
    assert_int_equal(tc_status(&c, 4).config.learners_count, 1);
    /* Promote 4 and remove 3 at once: a joint change. */
    struct qr_config promoted;
    memset(&promoted, 0, sizeof(promoted));
    promoted.voters_count = 3;
    promoted.voters[0] = 1;
    promoted.voters[1] = 2;
    promoted.voters[2] = 4;
    assert_int_equal(qr_core_change_config(tc_node(&c, 1)->core, &promoted, errmsg), 0);
    assert_int_equal(qr_core_change_config(tc_node(&c, 1)->core, &promoted, errmsg), QR_EBUSY);
    tc_tick_all(&c, 5);
    struct qr_core_status s = tc_status(&c, 1);
    assert_int_equal(s.config.voters_old_count, 0);
    assert_int_equal(s.config.voters_count, 3);
    assert_int_equal(s.config.voters[2], 4);
    assert_int_equal(tc_status(&c, 4).role, QR_ROLE_FOLLOWER);
    /* The cluster still commits without node 3. */
    tc_crash(&c, 3);
    assert_int_equal(tc_propose(&c, 1, "after-change"), 0);
    tc_tick_all(&c, 2);
    assert_true(applied_has(tc_node(&c, 4), "after-change"));
    tc_close(&c);
}

static void test_core_leadership_transfer_moves_the_leader(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    assert_int_equal(tc_propose(&c, 1, "before"), 0);
    tc_stabilize(&c, 20);
    assert_int_equal(qr_core_transfer_leader(tc_node(&c, 1)->core, 3), 0);
    tc_stabilize(&c, 50);
    assert_int_equal(tc_leader(&c), 3);
    assert_int_equal(qr_core_transfer_leader(tc_node(&c, 3)->core, 3), QR_EINVAL);
    assert_int_equal(qr_core_transfer_leader(tc_node(&c, 1)->core, 2), QR_ENOTLEADER);
    tc_close(&c);
}

static void test_core_lagging_follower_catches_up_by_snapshot(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    tc_crash(&c, 3);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tc_propose(&c, 1, "fill"), 0);
        tc_stabilize(&c, 10);
    }
    struct qr_core *leader = tc_node(&c, 1)->core;
    struct qr_core_status s = tc_status(&c, 1);
    struct qr_snapshot_meta meta;
    assert_int_equal(qr_core_snapshot_meta(leader, s.applied, &meta), 0);
    meta.size = 0;
    meta.crc = 0;
    assert_int_equal(qr_core_snapshot_taken(leader, &meta, 0), 0);
    assert_int_equal(tc_status(&c, 1).first_index, s.applied + 1);
    tc_restart(&c, 3);
    tc_tick_all(&c, 10);
    struct qr_core_status f = tc_status(&c, 3);
    assert_int_equal(f.snapshot_index, s.applied);
    assert_true(f.commit >= s.applied);
    assert_int_equal(tc_propose(&c, 1, "later"), 0);
    tc_tick_all(&c, 3);
    assert_true(applied_has(tc_node(&c, 3), "later"));
    tc_close(&c);
}

static void test_core_uncommitted_bytes_limit_refuses_proposals(void **state)
{
    (void)state;
    struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_elect(&c, 1);
    tc_isolate(&c, 1, true);
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    int rv = 0;
    int accepted = 0;
    for (int i = 0; i < 100000 && rv == 0; i++) {
        rv = tc_propose(&c, 1, big);
        accepted += rv == 0;
    }
    assert_int_equal(rv, QR_EBUSY);
    assert_true(accepted > 1000); /* 64 MiB / 4 KiB is about 16000. */
    tc_close(&c);
}

/* ---- Several persist batches in flight (opts.persist_batches_max) ---- */

/* One ready/advance round; returns the persist batch handed out (0: none) and counts the
 * entries handed out for apply into *applied_io. */
static uint64_t round_trip(struct qr_core *core, size_t *applied_io)
{
    uint64_t seq = 0;
    while (qr_core_has_ready(core)) {
        struct qr_ready rd;
        qr_core_ready(core, &rd);
        if (rd.persist_seq != 0) {
            assert_int_equal(seq, 0); /* At most one new batch per round here. */
            seq = rd.persist_seq;
        }
        *applied_io += rd.committed_count;
        qr_core_advance(core);
    }
    return seq;
}

static void test_core_persist_batches_overlap_and_complete_together(void **state)
{
    (void)state;
    struct qr_core_opts o;
    qr_core_opts_default(&o, 1);
    o.persist_batches_max = QR_CORE_PERSIST_BATCHES_MAX + 1;
    struct qr_config boot;
    memset(&boot, 0, sizeof(boot));
    boot.voters_count = 1;
    boot.voters[0] = 1;
    struct qr_core_state st;
    memset(&st, 0, sizeof(st));
    st.config = &boot;
    struct qr_core *core = NULL;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_core_create(&o, &st, &core, errmsg), QR_EINVAL);
    assert_non_null(strstr(errmsg, "persist_batches_max"));
    o.persist_batches_max = 3;
    assert_int_equal(qr_core_create(&o, &st, &core, errmsg), 0);

    size_t applied = 0;
    struct qr_core_status cs;
    qr_core_campaign(core);
    assert_int_equal(round_trip(core, &applied), 1); /* Term, vote, bootstrap entry. */
    assert_int_equal(qr_core_persisted(core, 1), 0);
    assert_int_equal(round_trip(core, &applied), 2); /* Leader now: its no-op. */
    qr_core_status(core, &cs);
    assert_int_equal(cs.role, QR_ROLE_LEADER);
    qr_index noop = cs.last_index;

    /* One proposal per round: each round hands out a batch while the earlier ones are
     * still being written, until three are outstanding; then "c" waits. */
    qr_index a = 0;
    qr_index b = 0;
    qr_index c = 0;
    assert_int_equal(qr_core_propose(core, (struct qr_buf){(uint8_t *)"a", 1}, &a), 0);
    assert_int_equal(round_trip(core, &applied), 3);
    assert_int_equal(qr_core_propose(core, (struct qr_buf){(uint8_t *)"b", 1}, &b), 0);
    assert_int_equal(round_trip(core, &applied), 4);
    assert_int_equal(qr_core_propose(core, (struct qr_buf){(uint8_t *)"c", 1}, &c), 0);
    assert_int_equal(round_trip(core, &applied), 0);
    qr_core_status(core, &cs);
    assert_true(cs.durable < noop && cs.commit < noop); /* A lone voter commits what is
                                                           durable only. */

    /* Reports: never one not handed out, never one reported already; one report finishes
     * every batch up to it, and what they wrote becomes durable, committed, applied. */
    assert_int_equal(qr_core_persisted(core, 5), QR_EINVAL);
    assert_int_equal(qr_core_persisted(core, 3), 0); /* Batches 2 and 3. */
    assert_int_equal(qr_core_persisted(core, 3), QR_EINVAL);
    assert_int_equal(qr_core_persisted(core, 1), QR_EINVAL);
    size_t applied_before = applied;
    assert_int_equal(round_trip(core, &applied), 5); /* Room again: "c" goes. */
    qr_core_status(core, &cs);
    assert_int_equal(cs.durable, a);
    assert_int_equal(cs.commit, a);
    assert_int_equal(applied - applied_before, (size_t)(a - noop + 1));
    assert_int_equal(qr_core_persisted(core, 5), 0); /* Batches 4 and 5. */
    (void)round_trip(core, &applied);
    qr_core_status(core, &cs);
    assert_true(b == a + 1 && c == b + 1);
    assert_int_equal(cs.durable, c);
    assert_int_equal(cs.commit, c);
    assert_int_equal(cs.applied, c);
    qr_core_destroy(core);
}

static void test_core_config_codec_round_trips_and_refuses_garbage(void **state)
{
    (void)state;
    struct qr_config c;
    memset(&c, 0, sizeof(c));
    c.voters_count = 2;
    c.voters[0] = 1;
    c.voters[1] = 5;
    c.learners_count = 1;
    c.learners[0] = 9;
    uint8_t buf[1024];
    size_t size = qr_core_config_encoded_size(&c);
    qr_core_config_encode(&c, buf);
    struct qr_config d;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_core_config_decode(buf, size, &d, errmsg), 0);
    assert_memory_equal(&c, &d, sizeof(c));
    assert_int_equal(qr_core_config_decode(buf, size - 1, &d, errmsg), QR_ECORRUPT);
    buf[0] = 9;
    assert_int_equal(qr_core_config_decode(buf, size, &d, errmsg), QR_EVERSION);
    buf[0] = 1;
    buf[4] = 200; /* voters_count far beyond the limit */
    assert_int_equal(qr_core_config_decode(buf, size, &d, errmsg), QR_ECORRUPT);
    buf[4] = 2;
    buf[16] = 0; /* first voter id becomes 0 */
    assert_int_equal(qr_core_config_decode(buf, size, &d, errmsg), QR_ECORRUPT);
    assert_int_equal(qr_core_config_decode(NULL, 0, &d, errmsg), QR_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_single_node_elects_itself_and_commits),
        cmocka_unit_test(test_core_three_nodes_replicate_and_apply_the_same_entries),
        cmocka_unit_test(test_core_elections_happen_by_timeout),
        cmocka_unit_test(test_core_new_leader_after_crash_keeps_committed_entries),
        cmocka_unit_test(test_core_partitioned_prevote_candidate_does_not_raise_its_term),
        cmocka_unit_test(test_core_leader_without_quorum_steps_down),
        cmocka_unit_test(test_core_vote_is_not_sent_before_it_is_durable),
        cmocka_unit_test(test_core_leader_counts_its_own_entry_only_once_persisted),
        cmocka_unit_test(test_core_reads_are_confirmed_by_a_quorum),
        cmocka_unit_test(test_core_read_without_leader_is_refused),
        cmocka_unit_test(test_core_stale_leader_steps_down_when_it_hears_a_newer_term),
        cmocka_unit_test(test_core_membership_add_learner_promote_and_remove),
        cmocka_unit_test(test_core_leadership_transfer_moves_the_leader),
        cmocka_unit_test(test_core_lagging_follower_catches_up_by_snapshot),
        cmocka_unit_test(test_core_uncommitted_bytes_limit_refuses_proposals),
        cmocka_unit_test(test_core_persist_batches_overlap_and_complete_together),
        cmocka_unit_test(test_core_config_codec_round_trips_and_refuses_garbage),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
