import { chainFileRequirement, selfSigningCapabilities } from '../issuing-core.ts';
import type { CaBackend } from '../types.ts';
import { keyVaultCaConfigSchema, type KeyVaultCaConfig } from './config.ts';

/**
 * The Key Vault-held issuing CA: signs synchronously (one Key Vault sign per certificate), any subject, SAN type
 * and EKU — the certificate is built locally; only the signature comes from the vault.
 */
export const azureKeyVaultBackend: CaBackend<KeyVaultCaConfig> = {
  type: 'azure-key-vault',
  faultComponent: 'keyvault',
  configSchema: keyVaultCaConfigSchema,
  capabilities: (config) => selfSigningCapabilities(config.maxValidityDays),
  // Loaded on use: the Azure SDKs cost a second to import, and only a configuration with a vault needs them.
  create: async (name, config, deps) => (await import('./key-vault-ca.ts')).KeyVaultCa.create(name, config, deps),
  requiredFiles: (config) => [
    ...(config.caCertificateFile === undefined
      ? []
      : [
          {
            field: 'caCertificateFile',
            file: config.caCertificateFile,
            hint: 'write the CA certificate the parent CA issued for signingKey there, or fix caCertificateFile',
          },
        ]),
    ...chainFileRequirement(config.chainFile),
  ],
};
