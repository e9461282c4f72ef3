/* gloo_iface.h — which local address the Gloo transport listens on and advertises.
 *
 * Torch users launch multi-node jobs with MASTER_ADDR (and, where a host has several
 * networks, GLOO_SOCKET_IFNAME); Gloo must then listen on an address the other nodes can
 * reach, not on loopback.  Kept apart from gloo.cc so the choice is one readable function.
 */
#ifndef SO_DIST_GLOO_IFACE_H
#define SO_DIST_GLOO_IFACE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The address (numeric, NUL-terminated, into out[outlen]) for Gloo to use, in order:
 *  1. GLOO_SOCKET_IFADDR: that address, verbatim;
 *  2. GLOO_SOCKET_IFNAME: the address of that interface (IPv4 first); torch accepts a
 *     comma-separated list and uses every interface, shardopt uses the first;
 *  3. MASTER_ADDR: the local address of the interface that routes to it (the source
 *     address the kernel picks, found by connect()ing a UDP socket: no packet is sent);
 *  4. otherwise 127.0.0.1 (single node, or tcp:// initialisation without MASTER_ADDR).
 * Pure C, no Python, no GIL needed.  0, or -1 with a message in err[errlen]. */
int so_gloo_pick_address(char *out, size_t outlen, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_GLOO_IFACE_H */
