/**
 * A supplied certificate mounted from a Kubernetes Secret: the kubelet updates
 * the volume by swapping the `..data` symlink (test/helpers/atomic-writer.ts),
 * never by replacing tls.crt itself. The proxy must serve the update within
 * seconds — with tls.checkInterval an hour, so the watch alone must see it —
 * in one process and in every worker of a cluster.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAtomically } from './helpers/atomic-writer.js';
import { byoChain } from './helpers/byo-chain.js';
import { startProxy, tempDir, waitForOutput, type Proxy } from './helpers/processes.js';
import { tlsConnect } from './helpers/raw-tls.js';

const tmp = tempDir('k8s-secret');
const chain = byoChain(tmp.path);
/** Nothing listens there: these tests are about the certificate, not proxying. */
const backend = 'http://127.0.0.1:9';
/** The README's promise, "within seconds", as a number. */
const SERVED_WITHIN_MS = 5000;

beforeAll(() => chain.build('leaf-0'));
afterAll(() => tmp.remove());

/** A kubernetes.io/tls Secret's keys, with the volume's defaultMode 0400. */
function writeSecret(mount: string, tag: string): void {
  const file = (name: string) => ({ data: readFileSync(chain.file(name)), mode: 0o400 });
  writeAtomically(mount, {
    'tls.crt': file(`${tag}-fullchain.crt`),
    'tls.key': file(`${tag}.key`),
    'ca.crt': file('root.crt'),
  });
}

async function servedSerial(port: number, ca: string): Promise<string> {
  const socket = await tlsConnect(port, ca);
  const serial = socket.getPeerCertificate().serialNumber;
  socket.end();
  return serial;
}

function serialOf(tag: string): string {
  return new X509Certificate(readFileSync(chain.file(`${tag}.crt`))).serialNumber;
}

/**
 * Resolves with the milliseconds until `handshakes` handshakes in a row (enough
 * to reach every worker: the cluster hands connections out round-robin) all
 * see `serial`; throws after SERVED_WITHIN_MS.
 */
async function untilServed(
  proxy: Proxy,
  ca: string,
  serial: string,
  handshakes: number,
): Promise<number> {
  const started = Date.now();
  let seen: string[] = [];
  while (Date.now() - started < SERVED_WITHIN_MS) {
    seen = [];
    for (let i = 0; i < handshakes; i++) seen.push(await servedSerial(proxy.port, ca));
    if (seen.every((s) => s === serial)) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `serial ${serial} not served within ${SERVED_WITHIN_MS} ms; last handshakes saw ${seen.join(', ')}; log:\n${proxy.output()}`,
  );
}

describe('a supplied certificate in a Kubernetes Secret volume', () => {
  it.each([
    { workers: 1, handshakes: 1 },
    { workers: 2, handshakes: 4 },
  ])(
    'serves each ..data swap within 5 s with tls.checkInterval 1h, twice in a row ($workers worker(s))',
    async ({ workers, handshakes }) => {
      const mount = join(tmp.path, `secret-${workers}`);
      writeSecret(mount, 'leaf-0');
      const proxy = await startProxy({
        backend,
        tlsDir: join(tmp.path, `tls-${workers}`),
        env: {
          RTP_TLS_CERT: join(mount, 'tls.crt'),
          RTP_TLS_KEY: join(mount, 'tls.key'),
          RTP_TLS_CA: join(mount, 'ca.crt'),
          RTP_TLS_CHECK_INTERVAL: '1h',
          RTP_WORKERS: String(workers),
        },
      });
      try {
        if (workers > 1) {
          await waitForOutput(proxy.child, proxy.output, /2 workers serve the public port/);
        }
        const ca = readFileSync(chain.file('root.crt'), 'utf8');
        expect(await servedSerial(proxy.port, ca)).toBe(serialOf('leaf-0'));
        for (const tag of [`leaf-${workers}-a`, `leaf-${workers}-b`]) {
          chain.issueLeaf(tag, 20);
          writeSecret(mount, tag);
          const tookMs = await untilServed(proxy, ca, serialOf(tag), handshakes);
          expect(tookMs).toBeLessThan(SERVED_WITHIN_MS);
          const swappedBy = proxy
            .logLines()
            .filter((l) => l['msg'] === 'swapped in a new server certificate')
            .filter((l) => l['serial'] === serialOf(tag))
            .map((l) => l['worker'] ?? 'single');
          expect(swappedBy.sort()).toEqual(workers === 1 ? ['single'] : [1, 2]);
        }
      } finally {
        await proxy.stop();
      }
    },
  );
});
