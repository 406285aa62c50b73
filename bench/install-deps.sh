#!/bin/sh
# Installs what `npm run bench` runs, when missing (Debian/Ubuntu): the registry, nginx (the
# peer it is compared with), curl, openssl, and hey (keep-alive load that can time HEAD).
# Called by `npm run bench` and `npm test` (which runs the quick bench); does nothing when all
# are present. Same mechanism as test/install-deps.sh.
set -eu

# command → Debian package (nginx lives in /usr/sbin, which a non-root PATH may lack)
need="docker-registry:docker-registry /usr/sbin/nginx:nginx curl:curl openssl:openssl hey:hey getconf:libc-bin"

missing=""
for pair in $need; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "bench/install-deps.sh: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "bench/install-deps.sh: need root (or sudo) to install:$missing" >&2
  echo "  run: apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/install-deps.sh: no apt-get here; install these packages by hand:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The benchmark starts its own nginx and registry on free loopback ports. Debian's nginx
# package would start a system nginx on :80 that runs for good and shares the cores being
# measured: a policy-rc.d answering 101 ("not allowed") stops maintainer scripts from starting
# services (https://people.debian.org/~hmh/invokerc.d-policyrc.d-specification.txt); it is
# removed afterwards unless it was there already (container images ship one).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  trap '$SUDO rm -f "$policy"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing ca-certificates >/dev/null
# Under systemd the package also enables nginx for the next boot (and a unit may have been
# started by socket or path activation): stop and disable it.
if [ -d /run/systemd/system ]; then
  case " $missing " in
    *" nginx "*) $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true ;;
  esac
fi
