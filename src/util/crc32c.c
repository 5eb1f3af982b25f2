/*
 * util/crc32c.c: CRC32C (Castagnoli, reflected polynomial 0x82f63b78).
 *
 * Layer: util. On x86-64 CPUs with SSE4.2 the crc32 instruction does 8 bytes per step
 * (chosen at run time); elsewhere a table does one byte per step. Both give the same
 * values (tests compare them). Safe from any thread: the table is built once under
 * pthread_once and the CPU probe is an atomic.
 */
#include "util/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ UINT32_C(0x82f63b78) : c >> 1;
        }
        table[i] = c;
    }
}

uint32_t qr__crc32c_sw(uint32_t crc, const void *data, size_t size)
{
    (void)pthread_once(&table_once, table_init); /* Cannot fail with a valid once. */
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < size; i++) {
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

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

/* 0: not probed yet, 1: hardware, 2: table. Probing twice is harmless. */
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

bool qr__crc32c_is_hw(void)
{
    int mode = atomic_load_explicit(&crc_mode, memory_order_relaxed);
    if (mode == 0) {
        mode = crc_probe();
        atomic_store_explicit(&crc_mode, mode, memory_order_relaxed);
    }
    return mode == 1;
}

uint32_t qr__crc32c(uint32_t crc, const void *data, size_t size)
{
    if (size == 0) {
        return crc;
    }
#if CRC_HAS_SSE42_PATH
    if (qr__crc32c_is_hw()) {
        return crc_sse42(crc, data, size);
    }
#endif
    return qr__crc32c_sw(crc, data, size);
}
