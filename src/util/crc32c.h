/*
 * util/crc32c.h: CRC32C (Castagnoli), the checksum of every record and snapshot.
 *
 * Layer: util. Pure computation, portable table-driven implementation;
 * incremental: pass the previous result to continue over more bytes.
 */
#ifndef QR_UTIL_CRC32C_H
#define QR_UTIL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC32C of data, continuing from crc (0 to start). Any thread. */
uint32_t qr__crc32c(uint32_t crc, const void *data, size_t size);

/* The same with the table only (tests compare it with the hardware path). */
uint32_t qr__crc32c_sw(uint32_t crc, const void *data, size_t size);

/* Whether qr__crc32c uses a hardware instruction on this CPU. */
bool qr__crc32c_is_hw(void);

#endif /* QR_UTIL_CRC32C_H */
