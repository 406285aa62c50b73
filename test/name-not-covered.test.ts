/**
 * A client that asks for a name the served certificate lacks, with a real Go client:
 * skopeo trusts the proxy's CA and connects as registry.lan, which the certificate
 * does not name. Go refuses it ("certificate is valid for …, not registry.lan") with
 * the alert bad_certificate, the same alert it sends for an unknown CA; the proxy
 * must say the name is the problem (not the CA), count it, and `trust --address`
 * must warn about it too.
 *
 * Go needs the name to resolve: skopeo runs inside a test host's network namespace,
 * where `ip netns exec` reads /etc/netns/NAME/hosts as /etc/hosts; the test removes
 * that directory at the end. Needs root, iproute2, skopeo and curl.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHost, type TestHost } from './helpers/netns.js';
import { runCLI, startProxy, tempDir, waitForOutput, type Proxy } from './helpers/processes.js';

const NAME = 'registry.lan';
const NETNS_ETC = '/etc/netns';

/** Runs a command inside the test host's namespace. */
function inside(
  host: TestHost,
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      host.wrap[0] as string,
      [...host.wrap.slice(1), command, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('a name the served certificate does not cover', () => {
  const tmp = tempDir('name-not-covered');
  let host: TestHost;
  let proxy: Proxy;
  let createdNetnsEtc = false;

  beforeAll(async () => {
    host = createTestHost('names');
    createdNetnsEtc = !existsSync(NETNS_ETC);
    mkdirSync(join(NETNS_ETC, host.name), { recursive: true });
    writeFileSync(
      join(NETNS_ETC, host.name, 'hosts'),
      `127.0.0.1 localhost\n${host.address} ${NAME}\n`,
    );
    // No backend needed: the handshake fails before any request.
    proxy = await startProxy({
      backend: 'http://127.0.0.1:9',
      tlsDir: join(tmp.path, 'tls'),
      wrap: host.wrap,
      host: host.address,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    rmSync(join(NETNS_ETC, host.name), { recursive: true, force: true });
    if (createdNetnsEtc) rmdirSync(NETNS_ETC);
    host?.destroy();
    tmp.remove();
  });

  it('skopeo (Go) trusting the CA is refused for the name; the proxy logs name_not_covered and counts it', async () => {
    const certDir = join(tmp.path, 'certs');
    mkdirSync(certDir);
    copyFileSync(proxy.caFile, join(certDir, 'ca.crt'));
    const inspect = await inside(host, 'skopeo', [
      'inspect', '--cert-dir', certDir, '--tls-verify=true', `docker://${NAME}:${proxy.port}/x/y:1`,
    ]); // prettier-ignore
    expect(inspect.code).not.toBe(0);
    expect(inspect.stderr).toMatch(
      new RegExp(`certificate is valid for .*, not ${NAME.replace('.', '\\.')}`),
    );

    await waitForOutput(proxy.child, proxy.output, /"reason":"name_not_covered"/);
    const line = proxy.logLines().find((l) => l['reason'] === 'name_not_covered');
    expect(line?.['alert']).toBe(42); // Go's bad_certificate
    expect(line?.['servername']).toBe(NAME);
    expect(line?.['client']).toBe(host.address);
    expect(String(line?.['msg'])).toContain(`${NAME} is not covered by the served certificate`);
    expect(String(line?.['msg'])).toContain('add it to tls.names');
    expect(proxy.logLines().some((l) => l['reason'] === 'untrusted_ca')).toBe(false);

    const metrics = await inside(host, 'curl', [
      '-sS',
      `http://127.0.0.1:${proxy.adminPort}/metrics`,
    ]);
    expect(metrics.stdout).toMatch(/^rtp_requests_host_not_covered_total [1-9]/m);
    expect(metrics.stdout).toMatch(
      /^rtp_tls_handshake_failures_total\{reason="name_not_covered"\} [1-9]/m,
    );
  });

  it('`trust --address registry.lan:PORT` warns that the name is not covered', () => {
    const trust = runCLI(['trust', '--address', `${NAME}:${proxy.port}`], {
      RTP_TLS_DIR: proxy.tlsDir,
    });
    expect(trust.status, trust.stderr).toBe(0);
    expect(trust.stdout).toMatch(
      new RegExp(`^warning: ${NAME.replace('.', '\\.')} is not covered`, 'm'),
    );
    const covered = runCLI(['trust', '--address', `${host.address}:${proxy.port}`], {
      RTP_TLS_DIR: proxy.tlsDir,
    });
    expect(covered.status, covered.stderr).toBe(0);
    expect(covered.stdout).not.toContain('is not covered');
  });
});
