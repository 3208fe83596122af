#!/usr/bin/env bash
# Installs the build into a scratch DESTDIR and builds SOURCE against it with the
# flags pkg-config reports for `inorder`, then runs the program.
# usage: install_check.sh BUILD_DIR SOURCE CXX [EXTRA CXXFLAGS...]
set -euo pipefail
build=$1
source=$2
cxx=$3
shift 3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

meson install -C "$build" --destdir "$scratch" --no-rebuild >"$scratch/install.log" 2>&1 ||
  { cat "$scratch/install.log" >&2; exit 1; }
pc=$(find "$scratch" -name inorder.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: inorder.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR=$scratch
# The .pc names the final prefix; the sysroot maps it into the scratch tree.
cflags=$(pkg-config --cflags inorder)
libs=$(pkg-config --libs inorder)
libdir=$(pkg-config --variable=libdir inorder)
# shellcheck disable=SC2086
"$cxx" "$@" $cflags "$source" -o "$scratch/quickstart" $libs -Wl,-rpath,"$libdir"
out=$("$scratch/quickstart")
echo "$out"
grep -qx '5^2 = 25' <<<"$out" || { echo "FAIL: unexpected output" >&2; exit 1; }
echo "installed headers, library and inorder.pc build and run the quickstart"
