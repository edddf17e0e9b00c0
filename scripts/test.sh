#!/bin/sh
# Builds and runs the test suite in up to three flavours (default: all):
#   plain  -O1 -g, -Werror
#   asan   AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan   ThreadSanitizer
# CC picks the compiler (gcc by default).  Exits non-zero on any failure.
set -eu
flavours=${*:-plain asan tsan}
jobs=$(nproc 2>/dev/null || echo 2)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Halt on the first sanitizer report, with stacks that name our code.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

status=0
for f in $flavours; do
    case $f in
    plain) san="" ;;
    asan)  san="address;undefined" ;;
    tsan)  san="thread" ;;
    *) echo "test.sh: unknown flavour $f" >&2; exit 2 ;;
    esac
    dir=build/test-$f
    mkdir -p build
    echo "=== $f build ==="
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCREW_WERROR=ON \
        -DCMAKE_C_FLAGS="-O1" -DCREW_SANITIZE="$san" -DCREW_BENCH=OFF \
        >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
    cmake --build "$dir" -j "$jobs" 2>&1 | tail -n 50
    echo "=== $f tests ==="
    if ! ctest --test-dir "$dir" --output-on-failure -j "$jobs"; then
        status=1
    fi
done
exit $status
