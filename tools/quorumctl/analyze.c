/*
 * quorumctl analyze: flag parsing and the report.
 *
 * Tool code above libquorum. It asks voting/ every question about quorums and
 * computes none of the answers itself.
 */
#include "analyze.h"

#include <math.h>
#include <string.h>

#include "quorum/err.h"
#include "util/err.h"
#include "util/parse.h"

#define P_FAIL_DEFAULT 0.01

void ctl_analyze_usage(FILE *out)
{
    (void)fprintf(
        out,
        "usage: quorumctl analyze --nodes N [options]\n"
        "\n"
        "Shows what a voting configuration of N nodes promises: quorum sizes, faults\n"
        "tolerated, whether quorums intersect, load and availability.\n"
        "\n"
        "options:\n"
        "  --nodes N                 number of voters, 1 to %d (required)\n"
        "  --fault-tolerance T       faults to tolerate; refused when N cannot (crash\n"
        "                            needs N >= 2T+1, byzantine N >= 3T+1); default: the\n"
        "                            most N allows\n"
        "  --model crash|byzantine   fault model (default crash)\n"
        "  --weights W1,W2,...       one weight per node, 1 to %d (default all 1)\n"
        "  --election-quorum W       flexible quorums: weight that wins an election\n"
        "  --replication-quorum W    flexible quorums: weight that commits an entry\n"
        "  --p-fail P                independent failure probability per node, 0 to 1\n"
        "                            (default %g)\n"
        "  --json                    print one JSON object\n"
        "  -h, --help                this text\n"
        "\n"
        "example: quorumctl analyze --nodes 3 --fault-tolerance 1\n"
        "exit status: 0 ok, 2 bad flags or an impossible configuration\n",
        QR_VOTING_VOTERS_MAX, QR_VOTING_WEIGHT_MAX, P_FAIL_DEFAULT);
}

static int
parse_one(int argc, char *const *argv, int *i, struct ctl_analyze_args *args, char *errmsg)
{
    const char *arg = argv[*i];
    uint64_t n = 0;
    int rv = 0;
    const char *value = NULL;
    if (strcmp(arg, "--json") == 0) {
        args->json = true;
        return 0;
    }
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        args->help = true;
        return 0;
    }
    static const char *const with_value[] = {
        "--nodes",           "--fault-tolerance",    "--model", "--weights",
        "--election-quorum", "--replication-quorum", "--p-fail"};
    size_t which = 0;
    while (which < sizeof(with_value) / sizeof(with_value[0]) &&
           !qr__flag_is(arg, with_value[which])) {
        which++;
    }
    if (which == sizeof(with_value) / sizeof(with_value[0])) {
        return qr__errf(errmsg, QR_EINVAL, "unknown option '%.40s' (see --help)", arg);
    }
    value = qr__flag_value(argc, argv, i, with_value[which]);
    if (value == NULL) {
        return qr__errf(errmsg, QR_EINVAL, "%s needs a value", with_value[which]);
    }
    switch (which) {
    case 0:
        rv = qr__parse_u64(value, 1, QR_VOTING_VOTERS_MAX, &n, errmsg);
        args->nodes_count = (uint32_t)n;
        break;
    case 1:
        rv = qr__parse_u64(value, 0, QR_VOTING_VOTERS_MAX, &n, errmsg);
        args->faults = (uint32_t)n;
        args->has_faults = true;
        break;
    case 2:
        if (strcmp(value, "crash") == 0) {
            args->model = QR_FAULT_CRASH;
        } else if (strcmp(value, "byzantine") == 0) {
            args->model = QR_FAULT_BYZANTINE;
        } else {
            rv = qr__errf(errmsg, QR_EINVAL, "'%.40s' is not a fault model, use crash or byzantine",
                          value);
        }
        break;
    case 3:
        rv = qr__parse_u32_list(value, 1, QR_VOTING_WEIGHT_MAX, args->weights, QR_VOTING_VOTERS_MAX,
                                &args->weights_count, errmsg);
        break;
    case 4:
        rv = qr__parse_u64(value, 1, UINT32_MAX, &args->election_weight_min, errmsg);
        break;
    case 5:
        rv = qr__parse_u64(value, 1, UINT32_MAX, &args->replication_weight_min, errmsg);
        break;
    default:
        rv = qr__parse_double(value, 0.0, 1.0, &args->p_fail, errmsg);
        break;
    }
    if (rv != 0) {
        return qr__err_wrapf(errmsg, rv, "%s", with_value[which]);
    }
    return 0;
}

static int build_flexible(const struct ctl_analyze_args *args, struct qr_voting *v, char *errmsg)
{
    if (args->model != QR_FAULT_CRASH) {
        return qr__errf(errmsg, QR_EINVAL, "flexible quorums are for the crash model only");
    }
    if (args->election_weight_min == 0 || args->replication_weight_min == 0) {
        return qr__errf(errmsg, QR_EINVAL,
                        "flexible quorums need both --election-quorum and --replication-quorum");
    }
    struct qr_voter voters[QR_VOTING_VOTERS_MAX];
    for (uint32_t i = 0; i < args->nodes_count; i++) {
        voters[i].id = i + 1;
        voters[i].weight = args->weights_count > 0 ? args->weights[i] : 1;
    }
    int rv = qr_voting_init_flexible(v, voters, args->nodes_count, args->election_weight_min,
                                     args->replication_weight_min, errmsg);
    if (rv != 0) {
        return rv;
    }
    uint32_t survives = qr_voting_faults_tolerated(v);
    if (args->has_faults && survives < args->faults) {
        return qr__errf(errmsg, QR_ETOOFEWNODES,
                        "voting: these flexible quorums survive only %u crash faults, %u were "
                        "requested; lower the thresholds or add nodes",
                        survives, args->faults);
    }
    return 0;
}

static int build(struct ctl_analyze_args *args, struct qr_voting *v, char *errmsg)
{
    if (args->election_weight_min != 0 || args->replication_weight_min != 0) {
        return build_flexible(args, v, errmsg);
    }
    struct qr_voting_spec spec = {
        .nodes_count = args->nodes_count,
        .faults = args->faults,
        .model = args->model,
        .weights = args->weights_count > 0 ? args->weights : NULL,
    };
    if (args->has_faults) {
        return qr_voting_init_tolerating(v, &spec, errmsg);
    }
    /* No tolerance given: the most this many nodes allow, found by asking voting/. */
    int rv = qr_voting_init_tolerating(v, &spec, errmsg);
    for (uint32_t f = 1; rv == 0 && f <= args->nodes_count; f++) {
        struct qr_voting more;
        spec.faults = f;
        if (qr_voting_init_tolerating(&more, &spec, NULL) != 0) {
            break;
        }
        *v = more;
        args->faults = f;
    }
    return rv;
}

int ctl_analyze_parse(
    int argc, char *const *argv, struct ctl_analyze_args *args, struct qr_voting *v, char *errmsg)
{
    memset(args, 0, sizeof(*args));
    args->model = QR_FAULT_CRASH;
    args->p_fail = P_FAIL_DEFAULT;
    for (int i = 0; i < argc; i++) {
        int rv = parse_one(argc, argv, &i, args, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    if (args->help) {
        return 0;
    }
    if (args->nodes_count == 0) {
        return qr__errf(errmsg, QR_EINVAL, "--nodes is required (see --help)");
    }
    if (args->weights_count != 0 && args->weights_count != args->nodes_count) {
        return qr__errf(errmsg, QR_EINVAL, "--weights lists %zu weights for %u nodes",
                        args->weights_count, args->nodes_count);
    }
    return build(args, v, errmsg);
}

struct report {
    uint32_t election_size;    /* Fewest voters that win an election. */
    uint32_t replication_size; /* Fewest voters that commit. */
    uint32_t tolerated;        /* Crash faults survived. */
    double availability;       /* Both phases available. */
    double load;               /* Smallest quorum / voters. */
};

static int
report_compute(const struct ctl_analyze_args *args, const struct qr_voting *v, struct report *r)
{
    int rv = qr_voting_quorum_size_min(v, QR_VOTING_ELECTION, &r->election_size);
    if (rv == 0) {
        rv = qr_voting_quorum_size_min(v, QR_VOTING_REPLICATION, &r->replication_size);
    }
    if (rv == 0) {
        rv = qr_voting_availability(v, QR_VOTING_BOTH, args->p_fail, &r->availability);
    }
    r->tolerated = qr_voting_faults_tolerated(v);
    uint32_t smallest =
        r->election_size < r->replication_size ? r->election_size : r->replication_size;
    r->load = (double)smallest / (double)v->groups[0].voters_count;
    return rv;
}

static double nines(double availability)
{
    return availability >= 1.0 ? INFINITY : -log10(1.0 - availability);
}

static void print_json(FILE *out,
                       const struct ctl_analyze_args *args,
                       const struct qr_voting *v,
                       const struct report *r)
{
    const struct qr_voting_group *g = &v->groups[0];
    (void)fprintf(out, "{\"nodes\":%u,\"model\":\"%s\",\"rule\":\"%s\",\"weights\":[",
                  g->voters_count, args->model == QR_FAULT_CRASH ? "crash" : "byzantine",
                  qr_voting_rule_name(v->rule));
    for (uint32_t i = 0; i < g->voters_count; i++) {
        (void)fprintf(out, "%s%u", i == 0 ? "" : ",", g->voters[i].weight);
    }
    (void)fprintf(out,
                  "],\"weight_total\":%llu,\"election_quorum_weight\":%llu,"
                  "\"replication_quorum_weight\":%llu,\"election_quorum_nodes_min\":%u,"
                  "\"replication_quorum_nodes_min\":%u,\"faults_requested\":%u,"
                  "\"crash_faults_tolerated\":%u,\"byzantine_faults_tolerated\":%u,"
                  "\"quorums_intersect\":%s,\"load\":%.6f,\"p_fail\":%g,\"availability\":%.12f}\n",
                  (unsigned long long)g->weight_total, (unsigned long long)g->election_weight_min,
                  (unsigned long long)g->replication_weight_min, r->election_size,
                  r->replication_size, args->faults, r->tolerated, g->byzantine_faults,
                  qr_voting_quorums_intersect(v) ? "true" : "false", r->load, args->p_fail,
                  r->availability);
}

static void print_quorum_lines(FILE *out, const struct qr_voting_group *g, const struct report *r)
{
    if (g->rule == QR_VOTING_FLEXIBLE) {
        (void)fprintf(out, "election quorum      weight >= %llu of %llu (at least %u nodes)\n",
                      (unsigned long long)g->election_weight_min,
                      (unsigned long long)g->weight_total, r->election_size);
        (void)fprintf(out, "replication quorum   weight >= %llu of %llu (at least %u nodes)\n",
                      (unsigned long long)g->replication_weight_min,
                      (unsigned long long)g->weight_total, r->replication_size);
        return;
    }
    (void)fprintf(out, "quorum               weight >= %llu of %llu (at least %u nodes)%s\n",
                  (unsigned long long)g->election_weight_min, (unsigned long long)g->weight_total,
                  r->election_size,
                  g->rule == QR_VOTING_BYZANTINE ? ", the same for every phase" : "");
}

static void print_table(FILE *out,
                        const struct ctl_analyze_args *args,
                        const struct qr_voting *v,
                        const struct report *r)
{
    const struct qr_voting_group *g = &v->groups[0];
    (void)fprintf(out, "nodes                %u\n", g->voters_count);
    (void)fprintf(out, "fault model          %s\n",
                  args->model == QR_FAULT_CRASH ? "crash (nodes stop, never lie)"
                                                : "byzantine (faulty nodes may lie)");
    (void)fprintf(out, "rule                 %s\n", qr_voting_rule_name(v->rule));
    (void)fprintf(out, "weights              ");
    for (uint32_t i = 0; i < g->voters_count; i++) {
        (void)fprintf(out, "%s%llu:%u", i == 0 ? "" : " ", (unsigned long long)g->voters[i].id,
                      g->voters[i].weight);
    }
    (void)fprintf(out, "  (node:weight)\n");
    print_quorum_lines(out, g, r);
    if (g->rule == QR_VOTING_BYZANTINE) {
        (void)fprintf(out,
                      "faults tolerated     %u byzantine (any two quorums share >= %u nodes, so "
                      "at least one honest); %u crash\n",
                      g->byzantine_faults, g->byzantine_faults + 1, r->tolerated);
    } else {
        (void)fprintf(out, "faults tolerated     %u crash (any %u node%s may stop)\n", r->tolerated,
                      r->tolerated, r->tolerated == 1 ? "" : "s");
    }
    (void)fprintf(out, "quorums intersect    %s\n", qr_voting_quorums_intersect(v) ? "yes" : "NO");
    bool equal_weights = true;
    for (uint32_t i = 1; i < g->voters_count; i++) {
        equal_weights = equal_weights && g->voters[i].weight == g->voters[0].weight;
    }
    (void)fprintf(out, "load                 %.3f (smallest quorum / nodes%s)\n", r->load,
                  equal_weights ? "" : "; a lower bound with unequal weights");
    double n9 = nines(r->availability);
    if (isinf(n9)) {
        (void)fprintf(out, "availability         1 with p_fail=%g per node\n", args->p_fail);
    } else {
        (void)fprintf(out, "availability         %.9f with p_fail=%g per node (%.1f nines)\n",
                      r->availability, args->p_fail, n9);
    }
}

int ctl_analyze_print(FILE *out, const struct ctl_analyze_args *args, const struct qr_voting *v)
{
    struct report r;
    int rv = report_compute(args, v, &r);
    if (rv != 0) {
        return rv;
    }
    if (args->json) {
        print_json(out, args, v, &r);
    } else {
        print_table(out, args, v, &r);
    }
    return 0;
}
