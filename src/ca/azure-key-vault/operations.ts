/**
 * Every Key Vault operation this backend performs, with the data-plane permission it needs (access-policy name and
 * the built-in RBAC role that grants it) and whether repeating it is harmless. A 403 names exactly what to grant
 * (DESIGN.md §5: a missing permission is a deployment fault with an actionable message).
 *
 * Permissions are those Microsoft documents per REST operation (and the SDK repeats in its JSDoc).
 */

export type KeyVaultOperationName =
  | 'getCertificate'
  | 'getKey'
  | 'sign'
  | 'createCertificate'
  | 'getPendingCertificate'
  | 'cancelPendingCertificate'
  | 'deletePendingCertificate'
  | 'mergeCertificate';

export interface KeyVaultOperation {
  readonly name: KeyVaultOperationName;
  /** Access-policy permission, e.g. `keys/sign`. */
  readonly permission: string;
  /** Built-in RBAC role that grants it. */
  readonly role: string;
  /**
   * Repeating the call after an unclear result (timeout, reset, 5xx) has no extra effect (DESIGN.md §5: a Key
   * Vault sign is safe). A create or a merge is not: read the pending object back instead.
   */
  readonly safeToRepeat: boolean;
}

const CRYPTO_USER = 'Key Vault Crypto User';
const CERTIFICATE_USER = 'Key Vault Certificate User';
const CERTIFICATES_OFFICER = 'Key Vault Certificates Officer';

export const KEY_VAULT_OPERATIONS: Readonly<Record<KeyVaultOperationName, KeyVaultOperation>> = {
  getCertificate: {
    name: 'getCertificate',
    permission: 'certificates/get',
    role: CERTIFICATE_USER,
    safeToRepeat: true,
  },
  getKey: { name: 'getKey', permission: 'keys/get', role: CRYPTO_USER, safeToRepeat: true },
  sign: { name: 'sign', permission: 'keys/sign', role: CRYPTO_USER, safeToRepeat: true },
  createCertificate: {
    name: 'createCertificate',
    permission: 'certificates/create',
    role: CERTIFICATES_OFFICER,
    safeToRepeat: false,
  },
  getPendingCertificate: {
    name: 'getPendingCertificate',
    permission: 'certificates/get',
    role: CERTIFICATES_OFFICER,
    safeToRepeat: true,
  },
  cancelPendingCertificate: {
    name: 'cancelPendingCertificate',
    permission: 'certificates/update',
    role: CERTIFICATES_OFFICER,
    safeToRepeat: true,
  },
  deletePendingCertificate: {
    name: 'deletePendingCertificate',
    permission: 'certificates/update',
    role: CERTIFICATES_OFFICER,
    safeToRepeat: false,
  },
  mergeCertificate: {
    name: 'mergeCertificate',
    permission: 'certificates/create',
    role: CERTIFICATES_OFFICER,
    safeToRepeat: false,
  },
};
