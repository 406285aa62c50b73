import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { changedKeys, loadConfig } from './load.js';
import { DEFAULTS, FIELDS, formatDuration, parseDuration, type Config } from './schema.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const YEAR_MS = 365 * DAY_MS;

const DEFAULT_YAML = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));

const tmp = mkdtempSync(join(tmpdir(), 'rtp-config-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let fileCount = 0;
function yamlFile(text: string): string {
  const file = join(tmp, `config-${++fileCount}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** The problems loadConfig reports, failing the test when it does not throw a ConfigError. */
function problemsOf(load: () => unknown): readonly ConfigProblem[] {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('loadConfig accepted a configuration it should have rejected');
}

function getPath(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], obj);
}

function withValue(path: string, value: unknown): Config {
  const config = structuredClone(DEFAULTS);
  const keys = path.split('.');
  const last = keys.pop() as string;
  const parent = keys.reduce<Record<string, unknown>>(
    (o, k) => o[k] as Record<string, unknown>,
    config as unknown as Record<string, unknown>,
  );
  parent[last] = value;
  return config;
}

describe('loadConfig defaults', () => {
  it('loads DEFAULTS with no file and no RTP_ variables', () => {
    expect(loadConfig({ env: { PATH: '/usr/bin', HOME: '/root' } })).toEqual(DEFAULTS);
  });

  it('loads config/default.yaml to exactly DEFAULTS', () => {
    expect(loadConfig({ file: DEFAULT_YAML, env: {} })).toEqual(DEFAULTS);
  });

  // Parsed independently of loadConfig, which would fill a missing key from DEFAULTS.
  const documented: unknown = parse(readFileSync(DEFAULT_YAML, 'utf8'));
  it.each(Object.keys(FIELDS))('config/default.yaml documents %s with its default', (path) => {
    const keys = path.split('.');
    const leaf = keys.pop() as string;
    const section = keys.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], documented);
    expect(section).toBeTypeOf('object');
    expect(Object.keys(section as object)).toContain(leaf);
    // Durations are documented as YAML strings like 30d and held in milliseconds.
    const value = getPath(documented, path);
    const kind = FIELDS[path]?.kind;
    expect(
      kind === 'duration'
        ? parseDuration(String(value))
        : kind === 'oneOrList' && typeof value === 'string'
          ? [value]
          : value,
    ).toEqual(getPath(DEFAULTS, path));
  });
});

describe('environment overrides by path', () => {
  it.each<[string, string, string, unknown]>([
    ['RTP_LISTEN', '127.0.0.1:6443', 'listen', '127.0.0.1:6443'],
    ['RTP_BACKEND', 'http://registry:5000', 'backend', ['http://registry:5000']],
    [
      'RTP_BACKEND',
      'http://10.1.0.1:5000, http://10.1.0.2:5000',
      'backend',
      ['http://10.1.0.1:5000', 'http://10.1.0.2:5000'],
    ],
    ['RTP_TLS_DIR', '/var/lib/rtp/tls', 'tls.dir', '/var/lib/rtp/tls'],
    ['RTP_TLS_NAMES', 'a.example,10.0.0.5', 'tls.names', ['a.example', '10.0.0.5']],
    ['RTP_TLS_NAMES', ' a.example , ,2001:db8::1 ', 'tls.names', ['a.example', '2001:db8::1']],
    ['RTP_TLS_NAMES', '', 'tls.names', []],
    ['RTP_TLS_CERT_LIFETIME', '45d', 'tls.certLifetime', 45 * DAY_MS],
    ['RTP_TLS_CA_LIFETIME', '20y', 'tls.caLifetime', 20 * YEAR_MS],
    ['RTP_TLS_CHECK_INTERVAL', '1h30m', 'tls.checkInterval', 5_400_000],
    ['RTP_TLS_CLIENT_AUTH', 'true', 'tls.clientAuth', true],
    ['RTP_TLS_CLIENT_AUTH', 'false', 'tls.clientAuth', false],
    ['RTP_TIMEOUTS_CLIENT_IDLE_MS', '5000', 'timeouts.clientIdleMs', 5000],
    ['RTP_TIMEOUTS_BACKEND_IDLE_MS', '600000', 'timeouts.backendIdleMs', 600_000],
    ['RTP_TIMEOUTS_BACKEND_KEEP_ALIVE_MS', '0', 'timeouts.backendKeepAliveMs', 0],
    ['RTP_TIMEOUTS_DRAIN_MS', '1500', 'timeouts.drainMs', 1500],
    ['RTP_TIMEOUTS_DRAINMS', '0', 'timeouts.drainMs', 0],
    ['RTP_ADMIN_LISTEN', '', 'admin.listen', ''],
    ['RTP_ADMIN_LISTEN', '[::1]:9000', 'admin.listen', '[::1]:9000'],
    ['RTP_LOG_LEVEL', 'debug', 'log.level', 'debug'],
  ])('%s=%j sets %s', (name, value, path, expected) => {
    const config = loadConfig({ env: { [name]: value } });
    expect(getPath(config, path)).toEqual(expected);
    expect(config).toEqual(withValue(path, expected));
  });

  it('an environment override wins over the file', () => {
    const file = yamlFile('listen: 0.0.0.0:7443\ntimeouts:\n  clientIdleMs: 9000\n');
    const config = loadConfig({ file, env: { RTP_LISTEN: '127.0.0.1:8443' } });
    expect(config.listen).toBe('127.0.0.1:8443');
    expect(config.timeouts.clientIdleMs).toBe(9000);
  });

  it('does not change DEFAULTS', () => {
    const before = structuredClone(DEFAULTS);
    loadConfig({ env: { RTP_TLS_NAMES: 'a.example', RTP_LISTEN: '127.0.0.1:6443' } });
    expect(DEFAULTS).toEqual(before);
  });

  it.each<[Record<string, string>, string, RegExp]>([
    [{ RTP_FOO: '1' }, '$RTP_FOO', /unknown environment override.*RTP_LISTEN/],
    [{ RTP_BACKND: 'http://127.0.0.1:5000' }, '$RTP_BACKND', /; did you mean RTP_BACKEND\?$/],
    [
      { RTP_BACKEND: 'http://127.0.0.1:5443' },
      'backend',
      /is this proxy's own port \(listen: 0\.0\.0\.0:5443\)/,
    ],
    [
      { RTP_LISTEN: '127.0.0.1:6000', RTP_BACKEND: 'http://localhost:6000' },
      'backend',
      /every request would come back to the proxy; point backend at/,
    ],
    [{ RTP_TLS_NAME: 'a.example' }, '$RTP_TLS_NAME', /; did you mean RTP_TLS_NAMES\?$/],
    [{ RTP_TIMEOUTS_CLIENT_IDLE_MS: '5s' }, 'timeouts.clientIdleMs', /whole number/],
    [{ RTP_TIMEOUTS_CLIENT_IDLE_MS: '10' }, 'timeouts.clientIdleMs', /from 1000 to/],
    [{ RTP_TIMEOUTS_DRAIN_MS: '-1' }, 'timeouts.drainMs', /from 0 to 86400000, got -1/],
    [{ RTP_TLS_NAMES: 'a.example,not a name' }, 'tls.names', /"not a name"/],
    [{ RTP_LOG_LEVEL: 'verbose' }, 'log.level', /must be one of/],
    [{ RTP_TLS_CERT_LIFETIME: '30' }, 'tls.certLifetime', /must be a duration like 90d/],
    [{ RTP_TLS_CLIENT_AUTH: 'maybe' }, 'tls.clientAuth', /must be true or false/],
  ])('%j is a problem at %s', (env, path, message) => {
    const problems = problemsOf(() => loadConfig({ env }));
    expect(problems).toEqual([{ path, message: expect.stringMatching(message) }]);
  });

  it('names the variable that set a bad value, beside the key the docs use', () => {
    const problems = problemsOf(() =>
      loadConfig({ env: { RTP_LISTEN: 'no-such-address', RTP_TLS_KEYTYPE: 'dsa' } }),
    );
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      [
        'listen',
        expect.stringMatching(/^must be host:port .*got "no-such-address" \(set by RTP_LISTEN\)$/),
      ],
      ['tls.keyType', expect.stringMatching(/got "dsa" \(set by RTP_TLS_KEYTYPE\)$/)],
    ]);
  });
});

describe('validation reports every problem with its path', () => {
  const BAD = [
    'listen: nope',
    'backend: not a url',
    'tls:',
    '  names: [ok.example, "bad name!"]',
    '  nmaes: [registry.example]',
    'timeouts:',
    '  clientIdleMs: 5',
    'log:',
    '  level: loud',
    '',
  ].join('\n');

  it('lists every bad value and the unknown key, each by path', () => {
    const file = yamlFile(BAD);
    let error: unknown;
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message, code } = error as ConfigError;
    expect(code).toBe('CONFIG_INVALID');
    expect(problems.map((p) => p.path).sort()).toEqual(
      ['backend', 'listen', 'log.level', 'timeouts.clientIdleMs', 'tls.names', 'tls.nmaes'].sort(),
    );
    for (const p of problems) expect(message).toContain(`${p.path}: ${p.message}`);
    expect(message).toContain(file);
    expect(message).toContain('6 problems');
  });

  it.each<[string, string, RegExp]>([
    ['listen', 'nope', /host:port/],
    ['backend', 'not a url', /plain-HTTP address like http:\/\//],
    ['tls.names', '"bad name!"', /"bad name!" is neither a DNS name nor an IP address/],
    ['timeouts.clientIdleMs', '5', /from 1000 to 86400000, got 5/],
    ['log.level', 'loud', /must be one of .*got "loud"/],
  ])('names %s (%s) with what is wrong', (path, _value, message) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(BAD), env: {} }));
    expect(problems.find((p) => p.path === path)?.message).toMatch(message);
  });

  it.each<[string, string, string]>([
    ['a misspelt key', 'tls:\n  nmaes: [registry.example]\n', 'tls.names'],
    ['a key in the wrong case', 'tls:\n  Names: [registry.example]\n', 'tls.names'],
    ['a misspelt top-level key', 'lisen: 0.0.0.0:5443\n', 'listen'],
  ])('hints "did you mean" for %s', (_what, text, suggestion) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(text), env: {} }));
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).toMatch(/^unknown key/);
    expect(problems[0]?.message).toContain(`did you mean ${suggestion}?`);
  });

  it('lists the known keys when nothing is close', () => {
    const problems = problemsOf(() =>
      loadConfig({ file: yamlFile('storage:\n  filesystem: /var/lib/registry\n'), env: {} }),
    );
    expect(problems).toEqual([
      { path: 'storage', message: expect.stringMatching(/^unknown key; known keys are listen, /) },
    ]);
  });

  it.each<[string, string, string, RegExp]>([
    [
      'an https backend',
      'backend: https://127.0.0.1:5000\n',
      'backend',
      /speaks plain HTTP.*got https:/,
    ],
    ['a backend with a path', 'backend: http://127.0.0.1:5000/v2/\n', 'backend', /without a path/],
    [
      'replicas, naming every bad one by its place',
      'backend: [http://10.0.0.1:5000, https://10.0.0.2:5000, http://10.0.0.3:5000/v2/]\n',
      'backend',
      /^entry 2 \(https:\/\/10\.0\.0\.2:5000\) must use http:\/\/.*; entry 3 \(http:\/\/10\.0\.0\.3:5000\/v2\/\) must be just http:\/\/host:port/,
    ],
    [
      'a replica listed twice',
      'backend: [http://10.0.0.1:5000, "http://10.0.0.1:5000/"]\n',
      'backend',
      /entry 2 \(http:\/\/10\.0\.0\.1:5000\/\) is listed twice/,
    ],
    ['no backend at all', 'backend: []\n', 'backend', /must name the registry/],
    ['a mapping as backend', 'backend: { url: x }\n', 'backend', /string or a list of strings/],
    ['a scalar where a section belongs', 'tls: data/tls\n', 'tls', /must be a mapping/],
    ['a string where a list belongs', 'tls:\n  names: a.example\n', 'tls.names', /list of strings/],
    ['a quoted number', 'timeouts:\n  headersMs: "5000"\n', 'timeouts.headersMs', /whole number/],
    ['a list at the top', '- listen\n- backend\n', '(top)', /must be a mapping/],
    [
      'an IPv6 address with a zone, which no certificate can carry',
      'tls:\n  names: ["fe80::1%eth0"]\n',
      'tls.names',
      /fe80::1%eth0/,
    ],
  ])('rejects %s', (_what, text, path, message) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(text), env: {} }));
    expect(problems).toEqual([{ path, message: expect.stringMatching(message) }]);
  });

  it.each<[string, string]>([
    ['0.0.0.0:5443', '0.0.0.0:5443'],
    ['[::]:5443', '[::]:5443'],
    // parseHostPort reads an empty host as 0.0.0.0: the same listener.
    [':5443', '0.0.0.0:5443'],
  ])('rejects admin.listen %s when listen is %s', (admin, listen) => {
    const problems = problemsOf(() =>
      loadConfig({ env: { RTP_LISTEN: listen, RTP_ADMIN_LISTEN: admin } }),
    );
    expect(problems).toEqual([
      { path: 'admin.listen', message: expect.stringMatching(/must differ from listen/) },
    ]);
  });

  it('accepts admin.listen on another port, or turned off', () => {
    expect(loadConfig({ env: { RTP_ADMIN_LISTEN: '127.0.0.1:5444' } }).admin.listen).toBe(
      '127.0.0.1:5444',
    );
    expect(
      loadConfig({ env: { RTP_ADMIN_LISTEN: '', RTP_LISTEN: '0.0.0.0:5443' } }).admin.listen,
    ).toBe('');
  });

  it('combines problems from the file and the environment', () => {
    const file = yamlFile('listen: nope\n');
    const problems = problemsOf(() => loadConfig({ file, env: { RTP_FOO: 'x' } }));
    expect(problems.map((p) => p.path).sort()).toEqual(['$RTP_FOO', 'listen']);
  });
});

describe('durations', () => {
  it.each<[string, string, number]>([
    ['tls.checkInterval', '1h30m', 5_400_000],
    ['tls.certLifetime', '30d', 30 * DAY_MS],
    ['tls.caLifetime', '10y', 10 * YEAR_MS],
    ['tls.checkInterval', '12h', 12 * 3_600_000],
    ['tls.checkInterval', '45s', 45_000],
    ['tls.checkInterval', '500ms', 500],
    ['tls.caWarnBefore', '0s', 0],
    ['tls.certWarnBefore', '1.5d', 1.5 * DAY_MS],
  ])('%s: %s in the file is %i ms', (path, text, ms) => {
    const [section, key] = path.split('.');
    const config = loadConfig({ file: yamlFile(`${section}:\n  ${key}: ${text}\n`), env: {} });
    expect(getPath(config, path)).toBe(ms);
    expect(config).toEqual(withValue(path, ms));
    expect(parseDuration(text)).toBe(ms);
  });

  it.each<[string, number]>([
    ['90d', 90 * DAY_MS],
    ['10y', 10 * YEAR_MS],
    ['12h', 12 * 3_600_000],
    ['45s', 45_000],
    ['500ms', 500],
    ['90m', 90 * 60_000],
  ])('formats %s back from %i ms', (text, ms) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each<[string, string, string, RegExp]>([
    [
      'a duration with an unknown unit',
      'tls:\n  certLifetime: 3 weeks\n',
      'tls.certLifetime',
      /^must be a duration like 90d, 12h, 30m, 45s or 500ms, got string "3 weeks"$/,
    ],
    [
      'a bare number',
      'tls:\n  caLifetime: 3650\n',
      'tls.caLifetime',
      /^must be a duration like 90d, .*got number 3650$/,
    ],
    [
      'a negative duration',
      'tls:\n  checkInterval: -5m\n',
      'tls.checkInterval',
      /^must be a duration like 90d, /,
    ],
    [
      'a duration below its range',
      'tls:\n  certLifetime: 1s\n',
      'tls.certLifetime',
      /^must be a duration from 10s to 398d, got 1s$/,
    ],
    [
      'a duration above its range',
      'tls:\n  certLifetime: 400d\n',
      'tls.certLifetime',
      /^must be a duration from 10s to 398d, got 400d$/,
    ],
    [
      'a string where true or false belongs',
      'tls:\n  clientAuth: "yes"\n',
      'tls.clientAuth',
      /^must be true or false, got string "yes"$/,
    ],
  ])('rejects %s, by path', (_what, text, path, message) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(text), env: {} }));
    expect(problems).toEqual([{ path, message: expect.stringMatching(message) }]);
  });
});

describe('tls consistency', () => {
  it.each<[string, string, string, RegExp]>([
    [
      'tls.cert without tls.key',
      'tls:\n  cert: /etc/rtp/server.crt\n',
      'tls.key',
      /tls\.cert and tls\.key go together/,
    ],
    [
      'tls.key without tls.cert',
      'tls:\n  key: /etc/rtp/server.key\n',
      'tls.cert',
      /tls\.cert and tls\.key go together/,
    ],
    [
      'tls.ca without tls.cert and tls.key',
      'tls:\n  ca: /etc/rtp/ca.crt\n',
      'tls.ca',
      /only used with tls\.cert/,
    ],
    [
      'tls.caDir beside a supplied certificate',
      'tls:\n  caDir: /etc/rtp/ca\n  cert: /etc/rtp/server.crt\n  key: /etc/rtp/server.key\n',
      'tls.caDir',
      /tls\.cert supplies one: set one of them/,
    ],
    [
      'a certificate lifetime longer than the CA lifetime',
      'tls:\n  certLifetime: 300d\n  caLifetime: 200d\n',
      'tls.certLifetime',
      /must be shorter than tls\.caLifetime/,
    ],
    [
      'a certificate lifetime equal to the CA lifetime',
      'tls:\n  certLifetime: 90d\n  caLifetime: 90d\n',
      'tls.certLifetime',
      /must be shorter than tls\.caLifetime/,
    ],
  ])('rejects %s', (_what, text, path, message) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(text), env: {} }));
    expect(problems).toEqual([{ path, message: expect.stringMatching(message) }]);
  });

  it('accepts a supplied certificate, key and CA bundle together', () => {
    const config = loadConfig({
      file: yamlFile('tls:\n  cert: server.crt\n  key: server.key\n  ca: chain.pem\n'),
      env: {},
    });
    expect(config.tls).toMatchObject({ cert: 'server.crt', key: 'server.key', ca: 'chain.pem' });
  });

  it('accepts a certificate lifetime just shorter than the CA lifetime', () => {
    const config = loadConfig({
      file: yamlFile('tls:\n  certLifetime: 89d\n  caLifetime: 90d\n'),
      env: {},
    });
    expect(config.tls.certLifetime).toBe(89 * DAY_MS);
    expect(config.tls.caLifetime).toBe(90 * DAY_MS);
  });
});

describe('reading the file', () => {
  it('reports a missing --config file, naming it', () => {
    const file = join(tmp, 'does-not-exist.yaml');
    let error: unknown;
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems).toEqual([{ path: file, message: expect.stringMatching(/file not found/) }]);
    expect(message).toContain(file);
    expect(message).toContain('--config');
  });

  it.each<[string, string, number]>([
    [
      'an unclosed flow list',
      'listen: 0.0.0.0:5443\ntls:\n  names: [a.example, b\nlog:\n  level: info\n',
      4,
    ],
    [
      'a duplicate key',
      'listen: 0.0.0.0:5443\nbackend: http://127.0.0.1:5000\nlisten: 0.0.0.0:6443\n',
      3,
    ],
    ['a tab as indentation', 'listen: 0.0.0.0:5443\ntls:\n\tdir: data/tls\n', 3],
    ['an unclosed quote', 'listen: 0.0.0.0:5443\nbackend: "http://127.0.0.1:5000\n', 2],
  ])('reports a YAML syntax error (%s) with its line', (_what, text, line) => {
    const file = yamlFile(text);
    const problems = problemsOf(() => loadConfig({ file, env: {} }));
    expect(problems.length).toBeGreaterThan(0);
    const first = problems[0] as ConfigProblem;
    expect(first.path).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+$`));
    // The line the parser points at; an unclosed construct is reported where it ends.
    expect(Number(first.path.slice(file.length + 1))).toBeGreaterThanOrEqual(line);
    expect(Number(first.path.slice(file.length + 1))).toBeLessThanOrEqual(line + 1);
  });

  it('treats an empty file as all defaults', () => {
    expect(loadConfig({ file: yamlFile(''), env: {} })).toEqual(DEFAULTS);
  });
});

describe('the returned config is deep-frozen', () => {
  const config = loadConfig({ env: { RTP_TLS_NAMES: 'a.example' } });

  it.each<[string, () => void]>([
    ['a top-level key', () => Object.assign(config, { listen: '0.0.0.0:1' })],
    ['a nested key', () => Object.assign(config.tls, { dir: '/tmp' })],
    ['a list', () => (config.tls.names as string[]).push('b.example')],
    ['a list element', () => Object.assign(config.tls.names, { 0: 'b.example' })],
    ['a new section key', () => Object.assign(config.timeouts, { newMs: 1 })],
  ])('refuses a change to %s', (_what, change) => {
    expect(change).toThrow(TypeError);
  });

  it('keeps its values after the attempts', () => {
    expect(config).toEqual(withValue('tls.names', ['a.example']));
    expect(Object.isFrozen(config.log)).toBe(true);
    expect(Object.isFrozen(config.admin)).toBe(true);
  });
});

describe('trustedProxies, allowedPaths, tls.hstsMaxAge', () => {
  it.each<[string, string, string, unknown]>([
    [
      'RTP_TRUSTED_PROXIES',
      '10.0.0.7, 10.0.0.0/8,fd00::/8',
      'trustedProxies',
      ['10.0.0.7', '10.0.0.0/8', 'fd00::/8'],
    ],
    ['RTP_TRUSTEDPROXIES', '::1', 'trustedProxies', ['::1']],
    ['RTP_ALLOWED_PATHS', '/v2/,/token', 'allowedPaths', ['/v2/', '/token']],
    ['RTP_TLS_HSTS_MAX_AGE', '180d', 'tls.hstsMaxAge', 180 * DAY_MS],
    ['RTP_TLS_HSTS_MAX_AGE', '0', 'tls.hstsMaxAge', 0],
  ])('%s=%j sets %s', (name, value, path, expected) => {
    expect(loadConfig({ env: { [name]: value } })).toEqual(withValue(path, expected));
  });

  it.each<[string, string, unknown]>([
    [
      'trustedProxies: [127.0.0.1, 10.0.0.0/8, "::ffff:10.0.0.0/104", 0.0.0.0/0]\n',
      'trustedProxies',
      ['127.0.0.1', '10.0.0.0/8', '::ffff:10.0.0.0/104', '0.0.0.0/0'],
    ],
    ['allowedPaths: [/v2/, /v2/library]\n', 'allowedPaths', ['/v2/', '/v2/library']],
    ['tls:\n  hstsMaxAge: 0\n', 'tls.hstsMaxAge', 0],
    ['tls:\n  hstsMaxAge: 2y\n', 'tls.hstsMaxAge', 2 * YEAR_MS],
  ])('the file %j sets %s', (text, path, expected) => {
    expect(loadConfig({ file: yamlFile(text), env: {} })).toEqual(withValue(path, expected));
  });

  it.each<[string, string, RegExp]>([
    [
      'trustedProxies: [10.0.0.0/33]\n',
      'trustedProxies',
      /^"10\.0\.0\.0\/33" is not an IP address or CIDR network; list the load balancers .* like 10\.0\.0\.7, 10\.0\.0\.0\/8/,
    ],
    [
      'trustedProxies: [lb.example, 10.0.0.1/8/8]\n',
      'trustedProxies',
      /^"lb\.example", "10\.0\.0\.1\/8\/8" are not/,
    ],
    ['trustedProxies: ["fd00::/129"]\n', 'trustedProxies', /"fd00::\/129" is not/],
    ['trustedProxies: [10.0.0.0/-1]\n', 'trustedProxies', /is not an IP address/],
    ['trustedProxies: ["fe80::1%eth0"]\n', 'trustedProxies', /is not an IP address/],
    ['trustedProxies: 10.0.0.1\n', 'trustedProxies', /must be a list of strings/],
    [
      'allowedPaths: [v2/]\n',
      'allowedPaths',
      /^"v2\/" is not a plain path prefix; write prefixes like \/v2\//,
    ],
    [
      'allowedPaths: [/v2/../admin, "/v2/%2e"]\n',
      'allowedPaths',
      /^"\/v2\/\.\.\/admin", "\/v2\/%2e" are not/,
    ],
    ['allowedPaths: ["//v2/"]\n', 'allowedPaths', /is not a plain path prefix/],
    [
      'tls:\n  hstsMaxAge: 500ms\n',
      'tls.hstsMaxAge',
      /^must be 0 \(no header\) or a duration from 1s to 10y, like 365d, got 500ms$/,
    ],
    ['tls:\n  hstsMaxAge: 11y\n', 'tls.hstsMaxAge', /^must be 0 \(no header\)/],
    ['tls:\n  hstsMaxAge: 31536000\n', 'tls.hstsMaxAge', /^must be a duration like 90d/],
  ])('the file %j is a problem at %s', (text, path, message) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(text), env: {} }));
    expect(problems).toEqual([{ path, message: expect.stringMatching(message) }]);
  });
});

describe('proxyProtocol', () => {
  it('reads trustedFrom and required from the file and from RTP_PROXY_PROTOCOL_*', () => {
    const file = yamlFile(
      'proxyProtocol:\n  trustedFrom: [10.0.0.7, fd00::/64]\n  required: true\n',
    );
    expect(loadConfig({ file, env: {} }).proxyProtocol).toEqual({
      trustedFrom: ['10.0.0.7', 'fd00::/64'],
      required: true,
    });
    const env = {
      RTP_PROXY_PROTOCOL_TRUSTED_FROM: '10.0.0.0/24',
      RTP_PROXY_PROTOCOL_REQUIRED: 'true',
    };
    expect(loadConfig({ env }).proxyProtocol).toEqual({
      trustedFrom: ['10.0.0.0/24'],
      required: true,
    });
  });

  it.each<[string, string, RegExp]>([
    [
      'proxyProtocol:\n  trustedFrom: [lb.example]\n',
      'proxyProtocol.trustedFrom',
      /^"lb\.example" is not an IP address or CIDR network; list the TCP balancers/,
    ],
    [
      'proxyProtocol:\n  required: true\n',
      'proxyProtocol.required',
      /^needs proxyProtocol\.trustedFrom/,
    ],
    ['proxyProtocol:\n  trustedFrom: 10.0.0.7\n', 'proxyProtocol.trustedFrom', /must be a list/],
  ])('the file %j is a problem at %s', (text, path, message) => {
    const problems = problemsOf(() => loadConfig({ file: yamlFile(text), env: {} }));
    expect(problems).toEqual([{ path, message: expect.stringMatching(message) }]);
  });

  it('says "did you mean" for a misspelt key', () => {
    const problems = problemsOf(() =>
      loadConfig({ file: yamlFile('proxyProtocol:\n  trustedFrm: [10.0.0.7]\n'), env: {} }),
    );
    expect(problems[0]?.message).toMatch(/proxyProtocol\.trustedFrom/);
  });
});

describe('changedKeys', () => {
  it('names the keys that differ, by path, and nothing else', () => {
    const before = loadConfig({ env: {} });
    const after = loadConfig({
      env: { RTP_BACKEND: 'http://10.0.0.2:5000', RTP_TLS_NAMES: 'a.example', RTP_TLS_KEY: '' },
    });
    expect(changedKeys(before, after)).toEqual(['backend', 'tls.names']);
    expect(changedKeys(before, before)).toEqual([]);
  });
});
