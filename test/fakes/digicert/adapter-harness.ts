/**
 * The whole adapter (the same Adapter class `run` uses) wired to the sandbox tenant, Google's Pub/Sub emulator
 * (or the in-process source) and a DigiCert connection pointed at the fake CertCentral. The store is a
 * MemoryProcessStore that survives {@link DigicertAdapterHarness.restart}: it stands for a durable store across
 * two Adapter instances in one test process. No vitest imports, so the benchmark uses it too.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ClientConfig } from '@google-cloud/pubsub';
import { Adapter } from '../../../src/adapter.ts';
import { compileConfig, type Config } from '../../../src/config/load.ts';
import { createLogger, type LogLevel } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { InProcessMessageSource } from '../../../src/pubsub/in-process-source.ts';
import { PubSubMessageSource } from '../../../src/pubsub/pubsub-source.ts';
import type { MessageSource } from '../../../src/pubsub/source.ts';
import { SandboxTenant, type SandboxTenantOptions } from '../../../src/sandbox/index.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { TEST_API_KEY, digicertConnectionBlock } from './connection.ts';
import { FakeCertCentral, type FakeCertCentralOptions } from './fake-certcentral.ts';

export interface HarnessOptions {
  /** Google's emulator; default the in-process source. */
  readonly pubsub?: {
    readonly subscription: string;
    readonly clientOptions: ClientConfig;
    readonly publish: (data: Buffer, attributes: Record<string, string>) => Promise<unknown>;
  };
  readonly fake?: Partial<FakeCertCentralOptions>;
  /** Over the DigiCert connection block. */
  readonly connection?: Record<string, unknown>;
  /** Over `scheduler`. */
  readonly scheduler?: Record<string, unknown>;
  readonly tenant?: SandboxTenantOptions;
  readonly logLevel?: LogLevel;
  /**
   * Grant every rate-budget token (the store's takeToken always says yes): for benchmarks that count requests and
   * must not take the 11 minutes DigiCert's real budget needs for 2,000 requests. The limiter itself is tested in
   * test/unit/digicert/rate-limiter.test.ts. Default false.
   */
  readonly unlimitedBudget?: boolean;
}

/** A memory store whose shared rate budget never refuses (see HarnessOptions.unlimitedBudget). */
class UnlimitedBudgetStore extends MemoryProcessStore {
  override takeToken(): Promise<number> {
    return Promise.resolve(0);
  }
}

/** Collected JSON log lines. */
export class HarnessLog {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  text(): string {
    return this.lines.join('');
  }
}

export class DigicertAdapterHarness {
  readonly tenant: SandboxTenant;
  readonly fake: FakeCertCentral;
  readonly store: MemoryProcessStore;
  readonly config: Config;
  readonly log = new HarnessLog();
  adapter!: Adapter;
  metrics!: Metrics;
  private source: MessageSource | undefined;
  private readonly options: HarnessOptions;
  private readonly workDir: string;

  private constructor(init: {
    tenant: SandboxTenant;
    fake: FakeCertCentral;
    config: Config;
    options: HarnessOptions;
    workDir: string;
  }) {
    this.tenant = init.tenant;
    this.fake = init.fake;
    this.config = init.config;
    this.options = init.options;
    this.workDir = init.workDir;
    this.store = init.options.unlimitedBudget === true ? new UnlimitedBudgetStore() : new MemoryProcessStore();
  }

  static async start(options: HarnessOptions = {}): Promise<DigicertAdapterHarness> {
    const workDir = await mkdtemp(path.join(tmpdir(), 'certprov-digicert-e2e-'));
    await writeFile(path.join(workDir, 'digicert.key'), TEST_API_KEY, { mode: 0o600 });
    const [tenant, fake] = await Promise.all([
      SandboxTenant.start(options.tenant ?? {}),
      FakeCertCentral.start({ apiKey: TEST_API_KEY, organizationInSubject: true, ...options.fake }),
    ]);
    const config = compileConfig(
      {
        instanceId: 'certprov-digicert-test',
        chrome: { endpoint: tenant.endpoint, credentials: 'none', signatureTimeout: '2m', requestTimeout: '10s' },
        pubsub: {
          ...(options.pubsub === undefined ? {} : { subscription: options.pubsub.subscription }),
          maxInFlight: 1000,
          closeTimeout: '5s',
        },
        // `demo` purpose: the memory store is allowed here because it outlives the Adapter instances (see above).
        store: { type: 'memory' },
        scheduler: {
          lease: '30s',
          pollInterval: '50ms',
          retryInitial: '100ms',
          retryMax: '1s',
          signaturePollInitial: '30ms',
          signaturePollMax: '300ms',
          maxConcurrent: 256,
          ...options.scheduler,
        },
        caConnections: {
          default_ca_config: digicertConnectionBlock(fake, {
            organizationName: 'Example Org',
            pendingRecheckInterval: '500ms',
            ...options.connection,
          }),
        },
        profiles: {
          device_profile: {
            subject: 'CN={{device.serialNumber}},OU=ChromeOS devices,O=Example Org',
            subjectAltNames: [{ email: 'device-{{device.deviceDirectoryApiId}}@devices.example.com' }],
            validity: '30d',
          },
          user_profile: {
            subject: 'CN={{user.userPrimaryEmail}},O=Example Org',
            subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
            validity: '30d',
          },
        },
        http: { host: '127.0.0.1', port: 0 },
        shutdown: { gracePeriod: '5s' },
      },
      { source: 'digicert test harness', baseDir: workDir, purpose: 'demo' },
    );
    const harness = new DigicertAdapterHarness({ tenant, fake, config, options, workDir });
    await harness.startAdapter();
    return harness;
  }

  /** Starts a fresh Adapter on the same store: the first one, a restarted pod, or another replica. */
  async startAdapter(): Promise<void> {
    const log = createLogger({ level: this.options.logLevel ?? 'info', destination: this.log });
    const metrics = new Metrics({ defaultMetrics: false });
    const pubsub = this.options.pubsub;
    // The in-process source stands for the subscription: it outlives a restart with its undelivered messages.
    const source: MessageSource =
      pubsub === undefined
        ? (this.source ?? new InProcessMessageSource({ maxInFlight: 1000, redeliveryDelayMs: 50 }))
        : new PubSubMessageSource({
            subscription: pubsub.subscription,
            maxInFlight: this.config.pubsub.maxInFlight,
            maxExtensionMs: this.config.pubsub.maxExtensionMs,
            closeTimeoutMs: this.config.pubsub.closeTimeoutMs,
            log,
            metrics,
            clientOptions: pubsub.clientOptions,
          });
    this.adapter = await Adapter.create({
      config: this.config,
      log,
      metrics,
      source,
      store: this.store,
      serveHttp: false,
    });
    this.metrics = metrics;
    this.source = source;
    await this.adapter.start();
  }

  /** Publishes the notification of a sandbox process. */
  async notify(id: string): Promise<void> {
    await this.tenant.notify(id, { encoding: 'json-camel' }, async (data, attributes) => {
      if (this.options.pubsub !== undefined) await this.options.pubsub.publish(data, attributes);
      else (this.source as InProcessMessageSource).publish(data, attributes);
    });
  }

  /** Stops the adapter (pending orders stay pending) without starting another. */
  async stopAdapter(): Promise<void> {
    await this.adapter.stop(2_000);
  }

  /** DigiCert requests the adapter made, by operation. */
  requests(operation?: Parameters<FakeCertCentral['count']>[0]): number {
    return this.fake.count(operation);
  }

  async close(): Promise<void> {
    await this.adapter.stop(2_000).catch(() => undefined);
    await this.tenant.close();
    await this.fake.close();
    await rm(this.workDir, { recursive: true, force: true });
  }
}
