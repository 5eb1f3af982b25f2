/*
 * node/node_wire.c: the node runtime's own frame bodies, FORWARD and FORWARD_ACK.
 *
 * Layer: node. A follower forwards a client's command to the leader in a FORWARD frame;
 * the leader answers with FORWARD_ACK carrying the index and term the entry got, or the
 * error that refused it. Both travel as frames of transport/codec.h (which checks length
 * and CRC); this file lays out and checks their bodies. Bodies come from peers: every
 * decoder treats its input as hostile and answers with an error, never a crash. Pure: no
 * I/O, no allocation.
 */
#include <string.h>

#include "node/node_internal.h"
#include "util/assert.h"
#include "util/endian.h"
#include "util/err.h"

_Static_assert(QR__NODE_FORWARD_HEADER_SIZE == 24, "forward header layout");
_Static_assert(QR__NODE_FORWARD_ACK_SIZE == 32, "forward ack layout");

size_t qr__node_forward_size(size_t command_size)
{
    return QR__NODE_FORWARD_HEADER_SIZE + command_size;
}

void qr__node_forward_encode(uint64_t request_id, struct qr_buf command, uint8_t *buf)
{
    QR_ASSERT(buf != NULL);
    QR_ASSERT(command.len <= UINT32_MAX && (command.base != NULL || command.len == 0));
    memset(buf, 0, QR__NODE_FORWARD_HEADER_SIZE);
    buf[0] = QR__NODE_WIRE_VERSION;
    qr__put_u64(buf + 8, request_id);
    qr__put_u32(buf + 16, (uint32_t)command.len);
    if (command.len > 0) {
        memcpy(buf + QR__NODE_FORWARD_HEADER_SIZE, command.base, command.len);
    }
}

static bool is_zero(const uint8_t *p, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

int qr__node_forward_decode(struct qr_buf body, struct qr__node_forward *out, char *errmsg)
{
    QR_ASSERT(out != NULL);
    if (body.len < QR__NODE_FORWARD_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO, "forward: body of %zu bytes, at least %d expected",
                        body.len, QR__NODE_FORWARD_HEADER_SIZE);
    }
    const uint8_t *p = body.base;
    if (p[0] != QR__NODE_WIRE_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "forward: version %u, expected %d", p[0],
                        QR__NODE_WIRE_VERSION);
    }
    if (!is_zero(p + 1, 7) || !is_zero(p + 20, 4)) {
        return qr__errf(errmsg, QR_EPROTO, "forward: reserved bytes not zero");
    }
    uint32_t size = qr__get_u32(p + 16);
    if ((size_t)size != body.len - QR__NODE_FORWARD_HEADER_SIZE) {
        return qr__errf(errmsg, QR_EPROTO, "forward: command of %u bytes in a body of %zu", size,
                        body.len);
    }
    out->request_id = qr__get_u64(p + 8);
    out->command.base = size > 0 ? body.base + QR__NODE_FORWARD_HEADER_SIZE : NULL;
    out->command.len = size;
    return 0;
}

void qr__node_forward_ack_encode(const struct qr__node_forward_ack *ack, uint8_t *buf)
{
    QR_ASSERT(ack != NULL && buf != NULL);
    QR_ASSERT(ack->status <= 0);
    QR_ASSERT(ack->status != 0 || (ack->index > 0 && ack->term > 0));
    memset(buf, 0, QR__NODE_FORWARD_ACK_SIZE);
    buf[0] = QR__NODE_WIRE_VERSION;
    qr__put_u32(buf + 4, (uint32_t)-ack->status);
    qr__put_u64(buf + 8, ack->request_id);
    qr__put_u64(buf + 16, ack->index);
    qr__put_u64(buf + 24, ack->term);
}

int qr__node_forward_ack_decode(struct qr_buf body, struct qr__node_forward_ack *out, char *errmsg)
{
    QR_ASSERT(out != NULL);
    if (body.len != QR__NODE_FORWARD_ACK_SIZE) {
        return qr__errf(errmsg, QR_EPROTO, "forward ack: body of %zu bytes, expected %d", body.len,
                        QR__NODE_FORWARD_ACK_SIZE);
    }
    const uint8_t *p = body.base;
    if (p[0] != QR__NODE_WIRE_VERSION) {
        return qr__errf(errmsg, QR_EVERSION, "forward ack: version %u, expected %d", p[0],
                        QR__NODE_WIRE_VERSION);
    }
    if (!is_zero(p + 1, 3)) {
        return qr__errf(errmsg, QR_EPROTO, "forward ack: reserved bytes not zero");
    }
    uint32_t code = qr__get_u32(p + 4);
    /* An error code is the table's number; one this build does not know is refused rather
     * than passed to a client as an unnamed failure. */
    if (code > 255 || (code != 0 && strcmp(qr_err_name(-(int)code), "QR_E?") == 0)) {
        return qr__errf(errmsg, QR_EPROTO, "forward ack: unknown status %u", code);
    }
    out->status = -(int)code;
    out->request_id = qr__get_u64(p + 8);
    out->index = qr__get_u64(p + 16);
    out->term = qr__get_u64(p + 24);
    if (out->status == 0 && (out->index == 0 || out->term == 0)) {
        return qr__errf(errmsg, QR_EPROTO, "forward ack: success without an index and term");
    }
    return 0;
}
