/**
 * One ACME order with acme-client: the account (created once, its key and URL
 * reused), a fresh key and CSR for the names, the challenges answered through
 * `answer` (challenges.ts), and the full chain back. No ACME or JWS code of our own.
 */
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import type * as acme from 'acme-client';
import { acmeClientModule } from './client-module.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { acmeNames, directoryURL, effectiveChallenges } from './config.js';
import type { ChallengeAnswers } from './challenges.js';
import { readAccount, writeAccount, writeAccountKey } from './store.js';

/** What the CA said last when it refused something: its problem type and Retry-After. */
export interface CAProblem {
  type?: string;
  detail?: string;
  retryAfterMs?: number;
}

type ACMEModule = Awaited<ReturnType<typeof acmeClientModule>>;

let lastProblem: CAProblem | undefined;
/** Read through a call: TypeScript narrows the variable itself across the awaits that set it. */
const problemType = (): string | undefined => lastProblem?.type;
let intercepting = false;

/**
 * acme-client keeps only a problem's detail in the errors it throws; the type
 * (urn:ietf:params:acme:error:rateLimited) and Retry-After that the backoff honours
 * are read here, from its HTTP client's responses.
 */
function interceptProblems(acme: ACMEModule): void {
  if (intercepting) return;
  intercepting = true;
  const note = (resp: { status?: number; data?: unknown; headers?: Record<string, unknown> }) => {
    if (!resp || (resp.status ?? 0) < 400) return;
    const data = (resp.data ?? {}) as { type?: unknown; detail?: unknown };
    const retryAfter = resp.headers?.['retry-after'];
    lastProblem = {
      ...(typeof data.type === 'string' ? { type: data.type } : {}),
      ...(typeof data.detail === 'string' ? { detail: data.detail } : {}),
      ...(retryAfter !== undefined ? { retryAfterMs: parseRetryAfter(String(retryAfter)) } : {}),
    };
  };
  acme.axios.interceptors.response.use(
    (resp) => (note(resp), resp),
    (err: { response?: Parameters<typeof note>[0] }) => {
      if (err?.response) note(err.response);
      throw err;
    },
  );
}

/** RFC 9110 §10.2.3: seconds, or an HTTP date. */
export function parseRetryAfter(value: string, now = Date.now()): number {
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}

export class OrderError extends Error {
  constructor(
    message: string,
    readonly problem: CAProblem | undefined,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

export interface OrderOptions {
  config: Config;
  dir: string;
  logger: Logger;
  answers: ChallengeAnswers;
}

/** Orders a certificate for tls.acme.names; resolves with the full chain and its key. */
export async function orderCertificate(
  opts: OrderOptions,
): Promise<{ chainPEM: string; keyPEM: string }> {
  const { config, dir, logger } = opts;
  const acmeConfig = config.tls.acme;
  const acme = await acmeClientModule();
  interceptProblems(acme);
  lastProblem = undefined;
  // acme-client retries a failed request 5 times, 5 s apart and longer (75 s in all),
  // within one order; the lifecycle's backoff (renewal-time.ts) does the long waits.
  Object.assign((acme.axios.defaults as { acmeSettings?: object }).acmeSettings ?? {}, {
    retryMaxAttempts: 2,
    retryDefaultDelay: 1,
  });
  const directory = directoryURL(acmeConfig.directory);
  // One process, one ACME server: the agent that trusts tls.acme.caBundle is set for all of acme-client.
  acme.axios.defaults.httpsAgent =
    acmeConfig.caBundle !== ''
      ? new Agent({ ca: readFileSync(acmeConfig.caBundle, 'utf8') })
      : undefined;
  const account = readAccount(dir);
  let accountKey = account.keyPEM;
  if (!accountKey) {
    accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
    writeAccountKey(dir, accountKey);
    logger.info({ directory }, 'ACME: created an account key');
  }
  const names = acmeNames(config);
  const [key, csr] = await acme.crypto.createCsr(
    { commonName: names[0] as string, altNames: names },
    await acme.crypto.createPrivateEcdsaKey(),
  );
  // The stored account, when it was registered with this directory (not after a switch, e.g. staging → production).
  const storedURL = account.url && account.directory === directory ? account.url : undefined;
  const order = async (accountUrl: string | undefined) => {
    const client = acmeClient(acme, acmeConfig, directory, accountKey, accountUrl);
    // Registered (and its URL stored) before the order: an order that fails must not
    // leave the next attempt to find the account again, which acme-client does with an
    // empty update that pebble and Boulder refuse.
    if (!accountUrl) await registerAccount(client, acmeConfig, dir, directory);
    return client.auto({
      csr,
      ...(acmeConfig.email !== '' ? { email: acmeConfig.email } : {}),
      termsOfServiceAgreed: acmeConfig.agreeToTerms,
      challengePriority: effectiveChallenges(config),
      // Its own pre-check fetches from this host through the system resolver; the CA's view is what counts.
      skipChallengeVerification: true,
      challengeCreateFn: (authz, challenge, keyAuthorization) =>
        opts.answers.present(authz, challenge, keyAuthorization),
      challengeRemoveFn: (authz, challenge, keyAuthorization) =>
        opts.answers.remove(authz, challenge, keyAuthorization),
    });
  };
  try {
    let chainPEM: string;
    try {
      chainPEM = await order(storedURL);
    } catch (err) {
      // A CA that no longer knows the stored account (its data reset, an internal CA
      // rebuilt) would refuse every order from now on: register again, once.
      if (!storedURL || !problemType()?.endsWith(':accountDoesNotExist')) throw err;
      logger.warn(
        { directory, account: account.url },
        'ACME: the server no longer knows the stored account; registering a new one',
      );
      lastProblem = undefined;
      chainPEM = await order(undefined);
    }
    return { chainPEM, keyPEM: key.toString() };
  } catch (err) {
    throw new OrderError((err as Error).message ?? String(err), lastProblem, { cause: err });
  }
}

function acmeClient(
  acme: ACMEModule,
  acmeConfig: Config['tls']['acme'],
  directory: string,
  accountKey: string,
  accountUrl: string | undefined,
): acme.Client {
  return new acme.Client({
    directoryUrl: directory,
    accountKey,
    ...(accountUrl ? { accountUrl } : {}),
    ...(acmeConfig.eab.kid !== ''
      ? { externalAccountBinding: { kid: acmeConfig.eab.kid, hmacKey: acmeConfig.eab.hmacKey } }
      : {}),
    backoffMin: 500,
    backoffMax: 5000,
  });
}

async function registerAccount(
  client: acme.Client,
  acmeConfig: Config['tls']['acme'],
  dir: string,
  directory: string,
): Promise<void> {
  await client.createAccount({
    termsOfServiceAgreed: acmeConfig.agreeToTerms,
    ...(acmeConfig.email !== '' ? { contact: [`mailto:${acmeConfig.email}`] } : {}),
  });
  writeAccount(dir, { url: client.getAccountUrl(), directory });
}
