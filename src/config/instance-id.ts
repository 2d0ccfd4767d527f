/**
 * The deployment's `callerInstanceId` (sent with claim). Two deployments with the same id would both win the claim
 * and both ask the device to sign — the device then fails the process (one proof of possession per process). So
 * `run` against a real endpoint never falls back to a shared default: the id is configured, or derived from what is
 * unique to the deployment, its Pub/Sub subscription (project + name: every adapter on a topic has its own).
 */
import { createHash } from 'node:crypto';

/** The default only loopback endpoints (the sandbox, tests, the demo) may use. */
export const LOOPBACK_INSTANCE_ID = 'certprov';

const MAX_LENGTH = 63;

/** `projects/P/subscriptions/S` → `P.S` in the instanceId alphabet, shortened with a hash suffix past 63 characters. */
export function instanceIdFromSubscription(subscription: string): string {
  const match = /^projects\/([^/]+)\/subscriptions\/([^/]+)$/.exec(subscription);
  const raw = match === null ? subscription : `${match[1] ?? ''}.${match[2] ?? ''}`;
  const safe = raw.replace(/[^A-Za-z0-9._-]/g, '-');
  if (safe.length <= MAX_LENGTH) return safe;
  const hash = createHash('sha256').update(subscription).digest('hex').slice(0, 8);
  return `${safe.slice(0, MAX_LENGTH - hash.length - 1)}-${hash}`;
}
