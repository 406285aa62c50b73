/**
 * The serving part of a process that serves the public port itself (a single
 * process, or one worker of a cluster): one generation of servers per configuration.
 * A reload starts the next generation beside the current one, then points the
 * listening socket at it (a new socket when `listen` changed), with no moment at
 * which connections are refused; the previous one finishes its requests.
 *
 * Every generation counts into the one metrics registry this part makes (see
 * metrics/registry.ts); its gauges read the generation serving now.
 */
import { resolve } from 'node:path';
import type { Config } from './config/schema.js';
import type { HealthMonitor } from './health/monitor.js';
import type { Logger } from './log.js';
import { collectSoon, prepareCollector } from './memory.js';
import { createMetrics, type ProxyMetrics } from './metrics/registry.js';
import { certificateSource } from './pki/source.js';
import type { TLSMaterial } from './pki/store.js';
import { createPublicListener, type PublicListener } from './proxy/listener.js';
import { createPublicServer, type PublicServer } from './proxy/server.js';
import { listenOrExplain, type Generation, type ServingPart } from './runtime.js';
import { startRenewal } from './tls/renewal.js';
import { acmeEnabled } from './acme/config.js';
import { createHTTP01Listener, type HTTP01Listener } from './acme/challenges/http01.js';
import { createTLSALPNResponder } from './acme/challenges/tls-alpn.js';
import { startACME, type ACMEManager } from './acme/lifecycle.js';
import { acmeDir, ensureACMEDir, readACMECertificate, type ACMECertificate } from './acme/store.js';

/** How this process serves: alone, or as one worker of a cluster (cluster.ts). */
export type ServeRole = { kind: 'single' } | { kind: 'worker'; id: number; ticketKeys: Buffer };

/** Everything that serves one configuration in this process. */
export interface InProcessGeneration extends Generation {
  readonly pub: PublicServer;
  readonly health: HealthMonitor;
  /** The material it started with. */
  readonly material: TLSMaterial;
  /** The port of the listening socket it bound (at start-up, or when `listen` changed). */
  readonly port: number | undefined;
  /** tls.acme: started once the generation takes the traffic (the CA's validation must reach it). */
  acme?: ACMEManager;
  /** tls.acme: the certificate found in tls.dir at start, served from the first handshake. */
  readonly acmeStored?: ACMECertificate;
}

export interface GenerationsInThisProcess extends ServingPart<InProcessGeneration> {
  /** The process's metrics: what the request path counts into, whichever generation serves. */
  readonly proxyMetrics: ProxyMetrics;
}

export function generationsInThisProcess(
  logger: Logger,
  role: ServeRole,
): GenerationsInThisProcess {
  let current: InProcessGeneration | undefined;
  let listener: { socket: PublicListener; listen: string } | undefined;
  let accepting = true;
  let publicPort = 0;
  // Gauges follow whichever generation is current.
  const proxyMetrics = createMetrics({
    upstream: () => current?.pub.upstreamSockets(),
    material: () => current?.pub.material(),
    verdict: () => current?.health.current(),
    acme: () => {
      const acme = current?.acme;
      if (!acme) return undefined;
      const notAfter = acme.current()?.notAfter;
      const lastSuccess = acme.lastSuccess();
      return { ...(notAfter ? { notAfter } : {}), ...(lastSuccess ? { lastSuccess } : {}) };
    },
  });
  const http01 = http01Listeners(() => ({
    dir: acmeDir(current?.config.tls.dir ?? '.'),
    httpsPort: publicPort,
  }));
  // Set up the collector now, at start, not in the middle of the first reload.
  prepareCollector();
  /** A listening socket a generation bound but that has not taken over yet. */
  const unpromoted = new WeakMap<InProcessGeneration, PublicListener>();
  const promoted = new WeakSet<InProcessGeneration>();

  const start = async (config: Config, health: HealthMonitor): Promise<InProcessGeneration> => {
    const source = certificateSource(config, logger);
    const material = await loadCertificates(config, logger, source);
    const alpn = acmeEnabled(config)
      ? createTLSALPNResponder(() => acmeDir(config.tls.dir))
      : undefined;
    const pub = createPublicServer(config, material, logger, {
      metrics: proxyMetrics,
      verdict: health.current,
      ...(alpn ? { onACMEValidation: alpn.answer } : {}),
    });
    // Every worker issues and accepts the same session tickets.
    if (role.kind === 'worker') pub.setTicketKeys(role.ticketKeys);
    // The stored ACME certificate before the socket listens: a cluster's fresh workers
    // take connections as soon as they listen, before promote() (a reload must not
    // hand clients by name our own CA's certificate meanwhile).
    const acmeStored = acmeEnabled(config)
      ? readACMECertificate(ensureACMEDir(config.tls.dir))
      : undefined;
    if (acmeStored) pub.setACME(acmeStored);
    const renewal = startRenewal({
      load: () => source.load(),
      checkIntervalMs: config.tls.checkInterval,
      logger,
      initial: material,
      swap: (next) => pub.setMaterial(next),
      watch: source.watch,
    });
    let socket: PublicListener | undefined;
    let port: number | undefined;
    if (listener?.listen !== config.listen) {
      socket = createPublicListener(config.listen, pub.target);
      const bound = socket;
      try {
        port = (await listenOrExplain(() => bound.listen(), config.listen, 'listen')).port;
      } catch (err) {
        renewal.stop();
        await pub.drain(0);
        throw err;
      }
    }
    try {
      await http01.prepare(config);
    } catch (err) {
      renewal.stop();
      socket?.stopAccepting();
      await pub.drain(0);
      throw err;
    }
    const generation: InProcessGeneration = {
      config,
      pub,
      health,
      material,
      port,
      ...(acmeStored ? { acmeStored } : {}),
      async retire(deadlineMs) {
        unpromoted.get(generation)?.stopAccepting();
        // A reload that failed after this start (a drain began): the http-01 listener it
        // opened must go too, or the next reload's commit would promote it.
        if (!promoted.has(generation)) await http01.abandon();
        // Once the socket is closed, connections it accepted may still arrive: wait for them.
        const pending =
          !accepting && generation === current ? listener?.socket.sniffing : undefined;
        generation.acme?.stop();
        const { cut } = await pub.drain(deadlineMs, pending);
        renewal.stop();
        // Its HTTPS server is garbage now; its TLS contexts are freed only by a collection.
        collectSoon();
        return cut;
      },
    };
    if (socket) unpromoted.set(generation, socket);
    return generation;
  };

  return {
    metrics: proxyMetrics.registry,
    proxyMetrics,
    start,
    promote(next) {
      const socket = unpromoted.get(next);
      unpromoted.delete(next);
      current = next;
      promoted.add(next);
      if (next.port !== undefined) publicPort = next.port;
      http01.commit();
      if (acmeEnabled(next.config)) {
        next.acme = startACME({
          config: next.config,
          logger,
          onCertificate: (cert) => next.pub.setACME(cert),
          orders: proxyMetrics.acmeOrders,
          ...(next.acmeStored ? { initial: next.acmeStored } : {}),
          ...(role.kind === 'worker' ? { worker: role.id } : {}),
        });
      }
      if (socket) {
        // Connections the old socket is still sniffing go to the new generation too.
        listener?.socket.route(next.pub.target);
        listener?.socket.stopAccepting();
        listener = { socket, listen: next.config.listen };
      } else {
        listener?.socket.route(next.pub.target);
      }
    },
    stopAccepting() {
      accepting = false;
      listener?.socket.stopAccepting();
      void http01.close();
    },
    inFlight() {
      const inFlight = current?.pub.inFlight() ?? 0;
      return { fields: { inFlight }, summary: `${inFlight} requests in flight` };
    },
  };
}

/**
 * The first load of the certificates (creating the CA and the server certificate when
 * missing), saying what it created. A cluster primary calls it once before forking.
 */
export async function loadCertificates(
  config: Config,
  logger: Logger,
  source = certificateSource(config, logger),
): Promise<TLSMaterial> {
  const material = await source.load();
  if (material.created.ca) logger.info({ dir: resolve(config.tls.dir) }, 'created a new CA');
  if (material.created.server) {
    logger.info({ reason: material.created.reason }, 'issued a new server certificate');
  }
  return material;
}

/**
 * The http-01 listener across reloads, one per process: `prepare` opens one on a
 * changed tls.acme.http01Listen (the current one keeps answering meanwhile), `commit`
 * closes the one it replaced, `abandon` the one a failed reload opened. Answers come from tls.dir, whichever generation serves.
 */
function http01Listeners(target: () => { dir: string; httpsPort: number }) {
  let active: { listen: string; server: HTTP01Listener | undefined } = {
    listen: '',
    server: undefined,
  };
  let next: typeof active | undefined;
  return {
    async prepare(config: Config): Promise<void> {
      const listen = acmeEnabled(config) ? config.tls.acme.http01Listen : '';
      if (listen === active.listen) return;
      const server = listen === '' ? undefined : createHTTP01Listener(listen, target);
      if (server) await listenOrExplain(() => server.listen(), listen, 'tls.acme.http01Listen');
      await next?.server?.close();
      next = { listen, server };
    },
    /** The reload that prepared `next` failed: close what it opened, keep the active one. */
    async abandon(): Promise<void> {
      const opened = next;
      next = undefined;
      await opened?.server?.close();
    },
    commit(): void {
      if (!next) return;
      void active.server?.close();
      active = next;
      next = undefined;
    },
    async close(): Promise<void> {
      await Promise.all([active.server?.close(), next?.server?.close()]);
    },
  };
}
