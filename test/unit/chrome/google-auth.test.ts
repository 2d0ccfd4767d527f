/**
 * The `google-default` credential path end to end: google-auth-library finds no credentials file, probes the
 * metadata server named by GCE_METADATA_HOST (our loopback fake), fetches a token for the certprov scope, and
 * ChromeClient sends it as `Authorization: Bearer …` — without the token reaching a log line.
 *
 * Environment: gcp-metadata reads GCE_METADATA_HOST on every request but memoizes the availability probe per
 * process, so every test here shares one fake server (behaviour switched per test) and the variables are set before
 * the first credential is created. ADC is isolated from the machine: no GOOGLE_APPLICATION_CREDENTIALS, and
 * CLOUDSDK_CONFIG points at an empty directory (where the gcloud well-known file would be).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CHROME_CREDENTIALS_HINT, createChromeAuth } from '../../../src/chrome/auth.ts';
import { ChromeClient } from '../../../src/chrome/client.ts';
import { CERTPROV_SCOPE } from '../../../src/chrome/types.ts';
import { DeploymentFaultError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { FakeMetadataServer } from '../../support/fake-metadata-server.ts';
import { ScriptedServer } from '../http/scripted-server.ts';

const ENV_KEYS = [
  'GCE_METADATA_HOST',
  'GCE_METADATA_IP',
  'METADATA_SERVER_DETECTION',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'google_application_credentials',
  'CLOUDSDK_CONFIG',
  'GOOGLE_CLOUD_PROJECT',
  'GCLOUD_PROJECT',
  'NO_PROXY',
  'no_proxy',
] as const;
const savedEnv = new Map<string, string | undefined>();

let metadata: FakeMetadataServer;
let chromeApi: ScriptedServer;
let emptyConfigDir: string;
let logLines: string[];

beforeAll(async () => {
  for (const key of ENV_KEYS) savedEnv.set(key, process.env[key]);
  metadata = await FakeMetadataServer.start({ accessToken: 'ya29.metadata-token-7f3c9a1e5b' });
  emptyConfigDir = await mkdtemp(path.join(tmpdir(), 'certprov-gcloud-'));
  for (const key of ENV_KEYS) Reflect.deleteProperty(process.env, key);
  process.env.GCE_METADATA_HOST = metadata.host;
  process.env.CLOUDSDK_CONFIG = emptyConfigDir;
  // gaxios honours proxy variables; the fake lives on loopback.
  process.env.NO_PROXY = '127.0.0.1,localhost';
});

afterAll(async () => {
  for (const [key, value] of savedEnv) {
    if (value === undefined) Reflect.deleteProperty(process.env, key);
    else process.env[key] = value;
  }
  await metadata.close();
  await rm(emptyConfigDir, { recursive: true, force: true });
});

beforeEach(async () => {
  chromeApi = await ScriptedServer.start();
  chromeApi.otherwise({ status: 200, json: { name: 'customers/my_customer/certificateProvisioningProcesses/p1' } });
  metadata.tokenFailureStatus = undefined;
  metadata.requests.length = 0;
  logLines = [];
});

afterEach(async () => {
  await chromeApi.close();
  Reflect.deleteProperty(process.env, 'METADATA_SERVER_DETECTION');
});

function chromeClient(credentials: 'google-default' | 'none'): {
  client: ChromeClient;
  ctx: { signal: AbortSignal; log: ReturnType<typeof createLogger> };
} {
  const log = createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } });
  const client = new ChromeClient({
    endpoint: chromeApi.url,
    requestTimeoutMs: 5_000,
    metrics: new Metrics({ defaultMetrics: false }),
    log,
    authHeaders: createChromeAuth({ credentials }),
    retry: { attempts: 1 },
  });
  return { client, ctx: { signal: new AbortController().signal, log } };
}

const REF = { customer: 'my_customer', processId: 'p1' };

describe('Chrome credentials: google-default through the metadata server (Workload Identity path)', () => {
  it('sends the metadata server’s token as a Bearer header and never logs it', async () => {
    const { client, ctx } = chromeClient('google-default');
    await client.get(REF, ctx);

    expect(chromeApi.requests[0]?.headers.authorization).toBe(`Bearer ${metadata.accessToken}`);
    const [tokenRequest] = metadata.tokenRequests();
    expect(tokenRequest?.flavor).toBe('Google');
    expect(tokenRequest?.query.get('scopes')).toBe(CERTPROV_SCOPE);
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(metadata.accessToken);
  });

  it('reuses the token until it nears expiry (one token request for several calls)', async () => {
    const { client, ctx } = chromeClient('google-default');
    await client.get(REF, ctx);
    await client.setFailure(REF, 'x', ctx);
    await client.claim(REF, 'certprov-test', ctx);
    expect(chromeApi.requests).toHaveLength(3);
    expect(metadata.tokenRequests()).toHaveLength(1);
  });

  it.each([
    [403, 'IAM refused to mint a token for the bound service account'],
    [404, 'the Kubernetes service account is not bound to a Google service account'],
  ])('a token endpoint answering %i is a chrome deployment fault (%s), and Chrome is not called', async (status) => {
    metadata.tokenFailureStatus = status;
    const { client, ctx } = chromeClient('google-default');
    const error = await client.get(REF, ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).component).toBe('chrome');
    expect((error as DeploymentFaultError).hint).toBe(CHROME_CREDENTIALS_HINT);
    expect((error as Error).cause).toBeUndefined();
    expect(metadata.tokenRequests().length).toBeGreaterThan(0);
    expect(chromeApi.requests).toHaveLength(0);
  });

  it('no credentials anywhere (no file, no metadata server) is a deployment fault with the ADC hint', async () => {
    process.env.METADATA_SERVER_DETECTION = 'none';
    const { client, ctx } = chromeClient('google-default');
    const error = await client.get(REF, ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).hint).toMatch(/Workload Identity.*gcloud auth application-default login/);
    expect((error as Error).message).toMatch(/could not obtain a Google access token/);
    expect(chromeApi.requests).toHaveLength(0);
  });

  it('credentials "none" sends no Authorization header', async () => {
    const { client, ctx } = chromeClient('none');
    await client.get(REF, ctx);
    expect(chromeApi.requests[0]?.headers.authorization).toBeUndefined();
    expect(metadata.requests).toHaveLength(0);
  });
});

describe('the fake metadata server refuses what the real one refuses', () => {
  it.each([
    ['no Metadata-Flavor header', {}],
    ['a wrong Metadata-Flavor value', { 'metadata-flavor': 'google-ish' }],
    ['an X-Forwarded-For header', { 'metadata-flavor': 'Google', 'x-forwarded-for': '10.0.0.1' }],
  ])('403 for a token request with %s', async (_what, headers: Record<string, string>) => {
    const response = await fetch(`http://${metadata.host}/computeMetadata/v1/instance/service-accounts/default/token`, {
      headers,
    });
    expect(response.status).toBe(403);
    expect(await response.text()).not.toContain(metadata.accessToken);
  });
});
