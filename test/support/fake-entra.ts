/**
 * A loopback fake of the Microsoft Entra ID token endpoint, for @azure/identity's confidential-client flows
 * (ClientSecretCredential, ClientAssertionCredential, DefaultAzureCredential's environment path).
 *
 * MSAL refuses non-https authorities (`authority_uri_insecure`), so the fake serves TLS with a throwaway CA made by
 * openssl when it starts; the process that runs the credential must trust it through `NODE_EXTRA_CA_CERTS`, which
 * Node reads at start-up only — run the credential in a child process with `env.NODE_EXTRA_CA_CERTS = caFile`, and
 * pass `disableInstanceDiscovery: true` with `authorityHost: fake.authorityHost` (DESIGN.md §7).
 *
 * What MSAL Node 7 asks for (observed): `GET /{tenant}/v2.0/.well-known/openid-configuration`, then
 * `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, `client_id`, `scope` and either
 * `client_secret` or `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` +
 * `client_assertion`. Errors follow Entra's shape (`error`, `error_description` with the AADSTS code).
 *
 * Federated credentials are checked like Entra does: the assertion is a JWT whose signature verifies with the
 * issuer's key, that has not expired, and whose `iss`, `sub` and `aud` match a federated credential of the app
 * exactly (AADSTS70021 otherwise). Access tokens are random and recorded, so a fake Key Vault can accept exactly
 * the tokens this fake issued.
 */
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openssl } from './openssl.ts';

export interface FederatedCredential {
  /** e.g. https://accounts.google.com */
  readonly issuer: string;
  /** e.g. the Google service account's numeric unique id. */
  readonly subject: string;
  /** Default api://AzureADTokenExchange. */
  readonly audience?: string;
  /** Verifies the assertion's signature (RS256 / ES256). */
  readonly issuerKey: KeyObject;
}

export interface EntraApp {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly federated?: readonly FederatedCredential[];
}

export interface TokenRequestRecord {
  readonly tenantId: string;
  readonly clientId: string | undefined;
  readonly scope: string | undefined;
  readonly method: 'secret' | 'assertion' | 'none';
  readonly status: number;
}

/** Makes a throwaway CA and a server certificate for localhost/127.0.0.1 with openssl. */
async function makeTls(dir: string): Promise<{ caFile: string; key: string; cert: string }> {
  const run = async (args: string[]) => {
    const result = await openssl(args, { cwd: dir });
    if (result.code !== 0) throw new Error(`openssl ${args[0] ?? ''} failed: ${result.stderr}`);
  };
  await run([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=certprov test Entra CA',
    '-addext',
    'basicConstraints=critical,CA:true',
    '-addext',
    'keyUsage=critical,keyCertSign',
  ]);
  await run([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  ]);
  await writeFile(
    path.join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:false\nextendedKeyUsage=serverAuth\n',
  );
  await run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  ]);
  return {
    caFile: path.join(dir, 'ca.pem'),
    key: await readFile(path.join(dir, 'server.key'), 'utf8'),
    cert: await readFile(path.join(dir, 'server.pem'), 'utf8'),
  };
}

function decodeJwt(
  token: string,
): { header: Record<string, unknown>; claims: Record<string, unknown>; signed: Buffer; signature: Buffer } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
      claims: JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
      signed: Buffer.from(`${parts[0] ?? ''}.${parts[1] ?? ''}`),
      signature: Buffer.from(parts[2] ?? '', 'base64url'),
    };
  } catch {
    return undefined;
  }
}

function signatureValid(jwt: NonNullable<ReturnType<typeof decodeJwt>>, key: KeyObject): boolean {
  const alg = jwt.header.alg;
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (alg === 'RS256') return verify('sha256', jwt.signed, publicKey, jwt.signature);
  if (alg === 'ES256')
    return verify('sha256', jwt.signed, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature);
  return false;
}

export class FakeEntra {
  /** Trust this file (NODE_EXTRA_CA_CERTS) in the process that runs the credential. */
  readonly caFile: string;
  readonly requests: TokenRequestRecord[] = [];
  readonly #issued = new Set<string>();
  readonly #apps: EntraApp[];
  readonly #server: Server;
  readonly #dir: string;

  private constructor(server: Server, dir: string, caFile: string, apps: readonly EntraApp[]) {
    this.#server = server;
    this.#dir = dir;
    this.caFile = caFile;
    this.#apps = [...apps];
  }

  static async start(apps: readonly EntraApp[]): Promise<FakeEntra> {
    const dir = await mkdtemp(path.join(tmpdir(), 'certprov-entra-'));
    const tls = await makeTls(dir);
    const server = createServer({ key: tls.key, cert: tls.cert });
    const entra = new FakeEntra(server, dir, tls.caFile, apps);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => entra.#handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return entra;
  }

  /** `https://localhost:PORT` — the credential's `authorityHost`. */
  get authorityHost(): string {
    return `https://localhost:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Whether this fake issued `token` (for a fake resource server's token check). */
  issued(token: string): boolean {
    return this.#issued.has(token);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await rm(this.#dir, { recursive: true, force: true });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', this.authorityHost);
      const [tenantId, ...rest] = url.pathname.split('/').filter((s) => s !== '');
      const route = rest.join('/');
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        res.end(JSON.stringify(body));
      };
      const known = this.#apps.some((a) => a.tenantId === tenantId);
      if (req.method === 'GET' && route === 'v2.0/.well-known/openid-configuration') {
        if (!known) {
          send(400, {
            error: 'invalid_tenant',
            error_description: `AADSTS90002: Tenant '${tenantId ?? ''}' not found.`,
            error_codes: [90002],
          });
          return;
        }
        const base = `${this.authorityHost}/${tenantId ?? ''}`;
        send(200, {
          token_endpoint: `${base}/oauth2/v2.0/token`,
          authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${base}/oauth2/v2.0/logout`,
          issuer: `${base}/v2.0`,
          jwks_uri: `${base}/discovery/v2.0/keys`,
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        });
        return;
      }
      if (req.method === 'POST' && route === 'oauth2/v2.0/token') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const [status, body, method] = this.#token(tenantId ?? '', form);
        this.requests.push({
          tenantId: tenantId ?? '',
          clientId: form.get('client_id') ?? undefined,
          scope: form.get('scope') ?? undefined,
          method,
          status,
        });
        send(status, body);
        return;
      }
      send(404, { error: 'not_found', error_description: `no route ${req.method ?? ''} ${url.pathname}` });
    });
  }

  #token(tenantId: string, form: URLSearchParams): [number, unknown, TokenRequestRecord['method']] {
    const fail = (
      status: number,
      error: string,
      code: number,
      description: string,
      method: TokenRequestRecord['method'] = 'none',
    ): [number, unknown, TokenRequestRecord['method']] => [
      status,
      {
        error,
        error_description: `AADSTS${code}: ${description}`,
        error_codes: [code],
        timestamp: new Date().toISOString(),
      },
      method,
    ];
    if (form.get('grant_type') !== 'client_credentials')
      return fail(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    const clientId = form.get('client_id') ?? '';
    const app = this.#apps.find((a) => a.tenantId === tenantId && a.clientId === clientId);
    if (app === undefined) {
      return fail(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenantId}'.`,
      );
    }
    const scope = form.get('scope') ?? '';
    if (!scope.split(' ').some((s) => /^https:\/\/[^ ]+\/\.default$/.test(s))) {
      return fail(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.`,
      );
    }
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    let method: TokenRequestRecord['method'];
    if (secret !== null) {
      method = 'secret';
      if (app.clientSecret === undefined || secret !== app.clientSecret) {
        return fail(
          401,
          'invalid_client',
          7000215,
          'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
          method,
        );
      }
    } else if (assertion !== null) {
      method = 'assertion';
      if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
        return fail(
          400,
          'invalid_request',
          90014,
          "The request body must contain the following parameter: 'client_assertion_type'.",
          method,
        );
      }
      const jwt = decodeJwt(assertion);
      if (jwt === undefined) return fail(400, 'invalid_client', 50027, 'JWT token is invalid or malformed.', method);
      const { iss, sub, aud, exp } = jwt.claims;
      const audiences = Array.isArray(aud) ? aud : [aud];
      const match = (app.federated ?? []).find(
        (f) => f.issuer === iss && f.subject === sub && audiences.includes(f.audience ?? 'api://AzureADTokenExchange'),
      );
      if (match === undefined) {
        return fail(
          400,
          'invalid_client',
          70021,
          `No matching federated identity record found for presented assertion. Assertion Issuer: '${String(iss)}'. Assertion Subject: '${String(sub)}'. Assertion Audience: '${audiences.join(',')}'.`,
          method,
        );
      }
      if (!signatureValid(jwt, match.issuerKey))
        return fail(401, 'invalid_client', 700027, 'Client assertion failed signature validation.', method);
      if (typeof exp !== 'number' || exp * 1000 < Date.now())
        return fail(400, 'invalid_client', 700024, 'Client assertion is not within its valid time range.', method);
    } else {
      return fail(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    const token = `entra-${randomBytes(24).toString('base64url')}`;
    this.#issued.add(token);
    return [200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token }, method];
  }
}
