import { inject } from 'vitest';
import { KeyPool } from '../../src/sandbox/key-pool.ts';

let pool: Promise<KeyPool> | undefined;

/** The run's shared device key pool (generated once in global setup). */
export function testKeyPool(): Promise<KeyPool> {
  pool ??= KeyPool.load(inject('keyPoolFile'));
  return pool;
}
