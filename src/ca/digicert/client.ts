/**
 * The narrow CertCentral Services API client the backend needs (../shared/reference/digicert-certcentral.md), over
 * the one HTTP layer (src/http/http-client.ts). Nothing else in the adapter talks to DigiCert.
 *
 * Every request passes the API key's rate limiter first ({@link DigicertRateLimiter}); in-call retries happen
 * here, not in the HTTP layer, so that each attempt takes a token. Retried in-call: reads (safe to repeat) after a
 * transient failure, and any request DigiCert certainly did not apply (429, connection refused). Never retried:
 * the order POST after an unclear result (timeout, reset, 5xx) — DigiCert has no idempotency key, so the caller
 * looks the order up instead (DESIGN.md §5).
 *
 * The API key travels in `X-DC-DEVKEY` only; it is never logged (the HTTP layer logs no headers) and never put
 * into an error message.
 */
import type { StepContext } from '../types.ts';
import { backoffDelay, type BackoffPolicy } from '../../backoff.ts';
import { RetryableError, UnclearResultError } from '../../errors.ts';
import { isNothingApplied } from '../../http/classify.ts';
import { abortableSleep, type Sleep } from '../../http/abortable-sleep.ts';
import { HttpClient, type HttpMethod, type HttpResponse } from '../../http/http-client.ts';
import { isRateLimited } from '../../http/shared-rate-limiter.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Metrics } from '../../observability/metrics.ts';
import {
  classifyDigicertResponse,
  DIGICERT_AUTH_FAULT_HINT,
  parseDigicertErrorBody,
  TimeFrameTooLongError,
} from './errors.ts';
import type { DigicertRateLimiter, RequestKind } from './rate-limiter.ts';

/** The short pause before repeating a transient failure that is not a 429 (which the limiter waits out). */
const TRANSIENT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5_000 };

/** Order statuses (reference notes). */
export type OrderStatus =
  'pending' | 'needs_approval' | 'waiting_pickup' | 'reissue_pending' | 'issued' | 'rejected' | 'canceled' | 'revoked';

export const WAITING_STATUSES: ReadonlySet<string> = new Set([
  'pending',
  'needs_approval',
  'waiting_pickup',
  'reissue_pending',
]);
export const FAILED_STATUSES: ReadonlySet<string> = new Set(['rejected', 'canceled', 'revoked']);

export interface CertificateChainEntry {
  readonly subject_common_name?: string;
  readonly pem: string;
}

/** `POST /order/certificate/{product}` → 201. */
export interface OrderCreated {
  readonly id: number;
  readonly certificate_id?: number;
  readonly requests?: readonly { readonly id: number; readonly status?: string }[];
  /** Present when the certificate was issued in the order call itself. */
  readonly certificate_chain?: readonly CertificateChainEntry[];
}

export interface CustomFieldValue {
  readonly metadata_id: number;
  readonly value: string;
}

/** `GET /order/certificate/{order_id}` (the fields the backend reads). */
export interface OrderInfo {
  readonly id: number;
  readonly status: string;
  readonly certificate?: { readonly id?: number; readonly common_name?: string };
  readonly custom_fields?: readonly CustomFieldValue[];
  readonly requests?: readonly { readonly id: number; readonly status?: string }[];
  readonly comments?: string;
  readonly date_created?: string;
}

/** One entry of `GET /order/certificate` (list orders). */
export interface OrderSummary {
  readonly id: number;
  readonly status?: string;
  readonly certificate?: { readonly id?: number; readonly common_name?: string };
  readonly date_created?: string;
  readonly custom_fields?: readonly CustomFieldValue[];
}

export interface StatusChange {
  readonly order_id: number;
  readonly certificate_id?: number;
  readonly status: string;
}

export interface DigicertClientOptions {
  readonly baseUrl: string;
  readonly apiKey: () => Promise<string>;
  readonly requestTimeoutMs: number;
  readonly limiter: DigicertRateLimiter;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Attempts of one call, the first included (each takes a token). Default 3. */
  readonly attempts?: number;
  /** Default: a timer. */
  readonly sleep?: Sleep;
}

interface Call {
  readonly method: HttpMethod;
  readonly path: string;
  readonly operation: string;
  readonly kind: RequestKind;
  readonly safeToRepeat: boolean;
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  readonly json?: unknown;
  readonly responseBody?: 'json' | 'text';
}

/** The summary line of a 429 (src/http/classify.ts summarizeResponse writes `<api> <operation> → 429 …`). */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function positiveInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

export class DigicertClient {
  readonly #http: HttpClient;
  readonly #limiter: DigicertRateLimiter;
  readonly #attempts: number;
  readonly #sleep: Sleep;

  constructor(options: DigicertClientOptions) {
    this.#limiter = options.limiter;
    this.#attempts = options.attempts ?? 3;
    this.#sleep = options.sleep ?? abortableSleep;
    this.#http = new HttpClient({
      api: 'digicert',
      component: 'digicert',
      baseUrl: options.baseUrl,
      timeoutMs: options.requestTimeoutMs,
      metrics: options.metrics,
      log: options.log,
      authHeaders: async () => ({ 'x-dc-devkey': await options.apiKey() }),
      authFaultHint: DIGICERT_AUTH_FAULT_HINT,
      parseErrorBody: parseDigicertErrorBody,
      classify: classifyDigicertResponse,
      // One attempt per HTTP call: the retries below pass the rate limiter each time.
      retry: { attempts: 1 },
      sleep: options.sleep,
    });
  }

  /**
   * Places an order. Unsafe: after an unclear result this throws {@link UnclearResultError} and must not be
   * repeated before the order list was searched for it.
   */
  async placeOrder(product: string, body: unknown, ctx: StepContext): Promise<OrderCreated> {
    const response = await this.#call<OrderCreated>(ctx, {
      method: 'POST',
      path: `/order/certificate/${encodeURIComponent(product)}`,
      operation: 'order',
      kind: 'issue',
      safeToRepeat: false,
      json: body,
    });
    const created = response.body;
    if (!isObject(created) || !positiveInt(created.id)) {
      // 2xx: the order most likely exists; only the order list can tell.
      throw new UnclearResultError('digicert order → 2xx without an order id (the order may have been placed)');
    }
    return created;
  }

  async orderInfo(orderId: number, kind: RequestKind, ctx: StepContext): Promise<OrderInfo> {
    const response = await this.#call<OrderInfo>(ctx, {
      method: 'GET',
      path: `/order/certificate/${orderId}`,
      operation: 'order-info',
      kind,
      safeToRepeat: true,
    });
    const info = response.body;
    if (!isObject(info) || !positiveInt(info.id) || typeof info.status !== 'string') {
      throw new RetryableError('digicert order-info → 2xx without an order id and status');
    }
    return info;
  }

  /** `GET /order/certificate` with `filters[name]=value` for each filter; newest first. */
  async listOrders(
    filters: Readonly<Record<string, string>>,
    limit: number,
    ctx: StepContext,
  ): Promise<readonly OrderSummary[]> {
    const query: Record<string, string | number> = { sort: '-date_created', limit };
    for (const [name, value] of Object.entries(filters)) query[`filters[${name}]`] = value;
    const response = await this.#call<{ orders?: unknown }>(ctx, {
      method: 'GET',
      path: '/order/certificate',
      operation: 'list-orders',
      kind: 'issue',
      safeToRepeat: true,
      query,
    });
    const orders = response.body?.orders;
    if (orders === undefined) return [];
    if (!Array.isArray(orders)) throw new RetryableError('digicert list-orders → 2xx without an orders array');
    return (orders as unknown[]).filter((o): o is OrderSummary => isObject(o) && positiveInt(o.id));
  }

  /**
   * `GET /order/certificate/status-changes?seconds=N`: every order of the account whose status changed in the last
   * N seconds (N ≤ 604,800). `{}` when nothing changed.
   */
  async statusChanges(seconds: number, ctx: StepContext): Promise<readonly StatusChange[]> {
    const response = await this.#call<{ orders?: unknown }>(ctx, {
      method: 'GET',
      path: '/order/certificate/status-changes',
      operation: 'status-changes',
      kind: 'poll',
      safeToRepeat: true,
      query: { seconds },
    });
    const orders = response.body?.orders;
    if (orders === undefined) return [];
    if (!Array.isArray(orders)) throw new RetryableError('digicert status-changes → 2xx without an orders array');
    return (orders as unknown[]).filter(
      (o): o is StatusChange => isObject(o) && positiveInt(o.order_id) && typeof o.status === 'string',
    );
  }

  /** `GET /certificate/{id}/download/format/pem_all`: leaf, intermediates and root, PEM. */
  async downloadPemAll(certificateId: number, ctx: StepContext): Promise<string> {
    const response = await this.#call<string>(ctx, {
      method: 'GET',
      path: `/certificate/${certificateId}/download/format/pem_all`,
      operation: 'download',
      kind: 'issue',
      safeToRepeat: true,
      responseBody: 'text',
    });
    return response.body ?? '';
  }

  /** `PUT /order/certificate/{id}/status` `{"status": "canceled", "note"}` (current docs; the seed's `CANCELED` is older). */
  async cancelOrder(orderId: number, note: string, ctx: StepContext): Promise<void> {
    await this.#call(ctx, {
      method: 'PUT',
      path: `/order/certificate/${orderId}/status`,
      operation: 'cancel',
      kind: 'issue',
      // Cancelling twice has the effect of cancelling once (the second is refused as not cancellable).
      safeToRepeat: true,
      json: { status: 'canceled', note },
    });
  }

  /**
   * `PUT /certificate/{id}/revoke` (or `/order/certificate/{id}/revoke` when only the order is known) with
   * `comments` and `revocation_reason` → a request object; DigiCert revokes once an administrator approved it.
   * Not repeated after an unclear result: a second request would be a second approval item.
   */
  async revoke(
    target: { readonly certificateId: number } | { readonly orderId: number },
    body: { readonly comments: string; readonly revocation_reason: string },
    ctx: StepContext,
  ): Promise<{ id?: number; status?: string }> {
    const path =
      'certificateId' in target
        ? `/certificate/${target.certificateId}/revoke`
        : `/order/certificate/${target.orderId}/revoke`;
    const response = await this.#call<{ id?: unknown; status?: unknown }>(ctx, {
      method: 'PUT',
      path,
      operation: 'revoke',
      kind: 'issue',
      safeToRepeat: false,
      json: body,
    });
    const id = response.body?.id;
    const status = response.body?.status;
    return {
      ...(typeof id === 'number' ? { id } : {}),
      ...(typeof status === 'string' ? { status } : {}),
    };
  }

  /** `PUT /request/{id}/status` `{"status": "rejected"}`: withdraws an order still waiting for approval. */
  async rejectRequest(requestId: number, comment: string, ctx: StepContext): Promise<void> {
    await this.#call(ctx, {
      method: 'PUT',
      path: `/request/${requestId}/status`,
      operation: 'reject-request',
      kind: 'issue',
      safeToRepeat: true,
      json: { status: 'rejected', processor_comment: comment },
    });
  }

  /** `GET /organization/{id}/validation`: the organization's validations (probe: key, permission, organization). */
  async organizationValidation(
    organizationId: number,
    ctx: StepContext,
  ): Promise<readonly { type?: string; status?: string }[]> {
    const response = await this.#call<{ validations?: unknown }>(ctx, {
      method: 'GET',
      path: `/organization/${organizationId}/validation`,
      operation: 'organization-validation',
      kind: 'issue',
      safeToRepeat: true,
    });
    const validations = response.body?.validations;
    return Array.isArray(validations) ? (validations as unknown[]).filter(isObject) : [];
  }

  async #call<T>(ctx: StepContext, call: Call): Promise<HttpResponse<T>> {
    for (let attempt = 1; ; attempt += 1) {
      const release = await this.#limiter.acquire(call.kind, ctx.signal);
      try {
        const response = await this.#http.request<T>({
          method: call.method,
          path: call.path,
          operation: call.operation,
          safeToRepeat: call.safeToRepeat,
          signal: ctx.signal,
          log: ctx.log,
          ...(call.query === undefined ? {} : { query: call.query }),
          ...(call.json === undefined ? {} : { json: call.json }),
          ...(call.responseBody === undefined ? {} : { responseBody: call.responseBody }),
        });
        this.#limiter.succeeded();
        return response;
      } catch (error) {
        // The concurrency slot is not held through the pause before a retry.
        release();
        if (isRateLimited(error)) this.#limiter.rateLimited();
        // A refused window is refused again: the poller asks for a shorter one next time instead.
        const repeatable =
          error instanceof RetryableError &&
          !(error instanceof TimeFrameTooLongError) &&
          (call.safeToRepeat || isNothingApplied(error));
        if (!repeatable || attempt >= this.#attempts || ctx.signal.aborted) throw error;
        // A 429 is waited out by the limiter's backoff; other transient failures get a short pause.
        if (!isRateLimited(error)) await this.#sleep(backoffDelay(TRANSIENT_BACKOFF, attempt), ctx.signal);
        ctx.log.debug({ api: 'digicert', operation: call.operation, attempt }, 'retrying a DigiCert request');
      } finally {
        release();
      }
    }
  }
}
