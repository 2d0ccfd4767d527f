/**
 * The Google CA paths at volume, one after the other on the same rig: sandbox tenant + the loopback fakes of
 * Certificate Authority Service and Cloud KMS (the official clients on their REST transport, Application Default
 * Credentials from a fake metadata server) + in-process source, memory store, one replica.
 *
 * Reports the figures issue 13 holds the Google backends to:
 * - CAS requests per issued certificate (target 1.0: one CreateCertificate; a read-back only after an unclear
 *   result), and CreateCertificate calls per certificate;
 * - KMS AsymmetricSign calls per issued certificate (target 1.0: the certificate is built and verified locally);
 * - adapter CPU per certificate on each path, to set next to the azure-key-vault scenario's figure (run both in one
 *   `npm run bench azure-key-vault google` for comparable numbers). The tenant and the fakes run in a worker thread,
 *   and only the main thread — the adapter — is measured (`process.threadCpuUsage`).
 *
 * This file is also the worker's entry point (see the bottom).
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { FakeCas } from '../../test/fakes/google-cas/fake-cas.ts';
import { FakeKms } from '../../test/fakes/google-kms/fake-kms.ts';
import { createKmsIssuingCa } from '../../test/fakes/google-kms/kms-ca-fixture.ts';
import { FakeMetadataServer } from '../../test/support/fake-metadata-server.ts';
import type { BenchFigure, BenchScenario } from '../scenario.ts';
import { ask, measureCaPath, serveCaPathWorker, type TenantCounters } from '../support/ca-path.ts';

const WORKER_ROLE = 'google-fakes';

interface Ready {
  readonly type: 'ready';
  readonly tenantEndpoint: string;
  readonly metadataHost: string;
  readonly cas: Record<string, unknown>;
  readonly kms: Record<string, unknown>;
}

interface Finished extends TenantCounters {
  readonly casRequests: number;
  readonly casCreates: number;
  readonly kmsSigns: number;
}

const scenario: BenchScenario = {
  name: 'google',
  description: 'Google CAs: CAS requests and KMS sign calls per certificate, adapter CPU per certificate',
  async run({ quick }) {
    const count = quick ? 60 : 400;
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } });
    const cloudsdk = await mkdtemp(path.join(tmpdir(), 'certprov-bench-gcloud-'));
    const saved = {
      GCE_METADATA_HOST: process.env.GCE_METADATA_HOST,
      GOOGLE_APPLICATION_CREDENTIALS: process.env.GOOGLE_APPLICATION_CREDENTIALS,
      CLOUDSDK_CONFIG: process.env.CLOUDSDK_CONFIG,
    };
    try {
      const ready = await ask<Ready>(worker, { type: 'hello' });
      // Application Default Credentials from the fake metadata server, as Workload Identity gives them on GKE.
      process.env.GCE_METADATA_HOST = ready.metadataHost;
      process.env.CLOUDSDK_CONFIG = cloudsdk;
      Reflect.deleteProperty(process.env, 'GOOGLE_APPLICATION_CREDENTIALS');
      const measure = async (connection: Record<string, unknown>) => {
        const run = await measureCaPath<Finished>(worker, {
          tenantEndpoint: ready.tenantEndpoint,
          connection,
          count,
          instanceId: 'certprov-bench-google',
        });
        const delta = (key: 'casRequests' | 'casCreates' | 'kmsSigns') => run.finished[key] - run.warmed[key];
        return {
          ...run,
          doubleSignData: run.finished.doubleSignData,
          casRequests: delta('casRequests'),
          casCreates: delta('casCreates'),
          kmsSigns: delta('kmsSigns'),
        };
      };
      const cas = await measure(ready.cas);
      const kms = await measure(ready.kms);
      const figures: BenchFigure[] = [{ name: 'processes per CA', value: count, unit: '' }];
      for (const [label, run] of [
        ['CAS', cas],
        ['KMS', kms],
      ] as const) {
        figures.push(
          { name: `${label}: issued`, value: run.issued, unit: '', target: `= ${count}` },
          { name: `${label}: double signData`, value: run.doubleSignData, unit: '', target: '= 0' },
        );
        if (label === 'CAS') {
          figures.push(
            {
              name: 'CAS requests per certificate',
              value: run.casRequests / run.issued,
              unit: 'requests',
              target: '= 1.0',
            },
            {
              name: 'CAS CreateCertificate per certificate',
              value: run.casCreates / run.issued,
              unit: 'calls',
              target: '= 1.0',
            },
          );
        } else {
          figures.push({
            name: 'KMS AsymmetricSign calls per certificate',
            value: run.kmsSigns / run.issued,
            unit: 'signs',
            target: '= 1.0',
          });
        }
        figures.push(
          { name: `${label}: adapter CPU per certificate (main thread)`, value: run.cpuMsPerCertificate, unit: 'ms' },
          { name: `${label}: throughput`, value: run.throughput, unit: 'processes/s' },
        );
      }
      return figures;
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) Reflect.deleteProperty(process.env, key);
        else process.env[key] = value;
      }
      await ask(worker, { type: 'stop' }).catch(() => undefined);
      await worker.terminate();
      await rm(cloudsdk, { recursive: true, force: true });
    }
  },
};
export default scenario;

/** The worker: the sandbox tenant, the metadata server and the CAS and KMS fakes. */
async function runFakes(): Promise<void> {
  if (parentPort === null) return;
  await serveCaPathWorker(parentPort, async (pool) => {
    const metadata = await FakeMetadataServer.start();
    const cas = await FakeCas.start();
    const { name: caPool } = await cas.createPool({ maximumLifetimeDays: 397 });
    const kms = await FakeKms.start({ rsaKey: () => pool.next('rsa-2048').privateKey });
    const fixture = await createKmsIssuingCa(kms);
    return {
      ready: {
        metadataHost: metadata.host,
        // The budget is the pool's real quota's stand-in; here it must not be what is measured.
        cas: {
          type: 'google-cas',
          caPool,
          endpoint: cas.url,
          rateLimit: { requestsPerSecond: 10_000, requestsPerMinute: 600_000 },
        },
        kms: fixture.connection({
          caCertificateFile: path.join(fixture.dir, 'kms-ca.pem'),
          chainFile: path.join(fixture.dir, 'parent.pem'),
        }),
      },
      counters: () => ({
        casRequests: cas.server.requests.length,
        casCreates: cas.createRequests,
        kmsSigns: kms.signCalls,
      }),
      close: async () => {
        await cas.close();
        await kms.close();
        await fixture.close();
        await metadata.close();
      },
    };
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) await runFakes();
