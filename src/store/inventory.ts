/**
 * The certificate inventory (DESIGN.md §9): every certificate the adapter issued is a durable record, so an admin
 * can answer "which devices hold a certificate from us, and until when?", look one process up, and revoke. Records
 * are written by the workflow at upload time (src/provisioning/inventory.ts) through {@link InventoryStore}, which
 * every ProcessStore implements and the store contract suite checks.
 *
 * A newer certificate for the same holder (device, or user) and profile supersedes the earlier active ones. To find
 * the certificate a renewal replaces — e.g. to link a DigiCert renewal to its predecessor — ask
 * `findCertificates({ holder: holderKeyOf(holder), profile, status: 'active' })` before the new one is recorded, or
 * read `supersededBy` on the older record afterwards.
 *
 * The inventory holds the clear identity (directory ids, device serial, user email) because lookups need it; logs
 * and metrics only ever carry it hashed (DESIGN.md §5).
 */
import type { PendingRef } from '../ca/pending-ref.ts';
import type { CrlReason } from '../pki/crl-reason.ts';

export type CertificateStatus = 'active' | 'superseded' | 'revoked';
export const CERTIFICATE_STATUSES: readonly CertificateStatus[] = ['active', 'superseded', 'revoked'];

/** Who a certificate was issued to, from the Chrome process (a user session may also name its device). */
export interface CertificateHolder {
  readonly device?: { readonly directoryId?: string; readonly serialNumber?: string };
  readonly user?: { readonly directoryId?: string; readonly email?: string };
}

/** Where a revocation stands. `pending_approval`: the CA (DigiCert) holds the request until an admin approves it. */
export interface Revocation {
  readonly state: 'revoked' | 'pending_approval';
  /** Epoch ms when the revocation was requested (and, for `revoked`, took effect). */
  readonly at: number;
  readonly reason: CrlReason;
  /** The CA's request id, when it gives one. */
  readonly requestId?: string;
}

/** What the workflow knows about a certificate it just issued. */
export interface NewCertificate {
  readonly caConnection: string;
  /** Serial number, lowercase hex without leading zero octets. */
  readonly serial: string;
  /** Issuer DN, for display (`CN=…, O=…`). */
  readonly issuer: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex. */
  readonly spkiSha256: string;
  readonly profile: string;
  readonly processId: string;
  readonly correlationId: string;
  readonly customer: string;
  readonly holder: CertificateHolder;
  /** The leaf, PEM (revocation at some CAs and audits need the certificate itself). */
  readonly certificatePem: string;
  /** The CA's reference for the request that produced it (DigiCert order/certificate ids). */
  readonly caRef?: PendingRef;
  /** Epoch ms when it was recorded. */
  readonly issuedAt: number;
}

export interface CertificateRecord extends NewCertificate {
  /** `device:<id>` or `user:<id>`: certificates of one holder and profile supersede each other. */
  readonly holderKey: string;
  readonly status: CertificateStatus;
  /** Epoch ms of the last status change (issuance for `active`). */
  readonly statusChangedAt: number;
  /** The serial of the certificate that superseded this one. */
  readonly supersededBy?: string;
  readonly revocation?: Revocation;
}

/** Filters of `certprov certs list`; all given filters must match. Results come earliest `notAfter` first. */
export interface CertificateQuery {
  readonly caConnection?: string;
  readonly profile?: string;
  readonly status?: CertificateStatus;
  /** A device directory id or serial number. */
  readonly device?: string;
  /** A user directory id or email (case-insensitive). */
  readonly user?: string;
  /** A holder key ({@link holderKeyOf}). */
  readonly holder?: string;
  /** Only certificates with notAfter < this (epoch ms): "expiring within". */
  readonly notAfterBefore?: number;
  /** Only certificates with notAfter ≥ this (epoch ms): "not yet expired". */
  readonly notAfterFrom?: number;
  /** At most this many. Default: all. */
  readonly limit?: number;
}

export interface RecordCertificateResult {
  readonly created: boolean;
  readonly record: CertificateRecord;
  /** Earlier active certificates of the same holder and profile this one superseded (now `superseded`). */
  readonly superseded: readonly CertificateRecord[];
}

/**
 * The current CRL of a self-run CA connection (src/lifecycle/crl.ts): signed by one replica under a named lease,
 * served by every replica from the store.
 */
export interface StoredCrl {
  readonly caConnection: string;
  /** cRLNumber; each stored CRL's is higher than the one it replaces. */
  readonly crlNumber: number;
  /** Epoch ms (whole seconds, as in the CRL). */
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  /** Revoked certificates listed. */
  readonly entries: number;
  /** The signed CRL, DER. */
  readonly der: Uint8Array;
  /**
   * The connection's {@link InventoryStore.revocationCount} read before this CRL's entries were: every revocation
   * counted up to it is listed (if unexpired), and a higher count now means a revocation this CRL misses. 0 for a CRL
   * stored before the count existed.
   */
  readonly revocationsListed: number;
}

/** The inventory part of the store contract (test/contract/store-contract.ts). */
export interface InventoryStore {
  /**
   * Records a certificate (create-if-absent by connection and serial; a repeat returns the stored record) and marks
   * every earlier active certificate of the same holder and profile `superseded`. A certificate older than an
   * active one already recorded is itself stored as `superseded`.
   */
  recordCertificate(certificate: NewCertificate): Promise<RecordCertificateResult>;
  getCertificate(caConnection: string, serial: string): Promise<CertificateRecord | undefined>;
  findCertificates(query: CertificateQuery): Promise<CertificateRecord[]>;
  /**
   * How many certificates match `query` (its `limit` ignored). Firestore answers with a count aggregation (one read
   * per 1,000 index entries) when the query is served by one index, which `--connection` + status + expiry is.
   */
  countCertificates(query: CertificateQuery): Promise<number>;
  /**
   * Records a revocation: `revoked` makes the status `revoked` (final; a second revocation keeps the first's time
   * and reason), `pending_approval` only records the request. Undefined when no such certificate is recorded.
   * A certificate that becomes `revoked` also adds one to its connection's {@link revocationCount}, in the same write.
   */
  setRevocation(caConnection: string, serial: string, revocation: Revocation): Promise<CertificateRecord | undefined>;
  /**
   * How many certificates of the connection `setRevocation` has made `revoked` (0 before the first): a CRL whose
   * `revocationsListed` is lower misses a revocation (src/lifecycle/crl.ts). One small read in every store.
   */
  revocationCount(caConnection: string): Promise<number>;
  getCrl(caConnection: string): Promise<StoredCrl | undefined>;
  /**
   * Stores `crl` as the connection's current CRL when its number is higher than the stored one's (compare-and-set:
   * a replica that lost its lease cannot put an older CRL back). False, and nothing written, otherwise.
   */
  putCrl(crl: StoredCrl): Promise<boolean>;
}

/** The key under which certificates supersede each other: the user for user sessions, else the device. */
export function holderKeyOf(holder: CertificateHolder): string {
  const user = holder.user?.directoryId ?? holder.user?.email?.toLowerCase();
  if (user !== undefined) return `user:${user}`;
  const device = holder.device?.directoryId ?? holder.device?.serialNumber;
  if (device !== undefined) return `device:${device}`;
  return 'unknown:';
}

/**
 * Lookup tokens of a holder: a device by directory id or serial number, a user by directory id or email. Stored as
 * an array (Firestore `array-contains`), so one index serves `--device X` and `--user X` whichever id X is.
 */
export function identityKeysOf(holder: CertificateHolder): string[] {
  const keys = new Set<string>();
  if (holder.device?.directoryId !== undefined) keys.add(deviceKey(holder.device.directoryId));
  if (holder.device?.serialNumber !== undefined) keys.add(deviceKey(holder.device.serialNumber));
  if (holder.user?.directoryId !== undefined) keys.add(userKey(holder.user.directoryId));
  if (holder.user?.email !== undefined) keys.add(userKey(holder.user.email));
  return [...keys];
}

export function deviceKey(id: string): string {
  return `device:${id}`;
}

export function userKey(id: string): string {
  return `user:${id.trim().toLowerCase()}`;
}

/** The stored record for a new certificate, before superseding is decided. */
export function newCertificateRecord(certificate: NewCertificate): CertificateRecord {
  return {
    ...certificate,
    holderKey: holderKeyOf(certificate.holder),
    status: 'active',
    statusChangedAt: certificate.issuedAt,
  };
}

/** Whether `record` matches every filter of `query` (the memory store's query, and post-filtering elsewhere). */
export function matchesQuery(record: CertificateRecord, query: CertificateQuery): boolean {
  if (query.caConnection !== undefined && record.caConnection !== query.caConnection) return false;
  if (query.profile !== undefined && record.profile !== query.profile) return false;
  if (query.status !== undefined && record.status !== query.status) return false;
  if (query.holder !== undefined && record.holderKey !== query.holder) return false;
  if (query.notAfterBefore !== undefined && !(record.notAfter < query.notAfterBefore)) return false;
  if (query.notAfterFrom !== undefined && !(record.notAfter >= query.notAfterFrom)) return false;
  const keys = identityKeysOf(record.holder);
  if (query.device !== undefined && !keys.includes(deviceKey(query.device))) return false;
  if (query.user !== undefined && !keys.includes(userKey(query.user))) return false;
  return true;
}

/** Earliest notAfter first; ties by serial, so pages are stable. */
export function compareByExpiry(a: CertificateRecord, b: CertificateRecord): number {
  return a.notAfter - b.notAfter || (a.serial < b.serial ? -1 : a.serial > b.serial ? 1 : 0);
}

/** Whether `newer` replaces `older` (same holder and profile, issued later). */
export function supersedes(newer: NewCertificate, older: CertificateRecord): boolean {
  if (newer.serial === older.serial && newer.caConnection === older.caConnection) return false;
  return newer.notBefore > older.notBefore || (newer.notBefore === older.notBefore && newer.issuedAt > older.issuedAt);
}

/** The revocation to store given the current one: an effective revocation is final. */
export function nextRevocation(current: Revocation | undefined, requested: Revocation): Revocation {
  return current?.state === 'revoked' ? current : requested;
}

/**
 * Records `certificate` against the active certificates of its holder and profile (memory and sqlite stores): the
 * earlier ones become `superseded` by it; when one of them is newer (out-of-order writes), the new record itself is
 * stored as superseded. Returns the new record and the replaced ones, all frozen.
 */
export function supersede(
  certificate: NewCertificate,
  activeOfHolder: readonly CertificateRecord[],
): { record: CertificateRecord; superseded: CertificateRecord[] } {
  let record = newCertificateRecord(certificate);
  const superseded: CertificateRecord[] = [];
  for (const other of activeOfHolder) {
    if (other.holderKey !== record.holderKey || other.profile !== record.profile || other.status !== 'active') continue;
    if (supersedes(certificate, other)) {
      superseded.push(
        Object.freeze({
          ...other,
          status: 'superseded',
          statusChangedAt: certificate.issuedAt,
          supersededBy: certificate.serial,
        }),
      );
    } else {
      record = { ...record, status: 'superseded', supersededBy: other.serial };
    }
  }
  return { record: Object.freeze(record), superseded };
}

/** The record after a revocation request; undefined when nothing changes (an effective revocation is final). */
export function revokedRecord(current: CertificateRecord, revocation: Revocation): CertificateRecord | undefined {
  if (current.revocation?.state === 'revoked') return undefined;
  const next = nextRevocation(current.revocation, revocation);
  return Object.freeze({
    ...current,
    revocation: next,
    ...(next.state === 'revoked' ? { status: 'revoked' as const, statusChangedAt: next.at } : {}),
  });
}
