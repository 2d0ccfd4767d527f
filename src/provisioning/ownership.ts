/**
 * "Is this process ours?" — decided from `get`, before `claim` (DESIGN.md §1 "Whose process is it?"). Every adapter
 * subscribed to the topic is notified of every process; the CA connection reference routes a process to the adapter
 * configured with it. A process whose reference is not configured here, or that uses a SCEP connection or profile
 * (served by a SCEP connector), belongs to another adapter: it is never claimed and never failed here. A known
 * connection with an unknown or disabled profile is ours and misconfigured (the start step fails it after claim).
 */
import type { CaConnection } from '../ca/connection.ts';
import { caConnectionReferenceOf, type CertificateProvisioningProcess } from '../chrome/types.ts';
import type { Config } from '../config/load.ts';
import type { NotOursReason } from '../observability/metrics.ts';

export type Ownership =
  | { readonly ours: true; readonly caConnection: string }
  | {
      readonly ours: false;
      /** The CA connection reference the process carries (`(none)` when it carries none). Admin-defined, log-safe. */
      readonly reference: string;
      readonly why: NotOursReason;
    };

export function ownershipOf(
  process: CertificateProvisioningProcess,
  config: Config,
  cas: ReadonlyMap<string, CaConnection>,
): Ownership {
  if (process.scepCaConnection !== undefined || process.scepProfile !== undefined) {
    const reference = process.scepCaConnection?.caConnectionAdapterConfigReference;
    return { ours: false, reference: typeof reference === 'string' ? reference : '(none)', why: 'scep' };
  }
  const reference = caConnectionReferenceOf(process);
  if (reference === undefined || reference === '') return { ours: false, reference: '(none)', why: 'no_reference' };
  if (!config.caConnections.has(reference) || !cas.has(reference))
    return { ours: false, reference, why: 'unknown_ca_connection' };
  return { ours: true, caConnection: reference };
}
