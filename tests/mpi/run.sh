#!/usr/bin/env bash
# Runs one MPI test job and checks how it ended and that it left nothing behind.
#
# usage: run.sh EXPECT NP [mpirun options...] -- PROGRAM [args...]
#   EXPECT  pass        the job must exit 0
#           kill-rank   rank 2 is SIGKILLed once rank 0 prints "ready": the job
#                       must exit non-zero within 10 s of the kill
#           stop-rank   rank 2 is SIGSTOPped once rank 0 prints "ready": the job
#                       must end non-zero within 15 s (heartbeat bound 2 s, plus
#                       Open MPI's tear-down), naming rank 2
#           mismatch    the job must exit non-zero and name the mismatching rank
#   NP      ranks, or "mpmd" when the mpirun options carry their own -n parts
# Every process of the job carries INORDER_MPI_TEST_TAG in its environment;
# after the job no process with this tag may remain (workers, supervisors,
# ranks). Prints the job's output.
set -uo pipefail
expect=$1
np=$2
shift 2
mpirun_opts=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  mpirun_opts+=("$1")
  shift
done
shift  # the --

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun gives ranks a terminal for output: no colour codes in the logs.
export GTEST_COLOR=no
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# Open MPI keeps memory it never frees; under AddressSanitizer that is reported
# as leaks. These jobs alone run without leak detection (the library's own
# allocations are covered by the non-MPI tests, which keep it on).
if [[ -n "${ASAN_OPTIONS:-}" ]]; then
  export ASAN_OPTIONS="${ASAN_OPTIONS//detect_leaks=1/detect_leaks=0}"
fi
tag="inorder-mpi-$$-$RANDOM"
export INORDER_MPI_TEST_TAG=$tag
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export INORDER_MPI_TEST_DIR=$scratch
# Open MPI's shared-memory transport keeps its segments here instead of
# /dev/shm, so the jobs never touch what other tests check is left clean.
export OMPI_MCA_btl_vader_backing_directory=$scratch

np_opts=()
if [[ "$np" != mpmd ]]; then
  np_opts=(-n "$np")
fi

# Processes (other than this script) whose environment carries the tag.
tagged() {
  local p
  for p in /proc/[0-9]*; do
    [[ "${p#/proc/}" == "$$" ]] && continue
    if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "INORDER_MPI_TEST_TAG=$tag"; then
      echo "${p#/proc/}"
    fi
  done
}

out=$scratch/out.txt
start=$(date +%s%N)
timeout -s KILL 100 mpirun "${np_opts[@]}" --oversubscribe --bind-to none "${mpirun_opts[@]}" \
  "$@" >"$out" 2>&1 &
job=$!

fault_at=0
if [[ "$expect" == kill-rank || "$expect" == stop-rank ]]; then
  # Wait for rank 0's "ready" (every rank has served tasks), then hit rank 2.
  for _ in $(seq 1 600); do
    grep -q '^ready$' "$out" && break
    sleep 0.1
  done
  pidfile=$scratch/rank2.pid
  if ! grep -q '^ready$' "$out" || [[ ! -s "$pidfile" ]]; then
    cat "$out"
    echo "FAIL: the job never became ready" >&2
    kill -KILL "$job" 2>/dev/null
    exit 1
  fi
  fault_at=$(date +%s%N)
  if [[ "$expect" == kill-rank ]]; then
    kill -KILL "$(cat "$pidfile")"
  else
    kill -STOP "$(cat "$pidfile")"
  fi
fi
wait "$job"
status=$?
end=$(date +%s%N)
cat "$out"
echo "job exit status $status after $(((end - start) / 1000000)) ms"

fail=0
case "$expect" in
pass)
  [[ $status == 0 ]] || { echo "FAIL: the job failed" >&2; fail=1; } ;;
kill-rank | stop-rank)
  bound=10000
  [[ "$expect" == stop-rank ]] && bound=15000
  took=$(((end - fault_at) / 1000000))
  echo "job ended $took ms after the fault"
  [[ $status != 0 ]] || { echo "FAIL: the job exited 0" >&2; fail=1; }
  ((took <= bound)) || { echo "FAIL: ended after $took ms, bound $bound ms" >&2; fail=1; }
  if [[ "$expect" == stop-rank ]]; then
    grep -q 'rank 2 on host .* has sent nothing' "$out" ||
      { echo "FAIL: no message naming rank 2" >&2; fail=1; }
  fi
  ;;
mismatch)
  [[ $status != 0 ]] || { echo "FAIL: the job exited 0" >&2; fail=1; }
  grep -q 'rank [12] on host .* runs a different binary' "$out" ||
    { echo "FAIL: no message naming the mismatching rank" >&2; fail=1; }
  ;;
esac

# Nothing of the job may be left: give the tear-down a moment, then look.
left=""
for _ in $(seq 1 50); do
  left=$(tagged)
  [[ -z "$left" ]] && break
  sleep 0.1
done
if [[ -n "$left" ]]; then
  echo "FAIL: processes left behind: $left" >&2
  ps -o pid,ppid,stat,cmd -p "$(echo $left | tr ' ' ',')" >&2 || true
  # They are this job's own processes (tagged by this script): end them by pid.
  for p in $left; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  fail=1
fi
exit $fail
