#!/usr/bin/env bash
# Conformance gate: runs the OCI runtime conformance suite against a runtime
# and fails if any test listed in test/conformance/oci-expected-pass.txt
# fails, so that conformance cannot regress (issue 3: "CI runs the suite on
# every change"). Tests that pass but are not listed are reported so that
# the list can grow.
#
#   usage: scripts/oci-conformance-gate.sh [RUNTIME]   (default ./bin/hako)
#   env:   SHARED_DIR  where shared/ is (default <repo>/../shared)
#          EXPECTED    the list (default test/conformance/oci-expected-pass.txt)
#          OCI_VALIDATION_TIMEOUT  seconds per suite test (default here 20, not
#                      the suite's 60: runc needs ~1.5 s per test, and 58 tests
#                      of a hanging runtime must not eat the CI budget)
#
# Last line: conformance-gate: N passed, N failed   (N failed counts the
# listed tests that did not pass; unlisted failures are not counted).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNTIME=${1:-$ROOT/bin/hako}
SHARED_DIR=${SHARED_DIR:-$ROOT/../shared}
EXPECTED=${EXPECTED:-$ROOT/test/conformance/oci-expected-pass.txt}
SUITE=$SHARED_DIR/conformance/oci-validation.sh

[ -f "$SUITE" ] || { echo "conformance-gate: $SUITE not found (set SHARED_DIR)" >&2; exit 2; }
[ -f "$EXPECTED" ] || { echo "conformance-gate: $EXPECTED not found" >&2; exit 2; }
case $RUNTIME in */*) RUNTIME=$(realpath "$RUNTIME") ;; esac

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# The suite prints its own table; keep it visible and parse it afterwards.
# Its exit status is non-zero only when it could not run at all.
export OCI_VALIDATION_OUT=${OCI_VALIDATION_OUT:-$ROOT/oci-validation-results}
export OCI_VALIDATION_TIMEOUT=${OCI_VALIDATION_TIMEOUT:-20}
bash "$SUITE" "$RUNTIME" | tee "$LOG"

# Table rows: TEST EXIT OK NOT_OK RESULT
declare -A result=()
while read -r name _ _ _ res; do
  case $res in PASS | FAIL) result[$name]=$res ;; esac
done <"$LOG"
[ "${#result[@]}" -gt 0 ] || { echo "conformance-gate: the suite reported no tests" >&2; exit 2; }

passed=0 failed=0
declare -A listed=()
while read -r name; do
  name=${name%%#*}; name=${name//[[:space:]]/}
  [ -n "$name" ] || continue
  listed[$name]=1
  if [ "${result[$name]:-missing}" = PASS ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "conformance-gate: REGRESSION: $name is listed as passing but is ${result[$name]:-missing}" >&2
  fi
done <"$EXPECTED"

for name in $(printf '%s\n' "${!result[@]}" | sort); do
  if [ "${result[$name]}" = PASS ] && [ -z "${listed[$name]:-}" ]; then
    echo "conformance-gate: $name passes but is not in $(basename "$EXPECTED"): consider adding it"
  fi
done
echo "conformance-gate: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
