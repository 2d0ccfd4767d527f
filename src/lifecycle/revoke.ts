/**
 * Revocation of inventory certificates through their CA connection (DESIGN.md §9), one certificate at a time: a
 * backend that cannot revoke, or refuses, is reported for that certificate and the batch goes on.
 */
import type { CaConnection } from '../ca/connection.ts';
import { crlPublications, publishCrlNow, type CrlDependencies } from './crl.ts';
import type { StepContext } from '../ca/types.ts';
import { describeError } from '../errors.ts';
import type { CrlReason } from '../pki/crl-reason.ts';
import { auditFields } from '../provisioning/inventory.ts';
import type { CertificateRecord } from '../store/inventory.ts';
import type { ProcessStore } from '../store/types.ts';

export type RevocationOutcome =
  | 'revoked' // the CA revoked it
  | 'listed' // on the connection's CRL (self-run CA)
  | 'pending_approval' // held by the CA for an administrator's approval
  | 'already_revoked'
  | 'unsupported' // the backend cannot revoke
  | 'no_connection' // the connection is no longer configured
  | 'failed';

export interface RevocationReport {
  readonly caConnection: string;
  readonly serial: string;
  readonly outcome: RevocationOutcome;
  readonly detail?: string;
}

export interface RevokeDependencies {
  readonly store: ProcessStore;
  readonly cas: ReadonlyMap<string, CaConnection>;
  readonly ctx: StepContext;
  readonly now: () => number;
}

export async function revokeCertificates(
  deps: RevokeDependencies,
  certificates: readonly CertificateRecord[],
  reason: CrlReason,
  comment: string,
): Promise<RevocationReport[]> {
  const reports: RevocationReport[] = [];
  for (const certificate of certificates) {
    reports.push(await revokeOne(deps, certificate, reason, comment));
  }
  return reports;
}

async function revokeOne(
  deps: RevokeDependencies,
  certificate: CertificateRecord,
  reason: CrlReason,
  comment: string,
): Promise<RevocationReport> {
  const base = { caConnection: certificate.caConnection, serial: certificate.serial };
  if (certificate.status === 'revoked') return { ...base, outcome: 'already_revoked' };
  const connection = deps.cas.get(certificate.caConnection);
  if (connection === undefined) return { ...base, outcome: 'no_connection', detail: 'connection not configured' };
  const revocation = connection.abilities.revocation;
  if (revocation === undefined) {
    return {
      ...base,
      outcome: 'unsupported',
      detail: `a ${connection.type} connection cannot revoke through the adapter`,
    };
  }
  let result;
  try {
    result = await revocation.revoke(
      {
        serial: certificate.serial,
        certificatePem: certificate.certificatePem,
        ...(certificate.caRef === undefined ? {} : { ref: certificate.caRef }),
        reason,
        comment,
      },
      deps.ctx,
    );
  } catch (error) {
    return { ...base, outcome: 'failed', detail: describeError(error) };
  }
  const at = deps.now();
  const state = result.status === 'pending_approval' ? 'pending_approval' : 'revoked';
  const requestId = result.status === 'pending_approval' ? result.requestId : undefined;
  await deps.store.setRevocation(certificate.caConnection, certificate.serial, {
    state,
    at,
    reason,
    ...(requestId === undefined ? {} : { requestId }),
  });
  deps.ctx.log.info(
    {
      ...auditFields(state === 'revoked' ? 'certificate_revoked' : 'revocation_requested', certificate),
      reason,
      outcome: result.status,
      ...(requestId === undefined ? {} : { requestId }),
    },
    state === 'revoked' ? 'audit: certificate revoked' : 'audit: revocation requested',
  );
  return { ...base, outcome: result.status };
}

export interface CrlAfterRevocation {
  readonly caConnection: string;
  /** The new CRL's number, or why none was signed. */
  readonly crlNumber?: number;
  readonly error?: string;
}

/**
 * Signs a new CRL for every connection that listed a certificate in `reports` and publishes one (a `crl` block):
 * the revocation reaches relying parties with the next fetch. When that signing fails, the revocation stays recorded
 * and a running replica's next check (src/lifecycle/crl.ts `due`) signs a CRL listing it.
 */
export async function publishCrlsAfter(
  reports: readonly RevocationReport[],
  cas: ReadonlyMap<string, CaConnection>,
  deps: CrlDependencies,
): Promise<CrlAfterRevocation[]> {
  const listed = new Set(reports.filter((r) => r.outcome === 'listed').map((r) => r.caConnection));
  const publications = crlPublications([...cas.values()].filter((c) => listed.has(c.name)));
  const results: CrlAfterRevocation[] = [];
  for (const publication of publications) {
    try {
      const outcome = await publishCrlNow(deps, publication);
      results.push(
        outcome.status === 'published'
          ? { caConnection: publication.connection, crlNumber: outcome.crl.crlNumber }
          : { caConnection: publication.connection, error: `not signed (${outcome.status})` },
      );
    } catch (error) {
      results.push({ caConnection: publication.connection, error: describeError(error) });
    }
  }
  return results;
}
