/**
 * The backend's replicas (config `backend` as a list), each with its own two transports
 * (http-proxy's keep-alive agent and the relay's pool). A request goes to the healthy
 * replica with the fewest requests outstanding; when none is healthy (or none has been
 * probed yet), to any, so the registry's own error reaches the client rather than ours.
 */
import type { Agent } from 'node:http';
import type { Logger } from '../log.js';
import { backendAgent } from '../net/backend-keepalive.js';
import { unbracketHost } from '../net/address.js';
import { RelayPool } from './relay-pool.js';
import type { Upstream } from './upstream.js';
import { httpProxyUpstream } from './upstream-http-proxy.js';
import { relayUpstream } from './upstream-relay.js';

/** Idle keep-alive sockets kept per backend; more than any realistic burst of parallel layer transfers. */
const UPSTREAM_MAX_FREE_SOCKETS = 256;
/**
 * Idle relay sockets kept: each holds its 256 KiB read buffer, so 32 cost 8 MiB; a
 * burst beyond them opens new connections, which on a local network costs little.
 */
const RELAY_MAX_IDLE_SOCKETS = 32;

export interface Replica {
  /** Its place in config `backend`, from 0. */
  index: number;
  url: URL;
  agent: Agent;
  pool: RelayPool;
  relay: Upstream;
  httpProxy: Upstream;
  /** Requests sent to it and not yet finished. */
  outstanding: number;
}

export interface Replicas {
  readonly all: readonly Replica[];
  /** The replica for the next request; `not`: another than this one, if there is one. */
  pick(not?: Replica): Replica;
  /** Replica `index` if it is in rotation (an upload's own, upload-affinity.ts), else a pick. */
  pickPinned(index: number | undefined): Replica;
  destroy(): void;
}

export interface ReplicaSettings {
  backends: readonly string[];
  keepAliveMs: number;
  logger: Logger;
  /** Each replica's latest health (in config order); absent: all count as healthy. */
  healthy?: (() => readonly boolean[]) | undefined;
}

export function createReplicas(settings: ReplicaSettings): Replicas {
  const all = settings.backends.map((backend, index) => replicaOf(backend, index, settings));
  const healthy = settings.healthy;
  let turn = 0;
  /** Fewest outstanding; among equals, each in turn (one client's requests one by one spread too). */
  const leastOutstanding = (candidates: readonly Replica[]): Replica => {
    const from = turn++ % candidates.length;
    let best = candidates[from] as Replica;
    for (let i = 1; i < candidates.length; i++) {
      const r = candidates[(from + i) % candidates.length] as Replica;
      if (r.outstanding < best.outstanding) best = r;
    }
    return best;
  };
  return {
    all,
    pick(not) {
      // One backend (the usual set-up): it is the answer whatever its health, without the
      // filtering below on every request.
      if (all.length === 1) return all[0] as Replica;
      const flags = healthy?.();
      const inRotation = (list: readonly Replica[]) =>
        flags ? list.filter((r) => flags[r.index] === true) : list;
      // Another healthy one; else any healthy one (`not` failed once, it may not again);
      // else any other, so the client gets a registry's answer if one can give it.
      const others = all.filter((r) => r !== not);
      for (const list of [inRotation(others), inRotation(all), others, all]) {
        if (list.length > 0) return leastOutstanding(list);
      }
      return all[0] as Replica;
    },
    pickPinned(index) {
      const pinned = index === undefined ? undefined : all[index];
      if (pinned && (healthy?.()[pinned.index] ?? true)) return pinned;
      return this.pick();
    },
    destroy() {
      for (const r of all) {
        r.agent.destroy();
        r.pool.destroy();
      }
    },
  };
}

function replicaOf(backend: string, index: number, settings: ReplicaSettings): Replica {
  const url = new URL(backend);
  const { keepAliveMs, logger } = settings;
  const agent = backendAgent(keepAliveMs, {
    maxFreeSockets: UPSTREAM_MAX_FREE_SOCKETS,
    scheduling: 'lifo',
  });
  const pool = new RelayPool(
    unbracketHost(url.hostname),
    Number(url.port || 80),
    RELAY_MAX_IDLE_SOCKETS,
    keepAliveMs,
    (idleMs, closedAfter) => {
      const closedAfterMs = Math.round(closedAfter);
      logger.warn(
        { backend: url.origin, closedAfterMs, uploadIdleMs: idleMs, configuredMs: keepAliveMs },
        `the backend closes idle connections after ${closedAfterMs} ms without announcing ` +
          `a keep-alive timeout; uploads now go only on connections idle under ${idleMs} ms ` +
          '(set timeouts.backendKeepAliveMs below the backend’s idle timeout to start there)',
      );
    },
  );
  return {
    index,
    url,
    agent,
    pool,
    relay: relayUpstream(pool),
    httpProxy: httpProxyUpstream(url, agent),
    outstanding: 0,
  };
}
