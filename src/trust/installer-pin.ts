/**
 * What the served sh installers (Linux: installer-script.ts, macOS: installer-macos.ts)
 * share: validating --registry, and pinning the downloaded CA bundle to the fingerprint
 * the user gave before anything is installed.
 *
 * The first download is unauthenticated (-k: the client does not trust the CA yet), so
 * nothing fetched is trusted until one certificate of the bundle has the SHA-256
 * fingerprint the user read elsewhere (the proxy's log, `registry-tls-proxy trust`).
 * The bundle is then fetched again over TLS verified by that certificate alone, which
 * authenticates the other certificates of the bundle (the next CA during a rotation).
 * Runs under dash, busybox sh and macOS's bash-as-sh: no bashisms.
 */
import { RTPError } from '../errors.js';
import { CA_FILE, HOST_PORT_ERE, assertHostPort } from './layout.js';

/**
 * Fills @NAME@ (upper case, digits, underscores) from `values`, then turns %{…} into
 * sh's ${…} (which a template literal would take for its own interpolation). A
 * placeholder without a value is an error, so no @…@ reaches a user.
 */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template
    .replace(/@([A-Z][A-Z0-9_]*)@/g, (_, name: string) => {
      const value = values[name];
      if (value === undefined)
        throw new RTPError('TRUST_BAD_TEMPLATE', `installer script: no @${name}@`);
      return value;
    })
    .replaceAll('%{', '${');
}

/** The values PIN_SH and ARGS_CHECK_SH need; `what` is checked to be inert in sh. */
export function pinValues(script: string, hostPort: string, what: string): Record<string, string> {
  if (/[`\\$"\n]/.test(what)) {
    throw new RTPError(
      'TRUST_BAD_TEMPLATE',
      'installer script: the description would expand in sh',
    );
  }
  return {
    SCRIPT: script,
    REGISTRY: assertHostPort(hostPort),
    WHAT: what,
    HOST_PORT_ERE,
    CA_FILE,
  };
}

/**
 * After the arguments: a fingerprint is required, and $REGISTRY (the default, or
 * --registry) is checked before it goes into a URL or a path.
 */
export const ARGS_CHECK_SH = String.raw`
[ -n "$FINGERPRINT" ] || usage_error '--fingerprint is required: without it anyone between you and the registry could hand you their CA'
nl='
'
case $REGISTRY in *"$nl"*) usage_error 'not a host:port: it holds a newline' ;; esac
printf '%s\n' "$REGISTRY" | grep -Eq '@HOST_PORT_ERE@' || usage_error "not a host:port: $REGISTRY"
port=%{REGISTRY##*:}
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then usage_error "port out of range: $REGISTRY"; fi
`;

/**
 * From $FINGERPRINT and $REGISTRY to $tmp/bundle.crt and $tmp/cert.N.pem (one
 * certificate each), all authenticated; exits 1 having installed nothing otherwise.
 */
export const PIN_SH = String.raw`
# AB:cd:… or abcd… (or openssl's "sha256 Fingerprint=AB:…") → AB:CD:…, empty if it is
# not 32 bytes of hex. install-ca.ps1 normalises the same way (installer-windows.ts).
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
    printf '@SCRIPT@: REFUSING the CA served at %s: no certificate has the fingerprint you gave.\n' "$URL"
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
`;
