/*
 * voting/voting.c: quorum systems.
 *
 * Layer: voting (depends on util only). Pure arithmetic over voter weights:
 * no I/O, no clock, no global state. Query functions never allocate; only the
 * analysis functions (availability, smallest quorum of a joint configuration)
 * do, through util/alloc.h. This is the only file in quorum that computes how
 * many votes are enough.
 */
#include "quorum/voting.h"

#include <string.h>

#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"

/* Most union voters of a joint configuration. */
#define UNION_VOTERS_MAX ((size_t)QR_VOTING_GROUPS_MAX * QR_VOTING_VOTERS_MAX)
/* Largest total weight of one group; sizes the subset-sum bitset. */
#define GROUP_WEIGHT_MAX ((uint64_t)QR_VOTING_VOTERS_MAX * QR_VOTING_WEIGHT_MAX)
#define SUMS_WORDS       ((size_t)(GROUP_WEIGHT_MAX / 64 + 1))
/* Most cells of the dynamic programs over (weight in group 0, weight in group 1). */
#define DP_CELLS_MAX ((size_t)1 << 22)

_Static_assert(QR_VOTING_VOTERS_MAX <= 64, "a group's members fit in one uint64_t mask");
_Static_assert(GROUP_WEIGHT_MAX < UINT32_MAX, "group weights fit in 32 bits");

/* ---- Validation and construction ---------------------------------------- */

static void sort_voters_by_id(struct qr_voter *voters, size_t count)
{
    for (size_t i = 1; i < count; i++) {
        struct qr_voter x = voters[i];
        size_t j = i;
        while (j > 0 && voters[j - 1].id > x.id) {
            voters[j] = voters[j - 1];
            j--;
        }
        voters[j] = x;
    }
}

/* Checks the voter list and, on success, fills the group's voters sorted by id. */
static int group_set_voters(struct qr_voting_group *g,
                            const struct qr_voter *voters,
                            size_t count,
                            char *errmsg)
{
    memset(g, 0, sizeof(*g));
    if (count == 0 || voters == NULL) {
        return qr__errf(errmsg, QR_ENOVOTERS, "voting: a configuration needs at least 1 voter");
    }
    if (count > QR_VOTING_VOTERS_MAX) {
        return qr__errf(errmsg, QR_ETOOMANYVOTERS, "voting: %zu voters given, at most %d allowed",
                        count, QR_VOTING_VOTERS_MAX);
    }
    for (size_t i = 0; i < count; i++) {
        if (voters[i].id == 0) {
            return qr__errf(errmsg, QR_EBADID, "voting: voter %zu has id 0, ids start at 1", i + 1);
        }
        if (voters[i].weight == 0 || voters[i].weight > QR_VOTING_WEIGHT_MAX) {
            return qr__errf(
                errmsg, QR_EBADWEIGHT, "voting: voter %llu has weight %u, weights must be 1 to %d",
                (unsigned long long)voters[i].id, voters[i].weight, QR_VOTING_WEIGHT_MAX);
        }
        g->voters[i] = voters[i];
        g->weight_total += voters[i].weight;
    }
    sort_voters_by_id(g->voters, count);
    for (size_t i = 1; i < count; i++) {
        if (g->voters[i].id == g->voters[i - 1].id) {
            return qr__errf(errmsg, QR_EDUPVOTER, "voting: voter id %llu appears twice",
                            (unsigned long long)g->voters[i].id);
        }
    }
    g->voters_count = (uint32_t)count;
    return 0;
}

static void voting_from_group(struct qr_voting *v, const struct qr_voting_group *g)
{
    memset(v, 0, sizeof(*v));
    v->rule = g->rule;
    v->groups_count = 1;
    v->groups[0] = *g;
}

int qr_voting_init_majority(struct qr_voting *v,
                            const struct qr_voter *voters,
                            size_t voters_count,
                            char *errmsg)
{
    QR_ASSERT(v != NULL);
    struct qr_voting_group g;
    int rv = group_set_voters(&g, voters, voters_count, errmsg);
    if (rv != 0) {
        return rv;
    }
    /* More than half of the total weight: any two such sets share a voter. */
    uint64_t threshold = g.weight_total / 2 + 1;
    g.rule = QR_VOTING_MAJORITY;
    g.election_weight_min = threshold;
    g.replication_weight_min = threshold;
    voting_from_group(v, &g);
    QR_ASSERT(qr_voting_quorums_intersect(v));
    return 0;
}

/* Subset sums of the group's weights, as a bitset: bit s set when some subset weighs s. */
static void group_subset_sums(const struct qr_voting_group *g, uint64_t *sums)
{
    memset(sums, 0, SUMS_WORDS * sizeof(*sums));
    sums[0] = 1;
    for (uint32_t i = 0; i < g->voters_count; i++) {
        size_t shift = g->voters[i].weight;
        size_t words = shift / 64;
        size_t bits = shift % 64;
        /* sums |= sums << shift, from the top word down so each voter is used once. */
        for (size_t w = SUMS_WORDS; w-- > words;) {
            uint64_t moved = sums[w - words] << bits;
            if (bits != 0 && w - words > 0) {
                moved |= sums[w - words - 1] >> (64 - bits);
            }
            sums[w] |= moved;
        }
    }
}

static bool sums_has(const uint64_t *sums, uint64_t s)
{
    return (sums[s / 64] >> (s % 64)) & 1;
}

/*
 * The weight of some subset A with w(A) >= first and total - w(A) >= second, so that A
 * and its complement are disjoint quorums; 0 when there is none.
 */
static uint64_t disjoint_split(const struct qr_voting_group *g,
                               const uint64_t *sums,
                               uint64_t first,
                               uint64_t second)
{
    if (first + second > g->weight_total) {
        return 0;
    }
    for (uint64_t s = first; s <= g->weight_total - second; s++) {
        if (sums_has(sums, s)) {
            return s;
        }
    }
    return 0;
}

static bool group_intersects(const struct qr_voting_group *g)
{
    if (g->rule == QR_VOTING_BYZANTINE) {
        /* Two sets of q unit voters among n share at least 2q - n; f + 1 keeps one honest. */
        uint64_t q = g->election_weight_min;
        return 2 * q >= g->weight_total + g->byzantine_faults + 1;
    }
    uint64_t sums[SUMS_WORDS];
    group_subset_sums(g, sums);
    uint64_t e = g->election_weight_min;
    uint64_t r = g->replication_weight_min;
    return disjoint_split(g, sums, e, e) == 0 && disjoint_split(g, sums, e, r) == 0;
}

int qr_voting_init_flexible(struct qr_voting *v,
                            const struct qr_voter *voters,
                            size_t voters_count,
                            uint64_t election_weight_min,
                            uint64_t replication_weight_min,
                            char *errmsg)
{
    QR_ASSERT(v != NULL);
    struct qr_voting_group g;
    int rv = group_set_voters(&g, voters, voters_count, errmsg);
    if (rv != 0) {
        return rv;
    }
    uint64_t total = g.weight_total;
    if (election_weight_min == 0 || election_weight_min > total || replication_weight_min == 0 ||
        replication_weight_min > total) {
        return qr__errf(errmsg, QR_EBADTHRESHOLD,
                        "voting: thresholds election=%llu replication=%llu must each be 1 to the "
                        "total weight %llu",
                        (unsigned long long)election_weight_min,
                        (unsigned long long)replication_weight_min, (unsigned long long)total);
    }
    g.rule = QR_VOTING_FLEXIBLE;
    g.election_weight_min = election_weight_min;
    g.replication_weight_min = replication_weight_min;
    uint64_t sums[SUMS_WORDS];
    group_subset_sums(&g, sums);
    uint64_t e = election_weight_min;
    uint64_t split = disjoint_split(&g, sums, e, e);
    if (split != 0) {
        return qr__errf(errmsg, QR_ENOINTERSECT,
                        "voting: two disjoint election quorums exist (weights %llu and %llu of "
                        "%llu), so two leaders could win one term; raise the election threshold "
                        "above %llu",
                        (unsigned long long)split, (unsigned long long)(total - split),
                        (unsigned long long)total, (unsigned long long)(total / 2));
    }
    split = disjoint_split(&g, sums, e, replication_weight_min);
    if (split != 0) {
        return qr__errf(errmsg, QR_ENOINTERSECT,
                        "voting: an election quorum (weight %llu) and a replication quorum "
                        "(weight %llu) can be disjoint among total weight %llu; make election + "
                        "replication thresholds exceed %llu",
                        (unsigned long long)split, (unsigned long long)(total - split),
                        (unsigned long long)total, (unsigned long long)total);
    }
    voting_from_group(v, &g);
    return 0;
}

int qr_voting_init_byzantine(struct qr_voting *v,
                             const struct qr_voter *voters,
                             size_t voters_count,
                             uint32_t faults,
                             char *errmsg)
{
    QR_ASSERT(v != NULL);
    struct qr_voting_group g;
    int rv = group_set_voters(&g, voters, voters_count, errmsg);
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < g.voters_count; i++) {
        if (g.voters[i].weight != 1) {
            return qr__errf(errmsg, QR_EBADWEIGHT,
                            "voting: byzantine voters must have weight 1, voter %llu has %u",
                            (unsigned long long)g.voters[i].id, g.voters[i].weight);
        }
    }
    uint64_t needed = 3 * (uint64_t)faults + 1;
    if (voters_count < needed) {
        return qr__errf(errmsg, QR_ETOOFEWNODES,
                        "voting: tolerating %u byzantine faults needs at least %llu nodes (3f+1), "
                        "%zu were given",
                        faults, (unsigned long long)needed, voters_count);
    }
    /* ceil((n + f + 1) / 2): two quorums share f + 1 voters; equals 2f + 1 when n = 3f + 1. */
    uint64_t q = (voters_count + (uint64_t)faults + 2) / 2;
    g.rule = QR_VOTING_BYZANTINE;
    g.byzantine_faults = faults;
    g.election_weight_min = q;
    g.replication_weight_min = q;
    voting_from_group(v, &g);
    QR_ASSERT(group_intersects(&v->groups[0]));
    QR_ASSERT(voters_count - q >= faults);
    return 0;
}

int qr_voting_init_joint(struct qr_voting *v,
                         const struct qr_voting *old_config,
                         const struct qr_voting *new_config,
                         char *errmsg)
{
    QR_ASSERT(v != NULL && old_config != NULL && new_config != NULL);
    if (old_config->groups_count != 1 || new_config->groups_count != 1) {
        return qr__errf(errmsg, QR_EINVAL,
                        "voting: a joint configuration combines two simple ones, got one with %u "
                        "groups",
                        old_config->groups_count != 1 ? old_config->groups_count
                                                      : new_config->groups_count);
    }
    struct qr_voting joint;
    memset(&joint, 0, sizeof(joint));
    joint.rule = QR_VOTING_JOINT;
    joint.groups_count = 2;
    joint.groups[0] = old_config->groups[0];
    joint.groups[1] = new_config->groups[0];
    *v = joint;
    return 0;
}

/* Writes "w1,w2,..." into buf, cut to fit; voting/ has no stdio, so digits are made here. */
static void format_weights(char *buf, size_t size, const uint32_t *weights, uint32_t count)
{
    QR_ASSERT(size >= 2);
    size_t used = 0;
    for (uint32_t i = 0; i < count; i++) {
        char digits[10];
        size_t n = 0;
        uint32_t w = weights[i];
        do {
            digits[n++] = (char)('0' + w % 10);
            w /= 10;
        } while (w != 0 && n < sizeof(digits));
        if (used + n + 2 > size) {
            break;
        }
        if (i > 0) {
            buf[used++] = ',';
        }
        while (n > 0) {
            buf[used++] = digits[--n];
        }
    }
    buf[used] = '\0';
}

static int
init_tolerating_crash(struct qr_voting *v, const struct qr_voting_spec *spec, char *errmsg)
{
    uint64_t needed = 2 * (uint64_t)spec->faults + 1;
    if (spec->nodes_count < needed) {
        return qr__errf(errmsg, QR_ETOOFEWNODES,
                        "voting: tolerating %u crash faults needs at least %llu nodes (2f+1), %u "
                        "were given",
                        spec->faults, (unsigned long long)needed, spec->nodes_count);
    }
    struct qr_voter voters[QR_VOTING_VOTERS_MAX];
    for (uint32_t i = 0; i < spec->nodes_count; i++) {
        voters[i].id = i + 1;
        voters[i].weight = spec->weights != NULL ? spec->weights[i] : 1;
    }
    struct qr_voting candidate;
    int rv = qr_voting_init_majority(&candidate, voters, spec->nodes_count, errmsg);
    if (rv != 0) {
        return rv;
    }
    uint32_t survives = qr_voting_faults_tolerated(&candidate);
    if (survives < spec->faults) {
        QR_ASSERT(spec->weights != NULL); /* Equal weights always survive (n - 1) / 2. */
        char list[QR_ERRMSG_SIZE / 2];
        format_weights(list, sizeof(list), spec->weights, spec->nodes_count);
        return qr__errf(errmsg, QR_ETOOFEWNODES,
                        "voting: with weights %s a majority survives only %u crash faults (the "
                        "heaviest voters hold too much), %u were requested; lower the heaviest "
                        "weights or add nodes",
                        list, survives, spec->faults);
    }
    *v = candidate;
    return 0;
}

int qr_voting_init_tolerating(struct qr_voting *v, const struct qr_voting_spec *spec, char *errmsg)
{
    QR_ASSERT(v != NULL && spec != NULL);
    if (spec->nodes_count == 0) {
        return qr__errf(errmsg, QR_ENOVOTERS, "voting: a configuration needs at least 1 node");
    }
    if (spec->nodes_count > QR_VOTING_VOTERS_MAX) {
        return qr__errf(errmsg, QR_ETOOMANYVOTERS, "voting: %u nodes given, at most %d allowed",
                        spec->nodes_count, QR_VOTING_VOTERS_MAX);
    }
    if (spec->model == QR_FAULT_CRASH) {
        return init_tolerating_crash(v, spec, errmsg);
    }
    if (spec->model != QR_FAULT_BYZANTINE) {
        return qr__errf(errmsg, QR_EINVAL, "voting: unknown fault model %d", (int)spec->model);
    }
    struct qr_voter voters[QR_VOTING_VOTERS_MAX];
    for (uint32_t i = 0; i < spec->nodes_count; i++) {
        voters[i].id = i + 1;
        voters[i].weight = spec->weights != NULL ? spec->weights[i] : 1;
    }
    return qr_voting_init_byzantine(v, voters, spec->nodes_count, spec->faults, errmsg);
}

/* ---- Queries: no allocation ---------------------------------------------- */

/* Position of id among the group's voters, or -1. */
static int group_find(const struct qr_voting_group *g, qr_node_id id)
{
    uint32_t low = 0;
    uint32_t high = g->voters_count;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2;
        if (g->voters[mid].id < id) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    if (low < g->voters_count && g->voters[low].id == id) {
        return (int)low;
    }
    return -1;
}

static uint64_t group_mask_weight(const struct qr_voting_group *g, uint64_t mask)
{
    uint64_t weight = 0;
    for (uint32_t i = 0; i < g->voters_count; i++) {
        if ((mask >> i) & 1) {
            weight += g->voters[i].weight;
        }
    }
    return weight;
}

static uint64_t group_threshold(const struct qr_voting_group *g, enum qr_voting_phase phase)
{
    uint64_t threshold = 0;
    if (phase & QR_VOTING_ELECTION) {
        threshold = g->election_weight_min;
    }
    if ((phase & QR_VOTING_REPLICATION) && g->replication_weight_min > threshold) {
        threshold = g->replication_weight_min;
    }
    QR_ASSERT(threshold >= 1 && threshold <= g->weight_total);
    return threshold;
}

static void check_voting(const struct qr_voting *v)
{
    QR_ASSERT(v != NULL);
    QR_ASSERT(v->groups_count >= 1 && v->groups_count <= QR_VOTING_GROUPS_MAX);
    QR_ASSERT((v->groups_count == 2) == (v->rule == QR_VOTING_JOINT));
}

bool qr_voting_is_quorum(const struct qr_voting *v,
                         enum qr_voting_phase phase,
                         const qr_node_id *ids,
                         size_t ids_count)
{
    check_voting(v);
    QR_ASSERT(ids != NULL || ids_count == 0);
    for (uint32_t gi = 0; gi < v->groups_count; gi++) {
        const struct qr_voting_group *g = &v->groups[gi];
        uint64_t mask = 0;
        for (size_t i = 0; i < ids_count; i++) {
            int at = group_find(g, ids[i]);
            if (at >= 0) {
                mask |= UINT64_C(1) << at;
            }
        }
        if (group_mask_weight(g, mask) < group_threshold(g, phase)) {
            return false;
        }
    }
    return true;
}

enum qr_vote_result qr_voting_tally(const struct qr_voting *v,
                                    enum qr_voting_phase phase,
                                    const struct qr_vote *votes,
                                    size_t votes_count)
{
    check_voting(v);
    QR_ASSERT(votes != NULL || votes_count == 0);
    bool won_all = true;
    for (uint32_t gi = 0; gi < v->groups_count; gi++) {
        const struct qr_voting_group *g = &v->groups[gi];
        uint64_t granted = 0;
        uint64_t rejected = 0;
        for (size_t i = 0; i < votes_count; i++) {
            int at = group_find(g, votes[i].id);
            if (at >= 0) {
                *(votes[i].granted ? &granted : &rejected) |= UINT64_C(1) << at;
            }
        }
        rejected &= ~granted;
        uint64_t threshold = group_threshold(g, phase);
        if (g->weight_total - group_mask_weight(g, rejected) < threshold) {
            return QR_VOTE_LOST;
        }
        if (group_mask_weight(g, granted) < threshold) {
            won_all = false;
        }
    }
    return won_all ? QR_VOTE_WON : QR_VOTE_PENDING;
}

static qr_index group_committed_index(const struct qr_voting_group *g,
                                      const struct qr_match *matches,
                                      size_t matches_count)
{
    qr_index indexes[QR_VOTING_VOTERS_MAX];
    uint32_t order[QR_VOTING_VOTERS_MAX];
    for (uint32_t i = 0; i < g->voters_count; i++) {
        indexes[i] = 0;
    }
    for (size_t i = 0; i < matches_count; i++) {
        int at = group_find(g, matches[i].id);
        if (at >= 0 && matches[i].index > indexes[at]) {
            indexes[at] = matches[i].index;
        }
    }
    /* Voter positions by descending match index. */
    for (uint32_t i = 0; i < g->voters_count; i++) {
        uint32_t j = i;
        while (j > 0 && indexes[order[j - 1]] < indexes[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    /* Walking down, the first index at which the weight seen reaches a quorum. */
    uint64_t threshold = g->replication_weight_min;
    uint64_t weight = 0;
    for (uint32_t k = 0; k < g->voters_count; k++) {
        weight += g->voters[order[k]].weight;
        if (weight >= threshold) {
            return indexes[order[k]];
        }
    }
    QR_ASSERT(false && "the total weight always reaches the threshold");
    return 0;
}

qr_index qr_voting_committed_index(const struct qr_voting *v,
                                   const struct qr_match *matches,
                                   size_t matches_count)
{
    check_voting(v);
    QR_ASSERT(matches != NULL || matches_count == 0);
    qr_index committed = UINT64_MAX;
    for (uint32_t gi = 0; gi < v->groups_count; gi++) {
        qr_index index = group_committed_index(&v->groups[gi], matches, matches_count);
        if (index < committed) {
            committed = index;
        }
    }
    return committed;
}

bool qr_voting_has_voter(const struct qr_voting *v, qr_node_id id)
{
    check_voting(v);
    for (uint32_t gi = 0; gi < v->groups_count; gi++) {
        if (group_find(&v->groups[gi], id) >= 0) {
            return true;
        }
    }
    return false;
}

size_t qr_voting_voter_ids(const struct qr_voting *v, qr_node_id *ids_out, size_t ids_max)
{
    check_voting(v);
    QR_ASSERT(ids_out != NULL || ids_max == 0);
    /* Merge the groups' sorted id lists. */
    const struct qr_voting_group *a = &v->groups[0];
    const struct qr_voting_group *b = v->groups_count == 2 ? &v->groups[1] : NULL;
    uint32_t ia = 0;
    uint32_t ib = 0;
    uint32_t b_count = b != NULL ? b->voters_count : 0;
    size_t count = 0;
    while (ia < a->voters_count || ib < b_count) {
        qr_node_id next;
        if (ib >= b_count || (ia < a->voters_count && a->voters[ia].id < b->voters[ib].id)) {
            next = a->voters[ia++].id;
        } else if (ia >= a->voters_count || b->voters[ib].id < a->voters[ia].id) {
            next = b->voters[ib++].id;
        } else {
            next = a->voters[ia++].id;
            ib++;
        }
        if (count < ids_max) {
            ids_out[count] = next;
        }
        count++;
    }
    return count;
}

static uint32_t group_faults_tolerated(const struct qr_voting_group *g)
{
    uint32_t weights[QR_VOTING_VOTERS_MAX];
    for (uint32_t i = 0; i < g->voters_count; i++) {
        uint32_t j = i;
        while (j > 0 && weights[j - 1] < g->voters[i].weight) {
            weights[j] = weights[j - 1];
            j--;
        }
        weights[j] = g->voters[i].weight;
    }
    /* The worst k failures are the k heaviest voters. */
    uint64_t threshold = group_threshold(g, QR_VOTING_BOTH);
    uint64_t remaining = g->weight_total;
    uint32_t k = 0;
    while (k < g->voters_count && remaining - weights[k] >= threshold) {
        remaining -= weights[k];
        k++;
    }
    return k;
}

uint32_t qr_voting_faults_tolerated(const struct qr_voting *v)
{
    check_voting(v);
    /* Any k failures hit each group with at most k of its voters, so the minimum is exact. */
    uint32_t tolerated = UINT32_MAX;
    for (uint32_t gi = 0; gi < v->groups_count; gi++) {
        uint32_t k = group_faults_tolerated(&v->groups[gi]);
        if (k < tolerated) {
            tolerated = k;
        }
    }
    return tolerated;
}

bool qr_voting_quorums_intersect(const struct qr_voting *v)
{
    check_voting(v);
    for (uint32_t gi = 0; gi < v->groups_count; gi++) {
        if (!group_intersects(&v->groups[gi])) {
            return false;
        }
    }
    return true;
}

/* ---- Analysis: exact dynamic programs over the union of voters ----------- */

struct dp_voter {
    uint32_t weight[QR_VOTING_GROUPS_MAX]; /* Weight in each group; 0 when not a member. */
};

struct dp_shape {
    size_t voters_count;
    struct dp_voter voters[UNION_VOTERS_MAX];
    uint64_t threshold[QR_VOTING_GROUPS_MAX]; /* 0 for an absent second group. */
    size_t dims[QR_VOTING_GROUPS_MAX];        /* threshold + 1: weights are capped there. */
    size_t cells_count;
};

static int
dp_shape_init(struct dp_shape *shape, const struct qr_voting *v, enum qr_voting_phase phase)
{
    memset(shape, 0, sizeof(*shape));
    qr_node_id ids[UNION_VOTERS_MAX];
    size_t count = qr_voting_voter_ids(v, ids, UNION_VOTERS_MAX);
    QR_ASSERT(count <= UNION_VOTERS_MAX);
    shape->voters_count = count;
    shape->cells_count = 1;
    for (uint32_t gi = 0; gi < QR_VOTING_GROUPS_MAX; gi++) {
        if (gi < v->groups_count) {
            const struct qr_voting_group *g = &v->groups[gi];
            shape->threshold[gi] = group_threshold(g, phase);
            for (size_t i = 0; i < count; i++) {
                int at = group_find(g, ids[i]);
                shape->voters[i].weight[gi] = at >= 0 ? g->voters[at].weight : 0;
            }
        }
        shape->dims[gi] = (size_t)shape->threshold[gi] + 1;
        if (shape->cells_count > DP_CELLS_MAX / shape->dims[gi]) {
            return QR_ETOOBIG;
        }
        shape->cells_count *= shape->dims[gi];
    }
    return 0;
}

/* The cell reached from `cell` when voter i joins the live set. */
static size_t dp_step(const struct dp_shape *shape, size_t cell, size_t i)
{
    size_t a = cell % shape->dims[0];
    size_t b = cell / shape->dims[0];
    a += shape->voters[i].weight[0];
    b += shape->voters[i].weight[1];
    a = a < shape->dims[0] ? a : shape->dims[0] - 1;
    b = b < shape->dims[1] ? b : shape->dims[1] - 1;
    return b * shape->dims[0] + a;
}

int qr_voting_availability(const struct qr_voting *v,
                           enum qr_voting_phase phase,
                           double p_fail,
                           double *availability_out)
{
    check_voting(v);
    QR_ASSERT(availability_out != NULL);
    if (!(p_fail >= 0.0 && p_fail <= 1.0)) {
        return QR_EINVAL;
    }
    struct dp_shape shape;
    int rv = dp_shape_init(&shape, v, phase);
    if (rv != 0) {
        return rv;
    }
    double *cur = qr_calloc(shape.cells_count, sizeof(double));
    double *next = qr_calloc(shape.cells_count, sizeof(double));
    if (cur == NULL || next == NULL) {
        qr_free(cur);
        qr_free(next);
        return QR_ENOMEM;
    }
    /* cur[cell]: probability that the voters seen so far have live weights `cell`. */
    cur[0] = 1.0;
    for (size_t i = 0; i < shape.voters_count; i++) {
        memset(next, 0, shape.cells_count * sizeof(double));
        for (size_t cell = 0; cell < shape.cells_count; cell++) {
            if (cur[cell] != 0.0) {
                next[cell] += cur[cell] * p_fail;
                next[dp_step(&shape, cell, i)] += cur[cell] * (1.0 - p_fail);
            }
        }
        double *swap = cur;
        cur = next;
        next = swap;
    }
    /* The last cell holds every outcome whose live weights reach all thresholds. */
    double availability = cur[shape.cells_count - 1];
    qr_free(cur);
    qr_free(next);
    *availability_out = availability < 0.0 ? 0.0 : (availability > 1.0 ? 1.0 : availability);
    return 0;
}

static int quorum_size_min_dp(const struct dp_shape *shape, uint32_t *size_out)
{
    uint32_t *cur = qr_malloc(shape->cells_count * sizeof(uint32_t));
    uint32_t *next = qr_malloc(shape->cells_count * sizeof(uint32_t));
    if (cur == NULL || next == NULL) {
        qr_free(cur);
        qr_free(next);
        return QR_ENOMEM;
    }
    /* cur[cell]: fewest voters reaching weights `cell` (UINT32_MAX when unreachable). */
    for (size_t cell = 0; cell < shape->cells_count; cell++) {
        cur[cell] = UINT32_MAX;
    }
    cur[0] = 0;
    for (size_t i = 0; i < shape->voters_count; i++) {
        memcpy(next, cur, shape->cells_count * sizeof(uint32_t));
        for (size_t cell = 0; cell < shape->cells_count; cell++) {
            if (cur[cell] != UINT32_MAX) {
                size_t to = dp_step(shape, cell, i);
                if (cur[cell] + 1 < next[to]) {
                    next[to] = cur[cell] + 1;
                }
            }
        }
        uint32_t *swap = cur;
        cur = next;
        next = swap;
    }
    uint32_t size = cur[shape->cells_count - 1];
    qr_free(cur);
    qr_free(next);
    QR_ASSERT(size != UINT32_MAX && "all voters together always form a quorum");
    *size_out = size;
    return 0;
}

int qr_voting_quorum_size_min(const struct qr_voting *v,
                              enum qr_voting_phase phase,
                              uint32_t *size_out)
{
    check_voting(v);
    QR_ASSERT(size_out != NULL);
    struct dp_shape shape;
    int rv = dp_shape_init(&shape, v, phase);
    if (rv != 0) {
        return rv;
    }
    return quorum_size_min_dp(&shape, size_out);
}

const char *qr_voting_rule_name(enum qr_voting_rule rule)
{
    switch (rule) {
    case QR_VOTING_MAJORITY:
        return "majority";
    case QR_VOTING_FLEXIBLE:
        return "flexible";
    case QR_VOTING_BYZANTINE:
        return "byzantine";
    case QR_VOTING_JOINT:
        return "joint";
    }
    return "unknown";
}
