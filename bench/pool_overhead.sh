#!/usr/bin/env bash
# Per-item overhead of inorder's Pool::map against Python's
# multiprocessing.Pool.map: same item count, same machine, same run.
# usage: bench/pool_overhead.sh BUILD_DIR [items=200000] [workers=2]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: pool_overhead.sh BUILD_DIR [items] [workers]}
items=${2:-200000}
workers=${3:-2}
"$build/bench/inorder-pool-overhead" "$items" "$workers"
if command -v python3 >/dev/null; then
  python3 "$here/pool_overhead.py" "$items" "$workers"
else
  echo "python3 not found: the multiprocessing anchor was skipped" >&2
fi
