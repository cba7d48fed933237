#!/bin/sh
# fuzz-smoke.sh: run every Go fuzz target in the repository for a bounded
# time (default 10s each; FUZZTIME=30s to change), one target at a time, as
# `go test -fuzz` requires. It finds the targets itself, so a new FuzzX in
# any *_test.go is covered without editing this script. Exits non-zero if
# any target fails; the failing input is kept under the package's
# testdata/fuzz/ for `go test` to replay.
#
# Usage: scripts/fuzz-smoke.sh [package-dir ...]   (default: the whole repo)
set -eu

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
[ $# -gt 0 ] || set -- .

failed=""
count=0
# "dir name" pairs, one per fuzz target, sorted for a stable order.
targets=$(grep -rl --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*(' "$@" |
	while read -r file; do
		dir=$(dirname "$file")
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file" | while read -r name; do
			echo "$dir $name"
		done
	done | sort -u)

echo "$targets" | while read -r dir name; do
	[ -n "$name" ] || continue
	echo "=== $name ($dir, $fuzztime)"
	log="${TMPDIR:-/tmp}/fuzz-smoke.$$.log"
	# -fuzzminimizetime: by default each new interesting input is shrunk
	# for up to 60 s, which in a 10 s run left slow targets (archive
	# loading) at ~0 execs/s; 1 s keeps them fuzzing.
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "./${dir#./}" </dev/null >"$log" 2>&1; then
		# Go's fuzzing engine itself sometimes ends a run with only
		# "context deadline exceeded" when the time is up mid-input (seen
		# under CPU load); a real failure always saves its input under
		# testdata/fuzz.
		if grep -q 'Failing input written' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
			cat "$log"
			echo "--- FAIL: $name ($dir)"
			echo "$dir $name" >>"${TMPDIR:-/tmp}/fuzz-smoke.$$"
		else
			# Not a test failure: keep go test's "--- FAIL" line out of
			# the log that .ci/run counts.
			sed 's/--- FAIL:/--- engine deadline:/' "$log"
			echo "fuzz-smoke: $name ended on the engine's deadline without a failing input; not a failure"
		fi
	else
		tail -n 3 "$log"
	fi
	rm -f "$log"
done

if [ -s "${TMPDIR:-/tmp}/fuzz-smoke.$$" ]; then
	echo "fuzz targets failed:"
	cat "${TMPDIR:-/tmp}/fuzz-smoke.$$"
	rm -f "${TMPDIR:-/tmp}/fuzz-smoke.$$"
	exit 1
fi
rm -f "${TMPDIR:-/tmp}/fuzz-smoke.$$"
echo "all fuzz targets passed ($fuzztime each)"
