/**
 * The logins of one configuration (auth.htpasswd): its file's users, the failed-login
 * limit, and the authenticate stage built on them. One per generation (a reload
 * reads the file afresh); in a cluster each worker has its own, and so its own cache.
 */
import type { Config } from '../config/schema.js';
import type { Verdict } from '../health/probe.js';
import type { Logger } from '../log.js';
import type { ProxyMetrics } from '../metrics/registry.js';
import { createAuthenticate, type Authenticate } from '../proxy/authenticate.js';
import { clientAddressOf } from '../net/client-address.js';
import { originalClientOf } from '../proxy/headers.js';
import { htpasswdLogins } from './htpasswd.js';
import { loginLimit } from './login-limit.js';

export interface ProxyLogins {
  authenticate: Authenticate;
  /** Stops watching the file. */
  close(): void;
}

/** Undefined when auth.htpasswd is off. */
export function proxyLogins(
  config: Config,
  logger: Logger,
  metrics: ProxyMetrics,
  opts: {
    isTrustedProxy?: ((address: string) => boolean) | undefined;
    verdict?: (() => Verdict) | undefined;
  },
): ProxyLogins | undefined {
  if (config.auth.htpasswd === '') return undefined;
  const logins = htpasswdLogins({
    file: config.auth.htpasswd,
    logger,
    onPasswordCheck: (result) => metrics.passwordChecks.inc({ result }),
  });
  const authenticate = createAuthenticate({
    logins,
    limit: loginLimit(),
    anonymousPull: config.auth.anonymous === 'pull',
    realm: config.auth.realm,
    logger,
    count: (result) => metrics.authRequests.inc({ result }),
    clientAddress: (req) =>
      originalClientOf(req.headers, clientAddressOf(req.socket), opts.isTrustedProxy),
    verdict: opts.verdict,
  });
  return { authenticate, close: () => logins.close() };
}
