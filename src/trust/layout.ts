/**
 * Where each container client reads CA files, in one place: the snippets
 * (instructions.ts), the local installer (install.ts) and the served shell
 * script (installer-script.ts) all take their paths from here.
 *
 * - docker: <certs.d>/<host:port>/*.crt, re-read on every pull/push
 *   (moby registry.hostCertsDir: filepath.Join(CertsDir, hostname), no escaping on Linux).
 * - podman, skopeo, buildah: the same layout under /etc/containers/certs.d
 *   (containers-certs.d(5)).
 * - containerd: <config_path>/<host:port>/hosts.toml. On Unix it looks for
 *   "<host>_<port>_" first, then "<host:port>" (containerd core/remotes/docker/config
 *   config_unix.go hostPaths), so "<host:port>" works unless an escaped directory exists.
 * - system store: one certificate per file, as update-ca-certificates(8) asks.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { RTPError } from '../errors.js';

export type ClientKind = 'docker' | 'containerd' | 'containers' | 'system';
export const CLIENT_KINDS: readonly ClientKind[] = ['docker', 'containerd', 'containers', 'system'];

export const CERTS_DIRS = {
  docker: '/etc/docker/certs.d',
  containers: '/etc/containers/certs.d',
  containerd: '/etc/containerd/certs.d',
} as const;
/** Where containerd's config.toml sets config_path (its registry host directory). */
export const CONTAINERD_CRI_TABLES = {
  v2: '[plugins."io.containerd.cri.v1.images".registry]',
  v1: '[plugins."io.containerd.grpc.v1.cri".registry]',
} as const;
export const CA_FILE = 'ca.crt';
export const HOSTS_TOML = 'hosts.toml';

/** Tried in this order; the first whose command exists decides where the anchors go. */
export const SYSTEM_STORES = [
  {
    name: 'Debian/Ubuntu/Alpine',
    command: 'update-ca-certificates',
    args: [] as string[],
    anchorsDir: '/usr/local/share/ca-certificates',
  },
  {
    name: 'RHEL/Fedora',
    command: 'update-ca-trust',
    args: ['extract'],
    anchorsDir: '/etc/pki/ca-trust/source/anchors',
  },
] as const;
export type SystemStore = (typeof SYSTEM_STORES)[number];

/**
 * How `all` (the default) tells that a client is on this host: one of its commands on
 * PATH, or its configuration directory. The served script and install.ts both use it,
 * so `curl …/install-ca.sh | sh` and `trust --install` skip the same clients.
 */
export const CLIENT_PRESENCE: Record<
  ClientKind,
  { commands: readonly string[]; dirs: readonly string[] }
> = {
  docker: { commands: ['docker', 'dockerd'], dirs: ['/etc/docker'] },
  containerd: { commands: ['containerd'], dirs: ['/etc/containerd'] },
  containers: { commands: ['podman', 'skopeo', 'buildah'], dirs: ['/etc/containers'] },
  system: { commands: SYSTEM_STORES.map((s) => s.command), dirs: [] },
};

/** "not found on this host (no docker or dockerd command, no /etc/docker)" */
export function absenceReason(kind: ClientKind): string {
  const { commands, dirs } = CLIENT_PRESENCE[kind];
  const what = [`no ${commands.join(' or ')} command`, ...dirs.map((d) => `no ${d}`)];
  const fix = kind === 'system' ? 'install ca-certificates' : `--client ${kind} installs it anyway`;
  return `not found on this host (${what.join(', ')}); ${fix}`;
}
export const ANCHOR_PREFIX = 'registry-tls-proxy-';

/**
 * host:port with a DNS name, an IPv4 address or a bracketed IPv6 address. Written in
 * POSIX ERE syntax (no `(?:`) so the shell installer can use the same text with grep -E.
 */
export const HOST_PORT_ERE =
  '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:]+\\]):[0-9]{1,5}$';
const HOST_PORT = new RegExp(HOST_PORT_ERE);

/**
 * Returns `hostPort` unchanged if it is a strict host:port, so that it can go into
 * paths and shell text; throws otherwise.
 *
 * @example assertHostPort('[fd00::5]:5443') // → '[fd00::5]:5443'
 */
export function assertHostPort(hostPort: string): string {
  const port = Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
  const host = hostPort.slice(0, hostPort.lastIndexOf(':'));
  const ipv6OK = !host.startsWith('[') || isIP(host.slice(1, -1)) === 6;
  if (!HOST_PORT.test(hostPort) || !ipv6OK || port < 1 || port > 65535) {
    throw new RTPError(
      'TRUST_BAD_HOST_PORT',
      `trust: ${JSON.stringify(hostPort)} is not a host:port; use e.g. registry.lan:5443, 10.0.0.5:5443 or [fd00::5]:5443`,
    );
  }
  return hostPort;
}

/** The directory a client reads for `hostPort` (not escaped: see the header comment). */
export function certsDir(kind: keyof typeof CERTS_DIRS, hostPort: string): string {
  return `${CERTS_DIRS[kind]}/${hostPort}`;
}

/** Anchor file for the `n`th certificate (1-based) of the bundle: …HOST_PORT.crt, …HOST_PORT-2.crt */
export function anchorFileName(hostPort: string, n: number): string {
  const safe = hostPort.replace(/[^A-Za-z0-9.-]/g, '_');
  return `${ANCHOR_PREFIX}${safe}${n > 1 ? `-${n}` : ''}.crt`;
}

/**
 * containerd's hosts.toml. A plain template: callers pass a validated host:port (or,
 * for the shell installer, shell parameter references it fills in).
 * https://github.com/containerd/containerd/blob/main/docs/hosts.md
 */
export function hostsTOML(hostPort: string, caPath: string): string {
  return [
    '# Written by registry-tls-proxy. Read only if the containerd CRI config sets',
    `# config_path = "${CERTS_DIRS.containerd}".`,
    `server = "https://${hostPort}"`,
    '',
    `[host."https://${hostPort}"]`,
    '  capabilities = ["pull", "resolve", "push"]',
    `  ca = "${caPath}"`,
    '',
  ].join('\n');
}

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';
const BASE64_LINE = /^[A-Za-z0-9+/=]+$/;

/**
 * The certificates of a PEM bundle, each as `BEGIN…END\n` with CRs removed and
 * nothing else (the shell installer splits the same way). Every block must be
 * strict base64 and parse as X.509, so the text is safe inside a quoted heredoc.
 */
export function splitCertificates(bundlePEM: string): string[] {
  const certs: string[] = [];
  let current: string[] | undefined;
  for (const line of bundlePEM.replace(/\r/g, '').split('\n')) {
    if (line === BEGIN) current = [];
    if (!current) continue;
    if (line !== BEGIN && line !== END && !BASE64_LINE.test(line)) {
      throw new RTPError(
        'TRUST_BAD_BUNDLE',
        `trust: CA bundle has a non-base64 line ${JSON.stringify(line)}`,
      );
    }
    current.push(line);
    if (line === END) {
      certs.push(parseable(`${current.join('\n')}\n`));
      current = undefined;
    }
  }
  if (certs.length === 0 || current) {
    throw new RTPError('TRUST_BAD_BUNDLE', 'trust: CA bundle holds no complete PEM certificate');
  }
  return certs;
}

function parseable(pem: string): string {
  try {
    new X509Certificate(pem);
  } catch (cause) {
    throw new RTPError(
      'TRUST_BAD_BUNDLE',
      'trust: CA bundle holds a block that is not an X.509 certificate',
      { cause },
    );
  }
  return pem;
}

export interface PlannedFile {
  path: string;
  content: string;
}

/**
 * The files a client reads, for `hostPort` (validated) and the bundle's certificates.
 * The system store is separate (anchorFiles): its directory depends on the distribution.
 */
export function clientFiles(
  kind: Exclude<ClientKind, 'system'>,
  hostPort: string,
  certs: readonly string[],
): PlannedFile[] {
  const dir = certsDir(kind, hostPort);
  const bundle: PlannedFile = { path: `${dir}/${CA_FILE}`, content: certs.join('') };
  if (kind !== 'containerd') return [bundle];
  return [bundle, { path: `${dir}/${HOSTS_TOML}`, content: hostsTOML(hostPort, bundle.path) }];
}

/** One file per certificate, named by anchorFileName, for a system store's anchors directory. */
export function anchorFiles(hostPort: string, certs: readonly string[]): PlannedFile[] {
  return certs.map((content, i) => ({ path: anchorFileName(hostPort, i + 1), content }));
}

/** containerd prefers this spelling of the directory over host:port (config_unix.go hostPaths). */
export function containerdEscapedDir(hostPort: string): string {
  const i = hostPort.lastIndexOf(':');
  return `${CERTS_DIRS.containerd}/${hostPort.slice(0, i)}_${hostPort.slice(i + 1)}_`;
}
