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

export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({
    level,
    base: { name: 'registry-tls-proxy' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  });
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
