/* store.c — TCP key-value store: the server thread (see store.h; the client is
 * store_client.c).
 *
 * Pure C + POSIX; never touches Python, so it runs with the GIL released.  That is why
 * errors here are a negative SO_STORE_* code plus a message in the caller's buffer rather
 * than errors.h's macros (which raise Python exceptions): store_py.c converts them.
 */
#define _GNU_SOURCE
#include "store.h"
#include "store_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int so_store_set_err(char *err, const char *file, int line, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, SO_STORE_ERRLEN, fmt, ap);
        va_end(ap);
        if (n >= 0 && n < SO_STORE_ERRLEN)
            snprintf(err + n, SO_STORE_ERRLEN - n, " (%s:%d)", file, line);
    }
    return 0;
}

int64_t so_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ======================================================================================
 * Server
 *
 * The server may listen on every interface (multi-node runs), so it assumes hostile peers
 * and bounds what any of them can cost:
 *  - memory: request bodies are charged against one global budget (SO_STORE_BUFFER_BUDGET)
 *    when their header arrives; a frame that does not fit waits unread (its bytes stay in
 *    the kernel, and TCP flow control stops the sender) until stalled holders are evicted
 *    or finish.  Replies never copy a value: they hold a reference to the stored blob, and
 *    a connection with a reply pending is not read from (back-pressure), so a client that
 *    pipelines GETs without reading costs one reference, not one copy per GET.  Blobs that
 *    only pending replies keep alive (the key was overwritten or deleted) are charged to
 *    the budget too;
 *  - connections: at most a number derived from RLIMIT_NOFILE; when full (or accept()
 *    runs out of descriptors) the least useful connection is evicted to make room —
 *    first ones that never completed a request, oldest first, then stalled ones, and only
 *    then clients that did real work — so idle sockets cannot lock real clients out;
 *  - time: a connection that never sends a request, or stalls mid-frame, or does not read
 *    its reply, is closed after a timeout.  Connections that did work may idle forever
 *    (torch's clients keep theirs for the whole job); the client reconnects if evicted.
 * ==================================================================================== */

#define NBUCKETS 1024
/* Upper bound on connections whatever the descriptor limit; each costs a poll slot. */
#define MAX_CONNS_HARD 16384
/* Connected but never sent a complete request, or mid-frame (or waiting for budget)
 * without progress: closed after this long (SHARDOPT_STORE_IDLE_TIMEOUT seconds); a reply
 * the client does not read, after three times as long. */
#define IDLE_MS_DEFAULT 10000
#define STALL_MS 1000          /* a budget holder this still may be evicted for another */
#define INLINE_REPLY 64        /* small payloads (ints, flags) live in the connection */

/* A reference-counted value: the store holds one reference, each pending reply one. */
typedef struct {
    size_t refs;
    uint64_t len;
    int charged; /* counted in the budget: only replies keep it alive */
    char data[];
} blob;

typedef struct entry {
    struct entry *next;
    char *key;
    uint32_t klen;
    blob *val;
} entry;

typedef struct {
    int fd; /* -1 once closed (the slot is compacted at the end of the loop iteration) */
    int64_t t_connect, t_progress; /* last byte moved either way */
    int used;                      /* completed at least one request */
    /* request being received */
    unsigned char hdr[REQ_HDR];
    size_t hdr_got;
    uint32_t cmd, klen;
    uint64_t vlen;
    char *key;        /* klen + 1 bytes */
    blob *val;        /* vlen bytes */
    uint64_t body_got;
    uint64_t charged; /* bytes of this request counted in the budget */
    int want_budget;  /* header parsed, body not admitted yet */
    int parked;       /* a GET/WAIT waits for its key; nothing else may arrive meanwhile */
    /* the one pending reply: header + inline payload, then the blob's bytes */
    unsigned char out[RESP_HDR + INLINE_REPLY];
    size_t out_inline;
    blob *out_blob;
    uint64_t out_off, out_total;
} conn;

struct so_store_server {
    int listen_fd;
    int wake[2]; /* pipe: a byte here makes the loop notice `stop` */
    volatile int stop;
    pthread_t thread;
    conn **conns;
    int nconns, cap_conns;
    int64_t listen_paused_until; /* out of descriptors with nothing to evict */
    int64_t idle_ms;             /* see IDLE_MS_DEFAULT */
    uint64_t buffered;           /* bytes charged to the budget */
    entry *buckets[NBUCKETS];
    int64_t nkeys;
};

static blob *blob_new(uint64_t len)
{
    blob *b = malloc(sizeof(blob) + (len ? len : 1));
    if (!b) return NULL;
    b->refs = 1;
    b->len = len;
    b->charged = 0;
    return b;
}

static void blob_unref(so_store_server *s, blob *b)
{
    if (!b || --b->refs) return;
    if (b->charged) s->buffered -= b->len;
    free(b);
}

/* The store lets go of a value; if replies still hold it, it now costs budget. */
static void blob_drop_from_store(so_store_server *s, blob *b)
{
    if (b->refs > 1 && !b->charged) {
        b->charged = 1;
        s->buffered += b->len;
    }
    blob_unref(s, b);
}

static uint32_t hash_key(const char *k, uint32_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h % NBUCKETS;
}

static entry **find_slot(so_store_server *s, const char *k, uint32_t n)
{
    entry **pp = &s->buckets[hash_key(k, n)];
    while (*pp && !((*pp)->klen == n && memcmp((*pp)->key, k, n) == 0)) pp = &(*pp)->next;
    return pp;
}

/* Replace (or create) the value of a key, taking the caller's reference to `val`.
 * 0, or -1 on allocation failure (val untouched). */
static int kv_put(so_store_server *s, const char *k, uint32_t n, blob *val)
{
    entry **pp = find_slot(s, k, n);
    if (*pp) {
        blob_drop_from_store(s, (*pp)->val);
        (*pp)->val = val;
        return 0;
    }
    entry *e = calloc(1, sizeof(*e));
    char *kc = malloc(n ? n : 1);
    if (!e || !kc) {
        free(e);
        free(kc);
        return -1;
    }
    memcpy(kc, k, n);
    e->key = kc;
    e->klen = n;
    e->val = val;
    *pp = e;
    s->nkeys++;
    return 0;
}

static void request_reset(so_store_server *s, conn *c)
{
    free(c->key);
    c->key = NULL;
    blob_unref(s, c->val);
    c->val = NULL;
    s->buffered -= c->charged;
    c->charged = 0;
    c->hdr_got = 0;
    c->body_got = 0;
    c->want_budget = 0;
    c->parked = 0;
}

static int reply_pending(const conn *c) { return c->out_off < c->out_total; }

/* Close the socket and free what the connection holds; the slot is reclaimed by
 * conns_compact so indices stay valid while the loop walks them. */
static void conn_kill(so_store_server *s, conn *c)
{
    if (c->fd < 0) return;
    close(c->fd);
    c->fd = -1;
    request_reset(s, c);
    blob_unref(s, c->out_blob);
    c->out_blob = NULL;
    c->out_off = c->out_total = 0;
}

static void conns_compact(so_store_server *s)
{
    int j = 0;
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i]->fd < 0)
            free(s->conns[i]);
        else
            s->conns[j++] = s->conns[i];
    }
    s->nconns = j;
}

static int live_conns(const so_store_server *s)
{
    int n = 0;
    for (int i = 0; i < s->nconns; i++) n += s->conns[i]->fd >= 0;
    return n;
}

/* Queue the reply: an inline payload (<= INLINE_REPLY bytes) or a reference to a blob. */
static void conn_reply(conn *c, uint32_t status, const void *payload, uint64_t len, blob *b)
{
    put_u32(c->out, RESP_MAGIC);
    put_u32(c->out + 4, status);
    put_u64(c->out + 8, b ? b->len : len);
    c->out_inline = RESP_HDR;
    if (!b && len) {
        memcpy(c->out + RESP_HDR, payload, len);
        c->out_inline += len;
    }
    if (b) b->refs++;
    c->out_blob = b;
    c->out_off = 0;
    c->out_total = c->out_inline + (b ? b->len : 0);
}

static void reply_error(conn *c, const char *msg)
{
    size_t n = strlen(msg);
    conn_reply(c, 1, msg, n > INLINE_REPLY ? INLINE_REPLY : n, NULL);
}

/* Answer every parked GET/WAIT on key k (after a SET/ADD created or changed it). */
static void wake_waiters(so_store_server *s, const char *k, uint32_t n, blob *val)
{
    for (int i = 0; i < s->nconns; i++) {
        conn *c = s->conns[i];
        if (c->fd < 0 || !c->parked || c->klen != n || memcmp(c->key, k, n) != 0) continue;
        conn_reply(c, 0, NULL, 0, c->cmd == SO_STORE_CMD_GET ? val : NULL);
        request_reset(s, c);
    }
}

static int parse_i64(const char *p, uint64_t n, int64_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

/* A stored copy of len bytes (for values built from part of a request). */
static blob *blob_copy(const char *p, uint64_t len)
{
    blob *b = blob_new(len);
    if (b && len) memcpy(b->data, p, len);
    return b;
}

#define OOM_MSG "store server out of memory"

/* Execute the complete request held in c.  Returns -1 to drop the connection. */
static int handle_request(so_store_server *s, conn *c)
{
    const char *k = c->key;
    uint32_t n = c->klen;
    const char *v = c->val->data;
    uint64_t vlen = c->vlen;
    entry **pp = find_slot(s, k, n);
    c->used = 1;
    switch (c->cmd) {
    case SO_STORE_CMD_SET: {
        blob *val = c->val; /* the request's buffer becomes the stored value: no copy */
        if (kv_put(s, k, n, val) < 0) {
            reply_error(c, OOM_MSG);
            break;
        }
        c->val = NULL;
        conn_reply(c, 0, NULL, 0, NULL);
        wake_waiters(s, k, n, val);
        break;
    }
    case SO_STORE_CMD_GET:
    case SO_STORE_CMD_WAIT:
        if (!*pp) {
            c->parked = 1; /* keep the key until answered */
            return 0;
        }
        conn_reply(c, 0, NULL, 0, c->cmd == SO_STORE_CMD_GET ? (*pp)->val : NULL);
        break;
    case SO_STORE_CMD_ADD: {
        if (vlen != 8) return -1;
        int64_t delta = (int64_t)get_u64((const unsigned char *)v), cur = 0;
        if (*pp && parse_i64((*pp)->val->data, (*pp)->val->len, &cur) < 0) {
            reply_error(c, "add: existing value is not an integer");
            break;
        }
        int64_t nv = (int64_t)((uint64_t)cur + (uint64_t)delta);
        char txt[24];
        int tl = snprintf(txt, sizeof txt, "%lld", (long long)nv);
        blob *val = blob_copy(txt, (uint64_t)tl);
        if (!val || kv_put(s, k, n, val) < 0) {
            free(val);
            reply_error(c, OOM_MSG);
            break;
        }
        unsigned char out[8];
        put_u64(out, (uint64_t)nv);
        conn_reply(c, 0, out, 8, NULL);
        wake_waiters(s, k, n, val);
        break;
    }
    case SO_STORE_CMD_CHECK: {
        unsigned char b = *pp != NULL;
        conn_reply(c, 0, &b, 1, NULL);
        break;
    }
    case SO_STORE_CMD_DELETE: {
        unsigned char b = *pp != NULL;
        if (*pp) {
            entry *e = *pp;
            *pp = e->next;
            free(e->key);
            blob_drop_from_store(s, e->val);
            free(e);
            s->nkeys--;
        }
        conn_reply(c, 0, &b, 1, NULL);
        break;
    }
    case SO_STORE_CMD_NUM_KEYS: {
        unsigned char out[8];
        put_u64(out, (uint64_t)s->nkeys);
        conn_reply(c, 0, out, 8, NULL);
        break;
    }
    case SO_STORE_CMD_COMPARE_SET: {
        /* torch semantics: set to desired if the current value equals expected, or if the
         * key is missing and expected is empty; reply with the value now stored (or, when
         * the key is missing and expected is not empty, with expected). */
        if (vlen < 8) return -1;
        uint64_t elen = get_u64((const unsigned char *)v);
        if (elen > vlen - 8) return -1;
        const char *exp = v + 8, *des = v + 8 + elen;
        uint64_t dlen = vlen - 8 - elen;
        int do_set = (*pp && (*pp)->val->len == elen && memcmp((*pp)->val->data, exp, elen) == 0) ||
                     (!*pp && elen == 0);
        if (do_set) {
            blob *val = blob_copy(des, dlen);
            if (!val || kv_put(s, k, n, val) < 0) {
                free(val);
                reply_error(c, OOM_MSG);
                break;
            }
            conn_reply(c, 0, NULL, 0, val);
            wake_waiters(s, k, n, val);
        } else if (*pp) {
            conn_reply(c, 0, NULL, 0, (*pp)->val);
        } else {
            blob *e = blob_copy(exp, elen); /* echoed once, owned by the reply only */
            if (!e) {
                reply_error(c, OOM_MSG);
                break;
            }
            conn_reply(c, 0, NULL, 0, e);
            blob_unref(s, e);
        }
        break;
    }
    default:
        return -1;
    }
    request_reset(s, c);
    return 0;
}

static int would_block(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

static uint64_t budget_left(const so_store_server *s)
{
    return s->buffered >= SO_STORE_BUFFER_BUDGET ? 0 : SO_STORE_BUFFER_BUDGET - s->buffered;
}

/* What evicting c would give back to the budget. */
static uint64_t conn_budget(const conn *c)
{
    return c->charged + (c->out_blob && c->out_blob->charged && c->out_blob->refs == 1
                             ? c->out_blob->len
                             : 0);
}

/* Make room for `need` budget bytes by evicting connections that hold budget and have
 * been stalled for STALL_MS (oldest progress first), never `keep`.  1 if it fits now. */
static int budget_make_room(so_store_server *s, uint64_t need, const conn *keep, int64_t now)
{
    while (budget_left(s) < need) {
        conn *victim = NULL;
        for (int i = 0; i < s->nconns; i++) {
            conn *c = s->conns[i];
            if (c->fd < 0 || c == keep || !conn_budget(c) || now - c->t_progress < STALL_MS)
                continue;
            if (!victim || c->t_progress < victim->t_progress) victim = c;
        }
        if (!victim) return 0;
        conn_kill(s, victim);
    }
    return 1;
}

/* Allocate and charge the body of the request whose header c just parsed.  0 when
 * admitted, 1 when it must wait for budget, -1 on allocation failure. */
static int admit_body(so_store_server *s, conn *c, int64_t now)
{
    uint64_t need = (uint64_t)c->klen + c->vlen;
    if (!budget_make_room(s, need, c, now)) {
        c->want_budget = 1;
        return 1;
    }
    c->key = malloc(c->klen + 1);
    c->val = blob_new(c->vlen);
    if (!c->key || !c->val) return -1;
    c->charged = need;
    s->buffered += need;
    c->want_budget = 0;
    return 0;
}

/* Read what is available.  Returns -1 to drop the connection (closed, error, bad frame). */
static int conn_read(so_store_server *s, conn *c, int64_t now)
{
    if (c->parked) {
        /* The protocol is strictly request/response: bytes now are a violation, and
         * EOF means the client gave up.  Either way the connection goes. */
        return -1;
    }
    for (int rounds = 0; rounds < 64 && !reply_pending(c) && !c->want_budget; rounds++) {
        if (c->hdr_got < REQ_HDR) {
            ssize_t r = recv(c->fd, c->hdr + c->hdr_got, REQ_HDR - c->hdr_got, 0);
            if (r == 0) return -1;
            if (r < 0) return would_block() ? 0 : -1;
            c->t_progress = now;
            c->hdr_got += (size_t)r;
            if (c->hdr_got < REQ_HDR) continue;
            c->cmd = get_u32(c->hdr + 4);
            c->klen = get_u32(c->hdr + 8);
            c->vlen = get_u64(c->hdr + 12);
            if (get_u32(c->hdr) != REQ_MAGIC || c->cmd < 1 || c->cmd > SO_STORE_CMD_MAX ||
                c->klen > SO_STORE_MAX_KEY || c->vlen > SO_STORE_MAX_VALUE + 8)
                return -1;
            int a = admit_body(s, c, now);
            if (a < 0) return -1;
            if (a > 0) return 0; /* not read from until the budget admits it */
        }
        uint64_t need = (uint64_t)c->klen + c->vlen;
        if (c->body_got < need) {
            char *dst;
            uint64_t room;
            if (c->body_got < c->klen) {
                dst = c->key + c->body_got;
                room = c->klen - c->body_got;
            } else {
                dst = c->val->data + (c->body_got - c->klen);
                room = need - c->body_got;
            }
            size_t want = room > (1 << 20) ? (1 << 20) : (size_t)room;
            ssize_t r = recv(c->fd, dst, want, 0);
            if (r == 0) return -1;
            if (r < 0) return would_block() ? 0 : -1;
            c->t_progress = now;
            c->body_got += (uint64_t)r;
            if (c->body_got < need) continue;
        }
        if (handle_request(s, c) < 0) return -1;
        if (c->parked) return 0;
    }
    return 0; /* fairness: let other connections run; poll will call us again */
}

static int conn_write(conn *c, int64_t now)
{
    while (reply_pending(c)) {
        ssize_t w;
        if (c->out_off < c->out_inline) {
            w = send(c->fd, c->out + c->out_off, c->out_inline - c->out_off, MSG_NOSIGNAL);
        } else {
            uint64_t off = c->out_off - c->out_inline, left = c->out_blob->len - off;
            w = send(c->fd, c->out_blob->data + off, left > (1 << 20) ? (1 << 20) : left,
                     MSG_NOSIGNAL);
        }
        if (w < 0) return would_block() ? 0 : -1;
        c->out_off += (uint64_t)w;
        c->t_progress = now;
    }
    return 0;
}

/* Drop the finished reply (its blob reference) so the connection is read again. */
static void reply_done(so_store_server *s, conn *c)
{
    if (reply_pending(c) || !c->out_total) return;
    c->out_off = c->out_total = 0;
    blob_unref(s, c->out_blob);
    c->out_blob = NULL;
}

/* Eviction order, lowest first: never did any work and idle; stalled mid-frame or
 * waiting for budget; a reply not read for STALL_MS; did work, now idle; waiting in
 * GET/WAIT; last, a reply being read (evicting it could lose the answer to an executed
 * ADD, which the client would then retry). */
static int conn_class(const conn *c, int64_t now)
{
    if (c->parked) return 4;
    if (reply_pending(c)) return now - c->t_progress >= STALL_MS ? 2 : 5;
    if (c->hdr_got || c->want_budget) return 1;
    return c->used ? 3 : 0;
}

/* Close the least useful connection; 0 if there was none. */
static int evict_one(so_store_server *s)
{
    int64_t now = so_store_now_ms();
    conn *victim = NULL;
    int vclass = 99;
    for (int i = 0; i < s->nconns; i++) {
        conn *c = s->conns[i];
        if (c->fd < 0) continue;
        int k = conn_class(c, now);
        if (k < vclass || (k == vclass && c->t_progress < victim->t_progress)) {
            victim = c;
            vclass = k;
        }
    }
    if (!victim) return 0;
    conn_kill(s, victim);
    return 1;
}

/* The connection cap: leave descriptors for the rest of the process (Gloo, files). */
static int max_conns(void)
{
    struct rlimit rl;
    long lim = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lim = (long)rl.rlim_cur;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0) lim = MAX_CONNS_HARD;
    long reserve = lim / 8 > 64 ? lim / 8 : 64;
    long n = lim - reserve;
    if (n < 16) n = 16;
    return n > MAX_CONNS_HARD ? MAX_CONNS_HARD : (int)n;
}

static int conns_grow(so_store_server *s)
{
    if (s->nconns < s->cap_conns) return 0;
    int cap = s->cap_conns ? s->cap_conns * 2 : 256;
    conn **p = realloc(s->conns, sizeof(conn *) * (size_t)cap);
    if (!p) return -1;
    s->conns = p;
    s->cap_conns = cap;
    return 0;
}

static void server_accept(so_store_server *s, int64_t now)
{
    if (now < s->listen_paused_until) return;
    int limit = max_conns();
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                       errno == ENOMEM)) {
            /* Out of descriptors: free one from the least useful peer and retry. */
            if (!evict_one(s)) {
                s->listen_paused_until = now + 100;
                return;
            }
            fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        }
        if (fd < 0) return;
        /* Full: the newcomer replaces the least useful connection (it is not in the
         * table yet, so it cannot be the one chosen). */
        if (live_conns(s) >= limit && !evict_one(s)) {
            close(fd);
            continue;
        }
        conn *c = calloc(1, sizeof(*c));
        if (!c || conns_grow(s) < 0) {
            free(c);
            close(fd);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->t_connect = c->t_progress = now;
        s->conns[s->nconns++] = c;
    }
}

/* Close connections past their timeout; retry requests waiting for budget. */
static void server_sweep(so_store_server *s, int64_t now)
{
    for (int i = 0; i < s->nconns; i++) {
        conn *c = s->conns[i];
        if (c->fd < 0) continue;
        int64_t quiet = now - c->t_progress;
        int k = conn_class(c, now);
        if ((k == 0 && quiet > s->idle_ms) || (k == 1 && quiet > s->idle_ms) ||
            (k == 2 && quiet > 3 * s->idle_ms))
            conn_kill(s, c);
    }
    for (int i = 0; i < s->nconns; i++) {
        conn *c = s->conns[i];
        if (c->fd >= 0 && c->want_budget && admit_body(s, c, now) < 0) conn_kill(s, c);
    }
}

static void *server_main(void *arg)
{
    so_store_server *s = arg;
    struct pollfd *pfds = NULL;
    int pcap = 0;
    while (!s->stop) {
        int n = s->nconns;
        if (n + 2 > pcap) {
            int cap = (n + 2) * 2;
            struct pollfd *p = realloc(pfds, sizeof(struct pollfd) * (size_t)cap);
            if (!p) break;
            pfds = p;
            pcap = cap;
        }
        int64_t now = so_store_now_ms();
        pfds[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = now < s->listen_paused_until ? -1 : s->listen_fd,
                                  .events = POLLIN};
        for (int i = 0; i < n; i++) {
            conn *c = s->conns[i];
            /* Back-pressure: a connection with a reply pending, or a frame waiting for
             * budget, is not read from (POLLHUP/POLLERR still report a dead peer). */
            short ev = reply_pending(c) ? POLLOUT : c->want_budget ? 0 : POLLIN;
            pfds[2 + i] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        /* Bounded, so timeouts are swept and `stop` is seen even if the wake byte were
         * lost. */
        int r = poll(pfds, (nfds_t)(n + 2), 250);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pfds[0].revents) break;
        now = so_store_now_ms();
        for (int i = 0; i < n; i++) {
            conn *c = s->conns[i];
            short ev = pfds[2 + i].revents;
            if (c->fd < 0 || !ev) continue; /* evicted while this loop ran */
            /* A frame waiting for budget is not read, so a dead peer shows only as
             * POLLHUP/POLLERR (which poll reports regardless): drop it, or poll spins. */
            int bad = c->want_budget && (ev & (POLLHUP | POLLERR));
            if (!bad && (ev & POLLOUT)) bad = conn_write(c, now) < 0;
            if (!bad && reply_pending(c) && (ev & (POLLHUP | POLLERR))) bad = 1;
            if (!bad) reply_done(s, c);
            if (!bad && !reply_pending(c) && (ev & (POLLIN | POLLHUP | POLLERR))) {
                bad = conn_read(s, c, now) < 0;
                if (!bad) bad = conn_write(c, now) < 0;
                if (!bad) reply_done(s, c);
            }
            if (bad) conn_kill(s, c);
        }
        /* Replies queued by wake_waiters for connections not polled for output. */
        for (int i = 0; i < s->nconns; i++) {
            conn *c = s->conns[i];
            if (c->fd < 0 || !reply_pending(c)) continue;
            if (conn_write(c, now) < 0)
                conn_kill(s, c);
            else
                reply_done(s, c);
        }
        server_sweep(s, now);
        conns_compact(s);
        if (pfds[1].revents & POLLIN) server_accept(s, now);
    }
    free(pfds);
    return NULL;
}

int so_store_server_start(const char *host, int port, so_store_server **out, int *port_out,
                          char *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (gai != 0) {
        SET_ERR("cannot resolve store address %s:%d: %s", host, port, gai_strerror(gai));
        return SO_STORE_EIO;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        SET_ERR("cannot listen on %s:%d: %s", host, port, strerror(saved));
        return SO_STORE_EIO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    so_store_server *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        SET_ERR("out of memory");
        return SO_STORE_ENOMEM;
    }
    s->listen_fd = fd;
    s->idle_ms = IDLE_MS_DEFAULT;
    const char *idle = getenv("SHARDOPT_STORE_IDLE_TIMEOUT");
    if (idle && *idle) {
        char *end;
        double sec = strtod(idle, &end);
        if (*end || !(sec > 0 && sec <= 86400)) {
            SET_ERR("SHARDOPT_STORE_IDLE_TIMEOUT must be a number of seconds in (0, 86400], "
                    "got '%.64s'", idle);
            close(fd);
            free(s);
            return SO_STORE_EIO;
        }
        s->idle_ms = (int64_t)(sec * 1000);
    }
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        SET_ERR("pipe: %s", strerror(errno));
        close(fd);
        free(s);
        return SO_STORE_EIO;
    }
    int prc = pthread_create(&s->thread, NULL, server_main, s);
    if (prc != 0) {
        SET_ERR("cannot start store server thread: %s", strerror(prc));
        close(fd);
        close(s->wake[0]);
        close(s->wake[1]);
        free(s);
        return SO_STORE_EIO;
    }
    *out = s;
    return SO_STORE_OK;
}

void so_store_server_stop(so_store_server *s)
{
    if (!s) return;
    s->stop = 1;
    ssize_t ignored = write(s->wake[1], "x", 1);
    (void)ignored;
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->nconns; i++) conn_kill(s, s->conns[i]);
    conns_compact(s);
    free(s->conns);
    for (int b = 0; b < NBUCKETS; b++) {
        entry *e = s->buckets[b];
        while (e) {
            entry *next = e->next;
            free(e->key);
            blob_drop_from_store(s, e->val);
            free(e);
            e = next;
        }
    }
    close(s->listen_fd);
    close(s->wake[0]);
    close(s->wake[1]);
    free(s);
}


