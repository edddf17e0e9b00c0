#!/bin/sh
# Builds the Debian packages that debian/ describes and checks them:
#   - debian/changelog names the project's version (CMakeLists.txt);
#   - `dpkg-buildpackage -us -uc -b` builds libcrew0 and libcrew-dev in a
#     copy of the tree, build/deb/crew-<version>/ (dpkg writes the .deb
#     files to the parent directory, so they land in build/deb/ and the
#     source tree stays clean), with DEB_BUILD_OPTIONS=nocheck: the other
#     flavours of scripts/test.sh run the suite;
#   - `dpkg-deb -c`: libcrew0 holds libcrew.so.<major> and the library it
#     names, and nothing for development; libcrew-dev holds crew.h,
#     libcrew.a, the libcrew.so link, the CMake package, crew.pc, crew.3
#     and a man page for each CREW_API function, and no shared library;
#   - the control data: libcrew-dev depends on libcrew0 of its own version,
#     libcrew0 on libc6, and its shlibs file names libcrew.so.<major>;
#   - the two packages unpacked together: tests/consumer/main.c builds
#     against them through their crew.pc and runs;
#   - lintian reports no error and no warning.
# Exits non-zero on the first failure.  The build log is build/deb/build.log.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
version=$(sed -n 's/^project(crew VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
major=${version%%.*}
out=$root/build/deb
tree=$out/crew-$version
tmp=$out/check

fail() {
    echo "deb.sh: $*" >&2
    exit 1
}

for tool in dpkg-buildpackage dpkg-deb dh lintian; do
    command -v $tool >/dev/null 2>&1 ||
        fail "$tool is missing (scripts/deps.sh installs it)"
done
debversion=$(dpkg-parsechangelog -S Version)
[ "$debversion" = "$version" ] ||
    fail "debian/changelog says $debversion, CMakeLists.txt $version"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
lib=usr/lib/$multiarch

echo "--- dpkg-buildpackage -us -uc -b in build/deb/crew-$version"
rm -rf "$out"
mkdir -p "$tree" "$tmp"
tar -c --exclude=./build --exclude=./.git . | tar -x -C "$tree"
if ! (cd "$tree" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
    dpkg-buildpackage -us -uc -b -Pnocheck) >"$out/build.log" 2>&1; then
    tail -n 40 "$out/build.log"
    fail "dpkg-buildpackage failed (build/deb/build.log)"
fi
runtime=$out/libcrew${major}_${version}_$arch.deb
dev=$out/libcrew-dev_${version}_$arch.deb
for deb in "$runtime" "$dev"; do
    [ -e "$deb" ] || fail "not built: ${deb#"$root"/}"
done
echo "built: ${runtime##*/}, ${dev##*/}"

echo "--- contents"
# contents DEB: its paths, one a line, without "./"; a link as "path -> to".
contents() {
    dpkg-deb -c "$1" | awk '$6 !~ /\/$/ {
        sub(/^\.\//, "", $6)
        print $6 ($7 == "->" ? " -> " $8 : "")
    }' | sort
}
contents "$runtime" >"$tmp/runtime.txt"
contents "$dev" >"$tmp/dev.txt"
# has LIST LINE...: every line is in the list.
has() {
    list=$1
    shift
    for want in "$@"; do
        grep -qxF "$want" "$tmp/$list.txt" ||
            fail "libcrew${list#runtime}: no $want"
    done
}
has runtime "$lib/libcrew.so.$version" \
    "$lib/libcrew.so.$major -> libcrew.so.$version" \
    "usr/share/doc/libcrew$major/copyright"
if grep -v -e "^$lib/libcrew\.so\.$major" -e '^usr/share/doc/' \
    "$tmp/runtime.txt"; then
    fail "libcrew$major holds the files above, which are not its own"
fi
has dev usr/include/crew.h "$lib/libcrew.a" \
    "$lib/libcrew.so -> libcrew.so.$major" \
    "$lib/cmake/crew/crewConfig.cmake" \
    "$lib/cmake/crew/crewConfigVersion.cmake" \
    "$lib/cmake/crew/crewTargets.cmake" "$lib/pkgconfig/crew.pc" \
    usr/share/man/man3/crew.3.gz usr/share/doc/libcrew-dev/copyright
sed -n 's/^CREW_API[^(]*[ *]\(crew_[a-z0-9_]*\)(.*/\1/p' include/crew.h |
    sort >"$tmp/api.txt"
[ -s "$tmp/api.txt" ] || fail "no CREW_API functions found in crew.h"
sed -n 's|^usr/share/man/man3/\(crew_.*\)\.3\.gz$|\1|p' "$tmp/dev.txt" \
    >"$tmp/man.txt"
if ! cmp -s "$tmp/api.txt" "$tmp/man.txt"; then
    diff "$tmp/api.txt" "$tmp/man.txt" >&2 || true
    fail "libcrew-dev: the man pages are not one per CREW_API function"
fi
if grep "^$lib/libcrew\.so\.$major" "$tmp/dev.txt"; then
    fail "libcrew-dev holds the shared library"
fi
echo "libcrew$major: libcrew.so.$version, libcrew.so.$major;" \
    "libcrew-dev: header, libcrew.a, libcrew.so, CMake, crew.pc," \
    "$(($(wc -l <"$tmp/man.txt") + 1)) man pages"

echo "--- control data"
depends=$(dpkg-deb -f "$dev" Depends)
case ", $depends," in
*", libcrew$major (= $version),"*) ;;
*) fail "libcrew-dev depends on '$depends'" ;;
esac
depends=$(dpkg-deb -f "$runtime" Depends)
case ", $depends" in
*", libc6"*) ;;
*) fail "libcrew$major depends on '$depends'" ;;
esac
shlibs=$(dpkg-deb -I "$runtime" shlibs)
[ "$shlibs" = "libcrew $major libcrew$major (>= $version)" ] ||
    fail "libcrew$major shlibs: '$shlibs'"
echo "libcrew-dev depends on libcrew$major (= $version);" \
    "libcrew$major on $depends"

echo "--- a program built against the unpacked packages"
dpkg-deb -x "$runtime" "$tmp/root"
dpkg-deb -x "$dev" "$tmp/root"
# pkg-config reads the packages' crew.pc and puts the unpacked root in
# front of the paths it names.
flags=$(PKG_CONFIG_LIBDIR="$tmp/root/$lib/pkgconfig" \
    PKG_CONFIG_SYSROOT_DIR="$tmp/root" pkg-config --cflags --libs crew) ||
    fail "pkg-config cannot read the package's crew.pc"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer" \
    tests/consumer/main.c $flags >"$tmp/cc.log" 2>&1 ||
    { cat "$tmp/cc.log"; fail "tests/consumer/main.c does not build"; }
readelf -d "$tmp/consumer" | grep -q "NEEDED.*libcrew\.so\.$major" ||
    fail "the consumer did not link libcrew.so.$major"
result=$(LD_LIBRARY_PATH="$tmp/root/$lib" "$tmp/consumer") ||
    fail "the consumer failed"
echo "pkg-config, cc: $result"

echo "--- lintian"
# (It warns when run as root; the warning is not about the packages.)
lint=ok
lintian --fail-on error,warning "$runtime" "$dev" >"$tmp/lintian.txt" 2>&1 ||
    lint=failed
grep -v '^running with root privileges' "$tmp/lintian.txt" || true
[ $lint = ok ] || fail "lintian found problems"
echo "lintian: no errors or warnings"
echo "deb.sh: libcrew$major and libcrew-dev built and checked"
