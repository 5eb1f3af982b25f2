/*
 * sim/sim.h: the deterministic cluster simulator behind `quorum-sim`.
 *
 * Layer: sim (depends on core, voting, kv, util and the linearizability
 * checker). One run puts 3, 5 or 7 consensus cores (plus spare nodes that
 * join through membership changes) on a simulated network and simulated disks
 * in simulated time, drives key-value clients against them, injects the
 * faults the design claims to survive, checks the safety invariants after
 * every event and the client history for linearizability at the end, and
 * after the faults stop checks that the cluster recovers (a leader, every
 * client served, every member converged).
 *
 * Determinism: every random choice of a run comes from one generator seeded
 * with opts.seed, and nothing reads a clock, so the same options give the
 * same run, byte for byte; result.trace_hash fingerprints it.
 *
 * Faults (each a bit of opts.faults):
 *   loss       messages dropped at random
 *   delay      some messages delayed by many ticks
 *   dup        messages delivered twice
 *   reorder    per-link delivery order not preserved
 *   partition  symmetric partitions (two sides)
 *   oneway     asymmetric partitions (one direction of some links cut)
 *   bridge     two sides that only one bridge node can talk to
 *   crash      nodes crash (losing or tearing the disk write in flight) and restart
 *   slowdisk   some disks become slow
 *   skew       nodes tick at different rates
 *   member     membership changes: add learners, promote, remove voters, joint changes
 *   transfer   leadership transfers
 *
 * The simulator writes its report (and, when verbose, the event trace) to the
 * streams given in the options; it never reads a clock and allocates only
 * through util/alloc.h.
 */
#ifndef QR_SIM_SIM_H
#define QR_SIM_SIM_H

#include <stdio.h>

#include "quorum/types.h"

/** Most nodes of a run: 7 initial members plus spares. */
#define QR_SIM_NODES_MAX 10
/** Longest fault phase, in ticks. */
#define QR_SIM_TICKS_MAX 1000000
/** Default fault phase, in ticks. */
#define QR_SIM_TICKS_DEFAULT 600
/** Size of the text fields of a result. */
#define QR_SIM_TEXT_SIZE 1024

enum qr_sim_fault {
    QR_SIM_FAULT_LOSS = 1u << 0,
    QR_SIM_FAULT_DELAY = 1u << 1,
    QR_SIM_FAULT_DUP = 1u << 2,
    QR_SIM_FAULT_REORDER = 1u << 3,
    QR_SIM_FAULT_PARTITION = 1u << 4,
    QR_SIM_FAULT_ONEWAY = 1u << 5,
    QR_SIM_FAULT_BRIDGE = 1u << 6,
    QR_SIM_FAULT_CRASH = 1u << 7,
    QR_SIM_FAULT_SLOWDISK = 1u << 8,
    QR_SIM_FAULT_SKEW = 1u << 9,
    QR_SIM_FAULT_MEMBER = 1u << 10,
    QR_SIM_FAULT_TRANSFER = 1u << 11,
};
#define QR_SIM_FAULTS_ALL ((1u << 12) - 1)

/**
 * Deliberate bugs the simulator can plant in its own driver, to prove that the checkers
 * catch what they claim to (tests only; a real run uses QR_SIM_BUG_NONE).
 */
enum qr_sim_bug {
    QR_SIM_BUG_NONE = 0,
    QR_SIM_BUG_STALE_READ = 1, /* GETs served from the local store at once, no read index. */
    QR_SIM_BUG_AMNESIA = 2,    /* A crash wipes the whole disk: votes and log forgotten. */
};

/** What to run. */
struct qr_sim_opts {
    uint64_t seed;        /* Seeds the one generator of the run. */
    uint32_t nodes_count; /* Initial members: 3, 5 or 7; 0: chosen by the seed. */
    uint64_t ticks;       /* Fault phase in ticks, 1 ... QR_SIM_TICKS_MAX; 0: default. */
    uint32_t faults;      /* Faults allowed (QR_SIM_FAULT_* bits). */
    bool is_faults_exact; /* Enable every allowed fault; else the seed picks a subset. */
    enum qr_sim_bug bug;  /* QR_SIM_BUG_NONE except in tests of the checkers. */
    FILE *trace_out;      /* Borrowed; every event line goes here when not NULL. */
    FILE *report_out;     /* Borrowed; the failure report goes here when not NULL. */
};

/** What happened. */
struct qr_sim_result {
    bool is_failed;                 /* A check failed: check and details say which. */
    char check[64];                 /* Name of the failed check; "" when none. */
    char details[QR_SIM_TEXT_SIZE]; /* What it found. */
    char replay[QR_SIM_TEXT_SIZE];  /* The command that replays this run. */
    uint32_t nodes_count;           /* Initial members actually used. */
    uint32_t faults;                /* Faults actually enabled. */
    uint64_t ticks;                 /* Fault phase actually used. */
    uint64_t trace_hash;            /* Fingerprint of the whole event trace. */
    uint64_t events_count;          /* Trace lines written. */
    uint64_t messages_delivered;
    uint64_t messages_dropped;
    uint64_t crashes;
    uint64_t elections;           /* Distinct (term, leader) pairs seen. */
    uint64_t snapshots_installed; /* Snapshots received from a leader and installed. */
    uint64_t config_changes;      /* Membership changes the leader accepted. */
    uint64_t ops_completed;       /* Client operations with an answer. */
    uint64_t ops_indeterminate;   /* Writes with no answer (timed out, connection lost). */
    uint64_t ops_failed;          /* Operations known not to have taken effect. */
    uint64_t commit_index_max;    /* Highest index committed. */
    int lin_verdict;              /* enum qr_lin_verdict of the history. */
};

/**
 * Run one simulation.
 * @param opts        Borrows.
 * @param result_out  Out: filled in whenever 0 is returned.
 * @return 0 (the run finished; result_out->is_failed says whether a check failed),
 *         QR_EINVAL (bad options), QR_ENOMEM, QR_EBUSY (a simulator limit was reached).
 */
int qr__sim_run(const struct qr_sim_opts *opts, struct qr_sim_result *result_out);

/**
 * Parse a fault list: "all", "none", or names separated by commas ("loss,crash").
 * @param mask_out  Out: QR_SIM_FAULT_* bits.
 * @param errmsg    Out, may be NULL: names the unknown fault.
 * @return 0 or QR_EINVAL.
 */
int qr__sim_faults_parse(const char *text, uint32_t *mask_out, char *errmsg);

/**
 * Write a fault mask as the list qr__sim_faults_parse reads back ("none" when empty).
 * @param buf  Out: size bytes, always NUL-terminated.
 */
void qr__sim_faults_format(uint32_t mask, char *buf, size_t size);

#endif /* QR_SIM_SIM_H */
