/**
 * Answers to the CA's challenges, written where every replica reads them (store.ts):
 * http-01 tokens and tls-alpn-01 certificates as files in tls.dir/acme, dns-01 TXT
 * records through the DNS module (RFC 2136 or a hook command), seen on the zone's
 * authoritative servers before the CA is asked to look.
 */
import type * as acme from 'acme-client';
import { writeFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { acmeClientModule } from './client-module.js';
import { dnsConfigOf } from './config.js';
import { propagationOptionsFor, txtWriterFor, waitForTxt } from './dns/index.js';
import { challengeFile, removeChallenge } from './store.js';

/** How long a TXT record may take to show on every authoritative server. */
const DNS_PROPAGATION_TIMEOUT_MS = 120_000;

type Authz = Parameters<acme.ClientAutoOptions['challengeCreateFn']>[0];
type Challenge = Parameters<acme.ClientAutoOptions['challengeCreateFn']>[1];

export interface ChallengeAnswers {
  present(authz: Authz, challenge: Challenge, keyAuthorization: string): Promise<void>;
  remove(authz: Authz, challenge: Challenge, keyAuthorization: string): Promise<void>;
  /** The challenge types used in this order, for the hint when it fails. */
  used(): Set<string>;
}

export function challengeAnswers(config: Config, dir: string, logger: Logger): ChallengeAnswers {
  const used = new Set<string>();
  let dns: ReturnType<typeof txtWriterFor> | undefined;
  const dnsWriter = () => (dns ??= txtWriterFor(dnsConfigOf(config), logger));
  const name = (authz: Authz) => authz.identifier.value;
  return {
    used: () => used,
    async present(authz, challenge, keyAuthorization) {
      const type: string = challenge.type; // acme-client's types lack tls-alpn-01
      used.add(type);
      logger.debug({ name: name(authz), challenge: type }, 'ACME: answering a challenge');
      if (type === 'http-01') {
        const file = challengeFile(dir, 'http01', (challenge as { token: string }).token);
        if (!file) throw new Error(`the CA sent an http-01 token that is no file name`);
        writeFileSync(file, keyAuthorization, { mode: 0o600 });
      } else if (type === 'tls-alpn-01') {
        const file = challengeFile(dir, 'tlsALPN', name(authz));
        if (!file) throw new Error(`cannot answer tls-alpn-01 for ${name(authz)}`);
        const [key, cert] = await (
          await acmeClientModule()
        ).crypto.createAlpnCertificate(authz, keyAuthorization);
        writeFileSync(file, `${key.toString()}${cert.toString()}`, { mode: 0o600 });
      } else if (type === 'dns-01') {
        const fqdn = `_acme-challenge.${name(authz).replace(/^\*\./, '')}`;
        await dnsWriter().present(fqdn, keyAuthorization);
        await waitForTxt(fqdn, keyAuthorization, {
          timeoutMs: DNS_PROPAGATION_TIMEOUT_MS,
          // The servers named, else the zone's NS set (else the RFC 2136 server: an
          // internal-only zone's NS set may not resolve here).
          ...(config.tls.acme.dns.checkServers.length > 0
            ? { servers: config.tls.acme.dns.checkServers }
            : propagationOptionsFor(dnsConfigOf(config))),
        });
      }
    },
    async remove(authz, challenge, keyAuthorization) {
      const type: string = challenge.type;
      if (type === 'http-01') {
        removeChallenge(challengeFile(dir, 'http01', (challenge as { token: string }).token));
      } else if (type === 'tls-alpn-01') {
        removeChallenge(challengeFile(dir, 'tlsALPN', name(authz)));
      } else if (type === 'dns-01') {
        const fqdn = `_acme-challenge.${name(authz).replace(/^\*\./, '')}`;
        await dnsWriter().cleanup(fqdn, keyAuthorization);
      }
    },
  };
}

/** The likely fix for a failed challenge, by the types that were tried. */
export function likelyFix(used: Set<string>, config: Config): string {
  const fixes: string[] = [];
  if (used.has('http-01')) {
    fixes.push(
      `port 80 is not reachable from the CA: the CA connects to port 80 of each name, which must reach tls.acme.http01Listen (${config.tls.acme.http01Listen}); open or forward it`,
    );
  }
  if (used.has('tls-alpn-01')) {
    fixes.push(
      `port 443 is not reachable from the CA: tls-alpn-01 connects to port 443 of each name, which must reach listen (${config.listen}); forward it, or use http-01 or dns-01`,
    );
  }
  if (used.has('dns-01')) {
    fixes.push(
      'the CA did not see the TXT record: check that tls.acme.dns writes to the zone the CA resolves (public DNS, not an internal view)',
    );
  }
  if (fixes.length === 0) fixes.push('check that the names resolve to this host in public DNS');
  return fixes.join('; ');
}
