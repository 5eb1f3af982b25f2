/*
 * util/crc32c.c: table-driven CRC32C (reflected polynomial 0x82f63b78).
 *
 * Layer: util. The table is built on first use from the polynomial; no
 * hardware instruction yet (the storage issue may add one behind the same
 * function).
 */
#include "util/crc32c.h"

#include <stdbool.h>

static uint32_t table[256];
static bool table_ready;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ UINT32_C(0x82f63b78) : c >> 1;
        }
        table[i] = c;
    }
    table_ready = true;
}

uint32_t qr__crc32c(uint32_t crc, const void *data, size_t size)
{
    if (!table_ready) {
        table_init();
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}
