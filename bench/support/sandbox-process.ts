/** The parent side of bench/support/sandbox-child.ts: starts the sandbox tenant in its own OS process. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TenantStats } from '../../src/sandbox/index.ts';
import type { ChildReady, ChildRequest } from './sandbox-child.ts';

export class SandboxProcess {
  readonly endpoint: string;
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private seq = 0;

  private constructor(child: ChildProcess, endpoint: string) {
    this.child = child;
    this.endpoint = endpoint;
    child.on('message', (message: { seq: number; value?: unknown; error?: string }) => {
      const waiter = this.pending.get(message.seq);
      if (waiter === undefined) return;
      this.pending.delete(message.seq);
      if (message.error !== undefined) waiter.reject(new Error(message.error));
      else waiter.resolve(message.value);
    });
  }

  static async start(): Promise<SandboxProcess> {
    const child = fork(path.join(import.meta.dirname, 'sandbox-child.ts'), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const ready = await new Promise<ChildReady>((resolve, reject) => {
      child.once('message', (m: ChildReady) => resolve(m));
      child.once('exit', (code) => reject(new Error(`sandbox process exited (${code}) before it was ready`)));
    });
    return new SandboxProcess(child, ready.endpoint);
  }

  private call<T>(request: ChildRequest): Promise<T> {
    const seq = (this.seq += 1);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ seq, request });
    });
  }

  /**
   * Creates `count` processes (RSA/EC × device/user) whose devices sign `signDelayMs` after signData; `never`: the
   * devices sleep until {@link online}.
   */
  create(count: number, signDelayMs: number | 'never'): Promise<string[]> {
    return this.call({ op: 'create', count, signDelayMs });
  }

  /** Wakes sleeping devices: each signs its pending request `delayMs` later. */
  online(ids: readonly string[], delayMs: number): Promise<void> {
    return this.call({ op: 'online', ids, delayMs });
  }

  /** The tenant's counters and the sandbox process's CPU time so far. */
  stats(): Promise<TenantStats & { cpuMs: number }> {
    return this.call({ op: 'stats' });
  }

  /** Per process: [first request, uploadCertificate] in epoch ms (null when not seen). */
  timeline(ids: readonly string[]): Promise<[number | null, number | null][]> {
    return this.call({ op: 'timeline', ids });
  }

  /** Requests served so far, by method. */
  requests(): Promise<Record<string, number>> {
    return this.call({ op: 'requests' });
  }

  /** Polls until every one of `ids` has a certificate or a failure. */
  async waitFinished(ids: readonly string[], timeoutMs: number, expected: number): Promise<TenantStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const stats = await this.stats();
      if (stats.issued + stats.failed >= expected) return stats;
      if (Date.now() > deadline)
        throw new Error(`only ${stats.issued + stats.failed} of ${ids.length} finished in time`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.call({ op: 'close' }).catch(() => undefined);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
