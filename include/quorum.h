/*
 * quorum.h: the umbrella header of libquorum.
 *
 * Include this one header to use the library; each module's manual is its own
 * header under quorum/.
 */
#ifndef QUORUM_H
#define QUORUM_H

#include "quorum/alloc.h"
#include "quorum/core.h"
#include "quorum/err.h"
#include "quorum/log.h"
#include "quorum/node.h"
#include "quorum/storage.h"
#include "quorum/types.h"
#include "quorum/voting.h"

#endif /* QUORUM_H */
