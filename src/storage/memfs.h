/*
 * storage/memfs.h: an in-memory file system that models crashes and faults.
 *
 * Layer: storage (test and simulation support; never used by a real node). It
 * implements struct qr_storage_fs over memory with the durability rules the
 * storage layer relies on, and no stronger ones:
 *   - file data and size become durable only at file_sync of that file;
 *   - creating, renaming and unlinking a name become durable only at dir_sync
 *     of its directory; until then a crash keeps a prefix of those operations
 *     in the order they happened (as a journaling file system does);
 *   - a crash may lose every unsynced write (LOSE), keep all of them (KEEP, what
 *     a process crash does), or keep a random subset of 512-byte sectors and a
 *     random prefix of directory operations (TEAR, a power cut).
 * It can fail the Nth operation of chosen kinds with any errno (once or from
 * then on) and can run out of space at a set capacity, so every error path of
 * storage can be driven. The simulator may use it as its simulated disk.
 *
 * Not thread-safe; one memfs per test or simulated node.
 */
#ifndef QR_STORAGE_MEMFS_H
#define QR_STORAGE_MEMFS_H

#include <stdbool.h>
#include <stdint.h>

#include "quorum/storage.h"

/* Kinds of operation, as bits of a mask for counting and failing. */
enum qr__memfs_op {
    QR__MEMFS_OP_OPEN = 1u << 0,     /* file_open of an existing file. */
    QR__MEMFS_OP_CREATE = 1u << 1,   /* file_open CREATE, dir_create. */
    QR__MEMFS_OP_READ = 1u << 2,     /* file_read, file_size, dir_list. */
    QR__MEMFS_OP_WRITE = 1u << 3,    /* file_write. */
    QR__MEMFS_OP_SYNC = 1u << 4,     /* file_sync. */
    QR__MEMFS_OP_TRUNCATE = 1u << 5, /* file_truncate. */
    QR__MEMFS_OP_ALLOCATE = 1u << 6, /* file_allocate. */
    QR__MEMFS_OP_RENAME = 1u << 7,   /* path_rename. */
    QR__MEMFS_OP_UNLINK = 1u << 8,   /* path_unlink. */
    QR__MEMFS_OP_DIR_SYNC = 1u << 9, /* dir_sync. */
    QR__MEMFS_OP_LOCK = 1u << 10,    /* dir_lock. */
};
/* Every operation that changes the disk. */
#define QR__MEMFS_OP_MUTATING                                                               \
    (QR__MEMFS_OP_CREATE | QR__MEMFS_OP_WRITE | QR__MEMFS_OP_SYNC | QR__MEMFS_OP_TRUNCATE | \
     QR__MEMFS_OP_ALLOCATE | QR__MEMFS_OP_RENAME | QR__MEMFS_OP_UNLINK | QR__MEMFS_OP_DIR_SYNC)
#define QR__MEMFS_OP_ALL ((1u << 11) - 1)

enum qr__memfs_crash {
    QR__MEMFS_CRASH_LOSE = 1, /* Every unsynced change is lost. */
    QR__MEMFS_CRASH_TEAR = 2, /* Random sectors and a random prefix of directory changes. */
    QR__MEMFS_CRASH_KEEP = 3, /* Every change survives (a process crash). */
};

struct qr__memfs;

/* QR_ENOMEM or 0. */
int qr__memfs_create(struct qr__memfs **memfs_out);
/* Frees everything. Accepts NULL. */
void qr__memfs_destroy(struct qr__memfs *memfs);
/* The seam; a view valid until destroy. */
const struct qr_storage_fs *qr__memfs_fs(struct qr__memfs *memfs);

/*
 * Fail the nth (1-based, counted from this call) operation whose kind is in
 * ops_mask with -err_value; when sticky, every later one of those kinds too.
 * A failing write first writes the first half of its bytes. nth 0 disables.
 */
void qr__memfs_fail(
    struct qr__memfs *memfs, unsigned ops_mask, uint64_t nth, int err_value, bool sticky);
/* Operations of the kinds in ops_mask performed so far (failed ones included). */
uint64_t qr__memfs_ops_count(const struct qr__memfs *memfs, unsigned ops_mask);
/* Bytes the live files may use at most (0: unlimited); beyond it writes get -ENOSPC. */
void qr__memfs_set_capacity(struct qr__memfs *memfs, uint64_t capacity);
/* Bytes used by live files now. */
uint64_t qr__memfs_used(const struct qr__memfs *memfs);

/* Crash: every descriptor is closed and unsynced state resolved per mode (seeded). */
void qr__memfs_crash(struct qr__memfs *memfs, enum qr__memfs_crash mode, uint64_t seed);

/* Test access to a file's durable and current bytes at once (both are changed). */
bool qr__memfs_exists(const struct qr__memfs *memfs, const char *path);
int qr__memfs_file_size(const struct qr__memfs *memfs, const char *path, uint64_t *size_out);
/* XOR one byte at offset (a bit flip on the platter); -ENOENT or -EINVAL when impossible. */
int qr__memfs_corrupt(struct qr__memfs *memfs, const char *path, uint64_t offset, uint8_t mask);
/* Cut the file to size (a crash that kept only a prefix); -ENOENT or -EINVAL. */
int qr__memfs_cut(struct qr__memfs *memfs, const char *path, uint64_t size);
/* Remove a name outright (an operator deleting a file); -ENOENT. */
int qr__memfs_remove(struct qr__memfs *memfs, const char *path);

#endif /* QR_STORAGE_MEMFS_H */
