/*
 * sha256.h - SHA-256 (FIPS 180-4), dependency-free so the core can hash its
 * canonical state anywhere (WebAssembly included).
 */
#ifndef WEFT_CORE_SHA256_H
#define WEFT_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct weft_sha256 {
	uint32_t h[8];     /* chaining state */
	uint64_t total;    /* bytes hashed so far */
	uint8_t block[64]; /* partial block */
	size_t used;       /* bytes in block */
};

void weft__sha256_init(struct weft_sha256 *s);
void weft__sha256_update(struct weft_sha256 *s, const void *data, size_t len);
void weft__sha256_final(struct weft_sha256 *s, uint8_t digest[32]);
/* One call: digest of data[0..len). */
void weft__sha256(const void *data, size_t len, uint8_t digest[32]);

#endif
