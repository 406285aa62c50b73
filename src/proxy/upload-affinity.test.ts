import { describe, expect, it } from 'vitest';
import { pinUpload, takePin } from './upload-affinity.js';

const UPLOAD = 'https://registry.lan:5443/v2/team/app/blobs/uploads/5d1f-uuid';

describe('upload affinity', () => {
  it.each([
    [`${UPLOAD}?_state=abc`, `${UPLOAD}?_state=abc&_rtp_replica=2`],
    [UPLOAD, `${UPLOAD}?_rtp_replica=2`],
    ['/v2/a/blobs/uploads/u1?_state=x', '/v2/a/blobs/uploads/u1?_state=x&_rtp_replica=2'],
    [`${UPLOAD}?_state=abc#f`, `${UPLOAD}?_state=abc&_rtp_replica=2#f`],
  ])('adds the replica to an upload URL: %s', (location, pinned) => {
    expect(pinUpload(location, 2)).toBe(pinned);
  });

  it.each([
    'https://registry.lan:5443/v2/team/app/blobs/sha256:abc',
    'https://storage.example/bucket/blob?sig=1',
    'https://registry.lan:5443/v2/team/app/blobs/uploads/',
  ])('leaves other URLs alone: %s', (location) => {
    expect(pinUpload(location, 1)).toBe(location);
  });

  it('takes the number out again, whatever else the query holds', () => {
    const path = '/v2/team/app/blobs/uploads/u1';
    expect(takePin(`${path}?_state=abc&_rtp_replica=2&digest=sha256:1`)).toEqual({
      index: 2,
      url: `${path}?_state=abc&digest=sha256:1`,
    });
    expect(takePin(`${path}?_rtp_replica=0`)).toEqual({ index: 0, url: path });
    expect(takePin(`${path}?_state=abc`)).toEqual({ index: undefined, url: `${path}?_state=abc` });
    // A bad number names no replica, and still never reaches the registry.
    expect(takePin(`${path}?_rtp_replica=x&_state=a`)).toEqual({
      index: undefined,
      url: `${path}?_state=a`,
    });
    expect(takePin(pinUpload(`${path}?_state=s`, 7).replace(/^https?:\/\/[^/]+/, ''))).toEqual({
      index: 7,
      url: `${path}?_state=s`,
    });
  });
});
