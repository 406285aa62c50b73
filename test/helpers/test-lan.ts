/**
 * A LAN of test hosts: a "switch" network namespace holding a bridge, one member
 * namespace per host on it, and the root namespace on it too, all in one /28 of
 * 198.18.1.0/24 (RFC 2544 benchmarking space). The root side is .1, the members .2,
 * .3, …. Members reach each other over the bridge (layer 2: the root namespace
 * forwards nothing), which a swarm of engines in separate namespaces needs.
 *
 * Names follow test/helpers/netns.ts (rtp-LABEL-PID-N), so a dead run's leftovers are
 * swept by the next test host or LAN made. Needs root and iproute2.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { interfaceName, killInside, LOCK_DIR, sweepStale, takeIndexes } from './netns.js';

const BLOCKS = 16; // the /28s of 198.18.1.0/24

export interface LanHost {
  /** The namespace's name (`ip netns exec NAME …`, or nsenter --net=/run/netns/NAME). */
  name: string;
  /** The host's address on the LAN, e.g. 198.18.1.2. */
  address: string;
}

export interface TestLan {
  /** The root namespace's address on the LAN, e.g. 198.18.1.1. */
  hostAddress: string;
  hosts: LanHost[];
  /** Kills what runs inside, deletes every namespace and the root's link. Idempotent. */
  destroy(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function ipQuiet(args: string[]): void {
  try {
    ip(args);
  } catch {
    // already gone
  }
}

/** The first /28 no one holds (an O_EXCL lock file beside the test hosts' /30 locks). */
function allocateBlock(owner: string): { base: number; lock: string } {
  mkdirSync(LOCK_DIR, { recursive: true, mode: 0o700 });
  const inUse = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  for (let index = 0; index < BLOCKS; index++) {
    const base = index * 16;
    const lock = join(LOCK_DIR, `198.18.1.${base}`);
    try {
      writeFileSync(lock, `${process.pid} ${owner}\n`, { flag: 'wx' });
    } catch {
      continue;
    }
    if (inUse.includes(`inet 198.18.1.${base + 1}/`)) {
      unlinkSync(lock);
      continue;
    }
    return { base, lock };
  }
  throw new Error(`no free /28 in 198.18.1.0/24 for a test LAN (locks in ${LOCK_DIR})`);
}

/** Makes a LAN of `size` hosts (at most 13); call `destroy()` in afterAll. */
export function createTestLan(label: string, size: number): TestLan {
  if (!/^[a-z0-9]{1,9}$/.test(label)) throw new Error(`bad test LAN label ${label}`);
  if (size < 1 || size > 13) throw new Error(`a test LAN holds 1 to 13 hosts, not ${size}`);
  sweepStale();
  const first = takeIndexes(size + 1);
  const nsName = (n: number, role: string) => `rtp-${label}${role}-${process.pid}-${n}`;
  const switchName = nsName(first, 'sw');
  const rootLink = interfaceName(process.pid, first, 'h');
  const { base, lock } = allocateBlock(switchName);
  const address = (i: number) => `198.18.1.${base + i}`;
  const hosts: LanHost[] = Array.from({ length: size }, (_, i) => ({
    name: nsName(first + 1 + i, `n${i + 1}`),
    address: address(i + 2),
  }));

  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    process.off('exit', destroy);
    for (const name of [...hosts.map((h) => h.name), switchName]) {
      killInside(name);
      ipQuiet(['netns', 'del', name]);
    }
    ipQuiet(['link', 'del', rootLink]);
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  };
  process.on('exit', destroy);

  const inSwitch = (args: string[]) => ip(['-n', switchName, ...args]);
  try {
    ip(['netns', 'add', switchName]);
    inSwitch(['link', 'add', 'lan', 'type', 'bridge']);
    inSwitch(['link', 'set', 'lan', 'up']);
    // The root namespace's port: its far end goes into the switch, onto the bridge.
    const rootPeer = interfaceName(process.pid, first, 'n');
    ip(['link', 'add', rootLink, 'type', 'veth', 'peer', 'name', rootPeer]);
    ip(['link', 'set', rootPeer, 'netns', switchName]);
    inSwitch(['link', 'set', rootPeer, 'master', 'lan', 'up']);
    ip(['addr', 'add', `${address(1)}/28`, 'dev', rootLink]);
    ip(['link', 'set', rootLink, 'up']);
    hosts.forEach((host, i) => {
      const port = `p${i + 1}`;
      ip(['netns', 'add', host.name]);
      inSwitch(['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.name]);
      inSwitch(['link', 'set', port, 'master', 'lan', 'up']);
      ip(['-n', host.name, 'addr', 'add', `${host.address}/28`, 'dev', 'eth0']);
      ip(['-n', host.name, 'link', 'set', 'eth0', 'up']);
      ip(['-n', host.name, 'link', 'set', 'lo', 'up']);
    });
  } catch (err) {
    destroy();
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '');
    throw new Error(`could not make test LAN ${switchName}: ${(err as Error).message}\n${stderr}`);
  }
  return { hostAddress: address(1), hosts, destroy };
}
