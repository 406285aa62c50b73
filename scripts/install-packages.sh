#!/bin/sh
# install-packages.sh WHO "command:package ..." "service ..."
#
# Installs the Debian packages whose commands are missing (Debian/Ubuntu, apt-get), for
# test/install-deps.sh and bench/install-deps.sh; does nothing when all are present.
# The tests and the benchmark start private copies of every server they need on free
# loopback ports, so no package may start its own service (Debian's nginx would run on :80,
# prometheus on :9090, for good, sharing the cores being measured): a policy-rc.d answering
# 101 ("not allowed") stops maintainer scripts from starting services
# (https://people.debian.org/~hmh/invokerc.d-policyrc.d-specification.txt); it is removed
# afterwards unless it was there already (container images ship one). Under systemd the
# packages named as services are also disabled for the next boot.
set -eu
who=$1
need=$2
services=${3:-}

missing=""
for pair in $need; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "$who: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "$who: need root (or sudo) to install:$missing" >&2
  echo "  run: apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: no apt-get here; install these packages by hand:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  trap '$SUDO rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing ca-certificates >/dev/null
if [ -d /run/systemd/system ]; then
  for service in $services; do
    case " $missing " in
      *" $service "*) $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true ;;
    esac
  done
fi
