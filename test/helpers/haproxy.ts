/**
 * haproxy as a real load balancer: `mode tcp` (TLS passes through to the
 * servers), health-checking each server over TLS, run in the foreground (-db)
 * as the test's own child, with an admin socket to read what it thinks of each
 * server (`show stat`, management.txt §9.1 and §9.3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { eventually } from './eventually.js';
import { freePort, stopProcess } from './processes.js';

export interface HAProxyServer {
  name: string;
  port: number;
}

/** One server's row of `show stat`, as an operator reads it. */
export interface ServerState {
  /** UP, DOWN, or a transition such as "UP 1/2" (going down) or "DOWN 1/2" (coming up). */
  status: string;
  /** The last check's result: L7OK, L7STS (wrong HTTP status), L4CON, L6RSP, … ('' before the first). */
  checkStatus: string;
  /** The HTTP status the last layer-7 check got, when it got one. */
  checkCode?: number;
  /** haproxy's own words for the last check, e.g. "Layer7 wrong status". */
  checkDescription: string;
}

export interface HAProxy {
  /** The frontend's port (on 127.0.0.1 unless bindAddress says otherwise). */
  port: number;
  child: ChildProcess;
  output(): string;
  /** Each server's state, by name. */
  servers(): Promise<Map<string, ServerState>>;
  /** Polls for `durationMs`; rejects as soon as a server does not satisfy `want`. */
  serversStay(
    want: (state: ServerState) => boolean,
    what: string,
    durationMs: number,
  ): Promise<void>;
  /** Polls until every server satisfies `want`; rejects at the deadline with the states last seen. */
  waitForServers(
    want: (state: ServerState) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Map<string, ServerState>>;
  stop(): Promise<void>;
}

const BACKEND = 'proxies';

/**
 * Starts haproxy with one frontend on a free loopback port and a round-robin
 * backend of `servers`, each checked over TLS against `caFile` with `checks`
 * (the `option httpchk` and `http-check` lines) every 500 ms; two results in a
 * row change a server's state.
 */
export async function startHAProxy(opts: {
  dir: string;
  servers: readonly HAProxyServer[];
  caFile: string;
  checks: readonly string[];
  /** Where the frontend listens (default 127.0.0.1), e.g. a test host link's root-side address. */
  bindAddress?: string;
  /** More keywords for every server line, e.g. `send-proxy-v2 check-send-proxy`. */
  serverOptions?: string;
}): Promise<HAProxy> {
  const port = await freePort();
  const serverOptions = opts.serverOptions ? ` ${opts.serverOptions}` : '';
  const socket = join(opts.dir, 'admin.sock');
  const config = join(opts.dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      `  stats socket ${socket} mode 600 level admin`,
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  timeout check 5s',
      'frontend registry',
      `  bind ${opts.bindAddress ?? '127.0.0.1'}:${port}`,
      `  default_backend ${BACKEND}`,
      `backend ${BACKEND}`,
      '  balance roundrobin',
      ...opts.checks.map((line) => `  ${line}`),
      ...opts.servers.map(
        (s) =>
          `  server ${s.name} 127.0.0.1:${s.port} check check-ssl verify required ca-file ${opts.caFile} inter 500ms fall 2 rise 2${serverOptions}`,
      ),
    ].join('\n') + '\n',
  );
  const child = spawn('haproxy', ['-f', config, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
  const output = () => text;

  // A check in progress has reset its code to 0 (stats show "* L7STS"): read again once it has
  // ended, within `timeout check`, so that every state reported is that of a finished check.
  const servers = async (): Promise<Map<string, ServerState>> => {
    const deadline = Date.now() + 6_000;
    for (;;) {
      const states = parseServers(await adminCommand(socket, 'show stat'));
      if (![...states.values()].some((s) => s.checkInProgress) || Date.now() > deadline) {
        return new Map(
          [...states].map(([name, { checkInProgress: _, ...state }]) => [name, state]),
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const serversStay = async (
    want: (state: ServerState) => boolean,
    what: string,
    durationMs: number,
  ): Promise<void> => {
    const until = Date.now() + durationMs;
    while (Date.now() < until) {
      const states = await servers();
      if (states.size !== opts.servers.length || ![...states.values()].every(want)) {
        throw new Error(
          `haproxy: servers did not stay ${what}; saw ${JSON.stringify(Object.fromEntries(states))}\nhaproxy output:\n${output()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const waitForServers = async (
    want: (state: ServerState) => boolean,
    what: string,
    timeoutMs = 30_000,
  ): Promise<Map<string, ServerState>> => {
    let last = new Map<string, ServerState>();
    try {
      return await eventually(
        `haproxy's servers to be ${what}`,
        async () => {
          last = await servers();
          return last.size === opts.servers.length && [...last.values()].every(want) && last;
        },
        { timeoutMs, intervalMs: 200 },
      );
    } catch (err) {
      throw new Error(
        `haproxy: servers not ${what} within ${timeoutMs} ms; last seen ${JSON.stringify(Object.fromEntries(last))}\nhaproxy output:\n${output()}`,
        { cause: err },
      );
    }
  };

  // haproxy -db prints nothing when it starts well: ready once the admin socket answers.
  const started = await eventually(
    "haproxy's admin socket to answer",
    async () => (child.exitCode !== null ? 'exited' : (await servers(), 'answering')),
    { timeoutMs: 15_000, intervalMs: 100 },
  ).catch(async (err: Error) => {
    await stopProcess(child, 'SIGKILL');
    throw new Error(`${err.message}\n${output()}`, { cause: err });
  });
  if (started === 'exited') {
    throw new Error(`haproxy exited (${child.exitCode}) at start:\n${output()}`);
  }

  return {
    port,
    child,
    output,
    servers,
    serversStay,
    waitForServers,
    stop: async () => {
      await stopProcess(child);
    },
  };
}

/** Sends one command over the admin socket; haproxy answers and closes. */
function adminCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const conn = connect(socket);
    conn.setEncoding('utf8');
    conn.setTimeout(5_000, () => conn.destroy(new Error(`no answer to "${command}"`)));
    conn.on('data', (d: string) => (answer += d));
    conn.on('end', () => resolve(answer));
    conn.on('error', reject);
    conn.end(`${command}\n`);
  });
}

/** The backend's server rows of `show stat` CSV (header "# pxname,svname,…"). */
function parseServers(csv: string): Map<string, ServerState & { checkInProgress: boolean }> {
  const [header, ...rows] = csv.split('\n').filter((l) => l.length > 0);
  const columns = splitCSV((header ?? '').replace(/^# /, ''));
  const at = (cells: string[], name: string) => cells[columns.indexOf(name)] ?? '';
  const states = new Map<string, ServerState & { checkInProgress: boolean }>();
  for (const row of rows) {
    const cells = splitCSV(row);
    const server = at(cells, 'svname');
    if (at(cells, 'pxname') !== BACKEND || server === 'BACKEND') continue;
    const code = at(cells, 'check_code');
    const checkStatus = at(cells, 'check_status');
    states.set(server, {
      status: at(cells, 'status'),
      checkInProgress: checkStatus.startsWith('* '),
      checkStatus: checkStatus.replace(/^\* /, ''),
      ...(code ? { checkCode: Number(code) } : {}),
      checkDescription: at(cells, 'check_desc'),
    });
  }
  return states;
}

/** One CSV line; haproxy quotes a field that holds a comma or a quote (check texts can). */
function splitCSV(line: string): string[] {
  const cells: string[] = [];
  for (const m of line.matchAll(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g)) {
    const cell = m[1] ?? '';
    cells.push(cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell);
  }
  return cells;
}
