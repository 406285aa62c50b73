/**
 * The one typed configuration schema. Every key has exactly one default, here;
 * `config/default.yaml` documents every key and a test keeps the two in step.
 */
import { isIP } from 'node:net';
import { isDNSName, parseHostPort, parseNetwork } from '../net/address.js';
import { isAmbiguousPath } from '../net/ambiguous-path.js';
import { parseDNSServer } from '../acme/dns/wire.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * rsa: RSA (3072-bit CAs, 2048-bit leaves), what every client verifies. ecdsa: P-256,
 * whose signature (the server's work in every full handshake) costs a small fraction of
 * an RSA-2048 one.
 */
export type KeyType = 'rsa' | 'ecdsa';

export interface Config {
  /** Public HTTPS listener, `host:port`. */
  listen: string;
  /**
   * The plain-HTTP registry, `http://host:port`, or its replicas (sharing storage and
   * http.secret). YAML takes one URL or a list; RTP_BACKEND takes them comma-separated.
   */
  backend: string[];
  /**
   * Processes serving the public port (a cluster sharing certificates and session-ticket
   * keys); 0 = one per core. Default 1: beside a registry on the same host, a second
   * worker cost more CPU per request and served fewer (config/default.yaml has figures).
   */
  workers: number;
  /** Load balancers (addresses, CIDR networks) whose X-Forwarded-* and Forwarded headers pass on. */
  trustedProxies: string[];
  /** PROXY protocol from the TCP balancer in front (haproxy send-proxy, AWS NLB); off while trustedFrom is empty. */
  proxyProtocol: {
    /** Peers (addresses, CIDR networks) whose PROXY header is read; a header from anyone else is refused. */
    trustedFrom: string[];
    /** A trusted peer must send a header: a connection from it without one is refused. */
    required: boolean;
  };
  /** Path prefixes that reach the backend; empty = every path. The proxy's own endpoints always answer. */
  allowedPaths: string[];
  tls: {
    /** Where the CA, the server certificate and their keys live. */
    dir: string;
    /**
     * A read-only CA (ca.crt, ca.key; a rotation's ca-next.*, ca-previous.crt) from
     * outside, e.g. a Kubernetes Secret shared by every replica; the server certificate
     * is still issued into tls.dir. '' = the CA lives in tls.dir.
     */
    caDir: string;
    /**
     * The key of a CA made here (first start, `ca init`, `ca rotate`): rsa (RSA-3072,
     * and an RSA server certificate beside the ECDSA one for clients without ECDSA)
     * or ecdsa (P-256 only). Server certificates are ECDSA P-256 either way.
     */
    keyType: KeyType;
    /** Extra DNS names and IP addresses to put in the server certificate. */
    names: string[];
    /** Lifetime of the auto-issued server certificate, ms (YAML: a duration like 30d). */
    certLifetime: number;
    /** Lifetime of the auto-created CA, ms (YAML: a duration like 10y). */
    caLifetime: number;
    /** How often certificates, interface addresses and supplied files are re-checked, ms. */
    checkInterval: number;
    /** Warn when the CA has less than this left, ms. */
    caWarnBefore: number;
    /** A supplied certificate (full chain, PEM) instead of the auto-issued one; '' = auto. */
    cert: string;
    /** The supplied certificate's key (PEM). */
    key: string;
    /** Optional bundle of intermediates / CA for the supplied certificate. */
    ca: string;
    /** Warn when a supplied certificate has less than this left, ms. */
    certWarnBefore: number;
    /** Require client certificates signed by the proxy's CA (mutual TLS). */
    clientAuth: boolean;
    /** Strict-Transport-Security max-age on every response, ms (YAML: a duration like 365d); 0 = no header. */
    hstsMaxAge: number;
    /** Publicly trusted certificates by ACME (Let's Encrypt, ZeroSSL, step-ca…); off while directory is ''. */
    acme: ACMEConfig;
  };
  auth: {
    /** Logins at the proxy: an htpasswd file of bcrypt entries (`htpasswd -B`); '' = no logins asked. */
    htpasswd: string;
    /** none: every registry request needs a login; pull: anyone may GET/HEAD repository content. */
    anonymous: AnonymousAccess;
    /** The realm in the Basic challenge (clients show it; docker keys nothing on it). */
    realm: string;
  };
  admin: {
    /** Operational endpoints (`/healthz`, `/readyz`, `/metrics`), plain HTTP; empty string turns it off. */
    listen: string;
  };
  health: {
    /** How often the backend's /v2/ is probed, ms; load balancers read the cached verdict. */
    interval: number;
    /** A probe that takes longer counts as the backend being down, ms. */
    timeout: number;
    /** Count a registry that answers 200 to anonymous users as healthy (a deliberately open registry). */
    allowAnonymous: boolean;
    /** Path on the public port answering 200/503 with the verdict, for balancers that only see that port; '' = off. */
    publicPath: string;
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
    /**
     * Keep an idle connection to the backend for reuse this long (0 = never reuse). Below
     * the backend's own keep-alive timeout, so that it never closes one as we reuse it.
     */
    backendKeepAliveMs: number;
    /** On SIGTERM/SIGINT (and for the old workers of a SIGHUP reload): let requests in flight finish this long, then cut them. */
    drainMs: number;
  };
  log: {
    level: LogLevel;
  };
}

/** tls.acme: see config/default.yaml for what each key does. */
export interface ACMEConfig {
  /** The ACME directory URL, or letsencrypt, letsencrypt-staging, zerossl; '' = ACME off. */
  directory: string;
  email: string;
  /** The CA's terms of service; must be true to use ACME. */
  agreeToTerms: boolean;
  /** The names to order; [] = the DNS names in tls.names. */
  names: string[];
  /** External account binding (ZeroSSL, many enterprise CAs); both '' = none. */
  eab: { kid: string; hmacKey: string };
  /** PEM file the ACME server's own HTTPS is verified with (an internal CA); '' = the system's. */
  caBundle: string;
  /** Challenge types in order of preference; [] = every one this configuration can answer. */
  challenges: string[];
  /** Renew this long before expiry, ms; 0 = when a third of the certificate's life is left. */
  renewBefore: number;
  /** Where http-01 is answered (port 80 as the CA sees it), host:port; '' = no http-01. */
  http01Listen: string;
  dns: {
    rfc2136: { server: string; keyName: string; keyAlgorithm: string; keySecret: string };
    /** A hook run as `COMMAND present|cleanup FQDN VALUE`; '' = none. */
    command: string;
    /** DNS servers (host[:port]) that must serve the TXT record before validation; [] = the zone's NS set. */
    checkServers: string[];
  };
}

export const ANONYMOUS_ACCESS = ['none', 'pull'] as const;
export type AnonymousAccess = (typeof ANONYMOUS_ACCESS)[number];

export const ACME_CHALLENGES = ['tls-alpn-01', 'http-01', 'dns-01'] as const;

const DAY_MS = 24 * 60 * 60 * 1000;
const YEAR_MS = 365 * DAY_MS;

export const DEFAULTS: Config = {
  listen: '0.0.0.0:5443',
  backend: ['http://127.0.0.1:5000'],
  workers: 1,
  trustedProxies: [],
  proxyProtocol: { trustedFrom: [], required: false },
  allowedPaths: [],
  tls: {
    dir: 'data/tls',
    caDir: '',
    keyType: 'rsa',
    names: [],
    certLifetime: 30 * DAY_MS,
    caLifetime: 10 * YEAR_MS,
    checkInterval: 60_000,
    caWarnBefore: 180 * DAY_MS,
    cert: '',
    key: '',
    ca: '',
    certWarnBefore: 14 * DAY_MS,
    clientAuth: false,
    hstsMaxAge: 365 * DAY_MS,
    acme: {
      directory: '',
      email: '',
      agreeToTerms: false,
      names: [],
      eab: { kid: '', hmacKey: '' },
      caBundle: '',
      challenges: [],
      renewBefore: 0,
      http01Listen: '',
      dns: {
        rfc2136: { server: '', keyName: '', keyAlgorithm: 'hmac-sha256', keySecret: '' },
        command: '',
        checkServers: [],
      },
    },
  },
  auth: {
    htpasswd: '',
    anonymous: 'none',
    realm: 'registry-tls-proxy',
  },
  admin: {
    listen: '127.0.0.1:5480',
  },
  health: {
    interval: 10_000,
    timeout: 5_000,
    allowAnonymous: false,
    publicPath: '/_proxy/health',
  },
  timeouts: {
    clientIdleMs: 120_000,
    headersMs: 60_000,
    keepAliveMs: 30_000,
    backendIdleMs: 300_000,
    // Below the shortest keep-alive timeout common in front of registries (Node's 5 s;
    // nginx 75 s, load balancers 60 s); a backend's Keep-Alive: timeout=N lowers it.
    backendKeepAliveMs: 4_000,
    // Kubernetes sends SIGKILL 30 s after SIGTERM (terminationGracePeriodSeconds):
    // 25 s of draining leaves 5 s to log the cut requests and exit on our own terms.
    drainMs: 25_000,
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
  /** oneOrList: a string or a list of them in YAML, comma-separated in the environment. */
  kind: 'string' | 'int' | 'stringList' | 'oneOrList' | 'duration' | 'bool';
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

const duration = (minMs: number, maxMs: number): FieldSpec => ({
  kind: 'duration',
  check: ((v: number) =>
    v >= minMs && v <= maxMs
      ? undefined
      : `must be a duration from ${formatDuration(minMs)} to ${formatDuration(maxMs)}, got ${formatDuration(v)}`) as FieldSpec['check'],
});
const bool: FieldSpec = { kind: 'bool', check: () => undefined };

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: DAY_MS,
  y: YEAR_MS,
};

/**
 * Parses durations like 90d, 12h, 1h30m, 500ms, 10y into milliseconds.
 *
 * @example parseDuration('1h30m') // → 5_400_000
 */
export function parseDuration(text: string): number | undefined {
  const value = text.trim();
  if (value === '0') return 0; // "off" for keys that allow it (tls.hstsMaxAge)
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|y))+$/.test(value)) return undefined;
  let total = 0;
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|y)/g)) {
    total += Number(n) * (DURATION_UNITS[unit as string] ?? NaN);
  }
  return Math.round(total);
}

/** The largest whole unit that fits, for messages: 7776000000 → '90d'. */
export function formatDuration(ms: number): string {
  for (const unit of ['y', 'd', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS[unit] as number;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const path = (what: string) =>
  string((v) => (v === '' || v.trim() !== '' ? undefined : `must name a ${what} file or be empty`));

/** Every leaf of {@link Config} by its dotted path. */
export const FIELDS: Readonly<Record<string, FieldSpec>> = {
  listen: string((v) => checkHostPort(v)),
  backend: { kind: 'oneOrList', check: checkBackendURLs as FieldSpec['check'] },
  'tls.dir': string((v) => (v.trim() === '' ? 'must name a directory, e.g. data/tls' : undefined)),
  'tls.names': {
    kind: 'stringList',
    check: ((names: string[]) => {
      // A zone (fe80::1%eth0) cannot appear in a certificate.
      const bad = names.filter((n) => n.includes('%') || (!isIP(n) && !isDNSName(n)));
      return bad.length === 0
        ? undefined
        : `${listed(bad)} neither a DNS name nor an IP address; list names like registry.example.com or addresses like 10.0.0.5`;
    }) as FieldSpec['check'],
  },
  // Lifetimes as short as seconds exist for renewal tests; browsers cap leaves at 398 days.
  'tls.certLifetime': duration(10_000, 398 * DAY_MS),
  'tls.caLifetime': duration(60_000, 100 * YEAR_MS),
  'tls.checkInterval': duration(500, DAY_MS),
  'tls.caWarnBefore': duration(0, 100 * YEAR_MS),
  'tls.caDir': string((v) =>
    v === '' || v.trim() !== '' ? undefined : 'must name a directory or be empty',
  ),
  'tls.keyType': string((v) =>
    v === 'rsa' || v === 'ecdsa'
      ? undefined
      : `must be rsa (every client; an RSA certificate is served beside the ECDSA one) or ecdsa (P-256 only), got ${JSON.stringify(v)}`,
  ),
  'tls.cert': path('certificate'),
  'tls.key': path('key'),
  'tls.ca': path('CA bundle'),
  'tls.certWarnBefore': duration(0, 398 * DAY_MS),
  'tls.clientAuth': bool,
  'tls.hstsMaxAge': {
    kind: 'duration',
    check: ((v: number) =>
      v === 0 || (v >= 1000 && v <= 10 * YEAR_MS)
        ? undefined
        : `must be 0 (no header) or a duration from 1s to 10y, like 365d, got ${formatDuration(v)}`) as FieldSpec['check'],
  },
  ...ACME_FIELDS(),
  'auth.htpasswd': path('htpasswd'),
  'auth.anonymous': string((v) =>
    (ANONYMOUS_ACCESS as readonly string[]).includes(v)
      ? undefined
      : `must be ${ANONYMOUS_ACCESS.join(' or ')} (pull: anyone may pull, pushes need a login), got ${JSON.stringify(v)}`,
  ),
  'auth.realm': string((v) =>
    /^[\x20-\x7e]{1,100}$/.test(v) && !/["\\]/.test(v)
      ? undefined
      : `must be 1 to 100 printable ASCII characters without '"' or '\\', like registry-tls-proxy, got ${JSON.stringify(v)}`,
  ),
  'admin.listen': string((v) => (v === '' ? undefined : checkHostPort(v))),
  workers: int(0, 64),
  trustedProxies: { kind: 'stringList', check: checkTrustedProxies as FieldSpec['check'] },
  'proxyProtocol.trustedFrom': {
    kind: 'stringList',
    check: ((entries: readonly string[]) => {
      const bad = entries.filter((e) => parseNetwork(e) === undefined);
      return bad.length === 0
        ? undefined
        : `${listed(bad)} not an IP address or CIDR network; list the TCP balancers that send PROXY headers like 10.0.0.7, 10.0.0.0/24 or fd00::/64`;
    }) as FieldSpec['check'],
  },
  'proxyProtocol.required': bool,
  allowedPaths: { kind: 'stringList', check: checkAllowedPaths as FieldSpec['check'] },
  'health.interval': duration(1000, 3_600_000),
  'health.timeout': duration(100, 60_000),
  'health.allowAnonymous': bool,
  'health.publicPath': string((v) =>
    v === '' ||
    (/^\/[A-Za-z0-9._~\/-]*$/.test(v) && !/^\/v2(\/|$)/.test(v) && !/(^|\/)\.\.?(\/|$)/.test(v))
      ? undefined
      : `must be a path like /_proxy/health (not under /v2/, no dot segments) or '' to turn it off, got ${JSON.stringify(v)}`,
  ),
  'timeouts.clientIdleMs': int(1000, 86_400_000),
  'timeouts.headersMs': int(1000, 600_000),
  'timeouts.keepAliveMs': int(100, 3_600_000),
  'timeouts.backendIdleMs': int(1000, 86_400_000),
  'timeouts.backendKeepAliveMs': int(0, 3_600_000),
  'timeouts.drainMs': int(0, 86_400_000),
  'log.level': string((v) =>
    (LOG_LEVELS as readonly string[]).includes(v)
      ? undefined
      : `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`,
  ),
};

/**
 * tls.acme.* leaves. Checks that need more than one key (a challenge without what it
 * needs, dns-01's settings) are in acme/config.ts, which load.ts calls.
 */
function ACME_FIELDS(): Record<string, FieldSpec> {
  const list = (check: (v: string[]) => string | undefined): FieldSpec => ({
    kind: 'stringList',
    check: check as FieldSpec['check'],
  });
  return {
    'tls.acme.directory': string((v) =>
      v === '' ||
      ['letsencrypt', 'letsencrypt-staging', 'zerossl'].includes(v) ||
      /^https?:\/\/[^\s]+$/.test(v)
        ? undefined
        : `must be an ACME directory URL like https://acme.example.com/directory, or letsencrypt, letsencrypt-staging or zerossl, got ${JSON.stringify(v)}`,
    ),
    'tls.acme.email': string((v) =>
      v === '' || /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v)
        ? undefined
        : `must be an email address the CA writes to about expiry, like ops@example.com, got ${JSON.stringify(v)}`,
    ),
    'tls.acme.agreeToTerms': bool,
    'tls.acme.names': list((names) => {
      const bad = names.filter((n) => isIP(n) !== 0 || !isDNSName(n));
      return bad.length === 0
        ? undefined
        : `${listed(bad)} not a DNS name; a public CA issues names like registry.example.com (or *.example.com by dns-01), never IP addresses: leave IPs in tls.names, they keep our own CA's certificate`;
    }),
    'tls.acme.eab.kid': string(),
    'tls.acme.eab.hmacKey': string((v) =>
      v === '' || /^[A-Za-z0-9_-]+={0,2}$/.test(v)
        ? undefined
        : "must be the base64url key the CA gave you (letters, digits, - and _ only); copy it again from the CA's account page",
    ),
    'tls.acme.caBundle': path('CA bundle'),
    'tls.acme.challenges': list((v) => {
      const bad = v.filter((c) => !(ACME_CHALLENGES as readonly string[]).includes(c));
      return bad.length === 0
        ? undefined
        : `${listed(bad)} not a challenge type; choose from ${ACME_CHALLENGES.join(', ')}`;
    }),
    'tls.acme.renewBefore': duration(0, 398 * DAY_MS),
    'tls.acme.http01Listen': string((v) => (v === '' ? undefined : checkHostPort(v))),
    'tls.acme.dns.rfc2136.server': string(),
    'tls.acme.dns.rfc2136.keyName': string(),
    'tls.acme.dns.rfc2136.keyAlgorithm': string(),
    'tls.acme.dns.rfc2136.keySecret': string(),
    'tls.acme.dns.command': string(),
    'tls.acme.dns.checkServers': list((servers) => {
      const bad = servers.filter((v) => !parseDNSServer(v));
      return bad.length === 0
        ? undefined
        : `${listed(bad)} not a DNS server address: write host or host:port (53 by default), e.g. 127.0.0.1:53 or [2001:db8::53]:53`;
    }),
  };
}

function checkHostPort(value: string): string | undefined {
  return parseHostPort(value)
    ? undefined
    : `must be host:port (e.g. 0.0.0.0:5443, [::]:5443, 127.0.0.1:5480), got ${JSON.stringify(value)}`;
}

/** Every replica's problem, each named by its place in the list when there are several. */
function checkBackendURLs(values: string[]): string | undefined {
  if (values.length === 0) {
    return "must name the registry's plain-HTTP address like http://127.0.0.1:5000, or a list of its replicas";
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  values.forEach((value, i) => {
    const problem = checkBackendURL(value);
    const which = values.length === 1 ? '' : `entry ${i + 1} (${value}) `;
    if (problem) problems.push(`${which}${problem}`);
    else if (seen.has(new URL(value).origin)) {
      problems.push(`${which}is listed twice: name each replica once`);
    } else seen.add(new URL(value).origin);
  });
  return problems.length === 0 ? undefined : problems.join('; ');
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

/** Every allowedPaths entry a plain path prefix, or what to write instead. */
function checkAllowedPaths(prefixes: readonly string[]): string | undefined {
  const bad = prefixes.filter((p) => !p.startsWith('/') || isAmbiguousPath(p));
  if (bad.length === 0) return undefined;
  return (
    `${listed(bad)} not a plain path prefix; ` +
    "write prefixes like /v2/ or /v2/library/ (starting with '/', no '%', '\\', ';', '//' or dot segments)"
  );
}

/** Every trustedProxies entry an address or a network, or what to write instead. */
function checkTrustedProxies(entries: readonly string[]): string | undefined {
  const bad = entries.filter((e) => parseNetwork(e) === undefined);
  if (bad.length === 0) return undefined;
  return (
    `${listed(bad)} not an IP address or CIDR network; ` +
    'list the load balancers in front of this proxy like 10.0.0.7, 10.0.0.0/8, ::1 or fd00::/8'
  );
}

/** `"a", "b" are` / `"a" is`: the bad entries, quoted, for a message. */
function listed(bad: readonly string[]): string {
  return `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'}`;
}
