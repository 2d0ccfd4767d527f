/**
 * What the loopback fakes of Google Cloud APIs (Cloud KMS, Certificate Authority Service) share: an HTTP/1.1 JSON
 * server speaking the REST mapping of the gRPC API as the official clients' REST transport sends it
 * (google-gax `fallback: true`), with Google's conventions:
 *
 * - every request needs `Authorization: Bearer …`, else 401 `UNAUTHENTICATED`;
 * - errors are `{"error": {"code": <http>, "message": …, "status": "<CANONICAL_CODE>"}}` (cloud.google.com/apis/
 *   design/errors), the HTTP status being the canonical code's (400, 401, 403, 404, 409, 429, 503 …);
 * - enums are written as numbers when the client asks with `$alt=json;enum-encoding=int` (it does), else names;
 * - int64 fields are JSON strings, bytes fields base64.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Canonical error code → HTTP status (google/rpc/code.proto). */
export const HTTP_STATUS_OF: Readonly<Record<string, number>> = {
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 400,
  OUT_OF_RANGE: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  ABORTED: 409,
  RESOURCE_EXHAUSTED: 429,
  CANCELLED: 499,
  INTERNAL: 500,
  UNKNOWN: 500,
  UNIMPLEMENTED: 501,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

/** A Google API error the fake answers with. */
export class GoogleApiError extends Error {
  readonly status: string;
  constructor(status: string, message: string) {
    super(message);
    this.status = status;
  }
}

export interface GoogleRestRequest {
  readonly method: string;
  /** Path without the query, decoded. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly body: Record<string, unknown>;
  readonly token: string;
  /** The client asked for numeric enums. */
  readonly numericEnums: boolean;
}

export type GoogleRestHandler = (request: GoogleRestRequest) => unknown;

/** One scripted failure: answered instead of the next matching request. */
export interface ScriptedFailure {
  readonly status: string;
  readonly message?: string;
  /** Only requests whose `METHOD path` matches. Default: any. */
  readonly match?: RegExp;
}

export class GoogleRestServer {
  readonly #server: http.Server;
  readonly #handler: GoogleRestHandler;
  readonly #failures: ScriptedFailure[] = [];
  /** Requests that are applied but never answered (a crash or timeout after the service acted). */
  readonly #hangs: RegExp[] = [];
  /** Every request as `METHOD path`, in order. */
  readonly requests: string[] = [];
  /** Tokens the server refuses with 401 (a revoked credential). */
  readonly refusedTokens = new Set<string>();

  private constructor(handler: GoogleRestHandler) {
    this.#handler = handler;
    this.#server = http.createServer((req, res) => {
      void this.#serve(req, res);
    });
  }

  static async start(handler: GoogleRestHandler): Promise<GoogleRestServer> {
    const server = new GoogleRestServer(handler);
    await new Promise<void>((resolve) => server.#server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  /** `http://127.0.0.1:PORT`, for the connection's `endpoint`. */
  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** The next `count` matching requests fail with `failure`. */
  failNext(count: number, failure: ScriptedFailure): void {
    for (let i = 0; i < count; i += 1) this.#failures.push(failure);
  }

  /**
   * The next `count` requests matching `match` are applied (the handler runs, so the service has acted) and then
   * never answered: what a client sees when the service acted but the answer was lost.
   */
  hangAfterApplying(count: number, match: RegExp): void {
    for (let i = 0; i < count; i += 1) this.#hangs.push(match);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const path = decodeURIComponent(url.pathname);
    this.requests.push(`${method} ${path}`);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
      res.end(JSON.stringify(body));
    };
    const fail = (status: string, message: string) =>
      send(HTTP_STATUS_OF[status] ?? 500, { error: { code: HTTP_STATUS_OF[status] ?? 500, message, status } });
    try {
      const authorization = req.headers.authorization ?? '';
      const token = /^Bearer (\S+)$/.exec(authorization)?.[1];
      if (token === undefined || this.refusedTokens.has(token)) {
        fail('UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.');
        return;
      }
      const index = this.#failures.findIndex((f) => f.match === undefined || f.match.test(`${method} ${path}`));
      if (index >= 0) {
        const [failure] = this.#failures.splice(index, 1);
        fail(failure!.status, failure!.message ?? `scripted ${failure!.status}`);
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      if (text.length > 0) {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          fail('INVALID_ARGUMENT', 'Invalid JSON payload received.');
          return;
        }
      }
      const numericEnums = (url.searchParams.get('$alt') ?? '').includes('enum-encoding=int');
      const result = await this.#handler({ method, path, query: url.searchParams, body, token, numericEnums });
      const hang = this.#hangs.findIndex((m) => m.test(`${method} ${path}`));
      if (hang >= 0) {
        this.#hangs.splice(hang, 1);
        return; // applied, never answered
      }
      send(200, result ?? {});
    } catch (error) {
      if (error instanceof GoogleApiError) fail(error.status, error.message);
      else fail('INTERNAL', error instanceof Error ? error.message : String(error));
    }
  }
}
