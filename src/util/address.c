/*
 * util/address.c: "host:port" text to a socket address (see address.h).
 */
#include "util/address.h"

#include <netdb.h>
#include <string.h>

#include "quorum/err.h"
#include "util/err.h"
#include "util/parse.h"

int qr__address_resolve(const char *text, struct sockaddr_storage *addr_out, char *errmsg)
{
    size_t len = text != NULL ? strlen(text) : 0;
    const char *colon = text != NULL ? strrchr(text, ':') : NULL;
    if (len == 0 || len >= QR_ADDRESS_SIZE || colon == NULL || colon == text) {
        return qr__errf(errmsg, QR_EINVAL, "address \"%s\": expected host:port",
                        text != NULL ? text : "");
    }
    char host[QR_ADDRESS_SIZE];
    size_t host_len = (size_t)(colon - text);
    const char *host_start = text;
    if (text[0] == '[' && host_len >= 2 && colon[-1] == ']') { /* "[v6]:port" */
        host_start++;
        host_len -= 2;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    uint64_t port = 0;
    if (host_len == 0 || qr__parse_u64(colon + 1, 1, 65535, &port, NULL) != 0) {
        return qr__errf(errmsg, QR_EINVAL,
                        "address \"%s\": expected host:port with a port of "
                        "1 to 65535",
                        text);
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host, colon + 1, &hints, &res);
    if (rv != 0 || res == NULL || res->ai_addrlen > sizeof(*addr_out)) {
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return qr__errf(errmsg, QR_EINVAL, "address \"%s\": %s", text,
                        rv != 0 ? gai_strerror(rv) : "no usable address");
    }
    memset(addr_out, 0, sizeof(*addr_out));
    memcpy(addr_out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}
