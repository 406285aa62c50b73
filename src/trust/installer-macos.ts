/**
 * The sh script served at GET /install-ca-macos.sh:
 *
 *   curl -fsSk https://HOST:PORT/install-ca-macos.sh | sudo sh -s -- --fingerprint AB:CD:…
 *
 * It pins the CA bundle to the fingerprint exactly as install-ca.sh does (installer-pin.ts),
 * then adds each certificate to the System keychain as a trusted root. Docker Desktop
 * builds its CA bundle from the keychain when it starts, so it must be restarted.
 * Nothing here can run macOS: installer-macos.test.ts runs it under sh with a recording
 * stand-in for `security`, and shellchecks it.
 */
import { PIN_SH, ARGS_CHECK_SH, fillTemplate, pinValues } from './installer-pin.js';

/** The keychain every user's programs (and Docker Desktop) trust. */
export const MACOS_KEYCHAIN = '/Library/Keychains/System.keychain';

/** `security` arguments before the certificate file: a root trusted for every purpose, admin domain. */
export const MACOS_ADD_TRUSTED_CERT = [
  'add-trusted-cert',
  '-d',
  '-r',
  'trustRoot',
  '-k',
  MACOS_KEYCHAIN,
] as const;

export function macosInstallerScript(hostPort: string, what = "this registry's CA"): string {
  return fillTemplate(HEAD + ARGS_CHECK_SH + PIN_SH + INSTALL_SH, {
    ...pinValues('install-ca-macos.sh', hostPort, what),
    ADD_TRUSTED_CERT: MACOS_ADD_TRUSTED_CERT.join(' '),
    KEYCHAIN: MACOS_KEYCHAIN,
  });
}

const HEAD = String.raw`#!/bin/sh
# registry-tls-proxy: add @WHAT@ to the macOS System keychain, after checking
# its SHA-256 fingerprint against the one you were given.
set -eu
umask 022

REGISTRY='@REGISTRY@'
FINGERPRINT=

usage() {
  cat >&2 <<'RTP_USAGE'
usage: curl -fsSk https://HOST:PORT/install-ca-macos.sh | sudo sh -s -- --fingerprint AB:CD:...
         [--registry HOST:PORT]

Downloads https://HOST:PORT/ca.crt, refuses it unless one of its certificates has the
SHA-256 fingerprint you give (read it from the proxy's log or "registry-tls-proxy trust"
on the proxy's machine, never from this connection), then adds it to the System keychain
as a trusted root. Restart Docker Desktop afterwards: it reads the keychain at start.
RTP_USAGE
}
die() { printf 'install-ca-macos.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install-ca-macos.sh: %s\n\n' "$*" >&2; usage; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --fingerprint|--registry)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      if [ "$1" = --fingerprint ]; then FINGERPRINT=$2; else REGISTRY=$2; fi
      shift 2 ;;
    --fingerprint=*) FINGERPRINT=%{1#*=}; shift ;;
    --registry=*) REGISTRY=%{1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
command -v security >/dev/null 2>&1 || die 'no "security" command: this installer is for macOS (on Linux use /install-ca.sh)'
[ "$(id -u)" -eq 0 ] || die 'the System keychain needs root: run it with sudo (curl ... | sudo sh -s -- --fingerprint ...)'
`;

const INSTALL_SH = String.raw`
# -d: the admin trust domain (every user); -r trustRoot: trusted as a root for every use.
# macOS may ask for an administrator's password once more to confirm the trust setting.
i=1
while [ -f "$tmp/cert.$i.pem" ]; do
  security @ADD_TRUSTED_CERT@ "$tmp/cert.$i.pem" ||
    die "security add-trusted-cert failed for certificate $i (in a remote session, macOS refuses trust changes that need a password dialog: run it in Terminal on the Mac)"
  printf 'added certificate %s of https://%s/@CA_FILE@ to @KEYCHAIN@\n' "$i" "$REGISTRY"
  i=$((i + 1))
done
echo "done: https://$REGISTRY is trusted (@WHAT@, fingerprint $WANT)"
echo 'Restart Docker Desktop (whale menu > Restart): it builds its CA bundle from the keychain when it starts.'
`;
