/**
 * A simulated Chrome tenant: a loopback HTTP server that behaves like the Chrome Management API's
 * certificateProvisioningProcesses methods (../shared/reference/chrome-cert-provisioning-api.md), plus simulated
 * ChromeOS clients holding real keys. Used by `certprov demo` and by the integration tests, where several adapter
 * processes talk to one tenant. It is a fake of a remote service, so it rejects what the real service rejects.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CertificateProvisioningProcess, Operation } from '../chrome/types.ts';
import {
  SandboxApiError,
  internal,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
  unauthenticated,
  unavailable,
} from './api-errors.ts';
import {
  FaultInjector,
  SANDBOX_METHODS,
  type FaultDecision,
  type FaultSettings,
  type SandboxMethod,
} from './fault-injection.ts';
import type { KeyPool } from './key-pool.ts';
import { encodeProcessCreatedEvent, type NotificationOptions, type NotificationSink } from './notifications.ts';
import {
  SimulatedProcess,
  emptyCounters,
  generatedSubject,
  type CreateProcessOptions,
  type ProcessCounters,
  type ProcessHost,
} from './simulated-process.ts';

export interface SandboxTenantOptions {
  /** When set, every request must carry `Authorization: Bearer <expectedToken>` or gets 401. Default: unchecked. */
  readonly expectedToken?: string;
  /** Start in "forbidden" mode: every call answers 403 PERMISSION_DENIED. Default false. */
  readonly forbidden?: boolean;
  /** Default device signing delay for new processes, ms; `never` = devices offline. Default 20. */
  readonly signDelayMs?: number | 'never';
  /** Initial fault injection. Default none. */
  readonly faults?: FaultSettings;
  /** Loopback port. Default 0 (any free port). */
  readonly port?: number;
  /**
   * Called as each request arrives, before anything else (the benchmark's per-process timeline). Default none.
   */
  readonly onRequest?: (method: SandboxMethod | 'other', processId: string | undefined) => void;
}

/** Bulk creation: a deterministic mix of RSA/EC keys × device/user subjects (exact shares, interleaved). */
export interface ProcessMix extends Omit<CreateProcessOptions, 'key' | 'subject' | 'id'> {
  readonly pool: KeyPool;
  /** Share (0..1) of EC P-256 keys; the rest are RSA-2048. Default 0.5. */
  readonly ecShare?: number;
  /** Share (0..1) of user sessions among each key type; the rest are devices. Default 0.5. */
  readonly userShare?: number;
  /** Share (0..1) of affiliated users (with a device) among users. Default 0.5. */
  readonly affiliatedShare?: number;
}

export interface TenantStats extends ProcessCounters {
  processes: number;
  claimed: number;
  issued: number;
  failed: number;
  unfinished: number;
}

export type RequestCounts = Record<SandboxMethod | 'other', number>;

const DEFAULTS = {
  signDelayMs: 20,
  waitTimeoutMs: 30_000,
  maxBodyBytes: 1024 * 1024,
  share: 0.5,
} as const;

const POST_VERBS: ReadonlySet<string> = new Set<SandboxMethod>([
  'claim',
  'signData',
  'uploadCertificate',
  'setFailure',
]);

interface Route {
  readonly method: SandboxMethod;
  readonly customer: string;
  readonly processId: string;
  readonly operationId?: string;
}

/**
 * `/v1/customers/{c}/certificateProvisioningProcesses/{id}[:verb]` and
 * `/v1/customers/{c}/certificateProvisioningProcesses/{id}/operations/{op}`; undefined for anything else.
 */
function parseRoute(httpMethod: string | undefined, url: string | undefined): Route | undefined {
  const path = (url ?? '').split('?', 1)[0] ?? '';
  const segments = path.split('/');
  if (segments[1] !== 'v1' || segments[2] !== 'customers' || segments[4] !== 'certificateProvisioningProcesses') {
    return undefined;
  }
  let decoded: string[];
  try {
    decoded = segments.map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
  const customer = decoded[3];
  const last = decoded[5];
  if (customer === undefined || customer === '' || last === undefined || last === '') return undefined;
  if (decoded.length === 6) {
    const colon = last.indexOf(':');
    const processId = colon < 0 ? last : last.slice(0, colon);
    const verb = colon < 0 ? undefined : last.slice(colon + 1);
    if (processId === '') return undefined;
    if (verb === undefined) return httpMethod === 'GET' ? { method: 'get', customer, processId } : undefined;
    return httpMethod === 'POST' && POST_VERBS.has(verb)
      ? { method: verb as SandboxMethod, customer, processId }
      : undefined;
  }
  const operationId = decoded[7];
  if (decoded.length === 8 && decoded[6] === 'operations' && operationId !== undefined && operationId !== '') {
    return httpMethod === 'GET' ? { method: 'getOperation', customer, processId: last, operationId } : undefined;
  }
  return undefined;
}

/** Request body fields per method: camelCase name → the proto field name (proto3 JSON accepts both). */
const BODY_FIELDS: Readonly<Record<SandboxMethod, Readonly<Record<string, string>>>> = {
  get: {},
  getOperation: {},
  claim: { callerInstanceId: 'caller_instance_id' },
  signData: { signData: 'sign_data', signatureAlgorithm: 'signature_algorithm' },
  uploadCertificate: { certificatePem: 'certificate_pem' },
  setFailure: { errorMessage: 'error_message' },
};

/**
 * Parses a request body the way Google's JSON front end does: an object whose keys are known fields (camelCase or
 * proto names) with string values; an unknown field is a 400, not silently ignored.
 */
function parseBody(method: SandboxMethod, raw: Buffer): Record<string, string> {
  if (raw.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalidArgument('Invalid JSON payload received. Unexpected token.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidArgument('Invalid JSON payload received. Expected an object.');
  }
  const fields = BODY_FIELDS[method];
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    const camel = Object.entries(fields).find(([c, snake]) => c === name || snake === name)?.[0];
    if (camel === undefined) {
      throw invalidArgument(`Invalid JSON payload received. Unknown name "${name}": Cannot find field.`);
    }
    if (typeof value !== 'string') {
      throw invalidArgument(`Invalid value at '${fields[camel]}' (TYPE_STRING), ${JSON.stringify(value)}`);
    }
    result[camel] = value;
  }
  return result;
}

function required(body: Record<string, string>, field: string, protoName: string): string {
  const value = body[field];
  if (value === undefined || value === '') throw invalidArgument(`${protoName} is required.`);
  return value;
}

/** Exact-share interleaving: element i is chosen iff ⌊(i+1)·share⌋ > ⌊i·share⌋. */
function chosen(index: number, share: number): boolean {
  return Math.floor((index + 1) * share) > Math.floor(index * share);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= DEFAULTS.maxBodyBytes) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > DEFAULTS.maxBodyBytes) reject(invalidArgument('Request payload too large.'));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, httpStatus: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(httpStatus, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function sendError(res: ServerResponse, error: SandboxApiError): void {
  const headers: Record<string, string> = {};
  // Google answers throttling with Retry-After; the adapter honours it (DESIGN.md §5).
  if (error.httpStatus === 429) headers['retry-after'] = '1';
  if (error.httpStatus === 401) headers['www-authenticate'] = 'Bearer realm="https://accounts.google.com/"';
  sendJson(res, error.httpStatus, error.body(), headers);
}

interface Waiter {
  readonly remaining: Set<string>;
  readonly total: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class SandboxTenant {
  /** `http://127.0.0.1:PORT`; the Chrome endpoint to configure in the adapter. */
  readonly endpoint: string;
  /** When set, requests without `Authorization: Bearer <expectedToken>` get 401 UNAUTHENTICATED. */
  expectedToken: string | undefined;
  /** When true, every call answers 403 PERMISSION_DENIED (a missing role on the adapter's identity). */
  forbidden: boolean;

  private readonly server: Server;
  private readonly onRequest: SandboxTenantOptions['onRequest'];
  private readonly processes = new Map<string, SimulatedProcess>();
  private readonly waiters = new Set<Waiter>();
  /** Aborted by {@link close}: requests waiting out an injected latency end with it. */
  private readonly closing = new AbortController();
  private readonly injector = new FaultInjector();
  private readonly requestCounts: RequestCounts = { ...emptyRequestCounts() };
  private readonly host: ProcessHost;

  private constructor(server: Server, endpoint: string, options: SandboxTenantOptions) {
    this.server = server;
    this.endpoint = endpoint;
    this.expectedToken = options.expectedToken;
    this.forbidden = options.forbidden ?? false;
    this.onRequest = options.onRequest;
    if (options.faults !== undefined) this.injector.set(options.faults);
    this.host = {
      defaultSignDelayMs: options.signDelayMs ?? DEFAULTS.signDelayMs,
      onFinished: (process) => this.processFinished(process.id),
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) sendError(res, internal());
        else res.destroy();
      });
    });
  }

  /** Starts the tenant on 127.0.0.1 (loopback only: it has no real authentication). */
  static async start(options: SandboxTenantOptions = {}): Promise<SandboxTenant> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    return new SandboxTenant(server, `http://127.0.0.1:${port}`, options);
  }

  /** Stops devices, rejects pending waits and closes the server (open keep-alive connections included). */
  async close(): Promise<void> {
    this.closing.abort();
    for (const process of this.processes.values()) process.close();
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error('sandbox tenant closed'));
    }
    this.waiters.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // --- fault injection --------------------------------------------------------------------------------------

  /** Current fault settings, with the remaining counts of bursts and one-shot faults. */
  get faults(): FaultSettings {
    return this.injector.get();
  }

  /** Replaces the fault settings (`{}` clears them). */
  set faults(settings: FaultSettings) {
    this.injector.set(settings);
  }

  // --- processes ------------------------------------------------------------------------------------------

  /** Creates one process with its simulated device; returns the process id. */
  createProcess(options: CreateProcessOptions): string {
    const process = new SimulatedProcess(options, this.host);
    if (this.processes.has(process.id)) throw new Error(`process ${process.id} exists already`);
    this.processes.set(process.id, process);
    return process.id;
  }

  /** Creates `n` processes with keys from `mix.pool`, mixing key types and subjects deterministically. */
  createProcesses(n: number, mix: ProcessMix): string[] {
    const {
      pool,
      ecShare = DEFAULTS.share,
      userShare = DEFAULTS.share,
      affiliatedShare = DEFAULTS.share,
      ...common
    } = mix;
    const perType = { ec: 0, rsa: 0 };
    let users = 0;
    const ids: string[] = [];
    for (let i = 0; i < n; i += 1) {
      const ec = chosen(i, ecShare);
      // Decide users per key type, so every key type gets its share of users (RSA × user, EC × device, …).
      const typeIndex = ec ? perType.ec++ : perType.rsa++;
      const user = chosen(typeIndex, userShare);
      const subject = user ? generatedSubject('user', chosen(users++, affiliatedShare)) : generatedSubject('device');
      ids.push(this.createProcess({ ...common, key: pool.next(ec ? 'ec-p256' : 'rsa-2048'), subject }));
    }
    return ids;
  }

  /** The resource as the API would serve it now (a copy). */
  process(id: string): CertificateProvisioningProcess {
    return this.lookup(id).snapshot();
  }

  /** Calls that reached this process (after auth and injected faults), as a copy. */
  counters(id: string): ProcessCounters {
    return { ...this.lookup(id).counters };
  }

  /** The callerInstanceId holding the claim, if any. */
  claimedBy(id: string): string | undefined {
    return this.lookup(id).claimedBy;
  }

  /** Every process id, in creation order. */
  processIds(): string[] {
    return [...this.processes.keys()];
  }

  /** An offline device comes online and signs a pending request after `delayMs` (default 0). */
  deviceComesOnline(id: string, delayMs = 0): void {
    this.lookup(id).deviceComesOnline(delayMs);
  }

  /** Totals over every process. */
  stats(): TenantStats {
    const totals: TenantStats = { ...emptyCounters(), processes: 0, claimed: 0, issued: 0, failed: 0, unfinished: 0 };
    for (const process of this.processes.values()) {
      const c = process.counters;
      for (const key of Object.keys(c) as (keyof ProcessCounters)[]) totals[key] += c[key];
      totals.processes += 1;
      if (process.claimedBy !== undefined) totals.claimed += 1;
      const outcome = process.outcome;
      if (outcome === 'issued') totals.issued += 1;
      else if (outcome === 'failed') totals.failed += 1;
      else totals.unfinished += 1;
    }
    return totals;
  }

  /** Requests received, by API method (`other`: unknown routes), including those answered by injected faults. */
  get requests(): Readonly<RequestCounts> {
    return { ...this.requestCounts };
  }

  /** Resolves when every listed process has `issuedCertificate` or `failureMessage`; rejects after `timeoutMs`. */
  waitUntilFinished(ids: Iterable<string>, timeoutMs: number = DEFAULTS.waitTimeoutMs): Promise<void> {
    const remaining = new Set<string>();
    let total = 0;
    for (const id of ids) {
      total += 1;
      if (!this.lookup(id).finished) remaining.add(id);
    }
    if (remaining.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        remaining,
        total,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`${remaining.size} of ${total} sandbox processes not finished after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Sends the "process created" notification for `id` to `sink` in the requested encoding. */
  async notify(id: string, options: NotificationOptions, sink: NotificationSink): Promise<void> {
    const process = this.lookup(id);
    const data = encodeProcessCreatedEvent({ processId: process.id, customerId: process.customer }, options);
    await sink(data, { ...(options.attributes ?? {}) });
  }

  // --- HTTP ----------------------------------------------------------------------------------------------------

  private lookup(id: string): SimulatedProcess {
    const process = this.processes.get(id);
    if (process === undefined) throw new Error(`no sandbox process ${id}`);
    return process;
  }

  private processFinished(id: string): void {
    for (const waiter of this.waiters) {
      if (!waiter.remaining.delete(id) || waiter.remaining.size > 0) continue;
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
      waiter.resolve();
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = parseRoute(req.method, req.url);
    this.requestCounts[route?.method ?? 'other'] += 1;
    this.onRequest?.(route?.method ?? 'other', route?.processId);
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (error) {
      sendError(res, error instanceof SandboxApiError ? error : invalidArgument('Could not read the request body.'));
      return;
    }
    const delay = this.injector.delayMs();
    if (delay > 0) {
      try {
        await sleep(delay, undefined, { signal: this.closing.signal });
      } catch {
        return; // closed meanwhile: close() dropped the connection, and a closed tenant keeps no timer
      }
    }

    const decision: FaultDecision = route === undefined ? { kind: 'none' } : this.injector.decide(route.method);
    if (decision.kind === 'reject') {
      sendError(res, decision.httpStatus === 429 ? resourceExhausted() : unavailable());
      return;
    }

    let status = 200;
    let body: unknown;
    try {
      this.authorize(req);
      if (route === undefined) throw notFound('The requested URL was not found on this server.');
      body = this.dispatch(route, parseBody(route.method, raw));
    } catch (error) {
      if (!(error instanceof SandboxApiError)) throw error;
      if (decision.kind === 'none') {
        sendError(res, error);
        return;
      }
      status = error.httpStatus;
      body = error.body();
    }

    if (decision.kind === 'drop-after-apply') {
      // The request took effect; the answer is lost (connection cut). The client cannot tell whether it applied.
      req.socket.destroy();
      return;
    }
    if (decision.kind === 'error-after-apply') {
      sendError(res, decision.httpStatus === 500 ? internal() : unavailable());
      return;
    }
    if (decision.kind === 'hold-after-apply') {
      // Applied; the caller hears of it only later (or never, if it dies meanwhile).
      await new Promise((r) => setTimeout(r, decision.ms).unref());
      if (res.destroyed || !res.writable) return;
    }
    sendJson(res, status, body);
  }

  private authorize(req: IncomingMessage): void {
    if (this.expectedToken !== undefined) {
      const header = req.headers.authorization ?? '';
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (match === null || match[1] !== this.expectedToken) throw unauthenticated();
    }
    if (this.forbidden) throw permissionDenied();
  }

  private dispatch(route: Route, body: Record<string, string>): CertificateProvisioningProcess | Operation | object {
    const process = this.processes.get(route.processId);
    // `my_customer` names the caller's own customer; the sandbox is one tenant, so it matches every process.
    if (process === undefined || (route.customer !== 'my_customer' && route.customer !== process.customer)) {
      throw notFound('Requested entity was not found.');
    }
    switch (route.method) {
      case 'get':
        return process.get();
      case 'claim':
        process.claim(required(body, 'callerInstanceId', 'caller_instance_id'));
        return {};
      case 'signData':
        return process.signData(
          required(body, 'signData', 'sign_data'),
          required(body, 'signatureAlgorithm', 'signature_algorithm'),
        );
      case 'getOperation':
        return process.getOperation(route.operationId ?? '');
      case 'uploadCertificate':
        process.uploadCertificate(required(body, 'certificatePem', 'certificate_pem'));
        return {};
      case 'setFailure':
        process.setFailure(required(body, 'errorMessage', 'error_message'));
        return {};
    }
  }
}

function emptyRequestCounts(): RequestCounts {
  const counts = { other: 0 } as RequestCounts;
  for (const method of SANDBOX_METHODS) counts[method] = 0;
  return counts;
}
