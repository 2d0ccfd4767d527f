/** Extended key usage names a profile may write, and their OIDs (RFC 5280 §4.2.1.12 and Microsoft's). */
export const EXTENDED_KEY_USAGES: Readonly<Record<string, string>> = {
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  smartcardLogon: '1.3.6.1.4.1.311.20.2.2',
};

const OID = /^[0-2](\.(0|[1-9]\d*))+$/;

/** Resolves a name or a dotted OID; undefined when it is neither. */
export function resolveExtendedKeyUsage(nameOrOid: string): string | undefined {
  return EXTENDED_KEY_USAGES[nameOrOid] ?? (OID.test(nameOrOid) ? nameOrOid : undefined);
}
