/*
 * storage/crc32c_hw.c: CRC32C with SSE4.2 where available, the table otherwise.
 *
 * Layer: storage. The instruction path is compiled with a target attribute so
 * the rest of the library needs no special flags, and it is chosen at run
 * time with __builtin_cpu_supports, so one binary runs on every x86-64. On
 * other CPUs (or compilers) the portable util/crc32c.c table is used. The
 * instruction computes the same reflected CRC as the table on the same
 * inverted state, so results are identical (tests check it on random data).
 */
#include "storage/crc32c_hw.h"

#include <stdatomic.h>
#include <string.h>

#include "util/crc32c.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC_HAS_SSE42_PATH 1
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t
crc_sse42(uint32_t crc, const uint8_t *p, size_t size)
{
    uint64_t state = (uint32_t)~crc;
    /* Byte steps until p is 8-byte aligned, then 8 bytes per instruction. */
    while (size > 0 && ((uintptr_t)p & 7) != 0) {
        state = _mm_crc32_u8((uint32_t)state, *p);
        p++;
        size--;
    }
    while (size >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof(word)); /* Aligned, but memcpy keeps strict aliasing happy. */
        state = _mm_crc32_u64(state, word);
        p += 8;
        size -= 8;
    }
    while (size > 0) {
        state = _mm_crc32_u8((uint32_t)state, *p);
        p++;
        size--;
    }
    return ~(uint32_t)state;
}
#else
#define CRC_HAS_SSE42_PATH 0
#endif

/* 0: not probed yet, 1: hardware, 2: table. Probing twice is harmless, so no lock. */
static _Atomic int crc_mode;

static int crc_probe(void)
{
#if CRC_HAS_SSE42_PATH
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 2;
#else
    return 2;
#endif
}

bool qr__storage_crc32c_is_hw(void)
{
    int mode = atomic_load_explicit(&crc_mode, memory_order_relaxed);
    if (mode == 0) {
        mode = crc_probe();
        atomic_store_explicit(&crc_mode, mode, memory_order_relaxed);
    }
    return mode == 1;
}

uint32_t qr__storage_crc32c(uint32_t crc, const void *data, size_t size)
{
    if (size == 0) {
        return crc;
    }
#if CRC_HAS_SSE42_PATH
    if (qr__storage_crc32c_is_hw()) {
        return crc_sse42(crc, data, size);
    }
#endif
    return qr__crc32c(crc, data, size);
}
