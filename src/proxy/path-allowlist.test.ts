import { describe, expect, it } from 'vitest';
import { pathAllowlist, type PathVerdict } from './path-allowlist.js';

describe('pathAllowlist', () => {
  it('is absent when the list is empty (every path allowed, no per-request work)', () => {
    expect(pathAllowlist([])).toBeUndefined();
  });

  const check = pathAllowlist(['/v2/', '/token']) as (path: string) => PathVerdict;
  it.each<[string, PathVerdict]>([
    ['/v2/', 'allowed'],
    ['/v2', 'allowed'],
    ['/v2/library/app/manifests/1.0', 'allowed'],
    ['/v2/app/blobs/sha256:0123abcd', 'allowed'],
    ['/v2/app/blobs/uploads/5f1c-aa', 'allowed'],
    ['/token', 'allowed'],
    ['/token/', 'allowed'],
    ['/tokens', 'outside'],
    ['/v2x', 'outside'],
    ['/V2/', 'outside'],
    ['/admin', 'outside'],
    ['/', 'outside'],
    ['/v2/../admin', 'unsafe'],
    ['/v2/..', 'unsafe'],
    ['/v2/./x', 'unsafe'],
    ['/v2/%2e%2e/admin', 'unsafe'],
    ['/v2/%2E%2E/admin', 'unsafe'],
    ['/v2%2f..%2fadmin', 'unsafe'],
    ['/v2/%5c..%5cadmin', 'unsafe'],
    ['/v2/%252e%252e/admin', 'unsafe'],
    ['/v2/\\..\\admin', 'unsafe'],
    ['/v2//x', 'unsafe'],
    ['//admin', 'unsafe'],
    ['/v2/..;/admin', 'unsafe'],
    ['/v2/x#/../admin', 'unsafe'],
    ['/v2/.well-known', 'allowed'],
    ['/v2/a..b/manifests/x', 'allowed'],
  ])('%s is %s', (path, verdict) => {
    expect(check(path)).toBe(verdict);
  });

  it('matches a prefix without a trailing slash at a segment boundary', () => {
    const library = pathAllowlist(['/v2/library']) as (path: string) => PathVerdict;
    expect(library('/v2/library/app/manifests/x')).toBe('allowed');
    expect(library('/v2/library-evil/app/manifests/x')).toBe('outside');
  });

  it('allows everything under /', () => {
    expect((pathAllowlist(['/']) as (path: string) => PathVerdict)('/anything')).toBe('allowed');
  });
});
