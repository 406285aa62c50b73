/**
 * What an inspection of a supplied certificate reports: its own file, so that
 * chain.ts (which finds chain problems) and inspect.ts (which runs every check)
 * both use it without importing each other.
 */
export interface Finding {
  severity: 'error' | 'warning';
  code: string;
  message: string;
}

/** Every code a {@link Finding} can carry. */
export const FINDING_CODES = [
  'PARSE_ERROR',
  'KEY_MISMATCH',
  'CHAIN_INCOMPLETE',
  'CHAIN_ORDER',
  'CHAIN_EXTRA',
  'NAME_NOT_COVERED',
  'NOT_SERVER_AUTH',
  'LEAF_IS_CA',
  'EXPIRED',
  'NOT_YET_VALID',
  'EXPIRING_SOON',
] as const;
export type FindingCode = (typeof FINDING_CODES)[number];
