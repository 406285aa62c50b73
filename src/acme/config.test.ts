import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { loadConfig } from '../config/load.js';
import { acmeNames, directoryURL, effectiveChallenges } from './config.js';

const tmp = mkdtempSync(join(tmpdir(), 'rtp-acme-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function problems(env: Record<string, string>): ConfigProblem[] {
  try {
    loadConfig({ env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error('loadConfig accepted a configuration it should have rejected');
}

const ON = {
  RTP_TLS_ACME_DIRECTORY: 'letsencrypt',
  RTP_TLS_ACME_AGREE_TO_TERMS: 'true',
  RTP_TLS_NAMES: 'registry.example.com,10.0.0.5',
};

describe('tls.acme', () => {
  it('is off by default and changes nothing', () => {
    expect(loadConfig({ env: {} }).tls.acme.directory).toBe('');
  });

  it('orders the DNS names of tls.names, not its IPs, by every challenge it can answer', () => {
    const config = loadConfig({ env: ON });
    expect(acmeNames(config)).toEqual(['registry.example.com']);
    expect(effectiveChallenges(config)).toEqual(['tls-alpn-01']);
    expect(
      effectiveChallenges(loadConfig({ env: { ...ON, RTP_TLS_ACME_HTTP01_LISTEN: '0.0.0.0:80' } })),
    ).toEqual(['tls-alpn-01', 'http-01']);
  });

  it.each([
    ['letsencrypt', 'https://acme-v02.api.letsencrypt.org/directory'],
    ['letsencrypt-staging', 'https://acme-staging-v02.api.letsencrypt.org/directory'],
    ['zerossl', 'https://acme.zerossl.com/v2/DV90'],
    [
      'https://ca.internal:9000/acme/acme/directory',
      'https://ca.internal:9000/acme/acme/directory',
    ],
  ])('directory %s is %s', (value, url) => {
    expect(directoryURL(value)).toBe(url);
  });

  it('lists every problem at once, each with its path and what to do', () => {
    const found = problems({
      RTP_TLS_ACME_DIRECTORY: 'letsencrypt',
      RTP_TLS_ACME_NAMES: '10.0.0.5,not_a_name',
      RTP_TLS_ACME_CHALLENGES: 'http-01,dns-01',
      RTP_TLS_ACME_CA_BUNDLE: join(tmp, 'missing.pem'),
      RTP_TLS_ACME_EAB_KID: 'kid-1',
      RTP_TLS_ACME_EAB_HMAC_KEY: 'not base64url!',
    });
    const byPath = Object.fromEntries(found.map((p) => [p.path, p.message]));
    expect(byPath['tls.acme.agreeToTerms']).toMatch(/must be true/);
    expect(byPath['tls.acme.names']).toMatch(/"10.0.0.5", "not_a_name" are not a DNS name/);
    expect(byPath['tls.acme.http01Listen']).toMatch(/http-01 is chosen.*0\.0\.0\.0:80/);
    expect(byPath['tls.acme.dns']).toMatch(/dns-01 is chosen.*rfc2136.*command/);
    expect(byPath['tls.acme.caBundle']).toMatch(/cannot read .*missing\.pem \(ENOENT\)/);
    expect(byPath['tls.acme.eab.hmacKey']).toMatch(/base64url/);
  });

  it('refuses a caBundle without a certificate and a wildcard without dns-01', () => {
    const junk = join(tmp, 'junk.pem');
    writeFileSync(junk, 'hello\n');
    const found = problems({
      ...ON,
      RTP_TLS_ACME_NAMES: '*.example.com',
      RTP_TLS_ACME_CA_BUNDLE: junk,
    });
    expect(found.map((p) => p.path).sort()).toEqual(['tls.acme.caBundle', 'tls.acme.names']);
    expect(found.find((p) => p.path === 'tls.acme.names')?.message).toMatch(
      /only issued by dns-01/,
    );
  });
});
