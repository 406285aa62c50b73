/**
 * Failed logins per client address, as a token bucket: FAILED_LOGIN_BURST wrong
 * passwords at once, then one more every FAILED_LOGIN_REFILL_MS. An address whose
 * bucket is empty gets 429 with Retry-After before any bcrypt check runs, so a
 * password-guessing client costs neither guesses nor CPU. Successful logins take
 * nothing from the bucket, and a remembered login never reaches it (a user behind
 * the same NAT as a guesser keeps working).
 */

export const FAILED_LOGIN_BURST = 10;
export const FAILED_LOGIN_REFILL_MS = 6_000;
/** Addresses tracked at most; beyond that, full buckets and then the oldest are dropped. */
const MAX_ADDRESSES = 10_000;

export interface LoginLimit {
  /** Seconds to wait when `address` may not try now (for Retry-After); undefined when it may. */
  blockedFor(address: string): number | undefined;
  /** Counts a failed login; true when this failure emptied the bucket (worth one log line). */
  failed(address: string): boolean;
}

export function loginLimit(
  burst = FAILED_LOGIN_BURST,
  refillMs = FAILED_LOGIN_REFILL_MS,
  now: () => number = Date.now,
): LoginLimit {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const level = (address: string, t: number): number => {
    const bucket = buckets.get(address);
    if (!bucket) return burst;
    return Math.min(burst, bucket.tokens + (t - bucket.at) / refillMs);
  };
  const prune = (t: number) => {
    // Deleting while iterating a Map is safe; full buckets first, then the oldest.
    for (const address of buckets.keys()) if (level(address, t) >= burst) buckets.delete(address);
    for (const address of buckets.keys()) {
      if (buckets.size < MAX_ADDRESSES) break;
      buckets.delete(address);
    }
  };
  return {
    blockedFor(address) {
      const t = now();
      const tokens = level(address, t);
      if (tokens >= 1) return undefined;
      // Whole seconds, rounded up (less a hair, so that float noise does not add one).
      return Math.max(1, Math.ceil(((1 - tokens) * refillMs) / 1000 - 1e-9));
    },
    failed(address) {
      const t = now();
      const tokens = Math.max(0, level(address, t) - 1);
      if (!buckets.has(address) && buckets.size >= MAX_ADDRESSES) prune(t);
      buckets.delete(address); // re-inserted last: the Map's order is the prune order
      buckets.set(address, { tokens, at: t });
      return tokens < 1;
    },
  };
}
