#!/usr/bin/env bash
# Builds a small libinorder-mpi program the way a user's project would, against
# a `meson install` into a scratch DESTDIR, and runs it on two ranks.
#   pkgconfig   compile with the flags `pkg-config inorder-mpi` reports
#   cmake       find_package(inorder) and target inorder::mpi
# usage: consumer_check.sh MODE BUILD_DIR SOURCE_ROOT CXX [SANITIZE]
# (the arguments are read by ../consumer_setup.sh, shared with ../consumer_check.sh)
set -euo pipefail
# shellcheck source=tests/consumer_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../consumer_setup.sh"
here=$source_root/tests/mpi

install_to_scratch
prefix_root=$(find "$scratch/root" -path '*/include/inorder/mpi.hpp' | head -n 1)
[[ -n "$prefix_root" ]] || { echo "FAIL: inorder/mpi.hpp was not installed" >&2; exit 1; }
prefix_root=${prefix_root%/include/inorder/mpi.hpp}
lib=$(find "$scratch/root" -name 'libinorder-mpi.so*' | head -n 1)
[[ -n "$lib" ]] || { echo "FAIL: libinorder-mpi was not installed" >&2; exit 1; }
libdir=$(dirname "$lib")

case "$mode" in
pkgconfig)
  pc=$(find "$scratch/root" -name inorder-mpi.pc | head -n 1)
  [[ -n "$pc" ]] || { echo "FAIL: inorder-mpi.pc was not installed" >&2; exit 1; }
  export PKG_CONFIG_PATH=$(dirname "$pc")
  export PKG_CONFIG_SYSROOT_DIR=$scratch/root
  # shellcheck disable=SC2046
  "$cxx" "${san_flags[@]}" $(pkg-config --cflags inorder-mpi) "$here/consumer/hello_mpi.cpp" \
    -o "$scratch/hello_mpi" $(pkg-config --libs inorder-mpi) -Wl,-rpath,"$libdir"
  ;;
cmake)
  command -v cmake >/dev/null || { echo "FAIL: cmake is not installed" >&2; exit 1; }
  cp "$here/consumer/CMakeLists.txt" "$here/consumer/hello_mpi.cpp" "$scratch/"
  cmake -S "$scratch" -B "$scratch/build" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix_root" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}" \
    -DCMAKE_BUILD_RPATH="$libdir" >"$scratch/cmake.log" 2>&1 ||
    { cat "$scratch/cmake.log" >&2; exit 1; }
  cmake --build "$scratch/build" >>"$scratch/cmake.log" 2>&1 ||
    { cat "$scratch/cmake.log" >&2; exit 1; }
  cp "$scratch/build/hello_mpi" "$scratch/hello_mpi"
  ;;
*)
  echo "usage: consumer_check.sh pkgconfig|cmake BUILD_DIR SOURCE_ROOT CXX [SANITIZE]" >&2
  exit 2
  ;;
esac

out=$(bash "$here/run.sh" pass 2 -- "$scratch/hello_mpi")
echo "$out"
grep -qx 'sum of squares on 2 ranks: 285' <<<"$out" ||
  { echo "FAIL: unexpected output" >&2; exit 1; }
echo "installed libinorder-mpi works through $mode"
