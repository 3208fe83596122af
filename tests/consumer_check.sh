#!/usr/bin/env bash
# Builds the quickstart the way a user's project would, outside this tree, and
# runs it. Three ways:
#   pkgconfig   meson install into a scratch DESTDIR, then compile with the
#               flags `pkg-config inorder` reports
#   cmake       meson install into a scratch DESTDIR, then a CMake project with
#               find_package(inorder) and target inorder::inorder
#   subproject  a meson project with this source tree as subprojects/inorder
#               and dependency('inorder')
#   prefix      the custom-prefix recipe of docs/getting_started.md, as shown
#               there (tests/consumers/prefix/install_and_build.sh): a
#               library-only build installed into a scratch --prefix, then
#               pkg-config (with rpath, and with LD_LIBRARY_PATH) and CMake
# usage: consumer_check.sh MODE BUILD_DIR SOURCE_ROOT CXX [SANITIZE]
# SANITIZE is meson's b_sanitize value of the build under test (see
# consumer_setup.sh, which reads the arguments).
set -euo pipefail
# shellcheck source=tests/consumer_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/consumer_setup.sh"
quickstart=$source_root/examples/quickstart.cpp

check_output() {
  local out
  out=$("$1")
  echo "$out"
  grep -qx '5^2 = 25' <<<"$out" || { echo "FAIL: unexpected output from $1" >&2; exit 1; }
}

case "$mode" in
pkgconfig)
  install_to_scratch
  pc=$(find "$scratch/root" -name inorder.pc | head -n 1)
  [[ -n "$pc" ]] || { echo "FAIL: inorder.pc was not installed" >&2; exit 1; }
  export PKG_CONFIG_PATH=$(dirname "$pc")
  # The .pc names the final prefix; the sysroot maps it into the scratch tree.
  export PKG_CONFIG_SYSROOT_DIR=$scratch/root
  cflags=$(pkg-config --cflags inorder)
  libs=$(pkg-config --libs inorder)
  libdir=$(pkg-config --variable=libdir inorder)
  # shellcheck disable=SC2086
  "$cxx" "${san_flags[@]}" $cflags "$quickstart" -o "$scratch/quickstart" $libs \
    -Wl,-rpath,"$libdir"
  check_output "$scratch/quickstart"
  echo "installed headers, library and inorder.pc build and run the quickstart"
  ;;
cmake)
  command -v cmake >/dev/null || { echo "FAIL: cmake is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
  install_to_scratch
  config=$(find "$scratch/root" -name inorderConfig.cmake | head -n 1)
  [[ -n "$config" ]] || { echo "FAIL: inorderConfig.cmake was not installed" >&2; exit 1; }
  [[ -f "$(dirname "$config")/inorderConfigVersion.cmake" ]] ||
    { echo "FAIL: inorderConfigVersion.cmake was not installed" >&2; exit 1; }
  project=$scratch/project
  mkdir -p "$project"
  cp "$source_root/tests/consumers/cmake/CMakeLists.txt" "$quickstart" "$project/"
  lib=$(find "$scratch/root" -name 'libinorder.so*' | head -n 1)
  [[ -n "$lib" ]] || { echo "FAIL: libinorder was not installed" >&2; exit 1; }
  # The staged tree has the final prefix under the DESTDIR; find the root of it.
  prefix_root=$(find "$scratch/root" -path '*/include/inorder/inorder.hpp' | head -n 1)
  prefix_root=${prefix_root%/include/inorder/inorder.hpp}
  cmake -S "$project" -B "$project/build" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix_root" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}" \
    -DCMAKE_BUILD_RPATH="$(dirname "$lib")" >"$scratch/cmake.log" 2>&1 ||
    { cat "$scratch/cmake.log" >&2; exit 1; }
  cmake --build "$project/build" >>"$scratch/cmake.log" 2>&1 ||
    { cat "$scratch/cmake.log" >&2; exit 1; }
  # A requested version the package cannot satisfy must be refused.
  sed 's/find_package(inorder 0.1 REQUIRED)/find_package(inorder 99 REQUIRED)/' \
    "$source_root/tests/consumers/cmake/CMakeLists.txt" >"$scratch/too_new.txt"
  mkdir -p "$scratch/too_new"
  cp "$scratch/too_new.txt" "$scratch/too_new/CMakeLists.txt"
  cp "$quickstart" "$scratch/too_new/"
  if cmake -S "$scratch/too_new" -B "$scratch/too_new/build" \
      -DCMAKE_PREFIX_PATH="$prefix_root" >"$scratch/too_new.log" 2>&1; then
    echo "FAIL: find_package(inorder 99) accepted version 0.x" >&2; exit 1
  fi
  check_output "$project/build/quickstart"
  echo "installed inorderConfig.cmake gives find_package(inorder) and inorder::inorder"
  ;;
subproject)
  project=$scratch/project
  mkdir -p "$project/subprojects"
  cp "$source_root/tests/consumers/meson/meson.build" "$quickstart" "$project/"
  ln -s "$source_root" "$project/subprojects/inorder"
  setup_args=(--buildtype=release)
  if [[ "$sanitize" != none ]]; then
    setup_args+=("-Db_sanitize=$sanitize" -Db_lundef=false)
  fi
  CXX=$cxx meson setup "${setup_args[@]}" "$project/build" "$project" >"$scratch/meson.log" 2>&1 ||
    { cat "$scratch/meson.log" >&2; exit 1; }
  ninja -C "$project/build" >>"$scratch/meson.log" 2>&1 ||
    { cat "$scratch/meson.log" >&2; exit 1; }
  check_output "$project/build/quickstart"
  echo "a meson project builds inorder as a subproject through dependency('inorder')"
  ;;
prefix)
  # A fresh library-only build, independent of BUILD_DIR and its sanitizers.
  command -v cmake >/dev/null || { echo "FAIL: cmake is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
  project=$scratch/project
  mkdir -p "$project" "$scratch/bin"
  cp "$source_root/tests/consumers/cmake/CMakeLists.txt" "$quickstart" "$project/"
  ln -s "$source_root" "$project/inorder"
  # The recipe says `c++`; make that the compiler under test. CXXFLAGS=-O0
  # (after the release flags, so it wins) only makes the library's second
  # build cheaper: what is checked is where things are installed and found.
  # The shim execs the compiler by its full path: `c++` would find the shim.
  cxx_path=$(command -v "$cxx") || { echo "FAIL: compiler $cxx not found" >&2; exit 1; }
  printf '#!/bin/sh\nexec %q "$@"\n' "$cxx_path" >"$scratch/bin/c++"
  chmod +x "$scratch/bin/c++"
  (cd "$project" && PATH=$scratch/bin:$PATH CXX=$scratch/bin/c++ CXXFLAGS=-O0 \
    prefix=$scratch/prefix \
    bash "$source_root/tests/consumers/prefix/install_and_build.sh") >"$scratch/prefix.log" 2>&1 ||
    { cat "$scratch/prefix.log" >&2; echo "FAIL: the custom-prefix recipe failed" >&2; exit 1; }
  runs=$(grep -cx '5^2 = 25' "$scratch/prefix.log" || true)
  [[ "$runs" == 3 ]] ||
    { cat "$scratch/prefix.log" >&2; echo "FAIL: expected 3 quickstart runs, saw $runs" >&2; exit 1; }
  [[ -f "$scratch/prefix/lib/pkgconfig/inorder.pc" ]] ||
    { echo "FAIL: inorder.pc is not in <prefix>/lib/pkgconfig" >&2; exit 1; }
  # What the page warns of: without rpath or LD_LIBRARY_PATH the loader fails.
  if env -u LD_LIBRARY_PATH "$project/quickstart-no-rpath" >/dev/null 2>&1; then
    echo "FAIL: a program built without rpath ran without LD_LIBRARY_PATH" >&2; exit 1
  fi
  echo "the custom-prefix recipe installs, builds and runs the quickstart (pkg-config, CMake)"
  ;;
*)
  echo "usage: consumer_check.sh pkgconfig|cmake|subproject|prefix BUILD_DIR SOURCE_ROOT CXX [SANITIZE]" >&2
  exit 2
  ;;
esac
