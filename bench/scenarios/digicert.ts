/**
 * DigiCert API cost per issued certificate, through the whole adapter (sandbox tenant, in-process source, memory
 * store, the DigiCert backend against the fake CertCentral on loopback):
 *
 * 1. Issuance in the order call (pre-validated organization, approval skipped): DigiCert requests per certificate,
 *    target 1.0 — the order POST and nothing else (the bulk poller's own calls are reported apart).
 * 2. Orders left pending (N = 100 and N = 1,000 at once): DigiCert requests per poll interval while they wait —
 *    target: the same for both N (one status-changes call per interval, no per-order reads) — then the requests
 *    per certificate once DigiCert issues them all (order + download + a share of the polls).
 *
 * The client-side rate budget is lifted here (DigiCert's 1,000 requests per 3 minutes would stretch 2,000
 * requests over 6 minutes): the figures are request counts, and the budget has its own tests.
 */
import { performance } from 'node:perf_hooks';
import { KeyPool } from '../../src/sandbox/index.ts';
import { DigicertAdapterHarness } from '../../test/fakes/digicert/adapter-harness.ts';
import type { BenchFigure, BenchScenario } from '../scenario.ts';

const POLL_INTERVAL_MS = 500;

async function waitUntil(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Why processes failed (a benchmark that lost some must say why). */
async function failureReasons(harness: DigicertAdapterHarness, ids: readonly string[]): Promise<string> {
  const reasons = new Map<string, number>();
  for (const id of ids) {
    if (harness.tenant.process(id).issuedCertificate !== undefined) continue;
    const reason = (await harness.store.get(id))?.reason ?? 'unfinished';
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  return [...reasons].map(([r, n]) => `${r}: ${n}`).join(', ');
}

async function immediate(pool: KeyPool, count: number): Promise<BenchFigure[]> {
  const harness = await DigicertAdapterHarness.start({
    logLevel: 'warn',
    unlimitedBudget: true,
    connection: { statusPollInterval: '5s' },
  });
  try {
    const ids = harness.tenant.createProcesses(count, { pool, ecShare: 0.5, userShare: 1 });
    const started = performance.now();
    for (const id of ids) await harness.notify(id);
    await harness.tenant.waitUntilFinished(ids, 300_000);
    const seconds = (performance.now() - started) / 1000;
    const issued = harness.tenant.stats().issued;
    if (issued < count) console.warn(`  immediate: not issued — ${await failureReasons(harness, ids)}`);
    const polls = harness.requests('status-changes');
    const ordering = harness.requests() - polls;
    return [
      { name: 'immediate: issued', value: issued, unit: '', target: `= ${count}` },
      {
        name: 'immediate: DigiCert requests per certificate (ordering)',
        value: ordering / issued,
        unit: 'requests',
        target: '= 1.0',
      },
      {
        name: 'immediate: status-changes polls during the run',
        value: polls,
        unit: `requests in ${seconds.toFixed(1)} s`,
      },
      {
        name: 'immediate: DigiCert requests per certificate (all)',
        value: harness.requests() / issued,
        unit: 'requests',
      },
      { name: 'immediate: throughput', value: count / seconds, unit: 'certificates/s' },
    ];
  } finally {
    await harness.close();
  }
}

async function pending(pool: KeyPool, count: number, observeMs: number): Promise<BenchFigure[]> {
  const harness = await DigicertAdapterHarness.start({
    logLevel: 'warn',
    unlimitedBudget: true,
    fake: { issuance: 'pending' },
    connection: {
      statusPollInterval: `${POLL_INTERVAL_MS}ms`,
      pendingRecheckInterval: '30s',
      orderFallbackInterval: '1h',
    },
  });
  try {
    const ids = harness.tenant.createProcesses(count, { pool, ecShare: 0.5, userShare: 1 });
    for (const id of ids) await harness.notify(id);
    await waitUntil(
      async () => (await harness.store.countActive()).await_ca === count,
      300_000,
      `${count} pending orders`,
    );
    // Steady state: every process waits on its order; only polling talks to DigiCert now.
    const before = { all: harness.requests(), polls: harness.requests('status-changes') };
    await new Promise((r) => setTimeout(r, observeMs));
    const whilePending = harness.requests() - before.all;
    const intervals = observeMs / POLL_INTERVAL_MS;
    const perInterval = whilePending / intervals;

    for (const order of harness.fake.orders.values()) await harness.fake.approve(order.id);
    await harness.tenant.waitUntilFinished(ids, 300_000);
    const issued = harness.tenant.stats().issued;
    if (issued < count) console.warn(`  pending ${count}: not issued — ${await failureReasons(harness, ids)}`);
    return [
      { name: `pending ${count}: issued`, value: issued, unit: '', target: `= ${count}` },
      {
        name: `pending ${count}: DigiCert requests per poll interval while pending`,
        value: perInterval,
        unit: 'requests',
        target: '≤ 1, whatever the number pending',
      },
      {
        name: `pending ${count}: per-order status reads while pending`,
        value: harness.requests('order-info'),
        unit: 'requests',
        target: '= 0',
      },
      {
        name: `pending ${count}: downloads`,
        value: harness.requests('download'),
        unit: 'requests',
        target: `= ${count}`,
      },
      {
        name: `pending ${count}: DigiCert requests per certificate (all)`,
        value: harness.requests() / issued,
        unit: 'requests',
      },
    ];
  } finally {
    await harness.close();
  }
}

const scenario: BenchScenario = {
  name: 'digicert',
  description: 'DigiCert requests per certificate: issued at once, and with 100 / 1,000 orders pending',
  async run({ quick }) {
    const pool = await KeyPool.generate({ 'rsa-2048': 4, 'ec-p256': 4 });
    const sizes = quick ? [20, 200] : [100, 1_000];
    return [
      ...(await immediate(pool, quick ? 100 : 1_000)),
      ...(await pending(pool, sizes[0] as number, quick ? 2_000 : 5_000)),
      ...(await pending(pool, sizes[1] as number, quick ? 2_000 : 5_000)),
    ];
  },
};
export default scenario;
