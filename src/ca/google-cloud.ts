/**
 * What the two Google Cloud CA backends (Cloud KMS, Certificate Authority Service) share: how their official
 * clients are connected, and how a Google API error becomes one of the four outcome classes (DESIGN.md §5).
 *
 * Both clients run on their REST transport (`fallback: true`: HTTP/1.1 + JSON, the same protos): one transport in
 * production and tests — the loopback fakes speak exactly what the client sends — and no gRPC channel to keep warm
 * for one call per certificate. An `endpoint` other than Google's is for Private Service Connect and for tests;
 * plain `http:` is accepted for loopback addresses only (config schema), so no deployment can send a token in
 * clear text.
 */
import { z } from 'zod';
import { isLoopbackUrl } from '../http/url-safety.ts';
import { DeploymentFaultError, RetryableError, TerminalError, describeError, type FaultComponent } from '../errors.ts';

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), as google-gax puts them on errors. */
export const GOOGLE_STATUS = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES = new Map<number, string>(Object.entries(GOOGLE_STATUS).map(([name, code]) => [code, name]));

/** HTTP status → canonical code, for errors the REST transport hands back with the HTTP status (google/rpc/code.proto). */
const STATUS_OF_HTTP: Readonly<Record<number, number>> = {
  400: GOOGLE_STATUS.INVALID_ARGUMENT,
  401: GOOGLE_STATUS.UNAUTHENTICATED,
  403: GOOGLE_STATUS.PERMISSION_DENIED,
  404: GOOGLE_STATUS.NOT_FOUND,
  409: GOOGLE_STATUS.ALREADY_EXISTS,
  429: GOOGLE_STATUS.RESOURCE_EXHAUSTED,
  499: GOOGLE_STATUS.CANCELLED,
  500: GOOGLE_STATUS.INTERNAL,
  501: GOOGLE_STATUS.UNIMPLEMENTED,
  503: GOOGLE_STATUS.UNAVAILABLE,
  504: GOOGLE_STATUS.DEADLINE_EXCEEDED,
};

/**
 * The canonical status of a Google client error, or undefined for anything else (a bug, a local failure). google-gax
 * usually sets `code` to the canonical number; on some REST paths (gax 5 without retries) it passes the HTTP error
 * on instead, with the HTTP status as `code` and Google's JSON error body as the message — then the body's
 * `status` name is read (400 is INVALID_ARGUMENT or FAILED_PRECONDITION, 409 ALREADY_EXISTS or ABORTED), else the
 * HTTP status is mapped.
 */
export function googleStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'number') return undefined;
  if (code < 100) return code;
  const message = (error as { message?: unknown }).message;
  if (typeof message === 'string' && message.startsWith('{')) {
    try {
      const status = (JSON.parse(message) as { error?: { status?: unknown } }).error?.status;
      if (typeof status === 'string' && status in GOOGLE_STATUS) {
        return GOOGLE_STATUS[status as keyof typeof GOOGLE_STATUS];
      }
    } catch {
      // not Google's error body: fall back to the HTTP status
    }
  }
  return STATUS_OF_HTTP[code] ?? (code >= 500 ? GOOGLE_STATUS.UNAVAILABLE : GOOGLE_STATUS.UNKNOWN);
}

/** `PERMISSION_DENIED`, or `status 99` for a code outside the table. */
export function googleStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `status ${code}`;
}

/**
 * `endpoint`: `https://host[:port]`, or `http://` on a loopback address (fakes, local emulators). Normalised to
 * the URL's origin.
 */
export const googleEndpointSchema = z
  .url()
  .transform((value) => new URL(value))
  .refine((url) => url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackUrl(url.href)), {
    message: 'must be an https:// URL (plain http only on a loopback address)',
  })
  .refine((url) => url.pathname === '/' && url.search === '' && url.hash === '', {
    message: 'must be an origin (scheme, host, port) without a path',
  })
  .transform((url) => url.origin);

/** The authenticated HTTP client the SDK fetches through; google-auth-library's GoogleAuth or an AuthClient. */
export interface GoogleAuthLike {
  getRequestHeaders(url?: string): Promise<unknown>;
}

/**
 * Constructor options for an official Google Cloud client on its REST transport: Google's default endpoint, or
 * `endpoint`; Application Default Credentials (Workload Identity on GKE) unless `auth` is given.
 */
export function googleClientOptions(endpoint: string | undefined, auth: GoogleAuthLike | undefined) {
  const url = endpoint === undefined ? undefined : new URL(endpoint);
  return {
    fallback: true as const,
    ...(url === undefined
      ? {}
      : {
          apiEndpoint: url.hostname,
          port: url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port),
          protocol: url.protocol.replace(':', ''),
        }),
    ...(auth === undefined ? {} : { authClient: auth }),
  };
}

/**
 * Both Google clients' calls: a gax call's promise carries `cancel()`; stop waiting (and cancel the HTTP request) when the signal aborts.
 */
export function abortable<T>(call: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      (call as Promise<T> & { cancel?: () => void }).cancel?.();
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export interface GoogleErrorContext {
  readonly component: FaultComponent;
  /** `Cloud KMS`, `Certificate Authority Service`. */
  readonly service: string;
  /** What was being done, for the message: `AsymmetricSign on projects/…/cryptoKeyVersions/1`. */
  readonly action: string;
  /** The IAM role the adapter's service account needs for this call. */
  readonly role: string;
  /** NOT_FOUND of a configured resource is a deployment fault; name it. */
  readonly resource: string;
}

/** A refusal the process cannot get past (INVALID_ARGUMENT, FAILED_PRECONDITION from the CA). */
export class GoogleRequestRefused extends TerminalError {
  readonly status: string;
  constructor(message: string, status: string, cause: unknown) {
    super(message, {
      reason: 'ca_rejected',
      userMessage: 'The certificate authority refused the certificate request.',
      cause,
    });
    this.status = status;
  }
}

/**
 * A Google API failure → an outcome class (DESIGN.md §5), in one place for both backends:
 * - PERMISSION_DENIED, UNAUTHENTICATED → deployment fault naming the role; NOT_FOUND of the configured resource
 *   → deployment fault naming it (a typo in the configuration fails every device alike);
 * - INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE → terminal for this process (the CA refused this request);
 * - RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNKNOWN, and errors without a status
 *   (network) → retry with backoff.
 * Errors already classified (ours) pass through.
 */
export function classifyGoogleError(error: unknown, context: GoogleErrorContext): Error {
  if (
    error instanceof DeploymentFaultError ||
    error instanceof TerminalError ||
    error instanceof RetryableError ||
    (error instanceof Error && error.name === 'AbortError')
  ) {
    return error;
  }
  const code = googleStatusOf(error);
  const detail = describeError(error);
  const where = `${context.service}: ${context.action}`;
  const deployment = (message: string, hint: string) =>
    new DeploymentFaultError(`${where}: ${message}`, { component: context.component, cause: error, hint });
  switch (code) {
    case GOOGLE_STATUS.PERMISSION_DENIED:
      return deployment(
        `permission denied (PERMISSION_DENIED: ${detail})`,
        `grant ${context.role} on ${context.resource} to the adapter's service account (Workload Identity)`,
      );
    case GOOGLE_STATUS.UNAUTHENTICATED:
      return deployment(
        `the adapter's credentials were refused (UNAUTHENTICATED: ${detail})`,
        'check Workload Identity (the Kubernetes service account annotation) or GOOGLE_APPLICATION_CREDENTIALS',
      );
    case GOOGLE_STATUS.NOT_FOUND:
      return deployment(
        `${context.resource} does not exist (NOT_FOUND: ${detail})`,
        'correct the resource name in the connection, or create it',
      );
    case GOOGLE_STATUS.INVALID_ARGUMENT:
    case GOOGLE_STATUS.FAILED_PRECONDITION:
    case GOOGLE_STATUS.OUT_OF_RANGE:
      return new GoogleRequestRefused(
        `${where}: refused (${googleStatusName(code)}: ${detail})`,
        googleStatusName(code),
        error,
      );
    case GOOGLE_STATUS.UNIMPLEMENTED:
      return deployment(
        `the endpoint does not implement the call (UNIMPLEMENTED: ${detail})`,
        'check the connection endpoint',
      );
    default:
      return new RetryableError(`${where}: ${code === undefined ? detail : `${googleStatusName(code)}: ${detail}`}`, {
        cause: error,
      });
  }
}
