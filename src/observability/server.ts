/**
 * `/metrics` (Prometheus text), `/healthz` (the event loop answers), `/readyz` (see health.ts) and the CRLs of the
 * self-run CA connections (`/crl/<connection>.crl`, src/lifecycle/crl.ts) on one port; and `POST /retry-faulted`
 * (`certprov retry --faulted`), answered only to a caller on the pod's own loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Health } from './health.ts';
import type { Metrics } from './metrics.ts';

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A signed CRL as the server hands it out. */
export interface ServedCrl {
  readonly crlNumber: number;
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  readonly der: Uint8Array;
}

/** How long HTTP caches (a CDN, a proxy) may keep a CRL: short, so a new one after a revocation reaches them soon. */
const CRL_MAX_AGE_SECONDS = 300;

const CRL_PATH = /^\/crl\/([^/]+)\.crl$/;

export async function startOpsServer(options: {
  host: string;
  port: number;
  metrics: Metrics;
  health: Health;
  /** The current CRL of a connection; undefined: 404. Default: no CRL is served. */
  crl?: (connection: string) => Promise<ServedCrl | undefined>;
  /** Probes every faulted component now; returns them (src/provisioning/fault-gate.ts). Default: 404. */
  retryFaulted?: () => string[];
}): Promise<OpsServer> {
  const { metrics, health } = options;
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === RETRY_FAULTED_PATH && options.retryFaulted !== undefined) {
      retryFaulted(options.retryFaulted, req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const reasons = health.notReadyReasons();
      res
        .writeHead(reasons.length === 0 ? 200 : 503, { 'content-type': 'text/plain' })
        .end(reasons.length === 0 ? 'ready\n' : reasons.map((r) => `not ready: ${r}`).join('\n') + '\n');
    } else if (url === '/metrics') {
      metrics.scrape().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (options.crl !== undefined && CRL_PATH.test(url ?? '')) {
      serveCrl(options.crl, decodeURIComponent(CRL_PATH.exec(url ?? '')?.[1] ?? ''), req, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  // Keep-alive sockets from a scraper must not hold shutdown.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Where `certprov retry --faulted` asks the running adapter to probe its faulted components now. */
export const RETRY_FAULTED_PATH = '/retry-faulted';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/**
 * POST only, and only from the pod itself (`kubectl exec`): the port also serves scrapers, and a probe is a request
 * to the faulted service, which no one outside the pod should be able to trigger at will.
 */
function retryFaulted(retry: () => string[], req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' }).end();
    return;
  }
  if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
    res.writeHead(403, { 'content-type': 'text/plain' }).end('only from the pod itself (kubectl exec)\n');
    return;
  }
  const components = retry();
  res
    .writeHead(200, { 'content-type': 'text/plain' })
    .end(components.length === 0 ? 'no component is faulted\n' : `probing now: ${components.join(', ')}\n`);
}

/** DER with `application/pkix-crl` (RFC 5280 §4.2.1.13), an ETag of the CRL number, and a short cache lifetime. */
function serveCrl(
  crl: (connection: string) => Promise<ServedCrl | undefined>,
  connection: string,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  crl(connection).then(
    (found) => {
      if (found === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no CRL for this connection\n');
        return;
      }
      const etag = `"${found.crlNumber}"`;
      const untilNext = Math.max(0, Math.floor((found.nextUpdate - Date.now()) / 1000));
      const headers = {
        etag,
        'last-modified': new Date(found.thisUpdate).toUTCString(),
        expires: new Date(found.nextUpdate).toUTCString(),
        'cache-control': `public, max-age=${Math.min(CRL_MAX_AGE_SECONDS, untilNext)}`,
      };
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, headers).end();
        return;
      }
      res
        .writeHead(200, { ...headers, 'content-type': 'application/pkix-crl', 'content-length': found.der.length })
        .end(req.method === 'HEAD' ? undefined : Buffer.from(found.der.buffer, found.der.byteOffset, found.der.length));
    },
    () => res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10' }).end('CRL unavailable\n'),
  );
}
