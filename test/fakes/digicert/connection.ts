/**
 * Test helpers around the fake CertCentral: an API key file, a validated `type: digicert` connection block pointed
 * at the fake, and a backend built through its registry entry (as the daemon builds it).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DigicertCa } from '../../../src/ca/digicert/digicert-ca.ts';
import { digicertBackend } from '../../../src/ca/digicert/index.ts';
import { digicertConfigSchema, type DigicertConfig } from '../../../src/ca/digicert/config.ts';
import type { Sleep } from '../../../src/http/abortable-sleep.ts';
import { silentLogger, type Logger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { FAKE_DEFAULTS, FakeCertCentral, type FakeCertCentralOptions } from './fake-certcentral.ts';

export const TEST_API_KEY = 'dc-test-key-5f1e0c9a7b3d4e2f8a6b1c0d';

/** The raw connection block for the fake (`apiKey` names a file relative to `baseDir`). */
export function digicertConnectionBlock(
  fake: FakeCertCentral,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: 'digicert',
    apiKey: { file: 'digicert.key' },
    baseUrl: fake.baseUrl,
    product: 'client_authentication_plus',
    organizationId: FAKE_DEFAULTS.organization.id,
    processIdCustomFieldId: FAKE_DEFAULTS.customField.id,
    requestTimeout: '5s',
    statusPollInterval: '200ms',
    orderFallbackInterval: '1h',
    ...overrides,
  };
}

export interface DigicertTestEnvironment {
  readonly fake: FakeCertCentral;
  readonly baseDir: string;
  readonly metrics: Metrics;
  readonly config: DigicertConfig;
  readonly ca: DigicertCa;
  /** A second backend instance (another replica) on the same fake and key. */
  another(overrides?: Record<string, unknown>, options?: { sleep?: Sleep; now?: () => number }): Promise<DigicertCa>;
  close(): Promise<void>;
}

/** Starts a fake, writes the key file and builds a backend. */
export async function digicertTestEnvironment(
  options: {
    fake?: Partial<FakeCertCentralOptions>;
    connection?: Record<string, unknown>;
    log?: Logger;
    sleep?: Sleep;
    now?: () => number;
  } = {},
): Promise<DigicertTestEnvironment> {
  const fake = await FakeCertCentral.start({ apiKey: TEST_API_KEY, ...options.fake });
  const baseDir = await mkdtemp(path.join(tmpdir(), 'certprov-digicert-'));
  await writeFile(path.join(baseDir, 'digicert.key'), `${TEST_API_KEY}\n`, { mode: 0o600 });
  const metrics = new Metrics({ defaultMetrics: false });
  const log = options.log ?? silentLogger();
  const build = (overrides: Record<string, unknown> = {}, extra: { sleep?: Sleep; now?: () => number } = {}) => {
    const config = digicertConfigSchema.parse(digicertConnectionBlock(fake, { ...options.connection, ...overrides }));
    return {
      config,
      ca: DigicertCa.open(
        'default_ca_config',
        config,
        { log, metrics, baseDir },
        {
          ...(options.sleep === undefined && extra.sleep === undefined ? {} : { sleep: extra.sleep ?? options.sleep }),
          ...(options.now === undefined && extra.now === undefined ? {} : { now: extra.now ?? options.now }),
        },
      ),
    };
  };
  const first = build();
  const ca = await first.ca;
  const others: DigicertCa[] = [];
  return {
    fake,
    baseDir,
    metrics,
    config: first.config,
    ca,
    another: async (overrides, extra) => {
      const other = await build(overrides, extra).ca;
      others.push(other);
      return other;
    },
    close: async () => {
      await Promise.all([ca, ...others].map((c) => c.close()));
      await fake.close();
      await rm(baseDir, { recursive: true, force: true });
    },
  };
}

export { digicertBackend };
