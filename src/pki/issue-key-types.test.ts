/**
 * Every pairing of CA and leaf key types (RSA, ECDSA P-256), read back by openssl
 * and Node: the chain verifies, each certificate names the signature algorithm of
 * its signer's key, carries its own key, and the key identifiers link leaf to CA.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCA, issueServerCertificate, type KeyType } from './issue.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const tmp = mkdtempSync(join(tmpdir(), 'rtp-key-types-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function openssl(...args: string[]): string {
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
  return result.stdout;
}

/** RFC 5280 §4.2.1.2 (1), computed here from the key alone, as openssl prints it. */
function keyIdentifierOf(key: KeyObject): string {
  let bits: Buffer;
  if (key.asymmetricKeyType === 'ec') {
    const { x, y } = key.export({ format: 'jwk' });
    bits = Buffer.concat([
      Buffer.from([4]),
      Buffer.from(x!, 'base64url'),
      Buffer.from(y!, 'base64url'),
    ]);
  } else {
    bits = key.export({ type: 'pkcs1', format: 'der' });
  }
  return createHash('sha1').update(bits).digest('hex').toUpperCase().match(/../g)!.join(':');
}

function keyIdAfter(text: string, name: string): string | undefined {
  const line = new RegExp(`X509v3 ${name}:\\s*\\n\\s+([^\\n]*)`).exec(text)?.[1];
  return line?.trim().replace(/^keyid:/, ''); // openssl 1.1 prints "keyid:", 3.x does not
}

const SIGNATURE: Record<KeyType, string> = {
  rsa: 'sha256WithRSAEncryption',
  ecdsa: 'ecdsa-with-SHA256',
};
const PUBLIC_KEY: Record<KeyType, RegExp> = {
  rsa: /Public Key Algorithm: rsaEncryption/,
  ecdsa: /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/,
};

describe.each<[KeyType, KeyType]>([
  ['rsa', 'rsa'],
  ['rsa', 'ecdsa'],
  ['ecdsa', 'ecdsa'],
  ['ecdsa', 'rsa'],
])('a %s CA signing a %s server certificate', (caType, leafType) => {
  const dir = join(tmp, `${caType}-${leafType}`);
  const setup = (async () => {
    const ca = await createCA({
      commonName: 'key types CA',
      lifetimeMs: 3650 * DAY_MS,
      keyType: caType,
    });
    const leaf = await issueServerCertificate({
      ca: { certPEM: ca.certPEM, key: createPrivateKey(ca.keyPEM) },
      sans: { dns: ['registry.lan'], ips: ['127.0.0.1'] },
      lifetimeMs: 30 * DAY_MS,
      keyType: leafType,
    });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ca.crt'), ca.certPEM);
    writeFileSync(join(dir, 'server.crt'), leaf.certPEM);
    return { ca, leaf };
  })();

  it('verifies with openssl against the CA, for the name and the address', async () => {
    await setup;
    const chain = ['-CAfile', join(dir, 'ca.crt'), '-purpose', 'sslserver'];
    expect(
      openssl('verify', ...chain, '-verify_hostname', 'registry.lan', join(dir, 'server.crt')),
    ).toMatch(/: OK/);
    expect(openssl('verify', ...chain, '-verify_ip', '127.0.0.1', join(dir, 'server.crt'))).toMatch(
      /: OK/,
    );
  });

  it("names its signer's algorithm and carries its own key type", async () => {
    const { ca, leaf } = await setup;
    const caText = openssl('x509', '-noout', '-text', '-in', join(dir, 'ca.crt'));
    const leafText = openssl('x509', '-noout', '-text', '-in', join(dir, 'server.crt'));
    expect(/Signature Algorithm: (\S+)/.exec(caText)?.[1]).toBe(SIGNATURE[caType]);
    expect(/Signature Algorithm: (\S+)/.exec(leafText)?.[1]).toBe(SIGNATURE[caType]);
    expect(caText).toMatch(PUBLIC_KEY[caType]);
    expect(leafText).toMatch(PUBLIC_KEY[leafType]);
    expect(createPrivateKey(leaf.keyPEM).asymmetricKeyType).toBe(leafType === 'rsa' ? 'rsa' : 'ec');
    expect(new X509Certificate(leaf.certPEM).checkPrivateKey(createPrivateKey(leaf.keyPEM))).toBe(
      true,
    );
    expect(new X509Certificate(ca.certPEM).verify(new X509Certificate(ca.certPEM).publicKey)).toBe(
      true,
    );
    // An EC key signs only (RFC 5480 §3); an RSA leaf may also encrypt.
    const usage = /X509v3 Key Usage: critical\s*\n\s+([^\n]*)/.exec(leafText)?.[1]?.trim();
    expect(usage).toBe(
      leafType === 'rsa' ? 'Digital Signature, Key Encipherment' : 'Digital Signature',
    );
  });

  it('links the leaf to the CA by key identifiers computed from each key', async () => {
    const { ca, leaf } = await setup;
    const caText = openssl('x509', '-noout', '-text', '-in', join(dir, 'ca.crt'));
    const leafText = openssl('x509', '-noout', '-text', '-in', join(dir, 'server.crt'));
    const caKey = new X509Certificate(ca.certPEM).publicKey;
    expect(keyIdAfter(caText, 'Subject Key Identifier')).toBe(keyIdentifierOf(caKey));
    expect(keyIdAfter(leafText, 'Subject Key Identifier')).toBe(
      keyIdentifierOf(new X509Certificate(leaf.certPEM).publicKey),
    );
    expect(keyIdAfter(leafText, 'Authority Key Identifier')).toBe(keyIdentifierOf(caKey));
  });
});
