/**
 * JSON logs (pino). Credentials never reach the log: request lines carry no
 * headers and no query strings, and anything that does slip into a log object
 * under a credential-like key is censored.
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/schema.js';

export type { Logger };

export const REDACT_PATHS = [
  'authorization',
  'cookie',
  'password',
  'token',
  '*.authorization',
  '*.Authorization',
  '*.cookie',
  '*.password',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
];

/**
 * Lines are written synchronously, each as it is logged. pino's default (asynchronous
 * sonic-boom) hands every write to libuv's thread pool and wakes the event loop again
 * when it is done: at one request at a time that is a thread hop and an extra loop
 * wake-up per request line, 10–15 % of a proxied manifest GET's CPU (bench/RESULTS.md).
 * Synchronous also means a line logged just before a crash is not lost. The price: a
 * log reader that stops reading stalls the process once the pipe is full — the same
 * as any program writing to a stdout nobody drains.
 */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: { name: 'registry-tls-proxy' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * Keeps a condition that persists from flooding the log: `pass(key)` is true the
 * first time a key is seen, and again once `everyMs` has gone by (a reminder).
 * `reset()` forgets everything, so that a condition that comes back is logged again.
 */
export function createRepeatGate(everyMs: number): {
  pass(key: string, now?: number): boolean;
  reset(): void;
} {
  const last = new Map<string, number>();
  return {
    pass(key, now = Date.now()) {
      const at = last.get(key);
      if (at !== undefined && now - at < everyMs) return false;
      last.set(key, now);
      return true;
    },
    reset: () => last.clear(),
  };
}
