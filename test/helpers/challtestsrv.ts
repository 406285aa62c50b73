/**
 * pebble-challtestsrv (Debian's pebble): Let's Encrypt's test DNS server, which answers
 * every A query with 127.0.0.1 and serves the TXT records set through its management
 * API (`POST /set-txt {"host","value"}`, `POST /clear-txt {"host"}`). Here it stands for
 * a DNS provider with an HTTP API, which a dns-01 hook command talks to.
 */
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { freePort, tryConnect } from './processes.js';
import { eventually } from './eventually.js';

export interface ChallTestSrv {
  /** `127.0.0.1:PORT` of its DNS server (UDP and TCP). */
  dnsServer: string;
  /** `http://127.0.0.1:PORT` of its management API. */
  managementURL: string;
  stop(): Promise<void>;
  output(): string;
}

export async function startChallTestSrv(): Promise<ChallTestSrv> {
  const dnsPort = await freePort();
  const managementPort = await freePort();
  const child = spawn(
    'pebble-challtestsrv',
    [
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${managementPort}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await eventually(
      'pebble-challtestsrv to listen (DNS and management)',
      async () => {
        if (child.exitCode !== null) throw new Error(`pebble-challtestsrv exited:\n${output}`);
        return (
          (await tryConnect(dnsPort)) === 'connected' &&
          (await tryConnect(managementPort)) === 'connected'
        );
      },
      { timeoutMs: 15_000 },
    );
  } catch (err) {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    throw err;
  }
  return {
    dnsServer: `127.0.0.1:${dnsPort}`,
    managementURL: `http://127.0.0.1:${managementPort}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
    },
  };
}

/** An operator's hook for a provider API: `dns-hook.sh --api URL present|cleanup FQDN VALUE`. */
const HOOK = `#!/bin/sh
set -eu
[ "$1" = --api ] || { echo "usage: $0 --api URL present|cleanup FQDN VALUE" >&2; exit 2; }
api=$2 action=$3 fqdn=$4 value=$5
[ -z "\${PID_FILE:-}" ] || echo $$ > "$PID_FILE"
case $action in
  present) curl -sS --fail -X POST -d "{\\"host\\":\\"$fqdn\\",\\"value\\":\\"$value\\"}" "$api/set-txt" ;;
  cleanup) curl -sS --fail -X POST -d "{\\"host\\":\\"$fqdn\\"}" "$api/clear-txt" ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
`;

/** Writes that hook, executable, at `file`. */
export function writeHookScript(file: string): void {
  writeFileSync(file, HOOK);
  chmodSync(file, 0o755);
}
