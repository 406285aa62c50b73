#!/usr/bin/env -S node --max-semi-space-size=2 --initial-old-space-size=32
/**
 * Entry point: argv → command. The only place that calls process.exit.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import {
  reportStartFailure,
  runPrimary,
  toleratePrimaryGone,
  workerConfig,
  workerCount,
  workerTicketKeys,
} from './cluster.js';
import { loadConfig } from './config/load.js';
import { commandName } from './command-name.js';
import { ConfigError, RTPError } from './errors.js';
import { superviseSignals } from './lifecycle.js';
import { createLogger } from './log.js';
import type { Config } from './config/schema.js';
import { runCheck } from './check.js';
import { acmeRenew, acmeStatus } from './acme/command.js';
import { issueClient, parseIssueClientArgs } from './pki/client-cert.js';
import { exportCA, rotateCA, showCA, switchCACommand } from './pki/ca-command.js';
import { initCA, kubernetesSecret } from './pki/ca-kubernetes.js';
import { assertPrivateKeys } from './pki/permissions.js';
import { serve } from './serve.js';
import { parseTrustArgs, runTrust } from './trust/command.js';

const BIN = 'registry-tls-proxy';

const USAGE = `registry-tls-proxy: trusted HTTPS in front of a plain-HTTP container registry

Usage:
  registry-tls-proxy serve [--config FILE]   run the proxy
  registry-tls-proxy trust --address HOST:PORT [--install] [--client docker,containerd,containers,system]
                                             print (or, with --install, do) what makes a
                                             client trust this proxy's CA (--install alone:
                                             the clients found on this machine)
  registry-tls-proxy trust --address HOST:PORT --client macos|windows|kubernetes
                                             the command for a Mac or Windows client; for
                                             kubernetes a DaemonSet: | kubectl apply -f -
  registry-tls-proxy ca show                  the CA (PEM, fingerprint, expiry) and the server certificate's SANs
  registry-tls-proxy ca export --out FILE     back up the CA certificate and key (written 0600)
  registry-tls-proxy ca init --out DIR        a CA of its own for tls.caDir (one CA for every replica)
  registry-tls-proxy ca export --kubernetes-secret NAME [--namespace NS]
                                             the Secret of the CA for tls.caDir: | kubectl apply -f -
  registry-tls-proxy ca rotate [--cancel]     CA rotation step 1: create the next CA; clients get both
  registry-tls-proxy ca switch [--back]       CA rotation step 2: the next CA signs from now on
  registry-tls-proxy issue-client NAME [--out DIR] [--lifetime DURATION]
                                             a client certificate for mutual TLS (tls.clientAuth):
                                             client.cert, client.key, ca.crt in docker's certs.d layout
  registry-tls-proxy check [--url https://HOST:PORT]
                                             check certificates, the backend (401 = healthy) and the
                                             running proxy once; exit 1 on a problem (HEALTHCHECK)
  registry-tls-proxy acme status              ACME: account, names, expiry, next renewal, last error
  registry-tls-proxy acme renew [--force]     ACME: order now when due (--force: even when not);
                                             running proxies on tls.dir serve the result
  registry-tls-proxy version                 print the version
  registry-tls-proxy help                    this text

Examples:
  registry-tls-proxy serve --config config/default.yaml
  registry-tls-proxy trust --config config/default.yaml --address registry.lan:5443
  RTP_BACKEND=http://127.0.0.1:5000 RTP_TLS_NAMES=registry.lan,10.0.0.5 registry-tls-proxy serve

Signals (serve): SIGTERM/SIGINT drain (requests in flight finish within
timeouts.drainMs, then exit 0; a second signal exits at once); SIGHUP re-reads
the configuration and certificates without dropping connections.

Every configuration key can be overridden from the environment: RTP_ plus its
path, e.g. RTP_LISTEN, RTP_BACKEND, RTP_TLS_DIR, RTP_TLS_NAMES, RTP_ADMIN_LISTEN.
Documented example with every key: config/default.yaml.
`;

/** USAGE with the command as the user runs it (`node dist/cli.js` from a clone), its columns kept. */
function usage(): string {
  const name = commandName();
  if (name === BIN) return USAGE;
  return USAGE.split('\n')
    .map((line) => {
      if (!line.includes(`${BIN} `)) return line;
      const renamed = line.replaceAll(`${BIN} `, `${name} `);
      // Keep the description column: take the length difference out of the gap before it.
      const delta = renamed.length - line.length;
      const gap = / {3,}/.exec(renamed);
      if (!gap || delta === 0) return renamed;
      const width = Math.max(1, gap[0].length - delta);
      return (
        renamed.slice(0, gap.index) + ' '.repeat(width) + renamed.slice(gap.index + gap[0].length)
      );
    })
    .join('\n');
}

/** Exit codes: 0 fine, 1 failed while running, 2 bad usage or configuration. */
async function main(argv: string[]): Promise<number> {
  const [command = 'help', ...rest] = argv;
  switch (command) {
    case 'serve':
      return runServe(rest);
    case 'trust':
      return runTrustCommand(rest);
    case 'ca':
      return runCACommand(rest);
    case 'check':
      return runCheckCommand(rest);
    case 'acme':
      return runACMECommand(rest);
    case 'issue-client': {
      const { file, rest: more } = takeConfigFlag(rest);
      return withConfig(file, (config) => issueClient(config, parseIssueClientArgs(more)));
    }
    case 'version':
    case '--version':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage());
      return 0;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${usage()}`);
      return 2;
  }
}

async function runServe(args: string[]): Promise<number> {
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--config' || arg === '-c') {
      file = args[++i];
      if (file === undefined)
        return usageError('--config needs a file, e.g. --config config/default.yaml');
    } else if (arg.startsWith('--config=')) {
      file = arg.slice('--config='.length);
    } else {
      return usageError(`serve: unknown argument ${JSON.stringify(arg)}`);
    }
  }
  const load = () => loadConfig(file === undefined ? {} : { file });
  let config;
  try {
    // A worker serves what its primary validated (and re-validates on SIGHUP).
    config = cluster.isWorker ? workerConfig() : load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`registry-tls-proxy: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const count = workerCount(config);
  const role = cluster.isWorker ? 'worker' : count <= 1 ? 'single' : 'primary';
  const logger =
    cluster.isWorker && cluster.worker
      ? createLogger(config.log.level).child({ worker: cluster.worker.id })
      : createLogger(config.log.level);
  if (cluster.isWorker) toleratePrimaryGone(logger);
  const lifecycle = superviseSignals({
    logger,
    role,
    config,
    loadAgain: () => {
      const next = load();
      assertPrivateKeys(next);
      return next;
    },
  });
  let running;
  try {
    // Before any key is read or written: the same rule at start-up and on reload.
    assertPrivateKeys(config);
    running =
      role === 'single'
        ? await serve(config, logger)
        : role === 'primary'
          ? await runPrimary(config, logger, count)
          : await serve(config, logger, {
              kind: 'worker',
              id: cluster.worker?.id ?? 0,
              ticketKeys: workerTicketKeys(),
            });
  } catch (err) {
    if (err instanceof RTPError) {
      logger.fatal({ code: err.code }, err.message);
      // A worker's primary says it, once for all its workers.
      if (role === 'worker') await reportStartFailure(err);
      else process.stderr.write(`registry-tls-proxy: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  return lifecycle.run(running);
}

async function runCACommand(args: string[]): Promise<number> {
  const { file, rest } = takeConfigFlag(args);
  const [sub, ...more] = rest;
  return withConfig(file, (config) => {
    if (sub === 'show' && more.length === 0) return showCA(config);
    if (sub === 'export' && more[0] === '--out' && more[1] && more.length === 2) {
      return exportCA(config, more[1]);
    }
    if (sub === 'export' && more[0] === '--kubernetes-secret' && more[1]) {
      const ns = more[2] === '--namespace' && more[3] && more.length === 4 ? more[3] : undefined;
      if (more.length === 2 || ns) return kubernetesSecret(config, more[1], ns);
    }
    if (sub === 'init' && more[0] === '--out' && more[1] && more.length === 2) {
      return initCA(config, more[1]);
    }
    if (sub === 'rotate') return rotateCA(config, more);
    if (sub === 'switch') return switchCACommand(config, more);
    throw new RTPError(
      'USAGE',
      `usage: ${commandName()} ca show | ca init --out DIR | ca export --out FILE | ca export --kubernetes-secret NAME [--namespace NS] | ca rotate [--cancel] | ca switch [--back]`,
    );
  });
}

/** Loads the configuration, runs `fn`, prints its text; maps errors to exit codes. */
async function withConfig(
  file: string | undefined,
  fn: (config: Config) => string | Promise<string>,
): Promise<number> {
  try {
    process.stdout.write(await fn(loadConfig(file === undefined ? {} : { file })));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || (err instanceof RTPError && err.code === 'USAGE')) {
      process.stderr.write(`registry-tls-proxy: ${err.message}\n`);
      return 2;
    }
    if (err instanceof RTPError) {
      process.stderr.write(`registry-tls-proxy: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

async function runACMECommand(args: string[]): Promise<number> {
  const { file, rest } = takeConfigFlag(args);
  const [sub, ...flags] = rest;
  const unknown = flags.filter((f) => f !== '--force');
  return withConfig(file, (config) => {
    if (sub === 'status' && flags.length === 0) return acmeStatus(config);
    if (sub === 'renew' && unknown.length === 0)
      return acmeRenew(config, flags.includes('--force'));
    throw new RTPError('USAGE', `usage: acme status | acme renew [--force]\n\n${usage()}`);
  });
}

/** Exit 0 healthy, 1 a problem found, 2 bad usage or configuration. */
async function runCheckCommand(args: string[]): Promise<number> {
  const { file, rest } = takeConfigFlag(args);
  let url: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--url' && rest[i + 1]) url = rest[++i];
    else return usageError(`check: unknown argument ${JSON.stringify(rest[i])}`);
  }
  let healthy = false;
  const code = await withConfig(file, async (config) => {
    const report = await runCheck(config, url === undefined ? {} : { url });
    healthy = report.ok;
    return report.text;
  });
  return code === 0 && !healthy ? 1 : code;
}

async function runTrustCommand(args: string[]): Promise<number> {
  const { file, rest } = takeConfigFlag(args);
  return withConfig(file, async (config) => {
    let text = '';
    await runTrust(config, parseTrustArgs(rest), (t) => (text += t));
    return text;
  });
}

/** Splits `--config FILE` / `--config=FILE` off the other arguments. */
function takeConfigFlag(args: string[]): { file: string | undefined; rest: string[] } {
  let file: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--config' || arg === '-c') file = args[++i];
    else if (arg.startsWith('--config=')) file = arg.slice('--config='.length);
    else rest.push(arg);
  }
  return { file, rest };
}

function usageError(message: string): number {
  process.stderr.write(`registry-tls-proxy: ${message}\n\n${usage()}`);
  return 2;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `registry-tls-proxy: unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`,
    );
    process.exit(1);
  },
);
