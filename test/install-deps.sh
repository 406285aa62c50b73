#!/bin/sh
# Installs the real programs the end-to-end tests run, when missing (Debian/Ubuntu).
# Called by `npm test`; safe to run again: it does nothing when all are present.
set -eu

# command → Debian package
need="docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils openssl:openssl tar:tar curl:curl busybox:busybox shellcheck:shellcheck dockerd:docker.io containerd:containerd ctr:containerd ip:iproute2"

missing=""
for pair in $need; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "test/install-deps.sh: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "test/install-deps.sh: need root (or sudo) to install:$missing" >&2
  echo "  run: apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test/install-deps.sh: no apt-get here; install these packages by hand:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing ca-certificates >/dev/null
