/*
 * node/node_storage.c: storage work on the node's writer thread, in order.
 *
 * Layer: node. Storage calls block on the disk, so they run on a thread of the node's own
 * while the loop goes on (DESIGN rule 5). The loop hands jobs over in the order it made
 * them (todo list); the writer takes them in that order and returns them (done list,
 * then uv_async). Persist batches that queued while the writer was busy are taken
 * together and written with one fdatasync (qr_storage_write_group): the core hands out a
 * new batch while earlier ones are being written (persist_batches_max), so the writer,
 * done with one flush, starts the next at once instead of waiting for the loop. A job owns
 * copies of everything it writes; the writer touches only the jobs it took, its group
 * array and node->storage, and the loop touches none of them meanwhile. Back on the
 * loop's thread the results go to the core in order: qr_core_persisted() only after
 * storage returned 0 (DESIGN rule 2).
 *
 * Errors: a failed group pauses the writer. QR_ENOSPC hands the group back to the front
 * of the todo list and retries it on a timer (the node is read-only meanwhile: nothing new
 * becomes durable, so nothing new is acknowledged). A local snapshot overtaken by a
 * received one is dropped. Any other error stops the node; restarting it re-reads the disk.
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

static void writer_hand_over(struct qr_node *node, struct qr__node_job *job);

static void jobs_push(struct qr_node *node, struct qr__node_job *job)
{
    job->node = node;
    job->next = NULL;
    writer_hand_over(node, job);
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

/* ---- Writer thread: only the jobs it took, its group array and node->storage ---------- */

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

static void job_batch(const struct qr__node_job *job, struct qr_storage_batch *batch)
{
    memset(batch, 0, sizeof(*batch));
    batch->snapshot = job->has_snapshot ? &job->snapshot : NULL;
    batch->entries = job->entries;
    batch->entries_count = job->entries_count;
    batch->has_hard_state = job->has_hard_state;
    batch->hard_state = job->hard_state;
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
    job_batch(job, &batch);
    return qr_storage_write(s, &batch);
}

/* Whether job may join a group of persist batches (a received snapshot goes alone: its
 * file is published before its batch is written). */
static bool job_is_plain_persist(const struct qr__node_job *job)
{
    return job->type == QR__NODE_JOB_PERSIST && !job->has_snapshot;
}

/* Runs the group first..(count jobs) and gives every job of it the result. */
static void writer_run(struct qr_node *node, struct qr__node_job *first, size_t count)
{
    struct qr_storage *s = node->storage;
    int rv = 0;
    if (first->type == QR__NODE_JOB_PERSIST && first->has_snapshot) {
        QR_ASSERT(count == 1);
        rv = work_persist(s, first);
    } else if (first->type == QR__NODE_JOB_PERSIST) {
        size_t n = 0;
        for (struct qr__node_job *job = first; n < count; job = job->next) {
            job_batch(job, &node->writer.group[n++]);
        }
        rv = qr_storage_write_group(s, node->writer.group, count);
    } else if (first->type == QR__NODE_JOB_SNAPSHOT_LOCAL) {
        rv = work_snapshot(s, first, QR_STORAGE_SNAPSHOT_LOCAL);
    } else {
        rv = qr_storage_compact(s, first->upto, &first->removed_count);
    }
    struct qr__node_job *job = first;
    for (size_t i = 0; i < count; i++, job = job->next) {
        job->rv = rv;
        job->errmsg[0] = '\0';
        if (rv != 0) {
            (void)qr__errf(job->errmsg, rv, "%s", qr_storage_errmsg(s));
        }
    }
}

/* Takes the next group off todo (under the lock): the head, and when it is a plain persist
 * batch every plain persist batch after it. @return its first job; *count_out jobs. */
static struct qr__node_job *writer_take(struct qr__node_writer *w, size_t *count_out)
{
    struct qr__node_job *first = w->todo_head;
    struct qr__node_job *last = first;
    size_t count = 1;
    if (job_is_plain_persist(first)) {
        while (count < QR__NODE_GROUP_MAX && last->next != NULL &&
               job_is_plain_persist(last->next)) {
            last = last->next;
            count++;
        }
    }
    w->todo_head = last->next;
    if (w->todo_head == NULL) {
        w->todo_tail = NULL;
    }
    last->next = NULL;
    *count_out = count;
    return first;
}

static void writer_main(void *arg)
{
    struct qr_node *node = arg;
    struct qr__node_writer *w = &node->writer;
    uv_mutex_lock(&w->lock);
    for (;;) {
        while (!w->is_stopping && (w->is_paused || w->todo_head == NULL)) {
            uv_cond_wait(&w->cond, &w->lock);
        }
        if (w->is_stopping) {
            break;
        }
        size_t count = 0;
        struct qr__node_job *first = writer_take(w, &count);
        uv_mutex_unlock(&w->lock);
        writer_run(node, first, count);
        uv_mutex_lock(&w->lock);
        if (w->done_tail != NULL) {
            w->done_tail->next = first;
        } else {
            w->done_head = first;
        }
        struct qr__node_job *last = first;
        while (last->next != NULL) {
            last = last->next;
        }
        w->done_tail = last;
        w->is_paused = first->rv != 0; /* The loop decides what follows a failure. */
        uv_mutex_unlock(&w->lock);
        QR__NODE_CHECK(uv_async_send(&w->async));
        uv_mutex_lock(&w->lock);
    }
    w->has_exited = true;
    uv_mutex_unlock(&w->lock);
    QR__NODE_CHECK(uv_async_send(&w->async)); /* The loop joins us and closes the handle. */
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

/* Puts the jobs of a group that failed for lack of space back in front of todo, in order;
 * the retry timer resumes the writer. */
static void jobs_wait_for_space(struct qr_node *node, struct qr__node_job *first)
{
    if (!node->is_read_only) {
        QR_LOG_WARNF("node: node=%llu disk full, writes wait (read-only): %s",
                     (unsigned long long)node->opts.id, first->errmsg);
    }
    node->is_read_only = true;
    node->job_waiting_retry = true;
    struct qr__node_writer *w = &node->writer;
    struct qr__node_job *last = first;
    while (last->next != NULL) {
        last = last->next;
    }
    uv_mutex_lock(&w->lock);
    last->next = w->todo_head;
    w->todo_head = first;
    if (w->todo_tail == NULL) {
        w->todo_tail = last;
    }
    uv_mutex_unlock(&w->lock);
    QR__NODE_CHECK(
        uv_timer_start(&node->retry_timer, qr__node_storage_retry, QR__NODE_NOSPC_RETRY_MS, 0));
}

static void writer_resume(struct qr_node *node)
{
    struct qr__node_writer *w = &node->writer;
    uv_mutex_lock(&w->lock);
    w->is_paused = false;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
}

/* A failed group (first and the jobs after it): retried, dropped or fatal. */
static void jobs_after_failure(struct qr_node *node, struct qr__node_job *first)
{
    if (first->rv == QR_ENOSPC) {
        jobs_wait_for_space(node, first);
        return;
    }
    QR_ASSERT(first->next == NULL || first->type == QR__NODE_JOB_PERSIST);
    if (job_is_droppable(first)) {
        node->snapshot_running = false;
        QR_LOG_INFOF("node: node=%llu local snapshot %llu dropped: %s",
                     (unsigned long long)node->opts.id, (unsigned long long)first->snapshot.index,
                     first->errmsg);
        job_free(node, first);
        writer_resume(node);
        return;
    }
    char errmsg[QR_ERRMSG_SIZE];
    int err = first->rv;
    memcpy(errmsg, first->errmsg, sizeof(errmsg)); /* Storage's message names file and offset. */
    while (first != NULL) {
        struct qr__node_job *next = first->next;
        job_free(node, first);
        first = next;
    }
    qr__node_fail(node, err, errmsg);
}

/* Frees every job of a list (closing, or the node failed). */
static void jobs_free_list(struct qr_node *node, struct qr__node_job *job)
{
    while (job != NULL) {
        struct qr__node_job *next = job->next;
        if (job->type == QR__NODE_JOB_SNAPSHOT_LOCAL) {
            node->snapshot_running = false;
        }
        job_free(node, job);
        job = next;
    }
}

static void writer_on_closed(uv_handle_t *handle)
{
    qr__node_handle_closed(handle->data);
}

static void writer_on_async(uv_async_t *async)
{
    struct qr_node *node = async->data;
    struct qr__node_writer *w = &node->writer;
    uv_mutex_lock(&w->lock);
    struct qr__node_job *job = w->done_head;
    w->done_head = NULL;
    w->done_tail = NULL;
    bool has_exited = w->has_exited;
    uv_mutex_unlock(&w->lock);
    while (job != NULL) {
        if (node->is_closing || node->fatal_err != 0) {
            jobs_free_list(node, job);
            break;
        }
        if (job->rv != 0) {
            jobs_after_failure(node, job); /* The failed group is the last one done. */
            break;
        }
        if (node->is_read_only) {
            node->is_read_only = false;
            QR_LOG_WARNF("node: node=%llu disk writes succeed again",
                         (unsigned long long)node->opts.id);
        }
        struct qr__node_job *next = job->next;
        if (job->type == QR__NODE_JOB_PERSIST) {
            done_persist(node, job);
        } else if (job->type == QR__NODE_JOB_SNAPSHOT_LOCAL) {
            done_snapshot(node, job);
        }
        job_free(node, job);
        job = next;
    }
    if (has_exited && !w->is_joined) {
        QR__NODE_CHECK(uv_thread_join(&w->thread));
        w->is_joined = true;
        uv_mutex_lock(&w->lock);
        struct qr__node_job *left = w->todo_head;
        w->todo_head = NULL;
        w->todo_tail = NULL;
        uv_mutex_unlock(&w->lock);
        jobs_free_list(node, left);
        uv_close((uv_handle_t *)async, writer_on_closed);
        return;
    }
    qr__node_kick(node);
}

static void writer_hand_over(struct qr_node *node, struct qr__node_job *job)
{
    struct qr__node_writer *w = &node->writer;
    QR_ASSERT(w->is_init && !node->is_closing); /* Taken once the thread starts. */
    uv_mutex_lock(&w->lock);
    if (w->todo_tail != NULL) {
        w->todo_tail->next = job;
    } else {
        w->todo_head = job;
    }
    w->todo_tail = job;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
}

void qr__node_storage_retry(uv_timer_t *timer)
{
    struct qr_node *node = timer->data;
    node->job_waiting_retry = false;
    writer_resume(node);
}

void qr__node_storage_drop_queued(struct qr_node *node)
{
    struct qr__node_writer *w = &node->writer;
    if (!w->is_init) {
        return;
    }
    uv_mutex_lock(&w->lock);
    struct qr__node_job *job = w->todo_head;
    w->todo_head = NULL;
    w->todo_tail = NULL;
    uv_mutex_unlock(&w->lock);
    jobs_free_list(node, job);
    node->job_waiting_retry = false;
}

int qr__node_storage_init(struct qr_node *node, char *errmsg)
{
    struct qr__node_writer *w = &node->writer;
    if (uv_mutex_init(&w->lock) != 0) {
        return qr__errf(errmsg, QR_ENOMEM, "node: cannot create the writer's lock");
    }
    if (uv_cond_init(&w->cond) != 0) {
        uv_mutex_destroy(&w->lock);
        return qr__errf(errmsg, QR_ENOMEM, "node: cannot create the writer's condition");
    }
    int rv = uv_async_init(node->loop, &w->async, writer_on_async);
    if (rv != 0) {
        uv_cond_destroy(&w->cond);
        uv_mutex_destroy(&w->lock);
        return qr__errf(errmsg, QR_ENOMEM, "node: cannot create the writer's wake-up: %s",
                        uv_strerror(rv));
    }
    w->async.data = node;
    w->is_init = true;
    return 0;
}

int qr__node_storage_start(struct qr_node *node, char *errmsg)
{
    struct qr__node_writer *w = &node->writer;
    QR_ASSERT(w->is_init && !w->is_started);
    int rv = uv_thread_create(&w->thread, writer_main, node);
    if (rv != 0) {
        return qr__errf(errmsg, QR_ENOMEM, "node %llu: cannot start the writer thread: %s",
                        (unsigned long long)node->opts.id, uv_strerror(rv));
    }
    w->is_started = true;
    return 0;
}

void qr__node_storage_close(struct qr_node *node)
{
    struct qr__node_writer *w = &node->writer;
    qr__node_storage_drop_queued(node);
    if (!w->is_started) {
        uv_close((uv_handle_t *)&w->async, writer_on_closed);
        return;
    }
    uv_mutex_lock(&w->lock);
    w->is_stopping = true;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    /* writer_on_async joins it once it exited (after its current group) and closes. */
}

void qr__node_storage_free(struct qr_node *node)
{
    struct qr__node_writer *w = &node->writer;
    if (w->is_init) {
        QR_ASSERT(!w->is_started || w->is_joined);
        uv_cond_destroy(&w->cond);
        uv_mutex_destroy(&w->lock);
        w->is_init = false;
    }
}
