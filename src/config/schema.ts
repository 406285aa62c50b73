/**
 * The one typed configuration schema. Every key has exactly one default, here;
 * `config/default.yaml` documents every key and a test keeps the two in step.
 */
import { isIP } from 'node:net';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  /** Public HTTPS listener, `host:port`. */
  listen: string;
  /** The plain-HTTP registry, `http://host:port`. */
  backend: string;
  tls: {
    /** Where the CA, the server certificate and their keys live. */
    dir: string;
    /** Extra DNS names and IP addresses to put in the server certificate. */
    names: string[];
    /** Lifetime of the auto-issued server certificate. */
    certValidityDays: number;
    /** Lifetime of the auto-created CA. */
    caValidityDays: number;
  };
  admin: {
    /** Operational endpoints (`/healthz`, `/metrics`), plain HTTP; empty string turns it off. */
    listen: string;
  };
  timeouts: {
    /** Close a client connection when no bytes move in either direction for this long. */
    clientIdleMs: number;
    /** A client must finish sending request headers within this time. */
    headersMs: number;
    /** How long an idle keep-alive client connection is kept open. */
    keepAliveMs: number;
    /** Give up on the backend (504) when it sends nothing for this long. */
    backendIdleMs: number;
  };
  log: {
    level: LogLevel;
  };
}

export const DEFAULTS: Config = {
  listen: '0.0.0.0:5443',
  backend: 'http://127.0.0.1:5000',
  tls: {
    dir: 'data/tls',
    names: [],
    certValidityDays: 90,
    caValidityDays: 3650,
  },
  admin: {
    listen: '127.0.0.1:5480',
  },
  timeouts: {
    clientIdleMs: 120_000,
    headersMs: 60_000,
    keepAliveMs: 30_000,
    backendIdleMs: 300_000,
  },
  log: {
    level: 'info',
  },
};

export const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

/** How one leaf is parsed from an environment variable and checked. */
export interface FieldSpec {
  kind: 'string' | 'int' | 'stringList';
  /** Returns what is wrong and what to do, or undefined when the value is fine. */
  check: (value: never) => string | undefined;
}

const string = (check: (v: string) => string | undefined = () => undefined): FieldSpec => ({
  kind: 'string',
  check: check as FieldSpec['check'],
});
const int = (min: number, max: number): FieldSpec => ({
  kind: 'int',
  check: ((v: number) =>
    v >= min && v <= max
      ? undefined
      : `must be a whole number from ${min} to ${max}, got ${v}`) as FieldSpec['check'],
});

/** Every leaf of {@link Config} by its dotted path. */
export const FIELDS: Readonly<Record<string, FieldSpec>> = {
  listen: string((v) => checkHostPort(v)),
  backend: string(checkBackendURL),
  'tls.dir': string((v) => (v.trim() === '' ? 'must name a directory, e.g. data/tls' : undefined)),
  'tls.names': {
    kind: 'stringList',
    check: ((names: string[]) => {
      // A zone (fe80::1%eth0) cannot appear in a certificate.
      const bad = names.filter((n) => n.includes('%') || (!isIP(n) && !isDNSName(n)));
      return bad.length === 0
        ? undefined
        : `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} neither a DNS name nor an IP address; list names like registry.example.com or addresses like 10.0.0.5`;
    }) as FieldSpec['check'],
  },
  'tls.certValidityDays': int(1, 825),
  'tls.caValidityDays': int(30, 36500),
  'admin.listen': string((v) => (v === '' ? undefined : checkHostPort(v))),
  'timeouts.clientIdleMs': int(1000, 86_400_000),
  'timeouts.headersMs': int(1000, 600_000),
  'timeouts.keepAliveMs': int(100, 3_600_000),
  'timeouts.backendIdleMs': int(1000, 86_400_000),
  'log.level': string((v) =>
    (LOG_LEVELS as readonly string[]).includes(v)
      ? undefined
      : `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`,
  ),
};

/** `host:port` or `[v6]:port`, split; undefined when malformed. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  if (match[2] !== undefined && host !== '' && !isIP(host) && !isDNSName(host)) return undefined;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function checkHostPort(value: string): string | undefined {
  return parseHostPort(value)
    ? undefined
    : `must be host:port (e.g. 0.0.0.0:5443, [::]:5443, 127.0.0.1:5480), got ${JSON.stringify(value)}`;
}

function checkBackendURL(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `must be the registry's plain-HTTP address like http://127.0.0.1:5000, got ${JSON.stringify(value)}`;
  }
  if (url.protocol !== 'http:') {
    return `must use http:// (this proxy adds the TLS; the registry behind it speaks plain HTTP), got ${url.protocol}//`;
  }
  if (url.username || url.password) return 'must not carry credentials; clients send their own';
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    return `must be just http://host:port without a path, got ${JSON.stringify(value)}`;
  }
  return undefined;
}

/** A DNS name as it may appear in a dNSName SAN (a leading `*.` wildcard allowed). */
export function isDNSName(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  const labels = (value.startsWith('*.') ? value.slice(2) : value).split('.');
  // An all-digit last label is a mistyped IP address (10.0.0.256), not a name.
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return false;
  return labels.every((l) => /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(l));
}
