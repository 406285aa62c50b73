/**
 * The POSIX sh script served at GET /install-ca.sh:
 *
 *   curl -fsSk https://HOST:PORT/install-ca.sh | $(command -v sudo) sh -s -- --fingerprint AB:CD:… [--client KIND|all] [--registry HOST:PORT]
 *
 * The first download is unauthenticated (-k: the client does not trust the CA yet), so
 * the script trusts nothing it fetched until one certificate of the bundle has the
 * SHA-256 fingerprint the user read elsewhere (the proxy's log, `registry-tls-proxy trust`).
 * It then fetches the bundle again over TLS verified by that certificate alone, which
 * authenticates the other certificates of the bundle (the next CA during a rotation).
 * Paths come from layout.ts, so the script and instructions.ts cannot drift apart.
 * Runs under dash and busybox sh: no bashisms (no [[, arrays, local, pipefail).
 */
import { RTPError } from '../errors.js';
import {
  ANCHOR_PREFIX,
  CA_FILE,
  CERTS_DIRS,
  CONTAINERD_CRI_TABLES,
  HOSTS_TOML,
  HOST_PORT_ERE,
  SYSTEM_STORES,
  assertHostPort,
  hostsTOML,
} from './layout.js';

/**
 * The script with `hostPort` (the address it is served on) as the default --registry;
 * `what` names what /ca.crt holds for that address (an internal ACME server's root).
 */
export function installerScript(hostPort: string, what = "this registry's CA"): string {
  if (/[`\\$"\n]/.test(what)) {
    throw new RTPError(
      'TRUST_BAD_TEMPLATE',
      'installer script: the description would expand in sh',
    );
  }
  const toml = hostsTOML('%{REGISTRY}', `%{dir}/${CA_FILE}`);
  if (/[`\\$]/.test(toml)) {
    throw new RTPError('TRUST_BAD_TEMPLATE', 'installer script: hosts.toml would expand in sh');
  }
  const stores = SYSTEM_STORES.flatMap((s, i) => [
    `  ${i === 0 ? 'if' : 'elif'} command -v ${s.command} >/dev/null 2>&1; then`,
    `    dir="$ROOT${s.anchorsDir}"; update='${[s.command, ...s.args].join(' ')}'`,
  ]).join('\n');
  const values: Record<string, string> = {
    REGISTRY: assertHostPort(hostPort),
    WHAT: what,
    HOST_PORT_ERE,
    DOCKER_DIR: CERTS_DIRS.docker,
    CONTAINERS_DIR: CERTS_DIRS.containers,
    CONTAINERD_DIR: CERTS_DIRS.containerd,
    CONTAINERD_CRI_2: CONTAINERD_CRI_TABLES.v2,
    CONTAINERD_CRI_1: CONTAINERD_CRI_TABLES.v1,
    CA_FILE,
    HOSTS_TOML,
    HOSTS_TOML_TEXT: toml,
    ANCHOR_PREFIX,
    SYSTEM_STORES: stores,
  };
  // @NAME@ are filled in from layout.ts; %{…} stands for sh's ${…}, which a template
  // literal would take for its own interpolation.
  return TEMPLATE.replace(/@([A-Z_]+)@/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined)
      throw new RTPError('TRUST_BAD_TEMPLATE', `installer script: no @${name}@`);
    return value;
  }).replaceAll('%{', '${');
}

const TEMPLATE = String.raw`#!/bin/sh
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

[ -n "$FINGERPRINT" ] || usage_error '--fingerprint is required: without it anyone between you and the registry could hand you their CA'
case $CLIENT in
  docker|containerd|containers|system) ;;
  all) CLIENT='docker containerd containers system' ;;
  *) usage_error "unknown client: $CLIENT" ;;
esac
nl='
'
case $REGISTRY in *"$nl"*) usage_error 'not a host:port: it holds a newline' ;; esac
printf '%s\n' "$REGISTRY" | grep -Eq '@HOST_PORT_ERE@' || usage_error "not a host:port: $REGISTRY"
port=%{REGISTRY##*:}
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then usage_error "port out of range: $REGISTRY"; fi

# AB:cd:… or abcd… → AB:CD:…, empty if it is not 32 bytes of hex.
colon_hex() {
  hex=$(printf '%s' "%{1#*=}" | tr -d ': ' | tr 'abcdef' 'ABCDEF')
  case $hex in *[!0-9A-F]*) return 0 ;; esac
  [ %{#hex} -eq 64 ] || return 0
  printf '%s' "$hex" | sed 's/../&:/g; s/:$//'
}
WANT=$(colon_hex "$FINGERPRINT")
[ -n "$WANT" ] || usage_error "not a SHA-256 fingerprint: $FINGERPRINT"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/capath"
trap 'exit 1' HUP INT TERM
URL="https://$REGISTRY/@CA_FILE@"

# fetch FILE [CAFILE]: without CAFILE unverified (-k), with it verified by that CA only
# (the empty --capath keeps a build-time default CA directory out of the verification).
fetch() {
  if command -v curl >/dev/null 2>&1; then
    # -g: no URL globbing, so [fd00::5] stays an IPv6 address
    if [ $# -eq 2 ]; then
      curl -fsSg --cacert "$2" --capath "$tmp/capath" -o "$1" "$URL"
    else
      curl -fsSkg -o "$1" "$URL"
    fi
  elif command -v wget >/dev/null 2>&1; then
    if [ $# -eq 2 ]; then
      wget -q --ca-certificate="$2" --ca-directory="$tmp/capath" -O "$1" "$URL"
    else
      wget -q --no-check-certificate -O "$1" "$URL"
    fi
  else
    die 'needs curl or wget'
  fi
}

# split_bundle BUNDLE PREFIX: PREFIX.1.pem, PREFIX.2.pem, … one certificate each, CRs removed.
split_bundle() {
  n=0; out=; cr=$(printf '\r')
  while IFS= read -r line || [ -n "$line" ]; do
    line=%{line%"$cr"}
    if [ "$line" = '-----BEGIN CERTIFICATE-----' ]; then n=$((n + 1)); out="$2.$n.pem"; : > "$out"; fi
    if [ -n "$out" ]; then printf '%s\n' "$line" >> "$out"; fi
    if [ "$line" = '-----END CERTIFICATE-----' ]; then out=; fi
  done < "$1"
  [ "$n" -gt 0 ] || die "$URL holds no PEM certificate"
}

# SHA-256 of the certificate's DER, AB:CD:…
fingerprint() {
  if command -v openssl >/dev/null 2>&1; then
    colon_hex "$(openssl x509 -noout -fingerprint -sha256 -in "$1")"
  else
    colon_hex "$(sed '/^-----/d' "$1" | base64 -d | sha256sum | { read -r hex _; printf '%s' "$hex"; })"
  fi
}

# find PREFIX: prints the file whose fingerprint is WANT; all fingerprints go to $tmp/seen.
find_wanted() {
  i=1; found=; : > "$tmp/seen"
  while [ -f "$1.$i.pem" ]; do
    fp=$(fingerprint "$1.$i.pem")
    [ -n "$fp" ] || die "cannot compute the fingerprint of certificate $i from $URL"
    printf '  %s\n' "$fp" >> "$tmp/seen"
    if [ "$fp" = "$WANT" ] && [ -z "$found" ]; then found="$1.$i.pem"; fi
    i=$((i + 1))
  done
  printf '%s' "$found"
}

fetch "$tmp/probe.crt" || die "cannot download $URL"
split_bundle "$tmp/probe.crt" "$tmp/probe"
anchor=$(find_wanted "$tmp/probe")
if [ -z "$anchor" ]; then
  {
    printf 'install-ca.sh: REFUSING the CA served at %s: no certificate has the fingerprint you gave.\n' "$URL"
    printf '  you gave:\n  %s\n  served:\n%s\n' "$WANT" "$(cat "$tmp/seen")"
    printf 'Someone may be intercepting the connection to %s, or the fingerprint is wrong or out of date.\n' "$REGISTRY"
    printf 'Nothing was installed.\n'
  } >&2
  exit 1
fi

# The rest of the bundle is trusted only through TLS verified by the fingerprinted CA.
fetch "$tmp/verified.crt" "$anchor" ||
  die "the CA with fingerprint $WANT does not verify https://$REGISTRY (is it the CA that signs the proxy's certificate?); nothing was installed"
split_bundle "$tmp/verified.crt" "$tmp/cert"
again=$(find_wanted "$tmp/cert")
[ -n "$again" ] || die "the bundle changed between downloads; nothing was installed, try again"
i=1
: > "$tmp/bundle.crt"
while [ -f "$tmp/cert.$i.pem" ]; do cat "$tmp/cert.$i.pem" >> "$tmp/bundle.crt"; i=$((i + 1)); done

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
echo "done: https://$REGISTRY is trusted (@WHAT@, fingerprint $WANT)"
`;
