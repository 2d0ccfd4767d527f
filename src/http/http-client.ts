/**
 * The one HTTP layer under every REST client (Chrome Management API now, DigiCert CertCentral later): timeouts,
 * classification of every failure into the outcome classes of src/errors.ts, in-call retries of the calls that are
 * safe to repeat, metrics and log lines. Built on Node's global `fetch`; retries through `p-retry`.
 *
 * What it never does: log headers, bodies or tokens; follow redirects; resend a call that is not safe to repeat
 * after its request may have reached the server (DESIGN.md §5 — signData is one-shot, a DigiCert order must not be
 * placed twice).
 */
import pRetry, { AbortError as StopRetrying } from 'p-retry';
import { backoffDelay } from '../backoff.ts';
import { CertprovError, DeploymentFaultError, RetryableError, UnclearResultError, errorClassOf } from '../errors.ts';
import type { FaultComponent } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { statusClass, type Metrics } from '../observability/metrics.ts';
import { abortableSleep, type Sleep } from './abortable-sleep.ts';
import { attemptDeadline } from './attempt-deadline.ts';
import {
  classifyResponse,
  classifyTransportFailure,
  clipServerMessage,
  isNothingApplied,
  summarizeResponse,
  type ClassifyResponse,
  type ParseErrorBody,
  type RemoteErrorDetail,
} from './classify.ts';
import { parseRetryAfter } from './retry-after.ts';

/** Produces the credential headers of one request (e.g. `Authorization: Bearer …`). Never logged. */
export type AuthHeaders = () => Promise<Record<string, string>>;

/** In-call retry policy for calls that are safe to repeat. Longer waits belong to the workflow's scheduler. */
export interface RetryPolicy {
  /** Attempts in one call, the first included. Default 3; 1 disables in-call retries. */
  readonly attempts: number;
  /** Backoff before the first retry; doubles per retry, jittered ±20 % (src/backoff.ts). Default 200 ms. */
  readonly initialDelayMs: number;
  /** Upper bound of the computed backoff. Default 5 s. */
  readonly maxDelayMs: number;
  /**
   * A server asking for a longer pause than this (`Retry-After`) is not waited for in-call: the error goes to the
   * caller with its `retryAfterMs`, and the workflow schedules the next attempt. Default 30 s.
   */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY = {
  attempts: 3,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 30_000,
} as const satisfies RetryPolicy;

export interface HttpClientOptions {
  /** Metric label (`api`) and error-message prefix, e.g. `chrome`, `digicert`. */
  readonly api: string;
  /** The component a 401/403 or an untrusted TLS certificate is a deployment fault of. */
  readonly component: FaultComponent;
  /** Scheme, host and optional path prefix; request paths are appended. */
  readonly baseUrl: string;
  /** Timeout of one attempt, response body included. */
  readonly timeoutMs: number;
  readonly metrics: Metrics;
  /** Fallback logger; a request's own `log` (bound to its process) wins. */
  readonly log: Logger;
  /** Credential headers, fetched per attempt (token caches live in the provider). No header when absent. */
  readonly authHeaders?: AuthHeaders;
  /** What the operator should fix on a 401/403 (DeploymentFaultError.hint). */
  readonly authFaultHint?: string;
  /** Reads the API's error body. Default: the body text itself, clipped, as the message. */
  readonly parseErrorBody?: ParseErrorBody;
  /** Classifies the 4xx responses the shared rules leave open (see src/http/classify.ts). */
  readonly classify: ClassifyResponse;
  /** In-call retries; defaults in {@link DEFAULT_RETRY_POLICY}. */
  readonly retry?: Partial<RetryPolicy>;
  /** Waits for a server-requested delay. Default: a timer; tests inject a recorder. */
  readonly sleep?: Sleep;
  /** Default `certprov-adapter`. */
  readonly userAgent?: string;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  readonly method: HttpMethod;
  /** Appended to the base URL; the caller encodes path segments. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  /** Sent as `application/json`. */
  readonly json?: unknown;
  /** Metric label (`method`) and error-message word, e.g. `claim`. Low-cardinality. */
  readonly operation: string;
  /**
   * True when sending the request twice has the same effect as once (GET, claim with the same id, setFailure).
   * False requests are repeated in-call only when the server certainly did not apply them (connection refused,
   * DNS failure, 429); any other failure after sending is an {@link UnclearResultError}.
   */
  readonly safeToRepeat: boolean;
  /**
   * How a 2xx body is returned: parsed JSON (default) or the raw text, for endpoints that answer with something
   * else (DigiCert's PEM downloads, `application/x-pem-file`).
   */
  readonly responseBody?: 'json' | 'text';
  /** Caller cancellation (shutdown, lost lease). An abort rejects with the signal's reason, unclassified. */
  readonly signal?: AbortSignal;
  readonly log?: Logger;
}

export interface HttpResponse<T> {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON; undefined for an empty body. Unvalidated: the API client checks the shape it needs. */
  readonly body: T | undefined;
}

export class HttpClient {
  readonly #options: HttpClientOptions;
  readonly #retry: RetryPolicy;
  readonly #sleep: Sleep;
  readonly #baseUrl: string;

  constructor(options: HttpClientOptions) {
    this.#options = options;
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    if (!Number.isInteger(this.#retry.attempts) || this.#retry.attempts < 1) {
      throw new RangeError(`retry.attempts must be a positive integer, got ${this.#retry.attempts}`);
    }
    this.#sleep = options.sleep ?? abortableSleep;
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  /** Sends one logical request: attempts it, classifies every failure, retries what may be retried. */
  async request<T>(request: HttpRequest): Promise<HttpResponse<T>> {
    const { api, metrics } = this.#options;
    const log = request.log ?? this.#options.log;
    return pRetry(
      async (attemptNumber: number) => {
        try {
          return await this.#attempt<T>(request, attemptNumber);
        } catch (error) {
          // A caller abort is rethrown as is; p-retry itself rejects with the signal's reason.
          if (request.signal?.aborted === true || this.#mayRepeat(error, request)) throw error;
          throw new StopRetrying(error as Error);
        }
      },
      {
        retries: this.#retry.attempts - 1,
        // p-retry only counts attempts; the wait is the adapter's one backoff rule (src/backoff.ts), slept below.
        minTimeout: 0,
        signal: request.signal,
        // Only errors #mayRepeat accepted reach this callback; with retries left, a retry follows.
        onFailedAttempt: async ({ error, retriesLeft, attemptNumber }) => {
          if (retriesLeft <= 0) return;
          metrics.retries.inc({ where: api, error_class: errorClassOf(error) });
          // Retry-After is a lower bound for the next attempt (DESIGN.md §5).
          const delayMs = backoffDelay(
            { initialMs: this.#retry.initialDelayMs, maxMs: this.#retry.maxDelayMs },
            attemptNumber,
            error instanceof RetryableError ? error.retryAfterMs : undefined,
          );
          log.debug(
            { api, operation: request.operation, attempt: attemptNumber, delayMs },
            `retrying ${api} ${request.operation} after: ${error.message}`,
          );
          await this.#sleep(delayMs, request.signal);
        },
      },
    );
  }

  /** In-call retry policy: retryable classes only; unsafe calls only when nothing was applied. */
  #mayRepeat(error: unknown, request: HttpRequest): boolean {
    if (!(error instanceof RetryableError)) return false;
    if ((error.retryAfterMs ?? 0) > this.#retry.maxRetryAfterMs) return false;
    return request.safeToRepeat || isNothingApplied(error);
  }

  async #attempt<T>(request: HttpRequest, attemptNumber: number): Promise<HttpResponse<T>> {
    const { api, metrics, component, timeoutMs } = this.#options;
    const log = request.log ?? this.#options.log;
    const headers = await this.#headers(request);
    const deadline = attemptDeadline(timeoutMs, request.signal);
    const signal = deadline.signal;
    const started = performance.now();
    let status: number | undefined;
    let label: string | undefined;
    try {
      const response = await fetch(this.#url(request), {
        method: request.method,
        headers,
        body: request.json === undefined ? undefined : JSON.stringify(request.json),
        signal,
        redirect: 'manual',
      });
      status = response.status;
      // Read the whole body under the same timeout: a body cut short is a transport failure, not a response.
      const bodyText = await response.text();
      label = statusClass(status);
      if (status >= 200 && status < 300) {
        const body = request.responseBody === 'text' ? (bodyText as T) : this.#parseBody<T>(bodyText, request, status);
        return { status, headers: response.headers, body };
      }
      throw this.#classify(request, status, response.headers, bodyText);
    } catch (error) {
      if (error instanceof CertprovError) throw error;
      if (request.signal?.aborted === true) {
        // The caller's decision (shutdown, lost lease): not a remote failure, not counted as one.
        label = undefined;
        throw request.signal.reason;
      }
      if (error instanceof TypeError && error.cause === undefined) {
        // fetch refused the request itself (a GET with a body, a malformed header): a bug here, not a remote
        // failure — surface it as is instead of retrying it as a network error.
        throw error;
      }
      const failure = classifyTransportFailure(error, {
        api,
        operation: request.operation,
        component,
        safeToRepeat: request.safeToRepeat,
        timedOut: deadline.timedOut,
        timeoutMs,
      });
      label = failure.statusClass;
      throw failure.error;
    } finally {
      deadline.dispose();
      const seconds = (performance.now() - started) / 1000;
      if (label !== undefined) {
        metrics.remoteRequests.inc({ api, method: request.operation, status_class: label });
        metrics.remoteRequestDuration.observe({ api, method: request.operation }, seconds);
      }
      // Never headers or bodies: they carry tokens, signData, signatures and certificates.
      log.debug(
        {
          api,
          operation: request.operation,
          attempt: attemptNumber,
          status: status ?? label ?? 'aborted',
          durationMs: Math.round(seconds * 1000),
        },
        `${api} ${request.operation} → ${status ?? label ?? 'aborted'}`,
      );
    }
  }

  async #headers(request: HttpRequest): Promise<Record<string, string>> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.#options.userAgent ?? 'certprov-adapter',
    };
    if (request.json !== undefined) headers['content-type'] = 'application/json; charset=utf-8';
    if (this.#options.authHeaders === undefined) return headers;
    let auth: Record<string, string>;
    try {
      auth = await this.#options.authHeaders();
    } catch (error) {
      if (request.signal?.aborted === true) throw request.signal.reason;
      if (error instanceof CertprovError) throw error;
      // The provider's error may carry its request config (client secrets, refresh tokens): keep the message only.
      const message = error instanceof Error ? error.message : String(error);
      throw new DeploymentFaultError(
        `${this.#options.api} ${request.operation}: could not obtain credentials: ${clipServerMessage(message)}`,
        { component: this.#options.component, hint: this.#options.authFaultHint },
      );
    }
    return { ...headers, ...auth };
  }

  #url(request: HttpRequest): string {
    const path = request.path.startsWith('/') ? request.path : `/${request.path}`;
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) query.append(key, String(value));
    }
    const search = query.size > 0 ? `?${query.toString()}` : '';
    return `${this.#baseUrl}${path}${search}`;
  }

  #parseBody<T>(bodyText: string, request: HttpRequest, status: number): T | undefined {
    if (bodyText.trim() === '') return undefined;
    try {
      return JSON.parse(bodyText) as T;
    } catch {
      const message = `${this.#options.api} ${request.operation} → ${status} with a body that is not JSON`;
      // The server answered 2xx, so an unsafe call was most likely applied: the caller must read state back.
      throw request.safeToRepeat
        ? new RetryableError(message)
        : new UnclearResultError(`${message} (the request may have been applied)`);
    }
  }

  #classify(request: HttpRequest, status: number, headers: Headers, bodyText: string): CertprovError {
    const { api, component, authFaultHint, classify } = this.#options;
    const detail = this.#parseErrorBody(bodyText);
    const retryAfterMs = parseRetryAfter(headers.get('retry-after')) ?? detail.retryAfterMs;
    return classifyResponse(
      {
        api,
        operation: request.operation,
        status,
        headers,
        bodyText,
        detail,
        summary: summarizeResponse(api, request.operation, status, detail),
        safeToRepeat: request.safeToRepeat,
        retryAfterMs,
      },
      { component, authFaultHint, classify },
    );
  }

  #parseErrorBody(bodyText: string): RemoteErrorDetail {
    if (this.#options.parseErrorBody !== undefined) {
      try {
        return this.#options.parseErrorBody(bodyText);
      } catch {
        return {};
      }
    }
    // An HTML error page from a proxy says nothing useful in a log line.
    return bodyText.trimStart().startsWith('<') || bodyText.trim() === '' ? {} : { message: bodyText };
  }
}
