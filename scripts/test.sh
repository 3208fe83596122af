#!/usr/bin/env bash
# Build inorder and run its GoogleTest suite.
#
# Usage: scripts/test.sh            (from any directory)
#
# Environment:
#   INORDER_SANITIZE=0              skip the second pass (ASan + UBSan in build-asan/), on by default
#   INORDER_TIMEOUT_MULTIPLIER=N    scale every time bound of the suite (default 1): the
#                                   per-test meson timeouts, and inside the tests the
#                                   per-test watchdog and waits (tests/test_util.hpp).
#                                   The sanitizer pass multiplies it by 4 on its own.
#
# The last line printed is "N passed, N failed" (", N skipped" is appended
# when cases were skipped), summed over all passes and counted per test case.
# The exit status is non-zero if anything failed or if no test case ran.
set -euo pipefail

# Work from the repository root, wherever the script is called from.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh

# Debian's python3 (installed by deps.sh) is preferred; the counter only needs the stdlib.
if [[ -x /usr/bin/python3 ]]; then
  python=/usr/bin/python3
else
  python=python3
fi

timeout_multiplier="${INORDER_TIMEOUT_MULTIPLIER:-1}"
# ASan makes fork, exit and first touches of memory several times slower; the
# tests scale their own bounds by the same factor (inorder_test::time_scale()).
sanitizer_factor=4

total_passed=0
total_failed=0
total_skipped=0
pass_no=0

# configure BUILD_DIR [meson setup args...]: set up a fresh build directory or
# reconfigure an existing one (wiping it if the old configuration is unusable).
configure() {
  local build_dir=$1
  shift
  if [[ -f "$build_dir/meson-private/coredata.dat" ]]; then
    meson setup --reconfigure "$@" "$build_dir" ||
      meson setup --wipe "$@" "$build_dir"
  else
    meson setup "$@" "$build_dir"
  fi
}

# run_suite BUILD_DIR [extra meson setup args...]: configure, build and test
# one configuration, adding its case counts to the totals. A configuration
# that fails to configure or build counts as one failed case.
run_suite() {
  local build_dir=$1
  shift
  pass_no=$((pass_no + 1))
  echo "=== test pass ${pass_no}: ${build_dir}/ ${*:-(default options)} ==="

  if ! configure "$build_dir" --werror "$@"; then
    echo "error: meson setup failed for ${build_dir}/; counted as 1 failed case" >&2
    total_failed=$((total_failed + 1))
    return 0
  fi
  if ! ninja -C "$build_dir"; then
    echo "error: build failed in ${build_dir}/; counted as 1 failed case" >&2
    total_failed=$((total_failed + 1))
    return 0
  fi

  # Drop old logs so a crashed executable cannot inherit a previous result.
  "$python" scripts/count_junit.py clean "$build_dir"

  # Tests fork worker processes: run the executables one at a time.
  local status=0 multiplier="$timeout_multiplier"
  if [[ "$build_dir" == build-asan ]]; then
    multiplier="$(awk -v m="$timeout_multiplier" -v f="$sanitizer_factor" 'BEGIN { print m * f }')"
  fi
  meson test -C "$build_dir" --no-rebuild --print-errorlogs \
    --num-processes 1 --timeout-multiplier "$multiplier" || status=$?

  local counts passed failed skipped
  if ! counts="$("$python" scripts/count_junit.py count "$build_dir" --meson-status "$status")"; then
    echo "error: could not count the results in ${build_dir}/; counted as 1 failed case" >&2
    counts="0 1 0"
  fi
  read -r passed failed skipped <<<"$counts"
  echo "=== test pass ${pass_no} (${build_dir}/): ${passed} passed, ${failed} failed, ${skipped} skipped ==="

  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  total_skipped=$((total_skipped + skipped))
}

# Pass 1: the normal build, warnings as errors: -O2 with assertions, as
# meson's debugoptimized, but without debug information, which was a fifth of
# its compile time and is read by no check here.
run_suite build -Doptimization=2 -Ddebug=false

# Pass 2: the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# The library keeps -O2; the programs that exercise it are built at -O0 in
# this pass (with debug information, for the sanitizers' reports), and the
# install checks that rebuild the library from source and the compile-fail
# checks (the same compiler run in both passes) run in pass 1 only (see
# check_program_options in meson.build, tests/meson.build).
if [[ "${INORDER_SANITIZE:-1}" == 1 ]]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
      -Dbenchmarks=false
fi

exit_status=0
if ((total_failed > 0)); then
  exit_status=1
fi
if ((total_passed + total_failed == 0)); then
  echo "error: no test case ran" >&2
  exit_status=1
fi

summary="${total_passed} passed, ${total_failed} failed"
if ((total_skipped > 0)); then
  summary+=", ${total_skipped} skipped"
fi
echo "$summary"
exit "$exit_status"
