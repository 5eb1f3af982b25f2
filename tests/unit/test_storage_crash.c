/*
 * Crash-consistency and fault-injection tests of storage/.
 *
 * 1. A log written by a real workload (a three-node cluster of consensus cores
 *    with an election, an isolated leader whose suffix is later replaced, and a
 *    new leader), on the real disk: a crash at every byte offset of the last
 *    batch (the file cut there) must recover exactly the batches before it, and
 *    a bit flipped at a random point of any earlier batch must be refused with
 *    QR_ECORRUPT naming the file and the offset.
 * 2. A workload of appends, truncations, hard-state changes, local snapshots
 *    with compaction and installed snapshots, on the in-memory file system: a
 *    crash at every write point (each mutating file operation in turn), with
 *    unsynced data lost, kept, or torn at random, must recover every
 *    acknowledged write and nothing that was never written; the log must then
 *    take new writes and recover them again.
 * 3. The same workload with ENOSPC or EIO injected at every call site in turn,
 *    once or for good: nothing acknowledged is lost and nothing corrupt is
 *    accepted after the node "restarts" (closes and reopens the storage).
 * Each test prints how many cases it checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quorum/storage.h"
#include "storage/format.h"
#include "storage/memfs.h"
#include "test_alloc.h"
#include "test_cluster.h"
#include "util/crc32c.h"
#include "util/rng.h"

#define CLUSTER_ID 11
#define NODE_ID    1
#define MEM_DIR    "/n1"

/* snprintf that insists the result fits (a cut path would test the wrong file). */
__attribute__((format(printf, 3, 4))) static void
path_printf(char *buf, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(buf, size, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= size) {
        abort();
    }
}

/* ==== part 1: a real workload on the real disk ==================================== */

#define RECORDED_MAX 512

/* One qr_storage_write of the mirrored node, kept to compute what recovery must return. */
struct recorded {
    struct qr_entry *entries; /* Deep copies. */
    size_t entries_count;
    bool has_hard_state;
    struct qr_hard_state hard_state;
};

struct mirror {
    struct qr_storage *s;
    struct recorded writes[RECORDED_MAX];
    size_t writes_count;
};

static void mirror_write(struct mirror *m, const struct tc_node *n)
{
    struct qr_storage_batch b = {.entries = n->staged,
                                 .entries_count = n->staged_count,
                                 .has_hard_state = n->staged_has_hard_state,
                                 .hard_state = n->staged_hard_state};
    assert_int_equal(qr_storage_write(m->s, &b), 0);
    assert_true(m->writes_count < RECORDED_MAX);
    struct recorded *r = &m->writes[m->writes_count++];
    r->entries = calloc(n->staged_count + 1, sizeof(*r->entries));
    assert_non_null(r->entries);
    for (size_t i = 0; i < n->staged_count; i++) {
        r->entries[i] = n->staged[i];
        r->entries[i].data.base = malloc(n->staged[i].data.len + 1);
        assert_non_null(r->entries[i].data.base);
        memcpy(r->entries[i].data.base, n->staged[i].data.base, n->staged[i].data.len);
    }
    r->entries_count = n->staged_count;
    r->has_hard_state = n->staged_has_hard_state;
    r->hard_state = n->staged_hard_state;
}

/* Drains and delivers until quiet, persisting node 1's batches through the storage. */
static void pump(struct tc_cluster *c, struct mirror *m)
{
    for (int round = 0; round < 400; round++) {
        tc_drain(c);
        struct tc_node *n = tc_node(c, 1);
        bool persisted = false;
        if (n->pending_seq != 0) {
            mirror_write(m, n);
            tc_persist(c, 1);
            persisted = true;
        }
        if (tc_deliver(c) == 0 && !persisted) {
            return;
        }
    }
}

static void tick(struct tc_cluster *c, struct mirror *m, int ticks)
{
    for (int t = 0; t < ticks; t++) {
        for (size_t i = 0; i < c->nodes_count; i++) {
            if (!c->nodes[i].down) {
                qr_core_tick(c->nodes[i].core);
            }
        }
        pump(c, m);
    }
}

static void propose(struct tc_cluster *c, struct mirror *m, qr_node_id id, int count, int salt)
{
    for (int i = 0; i < count; i++) {
        char text[96];
        /* Sizes vary so batches and records have many shapes. */
        int len =
            snprintf(text, sizeof(text), "set key%d %0*d", salt * 1000 + i, 1 + (i * 7) % 60, i);
        assert_true(len > 0);
        (void)tc_propose(c, id, text); /* Refusals (no leader) are fine: part of the workload. */
        if (i % 3 == 2) {
            pump(c, m);
        }
    }
    pump(c, m);
}

/* Runs the cluster workload, persisting node 1 through m->s. */
static void run_cluster_workload(struct mirror *m)
{
    static struct tc_cluster c;
    tc_init(&c, 3, 3);
    tc_node(&c, 1)->auto_persist = false;
    qr_core_campaign(tc_node(&c, 1)->core);
    pump(&c, m);
    propose(&c, m, 1, 100, 1);
    /* Node 1, leader, is cut off and appends entries that will never commit. */
    tc_isolate(&c, 1, true);
    propose(&c, m, 1, 20, 2);
    qr_core_campaign(tc_node(&c, 3)->core);
    pump(&c, m);
    tick(&c, m, 30);
    propose(&c, m, 3, 30, 3);
    /* Node 1 returns: its uncommitted suffix is replaced by node 3's log. */
    tc_isolate(&c, 1, false);
    tick(&c, m, 40);
    propose(&c, m, 3, 30, 4);
    tick(&c, m, 5);
    tc_close(&c);
}

/* The log after the first `count` recorded writes. */
static size_t expected_log(const struct mirror *m,
                           size_t count,
                           const struct qr_entry **log,
                           struct qr_hard_state *hs)
{
    size_t len = 0;
    memset(hs, 0, sizeof(*hs));
    for (size_t w = 0; w < count; w++) {
        const struct recorded *r = &m->writes[w];
        if (r->entries_count > 0) {
            len = (size_t)(r->entries[0].index - 1);
            for (size_t i = 0; i < r->entries_count; i++) {
                log[len++] = &r->entries[i];
            }
        }
        if (r->has_hard_state) {
            *hs = r->hard_state;
        }
    }
    return len;
}

static void
assert_recovered_log(const struct mirror *m, size_t writes, const struct qr_storage_recovered *rec)
{
    static const struct qr_entry *log[65536];
    struct qr_hard_state hs;
    size_t len = expected_log(m, writes, log, &hs);
    assert_int_equal(rec->entries_count, len);
    for (size_t i = 0; i < len; i++) {
        const struct qr_entry *got = &rec->entries[i];
        assert_int_equal(got->index, log[i]->index);
        assert_int_equal(got->term, log[i]->term);
        assert_int_equal(got->type, log[i]->type);
        assert_int_equal(got->data.len, log[i]->data.len);
        if (got->data.len > 0) {
            assert_memory_equal(got->data.base, log[i]->data.base, got->data.len);
        }
    }
    assert_memory_equal(&rec->hard_state, &hs, sizeof(hs));
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            char path[600];
            path_printf(path, sizeof(path), "%s/%s", dir, e->d_name);
            (void)unlink(path);
        }
    }
    (void)closedir(d);
    (void)rmdir(dir);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    static char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        assert_int_equal(fwrite(buf, 1, n, out), n);
    }
    (void)fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* Replaces `to` with a copy of every file of `from` (the pristine log). */
static void copy_dir(const char *from, const char *to)
{
    remove_tree(to);
    assert_int_equal(mkdir(to, 0755), 0);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char a[600];
        char b[600];
        path_printf(a, sizeof(a), "%s/%s", from, e->d_name);
        path_printf(b, sizeof(b), "%s/%s", to, e->d_name);
        copy_file(a, b);
    }
    (void)closedir(d);
}

static size_t file_read_all(const char *path, uint8_t *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size, f);
    (void)fclose(f);
    return n;
}

/* One framed batch found in a segment file. */
struct found_batch {
    uint64_t seq;   /* Segment number. */
    uint64_t start; /* Offset of its header. */
    uint64_t end;   /* Offset after its body. */
};

/* Lists every batch of every segment, in order. */
static size_t find_batches(const char *dir, uint64_t segments, struct found_batch *out, size_t max)
{
    static uint8_t buf[1 << 20];
    size_t count = 0;
    for (uint64_t seq = 1; seq <= segments; seq++) {
        char path[600];
        path_printf(path, sizeof(path), "%s/wal-%020llu", dir, (unsigned long long)seq);
        size_t size = file_read_all(path, buf, sizeof(buf));
        uint64_t off = QR__STORAGE_SEGMENT_HEADER_SIZE;
        struct qr__storage_batch_header h;
        while (qr__storage_batch_check(buf + off, size - off, &h) == QR__BATCH_OK) {
            assert_true(count < max);
            uint64_t end = off + QR__STORAGE_BATCH_HEADER_SIZE + h.body_size;
            out[count++] = (struct found_batch){seq, off, end};
            off = end;
        }
    }
    return count;
}

static void test_crash_at_every_byte_of_the_last_batch_and_flips_in_earlier_ones(void **state)
{
    (void)state;
    char base[] = "/tmp/qr_storage_crash_XXXXXX";
    assert_non_null(mkdtemp(base));
    char pristine[600];
    char work[600];
    path_printf(pristine, sizeof(pristine), "%s/pristine", base);
    path_printf(work, sizeof(work), "%s/work", base);
    static struct mirror m;
    memset(&m, 0, sizeof(m));
    struct qr_storage_opts opts;
    qr_storage_opts_default(&opts, CLUSTER_ID, NODE_ID);
    opts.create = true;
    opts.segment_size = 4096; /* Many segments, so closed ones are exercised too. */
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_storage_open(pristine, &opts, &m.s, &rec, errmsg), 0);
    run_cluster_workload(&m);
    struct qr_storage_status st;
    qr_storage_status(m.s, &st);
    qr_storage_close(m.s);
    assert_true(m.writes_count > 20);
    assert_true(st.segments_count >= 3);

    /* Recovery is checked, not the disk: skip the fsyncs recovery would do for real. */
    opts.sync = QR_STORAGE_SYNC_NONE;
    static struct found_batch batches[4096];
    size_t count = find_batches(pristine, st.segments_count, batches, 4096);
    struct found_batch last = batches[count - 1];
    char last_path[700];
    path_printf(last_path, sizeof(last_path), "%s/wal-%020llu", work, (unsigned long long)last.seq);

    /* Every byte offset of the last batch, from its first byte to just after its end. */
    size_t cut_cases = 0;
    for (uint64_t cut = last.start; cut <= last.end; cut++) {
        copy_dir(pristine, work);
        assert_int_equal(truncate(last_path, (off_t)cut), 0);
        struct qr_storage *s = NULL;
        assert_int_equal(qr_storage_open(work, &opts, &s, &rec, errmsg), 0);
        assert_recovered_log(&m, cut == last.end ? m.writes_count : m.writes_count - 1, &rec);
        qr_storage_close(s);
        cut_cases++;
    }

    /* Random bit flips inside earlier batches (seal batches of closed segments included). */
    struct qr_rng rng;
    qr__rng_seed(&rng, 20240601);
    size_t flip_cases = 0;
    for (int round = 0; round < 600; round++) {
        const struct found_batch *b = &batches[qr__rng_below(&rng, count - 1)];
        uint64_t offset = b->start + qr__rng_below(&rng, b->end - b->start);
        char path[700];
        path_printf(path, sizeof(path), "%s/wal-%020llu", work, (unsigned long long)b->seq);
        copy_dir(pristine, work);
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, (long)offset, SEEK_SET), 0);
        int byte = fgetc(f);
        assert_true(byte >= 0);
        assert_int_equal(fseek(f, (long)offset, SEEK_SET), 0);
        assert_true(fputc(byte ^ (1 << qr__rng_below(&rng, 8)), f) >= 0);
        assert_int_equal(fclose(f), 0);
        struct qr_storage *s = NULL;
        int rv = qr_storage_open(work, &opts, &s, &rec, errmsg);
        assert_int_equal(rv, QR_ECORRUPT);
        assert_null(s);
        assert_non_null(strstr(errmsg, "offset"));
        char name[64];
        path_printf(name, sizeof(name), "wal-%020llu", (unsigned long long)b->seq);
        assert_non_null(strstr(errmsg, name));
        flip_cases++;
    }
    print_message("storage crash: real workload of %zu writes in %llu segments (%zu batches): "
                  "%zu torn-tail cuts recovered, %zu bit flips refused\n",
                  m.writes_count, (unsigned long long)st.segments_count, count, cut_cases,
                  flip_cases);
    for (size_t w = 0; w < m.writes_count; w++) {
        for (size_t i = 0; i < m.writes[w].entries_count; i++) {
            free(m.writes[w].entries[i].data.base);
        }
        free(m.writes[w].entries);
    }
    remove_tree(work);
    remove_tree(pristine);
    remove_tree(base);
}

/* ==== parts 2 and 3: a model workload on the in-memory file system ================ */

#define MODEL_MAX  4096
#define OPS_COUNT  48
#define OP_ENTRIES 64

struct model_entry {
    qr_term term;
    uint32_t salt;
};

/* What the storage must hold. Entries at or below the snapshot index are not compared. */
struct model {
    bool has_snapshot;
    qr_index snap_index;
    qr_term snap_term;
    uint64_t snap_size;
    qr_index last;
    struct model_entry e[MODEL_MAX + 1]; /* By index. */
    struct qr_hard_state hs;
};

enum op_kind { OP_APPEND = 1, OP_TRUNCATE, OP_HARD_STATE, OP_SNAPSHOT, OP_INSTALL };

struct op {
    enum op_kind kind;
    qr_index first; /* Entries first..first+count-1, with term and salt. */
    size_t count;
    qr_term term;
    uint32_t salt;
    bool has_hs;
    struct qr_hard_state hs;
    qr_index snap_index; /* SNAPSHOT, INSTALL. */
    qr_term snap_term;
    uint64_t snap_size;
    qr_index compact_upto; /* SNAPSHOT. */
};

static void payload(qr_index index, qr_term term, uint32_t salt, uint8_t *buf, size_t *len)
{
    *len = (size_t)((index * 7 + salt) % 50) + 1;
    for (size_t i = 0; i < *len; i++) {
        buf[i] = (uint8_t)(index * 131 + term * 17 + salt * 3 + i);
    }
}

/* The next operation, from its number and the current state only (so it can be redone). */
static void op_make(const struct model *m, size_t k, struct op *op)
{
    memset(op, 0, sizeof(*op));
    qr_term term = m->hs.term > 0 ? m->hs.term : 1;
    qr_index floor = m->has_snapshot ? m->snap_index : 0;
    op->salt = (uint32_t)(k * 7919);
    op->has_hs = true;
    if (k % 16 == 8 && m->last > floor + 4) {
        op->kind = OP_SNAPSHOT;
        op->snap_index = m->last - 1;
        op->snap_term = m->e[m->last - 1].term;
        op->snap_size = 500 + (k * 37) % 3000;
        op->compact_upto = op->snap_index - 2;
        op->has_hs = false;
        return;
    }
    if (k % 16 == 14) {
        op->kind = OP_INSTALL;
        op->snap_index = (m->last > floor ? m->last : floor) + 7;
        op->snap_term = term + 1;
        op->snap_size = 200 + k;
        op->first = op->snap_index + 1;
        op->count = 3;
        op->term = term + 1;
        op->hs = (struct qr_hard_state){term + 1, 2, op->snap_index};
        return;
    }
    if (k % 16 == 2) {
        op->kind = OP_HARD_STATE;
        op->hs = (struct qr_hard_state){term + 1, 3, m->hs.commit};
        return;
    }
    if ((k % 16 == 5 || k % 16 == 11) && m->last > floor + 3) {
        op->kind = OP_TRUNCATE;
        op->first = m->last - 2;
        op->count = 2 + k % 4;
        op->term = term + 1;
        op->hs = (struct qr_hard_state){term + 1, 1, floor};
        return;
    }
    op->kind = OP_APPEND;
    op->first = (m->last > floor ? m->last : floor) + 1;
    /* Mostly small batches; every 16th is large enough to be split into several framed
     * batches (and to cross a segment boundary), all under one fdatasync. */
    op->count = k % 16 == 12 ? OP_ENTRIES : 1 + k % 8;
    op->term = term;
    op->hs = (struct qr_hard_state){term, m->hs.vote, op->first - 1};
}

/* Model after the op's entries [0, count) and (when whole) its hard state. */
static void model_apply_entries(struct model *m, const struct op *op, size_t count, bool whole)
{
    for (size_t i = 0; i < count; i++) {
        m->e[op->first + i] = (struct model_entry){op->term, op->salt};
    }
    if (count > 0) {
        m->last = op->first + count - 1;
    }
    if (whole && op->has_hs) {
        m->hs = op->hs;
    }
}

static void model_set_snapshot(struct model *m, const struct op *op)
{
    m->has_snapshot = true;
    m->snap_index = op->snap_index;
    m->snap_term = op->snap_term;
    m->snap_size = op->snap_size;
    if (op->kind == OP_INSTALL) {
        m->last = op->snap_index; /* The log is replaced by the snapshot. */
    }
}

static int op_write_entries(struct qr_storage *s,
                            const struct op *op,
                            bool with_snapshot,
                            const struct qr_snapshot_meta *meta)
{
    static struct qr_entry entries[OP_ENTRIES];
    static uint8_t data[OP_ENTRIES][64];
    for (size_t i = 0; i < op->count; i++) {
        size_t len = 0;
        payload(op->first + i, op->term, op->salt, data[i], &len);
        entries[i] = (struct qr_entry){.term = op->term,
                                       .index = op->first + i,
                                       .type = QR_ENTRY_NORMAL,
                                       .data = {data[i], len}};
    }
    struct qr_storage_batch b = {.snapshot = with_snapshot ? meta : NULL,
                                 .entries = entries,
                                 .entries_count = op->count,
                                 .has_hard_state = op->has_hs,
                                 .hard_state = op->hs};
    if (with_snapshot || op->count < 2 || op->first % 2 != 0) {
        return qr_storage_write(s, &b);
    }
    /* Every other op goes as a group of two batches with one fdatasync, as a node's writer
     * thread writes the persist batches it finds queued: what survives a crash must still
     * be a prefix of the op's entries, then its hard state. */
    size_t half = op->count / 2;
    struct qr_storage_batch group[2] = {{.entries = entries, .entries_count = half}, b};
    group[1].entries = entries + half;
    group[1].entries_count = op->count - half;
    return qr_storage_write_group(s, group, 2);
}

static void snapshot_meta_of(const struct op *op, struct qr_snapshot_meta *meta)
{
    memset(meta, 0, sizeof(*meta));
    meta->index = op->snap_index;
    meta->term = op->snap_term;
    meta->size = op->snap_size;
    meta->config.voters_count = 3;
    meta->config.voters[0] = 1;
    meta->config.voters[1] = 2;
    meta->config.voters[2] = 3;
    uint32_t crc = 0;
    for (uint64_t i = 0; i < op->snap_size; i++) {
        uint8_t byte = (uint8_t)(i * 5 + op->snap_index);
        crc = qr__crc32c(crc, &byte, 1);
    }
    meta->crc = crc;
}

static int op_snapshot_write(struct qr_storage *s, const struct op *op)
{
    struct qr_snapshot_meta meta;
    snapshot_meta_of(op, &meta);
    enum qr_storage_snapshot_source source =
        op->kind == OP_INSTALL ? QR_STORAGE_SNAPSHOT_RECEIVED : QR_STORAGE_SNAPSHOT_LOCAL;
    struct qr_storage_snapshot_writer *w = NULL;
    int rv = qr_storage_snapshot_begin(s, &meta, source, &w);
    if (rv != 0) {
        return rv;
    }
    uint8_t chunk[700];
    for (uint64_t off = 0; off < op->snap_size; off += sizeof(chunk)) {
        size_t n =
            op->snap_size - off < sizeof(chunk) ? (size_t)(op->snap_size - off) : sizeof(chunk);
        for (size_t i = 0; i < n; i++) {
            chunk[i] = (uint8_t)((off + i) * 5 + op->snap_index);
        }
        rv = qr_storage_snapshot_write(w, off, chunk, n);
        if (rv != 0) {
            qr_storage_snapshot_abort(w);
            return rv;
        }
    }
    return qr_storage_snapshot_finish(w, NULL);
}

/*
 * Runs one operation, updating the model as parts of it are acknowledged. A snapshot
 * that finished is acknowledged even if what follows it (compaction, the reset write)
 * fails. *snapshot_done_out says whether that happened.
 */
static int
op_run(struct qr_storage *s, struct model *m, const struct op *op, bool *snapshot_done_out)
{
    *snapshot_done_out = false;
    int rv = 0;
    switch (op->kind) {
    case OP_APPEND:
    case OP_TRUNCATE:
    case OP_HARD_STATE:
        rv = op_write_entries(s, op, false, NULL);
        if (rv == 0) {
            model_apply_entries(m, op, op->count, true);
        }
        return rv;
    case OP_SNAPSHOT:
    case OP_INSTALL:
        break;
    }
    struct qr_snapshot_meta current;
    bool is_published = qr_storage_snapshot_meta(s, &current) && current.index == op->snap_index;
    if (!is_published) {
        rv = op_snapshot_write(s, op);
        if (rv != 0) {
            return rv;
        }
        model_set_snapshot(m, op);
        *snapshot_done_out = true;
    }
    if (op->kind == OP_SNAPSHOT) {
        return qr_storage_compact(s, op->compact_upto, NULL);
    }
    struct qr_snapshot_meta meta;
    snapshot_meta_of(op, &meta);
    rv = op_write_entries(s, op, true, &meta);
    if (rv == 0) {
        model_apply_entries(m, op, op->count, true);
    }
    return rv;
}

/*
 * Checks a recovery against the acknowledged model and the operation that was in
 * flight (NULL when none), and returns in *out the model the recovery matches:
 * either the acknowledged one, or it with a prefix of the in-flight op applied.
 */
static void verify(const struct qr_storage_recovered *rec,
                   const struct model *acked,
                   const struct op *op,
                   struct model *out)
{
    *out = *acked;
    qr_index rs = rec->has_snapshot ? rec->snapshot.index : 0;
    bool op_snapshot = op != NULL && (op->kind == OP_SNAPSHOT || op->kind == OP_INSTALL);
    if (rs != (acked->has_snapshot ? acked->snap_index : 0)) {
        /* Only the in-flight snapshot may be new; a published one is never lost. */
        assert_true(op_snapshot);
        assert_int_equal(rs, op->snap_index);
        model_set_snapshot(out, op);
    }
    if (rec->has_snapshot) {
        assert_int_equal(rec->snapshot.term, out->snap_term);
        assert_int_equal(rec->snapshot.size, out->snap_size);
    }
    qr_index rlast = rs + rec->entries_count;
    for (size_t i = 0; i < rec->entries_count; i++) {
        assert_int_equal(rec->entries[i].index, rs + 1 + i);
    }
    /* Does the recovery hold a prefix of the in-flight op's entries? */
    size_t prefix = 0;
    bool op_writes = op != NULL && op->count > 0 && op->kind != OP_SNAPSHOT;
    if (op_writes && rlast >= op->first && op->first > rs &&
        rec->entries[op->first - rs - 1].term == op->term) {
        prefix = (size_t)(rlast - op->first + 1);
        assert_true(prefix <= op->count);
        model_apply_entries(out, op, prefix, prefix == op->count);
    }
    qr_index want_last = out->last > rs ? out->last : rs;
    assert_int_equal(rlast, want_last);
    for (qr_index i = rs + 1; i <= rlast; i++) {
        const struct qr_entry *got = &rec->entries[i - rs - 1];
        uint8_t data[64];
        size_t len = 0;
        payload(i, out->e[i].term, out->e[i].salt, data, &len);
        assert_int_equal(got->term, out->e[i].term);
        assert_int_equal(got->data.len, len);
        assert_memory_equal(got->data.base, data, len);
    }
    /* The hard state: the acknowledged one, or the in-flight op's. */
    bool is_acked_hs = memcmp(&rec->hard_state, &acked->hs, sizeof(acked->hs)) == 0;
    bool is_op_hs =
        op != NULL && op->has_hs && memcmp(&rec->hard_state, &op->hs, sizeof(op->hs)) == 0;
    assert_true(is_acked_hs || is_op_hs);
    out->hs = rec->hard_state;
}

static void mem_opts(struct qr__memfs *memfs, struct qr_storage_opts *opts)
{
    qr_storage_opts_default(opts, CLUSTER_ID, NODE_ID);
    opts->create = true;
    opts->segment_size = 4096;
    opts->batch_size_max = 4096;
    opts->fs = qr__memfs_fs(memfs);
}

/* After recovery: the log takes new writes, and a second recovery returns them too. */
static void check_usable_after(struct qr__memfs *memfs, struct qr_storage *s, struct model *m)
{
    struct op op;
    op_make(m, 1, &op); /* k % 16 == 1: an append. */
    op.term = m->hs.term + 1;
    op.hs = (struct qr_hard_state){op.term, 1, 0};
    bool snapshot_done;
    assert_int_equal(op_run(s, m, &op, &snapshot_done), 0);
    qr_storage_close(s);
    struct qr_storage_opts opts;
    mem_opts(memfs, &opts);
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_storage_open(MEM_DIR, &opts, &s, &rec, errmsg), 0);
    struct model exact;
    verify(&rec, m, NULL, &exact);
    qr_storage_close(s);
}

/* Runs the whole workload on a fresh memfs with no faults; returns mutating operations. */
static uint64_t clean_run_ops(void)
{
    struct qr__memfs *memfs = NULL;
    assert_int_equal(qr__memfs_create(&memfs), 0);
    struct qr_storage_opts opts;
    mem_opts(memfs, &opts);
    struct qr_storage *s = NULL;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    uint64_t before = qr__memfs_ops_count(memfs, QR__MEMFS_OP_MUTATING);
    assert_int_equal(qr_storage_open(MEM_DIR, &opts, &s, &rec, errmsg), 0);
    static struct model m;
    memset(&m, 0, sizeof(m));
    for (size_t k = 0; k < OPS_COUNT; k++) {
        struct op op;
        op_make(&m, k, &op);
        bool snapshot_done;
        assert_int_equal(op_run(s, &m, &op, &snapshot_done), 0);
    }
    uint64_t ops = qr__memfs_ops_count(memfs, QR__MEMFS_OP_MUTATING) - before;
    qr_storage_close(s);
    assert_int_equal(qr_storage_open(MEM_DIR, &opts, &s, &rec, errmsg), 0);
    static struct model exact;
    verify(&rec, &m, NULL, &exact);
    qr_storage_close(s);
    qr__memfs_destroy(memfs);
    return ops;
}

static const char *crash_mode_name(enum qr__memfs_crash mode)
{
    return mode == QR__MEMFS_CRASH_LOSE ? "lose" : mode == QR__MEMFS_CRASH_KEEP ? "keep" : "tear";
}

/* One crash: every mutating operation from the nth on fails (the process died there). */
static void crash_case(uint64_t nth, enum qr__memfs_crash mode, uint64_t seed)
{
    struct qr__memfs *memfs = NULL;
    assert_int_equal(qr__memfs_create(&memfs), 0);
    struct qr_storage_opts opts;
    mem_opts(memfs, &opts);
    struct qr_storage *s = NULL;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    static struct model acked;
    memset(&acked, 0, sizeof(acked));
    qr__memfs_fail(memfs, QR__MEMFS_OP_MUTATING, nth, EIO, true);
    struct op op;
    bool in_flight = false;
    if (qr_storage_open(MEM_DIR, &opts, &s, &rec, errmsg) == 0) {
        for (size_t k = 0; k < OPS_COUNT; k++) {
            op_make(&acked, k, &op);
            bool snapshot_done;
            if (op_run(s, &acked, &op, &snapshot_done) != 0) {
                in_flight = true;
                break;
            }
        }
        qr_storage_close(s); /* Writes nothing: the crash point stands. */
    }
    qr__memfs_crash(memfs, mode, seed);
    int rv = qr_storage_open(MEM_DIR, &opts, &s, &rec, errmsg);
    if (rv != 0) {
        print_message("crash at op %llu (%s): %s\n", (unsigned long long)nth, crash_mode_name(mode),
                      errmsg);
    }
    assert_int_equal(rv, 0);
    static struct model now;
    verify(&rec, &acked, in_flight ? &op : NULL, &now);
    check_usable_after(memfs, s, &now);
    qr__memfs_destroy(memfs);
}

static void test_crash_at_every_write_point_keeps_every_acknowledged_write(void **state)
{
    (void)state;
    uint64_t ops = clean_run_ops();
    size_t cases = 0;
    for (uint64_t nth = 1; nth <= ops + 1; nth++) {
        crash_case(nth, QR__MEMFS_CRASH_LOSE, 0);
        crash_case(nth, QR__MEMFS_CRASH_KEEP, 0);
        for (uint64_t seed = 1; seed <= 3; seed++) {
            crash_case(nth, QR__MEMFS_CRASH_TEAR, nth * 1000 + seed);
        }
        cases += 5;
    }
    print_message("storage crash: %llu write points x 5 crash modes (lose, keep, tear x3) = "
                  "%zu crashes recovered\n",
                  (unsigned long long)(ops + 1), cases);
}

/* ==== part 3: injected faults ===================================================== */

struct fault_stats {
    size_t runs;
    size_t faults_hit;
    size_t nonfatal; /* ENOSPC handled without a restart. */
    size_t restarts;
};

/* Closes and reopens (a node restart), checks the recovery, and resyncs the model. */
static void
fault_restart(struct qr__memfs *memfs, struct qr_storage **s, struct model *m, const struct op *op)
{
    qr_storage_close(*s);
    struct qr_storage_opts opts;
    mem_opts(memfs, &opts);
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    int rv = qr_storage_open(MEM_DIR, &opts, s, &rec, errmsg);
    if (rv != 0) {
        print_message("restart failed: %s\n", errmsg);
    }
    assert_int_equal(rv, 0);
    static struct model now;
    verify(&rec, m, op, &now);
    *m = now;
    qr_storage_release_recovered(*s);
}

static void fault_case(uint64_t nth, int err_value, bool sticky, struct fault_stats *stats)
{
    struct qr__memfs *memfs = NULL;
    assert_int_equal(qr__memfs_create(&memfs), 0);
    struct qr_storage_opts opts;
    mem_opts(memfs, &opts);
    struct qr_storage *s = NULL;
    struct qr_storage_recovered rec;
    char errmsg[QR_ERRMSG_SIZE];
    assert_int_equal(qr_storage_open(MEM_DIR, &opts, &s, &rec, errmsg), 0);
    static struct model m;
    memset(&m, 0, sizeof(m));
    qr__memfs_fail(memfs, QR__MEMFS_OP_MUTATING, nth, err_value, sticky);
    bool hit = false;
    for (size_t k = 0; k < OPS_COUNT; k++) {
        struct op op;
        op_make(&m, k, &op);
        /* Bounded retries: a sticky fault keeps failing until the disk is "repaired". */
        for (int attempt = 0; attempt < 4; attempt++) {
            bool snapshot_done;
            int rv = op_run(s, &m, &op, &snapshot_done);
            if (rv == 0) {
                break;
            }
            assert_true(rv == QR_ENOSPC || rv == QR_EIO || rv == QR_EFATAL);
            hit = true;
            struct qr_storage_status st;
            qr_storage_status(s, &st);
            if (st.failed_err == 0 && rv == QR_ENOSPC && !sticky) {
                stats->nonfatal++; /* Still usable: just retry. */
                continue;
            }
            qr__memfs_fail(memfs, 0, 0, 0, false); /* The disk is repaired; the node restarts. */
            fault_restart(memfs, &s, &m, &op);
            stats->restarts++;
            op_make(&m, k, &op);
        }
    }
    stats->faults_hit += hit ? 1 : 0;
    stats->runs++;
    qr__memfs_fail(memfs, 0, 0, 0, false);
    fault_restart(memfs, &s, &m, NULL);
    check_usable_after(memfs, s, &m);
    qr__memfs_destroy(memfs);
}

static void test_faults_at_every_call_site_lose_nothing_acknowledged(void **state)
{
    (void)state;
    uint64_t ops = clean_run_ops();
    struct fault_stats stats = {0};
    const int errors[] = {ENOSPC, EIO};
    for (uint64_t nth = 1; nth <= ops + 1; nth++) {
        for (size_t e = 0; e < 2; e++) {
            fault_case(nth, errors[e], false, &stats);
            fault_case(nth, errors[e], true, &stats);
        }
    }
    print_message("storage faults: %llu call sites x {ENOSPC, EIO} x {once, for good} = %zu runs, "
                  "%zu hit a fault, %zu ENOSPC retried in place, %zu restarts; nothing "
                  "acknowledged lost\n",
                  (unsigned long long)(ops + 1), stats.runs, stats.faults_hit, stats.nonfatal,
                  stats.restarts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_at_every_byte_of_the_last_batch_and_flips_in_earlier_ones),
        cmocka_unit_test(test_crash_at_every_write_point_keeps_every_acknowledged_write),
        cmocka_unit_test(test_faults_at_every_call_site_lose_nothing_acknowledged),
    };
    return cmocka_run_group_tests_name("storage_crash", tests, test_alloc_setup,
                                       test_alloc_teardown);
}
