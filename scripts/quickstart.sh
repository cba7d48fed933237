#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine with Go at /usr/local/go:
# installs what hako needs, builds ./bin/hako, makes a busybox bundle and
# runs a container from it with `hako run`.
#
#   usage: sudo scripts/quickstart.sh
#   env:   BUNDLE  where the bundle goes (default /tmp/hako-quickstart)
#          HAKO    use this runtime binary instead of building ./bin/hako
#                  (HAKO=runc shows the same steps with Debian's runc)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=${BUNDLE:-/tmp/hako-quickstart}
HAKO=${HAKO:-}
export PATH=/usr/local/go/bin:$PATH
export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (sudo $0)" >&2; exit 1; }
command -v go >/dev/null || { echo "quickstart: Go not found at /usr/local/go/bin or on PATH" >&2; exit 1; }

echo "== installing packages"
apt-get update -q
# gcc and libc6-dev link hako statically; busybox-static is the container's
# userland; jq edits the generated config.json.
apt-get install -y -q busybox-static gcc libc6-dev make jq

if [ -z "$HAKO" ]; then
  HAKO=$ROOT/bin/hako
  echo "== building $HAKO"
  make -C "$ROOT" build
fi

echo "== making a busybox bundle in $BUNDLE"
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/rootfs/bin"
cp "$(command -v busybox)" "$BUNDLE/rootfs/bin/busybox"
chroot "$BUNDLE/rootfs" /bin/busybox --install -s /bin
"$HAKO" spec --bundle "$BUNDLE"
jq '.process.terminal = false
  | .process.args = ["sh", "-c", "echo hello from a hako container: $(hostname), pid $$, uid $(id -u)"]' \
  "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"

echo "== $HAKO run"
"$HAKO" run --bundle "$BUNDLE" "quickstart-$$"

cat <<EOT

It works. Next:
  $HAKO run --bundle $BUNDLE demo              # run again (edit $BUNDLE/config.json first)
  $HAKO create --bundle $BUNDLE demo && $HAKO start demo && $HAKO list
  make -C $ROOT test                               # the full test suite (root)
EOT
