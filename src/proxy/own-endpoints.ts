/**
 * What the proxy answers itself on the public port, never asking the registry: the
 * CA bundle (`/ca.crt`, and `/ca.cer` in DER), the fingerprint-checking installers
 * (`/install-ca.sh` for Linux, `/install-ca-macos.sh`, `/install-ca.ps1` for Windows),
 * the trust page (`/_proxy/trust`, trust-endpoints.ts) and the
 * cached backend verdict for balancers (health.publicPath). They answer whatever
 * allowedPaths says (a client fetches the CA before it can trust anything), and they
 * pass only the framing checks of admit.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { publicVerdictBody } from '../health/report.js';
import type { Verdict } from '../health/probe.js';
import type { ACMETrust } from '../acme/which-certificate.js';
import { macosInstallerScript } from '../trust/installer-macos.js';
import { installerScript } from '../trust/installer-script.js';
import { TRUST_PAGE_PATH } from '../trust/page.js';
import { windowsInstallerScript } from '../trust/installer-windows.js';
import { INSTALLER_PATHS } from '../trust/one-liners.js';
import { refuseHost, requestHostPort, sendSmall, trustFor } from './own-response.js';
import {
  serveCADER,
  serveTrustPage,
  type TrustEndpointOptions,
  type TrustPageSource,
} from './trust-endpoints.js';

export interface OwnEndpoint {
  path: string;
  /** Other methods on this path go to the registry like any request. */
  methods: readonly string[];
  /** Answers the request; returns the body bytes sent. */
  serve(req: IncomingMessage, res: ServerResponse): number;
}

export interface OwnEndpointOptions extends TrustEndpointOptions {
  /** The CA bundle served at GET /ca.crt (public information): during a rotation, both CAs. */
  trustBundlePEM: () => string;
  /** health.publicPath and the cached backend verdict; absent when turned off. */
  health?: { path: string; verdict: () => Verdict; backends: readonly string[] } | undefined;
  /**
   * With tls.acme: what clients by this host install when it is served the ACME
   * certificate (nothing, or the internal ACME server's roots); undefined: our own CA.
   */
  acmeTrust?: ((host: string) => ACMETrust | undefined) | undefined;
  /** What the trust page shows and /ca.cer serves: the material served now, the verdict. */
  trustPage: TrustPageSource;
}

const READ = ['GET', 'HEAD'] as const;

/** The table, by path: one lookup per request. */
export function ownEndpoints(opts: OwnEndpointOptions): ReadonlyMap<string, OwnEndpoint> {
  const { ownHeaders } = opts;
  const table: OwnEndpoint[] = [
    {
      path: '/ca.crt',
      methods: READ,
      // By a name served an internal ACME server's certificate, that server's roots:
      // what the installer, fetching /ca.crt by the same name, must pin and install.
      serve: (req, res) => {
        const trust = trustFor(req, opts.acmeTrust);
        const pem = trust?.kind === 'internal' ? trust.pem : opts.trustBundlePEM();
        return serveCACertificate(res, pem, ownHeaders);
      },
    },
    { path: '/ca.cer', methods: READ, serve: (req, res) => serveCADER(req, res, opts) },
    ...INSTALLERS.map((installer): OwnEndpoint => ({
      path: installer.path,
      methods: READ,
      serve: (req, res) => serveInstaller(installer, req, res, ownHeaders, opts.acmeTrust),
    })),
    { path: TRUST_PAGE_PATH, methods: READ, serve: (req, res) => serveTrustPage(req, res, opts) },
  ];
  const health = opts.health;
  if (health) {
    table.push({
      path: health.path,
      methods: READ,
      serve: (_req, res) =>
        serveHealth(res, publicVerdictBody(health.verdict(), health.backends), ownHeaders),
    });
  }
  return new Map(table.map((endpoint) => [endpoint.path, endpoint]));
}

/** The endpoint that answers this request, if the proxy answers it itself. */
export function findOwnEndpoint(
  table: ReadonlyMap<string, OwnEndpoint>,
  path: string,
  method: string | undefined,
): OwnEndpoint | undefined {
  const endpoint = table.get(path);
  return endpoint && method !== undefined && endpoint.methods.includes(method)
    ? endpoint
    : undefined;
}

function serveCACertificate(
  res: ServerResponse,
  pem: string,
  ownHeaders: Readonly<Record<string, string>>,
): number {
  return sendSmall(
    res,
    200,
    {
      ...ownHeaders,
      'content-type': 'application/x-pem-file',
      'content-disposition': 'inline; filename="ca.crt"',
      'cache-control': 'no-cache',
    },
    pem,
  );
}

/** The backend verdict as a simple balancer reads it: 200 healthy, 503 not, with the reason. */
function serveHealth(
  res: ServerResponse,
  body: Record<string, unknown>,
  ownHeaders: Readonly<Record<string, string>>,
): number {
  return sendSmall(
    res,
    body['status'] === 'ok' ? 200 : 503,
    { ...ownHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' },
    `${JSON.stringify(body)}\n`,
  );
}

interface Installer {
  path: string;
  contentType: string;
  /** The script for this host:port; `what` names an internal ACME server's root. */
  script(hostPort: string, what?: string): string;
  /** For a name served the ACME certificate: clients already trust it. */
  nothingToInstall(hostPort: string): string;
}

const shNothingToInstall = (hostPort: string): string =>
  [
    '#!/bin/sh',
    `# registry-tls-proxy: ${hostPort} is served a publicly trusted certificate (ACME)`,
    `echo '${hostPort}: publicly trusted: nothing to install on clients'`,
    'exit 0',
    '',
  ].join('\n');

const SH = 'text/x-shellscript; charset=utf-8';
const INSTALLERS: readonly Installer[] = [
  {
    path: INSTALLER_PATHS.linux,
    contentType: SH,
    script: installerScript,
    nothingToInstall: shNothingToInstall,
  },
  {
    path: INSTALLER_PATHS.macos,
    contentType: SH,
    script: macosInstallerScript,
    nothingToInstall: shNothingToInstall,
  },
  {
    path: INSTALLER_PATHS.windows,
    contentType: 'text/plain; charset=utf-8',
    script: windowsInstallerScript,
    nothingToInstall: (hostPort) =>
      `# registry-tls-proxy\nWrite-Output '${hostPort}: publicly trusted: nothing to install on clients'\n`,
  },
];

/** A fingerprint-checking installer, defaulting to the host:port this client used. */
function serveInstaller(
  installer: Installer,
  req: IncomingMessage,
  res: ServerResponse,
  ownHeaders: Readonly<Record<string, string>>,
  acmeTrust: OwnEndpointOptions['acmeTrust'],
): number {
  const hostPort = requestHostPort(req);
  if (hostPort === undefined) return refuseHost(res, ownHeaders);
  const trust = trustFor(req, acmeTrust);
  const script =
    trust?.kind === 'public'
      ? installer.nothingToInstall(hostPort)
      : installer.script(
          hostPort,
          trust ? "the internal ACME server's root (tls.acme.caBundle)" : undefined,
        );
  return sendSmall(
    res,
    200,
    { ...ownHeaders, 'content-type': installer.contentType, 'cache-control': 'no-cache' },
    script,
  );
}
