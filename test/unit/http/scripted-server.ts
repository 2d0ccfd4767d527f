/**
 * A tiny loopback HTTP server that answers from a script, one step per request, and records every request it
 * received in full (the body is read before the step runs). Used by the HTTP-layer and Chrome client tests so they
 * do not depend on the sandbox tenant.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export type ScriptStep =
  | {
      readonly status: number;
      readonly json?: unknown;
      readonly text?: string;
      readonly headers?: Record<string, string>;
    }
  /** Destroy the connection after the whole request was received (the server "applied" it, the client sees a reset). */
  | { readonly action: 'destroy' }
  /** Never answer (the client's timeout or abort ends it). */
  | { readonly action: 'hang' }
  /** Send headers and part of the body, then cut the connection. */
  | { readonly action: 'truncate'; readonly status: number };

export type ScriptEntry = ScriptStep | ((request: RecordedRequest) => ScriptStep);

export class ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  readonly #steps: ScriptEntry[] = [];
  readonly #server: http.Server;
  #fallback: ScriptEntry = { status: 599, text: 'unscripted request' };

  private constructor(server: http.Server) {
    this.#server = server;
  }

  static async start(): Promise<ScriptedServer> {
    const server = http.createServer();
    const instance = new ScriptedServer(server);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => instance.answer(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return instance;
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Queues answers, one per request, in order. */
  script(...steps: ScriptEntry[]): this {
    this.#steps.push(...steps);
    return this;
  }

  /** The answer once the script ran out (default: a 599 that no test expects). */
  otherwise(step: ScriptEntry): this {
    this.#fallback = step;
    return this;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
    this.requests.push(recorded);
    const entry = this.#steps.shift() ?? this.#fallback;
    const step = typeof entry === 'function' ? entry(recorded) : entry;
    if ('action' in step) {
      if (step.action === 'destroy') req.socket.destroy();
      if (step.action === 'truncate') {
        res.writeHead(step.status, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"name": "customers/');
        setTimeout(() => req.socket.destroy(), 20);
      }
      return;
    }
    const payload = step.json === undefined ? (step.text ?? '') : JSON.stringify(step.json);
    res.writeHead(step.status, {
      ...(step.json === undefined ? {} : { 'content-type': 'application/json; charset=UTF-8' }),
      ...step.headers,
    });
    res.end(payload);
  }
}

/** A Google-style error body (google.rpc.Status). */
export function googleError(
  code: number,
  status: string,
  message: string,
  details?: readonly Record<string, unknown>[],
): { error: Record<string, unknown> } {
  return { error: { code, message, status, ...(details === undefined ? {} : { details }) } };
}
