/**
 * The Chrome API's signatureAlgorithm enum, chosen by device key type. It lives with the Chrome client, not in
 * src/pki/, because PKI knows no Google type (.dependency-cruiser.cjs).
 */
import type { DeviceKeyInfo, KeyType } from '../pki/types.ts';
import type { SignatureAlgorithm } from './types.ts';

/** The algorithm Chrome asks the device to sign with, by key type (reference: signatureAlgorithm enum). */
export function chromeSignatureAlgorithm(key: DeviceKeyInfo | KeyType): SignatureAlgorithm {
  const type = typeof key === 'string' ? key : key.type;
  return type === 'rsa' ? 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256' : 'SIGNATURE_ALGORITHM_ECDSA_SHA256';
}
