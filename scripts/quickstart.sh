#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine with Go at /usr/local/go:
# installs what hako needs, builds ./bin/hako (and hako-engine beside it),
# makes a busybox image (`hako import` of a busybox-static root file system:
# this machine may have no registry to pull from), mounts it as a
# container root (`hako image mount`) and runs a container on it with
# `hako spec` + `hako run`. With a registry, `hako pull NAME` replaces the
# import.
#
#   usage: sudo scripts/quickstart.sh
#   env:   BUNDLE     where the bundle goes (default /tmp/hako-quickstart)
#          DATA_ROOT  hako's image store (default /var/lib/hako)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=${BUNDLE:-/tmp/hako-quickstart}
DATA_ROOT=${DATA_ROOT:-/var/lib/hako}
export PATH=/usr/local/go/bin:$PATH
export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (sudo $0)" >&2; exit 1; }
command -v go >/dev/null || { echo "quickstart: Go not found at /usr/local/go/bin or on PATH" >&2; exit 1; }

echo "== installing packages"
apt-get update -q
# gcc and libc6-dev link hako statically; busybox-static is the container's
# userland; jq edits the generated config.json.
apt-get install -y -q busybox-static gcc libc6-dev make jq

HAKO=$ROOT/bin/hako
echo "== building $HAKO"
make -C "$ROOT" build
hako() { "$HAKO" --data-root "$DATA_ROOT" "$@"; }

echo "== making a busybox image: hako import"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
chroot "$work/rootfs" /bin/busybox --install -s /bin
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" --numeric-owner -cf "$work/busybox.tar" .
hako import --change 'CMD ["sh"]' "$work/busybox.tar" localhost/busybox:latest
hako images localhost/busybox

echo "== mounting the image as a container root: hako image mount"
# A mount left by an earlier run of this script goes first.
if [ -f "$BUNDLE/rootfs.key" ]; then
  hako image umount "$(cat "$BUNDLE/rootfs.key")" 2>/dev/null || true
fi
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
rootfs=$(hako image mount localhost/busybox:latest)
echo "$rootfs" >"$BUNDLE/rootfs.key"
"$HAKO" spec --bundle "$BUNDLE"
jq --arg root "$rootfs" '.root.path = $root | .root.readonly = false | .process.terminal = false
  | .process.args = ["sh", "-c", "echo hello from a hako container: $(hostname), pid $$, uid $(id -u), on $(df / | tail -1 | cut -d\" \" -f1)"]' \
  "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"

echo "== hako run"
"$HAKO" run --bundle "$BUNDLE" "quickstart-$$"

cat <<EOT

It works. Next:
  $HAKO run --bundle $BUNDLE demo                 # run again (edit $BUNDLE/config.json first)
  $HAKO create --bundle $BUNDLE demo && $HAKO start demo && $HAKO list
  $HAKO --data-root $DATA_ROOT image umount $rootfs   # drop the container root
  $HAKO pull REGISTRY/NAME:TAG                        # from a registry (docs/images.md)
  make -C $ROOT test                                  # the full test suite (root)
EOT
