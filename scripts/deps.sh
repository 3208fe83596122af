#!/usr/bin/env bash
# Install the Debian 12 packages needed to build, test and benchmark inorder.
#
# Only packages that are not installed yet are fetched: if everything is
# present the script prints nothing and touches nothing. Extra packages can be
# requested as arguments or through INORDER_EXTRA_PACKAGES (space separated):
#   INORDER_EXTRA_PACKAGES="clang-format gdb" scripts/deps.sh valgrind
# INORDER_BENCH_DEPS=1 also installs what only the benchmark documentation
# needs (python3-matplotlib for bench/plot.py); the tests never need it.
set -euo pipefail

packages=(
  g++
  meson
  ninja-build
  libsqlite3-dev
  pkg-config
  libgtest-dev
  libbenchmark-dev
  libboost-dev
  libconcurrentqueue-dev
  libtbb-dev
  python3
  cmake
  openmpi-bin
  libopenmpi-dev
)
# Optional: only for regenerating docs/bench/*.png (bench/plot.py) and for
# the mpi4py.futures anchor of the MPI benchmark (bench/mpi_compare.sh).
bench_packages=(
  python3-matplotlib
  python3-mpi4py
)
if [[ "${INORDER_BENCH_DEPS:-0}" == 1 ]]; then
  packages+=("${bench_packages[@]}")
fi
# Word splitting is intended here: the variable holds a space separated list.
# shellcheck disable=SC2206
packages+=(${INORDER_EXTRA_PACKAGES:-} "$@")

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps.sh: dpkg-query not found; this script targets Debian 12, install manually:" >&2
  echo "  ${packages[*]}" >&2
  exit 0
fi

# A package counts as present only when dpkg reports it fully installed
# (a removed package whose config files remain is still "missing").
missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "deps.sh: installing missing packages: ${missing[*]}"

# Run apt as root: directly if we are root, otherwise through sudo
# (non-interactive when there is no terminal, so CI never hangs on a prompt).
as_root=()
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "deps.sh: not root and sudo is unavailable; please install: ${missing[*]}" >&2
    exit 1
  fi
  if [[ -t 0 ]]; then
    as_root=(sudo)
  else
    as_root=(sudo -n)
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
