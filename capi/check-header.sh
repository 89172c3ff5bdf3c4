#!/usr/bin/env bash
# Checks that include/netmorph.h is what cbindgen makes from capi/src and capi/cbindgen.toml:
# regenerates it into a temporary file and fails with a diff when the committed header drifted.
# `--write` regenerates the committed header instead. Needs cbindgen
# (`cargo install --locked cbindgen`).
set -euo pipefail
capi="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
header="$capi/include/netmorph.h"
if ! command -v cbindgen >/dev/null; then
    echo "check-header: cbindgen not found; install it with: cargo install --locked cbindgen" >&2
    exit 2
fi
generate() {
    cbindgen --quiet --config "$capi/cbindgen.toml" --crate netmorph-capi --output "$1" "$capi"
}
if [[ "${1:-}" == "--write" ]]; then
    generate "$header"
    echo "check-header: wrote $header"
    exit 0
fi
fresh="$(mktemp "${TMPDIR:-/tmp}/netmorph-h.XXXXXX")"
trap 'rm -f "$fresh"' EXIT
generate "$fresh"
if ! diff -u "$header" "$fresh"; then
    echo "check-header: $header is out of date with capi/src; run: bash capi/check-header.sh --write" >&2
    exit 1
fi
echo "check-header: $header is up to date"
