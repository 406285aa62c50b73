/**
 * The one way end-to-end tests wait for something to become true. It throws
 * on timeout, so a test that forgets to look at the answer still fails, and the
 * message says what never happened and what was seen last.
 */
import { inspect } from 'node:util';

export interface EventuallyOptions {
  /** How long to keep trying (default 5 s). */
  timeoutMs?: number;
  /** Pause between tries (default 50 ms). */
  intervalMs?: number;
}

/** What `fn` gives back when it is done: anything except "not yet". */
export type Arrived<T> = Exclude<Awaited<T>, false | null | undefined>;

/**
 * Calls `fn` until it neither throws nor answers "not yet" (`false`, `null` or
 * `undefined`), and returns that answer. On timeout it throws an error naming
 * `what` and the last answer or error, so an `expect` inside `fn` reports its
 * own message.
 *
 * @example
 *   const hit = await eventually('the backend to see the upload', () =>
 *     backend.requests.find((r) => r.method === 'PUT'),
 *   );
 *   await eventually('no active upstream sockets', async () => (await sockets()) === 0);
 */
export async function eventually<T>(
  what: string,
  fn: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 50 }: EventuallyOptions = {},
): Promise<Arrived<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: { error: unknown } | { value: unknown } = { value: undefined };
  for (;;) {
    try {
      const value = await fn();
      if (value !== false && value !== null && value !== undefined) return value as Arrived<T>;
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (Date.now() >= deadline) {
      const seen =
        'error' in last
          ? `last error: ${last.error instanceof Error ? last.error.message : inspect(last.error)}`
          : `last answer: ${inspect(last.value)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}`, {
        cause: 'error' in last ? last.error : undefined,
      });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
