/*
 * sim/map.c: the simulator's pair-keyed hash map. See map.h.
 *
 * Layer: sim. Capacity doubles when the map would become more than half full,
 * so probe runs stay short; it never exceeds what items_max needs.
 */
#include "sim/map.h"

#include <string.h>

#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"

#define MAP_CAPACITY_MIN 64

static uint64_t pair_hash(uint64_t a, uint64_t b)
{
    uint64_t h = a * UINT64_C(0x9e3779b97f4a7c15) ^ (b + UINT64_C(0x632be59bd9b4e019));
    h ^= h >> 31;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 29;
    return h;
}

void qr__sim_map_init(struct qr_sim_map *map, size_t items_max)
{
    QR_ASSERT(map != NULL && items_max > 0);
    memset(map, 0, sizeof(*map));
    map->items_max = items_max;
}

void qr__sim_map_close(struct qr_sim_map *map)
{
    if (map == NULL) {
        return;
    }
    qr_free(map->items);
    map->items = NULL;
    map->capacity = 0;
    map->count = 0;
}

/* The slot holding (a, b), or the free slot where it belongs. The map is never full. */
static size_t map_slot(const struct qr_sim_map_item *items, size_t capacity, uint64_t a, uint64_t b)
{
    size_t mask = capacity - 1;
    size_t slot = (size_t)pair_hash(a, b) & mask;
    for (size_t probes = 0; probes < capacity; probes++) {
        const struct qr_sim_map_item *item = &items[slot];
        if (!item->is_used || (item->a == a && item->b == b)) {
            return slot;
        }
        slot = (slot + 1) & mask;
    }
    QR_ASSERT(false && "sim map full");
    return 0;
}

bool qr__sim_map_get(
    const struct qr_sim_map *map, uint64_t a, uint64_t b, uint64_t *x_out, uint64_t *y_out)
{
    QR_ASSERT(map != NULL);
    if (map->capacity == 0) {
        return false;
    }
    const struct qr_sim_map_item *item = &map->items[map_slot(map->items, map->capacity, a, b)];
    if (!item->is_used) {
        return false;
    }
    if (x_out != NULL) {
        *x_out = item->x;
    }
    if (y_out != NULL) {
        *y_out = item->y;
    }
    return true;
}

static int map_grow(struct qr_sim_map *map)
{
    size_t capacity = map->capacity == 0 ? MAP_CAPACITY_MIN : map->capacity * 2;
    struct qr_sim_map_item *items = qr_calloc(capacity, sizeof(*items));
    if (items == NULL) {
        return QR_ENOMEM;
    }
    for (size_t i = 0; i < map->capacity; i++) {
        const struct qr_sim_map_item *item = &map->items[i];
        if (item->is_used) {
            items[map_slot(items, capacity, item->a, item->b)] = *item;
        }
    }
    qr_free(map->items);
    map->items = items;
    map->capacity = capacity;
    return 0;
}

int qr__sim_map_put(struct qr_sim_map *map, uint64_t a, uint64_t b, uint64_t x, uint64_t y)
{
    QR_ASSERT(map != NULL);
    if (map->capacity > 0) {
        struct qr_sim_map_item *item = &map->items[map_slot(map->items, map->capacity, a, b)];
        if (item->is_used) {
            item->x = x;
            item->y = y;
            return 0;
        }
    }
    if (map->count >= map->items_max) {
        return QR_EBUSY;
    }
    if (2 * (map->count + 1) > map->capacity) {
        int rv = map_grow(map);
        if (rv != 0) {
            return rv;
        }
    }
    struct qr_sim_map_item *item = &map->items[map_slot(map->items, map->capacity, a, b)];
    QR_ASSERT(!item->is_used);
    *item = (struct qr_sim_map_item){.a = a, .b = b, .x = x, .y = y, .is_used = true};
    map->count++;
    QR_ASSERT(2 * map->count <= map->capacity);
    return 0;
}
