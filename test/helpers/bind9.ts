/**
 * A real BIND 9 (Debian's bind9) for dns-01 tests: named in the foreground on a free
 * loopback port (UDP and TCP), authoritative only (recursion no), with a TSIG key made by
 * tsig-keygen and zones that either let that key update them or let no one.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir, waitForOutput } from './processes.js';

export interface Bind9Zone {
  name: string;
  /**
   * Who may update it: 'key', every test key (allow-update); 'policy', the main key for
   * TXT at _acme-challenge.registry.ZONE only (update-policy, as docs/acme-dns.md has it);
   * 'none', no one.
   */
  update: 'key' | 'policy' | 'none';
}

export interface TSIGKeyFile {
  name: string;
  algorithm: string;
  secret: string;
}

/** The algorithms a key is made for; the first is the main key's. */
export const KEY_ALGORITHMS = [
  'hmac-sha256',
  'hmac-sha512',
  'hmac-sha384',
  'hmac-sha224',
  'hmac-sha1',
  'hmac-md5',
];

export interface Bind9 {
  port: number;
  /** `127.0.0.1:PORT`, as rfc2136.server takes it. */
  server: string;
  /** The main key (hmac-sha256, named rtp-acme-key). */
  key: TSIGKeyFile;
  /** A key for each of KEY_ALGORITHMS, by algorithm. */
  keys: Readonly<Record<string, TSIGKeyFile>>;
  /** The TXT values at `name`, as dig sees them on this server. */
  digTXT(name: string): string[];
  /** Stops named (SIGTERM, by PID) and removes its directory. */
  stop(): Promise<void>;
  output(): string;
}

function zoneFile(zone: string): string {
  return [
    '$TTL 300',
    `@ IN SOA ns1.${zone}. hostmaster.${zone}. 1 3600 600 86400 60`,
    `@ IN NS ns1.${zone}.`,
    'ns1 IN A 127.0.0.1',
    'registry IN A 127.0.0.1',
    '',
  ].join('\n');
}

function updateClause(zone: Bind9Zone, keys: readonly TSIGKeyFile[]): string {
  if (zone.update === 'key')
    return `allow-update { ${keys.map((k) => `key "${k.name}";`).join(' ')} };`;
  if (zone.update === 'policy')
    return `update-policy { grant ${keys[0]?.name} name _acme-challenge.registry.${zone.name}. TXT; };`;
  return '';
}

function namedConf(
  dir: string,
  port: number,
  keys: readonly TSIGKeyFile[],
  zones: readonly Bind9Zone[],
): string {
  const zoneBlocks = zones.map(
    (z) =>
      `zone "${z.name}" { type primary; file "${join(dir, `${z.name}.zone`)}"; ${updateClause(z, keys)} };`,
  );
  return [
    'options {',
    `  directory "${dir}";`,
    `  pid-file "${join(dir, 'named.pid')}";`,
    `  session-keyfile "${join(dir, 'session.key')}";`,
    `  listen-on port ${port} { 127.0.0.1; };`,
    '  listen-on-v6 { none; };',
    '  recursion no;',
    '  dnssec-validation no;',
    '  notify no;',
    '};',
    'controls { };',
    `include "${join(dir, 'key.conf')}";`,
    ...zoneBlocks,
    '',
  ].join('\n');
}

/** The user named drops to: Debian's `bind`, which must own the directory (journals). */
function bindIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'bind'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'bind'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** One tsig-keygen key per algorithm, all in key.conf. */
function makeKeys(dir: string): TSIGKeyFile[] {
  let conf = '';
  const keys = KEY_ALGORITHMS.map((algorithm, i) => {
    const name = i === 0 ? 'rtp-acme-key' : `rtp-acme-${algorithm}`;
    const text = execFileSync('tsig-keygen', ['-a', algorithm, name], { encoding: 'utf8' });
    const secret = /secret "([^"]+)"/.exec(text)?.[1];
    if (!secret) throw new Error(`tsig-keygen gave no secret:\n${text}`);
    conf += text;
    return { name, algorithm, secret };
  });
  writeFileSync(join(dir, 'key.conf'), conf, { mode: 0o640 });
  return keys;
}

export async function startBind9(
  zones: readonly Bind9Zone[] = [
    { name: 'acme.test', update: 'key' },
    { name: 'locked.test', update: 'none' },
    { name: 'policy.test', update: 'policy' },
  ],
): Promise<Bind9> {
  const dir = tempDir('bind9');
  const port = await freePort();
  const keys = makeKeys(dir.path);
  for (const zone of zones) writeFileSync(join(dir.path, `${zone.name}.zone`), zoneFile(zone.name));
  const conf = join(dir.path, 'named.conf');
  writeFileSync(conf, namedConf(dir.path, port, keys, zones));
  const { uid, gid } = bindIds();
  for (const file of ['', 'key.conf', 'named.conf', ...zones.map((z) => `${z.name}.zone`)])
    chownSync(join(dir.path, file), uid, gid);
  chmodSync(dir.path, 0o700);

  const child = spawn('named', ['-g', '-u', 'bind', '-c', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // "running" alone on its line: the start banner also says "running on Linux …".
  try {
    await waitForOutput(child, () => output, /^\S+ \S+ running$/m);
  } catch (err) {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    dir.remove();
    throw err;
  }

  return {
    port,
    server: `127.0.0.1:${port}`,
    key: keys[0] as TSIGKeyFile,
    keys: Object.fromEntries(keys.map((k) => [k.algorithm, k])),
    output: () => output,
    digTXT(name) {
      const dig = spawnSync(
        'dig',
        ['-p', String(port), '@127.0.0.1', '+short', '+tcp', 'TXT', name],
        {
          encoding: 'utf8',
          timeout: 10_000,
        },
      );
      if (dig.status !== 0)
        throw new Error(`dig failed (${dig.status}): ${dig.stderr}${dig.stdout}`);
      return dig.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.replace(/^"|"$/g, ''));
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
      dir.remove();
    },
  };
}
