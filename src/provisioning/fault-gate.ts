/**
 * Pauses a faulted component as a whole (DESIGN.md §5, deployment fault). A 403 from DigiCert or a revoked Chrome
 * permission is the deployment's problem, not one process's: retrying each process on its own backoff sent one
 * request and logged one ERROR line per process per retry. While a component is faulted, this replica instead
 *
 * - holds every process whose next step needs it (the step is not run; the record is parked, nothing is sent),
 * - lets ONE process through per backoff interval as the probe,
 * - logs ONE error line per interval, with the count of processes held,
 * - and when a probe (or any call to the component) succeeds, resumes every held process at once.
 *
 * `retryNow` (the ops server's `POST /retry-faulted`, `certprov retry --faulted`) probes at once: the admin who fixed
 * the key need not wait out the backoff. Each replica gates on its own (one probe per interval per replica).
 */
import type { BackoffPolicy } from '../backoff.ts';
import { backoffDelay } from '../backoff.ts';
import type { FaultComponent } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';

export type Admission =
  /** No fault: run the step. */
  | { readonly kind: 'run' }
  /** Faulted, and this process is the interval's probe: run the step. */
  | { readonly kind: 'probe' }
  /** Faulted: do not run the step; the process is held and resumed by the gate. */
  | { readonly kind: 'hold' };

export interface FaultGateOptions {
  readonly log: Logger;
  /** The interval between probes: the engine's retry backoff. */
  readonly backoff: BackoffPolicy;
  /** Launches a held process (the probe, or every held process once the component recovered). */
  readonly resume: (processIds: readonly string[]) => void;
  /** Wall clock, epoch ms. */
  readonly now?: () => number;
  /** Injectable for tests; default the global timers. */
  readonly setTimer?: (fn: () => void, ms: number) => NodeJS.Timeout;
  readonly clearTimer?: (timer: NodeJS.Timeout) => void;
  /** Jitter source of the backoff; [0, 1). */
  readonly random?: () => number;
}

interface Tripped {
  readonly since: number;
  /** Probes that failed since the trip (the backoff exponent). */
  failedProbes: number;
  nextProbeAt: number;
  /** The process running as the probe, if one is in flight. */
  probe: string | undefined;
  /** The next process to ask for the component runs as the probe. */
  probeOpen: boolean;
  readonly held: Set<string>;
  timer: NodeJS.Timeout | undefined;
}

export class FaultGate {
  private readonly options: FaultGateOptions;
  private readonly now: () => number;
  private readonly tripped = new Map<FaultComponent, Tripped>();

  constructor(options: FaultGateOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Whether `processId`'s next step, which needs `component`, may run. */
  admit(component: FaultComponent, processId: string): Admission {
    const fault = this.tripped.get(component);
    if (fault === undefined) return { kind: 'run' };
    if (fault.probe === processId) return { kind: 'probe' };
    if (fault.probe === undefined && (fault.probeOpen || this.now() >= fault.nextProbeAt)) {
      fault.probe = processId;
      fault.probeOpen = false;
      fault.held.delete(processId);
      return { kind: 'probe' };
    }
    fault.held.add(processId);
    return { kind: 'hold' };
  }

  /** Processes held for `component` on this replica. */
  heldCount(component: FaultComponent): number {
    return this.tripped.get(component)?.held.size ?? 0;
  }

  isFaulted(component: FaultComponent): boolean {
    return this.tripped.has(component);
  }

  /**
   * A step that needed `component` ended in a deployment fault of it. The first one trips the gate; a failed probe
   * starts the next interval; either way one ERROR line. Other processes that were already in flight are held
   * silently.
   */
  faulted(component: FaultComponent, processId: string, error: { message: string; hint?: string | undefined }): void {
    const now = this.now();
    let fault = this.tripped.get(component);
    const wasProbe = fault?.probe === processId;
    if (fault !== undefined && !wasProbe) {
      fault.held.add(processId);
      return;
    }
    if (fault === undefined) {
      fault = {
        since: now,
        failedProbes: 0,
        nextProbeAt: now,
        probe: undefined,
        probeOpen: false,
        held: new Set(),
        timer: undefined,
      };
      this.tripped.set(component, fault);
    } else {
      fault.failedProbes += 1;
      fault.probe = undefined;
    }
    fault.held.add(processId);
    const delayMs = backoffDelay(this.options.backoff, fault.failedProbes + 1, undefined, this.options.random);
    fault.nextProbeAt = now + delayMs;
    this.arm(component, fault, delayMs);
    this.options.log.error(
      {
        component,
        // The process whose request failed (the trip, or the probe).
        processId,
        held: fault.held.size,
        faultedForMs: now - fault.since,
        nextProbeInMs: delayMs,
        error: error.message,
        ...(error.hint === undefined ? {} : { hint: error.hint }),
      },
      `deployment fault: ${component} paused, ${fault.held.size} process(es) held; one probe per interval, all resume when it passes (no setFailure)`,
    );
  }

  /** A call to `component` succeeded: if it was faulted, every held process resumes now. */
  succeeded(component: FaultComponent): void {
    const fault = this.tripped.get(component);
    if (fault === undefined) return;
    this.tripped.delete(component);
    if (fault.timer !== undefined) (this.options.clearTimer ?? clearTimeout)(fault.timer);
    const held = [...fault.held];
    this.options.log.info(
      { component, resumed: held.length, faultedForMs: this.now() - fault.since },
      `deployment fault cleared: ${component} works again; resuming ${held.length} held process(es)`,
    );
    if (held.length > 0) this.options.resume(held);
  }

  /** A held process left the gate's hands (another replica finished it, or it was found done). */
  release(component: FaultComponent, processId: string): void {
    const fault = this.tripped.get(component);
    if (fault === undefined) return;
    fault.held.delete(processId);
    if (fault.probe === processId) fault.probe = undefined;
  }

  /** Probe every faulted component now (an admin fixed the cause). Returns the components probed. */
  retryNow(): FaultComponent[] {
    const components = [...this.tripped.keys()];
    for (const component of components) {
      const fault = this.tripped.get(component);
      if (fault === undefined) continue;
      fault.nextProbeAt = this.now();
      fault.failedProbes = 0;
      this.openProbe(component, fault);
    }
    return components;
  }

  /** Cancels the probe timers (shutdown). Held processes stay parked in the store; another replica takes them. */
  close(): void {
    for (const fault of this.tripped.values()) {
      if (fault.timer !== undefined) (this.options.clearTimer ?? clearTimeout)(fault.timer);
      fault.timer = undefined;
    }
  }

  private arm(component: FaultComponent, fault: Tripped, delayMs: number): void {
    if (fault.timer !== undefined) (this.options.clearTimer ?? clearTimeout)(fault.timer);
    fault.timer = (this.options.setTimer ?? setTimeout)(() => {
      fault.timer = undefined;
      this.openProbe(component, fault);
    }, delayMs);
    fault.timer.unref?.();
  }

  /** Opens the probe slot and launches one held process to take it (unless a probe is already in flight). */
  private openProbe(component: FaultComponent, fault: Tripped): void {
    if (this.tripped.get(component) !== fault) return;
    if (fault.probe === undefined) {
      fault.probeOpen = true;
      const first = fault.held.values().next();
      if (!first.done) {
        // Out of the held set: if it cannot run here, it is not launched again and again; admit() re-adds it.
        fault.held.delete(first.value);
        this.options.resume([first.value]);
      }
    }
    // If that process cannot run here (another replica leased it), the slot stays open for the next one; re-arm so
    // a lost probe never stalls the component.
    const delayMs = backoffDelay(this.options.backoff, fault.failedProbes + 1, undefined, this.options.random);
    this.arm(component, fault, delayMs);
  }
}
