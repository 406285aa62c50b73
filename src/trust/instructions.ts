/**
 * Copy-and-paste trust instructions: one self-contained POSIX sh snippet per client,
 * with the CA bundle embedded in a quoted heredoc (nothing is fetched, so nothing can
 * be swapped on the way). `registry-tls-proxy trust` prints formatTrustReport.
 */
import { X509Certificate } from 'node:crypto';
import { RTPError } from '../errors.js';
import {
  CERTS_DIRS,
  CLIENT_KINDS,
  CONTAINERD_CRI_TABLES,
  SYSTEM_STORES,
  anchorFiles,
  assertHostPort,
  clientFiles,
  containerdEscapedDir,
  splitCertificates,
  type ClientKind,
  type PlannedFile,
} from './layout.js';
import { AS_ROOT, installerOneLiner } from './one-liners.js';

export type { ClientKind } from './layout.js';

export interface TrustTarget {
  /** host:port the client uses, e.g. "registry.lan:5443" or "10.0.0.5:5443" or "[fd00::5]:5443" */
  hostPort: string;
  /** PEM bundle: one or more CA certificates (during a CA rotation, two) */
  caBundlePEM: string;
  /** SHA-256 fingerprint(s) of the CA(s), colon-hex as Node's X509Certificate.fingerprint256 prints */
  fingerprints: string[];
}

export const SECTION_TITLES: Record<ClientKind, string> = {
  docker: 'docker',
  containerd: 'containerd',
  containers: 'podman, skopeo, buildah',
  system: 'system trust store',
};

const FINGERPRINT = /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/;

/**
 * Validates a target: a strict host:port, a bundle of parseable certificates, and
 * fingerprints that are each one of the bundle's (a report naming a fingerprint the
 * bundle lacks would teach users to ignore mismatches).
 */
export function checkTarget(t: TrustTarget): { hostPort: string; certs: string[] } {
  const hostPort = assertHostPort(t.hostPort);
  const certs = splitCertificates(t.caBundlePEM);
  const inBundle = certs.map((pem) => new X509Certificate(pem).fingerprint256);
  if (t.fingerprints.length === 0) {
    throw new RTPError('TRUST_BAD_FINGERPRINT', 'trust: no CA fingerprint given');
  }
  for (const fp of t.fingerprints) {
    if (!FINGERPRINT.test(fp) || !inBundle.includes(fp)) {
      throw new RTPError(
        'TRUST_BAD_FINGERPRINT',
        `trust: fingerprint ${JSON.stringify(fp)} is not one of the bundle's (${inBundle.join(', ')})`,
      );
    }
  }
  return { hostPort, certs };
}

/**
 * A ready-to-run sh snippet per client (run as root). `root` prefixes every written path
 * (for tests); file contents still name the real paths.
 *
 * @example trustInstructions(target).docker // → "set -eu\n…put '/etc/docker/certs.d/registry.lan:5443/ca.crt' <<'RTP_EOF'…"
 */
export function trustInstructions(t: TrustTarget, root = ''): Record<ClientKind, string> {
  const { hostPort, certs } = checkTarget(t);
  if (root.includes("'"))
    throw new RTPError('TRUST_BAD_ROOT', 'trust: root must not contain a quote');
  const puts = (files: PlannedFile[]): string[] =>
    files.flatMap((f) => heredoc(`put '${root}${f.path}'`, f.content));
  return {
    docker: [
      '# docker reads every *.crt in this directory on each pull and push: no daemon restart.',
      ...PRELUDE,
      ...puts(clientFiles('docker', hostPort, certs)),
    ].join('\n'),
    containers: [
      '# podman, skopeo and buildah (containers/image) read every *.crt in this directory;',
      '# they fall back to /etc/docker/certs.d, so a docker-only install also works for them.',
      ...PRELUDE,
      ...puts(clientFiles('containers', hostPort, certs)),
    ].join('\n'),
    containerd: containerdSnippet(hostPort, certs, root, puts),
    system: systemSnippet(hostPort, certs, root),
  };
}

/** Writes stdin to $1 atomically (temp file + rename), 0644, parent directories 0755. */
const PRELUDE = [
  'set -eu',
  'umask 022',
  'put() { mkdir -p "${1%/*}" && cat > "$1.tmp" && chmod 0644 "$1.tmp" && mv -f "$1.tmp" "$1" && echo "wrote $1"; }',
];

/** No base64 line holds "_" and hosts.toml has no such line, so nothing ends the heredoc early. */
const END = 'RTP_EOF';

function heredoc(command: string, content: string): string[] {
  return [`${command} <<'${END}'`, `${content}${END}`];
}

function containerdSnippet(
  hostPort: string,
  certs: string[],
  root: string,
  puts: (files: PlannedFile[]) => string[],
): string {
  const escaped = `${root}${containerdEscapedDir(hostPort)}`;
  return [
    '# containerd reads hosts.toml here only when its CRI config.toml sets config_path (restart',
    '# containerd after changing config.toml; files under certs.d are re-read without one):',
    `#   containerd 2.x: ${CONTAINERD_CRI_TABLES.v2}`,
    `#   containerd 1.x: ${CONTAINERD_CRI_TABLES.v1}`,
    `#   config_path = "${CERTS_DIRS.containerd}"`,
    ...PRELUDE,
    ...puts(clientFiles('containerd', hostPort, certs)),
    '# On Unix containerd looks for HOST_PORT_ before HOST:PORT (config_unix.go hostPaths).',
    `if [ -e '${escaped}' ]; then echo 'warning: containerd reads ${escaped} first; remove it' >&2; fi`,
  ].join('\n');
}

function systemSnippet(hostPort: string, certs: string[], root: string): string {
  const files = anchorFiles(hostPort, certs);
  const stale = files[0]?.path.replace(/\.crt$/, '') ?? '';
  const choose = SYSTEM_STORES.flatMap((store, i) => [
    `${i === 0 ? 'if' : 'elif'} command -v ${store.command} >/dev/null 2>&1; then # ${store.name}`,
    `  dir='${root}${store.anchorsDir}'; update='${[store.command, ...store.args].join(' ')}'`,
  ]);
  return [
    '# The system store (curl, wget, most programs). One certificate per file, as',
    '# update-ca-certificates(8) asks. Daemons load it at start-up: restart them to see it.',
    ...PRELUDE,
    ...choose,
    'else',
    "  echo 'neither update-ca-certificates nor update-ca-trust found: install ca-certificates' >&2",
    '  exit 1',
    'fi',
    `rm -f "$dir/${stale}"-*.crt # certificates left from a longer, earlier bundle`,
    ...files.flatMap((f) => heredoc(`put "$dir/${f.path}"`, f.content)),
    '$update',
  ].join('\n');
}

/**
 * The text `registry-tls-proxy trust` prints. The one-step command names the first
 * fingerprint: during a rotation list first the CA that signs the serving certificate,
 * since the installer re-downloads the bundle over TLS verified by that CA.
 */
export function formatTrustReport(t: TrustTarget): string {
  const snippets = trustInstructions(t);
  const { hostPort } = checkTarget(t);
  const lines = [
    `CA for https://${hostPort}`,
    '',
    `SHA-256 fingerprint${t.fingerprints.length > 1 ? 's (a CA rotation: trust both)' : ''}:`,
    ...t.fingerprints.map((fp) => `  ${fp}`),
    '',
    'The one-step installer checks it for you; check a CA file copied some other way with',
    '  openssl x509 -noout -fingerprint -sha256 -in FILE',
    '',
    'One step on a Linux client (refuses a CA whose fingerprint differs, then installs for the clients it finds):',
    `  ${installerOneLiner('linux', hostPort, t.fingerprints[0] ?? '')}`,
    `For a Mac, Windows or Kubernetes nodes: registry-tls-proxy trust --address ${hostPort} --client macos|windows|kubernetes`,
    '',
    'Or by hand, per client (each block runs as root and embeds the CA):',
  ];
  for (const kind of CLIENT_KINDS) {
    lines.push(
      '',
      `== ${SECTION_TITLES[kind]} ==`,
      `${AS_ROOT} sh <<'RTP_TRUST'`,
      snippets[kind],
      'RTP_TRUST',
    );
  }
  return `${lines.join('\n')}\n`;
}
