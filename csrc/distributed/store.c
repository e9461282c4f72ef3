/* store.c — TCP key-value store: server thread and blocking client (see store.h).
 *
 * Pure C + POSIX; never touches Python, so it runs with the GIL released.
 */
#define _GNU_SOURCE
#include "store.h"

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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAGIC 0x564B4F53u /* "SOKV" */
#define RESP_MAGIC 0x524B4F53u /* "SOKR" */
#define REQ_HDR 20
#define RESP_HDR 16
/* Hard cap on simultaneous connections: each costs a descriptor and a poll slot. */
#define MAX_CONNS 1024
#define NBUCKETS 1024

static int set_err(char *err, const char *file, int line, const char *fmt, ...)
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
#define SET_ERR(...) set_err(err, __FILE__, __LINE__, __VA_ARGS__)

int64_t so_store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ======================================================================================
 * Server
 * ==================================================================================== */

typedef struct entry {
    struct entry *next;
    char *key;
    uint32_t klen;
    char *val;
    uint64_t vlen;
} entry;

typedef struct {
    int fd;
    unsigned char hdr[REQ_HDR];
    size_t hdr_got;
    uint32_t cmd, klen;
    uint64_t vlen;
    char *body; /* key followed by value */
    uint64_t body_got;
    int parked; /* a GET/WAIT is waiting for its key; nothing else may arrive meanwhile */
    unsigned char *out;
    size_t out_len, out_off, out_cap;
} conn;

struct so_store_server {
    int listen_fd;
    int wake[2]; /* pipe: a byte here makes the loop notice `stop` */
    volatile int stop;
    pthread_t thread;
    conn *conns[MAX_CONNS];
    int nconns;
    entry *buckets[NBUCKETS];
    int64_t nkeys;
};

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

/* Replace (or create) the value of a key, taking ownership of `val`. 0 / -1 (ENOMEM). */
static int kv_put(so_store_server *s, const char *k, uint32_t n, char *val, uint64_t vlen)
{
    entry **pp = find_slot(s, k, n);
    if (*pp) {
        free((*pp)->val);
        (*pp)->val = val;
        (*pp)->vlen = vlen;
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
    e->vlen = vlen;
    *pp = e;
    s->nkeys++;
    return 0;
}

static void conn_close(so_store_server *s, int i)
{
    conn *c = s->conns[i];
    close(c->fd);
    free(c->body);
    free(c->out);
    free(c);
    s->conns[i] = s->conns[--s->nconns];
}

/* Queue a response; returns -1 on allocation failure (the caller drops the connection). */
static int conn_reply(conn *c, uint32_t status, const void *payload, uint64_t len)
{
    size_t need = c->out_len + RESP_HDR + len;
    if (need > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 256;
        while (cap < need) cap *= 2;
        unsigned char *p = realloc(c->out, cap);
        if (!p) return -1;
        c->out = p;
        c->out_cap = cap;
    }
    unsigned char *h = c->out + c->out_len;
    put_u32(h, RESP_MAGIC);
    put_u32(h + 4, status);
    put_u64(h + 8, len);
    if (len) memcpy(h + RESP_HDR, payload, len);
    c->out_len += RESP_HDR + len;
    return 0;
}

static int reply_error(conn *c, const char *msg) { return conn_reply(c, 1, msg, strlen(msg)); }

/* Answer every parked GET/WAIT on key k (after a SET/ADD created or changed it). */
static void wake_waiters(so_store_server *s, const char *k, uint32_t n, const entry *e)
{
    for (int i = 0; i < s->nconns; i++) {
        conn *c = s->conns[i];
        if (!c->parked || c->klen != n || memcmp(c->body, k, n) != 0) continue;
        c->parked = 0;
        int rc = c->cmd == SO_STORE_CMD_GET ? conn_reply(c, 0, e->val, e->vlen)
                                            : conn_reply(c, 0, NULL, 0);
        free(c->body);
        c->body = NULL;
        c->hdr_got = 0;
        if (rc < 0) c->parked = -1; /* dropped by the loop */
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

/* Execute the complete request held in c.  Returns -1 to drop the connection. */
static int handle_request(so_store_server *s, conn *c)
{
    const char *k = c->body;
    uint32_t n = c->klen;
    char *v = c->body + n;
    uint64_t vlen = c->vlen;
    entry **pp = find_slot(s, k, n);
    int rc = 0;
    switch (c->cmd) {
    case SO_STORE_CMD_SET: {
        char *copy = malloc(vlen ? vlen : 1);
        if (!copy) return reply_error(c, "store server out of memory");
        memcpy(copy, v, vlen);
        if (kv_put(s, k, n, copy, vlen) < 0) {
            free(copy);
            return reply_error(c, "store server out of memory");
        }
        rc = conn_reply(c, 0, NULL, 0);
        wake_waiters(s, k, n, *find_slot(s, k, n));
        break;
    }
    case SO_STORE_CMD_GET:
    case SO_STORE_CMD_WAIT:
        if (!*pp) {
            c->parked = 1; /* keep body (the key) until answered */
            return 0;
        }
        rc = c->cmd == SO_STORE_CMD_GET ? conn_reply(c, 0, (*pp)->val, (*pp)->vlen)
                                        : conn_reply(c, 0, NULL, 0);
        break;
    case SO_STORE_CMD_ADD: {
        if (vlen != 8) return -1;
        int64_t delta = (int64_t)get_u64((unsigned char *)v), cur = 0;
        if (*pp && parse_i64((*pp)->val, (*pp)->vlen, &cur) < 0) {
            rc = reply_error(c, "add: existing value is not an integer");
            break;
        }
        int64_t nv = (int64_t)((uint64_t)cur + (uint64_t)delta);
        char *txt = malloc(24);
        if (!txt) return reply_error(c, "store server out of memory");
        int tl = snprintf(txt, 24, "%lld", (long long)nv);
        if (kv_put(s, k, n, txt, (uint64_t)tl) < 0) {
            free(txt);
            return reply_error(c, "store server out of memory");
        }
        unsigned char out[8];
        put_u64(out, (uint64_t)nv);
        rc = conn_reply(c, 0, out, 8);
        wake_waiters(s, k, n, *find_slot(s, k, n));
        break;
    }
    case SO_STORE_CMD_CHECK: {
        unsigned char b = *pp != NULL;
        rc = conn_reply(c, 0, &b, 1);
        break;
    }
    case SO_STORE_CMD_DELETE: {
        unsigned char b = *pp != NULL;
        if (*pp) {
            entry *e = *pp;
            *pp = e->next;
            free(e->key);
            free(e->val);
            free(e);
            s->nkeys--;
        }
        rc = conn_reply(c, 0, &b, 1);
        break;
    }
    case SO_STORE_CMD_NUM_KEYS: {
        unsigned char out[8];
        put_u64(out, (uint64_t)s->nkeys);
        rc = conn_reply(c, 0, out, 8);
        break;
    }
    case SO_STORE_CMD_COMPARE_SET: {
        /* torch semantics: set to desired if the current value equals expected, or if the
         * key is missing and expected is empty; reply with the value now stored (or, when
         * the key is missing and expected is not empty, with expected). */
        if (vlen < 8) return -1;
        uint64_t elen = get_u64((unsigned char *)v);
        if (elen > vlen - 8) return -1;
        const char *exp = v + 8, *des = v + 8 + elen;
        uint64_t dlen = vlen - 8 - elen;
        int do_set = (*pp && (*pp)->vlen == elen && memcmp((*pp)->val, exp, elen) == 0) ||
                     (!*pp && elen == 0);
        if (do_set) {
            char *copy = malloc(dlen ? dlen : 1);
            if (!copy) return reply_error(c, "store server out of memory");
            memcpy(copy, des, dlen);
            if (kv_put(s, k, n, copy, dlen) < 0) {
                free(copy);
                return reply_error(c, "store server out of memory");
            }
            entry *e = *find_slot(s, k, n);
            rc = conn_reply(c, 0, e->val, e->vlen);
            wake_waiters(s, k, n, e);
        } else if (*pp) {
            rc = conn_reply(c, 0, (*pp)->val, (*pp)->vlen);
        } else {
            rc = conn_reply(c, 0, exp, elen);
        }
        break;
    }
    default:
        return -1;
    }
    free(c->body);
    c->body = NULL;
    c->hdr_got = 0;
    return rc;
}

/* Read what is available.  Returns -1 to drop the connection (closed, error, bad frame). */
static int conn_read(so_store_server *s, conn *c)
{
    if (c->parked) {
        /* The protocol is strictly request/response: bytes now are a violation, and
         * EOF means the client gave up.  Either way the connection goes. */
        return -1;
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        if (c->hdr_got < REQ_HDR) {
            ssize_t r = recv(c->fd, c->hdr + c->hdr_got, REQ_HDR - c->hdr_got, 0);
            if (r == 0) return -1;
            if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
            c->hdr_got += (size_t)r;
            if (c->hdr_got < REQ_HDR) continue;
            c->cmd = get_u32(c->hdr + 4);
            c->klen = get_u32(c->hdr + 8);
            c->vlen = get_u64(c->hdr + 12);
            if (get_u32(c->hdr) != REQ_MAGIC || c->cmd < 1 || c->cmd > SO_STORE_CMD_MAX ||
                c->klen > SO_STORE_MAX_KEY || c->vlen > SO_STORE_MAX_VALUE + 8)
                return -1;
            c->body = malloc(c->klen + c->vlen + 1);
            if (!c->body) return -1;
            c->body_got = 0;
        }
        uint64_t need = c->klen + c->vlen;
        if (c->body_got < need) {
            size_t want = need - c->body_got > (1 << 20) ? (1 << 20) : (size_t)(need - c->body_got);
            ssize_t r = recv(c->fd, c->body + c->body_got, want, 0);
            if (r == 0) return -1;
            if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
            c->body_got += (uint64_t)r;
            if (c->body_got < need) continue;
        }
        if (handle_request(s, c) < 0) return -1;
        if (c->parked) return 0;
    }
    return 0; /* fairness: let other connections run; poll will call us again */
}

static int conn_write(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static void server_accept(so_store_server *s)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (s->nconns >= MAX_CONNS) {
            close(fd);
            continue;
        }
        conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        s->conns[s->nconns++] = c;
    }
}

static void *server_main(void *arg)
{
    so_store_server *s = arg;
    struct pollfd *pfds = malloc(sizeof(struct pollfd) * (MAX_CONNS + 2));
    if (!pfds) return NULL;
    while (!s->stop) {
        int n = s->nconns;
        pfds[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        for (int i = 0; i < n; i++) {
            conn *c = s->conns[i];
            pfds[2 + i] = (struct pollfd){.fd = c->fd,
                                          .events = POLLIN | (c->out_len ? POLLOUT : 0)};
        }
        /* A bounded wait so `stop` is seen even if the wake byte were lost. */
        int r = poll(pfds, (nfds_t)(n + 2), 1000);
        if (r < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pfds[0].revents) break;
        /* Walk backwards: conn_close moves the last connection into slot i. */
        for (int i = n - 1; i >= 0; i--) {
            conn *c = s->conns[i];
            short ev = pfds[2 + i].revents;
            int bad = c->parked < 0;
            if (!bad && (ev & POLLOUT)) bad = conn_write(c) < 0;
            if (!bad && (ev & (POLLIN | POLLHUP | POLLERR))) {
                bad = conn_read(s, c) < 0;
                if (!bad && c->out_len) bad = conn_write(c) < 0;
            }
            if (!bad && c->parked < 0) bad = 1;
            if (bad) conn_close(s, i);
        }
        /* Replies queued by wake_waiters for connections not polled for output yet. */
        for (int i = s->nconns - 1; i >= 0; i--)
            if (s->conns[i]->out_len && conn_write(s->conns[i]) < 0) conn_close(s, i);
        if (pfds[1].revents & POLLIN) server_accept(s);
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
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 512) == 0) break;
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
    while (s->nconns) conn_close(s, s->nconns - 1);
    for (int b = 0; b < NBUCKETS; b++) {
        entry *e = s->buckets[b];
        while (e) {
            entry *next = e->next;
            free(e->key);
            free(e->val);
            free(e);
            e = next;
        }
    }
    close(s->listen_fd);
    close(s->wake[0]);
    close(s->wake[1]);
    free(s);
}

/* ======================================================================================
 * Client
 * ==================================================================================== */

void so_store_client_init(so_store_client *c, const char *host, int port)
{
    c->fd = -1;
    c->connected_once = 0;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
}

void so_store_client_close(so_store_client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int remaining_ms(int64_t deadline)
{
    if (deadline < 0) return 1000;
    int64_t left = deadline - so_store_now_ms();
    if (left <= 0) return 0;
    return left > 1000 ? 1000 : (int)left;
}

/* Non-blocking connect to one address, bounded by the deadline. */
static int connect_one(const struct addrinfo *a, int64_t deadline)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) goto fail;
        for (;;) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int ms = remaining_ms(deadline);
            if (ms == 0) {
                errno = ETIMEDOUT;
                goto fail;
            }
            int r = poll(&p, 1, ms);
            if (r < 0 && errno != EINTR) goto fail;
            if (r > 0) break;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            errno = soerr;
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail: {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}
}

int so_store_client_connect(so_store_client *c, int64_t timeout_ms, char *err)
{
    if (c->connected_once && (timeout_ms < 0 || timeout_ms > 1000)) timeout_ms = 1000;
    int64_t deadline = timeout_ms < 0 ? -1 : so_store_now_ms() + timeout_ms;
    if (c->fd >= 0) return SO_STORE_OK;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", c->port);
    int gai = getaddrinfo(c->host, portstr, &hints, &res);
    if (gai != 0) {
        SET_ERR("cannot resolve store address %s:%d: %s", c->host, c->port, gai_strerror(gai));
        return SO_STORE_EIO;
    }
    int last = 0;
    /* Retry with a short back-off: the server may not be listening yet. */
    for (int attempt = 0;; attempt++) {
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            int fd = connect_one(a, deadline);
            if (fd >= 0) {
                freeaddrinfo(res);
                c->fd = fd;
                c->connected_once = 1;
                return SO_STORE_OK;
            }
            last = errno;
        }
        int ms = remaining_ms(deadline);
        if (ms == 0) break;
        struct timespec ts = {0, (attempt < 10 ? 10 : 100) * 1000000L};
        if (ms < (attempt < 10 ? 10 : 100)) ts.tv_nsec = ms * 1000000L;
        nanosleep(&ts, NULL);
    }
    freeaddrinfo(res);
    SET_ERR("timed out after %lld ms connecting to the store at %s:%d (last error: %s)",
            (long long)timeout_ms, c->host, c->port, strerror(last));
    return SO_STORE_ETIMEOUT;
}

/* 0, or SO_STORE_EIO / SO_STORE_ETIMEOUT with err set. */
static int io_all(so_store_client *c, int writing, void *buf, uint64_t len, int64_t deadline,
                  int64_t timeout_ms, char *err)
{
    unsigned char *p = buf;
    while (len) {
        struct pollfd pf = {.fd = c->fd, .events = writing ? POLLOUT : POLLIN};
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            SET_ERR("timed out after %lld ms waiting for the store at %s:%d",
                    (long long)timeout_ms, c->host, c->port);
            return SO_STORE_ETIMEOUT;
        }
        int r = poll(&pf, 1, ms);
        if (r < 0 && errno != EINTR) goto ioerr;
        if (r <= 0) continue;
        size_t chunk = len > (1u << 20) ? (1u << 20) : (size_t)len;
        ssize_t n = writing ? send(c->fd, p, chunk, MSG_NOSIGNAL | MSG_DONTWAIT)
                            : recv(c->fd, p, chunk, MSG_DONTWAIT);
        if (n == 0 && !writing) {
            SET_ERR("connection to the store at %s:%d was closed by the server", c->host,
                    c->port);
            return SO_STORE_EIO;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
            goto ioerr;
        }
        p += n;
        len -= (uint64_t)n;
    }
    return SO_STORE_OK;
ioerr:
    SET_ERR("connection to the store at %s:%d failed: %s", c->host, c->port, strerror(errno));
    return SO_STORE_EIO;
}

int so_store_request(so_store_client *c, uint32_t cmd, const char *key, uint32_t klen,
                     const char *val, uint64_t vlen, int64_t timeout_ms, char **resp,
                     uint64_t *resp_len, char *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : so_store_now_ms() + timeout_ms;
    *resp = NULL;
    *resp_len = 0;
    int rc = so_store_client_connect(c, timeout_ms, err);
    if (rc) return rc;
    unsigned char hdr[REQ_HDR];
    put_u32(hdr, REQ_MAGIC);
    put_u32(hdr + 4, cmd);
    put_u32(hdr + 8, klen);
    put_u64(hdr + 12, vlen);
    if ((rc = io_all(c, 1, hdr, REQ_HDR, deadline, timeout_ms, err)) ||
        (klen && (rc = io_all(c, 1, (void *)key, klen, deadline, timeout_ms, err))) ||
        (vlen && (rc = io_all(c, 1, (void *)val, vlen, deadline, timeout_ms, err))))
        goto fail;
    unsigned char rh[RESP_HDR];
    if ((rc = io_all(c, 0, rh, RESP_HDR, deadline, timeout_ms, err))) goto fail;
    uint64_t len = get_u64(rh + 8);
    if (get_u32(rh) != RESP_MAGIC || len > SO_STORE_MAX_VALUE + 4096) {
        SET_ERR("malformed reply from the store at %s:%d", c->host, c->port);
        rc = SO_STORE_EIO;
        goto fail;
    }
    char *buf = malloc(len + 1);
    if (!buf) {
        SET_ERR("out of memory reading a %llu-byte store reply", (unsigned long long)len);
        rc = SO_STORE_ENOMEM;
        goto fail;
    }
    if (len && (rc = io_all(c, 0, buf, len, deadline, timeout_ms, err))) {
        free(buf);
        goto fail;
    }
    buf[len] = 0;
    if (get_u32(rh + 4) != 0) {
        SET_ERR("store server error: %s", buf);
        free(buf);
        return SO_STORE_EREMOTE;
    }
    *resp = buf;
    *resp_len = len;
    return SO_STORE_OK;
fail:
    so_store_client_close(c);
    return rc;
}
