/*
 * storage/storage.c: opening, initialising and closing a data directory.
 *
 * Layer: storage. This file owns the object's lifecycle and the directory as
 * a whole: options, the LOCK, the listing of files, the meta file (format
 * version, cluster id, node id) and the order of recovery (temporaries, then
 * the snapshot, then the log). It never interprets segment or snapshot bytes
 * itself (wal.c, snapshot.c) and never touches the disk except through the
 * file-operation seam. It must never start a node on a directory that belongs
 * to someone else or that it cannot read completely.
 */
#include "storage/storage_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/assert.h"
#include "util/err.h"
#include "util/log.h"

#define META_NAME     "meta"
#define META_TMP_NAME "meta.tmp"
#define LOCK_NAME     "LOCK"

/* What the directory holds, sorted out by name. */
struct listing {
    bool has_meta;
    uint64_t *seqs; /* Segment numbers, ascending after sort. */
    size_t seqs_count;
    size_t seqs_capacity;
    uint64_t snapshots[QR__STORAGE_SNAPSHOTS_MAX]; /* Snapshot indexes, ascending after sort. */
    size_t snapshots_count;
    char (*tmps)[QR__STORAGE_NAME_SIZE]; /* Temporaries to delete. */
    size_t tmps_count;
    size_t tmps_capacity;
    size_t entries_count; /* Directory entries seen, bounded. */
    size_t unknown_count; /* Names that are not ours. */
    int err;              /* Why the callback stopped the listing (a QR_E* code). */
    struct qr_storage *s;
};

/* ---- helpers shared with wal.c and snapshot.c ---- */

void qr__storage_path(const struct qr_storage *s, const char *name, char *path)
{
    QR_ASSERT(strlen(name) < QR__STORAGE_NAME_SIZE);
    (void)snprintf(path, QR__STORAGE_PATH_SIZE, "%s/%s", s->dir, name); /* Sized to fit. */
}

void qr__storage_tmp_name(const char *name, char *tmp_name)
{
    size_t len = strlen(name);
    QR_ASSERT(len + sizeof(".tmp") <= QR__STORAGE_NAME_SIZE);
    memcpy(tmp_name, name, len + 1);
    memcpy(tmp_name + len, ".tmp", sizeof(".tmp"));
}

int qr__storage_fail(struct qr_storage *s, int err)
{
    QR_ASSERT(err < 0 && err != QR_EFATAL);
    if (s->failed_err == 0) {
        s->failed_err = err;
        QR_LOG_ERRORF("storage: failed for good, close and reopen to recover: %s", s->errmsg);
    }
    return err;
}

int qr__storage_os_err(struct qr_storage *s, int neg_errno, const char *fmt, ...)
{
    char context[QR_ERRMSG_SIZE];
    va_list args;
    va_start(args, fmt);
    (void)vsnprintf(context, sizeof(context), fmt, args); /* Cut context is acceptable. */
    va_end(args);
    int errno_value = neg_errno < 0 ? -neg_errno : EIO;
    int rv = qr__err_os(s->errmsg, errno_value, "%s", context);
    /* The seam's errors mean one of few things to a caller: full, busy, missing, or I/O. */
    if (rv != QR_ENOSPC && rv != QR_ENOMEM && rv != QR_ENOTFOUND && rv != QR_EBUSY) {
        rv = QR_EIO;
    }
    return rv;
}

int qr__storage_sync_dir(struct qr_storage *s)
{
    int rv = s->fs->dir_sync(s->fs->ctx, s->dir);
    s->syncs_count++;
    if (rv != 0) {
        return qr__storage_fail(s,
                                qr__storage_os_err(s, rv, "storage: fsync directory %s", s->dir));
    }
    return 0;
}

int qr__storage_read_exact(
    struct qr_storage *s, int fd, const char *name, void *buf, size_t size, uint64_t offset)
{
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_path(s, name, path);
    size_t got = 0;
    int rv = s->fs->file_read(s->fs->ctx, fd, buf, size, offset, &got);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: read %s offset %llu", path,
                                  (unsigned long long)offset);
    }
    if (got != size) {
        uint64_t end = offset + got;
        return qr__errf(s->errmsg, QR_ECORRUPT, "storage: %s: offset %llu: file ends early", path,
                        (unsigned long long)end);
    }
    return 0;
}

void qr__storage_check_invariants(const struct qr_storage *s)
{
    QR_ASSERT(s->segments_count <= QR_STORAGE_SEGMENTS_MAX);
    QR_ASSERT(s->seq_next >= 1 && s->group_seq < s->seq_next);
    if (s->has_open) {
        QR_ASSERT(s->segments_count > 0 && s->open_fd >= 0);
        QR_ASSERT(s->open_offset % 8 == 0 && s->open_offset <= s->open_size);
    }
#ifdef QR_DEBUG
    /* O(segments): debug builds only (STYLE §6). */
    for (size_t i = 1; i < s->segments_count; i++) {
        QR_ASSERT(s->segments[i].seq == s->segments[i - 1].seq + 1);
        QR_ASSERT(s->segments[i].prev_index <= s->segments[i].index_max);
        /* What makes compaction safe: deleting every segment up to i - 1 (all at or below
         * some upto) leaves segment i continuing from an index at or below upto. */
        QR_ASSERT(s->segments[i].prev_index <= s->segments[i - 1].index_max);
    }
#endif
    if (s->has_snapshot) {
        QR_ASSERT(s->snapshot_fd >= 0 && s->snapshot.index >= 1);
    }
    if (s->failed_err != 0) {
        QR_ASSERT(s->failed_err < 0 && s->failed_err != QR_EFATAL);
    }
}

/* ---- options ---- */

void qr_storage_opts_default(struct qr_storage_opts *opts, uint64_t cluster_id, qr_node_id node_id)
{
    memset(opts, 0, sizeof(*opts));
    opts->cluster_id = cluster_id;
    opts->node_id = node_id;
    opts->sync = QR_STORAGE_SYNC_ALWAYS;
    opts->segment_size = QR_STORAGE_SEGMENT_SIZE_DEFAULT;
    opts->batch_size_max = QR_STORAGE_BATCH_SIZE_DEFAULT;
    opts->recovery_size_max = QR_STORAGE_RECOVERY_SIZE_DEFAULT;
}

const char *qr_storage_sync_name(enum qr_storage_sync sync)
{
    switch (sync) {
    case QR_STORAGE_SYNC_ALWAYS:
        return "always";
    case QR_STORAGE_SYNC_NONE:
        return "none";
    }
    return "?";
}

static bool fs_is_complete(const struct qr_storage_fs *fs)
{
    return fs->file_open != NULL && fs->file_close != NULL && fs->file_read != NULL &&
           fs->file_write != NULL && fs->file_sync != NULL && fs->file_truncate != NULL &&
           fs->file_allocate != NULL && fs->file_size != NULL && fs->path_rename != NULL &&
           fs->path_unlink != NULL && fs->dir_create != NULL && fs->dir_sync != NULL &&
           fs->dir_list != NULL && fs->dir_lock != NULL;
}

static int opts_resolve(const struct qr_storage_opts *in, struct qr_storage_opts *out, char *errmsg)
{
    *out = *in;
    out->segment_size =
        out->segment_size != 0 ? out->segment_size : QR_STORAGE_SEGMENT_SIZE_DEFAULT;
    out->batch_size_max =
        out->batch_size_max != 0 ? out->batch_size_max : QR_STORAGE_BATCH_SIZE_DEFAULT;
    out->recovery_size_max =
        out->recovery_size_max != 0 ? out->recovery_size_max : QR_STORAGE_RECOVERY_SIZE_DEFAULT;
    out->fs = out->fs != NULL ? out->fs : qr_storage_fs_posix();
    if (out->cluster_id == 0 || out->node_id == 0) {
        return qr__errf(errmsg, QR_EINVAL, "storage: cluster id and node id must be non-zero");
    }
    if (out->sync != QR_STORAGE_SYNC_ALWAYS && out->sync != QR_STORAGE_SYNC_NONE) {
        return qr__errf(errmsg, QR_EINVAL, "storage: unknown sync policy %d", (int)out->sync);
    }
    if (out->segment_size < QR_STORAGE_SEGMENT_SIZE_MIN ||
        out->segment_size > QR_STORAGE_SEGMENT_SIZE_MAX || out->segment_size % 4096 != 0) {
        return qr__errf(errmsg, QR_EINVAL,
                        "storage: segment size %llu must be a multiple of 4096 in [%llu, %llu]",
                        (unsigned long long)out->segment_size,
                        (unsigned long long)QR_STORAGE_SEGMENT_SIZE_MIN,
                        (unsigned long long)QR_STORAGE_SEGMENT_SIZE_MAX);
    }
    if (out->batch_size_max < 4096) {
        return qr__errf(errmsg, QR_EINVAL, "storage: batch size %llu is below 4096",
                        (unsigned long long)out->batch_size_max);
    }
    if (!fs_is_complete(out->fs)) {
        return qr__errf(errmsg, QR_EINVAL, "storage: the file-operation table has a NULL entry");
    }
    return 0;
}

/* ---- listing ---- */

static bool parse_number_name(const char *name, const char *prefix, uint64_t *number_out)
{
    size_t len = strlen(prefix);
    if (strncmp(name, prefix, len) != 0 || strlen(name) != len + 20) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = len; i < len + 20; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        uint64_t digit = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return false;
        }
        v = v * 10 + digit;
    }
    *number_out = v;
    return v > 0;
}

static int listing_grow(void **array, size_t *capacity, size_t item_size, size_t limit)
{
    size_t grown_capacity = *capacity == 0 ? 16 : *capacity * 2;
    grown_capacity = grown_capacity > limit ? limit : grown_capacity;
    void *grown = qr_realloc(*array, grown_capacity * item_size);
    if (grown == NULL) {
        return QR_ENOMEM;
    }
    *array = grown;
    *capacity = grown_capacity;
    return 0;
}

static int listing_add_tmp(struct listing *l, const char *name)
{
    size_t len = strlen(name);
    if (len >= QR__STORAGE_NAME_SIZE) {
        QR_LOG_WARNF("storage: %s: ignoring unknown temporary file %s", l->s->dir, name);
        return 0;
    }
    if (l->tmps_count == l->tmps_capacity) {
        void *array = l->tmps;
        int rv = listing_grow(&array, &l->tmps_capacity, sizeof(l->tmps[0]), 1024);
        l->tmps = array;
        if (rv != 0 || l->tmps_count == l->tmps_capacity) {
            return qr__errf(l->s->errmsg, QR_ENOMEM, "storage: %s: too many temporary files",
                            l->s->dir);
        }
    }
    memcpy(l->tmps[l->tmps_count++], name, len + 1);
    return 0;
}

static int listing_add_seq(struct listing *l, uint64_t seq)
{
    if (l->seqs_count == l->seqs_capacity) {
        void *array = l->seqs;
        int rv =
            listing_grow(&array, &l->seqs_capacity, sizeof(l->seqs[0]), QR_STORAGE_SEGMENTS_MAX);
        l->seqs = array;
        if (rv != 0 || l->seqs_count == l->seqs_capacity) {
            return qr__errf(l->s->errmsg, rv != 0 ? rv : QR_ECORRUPT,
                            "storage: %s: more than %d segment files", l->s->dir,
                            QR_STORAGE_SEGMENTS_MAX);
        }
    }
    l->seqs[l->seqs_count++] = seq;
    return 0;
}

static int listing_entry_sort(struct listing *l, const char *name)
{
    uint64_t number = 0;
    if (++l->entries_count > QR__STORAGE_DIR_ENTRIES_MAX) {
        return qr__errf(l->s->errmsg, QR_ECORRUPT, "storage: %s: more than %d files", l->s->dir,
                        QR__STORAGE_DIR_ENTRIES_MAX);
    }
    size_t len = strlen(name);
    if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
        return listing_add_tmp(l, name);
    }
    if (strcmp(name, META_NAME) == 0) {
        l->has_meta = true;
    } else if (strcmp(name, LOCK_NAME) == 0) {
        return 0;
    } else if (parse_number_name(name, "wal-", &number)) {
        return listing_add_seq(l, number);
    } else if (parse_number_name(name, "snap-", &number)) {
        if (l->snapshots_count == QR__STORAGE_SNAPSHOTS_MAX) {
            return qr__errf(l->s->errmsg, QR_ECORRUPT, "storage: %s: more than %d snapshot files",
                            l->s->dir, QR__STORAGE_SNAPSHOTS_MAX);
        }
        l->snapshots[l->snapshots_count++] = number;
    } else {
        QR_LOG_WARNF("storage: %s: ignoring unknown file %s", l->s->dir, name);
        l->unknown_count++;
    }
    return 0;
}

/* The seam's callback: any error stops the listing with 1 (errno values are negative). */
static int listing_entry(void *ctx, const char *name)
{
    struct listing *l = ctx;
    l->err = listing_entry_sort(l, name);
    return l->err != 0 ? 1 : 0;
}

/* Insertion sort would be quadratic for 64k segments: a bottom-up merge sort needs a copy. */
static int sort_u64(uint64_t *values, size_t count)
{
    if (count < 2) {
        return 0;
    }
    uint64_t *tmp = qr_malloc(count * sizeof(*tmp));
    if (tmp == NULL) {
        return QR_ENOMEM;
    }
    for (size_t width = 1; width < count; width *= 2) {
        for (size_t lo = 0; lo < count; lo += 2 * width) {
            size_t mid = lo + width < count ? lo + width : count;
            size_t hi = lo + 2 * width < count ? lo + 2 * width : count;
            size_t a = lo;
            size_t b = mid;
            for (size_t k = lo; k < hi; k++) {
                tmp[k] =
                    (a < mid && (b >= hi || values[a] <= values[b])) ? values[a++] : values[b++];
            }
        }
        memcpy(values, tmp, count * sizeof(*values));
    }
    qr_free(tmp);
    return 0;
}

static int list_dir(struct qr_storage *s, struct listing *l)
{
    memset(l, 0, sizeof(*l));
    l->s = s;
    int rv = s->fs->dir_list(s->fs->ctx, s->dir, listing_entry, l);
    if (rv == -ENOENT) {
        return qr__errf(s->errmsg, QR_ENOTFOUND,
                        "storage: %s: no such directory (create it by opening with create)",
                        s->dir);
    }
    if (rv == 1) {
        return l->err; /* listing_entry stopped it; the message is written. */
    }
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: list %s", s->dir);
    }
    rv = sort_u64(l->seqs, l->seqs_count);
    if (rv == 0) {
        rv = sort_u64(l->snapshots, l->snapshots_count);
    }
    return rv != 0 ? qr__errf(s->errmsg, rv, "storage: no memory to sort the listing") : 0;
}

static void listing_free(struct listing *l)
{
    qr_free(l->seqs);
    qr_free(l->tmps);
}

/* ---- meta file ---- */

static int meta_read(struct qr_storage *s)
{
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_path(s, META_NAME, path);
    int fd = -1;
    int rv = s->fs->file_open(s->fs->ctx, path, QR_STORAGE_FS_READ, &fd);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: open %s", path);
    }
    uint8_t buf[QR__STORAGE_META_SIZE + 1];
    size_t got = 0;
    rv = s->fs->file_read(s->fs->ctx, fd, buf, sizeof(buf), 0, &got);
    (void)s->fs->file_close(s->fs->ctx, fd); /* Read-only: closing cannot lose data. */
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: read %s", path);
    }
    struct qr__storage_meta meta;
    rv = qr__storage_meta_decode(buf, got, &meta, s->errmsg);
    if (rv != 0) {
        return qr__err_wrapf(s->errmsg, rv, "storage: %s", path);
    }
    if (meta.cluster_id != s->opts.cluster_id || meta.node_id != s->opts.node_id) {
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: %s belongs to cluster %llu node %llu, not cluster %llu node "
                        "%llu: refusing to use another node's data",
                        s->dir, (unsigned long long)meta.cluster_id,
                        (unsigned long long)meta.node_id, (unsigned long long)s->opts.cluster_id,
                        (unsigned long long)s->opts.node_id);
    }
    return 0;
}

/* Writes a small file atomically: temporary, fsync, rename, directory fsync. */
static int write_atomic(struct qr_storage *s, const char *name, const uint8_t *buf, size_t size)
{
    char tmp_name[QR__STORAGE_NAME_SIZE];
    char tmp[QR__STORAGE_PATH_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_tmp_name(name, tmp_name);
    qr__storage_path(s, tmp_name, tmp);
    qr__storage_path(s, name, path);
    (void)s->fs->path_unlink(s->fs->ctx, tmp); /* A leftover from a crash, if any. */
    int fd = -1;
    int rv = s->fs->file_open(s->fs->ctx, tmp, QR_STORAGE_FS_CREATE, &fd);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: create %s", tmp);
    }
    rv = s->fs->file_write(s->fs->ctx, fd, buf, size, 0);
    if (rv != 0) {
        rv = qr__storage_os_err(s, rv, "storage: write %s", tmp);
    } else {
        rv = s->fs->file_sync(s->fs->ctx, fd);
        rv = rv != 0 ? qr__storage_os_err(s, rv, "storage: fsync %s", tmp) : 0;
    }
    (void)s->fs->file_close(s->fs->ctx, fd); /* Synced or being discarded. */
    if (rv == 0) {
        rv = s->fs->path_rename(s->fs->ctx, tmp, path);
        rv = rv != 0 ? qr__storage_os_err(s, rv, "storage: rename %s to %s", tmp, path) : 0;
    }
    if (rv != 0) {
        (void)s->fs->path_unlink(s->fs->ctx, tmp); /* Best effort; open deletes it anyway. */
        return rv;
    }
    rv = s->fs->dir_sync(s->fs->ctx, s->dir);
    return rv != 0 ? qr__storage_os_err(s, rv, "storage: fsync directory %s", s->dir) : 0;
}

static int meta_write(struct qr_storage *s)
{
    struct qr__storage_meta meta = {
        .version = QR_STORAGE_FORMAT_VERSION,
        .cluster_id = s->opts.cluster_id,
        .node_id = s->opts.node_id,
    };
    uint8_t buf[QR__STORAGE_META_SIZE];
    qr__storage_meta_encode(&meta, buf);
    return write_atomic(s, META_NAME, buf, sizeof(buf));
}

/* ---- open ---- */

static int delete_files(struct qr_storage *s, char (*names)[QR__STORAGE_NAME_SIZE], size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char path[QR__STORAGE_PATH_SIZE];
        qr__storage_path(s, names[i], path);
        QR_LOG_INFOF("storage: deleting %s, left unfinished by an earlier run", path);
        int rv = s->fs->path_unlink(s->fs->ctx, path);
        if (rv != 0 && rv != -ENOENT) {
            return qr__storage_os_err(s, rv, "storage: delete %s", path);
        }
    }
    return count > 0 ? qr__storage_sync_dir(s) : 0;
}

/*
 * A directory without meta but with only segment 1, holding no batch, is an
 * initialisation that crashed before writing meta (meta is written last): it
 * holds nothing of value and may be started over. Anything else without meta is
 * someone else's data or damage, and is refused.
 */
static int check_interrupted_init(struct qr_storage *s, const struct listing *l, bool *is_out)
{
    *is_out = false;
    if (l->snapshots_count != 0 || l->seqs_count != 1 || l->seqs[0] != 1) {
        return 0;
    }
    char name[QR__STORAGE_NAME_SIZE];
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_segment_name(1, name);
    qr__storage_path(s, name, path);
    int fd = -1;
    int rv = s->fs->file_open(s->fs->ctx, path, QR_STORAGE_FS_READ, &fd);
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: open %s", path);
    }
    uint8_t buf[QR__STORAGE_SEGMENT_HEADER_SIZE + QR__STORAGE_BATCH_HEADER_SIZE];
    size_t got = 0;
    rv = s->fs->file_read(s->fs->ctx, fd, buf, sizeof(buf), 0, &got);
    (void)s->fs->file_close(s->fs->ctx, fd); /* Read-only. */
    if (rv != 0) {
        return qr__storage_os_err(s, rv, "storage: read %s", path);
    }
    struct qr__storage_segment_header h;
    struct qr__storage_batch_header b;
    char ignored[QR_ERRMSG_SIZE];
    if (qr__storage_segment_header_decode(buf, got, &h, ignored) != 0 || h.prev_index != 0 ||
        h.hard_state.term != 0) {
        return 0;
    }
    /* Nothing at all where the first batch would be: unwritten (zero) or end of file. */
    enum qr__storage_batch_status status = qr__storage_batch_check(
        buf + QR__STORAGE_SEGMENT_HEADER_SIZE, got - QR__STORAGE_SEGMENT_HEADER_SIZE, &b);
    *is_out = status == QR__BATCH_ZERO || status == QR__BATCH_EOF;
    return 0;
}

static int open_new(struct qr_storage *s, struct listing *l)
{
    bool is_interrupted = false;
    int rv = check_interrupted_init(s, l, &is_interrupted);
    if (rv != 0) {
        return rv;
    }
    if (!is_interrupted && (l->seqs_count > 0 || l->snapshots_count > 0)) {
        return qr__errf(s->errmsg, QR_ECORRUPT,
                        "storage: %s has log or snapshot files but no meta file: refusing to "
                        "guess whose data it is",
                        s->dir);
    }
    if (!s->opts.create) {
        return qr__errf(s->errmsg, QR_ENOTFOUND,
                        "storage: %s is not initialised (open with create on first start)", s->dir);
    }
    if (l->unknown_count > 0) {
        /* A mistyped path must not turn someone's directory into a data directory. */
        return qr__errf(s->errmsg, QR_EINVAL,
                        "storage: %s holds %zu files that are not quorum's: refusing to "
                        "initialise a data directory there",
                        s->dir, l->unknown_count);
    }
    if (is_interrupted) {
        char name[QR__STORAGE_NAME_SIZE];
        char path[QR__STORAGE_PATH_SIZE];
        qr__storage_segment_name(1, name);
        qr__storage_path(s, name, path);
        QR_LOG_INFOF("storage: %s: initialisation was interrupted; starting it over", s->dir);
        rv = s->fs->path_unlink(s->fs->ctx, path);
        if (rv != 0) {
            return qr__storage_os_err(s, rv, "storage: delete %s", path);
        }
    }
    rv = delete_files(s, l->tmps, l->tmps_count);
    if (rv == 0) {
        rv = qr__storage_wal_init(s); /* Segment first, meta last: meta marks "initialised". */
    }
    if (rv == 0) {
        rv = meta_write(s);
    }
    if (rv == 0) {
        QR_LOG_INFOF("storage: initialised %s for cluster %llu node %llu", s->dir,
                     (unsigned long long)s->opts.cluster_id, (unsigned long long)s->opts.node_id);
    }
    return rv;
}

static int open_existing(struct qr_storage *s, struct listing *l, struct qr_storage_recovered *rec)
{
    int rv = meta_read(s);
    if (rv == 0) {
        rv = delete_files(s, l->tmps, l->tmps_count);
    }
    if (rv == 0 && s->opts.sync == QR_STORAGE_SYNC_ALWAYS) {
        /* A rename done just before a crash may not be durable yet: make it so before the
         * recovered state is reported durable. */
        rv = qr__storage_sync_dir(s);
    }
    if (rv == 0) {
        rv = qr__storage_snapshot_load(s, l->snapshots, l->snapshots_count);
    }
    if (rv == 0) {
        rv = qr__storage_wal_recover(s, l->seqs, l->seqs_count, rec);
    }
    return rv;
}

static int open_dir(struct qr_storage *s, struct qr_storage_recovered *rec)
{
    if (s->opts.create) {
        int rv = s->fs->dir_create(s->fs->ctx, s->dir);
        if (rv != 0 && rv != -EEXIST) {
            return qr__storage_os_err(s, rv, "storage: create directory %s", s->dir);
        }
    }
    char path[QR__STORAGE_PATH_SIZE];
    qr__storage_path(s, LOCK_NAME, path);
    int rv = s->fs->dir_lock(s->fs->ctx, path, &s->lock_fd);
    if (rv == -EAGAIN) {
        return qr__errf(s->errmsg, QR_EBUSY, "storage: %s is in use by another process (%s held)",
                        s->dir, path);
    }
    if (rv == -ENOENT) {
        return qr__errf(s->errmsg, QR_ENOTFOUND,
                        "storage: %s: no such directory (open with create on first start)", s->dir);
    }
    if (rv != 0) {
        s->lock_fd = -1;
        return qr__storage_os_err(s, rv, "storage: lock %s", path);
    }
    struct listing l;
    rv = list_dir(s, &l);
    if (rv == 0) {
        rv = l.has_meta ? open_existing(s, &l, rec) : open_new(s, &l);
    }
    listing_free(&l);
    return rv;
}

static void recovered_fill(const struct qr_storage *s, struct qr_storage_recovered *rec)
{
    rec->has_snapshot = s->has_snapshot;
    if (s->has_snapshot) {
        rec->snapshot = s->snapshot;
    }
    rec->entries = s->replay.entries;
    rec->entries_count = s->replay.entries_count;
    rec->segments_count = s->segments_count;
}

int qr_storage_open(const char *dir,
                    const struct qr_storage_opts *opts,
                    struct qr_storage **storage_out,
                    struct qr_storage_recovered *recovered_out,
                    char *errmsg)
{
    QR_ASSERT(dir != NULL && opts != NULL && storage_out != NULL && recovered_out != NULL);
    memset(recovered_out, 0, sizeof(*recovered_out));
    *storage_out = NULL;
    struct qr_storage_opts resolved;
    int rv = opts_resolve(opts, &resolved, errmsg);
    if (rv != 0) {
        return rv;
    }
    size_t len = strlen(dir);
    if (len == 0 || len > QR_STORAGE_PATH_SIZE_MAX) {
        return qr__errf(errmsg, QR_EINVAL, "storage: directory path of %zu bytes (1 to %d)", len,
                        QR_STORAGE_PATH_SIZE_MAX);
    }
    struct qr_storage *s = qr_calloc(1, sizeof(*s));
    if (s == NULL) {
        return qr__errf(errmsg, QR_ENOMEM, "storage: no memory");
    }
    s->opts = resolved;
    s->fs = resolved.fs;
    memcpy(s->dir, dir, len + 1);
    s->lock_fd = -1;
    s->open_fd = -1;
    s->snapshot_fd = -1;
    s->seq_next = 1;
    qr__storage_replay_init(&s->replay, 0, s->opts.recovery_size_max);
    rv = open_dir(s, recovered_out);
    if (rv != 0) {
        (void)qr__errf(errmsg, rv, "%s", s->errmsg);
        qr_storage_close(s);
        memset(recovered_out, 0, sizeof(*recovered_out));
        return rv;
    }
    recovered_fill(s, recovered_out);
    qr__storage_check_invariants(s);
    *storage_out = s;
    return 0;
}

void qr_storage_close(struct qr_storage *storage)
{
    if (storage == NULL) {
        return;
    }
    qr__storage_snapshot_close(storage);
    qr__storage_wal_close(storage);
    qr__storage_replay_free(&storage->replay);
    if (storage->lock_fd >= 0) {
        (void)storage->fs->file_close(storage->fs->ctx, storage->lock_fd); /* Releases it. */
    }
    qr_free(storage);
}

void qr_storage_release_recovered(struct qr_storage *storage)
{
    qr__storage_replay_free(&storage->replay);
}

void qr_storage_core_state(const struct qr_storage_recovered *recovered,
                           struct qr_core_state *state_out)
{
    memset(state_out, 0, sizeof(*state_out));
    state_out->hard_state = recovered->hard_state;
    state_out->snapshot = recovered->has_snapshot ? &recovered->snapshot : NULL;
    state_out->entries = recovered->entries;
    state_out->entries_count = recovered->entries_count;
    state_out->config = NULL;
}

void qr_storage_batch_from_ready(const struct qr_ready *ready, struct qr_storage_batch *batch_out)
{
    memset(batch_out, 0, sizeof(*batch_out));
    batch_out->snapshot = ready->snapshot;
    batch_out->entries = ready->entries;
    batch_out->entries_count = ready->entries_count;
    batch_out->has_hard_state = ready->has_hard_state;
    batch_out->hard_state = ready->hard_state;
}

/* ---- calls after open ---- */

static int check_usable(struct qr_storage *s)
{
    if (s->failed_err != 0) {
        return qr__errf(s->errmsg, QR_EFATAL,
                        "storage: %s failed earlier (%s); close and reopen it to recover", s->dir,
                        qr_err_name(s->failed_err));
    }
    return 0;
}

int qr_storage_write(struct qr_storage *storage, const struct qr_storage_batch *batch)
{
    QR_ASSERT(storage != NULL && batch != NULL);
    return qr_storage_write_group(storage, batch, 1);
}

int qr_storage_write_group(struct qr_storage *storage,
                           const struct qr_storage_batch *batches,
                           size_t count)
{
    QR_ASSERT(storage != NULL && (batches != NULL || count == 0));
    struct qr_storage *s = storage;
    int rv = check_usable(s);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < count && rv == 0; i++) {
        rv = qr__storage_wal_append(s, &batches[i]);
    }
    if (rv == 0) {
        rv = qr__storage_wal_sync(s);
    }
    if (rv == QR_ENOSPC && s->failed_err == 0) {
        if (s->write_err == 0) {
            QR_LOG_ERRORF("storage: disk full, writes refused (read-only) until space is freed: %s",
                          s->errmsg);
        }
        s->write_err = rv;
    } else if (rv == 0 && s->write_err != 0) {
        QR_LOG_WARNF("storage: %s: writes succeed again after %s", s->dir,
                     qr_err_name(s->write_err));
        s->write_err = 0;
    }
    qr__storage_check_invariants(s);
    return rv;
}

int qr_storage_compact(struct qr_storage *storage, qr_index upto, uint64_t *removed_out)
{
    QR_ASSERT(storage != NULL);
    uint64_t removed = 0;
    int rv = check_usable(storage);
    if (rv == 0) {
        rv = qr__storage_wal_compact(storage, upto, &removed);
    }
    if (removed_out != NULL) {
        *removed_out = removed;
    }
    qr__storage_check_invariants(storage);
    return rv;
}

void qr_storage_status(const struct qr_storage *storage, struct qr_storage_status *status)
{
    const struct qr_storage *s = storage;
    memset(status, 0, sizeof(*status));
    status->failed_err = s->failed_err;
    status->write_err = s->write_err;
    status->snapshot_index = s->has_snapshot ? s->snapshot.index : 0;
    qr_index last = s->last_index;
    if (s->reset_pending || last < status->snapshot_index) {
        last = status->snapshot_index;
    }
    status->last_index = last;
    qr_index first = s->segments_count > 0 ? s->segments[0].prev_index + 1 : 1;
    status->first_index = first <= s->last_index ? first : 0;
    status->segments_count = s->segments_count;
    status->batches_count = s->batches_count;
    status->syncs_count = s->syncs_count;
    status->bytes_written = s->bytes_written;
}

const char *qr_storage_errmsg(const struct qr_storage *storage)
{
    return storage->errmsg;
}
