import type { CaBackend, ProfileProblem } from '../types.ts';
import { CAS_SUBJECT_FIELDS } from './certificate-config.ts';
import { casCaConfigSchema, type CasCaConfig } from './config.ts';

/**
 * Google Cloud Certificate Authority Service: issues synchronously (one CreateCertificate per certificate). What it
 * can carry is what a CAS `CertificateConfig` has fields for: the subject attributes of a CAS `Subject`, each once;
 * DNS, URI and email SANs; any EKU; the profile's key usage. What a pool's issuance policy or a template refuses
 * beyond that is only known to CAS (`check-config --probe` reads the pool's policy).
 */
export const googleCasBackend: CaBackend<CasCaConfig> = {
  type: 'google-cas',
  faultComponent: 'google-cas',
  configSchema: casCaConfigSchema,
  capabilities: (config) => ({
    keyTypes: ['rsa', 'ec'],
    subjectAttributes: Object.keys(CAS_SUBJECT_FIELDS),
    subjectAltNameTypes: ['email', 'dns', 'uri'],
    maxValidityDays: config.maxValidityDays,
    extendedKeyUsages: 'any',
    keyUsages: 'profile',
    mayPend: false,
    // The certificate id is derived from the process: a replay finds the first certificate, whatever the store.
    requiresDurableStore: false,
  }),
  profileProblems: (_config, profile) => {
    const problems: ProfileProblem[] = [];
    const seen = new Set<string>();
    for (const rdn of profile.subject) {
      if (rdn.length > 1) {
        problems.push({
          field: 'subject',
          message: 'cannot issue multi-valued RDNs (CAS has one field per attribute)',
        });
      }
      for (const attribute of rdn) {
        if (seen.has(attribute.type)) {
          problems.push({
            field: 'subject',
            message: `can carry ${attribute.type} only once (CAS has one ${CAS_SUBJECT_FIELDS[attribute.type] ?? attribute.type} field)`,
          });
        }
        seen.add(attribute.type);
      }
    }
    return problems;
  },
  // Loaded on use, like every backend whose client pulls in an SDK: configurations without a CAS connection never
  // import it (nor google-gax's CAS protos).
  create: async (name, config, deps) => (await import('./cas-ca.ts')).CasCa.create(name, config, deps),
};
