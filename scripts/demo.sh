#!/usr/bin/env bash
# Build inorder in release mode and run the indexing example.
#
# Usage: scripts/demo.sh [arguments for the example...]
# Exits with the example's own exit status.
set -euo pipefail

# Work from the repository root, wherever the script is called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh

build_dir=build-release

# Set up the build directory, or reconfigure it if it already exists.
if [[ -f "$build_dir/meson-private/coredata.dat" ]]; then
  meson setup --reconfigure -Dbuildtype=release "$build_dir" ||
    meson setup --wipe -Dbuildtype=release "$build_dir"
else
  meson setup -Dbuildtype=release "$build_dir"
fi

# Only the example is needed; tests and benchmarks are left unbuilt.
ninja -C "$build_dir" examples/indexing

exec "$build_dir/examples/indexing" "$@"
