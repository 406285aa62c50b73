/**
 * The POSIX sh script served at GET /install-ca.sh:
 *
 *   curl -fsSk https://HOST:PORT/install-ca.sh | $(command -v sudo) sh -s -- --fingerprint AB:CD:… [--client KIND|all] [--registry HOST:PORT]
 *
 * It installs the CA only after pinning it to the fingerprint (installer-pin.ts).
 * `all` (the default) installs for the clients present on this host and says which it
 * skipped (layout.ts CLIENT_PRESENCE); a named client is installed whether or not it is.
 * Paths come from layout.ts, so the script and instructions.ts cannot drift apart.
 */
import { RTPError } from '../errors.js';
import { PIN_SH, ARGS_CHECK_SH, fillTemplate, pinValues } from './installer-pin.js';
import {
  ANCHOR_PREFIX,
  CA_FILE,
  CERTS_DIRS,
  CLIENT_KINDS,
  CLIENT_PRESENCE,
  CONTAINERD_CRI_TABLES,
  HOSTS_TOML,
  SYSTEM_STORES,
  absenceReason,
  hostsTOML,
} from './layout.js';

/**
 * The script with `hostPort` (the address it is served on) as the default --registry;
 * `what` names what /ca.crt holds for that address (an internal ACME server's root).
 */
export function installerScript(hostPort: string, what = "this registry's CA"): string {
  const toml = hostsTOML('%{REGISTRY}', `%{dir}/${CA_FILE}`);
  if (/[`\\$]/.test(toml)) {
    throw new RTPError('TRUST_BAD_TEMPLATE', 'installer script: hosts.toml would expand in sh');
  }
  const stores = SYSTEM_STORES.flatMap((s, i) => [
    `  ${i === 0 ? 'if' : 'elif'} command -v ${s.command} >/dev/null 2>&1; then`,
    `    dir="$ROOT${s.anchorsDir}"; update='${[s.command, ...s.args].join(' ')}'`,
  ]).join('\n');
  return fillTemplate(HEAD + ARGS_CHECK_SH + PRESENCE_SH + PIN_SH + INSTALL_SH, {
    ...pinValues('install-ca.sh', hostPort, what),
    CLIENT_KINDS: CLIENT_KINDS.join(' '),
    PRESENCE_CASES: presenceCases(),
    ABSENCE_CASES: CLIENT_KINDS.map(
      (kind) => `    ${kind}) echo 'skipped ${kind}: ${absenceReason(kind)}' ;;`,
    ).join('\n'),
    DOCKER_DIR: CERTS_DIRS.docker,
    CONTAINERS_DIR: CERTS_DIRS.containers,
    CONTAINERD_DIR: CERTS_DIRS.containerd,
    CONTAINERD_CRI_2: CONTAINERD_CRI_TABLES.v2,
    CONTAINERD_CRI_1: CONTAINERD_CRI_TABLES.v1,
    HOSTS_TOML,
    HOSTS_TOML_TEXT: toml,
    ANCHOR_PREFIX,
    SYSTEM_STORES: stores,
  });
}

/** `KIND) have CMD || … || [ -d "$ROOT/DIR" ] ;;` for each client, from CLIENT_PRESENCE. */
function presenceCases(): string {
  return CLIENT_KINDS.map((kind) => {
    const { commands, dirs } = CLIENT_PRESENCE[kind];
    const tests = [...commands.map((c) => `have ${c}`), ...dirs.map((d) => `[ -d "$ROOT${d}" ]`)];
    return `    ${kind}) ${tests.join(' || ')} ;;`;
  }).join('\n');
}

const HEAD = String.raw`#!/bin/sh
# registry-tls-proxy: install @WHAT@ for container clients, after checking
# its SHA-256 fingerprint against the one you were given.
set -eu
umask 022

REGISTRY='@REGISTRY@'
ROOT="%{RTP_INSTALL_ROOT:-}"
FINGERPRINT=
CLIENT=all

usage() {
  cat >&2 <<'RTP_USAGE'
usage: curl -fsSk https://HOST:PORT/install-ca.sh | $(command -v sudo) sh -s -- --fingerprint AB:CD:...
         [--client docker|containerd|containers|system|all] [--registry HOST:PORT]

Downloads https://HOST:PORT/ca.crt, refuses it unless one of its certificates has the
SHA-256 fingerprint you give (read it from the proxy's log or "registry-tls-proxy trust"
on the proxy's machine, never from this connection), then installs it for the client(s).
"all" (the default) means the clients found on this host; a named client is installed
even if it is not (yet) there.
RTP_USAGE
}
die() { printf 'install-ca.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install-ca.sh: %s\n\n' "$*" >&2; usage; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --fingerprint|--client|--registry)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in
        --fingerprint) FINGERPRINT=$2 ;;
        --client) CLIENT=$2 ;;
        --registry) REGISTRY=$2 ;;
      esac
      shift 2 ;;
    --fingerprint=*) FINGERPRINT=%{1#*=}; shift ;;
    --client=*) CLIENT=%{1#*=}; shift ;;
    --registry=*) REGISTRY=%{1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
`;

/** Resolves CLIENT=all to the clients present; reasons for the rest are printed after pinning. */
const PRESENCE_SH = String.raw`
have() { command -v "$1" >/dev/null 2>&1; }
# present KIND: KIND's command is on PATH or its configuration directory exists.
present() {
  case $1 in
@PRESENCE_CASES@
  esac
}
SKIPPED=
case $CLIENT in
  docker|containerd|containers|system) ;;
  all)
    CLIENT=
    for kind in @CLIENT_KINDS@; do
      if present "$kind"; then CLIENT="$CLIENT $kind"; else SKIPPED="$SKIPPED $kind"; fi
    done
    [ -n "$CLIENT" ] || die 'found none of docker, containerd, podman/skopeo/buildah or a system trust store (update-ca-certificates, update-ca-trust) on this host: name the client to install for with --client; nothing was installed' ;;
  *) usage_error "unknown client: $CLIENT" ;;
esac
`;

const INSTALL_SH = String.raw`
# put SRC DEST: atomically (temp + rename), 0644, parent directories 0755.
put() {
  mkdir -p "%{2%/*}"
  cat "$1" > "$2.tmp"
  chmod 0644 "$2.tmp"
  mv -f "$2.tmp" "$2"
  printf 'wrote %s\n' "$2"
}

install_docker() { put "$tmp/bundle.crt" "$ROOT@DOCKER_DIR@/$REGISTRY/@CA_FILE@"; }
install_containers() { put "$tmp/bundle.crt" "$ROOT@CONTAINERS_DIR@/$REGISTRY/@CA_FILE@"; }
install_containerd() {
  dir="@CONTAINERD_DIR@/$REGISTRY"
  put "$tmp/bundle.crt" "$ROOT$dir/@CA_FILE@"
  cat > "$tmp/hosts.toml" <<RTP_TOML
@HOSTS_TOML_TEXT@RTP_TOML
  put "$tmp/hosts.toml" "$ROOT$dir/@HOSTS_TOML@"
  echo 'containerd reads it only if its config.toml sets config_path = "@CONTAINERD_DIR@" under'
  echo '  @CONTAINERD_CRI_2@ (containerd 2.x) or @CONTAINERD_CRI_1@ (1.x)'
}
install_system() {
@SYSTEM_STORES@
  else
    die 'neither update-ca-certificates nor update-ca-trust found: install ca-certificates'
  fi
  base="$dir/@ANCHOR_PREFIX@$(printf '%s' "$REGISTRY" | tr -c 'A-Za-z0-9.-' '_')"
  rm -f "$base"-*.crt
  i=1
  while [ -f "$tmp/cert.$i.pem" ]; do
    if [ $i -eq 1 ]; then put "$tmp/cert.$i.pem" "$base.crt"; else put "$tmp/cert.$i.pem" "$base-$i.crt"; fi
    i=$((i + 1))
  done
  echo "running $update"
  $update
}

for kind in $CLIENT; do "install_$kind"; done
for kind in $SKIPPED; do
  case $kind in
@ABSENCE_CASES@
  esac
done
echo "done: https://$REGISTRY is trusted (@WHAT@, fingerprint $WANT)"
`;
