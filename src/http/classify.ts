/**
 * HTTP status and transport failure → outcome class (DESIGN.md §5: "HTTP status → class in one place"). The rules
 * every REST API shares live here; what only one API knows (its error-body format, which 4xx means what) comes in
 * through {@link ClassifyResponse} and {@link ParseErrorBody}.
 *
 * Idempotency is part of the class: a call that is not safe to repeat (Chrome signData, a DigiCert order POST) and
 * whose request may have reached the server gets an {@link UnclearResultError}, so its caller reads state back
 * instead of resending.
 */
import {
  DeploymentFaultError,
  RetryableError,
  UnclearResultError,
  type CertprovError,
  type FaultComponent,
} from '../errors.ts';

/** What a per-API parser reads out of an error body. Every field is optional: bodies can be HTML from a proxy. */
export interface RemoteErrorDetail {
  /** Symbolic status, e.g. Google's `FAILED_PRECONDITION` or DigiCert's `invalid_input`. */
  readonly code?: string;
  /** The server's human-readable message (log-safe; never contains our request body). */
  readonly message?: string;
  /** Machine-readable reasons, e.g. Google `ErrorInfo.reason` values. */
  readonly reasons?: readonly string[];
  /** A delay the body asks for (Google `RetryInfo.retryDelay`); the `Retry-After` header wins when both exist. */
  readonly retryAfterMs?: number;
}

/** Reads an API's error body. Must not throw: return `{}` for what it cannot read. */
export type ParseErrorBody = (bodyText: string) => RemoteErrorDetail;

/** A non-2xx response, as the per-API classifier sees it. */
export interface HttpErrorResponse {
  readonly api: string;
  /** The operation label, e.g. `claim`. */
  readonly operation: string;
  readonly status: number;
  readonly headers: Headers;
  readonly bodyText: string;
  readonly detail: RemoteErrorDetail;
  /** Log-safe one-liner for error messages: `chrome claim → 400 FAILED_PRECONDITION: <server message>`. */
  readonly summary: string;
  readonly safeToRepeat: boolean;
  /** From `Retry-After`, else from the body. */
  readonly retryAfterMs: number | undefined;
}

/**
 * Decides the class of the 4xx responses the shared rules leave open (everything except 401, 403, 408 and 429):
 * usually a {@link TerminalError}, sometimes a retry (Google's 409 ABORTED) or an API-specific error.
 */
export type ClassifyResponse = (response: HttpErrorResponse) => CertprovError;

/** Longest server message copied into an error message. */
const MAX_SERVER_MESSAGE = 300;

/**
 * Errors that prove nothing reached the server (connection refused, DNS failure) or that the server refused to
 * start on (429). Unsafe calls may be repeated in-call after these, and only after these.
 */
const nothingApplied = new WeakSet<Error>();

/** Marks an error as "the request was certainly not applied", which allows an in-call retry of an unsafe call. */
export function markNothingApplied<E extends Error>(error: E): E {
  nothingApplied.add(error);
  return error;
}

/** True when the request that failed with `error` was certainly not applied by the server. */
export function isNothingApplied(error: unknown): boolean {
  return error instanceof Error && nothingApplied.has(error);
}

/** Collapses whitespace (no log-line injection) and truncates a server message. */
export function clipServerMessage(message: string): string {
  const flat = message.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_SERVER_MESSAGE ? `${flat.slice(0, MAX_SERVER_MESSAGE)}…` : flat;
}

/** `chrome claim → 503 UNAVAILABLE: the service is unavailable` */
export function summarizeResponse(api: string, operation: string, status: number, detail: RemoteErrorDetail): string {
  const code = detail.code === undefined ? '' : ` ${detail.code}`;
  const message =
    detail.message === undefined || detail.message.trim() === '' ? '' : `: ${clipServerMessage(detail.message)}`;
  return `${api} ${operation} → ${status}${code}${message}`;
}

export interface StatusRules {
  readonly component: FaultComponent;
  /** What the operator should do about a 401/403. */
  readonly authFaultHint?: string;
  readonly classify: ClassifyResponse;
}

/** Classifies a non-2xx response. Shared rules first; the API's {@link ClassifyResponse} for the remaining 4xx. */
export function classifyResponse(response: HttpErrorResponse, rules: StatusRules): CertprovError {
  const { status, summary, retryAfterMs } = response;
  if (status === 401 || status === 403) {
    // An operator's mistake (credentials, scope, role), never this process's fault: DESIGN.md §5.
    return new DeploymentFaultError(summary, { component: rules.component, hint: rules.authFaultHint });
  }
  if (status === 429) {
    // Rate limited before any work was done: even an unsafe call may be sent again after the delay.
    return markNothingApplied(new RetryableError(summary, { retryAfterMs }));
  }
  if (status === 408 || status >= 500) {
    // A 5xx (or a front end's 408) says nothing reliable about whether the back end applied the request.
    return response.safeToRepeat
      ? new RetryableError(summary, { retryAfterMs })
      : new UnclearResultError(`${summary} (the request may have been applied)`, { retryAfterMs });
  }
  if (status >= 300 && status < 400) {
    // Redirects are not followed: a resent POST could apply twice, and an API endpoint that redirects is a wrong URL.
    return new DeploymentFaultError(`${summary} (unexpected redirect)`, {
      component: rules.component,
      hint: 'check the configured endpoint URL (scheme, host and path)',
    });
  }
  return rules.classify(response);
}

/** A failure before a complete response was read. */
export interface TransportFailure {
  /** The `status_class` metric label. */
  readonly statusClass: 'network' | 'timeout';
  readonly error: CertprovError;
}

/** Socket errors raised before a byte of the request left this host. Shared with the Key Vault SDK path. */
export const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** TLS verification failures: the handshake failed, nothing was sent, and waiting will not fix the trust store. */
export const TLS_TRUST_CODES: ReadonlySet<string> = new Set([
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The socket error code behind a `fetch failed` TypeError (undici puts it on `cause`, or on an AggregateError's members). */
export function transportErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if (current instanceof AggregateError) {
      const codes = current.errors.map((e: unknown) => transportErrorCode(e)).filter((c) => c !== undefined);
      // Happy-eyeballs tries several addresses: only when every one failed the same way is the code meaningful.
      if (codes.length > 0 && codes.every((c) => c === codes[0])) return codes[0];
      return undefined;
    }
    current = current.cause;
  }
  return undefined;
}

export interface TransportContext {
  readonly api: string;
  readonly operation: string;
  readonly component: FaultComponent;
  readonly safeToRepeat: boolean;
  /** True when this attempt's own timeout fired (not the caller's signal). */
  readonly timedOut: boolean;
  readonly timeoutMs: number;
}

/** Classifies an error thrown by `fetch` or while reading the body. The caller has already ruled out its own abort. */
export function classifyTransportFailure(error: unknown, context: TransportContext): TransportFailure {
  const { api, operation, safeToRepeat } = context;
  if (context.timedOut) {
    // Whether the request was sent before the timer fired is unknowable from here: assume it was.
    const message = `${api} ${operation} → no response within ${context.timeoutMs} ms`;
    return {
      statusClass: 'timeout',
      error: safeToRepeat
        ? new RetryableError(message, { cause: error })
        : new UnclearResultError(`${message} (the request may have been applied)`, { cause: error }),
    };
  }
  const code = transportErrorCode(error);
  const reason = error instanceof Error ? (errorLeafMessage(error) ?? error.message) : String(error);
  const what = `${api} ${operation} → network failure (${code === undefined ? '' : `${code}: `}${clipServerMessage(reason)})`;
  if (code !== undefined && TLS_TRUST_CODES.has(code)) {
    return {
      statusClass: 'network',
      error: new DeploymentFaultError(what, {
        component: context.component,
        hint: 'the server certificate is not trusted: check the endpoint host name and the CA bundle (NODE_EXTRA_CA_CERTS)',
        cause: error,
      }),
    };
  }
  if (code !== undefined && NOT_SENT_CODES.has(code)) {
    return { statusClass: 'network', error: markNothingApplied(new RetryableError(what, { cause: error })) };
  }
  // Reset, "other side closed", a body cut short: the server may have received and applied the request.
  return {
    statusClass: 'network',
    error: safeToRepeat
      ? new RetryableError(what, { cause: error })
      : new UnclearResultError(`${what} (the request may have been applied)`, { cause: error }),
  };
}

/** The innermost message of an error chain (`fetch failed` says little; its cause says what happened). */
function errorLeafMessage(error: Error): string | undefined {
  let message: string | undefined;
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    if (current.message !== '') message = current.message;
    current = current.cause;
  }
  return message;
}
