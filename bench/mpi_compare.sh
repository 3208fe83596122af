#!/usr/bin/env bash
# libinorder-mpi beside its anchors, in one run (docs/scale_out.md).
#
# usage: bench/mpi_compare.sh BUILD_DIR [REPEATS=3]
#   (a) the sleeping skewed workload: the local queue with 2 workers, then
#       4 ranks x 2 workers; ideal speed-up 4.
#   (b) tiny tasks over 3 ranks: inorder-mpi against mpi4py.futures
#       MPIPoolExecutor.map at chunksize 1 and at 100, 1000, 10000.
# Each configuration runs REPEATS times; the median line is printed.
# Needs python3-mpi4py (INORDER_BENCH_DEPS=1 scripts/deps.sh installs it).
set -euo pipefail
build=${1:?usage: mpi_compare.sh BUILD_DIR [REPEATS]}
repeats=${2:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog=$build/bench/inorder-mpi-compare
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# Open MPI's shared-memory segments go to a scratch directory, not /dev/shm.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export OMPI_MCA_btl_vader_backing_directory=$scratch
mpirun_=(mpirun --oversubscribe --bind-to none)

# median CMD...: runs CMD $repeats times, prints the line with the median tasks_per_s.
median() {
  local lines=()
  for _ in $(seq 1 "$repeats"); do
    lines+=("$("$@" 2>/dev/null | grep 'tasks_per_s=' | tail -n 1)")
  done
  printf '%s\n' "${lines[@]}" |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^tasks_per_s=/) { split($i, a, "="); print a[2], $0 } }' |
    sort -n | awk -v m=$(((repeats + 1) / 2)) 'NR == m { $1 = ""; print substr($0, 2) }'
}

echo "machine: $(nproc) cores, $(uname -m), $(c++ --version | head -n 1)"
echo "(a) skewed, 2000 tasks"
median "$prog" local-skewed 2000 2
median "${mpirun_[@]}" -n 4 "$prog" mpi-skewed 2000 2
echo "(b) tiny tasks over 3 ranks"
median "${mpirun_[@]}" -n 3 "$prog" mpi-tiny 300000 1
for cs in 1 100 1000 10000; do
  n=20000
  ((cs >= 100)) && n=300000
  median "${mpirun_[@]}" -n 3 /usr/bin/python3 -m mpi4py.futures "$here/mpi4py_map.py" "$n" "$cs"
done
