/**
 * Can this CA certificate (with its parents) issue the profile's leaves so that verifiers accept them? Checked when
 * a CA certificate is merged and when a CA backend starts, instead of learning it from the first RADIUS server
 * that rejects a device (RFC 5280 §4.2.1.3, §4.2.1.9, §6.1.4; EKU chaining as Windows/NPS and other strict
 * verifiers apply it):
 *
 * - the issuing CA certificate: basicConstraints cA, and — when keyUsage is present — keyCertSign;
 * - every parent: its pathLenConstraint allows the CA certificates below it (a parent with pathLen 0 cannot have
 *   our CA below it, so nothing our CA signs verifies);
 * - every certificate in the chain that carries extendedKeyUsage: it includes each EKU the leaves carry (or
 *   anyExtendedKeyUsage), because strict verifiers intersect the EKUs along the chain.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  ExtendedKeyUsage,
  KeyUsage,
  KeyUsageFlags,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
} from '@peculiar/asn1-x509';
import type { ParsedCertificate } from './certificate.ts';
import { EXTENDED_KEY_USAGES } from './extended-key-usage.ts';

const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
const EKU_NAMES = new Map(Object.entries(EXTENDED_KEY_USAGES).map(([name, oid]) => [oid, name]));

function extension(certificate: ParsedCertificate, oid: string): ArrayBuffer | undefined {
  return certificate.asn1.tbsCertificate.extensions?.find((e) => e.extnID === oid)?.extnValue.buffer;
}

function position(index: number, chainLength: number): string {
  if (index === 0) return 'the CA certificate';
  return `certificate ${index + 1} of ${chainLength} in the chain (the CA certificate's ${index === 1 ? 'issuer' : 'ancestor'})`;
}

/**
 * Problems that keep `chain[0]` from issuing leaves carrying `leafExtendedKeyUsages` (OIDs); each names the
 * certificate and the field. Empty when it can. `chain` is the CA certificate first, then its parents (any
 * number, the root included or not).
 */
export function issuingCaProblems(
  chain: readonly ParsedCertificate[],
  leafExtendedKeyUsages: readonly string[],
): string[] {
  const problems: string[] = [];
  const [ca] = chain;
  if (ca === undefined) return ['no CA certificate'];
  if (!ca.isCa) problems.push('the CA certificate: basicConstraints cA is not set (it is not a CA certificate)');
  const keyUsage = extension(ca, id_ce_keyUsage);
  if (keyUsage !== undefined) {
    const flags = AsnConvert.parse(keyUsage, KeyUsage);
    if ((flags.toNumber() & KeyUsageFlags.keyCertSign) === 0) {
      problems.push('the CA certificate: keyUsage lacks keyCertSign (it may not sign certificates)');
    }
  }
  chain.forEach((certificate, index) => {
    if (index > 0) {
      const bc = extension(certificate, id_ce_basicConstraints);
      const pathLen = bc === undefined ? undefined : AsnConvert.parse(bc, BasicConstraints).pathLenConstraint;
      // The CA certificates below chain[index] (self-issued ones do not count; ours never is).
      if (pathLen !== undefined && pathLen < index) {
        problems.push(
          `${position(index, chain.length)}: basicConstraints pathLenConstraint ${pathLen} allows ${pathLen} CA certificate(s) below it, but the chain has ${index}`,
        );
      }
    }
    const eku = extension(certificate, id_ce_extKeyUsage);
    if (eku === undefined) return;
    const allowed = AsnConvert.parse(eku, ExtendedKeyUsage).map(String);
    if (allowed.includes(ANY_EXTENDED_KEY_USAGE)) return;
    const missing = leafExtendedKeyUsages.filter((oid) => !allowed.includes(oid));
    if (missing.length > 0) {
      const names = (oids: readonly string[]) => oids.map((oid) => EKU_NAMES.get(oid) ?? oid).join(', ');
      problems.push(
        `${position(index, chain.length)}: extendedKeyUsage (${names(allowed)}) excludes ${names(missing)}, which the leaves carry; strict verifiers reject such chains`,
      );
    }
  });
  return problems;
}
