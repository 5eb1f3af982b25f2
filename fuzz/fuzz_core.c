/*
 * fuzz_core: hostile peers against one consensus core, and the config decoder.
 *
 * The input is read as a program: each step picks an operation (tick,
 * propose, read, persist, drain, or a message with fuzzer-chosen fields and
 * entries from a fuzzer-chosen peer). The core must never crash or fail an
 * assertion, whatever peers send: an assertion is for our own bugs only. The
 * first bytes are also fed to qr_core_config_decode.
 */
#include <stdint.h>
#include <string.h>

#include "quorum/core.h"
#include "quorum/err.h"

#define STEPS_MAX   2000
#define ENTRIES_MAX 8

struct reader {
    const uint8_t *data;
    size_t size;
    size_t at;
};

static uint64_t take(struct reader *r, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        v = (v << 8) | (r->at < r->size ? r->data[r->at++] : 0);
    }
    return v;
}

static void drain(struct qr_core *core, uint64_t *pending_seq)
{
    for (int guard = 0; guard < 16 && qr_core_has_ready(core); guard++) {
        struct qr_ready rd;
        qr_core_ready(core, &rd);
        if (rd.persist_seq != 0) {
            *pending_seq = rd.persist_seq;
        }
        qr_core_advance(core);
    }
}

static void fuzz_message(struct qr_core *core, struct reader *r)
{
    static uint8_t payload[64];
    struct qr_entry entries[ENTRIES_MAX];
    struct qr_snapshot_meta meta;
    struct qr_msg m;
    memset(&m, 0, sizeof(m));
    memset(&meta, 0, sizeof(meta));
    m.type = (enum qr_msg_type)(take(r, 1) % (QR_MSG_TYPE_MAX + 2));
    m.from = take(r, 1) % 5;
    m.to = take(r, 1) % 4 == 0 ? 9 : 1;
    m.term = take(r, 1) % 8;
    m.log_index = take(r, 1) % 16;
    m.log_term = take(r, 1) % 8;
    m.commit = take(r, 1) % 20;
    uint64_t flags = take(r, 1);
    m.prevote = flags & 1;
    m.transfer = flags & 2;
    m.reject = flags & 4;
    m.last_chunk = flags & 8;
    m.index = take(r, 1) % 20;
    m.hint_index = take(r, 1) % 20;
    m.hint_term = take(r, 1) % 8;
    m.context = take(r, 1) % 8;
    m.entries_count = take(r, 1) % (ENTRIES_MAX + 1);
    for (size_t i = 0; i < m.entries_count; i++) {
        entries[i].index = (flags & 16) ? take(r, 1) % 20 : m.log_index + 1 + i;
        entries[i].term = take(r, 1) % 8;
        entries[i].type = (enum qr_entry_type)(take(r, 1) % 5);
        entries[i].data.len = take(r, 1) % sizeof(payload);
        entries[i].data.base = payload;
        memset(payload, (int)take(r, 1), sizeof(payload));
    }
    m.entries = entries;
    if (flags & 32) {
        meta.index = take(r, 1) % 30;
        meta.term = take(r, 1) % 8;
        meta.size = take(r, 1) % 100;
        meta.crc = (uint32_t)take(r, 4);
        meta.config.voters_count = (uint32_t)(take(r, 1) % 4);
        for (uint32_t i = 0; i < meta.config.voters_count; i++) {
            meta.config.voters[i] = i + 1;
        }
        m.snapshot = &meta;
        m.offset = take(r, 1) % 100;
        m.chunk_size = (uint32_t)(take(r, 1) % sizeof(payload));
        m.data.base = payload;
        m.data.len = m.chunk_size;
    }
    (void)qr_core_step(core, &m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qr_config decoded;
    (void)qr_core_config_decode(data, size < 512 ? size : 512, &decoded, NULL);

    struct qr_config config;
    memset(&config, 0, sizeof(config));
    config.voters_count = 3;
    config.voters[0] = 1;
    config.voters[1] = 2;
    config.voters[2] = 3;
    struct qr_core_opts opts;
    qr_core_opts_default(&opts, 1);
    opts.snapshot_chunk_size = 16;
    struct qr_core_state state;
    memset(&state, 0, sizeof(state));
    state.config = &config;
    struct qr_core *core = NULL;
    if (qr_core_create(&opts, &state, &core, NULL) != 0) {
        return 0;
    }
    struct reader r = {data, size, 0};
    uint64_t pending = 0;
    uint64_t read_id = 1;
    for (int step = 0; step < STEPS_MAX && r.at < r.size; step++) {
        switch (take(&r, 1) % 8) {
        case 0:
            qr_core_tick(core);
            break;
        case 1: {
            uint8_t cmd[8] = {1, 2, 3};
            (void)qr_core_propose(core, (struct qr_buf){cmd, sizeof(cmd)}, NULL);
            break;
        }
        case 2:
            (void)qr_core_read_index(core, read_id++);
            break;
        case 3:
            if (pending != 0) {
                (void)qr_core_persisted(core, pending);
                pending = 0;
            }
            break;
        case 4:
            qr_core_campaign(core);
            break;
        default:
            fuzz_message(core, &r);
            break;
        }
        drain(core, &pending);
    }
    qr_core_destroy(core);
    return 0;
}
