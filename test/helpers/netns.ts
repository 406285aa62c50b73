/**
 * A test host off loopback: a network namespace joined to the root namespace by a
 * veth pair, as /work/shared/TEST-ENV.md describes. The root side gets .1/30 and the
 * namespace side .2/30 of a /30 in 198.18.0.0/24 (RFC 2544 benchmarking space),
 * normally 198.18.0.1 and 198.18.0.2; a host made while another test file holds that
 * /30 gets the next free one. Traffic only ever goes to the namespace's address.
 *
 * Needs root and iproute2. Names are unique per run (rtp-LABEL-PID-N); teardown
 * kills whatever still runs inside, deletes the namespace and the veth pair, and
 * also runs when the worker exits without calling it. Leftovers of dead runs are
 * swept when the next host is made.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive } from './processes.js';

/** One file per /30 in use, holding the owner's pid: allocation across parallel test files. */
export const LOCK_DIR = '/run/rtp-test-hosts';
const SUBNETS = 64; // the /30s of 198.18.0.0/24

export interface TestHost {
  /** The namespace's name (`ip netns exec NAME …`). */
  name: string;
  /** The root namespace's end of the veth pair. */
  hostInterface: string;
  /** The root namespace's address on the link, e.g. 198.18.0.1. */
  hostAddress: string;
  /** The test host's address, e.g. 198.18.0.2. */
  address: string;
  /** A command prefix that runs a command inside the namespace. */
  wrap: readonly string[];
  /** Spawns `command args` inside the namespace (`ip netns exec` execs, so the pid is the command's). */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Kills what still runs inside, deletes the namespace and the link. Idempotent, synchronous. */
  destroy(): void;
}

let counter = 0;

/** Takes `count` consecutive indexes for names and links (shared with test-lan.ts, so none collide). */
export function takeIndexes(count: number): number {
  const first = counter;
  counter += count;
  return first;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ipQuiet(args: string[]): void {
  try {
    ip(args);
  } catch {
    // already gone
  }
}

/** Interface names hold at most 15 bytes: rtp + pid in base 36 + counter + h|n. */
export function interfaceName(pid: number, n: number, side: 'h' | 'n'): string {
  return `rtp${pid.toString(36)}${n.toString(36)}${side}`;
}

export function killInside(name: string): void {
  let pids: number[] = [];
  try {
    pids = ip(['netns', 'pids', name])
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((pid) => pid !== process.pid);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}

/** Removes namespaces, links and subnet locks this helper (or test-lan.ts) made in runs whose process is gone. */
export function sweepStale(): void {
  let names: string[] = [];
  try {
    names = ip(['netns', 'list'])
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '');
  } catch {
    // no namespaces yet
  }
  for (const name of names) {
    const match = /^rtp-[a-z0-9]+-(\d+)-(\d+)$/.exec(name);
    if (!match || isAlive(Number(match[1]))) continue;
    killInside(name);
    ipQuiet(['netns', 'del', name]);
    ipQuiet(['link', 'del', interfaceName(Number(match[1]), Number(match[2]), 'h')]);
  }
  let locks: string[] = [];
  try {
    locks = readdirSync(LOCK_DIR);
  } catch {
    return;
  }
  for (const lock of locks) {
    const path = join(LOCK_DIR, lock);
    try {
      const pid = Number(readFileSync(path, 'utf8').split(' ')[0]);
      if (!isAlive(pid)) unlinkSync(path);
    } catch {
      // raced with its owner
    }
  }
}

/** Takes the first /30 no one holds: an O_EXCL lock file, and no such address on this machine. */
function allocateSubnet(name: string): { index: number; lock: string } {
  mkdirSync(LOCK_DIR, { recursive: true, mode: 0o700 });
  const inUse = ip(['-4', '-o', 'addr', 'show']);
  for (let index = 0; index < SUBNETS; index++) {
    const lock = join(LOCK_DIR, `198.18.0.${index * 4}`);
    try {
      writeFileSync(lock, `${process.pid} ${name}\n`, { flag: 'wx' });
    } catch {
      continue;
    }
    // Someone may use the range by hand (TEST-ENV.md's recipe): leave that one alone.
    if (new RegExp(`inet 198\\.18\\.0\\.(${index * 4 + 1}|${index * 4 + 2})/`).test(inUse)) {
      unlinkSync(lock);
      continue;
    }
    return { index, lock };
  }
  throw new Error(`no free /30 in 198.18.0.0/24 for a test host (locks in ${LOCK_DIR})`);
}

/** Makes a test host; call `destroy()` in afterAll. */
export function createTestHost(label = 'e2e'): TestHost {
  if (!/^[a-z0-9]{1,12}$/.test(label)) throw new Error(`bad test host label ${label}`);
  sweepStale();
  const n = takeIndexes(1);
  const name = `rtp-${label}-${process.pid}-${n}`;
  const hostInterface = interfaceName(process.pid, n, 'h');
  const nsInterface = interfaceName(process.pid, n, 'n');
  const { index, lock } = allocateSubnet(name);
  const hostAddress = `198.18.0.${index * 4 + 1}`;
  const address = `198.18.0.${index * 4 + 2}`;
  const wrap = ['ip', 'netns', 'exec', name] as const;

  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    process.off('exit', destroy);
    killInside(name);
    ipQuiet(['netns', 'del', name]);
    ipQuiet(['link', 'del', hostInterface]);
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  };
  process.on('exit', destroy);

  try {
    ip(['netns', 'add', name]);
    ip(['link', 'add', hostInterface, 'type', 'veth', 'peer', 'name', nsInterface]);
    ip(['link', 'set', nsInterface, 'netns', name]);
    ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostInterface]);
    ip(['link', 'set', hostInterface, 'up']);
    ip([...wrap.slice(1), 'ip', 'addr', 'add', `${address}/30`, 'dev', nsInterface]);
    ip([...wrap.slice(1), 'ip', 'link', 'set', nsInterface, 'up']);
    ip([...wrap.slice(1), 'ip', 'link', 'set', 'lo', 'up']);
  } catch (err) {
    destroy();
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`could not make test host ${name}: ${(err as Error).message}\n${stderr}`);
  }

  return {
    name,
    hostInterface,
    hostAddress,
    address,
    wrap,
    spawn: (command, args, options = {}) =>
      spawn(wrap[0], [...wrap.slice(1), command, ...args], options),
    destroy,
  };
}

/** Names of namespaces this process made that still exist (for leak checks). */
export function ownNamespaces(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith('rtp-') && name.includes(`-${process.pid}-`));
}
