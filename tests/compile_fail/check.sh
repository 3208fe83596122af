#!/usr/bin/env bash
# Compile-fail check: passes only if compiling SOURCE fails AND the compiler's
# diagnostics contain EXPECTED (inorder's static_assert message).
#
# usage: check.sh EXPECTED SOURCE COMPILER [COMPILER ARGS...]
#   e.g. check.sh "cannot cross a process boundary" unencodable.cpp \
#          g++ -Iinclude -std=c++20 -fsyntax-only
set -u

if [ "$#" -lt 3 ]; then
  echo "usage: $0 EXPECTED SOURCE COMPILER [COMPILER ARGS...]" >&2
  exit 2
fi
expected=$1
source=$2
shift 2

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if "$@" "$source" >"$log" 2>&1; then
  echo "FAIL: $source compiled, but it must be rejected" >&2
  exit 1
fi
if ! grep -qF -- "$expected" "$log"; then
  echo "FAIL: $source was rejected, but not with the expected message: $expected" >&2
  echo "---- compiler output ----" >&2
  cat "$log" >&2
  exit 1
fi
echo "ok: $source is rejected with: $expected"
grep -m1 -F -- "$expected" "$log"
