/**
 * How CertCentral reports errors and what they mean for the adapter (DESIGN.md §5). Bodies are
 * `{"errors": [{"code": "…", "message": "…"}]}`; older responses carry an object instead of the array (either one
 * error `{code, message}` or a map of code → message), and front ends may answer with HTML: all are read here.
 *
 * The shared rules of src/http/classify.ts already decide 401/403 (deployment fault), 408/429/5xx (retry, or
 * unclear for the unsafe order POST) and redirects; {@link classifyDigicertResponse} decides the remaining 4xx:
 *
 * - `access_denied|*`, an invalid API key, a 404 that is not about one order → deployment fault (never setFailure:
 *   the operator fixes the key, its permissions or `baseUrl`).
 * - `invalid_value:<field>` for a field that comes from configuration (organization, container, CA, custom field,
 *   product, payment) → deployment fault: every order would fail the same way.
 * - `csr_invalid_cannot_parse`, `cert_validity_exceeds_order_validity`, any other `invalid_value:*` and other
 *   400s of the order POST → terminal for this process.
 * - `time_frame_too_long` (status-changes window > 7 days) → {@link TimeFrameTooLongError}, handled by the poller.
 * - `not_found|order` / `not_found|certificate` → {@link DigicertNotFoundError} (terminal; the caller decides).
 */
import { DeploymentFaultError, RetryableError, TerminalError, type CertprovError } from '../../errors.ts';
import { clipServerMessage, type HttpErrorResponse, type RemoteErrorDetail } from '../../http/classify.ts';

/** The operator's fix for a 401/403 or `access_denied|*`. */
export const DIGICERT_AUTH_FAULT_HINT =
  'check the DigiCert API key (apiKey file or variable, not revoked, right CertCentral platform: US or EU baseUrl) ' +
  'and its user: it needs permission to order the product for the organization and container, to skip approval ' +
  '(skipApproval: true), to view and cancel orders, and to read the custom order field';

/** What the ChromeOS user reads when DigiCert refused the order for this process. */
export const DIGICERT_REJECTED_USER_MESSAGE = 'The certificate authority refused the certificate request.';

/** Order fields whose value comes from configuration: an invalid one fails every order alike. */
const CONFIG_FIELDS =
  /^(organization|organization_id|organization\.id|container|container_id|container\.id|ca_cert_id|certificate\.ca_cert_id|custom_fields|metadata_id|payment_method|product|product_name_id|signature_hash|certificate\.signature_hash)$/;

/** Codes for a key DigiCert does not accept (the shared rules see the 401/403 ones first). */
const INVALID_KEY_CODES = new Set([
  'invalid_api_key',
  'invalid_key',
  'api_key_invalid',
  'unauthorized',
  'access_denied',
]);

/** status-changes was asked for a window longer than DigiCert allows (7 days). */
export class TimeFrameTooLongError extends RetryableError {}

/** DigiCert says the order (or certificate) does not exist on this account. */
export class DigicertNotFoundError extends TerminalError {
  constructor(message: string) {
    super(message, {
      reason: 'ca_rejected',
      userMessage: 'The certificate order no longer exists at the certificate authority.',
    });
  }
}

interface ErrorItem {
  readonly code?: unknown;
  readonly message?: unknown;
}

/** Reads both error shapes; anything else (an HTML page, an empty body) gives `{}`. Never throws. */
export function parseDigicertErrorBody(bodyText: string): RemoteErrorDetail {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bodyText);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null) return {};
  const container = parsed as { errors?: unknown; error?: unknown };
  const raw = container.errors ?? container.error;
  const items: ErrorItem[] = [];
  if (Array.isArray(raw)) {
    for (const item of raw as unknown[]) if (typeof item === 'object' && item !== null) items.push(item);
  } else if (typeof raw === 'object' && raw !== null) {
    const object = raw as Record<string, unknown>;
    if ('code' in object || 'message' in object) items.push(object);
    // The oldest shape: { "errors": { "<code>": "<message>" } }.
    else for (const [code, message] of Object.entries(object)) items.push({ code, message });
  } else if (typeof raw === 'string') {
    items.push({ message: raw });
  }
  const codes = items.flatMap((i) => (typeof i.code === 'string' && i.code !== '' ? [i.code] : []));
  const messages = items.flatMap((i) => (typeof i.message === 'string' && i.message !== '' ? [i.message] : []));
  return {
    ...(codes[0] === undefined ? {} : { code: codes[0] }),
    ...(messages.length === 0 ? {} : { message: messages.join('; ') }),
    ...(codes.length === 0 ? {} : { reasons: codes }),
  };
}

/** Every error code in a parsed body. */
export function errorCodes(detail: RemoteErrorDetail): readonly string[] {
  return detail.reasons ?? (detail.code === undefined ? [] : [detail.code]);
}

/** `invalid_value:organization.id` → `organization.id`; undefined for other codes. */
function invalidValueField(code: string): string | undefined {
  const match = /^invalid_value[:|](.+)$/.exec(code);
  return match?.[1];
}

/** Operations that create or change something at DigiCert; everything else is a read. */
const WRITES = new Set(['order', 'cancel', 'reject-request']);

/** The remaining 4xx of the Services API (see the module comment). */
export function classifyDigicertResponse(response: HttpErrorResponse): CertprovError {
  const { status, summary, detail, operation } = response;
  const codes = errorCodes(detail);
  const fault = (hint: string) => new DeploymentFaultError(summary, { component: 'digicert', hint });

  if (codes.some((c) => c.startsWith('access_denied') || INVALID_KEY_CODES.has(c)))
    return fault(DIGICERT_AUTH_FAULT_HINT);
  if (codes.includes('request_limit_exceeded'))
    return new RetryableError(summary, { retryAfterMs: response.retryAfterMs });
  if (codes.includes('time_frame_too_long')) return new TimeFrameTooLongError(summary);
  if (status === 404) {
    if (codes.some((c) => /^not_found[|:](order|certificate|request)$/.test(c)))
      return new DigicertNotFoundError(summary);
    // A bare 404 (an HTML page) or an unknown product: the URL is wrong, not this process.
    return fault(
      'check baseUrl (…/services/v2 on the right CertCentral platform) and that the product is enabled for the account',
    );
  }
  const configField = codes.map(invalidValueField).find((field) => field !== undefined && CONFIG_FIELDS.test(field));
  if (configField !== undefined) {
    return fault(
      `DigiCert refused the configured ${configField}: check organizationId, containerId, caCertId, processIdCustomFieldId, product and paymentMethod`,
    );
  }
  if (WRITES.has(operation)) {
    const csr = codes.some((c) => c.startsWith('csr_'));
    return new TerminalError(summary, {
      reason: 'ca_rejected',
      userMessage: csr
        ? 'The certificate authority could not read the certificate request.'
        : DIGICERT_REJECTED_USER_MESSAGE,
    });
  }
  // A read refused with 4xx is no fault of the process: the adapter and the API disagree (version, filter syntax).
  return fault(
    `unexpected answer to a read (${clipServerMessage(codes.join(', ') || String(status))}); check baseUrl and the adapter version`,
  );
}
