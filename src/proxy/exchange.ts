/**
 * One request on its way through the stages (handler.ts): what it asks for, the
 * bytes it moved, how it ended (a typed Outcome), and the timers that watch it.
 * Whose silence counts changes as the request moves on, and it changes here only:
 *  - the request arrives: the client's (timeouts.clientIdleMs, no bytes moving);
 *  - its body is in: the backend's (timeouts.backendIdleMs, on the backend call);
 *  - the backend's head arrives: the client's again (a slow reader is not a slow backend).
 * The Exchange is what a transport reports the backend's answer to (RelayHandlers).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { classifyOperation, type Operation } from '../metrics/operation.js';
import type { Outcome } from './outcome.js';
import type { RelayHandlers } from './relay.js';
import type { ResponseHead } from './response-reader.js';
import type { RewriteContext } from './rewrite.js';

/** A request in flight to the backend, as a transport (upstream-*.ts) hands it over. */
export interface BackendCall {
  /** Drops the request: the client went away, or its answer cannot be passed on. */
  abort(): void;
  /** How long the backend may stay silent before the call fails with a timeout (0: no limit). */
  setIdleTimeout(ms: number): void;
}

/** What every exchange of one handler shares: limits, and the stages that answer and finish. */
export interface ExchangeStages {
  clientIdleMs: number;
  backendIdleMs: number;
  /** respond.ts: sends the backend's head, rewritten; false when Node refused it (502 sent). */
  answerHead(
    ex: Exchange,
    status: number,
    message: string | undefined,
    headers: OutgoingHttpHeaders,
  ): boolean;
  /** respond.ts: the backend failed before its head (502/504, counted, logged). */
  backendFailed(ex: Exchange, err: NodeJS.ErrnoException): void;
  /** finish.ts: the log line and the metrics, once the response is over. */
  finish(ex: Exchange): void;
}

const EXCHANGE = Symbol('exchange');
type TaggedRequest = IncomingMessage & { [EXCHANGE]?: Exchange };

/** The exchange of a response (http-proxy's events name only the response). */
export function exchangeOf(res: ServerResponse): Exchange | undefined {
  return (res.req as TaggedRequest)[EXCHANGE];
}

export class Exchange implements RewriteContext, RelayHandlers {
  readonly started = process.hrtime.bigint();
  /** Classified once: it routes the request and labels its metrics. */
  readonly operation: Operation;
  readonly isV2: boolean;
  /** The replica the request goes to (forward.ts); read only once it has gone there. */
  backend!: URL;
  /** With several replicas: the number of this one, for upload Locations (upload-affinity.ts). */
  pin: number | undefined = undefined;
  /** The replica's count of requests outstanding (forward.ts), given back when the response is over. */
  sentTo: { index: number; outstanding: number } | undefined = undefined;
  /** Sent once more to another replica (forward.ts): never a third time. */
  retried = false;
  /** The Host clients use for this proxy (admit.ts; a trusted balancer's, forward.ts). */
  publicHost = '';
  publicPort: number;
  bytesIn = 0;
  bytesOut = 0;
  outcome: Outcome | undefined = undefined;
  /** Who logged in at the proxy (auth.htpasswd), for the log line. */
  user: string | undefined = undefined;
  private call: BackendCall | undefined = undefined;

  constructor(
    private readonly stages: ExchangeStages,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** The path without its query (what the log shows and the metrics classify). */
    public path: string,
  ) {
    this.operation = classifyOperation(req.method, path);
    this.isV2 = path === '/v2' || path.startsWith('/v2/');
    this.publicPort = req.socket.localPort ?? 443;
    (req as TaggedRequest)[EXCHANGE] = this;
    // Module-level listeners (they find the exchange on the request): no closures per request.
    res.on('close', onResponseClose);
  }

  get clientGone(): boolean {
    return this.outcome === 'client_aborted' || this.res.destroyed;
  }

  /** The client's turn: Node resets the socket timer between keep-alive requests. */
  watchClient(): void {
    this.req.socket.setTimeout(this.stages.clientIdleMs);
  }

  /**
   * While a body comes in, the client's silence counts; once it is in (at once when there
   * is none: no timer set only to be cleared), the backend's. Counts the body's bytes.
   */
  watchRequestBody(hasBody: boolean): void {
    if (!hasBody) {
      this.requestIn();
      return;
    }
    this.watchClient();
    this.req.on('data', countBytesIn);
    this.req.once('end', onRequestEnd);
  }

  /** A transport sent the request: the backend's silence now counts. */
  forwarded(call: BackendCall): void {
    this.call = call;
    if (this.clientGone) call.abort();
    else call.setIdleTimeout(this.stages.backendIdleMs);
  }

  /** The backend's head arrived: from here on the client's idleness governs. */
  answerStarted(): void {
    this.call?.setIdleTimeout(0);
    this.watchClient();
  }

  answerHead(status: number, message: string | undefined, headers: OutgoingHttpHeaders): boolean {
    return this.stages.answerHead(this, status, message, headers);
  }

  /** A backend that dies mid-body must not look like a complete (truncated) response. */
  backendAborted(): void {
    this.outcome ??= 'backend_aborted';
    this.res.destroy();
  }

  // RelayHandlers: the relay's report of the backend's answer.
  onHead(head: ResponseHead): void {
    this.answerStarted();
    if (!this.answerHead(head.status, head.statusMessage, head.headers)) this.call?.abort();
  }

  onBody(bytes: Buffer, done: (err?: Error | null) => void): void {
    if (this.res.destroyed) return done(new Error('client gone'));
    this.bytesOut += bytes.length;
    this.res.write(bytes, done);
  }

  onEnd(): void {
    if (!this.res.writableEnded) this.res.end();
  }

  onError(err: NodeJS.ErrnoException, headSent: boolean): void {
    if (this.outcome === 'client_aborted') return;
    if (headSent) this.backendAborted();
    else this.stages.backendFailed(this, err);
  }

  /** The request body is in: until the backend answers, its timer is the one that counts. */
  requestIn(): void {
    if (!this.res.headersSent) this.req.socket.setTimeout(0);
  }

  /** The replica no longer counts this request as outstanding. */
  sendingDone(): void {
    if (this.sentTo) this.sentTo.outstanding--;
    this.sentTo = undefined;
  }

  /** The response is over, sent or cut (its 'close' event). */
  closed(): void {
    this.sendingDone();
    if (!this.res.writableFinished) {
      // The client went away (or we cut it): stop the backend request too.
      this.outcome ??= 'client_aborted';
      this.call?.abort();
    }
    this.stages.finish(this);
  }
}

function onResponseClose(this: ServerResponse): void {
  exchangeOf(this)?.closed();
}

function countBytesIn(this: TaggedRequest, chunk: Buffer): void {
  const ex = this[EXCHANGE];
  if (ex) ex.bytesIn += chunk.length;
}

function onRequestEnd(this: TaggedRequest): void {
  this[EXCHANGE]?.requestIn();
}
