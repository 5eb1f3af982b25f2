/*
 * loadgen: the closed-loop load generator behind bench/compare.sh.
 *
 * One question per program (bench/): how many requests per second, and at what
 * latency, does a server answer when C clients each send one request (or a
 * pipeline of D) and wait for every answer before sending the next? It speaks
 * three protocols: RESP2 (quorumd, Redis), etcd's v3 JSON gateway over HTTP/1.1
 * keep-alive, and ZooKeeper through the libzookeeper-mt C client (only when
 * built with QR_LOADGEN_ZK). Every client has its own TCP connection.
 *
 * RESP and etcd clients are driven by --threads epoll loops (default 1) over
 * non-blocking sockets, so 64 clients cost one thread on a 2-core machine that
 * also runs the servers. ZooKeeper clients use the asynchronous C API: the
 * library's own I/O and completion threads drive each handle, and a completion
 * issues the next batch. The run stops at --requests (total, counted when a
 * batch is issued) or after --duration seconds, whichever comes first, then
 * waits a bounded time for the answers in flight. Latencies go into a
 * log-linear histogram (256 linear sub-buckets per power of two: under 0.8%
 * error, from 1 ns to 68 s). A request's latency runs from the moment its
 * batch was written to the moment its own answer was parsed, as
 * redis-benchmark counts it.
 *
 * Output: one key=value line on stdout for scripts, a human summary and the
 * first error text on stderr. Server output is untrusted: a malformed answer
 * counts as an error and closes that connection, never crashes the program.
 * Timing lives in bench/ only; tests never assert on time (STYLE §9).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifdef QR_LOADGEN_ZK
#include <zookeeper/zookeeper.h>
#endif

#include "quorum/types.h"
#include "util/alloc.h"
#include "util/assert.h"
#include "util/parse.h"

#define CLIENTS_MAX        4096
#define THREADS_MAX        64
#define PIPELINE_MAX       1024
#define ENDPOINTS_MAX      16
#define KEYS_MAX           100000000u
#define VALUE_SIZE_MAX     65536u
#define DURATION_S_MAX     3600.0
#define KEY_SIZE           16 /* "key:" and 12 digits. */
#define HOST_SIZE_MAX      256
#define PORT_SIZE_MAX      8
#define ERROR_TEXT_SIZE    200
#define IN_BUF_SIZE        (256u * 1024u) /* One answer must fit; a larger one is an error. */
#define REQUEST_EXTRA_SIZE 512            /* Per request, beyond the (encoded) value. */
#define EVENTS_MAX         256
#define EPOLL_WAIT_MS      50
#define DRAIN_NS           5000000000ull /* How long answers in flight may take after the end. */
#define CONNECT_WAIT_NS    10000000000ull
#define RECONNECTS_MAX     16 /* Per client; then it gives up. */
#define RESP_LINE_SIZE_MAX 4096
#define RESP_ELEMENTS_MAX  1024
#define HTTP_HEAD_SIZE_MAX 16384
#define HTTP_HEADERS_MAX   100
#define HTTP_CHUNKS_MAX    1024
#define INIT_SIZE_MAX      1024 /* --init, encoded. */

#define HIST_SUB_BITS      8
#define HIST_SUB_COUNT     (1u << HIST_SUB_BITS)
#define HIST_HALF_COUNT    (HIST_SUB_COUNT / 2)
#define HIST_VALUE_BITS    36 /* Values are nanoseconds below 2^36 (68.7 s); larger ones clamp. */
#define HIST_BUCKETS_COUNT (HIST_SUB_COUNT + (HIST_VALUE_BITS - HIST_SUB_BITS) * HIST_HALF_COUNT)

_Static_assert(KEY_SIZE == sizeof("key:000000000000") - 1, "keys are 16 bytes");
_Static_assert(KEYS_MAX <= 999999999999ull, "every key index fits in 12 digits");
_Static_assert(HIST_BUCKETS_COUNT == 3840, "28 powers of two of 128 sub-buckets after 256");
_Static_assert(RESP_LINE_SIZE_MAX < IN_BUF_SIZE, "a RESP line fits in the input buffer");
_Static_assert(HTTP_HEAD_SIZE_MAX < IN_BUF_SIZE, "an HTTP head fits in the input buffer");

enum proto { PROTO_RESP, PROTO_ETCD, PROTO_ZK };
enum op { OP_SET, OP_GET };
enum parse_result { PARSE_DONE, PARSE_MORE, PARSE_BAD };

struct endpoint {
    char host[HOST_SIZE_MAX];
    char port[PORT_SIZE_MAX];
    struct sockaddr_storage addr; /* Resolved once, before the run. */
    socklen_t addr_size;
};

struct args {
    enum proto proto;
    enum op op;
    uint32_t clients_count;
    uint32_t pipeline;     /* Requests per batch, >= 1. */
    uint64_t requests_max; /* 0: bounded by time only. */
    double duration_s;
    double warmup_s;
    uint32_t keys_count;
    uint32_t value_size; /* Bytes, before any encoding. */
    uint32_t threads_count;
    bool is_populate;         /* Write every key once before measuring. */
    char init[INIT_SIZE_MAX]; /* --init as a RESP request; sent first on every connection. */
    size_t init_size;         /* 0: none. */
    struct endpoint endpoints[ENDPOINTS_MAX];
    size_t endpoints_count;
};

struct hist {
    uint64_t counts[HIST_BUCKETS_COUNT];
    uint64_t total; /* Sum of counts. */
    uint64_t max_ns;
};

/* What one client measured; merged after the run. */
struct stats {
    struct hist hist; /* Successful requests only. */
    uint64_t errors_count;
    uint64_t last_done_ns; /* When its last measured answer arrived. */
};

/* State shared by every client of one run. */
struct run {
    const struct args *args;
    enum op op;
    bool is_sequential;                /* Populate: key i for the i-th request, not random. */
    uint64_t requests_max;             /* 0: no count bound. */
    uint64_t measure_ns;               /* Answers to batches issued earlier are warm-up. */
    uint64_t deadline_ns;              /* No batch is issued after this. */
    uint8_t *value;                    /* value_size printable bytes. */
    char *value_b64;                   /* Base64 of value, NUL-terminated. */
    atomic_uint_fast64_t issued_count; /* Requests reserved after measure_ns. */
    atomic_uint_fast64_t next_key;     /* Populate only: the next key index to write. */
    atomic_bool is_stopping;
    pthread_mutex_t error_lock;
    char first_error[ERROR_TEXT_SIZE]; /* "" until the first error; under error_lock. */
};

/* One RESP or etcd connection, owned by one worker thread. */
struct conn {
    struct run *run;
    const struct endpoint *endpoint;
    int fd;       /* -1 when closed. */
    uint64_t rng; /* xorshift64 state, never 0. */
    uint8_t *out; /* The batch being written; out_capacity bytes. */
    size_t out_capacity;
    size_t out_len;
    size_t out_sent; /* <= out_len. */
    uint8_t *in;     /* IN_BUF_SIZE bytes; answers not yet parsed start at 0. */
    size_t in_len;
    uint32_t batch_count;   /* Requests in the batch in flight; 0 when idle. */
    uint32_t answers_count; /* Answers parsed for that batch, < batch_count while in flight. */
    uint64_t batch_start_ns;
    uint32_t reconnects_count;
    bool is_done;        /* Issues nothing more: stopped, or gave up. */
    bool is_out_waiting; /* EPOLLOUT registered. */
    bool needs_init;     /* --init goes before the next batch (new connection). */
    bool is_init_owed;   /* The answer to --init comes before the batch's answers. */
    struct stats stats;
};

struct worker {
    struct run *run;
    struct conn **conns; /* Borrowed from main. */
    size_t conns_count;
    int epoll_fd;
    size_t active_count; /* Conns not yet done. */
    size_t broken_count; /* Conns failed and closed, not yet reconnected (fd < 0, not done). */
    pthread_t thread;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* Cannot fail with this clock. */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* ---- Histogram ---- */

static size_t hist_index(uint64_t value_ns)
{
    uint64_t limit = (1ull << HIST_VALUE_BITS) - 1;
    uint64_t v = value_ns > limit ? limit : value_ns;
    if (v < HIST_SUB_COUNT) {
        return (size_t)v;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (HIST_SUB_BITS - 1);
    size_t index = HIST_SUB_COUNT + (size_t)(shift - 1) * HIST_HALF_COUNT +
                   (size_t)((v >> shift) - HIST_HALF_COUNT);
    QR_ASSERT(index < HIST_BUCKETS_COUNT);
    return index;
}

/* The middle of bucket `index`, in nanoseconds. */
static double hist_value(size_t index)
{
    QR_ASSERT(index < HIST_BUCKETS_COUNT);
    if (index < HIST_SUB_COUNT) {
        return (double)index;
    }
    size_t rest = index - HIST_SUB_COUNT;
    unsigned shift = (unsigned)(rest / HIST_HALF_COUNT) + 1;
    uint64_t low = ((uint64_t)(rest % HIST_HALF_COUNT) + HIST_HALF_COUNT) << shift;
    return (double)low + (double)(1ull << shift) / 2.0;
}

static void hist_record(struct hist *h, uint64_t value_ns)
{
    h->counts[hist_index(value_ns)]++;
    h->total++;
    if (value_ns > h->max_ns) {
        h->max_ns = value_ns;
    }
}

static void hist_merge(struct hist *into, const struct hist *from)
{
    for (size_t i = 0; i < HIST_BUCKETS_COUNT; i++) {
        into->counts[i] += from->counts[i];
    }
    into->total += from->total;
    if (from->max_ns > into->max_ns) {
        into->max_ns = from->max_ns;
    }
}

/* The value at quantile q (0 < q <= 1) in nanoseconds, never above the exact maximum. */
static double hist_quantile(const struct hist *h, double q)
{
    if (h->total == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    rank = rank < 1 ? 1 : rank;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS_COUNT; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max_ns ? (double)h->max_ns : v;
        }
    }
    return (double)h->max_ns;
}

/* ---- Shared run state ---- */

static void run_note_error(struct run *run, const char *text, size_t text_size)
{
    (void)pthread_mutex_lock(&run->error_lock); /* A default mutex: cannot fail here. */
    if (run->first_error[0] == '\0') {
        size_t n = text_size < ERROR_TEXT_SIZE - 1 ? text_size : ERROR_TEXT_SIZE - 1;
        for (size_t i = 0; i < n; i++) {
            /* Server text is untrusted: keep the report on one printable line. */
            char c = text[i];
            run->first_error[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
        }
        run->first_error[n] = '\0';
        if (n == 0) {
            (void)snprintf(run->first_error, ERROR_TEXT_SIZE, "(an error without text)");
        }
    }
    (void)pthread_mutex_unlock(&run->error_lock);
}

/*
 * How many requests the next batch may carry: 0 when the run is over (time,
 * count, or stop). Before measure_ns the batch is warm-up and uses no budget.
 */
static uint32_t run_reserve(struct run *run, uint64_t now, uint32_t wanted)
{
    QR_ASSERT(wanted >= 1);
    if (atomic_load(&run->is_stopping) || now >= run->deadline_ns) {
        return 0;
    }
    if (now < run->measure_ns || run->requests_max == 0) {
        return wanted;
    }
    uint64_t before = atomic_fetch_add(&run->issued_count, wanted);
    if (before >= run->requests_max) {
        return 0;
    }
    uint64_t left = run->requests_max - before;
    return left < wanted ? (uint32_t)left : wanted;
}

/* The key index for the next request: random, or the next in order when populating. */
static uint32_t run_key(struct run *run, uint64_t *rng)
{
    uint32_t keys = run->args->keys_count;
    if (run->is_sequential) {
        return (uint32_t)(atomic_fetch_add(&run->next_key, 1) % keys);
    }
    return (uint32_t)(rng_next(rng) % keys);
}

static void key_format(char *out, uint32_t key_index)
{
    char text[KEY_SIZE + 1];
    int n = snprintf(text, sizeof(text), "key:%012u", key_index);
    QR_ASSERT(n == KEY_SIZE);
    memcpy(out, text, KEY_SIZE);
}

/* ---- Encoders ---- */

static size_t base64_encode(const uint8_t *in, size_t in_size, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= in_size; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < in_size) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < in_size) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < in_size ? alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static size_t base64_size(size_t in_size)
{
    return (in_size + 2) / 3 * 4;
}

/* Appends text to a batch buffer whose capacity the caller sized (asserted). */
static void out_append(struct conn *c, const void *bytes, size_t size)
{
    QR_ASSERT(c->out_len + size <= c->out_capacity);
    memcpy(c->out + c->out_len, bytes, size);
    c->out_len += size;
}

static void out_appendf(struct conn *c, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void out_appendf(struct conn *c, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    size_t room = c->out_capacity - c->out_len;
    int n = vsnprintf((char *)c->out + c->out_len, room, format, ap);
    va_end(ap);
    QR_ASSERT(n >= 0 && (size_t)n < room);
    c->out_len += (size_t)n;
}

static void resp_encode(struct conn *c, uint32_t key_index)
{
    char key[KEY_SIZE];
    key_format(key, key_index);
    const struct run *run = c->run;
    if (run->op == OP_GET) {
        out_appendf(c, "*2\r\n$3\r\nGET\r\n$%d\r\n", KEY_SIZE);
        out_append(c, key, KEY_SIZE);
        out_append(c, "\r\n", 2);
        return;
    }
    out_appendf(c, "*3\r\n$3\r\nSET\r\n$%d\r\n", KEY_SIZE);
    out_append(c, key, KEY_SIZE);
    out_appendf(c, "\r\n$%u\r\n", run->args->value_size);
    out_append(c, run->value, run->args->value_size);
    out_append(c, "\r\n", 2);
}

static void etcd_encode(struct conn *c, uint32_t key_index)
{
    char key[KEY_SIZE];
    char key_b64[KEY_SIZE * 2];
    key_format(key, key_index);
    (void)base64_encode((const uint8_t *)key, KEY_SIZE, key_b64);
    const struct run *run = c->run;
    const char *path = run->op == OP_GET ? "/v3/kv/range" : "/v3/kv/put";
    size_t body_size = 0;
    if (run->op == OP_GET) {
        body_size = strlen("{\"key\":\"\"}") + strlen(key_b64);
    } else {
        body_size =
            strlen("{\"key\":\"\",\"value\":\"\"}") + strlen(key_b64) + strlen(run->value_b64);
    }
    out_appendf(c,
                "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                "Content-Length: %zu\r\n\r\n",
                path, c->endpoint->host, c->endpoint->port, body_size);
    if (run->op == OP_GET) {
        out_appendf(c, "{\"key\":\"%s\"}", key_b64);
    } else {
        out_appendf(c, "{\"key\":\"%s\",\"value\":\"%s\"}", key_b64, run->value_b64);
    }
}

/* ---- RESP2 answers ---- */

/* Finds "\r\n" in buf[from, len); returns its offset or SIZE_MAX. */
static size_t find_crlf(const uint8_t *buf, size_t from, size_t len)
{
    for (size_t i = from; i + 1 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n') {
            return i;
        }
    }
    return SIZE_MAX;
}

/* A RESP length or integer: optional '-', 1 to 18 digits, nothing else. */
static bool parse_decimal(const uint8_t *text, size_t size, int64_t *value_out)
{
    size_t i = 0;
    bool is_negative = size > 0 && text[0] == '-';
    i += is_negative ? 1 : 0;
    if (size == i || size - i > 18) {
        return false;
    }
    int64_t v = 0;
    for (; i < size; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return false;
        }
        v = v * 10 + (text[i] - '0');
    }
    *value_out = is_negative ? -v : v;
    return true;
}

/*
 * One complete RESP2 answer at the start of buf. Arrays need no stack: each
 * header adds its elements to the count still to read, bounded by
 * RESP_ELEMENTS_MAX. An error answer sets *is_error_out and its text.
 */
static enum parse_result resp_parse(
    const uint8_t *buf, size_t len, size_t *consumed_out, bool *is_error_out, struct run *run)
{
    size_t pos = 0;
    uint64_t pending_count = 1;
    for (uint32_t seen = 0; pending_count > 0; seen++) {
        if (seen >= RESP_ELEMENTS_MAX) {
            return PARSE_BAD;
        }
        size_t end = find_crlf(buf, pos, len);
        if (end == SIZE_MAX) {
            return len - pos > RESP_LINE_SIZE_MAX ? PARSE_BAD : PARSE_MORE;
        }
        if (end == pos || end - pos > RESP_LINE_SIZE_MAX) {
            return PARSE_BAD;
        }
        uint8_t type = buf[pos];
        const uint8_t *text = buf + pos + 1;
        size_t text_size = end - pos - 1;
        int64_t n = 0;
        pending_count--;
        pos = end + 2;
        if (type == '+') {
            continue;
        }
        if (type == '-') {
            *is_error_out = true;
            run_note_error(run, (const char *)text, text_size);
            continue;
        }
        if (!parse_decimal(text, text_size, &n) || (type != ':' && n < -1)) {
            return PARSE_BAD;
        }
        if (type == ':' || n == -1) {
            continue;
        }
        if (type == '*') {
            pending_count += (uint64_t)n;
            if (pending_count > RESP_ELEMENTS_MAX) {
                return PARSE_BAD;
            }
        } else if (type == '$') {
            if ((uint64_t)n > IN_BUF_SIZE) {
                return PARSE_BAD;
            }
            if (len - pos < (size_t)n + 2) {
                return PARSE_MORE;
            }
            if (buf[pos + (size_t)n] != '\r' || buf[pos + (size_t)n + 1] != '\n') {
                return PARSE_BAD;
            }
            pos += (size_t)n + 2;
        } else {
            return PARSE_BAD;
        }
    }
    *consumed_out = pos;
    return PARSE_DONE;
}

/* ---- HTTP/1.1 answers ---- */

struct http_head {
    int status;
    size_t head_size;       /* Through the empty line. */
    int64_t content_length; /* -1 when absent. */
    bool is_chunked;
};

static bool http_header_is(const uint8_t *line, size_t size, const char *name)
{
    size_t n = strlen(name);
    return size > n && line[n] == ':' && strncasecmp((const char *)line, name, n) == 0;
}

/* The header value after "Name:", trimmed of spaces. */
static void http_header_value(const uint8_t *line,
                              size_t size,
                              const uint8_t **value_out,
                              size_t *value_size_out)
{
    size_t i = 0;
    while (i < size && line[i] != ':') {
        i++;
    }
    i++;
    while (i < size && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    size_t end = size;
    while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t')) {
        end--;
    }
    *value_out = line + i;
    *value_size_out = end > i ? end - i : 0;
}

static enum parse_result http_parse_head(const uint8_t *buf, size_t len, struct http_head *head)
{
    size_t end = find_crlf(buf, 0, len < HTTP_HEAD_SIZE_MAX ? len : HTTP_HEAD_SIZE_MAX);
    if (end == SIZE_MAX) {
        return len >= HTTP_HEAD_SIZE_MAX ? PARSE_BAD : PARSE_MORE;
    }
    int64_t status = 0;
    if (end < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
        !parse_decimal(buf + 9, 3, &status) || status < 100) {
        return PARSE_BAD;
    }
    *head = (struct http_head){.status = (int)status, .content_length = -1};
    size_t pos = end + 2;
    for (uint32_t i = 0; i < HTTP_HEADERS_MAX; i++) {
        size_t line_end = find_crlf(buf, pos, len < HTTP_HEAD_SIZE_MAX ? len : HTTP_HEAD_SIZE_MAX);
        if (line_end == SIZE_MAX) {
            return len >= HTTP_HEAD_SIZE_MAX ? PARSE_BAD : PARSE_MORE;
        }
        if (line_end == pos) {
            head->head_size = pos + 2;
            return PARSE_DONE;
        }
        const uint8_t *value = NULL;
        size_t value_size = 0;
        http_header_value(buf + pos, line_end - pos, &value, &value_size);
        if (http_header_is(buf + pos, line_end - pos, "content-length")) {
            if (!parse_decimal(value, value_size, &head->content_length) ||
                head->content_length < 0) {
                return PARSE_BAD;
            }
        } else if (http_header_is(buf + pos, line_end - pos, "transfer-encoding")) {
            head->is_chunked =
                value_size == 7 && strncasecmp((const char *)value, "chunked", 7) == 0;
        }
        pos = line_end + 2;
    }
    return PARSE_BAD;
}

static bool parse_hex(const uint8_t *text, size_t size, uint64_t *value_out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < size && i < 8; i++) {
        uint8_t c = text[i];
        unsigned digit = 0;
        if (c >= '0' && c <= '9') {
            digit = (unsigned)(c - '0');
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            digit = (unsigned)((c | 0x20) - 'a' + 10);
        } else {
            break; /* A chunk extension (";...") or spaces may follow the size. */
        }
        v = v * 16 + digit;
    }
    *value_out = v;
    return i > 0 && (i == size || text[i] == ';' || text[i] == ' ');
}

/* The end of a chunked body starting at pos, through the trailers' empty line. */
static enum parse_result http_parse_chunked(const uint8_t *buf, size_t len, size_t *pos_io)
{
    size_t pos = *pos_io;
    for (uint32_t i = 0; i < HTTP_CHUNKS_MAX; i++) {
        size_t end = find_crlf(buf, pos, len);
        if (end == SIZE_MAX) {
            return PARSE_MORE;
        }
        uint64_t size = 0;
        if (!parse_hex(buf + pos, end - pos, &size) || size > IN_BUF_SIZE) {
            return PARSE_BAD;
        }
        pos = end + 2;
        if (size == 0) {
            /* Trailers, if any, end with an empty line; none are expected from etcd. */
            for (uint32_t t = 0; t < HTTP_HEADERS_MAX; t++) {
                size_t trailer_end = find_crlf(buf, pos, len);
                if (trailer_end == SIZE_MAX) {
                    return PARSE_MORE;
                }
                bool is_last = trailer_end == pos;
                pos = trailer_end + 2;
                if (is_last) {
                    *pos_io = pos;
                    return PARSE_DONE;
                }
            }
            return PARSE_BAD;
        }
        if (len - pos < size + 2) {
            return PARSE_MORE;
        }
        pos += (size_t)size + 2;
    }
    return PARSE_BAD;
}

/* One complete HTTP/1.1 response at the start of buf; any status but 200 is an error. */
static enum parse_result http_parse(
    const uint8_t *buf, size_t len, size_t *consumed_out, bool *is_error_out, struct run *run)
{
    struct http_head head;
    enum parse_result r = http_parse_head(buf, len, &head);
    if (r != PARSE_DONE) {
        return r;
    }
    size_t pos = head.head_size;
    bool has_no_body = head.status < 200 || head.status == 204 || head.status == 304;
    if (head.is_chunked) {
        r = http_parse_chunked(buf, len, &pos);
        if (r != PARSE_DONE) {
            return r;
        }
    } else if (head.content_length >= 0) {
        if ((uint64_t)head.content_length > IN_BUF_SIZE) {
            return PARSE_BAD;
        }
        if (len - pos < (size_t)head.content_length) {
            return PARSE_MORE;
        }
        pos += (size_t)head.content_length;
    } else if (!has_no_body) {
        return PARSE_BAD; /* A body delimited by closing: not keep-alive. */
    }
    if (head.status != 200) {
        char text[ERROR_TEXT_SIZE];
        size_t body_size = pos - head.head_size;
        int n =
            snprintf(text, sizeof(text), "HTTP %d: %.*s", head.status,
                     (int)(body_size < 150 ? body_size : 150), (const char *)buf + head.head_size);
        *is_error_out = true;
        run_note_error(run, text, n > 0 ? (size_t)n : 0);
    }
    *consumed_out = pos;
    return PARSE_DONE;
}

/* ---- Connections (RESP and etcd), each owned by one worker thread ---- */

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        (void)close(c->fd); /* Closing also leaves the epoll set; its error adds nothing. */
    }
    c->fd = -1;
    c->in_len = 0;
    c->out_len = 0;
    c->out_sent = 0;
    c->batch_count = 0;
    c->answers_count = 0;
    c->is_out_waiting = false;
    c->is_init_owed = false;
}

/* A blocking connect (loopback answers at once), then non-blocking I/O under epoll. */
static int conn_connect(struct conn *c, int epoll_fd, char *errmsg)
{
    QR_ASSERT(c->fd < 0);
    const struct endpoint *e = c->endpoint;
    int fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        (void)snprintf(errmsg, QR_ERRMSG_SIZE, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    if (connect(fd, (const struct sockaddr *)&e->addr, e->addr_size) != 0) {
        (void)snprintf(errmsg, QR_ERRMSG_SIZE, "connect %.100s:%s: %s", e->host, e->port,
                       strerror(errno));
        (void)close(fd); /* Already failing. */
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        (void)snprintf(errmsg, QR_ERRMSG_SIZE, "set up %.100s:%s: %s", e->host, e->port,
                       strerror(errno));
        (void)close(fd); /* Already failing. */
        return -1;
    }
    c->fd = fd;
    c->needs_init = c->run->args->init_size > 0;
    return 0;
}

static bool conn_is_measured(const struct conn *c)
{
    return c->batch_start_ns >= c->run->measure_ns;
}

/*
 * The connection failed (closed, reset, malformed answer): every request in
 * flight is an error. The worker loop reconnects it later (worker_repair), so
 * that failing never calls back into issuing: no recursion.
 */
static void conn_fail(struct worker *w, struct conn *c, const char *why)
{
    QR_ASSERT(!c->is_done && c->fd >= 0);
    char text[ERROR_TEXT_SIZE];
    int n = snprintf(text, sizeof(text), "%s:%s: %s", c->endpoint->host, c->endpoint->port, why);
    run_note_error(c->run, text, n > 0 ? (size_t)n : 0);
    if (conn_is_measured(c)) {
        c->stats.errors_count += c->batch_count - c->answers_count;
    }
    conn_close(c);
    w->broken_count++;
}

static void conn_finish(struct worker *w, struct conn *c)
{
    QR_ASSERT(!c->is_done && w->active_count > 0);
    conn_close(c);
    c->is_done = true;
    w->active_count--;
}

static int conn_want_out(struct worker *w, struct conn *c, bool is_wanted)
{
    if (c->is_out_waiting == is_wanted) {
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLIN | (is_wanted ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(w->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        return -1;
    }
    c->is_out_waiting = is_wanted;
    return 0;
}

/* Writes what the socket takes; the rest waits for EPOLLOUT. */
static void conn_flush(struct worker *w, struct conn *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (conn_want_out(w, c, true) != 0) {
                conn_fail(w, c, strerror(errno));
            }
            return;
        }
        if (n <= 0) {
            conn_fail(w, c, n < 0 ? strerror(errno) : "write returned 0");
            return;
        }
        c->out_sent += (size_t)n; /* Each pass writes at least one byte: bounded by out_len. */
    }
    if (conn_want_out(w, c, false) != 0) {
        conn_fail(w, c, strerror(errno));
    }
}

/* Builds and writes the next batch, or finishes the connection when the run is over. */
static void conn_issue(struct worker *w, struct conn *c)
{
    QR_ASSERT(c->fd >= 0 && !c->is_done);
    uint64_t now = now_ns();
    uint32_t count = run_reserve(c->run, now, c->run->args->pipeline);
    if (count == 0) {
        conn_finish(w, c);
        return;
    }
    c->out_len = 0;
    c->out_sent = 0;
    if (c->needs_init) {
        out_append(c, c->run->args->init, c->run->args->init_size);
        c->needs_init = false;
        c->is_init_owed = true;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t key_index = run_key(c->run, &c->rng);
        if (c->run->args->proto == PROTO_RESP) {
            resp_encode(c, key_index);
        } else {
            etcd_encode(c, key_index);
        }
    }
    c->batch_count = count;
    c->answers_count = 0;
    c->batch_start_ns = now;
    conn_flush(w, c);
}

/* Parses the answers now buffered; a completed batch issues the next one. */
static void conn_parse_answers(struct worker *w, struct conn *c)
{
    uint64_t now = now_ns();
    bool is_measured = conn_is_measured(c);
    size_t pos = 0;
    if (c->is_init_owed) {
        size_t consumed = 0;
        bool is_error = false;
        enum parse_result r = resp_parse(c->in, c->in_len, &consumed, &is_error, c->run);
        if (r == PARSE_MORE) {
            return;
        }
        if (r == PARSE_BAD || is_error) {
            conn_fail(w, c, r == PARSE_BAD ? "malformed answer" : "--init refused");
            return;
        }
        c->is_init_owed = false;
        pos = consumed;
    }
    while (c->answers_count < c->batch_count) {
        size_t consumed = 0;
        bool is_error = false;
        enum parse_result r =
            c->run->args->proto == PROTO_RESP
                ? resp_parse(c->in + pos, c->in_len - pos, &consumed, &is_error, c->run)
                : http_parse(c->in + pos, c->in_len - pos, &consumed, &is_error, c->run);
        if (r == PARSE_MORE) {
            break;
        }
        if (r == PARSE_BAD) {
            conn_fail(w, c, "malformed answer");
            return;
        }
        QR_ASSERT(consumed > 0 && consumed <= c->in_len - pos);
        pos += consumed;
        c->answers_count++;
        if (is_measured && is_error) {
            c->stats.errors_count++;
        } else if (is_measured) {
            hist_record(&c->stats.hist, now - c->batch_start_ns);
        }
    }
    if (is_measured && pos > 0) {
        c->stats.last_done_ns = now;
    }
    if (pos < c->in_len && c->answers_count == c->batch_count) {
        conn_fail(w, c, "answer to no request");
        return;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    if (c->in_len == IN_BUF_SIZE) {
        conn_fail(w, c, "answer larger than the input buffer");
        return;
    }
    if (c->answers_count == c->batch_count) {
        conn_issue(w, c);
    }
}

static void conn_on_readable(struct worker *w, struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->in_len, IN_BUF_SIZE - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        conn_fail(w, c, n < 0 ? strerror(errno) : "connection closed by the server");
        return;
    }
    c->in_len += (size_t)n;
    if (c->batch_count == 0) {
        conn_fail(w, c, "answer to no request");
        return;
    }
    conn_parse_answers(w, c);
}

/* Reconnects the connections that failed, at most RECONNECTS_MAX times each. */
static void worker_repair(struct worker *w)
{
    for (size_t i = 0; i < w->conns_count && w->broken_count > 0; i++) {
        struct conn *c = w->conns[i];
        if (c->is_done || c->fd >= 0) {
            continue;
        }
        w->broken_count--;
        char errmsg[QR_ERRMSG_SIZE];
        if (c->reconnects_count >= RECONNECTS_MAX || conn_connect(c, w->epoll_fd, errmsg) != 0) {
            conn_finish(w, c);
            continue;
        }
        c->reconnects_count++;
        conn_issue(w, c);
    }
}

/* Requests still in flight when the run gives up on them are errors. */
static void worker_abandon(struct worker *w)
{
    for (size_t i = 0; i < w->conns_count; i++) {
        struct conn *c = w->conns[i];
        if (c->is_done) {
            continue;
        }
        if (conn_is_measured(c)) {
            c->stats.errors_count += c->batch_count - c->answers_count;
        }
        const char *why = "no answer within the drain time after the end of the run";
        run_note_error(c->run, why, strlen(why));
        conn_finish(w, c);
    }
}

/* The thread's loop, bounded by the deadline plus DRAIN_NS. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    for (size_t i = 0; i < w->conns_count; i++) {
        conn_issue(w, w->conns[i]);
    }
    uint64_t give_up_ns = run->deadline_ns + DRAIN_NS;
    struct epoll_event events[EVENTS_MAX];
    while (w->active_count > 0) {
        if (w->broken_count > 0) {
            worker_repair(w);
            continue;
        }
        if (now_ns() >= give_up_ns) {
            worker_abandon(w);
            break;
        }
        int n = epoll_wait(w->epoll_fd, events, EVENTS_MAX, EPOLL_WAIT_MS);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            (void)fprintf(stderr, "loadgen: epoll_wait: %s\n", strerror(errno));
            worker_abandon(w);
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->is_done || c->fd < 0) {
                continue;
            }
            if ((events[i].events & EPOLLOUT) != 0 && c->out_sent < c->out_len) {
                conn_flush(w, c);
            }
            if (!c->is_done && c->fd >= 0 &&
                (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
                conn_on_readable(w, c);
            }
        }
    }
    return NULL;
}

/* ---- One phase over sockets: connect every client, run, merge ---- */

/* What a phase measured, over every client. */
struct result {
    struct hist hist;
    uint64_t errors_count;
    double seconds; /* From measure_ns to the last measured answer. */
};

static void result_add(struct result *result, const struct run *run, const struct stats *stats)
{
    hist_merge(&result->hist, &stats->hist);
    result->errors_count += stats->errors_count;
    if (stats->last_done_ns > run->measure_ns) {
        double seconds = (double)(stats->last_done_ns - run->measure_ns) / 1e9;
        result->seconds = seconds > result->seconds ? seconds : result->seconds;
    }
}

static struct conn *conn_create(struct run *run, uint32_t index)
{
    const struct args *a = run->args;
    struct conn *c = qr_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->run = run;
    c->fd = -1;
    c->endpoint = &a->endpoints[index % a->endpoints_count];
    c->rng = 0x9e3779b97f4a7c15ull * (index + 1u);
    c->out_capacity =
        (size_t)a->pipeline * (base64_size(a->value_size) + REQUEST_EXTRA_SIZE) + a->init_size;
    c->out = qr_malloc(c->out_capacity);
    c->in = qr_malloc(IN_BUF_SIZE);
    if (c->out == NULL || c->in == NULL) {
        qr_free(c->out);
        qr_free(c->in);
        qr_free(c);
        return NULL;
    }
    return c;
}

static void conn_destroy(struct conn *c)
{
    if (c == NULL) {
        return;
    }
    conn_close(c);
    qr_free(c->out);
    qr_free(c->in);
    qr_free(c);
}

/* Creates and connects client i of worker i % threads; 0 or -1 with errmsg. */
static int phase_connect(struct run *run, struct worker *workers, struct conn **conns, char *errmsg)
{
    const struct args *a = run->args;
    for (uint32_t i = 0; i < a->clients_count; i++) {
        struct worker *w = &workers[i % a->threads_count];
        conns[i] = conn_create(run, i);
        if (conns[i] == NULL) {
            (void)snprintf(errmsg, QR_ERRMSG_SIZE, "out of memory for client %u", i);
            return -1;
        }
        if (conn_connect(conns[i], w->epoll_fd, errmsg) != 0) {
            return -1;
        }
        w->conns[w->conns_count++] = conns[i];
        w->active_count++;
    }
    return 0;
}

static int
phase_start(struct run *run, struct worker *workers, uint64_t warmup_ns, uint64_t duration_ns)
{
    uint64_t start = now_ns();
    run->measure_ns = start + warmup_ns;
    run->deadline_ns = run->measure_ns + duration_ns;
    for (uint32_t t = 0; t < run->args->threads_count; t++) {
        if (workers[t].conns_count == 0) {
            continue;
        }
        int rv = pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);
        if (rv != 0) {
            (void)fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(rv));
            atomic_store(&run->is_stopping, true);
            for (uint32_t j = 0; j < t; j++) {
                if (workers[j].conns_count > 0) {
                    (void)pthread_join(workers[j].thread, NULL); /* Joinable: cannot fail. */
                }
            }
            return -1;
        }
    }
    for (uint32_t t = 0; t < run->args->threads_count; t++) {
        if (workers[t].conns_count > 0) {
            (void)pthread_join(workers[t].thread, NULL); /* Joinable: cannot fail. */
        }
    }
    return 0;
}

/* Runs one phase of RESP or etcd clients; 0, or -1 when it could not start. */
static int
phase_run_sockets(struct run *run, uint64_t warmup_ns, uint64_t duration_ns, struct result *result)
{
    const struct args *a = run->args;
    struct worker workers[THREADS_MAX];
    struct conn **conns = qr_calloc(a->clients_count, sizeof(*conns));
    int rv = conns == NULL ? -1 : 0;
    uint32_t epolls_count = 0;
    for (; rv == 0 && epolls_count < a->threads_count; epolls_count++) {
        struct worker *w = &workers[epolls_count];
        *w = (struct worker){.run = run, .epoll_fd = epoll_create1(EPOLL_CLOEXEC)};
        w->conns = qr_calloc(a->clients_count, sizeof(*w->conns));
        if (w->epoll_fd < 0 || w->conns == NULL) {
            (void)fprintf(stderr, "loadgen: epoll or memory: %s\n", strerror(errno));
            rv = -1;
        }
    }
    char errmsg[QR_ERRMSG_SIZE];
    if (rv == 0 && phase_connect(run, workers, conns, errmsg) != 0) {
        (void)fprintf(stderr, "loadgen: %s\n", errmsg);
        rv = -1;
    }
    if (rv == 0) {
        rv = phase_start(run, workers, warmup_ns, duration_ns);
    }
    for (uint32_t i = 0; conns != NULL && i < a->clients_count; i++) {
        if (conns[i] != NULL && rv == 0) {
            result_add(result, run, &conns[i]->stats);
        }
        conn_destroy(conns[i]);
    }
    for (uint32_t t = 0; t < epolls_count; t++) {
        if (workers[t].epoll_fd >= 0) {
            (void)close(workers[t].epoll_fd); /* Nothing is left to lose. */
        }
        qr_free(workers[t].conns);
    }
    qr_free(conns);
    return rv;
}

/* ---- ZooKeeper (libzookeeper-mt, asynchronous API) ---- */

#ifdef QR_LOADGEN_ZK

#define ZK_RECV_TIMEOUT_MS 10000
#define ZK_POLL_NS         10000000ull
#define ZK_PATH_SIZE       64

/*
 * One ZooKeeper session. Its completions run on the handle's completion
 * thread; the first batch is issued from main, so the lock orders the two.
 */
struct zk_client {
    struct run *run;
    atomic_size_t *active_count; /* Clients not yet done, shared by the phase. */
    zhandle_t *zh;
    pthread_mutex_t lock; /* Guards everything below. */
    uint64_t rng;
    uint32_t batch_count;
    uint32_t answers_count;
    uint64_t batch_start_ns;
    bool is_failed; /* A request could not be sent: issue no more. */
    bool is_done;
    struct stats stats;
};

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    (void)nanosleep(&ts, NULL); /* An early wake-up only shortens one poll. */
}

static void zk_path(char *out, uint32_t key_index)
{
    char key[KEY_SIZE + 1];
    key_format(key, key_index);
    key[KEY_SIZE] = '\0';
    (void)snprintf(out, ZK_PATH_SIZE, "/bench/%s", key);
}

/* The library passes our pointer back as const void *; the client is ours to change. */
static struct zk_client *zk_client_of(const void *data)
{
    return (struct zk_client *)(uintptr_t)data;
}

static void zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    /* Session events are read by polling zoo_state(); no node is watched. */
    (void)zh;
    (void)type;
    (void)state;
    (void)path;
    (void)ctx;
}

static void zk_finish(struct zk_client *c)
{
    QR_ASSERT(!c->is_done);
    c->is_done = true;
    (void)atomic_fetch_sub(c->active_count, 1);
}

static void zk_set_done(int rc, const struct Stat *stat, const void *data);
static void
zk_get_done(int rc, const char *value, int value_size, const struct Stat *stat, const void *data);

/* Issues the next batch; the lock is held. */
static void zk_issue(struct zk_client *c)
{
    struct run *run = c->run;
    uint64_t now = now_ns();
    uint32_t count = c->is_failed ? 0 : run_reserve(run, now, run->args->pipeline);
    if (count == 0) {
        zk_finish(c);
        return;
    }
    c->batch_count = count;
    c->answers_count = 0;
    c->batch_start_ns = now;
    for (uint32_t i = 0; i < count; i++) {
        char path[ZK_PATH_SIZE];
        zk_path(path, run_key(run, &c->rng));
        int rc = run->op == OP_SET ? zoo_aset(c->zh, path, (const char *)run->value,
                                              (int)run->args->value_size, -1, zk_set_done, c)
                                   : zoo_aget(c->zh, path, 0, zk_get_done, c);
        if (rc != ZOK) {
            /* Not sent (session gone): these requests fail, and this client stops. */
            run_note_error(run, zerror(rc), strlen(zerror(rc)));
            if (now >= run->measure_ns) {
                c->stats.errors_count += count - i;
            }
            c->batch_count = i;
            break;
        }
    }
    if (c->batch_count < count) {
        c->is_failed = true;
        if (c->batch_count == 0) {
            zk_finish(c);
        }
    }
}

static void zk_on_answer(struct zk_client *c, int rc)
{
    uint64_t now = now_ns();
    (void)pthread_mutex_lock(&c->lock); /* A default mutex: cannot fail here. */
    QR_ASSERT(c->answers_count < c->batch_count && !c->is_done);
    bool is_measured = c->batch_start_ns >= c->run->measure_ns;
    if (rc != ZOK) {
        run_note_error(c->run, zerror(rc), strlen(zerror(rc)));
    }
    if (is_measured && rc != ZOK) {
        c->stats.errors_count++;
    } else if (is_measured) {
        hist_record(&c->stats.hist, now - c->batch_start_ns);
    }
    if (is_measured) {
        c->stats.last_done_ns = now;
    }
    c->answers_count++;
    if (c->answers_count == c->batch_count) {
        zk_issue(c);
    }
    (void)pthread_mutex_unlock(&c->lock);
}

static void zk_set_done(int rc, const struct Stat *stat, const void *data)
{
    (void)stat;
    zk_on_answer(zk_client_of(data), rc);
}

static void
zk_get_done(int rc, const char *value, int value_size, const struct Stat *stat, const void *data)
{
    (void)value;
    (void)value_size;
    (void)stat;
    zk_on_answer(zk_client_of(data), rc);
}

/* Opens every session and waits, bounded, until each is connected. */
static int zk_connect_all(struct run *run, struct zk_client *clients, atomic_size_t *active)
{
    const struct args *a = run->args;
    for (uint32_t i = 0; i < a->clients_count; i++) {
        struct zk_client *c = &clients[i];
        const struct endpoint *e = &a->endpoints[i % a->endpoints_count];
        char host[HOST_SIZE_MAX + PORT_SIZE_MAX + 1];
        (void)snprintf(host, sizeof(host), "%s:%s", e->host, e->port);
        c->run = run;
        c->active_count = active;
        c->rng = 0x9e3779b97f4a7c15ull * (i + 1u);
        c->zh = zookeeper_init(host, zk_watcher, ZK_RECV_TIMEOUT_MS, NULL, NULL, 0);
        if (c->zh == NULL) {
            (void)fprintf(stderr, "loadgen: zookeeper_init %s: %s\n", host, strerror(errno));
            return -1;
        }
        /*
         * By default the client resolves its host list again on every pass of
         * its I/O loop (several sockets and files per request): that, not
         * ZooKeeper, would dominate the measurement. -1 resolves only when a
         * connection is lost.
         */
        if (zoo_set_servers_resolution_delay(c->zh, -1) != ZOK) {
            (void)fprintf(stderr, "loadgen: zoo_set_servers_resolution_delay failed\n");
            return -1;
        }
    }
    uint64_t give_up_ns = now_ns() + CONNECT_WAIT_NS;
    for (uint32_t i = 0; i < a->clients_count; i++) {
        while (zoo_state(clients[i].zh) != ZOO_CONNECTED_STATE) {
            if (now_ns() >= give_up_ns) {
                (void)fprintf(stderr, "loadgen: zookeeper client %u not connected after %llu s\n",
                              i, CONNECT_WAIT_NS / 1000000000ull);
                return -1;
            }
            sleep_ns(ZK_POLL_NS);
        }
    }
    return 0;
}

/* Creates /bench and one node per key holding a value (existing nodes are kept). */
static int zk_create_nodes(struct run *run, zhandle_t *zh)
{
    const struct args *a = run->args;
    int rc = zoo_create(zh, "/bench", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) {
        (void)fprintf(stderr, "loadgen: create /bench: %s\n", zerror(rc));
        return -1;
    }
    char path[ZK_PATH_SIZE];
    zk_path(path, a->keys_count - 1);
    struct Stat stat;
    if (zoo_exists(zh, path, 0, &stat) == ZOK) {
        return 0; /* Created by an earlier run: nodes are made in order. */
    }
    for (uint32_t i = 0; i < a->keys_count; i++) {
        zk_path(path, i);
        rc = zoo_create(zh, path, (const char *)run->value, (int)a->value_size,
                        &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc != ZOK && rc != ZNODEEXISTS) {
            (void)fprintf(stderr, "loadgen: create %s: %s\n", path, zerror(rc));
            return -1;
        }
    }
    return 0;
}

/* Issues the first batches, then waits (bounded) for every client to finish. */
static void zk_drive(struct run *run, struct zk_client *clients, atomic_size_t *active)
{
    const struct args *a = run->args;
    uint64_t start = now_ns();
    run->measure_ns = start + (uint64_t)(a->warmup_s * 1e9);
    run->deadline_ns = run->measure_ns + (uint64_t)(a->duration_s * 1e9);
    atomic_store(active, a->clients_count);
    for (uint32_t i = 0; i < a->clients_count; i++) {
        (void)pthread_mutex_lock(&clients[i].lock); /* A default mutex: cannot fail here. */
        zk_issue(&clients[i]);
        (void)pthread_mutex_unlock(&clients[i].lock);
    }
    uint64_t give_up_ns = run->deadline_ns + DRAIN_NS;
    while (atomic_load(active) > 0 && now_ns() < give_up_ns) {
        sleep_ns(ZK_POLL_NS);
    }
    if (atomic_load(active) > 0) {
        const char *why = "no answer within the drain time after the end of the run";
        run_note_error(run, why, strlen(why));
    }
    /* Closing fails what is still in flight (ZCLOSING): those count as errors. */
    atomic_store(&run->is_stopping, true);
}

static int phase_run_zk(struct run *run, struct result *result)
{
    const struct args *a = run->args;
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    struct zk_client *clients = qr_calloc(a->clients_count, sizeof(*clients));
    if (clients == NULL) {
        (void)fprintf(stderr, "loadgen: out of memory\n");
        return -1;
    }
    atomic_size_t active;
    atomic_init(&active, 0);
    uint32_t locks_count = 0;
    for (; locks_count < a->clients_count; locks_count++) {
        if (pthread_mutex_init(&clients[locks_count].lock, NULL) != 0) {
            break;
        }
    }
    int rv = locks_count == a->clients_count ? 0 : -1;
    if (rv == 0) {
        rv = zk_connect_all(run, clients, &active);
    }
    if (rv == 0) {
        rv = zk_create_nodes(run, clients[0].zh);
    }
    if (rv == 0) {
        zk_drive(run, clients, &active);
    }
    for (uint32_t i = 0; i < a->clients_count; i++) {
        if (clients[i].zh != NULL) {
            (void)zookeeper_close(clients[i].zh); /* After it, no completion runs. */
        }
    }
    for (uint32_t i = 0; i < locks_count; i++) {
        if (rv == 0) {
            result_add(result, run, &clients[i].stats);
        }
        (void)pthread_mutex_destroy(&clients[i].lock); /* Unlocked: cannot fail. */
    }
    qr_free(clients);
    return rv;
}

#endif /* QR_LOADGEN_ZK */

/* ---- Flags ---- */

static void usage(FILE *out)
{
    (void)fprintf(
        out,
        "usage: loadgen [--proto resp|etcd|zk] [--op set|get] [--clients C] [--pipeline D]\n"
        "               [--requests N] [--duration S] [--warmup S] [--keys K]\n"
        "               [--value-size B] [--threads T] [--populate] [--init CMD]\n"
        "               [--host H] [--port P] | [--endpoints H:P[,H:P...]]\n"
        "A closed loop: each of C clients, on its own TCP connection, sends D requests\n"
        "and waits for all their answers before sending more.\n"
        "  --proto resp    RESP2 SET/GET (quorumd, Redis; default port 6379)\n"
        "  --proto etcd    etcd v3 JSON gateway: POST /v3/kv/put, /v3/kv/range\n"
        "                  (linearizable range; default port 2379)\n"
        "  --proto zk      ZooKeeper setData/getData on /bench/key:NNNNNNNNNNNN nodes,\n"
        "                  created first (default port 2181). getData is NOT\n"
        "                  linearizable (no sync first): a follower answers locally.\n"
        "                  %s\n"
        "  --op set|get    write (default) or read one random key per request\n"
        "  --clients C     concurrent clients, 1 to %d (default 1)\n"
        "  --pipeline D    requests in flight per client, 1 to %d (default 1)\n"
        "  --requests N    stop after N measured requests in all (default 0: no limit)\n"
        "  --duration S    stop issuing after S seconds (default 10, at most %.0f)\n"
        "  --warmup S      run S seconds unmeasured first (default 0)\n"
        "  --keys K        keyspace \"key:%%012u\" of K keys (16 bytes; default 10000)\n"
        "  --value-size B  value bytes, 1 to %u (default 128)\n"
        "  --threads T     epoll threads for resp/etcd, 1 to %d (default 1)\n"
        "  --populate      resp/etcd: write every key once, unmeasured, before the run\n"
        "  --init CMD      resp: send CMD (words split on spaces) first on every\n"
        "                  connection, e.g. \"QUORUM.READS stale\"; an error answer\n"
        "                  fails the connection\n"
        "  --endpoints     servers; clients are spread over them round-robin\n"
        "Output: one key=value line on stdout; a summary and the first error on stderr.\n"
        "Exit: 0 when some request succeeded, 1 when none did or setup failed, 2 usage.\n",
#ifdef QR_LOADGEN_ZK
        "(built with ZooKeeper support)",
#else
        "(NOT built in: install libzookeeper-mt-dev and rebuild)",
#endif
        CLIENTS_MAX, PIPELINE_MAX, DURATION_S_MAX, VALUE_SIZE_MAX, THREADS_MAX);
}

/* Parses "host:port" (the last colon splits) into e. */
static int endpoint_parse(const char *text, size_t text_size, struct endpoint *e, char *errmsg)
{
    size_t colon = text_size;
    for (size_t i = 0; i < text_size; i++) {
        colon = text[i] == ':' ? i : colon;
    }
    if (colon == text_size || colon == 0 || colon >= HOST_SIZE_MAX ||
        text_size - colon - 1 >= PORT_SIZE_MAX || text_size - colon - 1 == 0) {
        (void)snprintf(errmsg, QR_ERRMSG_SIZE, "--endpoints: '%.*s' is not host:port",
                       (int)(text_size < 100 ? text_size : 100), text);
        return -1;
    }
    memcpy(e->host, text, colon);
    e->host[colon] = '\0';
    memcpy(e->port, text + colon + 1, text_size - colon - 1);
    e->port[text_size - colon - 1] = '\0';
    return 0;
}

static int endpoints_parse(const char *text, struct args *a, char *errmsg)
{
    a->endpoints_count = 0;
    const char *item = text;
    for (size_t i = 0; i <= ENDPOINTS_MAX; i++) {
        const char *comma = strchr(item, ',');
        size_t size = comma != NULL ? (size_t)(comma - item) : strlen(item);
        if (i == ENDPOINTS_MAX) {
            (void)snprintf(errmsg, QR_ERRMSG_SIZE, "--endpoints: at most %d", ENDPOINTS_MAX);
            return -1;
        }
        if (endpoint_parse(item, size, &a->endpoints[i], errmsg) != 0) {
            return -1;
        }
        a->endpoints_count++;
        if (comma == NULL) {
            return 0;
        }
        item = comma + 1;
    }
    return -1;
}

static int parse_word(const char *flag, const char *value, const char *a, const char *b, int *out)
{
    if (strcmp(value, a) == 0 || strcmp(value, b) == 0) {
        *out = strcmp(value, a) == 0 ? 0 : 1;
        return 0;
    }
    (void)fprintf(stderr, "loadgen: %s: '%s' is neither %s nor %s\n", flag, value, a, b);
    return -1;
}

static int parse_proto(const char *value, struct args *a)
{
    if (strcmp(value, "resp") == 0) {
        a->proto = PROTO_RESP;
    } else if (strcmp(value, "etcd") == 0) {
        a->proto = PROTO_ETCD;
    } else if (strcmp(value, "zk") == 0) {
        a->proto = PROTO_ZK;
    } else {
        (void)fprintf(stderr, "loadgen: --proto: '%s' is not resp, etcd or zk\n", value);
        return -1;
    }
    return 0;
}

/* The numeric flags, in the order of number_flags[]. */
enum number {
    NUMBER_CLIENTS,
    NUMBER_PIPELINE,
    NUMBER_REQUESTS,
    NUMBER_DURATION,
    NUMBER_WARMUP,
    NUMBER_KEYS,
    NUMBER_VALUE_SIZE,
    NUMBER_THREADS,
    NUMBER_PORT,
    NUMBERS_COUNT
};

static const struct {
    const char *name;
    double min;
    double max;
    double value_default;
    bool is_whole;
} number_flags[NUMBERS_COUNT] = {
    [NUMBER_CLIENTS] = {"--clients", 1, CLIENTS_MAX, 1, true},
    [NUMBER_PIPELINE] = {"--pipeline", 1, PIPELINE_MAX, 1, true},
    [NUMBER_REQUESTS] = {"--requests", 0, 1e15, 0, true},
    [NUMBER_DURATION] = {"--duration", 0.01, DURATION_S_MAX, 10, false},
    [NUMBER_WARMUP] = {"--warmup", 0, DURATION_S_MAX, 0, false},
    [NUMBER_KEYS] = {"--keys", 1, KEYS_MAX, 10000, true},
    [NUMBER_VALUE_SIZE] = {"--value-size", 1, VALUE_SIZE_MAX, 128, true},
    [NUMBER_THREADS] = {"--threads", 1, THREADS_MAX, 1, true},
    [NUMBER_PORT] = {"--port", 1, 65535, 0, true},
};

/* A numeric flag at argv[*i]: 0 parsed, 1 not a numeric flag, -1 bad value (reported). */
static int parse_number(int argc, char **argv, int *i, double *numbers)
{
    for (size_t t = 0; t < NUMBERS_COUNT; t++) {
        const char *name = number_flags[t].name;
        if (!qr__flag_is(argv[*i], name)) {
            continue;
        }
        const char *value = qr__flag_value(argc, argv, i, name);
        char errmsg[QR_ERRMSG_SIZE];
        uint64_t whole = 0;
        double real = 0;
        int rv = -1;
        if (value != NULL && number_flags[t].is_whole) {
            rv = qr__parse_u64(value, (uint64_t)number_flags[t].min, (uint64_t)number_flags[t].max,
                               &whole, errmsg);
            real = (double)whole;
        } else if (value != NULL) {
            rv = qr__parse_double(value, number_flags[t].min, number_flags[t].max, &real, errmsg);
        }
        if (rv != 0) {
            (void)fprintf(stderr, "loadgen: %s: %s\n", name,
                          value == NULL ? "needs a value" : errmsg);
            return -1;
        }
        numbers[t] = real;
        return 0;
    }
    return 1;
}

/* A word flag at argv[*i]: 0 parsed, 1 not a word flag, -1 bad value (reported). */
/* --init "WORD ...": the words (split on spaces) as one RESP request in a->init. */
static int init_encode(const char *text, struct args *a)
{
    char words[INIT_SIZE_MAX];
    size_t text_size = strlen(text);
    if (text_size >= sizeof(words)) {
        (void)fprintf(stderr, "loadgen: --init: longer than %d bytes\n", INIT_SIZE_MAX - 1);
        return -1;
    }
    memcpy(words, text, text_size + 1);
    const char *argv[INIT_SIZE_MAX / 2];
    size_t argc = 0;
    char *save = NULL;
    for (char *w = strtok_r(words, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        argv[argc++] = w;
    }
    if (argc == 0) {
        (void)fprintf(stderr, "loadgen: --init: no command\n");
        return -1;
    }
    size_t at = 0;
    int n = snprintf(a->init, sizeof(a->init), "*%zu\r\n", argc);
    for (size_t i = 0; n > 0 && (size_t)n < sizeof(a->init) - at && i < argc; i++) {
        at += (size_t)n;
        n = snprintf(a->init + at, sizeof(a->init) - at, "$%zu\r\n%s\r\n", strlen(argv[i]),
                     argv[i]);
    }
    if (n <= 0 || (size_t)n >= sizeof(a->init) - at) {
        (void)fprintf(stderr, "loadgen: --init: longer than %d bytes encoded\n", INIT_SIZE_MAX);
        return -1;
    }
    a->init_size = at + (size_t)n;
    return 0;
}

static int parse_word_flag(int argc, char **argv, int *i, struct args *a, const char **texts)
{
    const char *arg = argv[*i];
    const char *value = NULL;
    int rv = 1;
    if (qr__flag_is(arg, "--proto")) {
        value = qr__flag_value(argc, argv, i, "--proto");
        rv = value == NULL ? -1 : parse_proto(value, a);
    } else if (qr__flag_is(arg, "--op")) {
        int word = 0;
        value = qr__flag_value(argc, argv, i, "--op");
        rv = value == NULL ? -1 : parse_word("--op", value, "set", "get", &word);
        a->op = word == 0 ? OP_SET : OP_GET;
    } else if (qr__flag_is(arg, "--host")) {
        value = qr__flag_value(argc, argv, i, "--host");
        texts[0] = value;
        rv = value == NULL ? -1 : 0;
    } else if (qr__flag_is(arg, "--init")) {
        value = qr__flag_value(argc, argv, i, "--init");
        rv = value == NULL ? -1 : init_encode(value, a);
    } else if (qr__flag_is(arg, "--endpoints")) {
        value = qr__flag_value(argc, argv, i, "--endpoints");
        texts[1] = value;
        rv = value == NULL ? -1 : 0;
    }
    if (rv < 0 && value == NULL) {
        (void)fprintf(stderr, "loadgen: %s needs a value\n", arg);
    }
    return rv;
}

/* Where to connect: --endpoints, or --host and --port, or the protocol's default port. */
static int parse_endpoints(struct args *a, const char *host, const char *list, double port)
{
    char errmsg[QR_ERRMSG_SIZE];
    if (list != NULL && (host != NULL || port != 0)) {
        (void)fprintf(stderr, "loadgen: give --endpoints or --host/--port, not both\n");
        return -1;
    }
    if (list != NULL) {
        if (endpoints_parse(list, a, errmsg) != 0) {
            (void)fprintf(stderr, "loadgen: %s\n", errmsg);
            return -1;
        }
        return 0;
    }
    static const unsigned ports_default[] = {
        [PROTO_RESP] = 6379, [PROTO_ETCD] = 2379, [PROTO_ZK] = 2181};
    host = host != NULL ? host : "127.0.0.1";
    if (strlen(host) >= HOST_SIZE_MAX) {
        (void)fprintf(stderr, "loadgen: --host: longer than %d bytes\n", HOST_SIZE_MAX - 1);
        return -1;
    }
    (void)snprintf(a->endpoints[0].host, HOST_SIZE_MAX, "%s", host);
    (void)snprintf(a->endpoints[0].port, PORT_SIZE_MAX, "%u",
                   port != 0 ? (unsigned)port : ports_default[a->proto]);
    a->endpoints_count = 1;
    return 0;
}

/* 0 parsed, 1 --help, -1 usage error (reported). */
static int parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.proto = PROTO_RESP, .op = OP_SET};
    double numbers[NUMBERS_COUNT];
    for (size_t t = 0; t < NUMBERS_COUNT; t++) {
        numbers[t] = number_flags[t].value_default;
    }
    const char *texts[2] = {NULL, NULL}; /* --host, --endpoints. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
        if (strcmp(argv[i], "--populate") == 0) {
            a->is_populate = true;
            continue;
        }
        int rv = parse_number(argc, argv, &i, numbers);
        rv = rv == 1 ? parse_word_flag(argc, argv, &i, a, texts) : rv;
        if (rv == 1) {
            (void)fprintf(stderr, "loadgen: unknown flag '%s'\n", argv[i]);
        }
        if (rv != 0) {
            return -1;
        }
    }
    a->clients_count = (uint32_t)numbers[NUMBER_CLIENTS];
    a->pipeline = (uint32_t)numbers[NUMBER_PIPELINE];
    a->requests_max = (uint64_t)numbers[NUMBER_REQUESTS];
    a->duration_s = numbers[NUMBER_DURATION];
    a->warmup_s = numbers[NUMBER_WARMUP];
    a->keys_count = (uint32_t)numbers[NUMBER_KEYS];
    a->value_size = (uint32_t)numbers[NUMBER_VALUE_SIZE];
    a->threads_count = (uint32_t)numbers[NUMBER_THREADS];
    a->threads_count = a->threads_count < a->clients_count ? a->threads_count : a->clients_count;
    if (a->init_size > 0 && a->proto != PROTO_RESP) {
        (void)fprintf(stderr, "loadgen: --init is for --proto resp only\n");
        return -1;
    }
#ifndef QR_LOADGEN_ZK
    if (a->proto == PROTO_ZK) {
        (void)fprintf(stderr, "loadgen: --proto zk: built without ZooKeeper support "
                              "(install libzookeeper-mt-dev, then reconfigure and rebuild)\n");
        return -1;
    }
#endif
    return parse_endpoints(a, texts[0], texts[1], numbers[NUMBER_PORT]);
}

/* Resolves every endpoint once, so that connecting never waits for a resolver. */
static int endpoints_resolve(struct args *a)
{
    for (size_t i = 0; i < a->endpoints_count; i++) {
        struct endpoint *e = &a->endpoints[i];
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *found = NULL;
        int rv = getaddrinfo(e->host, e->port, &hints, &found);
        if (rv != 0) {
            (void)fprintf(stderr, "loadgen: %s:%s: %s\n", e->host, e->port, gai_strerror(rv));
            return -1;
        }
        QR_ASSERT(found->ai_addrlen <= sizeof(e->addr));
        memcpy(&e->addr, found->ai_addr, found->ai_addrlen);
        e->addr_size = found->ai_addrlen;
        freeaddrinfo(found);
    }
    return 0;
}

/* ---- Main ---- */

static const char *proto_name(enum proto proto)
{
    return proto == PROTO_RESP ? "resp" : proto == PROTO_ETCD ? "etcd" : "zk";
}

static int run_init(struct run *run, const struct args *a)
{
    *run = (struct run){.args = a, .op = a->op};
    atomic_init(&run->issued_count, 0);
    atomic_init(&run->next_key, 0);
    atomic_init(&run->is_stopping, false);
    run->value = qr_malloc(a->value_size);
    run->value_b64 = qr_malloc(base64_size(a->value_size) + 1);
    if (run->value == NULL || run->value_b64 == NULL ||
        pthread_mutex_init(&run->error_lock, NULL) != 0) {
        qr_free(run->value);
        qr_free(run->value_b64);
        return -1;
    }
    uint64_t rng = 0x2545f4914f6cdd1dull;
    for (uint32_t i = 0; i < a->value_size; i++) {
        run->value[i] = (uint8_t)('a' + rng_next(&rng) % 26);
    }
    (void)base64_encode(run->value, a->value_size, run->value_b64);
    return 0;
}

static void run_close(struct run *run)
{
    (void)pthread_mutex_destroy(&run->error_lock); /* Unlocked: cannot fail. */
    qr_free(run->value);
    qr_free(run->value_b64);
}

/* Writes every key once, in order, unmeasured; reports on stderr. */
static int populate(const struct args *a)
{
    struct run run;
    struct result *result = qr_calloc(1, sizeof(*result));
    if (result == NULL || run_init(&run, a) != 0) {
        qr_free(result);
        return -1;
    }
    run.op = OP_SET;
    run.is_sequential = true;
    run.requests_max = a->keys_count;
    uint64_t start = now_ns();
    int rv = phase_run_sockets(&run, 0, (uint64_t)(DURATION_S_MAX * 1e9), result);
    if (rv == 0) {
        (void)fprintf(stderr, "loadgen: populated %u keys in %.2f s (%llu errors)%s%s\n",
                      a->keys_count, (double)(now_ns() - start) / 1e9,
                      (unsigned long long)result->errors_count,
                      run.first_error[0] != '\0' ? ", first: " : "", run.first_error);
        rv = result->errors_count == 0 ? 0 : -1;
    }
    run_close(&run);
    qr_free(result);
    return rv;
}

static void report(const struct args *a, const struct run *run, const struct result *r)
{
    double seconds = r->seconds > 0 ? r->seconds : a->duration_s;
    uint64_t ok_count = r->hist.total;
    double ops_per_s = (double)ok_count / seconds;
    double p50 = hist_quantile(&r->hist, 0.50) / 1e3;
    double p99 = hist_quantile(&r->hist, 0.99) / 1e3;
    double p999 = hist_quantile(&r->hist, 0.999) / 1e3;
    double max = (double)r->hist.max_ns / 1e3;
    (void)printf("proto=%s op=%s clients=%u pipeline=%u requests=%llu seconds=%.3f "
                 "ops_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu\n",
                 proto_name(a->proto), a->op == OP_SET ? "set" : "get", a->clients_count,
                 a->pipeline, (unsigned long long)(ok_count + r->errors_count), seconds, ops_per_s,
                 p50, p99, p999, max, (unsigned long long)r->errors_count);
    (void)fprintf(stderr,
                  "loadgen: %s %s, %u clients x pipeline %u: %.0f ops/s over %.2f s; latency "
                  "p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms; %llu errors\n",
                  proto_name(a->proto), a->op == OP_SET ? "set" : "get", a->clients_count,
                  a->pipeline, ops_per_s, seconds, p50 / 1e3, p99 / 1e3, p999 / 1e3, max / 1e3,
                  (unsigned long long)r->errors_count);
    if (run->first_error[0] != '\0') {
        (void)fprintf(stderr, "loadgen: first error: %s\n", run->first_error);
    }
}

int main(int argc, char **argv)
{
    struct args a;
    int rv = parse_args(argc, argv, &a);
    if (rv > 0) {
        usage(stdout);
        return 0;
    }
    if (rv < 0) {
        (void)fprintf(stderr, "loadgen: run loadgen --help for the flags\n");
        return 2;
    }
    if (endpoints_resolve(&a) != 0) {
        return 1;
    }
    if (a.is_populate && a.proto != PROTO_ZK && populate(&a) != 0) {
        (void)fprintf(stderr, "loadgen: populating the keyspace failed\n");
        return 1;
    }
    struct run run;
    struct result *result = qr_calloc(1, sizeof(*result));
    if (result == NULL || run_init(&run, &a) != 0) {
        (void)fprintf(stderr, "loadgen: out of memory\n");
        qr_free(result);
        return 1;
    }
    run.requests_max = a.requests_max;
    uint64_t warmup_ns = (uint64_t)(a.warmup_s * 1e9);
    uint64_t duration_ns = (uint64_t)(a.duration_s * 1e9);
#ifdef QR_LOADGEN_ZK
    rv = a.proto == PROTO_ZK ? phase_run_zk(&run, result)
                             : phase_run_sockets(&run, warmup_ns, duration_ns, result);
#else
    rv = phase_run_sockets(&run, warmup_ns, duration_ns, result);
#endif
    if (rv == 0) {
        report(&a, &run, result);
    }
    rv = rv == 0 && result->hist.total > 0 ? 0 : 1;
    run_close(&run);
    qr_free(result);
    return rv;
}
