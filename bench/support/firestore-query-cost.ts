/**
 * What one call of each kind the adapter sends costs on a Firestore database, as a function of the collection's size
 * (issue 15 item 5): a fresh collection is filled with `size` process records — the rollout's shape, nearly all at
 * `start` and due, a few continuing — and each call the scheduler and a step make is timed through the store itself,
 * one at a time (median of `rounds`). On Google's emulator a query scans the collection (it keeps no indexes): its
 * cost grows with the size; on Firestore the due queries are served by the composite index.
 */
import { performance } from 'node:perf_hooks';
import { Firestore } from '@google-cloud/firestore';
import { newDocument } from '../../src/store/firestore-document.ts';
import { FirestoreProcessStore } from '../../src/store/firestore.ts';
import { ACTIVE_STEPS } from '../../src/store/types.ts';
import { percentile } from '../scenario.ts';

/** Median milliseconds per call, by kind of call. */
export interface QueryCost {
  readonly size: number;
  /** findDue's continuing-work query (a page of 32, nothing due among continuing work). */
  readonly continuing: number;
  /** findDue's starts query (a page of 32 out of `size` due starts). */
  readonly starts: number;
  /** nextDueAt's query. */
  readonly nextDueAt: number;
  /** One count aggregation (countActive sends one per active step). */
  readonly count: number;
  /** A point read of one record (BatchGetDocuments). */
  readonly get: number;
  /** A compare-and-set write of one record (Commit with a precondition). */
  readonly write: number;
}

const PAGE = 32;

/** Fills `collection` with `size` records (1 in 100 continuing, waiting a minute; the rest starts due now). */
async function fill(db: Firestore, collection: string, size: number, now: number): Promise<void> {
  const writer = db.bulkWriter();
  for (let i = 0; i < size; i += 1) {
    const continuing = i % 100 === 0;
    const document = newDocument(
      {
        processId: `p${i}`,
        customer: 'my_customer',
        correlationId: `c${i}`,
        dueAt: continuing ? now + 60_000 : now - i,
      },
      now,
    );
    if (continuing) document.step = 'await_signature';
    void writer.create(db.collection(collection).doc(`p${i}`), document);
  }
  await writer.close();
}

async function median(rounds: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i += 1) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return percentile(
    times.sort((a, b) => a - b),
    50,
  );
}

/** Per-call cost at each size, on the database at `host` (the emulator's host:port), each size its own collection. */
export async function measureQueryCost(
  host: string,
  projectId: string,
  sizes: readonly number[],
  rounds = 5,
): Promise<QueryCost[]> {
  const settings = { host, ssl: false, universeDomain: 'googleapis.com' };
  const db = new Firestore({ projectId, ...settings });
  const costs: QueryCost[] = [];
  try {
    for (const size of sizes) {
      const collection = `query-cost-${size}-${Date.now().toString(36)}`;
      const now = Date.now();
      await fill(db, collection, size, now);
      const store = new FirestoreProcessStore({ projectId, collection, settings });
      try {
        const counts = db.collection(collection);
        // findDue with no reserve: the continuing query, then the starts query (the page has room).
        const continuing = await median(rounds, () =>
          counts
            .where('step', 'in', ACTIVE_STEPS.slice(1))
            .where('availableAt', '<=', now)
            .orderBy('availableAt')
            .limit(PAGE)
            .get(),
        );
        const starts = await median(rounds, () =>
          counts.where('step', '==', 'start').where('availableAt', '<=', now).orderBy('availableAt').limit(PAGE).get(),
        );
        const nextDueAt = await median(rounds, () => store.nextDueAt());
        const count = await median(rounds, () => counts.where('step', '==', 'start').count().get());
        let i = 1;
        const get = await median(rounds, () => store.get(`p${(i += 7)}`));
        let j = 1;
        const write = await median(rounds, async () => {
          const id = `p${(j += 7)}`;
          await store.tryLease(id, 'probe', 60_000);
        });
        costs.push({ size, continuing, starts, nextDueAt, count, get, write });
      } finally {
        await store.close();
      }
    }
  } finally {
    await db.terminate();
  }
  return costs;
}
