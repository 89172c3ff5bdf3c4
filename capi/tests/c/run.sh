#!/usr/bin/env bash
# Builds capi/tests/c/grow.c against libnetmorph_c.a and runs it twice: under valgrind (no
# invalid access, no definite or indirect leak) and built with AddressSanitizer (no invalid
# access, no leak). Fails on any test failure or sanitizer error.
#
#   bash capi/tests/c/run.sh [LIBDIR]    LIBDIR holds libnetmorph_c.a
#                                        (default: ${CARGO_TARGET_DIR:-target}/debug)
#
# Build the library first: cargo build -p netmorph-capi. Needs cc and valgrind
# (apt-get install -y valgrind).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
capi="$(cd "$here/../.." && pwd)"
root="$(cd "$capi/.." && pwd)"
libdir="${1:-${CARGO_TARGET_DIR:-$root/target}/debug}"
lib="$libdir/libnetmorph_c.a"
if [[ ! -f "$lib" ]]; then
    echo "run.sh: $lib not found; build it with: cargo build -p netmorph-capi" >&2
    exit 2
fi
command -v valgrind >/dev/null || {
    echo "run.sh: valgrind not found; install it with: apt-get install -y valgrind" >&2
    exit 2
}
cc="${CC:-cc}"
cflags=(-Wall -Wextra -Werror -std=c11 -g -O1 -I "$capi/include")
# Rust's standard library in a static archive needs threads, dlopen and libm.
libs=("$lib" -lpthread -ldl -lm)
out="$(mktemp -d "${TMPDIR:-/tmp}/netmorph-capi-c.XXXXXX")"
trap 'rm -rf "$out"' EXIT

echo "== cc $lib: grow.c under valgrind"
"$cc" "${cflags[@]}" "$here/grow.c" "${libs[@]}" -o "$out/grow"
valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=1 "$out/grow"

echo "== cc -fsanitize=address $lib: grow.c under AddressSanitizer"
"$cc" "${cflags[@]}" -fsanitize=address -fno-omit-frame-pointer "$here/grow.c" "${libs[@]}" \
    -o "$out/grow-asan"
ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=1" "$out/grow-asan"
echo "== grow.c: clean under valgrind and AddressSanitizer"
