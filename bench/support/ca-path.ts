/**
 * What the CA-path scenarios (azure-key-vault, google) share: an adapter in this thread, on the memory store and
 * the in-process source, whose only CA connection is the one under test, fed by a worker thread that holds the
 * sandbox tenant and the CA fakes. Only this thread — the adapter — is measured (`process.threadCpuUsage`), so the
 * CPU figure is the adapter's own cost, not the rig's.
 *
 * The worker ({@link serveCaPathWorker}) answers `{type: 'hello'}` with what the adapter needs to reach the fakes,
 * `{type: 'create', count}` with `{ids}`, `{type: 'wait', ids}` with its counters once those processes finished,
 * and `{type: 'stop'}` once everything is closed.
 */
import { performance } from 'node:perf_hooks';
import type { MessagePort, Worker } from 'node:worker_threads';
import { Adapter } from '../../src/adapter.ts';
import { compileConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { InProcessMessageSource } from '../../src/pubsub/in-process-source.ts';
import { encodeProcessCreatedEvent, KeyPool, SandboxTenant } from '../../src/sandbox/index.ts';

type WorkerRequest =
  | { readonly type: 'hello' }
  | { readonly type: 'create'; readonly count: number }
  | { readonly type: 'wait'; readonly ids: readonly string[] }
  | { readonly type: 'stop' };

/** What the tenant counts for every CA path; a scenario's worker adds its CA's counters. */
export interface TenantCounters {
  readonly type: 'finished';
  readonly issued: number;
  readonly failed: number;
  readonly doubleSignData: number;
}

/** The CA fakes a scenario's worker runs beside the sandbox tenant. */
export interface CaPathFakes<R, C> {
  /** The `hello` answer (without `type` and `tenantEndpoint`, which are added). */
  readonly ready: R;
  /** The CA's own counters, read when a batch has finished. */
  counters(): C;
  close(): Promise<void>;
}

/**
 * The worker side: the sandbox tenant (processes half EC, half users, half affiliated) and the fakes `start`
 * builds with the tenant's key pool, driven by the messages {@link measureCaPath} sends.
 */
export async function serveCaPathWorker<R, C>(
  port: MessagePort,
  start: (pool: KeyPool) => Promise<CaPathFakes<R, C>>,
): Promise<void> {
  const pool = await KeyPool.generate({ 'rsa-2048': 4, 'ec-p256': 4 });
  const tenant = await SandboxTenant.start({});
  const fakes = await start(pool);
  port.on('message', (request: WorkerRequest) => {
    void (async () => {
      if (request.type === 'hello') {
        port.postMessage({ type: 'ready', tenantEndpoint: tenant.endpoint, ...fakes.ready });
      } else if (request.type === 'create') {
        port.postMessage({
          ids: tenant.createProcesses(request.count, { pool, ecShare: 0.5, userShare: 0.5, affiliatedShare: 0.5 }),
        });
      } else if (request.type === 'wait') {
        await tenant.waitUntilFinished([...request.ids], 600_000);
        const stats = tenant.stats();
        const finished: TenantCounters = {
          type: 'finished',
          issued: stats.issued,
          failed: stats.failed,
          doubleSignData: stats.doubleSignData,
        };
        port.postMessage({ ...finished, ...fakes.counters() });
      } else {
        await tenant.close();
        await fakes.close();
        port.postMessage({ type: 'stopped' });
      }
    })();
  });
}

/** Sends a request to the worker and resolves with its next message. */
export function ask<T>(worker: Worker, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once('message', (message: T) => resolve(message));
    worker.once('error', reject);
    worker.postMessage(request);
  });
}

export interface CaPathRun<F> {
  /** The worker's counters after the warm-up, and after the measured processes. */
  readonly warmed: F;
  readonly finished: F;
  /** Certificates issued in the measured part. */
  readonly issued: number;
  readonly cpuMsPerCertificate: number;
  readonly throughput: number;
}

/**
 * Runs 4 warm-up processes (the first certificates pay for tokens, the CA material and JIT compilation), then
 * `count` measured ones, through an adapter whose only CA connection is `connection`.
 */
export async function measureCaPath<F extends { readonly issued: number }>(
  worker: Worker,
  options: { tenantEndpoint: string; connection: Record<string, unknown>; count: number; instanceId: string },
): Promise<CaPathRun<F>> {
  const config = compileConfig(
    {
      instanceId: options.instanceId,
      chrome: { endpoint: options.tenantEndpoint, credentials: 'none', signatureTimeout: '60s', requestTimeout: '10s' },
      store: { type: 'memory' },
      scheduler: { pollInterval: '100ms', signaturePollInitial: '30ms', signaturePollMax: '300ms', maxConcurrent: 128 },
      caConnections: { default_ca_config: options.connection },
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
  const publish = (ids: readonly string[]) => {
    for (const id of ids) source.publish(encodeProcessCreatedEvent({ processId: id, customerId: 'my_customer' }), {});
  };
  await adapter.start();
  try {
    const warm = await ask<{ ids: string[] }>(worker, { type: 'create', count: 4 });
    publish(warm.ids);
    const warmed = await ask<F>(worker, { type: 'wait', ids: warm.ids });
    const { ids } = await ask<{ ids: string[] }>(worker, { type: 'create', count: options.count });
    const cpuBefore = process.threadCpuUsage();
    const started = performance.now();
    publish(ids);
    const finished = await ask<F>(worker, { type: 'wait', ids });
    const wallMs = performance.now() - started;
    const cpu = process.threadCpuUsage(cpuBefore);
    const issued = finished.issued - warmed.issued;
    return {
      warmed,
      finished,
      issued,
      cpuMsPerCertificate: (cpu.user + cpu.system) / 1000 / issued,
      throughput: issued / (wallMs / 1000),
    };
  } finally {
    await adapter.stop(5_000);
  }
}
