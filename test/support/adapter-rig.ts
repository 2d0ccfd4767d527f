/**
 * An adapter wired in-process to the sandbox tenant and a local CA, with either the real Pub/Sub emulator or the
 * in-process source — the same Adapter class `run` uses. No vitest imports, so benchmarks can use it too.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ClientConfig } from '@google-cloud/pubsub';
import { Adapter } from '../../src/adapter.ts';
import { initLocalCa } from '../../src/ca/local/init.ts';
import type { CaBackend } from '../../src/ca/types.ts';
import { ChromeClient } from '../../src/chrome/client.ts';
import type { ChromeApi } from '../../src/chrome/types.ts';
import { compileConfig, type Config } from '../../src/config/load.ts';
import { createLogger, type LogLevel } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { InProcessMessageSource } from '../../src/pubsub/in-process-source.ts';
import { PubSubMessageSource } from '../../src/pubsub/pubsub-source.ts';
import type { MessageSource } from '../../src/pubsub/source.ts';
import { SandboxTenant, type NotificationOptions, type SandboxTenantOptions } from '../../src/sandbox/index.ts';
import type { ProcessStore } from '../../src/store/types.ts';

export type RawConfig = Record<string, unknown>;

export interface RigOptions {
  /** `pubsub`: a topic + subscription on the emulator (give `pubsub`); default the in-process source. */
  readonly pubsub?: {
    readonly topicPublish: (data: Buffer, attributes: Record<string, string>) => Promise<unknown>;
    readonly subscription: string;
    readonly clientOptions: ClientConfig;
  };
  readonly tenant?: SandboxTenantOptions;
  /** A tenant shared with other rigs (several adapters on one Chrome tenant); not closed by {@link AdapterRig.stop}. */
  readonly sharedTenant?: SandboxTenant;
  /** Deep-merged over the rig's base configuration. */
  readonly config?: RawConfig;
  /** Replace (not merge) the base `caConnections` (a local CA named default_ca_config). */
  readonly caConnections?: RawConfig;
  /** Replace (not merge) the base `profiles` (device_profile with a URI SAN, user_profile with an email SAN). */
  readonly profiles?: RawConfig;
  readonly store?: ProcessStore;
  /** CA backends by type; default the shipped registry (a test adds a test-only backend). */
  readonly backends?: ReadonlyMap<string, CaBackend<any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The workflow's clock (give the store the same one). */
  readonly now?: () => number;
  readonly chrome?: ChromeApi;
  /** Wraps the real Chrome client (pointed at the sandbox) to script a call's answer. */
  readonly wrapChrome?: (real: ChromeApi) => ChromeApi;
  readonly logLevel?: LogLevel;
  /** Serve /metrics etc. on a free loopback port. Default false. */
  readonly serveHttp?: boolean;
}

/** Collected JSON log lines. */
export class LogCapture {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  entries(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  text(): string {
    return this.lines.join('');
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function deepMerge(base: RawConfig, over: RawConfig): RawConfig {
  const out: RawConfig = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isObject(current) && isObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

/** The rig's configuration with a local CA in `caDirectory` (see {@link rigConfig} for other CA connections). */
export function baseRigConfig(endpoint: string, caDirectory: string, subscription?: string): RawConfig {
  return rigConfig({
    endpoint,
    subscription,
    caConnections: { default_ca_config: { type: 'local', directory: caDirectory } },
  });
}

/** Fast test timings, the sandbox endpoint, the memory store, device and user profiles, and the given connections. */
export function rigConfig(init: {
  endpoint: string;
  caConnections: RawConfig;
  subscription?: string | undefined;
  profiles?: RawConfig;
}): RawConfig {
  const { endpoint, subscription } = init;
  return {
    instanceId: 'certprov-test',
    chrome: { endpoint, credentials: 'none', signatureTimeout: '20s', requestTimeout: '5s' },
    pubsub: { ...(subscription === undefined ? {} : { subscription }), maxInFlight: 200, closeTimeout: '5s' },
    store: { type: 'memory' },
    scheduler: {
      lease: '30s',
      pollInterval: '100ms',
      retryInitial: '100ms',
      retryMax: '1s',
      signaturePollInitial: '30ms',
      signaturePollMax: '300ms',
      maxConcurrent: 64,
    },
    caConnections: init.caConnections,
    profiles: init.profiles ?? {
      device_profile: {
        subject: 'CN={{device.serialNumber}},O=certprov test',
        subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
        validity: '30d',
      },
      user_profile: {
        subject: 'CN={{user.userPrimaryEmail}},O=certprov test',
        subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
        validity: '30d',
      },
    },
    http: { host: '127.0.0.1', port: 0 },
    shutdown: { gracePeriod: '5s' },
  };
}

export class AdapterRig {
  readonly tenant: SandboxTenant;
  readonly caDirectory: string;
  readonly caCertificatePem: string;
  readonly logs: LogCapture;
  readonly options: RigOptions;
  readonly config: Config;
  adapter: Adapter;
  metrics: Metrics;
  source: MessageSource;
  private readonly workDir: string;

  private constructor(init: {
    tenant: SandboxTenant;
    workDir: string;
    caDirectory: string;
    caCertificatePem: string;
    options: RigOptions;
    config: Config;
    logs: LogCapture;
    adapter: Adapter;
    metrics: Metrics;
    source: MessageSource;
  }) {
    this.tenant = init.tenant;
    this.workDir = init.workDir;
    this.caDirectory = init.caDirectory;
    this.caCertificatePem = init.caCertificatePem;
    this.options = init.options;
    this.config = init.config;
    this.logs = init.logs;
    this.adapter = init.adapter;
    this.metrics = init.metrics;
    this.source = init.source;
  }

  static async start(options: RigOptions = {}): Promise<AdapterRig> {
    const workDir = await mkdtemp(path.join(tmpdir(), 'certprov-rig-'));
    const caDirectory = path.join(workDir, 'ca');
    const ca = await initLocalCa({ directory: caDirectory, keyType: 'ec', subject: 'CN=certprov test CA' });
    const tenant = options.sharedTenant ?? (await SandboxTenant.start(options.tenant ?? {}));
    const raw = deepMerge(
      rigConfig({
        endpoint: tenant.endpoint,
        subscription: options.pubsub?.subscription,
        caConnections: options.caConnections ?? { default_ca_config: { type: 'local', directory: caDirectory } },
        ...(options.profiles === undefined ? {} : { profiles: options.profiles }),
      }),
      options.config ?? {},
    );
    const config = compileConfig(raw, {
      source: 'test rig',
      baseDir: workDir,
      purpose: 'demo',
      ...(options.backends === undefined ? {} : { backends: options.backends }),
    });
    const logs = new LogCapture();
    const rig = new AdapterRig({
      tenant,
      logs,
      workDir,
      caDirectory,
      caCertificatePem: ca.certificatePem,
      options,
      config,
      ...(await AdapterRig.build(config, options, logs)),
    });
    await rig.adapter.start();
    return rig;
  }

  private static async build(config: Config, options: RigOptions, logs: LogCapture, reuseSource?: MessageSource) {
    const log = createLogger({ level: options.logLevel ?? 'debug', destination: logs });
    const metrics = new Metrics({ defaultMetrics: false });
    const source: MessageSource =
      reuseSource ??
      (options.pubsub === undefined
        ? new InProcessMessageSource({ maxInFlight: config.pubsub.maxInFlight, redeliveryDelayMs: 50 })
        : new PubSubMessageSource({
            subscription: options.pubsub.subscription,
            maxInFlight: config.pubsub.maxInFlight,
            maxExtensionMs: config.pubsub.maxExtensionMs,
            closeTimeoutMs: config.pubsub.closeTimeoutMs,
            log,
            metrics,
            clientOptions: options.pubsub.clientOptions,
          }));
    const adapter = await Adapter.create({
      config,
      log,
      metrics,
      source,
      serveHttp: options.serveHttp ?? false,
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.store === undefined ? {} : { store: options.store }),
      ...(options.chrome === undefined ? {} : { chrome: options.chrome }),
      ...(options.wrapChrome === undefined
        ? {}
        : {
            chrome: options.wrapChrome(
              new ChromeClient({
                endpoint: config.chrome.endpoint,
                requestTimeoutMs: config.chrome.requestTimeoutMs,
                metrics,
                log,
                authHeaders: () => Promise.resolve({}),
              }),
            ),
          }),
    });
    return { adapter, metrics, source };
  }

  /** Publishes the notification of a sandbox process (to the emulator topic or the in-process source). */
  async notify(id: string, options: NotificationOptions = { encoding: 'json-camel' }): Promise<void> {
    await this.tenant.notify(id, options, (data, attributes) => this.publishRaw(data, attributes));
  }

  async publishRaw(data: Buffer, attributes: Record<string, string> = {}): Promise<void> {
    if (this.options.pubsub !== undefined) await this.options.pubsub.topicPublish(data, attributes);
    else (this.source as InProcessMessageSource).publish(data, attributes);
  }

  /** Stops the adapter (graceful: messages not finished are handed back), e.g. to act while no replica runs. */
  async stopAdapter(): Promise<void> {
    await this.adapter.stop(2_000);
  }

  /**
   * Starts a fresh adapter after {@link stopAdapter} — a new replica or a restarted pod. With the memory store nothing
   * carries over unless `keepStore` (or the rig was given a `store`). The in-process source stands for the
   * subscription, so it survives with its undelivered messages.
   */
  async startAdapter(keepStore = false): Promise<void> {
    const store = keepStore ? this.adapter.store : undefined;
    const reuse = this.options.pubsub === undefined ? this.source : undefined;
    const built = await AdapterRig.build(
      this.config,
      { ...this.options, ...(store === undefined ? {} : { store }) },
      this.logs,
      reuse,
    );
    this.adapter = built.adapter;
    this.metrics = built.metrics;
    this.source = built.source;
    await this.adapter.start();
  }

  async restart(keepStore = false): Promise<void> {
    await this.stopAdapter();
    await this.startAdapter(keepStore);
  }

  /** Lines of the local CA's issuance journal for a process (one per certificate the CA signed). */
  async issuances(processId?: string): Promise<number> {
    let text: string;
    try {
      text = await readFile(path.join(this.caDirectory, 'issued.jsonl'), 'utf8');
    } catch {
      return 0;
    }
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    return processId === undefined
      ? lines.length
      : lines.filter((l) => (JSON.parse(l) as { processId: string }).processId === processId).length;
  }

  /** A counter's value (summed over label sets matching `labels`). */
  async counter(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = (await this.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    if (metric === undefined) throw new Error(`no metric ${name}`);
    return (metric.values as { value: number; labels: Record<string, string | number> }[])
      .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
      .reduce((sum, v) => sum + v.value, 0);
  }

  async stop(): Promise<void> {
    await this.adapter.stop(2_000).catch(() => undefined);
    if (this.options.sharedTenant === undefined) await this.tenant.close();
    await rm(this.workDir, { recursive: true, force: true });
  }
}
