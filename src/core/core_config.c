/*
 * core/core_config.c: membership configurations: validation, codec, voting.
 *
 * Layer: core (pure). The codec is versioned and little-endian; the decoder
 * treats its input as hostile (it arrives inside log entries from peers and
 * from disk) and never trusts a count before checking it against the size.
 *
 * Encoding, version 1:
 *   u8 version, u8[3] zero, u32 voters_count, u32 voters_old_count,
 *   u32 learners_count, then u64 ids: voters, voters_old, learners.
 */
#include <string.h>

#include "quorum/core.h"
#include "quorum/err.h"
#include "util/assert.h"
#include "util/endian.h"
#include "util/err.h"

#define CONFIG_VERSION     1
#define CONFIG_HEADER_SIZE 16

static int check_list(const qr_node_id *ids, uint32_t count, const char *what, char *errmsg)
{
    if (count > QR_CORE_MEMBERS_MAX) {
        return qr__errf(errmsg, QR_EINVAL, "config: %u %s, at most %d", count, what,
                        QR_CORE_MEMBERS_MAX);
    }
    for (uint32_t i = 0; i < count; i++) {
        if (ids[i] == 0) {
            return qr__errf(errmsg, QR_EINVAL, "config: %s include id 0", what);
        }
        if (i > 0 && ids[i] <= ids[i - 1]) {
            return qr__errf(errmsg, QR_EINVAL, "config: %s not ascending or repeated at id %llu",
                            what, (unsigned long long)ids[i]);
        }
    }
    return 0;
}

static bool list_has(const qr_node_id *ids, uint32_t count, qr_node_id id)
{
    for (uint32_t i = 0; i < count; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

int qr_core_config_validate(const struct qr_config *config, char *errmsg)
{
    QR_ASSERT(config != NULL);
    int rv = check_list(config->voters, config->voters_count, "voters", errmsg);
    if (rv == 0) {
        rv = check_list(config->voters_old, config->voters_old_count, "old voters", errmsg);
    }
    if (rv == 0) {
        rv = check_list(config->learners, config->learners_count, "learners", errmsg);
    }
    if (rv != 0) {
        return rv;
    }
    if (config->voters_count == 0) {
        return qr__errf(errmsg, QR_EINVAL, "config: at least one voter is needed");
    }
    for (uint32_t i = 0; i < config->learners_count; i++) {
        if (list_has(config->voters, config->voters_count, config->learners[i])) {
            return qr__errf(errmsg, QR_EINVAL, "config: node %llu is both voter and learner",
                            (unsigned long long)config->learners[i]);
        }
    }
    return 0;
}

size_t qr_core_config_encoded_size(const struct qr_config *config)
{
    size_t ids = (size_t)config->voters_count + config->voters_old_count + config->learners_count;
    return CONFIG_HEADER_SIZE + ids * 8;
}

void qr_core_config_encode(const struct qr_config *config, uint8_t *buf)
{
    QR_ASSERT(qr_core_config_validate(config, NULL) == 0);
    memset(buf, 0, CONFIG_HEADER_SIZE);
    buf[0] = CONFIG_VERSION;
    qr__put_u32(buf + 4, config->voters_count);
    qr__put_u32(buf + 8, config->voters_old_count);
    qr__put_u32(buf + 12, config->learners_count);
    uint8_t *p = buf + CONFIG_HEADER_SIZE;
    for (uint32_t i = 0; i < config->voters_count; i++, p += 8) {
        qr__put_u64(p, config->voters[i]);
    }
    for (uint32_t i = 0; i < config->voters_old_count; i++, p += 8) {
        qr__put_u64(p, config->voters_old[i]);
    }
    for (uint32_t i = 0; i < config->learners_count; i++, p += 8) {
        qr__put_u64(p, config->learners[i]);
    }
}

int qr_core_config_decode(const uint8_t *buf,
                          size_t size,
                          struct qr_config *config_out,
                          char *errmsg)
{
    QR_ASSERT(config_out != NULL);
    if (size < CONFIG_HEADER_SIZE || buf == NULL) {
        return qr__errf(errmsg, QR_ECORRUPT, "config: %zu bytes, the header alone needs %d", size,
                        CONFIG_HEADER_SIZE);
    }
    if (buf[0] != CONFIG_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "config: version %u, expected %d", buf[0],
                        CONFIG_VERSION);
    }
    if (buf[1] != 0 || buf[2] != 0 || buf[3] != 0) {
        return qr__errf(errmsg, QR_ECORRUPT, "config: reserved bytes not zero");
    }
    uint32_t counts[3] = {qr__get_u32(buf + 4), qr__get_u32(buf + 8), qr__get_u32(buf + 12)};
    for (int k = 0; k < 3; k++) {
        if (counts[k] > QR_CORE_MEMBERS_MAX) {
            return qr__errf(errmsg, QR_ECORRUPT, "config: count %u at offset %d exceeds %d",
                            counts[k], 4 + 4 * k, QR_CORE_MEMBERS_MAX);
        }
    }
    size_t expected = CONFIG_HEADER_SIZE + ((size_t)counts[0] + counts[1] + counts[2]) * 8;
    if (size != expected) {
        return qr__errf(errmsg, QR_ECORRUPT, "config: %zu bytes, counts say %zu", size, expected);
    }
    struct qr_config c;
    memset(&c, 0, sizeof(c));
    c.voters_count = counts[0];
    c.voters_old_count = counts[1];
    c.learners_count = counts[2];
    const uint8_t *p = buf + CONFIG_HEADER_SIZE;
    for (uint32_t i = 0; i < c.voters_count; i++, p += 8) {
        c.voters[i] = qr__get_u64(p);
    }
    for (uint32_t i = 0; i < c.voters_old_count; i++, p += 8) {
        c.voters_old[i] = qr__get_u64(p);
    }
    for (uint32_t i = 0; i < c.learners_count; i++, p += 8) {
        c.learners[i] = qr__get_u64(p);
    }
    int rv = qr_core_config_validate(&c, errmsg);
    if (rv != 0) {
        return QR_ECORRUPT;
    }
    *config_out = c;
    return 0;
}

static int majority_of(const qr_node_id *ids, uint32_t count, struct qr_voting *out, char *errmsg)
{
    struct qr_voter voters[QR_CORE_MEMBERS_MAX];
    for (uint32_t i = 0; i < count; i++) {
        voters[i].id = ids[i];
        voters[i].weight = 1;
    }
    return qr_voting_init_majority(out, voters, count, errmsg);
}

int qr_core_config_voting(const struct qr_config *config,
                          struct qr_voting *voting_out,
                          char *errmsg)
{
    QR_ASSERT(config != NULL && voting_out != NULL);
    struct qr_voting next;
    int rv = majority_of(config->voters, config->voters_count, &next, errmsg);
    if (rv != 0 || config->voters_old_count == 0) {
        if (rv == 0) {
            *voting_out = next;
        }
        return rv;
    }
    struct qr_voting old;
    rv = majority_of(config->voters_old, config->voters_old_count, &old, errmsg);
    if (rv != 0) {
        return rv;
    }
    return qr_voting_init_joint(voting_out, &old, &next, errmsg);
}
