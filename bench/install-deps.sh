#!/bin/sh
# Installs what `npm run bench` runs, when missing (Debian/Ubuntu): the registry, nginx (the
# peer it is compared with), curl, openssl, hey (keep-alive load that can time HEAD) and wrk
# (fixed-time load, the way most people measure a proxy).
# Called by `npm run bench` and `npm test` (which runs the quick bench); does nothing when all
# are present.
set -eu
# command → Debian package (nginx lives in /usr/sbin, which a non-root PATH may lack); then
# the packages whose services must stay off
exec sh "$(dirname "$0")/../scripts/install-packages.sh" bench/install-deps.sh \
  "docker-registry:docker-registry /usr/sbin/nginx:nginx curl:curl openssl:openssl hey:hey wrk:wrk getconf:libc-bin" \
  "nginx"
