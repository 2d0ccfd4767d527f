/**
 * IssueRequests as the workflow makes them (a CSR over a pool key, signed and verified; the profile rendered),
 * and a virtual clock for rate-limiter and poller tests.
 */
import { randomBytes, sign } from 'node:crypto';
import type { IssueRequest } from '../../../src/ca/types.ts';
import { assembleCertificationRequest, buildCertificationRequestInfo } from '../../../src/pki/certification-request.ts';
import { parseDeviceKey } from '../../../src/pki/device-key.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { verifyProofOfPossession } from '../../../src/pki/proof-of-possession.ts';
import { SUBJECT_ATTRIBUTE_TYPES } from '../../../src/pki/subject-template.ts';
import type { DistinguishedName, RenderedProfile } from '../../../src/pki/types.ts';
import type { DeviceKey } from '../../../src/sandbox/key-pool.ts';

const DAY_MS = 86_400_000;

export function attribute(type: string, value: string): DistinguishedName[number][number] {
  const info = SUBJECT_ATTRIBUTE_TYPES[type];
  if (info === undefined) throw new Error(`unknown attribute ${type}`);
  return { type, oid: info.oid, value };
}

/** A user profile for client_authentication_plus: CN = email, one email SAN, clientAuth, 30 days. */
export function userProfile(
  email = `user-${randomBytes(3).toString('hex')}@example.com`,
  extra: Partial<RenderedProfile> = {},
): RenderedProfile {
  return {
    name: 'user_profile',
    subject: [[attribute('CN', email)]],
    subjectAltNames: [{ type: 'email', value: email }],
    validityMs: 30 * DAY_MS,
    extendedKeyUsages: [EXTENDED_KEY_USAGES.clientAuth as string],
    ...extra,
  };
}

export interface RequestOptions {
  readonly processId?: string;
  readonly priorAttempts?: number;
  /** Corrupt the CSR signature (the CA must refuse it). */
  readonly badSignature?: boolean;
}

export function issueRequestFor(key: DeviceKey, profile: RenderedProfile, options: RequestOptions = {}): IssueRequest {
  const spkiDer = new Uint8Array(key.spkiDer);
  const keyType = parseDeviceKey(spkiDer).type;
  const cri = buildCertificationRequestInfo({
    subject: [[attribute('CN', 'from the CSR, never copied')]],
    subjectAltNames: [],
    spkiDer,
  });
  const signature = sign(
    'sha256',
    cri,
    keyType === 'ec' ? { key: key.privateKey, dsaEncoding: 'der' } : key.privateKey,
  );
  const verified = verifyProofOfPossession({ spkiDer, data: cri, signature, keyType });
  const csrDer = assembleCertificationRequest(cri, keyType, verified);
  if (options.badSignature === true) csrDer[csrDer.length - 5] = (csrDer[csrDer.length - 5] as number) ^ 0x01;
  return {
    processId: options.processId ?? `p-${randomBytes(8).toString('hex')}`,
    correlationId: `c-${randomBytes(4).toString('hex')}`,
    caConnection: 'default_ca_config',
    csrDer,
    spkiDer,
    deviceKey: parseDeviceKey(spkiDer),
    profile,
    priorAttempts: options.priorAttempts ?? 0,
  };
}

/** A clock that only moves when someone sleeps on it: waits cost no real time and are measurable. */
export class VirtualClock {
  time: number;
  readonly sleeps: number[] = [];
  constructor(start = Date.UTC(2026, 0, 15, 12)) {
    this.time = start;
  }
  readonly now = (): number => this.time;
  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> => {
    signal?.throwIfAborted();
    this.sleeps.push(ms);
    this.time += ms;
    return Promise.resolve();
  };
  advance(ms: number): void {
    this.time += ms;
  }
}
