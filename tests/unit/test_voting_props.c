/*
 * tests/unit/test_voting_props.c: voting/ checked against brute force.
 *
 * Layer: tests. For every small configuration (up to 7 voters, weights 1 to 3,
 * every weight vector) this file builds a model of the quorum system straight
 * from the prose of include/quorum/voting.h and compares each query of the
 * library with a brute-force answer over all voter subsets: is_quorum, tally,
 * committed_index, faults_tolerated, quorums_intersect, quorum_size_min and
 * availability, plus which configurations the constructors must refuse. The
 * brute force never looks at the library's thresholds; it derives its own
 * from the header's definitions ("more than half the weight", "ceil((n+f+1)/2)
 * voters", "reaches the threshold"). It must never call the library to decide
 * what the library should answer. No recursion: subsets are bitmasks.
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

/* Most voters in one brute-forced configuration (the union, for a joint one). */
#define UNIVERSE_MAX 7
/* Subsets of the universe, as bitmasks over universe positions. */
#define SUBSETS_MAX (1u << UNIVERSE_MAX)
/* The weights the exhaustive sweeps use: 1 ... WEIGHT_SWEEP_MAX. */
#define WEIGHT_SWEEP_MAX 3
/* Phases are 1 ... 3 in the header; tables are indexed by phase - 1. */
#define PHASES_COUNT 3
/* Room for one generated list of ids, votes or matches (voters, repeats and strangers). */
#define RECORDS_MAX (4 * UNIVERSE_MAX + 4)
/* Room for every voter id of a configuration. */
#define IDS_MAX ((size_t)QR_VOTING_GROUPS_MAX * QR_VOTING_VOTERS_MAX)
/* The heaviest group the sweeps build. */
#define WEIGHT_TOTAL_SWEEP_MAX ((uint64_t)UNIVERSE_MAX * WEIGHT_SWEEP_MAX)
/* An id no generated configuration uses. */
#define STRANGER_ID 1000
/* Match indexes: every assignment of 0 ... GRID_INDEX_MAX up to GRID_VOTERS_MAX voters. */
#define GRID_INDEX_MAX  3
#define GRID_VOTERS_MAX 5
/* Random match vectors for larger configurations, indexes 0 ... RANDOM_INDEX_MAX. */
#define RANDOM_MATCHES_COUNT 200
#define RANDOM_INDEX_MAX     7
/* Failure probabilities for availability; 0 and 1 are the exact ends. */
static const double p_fails[] = {0.0, 0.05, 0.1, 0.3, 0.5, 0.77, 1.0};
#define P_FAILS_COUNT          (sizeof(p_fails) / sizeof(p_fails[0]))
#define AVAILABILITY_TOLERANCE 1e-9
/* Ids given to single-group configurations, in this (unsorted) order. */
static const qr_node_id scrambled_ids[UNIVERSE_MAX] = {5, 2, 9, 1, 7, 3, 8};

/* ---- The model: a configuration described independently of the library ------------------ */

struct model_group {
    enum qr_voting_rule rule;
    uint32_t voters_count;
    struct qr_voter voters[UNIVERSE_MAX]; /* As given to the constructor, any order. */
    uint32_t faults;                      /* f for BYZANTINE. */
    uint64_t election_weight_min;         /* FLEXIBLE only. */
    uint64_t replication_weight_min;      /* FLEXIBLE only. */
};

struct model {
    uint32_t groups_count;
    struct model_group groups[QR_VOTING_GROUPS_MAX];
    /* Derived by model_finish. */
    uint32_t universe_count;
    qr_node_id universe[UNIVERSE_MAX];      /* Every voter of every group, ascending. */
    uint32_t members[QR_VOTING_GROUPS_MAX]; /* Universe positions in each group. */
    uint32_t weights[QR_VOTING_GROUPS_MAX][UNIVERSE_MAX]; /* By universe position; 0: absent. */
    uint64_t weight_total[QR_VOTING_GROUPS_MAX];
    bool group_quorum[QR_VOTING_GROUPS_MAX][PHASES_COUNT][SUBSETS_MAX];
    bool quorum[PHASES_COUNT][SUBSETS_MAX]; /* A quorum of every group. */
};

/* How many cases each property checked, for the summary lines. */
struct counts {
    uint64_t configs;
    uint64_t init;
    uint64_t shape;
    uint64_t is_quorum;
    uint64_t intersect;
    uint64_t committed;
    uint64_t tally;
    uint64_t faults;
    uint64_t size_min;
    uint64_t availability;
    uint64_t voter_ids;
};

/* A small local generator (splitmix64) so the random cases never change between runs. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state += 0x9E3779B97F4A7C15u;
    uint64_t z = rng_state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint32_t rng_below(uint32_t bound)
{
    return (uint32_t)(rng_next() % bound);
}

static uint32_t popcount(uint32_t mask)
{
    uint32_t count = 0;
    for (; mask != 0; mask &= mask - 1) {
        count++;
    }
    return count;
}

/* The header's definition of one group's quorum, from its prose and nothing else. */
static bool
brute_group_is_quorum(const struct model *m, uint32_t g, enum qr_voting_phase phase, uint32_t mask)
{
    const struct model_group *group = &m->groups[g];
    uint64_t weight = 0;
    uint64_t present = 0;
    for (uint32_t i = 0; i < m->universe_count; i++) {
        if ((mask >> i & 1u) != 0 && m->weights[g][i] != 0) {
            weight += m->weights[g][i];
            present++;
        }
    }
    bool election = false;
    bool replication = false;
    switch (group->rule) {
    case QR_VOTING_MAJORITY:
        /* "More than half the total weight." */
        election = 2 * weight > m->weight_total[g];
        replication = election;
        break;
    case QR_VOTING_FLEXIBLE:
        /* "A set is a quorum ... when the weight of its members reaches the threshold." */
        election = weight >= group->election_weight_min;
        replication = weight >= group->replication_weight_min;
        break;
    case QR_VOTING_BYZANTINE:
        /* "Any ceil((n+f+1)/2) voters": present >= (n+f+1)/2 rounded up. */
        election = 2 * present >= (uint64_t)group->voters_count + group->faults + 1;
        replication = election;
        break;
    default:
        fail_msg("model group %u has rule %d", g, (int)group->rule);
    }
    switch (phase) {
    case QR_VOTING_ELECTION:
        return election;
    case QR_VOTING_REPLICATION:
        return replication;
    default:
        return election && replication;
    }
}

static void model_build_universe(struct model *m)
{
    m->universe_count = 0;
    for (uint32_t g = 0; g < m->groups_count; g++) {
        for (uint32_t i = 0; i < m->groups[g].voters_count; i++) {
            qr_node_id id = m->groups[g].voters[i].id;
            bool seen = false;
            for (uint32_t u = 0; u < m->universe_count; u++) {
                seen = seen || m->universe[u] == id;
            }
            if (!seen) {
                assert_true(m->universe_count < UNIVERSE_MAX);
                m->universe[m->universe_count++] = id;
            }
        }
    }
    /* Insertion sort: the universe is tiny. */
    for (uint32_t i = 1; i < m->universe_count; i++) {
        for (uint32_t j = i; j > 0 && m->universe[j - 1] > m->universe[j]; j--) {
            qr_node_id t = m->universe[j];
            m->universe[j] = m->universe[j - 1];
            m->universe[j - 1] = t;
        }
    }
}

/* Derives the universe, the weights by position and every quorum table. */
static void model_finish(struct model *m)
{
    model_build_universe(m);
    for (uint32_t g = 0; g < m->groups_count; g++) {
        m->members[g] = 0;
        m->weight_total[g] = 0;
        memset(m->weights[g], 0, sizeof(m->weights[g]));
        for (uint32_t i = 0; i < m->groups[g].voters_count; i++) {
            for (uint32_t u = 0; u < m->universe_count; u++) {
                if (m->universe[u] == m->groups[g].voters[i].id) {
                    m->weights[g][u] = m->groups[g].voters[i].weight;
                    m->members[g] |= 1u << u;
                }
            }
            m->weight_total[g] += m->groups[g].voters[i].weight;
        }
    }
    uint32_t subsets = 1u << m->universe_count;
    for (uint32_t p = 0; p < PHASES_COUNT; p++) {
        for (uint32_t mask = 0; mask < subsets; mask++) {
            bool all = true;
            for (uint32_t g = 0; g < m->groups_count; g++) {
                bool q = brute_group_is_quorum(m, g, (enum qr_voting_phase)(p + 1), mask);
                m->group_quorum[g][p][mask] = q;
                all = all && q;
            }
            m->quorum[p][mask] = all;
        }
    }
}

static void model_describe(const struct model *m)
{
    for (uint32_t g = 0; g < m->groups_count; g++) {
        const struct model_group *group = &m->groups[g];
        printf("  group %u: %s", g, qr_voting_rule_name(group->rule));
        if (group->rule == QR_VOTING_FLEXIBLE) {
            printf(" election=%llu replication=%llu",
                   (unsigned long long)group->election_weight_min,
                   (unsigned long long)group->replication_weight_min);
        }
        if (group->rule == QR_VOTING_BYZANTINE) {
            printf(" f=%u", group->faults);
        }
        printf(" voters(id:weight)");
        for (uint32_t i = 0; i < group->voters_count; i++) {
            printf(" %llu:%u", (unsigned long long)group->voters[i].id, group->voters[i].weight);
        }
        printf("\n");
    }
}

static void describe_mask(const struct model *m, const char *what, uint32_t mask)
{
    printf("  %s {", what);
    for (uint32_t u = 0; u < m->universe_count; u++) {
        if ((mask >> u & 1u) != 0) {
            printf(" %llu", (unsigned long long)m->universe[u]);
        }
    }
    printf(" }\n");
}

/* Prints the configuration with a headline, then fails the test. */
#define MISMATCH(m, ...)      \
    do {                      \
        printf("MISMATCH: "); \
        printf(__VA_ARGS__);  \
        printf("\n");         \
        model_describe(m);    \
        fail();               \
    } while (0)

/* ---- Building configurations through the library ---------------------------------------- */

static int model_init_group(const struct model_group *group, struct qr_voting *v, char *errmsg)
{
    switch (group->rule) {
    case QR_VOTING_MAJORITY:
        return qr_voting_init_majority(v, group->voters, group->voters_count, errmsg);
    case QR_VOTING_FLEXIBLE:
        return qr_voting_init_flexible(v, group->voters, group->voters_count,
                                       group->election_weight_min, group->replication_weight_min,
                                       errmsg);
    default:
        return qr_voting_init_byzantine(v, group->voters, group->voters_count, group->faults,
                                        errmsg);
    }
}

/* What the header says the thresholds of a built group must be. */
static void brute_thresholds(const struct model_group *group,
                             uint64_t total,
                             uint64_t *election_out,
                             uint64_t *replication_out)
{
    if (group->rule == QR_VOTING_FLEXIBLE) {
        *election_out = group->election_weight_min;
        *replication_out = group->replication_weight_min;
        return;
    }
    /* The least weight that is a quorum: "more than half", or ceil((n+f+1)/2) voters. */
    uint64_t least = 0;
    for (uint64_t w = total + 1; w > 0; w--) {
        bool enough = group->rule == QR_VOTING_MAJORITY
                          ? 2 * (w - 1) > total
                          : 2 * (w - 1) >= (uint64_t)group->voters_count + group->faults + 1;
        if (enough) {
            least = w - 1;
        }
    }
    *election_out = least;
    *replication_out = least;
}

/* A built group holds exactly the model group's voters, sorted, with the header's fields. */
static void check_group_shape(const struct model *m,
                              uint32_t g,
                              const struct qr_voting_group *built,
                              struct counts *counts)
{
    const struct model_group *group = &m->groups[g];
    uint64_t election = 0;
    uint64_t replication = 0;
    brute_thresholds(group, m->weight_total[g], &election, &replication);
    bool ok = built->rule == group->rule && built->voters_count == group->voters_count &&
              built->reserved == 0 && built->weight_total == m->weight_total[g] &&
              built->election_weight_min == election &&
              built->replication_weight_min == replication &&
              built->byzantine_faults == (group->rule == QR_VOTING_BYZANTINE ? group->faults : 0u);
    /* The voters, in ascending id order, are the universe positions of the group. */
    uint32_t slot = 0;
    for (uint32_t u = 0; u < m->universe_count && ok; u++) {
        if (m->weights[g][u] == 0) {
            continue;
        }
        ok = built->voters[slot].id == m->universe[u] &&
             built->voters[slot].weight == m->weights[g][u];
        slot++;
    }
    for (uint32_t i = group->voters_count; i < QR_VOTING_VOTERS_MAX && ok; i++) {
        ok = built->voters[i].id == 0 && built->voters[i].weight == 0;
    }
    if (!ok) {
        MISMATCH(m,
                 "group %u built with rule %d, %u voters, total %llu, thresholds %llu/%llu, "
                 "f %u; want thresholds %llu/%llu",
                 g, (int)built->rule, built->voters_count, (unsigned long long)built->weight_total,
                 (unsigned long long)built->election_weight_min,
                 (unsigned long long)built->replication_weight_min, built->byzantine_faults,
                 (unsigned long long)election, (unsigned long long)replication);
    }
    counts->shape++;
}

/* ---- The properties --------------------------------------------------------------------- */

/* Writes the ids of a subset, plainly or disguised with strangers, repeats and reversal. */
static size_t subset_ids(const struct model *m, uint32_t mask, bool disguised, qr_node_id *ids)
{
    size_t count = 0;
    for (uint32_t u = 0; u < m->universe_count; u++) {
        if ((mask >> u & 1u) != 0) {
            ids[count++] = m->universe[u];
        }
    }
    if (!disguised) {
        return count;
    }
    size_t members = count;
    for (size_t i = 0; i < members / 2; i++) {
        qr_node_id t = ids[i];
        ids[i] = ids[members - 1 - i];
        ids[members - 1 - i] = t;
    }
    for (size_t i = 0; i < members; i++) {
        ids[count++] = ids[i];
    }
    ids[count++] = STRANGER_ID;
    ids[count++] = 0;
    return count;
}

static void check_is_quorum(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    qr_node_id ids[RECORDS_MAX];
    uint32_t subsets = 1u << m->universe_count;
    for (uint32_t mask = 0; mask < subsets; mask++) {
        for (int disguised = 0; disguised <= 1; disguised++) {
            size_t count = subset_ids(m, mask, disguised == 1, ids);
            for (uint32_t p = 0; p < PHASES_COUNT; p++) {
                enum qr_voting_phase phase = (enum qr_voting_phase)(p + 1);
                bool got = qr_voting_is_quorum(v, phase, ids, count);
                if (got != m->quorum[p][mask]) {
                    describe_mask(m, "set", mask);
                    MISMATCH(m, "is_quorum phase %u (disguised %d): got %d, want %d", p + 1,
                             disguised, got, m->quorum[p][mask]);
                }
                c->is_quorum++;
            }
        }
    }
}

/* Every pair of quorums that must overlap shares at least `need` voters of group g. */
static bool brute_group_intersects(const struct model *m, uint32_t g, uint32_t need)
{
    const bool *election = m->group_quorum[g][QR_VOTING_ELECTION - 1];
    const bool *replication = m->group_quorum[g][QR_VOTING_REPLICATION - 1];
    uint32_t subsets = 1u << m->universe_count;
    uint32_t members = m->members[g];
    for (uint32_t a = 0; a < subsets; a++) {
        if ((a & ~members) != 0 || !election[a]) {
            continue;
        }
        for (uint32_t b = 0; b < subsets; b++) {
            if ((b & ~members) != 0 || popcount(a & b) >= need) {
                continue;
            }
            if (election[b] || replication[b]) {
                return false;
            }
        }
    }
    return true;
}

static bool brute_intersects(const struct model *m)
{
    bool all = true;
    for (uint32_t g = 0; g < m->groups_count; g++) {
        bool byzantine = m->groups[g].rule == QR_VOTING_BYZANTINE;
        all = brute_group_intersects(m, g, byzantine ? m->groups[g].faults + 1 : 1) && all;
    }
    return all;
}

static void
check_intersect(const struct qr_voting *v, const struct model *m, bool want, struct counts *c)
{
    bool got = qr_voting_quorums_intersect(v);
    if (got != want) {
        MISMATCH(m, "quorums_intersect: got %d, want %d", got, want);
    }
    c->intersect++;
}

/* The largest i such that the voters whose index is at least i form a replication quorum. */
static qr_index brute_committed(const struct model *m, const qr_index *indexes)
{
    qr_index best = 0;
    for (uint32_t candidate = 0; candidate < m->universe_count; candidate++) {
        qr_index i = indexes[candidate];
        uint32_t holders = 0;
        for (uint32_t u = 0; u < m->universe_count; u++) {
            if (indexes[u] >= i) {
                holders |= 1u << u;
            }
        }
        if (m->quorum[QR_VOTING_REPLICATION - 1][holders] && i > best) {
            best = i;
        }
    }
    return best;
}

/* Records for one match vector; `variant` picks omissions, repeats, strangers and order. */
static size_t match_records(const struct model *m,
                            const qr_index *indexes,
                            uint32_t variant,
                            struct qr_match *records)
{
    size_t count = 0;
    uint32_t n = m->universe_count;
    uint32_t start = variant % n;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t u = (start + k) % n;
        bool omit = indexes[u] == 0 && (variant & 1u) != 0;
        if ((variant & 2u) != 0 && indexes[u] > 0) {
            /* A stale lower record of the same voter, before the real one. */
            records[count++] = (struct qr_match){m->universe[u], indexes[u] - 1};
        }
        if (!omit) {
            records[count++] = (struct qr_match){m->universe[u], indexes[u]};
        }
        if ((variant & 4u) != 0) {
            /* A stale record after it, which must not lower it. */
            records[count++] = (struct qr_match){m->universe[u], 0};
        }
    }
    if ((variant & 8u) != 0) {
        records[count++] = (struct qr_match){STRANGER_ID, 1000};
        records[count++] = (struct qr_match){0, 999};
    }
    return count;
}

static void check_one_committed(const struct qr_voting *v,
                                const struct model *m,
                                const qr_index *indexes,
                                uint32_t variant,
                                struct counts *c)
{
    struct qr_match records[RECORDS_MAX];
    memset(records, 0, sizeof(records)); /* gcc -O2 cannot see that count bounds the reads. */
    size_t count = match_records(m, indexes, variant, records);
    qr_index want = brute_committed(m, indexes);
    qr_index got = qr_voting_committed_index(v, records, count);
    if (got != want) {
        printf("  matches (variant %u):", variant);
        for (size_t i = 0; i < count; i++) {
            printf(" %llu:%llu", (unsigned long long)records[i].id,
                   (unsigned long long)records[i].index);
        }
        printf("\n");
        MISMATCH(m, "committed_index: got %llu, want %llu", (unsigned long long)got,
                 (unsigned long long)want);
    }
    c->committed++;
}

static void check_committed(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    qr_index indexes[UNIVERSE_MAX];
    uint32_t n = m->universe_count;
    if (n <= GRID_VOTERS_MAX) {
        uint32_t assignments = 1;
        for (uint32_t i = 0; i < n; i++) {
            assignments *= GRID_INDEX_MAX + 1;
        }
        for (uint32_t a = 0; a < assignments; a++) {
            uint32_t digits = a;
            for (uint32_t u = 0; u < n; u++) {
                indexes[u] = digits % (GRID_INDEX_MAX + 1);
                digits /= GRID_INDEX_MAX + 1;
            }
            check_one_committed(v, m, indexes, a * 7u, c);
        }
        return;
    }
    for (uint32_t r = 0; r < RANDOM_MATCHES_COUNT; r++) {
        for (uint32_t u = 0; u < n; u++) {
            indexes[u] = rng_below(RANDOM_INDEX_MAX + 1);
        }
        check_one_committed(v, m, indexes, rng_below(16), c);
    }
}

enum ballot { BALLOT_ABSENT = 0, BALLOT_GRANTED = 1, BALLOT_REJECTED = 2 };

/* Records for one assignment of ballots; `variant` adds repeats and strangers. */
static size_t vote_records(const struct model *m,
                           const enum ballot *ballots,
                           uint32_t variant,
                           struct qr_vote *records)
{
    size_t count = 0;
    uint32_t n = m->universe_count;
    uint32_t start = variant % n;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t u = (start + k) % n;
        qr_node_id id = m->universe[u];
        if (ballots[u] == BALLOT_GRANTED) {
            if ((variant & 1u) != 0) {
                records[count++] = (struct qr_vote){id, false};
            }
            records[count++] = (struct qr_vote){id, true};
            if ((variant & 2u) != 0) {
                records[count++] = (struct qr_vote){id, false};
            }
        } else if (ballots[u] == BALLOT_REJECTED) {
            records[count++] = (struct qr_vote){id, false};
            if ((variant & 4u) != 0) {
                records[count++] = (struct qr_vote){id, false};
            }
        }
    }
    if ((variant & 8u) != 0) {
        records[count++] = (struct qr_vote){STRANGER_ID, true};
        records[count++] = (struct qr_vote){0, true};
        records[count++] = (struct qr_vote){STRANGER_ID + 1, false};
    }
    return count;
}

static enum qr_vote_result
brute_tally(const struct model *m, uint32_t p, uint32_t granted, uint32_t absent)
{
    if (m->quorum[p][granted]) {
        return QR_VOTE_WON;
    }
    if (!m->quorum[p][granted | absent]) {
        return QR_VOTE_LOST;
    }
    return QR_VOTE_PENDING;
}

static void check_tally(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    uint32_t n = m->universe_count;
    uint32_t assignments = 1;
    for (uint32_t i = 0; i < n; i++) {
        assignments *= 3;
    }
    enum ballot ballots[UNIVERSE_MAX];
    struct qr_vote records[RECORDS_MAX];
    for (uint32_t a = 0; a < assignments; a++) {
        uint32_t digits = a;
        uint32_t granted = 0;
        uint32_t absent = 0;
        for (uint32_t u = 0; u < n; u++) {
            ballots[u] = (enum ballot)(digits % 3);
            digits /= 3;
            granted |= ballots[u] == BALLOT_GRANTED ? 1u << u : 0u;
            absent |= ballots[u] == BALLOT_ABSENT ? 1u << u : 0u;
        }
        size_t count = vote_records(m, ballots, a * 5u, records);
        for (uint32_t p = 0; p < PHASES_COUNT; p++) {
            enum qr_vote_result want = brute_tally(m, p, granted, absent);
            enum qr_vote_result got =
                qr_voting_tally(v, (enum qr_voting_phase)(p + 1), records, count);
            if (got != want) {
                describe_mask(m, "granted", granted);
                describe_mask(m, "not voted", absent);
                MISMATCH(m, "tally phase %u (variant %u): got %d, want %d", p + 1, a * 5u, (int)got,
                         (int)want);
            }
            c->tally++;
        }
    }
}

/* The largest k such that removing any k voters leaves a quorum of both phases. */
static uint32_t brute_faults_tolerated(const struct model *m)
{
    uint32_t n = m->universe_count;
    uint32_t all = (1u << n) - 1;
    uint32_t best = 0;
    for (uint32_t k = 0; k <= n; k++) {
        bool survives = true;
        for (uint32_t removed = 0; removed <= all; removed++) {
            if (popcount(removed) == k && !m->quorum[QR_VOTING_BOTH - 1][all & ~removed]) {
                survives = false;
            }
        }
        if (survives) {
            best = k;
        }
    }
    return best;
}

static void check_faults(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    uint32_t want = brute_faults_tolerated(m);
    uint32_t got = qr_voting_faults_tolerated(v);
    if (got != want) {
        MISMATCH(m, "faults_tolerated: got %u, want %u", got, want);
    }
    c->faults++;
}

static void check_size_min(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    uint32_t subsets = 1u << m->universe_count;
    for (uint32_t p = 0; p < PHASES_COUNT; p++) {
        uint32_t want = UINT32_MAX;
        for (uint32_t mask = 0; mask < subsets; mask++) {
            if (m->quorum[p][mask] && popcount(mask) < want) {
                want = popcount(mask);
            }
        }
        uint32_t got = UINT32_MAX;
        int rv = qr_voting_quorum_size_min(v, (enum qr_voting_phase)(p + 1), &got);
        if (rv != 0 || got != want) {
            MISMATCH(m, "quorum_size_min phase %u: returned %d (%s), got %u, want %u", p + 1, rv,
                     qr_err_name(rv), got, want);
        }
        c->size_min++;
    }
}

/* Sum over every failure pattern whose survivors form a quorum. */
static double brute_availability(const struct model *m, uint32_t p, double p_fail)
{
    uint32_t n = m->universe_count;
    uint32_t subsets = 1u << n;
    double sum = 0.0;
    for (uint32_t alive = 0; alive < subsets; alive++) {
        if (!m->quorum[p][alive]) {
            continue;
        }
        double probability = 1.0;
        for (uint32_t u = 0; u < n; u++) {
            probability *= (alive >> u & 1u) != 0 ? 1.0 - p_fail : p_fail;
        }
        sum += probability;
    }
    return sum;
}

static void check_availability(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    for (uint32_t p = 0; p < PHASES_COUNT; p++) {
        for (size_t k = 0; k < P_FAILS_COUNT; k++) {
            double want = brute_availability(m, p, p_fails[k]);
            double got = -1.0;
            int rv = qr_voting_availability(v, (enum qr_voting_phase)(p + 1), p_fails[k], &got);
            if (rv != 0 || !(fabs(got - want) <= AVAILABILITY_TOLERANCE)) {
                MISMATCH(m,
                         "availability phase %u p_fail %g: returned %d (%s), got %.17g, "
                         "want %.17g",
                         p + 1, p_fails[k], rv, qr_err_name(rv), got, want);
            }
            c->availability++;
        }
    }
}

static void check_voter_ids(const struct qr_voting *v, const struct model *m, struct counts *c)
{
    qr_node_id ids[IDS_MAX];
    size_t count = qr_voting_voter_ids(v, ids, IDS_MAX);
    bool ok = count == m->universe_count;
    for (uint32_t u = 0; u < m->universe_count && ok; u++) {
        ok = ids[u] == m->universe[u] && qr_voting_has_voter(v, m->universe[u]);
    }
    ok = ok && !qr_voting_has_voter(v, 0) && !qr_voting_has_voter(v, STRANGER_ID);
    if (!ok) {
        MISMATCH(m, "voter_ids/has_voter: got %zu ids, want %u", count, m->universe_count);
    }
    c->voter_ids++;
}

/* Everything cheap for every configuration; tally and committed_index when `heavy`. */
static void
check_queries(const struct qr_voting *v, const struct model *m, bool heavy, struct counts *c)
{
    c->configs++;
    check_is_quorum(v, m, c);
    check_faults(v, m, c);
    check_size_min(v, m, c);
    check_availability(v, m, c);
    check_voter_ids(v, m, c);
    if (heavy) {
        check_tally(v, m, c);
        check_committed(v, m, c);
    }
}

/* Byte by byte, padding included: a refused call must not write any byte of its output. */
static bool bytes_equal(const void *a, const void *b, size_t size)
{
    const unsigned char *x = a;
    const unsigned char *y = b;
    for (size_t i = 0; i < size; i++) {
        if (x[i] != y[i]) {
            return false;
        }
    }
    return true;
}

/* The constructor refused: the code, a message, and the output as it was. */
static void check_refused(const struct model *m,
                          int rv,
                          int want,
                          const char *errmsg,
                          const struct qr_voting *v,
                          const struct qr_voting *copy)
{
    if (rv != want) {
        MISMATCH(m, "init returned %d (%s), want %d (%s); errmsg \"%s\"", rv, qr_err_name(rv), want,
                 qr_err_name(want), errmsg);
    }
    if (errmsg[0] == '\0') {
        MISMATCH(m, "init returned %s with an empty errmsg", qr_err_name(rv));
    }
    if (!bytes_equal(v, copy, sizeof(*v))) {
        MISMATCH(m, "init returned %s but wrote its output", qr_err_name(rv));
    }
}

static void poison(struct qr_voting *v, struct qr_voting *copy, char *errmsg)
{
    memset(v, 0xA5, sizeof(*v));
    memcpy(copy, v, sizeof(*copy));
    errmsg[0] = '\0';
}

/* Builds a one-group model's configuration, expecting success, and checks its shape. */
static void build_single(const struct model *m, struct qr_voting *v, struct counts *c)
{
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = model_init_group(&m->groups[0], v, errmsg);
    if (rv != 0) {
        MISMATCH(m, "init refused a valid configuration: %d (%s) \"%s\"", rv, qr_err_name(rv),
                 errmsg);
    }
    c->init++;
    if (v->rule != m->groups[0].rule || v->groups_count != 1) {
        MISMATCH(m, "built rule %d with %u groups", (int)v->rule, v->groups_count);
    }
    check_group_shape(m, 0, &v->groups[0], c);
}

static void print_counts(const char *rule, const struct counts *c)
{
    printf("props %-9s configs:          %llu\n", rule, (unsigned long long)c->configs);
    printf("props %-9s init:             %llu cases\n", rule, (unsigned long long)c->init);
    printf("props %-9s shape:            %llu cases\n", rule, (unsigned long long)c->shape);
    printf("props %-9s is_quorum:        %llu cases\n", rule, (unsigned long long)c->is_quorum);
    printf("props %-9s quorums_intersect: %llu cases\n", rule, (unsigned long long)c->intersect);
    printf("props %-9s committed_index:  %llu cases\n", rule, (unsigned long long)c->committed);
    printf("props %-9s tally:            %llu cases\n", rule, (unsigned long long)c->tally);
    printf("props %-9s faults_tolerated: %llu cases\n", rule, (unsigned long long)c->faults);
    printf("props %-9s quorum_size_min:  %llu cases\n", rule, (unsigned long long)c->size_min);
    printf("props %-9s availability:     %llu cases\n", rule, (unsigned long long)c->availability);
    printf("props %-9s voter_ids:        %llu cases\n", rule, (unsigned long long)c->voter_ids);
}

/* Sets the weights of the single group of `m` from the base-3 digits of `vector`. */
static void
model_single(struct model *m, enum qr_voting_rule rule, uint32_t voters_count, uint32_t vector)
{
    memset(m, 0, sizeof(*m));
    m->groups_count = 1;
    m->groups[0].rule = rule;
    m->groups[0].voters_count = voters_count;
    for (uint32_t i = 0; i < voters_count; i++) {
        m->groups[0].voters[i].id = scrambled_ids[i];
        m->groups[0].voters[i].weight = vector % WEIGHT_SWEEP_MAX + 1;
        vector /= WEIGHT_SWEEP_MAX;
    }
}

static uint32_t weight_vectors_count(uint32_t voters_count)
{
    uint32_t count = 1;
    for (uint32_t i = 0; i < voters_count; i++) {
        count *= WEIGHT_SWEEP_MAX;
    }
    return count;
}

/* ---- Majority --------------------------------------------------------------------------- */

static void test_props_majority_matches_brute_force(void **state)
{
    (void)state;
    struct counts c = {0};
    rng_state = 1;
    for (uint32_t n = 1; n <= UNIVERSE_MAX; n++) {
        for (uint32_t vector = 0; vector < weight_vectors_count(n); vector++) {
            struct model m;
            model_single(&m, QR_VOTING_MAJORITY, n, vector);
            model_finish(&m);
            struct qr_voting v;
            build_single(&m, &v, &c);
            check_intersect(&v, &m, brute_intersects(&m), &c);
            check_queries(&v, &m, true, &c);
        }
    }
    print_counts("majority", &c);
}

/* ---- Flexible --------------------------------------------------------------------------- */

/* For each weight a, the largest weight of a set disjoint from some set of weight >= a,
 * found by enumerating every pair of disjoint subsets. */
static void brute_disjoint_weights(const struct model *m, uint64_t *best_by_weight)
{
    uint32_t n = m->universe_count;
    uint32_t all = (1u << n) - 1;
    uint64_t total = m->weight_total[0];
    if (total > WEIGHT_TOTAL_SWEEP_MAX) {
        fail_msg("weight total %llu is beyond the sweep", (unsigned long long)total);
        return;
    }
    for (uint64_t w = 0; w <= total; w++) {
        best_by_weight[w] = 0;
    }
    uint64_t subset_weight[SUBSETS_MAX];
    for (uint32_t a = 0; a <= all; a++) {
        subset_weight[a] = 0;
        for (uint32_t u = 0; u < n; u++) {
            subset_weight[a] += (a >> u & 1u) != 0 ? m->weights[0][u] : 0;
        }
    }
    for (uint32_t a = 0; a <= all; a++) {
        for (uint32_t b = 0; b <= all; b++) {
            if ((a & b) == 0 && subset_weight[b] > best_by_weight[subset_weight[a]]) {
                best_by_weight[subset_weight[a]] = subset_weight[b];
            }
        }
    }
    /* Suffix maximum: "some set of weight at least a". */
    for (uint64_t w = total; w > 0; w--) {
        if (best_by_weight[w] > best_by_weight[w - 1]) {
            best_by_weight[w - 1] = best_by_weight[w];
        }
    }
}

/* Every threshold pair of every weight vector is built and checked for refusal, shape and
 * intersection. The other queries run on the accepted pairs among one pair in a stride, the
 * stride depending on the voter count (pairs: 5400 at 4 voters, 25110 at 5, 107892 at 6,
 * 438858 at 7), so the file stays fast: the cheap ones (is_quorum, faults, size,
 * availability, ids) on every pair up to 5 voters, the costly ones (every tally, the
 * committed_index grid) on every pair up to 4. Strides are prime so they do not follow the
 * period of the threshold pairs. */
static const uint32_t flexible_light_strides[UNIVERSE_MAX + 1] = {1, 1, 1, 1, 1, 1, 5, 29};
static const uint32_t flexible_heavy_strides[UNIVERSE_MAX + 1] = {1, 1, 1, 1, 1, 11, 211, 2003};

static void flexible_bad_thresholds(const struct model *base, struct counts *c)
{
    uint64_t total = base->weight_total[0];
    const uint64_t pairs[4][2] = {{0, total}, {total, 0}, {total + 1, total}, {total, total + 1}};
    for (size_t i = 0; i < 4; i++) {
        struct model m = *base;
        m.groups[0].election_weight_min = pairs[i][0];
        m.groups[0].replication_weight_min = pairs[i][1];
        struct qr_voting v;
        struct qr_voting copy;
        char errmsg[QR_ERRMSG_SIZE];
        poison(&v, &copy, errmsg);
        int rv = model_init_group(&m.groups[0], &v, errmsg);
        check_refused(&m, rv, QR_EBADTHRESHOLD, errmsg, &v, &copy);
        c->init++;
    }
}

/* One threshold pair of one weight vector: refused exactly when brute force finds disjoint
 * quorums that must intersect. A refused pair written into a valid configuration by hand
 * must also make quorums_intersect answer false. */
static bool flexible_pair(struct model *m,
                          const struct qr_voting *forge_base,
                          const uint64_t *best_by_weight,
                          uint64_t sequence,
                          struct counts *c)
{
    uint64_t e = m->groups[0].election_weight_min;
    uint64_t r = m->groups[0].replication_weight_min;
    bool disjoint = best_by_weight[e] >= e || best_by_weight[e] >= r;
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = model_init_group(&m->groups[0], &v, errmsg);
    c->init++;
    if (disjoint) {
        check_refused(m, rv, QR_ENOINTERSECT, errmsg, &v, &copy);
        struct qr_voting forged = *forge_base;
        forged.groups[0].election_weight_min = e;
        forged.groups[0].replication_weight_min = r;
        check_intersect(&forged, m, false, c);
        return false;
    }
    if (rv != 0) {
        MISMATCH(m, "init refused intersecting thresholds: %d (%s) \"%s\"", rv, qr_err_name(rv),
                 errmsg);
    }
    if (v.rule != QR_VOTING_FLEXIBLE || v.groups_count != 1) {
        MISMATCH(m, "built rule %d with %u groups", (int)v.rule, v.groups_count);
    }
    check_group_shape(m, 0, &v.groups[0], c);
    check_intersect(&v, m, true, c);
    uint32_t n = m->universe_count;
    bool light = sequence % flexible_light_strides[n] == 0;
    bool heavy = sequence % flexible_heavy_strides[n] == 0;
    if (light || heavy) {
        /* The quorum tables depend on the thresholds, so derive them again. */
        model_finish(m);
        check_queries(&v, m, heavy, c);
    }
    return true;
}

static void test_props_flexible_matches_brute_force(void **state)
{
    (void)state;
    struct counts c = {0};
    uint64_t accepted = 0;
    uint64_t refused = 0;
    uint64_t sequence = 0;
    rng_state = 2;
    for (uint32_t n = 1; n <= UNIVERSE_MAX; n++) {
        for (uint32_t vector = 0; vector < weight_vectors_count(n); vector++) {
            struct model base;
            model_single(&base, QR_VOTING_FLEXIBLE, n, vector);
            model_finish(&base);
            uint64_t total = base.weight_total[0];
            uint64_t best_by_weight[WEIGHT_TOTAL_SWEEP_MAX + 1] = {0};
            brute_disjoint_weights(&base, best_by_weight);
            /* Thresholds equal to the total always intersect; forgeries start from it. */
            base.groups[0].election_weight_min = total;
            base.groups[0].replication_weight_min = total;
            struct qr_voting forge_base;
            build_single(&base, &forge_base, &c);
            flexible_bad_thresholds(&base, &c);
            for (uint64_t e = 1; e <= total; e++) {
                for (uint64_t r = 1; r <= total; r++) {
                    struct model m = base;
                    m.groups[0].election_weight_min = e;
                    m.groups[0].replication_weight_min = r;
                    if (flexible_pair(&m, &forge_base, best_by_weight, sequence++, &c)) {
                        accepted++;
                    } else {
                        refused++;
                    }
                }
            }
        }
    }
    printf("props flexible  threshold pairs:  %llu accepted, %llu refused (ENOINTERSECT)\n",
           (unsigned long long)accepted, (unsigned long long)refused);
    print_counts("flexible", &c);
}

/* ---- Byzantine -------------------------------------------------------------------------- */

static void test_props_byzantine_matches_brute_force(void **state)
{
    (void)state;
    struct counts c = {0};
    rng_state = 3;
    for (uint32_t n = 1; n <= UNIVERSE_MAX; n++) {
        for (uint32_t f = 0; f <= 3; f++) {
            struct model m;
            model_single(&m, QR_VOTING_BYZANTINE, n, 0);
            m.groups[0].faults = f;
            model_finish(&m);
            if (3 * f + 1 > n) {
                struct qr_voting v;
                struct qr_voting copy;
                char errmsg[QR_ERRMSG_SIZE];
                poison(&v, &copy, errmsg);
                int rv = model_init_group(&m.groups[0], &v, errmsg);
                check_refused(&m, rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
                c.init++;
                continue;
            }
            /* Any weight other than 1, on any voter, is refused. */
            for (uint32_t i = 0; i < n; i++) {
                struct model heavy = m;
                heavy.groups[0].voters[i].weight = 2;
                struct qr_voting v;
                struct qr_voting copy;
                char errmsg[QR_ERRMSG_SIZE];
                poison(&v, &copy, errmsg);
                int rv = model_init_group(&heavy.groups[0], &v, errmsg);
                check_refused(&heavy, rv, QR_EBADWEIGHT, errmsg, &v, &copy);
                c.init++;
            }
            struct qr_voting v;
            build_single(&m, &v, &c);
            check_intersect(&v, &m, brute_intersects(&m), &c);
            check_queries(&v, &m, true, &c);
        }
    }
    print_counts("byzantine", &c);
}

/* ---- Joint ------------------------------------------------------------------------------ */

/* Ranges of the old group ids 1 ... a and of the new group ids b ... b + new_count - 1. */
#define JOINT_OLD_VOTERS_MAX 4
#define JOINT_NEW_VOTERS_MAX 4
#define JOINT_WEIGHT_MAX     2

static void model_range_group(struct model_group *group,
                              enum qr_voting_rule rule,
                              qr_node_id first_id,
                              uint32_t count,
                              uint32_t weight_bits)
{
    memset(group, 0, sizeof(*group));
    group->rule = rule;
    group->voters_count = count;
    for (uint32_t i = 0; i < count; i++) {
        group->voters[i].id = first_id + i;
        group->voters[i].weight = (weight_bits >> i & 1u) + 1;
    }
}

/* Two groups hold the same rule, thresholds and voters (padding aside). */
static bool groups_equal(const struct qr_voting_group *a, const struct qr_voting_group *b)
{
    bool same = a->rule == b->rule && a->voters_count == b->voters_count &&
                a->byzantine_faults == b->byzantine_faults && a->weight_total == b->weight_total &&
                a->election_weight_min == b->election_weight_min &&
                a->replication_weight_min == b->replication_weight_min;
    for (uint32_t i = 0; i < QR_VOTING_VOTERS_MAX && same; i++) {
        same = a->voters[i].id == b->voters[i].id && a->voters[i].weight == b->voters[i].weight;
    }
    return same;
}

/* Builds both groups through the library, joins them, and runs every check. */
static void joint_check(struct model *m, struct counts *c)
{
    model_finish(m);
    struct qr_voting parts[QR_VOTING_GROUPS_MAX];
    for (uint32_t g = 0; g < QR_VOTING_GROUPS_MAX; g++) {
        char errmsg[QR_ERRMSG_SIZE] = "";
        int rv = model_init_group(&m->groups[g], &parts[g], errmsg);
        if (rv != 0) {
            MISMATCH(m, "group %u refused: %d (%s) \"%s\"", g, rv, qr_err_name(rv), errmsg);
        }
        check_group_shape(m, g, &parts[g].groups[0], c);
    }
    struct qr_voting v;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr_voting_init_joint(&v, &parts[0], &parts[1], errmsg);
    if (rv != 0 || v.rule != QR_VOTING_JOINT || v.groups_count != 2) {
        MISMATCH(m, "init_joint returned %d (%s) \"%s\", rule %d, %u groups", rv, qr_err_name(rv),
                 errmsg, (int)v.rule, v.groups_count);
    }
    c->init++;
    /* Either slot order is allowed; each slot must hold one of the two groups. */
    uint32_t first = groups_equal(&v.groups[0], &parts[0].groups[0]) ? 0 : 1;
    check_group_shape(m, first, &v.groups[0], c);
    check_group_shape(m, 1 - first, &v.groups[1], c);
    check_intersect(&v, m, brute_intersects(m), c);
    check_queries(&v, m, true, c);
    /* A joint configuration cannot be joined again. */
    struct qr_voting again;
    struct qr_voting copy;
    poison(&again, &copy, errmsg);
    rv = qr_voting_init_joint(&again, &v, &parts[1], errmsg);
    check_refused(m, rv, QR_EINVAL, errmsg, &again, &copy);
    c->init++;
}

static void test_props_joint_of_majorities_matches_brute_force(void **state)
{
    (void)state;
    struct counts c = {0};
    rng_state = 4;
    for (uint32_t a = 1; a <= JOINT_OLD_VOTERS_MAX; a++) {
        for (uint32_t b = 1; b <= a + 2; b++) {
            for (uint32_t count = 1; count <= JOINT_NEW_VOTERS_MAX; count++) {
                uint32_t last = b + count - 1;
                uint32_t universe = b <= a + 1 ? (a > last ? a : last) : a + count;
                if (universe > UNIVERSE_MAX) {
                    continue;
                }
                for (uint32_t old_bits = 0; old_bits < 1u << a; old_bits++) {
                    for (uint32_t new_bits = 0; new_bits < 1u << count; new_bits++) {
                        struct model m;
                        memset(&m, 0, sizeof(m));
                        m.groups_count = 2;
                        model_range_group(&m.groups[0], QR_VOTING_MAJORITY, 1, a, old_bits);
                        model_range_group(&m.groups[1], QR_VOTING_MAJORITY, b, count, new_bits);
                        joint_check(&m, &c);
                    }
                }
            }
        }
    }
    print_counts("joint", &c);
}

/* Joint configurations whose groups follow the other rules, in both slots. */
static void test_props_joint_of_mixed_rules_matches_brute_force(void **state)
{
    (void)state;
    struct counts c = {0};
    rng_state = 5;
    struct model_group specials[6];
    model_range_group(&specials[0], QR_VOTING_BYZANTINE, 1, 4, 0);
    specials[0].faults = 1;
    model_range_group(&specials[1], QR_VOTING_BYZANTINE, 2, 5, 0);
    specials[1].faults = 1;
    model_range_group(&specials[2], QR_VOTING_FLEXIBLE, 1, 3, 0);
    specials[2].election_weight_min = 3;
    specials[2].replication_weight_min = 1;
    model_range_group(&specials[3], QR_VOTING_FLEXIBLE, 1, 4, 0);
    specials[3].election_weight_min = 3;
    specials[3].replication_weight_min = 2;
    model_range_group(&specials[4], QR_VOTING_FLEXIBLE, 2, 3, 1);
    specials[4].election_weight_min = 3;
    specials[4].replication_weight_min = 2;
    model_range_group(&specials[5], QR_VOTING_BYZANTINE, 1, 7, 0);
    specials[5].faults = 2;
    for (size_t s = 0; s < sizeof(specials) / sizeof(specials[0]); s++) {
        for (uint32_t b = 1; b <= 5; b++) {
            for (uint32_t count = 1; count <= 3; count++) {
                for (uint32_t bits = 0; bits < 1u << count; bits++) {
                    for (uint32_t slot = 0; slot < 2; slot++) {
                        struct model m;
                        memset(&m, 0, sizeof(m));
                        m.groups_count = 2;
                        m.groups[slot] = specials[s];
                        model_range_group(&m.groups[1 - slot], QR_VOTING_MAJORITY, b, count, bits);
                        model_build_universe(&m);
                        if (m.universe_count <= UNIVERSE_MAX) {
                            joint_check(&m, &c);
                        }
                    }
                }
            }
        }
    }
    print_counts("joint-mix", &c);
}

/* ---- qr_voting_init_tolerating ---------------------------------------------------------- */

/* "The t heaviest voters may fail": every t-subset removed leaves more than half. */
static bool brute_crash_tolerates(const struct model *m, uint32_t t)
{
    uint32_t n = m->universe_count;
    if (t > n) {
        return false;
    }
    uint32_t all = (1u << n) - 1;
    for (uint32_t removed = 0; removed <= all; removed++) {
        if (popcount(removed) != t) {
            continue;
        }
        uint64_t rest = 0;
        for (uint32_t u = 0; u < n; u++) {
            rest += (removed >> u & 1u) == 0 ? m->weights[0][u] : 0;
        }
        if (!(2 * rest > m->weight_total[0])) {
            return false;
        }
    }
    return true;
}

static void tolerating_one(const struct model *m,
                           const struct qr_voting_spec *spec,
                           bool want_ok,
                           struct counts *c)
{
    struct qr_voting v;
    struct qr_voting copy;
    char errmsg[QR_ERRMSG_SIZE];
    poison(&v, &copy, errmsg);
    int rv = qr_voting_init_tolerating(&v, spec, errmsg);
    c->init++;
    if (!want_ok) {
        check_refused(m, rv, QR_ETOOFEWNODES, errmsg, &v, &copy);
        return;
    }
    if (rv != 0) {
        MISMATCH(m, "init_tolerating(n=%u, t=%u, model=%d) refused: %d (%s) \"%s\"",
                 spec->nodes_count, spec->faults, (int)spec->model, rv, qr_err_name(rv), errmsg);
    }
    if (v.rule != m->groups[0].rule || v.groups_count != 1) {
        MISMATCH(m, "init_tolerating built rule %d with %u groups", (int)v.rule, v.groups_count);
    }
    check_group_shape(m, 0, &v.groups[0], c);
}

static void test_props_tolerating_matches_brute_force(void **state)
{
    (void)state;
    struct counts c = {0};
    uint32_t weights[UNIVERSE_MAX];
    for (uint32_t n = 1; n <= UNIVERSE_MAX; n++) {
        for (uint32_t vector = 0; vector < weight_vectors_count(n); vector++) {
            struct model m;
            model_single(&m, QR_VOTING_MAJORITY, n, vector);
            bool all_one = true;
            for (uint32_t i = 0; i < n; i++) {
                m.groups[0].voters[i].id = i + 1;
                weights[i] = m.groups[0].voters[i].weight;
                all_one = all_one && weights[i] == 1;
            }
            model_finish(&m);
            for (uint32_t t = 0; t <= n + 1; t++) {
                struct qr_voting_spec spec = {
                    .nodes_count = n, .faults = t, .model = QR_FAULT_CRASH, .weights = weights};
                bool want = brute_crash_tolerates(&m, t);
                tolerating_one(&m, &spec, want, &c);
                if (all_one) {
                    spec.weights = NULL;
                    tolerating_one(&m, &spec, want, &c);
                }
            }
        }
        struct model m;
        model_single(&m, QR_VOTING_BYZANTINE, n, 0);
        for (uint32_t i = 0; i < n; i++) {
            m.groups[0].voters[i].id = i + 1;
        }
        for (uint32_t t = 0; t <= 3; t++) {
            m.groups[0].faults = t;
            model_finish(&m);
            struct qr_voting_spec spec = {
                .nodes_count = n, .faults = t, .model = QR_FAULT_BYZANTINE};
            tolerating_one(&m, &spec, n >= 3 * t + 1, &c);
        }
    }
    printf("props tolerating init:            %llu cases\n", (unsigned long long)c.init);
    printf("props tolerating shape:           %llu cases\n", (unsigned long long)c.shape);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_props_majority_matches_brute_force),
        cmocka_unit_test(test_props_flexible_matches_brute_force),
        cmocka_unit_test(test_props_byzantine_matches_brute_force),
        cmocka_unit_test(test_props_joint_of_majorities_matches_brute_force),
        cmocka_unit_test(test_props_joint_of_mixed_rules_matches_brute_force),
        cmocka_unit_test(test_props_tolerating_matches_brute_force),
    };
    return cmocka_run_group_tests(tests, test_alloc_setup, test_alloc_teardown);
}
