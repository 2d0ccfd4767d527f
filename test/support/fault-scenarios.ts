/**
 * The fault scenarios run against a {@link ReplicaCluster}: the crash test (SIGKILL a random replica at random
 * moments and restart it), Chrome API faults from the sandbox, Firestore faults through a TCP proxy (a stall, cut
 * connections, an emulator restart), and the lease-expiry race (a replica frozen with SIGSTOP past its lease).
 * Shared by the integration tests (which assert on the figures) and `npm run bench -- --faults` (which reports
 * them). Imports nothing from vitest.
 */
import { performance } from 'node:perf_hooks';
import type { ClusterFigures, ReplicaCluster } from './replica-cluster.ts';
import type { RestartableFirestoreEmulator } from './firestore-emulator-restart.ts';
import type { TcpProxy } from './tcp-proxy.ts';
import { seededRandom } from '../../src/sandbox/seeded-random.ts';

export interface ScenarioResult {
  readonly name: string;
  readonly figures: ClusterFigures;
  readonly wallMs: number;
  /** Scenario-specific counts (kills, records held by the paused replica, …). */
  readonly extra: Readonly<Record<string, number>>;
  /** Set when the processes did not all finish within the timeout. */
  readonly timedOut: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function finish(
  cluster: ReplicaCluster,
  name: string,
  ids: readonly string[],
  started: number,
  timeoutMs: number,
  extra: Record<string, number> = {},
): Promise<ScenarioResult> {
  let timedOut = false;
  await cluster.waitFinished(timeoutMs, ids).catch(() => {
    timedOut = true;
  });
  const wallMs = performance.now() - started;
  return { name, figures: await cluster.figures(ids), wallMs, extra, timedOut };
}

export interface CrashScenarioOptions {
  readonly processes: number;
  readonly kills: number;
  readonly seed: number;
  /** Time between two kills, drawn uniformly from this range (ms). Default 300–1500. */
  readonly gapMs?: readonly [number, number];
  /** How long the victim has worked (since its first step) when it is killed, drawn uniformly (ms). Default 500–2500. */
  readonly busyMs?: readonly [number, number];
  readonly timeoutMs?: number;
}

/**
 * Publishes every notification twice, then SIGKILLs a random running replica at random moments and starts a new
 * process in its place without waiting for it (a pod restarted by its Deployment). The first kill lands while
 * notifications are still being pulled and recorded; the others while records are leased, signData is in flight,
 * certificates are issued or uploaded.
 *
 * Only one kill falls into the intake phase because Google's Pub/Sub emulator keeps routing messages to the streams
 * of killed subscribers and hands them out again only after 20–30 s (the real service notices a closed stream):
 * kills during the whole intake would mostly measure that artifact.
 */
export async function crashScenario(cluster: ReplicaCluster, options: CrashScenarioOptions): Promise<ScenarioResult> {
  const random = seededRandom(options.seed);
  const [minGap, maxGap] = options.gapMs ?? [300, 1_500];
  const [minBusy, maxBusy] = options.busyMs ?? [500, 2_500];
  const started = performance.now();
  // Some latency on every Chrome call (30–90 ms) keeps requests in flight longer, so kills also land between a
  // signData that reached the device and the moment its answer is recorded.
  cluster.tenant.faults = { latencyMs: 30, jitterMs: 60, seed: options.seed };
  const ids = await cluster.createAndPublish(options.processes, 2);
  const waitUntil = async (condition: () => Promise<boolean> | boolean, timeoutMs: number) => {
    for (const until = Date.now() + timeoutMs; !(await condition()) && Date.now() < until;) await sleep(50);
  };
  await waitUntil(() => cluster.tenant.stats().claimed >= options.processes / 20, 30_000);
  // After the intake kill: every notification recorded, or the count standing still for 1.5 s — the messages the
  // killed stream held come back only after the emulator's 20–30 s, and the work already recorded meanwhile is what
  // the other kills are for (waiting for those messages too would let the fleet finish nearly everything first).
  const intakeSettled = async () => {
    let last = -1;
    let sameSince = Date.now();
    await waitUntil(async () => {
      const count = await cluster.recordCount();
      if (count !== last) [last, sameSince] = [count, Date.now()];
      return count >= options.processes || Date.now() - sameSince >= 1_500;
    }, 120_000);
  };
  let kills = 0;
  let working = 0;
  for (let k = 0; k < options.kills; k += 1) {
    if (k === 1) await intakeSettled();
    await sleep(minGap + random() * (maxGap - minGap));
    // The victim: a random replica that has been working for a while (its first step `busyMs` ago, a step in the
    // last second), so it holds leases and has calls in flight at every stage — not one still loading its modules or
    // only just subscribed. One replica restarts at a time (the others wait for it to come back): kills that take the
    // whole fleet down again and again only strand work until leases expire. Should the work run out first, any
    // started replica after 10 s.
    const busyMs = minBusy + random() * (maxBusy - minBusy);
    const waitFrom = Date.now();
    let up: number[] = [];
    for (const until = waitFrom + 60_000; up.length === 0 && Date.now() < until; await sleep(25)) {
      const now = Date.now();
      const anyStarted = now - waitFrom > 10_000;
      const allUp = cluster.replicas.every((r) => r.isStarted);
      up = cluster.replicas.flatMap((r, i) =>
        r.isStarted &&
        r.running &&
        (anyStarted || (allUp && r.firstStepAt > 0 && now - r.firstStepAt >= busyMs && now - r.lastStepAt < 1_000))
          ? [i]
          : [],
      );
    }
    const victim = up[Math.floor(random() * up.length)] ?? 0;
    if (Date.now() - cluster.replica(victim).lastStepAt < 1_000) working += 1;
    await cluster.restart(victim, { wait: false });
    kills += 1;
  }
  // A restart is complete once the new process is up: also when the work ran out before the last kill, the figures
  // and the logs are read after every replica started (a last restart still loading would be missing from both).
  await Promise.all(cluster.replicas.map((r) => r.waitStarted()));
  const result = await finish(cluster, 'crash', ids, started, options.timeoutMs ?? 240_000, {
    kills,
    killsOfWorkingReplicas: working,
    seed: options.seed,
  });
  cluster.tenant.faults = {};
  // Evidence that kills hit the windows that matter: work resumed from the Chrome resource or the CA journal.
  const seen = await cluster.countLogMessages([RESUMED_SIGN_DATA, RECONCILED_ISSUE, 'lease lost']);
  return {
    ...result,
    extra: {
      ...result.extra,
      resumedAfterSignData: seen[RESUMED_SIGN_DATA] ?? 0,
      reconciledIssues: seen[RECONCILED_ISSUE] ?? 0,
      leaseLost: seen['lease lost'] ?? 0,
    },
  };
}

/** Log messages of the adapter this module counts (src/provisioning/steps/start.ts, src/ca/local/local-ca.ts). */
const RESUMED_SIGN_DATA = 'signData already requested; resuming';
const RECONCILED_ISSUE = 'local CA: returning the certificate already issued';

/** Chrome API faults from the sandbox while processes run: 503 and 429 bursts, random errors, latency spikes. */
export async function chromeFaultScenario(
  cluster: ReplicaCluster,
  options: { processes: number; timeoutMs?: number },
): Promise<ScenarioResult> {
  const started = performance.now();
  const ids = await cluster.createAndPublish(options.processes, 2);
  const { tenant } = cluster;
  await sleep(500);
  tenant.faults = { burst503: 60, burst429: 60 };
  await sleep(1_500);
  tenant.faults = { rate503: 0.1, rate429: 0.1, latencyMs: 100, jitterMs: 400, seed: 7 };
  await sleep(3_000);
  tenant.faults = { latencyMs: 1_500, jitterMs: 500 };
  await sleep(2_000);
  tenant.faults = {};
  return finish(cluster, 'chrome-faults', ids, started, options.timeoutMs ?? 180_000);
}

export interface FirestoreFaultOptions {
  readonly processes: number;
  /** The proxy every replica reaches Firestore through. */
  readonly proxy: TcpProxy;
  readonly emulator: RestartableFirestoreEmulator;
  readonly timeoutMs?: number;
}

/**
 * Firestore faults while processes run: a 4 s stall (every call hangs), connections reset twice, then a restart of
 * the emulator (traffic stopped, data exported, JVM replaced, data back) — about 6 s of outage.
 */
export async function firestoreFaultScenario(
  cluster: ReplicaCluster,
  options: FirestoreFaultOptions,
): Promise<ScenarioResult> {
  const { proxy, emulator } = options;
  const started = performance.now();
  const ids = await cluster.createAndPublish(options.processes, 2);
  await sleep(1_000);
  proxy.freeze();
  await sleep(4_000);
  proxy.thaw();
  await sleep(1_000);
  proxy.cut();
  await sleep(1_000);
  proxy.cut();
  await sleep(1_500);
  const outage = performance.now();
  proxy.freeze();
  await sleep(300); // requests already forwarded finish inside the emulator before the export
  await emulator.restart();
  proxy.cut();
  proxy.thaw();
  const restartMs = Math.round(performance.now() - outage);
  return finish(cluster, 'firestore-faults', ids, started, options.timeoutMs ?? 180_000, {
    restartOutageMs: restartMs,
  });
}

export interface LeaseRaceOptions {
  readonly processes: number;
  /** Index of the replica to freeze; it must reach the Chrome API through `chromeProxy`. */
  readonly victim: number;
  readonly chromeProxy: TcpProxy;
  readonly timeoutMs?: number;
}

/**
 * The lease-expiry race: while work is in flight, the victim's Chrome connections stall for 2 s (so every process
 * it holds is waiting on a Chrome answer — none is between a check and an unsafe call), then the victim is frozen
 * with SIGSTOP and the answers are let through to its sockets. The other replicas take its processes over once the
 * leases expire and finish everything. Then SIGCONT: the victim wakes up with answers for processes that are no
 * longer its own, and must not call signData or have a certificate issued for any of them.
 */
export async function leaseRaceScenario(cluster: ReplicaCluster, options: LeaseRaceOptions): Promise<ScenarioResult> {
  const started = performance.now();
  const ids = await cluster.createAndPublish(options.processes, 2);
  const victim = cluster.replica(options.victim);
  // Let work get going on every replica.
  const deadline = Date.now() + 30_000;
  while (cluster.tenant.stats().signDataCalls < options.processes / 4 && Date.now() < deadline) await sleep(50);
  // What the victim holds at `at`: live leases on processes not done.
  const leasesHeld = async (at: number) => {
    const held = await cluster
      .firestore()
      .collection(cluster.collection)
      .where('lease.owner', '==', victim.replicaId)
      .where('active', '==', true)
      .get();
    return held.docs.filter((d) => (d.get('lease.expiresAt') as number) > at).length;
  };
  options.chromeProxy.freeze();
  await sleep(2_000);
  // A victim slowed by a loaded machine (slow store calls, so fewer processes at once) may have had nothing in flight
  // when the stall began. It leases due work during the stall; once it holds some, 2 s more let that work reach its
  // (stalled) Chrome call too, so the freeze still finds every leased process waiting on Chrome.
  if ((await leasesHeld(Date.now())) === 0) {
    const deadline = Date.now() + 20_000;
    while ((await leasesHeld(Date.now())) === 0 && Date.now() < deadline) await sleep(100);
    await sleep(2_000);
  }
  victim.pause();
  const pausedAt = Date.now();
  options.chromeProxy.thaw();

  // What the frozen replica holds right now (it can change nothing until SIGCONT).
  const heldByVictim = await leasesHeld(pausedAt);

  // Everything must finish while the victim is still frozen: its processes go to the others once its leases expire.
  let timedOut = false;
  await cluster.waitFinished(options.timeoutMs ?? 120_000, ids).catch(() => {
    timedOut = true;
  });
  const pausedMs = Date.now() - pausedAt;
  const finishedWhilePaused = timedOut ? 0 : 1;
  victim.resume();
  const resumedAt = Date.now();
  // Give the victim time to act on what it was holding (it must not), then count what it said.
  await sleep(4_000);
  const leaseLostAfterResume = (await victim.logLines()).filter(
    (l) =>
      typeof l.message === 'string' && l.message.startsWith('lease lost') && Date.parse(String(l.time)) >= resumedAt,
  ).length;
  const result = await finish(cluster, 'lease-race', ids, started, 1_000, {
    heldByVictim,
    pausedMs,
    finishedWhilePaused,
    leaseLostAfterResume,
  });
  return { ...result, timedOut: timedOut || result.timedOut };
}
