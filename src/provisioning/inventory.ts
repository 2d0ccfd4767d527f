/**
 * The workflow's side of the certificate inventory (DESIGN.md §9): at upload time every issued leaf becomes a
 * durable record (src/store/inventory.ts), earlier certificates of the same holder and profile become
 * `superseded`, and one audit line is logged.
 *
 * Audit lines carry the fixed field `audit` (`certificate_issued`, `certificate_revoked`, …): an operator routes
 * them with a Cloud Logging sink on `jsonPayload.audit:*`. They hold the serial, the CA connection, the CA key id
 * (the authority key identifier: it names the CA key, and so the Key Vault key version, that signed), profile,
 * process and correlation ids, and the holder's identity hashed; the inventory holds the clear identity.
 */
import { createHash } from 'node:crypto';
import type { CertificateProvisioningProcess } from '../chrome/types.ts';
import type { Logger } from '../observability/logger.ts';
import { hashPersonal } from '../observability/logger.ts';
import { certificateSummary } from '../pki/certificate.ts';
import { toHex } from '../pki/der.ts';
import type { CertificateHolder, CertificateRecord, NewCertificate } from '../store/inventory.ts';
import type { ProcessRecord, ProcessStore } from '../store/types.ts';

/** The value of the `audit` field, one per kind of event. */
export type AuditEvent =
  'certificate_issued' | 'certificate_superseded' | 'certificate_revoked' | 'revocation_requested';

/** Who a process's certificate is for, from the resource: the user session's user (and device), or the device. */
export function holderOf(process: CertificateProvisioningProcess): CertificateHolder {
  const user = process.chromeOsUserSession;
  const device = process.chromeOsDevice ?? user?.chromeOsDevice;
  const clean = <T extends object>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === 'string' && v !== '')) as Partial<T>;
  const d =
    device === undefined ? {} : clean({ directoryId: device.deviceDirectoryApiId, serialNumber: device.serialNumber });
  const u = user === undefined ? {} : clean({ directoryId: user.userDirectoryApiId, email: user.userPrimaryEmail });
  return {
    ...(Object.keys(d).length === 0 ? {} : { device: d }),
    ...(Object.keys(u).length === 0 ? {} : { user: u }),
  };
}

/** The holder's identity for a log line: hashed, never clear (DESIGN.md §5). */
export function hashedHolder(holder: CertificateHolder): Record<string, string | undefined> {
  return {
    user: hashPersonal(holder.user?.email ?? holder.user?.directoryId),
    device: hashPersonal(holder.device?.serialNumber ?? holder.device?.directoryId),
  };
}

/** The fields every audit line about one certificate carries. */
export function auditFields(event: AuditEvent, certificate: CertificateRecord | NewCertificate, caKeyId?: string) {
  return {
    audit: event,
    serial: certificate.serial,
    caConnection: certificate.caConnection,
    ...(caKeyId === undefined ? {} : { caKeyId }),
    profile: certificate.profile,
    processId: certificate.processId,
    correlationId: certificate.correlationId,
    ...hashedHolder(certificate.holder),
  };
}

/** The inventory entry for the leaf a process is about to upload. */
export function newCertificateOf(record: ProcessRecord, certificatePem: string, now: number) {
  const leaf = certificateSummary(certificatePem);
  const certificate: NewCertificate = {
    caConnection: record.caConnection ?? '',
    serial: leaf.serialHex,
    issuer: leaf.issuer,
    notBefore: leaf.notBefore.getTime(),
    notAfter: leaf.notAfter.getTime(),
    spkiSha256: createHash('sha256').update(leaf.spkiDer).digest('hex'),
    profile: record.profile ?? record.rendered?.name ?? '',
    processId: record.processId,
    correlationId: record.correlationId,
    customer: record.customer,
    holder: record.holder ?? {},
    certificatePem,
    ...(record.pendingRef === undefined ? {} : { caRef: record.pendingRef }),
    issuedAt: now,
  };
  // The authority key identifier names the CA key (for Key Vault: one key version).
  const caKeyId = leaf.authorityKeyIdentifier === undefined ? undefined : toHex(leaf.authorityKeyIdentifier);
  return { certificate, caKeyId };
}

/**
 * Records the leaf in the inventory before it is uploaded (a crash between the two leaves a record of a
 * certificate that exists; the reverse would lose one) and logs the audit lines. Idempotent: a resumed upload
 * finds the record and logs nothing new. Costs one write, plus one per superseded certificate.
 */
export async function recordIssued(
  store: ProcessStore,
  record: ProcessRecord,
  certificatePem: string,
  now: number,
  log: Logger,
): Promise<void> {
  const { certificate, caKeyId } = newCertificateOf(record, certificatePem, now);
  const result = await store.recordCertificate(certificate);
  if (!result.created) return;
  log.info(
    {
      ...auditFields('certificate_issued', certificate, caKeyId),
      notBefore: new Date(certificate.notBefore).toISOString(),
      notAfter: new Date(certificate.notAfter).toISOString(),
      ...(result.record.status === 'superseded' ? { status: 'superseded' } : {}),
    },
    'audit: certificate issued',
  );
  for (const older of result.superseded) {
    log.info(
      { ...auditFields('certificate_superseded', older), supersededBy: certificate.serial },
      'audit: certificate superseded',
    );
  }
}
