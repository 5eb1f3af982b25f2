/*
 * storage/memfs.c: in-memory file system with crash and fault modelling.
 *
 * Layer: storage (test and simulation support). Names map to inodes twice:
 * `cur` is what a running process sees, `dur` what survives a crash. Each
 * inode likewise holds current and durable bytes. Directory operations since
 * the last dir_sync are kept in order so a crash can keep a prefix of them.
 * Inodes live until the memfs is destroyed (tests are short), which keeps the
 * bookkeeping free of reference counts. All limits are fixed and named.
 */
#include "storage/memfs.h"

#include <errno.h>
#include <string.h>

#include "quorum/err.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/rng.h"

#define MEMFS_PATH_SIZE     256
#define MEMFS_NAMES_MAX     1024
#define MEMFS_FDS_MAX       128
#define MEMFS_FD_FIRST      3
#define MEMFS_OPS_MAX       1024
#define MEMFS_INODES_MAX    65536
#define MEMFS_SECTOR_SIZE   512
#define MEMFS_FILE_SIZE_MAX ((uint64_t)2 << 30)
#define MEMFS_OP_KINDS      11

struct memfs_inode {
    uint8_t *data;         /* Current bytes; capacity bytes allocated. */
    uint64_t size;         /* Current size. */
    uint64_t capacity;     /* Bytes allocated for data and durable. */
    uint64_t reserved;     /* Bytes reserved by file_allocate (counts toward space). */
    uint8_t *durable;      /* Bytes a crash keeps. */
    uint64_t durable_size; /* Size a crash keeps. */
    bool is_marked;        /* Scratch flag for space accounting. */
};

struct memfs_name {
    char path[MEMFS_PATH_SIZE];
    struct memfs_inode *cur; /* NULL: no such file now. */
    struct memfs_inode *dur; /* NULL: no such file after a crash. */
    bool is_dir;
    bool is_locked; /* dir_lock holds it. */
};

enum memfs_dir_op_kind { DIR_OP_LINK = 1, DIR_OP_RENAME = 2, DIR_OP_UNLINK = 3 };

struct memfs_dir_op {
    enum memfs_dir_op_kind kind;
    char from[MEMFS_PATH_SIZE]; /* LINK, UNLINK: the name. RENAME: the old name. */
    char to[MEMFS_PATH_SIZE];   /* RENAME: the new name. */
    struct memfs_inode *inode;  /* LINK: the new file. */
};

struct memfs_fd {
    bool in_use;
    bool is_writable;
    struct memfs_inode *inode;
    int lock_name; /* Index of the locked name, or -1. */
};

struct qr__memfs {
    struct qr_storage_fs fs;
    /* The tables grow on demand up to their maximum, so a fresh memfs is small (the
     * fuzzer creates one per input). */
    struct memfs_name *names;
    size_t names_count;
    size_t names_capacity;
    struct memfs_fd fds[MEMFS_FDS_MAX];
    struct memfs_dir_op *ops;
    size_t ops_count;
    size_t ops_capacity;
    struct memfs_inode **inodes;
    size_t inodes_count;
    size_t inodes_capacity;
    uint64_t counts[MEMFS_OP_KINDS];
    unsigned fail_mask;
    uint64_t fail_seen;
    uint64_t fail_nth;
    int fail_errno;
    bool fail_sticky;
    uint64_t capacity;
};

/* ---- helpers ---- */

/* Room for one more item in a growing table; false when at its maximum or out of memory. */
static bool table_grow(void **table, size_t count, size_t *capacity, size_t item_size, size_t max)
{
    if (count < *capacity) {
        return true;
    }
    if (count >= max) {
        return false;
    }
    size_t grown_capacity = *capacity == 0 ? 8 : *capacity * 2;
    grown_capacity = grown_capacity > max ? max : grown_capacity;
    void *grown = qr_realloc(*table, grown_capacity * item_size);
    if (grown == NULL) {
        return false;
    }
    *table = grown;
    *capacity = grown_capacity;
    return true;
}

static int op_bit_index(unsigned op)
{
    for (int i = 0; i < MEMFS_OP_KINDS; i++) {
        if (op == (1u << i)) {
            return i;
        }
    }
    QR_ASSERT(false);
    return 0;
}

/* Counts the operation and answers 0 or the injected -errno. */
static int memfs_op(struct qr__memfs *m, unsigned op)
{
    m->counts[op_bit_index(op)]++;
    if ((m->fail_mask & op) == 0 || m->fail_nth == 0) {
        return 0;
    }
    m->fail_seen++;
    if (m->fail_seen == m->fail_nth || (m->fail_sticky && m->fail_seen > m->fail_nth)) {
        return -m->fail_errno;
    }
    return 0;
}

static int name_find(const struct qr__memfs *m, const char *path)
{
    for (size_t i = 0; i < m->names_count; i++) {
        if (strcmp(m->names[i].path, path) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The name's slot, created empty (cur and dur NULL) when missing; -1 when full. */
static int name_slot(struct qr__memfs *m, const char *path)
{
    int i = name_find(m, path);
    if (i >= 0) {
        return i;
    }
    void *table = m->names;
    bool ok = table_grow(&table, m->names_count, &m->names_capacity, sizeof(m->names[0]),
                         MEMFS_NAMES_MAX);
    m->names = table;
    if (!ok || strlen(path) >= MEMFS_PATH_SIZE) {
        return -1;
    }
    struct memfs_name *n = &m->names[m->names_count];
    memset(n, 0, sizeof(*n));
    memcpy(n->path, path, strlen(path) + 1);
    return (int)m->names_count++;
}

static bool path_is_in_dir(const char *path, const char *dir)
{
    size_t len = strlen(dir);
    return strncmp(path, dir, len) == 0 && path[len] == '/' && strchr(path + len + 1, '/') == NULL;
}

static bool parent_exists(const struct qr__memfs *m, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
        return true; /* The root always exists. */
    }
    char parent[MEMFS_PATH_SIZE];
    size_t len = (size_t)(slash - path);
    if (len >= sizeof(parent)) {
        return false;
    }
    memcpy(parent, path, len);
    parent[len] = '\0';
    int i = name_find(m, parent);
    return i >= 0 && m->names[i].is_dir;
}

static struct memfs_inode *inode_new(struct qr__memfs *m)
{
    void *table = m->inodes;
    bool ok = table_grow(&table, m->inodes_count, &m->inodes_capacity, sizeof(struct memfs_inode *),
                         MEMFS_INODES_MAX);
    m->inodes = table;
    if (!ok) {
        return NULL;
    }
    struct memfs_inode *inode = qr_calloc(1, sizeof(*inode));
    if (inode != NULL) {
        m->inodes[m->inodes_count++] = inode;
    }
    return inode;
}

static int inode_reserve(struct memfs_inode *inode, uint64_t size)
{
    if (size <= inode->capacity) {
        return 0;
    }
    if (size > MEMFS_FILE_SIZE_MAX) {
        return -EFBIG;
    }
    uint64_t capacity = inode->capacity < 4096 ? 4096 : inode->capacity;
    while (capacity < size) {
        capacity *= 2;
    }
    uint8_t *data = qr_realloc(inode->data, (size_t)capacity);
    if (data == NULL) {
        return -ENOMEM;
    }
    memset(data + inode->capacity, 0, (size_t)(capacity - inode->capacity));
    inode->data = data;
    uint8_t *durable = qr_realloc(inode->durable, (size_t)capacity);
    if (durable == NULL) {
        return -ENOMEM; /* data keeps its bigger buffer; capacity stays the smaller one. */
    }
    memset(durable + inode->capacity, 0, (size_t)(capacity - inode->capacity));
    inode->durable = durable;
    inode->capacity = capacity;
    return 0;
}

static void inode_set_size(struct memfs_inode *inode, uint64_t size)
{
    QR_ASSERT(size <= inode->capacity || size <= inode->size);
    if (size < inode->size) {
        memset(inode->data + size, 0, (size_t)(inode->size - size)); /* Regrowth reads zeros. */
    }
    inode->size = size;
}

static uint64_t inode_space(const struct memfs_inode *inode)
{
    return inode->size > inode->reserved ? inode->size : inode->reserved;
}

static uint64_t space_used(struct qr__memfs *m)
{
    uint64_t used = 0;
    for (size_t i = 0; i < m->inodes_count; i++) {
        m->inodes[i]->is_marked = false;
    }
    for (size_t i = 0; i < m->names_count; i++) {
        struct memfs_inode *inode = m->names[i].cur;
        if (inode != NULL && !inode->is_marked) {
            inode->is_marked = true;
            used += inode_space(inode);
        }
    }
    for (size_t i = 0; i < MEMFS_FDS_MAX; i++) {
        struct memfs_inode *inode = m->fds[i].inode;
        if (m->fds[i].in_use && inode != NULL && !inode->is_marked) {
            inode->is_marked = true;
            used += inode_space(inode);
        }
    }
    return used;
}

/* Bytes a file may grow to from `space` bytes now, given the capacity. */
static uint64_t space_room(struct qr__memfs *m, const struct memfs_inode *inode)
{
    if (m->capacity == 0) {
        return UINT64_MAX;
    }
    uint64_t used = space_used(m);
    uint64_t others = used - inode_space(inode);
    return m->capacity > others ? m->capacity - others : 0;
}

static int dir_op_log(struct qr__memfs *m,
                      enum memfs_dir_op_kind kind,
                      const char *from,
                      const char *to,
                      struct memfs_inode *inode)
{
    void *table = m->ops;
    bool ok = table_grow(&table, m->ops_count, &m->ops_capacity, sizeof(m->ops[0]), MEMFS_OPS_MAX);
    m->ops = table;
    if (!ok) {
        return -ENOSPC; /* Too many unsynced directory changes for the model. */
    }
    struct memfs_dir_op *op = &m->ops[m->ops_count++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    memcpy(op->from, from, strlen(from) + 1);
    if (to != NULL) {
        memcpy(op->to, to, strlen(to) + 1);
    }
    op->inode = inode;
    return 0;
}

static struct memfs_fd *fd_get(struct qr__memfs *m, int fd)
{
    if (fd < MEMFS_FD_FIRST || fd >= MEMFS_FD_FIRST + MEMFS_FDS_MAX) {
        return NULL;
    }
    struct memfs_fd *f = &m->fds[fd - MEMFS_FD_FIRST];
    return f->in_use ? f : NULL;
}

static int fd_new(struct qr__memfs *m, struct memfs_inode *inode, bool is_writable, int *fd_out)
{
    for (int i = 0; i < MEMFS_FDS_MAX; i++) {
        if (!m->fds[i].in_use) {
            m->fds[i] = (struct memfs_fd){true, is_writable, inode, -1};
            *fd_out = i + MEMFS_FD_FIRST;
            return 0;
        }
    }
    return -EMFILE;
}

/* ---- the seam ---- */

static int mem_open(void *ctx, const char *path, enum qr_storage_fs_mode mode, int *fd_out)
{
    struct qr__memfs *m = ctx;
    bool is_create = mode == QR_STORAGE_FS_CREATE;
    int rv = memfs_op(m, is_create ? QR__MEMFS_OP_CREATE : QR__MEMFS_OP_OPEN);
    if (rv != 0) {
        return rv;
    }
    int i = name_find(m, path);
    if (!is_create) {
        if (i < 0 || m->names[i].cur == NULL || m->names[i].is_dir) {
            return -ENOENT;
        }
        return fd_new(m, m->names[i].cur, mode == QR_STORAGE_FS_WRITE, fd_out);
    }
    if (i >= 0 && (m->names[i].cur != NULL || m->names[i].is_dir)) {
        return -EEXIST;
    }
    if (!parent_exists(m, path)) {
        return -ENOENT;
    }
    i = name_slot(m, path);
    struct memfs_inode *inode = i >= 0 ? inode_new(m) : NULL;
    if (inode == NULL) {
        return -ENOSPC;
    }
    rv = dir_op_log(m, DIR_OP_LINK, path, NULL, inode);
    if (rv != 0) {
        return rv;
    }
    m->names[i].cur = inode;
    return fd_new(m, inode, true, fd_out);
}

static int mem_close(void *ctx, int fd)
{
    struct qr__memfs *m = ctx;
    struct memfs_fd *f = fd_get(m, fd);
    if (f == NULL) {
        return -EBADF;
    }
    if (f->lock_name >= 0) {
        m->names[f->lock_name].is_locked = false;
    }
    f->in_use = false;
    return 0;
}

static int mem_read(void *ctx, int fd, void *buf, size_t size, uint64_t offset, size_t *read_out)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_READ);
    struct memfs_fd *f = fd_get(m, fd);
    if (rv != 0 || f == NULL) {
        return rv != 0 ? rv : -EBADF;
    }
    size_t n = 0;
    if (offset < f->inode->size) {
        uint64_t left = f->inode->size - offset;
        n = left < size ? (size_t)left : size;
        memcpy(buf, f->inode->data + offset, n);
    }
    *read_out = n;
    return 0;
}

static int mem_write(void *ctx, int fd, const void *buf, size_t size, uint64_t offset)
{
    struct qr__memfs *m = ctx;
    struct memfs_fd *f = fd_get(m, fd);
    if (f == NULL || !f->is_writable) {
        return -EBADF;
    }
    int injected = memfs_op(m, QR__MEMFS_OP_WRITE);
    size_t n = injected != 0 ? size / 2 : size;
    int rv = injected;
    uint64_t room = space_room(m, f->inode);
    if (offset + n > room && offset + n > inode_space(f->inode)) {
        uint64_t fit = room > offset ? room - offset : 0;
        n = fit < n ? (size_t)fit : n;
        rv = -ENOSPC;
    }
    if (offset + n > MEMFS_FILE_SIZE_MAX) {
        return -EFBIG;
    }
    int grow = inode_reserve(f->inode, offset + n);
    if (grow != 0) {
        return grow;
    }
    memcpy(f->inode->data + offset, buf, n);
    if (offset + n > f->inode->size) {
        inode_set_size(f->inode, offset + n);
    }
    return rv;
}

static int mem_sync(void *ctx, int fd)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_SYNC);
    struct memfs_fd *f = fd_get(m, fd);
    if (rv != 0 || f == NULL) {
        return rv != 0 ? rv : -EBADF;
    }
    struct memfs_inode *inode = f->inode;
    if (inode->capacity > 0) {
        memcpy(inode->durable, inode->data, (size_t)inode->capacity);
    }
    inode->durable_size = inode->size;
    return 0;
}

static int mem_truncate(void *ctx, int fd, uint64_t size)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_TRUNCATE);
    struct memfs_fd *f = fd_get(m, fd);
    if (rv != 0 || f == NULL || !f->is_writable) {
        return rv != 0 ? rv : -EBADF;
    }
    /* Growing by truncate makes a hole: it takes no space until written. */
    rv = inode_reserve(f->inode, size);
    if (rv != 0) {
        return rv;
    }
    inode_set_size(f->inode, size);
    if (f->inode->reserved > size) {
        f->inode->reserved = size;
    }
    return 0;
}

static int mem_allocate(void *ctx, int fd, uint64_t offset, uint64_t size)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_ALLOCATE);
    struct memfs_fd *f = fd_get(m, fd);
    if (rv != 0 || f == NULL || !f->is_writable) {
        return rv != 0 ? rv : -EBADF;
    }
    uint64_t end = offset + size;
    if (end > space_room(m, f->inode) && end > inode_space(f->inode)) {
        return -ENOSPC;
    }
    rv = inode_reserve(f->inode, end);
    if (rv != 0) {
        return rv;
    }
    if (end > f->inode->reserved) {
        f->inode->reserved = end;
    }
    if (end > f->inode->size) {
        inode_set_size(f->inode, end);
    }
    return 0;
}

static int mem_size(void *ctx, int fd, uint64_t *size_out)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_READ);
    struct memfs_fd *f = fd_get(m, fd);
    if (rv != 0 || f == NULL) {
        return rv != 0 ? rv : -EBADF;
    }
    *size_out = f->inode->size;
    return 0;
}

static int mem_rename(void *ctx, const char *from, const char *to)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_RENAME);
    if (rv != 0) {
        return rv;
    }
    int a = name_find(m, from);
    if (a < 0 || m->names[a].cur == NULL) {
        return -ENOENT;
    }
    int b = name_slot(m, to);
    if (b < 0) {
        return -ENOSPC;
    }
    rv = dir_op_log(m, DIR_OP_RENAME, from, to, NULL);
    if (rv != 0) {
        return rv;
    }
    m->names[b].cur = m->names[a].cur;
    m->names[a].cur = NULL;
    return 0;
}

static int mem_unlink(void *ctx, const char *path)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_UNLINK);
    if (rv != 0) {
        return rv;
    }
    int i = name_find(m, path);
    if (i < 0 || m->names[i].cur == NULL) {
        return -ENOENT;
    }
    rv = dir_op_log(m, DIR_OP_UNLINK, path, NULL, NULL);
    if (rv != 0) {
        return rv;
    }
    m->names[i].cur = NULL;
    return 0;
}

static int mem_mkdir(void *ctx, const char *path)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_CREATE);
    if (rv != 0) {
        return rv;
    }
    int i = name_find(m, path);
    if (i >= 0 && (m->names[i].is_dir || m->names[i].cur != NULL)) {
        return -EEXIST;
    }
    if (!parent_exists(m, path)) {
        return -ENOENT;
    }
    i = name_slot(m, path);
    if (i < 0) {
        return -ENOSPC;
    }
    m->names[i].is_dir = true; /* Directories are modelled as durable at once. */
    return 0;
}

static int mem_dir_sync(void *ctx, const char *path)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_DIR_SYNC);
    if (rv != 0) {
        return rv;
    }
    int d = name_find(m, path);
    if (d < 0 || !m->names[d].is_dir) {
        return -ENOENT;
    }
    for (size_t i = 0; i < m->names_count; i++) {
        if (path_is_in_dir(m->names[i].path, path)) {
            m->names[i].dur = m->names[i].cur;
        }
    }
    /* Operations on this directory are durable now: drop them from the pending log. */
    size_t kept = 0;
    for (size_t i = 0; i < m->ops_count; i++) {
        if (!path_is_in_dir(m->ops[i].from, path)) {
            m->ops[kept++] = m->ops[i];
        }
    }
    m->ops_count = kept;
    return 0;
}

static int mem_dir_list(void *ctx, const char *path, qr_storage_fs_list_cb cb, void *cb_ctx)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_READ);
    if (rv != 0) {
        return rv;
    }
    int d = name_find(m, path);
    if (d < 0 || !m->names[d].is_dir) {
        return -ENOENT;
    }
    size_t prefix = strlen(path) + 1;
    for (size_t i = 0; i < m->names_count; i++) {
        if (m->names[i].cur != NULL && path_is_in_dir(m->names[i].path, path)) {
            rv = cb(cb_ctx, m->names[i].path + prefix);
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

static int mem_lock(void *ctx, const char *path, int *fd_out)
{
    struct qr__memfs *m = ctx;
    int rv = memfs_op(m, QR__MEMFS_OP_LOCK);
    if (rv != 0) {
        return rv;
    }
    int i = name_find(m, path);
    if (i < 0 || m->names[i].cur == NULL) {
        int fd = -1;
        rv = mem_open(ctx, path, QR_STORAGE_FS_CREATE, &fd);
        if (rv != 0) {
            return rv;
        }
        (void)mem_close(ctx, fd); /* Only the name was wanted. */
        i = name_find(m, path);
    }
    if (m->names[i].is_locked) {
        return -EAGAIN;
    }
    rv = fd_new(m, m->names[i].cur, false, fd_out);
    if (rv == 0) {
        m->names[i].is_locked = true;
        m->fds[*fd_out - MEMFS_FD_FIRST].lock_name = i;
    }
    return rv;
}

/* ---- lifecycle, faults, crashes ---- */

int qr__memfs_create(struct qr__memfs **memfs_out)
{
    struct qr__memfs *m = qr_calloc(1, sizeof(*m));
    if (m == NULL) {
        return QR_ENOMEM;
    }
    m->fs = (struct qr_storage_fs){
        .ctx = m,
        .file_open = mem_open,
        .file_close = mem_close,
        .file_read = mem_read,
        .file_write = mem_write,
        .file_sync = mem_sync,
        .file_truncate = mem_truncate,
        .file_allocate = mem_allocate,
        .file_size = mem_size,
        .path_rename = mem_rename,
        .path_unlink = mem_unlink,
        .dir_create = mem_mkdir,
        .dir_sync = mem_dir_sync,
        .dir_list = mem_dir_list,
        .dir_lock = mem_lock,
    };
    *memfs_out = m;
    return 0;
}

void qr__memfs_destroy(struct qr__memfs *memfs)
{
    if (memfs == NULL) {
        return;
    }
    for (size_t i = 0; i < memfs->inodes_count; i++) {
        qr_free(memfs->inodes[i]->data);
        qr_free(memfs->inodes[i]->durable);
        qr_free(memfs->inodes[i]);
    }
    qr_free(memfs->inodes);
    qr_free(memfs->ops);
    qr_free(memfs->names);
    qr_free(memfs);
}

const struct qr_storage_fs *qr__memfs_fs(struct qr__memfs *memfs)
{
    return &memfs->fs;
}

void qr__memfs_fail(
    struct qr__memfs *memfs, unsigned ops_mask, uint64_t nth, int err_value, bool sticky)
{
    memfs->fail_mask = ops_mask;
    memfs->fail_nth = nth;
    memfs->fail_seen = 0;
    memfs->fail_errno = err_value;
    memfs->fail_sticky = sticky;
}

uint64_t qr__memfs_ops_count(const struct qr__memfs *memfs, unsigned ops_mask)
{
    uint64_t count = 0;
    for (int i = 0; i < MEMFS_OP_KINDS; i++) {
        if ((ops_mask & (1u << i)) != 0) {
            count += memfs->counts[i];
        }
    }
    return count;
}

void qr__memfs_set_capacity(struct qr__memfs *memfs, uint64_t capacity)
{
    memfs->capacity = capacity;
}

uint64_t qr__memfs_used(const struct qr__memfs *memfs)
{
    /* space_used only flips scratch marks; the answer does not change the file system. */
    return space_used((struct qr__memfs *)(uintptr_t)memfs);
}

/* Replays the first `count` pending directory operations onto the durable names. */
static void crash_apply_dir_ops(struct qr__memfs *m, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const struct memfs_dir_op *op = &m->ops[i];
        int a = name_find(m, op->from);
        QR_ASSERT(a >= 0);
        if (op->kind == DIR_OP_LINK) {
            m->names[a].dur = op->inode;
        } else if (op->kind == DIR_OP_UNLINK) {
            m->names[a].dur = NULL;
        } else {
            int b = name_find(m, op->to);
            QR_ASSERT(b >= 0);
            m->names[b].dur = m->names[a].dur;
            m->names[a].dur = NULL;
        }
    }
}

/* Resolves one inode's unsynced bytes: keep, lose, or a random mix by sector. */
static void crash_inode(struct memfs_inode *inode, enum qr__memfs_crash mode, struct qr_rng *rng)
{
    if (mode == QR__MEMFS_CRASH_KEEP) {
        if (inode->capacity > 0) {
            memcpy(inode->durable, inode->data, (size_t)inode->capacity);
        }
        inode->durable_size = inode->size;
    } else if (mode == QR__MEMFS_CRASH_TEAR) {
        uint64_t end = inode->size > inode->durable_size ? inode->size : inode->durable_size;
        for (uint64_t s = 0; s < end; s += MEMFS_SECTOR_SIZE) {
            uint64_t len = end - s < MEMFS_SECTOR_SIZE ? end - s : MEMFS_SECTOR_SIZE;
            if (qr__rng_chance(rng, 1, 2)) {
                memcpy(inode->durable + s, inode->data + s, (size_t)len);
            }
        }
        if (qr__rng_chance(rng, 1, 2)) {
            inode->durable_size = inode->size;
        }
    }
    /* The durable copy is what the restarted process sees. */
    if (inode->durable_size < inode->capacity) {
        memset(inode->durable + inode->durable_size, 0,
               (size_t)(inode->capacity - inode->durable_size));
    }
    if (inode->capacity > 0) {
        memcpy(inode->data, inode->durable, (size_t)inode->capacity);
    }
    inode->size = inode->durable_size;
    inode->reserved = inode->reserved < inode->size ? inode->reserved : inode->size;
}

void qr__memfs_crash(struct qr__memfs *memfs, enum qr__memfs_crash mode, uint64_t seed)
{
    struct qr__memfs *m = memfs;
    struct qr_rng rng;
    qr__rng_seed(&rng, seed);
    size_t keep = 0;
    if (mode == QR__MEMFS_CRASH_KEEP) {
        keep = m->ops_count;
    } else if (mode == QR__MEMFS_CRASH_TEAR) {
        keep = (size_t)qr__rng_below(&rng, m->ops_count + 1);
    }
    crash_apply_dir_ops(m, keep);
    m->ops_count = 0;
    for (size_t i = 0; i < m->names_count; i++) {
        m->names[i].cur = m->names[i].dur;
        m->names[i].is_locked = false;
    }
    for (size_t i = 0; i < m->inodes_count; i++) {
        crash_inode(m->inodes[i], mode, &rng);
    }
    memset(m->fds, 0, sizeof(m->fds));
    m->fail_nth = 0;
}

/* ---- test access ---- */

static struct memfs_inode *inode_at(const struct qr__memfs *m, const char *path)
{
    int i = name_find(m, path);
    return i >= 0 ? m->names[i].cur : NULL;
}

bool qr__memfs_exists(const struct qr__memfs *memfs, const char *path)
{
    return inode_at(memfs, path) != NULL;
}

int qr__memfs_file_size(const struct qr__memfs *memfs, const char *path, uint64_t *size_out)
{
    struct memfs_inode *inode = inode_at(memfs, path);
    if (inode == NULL) {
        return -ENOENT;
    }
    *size_out = inode->size;
    return 0;
}

int qr__memfs_corrupt(struct qr__memfs *memfs, const char *path, uint64_t offset, uint8_t mask)
{
    struct memfs_inode *inode = inode_at(memfs, path);
    if (inode == NULL) {
        return -ENOENT;
    }
    if (offset >= inode->size || offset >= inode->durable_size) {
        return -EINVAL;
    }
    inode->data[offset] ^= mask;
    inode->durable[offset] ^= mask;
    return 0;
}

int qr__memfs_cut(struct qr__memfs *memfs, const char *path, uint64_t size)
{
    struct memfs_inode *inode = inode_at(memfs, path);
    if (inode == NULL) {
        return -ENOENT;
    }
    if (size > inode->size) {
        return -EINVAL;
    }
    inode_set_size(inode, size);
    if (inode->durable_size > size) {
        memset(inode->durable + size, 0, (size_t)(inode->durable_size - size));
        inode->durable_size = size;
    }
    inode->reserved = inode->reserved < size ? inode->reserved : size;
    return 0;
}

int qr__memfs_remove(struct qr__memfs *memfs, const char *path)
{
    int i = name_find(memfs, path);
    if (i < 0 || memfs->names[i].cur == NULL) {
        return -ENOENT;
    }
    memfs->names[i].cur = NULL;
    memfs->names[i].dur = NULL;
    return 0;
}
