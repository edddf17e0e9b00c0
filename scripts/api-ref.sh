#!/bin/sh
# Writes the API reference (docs/api.md) from include/crew.h: for each
# function marked CREW_API, its prototype and the comment above it, in the
# header's order.  `scripts/api-ref.sh --check` fails if docs/api.md is not
# what the header gives (style.sh runs it, so CI catches a stale one).
# scripts/header.awk reads the header, for this and for scripts/man.sh.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
header="$root/include/crew.h"
out="$root/docs/api.md"

generate() {
    printf '# crew API reference\n\n'
    printf 'Generated from `include/crew.h` by `scripts/api-ref.sh`; the\n'
    printf 'header is the source.  Types, options and error codes are\n'
    printf 'documented there, beside their definitions.\n'
    awk -f "$root/scripts/header.awk" "$header" | awk -F '\t' '
    $1 == "fn" { printf "\n## %s\n\n```c\n", $2 }
    { text = substr($0, length($1) + 2) }
    $1 == "proto" { print text; proto = 1; next }
    proto { print "```\n"; proto = 0 }
    $1 == "doc" { print text }
    $1 == "undoc" { print "(undocumented)" }
    '
}

if [ "${1:-}" = --check ]; then
    tmp=$(mktemp)
    generate >"$tmp"
    if ! cmp -s "$tmp" "$out"; then
        echo "api-ref.sh: docs/api.md is stale; run scripts/api-ref.sh" >&2
        diff -u "$out" "$tmp" | head -20 >&2 || true
        rm -f "$tmp"
        exit 1
    fi
    rm -f "$tmp"
    exit 0
fi
generate >"$out"
