/*
 * storage/storage_internal.h: the storage object shared by storage.c, wal.c and snapshot.c.
 *
 * Layer: storage. Internal only. storage.c opens the directory and owns the
 * object's lifecycle; wal.c recovers and appends the log; snapshot.c writes,
 * verifies and reads snapshots. Every file operation goes through s->fs.
 * Invariants are written beside the fields and checked by
 * qr__storage_check_invariants() after every call in debug builds.
 */
#ifndef QR_STORAGE_INTERNAL_H
#define QR_STORAGE_INTERNAL_H

#include "quorum/storage.h"
#include "storage/format.h"
#include "storage/replay.h"

/* Room for "<dir>/<longest name>". Names are at most "snap-<20 digits>.tmp". */
#define QR__STORAGE_NAME_SIZE 32
#define QR__STORAGE_PATH_SIZE (QR_STORAGE_PATH_SIZE_MAX + 1 + QR__STORAGE_NAME_SIZE)
/* Most snapshot files a directory may hold at open (normally one, two after a crash). */
#define QR__STORAGE_SNAPSHOTS_MAX 64
/* Most directory entries examined at open. */
#define QR__STORAGE_DIR_ENTRIES_MAX (QR_STORAGE_SEGMENTS_MAX + QR__STORAGE_SNAPSHOTS_MAX + 64)

/* One segment file, in the order of the log. */
struct qr__storage_segment {
    uint64_t seq;        /* File number; consecutive across the array. */
    qr_index prev_index; /* Last log index when it was created. */
    qr_index index_max;  /* Highest index written in it (>= prev_index). */
    uint64_t size;       /* Bytes in use (valid data) for a closed one. */
};

struct qr_storage {
    struct qr_storage_opts opts;    /* Defaults applied; opts.fs never NULL. */
    const struct qr_storage_fs *fs; /* == opts.fs. */
    char dir[QR_STORAGE_PATH_SIZE_MAX + 1];
    char errmsg[QR_ERRMSG_SIZE];
    int lock_fd;    /* Held from open to close. */
    int failed_err; /* 0, or the error that failed the storage for good. */
    int write_err;  /* 0, or the last write's non-fatal error (QR_ENOSPC). */

    /* The log. */
    struct qr__storage_segment *segments; /* Ascending seq; the last one may be open. */
    size_t segments_count;                /* <= QR_STORAGE_SEGMENTS_MAX. */
    size_t segments_capacity;
    bool has_open;        /* segments[segments_count - 1] is open for appending. */
    int open_fd;          /* Valid when has_open. */
    uint64_t open_offset; /* End of valid data in the open segment; 8-aligned. */
    uint64_t open_size;   /* The open segment file's size (preallocated). */
    uint64_t seq_next;    /* Seq of the next batch (>= 1). */
    uint64_t group_seq;   /* First batch not yet fdatasynced, or 0 when all are synced. */
    qr_index last_index;  /* Last index of the log (the snapshot index when reset). */
    struct qr_hard_state hard_state; /* Last hard state written. */
    bool reset_pending;              /* Recovery dropped entries for the snapshot: the next batch
                                        starts with a reset record so the disk agrees. */
    uint8_t *buf;                    /* Encoding buffer for one batch. */
    size_t buf_size;

    /* The current snapshot. */
    bool has_snapshot;
    struct qr_snapshot_meta snapshot;
    uint32_t snapshot_header_size;             /* Data starts here in the file. */
    int snapshot_fd;                           /* Open for reading when has_snapshot. */
    struct qr_storage_snapshot_writer *writer; /* The open writer, or NULL. */

    /* Recovery results, kept until released. */
    struct qr__storage_replay replay;

    uint64_t batches_count;
    uint64_t syncs_count;
    uint64_t bytes_written;
};

/* ---- storage.c ---- */

/* "<dir>/<name>" into path (QR__STORAGE_PATH_SIZE bytes). */
void qr__storage_path(const struct qr_storage *s, const char *name, char *path);
/* "<name>.tmp" into tmp_name (QR__STORAGE_NAME_SIZE bytes). */
void qr__storage_tmp_name(const char *name, char *tmp_name);
/* Fails the storage for good with err (already described in s->errmsg); returns err. */
int qr__storage_fail(struct qr_storage *s, int err);
/* Translates a negative errno from the seam into a QR_E* code and a message. */
int qr__storage_os_err(struct qr_storage *s, int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* dir_sync of the data directory; a failure fails the storage. */
int qr__storage_sync_dir(struct qr_storage *s);
/* Reads exactly size bytes at offset or fails (QR_ECORRUPT at end of file, QR_EIO). */
int qr__storage_read_exact(
    struct qr_storage *s, int fd, const char *name, void *buf, size_t size, uint64_t offset);
void qr__storage_check_invariants(const struct qr_storage *s);

/* ---- wal.c ---- */

/* Segment file name for seq ("wal-<20 digits>"). */
void qr__storage_segment_name(uint64_t seq, char *name);
/* Create segment 1 of a new directory (the log's only segment, open). */
int qr__storage_wal_init(struct qr_storage *s);
/* Replay the segments (seqs ascending) after the snapshot was loaded; fill the log state. */
int qr__storage_wal_recover(struct qr_storage *s,
                            const uint64_t *seqs,
                            size_t seqs_count,
                            struct qr_storage_recovered *recovered);
/* Appends one batch without fdatasync (it joins the open sync group). */
int qr__storage_wal_append(struct qr_storage *s, const struct qr_storage_batch *batch);
/* fdatasync what was appended since the last one (sync=always; nothing else to do). */
int qr__storage_wal_sync(struct qr_storage *s);
int qr__storage_wal_compact(struct qr_storage *s, qr_index upto, uint64_t *removed_out);
/* Closes the open segment's descriptor and frees the log's memory (no I/O beyond close). */
void qr__storage_wal_close(struct qr_storage *s);

/* ---- snapshot.c ---- */

/* Snapshot file name for index ("snap-<20 digits>"). */
void qr__storage_snapshot_name(qr_index index, char *name);
/* Verify the newest snapshot (indexes ascending) and make it current; delete older ones. */
int qr__storage_snapshot_load(struct qr_storage *s, const uint64_t *indexes, size_t count);
/* Aborts the open writer and closes the current snapshot's descriptor. */
void qr__storage_snapshot_close(struct qr_storage *s);

#endif /* QR_STORAGE_INTERNAL_H */
