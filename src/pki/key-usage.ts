/**
 * Per-profile keyUsage of a leaf certificate (RFC 5280 §4.2.1.3), checked against the device key type.
 *
 * What a key can do decides which bits make sense: an RSA key signs and encrypts (keyEncipherment,
 * dataEncipherment), an EC P-256 key signs and agrees on keys (ECDH: keyAgreement) but cannot encrypt. A profile
 * that asks for a bit its device's key cannot use is a configuration error: at load when no key type could carry
 * the list, otherwise for the process whose device key does not fit.
 */
import { TerminalError } from '../errors.ts';
import type { KeyType, LeafKeyUsage } from './types.ts';

/** The keyUsage bits a profile may ask for (keyCertSign and cRLSign belong to CAs, never to a device). */
export const LEAF_KEY_USAGES = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
] as const satisfies readonly LeafKeyUsage[];

const USABLE_BY: Readonly<Record<LeafKeyUsage, readonly KeyType[]>> = {
  digitalSignature: ['rsa', 'ec'],
  nonRepudiation: ['rsa', 'ec'],
  keyEncipherment: ['rsa'],
  dataEncipherment: ['rsa'],
  keyAgreement: ['ec'],
};

const KEY_TYPE_NAMES: Readonly<Record<KeyType, string>> = { rsa: 'RSA', ec: 'EC' };

/** The usage a profile without `keyUsages` gets: EC digitalSignature; RSA digitalSignature + keyEncipherment. */
export function defaultKeyUsages(keyType: KeyType): readonly LeafKeyUsage[] {
  return keyType === 'ec' ? ['digitalSignature'] : ['digitalSignature', 'keyEncipherment'];
}

/** Key types whose keys can use every bit of `usages`. */
export function keyTypesFor(usages: readonly LeafKeyUsage[]): KeyType[] {
  return (['rsa', 'ec'] as const).filter((type) => usages.every((u) => USABLE_BY[u].includes(type)));
}

/** Why a key of `keyType` cannot carry `usages` (e.g. `keyEncipherment needs an RSA key`), or undefined. */
export function keyUsageProblem(usages: readonly LeafKeyUsage[], keyType: KeyType): string | undefined {
  const misfits = usages.filter((u) => !USABLE_BY[u].includes(keyType));
  if (misfits.length === 0) return undefined;
  return misfits
    .map((u) => `${u} needs ${USABLE_BY[u].map((t) => `an ${KEY_TYPE_NAMES[t]}`).join(' or ')} key`)
    .join(', ');
}

/**
 * The keyUsage of one certificate: the profile's `keyUsages` when set, else the key type's default.
 * @throws TerminalError `key_policy` naming the profile and the field when the device key cannot use a bit.
 */
export function keyUsagesForDevice(
  profileName: string,
  configured: readonly LeafKeyUsage[] | undefined,
  keyType: KeyType,
): readonly LeafKeyUsage[] {
  if (configured === undefined) return defaultKeyUsages(keyType);
  const problem = keyUsageProblem(configured, keyType);
  if (problem === undefined) return configured;
  throw new TerminalError(
    `profile "${profileName}": profiles.${profileName}.keyUsages does not fit this device's ${KEY_TYPE_NAMES[keyType]} key: ${problem}`,
    {
      reason: 'key_policy',
      details: { profile: profileName },
    },
  );
}
