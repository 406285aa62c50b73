#!/bin/sh
# Installs the real programs the end-to-end tests run, when missing (Debian/Ubuntu).
# Called by `npm test`; safe to run again: it does nothing when all are present.
set -eu

# command → Debian package
need="docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils openssl:openssl tar:tar curl:curl busybox:busybox shellcheck:shellcheck dockerd:docker.io containerd:containerd ctr:containerd ip:iproute2 promtool:prometheus haproxy:haproxy"

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
# The tests start private copies of every server they need (registry, dockerd, containerd,
# prometheus, haproxy), so no package may start its service: `prometheus` would otherwise run a
# Prometheus server on :9090 for good. A policy-rc.d answering 101 ("not allowed") stops
# maintainer scripts from starting services
# (https://people.debian.org/~hmh/invokerc.d-policyrc.d-specification.txt);
# it is removed afterwards unless it was there already (container images ship one).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  trap '$SUDO rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing ca-certificates >/dev/null
# These packages also enable their service for the next boot; under systemd, undo that.
if [ -d /run/systemd/system ]; then
  for service in prometheus haproxy; do
    case " $missing " in
      *" $service "*) $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true ;;
    esac
  done
fi
