import { chainFileRequirement, selfSigningCapabilities } from '../issuing-core.ts';
import type { CaBackend } from '../types.ts';
import { kmsCaConfigSchema, type KmsCaConfig } from './config.ts';

/**
 * The Cloud KMS-held issuing CA: signs synchronously (one AsymmetricSign per certificate), any subject, SAN type
 * and EKU — the certificate is built locally; only the signature comes from KMS.
 */
export const googleKmsBackend: CaBackend<KmsCaConfig> = {
  type: 'google-kms',
  faultComponent: 'google-kms',
  configSchema: kmsCaConfigSchema,
  capabilities: (config) => selfSigningCapabilities(config.maxValidityDays),
  // Loaded on use, like every backend whose client pulls in an SDK: `certprov --help` and configurations without
  // a KMS connection never import it.
  create: async (name, config, deps) => (await import('./kms-ca.ts')).KmsCa.create(name, config, deps),
  requiredFiles: (config) => [
    {
      field: 'caCertificateFile',
      file: config.caCertificateFile,
      hint: 'write there the CA certificate the parent CA issued for the CSR of `certprov kms-ca csr`, or fix caCertificateFile',
    },
    ...chainFileRequirement(config.chainFile),
  ],
};
