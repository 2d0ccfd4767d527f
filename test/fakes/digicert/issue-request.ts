/**
 * IssueRequests as the workflow makes them (a CSR over a pool key, signed and verified; the profile rendered),
 * and a virtual clock for rate-limiter and poller tests.
 */
import { randomBytes } from 'node:crypto';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import type { RenderedProfile } from '../../../src/pki/types.ts';
import { issueRequestFor, subjectAttribute, type IssueRequestOptions } from '../../support/issue-request.ts';

const DAY_MS = 86_400_000;

export const attribute = subjectAttribute;

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

export type RequestOptions = IssueRequestOptions;
export { issueRequestFor };

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
