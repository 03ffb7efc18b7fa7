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
for f in "${sources[@]}"; do
    "$CC" -O3 -std=gnu11 -Wall -Werror -Wno-unused-function -Icsrc -c "$f" \
        -o "$out/$(basename "$f" .c).o"
done
"$CC" -shared -o "$out/libssdface_core.so" "$out"/*.o -lpthread -lm
echo "aarch64 build of the C core: OK (${#sources[@]} portable sources compiled and linked)"
