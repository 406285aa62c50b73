import { describe, expect, it } from 'vitest';
import { classifyOperation } from './operation.js';

const digest = 'sha256:' + 'a'.repeat(64);

describe('classifyOperation', () => {
  it.each([
    ['GET', '/v2/', 'ping'],
    ['GET', '/v2', 'ping'],
    ['GET', '/v2/_catalog', 'catalog'],
    ['GET', '/v2/library/alpine/tags/list', 'tags_list'],
    ['GET', '/v2/library/alpine/manifests/3.20', 'manifest_get'],
    ['HEAD', '/v2/library/alpine/manifests/3.20', 'manifest_head'],
    ['PUT', '/v2/team/app/manifests/v1', 'manifest_put'],
    ['DELETE', `/v2/team/app/manifests/${digest}`, 'manifest_delete'],
    ['GET', `/v2/a/b/c/blobs/${digest}`, 'blob_get'],
    ['HEAD', `/v2/app/blobs/${digest}`, 'blob_head'],
    ['DELETE', `/v2/app/blobs/${digest}`, 'blob_delete'],
    ['POST', '/v2/app/blobs/uploads/', 'upload_start'],
    ['POST', `/v2/app/blobs/uploads/?mount=${digest}&from=other`.split('?')[0]!, 'upload_start'],
    ['GET', '/v2/app/blobs/uploads/0b1f-uuid', 'upload_status'],
    ['PATCH', '/v2/app/blobs/uploads/0b1f-uuid', 'upload_chunk'],
    ['PUT', '/v2/app/blobs/uploads/0b1f-uuid', 'upload_complete'],
    ['DELETE', '/v2/app/blobs/uploads/0b1f-uuid', 'upload_cancel'],
    ['GET', `/v2/app/referrers/${digest}`, 'referrers'],
    ['GET', '/token', 'token'],
    ['POST', '/auth/token', 'token'],
    ['GET', '/service/token', 'token'],
    // A repository may be called "blobs" or "manifests": the last route keyword decides.
    ['GET', '/v2/blobs/manifests/latest', 'manifest_get'],
    ['GET', `/v2/manifests/blobs/${digest}`, 'blob_get'],
    ['GET', '/ca.crt', 'other'],
    ['GET', '/', 'other'],
    ['POST', '/v2/app/manifests/v1', 'other'],
    ['PUT', '/v2/app/tags/list', 'other'],
  ])('%s %s → %s', (method, path, operation) => {
    expect(classifyOperation(method, path)).toBe(operation);
  });
});
