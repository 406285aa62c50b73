/**
 * dns-01 through a hook command: a real shell script that calls a DNS provider's HTTP
 * API with curl, the provider being pebble-challtestsrv. What the script does must show
 * in DNS; a hook that fails or hangs must fail the writer with its stderr or a timeout.
 */
import { Resolver } from 'node:dns/promises';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DNSError, txtWriterFor, waitForTxt } from '../src/acme/dns/index.js';
import { writeHookScript, startChallTestSrv, type ChallTestSrv } from './helpers/challtestsrv.js';
import { eventually } from './helpers/eventually.js';
import { freePort, isAlive, tempDir } from './helpers/processes.js';

const log = pino({ level: 'silent' });
const dir = tempDir('dns-hook');
let chall: ChallTestSrv;

const hook = join(dir.path, 'dns-hook.sh');

beforeAll(async () => {
  writeHookScript(hook);
  chall = await startChallTestSrv();
});
afterAll(async () => {
  await chall?.stop();
  dir.remove();
});

async function txtAt(server: string, fqdn: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server]);
  try {
    return (await resolver.resolveTxt(fqdn)).map((chunks) => chunks.join(''));
  } catch (err) {
    if (['ENOTFOUND', 'ENODATA'].includes((err as NodeJS.ErrnoException).code ?? '')) return [];
    throw err;
  }
}

/** The DNSError `promise` rejects with (a resolved promise fails the test). */
async function dnsErrorOf(promise: Promise<unknown>): Promise<DNSError> {
  const outcome = await promise.then(
    () => 'resolved',
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(DNSError);
  return outcome as DNSError;
}

describe('dns-01 hook command against pebble-challtestsrv', () => {
  it('present makes the TXT visible on the DNS server; cleanup removes it', async () => {
    const writer = txtWriterFor({ command: `${hook} --api ${chall.managementURL}` }, log);
    const fqdn = '_acme-challenge.registry.example.com';
    await writer.present(fqdn, 'hook-value-1');
    await waitForTxt(fqdn, 'hook-value-1', {
      timeoutMs: 5000,
      intervalMs: 100,
      servers: [chall.dnsServer],
    });
    expect(await txtAt(chall.dnsServer, fqdn)).toEqual(['hook-value-1']);

    await writer.cleanup(fqdn, 'hook-value-1');
    await eventually(
      'the TXT record to be gone',
      async () => (await txtAt(chall.dnsServer, fqdn)).length === 0,
    );
  });

  it('gets action, FQDN (with its trailing dot) and VALUE as separate words no shell parses', async () => {
    const seen = join(dir.path, 'argv.txt');
    const recorder = join(dir.path, 'record-args.sh');
    writeFileSync(recorder, `#!/bin/sh\nout=$1; shift\nprintf '%s\\n' "$@" > "$out"\n`);
    chmodSync(recorder, 0o755);
    const writer = txtWriterFor({ command: `${recorder} ${seen}` }, log);
    const hostile = `$(touch ${dir.path}/pwned) "quoted" 'single' ;|&`;
    await writer.present('_acme-challenge.a.example.com', hostile);
    expect(readFileSync(seen, 'utf8')).toBe(
      `present\n_acme-challenge.a.example.com.\n${hostile}\n`,
    );
    await writer.cleanup('_acme-challenge.a.example.com.', 'v');
    expect(readFileSync(seen, 'utf8')).toBe('cleanup\n_acme-challenge.a.example.com.\nv\n');
    expect(() => readFileSync(join(dir.path, 'pwned'))).toThrow(/ENOENT/);
  });

  it('a hook that fails rejects with its exit status and the end of its stderr', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const writer = txtWriterFor({ command: `${hook} --api ${closed}` }, log);
    const err = await dnsErrorOf(writer.present('_acme-challenge.b.example.com', 'v'));
    expect(err.code).toBe('DNS_HOOK_FAILED');
    expect(err.message).toContain(
      `dns-01 hook \`${hook} --api ${closed} present _acme-challenge.b.example.com. v\``,
    );
    expect(err.message).toContain('exited with status 7'); // curl: could not connect
    expect(err.message).toMatch(
      /its stderr:\ncurl: \(7\) Failed to connect to 127\.0\.0\.1 port \d+/,
    );
  });

  it('a hook that hangs is stopped at the timeout, with the whole process group', async () => {
    // An API that accepts the connection and never answers: curl waits forever.
    const sockets: Socket[] = [];
    const silent = createServer((s) => {
      sockets.push(s);
      s.resume(); // read the request, so that curl's FIN is seen
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const api = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const pidFile = join(dir.path, 'hang.pid');
    try {
      const writer = txtWriterFor({ command: `PID_FILE=${pidFile} ${hook} --api ${api}` }, log, {
        hookTimeoutMs: 700,
      });
      const started = Date.now();
      const err = await dnsErrorOf(writer.present('_acme-challenge.c.example.com', 'v'));
      const tookMs = Date.now() - started;
      expect(err.code).toBe('DNS_HOOK_TIMEOUT');
      expect(err.message).toContain('did not finish within 0.7 s and was stopped');
      expect(tookMs).toBeGreaterThanOrEqual(650);
      expect(tookMs).toBeLessThan(4000);
      const shellPid = Number(readFileSync(pidFile, 'utf8'));
      // SIGTERM reached the hook's own shell too (a grandchild of ours, reaped by init).
      await eventually(`the hook's shell (pid ${shellPid}) to be gone`, () => !isAlive(shellPid));
      await eventually('the silent API to see its client go', () =>
        sockets.every((s) => s.destroyed || s.closed),
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
