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
