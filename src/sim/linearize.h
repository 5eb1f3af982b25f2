/*
 * sim/linearize.h: a linearizability checker for key-value histories.
 *
 * Layer: sim (depends on util only). The simulator records what each client
 * asked the cluster and what it heard back; this module decides whether some
 * single order of those operations, consistent with real time, explains every
 * answer. Keys are independent in the key-value model, so the history is split
 * per key and each key is searched on its own with Wing and Gong's algorithm as
 * improved by Lowe (a cache of visited configurations, so no configuration is
 * explored twice). The search is iterative, its depth is bounded by the number
 * of operations of one key, and its length by a step bound given by the caller:
 * when the bound runs out the verdict is "unknown", never a hang.
 *
 * The model. Keys are uint64_t, values int64_t, and a key is either absent or
 * holds one value:
 *   GET key            -> (is_found, output): is_found false when absent.
 *   SET key input      -> ok; the key now holds input.
 *   DEL key            -> output = number of keys removed, 0 or 1; now absent.
 *   INCR key input     -> output = new value; an absent key counts as 0. An
 *                         increment that would overflow int64_t is refused by
 *                         the store, so it never takes effect.
 *
 * Time. Each operation carries the simulated tick at which it was invoked and
 * the tick at which its answer arrived. Operation a must precede b only when
 * a.complete_tick < b.invoke_tick; ticks that touch count as concurrent, since
 * many events may share one simulated tick.
 *
 * Indeterminate operations (timed out, connection lost: the caller cannot tell
 * whether they took effect) may take effect at any point after their invoke
 * tick, or never; their output and complete tick are ignored. An indeterminate
 * GET can change nothing and is dropped. Operations that definitely failed
 * without effect ("not leader, not applied") must not be passed at all.
 *
 * This module never prints, never reads a clock and allocates only through
 * util/alloc.h. It keeps no state between calls, so calls on different
 * histories may run on different threads.
 */
#ifndef QR_SIM_LINEARIZE_H
#define QR_SIM_LINEARIZE_H

#include "quorum/err.h" /* The QR_E* codes qr__lin_check returns. */

/** Most operations one key may have (indeterminate GETs excluded); more is QR_ETOOBIG. */
#define QR_LIN_KEY_OPS_MAX 4096
/** Most operations one history may have; more is QR_ETOOBIG. */
#define QR_LIN_OPS_MAX (1u << 24)
/** Memory for visited configurations per key when qr_lin_opts.cache_bytes_max is 0. */
#define QR_LIN_CACHE_BYTES_DEFAULT ((size_t)64 << 20)

/** What an operation does; see the model above. */
enum qr_lin_kind {
    QR_LIN_GET = 0,
    QR_LIN_SET = 1,
    QR_LIN_DEL = 2,
    QR_LIN_INCR = 3,
};

/** The answer for a whole history. */
enum qr_lin_verdict {
    QR_LIN_OK = 0,        /* Every key has an order explaining all answers. */
    QR_LIN_VIOLATION = 1, /* Some key has none: result.key says which. */
    QR_LIN_UNKNOWN = 2,   /* No violation found, but some key ran out of steps. */
};

/** One client operation on one key, as recorded by the simulator. */
struct qr_lin_op {
    uint64_t client;        /* Client id; only used in explanations. */
    uint64_t key;           /* The key the operation touches. */
    enum qr_lin_kind kind;  /* GET, SET, DEL or INCR. */
    int64_t input;          /* SET: the value written. INCR: the delta. Otherwise ignored. */
    bool is_indeterminate;  /* No answer came back: is_found, output, complete_tick ignored. */
    bool is_found;          /* GET: whether the key was present. Otherwise ignored. */
    int64_t output;         /* GET (found): value. DEL: count removed. INCR: new value. */
    uint64_t invoke_tick;   /* When the client sent the request. */
    uint64_t complete_tick; /* When the answer arrived; >= invoke_tick unless indeterminate. */
};

/** Limits of one check. */
struct qr_lin_opts {
    uint64_t steps_max;     /* Search steps per key before giving up as UNKNOWN; > 0. */
    size_t cache_bytes_max; /* Visited-configuration memory per key; 0 means the default. */
};

/** The verdict and, unless OK, which key and why. */
struct qr_lin_result {
    enum qr_lin_verdict verdict; /* Meaningful only when qr__lin_check returned 0. */
    uint64_t key;                /* Key that violated, or ran out of steps; 0 when OK. */
    size_t op_index;             /* Violation: 0-based index into ops of the op that could not
                                    be placed. Otherwise SIZE_MAX. */
    size_t keys_count;           /* Distinct keys checked (before an early stop). */
    uint64_t steps_count;        /* Search steps, summed over the keys checked. */
    char errmsg[QR_ERRMSG_SIZE]; /* Explanation unless OK; on error, what was wrong. */
};

/**
 * Check whether a history is linearizable under the key-value model above.
 *
 * Keys are checked in increasing order. The first key with a violation ends
 * the check: a violation is definite, so it wins over a key found UNKNOWN
 * earlier. For a violation, op_index names the operation that no order of
 * the key's operations could place (in the deepest partial order the search
 * reached), and errmsg says the key, that operation with its client and ticks,
 * and the model's value at that point. Work is bounded by the number of keys
 * times opts->steps_max steps, each costing time linear in the operations that
 * overlap; memory by QR_LIN_KEY_OPS_MAX and opts->cache_bytes_max. When the
 * cache is full the search goes on without caching, which is slower but
 * still exact. Finding an order is usually fast; proving there is none can
 * take time exponential in the indeterminate operations of one key that are
 * pending at once (invoked, and free to take effect later), and is where the
 * step bound turns into UNKNOWN. Any thread; the call keeps no state.
 *
 * @param ops         Borrows ops_count operations, in any order; may be NULL if ops_count is 0.
 * @param ops_count   Number of operations; at most QR_LIN_OPS_MAX.
 * @param opts        Borrows. Limits of the check.
 * @param result_out  Borrows; filled in on success, and errmsg set on failure.
 * @return 0 (the verdict is in result_out), QR_EINVAL (opts->steps_max is 0, or an operation
 *         has an unknown kind, a complete tick before its invoke tick, or a DEL count other than
 *         0 or 1: errmsg names it), QR_ETOOBIG (more than QR_LIN_OPS_MAX operations, or more than
 * QR_LIN_KEY_OPS_MAX on one key), QR_ENOMEM, QR_EINTERNAL (a bug in this module).
 */
int qr__lin_check(const struct qr_lin_op *ops,
                  size_t ops_count,
                  const struct qr_lin_opts *opts,
                  struct qr_lin_result *result_out);

/**
 * The name of a verdict: "ok", "violation" or "unknown".
 * @return A static string; "?" for a value outside the enum. Any thread.
 */
const char *qr__lin_verdict_name(enum qr_lin_verdict verdict);

/**
 * The name of an operation kind: "get", "set", "del" or "incr".
 * @return A static string; "?" for a value outside the enum. Any thread.
 */
const char *qr__lin_kind_name(enum qr_lin_kind kind);

#endif /* QR_SIM_LINEARIZE_H */
