/**
 * ACME against Let's Encrypt's own test server, pebble: per challenge, the proxy
 * orders at start, serves our own CA's certificate until the ACME one arrives, then
 * serves pebble's chain by name, which skopeo verifies holding only pebble's root,
 * while clients by IP keep our CA's certificate.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACME_NAME,
  http01Get,
  peerCertificate,
  pushAndPullByName,
  setUpACME,
  type ACMESetup,
} from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import { buildOCIImage, type OCIImage } from './helpers/oci.js';
import { runCLI, tempDir, type Proxy } from './helpers/processes.js';

const served = (proxy: Proxy) =>
  proxy.logLines().find((l) => /^serving the ACME certificate/.test(String(l['msg'])));

describe.each(['http-01', 'tls-alpn-01'])('ACME by %s with pebble', (challenge) => {
  const tmp = tempDir('acme');
  let acme: ACMESetup;
  let proxy: Proxy;
  let image: OCIImage;
  const certDir = join(tmp.path, 'pebble-root');

  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    proxy = await acme.start(join(tmp.path, 'tls'), { RTP_TLS_ACME_CHALLENGES: challenge });
    image = buildOCIImage(join(tmp.path, 'image'), 'v1', [1 << 20, 100_000]);
    mkdirSync(certDir);
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('obtains a certificate; skopeo pushes and pulls by name trusting only pebble', async () => {
    await eventually('the ACME certificate to be served', () => served(proxy), {
      timeoutMs: 60_000,
    });
    const ordered = proxy.logLines().find((l) => l['msg'] === 'ACME: answering a challenge');
    expect(ordered?.['challenge']).toBe(challenge);
    writeFileSync(join(certDir, 'ca.crt'), await acme.pebble.root());
    const { push, pull } = await pushAndPullByName(
      acme,
      certDir,
      image.ref,
      'acme/app:v1',
      join(tmp.path, 'pulled'),
    );
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(readFileSync(join(tmp.path, 'pulled', 'manifest.json'), 'utf8')).toContain('layers');
  });

  it("splits by SNI: by name pebble's chain, by IP (no SNI) our own CA's", async () => {
    const root = await acme.pebble.root();
    const byName = await peerCertificate(acme.proxyPort, root, ACME_NAME);
    expect(byName.issuer.CN).toMatch(/^Pebble Intermediate CA/);
    const ours = readFileSync(proxy.caFile, 'utf8');
    const byIP = await peerCertificate(acme.proxyPort, ours);
    expect(byIP.issuer.CN).toMatch(/^registry-tls-proxy CA/);
    // Our CA's certificate still covers the name for clients that trust it; pebble's root does not verify it.
    const says = proxy.logLines().find((l) => /^certificates by SNI/.test(String(l['msg'])));
    expect(says?.['msg']).toMatch(
      /registry\.acme\.test get the ACME certificate .*; clients by IP address or without SNI get our own CA's/,
    );
    const show = runCLI(['ca', 'show'], { ...acme.env(), RTP_TLS_DIR: proxy.tlsDir });
    expect(show.stdout).toMatch(
      new RegExp(
        `ACME certificate \\(by SNI for ${ACME_NAME}.*\\n  serial: ${byName.serialNumber}`,
      ),
    );
    expect(show.stdout).toMatch(
      /clients by IP address or without SNI get the server certificate above/,
    );
    // caBundle here is pebble's HTTPS CA alone, which did not sign the chain: the log says so.
    const unanchored = proxy
      .logLines()
      .find((l) => /^none of the certificates in tls\.acme\.caBundle/.test(String(l['msg'])));
    expect(unanchored?.['msg']).toMatch(/add the ACME server's issuing root to caBundle/);
    await expect(peerCertificate(acme.proxyPort, root)).rejects.toThrow(
      /self[- ]signed|unable to get/i,
    );
  });

  it('redirects everything but challenges on the http-01 listener to https (301)', async () => {
    const { status, location } = await http01Get(acme.http01Port, '/v2/_catalog');
    expect(status).toBe(301);
    expect(location).toBe(`https://${ACME_NAME}:${acme.proxyPort}/v2/_catalog`);
  });
});
