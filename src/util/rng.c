/*
 * util/rng.c: xoshiro256** seeded through splitmix64.
 *
 * Layer: util. Pure arithmetic; no clock and no global state. The algorithm is
 * the public-domain design of Blackman and Vigna, written here from its
 * description.
 */
#include "util/rng.h"

#include "util/assert.h"

static uint64_t splitmix64(uint64_t *x)
{
    *x += UINT64_C(0x9e3779b97f4a7c15);
    uint64_t z = *x;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void qr__rng_seed(struct qr_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        rng->state[i] = splitmix64(&x);
    }
    /* splitmix64 never yields four zero words in a row, but the invariant matters. */
    QR_ASSERT((rng->state[0] | rng->state[1] | rng->state[2] | rng->state[3]) != 0);
}

uint64_t qr__rng_next(struct qr_rng *rng)
{
    uint64_t *s = rng->state;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t qr__rng_below(struct qr_rng *rng, uint64_t bound)
{
    QR_ASSERT(bound > 0);
    /* Rejection sampling removes the modulo bias; it loops twice at most on average. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
    for (;;) {
        uint64_t x = qr__rng_next(rng);
        if (x < limit) {
            return x % bound;
        }
    }
}

uint64_t qr__rng_range(struct qr_rng *rng, uint64_t low, uint64_t high)
{
    QR_ASSERT(low <= high);
    if (high - low == UINT64_MAX) {
        return qr__rng_next(rng);
    }
    return low + qr__rng_below(rng, high - low + 1);
}

_Bool qr__rng_chance(struct qr_rng *rng, uint64_t numerator, uint64_t denominator)
{
    QR_ASSERT(denominator > 0);
    return qr__rng_below(rng, denominator) < numerator;
}
