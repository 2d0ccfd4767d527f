/**
 * IssueRequests as the workflow hands them to a CA backend: a CSR over a pool device key, signed by the "device"
 * with node:crypto, verified and assembled by the adapter's own PKI code; the device SPKI; a rendered profile.
 * The CSR's subject deliberately differs from the profile's: backends must take every field from the profile.
 */
import { randomBytes, sign } from 'node:crypto';
import type { IssueRequest } from '../../src/ca/types.ts';
import { assembleCertificationRequest, buildCertificationRequestInfo } from '../../src/pki/certification-request.ts';
import { parseDeviceKey } from '../../src/pki/device-key.ts';
import { verifyProofOfPossession } from '../../src/pki/proof-of-possession.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../src/pki/subject-template.ts';
import type { DistinguishedName, RenderedProfile, SubjectAltName } from '../../src/pki/types.ts';
import type { DeviceKey } from '../../src/sandbox/key-pool.ts';

/** One rendered subject attribute by its short name (`CN`, `O`, …). */
export function subjectAttribute(type: string, value: string): DistinguishedName[number][number] {
  const info = SUBJECT_ATTRIBUTE_TYPES[type];
  if (info === undefined) throw new Error(`unknown attribute ${type}`);
  return { type, oid: info.oid, value };
}

export interface IssueRequestOptions {
  readonly processId?: string;
  /** Default `default_ca_config`. */
  readonly caConnection?: string;
  readonly priorAttempts?: number;
  /** When the workflow recorded the process (epoch ms). Default: unknown. */
  readonly processCreatedAt?: number;
  /** Subject and SANs inside the CSR (never what the certificate should say). */
  readonly csrSubject?: DistinguishedName;
  readonly csrSubjectAltNames?: readonly SubjectAltName[];
  /** Flip a bit of the CSR signature (a CA that verifies CSRs must refuse it). */
  readonly badSignature?: boolean;
}

export function issueRequestFor(
  key: DeviceKey,
  profile: RenderedProfile,
  options: IssueRequestOptions = {},
): IssueRequest {
  const spkiDer = new Uint8Array(key.spkiDer);
  const deviceKey = parseDeviceKey(spkiDer);
  const cri = buildCertificationRequestInfo({
    subject: options.csrSubject ?? [[subjectAttribute('CN', 'from the CSR, never copied')]],
    subjectAltNames: options.csrSubjectAltNames ?? [],
    spkiDer,
  });
  const signature = sign(
    'sha256',
    cri,
    deviceKey.type === 'ec' ? { key: key.privateKey, dsaEncoding: 'der' } : key.privateKey,
  );
  const verified = verifyProofOfPossession({ spkiDer, data: cri, signature, keyType: deviceKey.type });
  const csrDer = assembleCertificationRequest(cri, deviceKey.type, verified);
  if (options.badSignature === true) csrDer[csrDer.length - 5] = (csrDer[csrDer.length - 5] as number) ^ 0x01;
  return {
    processId: options.processId ?? `p-${randomBytes(8).toString('hex')}`,
    correlationId: `c-${randomBytes(4).toString('hex')}`,
    caConnection: options.caConnection ?? 'default_ca_config',
    csrDer,
    spkiDer,
    deviceKey,
    profile,
    priorAttempts: options.priorAttempts ?? 0,
    ...(options.processCreatedAt === undefined ? {} : { processCreatedAt: options.processCreatedAt }),
  };
}
