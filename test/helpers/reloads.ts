import type { Proxy } from './processes.js';

/** Counts the proxy's "reloaded configuration" lines as they come; `next()` waits for one more. */
export function reloadCounter(proxy: Proxy) {
  let count = 0;
  let partial = '';
  let waiters: Array<{ target: number; resolve: () => void }> = [];
  proxy.child.stdout?.on('data', (chunk: Buffer | string) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.includes('"msg":"reloaded configuration')) count++;
    waiters = waiters.filter((w) => (w.target <= count ? (w.resolve(), false) : true));
  });
  return {
    count: () => count,
    /** SIGHUP, and resolve once the proxy says it reloaded (rejects after `timeoutMs`). */
    reload(timeoutMs = 20_000): Promise<void> {
      const target = count + 1;
      proxy.child.kill('SIGHUP');
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no reload ${target} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({ target, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
  };
}
