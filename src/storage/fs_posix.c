/*
 * storage/fs_posix.c: the file-operation seam implemented with POSIX calls.
 *
 * Layer: storage. The only file of storage that calls the operating system
 * directly; everything else goes through struct qr_storage_fs so tests and the
 * simulator can substitute failures and crashes. It retries EINTR and short
 * transfers, and returns negative errno values. It needs _GNU_SOURCE for
 * fallocate(2) (which, unlike posix_fallocate, never falls back to writing
 * zeros) and flock(2) (a lock per open file, so two opens in one process
 * exclude each other too, unlike fcntl locks).
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quorum/storage.h"
#include "util/assert.h"

/* Bounded retries of EINTR, so no loop spins forever on a broken signal setup. */
#define EINTR_RETRIES_MAX 1000

static int neg_errno(void)
{
    return errno != 0 ? -errno : -EIO;
}

static int posix_open(void *ctx, const char *path, enum qr_storage_fs_mode mode, int *fd_out)
{
    (void)ctx;
    int flags = O_CLOEXEC;
    switch (mode) {
    case QR_STORAGE_FS_READ:
        flags |= O_RDONLY;
        break;
    case QR_STORAGE_FS_WRITE:
        flags |= O_RDWR;
        break;
    case QR_STORAGE_FS_CREATE:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
    }
    for (int i = 0; i < EINTR_RETRIES_MAX; i++) {
        int fd = open(path, flags, 0644);
        if (fd >= 0) {
            *fd_out = fd;
            return 0;
        }
        if (errno != EINTR) {
            return neg_errno();
        }
    }
    return -EINTR;
}

static int posix_close(void *ctx, int fd)
{
    (void)ctx;
    /* Linux closes the descriptor even when close reports EINTR: never retry it. */
    return close(fd) == 0 ? 0 : neg_errno();
}

static int posix_read(void *ctx, int fd, void *buf, size_t size, uint64_t offset, size_t *read_out)
{
    (void)ctx;
    size_t done = 0;
    int interrupts = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buf + done, size - done, (off_t)(offset + done));
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR && ++interrupts < EINTR_RETRIES_MAX) {
                continue;
            }
            return neg_errno();
        }
        done += (size_t)n;
    }
    *read_out = done;
    return 0;
}

static int posix_write(void *ctx, int fd, const void *buf, size_t size, uint64_t offset)
{
    (void)ctx;
    size_t done = 0;
    int interrupts = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, (const char *)buf + done, size - done, (off_t)(offset + done));
        if (n <= 0) {
            if (n < 0 && errno == EINTR && ++interrupts < EINTR_RETRIES_MAX) {
                continue;
            }
            return n == 0 ? -ENOSPC : neg_errno();
        }
        done += (size_t)n;
    }
    return 0;
}

static int posix_sync(void *ctx, int fd)
{
    (void)ctx;
    /* Never retried after a real failure (STYLE §4); EINTR means it did not run. */
    for (int i = 0; i < EINTR_RETRIES_MAX; i++) {
        if (fdatasync(fd) == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return neg_errno();
        }
    }
    return -EIO;
}

static int posix_truncate(void *ctx, int fd, uint64_t size)
{
    (void)ctx;
    for (int i = 0; i < EINTR_RETRIES_MAX; i++) {
        if (ftruncate(fd, (off_t)size) == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return neg_errno();
        }
    }
    return -EIO;
}

static int posix_allocate(void *ctx, int fd, uint64_t offset, uint64_t size)
{
    (void)ctx;
    for (int i = 0; i < EINTR_RETRIES_MAX; i++) {
        if (fallocate(fd, 0, (off_t)offset, (off_t)size) == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return neg_errno();
        }
    }
    return -EIO;
}

static int posix_size(void *ctx, int fd, uint64_t *size_out)
{
    (void)ctx;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return neg_errno();
    }
    *size_out = (uint64_t)st.st_size;
    return 0;
}

static int posix_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) == 0 ? 0 : neg_errno();
}

static int posix_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) == 0 ? 0 : neg_errno();
}

static int posix_mkdir(void *ctx, const char *path)
{
    (void)ctx;
    return mkdir(path, 0755) == 0 ? 0 : neg_errno();
}

static int posix_dir_sync(void *ctx, const char *path)
{
    (void)ctx;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return neg_errno();
    }
    int rv = fsync(fd) == 0 ? 0 : neg_errno();
    (void)close(fd); /* Read-only directory descriptor: nothing to lose. */
    return rv;
}

static int posix_dir_list(void *ctx, const char *path, qr_storage_fs_list_cb cb, void *cb_ctx)
{
    (void)ctx;
    DIR *dir = opendir(path);
    if (dir == NULL) {
        return neg_errno();
    }
    int rv = 0;
    /* Bounded: a directory has finitely many entries and the callback limits them too. */
    for (;;) {
        errno = 0;
        struct dirent *d = readdir(dir);
        if (d == NULL) {
            rv = errno != 0 ? -errno : 0;
            break;
        }
        if (d->d_name[0] == '.' &&
            (d->d_name[1] == '\0' || (d->d_name[1] == '.' && d->d_name[2] == '\0'))) {
            continue;
        }
        rv = cb(cb_ctx, d->d_name);
        if (rv != 0) {
            break;
        }
    }
    (void)closedir(dir); /* Reading is done; its error adds nothing. */
    return rv;
}

static int posix_lock(void *ctx, const char *path, int *fd_out)
{
    int fd = -1;
    int rv = posix_open(ctx, path, QR_STORAGE_FS_WRITE, &fd);
    if (rv == -ENOENT) {
        rv = posix_open(ctx, path, QR_STORAGE_FS_CREATE, &fd);
        if (rv == -EEXIST) {
            rv = posix_open(ctx, path, QR_STORAGE_FS_WRITE, &fd);
        }
    }
    if (rv != 0) {
        return rv;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rv = errno == EWOULDBLOCK ? -EAGAIN : neg_errno();
        (void)close(fd); /* Not locked: nothing written through it. */
        return rv;
    }
    *fd_out = fd;
    return 0;
}

static const struct qr_storage_fs posix_fs = {
    .ctx = NULL,
    .file_open = posix_open,
    .file_close = posix_close,
    .file_read = posix_read,
    .file_write = posix_write,
    .file_sync = posix_sync,
    .file_truncate = posix_truncate,
    .file_allocate = posix_allocate,
    .file_size = posix_size,
    .path_rename = posix_rename,
    .path_unlink = posix_unlink,
    .dir_create = posix_mkdir,
    .dir_sync = posix_dir_sync,
    .dir_list = posix_dir_list,
    .dir_lock = posix_lock,
};

const struct qr_storage_fs *qr_storage_fs_posix(void)
{
    return &posix_fs;
}
