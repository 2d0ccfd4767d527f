/**
 * The sandbox tenant in its own OS process (bench/support/sandbox-process.ts starts it): the Chrome API stand-in and
 * the simulated devices' signing then cost the benchmark process nothing, so its CPU figures are the adapter's (or
 * the floor's) own. Talks to its parent over the IPC channel: one request, one answer, matched by `seq`.
 *
 * It keeps a per-process timeline from the requests it serves — first request, uploadCertificate — so the adapter's
 * and the floor's latency are measured by the same clock, from the moment work on a process began (queueing before
 * the first request is not latency the adapter adds).
 */
import { performance } from 'node:perf_hooks';
import { KeyPool, SandboxTenant } from '../../src/sandbox/index.ts';

export type ChildRequest =
  | { readonly op: 'create'; readonly count: number; readonly signDelayMs: number | 'never' }
  | { readonly op: 'online'; readonly ids: readonly string[]; readonly delayMs: number }
  | { readonly op: 'stats' }
  | { readonly op: 'timeline'; readonly ids: readonly string[] }
  | { readonly op: 'requests' }
  | { readonly op: 'close' };

export interface ChildReady {
  readonly ready: true;
  readonly endpoint: string;
}

/** Epoch milliseconds with sub-millisecond resolution (comparable across processes on one machine). */
const nowMs = (): number => performance.timeOrigin + performance.now();

const firstRequest = new Map<string, number>();
const uploaded = new Map<string, number>();
const pool = await KeyPool.generate({ 'rsa-2048': 4, 'ec-p256': 4 });
const tenant = await SandboxTenant.start({
  onRequest: (method, processId) => {
    if (processId === undefined) return;
    if (!firstRequest.has(processId)) firstRequest.set(processId, nowMs());
    if (method === 'uploadCertificate') uploaded.set(processId, nowMs());
  },
});

function answer(request: ChildRequest): unknown {
  switch (request.op) {
    case 'create':
      return tenant.createProcesses(request.count, {
        pool,
        ecShare: 0.5,
        userShare: 0.5,
        signDelayMs: request.signDelayMs,
      });
    case 'online':
      for (const id of request.ids) tenant.deviceComesOnline(id, request.delayMs);
      return null;
    case 'stats':
      return { ...tenant.stats(), cpuMs: cpuMs() };
    case 'timeline':
      return request.ids.map((id) => [firstRequest.get(id) ?? null, uploaded.get(id) ?? null]);
    case 'requests':
      return tenant.requests;
    case 'close':
      void tenant.close().then(() => process.exit(0));
      return null;
  }
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

process.on('message', (message: { seq: number; request: ChildRequest }) => {
  let reply: { seq: number; value?: unknown; error?: string };
  try {
    reply = { seq: message.seq, value: answer(message.request) };
  } catch (error) {
    reply = { seq: message.seq, error: String(error) };
  }
  process.send?.(reply);
});
process.send?.({ ready: true, endpoint: tenant.endpoint } satisfies ChildReady);
