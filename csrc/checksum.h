/* XXH64 (xxHash, 64-bit), written from the published algorithm description.
 * Used as the weights blob's payload checksum: fast enough to verify 18 MB of
 * weights at load time, and strong enough to catch truncation, bit flips and
 * swapped blocks. */
#ifndef SSDF_CHECKSUM_H
#define SSDF_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint64_t ssdf_xxh64(const void *data, size_t len, uint64_t seed);

#endif
