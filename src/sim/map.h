/*
 * sim/map.h: a small hash map from a pair of 64-bit keys to a pair of 64-bit
 * values, for the simulator's global records (leader of each term, entries
 * seen at each index and term, committed entries, applied requests).
 *
 * Layer: sim. Open addressing with linear probing; items are never removed,
 * only added or overwritten. The map holds at most the items_max given at
 * init; past it a put returns QR_EBUSY instead of growing without bound.
 * Lookups never allocate. Deterministic: no addresses or randomness affect
 * what is stored or found.
 */
#ifndef QR_SIM_MAP_H
#define QR_SIM_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qr_sim_map_item {
    uint64_t a, b; /* Key. */
    uint64_t x, y; /* Value. */
    bool is_used;  /* Slot holds an item. */
};

struct qr_sim_map {
    struct qr_sim_map_item *items; /* capacity slots; NULL until the first put. */
    size_t capacity;               /* 0 or a power of two, >= 2 * count. */
    size_t count;                  /* Items stored; <= items_max. */
    size_t items_max;              /* Limit given at init. */
};

/* Prepare an empty map holding at most items_max items; allocates nothing yet. */
void qr__sim_map_init(struct qr_sim_map *map, size_t items_max);
/* Free the map's memory. Accepts a map that never allocated. */
void qr__sim_map_close(struct qr_sim_map *map);
/* Find (a, b); true and the value when present. x_out and y_out may be NULL. */
bool qr__sim_map_get(
    const struct qr_sim_map *map, uint64_t a, uint64_t b, uint64_t *x_out, uint64_t *y_out);
/* Insert or overwrite. Returns 0, QR_EBUSY (items_max reached), QR_ENOMEM. */
int qr__sim_map_put(struct qr_sim_map *map, uint64_t a, uint64_t b, uint64_t x, uint64_t y);

#endif /* QR_SIM_MAP_H */
