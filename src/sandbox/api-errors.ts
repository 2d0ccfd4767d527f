/**
 * Errors of the simulated Chrome Management API, in Google's JSON error shape
 * (`{"error": {"code": 400, "message": "…", "status": "FAILED_PRECONDITION"}}`). The adapter classifies failures
 * from this body (e.g. a claim held by another instance is read from the message, not inferred from "400";
 * DESIGN.md §5), so the sandbox must produce the same shape and statuses as the real service.
 */

/** The google.rpc.Code names the sandbox answers with, keyed to their HTTP status. */
export type GoogleRpcStatus =
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export interface GoogleErrorBody {
  error: { code: number; message: string; status: GoogleRpcStatus };
}

/** Thrown inside request handlers; turned into a Google-shaped error response by the tenant. */
export class SandboxApiError extends Error {
  readonly httpStatus: number;
  readonly status: GoogleRpcStatus;

  constructor(httpStatus: number, status: GoogleRpcStatus, message: string) {
    super(message);
    this.name = 'SandboxApiError';
    this.httpStatus = httpStatus;
    this.status = status;
  }

  body(): GoogleErrorBody {
    return { error: { code: this.httpStatus, message: this.message, status: this.status } };
  }
}

/**
 * The message the real service returns when another callerInstanceId holds the claim. The adapter recognises a
 * lost claim by this body (DESIGN.md §5), so it is exported for tests that assert on it.
 */
export const ALREADY_CLAIMED_MESSAGE =
  'The certificate provisioning process is already claimed by another adapter instance.';

export const invalidArgument = (message: string): SandboxApiError =>
  new SandboxApiError(400, 'INVALID_ARGUMENT', message);

export const failedPrecondition = (message: string): SandboxApiError =>
  new SandboxApiError(400, 'FAILED_PRECONDITION', message);

export const notFound = (message: string): SandboxApiError => new SandboxApiError(404, 'NOT_FOUND', message);

export const unauthenticated = (): SandboxApiError =>
  new SandboxApiError(
    401,
    'UNAUTHENTICATED',
    'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid ' +
      'authentication credential.',
  );

export const permissionDenied = (): SandboxApiError =>
  new SandboxApiError(403, 'PERMISSION_DENIED', 'The caller does not have permission');

export const resourceExhausted = (): SandboxApiError =>
  new SandboxApiError(
    429,
    'RESOURCE_EXHAUSTED',
    'Quota exceeded for quota metric "Requests" of service chromemanagement.googleapis.com.',
  );

export const unavailable = (): SandboxApiError =>
  new SandboxApiError(503, 'UNAVAILABLE', 'The service is currently unavailable.');

export const internal = (): SandboxApiError => new SandboxApiError(500, 'INTERNAL', 'Internal error encountered.');
