/**
 * When an ACME certificate is due (certmagic's needsRenewal): at renewBefore ahead of
 * its expiry, by default when a third of its lifetime is left, or at once when it no
 * longer covers every name asked for. And how long to wait after failures.
 *
 * A renewBefore as long as the lifetime or longer (30d with Let's Encrypt's 6-day
 * certificates) would make every new certificate due the moment it arrives, an order
 * loop into the CA's rate limits: such a certificate renews at a third left instead.
 */
import type { ACMECertificate } from './store.js';
import type { CAProblem } from './order.js';

const BACKOFF_FIRST_MS = 2_000;
const BACKOFF_MAX_MS = 6 * 60 * 60 * 1000;
/** A rate limit without Retry-After: Let's Encrypt's limits are per hour or per week. */
const RATE_LIMITED_MIN_MS = 60 * 60 * 1000;

export function renewalTime(cert: ACMECertificate, renewBeforeMs: number): Date {
  const lifetime = lifetimeMs(cert);
  const before = renewBeforeFits(cert, renewBeforeMs) ? renewBeforeMs : lifetime / 3;
  return new Date(cert.notAfter.getTime() - before);
}

/** False when renewBefore is set but not shorter than the certificate's lifetime (see above). */
export function renewBeforeFits(cert: ACMECertificate, renewBeforeMs: number): boolean {
  return renewBeforeMs > 0 && renewBeforeMs < lifetimeMs(cert);
}

function lifetimeMs(cert: ACMECertificate): number {
  return cert.notAfter.getTime() - cert.notBefore.getTime();
}

/** Why an order is needed now, or undefined when the stored certificate will do. */
export function orderReason(
  cert: ACMECertificate | undefined,
  names: readonly string[],
  renewBeforeMs: number,
  now = new Date(),
): string | undefined {
  if (!cert) return 'no ACME certificate yet';
  const missing = names.filter((n) => !cert.names.includes(n));
  if (missing.length > 0) return `it does not cover ${missing.join(', ')}`;
  if (now >= renewalTime(cert, renewBeforeMs)) return 'it is due for renewal';
  return undefined;
}

/**
 * 2 s, 4 s, 8 s… up to 6 h after `failures` failures in a row; never sooner than the
 * CA's Retry-After, nor than an hour after a rateLimited refusal that gave none.
 */
export function backoffMs(failures: number, problem: CAProblem | undefined): number {
  let delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1));
  if (problem?.retryAfterMs !== undefined) delay = Math.max(delay, problem.retryAfterMs);
  else if (problem?.type?.endsWith(':rateLimited')) delay = Math.max(delay, RATE_LIMITED_MIN_MS);
  return delay;
}
