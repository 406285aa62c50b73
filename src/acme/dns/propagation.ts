/**
 * The propagation check: before the CA is asked to validate, the TXT record must be
 * served by every authoritative server of its zone, or a CA that asks a secondary which
 * has not yet transferred the zone fails the order. Recursive resolvers are not asked:
 * they may cache the old answer (or its absence) for the negative TTL.
 *
 * The servers are found from the zone's NS records through the system resolvers, or
 * given (`servers`): for a zone that only internal servers know, or when the writer's own
 * server (rfc2136.server) is the one that counts.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Resolver } from 'node:dns/promises';
import { DNSError } from './errors.js';
import { DNS_PORT, formatServer, normalizeName, parseDNSServer, type Server } from './wire.js';

export interface WaitForTxtOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Pause between rounds of queries (default 2 s). */
  intervalMs?: number;
  /** Ask these servers (`host[:port]`) instead of the zone's NS set. */
  servers?: readonly string[];
  /**
   * Ask these when the NS set cannot be found (a zone public DNS does not know):
   * rfc2136.server, whose answer is the zone's own.
   */
  fallbackServers?: readonly string[];
  /** Resolvers (`host[:port]`) to find the zone's NS set with; default the system's. */
  resolvers?: readonly string[];
  /** The port the zone's name servers answer on (53). */
  nameServerPort?: number;
}

export const PROPAGATION_INTERVAL_MS = 2000;
/** One query's timeout: short, as a silent server is simply asked again next round. */
const QUERY_TIMEOUT_MS = 2000;

function resolverFor(servers?: readonly string[]): Resolver {
  const resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: 1 });
  if (servers) resolver.setServers(servers.map((s) => formatServer(parseServer(s))));
  return resolver;
}

function parseServer(value: string): Server {
  const server = parseDNSServer(value);
  if (!server)
    throw new DNSError('DNS_CONFIG', `"${value}" is not a DNS server address (host or host:port)`);
  return server;
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/**
 * The zone that holds `fqdn` and the addresses of its name servers: the closest
 * enclosing name with an SOA record, its NS records, and their A/AAAA records.
 */
export async function findAuthoritativeServers(
  fqdn: string,
  opts: { resolvers?: readonly string[]; nameServerPort?: number } = {},
): Promise<{ zone: string; servers: Server[] }> {
  const resolver = resolverFor(opts.resolvers);
  const labels = normalizeName(fqdn).split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join('.');
    try {
      await resolver.resolveSoa(candidate);
    } catch (err) {
      // ENODATA: a name inside the zone; ENOTFOUND: one that does not exist yet.
      if (['ENODATA', 'ENOTFOUND'].includes(errorCode(err))) continue;
      throw new DNSError(
        'DNS_LOOKUP',
        `looking up the zone of ${fqdn} (SOA ${candidate}): ${errorCode(err)}`,
        {
          cause: err,
        },
      );
    }
    const names = await resolver.resolveNs(candidate);
    const port = opts.nameServerPort ?? DNS_PORT;
    const servers: Server[] = [];
    for (const name of names) {
      const addresses = await Promise.all([
        resolver.resolve4(name).catch(() => [] as string[]),
        resolver.resolve6(name).catch(() => [] as string[]),
      ]);
      for (const host of addresses.flat()) servers.push({ host, port });
    }
    if (servers.length === 0)
      throw new DNSError(
        'DNS_LOOKUP',
        `the name servers of ${candidate} (${names.join(', ')}) have no addresses`,
      );
    return { zone: candidate, servers };
  }
  throw new DNSError('DNS_LOOKUP', `no zone (SOA record) found above ${fqdn}`);
}

/** What one server answers for the TXT name: 'ok' when it has the value. */
async function askServer(server: Server, fqdn: string, value: string): Promise<string> {
  const resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: 1 });
  resolver.setServers([formatServer(server)]);
  try {
    const records = await resolver.resolveTxt(fqdn);
    return records.some((chunks) => chunks.join('') === value)
      ? 'ok'
      : `${records.length} other TXT value(s)`;
  } catch (err) {
    return errorCode(err);
  } finally {
    resolver.cancel();
  }
}

async function serversToAsk(fqdn: string, opts: WaitForTxtOptions): Promise<Server[]> {
  if (opts.servers && opts.servers.length > 0) {
    return opts.servers.map(parseServer);
  }
  try {
    const found = await findAuthoritativeServers(fqdn, {
      ...(opts.resolvers ? { resolvers: opts.resolvers } : {}),
      ...(opts.nameServerPort ? { nameServerPort: opts.nameServerPort } : {}),
    });
    return found.servers;
  } catch (err) {
    if (opts.fallbackServers && opts.fallbackServers.length > 0)
      return opts.fallbackServers.map(parseServer);
    throw err;
  }
}

/**
 * Resolves once every authoritative server answers the TXT record `fqdn` with `value`
 * among its values; rejects on timeout with an error naming the servers that did not,
 * and what each said last.
 *
 * @example
 *   await waitForTxt('_acme-challenge.registry.example.com', keyAuthDigest, {
 *     timeoutMs: 120_000,
 *     servers: ['ns1.example.com:53'], // optional: skip the NS lookup
 *   });
 */
export async function waitForTxt(
  fqdn: string,
  value: string,
  opts: WaitForTxtOptions,
): Promise<void> {
  const { timeoutMs, signal, intervalMs = PROPAGATION_INTERVAL_MS } = opts;
  const name = normalizeName(fqdn);
  const deadline = Date.now() + timeoutMs;
  const last = new Map<string, string>();
  let lookupError: unknown;
  let servers: Server[] | undefined;
  for (;;) {
    if (signal?.aborted)
      throw new DNSError('DNS_ABORTED', `waiting for TXT ${name} aborted`, {
        cause: signal.reason,
      });
    try {
      servers ??= await serversToAsk(name, opts);
      const answers = await Promise.all(servers.map((s) => askServer(s, name, value)));
      servers.forEach((s, i) => last.set(formatServer(s), answers[i] ?? ''));
      if (answers.every((a) => a === 'ok')) return;
    } catch (err) {
      lookupError = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    // An abort ends the pause early; the loop's first line then throws.
    await delay(Math.min(intervalMs, left), undefined, { signal }).catch(() => {});
  }
  const missing = [...last].filter(([, answer]) => answer !== 'ok');
  const seen = missing.map(([server, answer]) => `${server} (${answer})`).join(', ');
  throw new DNSError(
    'DNS_PROPAGATION_TIMEOUT',
    servers
      ? `TXT ${name} = "${value}" was not visible on ${seen} within ${timeoutMs / 1000} s: check that the record was written to the zone these servers serve, and that secondaries get NOTIFY/zone transfers`
      : `could not find the authoritative servers for ${name} within ${timeoutMs / 1000} s: ${(lookupError as Error)?.message ?? lookupError}`,
    { cause: lookupError },
  );
}
