/** The relay (relay.ts) as an Upstream: the exchange itself takes the backend's answer. */
import { relay } from './relay.js';
import type { RelayPool } from './relay-pool.js';
import type { Upstream } from './upstream.js';

export function relayUpstream(pool: RelayPool): Upstream {
  return {
    send(ex, body) {
      const req = ex.req;
      const call = relay(
        pool,
        {
          method: req.method ?? 'GET',
          url: req.url ?? '/',
          headers: req.headers,
          ...(body ? { body: { stream: req, length: body.length } } : {}),
        },
        ex,
      );
      ex.forwarded(call);
    },
  };
}
