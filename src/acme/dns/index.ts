/**
 * dns-01 for the ACME order: writing the `_acme-challenge` TXT record (RFC 2136 with
 * TSIG, or an operator's hook command), checking the config for it, and waiting until the
 * zone's authoritative servers serve it. docs/acme-dns.md is the operator's side.
 */
import { accessSync, constants, statSync } from 'node:fs';
import type { Logger } from '../../log.js';
import { HookWriter, HOOK_TIMEOUT_MS } from './hook.js';
import { EXCHANGE_TIMEOUT_MS, RFC2136Writer, type RFC2136Config } from './rfc2136.js';
import { TSIG_ALGORITHM_NAMES, tsigAlgorithm } from './tsig.js';
import { normalizeName, parseDNSServer } from './wire.js';
import { isDNSName } from '../../net/address.js';
import type { WaitForTxtOptions } from './propagation.js';

export { DNSError } from './errors.js';
export { findAuthoritativeServers, waitForTxt, type WaitForTxtOptions } from './propagation.js';
export { CHALLENGE_TTL_S, RFC2136Writer, type RFC2136Config } from './rfc2136.js';
export { HookWriter, HOOK_TIMEOUT_MS } from './hook.js';
export { DEFAULT_TSIG_ALGORITHM, TSIG_ALGORITHM_NAMES } from './tsig.js';
export { parseDNSServer } from './wire.js';

export interface DnsConfig {
  rfc2136?: RFC2136Config;
  command?: string;
}

export interface TxtWriter {
  present(fqdn: string, value: string): Promise<void>;
  cleanup(fqdn: string, value: string): Promise<void>;
}

/** Time limits, for tests; the defaults suit real servers and provider APIs. */
export interface TxtWriterOptions {
  /** One DNS exchange with rfc2136.server (default 10 s). */
  exchangeTimeoutMs?: number;
  /** One run of the hook command (default 120 s). */
  hookTimeoutMs?: number;
}

/**
 * The writer the config asks for. dnsConfigProblems rejects a config with both; should
 * one get here anyway, rfc2136 wins, as the method that needs no outside program.
 *
 * @example
 *   const writer = txtWriterFor(config.tls.acme.dns, log);
 *   await writer.present('_acme-challenge.registry.example.com', digest);
 */
export function txtWriterFor(
  config: DnsConfig,
  log: Logger,
  options: TxtWriterOptions = {},
): TxtWriter {
  if (config.rfc2136 && usesRFC2136(config))
    return new RFC2136Writer(config.rfc2136, log, options.exchangeTimeoutMs ?? EXCHANGE_TIMEOUT_MS);
  if (config.command && usesCommand(config))
    return new HookWriter(config.command, log, options.hookTimeoutMs ?? HOOK_TIMEOUT_MS);
  throw new Error(
    'dns-01 needs tls.acme.dns.rfc2136 or tls.acme.dns.command (see dnsConfigProblems)',
  );
}

/**
 * Whether a method is chosen: a schema may well default rfc2136 to empty strings (and
 * keyAlgorithm to hmac-sha256) and command to '', which choose nothing.
 */
function usesRFC2136(config: DnsConfig): boolean {
  const rfc = config.rfc2136 as Partial<RFC2136Config> | null | undefined;
  return !!rfc && [rfc.server, rfc.keyName, rfc.keySecret].some((v) => v !== undefined && v !== '');
}

function usesCommand(config: DnsConfig): boolean {
  return typeof config.command === 'string' && config.command.trim() !== '';
}

/**
 * How waitForTxt should find the servers to ask for this config: the zone's NS set, and
 * with rfc2136, its server when the NS set cannot be found (an internal-only zone).
 *
 * @example await waitForTxt(fqdn, value, { timeoutMs: 120_000, ...propagationOptionsFor(dns) });
 */
export function propagationOptionsFor(
  config: DnsConfig,
): Pick<WaitForTxtOptions, 'fallbackServers'> {
  return config.rfc2136 && usesRFC2136(config) ? { fallbackServers: [config.rfc2136.server] } : {};
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function rfc2136Problems(rfc: Partial<RFC2136Config>, path: string): string[] {
  const problems: string[] = [];
  if (typeof rfc.server !== 'string' || !parseDNSServer(rfc.server))
    problems.push(
      `${path}.server must be the zone's primary DNS server as host or host:port (port 53 by default, IPv6 in brackets: [2001:db8::53]:53)`,
    );
  if (typeof rfc.keyName !== 'string' || !isDNSName(normalizeName(rfc.keyName)))
    problems.push(
      `${path}.keyName must be the TSIG key's name, as in named.conf's key "NAME" { … }`,
    );
  if (
    rfc.keyAlgorithm !== undefined &&
    (typeof rfc.keyAlgorithm !== 'string' || !tsigAlgorithm(rfc.keyAlgorithm))
  )
    problems.push(
      `${path}.keyAlgorithm must be one of ${TSIG_ALGORITHM_NAMES.join(', ')} (the key's algorithm in named.conf)`,
    );
  if (typeof rfc.keySecret !== 'string' || rfc.keySecret === '')
    problems.push(`${path}.keySecret is missing: set the secret from tsig-keygen's key.conf`);
  else if (!BASE64.test(rfc.keySecret))
    problems.push(`${path}.keySecret must be base64 (the secret from tsig-keygen's key.conf)`);
  return problems;
}

/** An absolute first word of the command must be an executable file; others are left to the shell. */
function commandProblems(command: string, path: string): string[] {
  const first = command.trim().split(/\s+/)[0] ?? '';
  if (!first.startsWith('/')) return [];
  try {
    if (!statSync(first).isFile()) return [`${path}.command: ${first} is not a file`];
    accessSync(first, constants.X_OK);
    return [];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return [
      code === 'EACCES'
        ? `${path}.command: ${first} is not executable: chmod +x it`
        : `${path}.command: ${first} does not exist (${code})`,
    ];
  }
}

/**
 * Every problem of the dns-01 config under `path` (tls.acme.dns), each naming its key
 * and what to do; [] when it is usable. Secrets are never quoted.
 *
 * @example dnsConfigProblems({}, 'tls.acme.dns')
 *   // → ['tls.acme.dns: dns-01 needs tls.acme.dns.rfc2136 or tls.acme.dns.command …']
 */
export function dnsConfigProblems(config: DnsConfig, path: string): string[] {
  const hasRFC2136 = usesRFC2136(config);
  const hasCommand = usesCommand(config);
  if (!hasRFC2136 && !hasCommand)
    return [
      `${path}: dns-01 needs ${path}.rfc2136 (dynamic updates with a TSIG key) or ${path}.command (a hook script for your DNS provider's API)`,
    ];
  const problems: string[] = [];
  if (hasRFC2136 && hasCommand)
    problems.push(`${path}: set ${path}.rfc2136 or ${path}.command, not both`);
  if (hasRFC2136)
    problems.push(...rfc2136Problems(config.rfc2136 as Partial<RFC2136Config>, `${path}.rfc2136`));
  if (hasCommand) problems.push(...commandProblems(config.command as string, path));
  return problems;
}
