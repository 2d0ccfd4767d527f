/**
 * Process state in one SQLite file through Node's built-in `node:sqlite` (DESIGN.md §8): the durable store of ONE
 * replica, and `run`'s default. Durable like Firestore, so a Pub/Sub message is acknowledged as soon as its record is
 * written and every wait (device signature, pending CA order, retry) is held by the record, not by a message.
 *
 * Layout (version 2 in `PRAGMA user_version`; a version 1 file is moved to it by the adapter that claims the file, see
 * upgradeLayout):
 * - `processes`: the record as JSON in `data` (a rowid table, so that a record fits in its page), plus the columns
 *   the queries use — `active` (not done), `available_at` = max(dueAt, lease expiry) (the moment the scheduler may
 *   pick the record up), `step`, `lookup_key`, `expire_at`. Partial indexes over active records serve the due-query
 *   (continuing work has one of its own), the next wake-up, the count by step and the lookup-key wake-up; finished
 *   records are never scanned by them.
 * - `named_leases`: one row per named lease (one DigiCert status poller per API key; the sole-writer lease).
 * - `certificates`: the inventory (DESIGN.md §9), one row per (connection, serial), the record as JSON plus indexed
 *   holder, profile, status and notAfter; `certificate_identities` maps each device/user id of a holder to its
 *   certificates (`--device X` / `--user X`, whichever id X is). Certificates outlive process records.
 * - `crls` (the current CRL of each connection) and `crl_revocations` (per connection, the revocation count and the
 *   count the stored CRL was read at; see InventoryStore.revocationCount).
 * - `rate_grants`: one row per granted token of a shared rate budget (exact sliding windows: one replica has no
 *   contention to batch away, and the grants survive a restart, so a crash loop cannot overrun DigiCert's limits).
 *
 * Durability: WAL journal. With `synchronous: full` (default) a write's promise resolves only once its commit is
 * fsynced — but the fsync does not run inside COMMIT on the event loop: SQLite runs with `PRAGMA synchronous=NORMAL`
 * (commit = write to the WAL, no sync) and the store fsyncs the WAL file itself on libuv's thread pool, resolving
 * every write committed before that fsync began (group commit: writes that commit while one fsync runs share the
 * next). The WAL is append-only between checkpoints and SQLite syncs it before a checkpoint and the WAL header
 * before a restart, so an fsync of the WAL makes every earlier commit durable, as FULL would. With `normal` a write
 * resolves at its commit: it survives a crash of this process but may be rolled back by a power cut or kernel crash;
 * the adapter acknowledges a message and posts a DigiCert order only after the record that protects it is written,
 * so a rolled-back commit could lose a process (the message is gone) or, for DigiCert, forget the order intent and
 * pay twice. Writes issued in the same event-loop turn share one transaction. WAL checkpoints never run inside this
 * connection's commits: a worker thread runs them on a connection of its own (src/store/sqlite-checkpointer.ts).
 *
 * Leases and rate tokens resolve at their commit, without waiting for the fsync: no decision after a restart rests
 * on them (a restart releases the previous incarnation's leases, see claimSoleUse), and a token only has to be
 * visible to other connections on the file before its request goes out — it is; the next fsync makes it durable.
 *
 * Consistency: `node:sqlite` is synchronous, so each read-modify-write runs start to end inside one
 * `BEGIN IMMEDIATE` transaction (the write lock is taken before the read): another connection — another store object
 * on the same file, or a CLI reading it — never sees half a decision. One file serves ONE replica: see
 * {@link SqliteProcessStore.claimSoleUse}.
 */
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { PendingRef } from '../ca/types.ts';
import { DeploymentFaultError } from '../errors.ts';
import { makeDirectorySync } from '../make-directory.ts';
import {
  compareByExpiry,
  deviceKey,
  holderKeyOf,
  identityKeysOf,
  matchesQuery,
  revokedRecord,
  supersede,
  userKey,
  type CertificateQuery,
  type CertificateRecord,
  type NewCertificate,
  type RecordCertificateResult,
  type StoredCrl,
  type Revocation,
} from './inventory.ts';
import { byDueAt, duePage } from './due-page.ts';
import { holdsLease, leaseAfterUpdate, leasedByOther, mayReschedule } from './lease.ts';
import { newProcessRecord, nextRecord } from './new-record.ts';
import { longestWindowMs, takeFromWindows } from './rate-window.ts';
import { SQLITE_LAYOUT_VERSION, WORKABLE_LAYOUT_VERSIONS, unknownLayout } from './sqlite-file.ts';
import {
  WalCheckpointer,
  type CheckpointFailure,
  type CheckpointOptions,
  type CheckpointResult,
} from './sqlite-checkpointer.ts';
import {
  LeaseLostError,
  type FindDueOptions,
  type Lease,
  type NewProcess,
  type ProcessPatch,
  type ProcessRecord,
  type ProcessStore,
  type RateWindow,
  type Step,
  type UpdateOptions,
} from './types.ts';

const DEFAULTS = {
  finishedRetentionMs: 7 * 24 * 3_600_000,
  /** How long a connection waits for another connection's write lock (a CLI reading the file) before failing. */
  busyTimeoutMs: 5_000,
  /** The sole-writer lease: renewed every third of this; a dead holder's lease frees up after it. */
  soleUseTtlMs: 30_000,
  /** Finished records past `expireAt` are deleted at most this often. */
  expirySpacingMs: 60_000,
  /** Grants older than a bucket's longest window are deleted from the file at most this often per bucket. */
  grantPruneSpacingMs: 1_000,
} as const;

/** `full`: a write resolves once its commit is fsynced (default); `normal`: at its commit. See the module comment. */
export type SqliteSynchronous = 'full' | 'normal';

export interface SqliteStoreOptions {
  /** The database file; its directory is created if missing. `:memory:` works for tests (not durable). */
  readonly path: string;
  /** Default `full`. */
  readonly synchronous?: SqliteSynchronous;
  /** How long finished records are kept (duplicate deliveries after the end are recognised). Default 7 d. */
  readonly finishedRetentionMs?: number;
  /** Wall clock (epoch ms); injectable for tests. */
  readonly now?: () => number;
  /** How the WAL file is fsynced off the event loop (`synchronous: full`); injectable for tests. Default `fs.fsync`. */
  readonly syncFile?: (fd: number, done: (error: NodeJS.ErrnoException | null) => void) => void;
  /** When WAL checkpoints run (src/store/sqlite-checkpointer.ts); injectable for tests. */
  readonly checkpoint?: CheckpointOptions;
  /** Told of every failed WAL checkpoint (a log line and a metric: src/store/create.ts). */
  readonly onCheckpointFailure?: (failure: CheckpointFailure) => void;
}

/** SQLite's default `wal_autocheckpoint`, restored if the checkpoint worker fails. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1_000;

/** Bound of the cache of leased records (SqliteProcessStore.leased): well above any `maxConcurrent`. */
const MAX_LEASED_CACHED = 4_096;

/** The name of the lease that makes one file serve one adapter process (see claimSoleUse). */
const SOLE_USE_LEASE = 'certprov:sqlite-sole-writer';

interface ProcessRow {
  data: string;
}

interface CertificateRow {
  data: string;
}

function freezeCertificate(json: string): CertificateRecord {
  return Object.freeze(JSON.parse(json) as CertificateRecord);
}

/**
 * `findCertificates` as one SQL query over the indexed columns (identity lookups through certificate_identities),
 * earliest notAfter first.
 */
function certificateQuerySql(query: CertificateQuery): { sql: string; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  const add = (clause: string, value: string | number) => {
    where.push(clause);
    params.push(value);
  };
  if (query.caConnection !== undefined) add('c.ca_connection = ?', query.caConnection);
  if (query.profile !== undefined) add('c.profile = ?', query.profile);
  if (query.status !== undefined) add('c.status = ?', query.status);
  if (query.holder !== undefined) add('c.holder_key = ?', query.holder);
  if (query.notAfterBefore !== undefined) add('c.not_after < ?', query.notAfterBefore);
  if (query.notAfterFrom !== undefined) add('c.not_after >= ?', query.notAfterFrom);
  const identity = (key: string) =>
    add(
      'EXISTS (SELECT 1 FROM certificate_identities i WHERE i.identity_key = ? AND i.ca_connection = c.ca_connection AND i.serial = c.serial)',
      key,
    );
  if (query.device !== undefined) identity(deviceKey(query.device));
  if (query.user !== undefined) identity(userKey(query.user));
  const sql = `SELECT c.data FROM certificates c${where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`} ORDER BY c.not_after, c.serial${query.limit === undefined ? '' : ` LIMIT ${Math.max(0, Math.floor(query.limit))}`}`;
  return { sql, params };
}

interface QueuedWrite {
  readonly op: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  /** Settle only once the commit is fsynced (`synchronous: full`); else at the commit (leases, rate tokens). */
  readonly durable: boolean;
}

interface Settled {
  readonly item: QueuedWrite;
  readonly ok: boolean;
  readonly value: unknown;
}

function settle(done: readonly Settled[]): void {
  for (const { item, ok, value } of done) {
    if (ok) item.resolve(value);
    else item.reject(value);
  }
}

/** An error raised by SQLite itself (disk full, locked, corrupt) rather than by a decision of this store. */
function isSqliteError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { code?: unknown }).code === 'string' &&
    (error as { code: string }).code.startsWith('ERR_SQLITE')
  );
}

function availableAt(record: ProcessRecord): number {
  return Math.max(record.dueAt, record.lease?.expiresAt ?? 0);
}

/** The `processes` columns the indexes use, besides the key; `indexedColumns` gives their values in this order. */
const INDEXED_COLUMNS = ['active', 'available_at', 'step', 'lookup_key', 'expire_at'] as const;

function indexedColumns(record: ProcessRecord): readonly (string | number | null)[] {
  const active = record.step !== 'done';
  return [
    active ? 1 : 0,
    availableAt(record),
    record.step,
    active ? (record.lookupKey ?? null) : null,
    record.expireAt ?? null,
  ];
}

function freezeRecord(json: string): ProcessRecord {
  return Object.freeze(JSON.parse(json) as ProcessRecord);
}

export class SqliteProcessStore implements ProcessStore {
  readonly kind = 'sqlite' as const;
  /** A scan is an indexed query on a local file: see ProcessStore.scanSpacingMs. */
  readonly scanSpacingMs = 5;
  readonly durable: boolean;
  /** The database file (absolute), for messages. */
  readonly file: string;
  /**
   * Write transactions committed, WAL fsyncs, and WAL checkpoints (by the worker; finished on this connection) done
   * by this store object (the benchmark reports them).
   */
  readonly counters = { commits: 0, fsyncs: 0, checkpoints: 0, checkpointsHere: 0 };

  private readonly db: DatabaseSync;
  private readonly now: () => number;
  private readonly finishedRetentionMs: number;
  private readonly statements: ReturnType<typeof prepareStatements>;
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  /** `synchronous: full` on a file: durable writes wait for an fsync of the WAL (see the module comment). */
  private readonly syncCommits: boolean;
  private readonly syncFile: NonNullable<SqliteStoreOptions['syncFile']>;
  private walFd: number | undefined;
  /** Committed writes waiting for the next fsync; `syncing` while one runs. */
  private awaitingSync: Settled[] = [];
  private syncing = false;
  private syncIdle: (() => void) | undefined;
  /** Set by a failed fsync: what the file holds is unknown from then on, so every later durable write fails. */
  private syncFailure: Error | undefined;
  private readonly lastGrantPrune = new Map<string, number>();
  private lastExpiry = 0;
  private closed = false;
  private soleUse: { readonly holder: string; readonly timer: NodeJS.Timeout } | undefined;
  /** Grant times per rate bucket, mirroring `rate_grants` (see grantTimes). */
  private readonly grants = new Map<string, number[]>();
  /**
   * The records this connection last wrote with a lease on them — the processes being worked on, at most about
   * `maxConcurrent` — so that the next write of a step (renewal, patch, release) does not parse its JSON again.
   * Dropped when the record is released or done, and wholly when another connection wrote the file or a batch was
   * rolled back: it always equals what the file holds.
   */
  private readonly leased = new Map<string, ProcessRecord>();
  private readonly updates = new Map<number, StatementSync>();
  private grantsVersion: number | undefined;
  /** Checkpoints the WAL off the event loop (files only). */
  private readonly checkpointer: WalCheckpointer | undefined;

  constructor(options: SqliteStoreOptions) {
    this.file = options.path === ':memory:' ? ':memory:' : path.resolve(options.path);
    this.durable = this.file !== ':memory:';
    this.now = options.now ?? Date.now;
    this.finishedRetentionMs = options.finishedRetentionMs ?? DEFAULTS.finishedRetentionMs;
    this.syncCommits = this.durable && (options.synchronous ?? 'full') === 'full';
    this.syncFile = options.syncFile ?? fsync;
    try {
      if (this.durable) makeDirectorySync(path.dirname(this.file));
      this.db = new DatabaseSync(this.file);
      this.db.exec(`PRAGMA busy_timeout = ${DEFAULTS.busyTimeoutMs}`);
      const mode = (this.db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode?: string } | undefined)
        ?.journal_mode;
      if (this.durable && mode !== 'wal') throw new Error(`the file system refused WAL mode (journal_mode ${mode})`);
      // NORMAL in both modes: with `full` the store fsyncs the WAL itself, off the event loop (module comment).
      this.db.exec('PRAGMA synchronous = NORMAL');
      migrate(this.db, this.file);
      addTables(this.db);
      this.statements = prepareStatements(this.db);
      if (this.durable) {
        // Checkpoints run on a worker thread, not inside this connection's COMMITs (sqlite-checkpointer.ts).
        this.db.exec('PRAGMA wal_autocheckpoint = 0');
        this.checkpointer = new WalCheckpointer(
          this.file,
          {
            checkpointHere: () =>
              this.db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as unknown as CheckpointResult,
            // SQLite's own checkpoints again: slower, but the WAL stays bounded.
            onFailure: () => this.db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`),
            ...(options.onCheckpointFailure === undefined ? {} : { observe: options.onCheckpointFailure }),
            counters: this.counters,
          },
          options.checkpoint,
        );
      }
    } catch (error) {
      throw sqliteFault(error, 'open the process store', this.file);
    }
  }

  // --- process records ----------------------------------------------------------------------------------------

  create(init: NewProcess): Promise<{ created: boolean; record: ProcessRecord }> {
    return this.write(() => {
      this.expireFinished();
      const existing = this.read(init.processId);
      if (existing !== undefined) return { created: false, record: existing };
      const record = Object.freeze(newProcessRecord(init, this.now()));
      this.statements.insert.run(
        record.processId,
        record.correlationId,
        1,
        availableAt(record),
        record.step,
        null,
        null,
        JSON.stringify(record),
      );
      return { created: true, record };
    });
  }

  get(processId: string): Promise<ProcessRecord | undefined> {
    return this.readNow(() => this.read(processId));
  }

  findByCorrelationId(correlationId: string): Promise<ProcessRecord | undefined> {
    return this.readNow(() => {
      const row = this.statements.byCorrelationId.get(correlationId) as ProcessRow | undefined;
      return row === undefined ? undefined : freezeRecord(row.data);
    });
  }

  // --- inventory ---------------------------------------------------------------------------------------------

  recordCertificate(certificate: NewCertificate): Promise<RecordCertificateResult> {
    return this.write(() => {
      const existing = this.readCertificate(certificate.caConnection, certificate.serial);
      if (existing !== undefined) return { created: false, record: existing, superseded: [] };
      const rows = this.statements.activeOfHolder.all(
        holderKeyOf(certificate.holder),
        certificate.profile,
      ) as unknown as CertificateRow[];
      const { record, superseded } = supersede(
        certificate,
        rows.map((r) => freezeCertificate(r.data)),
      );
      for (const older of superseded) this.writeCertificate(older);
      this.writeCertificate(record);
      for (const key of identityKeysOf(record.holder)) {
        this.statements.putIdentity.run(key, record.caConnection, record.serial);
      }
      return { created: true, record, superseded };
    });
  }

  getCertificate(caConnection: string, serial: string): Promise<CertificateRecord | undefined> {
    return this.readNow(() => this.readCertificate(caConnection, serial));
  }

  findCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    return this.readNow(() => {
      const { sql, params } = certificateQuerySql(query);
      const rows = this.db.prepare(sql).all(...params) as unknown as CertificateRow[];
      // The SQL expresses every filter; matchesQuery keeps the store honest to the one definition of a match.
      const found = rows.map((r) => freezeCertificate(r.data)).filter((r) => matchesQuery(r, query));
      found.sort(compareByExpiry);
      return query.limit === undefined ? found : found.slice(0, query.limit);
    });
  }

  countCertificates(query: CertificateQuery): Promise<number> {
    const { limit: _limit, ...all } = query;
    return this.findCertificates(all).then((found) => found.length);
  }

  setRevocation(caConnection: string, serial: string, revocation: Revocation): Promise<CertificateRecord | undefined> {
    return this.write(() => {
      const current = this.readCertificate(caConnection, serial);
      if (current === undefined) return undefined;
      const record = revokedRecord(current, revocation);
      if (record === undefined) return current;
      this.writeCertificate(record);
      if (record.status === 'revoked') this.statements.countRevocation.run(caConnection);
      return record;
    });
  }

  revocationCount(caConnection: string): Promise<number> {
    return this.readNow(() => {
      const row = this.statements.revocationCount.get(caConnection) as { recorded: number } | undefined;
      return row?.recorded ?? 0;
    });
  }

  getCrl(caConnection: string): Promise<StoredCrl | undefined> {
    return this.readNow(() => {
      const row = this.statements.getCrl.get(caConnection) as CrlRow | undefined;
      return row === undefined
        ? undefined
        : Object.freeze({
            caConnection: row.ca_connection,
            crlNumber: row.crl_number,
            thisUpdate: row.this_update,
            nextUpdate: row.next_update,
            entries: row.entries,
            der: new Uint8Array(row.der),
            revocationsListed: row.listed,
          });
    });
  }

  putCrl(crl: StoredCrl): Promise<boolean> {
    return this.write(() => {
      const result = this.statements.putCrl.run(
        crl.caConnection,
        crl.crlNumber,
        crl.thisUpdate,
        crl.nextUpdate,
        crl.entries,
        crl.der,
      );
      if (Number(result.changes) === 0) return false;
      this.statements.putRevocationsListed.run(crl.caConnection, crl.revocationsListed);
      return true;
    });
  }

  tryLease(processId: string, owner: string, ttlMs: number): Promise<ProcessRecord | undefined> {
    return this.write(() => {
      const record = this.read(processId);
      const now = this.now();
      if (record === undefined || record.step === 'done' || leasedByOther(record.lease, owner, now)) return undefined;
      return this.store(record, {}, { owner, expiresAt: now + ttlMs });
    }, false);
  }

  update(processId: string, owner: string, patch: ProcessPatch, options: UpdateOptions = {}): Promise<ProcessRecord> {
    return this.write(() => {
      const record = this.read(processId);
      const now = this.now();
      if (record === undefined || !holdsLease(record.lease, owner, now)) throw new LeaseLostError(processId, owner);
      return this.store(record, patch, leaseAfterUpdate(record.lease, options, now));
    });
  }

  reschedule(processId: string, version: number, dueAt: number): Promise<ProcessRecord | undefined> {
    return this.write(() => {
      const record = this.read(processId);
      if (!mayReschedule(record, version, this.now())) return undefined;
      return this.store(record, { dueAt }, record.lease);
    }, false);
  }

  renewLease(processId: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.write(() => {
      const record = this.read(processId);
      const now = this.now();
      if (record === undefined || !holdsLease(record.lease, owner, now)) return false;
      this.store(record, {}, { owner, expiresAt: now + ttlMs });
      return true;
    }, false);
  }

  findDue(now: number, limit: number, options: FindDueOptions = {}): Promise<ProcessRecord[]> {
    if (limit <= 0) return Promise.resolve([]);
    return this.readNow(() => {
      const due = (statement: StatementSync) =>
        (statement.all(now, limit) as unknown as ProcessRow[]).map((row) => freezeRecord(row.data)).sort(byDueAt);
      const continuing = due(this.statements.dueContinuing);
      // A full page of continuing work and no place kept for starts: the starts are not needed.
      const needStarts = continuing.length < limit || (options.reserveForStarts ?? 0) > 0;
      return duePage(continuing, needStarts ? due(this.statements.dueStarts) : [], limit, options.reserveForStarts);
    });
  }

  nextDueAt(): Promise<number | undefined> {
    return this.readNow(() => {
      const row = this.statements.next.get() as { available_at: number } | undefined;
      return row?.available_at;
    });
  }

  countActive(): Promise<Partial<Record<Step, number>>> {
    return this.readNow(() => {
      const rows = this.statements.countByStep.all() as unknown as { step: Step; n: number }[];
      return Object.fromEntries(rows.map((r) => [r.step, r.n]));
    });
  }

  wakeByLookupKey(lookupKey: string, hint?: PendingRef): Promise<boolean> {
    return this.write(() => {
      const row = this.statements.byLookupKey.get(lookupKey) as ProcessRow | undefined;
      if (row === undefined) return false;
      const record = freezeRecord(row.data);
      const now = this.now();
      // The lease stays as it is: a replica working on the process keeps it, and picks the new dueAt up on release.
      this.store(
        record,
        {
          dueAt: Math.min(record.dueAt, now),
          ...(hint === undefined ? {} : { pendingRef: { ...record.pendingRef, ...hint } }),
        },
        record.lease,
      );
      return true;
    });
  }

  // --- coordination ------------------------------------------------------------------------------------------

  tryNamedLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.write(() => this.takeNamedLease(name, owner, ttlMs, (current) => current.owner === owner));
  }

  releaseNamedLease(name: string, owner: string): Promise<void> {
    return this.write(() => {
      this.statements.releaseLease.run(name, owner);
    });
  }

  takeToken(bucket: string, windows: readonly RateWindow[]): Promise<number> {
    if (windows.length === 0) return Promise.resolve(0);
    return this.write(() => {
      const now = this.now();
      const since = now - longestWindowMs(windows);
      const times = this.grantTimes(bucket, since);
      if (now - (this.lastGrantPrune.get(bucket) ?? 0) >= DEFAULTS.grantPruneSpacingMs) {
        this.lastGrantPrune.set(bucket, now);
        this.statements.pruneGrants.run(bucket, since);
      }
      const wait = takeFromWindows(times, windows, now);
      if (wait === 0) this.statements.grant.run(bucket, now);
      return wait;
    }, false);
  }

  /**
   * The bucket's grants as an ascending array mirroring its `rate_grants` rows, so that deciding a token costs a
   * binary search instead of an index walk as long as the window's limit (thousands for the Chrome API budget).
   * Read from the file on first use, and again whenever another connection has written the file since (`PRAGMA
   * data_version`, checked once per write transaction: a CLI on the same file may take tokens too). Called inside
   * the write transaction.
   */
  private grantTimes(bucket: string, since: number): number[] {
    let times = this.grants.get(bucket);
    if (times === undefined) {
      const rows = this.statements.grantsOf.all(bucket, since) as unknown as { at: number }[];
      times = rows.map((r) => r.at);
      this.grants.set(bucket, times);
    }
    return times;
  }

  /**
   * Makes this store object the only adapter process using the file (DESIGN.md §8: SQLite is for ONE replica).
   * Takes a named lease in the file, renewed every third of its TTL. A holder on this host whose process is gone (a
   * crash, a restarted container) is taken over at once; a live holder, or one on another host (two pods sharing a
   * volume), is waited out for one TTL — a crashed pod's lease frees up by then — and otherwise refused with a
   * {@link DeploymentFaultError}. Read-only tools may still open the file (WAL allows readers beside the writer).
   */
  async claimSoleUse(
    options: { ttlMs?: number; onLost?: (holder: string) => void; sleep?: (ms: number) => Promise<void> } = {},
  ): Promise<void> {
    const ttlMs = options.ttlMs ?? DEFAULTS.soleUseTtlMs;
    const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    const holder = `${hostname()}|${process.pid}|${randomBytes(4).toString('hex')}`;
    const deadline = this.now() + ttlMs + 1_000;
    let other: string | undefined;
    for (;;) {
      other = undefined;
      const taken = await this.write(() => {
        const now = this.now();
        const current = this.statements.getLease.get(SOLE_USE_LEASE) as
          { owner: string; expires_at: number } | undefined;
        const live = current !== undefined && current.expires_at > now;
        const dead = current !== undefined && previousIncarnation(current.owner);
        if (live && !dead) {
          other = current.owner;
          return false;
        }
        this.statements.putLease.run(SOLE_USE_LEASE, holder, now + ttlMs);
        upgradeLayout(this.db);
        // The file's previous user is known to be gone (it closed, or its process no longer exists on this host):
        // the process leases it left can never be used again, so its work resumes now instead of after the lease
        // time. A holder that merely stopped renewing (another host) could be paused, not dead: its leases expire.
        if (current === undefined || dead) this.releaseAllLeases();
        return true;
      });
      if (taken) break;
      if (this.now() >= deadline) {
        const [host, pid] = (other ?? '?|?').split('|');
        throw new DeploymentFaultError(
          `the sqlite store ${this.file} is in use by another certprov process (host ${host}, pid ${pid})`,
          {
            component: 'store',
            hint: 'store.type sqlite serves ONE replica: run a single replica (strategy Recreate) with its own volume, or use store.type firestore for several',
          },
        );
      }
      await sleep(Math.min(1_000, ttlMs / 4));
    }
    const timer = setInterval(() => {
      this.tryNamedLease(SOLE_USE_LEASE, holder, ttlMs).then(
        (held) => {
          if (!held) options.onLost?.(other ?? 'another process');
        },
        () => undefined, // the next renewal tries again; the engine reports a failing store on its own
      );
    }, ttlMs / 3);
    timer.unref();
    this.soleUse = { holder, timer };
    HOLDERS_IN_THIS_PROCESS.add(holder);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.soleUse !== undefined) {
      clearInterval(this.soleUse.timer);
      HOLDERS_IN_THIS_PROCESS.delete(this.soleUse.holder);
      await this.releaseNamedLease(SOLE_USE_LEASE, this.soleUse.holder).catch(() => undefined);
      this.soleUse = undefined;
    }
    await this.drain();
    await this.checkpointer?.close();
    this.closed = true;
    this.db.close();
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }

  // --- internals ---------------------------------------------------------------------------------------------

  /** The UPDATE that sets `data` and the indexed columns in `mask` (bits in INDEXED_COLUMNS order), prepared once. */
  private updateStatement(mask: number): StatementSync {
    let statement = this.updates.get(mask);
    if (statement === undefined) {
      const set = INDEXED_COLUMNS.filter((_, i) => (mask & (1 << i)) !== 0).map((column) => `${column} = ?, `);
      statement = this.db.prepare(`UPDATE processes SET ${set.join('')}data = ? WHERE process_id = ?`);
      this.updates.set(mask, statement);
    }
    return statement;
  }

  private readCertificate(caConnection: string, serial: string): CertificateRecord | undefined {
    const row = this.statements.getCertificate.get(caConnection, serial) as CertificateRow | undefined;
    return row === undefined ? undefined : freezeCertificate(row.data);
  }

  private writeCertificate(record: CertificateRecord): void {
    this.statements.putCertificate.run(
      record.caConnection,
      record.serial,
      record.holderKey,
      record.profile,
      record.status,
      record.notAfter,
      JSON.stringify(record),
    );
  }

  /** The record as the file holds it, inside a write transaction (see `leased`). */
  private read(processId: string): ProcessRecord | undefined {
    const cached = this.leased.get(processId);
    if (cached !== undefined) return cached;
    const row = this.statements.get.get(processId) as ProcessRow | undefined;
    return row === undefined ? undefined : freezeRecord(row.data);
  }

  /** Writes `record` + `patch` with `lease`; the store's fields (version, updatedAt, expireAt) are set here. */
  private store(record: ProcessRecord, patch: ProcessPatch, lease: Lease | undefined): ProcessRecord {
    const next = nextRecord(record, patch, lease, this.now(), this.finishedRetentionMs);
    const active = next.step !== 'done';
    // Only the indexed columns whose value changes are set: SQLite rewrites an index entry for every column in the
    // SET list, changed or not, which tripled the pages each write appends to the WAL.
    const before = indexedColumns(record);
    const after = indexedColumns(next);
    let mask = 0;
    const values: (string | number | null)[] = [];
    for (let i = 0; i < after.length; i += 1) {
      if (after[i] !== before[i]) {
        mask |= 1 << i;
        values.push(after[i] as string | number | null);
      }
    }
    this.updateStatement(mask).run(...values, JSON.stringify(next), next.processId);
    if (active && next.lease !== undefined) {
      // Leases that ran out unreleased (a lost lease, a crash of a step) would stay: bound the map.
      if (this.leased.size >= MAX_LEASED_CACHED) this.leased.clear();
      this.leased.set(next.processId, next);
    } else this.leased.delete(next.processId);
    return next;
  }

  /** Drops the lease of every active record (their holder is gone); each stays due at its own `dueAt`. */
  private releaseAllLeases(): void {
    const rows = this.statements.leasedCandidates.all(this.now()) as unknown as ProcessRow[];
    for (const row of rows) {
      const record = freezeRecord(row.data);
      if (record.lease !== undefined) this.store(record, {}, undefined);
    }
  }

  private takeNamedLease(
    name: string,
    owner: string,
    ttlMs: number,
    mayTake: (current: { owner: string; expires_at: number }) => boolean,
  ): boolean {
    const now = this.now();
    const current = this.statements.getLease.get(name) as { owner: string; expires_at: number } | undefined;
    if (current !== undefined && current.expires_at > now && !mayTake(current)) return false;
    this.statements.putLease.run(name, owner, now + ttlMs);
    return true;
  }

  private expireFinished(): void {
    const now = this.now();
    if (now - this.lastExpiry < DEFAULTS.expirySpacingMs) return;
    this.lastExpiry = now;
    this.statements.expire.run(now);
  }

  private readNow<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(sqliteFault(error, 'read the process store', this.file));
    }
  }

  /**
   * Queues a read-modify-write. Every write queued in one event-loop turn runs in one `BEGIN IMMEDIATE` transaction
   * and one commit. A `durable` write settles once that commit is fsynced (`synchronous: full`; the fsync runs off
   * the event loop and is shared by every commit made before it starts), any other at the commit. An operation that
   * decides not to write may throw (LeaseLostError) — it wrote nothing, and the others commit; an error of SQLite
   * itself rolls the whole batch back and rejects every operation in it as a store fault.
   */
  private write<T>(op: () => T, durable = true): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: unknown) => void, reject, durable });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const settled: Settled[] = [];
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        // Another connection wrote the file since our last transaction: the grant mirror may be stale.
        const version = (this.statements.dataVersion.get() as { data_version: number }).data_version;
        if (version !== this.grantsVersion) {
          this.grants.clear();
          this.leased.clear();
          this.grantsVersion = version;
        }
        for (const item of batch) {
          try {
            settled.push({ item, ok: true, value: item.op() });
          } catch (error) {
            if (isSqliteError(error)) throw error;
            settled.push({ item, ok: false, value: error });
          }
        }
        this.db.exec('COMMIT');
        this.counters.commits += 1;
      } catch (error) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
        throw error;
      }
    } catch (error) {
      // The batch was rolled back: grants and records it decided are not in the file, so they are read again.
      this.grants.clear();
      this.leased.clear();
      const fault = sqliteFault(error, 'write the process store', this.file);
      for (const item of batch) item.reject(fault);
      return;
    }
    this.checkpointer?.committed();
    if (!this.syncCommits) {
      settle(settled);
      return;
    }
    settle(settled.filter((s) => !s.item.durable));
    const durable = settled.filter((s) => s.item.durable);
    if (durable.length === 0) return;
    if (this.syncFailure !== undefined) {
      for (const { item } of durable) item.reject(this.syncFailure);
      return;
    }
    this.awaitingSync.push(...durable);
    if (!this.syncing) this.syncWal();
  }

  /**
   * fsyncs the WAL on the thread pool, then settles the writes committed before it began; writes committed
   * meanwhile wait for the next one. The WAL file is opened on the first sync (SQLite creates it at the first
   * commit) and its directory entry fsynced once.
   */
  private syncWal(): void {
    const waiting = this.awaitingSync;
    this.awaitingSync = [];
    this.syncing = true;
    this.counters.fsyncs += 1;
    const done = (error: NodeJS.ErrnoException | null) => {
      this.syncing = false;
      if (error !== null && this.syncFailure === undefined) {
        this.syncFailure = sqliteFault(error, 'sync the process store to disk', this.file);
      }
      if (this.syncFailure === undefined) settle(waiting);
      else for (const { item } of waiting) item.reject(this.syncFailure);
      if (this.awaitingSync.length > 0) this.syncWal();
      else this.syncIdle?.();
    };
    let fd: number;
    try {
      fd = this.walFd ?? this.openWal();
    } catch (error) {
      done(error as NodeJS.ErrnoException);
      return;
    }
    this.syncFile(fd, done);
  }

  private openWal(): number {
    const fd = openSync(`${this.file}-wal`, 'r');
    const dir = openSync(path.dirname(this.file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.walFd = fd;
    return fd;
  }

  /** Runs what is queued now and waits for the fsync of what is committed (close). */
  private async drain(): Promise<void> {
    if (this.queue.length > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.queue.length > 0) this.flush();
    }
    while (this.syncing) {
      await new Promise<void>((resolve) => {
        this.syncIdle = resolve;
      });
      this.syncIdle = undefined;
    }
  }

  private closedError(): Error {
    return new DeploymentFaultError(`the sqlite store ${this.file} is closed`, { component: 'store' });
  }
}

/** Sole-writer claims of store objects of this process that are still open. */
const HOLDERS_IN_THIS_PROCESS = new Set<string>();

/** Whether a sole-writer lease holder is an earlier process on this host that no longer runs (or this very one). */
function previousIncarnation(owner: string): boolean {
  const [host, pidText] = owner.split('|');
  if (host !== hostname()) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  // A restarted container is PID 1 again: same host and pid as ours means the holder was us before the restart —
  // unless it is a claim made by another store object of this very process, still open.
  if (pid === process.pid) return !HOLDERS_IN_THIS_PROCESS.has(owner);
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Layout version 2 holds process records and certificates in rowid tables: a record's JSON (1–3 KiB once it carries
 * the CSR and the certificate) fits in its table page. Version 1 kept them in WITHOUT ROWID tables, where a row
 * over about 1 KiB spills into an overflow page, so each write of a record dirtied its leaf, a new overflow page and
 * the free-list: about 50 % more WAL pages per write and twice the CPU per commit.
 */
const PROCESSES_TABLE = `
    CREATE TABLE processes (
      process_id     TEXT PRIMARY KEY NOT NULL,
      correlation_id TEXT NOT NULL,
      active       INTEGER NOT NULL,
      available_at INTEGER NOT NULL,
      step         TEXT NOT NULL,
      lookup_key   TEXT,
      expire_at    INTEGER,
      data         TEXT NOT NULL
    );`;

const PROCESS_INDEXES = `
    CREATE INDEX processes_due ON processes (available_at) WHERE active = 1;
    CREATE INDEX processes_step ON processes (step) WHERE active = 1;
    CREATE INDEX processes_lookup ON processes (lookup_key) WHERE lookup_key IS NOT NULL;
    CREATE INDEX processes_expiry ON processes (expire_at) WHERE expire_at IS NOT NULL;
    CREATE INDEX processes_correlation ON processes (correlation_id);
    CREATE INDEX processes_due_continuing ON processes (available_at) WHERE active = 1 AND step <> 'start';`;

const CERTIFICATES_TABLE = `
    CREATE TABLE certificates (
      ca_connection TEXT NOT NULL,
      serial        TEXT NOT NULL,
      holder_key    TEXT NOT NULL,
      profile       TEXT NOT NULL,
      status        TEXT NOT NULL,
      not_after     INTEGER NOT NULL,
      data          TEXT NOT NULL,
      PRIMARY KEY (ca_connection, serial)
    );`;

const CERTIFICATE_INDEXES = `
    CREATE INDEX certificates_holder ON certificates (holder_key, profile, status);
    CREATE INDEX certificates_expiry ON certificates (not_after);
    CREATE INDEX certificates_connection ON certificates (ca_connection, not_after);
    CREATE INDEX certificates_profile ON certificates (profile, not_after);
    CREATE INDEX certificates_status ON certificates (status, not_after);`;

function layoutVersion(db: DatabaseSync): number {
  return (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
}

/**
 * Creates the tables in a new file, and refuses a file of a layout version this adapter does not know (a newer
 * adapter's) rather than rewrite it. A version 1 file is used as it is: only the adapter that claims the file moves it
 * to version 2 (see {@link upgradeLayout}) — a command-line tool or `check-config --probe` opening the file while an
 * older adapter still runs on it never rewrites its tables.
 */
function migrate(db: DatabaseSync, file: string): void {
  if (WORKABLE_LAYOUT_VERSIONS.includes(layoutVersion(db))) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    // Read again under the write lock: another connection may have created the tables meanwhile.
    const version = layoutVersion(db);
    if (version === 0) {
      createTables(db);
      db.exec(`PRAGMA user_version = ${SQLITE_LAYOUT_VERSION}`);
    } else if (!WORKABLE_LAYOUT_VERSIONS.includes(version)) {
      const { problem, hint } = unknownLayout(file, version);
      throw new DeploymentFaultError(problem, { component: 'store', hint });
    }
    db.exec('COMMIT');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

/**
 * Moves a version 1 file to {@link SQLITE_LAYOUT_VERSION}, inside the transaction in which the adapter claims the file (no
 * other adapter runs on it then). Statements prepared on the old tables are prepared again by SQLite.
 */
function upgradeLayout(db: DatabaseSync): void {
  if (layoutVersion(db) !== 1) return;
  moveToRowidTables(db);
  db.exec(`PRAGMA user_version = ${SQLITE_LAYOUT_VERSION}`);
}

function createTables(db: DatabaseSync): void {
  db.exec(`
    ${PROCESSES_TABLE}
    ${PROCESS_INDEXES}
    ${CERTIFICATES_TABLE}
    ${CERTIFICATE_INDEXES}
    CREATE TABLE certificate_identities (
      identity_key  TEXT NOT NULL,
      ca_connection TEXT NOT NULL,
      serial        TEXT NOT NULL,
      PRIMARY KEY (identity_key, ca_connection, serial)
    ) WITHOUT ROWID;
    CREATE TABLE named_leases (
      name       TEXT PRIMARY KEY,
      owner      TEXT NOT NULL,
      expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE rate_grants (
      bucket TEXT NOT NULL,
      at     INTEGER NOT NULL
    );
    CREATE INDEX rate_grants_bucket ON rate_grants (bucket, at);
  `);
}

/** Version 1 → 2: the same columns, copied into rowid tables; the indexes (same names) once the old tables are gone. */
function moveToRowidTables(db: DatabaseSync): void {
  db.exec(`
    ALTER TABLE processes RENAME TO processes_v1;
    ALTER TABLE certificates RENAME TO certificates_v1;
    ${PROCESSES_TABLE}
    ${CERTIFICATES_TABLE}
    INSERT INTO processes (process_id, correlation_id, active, available_at, step, lookup_key, expire_at, data)
      SELECT process_id, correlation_id, active, available_at, step, lookup_key, expire_at, data FROM processes_v1;
    INSERT INTO certificates (ca_connection, serial, holder_key, profile, status, not_after, data)
      SELECT ca_connection, serial, holder_key, profile, status, not_after, data FROM certificates_v1;
    DROP TABLE processes_v1;
    DROP TABLE certificates_v1;
    ${PROCESS_INDEXES}
    ${CERTIFICATE_INDEXES}
  `);
}

/**
 * Tables and indexes added within a layout version: new tables, which an older adapter never reads, and indexes, which
 * it keeps up to date without knowing them (so a file opened by this version still opens, and works, in an older one
 * of the same layout version).
 */
interface CrlRow {
  ca_connection: string;
  crl_number: number;
  this_update: number;
  next_update: number;
  entries: number;
  der: Uint8Array;
  listed: number;
}

function addTables(db: DatabaseSync): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS crls (
      ca_connection TEXT PRIMARY KEY,
      crl_number    INTEGER NOT NULL,
      this_update   INTEGER NOT NULL,
      next_update   INTEGER NOT NULL,
      entries       INTEGER NOT NULL,
      der           BLOB NOT NULL
    ) WITHOUT ROWID;
    -- Per connection: how many certificates setRevocation made revoked, and that count as the stored CRL read it.
    CREATE TABLE IF NOT EXISTS crl_revocations (
      ca_connection TEXT PRIMARY KEY,
      recorded      INTEGER NOT NULL,
      listed        INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS processes_due_continuing ON processes (available_at) WHERE active = 1 AND step <> 'start';
  `);
}

function prepareStatements(db: DatabaseSync) {
  const s = (sql: string): StatementSync => db.prepare(sql);
  return {
    get: s('SELECT data FROM processes WHERE process_id = ?'),
    insert: s(
      'INSERT INTO processes (process_id, correlation_id, active, available_at, step, lookup_key, expire_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    byCorrelationId: s('SELECT data FROM processes WHERE correlation_id = ? LIMIT 1'),
    getCertificate: s('SELECT data FROM certificates WHERE ca_connection = ? AND serial = ?'),
    putCertificate: s(
      'INSERT INTO certificates (ca_connection, serial, holder_key, profile, status, not_after, data) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ca_connection, serial) DO UPDATE SET holder_key = excluded.holder_key, profile = excluded.profile, status = excluded.status, not_after = excluded.not_after, data = excluded.data',
    ),
    activeOfHolder: s("SELECT data FROM certificates WHERE holder_key = ? AND profile = ? AND status = 'active'"),
    putIdentity: s(
      'INSERT OR IGNORE INTO certificate_identities (identity_key, ca_connection, serial) VALUES (?, ?, ?)',
    ),
    // findDue's two groups (src/store/types.ts). Continuing work has its own index: a burst of due starts is never
    // walked to find it. The starts walk processes_due past the due continuing records older than them, which the
    // first query took unless the page was full of them.
    dueContinuing: s(
      "SELECT data FROM processes INDEXED BY processes_due_continuing WHERE active = 1 AND step <> 'start' AND available_at <= ? ORDER BY available_at LIMIT ?",
    ),
    dueStarts: s(
      "SELECT data FROM processes INDEXED BY processes_due WHERE active = 1 AND step = 'start' AND available_at <= ? ORDER BY available_at LIMIT ?",
    ),
    // Active records whose lease may still run (a leased record's available_at is its lease expiry or later).
    leasedCandidates: s('SELECT data FROM processes WHERE active = 1 AND available_at > ?'),
    next: s('SELECT available_at FROM processes WHERE active = 1 ORDER BY available_at LIMIT 1'),
    countByStep: s('SELECT step, count(*) AS n FROM processes WHERE active = 1 GROUP BY step'),
    byLookupKey: s('SELECT data FROM processes WHERE lookup_key = ? AND active = 1 LIMIT 1'),
    expire: s('DELETE FROM processes WHERE expire_at IS NOT NULL AND expire_at <= ?'),
    getLease: s('SELECT owner, expires_at FROM named_leases WHERE name = ?'),
    putLease: s(
      'INSERT INTO named_leases (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at',
    ),
    releaseLease: s('DELETE FROM named_leases WHERE name = ? AND owner = ?'),
    getCrl: s(
      'SELECT c.ca_connection, c.crl_number, c.this_update, c.next_update, c.entries, c.der, coalesce(r.listed, 0) AS listed FROM crls c LEFT JOIN crl_revocations r ON r.ca_connection = c.ca_connection WHERE c.ca_connection = ?',
    ),
    putCrl: s(
      'INSERT INTO crls (ca_connection, crl_number, this_update, next_update, entries, der) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ca_connection) DO UPDATE SET crl_number = excluded.crl_number, this_update = excluded.this_update, next_update = excluded.next_update, entries = excluded.entries, der = excluded.der WHERE excluded.crl_number > crls.crl_number',
    ),
    countRevocation: s(
      'INSERT INTO crl_revocations (ca_connection, recorded, listed) VALUES (?, 1, 0) ON CONFLICT (ca_connection) DO UPDATE SET recorded = crl_revocations.recorded + 1',
    ),
    revocationCount: s('SELECT recorded FROM crl_revocations WHERE ca_connection = ?'),
    putRevocationsListed: s(
      'INSERT INTO crl_revocations (ca_connection, recorded, listed) VALUES (?, 0, ?) ON CONFLICT (ca_connection) DO UPDATE SET listed = excluded.listed',
    ),
    pruneGrants: s('DELETE FROM rate_grants WHERE bucket = ? AND at <= ?'),
    grantsOf: s('SELECT at FROM rate_grants WHERE bucket = ? AND at > ? ORDER BY at'),
    dataVersion: s('PRAGMA data_version'),
    grant: s('INSERT INTO rate_grants (bucket, at) VALUES (?, ?)'),
  };
}

/** A SQLite failure as a deployment fault of component `store` (full disk, read-only volume, locked file). */
function sqliteFault(error: unknown, what: string, file: string): Error {
  if (error instanceof DeploymentFaultError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new DeploymentFaultError(`${what}: ${file}: ${detail}`, {
    component: 'store',
    cause: error,
    hint: /locked|busy/i.test(detail)
      ? 'another process holds the sqlite file: sqlite serves ONE replica'
      : 'check that store.path is on a writable, local volume with free space',
  });
}
