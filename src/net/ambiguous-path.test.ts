import { describe, expect, it } from 'vitest';
import { isAmbiguousPath } from './ambiguous-path.js';

describe('isAmbiguousPath', () => {
  it.each(['/v2/', '/v2/a.b/c', '/v2/x/blobs/sha256:ab', '/v2/.well-known', '/v2/a..b'])(
    '%s is plain',
    (path) => {
      expect(isAmbiguousPath(path)).toBe(false);
    },
  );

  it.each(['/v2/../x', '/v2/.', '/v2/%2e', '/v2\\x', '/v2/x;y', '/v2/x#y', '/v2//x'])(
    '%s is ambiguous',
    (path) => {
      expect(isAmbiguousPath(path)).toBe(true);
    },
  );
});
