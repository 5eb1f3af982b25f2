/*
 * fuzz_forward: the node's FORWARD and FORWARD_ACK frame bodies.
 *
 * Followers forward client proposals to the leader in FORWARD frames and get
 * FORWARD_ACK frames back; both bodies come from peers and are hostile. Any
 * body that decodes must re-encode to the same bytes (the encoding is
 * canonical), and every refusal must explain itself.
 */
#include <stdint.h>
#include <string.h>

#include "node/node_internal.h"
#include "quorum/err.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_forward(const uint8_t *data, size_t size)
{
    struct qr__node_forward fwd;
    char errmsg[QR_ERRMSG_SIZE] = "";
    struct qr_buf body = {(uint8_t *)(uintptr_t)data, size};
    if (qr__node_forward_decode(body, &fwd, errmsg) != 0) {
        if (errmsg[0] == '\0') {
            __builtin_trap();
        }
        return;
    }
    uint8_t *again = qr_malloc(qr__node_forward_size(fwd.command.len));
    if (again == NULL) {
        return;
    }
    qr__node_forward_encode(fwd.request_id, fwd.command, again);
    if (memcmp(again, data, size) != 0) {
        __builtin_trap();
    }
    qr_free(again);
}

static void check_ack(const uint8_t *data, size_t size)
{
    struct qr__node_forward_ack ack;
    char errmsg[QR_ERRMSG_SIZE] = "";
    struct qr_buf body = {(uint8_t *)(uintptr_t)data, size};
    if (qr__node_forward_ack_decode(body, &ack, errmsg) != 0) {
        if (errmsg[0] == '\0') {
            __builtin_trap();
        }
        return;
    }
    uint8_t again[QR__NODE_FORWARD_ACK_SIZE];
    qr__node_forward_ack_encode(&ack, again);
    if (size != sizeof(again) || memcmp(again, data, size) != 0) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] & 1) {
        check_forward(data + 1, size - 1);
    } else {
        check_ack(data + 1, size - 1);
    }
    return 0;
}
