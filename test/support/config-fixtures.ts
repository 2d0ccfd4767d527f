/**
 * Configuration blocks that several config tests compile: one copy, so a new required field is added once.
 */

/** A valid DigiCert connection (a user-only product; the secret by reference; not an example's organization id). */
export const DIGICERT_CONNECTION = {
  type: 'digicert',
  apiKey: { env: 'DIGICERT_API_KEY' },
  product: 'client_authentication_plus',
  organizationId: 987654,
  processIdCustomFieldId: 77,
} as const;
