/**
 * What `registry-tls-proxy trust --address HOST:PORT --client macos|windows|kubernetes`
 * prints: for a Mac or a Windows machine the one-liner to paste there and what it does;
 * for Kubernetes the DaemonSet itself, so that `… | kubectl apply -f -` works.
 */
import type { TrustTarget } from './instructions.js';
import { checkTarget } from './instructions.js';
import { MACOS_ADD_TRUSTED_CERT } from './installer-macos.js';
import { nodeTrustManifest } from './node-trust-manifest.js';
import { INSTALLER_PATHS, installerOneLiner } from './one-liners.js';

export const OTHER_PLATFORMS = ['macos', 'windows', 'kubernetes'] as const;
export type OtherPlatform = (typeof OTHER_PLATFORMS)[number];

/**
 * The text for `platform`; `warnings` (one line each) go first, as YAML comments for
 * kubernetes so that the output still applies.
 */
export function formatPlatformReport(
  platform: OtherPlatform,
  t: TrustTarget,
  warnings: readonly string[],
): string {
  const { hostPort } = checkTarget(t);
  const [first = '', ...others] = t.fingerprints;
  if (platform === 'kubernetes') {
    const comments = warnings.map((w) => `# ${w.replace(/\n/g, ' ')}\n`).join('');
    return comments + nodeTrustManifest(hostPort, first);
  }
  const url = `https://${hostPort}${INSTALLER_PATHS[platform]}`;
  const lines = [
    ...warnings,
    `CA for https://${hostPort}`,
    '',
    `SHA-256 fingerprint${others.length > 0 ? 's (a CA rotation: trust both)' : ''}:`,
    ...t.fingerprints.map((fp) => `  ${fp}`),
    '',
    ...(platform === 'macos' ? macosLines(url) : windowsLines(url, others)),
    `  ${installerOneLiner(platform, hostPort, first)}`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}

function macosLines(url: string): string[] {
  return [
    `On the Mac, in Terminal: it downloads ${url}, which refuses the CA unless`,
    'its fingerprint is the one given, adds it to the System keychain as a trusted root',
    `(security ${MACOS_ADD_TRUSTED_CERT.join(' ')} FILE; macOS may ask`,
    'for your password), then asks you to restart Docker Desktop, which builds its CA bundle',
    'from the keychain when it starts:',
  ];
}

function windowsLines(url: string, others: readonly string[]): string[] {
  return [
    `On Windows, in PowerShell run as Administrator: it downloads ${url}, which`,
    'refuses the CA unless its fingerprint is the one given, imports it with',
    'Import-Certificate -CertStoreLocation Cert:\\LocalMachine\\Root (Cert:\\CurrentUser\\Root',
    'when PowerShell is not elevated), then asks you to restart Docker Desktop:',
    ...others.map(
      (fp) => `(a CA rotation: run it again with -Fingerprint '${fp}' to trust the next CA too)`,
    ),
  ];
}
