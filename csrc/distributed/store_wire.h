/* store_wire.h — what store.c (server) and store_client.c share: the frame layout,
 * little-endian field access, and the error-message helper.  Internal to the store.
 */
#ifndef SO_DIST_STORE_WIRE_H
#define SO_DIST_STORE_WIRE_H

#include <stdint.h>

#include "store.h"

#define REQ_MAGIC 0x564B4F53u /* "SOKV" */
#define RESP_MAGIC 0x524B4F53u /* "SOKR" */
#define REQ_HDR 20
#define RESP_HDR 16

/* Write "<message> (file:line)" into err[SO_STORE_ERRLEN] (err may be NULL). Returns 0. */
int so_store_set_err(char *err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define SET_ERR(...) so_store_set_err(err, __FILE__, __LINE__, __VA_ARGS__)

static inline void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif /* SO_DIST_STORE_WIRE_H */
