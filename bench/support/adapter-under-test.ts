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
import { encodeProcessCreatedEvent } from '../../src/sandbox/index.ts';
import { deepMerge } from '../../test/support/adapter-rig.ts';

export type BenchStore = 'memory' | 'sqlite' | 'firestore';

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

/** The documented defaults, pointed at the sandbox and the bench's CA, with `overrides` deep-merged on top. */
export function benchConfig(
  endpoint: string,
  work: BenchWorkDir,
  store: BenchStore,
  overrides: Record<string, unknown> = {},
): Config {
  const storeBlock =
    store === 'sqlite'
      ? { type: 'sqlite', path: path.join(work.dir, `state-${Date.now()}.db`) }
      : store === 'firestore'
        ? { type: 'firestore', projectId: 'certprov-bench', collection: `bench-${Date.now().toString(36)}` }
        : { type: 'memory' };
  return compileConfig(
    deepMerge(
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
    ),
    { source: 'bench', baseDir: work.dir, purpose: 'demo' },
  );
}

export interface RunningAdapter {
  readonly adapter: Adapter;
  readonly source: InProcessMessageSource;
  readonly metrics: Metrics;
  notify(processId: string): void;
  stop(): Promise<void>;
}

export function benchLogger(config: Config): Logger {
  return createLogger({ level: config.log.level });
}

export async function startAdapter(config: Config): Promise<RunningAdapter> {
  const log = benchLogger(config);
  const metrics = new Metrics({ defaultMetrics: false });
  const source = new InProcessMessageSource({ maxInFlight: config.pubsub.maxInFlight, redeliveryDelayMs: 200 });
  const adapter = await Adapter.create({ config, log, metrics, source, serveHttp: false });
  await adapter.start();
  return {
    adapter,
    source,
    metrics,
    notify: (processId) =>
      void source.publish(encodeProcessCreatedEvent({ processId, customerId: config.chrome.customer })),
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
