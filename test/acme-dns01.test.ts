/**
 * ACME by dns-01 end to end: the proxy writes the TXT record into a real BIND (RFC 2136,
 * TSIG), checks that the zone's server has it, and pebble — asking that BIND — issues;
 * skopeo then pushes and pulls by name holding only pebble's root. No http-01 listener
 * and no tls-alpn-01: the host could be internal only.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACME_NAME,
  peerCertificate,
  pushAndPullByName,
  setUpACME,
  type ACMESetup,
} from './helpers/acme-setup.js';
import { startBind9, type Bind9 } from './helpers/bind9.js';
import { writeHookScript } from './helpers/challtestsrv.js';
import { eventually } from './helpers/eventually.js';
import { buildOCIImage } from './helpers/oci.js';
import { tempDir, type Proxy } from './helpers/processes.js';

/** Waits for the ACME certificate to be served, ordered by dns-01 alone. */
async function servedAfterDNS01(proxy: Proxy): Promise<void> {
  await eventually(
    'the ACME certificate to be served',
    () => proxy.logLines().find((l) => /^serving the ACME certificate/.test(String(l['msg']))),
    { timeoutMs: 90_000 },
  );
  const answered = proxy.logLines().filter((l) => l['msg'] === 'ACME: answering a challenge');
  expect(answered.map((l) => l['challenge'])).toEqual(['dns-01']);
}

describe('ACME by dns-01 over RFC 2136, with pebble and BIND', () => {
  const tmp = tempDir('acme-dns01');
  let bind: Bind9;
  let acme: ACMESetup;
  let proxy: Proxy;

  beforeAll(async () => {
    bind = await startBind9([{ name: 'acme.test', update: 'key' }]);
    acme = await setUpACME(tmp.path, {}, undefined, bind.server);
    proxy = await acme.start(join(tmp.path, 'tls'), {
      RTP_TLS_ACME_CHALLENGES: 'dns-01',
      RTP_TLS_ACME_HTTP01_LISTEN: '',
      RTP_TLS_ACME_DNS_RFC2136_SERVER: bind.server,
      RTP_TLS_ACME_DNS_RFC2136_KEY_NAME: bind.key.name,
      RTP_TLS_ACME_DNS_RFC2136_KEY_ALGORITHM: bind.key.algorithm,
      RTP_TLS_ACME_DNS_RFC2136_KEY_SECRET: bind.key.secret,
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    await bind?.stop();
    tmp.remove();
  });

  it('obtains a certificate; skopeo pushes and pulls by name trusting only pebble', async () => {
    await servedAfterDNS01(proxy);
    // The record is cleaned up after validation, and the secret never reaches the log.
    expect(bind.digTXT(`_acme-challenge.${ACME_NAME}`)).toEqual([]);
    expect(proxy.output()).not.toContain(bind.key.secret);

    const root = await acme.pebble.root();
    expect((await peerCertificate(acme.proxyPort, root, ACME_NAME)).issuer.CN).toMatch(
      /^Pebble Intermediate CA/,
    );
    const certDir = join(tmp.path, 'pebble-root');
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), root);
    const image = buildOCIImage(join(tmp.path, 'image'), 'v1', [1 << 20]);
    const pulled = join(tmp.path, 'pulled');
    const { push, pull } = await pushAndPullByName(
      acme,
      certDir,
      image.ref,
      'dns01/app:v1',
      pulled,
    );
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(readFileSync(join(pulled, 'manifest.json'), 'utf8')).toContain('layers');
  });
});

describe('ACME by dns-01 through a hook command, with pebble and challtestsrv', () => {
  const tmp = tempDir('acme-dns01-hook');
  let acme: ACMESetup;
  let proxy: Proxy;

  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    const hook = join(tmp.path, 'dns-hook.sh');
    writeHookScript(hook);
    proxy = await acme.start(join(tmp.path, 'tls'), {
      RTP_TLS_ACME_CHALLENGES: 'dns-01',
      RTP_TLS_ACME_HTTP01_LISTEN: '',
      RTP_TLS_ACME_DNS_COMMAND: `${hook} --api ${acme.pebble.challtestsrv}`,
      // challtestsrv is the zone's only server: public DNS knows nothing of acme.test.
      RTP_TLS_ACME_DNS_CHECK_SERVERS: acme.pebble.dnsServer,
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it("obtains a certificate that verifies against pebble's root by name", async () => {
    await servedAfterDNS01(proxy);
    const root = await acme.pebble.root();
    expect((await peerCertificate(acme.proxyPort, root, ACME_NAME)).issuer.CN).toMatch(
      /^Pebble Intermediate CA/,
    );
  });
});
