/*
 * util/rng.h: a small seeded pseudo-random generator.
 *
 * Layer: util. Deterministic: the same seed always gives the same sequence,
 * on every platform. This is how randomness enters the consensus core and the
 * simulator; nothing in libquorum calls rand(). Not for cryptography.
 */
#ifndef QR_UTIL_RNG_H
#define QR_UTIL_RNG_H

#include <stdint.h>

struct qr_rng {
    uint64_t state[4]; /* xoshiro256** state; never all zero. */
};

/* Seeds the generator; every seed, 0 included, is valid. */
void qr__rng_seed(struct qr_rng *rng, uint64_t seed);
/* The next 64 random bits. */
uint64_t qr__rng_next(struct qr_rng *rng);
/* A uniform value in [0, bound); bound must be greater than 0. */
uint64_t qr__rng_below(struct qr_rng *rng, uint64_t bound);
/* A uniform value in [low, high]; low must not exceed high. */
uint64_t qr__rng_range(struct qr_rng *rng, uint64_t low, uint64_t high);
/* True with probability numerator / denominator; denominator must be greater than 0. */
_Bool qr__rng_chance(struct qr_rng *rng, uint64_t numerator, uint64_t denominator);

#endif /* QR_UTIL_RNG_H */
