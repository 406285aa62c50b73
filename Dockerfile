# registry-tls-proxy: trusted HTTPS in front of a plain-HTTP container registry.
#
#   docker build -t registry-tls-proxy .
#   docker run -d --network registry-net -p 5443:5443 \
#     -v rtp-data:/var/lib/registry-tls-proxy \
#     -e RTP_BACKEND=http://registry:5000 -e RTP_TLS_NAMES=registry.example.com \
#     registry-tls-proxy
# (docker-compose.yml beside this file sets up the registry, the networks and volumes)
#
# Base image: node:${NODE_VERSION}-bookworm-slim, in every stage, pinned to one exact
# version here. `npm test` runs the whole suite on this same version too
# (test/run-on-image-node.sh reads it from this line), so change it only here.
# - Node 26 is the active LTS (since October 2026, supported until April 2029); 24 is
#   in maintenance. Both ship OpenSSL 3.5, and on both the TLS test files pass
#   once handshake failures are classified by TLS alert number rather than by
#   OpenSSL's error-code names (3.5 renamed them). On 26 the proxy's resident memory
#   grows about 27 MiB over its first thousand aborted transfers, then stays flat over
#   six more rounds (heap after full GCs: 14.5 MiB): V8's sizing, no leak. The newer
#   line, with a year more support, wins.
# - package.json needs >= 20.12; Node 20 reached end of life in April 2026.
# - bookworm (Debian 12) is the release the project's development and CI machines run.
#   Naming the release keeps the base from moving to a new Debian release without
#   anyone choosing that (the plain `node:26-slim` tag follows Debian's newest release).
# - slim has no compilers or extra tools. None are needed, because every dependency
#   is plain JavaScript.
# For repeatable builds, pin it by digest too: FROM node:${NODE_VERSION}-bookworm-slim@sha256:...
ARG NODE_VERSION=26.12.1

# ---- deps: production dependencies only, straight from the lockfile
# (re-run only when package.json or package-lock.json change)
FROM node:${NODE_VERSION}-bookworm-slim AS deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

# ---- build: every dependency, including TypeScript, then compile src/ to dist/
FROM node:${NODE_VERSION}-bookworm-slim AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: only dist/, production node_modules, package.json and config/
FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    RTP_LISTEN=0.0.0.0:5443 \
    RTP_TLS_DIR=/var/lib/registry-tls-proxy/tls
# The admin listener (/healthz, /readyz, /metrics, plain HTTP) stays at the default from
# config/default.yaml, 127.0.0.1:5480: inside the container's own loopback, so it is
# reachable only from inside the container. To serve it to a management network,
# set RTP_ADMIN_LISTEN=0.0.0.0:5480 and publish or attach it deliberately (see
# docker-compose.yml). Never put it on the public port.
WORKDIR /app
# The application files belong to root and are read-only to the `node` user that
# runs the proxy, so the process cannot change its own code.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# The CA, server certificate and keys are created under $RTP_TLS_DIR on first start
# (directory 0700, keys 0600) and reused afterwards. A named volume starts out with
# this directory's owner (node, uid 1000). A bind-mounted host directory must be
# owned by uid 1000: chown 1000:1000 DIR.
RUN mkdir -p /var/lib/registry-tls-proxy \
 && chown node:node /var/lib/registry-tls-proxy \
 && chmod 0700 /var/lib/registry-tls-proxy
VOLUME ["/var/lib/registry-tls-proxy"]
# The official image's unprivileged user (uid 1000). The proxy listens on 5443, so it
# needs no privileged port.
USER node
EXPOSE 5443
# `check` runs the certificate checks, the backend probe (401 with a challenge =
# healthy; 200 to anonymous users = unhealthy) and a verified request to the proxy's
# own port, and exits 1 on a problem. A registry deliberately open to anonymous users
# needs RTP_HEALTH_ALLOW_ANONYMOUS=true, or the container reports unhealthy.
HEALTHCHECK --interval=30s --timeout=20s --start-period=30s --retries=3 \
  CMD ["node", "dist/cli.js", "check", "--config", "config/default.yaml"]
# The proxy handles SIGTERM/SIGINT itself, so it runs as PID 1 with no init process.
# --max-semi-space-size=2 (MiB): V8 collects its young generation when it fills, or
# when ~32 MiB (Node 20; ~64 on Node 26) of young Buffers' memory has piled up. An upload
# makes a Buffer per TLS record that dies at once, so with a large young generation tens
# of MiB of dead Buffers wait for a collection, and glibc keeps the heap they grew. With 2
# a 1 GiB push leaves a worker ~80 MiB instead of ~105 (Node 20; Node 26: ~111 instead
# of ~161) and costs ~20 % less CPU; manifest GETs cost the same (bench/RESULTS.md,
# session 16).
# --initial-old-space-size=32 (MiB): V8 counts the Buffers allocated since its last full
# collection against the old generation's limit. The proxy's old generation (~11 MiB
# live) is above the size where V8 starts watching it, and with the limit it sets for
# that heap, an upload's stream of short-lived Buffers set off a full collection every
# ~80 ms in some pushes: 20-70 a GiB, a push costing up to 1.8x the CPU of one with none
# (Node 20 and 26). At 32, none happen, and a 1 GiB push costs ~25-45 % less CPU; RSS
# after it is the same, and the peak under a manifest load ~10 MiB higher
# (bench/RESULTS.md, session 18). Every launcher we ship passes both: npm start, and
# the installed command's first line (dist/cli.js), which the systemd unit runs;
# NODE_OPTIONS cannot carry the second flag.
ENTRYPOINT ["node", "--max-semi-space-size=2", "--initial-old-space-size=32", "dist/cli.js"]
CMD ["serve", "--config", "config/default.yaml"]
