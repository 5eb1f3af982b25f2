/*
 * util/endian.h: explicit little-endian encoding of fixed-width integers.
 *
 * Layer: util. Everything persisted or sent on the wire goes through these
 * helpers; no struct is ever copied to disk or a socket as it is in memory.
 */
#ifndef QR_UTIL_ENDIAN_H
#define QR_UTIL_ENDIAN_H

#include <stdint.h>

static inline void qr__put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void qr__put_u64(uint8_t *p, uint64_t v)
{
    qr__put_u32(p, (uint32_t)v);
    qr__put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t qr__get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t qr__get_u64(const uint8_t *p)
{
    return (uint64_t)qr__get_u32(p) | (uint64_t)qr__get_u32(p + 4) << 32;
}

#endif /* QR_UTIL_ENDIAN_H */
