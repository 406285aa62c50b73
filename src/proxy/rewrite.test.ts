import { describe, expect, it } from 'vitest';
import { rewriteAuthenticate, rewriteLocation, type RewriteContext } from './rewrite.js';

const LAN: RewriteContext = {
  backend: new URL('http://127.0.0.1:5000'),
  publicHost: 'registry.lan:5443',
  publicPort: 5443,
};
const NO_PORT: RewriteContext = {
  backend: new URL('http://127.0.0.1:5000'),
  publicHost: 'registry.lan',
  publicPort: 443,
};
const V6: RewriteContext = {
  backend: new URL('http://127.0.0.1:5000'),
  publicHost: '[::1]:5443',
  publicPort: 5443,
};
const NAMED_BACKEND: RewriteContext = {
  backend: new URL('http://registry-backend'),
  publicHost: 'registry.lan:5443',
  publicPort: 5443,
};

const S3 =
  'https://s3.amazonaws.com/bucket/docker/registry/v2/blobs/sha256/ab/abcd/data' +
  '?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1' +
  '&X-Amz-Expires=1200&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef';

describe('rewriteLocation', () => {
  it.each<[string, RewriteContext, string, string]>([
    [
      "the backend's own address",
      LAN,
      'http://127.0.0.1:5000/v2/library/alpine/blobs/uploads/4f1e-9a?_state=AbC%2Bd%3D%3D&digest=sha256%3A00',
      'https://registry.lan:5443/v2/library/alpine/blobs/uploads/4f1e-9a?_state=AbC%2Bd%3D%3D&digest=sha256%3A00',
    ],
    [
      "the backend's own address with no path",
      LAN,
      'http://127.0.0.1:5000',
      'https://registry.lan:5443',
    ],
    [
      'the path exactly as written (no normalisation of .. or encodings)',
      LAN,
      'http://127.0.0.1:5000/v2/a%2Fb/../c/blobs/uploads/x?q=a b&empty=&=#frag',
      'https://registry.lan:5443/v2/a%2Fb/../c/blobs/uploads/x?q=a b&empty=&=#frag',
    ],
    [
      'an upper-case scheme and host',
      LAN,
      'HTTP://REGISTRY.LAN:5443/v2/r/manifests/latest',
      'https://registry.lan:5443/v2/r/manifests/latest',
    ],
    [
      'the public host over plain http with the public port',
      LAN,
      'http://registry.lan:5443/v2/r/blobs/uploads/u1?_state=s',
      'https://registry.lan:5443/v2/r/blobs/uploads/u1?_state=s',
    ],
    [
      'the public host over plain http with no port',
      LAN,
      'http://registry.lan/v2/r/blobs/uploads/u1?_state=s',
      'https://registry.lan:5443/v2/r/blobs/uploads/u1?_state=s',
    ],
    [
      'the public name on the backend port',
      LAN,
      'http://registry.lan:5000/v2/r/blobs/sha256:00',
      'https://registry.lan:5443/v2/r/blobs/sha256:00',
    ],
    [
      'the public host with no port, reached on 443',
      NO_PORT,
      'http://registry.lan/v2/r/blobs/uploads/u1',
      'https://registry.lan/v2/r/blobs/uploads/u1',
    ],
    [
      'the backend address for an IPv6 public host',
      V6,
      'http://127.0.0.1:5000/v2/r/blobs/uploads/u1?_state=s',
      'https://[::1]:5443/v2/r/blobs/uploads/u1?_state=s',
    ],
    [
      'an IPv6 public host over plain http',
      V6,
      'http://[::1]:5443/v2/r/blobs/uploads/u1',
      'https://[::1]:5443/v2/r/blobs/uploads/u1',
    ],
    [
      'a backend on port 80, written with the port',
      NAMED_BACKEND,
      'http://registry-backend:80/v2/r/blobs/uploads/u1',
      'https://registry.lan:5443/v2/r/blobs/uploads/u1',
    ],
    [
      'a backend on port 80, written without the port',
      NAMED_BACKEND,
      'http://registry-backend/v2/r/blobs/uploads/u1',
      'https://registry.lan:5443/v2/r/blobs/uploads/u1',
    ],
  ])('rewrites %s', (_what, ctx, location, expected) => {
    expect(rewriteLocation(location, ctx)).toBe(expected);
  });

  it.each<[string, RewriteContext, string]>([
    ['a relative Location', LAN, '/v2/r/blobs/uploads/u1?_state=AbC%2Bd%3D'],
    ['a relative Location without a leading slash', LAN, 'uploads/u1?_state=s'],
    ['a protocol-relative Location to another host', LAN, '//cdn.example/v2/r'],
    ['a foreign host (a storage redirect)', LAN, S3],
    ['a foreign host on the backend port', LAN, 'http://10.9.9.9:5000/v2/r/blobs/sha256:00'],
    ['an https URL to the public host', LAN, 'https://registry.lan:5443/v2/r/blobs/uploads/u1'],
    ['an https URL to the backend address', LAN, 'https://127.0.0.1:5000/v2/r'],
    ['a token server on the public host, another port', LAN, 'http://registry.lan:5001/auth'],
    ['a token server on the backend host, another port', LAN, 'http://127.0.0.1:5001/auth'],
    ['another IPv6 port', V6, 'http://[::1]:5001/auth'],
    ['a non-URL', LAN, 'not a url at all'],
    ['an empty value', LAN, ''],
  ])('leaves %s unchanged', (_what, ctx, location) => {
    expect(rewriteLocation(location, ctx)).toBe(location);
  });
});

describe('rewriteAuthenticate', () => {
  it.each<[string, string, string]>([
    [
      'a quoted Bearer realm, keeping service and scope',
      'Bearer realm="http://127.0.0.1:5000/auth",service="registry.lan:5443",scope="repository:samalba/my-app:pull,push"',
      'Bearer realm="https://registry.lan:5443/auth",service="registry.lan:5443",scope="repository:samalba/my-app:pull,push"',
    ],
    [
      'an unquoted Bearer realm, quoting it',
      'Bearer realm=http://127.0.0.1:5000/auth,service=registry,scope=repository:r:pull',
      'Bearer realm="https://registry.lan:5443/auth",service=registry,scope=repository:r:pull',
    ],
    [
      'a realm on the public host over plain http, with its query',
      'Bearer realm="http://registry.lan/token?account=x",service="r"',
      'Bearer realm="https://registry.lan:5443/token?account=x",service="r"',
    ],
    [
      'a realm with other parameters first and spaces around =',
      'Bearer service="r", realm = "http://127.0.0.1:5000/auth", error="invalid_token"',
      'Bearer service="r", realm = "https://registry.lan:5443/auth", error="invalid_token"',
    ],
    [
      'the realm only, not a service that happens to be a URL',
      'Bearer realm="http://127.0.0.1:5000/auth",service="http://127.0.0.1:5000"',
      'Bearer realm="https://registry.lan:5443/auth",service="http://127.0.0.1:5000"',
    ],
    [
      'a realm parameter named in another case',
      'Bearer Realm="http://127.0.0.1:5000/auth"',
      'Bearer Realm="https://registry.lan:5443/auth"',
    ],
  ])('rewrites %s', (_what, header, expected) => {
    expect(rewriteAuthenticate(header, LAN)).toBe(expected);
  });

  it.each<[string, string]>([
    ['a Basic realm', 'Basic realm="x"'],
    ['the registry htpasswd realm', 'Basic realm="Registry Realm"'],
    [
      'a foreign token server',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
    ],
    ['a token server on another port', 'Bearer realm="http://registry.lan:5001/auth",service="r"'],
    ['an https realm', 'Bearer realm="https://registry.lan:5443/auth",service="r"'],
    ['a challenge with no realm', 'Bearer service="http://127.0.0.1:5000/auth"'],
  ])('leaves %s unchanged', (_what, header) => {
    expect(rewriteAuthenticate(header, LAN)).toBe(header);
  });

  it('rewrites the realm for an IPv6 public host', () => {
    expect(rewriteAuthenticate('Bearer realm="http://127.0.0.1:5000/auth",service="r"', V6)).toBe(
      'Bearer realm="https://[::1]:5443/auth",service="r"',
    );
  });
});
