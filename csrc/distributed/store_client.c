/* store_client.c — the TCP store's blocking client (see store.h): one request/response at
 * a time, every wait bounded by a deadline, one transparent retry when the server had
 * closed an idle connection.
 *
 * Pure C + POSIX; never touches Python, so it runs with the GIL released.  Errors are a
 * negative SO_STORE_* code plus a message in the caller's buffer (store_py.c raises it).
 */
#define _GNU_SOURCE
#include "store.h"
#include "store_wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


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
                  int64_t timeout_ms, uint64_t *moved, char *err)
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
        if (moved) *moved += (uint64_t)n;
    }
    return SO_STORE_OK;
ioerr:
    SET_ERR("connection to the store at %s:%d failed: %s", c->host, c->port, strerror(errno));
    return SO_STORE_EIO;
}

/* One attempt.  *stale is set when it failed before any reply byte arrived on a
 * connection made before this call: the server closed it while idle (evicted, or the
 * idle timeout), or before executing the request (a stalled or unadmitted frame), so the
 * request may be sent again on a fresh connection. */
static int request_once(so_store_client *c, uint32_t cmd, const char *key, uint32_t klen,
                        const char *val, uint64_t vlen, int64_t deadline, int64_t timeout_ms,
                        char **resp, uint64_t *resp_len, int *stale, char *err)
{
    *stale = 0;
    int64_t left = deadline < 0 ? -1 : deadline - so_store_now_ms();
    int reused = c->fd >= 0; /* connected before this call */
    int rc = so_store_client_connect(c, deadline < 0 ? -1 : left < 0 ? 0 : left, err);
    if (rc) return rc;
    uint64_t got = 0;
    unsigned char hdr[REQ_HDR];
    put_u32(hdr, REQ_MAGIC);
    put_u32(hdr + 4, cmd);
    put_u32(hdr + 8, klen);
    put_u64(hdr + 12, vlen);
    char *buf = NULL;
    unsigned char rh[RESP_HDR];
    if ((rc = io_all(c, 1, hdr, REQ_HDR, deadline, timeout_ms, NULL, err)) ||
        (klen && (rc = io_all(c, 1, (void *)key, klen, deadline, timeout_ms, NULL, err))) ||
        (vlen && (rc = io_all(c, 1, (void *)val, vlen, deadline, timeout_ms, NULL, err))) ||
        (rc = io_all(c, 0, rh, RESP_HDR, deadline, timeout_ms, &got, err))) {
        *stale = reused && rc == SO_STORE_EIO && got == 0;
        goto done;
    }
    uint64_t len = get_u64(rh + 8);
    if (get_u32(rh) != RESP_MAGIC || len > SO_STORE_MAX_VALUE + 4096) {
        SET_ERR("malformed reply from the store at %s:%d", c->host, c->port);
        rc = SO_STORE_EIO;
        goto done;
    }
    buf = malloc(len + 1);
    if (!buf) {
        SET_ERR("out of memory reading a %llu-byte store reply", (unsigned long long)len);
        rc = SO_STORE_ENOMEM;
        goto done;
    }
    if (len && (rc = io_all(c, 0, buf, len, deadline, timeout_ms, NULL, err))) goto done;
    buf[len] = 0;
    if (get_u32(rh + 4) != 0) {
        SET_ERR("store server error: %s", buf);
        free(buf);
        return SO_STORE_EREMOTE;
    }
    *resp = buf;
    *resp_len = len;
    return SO_STORE_OK;
done:
    free(buf);
    so_store_client_close(c);
    return rc;
}

int so_store_request(so_store_client *c, uint32_t cmd, const char *key, uint32_t klen,
                     const char *val, uint64_t vlen, int64_t timeout_ms, char **resp,
                     uint64_t *resp_len, char *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : so_store_now_ms() + timeout_ms;
    *resp = NULL;
    *resp_len = 0;
    int stale;
    int rc = request_once(c, cmd, key, klen, val, vlen, deadline, timeout_ms, resp, resp_len,
                          &stale, err);
    if (rc == SO_STORE_EIO && stale) {
        char first[SO_STORE_ERRLEN], again[SO_STORE_ERRLEN] = "";
        snprintf(first, sizeof first, "%s", err ? err : "");
        rc = request_once(c, cmd, key, klen, val, vlen, deadline, timeout_ms, resp, resp_len,
                          &stale, again);
        /* the first failure is the news; the retry's only says the server is gone */
        if (rc && err) snprintf(err, SO_STORE_ERRLEN, "%.290s; reconnecting: %.190s", first, again);
    }
    return rc;
}
