/**
 * Gives back what a retired generation of servers in this process held, once it has
 * finished (runtime-generations.ts).
 *
 * Each reload builds a new HTTPS server, whose TLS contexts live in OpenSSL's memory,
 * outside V8's heap: V8 sees a few small wrapper objects, never the hundreds of KiB
 * behind them, so nothing urges a major collection, and garbage servers piled up
 * (1,000 SIGHUPs: RSS +44 MiB on Node 20, +120 MiB on Node 26, with the JS heap in use
 * flat at 11 MiB after a full collection). One full collection once the retired
 * generations are gone frees them. A reload is an operator's action, rare, and the
 * collection of this small heap takes a few milliseconds.
 *
 * Node has no public call for a collection: `--expose-gc` set at run time makes `gc`
 * a global of every context created afterwards, here one fresh vm context.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | null | undefined;

/**
 * Makes the collector: at start-up, before traffic, as V8 flags are best changed while
 * nothing runs. A cluster primary never calls it (it holds no TLS servers).
 */
export function prepareCollector(): void {
  collector();
}

/** A full, synchronous collection; null where the runtime refuses. */
function collector(): (() => void) | null {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      collect = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/**
 * Collects on the next turn of the event loop, once per retired generation: RSS is a
 * high-water mark (freed memory mostly stays with the process), so a burst of reloads
 * must not pile up garbage before one collection at its end.
 */
export function collectSoon(): void {
  const gc = collector();
  if (gc) setImmediate(gc);
}
