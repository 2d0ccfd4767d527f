/**
 * IssueRequests as the workflow hands them to a CA backend: a CSR over a pool device key (signed by the "device",
 * verified), the device SPKI and a rendered profile.
 */
import { randomBytes, sign } from 'node:crypto';
import type { IssueRequest, StepContext } from '../../../src/ca/types.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { assembleCertificationRequest, buildCertificationRequestInfo } from '../../../src/pki/certification-request.ts';
import { parseDeviceKey } from '../../../src/pki/device-key.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { verifyProofOfPossession } from '../../../src/pki/proof-of-possession.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import type { DistinguishedName, RenderedProfile } from '../../../src/pki/types.ts';
import type { DeviceKey } from '../../../src/sandbox/key-pool.ts';

const DAY_MS = 86_400_000;

function attribute(type: string, value: string): DistinguishedName[number][number] {
  const info = SUBJECT_ATTRIBUTE_TYPES[type];
  if (info === undefined) throw new Error(`unknown attribute ${type}`);
  return { type, oid: info.oid, value };
}

/** A device profile: CN = serial, a URI SAN, clientAuth, 30 days. */
export function deviceProfile(serial = `5CD${randomBytes(4).toString('hex').toUpperCase()}`): RenderedProfile {
  return {
    name: 'device_profile',
    subject: [[attribute('CN', serial)], [attribute('O', 'Example')]],
    subjectAltNames: [{ type: 'uri', value: `urn:chromeos:device:${randomBytes(6).toString('hex')}` }],
    validityMs: 30 * DAY_MS,
    extendedKeyUsages: [EXTENDED_KEY_USAGES.clientAuth as string],
  };
}

export function deviceRequest(key: DeviceKey, profile: RenderedProfile = deviceProfile()): IssueRequest {
  const spkiDer = new Uint8Array(key.spkiDer);
  const keyType = parseDeviceKey(spkiDer).type;
  const cri = buildCertificationRequestInfo({
    subject: [[attribute('CN', 'from the CSR')]],
    subjectAltNames: [],
    spkiDer,
  });
  const signature = sign(
    'sha256',
    cri,
    keyType === 'ec' ? { key: key.privateKey, dsaEncoding: 'der' } : key.privateKey,
  );
  const verified = verifyProofOfPossession({ spkiDer, data: cri, signature, keyType });
  return {
    processId: `p-${randomBytes(8).toString('hex')}`,
    correlationId: `c-${randomBytes(4).toString('hex')}`,
    caConnection: 'kv_ca',
    csrDer: assembleCertificationRequest(cri, keyType, verified),
    spkiDer,
    deviceKey: parseDeviceKey(spkiDer),
    profile,
    priorAttempts: 0,
  };
}

export function stepContext(signal: AbortSignal = new AbortController().signal): StepContext {
  return { signal, log: silentLogger() };
}
