/**
 * What the SQLite store adds to the store contract (test/contract/store-sqlite.test.ts): records survive a closed
 * and reopened file (the adapter restarted), one file serves one adapter process, a file of another layout is
 * refused, and `run` uses sqlite when no store is configured.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/config/load.ts';
import { DeploymentFaultError } from '../../../src/errors.ts';
import { SqliteProcessStore, type SqliteStoreOptions } from '../../../src/store/sqlite.ts';

let dir: string;
const open: SqliteProcessStore[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'certprov-sqlite-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

function store(options: Partial<SqliteStoreOptions> & { file?: string } = {}): SqliteProcessStore {
  const s = new SqliteProcessStore({ path: options.file ?? path.join(dir, 'data', 'certprov.db'), ...options });
  open.push(s);
  return s;
}

describe('SqliteProcessStore', () => {
  it('keeps every record, lease and rate grant across a close and reopen of the file', async () => {
    const first = store();
    await first.create({ processId: 'p1', customer: 'C1', correlationId: 'corr', dueAt: 5 });
    await first.tryLease('p1', 'a', 60_000);
    await first.update('p1', 'a', { step: 'await_ca', lookupKey: 'order-1', pendingRef: { orderId: 1 } });
    expect(await first.tryNamedLease('poller', 'a', 60_000)).toBe(true);
    expect(await first.takeToken('b', [{ limit: 1, windowMs: 60_000 }])).toBe(0);
    await first.close();

    const second = store();
    expect(await second.get('p1')).toMatchObject({
      step: 'await_ca',
      pendingRef: { orderId: 1 },
      lease: { owner: 'a' },
    });
    expect(await second.tryNamedLease('poller', 'b', 60_000)).toBe(false);
    expect(await second.takeToken('b', [{ limit: 1, windowMs: 60_000 }])).toBeGreaterThan(0);
    expect(await second.wakeByLookupKey('order-1')).toBe(true);
  });

  it('resolves a write only after it is committed: a second connection sees it at once', async () => {
    const a = store();
    const b = store();
    const { created } = await a.create({ processId: 'p2', customer: 'C1', correlationId: 'c', dueAt: 0 });
    expect(created).toBe(true);
    expect((await b.get('p2'))?.processId).toBe('p2');
  });

  it('opens the file in WAL mode', () => {
    const file = path.join(dir, 'pragmas.db');
    store({ file });
    const db = new DatabaseSync(file);
    try {
      expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    } finally {
      db.close();
    }
  });

  it('opens a file an earlier version wrote (without the continuing-work index), indexes it and finds its work in order', async () => {
    const file = path.join(dir, 'earlier.db');
    const first = store({ file });
    for (const [id, dueAt] of [
      ['new-1', 1_000],
      ['new-2', 2_000],
      ['started', 3_000],
    ] as const) {
      await first.create({ processId: id, customer: 'C1', correlationId: `c-${id}`, dueAt });
    }
    await first.tryLease('started', 'a', 60_000);
    await first.update('started', 'a', { step: 'await_signature', dueAt: 5_000 }, { release: true });
    await first.close();
    const db = new DatabaseSync(file);
    db.exec('DROP INDEX processes_due_continuing'); // the layout as the earlier version left it
    db.close();

    const second = store({ file });
    expect((await second.findDue(10_000, 10)).map((r) => r.processId)).toEqual(['started', 'new-1', 'new-2']);
    const check = new DatabaseSync(file);
    try {
      const plan = check
        .prepare(
          "EXPLAIN QUERY PLAN SELECT data FROM processes WHERE active = 1 AND step <> 'start' AND available_at <= 1 ORDER BY available_at",
        )
        .all() as { detail: string }[];
      expect(plan.map((row) => row.detail).join()).toContain('processes_due_continuing');
      // An index is not a new layout: the version stays the one the file had.
      expect(check.prepare('PRAGMA user_version').get()).toEqual({ user_version: 2 });
    } finally {
      check.close();
    }
  });

  it('moves a file of layout version 1 to version 2 when the adapter claims it, keeping every record, lease, grant and certificate', async () => {
    // The fixture is what the store of layout version 1 wrote (processes at each kind of wait, a leased one, a
    // finished one with its CSR and certificate, two certificates of one holder, a named lease, two rate grants,
    // a CRL), dumped as SQL.
    const file = path.join(dir, 'v1.db');
    const v1 = new DatabaseSync(file);
    v1.exec(readFileSync(path.join(import.meta.dirname, 'fixtures', 'sqlite-layout-v1.sql'), 'utf8'));
    const rowsBefore = v1.prepare('SELECT process_id, data FROM processes ORDER BY process_id').all();
    v1.close();
    const t0 = 1_767_225_600_000; // the fixture's clock (2026-01-01)
    let t = t0 + 2_000;
    const version = () => {
      const db = new DatabaseSync(file);
      try {
        return (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
      } finally {
        db.close();
      }
    };

    // A tool that does not claim the file (the lifecycle commands, `check-config --probe`) works on it as it is:
    // an older adapter may still run on it.
    const tool = store({ file, now: () => t });
    expect(await tool.get('p-leased')).toMatchObject({ lease: { owner: 'replica-a' } });
    expect(await tool.tryLease('p-leased', 'replica-b', 60_000)).toBeUndefined();
    expect(await tool.takeToken('other-bucket', [{ limit: 5, windowMs: 60_000 }])).toBe(0);
    expect(version()).toBe(1);

    const s = store({ file, now: () => t });
    await s.claimSoleUse({ sleep: () => Promise.resolve() });
    const check = new DatabaseSync(file);
    try {
      expect(check.prepare('PRAGMA user_version').get()).toEqual({ user_version: 2 });
      const tables = check
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('processes', 'certificates')")
        .all() as { name: string; sql: string }[];
      expect(tables.map((table) => table.name).sort()).toEqual(['certificates', 'processes']);
      for (const table of tables) expect(table.sql).not.toMatch(/WITHOUT ROWID/i);
      expect(check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE '%_v1'").get()).toEqual({ n: 0 });
      for (const [query, index] of [
        ['SELECT data FROM processes WHERE lookup_key = 1 AND active = 1', 'processes_lookup'],
        [
          "SELECT data FROM processes WHERE active = 1 AND step <> 'start' AND available_at <= 1 ORDER BY available_at",
          'processes_due_continuing',
        ],
      ] as const) {
        const plan = check.prepare(`EXPLAIN QUERY PLAN ${query}`).all() as { detail: string }[];
        expect(plan.map((row) => row.detail).join()).toContain(index);
      }
    } finally {
      check.close();
    }
    // The tool's connection goes on working on the moved tables.
    expect((await tool.get('p-ca'))?.step).toBe('await_ca');
    // Claiming released the leases of the file's previous user (gone: it held no sole-writer lease); the records
    // themselves are unchanged but for that.
    const rowsAfter = new DatabaseSync(file);
    try {
      const rows = rowsAfter.prepare('SELECT process_id, data FROM processes ORDER BY process_id').all();
      expect(rows.filter((row) => row.process_id !== 'p-leased')).toEqual(
        rowsBefore.filter((row) => row.process_id !== 'p-leased'),
      );
    } finally {
      rowsAfter.close();
    }

    // The work as it stood: due in order, the pending order found by its key.
    expect((await s.findDue(t, 10)).map((r) => r.processId).sort()).toEqual(['p-leased', 'p-start']);
    expect(await s.wakeByLookupKey('order-1', { certificateId: 9 })).toBe(true);
    expect(await s.get('p-ca')).toMatchObject({ step: 'await_ca', pendingRef: { orderId: 1, certificateId: 9 } });
    expect(await s.findByCorrelationId('corr-wait')).toMatchObject({ processId: 'p-wait', step: 'await_signature' });
    const done = await s.get('p-done');
    expect(done).toMatchObject({ step: 'done', outcome: 'issued', issueResults: 1 });
    expect(done?.certificatePem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await s.countActive()).toEqual({ start: 2, await_signature: 1, await_ca: 1 });
    // The inventory, the named lease, the rate grants (limit 2 per hour, both taken) and the CRL.
    const certificates = await s.findCertificates({ device: 'SN1' });
    expect(certificates.map((c) => [c.serial, c.status])).toEqual([
      ['0a01', 'superseded'],
      ['0a02', 'active'],
    ]);
    expect(await s.tryNamedLease('digicert-poller:key-1', 'replica-b', 60_000)).toBe(false);
    expect(await s.takeToken('digicert:key-1', [{ limit: 2, windowMs: 3_600_000 }])).toBeGreaterThan(0);
    expect((await s.getCrl('ca'))?.crlNumber).toBe(7);
    // And it is written to like a new file: a record goes through its steps, finished records expire.
    await s.create({ processId: 'p-new', customer: 'C01', correlationId: 'corr-new', dueAt: t });
    expect(await s.tryLease('p-new', 'replica-b', 60_000)).toMatchObject({ processId: 'p-new' });
    await s.update('p-new', 'replica-b', { step: 'done', outcome: 'issued' }, { release: true });
    t += 8 * 24 * 3_600_000;
    await s.create({ processId: 'p-later', customer: 'C01', correlationId: 'corr-later', dueAt: t });
    expect(await s.get('p-done')).toBeUndefined();
    expect(await s.get('p-ca')).toBeDefined();
  });

  it('refuses a file written with another layout version instead of rewriting it', () => {
    const file = path.join(dir, 'future.db');
    const db = new DatabaseSync(file);
    db.exec('PRAGMA user_version = 99');
    db.close();
    expect(() => store({ file })).toThrow(DeploymentFaultError);
    expect(() => store({ file })).toThrow(/layout version 99/);
  });
});

describe('durability: a write resolves once its commit is fsynced', () => {
  /** An fsync that finishes only when the test says so, counting the calls. */
  function heldSync() {
    const pending: ((error: NodeJS.ErrnoException | null) => void)[] = [];
    return {
      pending,
      syncFile: (_fd: number, done: (error: NodeJS.ErrnoException | null) => void) => void pending.push(done),
    };
  }
  /** A store whose fsyncs wait for the test, with one create committed and its fsync pending. */
  async function createCommitted() {
    const sync = heldSync();
    const s = store({ syncFile: sync.syncFile });
    const created = s.create({ processId: 'p1', customer: 'C', correlationId: 'c', dueAt: 0 });
    await new Promise((resolve) => setImmediate(resolve));
    return { sync, s, created };
  }
  const settledYet = async (promise: Promise<unknown>) => {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    return settled;
  };

  it('holds a record write until the WAL fsync is done, and lets one fsync serve every write committed before it', async () => {
    const sync = heldSync();
    const s = store({ syncFile: sync.syncFile });
    const created = s.create({ processId: 'p1', customer: 'C', correlationId: 'c', dueAt: 0 });
    expect(await settledYet(created)).toBe(false);
    expect(sync.pending).toHaveLength(1);
    // Committed but not yet known durable: a second connection already sees it.
    expect((await store().get('p1'))?.processId).toBe('p1');
    // Writes committed while that fsync runs wait for the next one, together.
    const more = [
      s.create({ processId: 'p2', customer: 'C', correlationId: 'c2', dueAt: 0 }),
      s.create({ processId: 'p3', customer: 'C', correlationId: 'c3', dueAt: 0 }),
    ];
    expect(await settledYet(Promise.race(more))).toBe(false);
    sync.pending.shift()?.(null);
    expect((await created).created).toBe(true);
    expect(sync.pending).toHaveLength(1);
    expect(await settledYet(Promise.race(more))).toBe(false);
    sync.pending.shift()?.(null);
    expect((await Promise.all(more)).map((r) => r.created)).toEqual([true, true]);
  });

  it('resolves leases and rate tokens at their commit: nothing after a restart rests on them', async () => {
    const { sync, s, created } = await createCommitted();
    sync.pending.shift()?.(null);
    await created;
    expect((await s.tryLease('p1', 'r', 60_000))?.lease?.owner).toBe('r');
    expect(await s.renewLease('p1', 'r', 60_000)).toBe(true);
    expect(await s.takeToken('b', [{ limit: 1, windowMs: 60_000 }])).toBe(0);
    // The grant is committed before the token is handed out: another connection is refused at once.
    expect(await store().takeToken('b', [{ limit: 1, windowMs: 60_000 }])).toBeGreaterThan(0);
    expect(sync.pending).toHaveLength(0);
  });

  it('fails the waiting writes and every later one when an fsync fails: what the disk holds is unknown', async () => {
    const { sync, s, created } = await createCommitted();
    sync.pending.shift()?.(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    await expect(created).rejects.toThrow(DeploymentFaultError);
    await expect(created).rejects.toThrow(/sync the process store to disk.*EIO/);
    await expect(s.create({ processId: 'p2', customer: 'C', correlationId: 'c2', dueAt: 0 })).rejects.toThrow(/EIO/);
  });

  it('with synchronous normal resolves at the commit and never fsyncs', async () => {
    const sync = heldSync();
    const s = store({ syncFile: sync.syncFile, synchronous: 'normal' });
    expect((await s.create({ processId: 'p1', customer: 'C', correlationId: 'c', dueAt: 0 })).created).toBe(true);
    expect(sync.pending).toHaveLength(0);
  });

  it('waits for the fsync in flight before it closes', async () => {
    const { sync, s, created } = await createCommitted();
    const closing = s.close();
    expect(await settledYet(closing)).toBe(false);
    sync.pending.shift()?.(null);
    await closing;
    expect((await created).created).toBe(true);
  });
});

describe('WAL checkpoints: on a worker thread, never inside a commit', () => {
  /** Pages in the WAL file (it is overwritten from its start after a checkpoint that copied all of it, never shrunk). */
  const walPages = (file: string) => Math.max(0, (statSync(`${file}-wal`).size - 32) / (4096 + 24));
  /** The processes a copy of the database file alone holds: what checkpoints have copied out of the WAL. */
  const checkpointedRecords = (file: string) => {
    const copy = path.join(dir, `copy-${Math.random().toString(36).slice(2)}.db`);
    copyFileSync(file, copy);
    const db = new DatabaseSync(copy);
    try {
      const table = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'processes'").get();
      return table === undefined ? 0 : (db.prepare('SELECT count(*) AS n FROM processes').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  /** Records of about 6 KiB each: two pages per write. */
  async function writeRecords(s: SqliteProcessStore, prefix: string, count: number) {
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        s.create({ processId: `${prefix}-${i}`, customer: 'C', correlationId: `${prefix}-c${i}`, dueAt: 0 }),
      ),
    );
    await Promise.all(Array.from({ length: count }, (_, i) => s.tryLease(`${prefix}-${i}`, 'r', 60_000)));
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        s.update(`${prefix}-${i}`, 'r', { csr: 'A'.repeat(6_000 + i) }, { release: true }),
      ),
    );
  }
  let ticks = 0;
  /** Until a round that began after every commit so far has ended (a round starts at a commit when none runs). */
  async function roundAfterLastCommit(s: SqliteProcessStore) {
    for (let i = 0; i < 2; i += 1) {
      const rounds = s.counters.checkpoints;
      ticks += 1;
      await s.create({ processId: `tick-${ticks}`, customer: 'C', correlationId: `tick-${ticks}`, dueAt: 0 });
      await until(() => s.counters.checkpoints > rounds, 'a checkpoint round');
    }
  }
  async function until(condition: () => boolean, what: string) {
    for (let waited = 0; !condition(); waited += 10) {
      if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('leaves the WAL whole while no round is due: a commit never checkpoints (SQLite would at 1,000 pages)', async () => {
    const file = path.join(dir, 'no-rounds.db');
    const s = store({ file, synchronous: 'normal', checkpoint: { intervalMs: 3_600_000 } });
    // One commit per record, 4 pages each: SQLite's own checkpoint would start the WAL over every 1,000 pages.
    for (let i = 0; i < 500; i += 1) {
      await s.create({ processId: `p-${i}`, customer: 'C', correlationId: `c-${i}`, dueAt: 0 });
      await s.tryLease(`p-${i}`, 'r', 60_000);
      await s.update(`p-${i}`, 'r', { csr: 'A'.repeat(14_000) }, { release: true });
    }
    expect(walPages(file)).toBeGreaterThan(1_500);
    expect(checkpointedRecords(file)).toBe(0);
    expect(s.counters.checkpoints).toBe(0);
  });

  it('copies the WAL into the database file on a worker while the store writes on, and the WAL starts over', async () => {
    const file = path.join(dir, 'rounds.db');
    const s = store({ file, checkpoint: { intervalMs: 0 } });
    await writeRecords(s, 'a', 300);
    const firstPages = walPages(file);
    await roundAfterLastCommit(s);
    expect(checkpointedRecords(file)).toBe(300 + 2);
    expect(s.counters.checkpointsHere).toBe(0);
    // Five times as much again: the WAL is reused from its start, not grown.
    for (const prefix of ['b', 'c', 'd', 'e', 'f']) {
      await writeRecords(s, prefix, 300);
      await roundAfterLastCommit(s);
    }
    expect(walPages(file)).toBeLessThan(2 * firstPages);
    expect(checkpointedRecords(file)).toBe(6 * 300 + 12);
    expect((await s.get('f-299'))?.csr).toHaveLength(6_299);
  });

  it('finishes a round on its own connection when the worker found the WAL past maxWalPages', async () => {
    const file = path.join(dir, 'past-max.db');
    const s = store({ file, checkpoint: { intervalMs: 0, maxWalPages: 1 } });
    await writeRecords(s, 'a', 50);
    await until(() => s.counters.checkpointsHere > 0, 'a round finished here');
    await s.create({ processId: 'after', customer: 'C', correlationId: 'after', dueAt: 0 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The WAL restarted: what it holds now is that last write (and the rounds' own), not the 150 writes before.
    const other = new DatabaseSync(file);
    try {
      const result = other.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number };
      expect(result.log).toBeLessThan(20);
    } finally {
      other.close();
    }
  });
});

describe('one file, one adapter process', () => {
  const noWait = () => Promise.resolve();

  it('makes a second claimant wait while the first holds the file, and hands over at once when it closes', async () => {
    const first = store();
    await first.claimSoleUse({ ttlMs: 30_000 });
    const second = store();
    // The second waits (for a crashed holder's lease to run out) instead of taking over.
    let slept = 0;
    const waiting = second.claimSoleUse({
      ttlMs: 30_000,
      sleep: () => {
        slept += 1;
        return Promise.reject(new Error('still waiting'));
      },
    });
    await expect(waiting).rejects.toThrow('still waiting');
    expect(slept).toBe(1);
    await first.close();
    await expect(second.claimSoleUse({ ttlMs: 30_000, sleep: noWait })).resolves.toBeUndefined();
  });

  it('takes over at once from a process on this host that no longer runs (a crash, a restarted container)', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const crashed = store();
    await crashed.tryNamedLease('certprov:sqlite-sole-writer', `${hostname()}|${dead}|00`, 60_000);
    await crashed.create({ processId: 'p-held', customer: 'C', correlationId: 'c', dueAt: 0 });
    await crashed.tryLease('p-held', 'dead-replica', 600_000);
    const next = store();
    let slept = 0;
    await next.claimSoleUse({
      sleep: () => {
        slept += 1;
        return Promise.resolve();
      },
    });
    expect(slept).toBe(0);
    // The crashed process's lease can never be used again: its work is due now, not in ten minutes.
    expect((await next.get('p-held'))?.lease).toBeUndefined();
    expect((await next.findDue(Date.now(), 10)).map((r) => r.processId)).toEqual(['p-held']);
  });

  it('waits out a holder on another host (a second pod on the same volume) and refuses if it keeps renewing', async () => {
    let t = 1_000_000;
    const now = () => t;
    const other = store({ now });
    const holder = 'other-pod|1|ab';
    await other.tryNamedLease('certprov:sqlite-sole-writer', holder, 30_000);
    const mine = store({ now });
    await expect(
      mine.claimSoleUse({
        ttlMs: 30_000,
        sleep: async (ms) => {
          t += ms;
          await other.tryNamedLease('certprov:sqlite-sole-writer', holder, 30_000); // the other pod renews
        },
      }),
    ).rejects.toThrow(/host other-pod, pid 1/);
  });

  it('keeps the process leases of a holder that only stopped renewing (it may be paused, not dead)', async () => {
    let t = 1_000_000;
    const now = () => t;
    const other = store({ now });
    await other.tryNamedLease('certprov:sqlite-sole-writer', 'other-pod|1|ab', 30_000);
    await other.create({ processId: 'p-paused', customer: 'C', correlationId: 'c', dueAt: 0 });
    await other.tryLease('p-paused', 'paused-replica', 120_000);
    const mine = store({ now });
    await mine.claimSoleUse({
      ttlMs: 30_000,
      sleep: (ms) => {
        t += ms;
        return Promise.resolve();
      },
    });
    expect((await mine.get('p-paused'))?.lease?.owner).toBe('paused-replica');
  });
});

describe('store configuration', () => {
  const base = {
    chrome: { endpoint: 'http://127.0.0.1:1', credentials: 'none' },
    pubsub: { subscription: 'projects/p/subscriptions/s' },
    caConnections: { ca: { type: 'local', directory: '/tmp/ca' } },
    profiles: { p: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
  };

  it('run defaults to sqlite under CERTPROV_DATA_DIR (default ./data); the demo to memory', () => {
    const previous = process.env.CERTPROV_DATA_DIR;
    try {
      delete process.env.CERTPROV_DATA_DIR;
      expect(compileConfig(base, { source: 't', baseDir: '/etc', purpose: 'run' }).store).toEqual({
        type: 'sqlite',
        path: path.resolve('data', 'certprov.db'),
        synchronous: 'full',
      });
      process.env.CERTPROV_DATA_DIR = '/var/lib/certprov';
      expect(compileConfig(base, { source: 't', baseDir: '/etc', purpose: 'run' }).store).toMatchObject({
        path: '/var/lib/certprov/certprov.db',
      });
      expect(compileConfig(base, { source: 't', baseDir: '/etc', purpose: 'demo' }).store).toEqual({ type: 'memory' });
    } finally {
      if (previous === undefined) delete process.env.CERTPROV_DATA_DIR;
      else process.env.CERTPROV_DATA_DIR = previous;
    }
  });

  it('resolves a relative store.path against the configuration file and takes synchronous normal', () => {
    const config = compileConfig(
      { ...base, store: { type: 'sqlite', path: 'state/c.db', synchronous: 'normal' } },
      { source: 't', baseDir: '/etc/certprov', purpose: 'run' },
    );
    expect(config.store).toEqual({ type: 'sqlite', path: '/etc/certprov/state/c.db', synchronous: 'normal' });
  });
});
