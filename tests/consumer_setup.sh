# The set-up both consumer checks share: tests/consumer_check.sh (libinorder)
# and tests/mpi/consumer_check.sh (libinorder-mpi) source this file after
# `set -euo pipefail`; it reads their arguments
#   MODE BUILD_DIR SOURCE_ROOT CXX [SANITIZE]
# and sets mode, build, source_root, cxx, sanitize (meson's b_sanitize value of
# the build under test, "none" if unset: a sanitized library needs a sanitized
# consumer), san_flags (the matching compiler flags) and scratch (a temporary
# directory, removed on exit), and defines install_to_scratch.
# shellcheck shell=bash disable=SC2034  # the variables are for the sourcing script
mode=$1
build=$2
source_root=$3
cxx=$4
sanitize=${5:-none}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

san_flags=()
if [[ "$sanitize" != none ]]; then
  san_flags=("-fsanitize=$sanitize")
fi

# `meson install` of the build under test into $scratch/root (a DESTDIR).
install_to_scratch() {
  meson install -C "$build" --destdir "$scratch/root" --no-rebuild >"$scratch/install.log" 2>&1 ||
    { cat "$scratch/install.log" >&2; exit 1; }
}
