/**
 * Device keys for simulated ChromeOS clients. RSA-2048 generation costs ~0.2 s of CPU, so keys are generated once
 * (in parallel on the libuv pool) and shared: several simulated devices may hold the same key, which is harmless
 * for the sandbox and keeps a 1,000-process test from spending minutes on key generation.
 */
import { generateKeyPair, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

export type PoolKeyType = 'rsa-2048' | 'ec-p256' | 'rsa-1024';

export interface DeviceKey {
  readonly type: PoolKeyType;
  readonly privateKey: KeyObject;
  /** SubjectPublicKeyInfo, DER. */
  readonly spkiDer: Buffer;
}

interface SerializedPool {
  readonly keys: readonly { type: PoolKeyType; pkcs8: string }[];
}

function fromPrivate(type: PoolKeyType, privateKey: KeyObject): DeviceKey {
  return { type, privateKey, spkiDer: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }) };
}

async function generateOne(type: PoolKeyType): Promise<DeviceKey> {
  const { privateKey } =
    type === 'ec-p256'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : await generateKeyPairAsync('rsa', { modulusLength: type === 'rsa-1024' ? 1024 : 2048 });
  return fromPrivate(type, privateKey);
}

export class KeyPool {
  private readonly byType: ReadonlyMap<PoolKeyType, readonly DeviceKey[]>;
  private readonly cursor = new Map<PoolKeyType, number>();

  private constructor(keys: readonly DeviceKey[]) {
    const byType = new Map<PoolKeyType, DeviceKey[]>();
    for (const key of keys) byType.set(key.type, [...(byType.get(key.type) ?? []), key]);
    this.byType = byType;
  }

  static async generate(counts: Partial<Record<PoolKeyType, number>>): Promise<KeyPool> {
    const jobs: Promise<DeviceKey>[] = [];
    for (const [type, count] of Object.entries(counts) as [PoolKeyType, number][]) {
      for (let i = 0; i < count; i += 1) jobs.push(generateOne(type));
    }
    return new KeyPool(await Promise.all(jobs));
  }

  static async load(file: string): Promise<KeyPool> {
    const data = JSON.parse(await readFile(file, 'utf8')) as SerializedPool;
    return new KeyPool(data.keys.map((k) => fromPrivate(k.type, createPrivateKey(k.pkcs8))));
  }

  async save(file: string): Promise<void> {
    const keys = [...this.byType.values()].flat().map((k) => ({
      type: k.type,
      pkcs8: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    }));
    await writeFile(file, JSON.stringify({ keys } satisfies SerializedPool), { mode: 0o600 });
  }

  /** The next key of a type, round-robin. Throws when the pool has none of that type. */
  next(type: PoolKeyType): DeviceKey {
    const keys = this.byType.get(type);
    if (keys === undefined || keys.length === 0) throw new Error(`key pool has no ${type} keys`);
    const index = this.cursor.get(type) ?? 0;
    this.cursor.set(type, index + 1);
    return keys[index % keys.length] as DeviceKey;
  }

  count(type: PoolKeyType): number {
    return this.byType.get(type)?.length ?? 0;
  }
}
