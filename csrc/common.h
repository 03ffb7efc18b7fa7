/* Shared types, error reporting and small helpers for the ssdface C core. */
#ifndef SSDF_COMMON_H
#define SSDF_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Status codes returned by every fallible function in the core. The Python
 * wrapper maps them onto exception types, so keep them stable. */
enum {
    SSDF_OK = 0,
    SSDF_ERR_FORMAT = 1,   /* malformed or corrupt data (bad blob, bad table) */
    SSDF_ERR_VALUE = 2,    /* bad argument value (NaN input, bad size) */
    SSDF_ERR_NOMEM = 3,    /* allocation failed */
    SSDF_ERR_THREADS = 4,  /* worker threads could not be started */
};

/* Every buffer the kernels touch is aligned to this many bytes (one cache
 * line, and the widest vector register we target). */
#define SSDF_ALIGN 64

/* Error message buffer passed down so that the failing check can say what
 * went wrong; the wrapper turns it into the exception text. */
typedef struct {
    char msg[256];
} ssdf_error;

int ssdf_fail(ssdf_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

void *ssdf_aligned_alloc(size_t bytes);
void ssdf_aligned_free(void *p);

static inline size_t ssdf_round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

#endif
