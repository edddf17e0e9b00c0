#!/bin/sh
# Builds and runs the test suite in up to eight flavours (default: all, in
# this order):
#   style  scripts/style.sh: 80 columns, documented API, cppcheck,
#          clang-tidy, layout
#   plain  gcc, -O1 -g, -Werror
#   asan   gcc, AddressSanitizer + UndefinedBehaviorSanitizer, and the
#          fault-injection tests (every allocation and thread start fails
#          in turn; LeakSanitizer checks nothing leaks)
#   tsan   gcc, ThreadSanitizer, fault-injection tests included
#   clang  clang, -O2, -Werror (the same code must build and pass with both)
#   In plain, asan, tsan and clang the unit (and fault) tests run twice:
#   as written, and as "fiber.<suite>.<name>" with every pool in fiber
#   mode (tests/harness.h; the few left out are listed, with why, in
#   tests/CMakeLists.txt).  `ctest -L fiber` runs only those.
#   consumer  scripts/consumer.sh: install into a temporary prefix, check
#          the exported symbols and the man pages, build and run a program
#          against it through find_package, pkg-config, plain cc and
#          add_subdirectory
#   deb    scripts/deb.sh: build the Debian packages (libcrew0, libcrew-dev)
#          in build/deb, check their contents, build a program against
#          them, lintian
#   aarch64  scripts/aarch64.sh: built for AArch64 with a cross compiler
#          and run under qemu-aarch64 (the fiber switch's AArch64
#          assembly, a register check of it, and the suite less what qemu
#          cannot run)
# Exits non-zero on any failure.
set -eu
flavours=${*:-style plain asan tsan clang consumer deb aarch64}
jobs=$(nproc 2>/dev/null || echo 2)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Halt on the first sanitizer report, with stacks that name our code.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

status=0
for f in $flavours; do
    cc=gcc opt=-O1 fault=OFF
    case $f in
    style|consumer|deb|aarch64)
        echo "=== $f ==="
        ./scripts/$f.sh || status=1
        continue ;;
    plain) san="" ;;
    asan)  san="address;undefined" fault=ON ;;
    tsan)  san="thread" fault=ON ;;
    clang) san="" cc=clang opt=-O2 ;;
    *) echo "test.sh: unknown flavour $f" >&2; exit 2 ;;
    esac
    dir=build/test-$f
    mkdir -p build
    echo "=== $f build ==="
    CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCREW_WERROR=ON \
        -DCMAKE_C_FLAGS="$opt" -DCREW_SANITIZE="$san" \
        -DCREW_FAULT_INJECTION=$fault \
        >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
    if ! cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1; then
        tail -n 60 "$dir.build.log"
        echo "test.sh: $f build failed" >&2
        exit 1
    fi
    echo "=== $f tests ==="
    if ! ctest --test-dir "$dir" --output-on-failure -j "$jobs"; then
        status=1
    fi
done
exit $status
