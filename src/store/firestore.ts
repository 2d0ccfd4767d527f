/**
 * Process state in Google Cloud Firestore (native mode), for several replicas (DESIGN.md §5,
 * docs/several-replicas.md). One document per process in `collection`; named leases and shared rate budgets in
 * `<collection>-coordination`. The layout is in firestore-document.ts.
 *
 * Consistency: every write that depends on what is stored is a compare-and-set — a `lastUpdateTime` precondition on
 * the document as it was read (optimistic, one round trip, no transaction locks held across replicas). Creation is
 * create-if-absent (`create()`, ALREADY_EXISTS → read the existing record). When a precondition fails, the document
 * is read again and the decision made again on what is stored now. This store remembers the update time of the
 * documents it is about to write again (leased, due, or just written: firestore-remembered.ts), so the usual
 * scan → lease → update → update → release sequence of one replica costs one round trip per write; a decision *not*
 * to write (lease held elsewhere, lease lost) is always confirmed on a fresh read. A waiting process is not remembered:
 * the due scan that finds it next brings a fresh snapshot.
 *
 * Leases are judged on this replica's wall clock (`expiresAt` is epoch ms written by the holder); replica clocks
 * on GKE agree to milliseconds (NTP), far inside the engine's lease margin. A late write — a call that timed out
 * here but reached Firestore after all — cannot clobber newer state, because it carries the precondition of the
 * state it was decided on.
 *
 * A write that timed out may still land: each write of a process record carries a fresh write id, and after a
 * timeout the store reads the record again — finding its own id, it answers as if the write had (WRITE_ID below).
 *
 * Failures: every call is bounded by `requestTimeoutMs` (the client's own retries can run for a minute); an
 * unreachable or refusing Firestore surfaces as a DeploymentFaultError of component `store`, which the engine
 * reports, never charges to a process, and retries (DESIGN.md §5).
 */
import { randomBytes } from 'node:crypto';
import {
  FieldValue,
  Firestore,
  type CollectionReference,
  type DocumentData,
  type DocumentSnapshot,
  type Query,
  type QuerySnapshot,
  type Settings,
  type Timestamp,
} from '@google-cloud/firestore';
import type { PendingRef } from '../ca/types.ts';
import { RetryableError } from '../errors.ts';
import {
  FIELDS,
  IncompatibleRecordError,
  KNOWN_STEPS,
  changeDocument,
  coordinationDocumentId,
  documentIdFor,
  newDocument,
  parseDocument,
  type RecordChange,
} from './firestore-document.ts';
import {
  isAlreadyExists,
  isDeadlineExceeded,
  isNotFound,
  isPreconditionFailure,
  storeFault,
} from './firestore-errors.ts';
import {
  certificateDocument,
  certificateDocumentId,
  parseCertificateDocument,
  planCertificateQuery,
  queryIsExact,
} from './firestore-inventory.ts';
import {
  compareByExpiry,
  matchesQuery,
  newCertificateRecord,
  nextRevocation,
  supersedes,
  type CertificateQuery,
  type CertificateRecord,
  type NewCertificate,
  type RecordCertificateResult,
  type Revocation,
  type StoredCrl,
} from './inventory.ts';
import { BatchedRateBudget, type Reservation, type ReserveDecision } from './rate-reservations.ts';
import {
  ACTIVE_STEPS,
  CONTINUING_STEPS,
  LeaseLostError,
  StoreBusyError,
  type FindDueOptions,
  type NewProcess,
  type ProcessPatch,
  type ProcessRecord,
  type ProcessStore,
  type RateWindow,
  type Step,
  type UpdateOptions,
} from './types.ts';
import { byDueAt, duePage } from './due-page.ts';
import { REMEMBERED_LIMITS, RememberedRecords } from './firestore-remembered.ts';
import { holdsLease, leaseAfterUpdate, leasedByOther, mayReschedule } from './lease.ts';

const DEFAULTS = {
  databaseId: '(default)',
  collection: 'certprov-processes',
  finishedRetentionMs: 7 * 24 * 3_600_000,
  requestTimeoutMs: 10_000,
  tokenHoldMs: 1_000,
  /** Compare-and-set rounds before giving up on a contended document (each round re-reads it). */
  casAttempts: 8,
  /** CRL bytes per chunk document (a document holds at most 1 MiB). */
  crlChunkBytes: 900_000,
} as const;

export interface FirestoreStoreOptions {
  /** Google Cloud project. Default: from the environment (GOOGLE_CLOUD_PROJECT, the metadata server). */
  readonly projectId?: string;
  /** Firestore database id. Default `(default)`. */
  readonly databaseId?: string;
  /** Collection of process records. Default `certprov-processes`; coordination documents go to `<collection>-coordination`. */
  readonly collection?: string;
  /** How long finished records are kept: `expireAt` = done + this (the TTL policy deletes them after). Default 7 d. */
  readonly finishedRetentionMs?: number;
  /** Bound on every Firestore call. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** How long a reserved batch of rate tokens may be used (rate-reservations.ts). Default 1 s. */
  readonly tokenHoldMs?: number;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /**
   * Records neither leased nor due whose snapshot is kept for a write that may follow (firestore-remembered.ts),
   * the latest first. Default 1,024.
   */
  readonly rememberRecent?: number;
  /**
   * Extra client settings (tests). `FIRESTORE_EMULATOR_HOST` is honoured by the client itself; credentials come
   * from Application Default Credentials (Workload Identity on GKE).
   */
  readonly settings?: Settings;
}

interface Snapshot {
  readonly record: ProcessRecord | undefined;
  /** Update time of the document as read; undefined when it does not exist. */
  readonly updateTime: Timestamp | undefined;
  /** Read from Firestore in this call (as opposed to remembered from an earlier write or query). */
  readonly fresh: boolean;
  /** The write id of the last write (WRITE_ID), when read fresh. */
  readonly writeId?: string;
}

/**
 * Every write of a process record carries a fresh random id in this field. A write whose answer did not come in time
 * may still have been applied: the store then reads the record again and, finding its own id, knows the write landed
 * and returns as if it had answered, instead of deciding (and failing) again on its own write's result.
 */
const WRITE_ID = 'writeId';

/** Redos of a write that timed out (each one a read, and a write if the first did not land). */
const TIMED_OUT_WRITE_REDOS = 1;

const newWriteId = (): string => randomBytes(9).toString('base64url');

/** What a compare-and-set decides from the stored record: write a change, or answer without writing. */
type Decision<T> =
  { readonly write: RecordChange; readonly result: (stored: ProcessRecord) => T } | { readonly answer: T };

export class FirestoreProcessStore implements ProcessStore {
  readonly kind = 'firestore' as const;
  readonly durable = true;
  /** A quarter of the request timeout: a call that slow tells the scheduler to press less (provisioning/store-load.ts). */
  readonly slowCallMs: number;

  private readonly db: Firestore;
  private readonly processes: CollectionReference;
  private readonly coordination: CollectionReference;
  private readonly certificates: CollectionReference;
  private readonly crls: CollectionReference;
  private readonly where: string;
  private readonly now: () => number;
  private readonly finishedRetentionMs: number;
  private readonly requestTimeoutMs: number;
  private readonly remembered: RememberedRecords<Timestamp>;
  private readonly budget: BatchedRateBudget;
  private closed: Promise<void> | undefined;

  constructor(options: FirestoreStoreOptions = {}) {
    const databaseId = options.databaseId ?? DEFAULTS.databaseId;
    const collection = options.collection ?? DEFAULTS.collection;
    const emulator = process.env.FIRESTORE_EMULATOR_HOST !== undefined || options.settings?.host !== undefined;
    this.db = new Firestore({
      ...(options.projectId === undefined ? {} : { projectId: options.projectId }),
      databaseId,
      ignoreUndefinedProperties: true,
      // Against the emulator, name the universe so google-gax does not probe for a GCE metadata server.
      ...(emulator ? { universeDomain: 'googleapis.com' } : {}),
      ...options.settings,
    });
    this.processes = this.db.collection(collection);
    this.coordination = this.db.collection(`${collection}-coordination`);
    this.certificates = this.db.collection(`${collection}-certificates`);
    this.crls = this.db.collection(`${collection}-crls`);
    this.where = `${options.projectId ?? '(project from environment)'}/${databaseId}/${collection}`;
    this.now = options.now ?? Date.now;
    this.finishedRetentionMs = options.finishedRetentionMs ?? DEFAULTS.finishedRetentionMs;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.slowCallMs = this.requestTimeoutMs / 4;
    this.remembered = new RememberedRecords({
      ...REMEMBERED_LIMITS,
      ...(options.rememberRecent === undefined ? {} : { recent: options.rememberRecent }),
    });
    this.budget = new BatchedRateBudget(
      { reserve: (bucket, decide) => this.reserveTokens(bucket, decide) },
      options.tokenHoldMs ?? DEFAULTS.tokenHoldMs,
      this.now,
    );
  }

  // --- process records ----------------------------------------------------------------------------------------

  async create(init: NewProcess): Promise<{ created: boolean; record: ProcessRecord }> {
    const ref = this.processes.doc(documentIdFor(init.processId));
    // Two rounds: the existing record may be deleted by the TTL policy between the failed create and the read.
    const writeIds = new Set<string>();
    for (let round = 0; round < 2 + TIMED_OUT_WRITE_REDOS; round += 1) {
      const writeId = newWriteId();
      const document = { ...newDocument(init, this.now()), [WRITE_ID]: writeId };
      try {
        await this.call('create the process record', () => ref.create(document));
        return { created: true, record: parseDocument(document) as ProcessRecord };
      } catch (error) {
        // A create that timed out may have been applied: the read below tells by the write id.
        const timedOut = isDeadlineExceeded(error) && writeIds.size < TIMED_OUT_WRITE_REDOS;
        if (!isAlreadyExists(error) && !timedOut) throw storeFault(error, 'create the process record', this.where);
        if (timedOut) writeIds.add(writeId);
      }
      const existing = await this.read(init.processId);
      if (existing.record !== undefined) {
        return { created: existing.writeId !== undefined && writeIds.has(existing.writeId), record: existing.record };
      }
    }
    throw new RetryableError(`process record ${init.processId} exists and vanishes at the same time; try again`);
  }

  async get(processId: string): Promise<ProcessRecord | undefined> {
    return (await this.read(processId)).record;
  }

  async findByCorrelationId(correlationId: string): Promise<ProcessRecord | undefined> {
    // Served by the automatic single-field index on correlationId.
    const query = this.processes.where('correlationId', '==', correlationId).limit(1);
    const snapshot = await this.guard('query a process by correlation id', () => query.get());
    const document = snapshot.docs[0];
    return document === undefined ? undefined : this.parseQuietly(document);
  }

  // --- inventory ---------------------------------------------------------------------------------------------

  async recordCertificate(certificate: NewCertificate): Promise<RecordCertificateResult> {
    const ref = this.certificates.doc(certificateDocumentId(certificate.caConnection, certificate.serial));
    // Earlier active certificates of the holder and profile: composite index (holderKey, profile, status).
    let record = newCertificateRecord(certificate);
    const active = await this.findCertificates({
      holder: record.holderKey,
      profile: certificate.profile,
      status: 'active',
    });
    const newer = active.find((other) => other.serial !== certificate.serial && !supersedes(certificate, other));
    if (newer !== undefined) record = { ...record, status: 'superseded', supersededBy: newer.serial };
    try {
      await this.call('record a certificate', () => ref.create(certificateDocument(record)));
    } catch (error) {
      if (!isAlreadyExists(error)) throw storeFault(error, 'record a certificate', this.where);
      const existing = await this.getCertificate(certificate.caConnection, certificate.serial);
      if (existing === undefined) throw new RetryableError('certificate record exists and vanishes at once; try again');
      return { created: false, record: existing, superseded: [] };
    }
    const superseded: CertificateRecord[] = [];
    for (const older of active) {
      if (!supersedes(certificate, older)) continue;
      const changed = await this.changeCertificate(older.caConnection, older.serial, (current) =>
        current.status === 'active'
          ? { status: 'superseded', statusChangedAt: certificate.issuedAt, supersededBy: certificate.serial }
          : undefined,
      );
      if (changed?.status === 'superseded' && changed.supersededBy === certificate.serial) superseded.push(changed);
    }
    return { created: true, record: Object.freeze(record), superseded };
  }

  async getCertificate(caConnection: string, serial: string): Promise<CertificateRecord | undefined> {
    const ref = this.certificates.doc(certificateDocumentId(caConnection, serial));
    const snapshot = await this.guard('read a certificate record', () => ref.get());
    return snapshot.exists ? parseCertificateDocument(snapshot.data()) : undefined;
  }

  async findCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    let planned = planCertificateQuery(this.certificates, query);
    const exact = queryIsExact(query);
    if (exact && query.limit !== undefined) planned = planned.limit(query.limit);
    const snapshot = await this.guard('query certificate records', () => planned.get());
    const found: CertificateRecord[] = [];
    for (const document of snapshot.docs) {
      const record = parseCertificateDocument(document.data());
      if (record !== undefined && matchesQuery(record, query)) found.push(record);
    }
    found.sort(compareByExpiry);
    return query.limit === undefined ? found : found.slice(0, query.limit);
  }

  async countCertificates(query: CertificateQuery): Promise<number> {
    const { limit: _limit, ...all } = query;
    if (!queryIsExact(all)) return (await this.findCertificates(all)).length;
    const planned = planCertificateQuery(this.certificates, all);
    const snapshot = await this.guard('count certificate records', () => planned.count().get());
    return snapshot.data().count;
  }

  setRevocation(caConnection: string, serial: string, revocation: Revocation): Promise<CertificateRecord | undefined> {
    return this.changeCertificate(caConnection, serial, (current) => {
      if (current.revocation?.state === 'revoked') return undefined;
      const next = nextRevocation(current.revocation, revocation);
      return next.state === 'revoked'
        ? { revocation: next, status: 'revoked', statusChangedAt: next.at }
        : { revocation: next };
    });
  }

  /** One document read: `<collection>-crls/<id of connection + "revocations">`, field `count`. */
  async revocationCount(caConnection: string): Promise<number> {
    const snapshot = await this.guard('read the revocation count', () => this.revocationCounter(caConnection).get());
    const count: unknown = snapshot.get('count');
    return typeof count === 'number' ? count : 0;
  }

  private revocationCounter(caConnection: string) {
    return this.crls.doc(certificateDocumentId(caConnection, 'revocations'));
  }

  // --- CRLs ---------------------------------------------------------------------------------------------------

  /**
   * The CRL of a connection: a head document (`<collection>-crls/<id>`: number, times, chunk count) and the DER in
   * chunks below it (`chunks/<number>-<i>`), because a CRL of 100,000 serials (~4 MB) is larger than one document
   * (1 MiB). A reader that finds the chunks of the number it read already replaced reads the head again.
   */
  async getCrl(caConnection: string): Promise<StoredCrl | undefined> {
    const head = this.crls.doc(crlDocumentId(caConnection));
    for (let attempt = 0; attempt < DEFAULTS.casAttempts; attempt += 1) {
      const snapshot = await this.guard('read the CRL', () => head.get());
      const meta = parseCrlHead(snapshot.data());
      if (meta === undefined) return undefined;
      const refs = Array.from({ length: meta.chunks }, (_, i) =>
        head.collection('chunks').doc(`${meta.crlNumber}-${i}`),
      );
      const chunks = refs.length === 0 ? [] : await this.guard('read the CRL', () => this.db.getAll(...refs));
      const parts = chunks.map((c) => c.get('data') as Uint8Array | undefined);
      if (parts.every((p): p is Uint8Array => p instanceof Uint8Array)) {
        const { chunks: _count, ...crl } = meta;
        return Object.freeze({ ...crl, caConnection, der: concatChunks(parts) });
      }
    }
    throw new RetryableError(`the CRL of ${caConnection} kept changing while it was read; try again`);
  }

  async putCrl(crl: StoredCrl): Promise<boolean> {
    const head = this.crls.doc(crlDocumentId(crl.caConnection));
    const chunks: Uint8Array[] = [];
    for (let offset = 0; offset < crl.der.length; offset += DEFAULTS.crlChunkBytes) {
      chunks.push(crl.der.subarray(offset, offset + DEFAULTS.crlChunkBytes));
    }
    return this.guard('store the CRL', () =>
      this.db.runTransaction(async (tx) => {
        const current = parseCrlHead((await tx.get(head)).data());
        if (current !== undefined && current.crlNumber >= crl.crlNumber) return false;
        chunks.forEach((data, i) =>
          tx.set(head.collection('chunks').doc(`${crl.crlNumber}-${i}`), { data: Buffer.from(data) }),
        );
        tx.set(head, {
          caConnection: crl.caConnection,
          crlNumber: crl.crlNumber,
          thisUpdate: crl.thisUpdate,
          nextUpdate: crl.nextUpdate,
          entries: crl.entries,
          chunks: chunks.length,
          revocationsListed: crl.revocationsListed,
        });
        for (let i = 0; current !== undefined && i < current.chunks; i += 1) {
          tx.delete(head.collection('chunks').doc(`${current.crlNumber}-${i}`));
        }
        return true;
      }),
    );
  }

  /**
   * Compare-and-set on one certificate document; `decide` returns the fields to change, or undefined for none. A
   * change that makes the certificate `revoked` adds one to the connection's revocation count in the same atomic batch
   * (the count the CRL schedule compares with, src/lifecycle/crl.ts), whoever decided it.
   */
  private async changeCertificate(
    caConnection: string,
    serial: string,
    decide: (current: CertificateRecord) => Partial<CertificateRecord> | undefined,
  ): Promise<CertificateRecord | undefined> {
    const ref = this.certificates.doc(certificateDocumentId(caConnection, serial));
    for (let attempt = 0; attempt < DEFAULTS.casAttempts; attempt += 1) {
      const snapshot = await this.guard('read a certificate record', () => ref.get());
      const current = snapshot.exists ? parseCertificateDocument(snapshot.data()) : undefined;
      if (current === undefined || snapshot.updateTime === undefined) return undefined;
      const change = decide(current);
      if (change === undefined) return current;
      try {
        const precondition = { lastUpdateTime: snapshot.updateTime };
        if (change.status === 'revoked' && current.status !== 'revoked') {
          await this.call('update a certificate record', () =>
            this.db
              .batch()
              .update(ref, { ...change }, precondition)
              .set(this.revocationCounter(caConnection), { count: FieldValue.increment(1) }, { merge: true })
              .commit(),
          );
        } else {
          await this.call('update a certificate record', () => ref.update({ ...change }, precondition));
        }
        return Object.freeze({ ...current, ...change });
      } catch (error) {
        if (!isPreconditionFailure(error) && !isNotFound(error))
          throw storeFault(error, 'update a certificate record', this.where);
      }
    }
    throw new RetryableError(`certificate record ${caConnection}/${serial} kept changing; try again`);
  }

  tryLease(processId: string, owner: string, ttlMs: number): Promise<ProcessRecord | undefined> {
    return this.compareAndSet<ProcessRecord | undefined>(processId, (record, now) => {
      if (record === undefined || record.step === 'done' || !KNOWN_STEPS.has(record.step)) return { answer: undefined };
      if (leasedByOther(record.lease, owner, now)) return { answer: undefined };
      return { write: { lease: { owner, expiresAt: now + ttlMs } }, result: (stored) => stored };
    });
  }

  update(processId: string, owner: string, patch: ProcessPatch, options: UpdateOptions = {}): Promise<ProcessRecord> {
    return this.compareAndSet<ProcessRecord>(processId, (record, now) => {
      const lease = record?.lease;
      if (!holdsLease(lease, owner, now)) throw new LeaseLostError(processId, owner);
      const next = leaseAfterUpdate(lease, options, now);
      return { write: { patch, lease: next, expireAt: now + this.finishedRetentionMs }, result: (stored) => stored };
    });
  }

  reschedule(processId: string, version: number, dueAt: number): Promise<ProcessRecord | undefined> {
    // With the snapshot the due scan remembered, one write with its update time as precondition; no read.
    return this.compareAndSet<ProcessRecord | undefined>(processId, (record, now) => {
      if (!mayReschedule(record, version, now) || !KNOWN_STEPS.has(record.step)) return { answer: undefined };
      return { write: { patch: { dueAt }, lease: record.lease }, result: (stored) => stored };
    });
  }

  renewLease(processId: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.compareAndSet<boolean>(processId, (record, now) => {
      if (!holdsLease(record?.lease, owner, now)) return { answer: false };
      return { write: { lease: { owner, expiresAt: now + ttlMs } }, result: () => true };
    });
  }

  async findDue(now: number, limit: number, options: FindDueOptions = {}): Promise<ProcessRecord[]> {
    if (limit <= 0) return [];
    // findDue's two groups (src/store/types.ts), each by `step` (a field every record has had from the start, so
    // records written by an older version are found) and served by the (step, availableAt) composite index. The
    // starts are asked for only when the page has room for them.
    const reserve = options.reserveForStarts ?? 0;
    const due = (description: string, query: Query) =>
      this.guard(description, () => query.get()).then((snapshot) => this.dueRecords(snapshot, now));
    const byStep = (steps: Query) =>
      steps.where(FIELDS.availableAt, '<=', now).orderBy(FIELDS.availableAt).limit(limit);
    const continuingQuery = byStep(this.processes.where(FIELDS.step, 'in', CONTINUING_STEPS));
    const startsQuery = byStep(this.processes.where(FIELDS.step, '==', 'start'));
    const [continuing, early] = await Promise.all([
      due('query due continuing processes', continuingQuery),
      reserve > 0 ? due('query due new processes', startsQuery) : undefined,
    ]);
    const starts = early ?? (continuing.length < limit ? await due('query due new processes', startsQuery) : []);
    return duePage(continuing, starts, limit, reserve);
  }

  /** The workable records of a due-query's answer, earliest `dueAt` first (their update times remembered). */
  private dueRecords(snapshot: QuerySnapshot, now: number): ProcessRecord[] {
    const due: ProcessRecord[] = [];
    for (const document of snapshot.docs) {
      const record = this.parseQuietly(document);
      if (record === undefined || record.step === 'done' || !KNOWN_STEPS.has(record.step)) continue;
      if (record.dueAt > now || (record.lease !== undefined && record.lease.expiresAt > now)) continue;
      this.remember(record, document.updateTime);
      due.push(record);
    }
    return due.sort(byDueAt);
  }

  async nextDueAt(): Promise<number | undefined> {
    const query = this.processes.where(FIELDS.active, '==', true).orderBy(FIELDS.availableAt).limit(1);
    const snapshot = await this.guard('query the next due process', () => query.get());
    const value: unknown = snapshot.docs[0]?.get(FIELDS.availableAt);
    return typeof value === 'number' ? value : undefined;
  }

  async countActive(): Promise<Partial<Record<Step, number>>> {
    // One aggregation per step: billed as one read per 1,000 index entries, served by the automatic single-field
    // index on `step`, so counting many waiting processes stays cheap.
    const counts = await Promise.all(
      ACTIVE_STEPS.map(async (step) => {
        const result = await this.guard('count active processes', () =>
          this.processes.where(FIELDS.step, '==', step).count().get(),
        );
        return [step, result.data().count] as const;
      }),
    );
    return Object.fromEntries(counts.filter(([, n]) => n > 0));
  }

  async wakeByLookupKey(lookupKey: string, hint?: PendingRef): Promise<boolean> {
    const query = this.processes.where(FIELDS.lookupKey, '==', lookupKey).where(FIELDS.active, '==', true).limit(1);
    const snapshot = await this.guard('query a process by lookup key', () => query.get());
    const document = snapshot.docs[0];
    const found = document === undefined ? undefined : this.parseQuietly(document);
    if (document === undefined || found === undefined) return false;
    // The query answered the document itself: the compare-and-set starts from it, without a read.
    const fresh = this.snapshotOf(document, found);
    return this.compareAndSet<boolean>(
      found.processId,
      (record, now) => {
        if (record === undefined || record.step === 'done' || record.lookupKey !== lookupKey) return { answer: false };
        const patch: ProcessPatch = {
          dueAt: Math.min(record.dueAt, now),
          ...(hint === undefined ? {} : { pendingRef: { ...record.pendingRef, ...hint } }),
        };
        // The lease stays as it is: a replica working on the process keeps it, and picks the new dueAt up on release.
        return { write: { patch, lease: record.lease }, result: () => true };
      },
      fresh,
    );
  }

  // --- coordination ------------------------------------------------------------------------------------------

  async tryNamedLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const ref = this.coordination.doc(coordinationDocumentId('lease', name));
    for (let attempt = 0; attempt < DEFAULTS.casAttempts; attempt += 1) {
      const snapshot = await this.guard('read a named lease', () => ref.get());
      const now = this.now();
      const lease = { kind: 'lease', name, owner, expiresAt: now + ttlMs };
      try {
        if (!snapshot.exists) {
          await this.call('take a named lease', () => ref.create(lease));
          return true;
        }
        const current = snapshot.data() ?? {};
        const expiresAt = typeof current.expiresAt === 'number' ? current.expiresAt : 0;
        if (current.owner !== owner && expiresAt > now) return false;
        await this.call('take a named lease', () =>
          ref.update(lease, { lastUpdateTime: snapshot.updateTime as Timestamp }),
        );
        return true;
      } catch (error) {
        if (!isAlreadyExists(error) && !isPreconditionFailure(error) && !isNotFound(error)) {
          throw storeFault(error, 'take a named lease', this.where);
        }
      }
    }
    return false;
  }

  async releaseNamedLease(name: string, owner: string): Promise<void> {
    const ref = this.coordination.doc(coordinationDocumentId('lease', name));
    const snapshot = await this.guard('read a named lease', () => ref.get());
    if (!snapshot.exists || snapshot.get('owner') !== owner) return;
    try {
      await this.call('release a named lease', () => ref.delete({ lastUpdateTime: snapshot.updateTime as Timestamp }));
    } catch (error) {
      // Someone else renewed or took it meanwhile: nothing of ours to release.
      if (!isPreconditionFailure(error) && !isNotFound(error))
        throw storeFault(error, 'release a named lease', this.where);
    }
  }

  takeToken(bucket: string, windows: readonly RateWindow[]): Promise<number> {
    if (windows.length === 0) return Promise.resolve(0);
    return this.budget.take(bucket, windows);
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      this.remembered.clear();
      await this.call('close the Firestore client', () => this.db.terminate()).catch(() => undefined);
    })();
    return this.closed;
  }

  // --- internals ---------------------------------------------------------------------------------------------

  /** One batch reservation on the bucket's document: read, decide, write under a precondition; retried on conflict. */
  private async reserveTokens(
    bucket: string,
    decide: (stored: readonly Reservation[], now: number) => ReserveDecision,
  ): Promise<ReserveDecision> {
    const ref = this.coordination.doc(coordinationDocumentId('budget', bucket));
    for (let attempt = 0; attempt < DEFAULTS.casAttempts; attempt += 1) {
      const snapshot = await this.guard('read a rate budget', () => ref.get());
      const stored = snapshot.exists ? parseReservations(snapshot.get('reservations')) : [];
      const decision = decide(stored, this.now());
      if (decision.granted === 0 && snapshot.exists) return decision; // nothing to record
      const data = { kind: 'budget', bucket, reservations: decision.entries.map((r) => ({ ...r })) };
      try {
        if (snapshot.exists) {
          await this.call('reserve rate tokens', () =>
            ref.update(data, { lastUpdateTime: snapshot.updateTime as Timestamp }),
          );
        } else {
          await this.call('reserve rate tokens', () => ref.create(data));
        }
        return decision;
      } catch (error) {
        if (!isAlreadyExists(error) && !isPreconditionFailure(error) && !isNotFound(error)) {
          throw storeFault(error, 'reserve rate tokens', this.where);
        }
        // Another replica reserved first: back off a little (the document takes about one write per second).
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80 * (attempt + 1)));
      }
    }
    // Heavily contended: report "try again shortly" rather than an error; nothing was taken.
    return { granted: 0, waitMs: 250, entries: [] };
  }

  /**
   * Reads the record (or takes the remembered state), lets `decide` choose, and writes under a `lastUpdateTime`
   * precondition; on a conflict reads again and decides again. A decision made on remembered state not to write is
   * confirmed on a fresh read first. `decide` may throw (LeaseLostError) — only on a fresh read.
   */
  private async compareAndSet<T>(
    processId: string,
    decide: (record: ProcessRecord | undefined, now: number) => Decision<T>,
    read?: Snapshot,
  ): Promise<T> {
    const ref = this.processes.doc(documentIdFor(processId));
    let snapshot: Snapshot | undefined = read ?? this.rememberedSnapshot(processId);
    /** Writes of this call that timed out, by write id: the result each would have answered with. */
    const timedOut = new Map<string, (stored: ProcessRecord) => T>();
    for (let attempt = 0; attempt < DEFAULTS.casAttempts; attempt += 1) {
      snapshot ??= await this.read(processId);
      const landed = snapshot.writeId === undefined ? undefined : timedOut.get(snapshot.writeId);
      if (landed !== undefined && snapshot.record !== undefined) return landed(snapshot.record); // it did land
      const now = this.now();
      let decision: Decision<T>;
      try {
        decision = decide(snapshot.record, now);
      } catch (error) {
        if (snapshot.fresh) throw error;
        snapshot = undefined;
        continue;
      }
      if ('answer' in decision) {
        if (snapshot.fresh) return decision.answer;
        snapshot = undefined;
        continue;
      }
      const current = snapshot.record;
      const updateTime = snapshot.updateTime;
      if (current === undefined || updateTime === undefined)
        throw new Error('compare-and-set decided to write a missing record');
      const { update, record } = changeDocument(current, decision.write, now);
      const writeId = newWriteId();
      try {
        const result = await this.call('write the process record', () =>
          ref.update({ ...update, [WRITE_ID]: writeId }, { lastUpdateTime: updateTime }),
        );
        this.remember(record, result.writeTime);
        return decision.result(record);
      } catch (error) {
        this.remembered.forget(processId);
        // A write that timed out may have been applied (or be applied yet): read again; finding this write's id
        // means it landed. Otherwise decide again — the precondition lets at most one of the two writes land.
        const redo = isDeadlineExceeded(error) && timedOut.size < TIMED_OUT_WRITE_REDOS;
        if (redo) timedOut.set(writeId, decision.result);
        else if (!isPreconditionFailure(error) && !isNotFound(error))
          throw storeFault(error, 'write the process record', this.where);
        snapshot = undefined;
      }
    }
    throw new RetryableError(
      `process record ${processId} kept changing under ${DEFAULTS.casAttempts} compare-and-set attempts`,
    );
  }

  private async read(processId: string): Promise<Snapshot> {
    const document: DocumentSnapshot = await this.guard('read the process record', () =>
      this.processes.doc(documentIdFor(processId)).get(),
    );
    const record = document.exists ? parseDocument(document.data()) : undefined;
    if (record === undefined) this.remembered.forget(processId);
    return this.snapshotOf(document, record);
  }

  /** A document just read or queried, parsed to `record`, as a fresh snapshot (remembered). */
  private snapshotOf(document: DocumentSnapshot, record: ProcessRecord | undefined): Snapshot {
    if (record !== undefined && document.updateTime !== undefined) this.remember(record, document.updateTime);
    const writeId: unknown = document.get(WRITE_ID);
    return {
      record,
      updateTime: document.updateTime,
      fresh: true,
      ...(typeof writeId === 'string' ? { writeId } : {}),
    };
  }

  private rememberedSnapshot(processId: string): Snapshot | undefined {
    const entry = this.remembered.get(processId);
    return entry === undefined ? undefined : { record: entry.record, updateTime: entry.updateTime, fresh: false };
  }

  /** Remembers a record as stored at `updateTime`, for as long as this replica may write it again soon. */
  private remember(record: ProcessRecord, updateTime: Timestamp): void {
    this.remembered.remember(record, updateTime, this.now());
  }

  /** Records this store remembers now (firestore-remembered.ts): at most about the processes it is working on. */
  get rememberedRecords(): number {
    return this.remembered.size;
  }

  private parseQuietly(document: DocumentSnapshot): ProcessRecord | undefined {
    try {
      return parseDocument(document.data());
    } catch (error) {
      if (error instanceof IncompatibleRecordError) return undefined; // another major's record: not ours to run
      throw error;
    }
  }

  /** {@link call} with every failure mapped to a store fault. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.call(what, fn);
    } catch (error) {
      throw storeFault(error, what, this.where);
    }
  }

  /**
   * Runs one Firestore call, bounded by the request timeout (the call itself may still complete later). The deadline
   * is not handed to the client because it cannot take one per call: `WriteBatch.commit` (every write) passes its own
   * retry settings from the client's static service config (60 s per attempt, up to 600 s on ABORTED,
   * RESOURCE_EXHAUSTED, UNAVAILABLE), which override a `clientConfig` timeout; and reads go through the client's own
   * retry loop, which retries DEADLINE_EXCEEDED up to five times — a shorter read deadline would turn one slow read
   * into five. A slow store answers an abandoned call once; what keeps that from multiplying is the write id (a
   * timed-out write is not decided again) and the scheduler pressing less (src/provisioning/store-load.ts).
   */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new StoreBusyError(
              `${what}: Firestore did not answer within ${this.requestTimeoutMs} ms (${this.where})`,
              'timeout',
              { hint: 'check Firestore status and the network path to it' },
            ),
          ),
        this.requestTimeoutMs,
      );
    });
    try {
      return await Promise.race([fn(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseReservations(value: unknown): Reservation[] {
  if (!Array.isArray(value)) return [];
  const entries: Reservation[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const { from, until, count } = item as Record<string, unknown>;
    if (typeof from === 'number' && typeof until === 'number' && typeof count === 'number')
      entries.push({ from, until, count });
  }
  return entries;
}

function crlDocumentId(caConnection: string): string {
  return certificateDocumentId(caConnection, 'crl');
}

function parseCrlHead(
  data: DocumentData | undefined,
): (Omit<StoredCrl, 'der' | 'caConnection'> & { chunks: number }) | undefined {
  if (data === undefined) return undefined;
  const n = (key: string) => (typeof data[key] === 'number' ? data[key] : undefined);
  const [crlNumber, thisUpdate, nextUpdate, entries, chunks] = [
    n('crlNumber'),
    n('thisUpdate'),
    n('nextUpdate'),
    n('entries'),
    n('chunks'),
  ];
  if (crlNumber === undefined || thisUpdate === undefined || nextUpdate === undefined) return undefined;
  const revocationsListed = n('revocationsListed') ?? 0;
  return { crlNumber, thisUpdate, nextUpdate, entries: entries ?? 0, chunks: chunks ?? 0, revocationsListed };
}

function concatChunks(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}
