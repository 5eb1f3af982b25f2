/*
 * storage/crc32c_hw.h: CRC32C for storage, with the CPU's instruction when it has one.
 *
 * Layer: storage. Same function as util's qr__crc32c (same polynomial, same
 * incremental convention: pass the previous result to continue), but it uses
 * the SSE4.2 crc32 instruction when the running CPU supports it and falls back
 * to the portable table otherwise. It must never give a different answer than
 * qr__crc32c: checksums written by one machine are verified by another.
 */
#ifndef QR_STORAGE_CRC32C_HW_H
#define QR_STORAGE_CRC32C_HW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC32C of data, continuing from crc (0 to start). Any thread. */
uint32_t qr__storage_crc32c(uint32_t crc, const void *data, size_t size);

/* Whether qr__storage_crc32c uses a hardware instruction on this CPU. */
bool qr__storage_crc32c_is_hw(void);

#endif /* QR_STORAGE_CRC32C_HW_H */
