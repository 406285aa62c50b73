/**
 * TLS handshakes with OpenSSL's own tools. `openssl s_time` counts connections
 * (one `*` per full handshake, one `r` per resumed one); `-www /v2/` makes each
 * connection send a request and read the answer, which is also when a TLS 1.3
 * client receives its session tickets (sent after the handshake), so `-reuse`
 * resumes with TLS 1.3 tickets. s_time does not fail on an unverifiable
 * certificate, so resumption and verification are checked separately with
 * `openssl s_client -verify_return_error`.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';

export interface HandshakeCount {
  full: number;
  resumed: number;
  seconds: number;
}

/** `clients` s_time processes side by side for `seconds`; counts and wall time. */
export async function countHandshakes(
  port: number,
  caFile: string,
  mode: '-new' | '-reuse',
  seconds: number,
  clients: number,
): Promise<HandshakeCount> {
  const started = process.hrtime.bigint();
  const results = await Promise.all(
    Array.from({ length: clients }, () =>
      run(
        'openssl',
        [
          's_time',
          '-connect',
          `127.0.0.1:${port}`,
          '-CAfile',
          caFile,
          mode,
          '-time',
          String(seconds),
          '-www',
          '/v2/',
        ],
        { timeoutMs: (seconds + 30) * 1000 },
      ),
    ),
  );
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  let full = 0;
  let resumed = 0;
  for (const result of results) {
    if (result.code !== 0)
      throw new Error(`openssl s_time ${mode} exited ${result.code}:\n${result.stderr}`);
    // The progress line is one character per connection, before the summary lines.
    const marks = result.stdout
      .split('\n')
      .filter((line) => /^[*r]+$/.test(line))
      .join('');
    for (const mark of marks) {
      if (mark === 'r') resumed += 1;
      else full += 1;
    }
  }
  if (full + resumed === 0)
    throw new Error(`openssl s_time ${mode} on port ${port}: no connections`);
  return { full, resumed, seconds: wall };
}

export interface Resumption {
  /** TLS 1.2: `openssl s_client -reconnect` says "Reused" after the first connection. */
  tls12Reconnect: boolean;
  /** TLS 1.3: a session saved after a request (-sess_out) resumes (-sess_in → "Reused"). */
  tls13Ticket: boolean;
}

const REQUEST = 'GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';

/**
 * Checks resumption strictly (the chain must verify against the CA). With TLS 1.3,
 * OpenSSL 3.0's `s_client -reconnect` reconnects before it has read the server's
 * tickets and never resumes, against any server, so TLS 1.3 is checked by saving
 * the session after a full request and offering it on a second connection.
 */
export async function checkResumption(
  port: number,
  caFile: string,
  dir: string,
): Promise<Resumption> {
  const base = ['-connect', `127.0.0.1:${port}`, '-CAfile', caFile, '-verify_return_error'];
  const reconnect = await sClient([...base, '-tls1_2', '-reconnect'], '');
  const session = join(dir, `session-${port}.pem`);
  rmSync(session, { force: true });
  const first = await sClient([...base, '-tls1_3', '-ign_eof', '-sess_out', session], REQUEST);
  const second = await sClient([...base, '-tls1_3', '-ign_eof', '-sess_in', session], REQUEST);
  for (const out of [reconnect, first, second]) {
    if (!/Verify return code: 0 \(ok\)/.test(out)) {
      throw new Error(`openssl s_client on port ${port}: the certificate did not verify:\n${out}`);
    }
  }
  return {
    tls12Reconnect: /^Reused, TLSv1\.2/m.test(reconnect),
    tls13Ticket: /^New, TLSv1\.3/m.test(first) && /^Reused, TLSv1\.3/m.test(second),
  };
}

async function sClient(args: string[], input: string): Promise<string> {
  const result = await run('openssl', ['s_client', ...args], { input, timeoutMs: 30_000 });
  return result.stdout + result.stderr;
}
