/**
 * The local CA after an interrupted attempt (`priorAttempts` > 0: a replica died between signing and recording the
 * result): it returns the certificate it journaled for the process instead of issuing a second one.
 */
import { sign } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { localCaConfigSchema } from '../../../src/ca/local/config.ts';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { LocalCa } from '../../../src/ca/local/local-ca.ts';
import type { IssueRequest, IssueResult } from '../../../src/ca/types.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { assembleCertificationRequest, buildCertificationRequestInfo } from '../../../src/pki/certification-request.ts';
import { parseDeviceKey } from '../../../src/pki/device-key.ts';
import type { RenderedProfile } from '../../../src/pki/types.ts';
import type { DeviceKey } from '../../../src/sandbox/key-pool.ts';
import { testKeyPool } from '../../support/keys.ts';

const PROFILE: RenderedProfile = {
  name: 'device_profile',
  subject: [[{ type: 'CN', oid: '2.5.4.3', value: 'SERIAL123' }]],
  subjectAltNames: [],
  validityMs: 30 * 86_400_000,
  extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
};

let baseDir: string;
let ca: LocalCa;
beforeEach(async () => {
  baseDir = await mkdtemp(path.join(tmpdir(), 'certprov-localca-reconcile-'));
  await initLocalCa({ directory: path.join(baseDir, 'ca'), keyType: 'ec' });
  ca = await LocalCa.open('trial_ca', localCaConfigSchema.parse({ type: 'local', directory: 'ca' }), {
    log: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    baseDir,
  });
});
afterEach(async () => {
  await rm(baseDir, { recursive: true, force: true });
});

function request(key: DeviceKey, priorAttempts: number, processId = 'proc-1'): IssueRequest {
  const spkiDer = new Uint8Array(key.spkiDer);
  const cri = buildCertificationRequestInfo({ subject: PROFILE.subject, subjectAltNames: [], spkiDer });
  return {
    processId,
    correlationId: `corr-${processId}`,
    caConnection: 'trial_ca',
    csrDer: assembleCertificationRequest(cri, 'ec', new Uint8Array(sign('sha256', cri, key.privateKey))),
    spkiDer,
    deviceKey: parseDeviceKey(spkiDer),
    profile: PROFILE,
    priorAttempts,
  };
}

const ctx = () => ({ signal: new AbortController().signal, log: silentLogger() });

function pemOf(result: IssueResult): string {
  if (result.status !== 'issued') throw new Error(`expected issued, got ${result.status}`);
  return result.certificatePem;
}

async function journalLines(): Promise<number> {
  const text = await readFile(path.join(baseDir, 'ca', 'issued.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').length;
}

describe('local CA after an interrupted issue', () => {
  it('returns the certificate already journaled for the process instead of signing again', async () => {
    const key = (await testKeyPool()).next('ec-p256');
    const first = pemOf(await ca.issue(request(key, 0), ctx()));
    const again = pemOf(await ca.issue(request(key, 1), ctx()));
    expect(again).toBe(first);
    expect(await journalLines()).toBe(1);
    expect(await readdir(path.join(baseDir, 'ca', 'issued'))).toHaveLength(1);
  });

  it('issues when nothing was journaled for the process (the crash came before signing)', async () => {
    const key = (await testKeyPool()).next('ec-p256');
    await ca.issue(request(key, 0, 'other-process'), ctx());
    pemOf(await ca.issue(request(key, 1), ctx()));
    expect(await journalLines()).toBe(2);
  });

  it('issues anew when the journaled certificate is for another key', async () => {
    const pool = await testKeyPool();
    const [a, b] = [pool.next('ec-p256'), pool.next('ec-p256')];
    if (Buffer.from(a.spkiDer).equals(b.spkiDer)) throw new Error('the pool returned the same key twice in a row');
    const first = pemOf(await ca.issue(request(a, 0), ctx()));
    const second = pemOf(await ca.issue(request(b, 1), ctx()));
    expect(second).not.toBe(first);
    expect(await journalLines()).toBe(2);
  });

  it('stays repeatable on a first attempt: priorAttempts 0 always signs', async () => {
    const key = (await testKeyPool()).next('ec-p256');
    const first = pemOf(await ca.issue(request(key, 0), ctx()));
    const second = pemOf(await ca.issue(request(key, 0), ctx()));
    expect(second).not.toBe(first);
    expect(await journalLines()).toBe(2);
  });
});
