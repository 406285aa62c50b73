/**
 * dns-01 through an operator's command, the contract of lego's exec provider
 * (https://go-acme.github.io/lego/dns/exec/): `COMMAND present FQDN VALUE` before
 * validation, `COMMAND cleanup FQDN VALUE` after, FQDN with its trailing dot. Exit 0 means
 * done; anything else fails the order with the end of the command's stderr.
 *
 * The command is a /bin/sh command line (`/usr/local/bin/dns-hook --zone example.com`),
 * run as `sh -c 'COMMAND "$@"' sh present FQDN VALUE`: the operator's words are split by
 * the shell as they wrote them, while FQDN and VALUE travel as separate arguments that no
 * shell ever parses.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../../log.js';
import { DNSError } from './errors.js';
import { normalizeName } from './wire.js';

/** How long one run may take: a provider API call and its retries, not DNS propagation. */
export const HOOK_TIMEOUT_MS = 120_000;
/** After SIGTERM on timeout, how long the hook gets before SIGKILL. */
const KILL_GRACE_MS = 2000;
const STDERR_TAIL_LINES = 10;
const STDERR_KEEP_BYTES = 16 * 1024;

export type HookAction = 'present' | 'cleanup';

export class HookWriter {
  constructor(
    private readonly command: string,
    private readonly log: Logger,
    private readonly timeoutMs = HOOK_TIMEOUT_MS,
  ) {}

  present(fqdn: string, value: string): Promise<void> {
    return this.run('present', fqdn, value);
  }

  cleanup(fqdn: string, value: string): Promise<void> {
    return this.run('cleanup', fqdn, value);
  }

  private async run(action: HookAction, fqdn: string, value: string): Promise<void> {
    const name = `${normalizeName(fqdn)}.`;
    const started = Date.now();
    await runHook(this.command, [action, name, value], this.timeoutMs);
    this.log.info(
      { action, fqdn: name, durationMs: Date.now() - started },
      'dns-01: hook command done',
    );
  }
}

/** The last lines of a command's stderr, for an error message. */
function tail(stderr: string): string {
  const lines = stderr.trimEnd().split('\n').slice(-STDERR_TAIL_LINES);
  return lines.length === 1 && lines[0] === '' ? '(no stderr)' : lines.join('\n');
}

/**
 * Runs `command` with `args` through /bin/sh in its own process group, so that a timeout
 * stops the whole group (a hook's curl as well as its shell).
 */
export function runHook(
  command: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const shown = `${command} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', `${command} "$@"`, 'sh', ...args], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEEP_BYTES);
    });
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // the group is already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new DNSError(
          'DNS_HOOK_FAILED',
          `dns-01 hook \`${shown}\` could not start: ${err.message}`,
          { cause: err },
        ),
      );
    });
    // A process the hook left running in its group would hold stderr open (and 'close'
    // back) until the timeout: the hook is done when its shell is.
    child.on('exit', () => signalGroup('SIGKILL'));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      if (timedOut)
        return reject(
          new DNSError(
            'DNS_HOOK_TIMEOUT',
            `dns-01 hook \`${shown}\` did not finish within ${timeoutMs / 1000} s and was stopped; its stderr:\n${tail(stderr)}`,
          ),
        );
      if (code === 0) return resolve();
      const how = code === null ? `was killed by ${signal}` : `exited with status ${code}`;
      reject(
        new DNSError(
          'DNS_HOOK_FAILED',
          `dns-01 hook \`${shown}\` ${how}; its stderr:\n${tail(stderr)}`,
        ),
      );
    });
  });
}
