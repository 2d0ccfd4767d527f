/**
 * The Key Vault CA path at volume: sandbox tenant + fake Key Vault (official SDKs, challenge flow, real ECDSA/RSA
 * signatures over digests) + in-process source, memory store, one replica.
 *
 * Reports the two figures the Key Vault backend is held to:
 * - Key Vault sign operations per issued certificate (target 1.0: hashing, certificate building and verification are
 *   local; the vault is asked for exactly one signature), plus sign HTTP requests per certificate (the SDK's first
 *   request is token-less by design and answered with the 401 challenge, once per client);
 * - adapter CPU per certificate on this path. The sandbox tenant (simulated devices signing with their keys) and the
 *   fake vault (signing with the CA key) run in a worker thread, and only the main thread — the adapter — is
 *   measured (`process.threadCpuUsage`), so the figure is the adapter's own cost, not the rig's.
 *
 * This file is also the worker's entry point (see the bottom): `bench/run.ts` imports it on the main thread, where
 * only the scenario is defined.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Adapter } from '../../src/adapter.ts';
import { compileConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { InProcessMessageSource } from '../../src/pubsub/in-process-source.ts';
import { encodeProcessCreatedEvent, KeyPool, SandboxTenant } from '../../src/sandbox/index.ts';
import { FakeKeyVault } from '../../test/fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa } from '../../test/fakes/key-vault/issuing-ca-fixture.ts';
import type { BenchScenario } from '../scenario.ts';

const WORKER_ROLE = 'azure-key-vault-fakes';

type Request =
  | { readonly type: 'hello' }
  | { readonly type: 'create'; readonly count: number }
  | { readonly type: 'wait'; readonly ids: readonly string[] }
  | { readonly type: 'stop' };

interface Ready {
  readonly type: 'ready';
  readonly tenantEndpoint: string;
  readonly connection: Record<string, unknown>;
}

interface Finished {
  readonly type: 'finished';
  readonly issued: number;
  readonly failed: number;
  readonly signOperations: number;
  readonly signRequests: number;
  readonly doubleSignData: number;
}

/** Sends a request to the worker and resolves with its next message. */
function ask<T>(worker: Worker, request: Request): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once('message', (message: T) => resolve(message));
    worker.once('error', reject);
    worker.postMessage(request);
  });
}

const scenario: BenchScenario = {
  name: 'azure-key-vault',
  description: 'Key Vault-held CA: sign calls per certificate and adapter CPU per certificate',
  async run({ quick }) {
    const count = quick ? 60 : 400;
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } });
    try {
      const ready = await ask<Ready>(worker, { type: 'hello' });
      const config = compileConfig(
        {
          instanceId: 'certprov-bench-kv',
          chrome: {
            endpoint: ready.tenantEndpoint,
            credentials: 'none',
            signatureTimeout: '60s',
            requestTimeout: '10s',
          },
          store: { type: 'memory' },
          scheduler: {
            pollInterval: '100ms',
            signaturePollInitial: '30ms',
            signaturePollMax: '300ms',
            maxConcurrent: 128,
          },
          caConnections: { default_ca_config: ready.connection },
          profiles: {
            device_profile: {
              subject: 'CN={{device.serialNumber}},O=bench',
              subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
              validity: '30d',
            },
            user_profile: {
              subject: 'CN={{user.userPrimaryEmail}},O=bench',
              subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
              validity: '30d',
            },
          },
          http: { host: '127.0.0.1', port: 0 },
        },
        { source: 'bench', baseDir: process.cwd(), purpose: 'demo' },
      );
      const source = new InProcessMessageSource({ maxInFlight: 1_000 });
      const adapter = await Adapter.create({
        config,
        log: createLogger({ level: 'warn' }),
        metrics: new Metrics({ defaultMetrics: false }),
        source,
        serveHttp: false,
      });
      await adapter.start();
      try {
        // Warm-up: the first certificate pays for the SDK's challenge round trip and JIT compilation.
        const warm = await ask<{ ids: string[] }>(worker, { type: 'create', count: 4 });
        for (const id of warm.ids)
          source.publish(encodeProcessCreatedEvent({ processId: id, customerId: 'my_customer' }), {});
        const warmed = await ask<Finished>(worker, { type: 'wait', ids: warm.ids });

        const { ids } = await ask<{ ids: string[] }>(worker, { type: 'create', count });
        const cpuBefore = process.threadCpuUsage();
        const started = performance.now();
        for (const id of ids)
          source.publish(encodeProcessCreatedEvent({ processId: id, customerId: 'my_customer' }), {});
        const finished = await ask<Finished>(worker, { type: 'wait', ids });
        const wallMs = performance.now() - started;
        const cpu = process.threadCpuUsage(cpuBefore);
        const issued = finished.issued - warmed.issued;
        return [
          { name: 'processes', value: count, unit: '' },
          { name: 'issued', value: issued, unit: '', target: `= ${count}` },
          { name: 'double signData', value: finished.doubleSignData, unit: '', target: '= 0' },
          {
            name: 'Key Vault sign operations per certificate',
            value: (finished.signOperations - warmed.signOperations) / issued,
            unit: 'signs',
            target: '= 1.0',
          },
          {
            name: 'Key Vault sign HTTP requests per certificate',
            value: (finished.signRequests - warmed.signRequests) / issued,
            unit: 'requests',
            target: '= 1.0',
          },
          {
            name: "token-less first sign requests (the SDK's 401 challenge round trip; warm-up only)",
            value: warmed.signRequests - warmed.signOperations,
            unit: 'requests',
          },
          {
            name: 'adapter CPU per certificate (main thread)',
            value: (cpu.user + cpu.system) / 1000 / issued,
            unit: 'ms',
          },
          { name: 'throughput', value: issued / (wallMs / 1000), unit: 'processes/s' },
        ];
      } finally {
        await adapter.stop(5_000);
      }
    } finally {
      await ask(worker, { type: 'stop' }).catch(() => undefined);
      await worker.terminate();
    }
  },
};
export default scenario;

/** The worker: the sandbox tenant and the fake vault with an enrolled issuing CA, driven by messages. */
async function runFakes(): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const pool = await KeyPool.generate({ 'rsa-2048': 4, 'ec-p256': 4 });
  const tenant = await SandboxTenant.start({});
  const vault = await FakeKeyVault.start();
  const fixture = await createIssuingCa(vault, { certificateName: 'bench-issuing-ca' });
  port.on('message', (request: Request) => {
    void (async () => {
      if (request.type === 'hello') {
        port.postMessage({
          type: 'ready',
          tenantEndpoint: tenant.endpoint,
          connection: fixture.connection({ retry: {} }),
        } satisfies Ready);
      } else if (request.type === 'create') {
        port.postMessage({
          ids: tenant.createProcesses(request.count, { pool, ecShare: 0.5, userShare: 0.5, affiliatedShare: 0.5 }),
        });
      } else if (request.type === 'wait') {
        await tenant.waitUntilFinished([...request.ids], 600_000);
        const stats = tenant.stats();
        port.postMessage({
          type: 'finished',
          issued: stats.issued,
          failed: stats.failed,
          signOperations: vault.signOperations.length,
          signRequests: vault.signRequests().length,
          doubleSignData: stats.doubleSignData,
        } satisfies Finished);
      } else {
        await tenant.close();
        await vault.close();
        await fixture.close();
        port.postMessage({ type: 'stopped' });
      }
    })();
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) await runFakes();
