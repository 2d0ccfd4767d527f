/**
 * Splits what DigiCert returns — `certificate_chain[].pem` of an order issued at once, or a `pem_all` download
 * (leaf, intermediates, root) — into the leaf for the device and the rest. Chrome takes exactly one certificate
 * (DESIGN.md §1): the leaf is the certificate whose SPKI is the device key, whatever its position.
 */
import { RetryableError } from '../../errors.ts';
import { bytesEqual } from '../../pki/der.ts';
import { spkiOfCertificate } from '../../pki/certificate.ts';
import { encodePem, splitPemBundle, PemError } from '../../pki/pem.ts';

export interface LeafAndChain {
  readonly certificatePem: string;
  readonly chainPem: readonly string[];
}

/**
 * Picks the device's leaf out of PEM certificates. When none carries the device key the first one is returned as
 * the leaf: the workflow's SPKI check then fails the process as `ca_misbehaved` with an error log.
 * @throws RetryableError when the text holds no certificate (a truncated or wrong download).
 */
export function leafAndChain(pems: readonly string[], spkiDer: Uint8Array): LeafAndChain {
  const certificates: string[] = [];
  try {
    for (const pem of pems) {
      for (const block of splitPemBundle(pem)) {
        if (block.label === 'CERTIFICATE') certificates.push(encodePem('CERTIFICATE', block.der));
      }
    }
  } catch (error) {
    if (error instanceof PemError)
      throw new RetryableError(`digicert returned unreadable PEM: ${error.message}`, { cause: error });
    throw error;
  }
  if (certificates.length === 0) throw new RetryableError('digicert returned no certificate');
  const index = certificates.findIndex((pem) => {
    try {
      return bytesEqual(spkiOfCertificate(pem), spkiDer);
    } catch {
      return false;
    }
  });
  const leafIndex = index < 0 ? 0 : index;
  return {
    certificatePem: certificates[leafIndex] as string,
    chainPem: certificates.filter((_, i) => i !== leafIndex),
  };
}
