/**
 * Graceful shutdown with real signals, against `node src/main.ts run --config …` child processes — the command the
 * container runs — pulling from Google's Pub/Sub emulator and talking to a sandbox tenant in this test process.
 * Devices are slow and every Chrome call has latency, so work is in flight when the signal arrives. A second replica
 * started afterwards must finish every process: nothing is lost, no device is asked to sign twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { initLocalCa } from '../../src/ca/local/init.ts';
import { SandboxTenant, type KeyPool } from '../../src/sandbox/index.ts';
import { VERSION } from '../../src/version.ts';
import { testKeyPool } from '../support/keys.ts';
import { FIRESTORE_TEST_PROJECT, uniqueCollection } from '../support/firestore.ts';
import { freshSubscription, sleep, type FreshSubscription } from '../support/pubsub.ts';
import { probe, scrape } from './operations-scrape.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

type LogLine = Record<string, unknown> & { message: string; severity: string };

/** A running `certprov run` child: its parsed stdout lines, stderr, and exit. */
class RunningAdapter {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
  private readonly started: Promise<number>;

  constructor(configFile: string) {
    this.child = spawn(process.execPath, [path.join(REPO, 'src/main.ts'), 'run', '--config', configFile], {
      cwd: REPO,
      env: {
        ...process.env,
        PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
        // No metadata server here: do not let the Google clients probe for one.
        METADATA_SERVER_DETECTION: 'none',
        FIRESTORE_EMULATOR_HOST: inject('firestoreEmulatorHost'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffer = '';
    let resolvePort: (port: number) => void = () => undefined;
    let rejectPort: (error: Error) => void = () => undefined;
    this.started = new Promise<number>((resolve, reject) => {
      resolvePort = resolve;
      rejectPort = reject;
    });
    // A child that never starts rejects port() for whoever asks; nobody asking is no error.
    this.started.catch(() => undefined);
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (text.trim() === '') continue;
        const line = JSON.parse(text) as LogLine; // every stdout line must be JSON
        this.lines.push(line);
        if (line.message === 'adapter started') resolvePort(line.httpPort as number);
      }
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        rejectPort(new Error(`certprov run exited (${code ?? signal}) before it started:\n${this.stderr}`));
        resolve({ code, signal });
      });
    });
  }

  /** The ops port, once the adapter logged that it started. */
  port(): Promise<number> {
    return this.started;
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  messages(): string[] {
    return this.lines.map((l) => l.message);
  }

  async exitWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; afterMs: number }> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `certprov run did not exit within ${ms} ms; last lines:\n${this.messages().slice(-10).join('\n')}`,
            ),
          ),
        ms,
      );
    });
    try {
      const result = await Promise.race([this.exited, timeout]);
      return { ...result, afterMs: Date.now() - started };
    } finally {
      clearTimeout(timer);
    }
  }
}

let pool: KeyPool;
let work: string;
let caDirectory: string;

beforeAll(async () => {
  pool = await testKeyPool();
  work = await mkdtemp(path.join(tmpdir(), 'certprov-shutdown-'));
  caDirectory = path.join(work, 'ca');
  await initLocalCa({ directory: caDirectory, keyType: 'ec', subject: 'CN=certprov shutdown test CA' });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * A test's own sandbox tenant, subscription and adapters (the tests run at the same time: each waits mostly on slow
 * devices and grace periods). Everything is closed when the test ends — its children by their own handle.
 */
async function setup(
  onTestFinished: (fn: () => Promise<void>) => void,
  label: string,
  tenantOptions: { signDelayMs?: number } = {},
) {
  const children: RunningAdapter[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  onTestFinished(async () => {
    for (const child of children) {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill('SIGKILL');
        await child.exited;
      }
    }
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const tenant = await SandboxTenant.start({ signDelayMs: tenantOptions.signDelayMs ?? 20 });
  cleanups.push(() => tenant.close());
  const subscription: FreshSubscription = await freshSubscription(label);
  cleanups.push(() => subscription.cleanup());
  const writeConfig = async (overrides: {
    gracePeriod: string;
    subscription?: string;
    firestoreCollection?: string;
  }) => {
    const file = path.join(work, `${label}-${Date.now()}.yaml`);
    const config = {
      instanceId: 'certprov-shutdown-test',
      chrome: { endpoint: tenant.endpoint, credentials: 'none', signatureTimeout: '2m', requestTimeout: '20s' },
      pubsub: {
        subscription: overrides.subscription ?? subscription.subscriptionName,
        maxInFlight: 50,
        closeTimeout: '3s',
      },
      store:
        overrides.firestoreCollection === undefined
          ? { type: 'memory' }
          : { type: 'firestore', projectId: FIRESTORE_TEST_PROJECT, collection: overrides.firestoreCollection },
      scheduler: {
        lease: '60s',
        pollInterval: '100ms',
        retryInitial: '100ms',
        retryMax: '1s',
        signaturePollInitial: '100ms',
        signaturePollMax: '300ms',
      },
      caConnections: { default_ca_config: { type: 'local', directory: caDirectory } },
      profiles: {
        device_profile: { subject: 'CN={{device.serialNumber}},O=certprov test', validity: '30d' },
        user_profile: {
          subject: 'CN={{user.userPrimaryEmail}},O=certprov test',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
        },
      },
      http: { host: '127.0.0.1', port: 0 },
      log: { level: 'info' },
      shutdown: { gracePeriod: overrides.gracePeriod },
    };
    await writeFile(file, JSON.stringify(config, null, 2)); // JSON is YAML
    return file;
  };
  const start = (file: string) => {
    const child = new RunningAdapter(file);
    children.push(child);
    return child;
  };
  const notifyAll = async (ids: readonly string[]) => {
    for (const id of ids)
      await tenant.notify(id, { encoding: 'json-camel' }, (data, attributes) =>
        subscription.publish(data, attributes).then(() => undefined),
      );
  };
  return { tenant, subscription, writeConfig, start, notifyAll };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Polls /readyz until the server goes away; the answers seen. */
async function watchReadiness(port: number, stop: Promise<unknown>): Promise<{ status: number; body: string }[]> {
  const seen: { status: number; body: string }[] = [];
  let done = false;
  void stop.then(() => (done = true));
  while (!done) {
    try {
      seen.push(await probe(port, '/readyz'));
    } catch {
      break; // the ops server closed: the adapter is about to exit
    }
    await sleep(20);
  }
  return seen;
}

function expectEveryProcessIssuedOnce(tenant: SandboxTenant, ids: readonly string[]): void {
  for (const id of ids) {
    expect(tenant.process(id).issuedCertificate, id).toBeDefined();
    expect(tenant.counters(id).signDataCalls, `${id}: one signData`).toBe(1);
    expect(tenant.counters(id).uploads, `${id}: one upload`).toBe(1);
  }
  expect(tenant.stats().doubleSignData).toBe(0);
}

// Concurrent: the five tests spend most of their time waiting (devices that sign after seconds, Chrome latency, grace
// periods), each on its own tenant, subscription and adapters.
describe.concurrent('certprov run and signals', () => {
  it('SIGTERM: not ready, in-flight steps finish, unfinished processes are handed back; another replica finishes them', async ({
    onTestFinished,
  }) => {
    const { tenant, writeConfig, start, notifyAll } = await setup(onTestFinished, 'drain', { signDelayMs: 9_000 });
    const config = await writeConfig({ gracePeriod: '20s' });
    tenant.faults = { latencyMs: 800 };
    const a = start(config);
    const port = await a.port();
    const ids = tenant.createProcesses(5, { pool, ecShare: 0.4, userShare: 0.4 });
    await notifyAll(ids);
    // Every device has been asked to sign; the processes now poll their operation (800 ms per call) — steps in flight.
    await until(() => tenant.stats().signDataCalls === ids.length, 30_000, 'signData for every process');

    // What `run` exports besides the adapter's own metrics: build info with the real version, Node.js defaults.
    const metrics = await scrape(port);
    expect(metrics.sum('certprov_build_info', { version: VERSION })).toBe(1);
    expect(metrics.has('certprov_process_start_time_seconds')).toBe(true);
    expect(metrics.has('certprov_nodejs_eventloop_lag_seconds')).toBe(true);
    expect(metrics.sum('certprov_messages_received_total')).toBe(ids.length);
    expect((await probe(port, '/readyz')).status).toBe(200);

    a.signal('SIGTERM');
    const readiness = await watchReadiness(port, a.exited);
    const { code, afterMs } = await a.exitWithin(30_000);
    expect(code).toBe(0);
    // The first answers may predate the signal's delivery; from the first 503 on, it never says ready again.
    const draining = readiness.slice(readiness.findIndex((r) => r.status === 503));
    expect(readiness.some((r) => r.status === 503)).toBe(true);
    expect(draining.every((r) => r.status === 503)).toBe(true);
    expect(draining[0]?.body).toContain('not ready: state draining');
    expect(afterMs).toBeLessThan(20_000);
    const messages = a.messages();
    expect(messages).toContain('signal received; shutting down');
    expect(messages).not.toContain('grace period over; handing back in-flight processes');
    expect(messages.at(-1)).toBe('adapter stopped');
    const handedBack = a.lines.find((l) => l.message === 'stopped pulling from the Pub/Sub subscription');
    expect(handedBack).toBeDefined();
    // Devices sign 9 s after signData: (nearly) everything is still unfinished when the replica has left.
    const unfinished = ids.filter((id) => tenant.process(id).issuedCertificate === undefined);
    expect(unfinished.length).toBeGreaterThan(0);

    // A new replica (a rolling update's new pod) gets the handed-back messages and resumes from the resources.
    tenant.faults = {};
    const b = start(config);
    await b.port();
    await tenant.waitUntilFinished(ids, 45_000);
    expectEveryProcessIssuedOnce(tenant, ids);
    // B resumed each handed-back process from its resource instead of asking the device again.
    const resumed = new Set(
      b.lines.filter((l) => l.message === 'signData already requested; resuming').map((l) => l.processId),
    );
    expect(resumed).toEqual(new Set(unfinished));
    b.signal('SIGTERM');
    expect((await b.exitWithin(15_000)).code).toBe(0);
  });

  it('with Firestore: messages are acked once recorded, and after SIGTERM another replica finishes the work from the store alone', async ({
    onTestFinished,
  }) => {
    const { tenant, writeConfig, start, notifyAll } = await setup(onTestFinished, 'firestore', { signDelayMs: 7_000 });
    const config = await writeConfig({ gracePeriod: '20s', firestoreCollection: uniqueCollection('shutdown') });
    tenant.faults = { latencyMs: 500 };
    const a = start(config);
    const port = await a.port();
    expect(a.lines.find((l) => l.message === 'adapter started')?.store).toBe('firestore');
    const ids = tenant.createProcesses(4, { pool, ecShare: 0.5, userShare: 0.5 });
    await notifyAll(ids);
    await until(() => tenant.stats().signDataCalls === ids.length, 30_000, 'signData for every process');
    // The durable store's ack policy: acknowledged as soon as the record is written, not when finished.
    await until(async () => (await scrape(port)).sum('certprov_messages_acked_total') === ids.length, 10_000, 'acks');

    a.signal('SIGTERM');
    expect((await a.exitWithin(30_000)).code).toBe(0);
    const unfinished = ids.filter((id) => tenant.process(id).issuedCertificate === undefined);
    expect(unfinished.length).toBeGreaterThan(0);

    tenant.faults = {};
    const b = start(config);
    const portB = await b.port();
    await tenant.waitUntilFinished(ids, 45_000);
    expectEveryProcessIssuedOnce(tenant, ids);
    // Nothing came back through Pub/Sub: B found the waiting processes in the shared store.
    // (The outcome is counted right after the upload the tenant saw, so wait for it.)
    await until(
      async () => (await scrape(portB)).sum('certprov_processes_issued_total') === unfinished.length,
      5_000,
      'B counts its issued processes',
    );
    expect((await scrape(portB)).sum('certprov_messages_received_total')).toBe(0);
    b.signal('SIGTERM');
    expect((await b.exitWithin(15_000)).code).toBe(0);
  });

  it('a step still running when the grace period ends is aborted and handed back', async ({ onTestFinished }) => {
    const { tenant, writeConfig, start, notifyAll } = await setup(onTestFinished, 'grace');
    const config = await writeConfig({ gracePeriod: '1s' });
    tenant.faults = { latencyMs: 6_000 };
    const a = start(config);
    const port = await a.port();
    const ids = tenant.createProcesses(3, { pool, ecShare: 0.5, userShare: 0 });
    await notifyAll(ids);
    await until(
      async () => (await scrape(port)).sum('certprov_processes_in_flight') === ids.length,
      20_000,
      'steps in flight',
    );

    a.signal('SIGTERM');
    const { code, afterMs } = await a.exitWithin(20_000);
    expect(code).toBe(0);
    // 1 s grace, then the aborted steps hand back at once — well before the 6 s calls would have returned.
    expect(afterMs).toBeLessThan(1_000 + 5_000 + 3_000);
    const messages = a.messages();
    expect(messages).toContain('grace period over; handing back in-flight processes');
    expect(messages.filter((m) => m === 'shutting down; handing the process back')).toHaveLength(ids.length);
    expect(a.lines.filter((l) => l.severity === 'ERROR' || l.severity === 'CRITICAL')).toEqual([]);

    tenant.faults = {};
    const b = start(config);
    await b.port();
    await tenant.waitUntilFinished(ids, 30_000);
    expectEveryProcessIssuedOnce(tenant, ids);
    b.signal('SIGTERM');
    expect((await b.exitWithin(15_000)).code).toBe(0);
  });

  it('a second signal exits at once', async ({ onTestFinished }) => {
    const { tenant, writeConfig, start, notifyAll } = await setup(onTestFinished, 'twice');
    const config = await writeConfig({ gracePeriod: '60s' });
    tenant.faults = { latencyMs: 20_000 };
    const a = start(config);
    const port = await a.port();
    const ids = tenant.createProcesses(2, { pool, ecShare: 1, userShare: 0 });
    await notifyAll(ids);
    await until(async () => (await scrape(port)).sum('certprov_processes_in_flight') > 0, 20_000, 'a step in flight');

    a.signal('SIGINT');
    await until(() => a.messages().includes('signal received; shutting down'), 5_000, 'the first signal handled');
    await sleep(200);
    expect(a.child.exitCode).toBeNull(); // still draining: the step takes 20 s, the grace period is 60 s
    a.signal('SIGINT');
    const { code, afterMs } = await a.exitWithin(5_000);
    expect(code).toBe(130);
    expect(afterMs).toBeLessThan(3_000);
    expect(a.messages()).toContain('second signal: exiting now');
  });

  it('exits non-zero, saying why, when it cannot start (subscription missing) — it never sits there alive', async ({
    onTestFinished,
  }) => {
    const { writeConfig, start } = await setup(onTestFinished, 'missing');
    const config = await writeConfig({
      gracePeriod: '5s',
      subscription: 'projects/certprov-test/subscriptions/does-not-exist',
    });
    const a = start(config);
    const { code } = await a.exitWithin(30_000);
    expect(code).toBe(1);
    const fatal = a.lines.find((l) => String(l.message).startsWith('the adapter could not start:'));
    expect(fatal?.severity).toBe('CRITICAL');
    expect(String(fatal?.error)).toContain('does-not-exist');
    // The hint is said once: in the fault's own message when it already ends with it, else in `hint`.
    expect(`${String(fatal?.message)} ${String(fatal?.hint)}`).toContain('certprov setup-pubsub');
    // One JSON line says it all (docs/troubleshooting.md); no stack trace anywhere.
    expect(String(fatal?.message)).toContain('does not exist');
    expect(a.stderr).not.toMatch(/\n\s+at /);
  });
});
