/** Set-up straight against the registry's plain-HTTP API (not through the proxy, not under test). */
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';

export interface PlainResponse {
  status: number;
  location: string;
  body: string;
}

export function plainRequest(
  url: string,
  method: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<PlainResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method, headers: { ...headers, 'content-length': body?.length ?? 0 } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            location: res.headers.location ?? '',
            body: text,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function blobOf(data: Buffer): { data: Buffer; digest: string } {
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

/** A blob into the registry: POST, then one PUT with the whole body. */
export async function pushBlobDirect(
  registryURL: string,
  repo: string,
  blob: { data: Buffer; digest: string },
): Promise<void> {
  const started = await plainRequest(`${registryURL}/v2/${repo}/blobs/uploads/`, 'POST');
  const location = new URL(started.location, registryURL);
  location.searchParams.set('digest', blob.digest);
  const put = await plainRequest(location.toString(), 'PUT', blob.data, {
    'content-type': 'application/octet-stream',
  });
  if (put.status !== 201) throw new Error(`pushing a test blob answered ${put.status}`);
}
