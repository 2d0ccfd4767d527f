/**
 * How the Chrome Management API reports errors, and what they mean for the adapter. Google APIs answer errors with
 * `{"error": {"code": 400, "message": "…", "status": "FAILED_PRECONDITION", "details": [...]}}`
 * (google.rpc.Status); `details` may hold an `ErrorInfo {reason}` and a `RetryInfo {retryDelay: "1.5s"}`.
 *
 * The shared rules of src/http/classify.ts already handle 401/403 (deployment fault), 408/429/5xx (retry, or
 * unclear for unsafe calls) and redirects; {@link classifyChromeResponse} decides the remaining 4xx.
 */
import { DeploymentFaultError, RetryableError, TerminalError } from '../errors.ts';
import type { CertprovError } from '../errors.ts';
import type { HttpErrorResponse, RemoteErrorDetail } from '../http/classify.ts';
import { CERTPROV_SCOPE } from './types.ts';

/** The operator's fix for a 401/403 from the Chrome Management API. */
export const CHROME_AUTH_FAULT_HINT =
  `grant the adapter's service account access to the Chrome Management API certificate provisioning scope ` +
  `(${CERTPROV_SCOPE}) — with Workload Identity, bind the Kubernetes service account to that Google service ` +
  `account and authorize it for the customer in the Admin console`;

/**
 * The process (or, from getOperation, its signData operation) does not exist: a 404 with Google's `NOT_FOUND`
 * status. Not ours to fail: the workflow
 * acknowledges the message and skips the process (counted as `processes_skipped{reason="not_found"}`), and never
 * calls setFailure for it. For getOperation, read the process back with get() first: only if that is missing too
 * is the process gone.
 */
export class ProcessNotFoundError extends TerminalError {
  constructor(message: string) {
    super(message, { reason: 'chrome_rejected' });
  }
}

/**
 * claim was refused because another adapter instance holds the process (a 400 whose body says so; DESIGN.md §5).
 * ChromeClient.claim turns it into `{claimed: false}`; it escapes only from code that calls the HTTP layer itself.
 */
export class ClaimedByAnotherInstanceError extends TerminalError {
  constructor(message: string) {
    super(message, { reason: 'chrome_rejected' });
  }
}

const ALREADY_CLAIMED_MESSAGE = /already claimed|claimed by another/i;
const ALREADY_CLAIMED_REASON = /ALREADY_CLAIMED/i;

/** True when an error body says the process is claimed by another caller instance. */
export function isClaimedByAnother(detail: RemoteErrorDetail): boolean {
  if (detail.message !== undefined && ALREADY_CLAIMED_MESSAGE.test(detail.message)) return true;
  return (detail.reasons ?? []).some((reason) => ALREADY_CLAIMED_REASON.test(reason));
}

/** What the ChromeOS user reads when Google refused one of our calls for this process. */
/** The remaining 4xx of the Chrome Management API (see the module comment). */
export function classifyChromeResponse(response: HttpErrorResponse): CertprovError {
  const { status, summary, detail } = response;
  if (status === 404) {
    // Only Google's own NOT_FOUND status proves the resource is missing. A bare 404 (an HTML page) means the URL is
    // wrong — a misconfigured endpoint must not make the adapter skip, and acknowledge away, every process.
    if (detail.code === 'NOT_FOUND') return new ProcessNotFoundError(summary);
    return new DeploymentFaultError(`${summary} (not a Chrome Management API answer)`, {
      component: 'chrome',
      hint: 'check chrome.endpoint: it must be the API root, e.g. https://chromemanagement.googleapis.com',
    });
  }
  // "Already claimed" is read from the body, never inferred from the status alone (DESIGN.md §5). The reference
  // names 400; a 409 ALREADY_EXISTS carrying the same words means the same.
  if (response.operation === 'claim' && (status === 400 || status === 409) && isClaimedByAnother(detail)) {
    return new ClaimedByAnotherInstanceError(summary);
  }
  if (status === 409 && detail.code === 'ABORTED') {
    // A concurrency conflict on Google's side; nothing was applied, the call can be made again later.
    return new RetryableError(summary, { retryAfterMs: response.retryAfterMs });
  }
  // 400 INVALID_ARGUMENT / FAILED_PRECONDITION / OUT_OF_RANGE, 409 ALREADY_EXISTS, 412, 413 …: this process cannot
  // get further through this call.
  return new TerminalError(summary, { reason: 'chrome_rejected' });
}

interface GoogleStatusBody {
  error?: {
    code?: unknown;
    message?: unknown;
    status?: unknown;
    details?: unknown;
  };
}

/** Reads a google.rpc.Status error body. Anything else (an HTML page from a front end) gives `{}`. */
export function parseGoogleErrorBody(bodyText: string): RemoteErrorDetail {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bodyText);
  } catch {
    return {};
  }
  // Some front ends wrap the status in a one-element array.
  const body = (Array.isArray(parsed) ? parsed[0] : parsed) as GoogleStatusBody | null;
  const error = typeof body === 'object' && body !== null ? body.error : undefined;
  if (typeof error !== 'object' || error === null) return {};
  const reasons: string[] = [];
  let retryAfterMs: number | undefined;
  for (const item of Array.isArray(error.details) ? (error.details as unknown[]) : []) {
    if (typeof item !== 'object' || item === null) continue;
    const { reason, retryDelay } = item as { reason?: unknown; retryDelay?: unknown };
    if (typeof reason === 'string') reasons.push(reason);
    const delay = parseProtoDuration(retryDelay);
    if (delay !== undefined) retryAfterMs = delay;
  }
  return {
    ...(typeof error.status === 'string' ? { code: error.status } : {}),
    ...(typeof error.message === 'string' ? { message: error.message } : {}),
    ...(reasons.length > 0 ? { reasons } : {}),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** google.protobuf.Duration in JSON: `"1.5s"`. Also accepts `{seconds, nanos}`. */
function parseProtoDuration(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const match = /^(\d+(?:\.\d+)?)s$/.exec(value.trim());
    return match?.[1] === undefined ? undefined : Math.round(Number(match[1]) * 1000);
  }
  if (typeof value === 'object' && value !== null) {
    const { seconds, nanos } = value as { seconds?: unknown; nanos?: unknown };
    const s = Number(seconds ?? 0);
    const n = Number(nanos ?? 0);
    if (Number.isFinite(s) && Number.isFinite(n) && (seconds !== undefined || nanos !== undefined)) {
      return Math.round(s * 1000 + n / 1e6);
    }
  }
  return undefined;
}
