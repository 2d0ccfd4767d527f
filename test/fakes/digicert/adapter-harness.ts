/**
 * The whole adapter (the same Adapter class `run` uses, through the shared {@link AdapterRig}) wired to the sandbox
 * tenant, Google's Pub/Sub emulator (or the in-process source) and a DigiCert connection pointed at the fake
 * CertCentral. The store is a MemoryProcessStore that survives {@link DigicertAdapterHarness.startAdapter}: it stands
 * for a durable store across two Adapter instances in one test process. No vitest imports, so the benchmark uses it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ClientConfig } from '@google-cloud/pubsub';
import type { LogLevel } from '../../../src/observability/logger.ts';
import type { SandboxTenantOptions } from '../../../src/sandbox/index.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';
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

/**
 * DigiCert client products need the user's email in an email SAN and O = the validated organization (config load
 * checks both). They issue to users only: tests create user sessions (`userShare: 1`).
 */
const DIGICERT_PROFILES = {
  user_profile: {
    subject: 'CN={{user.userPrimaryEmail}},O=Example Org',
    subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
    validity: '30d',
  },
};

export class DigicertAdapterHarness {
  readonly fake: FakeCertCentral;
  readonly rig: AdapterRig;
  readonly store: MemoryProcessStore;
  private readonly keyDir: string;

  private constructor(fake: FakeCertCentral, rig: AdapterRig, store: MemoryProcessStore, keyDir: string) {
    this.fake = fake;
    this.rig = rig;
    this.store = store;
    this.keyDir = keyDir;
  }

  static async start(options: HarnessOptions = {}): Promise<DigicertAdapterHarness> {
    const keyDir = await mkdtemp(path.join(tmpdir(), 'certprov-digicert-key-'));
    const keyFile = path.join(keyDir, 'digicert.key');
    await writeFile(keyFile, TEST_API_KEY, { mode: 0o600 });
    const fake = await FakeCertCentral.start({ apiKey: TEST_API_KEY, organizationInSubject: true, ...options.fake });
    const store = options.unlimitedBudget === true ? new UnlimitedBudgetStore() : new MemoryProcessStore();
    const rig = await AdapterRig.start({
      ...(options.pubsub === undefined
        ? {}
        : {
            pubsub: {
              subscription: options.pubsub.subscription,
              clientOptions: options.pubsub.clientOptions,
              topicPublish: options.pubsub.publish,
            },
          }),
      ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
      store,
      logLevel: options.logLevel ?? 'info',
      config: {
        instanceId: 'certprov-digicert-test',
        chrome: { signatureTimeout: '2m', requestTimeout: '10s' },
        pubsub: { maxInFlight: 1000 },
        scheduler: { pollInterval: '50ms', maxConcurrent: 256, ...options.scheduler },
      },
      caConnections: {
        default_ca_config: digicertConnectionBlock(fake, {
          apiKey: { file: keyFile },
          organizationName: 'Example Org',
          pendingRecheckInterval: '500ms',
          ...options.connection,
        }),
      },
      profiles: DIGICERT_PROFILES,
    });
    return new DigicertAdapterHarness(fake, rig, store, keyDir);
  }

  get tenant(): AdapterRig['tenant'] {
    return this.rig.tenant;
  }

  /** Collected JSON log lines of every adapter the harness ran. */
  get log(): AdapterRig['logs'] {
    return this.rig.logs;
  }

  /** Publishes the notification of a sandbox process. */
  notify(id: string): Promise<void> {
    return this.rig.notify(id);
  }

  /** Stops the adapter (pending orders stay pending) without starting another. */
  stopAdapter(): Promise<void> {
    return this.rig.stopAdapter();
  }

  /** Starts a fresh Adapter on the same store: a restarted pod, or another replica. */
  startAdapter(): Promise<void> {
    return this.rig.startAdapter();
  }

  /** DigiCert requests the adapter made, by operation. */
  requests(operation?: Parameters<FakeCertCentral['count']>[0]): number {
    return this.fake.count(operation);
  }

  async close(): Promise<void> {
    await this.rig.stop();
    await this.fake.close();
    await rm(this.keyDir, { recursive: true, force: true });
  }
}
