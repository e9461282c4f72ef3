/* store.h — the TCP key-value store used for rendezvous (torch's TCPStore, in C).
 *
 * Two halves:
 *  - a server (rank 0 runs it on a thread): a poll() loop over non-blocking sockets, so one
 *    slow or hostile client never stalls the others; frames are bounded (keys <= 4 KiB,
 *    values <= 32 MiB) and a malformed or oversized frame closes only that connection;
 *    memory, connections and time per client are bounded too (see the server section of
 *    store.c), because it may listen on every interface;
 *  - a client: one blocking request/response exchange at a time, every wait bounded by a
 *    deadline.
 * Neither half touches Python: both are called with the GIL released.  Failures return a
 * negative SO_STORE_* code and write a message (with file:line) into the caller's buffer;
 * the Python binding (store_py.c) turns that into DistStoreError.
 *
 * Wire format (little-endian):
 *   request  = u32 magic 'SOKV' | u32 cmd | u32 key_len | u64 value_len | key | value
 *   response = u32 magic 'SOKR' | u32 status (0 ok, 1 error) | u64 len | payload
 * GET and WAIT are answered only once the key exists; a client that gives up closes its
 * connection (and reconnects on its next call), so a late answer can never be mistaken
 * for the reply to a later request.
 */
#ifndef SO_DIST_STORE_H
#define SO_DIST_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SO_STORE_MAX_KEY ((uint32_t)4096)
/* The largest value, and the memory all requests being received may hold together (a
 * frame whose body does not fit waits unread).  The value cap stays below the budget so
 * one full-size SET can always be received while small requests still fit beside it. */
#define SO_STORE_MAX_VALUE ((uint64_t)32 << 20)
#define SO_STORE_BUFFER_BUDGET ((uint64_t)48 << 20)
#define SO_STORE_ERRLEN 512

enum {
    SO_STORE_OK = 0,
    SO_STORE_EIO = -1,      /* connection failed / lost */
    SO_STORE_ETIMEOUT = -2, /* deadline passed */
    SO_STORE_EREMOTE = -3,  /* the server answered with an error message */
    SO_STORE_ENOMEM = -4,
};

enum {
    SO_STORE_CMD_SET = 1,
    SO_STORE_CMD_GET = 2,      /* blocks until the key exists */
    SO_STORE_CMD_ADD = 3,      /* value: int64 delta; reply: int64 new value */
    SO_STORE_CMD_CHECK = 4,    /* reply: 1 byte, 1 if the key exists */
    SO_STORE_CMD_WAIT = 5,     /* blocks until the key exists; empty reply */
    SO_STORE_CMD_DELETE = 6,   /* reply: 1 byte, 1 if the key existed */
    SO_STORE_CMD_NUM_KEYS = 7, /* reply: int64 */
    SO_STORE_CMD_COMPARE_SET = 8, /* value: u64 len(expected) | expected | desired */
    SO_STORE_CMD_MAX = 8,
};

/* ---- server ---- */
typedef struct so_store_server so_store_server;

/* Bind host:port (port 0 picks a free port, returned in *port_out) and start the server
 * thread.  host NULL or "" binds all interfaces. */
int so_store_server_start(const char *host, int port, so_store_server **out, int *port_out,
                          char *err);
/* Stop the thread, close every connection, free everything.  NULL is a no-op. */
void so_store_server_stop(so_store_server *s);

/* ---- client ---- */
typedef struct {
    int fd; /* -1 when not connected */
    int connected_once; /* a reconnect retries only briefly: the server was up, so a refusal
                           now means it died, and waiting the full timeout helps no one */
    char host[256];
    int port;
} so_store_client;

void so_store_client_init(so_store_client *c, const char *host, int port);
/* Connect, retrying refused connections until timeout_ms passes (the server may not be
 * listening yet, as with torch's clients). */
int so_store_client_connect(so_store_client *c, int64_t timeout_ms, char *err);
void so_store_client_close(so_store_client *c);

/* One request/response.  On success *resp (malloc'd, caller frees; may be NULL when
 * *resp_len is 0) holds the payload.  Connects first if needed.  On any failure the
 * connection is closed so the next call starts clean.  timeout_ms < 0: no deadline
 * (never used by the bindings, which always pass one). */
int so_store_request(so_store_client *c, uint32_t cmd, const char *key, uint32_t klen,
                     const char *val, uint64_t vlen, int64_t timeout_ms, char **resp,
                     uint64_t *resp_len, char *err);

/* Milliseconds on a monotonic clock. */
int64_t so_store_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_STORE_H */
