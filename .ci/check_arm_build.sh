#!/usr/bin/env bash
# Cross-compile the C core with the portable kernels for aarch64 (no x86
# variants, no SSDF_X86_KERNELS) and link it, to keep the ARM build working.
# Needs gcc-aarch64-linux-gnu (Debian); warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
sources=(csrc/*.c csrc/models/*.c csrc/kernels/reference.c csrc/kernels/scalar.c csrc/kernels/dispatch.c)
CC=${CC_AARCH64:-aarch64-linux-gnu-gcc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# One compiler per CPU (the files are independent); any failure fails the check.
printf '%s\0' "${sources[@]}" | xargs -0 -n 1 -P "$(nproc)" sh -c \
    '"$1" -O3 -std=gnu11 -Wall -Werror -Wno-unused-function -Icsrc -c "$3" \
        -o "$2/$(basename "$3" .c).o"' sh "$CC" "$out"
"$CC" -shared -o "$out/libssdface_core.so" "$out"/*.o -lpthread -lm
echo "aarch64 build of the C core: OK (${#sources[@]} portable sources compiled and linked)"
