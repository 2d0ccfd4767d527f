/**
 * Open-handle leak check (STYLE.md: "assert no open handles after" each integration file, as graphile-worker's
 * test helpers do). `process.getActiveResourcesInfo()` lists the ref'd handles and requests that keep Node alive —
 * servers, sockets, child processes and their pipes, ref'd timers — by type; a file that leaves more of a type than
 * it found has leaked it. Unref'd timers and handles are not listed (they keep nothing alive), so the check asks
 * nothing of them.
 */
import { createHook } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Resource type → how many are active (`TCPServerWrap: 1`, `ProcessWrap: 2`, `Timeout: 3`). */
export type ResourceCounts = ReadonlyMap<string, number>;

export function activeResources(): ResourceCounts {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** Types of which `now` holds more than `baseline`, with how many more; empty when nothing leaked. */
export function excessOver(baseline: ResourceCounts, now: ResourceCounts): ResourceCounts {
  const excess = new Map<string, number>();
  for (const [type, count] of now) {
    const more = count - (baseline.get(type) ?? 0);
    if (more > 0) excess.set(type, more);
  }
  return excess;
}

/** Per type, the lower of the two counts. */
export function lowerOf(a: ResourceCounts, b: ResourceCounts): ResourceCounts {
  return new Map([...a].flatMap(([type, n]) => (b.has(type) ? [[type, Math.min(n, b.get(type) ?? 0)] as const] : [])));
}

export function describeResources(counts: ResourceCounts): string {
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, n]) => `${n} ${type}`)
    .join(', ');
}

/**
 * Resource types a test file may leave behind, each with the reason (see {@link allowLeftover}). Setup file and test
 * file share this module in the file's worker, so what the file declares here is what its leak check reads.
 */
export const allowedLeftovers = new Map<string, string>();

/**
 * Lets the current test file leave `type` open, for a reason outside our code (a third-party client's own retry
 * timers that its close does not cancel). Narrow on purpose: one type, one file, a reason the report shows; every
 * other type is still checked.
 */
export function allowLeftover(type: string, reason: string): void {
  allowedLeftovers.set(type, reason);
}

/** `excess` without the types the file was allowed to leave. */
export function withoutAllowed(excess: ResourceCounts, allowed: ReadonlyMap<string, string>): ResourceCounts {
  return new Map([...excess].filter(([type]) => !allowed.has(type)));
}

/** How long closing resources may take to settle: a closed socket or a killed child goes away a few ticks later. */
export const LEAK_GRACE_MS = 5_000;

/**
 * What is still open beyond `baseline` once closing resources have had up to `graceMs` to settle (polled, so a
 * clean file pays one check). Empty when nothing leaked.
 */
export async function leakedSince(
  baseline: ResourceCounts,
  graceMs: number = LEAK_GRACE_MS,
  allowed: ReadonlyMap<string, string> = allowedLeftovers,
): Promise<ResourceCounts> {
  const deadline = Date.now() + graceMs;
  let excess = withoutAllowed(excessOver(baseline, activeResources()), allowed);
  while (excess.size > 0 && Date.now() < deadline) {
    // An unref'd wait: the check itself must not count as a ref'd Timeout.
    await sleep(50, undefined, { ref: false });
    excess = withoutAllowed(excessOver(baseline, activeResources()), allowed);
  }
  return excess;
}

/** Async resource types (async_hooks names) that can hold the process open. */
const TRACED_TYPES = new Set([
  'Timeout',
  'TCPWRAP',
  'TCPSERVERWRAP',
  'PIPEWRAP',
  'PIPESERVERWRAP',
  'PROCESSWRAP',
  'UDPWRAP',
  'TTYWRAP',
  'SIGNALWRAP',
  'FSEVENTWRAP',
  'STATWATCHER',
]);

interface Traced {
  readonly type: string;
  readonly stack: string;
  readonly resource: { hasRef?: () => boolean };
}

/**
 * Where each open resource was created: with CERTPROV_LEAK_TRACE=1 the setup file records the stack of every
 * resource made during the file (async_hooks; slow, so only on demand) and a leak report lists the ref'd ones still
 * alive.
 */
export function traceResources(): () => string[] {
  const alive = new Map<number, Traced>();
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (!TRACED_TYPES.has(type)) return;
      const stack = (new Error().stack ?? '')
        .split('\n')
        .slice(2)
        .filter((line) => !line.includes('node:internal/async_hooks'))
        .slice(0, 12)
        .join('\n');
      alive.set(asyncId, { type, stack, resource });
    },
    destroy(asyncId) {
      alive.delete(asyncId);
    },
  }).enable();
  return () => {
    hook.disable();
    return [...alive.values()].filter((t) => t.resource.hasRef?.() ?? true).map((t) => `${t.type} created\n${t.stack}`);
  };
}
