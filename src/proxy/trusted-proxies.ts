/**
 * `trustedProxies`: the load balancers in front of this proxy whose forwarding
 * headers (X-Forwarded-For/Proto/Host/Port, Forwarded) pass on to the registry.
 * Everyone else's are overwritten (headers.ts).
 */
import { networkMatcher, parseNetwork, type Network } from '../net/address.js';

/** Whether a peer address (as the socket reports it) is one of `entries`; entries are valid. */
export function trustedPeerMatcher(entries: readonly string[]): (address: string) => boolean {
  return networkMatcher(entries.map((entry) => parseNetwork(entry) as Network));
}
