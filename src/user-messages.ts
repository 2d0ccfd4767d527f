/**
 * Everything the ChromeOS user reads: the setFailure text for each failure reason (DESIGN.md §1: short, plain
 * words, no secrets and no personal data; the workflow appends the correlation id). One catalog keyed by the closed
 * {@link FailureReason} set, so wording lives in one place and crypto code returns reasons, not sentences. A CA
 * backend may still pass its own `userMessage` where it knows better (DigiCert's order statuses, CAS refusals).
 */

/** Why a process failed; the closed set setFailure reports and the failure metrics count. */
export type FailureReason =
  | 'key_policy'
  | 'unknown_ca_connection'
  | 'unknown_profile'
  | 'unsupported_process'
  | 'template_field_missing'
  | 'template_invalid_value'
  | 'bad_signature'
  | 'signature_timeout'
  | 'device_refused'
  | 'ca_rejected'
  | 'ca_timeout'
  | 'ca_misbehaved'
  | 'chrome_rejected'
  | 'retries_exhausted'
  | 'internal';

/**
 * Facts a message may name. Configuration names only (profile, connection, field): never a user's email, a device
 * serial or anything from the CA's response.
 */
export interface MessageDetails {
  /** The certificate profile (profileAdapterConfigReference). */
  readonly profile?: string;
  /** The CA connection (caConnectionAdapterConfigReference). */
  readonly connection?: string;
  /** The profile field at fault, in words: `subject CN`, `email SAN`. */
  readonly field?: string;
  /** Who lacks a template value: the device, or a user session without a device. */
  readonly holder?: 'device' | 'user session';
}

/**
 * Longest message the catalog may produce, correlation reference included. The Chrome reference documents no limit
 * for setFailure's errorMessage; the message is shown in a ChromeOS notification, so we hold ourselves to 200
 * characters (with profile and connection names of up to 40) and a test keeps every reason under it.
 */
export const MAX_USER_MESSAGE_LENGTH = 200;

const ASK_ADMIN = 'Ask your administrator.';

const CATALOG: { readonly [R in FailureReason]: (d: MessageDetails) => string } = {
  key_policy: (d) =>
    d.profile === undefined
      ? "This device's key is not allowed (RSA keys need at least 2048 bits; EC keys must use P-256)."
      : `The certificate profile "${d.profile}" does not fit this device's key type. ${ASK_ADMIN}`,
  unknown_ca_connection: (d) =>
    `The certificate service has no CA connection named "${d.connection ?? ''}". ${ASK_ADMIN}`,
  unknown_profile: (d) =>
    d.connection === undefined
      ? `The certificate service has no certificate profile named "${d.profile ?? '(none)'}". ${ASK_ADMIN}`
      : `The certificate profile "${d.profile ?? '(none)'}" cannot be used with CA connection "${d.connection}". ${ASK_ADMIN}`,
  unsupported_process: () => 'The device did not provide a public key.',
  template_field_missing: (d) =>
    `The certificate profile needs information this ${d.holder ?? 'device'} does not provide. Ask your administrator to check the profile.`,
  template_invalid_value: (d) =>
    `The certificate profile${d.profile === undefined ? '' : ` "${d.profile}"`} produced an invalid ${d.field ?? 'value'}. Ask your administrator to check the profile.`,
  bad_signature: () => "The device's proof-of-possession signature could not be verified.",
  signature_timeout: () => 'The device did not answer the certificate request in time. It will try again later.',
  device_refused: () => 'The certificate request was ended on the device.',
  ca_rejected: () => 'The certificate authority refused the certificate request.',
  ca_timeout: () => `The certificate authority did not approve the request in time. ${ASK_ADMIN}`,
  ca_misbehaved: () => `The certificate authority returned an unusable certificate. ${ASK_ADMIN}`,
  chrome_rejected: () => 'The certificate request was rejected by the Chrome management service.',
  retries_exhausted: () => 'The certificate service could not complete the request. Try again later.',
  internal: () => 'The certificate request could not be processed.',
};

/** The reasons, for tests and documentation. */
export const FAILURE_REASONS = Object.keys(CATALOG) as readonly FailureReason[];

/** What the user reads for `reason`, without the correlation reference. */
export function userMessageFor(reason: FailureReason, details: MessageDetails = {}): string {
  return CATALOG[reason](details);
}
