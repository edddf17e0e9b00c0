#!/bin/sh
# Writes the API reference (docs/api.md) from include/crew.h: for each
# function marked CREW_API, its prototype and the comment above it, in the
# header's order.  `scripts/api-ref.sh --check` fails if docs/api.md is
# not what the header gives (style.sh runs it, so CI catches a stale one).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
header="$root/include/crew.h"
out="$root/docs/api.md"

generate() {
    printf '# crew API reference\n\n'
    printf 'Generated from `include/crew.h` by `scripts/api-ref.sh`; the\n'
    printf 'header is the source.  Types, options and error codes are\n'
    printf 'documented there, beside their definitions.\n'
    awk '
    /^\/\*/ { comment = ""; in_c = 1 }
    in_c {
        line = $0
        sub(/^ *\/?\*+\/? ?/, "", line)
        sub(/ *\*\/ *$/, "", line)
        closing = ($0 ~ /\*\//)
        if (line != "" || (comment != "" && !closing))
            comment = comment line "\n"
        if ($0 ~ /\*\//) { in_c = 0; last = NR }
        next
    }
    /^CREW_API / {
        start = NR
        proto = $0
        while (proto !~ /;/ && (getline nextline) > 0)
            proto = proto "\n" nextline
        sub(/^CREW_API /, "", proto)
        gsub(/\n         /, "\n", proto)   # continuation lines, re-aligned
        name = proto
        sub(/\(.*/, "", name)
        sub(/.*[ *]/, "", name)
        printf "\n## %s\n\n```c\n%s\n```\n\n", name, proto
        if (last == start - 1)
            printf "%s", comment
        else
            printf "(undocumented)\n"
        next
    }
    { comment = "" }
    ' "$header"
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
