/**
 * A rendered profile as a CAS `CertificateConfig` (google/cloud/security/privateca/v1/resources.proto): the subject,
 * SANs, key usage and EKUs the profile decides, and the device's public key. CAS is handed the fields explicitly
 * rather than taking them from the CSR: the profile, not the bytes a device signed, decides what the certificate
 * says (DESIGN.md §4); the CSR's proof of possession was verified by the workflow before anything reached the CA.
 * The pool's issuance policy must allow subject and SAN passthrough (docs/backends/google-cas.md).
 */
import { encodePem } from '../../pki/pem.ts';
import type { KeyType, LeafKeyUsage, RenderedProfile } from '../../pki/types.ts';
import { defaultKeyUsages } from '../../pki/key-usage.ts';

/** Subject attributes a CAS `Subject` has a field for, each at most once. */
export const CAS_SUBJECT_FIELDS: Readonly<Record<string, string>> = {
  CN: 'commonName',
  C: 'countryCode',
  O: 'organization',
  OU: 'organizationalUnit',
  L: 'locality',
  ST: 'province',
  STREET: 'streetAddress',
};

/** EKUs CAS names with a flag; others go into `unknownExtendedKeyUsages` as OIDs. */
const NAMED_EKUS: Readonly<Record<string, string>> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'ocspSigning',
};

const KEY_USAGE_FIELDS: Readonly<Record<LeafKeyUsage, string>> = {
  digitalSignature: 'digitalSignature',
  nonRepudiation: 'contentCommitment',
  keyEncipherment: 'keyEncipherment',
  dataEncipherment: 'dataEncipherment',
  keyAgreement: 'keyAgreement',
};

/** The CertificateConfig for one device, as the client takes it (plain object, camelCase fields). */
export function certificateConfigFor(profile: RenderedProfile, spkiDer: Uint8Array, keyType: KeyType) {
  const subject: Record<string, string> = {};
  for (const attribute of profile.subject.flat()) {
    const field = CAS_SUBJECT_FIELDS[attribute.type];
    // The backend's declared capabilities keep other attributes out at config load.
    if (field === undefined) throw new Error(`CAS has no subject field for ${attribute.type}`);
    subject[field] = attribute.value;
  }
  const sans = {
    dnsNames: profile.subjectAltNames.filter((s) => s.type === 'dns').map((s) => s.value),
    uris: profile.subjectAltNames.filter((s) => s.type === 'uri').map((s) => s.value),
    emailAddresses: profile.subjectAltNames.filter((s) => s.type === 'email').map((s) => s.value),
  };
  const extendedKeyUsage: Record<string, boolean> = {};
  const unknownExtendedKeyUsages: { objectIdPath: number[] }[] = [];
  for (const oid of profile.extendedKeyUsages) {
    const named = NAMED_EKUS[oid];
    if (named !== undefined) extendedKeyUsage[named] = true;
    else unknownExtendedKeyUsages.push({ objectIdPath: oid.split('.').map(Number) });
  }
  const baseKeyUsage: Record<string, boolean> = {};
  for (const usage of profile.keyUsages ?? defaultKeyUsages(keyType)) baseKeyUsage[KEY_USAGE_FIELDS[usage]] = true;
  return {
    subjectConfig: { subject, subjectAltName: sans },
    x509Config: {
      keyUsage: { baseKeyUsage, extendedKeyUsage, unknownExtendedKeyUsages },
      caOptions: { isCa: false },
    },
    publicKey: { key: Buffer.from(encodePem('PUBLIC KEY', spkiDer), 'utf8'), format: 'PEM' as const },
  };
}
