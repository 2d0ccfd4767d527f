/**
 * A fake DigiCert CertCentral Services API on loopback, following ../shared/reference/digicert-certcentral.md to
 * the status code: it rejects what the real service rejects (a fake that accepts more hides bugs; DESIGN.md §7).
 *
 * - Authentication: `X-DC-DEVKEY` must be the configured key (401 otherwise); operations can be denied with
 *   `access_denied|missing_permission` (403).
 * - Orders: the body is checked field by field (common_name, emails / dns_names, signature_hash, organization,
 *   container, ca_cert_id, validity, payment_method, custom fields — required ones must be present); the CSR is
 *   parsed and its signature VERIFIED (a bad one → `csr_invalid_cannot_parse`); certificates are real, issued
 *   from a test hierarchy (root → intermediate) for the CSR's key, with the subject and SANs the ORDER names.
 * - Issuance: `immediate` (201 with `certificate_chain`, needs skip_approval), `pending` (issued by
 *   {@link FakeCertCentral.approve}, or after `pendingReads` status reads), `needs_approval` without
 *   skip_approval; reject, cancel (only pending / waiting_pickup / reissue_pending), reject a request.
 * - status-changes with `seconds`/`minutes` windows (`time_frame_too_long` beyond 7 days or the configured cap),
 *   order info, order list with filters (common_name, email, status, product_name_id, date_created `>d` `<d`
 *   `a...b`),
 *   downloads (`pem_all` by certificate id or by order), organization validation.
 * - 429 `request_limit_exceeded` above a configured rate (no Retry-After, as documented).
 * - Faults per operation: a status code, a hang or a connection reset, before or after the request was applied
 *   (the order exists, the answer never comes) — the moments a crash or an unclear result can happen.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import type { DistinguishedName, SubjectAltName } from '../../../src/pki/types.ts';
import { FakeDigicertCa } from './test-ca.ts';
import { x509 } from './x509.ts';

const DAY_MS = 86_400_000;
const MAX_WINDOW_SECONDS = 604_800;

export type FakeOrderStatus =
  'pending' | 'needs_approval' | 'waiting_pickup' | 'reissue_pending' | 'issued' | 'rejected' | 'canceled' | 'revoked';

/** Operation names, as the requests log and fault injection use them. */
export type FakeOperation =
  | 'order'
  | 'order-info'
  | 'list-orders'
  | 'status-changes'
  | 'download'
  | 'cancel'
  | 'reject-request'
  | 'revoke'
  | 'organization-validation'
  | 'unknown';

export interface FakeProduct {
  readonly kind: 'client' | 'ssl';
  readonly extendedKeyUsages: readonly string[];
  readonly maxValidityDays: number;
  /**
   * The validity fields the product's order page documents; another one is refused with `invalid_value:<field>`
   * (DigiCert's answer to a validity it does not take, per its "End of 4–6 year plans" notice).
   */
  readonly validityFields: readonly ('validity_days' | 'validity_years' | 'custom_expiration_date')[];
  /** Largest `validity_years`. */
  readonly maxValidityYears: number;
  /** Private products: the ca_cert_id the order must name. */
  readonly caCertId?: string;
  /**
   * The order page documents `renewal_of_order_id`. When true, a renewal must name an issued order of this account
   * and product; when false, the field is refused (the adapter must not send what the product does not document).
   */
  readonly linksRenewals: boolean;
}

export interface FakeOrganization {
  readonly id: number;
  readonly name: string;
  /** OV validation complete; orders for an unvalidated organization stay pending. Default true. */
  readonly validated?: boolean;
}

export interface FakeCustomField {
  readonly id: number;
  readonly label: string;
  readonly required?: boolean;
}

export interface FakeOrder {
  readonly id: number;
  readonly requestId: number;
  readonly certificateId: number;
  readonly product: string;
  status: FakeOrderStatus;
  readonly dateCreated: number;
  /** When the status last changed after creation (status-changes reports these). */
  statusChangedAt: number | undefined;
  readonly commonName: string;
  readonly emails: readonly string[];
  readonly dnsNames: readonly string[];
  readonly organizationUnits: readonly string[];
  readonly organizationId: number;
  readonly spkiDer: Uint8Array;
  readonly validityMs: number;
  readonly customFields: readonly { metadata_id: number; value: string }[];
  readonly comments: string | undefined;
  /** The order this one renews (`renewal_of_order_id`). */
  readonly renewalOfOrderId: number | undefined;
  readonly body: Record<string, unknown>;
  /** leaf, intermediate, root once issued. */
  pems: readonly string[] | undefined;
  /** Status reads left until a pending order issues itself (undefined: only approve()). */
  readsUntilIssued: number | undefined;
  cancelNote: string | undefined;
}

export type FaultAction =
  | { readonly kind: 'status'; readonly status: number; readonly body?: string; readonly afterApply?: boolean }
  | { readonly kind: 'hang'; readonly afterApply?: boolean }
  | { readonly kind: 'reset'; readonly afterApply?: boolean };

export interface FakeCertCentralOptions {
  /** The API key `X-DC-DEVKEY` must carry. */
  readonly apiKey: string;
  readonly organizations?: readonly FakeOrganization[];
  readonly customFields?: readonly FakeCustomField[];
  /** Container ids orders may name (the key's own container is always fine). Default [1]. */
  readonly containers?: readonly number[];
  readonly products?: Readonly<Record<string, FakeProduct>>;
  /** How orders with skip_approval are answered. Default `immediate`. */
  readonly issuance?: 'immediate' | 'pending';
  /** A pending order issues itself on its N-th status read (order info, or a status-changes call). Default never. */
  readonly pendingReads?: number;
  /** Write O = the organization's name into the subject. Default false. */
  readonly organizationInSubject?: boolean;
  /** Answer 429 above this many requests in the window. Default: no limit. */
  readonly rateLimit?: { readonly limit: number; readonly windowMs: number };
  /** Errors as the older object shape (`{"errors": {"code", "message"}}`). Default false. */
  readonly legacyErrorShape?: boolean;
  /** Longest status-changes window, seconds (DigiCert: 604,800). */
  readonly maxWindowSeconds?: number;
  /** Operations answered 403 access_denied|missing_permission. */
  readonly deniedOperations?: readonly FakeOperation[];
  /** Wall clock. Default Date.now. */
  readonly now?: () => number;
}

export const FAKE_DEFAULTS = {
  organization: { id: 408115, name: 'Example Org', validated: true },
  customField: { id: 77, label: 'Chrome process id', required: true },
  products: {
    client_authentication_plus: {
      kind: 'client',
      extendedKeyUsages: [EXTENDED_KEY_USAGES.clientAuth as string],
      maxValidityDays: 1095,
      validityFields: ['validity_days', 'custom_expiration_date', 'validity_years'],
      maxValidityYears: 3,
      linksRenewals: true,
    },
    private_ssl_plus: {
      kind: 'ssl',
      extendedKeyUsages: [EXTENDED_KEY_USAGES.serverAuth as string, EXTENDED_KEY_USAGES.clientAuth as string],
      maxValidityDays: 825,
      validityFields: ['validity_years'],
      maxValidityYears: 2,
      caCertId: 'A1B2C3D4E5F6',
      linksRenewals: false,
    },
  } satisfies Record<string, FakeProduct>,
} as const;

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly operation: FakeOperation;
  /** The query string, decoded (`filters[email]=…&limit=…`). */
  readonly query: string;
  readonly status: number;
  readonly at: number;
}

class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const invalid = (field: string, message: string) => new ApiError(400, `invalid_value:${field}`, message);
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const DNS_NAME = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;

function attribute(type: string, value: string): DistinguishedName[number][number] {
  const info = SUBJECT_ATTRIBUTE_TYPES[type];
  if (info === undefined) throw new Error(`unknown attribute ${type}`);
  return { type, oid: info.oid, value };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInt(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** `filters[date_created]`: `>yyyy-MM-dd`, `<yyyy-MM-dd`, `a...b`, or one day. */
function dateFilter(expression: string): (createdAt: number) => boolean {
  const day = (text: string) => {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) throw new ApiError(400, 'invalid_filter', `invalid date ${text}`);
    return Date.parse(`${text}T00:00:00Z`);
  };
  if (expression.startsWith('>')) {
    const from = day(expression.slice(1)) + DAY_MS;
    return (t) => t >= from;
  }
  if (expression.startsWith('<')) {
    const to = day(expression.slice(1));
    return (t) => t < to;
  }
  const range = expression.split('...');
  if (range.length === 2) {
    const from = day(range[0] as string);
    const to = day(range[1] as string) + DAY_MS;
    return (t) => t >= from && t < to;
  }
  const from = day(expression);
  return (t) => t >= from && t < from + DAY_MS;
}

export class FakeCertCentral {
  /** `http://127.0.0.1:PORT/services/v2`: the connection's `baseUrl`. */
  readonly baseUrl: string;
  readonly ca: FakeDigicertCa;
  /** Every request received, in order (authenticated or not). */
  readonly requests: RequestRecord[] = [];
  readonly orders = new Map<number, FakeOrder>();
  /** Revocation requests received (by certificate or order). */
  readonly revocations: {
    id: number;
    orderId: number;
    status: 'pending' | 'approved';
    comments?: string | undefined;
    reason?: string | undefined;
  }[] = [];
  /** Emits `order` (FakeOrder) right after an order was created, before it is answered. */
  readonly events = new EventEmitter();
  /** Mutable at run time: how the next orders are answered. */
  issuance: 'immediate' | 'pending';
  pendingReads: number | undefined;
  apiKey: string;
  deniedOperations: Set<FakeOperation>;

  private readonly options: FakeCertCentralOptions;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly faults = new Map<FakeOperation, { action: FaultAction; times: number }[]>();
  private readonly organizations: Map<number, FakeOrganization>;
  private readonly customFields: Map<number, FakeCustomField>;
  private readonly products: Readonly<Record<string, FakeProduct>>;
  private readonly now: () => number;
  private nextId = 100_000;

  private constructor(server: Server, baseUrl: string, ca: FakeDigicertCa, options: FakeCertCentralOptions) {
    this.server = server;
    this.baseUrl = baseUrl;
    this.ca = ca;
    this.options = options;
    this.apiKey = options.apiKey;
    this.issuance = options.issuance ?? 'immediate';
    this.pendingReads = options.pendingReads;
    this.deniedOperations = new Set(options.deniedOperations ?? []);
    this.organizations = new Map((options.organizations ?? [FAKE_DEFAULTS.organization]).map((o) => [o.id, o]));
    this.customFields = new Map((options.customFields ?? [FAKE_DEFAULTS.customField]).map((f) => [f.id, f]));
    this.products = options.products ?? FAKE_DEFAULTS.products;
    this.now = options.now ?? Date.now;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.sendError(res, new ApiError(500, 'internal_error', String(error)));
        else res.destroy();
      });
    });
  }

  static async start(options: FakeCertCentralOptions): Promise<FakeCertCentral> {
    const ca = await FakeDigicertCa.create();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    return new FakeCertCentral(server, `http://127.0.0.1:${port}/services/v2`, ca, options);
  }

  /** Closes the server and every open connection (hung requests included). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await closed;
  }

  // --- control ------------------------------------------------------------------------------------------------

  /** The next `times` requests of `operation` meet `action`. */
  injectFault(operation: FakeOperation, action: FaultAction, times = 1): void {
    const list = this.faults.get(operation) ?? [];
    list.push({ action, times });
    this.faults.set(operation, list);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Resolves with the next order created (before it is answered). */
  nextOrder(): Promise<FakeOrder> {
    return new Promise((resolve) => this.events.once('order', resolve));
  }

  /** Issues a pending order now (its status changes to issued). */
  async approve(orderId: number): Promise<void> {
    const order = this.order(orderId);
    if (!['pending', 'needs_approval', 'waiting_pickup'].includes(order.status)) {
      throw new Error(`order ${orderId} is ${order.status}, cannot be approved`);
    }
    await this.issue(order);
  }

  /** DigiCert's validation team rejects the order. */
  reject(orderId: number): void {
    this.setStatus(orderId, 'rejected');
  }

  setStatus(orderId: number, status: FakeOrderStatus): void {
    const order = this.order(orderId);
    order.status = status;
    order.statusChangedAt = this.now();
  }

  order(orderId: number): FakeOrder {
    const order = this.orders.get(orderId);
    if (order === undefined) throw new Error(`no fake order ${orderId}`);
    return order;
  }

  /** Orders whose process-id custom field (any field) carries `processId`. */
  ordersForProcess(processId: string): FakeOrder[] {
    return [...this.orders.values()].filter((o) => o.customFields.some((f) => f.value === processId));
  }

  /** Requests received for an operation (all when omitted). */
  count(operation?: FakeOperation): number {
    return operation === undefined
      ? this.requests.length
      : this.requests.filter((r) => r.operation === operation).length;
  }

  // --- HTTP ---------------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/^\/services\/v2/, '');
    const operation = this.operationOf(method, path);
    const query = decodeURIComponent(url.search.replace(/^\?/, ''));
    const record = (status: number) => this.requests.push({ method, path, operation, query, status, at: this.now() });
    const bodyText = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

    try {
      if (!url.pathname.startsWith('/services/v2/')) throw new ApiError(404, 'not_found', 'Not found');
      if (req.headers['x-dc-devkey'] !== this.apiKey) {
        throw new ApiError(401, 'access_denied|invalid_api_key', 'The API key is missing or invalid.');
      }
      this.checkRate();
      if (this.deniedOperations.has(operation)) {
        throw new ApiError(
          403,
          'access_denied|missing_permission',
          'Your user does not have permission for this action.',
        );
      }
      const fault = this.takeFault(operation);
      if (fault !== undefined && fault.afterApply !== true) {
        record(fault.kind === 'status' ? fault.status : 0);
        this.applyFault(fault, res);
        return;
      }
      const result = await this.dispatch(method, path, url.searchParams, bodyText);
      if (fault !== undefined) {
        // Applied, but the answer is lost: the client cannot know.
        record(fault.kind === 'status' ? fault.status : 0);
        this.applyFault(fault, res);
        return;
      }
      record(result.status);
      if (result.status === 204) {
        res.writeHead(204).end();
      } else if (typeof result.body === 'string') {
        res.writeHead(result.status, { 'content-type': 'application/x-pem-file' }).end(result.body);
      } else {
        const payload = JSON.stringify(result.body);
        res
          .writeHead(result.status, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          })
          .end(payload);
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      record(error.status);
      this.sendError(res, error);
    }
  }

  private sendError(res: ServerResponse, error: ApiError): void {
    const item = { code: error.code, message: error.message };
    const payload = JSON.stringify({ errors: this.options.legacyErrorShape === true ? item : [item] });
    res
      .writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) })
      .end(payload);
  }

  private applyFault(fault: FaultAction, res: ServerResponse): void {
    switch (fault.kind) {
      case 'status': {
        const payload =
          fault.body ?? JSON.stringify({ errors: [{ code: 'internal_error', message: 'injected failure' }] });
        res.writeHead(fault.status, { 'content-type': 'application/json' }).end(payload);
        return;
      }
      case 'hang':
        return; // never answered; close() destroys the socket
      case 'reset':
        res.socket?.destroy();
        return;
    }
  }

  private takeFault(operation: FakeOperation): FaultAction | undefined {
    const list = this.faults.get(operation);
    const first = list?.[0];
    if (list === undefined || first === undefined) return undefined;
    first.times -= 1;
    if (first.times <= 0) list.shift();
    return first.action;
  }

  private checkRate(): void {
    const limit = this.options.rateLimit;
    if (limit === undefined) return;
    const since = this.now() - limit.windowMs;
    // Requests that were answered (429s included: DigiCert counts every request against the key).
    const recent = this.requests.filter((r) => r.at > since && r.status !== 401).length;
    if (recent >= limit.limit) throw new ApiError(429, 'request_limit_exceeded', 'Rate limit exceeded.');
  }

  private operationOf(method: string, path: string): FakeOperation {
    if (method === 'POST' && /^\/order\/certificate\/[^/]+$/.test(path)) return 'order';
    if (method === 'GET' && path === '/order/certificate/status-changes') return 'status-changes';
    if (method === 'GET' && path === '/order/certificate') return 'list-orders';
    if (method === 'GET' && /^\/order\/certificate\/\d+$/.test(path)) return 'order-info';
    if (method === 'PUT' && /^\/order\/certificate\/\d+\/status$/.test(path)) return 'cancel';
    if (method === 'PUT' && /^\/request\/\d+\/status$/.test(path)) return 'reject-request';
    if (method === 'PUT' && /^\/(certificate|order\/certificate)\/\d+\/revoke$/.test(path)) return 'revoke';
    if (
      method === 'GET' &&
      /^\/certificate\/(\d+\/download\/format|download\/order\/\d+\/format)\/[a-z_0-9]+$/.test(path)
    )
      return 'download';
    if (method === 'GET' && /^\/organization\/\d+\/validation$/.test(path)) return 'organization-validation';
    return 'unknown';
  }

  private async dispatch(
    method: string,
    path: string,
    query: URLSearchParams,
    bodyText: string,
  ): Promise<{ status: number; body?: unknown }> {
    const json = (): Record<string, unknown> => {
      try {
        const parsed: unknown = JSON.parse(bodyText);
        if (isObject(parsed)) return parsed;
      } catch {
        // fall through
      }
      throw new ApiError(400, 'invalid_input', 'The request body is not a JSON object.');
    };
    let m: RegExpExecArray | null;
    if (method === 'POST' && (m = /^\/order\/certificate\/([^/]+)$/.exec(path)) !== null) {
      return this.placeOrder(decodeURIComponent(m[1] as string), json());
    }
    if (method === 'GET' && path === '/order/certificate/status-changes') return this.statusChanges(query);
    if (method === 'GET' && path === '/order/certificate') return this.listOrders(query);
    if (method === 'GET' && (m = /^\/order\/certificate\/(\d+)$/.exec(path)) !== null) {
      return { status: 200, body: await this.orderInfo(Number(m[1])) };
    }
    if (method === 'PUT' && (m = /^\/order\/certificate\/(\d+)\/status$/.exec(path)) !== null) {
      return this.cancel(Number(m[1]), json());
    }
    if (method === 'PUT' && (m = /^\/request\/(\d+)\/status$/.exec(path)) !== null) {
      return this.updateRequest(Number(m[1]), json());
    }
    if (method === 'PUT' && (m = /^\/certificate\/(\d+)\/revoke$/.exec(path)) !== null) {
      const id = Number(m[1]);
      return this.revoke(
        [...this.orders.values()].find((o) => o.certificateId === id),
        json(),
        'certificate',
      );
    }
    if (method === 'PUT' && (m = /^\/order\/certificate\/(\d+)\/revoke$/.exec(path)) !== null) {
      return this.revoke(this.orders.get(Number(m[1])), json(), 'order');
    }
    if (method === 'GET' && (m = /^\/certificate\/(\d+)\/download\/format\/([a-z_0-9]+)$/.exec(path)) !== null) {
      const order = [...this.orders.values()].find((o) => o.certificateId === Number(m?.[1]));
      return this.download(order, m[2] as string);
    }
    if (method === 'GET' && (m = /^\/certificate\/download\/order\/(\d+)\/format\/([a-z_0-9]+)$/.exec(path)) !== null) {
      return this.download(this.orders.get(Number(m[1])), m[2] as string);
    }
    if (method === 'GET' && (m = /^\/organization\/(\d+)\/validation$/.exec(path)) !== null) {
      const organization = this.organizations.get(Number(m[1]));
      if (organization === undefined) throw new ApiError(404, 'not_found|organization', 'Organization not found.');
      return {
        status: 200,
        body: { validations: [{ type: 'ov', status: organization.validated === false ? 'pending' : 'completed' }] },
      };
    }
    throw new ApiError(404, 'not_found', 'Not found');
  }

  // --- orders -------------------------------------------------------------------------------------------------

  private async placeOrder(
    productId: string,
    body: Record<string, unknown>,
  ): Promise<{ status: number; body: unknown }> {
    const product = this.products[productId];
    if (product === undefined) throw new ApiError(404, 'not_found|product', `Product ${productId} is not available.`);
    const certificate = body.certificate;
    if (!isObject(certificate)) throw invalid('certificate', 'certificate is required.');

    const commonName = certificate.common_name;
    if (typeof commonName !== 'string' || commonName.trim() === '' || commonName.length > 64) {
      throw invalid('common_name', 'common_name is required (at most 64 characters).');
    }
    let emails: string[] = [];
    let dnsNames: string[] = [];
    if (product.kind === 'client') {
      const raw = certificate.emails;
      if (!Array.isArray(raw) || raw.length === 0) throw invalid('emails', 'emails is required.');
      emails = raw.map((e) => {
        if (typeof e !== 'string' || !EMAIL.test(e)) throw invalid('emails', `invalid email address.`);
        return e;
      });
    } else {
      if (!DNS_NAME.test(commonName)) throw invalid('common_name', 'common_name must be a domain name.');
      const raw = certificate.dns_names ?? [];
      if (!Array.isArray(raw)) throw invalid('dns_names', 'dns_names must be an array.');
      dnsNames = raw.map((d) => {
        if (typeof d !== 'string' || !DNS_NAME.test(d)) throw invalid('dns_names', 'invalid domain name.');
        return d;
      });
    }
    const ous = certificate.organization_units ?? [];
    if (!Array.isArray(ous) || ous.some((o) => typeof o !== 'string' || o === '' || o.length > 64)) {
      throw invalid('organization_units', 'organization_units must be non-empty strings.');
    }
    if (!['sha256', 'sha384', 'sha512'].includes(certificate.signature_hash as string)) {
      throw invalid('signature_hash', 'signature_hash must be sha256, sha384 or sha512.');
    }
    if (product.caCertId !== undefined && certificate.ca_cert_id !== product.caCertId) {
      throw invalid('ca_cert_id', 'ca_cert_id does not name an issuing CA of this account.');
    }
    const spkiDer = await this.verifiedCsrKey(certificate.csr);

    const organizationId = isObject(body.organization) ? positiveInt(body.organization.id) : undefined;
    const organization = organizationId === undefined ? undefined : this.organizations.get(organizationId);
    if (organization === undefined) throw invalid('organization.id', 'organization id is missing or unknown.');
    if (body.container !== undefined) {
      const containerId = isObject(body.container) ? positiveInt(body.container.id) : undefined;
      if (containerId === undefined || !(this.options.containers ?? [1]).includes(containerId)) {
        throw invalid('container.id', 'container id is unknown.');
      }
    }
    if (!['balance', 'card', 'profile', undefined].includes(body.payment_method as string | undefined)) {
      throw invalid('payment_method', 'payment_method must be balance, card or profile.');
    }
    const validityMs = this.validityOf(body, product);
    const customFields = this.customFieldsOf(body.custom_fields);
    const comments = typeof body.comments === 'string' ? body.comments : undefined;
    const renewalOfOrderId = this.renewedOrderOf(body.renewal_of_order_id, productId, product);

    const id = this.nextId++;
    const order: FakeOrder = {
      id,
      requestId: id + 500_000,
      certificateId: id + 900_000,
      product: productId,
      status: body.skip_approval === true ? 'pending' : 'needs_approval',
      dateCreated: this.now(),
      statusChangedAt: undefined,
      commonName,
      emails,
      dnsNames,
      organizationUnits: ous as string[],
      organizationId: organization.id,
      spkiDer,
      validityMs,
      customFields,
      comments,
      renewalOfOrderId,
      body,
      pems: undefined,
      readsUntilIssued: this.pendingReads,
      cancelNote: undefined,
    };
    this.orders.set(id, order);
    const immediate = order.status === 'pending' && this.issuance === 'immediate' && organization.validated !== false;
    if (immediate) await this.issue(order, false);
    this.events.emit('order', order);

    if (order.status === 'issued' && order.pems !== undefined) {
      const [leaf, intermediate, root] = order.pems as [string, string, string];
      return {
        status: 201,
        body: {
          id,
          requests: [{ id: order.requestId, status: 'approved' }],
          certificate_id: order.certificateId,
          certificate_chain: [
            { subject_common_name: commonName, pem: leaf },
            { subject_common_name: 'Fake DigiCert Test Client CA G2', pem: intermediate },
            { subject_common_name: 'Fake DigiCert Test Root G5', pem: root },
          ],
        },
      };
    }
    return {
      status: 201,
      body: {
        id,
        requests: [{ id: order.requestId, status: order.status === 'needs_approval' ? 'pending' : 'approved' }],
      },
    };
  }

  /** `renewal_of_order_id`: an issued order of this account and product, on a product that takes the link. */
  private renewedOrderOf(raw: unknown, productId: string, product: FakeProduct): number | undefined {
    if (raw === undefined) return undefined;
    if (!product.linksRenewals) {
      throw invalid('renewal_of_order_id', `renewal_of_order_id is not accepted for ${productId}.`);
    }
    const orderId = positiveInt(raw);
    const renewed = orderId === undefined ? undefined : this.orders.get(orderId);
    if (orderId === undefined || renewed === undefined) {
      throw invalid('renewal_of_order_id', 'renewal_of_order_id does not name an order of this account.');
    }
    if (renewed.product !== productId || renewed.status !== 'issued') {
      throw invalid('renewal_of_order_id', `order ${orderId} cannot be renewed by a ${productId} order.`);
    }
    return orderId;
  }

  /** Parses the PEM CSR and verifies its self-signature; returns the SPKI (DER). */
  private async verifiedCsrKey(csr: unknown): Promise<Uint8Array> {
    if (typeof csr !== 'string' || csr.trim() === '') throw invalid('csr', 'csr is required.');
    let spki: Uint8Array | undefined;
    try {
      const request = new x509.Pkcs10CertificateRequest(csr);
      if (await request.verify()) spki = new Uint8Array(request.publicKey.rawData);
    } catch {
      spki = undefined;
    }
    if (spki === undefined) throw new ApiError(400, 'csr_invalid_cannot_parse', 'Unable to parse the CSR.');
    return spki;
  }

  private validityOf(body: Record<string, unknown>, product: FakeProduct): number {
    for (const field of ['validity_days', 'validity_years', 'custom_expiration_date'] as const) {
      if (body[field] !== undefined && !product.validityFields.includes(field)) {
        throw invalid(field, `${field} contains an invalid value.`);
      }
    }
    let days: number | undefined;
    let validityMs: number | undefined;
    if (body.custom_expiration_date !== undefined) {
      const text = body.custom_expiration_date;
      if (
        typeof text !== 'string' ||
        !/^\d{4}-\d{2}-\d{2}$/.test(text) ||
        Number.isNaN(Date.parse(`${text}T00:00:00Z`))
      ) {
        throw invalid('custom_expiration_date', 'custom_expiration_date must be yyyy-MM-dd.');
      }
      validityMs = Date.parse(`${text}T00:00:00Z`) - this.now();
      if (validityMs <= 0) throw invalid('custom_expiration_date', 'custom_expiration_date must be in the future.');
      days = Math.ceil(validityMs / DAY_MS);
    } else if (body.validity_days !== undefined) {
      days = positiveInt(body.validity_days);
      if (days === undefined) throw invalid('validity_days', 'validity_days must be a positive integer.');
      validityMs = days * DAY_MS;
    } else if (body.validity_years !== undefined) {
      const years = positiveInt(body.validity_years);
      if (years === undefined || years > product.maxValidityYears) {
        throw invalid('validity_years', 'validity_years contains an invalid value.');
      }
      days = years * 365;
      validityMs = days * DAY_MS;
    } else {
      throw invalid('validity', 'A validity (validity_years, validity_days or custom_expiration_date) is required.');
    }
    if (days > product.maxValidityDays) {
      throw new ApiError(
        400,
        'cert_validity_exceeds_order_validity',
        'The certificate validity exceeds the order validity.',
      );
    }
    return validityMs;
  }

  private customFieldsOf(raw: unknown): { metadata_id: number; value: string }[] {
    const given = raw === undefined ? [] : raw;
    if (!Array.isArray(given)) throw invalid('custom_fields', 'custom_fields must be an array.');
    const fields = given.map((f: unknown) => {
      const id = isObject(f) ? positiveInt(f.metadata_id) : undefined;
      if (id === undefined || !this.customFields.has(id))
        throw invalid('custom_fields', 'unknown custom field metadata_id.');
      const value = (f as Record<string, unknown>).value;
      if (typeof value !== 'string' || value === '') throw invalid('custom_fields', 'custom field value is required.');
      return { metadata_id: id, value };
    });
    for (const field of this.customFields.values()) {
      if (field.required === true && !fields.some((f) => f.metadata_id === field.id)) {
        throw invalid('custom_fields', `the custom field "${field.label}" is required.`);
      }
    }
    return fields;
  }

  private async issue(order: FakeOrder, changed = true): Promise<void> {
    const product = this.products[order.product] as FakeProduct;
    const organization = this.organizations.get(order.organizationId) as FakeOrganization;
    const subject: DistinguishedName[number][number][] = [];
    if (this.options.organizationInSubject === true) subject.push(attribute('O', organization.name));
    for (const ou of order.organizationUnits) subject.push(attribute('OU', ou));
    subject.push(attribute('CN', order.commonName));
    const sans: SubjectAltName[] =
      product.kind === 'client'
        ? order.emails.map((value) => ({ type: 'email', value }))
        : [...new Set([order.commonName, ...order.dnsNames])].map((value) => ({ type: 'dns', value }));
    const leaf = await this.ca.issueLeaf({
      subject: subject.map((a) => [a]),
      subjectAltNames: sans,
      spkiDer: order.spkiDer,
      validityMs: order.validityMs,
      extendedKeyUsages: product.extendedKeyUsages,
    });
    order.pems = [leaf.pem, this.ca.intermediatePem, this.ca.rootPem];
    order.status = 'issued';
    // Issued inside the order call is no later status change; an approval afterwards is.
    if (changed) order.statusChangedAt = this.now();
  }

  /** One status read of a pending order: it may issue itself (`pendingReads`). */
  private async read(order: FakeOrder): Promise<void> {
    if (order.readsUntilIssued === undefined || !['pending', 'needs_approval'].includes(order.status)) return;
    order.readsUntilIssued -= 1;
    if (order.readsUntilIssued <= 0) await this.issue(order);
  }

  private async orderInfo(orderId: number): Promise<unknown> {
    const order = this.orders.get(orderId);
    if (order === undefined) throw new ApiError(404, 'not_found|order', 'Order not found.');
    await this.read(order);
    const organization = this.organizations.get(order.organizationId);
    return {
      id: order.id,
      status: order.status,
      date_created: new Date(order.dateCreated).toISOString().replace(/\.\d{3}Z$/, '+00:00'),
      certificate: {
        id: order.certificateId,
        common_name: order.commonName,
        ...(order.emails.length > 0 ? { emails: order.emails } : {}),
        dns_names: order.dnsNames,
        signature_hash: (order.body.certificate as Record<string, unknown>).signature_hash,
      },
      organization: { id: order.organizationId, name: organization?.name },
      product: { name_id: order.product },
      requests: [{ id: order.requestId, status: order.status === 'needs_approval' ? 'pending' : 'approved' }],
      custom_fields: order.customFields.map((f) => ({ ...f, label: this.customFields.get(f.metadata_id)?.label })),
      ...(order.comments === undefined ? {} : { comments: order.comments }),
    };
  }

  private listOrders(query: URLSearchParams): { status: number; body: unknown } {
    let orders = [...this.orders.values()];
    for (const [key, value] of query) {
      const filter = /^filters\[([a-z_]+)\]$/.exec(key)?.[1];
      if (filter === undefined) continue;
      switch (filter) {
        case 'common_name':
          orders = orders.filter((o) => o.commonName === value);
          break;
        case 'status':
          orders = orders.filter((o) => o.status === value);
          break;
        case 'email':
          // DigiCert's list documents an `email` filter; here it matches the certificate's emails[].
          orders = orders.filter((o) => o.emails.some((e) => e.toLowerCase() === value.toLowerCase()));
          break;
        case 'product_name_id':
          orders = orders.filter((o) => o.product === value);
          break;
        case 'date_created': {
          const matches = dateFilter(value);
          orders = orders.filter((o) => matches(o.dateCreated));
          break;
        }
        default:
          throw new ApiError(400, 'invalid_filter', `unsupported filter ${filter}`);
      }
    }
    const sort = query.get('sort') ?? 'id';
    orders.sort((a, b) => (sort === '-date_created' ? b.dateCreated - a.dateCreated || b.id - a.id : a.id - b.id));
    const limit = Math.min(positiveInt(query.get('limit')) ?? 1000, 1000);
    const offset = Number(query.get('offset') ?? 0);
    const page = orders.slice(offset, offset + limit);
    return {
      status: 200,
      body: {
        // Like the real list, no custom fields: only order info carries them.
        orders: page.map((o) => ({
          id: o.id,
          certificate: { id: o.certificateId, common_name: o.commonName, dns_names: o.dnsNames },
          status: o.status,
          date_created: new Date(o.dateCreated).toISOString().replace(/\.\d{3}Z$/, '+00:00'),
          organization: { id: o.organizationId },
          product: { name_id: o.product },
        })),
        page: { total: orders.length, limit, offset },
      },
    };
  }

  private async statusChanges(query: URLSearchParams): Promise<{ status: number; body: unknown }> {
    const minutes = query.get('minutes');
    const seconds = query.get('seconds');
    if (minutes === null && seconds === null) throw invalid('minutes', 'minutes or seconds is required.');
    const parts = [minutes, seconds].map((v) => (v === null ? 0 : positiveInt(v)));
    if (parts.some((p) => p === undefined)) throw invalid('seconds', 'minutes and seconds must be positive integers.');
    const window = (parts[0] as number) * 60 + (parts[1] as number);
    if (window > (this.options.maxWindowSeconds ?? MAX_WINDOW_SECONDS)) {
      throw new ApiError(400, 'time_frame_too_long', 'The time frame may not exceed 7 days.');
    }
    for (const order of this.orders.values()) await this.read(order);
    const since = this.now() - window * 1000;
    const changed = [...this.orders.values()].filter(
      (o) => o.statusChangedAt !== undefined && o.statusChangedAt >= since,
    );
    if (changed.length === 0) return { status: 200, body: {} };
    return {
      status: 200,
      body: {
        orders: changed.map((o) => ({
          order_id: o.id,
          ...(o.status === 'issued' ? { certificate_id: o.certificateId } : {}),
          status: o.status,
        })),
      },
    };
  }

  private cancel(orderId: number, body: Record<string, unknown>): { status: number } {
    const order = this.orders.get(orderId);
    if (order === undefined) throw new ApiError(404, 'not_found|order', 'Order not found.');
    // Current docs spell it lowercase; the older seed guide CANCELED. Both name the same status.
    if (body.status !== 'canceled' && body.status !== 'CANCELED') throw invalid('status', 'status must be canceled.');
    if (typeof body.note !== 'string' || body.note.trim() === '') throw invalid('note', 'note is required.');
    if (!['pending', 'waiting_pickup', 'reissue_pending'].includes(order.status)) {
      throw new ApiError(400, 'invalid_status', `An order that is ${order.status} cannot be canceled.`);
    }
    order.cancelNote = body.note;
    this.setStatus(orderId, 'canceled');
    return { status: 204 };
  }

  /**
   * Revoke by certificate or by order: only an issued certificate; `comments` a string and `revocation_reason`
   * one of DigiCert's values when given. Answers a pending request object (an administrator must approve it;
   * {@link approveRevocation}); a second request while one is pending is refused.
   */
  private revoke(
    order: FakeOrder | undefined,
    body: Record<string, unknown>,
    by: 'certificate' | 'order',
  ): { status: number; body: unknown } {
    if (order === undefined) throw new ApiError(404, `not_found|${by}`, `${by} not found.`);
    if (body.comments !== undefined && typeof body.comments !== 'string') {
      throw invalid('comments', 'comments must be a string.');
    }
    const reasons = ['unspecified', 'key_compromise', 'affiliation_changed', 'superseded', 'cessation_of_operation'];
    if (
      body.revocation_reason !== undefined &&
      (typeof body.revocation_reason !== 'string' || !reasons.includes(body.revocation_reason))
    ) {
      throw invalid('revocation_reason', 'Invalid revocation reason.');
    }
    if (order.status === 'revoked') throw new ApiError(400, 'invalid_status', 'The certificate is already revoked.');
    if (order.status !== 'issued') {
      throw new ApiError(400, 'invalid_status', `An order that is ${order.status} cannot be revoked.`);
    }
    if (this.revocations.some((r) => r.orderId === order.id && r.status === 'pending')) {
      throw new ApiError(400, 'duplicate_request', 'A revocation request for this certificate is already pending.');
    }
    const request = {
      id: 900_000 + this.revocations.length + 1,
      orderId: order.id,
      status: 'pending' as 'pending' | 'approved',
      comments: typeof body.comments === 'string' ? body.comments : undefined,
      reason: typeof body.revocation_reason === 'string' ? body.revocation_reason : undefined,
    };
    this.revocations.push(request);
    return {
      status: 201,
      body: {
        id: request.id,
        date: new Date(this.now()).toISOString(),
        type: 'revoke',
        status: 'pending',
        requester: { id: 14, first_name: 'API', last_name: 'Key', email: 'api@example.com' },
        comments: request.comments,
      },
    };
  }

  /** An administrator approves a pending revocation request: the order becomes `revoked`. */
  approveRevocation(requestId: number): void {
    const request = this.revocations.find((r) => r.id === requestId && r.status === 'pending');
    if (request === undefined) throw new Error(`no pending revocation request ${requestId}`);
    request.status = 'approved';
    this.setStatus(request.orderId, 'revoked');
  }

  private updateRequest(requestId: number, body: Record<string, unknown>): { status: number } {
    const order = [...this.orders.values()].find((o) => o.requestId === requestId);
    if (order === undefined) throw new ApiError(404, 'not_found|request', 'Request not found.');
    if (body.status !== 'rejected' && body.status !== 'approved')
      throw invalid('status', 'status must be approved or rejected.');
    if (order.status !== 'needs_approval')
      throw new ApiError(400, 'invalid_status', 'The request is no longer pending.');
    if (body.status === 'rejected') {
      order.cancelNote = typeof body.processor_comment === 'string' ? body.processor_comment : undefined;
      this.setStatus(order.id, 'rejected');
    } else {
      this.setStatus(order.id, 'pending');
    }
    return { status: 204 };
  }

  private download(order: FakeOrder | undefined, format: string): { status: number; body: string } {
    if (order === undefined) throw new ApiError(404, 'not_found|certificate', 'Certificate not found.');
    if (order.status !== 'issued' || order.pems === undefined) {
      throw new ApiError(404, 'not_found|certificate', 'The certificate has not been issued.');
    }
    const [leaf, intermediate, root] = order.pems as [string, string, string];
    if (format === 'pem_all') return { status: 200, body: `${leaf}${intermediate}${root}` };
    if (format === 'pem_noroot') return { status: 200, body: `${leaf}${intermediate}` };
    throw new ApiError(400, 'invalid_format', `Format ${format} is not supported by this fake.`);
  }
}
