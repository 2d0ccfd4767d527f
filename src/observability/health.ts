/**
 * Lifecycle and readiness of one replica (Temporal's worker State). `/readyz` is true while the replica is running
 * (configuration loaded and every part started), subscribed, and has no unresolved deployment fault; it deliberately
 * does not depend on remote services being up: a DigiCert outage (5xx, timeouts) is a retryable error, not a fault,
 * and must not make every pod unready and block node drains on the PodDisruptionBudget (DESIGN.md §6). A deployment
 * fault (401/403, missing permission, unreachable store) does: the replica cannot do useful work until an operator
 * acts, and the unready pods point at it.
 */
import type { FaultComponent } from '../errors.ts';
import type { Metrics } from './metrics.ts';

export type LifecycleState = 'starting' | 'running' | 'draining' | 'stopped';

export interface ActiveFault {
  readonly component: FaultComponent;
  readonly since: number;
  readonly message: string;
}

export class Health {
  private state: LifecycleState = 'starting';
  private subscribed = false;
  private readonly faults = new Map<FaultComponent, ActiveFault>();

  private readonly metrics: Metrics | undefined;

  constructor(metrics?: Metrics) {
    this.metrics = metrics;
  }

  get lifecycle(): LifecycleState {
    return this.state;
  }

  setState(state: LifecycleState): void {
    this.state = state;
    this.publish();
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  setSubscribed(subscribed: boolean): void {
    this.subscribed = subscribed;
    this.publish();
  }

  /** Records a deployment fault of a component; it stays active until {@link clearFault} for that component. */
  reportFault(component: FaultComponent, message: string): void {
    if (!this.faults.has(component)) this.faults.set(component, { component, since: Date.now(), message });
    this.metrics?.deploymentFaults.inc({ component });
    this.metrics?.deploymentFaultActive.set({ component }, 1);
    this.publish();
  }

  /** A successful call to the component proves the fault is resolved. Cheap when there is none. */
  clearFault(component: FaultComponent): void {
    if (this.faults.delete(component)) {
      this.metrics?.deploymentFaultActive.set({ component }, 0);
      this.publish();
    }
  }

  get isReady(): boolean {
    return this.state === 'running' && this.subscribed && this.faults.size === 0;
  }

  activeFaults(): ActiveFault[] {
    return [...this.faults.values()];
  }

  /** Why the replica is not ready, or an empty list when it is. */
  notReadyReasons(): string[] {
    const reasons: string[] = [];
    if (this.state !== 'running') reasons.push(`state ${this.state}`);
    if (!this.subscribed) reasons.push('not subscribed');
    for (const fault of this.faults.values()) reasons.push(`deployment fault (${fault.component}): ${fault.message}`);
    return reasons;
  }

  /** Mirrors readiness into `certprov_ready`. */
  private publish(): void {
    this.metrics?.ready.set(this.isReady ? 1 : 0);
  }
}
