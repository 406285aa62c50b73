/**
 * What the certificate watch follows: every entry passed while resolving a
 * watched path, so a kubelet `..data` swap or a certbot link update counts,
 * and a watch that outlives the directory the old link pointed at.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { writeAtomically } from '../../test/helpers/atomic-writer.js';
import { resolution, watchFiles } from './file-watch.js';

const root = mkdtempSync(join(tmpdir(), 'rtp-file-watch-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function secretVolume(name: string): { mount: string; update(content: string): string } {
  const mount = join(root, name);
  const update = (content: string) =>
    writeAtomically(mount, {
      'tls.crt': { data: `${content} certificate`, mode: 0o400 },
      'tls.key': { data: `${content} key`, mode: 0o400 },
    });
  return { mount, update };
}

describe('resolution', () => {
  it('follows a Secret volume through tls.crt -> ..data/tls.crt and ..data -> ..TIMESTAMP', () => {
    const { mount, update } = secretVolume('kubelet');
    const tsDir = update('first');
    const { entries, dirs } = resolution(join(mount, 'tls.crt'));
    expect(entries).toEqual(
      expect.arrayContaining(
        ['tls.crt', '..data', tsDir, `${tsDir}/tls.crt`].map((e) => join(mount, e)),
      ),
    );
    expect(entries).not.toContain(join(mount, 'tls.key'));
    expect(dirs.sort()).toEqual([mount, join(mount, tsDir)]);
  });

  it('follows a relative link out of its directory, as certbot’s live/ links point into archive/', () => {
    const live = join(root, 'letsencrypt', 'live', 'example');
    const archive = join(root, 'letsencrypt', 'archive', 'example');
    mkdirSync(live, { recursive: true });
    mkdirSync(archive, { recursive: true });
    writeFileSync(join(archive, 'fullchain1.pem'), 'chain');
    symlinkSync('../../archive/example/fullchain1.pem', join(live, 'fullchain.pem'));
    const { entries, dirs } = resolution(join(live, 'fullchain.pem'));
    expect(entries).toEqual(
      expect.arrayContaining([join(live, 'fullchain.pem'), join(archive, 'fullchain1.pem')]),
    );
    expect(dirs.sort()).toEqual([archive, live]);
  });

  it.each([
    ['a plain file', 'plain/cert.pem', (dir: string) => writeFileSync(join(dir, 'cert.pem'), '')],
    ['a file not there yet', 'missing/cert.pem', () => undefined],
    [
      'a symlink loop',
      'loop/cert.pem',
      (dir: string) => {
        symlinkSync('other.pem', join(dir, 'cert.pem'));
        symlinkSync('cert.pem', join(dir, 'other.pem'));
      },
    ],
  ])('watches the directory of %s', (_what, path, make) => {
    const file = join(root, path);
    mkdirSync(join(file, '..'), { recursive: true });
    make(join(file, '..'));
    const { entries, dirs } = resolution(file);
    expect(entries).toContain(file);
    expect(dirs).toEqual([join(file, '..')]);
  });
});

describe('watchFiles', () => {
  it('reports each kubelet ..data swap, the second after the first one’s directory is gone', async () => {
    const { mount, update } = secretVolume('swapped');
    update('first');
    const changed = vi.fn();
    const watch = watchFiles([join(mount, 'tls.crt'), join(mount, 'tls.key')], changed, 50);
    try {
      update('second');
      await vi.waitFor(() => expect(changed).toHaveBeenCalledTimes(1), { timeout: 3000 });
      update('third');
      await vi.waitFor(() => expect(changed).toHaveBeenCalledTimes(2), { timeout: 3000 });
    } finally {
      watch.close();
    }
  });

  it('watches a directory that appears later once refreshed', async () => {
    const dir = join(root, 'later');
    const changed = vi.fn();
    const watch = watchFiles([join(dir, 'cert.pem')], changed, 50);
    try {
      mkdirSync(dir);
      watch.refresh();
      writeFileSync(join(dir, 'cert.pem'), 'chain');
      await vi.waitFor(() => expect(changed).toHaveBeenCalled(), { timeout: 3000 });
    } finally {
      watch.close();
    }
  });
});
