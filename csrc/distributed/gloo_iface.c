/* gloo_iface.c — which local address the Gloo transport uses (see gloo_iface.h).
 *
 * Pure C + POSIX: runs inside the Gloo rendezvous with the GIL released, so errors are a
 * message in the caller's buffer (gloo.cc turns it into the rendezvous error), not a
 * Python exception.
 */
#define _GNU_SOURCE
#include "gloo_iface.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int numeric(const struct sockaddr *sa, char *out, size_t outlen)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    return inet_ntop(sa->sa_family, a, out, (socklen_t)outlen) ? 0 : -1;
}

static int link_local6(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 &&
           IN6_IS_ADDR_LINKLOCAL(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* The address of interface `name`: its first IPv4 address, else a global IPv6 one. */
static int by_interface(const char *name, char *out, size_t outlen, char *err, size_t errlen)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) {
        snprintf(err, errlen, "GLOO_SOCKET_IFNAME: getifaddrs failed: %s (%s:%d)",
                 strerror(errno), __FILE__, __LINE__);
        return -1;
    }
    const struct sockaddr *v4 = NULL, *v6 = NULL;
    int exists = 0;
    char names[256] = "";
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_name) continue;
        if (!strstr(names, i->ifa_name) && strlen(names) + strlen(i->ifa_name) + 3 < sizeof names) {
            if (*names) strcat(names, ", ");
            strcat(names, i->ifa_name);
        }
        if (strcmp(i->ifa_name, name) != 0) continue;
        exists = 1;
        if (!i->ifa_addr) continue;
        if (i->ifa_addr->sa_family == AF_INET && !v4) v4 = i->ifa_addr;
        if (i->ifa_addr->sa_family == AF_INET6 && !v6 && !link_local6(i->ifa_addr)) v6 = i->ifa_addr;
    }
    int rc = -1;
    if (v4 || v6) {
        rc = numeric(v4 ? v4 : v6, out, outlen);
        if (rc) snprintf(err, errlen, "GLOO_SOCKET_IFNAME=%s: cannot format its address", name);
    } else if (exists) {
        snprintf(err, errlen, "GLOO_SOCKET_IFNAME=%s: the interface has no usable IP address",
                 name);
    } else {
        snprintf(err, errlen, "GLOO_SOCKET_IFNAME=%s: no such network interface (this host has: %s)",
                 name, names);
    }
    freeifaddrs(ifs);
    return rc;
}

/* The source address the kernel would use to reach `host`. */
static int by_route(const char *host, char *out, size_t outlen, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    int gai = getaddrinfo(host, "9", &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve MASTER_ADDR=%s to pick Gloo's interface: %s "
                 "(set GLOO_SOCKET_IFNAME)", host, gai_strerror(gai));
        return -1;
    }
    int last = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        /* connect() on a UDP socket only picks the route and source address. */
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
            getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
            numeric((struct sockaddr *)&ss, out, outlen) == 0) {
            close(fd);
            freeaddrinfo(res);
            return 0;
        }
        last = errno;
        close(fd);
    }
    freeaddrinfo(res);
    snprintf(err, errlen, "no route to MASTER_ADDR=%s to pick Gloo's interface: %s "
             "(set GLOO_SOCKET_IFNAME)", host, strerror(last));
    return -1;
}

int so_gloo_pick_address(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *addr = getenv("GLOO_SOCKET_IFADDR");
    if (addr && *addr) {
        snprintf(out, outlen, "%s", addr);
        return 0;
    }
    const char *names = getenv("GLOO_SOCKET_IFNAME");
    if (names && *names) {
        char first[IF_NAMESIZE + 1];
        size_t n = strcspn(names, ",");
        if (n == 0 || n > IF_NAMESIZE) {
            snprintf(err, errlen, "GLOO_SOCKET_IFNAME=%s: not an interface name", names);
            return -1;
        }
        memcpy(first, names, n);
        first[n] = 0;
        return by_interface(first, out, outlen, err, errlen);
    }
    const char *master = getenv("MASTER_ADDR");
    if (master && *master) return by_route(master, out, outlen, err, errlen);
    snprintf(out, outlen, "127.0.0.1");
    return 0;
}
