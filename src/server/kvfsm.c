/*
 * server/kvfsm.c: the key-value store as the node's state machine (see kvfsm.h).
 */
#include "server/kvfsm.h"

#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/log.h"

static int result_encode(const struct qr_kv_result *r, struct qr_buf *buf_out)
{
    size_t value_size = r->status == QR_KV_VALUE ? r->value.len : 0;
    uint8_t *bytes = qr_malloc(QR_KVFSM_RESULT_HEADER_SIZE + value_size);
    if (bytes == NULL) {
        return QR_ENOMEM;
    }
    memset(bytes, 0, QR_KVFSM_RESULT_HEADER_SIZE);
    bytes[0] = (uint8_t)r->status;
    bytes[1] = (uint8_t)r->error;
    qr__put_u64(bytes + 8, (uint64_t)r->integer);
    if (value_size > 0) {
        memcpy(bytes + QR_KVFSM_RESULT_HEADER_SIZE, r->value.base, value_size);
    }
    buf_out->base = bytes;
    buf_out->len = QR_KVFSM_RESULT_HEADER_SIZE + value_size;
    return 0;
}

int qr__kvfsm_result_decode(struct qr_buf buf, struct qr_kv_result *result_out)
{
    memset(result_out, 0, sizeof(*result_out));
    if (buf.base == NULL || buf.len < QR_KVFSM_RESULT_HEADER_SIZE || buf.base[0] > QR_KV_ERROR) {
        return QR_ECORRUPT;
    }
    result_out->status = (enum qr_kv_status)buf.base[0];
    result_out->error = (enum qr_kv_error)buf.base[1];
    result_out->integer = (int64_t)qr__get_u64(buf.base + 8);
    if (result_out->status == QR_KV_VALUE) {
        result_out->value.base =
            buf.len > QR_KVFSM_RESULT_HEADER_SIZE ? buf.base + QR_KVFSM_RESULT_HEADER_SIZE : NULL;
        result_out->value.len = buf.len - QR_KVFSM_RESULT_HEADER_SIZE;
    }
    return 0;
}

static int kvfsm_apply(void *ctx, qr_index index, struct qr_buf command, struct qr_buf *result_out)
{
    struct qr_kvfsm *f = ctx;
    struct qr_kv_cmd cmd;
    struct qr_kv_result result;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__kv_cmd_decode(command.base, command.len, &cmd, errmsg);
    if (rv != 0) {
        /* Every replica decodes the same bytes and refuses them alike; skipping the entry
           is not an option, so it becomes an answer that changed nothing. */
        f->corrupt_count++;
        QR_LOG_WARNF("server: log entry %llu is not a command: %s", (unsigned long long)index,
                     errmsg);
        memset(&result, 0, sizeof(result));
        result.status = QR_KV_ERROR;
        result.error = QR_KV_ERROR_NONE;
        return result_out != NULL ? result_encode(&result, result_out) : 0;
    }
    rv = qr__kv_apply(f->kv, &cmd, &result);
    if (rv != 0) {
        return rv; /* Out of memory: the node stops rather than diverge. */
    }
    if (cmd.op == QR_KV_MEMBER && result.status == QR_KV_OK) {
        f->has_members_changed = true;
    }
    /* Only the node where the command was proposed wants an answer. */
    return result_out != NULL ? result_encode(&result, result_out) : 0;
}

static int kvfsm_snapshot(void *ctx, struct qr_buf *data_out)
{
    struct qr_kvfsm *f = ctx;
    return qr__kv_snapshot(f->kv, data_out);
}

static int kvfsm_restore(void *ctx, struct qr_buf data)
{
    struct qr_kvfsm *f = ctx;
    char errmsg[QR_ERRMSG_SIZE] = "";
    int rv = qr__kv_restore(f->kv, data.base, data.len, errmsg);
    if (rv != 0) {
        QR_LOG_ERRORF("server: cannot restore the snapshot: %s", errmsg);
        return rv;
    }
    f->has_members_changed = true;
    return 0;
}

static void kvfsm_release(void *ctx, struct qr_buf buf)
{
    (void)ctx;
    qr_free(buf.base);
}

int qr__kvfsm_init(struct qr_kvfsm *f, const struct qr_kv_opts *opts)
{
    QR_ASSERT(f != NULL);
    memset(f, 0, sizeof(*f));
    int rv = qr__kv_create(opts, &f->kv);
    if (rv != 0) {
        return rv;
    }
    f->fsm.ctx = f;
    f->fsm.apply = kvfsm_apply;
    f->fsm.snapshot = kvfsm_snapshot;
    f->fsm.restore = kvfsm_restore;
    f->fsm.release = kvfsm_release;
    return 0;
}

void qr__kvfsm_close(struct qr_kvfsm *f)
{
    if (f == NULL) {
        return;
    }
    qr__kv_destroy(f->kv);
    f->kv = NULL;
}
