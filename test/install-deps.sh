#!/bin/sh
# Installs the real programs the end-to-end tests run, when missing (Debian/Ubuntu).
# Called by `npm test`; safe to run again: it does nothing when all are present.
set -eu
# command → Debian package; then the packages whose services must stay off
exec sh "$(dirname "$0")/../scripts/install-packages.sh" test/install-deps.sh \
  "docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils openssl:openssl tar:tar curl:curl busybox:busybox shellcheck:shellcheck dockerd:docker.io containerd:containerd ctr:containerd ip:iproute2 promtool:prometheus haproxy:haproxy testssl:testssl.sh slowhttptest:slowhttptest named:bind9 tsig-keygen:bind9 dig:bind9-dnsutils pebble:pebble pebble-challtestsrv:pebble unshare:util-linux chromium:chromium certutil:libnss3-tools systemd-analyze:systemd systemd-sysusers:systemd docker-compose:docker-compose debootstrap:debootstrap nsenter:util-linux" \
  "prometheus haproxy bind9"
