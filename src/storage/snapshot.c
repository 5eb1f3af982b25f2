/*
 * storage/snapshot.c: writing, publishing, verifying and reading snapshots.
 *
 * Layer: storage. A snapshot is streamed into "snap-<index>.tmp" (header
 * placeholder, data, then at finish the real header and the per-chunk crc
 * trailer), fsynced, renamed to "snap-<index>", and the directory fsynced;
 * only then is the previous snapshot deleted. Memory stays bounded: the data
 * passes through in the caller's buffers and only 4 bytes per 1 MiB chunk are
 * kept. At open, the newest snapshot is verified chunk by chunk; a mismatch
 * refuses start-up and names the chunk's offset. It never decides what goes
 * into a snapshot (the state machine does) and never touches the log.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/crc32c.h"
#include "util/endian.h"
#include "util/err.h"
#include "util/log.h"

struct qr_storage_snapshot_writer {
    struct qr_storage *s;
    enum qr_storage_snapshot_source source;
    struct qr_snapshot_meta meta;     /* As given; size and crc final at finish. */
    int fd;                           /* The temporary file. */
    char name[QR__STORAGE_NAME_SIZE]; /* Final name. */
    char tmp[QR__STORAGE_PATH_SIZE];  /* Temporary path. */
    uint32_t header_size;             /* Data starts here. */
    uint64_t written;                 /* Data bytes written so far. */
    uint32_t crc;                     /* CRC32C of the data so far. */
    uint32_t chunk_crc;               /* CRC32C of the current, incomplete chunk. */
    uint32_t *chunk_crcs;             /* One per complete chunk. */
    size_t chunks_count;
    size_t chunks_capacity;
    int write_err; /* A failed write: only abort is allowed. */
};

void qr__storage_snapshot_name(qr_index index, char *name)
{
    (void)snprintf(name, QR__STORAGE_NAME_SIZE, "snap-%020llu", (unsigned long long)index);
}

/* ---- the file as a verification source ---- */

struct file_source {
    struct qr_storage *s;
    int fd;
};

static int file_source_read(void *ctx, uint64_t offset, void *buf, size_t size)
{
    struct file_source *f = ctx;
    size_t got = 0;
    int rv = f->s->fs->file_read(f->s->fs->ctx, f->fd, buf, size, offset, &got);
    if (rv == 0 && got != size) {
        rv = -EIO; /* The size was checked first: a short read is an I/O problem. */
    }
    return rv;
}

/* ---- loading at open ---- */

static int snapshot_verify_file(struct qr_storage *s,
                                int fd,
                                const char *path,
                                struct qr__storage_snapshot_header *h)
{
    struct file_source f = {s, fd};
    struct qr__storage_source source = {.ctx = &f, .read = file_source_read};
    int rv = s->fs->file_size(s->fs->ctx, fd, &source.size);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: size of %s", path);
    }
    uint32_t *crcs = NULL;
    rv = qr__storage_snapshot_open(&source, h, &crcs, s->errmsg);
    if (rv == 0) {
        uint64_t size = h->meta.size < h->chunk_size ? h->meta.size : h->chunk_size;
        size_t buf_size = (size_t)(size > 0 ? size : 1);
        uint8_t *buf = qr_malloc(buf_size);
        rv = buf == NULL ? qr__errf(s->errmsg, QR_ENOMEM, "no memory for a chunk buffer") : 0;
        if (rv == 0) {
            rv = qr__storage_snapshot_verify(&source, h, crcs, buf, buf_size, s->errmsg);
        }
        qr_free(buf);
    }
    qr_free(crcs);
    if (rv != 0) {
        (void)qr__err_wrapf(s->errmsg, rv, "storage: %s", path); /* Returns rv. */
    }
    return rv;
}

static int snapshot_check_identity(struct qr_storage *s,
                                   const char *path,
                                   qr_index index,
                                   const struct qr__storage_snapshot_header *h)
{
    if (h->cluster_id != s->opts.cluster_id || h->node_id != s->opts.node_id) {
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: %s: offset 16: written by cluster %llu node %llu, not cluster "
                        "%llu node %llu",
                        path, (unsigned long long)h->cluster_id, (unsigned long long)h->node_id,
                        (unsigned long long)s->opts.cluster_id,
                        (unsigned long long)s->opts.node_id);
    }
    if (h->meta.index != index) {
        return qr__errf(s->errmsg, QR_ECORRUPT, "storage: %s: offset 32: header says index %llu",
                        path, (unsigned long long)h->meta.index);
    }
    return 0;
}

int qr__storage_snapshot_load(struct qr_storage *s, const uint64_t *indexes, size_t count)
{
    if (count == 0) {
        return 0;
    }
    qr_index index = indexes[count - 1];
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_snapshot_name(index, name);
    qr__storage_path(s, name, path);
    int fd = -1;
    int rv = s->fs->file_open(s->fs->ctx, path, QR_STORAGE_FS_READ, &fd);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: open %s", path);
    }
    struct qr__storage_snapshot_header h;
    memset(&h, 0, sizeof(h));
    rv = snapshot_verify_file(s, fd, path, &h);
    if (rv == 0) {
        rv = snapshot_check_identity(s, path, index, &h);
    }
    if (rv != 0) {
        (void)s->fs->file_close(s->fs->ctx, fd); /* Read-only. */
        return rv;
    }
    s->has_snapshot = true;
    s->snapshot = h.meta;
    s->snapshot_header_size = h.header_size;
    s->snapshot_fd = fd;
    /* The newest is durable and whole, so the older ones (left by a crash) can go. */
    for (size_t i = 0; i + 1 < count; i++) {
        qr__storage_snapshot_name(indexes[i], name);
        qr__storage_path(s, name, path);
        QR_LOG_INFOF("storage: deleting %s, superseded by snapshot %llu", path,
                     (unsigned long long)index);
        rv = s->fs->path_unlink(s->fs->ctx, path);
        if (rv != 0) {
            return qr__storage_os_err(s, rv, "storage: delete %s", path);
        }
    }
    return count > 1 ? qr__storage_sync_dir(s) : 0;
}

void qr__storage_snapshot_close(struct qr_storage *s)
{
    qr_storage_snapshot_abort(s->writer);
    if (s->snapshot_fd >= 0) {
        (void)s->fs->file_close(s->fs->ctx, s->snapshot_fd); /* Read-only. */
        s->snapshot_fd = -1;
    }
}

/* ---- writing ---- */

static int snapshot_check_meta(struct qr_storage *s, const struct qr_snapshot_meta *meta)
{
    const struct qr_config *c = &meta->config;
    if (meta->index == 0 || meta->term == 0) {
        return qr__errf(s->errmsg, QR_EINVAL, "storage: snapshot index and term must be non-zero");
    }
    if (s->has_snapshot && meta->index <= s->snapshot.index) {
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: snapshot %llu is not newer than the current snapshot %llu",
                        (unsigned long long)meta->index, (unsigned long long)s->snapshot.index);
    }
    if (c->voters_count == 0 || c->voters_count > QR_CORE_MEMBERS_MAX ||
        c->voters_old_count > QR_CORE_MEMBERS_MAX || c->learners_count > QR_CORE_MEMBERS_MAX) {
        return qr__errf(s->errmsg, QR_EINVAL, "storage: snapshot configuration counts %u/%u/%u",
                        c->voters_count, c->voters_old_count, c->learners_count);
    }
    return 0;
}

int qr_storage_snapshot_begin(struct qr_storage *storage,
                              const struct qr_snapshot_meta *meta,
                              enum qr_storage_snapshot_source source,
                              struct qr_storage_snapshot_writer **writer_out)
{
    struct qr_storage *s = storage;
    QR_ASSERT(s != NULL && meta != NULL && writer_out != NULL);
    QR_ASSERT(source == QR_STORAGE_SNAPSHOT_LOCAL || source == QR_STORAGE_SNAPSHOT_RECEIVED);
    if (s->failed_err != 0) {
        return qr__errf(s->errmsg, QR_EFATAL, "storage: %s failed earlier; reopen it", s->dir);
    }
    if (s->writer != NULL) {
        return qr__errf(s->errmsg, QR_EBUSY, "storage: a snapshot is being written already");
    }
    int rv = snapshot_check_meta(s, meta);
    if (rv != 0) {
        return rv;
    }
    struct qr_storage_snapshot_writer *w = qr_calloc(1, sizeof(*w));
    if (w == NULL) {
        return qr__errf(s->errmsg, QR_ENOMEM, "storage: no memory for a snapshot writer");
    }
    w->s = s;
    w->source = source;
    w->meta = *meta;
    w->header_size = qr__storage_snapshot_header_size(&meta->config);
    qr__storage_snapshot_name(meta->index, w->name);
    char tmp_name[QR__STORAGE_NAME_SIZE];
    qr__storage_tmp_name(w->name, tmp_name);
    qr__storage_path(s, tmp_name, w->tmp);
    rv = s->fs->file_open(s->fs->ctx, w->tmp, QR_STORAGE_FS_CREATE, &w->fd);
    if (rv == -EEXIST) {
        (void)s->fs->path_unlink(s->fs->ctx, w->tmp); /* An abandoned earlier attempt. */
        rv = s->fs->file_open(s->fs->ctx, w->tmp, QR_STORAGE_FS_CREATE, &w->fd);
    }
    if (rv != 0) {
        rv = qr__storage_os_err(s, rv, "storage: create %s", w->tmp);
        qr_free(w);
        return rv;
    }
    s->writer = w;
    *writer_out = w;
    return 0;
}

static int writer_push_chunk(struct qr_storage_snapshot_writer *w)
{
    if (w->chunks_count == w->chunks_capacity) {
        size_t capacity = w->chunks_capacity == 0 ? 64 : w->chunks_capacity * 2;
        uint32_t *grown = qr_realloc(w->chunk_crcs, capacity * sizeof(*grown));
        if (grown == NULL) {
            return qr__errf(w->s->errmsg, QR_ENOMEM, "storage: no memory for chunk crcs");
        }
        w->chunk_crcs = grown;
        w->chunks_capacity = capacity;
    }
    w->chunk_crcs[w->chunks_count++] = w->chunk_crc;
    w->chunk_crc = 0;
    return 0;
}

/* Folds bytes into the whole-data crc and the per-chunk crcs. */
static int writer_account(struct qr_storage_snapshot_writer *w, const uint8_t *p, size_t size)
{
    w->crc = qr__crc32c(w->crc, p, size);
    /* Bounded: each round finishes a chunk or consumes the rest. */
    while (size > 0) {
        size_t in_chunk = (size_t)(w->written % QR__STORAGE_SNAPSHOT_CHUNK_SIZE);
        size_t take = QR__STORAGE_SNAPSHOT_CHUNK_SIZE - in_chunk;
        take = take < size ? take : size;
        w->chunk_crc = qr__crc32c(w->chunk_crc, p, take);
        w->written += take;
        p += take;
        size -= take;
        if (w->written % QR__STORAGE_SNAPSHOT_CHUNK_SIZE == 0) {
            int rv = writer_push_chunk(w);
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

int qr_storage_snapshot_write(struct qr_storage_snapshot_writer *writer,
                              uint64_t offset,
                              const void *data,
                              size_t size)
{
    struct qr_storage_snapshot_writer *w = writer;
    QR_ASSERT(w != NULL && (data != NULL || size == 0));
    struct qr_storage *s = w->s;
    if (w->write_err != 0) {
        return qr__errf(s->errmsg, QR_EINVAL, "storage: %s: an earlier write failed; abort",
                        w->tmp);
    }
    if (offset != w->written ||
        (w->source == QR_STORAGE_SNAPSHOT_RECEIVED && size > w->meta.size - w->written)) {
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: %s: %zu bytes at offset %llu, expected offset %llu (size %llu)",
                        w->tmp, size, (unsigned long long)offset, (unsigned long long)w->written,
                        (unsigned long long)w->meta.size);
    }
    int rv = s->fs->file_write(s->fs->ctx, w->fd, data, size, w->header_size + offset);
    if (rv != 0) {
        uint64_t at = w->header_size + offset;
        w->write_err = qr__storage_os_err(s, rv, "storage: write %s offset %llu", w->tmp,
                                          (unsigned long long)at);
        return w->write_err;
    }
    rv = writer_account(w, data, size);
    w->write_err = rv;
    return rv;
}

void qr_storage_snapshot_abort(struct qr_storage_snapshot_writer *writer)
{
    if (writer == NULL) {
        return;
    }
    struct qr_storage *s = writer->s;
    if (writer->fd >= 0) {
        (void)s->fs->file_close(s->fs->ctx, writer->fd); /* Discarded file. */
    }
    (void)s->fs->path_unlink(s->fs->ctx, writer->tmp); /* Best effort; open deletes *.tmp. */
    s->writer = NULL;
    qr_free(writer->chunk_crcs);
    qr_free(writer);
}

/* Writes the final header and the trailer into the temporary file. */
static int writer_write_ends(struct qr_storage_snapshot_writer *w)
{
    struct qr_storage *s = w->s;
    struct qr__storage_snapshot_header h = {
        .version = QR_STORAGE_FORMAT_VERSION,
        .header_size = w->header_size,
        .cluster_id = s->opts.cluster_id,
        .node_id = s->opts.node_id,
        .chunk_size = QR__STORAGE_SNAPSHOT_CHUNK_SIZE,
        .meta = w->meta,
    };
    uint8_t header[QR__STORAGE_SNAPSHOT_HEADER_SIZE_MAX];
    qr__storage_snapshot_header_encode(&h, header);
    size_t trailer_size = (size_t)qr__storage_snapshot_trailer_size(w->chunks_count);
    uint8_t *trailer = qr_malloc(trailer_size);
    if (trailer == NULL) {
        return qr__errf(s->errmsg, QR_ENOMEM, "storage: no memory for a snapshot trailer");
    }
    for (size_t i = 0; i < w->chunks_count; i++) {
        qr__put_u32(trailer + i * 4, w->chunk_crcs[i]);
    }
    qr__put_u32(trailer + trailer_size - 8, (uint32_t)w->chunks_count);
    qr__put_u32(trailer + trailer_size - 4, qr__crc32c(0, trailer, trailer_size - 4));
    int rv = s->fs->file_write(s->fs->ctx, w->fd, header, w->header_size, 0);
    if (rv == 0) {
        rv = s->fs->file_write(s->fs->ctx, w->fd, trailer, trailer_size,
                               w->header_size + w->written);
    }
    qr_free(trailer);
    return rv != 0 ? qr__storage_os_err(s, rv, "storage: write %s", w->tmp) : 0;
}

/* Makes the finished temporary file the current snapshot. Failures here are fatal. */
static int writer_publish(struct qr_storage_snapshot_writer *w)
{
    struct qr_storage *s = w->s;
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_path(s, w->name, path);
    int rv = s->fs->file_sync(s->fs->ctx, w->fd);
    s->syncs_count++;
    if (rv != 0) {
        (void)qr__storage_os_err(s, rv, "storage: fsync %s", w->tmp);
        return qr__storage_fail(s, QR_EIO);
    }
    (void)s->fs->file_close(s->fs->ctx, w->fd); /* Synced. */
    w->fd = -1;
    rv = s->fs->path_rename(s->fs->ctx, w->tmp, path);
    if (rv != 0) {
        (void)qr__storage_os_err(s, rv, "storage: rename %s to %s", w->tmp, path);
        return qr__storage_fail(s, QR_EIO);
    }
    rv = qr__storage_sync_dir(s);
    if (rv != 0) {
        return rv;
    }
    int fd = -1;
    rv = s->fs->file_open(s->fs->ctx, path, QR_STORAGE_FS_READ, &fd);
    if (rv != 0) {
        (void)qr__storage_os_err(s, rv, "storage: open %s", path);
        return qr__storage_fail(s, QR_EIO);
    }
    bool had_snapshot = s->has_snapshot;
    qr_index old_index = s->snapshot.index;
    if (s->snapshot_fd >= 0) {
        (void)s->fs->file_close(s->fs->ctx, s->snapshot_fd); /* Read-only. */
    }
    s->has_snapshot = true;
    s->snapshot = w->meta;
    s->snapshot_header_size = w->header_size;
    s->snapshot_fd = fd;
    if (!had_snapshot) {
        return 0;
    }
    /* Only now that the new one is durable may the old one go. */
    char old_name[QR__STORAGE_NAME_SIZE];
    qr__storage_snapshot_name(old_index, old_name);
    qr__storage_path(s, old_name, path);
    rv = s->fs->path_unlink(s->fs->ctx, path);
    if (rv != 0) {
        /* Harmless: the next open deletes it. */
        QR_LOG_WARNF("storage: could not delete the old snapshot %s (error %d)", path, rv);
        return 0;
    }
    return qr__storage_sync_dir(s);
}

static int writer_finish_check(struct qr_storage_snapshot_writer *w)
{
    struct qr_storage *s = w->s;
    if (s->failed_err != 0) {
        return qr__errf(s->errmsg, QR_EFATAL, "storage: %s failed earlier; reopen it", s->dir);
    }
    if (w->write_err != 0) {
        return qr__errf(s->errmsg, QR_EINVAL, "storage: %s: an earlier write failed", w->tmp);
    }
    if (w->written % QR__STORAGE_SNAPSHOT_CHUNK_SIZE != 0) {
        int rv = writer_push_chunk(w);
        if (rv != 0) {
            return rv;
        }
    }
    if (w->source == QR_STORAGE_SNAPSHOT_RECEIVED &&
        (w->written != w->meta.size || w->crc != w->meta.crc)) {
        return qr__errf(s->errmsg, QR_ECORRUPT,
                        "storage: received snapshot %llu has %llu bytes with crc %08x, expected "
                        "%llu bytes with crc %08x",
                        (unsigned long long)w->meta.index, (unsigned long long)w->written, w->crc,
                        (unsigned long long)w->meta.size, w->meta.crc);
    }
    w->meta.size = w->written;
    w->meta.crc = w->crc;
    return 0;
}

int qr_storage_snapshot_finish(struct qr_storage_snapshot_writer *writer,
                               struct qr_snapshot_meta *meta_out)
{
    struct qr_storage_snapshot_writer *w = writer;
    QR_ASSERT(w != NULL && w->s->writer == w);
    struct qr_storage *s = w->s;
    int rv = writer_finish_check(w);
    if (rv == 0) {
        rv = writer_write_ends(w);
    }
    if (rv == 0) {
        rv = writer_publish(w);
    }
    if (rv == 0 && meta_out != NULL) {
        *meta_out = w->meta;
    }
    if (rv == 0) {
        QR_LOG_INFOF("storage: snapshot %llu term %llu published (%llu bytes)",
                     (unsigned long long)w->meta.index, (unsigned long long)w->meta.term,
                     (unsigned long long)w->meta.size);
    }
    if (rv != 0) {
        /* Closes the file if still open and deletes the temporary name if it still exists. */
        qr_storage_snapshot_abort(w);
    } else {
        s->writer = NULL;
        qr_free(w->chunk_crcs);
        qr_free(w);
    }
    qr__storage_check_invariants(s);
    return rv;
}

bool qr_storage_snapshot_meta(const struct qr_storage *storage, struct qr_snapshot_meta *meta_out)
{
    if (!storage->has_snapshot) {
        return false;
    }
    *meta_out = storage->snapshot;
    return true;
}

int qr_storage_snapshot_read(struct qr_storage *storage,
                             qr_index index,
                             uint64_t offset,
                             void *buf,
                             size_t size,
                             size_t *read_out)
{
    struct qr_storage *s = storage;
    QR_ASSERT(s != NULL && read_out != NULL && (buf != NULL || size == 0));
    *read_out = 0;
    if (!s->has_snapshot || s->snapshot.index != index) {
        return qr__errf(s->errmsg, QR_ENOTFOUND, "storage: snapshot %llu is not the current one",
                        (unsigned long long)index);
    }
    if (offset > s->snapshot.size) {
        return qr__errf(s->errmsg, QR_EINVAL, "storage: offset %llu beyond snapshot size %llu",
                        (unsigned long long)offset, (unsigned long long)s->snapshot.size);
    }
    uint64_t left = s->snapshot.size - offset;
    size_t n = left < size ? (size_t)left : size;
    char name[QR__STORAGE_NAME_SIZE];
    qr__storage_snapshot_name(index, name);
    int rv =
        qr__storage_read_exact(s, s->snapshot_fd, name, buf, n, s->snapshot_header_size + offset);
    if (rv != 0) {
        return rv == QR_ECORRUPT ? QR_EIO : rv;
    }
    *read_out = n;
    return 0;
}
