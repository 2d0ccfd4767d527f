/**
 * A fleet of adapter replicas as it runs on GKE, on one machine: N `certprov run` OS processes on ONE Pub/Sub
 * subscription (emulator) and ONE Firestore collection (emulator), the sandbox tenant in this process as the Chrome
 * API, and one local CA directory shared by every replica (its `issued.jsonl` journals each issuance).
 *
 * The tests (replicas, crash, faults) and `npm run bench -- --faults` drive it and read the same figures from it:
 * processes, deliveries, lost, double signData, duplicate CA issuances, wall time. Imports nothing from vitest.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Firestore } from '@google-cloud/firestore';
import { PubSub, type Subscription, type Topic } from '@google-cloud/pubsub';
import { initLocalCa } from '../../src/ca/local/init.ts';
import type { IssuedJournalEntry } from '../../src/ca/local/local-ca.ts';
import { SandboxTenant, type KeyPool, type SandboxTenantOptions } from '../../src/sandbox/index.ts';
import { AdapterProcess, killAllAdapters, writeAdapterConfig } from './adapter-process.ts';

export const CLUSTER_PROJECT = 'certprov-test';

export interface ClusterOptions {
  readonly label: string;
  readonly pubsubEmulatorHost: string;
  /** Where the replicas reach Firestore (the emulator, or a TCP proxy in front of it). */
  readonly firestoreHost: string;
  /**
   * The replicas' store. `firestore` (default): one collection shared by every replica. `sqlite`: one file in the
   * work directory — ONE replica only (DESIGN.md §8); each restart reopens the same file.
   */
  readonly store?: 'firestore' | 'sqlite';
  readonly keyPool: KeyPool;
  readonly replicas: number;
  /** Scheduler settings for every replica (durations as strings). Defaults suit a 2-core machine. */
  readonly scheduler?: Readonly<Record<string, string | number>>;
  readonly sandbox?: SandboxTenantOptions;
  /** Log level of the replicas. Default `info` (the tests read "lease lost" lines). */
  readonly logLevel?: string;
}

export interface ClusterFigures {
  readonly processes: number;
  /** Notifications published (each process at least once). */
  readonly deliveries: number;
  readonly issued: number;
  readonly failed: number;
  /** Not finished at all: neither a certificate nor a failure on the process. */
  readonly lost: number;
  readonly signDataCalls: number;
  /** Processes the sandbox saw a second signData for (the device failed them). */
  readonly doubleSignData: number;
  /** CA issuances beyond the first, per process, from the CA journal. */
  readonly duplicateIssuances: number;
  /** Issued processes whose uploaded certificate is not the one the CA journaled for them. */
  readonly foreignCertificates: number;
  readonly failureMessages: readonly string[];
}

/** Scheduler defaults for tests: short leases (a dead replica's work moves on within seconds), quick polls. */
export const TEST_SCHEDULER = {
  lease: '10s',
  pollInterval: '250ms',
  maxConcurrent: 16,
  retryInitial: '200ms',
  retryMax: '2s',
  maxAttempts: 40,
  signaturePollInitial: '100ms',
  signaturePollMax: '1s',
} as const;

interface ReplicaSlot {
  current: AdapterProcess;
  configFile: string;
  generation: number;
}

export class ReplicaCluster {
  readonly options: ClusterOptions;
  readonly workDir: string;
  readonly caDir: string;
  readonly collection: string;
  readonly tenant: SandboxTenant;
  readonly subscriptionName: string;
  private readonly pubsub: PubSub;
  private readonly topic: Topic;
  private readonly subscription: Subscription;
  private readonly slots: ReplicaSlot[] = [];
  private readonly ids: string[] = [];
  private readonly deliveries = new Map<string, number>();
  private db: Firestore | undefined;

  private constructor(
    options: ClusterOptions,
    parts: {
      workDir: string;
      caDir: string;
      collection: string;
      tenant: SandboxTenant;
      pubsub: PubSub;
      topic: Topic;
      subscription: Subscription;
    },
  ) {
    this.options = options;
    this.workDir = parts.workDir;
    this.caDir = parts.caDir;
    this.collection = parts.collection;
    this.tenant = parts.tenant;
    this.pubsub = parts.pubsub;
    this.topic = parts.topic;
    this.subscription = parts.subscription;
    this.subscriptionName = parts.subscription.name;
  }

  /** Creates the sandbox, the CA, the topic and subscription; replicas start with {@link startReplicas}. */
  static async create(options: ClusterOptions): Promise<ReplicaCluster> {
    const suffix = `${Date.now().toString(36)}-${Math.random().toString(16).slice(2, 8)}`;
    const workDir = await mkdtemp(path.join(tmpdir(), `certprov-${options.label}-`));
    const caDir = path.join(workDir, 'ca');
    await initLocalCa({ directory: caDir, keyType: 'ec', subject: 'CN=certprov replica test CA' });
    await mkdir(path.join(workDir, 'logs'));
    const tenant = await SandboxTenant.start({ signDelayMs: 20, ...options.sandbox });
    const pubsub = new PubSub({
      projectId: CLUSTER_PROJECT,
      apiEndpoint: options.pubsubEmulatorHost,
      emulatorMode: true,
      universeDomain: 'googleapis.com',
    });
    const [topic] = await pubsub.createTopic(`t-${options.label}-${suffix}`);
    // A short ack deadline: messages held by a killed replica come back after 10 s (Pub/Sub's minimum).
    const [subscription] = await topic.createSubscription(`t-${options.label}-${suffix}-sub`, {
      ackDeadlineSeconds: 10,
    });
    return new ReplicaCluster(options, {
      workDir,
      caDir,
      collection: `replicas-${options.label}-${suffix}`,
      tenant,
      pubsub,
      topic,
      subscription,
    });
  }

  /** The configuration every replica runs with (`chromeEndpoint` lets one replica reach the sandbox through a proxy). */
  adapterConfig(chromeEndpoint: string = this.tenant.endpoint): Record<string, unknown> {
    return {
      instanceId: 'certprov-replicas',
      chrome: {
        endpoint: chromeEndpoint,
        credentials: 'none',
        signatureTimeout: '2m',
        requestTimeout: '10s',
        // These tests measure replicas against the sandbox, not the project's Chrome API quota: the default budget
        // (2,400 requests a minute) would make a 1,000-process run wait on tokens for two minutes. The budget keeps
        // working here (tokens still come from the shared store); its limits are tested in the rate-limiter tests.
        rateLimit: { requestsPerMinute: 120_000 },
      },
      pubsub: { subscription: this.subscriptionName, maxInFlight: 100, maxExtension: '10m', closeTimeout: '3s' },
      store: this.storeConfig(),
      scheduler: { ...TEST_SCHEDULER, ...this.options.scheduler },
      caConnections: { default_ca_config: { type: 'local', directory: this.caDir } },
      profiles: {
        device_profile: {
          subject: 'CN={{device.serialNumber}},O=certprov replicas',
          subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
          validity: '30d',
        },
        user_profile: {
          subject: 'CN={{user.userPrimaryEmail}},O=certprov replicas',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
        },
      },
      http: { host: '127.0.0.1', port: 0 },
      log: { level: this.options.logLevel ?? 'info' },
      shutdown: { gracePeriod: '3s' },
    };
  }

  /** The sqlite file of a `store: 'sqlite'` cluster. */
  get sqlitePath(): string {
    return path.join(this.workDir, 'state', 'certprov.db');
  }

  private storeConfig(): Record<string, unknown> {
    return this.options.store === 'sqlite'
      ? { type: 'sqlite', path: this.sqlitePath }
      : { type: 'firestore', projectId: CLUSTER_PROJECT, collection: this.collection };
  }

  /** Starts `options.replicas` replicas (or `count`) and waits until each is subscribed. */
  async startReplicas(
    count = this.options.replicas,
    chromeEndpoints: readonly (string | undefined)[] = [],
  ): Promise<void> {
    const started: AdapterProcess[] = [];
    for (let i = 0; i < count; i += 1) {
      const index = this.slots.length;
      const configFile = await writeAdapterConfig(
        path.join(this.workDir, `replica-${index}.json`),
        this.adapterConfig(chromeEndpoints[i] ?? this.tenant.endpoint),
      );
      const slot: ReplicaSlot = { current: this.spawn(index, configFile, 0), configFile, generation: 0 };
      this.slots.push(slot);
      started.push(slot.current);
    }
    await Promise.all(started.map((p) => p.waitStarted()));
  }

  get replicas(): readonly AdapterProcess[] {
    return this.slots.map((s) => s.current);
  }

  replica(index: number): AdapterProcess {
    const slot = this.slots[index];
    if (slot === undefined) throw new Error(`no replica ${index}`);
    return slot.current;
  }

  /**
   * SIGKILLs replica `index` (if alive) and starts a new process in its place, like a pod restarted by its
   * Deployment. Resolves once the new process is subscribed, unless `wait` is false.
   */
  async restart(index: number, options: { wait?: boolean } = {}): Promise<AdapterProcess> {
    const slot = this.slots[index];
    if (slot === undefined) throw new Error(`no replica ${index}`);
    await slot.current.kill();
    slot.generation += 1;
    slot.current = this.spawn(index, slot.configFile, slot.generation);
    const started = slot.current.waitStarted();
    if (options.wait ?? true) await started;
    else started.catch(() => undefined); // a replica killed while starting is part of the test
    return slot.current;
  }

  /** Every replica process started so far, restarted generations included. */
  get generations(): number {
    return this.slots.reduce((n, s) => n + s.generation + 1, 0);
  }

  /** Creates `n` sandbox processes (RSA/EC × device/user) without notifying anyone yet. */
  createProcesses(n: number): string[] {
    const ids = this.tenant.createProcesses(n, {
      pool: this.options.keyPool,
      ecShare: 0.5,
      userShare: 0.5,
      affiliatedShare: 0.5,
    });
    this.ids.push(...ids);
    return ids;
  }

  /** Creates `n` sandbox processes and publishes each notification `copies` times (back to back: duplicates race). */
  async createAndPublish(n: number, copies = 2): Promise<string[]> {
    const ids = this.createProcesses(n);
    await this.publish(ids, copies);
    return ids;
  }

  /** Publishes the notifications of `ids` (already created) `copies` times each. */
  async publish(ids: readonly string[], copies = 1): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const id of ids) {
      for (let c = 0; c < copies; c += 1) {
        sends.push(
          this.tenant.notify(id, { encoding: c % 2 === 0 ? 'json-camel' : 'protobuf' }, async (data, attributes) => {
            await this.topic.publishMessage({ data, attributes });
          }),
        );
      }
    }
    await Promise.all(sends);
    for (const id of ids) this.deliveries.set(id, (this.deliveries.get(id) ?? 0) + copies);
  }

  /** Waits until every process created so far (or `ids`) has a certificate or a failure. */
  async waitFinished(timeoutMs: number, ids: readonly string[] = this.ids): Promise<void> {
    await this.tenant.waitUntilFinished(ids, timeoutMs);
  }

  /** The figures over `ids` (default: every process created so far). */
  async figures(ids: readonly string[] = this.ids): Promise<ClusterFigures> {
    const journal = await this.journal();
    let issued = 0;
    let failed = 0;
    let lost = 0;
    let signDataCalls = 0;
    let doubleSignData = 0;
    let duplicateIssuances = 0;
    let foreignCertificates = 0;
    let deliveries = 0;
    const failureMessages: string[] = [];
    for (const id of ids) {
      deliveries += this.deliveries.get(id) ?? 0;
      const resource = this.tenant.process(id);
      const counters = this.tenant.counters(id);
      signDataCalls += counters.signDataCalls;
      if (counters.doubleSignData > 0) doubleSignData += 1;
      const entries = journal.get(id) ?? [];
      duplicateIssuances += Math.max(0, entries.length - 1);
      if (resource.issuedCertificate !== undefined) {
        issued += 1;
        const serial = normalizeSerial(new X509Certificate(resource.issuedCertificate).serialNumber);
        if (!entries.some((e) => normalizeSerial(e.serial) === serial)) foreignCertificates += 1;
      } else if (resource.failureMessage !== undefined) {
        failed += 1;
        failureMessages.push(resource.failureMessage);
      } else {
        lost += 1;
      }
    }
    return {
      processes: ids.length,
      deliveries,
      issued,
      failed,
      lost,
      signDataCalls,
      doubleSignData,
      duplicateIssuances,
      foreignCertificates,
      failureMessages,
    };
  }

  /** Every journaled issuance, by process id. */
  async journal(): Promise<Map<string, IssuedJournalEntry[]>> {
    const text = await readFile(path.join(this.caDir, 'issued.jsonl'), 'utf8').catch(() => '');
    const byProcess = new Map<string, IssuedJournalEntry[]>();
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const entry = JSON.parse(line) as IssuedJournalEntry;
      const list = byProcess.get(entry.processId) ?? [];
      list.push(entry);
      byProcess.set(entry.processId, list);
    }
    return byProcess;
  }

  /** A client on the replicas' Firestore (for reading records and leases the way an operator would). */
  firestore(): Firestore {
    this.db ??= new Firestore({
      projectId: CLUSTER_PROJECT,
      host: this.options.firestoreHost,
      ssl: false,
      universeDomain: 'googleapis.com',
    });
    return this.db;
  }

  /** Process records in the replicas' collection. */
  async recordCount(): Promise<number> {
    if (this.options.store === 'sqlite') {
      if (!existsSync(this.sqlitePath)) return 0;
      // A second connection beside the running replica's: WAL lets it read while the replica writes.
      const db = new DatabaseSync(this.sqlitePath, { readOnly: true });
      try {
        return (db.prepare('SELECT count(*) AS n FROM processes').get() as { n: number }).n;
      } finally {
        db.close();
      }
    }
    return (await this.firestore().collection(this.collection).count().get()).data().count;
  }

  /** How many log lines of every replica process so far (restarted ones included) start with each prefix. */
  async countLogMessages(prefixes: readonly string[]): Promise<Record<string, number>> {
    const counts: Record<string, number> = Object.fromEntries(prefixes.map((p) => [p, 0]));
    const dir = path.join(this.workDir, 'logs');
    for (const file of await readdir(dir)) {
      const text = await readFile(path.join(dir, file), 'utf8');
      for (const line of text.split('\n')) {
        const match = /"message":"([^"]*)"/.exec(line);
        if (match === null) continue;
        for (const prefix of prefixes)
          if ((match[1] ?? '').startsWith(prefix)) counts[prefix] = (counts[prefix] ?? 0) + 1;
      }
    }
    return counts;
  }

  /** Kills every replica, closes the sandbox, deletes the Pub/Sub resources and the work directory (keeps logs if asked). */
  async close(options: { keepLogs?: boolean } = {}): Promise<void> {
    await killAllAdapters();
    if (process.env.CERTPROV_KEEP_TEST_LOGS === '1') {
      console.log(`replica logs kept in ${path.join(this.workDir, 'logs')}`);
      options = { ...options, keepLogs: true };
    }
    await this.tenant.close().catch(() => undefined);
    await Promise.allSettled([this.subscription.delete(), this.topic.delete()]);
    await this.db?.terminate().catch(() => undefined);
    await this.pubsub.close().catch(() => undefined);
    if (!options.keepLogs) await rm(this.workDir, { recursive: true, force: true });
  }

  private spawn(index: number, configFile: string, generation: number): AdapterProcess {
    return AdapterProcess.spawn({
      name: `replica-${index}.${generation}`,
      configFile,
      logFile: path.join(this.workDir, 'logs', `replica-${index}.${generation}.log`),
      env: {
        PUBSUB_EMULATOR_HOST: this.options.pubsubEmulatorHost,
        FIRESTORE_EMULATOR_HOST: this.options.firestoreHost,
      },
    });
  }
}

function normalizeSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+/, '');
}

/** A one-line summary for test output and the benchmark. */
export function formatFigures(
  title: string,
  f: ClusterFigures,
  wallMs: number,
  extra: Readonly<Record<string, string | number>> = {},
): string {
  const parts = [
    `processes ${f.processes}`,
    `deliveries ${f.deliveries} (duplicates ${f.deliveries - f.processes})`,
    `issued ${f.issued}`,
    `failed ${f.failed}`,
    `lost ${f.lost}`,
    `double signData ${f.doubleSignData}`,
    `duplicate CA issuances ${f.duplicateIssuances}`,
    `wall ${(wallMs / 1000).toFixed(1)} s`,
    ...Object.entries(extra).map(([k, v]) => `${k} ${v}`),
  ];
  return `${title}: ${parts.join(' | ')}`;
}
