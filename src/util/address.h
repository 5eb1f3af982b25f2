/*
 * util/address.h: parse and resolve "host:port" addresses ("[v6]:port" too).
 *
 * Layer: util. Used by the node (peers) and the server (clients). Resolution may block
 * on a name lookup (getaddrinfo): call it at start-up or for operator commands, not per
 * request.
 */
#ifndef QR_UTIL_ADDRESS_H
#define QR_UTIL_ADDRESS_H

#include <sys/socket.h>

/** Size of an address text buffer, NUL included (equal to QR_NODE_ADDRESS_SIZE). */
#define QR_ADDRESS_SIZE 256

/**
 * Resolve "host:port" (numeric or a name; "[v6]:port").
 * @param text      Borrows; may be NULL (refused).
 * @param addr_out  Out.
 * @param errmsg    Out, may be NULL: names the address and what is wrong.
 * @return 0, QR_EINVAL.
 */
int qr__address_resolve(const char *text, struct sockaddr_storage *addr_out, char *errmsg);

#endif /* QR_UTIL_ADDRESS_H */
