/**
 * The auto-issued certificates as a client sees them: every IP and name in the
 * SANs (no SNI needed), the full chain, the TLS profile, and reuse across restarts.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRegistry,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
} from './helpers/processes.js';

function peerChain(port: number, ca: string, servername?: string): Promise<PeerCertificate[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, ca, ...(servername !== undefined ? { servername } : {}) },
      () => {
        const chain: PeerCertificate[] = [];
        let cert = socket.getPeerCertificate(true);
        while (cert && chain.length < 5) {
          chain.push(cert);
          if (cert.issuerCertificate === cert) break;
          cert = cert.issuerCertificate;
        }
        socket.end();
        resolve(chain);
      },
    );
    socket.on('error', reject);
  });
}

function openssl(args: string[], input = ''): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', args, { timeout: 10_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, out: stdout + stderr }),
    );
    child.stdin?.end(input);
  });
}

describe('auto-issued certificates', () => {
  const tmp = tempDir('certs');
  const tlsDir = join(tmp.path, 'tls');
  let registry: Registry;
  let proxy: Proxy;
  let ca: string;

  beforeAll(async () => {
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir,
      env: { RTP_TLS_NAMES: 'registry.test,10.11.12.13,fd00:abcd::7' },
    });
    ca = readFileSync(proxy.caFile, 'utf8');
  });

  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  it('serves, without SNI, the full chain with every configured and machine name and address', async () => {
    // Connecting to an IP address, Node sends no SNI: this is the default context.
    const chain = await peerChain(proxy.port, ca);
    expect(chain).toHaveLength(2);
    const [leaf, root] = chain;
    expect(root?.fingerprint256).toBe(new X509Certificate(ca).fingerprint256);
    const sans = leaf?.subjectaltname ?? '';
    const expected = [
      'DNS:registry.test',
      `DNS:${hostname().toLowerCase()}`,
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:10.11.12.13',
    ];
    for (const want of expected) expect(sans).toContain(want);
    expect(sans).toMatch(/IP Address:(0:0:0:0:0:0:0:1|::1)\b/);
    expect(sans).toMatch(/IP Address:FD00:ABCD:(0:){5}7|IP Address:fd00:abcd::7/i);
    for (const nic of Object.values(networkInterfaces()).flat()) {
      if (!nic || nic.internal || nic.family !== 'IPv4') continue;
      expect(sans).toContain(`IP Address:${nic.address}`);
    }
  });

  it('verifies for a configured DNS name sent as SNI', async () => {
    const chain = await peerChain(proxy.port, ca, 'registry.test');
    expect(chain[0]?.subject.CN).toBe('registry.test');
  });

  it('has the extensions clients and scanners expect', () => {
    const leaf = new X509Certificate(readFileSync(join(tlsDir, 'server.crt')));
    const root = new X509Certificate(ca);
    expect(leaf.ca).toBe(false);
    expect(root.ca).toBe(true);
    expect(leaf.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth EKU
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkIssued(root)).toBe(true);
  });

  it('speaks TLS 1.2 and 1.3 only, with AEAD ciphers only', async () => {
    const target = `127.0.0.1:${proxy.port}`;
    const tls13 = await openssl(
      ['s_client', '-connect', target, '-tls1_3', '-CAfile', proxy.caFile, '-brief'],
      'Q\n',
    );
    expect(tls13.out).toMatch(/Protocol version: TLSv1\.3/);
    expect(tls13.out).toMatch(/Verification: OK/);
    const gcm12 = await openssl(
      [
        's_client',
        '-connect',
        target,
        '-tls1_2',
        '-cipher',
        'ECDHE-RSA-AES128-GCM-SHA256',
        '-brief',
      ],
      'Q\n',
    );
    expect(gcm12.out).toMatch(/Protocol version: TLSv1\.2/);
    const cbc = await openssl(
      [
        's_client',
        '-connect',
        target,
        '-tls1_2',
        '-cipher',
        'ECDHE-RSA-AES128-SHA:AES128-SHA256:AES256-SHA',
        '-brief',
      ],
      'Q\n',
    );
    expect(cbc.out).not.toMatch(/Protocol version/);
    expect(cbc.out).toMatch(/alert handshake failure/); // the server refused, not the client
    const tls11 = await openssl(
      ['s_client', '-connect', target, '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', '-brief'],
      'Q\n',
    );
    expect(tls11.out).not.toMatch(/Protocol version/);
    expect(tls11.out).toMatch(/alert protocol version/);
  });

  it('reuses the CA and certificate on restart, and re-issues (same CA) when names change', async () => {
    const caBefore = readFileSync(join(tlsDir, 'ca.crt'), 'utf8');
    const leafBefore = readFileSync(join(tlsDir, 'server.crt'), 'utf8');
    await proxy.stop();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir,
      env: { RTP_TLS_NAMES: 'registry.test,10.11.12.13,fd00:abcd::7' },
    });
    expect(readFileSync(join(tlsDir, 'ca.crt'), 'utf8')).toBe(caBefore);
    expect(readFileSync(join(tlsDir, 'server.crt'), 'utf8')).toBe(leafBefore);
    expect(proxy.output()).not.toMatch(/issued a new server certificate/);

    await proxy.stop();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir,
      env: { RTP_TLS_NAMES: 'other.test' },
    });
    expect(readFileSync(join(tlsDir, 'ca.crt'), 'utf8')).toBe(caBefore);
    expect(proxy.output()).toMatch(
      /"reason":"it does not cover other\.test".*issued a new server certificate/,
    );
    const chain = await peerChain(proxy.port, caBefore, 'other.test');
    expect(chain[0]?.subjectaltname).toContain('DNS:other.test');
  });

  it('logs the CA fingerprint and the fingerprint-checked installer, tls.names first', () => {
    const line = proxy.logLines().find((l) => Array.isArray(l['trustOnClient']));
    const fingerprint = new X509Certificate(ca).fingerprint256;
    expect(line?.['caFingerprint256']).toBe(fingerprint);
    expect(line?.['trustOnClient']).toEqual([
      `curl -fsSk https://other.test:${proxy.port}/install-ca.sh | $(command -v sudo) sh -s -- --fingerprint ${fingerprint}`,
      `curl -fsSk https://127.0.0.1:${proxy.port}/install-ca.sh | $(command -v sudo) sh -s -- --fingerprint ${fingerprint}`,
    ]);
    expect(line?.['trustPage']).toBe(`https://other.test:${proxy.port}/_proxy/trust`);
  });
});

describe('replicas sharing one tls.dir', () => {
  const tmp = tempDir('replicas');
  const proxies: Proxy[] = [];

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    tmp.remove();
  });

  it('never each create their own CA when started at the same moment', async () => {
    const tlsDir = join(tmp.path, 'shared-tls');
    // No registry is needed: the CA is made before any request.
    proxies.push(
      ...(await Promise.all(
        Array.from({ length: 4 }, () => startProxy({ backend: 'http://127.0.0.1:9', tlsDir })),
      )),
    );
    const fingerprints = proxies.map(
      (p) =>
        p.logLines().find((l) => typeof l['caFingerprint256'] === 'string')?.['caFingerprint256'],
    );
    expect(new Set(fingerprints).size).toBe(1);
    expect(fingerprints[0]).toBe(
      new X509Certificate(readFileSync(join(tlsDir, 'ca.crt'))).fingerprint256,
    );
    const creators = proxies.filter((p) => /created a new CA/.test(p.output()));
    expect(creators).toHaveLength(1);
    // And every replica serves a certificate that chains to that one CA.
    const ca = readFileSync(join(tlsDir, 'ca.crt'), 'utf8');
    for (const p of proxies) expect((await peerChain(p.port, ca)).length).toBe(2);
  });
});
