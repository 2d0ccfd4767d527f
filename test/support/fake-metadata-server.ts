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
 * - sometimes `…/service-accounts/default/email` and `/computeMetadata/v1/universe/universe-domain`;
 * - a Google-signed ID token: `GET …/service-accounts/default/identity?audience=AUD&format=full` → the JWT as text
 *   (`iss` https://accounts.google.com, `aud`, `sub`/`azp` = the service account's numeric unique id, `email` with
 *   format=full, `iat`, `exp`), RS256 over {@link FakeMetadataServerOptions.idTokenKey}. A missing audience is a
 *   400, as on GCE. (The GKE → Azure federation of the Key Vault backend presents this token to Entra.)
 *
 * Like the real server it refuses requests without `Metadata-Flavor: Google` (403) and requests carrying
 * `X-Forwarded-For` (403: the metadata server does not serve proxied requests), and marks every answer with
 * `Metadata-Flavor: Google`.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
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
  /** The service account's numeric unique id (`sub` of ID tokens). Default 112233445566778899001. */
  readonly serviceAccountUniqueId?: string;
  /**
   * RSA private key ID tokens are signed with (RS256, as Google's). Default: one generated on first use (~0.2 s;
   * tests pass a pool key).
   */
  readonly idTokenKey?: KeyObject;
}

const BASE = '/computeMetadata/v1';

export class FakeMetadataServer {
  readonly requests: MetadataRequest[] = [];
  readonly accessToken: string;
  /**
   * When set, the token and identity (ID token) endpoints fail with this status (e.g. 404: the Kubernetes service
   * account is not bound).
   */
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

  /** The public key ID tokens verify with (what Entra would fetch from Google's JWKS). */
  get idTokenPublicKey(): KeyObject {
    return createPublicKey(this.#idTokenKey());
  }

  get serviceAccountUniqueId(): string {
    return this.#options.serviceAccountUniqueId ?? '112233445566778899001';
  }

  /** ID token requests received. */
  idTokenRequests(): MetadataRequest[] {
    return this.requests.filter((r) => r.path === `${BASE}/instance/service-accounts/default/identity`);
  }

  #signingKey: KeyObject | undefined;

  #idTokenKey(): KeyObject {
    this.#signingKey ??= this.#options.idTokenKey ?? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    return this.#signingKey;
  }

  #idToken(audience: string, full: boolean, email: string): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', kid: 'fake-metadata-key', typ: 'JWT' };
    const claims = {
      aud: audience,
      azp: this.serviceAccountUniqueId,
      ...(full ? { email, email_verified: true } : {}),
      exp: now + 3600,
      iat: now,
      iss: 'https://accounts.google.com',
      sub: this.serviceAccountUniqueId,
    };
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = `${encode(header)}.${encode(claims)}`;
    return `${signed}.${sign('sha256', Buffer.from(signed), this.#idTokenKey()).toString('base64url')}`;
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
      case `${BASE}/instance/service-accounts/default/identity`: {
        const audience = url.searchParams.get('audience') ?? '';
        if (audience === '') {
          send(400, 'non-empty audience parameter required');
          return;
        }
        if (this.tokenFailureStatus !== undefined) {
          send(this.tokenFailureStatus, 'Unable to generate ID token; IAM returned 403 Forbidden.');
          return;
        }
        send(200, this.#idToken(audience, url.searchParams.get('format') === 'full', email));
        return;
      }
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
