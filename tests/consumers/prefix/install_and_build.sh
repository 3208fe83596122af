#!/usr/bin/env bash
# The custom-prefix recipe of docs/getting_started.md, run as it is shown there
# (scripts/check_docs.py checks that the page's block is taken from this file).
# Run from a directory that holds the inorder source tree as `inorder`, the
# quickstart.cpp and CMakeLists.txt of a consumer project, with `prefix` set to
# the install directory; tests/consumer_check.sh (mode `prefix`) does that in a
# scratch directory.
set -euo pipefail
: "${prefix:?set prefix to the install directory}"

# Build and install the library alone, into $prefix/lib on any distribution.
meson setup inorder-build inorder --prefix "$prefix" --libdir lib --buildtype=release \
  -Dtests=false -Dbenchmarks=false -Dexamples=false
meson install -C inorder-build

# pkg-config: point it at the prefix, and record the library's directory in the
# program (rpath) so that it runs without further setup.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
c++ -std=c++20 quickstart.cpp $(pkg-config --cflags --libs inorder) \
  -Wl,-rpath,"$prefix/lib" -o quickstart
./quickstart

# Without the rpath, the loader must be told where to look.
c++ -std=c++20 quickstart.cpp $(pkg-config --cflags --libs inorder) -o quickstart-no-rpath
LD_LIBRARY_PATH="$prefix/lib" ./quickstart-no-rpath

# CMake: find_package(inorder) finds the prefix; programs in the build tree get
# the rpath from CMake itself.
cmake -S . -B build -DCMAKE_PREFIX_PATH="$prefix"
cmake --build build
./build/quickstart
