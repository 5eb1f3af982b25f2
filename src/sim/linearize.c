/*
 * sim/linearize.c: Wing and Gong's linearizability search with Lowe's cache.
 *
 * Layer: sim (util only). The history is split per key; each key's operations
 * become call and return events sorted by tick in a doubly linked list. The
 * search walks the list from its head: at a call event it tries to apply that
 * operation to the model and, if the answer matches and the resulting
 * configuration (set of operations placed, model state) is new, it unlinks the
 * operation's events and starts again from the head; at a return event an
 * operation's deadline has passed unplaced, so it undoes the last placement.
 * This is the algorithm of J. Wing and C. Gong (1993) with the configuration
 * cache G. Lowe describes in "Testing for linearizability" (2017), the same
 * idea as Horn and Kroening's and the Porcupine checker's memoization; the
 * code is ours.
 *
 * Indeterminate ("lost") operations have no return event, so nothing forces
 * them to be placed: the search succeeds once every determinate one is. They
 * stay candidates until the end, which makes refuting a history exponential in
 * the lost operations pending at once; four rules cut that down, each sound
 * because the move it skips is never better than one it keeps:
 *   - a lost operation that would not change the state is not placed;
 *   - lost operations with the same effect (twins) are placed in invoke order;
 *   - a configuration is skipped when the cache holds one with the same state
 *     and determinate operations and a subset of its lost ones: leaving the
 *     extra ones out is always allowed, and that was explored already;
 *   - at each configuration determinate operations are tried first, so lost
 *     ones are placed as late as possible and lean configurations, which
 *     dominate the others, are found first.
 *
 * It must never recurse (the stack is an explicit array of at most one frame
 * per operation), never loop without a bound (steps_max), and never allocate
 * other than through util/alloc.h.
 */
#include "sim/linearize.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"

/* Index of "no event": an indeterminate operation has no return event. */
#define EVENT_NONE UINT32_MAX
/* Index of "no operation", for lin_op.twin_previous. */
#define OP_NONE UINT32_MAX
/* First sizes of the cache arrays; both double as they fill. */
#define CACHE_ENTRIES_INITIAL 64
#define CACHE_SLOTS_INITIAL   128
/* Most records of one group a lookup reads looking for a dominating one;
 * bounds the lookup's cost, at worst missing a chance to prune. */
#define CACHE_GROUP_SCAN_MAX 64
/* Words at the start of a cache record: full hash, group hash, presence,
 * value, next record of the same group plus 1 (0 ends the group). */
#define RECORD_HEADER_WORDS 5

_Static_assert(QR_LIN_KEY_OPS_MAX * 2 + 1 < EVENT_NONE, "event indices and the head fit uint32_t");
_Static_assert((CACHE_SLOTS_INITIAL & (CACHE_SLOTS_INITIAL - 1)) == 0, "slots are a power of 2");
_Static_assert(CACHE_SLOTS_INITIAL >= 2 * CACHE_ENTRIES_INITIAL, "slots stay at most half full");

/* The model's view of one key. An absent key keeps value 0, so that equal
 * states are equal field by field. */
struct lin_state {
    int64_t value;   /* Meaningful only when is_present. */
    bool is_present; /* Whether the key exists. */
};

/* One operation of the key being searched, copied for locality. */
struct lin_op {
    size_t source_index;    /* 0-based index into the caller's ops. */
    int64_t input;          /* As in qr_lin_op. */
    int64_t output;         /* As in qr_lin_op. */
    enum qr_lin_kind kind;  /* Validated. */
    bool is_indeterminate;  /* As in qr_lin_op; never true for a GET. */
    bool is_found;          /* As in qr_lin_op. */
    uint32_t call_event;    /* Index of its call event in lin_search.events. */
    uint32_t return_event;  /* Index of its return event, or EVENT_NONE if indeterminate. */
    uint32_t twin_previous; /* Indeterminate: the latest one invoked before it with the same
                               effect, or OP_NONE. Determinate: OP_NONE. */
};

/* A call or return, in the order the search walks them. */
struct lin_event {
    uint64_t tick;     /* invoke_tick for a call, complete_tick for a return. */
    uint32_t op_index; /* 0-based index into lin_search.ops. */
    bool is_return;    /* Calls sort before returns at equal ticks: touching ops overlap. */
};

/* One placed operation, and the state to restore when it is undone. */
struct lin_frame {
    uint32_t call_event;    /* The placed operation's call event. */
    struct lin_state state; /* The model state before it was placed. */
};

/* Where the search's walk is: at an event, in one of its two passes. */
struct lin_cursor {
    uint32_t event;    /* Index into lin_search.events; never the head. */
    bool is_lost_pass; /* Whether only indeterminate operations are tried. */
};

/* A configuration of the search, as the cache sees it. Its group is what
 * remains once the indeterminate operations placed are forgotten: the
 * determinate operations placed, and the state. */
struct lin_config {
    const uint64_t *bits;   /* Operations placed, one bit per operation. */
    struct lin_state state; /* The model state. */
    uint64_t group_hash;    /* Hash of the determinate bits and the state. */
    uint64_t full_hash;     /* group_hash mixed with the indeterminate bits. */
    bool has_lost_placed;   /* Whether any indeterminate operation is placed. */
};

/* Configurations already explored, each stored once as a record: the
 * RECORD_HEADER_WORDS words then the bitset. Two open-addressing tables index
 * the records: `exact` by the whole configuration, and `group` (only when the
 * key has indeterminate operations) by group, pointing at the newest record of
 * a list that links every record of that group. */
struct lin_cache {
    uint32_t *exact_slots;     /* slots_count; 0 is empty, else a record index plus 1. */
    uint32_t *group_slots;     /* slots_count, or NULL; 0 is empty, else newest record plus 1. */
    size_t slots_count;        /* 0, or a power of 2 at least twice entries_count. */
    uint64_t *records;         /* entries_capacity records of record_words words. */
    size_t record_words;       /* RECORD_HEADER_WORDS plus words_count. */
    size_t words_count;        /* Words of a bitset. */
    const uint64_t *lost_mask; /* Borrowed: bits of the indeterminate ops, or NULL if none. */
    size_t entries_count;      /* Records stored; <= entries_capacity. */
    size_t entries_capacity;   /* Records allocated; <= entries_max. */
    size_t entries_max;        /* From cache_bytes_max; past it nothing more is stored. */
};

/* The search over one key. Invariants are checked by search_check_invariants. */
struct lin_search {
    const struct qr_lin_op *source; /* The caller's ops (borrowed). */
    uint64_t key;                   /* The key being searched. */
    struct lin_op *ops;             /* ops_count operations, in caller order. */
    size_t ops_count;               /* <= QR_LIN_KEY_OPS_MAX. */
    size_t determinate_count;       /* Operations that are not indeterminate. */
    size_t determinate_left;        /* Of those, not placed yet; 0 means success. */
    struct lin_event *events;       /* events_count events, sorted. */
    size_t events_count;            /* Calls plus returns. */
    uint32_t *next;                 /* events_count + 1 links; the last is the head. */
    uint32_t *prev;                 /* Same shape as next. */
    uint32_t head;                  /* == events_count: sentinel of the circular list. */
    uint64_t *bits;                 /* words_count words: bit i set when op i is placed. */
    uint64_t *lost_mask;            /* words_count words: bit i set when op i is indeterminate. */
    size_t words_count;             /* ceil(ops_count / 64). */
    struct lin_frame *stack;        /* ops_count frames: the placed operations in order. */
    size_t depth;                   /* Frames in use == bits set. */
    size_t lost_placed_count;       /* Frames holding an indeterminate operation. */
    struct lin_state state;         /* The model after the placed operations. */
    uint64_t determinate_hash;      /* XOR of op_code(i) over determinate ops placed. */
    uint64_t lost_hash;             /* XOR of op_code(i) over indeterminate ops placed. */
    struct lin_cache cache;         /* Configurations already explored. */
    bool has_stuck;                 /* Whether stuck_* below are set. */
    size_t stuck_depth;             /* Deepest depth at which a deadline passed. */
    uint32_t stuck_op;              /* The operation whose deadline passed there. */
    struct lin_state stuck_state;   /* The model state there. */
};

/* One operation's key, for splitting the history. */
struct key_ref {
    uint64_t key;        /* The operation's key. */
    size_t source_index; /* 0-based index into the caller's ops. */
};

const char *qr__lin_verdict_name(enum qr_lin_verdict verdict)
{
    switch (verdict) {
    case QR_LIN_OK:
        return "ok";
    case QR_LIN_VIOLATION:
        return "violation";
    case QR_LIN_UNKNOWN:
        return "unknown";
    default:
        return "?";
    }
}

const char *qr__lin_kind_name(enum qr_lin_kind kind)
{
    switch (kind) {
    case QR_LIN_GET:
        return "get";
    case QR_LIN_SET:
        return "set";
    case QR_LIN_DEL:
        return "del";
    case QR_LIN_INCR:
        return "incr";
    default:
        return "?";
    }
}

/* splitmix64's finalizer: spreads the bits of x over the whole word. */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Zobrist code of an operation: the hash of a set is the XOR of its members'
 * codes, so placing or undoing one operation updates it in O(1). */
static uint64_t op_code(uint32_t op_index)
{
    return mix64(((uint64_t)op_index + 1) * UINT64_C(0x9e3779b97f4a7c15));
}

static uint64_t state_code(const struct lin_state *state)
{
    uint64_t presence = state->is_present ? UINT64_C(0x5851f42d4c957f2d) : 0;
    return mix64((uint64_t)state->value ^ presence);
}

static bool state_equals(const struct lin_state *a, const struct lin_state *b)
{
    return a->is_present == b->is_present && a->value == b->value;
}

static bool incr_overflows(int64_t base, int64_t delta)
{
    if (delta > 0) {
        return base > INT64_MAX - delta;
    }
    return base < INT64_MIN - delta;
}

/* Applies op to state; false when the model could not have given op's answer
 * (or, for INCR, would have refused it). */
static bool
model_step(const struct lin_op *op, const struct lin_state *state, struct lin_state *next_out)
{
    *next_out = *state;
    switch (op->kind) {
    case QR_LIN_GET:
        QR_ASSERT(!op->is_indeterminate); /* Dropped while splitting: it changes nothing. */
        if (op->is_found != state->is_present) {
            return false;
        }
        return !op->is_found || op->output == state->value;
    case QR_LIN_SET:
        next_out->is_present = true;
        next_out->value = op->input;
        return true;
    case QR_LIN_DEL:
        next_out->is_present = false;
        next_out->value = 0;
        return op->is_indeterminate || op->output == (state->is_present ? 1 : 0);
    case QR_LIN_INCR: {
        int64_t base = state->is_present ? state->value : 0;
        if (incr_overflows(base, op->input)) {
            return false;
        }
        next_out->is_present = true;
        next_out->value = base + op->input;
        return op->is_indeterminate || op->output == next_out->value;
    }
    default:
        break;
    }
    QR_ASSERT(false && "kind validated before the search");
    return false;
}

/* Whether two indeterminate operations have the same effect on every state,
 * so that placing either one is the same move. */
static bool op_is_twin(const struct lin_op *a, const struct lin_op *b)
{
    QR_ASSERT(a->is_indeterminate && b->is_indeterminate);
    return a->kind == b->kind && (a->kind == QR_LIN_DEL || a->input == b->input);
}

static bool bits_has(const uint64_t *bits, uint32_t index)
{
    return (bits[index / 64] & (UINT64_C(1) << (index % 64))) != 0;
}

static void bits_set(uint64_t *bits, uint32_t index)
{
    QR_ASSERT(!bits_has(bits, index));
    bits[index / 64] |= UINT64_C(1) << (index % 64);
}

static void bits_clear(uint64_t *bits, uint32_t index)
{
    QR_ASSERT(bits_has(bits, index));
    bits[index / 64] &= ~(UINT64_C(1) << (index % 64));
}

/* ---- The cache of visited configurations. ---- */

static void cache_init(struct lin_cache *cache,
                       size_t words_count,
                       const uint64_t *lost_mask,
                       size_t cache_bytes_max)
{
    memset(cache, 0, sizeof(*cache));
    cache->words_count = words_count;
    cache->record_words = RECORD_HEADER_WORDS + words_count;
    cache->lost_mask = lost_mask;
    /* Each entry costs its record plus up to 4 slots in each of the 2 tables:
     * a table is at most half full, and its size doubles. */
    size_t entry_bytes = cache->record_words * sizeof(uint64_t) + 8 * sizeof(uint32_t);
    size_t bytes_max = cache_bytes_max != 0 ? cache_bytes_max : QR_LIN_CACHE_BYTES_DEFAULT;
    cache->entries_max = bytes_max / entry_bytes;
    if (cache->entries_max > UINT32_MAX - 1) {
        cache->entries_max = UINT32_MAX - 1; /* Slots hold an index plus 1 in 32 bits. */
    }
}

static void cache_close(struct lin_cache *cache)
{
    qr_free(cache->exact_slots);
    qr_free(cache->group_slots);
    qr_free(cache->records);
    memset(cache, 0, sizeof(*cache));
}

static uint64_t *cache_record(const struct lin_cache *cache, size_t entry_index)
{
    QR_ASSERT(entry_index < cache->entries_count);
    return cache->records + entry_index * cache->record_words;
}

/* The configuration a record holds, with has_lost_placed left false. */
static struct lin_config cache_record_config(const uint64_t *record)
{
    return (struct lin_config){
        .bits = record + RECORD_HEADER_WORDS,
        .state = {.value = (int64_t)record[3], .is_present = record[2] != 0},
        .group_hash = record[1],
        .full_hash = record[0],
        .has_lost_placed = false,
    };
}

static bool record_has_state(const uint64_t *record, const struct lin_state *state)
{
    return record[2] == (state->is_present ? 1u : 0u) && record[3] == (uint64_t)state->value;
}

static bool record_is_config(const struct lin_cache *cache,
                             const uint64_t *record,
                             const struct lin_config *config)
{
    return record[0] == config->full_hash && record_has_state(record, &config->state) &&
           memcmp(record + RECORD_HEADER_WORDS, config->bits,
                  cache->words_count * sizeof(uint64_t)) == 0;
}

/* Same group: same state, and the same determinate operations placed. */
static bool record_is_group(const struct lin_cache *cache,
                            const uint64_t *record,
                            const struct lin_config *config)
{
    if (record[1] != config->group_hash || !record_has_state(record, &config->state)) {
        return false;
    }
    const uint64_t *bits = record + RECORD_HEADER_WORDS;
    for (size_t w = 0; w < cache->words_count; w++) {
        if (((bits[w] ^ config->bits[w]) & ~cache->lost_mask[w]) != 0) {
            return false;
        }
    }
    return true;
}

/* For two bitsets of the same group: whether the indeterminate operations
 * placed in `small` are a subset of those placed in `large`. */
static bool
record_is_lost_subset(const struct lin_cache *cache, const uint64_t *small, const uint64_t *large)
{
    for (size_t w = 0; w < cache->words_count; w++) {
        if ((small[w] & ~large[w]) != 0) {
            return false;
        }
    }
    return true;
}

/* The slot of `slots` whose record matches the configuration, or the empty
 * slot where it would go. The exact table matches whole configurations, the
 * group table groups. */
static size_t
cache_probe(const struct lin_cache *cache, const uint32_t *slots, const struct lin_config *config)
{
    QR_ASSERT(cache->slots_count > cache->entries_count); /* So an empty slot exists. */
    bool is_exact = slots == cache->exact_slots;
    size_t mask = cache->slots_count - 1;
    size_t slot_index = (size_t)(is_exact ? config->full_hash : config->group_hash) & mask;
    for (size_t probe = 0; probe < cache->slots_count; probe++) {
        uint32_t slot = slots[slot_index];
        if (slot == 0) {
            return slot_index;
        }
        const uint64_t *record = cache_record(cache, slot - 1);
        if (is_exact ? record_is_config(cache, record, config)
                     : record_is_group(cache, record, config)) {
            return slot_index;
        }
        slot_index = (slot_index + 1) & mask;
    }
    QR_ASSERT(false && "a table at most half full has an empty slot");
    return 0;
}

/* Whether a stored configuration dominates this one: same group, and a
 * subset of its indeterminate operations placed. Anything the search can do
 * from here it could do from there, by leaving the extra operations out, and
 * that was explored without success. Records this configuration dominates
 * leave the group's list on the way, since it is about to be explored: that
 * keeps lists short. The newest record stays, as the group's slot needs one. */
static bool cache_is_dominated(struct lin_cache *cache, const struct lin_config *config)
{
    uint32_t slot = cache->group_slots[cache_probe(cache, cache->group_slots, config)];
    uint64_t *link = NULL; /* The link that points at the record being read. */
    for (size_t scan = 0; scan < CACHE_GROUP_SCAN_MAX && slot != 0; scan++) {
        uint64_t *record = cache_record(cache, slot - 1);
        QR_DEBUG_ASSERT(record_is_group(cache, record, config));
        if (record_is_lost_subset(cache, record + RECORD_HEADER_WORDS, config->bits)) {
            return true;
        }
        slot = (uint32_t)record[4];
        if (link != NULL &&
            record_is_lost_subset(cache, config->bits, record + RECORD_HEADER_WORDS)) {
            *link = slot;
        } else {
            link = &record[4];
        }
    }
    return false;
}

/* Points the slot tables at every record again, after they were resized. */
static void cache_rehash(struct lin_cache *cache)
{
    for (size_t entry_index = 0; entry_index < cache->entries_count; entry_index++) {
        const uint64_t *record = cache_record(cache, entry_index);
        struct lin_config config = cache_record_config(record);
        size_t exact_index = cache_probe(cache, cache->exact_slots, &config);
        QR_ASSERT(cache->exact_slots[exact_index] == 0);
        cache->exact_slots[exact_index] = (uint32_t)(entry_index + 1);
        if (cache->group_slots != NULL) {
            /* Records go in insertion order, so the newest of each group ends up in the slot. */
            cache->group_slots[cache_probe(cache, cache->group_slots, &config)] =
                (uint32_t)(entry_index + 1);
        }
    }
}

/* Doubles the slot tables and re-inserts every record. */
static int cache_grow_slots(struct lin_cache *cache)
{
    size_t slots_count = cache->slots_count == 0 ? CACHE_SLOTS_INITIAL : cache->slots_count * 2;
    uint32_t *exact_slots = qr_calloc(slots_count, sizeof(*exact_slots));
    uint32_t *group_slots = NULL;
    if (exact_slots != NULL && cache->lost_mask != NULL) {
        group_slots = qr_calloc(slots_count, sizeof(*group_slots));
    }
    if (exact_slots == NULL || (cache->lost_mask != NULL && group_slots == NULL)) {
        qr_free(exact_slots);
        return QR_ENOMEM;
    }
    qr_free(cache->exact_slots);
    qr_free(cache->group_slots);
    cache->exact_slots = exact_slots;
    cache->group_slots = group_slots;
    cache->slots_count = slots_count;
    cache_rehash(cache);
    return 0;
}

/* Makes room for one more record; the caller checked entries_max. */
static int cache_reserve(struct lin_cache *cache)
{
    QR_ASSERT(cache->entries_count < cache->entries_max);
    if (cache->entries_count == cache->entries_capacity) {
        size_t capacity =
            cache->entries_capacity == 0 ? CACHE_ENTRIES_INITIAL : cache->entries_capacity * 2;
        if (capacity > cache->entries_max) {
            capacity = cache->entries_max;
        }
        /* No overflow: capacity * record_words * 8 <= the cache byte limit. */
        uint64_t *records =
            qr_realloc(cache->records, capacity * cache->record_words * sizeof(uint64_t));
        if (records == NULL) {
            return QR_ENOMEM;
        }
        cache->records = records;
        cache->entries_capacity = capacity;
    }
    if ((cache->entries_count + 1) * 2 > cache->slots_count) {
        return cache_grow_slots(cache);
    }
    return 0;
}

/* Appends the configuration's record and indexes it in both tables. */
static void cache_store(struct lin_cache *cache, const struct lin_config *config)
{
    size_t exact_index = cache_probe(cache, cache->exact_slots, config);
    QR_ASSERT(cache->exact_slots[exact_index] == 0);
    uint64_t *record = cache->records + cache->entries_count * cache->record_words;
    record[0] = config->full_hash;
    record[1] = config->group_hash;
    record[2] = config->state.is_present ? 1u : 0u;
    record[3] = (uint64_t)config->state.value;
    record[4] = 0;
    memcpy(record + RECORD_HEADER_WORDS, config->bits, cache->words_count * sizeof(uint64_t));
    cache->entries_count++;
    uint32_t slot = (uint32_t)cache->entries_count;
    cache->exact_slots[exact_index] = slot;
    if (cache->group_slots != NULL) {
        size_t group_index = cache_probe(cache, cache->group_slots, config);
        record[4] = cache->group_slots[group_index]; /* The group's previous newest, or 0. */
        cache->group_slots[group_index] = slot;
    }
}

/* Records the configuration unless it is known. *is_new_out is false when it
 * was stored before or a stored one dominates it. A full cache stores nothing
 * more and reports unknown configurations new: the search stays exact but may
 * repeat work. */
static int cache_visit(struct lin_cache *cache, const struct lin_config *config, bool *is_new_out)
{
    *is_new_out = false;
    if (cache->slots_count > 0) {
        if (cache->exact_slots[cache_probe(cache, cache->exact_slots, config)] != 0) {
            return 0;
        }
        if (config->has_lost_placed && cache->group_slots != NULL &&
            cache_is_dominated(cache, config)) {
            return 0;
        }
    }
    *is_new_out = true;
    if (cache->entries_count >= cache->entries_max) {
        return 0;
    }
    int rv = cache_reserve(cache);
    if (rv != 0) {
        return rv;
    }
    cache_store(cache, config);
    return 0;
}

/* ---- The event list. ---- */

static void list_unlink(struct lin_search *search, uint32_t event)
{
    search->next[search->prev[event]] = search->next[event];
    search->prev[search->next[event]] = search->prev[event];
}

/* Puts back an event unlinked by list_unlink. Its own links were left alone,
 * so undoing removals in reverse order restores the list exactly. */
static void list_relink(struct lin_search *search, uint32_t event)
{
    search->next[search->prev[event]] = event;
    search->prev[search->next[event]] = event;
}

static void list_lift(struct lin_search *search, const struct lin_op *op)
{
    list_unlink(search, op->call_event);
    if (op->return_event != EVENT_NONE) {
        list_unlink(search, op->return_event);
    }
}

static void list_unlift(struct lin_search *search, const struct lin_op *op)
{
    if (op->return_event != EVENT_NONE) {
        list_relink(search, op->return_event);
    }
    list_relink(search, op->call_event);
}

static int event_compare(const void *a, const void *b)
{
    const struct lin_event *x = a;
    const struct lin_event *y = b;
    if (x->tick != y->tick) {
        return x->tick < y->tick ? -1 : 1;
    }
    if (x->is_return != y->is_return) {
        return x->is_return ? 1 : -1;
    }
    if (x->op_index != y->op_index) {
        return x->op_index < y->op_index ? -1 : 1;
    }
    return 0;
}

/* ---- The search over one key. ---- */

#ifdef QR_DEBUG
/* O(ops + events): debug and sim builds run it after every placement and undo. */
static void search_check_invariants(const struct lin_search *search)
{
    size_t bits_count = 0;
    size_t determinate_placed = 0;
    for (uint32_t i = 0; i < search->ops_count; i++) {
        const struct lin_op *op = &search->ops[i];
        QR_ASSERT(bits_has(search->lost_mask, i) == op->is_indeterminate);
        if (bits_has(search->bits, i)) {
            bits_count++;
            determinate_placed += op->is_indeterminate ? 0 : 1;
            /* Twins are placed in the order they were invoked. */
            QR_ASSERT(op->twin_previous == OP_NONE || bits_has(search->bits, op->twin_previous));
        }
    }
    QR_ASSERT(bits_count == search->depth);
    QR_ASSERT(bits_count - determinate_placed == search->lost_placed_count);
    QR_ASSERT(determinate_placed + search->determinate_left == search->determinate_count);
    uint32_t event = search->next[search->head];
    for (size_t i = 0; i < search->events_count && event != search->head; i++) {
        QR_ASSERT(search->prev[search->next[event]] == event);
        QR_ASSERT(!bits_has(search->bits, search->events[event].op_index));
        event = search->next[event];
    }
    QR_ASSERT(event == search->head);
    QR_ASSERT(search->state.is_present || search->state.value == 0);
}
#else
static void search_check_invariants(const struct lin_search *search)
{
    (void)search;
}
#endif

static void search_free(struct lin_search *search)
{
    qr_free(search->ops);
    qr_free(search->events);
    qr_free(search->next);
    qr_free(search->prev);
    qr_free(search->bits);
    qr_free(search->lost_mask);
    qr_free(search->stack);
    cache_close(&search->cache);
}

/* Copies the key's operations, counts its events and marks the indeterminate ones. */
static void search_init_ops(struct lin_search *search, const struct key_ref *refs)
{
    search->events_count = 0;
    search->determinate_count = 0;
    for (uint32_t i = 0; i < search->ops_count; i++) {
        const struct qr_lin_op *source = &search->source[refs[i].source_index];
        struct lin_op *op = &search->ops[i];
        op->source_index = refs[i].source_index;
        op->input = source->input;
        op->output = source->output;
        op->kind = source->kind;
        op->is_indeterminate = source->is_indeterminate;
        op->is_found = source->is_found;
        op->call_event = EVENT_NONE;
        op->return_event = EVENT_NONE;
        op->twin_previous = OP_NONE;
        search->events_count += op->is_indeterminate ? 1 : 2;
        search->determinate_count += op->is_indeterminate ? 0 : 1;
        if (op->is_indeterminate) {
            bits_set(search->lost_mask, i);
        }
    }
    search->determinate_left = search->determinate_count;
}

/* Sorts the events by tick and links them into a circular list through the head. */
static void search_init_events(struct lin_search *search)
{
    size_t event_index = 0;
    for (uint32_t i = 0; i < search->ops_count; i++) {
        const struct qr_lin_op *source = &search->source[search->ops[i].source_index];
        search->events[event_index++] =
            (struct lin_event){.tick = source->invoke_tick, .op_index = i, .is_return = false};
        if (!source->is_indeterminate) {
            search->events[event_index++] =
                (struct lin_event){.tick = source->complete_tick, .op_index = i, .is_return = true};
        }
    }
    QR_ASSERT(event_index == search->events_count);
    qsort(search->events, search->events_count, sizeof(*search->events), event_compare);
    search->head = (uint32_t)search->events_count;
    for (uint32_t e = 0; e < search->events_count; e++) {
        struct lin_op *op = &search->ops[search->events[e].op_index];
        if (search->events[e].is_return) {
            op->return_event = e;
        } else {
            op->call_event = e;
        }
        search->next[e] = e + 1;
        search->prev[e] = e == 0 ? search->head : e - 1;
    }
    search->next[search->head] = search->events_count == 0 ? search->head : 0;
    search->prev[search->head] = search->events_count == 0 ? search->head : search->head - 1;
}

/* An indeterminate operation, for finding its twins by sorting. */
struct twin_ref {
    int64_t input;         /* Ignored for DEL, which has none. */
    enum qr_lin_kind kind; /* SET, DEL or INCR. */
    uint32_t call_event;   /* Order among twins. */
    uint32_t op_index;     /* 0-based index into lin_search.ops. */
};

static int twin_ref_compare(const void *a, const void *b)
{
    const struct twin_ref *x = a;
    const struct twin_ref *y = b;
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    if (x->input != y->input) {
        return x->input < y->input ? -1 : 1;
    }
    if (x->call_event != y->call_event) {
        return x->call_event < y->call_event ? -1 : 1;
    }
    return 0;
}

/* Links each indeterminate operation to its latest twin invoked before it. */
static int search_init_twins(struct lin_search *search)
{
    size_t lost_count = search->ops_count - search->determinate_count;
    if (lost_count < 2) {
        return 0;
    }
    struct twin_ref *refs = qr_malloc(lost_count * sizeof(*refs));
    if (refs == NULL) {
        return QR_ENOMEM;
    }
    size_t refs_count = 0;
    for (uint32_t i = 0; i < search->ops_count; i++) {
        const struct lin_op *op = &search->ops[i];
        if (op->is_indeterminate) {
            refs[refs_count++] = (struct twin_ref){.input = op->kind == QR_LIN_DEL ? 0 : op->input,
                                                   .kind = op->kind,
                                                   .call_event = op->call_event,
                                                   .op_index = i};
        }
    }
    QR_ASSERT(refs_count == lost_count);
    qsort(refs, refs_count, sizeof(*refs), twin_ref_compare);
    for (size_t i = 1; i < refs_count; i++) {
        struct lin_op *op = &search->ops[refs[i].op_index];
        const struct lin_op *before = &search->ops[refs[i - 1].op_index];
        if (op_is_twin(op, before)) {
            op->twin_previous = refs[i - 1].op_index;
        }
    }
    qr_free(refs);
    return 0;
}

static int search_init(struct lin_search *search,
                       const struct qr_lin_op *source,
                       const struct key_ref *refs,
                       size_t refs_count,
                       size_t cache_bytes_max)
{
    QR_ASSERT(refs_count > 0);
    QR_ASSERT(refs_count <= QR_LIN_KEY_OPS_MAX);
    memset(search, 0, sizeof(*search));
    search->source = source;
    search->key = refs[0].key;
    search->ops_count = refs_count;
    search->words_count = (refs_count + 63) / 64;
    search->ops = qr_calloc(refs_count, sizeof(*search->ops));
    search->events = qr_calloc(refs_count * 2, sizeof(*search->events));
    search->next = qr_calloc(refs_count * 2 + 1, sizeof(*search->next));
    search->prev = qr_calloc(refs_count * 2 + 1, sizeof(*search->prev));
    search->bits = qr_calloc(search->words_count, sizeof(*search->bits));
    search->lost_mask = qr_calloc(search->words_count, sizeof(*search->lost_mask));
    search->stack = qr_calloc(refs_count, sizeof(*search->stack));
    if (search->ops == NULL || search->events == NULL || search->next == NULL ||
        search->prev == NULL || search->bits == NULL || search->lost_mask == NULL ||
        search->stack == NULL) {
        search_free(search);
        return QR_ENOMEM;
    }
    search_init_ops(search, refs);
    search_init_events(search);
    int rv = search_init_twins(search);
    if (rv != 0) {
        search_free(search);
        return rv;
    }
    bool has_lost = search->determinate_count < search->ops_count;
    cache_init(&search->cache, search->words_count, has_lost ? search->lost_mask : NULL,
               cache_bytes_max);
    search_check_invariants(search);
    return 0;
}

/* Whether the search should try an operation here at all. Two moves are left
 * out because another move does at least as well, so leaving them out keeps
 * the search exact: placing an indeterminate operation that changes nothing
 * (not placing it leaves more choice), and placing an indeterminate operation
 * before its twin (placing the twin first is the same move). */
static bool search_is_move_useful(const struct lin_search *search,
                                  const struct lin_op *op,
                                  const struct lin_state *state_after)
{
    if (!op->is_indeterminate) {
        return true;
    }
    if (op->twin_previous != OP_NONE && !bits_has(search->bits, op->twin_previous)) {
        return false;
    }
    return !state_equals(state_after, &search->state);
}

/* Tries to place the operation of a call event next. *is_placed_out says
 * whether it was: the model accepted its answer, the move is useful, and the
 * cache knows no configuration as good as the new one. */
static int search_place(struct lin_search *search, uint32_t call_event, bool *is_placed_out)
{
    uint32_t op_index = search->events[call_event].op_index;
    const struct lin_op *op = &search->ops[op_index];
    struct lin_state state;
    *is_placed_out = false;
    if (!model_step(op, &search->state, &state) || !search_is_move_useful(search, op, &state)) {
        return 0;
    }
    uint64_t determinate_hash = search->determinate_hash;
    uint64_t lost_hash = search->lost_hash;
    if (op->is_indeterminate) {
        lost_hash ^= op_code(op_index);
    } else {
        determinate_hash ^= op_code(op_index);
    }
    bits_set(search->bits, op_index);
    struct lin_config config = {
        .bits = search->bits,
        .state = state,
        .group_hash = determinate_hash ^ state_code(&state),
        .full_hash = determinate_hash ^ state_code(&state) ^ mix64(lost_hash),
        .has_lost_placed = search->lost_placed_count > 0 || op->is_indeterminate,
    };
    bool is_new = false;
    int rv = cache_visit(&search->cache, &config, &is_new);
    if (rv != 0 || !is_new) {
        bits_clear(search->bits, op_index);
        return rv;
    }
    QR_ASSERT(search->depth < search->ops_count);
    search->stack[search->depth++] =
        (struct lin_frame){.call_event = call_event, .state = search->state};
    search->state = state;
    search->determinate_hash = determinate_hash;
    search->lost_hash = lost_hash;
    list_lift(search, op);
    if (op->is_indeterminate) {
        search->lost_placed_count++;
    } else {
        QR_ASSERT(search->determinate_left > 0);
        search->determinate_left--;
    }
    *is_placed_out = true;
    search_check_invariants(search);
    return 0;
}

/* Undoes the last placement. The walk resumes after its call event, in the
 * pass that placed it. */
static void search_undo(struct lin_search *search, struct lin_cursor *cursor_out)
{
    QR_ASSERT(search->depth > 0);
    const struct lin_frame *frame = &search->stack[--search->depth];
    uint32_t op_index = search->events[frame->call_event].op_index;
    const struct lin_op *op = &search->ops[op_index];
    list_unlift(search, op);
    bits_clear(search->bits, op_index);
    search->state = frame->state;
    if (op->is_indeterminate) {
        QR_ASSERT(search->lost_placed_count > 0);
        search->lost_placed_count--;
        search->lost_hash ^= op_code(op_index);
    } else {
        search->determinate_left++;
        search->determinate_hash ^= op_code(op_index);
    }
    search_check_invariants(search);
    cursor_out->event = search->next[frame->call_event];
    cursor_out->is_lost_pass = op->is_indeterminate;
}

/* Remembers the deepest point where an operation's deadline passed, to explain a failure. */
static void search_note_stuck(struct lin_search *search, uint32_t op_index)
{
    if (!search->has_stuck || search->depth > search->stuck_depth) {
        search->has_stuck = true;
        search->stuck_depth = search->depth;
        search->stuck_op = op_index;
        search->stuck_state = search->state;
    }
}

/* One step at a return event: the operation's deadline has passed unplaced.
 * The determinate pass hands over to the indeterminate one; that one undoes
 * the last placement, or proves a violation when there is none. */
static void search_step_return(struct lin_search *search,
                               struct lin_cursor *cursor,
                               enum qr_lin_verdict *verdict_out)
{
    if (!cursor->is_lost_pass && search->determinate_count < search->ops_count) {
        cursor->is_lost_pass = true;
        cursor->event = search->next[search->head];
        return;
    }
    search_note_stuck(search, search->events[cursor->event].op_index);
    if (search->depth == 0) {
        *verdict_out = QR_LIN_VIOLATION;
    } else {
        search_undo(search, cursor);
    }
}

/* Runs at most steps_max steps; a step looks at one event. At each
 * configuration the walk makes two passes over the candidates: determinate
 * operations first, then indeterminate ones. Trying the indeterminate ones
 * last places them as late as possible, and a configuration reached with fewer
 * of them placed dominates the same one reached with more (see
 * cache_is_dominated), so finding the lean ones first prunes the others. */
static int search_run(struct lin_search *search,
                      uint64_t steps_max,
                      uint64_t *steps_out,
                      enum qr_lin_verdict *verdict_out)
{
    struct lin_cursor cursor = {.event = search->next[search->head], .is_lost_pass = false};
    int rv = 0;
    *steps_out = 0;
    *verdict_out = search->determinate_left == 0 ? QR_LIN_OK : QR_LIN_UNKNOWN;
    while (rv == 0 && *verdict_out == QR_LIN_UNKNOWN && *steps_out < steps_max) {
        (*steps_out)++;
        /* A determinate operation not placed keeps its return event listed, and
         * the walk stops at the first return event, so it never wraps. */
        if (QR_NEVER(cursor.event == search->head)) {
            return QR_EINTERNAL;
        }
        const struct lin_event *event = &search->events[cursor.event];
        if (event->is_return) {
            search_step_return(search, &cursor, verdict_out);
            continue;
        }
        bool is_placed = false;
        if (search->ops[event->op_index].is_indeterminate == cursor.is_lost_pass) {
            rv = search_place(search, cursor.event, &is_placed);
        }
        if (!is_placed) {
            cursor.event = search->next[cursor.event];
        } else if (search->determinate_left == 0) {
            *verdict_out = QR_LIN_OK;
        } else {
            cursor =
                (struct lin_cursor){.event = search->next[search->head], .is_lost_pass = false};
        }
    }
    return rv;
}

static void describe_value(char *buf, size_t buf_size, bool is_present, int64_t value)
{
    if (is_present) {
        (void)snprintf(buf, buf_size, "%" PRId64, value);
    } else {
        (void)snprintf(buf, buf_size, "absent");
    }
}

/* "get -> 3 (client 2, ticks 10..15)": what the operation did and said, and when. */
static void describe_op(char *buf, size_t buf_size, const struct qr_lin_op *op)
{
    char said[64];
    switch (op->kind) {
    case QR_LIN_GET:
        describe_value(said, sizeof(said), op->is_found, op->output);
        break;
    case QR_LIN_SET:
        (void)snprintf(said, sizeof(said), "%" PRId64 " -> ok", op->input);
        break;
    case QR_LIN_DEL:
        (void)snprintf(said, sizeof(said), "%" PRId64, op->output);
        break;
    default:
        (void)snprintf(said, sizeof(said), "%" PRId64 " -> %" PRId64, op->input, op->output);
        break;
    }
    const char *arrow = op->kind == QR_LIN_GET || op->kind == QR_LIN_DEL ? "-> " : "";
    (void)snprintf(buf, buf_size, "%s %s%s (client %" PRIu64 ", ticks %" PRIu64 "..%" PRIu64 ")",
                   qr__lin_kind_name(op->kind), arrow, said, op->client, op->invoke_tick,
                   op->complete_tick);
}

/* Writes the key's verdict into result: which key, which operation, and why. */
static void search_explain(const struct lin_search *search,
                           enum qr_lin_verdict verdict,
                           uint64_t steps_max,
                           struct qr_lin_result *result)
{
    QR_ASSERT(verdict != QR_LIN_OK);
    size_t indeterminate_count = search->ops_count - search->determinate_count;
    result->verdict = verdict;
    result->key = search->key;
    result->op_index = SIZE_MAX;
    if (verdict == QR_LIN_UNKNOWN) {
        (void)qr__errf(result->errmsg, 0,
                       "key %" PRIu64 ": step bound %" PRIu64 " reached on %zu ops (%zu "
                       "indeterminate); deepest order placed %zu",
                       search->key, steps_max, search->ops_count, indeterminate_count,
                       search->has_stuck ? search->stuck_depth : search->depth);
        return;
    }
    QR_ASSERT(search->has_stuck); /* A violation is found at a return event. */
    const struct lin_op *stuck = &search->ops[search->stuck_op];
    char op_text[160];
    char value_text[32];
    describe_op(op_text, sizeof(op_text), &search->source[stuck->source_index]);
    describe_value(value_text, sizeof(value_text), search->stuck_state.is_present,
                   search->stuck_state.value);
    result->op_index = stuck->source_index;
    (void)qr__errf(result->errmsg, 0,
                   "key %" PRIu64 ": no valid order of %zu ops (%zu indeterminate): after "
                   "placing %zu, cannot place %s; value was %s",
                   search->key, search->ops_count, indeterminate_count, search->stuck_depth,
                   op_text, value_text);
}

/* ---- The whole history. ---- */

static bool is_kind_valid(enum qr_lin_kind kind)
{
    switch (kind) {
    case QR_LIN_GET:
    case QR_LIN_SET:
    case QR_LIN_DEL:
    case QR_LIN_INCR:
        return true;
    default:
        return false;
    }
}

static int history_validate(const struct qr_lin_op *ops, size_t ops_count, char *errmsg)
{
    for (size_t i = 0; i < ops_count; i++) {
        const struct qr_lin_op *op = &ops[i];
        if (!is_kind_valid(op->kind)) {
            return qr__errf(errmsg, QR_EINVAL,
                            "linearize: op %zu (client %" PRIu64 "): kind %d unknown", i,
                            op->client, (int)op->kind);
        }
        if (op->is_indeterminate) {
            continue; /* Its answer and complete tick never arrived; nothing to check. */
        }
        if (op->complete_tick < op->invoke_tick) {
            return qr__errf(errmsg, QR_EINVAL,
                            "linearize: op %zu (client %" PRIu64 "): complete tick %" PRIu64
                            " before invoke tick %" PRIu64,
                            i, op->client, op->complete_tick, op->invoke_tick);
        }
        if (op->kind == QR_LIN_DEL && op->output != 0 && op->output != 1) {
            return qr__errf(errmsg, QR_EINVAL,
                            "linearize: op %zu (client %" PRIu64 "): del count %" PRId64
                            " is neither 0 nor 1",
                            i, op->client, op->output);
        }
    }
    return 0;
}

static int key_ref_compare(const void *a, const void *b)
{
    const struct key_ref *x = a;
    const struct key_ref *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    if (x->source_index != y->source_index) {
        return x->source_index < y->source_index ? -1 : 1;
    }
    return 0;
}

/* Number of refs from refs[start] on that share its key. */
static size_t key_run_count(const struct key_ref *refs, size_t refs_count, size_t start)
{
    size_t end = start + 1;
    while (end < refs_count && refs[end].key == refs[start].key) {
        end++;
    }
    return end - start;
}

/* Sorts the operations that matter by key; indeterminate GETs are left out. */
static int history_split(const struct qr_lin_op *ops,
                         size_t ops_count,
                         struct key_ref **refs_out,
                         size_t *refs_count_out,
                         char *errmsg)
{
    struct key_ref *refs = qr_malloc((ops_count == 0 ? 1 : ops_count) * sizeof(*refs));
    if (refs == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "linearize: out of memory splitting %zu ops", ops_count);
    }
    size_t refs_count = 0;
    for (size_t i = 0; i < ops_count; i++) {
        if (!(ops[i].kind == QR_LIN_GET && ops[i].is_indeterminate)) {
            refs[refs_count++] = (struct key_ref){.key = ops[i].key, .source_index = i};
        }
    }
    qsort(refs, refs_count, sizeof(*refs), key_ref_compare);
    for (size_t start = 0; start < refs_count;) {
        size_t run_count = key_run_count(refs, refs_count, start);
        if (run_count > QR_LIN_KEY_OPS_MAX) {
            uint64_t key = refs[start].key;
            qr_free(refs);
            return qr__errf(errmsg, QR_ETOOBIG,
                            "linearize: key %" PRIu64 " has %zu ops, more than %d", key, run_count,
                            QR_LIN_KEY_OPS_MAX);
        }
        start += run_count;
    }
    *refs_out = refs;
    *refs_count_out = refs_count;
    return 0;
}

/* Searches one key and folds its verdict into result. */
static int check_key(const struct qr_lin_op *ops,
                     const struct key_ref *refs,
                     size_t refs_count,
                     const struct qr_lin_opts *opts,
                     struct qr_lin_result *result)
{
    struct lin_search search;
    int rv = search_init(&search, ops, refs, refs_count, opts->cache_bytes_max);
    if (rv != 0) {
        return qr__errf(result->errmsg, rv, "linearize: key %" PRIu64 ": out of memory",
                        refs[0].key);
    }
    uint64_t steps = 0;
    enum qr_lin_verdict verdict = QR_LIN_OK;
    rv = search_run(&search, opts->steps_max, &steps, &verdict);
    result->keys_count++;
    result->steps_count += steps;
    if (rv != 0) {
        (void)qr__errf(result->errmsg, rv, "linearize: key %" PRIu64 ": search failed: %s",
                       search.key, qr_strerror(rv));
    } else if (verdict == QR_LIN_VIOLATION ||
               (verdict == QR_LIN_UNKNOWN && result->verdict == QR_LIN_OK)) {
        search_explain(&search, verdict, opts->steps_max, result);
    }
    search_free(&search);
    return rv;
}

int qr__lin_check(const struct qr_lin_op *ops,
                  size_t ops_count,
                  const struct qr_lin_opts *opts,
                  struct qr_lin_result *result_out)
{
    QR_ASSERT(result_out != NULL);
    QR_ASSERT(opts != NULL);
    QR_ASSERT(ops != NULL || ops_count == 0);
    memset(result_out, 0, sizeof(*result_out));
    result_out->verdict = QR_LIN_OK;
    result_out->op_index = SIZE_MAX;
    if (opts->steps_max == 0) {
        return qr__errf(result_out->errmsg, QR_EINVAL, "linearize: steps_max must be positive");
    }
    if (ops_count > QR_LIN_OPS_MAX) {
        return qr__errf(result_out->errmsg, QR_ETOOBIG, "linearize: %zu ops, more than %u",
                        ops_count, QR_LIN_OPS_MAX);
    }
    int rv = history_validate(ops, ops_count, result_out->errmsg);
    if (rv != 0) {
        return rv;
    }
    struct key_ref *refs = NULL;
    size_t refs_count = 0;
    rv = history_split(ops, ops_count, &refs, &refs_count, result_out->errmsg);
    if (rv != 0) {
        return rv;
    }
    for (size_t start = 0; start < refs_count && result_out->verdict != QR_LIN_VIOLATION;) {
        size_t run_count = key_run_count(refs, refs_count, start);
        rv = check_key(ops, refs + start, run_count, opts, result_out);
        if (rv != 0) {
            break;
        }
        start += run_count;
    }
    qr_free(refs);
    if (rv == 0 && result_out->verdict == QR_LIN_OK) {
        QR_ASSERT(result_out->op_index == SIZE_MAX);
        result_out->errmsg[0] = '\0';
    }
    return rv;
}
