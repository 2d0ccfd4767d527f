/**
 * Once per `vitest run`: the device key pool (RSA-2048 generation is slow, so it happens once) and Google's
 * Pub/Sub emulator. Test files receive them through `inject()`; each file makes its own topic and subscription.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { KeyPool } from '../../src/sandbox/key-pool.ts';
import { startPubSubEmulator, type RunningEmulator } from './emulators.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    keyPoolFile: string;
    pubsubEmulatorHost: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-test-'));
  const keyPoolFile = path.join(dir, 'key-pool.json');
  const [pool, pubsub] = await Promise.all([
    KeyPool.generate({ 'rsa-2048': 6, 'ec-p256': 6, 'rsa-1024': 1 }),
    startPubSubEmulator(),
  ]);
  await pool.save(keyPoolFile);
  project.provide('keyPoolFile', keyPoolFile);
  project.provide('pubsubEmulatorHost', pubsub.host);
  const emulators: RunningEmulator[] = [pubsub];
  return async () => {
    await Promise.all(emulators.map((e) => e.stop()));
    await rm(dir, { recursive: true, force: true });
  };
}
