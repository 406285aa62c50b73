/**
 * Whether an address names this machine, for telling a backend that is the proxy itself
 * (issue 14: `backend` set to the proxy's own port was not caught at start-up).
 */
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { canonicalIP, parseHostPort, unbracketHost } from './address.js';

const ANY = new Set(['', '0.0.0.0', '::']);

function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const ip = isIP(host) ? canonicalIP(host) : '';
  return ip.startsWith('127.') || ip === '::1';
}

/** The machine's own addresses: every interface's, loopback included. */
function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) out.add(canonicalIP(nic.address));
  }
  return out;
}

/**
 * True when `backend` (a URL) reaches the port `listen` (host:port) serves: the same
 * port, and a host the listening socket answers on.
 *
 * @example backendIsListen('http://127.0.0.1:5443', '0.0.0.0:5443') // → true
 * @example backendIsListen('http://127.0.0.1:5000', '0.0.0.0:5443') // → false
 */
export function backendIsListen(
  backend: string,
  listen: string,
  addresses: ReadonlySet<string> = ownAddresses(),
  machineName: string = hostname(),
): boolean {
  const bound = parseHostPort(listen);
  let url: URL;
  try {
    url = new URL(backend);
  } catch {
    return false;
  }
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (!bound || port !== bound.port) return false;
  const host = unbracketHost(url.hostname);
  const local =
    ANY.has(host) ||
    isLoopback(host) ||
    host.toLowerCase() === machineName.toLowerCase() ||
    (isIP(host) !== 0 && addresses.has(canonicalIP(host)));
  if (ANY.has(bound.host)) return local;
  if (isLoopback(bound.host) && isLoopback(host)) return true;
  return (
    isIP(host) !== 0 && isIP(bound.host) !== 0 && canonicalIP(host) === canonicalIP(bound.host)
  );
}
