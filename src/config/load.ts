/**
 * Loading: YAML file → environment overrides (`RTP_` + the key's path) →
 * validation that reports every problem at once → a deep-frozen {@link Config}.
 * The shape follows distribution's configuration package
 * (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY overrides storage.filesystem.rootdirectory).
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { acmeConfigProblems } from '../acme/config.js';
import { describeProblems, readHtpasswd } from '../auth/htpasswd-file.js';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { parseHostPort } from '../net/address.js';
import {
  DEFAULTS,
  FIELDS,
  formatDuration,
  parseDuration,
  type Config,
  type FieldSpec,
} from './schema.js';
import { backendIsListen } from '../net/own-address.js';

export const ENV_PREFIX = 'RTP_';

export interface LoadOptions {
  /** A YAML file; without one, the defaults plus environment overrides apply. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

/** Loads, overrides, validates and freezes. Throws {@link ConfigError} listing every problem. */
export function loadConfig({ file, env = process.env }: LoadOptions = {}): Config {
  const problems: ConfigProblem[] = [];
  let raw: unknown = {};
  if (file !== undefined) {
    raw = readYAML(file, problems);
  }
  const values = new Map<string, unknown>();
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({
      path: '(top)',
      message: 'must be a mapping of keys like listen: and backend:',
    });
  } else {
    flatten(raw as Record<string, unknown>, '', values, problems);
  }
  const setByEnv = applyEnv(env, values, problems);

  const config = structuredClone(DEFAULTS);
  for (const [path, value] of values) {
    const spec = FIELDS[path];
    if (!spec) continue; // reported by flatten/applyEnv
    const typed = checkType(spec, value);
    if (typeof typed === 'string') {
      problems.push({ path, message: typed });
      continue;
    }
    setPath(config, path, typed.value);
  }
  for (const [path, spec] of Object.entries(FIELDS)) {
    if (problems.some((p) => p.path === path)) continue;
    const problem = spec.check(getPath(config, path) as never);
    if (problem) problems.push({ path, message: problem });
  }
  if (config.admin.listen !== '' && sameListener(config.admin.listen, config.listen)) {
    problems.push({
      path: 'admin.listen',
      message: `must differ from listen (${config.listen}): admin endpoints stay off the public port`,
    });
  }
  if (problems.every((p) => p.path !== 'backend' && p.path !== 'listen')) {
    for (const backend of config.backend.filter((b) => backendIsListen(b, config.listen))) {
      problems.push({
        path: 'backend',
        message: `${backend} is this proxy's own port (listen: ${config.listen}): every request would come back to the proxy; point backend at the registry's plain-HTTP address, e.g. http://127.0.0.1:5000, or move listen to another port`,
      });
    }
  }
  if ((config.tls.cert === '') !== (config.tls.key === '')) {
    problems.push({
      path: config.tls.cert === '' ? 'tls.cert' : 'tls.key',
      message:
        'tls.cert and tls.key go together: set both to serve your own certificate, or neither',
    });
  } else if (config.tls.ca !== '' && config.tls.cert === '') {
    problems.push({
      path: 'tls.ca',
      message: 'only used with tls.cert and tls.key; remove it or set them',
    });
  }
  if (config.tls.caDir !== '' && config.tls.cert !== '') {
    problems.push({
      path: 'tls.caDir',
      message:
        'is the CA that issues the served certificate, and tls.cert supplies one: set one of them',
    });
  }
  if (config.tls.certLifetime >= config.tls.caLifetime) {
    problems.push({ path: 'tls.certLifetime', message: 'must be shorter than tls.caLifetime' });
  }
  if (config.proxyProtocol.required && config.proxyProtocol.trustedFrom.length === 0) {
    problems.push({
      path: 'proxyProtocol.required',
      message:
        'needs proxyProtocol.trustedFrom: list the balancers that send PROXY headers (only their headers are read)',
    });
  }
  if (config.health.timeout >= config.health.interval) {
    problems.push({
      path: 'health.timeout',
      message: `must be shorter than health.interval (${formatDuration(config.health.interval)}): one probe at a time`,
    });
  }
  if (!problems.some((p) => p.path.startsWith('auth.'))) problems.push(...authProblems(config));
  // A key already reported (a bad challenge name) is not reported twice.
  for (const problem of acmeConfigProblems(config)) {
    if (!problems.some((p) => p.path === problem.path)) problems.push(problem);
  }
  if (problems.length > 0) {
    // The key is what the docs name; the variable is what the user typed: say both.
    const named = problems.map((p) => {
      const variable = setByEnv.get(p.path);
      return variable ? { ...p, message: `${p.message} (set by ${variable})` } : p;
    });
    throw new ConfigError(named, file ?? '(defaults and environment)');
  }
  return deepFreeze(config);
}

/**
 * auth.*: pulls opened only where logins exist; the htpasswd file readable, bcrypt
 * only, each bad line by number (a cluster's primary checks it before forking).
 */
function authProblems(config: Config): ConfigProblem[] {
  const { htpasswd, anonymous } = config.auth;
  if (htpasswd === '') {
    return anonymous === 'none'
      ? []
      : [
          {
            path: 'auth.anonymous',
            message:
              'only means something with auth.htpasswd (without it, everyone may do everything the registry allows)',
          },
        ];
  }
  const parsed = readHtpasswd(htpasswd);
  return describeProblems(htpasswd, parsed.problems).map((message) => ({
    path: 'auth.htpasswd',
    message,
  }));
}

/** Whether two host:port values would contend for one socket (a wildcard host overlaps every host). */
function sameListener(a: string, b: string): boolean {
  const x = parseHostPort(a);
  const y = parseHostPort(b);
  if (!x || !y || x.port !== y.port || x.port === 0) return false;
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  return x.host === y.host || wildcard(x.host) || wildcard(y.host);
}

function readYAML(file: string, problems: ConfigProblem[]): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.push({
      path: file,
      message:
        code === 'ENOENT'
          ? 'file not found; pass an existing file with --config, e.g. config/default.yaml'
          : `cannot read it (${code ?? String(err)})`,
    });
    return {};
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      problems.push({
        path: `${file}:${e.linePos?.[0]?.line ?? '?'}`,
        message: e.message.split('\n')[0] ?? e.message,
      });
    }
    return {};
  }
  return doc.toJS();
}

/** Walks the YAML tree into dotted leaf paths; unknown keys are problems. */
function flatten(
  node: Record<string, unknown>,
  prefix: string,
  out: Map<string, unknown>,
  problems: ConfigProblem[],
): void {
  for (const [key, value] of Object.entries(node)) {
    const path = prefix + key;
    if (FIELDS[path]) {
      out.set(path, value);
    } else if (Object.keys(FIELDS).some((f) => f.startsWith(path + '.'))) {
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        flatten(value as Record<string, unknown>, path + '.', out, problems);
      } else if (value !== null) {
        problems.push({ path, message: 'must be a mapping (a section with keys below it)' });
      }
    } else {
      problems.push({ path, message: `unknown key${suggest(path)}` });
    }
  }
}

/** `RTP_TLS_DIR` → tls.dir; matching ignores case and underscores between words. Returns key → variable. */
function applyEnv(
  env: NodeJS.ProcessEnv,
  out: Map<string, unknown>,
  problems: ConfigProblem[],
): Map<string, string> {
  const setBy = new Map<string, string>();
  const byName = new Map(Object.keys(FIELDS).map((path) => [normalize(path), path]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const path = byName.get(normalize(name.slice(ENV_PREFIX.length)));
    if (!path) {
      // As for a misspelt YAML key: RTP_BACKND → did you mean RTP_BACKEND?
      const known = [...byName.values()].map(envName);
      const best = closest(name, known);
      problems.push({
        path: `$${name}`,
        message: `unknown environment override; ${best ? `did you mean ${best}?` : `known ones are ${known.join(', ')}`}`,
      });
      continue;
    }
    const spec = FIELDS[path] as FieldSpec;
    out.set(path, fromEnv(spec, value));
    setBy.set(path, name);
  }
  return setBy;
}

/** The environment variable that overrides a key, e.g. tls.dir → RTP_TLS_DIR. */
export function envName(path: string): string {
  return (
    ENV_PREFIX +
    path
      .replace(/\./g, '_')
      .replace(/([a-z])([A-Z])/g, '$1_$2')
      .toUpperCase()
  );
}

function normalize(s: string): string {
  return s.replace(/[._]/g, '').toUpperCase();
}

function fromEnv(spec: FieldSpec, value: string): unknown {
  switch (spec.kind) {
    case 'int':
      return /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
    case 'bool':
      return /^(true|1|yes|on)$/i.test(value)
        ? true
        : /^(false|0|no|off)$/i.test(value)
          ? false
          : value;
    case 'duration':
      return value;
    case 'stringList':
    case 'oneOrList':
      return value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    case 'string':
      return value;
  }
}

function checkType(spec: FieldSpec, value: unknown): { value: unknown } | string {
  switch (spec.kind) {
    case 'string':
      if (typeof value === 'string') return { value };
      if (typeof value === 'number') return { value: String(value) };
      return `must be a string, got ${describe(value)}`;
    case 'int':
      if (typeof value === 'number' && Number.isInteger(value)) return { value };
      return `must be a whole number, got ${describe(value)}`;
    case 'bool':
      if (typeof value === 'boolean') return { value };
      return `must be true or false, got ${describe(value)}`;
    case 'duration': {
      const ms = typeof value === 'string' ? parseDuration(value) : value === 0 ? 0 : undefined;
      if (ms !== undefined) return { value: ms };
      return `must be a duration like 90d, 12h, 30m, 45s or 500ms, got ${describe(value)}`;
    }
    case 'oneOrList':
      if (typeof value === 'string') return { value: [value] };
      if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
        return { value: [...value] };
      return `must be a string or a list of strings, got ${describe(value)}`;
    case 'stringList':
      if (value === null) return { value: [] };
      if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
        return { value: [...value] };
      return `must be a list of strings, got ${describe(value)}`;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'nothing (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function suggest(path: string): string {
  const known = Object.keys(FIELDS);
  const best = closest(path, known);
  return best ? `; did you mean ${best}?` : `; known keys are ${known.join(', ')}`;
}

/** The candidate within 3 edits of `word` (ignoring case), the nearest; undefined if none. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (!best || distance < best.distance) best = { candidate, distance };
  }
  return best && best.distance <= 3 ? best.candidate : undefined;
}

/** Levenshtein distance, for "did you mean" hints on misspelt keys. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * The keys whose values differ between two configurations, by path: what a reload
 * logs (names only, never values).
 *
 * @example changedKeys(a, { ...a, listen: '0.0.0.0:6443' }) // → ['listen']
 */
export function changedKeys(before: Config, after: Config): string[] {
  return Object.keys(FIELDS).filter(
    (path) => JSON.stringify(getPath(before, path)) !== JSON.stringify(getPath(after, path)),
  );
}

function getPath(obj: object, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], obj);
}

function setPath(obj: object, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop() as string;
  const parent = keys.reduce<Record<string, unknown>>(
    (o, k) => o[k] as Record<string, unknown>,
    obj as Record<string, unknown>,
  );
  parent[last] = value;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
