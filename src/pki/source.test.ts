/**
 * The CA expiry warning of a long-running proxy: said at start-up, then once a
 * day while it lasts, not on every check (tls.checkInterval is a minute).
 */
import { commandName } from '../command-name.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULTS, type Config } from '../config/schema.js';
import { certificateSource } from './source.js';

const DAY_MS = 86_400_000;
const dir = mkdtempSync(join(tmpdir(), 'rtp-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.useRealTimers());

/** A pino logger writing JSON lines into an array. */
function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

function config(tls: Partial<Config['tls']>): Config {
  const c = structuredClone(DEFAULTS) as Config;
  Object.assign(c.tls, { dir: join(dir, 'tls'), names: ['localhost'] }, tls);
  return c;
}

describe('certificateSource', () => {
  it('warns that the CA expires soon at the first load, then once a day, naming ca rotate', async () => {
    const { logger, lines } = capture();
    // A one-year CA inside a two-year warning window.
    const source = certificateSource(
      config({ caLifetime: 365 * DAY_MS, caWarnBefore: 730 * DAY_MS }),
      logger,
    );
    const warnings = () => lines.filter((l) => String(l['msg']).startsWith('the CA expires soon'));
    await source.load();
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ level: 40, daysLeft: 364 });
    expect(String(warnings()[0]?.['msg'])).toContain(`${commandName()} ca rotate`);
    for (let i = 0; i < 5; i++) await source.load();
    expect(warnings()).toHaveLength(1);

    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + DAY_MS + 1000);
    await source.load();
    expect(warnings()).toHaveLength(2);
  }, 60_000);

  it('says nothing while the CA has more left than tls.caWarnBefore', async () => {
    const { logger, lines } = capture();
    const source = certificateSource(config({ caWarnBefore: 180 * DAY_MS }), logger);
    await source.load();
    expect(lines.filter((l) => l['level'] === 40)).toEqual([]);
  }, 60_000);

  it('watches the CA files of tls.dir, or the supplied files', () => {
    const { logger } = capture();
    expect(certificateSource(config({}), logger).watch).toEqual(
      ['ca.crt', 'ca-next.crt', 'ca-previous.crt', 'server.crt'].map((f) => join(dir, 'tls', f)),
    );
    const supplied = certificateSource(
      config({ cert: '/etc/ssl/fullchain.pem', key: '/etc/ssl/key.pem' }),
      logger,
    );
    expect(supplied.watch).toEqual(['/etc/ssl/fullchain.pem', '/etc/ssl/key.pem']);
  });
});
