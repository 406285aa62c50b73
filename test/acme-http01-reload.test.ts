/**
 * tls.acme.http01Listen changed by a reload (SIGHUP), against a real pebble. Pebble
 * validates http-01 at one fixed port (its httpPort), here the port the proxy moves
 * TO: before the reload nothing listens there (the first certificate comes by
 * tls-alpn-01), after it the proxy answers there, no longer at the old port, and a
 * forced renewal by http-01 succeeds, so pebble reached the new listener. A reload
 * to a port that is taken is rejected, saying so, and the listener stays where it was.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACME_NAME,
  acmeCLI,
  http01Get as httpGet,
  peerCertificate,
  setUpACME,
  type ACMESetup,
} from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import {
  freePort,
  startProxy,
  tempDir,
  tryConnect,
  waitForOutput,
  type Proxy,
} from './helpers/processes.js';
import { reloadCounter } from './helpers/reloads.js';

describe('a reload that moves tls.acme.http01Listen', () => {
  const tmp = tempDir('acme-http01-reload');
  const tlsDir = join(tmp.path, 'tls');
  const file = join(tmp.path, 'proxy.yaml');
  const writeConfig = (http01Port: number, challenge: string) =>
    writeFileSync(
      file,
      `tls:\n  acme:\n    http01Listen: 127.0.0.1:${http01Port}\n    challenges: [${challenge}]\n`,
    );
  let acme: ACMESetup;
  let proxy: Proxy;
  let env: Record<string, string>;
  let newPort: number;
  beforeAll(async () => {
    newPort = await freePort();
    acme = await setUpACME(tmp.path, {}, newPort);
    // http01Listen and the challenges come from the file, which the reload re-reads.
    const { RTP_TLS_ACME_HTTP01_LISTEN: _fromFile, ...rest } = acme.env();
    env = rest;
    writeConfig(acme.http01Port, 'tls-alpn-01');
    proxy = await startProxy({
      backend: acme.registry.url,
      tlsDir,
      port: acme.proxyPort,
      env,
      args: ['--config', file],
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  const answersChallenges = async (port: number) => {
    const res = await httpGet(port, '/.well-known/acme-challenge/no-such-token');
    return res.status === 404 && res.body === 'no such challenge\n';
  };

  it('answers at the new port only; pebble validates a forced renewal there', async () => {
    await eventually(
      'the first certificate (tls-alpn-01)',
      () => proxy.logLines().find((l) => /^serving the ACME/.test(String(l['msg']))),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(await answersChallenges(acme.http01Port)).toBe(true);
    expect(await tryConnect(newPort)).toBe('ECONNREFUSED');

    writeConfig(newPort, 'http-01');
    const reloads = reloadCounter(proxy);
    const t0 = Date.now();
    await reloads.reload();
    await eventually(
      'the old port to close',
      async () => (await tryConnect(acme.http01Port)) === 'ECONNREFUSED',
    );
    console.log(`old http-01 port refused ${Date.now() - t0} ms after SIGHUP`);
    expect(await answersChallenges(newPort)).toBe(true);
    const other = await httpGet(newPort, '/v2/acme/app/manifests/v1?x=1');
    expect(other.status).toBe(301);
    expect(other.location).toBe(
      `https://${ACME_NAME}:${acme.proxyPort}/v2/acme/app/manifests/v1?x=1`,
    );

    const root = await acme.pebble.root();
    const before = (await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber;
    const renew = await acmeCLI(['--config', file, 'renew', '--force'], {
      ...env,
      RTP_TLS_DIR: tlsDir,
    });
    expect(renew.code, renew.stderr + renew.stdout).toBe(0);
    expect(renew.stdout).toMatch(/"challenge":"http-01"/);
    const serial = /renewed: serial ([0-9A-F]+)/.exec(renew.stdout)?.[1];
    expect(serial).toBeDefined();
    expect(serial).not.toBe(before);
    await eventually(
      'the renewed certificate on new handshakes',
      async () => (await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber === serial,
      { timeoutMs: 5_000, intervalMs: 100 },
    );
  });

  it('a reload to a port in use is rejected, saying which; the listener stays', async () => {
    const taken = createServer();
    const busyPort = await freePort();
    await new Promise<void>((r) => taken.listen(busyPort, '127.0.0.1', r));
    try {
      writeConfig(busyPort, 'http-01');
      const rejected = proxy.logLines().length;
      proxy.child.kill('SIGHUP');
      await waitForOutput(proxy.child, proxy.output, /"msg":"configuration reload rejected: /);
      const line = proxy
        .logLines()
        .slice(rejected)
        .find((l) => /^configuration reload rejected/.test(String(l['msg'])));
      const msg = String(line?.['msg']);
      expect(msg).toContain(`127.0.0.1:${busyPort} (tls.acme.http01Listen): the port is in use`);
      expect(msg).toMatch(/stop what holds it or choose another port; still serving the previous/);
      expect(await answersChallenges(newPort)).toBe(true);
      expect((await httpGet(newPort, '/v2/')).status).toBe(301);
      const root = await acme.pebble.root();
      expect((await peerCertificate(acme.proxyPort, root, ACME_NAME)).issuer.CN).toMatch(
        /^Pebble Intermediate CA/,
      );
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
