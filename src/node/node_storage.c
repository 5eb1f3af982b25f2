/*
 * node/node_storage.c: storage work on the worker thread, one job at a time.
 *
 * Layer: node. Storage calls block on the disk, so they run in libuv's thread pool
 * (uv_queue_work) while the loop goes on (DESIGN rule 5). Jobs form a FIFO and only its
 * head runs, so storage sees one call at a time and persist batches reach the disk in the
 * order the core produced them. A job owns copies of everything it writes; the worker
 * touches only the job and node->storage, and the loop thread touches neither while the
 * job runs. The after-work callback, back on the loop's thread, reports the result to the
 * core: qr_core_persisted() only after storage returned 0 (DESIGN rule 2).
 *
 * Errors: QR_ENOSPC keeps the job and retries it on a timer (the node is read-only
 * meanwhile: nothing new becomes durable, so nothing new is acknowledged). Any other error
 * stops the node; restarting it re-reads the disk.
 */
#include <string.h>

#include "node/node_internal.h"
#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

static void job_free(struct qr_node *node, struct qr__node_job *job)
{
    if (job == NULL) {
        return;
    }
    qr__node_bytes_unref(node, job->bytes);
    qr_free(job->entries);
    qr_free(job);
}

static void jobs_start(struct qr_node *node);

static void jobs_push(struct qr_node *node, struct qr__node_job *job)
{
    job->node = node;
    job->work.data = job;
    job->next = NULL;
    if (node->jobs_tail != NULL) {
        node->jobs_tail->next = job;
    } else {
        node->jobs_head = job;
    }
    node->jobs_tail = job;
    jobs_start(node);
}

/* Copy the entries of a ready batch, data included, into one allocation. */
static int persist_copy_entries(struct qr__node_job *job, const struct qr_ready *rd)
{
    if (rd->entries_count == 0) {
        return 0;
    }
    size_t size = rd->entries_count * sizeof(struct qr_entry);
    for (size_t i = 0; i < rd->entries_count; i++) {
        size += rd->entries[i].data.len;
    }
    job->entries = qr_malloc(size);
    if (job->entries == NULL) {
        return QR_ENOMEM;
    }
    uint8_t *data = (uint8_t *)(job->entries + rd->entries_count);
    for (size_t i = 0; i < rd->entries_count; i++) {
        job->entries[i] = rd->entries[i];
        if (rd->entries[i].data.len > 0) {
            memcpy(data, rd->entries[i].data.base, rd->entries[i].data.len);
            job->entries[i].data.base = data;
            data += rd->entries[i].data.len;
        } else {
            job->entries[i].data.base = NULL;
        }
    }
    job->entries_count = rd->entries_count;
    return 0;
}

int qr__node_storage_persist(struct qr_node *node, const struct qr_ready *rd)
{
    QR_ASSERT(rd->persist_seq != 0);
    struct qr__node_job *job = qr_calloc(1, sizeof(*job));
    if (job == NULL) {
        return QR_ENOMEM;
    }
    job->type = QR__NODE_JOB_PERSIST;
    job->seq = rd->persist_seq;
    if (rd->snapshot != NULL) {
        /* node_install_snapshot made the received bytes the node's snapshot just now. */
        QR_ASSERT(node->snapshot != NULL && node->snapshot_index == rd->snapshot->index);
        job->has_snapshot = true;
        job->snapshot = *rd->snapshot;
        job->bytes = qr__node_bytes_ref(node->snapshot);
    }
    job->has_hard_state = rd->has_hard_state;
    job->hard_state = rd->hard_state;
    int rv = persist_copy_entries(job, rd);
    if (rv != 0) {
        job_free(node, job);
        return rv;
    }
    jobs_push(node, job);
    return 0;
}

int qr__node_storage_snapshot(struct qr_node *node,
                              const struct qr_snapshot_meta *meta,
                              struct qr__node_bytes *bytes)
{
    struct qr__node_job *job = qr_calloc(1, sizeof(*job));
    if (job == NULL) {
        qr__node_bytes_unref(node, bytes);
        return QR_ENOMEM;
    }
    job->type = QR__NODE_JOB_SNAPSHOT_LOCAL;
    job->snapshot = *meta;
    job->bytes = bytes;
    jobs_push(node, job);
    return 0;
}

static void storage_compact(struct qr_node *node, qr_index upto)
{
    struct qr__node_job *job = qr_calloc(1, sizeof(*job));
    if (job == NULL) {
        return; /* Compaction is an optimisation; the next snapshot queues another. */
    }
    job->type = QR__NODE_JOB_COMPACT;
    job->upto = upto;
    jobs_push(node, job);
}

/* ---- Worker thread: only the job and node->storage ---------------------------------- */

static int work_snapshot(struct qr_storage *s,
                         struct qr__node_job *job,
                         enum qr_storage_snapshot_source source)
{
    struct qr_storage_snapshot_writer *w = NULL;
    int rv = qr_storage_snapshot_begin(s, &job->snapshot, source, &w);
    if (rv != 0) {
        return rv;
    }
    const struct qr_buf *buf = &job->bytes->buf;
    if (buf->len > 0) {
        rv = qr_storage_snapshot_write(w, 0, buf->base, buf->len);
    }
    if (rv != 0) {
        qr_storage_snapshot_abort(w);
        return rv;
    }
    return qr_storage_snapshot_finish(w, &job->snapshot);
}

static int work_persist(struct qr_storage *s, struct qr__node_job *job)
{
    if (job->has_snapshot && !job->is_snapshot_written) {
        /* Snapshot first: the batch's reset record needs it published. */
        int rv = work_snapshot(s, job, QR_STORAGE_SNAPSHOT_RECEIVED);
        if (rv != 0) {
            return rv;
        }
        job->is_snapshot_written = true;
    }
    struct qr_storage_batch batch;
    memset(&batch, 0, sizeof(batch));
    batch.snapshot = job->has_snapshot ? &job->snapshot : NULL;
    batch.entries = job->entries;
    batch.entries_count = job->entries_count;
    batch.has_hard_state = job->has_hard_state;
    batch.hard_state = job->hard_state;
    return qr_storage_write(s, &batch);
}

static void jobs_work(uv_work_t *work)
{
    struct qr__node_job *job = work->data;
    struct qr_storage *s = job->node->storage;
    job->errmsg[0] = '\0';
    switch (job->type) {
    case QR__NODE_JOB_PERSIST:
        job->rv = work_persist(s, job);
        break;
    case QR__NODE_JOB_SNAPSHOT_LOCAL:
        job->rv = work_snapshot(s, job, QR_STORAGE_SNAPSHOT_LOCAL);
        break;
    case QR__NODE_JOB_COMPACT:
        job->rv = qr_storage_compact(s, job->upto, &job->removed_count);
        break;
    }
    if (job->rv != 0) {
        (void)qr__errf(job->errmsg, job->rv, "%s", qr_storage_errmsg(s));
    }
}

/* ---- Loop thread: completion ------------------------------------------------------------ */

static void done_persist(struct qr_node *node, struct qr__node_job *job)
{
    int rv = qr_core_persisted(node->core, job->seq);
    QR_ASSERT(rv == 0); /* Batches complete in the order the core handed them out. */
    QR_LOG_DEBUGF("node: node=%llu persisted batch %llu (%zu entries)",
                  (unsigned long long)node->opts.id, (unsigned long long)job->seq,
                  job->entries_count);
}

static void done_snapshot(struct qr_node *node, struct qr__node_job *job)
{
    node->snapshot_running = false;
    const struct qr_snapshot_meta *meta = &job->snapshot;
    int rv = qr_core_snapshot_taken(node->core, meta, node->opts.snapshot_trailing);
    if (rv != 0) {
        /* A snapshot received from the leader overtook this one meanwhile. */
        QR_LOG_INFOF("node: node=%llu local snapshot %llu superseded",
                     (unsigned long long)node->opts.id, (unsigned long long)meta->index);
        return;
    }
    qr__node_snapshot_set(node, meta->index, qr__node_bytes_ref(job->bytes));
    QR_LOG_INFOF("node: node=%llu term=%llu snapshot index=%llu size=%llu written",
                 (unsigned long long)node->opts.id, (unsigned long long)node->term,
                 (unsigned long long)meta->index, (unsigned long long)meta->size);
    storage_compact(node, meta->index);
}

/* Whether a failed job is harmless to drop rather than fatal. */
static bool job_is_droppable(const struct qr__node_job *job)
{
    /* A local snapshot not newer than one received from the leader meanwhile. */
    return job->type == QR__NODE_JOB_SNAPSHOT_LOCAL && job->rv == QR_EINVAL;
}

static void jobs_after_failure(struct qr_node *node, struct qr__node_job *job)
{
    if (job->rv == QR_ENOSPC) {
        if (!node->is_read_only) {
            QR_LOG_WARNF("node: node=%llu disk full, writes wait (read-only): %s",
                         (unsigned long long)node->opts.id, job->errmsg);
        }
        node->is_read_only = true;
        node->job_waiting_retry = true;
        QR__NODE_CHECK(
            uv_timer_start(&node->retry_timer, qr__node_storage_retry, QR__NODE_NOSPC_RETRY_MS, 0));
        return;
    }
    node->jobs_head = job->next;
    if (node->jobs_head == NULL) {
        node->jobs_tail = NULL;
    }
    if (job_is_droppable(job)) {
        node->snapshot_running = false;
        QR_LOG_INFOF("node: node=%llu local snapshot %llu dropped: %s",
                     (unsigned long long)node->opts.id, (unsigned long long)job->snapshot.index,
                     job->errmsg);
        job_free(node, job);
        jobs_start(node);
        return;
    }
    char errmsg[QR_ERRMSG_SIZE];
    int err = job->rv;
    memcpy(errmsg, job->errmsg, sizeof(errmsg)); /* Storage's message names file and offset. */
    job_free(node, job);
    qr__node_fail(node, err, errmsg);
}

static void jobs_after_work(uv_work_t *work, int status)
{
    struct qr__node_job *job = work->data;
    struct qr_node *node = job->node;
    QR_ASSERT(node->job_running && node->jobs_head == job);
    QR_ASSERT(status == 0); /* Jobs are never canceled once queued to the pool. */
    node->job_running = false;
    if (node->is_closing || node->fatal_err != 0) {
        node->jobs_head = job->next;
        node->jobs_tail = node->jobs_head == NULL ? NULL : node->jobs_tail;
        job_free(node, job);
        qr__node_storage_drop_queued(node);
        qr__node_maybe_finish(node);
        return;
    }
    if (job->rv != 0) {
        jobs_after_failure(node, job);
        qr__node_kick(node);
        return;
    }
    if (node->is_read_only) {
        node->is_read_only = false;
        QR_LOG_WARNF("node: node=%llu disk writes succeed again",
                     (unsigned long long)node->opts.id);
    }
    node->jobs_head = job->next;
    if (node->jobs_head == NULL) {
        node->jobs_tail = NULL;
    }
    if (job->type == QR__NODE_JOB_PERSIST) {
        done_persist(node, job);
    } else if (job->type == QR__NODE_JOB_SNAPSHOT_LOCAL) {
        done_snapshot(node, job);
    }
    job_free(node, job);
    jobs_start(node);
    qr__node_kick(node);
}

static void jobs_start(struct qr_node *node)
{
    if (node->job_running || node->job_waiting_retry || node->jobs_head == NULL ||
        node->is_closing || node->fatal_err != 0) {
        return;
    }
    node->job_running = true;
    int rv = uv_queue_work(node->loop, &node->jobs_head->work, jobs_work, jobs_after_work);
    QR_ASSERT(rv == 0); /* Fails only for a NULL work callback. */
}

void qr__node_storage_retry(uv_timer_t *timer)
{
    struct qr_node *node = timer->data;
    node->job_waiting_retry = false;
    jobs_start(node);
}

void qr__node_storage_drop_queued(struct qr_node *node)
{
    /* The running job (the head) finishes in its after-work callback. */
    struct qr__node_job *keep = node->job_running ? node->jobs_head : NULL;
    struct qr__node_job *job = keep != NULL ? keep->next : node->jobs_head;
    while (job != NULL) {
        struct qr__node_job *next = job->next;
        if (job->type == QR__NODE_JOB_SNAPSHOT_LOCAL) {
            node->snapshot_running = false;
        }
        job_free(node, job);
        job = next;
    }
    node->jobs_head = keep;
    node->jobs_tail = keep;
    if (keep != NULL) {
        keep->next = NULL;
    }
    node->job_waiting_retry = false;
}
