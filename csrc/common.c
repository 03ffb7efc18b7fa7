#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int ssdf_fail(ssdf_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void *ssdf_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = SSDF_ALIGN;
    if (posix_memalign(&p, SSDF_ALIGN, ssdf_round_up(bytes, SSDF_ALIGN)) != 0) return NULL;
    return p;
}

void ssdf_aligned_free(void *p) { free(p); }
