/**
 * The Chrome Management API's certificateProvisioningProcesses methods (../shared/reference/
 * chrome-cert-provisioning-api.md) over the shared HTTP layer. Nothing else in the adapter talks to Google's API.
 *
 * Safe to repeat (retried in-call): get, claim (same callerInstanceId), getOperation, setFailure.
 * Not safe: signData (the device fails the process on a second request — DESIGN.md §1) and uploadCertificate: after
 * a result that may have been applied they throw {@link UnclearResultError} and the workflow reads the process back
 * (`signData` set? `issuedCertificate` set?). Nothing is resent unless the server certainly did not apply it
 * (connection refused, 429).
 */
import type { StepContext } from '../ca/types.ts';
import { RetryableError, TerminalError, UnclearResultError } from '../errors.ts';
import type { Sleep } from '../http/abortable-sleep.ts';
import { HttpClient, type AuthHeaders, type HttpRequest, type RetryPolicy } from '../http/http-client.ts';
import { isRateLimited, SharedRateLimiter } from '../http/shared-rate-limiter.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import {
  CHROME_AUTH_FAULT_HINT,
  ClaimedByAnotherInstanceError,
  classifyChromeResponse,
  parseGoogleErrorBody,
} from './errors.ts';
import {
  DEFAULT_CHROME_ENDPOINT,
  processResourceName,
  type CertificateProvisioningProcess,
  type ChromeApi,
  type ClaimResult,
  type Operation,
  type ProcessRef,
  type SignatureAlgorithm,
} from './types.ts';

export interface ChromeClientOptions {
  /** API root. Default {@link DEFAULT_CHROME_ENDPOINT}; the sandbox and tests pass a loopback URL. */
  readonly endpoint?: string;
  /** Timeout of one HTTP attempt (config `chrome.requestTimeout`, default 30 s). */
  readonly requestTimeoutMs: number;
  readonly metrics: Metrics;
  /** Used when no step context is at hand; requests log through `ctx.log`. */
  readonly log: Logger;
  /** From {@link createChromeAuth}; no credentials when absent (loopback only). */
  readonly authHeaders?: AuthHeaders;
  /** In-call retries of safe calls; defaults in src/http/http-client.ts. */
  readonly retry?: Partial<RetryPolicy>;
  /** Waits for Retry-After; tests inject one. */
  readonly sleep?: Sleep;
  /** The replica set's request budget ({@link chromeRateLimiter}); none when absent. */
  readonly limiter?: SharedRateLimiter;
}

/** Per 5 seconds at most this share of the per-minute budget: a smooth rate, not the whole minute in one burst. */
const FIVE_SECOND_SHARE = 1 / 12;

/**
 * The Chrome Management API budget of a replica set (config `chrome.rateLimit`): Google's quota is per Cloud
 * project, so every replica draws from one bucket in the store — the same mechanism as the DigiCert budget
 * (src/http/shared-rate-limiter.ts). Call {@link SharedRateLimiter.useStore} with the process store.
 */
export function chromeRateLimiter(
  budget: { readonly requestsPerMinute: number; readonly maxConcurrent: number; readonly maxWaitMs: number },
  metrics: Metrics,
  clock: { readonly now?: () => number; readonly sleep?: Sleep } = {},
): SharedRateLimiter {
  return new SharedRateLimiter({
    bucket: 'chrome:management-api',
    windows: [
      { limit: Math.max(1, Math.floor(budget.requestsPerMinute * FIVE_SECOND_SHARE)), windowMs: 5_000 },
      { limit: budget.requestsPerMinute, windowMs: 60_000 },
    ],
    maxConcurrent: budget.maxConcurrent,
    maxWaitMs: budget.maxWaitMs,
    metricPrefix: 'chrome',
    describe: () => 'chrome: the Chrome Management API budget (chrome.rateLimit)',
    metrics,
    // Google answers 429 with Retry-After (honoured); without one, 1 s doubling up to 30 s.
    penaltyInitialMs: 1_000,
    penaltyMaxMs: 30_000,
    ...(clock.now === undefined ? {} : { now: clock.now }),
    ...(clock.sleep === undefined ? {} : { sleep: clock.sleep }),
  });
}

const API_VERSION_PATH = '/v1';

export class ChromeClient implements ChromeApi {
  readonly #http: HttpClient;
  readonly #limiter: SharedRateLimiter | undefined;

  constructor(options: ChromeClientOptions) {
    this.#limiter = options.limiter;
    this.#http = new HttpClient({
      api: 'chrome',
      component: 'chrome',
      baseUrl: options.endpoint ?? DEFAULT_CHROME_ENDPOINT,
      timeoutMs: options.requestTimeoutMs,
      metrics: options.metrics,
      log: options.log,
      authHeaders: options.authHeaders,
      authFaultHint: CHROME_AUTH_FAULT_HINT,
      parseErrorBody: parseGoogleErrorBody,
      classify: classifyChromeResponse,
      retry: options.retry,
      sleep: options.sleep,
    });
  }

  async get(ref: ProcessRef, ctx: StepContext): Promise<CertificateProvisioningProcess> {
    const body = await this.#call<CertificateProvisioningProcess>(ctx, {
      method: 'GET',
      path: processPath(ref),
      operation: 'get',
      safeToRepeat: true,
    });
    if (!isObject(body)) throw new RetryableError('chrome get → 200 without a process resource');
    // Both resource shapes (nested genericCaConnection/genericProfile and the older flat references) pass through
    // untouched; caConnectionReferenceOf/profileReferenceOf in types.ts read either.
    return body;
  }

  async claim(ref: ProcessRef, callerInstanceId: string, ctx: StepContext): Promise<ClaimResult> {
    try {
      // Repeating a claim with the same callerInstanceId succeeds (reference notes), so it is safe to retry.
      await this.#call(ctx, {
        method: 'POST',
        path: `${processPath(ref)}:claim`,
        json: { callerInstanceId },
        operation: 'claim',
        safeToRepeat: true,
      });
      return { claimed: true };
    } catch (error) {
      if (error instanceof ClaimedByAnotherInstanceError) return { claimed: false, detail: error.message };
      throw error;
    }
  }

  async signData(
    ref: ProcessRef,
    signData: Uint8Array,
    algorithm: SignatureAlgorithm,
    ctx: StepContext,
  ): Promise<Operation> {
    // One-shot on the device (DESIGN.md §1): never resent after it may have arrived.
    const body = await this.#call<Operation>(ctx, {
      method: 'POST',
      path: `${processPath(ref)}:signData`,
      json: { signData: Buffer.from(signData).toString('base64'), signatureAlgorithm: algorithm },
      operation: 'signData',
      safeToRepeat: false,
    });
    if (!isObject(body) || typeof body.name !== 'string' || resourcePath(body.name) === undefined) {
      // The server answered 2xx: the device was probably asked. Only reading the process back tells.
      throw new UnclearResultError(
        'chrome signData → 200 without an operation name (the request may have been applied)',
      );
    }
    return body;
  }

  async getOperation(operationName: string, ctx: StepContext): Promise<Operation> {
    const path = resourcePath(operationName);
    if (path === undefined) throw malformedName('getOperation');
    const body = await this.#call<Operation>(ctx, {
      method: 'GET',
      path,
      operation: 'getOperation',
      safeToRepeat: true,
    });
    if (!isObject(body)) throw new RetryableError('chrome getOperation → 200 without an operation');
    return { ...body, name: typeof body.name === 'string' ? body.name : operationName };
  }

  async uploadCertificate(ref: ProcessRef, certificatePem: string, ctx: StepContext): Promise<void> {
    // Treated as unsafe: after an unclear result the workflow reads back issuedCertificate instead of resending.
    await this.#call(ctx, {
      method: 'POST',
      path: `${processPath(ref)}:uploadCertificate`,
      json: { certificatePem },
      operation: 'uploadCertificate',
      safeToRepeat: false,
    });
  }

  async setFailure(ref: ProcessRef, errorMessage: string, ctx: StepContext): Promise<void> {
    await this.#call(ctx, {
      method: 'POST',
      path: `${processPath(ref)}:setFailure`,
      json: { errorMessage },
      operation: 'setFailure',
      safeToRepeat: true,
    });
  }

  async #call<T>(ctx: StepContext, request: Omit<HttpRequest, 'signal' | 'log'>): Promise<T | undefined> {
    const release = await this.#limiter?.acquire(request.operation, ctx.signal);
    try {
      const response = await this.#http.request<T>({ ...request, signal: ctx.signal, log: ctx.log });
      this.#limiter?.succeeded();
      return response.body;
    } catch (error) {
      // Every request of this replica pauses for Google's Retry-After, not only the one that was refused.
      if (isRateLimited(error)) this.#limiter?.rateLimited(error.retryAfterMs);
      throw error;
    } finally {
      release?.();
    }
  }
}

/** `/v1/customers/{customer}/certificateProvisioningProcesses/{process}`, each id encoded as one path segment. */
function processPath(ref: ProcessRef): string {
  const customer = pathSegment(ref.customer);
  const processId = pathSegment(ref.processId);
  if (customer === undefined || processId === undefined) throw malformedName('process');
  return `${API_VERSION_PATH}/${processResourceName({ customer, processId })}`;
}

/**
 * `/v1/` + a relative resource name (`customers/…/operations/…`), segment by segment. Undefined for a name that
 * would not stay one resource: empty segments, or `.`/`..` (URL parsing would resolve them, even percent-encoded).
 */
function resourcePath(name: string): string | undefined {
  const segments = name.split('/').map(pathSegment);
  if (segments.some((s) => s === undefined)) return undefined;
  return `${API_VERSION_PATH}/${segments.join('/')}`;
}

function pathSegment(value: string): string | undefined {
  if (value === '' || value === '.' || value === '..') return undefined;
  return encodeURIComponent(value);
}

/** A name that cannot be sent is a bug or a corrupt record, not something a retry fixes. */
function malformedName(what: string): TerminalError {
  return new TerminalError(`chrome: malformed ${what} name`, {
    reason: 'internal',
  });
}

function isObject<T>(value: T | undefined): value is T & object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
