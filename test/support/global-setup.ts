/**
 * Once per `vitest run` and project: the device key pool (RSA-2048 generation is slow, so it happens once) and, for
 * the `integration` project only, Google's Pub/Sub and Firestore emulators. Test files receive them through
 * `inject()`; each file makes its own topic and subscription, and its own Firestore collections
 * (test/support/firestore.ts). Vitest runs a project's global setup only when that project has files to run, so
 * `npm run test:unit` (or one unit file) starts no Java.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { KeyPool } from '../../src/sandbox/key-pool.ts';
import { startFirestoreEmulator, startPubSubEmulator, type RunningEmulator } from './emulators.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    keyPoolFile: string;
    /** `127.0.0.1:PORT` of the run's Pub/Sub emulator (integration project only). */
    pubsubEmulatorHost: string;
    /** `127.0.0.1:PORT` of the run's Firestore emulator (project `certprov-test`; integration project only). */
    firestoreEmulatorHost: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const withEmulators = project.name === 'integration';
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-test-'));
  const keyPoolFile = path.join(dir, 'key-pool.json');
  const keys = KeyPool.generate({ 'rsa-2048': 6, 'ec-p256': 6, 'rsa-1024': 1 });
  keys.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
  const started: PromiseSettledResult<RunningEmulator>[] = withEmulators
    ? await Promise.allSettled([startPubSubEmulator(), startFirestoreEmulator()])
    : [];
  const emulators: RunningEmulator[] = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    await (await keys).save(keyPoolFile);
  } catch (error) {
    // Never leave an emulator running because the rest of the setup failed.
    await Promise.all(emulators.map((e) => e.stop()));
    throw error;
  }
  project.provide('keyPoolFile', keyPoolFile);
  if (withEmulators) {
    const [pubsub, firestore] = emulators as [RunningEmulator, RunningEmulator];
    project.provide('pubsubEmulatorHost', pubsub.host);
    project.provide('firestoreEmulatorHost', firestore.host);
  }
  return async () => {
    await Promise.all(emulators.map((e) => e.stop()));
    await rm(dir, { recursive: true, force: true });
  };
}
