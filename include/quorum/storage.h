/*
 * quorum/storage.h: durable storage of one node: write-ahead log, hard state, snapshots.
 *
 * Layer: storage (above core, below node). Storage keeps what a consensus core
 * needs to survive a crash: the log entries, the hard state (term, vote,
 * commit) and the latest snapshot of the state machine. It never talks to the
 * network, never starts a thread and never depends on an event loop: every call
 * blocks until the disk has answered, so the node runtime runs these calls on a
 * worker thread (DESIGN rule 5: the event loop never blocks on disk).
 *
 * The promise (DESIGN rule 2): when qr_storage_write() returns 0 under the
 * default sync policy, everything in that batch is on stable storage: one
 * fdatasync per call, however many entries it carries (group commit). The
 * node reports qr_core_persisted() only after that, so no vote is granted and
 * no append acknowledged before its data is durable.
 *
 * The hard state (term, vote, commit) is a record inside the same checksummed
 * batch as the entries it travels with, so it is written atomically with them
 * and costs no second fsync (a vote alone is a batch of one record, and one
 * fdatasync). Every segment header repeats the hard state current when the
 * segment was created, so deleting old segments never loses it.
 *
 * Typical use by a node:
 *
 *   struct qr_storage_opts opts;
 *   qr_storage_opts_default(&opts, cluster_id, node_id);
 *   opts.create = true;                        (first start only)
 *   qr_storage_open(dir, &opts, &s, &rec, errmsg);
 *   restore the state machine from the snapshot (qr_storage_snapshot_read), then
 *   qr_storage_core_state(&rec, &st); qr_core_create(..., &st, ...);
 *   qr_storage_release_recovered(s);
 *   loop: batch from each qr_ready (qr_storage_batch_from_ready) -> qr_storage_write()
 *         -> qr_core_persisted(); snapshots through the snapshot writer;
 *         qr_storage_compact() after a snapshot; qr_storage_close() at the end.
 *
 * Data directory (format version QR_STORAGE_FORMAT_VERSION; all integers little-endian,
 * all checksums CRC32C):
 *
 *   meta                     64 bytes: magic "QRMETA\0\0", u32 version, u32 size,
 *                            u64 cluster id, u64 node id, zeros, u32 crc of bytes 0..59.
 *                            Written once (temp file, fsync, rename, directory fsync).
 *   LOCK                     held with flock() while open: one process per directory.
 *   wal-<seq, 20 digits>     a log segment; seq counts from 1 with no gaps.
 *   snap-<index, 20 digits>  a snapshot; only the newest is kept once durable.
 *   *.tmp                    unfinished temporaries; deleted (and logged) at open.
 *
 *   Segment: a 96-byte header, then batches at 8-byte aligned offsets.
 *     header: magic "QRWALSEG", u32 version, u32 header size (96), u64 cluster id,
 *             u64 node id, u64 segment seq, u64 prev index (last log index when the
 *             segment was created), u64 first batch seq, u64 term, u64 vote, u64 commit
 *             (the hard state when created), 12 zero bytes, u32 crc of bytes 0..91.
 *     batch:  48-byte header: u32 magic 0x31425751 ("QWB1"), u32 crc of header bytes
 *             8..47, u64 seq (+1 per batch over the whole log), u64 group seq (seq of
 *             the first batch written since the last fdatasync), u64 first index (0
 *             when no entries), u32 entries count, u32 records count, u32 body size
 *             (multiple of 8), u32 body crc; then the body: records, each an 8-byte
 *             header (u8 type, 3 zero bytes, u32 payload size) and the payload padded
 *             with zeros to 8 bytes:
 *               1 entry       u64 index, u64 term, u32 entry type, u32 zero, data
 *               2 hard state  u64 term, u64 vote, u64 commit
 *               3 reset       u64 index, u64 term: the log now ends at `index`
 *                             (a snapshot replaced it; written when one is installed)
 *               4 seal        u64 last index, u64 last batch seq: the segment is full
 *             A batch holds [reset] entry* [hard state], or one seal alone. A batch
 *             whose first entry index is at or below the current last index replaces
 *             the stored entries from that index on (conflicting suffix truncated).
 *     A closed segment ends exactly after its seal batch. Only the last segment
 *     may end in a torn batch.
 *
 *   Snapshot: header, data, trailer.
 *     header: magic "QRSNAPSH", u32 version, u32 header size, u64 cluster id,
 *             u64 node id, u64 index, u64 term, u64 data size, u32 data crc,
 *             u32 chunk size, u32 voters count, u32 voters old count, u32 learners
 *             count, u32 zero, u64 ids (voters, old voters, learners), u32 zero,
 *             u32 crc of everything before it.
 *     trailer: u32 crc per chunk of data (chunk size bytes each, the last one shorter),
 *              u32 chunks count, u32 crc of the trailer before it.
 *
 * Recovery rules: the last segment may end in a torn batch (a crash in the middle
 * of a batch); it is truncated to the last complete, checksum-valid batch and a
 * warning is logged. A bad batch followed by a valid batch of a later sync group
 * (data that was already fsynced), a bad checksum anywhere in a closed segment, a
 * gap in the segment sequence, a snapshot that fails its checksums, or identity
 * fields that do not match refuse start-up with an error that names the file and
 * the byte offset. Nothing is dropped silently: anything removed is logged.
 *
 * Errors: ENOSPC while appending leaves the log exactly as it was before the
 * failed batch (or with a complete prefix of it) and returns QR_ENOSPC; the
 * storage stays usable and a later write may succeed once space is freed. A
 * failed fdatasync, rename or directory fsync, or EIO, fails the storage for
 * good: that call returns the translated error and every later call QR_EFATAL.
 * Closing and opening the directory again (which re-reads the disk) recovers.
 *
 * Repair from peers (planned, not built): every batch header names the index
 * range it holds (first index, entries count) under its own checksum, each
 * segment header names the index the segment continues from, and snapshots
 * carry a crc per 1 MiB chunk. So the error for a bad batch or chunk already
 * identifies which entries or which byte range to fetch again from a peer, and
 * a repaired segment can be rewritten and checked against the same rules.
 *
 * Threading: one storage object is used by one thread at a time; every call
 * that touches the disk blocks, so the node runs them on a worker thread and
 * never on its event loop. Distinct objects (on distinct directories) are
 * independent. Nothing here starts a thread or depends on an event loop.
 */
#ifndef QUORUM_STORAGE_H
#define QUORUM_STORAGE_H

#include "quorum/core.h"
#include "quorum/err.h"
#include "quorum/types.h"

/** On-disk format version written by this build; other versions are refused (QR_EVERSION). */
#define QR_STORAGE_FORMAT_VERSION 1
/** Default and limits of the segment size (bytes). */
#define QR_STORAGE_SEGMENT_SIZE_DEFAULT ((uint64_t)64 << 20)
#define QR_STORAGE_SEGMENT_SIZE_MIN     ((uint64_t)4 << 10)
#define QR_STORAGE_SEGMENT_SIZE_MAX     ((uint64_t)1 << 30)
/** Default bytes per framed batch; a larger write is split into several, still one fsync. */
#define QR_STORAGE_BATCH_SIZE_DEFAULT ((uint64_t)4 << 20)
/** Default most entry bytes recovery holds in memory. */
#define QR_STORAGE_RECOVERY_SIZE_DEFAULT ((uint64_t)1 << 30)
/** Largest entry payload the format accepts (bytes); it must also fit in one segment. */
#define QR_STORAGE_ENTRY_SIZE_MAX ((uint64_t)64 << 20)
/** Most segment files of one log; past it writes return QR_EBUSY until compaction. */
#define QR_STORAGE_SEGMENTS_MAX 65536
/** Longest data directory path (bytes, without the terminating NUL). */
#define QR_STORAGE_PATH_SIZE_MAX 3072

/** When appended data is forced to stable storage. */
enum qr_storage_sync {
    /* fdatasync once per qr_storage_write() before it returns: the durability promise.
     * The default (value 0). */
    QR_STORAGE_SYNC_ALWAYS = 0,
    /* Never fdatasync appended batches (segment changes are still synced). UNSAFE: a
     * machine crash can lose acknowledged entries and votes, which breaks Raft's safety.
     * For tests and benchmarks only; a process crash alone loses nothing. */
    QR_STORAGE_SYNC_NONE = 1,
};

/* ---- The file-operation seam ---------------------------------------------------- */

/** How qr_storage_fs.file_open opens a file. */
enum qr_storage_fs_mode {
    QR_STORAGE_FS_READ = 0,   /* Existing file, read only. */
    QR_STORAGE_FS_WRITE = 1,  /* Existing file, read and write. */
    QR_STORAGE_FS_CREATE = 2, /* New file, read and write; fails with -EEXIST if it exists. */
};

/** Called once per directory entry by qr_storage_fs.dir_list; non-zero stops the listing. */
typedef int (*qr_storage_fs_list_cb)(void *cb_ctx, const char *name);

/**
 * Every file operation storage performs, so that tests can inject failures and the
 * simulator can model a disk that loses unsynced writes. Each function returns 0 or
 * a negative errno value (-ENOSPC, -EIO, ...). Paths are full paths (directory,
 * '/', name) and are borrowed for the call. NULL for the whole table means the
 * POSIX file system.
 */
struct qr_storage_fs {
    void *ctx; /* Passed back to every function. */
    int (*file_open)(void *ctx, const char *path, enum qr_storage_fs_mode mode, int *fd_out);
    int (*file_close)(void *ctx, int fd);
    /* Reads up to `size` bytes at `offset`; *read_out < size only at end of file. */
    int (*file_read)(void *ctx, int fd, void *buf, size_t size, uint64_t offset, size_t *read_out);
    /* Writes all `size` bytes at `offset`; on failure any prefix may have been written. */
    int (*file_write)(void *ctx, int fd, const void *buf, size_t size, uint64_t offset);
    int (*file_sync)(void *ctx, int fd); /* fdatasync (the file's size is included). */
    int (*file_truncate)(void *ctx, int fd, uint64_t size);
    /* Reserve [offset, offset + size) so later writes there cannot fail for lack of
     * space; -EOPNOTSUPP where the file system cannot. Extends the file's size. */
    int (*file_allocate)(void *ctx, int fd, uint64_t offset, uint64_t size);
    int (*file_size)(void *ctx, int fd, uint64_t *size_out);
    int (*path_rename)(void *ctx, const char *from, const char *to);
    int (*path_unlink)(void *ctx, const char *path);
    int (*dir_create)(void *ctx, const char *path); /* -EEXIST when it exists. */
    int (*dir_sync)(void *ctx, const char *path);   /* fsync of the directory itself. */
    int (*dir_list)(void *ctx, const char *path, qr_storage_fs_list_cb cb, void *cb_ctx);
    /* Exclusive lock on `path` (created if missing) held until file_close(*fd_out);
     * -EAGAIN when another holder has it. */
    int (*dir_lock)(void *ctx, const char *path, int *fd_out);
};

/**
 * The POSIX file system as a seam, for wrapping (a test can forward to it).
 * @return A static table; any thread.
 */
QR_API const struct qr_storage_fs *qr_storage_fs_posix(void);

/* ---- Opening ---------------------------------------------------------------- */

/** Options. Zero fields take the documented default (qr_storage_opts_default). */
struct qr_storage_opts {
    uint64_t cluster_id;            /* Non-zero. Recorded in every file; a mismatch is refused. */
    qr_node_id node_id;             /* Non-zero. Recorded in every file; a mismatch is refused. */
    enum qr_storage_sync sync;      /* Default QR_STORAGE_SYNC_ALWAYS. */
    bool create;                    /* Initialise a missing or empty directory (first start). */
    uint64_t segment_size;          /* Bytes per segment file, [SEGMENT_SIZE_MIN, _MAX], a
                                       multiple of 4096 (default 64 MiB). */
    uint64_t batch_size_max;        /* Bytes per framed batch, at least 4096 (default 4 MiB). */
    uint64_t recovery_size_max;     /* Entry bytes recovery may hold in memory; a longer log
                                       is refused with QR_ENOMEM (default 1 GiB). */
    const struct qr_storage_fs *fs; /* Keeps until qr_storage_close(); NULL: POSIX. */
};

/** Fill opts with defaults for one node of one cluster. */
QR_API void
qr_storage_opts_default(struct qr_storage_opts *opts, uint64_t cluster_id, qr_node_id node_id);

/** What recovery found; filled by qr_storage_open(). */
struct qr_storage_recovered {
    struct qr_hard_state hard_state; /* All zero for a new node. */
    bool has_snapshot;
    struct qr_snapshot_meta snapshot; /* Valid when has_snapshot (size and crc included). */
    /* Entries after the snapshot, consecutive from snapshot.index + 1 (or 1). A view owned
     * by the storage, valid until qr_storage_release_recovered() or qr_storage_close(). */
    const struct qr_entry *entries;
    size_t entries_count;
    uint64_t segments_count;  /* Segment files read. */
    uint64_t torn_bytes;      /* Bytes of a torn tail cut off the last segment (0: none). */
    uint64_t discarded_count; /* Entries dropped because an installed snapshot replaces
                                 them (a crash between the snapshot and the log reset). */
};

struct qr_storage;

/**
 * Open (or, with opts->create, initialise) a data directory and recover its contents.
 * Reads every segment and verifies the snapshot's checksums, truncates a torn tail of
 * the last segment, deletes leftover temporaries and superseded snapshots (logged).
 * @param dir            Borrows; the directory path (at most QR_STORAGE_PATH_SIZE_MAX).
 * @param opts           Borrows; opts->fs is kept until qr_storage_close().
 * @param storage_out    Out: the storage, owned by the caller; free with qr_storage_close().
 * @param recovered_out  Out: the recovered state; its entries are views (see the struct).
 * @param errmsg         Out, may be NULL: QR_ERRMSG_SIZE bytes; names file and offset.
 * @return 0; QR_EINVAL (bad options, or the directory belongs to another cluster or
 *         node); QR_ENOTFOUND (not initialised and opts->create is false); QR_EBUSY
 *         (another process has it open); QR_EVERSION (written by another format
 *         version); QR_ECORRUPT (corruption outside a torn tail); QR_ENOMEM (or the log
 *         exceeds recovery_size_max); QR_EIO, QR_ENOSPC (initialising).
 *         Blocks (reads the whole log): a worker thread, or before the loop starts.
 */
QR_API int qr_storage_open(const char *dir,
                           const struct qr_storage_opts *opts,
                           struct qr_storage **storage_out,
                           struct qr_storage_recovered *recovered_out,
                           char *errmsg);

/**
 * Point a core's start-up state at the recovered data. The bootstrap config is left NULL.
 * @param recovered  Keeps: state_out points into it (and its entries) until release.
 */
QR_API void qr_storage_core_state(const struct qr_storage_recovered *recovered,
                                  struct qr_core_state *state_out);

/** Free the recovered entries (their views become invalid). Idempotent. */
QR_API void qr_storage_release_recovered(struct qr_storage *storage);

/**
 * Close the storage and free it. Writes nothing (a clean close needs no sync: every
 * acknowledged write is durable already). Accepts NULL. Aborts an open snapshot writer.
 */
QR_API void qr_storage_close(struct qr_storage *storage);

/* ---- Writing the log and the hard state --------------------------------------- */

/** One persist batch: what a struct qr_ready asks to make durable. */
struct qr_storage_batch {
    /* Borrows. A snapshot received from the leader and already published with the
     * snapshot writer: the log is reset to end at its index. NULL when none. */
    const struct qr_snapshot_meta *snapshot;
    /* Borrows. Consecutive entries; stored entries at or above entries[0].index are
     * replaced. Each entry's data is copied before return. */
    const struct qr_entry *entries;
    size_t entries_count;
    bool has_hard_state;
    struct qr_hard_state hard_state;
};

/**
 * The persist part of a ready batch.
 * @param ready      Borrows; batch_out points into it (valid until qr_core_advance()).
 */
QR_API void qr_storage_batch_from_ready(const struct qr_ready *ready,
                                        struct qr_storage_batch *batch_out);

/**
 * Append a batch (reset record, entries, hard state, in that order) and, under
 * QR_STORAGE_SYNC_ALWAYS, fdatasync once before returning. Report the batch durable
 * to the core only after 0. A crash during the call may keep any prefix of the batch.
 * @param storage  Not failed.
 * @param batch    Borrows.
 * @return 0; QR_EINVAL (entries not consecutive, a gap after the last index, an index at
 *         or below the snapshot, a term of 0, an unknown entry type, a term going
 *         backwards, or batch->snapshot not the published one: the message says which);
 *         QR_ETOOBIG (an entry cannot fit in one segment); QR_ENOSPC (disk full: the log
 *         holds its old content or a complete prefix of the batch; retry later);
 *         QR_EBUSY (QR_STORAGE_SEGMENTS_MAX reached: compact first); QR_ENOMEM;
 *         QR_EIO (and the storage is now failed); QR_EFATAL (failed earlier).
 *         Blocks on the fdatasync: worker thread, never the event loop.
 */
QR_API int qr_storage_write(struct qr_storage *storage, const struct qr_storage_batch *batch);

/**
 * Write several batches, in order, with one fdatasync at the end (sync=always): what
 * qr_storage_write does for each, flushed once. A driver whose writer thread finds several
 * persist batches queued writes them this way. Report them to the core only after 0; on an
 * error none of them is durable for sure (a crash may keep any prefix of the group, as of
 * one batch), and the error is that of the first batch that failed, as qr_storage_write
 * documents (QR_ENOSPC: retry the whole group later; it rewrites what it wrote).
 * @param batches  Borrows count batches.
 */
QR_API int qr_storage_write_group(struct qr_storage *storage,
                                  const struct qr_storage_batch *batches,
                                  size_t count);

/**
 * Delete whole segments whose entries all lie at or below `upto`, oldest first, each
 * removal made durable before the next. The segment being appended to is never deleted.
 * @param upto            At most the current snapshot's index.
 * @param removed_out     Out, may be NULL: how many segment files were deleted.
 * @return 0, QR_EINVAL (no snapshot, or upto above its index), QR_EIO (a delete or the
 *         directory fsync failed: failed for good), QR_EFATAL. Blocks: worker thread.
 */
QR_API int qr_storage_compact(struct qr_storage *storage, qr_index upto, uint64_t *removed_out);

/* ---- Snapshots ----------------------------------------------------------------- */

/** Where the bytes of a snapshot being written come from. */
enum qr_storage_snapshot_source {
    /* The local state machine: size and crc are computed while writing. */
    QR_STORAGE_SNAPSHOT_LOCAL = 1,
    /* Chunks from the leader: finishing checks the bytes against meta's size and crc. */
    QR_STORAGE_SNAPSHOT_RECEIVED = 2,
};

struct qr_storage_snapshot_writer;

/**
 * Start writing a snapshot to a temporary file. One writer at a time.
 * @param meta        Borrows; index, term and config (and, for RECEIVED, size and crc).
 * @param writer_out  Out: the writer, owned by the storage until
 *                    qr_storage_snapshot_finish() or qr_storage_snapshot_abort().
 * @return 0, QR_EINVAL (index or term 0, index not newer than the current snapshot,
 *         configuration counts out of range), QR_EBUSY (a writer is open), QR_ENOSPC,
 *         QR_EIO, QR_ENOMEM, QR_EFATAL. Blocks: worker thread.
 */
QR_API int qr_storage_snapshot_begin(struct qr_storage *storage,
                                     const struct qr_snapshot_meta *meta,
                                     enum qr_storage_snapshot_source source,
                                     struct qr_storage_snapshot_writer **writer_out);

/**
 * Append bytes to the snapshot. Memory stays bounded whatever the snapshot's size: the
 * bytes are written through, and only 4 bytes per MiB are kept (the chunk crcs). A chunk
 * from the leader that restarts at offset 0 needs a new writer: abort this one first.
 * @param writer  From qr_storage_snapshot_begin().
 * @param offset  Must equal the bytes written so far (chunks arrive in order).
 * @param data    Borrows.
 * @return 0, QR_EINVAL (wrong offset, more bytes than a RECEIVED meta's size, or an earlier
 *         write failed), QR_ENOSPC, QR_EIO, QR_ENOMEM: after any error only
 *         qr_storage_snapshot_abort() is useful. Blocks: worker thread.
 */
QR_API int qr_storage_snapshot_write(struct qr_storage_snapshot_writer *writer,
                                     uint64_t offset,
                                     const void *data,
                                     size_t size);

/**
 * Publish the snapshot: write its header and trailer, fsync, rename into place, fsync
 * the directory; only then delete the snapshot it replaces. Always frees the writer.
 * @param writer    Takes: freed whatever the result.
 * @param meta_out  Out, may be NULL: the published meta (size and crc filled in).
 * @return 0; QR_ECORRUPT (RECEIVED bytes do not match meta's size or crc: nothing
 *         published); QR_EINVAL (an earlier write failed); QR_ENOSPC; QR_ENOMEM; QR_EIO
 *         (failed for good when the fsync, rename or directory fsync failed); QR_EFATAL.
 *         Blocks: worker thread.
 */
QR_API int qr_storage_snapshot_finish(struct qr_storage_snapshot_writer *writer,
                                      struct qr_snapshot_meta *meta_out);

/** Discard an unfinished snapshot (its temporary file is deleted). Accepts NULL. */
QR_API void qr_storage_snapshot_abort(struct qr_storage_snapshot_writer *writer);

/**
 * The current snapshot's meta.
 * @return false when there is none.
 */
QR_API bool qr_storage_snapshot_meta(const struct qr_storage *storage,
                                     struct qr_snapshot_meta *meta_out);

/**
 * Read data of the current snapshot, e.g. to fill a chunk for a follower or to restore
 * the state machine at start-up. Bytes are not re-verified (they were at open or finish).
 * @param index     The snapshot wanted; QR_ENOTFOUND when another one is current.
 * @param buf       Borrows; receives up to `size` bytes.
 * @param read_out  Out: bytes read, less than size only at the end of the data.
 * @return 0, QR_ENOTFOUND, QR_EINVAL (offset beyond the data), QR_EIO. Works on a failed
 *         storage too (reads are safe). Blocks: worker thread.
 */
QR_API int qr_storage_snapshot_read(struct qr_storage *storage,
                                    qr_index index,
                                    uint64_t offset,
                                    void *buf,
                                    size_t size,
                                    size_t *read_out);

/* ---- State ---------------------------------------------------------------------- */

/** Counters and health, for logs and metrics. */
struct qr_storage_status {
    int failed_err;       /* 0, or the error that failed the storage (then QR_EFATAL). */
    int write_err;        /* 0, or the error of the last write when it failed without
                             failing the storage (QR_ENOSPC: read-only until a write
                             succeeds). */
    qr_index first_index; /* First entry still in the segments, possibly at or below the
                             snapshot index until compaction removes it (0: none). */
    qr_index last_index;  /* Last entry (or the snapshot index when the log is empty). */
    qr_index snapshot_index;
    uint64_t segments_count;
    uint64_t batches_count; /* Batches appended since open. */
    uint64_t syncs_count;   /* fdatasync calls since open (batches and segment changes). */
    uint64_t bytes_written; /* Bytes appended since open. */
};

/** Fill status. Never fails. */
QR_API void qr_storage_status(const struct qr_storage *storage, struct qr_storage_status *status);

/**
 * The largest entry payload a write to this storage accepts (bytes): what one framed batch
 * holds with the options it was opened with (batch_size_max, segment_size), at most
 * QR_STORAGE_ENTRY_SIZE_MAX. A write with a larger entry fails with QR_ETOOBIG, so a driver
 * caps what it accepts at this (qr_core_opts.entry_bytes_max).
 */
QR_API uint64_t qr_storage_entry_size_max(const struct qr_storage *storage);

/**
 * The message of the most recent failed call, naming file and offset where relevant.
 * @return A view valid until the next call on the storage.
 */
QR_API const char *qr_storage_errmsg(const struct qr_storage *storage);

/** The name of a sync policy ("always", "none"); "?" for anything else. */
QR_API const char *qr_storage_sync_name(enum qr_storage_sync sync);

#endif /* QUORUM_STORAGE_H */
