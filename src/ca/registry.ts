/**
 * CA backends by `type` (smallstep's CAS registry). Configuration validation looks types up here, so an unknown
 * type fails before the first message is pulled.
 */
import type { CaBackend } from './types.ts';
import { digicertBackend } from './digicert/index.ts';
import { localBackend } from './local/index.ts';
import { azureKeyVaultBackend } from './azure-key-vault/index.ts';
import { googleCasBackend } from './google-cas/index.ts';
import { googleKmsBackend } from './google-kms/index.ts';

// Each backend's config type differs; the registry only needs the common shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const CA_BACKENDS: ReadonlyMap<string, CaBackend<any>> = new Map<string, CaBackend<any>>([
  [localBackend.type, localBackend],
  [azureKeyVaultBackend.type, azureKeyVaultBackend],
  [digicertBackend.type, digicertBackend],
  [googleKmsBackend.type, googleKmsBackend],
  [googleCasBackend.type, googleCasBackend],
]);
