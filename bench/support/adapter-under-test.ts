/**
 * The adapter as the benchmark runs it: the same Adapter class as `run`, an in-process message source, a local CA in
 * a temporary directory, the Chrome API being the sandbox in another OS process (bench/support/sandbox-process.ts).
 * Logs at warn (what production writes per process at info is measured apart), no metrics server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Adapter, createCertificateAuthorities } from '../../src/adapter.ts';
import { initLocalCa } from '../../src/ca/local/init.ts';
import type { CertificateAuthority } from '../../src/ca/types.ts';
import { compileConfig, type Config } from '../../src/config/load.ts';
import { createLogger, type Logger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { InProcessMessageSource } from '../../src/pubsub/in-process-source.ts';
import { createStore } from '../../src/store/create.ts';
import type { ProcessStore } from '../../src/store/types.ts';
import { encodeProcessCreatedEvent } from '../../src/sandbox/index.ts';
import { deepMerge } from '../../test/support/adapter-rig.ts';

export type BenchStore = 'memory' | 'sqlite' | 'firestore';

/** The Google Cloud project of the benchmark's Firestore store and Pub/Sub topics (emulators). */
export const BENCH_PROJECT = 'certprov-bench';

export interface BenchWorkDir {
  readonly dir: string;
  readonly caDirectory: string;
  close(): Promise<void>;
}

export async function benchWorkDir(): Promise<BenchWorkDir> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-bench-'));
  const caDirectory = path.join(dir, 'ca');
  await initLocalCa({ directory: caDirectory, keyType: 'ec', subject: 'CN=certprov bench CA' });
  return { dir, caDirectory, close: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The documented defaults, pointed at the sandbox and the bench's CA, with `overrides` deep-merged on top, as the
 * configuration file holds it (the fleet scenario writes it for `certprov run` processes).
 */
export function benchRawConfig(
  endpoint: string,
  work: BenchWorkDir,
  store: BenchStore,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const storeBlock =
    store === 'sqlite'
      ? { type: 'sqlite', path: path.join(work.dir, `state-${Date.now()}.db`) }
      : store === 'firestore'
        ? { type: 'firestore', projectId: BENCH_PROJECT, collection: `bench-${Date.now().toString(36)}` }
        : { type: 'memory' };
  return deepMerge(
    {
      instanceId: 'certprov-bench',
      chrome: { endpoint, credentials: 'none' },
      store: storeBlock,
      caConnections: { default_ca_config: { type: 'local', directory: work.caDirectory } },
      profiles: {
        device_profile: {
          subject: 'CN={{device.serialNumber}},O=certprov bench',
          subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
          validity: '30d',
        },
        user_profile: {
          subject: 'CN={{user.userPrimaryEmail}},O=certprov bench',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
        },
      },
      http: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
    },
    overrides,
  );
}

/** {@link benchRawConfig}, compiled. */
export function benchConfig(
  endpoint: string,
  work: BenchWorkDir,
  store: BenchStore,
  overrides: Record<string, unknown> = {},
): Config {
  return compileConfig(benchRawConfig(endpoint, work, store, overrides), {
    source: 'bench',
    baseDir: work.dir,
    purpose: 'demo',
  });
}

/** Store methods that write; every other method called on the store is a read. */
const STORE_WRITES: ReadonlySet<string> = new Set([
  'create',
  'tryLease',
  'reschedule',
  'update',
  'renewLease',
  'recordCertificate',
  'setRevocation',
  'wakeByLookupKey',
  'takeToken',
  'tryNamedLease',
  'releaseNamedLease',
]);

export interface StoreOps {
  readonly reads: number;
  readonly writes: number;
  /** Writes that were rate-budget tokens (one per Chrome API request). */
  readonly tokens: number;
  /** sqlite: write transactions committed, and WAL fsyncs (several writes share each); 0 for the other stores. */
  readonly commits: number;
  readonly fsyncs: number;
  /** sqlite: WAL checkpoint rounds on the worker thread, and rounds finished on the store's own connection. */
  readonly checkpoints: number;
  readonly checkpointsHere: number;
}

/** The store with every call counted (a Proxy: the store itself is untouched). */
function countingStore(store: ProcessStore): { store: ProcessStore; ops: () => StoreOps } {
  const counts = { reads: 0, writes: 0, tokens: 0 };
  const proxy = new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'close') return value;
      return (...args: unknown[]) => {
        if (STORE_WRITES.has(property)) counts.writes += 1;
        else counts.reads += 1;
        if (property === 'takeToken') counts.tokens += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const file = (store as { counters?: Omit<StoreOps, 'reads' | 'writes' | 'tokens'> }).counters;
  return {
    store: proxy,
    ops: () => ({
      ...counts,
      commits: file?.commits ?? 0,
      fsyncs: file?.fsyncs ?? 0,
      checkpoints: file?.checkpoints ?? 0,
      checkpointsHere: file?.checkpointsHere ?? 0,
    }),
  };
}

export interface RunningAdapter {
  readonly adapter: Adapter;
  readonly source: InProcessMessageSource;
  readonly metrics: Metrics;
  notify(processId: string): void;
  /** Store calls so far. */
  storeOps(): StoreOps;
  stop(): Promise<void>;
}

export function benchLogger(config: Config): Logger {
  return createLogger({ level: config.log.level });
}

export async function startAdapter(config: Config): Promise<RunningAdapter> {
  const log = benchLogger(config);
  const metrics = new Metrics({ defaultMetrics: false });
  const source = new InProcessMessageSource({ maxInFlight: config.pubsub.maxInFlight, redeliveryDelayMs: 200 });
  const counted = countingStore(await createStore(config, log));
  const adapter = await Adapter.create({ config, log, metrics, source, store: counted.store, serveHttp: false });
  await adapter.start();
  return {
    adapter,
    source,
    metrics,
    notify: (processId) =>
      void source.publish(encodeProcessCreatedEvent({ processId, customerId: config.chrome.customer })),
    storeOps: counted.ops,
    stop: () => adapter.stop(5_000),
  };
}

/** The CA connection of `config` on its own, for the floor (the same backend the adapter uses). */
export async function standaloneCa(config: Config): Promise<CertificateAuthority> {
  const log = benchLogger(config);
  const cas = await createCertificateAuthorities(config, log, new Metrics({ defaultMetrics: false }));
  const ca = cas.get('default_ca_config');
  if (ca === undefined) throw new Error('no CA');
  return ca.ca;
}
