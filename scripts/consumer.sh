#!/bin/sh
# Installs crew into a temporary prefix with `make install` and checks what
# an outside project gets:
#   - the files: header, libcrew.a, libcrew.so -> .so.0 -> .so.<version>
#     with SONAME libcrew.so.0, the CMake package, crew.pc; DESTDIR staging;
#   - the shared library exports exactly the CREW_API functions of
#     include/crew.h (no crew__ internals);
#   - the man pages: crew.3 and a page for each CREW_API function, no
#     other, each passing `mandoc -T lint -W warning` and `groff -man -ww`
#     without a message, and `man` finds them through MANPATH;
#   - tests/consumer/main.c builds (-Werror) and runs, linked through
#     find_package(crew) (crew::crew and crew::crew_static), pkg-config
#     (gcc and clang), plain cc with libcrew.a, add_subdirectory and
#     FetchContent of this source tree.
# Exits non-zero on the first failure.  KEEP=1 keeps the temporary tree.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/crew-consumer.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
src=$root/tests/consumer
version=$(sed -n 's/^project(crew VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
major=${version%%.*}

fail() {
    echo "consumer.sh: $*" >&2
    exit 1
}

# Runs a command quietly, showing its output only if it fails.
quiet() {
    log=$tmp/last.log
    "$@" >"$log" 2>&1 || { cat "$log"; fail "failed: $*"; }
}

echo "--- make install PREFIX=$prefix"
quiet make --no-print-directory install PREFIX="$prefix" \
    RELEASE_DIR="$tmp/build"
libdir=$prefix/lib
for f in include/crew.h lib/libcrew.a lib/libcrew.so lib/libcrew.so.$major \
    lib/libcrew.so.$version lib/cmake/crew/crewConfig.cmake \
    lib/cmake/crew/crewConfigVersion.cmake lib/cmake/crew/crewTargets.cmake \
    lib/pkgconfig/crew.pc share/man/man3/crew.3; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
done
soname=$(readelf -d "$libdir/libcrew.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libcrew.so.$major" ] || fail "SONAME is '$soname'"
echo "installed: libcrew.so.$version (SONAME $soname), libcrew.a, crew.h," \
    "CMake package, crew.pc, man pages"

# What the header marks CREW_API.
sed -n 's/^CREW_API[^(]*[ *]\(crew_[a-z0-9_]*\)(.*/\1/p' include/crew.h |
    sort >"$tmp/api.txt"
[ -s "$tmp/api.txt" ] || fail "no CREW_API functions found in crew.h"

echo "--- man pages"
mandir=$prefix/share/man/man3
[ -e "$mandir/crew.3" ] || fail "not installed: share/man/man3/crew.3"
find "$mandir" -name 'crew_*.3' | sed 's|.*/||; s|\.3$||' | sort \
    >"$tmp/man.txt"
if ! cmp -s "$tmp/api.txt" "$tmp/man.txt"; then
    echo "< CREW_API function without a page, > page without a function:" >&2
    diff "$tmp/api.txt" "$tmp/man.txt" >&2 || true
    fail "the man pages are not one per CREW_API function"
fi
command -v mandoc >/dev/null 2>&1 ||
    fail "mandoc is missing (scripts/deps.sh installs it)"
command -v groff >/dev/null 2>&1 ||
    fail "groff is missing (scripts/deps.sh installs groff-base)"
for page in "$mandir"/*.3; do
    msgs=$( { mandoc -T lint -W warning "$page" &&
        groff -man -ww -z "$page"; } 2>&1) || msgs="$msgs (failed)"
    [ -z "$msgs" ] || { echo "$msgs" >&2; fail "${page##*/}: not clean"; }
done
if command -v man >/dev/null 2>&1; then
    found=$(MANPATH="$prefix/share/man" man -w crew_submit) ||
        fail "man -w crew_submit finds no page with MANPATH=$prefix/share/man"
    [ "$found" = "$mandir/crew_submit.3" ] ||
        fail "man -w crew_submit gives $found"
fi
echo "man pages: crew.3 and one for each of the $(wc -l <"$tmp/api.txt")" \
    "functions, lint-clean"

echo "--- exported symbols"
# What the library exports must be what the header marks CREW_API.
nm -D --defined-only "$libdir/libcrew.so" | awk '{ print $NF }' |
    sort >"$tmp/exported.txt"
if ! cmp -s "$tmp/api.txt" "$tmp/exported.txt"; then
    echo "< declared CREW_API only, > exported only:" >&2
    diff "$tmp/api.txt" "$tmp/exported.txt" >&2 || true
    fail "libcrew.so exports other symbols than the CREW_API functions"
fi
echo "exported: exactly the $(wc -l <"$tmp/api.txt") CREW_API functions"

echo "--- DESTDIR staging"
quiet make --no-print-directory install PREFIX=/opt/crew \
    DESTDIR="$tmp/stage" RELEASE_DIR="$tmp/build"
[ -e "$tmp/stage/opt/crew/lib/libcrew.so.$version" ] ||
    fail "DESTDIR: nothing under $tmp/stage/opt/crew"
grep -qx 'prefix=/opt/crew' "$tmp/stage/opt/crew/lib/pkgconfig/crew.pc" ||
    fail "DESTDIR: crew.pc does not say prefix=/opt/crew"
echo "staged under DESTDIR, crew.pc names the final prefix"

# run NAME EXE [NEEDS_SO]: runs a built consumer; NEEDS_SO says whether it
# must load libcrew.so.0 (yes) or carry crew statically (no).
run() {
    name=$1 exe=$2 shared=$3
    if readelf -d "$exe" | grep -q "NEEDED.*libcrew\.so\.$major"; then
        [ "$shared" = yes ] || fail "$name: linked libcrew.so, not static"
    else
        [ "$shared" = no ] || fail "$name: did not link libcrew.so"
    fi
    out=$(LD_LIBRARY_PATH="$libdir" "$exe") || fail "$name: consumer failed"
    echo "$name: $out"
}

cmake_consumer() {
    name=$1
    shift
    quiet cmake -S "$src" -B "$tmp/c-$name" -DCMAKE_BUILD_TYPE=Release \
        -DCREW_CONSUMER_MODE="$name" "$@"
    quiet cmake --build "$tmp/c-$name" -j "$jobs"
}

echo "--- find_package(crew)"
cmake_consumer package -DCMAKE_PREFIX_PATH="$prefix"
run "find_package, crew::crew" "$tmp/c-package/consumer" yes
cmake_consumer static -DCMAKE_PREFIX_PATH="$prefix"
run "find_package, crew::crew_static" "$tmp/c-static/consumer" no

echo "--- pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion crew)" = "$version" ] ||
    fail "pkg-config --modversion crew is not $version"
for cc in gcc clang; do
    command -v $cc >/dev/null 2>&1 || fail "no $cc"
    # shellcheck disable=SC2046
    quiet $cc -std=c11 -Wall -Wextra -Werror -o "$tmp/pc-$cc" "$src/main.c" \
        $(pkg-config --cflags --libs crew)
    run "pkg-config, $cc" "$tmp/pc-$cc" yes
done

echo "--- plain cc with libcrew.a"
quiet cc -std=c11 -Wall -Wextra -Werror -I"$prefix/include" \
    -o "$tmp/plain" "$src/main.c" "$libdir/libcrew.a" -pthread
run "cc, libcrew.a" "$tmp/plain" no

echo "--- the source tree in a CMake project"
cmake_consumer subdirectory -DCREW_SOURCE_DIR="$root"
run "add_subdirectory, crew::crew" "$tmp/c-subdirectory/consumer" no
cmake_consumer fetchcontent -DCREW_SOURCE_DIR="$root"
run "FetchContent, crew::crew" "$tmp/c-fetchcontent/consumer" no

echo "consumer.sh: all ways work"
