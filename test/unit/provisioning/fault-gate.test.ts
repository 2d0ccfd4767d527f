/**
 * The fault gate on a fake clock: a faulted component is paused as a whole — processes are held without a request,
 * one probe and one ERROR line per backoff interval (with the count held), every held process resumed at once when
 * the probe passes, and `retryNow` probes without waiting out the backoff.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/observability/logger.ts';
import { FaultGate } from '../../../src/provisioning/fault-gate.ts';
import { LogCapture } from '../../support/adapter-rig.ts';

const C = 'digicert';
const FAULT = { message: 'DigiCert refused the API key (403)', hint: 'rotate the key in the Secret' };
const BACKOFF = { initialMs: 1_000, maxMs: 8_000 };

let logs: LogCapture;
let resumed: string[][];
let gate: FaultGate;

beforeEach(() => {
  vi.useFakeTimers();
  logs = new LogCapture();
  resumed = [];
  gate = new FaultGate({
    log: createLogger({ level: 'debug', destination: logs }),
    backoff: BACKOFF,
    now: () => Date.now(),
    random: () => 0.5, // no jitter: the schedule itself
    resume: (ids) => resumed.push([...ids]),
  });
});
afterEach(() => {
  gate.close();
  vi.useRealTimers();
});

const errorLines = () => logs.entries().filter((e) => e.severity === 'ERROR');

/** Trips the gate with p0, then offers p1…p(n-1): all held. */
function tripWith(n: number): void {
  expect(gate.admit(C, 'p0')).toEqual({ kind: 'run' });
  gate.faulted(C, 'p0', FAULT);
  for (let i = 1; i < n; i += 1) expect(gate.admit(C, `p${i}`)).toEqual({ kind: 'hold' });
}

describe('a faulted component', () => {
  it('runs everything while healthy', () => {
    for (let i = 0; i < 5; i += 1) expect(gate.admit(C, `p${i}`)).toEqual({ kind: 'run' });
    expect(gate.isFaulted(C)).toBe(false);
  });

  it('is paused by its first fault: one ERROR line naming component, hint and next probe; every other process held', () => {
    tripWith(50);
    expect(gate.heldCount(C)).toBe(50);
    const lines = errorLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ component: C, hint: FAULT.hint, error: FAULT.message, nextProbeInMs: 1_000 });
    expect(resumed).toEqual([]);
    // Another component is not affected.
    expect(gate.admit('chrome', 'p1')).toEqual({ kind: 'run' });
  });

  it('holds processes already in flight when they fault too, without another line', () => {
    expect(gate.admit(C, 'p0')).toEqual({ kind: 'run' });
    expect(gate.admit(C, 'p1')).toEqual({ kind: 'run' });
    gate.faulted(C, 'p0', FAULT);
    gate.faulted(C, 'p1', FAULT);
    expect(errorLines()).toHaveLength(1);
    expect(gate.heldCount(C)).toBe(2);
  });

  it('lets one probe through per backoff interval and logs one ERROR line per interval with the count held', () => {
    tripWith(50);
    const intervals = [2_000, 4_000, 8_000, 8_000];
    let wait = 1_000;
    for (const [i, next] of intervals.entries()) {
      vi.advanceTimersByTime(wait - 1);
      expect(resumed).toHaveLength(i); // not before the interval is over
      vi.advanceTimersByTime(1);
      const probe = resumed.at(-1)?.[0] ?? '';
      expect(resumed.at(-1)).toHaveLength(1); // one process launched to probe
      expect(gate.admit(C, probe)).toEqual({ kind: 'probe' });
      // While it is out, everyone else is held — including new processes.
      expect(gate.admit(C, 'p-new')).toEqual({ kind: 'hold' });
      gate.faulted(C, probe, FAULT);
      expect(errorLines().at(-1)).toMatchObject({ nextProbeInMs: next, held: 51 });
      wait = next;
    }
    expect(errorLines()).toHaveLength(1 + intervals.length);
  });

  it('resumes every held process at once when the probe passes, with one INFO line, and stops probing', () => {
    tripWith(30);
    vi.advanceTimersByTime(1_000);
    const probe = resumed[0]?.[0] ?? '';
    expect(gate.admit(C, probe)).toEqual({ kind: 'probe' });
    gate.succeeded(C);
    const all = resumed.at(-1) ?? [];
    expect(all).toHaveLength(29); // everyone but the probe, in one call
    expect(new Set([...all, probe])).toEqual(new Set(Array.from({ length: 30 }, (_, i) => `p${i}`)));
    expect(logs.entries().filter((e) => e.severity === 'INFO')).toMatchObject([{ component: C, resumed: 29 }]);
    expect(gate.admit(C, 'p1')).toEqual({ kind: 'run' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('probes at once on retryNow (an admin fixed the key)', () => {
    tripWith(10);
    expect(resumed).toEqual([]);
    expect(gate.retryNow()).toEqual([C]);
    const probe = resumed.at(-1)?.[0] ?? '';
    expect(gate.admit(C, probe)).toEqual({ kind: 'probe' });
    gate.succeeded(C);
    expect(gate.isFaulted(C)).toBe(false);
  });

  it('frees the probe slot when a probe ends neither way (a 5xx, a lost lease)', () => {
    tripWith(5);
    vi.advanceTimersByTime(1_000);
    const probe = resumed[0]?.[0] ?? '';
    expect(gate.admit(C, probe)).toEqual({ kind: 'probe' });
    gate.release(C, probe);
    expect(gate.admit(C, 'p3')).toEqual({ kind: 'probe' });
    expect(errorLines()).toHaveLength(1);
  });
});
