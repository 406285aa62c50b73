/** Runs skopeo with strict TLS verification against a cert dir holding only what the test put there. */
import { execFile } from 'node:child_process';

export interface SkopeoResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function skopeo(args: string[], timeoutMs = 300_000): Promise<SkopeoResult> {
  return new Promise((resolve) => {
    execFile(
      'skopeo',
      ['--insecure-policy', ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 64 << 20,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
