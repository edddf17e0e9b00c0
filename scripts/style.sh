#!/bin/sh
# Style checks, fast enough to run before every test run:
#   columns  no line of a .c or .h file in src include tests bench examples
#            is wider than 80 columns (tabs count to the next multiple of 8)
#   docs     every function that include/crew.h declares CREW_API comes
#            right after a comment (the line before it ends with "*/")
#   cppcheck src/ is clean (warning, performance and portability checks;
#            an intended exception is marked in the code with
#            "// cppcheck-suppress <id>")
#   tidy     src/ is clean under clang-tidy's bugprone-* checks (the
#            library's sources as a release build compiles them, and
#            src/fault.c as the fault-injection build does), except three
#            that flag sound code here: easily-swappable-parameters (a
#            style opinion), reserved-identifier (_DEFAULT_SOURCE and
#            friends) and sizeof-expression (it takes n * sizeof(*v), for
#            an array of pointers, for a mistake).  A second of work; the
#            clang-analyzer-* checks would take 30 s.
#   format   the tests are laid out as .clang-format says (clang-format
#            --dry-run; `make format` fixes them); src/ is laid out by hand
# Runs every check and exits non-zero if any failed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
status=0

failed() {
    echo "style.sh: $*" >&2
    status=1
}

# columns
files=$(find src include tests bench examples -name '*.[ch]' | sort)
# shellcheck disable=SC2086
wide=$(awk '{
        w = 0
        for (i = 1; i <= length($0); i++)
            w = substr($0, i, 1) == "\t" ? w - w % 8 + 8 : w + 1
        if (w > 80)
            printf "%s:%d: %d columns\n", FILENAME, FNR, w
    }' $files)
if [ -n "$wide" ]; then
    echo "$wide" >&2
    failed "lines wider than 80 columns"
fi

# docs: a CREW_API declaration must follow a comment.
undocumented=$(awk '
    /^[ \t]*#/ { prev = $0; next }
    /(^|[^A-Za-z0-9_])CREW_API[ \t]/ {
        found++
        if (prev !~ /\*\/[ \t]*$/)
            printf "include/crew.h:%d: %s\n", FNR, $0
    }
    { prev = $0 }
    END { if (!found) print "include/crew.h: no CREW_API declarations" }
    ' include/crew.h)
if [ -n "$undocumented" ]; then
    echo "$undocumented" >&2
    failed "public functions without a comment right before them"
fi

# The API reference (docs/api.md) must be what the header gives.
"$(dirname "$0")/api-ref.sh" --check || failed "docs/api.md is stale"

# cppcheck
if ! command -v cppcheck >/dev/null 2>&1; then
    failed "cppcheck is missing (scripts/deps.sh installs it)"
elif ! cppcheck --quiet --std=c11 --enable=warning,performance,portability \
    --error-exitcode=1 --inline-suppr -Iinclude -Isrc src/; then
    failed "cppcheck found problems in src/"
fi

# clang-tidy
tidy_checks='-*,bugprone-*,-bugprone-easily-swappable-parameters'
tidy_checks="$tidy_checks,-bugprone-reserved-identifier"
tidy_checks="$tidy_checks,-bugprone-sizeof-expression"
tidy_flags="-std=c11 -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L"
# tidy FILE... -- FLAGS: clang-tidy on our files and headers, without its
# counts of the warnings it left out (those in system headers).
tidy() {
    log=$(mktemp)
    rc=0
    clang-tidy --quiet --warnings-as-errors='*' --checks="$tidy_checks" \
        --header-filter='.*/(src|include)/.*' "$@" >"$log" 2>&1 || rc=1
    grep -v '^[0-9]* warnings\{0,1\} generated\.$' "$log" >&2 || true
    rm -f "$log"
    return $rc
}
if ! command -v clang-tidy >/dev/null 2>&1; then
    failed "clang-tidy is missing (scripts/deps.sh installs it)"
else
    # shellcheck disable=SC2046,SC2086
    tidy $(find src -name '*.c' ! -name fault.c | sort) -- $tidy_flags ||
        failed "clang-tidy found problems in src/"
    # shellcheck disable=SC2086
    tidy src/fault.c -- $tidy_flags -DCREW_FAULT_INJECTION ||
        failed "clang-tidy found problems in src/fault.c"
fi

# format (tests only)
if ! command -v clang-format >/dev/null 2>&1; then
    failed "clang-format is missing (scripts/deps.sh installs it)"
else
    # shellcheck disable=SC2046
    clang-format --dry-run -Werror $(find tests -name '*.[ch]' | sort) ||
        failed "tests/ not laid out as .clang-format says (make format)"
fi

[ $status -eq 0 ] &&
    echo "style.sh: columns, docs, api reference, cppcheck, clang-tidy," \
        "format: clean"
exit $status
