/**
 * STUB standing in for src/acme/dns/index.ts (dns-01 over RFC 2136 and the hook
 * command), which is built on its own branch. The types are the agreed interface;
 * once that module is merged this file becomes `export * from './dns/index.js'`.
 */
import type { Logger } from '../log.js';

export interface DnsConfig {
  rfc2136?: { server: string; keyName: string; keyAlgorithm: string; keySecret: string };
  command?: string;
}

export interface TxtWriter {
  present(fqdn: string, value: string): Promise<void>;
  cleanup(fqdn: string, value: string): Promise<void>;
}

export function txtWriterFor(_config: DnsConfig, _log: Logger): TxtWriter {
  const missing = async () => {
    throw new Error('dns-01 is not available in this build (src/acme/dns is missing)');
  };
  return { present: missing, cleanup: missing };
}

export function dnsConfigProblems(_config: DnsConfig, _path: string): string[] {
  return [];
}

export async function waitForTxt(
  _fqdn: string,
  _value: string,
  _opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<void> {
  throw new Error('dns-01 is not available in this build (src/acme/dns is missing)');
}
