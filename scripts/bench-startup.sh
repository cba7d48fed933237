#!/usr/bin/env bash
# Start-up benchmark: `run` of a busybox `echo hello` bundle with hako, runc
# and crun, side by side in ONE hyperfine invocation (issue 3: hako's median
# must be at most 0.5x runc's; the goal is to beat crun).
#
#   usage: sudo scripts/bench-startup.sh
#   env:   RUNS      runs per runtime (default 50, at least 30)
#          WARMUP    warm-up runs per runtime (default 5)
#          HAKO      hako binary (default <repo>/bin/hako; skipped if missing)
#          OUT       JSON export (default <repo>/test/out/bench-startup.json)
#          SECCOMP   "docker": give the bundle Docker's default seccomp profile
#                    (~400 syscall names; issue 4 asks for the ratio with it)
#
# crun 1.8 refuses this host's hybrid cgroup v1 layout, so it runs in a
# private mount namespace where /sys/fs/cgroup is a cgroup2 mount, with
# --cgroup-manager=disabled. A helper process holds that namespace for the
# whole run; every command (hako and runc too, into the host's own mount
# namespace) is entered through the same `nsenter --mount`, so each pays the
# same extra exec and only crun sees the cgroup2 view.
#
# Every run uses a new container ID ($$ of hyperfine's per-run shell) and
# `run` removes the container when it exits.
set -euo pipefail

RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HAKO=${HAKO:-$ROOT/bin/hako}
OUT=${OUT:-$ROOT/test/out/bench-startup.json}
SECCOMP=${SECCOMP:-}

die() { echo "bench-startup: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root"
[ "$RUNS" -ge 30 ] || die "RUNS=$RUNS: at least 30 runs are needed for a median worth quoting"
for tool in hyperfine runc crun busybox jq nsenter unshare; do
  command -v "$tool" >/dev/null || die "$tool not found (see .ci/run for the packages)"
done

WORK=$(mktemp -d /tmp/hako-bench.XXXXXX)
NS_PID=
cleanup() {
  set +e
  [ -n "$NS_PID" ] && kill "$NS_PID" 2>/dev/null && wait "$NS_PID" 2>/dev/null
  # A failed run may leave a container behind; remove it and its cgroups.
  for rt in runc hako; do
    bin=$rt; [ "$rt" = hako ] && bin=$HAKO
    [ -d "$WORK/state-$rt" ] && [ -x "$(command -v "$bin")" ] &&
      for id in $("$bin" --root "$WORK/state-$rt" list -q 2>/dev/null); do
        "$bin" --root "$WORK/state-$rt" delete --force "$id" >/dev/null 2>&1
      done
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The bundle: a static busybox with an echo applet, runc's default config
# with a non-terminal `echo hello`.
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs/bin" "$BUNDLE/rootfs/proc" "$BUNDLE/rootfs/sys" "$BUNDLE/rootfs/dev"
cp "$(command -v busybox)" "$BUNDLE/rootfs/bin/busybox"
ln -s busybox "$BUNDLE/rootfs/bin/echo"
ln -s busybox "$BUNDLE/rootfs/bin/sh"
runc spec --bundle "$BUNDLE"
jq '.process.terminal = false | .process.args = ["echo", "hello"]' "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
if [ "$SECCOMP" = docker ]; then
  (cd "$ROOT" && go run ./scripts/dockerprofile) >"$WORK/seccomp.json"
  jq --slurpfile p "$WORK/seccomp.json" '.linux.seccomp = $p[0]' "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
  mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
  echo "bench-startup: with Docker's default seccomp profile ($(jq '[.syscalls[].names | length] | add' "$WORK/seccomp.json") syscall names)"
fi

# The namespace holder for crun. It must not keep the terminal's stdio.
unshare --mount --propagation private sh -c \
  'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && touch "$0/ns-ready" && exec sleep infinity' \
  "$WORK" </dev/null >/dev/null 2>&1 &
NS_PID=$!
for _ in $(seq 100); do [ -e "$WORK/ns-ready" ] && break; sleep 0.05; done
[ -e "$WORK/ns-ready" ] || die "could not set up the cgroup2 mount namespace for crun"
HOST_NS=/proc/$$/ns/mnt
CRUN_NS=/proc/$NS_PID/ns/mnt

# Check each runtime once before timing it: hyperfine would stop at the
# first failure with less to say.
declare -a NAMES=() CMDS=()
add() { # name, command (a shell command; $$ gives each run its own ID)
  local out
  out=$(sh -c "${2//\$\$/check}" 2>&1) || die "$1 does not run the bundle: $out"
  [ "$out" = hello ] || die "$1 printed '$out', want 'hello'"
  NAMES+=("$1"); CMDS+=("$2")
}
mkdir -p "$WORK/state-hako" "$WORK/state-runc" "$WORK/state-crun"
if [ -x "$HAKO" ]; then
  add hako "nsenter --mount=$HOST_NS $HAKO --root $WORK/state-hako run --bundle $BUNDLE hako-\$\$"
else
  echo "bench-startup: $HAKO not built, measuring runc and crun only" >&2
fi
add runc "nsenter --mount=$HOST_NS runc --root $WORK/state-runc run --bundle $BUNDLE runc-\$\$"
add crun "nsenter --mount=$CRUN_NS crun --root $WORK/state-crun --cgroup-manager=disabled run --bundle $BUNDLE crun-\$\$"

mkdir -p "$(dirname "$OUT")"
args=(--runs "$RUNS" --warmup "$WARMUP" --export-json "$OUT")
for i in "${!NAMES[@]}"; do args+=(--command-name "${NAMES[$i]}" "${CMDS[$i]}"); done
hyperfine "${args[@]}"

# Medians (ms) and the ratios the issue asks for.
median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$OUT"; }
echo
printf '%-6s %10s\n' runtime median_ms
for n in "${NAMES[@]}"; do printf '%-6s %10.2f\n' "$n" "$(median "$n")"; done
if [ -x "$HAKO" ]; then
  h=$(median hako) r=$(median runc) c=$(median crun)
  awk -v h="$h" -v r="$r" -v c="$c" 'BEGIN {
    printf "hako/runc = %.2f (target <= 0.50)\nhako/crun = %.2f (goal < 1.00)\n", h / r, h / c }'
fi
echo "bench-startup: JSON in $OUT"
