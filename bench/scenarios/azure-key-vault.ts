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
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { FakeKeyVault } from '../../test/fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa } from '../../test/fakes/key-vault/issuing-ca-fixture.ts';
import type { BenchScenario } from '../scenario.ts';
import { ask, measureCaPath, serveCaPathWorker, type TenantCounters } from '../support/ca-path.ts';

const WORKER_ROLE = 'azure-key-vault-fakes';

interface Ready {
  readonly type: 'ready';
  readonly tenantEndpoint: string;
  readonly connection: Record<string, unknown>;
}

interface Finished extends TenantCounters {
  readonly signOperations: number;
  readonly signRequests: number;
}

const scenario: BenchScenario = {
  name: 'azure-key-vault',
  description: 'Key Vault-held CA: sign calls per certificate and adapter CPU per certificate',
  async run({ quick }) {
    const count = quick ? 60 : 400;
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } });
    try {
      const ready = await ask<Ready>(worker, { type: 'hello' });
      const run = await measureCaPath<Finished>(worker, {
        tenantEndpoint: ready.tenantEndpoint,
        connection: ready.connection,
        count,
        instanceId: 'certprov-bench-kv',
      });
      const { warmed, finished, issued } = run;
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
        { name: 'adapter CPU per certificate (main thread)', value: run.cpuMsPerCertificate, unit: 'ms' },
        { name: 'throughput', value: run.throughput, unit: 'processes/s' },
      ];
    } finally {
      await ask(worker, { type: 'stop' }).catch(() => undefined);
      await worker.terminate();
    }
  },
};
export default scenario;

/** The worker: the sandbox tenant and the fake vault with an enrolled issuing CA. */
async function runFakes(): Promise<void> {
  if (parentPort === null) return;
  await serveCaPathWorker(parentPort, async () => {
    const vault = await FakeKeyVault.start();
    const fixture = await createIssuingCa(vault, { certificateName: 'bench-issuing-ca' });
    return {
      ready: { connection: fixture.connection({ retry: {} }) },
      counters: () => ({ signOperations: vault.signOperations.length, signRequests: vault.signRequests().length }),
      close: async () => {
        await vault.close();
        await fixture.close();
      },
    };
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) await runFakes();
