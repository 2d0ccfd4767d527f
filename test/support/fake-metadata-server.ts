/**
 * A loopback fake of the GCE / GKE metadata server, enough for google-auth-library's Application Default
 * Credentials to take the metadata path (the one GKE Workload Identity uses). Point `GCE_METADATA_HOST` at
 * {@link FakeMetadataServer.host}.
 *
 * What gcp-metadata 8 / google-auth-library 10 ask for (read from their sources in node_modules):
 * - the availability probe: `GET /computeMetadata/v1/instance` (answered, like the real server, with a redirect to
 *   the directory `…/instance/`), and it checks the response's `Metadata-Flavor: Google` header;
 * - the project id: `GET /computeMetadata/v1/project/project-id`;
 * - the token: `GET /computeMetadata/v1/instance/service-accounts/default/token?scopes=a,b` →
 *   `{access_token, expires_in, token_type}`;
 * - sometimes `…/service-accounts/default/email` and `/computeMetadata/v1/universe/universe-domain`.
 *
 * Like the real server it refuses requests without `Metadata-Flavor: Google` (403) and requests carrying
 * `X-Forwarded-For` (403: the metadata server does not serve proxied requests), and marks every answer with
 * `Metadata-Flavor: Google`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MetadataRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly flavor: string | undefined;
}

export interface FakeMetadataServerOptions {
  /** The token handed out. Default a fixed fake. */
  readonly accessToken?: string;
  readonly expiresInSeconds?: number;
  readonly serviceAccountEmail?: string;
  readonly projectId?: string;
}

const BASE = '/computeMetadata/v1';

export class FakeMetadataServer {
  readonly requests: MetadataRequest[] = [];
  readonly accessToken: string;
  /** When set, the token endpoint fails with this status (e.g. 404: the Kubernetes service account is not bound). */
  tokenFailureStatus: number | undefined;
  readonly #options: FakeMetadataServerOptions;
  readonly #server: http.Server;

  private constructor(server: http.Server, options: FakeMetadataServerOptions) {
    this.#server = server;
    this.#options = options;
    this.accessToken = options.accessToken ?? 'ya29.fake-metadata-token-for-tests';
  }

  static async start(options: FakeMetadataServerOptions = {}): Promise<FakeMetadataServer> {
    const server = http.createServer();
    const instance = new FakeMetadataServer(server, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => instance.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return instance;
  }

  /** `host:port`, the form GCE_METADATA_HOST takes. */
  get host(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `127.0.0.1:${port}`;
  }

  /** Token requests received (with the flavor header; those without were refused). */
  tokenRequests(): MetadataRequest[] {
    return this.requests.filter((r) => r.path === `${BASE}/instance/service-accounts/default/token`);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://metadata.google.internal');
    const flavor = headerValue(req.headers['metadata-flavor']);
    this.requests.push({ path: url.pathname, query: url.searchParams, flavor });
    const send = (
      status: number,
      body: string,
      contentType = 'application/text',
      extra: Record<string, string> = {},
    ): void => {
      res.writeHead(status, {
        'metadata-flavor': 'Google',
        'content-type': contentType,
        server: 'Metadata Server for VM',
        ...extra,
      });
      res.end(body);
    };
    if (req.headers['x-forwarded-for'] !== undefined) {
      send(403, 'Request denied: X-Forwarded-For header present.');
      return;
    }
    if (req.method !== 'GET') {
      send(405, 'Method not allowed.');
      return;
    }
    if (!url.pathname.startsWith(`${BASE}/`)) {
      send(404, 'Not found.', 'text/html');
      return;
    }
    if (flavor !== 'Google') {
      send(403, 'Missing Metadata-Flavor:Google header.', 'text/html');
      return;
    }
    const email = this.#options.serviceAccountEmail ?? 'certprov@example-project.iam.gserviceaccount.com';
    switch (url.pathname) {
      case `${BASE}/instance`:
        send(301, '', 'text/html', { location: `${BASE}/instance/` });
        return;
      case `${BASE}/instance/`:
        send(200, 'attributes/\nhostname\nid\nservice-accounts/\nzone\n');
        return;
      case `${BASE}/project/project-id`:
        send(200, this.#options.projectId ?? 'example-project');
        return;
      case `${BASE}/universe/universe-domain`:
        send(200, 'googleapis.com');
        return;
      case `${BASE}/instance/service-accounts/default/email`:
        send(200, email);
        return;
      case `${BASE}/instance/service-accounts/default/token`:
        if (this.tokenFailureStatus !== undefined) {
          send(this.tokenFailureStatus, 'Unable to generate access token; IAM returned 403 Forbidden.');
          return;
        }
        send(
          200,
          JSON.stringify({
            access_token: this.accessToken,
            expires_in: this.#options.expiresInSeconds ?? 3599,
            token_type: 'Bearer',
          }),
          'application/json',
        );
        return;
      default:
        send(404, 'Not found.', 'text/html');
    }
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
