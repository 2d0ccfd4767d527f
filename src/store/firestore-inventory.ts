/**
 * How a {@link CertificateRecord} is laid out in Firestore, and which index serves each inventory query (README /
 * docs "Firestore setup" lists the same indexes). Collection `<collection>-certificates`, one document per
 * certificate, id derived from connection and serial.
 *
 * Fields: every CertificateRecord field under its own name (epoch ms as integers; `holder`, `revocation`, `caRef` as
 * maps), plus `identityKeys` (array: `device:<id>`, `device:<serial>`, `user:<id>`, `user:<email>`) so that one
 * `array-contains` serves `--device X` / `--user X` whichever id X is.
 *
 * Query plan — one index-served query, the remaining filters applied to its (small) result:
 * - holder + profile + status == active (superseding): composite (holderKey, profile, status);
 * - `--device`/`--user`: composite (identityKeys array-contains, notAfter) — a holder has a handful of certificates;
 * - else `--connection` [+ `--status`] [+ expiring]: composite (caConnection, status, notAfter) or (caConnection,
 *   notAfter);
 * - else `--profile` [+ `--status`]: composite (profile, status, notAfter) or (profile, notAfter);
 * - else `--status`: composite (status, notAfter); no filter: the automatic single-field index on notAfter.
 */
import { createHash } from 'node:crypto';
import type { DocumentData, Query } from '@google-cloud/firestore';
import type { PendingRef } from '../ca/types.ts';
import { isCrlReason } from '../pki/crl-reason.ts';
import {
  CERTIFICATE_STATUSES,
  deviceKey,
  identityKeysOf,
  userKey,
  type CertificateHolder,
  type CertificateQuery,
  type CertificateRecord,
  type CertificateStatus,
  type Revocation,
} from './inventory.ts';

export const CERTIFICATE_FIELDS = {
  caConnection: 'caConnection',
  profile: 'profile',
  status: 'status',
  holderKey: 'holderKey',
  identityKeys: 'identityKeys',
  notAfter: 'notAfter',
} as const;

export function certificateDocumentId(caConnection: string, serial: string): string {
  const safe = `${caConnection}_${serial}`.replace(/[^A-Za-z0-9_\-.]/g, '_').slice(0, 200);
  return `${safe}_${createHash('sha256').update(`${caConnection}\u0000${serial}`).digest('hex').slice(0, 12)}`;
}

export function certificateDocument(record: CertificateRecord): DocumentData {
  return { ...record, [CERTIFICATE_FIELDS.identityKeys]: identityKeysOf(record.holder) };
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function map(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function holderOf(value: unknown): CertificateHolder {
  const m = map(value) ?? {};
  const device = map(m.device);
  const user = map(m.user);
  const clean = (o: Record<string, unknown> | undefined) =>
    o === undefined
      ? undefined
      : Object.fromEntries(
          Object.entries(o).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
        );
  const d = clean(device);
  const u = clean(user);
  return { ...(d === undefined ? {} : { device: d }), ...(u === undefined ? {} : { user: u }) };
}

function revocationOf(value: unknown): Revocation | undefined {
  const m = map(value);
  const state = str(m?.state);
  const reason = str(m?.reason);
  const at = num(m?.at);
  if ((state !== 'revoked' && state !== 'pending_approval') || reason === undefined || !isCrlReason(reason)) {
    return undefined;
  }
  if (at === undefined) return undefined;
  const requestId = str(m?.requestId);
  return { state, at, reason, ...(requestId === undefined ? {} : { requestId }) };
}

/** A stored document back into a record; undefined when it is not a certificate record. */
export function parseCertificateDocument(data: DocumentData | undefined): CertificateRecord | undefined {
  if (data === undefined) return undefined;
  const caConnection = str(data.caConnection);
  const serial = str(data.serial);
  const status = str(data.status) as CertificateStatus | undefined;
  if (caConnection === undefined || serial === undefined || status === undefined) return undefined;
  if (!CERTIFICATE_STATUSES.includes(status)) return undefined;
  const revocation = revocationOf(data.revocation);
  const caRef = map(data.caRef) as PendingRef | undefined;
  const supersededBy = str(data.supersededBy);
  return Object.freeze({
    caConnection,
    serial,
    issuer: str(data.issuer) ?? '',
    notBefore: num(data.notBefore) ?? 0,
    notAfter: num(data.notAfter) ?? 0,
    spkiSha256: str(data.spkiSha256) ?? '',
    profile: str(data.profile) ?? '',
    processId: str(data.processId) ?? '',
    correlationId: str(data.correlationId) ?? '',
    customer: str(data.customer) ?? '',
    holder: holderOf(data.holder),
    certificatePem: str(data.certificatePem) ?? '',
    issuedAt: num(data.issuedAt) ?? 0,
    holderKey: str(data.holderKey) ?? '',
    status,
    statusChangedAt: num(data.statusChangedAt) ?? 0,
    ...(caRef === undefined ? {} : { caRef }),
    ...(supersededBy === undefined ? {} : { supersededBy }),
    ...(revocation === undefined ? {} : { revocation }),
  });
}

/**
 * The one index-served Firestore query for `query` (see the plan above). The caller applies {@link matchesQuery}
 * to the result for the filters the query did not express, and the limit after that.
 */
export function planCertificateQuery(collection: Query, query: CertificateQuery): Query {
  const F = CERTIFICATE_FIELDS;
  let q: Query;
  if (query.holder !== undefined) {
    q = collection.where(F.holderKey, '==', query.holder);
    if (query.profile !== undefined) q = q.where(F.profile, '==', query.profile);
    if (query.status !== undefined) q = q.where(F.status, '==', query.status);
    return q; // equality only: a holder has a handful of certificates
  }
  if (query.device !== undefined || query.user !== undefined) {
    const key = query.device !== undefined ? deviceKey(query.device) : userKey(query.user as string);
    q = collection.where(F.identityKeys, 'array-contains', key);
  } else if (query.caConnection !== undefined) {
    q = collection.where(F.caConnection, '==', query.caConnection);
    if (query.status !== undefined) q = q.where(F.status, '==', query.status);
  } else if (query.profile !== undefined) {
    q = collection.where(F.profile, '==', query.profile);
    if (query.status !== undefined) q = q.where(F.status, '==', query.status);
  } else {
    q = query.status === undefined ? collection : collection.where(F.status, '==', query.status);
  }
  if (query.notAfterBefore !== undefined) q = q.where(F.notAfter, '<', query.notAfterBefore);
  if (query.notAfterFrom !== undefined) q = q.where(F.notAfter, '>=', query.notAfterFrom);
  return q.orderBy(F.notAfter);
}

/** Whether the planned query already expresses every filter (then the limit can go to Firestore). */
export function queryIsExact(query: CertificateQuery): boolean {
  if (query.holder !== undefined) {
    return (
      query.device === undefined &&
      query.user === undefined &&
      query.caConnection === undefined &&
      query.notAfterBefore === undefined &&
      query.notAfterFrom === undefined
    );
  }
  if (query.device !== undefined || query.user !== undefined) {
    return (
      query.caConnection === undefined &&
      query.profile === undefined &&
      query.status === undefined &&
      !(query.device !== undefined && query.user !== undefined)
    );
  }
  if (query.caConnection !== undefined) return query.profile === undefined;
  return true;
}
