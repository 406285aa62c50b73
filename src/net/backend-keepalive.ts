/**
 * How long an idle connection to the backend may be kept for reuse. A backend closes
 * idle connections on its own clock (Node and Apache after 5 s, nginx 75 s, cloud load
 * balancers 60 s); if it closes one just as we send an upload on it, the upload fails
 * with a 502 that nobody can retry (its body is gone). So idle connections are closed
 * here first: after `timeouts.backendKeepAliveMs`, or a second before the backend's own
 * `Keep-Alive: timeout=N` when it announces one (Node's agent uses the same second).
 */
import { Agent, type AgentOptions } from 'node:http';

/** The idle limit a backend's `Keep-Alive` header allows; Infinity when it names none. */
export function keepAliveLimitMs(hint: string | string[] | undefined): number {
  if (hint === undefined) return Infinity; // the registry's answers: every relayed response
  const seconds = /(?:^|[,\s])timeout\s*=\s*(\d+)/i.exec(String(hint))?.[1];
  return seconds === undefined ? Infinity : Number(seconds) * 1000 - 1000;
}

/**
 * A keep-alive agent whose idle sockets close after `idleMs` (0: no reuse at all). Node's
 * agent applies `timeout` to idle sockets, lowered by the backend's hint less a second;
 * requests set their own timer while they run (handler.ts: backendIdleMs, then none).
 */
export function backendAgent(idleMs: number, options: AgentOptions = {}): Agent {
  return new Agent({
    ...options,
    keepAlive: idleMs > 0,
    ...(idleMs > 0 ? { timeout: idleMs } : {}),
  });
}
