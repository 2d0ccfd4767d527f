/**
 * A fake Azure Key Vault (or Managed HSM) data plane on loopback, following ../shared/reference/azure-keyvault.md
 * and its seeds to the status code and error body. It rejects what the real service rejects (DESIGN.md §7):
 *
 * - Authentication: a request without `Authorization: Bearer` gets `401` with
 *   `WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"` — the
 *   official SDKs send their first request token-less on purpose and read tenant and resource from it. A token the
 *   fake does not accept gets the same 401. Permissions are per operation (`keys/sign`, `certificates/get`, …);
 *   a missing one is a 403 with Key Vault's wording.
 * - `api-version` is required on every request, URL-decoded (the SDK writes the key as `api%2Dversion`); missing
 *   or unknown → 400 BadParameter.
 * - `X-HTTP-METHOD` on a POST names the real verb (clients that cannot send PATCH/DELETE).
 * - Keys: get (JWK), sign over a digest — RS256/384/512, PS256/384/512, ES256/384/512; the digest length must fit
 *   the algorithm and the algorithm the key; ECDSA comes back raw r||s. Keys are real key pairs.
 * - Certificates: create (202 + Location, 409 while a pending request is inProgress), pending GET (request_id is a
 *   filter) / PATCH cancel (400 unless inProgress) / DELETE, merge (201; 403 while an issuer-backed request is
 *   inProgress; the leaf must carry the pending key), get by version or latest — with the seed's bodies.
 * - Throttling: 429 on every n-th request (with or without Retry-After), and scripted failures (5xx, …).
 *
 * Everything it did is recorded (`requests`, `signOperations`) for assertions and the benchmark.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import { curveOf, digestLength, signDigest, type DigestAlgorithm } from './digest-signing.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The token {@link FakeKeyVault} accepts unless told otherwise. */
export const FAKE_KEY_VAULT_TOKEN = 'fake-key-vault-access-token';

/** API versions the fake serves (the ones in use; reference/azure-keyvault.md). */
export const FAKE_API_VERSIONS = ['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01'] as const;

export type FakePermission =
  'keys/get' | 'keys/sign' | 'certificates/get' | 'certificates/create' | 'certificates/update';

const ALL_PERMISSIONS: readonly FakePermission[] = [
  'keys/get',
  'keys/sign',
  'certificates/get',
  'certificates/create',
  'certificates/update',
];

export type FakeKeyType = 'EC' | 'EC-HSM' | 'RSA' | 'RSA-HSM';

export interface FakeKeySpec {
  readonly kty: FakeKeyType;
  /** EC: P-256 (default), P-384, P-521. */
  readonly crv?: string;
  /** RSA: modulus bits. Default 2048. */
  readonly size?: number;
}

export interface FakeKeyVaultOptions {
  /** `vault` (default) or `managed-hsm` (keys only: no certificate objects; challenge resource managedhsm.azure.net). */
  readonly kind?: 'vault' | 'managed-hsm';
  /** Tenant named in the 401 challenge. Default `00000000-0000-0000-0000-0000000fa4e0`. */
  readonly tenantId?: string;
  /** Authority named in the 401 challenge. Default https://login.microsoftonline.com. */
  readonly authority?: string;
  /** Which bearer tokens are valid. Default: exactly {@link FAKE_KEY_VAULT_TOKEN}. */
  readonly acceptToken?: (token: string) => boolean;
  /**
   * Where key pairs come from (RSA generation costs ~0.2 s of CPU: tests hand in keys made once per file).
   * Default: generated on demand.
   */
  readonly keyFactory?: (spec: FakeKeySpec) => KeyObject;
}

export interface RecordedRequest {
  /** The verb on the wire. */
  readonly method: string;
  /** After `X-HTTP-METHOD`. */
  readonly effectiveMethod: string;
  readonly path: string;
  /** The raw query string as sent (the SDK writes `api%2Dversion`). */
  readonly rawQuery: string;
  readonly apiVersion: string | undefined;
  readonly authorized: boolean;
  status: number;
}

export interface SignOperation {
  readonly kid: string;
  readonly alg: string;
}

interface KeyVersion {
  readonly name: string;
  readonly version: string;
  readonly kty: FakeKeyType;
  readonly privateKey: KeyObject;
  readonly keyOps: readonly string[];
  enabled: boolean;
  readonly created: number;
}

interface CertificateVersion {
  readonly name: string;
  readonly version: string;
  /** Policy as created (JSON from the request). */
  readonly policy: Record<string, unknown>;
  cer?: Buffer;
  x5c?: Buffer[];
  enabled: boolean;
  readonly created: number;
  updated: number;
}

interface PendingObject {
  readonly name: string;
  readonly version: string;
  readonly requestId: string;
  readonly issuerName: string;
  readonly csr: Buffer;
  status: 'inProgress' | 'completed' | 'failed' | 'cancelled';
  statusDetails: string | undefined;
  cancellationRequested: boolean;
  error: { code: string; message: string } | undefined;
  target: string | undefined;
}

interface ScriptedFailure {
  remaining: number;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: unknown;
  readonly match: RegExp | undefined;
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

/** A JSON error response, Key Vault style. */
class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const now = () => Math.floor(Date.now() / 1000);
const newVersion = () => randomBytes(16).toString('hex');
const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

function strictBase64(text: unknown, url: boolean): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  const alphabet = url ? /^[A-Za-z0-9_-]*={0,2}$/ : /^[A-Za-z0-9+/]*={0,2}$/;
  if (!alphabet.test(text)) return undefined;
  return Buffer.from(text, url ? 'base64url' : 'base64');
}

/** The seed's exact sentence for create-while-inProgress (409, error code `Forbidden`). */
export const CREATE_CONFLICT_MESSAGE =
  "A new key vault certificate can not be created or imported while a pending key vault certificate's status is inProgress.";

export class FakeKeyVault {
  readonly requests: RecordedRequest[] = [];
  readonly signOperations: SignOperation[] = [];
  /** Permissions the caller's identity has. Default: all. Tests remove some to provoke 403s. */
  readonly permissions = new Set<FakePermission>(ALL_PERMISSIONS);
  readonly kind: 'vault' | 'managed-hsm';
  readonly tenantId: string;
  readonly #server: Server;
  readonly #options: FakeKeyVaultOptions;
  readonly #keys = new Map<string, KeyVersion[]>();
  readonly #certificates = new Map<string, CertificateVersion[]>();
  readonly #pending = new Map<string, PendingObject>();
  readonly #issuers = new Map<string, string>();
  /**
   * key_ops of the keys the next certificate creates make (default: the key type's). Key Vault does not document
   * how it derives them; a vault whose keys come out without `sign` is what `kv-ca create` must catch.
   */
  certificateKeyOps: readonly string[] | undefined;
  readonly #failures: ScriptedFailure[] = [];
  #throttle: { every: number; retryAfter: string | undefined; match: RegExp | undefined; seen: number } | undefined;

  private constructor(server: Server, options: FakeKeyVaultOptions) {
    this.#server = server;
    this.#options = options;
    this.kind = options.kind ?? 'vault';
    this.tenantId = options.tenantId ?? '00000000-0000-0000-0000-0000000fa4e0';
  }

  static async start(options: FakeKeyVaultOptions = {}): Promise<FakeKeyVault> {
    const server = createServer();
    const vault = new FakeKeyVault(server, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => vault.#handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return vault;
  }

  /** `http://127.0.0.1:PORT` — the vault URL (the SDK needs `allowInsecureConnection` for http). */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- test controls ----------------------------------------------------------------------------------------

  /** Every `every`-th authorized request (matching `match`, if given) gets 429, with `Retry-After` when given. */
  throttle(options: { every: number; retryAfter?: string; match?: RegExp } | undefined): void {
    this.#throttle =
      options === undefined
        ? undefined
        : { every: options.every, retryAfter: options.retryAfter, match: options.match, seen: 0 };
  }

  /** The next `count` authorized requests (matching `match`) fail with `status` (Key Vault-style body by default). */
  failNext(
    count: number,
    failure: { status: number; headers?: Record<string, string>; body?: unknown; match?: RegExp },
  ): void {
    this.#failures.push({
      remaining: count,
      status: failure.status,
      headers: failure.headers ?? {},
      body: failure.body ?? { error: { code: 'InternalServerError', message: 'An unexpected error occurred.' } },
      match: failure.match,
    });
  }

  /** A certificate issuer (CertificateIssuer resource) that `create` may name, e.g. `mydigicert` / `DigiCert`. */
  addIssuer(name: string, provider: string): void {
    this.#issuers.set(name, provider);
  }

  /** Creates a standalone key version (Managed HSM, or a vault key outside a certificate). Returns its kid. */
  createKey(name: string, spec: FakeKeySpec): { kid: string; version: string } {
    const key = this.#newKey(name, newVersion(), spec);
    return { kid: this.#kid(key), version: key.version };
  }

  /** Enables or disables a key version. */
  setKeyEnabled(name: string, version: string, enabled: boolean): void {
    const key = this.#keys.get(name)?.find((k) => k.version === version);
    if (key === undefined) throw new Error(`no key ${name}/${version}`);
    key.enabled = enabled;
  }

  /** An issuer decides a pending request: `failed` or `cancelled` with an error (issuer error / request rejected). */
  settlePending(name: string, status: 'failed' | 'cancelled', error: { code: string; message: string }): void {
    const pending = this.#pending.get(name);
    if (pending === undefined) throw new Error(`no pending request for ${name}`);
    pending.status = status;
    pending.statusDetails = '';
    pending.error = error;
  }

  /** The private key of a key version (for tests that must sign as the vault would). */
  privateKeyOf(name: string, version: string): KeyObject | undefined {
    return this.#keys.get(name)?.find((k) => k.version === version)?.privateKey;
  }

  /** Versions of a certificate object, oldest first. */
  certificateVersions(name: string): string[] {
    return (this.#certificates.get(name) ?? []).map((c) => c.version);
  }

  /** Requests to a sign endpoint (any status, token-less challenge included). */
  signRequests(): RecordedRequest[] {
    return this.requests.filter((r) => /\/sign$/.test(r.path));
  }

  // ---- request handling -------------------------------------------------------------------------------------

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const override = headerValue(req.headers['x-http-method']);
      const method = req.method === 'POST' && override !== undefined ? override.toUpperCase() : (req.method ?? 'GET');
      const token = /^Bearer (.+)$/.exec(headerValue(req.headers.authorization) ?? '')?.[1];
      const acceptToken = this.#options.acceptToken ?? ((t: string) => t === FAKE_KEY_VAULT_TOKEN);
      const authorized = token !== undefined && acceptToken(token);
      const record: RecordedRequest = {
        method: req.method ?? 'GET',
        effectiveMethod: method,
        path: url.pathname,
        rawQuery: url.search,
        // URLSearchParams percent-decodes names: `api%2Dversion` is `api-version`.
        apiVersion: url.searchParams.get('api-version') ?? undefined,
        authorized,
        status: 0,
      };
      this.requests.push(record);
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        res.end(body === undefined ? '' : JSON.stringify(body));
      };
      try {
        if (!authorized) {
          const resource = this.kind === 'managed-hsm' ? 'https://managedhsm.azure.net' : 'https://vault.azure.net';
          const authority = `${this.#options.authority ?? 'https://login.microsoftonline.com'}/${this.tenantId}`;
          send(
            401,
            {
              error: {
                code: 'Unauthorized',
                message:
                  token === undefined
                    ? 'AKV10000: Request is missing a Bearer or PoP token.'
                    : 'AKV10032: Invalid issuer.',
              },
            },
            { 'www-authenticate': `Bearer authorization="${authority}", resource="${resource}"` },
          );
          return;
        }
        if (record.apiVersion === undefined || record.apiVersion === '') {
          throw new HttpError(400, 'BadParameter', 'The api-version query parameter is missing.');
        }
        if (!(FAKE_API_VERSIONS as readonly string[]).includes(record.apiVersion)) {
          throw new HttpError(
            400,
            'BadParameter',
            `The specified version (${record.apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`,
          );
        }
        const failure = this.#failures.find(
          (f) => f.remaining > 0 && (f.match === undefined || f.match.test(url.pathname)),
        );
        if (failure !== undefined) {
          failure.remaining -= 1;
          send(failure.status, failure.body, failure.headers);
          return;
        }
        const throttle = this.#throttle;
        if (throttle !== undefined && (throttle.match === undefined || throttle.match.test(url.pathname))) {
          throttle.seen += 1;
          if (throttle.seen % throttle.every === 0) {
            throw new HttpError(
              429,
              'Throttled',
              'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
              throttle.retryAfter === undefined ? {} : { 'retry-after': throttle.retryAfter },
            );
          }
        }
        const body = Buffer.concat(chunks).toString('utf8');
        const result = await this.#route(method, url, body);
        send(result.status, result.body, result.headers);
      } catch (error) {
        if (error instanceof HttpError) {
          send(error.status, { error: { code: error.code, message: error.message } }, error.headers);
          return;
        }
        send(500, { error: { code: 'InternalServerError', message: String(error) } });
      }
    });
  }

  #require(permission: FakePermission): void {
    if (this.permissions.has(permission)) return;
    const [kind, action] = permission.split('/') as [string, string];
    throw new HttpError(
      403,
      'Forbidden',
      `The user, group or application 'appid=00000000-0000-0000-0000-00000000c0de;oid=00000000-0000-0000-0000-00000000beef' does not have ${kind} ${action} permission on key vault 'fake-vault;location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`,
    );
  }

  async #route(method: string, url: URL, body: string): Promise<Reply> {
    const segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    const [collection, name, third, fourth, ...rest] = segments;
    if (collection === 'keys' && name !== undefined && rest.length === 0) {
      if (method === 'GET' && fourth === undefined) return this.#getKey(name, third);
      if (method === 'POST' && (fourth === 'sign' || (third === 'sign' && fourth === undefined))) {
        return this.#sign(name, fourth === 'sign' ? third : undefined, parseJson(body));
      }
    }
    if (collection === 'certificates' && name !== undefined && rest.length === 0) {
      if (this.kind === 'managed-hsm') {
        throw new HttpError(404, 'NotFound', 'A Managed HSM holds keys only: there are no certificate objects.');
      }
      if (third === 'create' && fourth === undefined && method === 'POST')
        return await this.#create(name, parseJson(body), url);
      if (third === 'pending' && fourth === undefined) {
        const requestId = url.searchParams.get('request_id') ?? undefined;
        if (method === 'GET') return this.#getPending(name, requestId);
        if (method === 'PATCH') return this.#cancelPending(name, requestId, parseJson(body));
        if (method === 'DELETE') return this.#deletePending(name, requestId);
      }
      if (third === 'pending' && fourth === 'merge' && method === 'POST')
        return this.#merge(name, parseJson(body), url);
      if (method === 'GET' && fourth === undefined && third !== 'pending' && third !== 'create') {
        return this.#getCertificate(name, third);
      }
    }
    throw new HttpError(404, 'NotFound', `The requested resource ${method} ${url.pathname} was not found.`);
  }

  // ---- keys -------------------------------------------------------------------------------------------------

  #newKey(name: string, version: string, spec: FakeKeySpec, reuse?: KeyObject): KeyVersion {
    const isEc = spec.kty.startsWith('EC');
    const privateKey =
      reuse ??
      this.#options.keyFactory?.(spec) ??
      (isEc
        ? generateKeyPairSync('ec', { namedCurve: spec.crv ?? 'P-256' }).privateKey
        : generateKeyPairSync('rsa', { modulusLength: spec.size ?? 2048 }).privateKey);
    const key: KeyVersion = {
      name,
      version,
      kty: spec.kty,
      privateKey,
      keyOps: isEc ? ['sign', 'verify'] : ['sign', 'verify', 'wrapKey', 'unwrapKey', 'encrypt', 'decrypt'],
      enabled: true,
      created: now(),
    };
    const versions = this.#keys.get(name) ?? [];
    versions.push(key);
    this.#keys.set(name, versions);
    return key;
  }

  #kid(key: KeyVersion): string {
    return `${this.url}/keys/${key.name}/${key.version}`;
  }

  #findKey(name: string, version: string | undefined): KeyVersion {
    const versions = this.#keys.get(name) ?? [];
    const key = version === undefined || version === '' ? versions.at(-1) : versions.find((k) => k.version === version);
    if (key === undefined) {
      throw new HttpError(
        404,
        'KeyNotFound',
        `A key with (name/id) ${name}${version === undefined ? '' : `/${version}`} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.`,
      );
    }
    return key;
  }

  #getKey(name: string, version: string | undefined) {
    this.#require('keys/get');
    const key = this.#findKey(name, version);
    const jwk = key.privateKey.export({ format: 'jwk' });
    const publicPart = key.kty.startsWith('EC') ? { crv: jwk.crv, x: jwk.x, y: jwk.y } : { n: jwk.n, e: jwk.e };
    return {
      status: 200,
      body: {
        key: { kid: this.#kid(key), kty: key.kty, key_ops: key.keyOps, ...publicPart },
        attributes: {
          enabled: key.enabled,
          created: key.created,
          updated: key.created,
          recoveryLevel: 'Recoverable+Purgeable',
          exportable: false,
        },
        ...(this.#certificates.has(name) ? { managed: true } : {}),
      },
    };
  }

  #sign(name: string, version: string | undefined, body: unknown) {
    this.#require('keys/sign');
    const key = this.#findKey(name, version);
    const alg = (body as { alg?: unknown } | undefined)?.alg;
    const value = strictBase64((body as { value?: unknown } | undefined)?.value, true);
    if (typeof alg !== 'string' || value === undefined) {
      throw new HttpError(400, 'BadParameter', 'The request body must carry alg and value (base64url).');
    }
    if (!key.enabled) throw new HttpError(403, 'Forbidden', 'Operation sign is not allowed on a disabled key.');
    if (!key.keyOps.includes('sign'))
      throw new HttpError(403, 'Forbidden', 'Operation sign is not permitted on this key.');
    const isEc = key.kty.startsWith('EC');
    const curve = curveOf(key.privateKey);
    const fits =
      (isEc &&
        ((alg === 'ES256' && curve === 'P-256') ||
          (alg === 'ES384' && curve === 'P-384') ||
          (alg === 'ES512' && curve === 'P-521'))) ||
      (!isEc && /^(RS|PS)(256|384|512)$/.test(alg));
    if (!fits)
      throw new HttpError(
        400,
        'BadParameter',
        `Invalid algorithm ${alg} for a key of type ${key.kty}${curve === undefined ? '' : ` (${curve})`}.`,
      );
    const expected = digestLength(alg as DigestAlgorithm);
    if (value.length !== expected) {
      throw new HttpError(
        400,
        'BadParameter',
        `The digest length ${value.length} does not match the length ${expected} required by algorithm ${alg}.`,
      );
    }
    const signature = signDigest(alg as DigestAlgorithm, key.privateKey, value);
    const kid = this.#kid(key);
    this.signOperations.push({ kid, alg });
    return { status: 200, body: { kid, value: b64url(signature) } };
  }

  // ---- certificates -----------------------------------------------------------------------------------------

  #pendingJson(pending: PendingObject, options: { createResponse?: boolean } = {}) {
    // The seed's create response for an issuer-backed request spells the status "InProgress".
    const issuerBacked = pending.issuerName.toLowerCase() !== 'unknown';
    const status =
      options.createResponse === true && issuerBacked && pending.status === 'inProgress'
        ? 'InProgress'
        : pending.status;
    return {
      id: `${this.url}/certificates/${pending.name}/pending`,
      issuer: { name: pending.issuerName },
      csr: pending.csr.toString('base64'),
      cancellation_requested: pending.cancellationRequested,
      status,
      ...(pending.statusDetails === undefined ? {} : { status_details: pending.statusDetails }),
      request_id: pending.requestId,
      ...(pending.target === undefined ? {} : { target: pending.target }),
      ...(pending.error === undefined ? {} : { error: pending.error }),
    };
  }

  #pendingOrThrow(name: string, requestId: string | undefined): PendingObject {
    const pending = this.#pending.get(name);
    // request_id acts as a filter: a different id than the pending object's gives 404 (seed).
    if (pending === undefined || (requestId !== undefined && requestId !== pending.requestId)) {
      throw new HttpError(404, 'PendingCertificateNotFound', 'Pending certificate not found');
    }
    return pending;
  }

  async #create(name: string, body: unknown, url: URL): Promise<Reply> {
    this.#require('certificates/create');
    const policy = (body as { policy?: Record<string, unknown> } | undefined)?.policy;
    const x509Props = policy?.x509_props as { subject?: unknown; key_usage?: unknown } | undefined;
    const keyProps = (policy?.key_props ?? {}) as {
      kty?: unknown;
      crv?: unknown;
      key_size?: unknown;
      reuse_key?: unknown;
      exportable?: unknown;
    };
    const issuerName = ((policy?.issuer as { name?: unknown } | undefined)?.name ?? 'Unknown') as unknown;
    if (policy === undefined || typeof x509Props?.subject !== 'string' || x509Props.subject === '') {
      throw new HttpError(400, 'BadParameter', 'Property policy.x509_props.subject is required.');
    }
    if (typeof issuerName !== 'string')
      throw new HttpError(400, 'BadParameter', 'Property policy.issuer.name must be a string.');
    const manual = issuerName.toLowerCase() === 'unknown';
    if (!manual && !this.#issuers.has(issuerName)) {
      throw new HttpError(400, 'BadParameter', `Issuer ${issuerName} is not configured in this key vault.`);
    }
    const existing = this.#pending.get(name);
    if (existing?.status === 'inProgress') throw new HttpError(409, 'Forbidden', CREATE_CONFLICT_MESSAGE);
    const kty = (keyProps.kty ?? 'RSA') as string;
    if (!['EC', 'EC-HSM', 'RSA', 'RSA-HSM'].includes(kty))
      throw new HttpError(400, 'BadParameter', `Unsupported key type ${kty}.`);
    const crv = typeof keyProps.crv === 'string' ? keyProps.crv : undefined;
    if (crv !== undefined && !['P-256', 'P-384', 'P-521'].includes(crv))
      throw new HttpError(400, 'BadParameter', `Unsupported curve ${crv}.`);
    const size = typeof keyProps.key_size === 'number' ? keyProps.key_size : undefined;
    const version = newVersion();
    const previousKey = this.#keys.get(name)?.at(-1);
    const key = this.#newKey(
      name,
      version,
      { kty: kty as FakeKeyType, ...(crv === undefined ? {} : { crv }), ...(size === undefined ? {} : { size }) },
      keyProps.reuse_key === true ? previousKey?.privateKey : undefined,
    );
    if (this.certificateKeyOps !== undefined) (key as { keyOps: readonly string[] }).keyOps = this.certificateKeyOps;
    const versions = this.#certificates.get(name) ?? [];
    versions.push({ name, version, policy, enabled: false, created: now(), updated: now() });
    this.#certificates.set(name, versions);
    const pending: PendingObject = {
      name,
      version,
      requestId: randomBytes(16).toString('hex'),
      issuerName,
      csr: await csrFor(
        key.privateKey,
        x509Props.subject,
        Array.isArray(x509Props.key_usage) ? (x509Props.key_usage as string[]) : [],
      ),
      status: 'inProgress',
      statusDetails: manual
        ? 'Pending certificate created. Please Perform Merge to complete the request.'
        : 'Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later',
      cancellationRequested: false,
      error: undefined,
      target: undefined,
    };
    // A pending object that is not inProgress is overwritten by a new create (seed).
    this.#pending.set(name, pending);
    const apiVersion = url.searchParams.get('api-version') ?? '';
    return {
      status: 202,
      body: this.#pendingJson(pending, { createResponse: true }),
      headers: {
        location: `${this.url}/certificates/${name}/pending?api-version=${apiVersion}&request_id=${pending.requestId}`,
      },
    };
  }

  #getPending(name: string, requestId: string | undefined) {
    this.#require('certificates/get');
    return { status: 200, body: this.#pendingJson(this.#pendingOrThrow(name, requestId)) };
  }

  #cancelPending(name: string, requestId: string | undefined, body: unknown) {
    this.#require('certificates/update');
    const pending = this.#pendingOrThrow(name, requestId);
    if ((body as { cancellation_requested?: unknown } | undefined)?.cancellation_requested !== true) {
      throw new HttpError(400, 'BadParameter', 'Property cancellation_requested must be true.');
    }
    // Cancellation is only a request, and only while the request is in progress (seed: otherwise 400).
    if (pending.status !== 'inProgress') {
      throw new HttpError(
        400,
        'BadParameter',
        `The pending certificate's status is ${pending.status}: only an inProgress request can be cancelled.`,
      );
    }
    pending.cancellationRequested = true;
    return { status: 200, body: this.#pendingJson(pending) };
  }

  #deletePending(name: string, requestId: string | undefined) {
    this.#require('certificates/update');
    const pending = this.#pendingOrThrow(name, requestId);
    this.#pending.delete(name);
    return { status: 200, body: this.#pendingJson(pending) };
  }

  #merge(name: string, body: unknown, url: URL) {
    this.#require('certificates/create');
    const pending = this.#pendingOrThrow(name, undefined);
    const issuerBacked = pending.issuerName.toLowerCase() !== 'unknown';
    if (issuerBacked && pending.status === 'inProgress') {
      // The seed's exact words (its typo included).
      throw new HttpError(
        403,
        'Forbidden',
        `Merge is forbidden on pending object created with issuer : ${pending.issuerName} while it is in progess.`,
      );
    }
    if (pending.status === 'completed')
      throw new HttpError(400, 'BadParameter', 'The pending certificate is already completed.');
    const x5c = (body as { x5c?: unknown } | undefined)?.x5c;
    if (!Array.isArray(x5c) || x5c.length === 0) throw new HttpError(400, 'BadParameter', 'Property x5c is required.');
    const chain: Buffer[] = [];
    for (const entry of x5c) {
      const der = strictBase64(entry, false);
      if (der === undefined) throw new HttpError(400, 'BadParameter', 'x5c entries must be base64 DER certificates.');
      try {
        new x509.X509Certificate(der);
      } catch {
        throw new HttpError(400, 'BadParameter', 'x5c entries must be base64 DER certificates.');
      }
      chain.push(der);
    }
    const leaf = new x509.X509Certificate(chain[0]!);
    const key = this.#findKey(name, pending.version);
    if (!Buffer.from(leaf.publicKey.rawData).equals(publicSpki(key.privateKey))) {
      throw new HttpError(
        400,
        'BadParameter',
        "Public key from x509 certificate and key of this instance doesn't match",
      );
    }
    const version = this.#certificates.get(name)?.find((c) => c.version === pending.version);
    if (version === undefined) throw new Error('pending version vanished');
    version.cer = chain[0];
    version.x5c = chain;
    version.enabled = true;
    version.updated = now();
    pending.status = 'completed';
    pending.statusDetails = undefined;
    pending.target = `${this.url}/certificates/${name}`;
    const apiVersion = url.searchParams.get('api-version') ?? '';
    return {
      status: 201,
      body: this.#bundleJson(version, leaf),
      headers: { location: `${this.url}/certificates/${name}?api-version=${apiVersion}` },
    };
  }

  #bundleJson(version: CertificateVersion, parsed?: x509.X509Certificate) {
    const cert = parsed ?? (version.cer === undefined ? undefined : new x509.X509Certificate(version.cer));
    const id = `${this.url}/certificates/${version.name}/${version.version}`;
    return {
      id,
      kid: `${this.url}/keys/${version.name}/${version.version}`,
      sid: `${this.url}/secrets/${version.name}/${version.version}`,
      ...(version.cer === undefined
        ? {}
        : {
            cer: version.cer.toString('base64'),
            x5t: createHash('sha1').update(version.cer).digest('base64url'),
          }),
      attributes: {
        enabled: version.enabled,
        ...(cert === undefined
          ? {}
          : { nbf: Math.floor(cert.notBefore.getTime() / 1000), exp: Math.floor(cert.notAfter.getTime() / 1000) }),
        created: version.created,
        updated: version.updated,
        recoveryLevel: 'Recoverable+Purgeable',
      },
      ...(this.#pending.has(version.name)
        ? { pending: { id: `${this.url}/certificates/${version.name}/pending` } }
        : {}),
      policy: { id: `${this.url}/certificates/${version.name}/policy`, ...version.policy },
    };
  }

  #getCertificate(name: string, version: string | undefined) {
    this.#require('certificates/get');
    const versions = this.#certificates.get(name) ?? [];
    const found = version === undefined ? versions.at(-1) : versions.find((c) => c.version === version);
    if (found === undefined) {
      throw new HttpError(
        404,
        'CertificateNotFound',
        `A certificate with (name/id) ${name}${version === undefined ? '' : `/${version}`} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command.`,
      );
    }
    return { status: 200, body: this.#bundleJson(found) };
  }
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function parseJson(body: string): unknown {
  if (body.trim() === '') return undefined;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    throw new HttpError(400, 'BadParameter', 'The request body is not valid JSON.');
  }
}

function publicSpki(privateKey: KeyObject): Buffer {
  return createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
}

const KEY_USAGE_FLAGS: Record<string, number> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  nonRepudiation: x509.KeyUsageFlags.nonRepudiation,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  dataEncipherment: x509.KeyUsageFlags.dataEncipherment,
  keyAgreement: x509.KeyUsageFlags.keyAgreement,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  cRLSign: x509.KeyUsageFlags.cRLSign,
  encipherOnly: x509.KeyUsageFlags.encipherOnly,
  decipherOnly: x509.KeyUsageFlags.decipherOnly,
};

/**
 * A real PKCS#10 request for the vault-held key, as Key Vault hands one out for the parent CA to sign: the policy's
 * subject and its key usages as a requested extension. Made with @peculiar/x509, not the adapter's own code.
 */
async function csrFor(privateKey: KeyObject, subject: string, keyUsage: readonly string[]): Promise<Buffer> {
  const isEc = privateKey.asymmetricKeyType === 'ec';
  const curve = curveOf(privateKey);
  const algorithm = isEc
    ? {
        name: 'ECDSA',
        namedCurve: curve ?? 'P-256',
        hash: curve === 'P-384' ? 'SHA-384' : curve === 'P-521' ? 'SHA-512' : 'SHA-256',
      }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const keys = {
    privateKey: privateKey.toCryptoKey(algorithm, false, ['sign']),
    publicKey: createPublicKey(privateKey).toCryptoKey(algorithm, true, ['verify']),
  };
  const flags = keyUsage.reduce((all, usage) => all | (KEY_USAGE_FLAGS[usage] ?? 0), 0);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    // node's webcrypto.CryptoKey is the CryptoKey @peculiar/x509 takes (the DOM type is not in this project's lib).
    keys,
    signingAlgorithm: algorithm,
    extensions: flags === 0 ? [] : [new x509.KeyUsagesExtension(flags, true)],
  });
  return Buffer.from(csr.rawData);
}
