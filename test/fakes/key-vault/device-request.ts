/**
 * IssueRequests as the workflow hands them to a CA backend: a CSR over a pool device key (signed by the "device",
 * verified), the device SPKI and a rendered profile.
 */
import { randomBytes } from 'node:crypto';
import type { IssueRequest, StepContext } from '../../../src/ca/types.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import type { RenderedProfile } from '../../../src/pki/types.ts';
import { issueRequestFor, subjectAttribute } from '../../support/issue-request.ts';
import type { DeviceKey } from '../../../src/sandbox/key-pool.ts';

const DAY_MS = 86_400_000;

const attribute = subjectAttribute;

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
  return issueRequestFor(key, profile, { caConnection: 'kv_ca' });
}

export function stepContext(signal: AbortSignal = new AbortController().signal): StepContext {
  return { signal, log: silentLogger() };
}
