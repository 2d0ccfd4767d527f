/** The DigiCert CertCentral backend's registry entry: its configuration, what it can honour, how it is built. */
import type { CaBackend } from '../types.ts';
import { digicertConfigSchema, maxValidityDaysOf, type DigicertConfig } from './config.ts';
import { digicertProfileProblems } from './profile-checks.ts';
import { DIGICERT_PRODUCTS } from './products.ts';

export const digicertBackend: CaBackend<DigicertConfig> = {
  type: 'digicert',
  faultComponent: 'digicert',
  configSchema: digicertConfigSchema,
  capabilities: (config) => {
    const product = DIGICERT_PRODUCTS[config.product];
    return {
      keyTypes: ['rsa', 'ec'],
      // common_name, organization_units[] and the validated organization (profile-checks.ts has the finer rules).
      subjectAttributes: ['CN', 'OU', 'O'],
      subjectAltNameTypes: product === undefined ? [] : [product.subjectAltNameType],
      maxValidityDays: maxValidityDaysOf(config),
      extendedKeyUsages: product?.extendedKeyUsages ?? [],
      // The order carries no keyUsage: DigiCert sets it from the product (the CSR's extensions are not read).
      keyUsages: 'ca',
      requiresDurableStore: true,
    };
  },
  profileProblems: digicertProfileProblems,
  // Loaded on use: the client, poller and rate limiter are only for configurations with a DigiCert connection.
  create: async (name, config, deps) => (await import('./digicert-ca.ts')).DigicertCa.open(name, config, deps),
};
