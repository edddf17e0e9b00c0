#!/bin/sh
# Installs what the build and the tests need, if it is missing (Debian).
# `deps.sh build` checks only what building and benchmarking need.
set -eu
need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
if [ "${1:-}" = build ]; then
    :
else
    command -v clang >/dev/null 2>&1 || need="$need clang"
    command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
    # nm and readelf check the installed shared library (consumer.sh).
    command -v readelf >/dev/null 2>&1 || need="$need binutils"
    # The style checks (style.sh).
    command -v cppcheck >/dev/null 2>&1 || need="$need cppcheck"
    command -v clang-format >/dev/null 2>&1 || need="$need clang-format"
    command -v clang-tidy >/dev/null 2>&1 || need="$need clang-tidy"
    # The man pages' checks (consumer.sh).
    command -v mandoc >/dev/null 2>&1 || need="$need mandoc"
    command -v groff >/dev/null 2>&1 || need="$need groff-base"
    # The Debian packages (deb.sh): no fakeroot, since debian/control says
    # Rules-Requires-Root: no.
    command -v dpkg-buildpackage >/dev/null 2>&1 || need="$need dpkg-dev"
    command -v dh >/dev/null 2>&1 || need="$need debhelper"
    command -v lintian >/dev/null 2>&1 || need="$need lintian"
    pkg-config --exists check 2>/dev/null || need="$need check"
    # The aarch64 flavour (aarch64.sh): a cross compiler, qemu's user mode
    # and Check built for arm64, through Debian multiarch (which brings the
    # arm64 C library the test programs load).
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 ||
        need="$need gcc-aarch64-linux-gnu"
    command -v qemu-aarch64 >/dev/null 2>&1 || need="$need qemu-user"
    [ -e /usr/lib/aarch64-linux-gnu/pkgconfig/check.pc ] ||
        need="$need check:arm64"
fi
[ -z "$need" ] && exit 0
echo "deps: installing$need"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: need root to install$need (or install them yourself)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
case $need in
*:arm64*)
    dpkg --print-foreign-architectures | grep -qx arm64 ||
        dpkg --add-architecture arm64 ;;
esac
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq $need
