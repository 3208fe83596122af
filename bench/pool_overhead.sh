#!/usr/bin/env bash
# Per-item overhead of inorder's Pool::map against Python's
# multiprocessing.Pool.map: same item count, same machine, same run.
# usage: bench/pool_overhead.sh BUILD_DIR [items=200000] [workers=2]
#
# Prints each side's lines (inorder: default chunking and chunksize=1; Python:
# default chunksize and chunksize=1), then
#   pool_map_over_python_chunked = python_default_us / inorder_default_us
# (how many times faster per item inorder's default map is than Python's).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: pool_overhead.sh BUILD_DIR [items] [workers]}
items=${2:-200000}
workers=${3:-2}

# The median us/item is the second-to-last field of each line ("... median X us/item (N runs)").
median_of() { awk -v key="$1" 'index($0, key) { for (i = 1; i < NF; ++i) if ($i == "median") print $(i + 1) }'; }

ours=$("$build/bench/inorder-pool-overhead" "$items" "$workers")
echo "$ours"
if ! command -v python3 >/dev/null; then
  echo "python3 not found: the multiprocessing anchor was skipped" >&2
  exit 0
fi
theirs=$(python3 "$here/pool_overhead.py" "$items" "$workers")
echo "$theirs"
inorder_default=$(median_of "default chunking" <<<"$ours")
python_default=$(median_of "chunksize=default" <<<"$theirs")
awk -v p="$python_default" -v i="$inorder_default" \
  'BEGIN { printf "pool_map_over_python_chunked = %.2f (python %s us / inorder %s us per item)\n", p / i, p, i }'
