/**
 * The primary's one way to message a worker. A worker can exit between
 * isConnected() and the write; the send then fails with EPIPE, and without a
 * callback Node raises that as the Worker's 'error' event, which throws in the
 * primary and takes every worker's clients with it (seen during reloads while
 * Prometheus scraped).
 */
import type { Worker } from 'node:cluster';

/** Sends `message`; `onFailed` runs instead when the worker has gone or goes mid-write. */
export function sendToWorker(worker: Worker, message: unknown, onFailed = () => {}): void {
  if (!worker.isConnected()) return onFailed();
  worker.send(message as Parameters<Worker['send']>[0], undefined, {}, (err) => {
    if (err) onFailed();
  });
}
